/*
 * batch.c — the ledger entries of a run: appended at once for decisions
 * (run_start, wave_start, ...), batched for tenant outcomes, with a writer
 * thread that appends each full batch beside the workers.
 */
#include <stdlib.h>
#include <string.h>

#include "rollout_internal.h"

void dc_rollout__batch_init(dc_rollout__batch *b, dc_ledger *ledger)
{
	memset(b, 0, sizeof(*b));
	b->ledger = ledger;
	pthread_mutex_init(&b->mu, NULL);
	pthread_cond_init(&b->cv, NULL);
}

void dc_rollout__batch_release(dc_rollout__batch *b)
{
	size_t i;

	for (i = 0; i < b->npending; i++)
		json_decref(b->pending[i].data);
	pthread_mutex_destroy(&b->mu);
	pthread_cond_destroy(&b->cv);
}

static void note_seqs(dc_rollout__batch *b, int64_t first, size_t n)
{
	if (!b->first_seq)
		b->first_seq = first;
	b->last_seq = first + (int64_t)n - 1;
}

int dc_rollout__batch_record(dc_rollout__batch *b, const char *event, json_t *data, dc_error *err)
{
	int64_t seq = 0;
	int rc = 0;

	if (b->ledger && data) {
		rc = dc_ledger__append(b->ledger, event, data, &seq, err);
		if (rc == 0)
			note_seqs(b, seq, 1);
	} else if (!data)
		rc = dc_error_set(err, DC_ENOMEM, "out of memory");
	json_decref(data);
	return rc;
}

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
static int append_events(dc_rollout__batch *b,
                         const dc_ledger__event *ev,
                         size_t n,
                         int64_t *first,
                         size_t *nentries,
                         dc_error *err)
{
	dc_ledger__event out[DC_ROLLOUT__BATCH] = { { NULL, NULL } };
	bool packed[DC_ROLLOUT__BATCH];
	size_t i = 0, m = 0;
	int rc = 0;

	while (i < n && rc == 0) {
		json_t *outcomes;
		size_t bytes;

		if (strcmp(ev[i].event, DC_ROLLOUT__OUTCOME_EVENT) != 0) {
			packed[m] = false;
			out[m++] = ev[i++];
			continue;
		}
		outcomes = json_array();
		for (bytes = 0;
		     outcomes && i < n && strcmp(ev[i].event, DC_ROLLOUT__OUTCOME_EVENT) == 0;
		     i++) {
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
		out[m].event = DC_ROLLOUT__OUTCOMES_ENTRY;
		out[m].data = outcomes ? json_pack("{s:o}", "outcomes", outcomes) : NULL;
		if (!out[m++].data)
			rc = dc_error_set(err, DC_ENOMEM, "out of memory");
	}
	if (rc == 0)
		rc = dc_ledger__append_batch(b->ledger, out, m, first, err);
	for (i = 0; i < m; i++)
		if (packed[i])
			json_decref(out[i].data);
	*nentries = rc == 0 ? m : 0;
	return rc;
}

/* Under b->mu: gives the full pending batch to the idle writer. */
static void hand_off(dc_rollout__batch *b)
{
	memcpy(b->wbatch, b->pending, b->npending * sizeof(b->pending[0]));
	b->wn = b->npending;
	b->npending = 0;
	pthread_cond_broadcast(&b->cv);
}

/* Under b->mu: appends what is queued. True when this is the run's first
 * failure: an outcome that cannot be recorded stops the rollout. */
static bool flush_outcomes(dc_rollout__batch *b)
{
	int64_t first = 0;
	size_t i, entries = 0;
	int rc = 0;

	if (b->npending == 0)
		return false;
	if (b->ledger && b->ledger_rc == 0)
		rc = append_events(b, b->pending, b->npending, &first, &entries, &b->ledger_err);
	if (rc == 0 && first)
		note_seqs(b, first, entries);
	for (i = 0; i < b->npending; i++)
		json_decref(b->pending[i].data);
	b->npending = 0;
	if (rc && b->ledger_rc == 0) {
		b->ledger_rc = rc;
		return true;
	}
	return false;
}

/* Queues an entry for the next batch (`data` is stolen). A full batch goes
 * to the writer, or is appended here when no writer runs. At most one batch
 * is in flight: a worker waits (b->mu released) while the writer still holds
 * the previous one and the next is full. */
void dc_rollout__batch_queue(dc_rollout__batch *b, const char *event, json_t *data)
{
	bool failed = false;

	if (!data)
		return;
	pthread_mutex_lock(&b->mu);
	while (b->npending == DC_ROLLOUT__BATCH && b->writer_on && b->wn > 0)
		pthread_cond_wait(&b->cv, &b->mu);
	if (b->npending == DC_ROLLOUT__BATCH) {
		if (b->writer_on)
			hand_off(b);
		else
			failed |= flush_outcomes(b);
	}
	b->pending[b->npending].event = event;
	b->pending[b->npending].data = data;
	if (++b->npending == DC_ROLLOUT__BATCH) {
		if (!b->writer_on)
			failed |= flush_outcomes(b);
		else if (b->wn == 0)
			hand_off(b);
		/* else the writer takes it when it is done with the previous batch */
	}
	pthread_mutex_unlock(&b->mu);
	if (failed && b->on_fail)
		b->on_fail(b->on_fail_ctx);
}

/*
 * The ledger writer: appends the batches handed to it, in order, with b->mu
 * released, then records the result under b->mu exactly as flush_outcomes
 * does: a batch that cannot be recorded stops the rollout, and no later batch
 * is appended. Runs only while a wave's workers do (between writer_start and
 * writer_stop); the ledger is not touched by anyone else meanwhile.
 */
static void ledger_writer(void *arg)
{
	dc_rollout__batch *b = arg;

	pthread_mutex_lock(&b->mu);
	for (;;) {
		dc_error lerr = { 0 };
		int64_t first = 0;
		size_t i, n, entries = 0;
		bool append, failed = false;
		int rc = 0;

		while (b->wn == 0 && !b->writer_quit)
			pthread_cond_wait(&b->cv, &b->mu);
		if (b->wn == 0)
			break;
		n = b->wn;
		append = b->ledger && b->ledger_rc == 0;
		pthread_mutex_unlock(&b->mu);
		if (append)
			rc = append_events(b, b->wbatch, n, &first, &entries, &lerr);
		for (i = 0; i < n; i++)
			json_decref(b->wbatch[i].data);
		pthread_mutex_lock(&b->mu);
		if (rc == 0 && first)
			note_seqs(b, first, entries);
		if (rc && b->ledger_rc == 0) {
			b->ledger_rc = rc;
			b->ledger_err = lerr;
			failed = true;
		}
		b->wn = 0;
		if (b->npending == DC_ROLLOUT__BATCH)
			hand_off(b);
		pthread_cond_broadcast(&b->cv);
		if (failed && b->on_fail) {
			/* the stop takes the queue's lock: never while holding ours */
			pthread_mutex_unlock(&b->mu);
			b->on_fail(b->on_fail_ctx);
			pthread_mutex_lock(&b->mu);
		}
	}
	pthread_mutex_unlock(&b->mu);
}

void dc_rollout__batch_writer_start(dc_rollout__batch *b)
{
	b->writer_quit = false;
	/* a thread of its own beside the workers: it waits on them and on fsync */
	b->writer_on = b->ledger && dc_pool_start(&b->writer, ledger_writer, b) == 0;
}

void dc_rollout__batch_writer_stop(dc_rollout__batch *b)
{
	if (!b->writer_on)
		return;
	pthread_mutex_lock(&b->mu);
	b->writer_quit = true;
	pthread_cond_broadcast(&b->cv);
	pthread_mutex_unlock(&b->mu);
	dc_pool_join(&b->writer);
	b->writer_on = false;
}

int dc_rollout__batch_flush(dc_rollout__batch *b)
{
	bool failed;
	int rc;

	pthread_mutex_lock(&b->mu);
	failed = flush_outcomes(b);
	rc = b->ledger_rc;
	pthread_mutex_unlock(&b->mu);
	if (failed && b->on_fail)
		b->on_fail(b->on_fail_ctx);
	return rc;
}

int dc_rollout__batch_append(dc_rollout__batch *b,
                             const dc_ledger__event *ev,
                             size_t n,
                             dc_error *err)
{
	int64_t first = 0;
	int rc = n ? dc_ledger__append_batch(b->ledger, ev, n, &first, err) : 0;

	if (rc == 0 && n)
		note_seqs(b, first, n);
	return rc;
}

json_t *dc_rollout__outcome_json(const dc_tenant_outcome *o)
{
	const dc_tenant *t = o->tenant;
	json_t *d =
	        json_pack("{s:s, s:s, s:i, s:s, s:s, s:s, s:i, s:I}", "tenant", t->id, "shard",
	                  t->shard ? t->shard : "", "wave", o->wave, "status",
	                  dc_tenant_status_name(o->status), "from", o->from, "to", o->to,
	                  "migrations", o->migrations, "duration_ms", (json_int_t)o->duration_ms);

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
