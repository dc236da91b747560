/*
 * util/text.c — names and lines cut out of strings (see text.h).
 */
#include "util/text.h"

#include <string.h>

const char *dc_path_basename(const char *path)
{
	const char *s = strrchr(path, '/');

	return s ? s + 1 : path;
}

void dc_text_first_line(char *out, size_t size, const char *msg)
{
	size_t len;

	if (!msg)
		msg = "";
	if (strncmp(msg, "ERROR:  ", 8) == 0 || strncmp(msg, "FATAL:  ", 8) == 0)
		msg += 8;
	len = strcspn(msg, "\n");
	if (len >= size)
		len = size - 1;
	memcpy(out, msg, len);
	out[len] = '\0';
}

void dc_text_advance(const char *s, size_t n, int *line, int *col)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\n') {
			(*line)++;
			*col = 1;
		} else if ((c & 0xC0) != 0x80) {
			(*col)++;
		}
	}
}
