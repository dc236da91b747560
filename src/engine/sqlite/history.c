/*
 * deployclaw_history: the table in each tenant's file that records what was
 * applied to it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include <deployclaw/engine.h>

#include "sqlite_internal.h"
#include "util/util.h"

/* Most history rows read from one tenant; more is DC_ELIMIT. */
#define MAX_HISTORY_ROWS ((size_t)1000 * 1000)

#define HISTORY_CREATE                                                                       \
	"CREATE TABLE IF NOT EXISTS deployclaw_history (version TEXT PRIMARY KEY NOT NULL, " \
	"name TEXT, checksum TEXT, phase TEXT, status TEXT NOT NULL, started_at TEXT, "      \
	"finished_at TEXT, duration_ms INTEGER, run_id TEXT, actor TEXT)"

#define HISTORY_SELECT DC_SQLITE__HISTORY_COLUMNS "FROM deployclaw_history ORDER BY rowid"

#define HISTORY_UPSERT                                                                        \
	"INSERT OR REPLACE INTO deployclaw_history (version, name, checksum, phase, status, " \
	"started_at, finished_at, duration_ms, run_id, actor) "                               \
	"VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"

/*
 * Whether `schema` of `db` has deployclaw_history: 1, 0, or -1 with the
 * error in `db`. sqlite3_table_column_metadata loads the schema and looks
 * the name up in it: no statement to parse and plan, as a query of
 * sqlite_schema would be (the schema load is paid either way). It says
 * SQLITE_ERROR for a name it does not find; a schema that does not load
 * fails with that error's own code (NOTADB, CORRUPT, BUSY, ...).
 */
int dc_sqlite__history_exists(sqlite3 *db, const char *schema)
{
	int rc = sqlite3_table_column_metadata(db, schema, "deployclaw_history", NULL, NULL, NULL,
	                                       NULL, NULL, NULL);

	return rc == SQLITE_OK ? 1 : rc == SQLITE_ERROR ? 0 : -1;
}

static int history_probe(dc_conn *c, dc_error *err)
{
	int found = dc_sqlite__history_exists(c->db, "main");

	if (found < 0)
		return dc_sqlite__db_fail(c, err, "deployclaw_history");
	c->history = found ? HISTORY_PRESENT : HISTORY_MISSING;
	return 0;
}

static int history_create(dc_conn *c, dc_error *err)
{
	int ret = dc_sqlite__run_internal(c, HISTORY_CREATE, err);

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
int dc_sqlite__history_ensure(dc_conn *c, dc_error *err)
{
	int ret;

	if ((ret = dc_sqlite__need_db(c, err)) != 0)
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
	return dc_time_parse_rfc3339(out, (const char *)sqlite3_column_text(st, col));
}

static int history_read_in_tx(dc_conn *c, dc_history_row **rows, size_t *n, dc_error *err);

int dc_sqlite__history_read(dc_conn *c, dc_history_row **rows, size_t *n, dc_error *err)
{
	int ret;

	*rows = NULL;
	*n = 0;
	if ((ret = dc_sqlite__need_db(c, err)) != 0)
		return ret;
	/* Outside a transaction (planning), the schema load, the probe and the
	 * read share one read transaction: one shared lock, not three. A bare
	 * BEGIN takes no lock, and preparing the probe would load the schema under
	 * a shared lock of its own; reading the header first opens the read
	 * transaction that all of them share. */
	if (sqlite3_get_autocommit(c->db)) {
		if (sqlite3_exec(c->db, "BEGIN; PRAGMA schema_version", NULL, NULL, NULL) !=
		    SQLITE_OK) {
			ret = dc_sqlite__db_fail(c, err, NULL);
			if (!sqlite3_get_autocommit(c->db))
				sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
			return ret;
		}
		c->history = HISTORY_UNKNOWN;
		ret = dc_sqlite__schema_current(c, err);
		if (ret == 0)
			ret = history_read_in_tx(c, rows, n, err);
		sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL);
		if (!sqlite3_get_autocommit(c->db))
			sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
		c->history = HISTORY_UNKNOWN;
		/* the schema stays loaded, as of this version */
		c->preloaded = true;
		c->preload_version = dc_sqlite__data_version(c->db);
		return ret;
	}
	return history_read_in_tx(c, rows, n, err);
}

/* The rows `sql` (one of the HISTORY_SELECTs) reads from `db`. */
int dc_sqlite__history_rows(dc_conn *c,
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
		ret = dc_sqlite__db_fail_on(c, db, err, "deployclaw_history");
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *status = (const char *)sqlite3_column_text(st, 4);

		if (len == MAX_HISTORY_ROWS) {
			ret = dc_sqlite__fail(
			        c, err, DC_ELIMIT, NULL, 0, 0,
			        "tenant '%s': deployclaw_history has more than %zu rows",
			        dc_sqlite__tenant_id(c), MAX_HISTORY_ROWS);
			goto out;
		}
		if (len == alloc && dc_array_grow(&v, &alloc, sizeof(*v), 8) != 0)
			goto oom;
		r = &v[len++];
		memset(r, 0, sizeof(*r));
		if (dup_column(&r->version, st, 0) || dup_column(&r->name, st, 1) ||
		    dup_column(&r->checksum, st, 2) || dup_column(&r->phase, st, 3) ||
		    dup_column(&r->run_id, st, 8) || dup_column(&r->actor, st, 9))
			goto oom;
		if (!r->version || dc_engine__parse_status(&r->status, status) != 0 ||
		    time_column(&r->started_at_ms, st, 5) != 0 ||
		    time_column(&r->finished_at_ms, st, 6) != 0) {
			ret = dc_sqlite__fail(
			        c, err, DC_EINTEGRITY, NULL, 0, 0,
			        "tenant '%s': deployclaw_history: invalid row for version '%s'",
			        dc_sqlite__tenant_id(c), r->version ? r->version : "(null)");
			goto out;
		}
		r->duration_ms = sqlite3_column_int64(st, 7);
	}
	if (rc != SQLITE_DONE) {
		ret = dc_sqlite__db_fail_on(c, db, err, "deployclaw_history");
		goto out;
	}
	*rows = v;
	*n = len;
	v = NULL;
	len = 0;
	goto out;
oom:
	ret = dc_sqlite__fail(c, err, DC_ENOMEM, NULL, 0, 0, "out of memory");
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
	return dc_sqlite__history_rows(c, c->db, HISTORY_SELECT, rows, n, err);
}

static int bind_text(sqlite3_stmt *st, int i, const char *s)
{
	return s ? sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC) : sqlite3_bind_null(st, i);
}

int dc_sqlite__history_write(dc_conn *c, const dc_history_row *row, dc_error *err)
{
	sqlite3_stmt *st = NULL;
	char started[32], finished[32];
	int ret, rc;

	if ((ret = dc_sqlite__need_db(c, err)) != 0)
		return ret;
	if (!row->version)
		return dc_sqlite__fail(c, err, DC_EINVAL, NULL, 0, 0,
		                       "tenant '%s': a history row needs a version",
		                       dc_sqlite__tenant_id(c));
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
	ret = dc_sqlite__db_fail(c, err, "deployclaw_history");
out:
	sqlite3_finalize(st);
	dc_sqlite__sync_tx(c);
	return ret;
}
