/**
 * deployclaw/engine.h — the one interface every storage engine implements.
 *
 * An engine is opened per shard (a SQLite folder, a PostgreSQL primary);
 * it discovers the shard's tenants and hands out one connection per worker.
 * Connections are reused across tenants: `enter` points a connection at a
 * tenant (a SQLite file, a PostgreSQL schema or database), so a pool never
 * needs one connect per tenant. The rollout drives the calls below in this
 * order for every tenant:
 *
 *   enter ▸ lock_tenant ▸ history_ensure ▸ history_read ▸ begin ▸ exec… ▸
 *   query_bool (verify)… ▸ history_write ▸ commit (or rollback) ▸ unlock_tenant
 *
 * Gates are never evaluated inside an engine; the rollout applies them
 * through the gate registry (gate.h). Every function returns 0 or a DC_E...
 * code and fills `err` (with tenant, shard, SQLSTATE and statement position
 * where known).
 */
#ifndef DEPLOYCLAW_ENGINE_H
#define DEPLOYCLAW_ENGINE_H

#include <deployclaw/common.h>
#include <deployclaw/config.h>
#include <deployclaw/migration.h>

/** One tenant of a shard. Owned by the array that holds it. */
typedef struct dc_tenant {
	char *id;     /**< tenant id: file stem, schema name or database name */
	char *shard;  /**< shard name (SQLite: the folder holding the file) */
	char *target; /**< where it lives: SQLite file path, schema, or database name */
} dc_tenant;

/** Frees `n` tenants and the array; NULL is a no-op. */
DC_API void dc_tenants_free(dc_tenant *tenants, size_t n);

/** Status of one history row. */
typedef enum dc_history_status {
	DC_HISTORY_APPLIED = 0,
	DC_HISTORY_ROLLED_BACK = 1, /**< the down path ran */
	DC_HISTORY_PARTIAL = 2      /**< non-transactional phases done up to `phase` */
} dc_history_status;

/** "applied", "rolled_back", "partial". */
DC_API const char *dc_history_status_name(dc_history_status status);

/** One row of `deployclaw_history`, the per-tenant source of truth. */
typedef struct dc_history_row {
	char *version;
	char *name;
	char *checksum; /**< the migration's checksum when it was applied */
	char *phase;    /**< last completed phase */
	dc_history_status status;
	int64_t started_at_ms;
	int64_t finished_at_ms;
	int64_t duration_ms;
	char *run_id;
	char *actor;
} dc_history_row;

/** Releases the strings of one row (the row itself is caller storage). */
DC_API void dc_history_row_release(dc_history_row *row);

/** Frees `n` rows and the array; NULL is a no-op. */
DC_API void dc_history_rows_free(dc_history_row *rows, size_t n);

/** An engine's consistency checks (see dc_engine_ops.check). */
typedef enum dc_check_kind {
	DC_CHECK_INTEGRITY = 0,   /**< SQLite: PRAGMA integrity_check */
	DC_CHECK_FOREIGN_KEYS = 1 /**< SQLite: PRAGMA foreign_key_check */
} dc_check_kind;

typedef struct dc_engine dc_engine; /**< an engine bound to one shard */
typedef struct dc_conn dc_conn;     /**< one worker's connection */

/** The operations of an engine. Implementations are static tables. */
typedef struct dc_engine_ops {
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
} dc_engine_ops;

/** The SQLite engine: tenancy `database`, one file per tenant (src/engine/sqlite.c). */
DC_API extern const dc_engine_ops dc_engine_sqlite;

/**
 * The PostgreSQL engine (libpq): one engine per shard, tenancy `schema`,
 * `database` or `row` (src/engine/pg/; docs in pg_internal.h).
 * Errors carry the SQLSTATE; a lost connection is DC_EDB with sqlstate
 * 08006 (the next enter/begin reconnects), a failed connect 08001.
 */
DC_API extern const dc_engine_ops dc_engine_pg;

/** Most bind parameters the text of dc_pg_tenants_sql uses. */
#define DC_PG_TENANTS_MAX_PARAMS 2

/**
 * The tenants of one PostgreSQL shard, as SQL: the one definition of which
 * schemas or databases are tenants, run by the engine's discover, by
 * dc_topology_collect and by dc_topology_tables (plan --live), so that they
 * cannot disagree.
 *
 * Appends to `sql` a WITH clause, without its final SELECT, defining
 * `dc_tenants(tenant text)`: each tenant once, in no particular order.
 *
 *  - tenancy.model `row`: the shard's one tenant, `shard` (its name).
 *  - Otherwise the union of what these find:
 *    - tenancy.pattern: the schema names LIKE it, never a system schema
 *      (`pg_` followed by anything, information_schema) nor `deployclaw`;
 *      model `database`: the names of connectable, non-template databases
 *      LIKE it;
 *    - tenancy.query: the first column of the operator's query, spliced in
 *      as a subquery (trailing `;` dropped; NULLs ignored) -- the only text
 *      not bound as a parameter;
 *    - tenancy.list: the listed names that exist on this shard.
 *
 * The caller appends its SELECT over dc_tenants, for example
 * `SELECT tenant FROM dc_tenants ORDER BY tenant COLLATE "C"`. The values of
 * $1 .. $`*nparams` are stored in `params` (heap strings the caller frees;
 * unused slots are NULL, and all are NULL on failure); a caller's own
 * parameters start at $`*nparams + 1`. DC_ECONFIG when the model needs
 * pattern, query or list and has none; DC_ENOMEM.
 */
DC_API int dc_pg_tenants_sql(dc_strbuf *sql,
                             char *params[DC_PG_TENANTS_MAX_PARAMS],
                             int *nparams,
                             const dc_config *cfg,
                             const char *shard,
                             dc_error *err);

/**
 * An allocator for SQLite, in the shape SQLite calls it (sizes are int): a
 * program that links a faster malloc hands it over with
 * dc_engine_sqlite_setup. `size` is the usable size of a block, `roundup`
 * the size a request of n bytes is rounded up to.
 */
typedef struct dc_sqlite_mem {
	void *(*malloc)(int n);
	void (*free)(void *p);
	void *(*realloc)(void *p, int n);
	int (*size)(void *p);
	int (*roundup)(int n);
} dc_sqlite_mem;

/**
 * Process-wide settings of SQLite, which a program (not a library) decides:
 * call it once, first thing, before anything uses SQLite. It turns SQLite's
 * allocation statistics off (they take one global mutex on every malloc and
 * free, workers migrating tenants in parallel contend on it, and deployclaw
 * never reads them) and, when `mem` is not NULL, makes SQLite allocate
 * through it (`mem` must outlive every use of SQLite). DC_EINVAL when SQLite
 * is already initialised and refuses.
 */
DC_API int dc_engine_sqlite_setup(const dc_sqlite_mem *mem);

/** The engine for `kind`, or NULL when this build has none. */
DC_API const dc_engine_ops *dc_engine_for(dc_engine_kind kind);

#endif
