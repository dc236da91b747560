/*
 * waves.c — the canary and the waves: each is recorded, then dispatched to
 * the workers (a tenant whose shard has room, the one a worker's connection
 * is already opening first), and stops dispatching past its failure budget.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rollout_internal.h"
#include "util/util.h"

void dc_rollout__queue_init(dc_rollout__queue *q)
{
	memset(q, 0, sizeof(*q));
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->cv, NULL);
}

void dc_rollout__queue_release(dc_rollout__queue *q)
{
	free(q->slots);
	free(q->taken);
	free(q->hinted);
	free(q->shard_inflight);
	pthread_mutex_destroy(&q->mu);
	pthread_cond_destroy(&q->cv);
}

/* Under r->queue.mu: whether queue slot `i`'s shard has room for one more tenant. */
static bool shard_room(const dc_rollout__run *r, size_t i)
{
	size_t e = r->fleet.tenant_engine[r->queue.slots[i]];

	return r->fleet.shard_budget[e] == 0 ||
	       r->queue.shard_inflight[e] < r->fleet.shard_budget[e];
}

static size_t claim(dc_rollout__run *r, size_t i)
{
	r->queue.taken[i] = true;
	r->queue.hinted[i] = false;
	r->queue.shard_inflight[r->fleet.tenant_engine[r->queue.slots[i]]]++;
	return i;
}

/*
 * Under r->queue.mu: the next tenant for worker `w` whose shard has room; SIZE_MAX
 * when none now. First the one w's connection is opening (hinted to it when
 * it took its last tenant), then the first free one no other worker's
 * connection is opening; another worker's only when nothing else is left.
 */
static size_t take_next(dc_rollout__run *r, dc_rollout__worker *w, bool *exhausted)
{
	size_t i, pass;

	*exhausted = true;
	while (r->queue.head < r->queue.len && r->queue.taken[r->queue.head])
		r->queue.head++;
	if (w->hint != SIZE_MAX) {
		i = w->hint;
		w->hint = SIZE_MAX;
		r->queue.hinted[i] = false;
		if (!r->queue.taken[i] && shard_room(r, i)) {
			*exhausted = false;
			return claim(r, i);
		}
	}
	for (pass = 0; pass < 2; pass++) {
		for (i = r->queue.head; i < r->queue.len; i++) {
			if (r->queue.taken[i])
				continue;
			*exhausted = false;
			if ((pass == 0 && r->queue.hinted[i]) || !shard_room(r, i))
				continue;
			return claim(r, i);
		}
	}
	return SIZE_MAX;
}

/* Under r->queue.mu, after `w` took slot `qi`: the slot it will probably take next,
 * when its engine prefetches -- the first free one after qi that no worker
 * expects -- marked as expected, for attempt_tenant to name to the engine. */
static void hint_next(dc_rollout__run *r, dc_rollout__worker *w, size_t qi)
{
	size_t i;

	w->next_ti = SIZE_MAX;
	if (!r->fleet.prefetch)
		return;
	for (i = qi + 1; i < r->queue.len; i++) {
		if (r->queue.taken[i] || r->queue.hinted[i])
			continue;
		r->queue.hinted[i] = true;
		w->hint = i;
		w->next_ti = r->queue.slots[i];
		return;
	}
}

/* Tells the caller's progress callback where the run is: `o` is the tenant that
 * just finished, NULL at a wave's start and end. */
static void report_progress(const dc_rollout__run *r,
                            const dc_wave_report *w,
                            const dc_tenant_outcome *o,
                            bool wave_done)
{
	dc_rollout_progress p;

	if (!r->opts->progress)
		return;
	memset(&p, 0, sizeof(p));
	p.wave = w;
	p.nwaves = r->rep->nwaves;
	p.outcome = o;
	p.wave_done = wave_done;
	p.done_total = r->queue.done_total;
	p.total = r->rep->planned;
	r->opts->progress(&p, r->opts->progress_ctx);
}

static void wave_worker(dc_rollout__worker *w)
{
	dc_rollout__run *r = w->job;
	bool exhausted;

	pthread_mutex_lock(&r->queue.mu);
	w->hint = SIZE_MAX;
	w->next_ti = SIZE_MAX;
	for (;;) {
		size_t qi, ti;
		dc_tenant_outcome *o;

		if (dc_rollout__stop_requested(&r->fleet))
			break;
		qi = take_next(r, w, &exhausted);
		if (qi == SIZE_MAX) {
			if (exhausted)
				break;
			pthread_cond_wait(&r->queue.cv, &r->queue.mu);
			continue;
		}
		ti = r->queue.slots[qi];
		o = &r->rep->outcomes[ti];
		hint_next(r, w, qi);
		pthread_mutex_unlock(&r->queue.mu);

		dc_rollout__run_tenant(r, w, ti, o);
		dc_rollout__batch_queue(&r->batch, DC_ROLLOUT__OUTCOME_EVENT,
		                        dc_rollout__outcome_json(o));

		pthread_mutex_lock(&r->queue.mu);
		r->queue.shard_inflight[r->fleet.tenant_engine[ti]]--;
		r->queue.done_total++;
		if (o->status == DC_TENANT_SUCCEEDED)
			r->queue.cur->succeeded++;
		else if (o->status == DC_TENANT_SKIPPED)
			r->queue.cur->skipped++;
		else
			r->queue.cur->failed++;
		if (r->queue.cur->failed > (size_t)r->fleet.cfg->rollout.max_failures &&
		    !r->queue.cur->over_budget) {
			r->queue.cur->over_budget = true;
			atomic_store(&r->fleet.stopping, true);
		}
		report_progress(r, r->queue.cur, o, false);
		pthread_cond_broadcast(&r->queue.cv);
	}
	pthread_cond_broadcast(&r->queue.cv);
	pthread_mutex_unlock(&r->queue.mu);
}

void dc_rollout__stop_dispatch(void *run)
{
	dc_rollout__run *r = run;

	pthread_mutex_lock(&r->queue.mu);
	atomic_store(&r->fleet.stopping, true);
	pthread_cond_broadcast(&r->queue.cv);
	pthread_mutex_unlock(&r->queue.mu);
}

/* A wave's workers, with the ledger writer beside them; without it (the
 * workers append full batches themselves) when its thread cannot start. Every
 * batch handed to the writer is in the ledger (or has failed) on return. */
static int run_wave_workers(dc_rollout__run *r, dc_error *err)
{
	int rc;

	dc_rollout__batch_writer_start(&r->batch);
	rc = dc_rollout__fleet_run_workers(&r->fleet, wave_worker, r, err);
	dc_rollout__batch_writer_stop(&r->batch);
	return rc;
}

/* Cumulative wave ends over `n` planned tenants: canary, then each wave. */
int dc_rollout__plan_waves(dc_rollout__run *r, size_t n, dc_error *err)
{
	const dc_config *cfg = r->fleet.cfg;
	dc_rollout_report *rep = r->rep;
	size_t i, end = 0, canary = dc_amount_of(cfg->rollout.canary, n);

	rep->waves = calloc(cfg->rollout.nwaves + 2, sizeof(*rep->waves));
	if (!rep->waves)
		return dc_error_set(err, DC_ENOMEM, "out of memory");
	if (canary > 0) {
		dc_wave_report *w = &rep->waves[rep->nwaves];

		w->index = (int)rep->nwaves++;
		snprintf(w->name, sizeof(w->name), "canary");
		w->total = canary;
		end = canary;
	}
	for (i = 0; i < cfg->rollout.nwaves && end < n; i++) {
		dc_amount a = cfg->rollout.waves[i];
		size_t upto = dc_amount_of(a, n);
		dc_wave_report *w;

		if (upto <= end)
			continue;
		w = &rep->waves[rep->nwaves];
		w->index = (int)rep->nwaves++;
		if (a.percent)
			snprintf(w->name, sizeof(w->name), "wave %zu (%lld%%)", i + 1,
			         (long long)a.value);
		else
			snprintf(w->name, sizeof(w->name), "wave %zu (%lld)", i + 1,
			         (long long)a.value);
		w->total = upto - end;
		end = upto;
	}
	if (end < n) {
		/* tenants past the last configured wave go in a final one */
		dc_wave_report *w = &rep->waves[rep->nwaves];

		w->index = (int)rep->nwaves++;
		snprintf(w->name, sizeof(w->name), "final wave");
		w->total = n - end;
	}
	return 0;
}

static bool grow_queue(dc_rollout__run *r, size_t n)
{
	size_t *q = dc_realloc_array(r->queue.slots, n, sizeof(*q));
	bool *taken;

	if (!q)
		return false;
	r->queue.slots = q;
	taken = dc_realloc_array(r->queue.taken, n, sizeof(*taken));
	if (!taken)
		return false;
	r->queue.taken = taken;
	taken = dc_realloc_array(r->queue.hinted, n, sizeof(*taken));
	if (!taken)
		return false;
	r->queue.hinted = taken;
	return true;
}

int dc_rollout__run_waves(dc_rollout__run *r, const size_t *planned_idx, dc_error *err)
{
	dc_rollout_report *rep = r->rep;
	size_t wi, i, base = 0;
	int rc = 0;

	for (wi = 0; wi < rep->nwaves; wi++) {
		dc_wave_report *w = &rep->waves[wi];
		int64_t t0 = dc_time_mono_ms();
		json_t *ids = NULL;

		if (dc_rollout__stop_requested(&r->fleet))
			break;
		r->queue.wave = (int)wi;
		r->queue.cur = w;
		if (!grow_queue(r, w->total + 1))
			return dc_error_set(err, DC_ENOMEM, "out of memory");
		for (i = 0; i < w->total; i++) {
			r->queue.slots[i] = planned_idx[base + i];
			r->queue.taken[i] = false;
			r->queue.hinted[i] = false;
			rep->outcomes[r->queue.slots[i]].wave = (int)wi;
		}
		r->queue.len = w->total;
		r->queue.head = 0;
		/* the wave is decided: record it before dispatching a tenant */
		if (w->total <= 1000 && (ids = json_array()) != NULL)
			for (i = 0; i < w->total; i++)
				json_array_append_new(
				        ids, json_string(rep->tenants[r->queue.slots[i]].id));
		w->started_ms = dc_time_now_ms();
		if ((rc = dc_rollout__batch_record(&r->batch, "wave_start",
		                                   json_pack("{s:i, s:s, s:I, s:o*}", "wave",
		                                             (int)wi, "name", w->name, "tenants",
		                                             (json_int_t)w->total, "ids", ids),
		                                   err)) != 0)
			return rc;
		report_progress(r, w, NULL, false);
		if ((rc = run_wave_workers(r, err)) != 0)
			return rc;
		for (i = 0; i < w->total; i++)
			if (!r->queue.taken[i]) {
				rep->outcomes[r->queue.slots[i]].status = DC_TENANT_NOT_RUN;
				w->not_run++;
			}
		w->duration_ms = dc_time_mono_ms() - t0;
		rc = dc_rollout__batch_flush(&r->batch);
		if (rc) {
			dc_error_set(err, rc, "%s", r->batch.ledger_err.message);
			return rc;
		}
		dc_rollout__add_step(
		        rep, "execute_migration_with_rollback", w->failed ? "failed" : "success",
		        w->duration_ms, w->name,
		        "%zu tenant%s: %zu succeeded, %zu failed, %zu skipped, %zu not run%s",
		        w->total, w->total == 1 ? "" : "s", w->succeeded, w->failed, w->skipped,
		        w->not_run,
		        w->over_budget ? " — over the failure budget, rollout stopped" : "");
		if ((rc = dc_rollout__batch_record(
		             &r->batch, "wave_end",
		             json_pack("{s:i, s:s, s:I, s:I, s:I, s:I, s:I, s:b}", "wave", (int)wi,
		                       "name", w->name, "succeeded", (json_int_t)w->succeeded,
		                       "failed", (json_int_t)w->failed, "skipped",
		                       (json_int_t)w->skipped, "not_run", (json_int_t)w->not_run,
		                       "duration_ms", (json_int_t)w->duration_ms, "over_budget",
		                       w->over_budget),
		             err)) != 0)
			return rc;
		report_progress(r, w, NULL, true);
		base += w->total;
	}
	/* waves never dispatched */
	for (; wi < rep->nwaves; wi++) {
		dc_wave_report *w = &rep->waves[wi];

		for (i = 0; i < w->total; i++) {
			rep->outcomes[planned_idx[base + i]].status = DC_TENANT_NOT_RUN;
			rep->outcomes[planned_idx[base + i]].wave = (int)wi;
		}
		w->not_run = w->total;
		base += w->total;
	}
	return 0;
}
