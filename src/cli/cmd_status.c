/*
 * deployclaw status — where every version stands across the fleet.
 */
#include <stdlib.h>
#include <string.h>

#include <deployclaw/status.h>

#include "cli.h"

static const cli_option status_options[] = {
	{ "parallel", 'j', "N", "tenants read at once (default: rollout.parallel)", false },
	{ NULL, 0, NULL, NULL, false },
};

static void print_list(const dc_status *st,
                       const char *title,
                       bool (*pick)(const dc_status_tenant *),
                       size_t max)
{
	size_t i, n = 0, total = 0;

	for (i = 0; i < st->ntenants; i++)
		total += pick(&st->rows[i]);
	if (!total)
		return;
	cli_out("\n%s (%zu):\n", title, total);
	for (i = 0; i < st->ntenants && n < max; i++) {
		const dc_status_tenant *r = &st->rows[i];

		if (!pick(r))
			continue;
		cli_out("  %-24s at '%s'%s%s\n", r->tenant->id,
		        r->version[0] ? r->version : "(none)", r->detail[0] ? ": " : "", r->detail);
		n++;
	}
	if (total > n)
		cli_out("  ... and %zu more (--json lists every tenant)\n", total - n);
}

static bool is_pending(const dc_status_tenant *r)
{
	return r->pending > 0 && !r->failed && !r->drifted;
}

static bool is_failed(const dc_status_tenant *r)
{
	return r->failed;
}

static bool is_drifted(const dc_status_tenant *r)
{
	return r->drifted;
}

static json_t *status_json(const dc_status *st)
{
	json_t *o, *versions, *tenants;
	size_t i;

	versions = json_array();
	tenants = json_array();
	o = json_pack("{s:I, s:I, s:I, s:I, s:o, s:o}", "tenants", (json_int_t)st->ntenants,
	              "pending", (json_int_t)st->pending, "failed", (json_int_t)st->failed,
	              "drifted", (json_int_t)st->drifted, "versions", versions, "tenant_list",
	              tenants);
	if (!o)
		return NULL;
	for (i = 0; i < st->nversions; i++)
		json_array_append_new(
		        versions,
		        json_pack("{s:s?, s:s, s:I}", "version",
		                  st->versions[i].version[0] ? st->versions[i].version : NULL,
		                  "name", st->versions[i].name, "tenants",
		                  (json_int_t)st->versions[i].tenants));
	for (i = 0; i < st->ntenants; i++) {
		const dc_status_tenant *r = &st->rows[i];

		json_array_append_new(tenants,
		                      json_pack("{s:s, s:s, s:s?, s:I, s:b, s:b, s:s}", "tenant",
		                                r->tenant->id, "shard",
		                                r->tenant->shard ? r->tenant->shard : "", "version",
		                                r->version[0] ? r->version : NULL, "pending",
		                                (json_int_t)r->pending, "failed", r->failed,
		                                "drifted", r->drifted, "detail", r->detail));
	}
	if (st->nshards) {
		json_t *shards = json_array();

		for (i = 0; shards && i < st->nshards; i++) {
			const dc_status_shard *s = &st->shards[i];

			json_array_append_new(shards,
			                      json_pack("{s:s, s:s, s:I, s:s, s:b, s:s}", "shard",
			                                s->shard, "applied", s->applied, "pending",
			                                (json_int_t)s->pending, "pending_versions",
			                                s->pending_versions, "drifted", s->drifted,
			                                "detail", s->detail));
		}
		json_object_set_new(o, "shard_migrations", shards);
	}
	return o;
}

/* Each shard's shard-scoped migrations (`scope: shard`). */
static void print_shards(const dc_status *st)
{
	size_t i;

	if (st->nshards)
		cli_out("\nshard migrations (scope: shard):\n");
	for (i = 0; i < st->nshards; i++) {
		const dc_status_shard *s = &st->shards[i];

		cli_out("  shard %-18s applied: %s", s->shard,
		        s->applied[0] ? s->applied : "(none)");
		if (s->pending)
			cli_out("; pending: %s", s->pending_versions);
		if (s->drifted)
			cli_out("; drifted: %s", s->detail);
		cli_out("\n");
	}
}

/* The version every tenant ends at: the last tenant-scoped one. */
static const char *last_tenant_version(const dc_migration_set *set)
{
	size_t i;

	for (i = set->count; i-- > 0;)
		if (set->migrations[i].scope == DC_SCOPE_TENANT)
			return set->migrations[i].version;
	return "(none)";
}

int cli_status(cli *c, int parallel)
{
	dc_config *cfg = NULL;
	dc_migration_set *set = NULL;
	dc_status *st = NULL;
	dc_error err = { 0 };
	int rc;
	size_t i;

	if ((rc = cli_load_config(c, &cfg, &err)) != 0)
		goto out;
	if ((rc = cli_load_migrations(cfg, false, &set, &err)) != 0)
		goto out;
	if ((rc = dc_status_collect(&st, cfg, set, parallel, &err)) != 0)
		goto out;
	if (c->json) {
		json_t *o = status_json(st);

		if (!o) {
			rc = dc_error_set(&err, DC_ENOMEM, "out of memory");
			goto out;
		}
		cli_print_json(o);
		json_decref(o);
		goto out;
	}
	if (c->quiet)
		goto out;
	cli_out("%zu tenants, %zu migrations\n\n  %-16s %-36s %8s\n", st->ntenants, set->count,
	        "version", "name", "tenants");
	for (i = 0; i < st->nversions; i++) {
		if (i == 0 && st->versions[0].tenants == 0)
			continue;
		cli_out("  %-16s %-36.36s %8zu\n",
		        st->versions[i].version[0] ? st->versions[i].version : "(none)",
		        i == 0 ? "nothing applied" : st->versions[i].name, st->versions[i].tenants);
	}
	print_list(st, "pending", is_pending, c->verbose ? (size_t)-1 : 10);
	print_list(st, "failed", is_failed, c->verbose ? (size_t)-1 : 20);
	print_list(st, "drifted (applied checksum differs from the file)", is_drifted,
	           c->verbose ? (size_t)-1 : 20);
	print_shards(st);
	if (!st->pending && !st->failed && !st->drifted)
		cli_out("\nevery tenant is at '%s'\n", last_tenant_version(set));
out:
	dc_status_free(st);
	dc_migration_set_free(set);
	dc_config_free(cfg);
	return rc ? cli_fail(c, rc, &err) : 0;
}

static int run_status(cli *c)
{
	int parallel = 0, rc;

	if ((rc = cli_parse_parallel(c, &parallel)) != 0)
		return rc;
	return cli_status(c, parallel);
}

const cli_command cmd_status = {
	"status",
	"",
	"per version, how many tenants stand at it; pending, failed and drifted tenants",
	"Reads every tenant's history table (in parallel) against the migrations, and\n"
	"the ledger for the outcome of the latest run per tenant.",
	status_options,
	run_status,
	NULL,
	0,
};
