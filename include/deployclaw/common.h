/**
 * deployclaw/common.h — export attribute, error codes and the error struct.
 *
 * Conventions (see docs/STYLE.md): a fallible function returns 0 or a negative
 * DC_E... code and fills a caller-owned dc_error on failure. The error is
 * written only when it is still empty, so the first failure in a chain of
 * calls survives.
 */
#ifndef DEPLOYCLAW_COMMON_H
#define DEPLOYCLAW_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__) || defined(__clang__)
#define DC_API          __attribute__((visibility("default")))
#define DC_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define DC_UNUSED       __attribute__((unused))
#else
#define DC_API
#define DC_PRINTF(f, a)
#define DC_UNUSED
#endif

/* gcc warns on an ignored warn_unused_result even through (void): clang only. */
#if defined(__clang__)
#define DC_NODISCARD __attribute__((warn_unused_result))
#else
#define DC_NODISCARD
#endif

#define DC_VERSION "0.1.0"

/** Error codes: every fallible function returns 0 or one of these. */
enum {
	DC_OK = 0,
	DC_ENOMEM = -1,       /**< allocation failed */
	DC_EINVAL = -2,       /**< bad argument or bad input */
	DC_EIO = -3,          /**< a system call failed (errno in the message) */
	DC_ECONFIG = -4,      /**< deployclaw.yaml is invalid */
	DC_EPARSE = -5,       /**< a migration or SQL text does not parse */
	DC_EINTEGRITY = -6,   /**< checksum, sum file or ledger mismatch */
	DC_ENOTFOUND = -7,    /**< a named file, key or object does not exist */
	DC_EEXISTS = -8,      /**< refusing to overwrite */
	DC_ELIMIT = -9,       /**< input exceeds a size limit */
	DC_EDB = -10,         /**< the database reported an error */
	DC_EGATE = -11,       /**< a gate refused */
	DC_ELOCKED = -12,     /**< another process holds the lock */
	DC_ETENANT = -13,     /**< one or more tenants failed */
	DC_EINTERRUPTED = -14 /**< stopped by a signal */
};

/**
 * What went wrong, for a human. `message` is one line: lowercase, no final
 * period, user-supplied names in single quotes, never a password. `file`,
 * `line`, `col` point at the offending input when known (line/col 1-based,
 * 0 when unknown).
 */
typedef struct dc_error {
	int code;
	char message[1024];
	char file[512];
	int line;
	int col;
	char sqlstate[6];
	char tenant[256];
	char shard[128];
} dc_error;

/** Sets `err` (if non-NULL and still empty) and returns `code`. */
DC_API int dc_error_set(dc_error *err, int code, const char *fmt, ...) DC_PRINTF(3, 4);

/** As dc_error_set, with a position in a file. */
DC_API int dc_error_set_at(dc_error *err,
                           int code,
                           const char *file,
                           int line,
                           int col,
                           const char *fmt,
                           ...) DC_PRINTF(6, 7);

/** As dc_error_set with a va_list. */
DC_API int dc_error_vset(dc_error *err, int code, const char *fmt, va_list ap) DC_PRINTF(3, 0);

/** Empties `err`. */
DC_API void dc_error_clear(dc_error *err);

/**
 * Formats `err` as "file:line:col: message" (parts that are unknown are
 * left out) into `buf` of `size` bytes; returns `buf`.
 */
DC_API const char *dc_error_format(const dc_error *err, char *buf, size_t size);

/** A short name for a DC_E... code ("out of memory", "integrity failure", ...). */
DC_API const char *dc_strerror(int code);

#endif
