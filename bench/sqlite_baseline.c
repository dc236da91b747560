/*
 * sqlite_baseline — the least a tool must do to roll a 3-statement migration
 * across a fleet of SQLite files, for bench/sqlite_fleet.sh to compare
 * `deployclaw apply` against.
 *
 *   sqlite_baseline make-fleet DIR N      N tenant files DIR/tenant-NNNNN.db
 *   sqlite_baseline apply DIR [-j N]      migrate every DIR/<name>.db
 *
 * apply: per tenant, open the file, BEGIN IMMEDIATE, the migration's three
 * statements, CREATE TABLE IF NOT EXISTS deployclaw_history, INSERT the
 * history row, COMMIT, close — one transaction per tenant with SQLite's
 * default durability (rollback journal, synchronous=FULL), exactly as
 * deployclaw leaves them. -j N splits the sorted tenant list into N
 * interleaved parts, one thread each (deployclaw's workers are threads too).
 * Prints one line: tenants, threads, wall seconds, tenants/s, peak RSS (KiB,
 * getrusage), failures, CPU seconds (user + system) and user CPU seconds.
 */
#include <glob.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <sqlite3.h>

/* The migration, statement for statement as bench/sqlite_fleet.sh writes it
 * for deployclaw (its one phase, `up`). */
static const char *const migration[] = {
	"ALTER TABLE accounts ADD COLUMN plan TEXT",
	"UPDATE accounts SET plan = CASE WHEN seats > 10 THEN 'team' ELSE 'solo' END",
	"CREATE INDEX accounts_plan ON accounts (plan)",
};

/* deployclaw's history table, as src/engine/sqlite/history.c creates it. */
static const char history_create[] =
        "CREATE TABLE IF NOT EXISTS deployclaw_history (version TEXT PRIMARY KEY NOT NULL, "
        "name TEXT, checksum TEXT, phase TEXT, status TEXT NOT NULL, started_at TEXT, "
        "finished_at TEXT, duration_ms INTEGER, run_id TEXT, actor TEXT)";

static const char history_insert[] =
        "INSERT OR REPLACE INTO deployclaw_history (version, name, checksum, phase, status, "
        "started_at, finished_at, duration_ms, run_id, actor) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";

static const char schema[] =
        "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; BEGIN;"
        "CREATE TABLE accounts (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE,"
        " seats INTEGER NOT NULL, created_at TEXT NOT NULL);"
        "CREATE TABLE orders (id INTEGER PRIMARY KEY,"
        " account_id INTEGER NOT NULL REFERENCES accounts (id), sku TEXT NOT NULL,"
        " quantity INTEGER NOT NULL, unit_price_cents INTEGER NOT NULL);"
        "CREATE INDEX orders_account ON orders (account_id);";

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint32_t next_rand(uint32_t *s)
{
	*s = *s * 1664525u + 1013904223u;
	return *s >> 8;
}

/* The tenant of cmd_demo.c (accounts and orders), without inconsistent ones. */
static int make_tenant(const char *path, size_t index)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *acc = NULL, *ord = NULL;
	uint32_t seed = (uint32_t)index * 2654435761u + 7;
	int naccounts = 5 + (int)(next_rand(&seed) % 16), i, k, rc = 0;
	char email[64];

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
	            SQLITE_OK ||
	    sqlite3_exec(db, schema, NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "INSERT INTO accounts VALUES (?, ?, ?, ?)", -1, &acc, NULL) !=
	            SQLITE_OK ||
	    sqlite3_prepare_v2(db,
	                       "INSERT INTO orders (account_id, sku, quantity, unit_price_cents) "
	                       "VALUES (?, ?, ?, ?)",
	                       -1, &ord, NULL) != SQLITE_OK) {
		fprintf(stderr, "sqlite_baseline: %s: %s\n", path,
		        db ? sqlite3_errmsg(db) : "out of memory");
		rc = -1;
		goto out;
	}
	for (i = 1; i <= naccounts && rc == 0; i++) {
		int norders = 1 + (int)(next_rand(&seed) % 4);

		snprintf(email, sizeof(email), "user%d@tenant%zu.example", i, index);
		sqlite3_bind_int(acc, 1, i);
		sqlite3_bind_text(acc, 2, email, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int(acc, 3, 1 + (int)(next_rand(&seed) % 25));
		sqlite3_bind_text(acc, 4, "2026-01-15T09:00:00Z", -1, SQLITE_STATIC);
		if (sqlite3_step(acc) != SQLITE_DONE)
			rc = -1;
		sqlite3_reset(acc);
		for (k = 0; k < norders && rc == 0; k++) {
			sqlite3_bind_int(ord, 1, i);
			sqlite3_bind_text(ord, 2, k % 2 ? "widget" : "gadget", -1, SQLITE_STATIC);
			sqlite3_bind_int(ord, 3, 1 + (int)(next_rand(&seed) % 9));
			sqlite3_bind_int(ord, 4, 100 + (int)(next_rand(&seed) % 9900));
			if (sqlite3_step(ord) != SQLITE_DONE)
				rc = -1;
			sqlite3_reset(ord);
		}
	}
	if (rc == 0 && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		rc = -1;
	if (rc)
		fprintf(stderr, "sqlite_baseline: %s: %s\n", path, sqlite3_errmsg(db));
out:
	sqlite3_finalize(acc);
	sqlite3_finalize(ord);
	sqlite3_close(db);
	return rc;
}

static int make_fleet(const char *dir, long n)
{
	char path[4096];
	long i;

	for (i = 1; i <= n; i++) {
		snprintf(path, sizeof(path), "%s/tenant-%05ld.db", dir, i);
		if (make_tenant(path, (size_t)i) != 0)
			return 1;
	}
	return 0;
}

typedef struct part {
	char **paths;
	size_t n;
	size_t first;
	size_t step;
	size_t failed;
	pthread_t thread;
} part;

static void rfc3339(char *out, size_t size)
{
	struct timespec ts;
	struct tm tm;
	size_t len;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	len = strftime(out, size, "%Y-%m-%dT%H:%M:%S", &tm);

	snprintf(out + len, size - len, ".%03ldZ", ts.tv_nsec / 1000000);
}

static int migrate(const char *path)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	char started[64], finished[64];
	double t0 = now();
	size_t i;
	int rc;

	rfc3339(started, sizeof(started));
	rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	for (i = 0; rc == SQLITE_OK && i < sizeof(migration) / sizeof(migration[0]); i++)
		rc = sqlite3_exec(db, migration[i], NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, history_create, NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(db, history_insert, -1, &st, NULL);
	if (rc == SQLITE_OK) {
		rfc3339(finished, sizeof(finished));
		sqlite3_bind_text(st, 1, "0001", -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, "add a plan to every account", -1, SQLITE_STATIC);
		sqlite3_bind_text(
		        st, 3, "0000000000000000000000000000000000000000000000000000000000000000",
		        -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, "expand", -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 5, "applied", -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 6, started, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 7, finished, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 8, (sqlite3_int64)((now() - t0) * 1000));
		sqlite3_bind_text(st, 9, "0123456789abcdef0123456789abcdef", -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 10, "bench@localhost", -1, SQLITE_STATIC);
		rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(db);
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		fprintf(stderr, "sqlite_baseline: %s: %s\n", path,
		        db ? sqlite3_errmsg(db) : "out of memory");
	sqlite3_close(db); /* rolls back a transaction left open by a failure */
	return rc == SQLITE_OK ? 0 : -1;
}

static void *run_part(void *arg)
{
	part *p = arg;
	size_t i;

	for (i = p->first; i < p->n; i += p->step)
		if (migrate(p->paths[i]) != 0)
			p->failed++;
	return NULL;
}

static int apply(const char *dir, int threads)
{
	char pattern[4096];
	part *parts;
	glob_t g;
	struct rusage ru;
	size_t failed = 0;
	double t0, secs;
	int i;

	t0 = now();
	snprintf(pattern, sizeof(pattern), "%s/*.db", dir);
	if (glob(pattern, 0, NULL, &g) != 0) {
		fprintf(stderr, "sqlite_baseline: no tenant matches '%s'\n", pattern);
		return 1;
	}
	parts = calloc((size_t)threads, sizeof(*parts));
	if (!parts)
		return 1;
	for (i = 0; i < threads; i++) {
		parts[i].paths = g.gl_pathv;
		parts[i].n = g.gl_pathc;
		parts[i].first = (size_t)i;
		parts[i].step = (size_t)threads;
		if (pthread_create(&parts[i].thread, NULL, run_part, &parts[i]) != 0) {
			fprintf(stderr, "sqlite_baseline: cannot start a thread\n");
			return 1;
		}
	}
	for (i = 0; i < threads; i++) {
		pthread_join(parts[i].thread, NULL);
		failed += parts[i].failed;
	}
	secs = now() - t0;
	getrusage(RUSAGE_SELF, &ru);
	printf("tenants %zu threads %d wall_s %.3f tenants_per_s %.1f maxrss_kib %ld failed %zu "
	       "cpu_s %.2f user_s %.2f\n",
	       g.gl_pathc, threads, secs, (double)g.gl_pathc / secs, ru.ru_maxrss, failed,
	       (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	               (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6,
	       (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6);
	globfree(&g);
	free(parts);
	return failed ? 1 : 0;
}

static int usage(void)
{
	fprintf(stderr, "usage: sqlite_baseline make-fleet DIR N\n"
	                "       sqlite_baseline apply DIR [-j N]\n");
	return 2;
}

int main(int argc, char **argv)
{
	/* as deployclaw's CLI does: no global mutex around every SQLite malloc */
	if (getenv("BASELINE_MEMSTATUS") == NULL)
		sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
	if (argc == 4 && strcmp(argv[1], "make-fleet") == 0) {
		long n = strtol(argv[3], NULL, 10);

		return n > 0 && n < 100000 ? make_fleet(argv[2], n) : usage();
	}
	if ((argc == 3 || argc == 5) && strcmp(argv[1], "apply") == 0) {
		int j = 1;

		if (argc == 5) {
			if (strcmp(argv[3], "-j") != 0)
				return usage();
			j = atoi(argv[4]);
			if (j < 1 || j > 64)
				return usage();
		}
		return apply(argv[2], j);
	}
	return usage();
}
