/*
 * Tenant locks: a 1-byte POSIX record lock per tenant on its folder's lock
 * file (see the invariants in sqlite.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <deployclaw/engine.h>

#include "sqlite_internal.h"
#include "util/util.h"

#define LOCK_FILE_NAME ".deployclaw.lock"

int dc_sqlite__release_lock(dc_conn *c)
{
	struct flock fl;

	if (!c->locked)
		return 0;
	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_UNLCK;
	fl.l_whence = SEEK_SET;
	fl.l_start = c->lock_off;
	fl.l_len = 1;
	c->locked = false;
	return fcntl(c->lock_fd, F_SETLK, &fl);
}

/* The lock file of `folder`, opened on first use and kept open (see the
 * comment at the top). `*real` receives the folder's realpath (stable until
 * close). Called with e->mu held. */
static int folder_lock_fd(dc_engine *e,
                          const char *folder,
                          int *fd,
                          const char **real,
                          dc_error *err)
{
	lock_folder *f;
	char *spelling = NULL, *rp = NULL, *path = NULL;
	size_t i;
	int ret = 0, lfd = -1;
	bool owner = true;

	for (i = 0; i < e->nfolders; i++) {
		if (strcmp(e->folders[i].spelling, folder) == 0) {
			*fd = e->folders[i].fd;
			*real = e->folders[i].real;
			return 0;
		}
	}
	rp = realpath(folder, NULL);
	if (!rp) {
		ret = dc_error_set(err, DC_EIO, "folder '%s': %s", folder, strerror(errno));
		goto out;
	}
	for (i = 0; i < e->nfolders; i++) {
		if (strcmp(e->folders[i].real, rp) == 0) {
			lfd = e->folders[i].fd;
			owner = false;
			break;
		}
	}
	if (owner) {
		path = dc_path_join(rp, LOCK_FILE_NAME);
		if (!path)
			goto oom;
		lfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
		if (lfd < 0) {
			ret = dc_error_set(err, DC_EIO, "cannot open the lock file '%s': %s", path,
			                   strerror(errno));
			goto out;
		}
	}
	spelling = dc_strdup(folder);
	if (!spelling)
		goto oom;
	if (e->nfolders == e->afolders &&
	    dc_array_grow(&e->folders, &e->afolders, sizeof(*e->folders), 4) != 0)
		goto oom;
	f = &e->folders[e->nfolders++];
	f->spelling = spelling;
	f->real = rp;
	f->fd = lfd;
	f->owner = owner;
	*fd = lfd;
	*real = rp;
	spelling = NULL;
	rp = NULL;
	lfd = -1;
	goto out;
oom:
	ret = dc_error_set(err, DC_ENOMEM, "out of memory");
out:
	if (owner && lfd >= 0)
		close(lfd);
	free(spelling);
	free(rp);
	free(path);
	return ret;
}

int dc_sqlite__lock_tenant(dc_conn *c, int64_t timeout_ms, dc_error *err)
{
	const dc_tenant *t = c->tenant;
	char *dir = NULL;
	const char *folder, *real = NULL, *base;
	struct flock fl;
	int64_t deadline;
	uint64_t h;
	char waited[32];
	int ret = 0, fd = -1;

	if ((ret = dc_sqlite__need_db(c, err)) != 0)
		return ret;
	if (c->locked)
		return 0;
	folder = t->shard;
	if (!folder || !folder[0]) {
		dir = dc_path_dirname(t->target);
		if (!dir)
			return dc_sqlite__fail(c, err, DC_ENOMEM, NULL, 0, 0, "out of memory");
		folder = dir;
	}
	pthread_mutex_lock(&c->engine->mu);
	ret = folder_lock_fd(c->engine, folder, &fd, &real, err);
	pthread_mutex_unlock(&c->engine->mu);
	if (ret != 0) {
		if (err && err->code == ret)
			snprintf(err->tenant, sizeof(err->tenant), "%s", t->id);
		goto out;
	}
	/* The offset hashes the canonical path, so every process (whatever its
	 * working folder or spelling of the path) locks the same byte. */
	base = strrchr(t->target, '/');
	base = base ? base + 1 : t->target;
	h = dc_fnv1a64(dc_fnv1a64(dc_fnv1a64(DC_FNV1A64_INIT, real, strlen(real)), "/", 1), base,
	               strlen(base));
	h ^= h >> 33; /* fold the high bits in: the offset keeps only the low ones */
	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	fl.l_start = (off_t)(h & (sizeof(off_t) >= 8 ? 0x3fffffffffffffffULL : 0x3fffffffULL));
	fl.l_len = 1;
	deadline = dc_time_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	for (;;) {
		if (fcntl(fd, F_SETLK, &fl) == 0)
			break;
		if (errno != EACCES && errno != EAGAIN && errno != EINTR) {
			ret = dc_sqlite__fail(c, err, DC_EIO, NULL, 0, 0,
			                      "tenant '%s': cannot lock: %s", t->id,
			                      strerror(errno));
			goto out;
		}
		if (dc_time_mono_ms() >= deadline) {
			struct flock probe = fl;

			dc_duration_format(waited, sizeof(waited), timeout_ms > 0 ? timeout_ms : 0);
			if (fcntl(fd, F_GETLK, &probe) == 0 && probe.l_type == F_UNLCK &&
			    fcntl(fd, F_SETLK, &fl) == 0)
				break; /* released between the last try and the probe */
			ret = dc_sqlite__fail(
			        c, err, DC_ELOCKED, NULL, 0, 0,
			        "tenant '%s' is locked by another deployclaw process (pid %ld); waited %s",
			        t->id, (long)probe.l_pid, waited);
			goto out;
		} else {
			dc_sleep_poll(deadline, DC_SQLITE__LOCK_POLL_MS);
		}
	}
	c->locked = true;
	c->lock_fd = fd;
	c->lock_off = fl.l_start;
out:
	free(dir);
	return ret;
}

int dc_sqlite__unlock_tenant(dc_conn *c, dc_error *err)
{
	if (dc_sqlite__release_lock(c) != 0)
		return dc_sqlite__fail(c, err, DC_EIO, NULL, 0, 0, "tenant '%s': cannot unlock: %s",
		                       dc_sqlite__tenant_id(c), strerror(errno));
	return 0;
}
