/*
 * run.c — a rollout, step by step: topology, plan, preflight gates, the
 * run's start in the ledger, the waves, the run's end. Every tenant
 * atomically (tenant.c), every decision in the ledger first (batch.c).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <deployclaw/rollout.h>

#include "gate/gate_internal.h"
#include "rollout_internal.h"
#include "util/util.h"

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
		dc_rollout__outcome_release(&rep->outcomes[i]);
	dc_tenants_free(rep->tenants, rep->ntenants);
	free(rep->outcomes);
	free(rep->waves);
	free(rep->gates);
	free(rep->steps);
	free(rep->shards);
	free(rep);
}

void dc_rollout__add_step(dc_rollout_report *rep,
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

static void plan_hash(const dc_rollout__run *r, char out[65])
{
	dc_strbuf sb = DC_STRBUF_INIT;
	size_t i, k;

	for (i = 0; i < r->rep->ntenants; i++) {
		const dc_rollout__todo *t = &r->fleet.todos[i];

		dc_strbuf_addf(&sb, "%s %s", r->rep->tenants[i].id, t->from);
		for (k = 0; k < t->n; k++)
			dc_strbuf_addf(&sb, " %s", t->migs[k]->version);
		dc_strbuf_addch(&sb, '\n');
	}
	/* a shard's line only when it has shard migrations pending: a plan
	 * without any hashes as before they existed */
	for (i = 0; i < r->rep->nshards; i++) {
		const dc_rollout__todo *t = &r->shard_todos[i];

		if (!t->n)
			continue;
		dc_strbuf_addf(&sb, "shard %s", r->rep->shards[i].shard);
		for (k = 0; k < t->n; k++)
			dc_strbuf_addf(&sb, " %s", t->migs[k]->version);
		dc_strbuf_addch(&sb, '\n');
	}
	dc_sha256_hex(out, sb.buf, sb.len);
	dc_strbuf_release(&sb);
}

static json_t *run_start_json(const dc_rollout__run *r, const char *phash)
{
	const dc_rollout_report *rep = r->rep;
	char host[128] = "";
	json_t *d, *migs;
	size_t i;

	gethostname(host, sizeof(host) - 1);
	d = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:i, s:i, s:I, s:s}", "direction",
	              r->opts->direction == DC_ROLLOUT_APPLY ? "apply" : "rollback", "config_hash",
	              r->opts->config_hash ? r->opts->config_hash : "", "plan_hash", phash,
	              "target", rep->target, "to", r->fleet.to ? r->fleet.to : "", "tenants",
	              (json_int_t)rep->ntenants, "planned", (json_int_t)rep->planned, "parallel",
	              r->fleet.nworkers, "pid", (int)getpid(), "pid_start",
	              (json_int_t)dc_rollout__process_start((int)getpid()), "host", host);
	migs = json_array();
	if (!d || !migs) {
		json_decref(d);
		json_decref(migs);
		return NULL;
	}
	for (i = 0; i < r->fleet.set->count; i++)
		json_array_append_new(migs,
		                      json_pack("{s:s, s:s}", "version",
		                                r->fleet.set->migrations[i].version, "checksum",
		                                r->fleet.set->migrations[i].checksum));
	json_object_set_new(d, "migrations", migs);
	return d;
}

static void run_init(dc_rollout__run *r, const dc_rollout_opts *opts, dc_ledger *ledger)
{
	memset(r, 0, sizeof(*r));
	dc_rollout__fleet_init(&r->fleet);
	dc_rollout__queue_init(&r->queue);
	dc_rollout__batch_init(&r->batch, ledger);
	r->batch.on_fail = dc_rollout__stop_dispatch;
	r->batch.on_fail_ctx = r;
	r->opts = opts;
}

static void run_release(dc_rollout__run *r)
{
	size_t e;

	for (e = 0; r->shard_todos && e < r->fleet.nengines; e++)
		dc_rollout__todo_release(&r->shard_todos[e]);
	free(r->shard_todos);
	dc_rollout__batch_release(&r->batch);
	dc_rollout__queue_release(&r->queue);
	dc_gate_registry_free(r->gates);
	dc_rollout__fleet_release(&r->fleet);
}

/* analyze_service_topology: the engines, the gates, the tenants (moved to the report). */
static int step_topology(dc_rollout__run *r,
                         const dc_config *cfg,
                         const dc_migration_set *set,
                         dc_error *err)
{
	dc_rollout__fleet *f = &r->fleet;
	dc_rollout_report *rep = r->rep;
	int64_t t = dc_time_mono_ms();
	size_t i;
	int rc;

	if ((rc = dc_rollout__fleet_open(f, cfg, set, r->opts->direction, r->opts->parallel,
	                                 r->opts->stop, rep->run_id, err)) != 0)
		return rc;
	r->queue.shard_inflight = calloc(f->nengines, sizeof(*r->queue.shard_inflight));
	if (!r->queue.shard_inflight || dc_gate_registry_new(&r->gates) != 0)
		return dc_error_set(err, DC_ENOMEM, "out of memory");
	if ((rc = dc_gate__register_builtins(r->gates, cfg, err)) != 0)
		return rc;
	rc = dc_rollout__fleet_discover(f, r->opts->tenants, r->opts->ntenants, err);
	/* the report owns the tenants, also those of a failed discovery; the fleet borrows them */
	rep->tenants = f->tenants;
	rep->ntenants = f->ntenants;
	f->own_tenants = false;
	if (rc)
		return rc;
	rep->outcomes = calloc(rep->ntenants + 1, sizeof(*rep->outcomes));
	if (!rep->outcomes)
		return dc_error_set(err, DC_ENOMEM, "out of memory");
	for (i = 0; i < rep->ntenants; i++) {
		rep->outcomes[i].tenant = &rep->tenants[i];
		rep->outcomes[i].status = DC_TENANT_SKIPPED;
	}
	dc_rollout__add_step(rep, "analyze_service_topology", "success", dc_time_mono_ms() - t,
	                     "discover shards and tenants", "%zu tenants on %zu %s", rep->ntenants,
	                     f->nengines,
	                     cfg->engine == DC_ENGINE_SQLITE ? "fleet folder(s)" : "shard(s)");
	if (rep->ntenants == 0)
		return dc_error_set(err, DC_EINVAL, "no tenants found (tenancy in '%s')",
		                    cfg->path);
	return 0;
}

/* generate_migration_plan: every tenant's history; the planned tenants in `*planned_idx`. */
static int step_plan(dc_rollout__run *r, size_t **planned_idx, char phash[65], dc_error *err)
{
	dc_rollout__fleet *f = &r->fleet;
	dc_rollout_report *rep = r->rep;
	const dc_rollout_opts *opts = r->opts;
	const dc_migration_set *set = f->orig_set;
	int64_t t = dc_time_mono_ms();
	size_t i, unreadable = 0;
	int rc;

	if ((rc = dc_rollout__fleet_plan(f, opts->to_version, err)) != 0)
		return rc;
	if (opts->direction == DC_ROLLOUT_ROLLBACK && !opts->to_version &&
	    (rc = dc_rollout__fleet_rollback_target(f, err)) != 0)
		return rc;
	*planned_idx = calloc(rep->ntenants + 1, sizeof(**planned_idx));
	if (!*planned_idx)
		return dc_error_set(err, DC_ENOMEM, "out of memory");
	for (i = 0; i < rep->ntenants; i++) {
		dc_tenant_outcome *o = &rep->outcomes[i];

		snprintf(o->from, sizeof(o->from), "%s", f->todos[i].from);
		snprintf(o->to, sizeof(o->to), "%s", f->todos[i].from);
		if (f->todos[i].n > 0 || !f->readable[i]) {
			(*planned_idx)[rep->planned++] = i;
			if (f->todos[i].n > 0 &&
			    dc_version_compare(f->todos[i].to, rep->target) > 0)
				snprintf(rep->target, sizeof(rep->target), "%s", f->todos[i].to);
		}
	}
	if (opts->direction == DC_ROLLOUT_ROLLBACK && f->to)
		snprintf(rep->target, sizeof(rep->target), "%s", f->to[0] ? f->to : "(none)");
	if (opts->direction == DC_ROLLOUT_APPLY && !rep->target[0] && set->count)
		snprintf(rep->target, sizeof(rep->target), "%s",
		         opts->to_version ? opts->to_version
		                          : set->migrations[set->count - 1].version);
	plan_hash(r, phash);
	for (i = 0; i < rep->ntenants; i++)
		unreadable += !f->readable[i];
	dc_rollout__add_step(rep, "generate_migration_plan", unreadable ? "warning" : "success",
	                     dc_time_mono_ms() - t, "read every tenant's history",
	                     "%zu of %zu tenants need work (target '%s'), %zu up to date, %zu "
	                     "unreadable; plan %.12s",
	                     rep->planned, rep->ntenants, rep->target, rep->ntenants - rep->planned,
	                     unreadable, phash);
	return 0;
}

/* Whether gate `name` ran and passed. */
static bool passed(const dc_rollout_report *rep, const char *name)
{
	size_t i;

	for (i = 0; i < rep->ngates; i++)
		if (strcmp(rep->gates[i].gate, name) == 0)
			return rep->gates[i].verdict == DC_GATE_PASS;
	return false;
}

/* The isolation family's gates that are on, at any stage: "isolation,
 * isolation_runtime" into `out`. */
static void isolation_gates_on(const dc_rollout__run *r, dc_strbuf *out)
{
	size_t i;

	for (i = 0; i < dc_gate__nbuiltin; i++) {
		const dc_gate__def *d = &dc_gate__builtin[i];

		if (d->family && !strcmp(d->family, "isolation") &&
		    (!d->enabled || d->enabled(r->fleet.cfg)))
			dc_strbuf_addf(out, "%s%s", out->len ? ", " : "", d->name);
	}
}

/*
 * The run's verdict on tenant isolation, for its closing entry: "verified"
 * only when the isolation gates ran and passed, at preflight and on every
 * tenant that committed; "refused" when one of them refused a tenant (which
 * was rolled back); "not applicable" on SQLite, whose tenants are files.
 * Says which gates were on and how many tenants they checked.
 */
static json_t *isolation_json(const dc_rollout__run *r)
{
	dc_strbuf on = DC_STRBUF_INIT;
	size_t refused = atomic_load(&r->iso_refused), checked = atomic_load(&r->iso_checked);
	const char *verdict = "verified";
	json_t *j;
	size_t i;

	if (r->fleet.cfg->engine != DC_ENGINE_POSTGRES)
		verdict = "not applicable";
	else if (refused)
		verdict = "refused";
	for (i = 0; i < r->rep->ngates; i++)
		if (dc_gate__is_isolation(r->rep->gates[i].gate) &&
		    r->rep->gates[i].verdict == DC_GATE_REFUSE)
			verdict = "refused";
	isolation_gates_on(r, &on);
	j = json_pack("{s:s, s:s, s:I, s:I}", "verdict", verdict, "gates",
	              dc_strbuf_error(&on) || !on.buf ? "" : on.buf, "tenants_checked",
	              (json_int_t)checked, "tenants_refused", (json_int_t)refused);
	dc_strbuf_release(&on);
	return j;
}

/*
 * validate_tenant_isolation_gates: what the isolation family's preflight gates
 * found, with the gates that will check each tenant before its commit. Not
 * run (a gate before them refused): "skipped".
 */
static void isolation_step(dc_rollout__run *r, int64_t ms)
{
	dc_rollout_report *rep = r->rep;
	dc_strbuf detail = DC_STRBUF_INIT, on = DC_STRBUF_INIT;
	const char *status = "skipped";
	size_t i;

	for (i = 0; i < rep->ngates; i++) {
		const dc_gate_result *g = &rep->gates[i];

		if (!dc_gate__is_isolation(g->gate))
			continue;
		if (strcmp(status, "failed"))
			status = g->verdict == DC_GATE_REFUSE ? "failed" : "success";
		dc_strbuf_addf(&detail, "; %s: %s", g->gate, g->detail);
	}
	isolation_gates_on(r, &on);
	dc_rollout__add_step(rep, "validate_tenant_isolation_gates", status, ms,
	                     "tenant isolation: static checks now, run-time checks per tenant",
	                     "%zu tenant%s on %zu shard%s%s; on: %s", rep->ntenants,
	                     rep->ntenants == 1 ? "" : "s", r->fleet.nengines,
	                     r->fleet.nengines == 1 ? "" : "s",
	                     dc_strbuf_error(&detail) ? ""
	                     : detail.buf             ? detail.buf
	                                              : "",
	                     dc_strbuf_error(&on) || !on.len ? "none" : on.buf);
	dc_strbuf_release(&detail);
	dc_strbuf_release(&on);
}

/* The index in the loaded set of `m`, a migration of it or of the set with split
 * phases the fleet derives from it (the same order); SIZE_MAX: neither. */
static size_t orig_index(const dc_rollout__run *r, const dc_migration *m)
{
	const dc_migration_set *o = r->fleet.orig_set, *d = r->fleet.set;

	if (m >= o->migrations && m < o->migrations + o->count)
		return (size_t)(m - o->migrations);
	if (d && d != o && m >= d->migrations && m < d->migrations + d->count)
		return (size_t)(m - d->migrations);
	return SIZE_MAX;
}

/* Per migration of the loaded set: whether some tenant's or shard's plan runs it
 * (heap; NULL when out of memory). Once per run, so a gate's question costs
 * nothing per tenant. */
static bool *planned_migrations(const dc_rollout__run *r)
{
	const dc_rollout__todo *lists[2] = { r->fleet.todos, r->shard_todos };
	size_t counts[2] = { r->rep->ntenants, r->shard_todos ? r->fleet.nengines : 0 };
	bool *planned = calloc(r->fleet.orig_set->count + 1, sizeof(*planned));
	size_t l, k, j, i;

	for (l = 0; planned && l < 2; l++)
		for (k = 0; lists[l] && k < counts[l]; k++)
			for (j = 0; j < lists[l][k].n; j++)
				if ((i = orig_index(r, lists[l][k].migs[j])) != SIZE_MAX)
					planned[i] = true;
	return planned;
}

/* validate_migration_prerequisites, validate_safety_gates: the preflight gates. A refusal
 * is recorded (but for the ledger's own, which cannot take an entry). */
static int step_preflight(dc_rollout__run *r, dc_error *err)
{
	dc_rollout_report *rep = r->rep;
	const dc_rollout_opts *opts = r->opts;
	const dc_migration_set *set = r->fleet.orig_set;
	const dc_gate__def *def;
	dc_gate__preflight pf;
	dc_gate_ctx gctx;
	const char *gate;
	int64_t t = dc_time_mono_ms();
	int grc;

	memset(&pf, 0, sizeof(pf));
	pf.rollback = opts->direction == DC_ROLLOUT_ROLLBACK;
	pf.allow_out_of_order = opts->allow_out_of_order;
	pf.ledger_pubkey = opts->ledger_pubkey;
	pf.tenants = rep->tenants;
	pf.todos = r->fleet.todos;
	pf.ntenants = rep->ntenants;
	pf.ops = r->fleet.ops;
	pf.engines = r->fleet.engines;
	pf.nengines = r->fleet.nengines;
	pf.tenant_engine = r->fleet.tenant_engine;
	pf.shard_todos = r->shard_todos;
	pf.nshard_todos = r->shard_todos ? r->fleet.nengines : 0;
	if (!(pf.planned = planned_migrations(r))) {
		dc_error_set(err, DC_ENOMEM, "out of memory");
		return DC_ENOMEM;
	}
	memset(&gctx, 0, sizeof(gctx));
	gctx.cfg = r->fleet.cfg;
	gctx.set = set;
	gctx.stop = opts->stop;
	gctx.user = &pf;
	grc = dc_gate_registry_run(r->gates, DC_GATE_PREFLIGHT, &gctx, on_gate, rep, NULL, err);
	free((void *)(uintptr_t)pf.planned);
	dc_rollout__add_step(rep, "validate_migration_prerequisites", grc ? "failed" : "success",
	                     dc_time_mono_ms() - t, "parse, checksums, ledger",
	                     "%zu migrations parse; deployclaw.sum %s; ledger %s", set->count,
	                     passed(rep, "sum_file") ? "matches" : "unchecked",
	                     passed(rep, "ledger") ? "verifies" : "fails");
	dc_rollout__add_step(rep, "validate_safety_gates", grc ? "failed" : "success",
	                     dc_time_mono_ms() - t, "evaluate preflight gates",
	                     "%zu gates evaluated%s%s", rep->ngates, grc ? ": " : ", all pass",
	                     grc ? err->message : "");
	isolation_step(r, dc_time_mono_ms() - t);
	if (!grc)
		return 0;
	gate = rep->ngates ? rep->gates[rep->ngates - 1].gate : "";
	def = dc_gate__builtin_find(gate);
	/* integrity failures are exit 4; a broken ledger cannot take an entry */
	if (def && def->refusal == DC_EINTEGRITY)
		return err->code = DC_EINTEGRITY;
	if (r->batch.ledger && !opts->dry_run) {
		dc_error lerr = { 0 };

		dc_rollout__batch_record(&r->batch, "gate", gate_json(&rep->gates[rep->ngates - 1]),
		                         &lerr);
		dc_rollout__batch_record(
		        &r->batch, "run_refused",
		        json_pack("{s:s, s:s}", "gate", gate, "reason", err->message), &lerr);
	}
	return grc;
}

/* Decisions recorded before acting: interrupted runs, run_start (then `*started`), and
 * every preflight gate's result. */
static int step_start(dc_rollout__run *r, const char *phash, bool *started, dc_error *err)
{
	dc_rollout_report *rep = r->rep;
	dc_ledger__event ev[64];
	size_t i, n = rep->ngates < 64 ? rep->ngates : 64;
	int rc;

	if ((rc = dc_rollout__record_interrupted(&r->batch, r->fleet.cfg->audit.ledger, err)) != 0)
		return rc;
	if ((rc = dc_rollout__batch_record(&r->batch, "run_start", run_start_json(r, phash),
	                                   err)) != 0)
		return rc;
	*started = true;
	for (i = 0; i < n; i++) {
		ev[i].event = "gate";
		ev[i].data = gate_json(&rep->gates[i]);
	}
	rc = dc_rollout__batch_append(&r->batch, ev, n, err);
	for (i = 0; i < n; i++)
		json_decref(ev[i].data);
	return rc;
}

/* The counts, the run's code, and (once run_start is recorded) its end in the ledger. */
static int finish(dc_rollout__run *r, int rc, bool started, int64_t t0, dc_error *err)
{
	dc_rollout_report *rep = r->rep;
	const dc_rollout_opts *opts = r->opts;
	dc_error lerr = { 0 };
	const char *status;
	size_t i;
	int grc;

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
	if (rc == 0 && !opts->dry_run) {
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
	if (!started) {
		if (opts->dry_run)
			dc_rollout__add_step(rep, "immutable_audit_log", "skipped", 0,
			                     "append to the signed ledger",
			                     "dry run: nothing changed, nothing recorded");
		return rc;
	}
	status = rc == 0 ? "succeeded" : rc == DC_EINTERRUPTED ? "interrupted" : "failed";
	dc_rollout__batch_flush(&r->batch);
	grc = dc_rollout__batch_record(
	        &r->batch, "run_end",
	        json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:o}", "status", status, "succeeded",
	                  (json_int_t)rep->succeeded, "failed", (json_int_t)rep->failed, "skipped",
	                  (json_int_t)rep->skipped, "not_run", (json_int_t)rep->not_run,
	                  "duration_ms", (json_int_t)rep->duration_ms, "tenant_isolation",
	                  isolation_json(r)),
	        &lerr);
	if (grc && rc == 0)
		rc = dc_error_set(err, grc, "%s", lerr.message);
	if (grc)
		dc_rollout__add_step(rep, "immutable_audit_log", "failed", 0,
		                     "append to the signed ledger",
		                     "could not record the run's end: %.400s", lerr.message);
	else
		dc_rollout__add_step(
		        rep, "immutable_audit_log", "success", 0, "append to the signed ledger",
		        "%lld entries appended to '%s' (seq %lld..%lld), hash-chained and "
		        "Ed25519-signed",
		        (long long)(r->batch.last_seq - r->batch.first_seq + 1),
		        r->fleet.cfg->audit.ledger, (long long)r->batch.first_seq,
		        (long long)r->batch.last_seq);
	return rc;
}

int dc_rollout_run(dc_rollout_report **out,
                   const dc_config *cfg,
                   const dc_migration_set *set,
                   dc_ledger *ledger,
                   const dc_rollout_opts *opts,
                   dc_error *err)
{
	dc_rollout_report *rep = NULL;
	size_t *planned_idx = NULL;
	dc_rollout__run r;
	char phash[65];
	int64_t t0 = dc_time_mono_ms();
	size_t i;
	int rc;
	bool started = false;

	*out = NULL;
	if (opts->version == 0 || opts->version > DC_ROLLOUT_OPTIONS_VERSION)
		return dc_error_set(err, DC_EINVAL,
		                    "rollout options of version %u: this library knows 1 to %d "
		                    "(start from DC_ROLLOUT_OPTIONS_INIT)",
		                    opts->version, DC_ROLLOUT_OPTIONS_VERSION);
	run_init(&r, opts, ledger);
	rep = calloc(1, sizeof(*rep));
	if (!rep) {
		rc = dc_error_set(err, DC_ENOMEM, "out of memory");
		goto out;
	}
	*out = rep;
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
	if ((rc = step_topology(&r, cfg, set, err)) != 0 ||
	    (rc = dc_rollout__shards_plan(&r, err)) != 0 ||
	    (rc = step_plan(&r, &planned_idx, phash, err)) != 0 ||
	    (rc = step_preflight(&r, err)) != 0)
		goto out;
	if (opts->dry_run) {
		for (i = 0; i < rep->ntenants; i++)
			rep->outcomes[i].status = DC_TENANT_SKIPPED;
		goto out;
	}
	if ((rc = step_start(&r, phash, &started, err)) != 0)
		goto out;
	for (i = 0; i < rep->planned; i++)
		rep->outcomes[planned_idx[i]].status = DC_TENANT_NOT_RUN;
	/* shard migrations come before every tenant: a failed one stops the run */
	if ((opts->direction == DC_ROLLOUT_APPLY && (rc = dc_rollout__shards_run(&r, err)) != 0) ||
	    (rc = dc_rollout__plan_waves(&r, rep->planned, err)) != 0)
		goto out;
	rc = dc_rollout__run_waves(&r, planned_idx, err);
	if (rc == 0 && opts->direction == DC_ROLLOUT_ROLLBACK)
		rc = dc_rollout__shards_rollback(&r, err);
out:
	if (rep)
		rc = finish(&r, rc, started, t0, err);
	free(planned_idx);
	run_release(&r);
	return rc;
}
