/*
 * A worker's connection and the tenant's handle it holds: connect and
 * disconnect, enter and leave, opening a tenant's file with the handle's
 * settings (busy timeout, foreign keys, deployclaw_tenant(), the authorizer),
 * and the errors every part of the engine reports through.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sqlite3.h>

#include <deployclaw/engine.h>

#include "sqlite_internal.h"
#include "util/util.h"

int dc_sqlite__fail(const dc_conn *c,
                    dc_error *err,
                    int code,
                    const char *file,
                    int line,
                    int col,
                    const char *fmt,
                    ...)
{
	const dc_engine__where where = {
		.tenant = c->tenant ? c->tenant->id : NULL,
		.file = file,
		.line = line,
		.col = col,
	};
	va_list ap;

	va_start(ap, fmt);
	dc_engine__vfail(err, code, &where, fmt, ap);
	va_end(ap);
	return code;
}

int dc_sqlite__db_fail_on(const dc_conn *c, sqlite3 *db, dc_error *err, const char *what)
{
	if (what)
		return dc_sqlite__fail(c, err, DC_EDB, NULL, 0, 0, "tenant '%s': %s: %s",
		                       dc_sqlite__tenant_id(c), what, sqlite3_errmsg(db));
	return dc_sqlite__fail(c, err, DC_EDB, NULL, 0, 0, "tenant '%s': %s",
	                       dc_sqlite__tenant_id(c), sqlite3_errmsg(db));
}

int dc_sqlite__db_fail(const dc_conn *c, dc_error *err, const char *what)
{
	return dc_sqlite__db_fail_on(c, c->db, err, what);
}

int dc_sqlite__connect(dc_engine *e, dc_conn **out, dc_error *err)
{
	dc_conn *c = calloc(1, sizeof(*c));
	int ret;

	*out = NULL;
	if (!c)
		return dc_error_set(err, DC_ENOMEM, "out of memory");
	c->engine = e;
	c->lock_fd = -1;
	dc_strbuf_init(&c->scratch, 1024 * 1024);
	dc_strbuf_init(&c->paths.canon, PATH_MAX + 1);
	dc_strbuf_init(&c->pf.paths.canon, PATH_MAX + 1);
	if ((ret = dc_sqlite__prefetch_init(&c->pf, err)) != 0) {
		free(c);
		return ret;
	}
	*out = c;
	return 0;
}

static void written_reset(dc_conn *c)
{
	size_t i;

	for (i = 0; i < c->nwritten; i++)
		free(c->written[i].name);
	c->nwritten = 0;
	c->written_all = false;
	c->ignored_checks = false;
	c->schema_changed = false;
	dc_sqlite__graph_drop(c);
}

static void path_cache_release(path_cache *pc)
{
	dc_strbuf_release(&pc->canon);
	free(pc->dir_spelling);
	free(pc->dir_real);
	pc->dir_spelling = pc->dir_real = NULL;
}

/* Leaves the current tenant: drops its lock and closes its file (which rolls
 * back an open transaction). */
void dc_sqlite__leave(dc_conn *c)
{
	/* a prefetched graph no check used (the migration changed the schema,
	 * wrote what only a full check covers, or nothing): the next tenant is
	 * likely alike, and its prefetch skips the graph */
	if (c->graph_taken)
		c->graph_unwanted = !c->graph_used;
	c->graph_taken = c->graph_used = false;
	c->txs = 0;
	(void)dc_sqlite__release_lock(c);
	dc_sqlite__close_later(c, c->db);
	c->db = NULL;
	c->tenant = NULL;
	c->preloaded = false;
	c->in_tx = false;
	c->history = HISTORY_UNKNOWN;
	written_reset(c);
}

void dc_sqlite__disconnect(dc_conn *c)
{
	if (!c)
		return;
	dc_sqlite__leave(c);
	dc_sqlite__prefetch_release(&c->pf);
	sqlite3_finalize(c->attach);
	sqlite3_finalize(c->detach);
	sqlite3_close(c->host);
	free(c->written);
	dc_sqlite__graph_drop(c);
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

int dc_sqlite__readonly_fail(dc_conn *c, const dc_tenant *t, dc_error *err)
{
	return dc_sqlite__fail(c, err, DC_EINVAL, NULL, 0, 0,
	                       "tenant '%s' ('%s'): the database file is read-only", t->id,
	                       t->target);
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
		return dc_sqlite__fail(c, err, DC_EIO, NULL, 0, 0, "tenant '%s' ('%s'): %s", t->id,
		                       t->target, sqlite3_errstr(rc));
	}
	return dc_sqlite__fail(c, err, DC_EDB, NULL, 0, 0, "tenant '%s' ('%s'): %s", t->id,
	                       t->target, sqlite3_errstr(SQLITE_NOTADB));
}

/* The tenant's file as enter and history_peek find it before SQLite opens
 * it: `*canonical` when pc->canon holds its canonical name (see
 * dc_sqlite__canonical_path). A missing file, one that is not a regular file and one
 * without any write bit fail here. */
int dc_sqlite__tenant_file(dc_conn *c,
                           path_cache *pc,
                           const dc_tenant *t,
                           bool *canonical,
                           struct stat *st,
                           dc_error *err)
{
	struct stat sb;

	*canonical = dc_sqlite__canonical_path(pc, t->target, &sb);
	if (!*canonical && stat(t->target, &sb) != 0) {
		if (errno == ENOENT)
			return dc_sqlite__fail(
			        c, err, DC_ENOTFOUND, NULL, 0, 0,
			        "tenant '%s' ('%s'): the database file does not exist", t->id,
			        t->target);
		return dc_sqlite__fail(c, err, DC_EIO, NULL, 0, 0, "tenant '%s' ('%s'): %s", t->id,
		                       t->target, strerror(errno));
	}
	if (!S_ISREG(sb.st_mode))
		return dc_sqlite__fail(c, err, DC_EINVAL, NULL, 0, 0,
		                       "tenant '%s' ('%s'): not a regular file", t->id, t->target);
	/* No write bit at all is a read-only file even for root, who could write it
	 * anyway: a file someone made read-only is not ours to change. */
	if (!(sb.st_mode & (S_IWUSR | S_IWGRP | S_IWOTH)))
		return dc_sqlite__readonly_fail(c, t, err);
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
int dc_sqlite__open_tenant(dc_conn *c,
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
	if ((ret = dc_sqlite__tenant_file(c, pc, t, &canonical, st, err)) != 0)
		return ret;
	if (canonical) {
		path = pc->canon.buf;
		vfs = DC_SQLITE__CANONICAL_VFS;
	}
	rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, vfs);
	if (rc != SQLITE_OK) {
		ret = dc_sqlite__fail(c, err, rc == SQLITE_NOMEM ? DC_ENOMEM : DC_EDB, NULL, 0, 0,
		                      "tenant '%s' ('%s'): %s", t->id, t->target,
		                      db ? sqlite3_errmsg(db) : "out of memory");
		goto out;
	}
	/* SQLite falls back to read-only when it may not write the file. */
	if (sqlite3_db_readonly(db, "main") == 1) {
		ret = dc_sqlite__readonly_fail(c, t, err);
		goto out;
	}
	sqlite3_busy_timeout(db, c->engine->busy_ms);
	sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_FKEY, 1, (int *)NULL);
	if (sqlite3_create_function_v2(db, "deployclaw_tenant", 0, SQLITE_UTF8, c, fn_tenant, NULL,
	                               NULL, NULL) != SQLITE_OK ||
	    sqlite3_set_authorizer(db, dc_sqlite__authorize, c) != SQLITE_OK) {
		ret = dc_sqlite__fail(c, err, DC_EDB, NULL, 0, 0, "tenant '%s' ('%s'): %s", t->id,
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

/* The file's data version: SQLite changes it whenever a transaction finds the
 * file written since the last (by this or another connection). */
int dc_sqlite__data_version(sqlite3 *db)
{
	int v = 0;

	if (sqlite3_file_control(db, "main", SQLITE_FCNTL_DATA_VERSION, &v) != SQLITE_OK)
		return -1;
	return v;
}

int dc_sqlite__enter(dc_conn *c, const dc_tenant *t, dc_error *err)
{
	check_graph *g = NULL;

	dc_sqlite__leave(c);
	c->tenant = t;
	c->history = HISTORY_UNKNOWN;
	c->db = dc_sqlite__prefetch_take(c, t, &c->preload_version, &g);
	if (c->db) {
		c->preloaded = true;
		if (g) {
			/* used once the run's transaction finds the file as it
			 * was read (dc_sqlite__begin) */
			c->graph = *g;
			free(g);
			c->graph_sticky = true;
			c->graph_pending = true;
			c->graph_version = c->preload_version;
			c->graph_taken = true;
		}
		return 0;
	}
	return dc_sqlite__open_tenant(c, &c->paths, t, &c->db, NULL, err);
}
