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

void dc_lint__add_column(lint *l,
                         const PgQuery__RangeVar *rv,
                         const PgQuery__AlterTableCmd *c,
                         const PgQuery__ColumnDef *cd,
                         bool is_new)
{
	const PgQuery__Constraint *def = NULL, *k = NULL;
	dc_strbuf q = DC_STRBUF_INIT;
	const char *col = cd->colname ? cd->colname : "";
	bool has_def, nulldef, serial, ident, gen, notnull, builtin;
	size_t off = dc_lint__at(l, cd->location);
	const char *tname;
	void *tv = NULL;

	dc_lint__qual(&q, rv);
	dc_lint__check_ident(l, cd->colname, cd->location, "column");
	dc_lint__check_type(l, cd->type_name, col);
	has_def = col_has(cd, PG_QUERY__CONSTR_TYPE__CONSTR_DEFAULT, &def);
	nulldef = has_def && def->raw_expr &&
	          def->raw_expr->node_case == PG_QUERY__NODE__NODE_A_CONST &&
	          def->raw_expr->a_const->isnull;
	serial = dc_analysis__is_serial(cd->type_name);
	ident = col_has(cd, PG_QUERY__CONSTR_TYPE__CONSTR_IDENTITY, NULL);
	gen = col_has(cd, PG_QUERY__CONSTR_TYPE__CONSTR_GENERATED, NULL);
	notnull = cd->is_not_null || col_has(cd, PG_QUERY__CONSTR_TYPE__CONSTR_NOTNULL, NULL);
	tname = dc_analysis__type_base(cd->type_name, &builtin);
	if (!dc_lint__in_tx(l) && !c->missing_ok)
		dc_lint__emit_at(
		        l, R_ROBUST, off, NULL,
		        "ADD COLUMN '%s' in a non-transactional phase fails when re-run: use ADD COLUMN "
		        "IF NOT EXISTS",
		        col);
	if (!is_new) {
		if (serial || ident || gen)
			dc_lint__emit_at(
			        l, R_ADD_COLUMN_REWRITE, off, NULL,
			        "adding the %s column '%s' rewrites '%s' and its indexes under ACCESS "
			        "EXCLUSIVE",
			        serial  ? tname
			        : ident ? "identity"
			                : "stored generated",
			        col, q.buf);
		else if (has_def && !nulldef && !dc_analysis__default_is_fast(def->raw_expr))
			dc_lint__emit_at(
			        l, R_ADD_COLUMN_REWRITE, dc_lint__at(l, def->location), NULL,
			        "the default of '%s' is volatile (or not known to be stable): adding it "
			        "rewrites '%s' and its indexes under ACCESS EXCLUSIVE",
			        col, q.buf);
		else if (!builtin && dc_lint__set_has(&l->types, tname, &tv) && tv == (void *)2)
			dc_lint__emit_at(
			        l, R_ADD_COLUMN_DOMAIN, off, NULL,
			        "column '%s' has the domain '%s', which has constraints: adding it "
			        "rewrites '%s' (every row verified) under ACCESS EXCLUSIVE",
			        col, tname, q.buf);
		else if (!builtin && !dc_lint__set_has(&l->types, tname, NULL))
			dc_lint__emit_at(
			        l, R_ADD_COLUMN_DOMAIN, off, NULL,
			        "column '%s' has the user-defined type '%s': if it is a domain with "
			        "constraints, adding it rewrites '%s' (check with 'deployclaw plan --live')",
			        col, tname, q.buf);
		if (notnull && (!has_def || nulldef) && !serial && !ident && !gen)
			dc_lint__emit_at(
			        l, R_ADD_REQUIRED, off, NULL,
			        "adding '%s' NOT NULL without a default fails on a non-empty '%s'",
			        col, q.buf);
		if (col_has(cd, PG_QUERY__CONSTR_TYPE__CONSTR_FOREIGN, &k) && has_def && !nulldef)
			dc_lint__emit_at(
			        l, R_FK_VALIDATES, dc_lint__at(l, k->location), NULL,
			        "column '%s' references '%s' and has a default: every row is validated "
			        "under SHARE ROW EXCLUSIVE",
			        col, dc_lint__rvname(k->pktable));
		if (col_has(cd, PG_QUERY__CONSTR_TYPE__CONSTR_PRIMARY, &k))
			dc_lint__emit_at(
			        l, R_ADD_PK, dc_lint__at(l, k->location), NULL,
			        "ADD COLUMN '%s' PRIMARY KEY builds an index under ACCESS EXCLUSIVE",
			        col);
		if (col_has(cd, PG_QUERY__CONSTR_TYPE__CONSTR_UNIQUE, &k))
			dc_lint__emit_at(
			        l, R_ADD_UNIQUE, dc_lint__at(l, k->location), NULL,
			        "ADD COLUMN '%s' UNIQUE builds an index under ACCESS EXCLUSIVE",
			        col);
		if (col_has(cd, PG_QUERY__CONSTR_TYPE__CONSTR_CHECK, &k) && !k->skip_validation)
			dc_lint__emit_at(
			        l, R_CHECK_VALIDATES, dc_lint__at(l, k->location), NULL,
			        "the CHECK on new column '%s' scans '%s' under ACCESS EXCLUSIVE",
			        col, q.buf);
	}
	dc_lint__put(l, &l->coltypes, dc_lint__key(l, dc_lint__rvname(rv), col),
	             dc_lint__keep_type(l, cd->type_name));
	if (dc_strbuf_error(&q))
		l->failed = DC_ENOMEM;
	dc_strbuf_release(&q);
}

/* ALTER COLUMN ... TYPE's walk: DC301-DC307 on the new type, which it records. */
void dc_lint__alter_column_type(lint *l, const PgQuery__AlterTableCmd *c, const char *table)
{
	const PgQuery__Node *def = c->def;
	const PgQuery__ColumnDef *cd =
	        def && def->node_case == PG_QUERY__NODE__NODE_COLUMN_DEF ? def->column_def : NULL;

	if (!cd)
		return;
	dc_lint__check_type(l, cd->type_name, c->name ? c->name : "");
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
		dc_lint__emit_sev(l, R_TYPE_REWRITE, DC_SEV_INFO,
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
