/*
 * util/util.h — strings, vectors, allocation, time, files, hashing (internal:
 * not installed, nothing exported but dc_strbuf, which deployclaw/strbuf.h
 * declares for the API).
 *
 * The layer every module builds on; it depends on nothing but libc and
 * libsodium.
 */
#ifndef DC_UTIL_UTIL_H
#define DC_UTIL_UTIL_H

#include <signal.h>

#include <deployclaw/common.h>
#include <deployclaw/strbuf.h>

/* ------------------------------------------------------------------------ */
/* Overflow-checked allocation. All return NULL on overflow or OOM.         */

/** malloc(n * size), NULL when the product overflows. */
void *dc_malloc_array(size_t n, size_t size);

/** realloc(p, n * size), NULL (and `p` untouched) when the product overflows. */
void *dc_realloc_array(void *p, size_t n, size_t size);

/** strdup that accepts NULL (returns NULL). */
char *dc_strdup(const char *s);

/** strndup. */
char *dc_strndup(const char *s, size_t n);

/* ------------------------------------------------------------------------ */
/* dc_ptrvec: a vector of owned or borrowed pointers.                       */

typedef struct dc_ptrvec {
	void **items;
	size_t len;
	size_t alloc;
} dc_ptrvec;

/* clang-format off */
#define DC_PTRVEC_INIT { NULL, 0, 0 }
/* clang-format on */

#define dc_vec_foreach(v, i, p) for ((i) = 0; (i) < (v)->len && (((p) = (v)->items[(i)]), 1); (i)++)

int dc_ptrvec_push(dc_ptrvec *v, void *p);

/** Frees the array; calls `free_fn` on every item when non-NULL. */
void dc_ptrvec_release(dc_ptrvec *v, void (*free_fn)(void *));

/* ------------------------------------------------------------------------ */
/* dc_arena: a bump allocator for many small objects freed together (parse  */
/* trees). Chunks grow geometrically; reset keeps the largest for reuse.    */

typedef struct dc_arena_chunk dc_arena_chunk;

typedef struct dc_arena {
	dc_arena_chunk *head; /* the chunk being filled; older ones behind it */
	size_t next_size;     /* the size of the next chunk */
} dc_arena;

/* clang-format off */
#define DC_ARENA_INIT { NULL, 0 }
/* clang-format on */

/** `size` bytes aligned for any object, valid until reset/release; NULL on OOM. */
void *dc_arena_alloc(dc_arena *a, size_t size);

/** Frees every allocation at once but keeps the largest chunk for reuse. */
void dc_arena_reset(dc_arena *a);

/** Frees everything; `a` is then as DC_ARENA_INIT. */
void dc_arena_release(dc_arena *a);

/* ------------------------------------------------------------------------ */
/* Text helpers.                                                            */

/** 1 when `s` (of `len` bytes) is valid UTF-8; else 0 and `*bad` = offset. */
int dc_utf8_valid(const char *s, size_t len, size_t *bad);

/** Edit distance between two strings (capped at 255 for long strings). */
unsigned dc_edit_distance(const char *a, const char *b);

/**
 * The candidate closest to `word` if it is close enough to be a plausible
 * typo (distance <= max(2, len/3)), else NULL. Borrowed from `candidates`.
 */
const char *dc_suggest(const char *word, const char *const *candidates, size_t n);

/** Lowercase hex of `len` bytes into `out` (2*len+1 bytes). */
void dc_hex_encode(char *out, const unsigned char *in, size_t len);

/** Decodes exactly `len` bytes of hex; 0 or DC_EINVAL. */
int dc_hex_decode(unsigned char *out, size_t len, const char *hex);

/** SHA-256 of `len` bytes as 64 hex chars + NUL. */
void dc_sha256_hex(char out[65], const void *data, size_t len);

/* ------------------------------------------------------------------------ */
/* Time.                                                                    */

/**
 * Parses a duration: an integer followed by ms, s, m, h (or d): "500ms",
 * "2s", "5m". A bare integer is rejected (ambiguous). 0 or DC_EINVAL.
 */
int dc_duration_parse(const char *s, int64_t *ms);

/** Formats milliseconds as the shortest exact "500ms" / "2s" / "5m" / "1h". */
void dc_duration_format(char *out, size_t size, int64_t ms);

/** Wall clock in milliseconds since the epoch. */
int64_t dc_time_now_ms(void);

/** Monotonic clock in milliseconds. */
int64_t dc_time_mono_ms(void);

/** Sleeps `ms` milliseconds (none when <= 0). With `stop` (may be NULL), returns
 * within 50 ms of `*stop` being set, by a signal or another thread. */
void dc_sleep_ms(int64_t ms, volatile sig_atomic_t *stop);

/** One pause of a poll loop that gives up at `deadline_ms` (dc_time_mono_ms):
 * `poll_ms`, or what is left before the deadline when that is less, and at
 * least 1 ms. */
void dc_sleep_poll(int64_t deadline_ms, int64_t poll_ms);

/** FNV-1a, 64 bits, over `len` bytes: start from DC_FNV1A64_INIT, or chain a
 * previous result to hash several pieces as one. Not for anything an attacker
 * chooses to collide (lock keys and slots only). */
#define DC_FNV1A64_INIT 0xcbf29ce484222325ULL
uint64_t dc_fnv1a64(uint64_t h, const void *data, size_t len);

/** RFC 3339 UTC with milliseconds: "2026-11-24T03:07:04.123Z" (25 bytes). */
void dc_time_rfc3339(char out[32], int64_t epoch_ms);

/**
 * The inverse of dc_time_rfc3339: "2026-11-24T03:07:04.123Z" into `*out_ms`
 * (milliseconds since the epoch). The fraction is optional and may have any
 * number of digits (the first three count); the zone must be "Z". 0, or
 * DC_EINVAL (and `*out_ms` untouched) for NULL, any other form or a date or
 * time out of range ("2026-02-30", "24:00:00").
 */
int dc_time_parse_rfc3339(int64_t *out_ms, const char *s);

/* ------------------------------------------------------------------------ */
/* Files.                                                                   */

/**
 * Reads a whole file (at most `max` bytes, else DC_ELIMIT) into a
 * NUL-terminated heap buffer the caller frees.
 */
int dc_file_read(char **out, size_t *len, const char *path, size_t max, dc_error *err);

/**
 * Writes `len` bytes to `path` atomically: a temporary file in the same
 * folder (the dotfile `.<name>.tmp.<pid>`, which folder scanners skip, also
 * when a crash leaves it behind), fsync, rename, fsync of the folder. `mode`
 * as for open(2).
 * With `exclusive`, refuses (DC_EEXISTS) when `path` exists.
 */
int dc_file_write_atomic(const char *path,
                         const void *data,
                         size_t len,
                         unsigned mode,
                         bool exclusive,
                         dc_error *err);

/** mkdir -p; 0 or DC_EIO. */
int dc_mkdir_p(const char *path, unsigned mode, dc_error *err);

/** 1 when `path` exists. */
int dc_path_exists(const char *path);

/** Joins `dir` and `name` ("name" itself when absolute or dir is "" or "."). Heap. */
char *dc_path_join(const char *dir, const char *name);

/** The folder part of `path` ("." when none). Heap. */
char *dc_path_dirname(const char *path);

/** "user@host" for the ledger's actor field, into `out`. */
void dc_actor(char *out, size_t size);

#endif
