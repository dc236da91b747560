/*
 * schema.c — the keys of deployclaw.yaml, section by section, their
 * defaults, and how each section fills dc_config.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config_internal.h"
#include "util/pool.h"

/* ------------------------------------------------------------------------ */
/* The schema.                                                              */

static const char *const root_keys[] = { "engine", "migrations", "tenancy", "shards",
	                                 "gates",  "rollout",    "audit",   "lint" };
static const char *const lint_keys[] = { "rules" };
/* in dc_severity order */
static const char *const severity_names[] = { "off", "info", "warning", "error" };
static const char *const tenancy_keys[] = { "model",  "glob",   "pattern",
	                                    "query",  "list",   "shared_schemas",
	                                    "run_as", "column", "app_role" };
static const char *const shard_keys[] = { "name", "primary", "replicas", "parallel" };
static const char *const gates_keys[] = { "lock_timeout",       "statement_timeout",
	                                  "require_down",       "replication_lag",
	                                  "integrity_check",    "foreign_key_check",
	                                  "allow_out_of_order", "isolation" };
static const char *const lag_keys[] = { "max", "timeout" };
static const char *const isolation_keys[] = { "dynamic_sql" };
/* in the order of dc_config.gates.isolation_allow_dynamic_sql's false, true */
static const char *const dynamic_sql_names[] = { "refuse", "allow" };
static const char *const rollout_keys[] = { "canary",   "waves",  "max_failures",
	                                    "parallel", "backup", "retries" };
static const char *const audit_keys[] = { "ledger", "key" };
static const char *const engine_names[] = { "sqlite", "postgres" };
/* in dc_tenancy_model order */
static const char *const model_names[] = { "database", "schema", "row" };

static int load_tenancy(ctx *c, dc_config *cfg, const dc_yaml_node *t)
{
	const dc_yaml_node *v;
	char *s = NULL;
	int rc, model = 0;

	if ((rc = dc_config__expect(c, t, "tenancy", DC_YAML_MAP)) != 0 ||
	    (rc = dc_config__check_keys(c, t, "tenancy", tenancy_keys, N(tenancy_keys))) != 0)
		return rc;
	if ((v = dc_yaml__get(t, "model")) != NULL) {
		if ((rc = dc_config__get_enum(c, v, "tenancy.model", model_names, N(model_names),
		                              "'schema', 'database' or 'row'", &model)) != 0)
			return rc;
		cfg->tenancy.model = (dc_tenancy_model)model;
	}
	if ((v = dc_yaml__get(t, "glob")) != NULL) {
		if ((rc = dc_config__get_nonempty(c, v, "tenancy.glob", &s)) != 0)
			return rc;
		cfg->tenancy.glob = dc_path_join(cfg->dir, s);
		free(s);
		if (!cfg->tenancy.glob)
			return dc_error_set(c->err, DC_ENOMEM, "out of memory");
	}
	if ((v = dc_yaml__get(t, "pattern")) != NULL &&
	    (rc = dc_config__get_nonempty(c, v, "tenancy.pattern", &cfg->tenancy.pattern)) != 0)
		return rc;
	/* "tenant\_%" in double quotes: YAML reads \_ as a no-break space */
	if (cfg->tenancy.pattern && strstr(cfg->tenancy.pattern, "\xc2\xa0"))
		return dc_config__fail_at(c, v->line, v->col,
		                          "tenancy.pattern: holds a no-break space, which is what "
		                          "YAML makes of \\_ in double quotes: write the pattern "
		                          "in single quotes ('tenant\\_%%') or as \\\\_");
	if ((v = dc_yaml__get(t, "query")) != NULL &&
	    (rc = dc_config__get_nonempty(c, v, "tenancy.query", &cfg->tenancy.query)) != 0)
		return rc;
	if ((v = dc_config__present(dc_yaml__get(t, "list"))) != NULL) {
		if ((rc = dc_config__get_str_list(c, v, "tenancy.list", SIZE_MAX,
		                                  &cfg->tenancy.list, &cfg->tenancy.nlist)) != 0)
			return rc;
		if ((rc = dc_config__check_tenant_list(c, cfg, v)) != 0)
			return rc;
	}
	if ((v = dc_config__present(dc_yaml__get(t, "shared_schemas"))) != NULL &&
	    (rc = dc_config__get_str_list(c, v, "tenancy.shared_schemas", SIZE_MAX,
	                                  &cfg->tenancy.shared_schemas,
	                                  &cfg->tenancy.nshared_schemas)) != 0)
		return rc;
	if ((v = dc_yaml__get(t, "run_as")) != NULL &&
	    (rc = dc_config__get_run_as(c, v, &cfg->tenancy.run_as)) != 0)
		return rc;
	if ((v = dc_yaml__get(t, "column")) != NULL &&
	    (rc = dc_config__get_pg_name(c, v, "tenancy.column", &cfg->tenancy.column)) != 0)
		return rc;
	if ((v = dc_yaml__get(t, "app_role")) != NULL &&
	    (rc = dc_config__get_pg_name(c, v, "tenancy.app_role", &cfg->tenancy.app_role)) != 0)
		return rc;
	return 0;
}

static int load_shard(ctx *c, dc_config *cfg, const dc_yaml_node *m, size_t i)
{
	dc_shard_config *sh = &cfg->shards[i];
	const dc_yaml_node *v, *name = NULL;
	char path[64], kp[96], buf[80];
	size_t j;
	int rc;

	snprintf(path, sizeof(path), "shards[%zu]", i);
	if ((rc = dc_config__expect(c, m, path, DC_YAML_MAP)) != 0 ||
	    (rc = dc_config__check_keys(c, m, path, shard_keys, N(shard_keys))) != 0)
		return rc;
	sh->line = m->line;
	sh->col = m->col;
	if (!(name = dc_yaml__get(m, "name")))
		return fail(c, m, "%s: missing required key 'name'", path);
	snprintf(kp, sizeof(kp), "%s.name", path);
	if ((rc = dc_config__get_nonempty(c, name, kp, &sh->name)) != 0)
		return rc;
	for (j = 0; j < i; j++) {
		if (!strcmp(cfg->shards[j].name, sh->name))
			return fail(c, name,
			            "%s: duplicate shard name '%s' (first at shards[%zu], line %d)",
			            kp,
			            dc_config__shown(buf, sizeof(buf), sh->name, strlen(sh->name)),
			            j, cfg->shards[j].line);
	}
	if (!(v = dc_yaml__get(m, "primary")))
		return fail(c, m, "%s: missing required key 'primary'", path);
	snprintf(kp, sizeof(kp), "%s.primary", path);
	/* a DSN: get_nonempty never echoes the value */
	if ((rc = dc_config__get_nonempty(c, v, kp, &sh->primary)) != 0)
		return rc;
	if ((v = dc_config__present(dc_yaml__get(m, "replicas"))) != NULL) {
		snprintf(kp, sizeof(kp), "%s.replicas", path);
		if ((rc = dc_config__get_str_list(c, v, kp, MAX_REPLICAS, &sh->replicas,
		                                  &sh->nreplicas)) != 0)
			return rc;
	}
	if ((v = dc_yaml__get(m, "parallel")) != NULL) {
		snprintf(kp, sizeof(kp), "%s.parallel", path);
		if ((rc = dc_config__get_int(c, v, kp, 1, MAX_PARALLEL, &sh->parallel)) != 0)
			return rc;
	}
	return 0;
}

static int load_shards(ctx *c, dc_config *cfg, const dc_yaml_node *seq)
{
	size_t i;
	int rc;

	if ((rc = dc_config__expect(c, seq, "shards", DC_YAML_SEQ)) != 0)
		return rc;
	if (seq->nkids > MAX_SHARDS)
		return fail(c, seq, "shards: more than %d shards", MAX_SHARDS);
	if (seq->nkids == 0)
		return 0;
	cfg->shards = calloc(seq->nkids, sizeof(*cfg->shards));
	if (!cfg->shards)
		return dc_error_set(c->err, DC_ENOMEM, "out of memory");
	for (i = 0; i < seq->nkids; i++) {
		cfg->nshards++;
		if ((rc = load_shard(c, cfg, seq->kids[i], i)) != 0)
			return rc;
	}
	return 0;
}

static int load_gates(ctx *c, dc_config *cfg, const dc_yaml_node *g)
{
	const dc_yaml_node *v, *lag, *iso;
	int rc;

	if ((rc = dc_config__expect(c, g, "gates", DC_YAML_MAP)) != 0 ||
	    (rc = dc_config__check_keys(c, g, "gates", gates_keys, N(gates_keys))) != 0)
		return rc;
	if ((v = dc_yaml__get(g, "lock_timeout")) != NULL &&
	    (rc = dc_config__get_duration(c, v, "gates.lock_timeout",
	                                  &cfg->gates.lock_timeout_ms)) != 0)
		return rc;
	if ((v = dc_yaml__get(g, "statement_timeout")) != NULL &&
	    (rc = dc_config__get_duration(c, v, "gates.statement_timeout",
	                                  &cfg->gates.statement_timeout_ms)) != 0)
		return rc;
	if ((v = dc_yaml__get(g, "require_down")) != NULL &&
	    (rc = dc_config__get_bool(c, v, "gates.require_down", &cfg->gates.require_down)) != 0)
		return rc;
	if ((v = dc_yaml__get(g, "integrity_check")) != NULL &&
	    (rc = dc_config__get_check_scope(c, v, "gates.integrity_check",
	                                     &cfg->gates.integrity_check)) != 0)
		return rc;
	if ((v = dc_yaml__get(g, "foreign_key_check")) != NULL &&
	    (rc = dc_config__get_check_scope(c, v, "gates.foreign_key_check",
	                                     &cfg->gates.foreign_key_check)) != 0)
		return rc;
	if ((v = dc_yaml__get(g, "allow_out_of_order")) != NULL &&
	    (rc = dc_config__get_bool(c, v, "gates.allow_out_of_order",
	                              &cfg->gates.allow_out_of_order)) != 0)
		return rc;
	if ((iso = dc_config__present(dc_yaml__get(g, "isolation"))) != NULL) {
		int allow = 0;

		if ((rc = dc_config__expect(c, iso, "gates.isolation", DC_YAML_MAP)) != 0 ||
		    (rc = dc_config__check_keys(c, iso, "gates.isolation", isolation_keys,
		                                N(isolation_keys))) != 0)
			return rc;
		if ((v = dc_yaml__get(iso, "dynamic_sql")) != NULL) {
			if ((rc = dc_config__get_enum(c, v, "gates.isolation.dynamic_sql",
			                              dynamic_sql_names, N(dynamic_sql_names),
			                              "refuse or allow", &allow)) != 0)
				return rc;
			cfg->gates.isolation_allow_dynamic_sql = allow == 1;
		}
	}
	if ((lag = dc_config__present(dc_yaml__get(g, "replication_lag"))) != NULL) {
		if ((rc = dc_config__expect(c, lag, "gates.replication_lag", DC_YAML_MAP)) != 0 ||
		    (rc = dc_config__check_keys(c, lag, "gates.replication_lag", lag_keys,
		                                N(lag_keys))) != 0)
			return rc;
		if ((v = dc_yaml__get(lag, "max")) != NULL &&
		    (rc = dc_config__get_duration(c, v, "gates.replication_lag.max",
		                                  &cfg->gates.lag_max_ms)) != 0)
			return rc;
		if ((v = dc_yaml__get(lag, "timeout")) != NULL &&
		    (rc = dc_config__get_duration(c, v, "gates.replication_lag.timeout",
		                                  &cfg->gates.lag_timeout_ms)) != 0)
			return rc;
	}
	return 0;
}

/* lint: { rules: { id: severity } }; rule ids are checked by the linter. */
static int load_lint(ctx *c, dc_config *cfg, const dc_yaml_node *l)
{
	const dc_yaml_node *rules;
	char kp[160], buf[80];
	size_t i;
	int rc;

	if ((rc = dc_config__expect(c, l, "lint", DC_YAML_MAP)) != 0 ||
	    (rc = dc_config__check_keys(c, l, "lint", lint_keys, N(lint_keys))) != 0)
		return rc;
	if (!(rules = dc_config__present(dc_yaml__get(l, "rules"))))
		return 0;
	/* keys are rule ids, checked below (duplicates) and by the linter (names) */
	if ((rc = dc_config__expect(c, rules, "lint.rules", DC_YAML_MAP)) != 0)
		return rc;
	if (rules->nkids / 2 > 1000)
		return fail(c, rules, "lint.rules: more than 1000 entries");
	cfg->lint.rules = calloc(rules->nkids / 2 + 1, sizeof(*cfg->lint.rules));
	if (!cfg->lint.rules)
		return dc_error_set(c->err, DC_ENOMEM, "out of memory");
	for (i = 0; i + 1 < rules->nkids; i += 2) {
		const dc_yaml_node *key = rules->kids[i], *val = rules->kids[i + 1];
		struct dc_lint_rule_setting *r = &cfg->lint.rules[cfg->lint.nrules];
		size_t j;
		int sev = 0;

		if (key->kind != DC_YAML_SCALAR || key->null || !key->len)
			return fail(c, key, "lint.rules: keys must be rule ids, got %s",
			            dc_yaml__kind_name(key));
		dc_config__shown(buf, sizeof(buf), key->text, key->len);
		snprintf(kp, sizeof(kp), "lint.rules.%.64s", buf);
		for (j = 0; j < i; j += 2)
			if (rules->kids[j]->len == key->len &&
			    !memcmp(rules->kids[j]->text, key->text, key->len))
				return fail(c, key,
				            "%s: duplicate key (first at line %d, column %d)", kp,
				            rules->kids[j]->line, rules->kids[j]->col);
		if ((rc = dc_config__get_enum(c, val, kp, severity_names, N(severity_names),
		                              "'off', 'info', 'warning' or 'error'", &sev)) != 0)
			return rc;
		r->rule = dc_strndup(key->text, key->len);
		if (!r->rule)
			return dc_error_set(c->err, DC_ENOMEM, "out of memory");
		r->severity = sev;
		r->line = key->line;
		r->col = key->col;
		cfg->lint.nrules++;
	}
	return 0;
}

static int load_rollout(ctx *c, dc_config *cfg, const dc_yaml_node *r)
{
	const dc_yaml_node *v;
	char wp[64];
	size_t i;
	int rc;

	if ((rc = dc_config__expect(c, r, "rollout", DC_YAML_MAP)) != 0 ||
	    (rc = dc_config__check_keys(c, r, "rollout", rollout_keys, N(rollout_keys))) != 0)
		return rc;
	if ((v = dc_yaml__get(r, "canary")) != NULL &&
	    (rc = dc_config__get_amount(c, v, "rollout.canary", 0, &cfg->rollout.canary)) != 0)
		return rc;
	if ((v = dc_config__present(dc_yaml__get(r, "waves"))) != NULL) {
		dc_amount *waves;

		if ((rc = dc_config__expect(c, v, "rollout.waves", DC_YAML_SEQ)) != 0)
			return rc;
		if (v->nkids == 0)
			return fail(c, v, "rollout.waves: must list at least one wave");
		if (v->nkids > MAX_WAVES)
			return fail(c, v, "rollout.waves: more than %d waves", MAX_WAVES);
		waves = dc_malloc_array(v->nkids, sizeof(*waves));
		if (!waves)
			return dc_error_set(c->err, DC_ENOMEM, "out of memory");
		free(cfg->rollout.waves);
		cfg->rollout.waves = waves;
		cfg->rollout.nwaves = v->nkids;
		for (i = 0; i < v->nkids; i++) {
			snprintf(wp, sizeof(wp), "rollout.waves[%zu]", i);
			if ((rc = dc_config__get_amount(c, v->kids[i], wp, 1, &waves[i])) != 0)
				return rc;
		}
	}
	if ((v = dc_yaml__get(r, "max_failures")) != NULL &&
	    (rc = dc_config__get_int(c, v, "rollout.max_failures", 0, MAX_FAILURES,
	                             &cfg->rollout.max_failures)) != 0)
		return rc;
	if ((v = dc_yaml__get(r, "parallel")) != NULL &&
	    (rc = dc_config__get_int(c, v, "rollout.parallel", 1, MAX_PARALLEL,
	                             &cfg->rollout.parallel)) != 0)
		return rc;
	if ((v = dc_yaml__get(r, "retries")) != NULL &&
	    (rc = dc_config__get_int(c, v, "rollout.retries", 0, 100, &cfg->rollout.retries)) != 0)
		return rc;
	if ((v = dc_yaml__get(r, "backup")) != NULL &&
	    (rc = dc_config__get_bool(c, v, "rollout.backup", &cfg->rollout.backup)) != 0)
		return rc;
	return 0;
}

/* Replaces `*slot` (a path relative to the config's folder) by the value of `n`, resolved. */
static int load_path(ctx *c,
                     const dc_config *cfg,
                     const dc_yaml_node *n,
                     const char *path,
                     char **slot)
{
	char *s = NULL, *resolved;
	int rc;

	if ((rc = dc_config__get_nonempty(c, n, path, &s)) != 0)
		return rc;
	resolved = dc_path_join(cfg->dir, s);
	free(s);
	if (!resolved)
		return dc_error_set(c->err, DC_ENOMEM, "out of memory");
	free(*slot);
	*slot = resolved;
	return 0;
}

int dc_config__set_defaults(dc_config *cfg)
{
	unsigned ncpu = dc_pool_cpus();

	cfg->engine = DC_ENGINE_SQLITE;
	cfg->tenancy.model = DC_TENANCY_DATABASE;
	cfg->gates.lock_timeout_ms = 2000;
	cfg->gates.statement_timeout_ms = 5 * 60 * 1000;
	cfg->gates.require_down = true;
	cfg->gates.integrity_check = DC_CHECK_CHANGED;
	cfg->gates.foreign_key_check = DC_CHECK_CHANGED;
	cfg->gates.lag_max_ms = 500;
	cfg->gates.lag_timeout_ms = 10 * 60 * 1000;
	cfg->rollout.canary.value = 1;
	cfg->rollout.canary.percent = false;
	cfg->rollout.waves = malloc(sizeof(*cfg->rollout.waves));
	if (!cfg->rollout.waves)
		return DC_ENOMEM;
	cfg->rollout.waves[0].value = 100;
	cfg->rollout.waves[0].percent = true;
	cfg->rollout.nwaves = 1;
	cfg->rollout.max_failures = 0;
	cfg->rollout.retries = 3;
	cfg->rollout.parallel = ncpu > MAX_PARALLEL ? MAX_PARALLEL : (int)ncpu;
	cfg->migrations = dc_path_join(cfg->dir, "migrations");
	cfg->audit.ledger = dc_path_join(cfg->dir, "audit/ledger.jsonl");
	cfg->audit.key = dc_path_join(cfg->dir, "audit/signing.key");
	if (!cfg->migrations || !cfg->audit.ledger || !cfg->audit.key)
		return DC_ENOMEM;
	return 0;
}

int dc_config__load_root(ctx *c, dc_config *cfg, const dc_yaml_node *root)
{
	const dc_yaml_node *v, *engine, *tenancy, *shards;
	int rc, kind = 0;

	if (!root || (root->kind == DC_YAML_SCALAR && root->null))
		return dc_config__fail_at(
		        c, 1, 1,
		        "the file is empty (expected a mapping with 'engine', 'tenancy', ...)");
	if (root->kind != DC_YAML_MAP)
		return fail(c, root, "expected a mapping at the top level, got %s",
		            dc_yaml__kind_name(root));
	if ((rc = dc_config__check_keys(c, root, "", root_keys, N(root_keys))) != 0)
		return rc;
	if ((engine = dc_yaml__get(root, "engine")) != NULL) {
		if ((rc = dc_config__get_enum(c, engine, "engine", engine_names, N(engine_names),
		                              "'sqlite' or 'postgres'", &kind)) != 0)
			return rc;
		cfg->engine = (dc_engine_kind)kind;
	}
	if ((v = dc_yaml__get(root, "migrations")) != NULL &&
	    (rc = load_path(c, cfg, v, "migrations", &cfg->migrations)) != 0)
		return rc;
	if ((tenancy = dc_config__present(dc_yaml__get(root, "tenancy"))) != NULL &&
	    (rc = load_tenancy(c, cfg, tenancy)) != 0)
		return rc;
	if ((shards = dc_config__present(dc_yaml__get(root, "shards"))) != NULL &&
	    (rc = load_shards(c, cfg, shards)) != 0)
		return rc;
	if ((v = dc_config__present(dc_yaml__get(root, "gates"))) != NULL &&
	    (rc = load_gates(c, cfg, v)) != 0)
		return rc;
	if ((v = dc_config__present(dc_yaml__get(root, "rollout"))) != NULL &&
	    (rc = load_rollout(c, cfg, v)) != 0)
		return rc;
	if ((v = dc_config__present(dc_yaml__get(root, "lint"))) != NULL &&
	    (rc = load_lint(c, cfg, v)) != 0)
		return rc;
	if ((v = dc_config__present(dc_yaml__get(root, "audit"))) != NULL) {
		if ((rc = dc_config__expect(c, v, "audit", DC_YAML_MAP)) != 0 ||
		    (rc = dc_config__check_keys(c, v, "audit", audit_keys, N(audit_keys))) != 0)
			return rc;
		if (dc_yaml__get(v, "ledger") &&
		    (rc = load_path(c, cfg, dc_yaml__get(v, "ledger"), "audit.ledger",
		                    &cfg->audit.ledger)) != 0)
			return rc;
		if (dc_yaml__get(v, "key") && (rc = load_path(c, cfg, dc_yaml__get(v, "key"),
		                                              "audit.key", &cfg->audit.key)) != 0)
			return rc;
	}

	return dc_config__check_across_keys(c, cfg, root);
}
