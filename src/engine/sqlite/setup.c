/*
 * dc_engine_sqlite_setup: SQLite's process-wide configuration (engine.h).
 */
#include <sqlite3.h>

#include <deployclaw/engine.h>

static int mem_init(void *unused)
{
	(void)unused;
	return SQLITE_OK;
}

static void mem_shutdown(void *unused)
{
	(void)unused;
}

int dc_engine_sqlite_setup(const dc_sqlite_mem *mem)
{
	/* SQLite keeps the pointer it is given: one set of methods for the process. */
	static sqlite3_mem_methods methods;

	if (sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0) != SQLITE_OK)
		return DC_EINVAL;
	if (!mem)
		return 0;
	methods = (sqlite3_mem_methods){
		mem->malloc,  mem->free, mem->realloc, mem->size,
		mem->roundup, mem_init,  mem_shutdown, NULL,
	};
	return sqlite3_config(SQLITE_CONFIG_MALLOC, &methods) == SQLITE_OK ? 0 : DC_EINVAL;
}
