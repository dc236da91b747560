/*
 * plan --safe against a real server: DEPLOYCLAW_PRIMARY (scripts/pg-sandbox
 * up; eval "$(scripts/pg-sandbox env)"). Fails, never skips, when it is unset.
 *
 * For each pattern, three equal schemas get the same tables and rows. The
 * original migration runs in `a` (statement by statement), the rewritten one
 * in `b` as deployclaw runs it (transactional phases in a transaction, the
 * others in autocommit, batch phases repeated until they touch no row), and
 * then the catalogs are compared: columns (by name: a swapped column moves
 * to the end of the table), types, NOT NULL, defaults, constraints with their
 * definitions and validity, indexes with their definitions and validity,
 * triggers and functions left behind. So are the rows (per column, as a
 * sorted multiset). The verify assertions of the rewrite must hold in `b`.
 * Where every schema-changing phase has a down, running the downs in reverse
 * must bring `b` back to `c`, which only ran the setup.
 *
 * Works in a database of its own (dcrw<pid>), dropped at the end.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include <deployclaw/migration.h>
#include <deployclaw/rewrite.h>

#include "../../src/analysis/analysis_internal.h"
#include "../unit/tmpdir.h"

static const char *primary;
static char dbname[64];
static PGconn *conn;

/* ---- libpq ---- */

static void exec_ok(const char *sql)
{
	PGresult *res = PQexec(conn, sql);
	ExecStatusType st = PQresultStatus(res);

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
		fail_msg("%s\n  in: %s", PQerrorMessage(conn), sql);
	PQclear(res);
}

/* Rows a statement touched. */
static long exec_rows(const char *sql)
{
	PGresult *res = PQexec(conn, sql);
	ExecStatusType st = PQresultStatus(res);
	long n;

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
		fail_msg("%s\n  in: %s", PQerrorMessage(conn), sql);
	n = atol(PQcmdTuples(res));
	PQclear(res);
	return n;
}

/* The first column of the one row of `sql` with one text parameter (heap). */
static char *query1(const char *sql, const char *param)
{
	const char *params[1] = { param };
	PGresult *res = PQexecParams(conn, sql, param ? 1 : 0, NULL, params, NULL, NULL, 0);
	char *out;

	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
		fail_msg("%s\n  in: %s", PQerrorMessage(conn), sql);
	out = strdup(PQgetisnull(res, 0, 0) ? "" : PQgetvalue(res, 0, 0));
	PQclear(res);
	return out;
}

static void use_schema(const char *schema)
{
	char sql[256];

	snprintf(sql, sizeof(sql), "SET search_path TO %s", schema);
	exec_ok(sql);
}

/* Everything the comparison looks at in `schema`, one sorted line each. */
static char *describe(const char *schema)
{
	static const char sql[] =
	        "SELECT coalesce(string_agg(l, E'\\n' ORDER BY l), '') FROM ("
	        " SELECT format('column %s.%s %s not_null=%s default=%s', c.relname, a.attname,"
	        "   format_type(a.atttypid, a.atttypmod), a.attnotnull,"
	        "   pg_get_expr(d.adbin, d.adrelid)) AS l"
	        " FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
	        " JOIN pg_namespace n ON n.oid = c.relnamespace"
	        " LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
	        " WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND a.attnum > 0"
	        "   AND NOT a.attisdropped"
	        " UNION ALL"
	        " SELECT format('constraint %s.%s %s validated=%s deferrable=%s/%s', c.relname,"
	        "   co.conname, pg_get_constraintdef(co.oid), co.convalidated, co.condeferrable,"
	        "   co.condeferred)"
	        " FROM pg_constraint co JOIN pg_class c ON c.oid = co.conrelid"
	        " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1"
	        " UNION ALL"
	        " SELECT format('index %s.%s %s valid=%s', c.relname, i.relname,"
	        "   replace(pg_get_indexdef(x.indexrelid), quote_ident($1) || '.', ''),"
	        "   x.indisvalid)"
	        " FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid"
	        " JOIN pg_class c ON c.oid = x.indrelid"
	        " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1"
	        " UNION ALL"
	        " SELECT format('trigger %s.%s', c.relname, t.tgname) FROM pg_trigger t"
	        " JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
	        " WHERE n.nspname = $1 AND NOT t.tgisinternal"
	        " UNION ALL"
	        " SELECT format('function %s', p.proname) FROM pg_proc p"
	        " JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = $1"
	        ") s";

	use_schema(schema);
	return query1(sql, schema);
}

/* Each column of each table of `schema` as a sorted multiset of its values;
 * columns named in `skip` only by their NULL count (volatile defaults). */
static char *data(const char *schema, const char *const *skip)
{
	static const char cols[] =
	        "SELECT coalesce(string_agg(format('%s.%s', quote_ident(c.relname),"
	        "   quote_ident(a.attname)), ',' ORDER BY c.relname, a.attname), '')"
	        " FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
	        " JOIN pg_namespace n ON n.oid = c.relnamespace"
	        " WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND a.attnum > 0"
	        "   AND NOT a.attisdropped";
	dc_strbuf out = DC_STRBUF_INIT;
	char *list, *p, *save = NULL;

	use_schema(schema);
	list = query1(cols, schema);
	for (p = strtok_r(list, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
		char *dot = strchr(p, '.'), *v;
		const char *const *s;
		bool volatile_col = false;
		char sql[512];

		assert_non_null(dot);
		*dot = '\0';
		for (s = skip; s && *s; s++)
			if (strcmp(*s, dot + 1) == 0)
				volatile_col = true;
		if (volatile_col)
			snprintf(sql, sizeof(sql),
			         "SELECT count(*) FILTER (WHERE %s IS NULL) FROM %s", dot + 1, p);
		else
			snprintf(
			        sql, sizeof(sql),
			        "SELECT count(*) || ':' || coalesce(md5(string_agg(coalesce(%s::text, "
			        "'<null>'), ',' ORDER BY coalesce(%s::text, '<null>'))), '') FROM %s",
			        dot + 1, dot + 1, p);
		v = query1(sql, NULL);
		dc_strbuf_addf(&out, "%s.%s %s\n", p, dot + 1, v);
		free(v);
	}
	free(list);
	return dc_strbuf_detach(&out, NULL);
}

/* ---- migrations ---- */

static dc_migration_set *load_yaml(const char *yaml)
{
	char *dir = make_dir();
	dc_migration_set *set = NULL;
	dc_error err;

	memset(&err, 0, sizeof(err));
	put(dir, "1.yaml", yaml);
	if (dc_migration_set_load(&set, dir, DC_DIALECT_POSTGRES, &err) != 0)
		fail_msg("load: %s at %d:%d\n%s", err.message, err.line, err.col, yaml);
	remove_dir(dir);
	assert_int_equal(set->count, 1);
	return set;
}

static void add_block(dc_strbuf *sb, const char *key, const char *sql)
{
	const char *p = sql;

	dc_strbuf_addf(sb, "    %s: |\n", key);
	while (*p) {
		const char *e = strchr(p, '\n');
		size_t len = e ? (size_t)(e - p) : strlen(p);

		dc_strbuf_adds(sb, "      ");
		dc_strbuf_add(sb, p, len);
		dc_strbuf_addch(sb, '\n');
		p += len + (e ? 1 : 0);
	}
}

/* Runs the statements of `sql`; a batch phase until a round touches no row. */
static void run_sql(const dc_sql *sql, int64_t batch)
{
	int rounds = 0;
	long total;
	size_t i;

	do {
		total = 0;
		for (i = 0; i < sql->nstmts; i++)
			total += exec_rows(sql->stmts[i].sql);
		if (++rounds > 100000)
			fail_msg("batch phase never finishes");
	} while (batch > 0 && total > 0);
}

static void apply_phases(const dc_migration *m)
{
	size_t i;

	for (i = 0; i < m->nphases; i++) {
		const dc_phase *p = &m->phases[i];

		if (p->transactional)
			exec_ok("BEGIN");
		run_sql(&p->up, p->batch_rows);
		if (p->transactional)
			exec_ok("COMMIT");
	}
}

static void rollback_phases(const dc_migration *m)
{
	size_t i;

	for (i = m->nphases; i > 0; i--) {
		const dc_phase *p = &m->phases[i - 1];

		if (!p->down.text)
			continue;
		if (p->transactional)
			exec_ok("BEGIN");
		run_sql(&p->down, 0);
		if (p->transactional)
			exec_ok("COMMIT");
	}
}

static void verify_holds(const dc_migration *m)
{
	size_t i;

	for (i = 0; i < m->nverify; i++) {
		char *v = query1(m->verify[i].stmts[0].sql, NULL);

		if (strcmp(v, "t") != 0)
			fail_msg("verify assertion is false: %s", m->verify[i].stmts[0].sql);
		free(v);
	}
}

/* Prints the lines that differ, for the failure message. */
static void diff_lines(const char *what, const char *a, const char *b)
{
	fprintf(stderr, "--- %s differ\n<<< original\n%s\n>>> rewrite\n%s\n", what, a, b);
}

typedef struct pattern {
	const char *setup;                /* run in every schema */
	const char *up;                   /* the original migration */
	const char *down;                 /* its down, or NULL */
	const char *const *volatile_cols; /* compared by NULL count only */
	bool check_down;                  /* the rewrite's downs undo it entirely */
} pattern;

static void run_pattern(const pattern *pt)
{
	static const char *const schemas[] = { "rw_a", "rw_b", "rw_c" };
	dc_strbuf src = DC_STRBUF_INIT, yaml = DC_STRBUF_INIT;
	dc_migration_set *orig, *safe;
	char *da, *db, *xa, *xb;
	const dc_migration *m;
	dc_error err;
	size_t i;
	char sql[256];

	for (i = 0; i < 3; i++) {
		snprintf(sql, sizeof(sql), "DROP SCHEMA IF EXISTS %s CASCADE", schemas[i]);
		exec_ok(sql);
		snprintf(sql, sizeof(sql), "CREATE SCHEMA %s", schemas[i]);
		exec_ok(sql);
		use_schema(schemas[i]);
		exec_ok(pt->setup);
	}

	dc_strbuf_adds(&src, "version: \"1\"\nname: pattern\nphases:\n  - name: main\n");
	add_block(&src, "up", pt->up);
	if (pt->down)
		add_block(&src, "down", pt->down);
	orig = load_yaml(src.buf);
	memset(&err, 0, sizeof(err));
	if (dc_rewrite_safe(&orig->migrations[0], "1.yaml", &yaml, &err) != 0)
		fail_msg("rewrite: %s", err.message);
	safe = load_yaml(yaml.buf);
	m = &safe->migrations[0];

	/* the original, statement by statement (explicit BEGIN/COMMIT included) */
	use_schema("rw_a");
	for (i = 0; i < orig->migrations[0].phases[0].up.nstmts; i++)
		exec_ok(orig->migrations[0].phases[0].up.stmts[i].sql);

	use_schema("rw_b");
	apply_phases(m);
	verify_holds(m);

	da = describe("rw_a");
	db = describe("rw_b");
	if (strcmp(da, db) != 0) {
		diff_lines("schemas", da, db);
		fail_msg("schemas differ after the rewrite of:\n%s\n%s", pt->up, yaml.buf);
	}
	xa = data("rw_a", pt->volatile_cols);
	xb = data("rw_b", pt->volatile_cols);
	if (strcmp(xa, xb) != 0) {
		diff_lines("rows", xa, xb);
		fail_msg("rows differ after the rewrite of:\n%s\n%s", pt->up, yaml.buf);
	}
	free(da);
	free(db);
	free(xa);
	free(xb);

	if (pt->check_down) {
		use_schema("rw_b");
		rollback_phases(m);
		da = describe("rw_c");
		db = describe("rw_b");
		if (strcmp(da, db) != 0) {
			diff_lines("schemas after the downs", da, db);
			fail_msg("the downs do not undo the rewrite of:\n%s\n%s", pt->up, yaml.buf);
		}
		free(da);
		free(db);
	}
	dc_migration_set_free(orig);
	dc_migration_set_free(safe);
	dc_strbuf_release(&src);
	dc_strbuf_release(&yaml);
}

/* ---- the patterns ---- */

/* 2500 rows: a backfill of 1000 rows a round takes three rounds and a fourth
 * that touches none. */
#define USERS                                                                           \
	"CREATE TABLE orgs (id bigint PRIMARY KEY);"                                    \
	"INSERT INTO orgs SELECT g FROM generate_series(1, 10) g;"                      \
	"CREATE TABLE users (id bigint, email text, name text, org_id bigint, qty int," \
	"  cents int);"                                                                 \
	"INSERT INTO users SELECT g, 'u' || g || '@example.com', 'name ' || (g % 97),"  \
	"  1 + g % 10, g % 13, g * 7 FROM generate_series(1, 2500) g;"

static void add_column_not_null_volatile_default(void **state)
{
	static const char *const vol[] = { "token", NULL };
	pattern pt = {
		USERS,
		"ALTER TABLE users ADD COLUMN token uuid NOT NULL DEFAULT gen_random_uuid();",
		"ALTER TABLE users DROP COLUMN token;", vol, true
	};

	(void)state;
	run_pattern(&pt);
}

static void add_column_volatile_default(void **state)
{
	static const char *const vol[] = { "r", NULL };
	pattern pt = { USERS, "ALTER TABLE users ADD COLUMN r float8 DEFAULT random();", NULL, vol,
		       true };

	(void)state;
	run_pattern(&pt);
}

static void add_column_not_null_without_default(void **state)
{
	/* the original only works on an empty table: so does the rewrite */
	pattern pt = { "CREATE TABLE \"Empty\" (id bigint);",
		       "ALTER TABLE \"Empty\" ADD COLUMN \"Nick\" text NOT NULL;", NULL, NULL,
		       true };

	(void)state;
	run_pattern(&pt);
}

static void add_column_with_constraints(void **state)
{
	pattern pt = { USERS,
		       "ALTER TABLE users ADD COLUMN org2 bigint DEFAULT 1 REFERENCES orgs (id) "
		       "CHECK (org2 > 0);\n"
		       "ALTER TABLE users ADD COLUMN code text DEFAULT NULL UNIQUE;",
		       NULL, NULL, true };

	(void)state;
	run_pattern(&pt);
}

static void create_index(void **state)
{
	pattern pt = { USERS,
		       "CREATE INDEX ON users (lower(email));\n"
		       "CREATE INDEX users_name_idx ON users (name) WHERE name IS NOT NULL;\n"
		       "CREATE UNIQUE INDEX \"Users Email\" ON users (email);\n"
		       "CREATE INDEX ON users (org_id, qty) INCLUDE (name);",
		       NULL, NULL, true };

	(void)state;
	run_pattern(&pt);
}

static void add_foreign_key_and_check(void **state)
{
	pattern pt = { USERS,
		       "ALTER TABLE users ADD CONSTRAINT users_org_fk FOREIGN KEY (org_id) "
		       "REFERENCES orgs (id) ON DELETE CASCADE;\n"
		       "ALTER TABLE users ADD FOREIGN KEY (qty) REFERENCES orgs;\n"
		       "ALTER TABLE users ADD CHECK (id > 0);\n"
		       "ALTER TABLE users ADD CONSTRAINT \"Email\" CHECK (email <> '' AND id > 0);",
		       NULL, NULL, false };

	(void)state;
	/* qty 0 has no org: the original fails on that FK; keep qty 1.. */
	pt.setup = USERS "UPDATE users SET qty = 1 + qty % 10;";
	pt.check_down = true;
	run_pattern(&pt);
}

static void add_unique_and_primary_key(void **state)
{
	pattern pt = { USERS,
		       "ALTER TABLE users ADD UNIQUE (email);\n"
		       "ALTER TABLE users ADD CONSTRAINT users_name_email UNIQUE (name, email) "
		       "DEFERRABLE INITIALLY DEFERRED;\n"
		       "ALTER TABLE users ADD PRIMARY KEY (id);",
		       NULL, NULL, false };

	(void)state;
	/* no down check: like DROP CONSTRAINT, the downs leave id NOT NULL */
	run_pattern(&pt);
}

static void set_not_null(void **state)
{
	pattern pt = { USERS, "ALTER TABLE users ALTER COLUMN name SET NOT NULL;",
		       "ALTER TABLE users ALTER COLUMN name DROP NOT NULL;", NULL, true };

	(void)state;
	run_pattern(&pt);
}

static void alter_type(void **state)
{
	pattern pt = { USERS, "ALTER TABLE users ALTER COLUMN qty TYPE bigint;",
		       "ALTER TABLE users ALTER COLUMN qty TYPE integer;", NULL, true };

	(void)state;
	run_pattern(&pt);
}

static void alter_type_using(void **state)
{
	pattern pt = {
		USERS,
		"ALTER TABLE users ALTER COLUMN cents TYPE numeric(12,2) USING cents / 100.0;",
		NULL, NULL, false
	};

	(void)state;
	run_pattern(&pt);
}

static void mixed_with_transaction_control(void **state)
{
	pattern pt = { USERS,
		       "BEGIN;\n"
		       "CREATE TABLE audit (id bigint, at timestamptz DEFAULT now());\n"
		       "CREATE INDEX audit_at ON audit (at);\n"
		       "ALTER TABLE users ADD COLUMN note text, ADD CONSTRAINT users_note_len "
		       "CHECK (char_length(note) < 100), ALTER COLUMN email SET NOT NULL;\n"
		       "COMMENT ON TABLE users IS 'people';\n"
		       "COMMIT;",
		       NULL, NULL, false };

	(void)state;
	run_pattern(&pt);
}

/* ---- setup ---- */

static PGconn *connect_db(const char *db)
{
	const char *keys[] = { "dbname", "dbname", NULL };
	const char *vals[] = { primary, db, NULL };
	PGconn *c = PQconnectdbParams(keys, vals, 1);

	if (PQstatus(c) != CONNECTION_OK)
		fail_msg("cannot connect: %s", PQerrorMessage(c));
	return c;
}

/*
 * Every built-in the default-volatility rule (plan, lint and plan --safe)
 * takes as non-volatile exists in pg_catalog and is so in each overload:
 * a volatile one there would make plan call a rewriting ADD COLUMN
 * catalog-only. "trim" has no pg_proc row: the parser turns it into btrim.
 */
static void nonvolatile_funcs_match_pg_proc(void **state)
{
	size_t i, n;
	const char *const *funcs = dc_analysis__nonvolatile_funcs(&n);

	(void)state;
	assert_true(n > 0);
	for (i = 0; i < n; i++) {
		const char *params[1] = { funcs[i] };
		PGresult *res = PQexecParams(
		        conn,
		        "SELECT count(*), count(*) FILTER (WHERE provolatile = 'v') FROM pg_proc "
		        "WHERE proname = $1 AND pronamespace = 'pg_catalog'::regnamespace",
		        1, NULL, params, NULL, NULL, 0);
		long all, vol;

		if (PQresultStatus(res) != PGRES_TUPLES_OK)
			fail_msg("%s", PQerrorMessage(conn));
		all = atol(PQgetvalue(res, 0, 0));
		vol = atol(PQgetvalue(res, 0, 1));
		PQclear(res);
		if (vol != 0)
			fail_msg("'%s' is volatile in pg_proc (%ld of %ld overloads)", funcs[i],
			         vol, all);
		if (all == 0 && strcmp(funcs[i], "trim") != 0)
			fail_msg("'%s' is not a pg_catalog function", funcs[i]);
	}
}

static int group_setup(void **state)
{
	PGconn *admin;
	char sql[128];

	(void)state;
	snprintf(dbname, sizeof(dbname), "dcrw%ld", (long)getpid());
	admin = connect_db(NULL);
	snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s", dbname);
	PQclear(PQexec(admin, sql));
	snprintf(sql, sizeof(sql), "CREATE DATABASE %s", dbname);
	PQclear(PQexec(admin, sql));
	PQfinish(admin);
	conn = connect_db(dbname);
	PQclear(PQexec(conn, "SET client_min_messages TO warning"));
	return 0;
}

static int group_teardown(void **state)
{
	PGconn *admin;
	char sql[128];

	(void)state;
	PQfinish(conn);
	admin = connect_db(NULL);
	snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s", dbname);
	PQclear(PQexec(admin, sql));
	PQfinish(admin);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(add_column_not_null_volatile_default),
		cmocka_unit_test(add_column_volatile_default),
		cmocka_unit_test(add_column_not_null_without_default),
		cmocka_unit_test(add_column_with_constraints),
		cmocka_unit_test(create_index),
		cmocka_unit_test(add_foreign_key_and_check),
		cmocka_unit_test(add_unique_and_primary_key),
		cmocka_unit_test(set_not_null),
		cmocka_unit_test(alter_type),
		cmocka_unit_test(alter_type_using),
		cmocka_unit_test(mixed_with_transaction_control),
		cmocka_unit_test(nonvolatile_funcs_match_pg_proc),
	};

	primary = getenv("DEPLOYCLAW_PRIMARY");
	if (!primary || !primary[0]) {
		fprintf(stderr, "DEPLOYCLAW_PRIMARY is not set: start the sandbox "
		                "(scripts/pg-sandbox up; eval \"$(scripts/pg-sandbox env)\")\n");
		return 1;
	}
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
