/*
 * The engine's checks: `check`, per tenant inside its open transaction before
 * its commit (the after_tenant gates ask it), and `shard_check`, per shard
 * before the run (the preflight gates ask it). Each kind lives in a file of
 * its own (isolation.c, rls.c, roles.c); this one hands the kind over, and
 * runs the per-tenant checks' queries. The kinds each does are the bits of
 * check_kinds and shard_check_kinds in pg.c's table; a kind not listed there
 * is never asked, and is DC_EINVAL.
 */
#include "pg_internal.h"

int dc_pg__check(dc_conn *c,
                 dc_check_kind kind,
                 bool full,
                 dc_strbuf *out,
                 size_t max_rows,
                 dc_error *err)
{
	switch (kind) {
	case DC_CHECK_ISOLATION:
		return dc_pg__check_isolation(c, full, out, max_rows, err);
	case DC_CHECK_RLS: /* always the whole database: the row model's tenant */
		return dc_pg__rls_check(c, out, max_rows, err);
	default:
		return dc_pg__conn_fail(c, err, DC_EINVAL, NULL, NULL, 0, 0,
		                        "tenant '%s' (shard '%s'): the postgres engine has no "
		                        "check of kind %d",
		                        dc_pg__tenant_id(c), c->engine->shard, (int)kind);
	}
}

int dc_pg__shard_check(dc_engine *e,
                       dc_check_kind kind,
                       const dc_tenant *tenants,
                       size_t n,
                       dc_strbuf *out,
                       size_t max_rows,
                       dc_error *err)
{
	switch (kind) {
	case DC_CHECK_ISOLATION:
		return dc_pg__roles_check(e, tenants, n, out, max_rows, err);
	case DC_CHECK_RLS: /* the row model's one tenant is the shard's database */
		return dc_pg__rls_shard_check(e, out, max_rows, err);
	default:
		return dc_pg__shard_fail(
		        e, err, DC_EINVAL, NULL,
		        "shard '%s': the postgres engine has no shard check of kind %d", e->shard,
		        (int)kind);
	}
}

int dc_pg__check_query(dc_conn *c,
                       const char *sql,
                       int nparams,
                       const char *const *params,
                       const char *what,
                       dc_strbuf *out,
                       size_t max_rows,
                       dc_error *err)
{
	pipe_q q = { sql, nparams, params };
	PGresult *res = NULL;
	size_t i;
	int ret;

	if ((ret = dc_pg__need_tenant(c, err)) != 0)
		return ret;
	if ((ret = dc_pg__pipe_run_tx(c, &q, 1, &res, what, err)) != 0)
		goto out;
	for (i = 0; i < max_rows && i < (size_t)PQntuples(res); i++) {
		if (PQnfields(res) > 0 && !PQgetisnull(res, (int)i, 0))
			dc_strbuf_adds(out, PQgetvalue(res, (int)i, 0));
		dc_strbuf_addch(out, '\n');
	}
	if (dc_strbuf_error(out))
		ret = dc_pg__oom(c, err);
out:
	PQclear(res);
	return ret;
}
