/*
 * rules.c -- the rule table (built from rules.def, where each rule is
 * declared once), lookups by id or name, and lint's configuration: the
 * severity of each rule, from the defaults and deployclaw.yaml.
 */
#include <string.h>
#include <strings.h>

#include <deployclaw/analysis.h>
#include <deployclaw/config.h>

#include "../lint_internal.h"
#include "util/util.h"

static const dc_lint_rule rules[R_COUNT] = {
#define RULE(idx, id, name, sev, what, why, help, equivalents, check) \
	[idx] = { id, name, sev, what, why, help, equivalents },
#include "rules.def"
#undef RULE
};

/* Each rule's check: the last field of its entry. */
/* clang-format off */
#define STMT(fn) { fn, NULL, NULL }
#define CMD(fn) { NULL, fn, NULL }
#define STMT_CMD(s, c) { s, c, NULL }
#define REPORTED_BY(...) { NULL, NULL, #__VA_ARGS__ }
/* clang-format on */
static const dc_lint_check checks[R_COUNT] = {
#define RULE(idx, id, name, sev, what, why, help, equivalents, check) [idx] = check,
#include "rules.def"
#undef RULE
};
#undef STMT
#undef CMD
#undef STMT_CMD
#undef REPORTED_BY

const dc_lint_check *dc_lint__check(int idx)
{
	return &checks[idx];
}

/*
 * The statement checks of the enabled rules, in table order. Findings are
 * sorted by position and then rule id before output (dc_finding_list_sort),
 * and no rule is reported from two points of one statement, so their order
 * decides only the order of one statement's findings in dc_lint()'s
 * unsorted list.
 */
void dc_lint__stmt_checks(lint *l, const PgQuery__Node *n)
{
	int i;

	for (i = 0; i < R_COUNT; i++)
		if (checks[i].stmt && l->cfg->severity[i] != DC_SEV_OFF)
			checks[i].stmt(l, n);
}

/* The sub-command checks of the enabled rules, in table order. */
void dc_lint__cmd_checks(lint *l, const dc_lint_cmd *cmd)
{
	int i;

	for (i = 0; i < R_COUNT; i++)
		if (checks[i].cmd && l->cfg->severity[i] != DC_SEV_OFF)
			checks[i].cmd(l, cmd);
}

const dc_lint_rule *dc_lint_rules(size_t *n)
{
	if (n)
		*n = R_COUNT;
	return rules;
}

const dc_lint_rule *dc_lint__rule(int idx)
{
	return &rules[idx];
}

int dc_lint__rule_index(const char *id_or_name)
{
	int i;

	for (i = 0; i < R_COUNT; i++)
		if (strcasecmp(rules[i].id, id_or_name) == 0 ||
		    strcasecmp(rules[i].name, id_or_name) == 0)
			return i;
	return -1;
}

const dc_lint_rule *dc_lint_rule_find(const char *id_or_name)
{
	int i = id_or_name ? dc_lint__rule_index(id_or_name) : -1;

	return i < 0 ? NULL : &rules[i];
}

static const char *const sev_names[] = { "off", "info", "warning", "error" };

const char *dc_severity_name(dc_severity sev)
{
	return (unsigned)sev < 4 ? sev_names[sev] : "unknown";
}

int dc_severity_parse(const char *s, dc_severity *out)
{
	int i;

	for (i = 0; s && i < 4; i++)
		if (strcasecmp(s, sev_names[i]) == 0) {
			*out = (dc_severity)i;
			return 0;
		}
	return DC_EINVAL;
}

void dc_lint_config_init(dc_lint_config *cfg)
{
	int i;

	memset(cfg, 0, sizeof(*cfg));
	for (i = 0; i < R_COUNT; i++)
		cfg->severity[i] = rules[i].severity;
	cfg->lock_timeout_ms = 2000;
	cfg->statement_timeout_ms = 300000;
	cfg->require_down = false;
}

int dc_lint_config_set(dc_lint_config *cfg, const char *rule, dc_severity sev, dc_error *err)
{
	int i = rule ? dc_lint__rule_index(rule) : -1;

	if (i < 0)
		return dc_error_set(err, DC_ENOTFOUND, "unknown lint rule '%s'", rule ? rule : "");
	cfg->severity[i] = sev;
	return 0;
}

int dc_lint_config_from(dc_lint_config *lc, const dc_config *cfg, dc_error *err)
{
	const char *names[2 * R_COUNT];
	size_t i;
	int k;

	dc_lint_config_init(lc);
	if (!cfg)
		return 0;
	lc->schema_tenancy =
	        cfg->engine == DC_ENGINE_POSTGRES && cfg->tenancy.model == DC_TENANCY_SCHEMA;
	lc->lock_timeout_ms = cfg->gates.lock_timeout_ms;
	lc->statement_timeout_ms = cfg->gates.statement_timeout_ms;
	lc->require_down = cfg->gates.require_down;
	lc->shared_schemas = (const char *const *)cfg->tenancy.shared_schemas;
	lc->nshared_schemas = cfg->tenancy.nshared_schemas;
	lc->allow_dynamic_sql = cfg->gates.isolation_allow_dynamic_sql;
	for (k = 0; k < R_COUNT; k++) {
		names[2 * k] = rules[k].id;
		names[2 * k + 1] = rules[k].name;
	}
	for (i = 0; i < cfg->lint.nrules; i++) {
		const struct dc_lint_rule_setting *r = &cfg->lint.rules[i];

		k = dc_lint__rule_index(r->rule);
		if (k < 0) {
			const char *hint = dc_suggest(r->rule, names, 2 * R_COUNT);

			if (hint)
				return dc_error_set_at(
				        err, DC_ECONFIG, cfg->path, r->line, r->col,
				        "lint.rules.%s: unknown rule (did you mean '%s'?)", r->rule,
				        hint);
			return dc_error_set_at(
			        err, DC_ECONFIG, cfg->path, r->line, r->col,
			        "lint.rules.%s: unknown rule (see docs/lint-rules.md)", r->rule);
		}
		lc->severity[k] = (dc_severity)r->severity;
	}
	return 0;
}
