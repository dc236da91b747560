/*
 * Internal to deployclaw: the built-in gates, declared in one table
 * (builtin.c), and what the preflight gates look at.
 *
 * Adding a gate is one row in dc_gate__builtin and one check function in
 * the family file it belongs to (integrity.c, compliance.c, ordering.c,
 * consistency.c, isolation.c, rls.c, or a new one), declared below. The gates' section of
 * docs/rollout.md lists every row; test_gate fails when the two differ.
 */
#ifndef DC_GATE_INTERNAL_H
#define DC_GATE_INTERNAL_H

#include <deployclaw/config.h>
#include <deployclaw/gate.h>

#include "rollout/rollout_internal.h"

/* One row of the gate table. */
typedef struct dc_gate__def {
	const char *name;       /* the gate's id, as reported and recorded */
	unsigned stages;        /* dc_gate_stage bits */
	const char *config_key; /* the key that tunes or disables it; NULL: none */
	dc_gate_check_fn check;
	const char *measures; /* one line: what it measures */
	/* Whether the config turns it on; NULL: always. A gate that is off stays
	 * registered (and findable), disabled. */
	bool (*enabled)(const dc_config *cfg);
	/* What a refusal makes the run return: DC_EGATE (exit 3, nothing changed),
	 * DC_EINTEGRITY (exit 4: the inputs' integrity; nothing can be recorded),
	 * or, per tenant, DC_ETENANT (exit 1: the tenant fails, rolled back). */
	int refusal;
	/* Its family: "integrity", "compliance", "isolation", "ordering",
	 * "consistency" (the file its check is in); the run reports the
	 * isolation family's verdicts together (validate_tenant_isolation_gates). */
	const char *family;
} dc_gate__def;

/* The table, in the order the gates run within a stage. */
extern const dc_gate__def dc_gate__builtin[];
extern const size_t dc_gate__nbuiltin;

/* The row of gate `name`, or NULL. */
const dc_gate__def *dc_gate__builtin_find(const char *name);

/* Whether gate `name` is a built-in of the isolation family. */
bool dc_gate__is_isolation(const char *name);

/* Registers every row of the table in `reg`, disabling those the config turns off. */
int dc_gate__register_builtins(dc_gate_registry *reg, const dc_config *cfg, dc_error *err);

/*
 * What the preflight gates look at (dc_gate_ctx.user): the rollout's plan.
 * Everything is borrowed from the rollout for the duration of the stage.
 */
typedef struct dc_gate__preflight {
	bool rollback;                      /* the run undoes migrations */
	bool allow_out_of_order;            /* --allow-out-of-order was given */
	const unsigned char *ledger_pubkey; /* 32 bytes, or NULL */
	const dc_tenant *tenants;
	const dc_rollout__todo *todos; /* one per tenant */
	size_t ntenants;
	/* The shards, for gates that ask each one (an engine's shard_check): the
	 * engine of tenant i is engines[tenant_engine[i]]; discovery keeps each
	 * engine's tenants together. */
	const dc_engine_ops *ops;
	dc_engine *const *engines;
	size_t nengines;
	const size_t *tenant_engine;
	/* Shard-scoped migrations planned, one todo per engine (NULL: none):
	 * dc_gate__in_plan counts them as in the plan. */
	const dc_rollout__todo *shard_todos;
	size_t nshard_todos;
	/* Per migration of the set the gates see (dc_gate_ctx.set): whether some
	 * tenant's or shard's plan runs it. The plans may point into the set with
	 * split phases the rollout derives; this is indexed by the set itself. */
	const bool *planned;
} dc_gate__preflight;

/* engines.c: calls `fn` for each shard with tenants in the run, with the engines'
 * operations, its engine and its `n` tenants; a nonzero return stops and is returned. */
typedef int (*dc_gate__shard_fn)(void *ctx,
                                 const dc_engine_ops *ops,
                                 dc_engine *e,
                                 const dc_tenant *tenants,
                                 size_t n);
int dc_gate__each_shard(const dc_gate__preflight *pf, dc_gate__shard_fn fn, void *ctx);

/* engines.c: "a; b" from an engine check's lines "a\nb\n", into `out` of `size`
 * bytes (cut to fit); returns how many lines there were. */
size_t dc_gate__join_lines(const dc_strbuf *lines, char *out, size_t size);

/* Whether some tenant's or shard's plan runs migration `m`, a migration of the set the
 * gates see (the gates that judge "the migrations in the plan" ask this). */
bool dc_gate__in_plan(const dc_gate__preflight *pf,
                      const dc_migration_set *set,
                      const dc_migration *m);

/* integrity.c: the inputs of a run are what they claim to be. */
int dc_gate__ledger(const dc_gate *, const dc_gate_ctx *, dc_gate_result *, dc_error *);
int dc_gate__sum_file(const dc_gate *, const dc_gate_ctx *, dc_gate_result *, dc_error *);
int dc_gate__parse(const dc_gate *, const dc_gate_ctx *, dc_gate_result *, dc_error *);

/* compliance.c: what policy requires of a plan. */
int dc_gate__require_down(const dc_gate *, const dc_gate_ctx *, dc_gate_result *, dc_error *);

/* isolation.c: no statement of the plan gets around the tenant's isolation,
 * and (per tenant, before its commit) its transaction did not either. */
int dc_gate__isolation(const dc_gate *, const dc_gate_ctx *, dc_gate_result *, dc_error *);
int dc_gate__run_as(const dc_gate *, const dc_gate_ctx *, dc_gate_result *, dc_error *);

/* rls.c: row tenancy's row-level security holds, before the run and before each commit. */
int dc_gate__rls(const dc_gate *, const dc_gate_ctx *, dc_gate_result *, dc_error *);
int dc_gate__rls_after(const dc_gate *, const dc_gate_ctx *, dc_gate_result *, dc_error *);
int dc_gate__isolation_runtime(const dc_gate *, const dc_gate_ctx *, dc_gate_result *, dc_error *);

/* ordering.c: the fleet's histories agree with the migration set. */
int dc_gate__out_of_order(const dc_gate *, const dc_gate_ctx *, dc_gate_result *, dc_error *);
int dc_gate__drift(const dc_gate *, const dc_gate_ctx *, dc_gate_result *, dc_error *);

/* consistency.c: a tenant's database is sound before its commit. */
int dc_gate__integrity_check(const dc_gate *, const dc_gate_ctx *, dc_gate_result *, dc_error *);
int dc_gate__foreign_key_check(const dc_gate *, const dc_gate_ctx *, dc_gate_result *, dc_error *);

#endif
