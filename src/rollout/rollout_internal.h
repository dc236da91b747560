/*
 * Internal to src/rollout: the plan of one tenant, shared by planning,
 * execution, status and the preflight gates (src/gate/gate_internal.h).
 */
#ifndef DC_ROLLOUT_INTERNAL_H
#define DC_ROLLOUT_INTERNAL_H

#include <deployclaw/engine.h>
#include <deployclaw/gate.h>
#include <deployclaw/migration.h>
#include <deployclaw/rollout.h>

/* What one tenant needs, computed from its history against the set. */
typedef struct dc_rollout__todo {
	const dc_migration **migs; /* apply: ascending; rollback: descending */
	size_t n;
	size_t resume_phase; /* apply: phases of migs[0] already done (a partial row) */
	char from[64];       /* latest applied version before */
	char to[64];         /* latest applied version after */
	bool drift;          /* an applied checksum differs from its file */
	bool out_of_order;   /* a pending version is older than an applied one */
	bool partial;        /* history has a partial row */
	char problem[512];   /* drift / out of order / unknown version, for humans */
} dc_rollout__todo;

void dc_rollout__todo_release(dc_rollout__todo *todo);

/*
 * Computes what a tenant with history `rows` needs. `to` is the target
 * version (NULL: apply = the last of the set, rollback = undo the latest
 * applied one). DC_EINVAL when a rollback is asked of a version that is not
 * in the set (its down is unknown); `problem` says why.
 */
int dc_rollout__todo_compute(dc_rollout__todo *todo,
                             const dc_migration_set *set,
                             const dc_history_row *rows,
                             size_t nrows,
                             dc_rollout_direction dir,
                             const char *to);

#endif
