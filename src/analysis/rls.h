/*
 * Internal to deployclaw: row-level security on PostgreSQL's parse tree, for
 * row tenancy's RLS gates (src/gate/rls.c) and the engine's RLS check
 * (src/engine/pg/rls.c):
 *
 *  - which statements of a migration weaken a table's row-level security
 *    (DISABLE or NO FORCE ROW LEVEL SECURITY, DROP POLICY) without the same
 *    sequence of statements making it good again later;
 *  - whether a policy's expression refers to the tenant column.
 */
#ifndef DC_ANALYSIS_RLS_H
#define DC_ANALYSIS_RLS_H

#include <stdbool.h>

#include <deployclaw/common.h>

/* Most weakenings one sequence may leave open; more is DC_ELIMIT. */
#define DC_RLS_MAX_OPEN 256

/* What a statement does to a table's row-level security. */
typedef enum dc_rls_op {
	DC_RLS_DISABLE,       /* ALTER TABLE ... DISABLE ROW LEVEL SECURITY */
	DC_RLS_NO_FORCE,      /* ALTER TABLE ... NO FORCE ROW LEVEL SECURITY */
	DC_RLS_DROP_POLICY,   /* DROP POLICY ... ON table */
	DC_RLS_ENABLE,        /* makes DC_RLS_DISABLE good */
	DC_RLS_FORCE,         /* makes DC_RLS_NO_FORCE good */
	DC_RLS_CREATE_POLICY, /* makes DC_RLS_DROP_POLICY good */
	DC_RLS_DROP_TABLE     /* the table is gone: makes every weakening of it good */
} dc_rls_op;

/* A weakening still open: the statement (`tag`, the caller's) and the byte
 * offset `loc` in its text. */
typedef struct dc_rls_weakening {
	const void *tag;
	int loc;
	dc_rls_op op;
	char schema[64]; /* "" when the name was unqualified */
	char table[64];
	char policy[64]; /* DC_RLS_DROP_POLICY's */
} dc_rls_weakening;

/*
 * The statements of one sequence (a migration's ups in phase order, or its
 * downs in the order a rollback runs them), fed in order: a weakening stays
 * open until a later statement of the sequence makes it good on the same
 * table (an unqualified name matches any schema).
 */
typedef struct dc_rls_tracker {
	dc_rls_weakening open[DC_RLS_MAX_OPEN];
	size_t nopen;
} dc_rls_tracker;

/* Feeds the statements of `sql` (one text, parsed here), tagged `tag`.
 * DC_EPARSE when it does not parse, DC_ELIMIT past DC_RLS_MAX_OPEN. */
int dc_analysis__rls_sql(dc_rls_tracker *t, const char *sql, const void *tag, dc_error *err);

/* Feeds one statement of a parse tree (a PgQuery__Node *), whose findings
 * without a position of their own are at `stmt_loc`. DC_ELIMIT as above. */
int dc_analysis__rls_node(dc_rls_tracker *t,
                          const void *node,
                          int stmt_loc,
                          const void *tag,
                          dc_error *err);

/* One line for a weakening: "DROP POLICY 'p' on 'accounts' ..." into `out`. */
void dc_analysis__rls_describe(const dc_rls_weakening *w, char *out, size_t size);

/*
 * Whether the SQL expression `expr` (as pg_get_expr prints a policy's USING or
 * WITH CHECK) refers to the column `column`: a column reference whose last
 * name is it, found in the parse tree (a string literal or a function's name
 * that merely spells it does not count). DC_EPARSE when it does not parse.
 */
int dc_analysis__expr_refers_to(const char *expr, const char *column, bool *out, dc_error *err);

#endif
