/*
 * Opening a file, SQLite's unix VFS turns its name into a canonical one
 * (xFullPathname): getcwd for a relative name, then an lstat of every
 * component to resolve symlinks -- six syscalls for tenants/t.db, paid at
 * every open, twice per tenant (planning, then the run). A tenant file that
 * is a regular file in a folder whose realpath this connection already knows
 * has a canonical name already: it opens through "deployclaw-canonical", the
 * unix VFS with an xFullPathname that takes an absolute name as it is. Any
 * other file (a symlink, a name realpath cannot resolve) opens through the
 * default VFS, as before. The journal and locks are SQLite's own either way.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sqlite3.h>

#include "sqlite_internal.h"
#include "util/util.h"

static sqlite3_vfs canonical_vfs;
static sqlite3_vfs *canonical_base;
static pthread_once_t canonical_once = PTHREAD_ONCE_INIT;
static bool canonical_ok;

static int canonical_full_pathname(sqlite3_vfs *vfs, const char *path, int nout, char *out)
{
	size_t n = strlen(path);

	(void)vfs;
	if (path[0] != '/')
		return canonical_base->xFullPathname(canonical_base, path, nout, out);
	if (nout < 1 || n >= (size_t)nout)
		return SQLITE_CANTOPEN;
	memcpy(out, path, n + 1);
	return SQLITE_OK;
}

static void canonical_register(void)
{
	canonical_base = sqlite3_vfs_find(NULL);
	if (!canonical_base || canonical_base->iVersion < 1)
		return;
	canonical_vfs = *canonical_base;
	canonical_vfs.zName = DC_SQLITE__CANONICAL_VFS;
	canonical_vfs.pNext = NULL;
	canonical_vfs.xFullPathname = canonical_full_pathname;
	canonical_ok = sqlite3_vfs_register(&canonical_vfs, 0) == SQLITE_OK;
}

/*
 * The canonical name of `target` in pc->canon, when its folder resolves and
 * the file is not a symlink (lstat into *sb); false otherwise (then *sb is
 * not filled and the caller stats the name as given).
 */
bool dc_sqlite__canonical_path(path_cache *pc, const char *target, struct stat *sb)
{
	const char *slash = strrchr(target, '/');
	const char *base = slash ? slash + 1 : target;
	/* the cache key: the folder as spelled, with its slash ("" is the cwd) */
	size_t klen = slash ? (size_t)(slash - target) + 1 : 0;

	/* registered by the first open (every open comes here first) */
	pthread_once(&canonical_once, canonical_register);
	if (!canonical_ok || !*base || !strcmp(base, ".") || !strcmp(base, ".."))
		return false;
	if (!pc->dir_spelling || strlen(pc->dir_spelling) != klen ||
	    strncmp(pc->dir_spelling, target, klen) != 0) {
		char *spelling = dc_strndup(target, klen);
		char *folder =
		        klen > 1 ? dc_strndup(target, klen - 1) : dc_strdup(klen ? "/" : ".");
		char *real = spelling && folder ? realpath(folder, NULL) : NULL;

		free(folder);
		if (!real) {
			free(spelling);
			return false;
		}
		free(pc->dir_spelling);
		free(pc->dir_real);
		pc->dir_spelling = spelling;
		pc->dir_real = real;
	}
	dc_strbuf_reset(&pc->canon);
	dc_strbuf_addf(&pc->canon, "%s/%s", strcmp(pc->dir_real, "/") ? pc->dir_real : "", base);
	if (dc_strbuf_error(&pc->canon) || lstat(pc->canon.buf, sb) != 0 || S_ISLNK(sb->st_mode))
		return false;
	return true;
}

bool dc_sqlite__canonical_ok(void)
{
	return canonical_ok;
}
