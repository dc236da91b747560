/*
 * rollout.c — discover, plan, gate, then roll out in waves with a worker
 * pool; every tenant atomically, every decision in the ledger first.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include <deployclaw/rollout.h>
#include <deployclaw/util.h>

#include "gate/gate_internal.h"
#include "rollout_internal.h"

/* Tenant outcomes are appended to the ledger in batches of at most this many,
 * each run of them as one entry (append_events). */
#define OUTCOME_BATCH  256
#define OUTCOME_EVENT  "tenant"
#define OUTCOMES_ENTRY "tenants"

/* A backfill phase repeats its `up` until it touches no row; this bounds it. */
#define MAX_BATCHES 1000000

typedef struct rollout rollout;

typedef struct worker {
	rollout *r;
	dc_conn **conns; /* one per engine, connected on first use */
	pthread_t thread;
	/* Engines with a prefetch: the queue slot this worker expects to take
	 * next (its connection is opening that tenant), and the tenant to name
	 * to the engine once the current one is entered; SIZE_MAX: none. */
	size_t hint;
	size_t next_ti;
	/* The error of the tenant in hand: empty between tenants, so a tenant
	 * that succeeds costs no clearing; a failed one's goes to the heap
	 * (keep_error). */
	dc_error err;
} worker;

/* A phase that is done for a tenant in this run (for compensation). */
typedef struct done_step {
	const dc_migration *m;
	size_t phase;
} done_step;

struct rollout {
	const dc_config *cfg;
	const dc_migration_set *set;
	const dc_rollout_opts *opts;
	const dc_engine_ops *ops;
	dc_ledger *ledger;
	dc_gate_registry *gates;
	dc_rollout_report *rep;
	char actor[256];

	dc_engine **engines; /* one per shard (one for SQLite) */
	size_t nengines;
	size_t *tenant_engine; /* per tenant */
	int *shard_budget;     /* per engine: max concurrent tenants, 0 = no limit */
	int *shard_inflight;

	const dc_migration_set *orig_set; /* as loaded; r->set may split phases (below) */
	dc_migration *derived;            /* r->set's migrations when phases were split */
	dc_migration_set derived_set;
	const dc_statement **autocommit; /* sorted: statements that cannot run in a transaction */
	size_t nautocommit;

	const char *to; /* the target version: opts->to_version, or derived (rollback) */
	char to_buf[64];

	dc_rollout__todo *todos; /* the plan, per tenant */
	bool *readable;
	char (*read_error)[512];

	worker *workers;
	int nworkers;
	bool prefetch; /* workers name their next tenant to the engine (see setup) */

	pthread_mutex_t mu;
	pthread_cond_t cv;
	/* the wave being dispatched (under mu) */
	size_t *queue;
	bool *taken;
	bool *hinted; /* a worker's connection is opening it (see take_next) */
	size_t qlen;
	size_t qhead;
	int wave;
	bool stopping;
	dc_wave_report *cur;
	size_t done_total;
	/* per-phase planning work (under mu) */
	size_t plan_next;
	/* ledger batch (under mu) */
	dc_ledger_event pending[OUTCOME_BATCH];
	size_t npending;
	size_t retries;    /* tenant attempts retried */
	int64_t first_seq; /* ledger entries this run appended: first_seq..last_seq */
	int64_t last_seq;
	int ledger_rc;
	dc_error ledger_err;
	/* The ledger writer (a thread beside a wave's workers): it signs and
	 * appends each full batch, so no worker waits for 256 Ed25519
	 * signatures and three fsyncs (under mu; see queue_event). */
	pthread_cond_t wcv;
	dc_ledger_event wbatch[OUTCOME_BATCH];
	size_t wn; /* entries in wbatch, the writer's until it sets wn = 0 */
	bool writer_on;
	bool writer_quit;
};

const char *dc_tenant_status_name(dc_tenant_status status)
{
	switch (status) {
	case DC_TENANT_SUCCEEDED:
		return "succeeded";
	case DC_TENANT_FAILED:
		return "failed";
	case DC_TENANT_SKIPPED:
		return "skipped";
	case DC_TENANT_NOT_RUN:
		return "not_run";
	}
	return "unknown";
}

/* A failed tenant's error when there was no memory for its own. */
static const dc_error no_memory_error = { DC_ENOMEM, "out of memory", "", 0, 0, "", "", "" };

int dc_rollout_opts_init(dc_rollout_opts *opts, unsigned int version)
{
	/* Only version 1 exists: when one is added, this keeps the size of each
	 * older layout, and an older caller's struct is cleared to its size. */
	if (version == 0 || version > DC_ROLLOUT_OPTIONS_VERSION)
		return DC_EINVAL;
	memset(opts, 0, sizeof(*opts));
	opts->version = version;
	return 0;
}

void dc_rollout_report_free(dc_rollout_report *rep)
{
	size_t i;

	if (!rep)
		return;
	for (i = 0; rep->outcomes && i < rep->ntenants; i++)
		if (rep->outcomes[i].error != &no_memory_error)
			free((void *)(uintptr_t)rep->outcomes[i].error);
	dc_tenants_free(rep->tenants, rep->ntenants);
	free(rep->outcomes);
	free(rep->waves);
	free(rep->gates);
	free(rep->steps);
	free(rep);
}

static void add_step(dc_rollout_report *rep,
                     const char *step,
                     const char *status,
                     int64_t duration_ms,
                     const char *action,
                     const char *fmt,
                     ...) DC_PRINTF(6, 7);

static void add_step(dc_rollout_report *rep,
                     const char *step,
                     const char *status,
                     int64_t duration_ms,
                     const char *action,
                     const char *fmt,
                     ...)
{
	dc_rollout_step *s, *steps;
	va_list ap;

	steps = dc_realloc_array(rep->steps, rep->nsteps + 1, sizeof(*steps));
	if (!steps)
		return;
	rep->steps = steps;
	s = &steps[rep->nsteps++];
	memset(s, 0, sizeof(*s));
	snprintf(s->step, sizeof(s->step), "%s", step);
	snprintf(s->action, sizeof(s->action), "%s", action);
	snprintf(s->status, sizeof(s->status), "%s", status);
	s->duration_ms = duration_ms;
	va_start(ap, fmt);
	vsnprintf(s->detail, sizeof(s->detail), fmt, ap);
	va_end(ap);
}

/* ------------------------------------------------------------------------ */
/* Ledger.                                                                  */

static void note_seqs(rollout *r, int64_t first, size_t n)
{
	if (!r->first_seq)
		r->first_seq = first;
	r->last_seq = first + (int64_t)n - 1;
}

static int record(rollout *r, const char *event, json_t *data, dc_error *err)
{
	int64_t seq = 0;
	int rc = 0;

	if (r->ledger && data) {
		rc = dc_ledger_append(r->ledger, event, data, &seq, err);
		if (rc == 0)
			note_seqs(r, seq, 1);
	} else if (!data)
		rc = dc_error_set(err, DC_ENOMEM, "out of memory");
	json_decref(data);
	return rc;
}

static int flush_outcomes(rollout *r);

/* An upper bound on the bytes an outcome takes in a ledger line: every
 * string escaped at worst as \u00XX, plus keys and punctuation. */
static size_t outcome_size(json_t *o)
{
	void *it;
	size_t n = 2;

	for (it = json_object_iter(o); it; it = json_object_iter_next(o, it)) {
		json_t *v = json_object_iter_value(it);

		n += strlen(json_object_iter_key(it)) + 4 +
		     (json_is_string(v) ? 6 * json_string_length(v) + 2 : 24);
	}
	return n;
}

/* Outcomes packed into one entry stay below this many bytes (a ledger line
 * holds at most DC_LEDGER__MAX_LINE = 1 MiB). */
#define OUTCOMES_ENTRY_MAX ((size_t)768 * 1024)

/*
 * Appends a batch of queued events as ledger entries: each run of
 * consecutive tenant outcomes becomes one `tenants` entry, {"outcomes":
 * [...]}, in the order they were queued; any other event stays an entry of
 * its own. One signature and one canonical serialisation per entry, not per
 * tenant: a 10,000-tenant run signs ~40 entries instead of 10,000, and the
 * hash chain covers every outcome all the same. `*nentries` is set to the
 * number of entries appended. The events' data stay the caller's.
 */
static int append_events(rollout *r,
                         const dc_ledger_event *ev,
                         size_t n,
                         int64_t *first,
                         size_t *nentries,
                         dc_error *err)
{
	dc_ledger_event out[OUTCOME_BATCH] = { { NULL, NULL } };
	bool packed[OUTCOME_BATCH];
	size_t i = 0, m = 0;
	int rc = 0;

	while (i < n && rc == 0) {
		json_t *outcomes;
		size_t bytes;

		if (strcmp(ev[i].event, OUTCOME_EVENT) != 0) {
			packed[m] = false;
			out[m++] = ev[i++];
			continue;
		}
		outcomes = json_array();
		for (bytes = 0; outcomes && i < n && strcmp(ev[i].event, OUTCOME_EVENT) == 0; i++) {
			size_t size = outcome_size(ev[i].data);

			if (bytes > 0 && bytes + size > OUTCOMES_ENTRY_MAX)
				break;
			bytes += size;
			if (json_array_append(outcomes, ev[i].data) != 0) {
				json_decref(outcomes);
				outcomes = NULL;
			}
		}
		packed[m] = true;
		out[m].event = OUTCOMES_ENTRY;
		out[m].data = outcomes ? json_pack("{s:o}", "outcomes", outcomes) : NULL;
		if (!out[m++].data)
			rc = dc_error_set(err, DC_ENOMEM, "out of memory");
	}
	if (rc == 0)
		rc = dc_ledger_append_batch(r->ledger, out, m, first, err);
	for (i = 0; i < m; i++)
		if (packed[i])
			json_decref(out[i].data);
	*nentries = rc == 0 ? m : 0;
	return rc;
}

/* Under r->mu: gives the full pending batch to the idle writer. */
static void hand_off(rollout *r)
{
	memcpy(r->wbatch, r->pending, r->npending * sizeof(r->pending[0]));
	r->wn = r->npending;
	r->npending = 0;
	pthread_cond_broadcast(&r->wcv);
}

/* Under r->mu: queues an entry for the next batch (`data` is stolen). A full
 * batch goes to the writer, or is appended here when no writer runs. At most
 * one batch is in flight: a worker waits (r->mu released) while the writer
 * still holds the previous one and the next is full. */
static void queue_event(rollout *r, const char *event, json_t *data)
{
	if (!data)
		return;
	while (r->npending == OUTCOME_BATCH && r->writer_on && r->wn > 0)
		pthread_cond_wait(&r->wcv, &r->mu);
	if (r->npending == OUTCOME_BATCH) {
		if (r->writer_on)
			hand_off(r);
		else
			flush_outcomes(r);
	}
	r->pending[r->npending].event = event;
	r->pending[r->npending].data = data;
	if (++r->npending < OUTCOME_BATCH)
		return;
	if (!r->writer_on)
		flush_outcomes(r);
	else if (r->wn == 0)
		hand_off(r);
	/* else the writer takes it when it is done with the previous batch */
}

/*
 * The ledger writer: appends the batches handed to it, in order, with r->mu
 * released, then records the result under r->mu exactly as flush_outcomes
 * does: a batch that cannot be recorded stops the rollout, and no later batch
 * is appended. Runs only while a wave's workers do (run_wave_workers); the
 * ledger is not touched by anyone else meanwhile.
 */
static void *ledger_writer(void *arg)
{
	rollout *r = arg;

	pthread_mutex_lock(&r->mu);
	for (;;) {
		dc_error lerr = { 0 };
		int64_t first = 0;
		size_t i, n, entries = 0;
		bool append;
		int rc = 0;

		while (r->wn == 0 && !r->writer_quit)
			pthread_cond_wait(&r->wcv, &r->mu);
		if (r->wn == 0)
			break;
		n = r->wn;
		append = r->ledger && r->ledger_rc == 0;
		pthread_mutex_unlock(&r->mu);
		if (append)
			rc = append_events(r, r->wbatch, n, &first, &entries, &lerr);
		for (i = 0; i < n; i++)
			json_decref(r->wbatch[i].data);
		pthread_mutex_lock(&r->mu);
		if (rc == 0 && first)
			note_seqs(r, first, entries);
		if (rc && r->ledger_rc == 0) {
			/* an outcome that cannot be recorded stops the rollout */
			r->ledger_rc = rc;
			r->ledger_err = lerr;
			r->stopping = true;
			pthread_cond_broadcast(&r->cv);
		}
		r->wn = 0;
		if (r->npending == OUTCOME_BATCH)
			hand_off(r);
		pthread_cond_broadcast(&r->wcv);
	}
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

/* Under r->mu. */
static int flush_outcomes(rollout *r)
{
	int64_t first = 0;
	size_t i, entries = 0;
	int rc = 0;

	if (r->npending == 0)
		return r->ledger_rc;
	if (r->ledger && r->ledger_rc == 0)
		rc = append_events(r, r->pending, r->npending, &first, &entries, &r->ledger_err);
	if (rc == 0 && first)
		note_seqs(r, first, entries);
	for (i = 0; i < r->npending; i++)
		json_decref(r->pending[i].data);
	r->npending = 0;
	if (rc && r->ledger_rc == 0) {
		/* an outcome that cannot be recorded stops the rollout */
		r->ledger_rc = rc;
		r->stopping = true;
	}
	return r->ledger_rc;
}

static json_t *outcome_json(const rollout *r, const dc_tenant_outcome *o)
{
	const dc_tenant *t = o->tenant;
	json_t *d =
	        json_pack("{s:s, s:s, s:i, s:s, s:s, s:s, s:i, s:I}", "tenant", t->id, "shard",
	                  t->shard ? t->shard : "", "wave", o->wave, "status",
	                  dc_tenant_status_name(o->status), "from", o->from, "to", o->to,
	                  "migrations", o->migrations, "duration_ms", (json_int_t)o->duration_ms);

	(void)r;
	if (d && o->attempts > 1)
		json_object_set_new(d, "attempts", json_integer(o->attempts));
	if (d && o->status == DC_TENANT_FAILED) {
		json_object_set_new(d, "error", json_string(o->error->message));
		if (o->error->sqlstate[0])
			json_object_set_new(d, "sqlstate", json_string(o->error->sqlstate));
		if (o->error->file[0]) {
			json_object_set_new(d, "file", json_string(o->error->file));
			json_object_set_new(d, "line", json_integer(o->error->line));
			json_object_set_new(d, "col", json_integer(o->error->col));
		}
	}
	return d;
}

static int cmp_ptr(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t) * (const void *const *)a,
	          y = (uintptr_t) * (const void *const *)b;

	return x < y ? -1 : x > y;
}

static bool is_autocommit(const rollout *r, const dc_statement *st)
{
	return r->nautocommit &&
	       bsearch(&st, r->autocommit, r->nautocommit, sizeof(*r->autocommit), cmp_ptr);
}

static bool stop_requested(const rollout *r)
{
	return r->stopping || (r->opts->stop && *r->opts->stop);
}

/* ------------------------------------------------------------------------ */
/* Statements that cannot run inside a transaction.                         */

static bool phase_needs_split(const rollout *r, const dc_phase *p)
{
	size_t i;

	if (!p->transactional)
		return false;
	for (i = 0; i < p->up.nstmts; i++)
		if (is_autocommit(r, &p->up.stmts[i]))
			return true;
	return false;
}

/* Splits `p` around its autocommit-only statements into `out` (room for 2n+1 phases). */
static int split_phase(const rollout *r, const dc_phase *p, dc_phase *out, size_t *n, dc_error *err)
{
	size_t i = 0, start, seg = 0;

	while (i < p->up.nstmts) {
		dc_phase *q = &out[seg];
		bool alone = is_autocommit(r, &p->up.stmts[i]);
		dc_strbuf name = DC_STRBUF_INIT;

		start = i++;
		while (!alone && i < p->up.nstmts && !is_autocommit(r, &p->up.stmts[i]))
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
static int derive_set(rollout *r, dc_error *err)
{
	const dc_migration_set *set = r->orig_set;
	dc_ptrvec ac = DC_PTRVEC_INIT;
	size_t i, k, s, n;
	bool split = false;
	int rc = 0;

	r->set = set;
	if (!r->ops->autocommit_only)
		return 0;
	for (i = 0; i < set->count; i++) {
		const dc_migration *m = &set->migrations[i];

		for (k = 0; k < m->nphases; k++) {
			const dc_sql *blocks[2] = { &m->phases[k].up, &m->phases[k].down };
			size_t b;

			for (b = 0; b < 2; b++)
				for (s = 0; s < blocks[b]->nstmts; s++) {
					bool only = false;

					if ((rc = r->ops->autocommit_only(&blocks[b]->stmts[s],
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
	r->autocommit = (const dc_statement **)(void *)ac.items;
	r->nautocommit = ac.len;
	for (i = 0; i < set->count && !split; i++)
		for (k = 0; k < set->migrations[i].nphases && !split; k++)
			split = phase_needs_split(r, &set->migrations[i].phases[k]);
	if (!split)
		return 0;
	r->derived = calloc(set->count, sizeof(*r->derived));
	if (!r->derived)
		return dc_error_set(err, DC_ENOMEM, "out of memory");
	for (i = 0; i < set->count; i++) {
		const dc_migration *m = &set->migrations[i];
		dc_phase *phases;
		size_t total = 0;

		r->derived[i] = *m;
		r->derived[i].phases = NULL;
		r->derived[i].nphases = 0;
		for (k = 0; k < m->nphases; k++)
			total += 2 * m->phases[k].up.nstmts + 1;
		phases = calloc(total + 1, sizeof(*phases));
		if (!phases)
			return dc_error_set(err, DC_ENOMEM, "out of memory");
		r->derived[i].phases = phases;
		for (k = 0; k < m->nphases; k++) {
			if (phase_needs_split(r, &m->phases[k])) {
				n = 0;
				if ((rc = split_phase(r, &m->phases[k],
				                      phases + r->derived[i].nphases, &n, err)) !=
				    0)
					return rc;
				r->derived[i].nphases += n;
				continue;
			}
			phases[r->derived[i].nphases] = m->phases[k];
			phases[r->derived[i].nphases].name = dc_strdup(m->phases[k].name);
			if (!phases[r->derived[i].nphases++].name)
				return dc_error_set(err, DC_ENOMEM, "out of memory");
		}
	}
	r->derived_set = *set;
	r->derived_set.migrations = r->derived;
	r->set = &r->derived_set;
	return 0;
fail:
	dc_ptrvec_release(&ac, NULL);
	return rc;
}

static void free_derived(rollout *r)
{
	size_t i, k;

	for (i = 0; r->derived && i < r->orig_set->count; i++) {
		for (k = 0; k < r->derived[i].nphases; k++)
			free(r->derived[i].phases[k].name);
		free(r->derived[i].phases);
	}
	free(r->derived);
	free(r->autocommit);
}

/* ------------------------------------------------------------------------ */
/* One tenant.                                                              */

static int worker_conn(worker *w, size_t e, dc_conn **out, dc_error *err)
{
	int rc = 0;

	if (!w->conns[e])
		rc = w->r->ops->connect(w->r->engines[e], &w->conns[e], err);
	*out = w->conns[e];
	return rc;
}

/*
 * Runs a block of SQL. A statement that cannot run inside a transaction
 * (only downs can hold one in a transactional phase: ups are split, see
 * derive_set) commits what came before, runs alone, and a new transaction
 * begins after it. `in_tx` may be NULL when the caller holds none.
 */
static int run_sql(rollout *r,
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
			bool alone = in_tx && *in_tx && is_autocommit(r, &sql->stmts[i]);

			rows = 0;
			if (alone && (rc = r->ops->commit(conn, err)) != 0)
				return rc;
			if (alone)
				*in_tx = false;
			if ((rc = r->ops->exec(conn, &sql->stmts[i], &rows, err)) != 0)
				return rc;
			if (alone && (rc = r->ops->begin(conn, err)) != 0)
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

static int verify(rollout *r, dc_conn *conn, const dc_migration *m, dc_error *err)
{
	size_t i, k;
	bool ok;
	int rc;

	for (i = 0; i < m->nverify; i++) {
		for (k = 0; k < m->verify[i].nstmts; k++) {
			const dc_statement *st = &m->verify[i].stmts[k];

			ok = false;
			if ((rc = r->ops->query_bool(conn, st, &ok, err)) != 0)
				return rc;
			if (!ok)
				return dc_error_set_at(err, DC_ETENANT, st->file, st->line, st->col,
				                       "verify assertion of '%s' is false: %.300s",
				                       m->version, st->sql);
		}
	}
	return 0;
}

static int write_history(rollout *r,
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
	return r->ops->history_write(conn, &row, err);
}

/* Runs the downs of committed steps, newest first, and records the migrations as rolled back. */
static int compensate(rollout *r, dc_conn *conn, const done_step *done, size_t n, dc_error *err)
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
			if ((rc = r->ops->begin(conn, err)) != 0)
				goto out;
			in_tx = true;
		} else if (!p->transactional && in_tx) {
			if ((rc = r->ops->commit(conn, err)) != 0)
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
		rc = r->ops->commit(conn, err);
		in_tx = false;
	}
out:
	if (in_tx)
		r->ops->rollback(conn, NULL);
	return rc;
}

typedef struct tenant_run {
	rollout *r;
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
		rc = t->r->ops->begin(t->conn, err);
		t->in_tx = rc == 0;
	} else if (!want && t->in_tx) {
		rc = t->r->ops->commit(t->conn, err);
		t->in_tx = false;
		if (rc == 0)
			t->ncommitted = t->ndone;
	}
	return rc;
}

static int apply_todo(tenant_run *t, const dc_rollout__todo *todo, dc_error *err)
{
	rollout *r = t->r;
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
	rollout *r = t->r;
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

static int tenant_gates(rollout *r, dc_conn *conn, const dc_tenant *tenant, dc_error *err)
{
	dc_gate_ctx ctx;

	memset(&ctx, 0, sizeof(ctx));
	ctx.cfg = r->cfg;
	ctx.set = r->set;
	ctx.tenant = tenant;
	ctx.conn = conn;
	ctx.ops = r->ops;
	ctx.wave = r->wave;
	ctx.stop = r->opts->stop;
	return dc_gate_registry_run(r->gates, DC_GATE_AFTER_TENANT, &ctx, NULL, NULL, NULL, err);
}

/* Sleeps `ms`, waking early when a stop is requested. */
static void nap_ms(int64_t ms, volatile sig_atomic_t *stop)
{
	while (ms > 0 && !(stop && *stop)) {
		int64_t slice = ms < 50 ? ms : 50;
		struct timespec ts = { 0, (long)slice * 1000000L };

		nanosleep(&ts, NULL);
		ms -= slice;
	}
}

/* Lock timeouts, deadlocks, serialization failures and lost connections are worth
 * another try; nothing else is. */
static bool transient(const dc_error *e)
{
	return strcmp(e->sqlstate, "55P03") == 0 || strcmp(e->sqlstate, "40P01") == 0 ||
	       strcmp(e->sqlstate, "40001") == 0 || strncmp(e->sqlstate, "08", 2) == 0;
}

/* One attempt at a tenant. `*retry` says whether a failure may be retried: transient,
 * and nothing of it committed. */
static void attempt_tenant(worker *w, size_t ti, dc_tenant_outcome *o, dc_error *err, bool *retry)
{
	rollout *r = w->r;
	const dc_tenant *tenant = &r->rep->tenants[ti];
	tenant_run t;
	dc_history_row *rows = NULL;
	dc_rollout__todo todo;
	dc_strbuf backup = DC_STRBUF_INIT;
	bool locked = false;
	int rc;

	size_t nrows = 0;

	memset(&t, 0, sizeof(t));
	memset(&todo, 0, sizeof(todo));
	t.r = r;
	o->attempts = 1;
	snprintf(o->from, sizeof(o->from), "%s", r->todos[ti].from);
	snprintf(o->to, sizeof(o->to), "%s", r->todos[ti].from);
	if ((rc = worker_conn(w, r->tenant_engine[ti], &t.conn, err)) != 0)
		goto out;
	if ((rc = r->ops->enter(t.conn, tenant, err)) != 0)
		goto out;
	/* the next tenant opens in the background while this one runs (after
	 * the enter, which takes what an earlier hint opened) */
	if (w->next_ti != SIZE_MAX) {
		size_t nt = w->next_ti;
		dc_conn *nc = NULL;
		dc_error ignored = { 0 };

		w->next_ti = SIZE_MAX;
		if (worker_conn(w, r->tenant_engine[nt], &nc, &ignored) == 0)
			r->ops->prefetch(nc, &r->rep->tenants[nt]);
	}
	if ((rc = r->ops->lock_tenant(t.conn, r->cfg->gates.lock_timeout_ms, err)) != 0)
		goto out;
	locked = true;
	if (r->cfg->rollout.backup && r->ops->backup && r->todos[ti].n > 0) {
		dc_strbuf_addf(&backup, "%s.deployclaw-backup", tenant->target);
		if (dc_strbuf_error(&backup)) {
			rc = dc_error_set(err, DC_ENOMEM, "out of memory");
			goto out;
		}
		if ((rc = r->ops->backup(t.conn, backup.buf, err)) != 0)
			goto out;
	}
	/* Read the history under the lock, in the transaction: another run may
	 * have moved this tenant since planning, and this read is the truth. */
	if ((rc = ensure_tx(&t, true, err)) != 0)
		goto out;
	if ((rc = r->ops->history_ensure(t.conn, err)) != 0 ||
	    (rc = r->ops->history_read(t.conn, &rows, &nrows, err)) != 0)
		goto out;
	rc = dc_rollout__todo_compute(&todo, r->set, rows, nrows, r->opts->direction, r->to);
	if (rc) {
		rc = dc_error_set(err, rc == DC_ENOMEM ? rc : DC_ETENANT, "%s",
		                  todo.problem[0] ? todo.problem : "cannot plan this tenant");
		goto out;
	}
	snprintf(o->from, sizeof(o->from), "%s", todo.from);
	if (todo.drift) {
		rc = dc_error_set(err, DC_ETENANT, "drift: %s", todo.problem);
		goto out;
	}
	if (todo.out_of_order && !r->opts->allow_out_of_order &&
	    !r->cfg->gates.allow_out_of_order) {
		rc = dc_error_set(err, DC_ETENANT, "out of order: %s", todo.problem);
		goto out;
	}
	if (todo.n == 0) {
		o->status = DC_TENANT_SKIPPED;
		snprintf(o->to, sizeof(o->to), "%s", todo.from);
		/* end the transaction of the history read: the connection moves on
		 * to the next tenant (pg refuses to enter one with a transaction open) */
		r->ops->rollback(t.conn, NULL);
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
			r->ops->rollback(t.conn, NULL);
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
		r->ops->unlock_tenant(t.conn, NULL);
	free(t.done);
	dc_rollout__todo_release(&todo);
	dc_history_rows_free(rows, nrows);
	dc_strbuf_release(&backup);
}

/* Moves a failed tenant's error from the worker to the heap, for its outcome. */
static void keep_error(worker *w, dc_tenant_outcome *o)
{
	dc_error *e = malloc(sizeof(*e));

	if (e)
		*e = w->err;
	o->error = e ? e : &no_memory_error;
	dc_error_clear(&w->err);
}

/* A tenant, with bounded retries: exponential backoff from 100 ms (at most 5 s) plus up to
 * half as much jitter, so retrying workers do not collide again. */
static void run_tenant(worker *w, size_t ti, dc_tenant_outcome *o)
{
	rollout *r = w->r;
	dc_error *err = &w->err;
	int64_t start = dc_time_mono_ms();
	int attempt;

	for (attempt = 1;; attempt++) {
		bool retry = false;
		int64_t backoff;

		o->status = DC_TENANT_SKIPPED;
		attempt_tenant(w, ti, o, err, &retry);
		o->attempts = attempt;
		if (o->status != DC_TENANT_FAILED || !retry || attempt > r->cfg->rollout.retries ||
		    stop_requested(r))
			break;
		backoff = attempt < 7 ? (int64_t)100 << (attempt - 1) : 5000;
		if (backoff > 5000)
			backoff = 5000;
		backoff += (int64_t)randombytes_uniform((uint32_t)(backoff / 2 + 1));
		pthread_mutex_lock(&r->mu);
		r->retries++;
		queue_event(r, "tenant_retry",
		            json_pack("{s:s, s:i, s:s, s:s, s:I}", "tenant", r->rep->tenants[ti].id,
		                      "attempt", attempt, "sqlstate", err->sqlstate, "error",
		                      err->message, "backoff_ms", (json_int_t)backoff));
		pthread_mutex_unlock(&r->mu);
		dc_error_clear(err);
		nap_ms(backoff, r->opts->stop);
	}
	if (o->status == DC_TENANT_FAILED)
		keep_error(w, o);
	else if (err->code)
		dc_error_clear(err); /* set by a step that recovered: not the next tenant's */
	o->duration_ms = dc_time_mono_ms() - start;
}

/* ------------------------------------------------------------------------ */
/* Waves.                                                                   */

/* Under r->mu: whether queue slot `i`'s shard has room for one more tenant. */
static bool shard_room(const rollout *r, size_t i)
{
	size_t e = r->tenant_engine[r->queue[i]];

	return r->shard_budget[e] == 0 || r->shard_inflight[e] < r->shard_budget[e];
}

static size_t claim(rollout *r, size_t i)
{
	r->taken[i] = true;
	r->hinted[i] = false;
	r->shard_inflight[r->tenant_engine[r->queue[i]]]++;
	return i;
}

/*
 * Under r->mu: the next tenant for worker `w` whose shard has room; SIZE_MAX
 * when none now. First the one w's connection is opening (hinted to it when
 * it took its last tenant), then the first free one no other worker's
 * connection is opening; another worker's only when nothing else is left.
 */
static size_t take_next(rollout *r, worker *w, bool *exhausted)
{
	size_t i, pass;

	*exhausted = true;
	while (r->qhead < r->qlen && r->taken[r->qhead])
		r->qhead++;
	if (w->hint != SIZE_MAX) {
		i = w->hint;
		w->hint = SIZE_MAX;
		r->hinted[i] = false;
		if (!r->taken[i] && shard_room(r, i)) {
			*exhausted = false;
			return claim(r, i);
		}
	}
	for (pass = 0; pass < 2; pass++) {
		for (i = r->qhead; i < r->qlen; i++) {
			if (r->taken[i])
				continue;
			*exhausted = false;
			if ((pass == 0 && r->hinted[i]) || !shard_room(r, i))
				continue;
			return claim(r, i);
		}
	}
	return SIZE_MAX;
}

/* Under r->mu, after `w` took slot `qi`: the slot it will probably take next,
 * when its engine prefetches -- the first free one after qi that no worker
 * expects -- marked as expected, for attempt_tenant to name to the engine. */
static void hint_next(rollout *r, worker *w, size_t qi)
{
	size_t i;

	w->next_ti = SIZE_MAX;
	if (!r->prefetch)
		return;
	for (i = qi + 1; i < r->qlen; i++) {
		if (r->taken[i] || r->hinted[i])
			continue;
		r->hinted[i] = true;
		w->hint = i;
		w->next_ti = r->queue[i];
		return;
	}
}

static void *wave_worker(void *arg)
{
	worker *w = arg;
	rollout *r = w->r;
	bool exhausted;

	pthread_mutex_lock(&r->mu);
	w->hint = SIZE_MAX;
	w->next_ti = SIZE_MAX;
	for (;;) {
		size_t qi, ti;
		dc_tenant_outcome *o;
		dc_rollout_progress p;
		if (stop_requested(r))
			break;
		qi = take_next(r, w, &exhausted);
		if (qi == SIZE_MAX) {
			if (exhausted)
				break;
			pthread_cond_wait(&r->cv, &r->mu);
			continue;
		}
		ti = r->queue[qi];
		o = &r->rep->outcomes[ti];
		hint_next(r, w, qi);
		pthread_mutex_unlock(&r->mu);

		run_tenant(w, ti, o);

		pthread_mutex_lock(&r->mu);
		r->shard_inflight[r->tenant_engine[ti]]--;
		r->done_total++;
		if (o->status == DC_TENANT_SUCCEEDED)
			r->cur->succeeded++;
		else if (o->status == DC_TENANT_SKIPPED)
			r->cur->skipped++;
		else
			r->cur->failed++;
		if (r->cur->failed > (size_t)r->cfg->rollout.max_failures && !r->cur->over_budget) {
			r->cur->over_budget = true;
			r->stopping = true;
		}
		queue_event(r, OUTCOME_EVENT, outcome_json(r, o));
		if (r->opts->progress) {
			memset(&p, 0, sizeof(p));
			p.wave = r->cur;
			p.nwaves = r->rep->nwaves;
			p.outcome = o;
			p.done_total = r->done_total;
			p.total = r->rep->planned;
			r->opts->progress(&p, r->opts->progress_ctx);
		}
		pthread_cond_broadcast(&r->cv);
	}
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

static int run_workers(rollout *r, void *(*fn)(void *), dc_error *err)
{
	int i, started = 0, rc = 0;

	for (i = 0; i < r->nworkers; i++) {
		if (pthread_create(&r->workers[i].thread, NULL, fn, &r->workers[i]) != 0) {
			rc = dc_error_set(err, DC_EIO, "cannot start worker thread %d", i);
			break;
		}
		started++;
	}
	if (rc) {
		pthread_mutex_lock(&r->mu);
		r->stopping = true;
		pthread_cond_broadcast(&r->cv);
		pthread_mutex_unlock(&r->mu);
	}
	for (i = 0; i < started; i++)
		pthread_join(r->workers[i].thread, NULL);
	return rc;
}

/* A wave's workers, with the ledger writer beside them; without it (the
 * workers append full batches themselves) when its thread cannot start. Every
 * batch handed to the writer is in the ledger (or has failed) on return. */
static int run_wave_workers(rollout *r, dc_error *err)
{
	pthread_t writer;
	int rc;

	r->writer_quit = false;
	r->writer_on = r->ledger && pthread_create(&writer, NULL, ledger_writer, r) == 0;
	rc = run_workers(r, wave_worker, err);
	if (r->writer_on) {
		pthread_mutex_lock(&r->mu);
		r->writer_quit = true;
		pthread_cond_broadcast(&r->wcv);
		pthread_mutex_unlock(&r->mu);
		pthread_join(writer, NULL);
		r->writer_on = false;
	}
	return rc;
}

/* Cumulative wave ends over `n` planned tenants: canary, then each wave. */
static int plan_waves(rollout *r, size_t n, dc_error *err)
{
	const dc_config *cfg = r->cfg;
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

/* ------------------------------------------------------------------------ */
/* Planning: every tenant's history, read in parallel.                      */

static void plan_one(rollout *r, size_t ti, const dc_history_row *rows, size_t nrows)
{
	int rc;

	r->readable[ti] = true;
	rc = dc_rollout__todo_compute(&r->todos[ti], r->set, rows, nrows, r->opts->direction,
	                              r->to);
	if (rc == DC_EINVAL) {
		/* not plannable: fails visibly when dispatched */
		r->readable[ti] = false;
		snprintf(r->read_error[ti], sizeof(r->read_error[0]), "%.500s",
		         r->todos[ti].problem);
	}
}

static int plan_all(rollout *r, dc_error *err);

/*
 * A rollback without --to undoes the newest migration applied anywhere in
 * the fleet: every tenant goes back to the version before it. A fleet-wide
 * target (rather than "each tenant's latest") makes a crashed rollback
 * resumable — running it again finishes the same step instead of undoing
 * one more migration on the tenants that were already done.
 */
static int fleet_rollback_target(rollout *r, dc_error *err)
{
	const char *latest = NULL;
	size_t i, k;

	for (i = 0; i < r->rep->ntenants; i++)
		if (r->todos[i].n > 0 &&
		    (!latest || dc_version_compare(r->todos[i].migs[0]->version, latest) > 0))
			latest = r->todos[i].migs[0]->version;
	if (!latest)
		return 0;
	for (k = 0; k < r->set->count; k++)
		if (strcmp(r->set->migrations[k].version, latest) == 0)
			break;
	/* "" as the target: below the first migration, everything is undone */
	snprintf(r->to_buf, sizeof(r->to_buf), "%s",
	         k > 0 && k < r->set->count ? r->set->migrations[k - 1].version : "");
	r->to = r->to_buf;
	for (i = 0; i < r->rep->ntenants; i++) {
		dc_rollout__todo_release(&r->todos[i]);
		r->readable[i] = false;
		r->read_error[i][0] = '\0';
	}
	return plan_all(r, err);
}

static void *plan_worker(void *arg)
{
	worker *w = arg;
	rollout *r = w->r;

	for (;;) {
		dc_history_row *rows = NULL;
		dc_error err = { 0 };
		dc_conn *conn = NULL;
		size_t ti, nrows = 0;
		int rc;

		pthread_mutex_lock(&r->mu);
		ti = r->plan_next < r->rep->ntenants && !stop_requested(r) ? r->plan_next++
		                                                           : SIZE_MAX;
		pthread_mutex_unlock(&r->mu);
		if (ti == SIZE_MAX)
			break;
		rc = worker_conn(w, r->tenant_engine[ti], &conn, &err);
		if (rc == 0 && r->ops->history_peek) {
			rc = r->ops->history_peek(conn, &r->rep->tenants[ti], &rows, &nrows, &err);
		} else if (rc == 0) {
			rc = r->ops->enter(conn, &r->rep->tenants[ti], &err);
			if (rc == 0)
				rc = r->ops->history_read(conn, &rows, &nrows, &err);
		}
		if (rc == 0) {
			plan_one(r, ti, rows, nrows);
		} else {
			snprintf(r->read_error[ti], sizeof(r->read_error[0]), "%.500s",
			         err.message);
		}
		dc_history_rows_free(rows, nrows);
	}
	return NULL;
}

/* Every tenant's plan: one query per shard where the engine can, else in parallel per
 * tenant. */
static int plan_all(rollout *r, dc_error *err)
{
	size_t e, i, n;
	int rc = 0;

	if (!r->ops->history_read_all)
		return run_workers(r, plan_worker, err);
	for (e = 0; e < r->nengines && rc == 0; e++) {
		dc_history_row **rows = NULL;
		size_t *counts = NULL, first = SIZE_MAX;
		char(*errors)[512] = NULL;

		/* discovery keeps each engine's tenants together */
		for (i = 0, n = 0; i < r->rep->ntenants; i++)
			if (r->tenant_engine[i] == e) {
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
			rc = r->ops->history_read_all(r->engines[e], &r->rep->tenants[first], n,
			                              rows, counts, errors, err);
		for (i = 0; rc == 0 && i < n; i++) {
			if (errors[i][0])
				snprintf(r->read_error[first + i], sizeof(r->read_error[0]),
				         "%.500s", errors[i]);
			else
				plan_one(r, first + i, rows[i], counts[i]);
		}
		for (i = 0; rows && i < n; i++)
			dc_history_rows_free(rows[i], counts[i]);
		free(rows);
		free(counts);
		free(errors);
	}
	return rc;
}

/* ------------------------------------------------------------------------ */

static int on_gate(const dc_gate_result *res, void *ctx)
{
	dc_rollout_report *rep = ctx;
	dc_gate_result *g = dc_realloc_array(rep->gates, rep->ngates + 1, sizeof(*g));

	if (!g)
		return DC_ENOMEM;
	rep->gates = g;
	g[rep->ngates++] = *res;
	return 0;
}

static json_t *gate_json(const dc_gate_result *g)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:I}", "gate", g->gate, "stage",
	                 dc_gate_stage_name(g->stage), "verdict", dc_gate_verdict_name(g->verdict),
	                 "detail", g->detail, "duration_ms", (json_int_t)g->duration_ms);
}

typedef struct open_runs {
	char run_ids[64][33];
	int pids[64];
	long long starts[64];
	char hosts[64][128];
	size_t n;
} open_runs;

static int scan_run(json_t *e, void *ctx)
{
	open_runs *o = ctx;
	const char *ev = json_string_value(json_object_get(e, "event"));
	const char *run = json_string_value(json_object_get(e, "run_id"));
	json_t *data = json_object_get(e, "data");
	size_t i;

	if (!ev || !run)
		return 0;
	if (strcmp(ev, "run_start") == 0 && o->n < 64) {
		snprintf(o->run_ids[o->n], sizeof(o->run_ids[0]), "%s", run);
		o->pids[o->n] = (int)json_integer_value(json_object_get(data, "pid"));
		o->starts[o->n] = (long long)json_integer_value(json_object_get(data, "pid_start"));
		snprintf(o->hosts[o->n], sizeof(o->hosts[0]), "%s",
		         json_string_value(json_object_get(data, "host"))
		                 ? json_string_value(json_object_get(data, "host"))
		                 : "");
		o->n++;
		return 0;
	}
	if (strcmp(ev, "run_end") != 0 && strcmp(ev, "run_interrupted") != 0)
		return 0;
	if (strcmp(ev, "run_interrupted") == 0)
		run = json_string_value(json_object_get(data, "interrupted_run"));
	for (i = 0; run && i < o->n; i++) {
		if (strcmp(o->run_ids[i], run) == 0) {
			o->n--;
			memmove(&o->run_ids[i], &o->run_ids[i + 1],
			        (o->n - i) * sizeof(o->run_ids[0]));
			memmove(&o->pids[i], &o->pids[i + 1], (o->n - i) * sizeof(o->pids[0]));
			memmove(&o->starts[i], &o->starts[i + 1],
			        (o->n - i) * sizeof(o->starts[0]));
			memmove(&o->hosts[i], &o->hosts[i + 1], (o->n - i) * sizeof(o->hosts[0]));
			break;
		}
	}
	return 0;
}

/*
 * When process `pid` started, in clock ticks since boot (field 22 of
 * /proc/PID/stat), or -1 when it does not exist or is a zombie: a killed
 * run whose parent has not reaped it yet must count as gone.
 */
static long long process_start(int pid)
{
	char path[64], buf[1024], state = '?';
	long long start = -1;
	const char *p;
	FILE *f;
	size_t n;
	int field;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* the command name may hold spaces and parentheses: fields start after the last ')' */
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 1, " %c", &state) != 1 || state == 'Z' || state == 'X')
		return -1;
	for (field = 3, p += 2; *p && field < 22; p++)
		if (*p == ' ')
			field++;
	if (field == 22)
		start = strtoll(p, NULL, 10);
	return start;
}

/* Whether the run of `pid` (started at `start`, 0 = unknown) is still running here. A
 * reused pid has another start time. */
static bool process_alive(int pid, long long start)
{
	long long now;

	if (pid <= 0)
		return false;
	if (access("/proc/self/stat", R_OK) != 0)
		return kill(pid, 0) == 0; /* no /proc: the best there is */
	now = process_start(pid);
	return now >= 0 && (start <= 0 || now == start);
}

/* Runs that started and never ended, and whose process is gone: record them as interrupted. */
static int record_interrupted(rollout *r, dc_error *err)
{
	open_runs *o = calloc(1, sizeof(*o));
	char host[128] = "";
	size_t i;
	int rc = 0;

	if (!o)
		return dc_error_set(err, DC_ENOMEM, "out of memory");
	gethostname(host, sizeof(host) - 1);
	if (dc_path_exists(r->cfg->audit.ledger) &&
	    (rc = dc_ledger_read(r->cfg->audit.ledger, NULL, scan_run, o, err)) != 0)
		goto out;
	for (i = 0; i < o->n; i++) {
		/* a run of a live process on this host is not interrupted, just concurrent */
		if (strcmp(o->hosts[i], host) == 0 && process_alive(o->pids[i], o->starts[i]))
			continue;
		if ((rc = record(r, "run_interrupted",
		                 json_pack("{s:s}", "interrupted_run", o->run_ids[i]), err)) != 0)
			goto out;
	}
out:
	free(o);
	return rc;
}

static void plan_hash(rollout *r, char out[65])
{
	dc_strbuf sb = DC_STRBUF_INIT;
	size_t i, k;

	for (i = 0; i < r->rep->ntenants; i++) {
		const dc_rollout__todo *t = &r->todos[i];

		dc_strbuf_addf(&sb, "%s %s", r->rep->tenants[i].id, t->from);
		for (k = 0; k < t->n; k++)
			dc_strbuf_addf(&sb, " %s", t->migs[k]->version);
		dc_strbuf_addch(&sb, '\n');
	}
	dc_sha256_hex(out, sb.buf, sb.len);
	dc_strbuf_release(&sb);
}

static void free_rollout(rollout *r)
{
	size_t i, e;
	int w;

	for (w = 0; r->workers && w < r->nworkers; w++) {
		for (e = 0; e < r->nengines; e++)
			if (r->workers[w].conns && r->workers[w].conns[e])
				r->ops->disconnect(r->workers[w].conns[e]);
		free(r->workers[w].conns);
	}
	free(r->workers);
	for (e = 0; r->engines && e < r->nengines; e++)
		if (r->engines[e])
			r->ops->close(r->engines[e]);
	free(r->engines);
	for (i = 0; r->todos && r->rep && i < r->rep->ntenants; i++)
		dc_rollout__todo_release(&r->todos[i]);
	for (i = 0; i < r->npending; i++)
		json_decref(r->pending[i].data);
	free(r->todos);
	free(r->readable);
	free(r->read_error);
	free(r->tenant_engine);
	free(r->shard_budget);
	free(r->shard_inflight);
	free(r->queue);
	free(r->taken);
	free(r->hinted);
	dc_gate_registry_free(r->gates);
	free_derived(r);
	pthread_mutex_destroy(&r->mu);
	pthread_cond_destroy(&r->cv);
	pthread_cond_destroy(&r->wcv);
}

/* Discovers every shard's tenants into rep->tenants, applying the --tenant filter. */
static int discover(rollout *r, dc_error *err)
{
	dc_rollout_report *rep = r->rep;
	const dc_rollout_opts *opts = r->opts;
	size_t e, i, k;
	int rc;

	for (e = 0; e < r->nengines; e++) {
		dc_tenant *ts = NULL, *all;
		size_t n = 0;

		if ((rc = r->ops->discover(r->engines[e], &ts, &n, err)) != 0)
			return rc;
		all = dc_realloc_array(rep->tenants, rep->ntenants + n + 1, sizeof(*all));
		if (!all) {
			dc_tenants_free(ts, n);
			return dc_error_set(err, DC_ENOMEM, "out of memory");
		}
		rep->tenants = all;
		if (n)
			memcpy(all + rep->ntenants, ts, n * sizeof(*ts));
		rep->ntenants += n;
		free(ts); /* the strings moved into rep->tenants */
		r->tenant_engine = dc_realloc_array(r->tenant_engine, rep->ntenants + 1,
		                                    sizeof(*r->tenant_engine));
		if (!r->tenant_engine)
			return dc_error_set(err, DC_ENOMEM, "out of memory");
		for (i = rep->ntenants - n; i < rep->ntenants; i++)
			r->tenant_engine[i] = e;
	}
	if (!opts->tenants || opts->ntenants == 0)
		return 0;
	for (k = 0; k < opts->ntenants; k++) {
		const char **names;
		const char *hint;
		bool found = false;

		for (i = 0; i < rep->ntenants && !found; i++)
			found = strcmp(rep->tenants[i].id, opts->tenants[k]) == 0;
		if (found)
			continue;
		/* every tenant is a candidate: a typo of the 1000th must not be
		 * answered with the nearest of the first few */
		names = dc_malloc_array(rep->ntenants + 1, sizeof(*names));
		for (i = 0; names && i < rep->ntenants; i++)
			names[i] = rep->tenants[i].id;
		hint = names ? dc_suggest(opts->tenants[k], names, rep->ntenants) : NULL;
		rc = dc_error_set(err, DC_EINVAL, "no tenant '%s' in the fleet%s%s%s",
		                  opts->tenants[k], hint ? " (did you mean '" : "",
		                  hint ? hint : "", hint ? "'?)" : "");
		free(names);
		return rc;
	}
	/* keep only the named tenants, in discovery order */
	for (i = 0, e = 0; i < rep->ntenants; i++) {
		bool keep = false;

		for (k = 0; k < opts->ntenants && !keep; k++)
			keep = strcmp(rep->tenants[i].id, opts->tenants[k]) == 0;
		if (keep) {
			rep->tenants[e] = rep->tenants[i];
			r->tenant_engine[e] = r->tenant_engine[i];
			e++;
		} else {
			free(rep->tenants[i].id);
			free(rep->tenants[i].shard);
			free(rep->tenants[i].target);
		}
	}
	rep->ntenants = e;
	return 0;
}

static int setup(rollout *r, dc_error *err)
{
	const dc_config *cfg = r->cfg;
	size_t e;
	long cpus;
	int w, rc, parallel;

	r->ops = dc_engine_for(cfg->engine);
	if (!r->ops)
		return dc_error_set(err, DC_EINVAL, "this build has no engine for '%s'",
		                    cfg->engine == DC_ENGINE_POSTGRES ? "postgres" : "sqlite");
	r->nengines = cfg->engine == DC_ENGINE_SQLITE || cfg->nshards == 0 ? 1 : cfg->nshards;
	r->engines = calloc(r->nengines, sizeof(*r->engines));
	r->shard_budget = calloc(r->nengines, sizeof(*r->shard_budget));
	r->shard_inflight = calloc(r->nengines, sizeof(*r->shard_inflight));
	if (!r->engines || !r->shard_budget || !r->shard_inflight)
		return dc_error_set(err, DC_ENOMEM, "out of memory");
	for (e = 0; e < r->nengines; e++) {
		const dc_shard_config *shard = cfg->engine == DC_ENGINE_SQLITE || cfg->nshards == 0
		                                       ? NULL
		                                       : &cfg->shards[e];

		if ((rc = r->ops->open(&r->engines[e], cfg, shard, err)) != 0)
			return rc;
		if (r->ops->set_run)
			r->ops->set_run(r->engines[e], r->rep->run_id);
		r->shard_budget[e] = shard ? shard->parallel : 0;
	}
	parallel = r->opts->parallel > 0 ? r->opts->parallel : cfg->rollout.parallel;
	if (parallel < 1)
		parallel = 1;
	r->nworkers = parallel;
	/* A prefetch runs beside its worker, on a core the workers leave idle
	 * while their commits wait on the disk. With a worker per core there is
	 * none: the prefetch would compete with the workers, and cost a read
	 * transaction and a thread hand-off per tenant besides (bench/sqlite_fleet.sh
	 * at -j 2 on 2 cores); each worker then opens its tenants itself. */
	cpus = sysconf(_SC_NPROCESSORS_ONLN);
	r->prefetch = r->ops->prefetch && (cpus < 1 || parallel < cpus);
	r->workers = calloc((size_t)parallel, sizeof(*r->workers));
	if (!r->workers)
		return dc_error_set(err, DC_ENOMEM, "out of memory");
	for (w = 0; w < parallel; w++) {
		r->workers[w].r = r;
		r->workers[w].hint = SIZE_MAX;
		r->workers[w].next_ti = SIZE_MAX;
		r->workers[w].conns = calloc(r->nengines, sizeof(dc_conn *));
		if (!r->workers[w].conns)
			return dc_error_set(err, DC_ENOMEM, "out of memory");
	}
	return dc_gate_registry_new(&r->gates) ? dc_error_set(err, DC_ENOMEM, "out of memory")
	                                       : dc_gate__register_builtins(r->gates, cfg, err);
}

static json_t *run_start_json(rollout *r, const char *phash)
{
	const dc_rollout_report *rep = r->rep;
	char host[128] = "";
	json_t *d, *migs;
	size_t i;

	gethostname(host, sizeof(host) - 1);
	d = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:i, s:i, s:I, s:s}", "direction",
	              r->opts->direction == DC_ROLLOUT_APPLY ? "apply" : "rollback", "config_hash",
	              r->opts->config_hash ? r->opts->config_hash : "", "plan_hash", phash,
	              "target", rep->target, "to", r->to ? r->to : "", "tenants",
	              (json_int_t)rep->ntenants, "planned", (json_int_t)rep->planned, "parallel",
	              r->nworkers, "pid", (int)getpid(), "pid_start",
	              (json_int_t)process_start((int)getpid()), "host", host);
	migs = json_array();
	if (!d || !migs) {
		json_decref(d);
		json_decref(migs);
		return NULL;
	}
	for (i = 0; i < r->set->count; i++)
		json_array_append_new(migs, json_pack("{s:s, s:s}", "version",
		                                      r->set->migrations[i].version, "checksum",
		                                      r->set->migrations[i].checksum));
	json_object_set_new(d, "migrations", migs);
	return d;
}

static bool grow_queue(rollout *r, size_t n)
{
	size_t *q = dc_realloc_array(r->queue, n, sizeof(*q));
	bool *taken;

	if (!q)
		return false;
	r->queue = q;
	taken = dc_realloc_array(r->taken, n, sizeof(*taken));
	if (!taken)
		return false;
	r->taken = taken;
	taken = dc_realloc_array(r->hinted, n, sizeof(*taken));
	if (!taken)
		return false;
	r->hinted = taken;
	return true;
}

static int run_waves(rollout *r, size_t *planned_idx, dc_error *err)
{
	dc_rollout_report *rep = r->rep;
	size_t wi, i, base = 0;
	int rc = 0;

	for (wi = 0; wi < rep->nwaves; wi++) {
		dc_wave_report *w = &rep->waves[wi];
		int64_t t0 = dc_time_mono_ms();
		json_t *ids = NULL;

		if (stop_requested(r))
			break;
		r->wave = (int)wi;
		r->cur = w;
		if (!grow_queue(r, w->total + 1))
			return dc_error_set(err, DC_ENOMEM, "out of memory");
		for (i = 0; i < w->total; i++) {
			r->queue[i] = planned_idx[base + i];
			r->taken[i] = false;
			r->hinted[i] = false;
			rep->outcomes[r->queue[i]].wave = (int)wi;
		}
		r->qlen = w->total;
		r->qhead = 0;
		/* the wave is decided: record it before dispatching a tenant */
		if (w->total <= 1000 && (ids = json_array()) != NULL)
			for (i = 0; i < w->total; i++)
				json_array_append_new(ids,
				                      json_string(rep->tenants[r->queue[i]].id));
		w->started_ms = dc_time_now_ms();
		if ((rc = record(r, "wave_start",
		                 json_pack("{s:i, s:s, s:I, s:o*}", "wave", (int)wi, "name",
		                           w->name, "tenants", (json_int_t)w->total, "ids", ids),
		                 err)) != 0)
			return rc;
		if (r->opts->progress) {
			dc_rollout_progress p;

			memset(&p, 0, sizeof(p));
			p.wave = w;
			p.nwaves = rep->nwaves;
			p.done_total = r->done_total;
			p.total = rep->planned;
			r->opts->progress(&p, r->opts->progress_ctx);
		}
		if ((rc = run_wave_workers(r, err)) != 0)
			return rc;
		for (i = 0; i < w->total; i++)
			if (!r->taken[i]) {
				rep->outcomes[r->queue[i]].status = DC_TENANT_NOT_RUN;
				w->not_run++;
			}
		w->duration_ms = dc_time_mono_ms() - t0;
		pthread_mutex_lock(&r->mu);
		rc = flush_outcomes(r);
		pthread_mutex_unlock(&r->mu);
		if (rc) {
			dc_error_set(err, rc, "%s", r->ledger_err.message);
			return rc;
		}
		add_step(rep, "execute_migration_with_rollback", w->failed ? "failed" : "success",
		         w->duration_ms, w->name,
		         "%zu tenant%s: %zu succeeded, %zu failed, %zu skipped, %zu not run%s",
		         w->total, w->total == 1 ? "" : "s", w->succeeded, w->failed, w->skipped,
		         w->not_run,
		         w->over_budget ? " — over the failure budget, rollout stopped" : "");
		if ((rc = record(r, "wave_end",
		                 json_pack("{s:i, s:s, s:I, s:I, s:I, s:I, s:I, s:b}", "wave",
		                           (int)wi, "name", w->name, "succeeded",
		                           (json_int_t)w->succeeded, "failed",
		                           (json_int_t)w->failed, "skipped", (json_int_t)w->skipped,
		                           "not_run", (json_int_t)w->not_run, "duration_ms",
		                           (json_int_t)w->duration_ms, "over_budget",
		                           w->over_budget),
		                 err)) != 0)
			return rc;
		if (r->opts->progress) {
			dc_rollout_progress p;

			memset(&p, 0, sizeof(p));
			p.wave = w;
			p.nwaves = rep->nwaves;
			p.wave_done = true;
			p.done_total = r->done_total;
			p.total = rep->planned;
			r->opts->progress(&p, r->opts->progress_ctx);
		}
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

int dc_rollout_run(dc_rollout_report **out,
                   const dc_config *cfg,
                   const dc_migration_set *set,
                   dc_ledger *ledger,
                   const dc_rollout_opts *opts,
                   dc_error *err)
{
	dc_gate__preflight pf;
	dc_rollout_report *rep = NULL;
	size_t *planned_idx = NULL;
	dc_gate_ctx gctx;
	rollout r;
	char phash[65];
	const char *status;
	int64_t t0 = dc_time_mono_ms(), t;
	size_t i;
	int rc, grc;
	bool started = false;

	*out = NULL;
	if (opts->version == 0 || opts->version > DC_ROLLOUT_OPTIONS_VERSION)
		return dc_error_set(err, DC_EINVAL,
		                    "rollout options of version %u: this library knows 1 to %d "
		                    "(start from DC_ROLLOUT_OPTIONS_INIT)",
		                    opts->version, DC_ROLLOUT_OPTIONS_VERSION);
	memset(&r, 0, sizeof(r));
	pthread_mutex_init(&r.mu, NULL);
	pthread_cond_init(&r.cv, NULL);
	pthread_cond_init(&r.wcv, NULL);
	rep = calloc(1, sizeof(*rep));
	if (!rep) {
		rc = dc_error_set(err, DC_ENOMEM, "out of memory");
		goto out;
	}
	*out = rep;
	r.cfg = cfg;
	r.set = set;
	r.orig_set = set;
	r.opts = opts;
	r.ledger = ledger;
	r.rep = rep;
	dc_actor(r.actor, sizeof(r.actor));
	rep->direction = opts->direction;
	rep->dry_run = opts->dry_run;
	rep->started_ms = dc_time_now_ms();
	snprintf(rep->run_id, sizeof(rep->run_id), "%s",
	         ledger ? dc_ledger_run_id(ledger) : "dry-run");
	if (!ledger && !opts->dry_run) {
		rc = dc_error_set(err, DC_EINVAL,
		                  "a rollout that changes something needs a ledger");
		goto out;
	}
	if (opts->to_version && !dc_migration_set_find(set, opts->to_version)) {
		rc = dc_error_set(err, DC_EINVAL, "--to '%s': no migration has this version",
		                  opts->to_version);
		goto out;
	}

	/* topology */
	t = dc_time_mono_ms();
	if ((rc = setup(&r, err)) != 0 || (rc = derive_set(&r, err)) != 0 ||
	    (rc = discover(&r, err)) != 0)
		goto out;
	rep->outcomes = calloc(rep->ntenants + 1, sizeof(*rep->outcomes));
	r.todos = calloc(rep->ntenants + 1, sizeof(*r.todos));
	r.readable = calloc(rep->ntenants + 1, sizeof(*r.readable));
	r.read_error = calloc(rep->ntenants + 1, sizeof(*r.read_error));
	planned_idx = calloc(rep->ntenants + 1, sizeof(*planned_idx));
	if (!rep->outcomes || !r.todos || !r.readable || !r.read_error || !planned_idx) {
		rc = dc_error_set(err, DC_ENOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < rep->ntenants; i++) {
		rep->outcomes[i].tenant = &rep->tenants[i];
		rep->outcomes[i].status = DC_TENANT_SKIPPED;
	}
	add_step(rep, "analyze_service_topology", "success", dc_time_mono_ms() - t,
	         "discover shards and tenants", "%zu tenants on %zu %s", rep->ntenants, r.nengines,
	         cfg->engine == DC_ENGINE_SQLITE ? "fleet folder(s)" : "shard(s)");
	if (rep->ntenants == 0) {
		rc = dc_error_set(err, DC_EINVAL, "no tenants found (tenancy in '%s')", cfg->path);
		goto out;
	}

	/* plan: every tenant's history */
	t = dc_time_mono_ms();
	r.to = opts->to_version;
	if ((rc = plan_all(&r, err)) != 0)
		goto out;
	if (opts->direction == DC_ROLLOUT_ROLLBACK && !opts->to_version &&
	    (rc = fleet_rollback_target(&r, err)) != 0)
		goto out;
	for (i = 0; i < rep->ntenants; i++) {
		dc_tenant_outcome *o = &rep->outcomes[i];

		snprintf(o->from, sizeof(o->from), "%s", r.todos[i].from);
		snprintf(o->to, sizeof(o->to), "%s", r.todos[i].from);
		if (r.todos[i].n > 0 || !r.readable[i]) {
			planned_idx[rep->planned++] = i;
			if (r.todos[i].n > 0 && dc_version_compare(r.todos[i].to, rep->target) > 0)
				snprintf(rep->target, sizeof(rep->target), "%s", r.todos[i].to);
		}
	}
	if (opts->direction == DC_ROLLOUT_ROLLBACK && r.to)
		snprintf(rep->target, sizeof(rep->target), "%s", r.to[0] ? r.to : "(none)");
	if (opts->direction == DC_ROLLOUT_APPLY && !rep->target[0] && set->count)
		snprintf(rep->target, sizeof(rep->target), "%s",
		         opts->to_version ? opts->to_version
		                          : set->migrations[set->count - 1].version);
	plan_hash(&r, phash);
	{
		size_t unreadable = 0;

		for (i = 0; i < rep->ntenants; i++)
			unreadable += !r.readable[i];
		add_step(rep, "generate_migration_plan", unreadable ? "warning" : "success",
		         dc_time_mono_ms() - t, "read every tenant's history",
		         "%zu of %zu tenants need work (target '%s'), %zu up to date, %zu "
		         "unreadable; plan %.12s",
		         rep->planned, rep->ntenants, rep->target, rep->ntenants - rep->planned,
		         unreadable, phash);
	}

	/* preflight gates */
	t = dc_time_mono_ms();
	memset(&pf, 0, sizeof(pf));
	pf.rollback = opts->direction == DC_ROLLOUT_ROLLBACK;
	pf.allow_out_of_order = opts->allow_out_of_order;
	pf.ledger_pubkey = opts->ledger_pubkey;
	pf.tenants = rep->tenants;
	pf.todos = r.todos;
	pf.ntenants = rep->ntenants;
	memset(&gctx, 0, sizeof(gctx));
	gctx.cfg = cfg;
	gctx.set = set;
	gctx.stop = opts->stop;
	gctx.user = &pf;
	grc = dc_gate_registry_run(r.gates, DC_GATE_PREFLIGHT, &gctx, on_gate, rep, NULL, err);
	add_step(rep, "validate_migration_prerequisites", grc ? "failed" : "success",
	         dc_time_mono_ms() - t, "parse, checksums, ledger",
	         "%zu migrations parse; deployclaw.sum %s; ledger %s", set->count,
	         rep->ngates > 1 && rep->gates[1].verdict == DC_GATE_PASS ? "matches" : "unchecked",
	         rep->ngates > 0 && rep->gates[0].verdict == DC_GATE_PASS ? "verifies" : "fails");
	add_step(rep, "validate_safety_gates", grc ? "failed" : "success", dc_time_mono_ms() - t,
	         "evaluate preflight gates", "%zu gates evaluated%s%s", rep->ngates,
	         grc ? ": " : ", all pass", grc ? err->message : "");
	if (grc) {
		const char *gate = rep->ngates ? rep->gates[rep->ngates - 1].gate : "";

		/* integrity failures are exit 4; a broken ledger cannot take an entry */
		if (strcmp(gate, "ledger") == 0 || strcmp(gate, "sum_file") == 0) {
			err->code = rc = DC_EINTEGRITY;
			goto out;
		}
		rc = grc;
		if (ledger && !opts->dry_run) {
			dc_error lerr = { 0 };

			record(&r, "gate", gate_json(&rep->gates[rep->ngates - 1]), &lerr);
			record(&r, "run_refused",
			       json_pack("{s:s, s:s}", "gate", gate, "reason", err->message),
			       &lerr);
		}
		goto out;
	}
	if (opts->dry_run) {
		rc = 0;
		for (i = 0; i < rep->ntenants; i++)
			rep->outcomes[i].status = DC_TENANT_SKIPPED;
		goto out;
	}

	/* decisions recorded before acting */
	if ((rc = record_interrupted(&r, err)) != 0)
		goto out;
	if ((rc = record(&r, "run_start", run_start_json(&r, phash), err)) != 0)
		goto out;
	started = true;
	{
		dc_ledger_event ev[64];
		size_t n = rep->ngates < 64 ? rep->ngates : 64;

		for (i = 0; i < n; i++) {
			ev[i].event = "gate";
			ev[i].data = gate_json(&rep->gates[i]);
		}
		int64_t first = 0;

		rc = n ? dc_ledger_append_batch(ledger, ev, n, &first, err) : 0;
		if (rc == 0 && n)
			note_seqs(&r, first, n);
		for (i = 0; i < n; i++)
			json_decref(ev[i].data);
		if (rc)
			goto out;
	}

	/* roll out */
	if ((rc = plan_waves(&r, rep->planned, err)) != 0)
		goto out;
	for (i = 0; i < rep->planned; i++)
		rep->outcomes[planned_idx[i]].status = DC_TENANT_NOT_RUN;
	rc = run_waves(&r, planned_idx, err);
out:
	if (rep) {
		for (i = 0; i < rep->ntenants; i++) {
			switch (rep->outcomes ? rep->outcomes[i].status : DC_TENANT_SKIPPED) {
			case DC_TENANT_SUCCEEDED:
				rep->succeeded++;
				break;
			case DC_TENANT_FAILED:
				rep->failed++;
				break;
			case DC_TENANT_SKIPPED:
				rep->skipped++;
				break;
			case DC_TENANT_NOT_RUN:
				rep->not_run++;
				break;
			}
		}
		for (i = 0; i < rep->nwaves; i++)
			rep->over_budget |= rep->waves[i].over_budget;
		rep->interrupted = opts->stop && *opts->stop;
		rep->duration_ms = dc_time_mono_ms() - t0;
	}
	if (rc == 0 && rep && !opts->dry_run) {
		if (rep->interrupted)
			rc = dc_error_set(err, DC_EINTERRUPTED,
			                  "interrupted: %zu tenants were not dispatched; run it "
			                  "again to resume",
			                  rep->not_run);
		else if (rep->failed || rep->not_run)
			rc = dc_error_set(
			        err, DC_ETENANT, "%zu tenant%s failed%s", rep->failed,
			        rep->failed == 1 ? "" : "s",
			        rep->over_budget ? ": the failure budget stopped the rollout" : "");
	}
	if (started) {
		dc_error lerr = { 0 };

		status = rc == 0 ? "succeeded" : rc == DC_EINTERRUPTED ? "interrupted" : "failed";
		pthread_mutex_lock(&r.mu);
		flush_outcomes(&r);
		pthread_mutex_unlock(&r.mu);
		grc = record(&r, "run_end",
		             json_pack("{s:s, s:I, s:I, s:I, s:I, s:I}", "status", status,
		                       "succeeded", (json_int_t)rep->succeeded, "failed",
		                       (json_int_t)rep->failed, "skipped", (json_int_t)rep->skipped,
		                       "not_run", (json_int_t)rep->not_run, "duration_ms",
		                       (json_int_t)rep->duration_ms),
		             &lerr);
		if (grc && rc == 0)
			rc = dc_error_set(err, grc, "%s", lerr.message);
		if (grc)
			add_step(rep, "immutable_audit_log", "failed", 0,
			         "append to the signed ledger",
			         "could not record the run's end: %.400s", lerr.message);
		else
			add_step(rep, "immutable_audit_log", "success", 0,
			         "append to the signed ledger",
			         "%lld entries appended to '%s' (seq %lld..%lld), hash-chained and "
			         "Ed25519-signed",
			         (long long)(r.last_seq - r.first_seq + 1), cfg->audit.ledger,
			         (long long)r.first_seq, (long long)r.last_seq);
	} else if (rep && opts->dry_run) {
		add_step(rep, "immutable_audit_log", "skipped", 0, "append to the signed ledger",
		         "dry run: nothing changed, nothing recorded");
	}
	free(planned_idx);
	free_rollout(&r);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* Status.                                                                  */

/* The latest outcome of each tenant in the ledger: a failure there is shown. */
static int scan_one_outcome(dc_status *st, json_t *d)
{
	const char *id = json_string_value(json_object_get(d, "tenant"));
	const char *status = json_string_value(json_object_get(d, "status"));
	const char *error = json_string_value(json_object_get(d, "error"));
	size_t lo = 0, hi = st->ntenants;

	if (!id || !status)
		return 0;
	/* tenants are sorted by id within an engine; fall back to a scan when not found */
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(st->tenants[mid].id, id);

		if (c == 0) {
			lo = mid;
			break;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo >= st->ntenants || strcmp(st->tenants[lo].id, id) != 0)
		for (lo = 0; lo < st->ntenants && strcmp(st->tenants[lo].id, id) != 0; lo++)
			;
	if (lo >= st->ntenants)
		return 0;
	if (strcmp(status, "failed") == 0) {
		st->rows[lo].failed = true;
		snprintf(st->rows[lo].detail, sizeof(st->rows[lo].detail), "last run failed: %s",
		         error ? error : "unknown error");
	} else if (strcmp(status, "succeeded") == 0 || strcmp(status, "skipped") == 0) {
		st->rows[lo].failed = false;
		st->rows[lo].detail[0] = '\0';
	}
	return 0;
}

/* `tenants` entries hold a batch of outcomes; `tenant` entries (written
 * before outcomes were batched) one each. */
static int scan_outcome(json_t *e, void *ctx)
{
	const char *event = json_string_value(json_object_get(e, "event"));
	json_t *d = json_object_get(e, "data"), *outcomes = json_object_get(d, "outcomes");
	size_t i;

	if (!event)
		return 0;
	if (strcmp(event, OUTCOME_EVENT) == 0)
		return scan_one_outcome(ctx, d);
	if (strcmp(event, OUTCOMES_ENTRY) == 0)
		for (i = 0; i < json_array_size(outcomes); i++)
			scan_one_outcome(ctx, json_array_get(outcomes, i));
	return 0;
}

void dc_status_free(dc_status *st)
{
	if (!st)
		return;
	dc_tenants_free(st->tenants, st->ntenants);
	free(st->rows);
	free(st->versions);
	free(st);
}

int dc_status_collect(dc_status **out,
                      const dc_config *cfg,
                      const dc_migration_set *set,
                      int parallel,
                      dc_error *err)
{
	dc_rollout_opts opts = DC_ROLLOUT_OPTIONS_INIT;
	dc_rollout_report *rep = NULL;
	dc_status *st = NULL;
	rollout r;
	size_t i, k;
	int rc;

	*out = NULL;
	memset(&r, 0, sizeof(r));
	pthread_mutex_init(&r.mu, NULL);
	pthread_cond_init(&r.cv, NULL);
	pthread_cond_init(&r.wcv, NULL);
	opts.direction = DC_ROLLOUT_APPLY;
	opts.parallel = parallel;
	rep = calloc(1, sizeof(*rep));
	st = calloc(1, sizeof(*st));
	if (!rep || !st) {
		rc = dc_error_set(err, DC_ENOMEM, "out of memory");
		goto out;
	}
	r.cfg = cfg;
	r.set = set;
	r.orig_set = set;
	r.opts = &opts;
	r.rep = rep;
	if ((rc = setup(&r, err)) != 0 || (rc = derive_set(&r, err)) != 0 ||
	    (rc = discover(&r, err)) != 0)
		goto out;
	r.todos = calloc(rep->ntenants + 1, sizeof(*r.todos));
	r.readable = calloc(rep->ntenants + 1, sizeof(*r.readable));
	r.read_error = calloc(rep->ntenants + 1, sizeof(*r.read_error));
	st->rows = calloc(rep->ntenants + 1, sizeof(*st->rows));
	st->versions = calloc(set->count + 1, sizeof(*st->versions));
	if (!r.todos || !r.readable || !r.read_error || !st->rows || !st->versions) {
		rc = dc_error_set(err, DC_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = plan_all(&r, err)) != 0)
		goto out;
	/* the tenants move to the status */
	st->tenants = rep->tenants;
	st->ntenants = rep->ntenants;
	rep->tenants = NULL;
	st->nversions = set->count + 1;
	for (k = 0; k < set->count; k++) {
		snprintf(st->versions[k + 1].version, sizeof(st->versions[0].version), "%s",
		         set->migrations[k].version);
		snprintf(st->versions[k + 1].name, sizeof(st->versions[0].name), "%s",
		         set->migrations[k].name);
	}
	for (i = 0; i < st->ntenants; i++) {
		dc_status_tenant *row = &st->rows[i];
		const dc_rollout__todo *t = &r.todos[i];

		row->tenant = &st->tenants[i];
		snprintf(row->version, sizeof(row->version), "%s", t->from);
		row->pending = t->n;
		row->drifted = t->drift;
		if (!r.readable[i]) {
			row->failed = true;
			snprintf(row->detail, sizeof(row->detail), "%s", r.read_error[i]);
		} else if (t->partial) {
			row->failed = true;
			snprintf(row->detail, sizeof(row->detail),
			         "a non-transactional phase was left partial");
		} else if (t->drift) {
			snprintf(row->detail, sizeof(row->detail), "%s", t->problem);
		}
		for (k = 0; k < st->nversions; k++)
			if (strcmp(st->versions[k].version, row->version) == 0) {
				st->versions[k].tenants++;
				break;
			}
	}
	if (dc_path_exists(cfg->audit.ledger) &&
	    (rc = dc_ledger_read(cfg->audit.ledger, NULL, scan_outcome, st, err)) != 0)
		goto out;
	for (i = 0; i < st->ntenants; i++) {
		/* a failure the tenant has since recovered from is not shown */
		if (st->rows[i].failed && st->rows[i].pending == 0 && r.readable[i] &&
		    !r.todos[i].partial) {
			st->rows[i].failed = false;
			st->rows[i].detail[0] = '\0';
		}
		st->pending += st->rows[i].pending > 0;
		st->failed += st->rows[i].failed;
		st->drifted += st->rows[i].drifted;
	}
	*out = st;
	st = NULL;
out:
	free_rollout(&r);
	dc_rollout_report_free(rep);
	dc_status_free(st);
	return rc;
}
