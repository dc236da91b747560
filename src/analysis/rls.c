/*
 * rls.c -- row-level security on PostgreSQL's parse tree: the statements
 * that weaken a table's RLS (and those that make it good again), for the
 * `rls` gate's static refusal; and whether a policy's expression refers to
 * the tenant column, for the engine's RLS check (src/engine/pg/rls.c).
 */
#include "rls.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "analysis_internal.h"

/* The operation that makes `weak` good, besides DROP TABLE. */
static dc_rls_op remedy(dc_rls_op weak)
{
	return weak == DC_RLS_DISABLE    ? DC_RLS_ENABLE
	       : weak == DC_RLS_NO_FORCE ? DC_RLS_FORCE
	                                 : DC_RLS_CREATE_POLICY;
}

static bool same_table(const dc_rls_weakening *w, const char *schema, const char *table)
{
	return !strcmp(w->table, table) &&
	       (!w->schema[0] || !schema[0] || !strcmp(w->schema, schema));
}

/* Records what one statement does to `schema`.`table`: opens a weakening or
 * closes the open ones it makes good. */
static int note(dc_rls_tracker *t,
                dc_rls_op op,
                const char *schema,
                const char *table,
                const char *policy,
                int loc,
                const void *tag,
                dc_error *err)
{
	dc_rls_weakening *w;
	size_t i, kept = 0;

	schema = schema ? schema : "";
	table = table ? table : "";
	if (op >= DC_RLS_ENABLE) {
		for (i = 0; i < t->nopen; i++) {
			w = &t->open[i];
			if (same_table(w, schema, table) &&
			    (op == DC_RLS_DROP_TABLE || remedy(w->op) == op))
				continue;
			t->open[kept++] = *w;
		}
		t->nopen = kept;
		return 0;
	}
	if (t->nopen == DC_RLS_MAX_OPEN)
		return dc_error_set(err, DC_ELIMIT,
		                    "more than %d statements weaken row-level security",
		                    DC_RLS_MAX_OPEN);
	w = &t->open[t->nopen++];
	memset(w, 0, sizeof(*w));
	w->tag = tag;
	w->loc = loc;
	w->op = op;
	snprintf(w->schema, sizeof(w->schema), "%s", schema);
	snprintf(w->table, sizeof(w->table), "%s", table);
	snprintf(w->policy, sizeof(w->policy), "%s", policy ? policy : "");
	return 0;
}

static int alter_table(dc_rls_tracker *t,
                       const PgQuery__AlterTableStmt *a,
                       const void *tag,
                       dc_error *err)
{
	const PgQuery__RangeVar *rv = a->relation;
	size_t i;
	int rc = 0;

	if (!rv)
		return 0;
	for (i = 0; i < a->n_cmds && !rc; i++) {
		const PgQuery__Node *n = a->cmds[i];
		dc_rls_op op;

		if (n->node_case != PG_QUERY__NODE__NODE_ALTER_TABLE_CMD)
			continue;
		switch (n->alter_table_cmd->subtype) {
		case PG_QUERY__ALTER_TABLE_TYPE__AT_DisableRowSecurity:
			op = DC_RLS_DISABLE;
			break;
		case PG_QUERY__ALTER_TABLE_TYPE__AT_NoForceRowSecurity:
			op = DC_RLS_NO_FORCE;
			break;
		case PG_QUERY__ALTER_TABLE_TYPE__AT_EnableRowSecurity:
			op = DC_RLS_ENABLE;
			break;
		case PG_QUERY__ALTER_TABLE_TYPE__AT_ForceRowSecurity:
			op = DC_RLS_FORCE;
			break;
		default:
			continue;
		}
		rc = note(t, op, rv->schemaname, rv->relname, NULL, rv->location, tag, err);
	}
	return rc;
}

/* DROP POLICY p ON [schema.]table (the object is the table's names, then the
 * policy's) and DROP TABLE [schema.]table, .... */
static int drop(dc_rls_tracker *t,
                const PgQuery__DropStmt *d,
                int stmt_loc,
                const void *tag,
                dc_error *err)
{
	bool policy = d->remove_type == PG_QUERY__OBJECT_TYPE__OBJECT_POLICY;
	size_t i, n, skip = policy ? 1 : 0;
	int rc = 0;

	if (!policy && d->remove_type != PG_QUERY__OBJECT_TYPE__OBJECT_TABLE)
		return 0;
	for (i = 0; i < d->n_objects && !rc; i++) {
		const PgQuery__Node *o = d->objects[i];
		PgQuery__Node **names;

		if (o->node_case != PG_QUERY__NODE__NODE_LIST || o->list->n_items <= skip)
			continue;
		names = o->list->items;
		n = o->list->n_items - skip;
		rc = note(t, policy ? DC_RLS_DROP_POLICY : DC_RLS_DROP_TABLE,
		          n > 1 ? dc_analysis__str(names[n - 2]) : NULL,
		          dc_analysis__str(names[n - 1]),
		          policy ? dc_analysis__str(names[n]) : NULL, stmt_loc, tag, err);
	}
	return rc;
}

int dc_analysis__rls_node(dc_rls_tracker *t,
                          const void *node,
                          int stmt_loc,
                          const void *tag,
                          dc_error *err)
{
	const PgQuery__Node *n = node;
	const PgQuery__RangeVar *rv;

	switch (n->node_case) {
	case PG_QUERY__NODE__NODE_ALTER_TABLE_STMT:
		return alter_table(t, n->alter_table_stmt, tag, err);
	case PG_QUERY__NODE__NODE_DROP_STMT:
		return drop(t, n->drop_stmt, stmt_loc, tag, err);
	case PG_QUERY__NODE__NODE_CREATE_POLICY_STMT:
		rv = n->create_policy_stmt->table;
		return rv ? note(t, DC_RLS_CREATE_POLICY, rv->schemaname, rv->relname, NULL,
		                 rv->location, tag, err)
		          : 0;
	default:
		return 0;
	}
}

int dc_analysis__rls_sql(dc_rls_tracker *t, const char *sql, const void *tag, dc_error *err)
{
	dc_arena arena = DC_ARENA_INIT;
	PgQuery__ParseResult *tree = NULL;
	size_t i;
	int rc = dc_analysis__parse(&arena, sql, &tree, err);

	for (i = 0; rc == 0 && i < tree->n_stmts; i++)
		if (tree->stmts[i]->stmt)
			rc = dc_analysis__rls_node(t, tree->stmts[i]->stmt,
			                           tree->stmts[i]->stmt_location, tag, err);
	dc_arena_release(&arena);
	return rc;
}

void dc_analysis__rls_describe(const dc_rls_weakening *w, char *out, size_t size)
{
	const char *dot = w->schema[0] ? "." : "";

	switch (w->op) {
	case DC_RLS_DISABLE:
		snprintf(
		        out, size,
		        "ALTER TABLE '%s%s%s' DISABLE ROW LEVEL SECURITY lets every role read and write "
		        "every tenant's rows (no later ENABLE in the migration)",
		        w->schema, dot, w->table);
		break;
	case DC_RLS_NO_FORCE:
		snprintf(
		        out, size,
		        "ALTER TABLE '%s%s%s' NO FORCE ROW LEVEL SECURITY lets the table's owner past "
		        "its policies (no later FORCE in the migration)",
		        w->schema, dot, w->table);
		break;
	default:
		snprintf(
		        out, size,
		        "DROP POLICY '%s' on '%s%s%s' removes a tenant policy (no later CREATE POLICY "
		        "on the table in the migration)",
		        w->policy, w->schema, dot, w->table);
		break;
	}
}

typedef struct refers {
	const char *column;
	bool found;
} refers;

static int column_ref(void *ctx, ProtobufCMessage *m)
{
	refers *r = ctx;
	const PgQuery__ColumnRef *ref = (const PgQuery__ColumnRef *)m;
	const char *name = dc_analysis__last_name(ref->fields, ref->n_fields);

	if (name && !strcmp(name, r->column))
		r->found = true;
	return r->found; /* found: stop the walk */
}

int dc_analysis__expr_refers_to(const char *expr, const char *column, bool *out, dc_error *err)
{
	dc_arena arena = DC_ARENA_INIT;
	dc_strbuf sql = DC_STRBUF_INIT;
	PgQuery__ParseResult *tree = NULL;
	dc_error perr = { 0 };
	refers r = { column, false };
	int rc = 0;

	*out = false;
	/* an expression parses as the target list of a SELECT */
	dc_strbuf_adds(&sql, "SELECT ");
	dc_strbuf_adds(&sql, expr);
	if (dc_strbuf_error(&sql)) {
		rc = dc_error_set(err, DC_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = dc_analysis__parse(&arena, sql.buf, &tree, &perr)) != 0) {
		rc = rc == DC_EPARSE ? dc_error_set(err, rc, "policy expression '%.200s': %s", expr,
		                                    perr.message)
		                     : dc_error_set(err, rc, "%s", perr.message);
		goto out;
	}
	/* the walk only reads; its callback's pointer is writable for the rewrite */
	(void)dc_analysis__walk((ProtobufCMessage *)(uintptr_t)tree,
	                        &pg_query__column_ref__descriptor, 1000, column_ref, &r);
	*out = r.found;
out:
	dc_strbuf_release(&sql);
	dc_arena_release(&arena);
	return rc;
}
