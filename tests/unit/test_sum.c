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

static void drop(const char *dir, const char *name)
{
	char *path = dc_path_join(dir, name);

	assert_int_equal(unlink(path), 0);
	free(path);
}

/* Three golang-migrate migrations with a fresh deployclaw.sum. */
static char *fixture(void)
{
	char *dir = make_dir();
	dc_migration_set *set = NULL;
	dc_error err = { 0 };

	put(dir, "001_a.up.sql", "CREATE TABLE a (id int);\n");
	put(dir, "001_a.down.sql", "DROP TABLE a;\n");
	put(dir, "002_b.up.sql", "CREATE TABLE b (id int);\n");
	put(dir, "003_c.up.sql", "CREATE TABLE c (id int);\n");
	assert_int_equal(dc_migration_set_load(&set, dir, DC_DIALECT_SQLITE, &err), 0);
	assert_int_equal(dc_sum_write(set, &err), 0);
	dc_migration_set_free(set);
	return dir;
}

/* Loads `dir` and checks its sum; the set is freed. */
static int check(const char *dir, dc_error *err)
{
	dc_migration_set *set = NULL;
	int rc;

	dc_error_clear(err);
	assert_int_equal(dc_migration_set_load(&set, dir, DC_DIALECT_SQLITE, err), 0);
	rc = dc_sum_check(set, err);
	dc_migration_set_free(set);
	return rc;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);

	return a >= b && strcmp(s + a - b, suffix) == 0;
}

static void write_then_check(void **state)
{
	char *dir = fixture();
	dc_migration_set *set = NULL;
	dc_strbuf sb = DC_STRBUF_INIT;
	dc_error err = { 0 };
	char *path, *text = NULL;
	size_t len = 0;

	(void)state;
	assert_int_equal(check(dir, &err), 0);

	/* format: total line, then "<file> <version> <hash>" per migration */
	assert_int_equal(dc_migration_set_load(&set, dir, DC_DIALECT_SQLITE, &err), 0);
	assert_int_equal(dc_sum_render(set, &sb), 0);
	path = dc_sum_path(set);
	assert_true(ends_with(path, "/deployclaw.sum"));
	assert_int_equal(dc_file_read(&text, &len, path, 1 << 20, &err), 0);
	assert_string_equal(text, sb.buf);
	assert_memory_equal(text, "total ", 6);
	assert_non_null(strstr(text, "\n001_a.up.sql 001 "));
	assert_non_null(strstr(text, "\n002_b.up.sql 002 "));
	assert_int_equal(len, 71 + 3 * (12 + 1 + 3 + 1 + 64 + 1));
	free(text);
	free(path);
	dc_strbuf_release(&sb);
	dc_migration_set_free(set);
	remove_dir(dir);
}

static void edited(void **state)
{
	char *dir = fixture();
	dc_error err;

	(void)state;
	put(dir, "002_b.up.sql", "CREATE TABLE b (id bigint);\n");
	assert_int_equal(check(dir, &err), DC_EINTEGRITY);
	assert_non_null(strstr(err.message, "deployclaw.sum does not match the migrations"));
	assert_non_null(strstr(err.message, "edited '002_b.up.sql'"));
	assert_null(strstr(err.message, "003_c"));
	assert_true(ends_with(err.file, "/deployclaw.sum"));

	/* an edited down file counts for its migration */
	put(dir, "002_b.up.sql", "CREATE TABLE b (id int);\n");
	assert_int_equal(check(dir, &err), 0);
	put(dir, "001_a.down.sql", "DROP TABLE IF EXISTS a;\n");
	assert_int_equal(check(dir, &err), DC_EINTEGRITY);
	assert_non_null(strstr(err.message, "edited '001_a.up.sql'"));
	remove_dir(dir);
}

static void added(void **state)
{
	char *dir = fixture();
	dc_error err;

	(void)state;
	put(dir, "004_d.up.sql", "CREATE TABLE d (id int);\n");
	assert_int_equal(check(dir, &err), DC_EINTEGRITY);
	assert_string_equal(err.message,
	                    "deployclaw.sum does not match the migrations: added '004_d.up.sql'");
	remove_dir(dir);
}

static void removed(void **state)
{
	char *dir = fixture();
	dc_error err;

	(void)state;
	drop(dir, "003_c.up.sql");
	assert_int_equal(check(dir, &err), DC_EINTEGRITY);
	assert_string_equal(err.message,
	                    "deployclaw.sum does not match the migrations: removed '003_c.up.sql'");
	remove_dir(dir);
}

static void renamed_is_removed_and_added(void **state)
{
	char *dir = fixture();
	dc_error err;

	(void)state;
	drop(dir, "002_b.up.sql");
	put(dir, "002_bee.up.sql", "CREATE TABLE b (id int);\n");
	assert_int_equal(check(dir, &err), DC_EINTEGRITY);
	assert_non_null(strstr(err.message, "added '002_bee.up.sql'"));
	assert_non_null(strstr(err.message, "removed '002_b.up.sql'"));
	remove_dir(dir);
}

static void several_at_once(void **state)
{
	char *dir = fixture();
	dc_error err;

	(void)state;
	put(dir, "002_b.up.sql", "CREATE TABLE b (id bigint);\n");
	put(dir, "004_d.up.sql", "CREATE TABLE d (id int);\n");
	drop(dir, "003_c.up.sql");
	assert_int_equal(check(dir, &err), DC_EINTEGRITY);
	assert_string_equal(err.message,
	                    "deployclaw.sum does not match the migrations: edited '002_b.up.sql', "
	                    "added '004_d.up.sql', removed '003_c.up.sql'");
	remove_dir(dir);
}

static void reordered(void **state)
{
	char *dir = fixture();
	dc_migration_set *set = NULL;
	dc_migration tmp;
	dc_error err = { 0 };

	(void)state;
	assert_int_equal(dc_migration_set_load(&set, dir, DC_DIALECT_SQLITE, &err), 0);
	/* the same files in another order, as a changed ordering rule would give */
	tmp = set->migrations[1];
	set->migrations[1] = set->migrations[2];
	set->migrations[2] = tmp;
	assert_int_equal(dc_sum_check(set, &err), DC_EINTEGRITY);
	assert_string_equal(err.message, "deployclaw.sum does not match the migrations: reordered "
	                                 "'003_c.up.sql', reordered '002_b.up.sql'");
	dc_migration_set_free(set);
	remove_dir(dir);
}

static void reordered_native_versions(void **state)
{
	char *dir = make_dir();
	dc_migration_set *set = NULL;
	dc_error err = { 0 };

	(void)state;
	put(dir, "x.yaml", "version: 1\nphases:\n  - up: SELECT 1\n");
	put(dir, "y.yaml", "version: 2\nphases:\n  - up: SELECT 2\n");
	assert_int_equal(dc_migration_set_load(&set, dir, DC_DIALECT_SQLITE, &err), 0);
	assert_int_equal(dc_sum_write(set, &err), 0);
	dc_migration_set_free(set);
	put(dir, "x.yaml", "version: 3\nphases:\n  - up: SELECT 1\n");
	assert_int_equal(check(dir, &err), DC_EINTEGRITY);
	assert_non_null(strstr(err.message, "edited 'x.yaml'"));
	assert_non_null(strstr(err.message, "reordered"));
	remove_dir(dir);
}

static void garbled(void **state)
{
	char *dir = fixture();
	char *path = dc_path_join(dir, "deployclaw.sum");
	char *text = NULL, *p;
	size_t len = 0;
	dc_error err = { 0 };

	(void)state;
	assert_int_equal(dc_file_read(&text, &len, path, 1 << 20, &err), 0);

	put(dir, "deployclaw.sum", "total xyz\n");
	assert_int_equal(check(dir, &err), DC_EINTEGRITY);
	assert_int_equal(err.line, 1);
	assert_non_null(strstr(err.message, "malformed"));
	assert_string_equal(err.file, path);

	/* line 3 loses its hash */
	p = strstr(text, "\n002_b.up.sql 002 ");
	assert_non_null(p);
	p[20] = '\0';
	put(dir, "deployclaw.sum", text);
	assert_int_equal(check(dir, &err), DC_EINTEGRITY);
	assert_int_equal(err.line, 3);
	assert_non_null(strstr(err.message, "line 3"));
	free(text);

	/* a changed hash without a matching total: tampered */
	assert_int_equal(dc_file_read(&text, &len, path, 1 << 20, &err), 0);
	remove_dir(dir);
	dir = fixture();
	free(path);
	path = dc_path_join(dir, "deployclaw.sum");
	free(text);
	assert_int_equal(dc_file_read(&text, &len, path, 1 << 20, &err), 0);
	text[len - 2] = text[len - 2] == 'a' ? 'b' : 'a';
	put(dir, "deployclaw.sum", text);
	assert_int_equal(check(dir, &err), DC_EINTEGRITY);
	assert_non_null(strstr(err.message, "total does not match"));

	put(dir, "deployclaw.sum", "");
	assert_int_equal(check(dir, &err), DC_EINTEGRITY);
	free(text);
	free(path);
	remove_dir(dir);
}

static void missing(void **state)
{
	char *dir = fixture();
	dc_error err;

	(void)state;
	drop(dir, "deployclaw.sum");
	assert_int_equal(check(dir, &err), DC_ENOTFOUND);
	assert_non_null(strstr(err.message, "deployclaw hash"));
	remove_dir(dir);
}

/* A temporary file a crashed sum write left behind is not read as a migration. */
static void leftover_temp_is_ignored(void **state)
{
	char *dir = fixture();
	dc_migration_set *set = NULL;
	dc_error err;

	(void)state;
	put(dir, ".deployclaw.sum.tmp.123", "total 00\n001_a.up");
	assert_int_equal(check(dir, &err), 0);
	/* and a later write beside it */
	assert_int_equal(dc_migration_set_load(&set, dir, DC_DIALECT_SQLITE, &err), 0);
	assert_int_equal(set->count, 3);
	assert_int_equal(dc_sum_write(set, &err), 0);
	dc_migration_set_free(set);
	assert_int_equal(check(dir, &err), 0);
	remove_dir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(write_then_check),
		cmocka_unit_test(edited),
		cmocka_unit_test(added),
		cmocka_unit_test(removed),
		cmocka_unit_test(renamed_is_removed_and_added),
		cmocka_unit_test(several_at_once),
		cmocka_unit_test(reordered),
		cmocka_unit_test(reordered_native_versions),
		cmocka_unit_test(garbled),
		cmocka_unit_test(missing),
		cmocka_unit_test(leftover_temp_is_ignored),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
