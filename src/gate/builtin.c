/*
 * builtin.c — every built-in gate, as one table (redis's command table is
 * the model): the rollout registers from it and never checks ad hoc.
 *
 * A row is the gate's id, the stages it runs at, the config key that tunes
 * or disables it, its check function (in the family file named above its
 * declaration in gate_internal.h), what it measures, whether the config
 * turns it on, and what its refusal makes the run return. The gates section of docs/rollout.md lists the same rows
 * (test_gate compares them).
 */
#include <string.h>

#include "gate_internal.h"

static bool integrity_check_on(const dc_config *cfg)
{
	return cfg->gates.integrity_check != DC_CHECK_OFF;
}

static bool foreign_key_check_on(const dc_config *cfg)
{
	return cfg->gates.foreign_key_check != DC_CHECK_OFF;
}

static bool run_as_on(const dc_config *cfg)
{
	return cfg->tenancy.run_as != NULL;
}

/* Row tenancy with a tenant column: the RLS gates. */
static bool rls_on(const dc_config *cfg)
{
	return cfg->tenancy.column != NULL;
}

/* clang-format off */
const dc_gate__def dc_gate__builtin[] = {
	/* integrity */
	{ "ledger", DC_GATE_PREFLIGHT, "audit.ledger", dc_gate__ledger,
	  "the audit ledger verifies (every link and signature)", NULL, DC_EINTEGRITY, "integrity" },
	{ "sum_file", DC_GATE_PREFLIGHT, NULL, dc_gate__sum_file,
	  "deployclaw.sum matches the migrations", NULL, DC_EINTEGRITY, "integrity" },
	{ "migrations_parse", DC_GATE_PREFLIGHT, NULL, dc_gate__parse,
	  "every migration parses", NULL, DC_EGATE, "integrity" },
	/* compliance */
	{ "require_down", DC_GATE_PREFLIGHT, "gates.require_down", dc_gate__require_down,
	  "every migration in the plan has a down", NULL, DC_EGATE, "compliance" },
	/* isolation */
	{ "isolation", DC_GATE_PREFLIGHT, "gates.isolation", dc_gate__isolation,
	  "no PostgreSQL statement in the plan leaves the tenant's isolation", NULL, DC_EGATE, "isolation" },
	{ "run_as", DC_GATE_PREFLIGHT, "tenancy.run_as", dc_gate__run_as,
	  "each tenant's run-as role exists and reaches no other tenant's schema", run_as_on,
	  DC_EGATE, "isolation" },
	/* rls: two rows, as one row carries one refusal code (exit 3 before the run, 1 per tenant) */
	{ "rls", DC_GATE_PREFLIGHT, "tenancy.column", dc_gate__rls,
	  "no migration weakens row-level security; every shard's tenant tables have it, forced, "
	  "with a policy on the column, and the app role cannot bypass it", rls_on, DC_EGATE, "isolation" },
	{ "isolation_runtime", DC_GATE_AFTER_TENANT, "gates.isolation", dc_gate__isolation_runtime,
	  "the tenant's transaction stayed in its schema, search_path and role before its commit",
	  NULL, DC_ETENANT, "isolation" },
	/* ordering */
	{ "out_of_order", DC_GATE_PREFLIGHT, "gates.allow_out_of_order", dc_gate__out_of_order,
	  "no pending version is older than an applied one", NULL, DC_EGATE, "ordering" },
	{ "drift", DC_GATE_PREFLIGHT, NULL, dc_gate__drift,
	  "every applied checksum matches its file", NULL, DC_EGATE, "ordering" },
	/* consistency */
	{ "integrity_check", DC_GATE_AFTER_TENANT, "gates.integrity_check",
	  dc_gate__integrity_check, "the tenant's database is intact before commit",
	  integrity_check_on, DC_ETENANT, "consistency" },
	{ "foreign_key_check", DC_GATE_AFTER_TENANT, "gates.foreign_key_check",
	  dc_gate__foreign_key_check, "no foreign key violation before commit",
	  foreign_key_check_on, DC_ETENANT, "consistency" },
	/* isolation, before each commit */
	{ "rls_after", DC_GATE_AFTER_TENANT, "tenancy.column", dc_gate__rls_after,
	  "the tenant's tables still have row-level security before commit", rls_on, DC_ETENANT, "isolation" },
};
/* clang-format on */

const size_t dc_gate__nbuiltin = sizeof(dc_gate__builtin) / sizeof(dc_gate__builtin[0]);

const dc_gate__def *dc_gate__builtin_find(const char *name)
{
	size_t i;

	for (i = 0; i < dc_gate__nbuiltin; i++)
		if (strcmp(dc_gate__builtin[i].name, name) == 0)
			return &dc_gate__builtin[i];
	return NULL;
}

bool dc_gate__is_isolation(const char *name)
{
	const dc_gate__def *d = dc_gate__builtin_find(name);

	return d && d->family && !strcmp(d->family, "isolation");
}

int dc_gate__register_builtins(dc_gate_registry *reg, const dc_config *cfg, dc_error *err)
{
	size_t i;
	int rc;

	for (i = 0; i < dc_gate__nbuiltin; i++) {
		const dc_gate__def *d = &dc_gate__builtin[i];
		dc_gate gate = { d->name, d->measures, d->stages, d->check, 0, NULL };

		if ((rc = dc_gate_registry_add(reg, &gate, err)) != 0)
			return rc;
		if (d->enabled && !d->enabled(cfg) &&
		    (rc = dc_gate_registry_enable(reg, d->name, false, err)) != 0)
			return rc;
	}
	return 0;
}
