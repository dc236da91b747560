/*
 * plan --safe: the names PostgreSQL gives unnamed indexes and constraints,
 * reproduced without a catalog, and SQL text snippets around them.
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

/* "ALTER TABLE [ONLY] rel " */
void dc_rewrite__add_alter(dc_strbuf *sb, const PgQuery__RangeVar *rv)
{
	dc_strbuf_adds(sb, "ALTER TABLE ");
	if (!rv->inh)
		dc_strbuf_adds(sb, "ONLY ");
	dc_analysis__qualified(sb, rv);
	dc_strbuf_addch(sb, ' ');
}

/* "ALTER TABLE [ONLY] rel DROP <what> IF EXISTS name" (what: COLUMN, CONSTRAINT). */
void dc_rewrite__drop_if_exists(dc_strbuf *sb,
                                const PgQuery__RangeVar *rel,
                                const char *what,
                                const char *name)
{
	dc_rewrite__add_alter(sb, rel);
	dc_strbuf_addf(sb, "DROP %s IF EXISTS ", what);
	dc_analysis__quote_ident(sb, name);
}

/* One round of a batched backfill (see rewrite_internal.h). */
void dc_rewrite__batched_update(dc_strbuf *sb,
                                const PgQuery__RangeVar *rel,
                                const char *col,
                                const char *value,
                                const char *source)
{
	dc_strbuf todo = DC_STRBUF_INIT;

	dc_analysis__quote_ident(&todo, col);
	dc_strbuf_adds(&todo, " IS NULL");
	if (source)
		dc_strbuf_addf(&todo, " AND (%s) IS NOT NULL", source);
	dc_strbuf_adds(sb, "UPDATE ");
	dc_analysis__qualified(sb, rel);
	dc_strbuf_adds(sb, " SET ");
	dc_analysis__quote_ident(sb, col);
	dc_strbuf_addf(sb, " = %s WHERE ctid = ANY (ARRAY(SELECT ctid FROM ", value);
	dc_analysis__qualified(sb, rel);
	dc_strbuf_addf(sb, " WHERE %s LIMIT %d)) AND %s", todo.buf, DC_REWRITE_BATCH_ROWS,
	               todo.buf);
	if (dc_strbuf_error(&todo))
		sb->failed = DC_ENOMEM;
	dc_strbuf_release(&todo);
}

/* Length of the longest prefix of `s` of at most `n` bytes that ends on a
 * UTF-8 character boundary (pg_mbcliplen). */
static size_t clip_utf8(const char *s, size_t n)
{
	while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
		n--;
	return n;
}

/*
 * makeObjectName(): name1[_name2][_label] within 63 bytes, shortening the
 * longer of name1 and name2 first, as PostgreSQL names unnamed objects.
 */
void dc_rewrite__object_name(dc_strbuf *out,
                             const char *name1,
                             const char *name2,
                             const char *label)
{
	size_t n1 = strlen(name1), n2 = name2 ? strlen(name2) : 0, overhead = 0, avail;

	if (name2)
		overhead++;
	if (label)
		overhead += strlen(label) + 1;
	avail = overhead < DC_PG_IDENT_MAX ? DC_PG_IDENT_MAX - overhead : 0;
	while (n1 + n2 > avail) {
		if (n1 > n2)
			n1--;
		else
			n2--;
	}
	n1 = clip_utf8(name1, n1);
	dc_strbuf_add(out, name1, n1);
	if (name2) {
		dc_strbuf_addch(out, '_');
		dc_strbuf_add(out, name2, clip_utf8(name2, n2));
	}
	if (label) {
		dc_strbuf_addch(out, '_');
		dc_strbuf_adds(out, label);
	}
}

/* ChooseIndexNameAddition(): names joined by '_', stopping past 63 bytes. */
static void name_addition(dc_strbuf *sb, const char *name)
{
	if (sb->len > DC_PG_IDENT_MAX)
		return;
	if (sb->len)
		dc_strbuf_addch(sb, '_');
	dc_strbuf_adds(sb, name);
}

/* FigureIndexColname(), for the common shapes: a column, a function call, a cast. */
static const char *expr_colname(const PgQuery__Node *n)
{
	const char *s;

	if (!n)
		return NULL;
	switch (n->node_case) {
	case PG_QUERY__NODE__NODE_COLUMN_REF:
		return n->column_ref->n_fields
		               ? dc_analysis__str(
		                         n->column_ref->fields[n->column_ref->n_fields - 1])
		               : NULL;
	case PG_QUERY__NODE__NODE_FUNC_CALL:
		return n->func_call->n_funcname
		               ? dc_analysis__str(
		                         n->func_call->funcname[n->func_call->n_funcname - 1])
		               : NULL;
	case PG_QUERY__NODE__NODE_TYPE_CAST:
		if ((s = expr_colname(n->type_cast->arg)) != NULL)
			return s;
		return n->type_cast->type_name && n->type_cast->type_name->n_names
		               ? dc_analysis__str(
		                         n->type_cast->type_name
		                                 ->names[n->type_cast->type_name->n_names - 1])
		               : NULL;
	default:
		return NULL;
	}
}

static const char *index_elem_name(const PgQuery__Node *n)
{
	const PgQuery__IndexElem *e;
	const char *s;

	if (!n || n->node_case != PG_QUERY__NODE__NODE_INDEX_ELEM)
		return "expr";
	e = n->index_elem;
	if (e->indexcolname && e->indexcolname[0])
		return e->indexcolname;
	if (e->name && e->name[0])
		return e->name;
	s = expr_colname(e->expr);
	return s ? s : "expr";
}

/* The index's name: its own, else ChooseIndexName()'s <table>_<columns>_idx. */
void dc_rewrite__index_name(dc_strbuf *out, const PgQuery__IndexStmt *ix)
{
	dc_strbuf add = DC_STRBUF_INIT;
	size_t i;

	if (ix->idxname && ix->idxname[0]) {
		dc_strbuf_adds(out, ix->idxname);
		return;
	}
	for (i = 0; i < ix->n_index_params; i++)
		name_addition(&add, index_elem_name(ix->index_params[i]));
	for (i = 0; i < ix->n_index_including_params; i++)
		name_addition(&add, index_elem_name(ix->index_including_params[i]));
	dc_rewrite__object_name(out, ix->relation->relname, add.len ? add.buf : NULL,
	                        ix->primary ? "pkey" : "idx");
	if (dc_strbuf_error(&add))
		out->failed = DC_ENOMEM;
	dc_strbuf_release(&add);
}

static int collect_one(void *ctx, ProtobufCMessage *found)
{
	const PgQuery__ColumnRef *ref = (const PgQuery__ColumnRef *)found;
	dc_ptrvec *cols = ctx;
	const char *name = ref->n_fields ? dc_analysis__str(ref->fields[ref->n_fields - 1]) : NULL;
	size_t i;

	if (!name)
		return 0;
	for (i = 0; i < cols->len; i++)
		if (strcmp(cols->items[i], name) == 0)
			return 0;
	/* the (const char *) is only ever read */
	return dc_ptrvec_push(cols, (void *)(uintptr_t)name) != 0;
}

static void collect_columns(const ProtobufCMessage *msg, dc_ptrvec *cols)
{
	dc_analysis__walk((ProtobufCMessage *)(uintptr_t)msg, &pg_query__column_ref__descriptor,
	                  INT_MAX, collect_one, cols);
}

/* The name PostgreSQL gives an unnamed table constraint (ChooseConstraintName). */
void dc_rewrite__constraint_name(dc_strbuf *out,
                                 const PgQuery__RangeVar *rel,
                                 const PgQuery__Constraint *con)
{
	dc_strbuf add = DC_STRBUF_INIT;
	dc_ptrvec cols = DC_PTRVEC_INIT;
	size_t i;

	if (con->conname && con->conname[0]) {
		dc_strbuf_adds(out, con->conname);
		return;
	}
	switch (con->contype) {
	case PG_QUERY__CONSTR_TYPE__CONSTR_PRIMARY:
		dc_rewrite__object_name(out, rel->relname, NULL, "pkey");
		break;
	case PG_QUERY__CONSTR_TYPE__CONSTR_UNIQUE:
		for (i = 0; i < con->n_keys; i++)
			if (dc_analysis__str(con->keys[i]))
				name_addition(&add, dc_analysis__str(con->keys[i]));
		dc_rewrite__object_name(out, rel->relname, add.len ? add.buf : NULL, "key");
		break;
	case PG_QUERY__CONSTR_TYPE__CONSTR_FOREIGN:
		for (i = 0; i < con->n_fk_attrs; i++)
			if (dc_analysis__str(con->fk_attrs[i]))
				name_addition(&add, dc_analysis__str(con->fk_attrs[i]));
		dc_rewrite__object_name(out, rel->relname, add.len ? add.buf : NULL, "fkey");
		break;
	default:
		/* CHECK: <table>_<column>_check when it names one column, else <table>_check */
		if (con->raw_expr)
			collect_columns(&con->raw_expr->base, &cols);
		dc_rewrite__object_name(out, rel->relname,
		                        cols.len == 1 ? (const char *)cols.items[0] : NULL,
		                        "check");
		break;
	}
	dc_strbuf_release(&add);
	dc_ptrvec_release(&cols, NULL);
}
