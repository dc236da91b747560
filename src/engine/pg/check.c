/*
 * The engine's checks (dc_engine_ops.check, per tenant in its transaction,
 * and .shard_check, per shard before the run): which file does each kind.
 * The kinds each does are the bits of check_kinds and shard_check_kinds in
 * pg.c's table; a kind not listed there is never asked, and is DC_EINVAL.
 */
#include "pg_internal.h"

int dc_pg__check(dc_conn *c,
                 dc_check_kind kind,
                 bool full,
                 dc_strbuf *out,
                 size_t max_rows,
                 dc_error *err)
{
	(void)full; /* the RLS check always covers the whole database */
	switch (kind) {
	case DC_CHECK_RLS:
		return dc_pg__rls_check(c, out, max_rows, err);
	default:
		return dc_pg__conn_fail(c, err, DC_EINVAL, NULL, NULL, 0, 0,
		                        "tenant '%s': the postgres engine has no check of kind %d",
		                        dc_pg__tenant_id(c), (int)kind);
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
