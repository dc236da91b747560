/* What a tenant needs, from its history against the set (src/rollout/plan.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "rollout/rollout_internal.h"

static dc_phase phases[2] = {
	{ (char *)(uintptr_t) "expand", true, 0, { 0 }, { 0 } },
	{ (char *)(uintptr_t) "contract", true, 0, { 0 }, { 0 } },
};

static dc_migration migs[3];
static dc_migration_set set = { (char *)(uintptr_t) "m", DC_LAYOUT_NATIVE, DC_DIALECT_SQLITE, migs,
	                        3 };

static int setup(void **state)
{
	static const char *const versions[] = { "1", "2", "10" };
	size_t i;

	(void)state;
	for (i = 0; i < 3; i++) {
		memset(&migs[i], 0, sizeof(migs[i]));
		migs[i].version = (char *)(uintptr_t)versions[i];
		migs[i].name = (char *)(uintptr_t) "m";
		migs[i].phases = phases;
		migs[i].nphases = 2;
		snprintf(migs[i].checksum, sizeof(migs[i].checksum), "sum%s", versions[i]);
	}
	return 0;
}

static dc_history_row row(const char *version,
                          const char *checksum,
                          dc_history_status st,
                          const char *phase)
{
	dc_history_row r;

	memset(&r, 0, sizeof(r));
	r.version = (char *)(uintptr_t)version;
	r.checksum = (char *)(uintptr_t)checksum;
	r.status = st;
	r.phase = (char *)(uintptr_t)phase;
	return r;
}

static void fresh_tenant_needs_everything(void **state)
{
	dc_rollout__todo t;

	(void)state;
	assert_int_equal(dc_rollout__todo_compute(&t, &set, NULL, 0, DC_ROLLOUT_APPLY, NULL), 0);
	assert_int_equal(t.n, 3);
	assert_string_equal(t.migs[2]->version, "10");
	assert_string_equal(t.from, "");
	assert_string_equal(t.to, "10");
	assert_false(t.drift || t.out_of_order || t.partial);
	dc_rollout__todo_release(&t);

	/* --to stops at a version, in natural order */
	assert_int_equal(dc_rollout__todo_compute(&t, &set, NULL, 0, DC_ROLLOUT_APPLY, "2"), 0);
	assert_int_equal(t.n, 2);
	assert_string_equal(t.to, "2");
	dc_rollout__todo_release(&t);
}

static void applied_versions_are_skipped(void **state)
{
	dc_history_row rows[2] = { row("1", "sum1", DC_HISTORY_APPLIED, "contract"),
		                   row("2", "sum2", DC_HISTORY_ROLLED_BACK, "") };
	dc_rollout__todo t;

	(void)state;
	assert_int_equal(dc_rollout__todo_compute(&t, &set, rows, 2, DC_ROLLOUT_APPLY, NULL), 0);
	assert_int_equal(t.n, 2); /* a rolled-back version is pending again */
	assert_string_equal(t.migs[0]->version, "2");
	assert_string_equal(t.from, "1");
	dc_rollout__todo_release(&t);
}

static void partial_resumes_after_its_phase(void **state)
{
	dc_history_row rows[2] = { row("1", "sum1", DC_HISTORY_APPLIED, "contract"),
		                   row("2", "sum2", DC_HISTORY_PARTIAL, "expand") };
	dc_rollout__todo t;

	(void)state;
	assert_int_equal(dc_rollout__todo_compute(&t, &set, rows, 2, DC_ROLLOUT_APPLY, NULL), 0);
	assert_true(t.partial);
	assert_int_equal(t.n, 2);
	assert_string_equal(t.migs[0]->version, "2");
	assert_int_equal(t.resume_phase, 1);
	dc_rollout__todo_release(&t);
}

static void drift_and_out_of_order(void **state)
{
	dc_history_row edited[1] = { row("1", "other", DC_HISTORY_APPLIED, "contract") };
	dc_history_row gap[1] = { row("10", "sum10", DC_HISTORY_APPLIED, "contract") };
	dc_history_row gone[1] = { row("7", "sum7", DC_HISTORY_APPLIED, "contract") };
	dc_rollout__todo t;

	(void)state;
	assert_int_equal(dc_rollout__todo_compute(&t, &set, edited, 1, DC_ROLLOUT_APPLY, NULL), 0);
	assert_true(t.drift);
	assert_non_null(strstr(t.problem, "version '1' was applied with checksum other"));
	dc_rollout__todo_release(&t);

	assert_int_equal(dc_rollout__todo_compute(&t, &set, gap, 1, DC_ROLLOUT_APPLY, NULL), 0);
	assert_true(t.out_of_order);
	assert_false(t.drift);
	assert_non_null(strstr(t.problem, "pending version '1' is older than applied '10'"));
	dc_rollout__todo_release(&t);

	assert_int_equal(dc_rollout__todo_compute(&t, &set, gone, 1, DC_ROLLOUT_APPLY, NULL), 0);
	assert_true(t.drift);
	assert_non_null(
	        strstr(t.problem, "version '7' is applied but not in the migrations folder"));
	dc_rollout__todo_release(&t);
}

static void rollback_undoes_newest_first(void **state)
{
	dc_history_row rows[3] = { row("1", "sum1", DC_HISTORY_APPLIED, "contract"),
		                   row("2", "sum2", DC_HISTORY_APPLIED, "contract"),
		                   row("10", "sum10", DC_HISTORY_APPLIED, "contract") };
	dc_history_row unknown[2] = { row("1", "sum1", DC_HISTORY_APPLIED, "contract"),
		                      row("7", "sum7", DC_HISTORY_APPLIED, "contract") };
	dc_rollout__todo t;

	(void)state;
	/* without --to: the latest one */
	assert_int_equal(dc_rollout__todo_compute(&t, &set, rows, 3, DC_ROLLOUT_ROLLBACK, NULL), 0);
	assert_int_equal(t.n, 1);
	assert_string_equal(t.migs[0]->version, "10");
	assert_string_equal(t.to, "2");
	dc_rollout__todo_release(&t);

	/* --to 1: everything above 1, newest first */
	assert_int_equal(dc_rollout__todo_compute(&t, &set, rows, 3, DC_ROLLOUT_ROLLBACK, "1"), 0);
	assert_int_equal(t.n, 2);
	assert_string_equal(t.migs[0]->version, "10");
	assert_string_equal(t.migs[1]->version, "2");
	assert_string_equal(t.to, "1");
	dc_rollout__todo_release(&t);

	/* a version whose down is unknown cannot be rolled back */
	assert_int_equal(dc_rollout__todo_compute(&t, &set, unknown, 2, DC_ROLLOUT_ROLLBACK, NULL),
	                 DC_EINVAL);
	dc_rollout__todo_release(&t);
}

/* A run holds one outcome per tenant for its whole length: it must stay small (it
 * embedded a 1.9 KB dc_error, 2,104 bytes a tenant, before failures moved theirs to the
 * heap). */
/* Version 2 is shard-scoped: no tenant's plan holds it, and a shard's holds only it. */
static void scopes_are_planned_apart(void **state)
{
	dc_history_row rows[2] = { row("1", "sum1", DC_HISTORY_APPLIED, "contract"),
		                   row("10", "sum10", DC_HISTORY_APPLIED, "contract") };
	dc_history_row shard[1] = { row("2", "sum2", DC_HISTORY_APPLIED, "contract") };
	dc_rollout__todo t;

	(void)state;
	migs[1].scope = DC_SCOPE_SHARD;
	/* a tenant at 1 and 10 has nothing pending, and is not out of order */
	assert_int_equal(dc_rollout__todo_compute(&t, &set, rows, 2, DC_ROLLOUT_APPLY, NULL), 0);
	assert_int_equal(t.n, 0);
	assert_false(t.out_of_order);
	dc_rollout__todo_release(&t);
	assert_int_equal(dc_rollout__todo_compute(&t, &set, NULL, 0, DC_ROLLOUT_APPLY, NULL), 0);
	assert_int_equal(t.n, 2);
	assert_string_equal(t.migs[0]->version, "1");
	assert_string_equal(t.migs[1]->version, "10");
	dc_rollout__todo_release(&t);

	assert_int_equal(dc_rollout__todo_compute_scope(&t, &set, NULL, 0, DC_ROLLOUT_APPLY, NULL,
	                                                DC_SCOPE_SHARD),
	                 0);
	assert_int_equal(t.n, 1);
	assert_string_equal(t.migs[0]->version, "2");
	dc_rollout__todo_release(&t);
	/* --to below it: not yet */
	assert_int_equal(dc_rollout__todo_compute_scope(&t, &set, NULL, 0, DC_ROLLOUT_APPLY, "1",
	                                                DC_SCOPE_SHARD),
	                 0);
	assert_int_equal(t.n, 0);
	dc_rollout__todo_release(&t);
	/* rollback --to 1 undoes it; the tenant rollback does not see it */
	assert_int_equal(dc_rollout__todo_compute_scope(&t, &set, shard, 1, DC_ROLLOUT_ROLLBACK,
	                                                "1", DC_SCOPE_SHARD),
	                 0);
	assert_int_equal(t.n, 1);
	assert_string_equal(t.migs[0]->version, "2");
	dc_rollout__todo_release(&t);
	assert_int_equal(dc_rollout__todo_compute(&t, &set, rows, 2, DC_ROLLOUT_ROLLBACK, "1"), 0);
	assert_int_equal(t.n, 1);
	assert_string_equal(t.migs[0]->version, "10");
	dc_rollout__todo_release(&t);
	migs[1].scope = DC_SCOPE_TENANT;
}

static void outcome_stays_small(void **state)
{
	(void)state;
	assert_true(sizeof(dc_tenant_outcome) <= 256);
}

/* Options carry the layout they were built with; one the library does not know, or a
 * zeroed struct, is refused before anything is touched. */
static void options_carry_their_version(void **state)
{
	dc_rollout_opts macro = DC_ROLLOUT_OPTIONS_INIT, fn, zero;
	dc_rollout_report *rep = (dc_rollout_report *)(uintptr_t)1;
	dc_config cfg;
	dc_error err = { 0 };

	(void)state;
	assert_int_equal(macro.version, DC_ROLLOUT_OPTIONS_VERSION);
	assert_int_equal(macro.direction, DC_ROLLOUT_APPLY);
	assert_null(macro.tenants);
	memset(&fn, 0xff, sizeof(fn));
	assert_int_equal(dc_rollout_opts_init(&fn, DC_ROLLOUT_OPTIONS_VERSION), 0);
	assert_int_equal(fn.version, DC_ROLLOUT_OPTIONS_VERSION);
	assert_int_equal(fn.parallel, 0);
	assert_null(fn.stop);
	assert_false(fn.dry_run);
	assert_int_equal(dc_rollout_opts_init(&fn, DC_ROLLOUT_OPTIONS_VERSION + 1), DC_EINVAL);
	assert_int_equal(dc_rollout_opts_init(&fn, 0), DC_EINVAL);

	memset(&zero, 0, sizeof(zero));
	memset(&cfg, 0, sizeof(cfg));
	assert_int_equal(dc_rollout_run(&rep, &cfg, &set, NULL, &zero, &err), DC_EINVAL);
	assert_null(rep);
	assert_string_equal(err.message, "rollout options of version 0: this library knows 1 to 1 "
	                                 "(start from DC_ROLLOUT_OPTIONS_INIT)");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(fresh_tenant_needs_everything),
		cmocka_unit_test(applied_versions_are_skipped),
		cmocka_unit_test(partial_resumes_after_its_phase),
		cmocka_unit_test(drift_and_out_of_order),
		cmocka_unit_test(rollback_undoes_newest_first),
		cmocka_unit_test(scopes_are_planned_apart),
		cmocka_unit_test(outcome_stays_small),
		cmocka_unit_test(options_carry_their_version),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
