/*
 * plan --safe: ALTER COLUMN TYPE that rewrites the table, as expand (a new
 * column kept in step by a trigger), a batched copy, and contract (the swap,
 * after an application deploy).
 */
#include <limits.h>
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
static int qualify_new(void *ctx, ProtobufCMessage *found)
{
	PgQuery__ColumnRef *ref = (PgQuery__ColumnRef *)found;
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

/* The names and expressions of one type swap. */
typedef struct swap {
	const char *col;   /* the column changing type */
	dc_strbuf newcol;  /* the new column, <col>_dc_new */
	dc_strbuf fn;      /* the trigger and its function, <table>_<col>_dc_sync */
	dc_strbuf fnq;     /* the function, schema-qualified and quoted */
	dc_strbuf expr;    /* the conversion of a row's old value */
	dc_strbuf newexpr; /* the same on NEW, for the trigger body */
} swap;

/* The conversion: the USING expression, else a cast of the column; printed
 * as it is (expr) and on NEW (newexpr). */
static int conversions(rw *r, const PgQuery__ColumnDef *cd, swap *s)
{
	PgQuery__Node *conv = cd->raw_default;
	qualify_ctx q = { r, DC_PTRVEC_INIT };
	int rc;

	if (!conv) {
		PgQuery__TypeCast *tc = dc_rewrite__alloc(r, sizeof(*tc));

		if (!(conv = dc_rewrite__node_new(r)) || !tc)
			return dc_rewrite__oom(r);
		pg_query__type_cast__init(tc);
		if (!(tc->arg = dc_rewrite__column_ref(r, s->col)))
			return dc_rewrite__oom(r);
		tc->type_name = cd->type_name;
		tc->location = -1;
		conv->node_case = PG_QUERY__NODE__NODE_TYPE_CAST;
		conv->type_cast = tc;
	}
	if ((rc = dc_rewrite__deparse_expr(r, conv, &s->expr)) != 0)
		return rc;
	rc = dc_analysis__walk(&conv->base, &pg_query__column_ref__descriptor, INT_MAX, qualify_new,
	                       &q);
	if (rc == 0)
		rc = dc_rewrite__deparse_expr(r, conv, &s->newexpr);
	qualify_undo(&q);
	return rc;
}

/* expand: the new column, of the new type, nullable and without a default. */
static int add_new_column(rw *r,
                          const PgQuery__AlterTableStmt *a,
                          const PgQuery__ColumnDef *cd,
                          const swap *s)
{
	PgQuery__ColumnDef *ncd = dc_rewrite__alloc(r, sizeof(*ncd));
	PgQuery__Node *def = dc_rewrite__node_new(r), *cmdn, *stmt;
	dc_strbuf up = DC_STRBUF_INIT, down = DC_STRBUF_INIT;
	int rc;

	if (!ncd || !def) {
		rc = dc_rewrite__oom(r);
		goto out;
	}
	pg_query__column_def__init(ncd);
	ncd->colname = dc_rewrite__strdup(r, s->newcol.buf);
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
	                 s->col, s->newcol.buf);
	r->fresh = true;
	if ((rc = dc_rewrite__deparse(r, stmt, &up)) != 0)
		goto out;
	dc_rewrite__drop_if_exists(&down, a->relation, "COLUMN", s->newcol.buf);
	rc = dc_rewrite__emit(r, K_DDL, "expand", &up, &down);
out:
	dc_strbuf_release(&up);
	dc_strbuf_release(&down);
	return rc;
}

/* "DROP TRIGGER [IF EXISTS] fn ON rel" */
static void drop_trigger(dc_strbuf *sb, const PgQuery__RangeVar *rel, const swap *s, bool if_exists)
{
	dc_strbuf_adds(sb, if_exists ? "DROP TRIGGER IF EXISTS " : "DROP TRIGGER ");
	dc_analysis__quote_ident(sb, s->fn.buf);
	dc_strbuf_adds(sb, " ON ");
	dc_analysis__qualified(sb, rel);
}

/* expand: the trigger keeping the new column in step with writes. */
static int sync_trigger(rw *r, const PgQuery__RangeVar *rel, const swap *s)
{
	dc_strbuf up = DC_STRBUF_INIT, down = DC_STRBUF_INIT, tag = DC_STRBUF_INIT;
	unsigned k = 0;
	int rc;

	do {
		dc_strbuf_reset(&tag);
		dc_strbuf_addf(&tag, k ? "$dc%u$" : "$dc$", k);
		k++;
	} while (!dc_strbuf_error(&tag) && strstr(s->newexpr.buf, tag.buf));
	dc_strbuf_adds(&up, "CREATE FUNCTION ");
	dc_strbuf_adds(&up, s->fnq.buf);
	dc_strbuf_addf(&up, "() RETURNS trigger LANGUAGE plpgsql AS %s\nBEGIN\n  NEW.", tag.buf);
	dc_analysis__quote_ident(&up, s->newcol.buf);
	dc_strbuf_addf(&up, " := %s;\n  RETURN NEW;\nEND\n%s", s->newexpr.buf, tag.buf);
	dc_strbuf_addf(&down, "DROP FUNCTION IF EXISTS %s()", s->fnq.buf);
	if ((rc = dc_rewrite__emit(r, K_DDL, "expand", &up, &down)) != 0)
		goto out;
	dc_strbuf_reset(&up);
	dc_strbuf_reset(&down);
	dc_strbuf_adds(&up, "CREATE TRIGGER ");
	dc_analysis__quote_ident(&up, s->fn.buf);
	dc_strbuf_adds(&up, " BEFORE INSERT OR UPDATE ON ");
	dc_analysis__qualified(&up, rel);
	dc_strbuf_addf(&up, " FOR EACH ROW EXECUTE FUNCTION %s()", s->fnq.buf);
	drop_trigger(&down, rel, s, true);
	rc = dc_rewrite__emit(r, K_DDL, "expand", &up, &down);
out:
	dc_strbuf_release(&up);
	dc_strbuf_release(&down);
	dc_strbuf_release(&tag);
	return rc;
}

/* contract: trigger and function dropped, the old column dropped and the
 * new one renamed in its place, after an application deploy. */
static int swap_columns(rw *r, const PgQuery__RangeVar *rel, const swap *s)
{
	dc_strbuf up = DC_STRBUF_INIT;
	int rc;

	dc_rewrite__note(
	        r,
	        "APPLICATION DEPLOY NEEDED before this phase: running code must work with '%s' "
	        "of the new type (and not depend on the old column's indexes, constraints, "
	        "default or NOT NULL, which are not carried over: recreate them on '%s' in "
	        "'expand'). To deploy in between, move this phase and those after it into a "
	        "later migration",
	        s->col, s->newcol.buf);
	r->fresh = true;
	drop_trigger(&up, rel, s, false);
	if ((rc = dc_rewrite__emit(r, K_DDL, "contract", &up, NULL)) != 0)
		goto out;
	dc_strbuf_reset(&up);
	dc_strbuf_addf(&up, "DROP FUNCTION %s()", s->fnq.buf);
	if ((rc = dc_rewrite__emit(r, K_DDL, "contract", &up, NULL)) != 0)
		goto out;
	/* dropping and renaming is the point of the swap, done after the deploy */
	dc_rewrite__lint_ignore(r, "drop-column");
	dc_strbuf_reset(&up);
	dc_rewrite__add_alter(&up, rel);
	dc_strbuf_adds(&up, "DROP COLUMN ");
	dc_analysis__quote_ident(&up, s->col);
	if ((rc = dc_rewrite__emit(r, K_DDL, "contract", &up, NULL)) != 0)
		goto out;
	dc_rewrite__lint_ignore(r, "rename-column");
	dc_strbuf_reset(&up);
	dc_rewrite__add_alter(&up, rel);
	dc_strbuf_adds(&up, "RENAME COLUMN ");
	dc_analysis__quote_ident(&up, s->newcol.buf);
	dc_strbuf_adds(&up, " TO ");
	dc_analysis__quote_ident(&up, s->col);
	rc = dc_rewrite__emit(r, K_DDL, "contract", &up, NULL);
out:
	dc_strbuf_release(&up);
	return rc;
}

/* The swap's down. The old type is not in the statement: the swap is undone
 * by the original phase's own down when that phase held only this change. */
static int swap_down(rw *r, const swap *s)
{
	out_phase *p = r->phases.items[r->phases.len - 1];
	char *d;

	if (r->src && r->src->up.nstmts == 1 && r->src->down.text) {
		if (!(d = dc_strdup(r->src->down.text)) || dc_ptrvec_push(&p->downs, d) != 0) {
			free(d);
			return dc_rewrite__oom(r);
		}
		return 0;
	}
	dc_strbuf_adds(&p->comment, "# no down: the old type of '");
	dc_strbuf_adds(&p->comment, s->col);
	dc_strbuf_adds(&p->comment, "' is not known here; write one by hand\n");
	return 0;
}

/* ALTER COLUMN TYPE that rewrites: new column kept in step by a trigger,
 * batched copy, then the swap. */
int dc_rewrite__alter_type(rw *r,
                           const PgQuery__AlterTableStmt *a,
                           const PgQuery__AlterTableCmd *cmd)
{
	const PgQuery__ColumnDef *cd = dc_rewrite__cmd_column(cmd);
	const PgQuery__RangeVar *rel = a->relation;
	dc_strbuf up = DC_STRBUF_INIT;
	swap s = { cmd->name,      DC_STRBUF_INIT, DC_STRBUF_INIT,
		   DC_STRBUF_INIT, DC_STRBUF_INIT, DC_STRBUF_INIT };
	int rc = 0;

	if (!s.col) {
		rc = dc_error_set(r->err, DC_EINVAL, "ALTER COLUMN TYPE without a column");
		goto out;
	}
	dc_rewrite__object_name(&s.newcol, s.col, NULL, "dc_new");
	dc_rewrite__object_name(&s.fn, rel->relname, s.col, "dc_sync");
	dc_analysis__qualified_name(&s.fnq, rel->schemaname, s.fn.buf);
	if (dc_strbuf_error(&s.newcol) || dc_strbuf_error(&s.fn) || dc_strbuf_error(&s.fnq)) {
		rc = dc_rewrite__oom(r);
		goto out;
	}
	if ((rc = conversions(r, cd, &s)) != 0 || (rc = add_new_column(r, a, cd, &s)) != 0 ||
	    (rc = sync_trigger(r, rel, &s)) != 0)
		goto out;
	/* backfill: rows the trigger has not seen yet */
	dc_rewrite__batched_update(&up, rel, s.newcol.buf, s.expr.buf, s.expr.buf);
	if ((rc = dc_rewrite__emit(r, K_BATCH, "backfill", &up, NULL)) != 0 ||
	    (rc = swap_columns(r, rel, &s)) != 0 || (rc = swap_down(r, &s)) != 0)
		goto out;
	r->fresh = true; /* what follows does not wait for the deploy */
out:
	dc_strbuf_release(&s.newcol);
	dc_strbuf_release(&s.fn);
	dc_strbuf_release(&s.fnq);
	dc_strbuf_release(&s.expr);
	dc_strbuf_release(&s.newexpr);
	dc_strbuf_release(&up);
	return rc;
}
