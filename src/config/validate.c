/*
 * validate.c — the rules of deployclaw.yaml that look at more than one
 * value: duplicate tenants, and what each engine needs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_internal.h"

typedef struct tenant_ref {
	const char *id;
	size_t index;
} tenant_ref;

static int tenant_ref_cmp(const void *a, const void *b)
{
	const tenant_ref *x = a, *y = b;
	int d = strcmp(x->id, y->id);

	return d ? d : (x->index > y->index) - (x->index < y->index);
}

/* Found by sorting: a list may hold many thousands. */
int dc_config__check_tenant_list(ctx *c, const dc_config *cfg, const dc_yaml_node *seq)
{
	tenant_ref *refs = NULL;
	size_t i, dup = SIZE_MAX, first = 0;
	int rc = 0;
	char buf[80];

	if (cfg->tenancy.nlist < 2)
		return 0;
	refs = dc_malloc_array(cfg->tenancy.nlist, sizeof(*refs));
	if (!refs)
		return dc_error_set(c->err, DC_ENOMEM, "out of memory");
	for (i = 0; i < cfg->tenancy.nlist; i++) {
		refs[i].id = cfg->tenancy.list[i];
		refs[i].index = i;
	}
	qsort(refs, cfg->tenancy.nlist, sizeof(*refs), tenant_ref_cmp);
	for (i = 1; i < cfg->tenancy.nlist; i++)
		if (!strcmp(refs[i].id, refs[i - 1].id) && refs[i].index < dup)
			dup = refs[i].index;
	if (dup != SIZE_MAX) {
		/* the earliest occurrence of that id */
		for (i = 0; i < dup; i++) {
			if (!strcmp(cfg->tenancy.list[i], cfg->tenancy.list[dup])) {
				first = i;
				break;
			}
		}
		rc = fail(
		        c, seq->kids[dup],
		        "tenancy.list[%zu]: duplicate tenant '%s' (first at tenancy.list[%zu], line %d)",
		        dup,
		        dc_config__shown(buf, sizeof(buf), cfg->tenancy.list[dup],
		                         strlen(cfg->tenancy.list[dup])),
		        first, seq->kids[first]->line);
	}
	free(refs);
	return rc;
}

/* tenancy.column and tenancy.app_role: row tenancy's RLS gates, which need both. */
static int check_rls_keys(ctx *c, const dc_config *cfg, const dc_yaml_node *tenancy)
{
	const dc_yaml_node *column = dc_yaml__get(tenancy, "column");
	const dc_yaml_node *role = dc_yaml__get(tenancy, "app_role");

	if (!cfg->tenancy.column && !cfg->tenancy.app_role)
		return 0;
	if (cfg->tenancy.model != DC_TENANCY_ROW)
		return fail(c, column ? column : role,
		            "tenancy.%s: only row tenancy (tenancy.model: row) has a tenant column "
		            "that row-level security guards",
		            column ? "column" : "app_role");
	if (!cfg->tenancy.app_role)
		return fail(c, column,
		            "tenancy.column: needs tenancy.app_role, the application's role that "
		            "row-level security must hold back");
	if (!cfg->tenancy.column)
		return fail(c, role,
		            "tenancy.app_role: needs tenancy.column, the tenant column row-level "
		            "security filters on");
	return 0;
}

/*
 * The rules that tie keys together, once every section is read: what each
 * engine needs. Messages point at the key to change.
 */
int dc_config__check_across_keys(ctx *c, const dc_config *cfg, const dc_yaml_node *root)
{
	const dc_yaml_node *engine = dc_yaml__get(root, "engine");
	const dc_yaml_node *tenancy = dc_config__present(dc_yaml__get(root, "tenancy"));
	const dc_yaml_node *shards = dc_config__present(dc_yaml__get(root, "shards"));

	if (cfg->engine == DC_ENGINE_POSTGRES && cfg->nshards == 0) {
		if (shards)
			return fail(c, shards,
			            "shards: engine 'postgres' needs at least one shard");
		return fail(c, engine,
		            "engine: 'postgres' needs at least one shard under 'shards'");
	}
	if (cfg->tenancy.nshared_schemas && tenancy) {
		const dc_yaml_node *list = dc_yaml__get(tenancy, "shared_schemas");
		size_t i;

		if (!list)
			list = tenancy;
		if (cfg->engine != DC_ENGINE_POSTGRES || cfg->tenancy.model != DC_TENANCY_SCHEMA)
			return fail(c, list,
			            "tenancy.shared_schemas: only PostgreSQL's schema tenancy has "
			            "schemas that tenants share");
		for (i = 0; i < cfg->tenancy.nshared_schemas; i++) {
			const char *s = cfg->tenancy.shared_schemas[i];
			const dc_yaml_node *item = i < list->nkids ? list->kids[i] : list;

			if (!strcmp(s, "deployclaw") || !strcmp(s, "pg_catalog") ||
			    !strcmp(s, "information_schema"))
				return fail(
				        c, item,
				        "tenancy.shared_schemas[%zu]: '%s' is not a schema tenants "
				        "share: %s",
				        i, s,
				        !strcmp(s, "deployclaw")
				                ? "it is deployclaw's own, which migrations never touch"
				                : "every tenant may read it already");
		}
	}
	if (cfg->tenancy.run_as &&
	    (cfg->engine != DC_ENGINE_POSTGRES || cfg->tenancy.model != DC_TENANCY_SCHEMA))
		/* a role applies to a schema: SQLite has no roles, a tenant
		 * database's own objects (deployclaw.tenant_state there) would be
		 * created under it, and row tenancy has one transaction per shard */
		return fail(c, dc_yaml__get(tenancy, "run_as"),
		            "tenancy.run_as: applies only to engine 'postgres' with tenancy.model "
		            "'schema'");
	if (cfg->engine == DC_ENGINE_SQLITE) {
		const dc_yaml_node *model = dc_yaml__get(tenancy, "model");

		if (cfg->tenancy.model != DC_TENANCY_DATABASE)
			return fail(
			        c, model,
			        "tenancy.model: engine 'sqlite' supports only 'database' (one file per tenant)");
		if (!cfg->tenancy.glob && cfg->tenancy.nlist == 0) {
			if (tenancy)
				return fail(c, tenancy,
				            "tenancy: engine 'sqlite' needs 'glob' or 'list'");
			if (engine)
				return fail(
				        c, engine,
				        "engine: 'sqlite' needs 'tenancy' with 'glob' or 'list'");
			return fail(
			        c, root,
			        "missing required key 'tenancy' (engine 'sqlite' needs 'glob' or 'list')");
		}
	}
	return check_rls_keys(c, cfg, tenancy);
}
