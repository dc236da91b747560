/*
 * The SQLite engine: tenancy `database`, one SQLite file per tenant.
 *
 * One dc_engine serves the whole fleet (all folders); each worker has a
 * dc_conn whose sqlite3 handle is re-opened by `enter` for every tenant.
 * docs/sqlite-engine.md describes the behaviour a user sees; this comment
 * lists the invariants the code relies on:
 *
 * - A dc_conn is used by one thread at a time (SQLITE_OPEN_NOMUTEX); the
 *   dc_engine is shared by all workers, and its only mutable state (the
 *   lock files of the folders) is guarded by `mu`.
 * - Tenant locks are classic POSIX record locks on one lock file per folder,
 *   `<folder>/.deployclaw.lock`, opened once and kept open until close():
 *   closing ANY descriptor of a file drops every lock the process holds on
 *   it, so the file is never opened per tenant and never closed early.
 * - The authorizer checks only user statements (`conn->user`): deployclaw's
 *   own statements (history, BEGIN/COMMIT, checks) run unchecked.
 * - The tenant id reaches SQL through deployclaw_tenant() only; it is never
 *   spliced into SQL text, and neither is any other value.
 *
 * This file opens and closes the engine and holds its table of operations;
 * the rest lives with its concern, and sqlite_internal.h declares what the
 * files share:
 *
 *   discover.c     the tenant files of tenancy.glob and tenancy.list
 *   connection.c   connect/disconnect, enter/leave, opening a tenant's
 *                  file with the handle's settings; the errors
 *   canonical.c    the VFS that skips resolving a name already canonical
 *   prefetch.c     the thread that opens the next tenant ahead of enter
 *   authorizer.c   tenant isolation; a user statement's class and tables
 *   locks.c        tenant locks (POSIX record locks on a folder's file)
 *   transaction.c  begin/commit/rollback, deployclaw's own statements
 *   statement.c    the user's statements (exec, query_bool), query_text
 *   history.c      deployclaw_history: ensure, read, write
 *   peek.c         planning's read of a history without entering
 *   graph.c        the tables and foreign keys the scoped checks follow
 *   checks.c       integrity_check and foreign_key_check
 *   backup.c       the backup before a migration
 *   fingerprint.c  the schema fingerprint
 */
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include <deployclaw/engine.h>

#include "sqlite_internal.h"
#include "util/util.h"

static void sq_close(dc_engine *e)
{
	size_t i;

	if (!e)
		return;
	for (i = 0; i < e->nfolders; i++) {
		if (e->folders[i].owner)
			close(e->folders[i].fd);
		free(e->folders[i].spelling);
		free(e->folders[i].real);
	}
	free(e->folders);
	for (i = 0; i < e->nlist; i++)
		free(e->list[i]);
	free(e->list);
	free(e->glob);
	pthread_mutex_destroy(&e->mu);
	free(e);
}

static int sq_open(dc_engine **out,
                   const dc_config *cfg,
                   const dc_shard_config *shard,
                   dc_error *err)
{
	dc_engine *e = NULL;
	size_t i;
	int ret = 0;

	(void)shard; /* one engine serves every folder of the fleet */
	*out = NULL;
	if (cfg->tenancy.model != DC_TENANCY_DATABASE)
		return dc_error_set(
		        err, DC_ECONFIG,
		        "tenancy.model: the sqlite engine supports 'database' only (one file per tenant)");
	if (!cfg->tenancy.glob && cfg->tenancy.nlist == 0)
		return dc_error_set(
		        err, DC_ECONFIG,
		        "tenancy: the sqlite engine needs 'glob' or 'list' to find the tenant files");
	e = calloc(1, sizeof(*e));
	if (!e)
		return dc_error_set(err, DC_ENOMEM, "out of memory");
	if (pthread_mutex_init(&e->mu, NULL) != 0) {
		free(e);
		return dc_error_set(err, DC_ENOMEM, "cannot create a mutex");
	}
	if (cfg->tenancy.glob && !(e->glob = dc_strdup(cfg->tenancy.glob)))
		goto oom;
	if (cfg->tenancy.nlist) {
		e->list = dc_malloc_array(cfg->tenancy.nlist, sizeof(*e->list));
		if (!e->list)
			goto oom;
		for (i = 0; i < cfg->tenancy.nlist; i++) {
			e->list[i] = dc_path_join(cfg->dir, cfg->tenancy.list[i]);
			if (!e->list[i])
				goto oom;
			e->nlist++;
		}
	}
	if (cfg->gates.lock_timeout_ms <= 0)
		e->busy_ms = 0;
	else if (cfg->gates.lock_timeout_ms > INT_MAX)
		e->busy_ms = INT_MAX;
	else
		e->busy_ms = (int)cfg->gates.lock_timeout_ms;
	e->edges_wanted = cfg->gates.foreign_key_check == DC_CHECK_CHANGED;
	e->graph_wanted = e->edges_wanted || cfg->gates.integrity_check == DC_CHECK_CHANGED;
	*out = e;
	e = NULL;
	goto out;
oom:
	ret = dc_error_set(err, DC_ENOMEM, "out of memory");
out:
	sq_close(e);
	return ret;
}

const dc_engine_ops dc_engine_sqlite = {
	.version = DC_ENGINE_OPS_VERSION,
	.name = "sqlite",
	.open = sq_open,
	.close = sq_close,
	.discover = dc_sqlite__discover,
	.connect = dc_sqlite__connect,
	.disconnect = dc_sqlite__disconnect,
	.enter = dc_sqlite__enter,
	.prefetch = dc_sqlite__prefetch,
	.lock_tenant = dc_sqlite__lock_tenant,
	.unlock_tenant = dc_sqlite__unlock_tenant,
	.begin = dc_sqlite__begin,
	.commit = dc_sqlite__commit,
	.rollback = dc_sqlite__rollback,
	.exec = dc_sqlite__exec,
	.query_bool = dc_sqlite__query_bool,
	.history_ensure = dc_sqlite__history_ensure,
	.history_read = dc_sqlite__history_read,
	.history_peek = dc_sqlite__history_peek,
	.history_write = dc_sqlite__history_write,
	.query_text = dc_sqlite__query_text,
	.check = dc_sqlite__check,
	.check_kinds = 1u << DC_CHECK_INTEGRITY | 1u << DC_CHECK_FOREIGN_KEYS,
	.backup = dc_sqlite__backup,
	.schema_fingerprint = dc_sqlite__schema_fingerprint,
};
