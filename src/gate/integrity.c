/*
 * integrity.c — integrity gates: the inputs of a run are what they claim
 * to be (the ledger verifies, deployclaw.sum matches, every migration
 * parses). A refusal of `ledger` or `sum_file` exits 4.
 */
#include <stdio.h>
#include <string.h>

#include <deployclaw/ledger.h>

#include "gate_internal.h"

/* Refuses with what `e` says (cut to fit the detail). */
static void refuse_with(dc_gate_result *res, const dc_error *e)
{
	char buf[1200];

	res->verdict = DC_GATE_REFUSE;
	snprintf(res->detail, sizeof(res->detail), "%.500s", dc_error_format(e, buf, sizeof(buf)));
}

int dc_gate__ledger(const dc_gate *gate, const dc_gate_ctx *ctx, dc_gate_result *res, dc_error *err)
{
	const dc_gate__preflight *pf = ctx->user;
	dc_ledger_verify_opts vo = DC_LEDGER_VERIFY_OPTIONS_INIT;
	dc_ledger_verify_result vr;
	dc_error verr = { 0 };
	int rc;

	(void)gate;
	(void)err;
	memset(&vr, 0, sizeof(vr));
	/* Every hash and link, and the signatures of the last entry and the head: the chain
	 * makes that signature vouch for every entry's content. `audit verify` checks all. */
	vo.pubkey = pf->ledger_pubkey;
	vo.flags = DC_LEDGER_VERIFY_FAST;
	rc = dc_ledger_verify(ctx->cfg->audit.ledger, &vo, &vr, &verr);
	res->measured = (double)vr.entries;
	/* no ledger and no head record saying there was one: a new ledger */
	if (rc == DC_ENOTFOUND) {
		res->verdict = DC_GATE_PASS;
		snprintf(res->detail, sizeof(res->detail), "ledger '%s' is new",
		         ctx->cfg->audit.ledger);
		return 0;
	}
	if (rc) {
		refuse_with(res, &verr);
		return 0;
	}
	res->verdict = DC_GATE_PASS;
	snprintf(res->detail, sizeof(res->detail),
	         "%lld entries, hash chain intact, last signature good", (long long)vr.entries);
	return 0;
}

int dc_gate__sum_file(const dc_gate *gate,
                      const dc_gate_ctx *ctx,
                      dc_gate_result *res,
                      dc_error *err)
{
	dc_error serr = { 0 };

	(void)gate;
	(void)err;
	if (dc_sum_check(ctx->set, &serr) != 0) {
		refuse_with(res, &serr);
		return 0;
	}
	res->verdict = DC_GATE_PASS;
	snprintf(res->detail, sizeof(res->detail), "deployclaw.sum matches %zu migrations",
	         ctx->set->count);
	return 0;
}

int dc_gate__parse(const dc_gate *gate, const dc_gate_ctx *ctx, dc_gate_result *res, dc_error *err)
{
	size_t i, k, stmts = 0;

	(void)gate;
	(void)err;
	/* The set was loaded by the parsers; a set that loaded is a set that parses. */
	for (i = 0; i < ctx->set->count; i++)
		for (k = 0; k < ctx->set->migrations[i].nphases; k++)
			stmts += ctx->set->migrations[i].phases[k].up.nstmts +
			         ctx->set->migrations[i].phases[k].down.nstmts;
	res->verdict = DC_GATE_PASS;
	res->measured = (double)stmts;
	snprintf(res->detail, sizeof(res->detail), "%zu migrations, %zu statements parse",
	         ctx->set->count, stmts);
	return 0;
}
