/*
 * tenancy.c -- DC501: under schema tenancy every statement stays in the
 * tenant's schema (deployclaw sets search_path to it).
 */
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

/* Every RangeVar anywhere in a message, through protobuf-c's reflection. */
void dc_lint__walk_rangevars(lint *l, const ProtobufCMessage *msg, int depth)
{
	const ProtobufCMessageDescriptor *d;
	unsigned i;

	if (!msg || depth > 200)
		return;
	d = msg->descriptor;
	if (d == &pg_query__range_var__descriptor) {
		check_schema(l, (const PgQuery__RangeVar *)msg);
		return;
	}
	for (i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const char *base = (const char *)msg;

		if (f->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n, k;
			ProtobufCMessage **arr;

			/* memcpy: the field offsets come as bytes */
			memcpy(&n, base + f->quantifier_offset, sizeof(n));
			memcpy(&arr, base + f->offset, sizeof(arr));
			for (k = 0; k < n; k++)
				dc_lint__walk_rangevars(l, arr[k], depth + 1);
		} else {
			ProtobufCMessage *sub;

			if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
				uint32_t cse;

				memcpy(&cse, base + f->quantifier_offset, sizeof(cse));
				if (cse != f->id)
					continue;
			}
			memcpy(&sub, base + f->offset, sizeof(sub));
			dc_lint__walk_rangevars(l, sub, depth + 1);
		}
	}
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
