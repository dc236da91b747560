/*
 * Planning's peek at a tenant's history without entering it.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include <deployclaw/engine.h>

#include "sqlite_internal.h"

/* The schema name a tenant is attached under by history_peek. */
#define PEEK_SCHEMA "tenant"

#define HISTORY_SELECT_PEEK \
	DC_SQLITE__HISTORY_COLUMNS "FROM " PEEK_SCHEMA ".deployclaw_history ORDER BY rowid"

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
	                     dc_sqlite__canonical_ok() ? DC_SQLITE__CANONICAL_VFS : NULL);
	if (rc == SQLITE_OK) {
		sqlite3_busy_timeout(c->host, c->engine->busy_ms);
		rc = sqlite3_prepare_v2(c->host, "ATTACH ?1 AS " PEEK_SCHEMA, -1, &c->attach, NULL);
	}
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(c->host, "DETACH " PEEK_SCHEMA, -1, &c->detach, NULL);
	if (rc == SQLITE_OK)
		return 0;
	rc = dc_sqlite__fail(c, err, rc == SQLITE_NOMEM ? DC_ENOMEM : DC_EDB, NULL, 0, 0,
	                     "cannot open SQLite's in-memory database: %s",
	                     c->host ? sqlite3_errmsg(c->host) : "out of memory");
	sqlite3_finalize(c->attach);
	sqlite3_finalize(c->detach);
	sqlite3_close(c->host);
	c->attach = c->detach = NULL;
	c->host = NULL;
	return rc;
}

int dc_sqlite__history_peek(dc_conn *c,
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
	dc_sqlite__leave(c);
	c->tenant = t;
	if ((ret = dc_sqlite__tenant_file(c, &c->paths, t, &canonical, NULL, err)) != 0 ||
	    (ret = host_open(c, err)) != 0)
		goto out;
	if (canonical) {
		path = c->paths.canon.buf;
	} else if (dc_sqlite__canonical_ok()) {
		/* The host's VFS takes an absolute name as it is: give it the real
		 * one, or a symlinked tenant's journal would be looked for next to
		 * the link. */
		real = realpath(t->target, NULL);
		if (!real) {
			ret = dc_sqlite__fail(c, err, DC_EIO, NULL, 0, 0, "tenant '%s' ('%s'): %s",
			                      t->id, t->target, strerror(errno));
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
		ret = dc_sqlite__fail(c, err, rc == SQLITE_NOMEM ? DC_ENOMEM : DC_EDB, NULL, 0, 0,
		                      "tenant '%s' ('%s'): %s", t->id, t->target,
		                      sqlite3_errmsg(c->host));
		goto out;
	}
	attached = true;
	/* SQLite falls back to read-only when it may not write the file. */
	if (sqlite3_db_readonly(c->host, PEEK_SCHEMA) == 1) {
		ret = dc_sqlite__readonly_fail(c, t, err);
		goto out;
	}
	/* ATTACH loaded the schema: the existence check reads nothing, and the
	 * read runs in a read transaction of its own (a schema changed since
	 * makes SQLite prepare it again). What planning reads is confirmed by the
	 * run, under the tenant lock, before anything changes. */
	found = dc_sqlite__history_exists(c->host, PEEK_SCHEMA);
	if (found < 0)
		ret = dc_sqlite__db_fail_on(c, c->host, err, "deployclaw_history");
	else if (found)
		ret = dc_sqlite__history_rows(c, c->host, HISTORY_SELECT_PEEK, rows, n, err);
out:
	if (c->host && !sqlite3_get_autocommit(c->host)) {
		sqlite3_exec(c->host, "COMMIT", NULL, NULL, NULL);
		if (!sqlite3_get_autocommit(c->host))
			sqlite3_exec(c->host, "ROLLBACK", NULL, NULL, NULL);
	}
	if (attached && sqlite3_step(c->detach) != SQLITE_DONE) {
		if (ret == 0) {
			ret = dc_sqlite__db_fail_on(c, c->host, err, NULL);
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
