/*
 * tenancy.c -- DC501: under schema tenancy every statement stays in the
 * tenant's schema (deployclaw sets search_path to it); DC504: no statement
 * gets around the tenant's isolation (deployclaw's schema, the session's
 * search_path or role, the world outside the database, SQL built at run
 * time, what the shard's tenants share). What
 * counts is decided by ../isolation.c, which the `isolation` gate asks too.
 */
#include <string.h>

#include "../isolation.h"
#include "../lint_internal.h"

typedef struct as_rule {
	lint *l;
	int rule;
	const PgQuery__Node *n;
} as_rule;

/* SET search_path under schema tenancy is DC501's (locking.c's dc_lint__set_stmt). */
static bool dc501_reports(const as_rule *r, unsigned kind)
{
	const PgQuery__VariableSetStmt *v =
	        r->n->node_case == PG_QUERY__NODE__NODE_VARIABLE_SET_STMT ? r->n->variable_set_stmt
	                                                                  : NULL;

	return kind == DC_ISO_SESSION && v && r->l->cfg->schema_tenancy && v->name &&
	       !strcmp(v->name, "search_path") && v->kind != PG_QUERY__VARIABLE_SET_KIND__VAR_RESET;
}

static int emit_finding(void *ctx, unsigned kind, int loc, const char *msg)
{
	as_rule *r = ctx;

	if (r->rule == R_ISOLATION && dc501_reports(r, kind))
		return 0;
	/* what the gate lets through to the run-time checks */
	if (kind == DC_ISO_DYNAMIC && r->l->cfg->allow_dynamic_sql) {
		dc_lint__emit_sev(r->l, r->rule, DC_SEV_WARNING,
		                  loc < 0 ? r->l->stmt_off : dc_lint__at(r->l, loc),
		                  "%s (allowed by gates.isolation.dynamic_sql: the run-time checks "
		                  "apply)",
		                  msg);
		return 0;
	}
	if (loc < 0)
		dc_lint__emit(r->l, r->rule, NULL, "%s", msg);
	else
		dc_lint__emit_at(r->l, r->rule, dc_lint__at(r->l, loc), NULL, "%s", msg);
	return 0;
}

static void check(lint *l, int rule, const PgQuery__Node *n, unsigned kinds)
{
	dc_isolation_opts o = { .kinds = kinds,
		                .schema_tenancy = l->cfg->schema_tenancy,
		                .text = l->text ? l->text + l->base : NULL,
		                .shared = l->cfg->shared_schemas,
		                .nshared = l->cfg->nshared_schemas };
	as_rule r = { l, rule, n };

	dc_analysis__isolation_node(n, &o, emit_finding, &r);
}

/* Every relation the statement names, for DC501. */
void dc_lint__walk_rangevars(lint *l, const PgQuery__Node *n)
{
	check(l, R_FOREIGN_SCHEMA, n, DC_ISO_FOREIGN_REF);
}

/* Statements that move objects between schemas or create one. */
void dc_lint__schema_node(lint *l, const PgQuery__Node *n)
{
	check(l, R_FOREIGN_SCHEMA, n, DC_ISO_SCHEMA_MOVE);
}

/* DC504 on every statement. */
void dc_lint__isolation(lint *l, const PgQuery__Node *n)
{
	check(l, R_ISOLATION, n,
	      DC_ISO_OWN_SCHEMA | DC_ISO_SESSION | DC_ISO_OUTSIDE | DC_ISO_DYNAMIC | DC_ISO_SHARED);
}
