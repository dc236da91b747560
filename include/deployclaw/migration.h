/**
 * deployclaw/migration.h — a migrations folder as an ordered set.
 *
 * Four layouts are recognised: deployclaw's native YAML (one file per
 * migration, docs/migrations.md), golang-migrate (NNN_name.up.sql + .down.sql),
 * dbmate (one file, "-- migrate:up" / "-- migrate:down") and Flyway
 * (V<ver>__name.sql + optional U<ver>__name.sql). A folder mixing them is
 * refused. SQL is split into statements by the real parsers (libpg_query
 * for PostgreSQL, sqlite3_complete/prepare for SQLite), and every statement
 * keeps its line:col in its file.
 */
#ifndef DEPLOYCLAW_MIGRATION_H
#define DEPLOYCLAW_MIGRATION_H

#include <deployclaw/common.h>
#include <deployclaw/strbuf.h>

/** A migration file larger than this is refused (DC_ELIMIT). */
#define DC_MIGRATION_MAX_FILE_BYTES ((size_t)16 * 1024 * 1024)

/** A folder with more migrations than this is refused (DC_ELIMIT). */
#define DC_MIGRATION_MAX_COUNT 100000

/** A native migration with more phases (or verify entries) is refused (DC_ELIMIT). */
#define DC_MIGRATION_MAX_PHASES 1000

/** Name of the sum file inside a migrations folder. */
#define DC_SUM_FILE_NAME "deployclaw.sum"

typedef enum dc_layout {
	DC_LAYOUT_NATIVE = 0,
	DC_LAYOUT_GOLANG_MIGRATE = 1,
	DC_LAYOUT_DBMATE = 2,
	DC_LAYOUT_FLYWAY = 3
} dc_layout;

typedef enum dc_dialect {
	DC_DIALECT_SQLITE = 0,
	DC_DIALECT_POSTGRES = 1
} dc_dialect;

/** Name of a layout: "native", "golang-migrate", "dbmate", "flyway". */
DC_API const char *dc_layout_name(dc_layout layout);

/**
 * Where a migration runs: in every tenant (the default), or once per shard
 * database (`scope: shard`, PostgreSQL only) for what the tenants share --
 * extensions, helper schemas, lookup tables (docs/migrations.md).
 */
typedef enum dc_scope {
	DC_SCOPE_TENANT = 0,
	DC_SCOPE_SHARD = 1
} dc_scope;

/** Name of a scope: "tenant", "shard". */
DC_API const char *dc_scope_name(dc_scope scope);

/** One SQL statement and where it stands. */
typedef struct dc_statement {
	char *sql;  /**< the statement text, without the trailing ';' */
	char *file; /**< borrowed from the owning dc_sql */
	int line;   /**< 1-based position of its first character in `file` */
	int col;
} dc_statement;

/** A block of SQL (a phase's up or down, or a verify assertion). */
typedef struct dc_sql {
	char *text; /**< as written (NULL when absent) */
	char *file; /**< the file it came from */
	int line;   /**< position of `text` in `file` */
	int col;
	dc_statement *stmts;
	size_t nstmts;
} dc_sql;

typedef struct dc_phase {
	char *name;         /**< "expand", "backfill", ...; "main" for single-phase layouts */
	bool transactional; /**< false for dbmate transaction:false or `transaction: false` */
	int64_t batch_rows; /**< > 0: repeat `up` until it touches no row */
	dc_sql up;
	dc_sql down; /**< down.text == NULL when the phase has no down */
} dc_phase;

typedef struct dc_migration {
	char *version; /**< as written: "2024_001", "3", "1.2" */
	char *name;
	char *audit; /**< native `audit:` level, NULL when absent */
	dc_layout layout;
	char *path;      /**< the up (or only) file */
	char *down_path; /**< golang-migrate/Flyway down file, NULL otherwise */
	dc_phase *phases;
	size_t nphases;
	dc_sql *verify; /**< verify assertions: each one SELECT yielding a boolean */
	size_t nverify;
	char checksum[65]; /**< SHA-256 hex over the migration's file(s) */
	dc_scope scope;    /**< native `scope:`, or the `-- deployclaw:scope` directive */
} dc_migration;

typedef struct dc_migration_set {
	char *dir;
	dc_layout layout;
	dc_dialect dialect;
	dc_migration *migrations; /**< in natural version order */
	size_t count;
} dc_migration_set;

/**
 * Loads every migration of `dir`. Errors (DC_EPARSE / DC_EINVAL) name the
 * file, and line:col when the problem is inside it: mixed layouts (with the
 * offending names), duplicate versions, a down without an up, an empty file,
 * invalid UTF-8, an SQL syntax error (position from the parser's cursor).
 */
DC_API int dc_migration_set_load(dc_migration_set **out,
                                 const char *dir,
                                 dc_dialect dialect,
                                 dc_error *err);

DC_API void dc_migration_set_free(dc_migration_set *set);

/** The migration with `version`, or NULL. Borrowed. */
DC_API const dc_migration *dc_migration_set_find(const dc_migration_set *set, const char *version);

/**
 * Natural order of versions: digit runs compare as numbers, everything else
 * byte-wise ("2" < "10", "2024_001" < "2024_010"). <0, 0, >0.
 */
DC_API int dc_version_compare(const char *a, const char *b);

/**
 * Splits `sql` (from `file`, starting at line:col) into statements with the
 * dialect's parser. `*out` is a heap array of `*n` statements; free with
 * dc_statements_free. A syntax error is DC_EPARSE with the position.
 */
DC_API int dc_sql_split(dc_statement **out,
                        size_t *n,
                        const char *sql,
                        dc_dialect dialect,
                        const char *file,
                        int line,
                        int col,
                        dc_error *err);

DC_API void dc_statements_free(dc_statement *stmts, size_t n);

/* ------------------------------------------------------------------------ */
/* deployclaw.sum                                                           */

/** Path of the sum file of a migrations folder: `<dir>/deployclaw.sum`. Heap. */
DC_API char *dc_sum_path(const dc_migration_set *set);

/**
 * Renders the sum file: a first line "total <hex>", then one line per
 * migration "<relative file name> <version> <hex>" where each <hex> is the
 * SHA-256 of the previous line's hash and this migration's checksum (a
 * chain, as atlas.sum), and total covers all lines.
 */
DC_API int dc_sum_render(const dc_migration_set *set, dc_strbuf *out);

/** Writes the sum file atomically. */
DC_API int dc_sum_write(const dc_migration_set *set, dc_error *err);

/**
 * Verifies the sum file against the set. DC_ENOTFOUND when there is no sum
 * file; DC_EINTEGRITY naming every edited, added, removed or reordered
 * migration (by file name) in err->message.
 */
DC_API int dc_sum_check(const dc_migration_set *set, dc_error *err);

#endif
