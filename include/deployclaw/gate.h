/**
 * deployclaw/gate.h — the gate registry.
 *
 * A gate is a named check, declared as data (redis-style): which stages it
 * runs at and a function that measures. The rollout never checks things ad
 * hoc; it asks the registry to run every enabled gate of a stage, and the
 * registry applies the policy centrally:
 *
 *  - PASS and WARN let the run go on (WARN is reported);
 *  - WAIT re-checks after the gate's suggested delay, until the gate's
 *    wait budget is spent — then it becomes REFUSE;
 *  - REFUSE stops the stage;
 *  - a check that cannot measure (returns an error) REFUSEs: gates fail
 *    closed.
 *
 * Every result is handed to a callback (the rollout writes it to the ledger)
 * before the registry acts on it.
 */
#ifndef DEPLOYCLAW_GATE_H
#define DEPLOYCLAW_GATE_H

#include <signal.h>

#include <deployclaw/common.h>
#include <deployclaw/config.h>
#include <deployclaw/engine.h>
#include <deployclaw/migration.h>

/** When a gate runs; a gate may declare several (bit set). */
typedef enum dc_gate_stage {
	DC_GATE_PREFLIGHT = 1 << 0,     /**< before anything is touched */
	DC_GATE_BEFORE_WAVE = 1 << 1,   /**< before each wave is dispatched */
	DC_GATE_BEFORE_TENANT = 1 << 2, /**< before each tenant (after its lock) */
	DC_GATE_AFTER_TENANT = 1 << 3,  /**< after each tenant committed */
	DC_GATE_AFTER_WAVE = 1 << 4     /**< after each wave */
} dc_gate_stage;

/** "preflight", "before_wave", ... */
DC_API const char *dc_gate_stage_name(dc_gate_stage stage);

typedef enum dc_gate_verdict {
	DC_GATE_PASS = 0,
	DC_GATE_WARN = 1,
	DC_GATE_WAIT = 2,
	DC_GATE_REFUSE = 3
} dc_gate_verdict;

/** "pass", "warn", "wait", "refuse". */
DC_API const char *dc_gate_verdict_name(dc_gate_verdict verdict);

/** What a gate measured. */
typedef struct dc_gate_result {
	const char *gate;    /**< the gate's name (static) */
	dc_gate_stage stage; /**< the stage it ran at */
	dc_gate_verdict verdict;
	char detail[512];       /**< one line for humans: what was measured, against what */
	double measured;        /**< the number measured, when there is one */
	double threshold;       /**< the limit it was compared with */
	int64_t retry_after_ms; /**< WAIT: when to look again (default 1s) */
	int64_t duration_ms;    /**< time spent checking, waits included */
	int attempts;           /**< checks made (> 1 after WAITs) */
} dc_gate_result;

/** What a check may look at. Everything is borrowed; fields may be NULL when the stage has
 * no such thing (no tenant before a wave). */
typedef struct dc_gate_ctx {
	const dc_config *cfg;
	const dc_migration_set *set;
	const dc_tenant *tenant;
	dc_conn *conn;               /**< BEFORE/AFTER_TENANT: the tenant's connection */
	const dc_engine_ops *ops;    /**< the engine of `conn` */
	int wave;                    /**< 0 = canary, 1.. = waves */
	volatile sig_atomic_t *stop; /**< set by a signal: abandon waits */
	void *user;                  /**< the caller's own data */
} dc_gate_ctx;

typedef struct dc_gate dc_gate;

/**
 * Measures. Fills `res->verdict` and `res->detail` (and measured/threshold
 * when numeric). Returns 0, or an error when it could not measure — the
 * registry then refuses (fail closed) with the error's message.
 */
typedef int (*dc_gate_check_fn)(const dc_gate *gate,
                                const dc_gate_ctx *ctx,
                                dc_gate_result *res,
                                dc_error *err);

/** A gate as data. The registry copies the struct; `name` and `description` must be static. */
struct dc_gate {
	const char *name;
	const char *description;
	unsigned stages; /**< dc_gate_stage bits */
	dc_gate_check_fn check;
	int64_t wait_budget_ms; /**< how long WAIT may last in total (0 = WAIT refuses at once) */
	void *data;             /**< the gate's own settings, borrowed */
};

typedef struct dc_gate_registry dc_gate_registry;

DC_API int dc_gate_registry_new(dc_gate_registry **out);
DC_API void dc_gate_registry_free(dc_gate_registry *reg);

/** Adds a gate (copied). A duplicate name is DC_EEXISTS. Gates run in the order added. */
DC_API int dc_gate_registry_add(dc_gate_registry *reg, const dc_gate *gate, dc_error *err);

/** The gate named `name`, or NULL. Borrowed. */
DC_API const dc_gate *dc_gate_registry_find(const dc_gate_registry *reg, const char *name);

/** Enables or disables a gate by name (all start enabled); DC_ENOTFOUND with a suggestion. */
DC_API int dc_gate_registry_enable(dc_gate_registry *reg,
                                   const char *name,
                                   bool enabled,
                                   dc_error *err);

/** Called with every final result of a stage, before the registry acts on it. Returning
 * non-zero aborts the stage with that code (e.g. the ledger could not be written). */
typedef int (*dc_gate_report_fn)(const dc_gate_result *res, void *ctx);

/**
 * Runs every enabled gate of `stage` in order. Stops at the first REFUSE.
 * `*worst` (may be NULL) receives the worst verdict seen. Returns 0 when the
 * stage may proceed (PASS/WARN only), DC_EGATE when a gate refused (err
 * names the gate and its detail), DC_EINTERRUPTED when `ctx->stop` was set
 * during a wait, or the report callback's code.
 */
DC_API int dc_gate_registry_run(dc_gate_registry *reg,
                                dc_gate_stage stage,
                                const dc_gate_ctx *ctx,
                                dc_gate_report_fn report,
                                void *report_ctx,
                                dc_gate_verdict *worst,
                                dc_error *err);

#endif
