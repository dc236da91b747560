/*
 * Transactions: begin (with the tenant's settings, a deferred lock and the
 * first history read in one round trip), commit (behind a history write sent
 * without waiting) and rollback.
 */
#include "pg_internal.h"

/* Rolls back after a failed begin, so the connection is usable again. */
void dc_pg__abandon_tx(dc_conn *c)
{
	PGresult *res;

	if (dc_pg__conn_lost(c) || !dc_pg__in_tx(c))
		return;
	res = PQexec(c->pg, "ROLLBACK");
	PQclear(res);
}

#define SET_LOCAL_TENANT                                                                    \
	"set_config('lock_timeout', $1, true), set_config('statement_timeout', $2, true), " \
	"set_config('deployclaw.tenant', $3, true)"

/* The search_path the transaction begins with, as the settings leave it (a
 * column of their query, named: the isolation check holds the transaction
 * to it without a round trip of its own). */
#define BEGIN_SEARCH_PATH "current_setting('search_path') AS dc_begin_search_path"

/* Keeps the search_path of begin's settings result `res`; DC_ENOMEM. */
static int keep_search_path(dc_conn *c, const PGresult *res)
{
	int f = res ? PQfnumber(res, "dc_begin_search_path") : -1;

	free(c->begin_search_path);
	c->begin_search_path = NULL;
	if (f < 0 || PQntuples(res) != 1)
		return 0; /* none: the isolation check then refuses to run */
	c->begin_search_path = dc_strdup(PQgetvalue(res, 0, f));
	return c->begin_search_path ? 0 : DC_ENOMEM;
}

/* The tenant's settings (SET LOCAL) as one query of begin's pipeline; with
 * `fold`, a lock deferred by lock_tenant is asked for first in the same
 * query -- a session lock, held past this transaction. The parameters, in
 * order: lock_timeout, statement_timeout, tenant, then (schema model) the
 * search_path, the lock's key with `fold`, and the run_as role. The role is
 * made current last: what follows in the transaction -- the history table,
 * the migration -- runs under it (tenancy.run_as). */
static pipe_q settings_query(const dc_conn *c, bool fold, const char *const *settings)
{
	const dc_engine *e = c->engine;

	if (c->run_as && fold)
		return (pipe_q){ "SELECT pg_try_advisory_lock($5::bigint), " SET_LOCAL_TENANT
			         ", set_config('search_path', $4, true), "
			         "set_config('role', $6, true), " BEGIN_SEARCH_PATH,
			         6, settings };
	if (c->run_as)
		return (pipe_q){ "SELECT " SET_LOCAL_TENANT
			         ", set_config('search_path', $4, true), "
			         "set_config('role', $5, true), " BEGIN_SEARCH_PATH,
			         5, settings };
	if (fold && e->model == DC_TENANCY_SCHEMA)
		return (pipe_q){ "SELECT pg_try_advisory_lock($5::bigint), " SET_LOCAL_TENANT
			         ", set_config('search_path', $4, true), " BEGIN_SEARCH_PATH,
			         5, settings };
	if (fold)
		return (pipe_q){ "SELECT pg_try_advisory_lock($4::bigint), " SET_LOCAL_TENANT
			         ", " DC_PG_PATH_WITHOUT_OWN_SCHEMA("true") ", " BEGIN_SEARCH_PATH,
			         4, settings };
	if (e->model == DC_TENANCY_SCHEMA)
		return (pipe_q){ "SELECT " SET_LOCAL_TENANT
			         ", set_config('search_path', $4, true), " BEGIN_SEARCH_PATH,
			         4, settings };
	return (pipe_q){ "SELECT " SET_LOCAL_TENANT
		         ", " DC_PG_PATH_WITHOUT_OWN_SCHEMA("true") ", " BEGIN_SEARCH_PATH,
		         3, settings };
}

/*
 * BEGIN and the tenant's settings, in one round trip. The first begin after
 * enter also creates the history table when missing (and, in the database
 * model, the tenant database's state table) and reads the history, which
 * history_read then returns without asking again. A lock deferred by
 * lock_tenant is asked for in the same round trip (pg_try_advisory_lock
 * beside the settings); when another session holds it, the transaction is
 * rolled back -- nothing of it ran under the lock -- and the lock is waited
 * for as lock_tenant would, then the begin runs again.
 */
int dc_pg__begin(dc_conn *c, dc_error *err)
{
	dc_engine *e = c->engine;
	dc_strbuf create = DC_STRBUF_INIT, select = DC_STRBUF_INIT;
	const char *settings[6];
	char key[24];
	pipe_q q[6];
	PGresult *kept[6], *rows = NULL;
	size_t n = 0, ns, keep = SIZE_MAX, lock_i = SIZE_MAX, settings_i;
	bool was_locked = c->locked, first = !c->begun_once, fold = c->lock_deferred;
	bool err_empty = !err || err->code == 0;
	bool behind_unlock = c->unlock_sent && c->pg && PQstatus(c->pg) == CONNECTION_OK;
	int64_t lock_timeout_ms = c->lock_timeout_ms;
	int ret;

	if (!c->tenant)
		return dc_pg__conn_fail(c, err, DC_EINVAL, NULL, NULL, 0, 0,
		                        "no tenant entered on this connection");
	/* the lock is taken below, not by settle; the previous tenant's unlock
	 * (sent only outside a transaction) is read with this begin's answers,
	 * or by settle when this begin fails before it sends them */
	c->lock_deferred = false;
	if (behind_unlock)
		c->unlock_sent = false;
	if ((ret = dc_pg__settle(c, err)) != 0)
		goto out;
	if (dc_pg__conn_lost(c)) {
		/* reconnect; a session lock did not survive the old session */
		if (behind_unlock)
			(void)PQexitPipelineMode(c->pg);
		behind_unlock = false;
		dc_pg__drop_connection(c);
		if ((ret = dc_pg__ensure_connection(c, err)) != 0)
			return ret;
		first = true;
		if (was_locked && (ret = dc_pg__lock_now(c, 0, err)) != 0)
			return ret;
	}
	if (!behind_unlock && dc_pg__in_tx(c))
		return dc_pg__conn_fail(c, err, DC_EINVAL, NULL, NULL, 0, 0,
		                        "tenant '%s': a transaction is already open",
		                        dc_pg__tenant_id(c));
	if (first && (ret = dc_pg__ensure_state(c, err)) != 0)
		goto out;
	ns = 0;
	settings[ns++] = e->lock_timeout;
	settings[ns++] = e->statement_timeout;
	settings[ns++] = c->tenant->id;
	if (e->model == DC_TENANCY_SCHEMA)
		settings[ns++] = c->search_path;
	if (fold)
		settings[ns++] = key;
	if (c->run_as)
		settings[ns++] = c->run_as;
	c->lock_key = dc_pg__tenant_key(e->shard, c->tenant->id);
	dc_pg__key_text(key, c->lock_key);
	q[n++] = (pipe_q){ "BEGIN", 0, NULL };
	if (fold)
		lock_i = n;
	settings_i = n;
	q[n++] = settings_query(c, fold, settings);
	if (first) {
		if (dc_pg__history_sql(c, &create, "CREATE TABLE IF NOT EXISTS ",
		                       " " HISTORY_COLUMNS) ||
		    dc_pg__history_sql(c, &select, "SELECT " HISTORY_FIELDS " FROM ",
		                       " ORDER BY written_at, version")) {
			ret = dc_pg__oom(c, err);
			goto out;
		}
		if (e->model == DC_TENANCY_DATABASE)
			q[n++] = (pipe_q){ STATE_CREATE, 0, NULL };
		q[n++] = (pipe_q){ create.buf, 0, NULL };
		keep = n;
		q[n++] = (pipe_q){ select.buf, 0, NULL };
	}
	ret = dc_pg__pipe_run(c, q, n, behind_unlock, kept, NULL, 0, err);
	behind_unlock = false; /* read */
	if (keep != SIZE_MAX) {
		rows = kept[keep];
		kept[keep] = NULL;
	}
	if (fold) {
		PGresult *lr = kept[lock_i];

		if (lr && PQntuples(lr) == 1 && strcmp(PQgetvalue(lr, 0, 0), "f") == 0) {
			/* held by another session: undo what ran without the lock,
			 * wait for it, and begin again holding it */
			dc_pg__pipe_clear(kept, n);
			PQclear(rows);
			rows = NULL;
			dc_pg__abandon_tx(c);
			if (err_empty && err)
				dc_error_clear(err);
			if ((ret = dc_pg__lock_now(c, lock_timeout_ms, err)) == 0)
				ret = dc_pg__begin(c, err);
			goto out;
		}
		/* granted -- or the statement failed after the lock was taken,
		 * which a session lock survives: unlock_tenant releases it
		 * either way (an unlock of a lock not held only warns) */
		c->locked = true;
	}
	if (ret == 0 && keep_search_path(c, kept[settings_i]) != 0)
		ret = dc_pg__oom(c, err);
	dc_pg__pipe_clear(kept, n);
	if (ret != 0) {
		dc_pg__abandon_tx(c);
		goto out;
	}
	c->begun_once = true;
	if (first) {
		dc_pg__drop_history_cache(c);
		c->history = rows;
		c->history_ok = true;
		rows = NULL;
	}
out:
	if (behind_unlock)
		c->unlock_sent = true; /* not read: settle reads it */
	PQclear(rows);
	dc_strbuf_release(&create);
	dc_strbuf_release(&select);
	return ret;
}

/*
 * COMMIT queued behind the history write sent without waiting: one round
 * trip for both. A failed write aborts the pipeline (the COMMIT is skipped,
 * the transaction stays open in error for the caller's rollback) and is
 * the error reported. Returns the COMMIT's result, or NULL with `err` set.
 */
static PGresult *commit_behind_write(dc_conn *c, int *ret, dc_error *err)
{
	PGresult *res, *failed = NULL, *commit = NULL;

	c->write_sent = false;
	if (!PQsendQueryParams(c->pg, "COMMIT", 0, NULL, NULL, NULL, NULL, 0) ||
	    !PQpipelineSync(c->pg)) {
		*ret = dc_pg__lost_fail(c, err);
		(void)PQexitPipelineMode(c->pg);
		return NULL;
	}
	/* the write's results (one per query: c->write_n), then the COMMIT's
	 * (aborted after a failed write) */
	for (size_t i = 0; i <= c->write_n; i++) {
		if (!(res = PQgetResult(c->pg))) {
			*ret = dc_pg__lost_fail(c, err);
			break;
		}
		if (i < c->write_n && !failed && !dc_pg__res_ok(res))
			failed = res;
		else if (i == c->write_n && !failed)
			commit = res;
		else
			PQclear(res);
		while ((res = PQgetResult(c->pg)) != NULL)
			PQclear(res);
	}
	PQclear(PQgetResult(c->pg)); /* PGRES_PIPELINE_SYNC */
	(void)PQexitPipelineMode(c->pg);
	if (failed && *ret == 0)
		*ret = dc_pg__res_fail(c, failed, NULL, "deployclaw_history", err);
	PQclear(failed);
	if (*ret != 0) {
		PQclear(commit);
		return NULL;
	}
	return commit;
}

int dc_pg__commit(dc_conn *c, dc_error *err)
{
	PGresult *res;
	int ret = 0;

	if (c->write_sent && !dc_pg__conn_lost(c)) {
		dc_pg__settle_unlock(c);
		dc_pg__drop_history_cache(c);
		if (!(res = commit_behind_write(c, &ret, err)))
			return ret;
	} else {
		if ((ret = dc_pg__settle(c, err)) != 0)
			return ret;
		if ((ret = dc_pg__need_tenant(c, err)) != 0)
			return ret;
		if (!dc_pg__in_tx(c))
			return dc_pg__conn_fail(
			        c, err, DC_EDB, NULL, NULL, 0, 0,
			        "tenant '%s' (shard '%s'): no transaction to commit",
			        dc_pg__tenant_id(c), c->engine->shard);
		dc_pg__drop_history_cache(c);
		res = PQexec(c->pg, "COMMIT");
	}
	if (!dc_pg__res_ok(res))
		ret = dc_pg__res_fail(c, res, NULL, "commit", err);
	else if (strcmp(PQcmdStatus(res), "ROLLBACK") == 0) {
		/* COMMIT of a failed transaction rolls back without an error */
		c->history_ok = false;
		ret = dc_pg__conn_fail(
		        c, err, DC_EDB, NULL, NULL, 0, 0,
		        "tenant '%s' (shard '%s'): the transaction failed earlier and was rolled back",
		        dc_pg__tenant_id(c), c->engine->shard);
	}
	PQclear(res);
	return ret;
}

int dc_pg__rollback(dc_conn *c, dc_error *err)
{
	int ret;

	(void)dc_pg__settle(c, NULL); /* a failed history write is rolled back with the rest */

	dc_pg__drop_history_cache(c);
	c->history_ok = false; /* the transaction may have created the table */
	if (!c->tenant || dc_pg__conn_lost(c) || !dc_pg__in_tx(c))
		return 0; /* nothing open: a lost session was rolled back by the server */
	ret = dc_pg__run_simple(c, "ROLLBACK", "rollback", err);
	return ret;
}
