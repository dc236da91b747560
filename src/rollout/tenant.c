/*
 * tenant.c — one tenant: its lock, its transaction, the phases, verify
 * assertions and history rows of its migrations, the per-tenant gates, and
 * on failure the rollback and the downs of what had to commit on its own;
 * bounded retries of transient failures.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "gate/gate_internal.h"
#include "rollout_internal.h"
#include "util/util.h"

/* A backfill phase repeats its `up` until it touches no row; this bounds it. */
#define MAX_BATCHES 1000000

/* A phase that is done for a tenant in this run (for compensation). */
typedef struct done_step {
	const dc_migration *m;
	size_t phase;
} done_step;

/*
 * Runs a block of SQL. A statement that cannot run inside a transaction
 * (only downs can hold one in a transactional phase: ups are split, see
 * derive_set) commits what came before, runs alone, and a new transaction
 * begins after it. `in_tx` may be NULL when the caller holds none.
 */
static int run_sql(dc_rollout__run *r,
                   dc_conn *conn,
                   bool *in_tx,
                   const dc_sql *sql,
                   int64_t batch,
                   dc_error *err)
{
	size_t i, round;
	int64_t rows, total;
	int rc;

	for (round = 0; round < MAX_BATCHES; round++) {
		total = 0;
		for (i = 0; i < sql->nstmts; i++) {
			bool alone = in_tx && *in_tx &&
			             dc_rollout__is_autocommit(&r->fleet, &sql->stmts[i]);

			rows = 0;
			if (alone && (rc = r->fleet.ops->commit(conn, err)) != 0)
				return rc;
			if (alone)
				*in_tx = false;
			if ((rc = r->fleet.ops->exec(conn, &sql->stmts[i], &rows, err)) != 0)
				return rc;
			if (alone && (rc = r->fleet.ops->begin(conn, err)) != 0)
				return rc;
			if (alone)
				*in_tx = true;
			total += rows;
		}
		if (batch <= 0 || total == 0)
			return 0;
		if (r->opts->stop && *r->opts->stop)
			return dc_error_set(err, DC_EINTERRUPTED,
			                    "interrupted during a batched phase");
	}
	return dc_error_set_at(err, DC_ETENANT, sql->file, sql->line, sql->col,
	                       "batched phase still touched rows after %d batches", MAX_BATCHES);
}

static int verify(dc_rollout__run *r, dc_conn *conn, const dc_migration *m, dc_error *err)
{
	size_t i, k;
	bool ok;
	int rc;

	for (i = 0; i < m->nverify; i++) {
		for (k = 0; k < m->verify[i].nstmts; k++) {
			const dc_statement *st = &m->verify[i].stmts[k];

			ok = false;
			if ((rc = r->fleet.ops->query_bool(conn, st, &ok, err)) != 0)
				return rc;
			if (!ok)
				return dc_error_set_at(err, DC_ETENANT, st->file, st->line, st->col,
				                       "verify assertion of '%s' is false: %.300s",
				                       m->version, st->sql);
		}
	}
	return 0;
}

static int write_history(dc_rollout__run *r,
                         dc_conn *conn,
                         const dc_migration *m,
                         dc_history_status status,
                         const char *phase,
                         int64_t started,
                         dc_error *err)
{
	dc_history_row row;
	int64_t now = dc_time_now_ms();

	row.version = m->version;
	row.name = m->name;
	row.checksum = (char *)(uintptr_t)m->checksum;
	row.phase = (char *)(uintptr_t)(phase ? phase : "");
	row.status = status;
	row.started_at_ms = started;
	row.finished_at_ms = now;
	row.duration_ms = now - started;
	row.run_id = r->rep->run_id;
	row.actor = r->actor;
	return r->fleet.ops->history_write(conn, &row, err);
}

/* Runs the downs of committed steps, newest first, and records the migrations as rolled back. */
static int compensate(dc_rollout__run *r,
                      dc_conn *conn,
                      const done_step *done,
                      size_t n,
                      dc_error *err)
{
	bool in_tx = false;
	size_t i;
	int rc = 0;
	int64_t now = dc_time_now_ms();

	for (i = n; i-- > 0;) {
		const dc_phase *p = &done[i].m->phases[done[i].phase];

		if (!p->down.text)
			continue;
		if (p->transactional && !in_tx) {
			if ((rc = r->fleet.ops->begin(conn, err)) != 0)
				goto out;
			in_tx = true;
		} else if (!p->transactional && in_tx) {
			if ((rc = r->fleet.ops->commit(conn, err)) != 0)
				goto out;
			in_tx = false;
		}
		if ((rc = run_sql(r, conn, &in_tx, &p->down, 0, err)) != 0)
			goto out;
	}
	/* Steps are in order, so a migration's first step here is the first phase this run
	 * did: phases before it (a resumed partial migration) stay applied. */
	for (i = 0; i < n; i++) {
		const dc_migration *m = done[i].m;
		size_t first = done[i].phase;

		if (i > 0 && done[i - 1].m == m)
			continue;
		rc = first == 0 ? write_history(r, conn, m, DC_HISTORY_ROLLED_BACK, "", now, err)
		                : write_history(r, conn, m, DC_HISTORY_PARTIAL,
		                                m->phases[first - 1].name, now, err);
		if (rc)
			goto out;
	}
	if (in_tx) {
		rc = r->fleet.ops->commit(conn, err);
		in_tx = false;
	}
out:
	if (in_tx)
		r->fleet.ops->rollback(conn, NULL);
	return rc;
}

typedef struct tenant_run {
	dc_rollout__run *r;
	dc_conn *conn;
	bool in_tx;
	done_step *done;
	size_t ndone;
	size_t ncommitted; /* done[0..ncommitted) are durable */
} tenant_run;

static int push_done(tenant_run *t, const dc_migration *m, size_t phase, dc_error *err)
{
	done_step *d = dc_realloc_array(t->done, t->ndone + 1, sizeof(*d));

	if (!d)
		return dc_error_set(err, DC_ENOMEM, "out of memory");
	t->done = d;
	d[t->ndone].m = m;
	d[t->ndone].phase = phase;
	t->ndone++;
	return 0;
}

static int ensure_tx(tenant_run *t, bool want, dc_error *err)
{
	int rc = 0;

	if (want && !t->in_tx) {
		rc = t->r->fleet.ops->begin(t->conn, err);
		t->in_tx = rc == 0;
	} else if (!want && t->in_tx) {
		rc = t->r->fleet.ops->commit(t->conn, err);
		t->in_tx = false;
		if (rc == 0)
			t->ncommitted = t->ndone;
	}
	return rc;
}

static int apply_todo(tenant_run *t, const dc_rollout__todo *todo, dc_error *err)
{
	dc_rollout__run *r = t->r;
	size_t mi, pi;
	int rc;

	for (mi = 0; mi < todo->n; mi++) {
		const dc_migration *m = todo->migs[mi];
		size_t start = mi == 0 ? todo->resume_phase : 0;
		int64_t started = dc_time_now_ms();

		for (pi = start; pi < m->nphases; pi++) {
			const dc_phase *p = &m->phases[pi];

			if (!p->transactional) {
				/* progress of this migration so far commits with its changes */
				if (t->in_tx && pi > start &&
				    (rc = write_history(r, t->conn, m, DC_HISTORY_PARTIAL,
				                        m->phases[pi - 1].name, started, err)) != 0)
					return rc;
				if ((rc = ensure_tx(t, false, err)) != 0)
					return rc;
				if ((rc = run_sql(r, t->conn, &t->in_tx, &p->up, p->batch_rows,
				                  err)) != 0)
					return rc;
				if ((rc = push_done(t, m, pi, err)) != 0)
					return rc;
				/* a non-transactional phase records its own progress */
				if ((rc = write_history(r, t->conn, m, DC_HISTORY_PARTIAL, p->name,
				                        started, err)) != 0)
					return rc;
				t->ncommitted = t->ndone;
				continue;
			}
			if ((rc = ensure_tx(t, true, err)) != 0)
				return rc;
			if ((rc = run_sql(r, t->conn, &t->in_tx, &p->up, p->batch_rows, err)) != 0)
				return rc;
			if ((rc = push_done(t, m, pi, err)) != 0)
				return rc;
		}
		if ((rc = verify(r, t->conn, m, err)) != 0)
			return rc;
		if ((rc = write_history(r, t->conn, m, DC_HISTORY_APPLIED,
		                        m->nphases ? m->phases[m->nphases - 1].name : "", started,
		                        err)) != 0)
			return rc;
		if (!t->in_tx)
			t->ncommitted = t->ndone;
	}
	return 0;
}

static int rollback_todo(tenant_run *t,
                         const dc_rollout__todo *todo,
                         const dc_history_row *rows,
                         size_t nrows,
                         dc_error *err)
{
	dc_rollout__run *r = t->r;
	size_t mi, pi, i, last;
	int rc;

	for (mi = 0; mi < todo->n; mi++) {
		const dc_migration *m = todo->migs[mi];
		int64_t started = dc_time_now_ms();

		/* a partial row says how far the migration got: undo only that */
		last = m->nphases;
		for (i = 0; i < nrows; i++)
			if (strcmp(rows[i].version, m->version) == 0 &&
			    rows[i].status == DC_HISTORY_PARTIAL)
				for (last = 0; last < m->nphases; last++)
					if (rows[i].phase &&
					    strcmp(m->phases[last].name, rows[i].phase) == 0) {
						last++;
						break;
					}
		for (pi = last; pi-- > 0;) {
			const dc_phase *p = &m->phases[pi];

			if (!p->down.text)
				continue;
			if (!p->transactional) {
				if (t->in_tx &&
				    (rc = write_history(r, t->conn, m, DC_HISTORY_PARTIAL, p->name,
				                        started, err)) != 0)
					return rc;
				if ((rc = ensure_tx(t, false, err)) != 0)
					return rc;
				if ((rc = run_sql(r, t->conn, &t->in_tx, &p->down, 0, err)) != 0)
					return rc;
				if ((rc = write_history(
				             r, t->conn, m,
				             pi ? DC_HISTORY_PARTIAL : DC_HISTORY_ROLLED_BACK,
				             pi ? m->phases[pi - 1].name : "", started, err)) != 0)
					return rc;
				continue;
			}
			if ((rc = ensure_tx(t, true, err)) != 0)
				return rc;
			if ((rc = run_sql(r, t->conn, &t->in_tx, &p->down, 0, err)) != 0)
				return rc;
		}
		if ((rc = ensure_tx(t, true, err)) != 0)
			return rc;
		if ((rc = write_history(r, t->conn, m, DC_HISTORY_ROLLED_BACK, "", started, err)) !=
		    0)
			return rc;
	}
	return 0;
}

/* Counts the isolation family's verdicts on a tenant (the run's closing entry
 * says how many tenants they checked and refused). */
static int on_tenant_gate(const dc_gate_result *res, void *ctx)
{
	dc_rollout__run *r = ctx;

	if (dc_gate__is_isolation(res->gate)) {
		if (res->verdict == DC_GATE_REFUSE)
			atomic_fetch_add(&r->iso_refused, 1);
		else
			atomic_fetch_add(&r->iso_checked, 1);
	}
	return 0;
}

static int tenant_gates(dc_rollout__run *r, dc_conn *conn, const dc_tenant *tenant, dc_error *err)
{
	dc_gate_ctx ctx;

	memset(&ctx, 0, sizeof(ctx));
	ctx.cfg = r->fleet.cfg;
	ctx.set = r->fleet.set;
	ctx.tenant = tenant;
	ctx.conn = conn;
	ctx.ops = r->fleet.ops;
	ctx.wave = r->queue.wave;
	ctx.stop = r->opts->stop;
	return dc_gate_registry_run(r->gates, DC_GATE_AFTER_TENANT, &ctx, on_tenant_gate, r, NULL,
	                            err);
}

/* Lock timeouts, deadlocks, serialization failures and lost connections are worth
 * another try; nothing else is. */
static bool transient(const dc_error *e)
{
	return strcmp(e->sqlstate, "55P03") == 0 || strcmp(e->sqlstate, "40P01") == 0 ||
	       strcmp(e->sqlstate, "40001") == 0 || strncmp(e->sqlstate, "08", 2) == 0;
}

/* Names the tenant the worker expects to take next to its connection, which opens it
 * in the background. */
static void prefetch_next(dc_rollout__run *r, dc_rollout__worker *w)
{
	size_t nt = w->next_ti;
	dc_conn *nc = NULL;
	dc_error ignored = { 0 };

	w->next_ti = SIZE_MAX;
	if (dc_rollout__worker_conn(w, r->fleet.tenant_engine[nt], &nc, &ignored) == 0)
		r->fleet.ops->prefetch(nc, &r->rep->tenants[nt]);
}

/* Reads the history under the lock, in the transaction (another run may have moved
 * this tenant since planning, and this read is the truth) and plans from it. A drifted
 * or (not allowed) out-of-order tenant fails. */
static int replan(tenant_run *t,
                  dc_rollout__todo *todo,
                  dc_history_row **rows,
                  size_t *nrows,
                  dc_tenant_outcome *o,
                  dc_error *err)
{
	dc_rollout__run *r = t->r;
	int rc;

	if ((rc = ensure_tx(t, true, err)) != 0)
		return rc;
	if ((rc = r->fleet.ops->history_ensure(t->conn, err)) != 0 ||
	    (rc = r->fleet.ops->history_read(t->conn, rows, nrows, err)) != 0)
		return rc;
	rc = dc_rollout__todo_compute(todo, r->fleet.set, *rows, *nrows, r->opts->direction,
	                              r->fleet.to);
	if (rc)
		return dc_error_set(err, rc == DC_ENOMEM ? rc : DC_ETENANT, "%s",
		                    todo->problem[0] ? todo->problem : "cannot plan this tenant");
	snprintf(o->from, sizeof(o->from), "%s", todo->from);
	if (todo->drift)
		return dc_error_set(err, DC_ETENANT, "drift: %s", todo->problem);
	if (todo->out_of_order && !r->opts->allow_out_of_order &&
	    !r->fleet.cfg->gates.allow_out_of_order)
		return dc_error_set(err, DC_ETENANT, "out of order: %s", todo->problem);
	return 0;
}

/* One attempt at a tenant. `*retry` says whether a failure may be retried: transient,
 * and nothing of it committed. */
static void attempt_tenant(dc_rollout__run *r,
                           dc_rollout__worker *w,
                           size_t ti,
                           dc_tenant_outcome *o,
                           dc_error *err,
                           bool *retry)
{
	const dc_tenant *tenant = &r->rep->tenants[ti];
	tenant_run t;
	dc_history_row *rows = NULL;
	dc_rollout__todo todo;
	dc_strbuf backup = DC_STRBUF_INIT;
	size_t nrows = 0;
	bool locked = false;
	int rc;

	memset(&t, 0, sizeof(t));
	memset(&todo, 0, sizeof(todo));
	t.r = r;
	o->attempts = 1;
	snprintf(o->from, sizeof(o->from), "%s", r->fleet.todos[ti].from);
	snprintf(o->to, sizeof(o->to), "%s", r->fleet.todos[ti].from);
	if ((rc = dc_rollout__worker_conn(w, r->fleet.tenant_engine[ti], &t.conn, err)) != 0)
		goto out;
	if ((rc = r->fleet.ops->enter(t.conn, tenant, err)) != 0)
		goto out;
	/* the next tenant opens in the background while this one runs (after
	 * the enter, which takes what an earlier hint opened) */
	if (w->next_ti != SIZE_MAX)
		prefetch_next(r, w);
	if ((rc = r->fleet.ops->lock_tenant(t.conn, r->fleet.cfg->gates.lock_timeout_ms, err)) != 0)
		goto out;
	locked = true;
	if (r->fleet.cfg->rollout.backup && r->fleet.ops->backup && r->fleet.todos[ti].n > 0) {
		dc_strbuf_addf(&backup, "%s.deployclaw-backup", tenant->target);
		if (dc_strbuf_error(&backup)) {
			rc = dc_error_set(err, DC_ENOMEM, "out of memory");
			goto out;
		}
		if ((rc = r->fleet.ops->backup(t.conn, backup.buf, err)) != 0)
			goto out;
	}
	if ((rc = replan(&t, &todo, &rows, &nrows, o, err)) != 0)
		goto out;
	if (todo.n == 0) {
		o->status = DC_TENANT_SKIPPED;
		snprintf(o->to, sizeof(o->to), "%s", todo.from);
		/* end the transaction of the history read: the connection moves on
		 * to the next tenant (pg refuses to enter one with a transaction open) */
		r->fleet.ops->rollback(t.conn, NULL);
		t.in_tx = false;
		goto out;
	}
	if (r->opts->direction == DC_ROLLOUT_APPLY)
		rc = apply_todo(&t, &todo, err);
	else
		rc = rollback_todo(&t, &todo, rows, nrows, err);
	if (rc == 0)
		rc = tenant_gates(r, t.conn, tenant, err);
	if (rc == 0)
		rc = ensure_tx(&t, false, err);
	if (rc == 0) {
		o->status = DC_TENANT_SUCCEEDED;
		o->migrations = (int)todo.n;
		snprintf(o->to, sizeof(o->to), "%s", todo.to);
		if (backup.len)
			unlink(backup.buf);
	}
out:
	if (rc) {
		o->status = DC_TENANT_FAILED;
		*retry = t.ncommitted == 0 && transient(err);
		if (t.in_tx)
			r->fleet.ops->rollback(t.conn, NULL);
		t.in_tx = false;
		if (t.ncommitted > 0) {
			dc_error cerr = { 0 };

			if (compensate(r, t.conn, t.done, t.ncommitted, &cerr) != 0) {
				size_t len = strlen(err->message);

				snprintf(err->message + len, sizeof(err->message) - len,
				         "; undoing its committed phases failed too: %.300s",
				         cerr.message);
			}
		}
		if (!err->tenant[0])
			snprintf(err->tenant, sizeof(err->tenant), "%s", tenant->id);
		if (!err->shard[0] && tenant->shard)
			snprintf(err->shard, sizeof(err->shard), "%s", tenant->shard);
	}
	if (locked)
		r->fleet.ops->unlock_tenant(t.conn, NULL);
	free(t.done);
	dc_rollout__todo_release(&todo);
	dc_history_rows_free(rows, nrows);
	dc_strbuf_release(&backup);
}

/* A failed tenant's error when there was no memory for its own. */
static const dc_error no_memory_error = { DC_ENOMEM, "out of memory", "", 0, 0, "", "", "" };

void dc_rollout__outcome_release(dc_tenant_outcome *o)
{
	if (o->error != &no_memory_error)
		free((void *)(uintptr_t)o->error);
	o->error = NULL;
}

/* Moves a failed tenant's error from the worker to the heap, for its outcome. */
static void keep_error(dc_rollout__worker *w, dc_tenant_outcome *o)
{
	dc_error *e = malloc(sizeof(*e));

	if (e)
		*e = w->err;
	o->error = e ? e : &no_memory_error;
	dc_error_clear(&w->err);
}

/* A tenant, with bounded retries: exponential backoff from 100 ms (at most 5 s) plus up to
 * half as much jitter, so retrying workers do not collide again. */
void dc_rollout__run_tenant(dc_rollout__run *r,
                            dc_rollout__worker *w,
                            size_t ti,
                            dc_tenant_outcome *o)
{
	dc_error *err = &w->err;
	int64_t start = dc_time_mono_ms();
	int attempt;

	for (attempt = 1;; attempt++) {
		bool retry = false;
		int64_t backoff;

		o->status = DC_TENANT_SKIPPED;
		attempt_tenant(r, w, ti, o, err, &retry);
		o->attempts = attempt;
		if (o->status != DC_TENANT_FAILED || !retry ||
		    attempt > r->fleet.cfg->rollout.retries ||
		    dc_rollout__stop_requested(&r->fleet))
			break;
		backoff = attempt < 7 ? (int64_t)100 << (attempt - 1) : 5000;
		if (backoff > 5000)
			backoff = 5000;
		backoff += (int64_t)randombytes_uniform((uint32_t)(backoff / 2 + 1));
		dc_rollout__batch_queue(&r->batch, "tenant_retry",
		                        json_pack("{s:s, s:i, s:s, s:s, s:I}", "tenant",
		                                  r->rep->tenants[ti].id, "attempt", attempt,
		                                  "sqlstate", err->sqlstate, "error", err->message,
		                                  "backoff_ms", (json_int_t)backoff));
		dc_error_clear(err);
		dc_sleep_ms(backoff, r->opts->stop);
	}
	if (o->status == DC_TENANT_FAILED)
		keep_error(w, o);
	else if (err->code)
		dc_error_clear(err); /* set by a step that recovered: not the next tenant's */
	o->duration_ms = dc_time_mono_ms() - start;
}
