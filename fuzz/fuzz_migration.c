/*
 * fuzz_migration.c — libFuzzer target for the migration loader.
 *
 * The input is written as a native YAML migration into one temporary folder
 * and as a dbmate file into another (both created once), and each folder is
 * loaded with both dialects. Every path must end in 0 or a DC_E... code,
 * never a crash or a leak.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <deployclaw/migration.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *yaml_dir, *dbmate_dir, *yaml_file, *dbmate_file;

static void cleanup(void)
{
	if (yaml_file)
		unlink(yaml_file);
	if (dbmate_file)
		unlink(dbmate_file);
	if (yaml_dir)
		rmdir(yaml_dir);
	if (dbmate_dir)
		rmdir(dbmate_dir);
}

static char *temp_dir(void)
{
	char tmpl[] = "/tmp/dc-fuzz-mig-XXXXXX";
	char *d = mkdtemp(tmpl);

	if (!d)
		abort();
	return strdup(d);
}

static void setup(void)
{
	yaml_dir = temp_dir();
	dbmate_dir = temp_dir();
	yaml_file = dc_path_join(yaml_dir, "1_fuzz.yaml");
	dbmate_file = dc_path_join(dbmate_dir, "20240101000000_fuzz.sql");
	if (!yaml_file || !dbmate_file)
		abort();
	atexit(cleanup);
}

static void write_file(const char *path, const uint8_t *data, size_t size)
{
	FILE *f = fopen(path, "wb");

	if (!f)
		abort();
	if (size && fwrite(data, 1, size, f) != size)
		abort();
	fclose(f);
}

static void load_both(const char *dir)
{
	dc_dialect dialects[2] = { DC_DIALECT_SQLITE, DC_DIALECT_POSTGRES };
	size_t i;

	for (i = 0; i < 2; i++) {
		dc_migration_set *set = NULL;
		dc_error err;
		dc_strbuf sb = DC_STRBUF_INIT;
		char buf[2048];
		int rc;

		dc_error_clear(&err);
		rc = dc_migration_set_load(&set, dir, dialects[i], &err);
		if (rc == 0) {
			if (!set)
				abort();
			if (dc_sum_render(set, &sb) != 0)
				abort();
		} else {
			if (set || rc != err.code || err.message[0] == '\0')
				abort();
			dc_error_format(&err, buf, sizeof(buf));
		}
		dc_strbuf_release(&sb);
		dc_migration_set_free(set);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!yaml_dir)
		setup();
	write_file(yaml_file, data, size);
	write_file(dbmate_file, data, size);
	load_both(yaml_dir);
	load_both(dbmate_dir);
	return 0;
}
