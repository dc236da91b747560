/*
 * gates.c — the built-in gates of a rollout, declared as data.
 *
 * Preflight gates see the whole plan (dc_rollout__preflight in ctx->user);
 * per-tenant gates run on the tenant's connection before its commit, so a
 * refusal rolls the tenant back.
 */
#include <stdio.h>
#include <string.h>

#include <deployclaw/ledger.h>

#include "rollout_internal.h"

/* Writes "'a', 'b', 'c' and 7 more" of the tenants matching `pick` into `out`. */
static size_t list_tenants(char *out,
                           size_t size,
                           const dc_rollout__preflight *pf,
                           bool (*pick)(const dc_rollout__preflight *, size_t))
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

static const char *first_problem(const dc_rollout__preflight *pf,
                                 bool (*pick)(const dc_rollout__preflight *, size_t))
{
	size_t i;

	for (i = 0; i < pf->ntenants; i++)
		if (pick(pf, i))
			return pf->todos[i].problem;
	return "";
}

static int gate_ledger(const dc_gate *gate,
                       const dc_gate_ctx *ctx,
                       dc_gate_result *res,
                       dc_error *err)
{
	dc_rollout__preflight *pf = ctx->user;
	dc_ledger_verify_opts vo = DC_LEDGER_VERIFY_OPTIONS_INIT;
	dc_ledger_verify_result vr;
	dc_error verr = { 0 };
	int rc;

	(void)gate;
	(void)err;
	memset(&vr, 0, sizeof(vr));
	/* Every hash and link, and the signatures of the last entry and the head: the chain
	 * makes that signature vouch for every entry's content. `audit verify` checks all. */
	vo.pubkey = pf->opts->ledger_pubkey;
	vo.flags = DC_LEDGER_VERIFY_FAST;
	rc = dc_ledger_verify(ctx->cfg->audit.ledger, &vo, &vr, &verr);
	pf->ledger_entries = vr.entries;
	res->measured = (double)vr.entries;
	/* no ledger and no head record saying there was one: a new ledger */
	if (rc == DC_ENOTFOUND) {
		res->verdict = DC_GATE_PASS;
		snprintf(res->detail, sizeof(res->detail), "ledger '%s' is new",
		         ctx->cfg->audit.ledger);
		return 0;
	}
	if (rc) {
		char buf[1200];

		res->verdict = DC_GATE_REFUSE;
		snprintf(res->detail, sizeof(res->detail), "%.500s",
		         dc_error_format(&verr, buf, sizeof(buf)));
		return 0;
	}
	res->verdict = DC_GATE_PASS;
	snprintf(res->detail, sizeof(res->detail),
	         "%lld entries, hash chain intact, last signature good", (long long)vr.entries);
	return 0;
}

static int gate_sum_file(const dc_gate *gate,
                         const dc_gate_ctx *ctx,
                         dc_gate_result *res,
                         dc_error *err)
{
	dc_error serr = { 0 };

	(void)gate;
	(void)err;
	if (dc_sum_check(ctx->set, &serr) != 0) {
		char buf[1200];

		res->verdict = DC_GATE_REFUSE;
		snprintf(res->detail, sizeof(res->detail), "%.500s",
		         dc_error_format(&serr, buf, sizeof(buf)));
		return 0;
	}
	res->verdict = DC_GATE_PASS;
	snprintf(res->detail, sizeof(res->detail), "deployclaw.sum matches %zu migrations",
	         ctx->set->count);
	return 0;
}

static int gate_parse(const dc_gate *gate,
                      const dc_gate_ctx *ctx,
                      dc_gate_result *res,
                      dc_error *err)
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

static bool has_down(const dc_migration *m)
{
	size_t k;

	for (k = 0; k < m->nphases; k++)
		if (m->phases[k].down.text && m->phases[k].down.nstmts > 0)
			return true;
	return false;
}

static int gate_require_down(const dc_gate *gate,
                             const dc_gate_ctx *ctx,
                             dc_gate_result *res,
                             dc_error *err)
{
	dc_rollout__preflight *pf = ctx->user;
	char names[400] = "";
	size_t i, k, n = 0, len = 0;
	bool rollback = pf->opts->direction == DC_ROLLOUT_ROLLBACK;

	(void)gate;
	(void)err;
	/* Every migration the plan touches, once. */
	for (i = 0; i < ctx->set->count; i++) {
		const dc_migration *m = &ctx->set->migrations[i];
		bool touched = false;

		for (k = 0; k < pf->ntenants && !touched; k++) {
			size_t j;

			for (j = 0; j < pf->todos[k].n; j++)
				if (pf->todos[k].migs[j] == m)
					touched = true;
		}
		if (!touched || has_down(m))
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

static bool pick_out_of_order(const dc_rollout__preflight *pf, size_t i)
{
	return pf->todos[i].out_of_order;
}

static int gate_out_of_order(const dc_gate *gate,
                             const dc_gate_ctx *ctx,
                             dc_gate_result *res,
                             dc_error *err)
{
	dc_rollout__preflight *pf = ctx->user;
	char names[300];
	size_t n;
	bool allow = pf->opts->allow_out_of_order || ctx->cfg->gates.allow_out_of_order;

	(void)gate;
	(void)err;
	n = pf->opts->direction == DC_ROLLOUT_APPLY
	            ? list_tenants(names, sizeof(names), pf, pick_out_of_order)
	            : 0;
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

static bool pick_drift(const dc_rollout__preflight *pf, size_t i)
{
	return pf->todos[i].drift;
}

static int gate_drift(const dc_gate *gate,
                      const dc_gate_ctx *ctx,
                      dc_gate_result *res,
                      dc_error *err)
{
	dc_rollout__preflight *pf = ctx->user;
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

/*
 * Per tenant, before its commit: the engine's own consistency checks, of
 * what the tenant's migration wrote (gates.*: true) or of the whole
 * database (full). Engines without such checks pass.
 */
static int gate_check(const dc_gate *gate,
                      const dc_gate_ctx *ctx,
                      dc_gate_result *res,
                      dc_error *err)
{
	bool integrity = strcmp(gate->name, "integrity_check") == 0;
	dc_check_scope scope =
	        integrity ? ctx->cfg->gates.integrity_check : ctx->cfg->gates.foreign_key_check;
	dc_strbuf out = DC_STRBUF_INIT;
	const char *what = scope == DC_CHECK_FULL ? "the whole database" : "the tables written";
	size_t i;
	int rc;

	if (!ctx->conn || !ctx->ops || !ctx->ops->check) {
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
	for (i = 0; i < out.len; i++)
		if (out.buf[i] == '\n')
			out.buf[i] = i + 1 == out.len ? '\0' : ';';
	res->verdict = DC_GATE_REFUSE;
	snprintf(res->detail, sizeof(res->detail), "%s: %.400s",
	         integrity ? "integrity check failed" : "foreign key violation", out.buf);
out:
	dc_strbuf_release(&out);
	return rc;
}

int dc_rollout__register_gates(dc_gate_registry *reg, const dc_config *cfg, dc_error *err)
{
	/* clang-format off */
	static const dc_gate builtin[] = {
		{ "ledger", "the audit ledger verifies (every link and signature)",
		  DC_GATE_PREFLIGHT, gate_ledger, 0, NULL },
		{ "sum_file", "deployclaw.sum matches the migrations",
		  DC_GATE_PREFLIGHT, gate_sum_file, 0, NULL },
		{ "migrations_parse", "every migration parses",
		  DC_GATE_PREFLIGHT, gate_parse, 0, NULL },
		{ "require_down", "every migration in the plan has a down",
		  DC_GATE_PREFLIGHT, gate_require_down, 0, NULL },
		{ "out_of_order", "no pending version is older than an applied one",
		  DC_GATE_PREFLIGHT, gate_out_of_order, 0, NULL },
		{ "drift", "every applied checksum matches its file",
		  DC_GATE_PREFLIGHT, gate_drift, 0, NULL },
		{ "integrity_check", "the tenant's database is intact before commit",
		  DC_GATE_AFTER_TENANT, gate_check, 0, NULL },
		{ "foreign_key_check", "no foreign key violation before commit",
		  DC_GATE_AFTER_TENANT, gate_check, 0, NULL },
	};
	/* clang-format on */
	size_t i;
	int rc;

	for (i = 0; i < sizeof(builtin) / sizeof(builtin[0]); i++)
		if ((rc = dc_gate_registry_add(reg, &builtin[i], err)) != 0)
			return rc;
	if (!cfg->gates.integrity_check &&
	    (rc = dc_gate_registry_enable(reg, "integrity_check", false, err)) != 0)
		return rc;
	if (!cfg->gates.foreign_key_check &&
	    (rc = dc_gate_registry_enable(reg, "foreign_key_check", false, err)) != 0)
		return rc;
	return 0;
}
