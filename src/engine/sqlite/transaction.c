/*
 * The run's transactions, and deployclaw's own statements run in them.
 */
#include <stdbool.h>

#include <sqlite3.h>

#include <deployclaw/engine.h>

#include "sqlite_internal.h"
#include "util/util.h"

/* Records whether a transaction is open. When one ended by itself (SQLite
 * rolls back on some errors, e.g. a failed COMMIT or SQLITE_FULL), the
 * history table may have vanished with it: ask the file next time. */
void dc_sqlite__sync_tx(dc_conn *c)
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

int dc_sqlite__run_internal(dc_conn *c, const char *sql, dc_error *err)
{
	int rc = sqlite3_exec(c->db, sql, NULL, NULL, NULL);

	dc_sqlite__sync_tx(c);
	if (rc == SQLITE_OK)
		return 0;
	if (rc == SQLITE_BUSY) {
		char waited[32];

		dc_duration_format(waited, sizeof(waited), c->engine->busy_ms);
		return dc_sqlite__fail(
		        c, err, DC_ELOCKED, NULL, 0, 0,
		        "tenant '%s': the database is locked by another connection; waited %s",
		        dc_sqlite__tenant_id(c), waited);
	}
	return dc_sqlite__db_fail(c, err, NULL);
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
int dc_sqlite__schema_current(dc_conn *c, dc_error *err)
{
	int ret;

	if (!c->preloaded)
		return 0;
	if (c->preload_version >= 0 && dc_sqlite__data_version(c->db) == c->preload_version) {
		c->preloaded = false;
		return 0;
	}
	/* kept on failure: the next transaction checks again */
	if ((ret = dc_sqlite__run_internal(c, "SELECT 1 FROM main.sqlite_schema WHERE 0", err)) ==
	    0)
		c->preloaded = false;
	return ret;
}

int dc_sqlite__begin(dc_conn *c, dc_error *err)
{
	int ret;

	if ((ret = dc_sqlite__need_db(c, err)) != 0)
		return ret;
	if (!sqlite3_get_autocommit(c->db))
		return dc_sqlite__fail(c, err, DC_EINVAL, NULL, 0, 0,
		                       "tenant '%s': a transaction is already open",
		                       dc_sqlite__tenant_id(c));
	/* What enter saw of the history table predates the tenant lock: another
	 * process may have migrated the tenant since. Ask the file again inside
	 * the transaction, where nobody else can change it (else a stale
	 * "missing" becomes "empty" and the tenant is applied a second time). */
	c->history = HISTORY_UNKNOWN;
	if ((ret = dc_sqlite__run_internal(c, "BEGIN IMMEDIATE", err)) != 0)
		return ret;
	if ((ret = dc_sqlite__schema_current(c, err)) != 0) {
		sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
		dc_sqlite__sync_tx(c);
		return ret;
	}
	c->txs++;
	/* the prefetched graph serves this transaction if the file is still
	 * as it was read (whatever read transactions ran in between) */
	if (c->graph_pending) {
		c->graph_valid =
		        c->graph_version >= 0 && dc_sqlite__data_version(c->db) == c->graph_version;
		c->graph_pending = false;
	}
	return 0;
}

int dc_sqlite__commit(dc_conn *c, dc_error *err)
{
	history_state state;
	int ret;

	if ((ret = dc_sqlite__need_db(c, err)) != 0)
		return ret;
	if (sqlite3_get_autocommit(c->db)) {
		dc_sqlite__sync_tx(c);
		return dc_sqlite__fail(c, err, DC_EDB, NULL, 0, 0,
		                       "tenant '%s': no transaction to commit (it was rolled back)",
		                       dc_sqlite__tenant_id(c));
	}
	state = c->history;
	ret = dc_sqlite__run_internal(c, "COMMIT", err);
	if (ret == 0)
		c->history = state; /* committed: what the transaction made is there */
	return ret;
}

int dc_sqlite__rollback(dc_conn *c, dc_error *err)
{
	int ret;

	if ((ret = dc_sqlite__need_db(c, err)) != 0)
		return ret;
	/* The transaction may have created the history table. */
	c->history = HISTORY_UNKNOWN;
	c->graph_valid = false;
	c->graph_pending = false;
	if (sqlite3_get_autocommit(c->db)) {
		c->in_tx = false; /* SQLite already rolled it back (or none was open) */
		return 0;
	}
	return dc_sqlite__run_internal(c, "ROLLBACK", err);
}
