/*
 * consistency.c — consistency gates: per tenant, on its connection before
 * its commit, so a refusal rolls the tenant back.
 */
#include <stdio.h>
#include <string.h>

#include "engine/engine_internal.h"
#include "gate_internal.h"

/*
 * The engine's own consistency checks, of what the tenant's migration wrote
 * (gates.*: true) or of the whole database (full). Engines without such
 * checks pass.
 */
static int engine_check(bool integrity,
                        dc_check_scope scope,
                        const dc_gate_ctx *ctx,
                        dc_gate_result *res,
                        dc_error *err)
{
	dc_strbuf out = DC_STRBUF_INIT;
	const char *what = scope == DC_CHECK_FULL ? "the whole database" : "the tables written";
	char lines[400];
	int rc;

	if (!ctx->conn ||
	    !dc_engine__does_check(ctx->ops, integrity ? DC_CHECK_INTEGRITY : DC_CHECK_FOREIGN_KEYS,
	                           false)) {
		res->verdict = DC_GATE_PASS;
		snprintf(res->detail, sizeof(res->detail), "not applicable to this engine");
		return 0;
	}
	rc = ctx->ops->check(ctx->conn, integrity ? DC_CHECK_INTEGRITY : DC_CHECK_FOREIGN_KEYS,
	                     scope == DC_CHECK_FULL, &out, 10, err);
	if (rc)
		goto out;
	if (out.len == 0) {
		res->verdict = DC_GATE_PASS;
		snprintf(res->detail, sizeof(res->detail), "%s: %s", what,
		         integrity ? "integrity ok" : "no foreign key violation");
		goto out;
	}
	dc_gate__join_lines(&out, lines, sizeof(lines));
	res->verdict = DC_GATE_REFUSE;
	snprintf(res->detail, sizeof(res->detail), "%s: %s",
	         integrity ? "integrity check failed" : "foreign key violation", lines);
out:
	dc_strbuf_release(&out);
	return rc;
}

int dc_gate__integrity_check(const dc_gate *gate,
                             const dc_gate_ctx *ctx,
                             dc_gate_result *res,
                             dc_error *err)
{
	(void)gate;
	return engine_check(true, ctx->cfg->gates.integrity_check, ctx, res, err);
}

int dc_gate__foreign_key_check(const dc_gate *gate,
                               const dc_gate_ctx *ctx,
                               dc_gate_result *res,
                               dc_error *err)
{
	(void)gate;
	return engine_check(false, ctx->cfg->gates.foreign_key_check, ctx, res, err);
}
