/*
 * plan --safe: ALTER COLUMN TYPE that rewrites the table, as expand (a new
 * column kept in step by a trigger), a batched copy, and contract (the swap,
 * after an application deploy).
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

/* A ColumnRef changed by qualify_new, to put back before the parse tree
 * it belongs to is freed. */
typedef struct saved_ref {
	PgQuery__ColumnRef *ref;
	size_t n_fields;
	PgQuery__Node **fields;
} saved_ref;

typedef struct qualify_ctx {
	rw *r;
	dc_ptrvec saved; /* saved_ref *, in the arena */
} qualify_ctx;

/* Qualifies column references with NEW (for the trigger body): `col` and
 * `tbl.col` both become `new.col`. */
static int qualify_new(void *ctx, PgQuery__ColumnRef *ref)
{
	qualify_ctx *q = ctx;
	saved_ref *sv;
	PgQuery__Node **fields;

	if (ref->n_fields < 1 || ref->n_fields > 2 ||
	    !dc_analysis__str(ref->fields[ref->n_fields - 1]))
		return 0;
	if (!(sv = dc_rewrite__alloc(q->r, sizeof(*sv))) || dc_ptrvec_push(&q->saved, sv) != 0 ||
	    !(fields = dc_rewrite__alloc_nodes(q->r, 2)) ||
	    !(fields[0] = dc_rewrite__string_node(q->r, "new")))
		return dc_rewrite__oom(q->r);
	sv->ref = ref;
	sv->n_fields = ref->n_fields;
	sv->fields = ref->fields;
	fields[1] = ref->fields[ref->n_fields - 1];
	ref->fields = fields;
	ref->n_fields = 2;
	return 0;
}

static void qualify_undo(qualify_ctx *q)
{
	size_t i;

	for (i = q->saved.len; i > 0; i--) {
		saved_ref *sv = q->saved.items[i - 1];

		sv->ref->n_fields = sv->n_fields;
		sv->ref->fields = sv->fields;
	}
	dc_ptrvec_release(&q->saved, NULL);
}

/* ALTER COLUMN TYPE that rewrites: new column kept in step by a trigger,
 * batched copy, then the swap. */
int dc_rewrite__alter_type(rw *r,
                           const PgQuery__AlterTableStmt *a,
                           const PgQuery__AlterTableCmd *cmd)
{
	const PgQuery__ColumnDef *cd = dc_rewrite__cmd_column(cmd);
	const PgQuery__RangeVar *rel = a->relation;
	const char *col = cmd->name;
	dc_strbuf newcol = DC_STRBUF_INIT, fn = DC_STRBUF_INIT, fnq = DC_STRBUF_INIT;
	dc_strbuf expr = DC_STRBUF_INIT, newexpr = DC_STRBUF_INIT;
	dc_strbuf up = DC_STRBUF_INIT, down = DC_STRBUF_INIT, tag = DC_STRBUF_INIT;
	PgQuery__ColumnDef *ncd = dc_rewrite__alloc(r, sizeof(*ncd));
	PgQuery__Node *def = dc_rewrite__node_new(r), *conv, *cmdn, *stmt;
	unsigned k = 0;
	int rc = 0;

	if (!ncd || !def || !col) {
		rc = col ? dc_rewrite__oom(r)
		         : dc_error_set(r->err, DC_EINVAL, "ALTER COLUMN TYPE without a column");
		goto out;
	}
	dc_rewrite__object_name(&newcol, col, NULL, "dc_new");
	dc_rewrite__object_name(&fn, rel->relname, col, "dc_sync");
	dc_analysis__qualified_name(&fnq, rel->schemaname, fn.buf);
	if (dc_strbuf_error(&newcol) || dc_strbuf_error(&fn) || dc_strbuf_error(&fnq)) {
		rc = dc_rewrite__oom(r);
		goto out;
	}

	/* the conversion: the USING expression, else a cast of the column */
	if (cd->raw_default) {
		conv = cd->raw_default;
	} else {
		PgQuery__TypeCast *tc = dc_rewrite__alloc(r, sizeof(*tc));

		if (!(conv = dc_rewrite__node_new(r)) || !tc) {
			rc = dc_rewrite__oom(r);
			goto out;
		}
		pg_query__type_cast__init(tc);
		if (!(tc->arg = dc_rewrite__column_ref(r, col))) {
			rc = dc_rewrite__oom(r);
			goto out;
		}
		tc->type_name = cd->type_name;
		tc->location = -1;
		conv->node_case = PG_QUERY__NODE__NODE_TYPE_CAST;
		conv->type_cast = tc;
	}
	if ((rc = dc_rewrite__deparse_expr(r, conv, &expr)) != 0)
		goto out;
	{
		qualify_ctx q = { r, DC_PTRVEC_INIT };

		rc = dc_rewrite__walk_colrefs(&conv->base, qualify_new, &q);
		if (rc == 0)
			rc = dc_rewrite__deparse_expr(r, conv, &newexpr);
		qualify_undo(&q);
		if (rc)
			goto out;
	}

	/* expand: the new column and the trigger keeping it in step */
	pg_query__column_def__init(ncd);
	ncd->colname = dc_rewrite__strdup(r, newcol.buf);
	ncd->type_name = cd->type_name;
	ncd->coll_clause = cd->coll_clause;
	ncd->is_local = true;
	ncd->location = -1;
	def->node_case = PG_QUERY__NODE__NODE_COLUMN_DEF;
	def->column_def = ncd;
	if (!ncd->colname ||
	    !(cmdn = dc_rewrite__cmd_node(r, PG_QUERY__ALTER_TABLE_TYPE__AT_AddColumn, NULL,
	                                  def)) ||
	    !(stmt = dc_rewrite__alter_stmt(r, a, cmdn))) {
		rc = dc_rewrite__oom(r);
		goto out;
	}
	dc_rewrite__note(r,
	                 "'%s' changes type through a new column '%s': a trigger keeps it in step, "
	                 "'backfill' copies the rows, 'contract' swaps the columns",
	                 col, newcol.buf);
	r->fresh = true;
	if ((rc = dc_rewrite__deparse(r, stmt, &up)) != 0)
		goto out;
	dc_rewrite__add_alter(&down, rel);
	dc_strbuf_adds(&down, "DROP COLUMN IF EXISTS ");
	dc_analysis__quote_ident(&down, newcol.buf);
	if ((rc = dc_rewrite__emit(r, K_DDL, "expand", &up, &down)) != 0)
		goto out;

	do {
		dc_strbuf_reset(&tag);
		dc_strbuf_addf(&tag, k ? "$dc%u$" : "$dc$", k);
		k++;
	} while (!dc_strbuf_error(&tag) && strstr(newexpr.buf, tag.buf));
	dc_strbuf_reset(&up);
	dc_strbuf_reset(&down);
	dc_strbuf_adds(&up, "CREATE FUNCTION ");
	dc_strbuf_adds(&up, fnq.buf);
	dc_strbuf_addf(&up, "() RETURNS trigger LANGUAGE plpgsql AS %s\nBEGIN\n  NEW.", tag.buf);
	dc_analysis__quote_ident(&up, newcol.buf);
	dc_strbuf_addf(&up, " := %s;\n  RETURN NEW;\nEND\n%s", newexpr.buf, tag.buf);
	dc_strbuf_addf(&down, "DROP FUNCTION IF EXISTS %s()", fnq.buf);
	if ((rc = dc_rewrite__emit(r, K_DDL, "expand", &up, &down)) != 0)
		goto out;
	dc_strbuf_reset(&up);
	dc_strbuf_reset(&down);
	dc_strbuf_adds(&up, "CREATE TRIGGER ");
	dc_analysis__quote_ident(&up, fn.buf);
	dc_strbuf_adds(&up, " BEFORE INSERT OR UPDATE ON ");
	dc_analysis__qualified(&up, rel);
	dc_strbuf_addf(&up, " FOR EACH ROW EXECUTE FUNCTION %s()", fnq.buf);
	dc_strbuf_adds(&down, "DROP TRIGGER IF EXISTS ");
	dc_analysis__quote_ident(&down, fn.buf);
	dc_strbuf_adds(&down, " ON ");
	dc_analysis__qualified(&down, rel);
	if ((rc = dc_rewrite__emit(r, K_DDL, "expand", &up, &down)) != 0)
		goto out;

	/* backfill: rows the trigger has not seen yet */
	dc_strbuf_reset(&up);
	dc_strbuf_adds(&up, "UPDATE ");
	dc_analysis__qualified(&up, rel);
	dc_strbuf_adds(&up, " SET ");
	dc_analysis__quote_ident(&up, newcol.buf);
	dc_strbuf_addf(&up, " = %s WHERE ctid = ANY (ARRAY(SELECT ctid FROM ", expr.buf);
	dc_analysis__qualified(&up, rel);
	dc_strbuf_adds(&up, " WHERE ");
	dc_analysis__quote_ident(&up, newcol.buf);
	dc_strbuf_addf(&up, " IS NULL AND (%s) IS NOT NULL LIMIT %d)) AND ", expr.buf,
	               DC_REWRITE_BATCH_ROWS);
	dc_analysis__quote_ident(&up, newcol.buf);
	dc_strbuf_addf(&up, " IS NULL AND (%s) IS NOT NULL", expr.buf);
	if ((rc = dc_rewrite__emit(r, K_BATCH, "backfill", &up, NULL)) != 0)
		goto out;

	/* contract: the swap */
	dc_rewrite__note(
	        r,
	        "APPLICATION DEPLOY NEEDED before this phase: running code must work with '%s' "
	        "of the new type (and not depend on the old column's indexes, constraints, "
	        "default or NOT NULL, which are not carried over: recreate them on '%s' in "
	        "'expand'). To deploy in between, move this phase and those after it into a "
	        "later migration",
	        col, newcol.buf);
	r->fresh = true;
	dc_strbuf_reset(&up);
	dc_strbuf_adds(&up, "DROP TRIGGER ");
	dc_analysis__quote_ident(&up, fn.buf);
	dc_strbuf_adds(&up, " ON ");
	dc_analysis__qualified(&up, rel);
	if ((rc = dc_rewrite__emit(r, K_DDL, "contract", &up, NULL)) != 0)
		goto out;
	dc_strbuf_reset(&up);
	dc_strbuf_addf(&up, "DROP FUNCTION %s()", fnq.buf);
	if ((rc = dc_rewrite__emit(r, K_DDL, "contract", &up, NULL)) != 0)
		goto out;
	/* dropping and renaming is the point of the swap, done after the deploy */
	dc_rewrite__lint_ignore(r, "drop-column");
	dc_strbuf_reset(&up);
	dc_rewrite__add_alter(&up, rel);
	dc_strbuf_adds(&up, "DROP COLUMN ");
	dc_analysis__quote_ident(&up, col);
	if ((rc = dc_rewrite__emit(r, K_DDL, "contract", &up, NULL)) != 0)
		goto out;
	dc_rewrite__lint_ignore(r, "rename-column");
	dc_strbuf_reset(&up);
	dc_rewrite__add_alter(&up, rel);
	dc_strbuf_adds(&up, "RENAME COLUMN ");
	dc_analysis__quote_ident(&up, newcol.buf);
	dc_strbuf_adds(&up, " TO ");
	dc_analysis__quote_ident(&up, col);
	if ((rc = dc_rewrite__emit(r, K_DDL, "contract", &up, NULL)) != 0)
		goto out;
	/* The old type is not in the statement: the swap is undone by the
	 * original phase's own down when that phase held only this change. */
	if (r->src && r->src->up.nstmts == 1 && r->src->down.text) {
		out_phase *p = r->phases.items[r->phases.len - 1];
		char *d = dc_strdup(r->src->down.text);

		if (!d || dc_ptrvec_push(&p->downs, d) != 0) {
			free(d);
			rc = dc_rewrite__oom(r);
			goto out;
		}
	} else {
		out_phase *p = r->phases.items[r->phases.len - 1];

		dc_strbuf_adds(&p->comment, "# no down: the old type of '");
		dc_strbuf_adds(&p->comment, col);
		dc_strbuf_adds(&p->comment, "' is not known here; write one by hand\n");
	}
	r->fresh = true; /* what follows does not wait for the deploy */
out:
	dc_strbuf_release(&newcol);
	dc_strbuf_release(&fn);
	dc_strbuf_release(&fnq);
	dc_strbuf_release(&expr);
	dc_strbuf_release(&newexpr);
	dc_strbuf_release(&up);
	dc_strbuf_release(&down);
	dc_strbuf_release(&tag);
	return rc;
}
