/*
 * Internal to src/engine: helpers both engines (sqlite, pg) share, defined in
 * engine.c.
 */
#ifndef DC_ENGINE_INTERNAL_H
#define DC_ENGINE_INTERNAL_H

#include <deployclaw/engine.h>

/*
 * The status whose dc_history_status_name is `s`, into `*out`: 0, or
 * DC_EINVAL (and `*out` untouched) for NULL or any other text. The history
 * tables store the names, so what one engine writes the other reads.
 */
int dc_engine__parse_status(dc_history_status *out, const char *s);

#endif
