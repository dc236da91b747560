#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <deployclaw/gate.h>

#include "gate/gate_internal.h"

/* A scripted gate: returns the verdicts in `script` one per call. */
typedef struct script {
	const dc_gate_verdict *verdicts;
	size_t n;
	size_t calls;
	int fail; /* return this error instead of measuring */
} script;

static int scripted_check(const dc_gate *gate,
                          const dc_gate_ctx *ctx,
                          dc_gate_result *res,
                          dc_error *err)
{
	script *s = gate->data;
	size_t i = s->calls < s->n ? s->calls : s->n - 1;

	(void)ctx;
	s->calls++;
	if (s->fail)
		return dc_error_set(err, s->fail, "replica 'eu-1b' unreachable");
	res->verdict = s->verdicts[i];
	res->retry_after_ms = 1;
	snprintf(res->detail, sizeof(res->detail), "call %zu", s->calls);
	return 0;
}

typedef struct log {
	char lines[16][600];
	size_t n;
} log;

static int record(const dc_gate_result *res, void *ctx)
{
	log *l = ctx;

	if (l->n < 16)
		snprintf(l->lines[l->n++], sizeof(l->lines[0]), "%s %s %s", res->gate,
		         dc_gate_verdict_name(res->verdict), res->detail);
	return 0;
}

static dc_gate make(const char *name, unsigned stages, script *s, int64_t budget)
{
	dc_gate g = { name, "test gate", stages, scripted_check, budget, s };

	return g;
}

static void pass_and_warn_proceed(void **state)
{
	static const dc_gate_verdict pass[] = { DC_GATE_PASS }, warn[] = { DC_GATE_WARN };
	script a = { pass, 1, 0, 0 }, b = { warn, 1, 0, 0 }, c = { pass, 1, 0, 0 };
	dc_gate_registry *reg = NULL;
	dc_gate_verdict worst = DC_GATE_REFUSE;
	dc_gate_ctx ctx = { 0 };
	dc_error err = { 0 };
	dc_gate g;
	log l = { 0 };

	(void)state;
	assert_int_equal(dc_gate_registry_new(&reg), 0);
	g = make("sums", DC_GATE_PREFLIGHT, &a, 0);
	assert_int_equal(dc_gate_registry_add(reg, &g, &err), 0);
	g = make("down", DC_GATE_PREFLIGHT | DC_GATE_BEFORE_WAVE, &b, 0);
	assert_int_equal(dc_gate_registry_add(reg, &g, &err), 0);
	g = make("lag", DC_GATE_BEFORE_WAVE, &c, 0);
	assert_int_equal(dc_gate_registry_add(reg, &g, &err), 0);
	g = make("sums", DC_GATE_PREFLIGHT, &a, 0);
	assert_int_equal(dc_gate_registry_add(reg, &g, &err), DC_EEXISTS);

	assert_int_equal(
	        dc_gate_registry_run(reg, DC_GATE_PREFLIGHT, &ctx, record, &l, &worst, &err), 0);
	assert_int_equal(worst, DC_GATE_WARN);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.lines[0], "sums pass call 1");
	assert_string_equal(l.lines[1], "down warn call 1");
	assert_int_equal(c.calls, 0); /* not a preflight gate */
	dc_gate_registry_free(reg);
}

static void refuse_stops_the_stage(void **state)
{
	static const dc_gate_verdict refuse[] = { DC_GATE_REFUSE }, pass[] = { DC_GATE_PASS };
	script a = { refuse, 1, 0, 0 }, b = { pass, 1, 0, 0 };
	dc_gate_registry *reg = NULL;
	dc_gate_ctx ctx = { 0 };
	dc_error err = { 0 };
	dc_gate g;
	log l = { 0 };

	(void)state;
	assert_int_equal(dc_gate_registry_new(&reg), 0);
	g = make("isolation", DC_GATE_PREFLIGHT, &a, 0);
	dc_gate_registry_add(reg, &g, &err);
	g = make("later", DC_GATE_PREFLIGHT, &b, 0);
	dc_gate_registry_add(reg, &g, &err);
	assert_int_equal(dc_gate_registry_run(reg, DC_GATE_PREFLIGHT, &ctx, record, &l, NULL, &err),
	                 DC_EGATE);
	assert_string_equal(err.message, "gate 'isolation' refused: call 1");
	assert_int_equal(b.calls, 0);
	assert_int_equal(l.n, 1);
	dc_gate_registry_free(reg);
}

static void unmeasurable_fails_closed(void **state)
{
	static const dc_gate_verdict pass[] = { DC_GATE_PASS };
	script a = { pass, 1, 0, DC_EDB };
	dc_gate_registry *reg = NULL;
	dc_gate_ctx ctx = { 0 };
	dc_error err = { 0 };
	dc_gate g;
	log l = { 0 };

	(void)state;
	assert_int_equal(dc_gate_registry_new(&reg), 0);
	g = make("replication_lag", DC_GATE_BEFORE_WAVE, &a, 0);
	dc_gate_registry_add(reg, &g, &err);
	assert_int_equal(
	        dc_gate_registry_run(reg, DC_GATE_BEFORE_WAVE, &ctx, record, &l, NULL, &err),
	        DC_EGATE);
	assert_string_equal(
	        l.lines[0],
	        "replication_lag refuse could not measure: replica 'eu-1b' unreachable");
	dc_gate_registry_free(reg);
}

static void wait_retries_within_budget(void **state)
{
	static const dc_gate_verdict seq[] = { DC_GATE_WAIT, DC_GATE_WAIT, DC_GATE_PASS };
	static const dc_gate_verdict forever[] = { DC_GATE_WAIT };
	script a = { seq, 3, 0, 0 }, b = { forever, 1, 0, 0 };
	dc_gate_registry *reg = NULL;
	dc_gate_ctx ctx = { 0 };
	dc_error err = { 0 };
	dc_gate g;
	log l = { 0 };

	(void)state;
	assert_int_equal(dc_gate_registry_new(&reg), 0);
	g = make("lag", DC_GATE_BEFORE_WAVE, &a, 100);
	dc_gate_registry_add(reg, &g, &err);
	assert_int_equal(
	        dc_gate_registry_run(reg, DC_GATE_BEFORE_WAVE, &ctx, record, &l, NULL, &err), 0);
	assert_int_equal(a.calls, 3);
	assert_string_equal(l.lines[0], "lag pass call 3");

	/* a wait that outlives the budget becomes a refusal */
	g = make("stuck", DC_GATE_AFTER_WAVE, &b, 5);
	dc_gate_registry_add(reg, &g, &err);
	assert_int_equal(
	        dc_gate_registry_run(reg, DC_GATE_AFTER_WAVE, &ctx, record, &l, NULL, &err),
	        DC_EGATE);
	assert_int_equal(b.calls, 6);
	assert_non_null(strstr(err.message, "gate 'stuck' refused: still waiting after 5ms"));
	dc_gate_registry_free(reg);
}

static void disabled_gates_do_not_run(void **state)
{
	static const dc_gate_verdict refuse[] = { DC_GATE_REFUSE };
	script a = { refuse, 1, 0, 0 };
	dc_gate_registry *reg = NULL;
	dc_gate_ctx ctx = { 0 };
	dc_error err = { 0 };
	dc_gate g;

	(void)state;
	assert_int_equal(dc_gate_registry_new(&reg), 0);
	g = make("require_down", DC_GATE_PREFLIGHT, &a, 0);
	dc_gate_registry_add(reg, &g, &err);
	assert_int_equal(dc_gate_registry_enable(reg, "require_down", false, &err), 0);
	assert_int_equal(dc_gate_registry_run(reg, DC_GATE_PREFLIGHT, &ctx, NULL, NULL, NULL, &err),
	                 0);
	assert_int_equal(a.calls, 0);
	assert_int_equal(dc_gate_registry_enable(reg, "require_dwn", true, &err), DC_ENOTFOUND);
	assert_string_equal(err.message,
	                    "no gate named 'require_dwn' (did you mean 'require_down'?)");
	assert_non_null(dc_gate_registry_find(reg, "require_down"));
	assert_null(dc_gate_registry_find(reg, "nope"));
	dc_gate_registry_free(reg);
}

/* One row of the gate table in docs/rollout.md: "| `id` | stages | `key` or — | exit | ... |". */
typedef struct doc_gate {
	char name[64];
	char stages[128];
	char key[64];
	char exits[8];
} doc_gate;

/* Copies cell `n` (0-based) of a markdown table row, trimmed, without backquotes. */
static bool cell(const char *line, int n, char *out, size_t size)
{
	const char *p = strchr(line, '|'), *end;
	size_t len = 0;

	for (; p && n > 0; n--)
		p = strchr(p + 1, '|');
	if (!p || !(end = strchr(p + 1, '|')))
		return false;
	for (p++; p < end && len + 1 < size; p++)
		if (*p != '`')
			out[len++] = *p;
	while (len > 0 && out[len - 1] == ' ')
		len--;
	out[len] = '\0';
	memmove(out, out + strspn(out, " "), strlen(out + strspn(out, " ")) + 1);
	return true;
}

/* The rows between the gate table's markers in docs/rollout.md (the one place gates are listed). */
static size_t read_doc_gates(doc_gate *out, size_t max)
{
	const char *root = getenv("DC_SOURCE_ROOT");
	char path[1024], line[2048];
	bool in = false;
	size_t n = 0;
	FILE *f;

	assert_non_null(root);
	snprintf(path, sizeof(path), "%s/docs/rollout.md", root);
	f = fopen(path, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		if (strstr(line, "<!-- gate table: begin")) {
			in = true;
			continue;
		}
		if (strstr(line, "<!-- gate table: end"))
			break;
		if (!in || line[0] != '|' || strncmp(line, "| gate ", 7) == 0 ||
		    strncmp(line, "| ---", 5) == 0)
			continue;
		assert_true(n < max);
		assert_true(cell(line, 0, out[n].name, sizeof(out[n].name)));
		assert_true(cell(line, 1, out[n].stages, sizeof(out[n].stages)));
		assert_true(cell(line, 2, out[n].key, sizeof(out[n].key)));
		assert_true(cell(line, 3, out[n].exits, sizeof(out[n].exits)));
		n++;
	}
	fclose(f);
	assert_true(in);
	return n;
}

/* "preflight, after_tenant" from a stage bit set, in bit order. */
static void stage_names(unsigned stages, char *out, size_t size)
{
	unsigned bit;
	size_t len = 0;

	out[0] = '\0';
	for (bit = 1; bit <= DC_GATE_AFTER_WAVE; bit <<= 1)
		if (stages & bit)
			len += (size_t)snprintf(out + len, size - len, "%s%s", len ? ", " : "",
			                        dc_gate_stage_name((dc_gate_stage)bit));
}

/* The exit code of a refusal (docs/design.md: 1 a tenant failed, 3 a gate refused, 4
 * integrity). */
static const char *exit_code(int refusal)
{
	return refusal == DC_EINTEGRITY ? "4" : refusal == DC_ETENANT ? "1" : "3";
}

/* Like redis's command table doc check: the docs list exactly the table's gates, each with
 * its stages, config key and the exit code of a refusal. */
static void docs_list_every_gate_of_the_table(void **state)
{
	doc_gate doc[64];
	size_t ndoc = read_doc_gates(doc, 64), i, k;
	char stages[128];

	(void)state;
	assert_true(dc_gate__nbuiltin > 0);
	for (i = 0; i < dc_gate__nbuiltin; i++) {
		const dc_gate__def *d = &dc_gate__builtin[i];

		for (k = 0; k < ndoc && strcmp(doc[k].name, d->name) != 0; k++)
			;
		if (k == ndoc)
			fail_msg("gate '%s' is in src/gate/builtin.c but not in docs/rollout.md",
			         d->name);
		stage_names(d->stages, stages, sizeof(stages));
		if (strcmp(doc[k].stages, stages) != 0)
			fail_msg("gate '%s': docs/rollout.md says stage '%s', the table '%s'",
			         d->name, doc[k].stages, stages);
		if (strcmp(doc[k].key, d->config_key ? d->config_key : "—") != 0)
			fail_msg("gate '%s': docs/rollout.md says config key '%s', the table '%s'",
			         d->name, doc[k].key, d->config_key ? d->config_key : "—");
		if (strcmp(doc[k].exits, exit_code(d->refusal)) != 0)
			fail_msg("gate '%s': docs/rollout.md says a refusal exits %s, the table %s",
			         d->name, doc[k].exits, exit_code(d->refusal));
	}
	for (k = 0; k < ndoc; k++) {
		for (i = 0; i < dc_gate__nbuiltin && strcmp(doc[k].name, dc_gate__builtin[i].name);
		     i++)
			;
		if (i == dc_gate__nbuiltin)
			fail_msg("gate '%s' is in docs/rollout.md but not in src/gate/builtin.c",
			         doc[k].name);
	}
	assert_int_equal(ndoc, dc_gate__nbuiltin);
}

/* The table is applied according to the config: a gate whose key turns it off is
 * registered, disabled, and does not run. */
static void builtins_follow_the_config(void **state)
{
	dc_config cfg;
	dc_gate_registry *reg = NULL;
	dc_gate_ctx ctx = { 0 };
	dc_error err = { 0 };
	log l = { 0 };
	size_t i;

	(void)state;
	memset(&cfg, 0, sizeof(cfg));
	cfg.gates.integrity_check = DC_CHECK_OFF;
	cfg.gates.foreign_key_check = DC_CHECK_FULL;
	ctx.cfg = &cfg;
	assert_int_equal(dc_gate_registry_new(&reg), 0);
	assert_int_equal(dc_gate__register_builtins(reg, &cfg, &err), 0);
	for (i = 0; i < dc_gate__nbuiltin; i++)
		assert_non_null(dc_gate_registry_find(reg, dc_gate__builtin[i].name));
	/* no connection: the engine checks are not applicable and pass */
	assert_int_equal(
	        dc_gate_registry_run(reg, DC_GATE_AFTER_TENANT, &ctx, record, &l, NULL, &err), 0);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.lines[0], "isolation_runtime pass not applicable to this engine");
	assert_string_equal(l.lines[1], "foreign_key_check pass not applicable to this engine");
	dc_gate_registry_free(reg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(pass_and_warn_proceed),
		cmocka_unit_test(refuse_stops_the_stage),
		cmocka_unit_test(unmeasurable_fails_closed),
		cmocka_unit_test(wait_retries_within_budget),
		cmocka_unit_test(disabled_gates_do_not_run),
		cmocka_unit_test(docs_list_every_gate_of_the_table),
		cmocka_unit_test(builtins_follow_the_config),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
