/*
 * report.c — progress lines, summaries and the JSON execution log.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <deployclaw/report.h>

#include "report_internal.h"
#include "util/util.h"

static const char *verdict_word(dc_gate_verdict v)
{
	switch (v) {
	case DC_GATE_PASS:
		return "passed";
	case DC_GATE_WARN:
		return "warning";
	case DC_GATE_WAIT:
		return "waiting";
	case DC_GATE_REFUSE:
		return "refused";
	}
	return "unknown";
}

json_t *dc_report__execution_log(const dc_rollout_report *rep, const char *task)
{
	char ts[32], done[32], agent[300];
	json_t *log = NULL, *steps, *gates, *o;
	size_t i;

	dc_time_rfc3339(ts, rep->started_ms);
	dc_time_rfc3339(done, rep->started_ms + rep->duration_ms);
	snprintf(agent, sizeof(agent), "deployclaw/%s", DC_VERSION);
	steps = json_array();
	gates = json_object();
	if (!steps || !gates)
		goto fail;
	for (i = 0; i < rep->nsteps; i++) {
		const dc_rollout_step *s = &rep->steps[i];

		o = json_pack("{s:s, s:s, s:s, s:s, s:I}", "step", s->step, "action", s->action,
		              "detail", s->detail, "status", s->status, "duration_ms",
		              (json_int_t)s->duration_ms);
		if (!o || json_array_append_new(steps, o))
			goto fail;
	}
	for (i = 0; i < rep->ngates; i++)
		json_object_set_new(gates, rep->gates[i].gate,
		                    json_pack("{s:s, s:s}", "status",
		                              verdict_word(rep->gates[i].verdict), "detail",
		                              rep->gates[i].detail));
	log = json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:{s:I, s:I, s:I, s:I, s:I}, s:s}", "task",
	                task, "timestamp", ts, "run_id", rep->run_id, "agent", agent,
	                "execution_log", steps, "safety_gates_status", gates, "tenants", "total",
	                (json_int_t)rep->ntenants, "succeeded", (json_int_t)rep->succeeded,
	                "failed", (json_int_t)rep->failed, "skipped", (json_int_t)rep->skipped,
	                "not_run", (json_int_t)rep->not_run, "estimated_completion", done);
	if (log && rep->nshards) {
		json_t *shards = json_array();

		for (i = 0; shards && i < rep->nshards; i++) {
			const dc_shard_outcome *so = &rep->shards[i];

			json_array_append_new(
			        shards,
			        json_pack("{s:s, s:s, s:I, s:s, s:I, s:s}", "shard", so->shard,
			                  "status", dc_tenant_status_name(so->status), "pending",
			                  (json_int_t)so->pending, "versions", so->versions, "done",
			                  (json_int_t)so->done, "error", so->error));
		}
		json_object_set_new(log, "shard_migrations", shards);
	}
	return log;
fail:
	json_decref(steps);
	json_decref(gates);
	return NULL;
}

static void eta(char *out, size_t size, int64_t ms)
{
	if (ms < 0)
		snprintf(out, size, "--");
	else if (ms < 60000)
		snprintf(out, size, "%llds", (long long)((ms + 999) / 1000));
	else
		snprintf(out, size, "%lldm%02llds", (long long)(ms / 60000),
		         (long long)(ms % 60000 / 1000));
}

void dc_report_progress_line(const dc_rollout_progress *p, int64_t elapsed_ms, dc_strbuf *out)
{
	const dc_wave_report *w = p->wave;
	size_t wdone = w->succeeded + w->failed + w->skipped;
	double rate = elapsed_ms > 0 ? (double)p->done_total * 1000.0 / (double)elapsed_ms : 0.0;
	char left[32];

	eta(left, sizeof(left),
	    rate > 0 ? (int64_t)((double)(p->total - p->done_total) * 1000.0 / rate) : -1);
	dc_strbuf_addf(out, "%-16s %6zu/%-6zu  failed %-4zu  %7.1f tenants/s  ETA %s", w->name,
	               wdone, w->total, w->failed, rate, left);
}

void dc_report_summary(const dc_rollout_report *rep, size_t max_failures_listed, dc_strbuf *out)
{
	size_t i, listed = 0;
	const char *verb = rep->direction == DC_ROLLOUT_APPLY ? "migrated" : "rolled back";

	dc_strbuf_addf(out, "\n  %-18s %8s %10s %8s %8s %8s %10s\n", "wave", "tenants", "succeeded",
	               "failed", "skipped", "not run", "time");
	for (i = 0; i < rep->nwaves; i++) {
		const dc_wave_report *w = &rep->waves[i];

		dc_strbuf_addf(out, "  %-18s %8zu %10zu %8zu %8zu %8zu %8.1fs%s\n", w->name,
		               w->total, w->succeeded, w->failed, w->skipped, w->not_run,
		               (double)w->duration_ms / 1000.0,
		               w->over_budget ? "  over budget" : "");
	}
	dc_strbuf_addf(out, "  %-18s %8zu %10zu %8zu %8zu %8zu %8.1fs\n", "total", rep->ntenants,
	               rep->succeeded, rep->failed, rep->skipped, rep->not_run,
	               (double)rep->duration_ms / 1000.0);
	if (rep->failed) {
		dc_strbuf_addf(out, "\nfailed tenants (each rolled back, nothing half-applied):\n");
		for (i = 0; i < rep->ntenants && listed < max_failures_listed; i++) {
			const dc_tenant_outcome *o = &rep->outcomes[i];
			char where[700] = "";

			if (o->status != DC_TENANT_FAILED)
				continue;
			if (o->error->file[0])
				snprintf(where, sizeof(where), "%s:%d:%d: ", o->error->file,
				         o->error->line, o->error->col);
			dc_strbuf_addf(out, "  %-20s %s%s%s%s%s\n", o->tenant->id, where,
			               o->error->message,
			               o->error->sqlstate[0] ? " (SQLSTATE " : "",
			               o->error->sqlstate, o->error->sqlstate[0] ? ")" : "");
			listed++;
		}
		if (rep->failed > listed)
			dc_strbuf_addf(out,
			               "  ... and %zu more (deployclaw audit show --run %s "
			               "--event tenant)\n",
			               rep->failed - listed, rep->run_id);
	}
	dc_strbuf_addf(out, "\n%zu tenant%s %s", rep->succeeded, rep->succeeded == 1 ? "" : "s",
	               verb);
	if (rep->target[0] && rep->direction == DC_ROLLOUT_APPLY)
		dc_strbuf_addf(out, " to '%s'", rep->target);
	dc_strbuf_addf(out, ", %zu failed, %zu already up to date", rep->failed, rep->skipped);
	if (rep->not_run)
		dc_strbuf_addf(out, ", %zu not run (%s)", rep->not_run,
		               rep->interrupted ? "interrupted"
		                                : "the failure budget stopped the rollout");
	dc_strbuf_addf(out, ". run %s\n", rep->run_id);
}

char *dc_report_execution_log(const dc_rollout_report *rep, const char *task)
{
	json_t *log = dc_report__execution_log(rep, task);
	char *text = log ? json_dumps(log, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;

	json_decref(log);
	return text;
}
