/*
 * lint_internal.h -- what the files of src/analysis/lint/ share: the rule
 * indices, the linter's state and the cross-file steps of one pass.
 *
 * One pass over a block of SQL (driver.c): each statement is parsed once
 * (chunks.c for large blocks), modelled once (model.c), and handed to the
 * walk of its kind (driver.c's dispatch into the rule families: locking.c,
 * rewrites.c, breaking.c, naming.c, transactions.c, tenancy.c, rls.c; ALTER TABLE
 * sub-commands in alter_table.c), to the statement checks rules.def lists,
 * then to the checks on its model. Ignore comments (ignores.c) silence what
 * the statement reported; downs.c compares each phase's down with its up.
 */
#ifndef DC_LINT_INTERNAL_H
#define DC_LINT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include <deployclaw/analysis.h>

#include "analysis_internal.h"
#include "util/util.h"

/* Each rule's index in dc_lint_rules(), from lint/rules.def. */
enum dc_rule_index {
#define RULE(idx, id, name, sev, what, why, help, equivalents, check) idx,
#include "lint/rules.def"
#undef RULE
	R_COUNT
};

_Static_assert(R_COUNT <= DC_LINT_MAX_RULES, "dc_lint_config.severity is too small");

const dc_lint_rule *dc_lint__rule(int idx);
int dc_lint__rule_index(const char *id_or_name);

typedef struct lint lint;

/* One ALTER TABLE sub-command, as the walk hands it to the checks. */
typedef struct dc_lint_cmd {
	const PgQuery__AlterTableCmd *c;
	const PgQuery__RangeVar *rv;
	const char *table; /* the relation's name */
	const char *qual;  /* "schema.table", for messages */
	bool is_new;       /* created by this migration */
} dc_lint_cmd;

/*
 * A rule's check, the last field of its rules.def entry (which says when
 * each kind is called): a statement check, a sub-command check, both, or
 * else the names of the functions that report the rule.
 */
typedef void dc_lint_stmt_check(lint *l, const PgQuery__Node *n);
typedef void dc_lint_cmd_check(lint *l, const dc_lint_cmd *cmd);

typedef struct dc_lint_check {
	dc_lint_stmt_check *stmt;
	dc_lint_cmd_check *cmd;
	const char *reported_by;
} dc_lint_check;

const dc_lint_check *dc_lint__check(int idx);
void dc_lint__stmt_checks(lint *l, const PgQuery__Node *n);
void dc_lint__cmd_checks(lint *l, const dc_lint_cmd *cmd);

/* ------------------------------------------------------------------------ */
/* A string set (open addressing) with a borrowed value per key (strset.c). */

typedef struct strset {
	char **keys;
	void **vals;
	size_t cap, len;
} strset;

void dc_lint__set_release(strset *s);
bool dc_lint__set_has(const strset *s, const char *key, void **val);
int dc_lint__set_put(strset *s, const char *key, void *val);
void dc_lint__set_del(strset *s, const char *key);

/* ------------------------------------------------------------------------ */
/* The linter's state.                                                      */

struct lint {
	const dc_lint_config *cfg;
	dc_finding_list *out;
	int failed;

	/* migration-wide */
	strset tables;    /* relname: created by this migration */
	strset indexes;   /* index names created */
	strset types;     /* user types created: name -> (void*)1 plain, 2 constrained domain */
	strset coltypes;  /* "t.c" -> PgQuery__TypeName* (trees are kept alive) */
	strset nn_checks; /* "t.con" -> column name of a CHECK (col IS NOT NULL) */
	strset validated; /* "t.col": a validated CHECK (col IS NOT NULL) */
	strset fks;       /* "t.con": foreign keys */
	strset renamed;   /* old table name -> finding index + 1 */
	struct dc_rls_tracker *rls; /* DC505's open weakenings (heap, made on first use) */
	dc_arena trees;             /* parse trees of small blocks, kept until the end */
	dc_arena keep;              /* copies of what outlives a chunk's tree (column types) */

	/* the current block */
	const char *file;
	const char *text;
	size_t textlen;
	int line0, col0;
	bool exact; /* text is verbatim in the file: positions are computed from it */
	const dc_statement *stmts;
	size_t nstmts, stmt_i;
	size_t cur_off;
	int cur_line, cur_col;
	bool wrapped;     /* deployclaw runs the block in a transaction */
	bool explicit_tx; /* after a BEGIN */
	size_t begin_off;
	strset tx_not_valid; /* "t.con" added NOT VALID in the current transaction */
	strset dropped_cons; /* "t.con" dropped earlier in the block */
	bool tx_strong_lock;
	bool lock_timeout_set, statement_timeout_set, lock_reported, stmt_reported;

	/* non-transactional statements of a transactional block: reported at its
	 * end, and only when it has other statements to lose atomicity with */
	struct {
		size_t off, stmt_i;
		const char *what;
	} nontx[32];

	size_t nnontx, substantive;
	dc_strbuf key;

	/* the current statement */
	const PgQuery__Node *node;
	dc_stmt_model *model;
	size_t stmt_off, stmt_end;
	size_t base;          /* offset in text of what the current tree was parsed from */
	size_t cur_chunk_end; /* its end, when it is a chunk of the text (else 0) */
	bool syntax_error;    /* the block did not parse */
};

/* One block of SQL: a file, or a phase's up or down. */
typedef struct block {
	const char *text;
	const char *file;
	int line, col;
	bool exact;
	const dc_statement *stmts;
	size_t nstmts;
	bool wrapped;
	dc_stmt_list *models; /* NULL: models are built and dropped per statement */
} block;

static inline bool dc_lint__in_tx(const lint *l)
{
	return l->wrapped || l->explicit_tx;
}

static inline const char *dc_lint__rvname(const PgQuery__RangeVar *rv)
{
	return rv && rv->relname ? rv->relname : "";
}

static inline bool dc_lint__table_is_new(const lint *l, const PgQuery__RangeVar *rv)
{
	return rv && rv->relname && dc_lint__set_has(&l->tables, rv->relname, NULL);
}

/* "schema.table" for messages, into `sb`. */
static inline void dc_lint__qual(dc_strbuf *sb, const PgQuery__RangeVar *rv)
{
	dc_strbuf_reset(sb);
	if (rv)
		dc_analysis__qualified(sb, rv);
}

/* Offset in the text of a node location inside the current statement. */
static inline size_t dc_lint__at(const lint *l, int32_t loc)
{
	size_t off = l->base + (size_t)loc;

	if (loc < 0 || off < l->stmt_off || off > l->stmt_end)
		return l->stmt_off;
	return off;
}

/* State (state.c): its lifetime, and what outlives a chunk's tree. */
void dc_lint__init(lint *l,
                   const dc_lint_config *cfg,
                   const dc_lint_config *dflt,
                   dc_finding_list *out);
void dc_lint__release(lint *l);
const char *dc_lint__key(lint *l, const char *a, const char *b);
void dc_lint__put(lint *l, strset *s, const char *key, void *val);
void *dc_lint__keep_type(lint *l, const PgQuery__TypeName *tn);
void *dc_lint__keep_str(lint *l, const char *str);

/* Findings (findings.c). Each reports at the rule's configured severity. */
void dc_lint__pos_of(lint *l, size_t off, int *line, int *col);
/* at offset `off` of the text */
void dc_lint__emit_at(lint *l, int rule, size_t off, const char *suggestion, const char *fmt, ...)
        DC_PRINTF(5, 6);
/* at the current statement's start */
void dc_lint__emit(lint *l, int rule, const char *suggestion, const char *fmt, ...) DC_PRINTF(4, 5);
/* at most at `sev` */
void dc_lint__emit_sev(lint *l, int rule, dc_severity sev, size_t off, const char *fmt, ...)
        DC_PRINTF(5, 6);
void dc_lint__syntax_finding(lint *l, size_t base, const char *message, int cursorpos);
void dc_lint__compact(dc_finding_list *fl, size_t from);

/* The pass (driver.c, chunks.c). */
int dc_lint__block(lint *l, const block *b);
int dc_lint__tree(lint *l, const block *b, const PgQuery__ParseResult *tree, size_t *prev_end);
size_t dc_lint__chunk_cuts(const char *text, size_t len, size_t **cuts);
int dc_lint__chunks(lint *l, const block *b, const size_t *cuts, size_t nchunks, size_t *prev_end);

/* Ignore comments (ignores.c). */
#define MAX_IGNORES 16

typedef struct ignore {
	int rule; /* index, or -1 for an unknown name */
	size_t off;
	bool used;
	char name[48];
} ignore;

size_t dc_lint__parse_ignores(const char *t, size_t s, size_t e, ignore *ig, size_t max);
void dc_lint__apply_ignores(lint *l, size_t from, ignore *ig, size_t n);
void dc_lint__report_unused(lint *l, ignore *ig, size_t n);

/* ------------------------------------------------------------------------ */
/* Rule families: the walks of one statement kind each, called by driver.c
 * in the order of the statement's parts, and the checks rules.def names.   */

/* locking.c: DC101-DC111, DC116-DC124 */
void dc_lint__create_index(lint *l, const PgQuery__IndexStmt *ix);
void dc_lint__suggest_concurrently(lint *l, dc_strbuf *sb, const char *word, const char *tail);
void dc_lint__add_constraint(lint *l, const PgQuery__RangeVar *rv, const PgQuery__Constraint *k);
dc_lint_cmd_check dc_lint__check_fk_validates, dc_lint__check_check_validates,
        dc_lint__check_add_pk, dc_lint__check_add_unique, dc_lint__check_add_exclude;
void dc_lint__validate_constraint(lint *l, const PgQuery__AlterTableCmd *c, const char *table);
void dc_lint__create_domain(lint *l, const PgQuery__CreateDomainStmt *d);
dc_lint_stmt_check dc_lint__check_index_nonconc, dc_lint__check_unique_may_fail,
        dc_lint__check_index_columns;
dc_lint_stmt_check dc_lint__check_reindex, dc_lint__check_vacuum_full, dc_lint__check_trigger,
        dc_lint__check_alter_domain, dc_lint__check_create_domain, dc_lint__check_refresh;
dc_lint_cmd_check dc_lint__check_detach, dc_lint__check_validate, dc_lint__check_set_not_null,
        dc_lint__check_replica_identity, dc_lint__check_autovacuum;
void dc_lint__set_stmt(lint *l, const PgQuery__VariableSetStmt *v);
void dc_lint__timeouts(lint *l);

/* rewrites.c: DC112-DC115 (and what else ADD COLUMN reports) */
void dc_lint__add_column(lint *l, const PgQuery__RangeVar *rv, const PgQuery__ColumnDef *cd);
const PgQuery__Constraint *dc_lint__column_constraint(lint *l,
                                                      const dc_lint_cmd *cmd,
                                                      PgQuery__ConstrType t,
                                                      const char **col,
                                                      bool *has_default);
void dc_lint__alter_column_type(lint *l, const PgQuery__AlterTableCmd *c, const char *table);
dc_lint_cmd_check dc_lint__check_type_rewrite, dc_lint__check_add_column_rewrite,
        dc_lint__check_add_column_domain, dc_lint__check_table_rewrite, dc_lint__check_add_required;

/* breaking.c: DC201-DC214 (drops, renames, enums) */
void dc_lint__drop(lint *l, const PgQuery__DropStmt *d);
void dc_lint__rename(lint *l, const PgQuery__RenameStmt *r);
dc_lint_stmt_check dc_lint__check_drop_index, dc_lint__check_drop_schema;
dc_lint_stmt_check dc_lint__check_rename_column, dc_lint__check_rename_schema;
dc_lint_stmt_check dc_lint__check_drop_database, dc_lint__check_truncate_cascade,
        dc_lint__check_rename_enum_value, dc_lint__check_enum_order;
dc_lint_cmd_check dc_lint__check_drop_column, dc_lint__check_drop_fk, dc_lint__check_drop_not_null;
void dc_lint__view(lint *l, const PgQuery__ViewStmt *v);

/* naming.c: DC301-DC312 (types, identifiers, duplicate columns) */
dc_lint_stmt_check dc_lint__check_ident_length;
dc_lint_stmt_check dc_lint__check_prefer_bigint, dc_lint__check_prefer_bigint_small,
        dc_lint__check_prefer_identity, dc_lint__check_prefer_text,
        dc_lint__check_prefer_timestamptz, dc_lint__check_ban_char, dc_lint__check_prefer_jsonb;
void dc_lint__create_table(lint *l, const PgQuery__CreateStmt *cs);
dc_lint_stmt_check dc_lint__check_duplicate_column, dc_lint__check_require_schema,
        dc_lint__check_alignment;

/* transactions.c: DC401-DC406 */
void dc_lint__tx_reset(lint *l);
void dc_lint__transaction(lint *l, const PgQuery__TransactionStmt *t);
void dc_lint__nontx(lint *l, const PgQuery__Node *n);
void dc_lint__block_end(lint *l);
dc_lint_stmt_check dc_lint__check_robust;
dc_lint_cmd_check dc_lint__check_robust_cmd;

/* tenancy.c: DC501 and DC504, through ../isolation.c (shared with the isolation gate) */
void dc_lint__walk_rangevars(lint *l, const PgQuery__Node *n);
void dc_lint__schema_node(lint *l, const PgQuery__Node *n);
dc_lint_stmt_check dc_lint__isolation;
dc_lint_stmt_check dc_lint__check_catalog_scope;

/* rls.c: DC505, through ../rls.c (shared with the rls gate). The downs are a
 * sequence of their own: dc_lint__rls_reset starts one. */
dc_lint_stmt_check dc_lint__rls;
void dc_lint__rls_reset(lint *l);

/* alter_table.c: the ALTER TABLE walk, sub-command by sub-command */
void dc_lint__alter_table(lint *l, const PgQuery__AlterTableStmt *a);

/* downs.c: DC502, DC503 */
int dc_lint__check_down(lint *l, const dc_phase *ph, const dc_stmt_list *up);

#endif
