/*
 * demo/demo.h — the fleet 'deployclaw demo' rolls out (internal).
 */
#ifndef DC_DEMO_H
#define DC_DEMO_H

#include <stddef.h>

#include <deployclaw/common.h>

/**
 * Creates the demo fleet in `dir`: `n` SQLite tenants under tenants/, three
 * migrations under migrations/, a deployclaw.yaml whose rollout runs
 * `parallel` workers and whose failure budget is the number of tenants made
 * inconsistent on purpose (returned in `*inconsistent`). A folder left by an
 * earlier demo (it carries a marker file) is replaced; any other existing
 * folder is DC_EEXISTS.
 */
int dc_demo__create(const char *dir, size_t n, int parallel, size_t *inconsistent, dc_error *err);

#endif
