/*
 * status.c — where every tenant of a fleet stands: its history read against
 * the migration set (through the rollout's fleet, as a plan towards the
 * latest version), and the ledger's latest outcome of each tenant.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <deployclaw/ledger.h>
#include <deployclaw/status.h>

#include "rollout/rollout_internal.h"
#include "util/util.h"

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
	if (strcmp(event, DC_ROLLOUT__OUTCOME_EVENT) == 0)
		return scan_one_outcome(ctx, d);
	if (strcmp(event, DC_ROLLOUT__OUTCOMES_ENTRY) == 0)
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
	free(st->shards);
	free(st);
}

/* One row per tenant from its plan, and the count per version. */
static void fill_rows(dc_status *st, const dc_rollout__fleet *f)
{
	size_t i, k;

	for (i = 0; i < st->ntenants; i++) {
		dc_status_tenant *row = &st->rows[i];
		const dc_rollout__todo *t = &f->todos[i];

		row->tenant = &st->tenants[i];
		snprintf(row->version, sizeof(row->version), "%s", t->from);
		row->pending = t->n;
		row->drifted = t->drift;
		if (!f->readable[i]) {
			row->failed = true;
			snprintf(row->detail, sizeof(row->detail), "%s", f->read_error[i]);
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
}

/* Appends `v` to a space-separated list; one that does not fit is left out. */
static void join(char *list, size_t size, const char *v)
{
	size_t len = strlen(list), vl = strlen(v);

	if (len + (len > 0) + vl >= size)
		return;
	if (len)
		list[len++] = ' ';
	memcpy(list + len, v, vl + 1);
}

/* Each shard's shard_history against the set's shard migrations. */
static int collect_shards(dc_status *st,
                          const dc_rollout__fleet *f,
                          const dc_migration_set *set,
                          dc_error *err)
{
	size_t e, i;
	int rc = 0;

	for (i = 0; i < set->count && set->migrations[i].scope != DC_SCOPE_SHARD; i++)
		;
	if (i == set->count || f->ops->version < 3 || !f->ops->shard_history_read)
		return 0;
	st->shards = calloc(f->nengines, sizeof(*st->shards));
	if (!st->shards)
		return dc_error_set(err, DC_ENOMEM, "out of memory");
	st->nshards = f->nengines;
	for (e = 0; e < f->nengines && rc == 0; e++) {
		dc_status_shard *s = &st->shards[e];
		dc_history_row *rows = NULL;
		dc_rollout__todo t;
		size_t n = 0;

		snprintf(s->shard, sizeof(s->shard), "%s",
		         e < f->cfg->nshards && f->cfg->shards[e].name ? f->cfg->shards[e].name
		                                                       : "?");
		if ((rc = f->ops->shard_history_read(f->engines[e], &rows, &n, err)) != 0)
			break;
		for (i = 0; i < n; i++)
			if (rows[i].status == DC_HISTORY_APPLIED)
				join(s->applied, sizeof(s->applied), rows[i].version);
		rc = dc_rollout__todo_compute_scope(&t, set, rows, n, DC_ROLLOUT_APPLY, NULL,
		                                    DC_SCOPE_SHARD);
		if (rc < 0)
			rc = dc_error_set(err, rc, "out of memory");
		s->pending = t.n;
		for (i = 0; i < t.n; i++)
			join(s->pending_versions, sizeof(s->pending_versions), t.migs[i]->version);
		s->drifted = t.drift;
		if (t.drift)
			snprintf(s->detail, sizeof(s->detail), "%s", t.problem);
		dc_rollout__todo_release(&t);
		dc_history_rows_free(rows, n);
	}
	return rc;
}

int dc_status_collect(dc_status **out,
                      const dc_config *cfg,
                      const dc_migration_set *set,
                      int parallel,
                      dc_error *err)
{
	dc_rollout__fleet f;
	dc_status *st = NULL;
	size_t i, k;
	int rc;

	*out = NULL;
	dc_rollout__fleet_init(&f);
	st = calloc(1, sizeof(*st));
	if (!st) {
		rc = dc_error_set(err, DC_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = dc_rollout__fleet_open(&f, cfg, set, DC_ROLLOUT_APPLY, parallel, NULL, "",
	                                 err)) != 0 ||
	    (rc = dc_rollout__fleet_discover(&f, NULL, 0, err)) != 0)
		goto out;
	st->rows = calloc(f.ntenants + 1, sizeof(*st->rows));
	st->versions = calloc(set->count + 1, sizeof(*st->versions));
	if (!st->rows || !st->versions) {
		rc = dc_error_set(err, DC_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = dc_rollout__fleet_plan(&f, NULL, err)) != 0)
		goto out;
	/* the tenants move to the status; the fleet borrows them until it is released */
	st->tenants = f.tenants;
	st->ntenants = f.ntenants;
	f.own_tenants = false;
	st->nversions = set->count + 1;
	for (k = 0; k < set->count; k++) {
		snprintf(st->versions[k + 1].version, sizeof(st->versions[0].version), "%s",
		         set->migrations[k].version);
		snprintf(st->versions[k + 1].name, sizeof(st->versions[0].name), "%s",
		         set->migrations[k].name);
	}
	fill_rows(st, &f);
	if ((rc = collect_shards(st, &f, set, err)) != 0)
		goto out;
	if (dc_path_exists(cfg->audit.ledger) &&
	    (rc = dc_ledger__read(cfg->audit.ledger, NULL, scan_outcome, st, err)) != 0)
		goto out;
	for (i = 0; i < st->ntenants; i++) {
		/* a failure the tenant has since recovered from is not shown */
		if (st->rows[i].failed && st->rows[i].pending == 0 && f.readable[i] &&
		    !f.todos[i].partial) {
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
	dc_rollout__fleet_release(&f);
	dc_status_free(st);
	return rc;
}
