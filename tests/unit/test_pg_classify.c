/* dc_pg_classify: statements PostgreSQL refuses inside a transaction block,
 * transaction control, and the index a CREATE INDEX CONCURRENTLY builds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <deployclaw/analysis.h>

static dc_pg_stmt_info classify_ok(const char *sql)
{
	dc_pg_stmt_info info;
	dc_error err = { 0 };

	if (dc_pg_classify(sql, &info, &err) != 0)
		fail_msg("'%s': %s", sql, err.message);
	return info;
}

static void autocommit_only_kinds(void **state)
{
	static const struct {
		const char *sql;
		const char *what;
	} cases[] = {
		{ "CREATE INDEX CONCURRENTLY i ON t (a)", "CREATE INDEX CONCURRENTLY" },
		{ "create unique index concurrently if not exists i on s.t using btree (a) where a > 0",
		  "CREATE INDEX CONCURRENTLY" },
		{ "DROP INDEX CONCURRENTLY i", "DROP INDEX CONCURRENTLY" },
		{ "DROP INDEX CONCURRENTLY IF EXISTS s.i", "DROP INDEX CONCURRENTLY" },
		{ "REINDEX INDEX CONCURRENTLY i", "REINDEX CONCURRENTLY" },
		{ "REINDEX (CONCURRENTLY) TABLE t", "REINDEX CONCURRENTLY" },
		{ "REINDEX (VERBOSE, CONCURRENTLY true) TABLE t", "REINDEX CONCURRENTLY" },
		{ "REINDEX SCHEMA s", "REINDEX SCHEMA/SYSTEM/DATABASE" },
		{ "ALTER TABLE p DETACH PARTITION p1 CONCURRENTLY",
		  "DETACH PARTITION CONCURRENTLY" },
		{ "VACUUM", "VACUUM" },
		{ "VACUUM (ANALYZE, VERBOSE) t", "VACUUM" },
		{ "CLUSTER", "CLUSTER without a table" },
		{ "CREATE DATABASE d", "CREATE DATABASE" },
		{ "DROP DATABASE IF EXISTS d", "DROP DATABASE" },
		{ "ALTER DATABASE d SET TABLESPACE ts", "ALTER DATABASE SET TABLESPACE" },
		{ "CREATE TABLESPACE ts LOCATION '/x'", "CREATE TABLESPACE" },
		{ "DROP TABLESPACE ts", "DROP TABLESPACE" },
		{ "ALTER SYSTEM SET work_mem = '64MB'", "ALTER SYSTEM" },
		{ "CREATE SUBSCRIPTION s CONNECTION 'host=x' PUBLICATION p",
		  "CREATE SUBSCRIPTION" },
		{ "DROP SUBSCRIPTION s", "DROP SUBSCRIPTION" },
		{ "DISCARD ALL", "DISCARD ALL" },
		{ "COMMIT PREPARED 'x'", "COMMIT PREPARED" },
	};

	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		dc_pg_stmt_info info = classify_ok(cases[i].sql);

		if (!info.autocommit_only)
			fail_msg("'%s' should be autocommit-only", cases[i].sql);
		assert_string_equal(info.what, cases[i].what);
		assert_int_equal(info.nstmts, 1);
	}
}

static void transactional_statements(void **state)
{
	static const char *const sqls[] = {
		"CREATE INDEX i ON t (a)",
		"DROP INDEX i",
		"REINDEX TABLE t",
		"REINDEX (CONCURRENTLY false) TABLE t",
		"REINDEX (CONCURRENTLY off) INDEX i",
		"ALTER TABLE p DETACH PARTITION p1",
		"ALTER TABLE p DETACH PARTITION p1 FINALIZE",
		"ALTER TABLE t ADD COLUMN c int",
		"ANALYZE t",
		"CLUSTER t USING i",
		"ALTER DATABASE d SET work_mem = '1MB'",
		"CREATE SUBSCRIPTION s CONNECTION 'host=x' PUBLICATION p WITH (create_slot = false)",
		"DISCARD TEMP",
		"REFRESH MATERIALIZED VIEW CONCURRENTLY mv",
		"UPDATE t SET a = 1 WHERE b IN (SELECT b FROM u LIMIT 10)",
		"SELECT 'CREATE INDEX CONCURRENTLY i ON t (a)', 'VACUUM'",
		"-- VACUUM\nSELECT 1 /* BEGIN */",
		"CREATE FUNCTION f() RETURNS void LANGUAGE sql AS $$ VACUUM $$",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(sqls) / sizeof(sqls[0]); i++) {
		dc_pg_stmt_info info = classify_ok(sqls[i]);

		if (info.autocommit_only || info.is_transaction_control)
			fail_msg("'%s' should run in a transaction", sqls[i]);
		assert_string_equal(info.what, "");
		assert_false(info.create_index_concurrently);
	}
}

static void transaction_control(void **state)
{
	static const struct {
		const char *sql;
		const char *what;
	} cases[] = {
		{ "BEGIN", "BEGIN" },
		{ "START TRANSACTION ISOLATION LEVEL SERIALIZABLE", "START TRANSACTION" },
		{ "COMMIT", "COMMIT" },
		{ "END", "COMMIT" },
		{ "ROLLBACK", "ROLLBACK" },
		{ "ABORT", "ROLLBACK" },
		{ "SAVEPOINT s", "SAVEPOINT" },
		{ "RELEASE SAVEPOINT s", "RELEASE SAVEPOINT" },
		{ "ROLLBACK TO SAVEPOINT s", "ROLLBACK TO SAVEPOINT" },
		{ "PREPARE TRANSACTION 'x'", "PREPARE TRANSACTION" },
	};

	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		dc_pg_stmt_info info = classify_ok(cases[i].sql);

		if (!info.is_transaction_control)
			fail_msg("'%s' should be transaction control", cases[i].sql);
		assert_false(info.autocommit_only);
		assert_string_equal(info.what, cases[i].what);
	}
	assert_false(classify_ok("SELECT 1").is_transaction_control);
	assert_false(classify_ok("PREPARE q AS SELECT 1").is_transaction_control);
}

static void index_names(void **state)
{
	dc_pg_stmt_info info;

	(void)state;
	info = classify_ok("CREATE INDEX CONCURRENTLY users_email_idx ON users (email)");
	assert_true(info.create_index_concurrently);
	assert_string_equal(info.index_name, "users_email_idx");
	assert_string_equal(info.schema, "");
	assert_string_equal(info.table_name, "users");

	/* quoted names keep their case, quotes and spaces; unquoted ones fold */
	info = classify_ok("CREATE UNIQUE INDEX CONCURRENTLY \"Idx \"\"Ü\"\" 1\" "
	                   "ON \"Tenant 'ä' \"\"x\"\"\".\"My Table\" (a)");
	assert_true(info.create_index_concurrently);
	assert_string_equal(info.index_name, "Idx \"Ü\" 1");
	assert_string_equal(info.schema, "Tenant 'ä' \"x\"");
	assert_string_equal(info.table_name, "My Table");

	info = classify_ok("CREATE INDEX CONCURRENTLY IF NOT EXISTS MixedCase ON App.Users (a)");
	assert_string_equal(info.index_name, "mixedcase");
	assert_string_equal(info.schema, "app");
	assert_string_equal(info.table_name, "users");

	/* a name PostgreSQL chooses */
	info = classify_ok("CREATE INDEX CONCURRENTLY ON s.t ((lower(a)))");
	assert_true(info.create_index_concurrently);
	assert_string_equal(info.index_name, "");
	assert_string_equal(info.schema, "s");
	assert_string_equal(info.table_name, "t");

	/* a plain CREATE INDEX is not one */
	info = classify_ok("CREATE INDEX i ON t (a)");
	assert_false(info.create_index_concurrently);
	assert_string_equal(info.index_name, "");
}

static void several_statements(void **state)
{
	dc_pg_stmt_info info;

	(void)state;
	info = classify_ok("SELECT 1; CREATE INDEX CONCURRENTLY i ON t (a); VACUUM");
	assert_int_equal(info.nstmts, 3);
	assert_true(info.autocommit_only);
	assert_string_equal(info.what, "CREATE INDEX CONCURRENTLY");
	assert_string_equal(info.index_name, "i");

	info = classify_ok("UPDATE t SET a = 1; COMMIT");
	assert_int_equal(info.nstmts, 2);
	assert_true(info.is_transaction_control);
	assert_false(info.autocommit_only);

	info = classify_ok("  -- only a comment\n");
	assert_int_equal(info.nstmts, 0);
	assert_false(info.autocommit_only);
	info = classify_ok("");
	assert_int_equal(info.nstmts, 0);
}

static void syntax_error(void **state)
{
	dc_pg_stmt_info info;
	dc_error err = { 0 };

	(void)state;
	assert_int_equal(dc_pg_classify("SELECT 1;\n  CREATE INDX i ON t (a)", &info, &err),
	                 DC_EPARSE);
	assert_int_equal(err.code, DC_EPARSE);
	assert_non_null(strstr(err.message, "syntax error"));
	assert_non_null(strstr(err.message, "INDX"));
	assert_int_equal(err.line, 2);
	assert_int_equal(err.col, 10);
	assert_false(info.autocommit_only);

	/* columns count characters, not bytes */
	memset(&err, 0, sizeof(err));
	assert_int_equal(dc_pg_classify("SELECT 'ää' FROMM t", &info, &err), DC_EPARSE);
	assert_int_equal(err.line, 1);
	assert_int_equal(err.col, 19);

	/* the first error survives */
	assert_int_equal(dc_pg_classify("VACUUM (", &info, &err), DC_EPARSE);
	assert_int_equal(err.col, 19);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(autocommit_only_kinds), cmocka_unit_test(transactional_statements),
		cmocka_unit_test(transaction_control),   cmocka_unit_test(index_names),
		cmocka_unit_test(several_statements),    cmocka_unit_test(syntax_error),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
