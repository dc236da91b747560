/*
 * isolation.c -- what a PostgreSQL statement must not do for its tenant to
 * stay isolated: name another tenant's schema, write to deployclaw's own
 * schema, move the session to another schema or role, reach outside the
 * database, or run SQL built at run time (a DO block). Lint (DC501, DC504)
 * and the `isolation` gate both ask this file, so they agree.
 */
#include "isolation.h"

#include <pg_query/pg_query.pb-c.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <pg_query.h>

#include "analysis_internal.h"

#define OWN_SCHEMA "deployclaw"

typedef struct check {
	const dc_isolation_opts *opts;
	dc_isolation_emit_fn emit;
	void *ctx;
	bool writes; /* the statement is not a plain SELECT */
	int rc;
} check;

bool dc_analysis__allowed_schema(const char *s)
{
	return !strcmp(s, "pg_catalog") || !strcmp(s, "information_schema") ||
	       !strcmp(s, "pg_temp");
}

static bool on(const check *c, unsigned kind)
{
	if (c->rc || !(c->opts->kinds & kind))
		return false;
	if (kind & (DC_ISO_FOREIGN_REF | DC_ISO_SCHEMA_MOVE))
		return c->opts->schema_tenancy;
	return true;
}

static void report(check *c, unsigned kind, int loc, const char *fmt, ...) DC_PRINTF(4, 5);

static void report(check *c, unsigned kind, int loc, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	c->rc = c->emit(c->ctx, kind, loc, msg);
}

static int visit_rangevar(void *ctx, ProtobufCMessage *m)
{
	check *c = ctx;
	const PgQuery__RangeVar *rv = (const PgQuery__RangeVar *)m;
	const char *rel = rv->relname ? rv->relname : "";

	if (!rv->schemaname || !rv->schemaname[0])
		return c->rc;
	if (on(c, DC_ISO_FOREIGN_REF) && !dc_analysis__allowed_schema(rv->schemaname))
		report(c, DC_ISO_FOREIGN_REF, rv->location,
		       "'%s.%s' names the schema '%s': under schema tenancy every statement must "
		       "stay in the tenant's schema",
		       rv->schemaname, rel, rv->schemaname);
	if (on(c, DC_ISO_OWN_SCHEMA) && c->writes && !strcmp(rv->schemaname, OWN_SCHEMA))
		report(c, DC_ISO_OWN_SCHEMA, rv->location,
		       "'%s.%s' writes to deployclaw's own schema, which records every tenant's "
		       "history",
		       rv->schemaname, rel);
	return c->rc;
}

static const char *last_name(PgQuery__Node **names, size_t n)
{
	if (n == 0 || names[n - 1]->node_case != PG_QUERY__NODE__NODE_STRING)
		return "";
	return names[n - 1]->string->sval ? names[n - 1]->string->sval : "";
}

static bool session_setting(const char *name)
{
	return !strcmp(name, "search_path") || !strcmp(name, "role") ||
	       !strcmp(name, "session_authorization");
}

static int visit_funccall(void *ctx, ProtobufCMessage *m);

static void check_funccall(check *c, const PgQuery__FuncCall *f)
{
	const char *name = last_name(f->funcname, f->n_funcname);
	size_t i;

	if (on(c, DC_ISO_SESSION) && !strcmp(name, "set_config")) {
		const PgQuery__Node *a = f->n_args ? f->args[0] : NULL;
		const char *setting =
		        a && a->node_case == PG_QUERY__NODE__NODE_A_CONST &&
		                        a->a_const->val_case == PG_QUERY__A__CONST__VAL_SVAL &&
		                        a->a_const->sval->sval
		                ? a->a_const->sval->sval
		                : NULL;

		/* a setting computed at run time could be any of them */
		if (!setting || session_setting(setting))
			report(c, DC_ISO_SESSION, f->location,
			       "set_config('%s', ...) changes the session deployclaw pointed at the "
			       "tenant",
			       setting ? setting : "<expression>");
	}
	if (on(c, DC_ISO_OUTSIDE) && (!strncmp(name, "dblink", 6) || !strcmp(name, "lo_import") ||
	                              !strcmp(name, "lo_export")))
		report(c, DC_ISO_OUTSIDE, f->location, "%s() reaches outside the tenant's database",
		       name);
	/* the walk does not go below a call it found: calls in the arguments */
	for (i = 0; i < f->n_args && !c->rc; i++)
		dc_analysis__walk((ProtobufCMessage *)f->args[i], &pg_query__func_call__descriptor,
		                  200, visit_funccall, c);
}

static int visit_funccall(void *ctx, ProtobufCMessage *m)
{
	check_funccall(ctx, (const PgQuery__FuncCall *)m);
	return ((check *)ctx)->rc;
}

static void check_set(check *c, const PgQuery__VariableSetStmt *v)
{
	const char *name = v->name ? v->name : "";

	if (v->kind == PG_QUERY__VARIABLE_SET_KIND__VAR_RESET_ALL)
		report(c, DC_ISO_SESSION, -1,
		       "RESET ALL resets search_path and role deployclaw set for the tenant");
	else if (session_setting(name))
		report(c, DC_ISO_SESSION, -1,
		       "%s%s %s changes the session deployclaw pointed at "
		       "the tenant",
		       v->kind == PG_QUERY__VARIABLE_SET_KIND__VAR_RESET ? "RESET" : "SET",
		       v->is_local ? " LOCAL" : "", name);
}

static void check_copy(check *c, const PgQuery__CopyStmt *cp)
{
	if (cp->is_program)
		report(c, DC_ISO_OUTSIDE, -1,
		       "COPY ... PROGRAM runs a program on the database server");
	else if (cp->filename && cp->filename[0])
		report(c, DC_ISO_OUTSIDE, -1, "COPY %s the server file '%s'",
		       cp->is_from ? "reads" : "writes", cp->filename);
}

/* DROP naming deployclaw's schema or something in it. */
static void check_drop(check *c, const PgQuery__DropStmt *d)
{
	size_t i;

	for (i = 0; i < d->n_objects && !c->rc; i++) {
		const PgQuery__Node *o = d->objects[i];
		const char *first = NULL;

		if (o->node_case == PG_QUERY__NODE__NODE_STRING)
			first = d->remove_type == PG_QUERY__OBJECT_TYPE__OBJECT_SCHEMA
			                ? o->string->sval
			                : NULL;
		else if (o->node_case == PG_QUERY__NODE__NODE_LIST && o->list->n_items > 1 &&
		         o->list->items[0]->node_case == PG_QUERY__NODE__NODE_STRING)
			first = o->list->items[0]->string->sval;
		if (first && !strcmp(first, OWN_SCHEMA))
			report(c, DC_ISO_OWN_SCHEMA, -1,
			       "DROP in deployclaw's own schema, which records every tenant's history");
	}
}

static void check_schema_node(check *c, const PgQuery__Node *n)
{
	if (n->node_case == PG_QUERY__NODE__NODE_ALTER_OBJECT_SCHEMA_STMT)
		report(c, DC_ISO_SCHEMA_MOVE, -1,
		       "SET SCHEMA '%s' moves an object out of the tenant's schema",
		       n->alter_object_schema_stmt->newschema
		               ? n->alter_object_schema_stmt->newschema
		               : "");
	else if (n->node_case == PG_QUERY__NODE__NODE_CREATE_SCHEMA_STMT)
		report(c, DC_ISO_SCHEMA_MOVE, -1,
		       "CREATE SCHEMA '%s' under schema tenancy: tenants' schemas are managed by "
		       "deployclaw",
		       n->create_schema_stmt->schemaname ? n->create_schema_stmt->schemaname : "");
}

/* The checks on the statement's own kind. */
static void check_stmt(check *c, const PgQuery__Node *n)
{
	switch (n->node_case) {
	case PG_QUERY__NODE__NODE_VARIABLE_SET_STMT:
		if (on(c, DC_ISO_SESSION))
			check_set(c, n->variable_set_stmt);
		break;
	case PG_QUERY__NODE__NODE_DISCARD_STMT:
		if (on(c, DC_ISO_SESSION))
			report(c, DC_ISO_SESSION, -1,
			       "DISCARD resets the session deployclaw pointed at the tenant");
		break;
	case PG_QUERY__NODE__NODE_COPY_STMT:
		if (on(c, DC_ISO_OUTSIDE))
			check_copy(c, n->copy_stmt);
		break;
	case PG_QUERY__NODE__NODE_CREATE_FOREIGN_SERVER_STMT:
	case PG_QUERY__NODE__NODE_CREATE_FOREIGN_TABLE_STMT:
	case PG_QUERY__NODE__NODE_IMPORT_FOREIGN_SCHEMA_STMT:
		if (on(c, DC_ISO_OUTSIDE))
			report(c, DC_ISO_OUTSIDE, -1, "%s reaches outside the tenant's database",
			       n->node_case == PG_QUERY__NODE__NODE_CREATE_FOREIGN_SERVER_STMT
			               ? "CREATE SERVER"
			       : n->node_case == PG_QUERY__NODE__NODE_CREATE_FOREIGN_TABLE_STMT
			               ? "CREATE FOREIGN TABLE"
			               : "IMPORT FOREIGN SCHEMA");
		break;
	case PG_QUERY__NODE__NODE_DO_STMT:
		if (on(c, DC_ISO_DYNAMIC))
			report(c, DC_ISO_DYNAMIC, -1,
			       "a DO block runs SQL that cannot be checked before it runs: write its "
			       "statements out");
		break;
	case PG_QUERY__NODE__NODE_DROP_STMT:
		if (on(c, DC_ISO_OWN_SCHEMA))
			check_drop(c, n->drop_stmt);
		break;
	case PG_QUERY__NODE__NODE_ALTER_OBJECT_SCHEMA_STMT:
	case PG_QUERY__NODE__NODE_CREATE_SCHEMA_STMT:
		if (on(c, DC_ISO_SCHEMA_MOVE))
			check_schema_node(c, n);
		break;
	default:
		break;
	}
}

int dc_analysis__isolation_node(const void *node,
                                const dc_isolation_opts *opts,
                                dc_isolation_emit_fn emit,
                                void *ctx)
{
	const PgQuery__Node *n = node;
	check c = { opts, emit, ctx, n->node_case != PG_QUERY__NODE__NODE_SELECT_STMT, 0 };
	/* the walks only read; their callbacks' pointer is writable for the rewrite */
	ProtobufCMessage *msg = (ProtobufCMessage *)(uintptr_t)n;

	check_stmt(&c, n);
	if (!c.rc && (on(&c, DC_ISO_FOREIGN_REF) || on(&c, DC_ISO_OWN_SCHEMA)))
		dc_analysis__walk(msg, &pg_query__range_var__descriptor, 200, visit_rangevar, &c);
	if (!c.rc && (on(&c, DC_ISO_SESSION) || on(&c, DC_ISO_OUTSIDE)))
		dc_analysis__walk(msg, &pg_query__func_call__descriptor, 200, visit_funccall, &c);
	return c.rc;
}

/* A statement of a longer text: its findings on the whole statement are at its start. */
typedef struct in_text {
	dc_isolation_emit_fn emit;
	void *ctx;
	int stmt_loc;
} in_text;

static int emit_in_text(void *ctx, unsigned kind, int loc, const char *msg)
{
	const in_text *t = ctx;

	return t->emit(t->ctx, kind, loc < 0 ? t->stmt_loc : loc, msg);
}

int dc_analysis__isolation_sql(const char *sql,
                               const dc_isolation_opts *opts,
                               dc_isolation_emit_fn emit,
                               void *ctx,
                               dc_error *err)
{
	dc_arena arena = DC_ARENA_INIT;
	PgQueryProtobufParseResult res = pg_query_parse_protobuf(sql);
	PgQuery__ParseResult *tree = NULL;
	size_t i;
	int rc = 0;

	if (res.error) {
		rc = dc_error_set(err, DC_EPARSE, "%s", res.error->message);
		goto out;
	}
	if (!(tree = dc_analysis__unpack(&arena, &res.parse_tree))) {
		rc = dc_error_set(err, DC_ENOMEM, "out of memory unpacking a parse tree");
		goto out;
	}
	for (i = 0; i < tree->n_stmts && !rc; i++) {
		in_text t = { emit, ctx, tree->stmts[i]->stmt_location };

		if (tree->stmts[i]->stmt)
			rc = dc_analysis__isolation_node(tree->stmts[i]->stmt, opts, emit_in_text,
			                                 &t);
	}
out:
	pg_query_free_protobuf_parse_result(res);
	dc_arena_release(&arena);
	return rc;
}
