/*
 * The SQLite engine: tenancy `database`, one SQLite file per tenant.
 *
 * One dc_engine serves the whole fleet (all folders); each worker has a
 * dc_conn whose sqlite3 handle is re-opened by `enter` for every tenant.
 * docs/sqlite-engine.md describes the behaviour a user sees; this comment
 * lists the invariants the code relies on:
 *
 * - A dc_conn is used by one thread at a time (SQLITE_OPEN_NOMUTEX); the
 *   dc_engine is shared by all workers, and its only mutable state (the
 *   lock files of the folders) is guarded by `mu`.
 * - Tenant locks are classic POSIX record locks on one lock file per folder,
 *   `<folder>/.deployclaw.lock`, opened once and kept open until close():
 *   closing ANY descriptor of a file drops every lock the process holds on
 *   it, so the file is never opened per tenant and never closed early.
 * - The authorizer checks only user statements (`conn->user`): deployclaw's
 *   own statements (history, BEGIN/COMMIT, checks) run unchecked.
 * - The tenant id reaches SQL through deployclaw_tenant() only; it is never
 *   spliced into SQL text, and neither is any other value.
 */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>
#include <sqlite3.h>

#include <deployclaw/engine.h>
#include <deployclaw/util.h>

/* Most tenants one engine discovers; more is DC_ELIMIT. */
#define MAX_TENANTS ((size_t)10 * 1000 * 1000)

/* Most history rows read from one tenant; more is DC_ELIMIT. */
#define MAX_HISTORY_ROWS ((size_t)1000 * 1000)

/* Distinct tables recorded per statement (the rest are not recorded). */
#define MAX_TABLES 8

/* Distinct tables recorded as written per tenant visit; more checks the
 * whole database. */
#define MAX_WRITTEN 256

/* How often lock_tenant retries while another process holds the lock. */
#define LOCK_POLL_MS 10

#define LOCK_FILE_NAME ".deployclaw.lock"

#define HISTORY_CREATE                                                                       \
	"CREATE TABLE IF NOT EXISTS deployclaw_history (version TEXT PRIMARY KEY NOT NULL, " \
	"name TEXT, checksum TEXT, phase TEXT, status TEXT NOT NULL, started_at TEXT, "      \
	"finished_at TEXT, duration_ms INTEGER, run_id TEXT, actor TEXT)"

#define HISTORY_COLUMNS \
	"SELECT version, name, checksum, phase, status, started_at, finished_at, duration_ms, run_id, actor "
#define HISTORY_SELECT      HISTORY_COLUMNS "FROM deployclaw_history ORDER BY rowid"
#define HISTORY_SELECT_PEEK HISTORY_COLUMNS "FROM " PEEK_SCHEMA ".deployclaw_history ORDER BY rowid"

/* The schema name a tenant is attached under by history_peek. */
#define PEEK_SCHEMA "tenant"

#define HISTORY_UPSERT                                                                        \
	"INSERT OR REPLACE INTO deployclaw_history (version, name, checksum, phase, status, " \
	"started_at, finished_at, duration_ms, run_id, actor) "                               \
	"VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"

#define SCHEMA_SELECT                                                                         \
	"SELECT type, name, tbl_name, sql FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%' " \
	"AND name != 'deployclaw_history' ORDER BY type, name"

/* One folder's lock file. Several spellings of a folder ("t", "./t") may
 * share one descriptor: only the entry with `owner` closes it. */
typedef struct lock_folder {
	char *spelling; /* the folder as the tenants name it */
	char *real;     /* realpath of the folder: the lock offset hashes it */
	int fd;
	bool owner;
} lock_folder;

struct dc_engine {
	char *glob;  /* resolved glob of tenant files, or NULL */
	char **list; /* resolved explicit tenant files */
	size_t nlist;
	int busy_ms; /* sqlite3_busy_timeout, from gates.lock_timeout */
	/* a check scoped to what was written will run (gates.*: changed): the
	 * prefetch thread reads the check graph, with its foreign keys when
	 * the foreign key check is one of them */
	bool graph_wanted;
	bool edges_wanted;

	pthread_mutex_t mu; /* guards `folders` */
	lock_folder *folders;
	size_t nfolders;
	size_t afolders;
};

/* What the connection knows of the tenant's deployclaw_history. */
typedef enum history_state {
	HISTORY_UNKNOWN = 0, /* ask the file (after a rollback) */
	HISTORY_MISSING = 1, /* no table: history_read has no rows, history_write creates it */
	HISTORY_EMPTY = 2,   /* created during this visit, no row written yet */
	HISTORY_PRESENT = 3
} history_state;

/* The canonical path of a tenant's folder (realpath), for the folder it was
 * computed from: consecutive tenants share it. */
typedef struct path_cache {
	char *dir_spelling;
	char *dir_real;
	dc_strbuf canon; /* the tenant file's canonical path */
} path_cache;

/* A table or view of the tenant's file (see graph_load). */
typedef struct check_table {
	char *name;
	char type;   /* 't'able, 'v'iew, 'V'irtual table */
	bool refs;   /* its SQL mentions REFERENCES: it may have a foreign key */
	bool in_set; /* to be checked */
	bool has_fk; /* has a foreign key (graph_edges) */
} check_table;

/* A foreign key of table t[child] referencing `parent` (see graph_edges). */
typedef struct fk_edge {
	size_t child;
	char *parent;
} fk_edge;

/*
 * What the scoped checks need to know of a file's schema: its tables and
 * views by name, and (once `edges` is set) its foreign keys. Read by
 * graph_load, on the worker or ahead of it by the prefetch thread.
 */
typedef struct check_graph {
	check_table *t;
	size_t n;
	fk_edge *e;
	size_t ne;
	bool edges; /* e and every has_fk are filled */
} check_graph;

/*
 * Opens the tenant a worker will probably enter next while it still works on
 * the current one (see sq_prefetch): a thread of the connection, started on
 * first use, with one job slot and one result. Guarded by `mu`.
 */
typedef struct prefetcher {
	pthread_t thread;
	bool running;
	bool quit;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	const dc_tenant *job;     /* to open next; NULL: none */
	bool job_graph;           /* read its check graph too (see sq_prefetch) */
	bool job_edges;           /* with its foreign keys */
	const dc_tenant *working; /* being opened now */
	const dc_tenant *done_for;
	sqlite3 *done;  /* opened and checked for done_for */
	dev_t done_dev; /* the file it opened */
	ino_t done_ino;
	int done_version;        /* its SQLITE_FCNTL_DATA_VERSION once the schema loaded */
	check_graph *done_graph; /* read at done_version, or NULL */
	sqlite3 *to_close;       /* a handle the worker left behind */
	path_cache paths;
} prefetcher;

/* A table a user statement wrote (see dc_conn.written). */
typedef struct written_table {
	char *name;
	bool dropped; /* by DROP TABLE: its absence is expected */
} written_table;

struct dc_conn {
	dc_engine *engine;
	sqlite3 *db;             /* the current tenant's file, NULL before enter */
	const dc_tenant *tenant; /* borrowed until the next enter */
	bool in_tx;
	history_state history; /* whether deployclaw_history exists */

	/* The tenant lock: a 1-byte range of the folder's lock file. */
	bool locked;
	int lock_fd;
	off_t lock_off;

	/* Classification of the user statement being prepared, filled by the
	 * authorizer. `refusal` is non-empty when the authorizer denied it. */
	bool user;
	unsigned actions;
	bool altering; /* an ALTER TABLE (see authorize) */
	bool ddl;
	bool dml;
	size_t ntables;
	char tables[MAX_TABLES][64];
	char refusal[512];

	/* The tables the user's statements wrote since enter, for the checks
	 * scoped to them. The authorizer notes them while a user statement is
	 * prepared: trigger bodies and foreign key actions are compiled then
	 * too. `written_all`: a write these names do not capture (a virtual
	 * table's, PRAGMA writable_schema, more than MAX_WRITTEN tables, no
	 * memory): the checks cover the whole database. */
	written_table *written;
	size_t nwritten, awritten;
	bool written_all;
	bool ignored_checks; /* the user ran PRAGMA ignore_check_constraints */

	/* The file's schema as the checks last read it (see check_graph). While
	 * !graph_sticky (read by the worker), it is kept from one check to the
	 * next while no statement ran in between. A sticky one came from the
	 * prefetch thread, read before the run's transaction: it is valid in
	 * the first transaction only, when that transaction finds the file's
	 * data version the one it was read at (sq_begin), and until a statement
	 * of the run could change it (authorize). graph_taken/graph_used: a prefetched graph was
	 * installed for this tenant / a check used it; graph_unwanted: the last
	 * one went unused, so the next prefetch skips it (sq_prefetch). */
	check_graph graph;
	bool graph_valid;
	bool graph_sticky;
	bool graph_pending; /* sticky, not yet confirmed by begin */
	int graph_version;  /* the data version it was read at */
	unsigned txs;       /* transactions begun since enter */
	bool graph_taken;
	bool graph_used;
	bool graph_unwanted;
	bool schema_changed;  /* a user statement since enter could change the graph */
	const char *stmt_sql; /* the user statement being prepared (authorize) */

	dc_strbuf scratch; /* "EXPLAIN <sql>", reused across statements */

	path_cache paths; /* the worker's own (the prefetch thread has its own) */
	prefetcher pf;
	/* SQLite holds db's schema as loaded outside a transaction of ours (by
	 * the prefetch thread, or a read transaction since ended) when the
	 * file's data version was `preload_version` (see schema_current) */
	bool preloaded;
	int preload_version;

	/* history_peek: an in-memory database each tenant is attached to in
	 * turn, opened on first use (see sq_history_peek). */
	sqlite3 *host;
	sqlite3_stmt *attach, *detach;
};

static void graph_free(check_graph *g);
static void graph_destroy(check_graph *g);
static void graph_drop(dc_conn *c);
static int graph_load(sqlite3 *db, bool edges, check_graph *g, const char **what);

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */

static const char *tenant_id(const dc_conn *c)
{
	return c->tenant && c->tenant->id ? c->tenant->id : "?";
}

/* As dc_error_set_at, and fills err->tenant. Message callers prefix the
 * tenant themselves, so it reads well without the structured field. */
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

	if (!err || err->code != 0)
		return code;
	va_start(ap, fmt);
	dc_error_vset(err, code, fmt, ap);
	va_end(ap);
	if (file) {
		snprintf(err->file, sizeof(err->file), "%s", file);
		err->line = line;
		err->col = col;
	}
	if (c->tenant && c->tenant->id)
		snprintf(err->tenant, sizeof(err->tenant), "%s", c->tenant->id);
	return code;
}

/* The last error of `db` (the tenant's handle, or planning's host). */
static int db_fail_on(const dc_conn *c, sqlite3 *db, dc_error *err, const char *what)
{
	if (what)
		return conn_fail(c, err, DC_EDB, NULL, 0, 0, "tenant '%s': %s: %s", tenant_id(c),
		                 what, sqlite3_errmsg(db));
	return conn_fail(c, err, DC_EDB, NULL, 0, 0, "tenant '%s': %s", tenant_id(c),
	                 sqlite3_errmsg(db));
}

static int db_fail(const dc_conn *c, dc_error *err, const char *what)
{
	return db_fail_on(c, c->db, err, what);
}

static int need_db(const dc_conn *c, dc_error *err)
{
	if (c->db)
		return 0;
	return conn_fail(c, err, DC_EINVAL, NULL, 0, 0, "no tenant entered on this connection");
}

/* ------------------------------------------------------------------------ */
/* Engine                                                                   */

static void sq_close(dc_engine *e)
{
	size_t i;

	if (!e)
		return;
	for (i = 0; i < e->nfolders; i++) {
		if (e->folders[i].owner)
			close(e->folders[i].fd);
		free(e->folders[i].spelling);
		free(e->folders[i].real);
	}
	free(e->folders);
	for (i = 0; i < e->nlist; i++)
		free(e->list[i]);
	free(e->list);
	free(e->glob);
	pthread_mutex_destroy(&e->mu);
	free(e);
}

static int sq_open(dc_engine **out,
                   const dc_config *cfg,
                   const dc_shard_config *shard,
                   dc_error *err)
{
	dc_engine *e = NULL;
	size_t i;
	int ret = 0;

	(void)shard; /* one engine serves every folder of the fleet */
	*out = NULL;
	if (cfg->tenancy.model != DC_TENANCY_DATABASE)
		return dc_error_set(
		        err, DC_ECONFIG,
		        "tenancy.model: the sqlite engine supports 'database' only (one file per tenant)");
	if (!cfg->tenancy.glob && cfg->tenancy.nlist == 0)
		return dc_error_set(
		        err, DC_ECONFIG,
		        "tenancy: the sqlite engine needs 'glob' or 'list' to find the tenant files");
	e = calloc(1, sizeof(*e));
	if (!e)
		return dc_error_set(err, DC_ENOMEM, "out of memory");
	if (pthread_mutex_init(&e->mu, NULL) != 0) {
		free(e);
		return dc_error_set(err, DC_ENOMEM, "cannot create a mutex");
	}
	if (cfg->tenancy.glob && !(e->glob = dc_strdup(cfg->tenancy.glob)))
		goto oom;
	if (cfg->tenancy.nlist) {
		e->list = dc_malloc_array(cfg->tenancy.nlist, sizeof(*e->list));
		if (!e->list)
			goto oom;
		for (i = 0; i < cfg->tenancy.nlist; i++) {
			e->list[i] = dc_path_join(cfg->dir, cfg->tenancy.list[i]);
			if (!e->list[i])
				goto oom;
			e->nlist++;
		}
	}
	if (cfg->gates.lock_timeout_ms <= 0)
		e->busy_ms = 0;
	else if (cfg->gates.lock_timeout_ms > INT_MAX)
		e->busy_ms = INT_MAX;
	else
		e->busy_ms = (int)cfg->gates.lock_timeout_ms;
	e->edges_wanted = cfg->gates.foreign_key_check == DC_CHECK_CHANGED;
	e->graph_wanted = e->edges_wanted || cfg->gates.integrity_check == DC_CHECK_CHANGED;
	*out = e;
	e = NULL;
	goto out;
oom:
	ret = dc_error_set(err, DC_ENOMEM, "out of memory");
out:
	sq_close(e);
	return ret;
}

/* ------------------------------------------------------------------------ */
/* Discovery                                                                */

/* SQLite's own files next to a database: never tenants. */
static bool is_sidecar(const char *path)
{
	static const char *const suffixes[] = { "-journal", "-wal", "-shm" };
	size_t len = strlen(path), i, n;

	for (i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		n = strlen(suffixes[i]);
		if (len > n && strcmp(path + len - n, suffixes[i]) == 0)
			return true;
	}
	return false;
}

static int add_tenant(dc_ptrvec *paths, const char *path)
{
	char *copy = dc_strdup(path);

	if (!copy)
		return DC_ENOMEM;
	if (dc_ptrvec_push(paths, copy) != 0) {
		free(copy);
		return DC_ENOMEM;
	}
	return 0;
}

static int cmp_tenant(const void *a, const void *b)
{
	const dc_tenant *x = a, *y = b;
	int c = strcmp(x->id, y->id);

	return c ? c : strcmp(x->target, y->target);
}

/* File stem: the basename up to its last '.' (".hidden" keeps its dot). */
static char *file_stem(const char *path)
{
	const char *base = strrchr(path, '/');
	const char *dot;

	base = base ? base + 1 : path;
	dot = strrchr(base, '.');
	if (!dot || dot == base)
		return dc_strdup(base);
	return dc_strndup(base, (size_t)(dot - base));
}

static int sq_discover(dc_engine *e, dc_tenant **tenants, size_t *n, dc_error *err)
{
	dc_ptrvec paths = DC_PTRVEC_INIT;
	dc_tenant *ts = NULL;
	glob_t g;
	bool have_glob = false;
	size_t i, nt = 0;
	int ret = 0, rc;

	*tenants = NULL;
	*n = 0;
	memset(&g, 0, sizeof(g));
	if (e->glob) {
		/* GLOB_MARK appends '/' to folders, so they are skipped without a stat. */
		rc = glob(e->glob, GLOB_MARK, NULL, &g);
		have_glob = true;
		if (rc == GLOB_NOSPACE) {
			ret = dc_error_set(err, DC_ENOMEM, "out of memory");
			goto out;
		}
		if (rc == GLOB_ABORTED) {
			ret = dc_error_set(err, DC_EIO, "tenancy.glob '%s': cannot read a folder",
			                   e->glob);
			goto out;
		}
		for (i = 0; rc == 0 && i < g.gl_pathc; i++) {
			const char *p = g.gl_pathv[i];
			size_t len = strlen(p);

			if (len == 0 || p[len - 1] == '/' || is_sidecar(p))
				continue;
			if (add_tenant(&paths, p) != 0)
				goto oom;
		}
	}
	for (i = 0; i < e->nlist; i++)
		if (add_tenant(&paths, e->list[i]) != 0)
			goto oom;
	if (paths.len > MAX_TENANTS) {
		ret = dc_error_set(err, DC_ELIMIT, "more than %zu tenant files", MAX_TENANTS);
		goto out;
	}
	if (paths.len == 0)
		goto out;
	ts = calloc(paths.len, sizeof(*ts));
	if (!ts)
		goto oom;
	for (i = 0; i < paths.len; i++) {
		ts[nt].target = paths.items[i];
		paths.items[i] = NULL;
		nt++;
		ts[nt - 1].id = file_stem(ts[nt - 1].target);
		ts[nt - 1].shard = dc_path_dirname(ts[nt - 1].target);
		if (!ts[nt - 1].id || !ts[nt - 1].shard)
			goto oom;
	}
	qsort(ts, nt, sizeof(*ts), cmp_tenant);
	/* The same file found twice (glob and list) is one tenant; two files with
	 * one stem are a configuration error. */
	for (i = 1; i < nt;) {
		if (strcmp(ts[i].id, ts[i - 1].id) != 0) {
			i++;
			continue;
		}
		if (strcmp(ts[i].target, ts[i - 1].target) != 0) {
			ret = dc_error_set(
			        err, DC_ECONFIG,
			        "duplicate tenant id '%s': '%s' and '%s' have the same file stem",
			        ts[i].id, ts[i - 1].target, ts[i].target);
			goto out;
		}
		free(ts[i].id);
		free(ts[i].shard);
		free(ts[i].target);
		memmove(&ts[i], &ts[i + 1], (nt - i - 1) * sizeof(*ts));
		nt--;
	}
	*tenants = ts;
	*n = nt;
	ts = NULL;
	nt = 0;
	goto out;
oom:
	ret = dc_error_set(err, DC_ENOMEM, "out of memory");
out:
	dc_tenants_free(ts, nt);
	dc_ptrvec_release(&paths, free);
	if (have_glob)
		globfree(&g);
	return ret;
}

/* ------------------------------------------------------------------------ */
/* Connections                                                              */

static int sq_connect(dc_engine *e, dc_conn **out, dc_error *err)
{
	dc_conn *c = calloc(1, sizeof(*c));

	*out = NULL;
	if (!c)
		return dc_error_set(err, DC_ENOMEM, "out of memory");
	c->engine = e;
	c->lock_fd = -1;
	dc_strbuf_init(&c->scratch, 1024 * 1024);
	dc_strbuf_init(&c->paths.canon, PATH_MAX + 1);
	dc_strbuf_init(&c->pf.paths.canon, PATH_MAX + 1);
	if (pthread_mutex_init(&c->pf.mu, NULL) != 0) {
		free(c);
		return dc_error_set(err, DC_ENOMEM, "cannot create a mutex");
	}
	if (pthread_cond_init(&c->pf.cv, NULL) != 0) {
		pthread_mutex_destroy(&c->pf.mu);
		free(c);
		return dc_error_set(err, DC_ENOMEM, "cannot create a condition variable");
	}
	*out = c;
	return 0;
}

static int release_lock(dc_conn *c)
{
	struct flock fl;

	if (!c->locked)
		return 0;
	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_UNLCK;
	fl.l_whence = SEEK_SET;
	fl.l_start = c->lock_off;
	fl.l_len = 1;
	c->locked = false;
	return fcntl(c->lock_fd, F_SETLK, &fl);
}

/* Leaves the current tenant: drops its lock and closes its file (which rolls
 * back an open transaction). */
static void written_reset(dc_conn *c)
{
	size_t i;

	for (i = 0; i < c->nwritten; i++)
		free(c->written[i].name);
	c->nwritten = 0;
	c->written_all = false;
	c->ignored_checks = false;
	c->schema_changed = false;
	graph_drop(c);
}

static void path_cache_release(path_cache *pc)
{
	dc_strbuf_release(&pc->canon);
	free(pc->dir_spelling);
	free(pc->dir_real);
	pc->dir_spelling = pc->dir_real = NULL;
}

/* Closes `db` on the prefetch thread when it runs and has room, else here:
 * a close is SQLite's teardown of the handle, off the worker's path. The
 * thread is not woken for it: the next prefetch, which follows at once,
 * wakes it for both (one wake-up per tenant, not two); the disconnect closes
 * what is still there. */
static void close_later(dc_conn *c, sqlite3 *db)
{
	prefetcher *pf = &c->pf;

	if (!db)
		return;
	if (pf->running) {
		pthread_mutex_lock(&pf->mu);
		if (!pf->to_close) {
			pf->to_close = db;
			db = NULL;
		}
		pthread_mutex_unlock(&pf->mu);
	}
	sqlite3_close(db);
}

static void leave(dc_conn *c)
{
	/* a prefetched graph no check used (the migration changed the schema,
	 * wrote what only a full check covers, or nothing): the next tenant is
	 * likely alike, and its prefetch skips the graph */
	if (c->graph_taken)
		c->graph_unwanted = !c->graph_used;
	c->graph_taken = c->graph_used = false;
	c->txs = 0;
	(void)release_lock(c);
	close_later(c, c->db);
	c->db = NULL;
	c->tenant = NULL;
	c->preloaded = false;
	c->in_tx = false;
	c->history = HISTORY_UNKNOWN;
	written_reset(c);
}

static void sq_disconnect(dc_conn *c)
{
	if (!c)
		return;
	leave(c);
	if (c->pf.running) {
		pthread_mutex_lock(&c->pf.mu);
		c->pf.quit = true;
		pthread_cond_broadcast(&c->pf.cv);
		pthread_mutex_unlock(&c->pf.mu);
		pthread_join(c->pf.thread, NULL);
	}
	sqlite3_close(c->pf.done);
	sqlite3_close(c->pf.to_close);
	pthread_cond_destroy(&c->pf.cv);
	pthread_mutex_destroy(&c->pf.mu);
	sqlite3_finalize(c->attach);
	sqlite3_finalize(c->detach);
	sqlite3_close(c->host);
	free(c->written);
	graph_drop(c);
	graph_destroy(c->pf.done_graph);
	dc_strbuf_release(&c->scratch);
	path_cache_release(&c->paths);
	path_cache_release(&c->pf.paths);
	free(c);
}

static void fn_tenant(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	const dc_conn *c = sqlite3_user_data(ctx);

	(void)argc;
	(void)argv;
	/* SQLITE_STATIC: the id outlives the handle (it is borrowed until the
	 * next enter, which closes the handle first). */
	sqlite3_result_text(ctx, c->tenant->id, -1, SQLITE_STATIC);
}

static void refuse(dc_conn *c, const char *fmt, ...) DC_PRINTF(2, 3);

static void refuse(dc_conn *c, const char *fmt, ...)
{
	va_list ap;

	if (c->refusal[0])
		return; /* the first reason is the one to report */
	va_start(ap, fmt);
	vsnprintf(c->refusal, sizeof(c->refusal), fmt, ap);
	va_end(ap);
}

static void note_table(dc_conn *c, const char *table)
{
	size_t i;

	if (!table || strncmp(table, "sqlite_", 7) == 0)
		return;
	for (i = 0; i < c->ntables; i++)
		if (strcmp(c->tables[i], table) == 0)
			return;
	if (c->ntables < MAX_TABLES)
		snprintf(c->tables[c->ntables++], sizeof(c->tables[0]), "%s", table);
}

/* Notes that the user's statement writes `table` of database `db`. */
static void note_written(dc_conn *c, const char *table, const char *db, bool dropped)
{
	written_table *w;
	size_t i;

	if (!table || strncasecmp(table, "sqlite_", 7) == 0 || (db && strcmp(db, "main") != 0))
		return; /* SQLite's own tables; temp tables are not in the file */
	for (i = 0; i < c->nwritten; i++) {
		if (strcasecmp(c->written[i].name, table) == 0) {
			c->written[i].dropped |= dropped;
			return;
		}
	}
	if (c->nwritten == MAX_WRITTEN) {
		c->written_all = true;
		return;
	}
	if (c->nwritten == c->awritten) {
		size_t na = c->awritten ? c->awritten * 2 : 8;

		w = dc_realloc_array(c->written, na, sizeof(*w));
		if (!w) {
			c->written_all = true;
			return;
		}
		c->written = w;
		c->awritten = na;
	}
	w = &c->written[c->nwritten];
	w->name = dc_strdup(table);
	if (!w->name) {
		c->written_all = true;
		return;
	}
	w->dropped = dropped;
	c->nwritten++;
}

/* A user statement may change what the checks know of the schema (tables,
 * views, foreign keys): the prefetched graph no longer holds. */
static void schema_change(dc_conn *c)
{
	c->schema_changed = true;
	c->graph_valid = false;
	c->graph_pending = false;
}

static bool own_database(const char *db)
{
	return !db || strcmp(db, "main") == 0 || strcmp(db, "temp") == 0;
}

/*
 * The authorizer: tenant isolation (no ATTACH/DETACH, no schema other than
 * main and temp), no transaction control, and the statement's class (DDL or
 * DML) and tables. Runs while a user statement is prepared (and re-prepared).
 */
static int authorize(void *arg,
                     int action,
                     const char *a1,
                     const char *a2,
                     const char *db,
                     const char *trigger)
{
	dc_conn *c = arg;

	if (!c->user) {
		/* deployclaw's own statements; a trigger a migration put on one of
		 * its tables writes unseen tables: the checks then cover the file */
		if (trigger && action != SQLITE_READ && action != SQLITE_SELECT)
			c->written_all = true;
		return SQLITE_OK;
	}
	c->actions++;
	switch (action) {
	case SQLITE_ATTACH:
	case SQLITE_DETACH:
		refuse(c,
		       "statement refused: %s would reach outside tenant '%s' (tenant isolation)",
		       action == SQLITE_ATTACH ? "ATTACH" : "DETACH", tenant_id(c));
		return SQLITE_DENY;
	case SQLITE_TRANSACTION:
	case SQLITE_SAVEPOINT:
		refuse(c,
		       "tenant '%s': BEGIN/COMMIT inside a migration: deployclaw manages the transaction",
		       tenant_id(c));
		return SQLITE_DENY;
	default:
		break;
	}
	/* For SQLITE_ALTER_TABLE the schema is arg1 (and DROP COLUMN puts the
	 * column name where other actions put the schema). */
	if (action == SQLITE_ALTER_TABLE)
		db = a1;
	if (!own_database(db)) {
		refuse(c,
		       "statement refused: database '%s' would reach outside tenant '%s' (tenant isolation)",
		       db, tenant_id(c));
		return SQLITE_DENY;
	}
	/* The class and tables of the statement; and for the checks scoped to
	 * what a migration wrote, the tables it writes (note_written). */
	switch (action) {
	case SQLITE_CREATE_INDEX:
	case SQLITE_DROP_INDEX:
		c->ddl = true;
		note_table(c, a2);
		note_written(c, a2, db, false);
		break;
	case SQLITE_CREATE_TEMP_INDEX:
	case SQLITE_CREATE_TRIGGER:
	case SQLITE_CREATE_TEMP_TRIGGER:
	case SQLITE_DROP_TEMP_INDEX:
	case SQLITE_DROP_TRIGGER:
	case SQLITE_DROP_TEMP_TRIGGER:
		c->ddl = true;
		note_table(c, a2);
		break;
	case SQLITE_CREATE_TABLE:
	case SQLITE_DROP_TABLE:
		c->ddl = true;
		schema_change(c);
		note_table(c, a1);
		note_written(c, a1, db, action == SQLITE_DROP_TABLE);
		break;
	case SQLITE_CREATE_VIEW:
	case SQLITE_DROP_VIEW:
		schema_change(c);
		/* fall through */
	case SQLITE_CREATE_TEMP_TABLE:
	case SQLITE_CREATE_TEMP_VIEW:
	case SQLITE_DROP_TEMP_TABLE:
	case SQLITE_DROP_TEMP_VIEW:
	case SQLITE_REINDEX: /* rebuilds indexes from their tables: nothing to check */
	case SQLITE_ANALYZE:
		c->ddl = true;
		note_table(c, a1);
		break;
	case SQLITE_CREATE_VTABLE:
	case SQLITE_DROP_VTABLE:
		c->ddl = true;
		schema_change(c);
		note_table(c, a1);
		c->written_all = true; /* its module writes shadow tables unseen */
		break;
	case SQLITE_ALTER_TABLE:
		c->ddl = true;
		c->altering = true;
		/* Its table keeps its name (a rename makes the checks cover the
		 * whole file: see SQLITE_UPDATE) and may gain a foreign key only by
		 * an ADD COLUMN that says REFERENCES: SQLite stores the column's
		 * definition as written, and allows no DROP COLUMN of a key's. */
		if (!c->stmt_sql || sqlite3_strlike("%REFERENCES%", c->stmt_sql, 0) == 0)
			schema_change(c);
		note_table(c, a2);
		note_written(c, a2, db, false);
		break;
	case SQLITE_INSERT:
	case SQLITE_UPDATE:
	case SQLITE_DELETE:
		/* ALTER TABLE ... RENAME TO rewrites the table's name in sqlite_schema
		 * (its nested UPDATE is authorized with the ALTER; CREATE TABLE
		 * writes the name too, not under an ALTER): the rows now live
		 * under a name no statement wrote, and a table made under the old
		 * name hides the move -- the checks cover the whole file */
		if (action == SQLITE_UPDATE && c->altering && a1 && a2 && own_database(db) &&
		    (strcasecmp(a1, "sqlite_master") == 0 ||
		     strcasecmp(a1, "sqlite_schema") == 0) &&
		    (strcasecmp(a2, "name") == 0 || strcasecmp(a2, "tbl_name") == 0))
			c->written_all = true;
		/* DDL writes sqlite_schema: that is not a row change of the user's. */
		if (a1 && strncmp(a1, "sqlite_", 7) != 0)
			c->dml = true;
		note_table(c, a1);
		note_written(c, a1, db, false);
		break;
	case SQLITE_PRAGMA:
		if (a1 && strcasecmp(a1, "writable_schema") == 0)
			c->written_all = true;
		if (a1 && strcasecmp(a1, "ignore_check_constraints") == 0)
			c->ignored_checks = true;
		break;
	case SQLITE_READ:
		note_table(c, a1);
		break;
	default:
		break;
	}
	return SQLITE_OK;
}

/*
 * Opening a file, SQLite's unix VFS turns its name into a canonical one
 * (xFullPathname): getcwd for a relative name, then an lstat of every
 * component to resolve symlinks -- six syscalls for tenants/t.db, paid at
 * every open, twice per tenant (planning, then the run). A tenant file that
 * is a regular file in a folder whose realpath this connection already knows
 * has a canonical name already: it opens through "deployclaw-canonical", the
 * unix VFS with an xFullPathname that takes an absolute name as it is. Any
 * other file (a symlink, a name realpath cannot resolve) opens through the
 * default VFS, as before. The journal and locks are SQLite's own either way.
 */
#define CANONICAL_VFS "deployclaw-canonical"

static sqlite3_vfs canonical_vfs;
static sqlite3_vfs *canonical_base;
static pthread_once_t canonical_once = PTHREAD_ONCE_INIT;
static bool canonical_ok;

static int canonical_full_pathname(sqlite3_vfs *vfs, const char *path, int nout, char *out)
{
	size_t n = strlen(path);

	(void)vfs;
	if (path[0] != '/')
		return canonical_base->xFullPathname(canonical_base, path, nout, out);
	if (nout < 1 || n >= (size_t)nout)
		return SQLITE_CANTOPEN;
	memcpy(out, path, n + 1);
	return SQLITE_OK;
}

static void canonical_register(void)
{
	canonical_base = sqlite3_vfs_find(NULL);
	if (!canonical_base || canonical_base->iVersion < 1)
		return;
	canonical_vfs = *canonical_base;
	canonical_vfs.zName = CANONICAL_VFS;
	canonical_vfs.pNext = NULL;
	canonical_vfs.xFullPathname = canonical_full_pathname;
	canonical_ok = sqlite3_vfs_register(&canonical_vfs, 0) == SQLITE_OK;
}

/*
 * The canonical name of `target` in pc->canon, when its folder resolves and
 * the file is not a symlink (lstat into *sb); false otherwise (then *sb is
 * not filled and the caller stats the name as given).
 */
static bool canonical_path(path_cache *pc, const char *target, struct stat *sb)
{
	const char *slash = strrchr(target, '/');
	const char *base = slash ? slash + 1 : target;
	/* the cache key: the folder as spelled, with its slash ("" is the cwd) */
	size_t klen = slash ? (size_t)(slash - target) + 1 : 0;

	if (!canonical_ok || !*base || !strcmp(base, ".") || !strcmp(base, ".."))
		return false;
	if (!pc->dir_spelling || strlen(pc->dir_spelling) != klen ||
	    strncmp(pc->dir_spelling, target, klen) != 0) {
		char *spelling = dc_strndup(target, klen);
		char *folder =
		        klen > 1 ? dc_strndup(target, klen - 1) : dc_strdup(klen ? "/" : ".");
		char *real = spelling && folder ? realpath(folder, NULL) : NULL;

		free(folder);
		if (!real) {
			free(spelling);
			return false;
		}
		free(pc->dir_spelling);
		free(pc->dir_real);
		pc->dir_spelling = spelling;
		pc->dir_real = real;
	}
	dc_strbuf_reset(&pc->canon);
	dc_strbuf_addf(&pc->canon, "%s/%s", strcmp(pc->dir_real, "/") ? pc->dir_real : "", base);
	if (dc_strbuf_error(&pc->canon) || lstat(pc->canon.buf, sb) != 0 || S_ISLNK(sb->st_mode))
		return false;
	return true;
}

static int readonly_fail(dc_conn *c, const dc_tenant *t, dc_error *err)
{
	return conn_fail(c, err, DC_EINVAL, NULL, 0, 0,
	                 "tenant '%s' ('%s'): the database file is read-only", t->id, t->target);
}

/*
 * What SQLite would find on its first read, for the price of one pread:
 * a file whose first 16 bytes are not SQLite's magic is not a database (an
 * empty file is an empty database).
 */
static int check_magic(dc_conn *c,
                       sqlite3 *db,
                       const char *schema,
                       const dc_tenant *t,
                       dc_error *err)
{
	static const char magic[16] = "SQLite format 3";
	sqlite3_file *f = NULL;
	char head[16];
	int rc;

	if (sqlite3_file_control(db, schema, SQLITE_FCNTL_FILE_POINTER, &f) != SQLITE_OK || !f ||
	    !f->pMethods)
		return 0; /* the first real read decides */
	rc = f->pMethods->xRead(f, head, sizeof(head), 0);
	if (rc == SQLITE_IOERR_SHORT_READ) {
		sqlite3_int64 size = -1;

		if (f->pMethods->xFileSize(f, &size) == SQLITE_OK && size == 0)
			return 0;
	} else if (rc == SQLITE_OK && memcmp(head, magic, sizeof(magic)) == 0) {
		return 0;
	} else if (rc != SQLITE_OK) {
		return conn_fail(c, err, DC_EIO, NULL, 0, 0, "tenant '%s' ('%s'): %s", t->id,
		                 t->target, sqlite3_errstr(rc));
	}
	return conn_fail(c, err, DC_EDB, NULL, 0, 0, "tenant '%s' ('%s'): %s", t->id, t->target,
	                 sqlite3_errstr(SQLITE_NOTADB));
}

/* The tenant's file as enter and history_peek find it before SQLite opens
 * it: `*canonical` when pc->canon holds its canonical name (see
 * canonical_path). A missing file, one that is not a regular file and one
 * without any write bit fail here. */
static int tenant_file(dc_conn *c,
                       path_cache *pc,
                       const dc_tenant *t,
                       bool *canonical,
                       struct stat *st,
                       dc_error *err)
{
	struct stat sb;

	pthread_once(&canonical_once, canonical_register);
	*canonical = canonical_path(pc, t->target, &sb);
	if (!*canonical && stat(t->target, &sb) != 0) {
		if (errno == ENOENT)
			return conn_fail(c, err, DC_ENOTFOUND, NULL, 0, 0,
			                 "tenant '%s' ('%s'): the database file does not exist",
			                 t->id, t->target);
		return conn_fail(c, err, DC_EIO, NULL, 0, 0, "tenant '%s' ('%s'): %s", t->id,
		                 t->target, strerror(errno));
	}
	if (!S_ISREG(sb.st_mode))
		return conn_fail(c, err, DC_EINVAL, NULL, 0, 0,
		                 "tenant '%s' ('%s'): not a regular file", t->id, t->target);
	/* No write bit at all is a read-only file even for root, who could write it
	 * anyway: a file someone made read-only is not ours to change. */
	if (!(sb.st_mode & (S_IWUSR | S_IWGRP | S_IWOTH)))
		return readonly_fail(c, t, err);
	if (st)
		*st = sb;
	return 0;
}

/*
 * Opens tenant `t` into `*out`, ready for the run: the file checks, the
 * handle's settings (busy timeout, foreign keys, deployclaw_tenant(), the
 * authorizer -- all bound to `c`) and the magic. `pc` is the caller's path
 * cache. With `err` NULL (the prefetch thread) nothing of `c` is written.
 */
static int open_tenant(dc_conn *c,
                       path_cache *pc,
                       const dc_tenant *t,
                       sqlite3 **out,
                       struct stat *st,
                       dc_error *err)
{
	const char *path = t->target, *vfs = NULL;
	sqlite3 *db = NULL;
	bool canonical = false;
	int rc, ret = 0;

	*out = NULL;
	if ((ret = tenant_file(c, pc, t, &canonical, st, err)) != 0)
		return ret;
	if (canonical) {
		path = pc->canon.buf;
		vfs = CANONICAL_VFS;
	}
	rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, vfs);
	if (rc != SQLITE_OK) {
		ret = conn_fail(c, err, rc == SQLITE_NOMEM ? DC_ENOMEM : DC_EDB, NULL, 0, 0,
		                "tenant '%s' ('%s'): %s", t->id, t->target,
		                db ? sqlite3_errmsg(db) : "out of memory");
		goto out;
	}
	/* SQLite falls back to read-only when it may not write the file. */
	if (sqlite3_db_readonly(db, "main") == 1) {
		ret = readonly_fail(c, t, err);
		goto out;
	}
	sqlite3_busy_timeout(db, c->engine->busy_ms);
	sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_FKEY, 1, (int *)NULL);
	if (sqlite3_create_function_v2(db, "deployclaw_tenant", 0, SQLITE_UTF8, c, fn_tenant, NULL,
	                               NULL, NULL) != SQLITE_OK ||
	    sqlite3_set_authorizer(db, authorize, c) != SQLITE_OK) {
		ret = conn_fail(c, err, DC_EDB, NULL, 0, 0, "tenant '%s' ('%s'): %s", t->id,
		                t->target, sqlite3_errmsg(db));
		goto out;
	}
	/* sqlite3_open is lazy: a file that is not a database would fail only at
	 * its first read. The magic says so at once; the schema is loaded, and
	 * deployclaw_history looked for, by the first transaction that needs them
	 * (the run's, under the tenant lock; planning's history_read). */
	ret = check_magic(c, db, "main", t, err);
out:
	if (ret != 0) {
		sqlite3_close(db);
		db = NULL;
	}
	*out = db;
	return ret;
}

static int history_exists(sqlite3 *db, const char *schema);

/* The file's data version: SQLite changes it whenever a transaction finds the
 * file written since the last (by this or another connection). */
static int data_version(sqlite3 *db)
{
	int v = 0;

	if (sqlite3_file_control(db, "main", SQLITE_FCNTL_DATA_VERSION, &v) != SQLITE_OK)
		return -1;
	return v;
}

/*
 * On the prefetch thread, a handle just opened: in one read transaction,
 * loads its schema and reads the check graph (with its foreign keys when
 * `edges`), and sets `*version` to the data version they were read at.
 * NULL when any of it fails (a file busy: no wait). The authorizer is off
 * meanwhile: it is the worker's, and classifies the worker's statements.
 */
static check_graph *prefetch_graph(dc_conn *c, sqlite3 *db, bool edges, int *version)
{
	check_graph *g = calloc(1, sizeof(*g));
	const char *what = NULL;
	int rc = g ? SQLITE_OK : SQLITE_NOMEM, v = -1;

	sqlite3_set_authorizer(db, NULL, NULL);
	/* PRAGMA schema_version starts the read transaction without the schema:
	 * the listing's prepare then loads it in that transaction (else SQLite
	 * would load it in one of its own, a second shared lock and hot journal
	 * check), and its step checks the schema cookie: both are this
	 * snapshot's */
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, "BEGIN; PRAGMA schema_version", NULL, NULL, NULL);
	if (rc != SQLITE_OK && !sqlite3_get_autocommit(db))
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	if (rc == SQLITE_OK) {
		rc = graph_load(db, edges, g, &what);
		v = data_version(db);
		if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
			rc = SQLITE_ERROR;
		}
	}
	sqlite3_set_authorizer(db, authorize, c);
	if (rc != SQLITE_OK || v < 0) {
		graph_destroy(g);
		return NULL;
	}
	*version = v;
	return g;
}

/*
 * The prefetch thread: closes the handles the worker leaves behind and opens
 * the tenant it was told comes next (open_tenant with its own path cache and
 * no error: a tenant that does not open is left for enter to open, and to
 * report, as if no prefetch had run), and loads its schema -- SQLite parses
 * every CREATE statement of the file, a tenth of a migration's work -- in a
 * read transaction of its own, waiting for no lock (a file busy is left to
 * the worker). It takes no tenant lock and decides nothing: the run checks,
 * inside its transaction, that the file has not changed since, and SQLite
 * loads the schema again if it has (schema_current). When asked, it reads
 * the check graph in the same transaction (prefetch_graph): the checks then
 * use it, under the same condition, instead of reading it on the worker.
 */
static void *prefetch_main(void *arg)
{
	dc_conn *c = arg;
	prefetcher *pf = &c->pf;

	pthread_mutex_lock(&pf->mu);
	for (;;) {
		sqlite3 *db = NULL, *stale, *finished;
		check_graph *graph = NULL, *stale_graph = NULL;
		const dc_tenant *t;
		struct stat st, again;
		int version = 0;
		bool want_graph, edges;

		memset(&st, 0, sizeof(st));
		while (!pf->quit && !pf->job && !pf->to_close)
			pthread_cond_wait(&pf->cv, &pf->mu);
		if (pf->quit)
			break;
		/* one wake-up: the next tenant to open, the finished one to close */
		finished = pf->to_close;
		pf->to_close = NULL;
		t = pf->job;
		pf->job = NULL;
		pf->working = t;
		want_graph = pf->job_graph;
		edges = pf->job_edges;
		stale = t ? pf->done : NULL; /* a guess that did not come true */
		if (stale) {
			stale_graph = pf->done_graph;
			pf->done = NULL;
			pf->done_for = NULL;
			pf->done_graph = NULL;
		}
		pthread_mutex_unlock(&pf->mu);
		if (t) {
			(void)open_tenant(c, &pf->paths, t, &db, &st, NULL);
			/* the file opened must be the one checked: replaced in between,
			 * its identity would be the wrong file's */
			if (db && (stat(t->target, &again) != 0 || again.st_dev != st.st_dev ||
			           again.st_ino != st.st_ino)) {
				sqlite3_close(db);
				db = NULL;
			}
			if (db) {
				sqlite3_busy_timeout(db, 0);
				if (want_graph)
					graph = prefetch_graph(c, db, edges, &version);
				if (!graph) {
					(void)history_exists(db, "main"); /* loads the schema */
					version = data_version(db);
				}
				sqlite3_busy_timeout(db, c->engine->busy_ms);
				/* its read transaction would not end: not handed on */
				if (!sqlite3_get_autocommit(db)) {
					sqlite3_close(db);
					db = NULL;
					graph_destroy(graph);
					graph = NULL;
				}
			}
		}
		pthread_mutex_lock(&pf->mu);
		if (t) {
			pf->working = NULL;
			pf->done_version = version;
			pf->done_graph = graph;
			pf->done = db;
			pf->done_for = t;
			pf->done_dev = st.st_dev;
			pf->done_ino = st.st_ino;
			pthread_cond_broadcast(&pf->cv);
		}
		/* the closes after the result is out: a worker may be waiting for it */
		if (stale || finished) {
			pthread_mutex_unlock(&pf->mu);
			sqlite3_close(stale);
			sqlite3_close(finished);
			graph_destroy(stale_graph);
			pthread_mutex_lock(&pf->mu);
		}
	}
	pthread_mutex_unlock(&pf->mu);
	return NULL;
}

/*
 * A hint that the worker will probably enter `t` next: the prefetch thread
 * opens it while the current tenant runs (its commit waits on the disk), so
 * the open -- SQLite's setup of a handle, most of it registering the built-in
 * extensions, and the file checks -- is off the worker's path. enter takes
 * the handle when it is for the tenant entered, and ignores it otherwise.
 */
static void sq_prefetch(dc_conn *c, const dc_tenant *t)
{
	prefetcher *pf = &c->pf;

	if (!t)
		return;
	if (!pf->running) {
		pf->quit = false;
		if (pthread_create(&pf->thread, NULL, prefetch_main, c) != 0)
			return; /* no prefetch: enter opens every tenant itself */
		pf->running = true;
	}
	pthread_mutex_lock(&pf->mu);
	pf->job = t;
	pf->job_graph = c->engine->graph_wanted && !c->graph_unwanted;
	pf->job_edges = c->engine->edges_wanted;
	pthread_mutex_unlock(&pf->mu);
	/* after the unlock: the thread wakes to a free mutex */
	pthread_cond_broadcast(&pf->cv);
}

/* The handle the prefetch thread opened for `t`, or NULL: not asked for, not
 * started yet (then it is cancelled: opening it here is as quick), or failed.
 * `*graph`: the check graph it read with it, or NULL. */
static sqlite3 *prefetch_take(dc_conn *c, const dc_tenant *t, int *version, check_graph **graph)
{
	prefetcher *pf = &c->pf;
	sqlite3 *db = NULL, *other = NULL;
	check_graph *g = NULL, *other_graph = NULL;
	struct stat sb;
	dev_t dev = 0;
	ino_t ino = 0;

	if (!pf->running)
		return NULL;
	/* Whatever the thread holds is given up here, so a hint's tenant is
	 * borrowed only until this enter: a job not started is cancelled (opening
	 * it here is as quick), one under way is waited for, and a handle for
	 * another tenant is closed. */
	pthread_mutex_lock(&pf->mu);
	pf->job = NULL;
	while (pf->working)
		pthread_cond_wait(&pf->cv, &pf->mu);
	db = pf->done;
	g = pf->done_graph;
	if (pf->done_for != t) {
		other = db;
		other_graph = g;
		db = NULL;
		g = NULL;
	}
	dev = pf->done_dev;
	ino = pf->done_ino;
	*version = pf->done_version;
	pf->done = NULL;
	pf->done_for = NULL;
	pf->done_graph = NULL;
	pthread_mutex_unlock(&pf->mu);
	sqlite3_close(other);
	graph_destroy(other_graph);
	/* the name must still be that file, writable: one removed, replaced or
	 * made read-only since is opened afresh, and fails as without a prefetch */
	if (db && (stat(t->target, &sb) != 0 || sb.st_dev != dev || sb.st_ino != ino ||
	           !(sb.st_mode & (S_IWUSR | S_IWGRP | S_IWOTH)))) {
		close_later(c, db);
		db = NULL;
	}
	if (!db) {
		graph_destroy(g);
		g = NULL;
	}
	*graph = g;
	return db;
}

static int sq_enter(dc_conn *c, const dc_tenant *t, dc_error *err)
{
	check_graph *g = NULL;

	leave(c);
	c->tenant = t;
	c->history = HISTORY_UNKNOWN;
	c->db = prefetch_take(c, t, &c->preload_version, &g);
	if (c->db) {
		c->preloaded = true;
		if (g) {
			/* used once the run's transaction finds the file as it
			 * was read (sq_begin) */
			c->graph = *g;
			free(g);
			c->graph_sticky = true;
			c->graph_pending = true;
			c->graph_version = c->preload_version;
			c->graph_taken = true;
		}
		return 0;
	}
	return open_tenant(c, &c->paths, t, &c->db, NULL, err);
}

/* ------------------------------------------------------------------------ */
/* Locks                                                                    */

static uint64_t fnv1a(uint64_t h, const char *s)
{
	while (*s) {
		h ^= (unsigned char)*s++;
		h *= 0x100000001b3ULL;
	}
	return h;
}

/* The lock file of `folder`, opened on first use and kept open (see the
 * comment at the top). `*real` receives the folder's realpath (stable until
 * close). Called with e->mu held. */
static int folder_lock_fd(dc_engine *e,
                          const char *folder,
                          int *fd,
                          const char **real,
                          dc_error *err)
{
	lock_folder *f;
	char *spelling = NULL, *rp = NULL, *path = NULL;
	size_t i;
	int ret = 0, lfd = -1;
	bool owner = true;

	for (i = 0; i < e->nfolders; i++) {
		if (strcmp(e->folders[i].spelling, folder) == 0) {
			*fd = e->folders[i].fd;
			*real = e->folders[i].real;
			return 0;
		}
	}
	rp = realpath(folder, NULL);
	if (!rp) {
		ret = dc_error_set(err, DC_EIO, "folder '%s': %s", folder, strerror(errno));
		goto out;
	}
	for (i = 0; i < e->nfolders; i++) {
		if (strcmp(e->folders[i].real, rp) == 0) {
			lfd = e->folders[i].fd;
			owner = false;
			break;
		}
	}
	if (owner) {
		path = dc_path_join(rp, LOCK_FILE_NAME);
		if (!path)
			goto oom;
		lfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
		if (lfd < 0) {
			ret = dc_error_set(err, DC_EIO, "cannot open the lock file '%s': %s", path,
			                   strerror(errno));
			goto out;
		}
	}
	spelling = dc_strdup(folder);
	if (!spelling)
		goto oom;
	if (e->nfolders == e->afolders) {
		size_t na = e->afolders ? e->afolders * 2 : 4;
		lock_folder *nf = dc_realloc_array(e->folders, na, sizeof(*nf));

		if (!nf)
			goto oom;
		e->folders = nf;
		e->afolders = na;
	}
	f = &e->folders[e->nfolders++];
	f->spelling = spelling;
	f->real = rp;
	f->fd = lfd;
	f->owner = owner;
	*fd = lfd;
	*real = rp;
	spelling = NULL;
	rp = NULL;
	lfd = -1;
	goto out;
oom:
	ret = dc_error_set(err, DC_ENOMEM, "out of memory");
out:
	if (owner && lfd >= 0)
		close(lfd);
	free(spelling);
	free(rp);
	free(path);
	return ret;
}

static int sq_lock_tenant(dc_conn *c, int64_t timeout_ms, dc_error *err)
{
	const dc_tenant *t = c->tenant;
	char *dir = NULL;
	const char *folder, *real = NULL, *base;
	struct flock fl;
	int64_t deadline;
	uint64_t h;
	char waited[32];
	int ret = 0, fd = -1;

	if ((ret = need_db(c, err)) != 0)
		return ret;
	if (c->locked)
		return 0;
	folder = t->shard;
	if (!folder || !folder[0]) {
		dir = dc_path_dirname(t->target);
		if (!dir)
			return conn_fail(c, err, DC_ENOMEM, NULL, 0, 0, "out of memory");
		folder = dir;
	}
	pthread_mutex_lock(&c->engine->mu);
	ret = folder_lock_fd(c->engine, folder, &fd, &real, err);
	pthread_mutex_unlock(&c->engine->mu);
	if (ret != 0) {
		if (err && err->code == ret)
			snprintf(err->tenant, sizeof(err->tenant), "%s", t->id);
		goto out;
	}
	/* The offset hashes the canonical path, so every process (whatever its
	 * working folder or spelling of the path) locks the same byte. */
	base = strrchr(t->target, '/');
	base = base ? base + 1 : t->target;
	h = fnv1a(fnv1a(fnv1a(0xcbf29ce484222325ULL, real), "/"), base);
	h ^= h >> 33; /* fold the high bits in: the offset keeps only the low ones */
	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	fl.l_start = (off_t)(h & (sizeof(off_t) >= 8 ? 0x3fffffffffffffffULL : 0x3fffffffULL));
	fl.l_len = 1;
	deadline = dc_time_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	for (;;) {
		if (fcntl(fd, F_SETLK, &fl) == 0)
			break;
		if (errno != EACCES && errno != EAGAIN && errno != EINTR) {
			ret = conn_fail(c, err, DC_EIO, NULL, 0, 0, "tenant '%s': cannot lock: %s",
			                t->id, strerror(errno));
			goto out;
		}
		if (dc_time_mono_ms() >= deadline) {
			struct flock probe = fl;

			dc_duration_format(waited, sizeof(waited), timeout_ms > 0 ? timeout_ms : 0);
			if (fcntl(fd, F_GETLK, &probe) == 0 && probe.l_type == F_UNLCK &&
			    fcntl(fd, F_SETLK, &fl) == 0)
				break; /* released between the last try and the probe */
			ret = conn_fail(
			        c, err, DC_ELOCKED, NULL, 0, 0,
			        "tenant '%s' is locked by another deployclaw process (pid %ld); waited %s",
			        t->id, (long)probe.l_pid, waited);
			goto out;
		} else {
			int64_t left = deadline - dc_time_mono_ms();
			struct timespec ts = { 0, 0 };

			ts.tv_nsec = (long)((left < LOCK_POLL_MS ? (left > 0 ? left : 1)
			                                         : LOCK_POLL_MS) *
			                    1000000);
			nanosleep(&ts, NULL);
		}
	}
	c->locked = true;
	c->lock_fd = fd;
	c->lock_off = fl.l_start;
out:
	free(dir);
	return ret;
}

static int sq_unlock_tenant(dc_conn *c, dc_error *err)
{
	if (release_lock(c) != 0)
		return conn_fail(c, err, DC_EIO, NULL, 0, 0, "tenant '%s': cannot unlock: %s",
		                 tenant_id(c), strerror(errno));
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Transactions                                                             */

/* Records whether a transaction is open. When one ended by itself (SQLite
 * rolls back on some errors, e.g. a failed COMMIT or SQLITE_FULL), the
 * history table may have vanished with it: ask the file next time. */
static void sync_tx(dc_conn *c)
{
	bool in = !sqlite3_get_autocommit(c->db);

	/* a statement ran: the schema may have changed -- unless the graph is
	 * the prefetched one, which the authorizer keeps watch over inside the
	 * transaction; outside one, another connection may change the file */
	if (!c->graph_sticky || !in) {
		c->graph_valid = false;
		c->graph_pending = false;
	}
	if (c->in_tx && !in)
		c->history = HISTORY_UNKNOWN;
	c->in_tx = in;
}

static int run_internal(dc_conn *c, const char *sql, dc_error *err)
{
	int rc = sqlite3_exec(c->db, sql, NULL, NULL, NULL);

	sync_tx(c);
	if (rc == SQLITE_OK)
		return 0;
	if (rc == SQLITE_BUSY) {
		char waited[32];

		dc_duration_format(waited, sizeof(waited), c->engine->busy_ms);
		return conn_fail(
		        c, err, DC_ELOCKED, NULL, 0, 0,
		        "tenant '%s': the database is locked by another connection; waited %s",
		        tenant_id(c), waited);
	}
	return db_fail(c, err, NULL);
}

/*
 * In a transaction just begun on a handle whose schema was loaded outside it
 * (by the prefetch thread, or a read transaction since ended): if the file
 * was written since (another connection: its data version moved), SQLite's
 * copy of the schema may be stale, and the history probe reads that copy --
 * a table created since would be missed. A statement on sqlite_schema makes
 * SQLite compare the file's schema cookie with its copy's, and reload it when
 * they differ.
 */
static int schema_current(dc_conn *c, dc_error *err)
{
	int ret;

	if (!c->preloaded)
		return 0;
	if (c->preload_version >= 0 && data_version(c->db) == c->preload_version) {
		c->preloaded = false;
		return 0;
	}
	/* kept on failure: the next transaction checks again */
	if ((ret = run_internal(c, "SELECT 1 FROM main.sqlite_schema WHERE 0", err)) == 0)
		c->preloaded = false;
	return ret;
}

static int sq_begin(dc_conn *c, dc_error *err)
{
	int ret;

	if ((ret = need_db(c, err)) != 0)
		return ret;
	if (!sqlite3_get_autocommit(c->db))
		return conn_fail(c, err, DC_EINVAL, NULL, 0, 0,
		                 "tenant '%s': a transaction is already open", tenant_id(c));
	/* What enter saw of the history table predates the tenant lock: another
	 * process may have migrated the tenant since. Ask the file again inside
	 * the transaction, where nobody else can change it (else a stale
	 * "missing" becomes "empty" and the tenant is applied a second time). */
	c->history = HISTORY_UNKNOWN;
	if ((ret = run_internal(c, "BEGIN IMMEDIATE", err)) != 0)
		return ret;
	if ((ret = schema_current(c, err)) != 0) {
		sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
		sync_tx(c);
		return ret;
	}
	c->txs++;
	/* the prefetched graph serves this transaction if the file is still
	 * as it was read (whatever read transactions ran in between) */
	if (c->graph_pending) {
		c->graph_valid = c->graph_version >= 0 && data_version(c->db) == c->graph_version;
		c->graph_pending = false;
	}
	return 0;
}

static int sq_commit(dc_conn *c, dc_error *err)
{
	history_state state;
	int ret;

	if ((ret = need_db(c, err)) != 0)
		return ret;
	if (sqlite3_get_autocommit(c->db)) {
		sync_tx(c);
		return conn_fail(c, err, DC_EDB, NULL, 0, 0,
		                 "tenant '%s': no transaction to commit (it was rolled back)",
		                 tenant_id(c));
	}
	state = c->history;
	ret = run_internal(c, "COMMIT", err);
	if (ret == 0)
		c->history = state; /* committed: what the transaction made is there */
	return ret;
}

static int sq_rollback(dc_conn *c, dc_error *err)
{
	int ret;

	if ((ret = need_db(c, err)) != 0)
		return ret;
	/* The transaction may have created the history table. */
	c->history = HISTORY_UNKNOWN;
	c->graph_valid = false;
	c->graph_pending = false;
	if (sqlite3_get_autocommit(c->db)) {
		c->in_tx = false; /* SQLite already rolled it back (or none was open) */
		return 0;
	}
	return run_internal(c, "ROLLBACK", err);
}

/* ------------------------------------------------------------------------ */
/* User statements                                                          */

static void classify_reset(dc_conn *c)
{
	if (!c->graph_sticky)
		c->graph_valid = false;
	c->actions = 0;
	c->altering = false;
	c->ddl = false;
	c->dml = false;
	c->ntables = 0;
	c->refusal[0] = '\0';
}

static int stmt_fail(dc_conn *c, const dc_statement *stmt, dc_error *err)
{
	if (c->refusal[0])
		return conn_fail(c, err, DC_EINVAL, stmt->file, stmt->line, stmt->col, "%s",
		                 c->refusal);
	return conn_fail(c, err, sqlite3_errcode(c->db) == SQLITE_BUSY ? DC_ELOCKED : DC_EDB,
	                 stmt->file, stmt->line, stmt->col, "tenant '%s': %s", tenant_id(c),
	                 sqlite3_errmsg(c->db));
}

/* Prepares the first user statement of `sql` with the authorizer on. `*st`
 * is NULL when `sql` holds only blanks and comments. */
static int prepare_user(dc_conn *c,
                        const dc_statement *stmt,
                        const char *sql,
                        sqlite3_stmt **st,
                        const char **tail,
                        dc_error *err)
{
	int rc;

	classify_reset(c);
	c->user = true;
	c->stmt_sql = sql;
	rc = sqlite3_prepare_v2(c->db, sql, -1, st, tail);
	c->user = false;
	c->stmt_sql = NULL;
	if (rc != SQLITE_OK)
		return stmt_fail(c, stmt, err);
	return 0;
}

/* True when `st` compiles to the Vacuum opcode; `*into` when it writes its
 * copy to a file (VACUUM INTO: the opcode's P2 names the register holding the
 * file name). SQLite's authorizer does not report VACUUM, so the program
 * itself is inspected (never the SQL text). */
static int is_vacuum(dc_conn *c, sqlite3_stmt *st, bool *out, bool *into)
{
	sqlite3_stmt *ex = NULL;
	int rc;

	*out = false;
	*into = false;
	dc_strbuf_reset(&c->scratch);
	dc_strbuf_adds(&c->scratch, "EXPLAIN ");
	dc_strbuf_adds(&c->scratch, sqlite3_sql(st));
	if (dc_strbuf_error(&c->scratch))
		return DC_ENOMEM;
	rc = sqlite3_prepare_v2(c->db, c->scratch.buf, (int)c->scratch.len, &ex, NULL);
	while (rc == SQLITE_OK && (rc = sqlite3_step(ex)) == SQLITE_ROW) {
		const unsigned char *op = sqlite3_column_text(ex, 1);

		if (op && strcmp((const char *)op, "Vacuum") == 0) {
			*out = true;
			*into = sqlite3_column_int(ex, 3) != 0;
			break;
		}
		rc = SQLITE_OK;
	}
	sqlite3_finalize(ex);
	return 0;
}

static int sq_exec(dc_conn *c, const dc_statement *stmt, int64_t *rows, dc_error *err)
{
	sqlite3_stmt *st = NULL;
	const char *sql = stmt->sql, *tail = NULL;
	int64_t total = 0;
	bool vacuum, into;
	int ret, rc;

	if ((ret = need_db(c, err)) != 0)
		return ret;
	/* A dc_statement is one statement, but a trailing comment or a second
	 * statement in its text must not be silently dropped. */
	while (sql && *sql) {
		if ((ret = prepare_user(c, stmt, sql, &st, &tail, err)) != 0)
			goto out;
		if (!st)
			break;
		/* A statement the authorizer never saw may be VACUUM: only those pay
		 * for the EXPLAIN. VACUUM INTO writes a copy of the tenant to a file
		 * of its own, outside the tenant (and SQLite's ATTACH for it runs
		 * while stepping, unseen): never. */
		if (c->actions == 0) {
			if (is_vacuum(c, st, &vacuum, &into) != 0) {
				ret = conn_fail(c, err, DC_ENOMEM, NULL, 0, 0, "out of memory");
				goto out;
			}
			if (into) {
				ret = conn_fail(
				        c, err, DC_EINVAL, stmt->file, stmt->line, stmt->col,
				        "statement refused: VACUUM INTO would write tenant '%s' to a file outside it (tenant isolation)",
				        tenant_id(c));
				goto out;
			}
			/* unseen, it may still write: REINDEX without a name, VACUUM */
			if (!sqlite3_stmt_readonly(st))
				c->written_all = true;
			if (vacuum && !sqlite3_get_autocommit(c->db)) {
				ret = conn_fail(
				        c, err, DC_EINVAL, stmt->file, stmt->line, stmt->col,
				        "tenant '%s': VACUUM cannot run inside a transaction: put it in a phase with `transaction: false`",
				        tenant_id(c));
				goto out;
			}
		}
		/* Checks are off while stepping: SQLite's own nested statements
		 * (VACUUM attaches a scratch database) are not the user's, and a
		 * re-prepare cannot reach a database the accepted text could not. */
		while ((rc = sqlite3_step(st)) == SQLITE_ROW)
			;
		if (rc != SQLITE_DONE) {
			ret = stmt_fail(c, stmt, err);
			goto out;
		}
		/* sqlite3_changes64 keeps the count of the last INSERT/UPDATE/DELETE:
		 * a DDL statement changed no row. */
		if (c->dml)
			total += sqlite3_changes64(c->db);
		sqlite3_finalize(st);
		st = NULL;
		sql = tail;
	}
	if (rows)
		*rows = total;
out:
	if (c->history == HISTORY_EMPTY)
		c->history = HISTORY_PRESENT; /* the user's SQL may have written it: read it */
	c->user = false;
	sqlite3_finalize(st);
	sync_tx(c);
	return ret;
}

static bool truthy(sqlite3_stmt *st)
{
	const char *s;

	switch (sqlite3_column_type(st, 0)) {
	case SQLITE_INTEGER:
		return sqlite3_column_int64(st, 0) != 0;
	case SQLITE_FLOAT:
		return sqlite3_column_double(st, 0) != 0.0;
	case SQLITE_TEXT:
		s = (const char *)sqlite3_column_text(st, 0);
		return s && (strcmp(s, "1") == 0 || strcasecmp(s, "true") == 0 ||
		             strcasecmp(s, "t") == 0);
	default:
		return false; /* NULL (unknown is not true) and blobs */
	}
}

static int sq_query_bool(dc_conn *c, const dc_statement *stmt, bool *out, dc_error *err)
{
	sqlite3_stmt *st = NULL, *extra = NULL;
	const char *tail = NULL;
	int ret, rc;

	*out = false;
	if ((ret = need_db(c, err)) != 0)
		return ret;
	if ((ret = prepare_user(c, stmt, stmt->sql, &st, &tail, err)) != 0)
		goto out;
	if (st && tail && *tail) {
		if ((ret = prepare_user(c, stmt, tail, &extra, NULL, err)) != 0)
			goto out;
	}
	if (!st || extra) {
		ret = conn_fail(c, err, DC_EINVAL, stmt->file, stmt->line, stmt->col,
		                "tenant '%s': a verify assertion must be exactly one statement",
		                tenant_id(c));
		goto out;
	}
	if (!sqlite3_stmt_readonly(st)) {
		ret = conn_fail(c, err, DC_EINVAL, stmt->file, stmt->line, stmt->col,
		                "tenant '%s': a verify assertion must not change the database",
		                tenant_id(c));
		goto out;
	}
	if (sqlite3_column_count(st) != 1) {
		ret = conn_fail(c, err, DC_EINVAL, stmt->file, stmt->line, stmt->col,
		                "tenant '%s': verify assertion returned %d columns (expected one)",
		                tenant_id(c), sqlite3_column_count(st));
		goto out;
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*out = truthy(st);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			*out = false;
			ret = conn_fail(c, err, DC_EINVAL, stmt->file, stmt->line, stmt->col,
			                "tenant '%s': verify assertion returned more than one row",
			                tenant_id(c));
			goto out;
		}
	} else if (rc == SQLITE_DONE) {
		ret = conn_fail(c, err, DC_EINVAL, stmt->file, stmt->line, stmt->col,
		                "tenant '%s': verify assertion returned no row", tenant_id(c));
		goto out;
	}
	if (rc != SQLITE_DONE) {
		*out = false;
		ret = stmt_fail(c, stmt, err);
	}
out:
	c->user = false;
	sqlite3_finalize(extra);
	sqlite3_finalize(st);
	return ret;
}

/* ------------------------------------------------------------------------ */
/* History                                                                  */

/*
 * Whether `schema` of `db` has deployclaw_history: 1, 0, or -1 with the
 * error in `db`. sqlite3_table_column_metadata loads the schema and looks
 * the name up in it: no statement to parse and plan, as a query of
 * sqlite_schema would be (the schema load is paid either way). It says
 * SQLITE_ERROR for a name it does not find; a schema that does not load
 * fails with that error's own code (NOTADB, CORRUPT, BUSY, ...).
 */
static int history_exists(sqlite3 *db, const char *schema)
{
	int rc = sqlite3_table_column_metadata(db, schema, "deployclaw_history", NULL, NULL, NULL,
	                                       NULL, NULL, NULL);

	return rc == SQLITE_OK ? 1 : rc == SQLITE_ERROR ? 0 : -1;
}

static int history_probe(dc_conn *c, dc_error *err)
{
	int found = history_exists(c->db, "main");

	if (found < 0)
		return db_fail(c, err, "deployclaw_history");
	c->history = found ? HISTORY_PRESENT : HISTORY_MISSING;
	return 0;
}

static int history_create(dc_conn *c, dc_error *err)
{
	int ret = run_internal(c, HISTORY_CREATE, err);

	if (ret == 0)
		c->history = HISTORY_EMPTY;
	return ret;
}

/*
 * A missing table is left to the first history_write, which creates it in
 * the transaction that writes the row: history_read meanwhile has no rows,
 * exactly as with an empty table. Outside a transaction, creating it here
 * would cost a durable commit of its own on every new tenant; inside one,
 * it would sit in the schema while the migration runs, and every ALTER
 * TABLE of the migration (which re-parses the whole schema) would parse it
 * again.
 */
static int sq_history_ensure(dc_conn *c, dc_error *err)
{
	int ret;

	if ((ret = need_db(c, err)) != 0)
		return ret;
	if (c->history == HISTORY_UNKNOWN && (ret = history_probe(c, err)) != 0)
		return ret;
	return 0;
}

static int dup_column(char **out, sqlite3_stmt *st, int col)
{
	const unsigned char *s = sqlite3_column_text(st, col);

	*out = NULL;
	if (!s)
		return sqlite3_errcode(sqlite3_db_handle(st)) == SQLITE_NOMEM ? DC_ENOMEM : 0;
	*out = dc_strndup((const char *)s, (size_t)sqlite3_column_bytes(st, col));
	return *out ? 0 : DC_ENOMEM;
}

/* RFC 3339 UTC ("2026-11-24T03:07:04.123Z", as dc_time_rfc3339 writes) or an
 * integer of milliseconds; 0 for NULL. */
static int time_column(int64_t *out, sqlite3_stmt *st, int col)
{
	const char *s;
	struct tm tm;
	int y, mo, d, h, mi, sec, ms = 0, n = 0;
	time_t t;

	*out = 0;
	switch (sqlite3_column_type(st, col)) {
	case SQLITE_NULL:
		return 0;
	case SQLITE_INTEGER:
		*out = sqlite3_column_int64(st, col);
		return 0;
	default:
		break;
	}
	s = (const char *)sqlite3_column_text(st, col);
	if (!s)
		return DC_EINVAL;
	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6)
		return DC_EINVAL;
	s += n;
	if (*s == '.') {
		int digits = 0;

		for (s++; *s >= '0' && *s <= '9'; s++, digits++)
			if (digits < 3)
				ms = ms * 10 + (*s - '0');
		for (; digits > 0 && digits < 3; digits++)
			ms *= 10;
	}
	if (strcmp(s, "Z") != 0)
		return DC_EINVAL;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	t = timegm(&tm);
	*out = (int64_t)t * 1000 + ms;
	return 0;
}

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

static int history_read_in_tx(dc_conn *c, dc_history_row **rows, size_t *n, dc_error *err);

static int sq_history_read(dc_conn *c, dc_history_row **rows, size_t *n, dc_error *err)
{
	int ret;

	*rows = NULL;
	*n = 0;
	if ((ret = need_db(c, err)) != 0)
		return ret;
	/* Outside a transaction (planning), the schema load, the probe and the
	 * read share one read transaction: one shared lock, not three. A bare
	 * BEGIN takes no lock, and preparing the probe would load the schema under
	 * a shared lock of its own; reading the header first opens the read
	 * transaction that all of them share. */
	if (sqlite3_get_autocommit(c->db)) {
		if (sqlite3_exec(c->db, "BEGIN; PRAGMA schema_version", NULL, NULL, NULL) !=
		    SQLITE_OK) {
			ret = db_fail(c, err, NULL);
			if (!sqlite3_get_autocommit(c->db))
				sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
			return ret;
		}
		c->history = HISTORY_UNKNOWN;
		ret = schema_current(c, err);
		if (ret == 0)
			ret = history_read_in_tx(c, rows, n, err);
		sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL);
		if (!sqlite3_get_autocommit(c->db))
			sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
		c->history = HISTORY_UNKNOWN;
		/* the schema stays loaded, as of this version */
		c->preloaded = true;
		c->preload_version = data_version(c->db);
		return ret;
	}
	return history_read_in_tx(c, rows, n, err);
}

/* The rows `sql` (one of the HISTORY_SELECTs) reads from `db`. */
static int read_rows(dc_conn *c,
                     sqlite3 *db,
                     const char *sql,
                     dc_history_row **rows,
                     size_t *n,
                     dc_error *err)
{
	sqlite3_stmt *st = NULL;
	dc_history_row *v = NULL, *r;
	size_t len = 0, alloc = 0;
	int ret = 0, rc;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		ret = db_fail_on(c, db, err, "deployclaw_history");
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *status = (const char *)sqlite3_column_text(st, 4);

		if (len == MAX_HISTORY_ROWS) {
			ret = conn_fail(c, err, DC_ELIMIT, NULL, 0, 0,
			                "tenant '%s': deployclaw_history has more than %zu rows",
			                tenant_id(c), MAX_HISTORY_ROWS);
			goto out;
		}
		if (len == alloc) {
			size_t na = alloc ? alloc * 2 : 8;
			dc_history_row *nv = dc_realloc_array(v, na, sizeof(*nv));

			if (!nv)
				goto oom;
			v = nv;
			alloc = na;
		}
		r = &v[len++];
		memset(r, 0, sizeof(*r));
		if (dup_column(&r->version, st, 0) || dup_column(&r->name, st, 1) ||
		    dup_column(&r->checksum, st, 2) || dup_column(&r->phase, st, 3) ||
		    dup_column(&r->run_id, st, 8) || dup_column(&r->actor, st, 9))
			goto oom;
		if (!r->version || parse_status(&r->status, status) != 0 ||
		    time_column(&r->started_at_ms, st, 5) != 0 ||
		    time_column(&r->finished_at_ms, st, 6) != 0) {
			ret = conn_fail(
			        c, err, DC_EINTEGRITY, NULL, 0, 0,
			        "tenant '%s': deployclaw_history: invalid row for version '%s'",
			        tenant_id(c), r->version ? r->version : "(null)");
			goto out;
		}
		r->duration_ms = sqlite3_column_int64(st, 7);
	}
	if (rc != SQLITE_DONE) {
		ret = db_fail_on(c, db, err, "deployclaw_history");
		goto out;
	}
	*rows = v;
	*n = len;
	v = NULL;
	len = 0;
	goto out;
oom:
	ret = conn_fail(c, err, DC_ENOMEM, NULL, 0, 0, "out of memory");
out:
	sqlite3_finalize(st);
	dc_history_rows_free(v, len);
	return ret;
}

static int history_read_in_tx(dc_conn *c, dc_history_row **rows, size_t *n, dc_error *err)
{
	int ret;

	if (c->history == HISTORY_UNKNOWN && (ret = history_probe(c, err)) != 0)
		return ret;
	if (c->history == HISTORY_MISSING || c->history == HISTORY_EMPTY)
		return 0; /* a tenant nothing was ever applied to */
	return read_rows(c, c->db, HISTORY_SELECT, rows, n, err);
}

/*
 * Planning reads every tenant's history once, before anything changes. A
 * connection of its own per tenant pays SQLite's connection setup and
 * teardown each time, most of it registering every built-in extension
 * (FTS3, FTS5, R*Tree, ...) on the new handle; instead each tenant is
 * attached in turn to this connection's in-memory host database (no
 * authorizer there: only deployclaw's own statements run on it), read and
 * detached. The file checks, the errors and the rows are enter's and
 * history_read's. The host has no CREATE flag, which ATTACH inherits: a
 * file that vanished is an error, never created.
 */
static int host_open(dc_conn *c, dc_error *err)
{
	int rc;

	if (c->host)
		return 0;
	rc = sqlite3_open_v2(":memory:", &c->host, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
	                     canonical_ok ? CANONICAL_VFS : NULL);
	if (rc == SQLITE_OK) {
		sqlite3_busy_timeout(c->host, c->engine->busy_ms);
		rc = sqlite3_prepare_v2(c->host, "ATTACH ?1 AS " PEEK_SCHEMA, -1, &c->attach, NULL);
	}
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(c->host, "DETACH " PEEK_SCHEMA, -1, &c->detach, NULL);
	if (rc == SQLITE_OK)
		return 0;
	rc = conn_fail(c, err, rc == SQLITE_NOMEM ? DC_ENOMEM : DC_EDB, NULL, 0, 0,
	               "cannot open SQLite's in-memory database: %s",
	               c->host ? sqlite3_errmsg(c->host) : "out of memory");
	sqlite3_finalize(c->attach);
	sqlite3_finalize(c->detach);
	sqlite3_close(c->host);
	c->attach = c->detach = NULL;
	c->host = NULL;
	return rc;
}

static int sq_history_peek(dc_conn *c,
                           const dc_tenant *t,
                           dc_history_row **rows,
                           size_t *n,
                           dc_error *err)
{
	const char *path = t->target;
	char *real = NULL;
	bool canonical = false, attached = false;
	int ret, rc, found;

	*rows = NULL;
	*n = 0;
	leave(c);
	c->tenant = t;
	if ((ret = tenant_file(c, &c->paths, t, &canonical, NULL, err)) != 0 ||
	    (ret = host_open(c, err)) != 0)
		goto out;
	if (canonical) {
		path = c->paths.canon.buf;
	} else if (canonical_ok) {
		/* The host's VFS takes an absolute name as it is: give it the real
		 * one, or a symlinked tenant's journal would be looked for next to
		 * the link. */
		real = realpath(t->target, NULL);
		if (!real) {
			ret = conn_fail(c, err, DC_EIO, NULL, 0, 0, "tenant '%s' ('%s'): %s", t->id,
			                t->target, strerror(errno));
			goto out;
		}
		path = real;
	}
	/* ATTACH opens the file and loads its schema: a file that is not a
	 * database fails here, with SQLite's own message */
	rc = sqlite3_bind_text(c->attach, 1, path, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(c->attach);
	sqlite3_reset(c->attach);
	sqlite3_clear_bindings(c->attach);
	if (rc != SQLITE_DONE) {
		ret = conn_fail(c, err, rc == SQLITE_NOMEM ? DC_ENOMEM : DC_EDB, NULL, 0, 0,
		                "tenant '%s' ('%s'): %s", t->id, t->target,
		                sqlite3_errmsg(c->host));
		goto out;
	}
	attached = true;
	/* SQLite falls back to read-only when it may not write the file. */
	if (sqlite3_db_readonly(c->host, PEEK_SCHEMA) == 1) {
		ret = readonly_fail(c, t, err);
		goto out;
	}
	/* ATTACH loaded the schema: the existence check reads nothing, and the
	 * read runs in a read transaction of its own (a schema changed since
	 * makes SQLite prepare it again). What planning reads is confirmed by the
	 * run, under the tenant lock, before anything changes. */
	found = history_exists(c->host, PEEK_SCHEMA);
	if (found < 0)
		ret = db_fail_on(c, c->host, err, "deployclaw_history");
	else if (found)
		ret = read_rows(c, c->host, HISTORY_SELECT_PEEK, rows, n, err);
out:
	if (c->host && !sqlite3_get_autocommit(c->host)) {
		sqlite3_exec(c->host, "COMMIT", NULL, NULL, NULL);
		if (!sqlite3_get_autocommit(c->host))
			sqlite3_exec(c->host, "ROLLBACK", NULL, NULL, NULL);
	}
	if (attached && sqlite3_step(c->detach) != SQLITE_DONE) {
		if (ret == 0) {
			ret = db_fail_on(c, c->host, err, NULL);
			dc_history_rows_free(*rows, *n);
			*rows = NULL;
			*n = 0;
		}
		/* still attached: start over with a new host next time */
		sqlite3_finalize(c->attach);
		sqlite3_finalize(c->detach);
		sqlite3_close(c->host);
		c->attach = c->detach = NULL;
		c->host = NULL;
		attached = false;
	}
	if (attached)
		sqlite3_reset(c->detach);
	free(real);
	c->tenant = NULL;
	return ret;
}

static int bind_text(sqlite3_stmt *st, int i, const char *s)
{
	return s ? sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC) : sqlite3_bind_null(st, i);
}

static int sq_history_write(dc_conn *c, const dc_history_row *row, dc_error *err)
{
	sqlite3_stmt *st = NULL;
	char started[32], finished[32];
	int ret, rc;

	if ((ret = need_db(c, err)) != 0)
		return ret;
	if (!row->version)
		return conn_fail(c, err, DC_EINVAL, NULL, 0, 0,
		                 "tenant '%s': a history row needs a version", tenant_id(c));
	if (c->history == HISTORY_UNKNOWN && (ret = history_probe(c, err)) != 0)
		return ret;
	if (c->history == HISTORY_MISSING && (ret = history_create(c, err)) != 0)
		return ret;
	dc_time_rfc3339(started, row->started_at_ms);
	dc_time_rfc3339(finished, row->finished_at_ms);
	rc = sqlite3_prepare_v2(c->db, HISTORY_UPSERT, -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = bind_text(st, 1, row->version);
	if (rc == SQLITE_OK)
		rc = bind_text(st, 2, row->name);
	if (rc == SQLITE_OK)
		rc = bind_text(st, 3, row->checksum);
	if (rc == SQLITE_OK)
		rc = bind_text(st, 4, row->phase);
	if (rc == SQLITE_OK)
		rc = bind_text(st, 5, dc_history_status_name(row->status));
	if (rc == SQLITE_OK)
		rc = bind_text(st, 6, row->started_at_ms > 0 ? started : NULL);
	if (rc == SQLITE_OK)
		rc = bind_text(st, 7, row->finished_at_ms > 0 ? finished : NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 8, row->duration_ms);
	if (rc == SQLITE_OK)
		rc = bind_text(st, 9, row->run_id);
	if (rc == SQLITE_OK)
		rc = bind_text(st, 10, row->actor);
	if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_DONE) {
		c->history = HISTORY_PRESENT;
		goto out;
	}
	ret = db_fail(c, err, "deployclaw_history");
out:
	sqlite3_finalize(st);
	sync_tx(c);
	return ret;
}

/* ------------------------------------------------------------------------ */
/* Checks, backup, fingerprint                                              */

static int sq_query_text(dc_conn *c,
                         const char *sql,
                         dc_strbuf *out,
                         size_t max_rows,
                         dc_error *err)
{
	sqlite3_stmt *st = NULL;
	size_t nrows = 0;
	int ret, rc = SQLITE_DONE;

	if ((ret = need_db(c, err)) != 0)
		return ret;
	/* SQL of any kind, unwatched by the authorizer */
	c->graph_valid = false;
	c->graph_pending = false;
	if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK) {
		ret = db_fail(c, err, NULL);
		goto out;
	}
	while (nrows < max_rows && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const unsigned char *s = sqlite3_column_text(st, 0);

		if (s)
			dc_strbuf_add(out, s, (size_t)sqlite3_column_bytes(st, 0));
		dc_strbuf_addch(out, '\n');
		nrows++;
	}
	if (nrows < max_rows && rc != SQLITE_DONE) {
		ret = db_fail(c, err, NULL);
		goto out;
	}
	if (dc_strbuf_error(out))
		ret = conn_fail(c, err, dc_strbuf_error(out), NULL, 0, 0,
		                "tenant '%s': query output too large", tenant_id(c));
out:
	sqlite3_finalize(st);
	return ret;
}

/*
 * The checks are plain PRAGMAs: their table-valued forms cost a virtual
 * table and a nested prepare per call, several times the check of a small
 * table. A table's name is quoted with %w (it comes from SQLite itself: the
 * authorizer or table_list), never spliced raw.
 */
#define CHECK_INTEGRITY_ALL "PRAGMA main.integrity_check"
#define CHECK_FK_ALL        "PRAGMA main.foreign_key_check"

/* Runs one check (`fmt` with the quoted `table`, or `fmt` as is) and appends
 * its problems to `out`: integrity_check's rows other than "ok", one line per
 * foreign key violation. `*rows` counts the lines appended. */
static int check_run(dc_conn *c,
                     dc_check_kind kind,
                     const char *fmt,
                     const char *table,
                     dc_strbuf *out,
                     size_t max_rows,
                     size_t *rows,
                     dc_error *err)
{
	sqlite3_stmt *st = NULL;
	char *sql = table ? sqlite3_mprintf(fmt, table) : NULL;
	int ret = 0, rc;

	if (table && !sql)
		return conn_fail(c, err, DC_ENOMEM, NULL, 0, 0, "out of memory");
	rc = sqlite3_prepare_v2(c->db, sql ? sql : fmt, -1, &st, NULL);
	while (rc == SQLITE_OK && *rows < max_rows && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *a = (const char *)sqlite3_column_text(st, 0);

		rc = SQLITE_OK;
		if (kind == DC_CHECK_INTEGRITY) {
			if (a && strcmp(a, "ok") == 0)
				continue;
			dc_strbuf_addf(out, "%s\n", a ? a : "");
		} else if (sqlite3_column_type(st, 1) == SQLITE_NULL) {
			dc_strbuf_addf(out, "%s: a row references a missing row of %s\n",
			               a ? a : "?", (const char *)sqlite3_column_text(st, 2));
		} else {
			dc_strbuf_addf(out, "%s: row %lld references a missing row of %s\n",
			               a ? a : "?", (long long)sqlite3_column_int64(st, 1),
			               (const char *)sqlite3_column_text(st, 2));
		}
		(*rows)++;
	}
	if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW)
		ret = db_fail(c, err, table);
	else if (dc_strbuf_error(out))
		ret = conn_fail(c, err, dc_strbuf_error(out), NULL, 0, 0,
		                "tenant '%s': check output too large", tenant_id(c));
	sqlite3_finalize(st);
	sqlite3_free(sql);
	return ret;
}

static void graph_free(check_graph *g)
{
	size_t i;

	for (i = 0; i < g->n; i++)
		free(g->t[i].name);
	for (i = 0; i < g->ne; i++)
		free(g->e[i].parent);
	free(g->t);
	free(g->e);
	memset(g, 0, sizeof(*g));
}

/* Frees a graph of the prefetch thread's, and the graph itself (NULL: none). */
static void graph_destroy(check_graph *g)
{
	if (!g)
		return;
	graph_free(g);
	free(g);
}

/* Forgets the connection's graph, whoever read it. */
static void graph_drop(dc_conn *c)
{
	graph_free(&c->graph);
	c->graph_valid = false;
	c->graph_sticky = false;
	c->graph_pending = false;
}

static int check_table_cmp(const void *a, const void *b)
{
	return strcasecmp(((const check_table *)a)->name, ((const check_table *)b)->name);
}

/*
 * The foreign keys of g's tables (graph_load listed them): only a table
 * whose SQL mentions REFERENCES can have one (REFERENCES is how SQLite
 * declares one), so only those are asked. Fills has_fk. An SQLite code.
 */
static int graph_edges(sqlite3 *db, check_graph *g)
{
	sqlite3_stmt *st = NULL;
	size_t i, ae = g->ne;
	int rc = SQLITE_OK;

	for (i = 0; i < g->n && rc == SQLITE_OK; i++) {
		char *sql;

		g->t[i].has_fk = false;
		if (g->t[i].type != 't' || !g->t[i].refs)
			continue;
		sql = sqlite3_mprintf("PRAGMA main.foreign_key_list(\"%w\")", g->t[i].name);
		if (!sql)
			return SQLITE_NOMEM;
		rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
		sqlite3_free(sql);
		while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
			const char *p = (const char *)sqlite3_column_text(st, 2);

			rc = SQLITE_OK;
			g->t[i].has_fk = true;
			if (!p)
				continue;
			if (g->ne == ae) {
				size_t na = ae ? ae * 2 : 16;
				fk_edge *ne = dc_realloc_array(g->e, na, sizeof(*ne));

				if (!ne) {
					rc = SQLITE_NOMEM;
					break;
				}
				g->e = ne;
				ae = na;
			}
			g->e[g->ne].parent = dc_strdup(p);
			if (!g->e[g->ne].parent) {
				rc = SQLITE_NOMEM;
				break;
			}
			g->e[g->ne++].child = i;
		}
		sqlite3_finalize(st);
		st = NULL;
		if (rc == SQLITE_DONE)
			rc = SQLITE_OK;
	}
	if (rc == SQLITE_OK)
		g->edges = true;
	return rc;
}

/*
 * Reads into `g` (empty) the file's tables and views, SQLite's own left out,
 * by name -- one read of sqlite_schema -- and with `edges` their foreign
 * keys (graph_edges). A table's SQL tells a virtual table ("CREATE VIRTUAL
 * TABLE", as SQLite stores it) and whether it may have a foreign key. An
 * SQLite code; on failure `g` is left empty and `*what` names what failed.
 */
static int graph_load(sqlite3 *db, bool edges, check_graph *g, const char **what)
{
	sqlite3_stmt *st = NULL;
	size_t at = 0;
	int rc;

	/* no WHERE: filtering the few rows here costs less than compiling it */
	rc = sqlite3_prepare_v2(db, "SELECT type, name, sql FROM main.sqlite_schema", -1, &st,
	                        NULL);
	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *type = (const char *)sqlite3_column_text(st, 0);
		const char *name = (const char *)sqlite3_column_text(st, 1);
		const char *sql = (const char *)sqlite3_column_text(st, 2);
		check_table *x;

		rc = SQLITE_OK;
		if (!name || !type || strncasecmp(name, "sqlite_", 7) == 0 ||
		    (strcmp(type, "table") != 0 && strcmp(type, "view") != 0))
			continue;
		if (g->n == at) {
			size_t na = at ? at * 2 : 16;
			check_table *nt = dc_realloc_array(g->t, na, sizeof(*nt));

			if (!nt) {
				rc = SQLITE_NOMEM;
				break;
			}
			g->t = nt;
			at = na;
		}
		x = &g->t[g->n];
		memset(x, 0, sizeof(*x));
		x->name = dc_strdup(name);
		if (!x->name) {
			rc = SQLITE_NOMEM;
			break;
		}
		x->type = strcmp(type, "view") == 0                                  ? 'v'
		          : sql && strncasecmp(sql, "CREATE VIRTUAL TABLE", 20) == 0 ? 'V'
		                                                                     : 't';
		x->refs = x->type == 't' && sql &&
		          sqlite3_strlike("%REFERENCES%", sql, 0) == 0; /* any case */
		g->n++;
	}
	sqlite3_finalize(st);
	*what = "sqlite_schema";
	if (rc == SQLITE_DONE) {
		rc = SQLITE_OK;
		if (g->n > 1) /* problems in name order, whatever the schema's */
			qsort(g->t, g->n, sizeof(*g->t), check_table_cmp);
		if (edges) {
			*what = "foreign_key_list";
			rc = graph_edges(db, g);
		}
	}
	if (rc != SQLITE_OK)
		graph_free(g);
	return rc;
}

/*
 * Makes c->graph the file's as it stands, with its foreign keys when
 * `edges`: the one held when still valid (read by the prefetch thread, or
 * by an earlier check with no statement run since), else read now.
 */
static int check_graph_ready(dc_conn *c, bool edges, dc_error *err)
{
	const char *what = "foreign_key_list";
	int rc = SQLITE_OK;

	if (c->graph_valid && c->graph_sticky)
		c->graph_used = true;
	else if (!c->graph_valid && !c->graph_taken && !c->schema_changed && c->in_tx &&
	         c->txs == 1)
		c->graph_unwanted = false; /* a prefetched one would have served */
	if (!c->graph_valid) {
		graph_drop(c);
		rc = graph_load(c->db, edges, &c->graph, &what);
	} else if (edges && !c->graph.edges) {
		rc = graph_edges(c->db, &c->graph);
	}
	if (rc == SQLITE_OK) {
		c->graph_valid = true;
		return 0;
	}
	graph_drop(c);
	return rc == SQLITE_NOMEM ? conn_fail(c, err, DC_ENOMEM, NULL, 0, 0, "out of memory")
	                          : db_fail(c, err, what);
}

static check_table *find_table(check_table *t, size_t n, const char *name)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcasecmp(t[i].name, name) == 0)
			return &t[i];
	return NULL;
}

/*
 * Marks the written tables in `t`. `*full` when one is gone without having
 * been dropped (renamed away: its new name is unknown) or is virtual (its
 * module writes shadow tables the authorizer does not see): only a check of
 * the whole file covers those.
 */
static void mark_written(const dc_conn *c, check_table *t, size_t n, bool *full)
{
	size_t i;

	for (i = 0; i < n; i++)
		t[i].in_set = false;
	for (i = 0; i < c->nwritten && !*full; i++) {
		check_table *x = find_table(t, n, c->written[i].name);

		if (!x)
			*full = !c->written[i].dropped;
		else if (x->type == 'V')
			*full = true;
		else
			x->in_set = true;
	}
}

/* Whether `name` is a table the migration dropped (see mark_referencing). */
static bool dropped_by_migration(const dc_conn *c, const char *name)
{
	size_t w;

	for (w = 0; w < c->nwritten; w++)
		if (c->written[w].dropped && strcasecmp(c->written[w].name, name) == 0)
			return true;
	return false;
}

/*
 * Adds to the set every table referencing one in the set (or a dropped
 * written one), transitively, along g's foreign keys: a deleted, re-keyed
 * or dropped parent orphans its children's rows.
 *
 * SQLite's own enforcement (deployclaw's connections turn foreign keys on)
 * does not make this redundant: it keeps a count, and a statement that
 * orphans a row while mending one dangling from before (UPDATE p SET id = 99
 * WHERE id = 1, with a child of 1 and an old child of 99) nets to zero and
 * passes.
 */
static void mark_referencing(const dc_conn *c, check_graph *g)
{
	bool grew;
	size_t i;

	do {
		grew = false;
		for (i = 0; i < g->ne; i++) {
			const check_table *p;

			if (g->t[g->e[i].child].in_set)
				continue;
			p = find_table(g->t, g->n, g->e[i].parent);
			if (p ? p->in_set : dropped_by_migration(c, g->e[i].parent)) {
				g->t[g->e[i].child].in_set = true;
				grew = true;
			}
		}
	} while (grew);
}

/*
 * The consistency checks of what the migration wrote: integrity_check of
 * every table written, with its indexes; foreign_key_check of every table
 * written and every table referencing one, transitively (mark_referencing).
 * The whole file when `full`, or after a write the authorizer could not
 * follow. Both checks of a tenant share one listing of its tables.
 */
static int sq_check(dc_conn *c,
                    dc_check_kind kind,
                    bool full,
                    dc_strbuf *out,
                    size_t max_rows,
                    dc_error *err)
{
	size_t rows = 0, i;
	int ret;

	if ((ret = need_db(c, err)) != 0)
		return ret;
	/* integrity_check skips CHECK constraints while they are ignored */
	if (c->ignored_checks) {
		if ((ret = run_internal(c, "PRAGMA ignore_check_constraints = OFF", err)) != 0)
			return ret;
		c->ignored_checks = false;
	}
	full = full || c->written_all;
	if (!full && c->nwritten == 0)
		return 0; /* nothing written, nothing to check */
	if (!full) {
		if ((ret = check_graph_ready(c, kind == DC_CHECK_FOREIGN_KEYS, err)) != 0)
			return ret;
		mark_written(c, c->graph.t, c->graph.n, &full);
	}
	if (full)
		return check_run(c, kind,
		                 kind == DC_CHECK_INTEGRITY ? CHECK_INTEGRITY_ALL : CHECK_FK_ALL,
		                 NULL, out, max_rows, &rows, err);
	if (kind == DC_CHECK_INTEGRITY) {
		for (i = 0; i < c->graph.n && ret == 0 && rows < max_rows; i++)
			if (c->graph.t[i].in_set && c->graph.t[i].type != 'v')
				ret = check_run(c, kind, "PRAGMA main.integrity_check(\"%w\")",
				                c->graph.t[i].name, out, max_rows, &rows, err);
		return ret;
	}
	mark_referencing(c, &c->graph);
	for (i = 0; i < c->graph.n && ret == 0 && rows < max_rows; i++)
		if (c->graph.t[i].in_set && c->graph.t[i].has_fk)
			ret = check_run(c, kind, "PRAGMA main.foreign_key_check(\"%w\")",
			                c->graph.t[i].name, out, max_rows, &rows, err);
	return ret;
}

static int fsync_path(const char *path, int flags)
{
	int fd = open(path, flags | O_CLOEXEC);
	int rc;

	if (fd < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

/* Copies the tenant with the online backup API into a temporary file next to
 * `dest`, fsyncs it and renames it over `dest`: a reader never sees half a
 * backup, and a crash leaves at most a stray temporary file. */
static int sq_backup(dc_conn *c, const char *dest, dc_error *err)
{
	sqlite3 *out = NULL;
	sqlite3_backup *b = NULL;
	char *tmp = NULL, *dir = NULL;
	int64_t deadline;
	int ret, rc, fd;

	if ((ret = need_db(c, err)) != 0)
		return ret;
	tmp = malloc(strlen(dest) + 8);
	dir = dc_path_dirname(dest);
	if (!tmp || !dir) {
		ret = conn_fail(c, err, DC_ENOMEM, NULL, 0, 0, "out of memory");
		goto out;
	}
	strcpy(tmp, dest);
	strcat(tmp, ".XXXXXX");
	fd = mkstemp(tmp);
	if (fd < 0) {
		ret = conn_fail(c, err, DC_EIO, NULL, 0, 0, "tenant '%s': backup to '%s': %s",
		                tenant_id(c), dest, strerror(errno));
		free(tmp);
		tmp = NULL;
		goto out;
	}
	close(fd);
	rc = sqlite3_open_v2(tmp, &out, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc == SQLITE_OK) {
		b = sqlite3_backup_init(out, "main", c->db, "main");
		rc = b ? SQLITE_OK : sqlite3_errcode(out);
	}
	deadline = dc_time_mono_ms() + c->engine->busy_ms;
	while (rc == SQLITE_OK || rc == SQLITE_BUSY || rc == SQLITE_LOCKED) {
		rc = sqlite3_backup_step(b, -1);
		if (rc == SQLITE_DONE)
			break;
		if ((rc == SQLITE_BUSY || rc == SQLITE_LOCKED) && dc_time_mono_ms() >= deadline)
			break;
		if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
			sqlite3_sleep(LOCK_POLL_MS);
	}
	if (b && sqlite3_backup_finish(b) != SQLITE_OK && rc == SQLITE_DONE)
		rc = sqlite3_errcode(out);
	if (rc != SQLITE_DONE) {
		ret = conn_fail(c, err, DC_EDB, NULL, 0, 0, "tenant '%s': backup to '%s': %s",
		                tenant_id(c), dest, out ? sqlite3_errmsg(out) : "out of memory");
		goto out;
	}
	sqlite3_close(out);
	out = NULL;
	if (fsync_path(tmp, O_RDONLY) != 0 || rename(tmp, dest) != 0) {
		ret = conn_fail(c, err, DC_EIO, NULL, 0, 0, "tenant '%s': backup to '%s': %s",
		                tenant_id(c), dest, strerror(errno));
		goto out;
	}
	free(tmp);
	tmp = NULL;
	(void)fsync_path(dir, O_RDONLY | O_DIRECTORY); /* best effort, as dc_file_write_atomic */
out:
	sqlite3_close(out);
	if (tmp)
		unlink(tmp);
	free(tmp);
	free(dir);
	return ret;
}

static void hash_column(crypto_hash_sha256_state *h, sqlite3_stmt *st, int col)
{
	const unsigned char *s = sqlite3_column_text(st, col);
	uint32_t len = s ? (uint32_t)sqlite3_column_bytes(st, col) : UINT32_MAX;
	unsigned char be[4] = { (unsigned char)(len >> 24), (unsigned char)(len >> 16),
		                (unsigned char)(len >> 8), (unsigned char)len };

	/* Length-prefixed, so ("ab", "c") and ("a", "bc") differ; NULL differs from "". */
	crypto_hash_sha256_update(h, be, sizeof(be));
	if (s)
		crypto_hash_sha256_update(h, s, len);
}

static int sq_schema_fingerprint(dc_conn *c, char out[65], dc_error *err)
{
	crypto_hash_sha256_state h;
	unsigned char digest[crypto_hash_sha256_BYTES];
	sqlite3_stmt *st = NULL;
	int ret, rc, i;

	out[0] = '\0';
	if ((ret = need_db(c, err)) != 0)
		return ret;
	crypto_hash_sha256_init(&h);
	rc = sqlite3_prepare_v2(c->db, SCHEMA_SELECT, -1, &st, NULL);
	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		for (i = 0; i < 4; i++)
			hash_column(&h, st, i);
		rc = SQLITE_OK;
	}
	if (rc != SQLITE_DONE) {
		ret = db_fail(c, err, "schema");
		goto out;
	}
	crypto_hash_sha256_final(&h, digest);
	dc_hex_encode(out, digest, sizeof(digest));
out:
	sqlite3_finalize(st);
	return ret;
}

const dc_engine_ops dc_engine_sqlite = {
	.name = "sqlite",
	.open = sq_open,
	.close = sq_close,
	.discover = sq_discover,
	.connect = sq_connect,
	.disconnect = sq_disconnect,
	.enter = sq_enter,
	.prefetch = sq_prefetch,
	.lock_tenant = sq_lock_tenant,
	.unlock_tenant = sq_unlock_tenant,
	.begin = sq_begin,
	.commit = sq_commit,
	.rollback = sq_rollback,
	.exec = sq_exec,
	.query_bool = sq_query_bool,
	.history_ensure = sq_history_ensure,
	.history_read = sq_history_read,
	.history_peek = sq_history_peek,
	.history_write = sq_history_write,
	.query_text = sq_query_text,
	.check = sq_check,
	.backup = sq_backup,
	.schema_fingerprint = sq_schema_fingerprint,
};
