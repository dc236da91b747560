#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include <deployclaw/engine.h>

#include "engine/engine_internal.h"

/* ------------------------------------------------------------------------ */
/* Fixture: a temporary folder of tenant files and an engine over it.      */

typedef struct fx {
	char dir[256];
	char glob[300];
	dc_config cfg;
	dc_engine *engine;
	dc_conn *conn;
	dc_tenant *tenants;
	size_t ntenants;
	dc_error err;
} fx;

#define E (&dc_engine_sqlite)

static void rm_rf(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	char sub[1024];

	if (!d) {
		unlink(path);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
		rm_rf(sub);
	}
	closedir(d);
	rmdir(path);
}

static void path_in(char *out, size_t size, const fx *f, const char *name)
{
	snprintf(out, size, "%s/%s", f->dir, name);
}

/* Creates `name` in the fixture's folder with sqlite3 itself. */
static void make_db(const fx *f, const char *name, const char *sql)
{
	char path[512];
	sqlite3 *db = NULL;
	char *msg = NULL;

	path_in(path, sizeof(path), f, name);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, sql ? sql : "PRAGMA user_version = 1", NULL, NULL, &msg),
	                 SQLITE_OK);
	sqlite3_close(db);
}

static void make_dir(const fx *f, const char *name)
{
	char path[512];

	path_in(path, sizeof(path), f, name);
	assert_int_equal(mkdir(path, 0755), 0);
}

static int setup(void **state)
{
	fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/dc-engine-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->glob, sizeof(f->glob), "%s/*.db", f->dir);
	f->cfg.engine = DC_ENGINE_SQLITE;
	f->cfg.dir = f->dir;
	f->cfg.tenancy.model = DC_TENANCY_DATABASE;
	f->cfg.tenancy.glob = f->glob;
	f->cfg.gates.lock_timeout_ms = 2000;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fx *f = *state;

	/* the connection first: a prefetch borrows its tenant until then */
	E->disconnect(f->conn);
	E->close(f->engine);
	dc_tenants_free(f->tenants, f->ntenants);
	rm_rf(f->dir);
	free(f);
	return 0;
}

/* Opens the engine, discovers, connects. */
static void start(fx *f)
{
	assert_int_equal(E->open(&f->engine, &f->cfg, NULL, &f->err), 0);
	assert_int_equal(E->discover(f->engine, &f->tenants, &f->ntenants, &f->err), 0);
	assert_int_equal(E->connect(f->engine, &f->conn, &f->err), 0);
}

static const dc_tenant *tenant(const fx *f, const char *id)
{
	size_t i;

	for (i = 0; i < f->ntenants; i++)
		if (strcmp(f->tenants[i].id, id) == 0)
			return &f->tenants[i];
	fail_msg("no tenant '%s'", id);
	return NULL;
}

/* Discovers and enters the single tenant `acme` with `sql` as its schema. */
static void start_acme(fx *f, const char *sql)
{
	make_db(f, "acme.db", sql);
	start(f);
	assert_int_equal(E->enter(f->conn, tenant(f, "acme"), &f->err), 0);
}

static int run(fx *f, const char *sql)
{
	dc_statement st = { (char *)(uintptr_t)sql, (char *)(uintptr_t) "m/001.sql", 3, 5 };

	dc_error_clear(&f->err);
	return E->exec(f->conn, &st, NULL, &f->err);
}

static void run_ok(fx *f, const char *sql)
{
	int rc = run(f, sql);

	if (rc != 0)
		fail_msg("%s: %s", sql, f->err.message);
}

static int ask(fx *f, const char *sql, bool *out)
{
	dc_statement st = { (char *)(uintptr_t)sql, (char *)(uintptr_t) "m/001.yaml", 9, 3 };

	dc_error_clear(&f->err);
	return E->query_bool(f->conn, &st, out, &f->err);
}

/* The first column of `sql`'s rows, one per line. */
static char *text(fx *f, const char *sql)
{
	dc_strbuf sb = DC_STRBUF_INIT;

	assert_int_equal(E->query_text(f->conn, sql, &sb, 100, &f->err), 0);
	return dc_strbuf_detach(&sb, NULL);
}

static void assert_text(fx *f, const char *sql, const char *expected)
{
	char *s = text(f, sql);

	assert_string_equal(s, expected);
	free(s);
}

/* ------------------------------------------------------------------------ */
/* Discovery                                                                */

static void test_discover_glob(void **state)
{
	fx *f = *state;

	make_db(f, "zeta.db", NULL);
	make_db(f, "acme.db", NULL);
	make_db(f, "beta.v2.db", NULL);
	make_db(f, "notes.txt", NULL);
	start(f);
	assert_int_equal(f->ntenants, 3);
	assert_string_equal(f->tenants[0].id, "acme");
	assert_string_equal(f->tenants[1].id, "beta.v2");
	assert_string_equal(f->tenants[2].id, "zeta");
	assert_string_equal(f->tenants[0].shard, f->dir);
	assert_string_equal(f->tenants[2].shard, f->dir);
	assert_string_equal(strrchr(f->tenants[0].target, '/'), "/acme.db");
	assert_memory_equal(f->tenants[0].target, f->dir, strlen(f->dir));
}

static void test_discover_glob_skips_sidecars_and_folders(void **state)
{
	fx *f = *state;
	char path[512];
	FILE *fp;

	make_db(f, "acme", NULL);
	path_in(path, sizeof(path), f, "acme-journal");
	fp = fopen(path, "w");
	assert_non_null(fp);
	fclose(fp);
	path_in(path, sizeof(path), f, "acme-wal");
	fp = fopen(path, "w");
	assert_non_null(fp);
	fclose(fp);
	make_dir(f, "folder");
	snprintf(f->glob, sizeof(f->glob), "%s/*", f->dir);
	start(f);
	assert_int_equal(f->ntenants, 1);
	assert_string_equal(f->tenants[0].id, "acme");
}

static void test_discover_list(void **state)
{
	fx *f = *state;
	char *list[] = { (char *)(uintptr_t) "z.db", (char *)(uintptr_t) "sub/a.db" };
	char sub[512];

	make_dir(f, "sub");
	f->cfg.tenancy.glob = NULL;
	f->cfg.tenancy.list = list;
	f->cfg.tenancy.nlist = 2;
	start(f);
	assert_int_equal(f->ntenants, 2);
	assert_string_equal(f->tenants[0].id, "a");
	assert_string_equal(f->tenants[1].id, "z");
	path_in(sub, sizeof(sub), f, "sub");
	assert_string_equal(f->tenants[0].shard, sub);
	assert_string_equal(f->tenants[1].shard, f->dir);
	path_in(sub, sizeof(sub), f, "sub/a.db");
	assert_string_equal(f->tenants[0].target, sub);
}

static void test_discover_duplicate_stem(void **state)
{
	fx *f = *state;
	char a[512], b[512], expected[1200];

	make_dir(f, "eu");
	make_dir(f, "us");
	make_db(f, "eu/acme.db", NULL);
	make_db(f, "us/acme.db", NULL);
	make_db(f, "us/beta.db", NULL);
	snprintf(f->glob, sizeof(f->glob), "%s/*/*.db", f->dir);
	assert_int_equal(E->open(&f->engine, &f->cfg, NULL, &f->err), 0);
	assert_int_equal(E->discover(f->engine, &f->tenants, &f->ntenants, &f->err), DC_ECONFIG);
	assert_null(f->tenants);
	path_in(a, sizeof(a), f, "eu/acme.db");
	path_in(b, sizeof(b), f, "us/acme.db");
	snprintf(expected, sizeof(expected),
	         "duplicate tenant id 'acme': '%s' and '%s' have the same file stem", a, b);
	assert_string_equal(f->err.message, expected);
}

static void test_discover_same_file_twice_is_one_tenant(void **state)
{
	fx *f = *state;
	char *list[] = { (char *)(uintptr_t) "acme.db" };

	make_db(f, "acme.db", NULL);
	f->cfg.tenancy.list = list;
	f->cfg.tenancy.nlist = 1;
	start(f);
	assert_int_equal(f->ntenants, 1);
}

static void test_open_refuses_other_models(void **state)
{
	fx *f = *state;

	f->cfg.tenancy.model = DC_TENANCY_SCHEMA;
	assert_int_equal(E->open(&f->engine, &f->cfg, NULL, &f->err), DC_ECONFIG);
	assert_null(f->engine);
	assert_string_equal(
	        f->err.message,
	        "tenancy.model: the sqlite engine supports 'database' only (one file per tenant)");
}

/* ------------------------------------------------------------------------ */
/* Transactions and history                                                 */

static void fill_row(dc_history_row *r, const char *version, dc_history_status status)
{
	memset(r, 0, sizeof(*r));
	r->version = (char *)(uintptr_t)version;
	r->name = (char *)(uintptr_t) "add users";
	r->checksum = (char *)(uintptr_t) "abc123";
	r->phase = (char *)(uintptr_t) "expand";
	r->status = status;
	r->started_at_ms = 1795000000123;
	r->finished_at_ms = 1795000000456;
	r->duration_ms = 333;
	r->run_id = (char *)(uintptr_t) "run-1";
	r->actor = (char *)(uintptr_t) "ops@host";
}

static void test_rollback_leaves_no_table_and_no_row(void **state)
{
	fx *f = *state;
	dc_history_row row, *rows = NULL;
	size_t n = 99;

	start_acme(f, NULL);
	assert_int_equal(E->begin(f->conn, &f->err), 0);
	run_ok(f, "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)");
	assert_int_equal(E->history_ensure(f->conn, &f->err), 0);
	fill_row(&row, "2024_001", DC_HISTORY_APPLIED);
	assert_int_equal(E->history_write(f->conn, &row, &f->err), 0);
	assert_int_equal(E->rollback(f->conn, &f->err), 0);
	assert_text(
	        f,
	        "SELECT count(*) FROM sqlite_schema WHERE name IN ('users', 'deployclaw_history')",
	        "0\n");
	assert_int_equal(E->history_read(f->conn, &rows, &n, &f->err), 0);
	assert_int_equal(n, 0);
	assert_null(rows);

	/* With the history table created beforehand: no row survives either. */
	assert_int_equal(E->history_ensure(f->conn, &f->err), 0);
	assert_int_equal(E->begin(f->conn, &f->err), 0);
	run_ok(f, "CREATE TABLE users (id INTEGER PRIMARY KEY)");
	assert_int_equal(E->history_write(f->conn, &row, &f->err), 0);
	assert_int_equal(E->rollback(f->conn, &f->err), 0);
	assert_int_equal(E->history_read(f->conn, &rows, &n, &f->err), 0);
	assert_int_equal(n, 0);
	assert_text(f, "SELECT count(*) FROM sqlite_schema WHERE name = 'users'", "0\n");
}

static void test_commit_keeps_change_and_row(void **state)
{
	fx *f = *state;
	dc_history_row row, *rows = NULL;
	size_t n = 0;

	start_acme(f, NULL);
	assert_int_equal(E->history_ensure(f->conn, &f->err), 0);
	assert_int_equal(E->begin(f->conn, &f->err), 0);
	run_ok(f, "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)");
	fill_row(&row, "2024_001", DC_HISTORY_APPLIED);
	assert_int_equal(E->history_write(f->conn, &row, &f->err), 0);
	assert_int_equal(E->commit(f->conn, &f->err), 0);

	/* Seen from a fresh visit of the tenant. */
	assert_int_equal(E->enter(f->conn, tenant(f, "acme"), &f->err), 0);
	assert_text(f, "SELECT count(*) FROM sqlite_schema WHERE name = 'users'", "1\n");
	assert_int_equal(E->history_read(f->conn, &rows, &n, &f->err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(rows[0].version, "2024_001");
	assert_string_equal(rows[0].name, "add users");
	assert_string_equal(rows[0].checksum, "abc123");
	assert_string_equal(rows[0].phase, "expand");
	assert_int_equal(rows[0].status, DC_HISTORY_APPLIED);
	assert_int_equal(rows[0].started_at_ms, 1795000000123);
	assert_int_equal(rows[0].finished_at_ms, 1795000000456);
	assert_int_equal(rows[0].duration_ms, 333);
	assert_string_equal(rows[0].run_id, "run-1");
	assert_string_equal(rows[0].actor, "ops@host");
	dc_history_rows_free(rows, n);
	/* Timestamps are stored as RFC 3339 text. */
	assert_text(f, "SELECT started_at FROM deployclaw_history", "2026-11-18T11:06:40.123Z\n");
}

static void test_history_rolled_back_row_is_kept(void **state)
{
	fx *f = *state;
	dc_history_row row, *rows = NULL;
	size_t n = 0;

	start_acme(f, NULL);
	assert_int_equal(E->history_ensure(f->conn, &f->err), 0);
	fill_row(&row, "1", DC_HISTORY_APPLIED);
	assert_int_equal(E->history_write(f->conn, &row, &f->err), 0); /* autocommit */
	fill_row(&row, "2", DC_HISTORY_PARTIAL);
	row.name = NULL;
	assert_int_equal(E->history_write(f->conn, &row, &f->err), 0);
	assert_int_equal(E->begin(f->conn, &f->err), 0);
	fill_row(&row, "1", DC_HISTORY_ROLLED_BACK);
	assert_int_equal(E->history_write(f->conn, &row, &f->err), 0);
	assert_int_equal(E->commit(f->conn, &f->err), 0);
	assert_int_equal(E->history_read(f->conn, &rows, &n, &f->err), 0);
	assert_int_equal(n, 2);
	/* In the order written: the replaced row moves to the end. */
	assert_string_equal(rows[0].version, "2");
	assert_int_equal(rows[0].status, DC_HISTORY_PARTIAL);
	assert_null(rows[0].name);
	assert_string_equal(rows[1].version, "1");
	assert_int_equal(rows[1].status, DC_HISTORY_ROLLED_BACK);
	dc_history_rows_free(rows, n);
}

/* The helper both engines read history statuses with: exactly the names
 * dc_history_status_name writes, nothing else, and `*out` untouched on a
 * refusal. */
/* Engines carry the interface version they were built for, and the library
 * refuses one it cannot drive, naming what is wrong. */
static void test_engine_ops_check(void **state)
{
	dc_engine_ops bad = dc_engine_sqlite;
	dc_error err = { 0 };

	(void)state;
	assert_int_equal(dc_engine_ops_check(&dc_engine_sqlite, &err), 0);
	assert_int_equal(dc_engine_ops_check(&dc_engine_pg, &err), 0);
	assert_int_equal(dc_engine_sqlite.version, DC_ENGINE_OPS_VERSION);
	bad.version = DC_ENGINE_OPS_VERSION + 1;
	assert_int_equal(dc_engine_ops_check(&bad, &err), DC_EINVAL);
	assert_string_equal(
	        err.message,
	        "engine 'sqlite' implements interface version 4; this library knows 1 to 3");
	/* a version-1 engine's check does the two SQLite kinds, and it has no
	 * shard_check (the field is past its table: never read) */
	bad.version = 1;
	assert_true(dc_engine__does_check(&bad, DC_CHECK_FOREIGN_KEYS, false));
	assert_false(dc_engine__does_check(&bad, DC_CHECK_ISOLATION, false));
	assert_false(dc_engine__does_check(&bad, DC_CHECK_INTEGRITY, true));
	bad.version = DC_ENGINE_OPS_VERSION;
	bad.check_kinds = 1u << DC_CHECK_INTEGRITY;
	assert_true(dc_engine__does_check(&bad, DC_CHECK_INTEGRITY, false));
	assert_false(dc_engine__does_check(&bad, DC_CHECK_FOREIGN_KEYS, false));
	assert_false(dc_engine__does_check(&dc_engine_sqlite, DC_CHECK_RLS, false));
	memset(&err, 0, sizeof(err));
	bad.version = 0;
	assert_int_equal(dc_engine_ops_check(&bad, &err), DC_EINVAL);
	memset(&err, 0, sizeof(err));
	bad.version = DC_ENGINE_OPS_VERSION;
	bad.exec = NULL;
	assert_int_equal(dc_engine_ops_check(&bad, &err), DC_EINVAL);
	assert_string_equal(err.message, "engine 'sqlite' lacks the required operation 'exec'");
	memset(&err, 0, sizeof(err));
	/* optional operations may be absent */
	bad = dc_engine_sqlite;
	bad.prefetch = NULL;
	bad.check = NULL;
	bad.history_peek = NULL;
	assert_int_equal(dc_engine_ops_check(&bad, &err), 0);
}

static void test_parse_status_names(void **state)
{
	static const dc_history_status all[] = { DC_HISTORY_APPLIED, DC_HISTORY_ROLLED_BACK,
		                                 DC_HISTORY_PARTIAL };
	static const char *const bad[] = { "", "Applied", "applied ", "rolled-back", "unknown" };
	dc_history_status st;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		st = (dc_history_status)-1;
		assert_int_equal(dc_engine__parse_status(&st, dc_history_status_name(all[i])), 0);
		assert_int_equal(st, all[i]);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		st = DC_HISTORY_PARTIAL;
		assert_int_equal(dc_engine__parse_status(&st, bad[i]), DC_EINVAL);
		assert_int_equal(st, DC_HISTORY_PARTIAL);
	}
	assert_int_equal(dc_engine__parse_status(&st, NULL), DC_EINVAL);
}

static int vfail(dc_error *err, int code, const dc_engine__where *where, const char *fmt, ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = dc_engine__vfail(err, code, where, fmt, ap);
	va_end(ap);
	return ret;
}

/* Both engines' errors end in dc_engine__vfail: it fills what `where` knows,
 * cuts a field at a UTF-8 boundary, and never overwrites a first failure. */
static void test_engine_vfail_fills_where(void **state)
{
	char tenant[400];
	dc_engine__where where = { .tenant = "acme",
		                   .shard = "eu-1",
		                   .sqlstate = "42P01",
		                   .file = "m/001.sql",
		                   .line = 3,
		                   .col = 5 };
	dc_error err = { 0 };
	size_t i;

	(void)state;
	assert_int_equal(vfail(&err, DC_EDB, &where, "tenant '%s': %d", "acme", 7), DC_EDB);
	assert_int_equal(err.code, DC_EDB);
	assert_string_equal(err.message, "tenant 'acme': 7");
	assert_string_equal(err.tenant, "acme");
	assert_string_equal(err.shard, "eu-1");
	assert_string_equal(err.sqlstate, "42P01");
	assert_string_equal(err.file, "m/001.sql");
	assert_int_equal(err.line, 3);
	assert_int_equal(err.col, 5);

	/* the first failure survives */
	assert_int_equal(vfail(&err, DC_EINVAL, &(dc_engine__where){ .tenant = "other" }, "later"),
	                 DC_EINVAL);
	assert_int_equal(err.code, DC_EDB);
	assert_string_equal(err.tenant, "acme");

	/* what is not known stays empty; no file, no position */
	dc_error_clear(&err);
	where = (dc_engine__where){ .shard = "eu-1", .line = 9, .col = 9 };
	vfail(&err, DC_EDB, &where, "x");
	assert_string_equal(err.tenant, "");
	assert_string_equal(err.sqlstate, "");
	assert_string_equal(err.file, "");
	assert_int_equal(err.line, 0);

	/* a tenant id of 2-byte characters longer than the field is cut between two */
	for (i = 0; i + 2 < sizeof(tenant); i += 2)
		memcpy(tenant + i, "\xc3\xa9", 2);
	tenant[i] = '\0';
	dc_error_clear(&err);
	vfail(&err, DC_EDB, &(dc_engine__where){ .tenant = tenant }, "x");
	assert_int_equal(strlen(err.tenant), sizeof(err.tenant) - 2);
	assert_int_equal(strncmp(err.tenant, tenant, sizeof(err.tenant) - 2), 0);
}

/* A row whose status is not one deployclaw writes is refused, naming the
 * version, by the run's read and by planning's peek alike. */
static void test_history_unknown_status_is_refused(void **state)
{
	fx *f = *state;
	dc_history_row *rows = NULL;
	size_t n = 7;

	make_db(f, "acme.db",
	        "CREATE TABLE deployclaw_history (version TEXT PRIMARY KEY NOT NULL, name TEXT,"
	        " checksum TEXT, phase TEXT, status TEXT NOT NULL, started_at TEXT, finished_at"
	        " TEXT, duration_ms INTEGER, run_id TEXT, actor TEXT);"
	        "INSERT INTO deployclaw_history (version, status) VALUES ('0001', 'applied');"
	        "INSERT INTO deployclaw_history (version, status) VALUES ('0002', 'done')");
	start(f);
	assert_int_equal(E->history_peek(f->conn, tenant(f, "acme"), &rows, &n, &f->err),
	                 DC_EINTEGRITY);
	assert_null(rows);
	assert_int_equal(n, 0);
	assert_string_equal(f->err.message,
	                    "tenant 'acme': deployclaw_history: invalid row for version '0002'");
	dc_error_clear(&f->err);
	n = 7;
	assert_int_equal(E->enter(f->conn, tenant(f, "acme"), &f->err), 0);
	assert_int_equal(E->history_read(f->conn, &rows, &n, &f->err), DC_EINTEGRITY);
	assert_null(rows);
	assert_int_equal(n, 0);
	assert_string_equal(f->err.message,
	                    "tenant 'acme': deployclaw_history: invalid row for version '0002'");
}

static void test_history_read_without_table(void **state)
{
	fx *f = *state;
	dc_history_row row, *rows = NULL;
	size_t n = 7;

	start_acme(f, NULL);
	assert_int_equal(E->history_read(f->conn, &rows, &n, &f->err), 0);
	assert_int_equal(n, 0);
	/* Outside a transaction the table is created by the first write, in the
	 * same commit as the write (one durable commit per new tenant, not two). */
	assert_int_equal(E->history_ensure(f->conn, &f->err), 0);
	assert_int_equal(E->history_ensure(f->conn, &f->err), 0);
	assert_text(f, "SELECT count(*) FROM sqlite_schema WHERE name = 'deployclaw_history'",
	            "0\n");
	assert_int_equal(E->history_read(f->conn, &rows, &n, &f->err), 0);
	assert_int_equal(n, 0);
	assert_int_equal(E->begin(f->conn, &f->err), 0);
	fill_row(&row, "1", DC_HISTORY_APPLIED);
	assert_int_equal(E->history_write(f->conn, &row, &f->err), 0);
	assert_int_equal(E->commit(f->conn, &f->err), 0);
	assert_text(f, "SELECT count(*) FROM sqlite_schema WHERE name = 'deployclaw_history'",
	            "1\n");
	assert_int_equal(E->history_read(f->conn, &rows, &n, &f->err), 0);
	assert_int_equal(n, 1);
	dc_history_rows_free(rows, n);

	/* Inside a transaction too: the migration runs without it in the schema
	 * (its ALTER TABLEs re-parse the whole schema), the write creates it, and
	 * a rollback takes it away with the row. */
	make_db(f, "beta.db", "CREATE TABLE t (a)");
	dc_tenants_free(f->tenants, f->ntenants);
	f->tenants = NULL;
	f->ntenants = 0;
	assert_int_equal(E->discover(f->engine, &f->tenants, &f->ntenants, &f->err), 0);
	assert_int_equal(E->enter(f->conn, tenant(f, "beta"), &f->err), 0);
	assert_int_equal(E->begin(f->conn, &f->err), 0);
	assert_int_equal(E->history_ensure(f->conn, &f->err), 0);
	assert_int_equal(E->history_read(f->conn, &rows, &n, &f->err), 0);
	assert_int_equal(n, 0);
	run_ok(f, "ALTER TABLE t ADD COLUMN b TEXT");
	assert_text(f, "SELECT count(*) FROM sqlite_schema WHERE name = 'deployclaw_history'",
	            "0\n");
	fill_row(&row, "1", DC_HISTORY_APPLIED);
	assert_int_equal(E->history_write(f->conn, &row, &f->err), 0);
	assert_text(f, "SELECT count(*) FROM sqlite_schema WHERE name = 'deployclaw_history'",
	            "1\n");
	assert_int_equal(E->rollback(f->conn, &f->err), 0);
	assert_text(f, "SELECT count(*) FROM sqlite_schema WHERE name = 'deployclaw_history'",
	            "0\n");
	assert_int_equal(E->begin(f->conn, &f->err), 0);
	assert_int_equal(E->history_ensure(f->conn, &f->err), 0);
	assert_int_equal(E->history_write(f->conn, &row, &f->err), 0);
	assert_int_equal(E->commit(f->conn, &f->err), 0);
	assert_int_equal(E->history_read(f->conn, &rows, &n, &f->err), 0);
	assert_int_equal(n, 1);
	dc_history_rows_free(rows, n);
}

static void test_begin_twice_and_commit_without_tx(void **state)
{
	fx *f = *state;

	start_acme(f, NULL);
	assert_int_equal(E->begin(f->conn, &f->err), 0);
	assert_int_equal(E->begin(f->conn, &f->err), DC_EINVAL);
	assert_string_equal(f->err.message, "tenant 'acme': a transaction is already open");
	assert_int_equal(E->commit(f->conn, &f->err), 0);
	assert_int_equal(E->rollback(f->conn, &f->err), 0); /* nothing open: a no-op */
}

/* ------------------------------------------------------------------------ */
/* Statements                                                               */

static void test_tenant_function(void **state)
{
	fx *f = *state;
	bool ok = false;

	start_acme(f, "CREATE TABLE users (id INTEGER PRIMARY KEY, tenant TEXT)");
	assert_int_equal(ask(f, "SELECT deployclaw_tenant() = 'acme'", &ok), 0);
	assert_true(ok);
	run_ok(f, "INSERT INTO users (tenant) VALUES (deployclaw_tenant())");
	assert_text(f, "SELECT tenant FROM users", "acme\n");
}

static void test_rows_and_multi_row_statements(void **state)
{
	fx *f = *state;
	dc_statement st = {
		(char *)(uintptr_t) "INSERT INTO t (a) VALUES (1), (2), (3) RETURNING a",
		(char *)(uintptr_t) "m.sql", 1, 1
	};
	int64_t rows = -1;

	start_acme(f, "CREATE TABLE t (a INTEGER)");
	assert_int_equal(E->exec(f->conn, &st, &rows, &f->err), 0);
	assert_int_equal(rows, 3);
	st.sql = (char *)(uintptr_t) "UPDATE t SET a = a + 1 WHERE a >= 2";
	assert_int_equal(E->exec(f->conn, &st, &rows, &f->err), 0);
	assert_int_equal(rows, 2);
	/* DDL changes no row, although sqlite3_changes64 still says 2. */
	st.sql = (char *)(uintptr_t) "CREATE INDEX t_a ON t (a)";
	assert_int_equal(E->exec(f->conn, &st, &rows, &f->err), 0);
	assert_int_equal(rows, 0);
	st.sql = (char *)(uintptr_t) "SELECT * FROM t";
	assert_int_equal(E->exec(f->conn, &st, &rows, &f->err), 0);
	assert_int_equal(rows, 0);
	assert_text(f, "SELECT group_concat(a) FROM t", "1,3,4\n");
}

static void test_attach_refused(void **state)
{
	fx *f = *state;
	char sql[600];

	start_acme(f, NULL);
	make_db(f, "other.db", "CREATE TABLE secrets (x)");
	snprintf(sql, sizeof(sql), "ATTACH DATABASE '%s/other.db' AS other", f->dir);
	assert_int_equal(run(f, sql), DC_EINVAL);
	assert_string_equal(
	        f->err.message,
	        "statement refused: ATTACH would reach outside tenant 'acme' (tenant isolation)");
	assert_string_equal(f->err.tenant, "acme");
	assert_int_equal(run(f, "DETACH DATABASE other"), DC_EINVAL);
	assert_string_equal(
	        f->err.message,
	        "statement refused: DETACH would reach outside tenant 'acme' (tenant isolation)");
	/* temp is the tenant's own. */
	run_ok(f, "CREATE TEMP TABLE scratch (x)");
	run_ok(f, "INSERT INTO temp.scratch VALUES (1)");
}

/* PRAGMAs that defeat the tenant's atomic rollback are refused at their
 * position; the tenant's transaction then rolls back whole. Reading the
 * journal mode, or another mode, stays allowed. */
static void test_rollback_defeating_pragmas_refused(void **state)
{
	static const char *const refused[][2] = {
		{ "PRAGMA writable_schema", "writable_schema" },
		{ "PRAGMA writable_schema = ON", "writable_schema" },
		{ "pragma main.WRITABLE_SCHEMA = 0", "writable_schema" },
		{ "PRAGMA journal_mode=OFF", "journal_mode = OFF" },
		{ "PRAGMA main.journal_mode = 'memory'", "journal_mode = memory" },
		{ "PRAGMA journal_mode(Memory)", "journal_mode = Memory" },
	};
	fx *f = *state;
	char want[1200], buf[2048];
	size_t i;

	start_acme(f, "CREATE TABLE t (a)");
	for (i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		assert_int_equal(E->begin(f->conn, &f->err), 0);
		run_ok(f, "INSERT INTO t VALUES (1)");
		run_ok(f, "CREATE TABLE added (x)");
		assert_int_equal(run(f, refused[i][0]), DC_EINVAL);
		snprintf(want, sizeof(want),
		         "statement refused: PRAGMA %s would defeat the rollback of tenant 'acme' "
		         "(tenant isolation)",
		         refused[i][1]);
		assert_string_equal(f->err.message, want);
		assert_string_equal(f->err.tenant, "acme");
		snprintf(want, sizeof(want), "m/001.sql:3:5: %s", f->err.message);
		assert_string_equal(dc_error_format(&f->err, buf, sizeof(buf)), want);
		assert_int_equal(E->rollback(f->conn, &f->err), 0);
		assert_text(f, "SELECT count(*) FROM t", "0\n");
		assert_text(f, "SELECT count(*) FROM sqlite_schema WHERE name = 'added'", "0\n");
		/* outside a transaction too */
		assert_int_equal(run(f, refused[i][0]), DC_EINVAL);
	}
	assert_text(f, "PRAGMA journal_mode", "delete\n");
	run_ok(f, "PRAGMA journal_mode");
	run_ok(f, "PRAGMA journal_mode = TRUNCATE");
	assert_text(f, "PRAGMA journal_mode", "truncate\n");
}

static void test_transaction_control_refused(void **state)
{
	static const char *const stmts[] = { "BEGIN",       "COMMIT",    "ROLLBACK",
		                             "SAVEPOINT s", "RELEASE s", "BEGIN IMMEDIATE" };
	fx *f = *state;
	size_t i;

	start_acme(f, NULL);
	for (i = 0; i < sizeof(stmts) / sizeof(stmts[0]); i++) {
		assert_int_equal(run(f, stmts[i]), DC_EINVAL);
		assert_string_equal(
		        f->err.message,
		        "tenant 'acme': BEGIN/COMMIT inside a migration: deployclaw manages the transaction");
	}
	assert_int_equal(E->begin(f->conn, &f->err), 0);
	assert_int_equal(run(f, "COMMIT"), DC_EINVAL);
	assert_int_equal(E->rollback(f->conn, &f->err), 0);
}

static void test_vacuum_only_outside_transaction(void **state)
{
	fx *f = *state;
	char sql[600];

	start_acme(f, "CREATE TABLE t (a); INSERT INTO t VALUES (1)");
	assert_int_equal(E->begin(f->conn, &f->err), 0);
	assert_int_equal(run(f, "  vacuum /* tidy */"), DC_EINVAL);
	assert_string_equal(
	        f->err.message,
	        "tenant 'acme': VACUUM cannot run inside a transaction: put it in a phase with `transaction: false`");
	assert_string_equal(f->err.file, "m/001.sql");
	assert_int_equal(run(f, "VACUUM main"), DC_EINVAL);
	/* Statements the authorizer does not see are not all VACUUM. */
	run_ok(f, "SELECT 1");
	assert_int_equal(E->rollback(f->conn, &f->err), 0);
	run_ok(f, "VACUUM");
	run_ok(f, "VACUUM main");

	/* VACUUM INTO writes the tenant to a file outside it: never */
	snprintf(sql, sizeof(sql), "VACUUM INTO '%s/copy.db'", f->dir);
	assert_int_equal(run(f, sql), DC_EINVAL);
	assert_string_equal(
	        f->err.message,
	        "statement refused: VACUUM INTO would write tenant 'acme' to a file outside it (tenant isolation)");
	snprintf(sql, sizeof(sql), "%s/copy.db", f->dir);
	assert_int_equal(access(sql, F_OK), -1);
}

static void test_error_names_position_and_tenant(void **state)
{
	fx *f = *state;
	char buf[2048];

	start_acme(f, "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)");
	assert_int_equal(run(f, "SELECT emial FROM users"), DC_EDB);
	assert_string_equal(f->err.message, "tenant 'acme': no such column: emial");
	assert_string_equal(f->err.tenant, "acme");
	assert_string_equal(dc_error_format(&f->err, buf, sizeof(buf)),
	                    "m/001.sql:3:5: tenant 'acme': no such column: emial");
	/* A runtime error (not at prepare) as well. */
	run_ok(f, "INSERT INTO users VALUES (1, 'a')");
	assert_int_equal(run(f, "INSERT INTO users VALUES (1, 'b')"), DC_EDB);
	assert_string_equal(f->err.message, "tenant 'acme': UNIQUE constraint failed: users.id");
	assert_int_equal(f->err.line, 3);
	assert_int_equal(f->err.col, 5);
}

static void test_foreign_keys_on(void **state)
{
	fx *f = *state;

	start_acme(f, "CREATE TABLE p (id INTEGER PRIMARY KEY);"
	              "CREATE TABLE c (p INTEGER REFERENCES p (id))");
	assert_int_equal(run(f, "INSERT INTO c VALUES (42)"), DC_EDB);
	assert_string_equal(f->err.message, "tenant 'acme': FOREIGN KEY constraint failed");
}

static void test_query_bool(void **state)
{
	static const struct {
		const char *sql;
		bool expected;
	} cases[] = {
		{ "SELECT 1", true },
		{ "SELECT 0", false },
		{ "SELECT 2.5", true },
		{ "SELECT 0.0", false },
		{ "SELECT NULL", false },
		{ "SELECT 'true'", true },
		{ "SELECT 't'", true },
		{ "SELECT '1'", true },
		{ "SELECT 'false'", false },
		{ "SELECT count(*) = 0 FROM t WHERE a IS NULL", true },
		{ "SELECT count(*) FROM t", true },
	};

	fx *f = *state;
	bool out;
	size_t i;

	start_acme(f, "CREATE TABLE t (a); INSERT INTO t VALUES (1), (2)");
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		out = !cases[i].expected;
		if (ask(f, cases[i].sql, &out) != 0)
			fail_msg("%s: %s", cases[i].sql, f->err.message);
		if (out != cases[i].expected)
			fail_msg("%s: got %d", cases[i].sql, out);
	}
	assert_int_equal(ask(f, "SELECT a FROM t WHERE a > 5", &out), DC_EINVAL);
	assert_string_equal(f->err.message, "tenant 'acme': verify assertion returned no row");
	assert_string_equal(f->err.file, "m/001.yaml");
	assert_int_equal(f->err.line, 9);
	assert_int_equal(ask(f, "SELECT a FROM t", &out), DC_EINVAL);
	assert_string_equal(f->err.message,
	                    "tenant 'acme': verify assertion returned more than one row");
	assert_int_equal(ask(f, "SELECT 1, 2", &out), DC_EINVAL);
	assert_string_equal(f->err.message,
	                    "tenant 'acme': verify assertion returned 2 columns (expected one)");
	assert_int_equal(ask(f, "DELETE FROM t", &out), DC_EINVAL);
	assert_string_equal(f->err.message,
	                    "tenant 'acme': a verify assertion must not change the database");
	assert_text(f, "SELECT count(*) FROM t", "2\n");
	assert_int_equal(ask(f, "SELECT 1; SELECT 2", &out), DC_EINVAL);
	assert_string_equal(f->err.message,
	                    "tenant 'acme': a verify assertion must be exactly one statement");
	assert_int_equal(ask(f, "SELECT nope FROM t", &out), DC_EDB);
	assert_string_equal(f->err.message, "tenant 'acme': no such column: nope");
}

/* ------------------------------------------------------------------------ */
/* Bad files                                                                */

static void test_not_a_database(void **state)
{
	fx *f = *state;
	char path[512], expected[1200];
	FILE *fp;

	path_in(path, sizeof(path), f, "junk.db");
	fp = fopen(path, "w");
	assert_non_null(fp);
	for (int i = 0; i < 200; i++)
		fputs("this is not a database file. ", fp);
	fclose(fp);
	start(f);
	assert_int_equal(E->enter(f->conn, tenant(f, "junk"), &f->err), DC_EDB);
	snprintf(expected, sizeof(expected), "tenant 'junk' ('%s'): file is not a database", path);
	assert_string_equal(f->err.message, expected);
	assert_string_equal(f->err.tenant, "junk");
	/* The connection is usable for the next tenant, and refuses work meanwhile. */
	assert_int_equal(run(f, "SELECT 1"), DC_EINVAL);
}

/* Begins a write on `id`, then says whether `journal` exists (the hot journal
 * of a crash must sit next to the real file, whatever name reached it). */
static bool journal_during_write(fx *f, const char *id, const char *journal)
{
	bool there;

	assert_int_equal(E->enter(f->conn, tenant(f, id), &f->err), 0);
	assert_int_equal(E->begin(f->conn, &f->err), 0);
	run_ok(f, "CREATE TABLE seen (a)");
	there = access(journal, F_OK) == 0;
	assert_int_equal(E->commit(f->conn, &f->err), 0);
	return there;
}

static void test_symlinks_resolve_like_sqlite(void **state)
{
	fx *f = *state;
	char real[512], link[512], journal[600], wrong[600], other[600];
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;

	/* a tenant file that is a symlink to a file in another folder */
	make_dir(f, "real");
	make_db(f, "real/target.db", "CREATE TABLE t (a)");
	path_in(real, sizeof(real), f, "real/target.db");
	path_in(link, sizeof(link), f, "link.db");
	assert_int_equal(symlink(real, link), 0);
	/* and a folder that is a symlink, holding a plain tenant file */
	make_dir(f, "realdir");
	make_db(f, "realdir/inner.db", "CREATE TABLE t (a)");
	path_in(other, sizeof(other), f, "lnk");
	path_in(journal, sizeof(journal), f, "realdir");
	assert_int_equal(symlink(journal, other), 0);
	snprintf(f->glob, sizeof(f->glob), "%s/*.db", f->dir);
	start(f);

	snprintf(journal, sizeof(journal), "%s-journal", real);
	snprintf(wrong, sizeof(wrong), "%s-journal", link);
	assert_true(journal_during_write(f, "link", journal));
	assert_int_equal(access(wrong, F_OK), -1);
	assert_int_equal(sqlite3_open(real, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM seen", -1, &st, NULL),
	                 SQLITE_OK);
	sqlite3_finalize(st);
	sqlite3_close(db);

	/* through the symlinked folder: a second discovery over lnk/ */
	dc_tenants_free(f->tenants, f->ntenants);
	f->tenants = NULL;
	E->disconnect(f->conn);
	E->close(f->engine);
	f->conn = NULL;
	f->engine = NULL;
	snprintf(f->glob, sizeof(f->glob), "%s/lnk/*.db", f->dir);
	start(f);
	path_in(journal, sizeof(journal), f, "realdir/inner.db-journal");
	assert_true(journal_during_write(f, "inner", journal));
}

/* A 0-byte file is an empty database to SQLite: it is a tenant like any other. */
static void test_empty_file_is_a_database(void **state)
{
	fx *f = *state;
	char path[512];
	FILE *fp;
	dc_history_row *rows = NULL;
	size_t n = 9;

	path_in(path, sizeof(path), f, "blank.db");
	fp = fopen(path, "w");
	assert_non_null(fp);
	fclose(fp);
	start(f);
	assert_int_equal(E->enter(f->conn, tenant(f, "blank"), &f->err), 0);
	assert_int_equal(E->history_read(f->conn, &rows, &n, &f->err), 0);
	assert_int_equal(n, 0);
	assert_int_equal(E->begin(f->conn, &f->err), 0);
	run_ok(f, "CREATE TABLE t (a)");
	assert_int_equal(E->commit(f->conn, &f->err), 0);
}

static void test_read_only_file(void **state)
{
	fx *f = *state;
	char path[512], expected[1200];

	make_db(f, "frozen.db", "CREATE TABLE t (a)");
	path_in(path, sizeof(path), f, "frozen.db");
	assert_int_equal(chmod(path, 0444), 0);
	start(f);
	assert_int_equal(E->enter(f->conn, tenant(f, "frozen"), &f->err), DC_EINVAL);
	snprintf(expected, sizeof(expected),
	         "tenant 'frozen' ('%s'): the database file is read-only", path);
	assert_string_equal(f->err.message, expected);
}

static void test_missing_file(void **state)
{
	fx *f = *state;
	char *list[] = { (char *)(uintptr_t) "gone.db" };
	char expected[1200];

	f->cfg.tenancy.glob = NULL;
	f->cfg.tenancy.list = list;
	f->cfg.tenancy.nlist = 1;
	start(f);
	assert_int_equal(E->enter(f->conn, tenant(f, "gone"), &f->err), DC_ENOTFOUND);
	snprintf(expected, sizeof(expected),
	         "tenant 'gone' ('%s/gone.db'): the database file does not exist", f->dir);
	assert_string_equal(f->err.message, expected);
	/* No file was created. */
	assert_int_equal(access(f->tenants[0].target, F_OK), -1);
}

/* history_peek and enter + history_read on tenant `id`: the same code, the
 * same message, the same rows (versions joined with ','). */
static void assert_peek_like_enter(fx *f, const char *id, int expected_rc)
{
	dc_history_row *a = NULL, *b = NULL;
	size_t na = 0, nb = 0, i;
	char msg[1024];
	dc_strbuf va = DC_STRBUF_INIT, vb = DC_STRBUF_INIT;
	int rc;

	dc_error_clear(&f->err);
	rc = E->enter(f->conn, tenant(f, id), &f->err);
	if (rc == 0)
		rc = E->history_read(f->conn, &a, &na, &f->err);
	assert_int_equal(rc, expected_rc);
	snprintf(msg, sizeof(msg), "%s", f->err.message);
	dc_error_clear(&f->err);
	assert_int_equal(E->history_peek(f->conn, tenant(f, id), &b, &nb, &f->err), expected_rc);
	assert_string_equal(f->err.message, msg);
	if (expected_rc)
		assert_string_equal(f->err.tenant, id);
	assert_int_equal(na, nb);
	for (i = 0; i < na; i++) {
		dc_strbuf_addf(&va, "%s:%d,", a[i].version, (int)a[i].status);
		dc_strbuf_addf(&vb, "%s:%d,", b[i].version, (int)b[i].status);
		assert_string_equal(a[i].checksum, b[i].checksum);
		assert_int_equal(a[i].started_at_ms, b[i].started_at_ms);
	}
	assert_string_equal(va.buf, vb.buf);
	dc_strbuf_release(&va);
	dc_strbuf_release(&vb);
	dc_history_rows_free(a, na);
	dc_history_rows_free(b, nb);
}

static void test_history_peek_reads_like_enter(void **state)
{
	fx *f = *state;
	dc_history_row row, *rows = NULL;
	char path[512];
	size_t n = 0;
	FILE *fp;

	make_db(f, "acme.db", "CREATE TABLE t (a)");
	make_db(f, "fresh.db", "CREATE TABLE t (a)");
	make_db(f, "frozen.db", "CREATE TABLE t (a)");
	path_in(path, sizeof(path), f, "frozen.db");
	assert_int_equal(chmod(path, 0444), 0);
	path_in(path, sizeof(path), f, "junk.db");
	fp = fopen(path, "w");
	assert_non_null(fp);
	for (int i = 0; i < 200; i++)
		fputs("this is not a database file. ", fp);
	fclose(fp);
	path_in(path, sizeof(path), f, "blank.db");
	fp = fopen(path, "w");
	assert_non_null(fp);
	fclose(fp);
	start(f);
	assert_int_equal(E->enter(f->conn, tenant(f, "acme"), &f->err), 0);
	assert_int_equal(E->begin(f->conn, &f->err), 0);
	assert_int_equal(E->history_ensure(f->conn, &f->err), 0);
	fill_row(&row, "0001", DC_HISTORY_APPLIED);
	assert_int_equal(E->history_write(f->conn, &row, &f->err), 0);
	fill_row(&row, "0002", DC_HISTORY_ROLLED_BACK);
	assert_int_equal(E->history_write(f->conn, &row, &f->err), 0);
	assert_int_equal(E->commit(f->conn, &f->err), 0);

	assert_peek_like_enter(f, "acme", 0);
	assert_peek_like_enter(f, "fresh", 0);
	assert_peek_like_enter(f, "blank", 0);
	assert_peek_like_enter(f, "frozen", DC_EINVAL);
	assert_peek_like_enter(f, "junk", DC_EDB);
	/* the file vanished after discovery: an error, and nothing is created */
	path_in(path, sizeof(path), f, "fresh.db");
	assert_int_equal(unlink(path), 0);
	assert_peek_like_enter(f, "fresh", DC_ENOTFOUND);
	assert_int_equal(access(path, F_OK), -1);

	/* a peek leaves no transaction nor lock behind, and no tenant entered */
	assert_int_equal(E->history_peek(f->conn, tenant(f, "acme"), &rows, &n, &f->err), 0);
	assert_int_equal(n, 2);
	dc_history_rows_free(rows, n);
	assert_int_equal(run(f, "SELECT 1"), DC_EINVAL);
	assert_int_equal(E->enter(f->conn, tenant(f, "acme"), &f->err), 0);
	assert_int_equal(E->lock_tenant(f->conn, 0, &f->err), 0);
	assert_int_equal(E->begin(f->conn, &f->err), 0);
	run_ok(f, "INSERT INTO t VALUES (1)");
	assert_int_equal(E->commit(f->conn, &f->err), 0);
}

/* A crash mid-transaction leaves a hot journal next to the real file: a peek
 * through a symlink must find it there and roll the file back. */
static void test_history_peek_rolls_back_a_hot_journal(void **state)
{
	fx *f = *state;
	char real[512], link[512], journal[600];
	dc_history_row row, *rows = NULL;
	size_t n = 0;
	pid_t pid;
	int status;

	make_dir(f, "real");
	make_db(f, "real/target.db", "CREATE TABLE t (a)");
	path_in(real, sizeof(real), f, "real/target.db");
	path_in(link, sizeof(link), f, "link.db");
	assert_int_equal(symlink(real, link), 0);
	snprintf(journal, sizeof(journal), "%s-journal", real);
	start(f);
	assert_int_equal(E->enter(f->conn, tenant(f, "link"), &f->err), 0);
	assert_int_equal(E->begin(f->conn, &f->err), 0);
	assert_int_equal(E->history_ensure(f->conn, &f->err), 0);
	fill_row(&row, "0001", DC_HISTORY_APPLIED);
	assert_int_equal(E->history_write(f->conn, &row, &f->err), 0);
	assert_int_equal(E->commit(f->conn, &f->err), 0);
	E->disconnect(f->conn);
	f->conn = NULL;

	/* a writer that spills its changes into the file, then dies */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		sqlite3 *db = NULL;

		if (sqlite3_open(real, &db) != SQLITE_OK ||
		    sqlite3_exec(
		            db,
		            "PRAGMA cache_size = 2; BEGIN IMMEDIATE;"
		            "INSERT INTO deployclaw_history (version, status) VALUES ('0002', 'applied');"
		            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)"
		            " INSERT INTO t SELECT randomblob(500) FROM n;",
		            NULL, NULL, NULL) != SQLITE_OK)
			_exit(2);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(access(journal, F_OK), 0);

	assert_int_equal(E->connect(f->engine, &f->conn, &f->err), 0);
	assert_int_equal(E->history_peek(f->conn, tenant(f, "link"), &rows, &n, &f->err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(rows[0].version, "0001");
	dc_history_rows_free(rows, n);
	assert_int_equal(access(journal, F_OK), -1);
	assert_int_equal(E->enter(f->conn, tenant(f, "link"), &f->err), 0);
	assert_text(f, "SELECT count(*) FROM t", "0\n");
	assert_text(f, "PRAGMA integrity_check", "ok\n");
}

/* Writes row `v` into t of the entered tenant, committed. */
static void write_mark(fx *f, const char *v)
{
	char sql[128];

	assert_int_equal(E->begin(f->conn, &f->err), 0);
	snprintf(sql, sizeof(sql), "INSERT INTO t VALUES ('%s')", v);
	run_ok(f, sql);
	assert_int_equal(E->commit(f->conn, &f->err), 0);
}

/* The rows of t in tenant file `name`, read with sqlite3 itself. */
static void assert_marks(fx *f, const char *name, const char *expected)
{
	char path[512];
	dc_strbuf got = DC_STRBUF_INIT;
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;

	path_in(path, sizeof(path), f, name);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT a FROM t ORDER BY a", -1, &st, NULL),
	                 SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW)
		dc_strbuf_addf(&got, "%s,", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	sqlite3_close(db);
	assert_string_equal(got.buf, expected);
	dc_strbuf_release(&got);
}

static void test_prefetch_opens_the_next_tenant(void **state)
{
	fx *f = *state;
	char path[512], other[512], expected[1200];

	make_db(f, "a.db", "CREATE TABLE t (a)");
	make_db(f, "b.db", "CREATE TABLE t (a)");
	make_db(f, "c.db", "CREATE TABLE t (a)");
	make_db(f, "d.db", "CREATE TABLE t (a)");
	make_db(f, "frozen.db", "CREATE TABLE t (a)");
	path_in(path, sizeof(path), f, "frozen.db");
	assert_int_equal(chmod(path, 0444), 0);
	start(f);

	/* the guess comes true: b runs on what the prefetch opened */
	assert_int_equal(E->enter(f->conn, tenant(f, "a"), &f->err), 0);
	E->prefetch(f->conn, tenant(f, "b"));
	write_mark(f, "a1");
	assert_int_equal(E->enter(f->conn, tenant(f, "b"), &f->err), 0);
	write_mark(f, "b1");
	/* a wrong guess: the tenant entered is the one written */
	E->prefetch(f->conn, tenant(f, "c"));
	assert_int_equal(E->enter(f->conn, tenant(f, "a"), &f->err), 0);
	write_mark(f, "a2");
	assert_int_equal(E->enter(f->conn, tenant(f, "c"), &f->err), 0);
	write_mark(f, "c1");
	assert_marks(f, "a.db", "a1,a2,");
	assert_marks(f, "b.db", "b1,");
	assert_marks(f, "c.db", "c1,");

	/* a file replaced after the prefetch opened it: the new one is entered */
	E->prefetch(f->conn, tenant(f, "d"));
	assert_int_equal(E->enter(f->conn, tenant(f, "a"), &f->err), 0);
	make_db(f, "d2.db", "CREATE TABLE t (a); INSERT INTO t VALUES ('new')");
	path_in(path, sizeof(path), f, "d2.db");
	path_in(other, sizeof(other), f, "d.db");
	assert_int_equal(rename(path, other), 0);
	assert_int_equal(E->enter(f->conn, tenant(f, "d"), &f->err), 0);
	write_mark(f, "d1");
	assert_marks(f, "d.db", "d1,new,");

	/* one removed since: enter says so, as without a prefetch */
	E->prefetch(f->conn, tenant(f, "b"));
	assert_int_equal(E->enter(f->conn, tenant(f, "a"), &f->err), 0);
	path_in(path, sizeof(path), f, "b.db");
	assert_int_equal(unlink(path), 0);
	assert_int_equal(E->enter(f->conn, tenant(f, "b"), &f->err), DC_ENOTFOUND);
	snprintf(expected, sizeof(expected), "tenant 'b' ('%s'): the database file does not exist",
	         path);
	assert_string_equal(f->err.message, expected);

	/* a file that does not open fails in enter, with enter's message */
	E->prefetch(f->conn, tenant(f, "frozen"));
	dc_error_clear(&f->err);
	path_in(path, sizeof(path), f, "frozen.db");
	assert_int_equal(E->enter(f->conn, tenant(f, "frozen"), &f->err), DC_EINVAL);
	snprintf(expected, sizeof(expected),
	         "tenant 'frozen' ('%s'): the database file is read-only", path);
	assert_string_equal(f->err.message, expected);

	/* a prefetch never entered is closed with the connection (teardown) */
	E->prefetch(f->conn, tenant(f, "c"));
}

/* The schema SQLite holds from before a transaction (read by the prefetch
 * thread, or by a read transaction since ended) is checked against the file
 * when the next one begins: a history table another process created in
 * between is seen, and its rows. */
static void test_schema_loaded_before_is_checked(void **state)
{
	fx *f = *state;
	dc_history_row *rows = NULL;
	size_t n = 0;
	char path[512];
	sqlite3 *other = NULL;
	int round;

	make_db(f, "a.db", "CREATE TABLE t (a)");
	make_db(f, "b.db", "CREATE TABLE t (a)");
	make_db(f, "c.db", "CREATE TABLE t (a)");
	start(f);
	for (round = 0; round < 2; round++) {
		const char *id = round == 0 ? "b" : "c";

		if (round == 0) {
			/* a read transaction loads b's schema, then ends */
			assert_int_equal(E->enter(f->conn, tenant(f, id), &f->err), 0);
			assert_int_equal(E->history_read(f->conn, &rows, &n, &f->err), 0);
			assert_int_equal(n, 0);
		} else {
			/* the prefetch thread loads c's: given the time to start (enter
			 * cancels a prefetch not started; then c opens unloaded, and the
			 * check passes trivially) */
			assert_int_equal(E->enter(f->conn, tenant(f, "a"), &f->err), 0);
			E->prefetch(f->conn, tenant(f, id));
			usleep(200 * 1000);
			assert_int_equal(E->enter(f->conn, tenant(f, id), &f->err), 0);
		}
		path_in(path, sizeof(path), f, round == 0 ? "b.db" : "c.db");
		assert_int_equal(sqlite3_open(path, &other), SQLITE_OK);
		assert_int_equal(
		        sqlite3_exec(other,
		                     "CREATE TABLE deployclaw_history (version TEXT PRIMARY"
		                     " KEY NOT NULL, name TEXT, checksum TEXT, phase TEXT,"
		                     " status TEXT NOT NULL, started_at TEXT, finished_at"
		                     " TEXT, duration_ms INTEGER, run_id TEXT, actor TEXT);"
		                     "INSERT INTO deployclaw_history (version, status)"
		                     " VALUES ('0007', 'applied')",
		                     NULL, NULL, NULL),
		        SQLITE_OK);
		sqlite3_close(other);
		assert_int_equal(E->begin(f->conn, &f->err), 0);
		assert_int_equal(E->history_read(f->conn, &rows, &n, &f->err), 0);
		assert_int_equal(n, 1);
		assert_string_equal(rows[0].version, "0007");
		dc_history_rows_free(rows, n);
		rows = NULL;
		assert_int_equal(E->rollback(f->conn, &f->err), 0);
	}
}

/* ------------------------------------------------------------------------ */
/* Locks                                                                    */

static void test_lock_across_processes(void **state)
{
	fx *f = *state;
	int to_parent[2], to_child[2];
	char c = 0, expected[256];
	pid_t pid;
	int status;

	make_db(f, "acme.db", NULL);
	make_db(f, "beta.db", NULL);
	assert_int_equal(pipe(to_parent), 0);
	assert_int_equal(pipe(to_child), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* The child: its own engine, holds acme's lock until told to exit. */
		dc_engine *e = NULL;
		dc_conn *conn = NULL;
		dc_tenant *ts = NULL;
		size_t n = 0;
		dc_error err;
		int code = 1;

		dc_error_clear(&err);
		if (E->open(&e, &f->cfg, NULL, &err) == 0 && E->discover(e, &ts, &n, &err) == 0 &&
		    E->connect(e, &conn, &err) == 0 && E->enter(conn, &ts[0], &err) == 0 &&
		    E->lock_tenant(conn, 1000, &err) == 0)
			code = 0;
		if (write(to_parent[1], code == 0 ? "L" : "E", 1) != 1)
			code = 2;
		if (read(to_child[0], &c, 1) != 1)
			code = 3;
		_exit(code);
	}
	assert_int_equal(read(to_parent[0], &c, 1), 1);
	assert_int_equal(c, 'L');
	start(f);
	assert_int_equal(E->enter(f->conn, tenant(f, "acme"), &f->err), 0);
	assert_int_equal(E->lock_tenant(f->conn, 100, &f->err), DC_ELOCKED);
	snprintf(expected, sizeof(expected),
	         "tenant 'acme' is locked by another deployclaw process (pid %ld); waited 100ms",
	         (long)pid);
	assert_string_equal(f->err.message, expected);
	assert_string_equal(f->err.tenant, "acme");

	/* Another tenant of the same folder is free. */
	assert_int_equal(E->enter(f->conn, tenant(f, "beta"), &f->err), 0);
	assert_int_equal(E->lock_tenant(f->conn, 100, &f->err), 0);
	assert_int_equal(E->unlock_tenant(f->conn, &f->err), 0);

	assert_int_equal(write(to_child[1], "x", 1), 1);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(E->enter(f->conn, tenant(f, "acme"), &f->err), 0);
	dc_error_clear(&f->err);
	assert_int_equal(E->lock_tenant(f->conn, 100, &f->err), 0);
	assert_int_equal(E->unlock_tenant(f->conn, &f->err), 0);
	close(to_parent[0]);
	close(to_parent[1]);
	close(to_child[0]);
	close(to_child[1]);
}

typedef struct worker {
	fx *f;
	const dc_tenant *tenant;
	int failures;
} worker;

/* One worker: its own connection on the shared engine, many lock cycles. */
static void *work(void *arg)
{
	worker *w = arg;
	dc_conn *conn = NULL;
	dc_error err;
	int i;

	dc_error_clear(&err);
	if (E->connect(w->f->engine, &conn, &err) != 0)
		return (void *)(uintptr_t)++w->failures;
	for (i = 0; i < 50; i++) {
		if (E->enter(conn, w->tenant, &err) != 0 || E->lock_tenant(conn, 1000, &err) != 0 ||
		    E->history_ensure(conn, &err) != 0 || E->begin(conn, &err) != 0 ||
		    E->commit(conn, &err) != 0 || E->unlock_tenant(conn, &err) != 0)
			w->failures++;
	}
	E->disconnect(conn);
	return NULL;
}

static void test_workers_share_the_engine(void **state)
{
	fx *f = *state;
	pthread_t th[4];
	worker w[4];
	size_t i;
	static const char *const names[] = { "a.db", "b.db", "c.db", "d.db" };

	for (i = 0; i < 4; i++)
		make_db(f, names[i], NULL);
	start(f);
	assert_int_equal(f->ntenants, 4);
	for (i = 0; i < 4; i++) {
		w[i].f = f;
		w[i].tenant = &f->tenants[i];
		w[i].failures = 0;
		assert_int_equal(pthread_create(&th[i], NULL, work, &w[i]), 0);
	}
	for (i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(w[i].failures, 0);
	}
}

/* ------------------------------------------------------------------------ */
/* Backup, fingerprint, checks                                              */

static void test_backup(void **state)
{
	fx *f = *state;
	char dest[512];
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;

	start_acme(f, "CREATE TABLE t (a); INSERT INTO t VALUES (1), (2), (3)");
	make_dir(f, "backups");
	path_in(dest, sizeof(dest), f, "backups/acme.db");
	assert_int_equal(E->backup(f->conn, dest, &f->err), 0);
	/* Twice: the second replaces the first. */
	run_ok(f, "INSERT INTO t VALUES (4)");
	assert_int_equal(E->backup(f->conn, dest, &f->err), 0);
	assert_int_equal(sqlite3_open_v2(dest, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT group_concat(a) FROM t", -1, &st, NULL),
	                 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "1,2,3,4");
	sqlite3_finalize(st);
	sqlite3_close(db);
}

static void test_schema_fingerprint(void **state)
{
	fx *f = *state;
	char before[65], after[65], back[65];

	start_acme(f, "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)");
	assert_int_equal(E->schema_fingerprint(f->conn, before, &f->err), 0);
	assert_int_equal(strlen(before), 64);
	/* The history table is deployclaw's, not the schema's. */
	assert_int_equal(E->history_ensure(f->conn, &f->err), 0);
	assert_int_equal(E->schema_fingerprint(f->conn, after, &f->err), 0);
	assert_string_equal(before, after);
	run_ok(f, "ALTER TABLE users ADD COLUMN tenant_id TEXT");
	assert_int_equal(E->schema_fingerprint(f->conn, after, &f->err), 0);
	assert_string_not_equal(before, after);
	run_ok(f, "ALTER TABLE users DROP COLUMN tenant_id");
	assert_int_equal(E->schema_fingerprint(f->conn, back, &f->err), 0);
	assert_string_equal(before, back);
	run_ok(f, "CREATE INDEX users_email ON users (email)");
	assert_int_equal(E->schema_fingerprint(f->conn, after, &f->err), 0);
	assert_string_not_equal(before, after);
}

static void test_integrity_check_text(void **state)
{
	fx *f = *state;
	dc_strbuf sb = DC_STRBUF_INIT;

	start_acme(f, "CREATE TABLE t (a); INSERT INTO t VALUES (1), (2), (3)");
	assert_text(f, "PRAGMA integrity_check", "ok\n");
	assert_text(f, "PRAGMA foreign_key_check", "");
	assert_int_equal(E->query_text(f->conn, "SELECT a FROM t ORDER BY a", &sb, 2, &f->err), 0);
	assert_string_equal(sb.buf, "1\n2\n");
	dc_strbuf_release(&sb);
}

/* The problems engine check `kind` finds, scoped or full, as one string. */
static char *check(fx *f, dc_check_kind kind, bool full)
{
	dc_strbuf sb = DC_STRBUF_INIT;
	char *s;

	dc_error_clear(&f->err);
	if (E->check(f->conn, kind, full, &sb, 10, &f->err) != 0)
		fail_msg("check: %s", f->err.message);
	s = strdup(sb.buf);
	dc_strbuf_release(&sb);
	assert_non_null(s);
	return s;
}

static void assert_check_at(fx *f,
                            dc_check_kind kind,
                            bool full,
                            const char *expected,
                            const char *file,
                            int line)
{
	char *s = check(f, kind, full);

	_assert_string_equal(s, expected, file, line);
	free(s);
}

/* Fails at the caller's line. */
#define assert_check(f, kind, full, expected) \
	assert_check_at(f, kind, full, expected, __FILE__, __LINE__)

/* A tenant with a CHECK violation in `other` and a dangling reference in
 * `lone`, both there before any migration: a check of the whole file finds
 * them, a check of what the migration wrote does not, unless it wrote there. */
#define CHECKS_SCHEMA                                                                  \
	"CREATE TABLE p (id INTEGER PRIMARY KEY, code TEXT);"                          \
	"CREATE TABLE c (id INTEGER PRIMARY KEY, p INTEGER REFERENCES p (id));"        \
	"CREATE TABLE g (id INTEGER PRIMARY KEY, c INTEGER REFERENCES c (id));"        \
	"CREATE TABLE other (id INTEGER PRIMARY KEY, n INTEGER CHECK (n > 0));"        \
	"CREATE TABLE lone (id INTEGER PRIMARY KEY, o INTEGER REFERENCES other (id));" \
	"INSERT INTO p VALUES (1, 'a'); INSERT INTO c VALUES (1, 1);"                  \
	"INSERT INTO g VALUES (1, 1); INSERT INTO lone VALUES (1, 99);"                \
	"PRAGMA ignore_check_constraints = ON; INSERT INTO other VALUES (1, -5);"

static void test_checks_scoped_to_what_was_written(void **state)
{
	fx *f = *state;

	start_acme(f, CHECKS_SCHEMA);
	assert_int_equal(E->begin(f->conn, &f->err), 0);
	/* nothing written yet: nothing to check; the whole file has both problems */
	assert_check(f, DC_CHECK_INTEGRITY, false, "");
	assert_check(f, DC_CHECK_FOREIGN_KEYS, false, "");
	assert_check(f, DC_CHECK_INTEGRITY, true, "CHECK constraint failed in other\n");
	assert_check(f, DC_CHECK_FOREIGN_KEYS, true,
	             "lone: row 1 references a missing row of other\n");

	/* a dropped table is not missed, and does not widen the check; nor
	 * does an index built (SQLite authorizes the build as a REINDEX) */
	run_ok(f, "DROP TABLE g");
	assert_check(f, DC_CHECK_INTEGRITY, false, "");
	run_ok(f, "CREATE INDEX c_p ON c (p)");
	assert_check(f, DC_CHECK_INTEGRITY, false, "");
	/* a parent's rows deleted: its children are checked, the rest not */
	run_ok(f, "PRAGMA defer_foreign_keys = ON");
	run_ok(f, "DELETE FROM p");
	assert_check(f, DC_CHECK_FOREIGN_KEYS, false, "c: row 1 references a missing row of p\n");
	assert_check(f, DC_CHECK_INTEGRITY, false, "");

	/* writing `other` brings it in, and `lone`, which references it; CHECK
	 * constraints the migration turned off are checked all the same */
	run_ok(f, "PRAGMA ignore_check_constraints = ON");
	run_ok(f, "INSERT INTO other VALUES (2, -1)");
	assert_check(f, DC_CHECK_INTEGRITY, false,
	             "CHECK constraint failed in other\nCHECK constraint failed in other\n");
	assert_check(f, DC_CHECK_FOREIGN_KEYS, false,
	             "c: row 1 references a missing row of p\n"
	             "lone: row 1 references a missing row of other\n");
	assert_int_equal(E->rollback(f->conn, &f->err), 0);
}

/*
 * The tables referencing a written one are checked even though SQLite
 * enforces foreign keys as the migration runs: its enforcement keeps a
 * count, which a statement orphaning one row while mending another that
 * dangled from before nets to zero. A dropped unique index that a foreign
 * key needs is found too.
 */
static void test_foreign_key_check_beyond_enforcement(void **state)
{
	fx *f = *state;
	dc_strbuf sb = DC_STRBUF_INIT;

	start_acme(f, "CREATE TABLE p (id INTEGER PRIMARY KEY);"
	              "CREATE TABLE c (id INTEGER PRIMARY KEY, p INTEGER REFERENCES p (id));"
	              "CREATE TABLE k (code TEXT); CREATE UNIQUE INDEX k_code ON k (code);"
	              "CREATE TABLE r (code TEXT REFERENCES k (code));"
	              "INSERT INTO p VALUES (1), (2); INSERT INTO c VALUES (1, 1), (2, 99);"
	              "INSERT INTO k VALUES ('a'); INSERT INTO r VALUES ('a')");
	assert_int_equal(E->begin(f->conn, &f->err), 0);
	/* enforced: a plain orphan fails its statement */
	assert_int_not_equal(run(f, "DELETE FROM p WHERE id = 1"), 0);
	assert_non_null(strstr(f->err.message, "FOREIGN KEY constraint failed"));
	/* c's row 1 orphaned, its row 2 mended: SQLite lets it through */
	run_ok(f, "UPDATE p SET id = 99 WHERE id = 1");
	assert_check(f, DC_CHECK_FOREIGN_KEYS, false, "c: row 1 references a missing row of p\n");
	assert_check(f, DC_CHECK_INTEGRITY, false, "");
	assert_int_equal(E->rollback(f->conn, &f->err), 0);

	/* the unique index r's foreign key needs, dropped */
	assert_int_equal(E->enter(f->conn, tenant(f, "acme"), &f->err), 0);
	assert_int_equal(E->begin(f->conn, &f->err), 0);
	run_ok(f, "DROP INDEX k_code");
	dc_error_clear(&f->err);
	assert_int_not_equal(E->check(f->conn, DC_CHECK_FOREIGN_KEYS, false, &sb, 10, &f->err), 0);
	assert_non_null(strstr(f->err.message, "foreign key mismatch"));
	assert_int_equal(E->rollback(f->conn, &f->err), 0);
	dc_strbuf_release(&sb);
}

/*
 * Every table referencing a written one is checked: SQLite's enforcement
 * counts violations, and an orphan can be netted against a row that dangled
 * from before in another table, through a key the authorizer never names --
 * a REPLACE deleting the row that held it, a generated column -- or against
 * one whose key the migration then renamed. Each case leaves `c` with a row
 * whose parent is gone; the scoped check finds it.
 */
static void test_foreign_key_check_counts_cannot_hide_an_orphan(void **state)
{
	static const struct {
		const char *schema;
		const char *sql[3];
		const char *found;
	} cases[] = {
		/* UPDATE OR REPLACE of a unique non-key column deletes p(2), and a
		 * trigger mends d's old dangling row */
		{ "CREATE TABLE p (id INTEGER PRIMARY KEY, u TEXT UNIQUE);"
		  "CREATE TABLE c (pid INTEGER REFERENCES p (id));"
		  "CREATE TABLE q (id INTEGER PRIMARY KEY);"
		  "CREATE TABLE d (qid INTEGER REFERENCES q (id));"
		  "INSERT INTO p VALUES (1, 'a'), (2, 'b'); INSERT INTO c VALUES (2);"
		  "INSERT INTO d VALUES (99);"
		  "CREATE TRIGGER p_au AFTER UPDATE ON p BEGIN INSERT INTO q VALUES (99); END",
		  { "UPDATE OR REPLACE p SET u = 'b' WHERE id = 1" },
		  "c: row 1 references a missing row of p\n" },
		/* the same through ON CONFLICT REPLACE in the schema, deferred */
		{ "CREATE TABLE p (id INTEGER PRIMARY KEY, u TEXT UNIQUE ON CONFLICT REPLACE);"
		  "CREATE TABLE c (pid INTEGER REFERENCES p (id) DEFERRABLE INITIALLY DEFERRED);"
		  "CREATE TABLE q (id INTEGER PRIMARY KEY);"
		  "CREATE TABLE d (qid INTEGER REFERENCES q (id) DEFERRABLE INITIALLY DEFERRED);"
		  "INSERT INTO p VALUES (1, 'a'), (2, 'b'); INSERT INTO c VALUES (2);"
		  "INSERT INTO d VALUES (99)",
		  { "UPDATE p SET u = 'b' WHERE id = 1", "INSERT INTO q VALUES (99)" },
		  "c: row 1 references a missing row of p\n" },
		/* the same with a WITHOUT ROWID parent */
		{ "CREATE TABLE p (k TEXT PRIMARY KEY, u TEXT UNIQUE) WITHOUT ROWID;"
		  "CREATE TABLE c (pk TEXT REFERENCES p (k));"
		  "CREATE TABLE q (id INTEGER PRIMARY KEY);"
		  "CREATE TABLE d (qid INTEGER REFERENCES q (id));"
		  "INSERT INTO p VALUES ('x', 'a'), ('y', 'b'); INSERT INTO c VALUES ('y');"
		  "INSERT INTO d VALUES (99);"
		  "CREATE TRIGGER p_au AFTER UPDATE ON p BEGIN INSERT INTO q VALUES (99); END",
		  { "UPDATE OR REPLACE p SET u = 'b' WHERE k = 'x'" },
		  "c: row 1 references a missing row of p\n" },
		/* a foreign key to a generated column: the authorizer names only
		 * the column it is computed from */
		{ "CREATE TABLE p (id INTEGER PRIMARY KEY, a INTEGER, g INTEGER AS (a * 2));"
		  "CREATE UNIQUE INDEX p_g ON p (g);"
		  "CREATE TABLE c (x INTEGER REFERENCES p (g));"
		  "INSERT INTO p (id, a) VALUES (1, 1), (2, 5); INSERT INTO c VALUES (2), (6)",
		  { "UPDATE p SET a = 3 WHERE id = 1" },
		  "c: row 1 references a missing row of p\n" },
		/* the key re-keyed (netted), then its column renamed */
		{ "CREATE TABLE p (id INTEGER PRIMARY KEY);"
		  "CREATE TABLE c (pid INTEGER REFERENCES p (id));"
		  "INSERT INTO p VALUES (1); INSERT INTO c VALUES (1), (99)",
		  { "UPDATE p SET id = 99 WHERE id = 1", "ALTER TABLE p RENAME COLUMN id TO key" },
		  "c: row 1 references a missing row of p\n" },
		/* re-keyed, the table renamed and another made under its old name:
		 * c's foreign key follows the rename (the whole file is checked) */
		{ "CREATE TABLE p (id INTEGER PRIMARY KEY);"
		  "CREATE TABLE c (pid INTEGER REFERENCES p (id));"
		  "INSERT INTO p VALUES (1); INSERT INTO c VALUES (1), (99)",
		  { "UPDATE p SET id = 99 WHERE id = 1", "ALTER TABLE p RENAME TO p_old",
		    "CREATE TABLE p (id INTEGER PRIMARY KEY)" },
		  "c: row 1 references a missing row of p_old\n" },
	};

	fx *f = *state;
	char name[32];
	size_t i, k;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(name, sizeof(name), "case%zu.db", i);
		make_db(f, name, cases[i].schema);
	}
	start(f);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(name, sizeof(name), "case%zu", i);
		assert_int_equal(E->enter(f->conn, tenant(f, name), &f->err), 0);
		assert_int_equal(E->begin(f->conn, &f->err), 0);
		for (k = 0; k < 3 && cases[i].sql[k]; k++)
			run_ok(f, cases[i].sql[k]);
		assert_check(f, DC_CHECK_FOREIGN_KEYS, false, cases[i].found);
		assert_int_equal(E->rollback(f->conn, &f->err), 0);
	}
}

/* Both checks of a visit share one listing of the tables, listed again
 * after any statement: a table created in between is checked alone (a stale
 * listing would not know it, and check the whole file: `lone` too). */
static void test_checks_list_tables_again_after_a_statement(void **state)
{
	fx *f = *state;

	start_acme(f,
	           "CREATE TABLE p (id INTEGER PRIMARY KEY);"
	           "CREATE TABLE o (id INTEGER PRIMARY KEY);"
	           "CREATE TABLE lone (x INTEGER REFERENCES o (id)); INSERT INTO lone VALUES (7)");
	assert_int_equal(E->begin(f->conn, &f->err), 0);
	run_ok(f, "INSERT INTO p VALUES (1)");
	assert_check(f, DC_CHECK_INTEGRITY, false, "");
	assert_check(f, DC_CHECK_FOREIGN_KEYS, false, "");
	run_ok(f, "CREATE TABLE c (id INTEGER PRIMARY KEY, p INTEGER REFERENCES p (id))");
	run_ok(f, "PRAGMA foreign_keys = OFF"); /* inside a transaction: no effect */
	assert_int_not_equal(run(f, "INSERT INTO c VALUES (1, 5)"), 0);
	run_ok(f, "PRAGMA defer_foreign_keys = ON");
	run_ok(f, "INSERT INTO c VALUES (1, 5)");
	assert_check(f, DC_CHECK_FOREIGN_KEYS, false, "c: row 1 references a missing row of p\n");
	assert_int_equal(E->rollback(f->conn, &f->err), 0);
}

/* A write to a virtual table that was there before: its module writes
 * shadow tables the authorizer does not see, so the whole file is checked. */
static void test_checks_cover_everything_after_a_virtual_table_write(void **state)
{
	fx *f = *state;

	start_acme(f, CHECKS_SCHEMA "; CREATE VIRTUAL TABLE docs USING rtree (id, lo, hi)");
	assert_int_equal(E->begin(f->conn, &f->err), 0);
	run_ok(f, "INSERT INTO docs VALUES (1, 0, 1)");
	assert_check(f, DC_CHECK_INTEGRITY, false, "CHECK constraint failed in other\n");
	assert_check(f, DC_CHECK_FOREIGN_KEYS, false,
	             "lone: row 1 references a missing row of other\n");
	assert_int_equal(E->rollback(f->conn, &f->err), 0);
}

/* Whether this process has `path` open (the prefetch thread opened it). */
static bool file_open_here(const char *path)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	char link[300], target[1024];
	bool found = false;

	assert_non_null(d);
	while (!found && (de = readdir(d)) != NULL) {
		ssize_t n;

		snprintf(link, sizeof(link), "/proc/self/fd/%s", de->d_name);
		n = readlink(link, target, sizeof(target) - 1);
		if (n > 0) {
			target[n] = '\0';
			found = strcmp(target, path) == 0;
		}
	}
	closedir(d);
	return found;
}

/*
 * Enters `id` on what the prefetch thread read ahead: from `from`, the
 * prefetch is asked for and waited for until it has started (enter then
 * waits for it to finish; a prefetch not started would be cancelled, and
 * the test would pass without one).
 */
static void enter_prefetched(fx *f, const char *from, const char *id)
{
	char path[512], real[PATH_MAX];
	int i;

	/* a new connection: one whose last prefetched graph went unused skips
	 * the next (a heuristic this test must not meet) */
	E->disconnect(f->conn);
	assert_int_equal(E->connect(f->engine, &f->conn, &f->err), 0);
	assert_int_equal(E->enter(f->conn, tenant(f, from), &f->err), 0);
	E->prefetch(f->conn, tenant(f, id));
	path_in(path, sizeof(path), f, id);
	strcat(path, ".db");
	assert_non_null(realpath(path, real));
	for (i = 0; i < 10000 && !file_open_here(real); i++)
		usleep(1000);
	assert_true(file_open_here(real));
	assert_int_equal(E->enter(f->conn, tenant(f, id), &f->err), 0);
}

/*
 * Another connection adds to `file` a table k referencing p's row `id`;
 * then a transaction of the run deletes that row: the check must name k's
 * orphan (and c's row 2, dangling from the start), so it must know k.
 */
static void orphan_in_new_table(fx *f, const char *file, int id)
{
	char path[512], sql[128];
	sqlite3 *other = NULL;

	path_in(path, sizeof(path), f, file);
	assert_int_equal(sqlite3_open(path, &other), SQLITE_OK);
	snprintf(sql, sizeof(sql),
	         "CREATE TABLE k (pid INTEGER REFERENCES p (id)); INSERT INTO k VALUES (%d)", id);
	assert_int_equal(sqlite3_exec(other, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(other);
	assert_int_equal(E->begin(f->conn, &f->err), 0);
	run_ok(f, "PRAGMA defer_foreign_keys = ON");
	snprintf(sql, sizeof(sql), "DELETE FROM p WHERE id = %d", id);
	run_ok(f, sql);
	assert_check(f, DC_CHECK_FOREIGN_KEYS, false,
	             "c: row 2 references a missing row of p\n"
	             "k: row 1 references a missing row of p\n");
	assert_int_equal(E->rollback(f->conn, &f->err), 0);
}

#define GRAPH_SCHEMA                                                              \
	"CREATE TABLE p (id INTEGER PRIMARY KEY);"                                \
	"CREATE TABLE c (id INTEGER PRIMARY KEY, pid INTEGER REFERENCES p (id));" \
	"CREATE TABLE u (id INTEGER PRIMARY KEY, x INTEGER);"                     \
	"INSERT INTO p VALUES (1), (5); INSERT INTO c VALUES (1, 1), (2, 99);"    \
	"INSERT INTO u VALUES (1, 1)"

/*
 * The checks' graph of a tenant (its tables, their foreign keys) read ahead
 * by the prefetch thread serves the run's first transaction as long as the
 * file is as it was read and the run changed nothing the graph holds. Each
 * round leaves an orphan only a current graph finds:
 *   used       the prefetched graph itself: c references p, netted orphan;
 *   changed    another connection adds a table referencing p before the run
 *              (c's row 2, dangling from the start, is found with it);
 *   altered    the run adds a foreign key to u (ADD COLUMN ... REFERENCES);
 *   later      the graph read before the first transaction, and a table
 *              referencing p added between it and a second;
 *   read       the history read first, in a read transaction of its own (the
 *              file as the graph has it), and the table added after that.
 */
static void test_prefetched_graph_holds_only_while_current(void **state)
{
	fx *f = *state;
	dc_history_row *rows = NULL;
	size_t n = 0;
	int round;

	make_db(f, "a.db", NULL);
	for (round = 0; round < 5; round++) {
		char name[16];

		snprintf(name, sizeof(name), "t%d.db", round);
		make_db(f, name, GRAPH_SCHEMA);
	}
	f->cfg.gates.integrity_check = DC_CHECK_CHANGED;
	f->cfg.gates.foreign_key_check = DC_CHECK_CHANGED;
	start(f);

	/* used: UPDATE p orphans c's row 1 and mends its row 2 */
	enter_prefetched(f, "a", "t0");
	assert_int_equal(E->begin(f->conn, &f->err), 0);
	run_ok(f, "UPDATE p SET id = 99 WHERE id = 1");
	assert_check(f, DC_CHECK_INTEGRITY, false, "");
	assert_check(f, DC_CHECK_FOREIGN_KEYS, false, "c: row 1 references a missing row of p\n");
	assert_int_equal(E->rollback(f->conn, &f->err), 0);

	/* changed: k, made after the prefetch, references p's row 5 */
	enter_prefetched(f, "a", "t1");
	orphan_in_new_table(f, "t1.db", 5);

	/* altered: u gains a foreign key, and a row dangling from it */
	enter_prefetched(f, "a", "t2");
	assert_int_equal(E->begin(f->conn, &f->err), 0);
	run_ok(f, "ALTER TABLE u ADD COLUMN pid INTEGER REFERENCES p (id)");
	run_ok(f, "PRAGMA defer_foreign_keys = ON");
	run_ok(f, "UPDATE u SET pid = 7");
	assert_check(f, DC_CHECK_FOREIGN_KEYS, false, "u: row 1 references a missing row of p\n");
	assert_int_equal(E->rollback(f->conn, &f->err), 0);

	/* later: a first transaction commits; k is made before the second */
	enter_prefetched(f, "a", "t3");
	assert_int_equal(E->begin(f->conn, &f->err), 0);
	run_ok(f, "INSERT INTO p VALUES (3)");
	assert_check(f, DC_CHECK_FOREIGN_KEYS, false, "c: row 2 references a missing row of p\n");
	assert_int_equal(E->commit(f->conn, &f->err), 0);
	orphan_in_new_table(f, "t3.db", 3);

	/* read: history_read outside a transaction, then k */
	enter_prefetched(f, "a", "t4");
	assert_int_equal(E->lock_tenant(f->conn, 1000, &f->err), 0);
	assert_int_equal(E->history_ensure(f->conn, &f->err), 0);
	assert_int_equal(E->history_read(f->conn, &rows, &n, &f->err), 0);
	assert_int_equal(n, 0);
	orphan_in_new_table(f, "t4.db", 5);
	assert_int_equal(E->unlock_tenant(f->conn, &f->err), 0);
}

static void test_checks_cover_everything_when_unsure(void **state)
{
	fx *f = *state;
	dc_history_row row;

	start_acme(f, CHECKS_SCHEMA);
	/* a table renamed away: its new name is unknown, the whole file is checked */
	assert_int_equal(E->begin(f->conn, &f->err), 0);
	run_ok(f, "ALTER TABLE lone RENAME TO lone2");
	assert_check(f, DC_CHECK_FOREIGN_KEYS, false,
	             "lone2: row 1 references a missing row of other\n");
	assert_check(f, DC_CHECK_INTEGRITY, false, "CHECK constraint failed in other\n");
	assert_int_equal(E->rollback(f->conn, &f->err), 0);

	/* a virtual table writes shadow tables the authorizer does not see */
	assert_int_equal(E->enter(f->conn, tenant(f, "acme"), &f->err), 0);
	assert_int_equal(E->begin(f->conn, &f->err), 0);
	run_ok(f, "CREATE VIRTUAL TABLE docs USING rtree (id, lo, hi)");
	assert_check(f, DC_CHECK_INTEGRITY, false, "CHECK constraint failed in other\n");
	assert_int_equal(E->rollback(f->conn, &f->err), 0);

	/* a trigger on deployclaw's own table writes where nothing was noted */
	assert_int_equal(E->enter(f->conn, tenant(f, "acme"), &f->err), 0);
	assert_int_equal(E->begin(f->conn, &f->err), 0);
	fill_row(&row, "0001", DC_HISTORY_APPLIED);
	assert_int_equal(E->history_write(f->conn, &row, &f->err), 0);
	run_ok(f, "CREATE TEMP TRIGGER h AFTER INSERT ON deployclaw_history BEGIN "
	          "UPDATE p SET code = 'x'; END");
	assert_int_equal(E->history_write(f->conn, &row, &f->err), 0);
	assert_check(f, DC_CHECK_INTEGRITY, false, "CHECK constraint failed in other\n");
	assert_int_equal(E->rollback(f->conn, &f->err), 0);

	/* a new visit starts with nothing written */
	assert_int_equal(E->enter(f->conn, tenant(f, "acme"), &f->err), 0);
	assert_int_equal(E->begin(f->conn, &f->err), 0);
	run_ok(f, "INSERT INTO p VALUES (2, 'b')");
	assert_check(f, DC_CHECK_INTEGRITY, false, "");
	assert_check(f, DC_CHECK_FOREIGN_KEYS, false, "");
	assert_int_equal(E->rollback(f->conn, &f->err), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_discover_glob, setup, teardown),
		cmocka_unit_test_setup_teardown(test_discover_glob_skips_sidecars_and_folders,
		                                setup, teardown),
		cmocka_unit_test_setup_teardown(test_discover_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_discover_duplicate_stem, setup, teardown),
		cmocka_unit_test_setup_teardown(test_discover_same_file_twice_is_one_tenant, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_open_refuses_other_models, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rollback_leaves_no_table_and_no_row, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_commit_keeps_change_and_row, setup, teardown),
		cmocka_unit_test(test_parse_status_names),
		cmocka_unit_test(test_engine_vfail_fills_where),
		cmocka_unit_test(test_engine_ops_check),
		cmocka_unit_test_setup_teardown(test_history_unknown_status_is_refused, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_history_rolled_back_row_is_kept, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_history_read_without_table, setup, teardown),
		cmocka_unit_test_setup_teardown(test_begin_twice_and_commit_without_tx, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_tenant_function, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rows_and_multi_row_statements, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_attach_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_transaction_control_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rollback_defeating_pragmas_refused, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_vacuum_only_outside_transaction, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_error_names_position_and_tenant, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_foreign_keys_on, setup, teardown),
		cmocka_unit_test_setup_teardown(test_query_bool, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_a_database, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_only_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_symlinks_resolve_like_sqlite, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty_file_is_a_database, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lock_across_processes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_workers_share_the_engine, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_schema_fingerprint, setup, teardown),
		cmocka_unit_test_setup_teardown(test_integrity_check_text, setup, teardown),
		cmocka_unit_test_setup_teardown(test_history_peek_reads_like_enter, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_prefetch_opens_the_next_tenant, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_schema_loaded_before_is_checked, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_history_peek_rolls_back_a_hot_journal, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_checks_scoped_to_what_was_written, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_foreign_key_check_beyond_enforcement, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_checks_list_tables_again_after_a_statement,
		                                setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreign_key_check_counts_cannot_hide_an_orphan,
		                                setup, teardown),
		cmocka_unit_test_setup_teardown(
		        test_checks_cover_everything_after_a_virtual_table_write, setup, teardown),
		cmocka_unit_test_setup_teardown(test_checks_cover_everything_when_unsure, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_prefetched_graph_holds_only_while_current,
		                                setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
