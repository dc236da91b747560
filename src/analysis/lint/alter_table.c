/*
 * alter_table.c -- the ALTER TABLE walk. Its sub-commands are checked in
 * order, each against what the earlier ones recorded (DROP CONSTRAINT IF
 * EXISTS c, ADD CONSTRAINT c is robust), by the rule family they belong to.
 */
#include <string.h>

#include "../lint_internal.h"

void dc_lint__alter_table(lint *l, const PgQuery__AlterTableStmt *a)
{
	const PgQuery__RangeVar *rv = a->relation;
	const char *t = dc_lint__rvname(rv);
	bool is_new = dc_lint__table_is_new(l, rv);
	dc_strbuf q = DC_STRBUF_INIT;
	size_t i;

	if (a->objtype != PG_QUERY__OBJECT_TYPE__OBJECT_TABLE)
		return;
	dc_lint__qual(&q, rv);
	if (rv && !(rv->schemaname && rv->schemaname[0]))
		dc_lint__emit(l, R_REQUIRE_SCHEMA, NULL, "'%s' is not schema-qualified", t);
	for (i = 0; i < a->n_cmds; i++) {
		const PgQuery__AlterTableCmd *c;
		const PgQuery__Node *def;

		if (a->cmds[i]->node_case != PG_QUERY__NODE__NODE_ALTER_TABLE_CMD)
			continue;
		c = a->cmds[i]->alter_table_cmd;
		def = c->def;
		switch (c->subtype) {
		case PG_QUERY__ALTER_TABLE_TYPE__AT_AddColumn:
		case PG_QUERY__ALTER_TABLE_TYPE__AT_AddColumnRecurse:
			if (def && def->node_case == PG_QUERY__NODE__NODE_COLUMN_DEF)
				dc_lint__add_column(l, rv, c, def->column_def, is_new);
			break;
		case PG_QUERY__ALTER_TABLE_TYPE__AT_DropColumn:
		case PG_QUERY__ALTER_TABLE_TYPE__AT_DropColumnRecurse:
			if (!is_new &&
			    !dc_lint__set_has(&l->coltypes, dc_lint__key(l, t, c->name), NULL))
				dc_lint__emit(
				        l, R_DROP_COLUMN, NULL,
				        "dropping column '%s' of '%s' breaks clients that still use it",
				        c->name ? c->name : "", q.buf);
			if (!dc_lint__in_tx(l) && !c->missing_ok)
				dc_lint__emit(
				        l, R_ROBUST, NULL,
				        "DROP COLUMN '%s' in a non-transactional phase fails when re-run: use "
				        "DROP COLUMN IF EXISTS",
				        c->name ? c->name : "");
			break;
		case PG_QUERY__ALTER_TABLE_TYPE__AT_AlterColumnType:
			dc_lint__alter_column_type(l, c, t, q.buf, is_new);
			break;
		case PG_QUERY__ALTER_TABLE_TYPE__AT_SetNotNull:
			if (!is_new &&
			    !dc_lint__set_has(&l->validated, dc_lint__key(l, t, c->name), NULL))
				dc_lint__set_not_null(l, c, q.buf);
			break;
		case PG_QUERY__ALTER_TABLE_TYPE__AT_DropNotNull:
			if (!is_new)
				dc_lint__emit(
				        l, R_DROP_NOT_NULL, NULL,
				        "'%s.%s' may now hold NULL: clients may not expect it",
				        q.buf, c->name ? c->name : "");
			break;
		case PG_QUERY__ALTER_TABLE_TYPE__AT_AddConstraint:
		case PG_QUERY__ALTER_TABLE_TYPE__AT_AddConstraintRecurse:
			if (def && def->node_case == PG_QUERY__NODE__NODE_CONSTRAINT)
				dc_lint__add_constraint(l, rv, def->constraint, is_new);
			break;
		case PG_QUERY__ALTER_TABLE_TYPE__AT_ValidateConstraint:
		case PG_QUERY__ALTER_TABLE_TYPE__AT_ValidateConstraintRecurse:
			dc_lint__validate_constraint(l, c, t);
			break;
		case PG_QUERY__ALTER_TABLE_TYPE__AT_DropConstraint:
		case PG_QUERY__ALTER_TABLE_TYPE__AT_DropConstraintRecurse:
			if (dc_lint__set_has(&l->fks, dc_lint__key(l, t, c->name), NULL))
				dc_lint__emit(
				        l, R_DROP_FK, NULL,
				        "dropping the foreign key '%s' also locks its referenced table ACCESS "
				        "EXCLUSIVE",
				        c->name ? c->name : "");
			if (!dc_lint__in_tx(l) && !c->missing_ok)
				dc_lint__emit(
				        l, R_ROBUST, NULL,
				        "DROP CONSTRAINT '%s' in a non-transactional phase fails when re-run: use "
				        "DROP CONSTRAINT IF EXISTS",
				        c->name ? c->name : "");
			dc_lint__put(l, &l->dropped_cons, dc_lint__key(l, t, c->name), NULL);
			break;
		case PG_QUERY__ALTER_TABLE_TYPE__AT_SetLogged:
		case PG_QUERY__ALTER_TABLE_TYPE__AT_SetUnLogged:
		case PG_QUERY__ALTER_TABLE_TYPE__AT_SetAccessMethod:
		case PG_QUERY__ALTER_TABLE_TYPE__AT_SetTableSpace:
			if (!is_new)
				dc_lint__emit(l, R_TABLE_REWRITE, NULL,
				              "this copies all of '%s' under ACCESS EXCLUSIVE",
				              q.buf);
			break;
		case PG_QUERY__ALTER_TABLE_TYPE__AT_SetRelOptions:
		case PG_QUERY__ALTER_TABLE_TYPE__AT_ReplaceRelOptions:
		case PG_QUERY__ALTER_TABLE_TYPE__AT_ReplicaIdentity:
		case PG_QUERY__ALTER_TABLE_TYPE__AT_DetachPartition:
			dc_lint__alter_storage(l, c, q.buf);
			break;
		default:
			break;
		}
	}
	if (dc_strbuf_error(&q))
		l->failed = DC_ENOMEM;
	dc_strbuf_release(&q);
}
