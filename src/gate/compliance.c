/*
 * compliance.c — compliance gates: what policy requires of the plan before
 * anything is touched.
 */
#include <stdio.h>
#include <string.h>

#include "gate_internal.h"

bool dc_gate__in_plan(const dc_gate__preflight *pf,
                      const dc_migration_set *set,
                      const dc_migration *m)
{
	size_t i = (size_t)(m - set->migrations);

	return pf->planned && i < set->count && pf->planned[i];
}

static bool has_down(const dc_migration *m)
{
	size_t k;

	for (k = 0; k < m->nphases; k++)
		if (m->phases[k].down.text && m->phases[k].down.nstmts > 0)
			return true;
	return false;
}

int dc_gate__require_down(const dc_gate *gate,
                          const dc_gate_ctx *ctx,
                          dc_gate_result *res,
                          dc_error *err)
{
	const dc_gate__preflight *pf = ctx->user;
	char names[400] = "";
	size_t i, n = 0, len = 0;
	bool rollback = pf->rollback;

	(void)gate;
	(void)err;
	/* Every migration the plan touches, once. */
	for (i = 0; i < ctx->set->count; i++) {
		const dc_migration *m = &ctx->set->migrations[i];

		if (!dc_gate__in_plan(pf, ctx->set, m) || has_down(m))
			continue;
		if (n < 5 && len + 8 < sizeof(names))
			len += (size_t)snprintf(names + len, sizeof(names) - len, "%s'%s'",
			                        n ? ", " : "", m->version);
		n++;
	}
	res->measured = (double)n;
	if (n == 0) {
		res->verdict = DC_GATE_PASS;
		snprintf(res->detail, sizeof(res->detail),
		         "every migration in the plan has a down");
	} else {
		/* a rollback cannot proceed without downs, whatever the config says */
		res->verdict =
		        rollback || ctx->cfg->gates.require_down ? DC_GATE_REFUSE : DC_GATE_WARN;
		snprintf(res->detail, sizeof(res->detail),
		         "%zu migration%s without a down: %.300s%s", n, n == 1 ? "" : "s", names,
		         rollback ? "" : " (gates.require_down)");
	}
	return 0;
}
