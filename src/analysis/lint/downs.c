/*
 * downs.c -- DC502, DC503: a phase that changes the schema has a down, and
 * the down undoes every up statement whose inverse is mechanical.
 */
#include <string.h>

#include <deployclaw/migration.h>

#include "../lint_internal.h"

/* Keys naming what a statement does, for comparing a down with an up's inverse. */
static void stmt_keys(lint *l,
                      const PgQuery__Node *n,
                      strset *into,
                      bool check,
                      const strset *against,
                      bool *all_found)
{
	dc_strbuf k = DC_STRBUF_INIT;
	size_t i;

#define KEY_DONE()                                                   \
	do {                                                         \
		if (check) {                                         \
			if (!dc_lint__set_has(against, k.buf, NULL)) \
				*all_found = false;                  \
		} else {                                             \
			dc_lint__put(l, into, k.buf, NULL);          \
		}                                                    \
		dc_strbuf_reset(&k);                                 \
	} while (0)

	switch (n->node_case) {
	case PG_QUERY__NODE__NODE_DROP_STMT:
		for (i = 0; i < n->drop_stmt->n_objects; i++) {
			const PgQuery__Node *o = n->drop_stmt->objects[i];
			const char *name =
			        o->node_case == PG_QUERY__NODE__NODE_LIST && o->list->n_items
			                ? dc_analysis__str(o->list->items[o->list->n_items - 1])
			                : dc_analysis__str(o);

			dc_strbuf_addf(&k, "drop:%d:%s", (int)n->drop_stmt->remove_type,
			               name ? name : "");
			KEY_DONE();
		}
		break;
	case PG_QUERY__NODE__NODE_ALTER_TABLE_STMT:
		for (i = 0; i < n->alter_table_stmt->n_cmds; i++) {
			const PgQuery__AlterTableCmd *c;
			const char *name;

			if (n->alter_table_stmt->cmds[i]->node_case !=
			    PG_QUERY__NODE__NODE_ALTER_TABLE_CMD)
				continue;
			c = n->alter_table_stmt->cmds[i]->alter_table_cmd;
			name = c->name;
			if (c->def && c->def->node_case == PG_QUERY__NODE__NODE_CONSTRAINT)
				name = c->def->constraint->conname;
			else if (c->def && c->def->node_case == PG_QUERY__NODE__NODE_COLUMN_DEF)
				name = c->def->column_def->colname;
			else if (c->def && c->def->node_case == PG_QUERY__NODE__NODE_PARTITION_CMD)
				name = dc_lint__rvname(c->def->partition_cmd->name);
			dc_strbuf_addf(&k, "alter:%s:%d:%s",
			               dc_lint__rvname(n->alter_table_stmt->relation),
			               (int)c->subtype, name ? name : "");
			KEY_DONE();
		}
		break;
	case PG_QUERY__NODE__NODE_RENAME_STMT:
		dc_strbuf_addf(&k, "rename:%d:%s:%s:%s", (int)n->rename_stmt->rename_type,
		               n->rename_stmt->subname ? n->rename_stmt->subname
		                                       : dc_lint__rvname(n->rename_stmt->relation),
		               n->rename_stmt->newname ? n->rename_stmt->newname : "",
		               n->rename_stmt->subname ? dc_lint__rvname(n->rename_stmt->relation)
		                                       : "");
		KEY_DONE();
		break;
	default:
		break;
	}
#undef KEY_DONE
	if (dc_strbuf_error(&k))
		l->failed = DC_ENOMEM;
	dc_strbuf_release(&k);
}

static bool is_schema_change(const dc_stmt_model *m)
{
	size_t i;

	for (i = 0; i < m->nrules; i++) {
		int op = m->rules[i]->op;

		if (op != OP_DML && op != OP_SELECT && op != OP_SET && op != OP_TRANSACTION &&
		    op != OP_VACUUM && op != OP_ANALYZE && op != OP_REFRESH_MV &&
		    op != OP_REFRESH_MV_CONCURRENTLY && op != OP_LOCK_TABLE && op != OP_COMMENT &&
		    op != OP_GRANT)
			return true;
	}
	return false;
}

/* Down checks of one phase, given the up's models. */
int dc_lint__check_down(lint *l, const dc_phase *ph, const dc_stmt_list *up)
{
	dc_strbuf inv = DC_STRBUF_INIT;
	strset downkeys = { NULL, NULL, 0, 0 };
	dc_arena scratch = DC_ARENA_INIT;
	bool changes = false, all_rev = true;
	size_t i;
	int rc = 0;

	for (i = 0; i < up->len; i++) {
		if (is_schema_change(&up->items[i]))
			changes = true;
		if (!up->items[i].reversible)
			all_rev = false;
	}
	/* the inverse, last statement first */
	for (i = up->len; i-- > 0;)
		if (up->items[i].inverse) {
			dc_strbuf_adds(&inv, up->items[i].inverse);
			dc_strbuf_adds(&inv, ";\n");
		}
	if (dc_strbuf_error(&inv)) {
		rc = DC_ENOMEM;
		goto out;
	}
	l->file = ph->up.file;
	l->exact = false;
	l->stmts = ph->up.stmts;
	l->nstmts = ph->up.nstmts;
	l->stmt_i = 0;
	l->stmt_off = 0;
	l->line0 = ph->up.line;
	l->col0 = ph->up.col;
	if (!ph->down.text) {
		if (changes) {
			dc_severity sev = l->cfg->severity[R_MISSING_DOWN];
			size_t before = l->out->len;

			if (sev != DC_SEV_OFF) {
				dc_lint__emit(
				        l, R_MISSING_DOWN, all_rev && inv.len ? inv.buf : NULL,
				        "phase '%s' changes the schema but has no down%s", ph->name,
				        all_rev ? ""
				                : " (some statements have no mechanical inverse)");
				if (l->cfg->require_down && l->out->len > before)
					l->out->items[before].severity = DC_SEV_ERROR;
			}
		}
		goto out;
	}
	/* keys of what the down does */
	{
		PgQueryProtobufParseResult res = pg_query_parse_protobuf(ph->down.text);
		PgQuery__ParseResult *tree = NULL;

		if (!res.error)
			tree = dc_analysis__unpack(&scratch, &res.parse_tree);
		for (i = 0; tree && i < tree->n_stmts; i++)
			if (tree->stmts[i]->stmt)
				stmt_keys(l, tree->stmts[i]->stmt, &downkeys, false, NULL, NULL);
		dc_arena_reset(&scratch);
		pg_query_free_protobuf_parse_result(res);
	}
	/* each up statement's inverse must be in the down */
	for (i = 0; i < up->len; i++) {
		PgQueryProtobufParseResult res;
		PgQuery__ParseResult *tree = NULL;
		bool found = true;
		size_t k;

		if (!up->items[i].inverse)
			continue;
		res = pg_query_parse_protobuf(up->items[i].inverse);
		if (!res.error)
			tree = dc_analysis__unpack(&scratch, &res.parse_tree);
		for (k = 0; tree && k < tree->n_stmts; k++)
			if (tree->stmts[k]->stmt)
				stmt_keys(l, tree->stmts[k]->stmt, NULL, true, &downkeys, &found);
		dc_arena_reset(&scratch);
		pg_query_free_protobuf_parse_result(res);
		if (!found) {
			l->stmt_i = i < ph->up.nstmts ? i : 0;
			dc_lint__emit(l, R_DOWN_NOT_INVERSE, up->items[i].inverse,
			              "the down of phase '%s' does not undo this %s", ph->name,
			              up->items[i].kind);
		}
	}
out:
	dc_arena_release(&scratch);
	dc_lint__set_release(&downkeys);
	dc_strbuf_release(&inv);
	if (!rc && l->failed)
		rc = l->failed;
	return rc;
}
