/*
 * The installed API: every public header compiles on its own terms, and none
 * of them drags in a type of a library deployclaw uses underneath (jansson,
 * libpq, SQLite, libfyaml, libpg_query). This file fails to build otherwise.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <deployclaw/analysis.h>
#include <deployclaw/common.h>
#include <deployclaw/config.h>
#include <deployclaw/engine.h>
#include <deployclaw/gate.h>
#include <deployclaw/ledger.h>
#include <deployclaw/migration.h>
#include <deployclaw/report.h>
#include <deployclaw/rewrite.h>
#include <deployclaw/rollout.h>
#include <deployclaw/status.h>
#include <deployclaw/sys/engine.h>
#include <deployclaw/topology.h>

#if defined(JANSSON_H) || defined(LIBPQ_FE_H) || defined(SQLITE3_H) || defined(LIBFYAML_H) || \
        defined(PG_QUERY_H)
#error "a public header includes a dependency's header"
#endif

static void public_headers_stand_alone(void **state)
{
	(void)state;
	assert_string_equal(DC_VERSION, "0.1.0");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(public_headers_stand_alone),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
