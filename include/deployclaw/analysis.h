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
	 * ALTER TABLE ... DETACH PARTITION ... CONCURRENTLY, VACUUM, CLUSTER without
	 * a table, CREATE/DROP DATABASE, ALTER DATABASE ... SET TABLESPACE,
	 * CREATE/DROP TABLESPACE, ALTER SYSTEM, CREATE/ALTER/DROP SUBSCRIPTION,
	 * COMMIT/ROLLBACK PREPARED.
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

#endif
