/**
 * deployclaw/analysis.h — what a SQL statement is, from the real parser.
 *
 * PostgreSQL statements are parsed with libpg_query and inspected through
 * its typed protobuf-c tree (never by matching the text). This first part
 * answers the questions the engine needs before it runs a statement: can it
 * run inside a transaction, is it transaction control, and which index a
 * CREATE INDEX CONCURRENTLY builds (to clean up after a failure). Lock
 * levels, rewrites and lint rules join this header later.
 */
#ifndef DEPLOYCLAW_ANALYSIS_H
#define DEPLOYCLAW_ANALYSIS_H

#include <deployclaw/common.h>
#include <deployclaw/migration.h>
#include <deployclaw/strbuf.h>

/** Longest identifier kept in dc_pg_stmt_info (PostgreSQL's own limit is 63 bytes). */
#define DC_PG_NAME_MAX 128

/** What dc_pg_classify found in one SQL text. Caller storage; no pointers to free. */
typedef struct dc_pg_stmt_info {
	/** Statements in the text (0 when it holds only blanks and comments). The
	 * flags below are true when ANY statement has them. */
	int nstmts;

	/**
	 * PostgreSQL refuses it inside a transaction block: CREATE/DROP INDEX
	 * CONCURRENTLY, REINDEX ... CONCURRENTLY and REINDEX SCHEMA/SYSTEM/DATABASE,
	 * ALTER TABLE ... DETACH PARTITION ... CONCURRENTLY, VACUUM (not ANALYZE),
	 * CLUSTER without a table, CREATE/DROP DATABASE, ALTER DATABASE ... SET
	 * TABLESPACE, CREATE/DROP TABLESPACE, ALTER SYSTEM, CREATE SUBSCRIPTION
	 * (unless create_slot = false), DROP SUBSCRIPTION (refused by the server
	 * only when it has a slot: classed conservatively), DISCARD ALL,
	 * COMMIT/ROLLBACK PREPARED. Options are read as the server reads them:
	 * REINDEX (CONCURRENTLY false) is transactional.
	 */
	bool autocommit_only;

	/** BEGIN/START TRANSACTION, COMMIT, ROLLBACK, SAVEPOINT, RELEASE,
	 * ROLLBACK TO, PREPARE TRANSACTION, COMMIT/ROLLBACK PREPARED. */
	bool is_transaction_control;

	/** A short name of the first autocommit-only or transaction-control
	 * statement ("CREATE INDEX CONCURRENTLY", "VACUUM", "BEGIN"); "" when
	 * neither flag is set. Static storage. */
	const char *what;

	/**
	 * CREATE INDEX CONCURRENTLY (the first one in the text): the index and its
	 * table as written. `index_name` is "" when the statement lets PostgreSQL
	 * choose the name; `schema` is "" when the table is not schema-qualified
	 * (the index is created in the table's schema, found by search_path).
	 */
	bool create_index_concurrently;
	char schema[DC_PG_NAME_MAX];
	char index_name[DC_PG_NAME_MAX];
	char table_name[DC_PG_NAME_MAX];
} dc_pg_stmt_info;

/**
 * Parses `sql` (one or more PostgreSQL statements, NUL-terminated) and fills
 * `*out` (always reset first). A syntax error is DC_EPARSE with the
 * parser's message and err->line/err->col pointing into `sql` (1-based,
 * columns in characters; err->file is left empty for the caller to fill);
 * an identifier longer than DC_PG_NAME_MAX - 1 bytes is DC_ELIMIT; an
 * allocation failure DC_ENOMEM. Thread-safe.
 */
DC_API int dc_pg_classify(const char *sql, dc_pg_stmt_info *out, dc_error *err);

/* ------------------------------------------------------------------------ */
/* Statement model: locks, rewrites, reversibility (PostgreSQL 15).          */

/** PostgreSQL's table-level lock modes, weakest first (Table 13.2). */
typedef enum dc_lock_mode {
	DC_LOCK_NONE = 0, /**< no relation lock (catalog rows only) */
	DC_LOCK_ACCESS_SHARE,
	DC_LOCK_ROW_SHARE,
	DC_LOCK_ROW_EXCLUSIVE,
	DC_LOCK_SHARE_UPDATE_EXCLUSIVE,
	DC_LOCK_SHARE,
	DC_LOCK_SHARE_ROW_EXCLUSIVE,
	DC_LOCK_EXCLUSIVE,
	DC_LOCK_ACCESS_EXCLUSIVE
} dc_lock_mode;

/** "ACCESS EXCLUSIVE", ... ("none" for DC_LOCK_NONE). Static storage. */
DC_API const char *dc_lock_mode_name(dc_lock_mode mode);

/** True when a lock of `mode` makes plain SELECTs wait (ACCESS EXCLUSIVE). */
DC_API bool dc_lock_blocks_reads(dc_lock_mode mode);

/** True when a lock of `mode` makes INSERT/UPDATE/DELETE wait (SHARE and up). */
DC_API bool dc_lock_blocks_writes(dc_lock_mode mode);

/** What a statement does to a table's data, mildest first. */
typedef enum dc_effect {
	DC_EFFECT_NONE = 0,        /**< catalog only */
	DC_EFFECT_SCAN = 1,        /**< reads every row (validation, index build) */
	DC_EFFECT_MAY_REWRITE = 2, /**< rewrites unless the catalog says otherwise
	                                (e.g. a column of a user type that may be a
	                                constrained domain); resolved by plan --live */
	DC_EFFECT_REWRITE = 3      /**< writes a new copy of the table (and its indexes) */
} dc_effect;

/** "catalog only", "scan", "may rewrite", "rewrite". Static storage. */
DC_API const char *dc_effect_name(dc_effect effect);

/**
 * One row of the lock table (docs/reference/pg15-locks.md, checked on
 * PostgreSQL 15): a statement kind or ALTER TABLE subcommand, the lock it
 * takes on its own relation, the lock on a second relation (referenced
 * table, partition, index, parent), and what it does to the data. The
 * model classifies a parse tree into rows; every lock level comes from here.
 */
typedef struct dc_lock_rule {
	int op;                  /**< internal id, stable within a build */
	const char *what;        /**< "ALTER TABLE ... ADD COLUMN (volatile default)" */
	dc_lock_mode lock;       /**< on the statement's own relation */
	dc_lock_mode other_lock; /**< on `other`, DC_LOCK_NONE when none */
	const char *other;       /**< "referenced table", "partition", ...; NULL */
	dc_effect effect;
	bool transactional; /**< may run inside a transaction block */
	const char *note;   /**< NULL or a caveat from the reference */
} dc_lock_rule;

/** The whole lock table (static storage), for documentation and tests. */
DC_API const dc_lock_rule *dc_pg_lock_table(size_t *n);

/** A relation a statement touches and the lock it takes on it. */
typedef struct dc_rel_lock {
	char *schema; /**< as written, NULL when not schema-qualified */
	char *name;
	dc_lock_mode lock;
	const char *role; /**< "table", "index", "referenced table", ... (static) */
} dc_rel_lock;

/** Everything the model knows about one statement. */
typedef struct dc_stmt_model {
	const char *kind;           /**< "ALTER TABLE", "CREATE INDEX", ... (static) */
	const char *file;           /**< borrowed from the caller */
	int line, col;              /**< 1-based position of its first character */
	size_t offset, len;         /**< byte span in the analysed text */
	const dc_lock_rule **rules; /**< the lock-table rows it matched (heap array) */
	size_t nrules;
	dc_rel_lock *rels; /**< one entry per relation, strongest lock kept */
	size_t nrels;
	dc_lock_mode lock;        /**< strongest lock taken on any relation */
	dc_effect effect;         /**< worst effect of its rules */
	bool transactional;       /**< may run inside a transaction block */
	bool transaction_control; /**< BEGIN, COMMIT, SAVEPOINT, ... */
	bool reversible;          /**< a mechanical inverse exists (in `inverse`) */
	char *inverse;            /**< heap SQL undoing it, NULL when not mechanical */
	char *note;               /**< heap; why "may rewrite" etc., NULL when none */
} dc_stmt_model;

typedef struct dc_stmt_list {
	dc_stmt_model *items;
	size_t len, alloc;
} dc_stmt_list;

/**
 * Parses `sql` once and appends a model per statement to `out`. Positions
 * count from `line`:`col` (1-based; 0 means 1) of `file` (borrowed: must
 * outlive `out`). A syntax error is DC_EPARSE with file:line:col.
 */
DC_API int dc_pg_analyze(const char *sql,
                         const char *file,
                         int line,
                         int col,
                         dc_stmt_list *out,
                         dc_error *err);

/** Frees every model of `l` and the array; `l` is then empty. */
DC_API void dc_stmt_list_release(dc_stmt_list *l);

/* ------------------------------------------------------------------------ */
/* Lint.                                                                    */

typedef enum dc_severity {
	DC_SEV_OFF = 0,
	DC_SEV_INFO = 1,
	DC_SEV_WARNING = 2,
	DC_SEV_ERROR = 3
} dc_severity;

/** "off", "info", "warning", "error". Static storage. */
DC_API const char *dc_severity_name(dc_severity sev);

/** Parses a severity name; 0 or DC_EINVAL. */
DC_API int dc_severity_parse(const char *s, dc_severity *out);

/** One lint rule (static storage; see docs/lint-rules.md). */
typedef struct dc_lint_rule {
	const char *id;          /**< "DC101" */
	const char *name;        /**< "create-index-non-concurrent" */
	dc_severity severity;    /**< default */
	const char *summary;     /**< what it finds */
	const char *why;         /**< why it is dangerous */
	const char *help;        /**< the safe alternative */
	const char *equivalents; /**< squawk / strong_migrations / Atlas names */
} dc_lint_rule;

/** Every rule, in id order. */
DC_API const dc_lint_rule *dc_lint_rules(size_t *n);

/** The rule with this id or name (case-insensitive), or NULL. */
DC_API const dc_lint_rule *dc_lint_rule_find(const char *id_or_name);

/** Upper bound on the number of rules (size of dc_lint_config.severity). */
#define DC_LINT_MAX_RULES 96

/** What lint needs to know about the fleet. Caller storage, no pointers owned. */
typedef struct dc_lint_config {
	/** Severity per rule, by index in dc_lint_rules(); set by _init to the defaults. */
	dc_severity severity[DC_LINT_MAX_RULES];
	/** Schema-per-tenant: naming any schema but the tenant's is an isolation
	 * violation (pg_catalog and information_schema may be read). */
	bool schema_tenancy;
	/** lock_timeout / statement_timeout deployclaw sets before each migration
	 * (gates); 0 when none, which turns on the require-*-timeout rules. */
	int64_t lock_timeout_ms;
	int64_t statement_timeout_ms;
	/** gates.require_down: a migration without a down is an error, not a warning. */
	bool require_down;
	/** tenancy.shared_schemas (borrowed): under schema tenancy, schemas a tenant's
	 * migration may read but not change. */
	const char *const *shared_schemas;
	size_t nshared_schemas;
	/** gates.isolation.dynamic_sql: allow: EXECUTE of a string is a warning, not an
	 * error (the isolation gate lets it through to the run-time checks). */
	bool allow_dynamic_sql;
} dc_lint_config;

/** Defaults: every rule at its default severity, deployclaw's default gates. */
DC_API void dc_lint_config_init(dc_lint_config *cfg);

/** Sets the severity of the rule with this id or name; DC_ENOTFOUND when unknown. */
DC_API int dc_lint_config_set(dc_lint_config *cfg,
                              const char *rule,
                              dc_severity sev,
                              dc_error *err);

struct dc_config;

/**
 * Fills `lc` from a fleet config: defaults, then tenancy (schema), gates
 * (lock/statement timeouts, require_down) and the `lint.rules` severities.
 * An unknown rule id is DC_ECONFIG at its position in the config file.
 */
DC_API int dc_lint_config_from(dc_lint_config *lc, const struct dc_config *cfg, dc_error *err);

/** One finding. Strings are heap-owned by the finding list unless noted. */
typedef struct dc_finding {
	const dc_lint_rule *rule; /**< static */
	dc_severity severity;     /**< after configuration */
	char *file;               /**< NULL when linting a bare string with no name */
	int line, col;            /**< 1-based */
	char *message;            /**< one line, names the relation */
	char *suggestion;         /**< mechanical rewrite, NULL when none */
	char *source;             /**< the source line (for carets), NULL when unknown */
} dc_finding;

typedef struct dc_finding_list {
	dc_finding *items;
	size_t len, alloc;
} dc_finding_list;

/** Frees every finding and the array; `l` is then empty. */
DC_API void dc_finding_list_release(dc_finding_list *l);

/** Number of findings at or above `min`. */
DC_API size_t dc_finding_list_count(const dc_finding_list *l, dc_severity min);

/** Orders findings by file, line, column, rule id. */
DC_API void dc_finding_list_sort(dc_finding_list *l);

/**
 * Lints a bare SQL text (one or more statements) as the up of a single
 * transactional phase that deployclaw wraps in a transaction. `file` names
 * it in findings (may be NULL). `cfg` NULL = defaults. A syntax error is a
 * finding (DC000), not a failure: the return is 0 unless memory runs out.
 * The text is parsed once.
 */
DC_API int dc_lint_sql(const char *sql,
                       const char *file,
                       const dc_lint_config *cfg,
                       dc_finding_list *out,
                       dc_error *err);

/**
 * Lints one migration: every phase's up (transactional or not as the phase
 * says) and down, plus the rules about downs (missing, not the inverse of
 * the up). PostgreSQL dialect only.
 */
DC_API int dc_lint_migration(const dc_migration *m,
                             const dc_lint_config *cfg,
                             dc_finding_list *out,
                             dc_error *err);

typedef enum dc_lint_format {
	DC_LINT_HUMAN = 0, /**< compiler style, source line and caret */
	DC_LINT_JSON = 1,  /**< {"findings": [...], "summary": {...}} */
	DC_LINT_SARIF = 2, /**< SARIF 2.1.0 */
	DC_LINT_GITHUB = 3 /**< ::error file=...,line=...,col=...::message */
} dc_lint_format;

/** Parses "human", "json", "sarif", "github"; 0 or DC_EINVAL. */
DC_API int dc_lint_format_parse(const char *s, dc_lint_format *out);

/** Renders `l` in `fmt` into `out` (ANSI colour when `color`, human only). */
DC_API int dc_lint_render(const dc_finding_list *l, dc_lint_format fmt, bool color, dc_strbuf *out);

#endif
