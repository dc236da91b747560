/*
 * ordering.c — ordering gates: every tenant's history agrees with the
 * migration set (nothing pending below an applied version, no applied
 * checksum that differs from its file). They see the whole plan
 * (dc_gate__preflight in ctx->user).
 */
#include <stdio.h>
#include <string.h>

#include "gate_internal.h"

/* Writes "'a', 'b', 'c' and 7 more" of the tenants matching `pick` into `out`. */
static size_t list_tenants(char *out,
                           size_t size,
                           const dc_gate__preflight *pf,
                           bool (*pick)(const dc_gate__preflight *, size_t))
{
	dc_strbuf sb = DC_STRBUF_INIT;
	size_t i, n = 0, len;

	for (i = 0; i < pf->ntenants; i++) {
		if (!pick(pf, i))
			continue;
		if (n < 5)
			dc_strbuf_addf(&sb, "%s'%s'", n ? ", " : "", pf->tenants[i].id);
		n++;
	}
	if (n > 5)
		dc_strbuf_addf(&sb, " and %zu more", n - 5);
	len = sb.len < size - 1 ? sb.len : size - 1;
	memcpy(out, sb.buf, len);
	out[len] = '\0';
	dc_strbuf_release(&sb);
	return n;
}

static const char *first_problem(const dc_gate__preflight *pf,
                                 bool (*pick)(const dc_gate__preflight *, size_t))
{
	size_t i;

	for (i = 0; i < pf->ntenants; i++)
		if (pick(pf, i))
			return pf->todos[i].problem;
	return "";
}

static bool pick_out_of_order(const dc_gate__preflight *pf, size_t i)
{
	return pf->todos[i].out_of_order;
}

int dc_gate__out_of_order(const dc_gate *gate,
                          const dc_gate_ctx *ctx,
                          dc_gate_result *res,
                          dc_error *err)
{
	const dc_gate__preflight *pf = ctx->user;
	char names[300];
	size_t n;
	bool allow = pf->allow_out_of_order || ctx->cfg->gates.allow_out_of_order;

	(void)gate;
	(void)err;
	n = !pf->rollback ? list_tenants(names, sizeof(names), pf, pick_out_of_order) : 0;
	res->measured = (double)n;
	if (n == 0) {
		res->verdict = DC_GATE_PASS;
		snprintf(res->detail, sizeof(res->detail), "no tenant is out of order");
		return 0;
	}
	res->verdict = allow ? DC_GATE_WARN : DC_GATE_REFUSE;
	snprintf(res->detail, sizeof(res->detail), "%zu tenant%s out of order (%.200s): %.150s%s",
	         n, n == 1 ? "" : "s", names, first_problem(pf, pick_out_of_order),
	         allow ? "" : "; pass --allow-out-of-order to apply anyway");
	return 0;
}

static bool pick_drift(const dc_gate__preflight *pf, size_t i)
{
	return pf->todos[i].drift;
}

int dc_gate__drift(const dc_gate *gate, const dc_gate_ctx *ctx, dc_gate_result *res, dc_error *err)
{
	const dc_gate__preflight *pf = ctx->user;
	char names[300];
	size_t n = list_tenants(names, sizeof(names), pf, pick_drift);

	(void)gate;
	(void)err;
	res->measured = (double)n;
	if (n == 0) {
		res->verdict = DC_GATE_PASS;
		snprintf(res->detail, sizeof(res->detail),
		         "every applied checksum matches its file");
		return 0;
	}
	res->verdict = DC_GATE_REFUSE;
	snprintf(res->detail, sizeof(res->detail), "%zu tenant%s drifted (%.200s): %.200s", n,
	         n == 1 ? "" : "s", names, first_problem(pf, pick_drift));
	return 0;
}
