/**
 * deployclaw/ledger.h — the append-only, hash-chained, Ed25519-signed
 * audit ledger (JSON Lines).
 *
 * Every entry is one line:
 *   {"seq":N,"ts":"2026-11-24T03:07:04.123Z","run_id":"...","actor":"user@host",
 *    "event":"...","data":{...},"prev":"<hex>","hash":"<hex>","sig":"<base64>",
 *    "key_id":"<hex16>"}
 * `hash` is SHA-256 over the canonical JSON (sorted keys, compact, UTF-8) of
 * the entry without `hash` and `sig`; `sig` is Ed25519 over the 32 raw hash
 * bytes; `prev` of entry 1 is 64 zeros. A signed head record beside the
 * ledger (`<ledger>.head`: {"seq","hash","sig","key_id"}) is rewritten after
 * each append, so a truncated tail is detected.
 */
#ifndef DEPLOYCLAW_LEDGER_H
#define DEPLOYCLAW_LEDGER_H

#include <deployclaw/common.h>

/** An Ed25519 key pair. Wiped with sodium_memzero by dc_signing_key_free. */
typedef struct dc_signing_key {
	unsigned char sk[64];
	unsigned char pk[32];
	char key_id[17]; /**< first 16 hex chars of SHA-256(pk) */
} dc_signing_key;

/**
 * Writes a new key pair: `path` holds the private key (mode 0600) and
 * `path`.pub the public key, both as hex text. Refuses (DC_EEXISTS) to
 * overwrite either. `key_id` (17 bytes) may be NULL.
 */
DC_API int dc_signing_key_generate(const char *path, char *key_id, dc_error *err);

/** Loads a private key written by dc_signing_key_generate. */
DC_API int dc_signing_key_load(dc_signing_key **out, const char *path, dc_error *err);

/** Loads a public key file (.pub) into `pk` and its id into `key_id` (may be NULL). */
DC_API int dc_public_key_load(unsigned char pk[32], char *key_id, const char *path, dc_error *err);

DC_API void dc_signing_key_free(dc_signing_key *key);

typedef struct dc_ledger dc_ledger;

/**
 * Opens (creating if needed, with its folder) the ledger at `path` for
 * appending with `key` (borrowed; must outlive the ledger). `run_id` and
 * the actor are stamped on every entry; run_id may be NULL (a fresh one is
 * made: 16 random hex chars), see dc_ledger_run_id.
 */
DC_API int dc_ledger_open(dc_ledger **out,
                          const char *path,
                          const dc_signing_key *key,
                          const char *run_id,
                          dc_error *err);

DC_API void dc_ledger_close(dc_ledger *ledger);

/** The run id stamped on this ledger's appends. Borrowed. */
DC_API const char *dc_ledger_run_id(const dc_ledger *ledger);

/**
 * Appends one entry and returns only once it is written and fsync'd. Safe
 * against concurrent writers in other processes (O_APPEND + an exclusive
 * flock while the tail is read and the line written). `data_json` is borrowed
 * (NULL = {}). A torn last line left by a crash makes the append fail with
 * DC_EINTEGRITY rather than extend a broken chain. `seq` (may be NULL)
 * receives the new entry's seq.
 */
DC_API int dc_ledger_append(dc_ledger *ledger,
                            const char *event,
                            const char *data_json,
                            int64_t *seq,
                            dc_error *err);

/** One event of a dc_ledger_append_batch. */
typedef struct dc_ledger_event {
	const char *event;     /**< non-empty UTF-8 */
	const char *data_json; /**< a JSON object's text, borrowed; NULL = {} */
} dc_ledger_event;

/**
 * Appends `n` entries (consecutive seqs, in order) under one lock, with one
 * write() and one fsync, and updates the head record once. All or nothing:
 * when the write fails the file is cut back to its previous length. Meant
 * for bursts (a wave's per-tenant outcomes, an import); the durability
 * contract is the same as dc_ledger_append's, for the whole batch.
 * `first_seq` (may be NULL) receives the seq of events[0]. At most
 * DC_LEDGER_BATCH_MAX events.
 *
 * `data_json` of either append: the text of a JSON object (DC_EINVAL, with
 * the line and column, when it is not one) of strings, integers, booleans,
 * nulls, arrays and objects (nesting depth <= 64). Reals are refused
 * (DC_EINVAL): their text form is not portable enough to hash (log
 * durations as integer milliseconds). A line longer than 1 MiB is DC_ELIMIT.
 *
 * The head record is written after the entries are durable; when only that
 * write fails the call returns DC_EIO with `seq`/`first_seq` set (the
 * entries are in the ledger, the head catches up at the next append).
 */
#define DC_LEDGER_BATCH_MAX 100000
DC_API int dc_ledger_append_batch(dc_ledger *ledger,
                                  const dc_ledger_event *events,
                                  size_t n,
                                  int64_t *first_seq,
                                  dc_error *err);

/**
 * dc_ledger_verify_opts.flags: check only the signatures of the last entry
 * and of the head record. Every hash and link is still checked, and the
 * hash chain carries the last signature back to every earlier entry, so
 * any change to any entry's content is still caught; what goes unnoticed is
 * a damaged `sig` field on an entry whose content is intact. When the last
 * signature fails, a full verify runs to name the first bad entry. Several
 * times faster: Ed25519 verification dominates a full verify.
 */
#define DC_LEDGER_VERIFY_FAST 0x1u

/** The layout of dc_ledger_verify_opts this header describes. */
#define DC_LEDGER_VERIFY_OPTIONS_VERSION 1

/**
 * How to verify. Start from DC_LEDGER_VERIFY_OPTIONS_INIT (or
 * dc_ledger_verify_opts_init) and set fields by name: later versions add
 * fields at the end, and a caller built against this header keeps working.
 */
typedef struct dc_ledger_verify_opts {
	unsigned version; /**< DC_LEDGER_VERIFY_OPTIONS_VERSION */
	/**
	 * 32 bytes: every entry and the head record must be signed by this key
	 * (key_id and signature). NULL = no key to check against: hashes,
	 * links, head and expect_head are still checked but signatures cannot
	 * be (result->signatures_checked is false). The CLI should always pass
	 * the .pub key.
	 */
	const unsigned char *pubkey;
	const char *expect_head; /**< "seq:hash" or a hash; NULL = the head record */
	unsigned flags;          /**< DC_LEDGER_VERIFY_... */
	/** Workers that parse, hash and check signatures: 0 = the process's CPU
	 * budget (at most 16); they come from the shared worker pool. */
	int threads;
} dc_ledger_verify_opts;

#define DC_LEDGER_VERIFY_OPTIONS_INIT                              \
	{                                                          \
		DC_LEDGER_VERIFY_OPTIONS_VERSION, NULL, NULL, 0, 0 \
	}

/** Fills `opts` with the defaults of `version`; DC_EINVAL for a version this
 * library does not know. */
DC_API int dc_ledger_verify_opts_init(dc_ledger_verify_opts *opts, unsigned version);

typedef struct dc_ledger_verify_result {
	int64_t entries;  /**< entries checked */
	int64_t bad_seq;  /**< seq of the first bad entry, 0 when all good */
	int64_t bad_line; /**< its line in the file, 0 when all good */
	char head_hash[65];
	int64_t last_seq;        /**< seq of the last good entry */
	int64_t head_seq;        /**< seq the head record names; -1 when there is none */
	bool signatures_checked; /**< false without opts->pubkey */
} dc_ledger_verify_result;

/**
 * Verifies every link and signature of the ledger at `path`. DC_EINTEGRITY
 * with a message naming the first bad entry by seq and line and saying what
 * is wrong: modified (hash mismatch), bad signature / signed by a different
 * key, inserted/deleted/reordered (seq or prev link broken), torn last line,
 * tail truncated (behind the head record or --expect-head). `opts` may be
 * NULL (the defaults, no key); an unknown `opts->version` is DC_EINVAL.
 */
DC_API int dc_ledger_verify(const char *path,
                            const dc_ledger_verify_opts *opts,
                            dc_ledger_verify_result *result,
                            dc_error *err);

/** Filter for dc_ledger_read; NULL/0 fields match everything. */
typedef struct dc_ledger_filter {
	const char *run_id;
	const char *event;
	const char *tenant; /**< matches data.tenant, or the tenant of one of data.outcomes[] */
	int64_t since_ms;   /**< ts >= since */
	int64_t until_ms;   /**< ts < until */
} dc_ledger_filter;

/**
 * Calls `fn` for every entry matching `filter`, in order; `fn` returning
 * non-zero stops the walk (that value is returned). Lines that do not parse
 * are DC_EINTEGRITY naming the line. `entry_json` is the entry as compact JSON
 * text, borrowed for the call. Reads the entries that were complete when
 * the call started (appends running meanwhile are not waited for). Read
 * does not check hashes or signatures: verify first for that.
 */
DC_API int dc_ledger_read(const char *path,
                          const dc_ledger_filter *filter,
                          int (*fn)(const char *entry_json, void *ctx),
                          void *ctx,
                          dc_error *err);

#endif
