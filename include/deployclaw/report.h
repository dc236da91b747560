/**
 * deployclaw/report.h — what a rollout looks like to people and programs:
 * the live progress line, the final summary, and the JSON execution log.
 */
#ifndef DEPLOYCLAW_REPORT_H
#define DEPLOYCLAW_REPORT_H

#include <deployclaw/rollout.h>
#include <deployclaw/strbuf.h>

/**
 * The execution log users of the system know:
 * {task, timestamp, run_id, agent, execution_log: [{step, action, detail,
 * status, duration_ms}], safety_gates_status, tenants: {total, succeeded,
 * failed, skipped}, estimated_completion}. `task` describes the run
 * ("apply 0003 to 1000 tenants"). As JSON text indented by two spaces, keys
 * in that order, which the caller frees with free(); NULL on OOM.
 */
DC_API char *dc_report_execution_log(const dc_rollout_report *rep, const char *task);

/**
 * One progress line for a terminal (no newline): the wave, done/total,
 * failed, tenants/s and the ETA. `elapsed_ms` is the time since the rollout
 * started dispatching.
 */
DC_API void dc_report_progress_line(const dc_rollout_progress *p,
                                    int64_t elapsed_ms,
                                    dc_strbuf *out);

/**
 * The final summary: one row per wave, the failed tenants with the
 * statement's file:line:col and the database's message (at most
 * `max_failures_listed`), and a closing sentence.
 */
DC_API void dc_report_summary(const dc_rollout_report *rep,
                              size_t max_failures_listed,
                              dc_strbuf *out);

#endif
