/*
 * isolation.c — the isolation gates. `isolation` (preflight): on
 * PostgreSQL, no statement of a migration the plan runs (up, down or
 * verify) gets around the tenant's isolation. What counts is
 * analysis/isolation.c's, which lint asks too (DC501, DC504), so `lint` and
 * `apply` give the same answer. `isolation_runtime` (after_tenant): the
 * engine's check that the tenant's transaction, dynamic SQL included, stayed
 * in its search_path, role and schema. SQLite's tenants are files, confined
 * by its authorizer: neither applies there.
 */
#include "analysis/isolation.h"

#include <stdio.h>
#include <string.h>

#include "engine/engine_internal.h"
#include "gate_internal.h"
#include "util/text.h"

typedef struct scan {
	const dc_sql *sql;
	const dc_statement *st;
	size_t n;        /* findings */
	char first[400]; /* file:line:col: what, of the first */
} scan;

/* The line and column of byte `off` of a statement's text. A block of SQL
 * starts its lines at its own column: 1 in a .sql file, the indentation of a
 * YAML block scalar (whose text has it removed). */
static void position(const dc_sql *sql, const dc_statement *st, int off, int *line, int *col)
{
	*line = st->line;
	*col = st->col;
	dc_text_advance(st->sql, strnlen(st->sql, (size_t)off), line, col);
	if (*line > st->line && sql->col > 1)
		*col += sql->col - 1;
}

static int found(void *ctx, unsigned kind, int loc, const char *msg)
{
	scan *s = ctx;
	int line, col;

	(void)kind;
	if (s->n++ == 0) {
		position(s->sql, s->st, loc < 0 ? 0 : loc, &line, &col);
		snprintf(s->first, sizeof(s->first), "%s:%d:%d: %s", s->st->file, line, col, msg);
	}
	return 0;
}

static int scan_sql(scan *s, const dc_sql *sql, const dc_isolation_opts *o, dc_error *err)
{
	size_t i;
	int rc;

	s->sql = sql;
	for (i = 0; i < sql->nstmts; i++) {
		s->st = &sql->stmts[i];
		if ((rc = dc_analysis__isolation_sql(s->st->sql, o, found, s, err)) != 0)
			return rc;
	}
	return 0;
}

static int scan_migration(scan *s, const dc_migration *m, const dc_isolation_opts *o, dc_error *err)
{
	size_t k;
	int rc = 0;

	for (k = 0; k < m->nphases && !rc; k++)
		if ((rc = scan_sql(s, &m->phases[k].up, o, err)) == 0)
			rc = scan_sql(s, &m->phases[k].down, o, err);
	for (k = 0; k < m->nverify && !rc; k++)
		rc = scan_sql(s, &m->verify[k], o, err);
	return rc;
}

int dc_gate__isolation(const dc_gate *gate,
                       const dc_gate_ctx *ctx,
                       dc_gate_result *res,
                       dc_error *err)
{
	const dc_gate__preflight *pf = ctx->user;
	/* gates.isolation.dynamic_sql: allow lets EXECUTE of strings through (the run-time
	 * checks still apply) */
	dc_isolation_opts o = { .kinds = ctx->cfg->gates.isolation_allow_dynamic_sql
		                                 ? DC_ISO_ALL & ~(unsigned)DC_ISO_DYNAMIC
		                                 : DC_ISO_ALL,
		                .schema_tenancy = ctx->cfg->tenancy.model == DC_TENANCY_SCHEMA,
		                .shared = (const char *const *)ctx->cfg->tenancy.shared_schemas,
		                .nshared = ctx->cfg->tenancy.nshared_schemas };
	dc_isolation_opts shard_o;
	scan s;
	dc_error perr = { 0 };
	size_t i, nmigs = 0;
	int rc;

	(void)gate;
	(void)err;
	memset(&s, 0, sizeof(s));
	if (ctx->cfg->engine != DC_ENGINE_POSTGRES) {
		res->verdict = DC_GATE_PASS;
		snprintf(res->detail, sizeof(res->detail),
		         "SQLite: each tenant is a file of its own, and the engine refuses what "
		         "reaches another (ATTACH, VACUUM INTO, load_extension) or defeats its "
		         "rollback (writable_schema, journal_mode OFF or MEMORY)");
		return 0;
	}
	/* a shard migration (`scope: shard`) is where shared objects belong: it
	 * runs in the shard's database, in no tenant's schema, so the tenant-schema
	 * checks are not its own; the rest (deployclaw's schema, the session, the
	 * world outside, dynamic SQL) are */
	shard_o = o;
	shard_o.schema_tenancy = false;
	for (i = 0; i < ctx->set->count; i++) {
		const dc_migration *m = &ctx->set->migrations[i];

		if (!dc_gate__in_plan(pf, ctx->set, m))
			continue;
		nmigs++;
		if ((rc = scan_migration(&s, m, m->scope == DC_SCOPE_SHARD ? &shard_o : &o,
		                         &perr)) != 0) {
			char buf[600];

			res->verdict = DC_GATE_REFUSE;
			snprintf(res->detail, sizeof(res->detail), "%s:%d:%d: %.400s", s.st->file,
			         s.st->line, s.st->col, dc_error_format(&perr, buf, sizeof(buf)));
			return 0;
		}
	}
	res->measured = (double)s.n;
	if (s.n == 0) {
		res->verdict = DC_GATE_PASS;
		snprintf(res->detail, sizeof(res->detail),
		         "%zu migration%s in the plan stay in the tenant", nmigs,
		         nmigs == 1 ? "" : "s");
		return 0;
	}
	res->verdict = DC_GATE_REFUSE;
	snprintf(res->detail, sizeof(res->detail), "%.420s%s", s.first,
	         s.n > 1 ? " (and more: deployclaw lint lists them, DC501/DC504)" : "");
	return 0;
}

/* Most problem lines one shard's run_as check returns (the detail names the
 * first; more only says there are more). */
#define RUN_AS_MAX_ROWS 8

/* The run_as gate's walk over the shards: each one's problem lines, appended. */
typedef struct run_as_scan {
	dc_strbuf out;
	size_t nshards;
	dc_error *err;
} run_as_scan;

static int run_as_shard(void *ctx,
                        const dc_engine_ops *ops,
                        dc_engine *e,
                        const dc_tenant *tenants,
                        size_t n)
{
	run_as_scan *s = ctx;

	s->nshards++;
	return ops->shard_check(e, DC_CHECK_ISOLATION, tenants, n, &s->out, RUN_AS_MAX_ROWS,
	                        s->err);
}

/*
 * tenancy.run_as: every shard says, in one query, whether the roles the
 * tenants will run as stop what they should (the engine's shard_check,
 * DC_CHECK_ISOLATION): each exists, none is a superuser or has BYPASSRLS,
 * none can use or create in another tenant's schema or in deployclaw's.
 * Refused before any tenant is touched, naming the tenant and shard.
 */
int dc_gate__run_as(const dc_gate *gate, const dc_gate_ctx *ctx, dc_gate_result *res, dc_error *err)
{
	const dc_gate__preflight *pf = ctx->user;
	run_as_scan s = { DC_STRBUF_INIT, 0, err };
	size_t len, nlines = 0, i;
	int rc;

	(void)gate;
	if (!pf->ops || !dc_engine__does_check(pf->ops, DC_CHECK_ISOLATION, true)) {
		res->verdict = DC_GATE_REFUSE;
		snprintf(res->detail, sizeof(res->detail),
		         "tenancy.run_as: engine '%s' cannot check roles",
		         pf->ops ? pf->ops->name : "?");
		return 0;
	}
	if ((rc = dc_gate__each_shard(pf, run_as_shard, &s)) != 0)
		goto out;
	for (i = 0; i < s.out.len; i++)
		nlines += s.out.buf[i] == '\n';
	res->measured = (double)nlines;
	if (nlines == 0) {
		res->verdict = DC_GATE_PASS;
		snprintf(res->detail, sizeof(res->detail),
		         "%zu tenant role%s on %zu shard%s isolated", pf->ntenants,
		         pf->ntenants == 1 ? "" : "s", s.nshards, s.nshards == 1 ? "" : "s");
		goto out;
	}
	res->verdict = DC_GATE_REFUSE;
	len = strcspn(s.out.buf, "\n");
	snprintf(res->detail, sizeof(res->detail), "%.*s%s", (int)(len < 480 ? len : 480),
	         s.out.buf, nlines > 1 ? " (and more)" : "");
out:
	dc_strbuf_release(&s.out);
	return rc;
}

/*
 * The engine's run-time isolation check of the tenant's transaction, before
 * its commit. With gates.isolation.dynamic_sql: allow, statements the static
 * gate could not read ran, so the check also reads the catalogs (`full`):
 * dearer, and only then worth it.
 */
int dc_gate__isolation_runtime(const dc_gate *gate,
                               const dc_gate_ctx *ctx,
                               dc_gate_result *res,
                               dc_error *err)
{
	bool full = ctx->cfg->gates.isolation_allow_dynamic_sql;
	dc_strbuf out = DC_STRBUF_INIT;
	char lines[420];
	int rc;

	(void)gate;
	if (!ctx->conn || !dc_engine__does_check(ctx->ops, DC_CHECK_ISOLATION, false)) {
		res->verdict = DC_GATE_PASS;
		snprintf(res->detail, sizeof(res->detail), "not applicable to this engine");
		return 0;
	}
	if ((rc = ctx->ops->check(ctx->conn, DC_CHECK_ISOLATION, full, &out, 10, err)) != 0)
		goto out;
	if (out.len == 0) {
		res->verdict = DC_GATE_PASS;
		snprintf(res->detail, sizeof(res->detail),
		         "the transaction stayed in the tenant's search_path, role and schema%s",
		         full ? ", catalogs included" : "");
		goto out;
	}
	res->measured = (double)dc_gate__join_lines(&out, lines, sizeof(lines));
	res->verdict = DC_GATE_REFUSE;
	snprintf(res->detail, sizeof(res->detail), "the transaction left the tenant: %s", lines);
out:
	dc_strbuf_release(&out);
	return rc;
}
