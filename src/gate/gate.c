#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <deployclaw/gate.h>

#include "util/util.h"

/* A fleet declares a handful of gates; a fixed bound keeps the registry simple and bounded. */
#define MAX_GATES 64

struct dc_gate_registry {
	dc_gate gates[MAX_GATES];
	bool enabled[MAX_GATES];
	size_t count;
};

const char *dc_gate_stage_name(dc_gate_stage stage)
{
	switch (stage) {
	case DC_GATE_PREFLIGHT:
		return "preflight";
	case DC_GATE_BEFORE_WAVE:
		return "before_wave";
	case DC_GATE_BEFORE_TENANT:
		return "before_tenant";
	case DC_GATE_AFTER_TENANT:
		return "after_tenant";
	case DC_GATE_AFTER_WAVE:
		return "after_wave";
	}
	return "unknown";
}

const char *dc_gate_verdict_name(dc_gate_verdict verdict)
{
	switch (verdict) {
	case DC_GATE_PASS:
		return "pass";
	case DC_GATE_WARN:
		return "warn";
	case DC_GATE_WAIT:
		return "wait";
	case DC_GATE_REFUSE:
		return "refuse";
	}
	return "unknown";
}

int dc_gate_registry_new(dc_gate_registry **out)
{
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : DC_ENOMEM;
}

void dc_gate_registry_free(dc_gate_registry *reg)
{
	free(reg);
}

static ssize_t find_index(const dc_gate_registry *reg, const char *name)
{
	size_t i;

	for (i = 0; i < reg->count; i++)
		if (strcmp(reg->gates[i].name, name) == 0)
			return (ssize_t)i;
	return -1;
}

int dc_gate_registry_add(dc_gate_registry *reg, const dc_gate *gate, dc_error *err)
{
	if (!gate->name || !gate->check || !gate->stages)
		return dc_error_set(err, DC_EINVAL, "a gate needs a name, a check and a stage");
	if (find_index(reg, gate->name) >= 0)
		return dc_error_set(err, DC_EEXISTS, "gate '%s' is already registered", gate->name);
	if (reg->count == MAX_GATES)
		return dc_error_set(err, DC_ELIMIT, "more than %d gates", MAX_GATES);
	reg->gates[reg->count] = *gate;
	reg->enabled[reg->count] = true;
	reg->count++;
	return 0;
}

const dc_gate *dc_gate_registry_find(const dc_gate_registry *reg, const char *name)
{
	ssize_t i = find_index(reg, name);

	return i < 0 ? NULL : &reg->gates[i];
}

int dc_gate_registry_enable(dc_gate_registry *reg, const char *name, bool enabled, dc_error *err)
{
	const char *names[MAX_GATES];
	const char *hint;
	ssize_t i = find_index(reg, name);
	size_t k;

	if (i >= 0) {
		reg->enabled[i] = enabled;
		return 0;
	}
	for (k = 0; k < reg->count; k++)
		names[k] = reg->gates[k].name;
	hint = dc_suggest(name, names, reg->count);
	if (hint)
		return dc_error_set(err, DC_ENOTFOUND, "no gate named '%s' (did you mean '%s'?)",
		                    name, hint);
	return dc_error_set(err, DC_ENOTFOUND, "no gate named '%s'", name);
}

/* One gate to its final verdict: WAITs are retried within the gate's budget. */
static void run_one(const dc_gate *gate,
                    dc_gate_stage stage,
                    const dc_gate_ctx *ctx,
                    dc_gate_result *res)
{
	int64_t start = dc_time_mono_ms(), waited = 0;
	int attempts = 0;

	for (;;) {
		dc_error gerr = { 0 };
		int rc;

		memset(res, 0, sizeof(*res));
		res->gate = gate->name;
		res->stage = stage;
		attempts++;
		rc = gate->check(gate, ctx, res, &gerr);
		if (rc != 0) {
			/* fail closed: what cannot be measured does not pass */
			res->verdict = DC_GATE_REFUSE;
			snprintf(res->detail, sizeof(res->detail), "could not measure: %.450s",
			         gerr.message[0] ? gerr.message : dc_strerror(rc));
			break;
		}
		if (res->verdict != DC_GATE_WAIT)
			break;
		if (res->retry_after_ms <= 0)
			res->retry_after_ms = 1000;
		if (waited + res->retry_after_ms > gate->wait_budget_ms) {
			char budget[32], detail[sizeof(res->detail)];

			dc_duration_format(budget, sizeof(budget), gate->wait_budget_ms);
			memcpy(detail, res->detail, sizeof(detail));
			res->verdict = DC_GATE_REFUSE;
			snprintf(res->detail, sizeof(res->detail), "still waiting after %s: %.400s",
			         budget, detail);
			break;
		}
		if (ctx->stop && *ctx->stop)
			break;
		dc_sleep_ms(res->retry_after_ms, ctx->stop);
		waited += res->retry_after_ms;
	}
	res->attempts = attempts;
	res->duration_ms = dc_time_mono_ms() - start;
}

int dc_gate_registry_run(dc_gate_registry *reg,
                         dc_gate_stage stage,
                         const dc_gate_ctx *ctx,
                         dc_gate_report_fn report,
                         void *report_ctx,
                         dc_gate_verdict *worst,
                         dc_error *err)
{
	dc_gate_verdict w = DC_GATE_PASS;
	size_t i;
	int rc = 0;

	for (i = 0; i < reg->count; i++) {
		const dc_gate *gate = &reg->gates[i];
		dc_gate_result res;

		if (!reg->enabled[i] || !(gate->stages & (unsigned)stage))
			continue;
		run_one(gate, stage, ctx, &res);
		if (res.verdict == DC_GATE_WAIT) {
			/* only reachable when a stop interrupted the wait */
			rc = dc_error_set(err, DC_EINTERRUPTED,
			                  "interrupted while gate '%s' was waiting: %s", gate->name,
			                  res.detail);
			goto out;
		}
		if (res.verdict > w)
			w = res.verdict;
		if (report && (rc = report(&res, report_ctx)) != 0) {
			dc_error_set(err, rc, "could not record the result of gate '%s'",
			             gate->name);
			goto out;
		}
		if (res.verdict == DC_GATE_REFUSE) {
			rc = dc_error_set(err, DC_EGATE, "gate '%s' refused: %s", gate->name,
			                  res.detail);
			goto out;
		}
	}
out:
	if (worst)
		*worst = w;
	return rc;
}
