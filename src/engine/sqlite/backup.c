/*
 * A tenant's backup before its migration runs.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include <deployclaw/engine.h>

#include "sqlite_internal.h"
#include "util/util.h"

static int fsync_path(const char *path, int flags)
{
	int fd = open(path, flags | O_CLOEXEC);
	int rc;

	if (fd < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

/* Copies the tenant with the online backup API into a temporary file next to
 * `dest`, fsyncs it and renames it over `dest`: a reader never sees half a
 * backup, and a crash leaves at most a stray temporary file. */
int dc_sqlite__backup(dc_conn *c, const char *dest, dc_error *err)
{
	sqlite3 *out = NULL;
	sqlite3_backup *b = NULL;
	char *tmp = NULL, *dir = NULL;
	int64_t deadline;
	int ret, rc, fd;

	if ((ret = dc_sqlite__need_db(c, err)) != 0)
		return ret;
	tmp = malloc(strlen(dest) + 8);
	dir = dc_path_dirname(dest);
	if (!tmp || !dir) {
		ret = dc_sqlite__fail(c, err, DC_ENOMEM, NULL, 0, 0, "out of memory");
		goto out;
	}
	strcpy(tmp, dest);
	strcat(tmp, ".XXXXXX");
	fd = mkstemp(tmp);
	if (fd < 0) {
		ret = dc_sqlite__fail(c, err, DC_EIO, NULL, 0, 0, "tenant '%s': backup to '%s': %s",
		                      dc_sqlite__tenant_id(c), dest, strerror(errno));
		free(tmp);
		tmp = NULL;
		goto out;
	}
	close(fd);
	rc = sqlite3_open_v2(tmp, &out, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc == SQLITE_OK) {
		b = sqlite3_backup_init(out, "main", c->db, "main");
		rc = b ? SQLITE_OK : sqlite3_errcode(out);
	}
	deadline = dc_time_mono_ms() + c->engine->busy_ms;
	while (rc == SQLITE_OK || rc == SQLITE_BUSY || rc == SQLITE_LOCKED) {
		rc = sqlite3_backup_step(b, -1);
		if (rc == SQLITE_DONE)
			break;
		if ((rc == SQLITE_BUSY || rc == SQLITE_LOCKED) && dc_time_mono_ms() >= deadline)
			break;
		if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
			sqlite3_sleep(DC_SQLITE__LOCK_POLL_MS);
	}
	if (b && sqlite3_backup_finish(b) != SQLITE_OK && rc == SQLITE_DONE)
		rc = sqlite3_errcode(out);
	if (rc != SQLITE_DONE) {
		ret = dc_sqlite__fail(c, err, DC_EDB, NULL, 0, 0, "tenant '%s': backup to '%s': %s",
		                      dc_sqlite__tenant_id(c), dest,
		                      out ? sqlite3_errmsg(out) : "out of memory");
		goto out;
	}
	sqlite3_close(out);
	out = NULL;
	if (fsync_path(tmp, O_RDONLY) != 0 || rename(tmp, dest) != 0) {
		ret = dc_sqlite__fail(c, err, DC_EIO, NULL, 0, 0, "tenant '%s': backup to '%s': %s",
		                      dc_sqlite__tenant_id(c), dest, strerror(errno));
		goto out;
	}
	free(tmp);
	tmp = NULL;
	(void)fsync_path(dir, O_RDONLY | O_DIRECTORY); /* best effort, as dc_file_write_atomic */
out:
	sqlite3_close(out);
	if (tmp)
		unlink(tmp);
	free(tmp);
	free(dir);
	return ret;
}
