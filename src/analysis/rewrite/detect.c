/*
 * plan --safe: which statements need a rewrite. Catalog-only changes, and
 * anything on a table created earlier in the same phase (empty, unseen),
 * are kept as they are.
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

static bool name_in(const char *s, const char *const *list)
{
	for (; *list; list++)
		if (strcmp(s, *list) == 0)
			return true;
	return false;
}

void dc_rewrite__plan_column(const PgQuery__ColumnDef *cd, colplan *cp)
{
	const PgQuery__TypeName *tn = cd->type_name;
	size_t i;

	memset(cp, 0, sizeof(*cp));
	cp->not_null = cd->is_not_null;
	if (dc_analysis__is_serial(tn))
		cp->unsupported = true;
	if (cd->identity && cd->identity[0])
		cp->unsupported = true;
	if (cd->generated && cd->generated[0])
		cp->unsupported = true;
	if (cd->raw_default)
		cp->unsupported = true; /* only set by CREATE TABLE LIKE/OF paths */
	for (i = 0; i < cd->n_constraints; i++) {
		const PgQuery__Node *n = cd->constraints[i];
		PgQuery__Constraint *c;

		if (n->node_case != PG_QUERY__NODE__NODE_CONSTRAINT)
			continue;
		c = n->constraint;
		switch (c->contype) {
		case PG_QUERY__CONSTR_TYPE__CONSTR_NOTNULL:
			cp->not_null = true;
			break;
		case PG_QUERY__CONSTR_TYPE__CONSTR_DEFAULT:
			cp->def = c;
			break;
		case PG_QUERY__CONSTR_TYPE__CONSTR_IDENTITY:
		case PG_QUERY__CONSTR_TYPE__CONSTR_GENERATED:
		case PG_QUERY__CONSTR_TYPE__CONSTR_EXCLUSION:
			cp->unsupported = true;
			break;
		case PG_QUERY__CONSTR_TYPE__CONSTR_CHECK:
		case PG_QUERY__CONSTR_TYPE__CONSTR_FOREIGN:
		case PG_QUERY__CONSTR_TYPE__CONSTR_UNIQUE:
		case PG_QUERY__CONSTR_TYPE__CONSTR_PRIMARY:
			cp->nextra++;
			break;
		default:
			break;
		}
	}
	cp->stable_default = cp->def && dc_analysis__default_is_fast(cp->def->raw_expr);
}

static bool column_needs_rewrite(const colplan *cp)
{
	if (cp->unsupported)
		return false;
	return (cp->def && !cp->stable_default) || (cp->not_null && !cp->stable_default) ||
	       cp->nextra > 0;
}

/*
 * Whether ALTER COLUMN ... TYPE rewrites the table. Without the catalog the
 * old type is unknown: no USING and a target of text, varchar (no length),
 * numeric (no precision) or citext is taken as the binary-coercible widening
 * it nearly always is (varchar(n) -> text, numeric(p,s) -> numeric); every
 * other change counts as a rewrite.
 */
static bool type_change_rewrites(const PgQuery__ColumnDef *cd)
{
	static const char *const widening[] = { "text", "varchar", "numeric", "citext", NULL };
	const PgQuery__TypeName *tn = cd->type_name;
	const char *last;

	if (cd->raw_default || !tn || tn->n_typmods || tn->n_array_bounds || !tn->n_names)
		return true;
	last = dc_analysis__str(tn->names[tn->n_names - 1]);
	if (tn->n_names == 2 && (!dc_analysis__str(tn->names[0]) ||
	                         strcmp(dc_analysis__str(tn->names[0]), "pg_catalog")))
		return true;
	return !last || !name_in(last, widening);
}

const PgQuery__Constraint *dc_rewrite__cmd_constraint(const PgQuery__AlterTableCmd *c)
{
	return c->def && c->def->node_case == PG_QUERY__NODE__NODE_CONSTRAINT ? c->def->constraint
	                                                                      : NULL;
}

const PgQuery__ColumnDef *dc_rewrite__cmd_column(const PgQuery__AlterTableCmd *c)
{
	return c->def && c->def->node_case == PG_QUERY__NODE__NODE_COLUMN_DEF ? c->def->column_def
	                                                                      : NULL;
}

static bool constraint_needs_rewrite(const PgQuery__Constraint *con)
{
	switch (con->contype) {
	case PG_QUERY__CONSTR_TYPE__CONSTR_FOREIGN:
	case PG_QUERY__CONSTR_TYPE__CONSTR_CHECK:
		return !con->skip_validation;
	case PG_QUERY__CONSTR_TYPE__CONSTR_UNIQUE:
	case PG_QUERY__CONSTR_TYPE__CONSTR_PRIMARY:
		return !con->indexname || !con->indexname[0];
	default:
		return false;
	}
}

bool dc_rewrite__cmd_needs_rewrite(const PgQuery__AlterTableCmd *c)
{
	const PgQuery__Constraint *con;
	const PgQuery__ColumnDef *cd;
	colplan cp;

	switch (c->subtype) {
	case PG_QUERY__ALTER_TABLE_TYPE__AT_AddColumn:
		if (!(cd = dc_rewrite__cmd_column(c)))
			return false;
		dc_rewrite__plan_column(cd, &cp);
		return column_needs_rewrite(&cp);
	case PG_QUERY__ALTER_TABLE_TYPE__AT_AddConstraint:
		return (con = dc_rewrite__cmd_constraint(c)) != NULL &&
		       constraint_needs_rewrite(con);
	case PG_QUERY__ALTER_TABLE_TYPE__AT_SetNotNull:
		return true;
	case PG_QUERY__ALTER_TABLE_TYPE__AT_AlterColumnType:
		return (cd = dc_rewrite__cmd_column(c)) != NULL && type_change_rewrites(cd);
	default:
		return false;
	}
}

static void created_key(dc_strbuf *sb, const PgQuery__RangeVar *rv)
{
	dc_strbuf_adds(sb, rv->schemaname ? rv->schemaname : "");
	dc_strbuf_addch(sb, '\x1f');
	dc_strbuf_adds(sb, rv->relname ? rv->relname : "");
}

/* The table was created earlier in the phase being rewritten: it is empty
 * and nobody else sees it yet, so nothing on it needs care. */
static bool created_here(const rw *r, const PgQuery__RangeVar *rv)
{
	dc_strbuf key = DC_STRBUF_INIT;
	const char *s;
	bool found = false;
	size_t i;

	if (!rv)
		return false;
	created_key(&key, rv);
	dc_vec_foreach(&r->created, i, s) {
		if (strcmp(s, key.buf) == 0)
			found = true;
	}
	dc_strbuf_release(&key);
	return found;
}

bool dc_rewrite__stmt_needs_rewrite(const rw *r, const PgQuery__Node *n)
{
	const PgQuery__IndexStmt *ix;
	const PgQuery__AlterTableStmt *a;
	size_t i;

	switch (n->node_case) {
	case PG_QUERY__NODE__NODE_TRANSACTION_STMT:
		return true;
	case PG_QUERY__NODE__NODE_INDEX_STMT:
		ix = n->index_stmt;
		if (!ix->relation || !ix->relation->inh || created_here(r, ix->relation))
			return false;
		return !ix->concurrent || !ix->idxname || !ix->idxname[0] || !ix->if_not_exists;
	case PG_QUERY__NODE__NODE_ALTER_TABLE_STMT:
		a = n->alter_table_stmt;
		if (a->objtype != PG_QUERY__OBJECT_TYPE__OBJECT_TABLE || !a->relation ||
		    created_here(r, a->relation))
			return false;
		for (i = 0; i < a->n_cmds; i++)
			if (a->cmds[i]->node_case == PG_QUERY__NODE__NODE_ALTER_TABLE_CMD &&
			    dc_rewrite__cmd_needs_rewrite(a->cmds[i]->alter_table_cmd))
				return true;
		return false;
	default:
		return false;
	}
}

int dc_rewrite__remember_created(rw *r, const PgQuery__Node *n)
{
	dc_strbuf key = DC_STRBUF_INIT;
	char *s;

	if (n->node_case != PG_QUERY__NODE__NODE_CREATE_STMT || !n->create_stmt->relation)
		return 0;
	created_key(&key, n->create_stmt->relation);
	if (!(s = dc_strbuf_detach(&key, NULL)) || dc_ptrvec_push(&r->created, s) != 0) {
		free(s);
		return dc_rewrite__oom(r);
	}
	return 0;
}
