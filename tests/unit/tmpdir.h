/*
 * tmpdir.h — throwaway folders for tests that load migrations from disk:
 * make_dir() creates one, put() writes a file into it, remove_dir() deletes
 * it (one level deep) and frees its name. Shared by the unit and integration
 * tests; include after <cmocka.h>.
 */
#ifndef DC_TEST_TMPDIR_H
#define DC_TEST_TMPDIR_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/util.h"

static char *make_dir(void)
{
	char tmpl[] = "/tmp/dc-test-XXXXXX";
	char *d = mkdtemp(tmpl);

	assert_non_null(d);
	return strdup(d);
}

static void put(const char *dir, const char *name, const char *content)
{
	char *path = dc_path_join(dir, name);
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(content, 1, strlen(content), f), strlen(content));
	fclose(f);
	free(path);
}

static void remove_dir(char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	while (d && (de = readdir(d)) != NULL) {
		char *p;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		p = dc_path_join(dir, de->d_name);
		unlink(p);
		free(p);
	}
	if (d)
		closedir(d);
	rmdir(dir);
	free(dir);
}

#endif
