/*
 * libpq pipeline mode: several queries in one round trip, and the work sent
 * without waiting (an unlock, the session reset, a history write) that the
 * next operation reads first (dc_pg__settle).
 */
#include "pg_internal.h"

/* Reads the answers to an unlock and/or the session reset sent without
 * waiting (dc_pg__unlock_tenant, dc_pg__enter: in pipeline mode, sent_n
 * queries and their sync) but not its pipeline's end. */
void dc_pg__read_unlock(dc_conn *c)
{
	PGresult *res;
	size_t i, n = c->sent_n;

	c->sent_n = 0;
	for (i = 0; i < n; i++)
		while ((res = PQgetResult(c->pg)) != NULL) /* each query's results end with NULL */
			PQclear(res);
	PQclear(PQgetResult(c->pg)); /* PGRES_PIPELINE_SYNC */
}

/* Reads the answer to an unlock sent without waiting and leaves pipeline
 * mode, so that the connection is idle again. Its outcome does not matter:
 * the unlock was fire-and-forget, and a session that broke released its
 * locks. The first try_lock of the next tenant reads it in its own round
 * trip instead. */
void dc_pg__settle_unlock(dc_conn *c)
{
	if (!c->unlock_sent)
		return;
	c->unlock_sent = false;
	if (!c->pg || PQstatus(c->pg) != CONNECTION_OK)
		return;
	dc_pg__read_unlock(c);
	(void)PQexitPipelineMode(c->pg);
}

/* Frees the `n` results pipe_read kept. */
void dc_pg__pipe_clear(PGresult **keep, size_t n)
{
	size_t i;

	for (i = 0; keep && i < n; i++) {
		PQclear(keep[i]);
		keep[i] = NULL;
	}
}

/*
 * Reads the answers to the `n` queries of a pipeline whose sync was sent,
 * then the sync, and leaves pipeline mode. `keep` (may be NULL) has `n`
 * slots: slot i receives the result of query i when it succeeded -- also
 * when another query failed -- and NULL otherwise; the caller frees them
 * (dc_pg__pipe_clear). The first failure fills `err` (with `stmt` for positions
 * when it is query `stmt_i`, and `what` naming the work). A query after a
 * failed one is skipped by the server (PGRES_PIPELINE_ABORTED), which is
 * not a failure of its own.
 */
static int pipe_read(dc_conn *c,
                     size_t n,
                     PGresult **keep,
                     const dc_statement *stmt,
                     size_t stmt_i,
                     const char *what,
                     dc_error *err)
{
	PGresult *res, *failed = NULL;
	size_t i, failed_i = 0;
	int ret = 0;

	for (i = 0; keep && i < n; i++)
		keep[i] = NULL;
	for (i = 0; i < n; i++) {
		res = PQgetResult(c->pg);
		if (!res) {
			ret = dc_pg__lost_fail(c, err);
			goto out;
		}
		if (PQresultStatus(res) == PGRES_FATAL_ERROR && !failed) {
			failed = res;
			failed_i = i;
		} else if (keep && dc_pg__res_ok(res)) {
			keep[i] = res;
		} else {
			PQclear(res);
		}
		/* each query's results end with NULL */
		while ((res = PQgetResult(c->pg)) != NULL)
			PQclear(res);
	}
	res = PQgetResult(c->pg);
	if (!res || PQresultStatus(res) != PGRES_PIPELINE_SYNC) {
		PQclear(res);
		if (!failed)
			ret = dc_pg__lost_fail(c, err);
		goto out;
	}
	PQclear(res);
out:
	(void)PQexitPipelineMode(c->pg);
	if (failed && ret == 0)
		ret = dc_pg__res_fail(c, failed, failed_i == stmt_i ? stmt : NULL, what, err);
	PQclear(failed);
	return ret;
}

/* Reads the answer to a history write sent without waiting (dc_pg__history_write
 * inside a transaction): ends its pipeline with a sync, leaves pipeline mode,
 * and fails as the write would have. */
static int settle_write(dc_conn *c, dc_error *err)
{
	int ret;

	if (!c->write_sent)
		return 0;
	c->write_sent = false;
	if (dc_pg__conn_lost(c))
		return dc_pg__lost_fail(c, err);
	if (!PQpipelineSync(c->pg)) {
		ret = dc_pg__lost_fail(c, err);
		(void)PQexitPipelineMode(c->pg);
		return ret;
	}
	return pipe_read(c, c->write_n, NULL, NULL, SIZE_MAX, "deployclaw_history", err);
}

/* Every operation but enter and lock_tenant starts here: whatever was sent
 * without waiting is read first, and a failed history write fails the
 * operation that follows it. */
int dc_pg__settle(dc_conn *c, dc_error *err)
{
	int ret;

	dc_pg__settle_unlock(c);
	if ((ret = settle_write(c, err)) != 0)
		return ret;
	if (c->lock_deferred) {
		c->lock_deferred = false;
		return dc_pg__lock_now(c, c->lock_timeout_ms, err);
	}
	return 0;
}

/* Sends the `n` queries and the sync that ends them; false: the connection is gone. */
static bool send_all(dc_conn *c, const pipe_q *q, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!PQsendQueryParams(c->pg, q[i].sql, q[i].nparams, NULL, q[i].params, NULL, NULL,
		                       0))
			return false;
	return PQpipelineSync(c->pg) == 1;
}

/* One round trip: sends `n` queries in pipeline mode and waits for all
 * (pipe_read says what is kept, in `keep`'s n slots, and reported). With
 * `behind_unlock`, the connection is still in the pipeline of an unlock sent
 * without waiting (dc_pg__unlock_tenant): the queries go behind it and its
 * answer is read first, one round trip for both. */
int dc_pg__pipe_run(dc_conn *c,
                    const pipe_q *q,
                    size_t n,
                    bool behind_unlock,
                    PGresult **keep,
                    const dc_statement *stmt,
                    size_t stmt_i,
                    dc_error *err)
{
	size_t i;
	int ret;

	for (i = 0; keep && i < n; i++)
		keep[i] = NULL;
	if (!behind_unlock && !PQenterPipelineMode(c->pg))
		return dc_pg__res_fail(c, NULL, NULL, NULL, err);
	if (!send_all(c, q, n)) {
		/* the connection is gone: nothing more can be read from it */
		ret = dc_pg__lost_fail(c, err);
		(void)PQexitPipelineMode(c->pg);
		return ret;
	}
	if (behind_unlock)
		dc_pg__read_unlock(c);
	return pipe_read(c, n, keep, stmt, stmt_i, NULL, err);
}

/* One round trip inside the tenant's transaction: when a history write was
 * sent without waiting, the queries go behind it in its pipeline and its
 * answer is read first -- the check before a commit costs one round trip,
 * not two. */
int dc_pg__pipe_run_tx(dc_conn *c,
                       const pipe_q *q,
                       size_t n,
                       PGresult **keep,
                       const char *what,
                       dc_error *err)
{
	bool behind_write = c->write_sent && !dc_pg__conn_lost(c);
	PGresult *res, *failed = NULL;
	size_t i;
	int ret, rest;

	for (i = 0; keep && i < n; i++)
		keep[i] = NULL;
	if (!behind_write) {
		if ((ret = dc_pg__settle(c, err)) != 0)
			return ret;
		if (!PQenterPipelineMode(c->pg))
			return dc_pg__res_fail(c, NULL, NULL, what, err);
	}
	c->write_sent = false;
	if (!send_all(c, q, n)) {
		/* the connection is gone: nothing more can be read from it */
		ret = dc_pg__lost_fail(c, err);
		(void)PQexitPipelineMode(c->pg);
		return ret;
	}
	/* the write's results first, one per query (c->write_n: more than one with
	 * run_as); after a failed one the rest come back aborted */
	for (i = 0; behind_write && i < c->write_n; i++) {
		if (!(res = PQgetResult(c->pg))) {
			PQclear(failed);
			ret = dc_pg__lost_fail(c, err);
			(void)PQexitPipelineMode(c->pg);
			return ret;
		}
		if (!failed && PQresultStatus(res) == PGRES_FATAL_ERROR)
			failed = res;
		else
			PQclear(res);
		while ((res = PQgetResult(c->pg)) != NULL)
			PQclear(res);
	}
	/* a failed write is the error: what follows it was skipped */
	ret = failed ? dc_pg__res_fail(c, failed, NULL, "deployclaw_history", err) : 0;
	PQclear(failed);
	rest = pipe_read(c, n, keep, NULL, SIZE_MAX, what, err);
	return ret ? ret : rest;
}

/* Runs one internal command without parameters. */
int dc_pg__run_simple(dc_conn *c, const char *sql, const char *what, dc_error *err)
{
	PGresult *res = PQexec(c->pg, sql);
	int ret = dc_pg__res_ok(res) ? 0 : dc_pg__res_fail(c, res, NULL, what, err);

	PQclear(res);
	return ret;
}
