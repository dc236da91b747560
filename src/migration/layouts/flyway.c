/*
 * layouts/flyway.c — Flyway: V<version>__<description>.sql and an optional
 * U<version>__<description>.sql undo file, each a whole SQL file.
 */
#include <ctype.h>
#include <string.h>

#include "../migration_internal.h"
#include "util/util.h"

static int detect(const char *name, struct dc_migration__entry *e)
{
	size_t len = strlen(name), v, t, end, i;
	const char *sep;

	if (!dc_migration__ends_with(name, len, ".sql"))
		return 0;
	end = len - 4;
	if ((name[0] != 'V' && name[0] != 'U') || !isdigit((unsigned char)name[1]))
		return 0;
	/* V<digits, '.' or '_' separated>__<description>.sql */
	sep = strstr(name + 1, "__");
	if (!sep || (size_t)(sep - name) > end)
		return 0;
	v = (size_t)(sep - name);
	if (!isdigit((unsigned char)name[v - 1]))
		return 0;
	for (i = 1; i < v; i++) {
		char c = name[i];

		if (!isdigit((unsigned char)c) &&
		    ((c != '.' && c != '_') || !isdigit((unsigned char)name[i + 1])))
			return 0;
	}
	t = v + 2;
	if (t >= end || v - 1 > MAX_VERSION_LEN)
		return 0;
	e->kind = name[0] == 'V' ? KIND_UP : KIND_DOWN;
	if (dc_migration__entry_named(e, name + 1, v - 1, name + t, end - t) < 0)
		return DC_ENOMEM;
	/* Flyway reads '_' in a version as '.': V2_1 is version 2.1 */
	for (i = 0; e->version[i]; i++) {
		if (e->version[i] == '_')
			e->version[i] = '.';
	}
	return 1;
}

const struct dc_migration__layout dc_migration__layout_flyway = {
	.id = DC_LAYOUT_FLYWAY,
	.name = "flyway",
	.expected = "V<version>__<name>.sql (flyway)",
	.down_files = true,
	.detect = detect,
	.load = dc_migration__load_up_down,
};
