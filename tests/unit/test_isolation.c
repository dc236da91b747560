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
	dc_isolation_opts o = { .kinds = DC_ISO_ALL, .schema_tenancy = schema_tenancy };
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
	{ "DO $$ BEGIN EXECUTE format('SELECT %s', 1); END $$", false, DC_ISO_DYNAMIC, 12, "in a DO block: EXECUTE runs SQL built at run time" },
	{ "DO $$ DECLARE r record; s text := 'SELECT 1'; BEGIN FOR r IN EXECUTE s LOOP END LOOP; END $$", false, DC_ISO_DYNAMIC, 61, "EXECUTE" },
	/* EXECUTE of a string constant is known SQL: checked, placed at the EXECUTE */
	{ "DO $$ BEGIN EXECUTE 'UPDATE tenant_0003.orders SET total = 0'; END $$", true, DC_ISO_FOREIGN_REF, 12, "'tenant_0003.orders'" },
	{ "DO $$ BEGIN EXECUTE $q$SET search_path TO x$q$; END $$", false, DC_ISO_SESSION, 12, "SET search_path" },
	{ "DO $$ BEGIN EXECUTE 'SELEC nope'; END $$", false, DC_ISO_DYNAMIC, 12, "does not parse" },
	/* a DO block's static statements are checked where they are written, by the
	 * server's PL/pgSQL grammar: statements, conditions, assignments, PERFORM */
	{ "DO $$ BEGIN\n  UPDATE tenant_0003.orders SET total = 0;\nEND $$", true, DC_ISO_FOREIGN_REF, 21, "in a DO block" },
	{ "DO $body$ BEGIN PERFORM set_config('search_path', 'x', false); END $body$", false, DC_ISO_SESSION, 24, "set_config('search_path'" },
	{ "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM other.t) THEN RAISE NOTICE 'x'; END IF; END $$", true, DC_ISO_FOREIGN_REF, 41, "'other.t'" },
	{ "DO $$ DECLARE n int; BEGIN n := (SELECT count(*) FROM other.t); END $$", true, DC_ISO_FOREIGN_REF, 54, "'other.t'" },
	{ "DO $$ BEGIN SET search_path TO tenant_0003; END $$", false, DC_ISO_SESSION, 12, "SET search_path" },
	/* SELECT ... INTO is compiled without its INTO: placed at the statement's start */
	{ "DO $$ DECLARE c int; BEGIN\n  SELECT count(*) INTO c FROM other.t; END $$", true, DC_ISO_FOREIGN_REF, 29, "'other.t'" },
	{ "DO $$ BEGIN RESET ALL; END $$", false, DC_ISO_SESSION, 12, "RESET ALL" },
	{ "DO $$ BEGIN INSERT INTO deployclaw.tenant_state VALUES (1); END $$", false, DC_ISO_OWN_SCHEMA, 24, "deployclaw's own schema" },
	{ "DO LANGUAGE plpython3u $$ plpy.execute('x') $$", false, DC_ISO_DYNAMIC, 0, "language 'plpython3u'" },
	{ "DO $$ BEGIN x := ; END $$", false, DC_ISO_DYNAMIC, 0, "does not compile" },
	/* a function's body, PL/pgSQL or SQL, is checked like a DO block's */
	{ "CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN UPDATE other.t SET a = NEW.a; RETURN NEW; END $$", true, DC_ISO_FOREIGN_REF, 72, "in function 'f'" },
	{ "CREATE FUNCTION f(s text) RETURNS void LANGUAGE plpgsql AS $f$ BEGIN EXECUTE s; END $f$", false, DC_ISO_DYNAMIC, 69, "function 'f'" },
	{ "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT count(*)::int FROM other.t $$", true, DC_ISO_FOREIGN_REF, 77, "'other.t'" },
	{ "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT a FROM other.t'", true, DC_ISO_FOREIGN_REF, 0, "'other.t'" },
	/* names that are not relations: functions, types, sequences, grants */
	{ "CREATE FUNCTION tenant_0003.f() RETURNS int LANGUAGE sql AS 'SELECT 1'", true, DC_ISO_FOREIGN_REF, 0, "'tenant_0003.f'" },
	{ "SELECT tenant_0003.f()", true, DC_ISO_FOREIGN_REF, 7, "'tenant_0003.f'" },
	{ "ALTER TABLE t ADD COLUMN c tenant_0003.mood", true, DC_ISO_FOREIGN_REF, 27, "'tenant_0003.mood'" },
	{ "CREATE TYPE tenant_0003.mood AS ENUM ('a')", true, DC_ISO_FOREIGN_REF, 0, "'tenant_0003.mood'" },
	{ "ALTER TYPE tenant_0003.mood ADD VALUE 'b'", true, DC_ISO_FOREIGN_REF, 0, "'tenant_0003.mood'" },
	{ "CREATE DOMAIN tenant_0003.d AS int", true, DC_ISO_FOREIGN_REF, 0, "'tenant_0003.d'" },
	{ "SELECT nextval('tenant_0003.seq')", true, DC_ISO_FOREIGN_REF, 7, "'tenant_0003.seq'" },
	{ "SELECT 'tenant_0003.orders'::regclass", true, DC_ISO_FOREIGN_REF, 27, "'tenant_0003.orders'" },
	{ "DROP TABLE tenant_0003.orders", true, DC_ISO_FOREIGN_REF, 0, "'tenant_0003.orders'" },
	{ "DROP TRIGGER trg ON tenant_0003.orders", true, DC_ISO_FOREIGN_REF, 0, "'tenant_0003.trg'" },
	{ "DROP TYPE tenant_0003.mood", true, DC_ISO_FOREIGN_REF, 10, "'tenant_0003.mood'" },
	{ "DROP FUNCTION tenant_0003.f(int)", true, DC_ISO_FOREIGN_REF, 0, "'tenant_0003.f'" },
	{ "GRANT USAGE ON SCHEMA tenant_0003 TO app", true, DC_ISO_FOREIGN_REF, 0, "schema 'tenant_0003'" },
	{ "GRANT SELECT ON ALL TABLES IN SCHEMA tenant_0003 TO app", true, DC_ISO_FOREIGN_REF, 0, "schema 'tenant_0003'" },
	/* what the tenants of a shard share is changed by a shard migration */
	{ "CREATE EXTENSION IF NOT EXISTS pg_trgm", true, DC_ISO_SHARED, 0, "scope: shard" },
	{ "DROP EXTENSION pg_trgm", true, DC_ISO_SHARED, 0, "scope: shard" },
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
	/* bodies whose statements stay in the tenant pass, with no dynamic SQL */
	"DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class WHERE relname = 'x') THEN "
	"CREATE TABLE x (a int); END IF; END $$",
	"CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
	"NEW.updated_at := now(); RETURN NEW; END $$",
	"CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END",
	"CREATE TYPE mood AS ENUM ('a')",
	"DO $$ BEGIN EXECUTE 'CREATE TABLE x (a int)'; END $$",
	"SELECT nextval('seq'), 'orders'::regclass, pg_catalog.now()",
	"DROP TABLE orders; DROP TRIGGER trg ON orders; DROP TYPE mood; DROP FUNCTION f(int)",
};

typedef struct shared_case {
	const char *sql;
	bool refused;
} shared_case;

/* clang-format on */

/* tenancy.shared_schemas: read from a tenant migration, changed only from a
 * shard migration. */
static void shared_schemas_are_read_only(void **state)
{
	static const char *const shared[] = { "public" };
	static const shared_case cases[] = {
		{ "SELECT * FROM public.countries", false },
		{ "CREATE TABLE t (c int REFERENCES public.countries)", false },
		{ "INSERT INTO t SELECT * FROM public.countries", false },
		{ "UPDATE t SET c = x.id FROM public.countries x", false },
		{ "CREATE TABLE x AS SELECT * FROM public.countries", false },
		{ "SELECT public.slugify('a')", false },
		{ "ALTER TABLE t ADD COLUMN c public.citext", false },
		{ "INSERT INTO public.countries VALUES (1)", true },
		{ "UPDATE public.countries SET name = 'x'", true },
		{ "CREATE TABLE public.x (a int)", true },
		{ "ALTER TABLE public.countries ADD COLUMN a int", true },
		{ "DROP TABLE public.countries", true },
		{ "CREATE OR REPLACE FUNCTION public.f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
		  true },
		{ "DO $$ BEGIN INSERT INTO public.countries VALUES (1); END $$", true },
		{ "UPDATE other.t SET a = 1", true }, /* not shared: another tenant's */
	};
	dc_isolation_opts o = { .kinds = DC_ISO_ALL,
		                .schema_tenancy = true,
		                .shared = shared,
		                .nshared = 1 };
	dc_error err = { 0 };
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		got g;

		memset(&g, 0, sizeof(g));
		assert_int_equal(dc_analysis__isolation_sql(cases[i].sql, &o, record, &g, &err), 0);
		if ((g.n > 0) != cases[i].refused)
			fprintf(stderr, "%s: %zu findings: %s\n", cases[i].sql, g.n, g.msg);
		assert_int_equal(g.n > 0, cases[i].refused);
		if (cases[i].refused && strstr(cases[i].sql, "public."))
			assert_non_null(strstr(g.msg, "scope: shard"));
	}
}

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
	dc_isolation_opts o = { .kinds = DC_ISO_FOREIGN_REF, .schema_tenancy = true };
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
		cmocka_unit_test(shared_schemas_are_read_only),
		cmocka_unit_test(lets_safe_statements_by),
		cmocka_unit_test(schema_checks_only_under_schema_tenancy),
		cmocka_unit_test(kinds_select_checks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
