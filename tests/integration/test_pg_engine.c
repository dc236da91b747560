/*
 * dc_engine_pg against a real server: DEPLOYCLAW_PRIMARY (scripts/pg-sandbox
 * env) names it; without it the test FAILS, it never skips.
 *
 * Everything happens in databases of its own, named dct<pid>...: one for the
 * schema model, one for the row model, and one per tenant for the database
 * model. All are dropped at the end. The outcome is read back through a
 * separate libpq connection ("side"), never through the engine under test.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include <deployclaw/analysis.h>
#include <deployclaw/engine.h>
#include <deployclaw/topology.h>

#include "util/util.h"

#define E (&dc_engine_pg)

/* The schema-model tenants: quotes, spaces, non-ASCII letters. */
static const char *const schemas[] = { "tn 'q\"uote", "tn space", "tn_a", "tn_Ünïcødé" };
#define NSCHEMAS (sizeof(schemas) / sizeof(schemas[0]))

typedef struct world {
	char prefix[32];    /* dct<pid> */
	char schema_db[64]; /* schema model */
	char row_db[64];    /* row model */
	char dbs[3][64];    /* database model tenants */
	char *primary;      /* DEPLOYCLAW_PRIMARY */
	char *schema_dsn;   /* primary with dbname = schema_db */
	char *row_dsn;
	PGconn *admin; /* the primary's own database: CREATE/DROP DATABASE */
	PGconn *side;  /* schema_db */
} world;

static world W;

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */

/* The primary's conninfo with dbname replaced (test code: the engine itself
 * never rewrites a DSN). */
static char *dsn_with_db(const char *dsn, const char *db)
{
	PQconninfoOption *opts, *o;
	char *errmsg = NULL, *out;
	size_t cap = 4096, len = 0;
	const char *s;

	opts = PQconninfoParse(dsn, &errmsg);
	if (!opts)
		fail_msg("DEPLOYCLAW_PRIMARY does not parse: %s", errmsg ? errmsg : "?");
	out = calloc(1, cap);
	assert_non_null(out);
	for (o = opts; o->keyword; o++) {
		const char *val = strcmp(o->keyword, "dbname") == 0 ? db : o->val;

		if (!val || !val[0])
			continue;
		len += (size_t)snprintf(out + len, cap - len, "%s='", o->keyword);
		for (s = val; *s && len + 4 < cap; s++) {
			if (*s == '\'' || *s == '\\')
				out[len++] = '\\';
			out[len++] = *s;
		}
		len += (size_t)snprintf(out + len, cap - len, "' ");
	}
	PQconninfoFree(opts);
	return out;
}

static PGconn *connect_to(const char *dsn)
{
	PGconn *c = PQconnectdb(dsn);

	if (PQstatus(c) != CONNECTION_OK)
		fail_msg("cannot connect: %s", PQerrorMessage(c));
	return c;
}

static void sql(PGconn *c, const char *fmt, ...) DC_PRINTF(2, 3);

static void sql(PGconn *c, const char *fmt, ...)
{
	char buf[4096];
	va_list ap;
	PGresult *r;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	r = PQexec(c, buf);
	if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
		fail_msg("%s: %s", buf, PQerrorMessage(c));
	PQclear(r);
}

/* The single value of a query with one text parameter, into `out`. */
static const char *value1(PGconn *c, char *out, size_t size, const char *q, const char *p1)
{
	const char *params[1] = { p1 };
	PGresult *r = PQexecParams(c, q, p1 ? 1 : 0, NULL, params, NULL, NULL, 0);

	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
		fail_msg("%s: %s (%d rows)", q, PQerrorMessage(c), PQntuples(r));
	snprintf(out, size, "%s", PQgetisnull(r, 0, 0) ? "(null)" : PQgetvalue(r, 0, 0));
	PQclear(r);
	return out;
}

static long count1(PGconn *c, const char *q, const char *p1)
{
	char buf[64];

	return strtol(value1(c, buf, sizeof(buf), q, p1), NULL, 10);
}

static char *quote_ident(PGconn *c, const char *s)
{
	char *q = PQescapeIdentifier(c, s, strlen(s));
	char *copy = strdup(q);

	PQfreemem(q);
	return copy;
}

typedef struct fx {
	dc_config cfg;
	dc_shard_config shard;
	dc_engine *engine;
	dc_conn *conn;
	dc_tenant *tenants;
	size_t ntenants;
	dc_error err;
} fx;

static void fx_open(fx *f,
                    dc_tenancy_model model,
                    const char *dsn,
                    const char *shard_name,
                    const char *pattern)
{
	memset(f, 0, sizeof(*f));
	f->cfg.engine = DC_ENGINE_POSTGRES;
	f->cfg.tenancy.model = model;
	f->cfg.tenancy.pattern = (char *)(uintptr_t)pattern;
	f->cfg.gates.lock_timeout_ms = 2000;
	f->cfg.gates.statement_timeout_ms = 60000;
	f->shard.name = (char *)(uintptr_t)shard_name;
	f->shard.primary = (char *)(uintptr_t)dsn;
	f->cfg.shards = &f->shard;
	f->cfg.nshards = 1;
}

static void fx_start(fx *f, const char *run)
{
	if (E->open(&f->engine, &f->cfg, &f->shard, &f->err) != 0)
		fail_msg("open: %s", f->err.message);
	E->set_run(f->engine, run);
	if (E->discover(f->engine, &f->tenants, &f->ntenants, &f->err) != 0)
		fail_msg("discover: %s", f->err.message);
	if (E->connect(f->engine, &f->conn, &f->err) != 0)
		fail_msg("connect: %s", f->err.message);
}

static void fx_close(fx *f)
{
	E->disconnect(f->conn);
	E->close(f->engine);
	dc_tenants_free(f->tenants, f->ntenants);
}

static const dc_tenant *tenant(const fx *f, const char *id)
{
	size_t i;

	for (i = 0; i < f->ntenants; i++)
		if (strcmp(f->tenants[i].id, id) == 0)
			return &f->tenants[i];
	fail_msg("tenant '%s' not discovered", id);
	return NULL;
}

#define OK(call)                                                                                \
	do {                                                                                    \
		if ((call) != 0)                                                                \
			fail_msg("%s: %s (sqlstate %s)", #call, f.err.message, f.err.sqlstate); \
	} while (0)

static dc_statement stmt_at(const char *text, int line, int col)
{
	dc_statement s;

	s.sql = (char *)(uintptr_t)text;
	s.file = (char *)(uintptr_t) "migrations/001.sql";
	s.line = line;
	s.col = col;
	return s;
}

static void run(fx *f, const char *text)
{
	dc_statement s = stmt_at(text, 1, 1);
	int64_t rows;

	if (E->exec(f->conn, &s, &rows, &f->err) != 0)
		fail_msg("%s: %s", text, f->err.message);
}

static dc_history_row hrow(const char *version, const char *phase, dc_history_status st)
{
	dc_history_row r;

	memset(&r, 0, sizeof(r));
	r.version = (char *)(uintptr_t)version;
	r.name = (char *)(uintptr_t) "add things";
	r.checksum = (char *)(uintptr_t) "c0ffee";
	r.phase = (char *)(uintptr_t)phase;
	r.status = st;
	r.started_at_ms = 1764000000123;
	r.finished_at_ms = 1764000001456;
	r.duration_ms = 1333;
	r.run_id = (char *)(uintptr_t) "run-1";
	r.actor = (char *)(uintptr_t) "tester@host";
	return r;
}

/* ------------------------------------------------------------------------ */
/* Setup                                                                    */

static int setup_world(void **state)
{
	const char *primary = getenv("DEPLOYCLAW_PRIMARY");
	size_t i;

	(void)state;
	if (!primary || !primary[0]) {
		fprintf(stderr, "DEPLOYCLAW_PRIMARY is not set: start the sandbox "
		                "(eval \"$(scripts/pg-sandbox env)\")\n");
		return -1; /* a failure, not a skip */
	}
	memset(&W, 0, sizeof(W));
	W.primary = strdup(primary);
	snprintf(W.prefix, sizeof(W.prefix), "dct%ld", (long)getpid());
	snprintf(W.schema_db, sizeof(W.schema_db), "%s_schema", W.prefix);
	snprintf(W.row_db, sizeof(W.row_db), "%s_row", W.prefix);
	snprintf(W.dbs[0], sizeof(W.dbs[0]), "%s_d1", W.prefix);
	snprintf(W.dbs[1], sizeof(W.dbs[1]), "%s_d 'q\"2", W.prefix);
	snprintf(W.dbs[2], sizeof(W.dbs[2]), "%s_dé3", W.prefix);
	W.admin = connect_to(W.primary);
	sql(W.admin, "CREATE DATABASE %s", W.schema_db);
	sql(W.admin, "CREATE DATABASE %s", W.row_db);
	for (i = 0; i < 3; i++) {
		char *q = quote_ident(W.admin, W.dbs[i]);

		sql(W.admin, "CREATE DATABASE %s", q);
		free(q);
	}
	/* neither a template nor a database refusing connections is a tenant */
	sql(W.admin, "CREATE DATABASE %s_dtemplate IS_TEMPLATE true", W.prefix);
	sql(W.admin, "CREATE DATABASE %s_dclosed ALLOW_CONNECTIONS false", W.prefix);
	W.schema_dsn = dsn_with_db(W.primary, W.schema_db);
	W.row_dsn = dsn_with_db(W.primary, W.row_db);
	W.side = connect_to(W.schema_dsn);
	for (i = 0; i < NSCHEMAS; i++) {
		char *q = quote_ident(W.side, schemas[i]);

		sql(W.side,
		    "CREATE SCHEMA %s; CREATE TABLE %s.items (id int PRIMARY KEY, v text); "
		    "INSERT INTO %s.items SELECT g, 'v' || (g %% 3) FROM generate_series(1, 9) g",
		    q, q, q);
		free(q);
	}
	sql(W.side, "CREATE SCHEMA other; CREATE TABLE other.items (id int)");
	return 0;
}

static int teardown_world(void **state)
{
	size_t i;

	(void)state;
	if (!W.admin)
		return 0;
	PQfinish(W.side);
	sql(W.admin, "DROP DATABASE IF EXISTS %s WITH (FORCE)", W.schema_db);
	sql(W.admin, "DROP DATABASE IF EXISTS %s WITH (FORCE)", W.row_db);
	for (i = 0; i < 3; i++) {
		char *q = quote_ident(W.admin, W.dbs[i]);

		sql(W.admin, "DROP DATABASE IF EXISTS %s WITH (FORCE)", q);
		free(q);
	}
	sql(W.admin, "ALTER DATABASE %s_dtemplate IS_TEMPLATE false", W.prefix);
	sql(W.admin, "DROP DATABASE IF EXISTS %s_dtemplate", W.prefix);
	sql(W.admin, "DROP DATABASE IF EXISTS %s_dclosed", W.prefix);
	sql(W.admin, "DROP ROLE IF EXISTS %s_su", W.prefix);
	PQfinish(W.admin);
	free(W.schema_dsn);
	free(W.row_dsn);
	free(W.primary);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Discovery                                                                */

static void discover_schema_model(void **state)
{
	fx f;
	char *list[] = { (char *)(uintptr_t) "tn space", (char *)(uintptr_t) "tn_Ünïcødé",
		         (char *)(uintptr_t) "not there" };
	size_t i;

	(void)state;
	fx_open(&f, DC_TENANCY_SCHEMA, W.schema_dsn, "eu-1", "tn%");
	fx_start(&f, "r1");
	assert_int_equal(f.ntenants, NSCHEMAS);
	for (i = 0; i < NSCHEMAS; i++) {
		assert_string_equal(f.tenants[i].id, schemas[i]); /* sorted by id */
		assert_string_equal(f.tenants[i].target, schemas[i]);
		assert_string_equal(f.tenants[i].shard, "eu-1");
	}
	fx_close(&f);

	/* a list: the names that exist on this shard */
	fx_open(&f, DC_TENANCY_SCHEMA, W.schema_dsn, "eu-1", NULL);
	f.cfg.tenancy.list = list;
	f.cfg.tenancy.nlist = 3;
	fx_start(&f, "r1");
	assert_int_equal(f.ntenants, 2);
	assert_string_equal(f.tenants[0].id, "tn space");
	assert_string_equal(f.tenants[1].id, "tn_Ünïcødé");
	fx_close(&f);

	/* a query */
	fx_open(&f, DC_TENANCY_SCHEMA, W.schema_dsn, "eu-1", NULL);
	f.cfg.tenancy.query = (char *)(uintptr_t) "SELECT nspname FROM pg_namespace "
	                                          "WHERE nspname LIKE 'tn%' AND nspname <> 'tn_a'";
	fx_start(&f, "r1");
	assert_int_equal(f.ntenants, NSCHEMAS - 1);
	assert_string_equal(f.tenants[0].id, "tn 'q\"uote");
	fx_close(&f);

	/* a query that fails names the key and the server's message */
	fx_open(&f, DC_TENANCY_SCHEMA, W.schema_dsn, "eu-1", NULL);
	f.cfg.tenancy.query = (char *)(uintptr_t) "SELECT nope FROM nowhere";
	assert_int_equal(E->open(&f.engine, &f.cfg, &f.shard, &f.err), 0);
	assert_int_equal(E->discover(f.engine, &f.tenants, &f.ntenants, &f.err), DC_EDB);
	assert_non_null(strstr(f.err.message, "tenancy.query"));
	assert_non_null(strstr(f.err.message, "nowhere"));
	assert_string_equal(f.err.sqlstate, "42P01");
	E->close(f.engine);
}

/* The engine's discover, dc_topology_collect and dc_topology_tables (plan
 * --live) find the same tenants: all three run dc_pg_tenants_sql. The names
 * hold LIKE wildcards: 'pgxtoast_e' matches an unescaped 'pg_toast%', and
 * 'archive_x', not a tenant, has the measured table too. */
static void discovery_agrees_everywhere(void **state)
{
	static const char *const extra[] = { "pgxtoast_e", "we%ird", "archive_x" };
	char *list[] = { (char *)(uintptr_t) "tn_a", (char *)(uintptr_t) "pgxtoast_e",
		         (char *)(uintptr_t) "we%ird", (char *)(uintptr_t) "nosuch" };
	const char *names[1] = { "dc_probe" };
	dc_topology *topo = NULL;
	dc_topology_table *tables = NULL;
	size_t i, ntables = 0;
	fx f;

	(void)state;
	for (i = 0; i < 3; i++)
		sql(W.side, "CREATE SCHEMA \"%s\"; CREATE TABLE \"%s\".dc_probe (id int)", extra[i],
		    extra[i]);
	sql(W.side, "CREATE TABLE tn_a.dc_probe (id int)");

	fx_open(&f, DC_TENANCY_SCHEMA, W.schema_dsn, "eu-1", NULL);
	f.cfg.tenancy.list = list;
	f.cfg.tenancy.nlist = 4;
	fx_start(&f, "r1");
	assert_int_equal(f.ntenants, 3);
	assert_string_equal(f.tenants[0].id, "pgxtoast_e");
	assert_string_equal(f.tenants[1].id, "tn_a");
	assert_string_equal(f.tenants[2].id, "we%ird");
	OK(dc_topology_collect(&topo, &f.cfg, &f.err));
	assert_int_equal(topo->shards[0].ntenants, 3);
	OK(dc_topology_tables(&tables, &ntables, &f.cfg, &f.shard, names, 1, &f.err));
	assert_int_equal(ntables, 1);
	assert_string_equal(tables[0].name, "dc_probe");
	assert_int_equal(tables[0].tenants, 3);
	dc_topology_tables_free(tables, ntables);
	dc_topology_free(topo);
	fx_close(&f);

	/* a pattern with an escaped '_' and a query: their union */
	fx_open(&f, DC_TENANCY_SCHEMA, W.schema_dsn, "eu-1", "tn\\_%");
	f.cfg.tenancy.query = (char *)(uintptr_t) "SELECT 'pgxtoast_e' UNION SELECT 'we%ird';";
	fx_start(&f, "r1");
	assert_int_equal(f.ntenants, 4); /* tn_a, tn_Ünïcødé and the query's two */
	OK(dc_topology_collect(&topo, &f.cfg, &f.err));
	assert_int_equal(topo->shards[0].ntenants, 4);
	OK(dc_topology_tables(&tables, &ntables, &f.cfg, &f.shard, names, 1, &f.err));
	assert_int_equal(ntables, 1);
	assert_int_equal(tables[0].tenants, 3); /* tn_Ünïcødé has no dc_probe */
	dc_topology_tables_free(tables, ntables);
	dc_topology_free(topo);
	fx_close(&f);

	/* a pattern matching PostgreSQL's pg_toast schemas, never tenants, and
	 * 'pgxtoast_e', which only an unescaped 'pg_%' would take for one */
	fx_open(&f, DC_TENANCY_SCHEMA, W.schema_dsn, "eu-1", "%toast%");
	fx_start(&f, "r1");
	assert_int_equal(f.ntenants, 1);
	assert_string_equal(f.tenants[0].id, "pgxtoast_e");
	OK(dc_topology_collect(&topo, &f.cfg, &f.err));
	assert_int_equal(topo->shards[0].ntenants, 1);
	OK(dc_topology_tables(&tables, &ntables, &f.cfg, &f.shard, names, 1, &f.err));
	assert_int_equal(ntables, 1);
	assert_int_equal(tables[0].tenants, 1);
	dc_topology_tables_free(tables, ntables);
	dc_topology_free(topo);
	fx_close(&f);

	sql(W.side, "SET client_min_messages = warning");
	for (i = 0; i < 3; i++)
		sql(W.side, "DROP SCHEMA \"%s\" CASCADE", extra[i]);
	sql(W.side, "DROP TABLE tn_a.dc_probe");
}

static void discover_database_and_row_models(void **state)
{
	fx f;
	char pattern[80];
	const char *sorted[3];
	size_t i;

	(void)state;
	snprintf(pattern, sizeof(pattern), "%s\\_d%%", W.prefix);
	fx_open(&f, DC_TENANCY_DATABASE, W.primary, "eu-2", pattern);
	fx_start(&f, "r1");
	/* sorted by strcmp: ' ' < '1' < 0xc3 */
	sorted[0] = W.dbs[1];
	sorted[1] = W.dbs[0];
	sorted[2] = W.dbs[2];
	assert_int_equal(f.ntenants, 3);
	for (i = 0; i < 3; i++) {
		assert_string_equal(f.tenants[i].id, sorted[i]);
		assert_string_equal(f.tenants[i].target, sorted[i]);
	}
	fx_close(&f);

	fx_open(&f, DC_TENANCY_ROW, W.row_dsn, "eu-row", NULL);
	fx_start(&f, "r1");
	assert_int_equal(f.ntenants, 1);
	assert_string_equal(f.tenants[0].id, "eu-row");
	assert_string_equal(f.tenants[0].shard, "eu-row");
	assert_string_equal(f.tenants[0].target, W.row_db);
	fx_close(&f);

	/* a DSN that does not connect: named without its password, sqlstate 08001 */
	fx_open(&f, DC_TENANCY_ROW, "host=127.0.0.1 port=1 password=s3cret connect_timeout=2",
	        "down", NULL);
	assert_int_equal(E->open(&f.engine, &f.cfg, &f.shard, &f.err), 0);
	assert_int_equal(E->discover(f.engine, &f.tenants, &f.ntenants, &f.err), DC_EDB);
	assert_null(strstr(f.err.message, "s3cret"));
	assert_non_null(strstr(f.err.message, "shard 'down'"));
	assert_string_equal(f.err.sqlstate, "08001");
	E->close(f.engine);
}

/* ------------------------------------------------------------------------ */
/* Transactions and history                                                 */

static long history_rows(const char *schema)
{
	char *q = quote_ident(W.side, schema), query[512];
	long n;

	snprintf(query, sizeof(query),
	         "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
	         "WHERE n.nspname = $1 AND c.relname = 'deployclaw_history'");
	if (count1(W.side, query, schema) == 0) {
		free(q);
		return -1; /* no table */
	}
	snprintf(query, sizeof(query), "SELECT count(*) FROM %s.deployclaw_history", q);
	n = count1(W.side, query, NULL);
	free(q);
	return n;
}

static long state_rows(const char *id)
{
	if (count1(W.side,
	           "SELECT count(*) FROM pg_tables WHERE schemaname = 'deployclaw' "
	           "AND tablename = 'tenant_state'",
	           NULL) == 0)
		return -1;
	return count1(W.side, "SELECT count(*) FROM deployclaw.tenant_state WHERE tenant = $1", id);
}

static long table_exists(const char *schema, const char *table)
{
	const char *params[2] = { schema, table };
	PGresult *r = PQexecParams(W.side,
	                           "SELECT count(*) FROM pg_tables WHERE schemaname = $1 "
	                           "AND tablename = $2",
	                           2, NULL, params, NULL, NULL, 0);
	long n = strtol(PQgetvalue(r, 0, 0), NULL, 10);

	PQclear(r);
	return n;
}

static void exec_and_history_in_one_transaction(void **state)
{
	const char *id = "tn 'q\"uote";
	fx f;
	dc_history_row row = hrow("001", "expand", DC_HISTORY_APPLIED);
	dc_history_row *rows = NULL;
	dc_strbuf out = DC_STRBUF_INIT;
	size_t n = 0;

	(void)state;
	fx_open(&f, DC_TENANCY_SCHEMA, W.schema_dsn, "eu-1", "tn%");
	fx_start(&f, "r1");
	OK(E->enter(f.conn, tenant(&f, id), &f.err));
	OK(E->lock_tenant(f.conn, 1000, &f.err));
	OK(E->begin(f.conn, &f.err));
	OK(E->history_ensure(f.conn, &f.err));
	OK(E->history_read(f.conn, &rows, &n, &f.err));
	assert_int_equal(n, 0);

	/* search_path and deployclaw.tenant are the tenant's, without splicing */
	OK(E->query_text(f.conn,
	                 "SELECT current_schema() UNION ALL "
	                 "SELECT current_setting('deployclaw.tenant') UNION ALL "
	                 "SELECT current_setting('lock_timeout')",
	                 &out, 10, &f.err));
	assert_string_equal(out.buf, "tn 'q\"uote\ntn 'q\"uote\n2s\n");
	dc_strbuf_release(&out);

	run(&f, "CREATE TABLE added (x int)");
	OK(E->history_write(f.conn, &row, &f.err));
	/* another session sees none of it before the commit */
	assert_int_equal(table_exists(id, "added"), 0);
	OK(E->rollback(f.conn, &f.err));
	assert_int_equal(table_exists(id, "added"), 0);
	assert_true(history_rows(id) <= 0); /* the table went with the transaction */
	assert_true(state_rows(id) <= 0);

	OK(E->begin(f.conn, &f.err));
	OK(E->history_ensure(f.conn, &f.err));
	OK(E->history_read(f.conn, &rows, &n, &f.err));
	assert_int_equal(n, 0);
	run(&f, "CREATE TABLE added (x int)");
	OK(E->history_write(f.conn, &row, &f.err));
	OK(E->commit(f.conn, &f.err));
	OK(E->unlock_tenant(f.conn, &f.err));
	assert_int_equal(table_exists(id, "added"), 1);
	assert_int_equal(history_rows(id), 1);
	assert_int_equal(state_rows(id), 1);
	assert_int_equal(
	        count1(W.side,
	               "SELECT count(*) FROM deployclaw.tenant_state WHERE tenant = $1 "
	               "AND version = '001' AND checksum = 'c0ffee' AND status = 'applied' "
	               "AND phase = 'expand'",
	               id),
	        1);

	/* read back in a new visit, outside a transaction, every field intact */
	OK(E->enter(f.conn, tenant(&f, id), &f.err));
	OK(E->history_read(f.conn, &rows, &n, &f.err));
	assert_int_equal(n, 1);
	assert_string_equal(rows[0].version, "001");
	assert_string_equal(rows[0].name, "add things");
	assert_string_equal(rows[0].checksum, "c0ffee");
	assert_string_equal(rows[0].phase, "expand");
	assert_int_equal(rows[0].status, DC_HISTORY_APPLIED);
	assert_int_equal(rows[0].started_at_ms, 1764000000123);
	assert_int_equal(rows[0].finished_at_ms, 1764000001456);
	assert_int_equal(rows[0].duration_ms, 1333);
	assert_string_equal(rows[0].run_id, "run-1");
	assert_string_equal(rows[0].actor, "tester@host");
	dc_history_rows_free(rows, n);

	/* a rewrite of the same version replaces the row, in both tables */
	row.status = DC_HISTORY_ROLLED_BACK;
	row.phase = (char *)(uintptr_t) "";
	OK(E->begin(f.conn, &f.err));
	OK(E->history_ensure(f.conn, &f.err));
	OK(E->history_read(f.conn, &rows, &n, &f.err));
	assert_int_equal(n, 1);
	dc_history_rows_free(rows, n);
	OK(E->history_write(f.conn, &row, &f.err));
	OK(E->history_read(f.conn, &rows, &n, &f.err)); /* sees its own write */
	assert_int_equal(n, 1);
	assert_int_equal(rows[0].status, DC_HISTORY_ROLLED_BACK);
	dc_history_rows_free(rows, n);
	OK(E->commit(f.conn, &f.err));
	assert_int_equal(count1(W.side,
	                        "SELECT count(*) FROM deployclaw.tenant_state WHERE tenant = $1 "
	                        "AND status = 'rolled_back'",
	                        id),
	                 1);

	/* under the lock, in a transaction: the version read back is rewritten,
	 * a new one is written (a plain insert), then written again */
	OK(E->enter(f.conn, tenant(&f, id), &f.err));
	OK(E->lock_tenant(f.conn, 1000, &f.err));
	OK(E->begin(f.conn, &f.err));
	OK(E->history_read(f.conn, &rows, &n, &f.err));
	assert_int_equal(n, 1);
	dc_history_rows_free(rows, n);
	row.status = DC_HISTORY_APPLIED;
	OK(E->history_write(f.conn, &row, &f.err));
	{
		dc_history_row r3 = hrow("003", "expand", DC_HISTORY_PARTIAL);

		OK(E->history_write(f.conn, &r3, &f.err));
		r3.status = DC_HISTORY_APPLIED;
		OK(E->history_write(f.conn, &r3, &f.err));
	}
	OK(E->commit(f.conn, &f.err));
	OK(E->unlock_tenant(f.conn, &f.err));
	assert_int_equal(history_rows(id), 2);
	assert_int_equal(state_rows(id), 2);
	assert_int_equal(count1(W.side,
	                        "SELECT count(*) FROM deployclaw.tenant_state WHERE tenant = $1 "
	                        "AND status = 'applied' AND version IN ('001', '003')",
	                        id),
	                 2);

	/* statements outside a transaction get the tenant's settings too */
	OK(E->enter(f.conn, tenant(&f, "tn space"), &f.err));
	run(&f, "CREATE TABLE outside (x int)");
	assert_int_equal(table_exists("tn space", "outside"), 1);
	OK(E->query_text(f.conn, "SELECT current_setting('deployclaw.tenant')", &out, 10, &f.err));
	assert_string_equal(out.buf, "tn space\n");
	dc_strbuf_release(&out);
	/* and history written outside one lands in both tables at once */
	row = hrow("002", "backfill", DC_HISTORY_PARTIAL);
	OK(E->history_ensure(f.conn, &f.err));
	OK(E->history_write(f.conn, &row, &f.err));
	assert_int_equal(history_rows("tn space"), 1);
	assert_int_equal(state_rows("tn space"), 1);
	fx_close(&f);
}

/*
 * A history write inside a transaction is sent without waiting for its
 * answer (the commit reads both in one round trip): when it fails, the
 * commit -- or whatever operation comes first -- fails with its error, and
 * nothing of the transaction is committed.
 */
static void failed_history_write_fails_what_follows(void **state)
{
	const char *id = "tn_Ünïcødé";
	fx f;
	dc_history_row bad = hrow("bad", "expand", DC_HISTORY_APPLIED);
	dc_history_row *rows = NULL;
	dc_statement probe = stmt_at("SELECT 1", 1, 1);
	int64_t nrows = 0;
	size_t n = 0;
	int pass;

	(void)state;
	fx_open(&f, DC_TENANCY_SCHEMA, W.schema_dsn, "eu-1", "tn%");
	fx_start(&f, "r-bad");
	OK(E->enter(f.conn, tenant(&f, id), &f.err));
	OK(E->lock_tenant(f.conn, 1000, &f.err));
	for (pass = 0; pass < 2; pass++) {
		OK(E->begin(f.conn, &f.err));
		OK(E->history_ensure(f.conn, &f.err));
		OK(E->history_read(f.conn, &rows, &n, &f.err));
		dc_history_rows_free(rows, n);
		run(&f, "CREATE TABLE never_here (x int)");
		run(&f,
		    "ALTER TABLE deployclaw_history ADD CONSTRAINT no_bad CHECK (version <> 'bad')");
		OK(E->history_write(f.conn, &bad, &f.err)); /* sent, not yet answered */
		dc_error_clear(&f.err);
		if (pass == 0)
			assert_int_equal(E->commit(f.conn, &f.err), DC_EDB);
		else
			assert_int_equal(E->exec(f.conn, &probe, &nrows, &f.err), DC_EDB);
		assert_string_equal(f.err.sqlstate, "23514");
		assert_non_null(strstr(f.err.message, "deployclaw_history: "));
		assert_non_null(strstr(f.err.message, "no_bad"));
		assert_string_equal(f.err.tenant, id);
		OK(E->rollback(f.conn, &f.err));
		assert_int_equal(table_exists(id, "never_here"), 0);
	}
	/* the connection is fine afterwards: a good write commits */
	bad.version = (char *)(uintptr_t) "good";
	OK(E->begin(f.conn, &f.err));
	OK(E->history_ensure(f.conn, &f.err));
	OK(E->history_read(f.conn, &rows, &n, &f.err));
	dc_history_rows_free(rows, n);
	run(&f, "CREATE TABLE here_now (x int)");
	OK(E->history_write(f.conn, &bad, &f.err));
	OK(E->commit(f.conn, &f.err));
	OK(E->unlock_tenant(f.conn, &f.err));
	assert_int_equal(table_exists(id, "here_now"), 1);
	assert_int_equal(count1(W.side,
	                        "SELECT count(*) FROM deployclaw.tenant_state WHERE tenant = $1 "
	                        "AND version = 'good'",
	                        id),
	                 1);
	run(&f, "DROP TABLE here_now");
	fx_close(&f);
}

static void rows_equal(const dc_history_row *a, size_t na, const dc_history_row *b, size_t nb)
{
	size_t i;

	assert_int_equal(na, nb);
	for (i = 0; i < na; i++) {
		assert_string_equal(a[i].version, b[i].version);
		assert_string_equal(a[i].checksum, b[i].checksum);
		assert_string_equal(a[i].phase, b[i].phase);
		assert_int_equal(a[i].status, b[i].status);
	}
}

/* history_read_all against enter + history_read for every tenant. */
static void check_read_all(fx *f, size_t expect_nonempty)
{
	dc_history_row **all = calloc(f->ntenants, sizeof(*all));
	size_t *counts = calloc(f->ntenants, sizeof(*counts));
	char(*errors)[512] = calloc(f->ntenants, sizeof(*errors));
	size_t i, nonempty = 0;

	if (E->history_read_all(f->engine, f->tenants, f->ntenants, all, counts, errors, &f->err) !=
	    0)
		fail_msg("history_read_all: %s", f->err.message);
	for (i = 0; i < f->ntenants; i++) {
		dc_history_row *rows = NULL;
		size_t n = 0;

		assert_string_equal(errors[i], "");
		if (E->enter(f->conn, &f->tenants[i], &f->err) != 0 ||
		    E->history_read(f->conn, &rows, &n, &f->err) != 0)
			fail_msg("%s", f->err.message);
		rows_equal(all[i], counts[i], rows, n);
		nonempty += n > 0;
		dc_history_rows_free(rows, n);
		dc_history_rows_free(all[i], counts[i]);
	}
	assert_int_equal(nonempty, expect_nonempty);
	free(all);
	free(counts);
	free(errors);
}

static void apply_versions(fx *f, const char *id, int nversions)
{
	char v[16];
	int k;

	if (E->enter(f->conn, tenant(f, id), &f->err) != 0 ||
	    E->lock_tenant(f->conn, 1000, &f->err) != 0 || E->begin(f->conn, &f->err) != 0 ||
	    E->history_ensure(f->conn, &f->err) != 0)
		fail_msg("%s", f->err.message);
	for (k = 0; k < nversions; k++) {
		dc_history_row r;

		snprintf(v, sizeof(v), "1%02d", k);
		r = hrow(v, k % 2 ? "contract" : "expand", DC_HISTORY_APPLIED);
		if (E->history_write(f->conn, &r, &f->err) != 0)
			fail_msg("%s", f->err.message);
	}
	if (E->commit(f->conn, &f->err) != 0 || E->unlock_tenant(f->conn, &f->err) != 0)
		fail_msg("%s", f->err.message);
}

static void read_all_equals_per_tenant_reads(void **state)
{
	fx f;
	char pattern[80];
	dc_tenant ghost = { (char *)(uintptr_t) "nobody", (char *)(uintptr_t) "eu-row",
		            (char *)(uintptr_t) "x" };
	dc_history_row *rows[1] = { NULL };
	size_t counts[1] = { 7 };
	char errors[1][512];

	(void)state;
	/* row model, before anything exists: no state table is no history */
	fx_open(&f, DC_TENANCY_ROW, W.row_dsn, "eu-row", NULL);
	fx_start(&f, "r1");
	check_read_all(&f, 0);
	apply_versions(&f, "eu-row", 3);
	check_read_all(&f, 1);
	/* a tenant the table does not know has no rows */
	OK(E->history_read_all(f.engine, &ghost, 1, rows, counts, errors, &f.err));
	assert_int_equal(counts[0], 0);
	assert_null(rows[0]);
	fx_close(&f);

	/* schema model: tenants with 0, 1 (+ earlier tests) and 3 versions */
	fx_open(&f, DC_TENANCY_SCHEMA, W.schema_dsn, "eu-1", "tn%");
	fx_start(&f, "r1");
	apply_versions(&f, "tn_a", 3);
	apply_versions(&f, "tn_Ünïcødé", 1);
	check_read_all(&f, 4);
	fx_close(&f);

	/* database model: each tenant database's own history */
	snprintf(pattern, sizeof(pattern), "%s\\_d%%", W.prefix);
	fx_open(&f, DC_TENANCY_DATABASE, W.primary, "eu-2", pattern);
	fx_start(&f, "r1");
	apply_versions(&f, W.dbs[1], 2);
	apply_versions(&f, W.dbs[2], 1);
	check_read_all(&f, 2);
	fx_close(&f);
}

static void database_model_transaction(void **state)
{
	fx f;
	char pattern[80], *dsn;
	PGconn *tc;
	dc_history_row row = hrow("001", "expand", DC_HISTORY_APPLIED);
	dc_history_row *rows = NULL;
	dc_strbuf out = DC_STRBUF_INIT;
	size_t n = 0;

	(void)state;
	snprintf(pattern, sizeof(pattern), "%s\\_d%%", W.prefix);
	fx_open(&f, DC_TENANCY_DATABASE, W.primary, "eu-2", pattern);
	fx_start(&f, "r1");
	OK(E->enter(f.conn, tenant(&f, W.dbs[0]), &f.err));
	OK(E->lock_tenant(f.conn, 1000, &f.err));
	OK(E->begin(f.conn, &f.err));
	OK(E->history_ensure(f.conn, &f.err));
	OK(E->history_read(f.conn, &rows, &n, &f.err));
	OK(E->query_text(f.conn,
	                 "SELECT current_database() || ' ' || current_setting('deployclaw.tenant')",
	                 &out, 1, &f.err));
	assert_non_null(strstr(out.buf, W.dbs[0]));
	dc_strbuf_release(&out);
	run(&f, "CREATE TABLE public.made (x int)");
	OK(E->history_write(f.conn, &row, &f.err));
	OK(E->commit(f.conn, &f.err));
	OK(E->unlock_tenant(f.conn, &f.err));
	/* the next tenant is another database: the connection moves */
	OK(E->enter(f.conn, tenant(&f, W.dbs[2]), &f.err));
	OK(E->query_text(f.conn, "SELECT current_database()", &out, 1, &f.err));
	assert_non_null(strstr(out.buf, W.dbs[2]));
	dc_strbuf_release(&out);
	fx_close(&f);

	dsn = dsn_with_db(W.primary, W.dbs[0]);
	tc = connect_to(dsn);
	assert_int_equal(count1(tc, "SELECT count(*) FROM public.deployclaw_history", NULL), 1);
	assert_int_equal(count1(tc,
	                        "SELECT count(*) FROM deployclaw.tenant_state WHERE tenant = $1",
	                        W.dbs[0]),
	                 1);
	assert_int_equal(
	        count1(tc, "SELECT count(*) FROM pg_tables WHERE tablename = 'made'", NULL), 1);
	PQfinish(tc);
	free(dsn);
}

/* ------------------------------------------------------------------------ */
/* Locks and timeouts                                                       */

static void lock_timeout_is_55P03(void **state)
{
	fx f;
	dc_statement s = stmt_at("ALTER TABLE items ADD COLUMN y int", 3, 1);
	PGconn *holder = connect_to(W.schema_dsn);
	int64_t t0;

	(void)state;
	sql(holder, "BEGIN; LOCK TABLE tn_a.items IN ACCESS EXCLUSIVE MODE");
	fx_open(&f, DC_TENANCY_SCHEMA, W.schema_dsn, "eu-1", "tn%");
	f.cfg.gates.lock_timeout_ms = 200;
	fx_start(&f, "r1");
	OK(E->enter(f.conn, tenant(&f, "tn_a"), &f.err));
	OK(E->begin(f.conn, &f.err));
	t0 = dc_time_mono_ms();
	assert_int_equal(E->exec(f.conn, &s, NULL, &f.err), DC_EDB);
	assert_true(dc_time_mono_ms() - t0 < 1500);
	assert_string_equal(f.err.sqlstate, "55P03");
	assert_non_null(strstr(f.err.message, "tenant 'tn_a' (shard 'eu-1'): "));
	assert_non_null(strstr(f.err.message, "lock timeout"));
	assert_string_equal(f.err.tenant, "tn_a");
	assert_string_equal(f.err.shard, "eu-1");
	OK(E->rollback(f.conn, &f.err));
	sql(holder, "ROLLBACK");

	/* statement_timeout as well */
	f.cfg.gates.statement_timeout_ms = 150;
	E->disconnect(f.conn);
	E->close(f.engine);
	memset(&f.err, 0, sizeof(f.err));
	assert_int_equal(E->open(&f.engine, &f.cfg, &f.shard, &f.err), 0);
	assert_int_equal(E->connect(f.engine, &f.conn, &f.err), 0);
	OK(E->enter(f.conn, tenant(&f, "tn_a"), &f.err));
	OK(E->begin(f.conn, &f.err));
	s = stmt_at("SELECT pg_sleep(2)", 1, 1);
	assert_int_equal(E->exec(f.conn, &s, NULL, &f.err), DC_EDB);
	assert_string_equal(f.err.sqlstate, "57014");
	OK(E->rollback(f.conn, &f.err));
	fx_close(&f);
	PQfinish(holder);
}

/* Releases the tenant lock of fixture `arg` after 200 ms. */
static void *unlock_later(void *arg)
{
	fx *f = arg;
	struct timespec ts = { 0, 200 * 1000 * 1000 };

	nanosleep(&ts, NULL);
	(void)E->unlock_tenant(f->conn, &f->err);
	return NULL;
}

static void advisory_lock_names_the_holder(void **state)
{
	fx a, b;
	char pid[32];
	const dc_tenant *t;
	dc_error *e;

	(void)state;
	fx_open(&a, DC_TENANCY_SCHEMA, W.schema_dsn, "eu-1", "tn%");
	fx_start(&a, "holder-run");
	fx_open(&b, DC_TENANCY_SCHEMA, W.schema_dsn, "eu-1", "tn%");
	fx_start(&b, "loser-run");
	t = tenant(&a, "tn space");
	assert_int_equal(E->enter(a.conn, t, &a.err), 0);
	assert_int_equal(E->lock_tenant(a.conn, 0, &a.err), 0);
	/* taken with the begin that follows, in its round trip */
	assert_int_equal(E->begin(a.conn, &a.err), 0);
	assert_int_equal(E->rollback(a.conn, &a.err), 0);
	value1(W.side, pid, sizeof(pid),
	       "SELECT a.pid::text FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid "
	       "WHERE a.application_name = $1 AND l.locktype = 'advisory'",
	       "deployclaw/holder-run");

	e = &b.err;
	assert_int_equal(E->enter(b.conn, tenant(&b, "tn space"), e), 0);
	assert_int_equal(E->lock_tenant(b.conn, 100, e), 0);
	assert_int_equal(E->begin(b.conn, e), DC_ELOCKED);
	/* nothing of the begin is left open: the connection is idle */
	assert_int_equal(count1(W.side,
	                        "SELECT count(*) FROM pg_stat_activity WHERE "
	                        "application_name = $1 AND state <> 'idle'",
	                        "deployclaw/loser-run"),
	                 0);
	assert_non_null(strstr(e->message, "tenant 'tn space' (shard 'eu-1') is locked by another "
	                                   "deployclaw process: application_name "
	                                   "'deployclaw/holder-run', pid "));
	assert_non_null(strstr(e->message, pid));
	assert_non_null(strstr(e->message, ", since "));
	assert_string_equal(e->tenant, "tn space");

	/* another tenant of the shard is free */
	memset(e, 0, sizeof(*e));
	assert_int_equal(E->enter(b.conn, tenant(&b, "tn_a"), e), 0);
	assert_int_equal(E->lock_tenant(b.conn, 0, e), 0);
	assert_int_equal(E->begin(b.conn, e), 0);
	assert_int_equal(E->rollback(b.conn, e), 0);
	assert_int_equal(E->unlock_tenant(b.conn, e), 0);

	/* released: the waiter gets it within its timeout */
	assert_int_equal(E->enter(b.conn, tenant(&b, "tn space"), e), 0);
	assert_int_equal(E->unlock_tenant(a.conn, &a.err), 0);
	assert_int_equal(E->lock_tenant(b.conn, 1000, e), 0);
	assert_int_equal(E->begin(b.conn, e), 0);
	assert_int_equal(E->enter(a.conn, t, &a.err), 0);
	assert_int_equal(E->lock_tenant(a.conn, 0, &a.err), 0);
	assert_int_equal(E->begin(a.conn, &a.err), DC_ELOCKED);
	assert_non_null(strstr(a.err.message, "deployclaw/loser-run"));
	assert_int_equal(E->rollback(b.conn, e), 0);

	/* any other operation takes a deferred lock before it runs */
	memset(&a.err, 0, sizeof(a.err));
	assert_int_equal(E->enter(a.conn, t, &a.err), 0);
	assert_int_equal(E->lock_tenant(a.conn, 0, &a.err), 0);
	assert_int_equal(E->history_ensure(a.conn, &a.err), DC_ELOCKED);
	assert_int_equal(E->unlock_tenant(b.conn, e), 0);
	memset(&a.err, 0, sizeof(a.err));
	assert_int_equal(E->lock_tenant(a.conn, 1000, &a.err), 0);
	assert_int_equal(E->history_ensure(a.conn, &a.err), 0);
	assert_int_equal(count1(W.side,
	                        "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a "
	                        "ON a.pid = l.pid WHERE l.locktype = 'advisory' AND "
	                        "a.application_name = $1",
	                        "deployclaw/holder-run"),
	                 1);
	assert_int_equal(E->unlock_tenant(a.conn, &a.err), 0);

	/* a begin that finds the lock held waits for it, then begins holding it */
	memset(&a.err, 0, sizeof(a.err));
	memset(e, 0, sizeof(*e));
	assert_int_equal(E->lock_tenant(a.conn, 0, &a.err), 0);
	assert_int_equal(E->history_ensure(a.conn, &a.err), 0);
	assert_int_equal(E->enter(b.conn, tenant(&b, "tn space"), e), 0);
	assert_int_equal(E->lock_tenant(b.conn, 10000, e), 0);
	{
		pthread_t th;
		int64_t t0 = dc_time_mono_ms();

		assert_int_equal(pthread_create(&th, NULL, unlock_later, &a), 0);
		assert_int_equal(E->begin(b.conn, e), 0);
		assert_true(dc_time_mono_ms() - t0 >= 200);
		assert_int_equal(pthread_join(th, NULL), 0);
	}
	assert_int_equal(count1(W.side,
	                        "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a "
	                        "ON a.pid = l.pid WHERE l.locktype = 'advisory' AND "
	                        "a.application_name = $1 AND a.state = 'idle in transaction'",
	                        "deployclaw/loser-run"),
	                 1);
	assert_int_equal(E->rollback(b.conn, e), 0);
	assert_int_equal(E->unlock_tenant(b.conn, e), 0);
	fx_close(&a);
	fx_close(&b);
}

static void lost_connection_reconnects(void **state)
{
	fx f;
	dc_statement s = stmt_at("SELECT 1", 1, 1);
	char n[32];

	(void)state;
	fx_open(&f, DC_TENANCY_SCHEMA, W.schema_dsn, "eu-1", "tn%");
	fx_start(&f, "lost-run");
	OK(E->enter(f.conn, tenant(&f, "tn_a"), &f.err));
	OK(E->begin(f.conn, &f.err));
	value1(W.side, n, sizeof(n),
	       "SELECT count(pg_terminate_backend(pid))::text FROM pg_stat_activity "
	       "WHERE application_name = $1 AND backend_type = 'client backend' "
	       "AND state LIKE 'idle in transaction%'",
	       "deployclaw/lost-run");
	assert_string_equal(n, "1");
	assert_int_equal(E->exec(f.conn, &s, NULL, &f.err), DC_EDB);
	assert_string_equal(f.err.sqlstate, "08006");
	assert_non_null(strstr(f.err.message, "connection to the server lost"));
	memset(&f.err, 0, sizeof(f.err));
	OK(E->rollback(f.conn, &f.err));
	OK(E->begin(f.conn, &f.err)); /* reconnects */
	OK(E->exec(f.conn, &s, NULL, &f.err));
	OK(E->rollback(f.conn, &f.err));
	fx_close(&f);
}

/* ------------------------------------------------------------------------ */
/* Statements                                                               */

static long invalid_indexes(const char *schema)
{
	return count1(W.side,
	              "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
	              "JOIN pg_namespace n ON n.oid = c.relnamespace "
	              "WHERE n.nspname = $1 AND NOT i.indisvalid",
	              schema);
}

static long indexes(const char *schema)
{
	return count1(W.side,
	              "SELECT count(*) FROM pg_indexes WHERE schemaname = $1 AND "
	              "indexname <> 'items_pkey' AND tablename = 'items'",
	              schema);
}

static void concurrent_index_failure_leaves_nothing(void **state)
{
	const char *id = "tn_Ünïcødé";
	fx f;
	dc_statement named =
	        stmt_at("CREATE UNIQUE INDEX CONCURRENTLY \"Ü idx\" ON items (v)", 4, 3);
	dc_statement unnamed = stmt_at("CREATE UNIQUE INDEX CONCURRENTLY ON items (v)", 5, 1);
	dc_statement good =
	        stmt_at("CREATE UNIQUE INDEX CONCURRENTLY items_id_uq ON items (id)", 6, 1);
	dc_statement plain = stmt_at("ALTER TABLE items ADD COLUMN z int", 1, 1);
	bool ac = false;

	(void)state;
	fx_open(&f, DC_TENANCY_SCHEMA, W.schema_dsn, "eu-1", "tn%");
	fx_start(&f, "r1");
	OK(E->autocommit_only(&named, &ac, &f.err));
	assert_true(ac);
	OK(E->autocommit_only(&plain, &ac, &f.err));
	assert_false(ac);

	OK(E->enter(f.conn, tenant(&f, id), &f.err));
	/* inside a transaction: refused before it reaches the server */
	OK(E->begin(f.conn, &f.err));
	assert_int_equal(E->exec(f.conn, &named, NULL, &f.err), DC_EINVAL);
	assert_non_null(
	        strstr(f.err.message, "CREATE INDEX CONCURRENTLY cannot run inside a transaction"));
	assert_string_equal(f.err.file, "migrations/001.sql");
	assert_int_equal(f.err.line, 4);
	OK(E->rollback(f.conn, &f.err));
	memset(&f.err, 0, sizeof(f.err));

	/* outside: the unique build fails on duplicates, the INVALID index goes */
	assert_int_equal(E->exec(f.conn, &named, NULL, &f.err), DC_EDB);
	assert_string_equal(f.err.sqlstate, "23505");
	assert_int_equal(invalid_indexes(id), 0);
	assert_int_equal(indexes(id), 0);
	memset(&f.err, 0, sizeof(f.err));
	assert_int_equal(E->exec(f.conn, &unnamed, NULL, &f.err), DC_EDB);
	assert_string_equal(f.err.sqlstate, "23505");
	assert_int_equal(invalid_indexes(id), 0);
	assert_int_equal(indexes(id), 0);
	memset(&f.err, 0, sizeof(f.err));

	/* a successful one is built in the tenant's schema, valid */
	OK(E->exec(f.conn, &good, NULL, &f.err));
	assert_int_equal(indexes(id), 1);
	assert_int_equal(invalid_indexes(id), 0);
	/* building it again fails on the name: the existing index stays */
	assert_int_equal(E->exec(f.conn, &good, NULL, &f.err), DC_EDB);
	assert_string_equal(f.err.sqlstate, "42P07");
	assert_int_equal(indexes(id), 1);
	memset(&f.err, 0, sizeof(f.err));
	run(&f, "DROP INDEX CONCURRENTLY items_id_uq");
	assert_int_equal(indexes(id), 0);
	fx_close(&f);
}

static void error_positions_and_refusals(void **state)
{
	fx f;
	dc_statement s;
	int64_t rows = -1;
	bool b = true;
	char fp1[65], fp2[65], fp3[65];

	(void)state;
	fx_open(&f, DC_TENANCY_SCHEMA, W.schema_dsn, "eu-1", "tn%");
	fx_start(&f, "r1");
	OK(E->enter(f.conn, tenant(&f, "tn_a"), &f.err));
	OK(E->begin(f.conn, &f.err));

	/* on the statement's first line: its column plus the offset */
	s = stmt_at("SELECT nosuch FROM items", 10, 5);
	assert_int_equal(E->exec(f.conn, &s, NULL, &f.err), DC_EDB);
	assert_string_equal(f.err.sqlstate, "42703");
	assert_string_equal(f.err.file, "migrations/001.sql");
	assert_int_equal(f.err.line, 10);
	assert_int_equal(f.err.col, 12);
	assert_non_null(strstr(f.err.message, "tenant 'tn_a' (shard 'eu-1'): column \"nosuch\""));
	OK(E->rollback(f.conn, &f.err));
	memset(&f.err, 0, sizeof(f.err));

	/* on a later line, counting characters (not bytes) */
	OK(E->begin(f.conn, &f.err));
	s = stmt_at("UPDATE items\n   SET v = 'é' || nosuch", 10, 5);
	assert_int_equal(E->exec(f.conn, &s, NULL, &f.err), DC_EDB);
	assert_int_equal(f.err.line, 11);
	assert_int_equal(f.err.col, 19);
	OK(E->rollback(f.conn, &f.err));
	memset(&f.err, 0, sizeof(f.err));

	/* a syntax error is found by the parser, before the server */
	s = stmt_at("SELECT 1\n  FROMM items", 7, 3);
	assert_int_equal(E->exec(f.conn, &s, NULL, &f.err), DC_EPARSE);
	assert_int_equal(f.err.line, 8);
	assert_int_equal(f.err.col, 9);
	memset(&f.err, 0, sizeof(f.err));

	/* transaction control is deployclaw's */
	OK(E->begin(f.conn, &f.err));
	s = stmt_at("COMMIT", 2, 1);
	assert_int_equal(E->exec(f.conn, &s, NULL, &f.err), DC_EINVAL);
	assert_non_null(strstr(f.err.message, "COMMIT inside a migration"));
	memset(&f.err, 0, sizeof(f.err));

	/* rows changed, and only by DML */
	run(&f, "SELECT 1");
	s = stmt_at("UPDATE items SET v = v WHERE id <= 4", 1, 1);
	OK(E->exec(f.conn, &s, &rows, &f.err));
	assert_int_equal(rows, 4);
	s = stmt_at("SELECT * FROM items", 1, 1);
	OK(E->exec(f.conn, &s, &rows, &f.err));
	assert_int_equal(rows, 0);

	/* verify assertions: one row, one column; NULL is false */
	s = stmt_at("SELECT count(*) = 9 FROM items", 1, 1);
	OK(E->query_bool(f.conn, &s, &b, &f.err));
	assert_true(b);
	s = stmt_at("SELECT NULL::boolean", 1, 1);
	OK(E->query_bool(f.conn, &s, &b, &f.err));
	assert_false(b);
	s = stmt_at("SELECT count(*) FROM items WHERE id < 0", 1, 1);
	OK(E->query_bool(f.conn, &s, &b, &f.err));
	assert_false(b);
	s = stmt_at("SELECT id FROM items", 1, 1);
	assert_int_equal(E->query_bool(f.conn, &s, &b, &f.err), DC_EINVAL);
	assert_non_null(strstr(f.err.message, "rows (expected one)"));
	memset(&f.err, 0, sizeof(f.err));

	/* the fingerprint sees a column come and go, inside the transaction */
	OK(E->schema_fingerprint(f.conn, fp1, &f.err));
	run(&f, "ALTER TABLE items ADD COLUMN extra int");
	OK(E->schema_fingerprint(f.conn, fp2, &f.err));
	run(&f, "ALTER TABLE items DROP COLUMN extra");
	OK(E->schema_fingerprint(f.conn, fp3, &f.err));
	assert_string_not_equal(fp1, fp2);
	assert_string_equal(fp1, fp3);
	/* the savepoint left the tenant's search_path in place */
	run(&f, "SELECT * FROM items");
	OK(E->rollback(f.conn, &f.err));
	/* and the same outside a transaction */
	OK(E->schema_fingerprint(f.conn, fp2, &f.err));
	assert_string_equal(fp1, fp2);
	fx_close(&f);
}

/* ------------------------------------------------------------------------ */
/* Session state ends with its tenant                                       */

/* What a migration can leave on the worker's session (issue 13). */
static void leave_session_state(fx *f)
{
	run(f, "CREATE TEMPORARY TABLE t (x int)");
	run(f, "INSERT INTO t VALUES (1)");
	run(f, "SET application_name = 'tenant-left-this'");
	run(f, "SET app.x = 'left'");
	run(f, "SELECT pg_advisory_lock(4242)");
	run(f, "PREPARE p AS SELECT 1");
	run(f, "LISTEN chan");
	run(f, "CREATE TEMPORARY SEQUENCE s");
	run(f, "SELECT nextval('s')");
	run(f, "SET ROLE pg_monitor"); /* last: the role may do less than the rest */
}

/* One line per kind of state, "t" when none of the previous tenant's is
 * left -- and deployclaw's own settings for this tenant in place. */
#define SESSION_CLEAN                                                                    \
	"SELECT to_regclass('pg_temp.t') IS NULL UNION ALL "                             \
	"SELECT current_setting('application_name') = 'deployclaw/r1' UNION ALL "        \
	"SELECT coalesce(current_setting('app.x', true), '') = '' UNION ALL "            \
	"SELECT NOT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' "         \
	"AND pid = pg_backend_pid() AND classid = 0 AND objid = 4242) UNION ALL "        \
	"SELECT NOT EXISTS (SELECT 1 FROM pg_prepared_statements WHERE name = 'p') "     \
	"UNION ALL SELECT NOT EXISTS (SELECT 1 FROM pg_listening_channels() l "          \
	"WHERE l = 'chan') UNION ALL SELECT to_regclass('pg_temp.s') IS NULL UNION ALL " \
	"SELECT current_setting('lock_timeout') = '2s' UNION ALL "                       \
	"SELECT current_user = session_user UNION ALL "                                  \
	"SELECT current_setting('deployclaw.tenant') = $$%s$$"

static void assert_session_clean(fx *f, const char *id)
{
	char q[2048];
	dc_strbuf out = DC_STRBUF_INIT;

	snprintf(q, sizeof(q), SESSION_CLEAN, id);
	if (E->query_text(f->conn, q, &out, 20, &f->err) != 0)
		fail_msg("%s: %s", q, f->err.message);
	assert_string_equal(out.buf, "t\nt\nt\nt\nt\nt\nt\nt\nt\nt\n");
	dc_strbuf_release(&out);
}

/*
 * One worker connection, three tenant visits: what the first tenant's
 * migration left on the session is gone when the second runs (its unlock
 * carried the reset, as in a rollout), and the second's is gone for the
 * third (an unlock that waited for its answer: enter sends the reset).
 */
static void session_state_ends_with_the_tenant(void **state)
{
	fx f;

	(void)state;
	fx_open(&f, DC_TENANCY_SCHEMA, W.schema_dsn, "eu-1", "tn%");
	fx_start(&f, "r1");
	OK(E->enter(f.conn, tenant(&f, "tn_a"), &f.err));
	OK(E->lock_tenant(f.conn, 1000, &f.err));
	OK(E->begin(f.conn, &f.err));
	leave_session_state(&f);
	OK(E->commit(f.conn, &f.err));
	E->unlock_tenant(f.conn, NULL);

	OK(E->enter(f.conn, tenant(&f, "tn space"), &f.err));
	OK(E->lock_tenant(f.conn, 1000, &f.err));
	OK(E->begin(f.conn, &f.err));
	assert_session_clean(&f, "tn space");
	leave_session_state(&f);
	OK(E->commit(f.conn, &f.err));
	OK(E->unlock_tenant(f.conn, &f.err));

	/* outside a transaction: the session settings, not SET LOCAL */
	OK(E->enter(f.conn, tenant(&f, "tn_a"), &f.err));
	assert_session_clean(&f, "tn_a");
	fx_close(&f);
}

/* ------------------------------------------------------------------------ */
/* The run-time isolation check                                             */

/*
 * One visit of tenant `id` of `f` that runs `sql` (NULL: nothing) and writes
 * its history row, as a rollout does, then asks the isolation check (`full`
 * or not) before the commit: what it reports, in `out` (caller releases).
 * The visit is rolled back unless `commit`.
 */
static void iso_visit(fx *f,
                      const char *id,
                      const char *sql,
                      bool full,
                      bool commit,
                      dc_strbuf *out)
{
	dc_history_row row = hrow("iso", "main", DC_HISTORY_APPLIED);
	dc_history_row *rows = NULL;
	size_t n = 0;

	if (E->enter(f->conn, tenant(f, id), &f->err) != 0 ||
	    E->lock_tenant(f->conn, 1000, &f->err) != 0 || E->begin(f->conn, &f->err) != 0 ||
	    E->history_ensure(f->conn, &f->err) != 0 ||
	    E->history_read(f->conn, &rows, &n, &f->err) != 0)
		fail_msg("visit of '%s': %s", id, f->err.message);
	dc_history_rows_free(rows, n);
	if (sql)
		run(f, sql);
	/* sent without waiting: the check reads its answer in its own round trip */
	if (E->history_write(f->conn, &row, &f->err) != 0 ||
	    E->check(f->conn, DC_CHECK_ISOLATION, full, out, 10, &f->err) != 0 ||
	    (commit ? E->commit(f->conn, &f->err) : E->rollback(f->conn, &f->err)) != 0 ||
	    E->unlock_tenant(f->conn, &f->err) != 0)
		fail_msg("visit of '%s' (%s): %s", id, sql ? sql : "nothing", f->err.message);
}

/* The check's report of `sql` in tenant tn_a (rolled back), "" when clean. */
static char *iso_report(fx *f, const char *sql, bool full)
{
	dc_strbuf out = DC_STRBUF_INIT;

	iso_visit(f, "tn_a", sql, full, false, &out);
	dc_strbuf_addch(&out, '\0'); /* "" rather than NULL when clean */
	return dc_strbuf_detach(&out, NULL);
}

static void assert_reports(fx *f, const char *sql, bool full, const char *what)
{
	char *r = iso_report(f, sql, full);

	if (!strstr(r, what))
		fail_msg("%s: the isolation check reports '%s', not '%s'", sql, r, what);
	free(r);
}

static void assert_clean(fx *f, const char *sql, bool full)
{
	char *r = iso_report(f, sql, full);

	if (r[0])
		fail_msg("%s: the isolation check reports '%s' on a clean transaction",
		         sql ? sql : "(nothing)", r);
	free(r);
}

/*
 * Each way out of the tenant is reported, naming the object or the setting;
 * a transaction that stays in its schema (its own tables and functions, a
 * temporary table, the history write) is not.
 */
static void isolation_check_names_what_left_the_tenant(void **state)
{
	fx f;
	dc_strbuf out = DC_STRBUF_INIT;
	char role[128], what[128];
	const char *fn = "DO $$ BEGIN EXECUTE format('CREATE FUNCTION %I.f() RETURNS int "
	                 "LANGUAGE sql AS ''SELECT 1''', 'oth' || 'er'); "
	                 "EXCEPTION WHEN others THEN RAISE; END $$";

	(void)state;
	assert_true((E->check_kinds & (1u << DC_CHECK_ISOLATION)) != 0);
	sql(W.admin, "CREATE ROLE %s_su SUPERUSER NOLOGIN", W.prefix); /* teardown drops it */
	fx_open(&f, DC_TENANCY_SCHEMA, W.schema_dsn, "eu-1", "tn%");
	fx_start(&f, "r1");
	assert_clean(&f, NULL, true);
	assert_clean(&f,
	             "CREATE TABLE mine (a int PRIMARY KEY, b text); "
	             "INSERT INTO mine VALUES (1, 'x'); UPDATE items SET v = 'w'; "
	             "CREATE TEMPORARY TABLE scratch (a int); "
	             "CREATE FUNCTION mine_f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
	             true);
	assert_clean(&f, "UPDATE items SET v = 'w'", false);

	assert_reports(&f, "UPDATE other.items SET id = id", false,
	               "table other.items locked by this transaction (RowExclusiveLock)");
	assert_reports(&f, "SELECT count(*) FROM \"tn space\".items", false,
	               "table \"tn space\".items locked by this transaction (AccessShareLock)");
	assert_reports(&f, "SELECT set_config('search_path', 'other', true)", false,
	               "search_path is 'other', not '\"tn_a\"' as the transaction began");
	/* a role that may still write the history: only the check stops it */
	snprintf(role, sizeof(role), "SET LOCAL ROLE %s_su", W.prefix);
	snprintf(what, sizeof(what), "current_user is '%s_su', not '", W.prefix);
	assert_reports(&f, role, false, what);
	/* a function takes no relation lock: only the catalogs (full) show it,
	 * made here in a subtransaction (the EXCEPTION clause) */
	assert_clean(&f, fn, false);
	assert_reports(&f, fn, true, "function other.f created or changed by this transaction");
	assert_reports(&f, "DO $$ BEGIN EXECUTE 'ALTER TABLE other.items ADD COLUMN c int'; END $$",
	               true, "column other.items.c created or changed by this transaction");
	assert_int_equal(count1(W.side, "SELECT count(*) FROM pg_proc WHERE proname = $1", "f"), 0);

	/* a tenant whose schema name needs quoting stays in it too */
	iso_visit(&f, "tn space", "UPDATE items SET v = 'w'", true, false, &out);
	assert_int_equal(out.len, 0);

	/* a clean visit still commits after the check, its history row with it */
	iso_visit(&f, "tn_a", "CREATE TABLE kept_after_check (a int)", true, true, &out);
	assert_int_equal(out.len, 0);
	assert_int_equal(table_exists("tn_a", "kept_after_check"), 1);
	fx_close(&f);

	/* row model: no schema boundary, the settings still count */
	fx_open(&f, DC_TENANCY_ROW, W.row_dsn, "eu-row", NULL);
	fx_start(&f, "r1");
	iso_visit(&f, "eu-row", "SET LOCAL search_path TO pg_catalog", true, false, &out);
	dc_strbuf_addch(&out, '\0');
	assert_non_null(strstr(out.buf, "search_path is 'pg_catalog', not '"));
	dc_strbuf_release(&out);
	iso_visit(&f, "eu-row", NULL, true, false, &out);
	assert_int_equal(out.len, 0);
	fx_close(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(discover_schema_model),
		cmocka_unit_test(discover_database_and_row_models),
		cmocka_unit_test(discovery_agrees_everywhere),
		cmocka_unit_test(exec_and_history_in_one_transaction),
		cmocka_unit_test(failed_history_write_fails_what_follows),
		cmocka_unit_test(read_all_equals_per_tenant_reads),
		cmocka_unit_test(database_model_transaction),
		cmocka_unit_test(lock_timeout_is_55P03),
		cmocka_unit_test(advisory_lock_names_the_holder),
		cmocka_unit_test(lost_connection_reconnects),
		cmocka_unit_test(concurrent_index_failure_leaves_nothing),
		cmocka_unit_test(error_positions_and_refusals),
		cmocka_unit_test(session_state_ends_with_the_tenant),
		cmocka_unit_test(isolation_check_names_what_left_the_tenant),
	};

	return cmocka_run_group_tests(tests, setup_world, teardown_world);
}
