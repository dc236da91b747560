/*
 * transactions.c -- the DC4xx rules: BEGIN/COMMIT in or out of deployclaw's
 * transaction, and statements that cannot run in a transaction.
 */
#include "../lint_internal.h"

void dc_lint__tx_reset(lint *l)
{
	dc_lint__set_release(&l->tx_not_valid);
	l->tx_strong_lock = false;
}

void dc_lint__transaction(lint *l, const PgQuery__TransactionStmt *t)
{
	switch (t->kind) {
	case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_BEGIN:
	case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_START:
		if (l->wrapped)
			dc_lint__emit(
			        l, R_TX_CONTROL_WRAPPED, NULL,
			        "BEGIN inside a phase deployclaw already runs in a transaction");
		else if (l->explicit_tx)
			dc_lint__emit(l, R_TX_NESTING, NULL, "BEGIN inside an open transaction");
		l->explicit_tx = true;
		l->begin_off = l->stmt_off;
		dc_lint__tx_reset(l);
		break;
	case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_COMMIT:
	case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_ROLLBACK:
		if (l->wrapped)
			dc_lint__emit(
			        l, R_TX_CONTROL_WRAPPED, NULL,
			        "%s inside a phase deployclaw runs in a transaction ends it early",
			        t->kind == PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_COMMIT
			                ? "COMMIT"
			                : "ROLLBACK");
		else if (!l->explicit_tx)
			dc_lint__emit(l, R_TX_NESTING, NULL, "%s with no open transaction",
			              t->kind == PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_COMMIT
			                      ? "COMMIT"
			                      : "ROLLBACK");
		if (!t->chain)
			l->explicit_tx = false;
		dc_lint__tx_reset(l);
		break;
	case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_PREPARE:
		if (l->wrapped)
			dc_lint__emit(
			        l, R_TX_CONTROL_WRAPPED, NULL,
			        "PREPARE TRANSACTION inside a phase deployclaw runs in a transaction");
		l->explicit_tx = false;
		dc_lint__tx_reset(l);
		break;
	default:
		break;
	}
}

/*
 * A statement that cannot run in a transaction: refused after a BEGIN;
 * in a transactional phase, remembered for the end of the block.
 */
void dc_lint__nontx(lint *l, const PgQuery__Node *n)
{
	dc_stmt_model *m = l->model;

	if (!m->transactional && !m->transaction_control) {
		const char *what = dc_analysis__autocommit_what(n);

		if (l->explicit_tx)
			dc_lint__emit(l, R_NONTX_IN_BLOCK, NULL,
			              "%s cannot run inside a transaction block",
			              what ? what : m->kind);
		else if (l->wrapped && l->nnontx < sizeof(l->nontx) / sizeof(l->nontx[0])) {
			l->nontx[l->nnontx].off = l->stmt_off;
			l->nontx[l->nnontx].stmt_i = l->stmt_i;
			l->nontx[l->nnontx].what = what ? what : m->kind;
			l->nnontx++;
		}
	}
	if (n->node_case != PG_QUERY__NODE__NODE_VARIABLE_SET_STMT &&
	    n->node_case != PG_QUERY__NODE__NODE_TRANSACTION_STMT)
		l->substantive++;
}

/* What only the end of a block tells: DC405 (the phase has other statements), DC404. */
void dc_lint__block_end(lint *l)
{
	size_t i;

	if (l->substantive > l->nnontx)
		for (i = 0; i < l->nnontx; i++) {
			l->stmt_off = l->nontx[i].off;
			l->stmt_i = l->nontx[i].stmt_i;
			dc_lint__emit(
			        l, R_NONTX_IN_PHASE, NULL,
			        "%s cannot run in a transaction: deployclaw runs it alone, committing the "
			        "statements before it; give it a phase with 'transaction: false'",
			        l->nontx[i].what);
		}
	if (l->explicit_tx) {
		l->stmt_off = l->begin_off;
		dc_lint__emit(l, R_TX_UNCOMMITTED, "COMMIT;",
		              "BEGIN with no COMMIT before the end");
	}
}

/*
 * DC406, a statement check and a sub-command check: what fails when a
 * non-transactional phase is re-run after failing half way. ADD CONSTRAINT
 * is robust after a DROP CONSTRAINT IF EXISTS of the same name, which the
 * walk of an earlier sub-command recorded.
 */
void dc_lint__check_robust(lint *l, const PgQuery__Node *n)
{
	if (dc_lint__in_tx(l))
		return;
	switch (n->node_case) {
	case PG_QUERY__NODE__NODE_CREATE_STMT:
		if (n->create_stmt->relation && !n->create_stmt->if_not_exists)
			dc_lint__emit(
			        l, R_ROBUST, NULL,
			        "CREATE TABLE '%s' in a non-transactional phase fails when re-run: "
			        "use IF NOT EXISTS",
			        dc_lint__rvname(n->create_stmt->relation));
		break;
	case PG_QUERY__NODE__NODE_INDEX_STMT: {
		const PgQuery__IndexStmt *ix = n->index_stmt;

		if (ix->concurrent && !ix->if_not_exists)
			dc_lint__emit(
			        l, R_ROBUST, NULL,
			        "a failed CREATE INDEX CONCURRENTLY leaves an INVALID index%s%s%s: "
			        "re-running fails without IF NOT EXISTS",
			        ix->idxname ? " '" : "", ix->idxname ? ix->idxname : "",
			        ix->idxname ? "'" : "");
		break;
	}
	case PG_QUERY__NODE__NODE_DROP_STMT:
		if (!n->drop_stmt->missing_ok)
			dc_lint__emit(
			        l, R_ROBUST, NULL,
			        "DROP in a non-transactional phase fails when re-run: use DROP ... "
			        "IF EXISTS");
		break;
	default:
		break;
	}
}

void dc_lint__check_robust_cmd(lint *l, const dc_lint_cmd *cmd)
{
	const PgQuery__AlterTableCmd *c = cmd->c;
	const PgQuery__Node *def = c->def;

	if (dc_lint__in_tx(l))
		return;
	switch (c->subtype) {
	case PG_QUERY__ALTER_TABLE_TYPE__AT_AddColumn:
	case PG_QUERY__ALTER_TABLE_TYPE__AT_AddColumnRecurse:
		if (def && def->node_case == PG_QUERY__NODE__NODE_COLUMN_DEF && !c->missing_ok)
			dc_lint__emit_at(
			        l, R_ROBUST, dc_lint__at(l, def->column_def->location), NULL,
			        "ADD COLUMN '%s' in a non-transactional phase fails when re-run: "
			        "use ADD COLUMN IF NOT EXISTS",
			        def->column_def->colname ? def->column_def->colname : "");
		break;
	case PG_QUERY__ALTER_TABLE_TYPE__AT_DropColumn:
	case PG_QUERY__ALTER_TABLE_TYPE__AT_DropColumnRecurse:
		if (!c->missing_ok)
			dc_lint__emit(
			        l, R_ROBUST, NULL,
			        "DROP COLUMN '%s' in a non-transactional phase fails when re-run: "
			        "use DROP COLUMN IF EXISTS",
			        c->name ? c->name : "");
		break;
	case PG_QUERY__ALTER_TABLE_TYPE__AT_AddConstraint:
	case PG_QUERY__ALTER_TABLE_TYPE__AT_AddConstraintRecurse:
		if (def && def->node_case == PG_QUERY__NODE__NODE_CONSTRAINT &&
		    def->constraint->conname && def->constraint->conname[0] &&
		    !dc_lint__set_has(&l->dropped_cons,
		                      dc_lint__key(l, cmd->table, def->constraint->conname), NULL))
			dc_lint__emit_at(
			        l, R_ROBUST, dc_lint__at(l, def->constraint->location), NULL,
			        "ADD CONSTRAINT '%s' in a non-transactional phase fails when "
			        "re-run: drop it IF EXISTS first",
			        def->constraint->conname);
		break;
	case PG_QUERY__ALTER_TABLE_TYPE__AT_DropConstraint:
	case PG_QUERY__ALTER_TABLE_TYPE__AT_DropConstraintRecurse:
		if (!c->missing_ok)
			dc_lint__emit(
			        l, R_ROBUST, NULL,
			        "DROP CONSTRAINT '%s' in a non-transactional phase fails when "
			        "re-run: use DROP CONSTRAINT IF EXISTS",
			        c->name ? c->name : "");
		break;
	default:
		break;
	}
}
