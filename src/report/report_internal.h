/*
 * report/report_internal.h — the execution log as a jansson value, for the
 * library's own callers; the public header gives it as text.
 */
#ifndef DC_REPORT_INTERNAL_H
#define DC_REPORT_INTERNAL_H

#include <jansson.h>

#include <deployclaw/report.h>

/** dc_report_execution_log's document: a new reference, NULL on OOM. */
json_t *dc_report__execution_log(const dc_rollout_report *rep, const char *task);

#endif
