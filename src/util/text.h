/*
 * util/text.h — cutting a name or a line out of a string, for the modules that
 * each had a copy (internal: not installed, nothing exported).
 */
#ifndef DC_UTIL_TEXT_H
#define DC_UTIL_TEXT_H

#include <stddef.h>

/** The last component of `path` (after its last '/'), pointing into `path`. */
const char *dc_path_basename(const char *path);

/**
 * The first line of a PostgreSQL server or libpq message into `out` (`size` > 0),
 * without its "ERROR:  " or "FATAL:  " and cut to fit; NULL reads as "".
 */
void dc_text_first_line(char *out, size_t size, const char *msg);

/**
 * Moves a 1-based line and column (counted in characters) across the first `n`
 * bytes of `s`: a newline starts the next line, every other UTF-8 lead byte is a
 * column. Callers that stop at the text's end pass at most its length.
 */
void dc_text_advance(const char *s, size_t n, int *line, int *col);

#endif
