/*
 * Internal to src/engine: helpers both engines (sqlite, pg) share, defined in
 * engine.c.
 */
#ifndef DC_ENGINE_INTERNAL_H
#define DC_ENGINE_INTERNAL_H

#include <stdarg.h>

#include <deployclaw/engine.h>

/*
 * The status whose dc_history_status_name is `s`, into `*out`: 0, or
 * DC_EINVAL (and `*out` untouched) for NULL or any other text. The history
 * tables store the names, so what one engine writes the other reads.
 */
int dc_engine__parse_status(dc_history_status *out, const char *s);

/* Copies `s` (NULL: "") into `out` of `size` bytes, cut at a UTF-8 boundary. */
void dc_engine__copy_cut(char *out, size_t size, const char *s);

/* Where an engine's failure happened; each pointer may be NULL (not known). */
typedef struct dc_engine__where {
	const char *tenant;
	const char *shard;
	const char *sqlstate;
	const char *file; /* with line and col: a user statement's position */
	int line;
	int col;
} dc_engine__where;

/*
 * As dc_error_vset, then fills the fields of `err` that `where` knows (each
 * cut at a UTF-8 boundary) - all only while `err` is still empty, so the
 * first failure survives. Returns `code`. Both engines' error helpers end
 * here, so a message reads and is structured the same in either.
 */
int dc_engine__vfail(dc_error *err,
                     int code,
                     const dc_engine__where *where,
                     const char *fmt,
                     va_list ap) DC_PRINTF(4, 0);

/*
 * Whether `ops` does a check of `kind` per tenant (its `check`) or, with
 * `shard`, over a whole shard (its `shard_check`). Reads only the fields the
 * engine's interface version has: the gates ask this, never the fields.
 */
bool dc_engine__does_check(const dc_engine_ops *ops, dc_check_kind kind, bool shard);

#endif
