/*
 * tenancy.c -- DC501: under schema tenancy every statement stays in the
 * tenant's schema (deployclaw sets search_path to it).
 */
#include <stdint.h>
#include <string.h>

#include "../lint_internal.h"

bool dc_lint__allowed_schema(const char *s)
{
	return !strcmp(s, "pg_catalog") || !strcmp(s, "information_schema") ||
	       !strcmp(s, "pg_temp");
}

static void check_schema(lint *l, const PgQuery__RangeVar *rv)
{
	if (!l->cfg->schema_tenancy || !rv || !rv->schemaname || !rv->schemaname[0] ||
	    dc_lint__allowed_schema(rv->schemaname))
		return;
	dc_lint__emit_at(
	        l, R_FOREIGN_SCHEMA, dc_lint__at(l, rv->location), NULL,
	        "'%s.%s' names the schema '%s': under schema tenancy every statement must stay in "
	        "the tenant's schema",
	        rv->schemaname, rv->relname ? rv->relname : "", rv->schemaname);
}

static int visit_rangevar(void *ctx, ProtobufCMessage *rv)
{
	check_schema(ctx, (const PgQuery__RangeVar *)rv);
	return 0;
}

/* Every RangeVar anywhere in a message, at most 200 levels down. */
void dc_lint__walk_rangevars(lint *l, const ProtobufCMessage *msg)
{
	/* the walk only reads; its callback's pointer is writable for the rewrite */
	dc_analysis__walk((ProtobufCMessage *)(uintptr_t)msg, &pg_query__range_var__descriptor, 200,
	                  visit_rangevar, l);
}

/* Statements that move objects between schemas or create one. */
void dc_lint__schema_node(lint *l, const PgQuery__Node *n)
{
	if (!l->cfg->schema_tenancy)
		return;
	if (n->node_case == PG_QUERY__NODE__NODE_ALTER_OBJECT_SCHEMA_STMT)
		dc_lint__emit(l, R_FOREIGN_SCHEMA, NULL,
		              "SET SCHEMA '%s' moves an object out of the tenant's schema",
		              n->alter_object_schema_stmt->newschema
		                      ? n->alter_object_schema_stmt->newschema
		                      : "");
	else if (n->node_case == PG_QUERY__NODE__NODE_CREATE_SCHEMA_STMT)
		dc_lint__emit(
		        l, R_FOREIGN_SCHEMA, NULL,
		        "CREATE SCHEMA '%s' under schema tenancy: tenants' schemas are managed by "
		        "deployclaw",
		        n->create_schema_stmt->schemaname ? n->create_schema_stmt->schemaname : "");
}
