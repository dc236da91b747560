/*
 * breaking.c -- the DC2xx rules: changes that lose data or break running
 * application versions (drops, renames, enum values).
 */
#include <stdint.h>
#include <string.h>

#include "../isolation.h"
#include "../lint_internal.h"

/* A dropped object's name (the last of a qualified one). */
static const char *drop_name(const PgQuery__Node *o)
{
	const PgQuery__List *li = o->node_case == PG_QUERY__NODE__NODE_LIST ? o->list : NULL;

	if (li)
		return li->n_items ? dc_analysis__str(li->items[li->n_items - 1]) : NULL;
	return dc_analysis__str(o);
}

/*
 * DROP's walk: DC201 against the tables this migration created (which it
 * forgets as they are dropped, object by object). What a DROP names in
 * another schema is DC501's, from ../isolation.c.
 */
void dc_lint__drop(lint *l, const PgQuery__DropStmt *d)
{
	size_t i;

	if (d->remove_type != PG_QUERY__OBJECT_TYPE__OBJECT_TABLE)
		return;
	for (i = 0; i < d->n_objects; i++) {
		const PgQuery__Node *o = d->objects[i];
		const PgQuery__List *li =
		        o->node_case == PG_QUERY__NODE__NODE_LIST ? o->list : NULL;
		const char *name =
		        li ? (li->n_items ? dc_analysis__str(li->items[li->n_items - 1]) : NULL)
		           : dc_analysis__str(o);

		if (!name)
			continue;
		if (!dc_lint__set_has(&l->tables, name, NULL))
			dc_lint__emit(l, R_DROP_TABLE, NULL, "dropping table '%s' loses its data",
			              name);
		else
			dc_lint__set_del(&l->tables, name);
	}
}

/* DROP INDEX and DROP SCHEMA (DC102, DC203): statement checks, from rules.def. */
void dc_lint__check_drop_index(lint *l, const PgQuery__Node *n)
{
	const PgQuery__DropStmt *d;
	dc_strbuf sb = DC_STRBUF_INIT;
	size_t i;

	if (n->node_case != PG_QUERY__NODE__NODE_DROP_STMT ||
	    n->drop_stmt->remove_type != PG_QUERY__OBJECT_TYPE__OBJECT_INDEX ||
	    n->drop_stmt->concurrent)
		return;
	d = n->drop_stmt;
	for (i = 0; i < d->n_objects; i++) {
		const char *name = drop_name(d->objects[i]);

		if (!name || dc_lint__set_has(&l->indexes, name, NULL))
			continue;
		dc_lint__suggest_concurrently(l, &sb, "index",
		                              d->missing_ok ? " CONCURRENTLY"
		                                            : " CONCURRENTLY IF EXISTS");
		dc_lint__emit(l, R_DROP_INDEX_NONCONC, sb.len ? sb.buf : NULL,
		              "DROP INDEX '%s' takes ACCESS EXCLUSIVE on its table", name);
	}
	if (dc_strbuf_error(&sb))
		l->failed = DC_ENOMEM;
	dc_strbuf_release(&sb);
}

void dc_lint__check_drop_schema(lint *l, const PgQuery__Node *n)
{
	size_t i;

	if (n->node_case != PG_QUERY__NODE__NODE_DROP_STMT ||
	    n->drop_stmt->remove_type != PG_QUERY__OBJECT_TYPE__OBJECT_SCHEMA)
		return;
	for (i = 0; i < n->drop_stmt->n_objects; i++) {
		const char *name = drop_name(n->drop_stmt->objects[i]);

		if (name)
			dc_lint__emit(l, R_DROP_SCHEMA, NULL, "dropping schema '%s'", name);
	}
}

/*
 * RENAME's walk: DC207, kept with the finding's index for a later view's
 * exemption; a table this migration created is known by its new name.
 */
void dc_lint__rename(lint *l, const PgQuery__RenameStmt *r)
{
	switch (r->rename_type) {
	case PG_QUERY__OBJECT_TYPE__OBJECT_TABLE:
		if (!dc_lint__table_is_new(l, r->relation)) {
			dc_lint__emit(l, R_RENAME_TABLE, NULL,
			              "renaming '%s' to '%s' breaks running application versions",
			              dc_lint__rvname(r->relation), r->newname ? r->newname : "");
			if (l->out->len &&
			    l->out->items[l->out->len - 1].rule == dc_lint__rule(R_RENAME_TABLE))
				dc_lint__put(l, &l->renamed, dc_lint__rvname(r->relation),
				             (void *)(uintptr_t)l->out->len);
		} else if (r->newname) {
			dc_lint__set_del(&l->tables, dc_lint__rvname(r->relation));
			dc_lint__put(l, &l->tables, r->newname, NULL);
		}
		break;
	default:
		break;
	}
}

/* Column and schema renames (DC208, DC209): statement checks, from rules.def. */
void dc_lint__check_rename_column(lint *l, const PgQuery__Node *n)
{
	const PgQuery__RenameStmt *r;

	if (n->node_case != PG_QUERY__NODE__NODE_RENAME_STMT)
		return;
	r = n->rename_stmt;
	if (r->rename_type == PG_QUERY__OBJECT_TYPE__OBJECT_COLUMN &&
	    r->relation_type == PG_QUERY__OBJECT_TYPE__OBJECT_TABLE &&
	    !dc_lint__table_is_new(l, r->relation))
		dc_lint__emit(l, R_RENAME_COLUMN, NULL,
		              "renaming '%s.%s' to '%s' breaks running application versions",
		              dc_lint__rvname(r->relation), r->subname ? r->subname : "",
		              r->newname ? r->newname : "");
}

void dc_lint__check_rename_schema(lint *l, const PgQuery__Node *n)
{
	const PgQuery__RenameStmt *r;

	if (n->node_case != PG_QUERY__NODE__NODE_RENAME_STMT)
		return;
	r = n->rename_stmt;
	if (r->rename_type == PG_QUERY__OBJECT_TYPE__OBJECT_SCHEMA)
		dc_lint__emit(l, R_RENAME_SCHEMA, NULL, "renaming schema '%s' to '%s'",
		              r->subname ? r->subname : "", r->newname ? r->newname : "");
}

/*
 * DROP DATABASE, TRUNCATE ... CASCADE, enum value renames and ordering:
 * statement checks, from rules.def.
 */
void dc_lint__check_drop_database(lint *l, const PgQuery__Node *n)
{
	if (n->node_case == PG_QUERY__NODE__NODE_DROPDB_STMT)
		dc_lint__emit(l, R_DROP_DATABASE, NULL, "dropping database '%s'",
		              n->dropdb_stmt->dbname ? n->dropdb_stmt->dbname : "");
}

void dc_lint__check_truncate_cascade(lint *l, const PgQuery__Node *n)
{
	if (n->node_case == PG_QUERY__NODE__NODE_TRUNCATE_STMT &&
	    n->truncate_stmt->behavior == PG_QUERY__DROP_BEHAVIOR__DROP_CASCADE)
		dc_lint__emit(l, R_TRUNCATE_CASCADE, NULL,
		              "TRUNCATE ... CASCADE also empties every table referencing these");
}

void dc_lint__check_rename_enum_value(lint *l, const PgQuery__Node *n)
{
	const PgQuery__AlterEnumStmt *e;

	if (n->node_case != PG_QUERY__NODE__NODE_ALTER_ENUM_STMT)
		return;
	e = n->alter_enum_stmt;
	if (e->old_val && e->old_val[0])
		dc_lint__emit(
		        l, R_RENAME_ENUM_VALUE, NULL,
		        "renaming enum value '%s' to '%s' breaks running application versions",
		        e->old_val, e->new_val ? e->new_val : "");
}

void dc_lint__check_enum_order(lint *l, const PgQuery__Node *n)
{
	const PgQuery__AlterEnumStmt *e;

	if (n->node_case != PG_QUERY__NODE__NODE_ALTER_ENUM_STMT)
		return;
	e = n->alter_enum_stmt;
	if (!(e->old_val && e->old_val[0]) && !(e->new_val_neighbor && e->new_val_neighbor[0]))
		dc_lint__emit(l, R_ENUM_ORDER, NULL,
		              "enum value '%s' is added last in the sort order",
		              e->new_val ? e->new_val : "");
}

/* ALTER TABLE's DROP COLUMN, DROP CONSTRAINT (a foreign key), DROP NOT NULL. */
void dc_lint__check_drop_column(lint *l, const dc_lint_cmd *cmd)
{
	const PgQuery__AlterTableCmd *c = cmd->c;

	if ((c->subtype == PG_QUERY__ALTER_TABLE_TYPE__AT_DropColumn ||
	     c->subtype == PG_QUERY__ALTER_TABLE_TYPE__AT_DropColumnRecurse) &&
	    !cmd->is_new &&
	    !dc_lint__set_has(&l->coltypes, dc_lint__key(l, cmd->table, c->name), NULL))
		dc_lint__emit(l, R_DROP_COLUMN, NULL,
		              "dropping column '%s' of '%s' breaks clients that still use it",
		              c->name ? c->name : "", cmd->qual);
}

void dc_lint__check_drop_fk(lint *l, const dc_lint_cmd *cmd)
{
	const PgQuery__AlterTableCmd *c = cmd->c;

	if ((c->subtype == PG_QUERY__ALTER_TABLE_TYPE__AT_DropConstraint ||
	     c->subtype == PG_QUERY__ALTER_TABLE_TYPE__AT_DropConstraintRecurse) &&
	    dc_lint__set_has(&l->fks, dc_lint__key(l, cmd->table, c->name), NULL))
		dc_lint__emit(
		        l, R_DROP_FK, NULL,
		        "dropping the foreign key '%s' also locks its referenced table ACCESS "
		        "EXCLUSIVE",
		        c->name ? c->name : "");
}

void dc_lint__check_drop_not_null(lint *l, const dc_lint_cmd *cmd)
{
	if (cmd->c->subtype == PG_QUERY__ALTER_TABLE_TYPE__AT_DropNotNull && !cmd->is_new)
		dc_lint__emit(l, R_DROP_NOT_NULL, NULL,
		              "'%s.%s' may now hold NULL: clients may not expect it", cmd->qual,
		              cmd->c->name ? cmd->c->name : "");
}

/* A view taking a renamed table's old name (DC207's exemption). */
void dc_lint__view(lint *l, const PgQuery__ViewStmt *v)
{
	void *fi = NULL;

	if (v->view && v->view->relname && dc_lint__set_has(&l->renamed, v->view->relname, &fi) &&
	    fi) {
		/* BC101's exemption: a view keeps the old name working */
		l->out->items[(uintptr_t)fi - 1].severity = DC_SEV_OFF;
		dc_lint__set_del(&l->renamed, v->view->relname);
	}
}
