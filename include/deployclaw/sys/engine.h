/**
 * deployclaw/sys/engine.h — the interface an engine implements.
 *
 * An engine is a static table of functions (struct dc_engine_ops) that
 * connects to where tenants live, enters a tenant, runs statements in
 * transactions, keeps the history table and locks tenants across processes.
 * The built-in ones are dc_engine_sqlite and dc_engine_pg (src/engine/sqlite/
 * and src/engine/pg/, one file per concern); a new engine fills the same table.
 *
 * Set `version` to DC_ENGINE_OPS_VERSION. Later versions of this header add
 * operations at the end only, so an engine built against an older header
 * keeps working: the library treats the operations it lacks as absent
 * (optional ones) and refuses it (dc_engine_ops_check) when a required one
 * is missing. Every operation fills `err` on failure as the rest of the API
 * does, and never prints.
 */
#ifndef DEPLOYCLAW_SYS_ENGINE_H
#define DEPLOYCLAW_SYS_ENGINE_H

#include <deployclaw/engine.h>
#include <deployclaw/migration.h>

/** The layout of struct dc_engine_ops this header describes. */
#define DC_ENGINE_OPS_VERSION 3

struct dc_engine_ops {
	/** DC_ENGINE_OPS_VERSION of the header the engine was built against. */
	unsigned version;
	const char *name; /**< "sqlite", "postgres" */

	/** Binds an engine to `shard` (NULL for SQLite's single folder). */
	int (*open)(dc_engine **out,
	            const dc_config *cfg,
	            const dc_shard_config *shard,
	            dc_error *err);
	void (*close)(dc_engine *engine);

	/** Optional: the run's id, for application_name=deployclaw/<run_id> on every
	 * connection made after it (PostgreSQL). Called once, before connect. */
	void (*set_run)(dc_engine *engine, const char *run_id);

	/** The shard's tenants, sorted by id. */
	int (*discover)(dc_engine *engine, dc_tenant **tenants, size_t *n, dc_error *err);

	/** A new connection (one per worker), not yet pointed at a tenant. */
	int (*connect)(dc_engine *engine, dc_conn **out, dc_error *err);
	void (*disconnect)(dc_conn *conn);

	/** Points `conn` at `tenant` (borrowed until the next enter). */
	int (*enter)(dc_conn *conn, const dc_tenant *tenant, dc_error *err);

	/**
	 * Optional (NULL: none): a hint that `tenant` (borrowed until the
	 * connection's next enter, or its disconnect) is probably the next one this
	 * connection enters. The engine may prepare for it in the background
	 * (SQLite: a thread of the connection opens the file while the current
	 * tenant runs); enter uses that work for the same tenant and discards it
	 * otherwise. A prefetch locks, reads and changes nothing; a tenant that
	 * fails to open fails in enter, with enter's error.
	 */
	void (*prefetch)(dc_conn *conn, const dc_tenant *tenant);

	/** Exclusive lock on the tenant across processes; waits up to `timeout_ms`,
	 * then DC_ELOCKED naming the holder. An engine may defer taking it to
	 * the next operation on the connection (PostgreSQL asks for it in the
	 * round trip of the begin that follows): nothing runs on the tenant
	 * before it is held, and when it cannot be had that operation fails
	 * with DC_ELOCKED instead. */
	int (*lock_tenant)(dc_conn *conn, int64_t timeout_ms, dc_error *err);
	int (*unlock_tenant)(dc_conn *conn, dc_error *err);

	int (*begin)(dc_conn *conn, dc_error *err);
	int (*commit)(dc_conn *conn, dc_error *err);
	int (*rollback)(dc_conn *conn, dc_error *err);

	/**
	 * Optional (NULL: none is): whether `stmt` cannot run inside a
	 * transaction (CREATE INDEX CONCURRENTLY, VACUUM, ...), recognised from
	 * the parse tree. The rollout asks once per statement per run and runs
	 * such a statement on its own, outside the tenant's transaction,
	 * recording its progress like a non-transactional phase.
	 */
	int (*autocommit_only)(const dc_statement *stmt, bool *out, dc_error *err);

	/** Runs one statement; `rows` (may be NULL) receives the rows it changed. */
	int (*exec)(dc_conn *conn, const dc_statement *stmt, int64_t *rows, dc_error *err);

	/** Runs a verify assertion: a query returning one boolean-ish value. */
	int (*query_bool)(dc_conn *conn, const dc_statement *stmt, bool *out, dc_error *err);

	/** Makes the history table ready to be read and written: creates it when
	 * missing, or leaves that to the first history_write (SQLite: in the
	 * transaction that writes the row; history_read has no rows meanwhile). */
	int (*history_ensure)(dc_conn *conn, dc_error *err);
	/** The tenant's history rows, in the order they were written. */
	int (*history_read)(dc_conn *conn, dc_history_row **rows, size_t *n, dc_error *err);
	/**
	 * Optional (NULL: enter + history_read): the history of `tenant` read
	 * without entering it -- planning reads every tenant once, before
	 * anything changes, and an engine may do that more cheaply than by
	 * pointing the connection at each tenant. The same rows and errors as
	 * enter + history_read; the connection is left pointed at no tenant.
	 */
	int (*history_peek)(dc_conn *conn,
	                    const dc_tenant *tenant,
	                    dc_history_row **rows,
	                    size_t *n,
	                    dc_error *err);
	/** Inserts or replaces the row of `row->version`, inside the open transaction. */
	int (*history_write)(dc_conn *conn, const dc_history_row *row, dc_error *err);

	/** Runs `sql`, a query of deployclaw's own on the open connection (tests and
	 * diagnostics read the tenant's state with it, inside its transaction), and
	 * appends the first column of each row, one per line, to `out`; at most
	 * `max_rows` rows. The consistency gates use `check`. */
	int (*query_text)(dc_conn *conn,
	                  const char *sql,
	                  dc_strbuf *out,
	                  size_t max_rows,
	                  dc_error *err);

	/**
	 * Optional (NULL: the engine has none): the engine's own consistency
	 * check of the tenant (`kind`), inside the open transaction, before its
	 * commit. With `full` false it covers what this visit's statements wrote
	 * (since enter): the tables written, with their indexes, and for foreign
	 * keys every table referencing one of them, transitively; whenever the
	 * engine cannot tell what was written, the whole database. Appends one
	 * problem per line to `out` (nothing: none found), at most `max_rows`.
	 */
	int (*check)(dc_conn *conn,
	             dc_check_kind kind,
	             bool full,
	             dc_strbuf *out,
	             size_t max_rows,
	             dc_error *err);

	/** Optional (NULL when the engine has none): copies the tenant, online, to `dest`. */
	int (*backup)(dc_conn *conn, const char *dest, dc_error *err);

	/**
	 * Optional (NULL: the rollout reads each tenant's history with enter +
	 * history_read): the history of `n` tenants of this engine at once — one
	 * query per shard where the engine keeps a shard-level state table.
	 * `rows[i]`/`counts[i]` receive tenant i's rows (free each with
	 * dc_history_rows_free). A tenant whose state cannot be read gets
	 * counts[i] = 0 and its message in `errors[i]` (caller-provided array of
	 * n strings of 512 bytes each, "" when fine).
	 */
	int (*history_read_all)(dc_engine *engine,
	                        const dc_tenant *tenants,
	                        size_t n,
	                        dc_history_row **rows,
	                        size_t *counts,
	                        char (*errors)[512],
	                        dc_error *err);

	/** SHA-256 hex of the tenant's schema (tables, columns, indexes), for checks
	 * that a rollback restored the schema. */
	int (*schema_fingerprint)(dc_conn *conn, char out[65], dc_error *err);

	/* ---- version 2 ---- */

	/** The kinds `check` does: bit (1 << dc_check_kind) each. A version-1 engine's
	 * `check` does DC_CHECK_INTEGRITY and DC_CHECK_FOREIGN_KEYS. */
	unsigned check_kinds;

	/**
	 * Optional (NULL: none): a check of `kind` over a whole shard before the
	 * run touches anything (the preflight gates ask it), one query per shard:
	 * `tenants` are this engine's `n` tenants of the run. Appends one problem
	 * per line to `out` (nothing: none found), at most `max_rows`.
	 */
	int (*shard_check)(dc_engine *engine,
	                   dc_check_kind kind,
	                   const dc_tenant *tenants,
	                   size_t n,
	                   dc_strbuf *out,
	                   size_t max_rows,
	                   dc_error *err);
	/** The kinds `shard_check` does: bit (1 << dc_check_kind) each. */
	unsigned shard_check_kinds;

	/* ---- version 3 ---- */

	/**
	 * Optional (NULL: the engine has no shard database, and a run with
	 * shard-scoped migrations is refused): the history of the shard's
	 * shard-scoped migrations (PostgreSQL: deployclaw.shard_history in the
	 * shard's database), in the order written; no table yet is no rows.
	 */
	int (*shard_history_read)(dc_engine *engine,
	                          dc_history_row **rows,
	                          size_t *n,
	                          dc_error *err);

	/**
	 * Optional (given with shard_history_read): runs `n` shard-scoped
	 * migrations once in the shard's database, in ONE transaction holding
	 * the shard's lock (waited for up to `lock_timeout_ms`, then DC_ELOCKED).
	 * Without `down`: each one's phases' up, its verify assertions, and its
	 * history row (applied); with `down`: each one's phases' down, last
	 * phase first, and its row (rolled_back). The history is read again
	 * under the lock: a migration another process applied (or undid)
	 * meanwhile is skipped, and `done[i]` (n bools) says which ran. On any
	 * failure everything is rolled back; `err` names the shard, the version
	 * and the statement's file:line:col.
	 */
	int (*shard_run)(dc_engine *engine,
	                 const dc_migration *const *migs,
	                 size_t n,
	                 bool down,
	                 const char *run_id,
	                 const char *actor,
	                 int64_t lock_timeout_ms,
	                 bool *done,
	                 dc_error *err);
};

#endif
