/*
 * rls.c -- row tenancy's RLS gates (on when tenancy.column is set):
 *
 *  - `rls`, preflight: no migration of the plan weakens row-level security
 *    (DISABLE or NO FORCE ROW LEVEL SECURITY, DROP POLICY) without making it
 *    good later in the same migration (analysis/rls.c decides); then each
 *    shard of the run passes the engine's DC_CHECK_RLS (shard_check, one
 *    query per shard). A refusal exits 3 with nothing touched.
 *  - `rls_after`, after each tenant: the same DC_CHECK_RLS inside the
 *    tenant's transaction, before its commit (the engine's check), so a
 *    migration that creates an unprotected tenant table is rolled back.
 *
 * Two rows because one row carries one refusal code: a preflight refusal
 * stops the run (exit 3), an after-tenant one fails the tenant (exit 1).
 */
#include "analysis/rls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine_internal.h"
#include "gate_internal.h"
#include "util/text.h"

/* Problems listed per shard or tenant, the last saying how many more there
 * are: what fits a gate's one line. */
#define RLS_MAX_ROWS 4

/* The first weakening a migration leaves open, as file:line:col: why. */
static void describe_open(const dc_rls_tracker *t, char *out, size_t size)
{
	const dc_rls_weakening *w = &t->open[0];
	const dc_statement *st = w->tag;
	char why[400];
	int line = st->line, col = st->col;

	dc_text_advance(st->sql, strnlen(st->sql, (size_t)(w->loc < 0 ? 0 : w->loc)), &line, &col);
	dc_analysis__rls_describe(w, why, sizeof(why));
	snprintf(out, size, "%s:%d:%d: %s%s", st->file, line, col, why,
	         t->nopen > 1 ? " (and more)" : "");
}

static int feed(dc_rls_tracker *t, const dc_sql *sql, dc_error *err)
{
	const dc_statement *st;
	dc_error serr = { 0 };
	size_t i;
	int rc;

	for (i = 0; i < sql->nstmts; i++) {
		st = &sql->stmts[i];
		if ((rc = dc_analysis__rls_sql(t, st->sql, st, &serr)) != 0)
			return dc_error_set_at(err, rc, st->file, st->line, st->col, "%s",
			                       serr.message);
	}
	return 0;
}

/* A migration's ups in phase order, then its downs in the order a rollback
 * runs them: each a sequence of its own. Fills `why` for the first open one. */
static int scan_migration(dc_rls_tracker *t,
                          const dc_migration *m,
                          bool *open,
                          char *why,
                          size_t size,
                          dc_error *err)
{
	size_t k;
	int rc;

	memset(t, 0, sizeof(*t));
	for (k = 0; k < m->nphases; k++)
		if ((rc = feed(t, &m->phases[k].up, err)) != 0)
			return rc;
	if (t->nopen == 0)
		for (k = m->nphases; k-- > 0;)
			if ((rc = feed(t, &m->phases[k].down, err)) != 0)
				return rc;
	if ((*open = t->nopen > 0))
		describe_open(t, why, size);
	return 0;
}

/* The static half: the migrations of the plan. */
static int static_check(const dc_gate_ctx *ctx,
                        bool *refused,
                        char *why,
                        size_t size,
                        size_t *nmigs)
{
	const dc_gate__preflight *pf = ctx->user;
	dc_rls_tracker *t = calloc(1, sizeof(*t));
	dc_error perr = { 0 };
	size_t i;
	int rc = 0;

	*refused = false;
	*nmigs = 0;
	if (!t)
		return DC_ENOMEM;
	for (i = 0; i < ctx->set->count && !*refused; i++) {
		if (!dc_gate__in_plan(pf, ctx->set, &ctx->set->migrations[i]))
			continue;
		++*nmigs;
		if ((rc = scan_migration(t, &ctx->set->migrations[i], refused, why, size, &perr)) !=
		    0) {
			char buf[600];

			/* a statement that does not parse: migrations_parse names it too */
			*refused = true;
			snprintf(why, size, "%.500s", dc_error_format(&perr, buf, sizeof(buf)));
			rc = 0;
			break;
		}
	}
	free(t);
	return rc;
}

/* The dynamic half: each shard with tenants in the run, up to the first that
 * finds something. */
typedef struct rls_scan {
	dc_strbuf out;
	size_t nshards;
	char *why;
	size_t size;
	dc_error *err;
} rls_scan;

static int rls_shard(void *ctx,
                     const dc_engine_ops *ops,
                     dc_engine *e,
                     const dc_tenant *tenants,
                     size_t n)
{
	rls_scan *s = ctx;
	char lines[440];
	int rc;

	s->nshards++;
	dc_strbuf_reset(&s->out);
	if ((rc = ops->shard_check(e, DC_CHECK_RLS, tenants, n, &s->out, RLS_MAX_ROWS, s->err)) !=
	    0)
		return rc;
	if (!s->out.len)
		return 0;
	dc_gate__join_lines(&s->out, lines, sizeof(lines));
	snprintf(s->why, s->size, "shard '%s': %s", tenants[0].shard, lines);
	return 1; /* refused: the first shard at fault is named */
}

static int shard_checks(const dc_gate__preflight *pf,
                        bool *refused,
                        char *why,
                        size_t size,
                        size_t *nshards,
                        dc_error *err)
{
	rls_scan s = { DC_STRBUF_INIT, 0, why, size, err };
	int rc = dc_gate__each_shard(pf, rls_shard, &s);

	*refused = rc == 1;
	*nshards = s.nshards;
	dc_strbuf_release(&s.out);
	return rc == 1 ? 0 : rc;
}

int dc_gate__rls(const dc_gate *gate, const dc_gate_ctx *ctx, dc_gate_result *res, dc_error *err)
{
	const dc_gate__preflight *pf = ctx->user;
	size_t nmigs = 0, nshards = 0;
	bool refused = false;
	int rc;

	(void)gate;
	if ((rc = static_check(ctx, &refused, res->detail, sizeof(res->detail), &nmigs)) != 0)
		return dc_error_set(err, rc, "out of memory");
	if (refused) {
		res->verdict = DC_GATE_REFUSE;
		return 0;
	}
	if (!dc_engine__does_check(pf->ops, DC_CHECK_RLS, true))
		return dc_error_set(err, DC_EINVAL,
		                    "the %s engine cannot check row-level security before the run",
		                    pf->ops ? pf->ops->name : "?");
	if ((rc = shard_checks(pf, &refused, res->detail, sizeof(res->detail), &nshards, err)) != 0)
		return rc;
	if (refused) {
		res->verdict = DC_GATE_REFUSE;
		return 0;
	}
	res->verdict = DC_GATE_PASS;
	snprintf(res->detail, sizeof(res->detail),
	         "%zu migration%s in the plan keep row-level security; on %zu shard%s every table "
	         "with '%s' has it enabled, forced and a policy on the column, and '%s' cannot "
	         "bypass it",
	         nmigs, nmigs == 1 ? "" : "s", nshards, nshards == 1 ? "" : "s",
	         ctx->cfg->tenancy.column, ctx->cfg->tenancy.app_role);
	return 0;
}

int dc_gate__rls_after(const dc_gate *gate,
                       const dc_gate_ctx *ctx,
                       dc_gate_result *res,
                       dc_error *err)
{
	dc_strbuf out = DC_STRBUF_INIT;
	int rc;

	(void)gate;
	if (!ctx->conn || !dc_engine__does_check(ctx->ops, DC_CHECK_RLS, false))
		return dc_error_set(
		        err, DC_EINVAL,
		        "the %s engine cannot check row-level security before the commit",
		        ctx->ops ? ctx->ops->name : "?");
	if ((rc = ctx->ops->check(ctx->conn, DC_CHECK_RLS, true, &out, RLS_MAX_ROWS, err)) != 0)
		goto out;
	if (out.len == 0) {
		res->verdict = DC_GATE_PASS;
		snprintf(
		        res->detail, sizeof(res->detail),
		        "every table with '%s' has row-level security enabled, forced and a policy "
		        "on the column",
		        ctx->cfg->tenancy.column);
		goto out;
	}
	res->verdict = DC_GATE_REFUSE;
	memcpy(res->detail, "row-level security: ", 20);
	dc_gate__join_lines(&out, res->detail + 20, sizeof(res->detail) - 20);
out:
	dc_strbuf_release(&out);
	return rc;
}
