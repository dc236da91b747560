/*
 * Discovery: the tenant files that tenancy.glob and tenancy.list name.
 */
#include <glob.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <deployclaw/engine.h>

#include "sqlite_internal.h"
#include "util/text.h"
#include "util/util.h"

/* Most tenants one engine discovers; more is DC_ELIMIT. */
#define MAX_TENANTS ((size_t)10 * 1000 * 1000)

/* SQLite's own files next to a database: never tenants. */
static bool is_sidecar(const char *path)
{
	static const char *const suffixes[] = { "-journal", "-wal", "-shm" };
	size_t len = strlen(path), i, n;

	for (i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		n = strlen(suffixes[i]);
		if (len > n && strcmp(path + len - n, suffixes[i]) == 0)
			return true;
	}
	return false;
}

static int add_tenant(dc_ptrvec *paths, const char *path)
{
	char *copy = dc_strdup(path);

	if (!copy)
		return DC_ENOMEM;
	if (dc_ptrvec_push(paths, copy) != 0) {
		free(copy);
		return DC_ENOMEM;
	}
	return 0;
}

static int cmp_tenant(const void *a, const void *b)
{
	const dc_tenant *x = a, *y = b;
	int c = strcmp(x->id, y->id);

	return c ? c : strcmp(x->target, y->target);
}

/* File stem: the basename up to its last '.' (".hidden" keeps its dot). */
static char *file_stem(const char *path)
{
	const char *base = dc_path_basename(path);
	const char *dot = strrchr(base, '.');

	if (!dot || dot == base)
		return dc_strdup(base);
	return dc_strndup(base, (size_t)(dot - base));
}

int dc_sqlite__discover(dc_engine *e, dc_tenant **tenants, size_t *n, dc_error *err)
{
	dc_ptrvec paths = DC_PTRVEC_INIT;
	dc_tenant *ts = NULL;
	glob_t g;
	bool have_glob = false;
	size_t i, nt = 0;
	int ret = 0, rc;

	*tenants = NULL;
	*n = 0;
	memset(&g, 0, sizeof(g));
	if (e->glob) {
		/* GLOB_MARK appends '/' to folders, so they are skipped without a stat. */
		rc = glob(e->glob, GLOB_MARK, NULL, &g);
		have_glob = true;
		if (rc == GLOB_NOSPACE) {
			ret = dc_error_set(err, DC_ENOMEM, "out of memory");
			goto out;
		}
		if (rc == GLOB_ABORTED) {
			ret = dc_error_set(err, DC_EIO, "tenancy.glob '%s': cannot read a folder",
			                   e->glob);
			goto out;
		}
		for (i = 0; rc == 0 && i < g.gl_pathc; i++) {
			const char *p = g.gl_pathv[i];
			size_t len = strlen(p);

			if (len == 0 || p[len - 1] == '/' || is_sidecar(p))
				continue;
			if (add_tenant(&paths, p) != 0)
				goto oom;
		}
	}
	for (i = 0; i < e->nlist; i++)
		if (add_tenant(&paths, e->list[i]) != 0)
			goto oom;
	if (paths.len > MAX_TENANTS) {
		ret = dc_error_set(err, DC_ELIMIT, "more than %zu tenant files", MAX_TENANTS);
		goto out;
	}
	if (paths.len == 0)
		goto out;
	ts = calloc(paths.len, sizeof(*ts));
	if (!ts)
		goto oom;
	for (i = 0; i < paths.len; i++) {
		ts[nt].target = paths.items[i];
		paths.items[i] = NULL;
		nt++;
		ts[nt - 1].id = file_stem(ts[nt - 1].target);
		ts[nt - 1].shard = dc_path_dirname(ts[nt - 1].target);
		if (!ts[nt - 1].id || !ts[nt - 1].shard)
			goto oom;
	}
	qsort(ts, nt, sizeof(*ts), cmp_tenant);
	/* The same file found twice (glob and list) is one tenant; two files with
	 * one stem are a configuration error. */
	for (i = 1; i < nt;) {
		if (strcmp(ts[i].id, ts[i - 1].id) != 0) {
			i++;
			continue;
		}
		if (strcmp(ts[i].target, ts[i - 1].target) != 0) {
			ret = dc_error_set(
			        err, DC_ECONFIG,
			        "duplicate tenant id '%s': '%s' and '%s' have the same file stem",
			        ts[i].id, ts[i - 1].target, ts[i].target);
			goto out;
		}
		free(ts[i].id);
		free(ts[i].shard);
		free(ts[i].target);
		memmove(&ts[i], &ts[i + 1], (nt - i - 1) * sizeof(*ts));
		nt--;
	}
	*tenants = ts;
	*n = nt;
	ts = NULL;
	nt = 0;
	goto out;
oom:
	ret = dc_error_set(err, DC_ENOMEM, "out of memory");
out:
	dc_tenants_free(ts, nt);
	dc_ptrvec_release(&paths, free);
	if (have_glob)
		globfree(&g);
	return ret;
}
