/*
 * Internal to src/ledger: helpers shared by keys.c, ledger.c and verify.c.
 */
#ifndef DC_LEDGER_INTERNAL_H
#define DC_LEDGER_INTERNAL_H

#include <jansson.h>

#include <deployclaw/common.h>

/* A ledger line longer than this (without its newline) is an error. */
#define DC_LEDGER__MAX_LINE ((size_t)1024 * 1024)

/* The head record is tiny; anything bigger is not ours. */
#define DC_LEDGER__MAX_HEAD ((size_t)64 * 1024)

/* Canonical JSON: sorted keys (byte order), compact, UTF-8 as is. */
#define DC_LEDGER__CANON_FLAGS (JSON_SORT_KEYS | JSON_COMPACT)

/* sodium_init() once per process; 0 or DC_EIO (err filled). */
int dc_ledger__crypto_init(dc_error *err);

/* key_id of a public key: first 16 hex chars of SHA-256(pk). */
void dc_ledger__key_id(char out[17], const unsigned char pk[32]);

/*
 * The message signed in the head record. Domain-separated from entry
 * signatures (which sign 32 raw bytes) so an entry's signature cannot be
 * replayed as a head record: "deployclaw-ledger-head-v1:<seq>:<hash hex>".
 */
int dc_ledger__head_message(char *out, size_t size, int64_t seq, const char *hash_hex);

/* Parsed head record. */
typedef struct dc_ledger__head {
	int64_t seq;
	char hash[65];
	char key_id[17];
	unsigned char sig[64];
} dc_ledger__head;

/*
 * Reads `path` (the head record). DC_ENOTFOUND when absent, DC_EINTEGRITY
 * when it does not parse. When `pk` is non-NULL and the record's key_id is
 * that key's, the signature is checked too (DC_EINTEGRITY when bad);
 * `*sig_checked` (may be NULL) says whether it was.
 */
int dc_ledger__head_read(dc_ledger__head *head,
                         const char *path,
                         const unsigned char *pk,
                         bool *sig_checked,
                         dc_error *err);

/* "<ledger>.head", heap. */
char *dc_ledger__head_path(const char *ledger_path);

/* 1 when `s` is exactly `n` lowercase hex digits. */
int dc_ledger__is_hex(const char *s, size_t n);

#endif
