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
	DC_CHECK_INTEGRITY = 0,    /**< SQLite: PRAGMA integrity_check */
	DC_CHECK_FOREIGN_KEYS = 1, /**< SQLite: PRAGMA foreign_key_check */
	/** PostgreSQL: the tenant's transaction stayed inside its schema, role and
	 * search_path (per tenant); the run-as roles are isolated (per shard) */
	DC_CHECK_ISOLATION = 2,
	/** PostgreSQL, row tenancy: every table with the tenant column has row-level
	 * security enabled, forced and a policy on the column; the application role
	 * cannot bypass it */
	DC_CHECK_RLS = 3
} dc_check_kind;

typedef struct dc_engine dc_engine; /**< an engine bound to one shard */
typedef struct dc_conn dc_conn;     /**< one worker's connection */

/** The operations of an engine: a table of functions, defined for implementers in
 * deployclaw/sys/engine.h with its version (included below). */
typedef struct dc_engine_ops dc_engine_ops;

/** The SQLite engine: tenancy `database`, one file per tenant (src/engine/sqlite/). */
DC_API extern const dc_engine_ops dc_engine_sqlite;

/**
 * The PostgreSQL engine (libpq): one engine per shard, tenancy `schema`,
 * `database` or `row` (src/engine/pg/; docs in pg_internal.h).
 * Errors carry the SQLSTATE; a lost connection is DC_EDB with sqlstate
 * 08006 (the next enter/begin reconnects), a failed connect 08001.
 */
DC_API extern const dc_engine_ops dc_engine_pg;

/** Most bind parameters the text of dc_pg_tenants_sql uses. */
#define DC_PG_TENANTS_MAX_PARAMS 3

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

/**
 * Whether `ops` is an engine this library can drive: its `version` is one it
 * knows and every operation that is not marked optional is there. 0, or
 * DC_EINVAL naming the engine and what is wrong. The rollout checks every
 * engine it is given.
 */
DC_API int dc_engine_ops_check(const dc_engine_ops *ops, dc_error *err);

/** The engine for `kind`, or NULL when this build has none. */
DC_API const dc_engine_ops *dc_engine_for(dc_engine_kind kind);

#include <deployclaw/sys/engine.h>

#endif
