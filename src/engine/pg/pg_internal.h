/*
 * The PostgreSQL engine (libpq): one dc_engine per shard, tenancy `schema`,
 * `database` or `row`.
 *
 * Files (this header declares what they share, as dc_pg__<verb>):
 *
 *   pg.c          the operations table; open, close, set_run
 *   error.c       messages naming tenant, shard, SQLSTATE and file position
 *   connection.c  the admin connection, worker connections, enter
 *   pipeline.c    libpq pipeline mode; reading what was sent without waiting
 *   discovery.c   the tenants of a shard (dc_pg_tenants_sql, public)
 *   lock.c        the tenant's session advisory lock
 *   transaction.c begin, commit, rollback
 *   statement.c   user statements: classification, exec, verify assertions
 *   history.c     the tenant's deployclaw_history table
 *   state.c       the shard's deployclaw.tenant_state; history_read_all
 *   inspect.c     query_text and the schema fingerprint
 *   shard.c       shard-scoped migrations and deployclaw.shard_history
 *   roles.c       tenancy.run_as: each tenant's role, and the preflight that
 *                 the roles are isolated (a shard check)
 *   check.c       the check and shard_check operations: which kind goes where
 *   rls.c         row tenancy's row-level security check (DC_CHECK_RLS)
 *   isolation.c   the run-time isolation check (DC_CHECK_ISOLATION)
 *
 * Invariants the code relies on:
 *
 * - Connection settings are libpq's own. The shard's conninfo/URI is handed
 *   to PQconnectdbParams unparsed (expand_dbname) with two overrides placed
 *   after it: application_name=deployclaw/<run_id> and, in the database
 *   model, dbname=<tenant database>. PG* variables, .pgpass, service files
 *   and sslmode therefore work as in psql. The conninfo may hold a password:
 *   it never reaches a message (dc_dsn_redact names it).
 * - A dc_conn is used by one thread at a time. The dc_engine is shared; its
 *   mutable state (the `admin` connection used by discover and
 *   history_read_all, `state_ready`) is guarded by `mu`.
 * - One connection per worker: `connect` opens it (schema and row models) and
 *   `enter` only points it at a tenant. In the database model `enter`
 *   reconnects when the tenant lives in another database than the current
 *   one (every tenant does: it is its own database).
 * - Values never reach SQL text: they are bound parameters. Identifiers
 *   (schema names, index names) are quoted with PQescapeIdentifier.
 * - Tenant settings: inside a transaction with set_config(..., true) (that is
 *   SET LOCAL) in `begin`; for statements outside a transaction (a phase with
 *   `transaction: false`) with set_config(..., false) once per tenant visit.
 *   Session values of an earlier tenant may linger on the connection but are
 *   never relied upon: every statement of a tenant runs after its own
 *   settings, and deployclaw's own queries use qualified names.
 * - The first `begin` after `enter` also creates the history table when
 *   missing and reads it, in the same round trip (libpq pipeline mode);
 *   history_ensure and history_read then answer from that read.
 * - State table: `deployclaw.tenant_state` in the shard's database (schema
 *   and row models), written by history_write in the same statement as the
 *   history row. In the database model the tenant's transaction runs in the
 *   tenant's own database, so its state table lives there too, and
 *   history_read_all reads each tenant database's history table instead.
 * - tenancy.run_as (schema model): begin's settings query also makes the
 *   tenant's role current (SET LOCAL ROLE), so the migration and the
 *   tenant's history table run under it; only the state row is written as
 *   deployclaw's login role (history_write switches back around it).
 * - Notices (CREATE ... IF NOT EXISTS) are swallowed: library code never
 *   prints.
 * - Round trips per tenant (schema model, one transactional phase): lock,
 *   begin (BEGIN, settings, history table, history read: one pipeline), one
 *   per statement, verify assertions, history write + COMMIT (the write is
 *   sent without waiting; COMMIT is queued behind it and both answers are
 *   read at once; any other operation reads the write's answer first and
 *   fails as the write would), unlock. The isolation check (the
 *   isolation_runtime gate) adds one: it is queued behind the write and
 *   reads both answers, and the COMMIT then goes alone. An
 *   unlock asked for outside a transaction without an error to fill (the
 *   rollout's) is sent in pipeline mode and not waited for: the server
 *   releases the lock as soon as it reads it, and the next tenant's first
 *   try_lock is queued behind it and reads both answers in one round trip
 *   (any other operation first reads the answer: `settle`). With an error
 *   to fill, unlock waits for its answer as before.
 * - Each connection caches the classification (libpg_query) of the
 *   statements it ran, keyed by statement and text: a migration statement
 *   is parsed once per worker, not once per tenant.
 */
#ifndef DC_ENGINE_PG_INTERNAL_H
#define DC_ENGINE_PG_INTERNAL_H

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <libpq-fe.h>

#include <deployclaw/analysis.h>
#include <deployclaw/engine.h>

#include "engine/engine_internal.h"
#include "util/text.h"
#include "util/util.h"

/* Most tenants one shard may have; more is DC_ELIMIT. */
#define MAX_TENANTS ((size_t)10 * 1000 * 1000)

/* Most history rows read from one tenant; more is DC_ELIMIT. */
#define MAX_HISTORY_ROWS 1000000

/* How often lock_tenant retries while another session holds the lock. */
#define LOCK_POLL_MS 20

/* Advisory lock serialising the creation of deployclaw.tenant_state across
 * processes (CREATE ... IF NOT EXISTS races on the catalog otherwise). */
#define STATE_CREATE_KEY "7306007296173203457"

#define HISTORY_COLUMNS                                                           \
	"(version text PRIMARY KEY, name text, checksum text, phase text, "       \
	"status text NOT NULL, started_at timestamptz, finished_at timestamptz, " \
	"duration_ms bigint, run_id text, actor text, "                           \
	"written_at timestamptz NOT NULL DEFAULT clock_timestamp())"

#define HISTORY_FIELDS                                    \
	"version, name, checksum, phase, status, "        \
	"(extract(epoch FROM started_at) * 1000)::int8, " \
	"(extract(epoch FROM finished_at) * 1000)::int8, duration_ms, run_id, actor"

/* One statement: a plpgsql block so that an existing table needs no CREATE
 * privilege and the advisory lock is taken only when there is work. */
#define STATE_CREATE                                                                      \
	"DO $dc$ BEGIN IF to_regclass('deployclaw.tenant_state') IS NULL THEN "           \
	"PERFORM pg_advisory_xact_lock(" STATE_CREATE_KEY "); "                           \
	"CREATE SCHEMA IF NOT EXISTS deployclaw; "                                        \
	"CREATE TABLE IF NOT EXISTS deployclaw.tenant_state (tenant text, version text, " \
	"checksum text, status text, phase text, updated_at timestamptz, "                \
	"PRIMARY KEY (tenant, version)); END IF; END $dc$"

/* Statements classified on this connection (check_stmt): the same migration
 * statements run in every tenant, and parsing them (libpg_query) cost more
 * client CPU per tenant than all the rest of deployclaw's own work. Keyed by
 * the statement and its text (compared: a freed statement's address may be
 * reused); dc_pg_classify is a pure function of the text. */
#define CLASSIFIED_MAX 16

typedef struct classified {
	const dc_statement *stmt;
	char *sql; /* copy of stmt->sql when classified */
	dc_pg_stmt_info info;
} classified;

/* A tenant and the role it runs as (tenancy.run_as). */
typedef struct dc_pg_run_as {
	char *tenant;
	char *role;
} dc_pg_run_as;

struct dc_engine {
	dc_tenancy_model model;
	char *shard;    /* the shard's name */
	char *conninfo; /* the shard's primary, as configured: may hold a password */
	/* dc_pg_tenants_sql's query and its parameters, built by open */
	char *discover_sql;
	char *discover_params[DC_PG_TENANTS_MAX_PARAMS];
	int discover_nparams;
	char discover_what[64]; /* "tenancy.pattern, tenancy.list", for messages */
	char lock_timeout[24];  /* milliseconds, as set_config wants them */
	char statement_timeout[24];
	char *app_name; /* "deployclaw/<run_id>" */
	/* tenancy.shared_schemas, quoted, each after a comma: what follows the
	 * tenant's schema on its search_path ("" when none) */
	char *shared_path;
	char *shared_array; /* the shared schemas as a text[] literal: {"public"} */
	char *rls_column;   /* tenancy.column (row tenancy), or NULL */
	char *rls_role;     /* tenancy.app_role, or NULL */

	char *run_as; /* tenancy.run_as as configured; NULL: off */

	pthread_mutex_t mu; /* guards admin, state_ready and roles */
	PGconn *admin;      /* discovery, history_read_all, state table creation */
	bool state_ready;   /* deployclaw.tenant_state exists (schema and row models) */
	/* With run_as: each discovered tenant's role, in discovery's (byte) order */
	dc_pg_run_as *roles;
	size_t nroles;
};

struct dc_conn {
	dc_engine *engine;
	PGconn *pg;              /* NULL before the first enter in the database model */
	char *dbname;            /* database model: the database `pg` is connected to */
	const dc_tenant *tenant; /* borrowed until the next enter */
	char *qschema;           /* quoted schema of the history table */
	char *search_path;       /* schema model: qschema, then the shared schemas */
	const char *run_as;      /* tenancy.run_as: the entered tenant's role (heap, owned),
	                          * current in its transactions; NULL: off */

	bool locked;
	uint64_t lock_key;
	bool lock_deferred;      /* lock_tenant returned; the lock is asked for with the
	                          * next begin (dc_pg__begin) or before any other operation */
	int64_t lock_timeout_ms; /* lock_tenant's, for a deferred lock */
	bool unlock_sent;        /* an unlock and/or the session reset was sent (pipeline,
	                          * synced) and its results not read yet */
	size_t sent_n;           /* the queries of that pipeline */
	bool dirty;              /* the migration's SQL ran on this session since its last
	                          * reset: it may have left session state behind */
	bool write_sent;         /* a history write was sent (pipeline, no sync) and not read yet */
	size_t write_n;          /* its queries (more than one with run_as) */

	bool begun_once;   /* a begin ran since enter (it read the history) */
	bool history_ok;   /* the history table exists (created or seen in this visit) */
	PGresult *history; /* history rows read by the first begin, not yet consumed */
	bool session_set;  /* session-level settings made for this visit */
	/* The versions in the tenant's history, as read in a transaction under
	 * the tenant's lock in this visit plus those written since: a version
	 * not among them is written with a plain INSERT (see history_write). */
	bool versions_known;
	dc_strbuf versions; /* each version followed by a NUL */

	classified cls[CLASSIFIED_MAX]; /* check_stmt's cache, filled round-robin */
	size_t cls_next;

	/* search_path as the last begin left it (read in its round trip): what the
	 * isolation check holds the transaction to, in every tenancy model */
	char *begin_search_path;
};

/*
 * Database and row models: set_config of the session's search_path as
 * resolved, without deployclaw's own schema (`local`: "true" for the
 * transaction, "false" for the session). The login role is often named
 * deployclaw, and "$user" then resolves to the schema holding the fleet's
 * state: a migration's unqualified CREATE TABLE would land next to
 * tenant_state, an unqualified DELETE FROM tenant_state would reach it.
 */
#define DC_PG_PATH_WITHOUT_OWN_SCHEMA(local)                                            \
	"set_config('search_path', (SELECT coalesce(string_agg(quote_ident(s), ', ' "   \
	"ORDER BY o), '') FROM unnest(current_schemas(false)) WITH ORDINALITY u(s, o) " \
	"WHERE s <> 'deployclaw'), " local ")"

/* One query of a pipeline. */
typedef struct pipe_q {
	const char *sql;
	int nparams;
	const char *const *params;
} pipe_q;

/* ------------------------------------------------------------------------ */
/* Errors (error.c): each fills `err` only while it is empty, so the first
 * failure survives, and returns `code`.                                    */

/* The entered tenant's id, or "?". */
const char *dc_pg__tenant_id(const dc_conn *c);
/* As dc_error_set_at, and names the tenant and the shard; `sqlstate` (NULL:
 * none) and `file` (NULL: no position) as dc_engine__vfail. */
int dc_pg__conn_fail(const dc_conn *c,
                     dc_error *err,
                     int code,
                     const char *sqlstate,
                     const char *file,
                     int line,
                     int col,
                     const char *fmt,
                     ...) DC_PRINTF(8, 9);
/* As dc_error_set for engine-level failures (no connection of a worker):
 * names the shard and keeps the SQLSTATE. */
int dc_pg__shard_fail(const dc_engine *e,
                      dc_error *err,
                      int code,
                      const char *sqlstate,
                      const char *fmt,
                      ...) DC_PRINTF(5, 6);
int dc_pg__oom(const dc_conn *c, dc_error *err);
bool dc_pg__conn_lost(const dc_conn *c);
/* DC_EDB, sqlstate 08006: the connection to the server was lost. */
int dc_pg__lost_fail(const dc_conn *c, dc_error *err);
/* Fills `err` from a failed result (NULL: the connection is gone):
 * SQLSTATE, the primary message and, for a user statement, its position in
 * the migration file; `what` (may be NULL) names deployclaw's own work. */
int dc_pg__res_fail(const dc_conn *c,
                    const PGresult *res,
                    const dc_statement *stmt,
                    const char *what,
                    dc_error *err);
/* A result that succeeded (with or without rows). */
bool dc_pg__res_ok(const PGresult *res);
/* The result's SQLSTATE, "" when it has none. */
const char *dc_pg__res_state(const PGresult *res);

/* ------------------------------------------------------------------------ */
/* Connections (connection.c)                                              */

/* Connects to the shard (or to `dbname` on it); 08001 on failure. */
int dc_pg__connect_db(dc_engine *e, const char *dbname, PGconn **out, dc_error *err);
/* The admin connection, connected on first use. Called with e->mu held. */
int dc_pg__admin_conn(dc_engine *e, PGconn **out, dc_error *err);
void dc_pg__drop_history_cache(dc_conn *c);
/* Forgets the current tenant (the connection stays). */
void dc_pg__leave(dc_conn *c);
/* Ends the session (and with it its advisory locks). */
void dc_pg__drop_connection(dc_conn *c);
/* Queues the session reset in the pipeline the connection is in (no sync),
 * counted in sent_n; false when the connection broke. */
bool dc_pg__send_reset(dc_conn *c);
/* (Re)connects when there is no usable connection, to the tenant's database
 * in the database model. */
int dc_pg__ensure_connection(dc_conn *c, dc_error *err);
/* DC_EINVAL without an entered tenant, 08006 without a connection. */
int dc_pg__need_tenant(const dc_conn *c, dc_error *err);
/* A transaction is open on the connection (also one in error). */
bool dc_pg__in_tx(const dc_conn *c);
int dc_pg__connect(dc_engine *e, dc_conn **out, dc_error *err);
void dc_pg__disconnect(dc_conn *c);
int dc_pg__enter(dc_conn *c, const dc_tenant *t, dc_error *err);

/* ------------------------------------------------------------------------ */
/* Pipeline mode (pipeline.c)                                              */

/* Reads the answers to an unlock (and reset) sent without waiting, not its
 * pipeline's end. */
void dc_pg__read_unlock(dc_conn *c);
/* Reads an unlock sent without waiting and leaves pipeline mode. */
void dc_pg__settle_unlock(dc_conn *c);
/* Frees the `n` results dc_pg__pipe_run kept. */
void dc_pg__pipe_clear(PGresult **keep, size_t n);
/* Every operation but enter and lock_tenant starts here: whatever was sent
 * without waiting is read first, and a lock deferred by lock_tenant is
 * taken. */
int dc_pg__settle(dc_conn *c, dc_error *err);
/* One round trip: sends `n` queries in pipeline mode and waits for all;
 * slot i of `keep` (may be NULL) receives query i's result when it
 * succeeded. With `behind_unlock` the queries go behind an unlock sent
 * without waiting, and its answer is read first. */
int dc_pg__pipe_run(dc_conn *c,
                    const pipe_q *q,
                    size_t n,
                    bool behind_unlock,
                    PGresult **keep,
                    const dc_statement *stmt,
                    size_t stmt_i,
                    dc_error *err);
/* One round trip inside the tenant's transaction, for deployclaw's own
 * queries before its commit: behind a history write sent without waiting
 * when there is one (its answer is read first and fails the call as the
 * write would), otherwise after dc_pg__settle. `keep` and failures as
 * dc_pg__pipe_run; `what` names the work in a failure. */
int dc_pg__pipe_run_tx(dc_conn *c,
                       const pipe_q *q,
                       size_t n,
                       PGresult **keep,
                       const char *what,
                       dc_error *err);
/* Runs one internal command without parameters. */
int dc_pg__run_simple(dc_conn *c, const char *sql, const char *what, dc_error *err);

/* ------------------------------------------------------------------------ */
/* The engine (pg.c) and discovery (discovery.c)                           */

int dc_pg__open(dc_engine **out, const dc_config *cfg, const dc_shard_config *shard, dc_error *err);
void dc_pg__close(dc_engine *e);
void dc_pg__set_run(dc_engine *e, const char *run_id);
/* Builds e->discover_sql and its parameters (dc_pg_tenants_sql). */
int dc_pg__discovery_prepare(dc_engine *e,
                             const dc_config *cfg,
                             const dc_shard_config *shard,
                             dc_error *err);
int dc_pg__discover(dc_engine *e, dc_tenant **tenants, size_t *n, dc_error *err);
/* Appends `s` to a text[] literal being built in `sb` (after "{"). */
void dc_pg__array_add(dc_strbuf *sb, const char *s);

/* ------------------------------------------------------------------------ */
/* tenancy.run_as (roles.c)                                                */

/* Keeps discovery's tenants and their roles (`owners`: the schema owners,
 * for run_as 'owner'; else NULL) for enter and the preflight. Called with
 * e->mu held. */
int dc_pg__roles_keep(dc_engine *e, const dc_tenant *tenants, char **owners, size_t n);
void dc_pg__roles_free(dc_engine *e);
/* Sets c->run_as for the tenant just entered (NULL when run_as is off). */
int dc_pg__roles_enter(dc_conn *c, dc_error *err);
/* DC_CHECK_ISOLATION over the shard: the run-as roles of `tenants` are isolated
 * (one query, on the admin connection). */
int dc_pg__roles_check(dc_engine *e,
                       const dc_tenant *tenants,
                       size_t n,
                       dc_strbuf *out,
                       size_t max_rows,
                       dc_error *err);

/* ------------------------------------------------------------------------ */
/* Locks (lock.c)                                                          */

/* The advisory lock key of a tenant of a shard. */
uint64_t dc_pg__tenant_key(const char *shard, const char *tenant);
/* `key` as the bigint PostgreSQL sees, in decimal. */
void dc_pg__key_text(char out[24], uint64_t key);
/* Takes the tenant's lock now, polling for at most `timeout_ms`. */
int dc_pg__lock_now(dc_conn *c, int64_t timeout_ms, dc_error *err);
int dc_pg__lock_tenant(dc_conn *c, int64_t timeout_ms, dc_error *err);
int dc_pg__unlock_tenant(dc_conn *c, dc_error *err);

/* ------------------------------------------------------------------------ */
/* Transactions (transaction.c)                                            */

/* Rolls back after a failed begin, so the connection is usable again. */
void dc_pg__abandon_tx(dc_conn *c);
int dc_pg__begin(dc_conn *c, dc_error *err);
int dc_pg__commit(dc_conn *c, dc_error *err);
int dc_pg__rollback(dc_conn *c, dc_error *err);

/* ------------------------------------------------------------------------ */
/* User statements (statement.c) and inspection (inspect.c)                */

/* Session settings for statements run outside a transaction, once per visit. */
int dc_pg__session_settings(dc_conn *c, dc_error *err);
int dc_pg__autocommit_only(const dc_statement *stmt, bool *out, dc_error *err);
int dc_pg__exec(dc_conn *c, const dc_statement *stmt, int64_t *rows, dc_error *err);
/* Runs a user's query (a verify assertion, query_text's) for the entered
 * tenant: settles the connection, makes the session settings outside a
 * transaction, and returns the result in `*out` (caller PQclears) or fills
 * `err` (with `stmt`'s position and `what`, both may be NULL). */
int dc_pg__user_query(dc_conn *c,
                      const char *sql,
                      const dc_statement *stmt,
                      const char *what,
                      PGresult **out,
                      dc_error *err);
int dc_pg__query_bool(dc_conn *c, const dc_statement *stmt, bool *out, dc_error *err);
int dc_pg__query_text(dc_conn *c, const char *sql, dc_strbuf *out, size_t max_rows, dc_error *err);
int dc_pg__schema_fingerprint(dc_conn *c, char out[65], dc_error *err);

/* ------------------------------------------------------------------------ */
/* Checks (check.c: which kind goes where; a file per kind)                */

int dc_pg__check(dc_conn *c,
                 dc_check_kind kind,
                 bool full,
                 dc_strbuf *out,
                 size_t max_rows,
                 dc_error *err);
int dc_pg__shard_check(dc_engine *e,
                       dc_check_kind kind,
                       const dc_tenant *tenants,
                       size_t n,
                       dc_strbuf *out,
                       size_t max_rows,
                       dc_error *err);
/* DC_CHECK_RLS in the tenant's open transaction (the whole database: the row
 * model's tenant is the shard's database). */
int dc_pg__rls_check(dc_conn *c, dc_strbuf *out, size_t max_rows, dc_error *err);
/* DC_CHECK_RLS over the shard, on the admin connection. */
int dc_pg__rls_shard_check(dc_engine *e, dc_strbuf *out, size_t max_rows, dc_error *err);
/* Runs `sql` (deployclaw's own, `nparams` text parameters) inside the open
 * transaction in one round trip (dc_pg__pipe_run_tx) and appends the first
 * column of each row, one per line, to `out`: at most `max_rows`. */
int dc_pg__check_query(dc_conn *c,
                       const char *sql,
                       int nparams,
                       const char *const *params,
                       const char *what,
                       dc_strbuf *out,
                       size_t max_rows,
                       dc_error *err);
/* isolation.c: the transaction stayed in the tenant's search_path, role
 * and (schema model) schema; with `full`, also in the catalogs. */
int dc_pg__check_isolation(dc_conn *c, bool full, dc_strbuf *out, size_t max_rows, dc_error *err);

/* ------------------------------------------------------------------------ */
/* History (history.c) and the state table (state.c)                      */

/* `head` <quoted schema>.deployclaw_history `tail` into `sb`; DC_ENOMEM. */
int dc_pg__history_sql(dc_conn *c, dc_strbuf *sb, const char *head, const char *tail);
/* Rows [first, first + n) of `res` as history rows; `state` selects the
 * layout of the state table's select. DC_EINVAL names a bad row's version
 * in `*bad_version` (heap). */
int dc_pg__history_rows(const PGresult *res,
                        int first,
                        int n,
                        bool state,
                        dc_history_row **out,
                        char **bad_version);
int dc_pg__history_ensure(dc_conn *c, dc_error *err);
int dc_pg__history_read(dc_conn *c, dc_history_row **rows, size_t *n, dc_error *err);
int dc_pg__history_write(dc_conn *c, const dc_history_row *row, dc_error *err);
/* Creates deployclaw.tenant_state once per engine (schema and row models). */
int dc_pg__ensure_state(dc_conn *c, dc_error *err);
int dc_pg__history_read_all(dc_engine *e,
                            const dc_tenant *tenants,
                            size_t n,
                            dc_history_row **rows,
                            size_t *counts,
                            char (*errors)[512],
                            dc_error *err);

/* ------------------------------------------------------------------------ */
/* Shard-scoped migrations (shard.c)                                       */

int dc_pg__shard_history_read(dc_engine *e, dc_history_row **rows, size_t *n, dc_error *err);
int dc_pg__shard_run(dc_engine *e,
                     const dc_migration *const *migs,
                     size_t n,
                     bool down,
                     const char *run_id,
                     const char *actor,
                     int64_t lock_timeout_ms,
                     bool *done,
                     dc_error *err);

#endif
