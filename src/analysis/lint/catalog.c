/*
 * catalog.c -- DC505: under schema tenancy, a lookup in the catalogs that
 * is not scoped to a schema. Every tenant shares the database's catalogs, so
 * `IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'u')` answers
 * for whichever tenant got there first: after the first tenant of a
 * database the guarded statement is silently skipped in every other one.
 * DO blocks and functions are looked into (../body.c): that is where such
 * guards live.
 */
#include <stdint.h>
#include <string.h>

#include "../body.h"
#include "../lint_internal.h"

/* Catalog relations whose rows belong to a schema. */
static const char *const per_schema[] = {
	"pg_class",
	"pg_constraint",
	"pg_index",
	"pg_indexes",
	"pg_attribute",
	"pg_trigger",
	"pg_policy",
	"pg_policies",
	"pg_proc",
	"pg_type",
	"pg_tables",
	"pg_views",
	"pg_matviews",
	"pg_sequences",
	"pg_sequence",
	"pg_attrdef",
	"pg_rewrite",
	"pg_statistic_ext",
	"tables",
	"columns",
	"table_constraints",
	"key_column_usage",
	"constraint_column_usage",
	"referential_constraints",
	"check_constraints",
	"routines",
	"triggers",
	"views",
	"sequences",
};

/* the first N_PG_CATALOG of per_schema are pg_catalog's, the rest information_schema's */
#define N_PG_CATALOG 18

typedef struct scope {
	const char *catalog; /* the first per-schema catalog read, NULL: none */
	const char *schema;  /* its schema, as written (NULL: none) */
	int loc;
	bool scoped; /* something in the statement names a schema or a relation */
} scope;

static bool is_per_schema(const PgQuery__RangeVar *rv)
{
	const char *schema = rv->schemaname && rv->schemaname[0] ? rv->schemaname : NULL;
	size_t i;

	if (!rv->relname ||
	    (schema && strcmp(schema, "pg_catalog") && strcmp(schema, "information_schema")))
		return false;
	for (i = 0; i < sizeof(per_schema) / sizeof(per_schema[0]); i++)
		if (!strcmp(rv->relname, per_schema[i]))
			/* information_schema's names are common words: only when qualified */
			return i < N_PG_CATALOG ||
			       (schema && !strcmp(schema, "information_schema"));
	return false;
}

static int visit_rangevar(void *ctx, ProtobufCMessage *m)
{
	scope *s = ctx;
	const PgQuery__RangeVar *rv = (const PgQuery__RangeVar *)m;

	if (!s->catalog && is_per_schema(rv)) {
		s->catalog = rv->relname;
		s->schema = rv->schemaname && rv->schemaname[0] ? rv->schemaname : NULL;
		s->loc = rv->location;
	}
	return 0;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n >= k && !strcmp(s + n - k, suffix);
}

/* A column that ties a catalog row to a schema. (A relation's oid is tied by
 * a cast to regclass, which visit_cast sees; the tenants' tables share their
 * names, so relname or table_name alone is not.) */
static bool scoping_column(const char *c)
{
	return ends_with(c, "namespace") || ends_with(c, "_schema") || !strcmp(c, "schemaname") ||
	       !strcmp(c, "nspname");
}

static int visit_column(void *ctx, ProtobufCMessage *m)
{
	scope *s = ctx;
	const PgQuery__ColumnRef *c = (const PgQuery__ColumnRef *)m;
	const PgQuery__Node *last = c->n_fields ? c->fields[c->n_fields - 1] : NULL;

	if (last && last->node_case == PG_QUERY__NODE__NODE_STRING && last->string->sval &&
	    scoping_column(last->string->sval))
		s->scoped = true;
	return 0;
}

static int visit_call(void *ctx, ProtobufCMessage *m)
{
	scope *s = ctx;
	const PgQuery__FuncCall *f = (const PgQuery__FuncCall *)m;
	const PgQuery__Node *last = f->n_funcname ? f->funcname[f->n_funcname - 1] : NULL;
	const char *name =
	        last && last->node_case == PG_QUERY__NODE__NODE_STRING ? last->string->sval : NULL;

	if (name && (!strncmp(name, "current_schema", 14) || !strncmp(name, "to_reg", 6) ||
	             ends_with(name, "_is_visible")))
		s->scoped = true;
	return 0;
}

static int visit_cast(void *ctx, ProtobufCMessage *m)
{
	scope *s = ctx;
	const PgQuery__TypeCast *t = (const PgQuery__TypeCast *)m;
	const PgQuery__TypeName *tn = t->type_name;
	const PgQuery__Node *last = tn && tn->n_names ? tn->names[tn->n_names - 1] : NULL;

	if (last && last->node_case == PG_QUERY__NODE__NODE_STRING && last->string->sval &&
	    !strncmp(last->string->sval, "reg", 3))
		s->scoped = true;
	return 0;
}

static void check_one(lint *l, const PgQuery__Node *n, int base, bool exact, const char *routine)
{
	ProtobufCMessage *msg = (ProtobufCMessage *)(uintptr_t)n;
	scope s = { NULL, NULL, -1, false };

	dc_analysis__walk(msg, &pg_query__range_var__descriptor, 200, visit_rangevar, &s);
	if (!s.catalog)
		return;
	dc_analysis__walk(msg, &pg_query__column_ref__descriptor, 200, visit_column, &s);
	dc_analysis__walk(msg, &pg_query__func_call__descriptor, 200, visit_call, &s);
	dc_analysis__walk(msg, &pg_query__type_cast__descriptor, 200, visit_cast, &s);
	if (s.scoped)
		return;
	dc_lint__emit_at(l, R_CATALOG_SCOPE,
	                 dc_lint__at(l, base < 0 ? -1 : base + (s.loc < 0 || !exact ? 0 : s.loc)),
	                 NULL,
	                 "%s%s%s'%s%s%s' is read with no condition on the schema: it holds every "
	                 "tenant's objects, so after the first tenant of a database the answer is "
	                 "another tenant's",
	                 routine ? "in " : "", routine ? routine : "", routine ? ": " : "",
	                 s.schema ? s.schema : "", s.schema ? "." : "", s.catalog);
}

static int body_stmt(void *ctx,
                     const void *stmt,
                     int base,
                     bool exact,
                     const char *routine,
                     const char *why)
{
	(void)why;
	if (stmt)
		check_one(ctx, stmt, base, exact, routine);
	return 0;
}

/* DC505 on every statement, and on the statements of its body. */
void dc_lint__check_catalog_scope(lint *l, const PgQuery__Node *n)
{
	if (!l->cfg->schema_tenancy)
		return;
	if (n->node_case == PG_QUERY__NODE__NODE_DO_STMT ||
	    n->node_case == PG_QUERY__NODE__NODE_CREATE_FUNCTION_STMT)
		dc_analysis__body_each(n, l->text ? l->text + l->base : NULL, body_stmt, l);
	else
		check_one(l, n, 0, true, NULL);
}
