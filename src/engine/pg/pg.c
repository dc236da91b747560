/*
 * The PostgreSQL engine's operations table, and opening an engine for one
 * shard (pg_internal.h has the invariants the files of src/engine/pg/ rely
 * on).
 */
#include "pg_internal.h"

/* ------------------------------------------------------------------------ */
/* Engine                                                                   */

void dc_pg__close(dc_engine *e)
{
	size_t i;

	if (!e)
		return;
	if (e->admin)
		PQfinish(e->admin);
	for (i = 0; i < DC_PG_TENANTS_MAX_PARAMS; i++)
		free(e->discover_params[i]);
	free(e->discover_sql);
	free(e->shard);
	free(e->conninfo);
	free(e->app_name);
	free(e->shared_path);
	free(e->shared_array);
	free(e->run_as);
	dc_pg__roles_free(e);
	free(e->rls_column);
	free(e->rls_role);
	pthread_mutex_destroy(&e->mu);
	free(e);
}

/* ", \"public\", \"x\"": the shared schemas as identifiers, quoted as
 * PostgreSQL quotes them (doubled '"'), for the tenants' search_path. */
static char *shared_path(const dc_config *cfg)
{
	dc_strbuf sb = DC_STRBUF_INIT;
	const char *s;
	size_t i;

	for (i = 0; i < cfg->tenancy.nshared_schemas; i++) {
		dc_strbuf_adds(&sb, ", \"");
		for (s = cfg->tenancy.shared_schemas[i]; *s; s++) {
			if (*s == '"')
				dc_strbuf_addch(&sb, '"');
			dc_strbuf_addch(&sb, *s);
		}
		dc_strbuf_addch(&sb, '"');
	}
	return dc_strbuf_detach(&sb, NULL);
}

/* The shared schemas as a text[] literal, for the isolation check's query. */
static char *shared_array(const dc_config *cfg)
{
	dc_strbuf sb = DC_STRBUF_INIT;
	size_t i;

	dc_strbuf_addch(&sb, '{');
	for (i = 0; i < cfg->tenancy.nshared_schemas; i++)
		dc_pg__array_add(&sb, cfg->tenancy.shared_schemas[i]);
	dc_strbuf_addch(&sb, '}');
	return dc_strbuf_detach(&sb, NULL);
}

int dc_pg__open(dc_engine **out, const dc_config *cfg, const dc_shard_config *shard, dc_error *err)
{
	dc_engine *e = NULL;
	int ret = 0;

	*out = NULL;
	if (!shard || !shard->name)
		return dc_error_set(err, DC_ECONFIG,
		                    "shards: the postgres engine needs at least one shard");
	if (cfg->tenancy.model != DC_TENANCY_ROW && !cfg->tenancy.pattern && !cfg->tenancy.query &&
	    cfg->tenancy.nlist == 0)
		return dc_error_set(
		        err, DC_ECONFIG,
		        "tenancy: the postgres engine needs 'pattern', 'query' or 'list' to find the tenants");
	e = calloc(1, sizeof(*e));
	if (!e)
		return dc_error_set(err, DC_ENOMEM, "out of memory");
	if (pthread_mutex_init(&e->mu, NULL) != 0) {
		free(e);
		return dc_error_set(err, DC_ENOMEM, "cannot create a mutex");
	}
	e->model = cfg->tenancy.model;
	if (!(e->shard = dc_strdup(shard->name)) ||
	    !(e->conninfo = dc_strdup(shard->primary ? shard->primary : "")) ||
	    !(e->app_name = dc_strdup("deployclaw")) ||
	    (cfg->tenancy.run_as && !(e->run_as = dc_strdup(cfg->tenancy.run_as))))
		goto oom;
	if ((cfg->tenancy.column && !(e->rls_column = dc_strdup(cfg->tenancy.column))) ||
	    (cfg->tenancy.app_role && !(e->rls_role = dc_strdup(cfg->tenancy.app_role))))
		goto oom;
	if ((ret = dc_pg__discovery_prepare(e, cfg, shard, err)) != 0)
		goto out;
	if (!(e->shared_path = shared_path(cfg)) || !(e->shared_array = shared_array(cfg)))
		goto oom;
	snprintf(e->lock_timeout, sizeof(e->lock_timeout), "%lld",
	         (long long)(cfg->gates.lock_timeout_ms > 0 ? cfg->gates.lock_timeout_ms : 0));
	snprintf(e->statement_timeout, sizeof(e->statement_timeout), "%lld",
	         (long long)(cfg->gates.statement_timeout_ms > 0 ? cfg->gates.statement_timeout_ms
	                                                         : 0));
	*out = e;
	e = NULL;
	goto out;
oom:
	ret = dc_error_set(err, DC_ENOMEM, "out of memory");
out:
	dc_pg__close(e);
	return ret;
}

void dc_pg__set_run(dc_engine *e, const char *run_id)
{
	dc_strbuf sb = DC_STRBUF_INIT;
	char *name;

	dc_strbuf_adds(&sb, "deployclaw/");
	dc_strbuf_adds(&sb, run_id ? run_id : "");
	name = dc_strbuf_detach(&sb, NULL);
	if (!name)
		return; /* out of memory: connections keep "deployclaw" */
	free(e->app_name);
	e->app_name = name;
}

const dc_engine_ops dc_engine_pg = {
	.version = DC_ENGINE_OPS_VERSION,
	.name = "postgres",
	.open = dc_pg__open,
	.close = dc_pg__close,
	.set_run = dc_pg__set_run,
	.discover = dc_pg__discover,
	.connect = dc_pg__connect,
	.disconnect = dc_pg__disconnect,
	.enter = dc_pg__enter,
	.lock_tenant = dc_pg__lock_tenant,
	.unlock_tenant = dc_pg__unlock_tenant,
	.begin = dc_pg__begin,
	.commit = dc_pg__commit,
	.rollback = dc_pg__rollback,
	.autocommit_only = dc_pg__autocommit_only,
	.exec = dc_pg__exec,
	.query_bool = dc_pg__query_bool,
	.history_ensure = dc_pg__history_ensure,
	.history_read = dc_pg__history_read,
	.history_write = dc_pg__history_write,
	.query_text = dc_pg__query_text,
	.backup = NULL,
	.history_read_all = dc_pg__history_read_all,
	.schema_fingerprint = dc_pg__schema_fingerprint,
	.shard_history_read = dc_pg__shard_history_read,
	.shard_run = dc_pg__shard_run,
	.check = dc_pg__check,
	.check_kinds = 1u << DC_CHECK_ISOLATION | 1u << DC_CHECK_RLS,
	.shard_check = dc_pg__shard_check,
	.shard_check_kinds = 1u << DC_CHECK_ISOLATION | 1u << DC_CHECK_RLS,
};
