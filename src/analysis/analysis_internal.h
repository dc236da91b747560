/*
 * analysis_internal.h — what model.c, lint/, classify.c and the rewrite share. Not part
 * of the public API: it exposes libpg_query's protobuf-c types.
 */
#ifndef DC_ANALYSIS_INTERNAL_H
#define DC_ANALYSIS_INTERNAL_H

#include <pg_query/pg_query.pb-c.h>

#include <pg_query.h>

#include <deployclaw/analysis.h>

#include "util/util.h"

/* The longest identifier PostgreSQL keeps: NAMEDATALEN - 1 bytes; longer ones
 * are truncated (and lint warns). */
#define DC_PG_IDENT_MAX 63

/*
 * Unpacks a parse result into `a`: one bump allocation per node instead of a
 * malloc, and no free_unpacked (never call it on such a tree) -- the arena's
 * reset or release frees the whole tree. NULL on OOM or a corrupt buffer.
 */
PgQuery__ParseResult *dc_analysis__unpack(dc_arena *a, const PgQueryProtobuf *pb);

/* Parses `sql` into `*tree`, allocated in `a` (valid until `a` is released):
 * 0, DC_EPARSE (err: PostgreSQL's message) or DC_ENOMEM. `err` may be NULL. */
int dc_analysis__parse(dc_arena *a, const char *sql, PgQuery__ParseResult **tree, dc_error *err);

/* A protobuf-c allocator over `a` (free is a no-op), for other unpacks. */
ProtobufCAllocator dc_analysis__arena_allocator(dc_arena *a);

/*
 * Calls `fn` on every message of type `want` under `msg` (not below one it
 * found), through protobuf-c's reflection; a nonzero return from `fn` stops the
 * walk and is returned. Nodes more than `depth` levels below `msg` are not
 * visited (INT_MAX: no bound). NULL `msg`: nothing to visit.
 */
typedef int (*dc_analysis__visit_fn)(void *ctx, ProtobufCMessage *found);
int dc_analysis__walk(ProtobufCMessage *msg,
                      const ProtobufCMessageDescriptor *want,
                      int depth,
                      dc_analysis__visit_fn fn,
                      void *ctx);

/* The lock-table rows; the model classifies a tree into these. */
enum dc_op {
	OP_ADD_COLUMN,
	OP_ADD_COLUMN_DEFAULT,
	OP_ADD_COLUMN_VOLATILE,
	OP_ADD_COLUMN_SERIAL,
	OP_ADD_COLUMN_IDENTITY,
	OP_ADD_COLUMN_GENERATED,
	OP_ADD_COLUMN_DOMAIN,
	OP_ADD_COLUMN_NOT_NULL,
	OP_ADD_COLUMN_REFERENCES,
	OP_ADD_COLUMN_UNIQUE,
	OP_DROP_COLUMN,
	OP_TYPE_REWRITE,
	OP_TYPE_NO_REWRITE,
	OP_TYPE_MAY_REWRITE,
	OP_SET_DEFAULT,
	OP_DROP_DEFAULT,
	OP_SET_NOT_NULL,
	OP_DROP_NOT_NULL,
	OP_SET_STATISTICS,
	OP_SET_STORAGE,
	OP_ADD_IDENTITY,
	OP_ADD_CHECK,
	OP_ADD_CHECK_NOT_VALID,
	OP_ADD_FK,
	OP_ADD_FK_NOT_VALID,
	OP_VALIDATE,
	OP_ADD_UNIQUE,
	OP_ADD_PK,
	OP_ADD_EXCLUDE,
	OP_ADD_USING_INDEX,
	OP_DROP_CONSTRAINT,
	OP_ALTER_CONSTRAINT,
	OP_RENAME,
	OP_TRIGGER_TOGGLE,
	OP_RULE_RLS,
	OP_CLUSTER_ON,
	OP_SET_RELOPTIONS_LIGHT,
	OP_SET_RELOPTIONS,
	OP_SET_LOGGED,
	OP_SET_ACCESS_METHOD,
	OP_SET_TABLESPACE,
	OP_INHERIT,
	OP_ALTER_TABLE_OTHER,
	OP_REPLICA_IDENTITY,
	OP_ATTACH_PARTITION,
	OP_DETACH_PARTITION,
	OP_DETACH_CONCURRENTLY,
	OP_CREATE_INDEX,
	OP_CREATE_INDEX_CONCURRENTLY,
	OP_CREATE_INDEX_ONLY,
	OP_DROP_INDEX,
	OP_DROP_INDEX_CONCURRENTLY,
	OP_REINDEX,
	OP_REINDEX_CONCURRENTLY,
	OP_ALTER_INDEX,
	OP_ALTER_INDEX_TABLESPACE,
	OP_CREATE_TRIGGER,
	OP_DROP_TRIGGER,
	OP_CREATE_POLICY,
	OP_CREATE_TABLE,
	OP_CREATE_TABLE_AS,
	OP_CREATE_VIEW,
	OP_CREATE_STATISTICS,
	OP_COMMENT,
	OP_GRANT,
	OP_TRUNCATE,
	OP_DROP_TABLE,
	OP_DROP_OTHER,
	OP_CLUSTER,
	OP_VACUUM_FULL,
	OP_VACUUM,
	OP_ANALYZE,
	OP_REFRESH_MV,
	OP_REFRESH_MV_CONCURRENTLY,
	OP_LOCK_TABLE,
	OP_ENUM_ADD_VALUE,
	OP_DOMAIN_ADD_CONSTRAINT,
	OP_DOMAIN_ADD_CONSTRAINT_NOT_VALID,
	OP_ALTER_SEQUENCE,
	OP_DML,
	OP_SELECT,
	OP_CREATE_OTHER,
	OP_SET,
	OP_TRANSACTION,
	OP_NON_TRANSACTIONAL,
	OP_OTHER,
	OP_COUNT
};

/* The first autocommit-only statement name of classify.c, or NULL. */
const char *dc_analysis__autocommit_what(const PgQuery__Node *n);

/* A String node's text, or NULL. */
const char *dc_analysis__str(const PgQuery__Node *n);

/* The last element of a name list (["pg_catalog","int4"] -> "int4"). */
const char *dc_analysis__last_name(PgQuery__Node *const *names, size_t n);

/*
 * Builds the model of one statement `n` whose text is sql[off, off+len).
 * Fills everything but file/line/col. 0 or DC_ENOMEM.
 */
int dc_analysis__model(const PgQuery__Node *n,
                       const char *sql,
                       size_t off,
                       size_t len,
                       dc_stmt_model *out);

/* Frees what a model owns; the struct itself is caller storage. */
void dc_analysis__model_release(dc_stmt_model *m);

/* The lock-table row of `op`. */
const dc_lock_rule *dc_analysis__rule(int op);

/*
 * Appends `name` (NULL: "") as PostgreSQL's quote_identifier() would: bare
 * when lowercase letters, digits and '_' and not a keyword other than an
 * unreserved one (asked of libpg_query's scanner), else double-quoted. The
 * one quoting of the model, lint and plan --safe.
 */
void dc_analysis__quote_ident(dc_strbuf *sb, const char *name);

/* Appends "schema.name" (schema only when given), quoted as needed. */
void dc_analysis__qualified_name(dc_strbuf *sb, const char *schema, const char *name);

/* dc_analysis__qualified_name of a relation. */
void dc_analysis__qualified(dc_strbuf *sb, const PgQuery__RangeVar *rv);

/* True when the column type `tn` is a serial pseudo-type. */
bool dc_analysis__is_serial(const PgQuery__TypeName *tn);

/*
 * The column's default is one PostgreSQL 11+ stores as a "fast default"
 * (non-volatile: evaluated once by ADD COLUMN, no rewrite): literals, casts
 * and operators of them, CURRENT_TIMESTAMP & co, known stable/immutable
 * built-ins. Unknown functions count as volatile. The one answer for plan,
 * lint and plan --safe.
 */
bool dc_analysis__default_is_fast(const PgQuery__Node *e);

/* The built-in functions dc_analysis__default_is_fast takes as
 * non-volatile (static storage; `n` gets their number), for the test that
 * holds them against pg_proc. */
const char *const *dc_analysis__nonvolatile_funcs(size_t *n);

/* Classifies a type change from `from` (may be NULL: unknown) to `to`. */
int dc_analysis__type_change_op(const PgQuery__TypeName *from,
                                const PgQuery__TypeName *to,
                                bool has_using);

/* Canonical built-in name of a type ("int4", "varchar", "timestamptz"), or
 * the last name as written for user types; `builtin` tells which. */
const char *dc_analysis__type_base(const PgQuery__TypeName *tn, bool *builtin);

#endif
