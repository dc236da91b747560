/*
 * test_rls.c — row-level security on the parse tree (src/analysis/rls.c):
 * which statements weaken a table's RLS and which make it good again later
 * in the same sequence (the `rls` gate's static refusal), and whether a
 * policy expression refers to the tenant column (the engine's RLS check).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "analysis/rls.h"

static bool refers(const char *expr, const char *column)
{
	dc_error err = { 0 };
	bool out = true;

	assert_int_equal(dc_analysis__expr_refers_to(expr, column, &out, &err), 0);
	return out;
}

/* pg_get_expr's own text, as the engine reads it, and near misses */
static void a_column_reference_counts_a_string_does_not(void **state)
{
	dc_error err = { 0 };
	bool out;

	(void)state;
	assert_true(refers("(tenant_id = (current_setting('app.tenant'::text))::integer)",
	                   "tenant_id"));
	assert_true(refers("(accounts.tenant_id = 1)", "tenant_id"));
	assert_true(refers("(EXISTS ( SELECT 1 FROM m WHERE (m.tenant_id = 2)))", "tenant_id"));
	assert_true(refers("(\"Tenant\" = 1)", "Tenant"));
	assert_false(
	        refers("(current_setting('app.tenant_id'::text, true) IS NOT NULL)", "tenant_id"));
	assert_false(refers("(tenant_idx = 1)", "tenant_id"));
	assert_false(refers("(tenant_id(1) = 2)", "tenant_id"));
	assert_false(refers("(\"Tenant\" = 1)", "tenant"));
	assert_false(refers("true", "tenant_id"));
	assert_int_equal(dc_analysis__expr_refers_to("(tenant_id = ", "tenant_id", &out, &err),
	                 DC_EPARSE);
	assert_false(out);
}

/* Feeds each text of `sqls` (NULL-terminated) as one statement of a sequence;
 * returns how many weakenings stay open, the first in `*first`. */
static size_t open_after(const char *const *sqls, dc_rls_weakening *first)
{
	static dc_rls_tracker t;
	dc_error err = { 0 };
	size_t i;

	memset(&t, 0, sizeof(t));
	for (i = 0; sqls[i]; i++)
		assert_int_equal(dc_analysis__rls_sql(&t, sqls[i], sqls[i], &err), 0);
	if (t.nopen)
		*first = t.open[0];
	return t.nopen;
}

static void weakenings_stay_open_until_made_good(void **state)
{
	dc_rls_weakening w;
	char why[400];

	(void)state;
	{
		const char *seq[] = { "ALTER TABLE accounts ADD COLUMN x int, "
			              "DISABLE ROW LEVEL SECURITY",
			              NULL };

		assert_int_equal(open_after(seq, &w), 1);
		assert_int_equal(w.op, DC_RLS_DISABLE);
		assert_int_equal(w.loc, 12);
		assert_string_equal(w.table, "accounts");
		assert_ptr_equal(w.tag, seq[0]);
		dc_analysis__rls_describe(&w, why, sizeof(why));
		assert_non_null(strstr(why, "'accounts' DISABLE ROW LEVEL SECURITY"));
	}
	{
		const char *seq[] = { "SELECT 1; DROP POLICY p ON app.accounts", NULL };

		assert_int_equal(open_after(seq, &w), 1);
		assert_int_equal(w.op, DC_RLS_DROP_POLICY);
		assert_int_equal(w.loc, 9); /* the statement's start: DROP has no position */
		assert_string_equal(w.schema, "app");
		assert_string_equal(w.policy, "p");
	}
	{
		const char *seq[] = { "ALTER TABLE a NO FORCE ROW LEVEL SECURITY",
			              "ALTER TABLE a ENABLE ROW LEVEL SECURITY", NULL };

		/* ENABLE does not make NO FORCE good */
		assert_int_equal(open_after(seq, &w), 1);
		assert_int_equal(w.op, DC_RLS_NO_FORCE);
	}
	{
		const char *seq[] = { "DROP POLICY p ON a", "CREATE POLICY q ON b USING (true)",
			              NULL };

		/* a policy on another table does not count */
		assert_int_equal(open_after(seq, &w), 1);
	}
}

static void later_statements_make_it_good(void **state)
{
	dc_rls_weakening w;
	const char *again[] = { "ALTER TABLE a DISABLE ROW LEVEL SECURITY", "UPDATE a SET x = 1",
		                "ALTER TABLE a ENABLE ROW LEVEL SECURITY",
		                "ALTER TABLE a NO FORCE ROW LEVEL SECURITY; "
		                "ALTER TABLE public.a FORCE ROW LEVEL SECURITY",
		                NULL };
	const char *replaced[] = { "DROP POLICY p ON public.a",
		                   "CREATE POLICY p ON a USING (tenant_id = 1)", NULL };
	const char *dropped[] = { "DROP POLICY p ON a; ALTER TABLE a DISABLE ROW LEVEL SECURITY",
		                  "DROP TABLE IF EXISTS b, a", NULL };
	const char *unrelated[] = { "DROP TABLE a", "CREATE POLICY p ON a USING (true)",
		                    "ALTER TABLE a ENABLE ROW LEVEL SECURITY", NULL };

	(void)state;
	assert_int_equal(open_after(again, &w), 0);
	assert_int_equal(open_after(replaced, &w), 0);
	assert_int_equal(open_after(dropped, &w), 0);
	assert_int_equal(open_after(unrelated, &w), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(a_column_reference_counts_a_string_does_not),
		cmocka_unit_test(weakenings_stay_open_until_made_good),
		cmocka_unit_test(later_statements_make_it_good),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
