/*
 * fleet.c — the fleet a run works on: one engine per shard, the tenants
 * discovered on them, a worker pool with a connection per engine, and every
 * tenant's plan, read in parallel (or one query per shard).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rollout_internal.h"
#include "util/util.h"

static int cmp_ptr(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t) * (const void *const *)a,
	          y = (uintptr_t) * (const void *const *)b;

	return x < y ? -1 : x > y;
}

bool dc_rollout__is_autocommit(const dc_rollout__fleet *f, const dc_statement *st)
{
	return f->nautocommit &&
	       bsearch(&st, f->autocommit, f->nautocommit, sizeof(*f->autocommit), cmp_ptr);
}

bool dc_rollout__stop_requested(const dc_rollout__fleet *f)
{
	return atomic_load(&f->stopping) || (f->stop && *f->stop);
}

/* ------------------------------------------------------------------------ */
/* Statements that cannot run inside a transaction.                         */

static bool phase_needs_split(const dc_rollout__fleet *f, const dc_phase *p)
{
	size_t i;

	if (!p->transactional)
		return false;
	for (i = 0; i < p->up.nstmts; i++)
		if (dc_rollout__is_autocommit(f, &p->up.stmts[i]))
			return true;
	return false;
}

/* Splits `p` around its autocommit-only statements into `out` (room for 2n+1 phases). */
static int split_phase(const dc_rollout__fleet *f,
                       const dc_phase *p,
                       dc_phase *out,
                       size_t *n,
                       dc_error *err)
{
	size_t i = 0, start, seg = 0;

	while (i < p->up.nstmts) {
		dc_phase *q = &out[seg];
		bool alone = dc_rollout__is_autocommit(f, &p->up.stmts[i]);
		dc_strbuf name = DC_STRBUF_INIT;

		start = i++;
		while (!alone && i < p->up.nstmts && !dc_rollout__is_autocommit(f, &p->up.stmts[i]))
			i++;
		*q = *p;
		q->transactional = !alone;
		q->batch_rows = alone ? 0 : p->batch_rows;
		q->up.stmts = p->up.stmts + start;
		q->up.nstmts = i - start;
		if (seg > 0)
			memset(&q->down, 0,
			       sizeof(q->down)); /* the phase's down undoes it whole, once */
		if (seg == 0)
			dc_strbuf_adds(&name, p->name);
		else
			dc_strbuf_addf(&name, "%s+%zu", p->name, seg);
		q->name = dc_strbuf_detach(&name, NULL);
		if (!q->name)
			return dc_error_set(err, DC_ENOMEM, "out of memory");
		seg++;
		*n = seg;
	}
	return 0;
}

/*
 * Classifies every statement once per run (engines that can tell), then
 * splits each transactional phase around statements that cannot run in a
 * transaction (CREATE INDEX CONCURRENTLY): each runs as a non-transactional
 * phase of its own ("expand+1"), recording its progress, so a crash between
 * them resumes at the right place.
 */
static int derive_set(dc_rollout__fleet *f, dc_error *err)
{
	const dc_migration_set *set = f->orig_set;
	dc_ptrvec ac = DC_PTRVEC_INIT;
	size_t i, k, s, n;
	bool split = false;
	int rc = 0;

	f->set = set;
	if (!f->ops->autocommit_only)
		return 0;
	for (i = 0; i < set->count; i++) {
		const dc_migration *m = &set->migrations[i];

		for (k = 0; k < m->nphases; k++) {
			const dc_sql *blocks[2] = { &m->phases[k].up, &m->phases[k].down };
			size_t b;

			for (b = 0; b < 2; b++)
				for (s = 0; s < blocks[b]->nstmts; s++) {
					bool only = false;

					if ((rc = f->ops->autocommit_only(&blocks[b]->stmts[s],
					                                  &only, err)) != 0)
						goto fail;
					if (only && dc_ptrvec_push(&ac, &blocks[b]->stmts[s])) {
						rc = dc_error_set(err, DC_ENOMEM, "out of memory");
						goto fail;
					}
				}
		}
	}
	if (ac.len > 1)
		qsort(ac.items, ac.len, sizeof(*ac.items), cmp_ptr);
	f->autocommit = (const dc_statement **)(void *)ac.items;
	f->nautocommit = ac.len;
	for (i = 0; i < set->count && !split; i++)
		for (k = 0; k < set->migrations[i].nphases && !split; k++)
			split = phase_needs_split(f, &set->migrations[i].phases[k]);
	if (!split)
		return 0;
	f->derived = calloc(set->count, sizeof(*f->derived));
	if (!f->derived)
		return dc_error_set(err, DC_ENOMEM, "out of memory");
	for (i = 0; i < set->count; i++) {
		const dc_migration *m = &set->migrations[i];
		dc_phase *phases;
		size_t total = 0;

		f->derived[i] = *m;
		f->derived[i].phases = NULL;
		f->derived[i].nphases = 0;
		for (k = 0; k < m->nphases; k++)
			total += 2 * m->phases[k].up.nstmts + 1;
		phases = calloc(total + 1, sizeof(*phases));
		if (!phases)
			return dc_error_set(err, DC_ENOMEM, "out of memory");
		f->derived[i].phases = phases;
		for (k = 0; k < m->nphases; k++) {
			if (phase_needs_split(f, &m->phases[k])) {
				n = 0;
				if ((rc = split_phase(f, &m->phases[k],
				                      phases + f->derived[i].nphases, &n, err)) !=
				    0)
					return rc;
				f->derived[i].nphases += n;
				continue;
			}
			phases[f->derived[i].nphases] = m->phases[k];
			phases[f->derived[i].nphases].name = dc_strdup(m->phases[k].name);
			if (!phases[f->derived[i].nphases++].name)
				return dc_error_set(err, DC_ENOMEM, "out of memory");
		}
	}
	f->derived_set = *set;
	f->derived_set.migrations = f->derived;
	f->set = &f->derived_set;
	return 0;
fail:
	dc_ptrvec_release(&ac, NULL);
	return rc;
}

static void free_derived(dc_rollout__fleet *f)
{
	size_t i, k;

	for (i = 0; f->derived && i < f->orig_set->count; i++) {
		for (k = 0; k < f->derived[i].nphases; k++)
			free(f->derived[i].phases[k].name);
		free(f->derived[i].phases);
	}
	free(f->derived);
	free(f->autocommit);
}

int dc_rollout__worker_conn(dc_rollout__worker *w, size_t e, dc_conn **out, dc_error *err)
{
	int rc = 0;

	if (!w->conns[e])
		rc = w->fleet->ops->connect(w->fleet->engines[e], &w->conns[e], err);
	*out = w->conns[e];
	return rc;
}

/* ------------------------------------------------------------------------ */
/* Planning: every tenant's history, read in parallel.                      */

static void plan_one(dc_rollout__fleet *f, size_t ti, const dc_history_row *rows, size_t nrows)
{
	int rc;

	f->readable[ti] = true;
	rc = dc_rollout__todo_compute(&f->todos[ti], f->set, rows, nrows, f->direction, f->to);
	if (rc == DC_EINVAL) {
		/* not plannable: fails visibly when dispatched */
		f->readable[ti] = false;
		snprintf(f->read_error[ti], sizeof(f->read_error[0]), "%.500s",
		         f->todos[ti].problem);
	}
}

static int plan_all(dc_rollout__fleet *f, dc_error *err);

/*
 * A rollback without --to undoes the newest migration applied anywhere in
 * the fleet: every tenant goes back to the version before it. A fleet-wide
 * target (rather than "each tenant's latest") makes a crashed rollback
 * resumable — running it again finishes the same step instead of undoing
 * one more migration on the tenants that were already done.
 */
int dc_rollout__fleet_rollback_target(dc_rollout__fleet *f, dc_error *err)
{
	const char *latest = NULL;
	size_t i, k;

	for (i = 0; i < f->ntenants; i++)
		if (f->todos[i].n > 0 &&
		    (!latest || dc_version_compare(f->todos[i].migs[0]->version, latest) > 0))
			latest = f->todos[i].migs[0]->version;
	if (!latest)
		return 0;
	for (k = 0; k < f->set->count; k++)
		if (strcmp(f->set->migrations[k].version, latest) == 0)
			break;
	/* "" as the target: below the first migration, everything is undone */
	snprintf(f->to_buf, sizeof(f->to_buf), "%s",
	         k > 0 && k < f->set->count ? f->set->migrations[k - 1].version : "");
	f->to = f->to_buf;
	for (i = 0; i < f->ntenants; i++) {
		dc_rollout__todo_release(&f->todos[i]);
		f->readable[i] = false;
		f->read_error[i][0] = '\0';
	}
	return plan_all(f, err);
}

static void plan_worker(dc_rollout__worker *w)
{
	dc_rollout__fleet *f = w->fleet;

	for (;;) {
		dc_history_row *rows = NULL;
		dc_error err = { 0 };
		dc_conn *conn = NULL;
		size_t ti, nrows = 0;
		int rc;

		pthread_mutex_lock(&f->plan_mu);
		ti = f->plan_next < f->ntenants && !dc_rollout__stop_requested(f) ? f->plan_next++
		                                                                  : SIZE_MAX;
		pthread_mutex_unlock(&f->plan_mu);
		if (ti == SIZE_MAX)
			break;
		rc = dc_rollout__worker_conn(w, f->tenant_engine[ti], &conn, &err);
		if (rc == 0 && f->ops->history_peek) {
			rc = f->ops->history_peek(conn, &f->tenants[ti], &rows, &nrows, &err);
		} else if (rc == 0) {
			rc = f->ops->enter(conn, &f->tenants[ti], &err);
			if (rc == 0)
				rc = f->ops->history_read(conn, &rows, &nrows, &err);
		}
		if (rc == 0) {
			plan_one(f, ti, rows, nrows);
		} else {
			snprintf(f->read_error[ti], sizeof(f->read_error[0]), "%.500s",
			         err.message);
		}
		dc_history_rows_free(rows, nrows);
	}
}

/* Every tenant's plan: one query per shard where the engine can, else in parallel per
 * tenant. */
static int plan_all(dc_rollout__fleet *f, dc_error *err)
{
	size_t e, i, n;
	int rc = 0;

	if (!f->ops->history_read_all)
		return dc_rollout__fleet_run_workers(f, plan_worker, NULL, err);
	for (e = 0; e < f->nengines && rc == 0; e++) {
		dc_history_row **rows = NULL;
		size_t *counts = NULL, first = SIZE_MAX;
		char(*errors)[512] = NULL;

		/* discovery keeps each engine's tenants together */
		for (i = 0, n = 0; i < f->ntenants; i++)
			if (f->tenant_engine[i] == e) {
				first = first == SIZE_MAX ? i : first;
				n++;
			}
		if (n == 0)
			continue;
		rows = calloc(n, sizeof(*rows));
		counts = calloc(n, sizeof(*counts));
		errors = calloc(n, sizeof(*errors));
		if (!rows || !counts || !errors)
			rc = dc_error_set(err, DC_ENOMEM, "out of memory");
		if (rc == 0)
			rc = f->ops->history_read_all(f->engines[e], &f->tenants[first], n, rows,
			                              counts, errors, err);
		for (i = 0; rc == 0 && i < n; i++) {
			if (errors[i][0])
				snprintf(f->read_error[first + i], sizeof(f->read_error[0]),
				         "%.500s", errors[i]);
			else
				plan_one(f, first + i, rows[i], counts[i]);
		}
		for (i = 0; rows && i < n; i++)
			dc_history_rows_free(rows[i], counts[i]);
		free(rows);
		free(counts);
		free(errors);
	}
	return rc;
}

void dc_rollout__fleet_init(dc_rollout__fleet *f)
{
	memset(f, 0, sizeof(*f));
	atomic_init(&f->stopping, false);
	f->own_tenants = true;
	pthread_mutex_init(&f->plan_mu, NULL);
}

void dc_rollout__fleet_release(dc_rollout__fleet *f)
{
	size_t i, e;
	int w;

	for (w = 0; f->workers && w < f->nworkers; w++) {
		for (e = 0; e < f->nengines; e++)
			if (f->workers[w].conns && f->workers[w].conns[e])
				f->ops->disconnect(f->workers[w].conns[e]);
		free(f->workers[w].conns);
	}
	free(f->workers);
	for (e = 0; f->engines && e < f->nengines; e++)
		if (f->engines[e])
			f->ops->close(f->engines[e]);
	free(f->engines);
	for (i = 0; f->todos && i < f->ntenants; i++)
		dc_rollout__todo_release(&f->todos[i]);
	free(f->todos);
	free(f->readable);
	free(f->read_error);
	free(f->tenant_engine);
	free(f->shard_budget);
	if (f->own_tenants)
		dc_tenants_free(f->tenants, f->ntenants);
	free_derived(f);
	pthread_mutex_destroy(&f->plan_mu);
}

int dc_rollout__fleet_discover(dc_rollout__fleet *f,
                               const char *const *only,
                               size_t nonly,
                               dc_error *err)
{
	size_t e, i, k;
	int rc;

	for (e = 0; e < f->nengines; e++) {
		dc_tenant *ts = NULL, *all;
		size_t n = 0;

		if ((rc = f->ops->discover(f->engines[e], &ts, &n, err)) != 0)
			return rc;
		all = dc_realloc_array(f->tenants, f->ntenants + n + 1, sizeof(*all));
		if (!all) {
			dc_tenants_free(ts, n);
			return dc_error_set(err, DC_ENOMEM, "out of memory");
		}
		f->tenants = all;
		if (n)
			memcpy(all + f->ntenants, ts, n * sizeof(*ts));
		f->ntenants += n;
		free(ts); /* the strings moved into f->tenants */
		f->tenant_engine = dc_realloc_array(f->tenant_engine, f->ntenants + 1,
		                                    sizeof(*f->tenant_engine));
		if (!f->tenant_engine)
			return dc_error_set(err, DC_ENOMEM, "out of memory");
		for (i = f->ntenants - n; i < f->ntenants; i++)
			f->tenant_engine[i] = e;
	}
	if (!only || nonly == 0)
		return 0;
	for (k = 0; k < nonly; k++) {
		const char **names;
		const char *hint;
		bool found = false;

		for (i = 0; i < f->ntenants && !found; i++)
			found = strcmp(f->tenants[i].id, only[k]) == 0;
		if (found)
			continue;
		/* every tenant is a candidate: a typo of the 1000th must not be
		 * answered with the nearest of the first few */
		names = dc_malloc_array(f->ntenants + 1, sizeof(*names));
		for (i = 0; names && i < f->ntenants; i++)
			names[i] = f->tenants[i].id;
		hint = names ? dc_suggest(only[k], names, f->ntenants) : NULL;
		rc = dc_error_set(err, DC_EINVAL, "no tenant '%s' in the fleet%s%s%s", only[k],
		                  hint ? " (did you mean '" : "", hint ? hint : "",
		                  hint ? "'?)" : "");
		free(names);
		return rc;
	}
	/* keep only the named tenants, in discovery order */
	for (i = 0, e = 0; i < f->ntenants; i++) {
		bool keep = false;

		for (k = 0; k < nonly && !keep; k++)
			keep = strcmp(f->tenants[i].id, only[k]) == 0;
		if (keep) {
			f->tenants[e] = f->tenants[i];
			f->tenant_engine[e] = f->tenant_engine[i];
			e++;
		} else {
			free(f->tenants[i].id);
			free(f->tenants[i].shard);
			free(f->tenants[i].target);
		}
	}
	f->ntenants = e;
	return 0;
}

/* The engines and the workers (a function of its own for fleet_open's one exit path). */
static int open_engines(dc_rollout__fleet *f, int parallel, const char *run_id, dc_error *err)
{
	const dc_config *cfg = f->cfg;
	size_t e;
	long cpus;
	int w, rc;

	f->ops = dc_engine_for(cfg->engine);
	if (!f->ops)
		return dc_error_set(err, DC_EINVAL, "this build has no engine for '%s'",
		                    cfg->engine == DC_ENGINE_POSTGRES ? "postgres" : "sqlite");
	f->nengines = cfg->engine == DC_ENGINE_SQLITE || cfg->nshards == 0 ? 1 : cfg->nshards;
	f->engines = calloc(f->nengines, sizeof(*f->engines));
	f->shard_budget = calloc(f->nengines, sizeof(*f->shard_budget));
	if (!f->engines || !f->shard_budget)
		return dc_error_set(err, DC_ENOMEM, "out of memory");
	for (e = 0; e < f->nengines; e++) {
		const dc_shard_config *shard = cfg->engine == DC_ENGINE_SQLITE || cfg->nshards == 0
		                                       ? NULL
		                                       : &cfg->shards[e];

		if ((rc = f->ops->open(&f->engines[e], cfg, shard, err)) != 0)
			return rc;
		if (f->ops->set_run)
			f->ops->set_run(f->engines[e], run_id);
		f->shard_budget[e] = shard ? shard->parallel : 0;
	}
	parallel = parallel > 0 ? parallel : cfg->rollout.parallel;
	if (parallel < 1)
		parallel = 1;
	f->nworkers = parallel;
	/* A prefetch runs beside its worker, on a core the workers leave idle
	 * while their commits wait on the disk. With a worker per core there is
	 * none: the prefetch would compete with the workers, and cost a read
	 * transaction and a thread hand-off per tenant besides (bench/sqlite_fleet.sh
	 * at -j 2 on 2 cores); each worker then opens its tenants itself. */
	cpus = (int)dc_pool_cpus();
	f->prefetch = f->ops->prefetch && parallel < cpus;
	f->workers = calloc((size_t)parallel, sizeof(*f->workers));
	if (!f->workers)
		return dc_error_set(err, DC_ENOMEM, "out of memory");
	for (w = 0; w < parallel; w++) {
		f->workers[w].fleet = f;
		f->workers[w].hint = SIZE_MAX;
		f->workers[w].next_ti = SIZE_MAX;
		f->workers[w].conns = calloc(f->nengines, sizeof(dc_conn *));
		if (!f->workers[w].conns)
			return dc_error_set(err, DC_ENOMEM, "out of memory");
	}
	return 0;
}

int dc_rollout__fleet_open(dc_rollout__fleet *f,
                           const dc_config *cfg,
                           const dc_migration_set *set,
                           dc_rollout_direction direction,
                           int parallel,
                           volatile sig_atomic_t *stop,
                           const char *run_id,
                           dc_error *err)
{
	int rc;

	f->cfg = cfg;
	f->orig_set = set;
	f->set = set;
	f->direction = direction;
	f->stop = stop;
	if ((rc = open_engines(f, parallel, run_id, err)) != 0)
		return rc;
	return derive_set(f, err);
}

int dc_rollout__fleet_plan(dc_rollout__fleet *f, const char *to, dc_error *err)
{
	f->todos = calloc(f->ntenants + 1, sizeof(*f->todos));
	f->readable = calloc(f->ntenants + 1, sizeof(*f->readable));
	f->read_error = calloc(f->ntenants + 1, sizeof(*f->read_error));
	if (!f->todos || !f->readable || !f->read_error)
		return dc_error_set(err, DC_ENOMEM, "out of memory");
	f->to = to;
	return plan_all(f, err);
}

static void run_worker(size_t i, void *arg)
{
	dc_rollout__fleet *f = arg;

	f->worker_fn(&f->workers[i]);
}

int dc_rollout__fleet_run_workers(dc_rollout__fleet *f,
                                  void (*fn)(dc_rollout__worker *w),
                                  void *job,
                                  dc_error *err)
{
	int i;

	for (i = 0; i < f->nworkers; i++)
		f->workers[i].job = job;
	f->worker_fn = fn;
	if (dc_pool_run((size_t)f->nworkers, 0, DC_POOL_ALL, run_worker, f) != 0)
		return dc_error_set(err, DC_EIO, "cannot start %d worker threads", f->nworkers);
	return 0;
}
