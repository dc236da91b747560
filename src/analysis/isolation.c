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
#include "body.h"

#define OWN_SCHEMA "deployclaw"
#define MAX_READS  64

typedef struct check {
	const dc_isolation_opts *opts;
	dc_isolation_emit_fn emit;
	void *ctx;
	bool writes; /* the statement is not a plain SELECT */
	/* The relations the statement only reads (its write target, for DML, is
	 * `target`); past MAX_READS the rest count as writes: fail closed. */
	const void *target;
	bool dml;
	const void *reads[MAX_READS];
	size_t nreads;
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
	if (kind & (DC_ISO_FOREIGN_REF | DC_ISO_SCHEMA_MOVE | DC_ISO_SHARED))
		return c->opts->schema_tenancy;
	return true;
}

static bool shared_schema(const check *c, const char *s)
{
	size_t i;

	for (i = 0; i < c->opts->nshared; i++)
		if (!strcmp(c->opts->shared[i], s))
			return true;
	return false;
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

/*
 * `schema`.`name` named by the statement, at `loc`: `write` when the
 * statement changes it (or creates it), else a read. Under schema tenancy a
 * schema other than the tenant's may be named only to read pg_catalog,
 * information_schema, pg_temp or a shared schema.
 */
static void qualified(check *c, const char *schema, const char *name, int loc, bool write)
{
	if (!schema || !schema[0])
		return;
	if (on(c, DC_ISO_OWN_SCHEMA) && (write || c->writes) && !strcmp(schema, OWN_SCHEMA))
		report(c, DC_ISO_OWN_SCHEMA, loc,
		       "'%s.%s' writes to deployclaw's own schema, which records every tenant's "
		       "history",
		       schema, name);
	else if (dc_analysis__allowed_schema(schema))
		return;
	else if (shared_schema(c, schema)) {
		if (write && on(c, DC_ISO_SHARED))
			report(c, DC_ISO_SHARED, loc,
			       "'%s.%s' changes the shared schema '%s', which every tenant of the "
			       "shard reads: change it once per shard, in a migration with "
			       "'scope: shard'",
			       schema, name, schema);
	} else if (on(c, DC_ISO_FOREIGN_REF))
		report(c, DC_ISO_FOREIGN_REF, loc,
		       "'%s.%s' names the schema '%s': under schema tenancy every statement must "
		       "stay in the tenant's schema",
		       schema, name, schema);
}

static bool is_read(const check *c, const void *rv)
{
	size_t i;

	if (!c->writes)
		return true;
	if (c->dml)
		return rv != c->target;
	for (i = 0; i < c->nreads; i++)
		if (c->reads[i] == rv)
			return true;
	return false;
}

static int visit_rangevar(void *ctx, ProtobufCMessage *m)
{
	check *c = ctx;
	const PgQuery__RangeVar *rv = (const PgQuery__RangeVar *)m;

	qualified(c, rv->schemaname, rv->relname ? rv->relname : "", rv->location, !is_read(c, rv));
	return c->rc;
}

static int note_read(void *ctx, ProtobufCMessage *m)
{
	check *c = ctx;

	if (c->nreads < MAX_READS)
		c->reads[c->nreads++] = m;
	return 0;
}

/* The relations a query (SELECT) of a DDL statement reads, and the tables a
 * foreign key references. */
static int visit_select(void *ctx, ProtobufCMessage *m)
{
	return dc_analysis__walk(m, &pg_query__range_var__descriptor, 200, note_read, ctx);
}

static int visit_constraint(void *ctx, ProtobufCMessage *m)
{
	const PgQuery__Constraint *k = (const PgQuery__Constraint *)m;

	return k->pktable ? note_read(ctx, (ProtobufCMessage *)k->pktable) : 0;
}

/* What the statement writes: DML its target relation, anything else every
 * relation it names but those it reads through a query or a foreign key. */
static void find_reads(check *c, const PgQuery__Node *n, ProtobufCMessage *msg)
{
	switch (n->node_case) {
	case PG_QUERY__NODE__NODE_INSERT_STMT:
		c->target = n->insert_stmt->relation;
		break;
	case PG_QUERY__NODE__NODE_UPDATE_STMT:
		c->target = n->update_stmt->relation;
		break;
	case PG_QUERY__NODE__NODE_DELETE_STMT:
		c->target = n->delete_stmt->relation;
		break;
	case PG_QUERY__NODE__NODE_MERGE_STMT:
		c->target = n->merge_stmt->relation;
		break;
	default:
		dc_analysis__walk(msg, &pg_query__select_stmt__descriptor, 200, visit_select, c);
		dc_analysis__walk(msg, &pg_query__constraint__descriptor, 200, visit_constraint, c);
		return;
	}
	c->dml = true;
}

static const char *last_name(PgQuery__Node **names, size_t n)
{
	if (n == 0 || names[n - 1]->node_case != PG_QUERY__NODE__NODE_STRING)
		return "";
	return names[n - 1]->string->sval ? names[n - 1]->string->sval : "";
}

/* A name list of `len` parts whose object is the last `own` of them (1; 2 for
 * a trigger, policy or rule, named after its table): its schema, if named. */
static void name_list(check *c, PgQuery__Node **names, size_t len, size_t own, int loc, bool write)
{
	const PgQuery__Node *s;

	if (len <= own)
		return;
	s = names[len - own - 1];
	if (s->node_case == PG_QUERY__NODE__NODE_STRING && s->string->sval)
		qualified(c, s->string->sval, last_name(names, len), loc, write);
}

/* 'schema.name' as a string: the argument of nextval() or of a ::regclass. */
static void name_literal(check *c, const PgQuery__Node *a, int loc, bool write)
{
	char schema[DC_PG_IDENT_MAX + 1];
	const char *s, *dot;
	size_t len;

	if (!a || a->node_case != PG_QUERY__NODE__NODE_A_CONST ||
	    a->a_const->val_case != PG_QUERY__A__CONST__VAL_SVAL || !a->a_const->sval->sval)
		return;
	s = a->a_const->sval->sval;
	if (*s == '"')
		s++;
	if (!(dot = strchr(s, '.')))
		return;
	len = (size_t)(dot - s);
	if (len && s[len - 1] == '"')
		len--;
	if (len > DC_PG_IDENT_MAX)
		len = DC_PG_IDENT_MAX;
	memcpy(schema, s, len);
	schema[len] = '\0';
	qualified(c, schema, dot + 1, loc, write);
}

static bool regclass_type(const PgQuery__TypeName *t)
{
	const char *n = t ? last_name(t->names, t->n_names) : "";

	return !strcmp(n, "regclass") || !strcmp(n, "regproc") || !strcmp(n, "regprocedure") ||
	       !strcmp(n, "regtype") || !strcmp(n, "regnamespace");
}

static int visit_names(void *ctx, ProtobufCMessage *m)
{
	check *c = ctx;

	if (m->descriptor == &pg_query__type_name__descriptor) {
		const PgQuery__TypeName *t = (const PgQuery__TypeName *)m;

		name_list(c, t->names, t->n_names, 1, t->location, false);
	} else if (m->descriptor == &pg_query__object_with_args__descriptor) {
		const PgQuery__ObjectWithArgs *o = (const PgQuery__ObjectWithArgs *)m;

		name_list(c, o->objname, o->n_objname, 1, -1, c->writes);
	} else if (m->descriptor == &pg_query__type_cast__descriptor) {
		const PgQuery__TypeCast *t = (const PgQuery__TypeCast *)m;

		if (regclass_type(t->type_name))
			name_literal(c, t->arg, t->location, false);
	}
	return c->rc;
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
	/* a function of another schema runs there; a sequence named by a string */
	name_list(c, f->funcname, f->n_funcname, 1, f->location, false);
	if (f->n_args &&
	    (!strcmp(name, "nextval") || !strcmp(name, "setval") || !strcmp(name, "currval") ||
	     !strcmp(name, "to_regclass") || !strcmp(name, "pg_get_serial_sequence")))
		name_literal(c, f->args[0], f->location,
		             !strcmp(name, "nextval") || !strcmp(name, "setval"));
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

/* Type names, functions named with their arguments, casts to regclass. */
static void walk_names(check *c, ProtobufCMessage *msg)
{
	dc_analysis__walk(msg, &pg_query__type_name__descriptor, 200, visit_names, c);
	if (!c->rc)
		dc_analysis__walk(msg, &pg_query__object_with_args__descriptor, 200, visit_names,
		                  c);
	if (!c->rc)
		dc_analysis__walk(msg, &pg_query__type_cast__descriptor, 200, visit_names, c);
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

/* DROP of deployclaw's schema, or of something in a schema: named by lists of
 * strings (a table, a view, an index...), type names or functions' names. */
static void check_drop(check *c, const PgQuery__DropStmt *d)
{
	size_t i, own = d->remove_type == PG_QUERY__OBJECT_TYPE__OBJECT_TRIGGER ||
	                                d->remove_type == PG_QUERY__OBJECT_TYPE__OBJECT_POLICY ||
	                                d->remove_type == PG_QUERY__OBJECT_TYPE__OBJECT_RULE
	                        ? 2
	                        : 1;

	for (i = 0; i < d->n_objects && !c->rc; i++) {
		const PgQuery__Node *o = d->objects[i];

		if (o->node_case == PG_QUERY__NODE__NODE_STRING &&
		    d->remove_type == PG_QUERY__OBJECT_TYPE__OBJECT_SCHEMA && o->string->sval) {
			if (!strcmp(o->string->sval, OWN_SCHEMA) && on(c, DC_ISO_OWN_SCHEMA))
				report(c, DC_ISO_OWN_SCHEMA, -1,
				       "DROP in deployclaw's own schema, which records every tenant's "
				       "history");
			else if (on(c, DC_ISO_FOREIGN_REF))
				report(c, DC_ISO_FOREIGN_REF, -1,
				       "DROP SCHEMA '%s' under schema tenancy: tenants' schemas are "
				       "managed by deployclaw",
				       o->string->sval);
		} else if (o->node_case == PG_QUERY__NODE__NODE_LIST)
			name_list(c, o->list->items, o->list->n_items, own, -1, true);
		else if (o->node_case == PG_QUERY__NODE__NODE_TYPE_NAME)
			name_list(c, o->type_name->names, o->type_name->n_names, 1,
			          o->type_name->location, true);
	}
}

/* Objects a statement creates or changes by a name list. */
static void check_created(check *c, const PgQuery__Node *n)
{
	switch (n->node_case) {
	case PG_QUERY__NODE__NODE_CREATE_FUNCTION_STMT:
		name_list(c, n->create_function_stmt->funcname, n->create_function_stmt->n_funcname,
		          1, -1, true);
		break;
	case PG_QUERY__NODE__NODE_DEFINE_STMT:
		name_list(c, n->define_stmt->defnames, n->define_stmt->n_defnames, 1, -1, true);
		break;
	case PG_QUERY__NODE__NODE_CREATE_ENUM_STMT:
		name_list(c, n->create_enum_stmt->type_name, n->create_enum_stmt->n_type_name, 1,
		          -1, true);
		break;
	case PG_QUERY__NODE__NODE_ALTER_ENUM_STMT:
		name_list(c, n->alter_enum_stmt->type_name, n->alter_enum_stmt->n_type_name, 1, -1,
		          true);
		break;
	case PG_QUERY__NODE__NODE_CREATE_DOMAIN_STMT:
		name_list(c, n->create_domain_stmt->domainname, n->create_domain_stmt->n_domainname,
		          1, -1, true);
		break;
	case PG_QUERY__NODE__NODE_GRANT_STMT: {
		const PgQuery__GrantStmt *g = n->grant_stmt;
		size_t i;

		/* ON SCHEMA s, ON ALL TABLES IN SCHEMA s: the objects are schema names */
		if (g->objtype == PG_QUERY__OBJECT_TYPE__OBJECT_SCHEMA ||
		    g->targtype == PG_QUERY__GRANT_TARGET_TYPE__ACL_TARGET_ALL_IN_SCHEMA)
			for (i = 0; i < g->n_objects; i++)
				if (g->objects[i]->node_case == PG_QUERY__NODE__NODE_STRING)
					qualified(c, g->objects[i]->string->sval, "*", -1, true);
		break;
	}
	default:
		break;
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

/* What a statement's body runs (a DO block's, a function's): checked as the
 * statement's own, findings placed in the body and named after it. */
typedef struct in_body {
	check *c;
	int base;
	bool exact; /* the statement's own locations map into the text */
	const char *routine;
} in_body;

static int emit_in_body(void *ctx, unsigned kind, int loc, const char *msg)
{
	const in_body *b = ctx;
	char in[560];

	snprintf(in, sizeof(in), "in %s: %s", b->routine, msg);
	return b->c->emit(b->c->ctx, kind,
	                  b->base < 0 ? -1 : b->base + (loc < 0 || !b->exact ? 0 : loc), in);
}

static int body_stmt(void *ctx,
                     const void *stmt,
                     int base,
                     bool exact,
                     const char *routine,
                     const char *why)
{
	check *c = ctx;
	dc_isolation_opts inner = *c->opts;
	in_body b = { c, base, exact, routine };
	char msg[480];

	if (!stmt) {
		if (on(c, DC_ISO_DYNAMIC)) {
			snprintf(msg, sizeof(msg), "in %s: %s", routine, why);
			c->rc = c->emit(c->ctx, DC_ISO_DYNAMIC, base, msg);
		}
		return c->rc;
	}
	inner.text = NULL; /* a body's own bodies: placed at their statement */
	return c->rc = dc_analysis__isolation_node(stmt, &inner, emit_in_body, &b);
}

/* The checks on the statement's own kind. */
static void check_stmt(check *c, const PgQuery__Node *n)
{
	check_created(c, n);
	switch (n->node_case) {
	case PG_QUERY__NODE__NODE_CREATE_EXTENSION_STMT:
	case PG_QUERY__NODE__NODE_ALTER_EXTENSION_STMT:
		if (on(c, DC_ISO_SHARED))
			report(c, DC_ISO_SHARED, -1,
			       "an extension belongs to the database, which every tenant of the shard "
			       "shares: create or change it once per shard, in a migration with "
			       "'scope: shard'");
		break;
	case PG_QUERY__NODE__NODE_CREATE_FUNCTION_STMT:
		dc_analysis__body_each(n, c->opts->text, body_stmt, c);
		break;
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
		dc_analysis__body_each(n, c->opts->text, body_stmt, c);
		break;
	case PG_QUERY__NODE__NODE_DROP_STMT:
		if (n->drop_stmt->remove_type == PG_QUERY__OBJECT_TYPE__OBJECT_EXTENSION &&
		    on(c, DC_ISO_SHARED))
			report(c, DC_ISO_SHARED, -1,
			       "an extension belongs to the database, which every tenant of the shard "
			       "shares: drop it once per shard, in a migration with 'scope: shard'");
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
	check c;
	/* the walks only read; their callbacks' pointer is writable for the rewrite */
	ProtobufCMessage *msg = (ProtobufCMessage *)(uintptr_t)n;

	memset(&c, 0, sizeof(c));
	c.opts = opts;
	c.emit = emit;
	c.ctx = ctx;
	c.writes = n->node_case != PG_QUERY__NODE__NODE_SELECT_STMT;
	if (c.writes)
		find_reads(&c, n, msg);
	check_stmt(&c, n);
	if (!c.rc)
		dc_analysis__walk(msg, &pg_query__range_var__descriptor, 200, visit_rangevar, &c);
	if (!c.rc)
		dc_analysis__walk(msg, &pg_query__func_call__descriptor, 200, visit_funccall, &c);
	if (!c.rc)
		walk_names(&c, msg);
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
	PgQuery__ParseResult *tree = NULL;
	size_t i;
	int rc;

	if ((rc = dc_analysis__parse(&arena, sql, &tree, err)) != 0)
		goto out;
	for (i = 0; i < tree->n_stmts && !rc; i++) {
		in_text t = { emit, ctx, tree->stmts[i]->stmt_location };
		dc_isolation_opts o = *opts;

		o.text = sql;
		if (tree->stmts[i]->stmt)
			rc = dc_analysis__isolation_node(tree->stmts[i]->stmt, &o, emit_in_text,
			                                 &t);
	}
out:
	dc_arena_release(&arena);
	return rc;
}
