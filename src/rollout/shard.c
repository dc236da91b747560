/*
 * shard.c — shard-scoped migrations (`scope: shard`): what belongs to a
 * shard's database rather than to a tenant (extensions, shared schemas,
 * lookup tables). Each runs once per shard, through the engine's shard_run:
 * one transaction per shard under the shard's lock, recorded in the shard's
 * history table and in the ledger.
 *
 * Apply runs every pending shard migration of every shard that has a tenant
 * in the run before the canary: a shard migration at version V is then in place before any tenant
 * applies a version above V. A shard that fails is rolled back whole and the
 * run stops before any tenant is touched. A rollback with --to undoes the
 * shard migrations above the target after every tenant went below it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rollout_internal.h"
#include "util/text.h"
#include "util/util.h"

/* The set's first shard-scoped migration, or NULL. */
static const dc_migration *first_shard_scoped(const dc_migration_set *set)
{
	size_t i;

	for (i = 0; i < set->count; i++)
		if (set->migrations[i].scope == DC_SCOPE_SHARD)
			return &set->migrations[i];
	return NULL;
}

static const char *shard_name(const dc_rollout__run *r, size_t e)
{
	const dc_config *cfg = r->fleet.cfg;

	return e < cfg->nshards && cfg->shards[e].name ? cfg->shards[e].name : "?";
}

static void list_versions(dc_shard_outcome *o, const dc_rollout__todo *t)
{
	size_t k, len = 0;

	o->versions[0] = '\0';
	for (k = 0; k < t->n && len + 2 < sizeof(o->versions); k++) {
		int w = snprintf(o->versions + len, sizeof(o->versions) - len, "%s%s", k ? " " : "",
		                 t->migs[k]->version);

		if (w < 0)
			break;
		len += (size_t)w;
	}
	if (len >= sizeof(o->versions))
		o->versions[sizeof(o->versions) - 1] = '\0';
}

static bool has_tenant(const dc_rollout__fleet *f, size_t e)
{
	size_t i;

	for (i = 0; i < f->ntenants; i++)
		if (f->tenant_engine[i] == e)
			return true;
	return false;
}

int dc_rollout__shards_plan(dc_rollout__run *r, dc_error *err)
{
	dc_rollout__fleet *f = &r->fleet;
	dc_rollout_report *rep = r->rep;
	const dc_rollout_opts *opts = r->opts;
	const dc_migration *first;
	size_t e;
	int rc;

	if (!(first = first_shard_scoped(f->orig_set)))
		return 0;
	if (f->cfg->tenancy.model == DC_TENANCY_DATABASE)
		return dc_error_set_at(err, DC_EINVAL, first->path, 0, 0,
		                       "'%s' has scope 'shard', which database tenancy cannot run: "
		                       "each tenant is a database of its own, and what its tenants "
		                       "share belongs in a tenant migration",
		                       dc_path_basename(first->path));
	if (f->ops->version < 3 || !f->ops->shard_history_read || !f->ops->shard_run)
		return dc_error_set(
		        err, DC_EINVAL,
		        "the migrations have scope 'shard' and engine '%s' has no shard "
		        "database to run them in",
		        f->ops->name);
	r->shard_todos = calloc(f->nengines, sizeof(*r->shard_todos));
	rep->shards = calloc(f->nengines, sizeof(*rep->shards));
	if (!r->shard_todos || !rep->shards)
		return dc_error_set(err, DC_ENOMEM, "out of memory");
	rep->nshards = f->nengines;
	for (e = 0; e < f->nengines; e++) {
		dc_shard_outcome *o = &rep->shards[e];
		dc_history_row *rows = NULL;
		size_t nrows = 0;

		snprintf(o->shard, sizeof(o->shard), "%s", shard_name(r, e));
		o->status = DC_TENANT_SKIPPED;
		/* a rollback undoes shard migrations only down to an explicit --to;
		 * a shard none of whose tenants is in the run (-t) is left alone */
		if ((opts->direction == DC_ROLLOUT_ROLLBACK && !opts->to_version) ||
		    !has_tenant(f, e))
			continue;
		if ((rc = f->ops->shard_history_read(f->engines[e], &rows, &nrows, err)) != 0)
			return rc;
		rc = dc_rollout__todo_compute_scope(&r->shard_todos[e], f->orig_set, rows, nrows,
		                                    opts->direction, opts->to_version,
		                                    DC_SCOPE_SHARD);
		if (rc == 0 && r->shard_todos[e].drift)
			rc = dc_error_set(err, DC_EINTEGRITY, "shard '%s': %s", o->shard,
			                  r->shard_todos[e].problem);
		else if (rc == DC_EINVAL)
			rc = dc_error_set(err, DC_EINVAL, "shard '%s': %s", o->shard,
			                  r->shard_todos[e].problem);
		else if (rc < 0)
			rc = dc_error_set(err, rc, "out of memory");
		dc_history_rows_free(rows, nrows);
		if (rc)
			return rc;
		o->pending = r->shard_todos[e].n;
		list_versions(o, &r->shard_todos[e]);
		if (o->pending)
			o->status = DC_TENANT_NOT_RUN;
	}
	dc_rollout__add_step(rep, "plan_shard_migrations", "success", 0,
	                     "read every shard's shard_history",
	                     "%zu shard(s) have shard-scoped migrations pending",
	                     dc_rollout__shards_pending(rep));
	return 0;
}

size_t dc_rollout__shards_pending(const dc_rollout_report *rep)
{
	size_t e, n = 0;

	for (e = 0; e < rep->nshards; e++)
		n += rep->shards[e].pending > 0;
	return n;
}

static json_t *outcome_json(const dc_shard_outcome *o, const dc_rollout_opts *opts)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:I, s:s}", "shard", o->shard, "direction",
	                 opts->direction == DC_ROLLOUT_APPLY ? "apply" : "rollback", "status",
	                 dc_tenant_status_name(o->status), "versions", o->versions, "done",
	                 (json_int_t)o->done, "error", o->error);
}

/* One shard: its migrations through the engine, its outcome, its ledger entry. */
static int run_shard(dc_rollout__run *r, size_t e, dc_error *err)
{
	dc_rollout__fleet *f = &r->fleet;
	dc_shard_outcome *o = &r->rep->shards[e];
	const dc_rollout__todo *t = &r->shard_todos[e];
	dc_error serr = { 0 };
	bool *done = calloc(t->n, sizeof(*done));
	size_t k;
	int rc;

	if (!done)
		return dc_error_set(err, DC_ENOMEM, "out of memory");
	rc = f->ops->shard_run(f->engines[e], t->migs, t->n,
	                       r->opts->direction == DC_ROLLOUT_ROLLBACK, r->rep->run_id, r->actor,
	                       f->cfg->gates.lock_timeout_ms, done, &serr);
	for (k = 0; k < t->n; k++)
		o->done += done[k];
	free(done);
	o->status = rc ? DC_TENANT_FAILED : DC_TENANT_SUCCEEDED;
	if (rc)
		dc_error_format(&serr, o->error, sizeof(o->error));
	rc = dc_rollout__batch_record(&r->batch, "shard_migration", outcome_json(o, r->opts), err);
	if (o->status == DC_TENANT_FAILED) {
		*err = serr; /* the shard's failure is the run's, whatever the ledger said */
		rc = serr.code ? serr.code : DC_EDB;
	}
	return rc;
}

int dc_rollout__shards_run(dc_rollout__run *r, dc_error *err)
{
	dc_rollout_report *rep = r->rep;
	int64_t t = dc_time_mono_ms();
	size_t e, ran = 0, failed = 0;
	int rc = 0;

	if (!dc_rollout__shards_pending(rep))
		return 0;
	for (e = 0; e < rep->nshards && rc == 0; e++) {
		if (!rep->shards[e].pending)
			continue;
		if (dc_rollout__stop_requested(&r->fleet))
			break;
		rc = run_shard(r, e, err);
		ran++;
		failed += rep->shards[e].status == DC_TENANT_FAILED;
	}
	dc_rollout__add_step(rep, "run_shard_migrations", rc ? "failed" : "success",
	                     dc_time_mono_ms() - t, "shard-scoped migrations, once per shard",
	                     "%zu shard(s) ran their shard migrations, %zu failed%s%.600s", ran,
	                     failed, rc ? ": " : "", rc ? err->message : "");
	return rc;
}

/* A rollback undoes shard migrations after the tenants, and only when every tenant of the
 * fleet went below them: none failed or was left out (-t). */
int dc_rollout__shards_rollback(dc_rollout__run *r, dc_error *err)
{
	dc_rollout_report *rep = r->rep;
	size_t i;

	if (!dc_rollout__shards_pending(rep))
		return 0;
	for (i = 0; i < rep->ntenants; i++)
		if (rep->outcomes[i].status == DC_TENANT_FAILED ||
		    rep->outcomes[i].status == DC_TENANT_NOT_RUN)
			return 0; /* the run fails for them already; the shards wait for a rerun */
	if (r->opts->ntenants > 0) {
		dc_rollout__add_step(rep, "run_shard_migrations", "warning", 0,
		                     "shard-scoped migrations, once per shard",
		                     "not rolled back: -t names some tenants only, and a shard "
		                     "migration is undone once all of its shard's tenants are "
		                     "below it");
		return 0;
	}
	return dc_rollout__shards_run(r, err);
}
