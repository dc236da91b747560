#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <deployclaw/gate.h>

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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(pass_and_warn_proceed),
		cmocka_unit_test(refuse_stops_the_stage),
		cmocka_unit_test(unmeasurable_fails_closed),
		cmocka_unit_test(wait_retries_within_budget),
		cmocka_unit_test(disabled_gates_do_not_run),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
