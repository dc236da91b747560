/*
 * The PostgreSQL engine (libpq): one dc_engine per shard, tenancy `schema`,
 * `database` or `row`.
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
 * - Notices (CREATE ... IF NOT EXISTS) are swallowed: library code never
 *   prints.
 * - Round trips per tenant (schema model, one transactional phase): lock,
 *   begin (BEGIN, settings, history table, history read: one pipeline), one
 *   per statement, verify assertions, history write + COMMIT (the write is
 *   sent without waiting; COMMIT is queued behind it and both answers are
 *   read at once; any other operation reads the write's answer first and
 *   fails as the write would), unlock. An
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
#include <deployclaw/util.h>

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

/* The tail of a history write after "WITH h AS (INSERT INTO <history>": the
 * history row, as a plain insert or an upsert, then the state row (pg_history_write). */
#define HISTORY_INSERT                                                                     \
	" (version, name, checksum, phase, status, started_at, finished_at, duration_ms, " \
	"run_id, actor) VALUES ($1, $2, $3, $4, $5, to_timestamp($6::float8 / 1000), "     \
	"to_timestamp($7::float8 / 1000), $8::int8, $9, $10)) "
#define HISTORY_UPSERT                                                                     \
	" AS t (version, name, checksum, phase, status, started_at, finished_at, "         \
	"duration_ms, run_id, actor) VALUES ($1, $2, $3, $4, $5, "                         \
	"to_timestamp($6::float8 / 1000), to_timestamp($7::float8 / 1000), $8::int8, $9, " \
	"$10) ON CONFLICT (version) DO UPDATE SET name = EXCLUDED.name, "                  \
	"checksum = EXCLUDED.checksum, phase = EXCLUDED.phase, status = EXCLUDED.status, " \
	"started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at, "           \
	"duration_ms = EXCLUDED.duration_ms, run_id = EXCLUDED.run_id, "                   \
	"actor = EXCLUDED.actor, written_at = clock_timestamp()) "
#define STATE_UPSERT                                                                           \
	"INSERT INTO deployclaw.tenant_state AS s (tenant, version, checksum, status, phase, " \
	"updated_at) VALUES ($11, $1, $3, $5, $4, clock_timestamp()) "                         \
	"ON CONFLICT (tenant, version) DO UPDATE SET checksum = EXCLUDED.checksum, "           \
	"status = EXCLUDED.status, phase = EXCLUDED.phase, updated_at = EXCLUDED.updated_at"

/* One statement: a plpgsql block so that an existing table needs no CREATE
 * privilege and the advisory lock is taken only when there is work. */
#define STATE_CREATE                                                                      \
	"DO $dc$ BEGIN IF to_regclass('deployclaw.tenant_state') IS NULL THEN "           \
	"PERFORM pg_advisory_xact_lock(" STATE_CREATE_KEY "); "                           \
	"CREATE SCHEMA IF NOT EXISTS deployclaw; "                                        \
	"CREATE TABLE IF NOT EXISTS deployclaw.tenant_state (tenant text, version text, " \
	"checksum text, status text, phase text, updated_at timestamptz, "                \
	"PRIMARY KEY (tenant, version)); END IF; END $dc$"

#define STATE_SELECT                                                                  \
	"SELECT tenant, version, checksum, phase, status, "                           \
	"(extract(epoch FROM updated_at) * 1000)::int8 FROM deployclaw.tenant_state " \
	"WHERE tenant = ANY($1::text[]) ORDER BY tenant, updated_at, version"

#define HOLDER_SELECT                                                                          \
	"SELECT a.application_name, a.pid, "                                                   \
	"extract(epoch FROM coalesce(a.xact_start, a.state_change, a.backend_start))::float8 " \
	"FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "                            \
	"WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1::oid "                 \
	"AND l.objid = $2::oid AND l.objsubid = 1 AND l.database = "                           \
	"(SELECT oid FROM pg_database WHERE datname = current_database()) "                    \
	"AND a.pid <> pg_backend_pid() LIMIT 1"

#define INVALID_INDEXES                                                     \
	"SELECT coalesce(array_agg(indexrelid), '{}')::text FROM pg_index " \
	"WHERE indrelid = to_regclass($1) AND NOT indisvalid"

#define NEW_INVALID_INDEXES                                                                    \
	"SELECT n.nspname, c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid " \
	"JOIN pg_namespace n ON n.oid = c.relnamespace WHERE i.indrelid = to_regclass($1) "    \
	"AND NOT i.indisvalid AND NOT i.indexrelid = ANY($2::oid[])"

/* Columns, indexes and constraints of the tenant's schema(s), one line each,
 * with search_path pinned to pg_catalog so the text does not depend on it. */
#define FINGERPRINT_SELECT                                                                    \
	"WITH ns AS (SELECT oid, nspname FROM pg_namespace WHERE CASE WHEN $1::text <> '' "   \
	"THEN nspname = $1::text ELSE nspname NOT IN ('pg_catalog', 'information_schema', "   \
	"'deployclaw') AND nspname NOT LIKE 'pg\\_toast%' AND nspname NOT LIKE 'pg\\_temp%' " \
	"END), rel AS (SELECT c.oid, c.relname, ns.nspname FROM pg_class c JOIN ns "          \
	"ON ns.oid = c.relnamespace WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') "            \
	"AND c.relname <> 'deployclaw_history') "                                             \
	"SELECT l FROM (SELECT format('column %s.%s.%s %s%s%s', r.nspname, r.relname, "       \
	"a.attname, format_type(a.atttypid, a.atttypmod), "                                   \
	"CASE WHEN a.attnotnull THEN ' not null' ELSE '' END, "                               \
	"coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')) AS l "                 \
	"FROM rel r JOIN pg_attribute a ON a.attrelid = r.oid LEFT JOIN pg_attrdef d "        \
	"ON d.adrelid = a.attrelid AND d.adnum = a.attnum "                                   \
	"WHERE a.attnum > 0 AND NOT a.attisdropped "                                          \
	"UNION ALL SELECT format('index %s.%s %s%s', r.nspname, r.relname, "                  \
	"pg_get_indexdef(i.indexrelid), CASE WHEN i.indisvalid THEN '' ELSE ' invalid' END) " \
	"FROM rel r JOIN pg_index i ON i.indrelid = r.oid "                                   \
	"UNION ALL SELECT format('constraint %s.%s.%s %s', r.nspname, r.relname, "            \
	"co.conname, pg_get_constraintdef(co.oid)) FROM rel r JOIN pg_constraint co "         \
	"ON co.conrelid = r.oid) s ORDER BY l COLLATE \"C\""

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

struct dc_engine {
	dc_tenancy_model model;
	char *shard;    /* the shard's name */
	char *conninfo; /* the shard's primary, as configured: may hold a password */
	char *pattern;
	char *query;
	char **list;
	size_t nlist;
	char lock_timeout[24]; /* milliseconds, as set_config wants them */
	char statement_timeout[24];
	char *app_name; /* "deployclaw/<run_id>" */

	pthread_mutex_t mu; /* guards admin and state_ready */
	PGconn *admin;      /* discovery, history_read_all, state table creation */
	bool state_ready;   /* deployclaw.tenant_state exists (schema and row models) */
};

struct dc_conn {
	dc_engine *engine;
	PGconn *pg;              /* NULL before the first enter in the database model */
	char *dbname;            /* database model: the database `pg` is connected to */
	const dc_tenant *tenant; /* borrowed until the next enter */
	char *qschema;           /* quoted schema of the history table */

	bool locked;
	uint64_t lock_key;
	bool lock_deferred;      /* lock_tenant returned; the lock is asked for with the
	                          * next begin (pg_begin) or before any other operation */
	int64_t lock_timeout_ms; /* lock_tenant's, for a deferred lock */
	bool unlock_sent;        /* an unlock was sent and its result not read yet */
	bool write_sent;         /* a history write was sent (pipeline, no sync) and not read yet */

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
};

/* One query of a pipeline. */
typedef struct pipe_q {
	const char *sql;
	int nparams;
	const char *const *params;
} pipe_q;

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */

static const char *tenant_id(const dc_conn *c)
{
	return c->tenant && c->tenant->id ? c->tenant->id : "?";
}

/* Copies `s` into `out` of `size` bytes, cut at a UTF-8 boundary. */
static void copy_cut(char *out, size_t size, const char *s)
{
	size_t len = s ? strlen(s) : 0;

	if (len >= size) {
		len = size - 1;
		while (len > 0 && ((unsigned char)s[len] & 0xC0) == 0x80)
			len--;
	}
	if (len)
		memcpy(out, s, len);
	out[len] = '\0';
}

/* As dc_error_set_at, and fills err->tenant, err->shard and (when not NULL)
 * err->sqlstate — all only when `err` is still empty. */
static int conn_vfail(const dc_conn *c,
                      dc_error *err,
                      int code,
                      const char *sqlstate,
                      const char *file,
                      int line,
                      int col,
                      const char *fmt,
                      va_list ap) DC_PRINTF(8, 0);

static int conn_vfail(const dc_conn *c,
                      dc_error *err,
                      int code,
                      const char *sqlstate,
                      const char *file,
                      int line,
                      int col,
                      const char *fmt,
                      va_list ap)
{
	if (!err || err->code != 0)
		return code;
	dc_error_vset(err, code, fmt, ap);
	if (file) {
		copy_cut(err->file, sizeof(err->file), file);
		err->line = line;
		err->col = col;
	}
	if (c->tenant && c->tenant->id)
		copy_cut(err->tenant, sizeof(err->tenant), c->tenant->id);
	copy_cut(err->shard, sizeof(err->shard), c->engine->shard);
	if (sqlstate)
		copy_cut(err->sqlstate, sizeof(err->sqlstate), sqlstate);
	return code;
}

DC_PRINTF(7, 8)

static int conn_fail(const dc_conn *c,
                     dc_error *err,
                     int code,
                     const char *file,
                     int line,
                     int col,
                     const char *fmt,
                     ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = conn_vfail(c, err, code, NULL, file, line, col, fmt, ap);
	va_end(ap);
	return ret;
}

DC_PRINTF(8, 9)

static int conn_fail_state(const dc_conn *c,
                           dc_error *err,
                           int code,
                           const char *sqlstate,
                           const char *file,
                           int line,
                           int col,
                           const char *fmt,
                           ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = conn_vfail(c, err, code, sqlstate, file, line, col, fmt, ap);
	va_end(ap);
	return ret;
}

/* As dc_error_set for engine-level failures (no connection of a worker):
 * names the shard and keeps the SQLSTATE. */
DC_PRINTF(5, 6)

static int shard_fail(const dc_engine *e,
                      dc_error *err,
                      int code,
                      const char *sqlstate,
                      const char *fmt,
                      ...)
{
	va_list ap;

	if (!err || err->code != 0)
		return code;
	va_start(ap, fmt);
	dc_error_vset(err, code, fmt, ap);
	va_end(ap);
	copy_cut(err->shard, sizeof(err->shard), e->shard);
	if (sqlstate)
		copy_cut(err->sqlstate, sizeof(err->sqlstate), sqlstate);
	return code;
}

static int oom(const dc_conn *c, dc_error *err)
{
	return conn_fail(c, err, DC_ENOMEM, NULL, 0, 0, "out of memory");
}

/* The first line of a libpq message, without "ERROR:  " and the newline. */
static void first_line(char *out, size_t size, const char *msg)
{
	size_t len;

	if (!msg)
		msg = "";
	if (strncmp(msg, "ERROR:  ", 8) == 0 || strncmp(msg, "FATAL:  ", 8) == 0)
		msg += 8;
	len = strcspn(msg, "\n");
	if (len >= size)
		len = size - 1;
	memcpy(out, msg, len);
	out[len] = '\0';
}

static bool conn_lost(const dc_conn *c)
{
	return !c->pg || PQstatus(c->pg) == CONNECTION_BAD;
}

static int lost_fail(const dc_conn *c, dc_error *err)
{
	char why[512];

	first_line(why, sizeof(why), c->pg ? PQerrorMessage(c->pg) : "");
	return conn_fail_state(c, err, DC_EDB, "08006", NULL, 0, 0,
	                       "tenant '%s' (shard '%s'): connection to the server lost%s%s",
	                       tenant_id(c), c->engine->shard, why[0] ? ": " : "", why);
}

/* The position of the 1-based character `pos` of `stmt->sql` in its file. */
static void stmt_position(const dc_statement *stmt, long pos, int *line, int *col)
{
	const char *s = stmt->sql;
	long chars = 0;
	int l = stmt->line, k = stmt->col;

	for (; s && *s && chars < pos - 1; s++) {
		unsigned char ch = (unsigned char)*s;

		if ((ch & 0xC0) == 0x80)
			continue;
		chars++;
		if (ch == '\n') {
			l++;
			k = 1;
		} else {
			k++;
		}
	}
	*line = l;
	*col = k;
}

/* Fills `err` from a failed result: SQLSTATE, the primary message and, for a
 * user statement, its position in the migration file. */
static int res_fail(const dc_conn *c,
                    const PGresult *res,
                    const dc_statement *stmt,
                    const char *what,
                    dc_error *err)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	const char *position = res ? PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION) : NULL;
	char msg[768];
	int line = 0, col = 0;

	if (conn_lost(c) || !res)
		return lost_fail(c, err);
	if (primary)
		copy_cut(msg, sizeof(msg), primary);
	else
		first_line(msg, sizeof(msg), PQresultErrorMessage(res));
	if (stmt) {
		line = stmt->line;
		col = stmt->col;
		if (position)
			stmt_position(stmt, strtol(position, NULL, 10), &line, &col);
	}
	return conn_fail_state(c, err, DC_EDB, state, stmt ? stmt->file : NULL, line, col,
	                       "tenant '%s' (shard '%s'): %s%s%s", tenant_id(c), c->engine->shard,
	                       what ? what : "", what ? ": " : "", msg);
}

static bool res_ok(const PGresult *res)
{
	ExecStatusType st = PQresultStatus(res);

	return res && (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK);
}

static const char *res_state(const PGresult *res)
{
	const char *s = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

	return s ? s : "";
}

/* ------------------------------------------------------------------------ */
/* Connections                                                              */

static void no_notices(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

/* Connects to the shard (or to `dbname` on it). On failure `err` names the
 * shard and the redacted conninfo, with sqlstate 08001. */
static int pg_connect(dc_engine *e, const char *dbname, PGconn **out, dc_error *err)
{
	const char *keys[4] = { "dbname", "application_name", NULL, NULL };
	const char *vals[4] = { NULL, NULL, NULL, NULL };
	PGconn *pg;
	char why[512];
	char *shown;
	int ret;

	*out = NULL;
	vals[0] = e->conninfo;
	vals[1] = e->app_name;
	if (dbname) {
		/* only the first dbname is expanded: this one is a plain name */
		keys[2] = "dbname";
		vals[2] = dbname;
	}
	pg = PQconnectdbParams(keys, vals, 1);
	if (!pg)
		return dc_error_set(err, DC_ENOMEM, "out of memory");
	if (PQstatus(pg) != CONNECTION_OK) {
		first_line(why, sizeof(why), PQerrorMessage(pg));
		PQfinish(pg);
		shown = dc_dsn_redact(e->conninfo);
		ret = shard_fail(e, err, DC_EDB, "08001",
		                 "shard '%s': cannot connect to '%s'%s%s%s: %s", e->shard,
		                 shown ? shown : "?", dbname ? " (database '" : "",
		                 dbname ? dbname : "", dbname ? "')" : "", why);
		free(shown);
		return ret;
	}
	PQsetNoticeProcessor(pg, no_notices, NULL);
	*out = pg;
	return 0;
}

/* The admin connection, connected on first use. Called with e->mu held. */
static int admin_conn(dc_engine *e, PGconn **out, dc_error *err)
{
	int ret;

	if (e->admin && PQstatus(e->admin) != CONNECTION_OK) {
		PQfinish(e->admin);
		e->admin = NULL;
	}
	if (!e->admin && (ret = pg_connect(e, NULL, &e->admin, err)) != 0)
		return ret;
	*out = e->admin;
	return 0;
}

static void drop_history_cache(dc_conn *c)
{
	PQclear(c->history);
	c->history = NULL;
}

/* Forgets the current tenant (the connection stays). */
static void leave(dc_conn *c)
{
	drop_history_cache(c);
	if (c->qschema)
		free(c->qschema);
	c->qschema = NULL;
	c->tenant = NULL;
	c->begun_once = false;
	c->history_ok = false;
	c->session_set = false;
	c->lock_deferred = false;
	c->versions_known = false;
	dc_strbuf_reset(&c->versions);
}

static void drop_connection(dc_conn *c)
{
	if (c->pg)
		PQfinish(c->pg); /* ends the session: its advisory locks go with it */
	c->pg = NULL;
	c->locked = false;
	c->lock_deferred = false;
	c->unlock_sent = false;
	c->begun_once = false;
	c->history_ok = false;
	c->session_set = false;
	drop_history_cache(c);
	free(c->dbname);
	c->dbname = NULL;
}

/* Reads the answer to an unlock sent without waiting (pg_unlock_tenant: in
 * pipeline mode, the query and its sync) but not its pipeline's end. */
static void read_unlock(dc_conn *c)
{
	PGresult *res;

	while ((res = PQgetResult(c->pg)) != NULL)
		PQclear(res);
	PQclear(PQgetResult(c->pg)); /* PGRES_PIPELINE_SYNC */
}

/* Reads the answer to an unlock sent without waiting and leaves pipeline
 * mode, so that the connection is idle again. Its outcome does not matter:
 * the unlock was fire-and-forget, and a session that broke released its
 * locks. The first try_lock of the next tenant reads it in its own round
 * trip instead. */
static void settle_unlock(dc_conn *c)
{
	if (!c->unlock_sent)
		return;
	c->unlock_sent = false;
	if (!c->pg || PQstatus(c->pg) != CONNECTION_OK)
		return;
	read_unlock(c);
	(void)PQexitPipelineMode(c->pg);
}

/* Frees the `n` results pipe_read kept. */
static void pipe_clear(PGresult **keep, size_t n)
{
	size_t i;

	for (i = 0; keep && i < n; i++) {
		PQclear(keep[i]);
		keep[i] = NULL;
	}
}

/*
 * Reads the answers to the `n` queries of a pipeline whose sync was sent,
 * then the sync, and leaves pipeline mode. `keep` (may be NULL) has `n`
 * slots: slot i receives the result of query i when it succeeded -- also
 * when another query failed -- and NULL otherwise; the caller frees them
 * (pipe_clear). The first failure fills `err` (with `stmt` for positions
 * when it is query `stmt_i`, and `what` naming the work). A query after a
 * failed one is skipped by the server (PGRES_PIPELINE_ABORTED), which is
 * not a failure of its own.
 */
static int pipe_read(dc_conn *c,
                     size_t n,
                     PGresult **keep,
                     const dc_statement *stmt,
                     size_t stmt_i,
                     const char *what,
                     dc_error *err)
{
	PGresult *res, *failed = NULL;
	size_t i, failed_i = 0;
	int ret = 0;

	for (i = 0; keep && i < n; i++)
		keep[i] = NULL;
	for (i = 0; i < n; i++) {
		res = PQgetResult(c->pg);
		if (!res) {
			ret = lost_fail(c, err);
			goto out;
		}
		if (PQresultStatus(res) == PGRES_FATAL_ERROR && !failed) {
			failed = res;
			failed_i = i;
		} else if (keep && res_ok(res)) {
			keep[i] = res;
		} else {
			PQclear(res);
		}
		/* each query's results end with NULL */
		while ((res = PQgetResult(c->pg)) != NULL)
			PQclear(res);
	}
	res = PQgetResult(c->pg);
	if (!res || PQresultStatus(res) != PGRES_PIPELINE_SYNC) {
		PQclear(res);
		if (!failed)
			ret = lost_fail(c, err);
		goto out;
	}
	PQclear(res);
out:
	(void)PQexitPipelineMode(c->pg);
	if (failed && ret == 0)
		ret = res_fail(c, failed, failed_i == stmt_i ? stmt : NULL, what, err);
	PQclear(failed);
	return ret;
}

/* Reads the answer to a history write sent without waiting (pg_history_write
 * inside a transaction): ends its pipeline with a sync, leaves pipeline mode,
 * and fails as the write would have. */
static int settle_write(dc_conn *c, dc_error *err)
{
	int ret;

	if (!c->write_sent)
		return 0;
	c->write_sent = false;
	if (conn_lost(c))
		return lost_fail(c, err);
	if (!PQpipelineSync(c->pg)) {
		ret = lost_fail(c, err);
		(void)PQexitPipelineMode(c->pg);
		return ret;
	}
	return pipe_read(c, 1, NULL, NULL, SIZE_MAX, "deployclaw_history", err);
}

/* Every operation but enter and lock_tenant starts here: whatever was sent
 * without waiting is read first, and a failed history write fails the
 * operation that follows it. */
static int lock_now(dc_conn *c, int64_t timeout_ms, dc_error *err);

static int settle(dc_conn *c, dc_error *err)
{
	int ret;

	settle_unlock(c);
	if ((ret = settle_write(c, err)) != 0)
		return ret;
	if (c->lock_deferred) {
		c->lock_deferred = false;
		return lock_now(c, c->lock_timeout_ms, err);
	}
	return 0;
}

/* (Re)connects when there is no usable connection, to the tenant's database
 * in the database model. */
static int ensure_connection(dc_conn *c, dc_error *err)
{
	const char *db = NULL;
	bool fresh;
	int ret;

	if (c->engine->model == DC_TENANCY_DATABASE) {
		if (!c->tenant)
			return conn_fail(c, err, DC_EINVAL, NULL, 0, 0,
			                 "no tenant entered on this connection");
		db = c->tenant->target;
		if (c->pg && c->dbname && strcmp(c->dbname, db) != 0)
			drop_connection(c);
	}
	if (c->pg && PQstatus(c->pg) == CONNECTION_OK)
		return 0;
	drop_connection(c);
	fresh = err && err->code == 0;
	if ((ret = pg_connect(c->engine, db, &c->pg, err)) != 0) {
		if (fresh && c->tenant)
			copy_cut(err->tenant, sizeof(err->tenant), c->tenant->id);
		return ret;
	}
	if (db && !(c->dbname = dc_strdup(db))) {
		drop_connection(c);
		return oom(c, err);
	}
	return 0;
}

static int need_tenant(const dc_conn *c, dc_error *err)
{
	if (!c->tenant)
		return conn_fail(c, err, DC_EINVAL, NULL, 0, 0,
		                 "no tenant entered on this connection");
	if (conn_lost(c))
		return lost_fail(c, err);
	return 0;
}

static bool in_tx(const dc_conn *c)
{
	PGTransactionStatusType st = PQtransactionStatus(c->pg);

	return st == PQTRANS_INTRANS || st == PQTRANS_INERROR || st == PQTRANS_ACTIVE;
}

/* One round trip: sends `n` queries in pipeline mode and waits for all
 * (pipe_read says what is kept, in `keep`'s n slots, and reported). With
 * `behind_unlock`, the connection is still in the pipeline of an unlock sent
 * without waiting (pg_unlock_tenant): the queries go behind it and its
 * answer is read first, one round trip for both. */
static int pipe_run(dc_conn *c,
                    const pipe_q *q,
                    size_t n,
                    bool behind_unlock,
                    PGresult **keep,
                    const dc_statement *stmt,
                    size_t stmt_i,
                    dc_error *err)
{
	size_t i;
	int ret;

	for (i = 0; keep && i < n; i++)
		keep[i] = NULL;
	if (!behind_unlock && !PQenterPipelineMode(c->pg))
		return res_fail(c, NULL, NULL, NULL, err);
	for (i = 0; i < n; i++)
		if (!PQsendQueryParams(c->pg, q[i].sql, q[i].nparams, NULL, q[i].params, NULL, NULL,
		                       0))
			break;
	if (i < n || !PQpipelineSync(c->pg)) {
		/* the connection is gone: nothing more can be read from it */
		ret = lost_fail(c, err);
		(void)PQexitPipelineMode(c->pg);
		return ret;
	}
	if (behind_unlock)
		read_unlock(c);
	return pipe_read(c, n, keep, stmt, stmt_i, NULL, err);
}

/* Runs one internal command without parameters. */
static int run_simple(dc_conn *c, const char *sql, const char *what, dc_error *err)
{
	PGresult *res = PQexec(c->pg, sql);
	int ret = res_ok(res) ? 0 : res_fail(c, res, NULL, what, err);

	PQclear(res);
	return ret;
}

/* ------------------------------------------------------------------------ */
/* Engine                                                                   */

static void pg_close(dc_engine *e)
{
	size_t i;

	if (!e)
		return;
	if (e->admin)
		PQfinish(e->admin);
	for (i = 0; i < e->nlist; i++)
		free(e->list[i]);
	free(e->list);
	free(e->shard);
	free(e->conninfo);
	free(e->pattern);
	free(e->query);
	free(e->app_name);
	pthread_mutex_destroy(&e->mu);
	free(e);
}

static int pg_open(dc_engine **out,
                   const dc_config *cfg,
                   const dc_shard_config *shard,
                   dc_error *err)
{
	dc_engine *e = NULL;
	size_t i;
	int ret = 0;

	*out = NULL;
	if (!shard || !shard->name)
		return dc_error_set(err, DC_ECONFIG,
		                    "shards: the postgres engine needs at least one shard");
	if (cfg->tenancy.model != DC_TENANCY_ROW && !cfg->tenancy.pattern && !cfg->tenancy.query &&
	    cfg->tenancy.nlist == 0)
		return dc_error_set(
		        err, DC_ECONFIG,
		        "tenancy: the postgres engine needs 'pattern', 'query' or 'list' to find the tenants");
	e = calloc(1, sizeof(*e));
	if (!e)
		return dc_error_set(err, DC_ENOMEM, "out of memory");
	if (pthread_mutex_init(&e->mu, NULL) != 0) {
		free(e);
		return dc_error_set(err, DC_ENOMEM, "cannot create a mutex");
	}
	e->model = cfg->tenancy.model;
	if (!(e->shard = dc_strdup(shard->name)) ||
	    !(e->conninfo = dc_strdup(shard->primary ? shard->primary : "")) ||
	    !(e->app_name = dc_strdup("deployclaw")))
		goto oom;
	if (cfg->tenancy.pattern && !(e->pattern = dc_strdup(cfg->tenancy.pattern)))
		goto oom;
	if (cfg->tenancy.query && !(e->query = dc_strdup(cfg->tenancy.query)))
		goto oom;
	if (cfg->tenancy.nlist) {
		e->list = dc_malloc_array(cfg->tenancy.nlist, sizeof(*e->list));
		if (!e->list)
			goto oom;
		for (i = 0; i < cfg->tenancy.nlist; i++) {
			if (!(e->list[i] = dc_strdup(cfg->tenancy.list[i])))
				goto oom;
			e->nlist++;
		}
	}
	snprintf(e->lock_timeout, sizeof(e->lock_timeout), "%lld",
	         (long long)(cfg->gates.lock_timeout_ms > 0 ? cfg->gates.lock_timeout_ms : 0));
	snprintf(e->statement_timeout, sizeof(e->statement_timeout), "%lld",
	         (long long)(cfg->gates.statement_timeout_ms > 0 ? cfg->gates.statement_timeout_ms
	                                                         : 0));
	*out = e;
	e = NULL;
	goto out;
oom:
	ret = dc_error_set(err, DC_ENOMEM, "out of memory");
out:
	pg_close(e);
	return ret;
}

static void pg_set_run(dc_engine *e, const char *run_id)
{
	dc_strbuf sb = DC_STRBUF_INIT;
	char *name;

	dc_strbuf_adds(&sb, "deployclaw/");
	dc_strbuf_adds(&sb, run_id ? run_id : "");
	name = dc_strbuf_detach(&sb, NULL);
	if (!name)
		return; /* out of memory: connections keep "deployclaw" */
	free(e->app_name);
	e->app_name = name;
}

/* ------------------------------------------------------------------------ */
/* Discovery                                                                */

/* Appends `s` to a text[] literal being built in `sb` (after "{"). */
static void array_add(dc_strbuf *sb, const char *s)
{
	if (sb->len > 1)
		dc_strbuf_addch(sb, ',');
	dc_strbuf_addch(sb, '"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			dc_strbuf_addch(sb, '\\');
		dc_strbuf_addch(sb, *s);
	}
	dc_strbuf_addch(sb, '"');
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Appends column 0 of every row of `res` to `names` (NULLs skipped). */
static int collect(dc_ptrvec *names, const PGresult *res)
{
	int i;

	for (i = 0; i < PQntuples(res); i++) {
		char *s;

		if (PQgetisnull(res, i, 0))
			continue;
		if (names->len >= MAX_TENANTS)
			return DC_ELIMIT;
		s = dc_strdup(PQgetvalue(res, i, 0));
		if (!s || dc_ptrvec_push(names, s) != 0) {
			free(s);
			return DC_ENOMEM;
		}
	}
	return 0;
}

static int discover_query(dc_engine *e,
                          PGconn *pg,
                          dc_ptrvec *names,
                          const char *sql,
                          int nparams,
                          const char *const *params,
                          const char *what,
                          dc_error *err)
{
	PGresult *res = PQexecParams(pg, sql, nparams, NULL, params, NULL, NULL, 0);
	char why[512];
	int ret = 0;

	if (!res_ok(res)) {
		if (res && PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY))
			copy_cut(why, sizeof(why),
			         PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY));
		else
			first_line(why, sizeof(why), PQerrorMessage(pg));
		ret = shard_fail(e, err, DC_EDB, res_state(res), "shard '%s': %s: %s", e->shard,
		                 what, why);
		goto out;
	}
	if (PQnfields(res) < 1) {
		ret = dc_error_set(err, DC_ECONFIG, "shard '%s': %s returned no column", e->shard,
		                   what);
		goto out;
	}
	ret = collect(names, res);
	if (ret == DC_ELIMIT)
		ret = dc_error_set(err, ret, "shard '%s': more than %zu tenants", e->shard,
		                   MAX_TENANTS);
	else if (ret)
		ret = dc_error_set(err, ret, "out of memory");
out:
	PQclear(res);
	return ret;
}

static int pg_discover(dc_engine *e, dc_tenant **tenants, size_t *n, dc_error *err)
{
	dc_ptrvec names = DC_PTRVEC_INIT;
	dc_strbuf arr = DC_STRBUF_INIT;
	dc_tenant *ts = NULL;
	PGconn *pg = NULL;
	size_t i, nt = 0;
	bool schema = e->model == DC_TENANCY_SCHEMA;
	int ret;

	*tenants = NULL;
	*n = 0;
	pthread_mutex_lock(&e->mu);
	if ((ret = admin_conn(e, &pg, err)) != 0)
		goto out;
	if (e->model == DC_TENANCY_ROW) {
		char *id = dc_strdup(e->shard);

		if (!id || dc_ptrvec_push(&names, id) != 0) {
			free(id);
			goto oom;
		}
	}
	if (e->model != DC_TENANCY_ROW && e->pattern) {
		const char *params[1] = { e->pattern };

		ret = discover_query(
		        e, pg, &names,
		        schema ? "SELECT nspname FROM pg_namespace WHERE nspname LIKE $1 "
		                 "AND nspname <> 'deployclaw' AND nspname <> 'information_schema' "
		                 "AND nspname NOT LIKE 'pg\\_%'"
		               : "SELECT datname FROM pg_database WHERE datname LIKE $1 "
		                 "AND datallowconn AND NOT datistemplate",
		        1, params, "tenancy.pattern", err);
		if (ret)
			goto out;
	}
	if (e->model != DC_TENANCY_ROW && e->query &&
	    (ret = discover_query(e, pg, &names, e->query, 0, NULL, "tenancy.query", err)) != 0)
		goto out;
	if (e->model != DC_TENANCY_ROW && e->nlist) {
		const char *params[1];

		/* a listed tenant lives on one shard: keep those that exist here */
		dc_strbuf_addch(&arr, '{');
		for (i = 0; i < e->nlist; i++)
			array_add(&arr, e->list[i]);
		dc_strbuf_addch(&arr, '}');
		if (dc_strbuf_error(&arr))
			goto oom;
		params[0] = arr.buf;
		ret = discover_query(
		        e, pg, &names,
		        schema ? "SELECT nspname FROM pg_namespace WHERE nspname = ANY($1::text[])"
		               : "SELECT datname FROM pg_database WHERE datname = ANY($1::text[]) "
		                 "AND datallowconn AND NOT datistemplate",
		        1, params, "tenancy.list", err);
		if (ret)
			goto out;
	}
	if (names.len == 0)
		goto out;
	qsort(names.items, names.len, sizeof(*names.items), cmp_str);
	ts = calloc(names.len, sizeof(*ts));
	if (!ts)
		goto oom;
	for (i = 0; i < names.len; i++) {
		dc_tenant *t;

		if (nt > 0 && strcmp(names.items[i], ts[nt - 1].id) == 0)
			continue; /* found by two of pattern, query and list */
		t = &ts[nt++];
		t->id = names.items[i];
		names.items[i] = NULL;
		t->shard = dc_strdup(e->shard);
		t->target = dc_strdup(e->model == DC_TENANCY_ROW ? PQdb(pg) : t->id);
		if (!t->shard || !t->target)
			goto oom;
	}
	*tenants = ts;
	*n = nt;
	ts = NULL;
	nt = 0;
	goto out;
oom:
	ret = dc_error_set(err, DC_ENOMEM, "out of memory");
out:
	pthread_mutex_unlock(&e->mu);
	dc_tenants_free(ts, nt);
	dc_ptrvec_release(&names, free);
	dc_strbuf_release(&arr);
	return ret;
}

/* ------------------------------------------------------------------------ */
/* Connections                                                              */

static int pg_connect_op(dc_engine *e, dc_conn **out, dc_error *err)
{
	dc_conn *c = calloc(1, sizeof(*c));
	int ret;

	*out = NULL;
	if (!c)
		return dc_error_set(err, DC_ENOMEM, "out of memory");
	c->engine = e;
	dc_strbuf_init(&c->versions, 0);
	/* the database model connects in enter, to the tenant's database */
	if (e->model != DC_TENANCY_DATABASE && (ret = pg_connect(e, NULL, &c->pg, err)) != 0) {
		dc_strbuf_release(&c->versions);
		free(c);
		return ret;
	}
	*out = c;
	return 0;
}

static void pg_disconnect(dc_conn *c)
{
	size_t i;

	if (!c)
		return;
	c->lock_deferred = false; /* never asked for: nothing to take */
	(void)settle(c, NULL);
	leave(c);
	drop_connection(c);
	for (i = 0; i < CLASSIFIED_MAX; i++)
		free(c->cls[i].sql);
	dc_strbuf_release(&c->versions);
	free(c);
}

static int pg_unlock_tenant(dc_conn *c, dc_error *err);

static int pg_enter(dc_conn *c, const dc_tenant *t, dc_error *err)
{
	char *q;
	int ret;

	/* no settle: the next tenant's try_lock reads a pending unlock (which is
	 * only ever sent outside a transaction) in its own round trip */
	if (c->pg && !c->unlock_sent && in_tx(c))
		return conn_fail(c, err, DC_EINVAL, NULL, 0, 0,
		                 "tenant '%s': a transaction is still open", tenant_id(c));
	leave(c);
	/* the rollout unlocks before it moves on; a lock left behind would
	 * outlive its tenant */
	if (c->locked)
		(void)pg_unlock_tenant(c, NULL);
	c->tenant = t;
	if ((ret = ensure_connection(c, err)) != 0)
		return ret;
	if (c->engine->model != DC_TENANCY_SCHEMA) {
		c->qschema = dc_strdup("public");
		return c->qschema ? 0 : oom(c, err);
	}
	q = PQescapeIdentifier(c->pg, t->target, strlen(t->target));
	if (!q)
		return conn_fail(c, err, DC_EINVAL, NULL, 0, 0, "tenant '%s' (shard '%s'): %s",
		                 t->id, c->engine->shard, PQerrorMessage(c->pg));
	c->qschema = dc_strdup(q);
	PQfreemem(q);
	return c->qschema ? 0 : oom(c, err);
}

/* ------------------------------------------------------------------------ */
/* Locks                                                                    */

static uint64_t fnv1a(uint64_t h, const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static uint64_t tenant_key(const char *shard, const char *tenant)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	/* the NUL separates ("ab", "c") from ("a", "bc") */
	h = fnv1a(h, shard, strlen(shard) + 1);
	h = fnv1a(h, tenant, strlen(tenant));
	return h;
}

static void key_text(char out[24], uint64_t key)
{
	int64_t k;

	memcpy(&k, &key, sizeof(k)); /* the bigint PostgreSQL sees */
	snprintf(out, 24, "%lld", (long long)k);
}

static int try_lock(dc_conn *c, const char *key, bool *got, dc_error *err)
{
	static const char sql[] = "SELECT pg_try_advisory_lock($1::bigint)";
	const char *params[1] = { key };
	PGresult *res;
	int ret = 0;

	*got = false;
	if (c->unlock_sent) {
		/* the previous tenant's unlock is still in flight, in pipeline
		 * mode: queue this behind it, one round trip for both */
		c->unlock_sent = false;
		if (!PQsendQueryParams(c->pg, sql, 1, NULL, params, NULL, NULL, 0) ||
		    !PQpipelineSync(c->pg)) {
			ret = lost_fail(c, err);
			(void)PQexitPipelineMode(c->pg);
			return ret;
		}
		read_unlock(c);
		res = PQgetResult(c->pg);
		if (res) {
			PGresult *end;

			while ((end = PQgetResult(c->pg)) != NULL)
				PQclear(end);
			PQclear(PQgetResult(c->pg)); /* PGRES_PIPELINE_SYNC */
		}
		(void)PQexitPipelineMode(c->pg);
	} else {
		res = PQexecParams(c->pg, sql, 1, NULL, params, NULL, NULL, 0);
	}
	if (!res_ok(res) || PQntuples(res) != 1)
		ret = res_fail(c, res, NULL, "advisory lock", err);
	else
		*got = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	return ret;
}

/* "application_name 'x', pid n, since HH:MM:SS" of the session holding the
 * tenant's advisory lock, or "" when it is gone. */
static void lock_holder(dc_conn *c, uint64_t key, char *out, size_t size)
{
	char classid[16], objid[16], when[16] = "";
	const char *params[2] = { classid, objid };
	PGresult *res;

	out[0] = '\0';
	snprintf(classid, sizeof(classid), "%u", (unsigned)(key >> 32));
	snprintf(objid, sizeof(objid), "%u", (unsigned)(key & 0xffffffffu));
	res = PQexecParams(c->pg, HOLDER_SELECT, 2, NULL, params, NULL, NULL, 0);
	if (res_ok(res) && PQntuples(res) == 1) {
		dc_strbuf sb = DC_STRBUF_INIT;

		if (!PQgetisnull(res, 0, 2)) {
			time_t t = (time_t)strtod(PQgetvalue(res, 0, 2), NULL);
			struct tm tm;

			if (localtime_r(&t, &tm))
				strftime(when, sizeof(when), "%H:%M:%S", &tm);
		}
		dc_strbuf_addf(&sb, "application_name '%s', pid %s", PQgetvalue(res, 0, 0),
		               PQgetvalue(res, 0, 1));
		if (when[0])
			dc_strbuf_addf(&sb, ", since %s", when);
		if (!dc_strbuf_error(&sb))
			copy_cut(out, size, sb.buf);
		dc_strbuf_release(&sb);
	}
	PQclear(res);
}

/* DC_ELOCKED for the tenant, naming the session that holds its lock. */
static int locked_fail(dc_conn *c, int64_t timeout_ms, dc_error *err)
{
	char holder[400], waited[32];

	lock_holder(c, tenant_key(c->engine->shard, c->tenant->id), holder, sizeof(holder));
	dc_duration_format(waited, sizeof(waited), timeout_ms > 0 ? timeout_ms : 0);
	return conn_fail(c, err, DC_ELOCKED, NULL, 0, 0,
	                 "tenant '%s' (shard '%s') is locked by another deployclaw process%s%s; "
	                 "waited %s",
	                 c->tenant->id, c->engine->shard, holder[0] ? ": " : "", holder, waited);
}

/* Takes the tenant's session advisory lock, polling while another session
 * holds it, for at most `timeout_ms`. */
static int lock_now(dc_conn *c, int64_t timeout_ms, dc_error *err)
{
	char key[24];
	int64_t deadline;
	uint64_t k;
	bool got = false;
	int ret;

	if ((ret = need_tenant(c, err)) != 0)
		return ret;
	if (c->locked)
		return 0;
	k = tenant_key(c->engine->shard, c->tenant->id);
	key_text(key, k);
	deadline = dc_time_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	for (;;) {
		if ((ret = try_lock(c, key, &got, err)) != 0)
			return ret;
		if (got)
			break;
		if (dc_time_mono_ms() >= deadline) {
			return locked_fail(c, timeout_ms, err);
		} else {
			int64_t left = deadline - dc_time_mono_ms();
			struct timespec ts = { 0, 0 };

			if (left > LOCK_POLL_MS)
				left = LOCK_POLL_MS;
			ts.tv_nsec = (long)((left > 0 ? left : 1) * 1000000);
			nanosleep(&ts, NULL);
		}
	}
	c->locked = true;
	c->lock_key = k;
	return 0;
}

/*
 * Outside a transaction the lock is not taken here but deferred: the begin
 * that follows (the rollout's next step) asks for it in the same round trip
 * as BEGIN and the tenant's settings, and any other operation takes it
 * first (settle). Either way nothing runs on the tenant before the lock is
 * held, and a lock that cannot be had fails that operation with DC_ELOCKED.
 */
static int pg_lock_tenant(dc_conn *c, int64_t timeout_ms, dc_error *err)
{
	int ret;

	if ((ret = need_tenant(c, err)) != 0)
		return ret;
	if (c->locked || c->lock_deferred)
		return 0;
	if (!c->write_sent && (c->unlock_sent || !in_tx(c))) {
		c->lock_deferred = true;
		c->lock_timeout_ms = timeout_ms;
		return 0;
	}
	return lock_now(c, timeout_ms, err);
}

static int pg_unlock_tenant(dc_conn *c, dc_error *err)
{
	char key[24];
	const char *params[1] = { key };
	PGresult *res;
	int ret = 0;

	c->lock_deferred = false; /* never asked for */
	(void)settle(c, NULL);

	if (!c->locked)
		return 0;
	c->locked = false;
	if (conn_lost(c))
		return 0; /* the session ended: the server released its locks */
	key_text(key, c->lock_key);
	if (!err && !in_tx(c)) {
		/* nobody reads the outcome: send it (flushed by the sync: the
		 * server releases the lock as soon as it reads it) and read the
		 * answer later -- with the next tenant's try_lock, one round trip
		 * for both, or in settle before any other operation */
		if (PQenterPipelineMode(c->pg) &&
		    PQsendQueryParams(c->pg, "SELECT pg_advisory_unlock($1::bigint)", 1, NULL,
		                      params, NULL, NULL, 0) &&
		    PQpipelineSync(c->pg)) {
			c->unlock_sent = true;
			return 0;
		}
		(void)PQexitPipelineMode(c->pg);
		return res_fail(c, NULL, NULL, "advisory unlock", err);
	}
	res = PQexecParams(c->pg, "SELECT pg_advisory_unlock($1::bigint)", 1, NULL, params, NULL,
	                   NULL, 0);
	if (!res_ok(res))
		ret = res_fail(c, res, NULL, "advisory unlock", err);
	PQclear(res);
	return ret;
}

/* ------------------------------------------------------------------------ */
/* Transactions                                                             */

/* Creates deployclaw.tenant_state once per engine (schema and row models),
 * on the admin connection, in a transaction of its own. */
static int ensure_state(dc_conn *c, dc_error *err)
{
	dc_engine *e = c->engine;
	PGconn *pg = NULL;
	PGresult *res = NULL;
	int ret = 0;

	if (e->model == DC_TENANCY_DATABASE)
		return 0; /* created by the tenant's first begin, in its database */
	pthread_mutex_lock(&e->mu);
	if (e->state_ready)
		goto out;
	if ((ret = admin_conn(e, &pg, err)) != 0)
		goto out;
	res = PQexec(pg, STATE_CREATE);
	if (!res_ok(res)) {
		char why[512];

		first_line(why, sizeof(why), PQresultErrorMessage(res));
		ret = conn_fail_state(c, err, DC_EDB, res_state(res), NULL, 0, 0,
		                      "shard '%s': cannot create deployclaw.tenant_state: %s",
		                      e->shard, why);
		goto out;
	}
	e->state_ready = true;
out:
	PQclear(res);
	pthread_mutex_unlock(&e->mu);
	return ret;
}

static int history_sql(dc_conn *c, dc_strbuf *sb, const char *head, const char *tail)
{
	dc_strbuf_reset(sb);
	dc_strbuf_adds(sb, head);
	dc_strbuf_adds(sb, c->qschema);
	dc_strbuf_adds(sb, ".deployclaw_history");
	dc_strbuf_adds(sb, tail);
	return dc_strbuf_error(sb);
}

/* Rolls back after a failed begin, so the connection is usable again. */
static void abandon_tx(dc_conn *c)
{
	PGresult *res;

	if (conn_lost(c) || !in_tx(c))
		return;
	res = PQexec(c->pg, "ROLLBACK");
	PQclear(res);
}

/*
 * BEGIN and the tenant's settings, in one round trip. The first begin after
 * enter also creates the history table when missing (and, in the database
 * model, the tenant database's state table) and reads the history, which
 * history_read then returns without asking again. A lock deferred by
 * lock_tenant is asked for in the same round trip (pg_try_advisory_lock
 * beside the settings); when another session holds it, the transaction is
 * rolled back -- nothing of it ran under the lock -- and the lock is waited
 * for as lock_tenant would, then the begin runs again.
 */
static int pg_begin(dc_conn *c, dc_error *err)
{
	dc_engine *e = c->engine;
	dc_strbuf create = DC_STRBUF_INIT, select = DC_STRBUF_INIT;
	const char *settings[5];
	char key[24];
	pipe_q q[6];
	PGresult *kept[6], *rows = NULL;
	size_t n = 0, keep = SIZE_MAX, lock_i = SIZE_MAX;
	bool was_locked = c->locked, first = !c->begun_once, fold = c->lock_deferred;
	bool err_empty = !err || err->code == 0;
	bool behind_unlock = c->unlock_sent && c->pg && PQstatus(c->pg) == CONNECTION_OK;
	int64_t lock_timeout_ms = c->lock_timeout_ms;
	int ret;

	if (!c->tenant)
		return conn_fail(c, err, DC_EINVAL, NULL, 0, 0,
		                 "no tenant entered on this connection");
	/* the lock is taken below, not by settle; the previous tenant's unlock
	 * (sent only outside a transaction) is read with this begin's answers,
	 * or by settle when this begin fails before it sends them */
	c->lock_deferred = false;
	if (behind_unlock)
		c->unlock_sent = false;
	if ((ret = settle(c, err)) != 0)
		goto out;
	if (conn_lost(c)) {
		/* reconnect; a session lock did not survive the old session */
		if (behind_unlock)
			(void)PQexitPipelineMode(c->pg);
		behind_unlock = false;
		drop_connection(c);
		if ((ret = ensure_connection(c, err)) != 0)
			return ret;
		first = true;
		if (was_locked && (ret = lock_now(c, 0, err)) != 0)
			return ret;
	}
	if (!behind_unlock && in_tx(c))
		return conn_fail(c, err, DC_EINVAL, NULL, 0, 0,
		                 "tenant '%s': a transaction is already open", tenant_id(c));
	if (first && (ret = ensure_state(c, err)) != 0)
		goto out;
	settings[0] = e->lock_timeout;
	settings[1] = e->statement_timeout;
	settings[2] = c->tenant->id;
	/* the lock's key follows the settings: $5 with a search_path, else $4 */
	settings[3] = e->model == DC_TENANCY_SCHEMA ? c->qschema : key;
	settings[4] = key;
	c->lock_key = tenant_key(e->shard, c->tenant->id);
	key_text(key, c->lock_key);
	q[n++] = (pipe_q){ "BEGIN", 0, NULL };
	if (fold) {
		/* the lock first: a session lock, held past this transaction */
		lock_i = n;
		if (e->model == DC_TENANCY_SCHEMA)
			q[n++] = (pipe_q){ "SELECT pg_try_advisory_lock($5::bigint), "
				           "set_config('lock_timeout', $1, true), "
				           "set_config('statement_timeout', $2, true), "
				           "set_config('deployclaw.tenant', $3, true), "
				           "set_config('search_path', $4, true)",
				           5, settings };
		else
			q[n++] = (pipe_q){ "SELECT pg_try_advisory_lock($4::bigint), "
				           "set_config('lock_timeout', $1, true), "
				           "set_config('statement_timeout', $2, true), "
				           "set_config('deployclaw.tenant', $3, true)",
				           4, settings };
	} else if (e->model == DC_TENANCY_SCHEMA) {
		q[n++] = (pipe_q){ "SELECT set_config('lock_timeout', $1, true), "
			           "set_config('statement_timeout', $2, true), "
			           "set_config('deployclaw.tenant', $3, true), "
			           "set_config('search_path', $4, true)",
			           4, settings };
	} else {
		q[n++] = (pipe_q){ "SELECT set_config('lock_timeout', $1, true), "
			           "set_config('statement_timeout', $2, true), "
			           "set_config('deployclaw.tenant', $3, true)",
			           3, settings };
	}
	if (first) {
		if (history_sql(c, &create, "CREATE TABLE IF NOT EXISTS ", " " HISTORY_COLUMNS) ||
		    history_sql(c, &select, "SELECT " HISTORY_FIELDS " FROM ",
		                " ORDER BY written_at, version")) {
			ret = oom(c, err);
			goto out;
		}
		if (e->model == DC_TENANCY_DATABASE)
			q[n++] = (pipe_q){ STATE_CREATE, 0, NULL };
		q[n++] = (pipe_q){ create.buf, 0, NULL };
		keep = n;
		q[n++] = (pipe_q){ select.buf, 0, NULL };
	}
	ret = pipe_run(c, q, n, behind_unlock, kept, NULL, 0, err);
	behind_unlock = false; /* read */
	if (keep != SIZE_MAX) {
		rows = kept[keep];
		kept[keep] = NULL;
	}
	if (fold) {
		PGresult *lr = kept[lock_i];

		if (lr && PQntuples(lr) == 1 && strcmp(PQgetvalue(lr, 0, 0), "f") == 0) {
			/* held by another session: undo what ran without the lock,
			 * wait for it, and begin again holding it */
			pipe_clear(kept, n);
			PQclear(rows);
			rows = NULL;
			abandon_tx(c);
			if (err_empty && err)
				dc_error_clear(err);
			if ((ret = lock_now(c, lock_timeout_ms, err)) == 0)
				ret = pg_begin(c, err);
			goto out;
		}
		/* granted -- or the statement failed after the lock was taken,
		 * which a session lock survives: unlock_tenant releases it
		 * either way (an unlock of a lock not held only warns) */
		c->locked = true;
	}
	pipe_clear(kept, n);
	if (ret != 0) {
		abandon_tx(c);
		goto out;
	}
	c->begun_once = true;
	if (first) {
		drop_history_cache(c);
		c->history = rows;
		c->history_ok = true;
		rows = NULL;
	}
out:
	if (behind_unlock)
		c->unlock_sent = true; /* not read: settle reads it */
	PQclear(rows);
	dc_strbuf_release(&create);
	dc_strbuf_release(&select);
	return ret;
}

/*
 * COMMIT queued behind the history write sent without waiting: one round
 * trip for both. A failed write aborts the pipeline (the COMMIT is skipped,
 * the transaction stays open in error for the caller's rollback) and is
 * the error reported. Returns the COMMIT's result, or NULL with `err` set.
 */
static PGresult *commit_behind_write(dc_conn *c, int *ret, dc_error *err)
{
	PGresult *res, *failed = NULL, *commit = NULL;

	c->write_sent = false;
	if (!PQsendQueryParams(c->pg, "COMMIT", 0, NULL, NULL, NULL, NULL, 0) ||
	    !PQpipelineSync(c->pg)) {
		*ret = lost_fail(c, err);
		(void)PQexitPipelineMode(c->pg);
		return NULL;
	}
	/* the write's result, then the COMMIT's (aborted after a failed write) */
	for (int i = 0; i < 2; i++) {
		if (!(res = PQgetResult(c->pg))) {
			*ret = lost_fail(c, err);
			break;
		}
		if (i == 0 && !res_ok(res))
			failed = res;
		else if (i == 1 && !failed)
			commit = res;
		else
			PQclear(res);
		while ((res = PQgetResult(c->pg)) != NULL)
			PQclear(res);
	}
	PQclear(PQgetResult(c->pg)); /* PGRES_PIPELINE_SYNC */
	(void)PQexitPipelineMode(c->pg);
	if (failed && *ret == 0)
		*ret = res_fail(c, failed, NULL, "deployclaw_history", err);
	PQclear(failed);
	if (*ret != 0) {
		PQclear(commit);
		return NULL;
	}
	return commit;
}

static int pg_commit(dc_conn *c, dc_error *err)
{
	PGresult *res;
	int ret = 0;

	if (c->write_sent && !conn_lost(c)) {
		settle_unlock(c);
		drop_history_cache(c);
		if (!(res = commit_behind_write(c, &ret, err)))
			return ret;
	} else {
		if ((ret = settle(c, err)) != 0)
			return ret;
		if ((ret = need_tenant(c, err)) != 0)
			return ret;
		if (!in_tx(c))
			return conn_fail(c, err, DC_EDB, NULL, 0, 0,
			                 "tenant '%s' (shard '%s'): no transaction to commit",
			                 tenant_id(c), c->engine->shard);
		drop_history_cache(c);
		res = PQexec(c->pg, "COMMIT");
	}
	if (!res_ok(res))
		ret = res_fail(c, res, NULL, "commit", err);
	else if (strcmp(PQcmdStatus(res), "ROLLBACK") == 0) {
		/* COMMIT of a failed transaction rolls back without an error */
		c->history_ok = false;
		ret = conn_fail(
		        c, err, DC_EDB, NULL, 0, 0,
		        "tenant '%s' (shard '%s'): the transaction failed earlier and was rolled back",
		        tenant_id(c), c->engine->shard);
	}
	PQclear(res);
	return ret;
}

static int pg_rollback(dc_conn *c, dc_error *err)
{
	int ret;

	(void)settle(c, NULL); /* a failed history write is rolled back with the rest */

	drop_history_cache(c);
	c->history_ok = false; /* the transaction may have created the table */
	if (!c->tenant || conn_lost(c) || !in_tx(c))
		return 0; /* nothing open: a lost session was rolled back by the server */
	ret = run_simple(c, "ROLLBACK", "rollback", err);
	return ret;
}

/* ------------------------------------------------------------------------ */
/* User statements                                                          */

/* Session settings for statements run outside a transaction, once per
 * tenant visit (inside one, begin's SET LOCAL values win). */
static int session_settings(dc_conn *c, dc_error *err)
{
	dc_engine *e = c->engine;
	const char *params[4] = { e->lock_timeout, e->statement_timeout, c->tenant->id,
		                  c->qschema };
	PGresult *res;
	int ret = 0;

	if (c->session_set)
		return 0;
	res = PQexecParams(c->pg,
	                   e->model == DC_TENANCY_SCHEMA
	                           ? "SELECT set_config('lock_timeout', $1, false), "
	                             "set_config('statement_timeout', $2, false), "
	                             "set_config('deployclaw.tenant', $3, false), "
	                             "set_config('search_path', $4, false)"
	                           : "SELECT set_config('lock_timeout', $1, false), "
	                             "set_config('statement_timeout', $2, false), "
	                             "set_config('deployclaw.tenant', $3, false)",
	                   e->model == DC_TENANCY_SCHEMA ? 4 : 3, NULL, params, NULL, NULL, 0);
	if (res_ok(res))
		c->session_set = true;
	else
		ret = res_fail(c, res, NULL, "session settings", err);
	PQclear(res);
	return ret;
}

/* dc_pg_classify of a user statement, with a syntax error placed in the
 * statement's file. */
static int classify_stmt(const dc_statement *stmt, dc_pg_stmt_info *info, dc_error *err)
{
	bool fresh = err && err->code == 0; /* the first error survives */
	int ret = dc_pg_classify(stmt->sql ? stmt->sql : "", info, err);

	if (ret != 0 && fresh) {
		int l = err->line, k = err->col;

		copy_cut(err->file, sizeof(err->file), stmt->file);
		err->line = l > 1 ? stmt->line + l - 1 : stmt->line;
		err->col = l > 1 ? k : stmt->col + (k > 0 ? k - 1 : 0);
	}
	return ret;
}

static int pg_autocommit_only(const dc_statement *stmt, bool *out, dc_error *err)
{
	dc_pg_stmt_info info;
	int ret = classify_stmt(stmt, &info, err);

	*out = ret == 0 && info.autocommit_only;
	return ret;
}

/* The table of a CREATE INDEX CONCURRENTLY as to_regclass reads it. */
static int cic_table(dc_conn *c, const dc_pg_stmt_info *info, dc_strbuf *out)
{
	char *q;

	dc_strbuf_reset(out);
	if (info->schema[0]) {
		q = PQescapeIdentifier(c->pg, info->schema, strlen(info->schema));
		if (!q)
			return DC_ENOMEM;
		dc_strbuf_adds(out, q);
		dc_strbuf_addch(out, '.');
		PQfreemem(q);
	}
	q = PQescapeIdentifier(c->pg, info->table_name, strlen(info->table_name));
	if (!q)
		return DC_ENOMEM;
	dc_strbuf_adds(out, q);
	PQfreemem(q);
	return dc_strbuf_error(out);
}

/* The INVALID indexes of the table, as an oid[] literal; "{}" on any error
 * (then nothing is spared: the cleanup keys on names too). */
static char *invalid_indexes(dc_conn *c, const char *table)
{
	const char *params[1] = { table };
	PGresult *res = PQexecParams(c->pg, INVALID_INDEXES, 1, NULL, params, NULL, NULL, 0);
	char *s = NULL;

	if (res_ok(res) && PQntuples(res) == 1)
		s = dc_strdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	return s;
}

/* After a failed CREATE INDEX CONCURRENTLY: drops the INVALID index it left
 * (any invalid index of the table that was not there before). A failure to
 * clean up is appended to the statement's error message. */
static void cic_cleanup(dc_conn *c, const char *table, const char *before, dc_error *err)
{
	const char *params[2] = { table, before };
	dc_strbuf sql = DC_STRBUF_INIT;
	PGresult *res, *drop = NULL;
	char why[300] = "";
	int i;

	res = PQexecParams(c->pg, NEW_INVALID_INDEXES, 2, NULL, params, NULL, NULL, 0);
	if (!res_ok(res)) {
		first_line(why, sizeof(why), PQresultErrorMessage(res));
		goto out;
	}
	for (i = 0; i < PQntuples(res) && !why[0]; i++) {
		const char *ns = PQgetvalue(res, i, 0), *name = PQgetvalue(res, i, 1);
		char *qn = PQescapeIdentifier(c->pg, ns, strlen(ns));
		char *qi = PQescapeIdentifier(c->pg, name, strlen(name));

		dc_strbuf_reset(&sql);
		dc_strbuf_adds(&sql, "DROP INDEX CONCURRENTLY IF EXISTS ");
		dc_strbuf_adds(&sql, qn ? qn : "");
		dc_strbuf_addch(&sql, '.');
		dc_strbuf_adds(&sql, qi ? qi : "");
		if (qn && qi && !dc_strbuf_error(&sql)) {
			drop = PQexec(c->pg, sql.buf);
			if (!res_ok(drop))
				first_line(why, sizeof(why), PQresultErrorMessage(drop));
			PQclear(drop);
		} else {
			copy_cut(why, sizeof(why), "out of memory");
		}
		PQfreemem(qn);
		PQfreemem(qi);
	}
out:
	if (why[0] && err && err->code != 0) {
		size_t len = strlen(err->message);
		dc_strbuf sb = DC_STRBUF_INIT;

		dc_strbuf_addf(&sb, "; dropping the INVALID index it left failed too: %s", why);
		if (!dc_strbuf_error(&sb))
			copy_cut(err->message + len, sizeof(err->message) - len, sb.buf);
		dc_strbuf_release(&sb);
	}
	PQclear(res);
	dc_strbuf_release(&sql);
}

/* Classifies a user statement and refuses what cannot run where it is. */
/* classify_stmt through the connection's cache: a statement is parsed once
 * per worker, not once per tenant. Only successes are kept (an error is
 * reported again, with its position, each time). */
static int classify_cached(dc_conn *c,
                           const dc_statement *stmt,
                           dc_pg_stmt_info *info,
                           dc_error *err)
{
	const char *sql = stmt->sql ? stmt->sql : "";
	classified *slot;
	size_t i;
	int ret;

	for (i = 0; i < CLASSIFIED_MAX; i++)
		if (c->cls[i].stmt == stmt && c->cls[i].sql && strcmp(c->cls[i].sql, sql) == 0) {
			*info = c->cls[i].info;
			return 0;
		}
	if ((ret = classify_stmt(stmt, info, err)) != 0)
		return ret;
	slot = &c->cls[c->cls_next];
	c->cls_next = (c->cls_next + 1) % CLASSIFIED_MAX;
	free(slot->sql);
	slot->stmt = stmt;
	slot->sql = dc_strdup(sql); /* NULL (out of memory): simply not cached */
	slot->info = *info;
	return 0;
}

static int check_stmt(dc_conn *c, const dc_statement *stmt, dc_pg_stmt_info *info, dc_error *err)
{
	int ret;

	/* parsed once per statement and connection (classify_cached) */
	if ((ret = classify_cached(c, stmt, info, err)) != 0)
		return ret;
	if (info->is_transaction_control)
		return conn_fail(
		        c, err, DC_EINVAL, stmt->file, stmt->line, stmt->col,
		        "tenant '%s': %s inside a migration: deployclaw manages the transaction",
		        tenant_id(c), info->what);
	if (info->autocommit_only && in_tx(c))
		return conn_fail(
		        c, err, DC_EINVAL, stmt->file, stmt->line, stmt->col,
		        "tenant '%s': %s cannot run inside a transaction: put it in a phase with `transaction: false`",
		        tenant_id(c), info->what);
	if (info->autocommit_only && info->nstmts > 1)
		return conn_fail(c, err, DC_EINVAL, stmt->file, stmt->line, stmt->col,
		                 "tenant '%s': %s must be a statement of its own", tenant_id(c),
		                 info->what);
	return 0;
}

static bool counts_rows(const char *status)
{
	static const char *const dml[] = { "INSERT ", "UPDATE ", "DELETE ", "MERGE ", "COPY " };
	size_t i;

	for (i = 0; i < sizeof(dml) / sizeof(dml[0]); i++)
		if (strncmp(status, dml[i], strlen(dml[i])) == 0)
			return true;
	return false;
}

static int pg_exec(dc_conn *c, const dc_statement *stmt, int64_t *rows, dc_error *err)
{
	dc_pg_stmt_info info;
	dc_strbuf table = DC_STRBUF_INIT;
	char *before = NULL;
	PGresult *res = NULL;
	const char *state;
	int ret;

	if ((ret = settle(c, err)) != 0)
		return ret;

	if (rows)
		*rows = 0;
	if ((ret = need_tenant(c, err)) != 0)
		return ret;
	if ((ret = check_stmt(c, stmt, &info, err)) != 0)
		return ret;
	drop_history_cache(c); /* the statement may write the history */
	if (!in_tx(c) && (ret = session_settings(c, err)) != 0)
		return ret;
	if (info.create_index_concurrently && info.table_name[0]) {
		if (cic_table(c, &info, &table) != 0) {
			ret = oom(c, err);
			goto out;
		}
		before = invalid_indexes(c, table.buf);
	}
	res = PQexec(c->pg, stmt->sql);
	if (!res_ok(res)) {
		ret = res_fail(c, res, stmt, NULL, err);
		state = res_state(res);
		/* 42P07: the name was taken before; that index is not ours to drop */
		if (info.create_index_concurrently && before && !conn_lost(c) &&
		    strcmp(state, "42P07") != 0)
			cic_cleanup(c, table.buf, before, err);
		goto out;
	}
	if (rows && counts_rows(PQcmdStatus(res)))
		*rows = strtoll(PQcmdTuples(res), NULL, 10);
out:
	PQclear(res);
	free(before);
	dc_strbuf_release(&table);
	return ret;
}

static bool truthy(const char *s)
{
	char *end;
	double d;

	if (strcasecmp(s, "t") == 0 || strcasecmp(s, "true") == 0)
		return true;
	d = strtod(s, &end);
	return end != s && *end == '\0' && d != 0.0;
}

static int pg_query_bool(dc_conn *c, const dc_statement *stmt, bool *out, dc_error *err)
{
	PGresult *res = NULL;
	int ret;

	if ((ret = settle(c, err)) != 0)
		return ret;

	*out = false;
	if ((ret = need_tenant(c, err)) != 0)
		return ret;
	if (!in_tx(c) && (ret = session_settings(c, err)) != 0)
		return ret;
	drop_history_cache(c);
	/* the extended protocol refuses a text of several statements */
	res = PQexecParams(c->pg, stmt->sql, 0, NULL, NULL, NULL, NULL, 0);
	if (!res_ok(res)) {
		ret = res_fail(c, res, stmt, "verify assertion", err);
		goto out;
	}
	if (PQnfields(res) != 1) {
		ret = conn_fail(c, err, DC_EINVAL, stmt->file, stmt->line, stmt->col,
		                "tenant '%s': verify assertion returned %d columns (expected one)",
		                tenant_id(c), PQnfields(res));
		goto out;
	}
	if (PQntuples(res) != 1) {
		ret = conn_fail(c, err, DC_EINVAL, stmt->file, stmt->line, stmt->col,
		                "tenant '%s': verify assertion returned %d rows (expected one)",
		                tenant_id(c), PQntuples(res));
		goto out;
	}
	/* NULL (unknown) is not true */
	*out = !PQgetisnull(res, 0, 0) && truthy(PQgetvalue(res, 0, 0));
out:
	PQclear(res);
	return ret;
}

/* ------------------------------------------------------------------------ */
/* History                                                                  */

static int parse_status(dc_history_status *out, const char *s)
{
	static const dc_history_status all[] = { DC_HISTORY_APPLIED, DC_HISTORY_ROLLED_BACK,
		                                 DC_HISTORY_PARTIAL };
	size_t i;

	for (i = 0; s && i < sizeof(all) / sizeof(all[0]); i++) {
		if (strcmp(s, dc_history_status_name(all[i])) == 0) {
			*out = all[i];
			return 0;
		}
	}
	return DC_EINVAL;
}

static int dup_value(char **out, const PGresult *res, int row, int col)
{
	*out = NULL;
	if (PQgetisnull(res, row, col))
		return 0;
	*out = dc_strdup(PQgetvalue(res, row, col));
	return *out ? 0 : DC_ENOMEM;
}

static int64_t int_value(const PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? 0 : strtoll(PQgetvalue(res, row, col), NULL, 10);
}

/* Rows [first, first + n) of `res` as history rows. `state` selects the
 * layout of STATE_SELECT (tenant, version, checksum, phase, status,
 * updated_at) instead of HISTORY_FIELDS (version, name, checksum, phase,
 * status, started_at, finished_at, duration_ms, run_id, actor). DC_EINVAL
 * for a row without a version or with an unknown status; `*bad_version`
 * (heap) then names it. */
static int rows_from(const PGresult *res,
                     int first,
                     int n,
                     bool state,
                     dc_history_row **out,
                     char **bad_version)
{
	dc_history_row *v = NULL;
	int i, ret = 0;

	*out = NULL;
	if (n <= 0)
		return 0;
	v = calloc((size_t)n, sizeof(*v));
	if (!v)
		return DC_ENOMEM;
	for (i = 0; i < n; i++) {
		dc_history_row *r = &v[i];
		int row = first + i;
		const char *status = PQgetisnull(res, row, 4) ? NULL : PQgetvalue(res, row, 4);

		if (dup_value(&r->version, res, row, state ? 1 : 0) ||
		    dup_value(&r->checksum, res, row, 2) || dup_value(&r->phase, res, row, 3)) {
			ret = DC_ENOMEM;
			goto out;
		}
		if (state) {
			r->finished_at_ms = int_value(res, row, 5);
		} else {
			if (dup_value(&r->name, res, row, 1) ||
			    dup_value(&r->run_id, res, row, 8) ||
			    dup_value(&r->actor, res, row, 9)) {
				ret = DC_ENOMEM;
				goto out;
			}
			r->started_at_ms = int_value(res, row, 5);
			r->finished_at_ms = int_value(res, row, 6);
			r->duration_ms = int_value(res, row, 7);
		}
		if (!r->version || parse_status(&r->status, status) != 0) {
			*bad_version = dc_strdup(r->version ? r->version : "(null)");
			ret = DC_EINVAL;
			goto out;
		}
	}
	*out = v;
	v = NULL;
out:
	dc_history_rows_free(v, (size_t)n); /* calloc'd: unfilled rows free nothing */
	return ret;
}

static bool version_known(const dc_conn *c, const char *version)
{
	const char *p, *end = c->versions.buf + c->versions.len;

	for (p = c->versions.buf; p && p < end; p += strlen(p) + 1)
		if (strcmp(p, version) == 0)
			return true;
	return false;
}

static void version_add(dc_conn *c, const char *version)
{
	if (!version_known(c, version)) {
		dc_strbuf_adds(&c->versions, version);
		dc_strbuf_addch(&c->versions, '\0');
	}
}

/* Takes note of the versions a history read returned: when it ran in a
 * transaction holding the tenant's lock, they are all there are. */
static void versions_note(dc_conn *c, const dc_history_row *rows, size_t n)
{
	size_t i;

	dc_strbuf_reset(&c->versions);
	c->versions_known = c->locked && in_tx(c);
	for (i = 0; c->versions_known && i < n; i++)
		version_add(c, rows[i].version);
	if (dc_strbuf_error(&c->versions))
		c->versions_known = false;
}

static int result_rows(dc_conn *c,
                       const PGresult *res,
                       dc_history_row **rows,
                       size_t *n,
                       dc_error *err)
{
	char *bad = NULL;
	int ret;

	if (PQntuples(res) > MAX_HISTORY_ROWS)
		return conn_fail(c, err, DC_ELIMIT, NULL, 0, 0,
		                 "tenant '%s': deployclaw_history has more than %d rows",
		                 tenant_id(c), MAX_HISTORY_ROWS);
	ret = rows_from(res, 0, PQntuples(res), false, rows, &bad);
	if (ret == 0) {
		*n = (size_t)PQntuples(res);
		versions_note(c, *rows, *n);
	} else if (ret == DC_EINVAL)
		ret = conn_fail(c, err, DC_EINTEGRITY, NULL, 0, 0,
		                "tenant '%s': deployclaw_history: invalid row for version '%s'",
		                tenant_id(c), bad ? bad : "?");
	else
		ret = oom(c, err);
	free(bad);
	return ret;
}

static int pg_history_ensure(dc_conn *c, dc_error *err)
{
	dc_strbuf sql = DC_STRBUF_INIT;
	int ret;

	if ((ret = settle(c, err)) != 0)
		return ret;

	if ((ret = need_tenant(c, err)) != 0)
		return ret;
	if (c->history_ok)
		return 0; /* the first begin created it */
	if ((ret = ensure_state(c, err)) != 0)
		return ret;
	if (history_sql(c, &sql, "CREATE TABLE IF NOT EXISTS ", " " HISTORY_COLUMNS) != 0) {
		ret = oom(c, err);
		goto out;
	}
	if (c->engine->model == DC_TENANCY_DATABASE &&
	    (ret = run_simple(c, STATE_CREATE, "deployclaw.tenant_state", err)) != 0)
		goto out;
	if ((ret = run_simple(c, sql.buf, "deployclaw_history", err)) == 0)
		c->history_ok = true;
out:
	dc_strbuf_release(&sql);
	return ret;
}

static int pg_history_read(dc_conn *c, dc_history_row **rows, size_t *n, dc_error *err)
{
	dc_strbuf sql = DC_STRBUF_INIT;
	PGresult *res = NULL;
	const char *params[1];
	int ret;

	if ((ret = settle(c, err)) != 0)
		return ret;

	*rows = NULL;
	*n = 0;
	if ((ret = need_tenant(c, err)) != 0)
		return ret;
	if (c->history) {
		/* read by the first begin, and nothing ran since */
		ret = result_rows(c, c->history, rows, n, err);
		drop_history_cache(c);
		return ret;
	}
	if (history_sql(c, &sql, "SELECT " HISTORY_FIELDS " FROM ",
	                " ORDER BY written_at, version") != 0) {
		ret = oom(c, err);
		goto out;
	}
	if (!c->history_ok && in_tx(c)) {
		/* a missing table must not abort the transaction: ask first */
		dc_strbuf probe = DC_STRBUF_INIT;

		history_sql(c, &probe, "", "");
		params[0] = probe.buf;
		res = dc_strbuf_error(&probe)
		              ? NULL
		              : PQexecParams(c->pg, "SELECT to_regclass($1) IS NOT NULL", 1, NULL,
		                             params, NULL, NULL, 0);
		dc_strbuf_release(&probe);
		if (!res_ok(res) || PQntuples(res) != 1) {
			ret = res_fail(c, res, NULL, "deployclaw_history", err);
			goto out;
		}
		if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
			versions_note(c, NULL, 0);
			goto out; /* no table: nothing was ever applied */
		}
		PQclear(res);
	}
	res = PQexec(c->pg, sql.buf);
	if (!res_ok(res)) {
		/* outside a transaction a missing table costs nothing to find out */
		if (strcmp(res_state(res), "42P01") == 0 && !in_tx(c))
			goto out;
		ret = res_fail(c, res, NULL, "deployclaw_history", err);
		goto out;
	}
	c->history_ok = true;
	ret = result_rows(c, res, rows, n, err);
out:
	PQclear(res);
	dc_strbuf_release(&sql);
	return ret;
}

static int pg_history_write(dc_conn *c, const dc_history_row *row, dc_error *err)
{
	dc_strbuf sql = DC_STRBUF_INIT;
	char started[24], finished[24], duration[24];
	const char *params[11];
	PGresult *res = NULL;
	bool upsert;
	int ret;

	if ((ret = settle(c, err)) != 0)
		return ret;

	if ((ret = need_tenant(c, err)) != 0)
		return ret;
	if (!row->version)
		return conn_fail(c, err, DC_EINVAL, NULL, 0, 0,
		                 "tenant '%s': a history row needs a version", tenant_id(c));
	if (!c->history_ok && (ret = pg_history_ensure(c, err)) != 0)
		return ret;
	if ((ret = ensure_state(c, err)) != 0)
		return ret;
	drop_history_cache(c);
	snprintf(started, sizeof(started), "%lld", (long long)row->started_at_ms);
	snprintf(finished, sizeof(finished), "%lld", (long long)row->finished_at_ms);
	snprintf(duration, sizeof(duration), "%lld", (long long)row->duration_ms);
	params[0] = row->version;
	params[1] = row->name;
	params[2] = row->checksum;
	params[3] = row->phase;
	params[4] = dc_history_status_name(row->status);
	params[5] = row->started_at_ms > 0 ? started : NULL;
	params[6] = row->finished_at_ms > 0 ? finished : NULL;
	params[7] = duration;
	params[8] = row->run_id;
	params[9] = row->actor;
	params[10] = c->tenant->id;
	/*
	 * One statement: the history row and the state row are written together
	 * even outside a transaction. A version the history is known not to hold
	 * is a plain INSERT: an upsert (ON CONFLICT DO UPDATE) makes PostgreSQL
	 * look up the publications of the table's schema, and before
	 * PostgreSQL 17 that lookup scans a list that grows with every schema
	 * the session has seen -- across 10,000 tenant schemas it cost more than
	 * the rest of the history write.
	 */
	upsert = !(c->versions_known && in_tx(c) && !version_known(c, row->version));
	if (history_sql(c, &sql, "WITH h AS (INSERT INTO ",
	                upsert ? HISTORY_UPSERT STATE_UPSERT : HISTORY_INSERT STATE_UPSERT) != 0) {
		ret = oom(c, err);
		goto out;
	}
	/* Inside a transaction the write is sent and not waited for: the commit
	 * that follows reads both answers in one round trip, and any other
	 * operation first reads this one (settle), failing as the write would. */
	if (c->versions_known)
		version_add(c, row->version);
	if (dc_strbuf_error(&c->versions))
		c->versions_known = false;
	if (in_tx(c) && PQenterPipelineMode(c->pg)) {
		if (PQsendQueryParams(c->pg, sql.buf, 11, NULL, params, NULL, NULL, 0) &&
		    PQsendFlushRequest(c->pg) && PQflush(c->pg) == 0) {
			c->write_sent = true;
		} else {
			ret = lost_fail(c, err);
			(void)PQexitPipelineMode(c->pg);
		}
		goto out;
	}
	res = PQexecParams(c->pg, sql.buf, 11, NULL, params, NULL, NULL, 0);
	if (!res_ok(res))
		ret = res_fail(c, res, NULL, "deployclaw_history", err);
out:
	PQclear(res);
	dc_strbuf_release(&sql);
	return ret;
}

/* ------------------------------------------------------------------------ */
/* history_read_all                                                         */

typedef struct tenant_index {
	const char *id;
	size_t i;
} tenant_index;

static int cmp_index(const void *a, const void *b)
{
	return strcmp(((const tenant_index *)a)->id, ((const tenant_index *)b)->id);
}

static void set_tenant_error(char (*errors)[512], size_t i, const char *fmt, ...) DC_PRINTF(3, 4);

static void set_tenant_error(char (*errors)[512], size_t i, const char *fmt, ...)
{
	dc_strbuf sb = DC_STRBUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	dc_strbuf_vaddf(&sb, fmt, ap);
	va_end(ap);
	copy_cut(errors[i], 512, dc_strbuf_error(&sb) ? "out of memory" : sb.buf);
	dc_strbuf_release(&sb);
}

/* Database model: each tenant database's history table, on a short-lived
 * connection per database (the state table lives in each of them). */
static int read_all_databases(dc_engine *e,
                              const dc_tenant *tenants,
                              size_t n,
                              dc_history_row **rows,
                              size_t *counts,
                              char (*errors)[512])
{
	dc_conn tmp;
	size_t i;

	for (i = 0; i < n; i++) {
		dc_error terr = { 0 };

		memset(&tmp, 0, sizeof(tmp));
		tmp.engine = e;
		if (pg_enter(&tmp, &tenants[i], &terr) == 0)
			(void)pg_history_read(&tmp, &rows[i], &counts[i], &terr);
		if (terr.code != 0) {
			if (terr.code == DC_ENOMEM) {
				leave(&tmp);
				drop_connection(&tmp);
				return DC_ENOMEM;
			}
			set_tenant_error(errors, i, "%s", terr.message);
		}
		leave(&tmp);
		drop_connection(&tmp);
	}
	return 0;
}

static int pg_history_read_all(dc_engine *e,
                               const dc_tenant *tenants,
                               size_t n,
                               dc_history_row **rows,
                               size_t *counts,
                               char (*errors)[512],
                               dc_error *err)
{
	dc_strbuf arr = DC_STRBUF_INIT;
	tenant_index *idx = NULL;
	PGresult *res = NULL;
	PGconn *pg = NULL;
	const char *params[1];
	char *bad = NULL;
	size_t i;
	int r, first, ret = 0;
	bool locked = false;

	for (i = 0; i < n; i++) {
		rows[i] = NULL;
		counts[i] = 0;
		errors[i][0] = '\0';
	}
	if (n == 0)
		return 0;
	if (e->model == DC_TENANCY_DATABASE) {
		ret = read_all_databases(e, tenants, n, rows, counts, errors);
		return ret ? dc_error_set(err, ret, "out of memory") : 0;
	}
	idx = dc_malloc_array(n, sizeof(*idx));
	if (!idx)
		goto oom;
	dc_strbuf_addch(&arr, '{');
	for (i = 0; i < n; i++) {
		idx[i].id = tenants[i].id;
		idx[i].i = i;
		array_add(&arr, tenants[i].id);
	}
	dc_strbuf_addch(&arr, '}');
	if (dc_strbuf_error(&arr))
		goto oom;
	qsort(idx, n, sizeof(*idx), cmp_index);
	pthread_mutex_lock(&e->mu);
	locked = true;
	if ((ret = admin_conn(e, &pg, err)) != 0)
		goto out;
	params[0] = arr.buf;
	res = PQexecParams(pg, STATE_SELECT, 1, NULL, params, NULL, NULL, 0);
	if (!res_ok(res)) {
		char why[512];

		if (strcmp(res_state(res), "42P01") == 0)
			goto out; /* no state table yet: nothing was applied on this shard */
		first_line(why, sizeof(why), PQresultErrorMessage(res));
		ret = shard_fail(e, err, DC_EDB, res_state(res),
		                 "shard '%s': deployclaw.tenant_state: %s", e->shard, why);
		goto out;
	}
	pthread_mutex_unlock(&e->mu);
	locked = false;
	/* rows come grouped by tenant */
	for (first = 0; first < PQntuples(res); first = r) {
		const char *id = PQgetvalue(res, first, 0);
		tenant_index key = { id, 0 }, *hit;

		for (r = first + 1; r < PQntuples(res) && strcmp(PQgetvalue(res, r, 0), id) == 0;
		     r++)
			;
		hit = bsearch(&key, idx, n, sizeof(*idx), cmp_index);
		if (!hit || rows[hit->i])
			continue;
		if (r - first > MAX_HISTORY_ROWS) {
			set_tenant_error(errors, hit->i, "tenant '%s': too many state rows", id);
			continue;
		}
		ret = rows_from(res, first, r - first, true, &rows[hit->i], &bad);
		if (ret == DC_ENOMEM)
			goto oom;
		if (ret == DC_EINVAL) {
			set_tenant_error(
			        errors, hit->i,
			        "tenant '%s': deployclaw.tenant_state: invalid row for version '%s'",
			        id, bad ? bad : "?");
			free(bad);
			bad = NULL;
			ret = 0;
			continue;
		}
		counts[hit->i] = (size_t)(r - first);
	}
	goto out;
oom:
	ret = dc_error_set(err, DC_ENOMEM, "out of memory");
out:
	if (locked)
		pthread_mutex_unlock(&e->mu);
	if (ret != 0)
		for (i = 0; i < n; i++) {
			dc_history_rows_free(rows[i], counts[i]);
			rows[i] = NULL;
			counts[i] = 0;
		}
	PQclear(res);
	free(idx);
	free(bad);
	dc_strbuf_release(&arr);
	return ret;
}

/* ------------------------------------------------------------------------ */
/* Checks, fingerprint                                                      */

static int pg_query_text(dc_conn *c,
                         const char *sql,
                         dc_strbuf *out,
                         size_t max_rows,
                         dc_error *err)
{
	PGresult *res = NULL;
	size_t i;
	int ret;

	if ((ret = settle(c, err)) != 0)
		return ret;

	if ((ret = need_tenant(c, err)) != 0)
		return ret;
	if (!in_tx(c) && (ret = session_settings(c, err)) != 0)
		return ret;
	drop_history_cache(c);
	res = PQexecParams(c->pg, sql, 0, NULL, NULL, NULL, NULL, 0);
	if (!res_ok(res)) {
		ret = res_fail(c, res, NULL, NULL, err);
		goto out;
	}
	for (i = 0; i < max_rows && i < (size_t)PQntuples(res); i++) {
		if (PQnfields(res) > 0 && !PQgetisnull(res, (int)i, 0))
			dc_strbuf_adds(out, PQgetvalue(res, (int)i, 0));
		dc_strbuf_addch(out, '\n');
	}
	if (dc_strbuf_error(out))
		ret = conn_fail(c, err, dc_strbuf_error(out), NULL, 0, 0,
		                "tenant '%s': query output too large", tenant_id(c));
out:
	PQclear(res);
	return ret;
}

static int pg_schema_fingerprint(dc_conn *c, char out[65], dc_error *err)
{
	const char *params[1];
	dc_strbuf text = DC_STRBUF_INIT;
	PGresult *res = NULL, *kept[5];
	pipe_q q[5];
	size_t n = 0, keep;
	bool tx;
	int i, ret;

	if ((ret = settle(c, err)) != 0)
		return ret;

	out[0] = '\0';
	if ((ret = need_tenant(c, err)) != 0)
		return ret;
	drop_history_cache(c);
	params[0] = c->engine->model == DC_TENANCY_SCHEMA ? c->tenant->target : "";
	/* search_path pinned for the query only: a savepoint inside the tenant's
	 * transaction (rolling back to it undoes the SET LOCAL), a transaction of
	 * its own outside one */
	tx = in_tx(c);
	q[n++] = (pipe_q){ tx ? "SAVEPOINT deployclaw_fingerprint" : "BEGIN", 0, NULL };
	q[n++] = (pipe_q){ "SELECT set_config('search_path', 'pg_catalog', true)", 0, NULL };
	keep = n;
	q[n++] = (pipe_q){ FINGERPRINT_SELECT, 1, params };
	if (tx) {
		q[n++] = (pipe_q){ "ROLLBACK TO SAVEPOINT deployclaw_fingerprint", 0, NULL };
		q[n++] = (pipe_q){ "RELEASE SAVEPOINT deployclaw_fingerprint", 0, NULL };
	} else {
		q[n++] = (pipe_q){ "COMMIT", 0, NULL };
	}
	ret = pipe_run(c, q, n, false, kept, NULL, 0, err);
	res = kept[keep];
	kept[keep] = NULL;
	pipe_clear(kept, n);
	if (ret != 0) {
		if (!tx)
			abandon_tx(c);
		goto out;
	}
	for (i = 0; i < PQntuples(res); i++) {
		dc_strbuf_adds(&text, PQgetvalue(res, i, 0));
		dc_strbuf_addch(&text, '\0'); /* no line holds a NUL: a separator */
	}
	if (dc_strbuf_error(&text)) {
		ret = oom(c, err);
		goto out;
	}
	dc_sha256_hex(out, text.buf, text.len);
out:
	PQclear(res);
	dc_strbuf_release(&text);
	return ret;
}

const dc_engine_ops dc_engine_pg = {
	.name = "postgres",
	.open = pg_open,
	.close = pg_close,
	.set_run = pg_set_run,
	.discover = pg_discover,
	.connect = pg_connect_op,
	.disconnect = pg_disconnect,
	.enter = pg_enter,
	.lock_tenant = pg_lock_tenant,
	.unlock_tenant = pg_unlock_tenant,
	.begin = pg_begin,
	.commit = pg_commit,
	.rollback = pg_rollback,
	.autocommit_only = pg_autocommit_only,
	.exec = pg_exec,
	.query_bool = pg_query_bool,
	.history_ensure = pg_history_ensure,
	.history_read = pg_history_read,
	.history_write = pg_history_write,
	.query_text = pg_query_text,
	.backup = NULL,
	.history_read_all = pg_history_read_all,
	.schema_fingerprint = pg_schema_fingerprint,
};
