/*
 * The prefetch thread: opens the tenant a worker will probably enter next,
 * and closes the handles it leaves behind, off the worker's path.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sqlite3.h>

#include <deployclaw/engine.h>

#include "sqlite_internal.h"

/* Closes `db` on the prefetch thread when it runs and has room, else here:
 * a close is SQLite's teardown of the handle, off the worker's path. The
 * thread is not woken for it: the next prefetch, which follows at once,
 * wakes it for both (one wake-up per tenant, not two); the disconnect closes
 * what is still there. */
void dc_sqlite__close_later(dc_conn *c, sqlite3 *db)
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
		rc = dc_sqlite__graph_load(db, edges, g, &what);
		v = dc_sqlite__data_version(db);
		if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
			rc = SQLITE_ERROR;
		}
	}
	sqlite3_set_authorizer(db, dc_sqlite__authorize, c);
	if (rc != SQLITE_OK || v < 0) {
		dc_sqlite__graph_destroy(g);
		return NULL;
	}
	*version = v;
	return g;
}

/*
 * The prefetch thread: closes the handles the worker leaves behind and opens
 * the tenant it was told comes next (dc_sqlite__open_tenant with its own path cache and
 * no error: a tenant that does not open is left for enter to open, and to
 * report, as if no prefetch had run), and loads its schema -- SQLite parses
 * every CREATE statement of the file, a tenth of a migration's work -- in a
 * read transaction of its own, waiting for no lock (a file busy is left to
 * the worker). It takes no tenant lock and decides nothing: the run checks,
 * inside its transaction, that the file has not changed since, and SQLite
 * loads the schema again if it has (dc_sqlite__schema_current). When asked, it reads
 * the check graph in the same transaction (prefetch_graph): the checks then
 * use it, under the same condition, instead of reading it on the worker.
 */
static void prefetch_main(void *arg)
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
			(void)dc_sqlite__open_tenant(c, &pf->paths, t, &db, &st, NULL);
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
					(void)dc_sqlite__history_exists(
					        db, "main"); /* loads the schema */
					version = dc_sqlite__data_version(db);
				}
				sqlite3_busy_timeout(db, c->engine->busy_ms);
				/* its read transaction would not end: not handed on */
				if (!sqlite3_get_autocommit(db)) {
					sqlite3_close(db);
					db = NULL;
					dc_sqlite__graph_destroy(graph);
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
			dc_sqlite__graph_destroy(stale_graph);
			pthread_mutex_lock(&pf->mu);
		}
	}
	pthread_mutex_unlock(&pf->mu);
}

/* The prefetcher's mutex and condition variable; its thread starts on first
 * use (dc_sqlite__prefetch). */
int dc_sqlite__prefetch_init(prefetcher *pf, dc_error *err)
{
	if (pthread_mutex_init(&pf->mu, NULL) != 0)
		return dc_error_set(err, DC_ENOMEM, "cannot create a mutex");
	if (pthread_cond_init(&pf->cv, NULL) != 0) {
		pthread_mutex_destroy(&pf->mu);
		return dc_error_set(err, DC_ENOMEM, "cannot create a condition variable");
	}
	return 0;
}

/* Stops the thread and closes what it still holds. */
void dc_sqlite__prefetch_release(prefetcher *pf)
{
	if (pf->running) {
		pthread_mutex_lock(&pf->mu);
		pf->quit = true;
		pthread_cond_broadcast(&pf->cv);
		pthread_mutex_unlock(&pf->mu);
		dc_pool_join(&pf->task);
	}
	sqlite3_close(pf->done);
	sqlite3_close(pf->to_close);
	pthread_cond_destroy(&pf->cv);
	pthread_mutex_destroy(&pf->mu);
	dc_sqlite__graph_destroy(pf->done_graph);
}

/*
 * A hint that the worker will probably enter `t` next: the prefetch thread
 * opens it while the current tenant runs (its commit waits on the disk), so
 * the open -- SQLite's setup of a handle, most of it registering the built-in
 * extensions, and the file checks -- is off the worker's path. enter takes
 * the handle when it is for the tenant entered, and ignores it otherwise.
 */
void dc_sqlite__prefetch(dc_conn *c, const dc_tenant *t)
{
	prefetcher *pf = &c->pf;

	if (!t)
		return;
	if (!pf->running) {
		pf->quit = false;
		/* a long-lived loop that mostly waits: a pool thread of its own */
		if (dc_pool_start(&pf->task, prefetch_main, c) != 0)
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
sqlite3 *dc_sqlite__prefetch_take(dc_conn *c, const dc_tenant *t, int *version, check_graph **graph)
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
	dc_sqlite__graph_destroy(other_graph);
	/* the name must still be that file, writable: one removed, replaced or
	 * made read-only since is opened afresh, and fails as without a prefetch */
	if (db && (stat(t->target, &sb) != 0 || sb.st_dev != dev || sb.st_ino != ino ||
	           !(sb.st_mode & (S_IWUSR | S_IWGRP | S_IWOTH)))) {
		dc_sqlite__close_later(c, db);
		db = NULL;
	}
	if (!db) {
		dc_sqlite__graph_destroy(g);
		g = NULL;
	}
	*graph = g;
	return db;
}
