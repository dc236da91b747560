/**
 * deployclaw/rollout.h — plan, gate and roll a migration set across a fleet.
 *
 * A rollout is: discover the tenants (topology), read every tenant's
 * history and plan what each one needs, run the preflight gates, then roll
 * out in waves — the canary first, then each wave only when the previous
 * one ended within its failure budget — with a pool of workers, each with
 * its own connection. Every tenant is migrated under an exclusive lock and
 * atomically: its history rows are written in the same transaction as its
 * change, any error or false verify assertion rolls it back (and runs the
 * downs of phases that had to commit on their own), so running the same
 * rollout again after a crash resumes it: tenants at the target are
 * skipped, none is applied twice, none is left half-applied.
 *
 * Everything decided is written to the ledger before it is acted on: the
 * run's start (config, plan and migration hashes), every gate result, each
 * wave before it is dispatched. Tenant outcomes are appended in batches
 * (one fsync per batch) as tenants finish, and at the end of each wave.
 */
#ifndef DEPLOYCLAW_ROLLOUT_H
#define DEPLOYCLAW_ROLLOUT_H

#include <signal.h>

#include <deployclaw/common.h>
#include <deployclaw/config.h>
#include <deployclaw/engine.h>
#include <deployclaw/gate.h>
#include <deployclaw/ledger.h>
#include <deployclaw/migration.h>

typedef enum dc_rollout_direction {
	DC_ROLLOUT_APPLY = 0,   /**< up: apply pending migrations */
	DC_ROLLOUT_ROLLBACK = 1 /**< down: undo applied migrations */
} dc_rollout_direction;

typedef enum dc_tenant_status {
	DC_TENANT_SUCCEEDED = 0, /**< migrated (or rolled back) to the target */
	DC_TENANT_FAILED = 1,    /**< an error or a verify assertion: rolled back */
	DC_TENANT_SKIPPED = 2,   /**< already at the target */
	DC_TENANT_NOT_RUN = 3    /**< not dispatched: the run stopped first */
} dc_tenant_status;

/** "succeeded", "failed", "skipped", "not_run". */
DC_API const char *dc_tenant_status_name(dc_tenant_status status);

/** What happened to one tenant. */
typedef struct dc_tenant_outcome {
	const dc_tenant *tenant; /**< borrowed from the report */
	dc_tenant_status status;
	int wave;       /**< 0 = canary */
	char from[64];  /**< version before ("" = none) */
	char to[64];    /**< version after */
	int migrations; /**< migrations applied or rolled back */
	int64_t duration_ms;
	int attempts; /**< > 1 when lock waits were retried */
	/** FAILED: the statement's file:line:col and the message; NULL otherwise. On the
	 * heap only for a failed tenant, owned by the report (a dc_error is ~1.9 KB: held
	 * by every tenant it would make a 10,000-tenant run's outcomes 20 MB). */
	const dc_error *error;
} dc_tenant_outcome;

/** What a run did (or, dry, would do) with one shard's shard-scoped migrations. */
typedef struct dc_shard_outcome {
	char shard[128];
	/** SUCCEEDED: they ran; SKIPPED: none pending; FAILED: rolled back whole,
	 * and none of the shard's tenants was touched; NOT_RUN: dry run, or the
	 * run stopped before the shard. */
	dc_tenant_status status;
	size_t pending;     /**< shard migrations the plan found pending */
	char versions[512]; /**< their versions, space-separated (cut when long) */
	size_t done;        /**< how many this run applied (or rolled back) */
	char error[1024];   /**< FAILED: what failed, with its file:line:col */
} dc_shard_outcome;

/** One wave. */
typedef struct dc_wave_report {
	int index;     /**< 0 = canary */
	char name[64]; /**< "canary", "wave 1 (10%)" */
	size_t total;  /**< tenants in the wave */
	size_t succeeded;
	size_t failed;
	size_t skipped;
	size_t not_run;
	int64_t started_ms; /**< wall clock */
	int64_t duration_ms;
	bool over_budget; /**< failed > max_failures: the rollout stopped here */
} dc_wave_report;

/** Progress, as it happens (for a live display). Called from worker threads, serialised. */
typedef struct dc_rollout_progress {
	const dc_wave_report *wave;
	size_t nwaves;
	const dc_tenant_outcome
	        *outcome; /**< the tenant that just finished; NULL at wave start/end */
	bool wave_done;
	size_t done_total; /**< tenants finished in the whole run */
	size_t total;      /**< tenants planned in the whole run */
} dc_rollout_progress;

typedef void (*dc_rollout_progress_fn)(const dc_rollout_progress *p, void *ctx);

/** The layout of dc_rollout_opts this header describes. A field is only ever added at
 * the end, with the version bumped, so a caller built against an older header keeps
 * working: the library reads only the fields its `version` has. */
#define DC_ROLLOUT_OPTIONS_VERSION 1

/** Rollout options: start from DC_ROLLOUT_OPTIONS_INIT or dc_rollout_opts_init(), never
 * from an uninitialised or zeroed struct (dc_rollout_run refuses version 0). */
typedef struct dc_rollout_opts {
	unsigned int version; /**< DC_ROLLOUT_OPTIONS_VERSION */
	dc_rollout_direction direction;
	const char *to_version;     /**< apply: up to and including; rollback: down to (kept) */
	const char *const *tenants; /**< only these tenant ids (NULL = all) */
	size_t ntenants;
	bool dry_run;                /**< plan and gate, change nothing */
	int parallel;                /**< workers; 0 = rollout.parallel */
	bool allow_out_of_order;     /**< apply a pending version older than an applied one */
	volatile sig_atomic_t *stop; /**< set by SIGINT/SIGTERM: stop dispatching */
	dc_rollout_progress_fn progress;
	void *progress_ctx;
	const char *config_hash;            /**< SHA-256 hex of the config file, for the ledger */
	const unsigned char *ledger_pubkey; /**< 32 bytes: the ledger is verified with it */
} dc_rollout_opts;

/** Every field zero (apply, all tenants, defaults from the config), version set. */
#define DC_ROLLOUT_OPTIONS_INIT                       \
	{                                             \
		.version = DC_ROLLOUT_OPTIONS_VERSION \
	}

/**
 * Initialises `opts` as DC_ROLLOUT_OPTIONS_INIT does, for callers that cannot use a
 * macro (bindings). `version` is the DC_ROLLOUT_OPTIONS_VERSION the caller was built
 * with; DC_EINVAL for a version this library does not know.
 */
DC_API int dc_rollout_opts_init(dc_rollout_opts *opts, unsigned int version);

/** One step of the execution log (the JSON report users know). */
typedef struct dc_rollout_step {
	char step[48]; /**< analyze_service_topology, validate_migration_prerequisites, ... */
	char action[160];
	char detail[512];
	char status[16]; /**< "success", "failed", "warning", "skipped" */
	int64_t duration_ms;
} dc_rollout_step;

/** The whole run. */
typedef struct dc_rollout_report {
	char run_id[33];
	dc_rollout_direction direction;
	bool dry_run;
	int64_t started_ms; /**< wall clock */
	int64_t duration_ms;

	dc_tenant *tenants; /**< every tenant discovered (owned) */
	size_t ntenants;
	dc_tenant_outcome *outcomes; /**< one per tenant, same order */

	size_t planned; /**< tenants with work to do */
	size_t succeeded;
	size_t failed;
	size_t skipped;
	size_t not_run;

	dc_wave_report *waves;
	size_t nwaves;

	dc_gate_result *gates; /**< preflight results and every refusal */
	size_t ngates;

	dc_rollout_step *steps;
	size_t nsteps;

	char target[64];  /**< the version every planned tenant should end at */
	bool interrupted; /**< stopped by a signal */
	bool over_budget; /**< stopped by a wave's failure budget */

	/** One per shard when the set has shard-scoped migrations (`scope: shard`),
	 * else none. They run before the shard's tenants (apply) or after them
	 * (rollback with --to); docs/rollout.md. */
	dc_shard_outcome *shards;
	size_t nshards;
} dc_rollout_report;

DC_API void dc_rollout_report_free(dc_rollout_report *report);

/**
 * Runs a rollout. `ledger` may be NULL only for a dry run. Returns 0 when
 * every planned tenant reached the target; DC_ETENANT when some failed or
 * the failure budget stopped the run; DC_EGATE when a preflight gate
 * refused (nothing changed); DC_EINTERRUPTED after SIGINT/SIGTERM;
 * DC_EINTEGRITY for a ledger that does not verify; DC_EINVAL for options of
 * an unknown version. `*out` is set whenever there is something to report,
 * even on failure.
 */
DC_API int dc_rollout_run(dc_rollout_report **out,
                          const dc_config *cfg,
                          const dc_migration_set *set,
                          dc_ledger *ledger,
                          const dc_rollout_opts *opts,
                          dc_error *err);

#endif
