/**
 * deployclaw/strbuf.h — the growable string the API appends text to
 * (summaries, dumps, rendered findings). The library's other helpers are
 * internal.
 */
#ifndef DEPLOYCLAW_STRBUF_H
#define DEPLOYCLAW_STRBUF_H

#include <stdarg.h>
#include <stddef.h>

#include <deployclaw/common.h>

/* ------------------------------------------------------------------------ */
/* dc_strbuf: a growable, always NUL-terminated string with a size cap.     */

/** Default cap of a dc_strbuf: 256 MiB. */
#define DC_STRBUF_DEFAULT_MAX ((size_t)256 * 1024 * 1024)

/**
 * `buf` is never NULL and always NUL-terminated (it points at a static ""
 * until the first append). A failed allocation or an append past `max` sets
 * `failed` and makes every later append a no-op, so a chain of appends needs
 * one check at the end: dc_strbuf_error().
 */
typedef struct dc_strbuf {
	char *buf;
	size_t len;
	size_t alloc;
	size_t max;
	int failed; /**< 0, DC_ENOMEM or DC_ELIMIT */
} dc_strbuf;

DC_API extern char dc_strbuf__empty[];

/* clang-format off */
#define DC_STRBUF_INIT { dc_strbuf__empty, 0, 0, DC_STRBUF_DEFAULT_MAX, 0 }
/* clang-format on */

/** Initialises `sb` with a cap of `max` bytes (0 = default). */
DC_API void dc_strbuf_init(dc_strbuf *sb, size_t max);

/** Frees the storage; `sb` is then as after dc_strbuf_init. */
DC_API void dc_strbuf_release(dc_strbuf *sb);

/** Empties `sb`, keeps its capacity, clears `failed`. */
DC_API void dc_strbuf_reset(dc_strbuf *sb);

/** Ensures room for `extra` more bytes; 0 or the sticky error. */
DC_API int dc_strbuf_grow(dc_strbuf *sb, size_t extra);

DC_API int dc_strbuf_add(dc_strbuf *sb, const void *data, size_t len);
DC_API int dc_strbuf_adds(dc_strbuf *sb, const char *s);
DC_API int dc_strbuf_addch(dc_strbuf *sb, int c);
DC_API int dc_strbuf_addf(dc_strbuf *sb, const char *fmt, ...) DC_PRINTF(2, 3);
DC_API int dc_strbuf_vaddf(dc_strbuf *sb, const char *fmt, va_list ap) DC_PRINTF(2, 0);

/** Shortens to `len` bytes (no-op when already shorter). */
DC_API void dc_strbuf_setlen(dc_strbuf *sb, size_t len);

/** 0, or DC_ENOMEM / DC_ELIMIT when an append failed. */
DC_API int dc_strbuf_error(const dc_strbuf *sb);

/**
 * Hands the heap string to the caller (free() it) and re-initialises `sb`.
 * Returns NULL when an append had failed (the storage is freed then) or on
 * OOM. `len` may be NULL.
 */
DC_API char *dc_strbuf_detach(dc_strbuf *sb, size_t *len);

#endif
