/*
 * dc_rewrite_safe: `plan --safe`, a PostgreSQL migration rewritten into
 * phases that never hold a blocking lock across a scan or a rewrite.
 *
 * Every statement is read through libpg_query's typed protobuf-c tree. New
 * statements are built from protobuf nodes (the original's, shallow-copied
 * and changed, or new ones) and printed with pg_query_deparse_protobuf where
 * its output is right; the short fixed ones (VALIDATE, DROP CONSTRAINT, the
 * batched UPDATE, the sync trigger) are printed here with identifiers quoted
 * as quote_identifier() does. The deparser of libpg_query 15-4.0.0 prints the
 * name of a CREATE INDEX and of an ADD CONSTRAINT without quotes ("Uq" comes
 * back as Uq): those names go into the tree as a generated placeholder, which
 * is then replaced by the quoted name. Every generated statement is parsed
 * again before it is written out.
 *
 * The output keeps the order of the original statements: statement N's last
 * phase runs before statement N+1's first, so nothing depends on a change
 * that has not happened yet. Consecutive pieces of the same kind share a
 * phase (catalog-only DDL with catalog-only DDL, validations with
 * validations); a concurrent index build or a backfill is a phase alone.
 *
 * This file drives it: per phase, per statement, which pattern applies
 * (detect.c), the patterns themselves (patterns.c, alter_type.c), the
 * statements they build (deparse.c, names.c) and the phases they land in
 * (phases.c).
 */
#include <pg_query/pg_query.pb-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pg_query.h>

#include <deployclaw/analysis.h>
#include <deployclaw/rewrite.h>

#include "../analysis_internal.h"
#include "rewrite_internal.h"

/* ------------------------------------------------------------------------ */
/* Pass-through                                                             */

/* The mechanical inverse of a statement kept as it is, or "" when none. */
static void inverse_of(rw *r, const PgQuery__Node *n, dc_strbuf *out)
{
	const PgQuery__AlterTableStmt *a;
	const PgQuery__AlterTableCmd *c;
	const PgQuery__Constraint *con;
	const PgQuery__ColumnDef *cd;
	const PgQuery__IndexStmt *ix;

	(void)r;
	switch (n->node_case) {
	case PG_QUERY__NODE__NODE_CREATE_STMT:
		if (!n->create_stmt->relation)
			return;
		dc_strbuf_adds(out, "DROP TABLE IF EXISTS ");
		dc_analysis__qualified(out, n->create_stmt->relation);
		return;
	case PG_QUERY__NODE__NODE_INDEX_STMT:
		ix = n->index_stmt;
		if (!ix->idxname || !ix->idxname[0])
			return;
		dc_strbuf_adds(out, ix->concurrent ? "DROP INDEX CONCURRENTLY IF EXISTS "
		                                   : "DROP INDEX IF EXISTS ");
		dc_analysis__qualified_name(out, ix->relation->schemaname, ix->idxname);
		return;
	case PG_QUERY__NODE__NODE_ALTER_TABLE_STMT:
		a = n->alter_table_stmt;
		if (a->objtype != PG_QUERY__OBJECT_TYPE__OBJECT_TABLE || a->n_cmds != 1 ||
		    a->cmds[0]->node_case != PG_QUERY__NODE__NODE_ALTER_TABLE_CMD)
			return;
		c = a->cmds[0]->alter_table_cmd;
		if (c->subtype == PG_QUERY__ALTER_TABLE_TYPE__AT_AddColumn &&
		    (cd = dc_rewrite__cmd_column(c))) {
			dc_rewrite__drop_if_exists(out, a->relation, "COLUMN", cd->colname);
		} else if (c->subtype == PG_QUERY__ALTER_TABLE_TYPE__AT_AddConstraint &&
		           (con = dc_rewrite__cmd_constraint(c)) && con->conname &&
		           con->conname[0]) {
			dc_rewrite__drop_if_exists(out, a->relation, "CONSTRAINT", con->conname);
		}
		return;
	default:
		return;
	}
}

static int passthrough(rw *r, const PgQuery__Node *n, const char *sql)
{
	dc_pg_stmt_info info;
	dc_strbuf down = DC_STRBUF_INIT;
	const char *hint = r->src && r->src->name ? r->src->name : "main";
	int rc;

	if ((rc = dc_pg_classify(sql, &info, r->err)) != 0)
		return rc;
	inverse_of(r, n, &down);
	if (dc_strbuf_error(&down)) {
		rc = dc_rewrite__oom(r);
		goto out;
	}
	if (!down.len)
		dc_rewrite__note(
		        r, "no mechanical inverse of '%.60s': give this phase a down by hand", sql);
	if (info.autocommit_only)
		rc = dc_rewrite__emit_sql(r, K_NONTX, hint, sql, down.len ? down.buf : NULL, false);
	else
		rc = dc_rewrite__emit_sql(r, K_DDL, hint, sql, down.len ? down.buf : NULL, false);
out:
	dc_strbuf_release(&down);
	return rc;
}

/* An ALTER TABLE of which some commands need a rewrite: those are
 * rewritten, runs of the others are kept together as one ALTER TABLE. */
static int do_alter(rw *r,
                    const PgQuery__AlterTableStmt *a,
                    const char *sql,
                    const PgQuery__Node *n)
{
	PgQuery__Node **keep = NULL;
	size_t i, nkeep = 0;
	int rc = 0;

	if (a->n_cmds == 1 && !dc_rewrite__cmd_needs_rewrite(a->cmds[0]->alter_table_cmd))
		return passthrough(r, n, sql);
	if (!(keep = dc_rewrite__alloc_nodes(r, a->n_cmds)))
		return dc_rewrite__oom(r);
	for (i = 0; i <= a->n_cmds; i++) {
		const PgQuery__AlterTableCmd *c =
		        i < a->n_cmds ? a->cmds[i]->alter_table_cmd : NULL;

		if (c && !dc_rewrite__cmd_needs_rewrite(c)) {
			keep[nkeep++] = a->cmds[i];
			continue;
		}
		if (nkeep) {
			PgQuery__Node *stmt = dc_rewrite__alter_stmt(r, a, keep[0]);
			dc_strbuf up = DC_STRBUF_INIT;

			if (!stmt) {
				rc = dc_rewrite__oom(r);
				goto out;
			}
			stmt->alter_table_stmt->n_cmds = nkeep;
			stmt->alter_table_stmt->cmds = keep;
			stmt->alter_table_stmt->missing_ok = a->missing_ok;
			rc = dc_rewrite__deparse(r, stmt, &up);
			if (rc == 0)
				rc = dc_rewrite__emit(r, K_DDL, "expand", &up, NULL);
			dc_strbuf_release(&up);
			if (rc)
				goto out;
			if (!(keep = dc_rewrite__alloc_nodes(r, a->n_cmds))) {
				rc = dc_rewrite__oom(r);
				goto out;
			}
			nkeep = 0;
		}
		if (!c)
			break;
		switch (c->subtype) {
		case PG_QUERY__ALTER_TABLE_TYPE__AT_AddColumn:
			rc = dc_rewrite__add_column(r, a, c);
			break;
		case PG_QUERY__ALTER_TABLE_TYPE__AT_AddConstraint:
			rc = dc_rewrite__constraint(r, a, dc_rewrite__cmd_constraint(c));
			break;
		case PG_QUERY__ALTER_TABLE_TYPE__AT_SetNotNull:
			rc = dc_rewrite__not_null(r, a->relation, c->name, true);
			break;
		case PG_QUERY__ALTER_TABLE_TYPE__AT_AlterColumnType:
			rc = dc_rewrite__alter_type(r, a, c);
			break;
		default:
			break;
		}
		if (rc)
			goto out;
	}
out:
	return rc;
}

/* ------------------------------------------------------------------------ */
/* Statements and phases                                                    */

static int parse_stmt(rw *r, const dc_statement *st, PgQuery__ParseResult **tree)
{
	PgQueryProtobufParseResult res = pg_query_parse_protobuf(st->sql);
	int rc = 0;

	*tree = NULL;
	if (res.error) {
		rc = dc_error_set_at(r->err, DC_EPARSE, st->file ? st->file : "", st->line, st->col,
		                     "%s", res.error->message);
		goto out;
	}
	*tree = pg_query__parse_result__unpack(NULL, res.parse_tree.len,
	                                       (const uint8_t *)res.parse_tree.data);
	if (!*tree)
		rc = dc_rewrite__oom(r);
out:
	pg_query_free_protobuf_parse_result(res);
	return rc;
}

static int rewrite_stmt(rw *r, const dc_statement *st, const PgQuery__Node *n)
{
	r->st = st;
	switch (n->node_case) {
	case PG_QUERY__NODE__NODE_TRANSACTION_STMT:
		dc_rewrite__note(
		        r, "dropped '%.40s': deployclaw runs each phase in its own transaction",
		        st->sql);
		return 0;
	case PG_QUERY__NODE__NODE_INDEX_STMT:
		if (!n->index_stmt->relation || !n->index_stmt->relation->inh) {
			dc_rewrite__note(
			        r,
			        "CREATE INDEX ON ONLY: a partitioned parent cannot be indexed "
			        "concurrently; build each partition's index concurrently and ATTACH it");
			return passthrough(r, n, st->sql);
		}
		if (!dc_rewrite__stmt_needs_rewrite(r, n))
			return passthrough(r, n, st->sql);
		return dc_rewrite__index(r, n->index_stmt);
	case PG_QUERY__NODE__NODE_ALTER_TABLE_STMT:
		if (!dc_rewrite__stmt_needs_rewrite(r, n))
			return passthrough(r, n, st->sql);
		return do_alter(r, n->alter_table_stmt, st->sql, n);
	default:
		return passthrough(r, n, st->sql);
	}
}

/* Notes what has no online rewrite in a statement kept as it is. */
static void note_unsupported(rw *r, const PgQuery__Node *n)
{
	const PgQuery__AlterTableStmt *a;
	size_t i;

	if (n->node_case != PG_QUERY__NODE__NODE_ALTER_TABLE_STMT)
		return;
	a = n->alter_table_stmt;
	for (i = 0; i < a->n_cmds; i++) {
		const PgQuery__AlterTableCmd *c = a->cmds[i]->alter_table_cmd;
		const PgQuery__ColumnDef *cd;
		const PgQuery__Constraint *con;
		colplan cp;

		if (c->subtype == PG_QUERY__ALTER_TABLE_TYPE__AT_AddColumn &&
		    (cd = dc_rewrite__cmd_column(c))) {
			dc_rewrite__plan_column(cd, &cp);
			if (cp.unsupported)
				dc_rewrite__note(
				        r,
				        "deployclaw: no online rewrite for adding the identity, generated "
				        "or serial column '%s' (it rewrites the table): kept as it is",
				        cd->colname);
		} else if (c->subtype == PG_QUERY__ALTER_TABLE_TYPE__AT_AddConstraint &&
		           (con = dc_rewrite__cmd_constraint(c)) &&
		           con->contype == PG_QUERY__CONSTR_TYPE__CONSTR_EXCLUSION) {
			dc_rewrite__note(
			        r,
			        "deployclaw: no online rewrite for an EXCLUDE constraint (it cannot be "
			        "NOT VALID nor use an existing index): kept as it is");
		}
	}
}

static int copy_verbatim(rw *r, const dc_phase *ph)
{
	out_phase *p = dc_rewrite__phase_new(r, K_VERBATIM, ph->name ? ph->name : "main");

	if (!p)
		return r->err && r->err->code ? r->err->code : DC_ENOMEM;
	p->transactional = ph->transactional;
	p->batch_rows = ph->batch_rows;
	p->up_text = ph->up.text ? ph->up.text : "";
	if (ph->down.text && !(p->down_text = dc_strdup(ph->down.text)))
		return dc_rewrite__oom(r);
	return 0;
}

static int rewrite_phase(rw *r, const dc_phase *ph)
{
	PgQuery__ParseResult **trees = NULL;
	bool rewrite = false;
	size_t i;
	int rc = 0;

	r->src = ph;
	dc_ptrvec_release(&r->created, free);
	if (ph->up.nstmts && !(trees = calloc(ph->up.nstmts, sizeof(*trees))))
		return dc_rewrite__oom(r);
	for (i = 0; i < ph->up.nstmts; i++) {
		const PgQuery__Node *n;
		dc_pg_stmt_info info;

		if ((rc = parse_stmt(r, &ph->up.stmts[i], &trees[i])) != 0)
			goto out;
		if (!trees[i]->n_stmts)
			continue;
		n = trees[i]->stmts[0]->stmt;
		if ((rc = dc_rewrite__remember_created(r, n)) != 0)
			goto out;
		if (dc_rewrite__stmt_needs_rewrite(r, n))
			rewrite = true;
		if (ph->transactional) {
			/* an autocommit-only statement in a transactional phase */
			if ((rc = dc_pg_classify(ph->up.stmts[i].sql, &info, r->err)) != 0)
				goto out;
			if (info.autocommit_only)
				rewrite = true;
		}
	}
	if (!rewrite || ph->batch_rows > 0) {
		for (i = 0; i < ph->up.nstmts; i++)
			if (trees[i]->n_stmts)
				note_unsupported(r, trees[i]->stmts[0]->stmt);
		rc = copy_verbatim(r, ph);
		goto out;
	}
	dc_ptrvec_release(&r->created, free);
	r->fresh = true;
	for (i = 0; i < ph->up.nstmts; i++) {
		const PgQuery__Node *n;

		if (!trees[i]->n_stmts)
			continue;
		n = trees[i]->stmts[0]->stmt;
		note_unsupported(r, n);
		if ((rc = rewrite_stmt(r, &ph->up.stmts[i], n)) != 0)
			goto out;
		if ((rc = dc_rewrite__remember_created(r, n)) != 0)
			goto out;
	}
out:
	if (rc && r->err && r->st && !r->err->file[0] && rc != DC_EPARSE) {
		/* point at the statement being rewritten */
		const char *f = r->st->file ? r->st->file : "";
		size_t k;

		for (k = 0; f[k] && k + 1 < sizeof(r->err->file); k++)
			r->err->file[k] = f[k];
		r->err->file[k] = '\0';
		r->err->line = r->st->line;
		r->err->col = r->st->col;
	}
	for (i = 0; trees && i < ph->up.nstmts; i++)
		if (trees[i])
			pg_query__parse_result__free_unpacked(trees[i], NULL);
	free(trees);
	r->st = NULL;
	return rc;
}

int dc_rewrite_safe(const dc_migration *m,
                    const char *source_path,
                    dc_strbuf *yaml_out,
                    dc_error *err)
{
	rw r;
	size_t i;
	int rc = 0;

	memset(&r, 0, sizeof(r));
	r.m = m;
	r.err = err;
	dc_strbuf_init(&r.pending, 0);
	dc_strbuf_init(&r.notes, 0);
	if (!m || !yaml_out)
		return dc_error_set(err, DC_EINVAL, "no migration to rewrite");
	if (!m->nphases) {
		rc = dc_error_set(err, DC_EINVAL, "migration '%s' has no phases",
		                  m->version ? m->version : "");
		goto out;
	}
	for (i = 0; i < m->nphases; i++)
		if ((rc = rewrite_phase(&r, &m->phases[i])) != 0)
			goto out;
	if (r.pending.len) {
		/* notes after the last statement */
		dc_strbuf_add(&r.notes, r.pending.buf, r.pending.len);
		dc_strbuf_reset(&r.pending);
	}
	rc = dc_rewrite__write_yaml(&r, source_path ? source_path : (m->path ? m->path : ""),
	                            yaml_out);
out:
	dc_ptrvec_release(&r.phases, dc_rewrite__phase_free);
	dc_ptrvec_release(&r.verify, free);
	dc_ptrvec_release(&r.arena, free);
	dc_ptrvec_release(&r.created, free);
	dc_strbuf_release(&r.pending);
	dc_strbuf_release(&r.notes);
	return rc;
}
