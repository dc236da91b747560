/*
 * Internal to deployclaw: the tenant-isolation check on PostgreSQL's parse
 * tree, the one source both lint (DC501, DC504) and the `isolation` gate
 * ask, so `lint` and `apply` give the same answer on a statement.
 */
#ifndef DC_ANALYSIS_ISOLATION_H
#define DC_ANALYSIS_ISOLATION_H

#include <stdbool.h>

#include <deployclaw/common.h>

/* What a finding is about; each is a bit of dc_isolation_opts.kinds. */
enum dc_isolation_kind {
	DC_ISO_FOREIGN_REF = 1 << 0, /* a relation in another schema (schema tenancy) */
	DC_ISO_SCHEMA_MOVE = 1 << 1, /* SET SCHEMA / CREATE SCHEMA (schema tenancy) */
	DC_ISO_OWN_SCHEMA = 1 << 2,  /* a write to deployclaw's own schema */
	DC_ISO_SESSION = 1 << 3,     /* search_path, role or session_authorization changed */
	DC_ISO_OUTSIDE = 1 << 4,     /* reaches outside the database */
	DC_ISO_DYNAMIC = 1 << 5,     /* SQL built at run time (EXECUTE), not checkable */
	DC_ISO_SHARED = 1 << 6, /* a change to what the shard's tenants share (schema tenancy) */
	DC_ISO_ALL = (1 << 7) - 1
};

typedef struct dc_isolation_opts {
	unsigned kinds;      /* dc_isolation_kind bits to check */
	bool schema_tenancy; /* FOREIGN_REF, SCHEMA_MOVE and SHARED apply only then */
	/* The text the node's locations index into (NULL: not known). With it, a
	 * finding inside a DO block's or function's body is placed where it is
	 * written; without, at the statement. */
	const char *text;
	/* tenancy.shared_schemas: schemas tenants may read (they follow the
	 * tenant's on its search_path) but change only from a shard migration. */
	const char *const *shared;
	size_t nshared;
} dc_isolation_opts;

/*
 * Called once per finding: `loc` is the byte offset of what it is about in
 * the text that was parsed, or -1 for the whole statement. A nonzero return
 * stops the check and is returned.
 */
typedef int (*dc_isolation_emit_fn)(void *ctx, unsigned kind, int loc, const char *msg);

/* pg_catalog, information_schema and pg_temp: schemas every tenant may name. */
bool dc_analysis__allowed_schema(const char *schema);

/* Checks one statement of a parse tree (a PgQuery__Node *, as void * to keep
 * libpg_query's headers out of the gate). */
int dc_analysis__isolation_node(const void *node,
                                const dc_isolation_opts *opts,
                                dc_isolation_emit_fn emit,
                                void *ctx);

/* Parses `sql` and checks each of its statements. DC_EPARSE when it does not parse. */
int dc_analysis__isolation_sql(const char *sql,
                               const dc_isolation_opts *opts,
                               dc_isolation_emit_fn emit,
                               void *ctx,
                               dc_error *err);

#endif
