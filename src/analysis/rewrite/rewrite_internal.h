/*
 * rewrite_internal.h — what the files of plan --safe (src/analysis/rewrite/)
 * share: the rewrite's state, its output phases and the helpers that build
 * statements. Not part of the public API.
 *
 * Memory: nodes and strings built for new statements live in the rewrite's
 * arena (rw.arena) until dc_rewrite_safe returns; the dc_rewrite__alloc*
 * and node builders return NULL on OOM and need no free.
 */
#ifndef DC_REWRITE_INTERNAL_H
#define DC_REWRITE_INTERNAL_H

#include <pg_query/pg_query.pb-c.h>
#include <stdarg.h>

#include <deployclaw/migration.h>

#include "util/util.h"

/* What a phase holds, which decides whether the next statement may join it. */
enum kind {
	K_DDL = 0,        /* transactional, catalog-only or brief: merges with K_DDL */
	K_VALIDATE = 1,   /* VALIDATE CONSTRAINT: scans under SHARE UPDATE EXCLUSIVE */
	K_CONCURRENT = 2, /* CREATE/DROP INDEX CONCURRENTLY: transaction: false, alone */
	K_BATCH = 3,      /* batched backfill: transaction: false, alone */
	K_NONTX = 4,      /* another autocommit-only statement, alone */
	K_VERBATIM = 5    /* an original phase copied as it is */
};

typedef struct out_phase {
	int kind;
	char *name;
	dc_strbuf comment;   /* "# ...\n" lines written before the phase */
	dc_strbuf up;        /* statements, each ending with ";\n" */
	dc_ptrvec downs;     /* char *: statements undoing `up`, in the order of up */
	char *down_text;     /* K_VERBATIM: the original down (NULL when none) */
	const char *up_text; /* K_VERBATIM: the original up, borrowed */
	bool transactional;
	int64_t batch_rows;
} out_phase;

typedef struct rw {
	const dc_migration *m;
	dc_error *err;
	dc_ptrvec phases;       /* out_phase * */
	dc_ptrvec verify;       /* char *: assertions added to the migration's */
	dc_ptrvec arena;        /* nodes and strings built here */
	dc_ptrvec created;      /* char *: "schema\x1frel" created in the current phase */
	dc_strbuf pending;      /* comment lines for the phase of the next statement */
	dc_strbuf notes;        /* comment lines for the top of the document */
	const dc_phase *src;    /* the original phase being rewritten */
	const dc_statement *st; /* the statement being rewritten */
	unsigned nplaceholders;
	bool fresh;         /* the next statement starts a new phase */
	const char *ignore; /* lint rule silenced for the next statement */
} rw;

/* ---- deparse.c: nodes and the deparser ---- */

/* Sets DC_ENOMEM in r->err and returns it. */
int dc_rewrite__oom(rw *r);

/* `size` zeroed bytes owned by the arena. */
void *dc_rewrite__alloc(rw *r, size_t size);

/* An array of `n` pointers (at least one), zeroed, owned by the arena. */
PgQuery__Node **dc_rewrite__alloc_nodes(rw *r, size_t n);

char *dc_rewrite__strdup(rw *r, const char *s);
PgQuery__Node *dc_rewrite__node_new(rw *r);
PgQuery__Node *dc_rewrite__string_node(rw *r, const char *s);
PgQuery__Node *dc_rewrite__column_ref(rw *r, const char *col);
PgQuery__Node *dc_rewrite__index_elem(rw *r, const char *col);

/* Deparses one statement node into `out` (appended). */
int dc_rewrite__deparse(rw *r, PgQuery__Node *stmt, dc_strbuf *out);

/* Deparses an expression (appended to `out`). */
int dc_rewrite__deparse_expr(rw *r, PgQuery__Node *expr, dc_strbuf *out);

/* A fresh lowercase name the deparser prints bare; replaced after printing. */
char *dc_rewrite__placeholder(rw *r);

/* Replaces the one whole-word occurrence of `ph` in `sb` by `name`, quoted. */
int dc_rewrite__replace_placeholder(rw *r, dc_strbuf *sb, const char *ph, const char *name);

/* An ALTER TABLE of `orig`'s relation with the single command `cmd`. */
PgQuery__Node *dc_rewrite__alter_stmt(rw *r,
                                      const PgQuery__AlterTableStmt *orig,
                                      PgQuery__Node *cmd);

/* An ALTER TABLE command node. */
PgQuery__Node *dc_rewrite__cmd_node(rw *r,
                                    PgQuery__AlterTableType subtype,
                                    const char *name,
                                    PgQuery__Node *def);

/* ---- names.c: PostgreSQL's names for unnamed objects ---- */

/* "ALTER TABLE [ONLY] rel " */
void dc_rewrite__add_alter(dc_strbuf *sb, const PgQuery__RangeVar *rv);

/* "ALTER TABLE [ONLY] rel DROP <what> IF EXISTS name" (what: COLUMN, CONSTRAINT). */
void dc_rewrite__drop_if_exists(dc_strbuf *sb,
                                const PgQuery__RangeVar *rel,
                                const char *what,
                                const char *name);

/*
 * One round of a batched backfill: UPDATE rel SET col = value on at most
 * DC_REWRITE_BATCH_ROWS rows where col IS NULL (and, when `source` is not
 * NULL, (source) IS NOT NULL: rows with nothing to copy are not picked
 * again). The batch phase repeats it until it changes no row.
 */
void dc_rewrite__batched_update(dc_strbuf *sb,
                                const PgQuery__RangeVar *rel,
                                const char *col,
                                const char *value,
                                const char *source);

/* makeObjectName(): name1[_name2][_label] within 63 bytes. */
void dc_rewrite__object_name(dc_strbuf *out,
                             const char *name1,
                             const char *name2,
                             const char *label);

/* The name of index `ix`: its own, else the one PostgreSQL would choose. */
void dc_rewrite__index_name(dc_strbuf *out, const PgQuery__IndexStmt *ix);

/* The name of constraint `con` on `rel`: its own, else PostgreSQL's choice. */
void dc_rewrite__constraint_name(dc_strbuf *out,
                                 const PgQuery__RangeVar *rel,
                                 const PgQuery__Constraint *con);

/* ---- phases.c: output phases and the YAML ---- */

void dc_rewrite__phase_free(void *p);

/* A comment written above the phase that receives the next statement. */
void dc_rewrite__note(rw *r, const char *fmt, ...) DC_PRINTF(2, 3);

/* A new, empty phase of `kind` named after `hint` (made unique); NULL on
 * error (r->err set). */
out_phase *dc_rewrite__phase_new(rw *r, int kind, const char *hint);

/*
 * Adds statement `up` (and `down`, its inverse, may be NULL) to the last
 * phase when it is of the same mergeable kind, else to a new phase named
 * after `hint`. `generated`: parse both again first.
 */
int dc_rewrite__emit_sql(rw *r,
                         int kind,
                         const char *hint,
                         const char *up,
                         const char *down,
                         bool generated);

/* dc_rewrite__emit_sql of generated statements held in buffers (an empty
 * `down`: none). */
int dc_rewrite__emit(rw *r, int kind, const char *hint, const dc_strbuf *up, const dc_strbuf *down);

/* Silences lint rule `rule` (static string) for the next emitted statement. */
void dc_rewrite__lint_ignore(rw *r, const char *rule);

/* Appends the rewritten migration as native YAML to `out`. */
int dc_rewrite__write_yaml(rw *r, const char *source, dc_strbuf *out);

/* ---- detect.c: what needs a rewrite ---- */

/* What an ADD COLUMN carries. */
typedef struct colplan {
	PgQuery__Constraint *def; /* DEFAULT, NULL when none */
	bool not_null;
	bool stable_default;
	bool unsupported; /* identity, generated or serial: no online rewrite */
	size_t nextra;    /* CHECK, REFERENCES, UNIQUE, PRIMARY KEY */
} colplan;

void dc_rewrite__plan_column(const PgQuery__ColumnDef *cd, colplan *cp);

/* The command's constraint / column definition, or NULL. */
const PgQuery__Constraint *dc_rewrite__cmd_constraint(const PgQuery__AlterTableCmd *c);
const PgQuery__ColumnDef *dc_rewrite__cmd_column(const PgQuery__AlterTableCmd *c);

bool dc_rewrite__cmd_needs_rewrite(const PgQuery__AlterTableCmd *c);
bool dc_rewrite__stmt_needs_rewrite(const rw *r, const PgQuery__Node *n);

/* Remembers the table `n` creates (if it does) as created in this phase. */
int dc_rewrite__remember_created(rw *r, const PgQuery__Node *n);

/* ---- patterns.c, alter_type.c: the rewrites ---- */

/* CHECK (col IS NOT NULL) NOT VALID; VALIDATE; SET NOT NULL; drop the CHECK.
 * `drop_on_down`: the down drops NOT NULL again. */
int dc_rewrite__not_null(rw *r, const PgQuery__RangeVar *rel, const char *col, bool drop_on_down);

/* CREATE INDEX CONCURRENTLY IF NOT EXISTS with an explicit name. */
int dc_rewrite__index(rw *r, const PgQuery__IndexStmt *ix);

/* ADD CONSTRAINT: NOT VALID + VALIDATE, or a unique index built concurrently. */
int dc_rewrite__constraint(rw *r, const PgQuery__AlterTableStmt *a, const PgQuery__Constraint *con);

/* ADD COLUMN: the bare column, backfill, NOT NULL, then its constraints. */
int dc_rewrite__add_column(rw *r,
                           const PgQuery__AlterTableStmt *a,
                           const PgQuery__AlterTableCmd *cmd);

/* ALTER COLUMN TYPE: new column + sync trigger, batched copy, swap. */
int dc_rewrite__alter_type(rw *r,
                           const PgQuery__AlterTableStmt *a,
                           const PgQuery__AlterTableCmd *cmd);

#endif
