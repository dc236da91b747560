/*
 * layouts/golang_migrate.c — golang-migrate: <version>_<name>.up.sql and an
 * optional <version>_<name>.down.sql, each a whole SQL file.
 */
#include <ctype.h>
#include <string.h>

#include "../migration_internal.h"

static int detect(const char *name, struct dc_migration__entry *e)
{
	size_t len = strlen(name), v, t, end;

	if (!isdigit((unsigned char)name[0]))
		return 0;
	for (v = 0; isdigit((unsigned char)name[v]); v++)
		;
	if (name[v] != '_' || v > MAX_VERSION_LEN)
		return 0;
	t = v + 1;
	if (dc_migration__ends_with(name, len, ".up.sql")) {
		e->kind = KIND_UP;
		end = len - 7;
	} else if (dc_migration__ends_with(name, len, ".down.sql")) {
		e->kind = KIND_DOWN;
		end = len - 9;
	} else {
		return 0;
	}
	if (t >= end)
		return 0;
	return dc_migration__entry_named(e, name, v, name + t, end - t);
}

const struct dc_migration__layout dc_migration__layout_golang_migrate = {
	.id = DC_LAYOUT_GOLANG_MIGRATE,
	.name = "golang-migrate",
	.expected = "<version>_<name>.up.sql and .down.sql",
	.down_files = true,
	.detect = detect,
	.load = dc_migration__load_up_down,
};
