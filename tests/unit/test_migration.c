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

#include <deployclaw/migration.h>

#include "tmpdir.h"

/* ---- a temporary migrations folder per test ---- */

static int load(dc_migration_set **set, const char *dir, dc_dialect dialect, dc_error *err)
{
	dc_error_clear(err);
	return dc_migration_set_load(set, dir, dialect, err);
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);

	return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* ---- native ---- */

static const char native_example[] =
        "version: \"2024_001\"\n"
        "name: add tenant_id to users\n"
        "audit: critical\n"
        "phases:\n"
        "  - name: expand\n"
        "    up:   ALTER TABLE users ADD COLUMN tenant_id uuid;\n"
        "    down: ALTER TABLE users DROP COLUMN tenant_id;\n"
        "  - name: backfill\n"
        "    batch: { rows: 1000 }          # repeats `up` until it touches no row\n"
        "    up:   UPDATE users SET tenant_id = current_setting('deployclaw.tenant_id')::uuid\n"
        "          WHERE id IN (SELECT id FROM users WHERE tenant_id IS NULL LIMIT 1000);\n"
        "  - name: contract\n"
        "    up: |\n"
        "      ALTER TABLE users ADD CONSTRAINT users_tenant_id_nn CHECK (tenant_id IS NOT NULL) "
        "NOT VALID;\n"
        "      ALTER TABLE users VALIDATE CONSTRAINT users_tenant_id_nn;\n"
        "      ALTER TABLE users ALTER COLUMN tenant_id SET NOT NULL;\n"
        "    down: ALTER TABLE users ALTER COLUMN tenant_id DROP NOT NULL;\n"
        "verify:\n"
        "  - SELECT count(*) = 0 FROM users WHERE tenant_id IS NULL\n";

static void native_multi_phase(void **state)
{
	char *dir = make_dir();
	dc_migration_set *set = NULL;
	const dc_migration *m;
	dc_error err;
	char buf[2048];

	(void)state;
	put(dir, "2024_001_tenant.yaml", native_example);
	put(dir, "2024_010_later.yml",
	    "version: 2024_010\nphases:\n  - up: CREATE TABLE a (x int); CREATE TABLE b (y int);\n");
	put(dir, "README.md", "not a migration");
	put(dir, ".hidden", "ignored");
	put(dir, "deployclaw.sum", "ignored here");
	assert_int_equal(load(&set, dir, DC_DIALECT_POSTGRES, &err), 0);
	(void)buf;
	assert_int_equal(set->layout, DC_LAYOUT_NATIVE);
	assert_int_equal(set->count, 2);
	m = &set->migrations[0];
	assert_string_equal(m->version, "2024_001");
	assert_string_equal(m->name, "add tenant_id to users");
	assert_string_equal(m->audit, "critical");
	assert_int_equal(strlen(m->checksum), 64);
	assert_int_equal(m->nphases, 3);
	assert_string_equal(m->phases[0].name, "expand");
	assert_true(m->phases[0].transactional);
	assert_int_equal(m->phases[0].up.nstmts, 1);
	assert_string_equal(m->phases[0].up.stmts[0].sql,
	                    "ALTER TABLE users ADD COLUMN tenant_id uuid");
	assert_int_equal(m->phases[0].up.stmts[0].line, 6);
	assert_int_equal(m->phases[0].up.stmts[0].col, 11);
	assert_true(ends_with(m->phases[0].up.stmts[0].file, "2024_001_tenant.yaml"));
	assert_int_equal(m->phases[0].down.nstmts, 1);
	assert_int_equal(m->phases[0].down.stmts[0].line, 7);
	assert_string_equal(m->phases[1].name, "backfill");
	assert_int_equal(m->phases[1].batch_rows, 1000);
	assert_int_equal(m->phases[1].up.nstmts, 1);
	assert_int_equal(m->phases[1].up.stmts[0].line, 10);
	assert_null(m->phases[1].down.text);
	assert_string_equal(m->phases[2].name, "contract");
	assert_int_equal(m->phases[2].batch_rows, 0);
	assert_int_equal(m->phases[2].up.nstmts, 3);
	/* block scalar: content starts the line after '|', at the indentation */
	assert_int_equal(m->phases[2].up.stmts[0].line, 14);
	assert_int_equal(m->phases[2].up.stmts[0].col, 7);
	assert_int_equal(m->phases[2].up.stmts[1].line, 15);
	assert_int_equal(m->phases[2].up.stmts[1].col, 7);
	assert_int_equal(m->phases[2].up.stmts[2].line, 16);
	assert_string_equal(m->phases[2].up.stmts[2].sql,
	                    "ALTER TABLE users ALTER COLUMN tenant_id SET NOT NULL");
	assert_int_equal(m->nverify, 1);
	assert_int_equal(m->verify[0].nstmts, 1);
	assert_int_equal(m->verify[0].stmts[0].line, 19);
	assert_int_equal(m->verify[0].stmts[0].col, 5);

	m = &set->migrations[1];
	assert_string_equal(m->version, "2024_010");
	assert_string_equal(m->name, "2024_010_later");
	assert_string_equal(m->phases[0].name, "main");
	assert_int_equal(m->phases[0].up.nstmts, 2);
	assert_int_equal(m->phases[0].up.stmts[1].line, 3);
	assert_int_equal(m->phases[0].up.stmts[1].col, 33);
	assert_ptr_equal(dc_migration_set_find(set, "2024_10"), m);
	assert_null(dc_migration_set_find(set, "7"));
	dc_migration_set_free(set);
	remove_dir(dir);
}

static void native_transaction_false_and_sqlite(void **state)
{
	char *dir = make_dir();
	dc_migration_set *set = NULL;
	dc_error err;

	(void)state;
	put(dir, "1.yaml",
	    "version: 1\n"
	    "phases:\n"
	    "  - name: idx\n"
	    "    transaction: false\n"
	    "    up: |\n"
	    "      CREATE TABLE t (a text);\n"
	    "      INSERT INTO t VALUES ('x;y');\n"
	    "      INSERT INTO missing_table VALUES (1);\n");
	assert_int_equal(load(&set, dir, DC_DIALECT_SQLITE, &err), 0);
	assert_false(set->migrations[0].phases[0].transactional);
	assert_int_equal(set->migrations[0].phases[0].up.nstmts, 3);
	assert_string_equal(set->migrations[0].phases[0].up.stmts[1].sql,
	                    "INSERT INTO t VALUES ('x;y')");
	assert_int_equal(set->migrations[0].phases[0].up.stmts[2].line, 8);
	dc_migration_set_free(set);
	remove_dir(dir);
}

static void native_unknown_key_suggests(void **state)
{
	char *dir = make_dir();
	dc_migration_set *set = NULL;
	dc_error err;

	(void)state;
	put(dir, "1.yaml", "version: 1\nphase:\n  - up: SELECT 1\n");
	assert_int_equal(load(&set, dir, DC_DIALECT_POSTGRES, &err), DC_EPARSE);
	assert_null(set);
	assert_non_null(strstr(err.message, "unknown key 'phase'"));
	assert_non_null(strstr(err.message, "did you mean 'phases'"));
	assert_int_equal(err.line, 2);
	assert_int_equal(err.col, 1);
	assert_true(ends_with(err.file, "1.yaml"));

	put(dir, "1.yaml", "version: 1\nphases:\n  - up: SELECT 1\n    dwon: SELECT 2\n");
	assert_int_equal(load(&set, dir, DC_DIALECT_POSTGRES, &err), DC_EPARSE);
	assert_non_null(strstr(err.message, "did you mean 'down'"));
	assert_int_equal(err.line, 4);
	assert_int_equal(err.col, 5);
	remove_dir(dir);
}

static void native_yaml_errors_are_quiet_and_positioned(void **state)
{
	char *dir = make_dir();
	dc_migration_set *set = NULL;
	dc_error err;

	(void)state;
	put(dir, "1.yaml", "version: 1\nphases: [\n  - up: x\n");
	assert_int_equal(load(&set, dir, DC_DIALECT_POSTGRES, &err), DC_EPARSE);
	assert_true(err.line > 0);
	assert_non_null(strstr(err.message, "invalid yaml"));

	put(dir, "1.yaml", "phases:\n  - up: SELECT 1\n");
	assert_int_equal(load(&set, dir, DC_DIALECT_POSTGRES, &err), DC_EPARSE);
	assert_non_null(strstr(err.message, "no 'version'"));

	put(dir, "1.yaml",
	    "version: 1\nphases:\n  - name: a\n    batch: { rows: -3 }\n    up: SELECT 1\n");
	assert_int_equal(load(&set, dir, DC_DIALECT_POSTGRES, &err), DC_EPARSE);
	assert_non_null(strstr(err.message, "'rows'"));
	assert_int_equal(err.line, 4);

	put(dir, "1.yaml", "version: 1\nphases:\n  - up: SELECT 1\n    transaction: maybe\n");
	assert_int_equal(load(&set, dir, DC_DIALECT_POSTGRES, &err), DC_EPARSE);
	assert_non_null(strstr(err.message, "true or false"));
	remove_dir(dir);
}

static void native_block_scalar_syntax_error(void **state)
{
	char *dir = make_dir();
	dc_migration_set *set = NULL;
	dc_error err;

	(void)state;
	put(dir, "1.yaml",
	    "version: 1\n"
	    "phases:\n"
	    "  - up: |\n"
	    "      SELECT 1;\n"
	    "      SELEC 2;\n");
	assert_int_equal(load(&set, dir, DC_DIALECT_POSTGRES, &err), DC_EPARSE);
	assert_int_equal(err.line, 5);
	assert_int_equal(err.col, 7);
	assert_true(ends_with(err.file, "1.yaml"));
	assert_int_equal(load(&set, dir, DC_DIALECT_SQLITE, &err), DC_EPARSE);
	assert_int_equal(err.line, 5);
	assert_int_equal(err.col, 7);
	remove_dir(dir);
}

/*
 * Native migrations and deployclaw.yaml are read by one YAML reader: a
 * syntax error is at the position libfyaml reports (1-based already, as in
 * deployclaw.yaml's "syntax error" messages), not one line below it.
 */
static void native_yaml_syntax_error_line(void **state)
{
	char *dir = make_dir();
	dc_migration_set *set = NULL;
	dc_error err;

	(void)state;
	put(dir, "1.yaml", "version: 1\nphases:\n  - up: SELECT 1\n    down: a: b\n");
	assert_int_equal(load(&set, dir, DC_DIALECT_POSTGRES, &err), DC_EPARSE);
	assert_string_equal(
	        err.message,
	        "invalid yaml in '1.yaml': invalid nested block mapping on the same line");
	assert_int_equal(err.line, 4);
	assert_int_equal(err.col, 12);
	remove_dir(dir);
}

/* A key given twice is named with both positions, like in deployclaw.yaml. */
static void native_duplicate_key(void **state)
{
	char *dir = make_dir();
	dc_migration_set *set = NULL;
	dc_error err;

	(void)state;
	put(dir, "1.yaml", "version: 1\nphases:\n  - up: SELECT 1\n    up: SELECT 2\n");
	assert_int_equal(load(&set, dir, DC_DIALECT_POSTGRES, &err), DC_EPARSE);
	assert_string_equal(err.message,
	                    "'up' given twice in a phase in '1.yaml' (first at line 3, column 5)");
	assert_int_equal(err.line, 4);
	assert_int_equal(err.col, 5);
	put(dir, "1.yaml", "version: 1\nphases:\n  - up: SELECT 1\n---\nversion: 2\n");
	assert_int_equal(load(&set, dir, DC_DIALECT_POSTGRES, &err), DC_EPARSE);
	assert_string_equal(err.message,
	                    "invalid yaml in '1.yaml': only one YAML document is allowed");
	assert_int_equal(err.line, 4);
	remove_dir(dir);
}

/* Quoted sql: '' is one quote, and statements are placed after the quote. */
static void native_quoted_sql(void **state)
{
	char *dir = make_dir();
	dc_migration_set *set = NULL;
	const dc_phase *ph;
	dc_error err;

	(void)state;
	put(dir, "1.yaml",
	    "version: 1\n"
	    "phases:\n"
	    "  - up: 'INSERT INTO t VALUES (''a''''b''); SELECT 2'\n"
	    "    down: \"DELETE FROM t\"\n");
	assert_int_equal(load(&set, dir, DC_DIALECT_POSTGRES, &err), 0);
	ph = &set->migrations[0].phases[0];
	assert_int_equal(ph->up.nstmts, 2);
	assert_string_equal(ph->up.stmts[0].sql, "INSERT INTO t VALUES ('a''b')");
	assert_int_equal(ph->up.stmts[0].line, 3);
	assert_int_equal(ph->up.stmts[0].col, 10);
	assert_int_equal(ph->up.stmts[1].col, 45);
	assert_int_equal(ph->down.stmts[0].line, 4);
	assert_int_equal(ph->down.stmts[0].col, 12);
	dc_migration_set_free(set);
	remove_dir(dir);
}

/* ---- golang-migrate ---- */

static const char pg_function[] = "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$\n"
                                  "BEGIN\n"
                                  "  RETURN 1;\n"
                                  "END;\n"
                                  "$$;\n"
                                  "  SELECT 'a;b', $tag$ ; $tag$; -- trailing; comment\n"
                                  "/* block; comment */\n";

static void golang_migrate_layout(void **state)
{
	char *dir = make_dir();
	dc_migration_set *set = NULL;
	const dc_migration *m;
	dc_error err;

	(void)state;
	put(dir, "10_ten.up.sql", "CREATE TABLE ten (id int);\n");
	put(dir, "2_two.up.sql", pg_function);
	put(dir, "2_two.down.sql", "DROP FUNCTION f();\n");
	put(dir, "1_one.up.sql", "CREATE TABLE one (id int);\n\nCREATE TABLE one_b (id int);");
	put(dir, "1_one.down.sql", "-- irreversible\n");
	assert_int_equal(load(&set, dir, DC_DIALECT_POSTGRES, &err), 0);
	assert_int_equal(set->layout, DC_LAYOUT_GOLANG_MIGRATE);
	assert_string_equal(dc_layout_name(set->layout), "golang-migrate");
	assert_int_equal(set->count, 3);
	assert_string_equal(set->migrations[0].version, "1");
	assert_string_equal(set->migrations[1].version, "2");
	assert_string_equal(set->migrations[2].version, "10");
	m = &set->migrations[0];
	assert_string_equal(m->name, "one");
	assert_int_equal(m->phases[0].up.nstmts, 2);
	assert_int_equal(m->phases[0].up.stmts[1].line, 3);
	assert_int_equal(m->phases[0].up.stmts[1].col, 1);
	assert_null(m->phases[0].down.text); /* only a comment: no down */
	assert_non_null(m->down_path);
	m = &set->migrations[1];
	assert_int_equal(m->phases[0].up.nstmts, 2);
	assert_non_null(strstr(m->phases[0].up.stmts[0].sql, "RETURN 1;\nEND;\n$$"));
	assert_string_equal(m->phases[0].up.stmts[1].sql, "SELECT 'a;b', $tag$ ; $tag$");
	assert_int_equal(m->phases[0].up.stmts[1].line, 6);
	assert_int_equal(m->phases[0].up.stmts[1].col, 3);
	assert_int_equal(m->phases[0].down.nstmts, 1);
	assert_true(ends_with(m->phases[0].down.file, "2_two.down.sql"));
	assert_true(m->phases[0].transactional);
	dc_migration_set_free(set);
	remove_dir(dir);
}

static void pg_syntax_error_position(void **state)
{
	char *dir = make_dir();
	dc_migration_set *set = NULL;
	dc_error err;
	char buf[2048];

	(void)state;
	put(dir, "1_a.up.sql", "SELECT 1;\n  SELEC 2;\n");
	assert_int_equal(load(&set, dir, DC_DIALECT_POSTGRES, &err), DC_EPARSE);
	assert_true(ends_with(err.file, "1_a.up.sql"));
	assert_int_equal(err.line, 2);
	assert_int_equal(err.col, 3);
	assert_non_null(strstr(err.message, "syntax error"));
	dc_error_format(&err, buf, sizeof(buf));
	assert_non_null(strstr(buf, "1_a.up.sql:2:3: "));
	remove_dir(dir);
}

static void sqlite_syntax_error_position(void **state)
{
	char *dir = make_dir();
	dc_migration_set *set = NULL;
	dc_error err;

	(void)state;
	put(dir, "1_a.up.sql", "CREATE TABLE t (a int);\nCREATE TABLEX u (b int);\n");
	assert_int_equal(load(&set, dir, DC_DIALECT_SQLITE, &err), DC_EPARSE);
	assert_true(ends_with(err.file, "1_a.up.sql"));
	assert_int_equal(err.line, 2);
	assert_int_equal(err.col, 8);
	assert_non_null(strstr(err.message, "syntax error"));

	/* an unterminated string: unrecognized token */
	put(dir, "1_a.up.sql", "SELECT 1;\nSELECT 'abc\n");
	assert_int_equal(load(&set, dir, DC_DIALECT_SQLITE, &err), DC_EPARSE);
	assert_int_equal(err.line, 2);
	assert_int_equal(err.col, 8);
	remove_dir(dir);
}

static void sqlite_split_survives_strings_and_triggers(void **state)
{
	static const char sql[] = "CREATE TABLE t (a text);\n"
	                          "INSERT INTO t VALUES ('a;b');\n"
	                          "CREATE TRIGGER tr AFTER INSERT ON t BEGIN\n"
	                          "  UPDATE t SET a = 'x;y';\n"
	                          "  DELETE FROM t WHERE a = ';';\n"
	                          "END;\n"
	                          "/* c; */ SELECT \"we;ird\" FROM t -- no semicolon\n"
	                          "-- trailing; comment\n";
	dc_statement *st = NULL;
	size_t n = 0;
	dc_error err;

	(void)state;
	dc_error_clear(&err);
	assert_int_equal(dc_sql_split(&st, &n, sql, DC_DIALECT_SQLITE, "x.sql", 10, 5, &err), 0);
	assert_int_equal(n, 4);
	assert_string_equal(st[1].sql, "INSERT INTO t VALUES ('a;b')");
	assert_int_equal(st[0].line, 10);
	assert_int_equal(st[0].col, 5); /* the given column applies to the first line only */
	assert_int_equal(st[1].line, 11);
	assert_int_equal(st[1].col, 1);
	assert_non_null(strstr(st[2].sql, "DELETE FROM t WHERE a = ';';\nEND"));
	assert_int_equal(st[2].line, 12);
	assert_int_equal(st[3].line, 16);
	assert_int_equal(st[3].col, 10);
	assert_string_equal(st[0].file, "x.sql");
	dc_statements_free(st, n);

	/* the same text as PostgreSQL (no triggers there, so just strings) */
	dc_error_clear(&err);
	assert_int_equal(
	        dc_sql_split(&st, &n, pg_function, DC_DIALECT_POSTGRES, "f.sql", 1, 1, &err), 0);
	assert_int_equal(n, 2);
	dc_statements_free(st, n);

	dc_error_clear(&err);
	assert_int_equal(dc_sql_split(&st, &n, "-- only a comment\n  \n", DC_DIALECT_SQLITE,
	                              "c.sql", 1, 1, &err),
	                 0);
	assert_int_equal(n, 0);
	dc_statements_free(st, n);
}

/* ---- dbmate ---- */

static void dbmate_layout(void **state)
{
	char *dir = make_dir();
	dc_migration_set *set = NULL;
	const dc_migration *m;
	dc_error err;

	(void)state;
	put(dir, "20240101000000_init.sql",
	    "-- a comment before the marker\n"
	    "-- migrate:up\n"
	    "CREATE TABLE t (id int);\n"
	    "INSERT INTO t VALUES (1);\n"
	    "\n"
	    "-- migrate:down\n"
	    "DROP TABLE t;\n");
	put(dir, "20240201000000_index.sql",
	    "-- migrate:up transaction:false\n"
	    "CREATE INDEX CONCURRENTLY i ON t (id);\n"
	    "-- migrate:down\n");
	assert_int_equal(load(&set, dir, DC_DIALECT_POSTGRES, &err), 0);
	assert_int_equal(set->layout, DC_LAYOUT_DBMATE);
	assert_int_equal(set->count, 2);
	m = &set->migrations[0];
	assert_string_equal(m->version, "20240101000000");
	assert_string_equal(m->name, "init");
	assert_true(m->phases[0].transactional);
	assert_int_equal(m->phases[0].up.nstmts, 2);
	assert_int_equal(m->phases[0].up.stmts[0].line, 3);
	assert_int_equal(m->phases[0].up.stmts[1].line, 4);
	assert_int_equal(m->phases[0].down.nstmts, 1);
	assert_int_equal(m->phases[0].down.stmts[0].line, 7);
	assert_string_equal(m->phases[0].down.stmts[0].sql, "DROP TABLE t");
	m = &set->migrations[1];
	assert_false(m->phases[0].transactional);
	assert_int_equal(m->phases[0].up.nstmts, 1);
	assert_null(m->phases[0].down.text);
	dc_migration_set_free(set);

	put(dir, "20240301000000_bad.sql", "-- migrate:up transacton:false\nSELECT 1;\n");
	assert_int_equal(load(&set, dir, DC_DIALECT_POSTGRES, &err), DC_EPARSE);
	assert_non_null(strstr(err.message, "did you mean 'transaction:false'"));
	assert_int_equal(err.line, 1);
	assert_int_equal(err.col, 15);

	put(dir, "20240301000000_bad.sql", "SELECT 1;\n");
	assert_int_equal(load(&set, dir, DC_DIALECT_POSTGRES, &err), DC_EPARSE);
	assert_non_null(strstr(err.message, "no '-- migrate:up'"));
	remove_dir(dir);
}

/* ---- Flyway ---- */

static void flyway_layout(void **state)
{
	char *dir = make_dir();
	dc_migration_set *set = NULL;
	dc_error err;

	(void)state;
	put(dir, "V1__init.sql", "CREATE TABLE a (id int);\n");
	put(dir, "U1__init.sql", "DROP TABLE a;\n");
	put(dir, "V1.10__ten.sql", "CREATE TABLE c (id int);\n");
	put(dir, "V1.1__one.sql", "CREATE TABLE b (id int);\n");
	put(dir, "V2_1__two.sql", "CREATE TABLE d (id int);\n");
	assert_int_equal(load(&set, dir, DC_DIALECT_SQLITE, &err), 0);
	assert_int_equal(set->layout, DC_LAYOUT_FLYWAY);
	assert_int_equal(set->count, 4);
	assert_string_equal(set->migrations[0].version, "1");
	assert_string_equal(set->migrations[1].version, "1.1");
	assert_string_equal(set->migrations[2].version, "1.10");
	assert_string_equal(set->migrations[3].version, "2.1");
	assert_string_equal(set->migrations[3].name, "two");
	assert_non_null(set->migrations[0].down_path);
	assert_int_equal(set->migrations[0].phases[0].down.nstmts, 1);
	assert_null(set->migrations[1].phases[0].down.text);
	dc_migration_set_free(set);

	put(dir, "V2.1__again.sql", "SELECT 1;\n");
	assert_int_equal(load(&set, dir, DC_DIALECT_SQLITE, &err), DC_EINVAL);
	assert_non_null(strstr(err.message, "duplicate version '2.1'"));
	remove_dir(dir);
}

/* ---- scope: shard ---- */

static void native_scope(void **state)
{
	char *dir = make_dir();
	dc_migration_set *set = NULL;
	dc_error err;

	(void)state;
	put(dir, "1.yaml", "version: 1\nphases:\n  - up: CREATE TABLE t (a int)\n");
	put(dir, "2.yaml",
	    "version: 2\nscope: shard\nphases:\n  - up: CREATE EXTENSION IF NOT EXISTS pg_trgm\n");
	put(dir, "3.yaml", "version: 3\nscope: tenant\nphases:\n  - up: SELECT 1\n");
	assert_int_equal(load(&set, dir, DC_DIALECT_POSTGRES, &err), 0);
	assert_int_equal(set->migrations[0].scope, DC_SCOPE_TENANT);
	assert_int_equal(set->migrations[1].scope, DC_SCOPE_SHARD);
	assert_int_equal(set->migrations[2].scope, DC_SCOPE_TENANT);
	assert_string_equal(dc_scope_name(set->migrations[1].scope), "shard");
	dc_migration_set_free(set);
	set = NULL;

	put(dir, "3.yaml", "version: 3\nscope: shrad\nphases:\n  - up: SELECT 1\n");
	assert_int_equal(load(&set, dir, DC_DIALECT_POSTGRES, &err), DC_EPARSE);
	assert_null(set);
	assert_non_null(strstr(err.message, "scope 'shrad'"));
	assert_non_null(strstr(err.message, "did you mean 'shard'"));
	assert_true(ends_with(err.file, "3.yaml"));
	assert_int_equal(err.line, 2);
	assert_int_equal(err.col, 8);

	put(dir, "3.yaml", "version: 3\nscope: [shard]\nphases:\n  - up: SELECT 1\n");
	assert_int_equal(load(&set, dir, DC_DIALECT_POSTGRES, &err), DC_EPARSE);
	assert_int_equal(err.line, 2);
	assert_int_equal(err.col, 8);

	/* a shard migration runs in one transaction */
	put(dir, "3.yaml",
	    "version: 3\nscope: shard\nphases:\n  - up: SELECT 1\n    transaction: false\n");
	assert_int_equal(load(&set, dir, DC_DIALECT_POSTGRES, &err), DC_EPARSE);
	assert_non_null(strstr(err.message, "not transactional"));
	assert_int_equal(err.line, 2);
	assert_int_equal(err.col, 8);

	/* SQLite has no shard database */
	put(dir, "3.yaml", "version: 3\nphases:\n  - up: SELECT 1\n");
	assert_int_equal(load(&set, dir, DC_DIALECT_SQLITE, &err), DC_EPARSE);
	assert_non_null(strstr(err.message, "needs PostgreSQL"));
	assert_true(ends_with(err.file, "2.yaml"));
	assert_int_equal(err.line, 2);
	assert_int_equal(err.col, 8);
	remove_dir(dir);
}

static void golang_migrate_scope(void **state)
{
	char *dir = make_dir();
	dc_migration_set *set = NULL;
	dc_error err;

	(void)state;
	put(dir, "1_ext.up.sql",
	    "-- shared by every tenant\n\n-- deployclaw:scope shard\nCREATE EXTENSION pg_trgm;\n");
	put(dir, "1_ext.down.sql", "DROP EXTENSION pg_trgm;\n");
	/* after the first statement it is an ordinary comment */
	put(dir, "2_t.up.sql", "CREATE TABLE t (a int);\n-- deployclaw:scope shard\n");
	assert_int_equal(load(&set, dir, DC_DIALECT_POSTGRES, &err), 0);
	assert_int_equal(set->migrations[0].scope, DC_SCOPE_SHARD);
	assert_int_equal(set->migrations[1].scope, DC_SCOPE_TENANT);
	dc_migration_set_free(set);
	set = NULL;

	put(dir, "2_t.up.sql", "--deployclaw:scope   tennant\nCREATE TABLE t (a int);\n");
	assert_int_equal(load(&set, dir, DC_DIALECT_POSTGRES, &err), DC_EPARSE);
	assert_non_null(strstr(err.message, "did you mean 'tenant'"));
	assert_true(ends_with(err.file, "2_t.up.sql"));
	assert_int_equal(err.line, 1);
	assert_int_equal(err.col, 22);
	remove_dir(dir);
}

static void dbmate_scope(void **state)
{
	char *dir = make_dir();
	dc_migration_set *set = NULL;
	dc_error err;

	(void)state;
	put(dir, "20240101000000_shared.sql",
	    "-- migrate:up\n"
	    "-- deployclaw:scope shard\n"
	    "CREATE SCHEMA shared;\n"
	    "-- migrate:down\n"
	    "DROP SCHEMA shared;\n");
	assert_int_equal(load(&set, dir, DC_DIALECT_POSTGRES, &err), 0);
	assert_int_equal(set->migrations[0].scope, DC_SCOPE_SHARD);
	assert_int_equal(set->migrations[0].phases[0].up.nstmts, 1);
	dc_migration_set_free(set);
	set = NULL;

	put(dir, "20240101000000_shared.sql",
	    "-- deployclaw:scope shard\n"
	    "-- migrate:up transaction:false\n"
	    "CREATE SCHEMA shared;\n");
	assert_int_equal(load(&set, dir, DC_DIALECT_POSTGRES, &err), DC_EPARSE);
	assert_non_null(strstr(err.message, "not transactional"));
	assert_int_equal(err.line, 1);
	assert_int_equal(err.col, 21);

	put(dir, "20240101000000_shared.sql",
	    "-- migrate:up\n"
	    "-- deployclaw:scope\n"
	    "CREATE SCHEMA shared;\n");
	assert_int_equal(load(&set, dir, DC_DIALECT_POSTGRES, &err), DC_EPARSE);
	assert_non_null(strstr(err.message, "must be 'tenant' or 'shard'"));
	assert_int_equal(err.line, 2);
	remove_dir(dir);
}

static void flyway_scope(void **state)
{
	char *dir = make_dir();
	dc_migration_set *set = NULL;
	dc_error err;

	(void)state;
	put(dir, "V1__shared.sql", "-- deployclaw:scope shard\nCREATE SCHEMA shared;\n");
	put(dir, "V2__t.sql", "CREATE TABLE t (a int);\n");
	assert_int_equal(load(&set, dir, DC_DIALECT_POSTGRES, &err), 0);
	assert_int_equal(set->migrations[0].scope, DC_SCOPE_SHARD);
	assert_int_equal(set->migrations[1].scope, DC_SCOPE_TENANT);
	dc_migration_set_free(set);
	set = NULL;

	assert_int_equal(load(&set, dir, DC_DIALECT_SQLITE, &err), DC_EPARSE);
	assert_non_null(strstr(err.message, "needs PostgreSQL"));
	assert_true(ends_with(err.file, "V1__shared.sql"));
	assert_int_equal(err.line, 1);
	assert_int_equal(err.col, 21);
	remove_dir(dir);
}

/* ---- folder-level errors ---- */

static void mixed_layouts_refused(void **state)
{
	char *dir = make_dir();
	dc_migration_set *set = NULL;
	dc_error err;

	(void)state;
	put(dir, "1_a.up.sql", "SELECT 1;\n");
	put(dir, "2_b.up.sql", "SELECT 1;\n");
	put(dir, "V3__c.sql", "SELECT 1;\n");
	put(dir, "4_d.sql", "-- migrate:up\nSELECT 1;\n");
	assert_int_equal(load(&set, dir, DC_DIALECT_POSTGRES, &err), DC_EINVAL);
	assert_null(set);
	assert_non_null(strstr(err.message, "mixes layouts"));
	assert_non_null(strstr(err.message, "'V3__c.sql' (flyway)"));
	assert_non_null(strstr(err.message, "'4_d.sql' (dbmate)"));
	assert_null(strstr(err.message, "'1_a.up.sql'"));
	remove_dir(dir);
}

static void duplicate_version(void **state)
{
	char *dir = make_dir();
	dc_migration_set *set = NULL;
	dc_error err;

	(void)state;
	put(dir, "1_a.up.sql", "SELECT 1;\n");
	put(dir, "01_b.up.sql", "SELECT 1;\n");
	assert_int_equal(load(&set, dir, DC_DIALECT_POSTGRES, &err), DC_EINVAL);
	assert_non_null(strstr(err.message, "duplicate version"));
	assert_non_null(strstr(err.message, "'1_a.up.sql'"));
	assert_non_null(strstr(err.message, "'01_b.up.sql'"));
	remove_dir(dir);

	dir = make_dir();
	put(dir, "a.yaml", "version: 7\nphases:\n  - up: SELECT 1\n");
	put(dir, "b.yaml", "version: \"007\"\nphases:\n  - up: SELECT 2\n");
	assert_int_equal(load(&set, dir, DC_DIALECT_SQLITE, &err), DC_EINVAL);
	assert_non_null(strstr(err.message, "'a.yaml' and 'b.yaml'"));
	remove_dir(dir);
}

static void down_without_up(void **state)
{
	char *dir = make_dir();
	dc_migration_set *set = NULL;
	dc_error err;

	(void)state;
	put(dir, "1_a.up.sql", "SELECT 1;\n");
	put(dir, "2_b.down.sql", "SELECT 1;\n");
	assert_int_equal(load(&set, dir, DC_DIALECT_POSTGRES, &err), DC_EINVAL);
	assert_non_null(strstr(err.message, "'2_b.down.sql' is a down migration without an up"));
	assert_true(ends_with(err.file, "2_b.down.sql"));
	remove_dir(dir);
}

static void empty_file(void **state)
{
	char *dir = make_dir();
	dc_migration_set *set = NULL;
	dc_error err;

	(void)state;
	put(dir, "1_a.up.sql", "SELECT 1;\n");
	put(dir, "2_b.up.sql", " \n\n");
	assert_int_equal(load(&set, dir, DC_DIALECT_POSTGRES, &err), DC_EPARSE);
	assert_non_null(strstr(err.message, "'2_b.up.sql' is empty"));
	assert_true(ends_with(err.file, "2_b.up.sql"));
	put(dir, "2_b.up.sql", "-- nothing here\n");
	assert_int_equal(load(&set, dir, DC_DIALECT_POSTGRES, &err), DC_EPARSE);
	assert_non_null(strstr(err.message, "no sql statement"));
	remove_dir(dir);
}

static void invalid_utf8(void **state)
{
	char *dir = make_dir();
	dc_migration_set *set = NULL;
	dc_error err;

	(void)state;
	put(dir, "1_a.up.sql", "SELECT 1;\nSELECT '\xc3\xa9\xff';\n");
	assert_int_equal(load(&set, dir, DC_DIALECT_POSTGRES, &err), DC_EPARSE);
	assert_non_null(strstr(err.message, "'1_a.up.sql' is not valid UTF-8"));
	assert_int_equal(err.line, 2);
	assert_int_equal(err.col, 10); /* 'é' is one column */
	remove_dir(dir);
}

static void unknown_file_and_missing_folder(void **state)
{
	char *dir = make_dir();
	dc_migration_set *set = NULL;
	dc_error err;

	(void)state;
	put(dir, "notes.txt", "hello");
	assert_int_equal(load(&set, dir, DC_DIALECT_POSTGRES, &err), DC_EINVAL);
	assert_non_null(strstr(err.message, "'notes.txt' is not a migration file"));
	remove_dir(dir);
	assert_int_equal(load(&set, "/nonexistent/dc-migrations", DC_DIALECT_POSTGRES, &err),
	                 DC_ENOTFOUND);

	dir = make_dir();
	assert_int_equal(load(&set, dir, DC_DIALECT_POSTGRES, &err), 0);
	assert_int_equal(set->count, 0);
	dc_migration_set_free(set);
	remove_dir(dir);
}

static void natural_version_order(void **state)
{
	(void)state;
	assert_true(dc_version_compare("2", "10") < 0);
	assert_true(dc_version_compare("10", "2") > 0);
	assert_true(dc_version_compare("2024_001", "2024_010") < 0);
	assert_true(dc_version_compare("1.2", "1.10") < 0);
	assert_true(dc_version_compare("1", "1.1") < 0);
	assert_true(dc_version_compare("1.1", "2") < 0);
	assert_int_equal(dc_version_compare("007", "7"), 0);
	assert_int_equal(dc_version_compare("2024_001", "2024_001"), 0);
	assert_true(dc_version_compare("20240101000000", "20240201000000") < 0);
	assert_true(dc_version_compare("99999999999999999999999", "100000000000000000000000") < 0);
	assert_true(dc_version_compare("a", "b") < 0);
	assert_true(dc_version_compare("", "1") < 0);
}

/*
 * Layouts claim names in table order: dbmate's <version>_<name>.sql must not
 * take a golang-migrate name that golang-migrate itself refuses.
 */
static void golang_name_without_title_is_refused(void **state)
{
	char *dir = make_dir();
	dc_migration_set *set = NULL;
	dc_error err;

	(void)state;
	put(dir, "1_.up.sql", "CREATE TABLE a (x int);\n");
	assert_int_equal(load(&set, dir, DC_DIALECT_POSTGRES, &err), DC_EINVAL);
	assert_null(set);
	assert_string_equal(err.message,
	                    "'1_.up.sql' is not a migration file: expected "
	                    "<version>_<name>.up.sql and .down.sql, <version>_<name>.sql (dbmate), "
	                    "V<version>__<name>.sql (flyway) or a .yaml migration");
	remove_dir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(native_multi_phase),
		cmocka_unit_test(native_scope),
		cmocka_unit_test(golang_migrate_scope),
		cmocka_unit_test(dbmate_scope),
		cmocka_unit_test(flyway_scope),
		cmocka_unit_test(native_transaction_false_and_sqlite),
		cmocka_unit_test(native_unknown_key_suggests),
		cmocka_unit_test(native_yaml_errors_are_quiet_and_positioned),
		cmocka_unit_test(native_block_scalar_syntax_error),
		cmocka_unit_test(native_yaml_syntax_error_line),
		cmocka_unit_test(native_duplicate_key),
		cmocka_unit_test(native_quoted_sql),
		cmocka_unit_test(golang_migrate_layout),
		cmocka_unit_test(pg_syntax_error_position),
		cmocka_unit_test(sqlite_syntax_error_position),
		cmocka_unit_test(sqlite_split_survives_strings_and_triggers),
		cmocka_unit_test(dbmate_layout),
		cmocka_unit_test(flyway_layout),
		cmocka_unit_test(mixed_layouts_refused),
		cmocka_unit_test(duplicate_version),
		cmocka_unit_test(down_without_up),
		cmocka_unit_test(empty_file),
		cmocka_unit_test(invalid_utf8),
		cmocka_unit_test(unknown_file_and_missing_folder),
		cmocka_unit_test(natural_version_order),
		cmocka_unit_test(golang_name_without_title_is_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
