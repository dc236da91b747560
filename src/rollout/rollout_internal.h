/*
 * Internal to src/rollout: the plan of one tenant, shared by planning,
 * execution, status and the preflight gates (src/gate/gate_internal.h);
 * and the parts of a run, one struct (and one lock) each:
 *
 *   fleet.c        dc_rollout__fleet: engines, tenants, worker connections
 *                  and every tenant's plan (status reads a fleet too)
 *   batch.c        dc_rollout__batch: ledger entries of a run, tenant
 *                  outcomes batched, and the writer thread that appends them
 *   waves.c        dc_rollout__queue: the wave being dispatched to workers
 *   tenant.c       one tenant: lock, transaction, phases, verify, history,
 *                  gates, compensation, retries
 *   interrupted.c  runs an earlier process started and never ended
 *   run.c          dc_rollout_run: the steps, in order
 *
 * Lock order: a worker holds at most one of queue.mu, batch.mu and
 * fleet.plan_mu at a time; the batch's writer never takes queue.mu while it
 * holds batch.mu.
 */
#ifndef DC_ROLLOUT_INTERNAL_H
#define DC_ROLLOUT_INTERNAL_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>

#include <deployclaw/engine.h>
#include <deployclaw/gate.h>
#include <deployclaw/ledger.h>
#include <deployclaw/migration.h>
#include <deployclaw/rollout.h>

#include "ledger/ledger_json.h"
#include "util/pool.h"

/* What one tenant needs, computed from its history against the set. */
typedef struct dc_rollout__todo {
	const dc_migration **migs; /* apply: ascending; rollback: descending */
	size_t n;
	size_t resume_phase; /* apply: phases of migs[0] already done (a partial row) */
	char from[64];       /* latest applied version before */
	char to[64];         /* latest applied version after */
	bool drift;          /* an applied checksum differs from its file */
	bool out_of_order;   /* a pending version is older than an applied one */
	bool partial;        /* history has a partial row */
	char problem[512];   /* drift / out of order / unknown version, for humans */
} dc_rollout__todo;

void dc_rollout__todo_release(dc_rollout__todo *todo);

/*
 * Computes what a tenant with history `rows` needs. `to` is the target
 * version (NULL: apply = the last of the set, rollback = undo the latest
 * applied one). DC_EINVAL when a rollback is asked of a version that is not
 * in the set (its down is unknown); `problem` says why.
 */
int dc_rollout__todo_compute(dc_rollout__todo *todo,
                             const dc_migration_set *set,
                             const dc_history_row *rows,
                             size_t nrows,
                             dc_rollout_direction dir,
                             const char *to);

/* The same for the migrations of `scope` only (dc_rollout__todo_compute: the
 * tenant's; a shard's history against its shard-scoped ones, shard.c). */
int dc_rollout__todo_compute_scope(dc_rollout__todo *todo,
                                   const dc_migration_set *set,
                                   const dc_history_row *rows,
                                   size_t nrows,
                                   dc_rollout_direction dir,
                                   const char *to,
                                   dc_scope scope);

/* ------------------------------------------------------------------------ */
/* The fleet and its plan (fleet.c).                                        */

typedef struct dc_rollout__fleet dc_rollout__fleet;

/* A worker thread: its own connection per engine, opened on first use. */
typedef struct dc_rollout__worker {
	dc_rollout__fleet *fleet;
	void *job;       /* what the thread works for (the run of a wave) */
	dc_conn **conns; /* one per engine, connected on first use */
	/* Engines with a prefetch: the queue slot this worker expects to take
	 * next (its connection is opening that tenant), and the tenant to name
	 * to the engine once the current one is entered; SIZE_MAX: none. */
	size_t hint;
	size_t next_ti;
	/* The error of the tenant in hand: empty between tenants, so a tenant
	 * that succeeds costs no clearing; a failed one's goes to the heap
	 * (tenant.c). */
	dc_error err;
} dc_rollout__worker;

struct dc_rollout__fleet {
	const dc_config *cfg;
	const dc_engine_ops *ops;
	dc_rollout_direction direction;
	volatile sig_atomic_t *stop; /* the caller's: set by a signal */
	/* Set when the run must stop dispatching (failure budget, a ledger
	 * write that failed, a thread that could not start). */
	atomic_bool stopping;

	dc_engine **engines; /* one per shard (one for SQLite) */
	size_t nengines;
	int *shard_budget; /* per engine: max concurrent tenants, 0 = no limit */

	const dc_migration_set *orig_set; /* as loaded; `set` may split phases */
	const dc_migration_set *set;
	dc_migration *derived; /* set's migrations when phases were split */
	dc_migration_set derived_set;
	const dc_statement **autocommit; /* sorted: statements that cannot run in a transaction */
	size_t nautocommit;

	dc_tenant *tenants; /* discovered; owned until taken (own_tenants false) */
	size_t ntenants;
	bool own_tenants;
	size_t *tenant_engine; /* per tenant */

	const char *to; /* the target version: as asked, or derived (rollback) */
	char to_buf[64];
	dc_rollout__todo *todos; /* the plan, per tenant */
	bool *readable;
	char (*read_error)[512];

	dc_rollout__worker *workers;
	int nworkers;
	void (*worker_fn)(dc_rollout__worker *w); /* what run_workers runs on each */
	bool prefetch; /* workers name their next tenant to the engine (see open) */

	pthread_mutex_t plan_mu; /* guards plan_next */
	size_t plan_next;
};

void dc_rollout__fleet_init(dc_rollout__fleet *f);
void dc_rollout__fleet_release(dc_rollout__fleet *f);

/*
 * Opens one engine per shard and `parallel` workers (0: rollout.parallel),
 * classifies the set's statements and splits phases around those that
 * cannot run in a transaction. `run_id` (may be NULL) is named to engines.
 */
int dc_rollout__fleet_open(dc_rollout__fleet *f,
                           const dc_config *cfg,
                           const dc_migration_set *set,
                           dc_rollout_direction direction,
                           int parallel,
                           volatile sig_atomic_t *stop,
                           const char *run_id,
                           dc_error *err);

/* Discovers every shard's tenants, keeping only `only` when given (an unknown id is
 * DC_EINVAL with a suggestion). */
int dc_rollout__fleet_discover(dc_rollout__fleet *f,
                               const char *const *only,
                               size_t nonly,
                               dc_error *err);

/* Every tenant's plan towards `to` (NULL: the latest; rollback: see
 * dc_rollout__fleet_rollback_target). */
int dc_rollout__fleet_plan(dc_rollout__fleet *f, const char *to, dc_error *err);

/* A rollback without --to: re-plans every tenant towards the version before
 * the newest one applied anywhere in the fleet. */
int dc_rollout__fleet_rollback_target(dc_rollout__fleet *f, dc_error *err);

/* Runs `fn` on every worker (with w->job = job), each on a pool thread of its own
 * (the workers wait on the databases and on each other's queue), and returns when
 * all have. DC_EIO, with nothing run, when the threads cannot be had. */
int dc_rollout__fleet_run_workers(dc_rollout__fleet *f,
                                  void (*fn)(dc_rollout__worker *w),
                                  void *job,
                                  dc_error *err);

/* The worker's connection to engine `e`, connecting on first use. */
int dc_rollout__worker_conn(dc_rollout__worker *w, size_t e, dc_conn **out, dc_error *err);

/* Whether a statement cannot run inside a transaction (classified once per run). */
bool dc_rollout__is_autocommit(const dc_rollout__fleet *f, const dc_statement *st);

bool dc_rollout__stop_requested(const dc_rollout__fleet *f);

/* ------------------------------------------------------------------------ */
/* The run's ledger entries (batch.c).                                      */

/* Tenant outcomes are appended to the ledger in batches of at most this many,
 * each run of them as one entry. */
#define DC_ROLLOUT__BATCH          256
#define DC_ROLLOUT__OUTCOME_EVENT  "tenant"
#define DC_ROLLOUT__OUTCOMES_ENTRY "tenants"

typedef struct dc_rollout__batch {
	dc_ledger *ledger; /* NULL for a dry run */
	pthread_mutex_t mu;
	/* the batch being filled (under mu) */
	dc_ledger__event pending[DC_ROLLOUT__BATCH];
	size_t npending;
	int64_t first_seq; /* ledger entries this run appended: first_seq..last_seq */
	int64_t last_seq;
	int ledger_rc; /* the first failure: no entry is appended after it */
	dc_error ledger_err;
	/* The writer (a thread beside a wave's workers): it signs and appends
	 * each full batch, so no worker waits for 256 Ed25519 signatures and
	 * three fsyncs (under mu; see dc_rollout__batch_queue). */
	pthread_cond_t cv;
	dc_pool_task writer;
	dc_ledger__event wbatch[DC_ROLLOUT__BATCH];
	size_t wn; /* entries in wbatch, the writer's until it sets wn = 0 */
	bool writer_on;
	bool writer_quit;
	/* Called (mu released) when a batch cannot be recorded: the run stops. */
	void (*on_fail)(void *ctx);
	void *on_fail_ctx;
} dc_rollout__batch;

void dc_rollout__batch_init(dc_rollout__batch *b, dc_ledger *ledger);
void dc_rollout__batch_release(dc_rollout__batch *b);

/* Appends one entry now (`data` is stolen; NULL is out of memory). */
int dc_rollout__batch_record(dc_rollout__batch *b, const char *event, json_t *data, dc_error *err);

/* Appends entries now, in one batch (the events' data stay the caller's). */
int dc_rollout__batch_append(dc_rollout__batch *b,
                             const dc_ledger__event *ev,
                             size_t n,
                             dc_error *err);

/* Queues an entry for the next batch (`data` is stolen). Thread-safe. */
void dc_rollout__batch_queue(dc_rollout__batch *b, const char *event, json_t *data);

/* Appends what is queued; the first failure of the run (sticky). */
int dc_rollout__batch_flush(dc_rollout__batch *b);

/* Starts the writer thread (false when none could start: queueing then appends full
 * batches itself); stopping it returns once every batch handed to it is appended. */
void dc_rollout__batch_writer_start(dc_rollout__batch *b);
void dc_rollout__batch_writer_stop(dc_rollout__batch *b);

json_t *dc_rollout__outcome_json(const dc_tenant_outcome *o);

/* ------------------------------------------------------------------------ */
/* A run (run.c), its waves (waves.c) and tenants (tenant.c).               */

/* The wave being dispatched (under mu). */
typedef struct dc_rollout__queue {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	size_t *slots; /* tenant indexes, in dispatch order */
	bool *taken;
	bool *hinted; /* a worker's connection is opening it (see take_next) */
	size_t len;
	size_t head;
	int *shard_inflight; /* per engine */
	int wave;
	dc_wave_report *cur;
	size_t done_total;
} dc_rollout__queue;

typedef struct dc_rollout__run {
	dc_rollout__fleet fleet;
	const dc_rollout_opts *opts;
	dc_gate_registry *gates;
	dc_rollout_report *rep;
	char actor[256];
	dc_rollout__queue queue;
	dc_rollout__batch batch;
	/* The isolation family's per-tenant verdicts (before each commit), for the
	 * run's closing entry: tenants checked, and refused. */
	atomic_size_t iso_checked;
	atomic_size_t iso_refused;
	dc_rollout__todo *shard_todos; /* per engine, when the set has shard migrations */
} dc_rollout__run;

void dc_rollout__queue_init(dc_rollout__queue *q);
void dc_rollout__queue_release(dc_rollout__queue *q);

/* Stops dispatching and wakes the workers waiting for a tenant (`run` is the
 * dc_rollout__run; the batch's on_fail). */
void dc_rollout__stop_dispatch(void *run);

/* Appends a step to the report's execution log (dropped when out of memory). */
void dc_rollout__add_step(dc_rollout_report *rep,
                          const char *step,
                          const char *status,
                          int64_t duration_ms,
                          const char *action,
                          const char *fmt,
                          ...) DC_PRINTF(6, 7);

/* Cuts the `n` planned tenants into the canary and cumulative waves (rep->waves). */
int dc_rollout__plan_waves(dc_rollout__run *r, size_t n, dc_error *err);

/* Dispatches each wave of `planned_idx` in turn, within its failure budget. */
int dc_rollout__run_waves(dc_rollout__run *r, const size_t *planned_idx, dc_error *err);

/* One tenant, with bounded retries, into `o`. */
void dc_rollout__run_tenant(dc_rollout__run *r,
                            dc_rollout__worker *w,
                            size_t ti,
                            dc_tenant_outcome *o);

/* Shard-scoped migrations (shard.c): each shard's history read and its pending
 * ones planned into rep->shards and r->shard_todos (nothing when the set has
 * none); run once per shard, before the waves (apply) or after them
 * (rollback with --to, only when every tenant went below them). A shard that
 * fails is rolled back whole and its error is the run's. */
int dc_rollout__shards_plan(dc_rollout__run *r, dc_error *err);
size_t dc_rollout__shards_pending(const dc_rollout_report *rep);
int dc_rollout__shards_run(dc_rollout__run *r, dc_error *err);
int dc_rollout__shards_rollback(dc_rollout__run *r, dc_error *err);

/* Frees a failed tenant's error. */
void dc_rollout__outcome_release(dc_tenant_outcome *o);

/* Records, as `run_interrupted`, runs that started and never ended and whose process is
 * gone. */
int dc_rollout__record_interrupted(dc_rollout__batch *b, const char *ledger_path, dc_error *err);

/* When process `pid` started (clock ticks since boot), -1 when it is gone. */
long long dc_rollout__process_start(int pid);

#endif
