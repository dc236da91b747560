/*
 * Internal to src/engine/sqlite: the engine's and a connection's state, and
 * the functions its files share. sqlite.c states the invariants; each file
 * says what it holds.
 */
#ifndef DC_SQLITE_INTERNAL_H
#define DC_SQLITE_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <sqlite3.h>

#include <deployclaw/engine.h>

#include "engine/engine_internal.h"
#include "util/array.h"
#include "util/pool.h"
#include "util/util.h"

/* Distinct tables recorded per statement (the rest are not recorded). */
#define DC_SQLITE__MAX_TABLES 8

/* How often lock_tenant (and a backup) retries while another holds the lock. */
#define DC_SQLITE__LOCK_POLL_MS 10

/* The select list of deployclaw_history's rows, in the column order
 * dc_sqlite__history_rows reads them (history.c, peek.c). */
#define DC_SQLITE__HISTORY_COLUMNS \
	"SELECT version, name, checksum, phase, status, started_at, finished_at, duration_ms, run_id, actor "

/* The VFS of files whose canonical name is known (see canonical.c). */
#define DC_SQLITE__CANONICAL_VFS "deployclaw-canonical"

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

/* A table or view of the tenant's file (see dc_sqlite__graph_load). */
typedef struct check_table {
	char *name;
	char type;   /* 't'able, 'v'iew, 'V'irtual table */
	bool refs;   /* its SQL mentions REFERENCES: it may have a foreign key */
	bool in_set; /* to be checked */
	bool has_fk; /* has a foreign key (dc_sqlite__graph_edges) */
} check_table;

/* A foreign key of table t[child] referencing `parent` (see dc_sqlite__graph_edges). */
typedef struct fk_edge {
	size_t child;
	char *parent;
} fk_edge;

/*
 * What the scoped checks need to know of a file's schema: its tables and
 * views by name, and (once `edges` is set) its foreign keys. Read by
 * dc_sqlite__graph_load, on the worker or ahead of it by the prefetch thread.
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
 * the current one (see dc_sqlite__prefetch): a task on the worker pool, started on
 * first use, with one job slot and one result. Guarded by `mu`.
 */
typedef struct prefetcher {
	dc_pool_task task;
	bool running;
	bool quit;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	const dc_tenant *job;     /* to open next; NULL: none */
	bool job_graph;           /* read its check graph too (see dc_sqlite__prefetch) */
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
	bool altering; /* an ALTER TABLE (see dc_sqlite__authorize) */
	bool ddl;
	bool dml;
	size_t ntables;
	char tables[DC_SQLITE__MAX_TABLES][64];
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
	 * data version the one it was read at (dc_sqlite__begin), and until a statement
	 * of the run could change it (dc_sqlite__authorize). graph_taken/graph_used: a prefetched graph was
	 * installed for this tenant / a check used it; graph_unwanted: the last
	 * one went unused, so the next prefetch skips it (dc_sqlite__prefetch). */
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
	const char *stmt_sql; /* the user statement being prepared (dc_sqlite__authorize) */

	dc_strbuf scratch; /* "EXPLAIN <sql>", reused across statements */

	path_cache paths; /* the worker's own (the prefetch thread has its own) */
	prefetcher pf;
	/* SQLite holds db's schema as loaded outside a transaction of ours (by
	 * the prefetch thread, or a read transaction since ended) when the
	 * file's data version was `preload_version` (see dc_sqlite__schema_current) */
	bool preloaded;
	int preload_version;

	/* history_peek: an in-memory database each tenant is attached to in
	 * turn, opened on first use (see dc_sqlite__history_peek). */
	sqlite3 *host;
	sqlite3_stmt *attach, *detach;
};

/* ---- connection.c ------------------------------------------------------ */

/* As dc_error_set_at, and fills err->tenant. Message callers prefix the
 * tenant themselves, so it reads well without the structured field. */
int dc_sqlite__fail(const dc_conn *c,
                    dc_error *err,
                    int code,
                    const char *file,
                    int line,
                    int col,
                    const char *fmt,
                    ...) DC_PRINTF(7, 8);

/* The last error of `db` (the tenant's handle, or planning's host); of c->db. */
int dc_sqlite__db_fail_on(const dc_conn *c, sqlite3 *db, dc_error *err, const char *what);
int dc_sqlite__db_fail(const dc_conn *c, dc_error *err, const char *what);

/* Inline: every operation starts with these (one per statement). */
static inline const char *dc_sqlite__tenant_id(const dc_conn *c)
{
	return c->tenant && c->tenant->id ? c->tenant->id : "?";
}

static inline int dc_sqlite__need_db(const dc_conn *c, dc_error *err)
{
	if (c->db)
		return 0;
	return dc_sqlite__fail(c, err, DC_EINVAL, NULL, 0, 0,
	                       "no tenant entered on this connection");
}

int dc_sqlite__readonly_fail(dc_conn *c, const dc_tenant *t, dc_error *err);
int dc_sqlite__tenant_file(dc_conn *c,
                           path_cache *pc,
                           const dc_tenant *t,
                           bool *canonical,
                           struct stat *st,
                           dc_error *err);
int dc_sqlite__open_tenant(dc_conn *c,
                           path_cache *pc,
                           const dc_tenant *t,
                           sqlite3 **out,
                           struct stat *st,
                           dc_error *err);
int dc_sqlite__data_version(sqlite3 *db);
void dc_sqlite__leave(dc_conn *c);
int dc_sqlite__connect(dc_engine *e, dc_conn **out, dc_error *err);
void dc_sqlite__disconnect(dc_conn *c);
int dc_sqlite__enter(dc_conn *c, const dc_tenant *t, dc_error *err);

/* ---- canonical.c ------------------------------------------------------- */

bool dc_sqlite__canonical_path(path_cache *pc, const char *target, struct stat *sb);
/* Whether DC_SQLITE__CANONICAL_VFS is registered (known once
 * dc_sqlite__canonical_path ran). */
bool dc_sqlite__canonical_ok(void);

/* ---- discover.c -------------------------------------------------------- */

int dc_sqlite__discover(dc_engine *e, dc_tenant **tenants, size_t *n, dc_error *err);

/* ---- prefetch.c -------------------------------------------------------- */

int dc_sqlite__prefetch_init(prefetcher *pf, dc_error *err);
void dc_sqlite__prefetch_release(prefetcher *pf);
void dc_sqlite__close_later(dc_conn *c, sqlite3 *db);
void dc_sqlite__prefetch(dc_conn *c, const dc_tenant *t);
sqlite3 *dc_sqlite__prefetch_take(dc_conn *c,
                                  const dc_tenant *t,
                                  int *version,
                                  check_graph **graph);

/* ---- authorizer.c ------------------------------------------------------ */

int dc_sqlite__authorize(void *arg,
                         int action,
                         const char *a1,
                         const char *a2,
                         const char *db,
                         const char *trigger);

/* ---- locks.c ----------------------------------------------------------- */

int dc_sqlite__release_lock(dc_conn *c);
int dc_sqlite__lock_tenant(dc_conn *c, int64_t timeout_ms, dc_error *err);
int dc_sqlite__unlock_tenant(dc_conn *c, dc_error *err);

/* ---- transaction.c ----------------------------------------------------- */

void dc_sqlite__sync_tx(dc_conn *c);
int dc_sqlite__run_internal(dc_conn *c, const char *sql, dc_error *err);
int dc_sqlite__schema_current(dc_conn *c, dc_error *err);
int dc_sqlite__begin(dc_conn *c, dc_error *err);
int dc_sqlite__commit(dc_conn *c, dc_error *err);
int dc_sqlite__rollback(dc_conn *c, dc_error *err);

/* ---- statement.c ------------------------------------------------------- */

int dc_sqlite__exec(dc_conn *c, const dc_statement *stmt, int64_t *rows, dc_error *err);
int dc_sqlite__query_bool(dc_conn *c, const dc_statement *stmt, bool *out, dc_error *err);
int dc_sqlite__query_text(dc_conn *c,
                          const char *sql,
                          dc_strbuf *out,
                          size_t max_rows,
                          dc_error *err);

/* ---- history.c --------------------------------------------------------- */

int dc_sqlite__history_exists(sqlite3 *db, const char *schema);
int dc_sqlite__history_rows(dc_conn *c,
                            sqlite3 *db,
                            const char *sql,
                            dc_history_row **rows,
                            size_t *n,
                            dc_error *err);
int dc_sqlite__history_ensure(dc_conn *c, dc_error *err);
int dc_sqlite__history_read(dc_conn *c, dc_history_row **rows, size_t *n, dc_error *err);
int dc_sqlite__history_write(dc_conn *c, const dc_history_row *row, dc_error *err);

/* ---- peek.c ------------------------------------------------------------ */

int dc_sqlite__history_peek(dc_conn *c,
                            const dc_tenant *t,
                            dc_history_row **rows,
                            size_t *n,
                            dc_error *err);

/* ---- graph.c ----------------------------------------------------------- */

void dc_sqlite__graph_destroy(check_graph *g);
void dc_sqlite__graph_drop(dc_conn *c);
int dc_sqlite__graph_edges(sqlite3 *db, check_graph *g);
int dc_sqlite__graph_load(sqlite3 *db, bool edges, check_graph *g, const char **what);

/* ---- checks.c, backup.c, fingerprint.c --------------------------------- */

int dc_sqlite__check(dc_conn *c,
                     dc_check_kind kind,
                     bool full,
                     dc_strbuf *out,
                     size_t max_rows,
                     dc_error *err);
int dc_sqlite__backup(dc_conn *c, const char *dest, dc_error *err);
int dc_sqlite__schema_fingerprint(dc_conn *c, char out[65], dc_error *err);

#endif
