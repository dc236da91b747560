/*
 * test_isolation.c — the tenant-isolation check (src/analysis/isolation.c)
 * that lint (DC501, DC504) and the `isolation` gate share: each form it
 * refuses, with its kind and position, and the statements it must let by.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "analysis/isolation.h"

typedef struct got {
	size_t n;
	unsigned kind; /* of the first */
	int loc;
	char msg[512];
} got;

static int record(void *ctx, unsigned kind, int loc, const char *msg)
{
	got *g = ctx;

	if (g->n++ == 0) {
		g->kind = kind;
		g->loc = loc;
		snprintf(g->msg, sizeof(g->msg), "%s", msg);
	}
	return 0;
}

static got check(const char *sql, bool schema_tenancy)
{
	dc_isolation_opts o = { DC_ISO_ALL, schema_tenancy };
	dc_error err = { 0 };
	got g;

	memset(&g, 0, sizeof(g));
	assert_int_equal(dc_analysis__isolation_sql(sql, &o, record, &g, &err), 0);
	return g;
}

typedef struct hostile {
	const char *sql;
	bool schema_tenancy;
	unsigned kind;
	int loc; /* -1: the statement's start */
	const char *says;
} hostile;

/* clang-format off */
static const hostile hostiles[] = {
	{ "UPDATE tenant_0003.orders SET total = 0", true, DC_ISO_FOREIGN_REF, 7, "tenant_0003.orders" },
	{ "ALTER TABLE t SET SCHEMA other", true, DC_ISO_SCHEMA_MOVE, 0, "SET SCHEMA 'other'" },
	{ "CREATE SCHEMA evil", true, DC_ISO_SCHEMA_MOVE, 0, "CREATE SCHEMA 'evil'" },
	{ "INSERT INTO deployclaw.history VALUES (1)", false, DC_ISO_OWN_SCHEMA, 12, "deployclaw's own schema" },
	{ "DROP TABLE deployclaw.history", false, DC_ISO_OWN_SCHEMA, 0, "deployclaw's own schema" },
	{ "DROP SCHEMA deployclaw CASCADE", false, DC_ISO_OWN_SCHEMA, 0, "deployclaw's own schema" },
	{ "SET search_path TO tenant_0003", false, DC_ISO_SESSION, 0, "SET search_path" },
	{ "SET LOCAL search_path TO tenant_0003", false, DC_ISO_SESSION, 0, "SET LOCAL search_path" },
	{ "RESET search_path", false, DC_ISO_SESSION, 0, "RESET search_path" },
	{ "SET ROLE postgres", false, DC_ISO_SESSION, 0, "role" },
	{ "SET SESSION AUTHORIZATION postgres", false, DC_ISO_SESSION, 0, "session_authorization" },
	{ "RESET ALL", false, DC_ISO_SESSION, 0, "RESET ALL" },
	{ "DISCARD ALL", false, DC_ISO_SESSION, 0, "DISCARD" },
	{ "SELECT set_config('search_path', 'x', false)", false, DC_ISO_SESSION, 7, "set_config('search_path'" },
	{ "SELECT set_config('role', 'postgres', true)", false, DC_ISO_SESSION, 7, "set_config('role'" },
	{ "SELECT lower(set_config('session_authorization', 'x', true))", false, DC_ISO_SESSION, 13, "session_authorization" },
	{ "SELECT set_config(name, 'x', true) FROM t", false, DC_ISO_SESSION, 7, "<expression>" },
	{ "COPY t FROM PROGRAM 'id'", false, DC_ISO_OUTSIDE, 0, "PROGRAM" },
	{ "COPY t TO '/tmp/x'", false, DC_ISO_OUTSIDE, 0, "server file '/tmp/x'" },
	{ "SELECT dblink_exec('host=x', 'DROP TABLE t')", false, DC_ISO_OUTSIDE, 7, "dblink_exec()" },
	{ "SELECT lo_export(1, '/tmp/x')", false, DC_ISO_OUTSIDE, 7, "lo_export()" },
	{ "SELECT lo_import('/etc/passwd')", false, DC_ISO_OUTSIDE, 7, "lo_import()" },
	{ "CREATE SERVER s FOREIGN DATA WRAPPER postgres_fdw", false, DC_ISO_OUTSIDE, 0, "CREATE SERVER" },
	{ "CREATE FOREIGN TABLE f (a int) SERVER s", false, DC_ISO_OUTSIDE, 0, "CREATE FOREIGN TABLE" },
	{ "IMPORT FOREIGN SCHEMA public FROM SERVER s INTO x", false, DC_ISO_OUTSIDE, 0, "IMPORT FOREIGN SCHEMA" },
	{ "DO $$ BEGIN EXECUTE 'SELECT 1'; END $$", false, DC_ISO_DYNAMIC, 0, "cannot be checked" },
	/* the second statement of a text: positions are the text's */
	{ "CREATE TABLE a (i int);\nRESET ALL", false, DC_ISO_SESSION, 23, "RESET ALL" },
};

static const char *const safe[] = {
	"CREATE TABLE orders (id bigint PRIMARY KEY, total numeric)",
	"ALTER TABLE orders ADD COLUMN note text",
	"UPDATE orders SET total = 0 WHERE id = 1",
	"INSERT INTO orders SELECT * FROM orders_old",
	"DELETE FROM orders WHERE id = 1",
	"CREATE INDEX i ON orders (total)",
	"SELECT count(*) FROM pg_catalog.pg_class",
	"SELECT * FROM information_schema.tables",
	"CREATE TEMP TABLE x (a int); SELECT * FROM pg_temp.x",
	"SET lock_timeout = '1s'",
	"SET LOCAL statement_timeout = '5s'",
	"RESET lock_timeout",
	"SELECT set_config('lock_timeout', '1s', true)",
	"COPY orders FROM STDIN",
	"CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
};

/* clang-format on */

static void refuses_each_form(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(hostiles) / sizeof(hostiles[0]); i++) {
		const hostile *h = &hostiles[i];
		got g = check(h->sql, h->schema_tenancy);

		if (g.n == 0 || g.kind != h->kind || g.loc != h->loc || !strstr(g.msg, h->says))
			fprintf(stderr, "%s: %zu findings, kind %u at %d: %s\n", h->sql, g.n,
			        g.kind, g.loc, g.msg);
		assert_true(g.n > 0);
		assert_int_equal(g.kind, h->kind);
		assert_int_equal(g.loc, h->loc);
		assert_non_null(strstr(g.msg, h->says));
	}
}

static void lets_safe_statements_by(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(safe) / sizeof(safe[0]); i++) {
		got g = check(safe[i], true);

		if (g.n)
			fprintf(stderr, "%s: %s\n", safe[i], g.msg);
		assert_int_equal(g.n, 0);
	}
}

/* The schema checks are schema tenancy's; the others apply to every model. */
static void schema_checks_only_under_schema_tenancy(void **state)
{
	(void)state;
	assert_int_equal(check("UPDATE tenant_0003.orders SET total = 0", false).n, 0);
	assert_int_equal(check("CREATE SCHEMA evil", false).n, 0);
	assert_int_equal(check("SET search_path TO x", false).n, 1);
	assert_int_equal(check("UPDATE deployclaw.history SET checksum = ''", false).n, 1);
	/* reading deployclaw's schema is a write to nothing: another schema only under schema tenancy */
	assert_int_equal(check("SELECT * FROM deployclaw.history", false).n, 0);
	assert_int_equal(check("SELECT * FROM deployclaw.history", true).n, 1);
}

/* A caller picks kinds: DC501's walk asks for the schema references only. */
static void kinds_select_checks(void **state)
{
	dc_isolation_opts o = { DC_ISO_FOREIGN_REF, true };
	dc_error err = { 0 };
	got g;

	(void)state;
	memset(&g, 0, sizeof(g));
	assert_int_equal(dc_analysis__isolation_sql("SET search_path TO x; DO $$ BEGIN END $$", &o,
	                                            record, &g, &err),
	                 0);
	assert_int_equal(g.n, 0);
	assert_int_equal(dc_analysis__isolation_sql("SELECT * FROM other.t", &o, record, &g, &err),
	                 0);
	assert_int_equal(g.n, 1);
	assert_int_equal(dc_analysis__isolation_sql("SELEC nope", &o, record, &g, &err), DC_EPARSE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(refuses_each_form),
		cmocka_unit_test(lets_safe_statements_by),
		cmocka_unit_test(schema_checks_only_under_schema_tenancy),
		cmocka_unit_test(kinds_select_checks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
