/*
 * alter_table.c -- the ALTER TABLE walk. Its sub-commands are checked in
 * order, each against what the earlier ones recorded (DROP CONSTRAINT IF
 * EXISTS c, ADD CONSTRAINT c is robust): first by the sub-command checks
 * rules.def lists, then the walk records what later sub-commands and
 * statements look at.
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
	for (i = 0; i < a->n_cmds; i++) {
		const PgQuery__AlterTableCmd *c;
		const PgQuery__Node *def;
		dc_lint_cmd cmd;

		if (a->cmds[i]->node_case != PG_QUERY__NODE__NODE_ALTER_TABLE_CMD)
			continue;
		c = a->cmds[i]->alter_table_cmd;
		def = c->def;
		cmd = (dc_lint_cmd){ c, rv, t, q.buf, is_new };
		dc_lint__cmd_checks(l, &cmd);
		switch (c->subtype) {
		case PG_QUERY__ALTER_TABLE_TYPE__AT_AddColumn:
		case PG_QUERY__ALTER_TABLE_TYPE__AT_AddColumnRecurse:
			if (def && def->node_case == PG_QUERY__NODE__NODE_COLUMN_DEF)
				dc_lint__add_column(l, rv, def->column_def);
			break;
		case PG_QUERY__ALTER_TABLE_TYPE__AT_AlterColumnType:
			dc_lint__alter_column_type(l, c, t);
			break;
		case PG_QUERY__ALTER_TABLE_TYPE__AT_AddConstraint:
		case PG_QUERY__ALTER_TABLE_TYPE__AT_AddConstraintRecurse:
			if (def && def->node_case == PG_QUERY__NODE__NODE_CONSTRAINT)
				dc_lint__add_constraint(l, rv, def->constraint);
			break;
		case PG_QUERY__ALTER_TABLE_TYPE__AT_ValidateConstraint:
		case PG_QUERY__ALTER_TABLE_TYPE__AT_ValidateConstraintRecurse:
			dc_lint__validate_constraint(l, c, t);
			break;
		case PG_QUERY__ALTER_TABLE_TYPE__AT_DropConstraint:
		case PG_QUERY__ALTER_TABLE_TYPE__AT_DropConstraintRecurse:
			dc_lint__put(l, &l->dropped_cons, dc_lint__key(l, t, c->name), NULL);
			break;
		default:
			break;
		}
	}
	if (dc_strbuf_error(&q))
		l->failed = DC_ENOMEM;
	dc_strbuf_release(&q);
}
