/*
 * Tenant discovery: which schemas or databases of a PostgreSQL shard are
 * tenants. dc_pg_tenants_sql is the one definition of it; the engine's
 * discover, dc_topology_collect and plan --live (dc_topology_tables) all
 * run the SQL it builds, so that they cannot disagree about a tenant.
 */
#include "pg_internal.h"

/* Appends `s` to a text[] literal being built in `sb` (after "{"). */
void dc_pg__array_add(dc_strbuf *sb, const char *s)
{
	if (sb->len > 1)
		dc_strbuf_addch(sb, ',');
	dc_strbuf_addch(sb, '"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			dc_strbuf_addch(sb, '\\');
		dc_strbuf_addch(sb, *s);
	}
	dc_strbuf_addch(sb, '"');
}

/* Appends "$N" for a new parameter `v` (heap, taken over; NULL is OOM). */
static void add_param(dc_strbuf *sql, char **params, int *nparams, char *v, const char *cast)
{
	if (!v) {
		sql->failed = DC_ENOMEM;
		return;
	}
	params[(*nparams)++] = v;
	dc_strbuf_addf(sql, "$%d%s", *nparams, cast);
}

/* Names as a text[] literal: {"a","b\"c"} (heap; NULL: out of memory). */
static char *list_literal(char *const *names, size_t n)
{
	dc_strbuf arr = DC_STRBUF_INIT;
	size_t i;

	dc_strbuf_addch(&arr, '{');
	for (i = 0; i < n; i++)
		dc_pg__array_add(&arr, names[i]);
	dc_strbuf_addch(&arr, '}');
	return dc_strbuf_detach(&arr, NULL);
}

int dc_pg_tenants_sql(dc_strbuf *sql,
                      char *params[DC_PG_TENANTS_MAX_PARAMS],
                      int *nparams,
                      const dc_config *cfg,
                      const char *shard,
                      dc_error *err)
{
	bool schema = cfg->tenancy.model == DC_TENANCY_SCHEMA;
	const char *sep = "";
	int i;

	*nparams = 0;
	for (i = 0; i < DC_PG_TENANTS_MAX_PARAMS; i++)
		params[i] = NULL;
	if (cfg->tenancy.model != DC_TENANCY_ROW && !cfg->tenancy.pattern && !cfg->tenancy.query &&
	    cfg->tenancy.nlist == 0)
		return dc_error_set(
		        err, DC_ECONFIG,
		        "tenancy: 'pattern', 'query' or 'list' is needed to find tenants");
	dc_strbuf_adds(sql, "WITH dc_found(tenant) AS (");
	if (cfg->tenancy.model == DC_TENANCY_ROW) {
		/* The row model's one tenant is the shard, named as in the config. */
		dc_strbuf_adds(sql, "SELECT ");
		add_param(sql, params, nparams, dc_strdup(shard ? shard : ""), "::text");
		goto tail;
	}
	if (cfg->tenancy.pattern) {
		/* System schemas and deployclaw's own never are tenants; `_` is a
		 * LIKE wildcard, hence the escaped pg\_ */
		dc_strbuf_adds(sql,
		               schema ? "SELECT nspname::text FROM pg_namespace WHERE nspname "
		                        "NOT LIKE 'pg\\_%' AND nspname NOT IN "
		                        "('information_schema', 'deployclaw') AND nspname LIKE "
		                      : "SELECT datname::text FROM pg_database WHERE datallowconn "
		                        "AND NOT datistemplate AND datname LIKE ");
		add_param(sql, params, nparams, dc_strdup(cfg->tenancy.pattern), "");
		sep = " UNION ";
	}
	if (cfg->tenancy.query) {
		const char *q = cfg->tenancy.query;
		size_t len = strlen(q);

		/* A trailing ';' would end the subquery. */
		while (len && strchr("; \t\r\n", q[len - 1]))
			len--;
		dc_strbuf_adds(sql, sep);
		dc_strbuf_adds(sql, "SELECT q.tenant::text FROM (\n");
		dc_strbuf_add(sql, q, len);
		dc_strbuf_adds(sql, "\n) AS q(tenant) WHERE q.tenant IS NOT NULL");
		sep = " UNION ";
	}
	if (cfg->tenancy.nlist) {
		/* A listed tenant lives on one shard: keep those that exist here. */
		dc_strbuf_adds(sql, sep);
		dc_strbuf_adds(sql,
		               schema ? "SELECT nspname::text FROM pg_namespace WHERE nspname = "
		                        "ANY("
		                      : "SELECT datname::text FROM pg_database WHERE datallowconn "
		                        "AND NOT datistemplate AND datname = ANY(");
		add_param(sql, params, nparams, list_literal(cfg->tenancy.list, cfg->tenancy.nlist),
		          "::text[])");
	}
tail:
	/* A tenant found twice (by the pattern and the list, or twice by the
	 * query) counts once; a schema the tenants share is none of them. */
	dc_strbuf_adds(sql, "), dc_tenants(tenant) AS (SELECT DISTINCT tenant FROM dc_found");
	if (schema && cfg->tenancy.nshared_schemas) {
		dc_strbuf_adds(sql, " WHERE tenant <> ALL(");
		add_param(sql, params, nparams,
		          list_literal(cfg->tenancy.shared_schemas, cfg->tenancy.nshared_schemas),
		          "::text[])");
	}
	dc_strbuf_adds(sql, ") ");
	if (dc_strbuf_error(sql)) {
		for (i = 0; i < *nparams; i++) {
			free(params[i]);
			params[i] = NULL;
		}
		*nparams = 0;
		return dc_error_set(err, DC_ENOMEM, "out of memory");
	}
	return 0;
}

/* "tenancy.pattern, tenancy.list": what finds the tenants, for messages. */
static void sources(char *out, size_t size, const dc_config *cfg)
{
	dc_strbuf sb = DC_STRBUF_INIT;

	if (cfg->tenancy.model == DC_TENANCY_ROW)
		dc_strbuf_adds(&sb, "tenancy.model");
	if (cfg->tenancy.model != DC_TENANCY_ROW && cfg->tenancy.pattern)
		dc_strbuf_adds(&sb, ", tenancy.pattern");
	if (cfg->tenancy.model != DC_TENANCY_ROW && cfg->tenancy.query)
		dc_strbuf_adds(&sb, ", tenancy.query");
	if (cfg->tenancy.model != DC_TENANCY_ROW && cfg->tenancy.nlist)
		dc_strbuf_adds(&sb, ", tenancy.list");
	dc_engine__copy_cut(out, size,
	                    dc_strbuf_error(&sb) ? "tenancy" : sb.buf + (sb.buf[0] == ',' ? 2 : 0));
	dc_strbuf_release(&sb);
}

/* Builds the engine's discovery query once, at open: the tenants in byte
 * order (as dc_engine_ops.discover promises), one more row than the limit
 * so that too many tenants is seen. `what` names the configured sources
 * for messages ("tenancy.query"). */
int dc_pg__discovery_prepare(dc_engine *e,
                             const dc_config *cfg,
                             const dc_shard_config *shard,
                             dc_error *err)
{
	dc_strbuf sql = DC_STRBUF_INIT;
	int ret;

	if ((ret = dc_pg_tenants_sql(&sql, e->discover_params, &e->discover_nparams, cfg,
	                             shard->name, err)) != 0)
		goto out;
	/* run_as 'owner': each schema's owner comes with it, read once per shard */
	if (e->run_as && strcmp(e->run_as, "owner") == 0)
		dc_strbuf_addf(&sql,
		               "SELECT d.tenant, r.rolname::text FROM dc_tenants d "
		               "LEFT JOIN pg_namespace n ON n.nspname = d.tenant "
		               "LEFT JOIN pg_roles r ON r.oid = n.nspowner "
		               "ORDER BY d.tenant COLLATE \"C\" LIMIT %zu",
		               MAX_TENANTS + 1);
	else
		dc_strbuf_addf(
		        &sql,
		        "SELECT tenant FROM dc_tenants ORDER BY tenant COLLATE \"C\" LIMIT %zu",
		        MAX_TENANTS + 1);
	sources(e->discover_what, sizeof(e->discover_what), cfg);
	if (!(e->discover_sql = dc_strbuf_detach(&sql, NULL)))
		ret = dc_error_set(err, DC_ENOMEM, "out of memory");
out:
	dc_strbuf_release(&sql);
	return ret;
}

/* The tenants of `res` (discovery's rows) as dc_tenants of the engine's
 * shard; the row model's tenant lives in the database of `pg`. */
static int tenants_from(dc_engine *e,
                        PGconn *pg,
                        const PGresult *res,
                        dc_tenant **tenants,
                        size_t *n)
{
	size_t i, nt = (size_t)PQntuples(res), got = 0;
	dc_tenant *ts;
	/* run_as 'owner': discovery's second column, each schema's owner */
	char **owners = NULL;
	int ret = 0;

	if (nt == 0)
		return 0;
	if (!(ts = calloc(nt, sizeof(*ts))))
		return DC_ENOMEM;
	if (PQnfields(res) > 1 && !(owners = calloc(nt, sizeof(*owners)))) {
		free(ts);
		return DC_ENOMEM;
	}
	for (i = 0; i < nt; i++) {
		dc_tenant *t = &ts[got];

		if (PQgetisnull(res, (int)i, 0))
			continue; /* the DISTINCT of a NULL-free union: never */
		if (owners && !PQgetisnull(res, (int)i, 1))
			owners[got] = PQgetvalue(res, (int)i, 1);
		got++;
		t->id = dc_strdup(PQgetvalue(res, (int)i, 0));
		t->shard = dc_strdup(e->shard);
		t->target = dc_strdup(e->model == DC_TENANCY_ROW ? PQdb(pg) : t->id ? t->id : "");
		if (!t->id || !t->shard || !t->target) {
			ret = DC_ENOMEM;
			break;
		}
	}
	/* the roles are kept for enter and the preflight (e->mu is held) */
	if (ret == 0 && e->run_as)
		ret = dc_pg__roles_keep(e, ts, owners, got);
	free(owners);
	if (ret) {
		dc_tenants_free(ts, got);
		return ret;
	}
	*tenants = ts;
	*n = got;
	return 0;
}

int dc_pg__discover(dc_engine *e, dc_tenant **tenants, size_t *n, dc_error *err)
{
	PGresult *res = NULL;
	PGconn *pg = NULL;
	char why[512];
	int ret;

	*tenants = NULL;
	*n = 0;
	pthread_mutex_lock(&e->mu);
	if ((ret = dc_pg__admin_conn(e, &pg, err)) != 0)
		goto out;
	res = PQexecParams(pg, e->discover_sql, e->discover_nparams, NULL,
	                   (const char *const *)e->discover_params, NULL, NULL, 0);
	if (!dc_pg__res_ok(res)) {
		if (res && PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY))
			dc_engine__copy_cut(why, sizeof(why),
			                    PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY));
		else
			dc_text_first_line(why, sizeof(why), PQerrorMessage(pg));
		ret = dc_pg__shard_fail(e, err, DC_EDB, dc_pg__res_state(res), "shard '%s': %s: %s",
		                        e->shard, e->discover_what, why);
		goto out;
	}
	if ((size_t)PQntuples(res) > MAX_TENANTS) {
		ret = dc_error_set(err, DC_ELIMIT, "shard '%s': more than %zu tenants", e->shard,
		                   MAX_TENANTS);
		goto out;
	}
	if ((ret = tenants_from(e, pg, res, tenants, n)) != 0)
		ret = dc_error_set(err, ret, "out of memory");
out:
	pthread_mutex_unlock(&e->mu);
	PQclear(res);
	return ret;
}
