/*
 * rewrites.c -- DC112-DC115: the changes that rewrite a table under ACCESS
 * EXCLUSIVE (ADD COLUMN with a volatile default or of a constrained domain,
 * ALTER COLUMN TYPE, SET LOGGED/TABLESPACE/ACCESS METHOD), and the other
 * rules an ADD COLUMN reports in the same walk.
 */
#include <string.h>

#include "../lint_internal.h"

static bool col_has(const PgQuery__ColumnDef *cd,
                    PgQuery__ConstrType t,
                    const PgQuery__Constraint **out)
{
	size_t i;

	for (i = 0; i < cd->n_constraints; i++)
		if (cd->constraints[i]->node_case == PG_QUERY__NODE__NODE_CONSTRAINT &&
		    cd->constraints[i]->constraint->contype == t) {
			if (out)
				*out = cd->constraints[i]->constraint;
			return true;
		}
	return false;
}

/* What the ADD COLUMN rules look at in the new column. */
typedef struct newcol {
	const PgQuery__ColumnDef *cd;
	const PgQuery__Constraint *def; /* its DEFAULT */
	const char *col, *tname;
	bool has_def, nulldef, serial, ident, gen, notnull, builtin;
	size_t off;
} newcol;

static void describe(lint *l, const PgQuery__ColumnDef *cd, newcol *nc)
{
	nc->cd = cd;
	nc->def = NULL;
	nc->col = cd->colname ? cd->colname : "";
	nc->off = dc_lint__at(l, cd->location);
	nc->has_def = col_has(cd, PG_QUERY__CONSTR_TYPE__CONSTR_DEFAULT, &nc->def);
	nc->nulldef = nc->has_def && nc->def->raw_expr &&
	              nc->def->raw_expr->node_case == PG_QUERY__NODE__NODE_A_CONST &&
	              nc->def->raw_expr->a_const->isnull;
	nc->serial = dc_analysis__is_serial(cd->type_name);
	nc->ident = col_has(cd, PG_QUERY__CONSTR_TYPE__CONSTR_IDENTITY, NULL);
	nc->gen = col_has(cd, PG_QUERY__CONSTR_TYPE__CONSTR_GENERATED, NULL);
	nc->notnull = cd->is_not_null || col_has(cd, PG_QUERY__CONSTR_TYPE__CONSTR_NOTNULL, NULL);
	nc->tname = dc_analysis__type_base(cd->type_name, &nc->builtin);
}

/* The column an ADD COLUMN of a table this migration did not create adds. */
static bool added_column(lint *l, const dc_lint_cmd *cmd, newcol *nc)
{
	const PgQuery__AlterTableCmd *c = cmd->c;

	if ((c->subtype != PG_QUERY__ALTER_TABLE_TYPE__AT_AddColumn &&
	     c->subtype != PG_QUERY__ALTER_TABLE_TYPE__AT_AddColumnRecurse) ||
	    !c->def || c->def->node_case != PG_QUERY__NODE__NODE_COLUMN_DEF || cmd->is_new)
		return false;
	describe(l, c->def->column_def, nc);
	return true;
}

/* A default that makes ADD COLUMN rewrite the table (DC113, and DC114 defers to it). */
static bool volatile_default(const newcol *nc)
{
	return nc->has_def && !nc->nulldef && !dc_analysis__default_is_fast(nc->def->raw_expr);
}

/* ADD COLUMN's sub-command checks (DC113, DC114, DC211), from rules.def. */
void dc_lint__check_add_column_rewrite(lint *l, const dc_lint_cmd *cmd)
{
	newcol nc;

	if (!added_column(l, cmd, &nc))
		return;
	if (nc.serial || nc.ident || nc.gen)
		dc_lint__emit_at(
		        l, R_ADD_COLUMN_REWRITE, nc.off, NULL,
		        "adding the %s column '%s' rewrites '%s' and its indexes under ACCESS "
		        "EXCLUSIVE",
		        nc.serial  ? nc.tname
		        : nc.ident ? "identity"
		                   : "stored generated",
		        nc.col, cmd->qual);
	else if (volatile_default(&nc))
		dc_lint__emit_at(
		        l, R_ADD_COLUMN_REWRITE, dc_lint__at(l, nc.def->location), NULL,
		        "the default of '%s' is volatile (or not known to be stable): adding it "
		        "rewrites '%s' and its indexes under ACCESS EXCLUSIVE",
		        nc.col, cmd->qual);
}

void dc_lint__check_add_column_domain(lint *l, const dc_lint_cmd *cmd)
{
	newcol nc;
	void *tv = NULL;

	if (!added_column(l, cmd, &nc) || nc.serial || nc.ident || nc.gen ||
	    volatile_default(&nc) || nc.builtin)
		return;
	if (dc_lint__set_has(&l->types, nc.tname, &tv) && tv == (void *)2)
		dc_lint__emit_at(
		        l, R_ADD_COLUMN_DOMAIN, nc.off, NULL,
		        "column '%s' has the domain '%s', which has constraints: adding it "
		        "rewrites '%s' (every row verified) under ACCESS EXCLUSIVE",
		        nc.col, nc.tname, cmd->qual);
	else if (!dc_lint__set_has(&l->types, nc.tname, NULL))
		dc_lint__emit_at(
		        l, R_ADD_COLUMN_DOMAIN, nc.off, NULL,
		        "column '%s' has the user-defined type '%s': if it is a domain with "
		        "constraints, adding it rewrites '%s' (check with 'deployclaw plan --live')",
		        nc.col, nc.tname, cmd->qual);
}

void dc_lint__check_add_required(lint *l, const dc_lint_cmd *cmd)
{
	newcol nc;

	if (added_column(l, cmd, &nc) && nc.notnull && (!nc.has_def || nc.nulldef) && !nc.serial &&
	    !nc.ident && !nc.gen)
		dc_lint__emit_at(l, R_ADD_REQUIRED, nc.off, NULL,
		                 "adding '%s' NOT NULL without a default fails on a non-empty '%s'",
		                 nc.col, cmd->qual);
}

/*
 * The constraint of type `t` the column of an ADD COLUMN of a table this
 * migration did not create declares; `col` its name, `has_default` whether
 * it has a default other than NULL.
 */
const PgQuery__Constraint *dc_lint__column_constraint(lint *l,
                                                      const dc_lint_cmd *cmd,
                                                      PgQuery__ConstrType t,
                                                      const char **col,
                                                      bool *has_default)
{
	const PgQuery__Constraint *k = NULL;
	newcol nc;

	if (!added_column(l, cmd, &nc) || !col_has(nc.cd, t, &k))
		return NULL;
	*col = nc.col;
	*has_default = nc.has_def && !nc.nulldef;
	return k;
}

/* ADD COLUMN's walk: it records the column's type (DC112, DC202 look at it). */
void dc_lint__add_column(lint *l, const PgQuery__RangeVar *rv, const PgQuery__ColumnDef *cd)
{
	const char *col = cd->colname ? cd->colname : "";

	dc_lint__put(l, &l->coltypes, dc_lint__key(l, dc_lint__rvname(rv), col),
	             dc_lint__keep_type(l, cd->type_name));
}

/* ALTER COLUMN ... TYPE's walk: it records the new type. */
void dc_lint__alter_column_type(lint *l, const PgQuery__AlterTableCmd *c, const char *table)
{
	const PgQuery__Node *def = c->def;
	const PgQuery__ColumnDef *cd =
	        def && def->node_case == PG_QUERY__NODE__NODE_COLUMN_DEF ? def->column_def : NULL;

	if (!cd)
		return;
	dc_lint__put(l, &l->coltypes, dc_lint__key(l, table, c->name),
	             dc_lint__keep_type(l, cd->type_name));
}

/* DC112 unless binary-coercible, "may" when the old type is unknown. */
void dc_lint__check_type_rewrite(lint *l, const dc_lint_cmd *cmd)
{
	const PgQuery__AlterTableCmd *c = cmd->c;
	const PgQuery__Node *def = c->def;
	const PgQuery__ColumnDef *cd =
	        def && def->node_case == PG_QUERY__NODE__NODE_COLUMN_DEF ? def->column_def : NULL;
	const PgQuery__TypeName *from = NULL;
	void *v = NULL;
	int op;

	if (c->subtype != PG_QUERY__ALTER_TABLE_TYPE__AT_AlterColumnType || !cd || cmd->is_new)
		return;
	if (dc_lint__set_has(&l->coltypes, dc_lint__key(l, cmd->table, c->name), &v))
		from = v;
	op = dc_analysis__type_change_op(from, cd->type_name, cd->raw_default != NULL);
	if (op == OP_TYPE_REWRITE)
		dc_lint__emit(
		        l, R_TYPE_REWRITE, NULL,
		        "changing the type of '%s.%s' rewrites the table and its indexes under "
		        "ACCESS EXCLUSIVE",
		        cmd->qual, c->name ? c->name : "");
	else if (op == OP_TYPE_MAY_REWRITE)
		dc_lint__emit_sev(l, R_TYPE_REWRITE, DC_SEV_INFO, l->stmt_off,
		                  "changing the type of '%s.%s' rewrites the table unless the "
		                  "change is binary-coercible (the old type is not known here)",
		                  cmd->qual, c->name ? c->name : "");
}

/* DC115: SET LOGGED/UNLOGGED, SET ACCESS METHOD, SET TABLESPACE copy the table. */
void dc_lint__check_table_rewrite(lint *l, const dc_lint_cmd *cmd)
{
	switch (cmd->c->subtype) {
	case PG_QUERY__ALTER_TABLE_TYPE__AT_SetLogged:
	case PG_QUERY__ALTER_TABLE_TYPE__AT_SetUnLogged:
	case PG_QUERY__ALTER_TABLE_TYPE__AT_SetAccessMethod:
	case PG_QUERY__ALTER_TABLE_TYPE__AT_SetTableSpace:
		if (!cmd->is_new)
			dc_lint__emit(l, R_TABLE_REWRITE, NULL,
			              "this copies all of '%s' under ACCESS EXCLUSIVE", cmd->qual);
		break;
	default:
		break;
	}
}
