/*
 * Statements: the user's (a migration's, a verify assertion), prepared with
 * the authorizer on, and deployclaw's own queries (query_text).
 */
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include <sqlite3.h>

#include <deployclaw/engine.h>

#include "sqlite_internal.h"
#include "util/util.h"

static void classify_reset(dc_conn *c)
{
	if (!c->graph_sticky)
		c->graph_valid = false;
	c->actions = 0;
	c->altering = false;
	c->ddl = false;
	c->dml = false;
	c->ntables = 0;
	c->refusal[0] = '\0';
}

static int stmt_fail(dc_conn *c, const dc_statement *stmt, dc_error *err)
{
	if (c->refusal[0])
		return dc_sqlite__fail(c, err, DC_EINVAL, stmt->file, stmt->line, stmt->col, "%s",
		                       c->refusal);
	return dc_sqlite__fail(c, err, sqlite3_errcode(c->db) == SQLITE_BUSY ? DC_ELOCKED : DC_EDB,
	                       stmt->file, stmt->line, stmt->col, "tenant '%s': %s",
	                       dc_sqlite__tenant_id(c), sqlite3_errmsg(c->db));
}

/* Prepares the first user statement of `sql` with the authorizer on. `*st`
 * is NULL when `sql` holds only blanks and comments. */
static int prepare_user(dc_conn *c,
                        const dc_statement *stmt,
                        const char *sql,
                        sqlite3_stmt **st,
                        const char **tail,
                        dc_error *err)
{
	int rc;

	classify_reset(c);
	c->user = true;
	c->stmt_sql = sql;
	rc = sqlite3_prepare_v2(c->db, sql, -1, st, tail);
	c->user = false;
	c->stmt_sql = NULL;
	if (rc != SQLITE_OK)
		return stmt_fail(c, stmt, err);
	return 0;
}

/* True when `st` compiles to the Vacuum opcode; `*into` when it writes its
 * copy to a file (VACUUM INTO: the opcode's P2 names the register holding the
 * file name). SQLite's authorizer does not report VACUUM, so the program
 * itself is inspected (never the SQL text). */
static int is_vacuum(dc_conn *c, sqlite3_stmt *st, bool *out, bool *into)
{
	sqlite3_stmt *ex = NULL;
	int rc;

	*out = false;
	*into = false;
	dc_strbuf_reset(&c->scratch);
	dc_strbuf_adds(&c->scratch, "EXPLAIN ");
	dc_strbuf_adds(&c->scratch, sqlite3_sql(st));
	if (dc_strbuf_error(&c->scratch))
		return DC_ENOMEM;
	rc = sqlite3_prepare_v2(c->db, c->scratch.buf, (int)c->scratch.len, &ex, NULL);
	while (rc == SQLITE_OK && (rc = sqlite3_step(ex)) == SQLITE_ROW) {
		const unsigned char *op = sqlite3_column_text(ex, 1);

		if (op && strcmp((const char *)op, "Vacuum") == 0) {
			*out = true;
			*into = sqlite3_column_int(ex, 3) != 0;
			break;
		}
		rc = SQLITE_OK;
	}
	sqlite3_finalize(ex);
	return 0;
}

int dc_sqlite__exec(dc_conn *c, const dc_statement *stmt, int64_t *rows, dc_error *err)
{
	sqlite3_stmt *st = NULL;
	const char *sql = stmt->sql, *tail = NULL;
	int64_t total = 0;
	bool vacuum, into;
	int ret, rc;

	if ((ret = dc_sqlite__need_db(c, err)) != 0)
		return ret;
	/* A dc_statement is one statement, but a trailing comment or a second
	 * statement in its text must not be silently dropped. */
	while (sql && *sql) {
		if ((ret = prepare_user(c, stmt, sql, &st, &tail, err)) != 0)
			goto out;
		if (!st)
			break;
		/* A statement the authorizer never saw may be VACUUM: only those pay
		 * for the EXPLAIN. VACUUM INTO writes a copy of the tenant to a file
		 * of its own, outside the tenant (and SQLite's ATTACH for it runs
		 * while stepping, unseen): never. */
		if (c->actions == 0) {
			if (is_vacuum(c, st, &vacuum, &into) != 0) {
				ret = dc_sqlite__fail(c, err, DC_ENOMEM, NULL, 0, 0,
				                      "out of memory");
				goto out;
			}
			if (into) {
				ret = dc_sqlite__fail(
				        c, err, DC_EINVAL, stmt->file, stmt->line, stmt->col,
				        "statement refused: VACUUM INTO would write tenant '%s' to a file outside it (tenant isolation)",
				        dc_sqlite__tenant_id(c));
				goto out;
			}
			/* unseen, it may still write: REINDEX without a name, VACUUM */
			if (!sqlite3_stmt_readonly(st))
				c->written_all = true;
			if (vacuum && !sqlite3_get_autocommit(c->db)) {
				ret = dc_sqlite__fail(
				        c, err, DC_EINVAL, stmt->file, stmt->line, stmt->col,
				        "tenant '%s': VACUUM cannot run inside a transaction: put it in a phase with `transaction: false`",
				        dc_sqlite__tenant_id(c));
				goto out;
			}
		}
		/* Checks are off while stepping: SQLite's own nested statements
		 * (VACUUM attaches a scratch database) are not the user's, and a
		 * re-prepare cannot reach a database the accepted text could not. */
		while ((rc = sqlite3_step(st)) == SQLITE_ROW)
			;
		if (rc != SQLITE_DONE) {
			ret = stmt_fail(c, stmt, err);
			goto out;
		}
		/* sqlite3_changes64 keeps the count of the last INSERT/UPDATE/DELETE:
		 * a DDL statement changed no row. */
		if (c->dml)
			total += sqlite3_changes64(c->db);
		sqlite3_finalize(st);
		st = NULL;
		sql = tail;
	}
	if (rows)
		*rows = total;
out:
	if (c->history == HISTORY_EMPTY)
		c->history = HISTORY_PRESENT; /* the user's SQL may have written it: read it */
	c->user = false;
	sqlite3_finalize(st);
	dc_sqlite__sync_tx(c);
	return ret;
}

static bool truthy(sqlite3_stmt *st)
{
	const char *s;

	switch (sqlite3_column_type(st, 0)) {
	case SQLITE_INTEGER:
		return sqlite3_column_int64(st, 0) != 0;
	case SQLITE_FLOAT:
		return sqlite3_column_double(st, 0) != 0.0;
	case SQLITE_TEXT:
		s = (const char *)sqlite3_column_text(st, 0);
		return s && (strcmp(s, "1") == 0 || strcasecmp(s, "true") == 0 ||
		             strcasecmp(s, "t") == 0);
	default:
		return false; /* NULL (unknown is not true) and blobs */
	}
}

int dc_sqlite__query_bool(dc_conn *c, const dc_statement *stmt, bool *out, dc_error *err)
{
	sqlite3_stmt *st = NULL, *extra = NULL;
	const char *tail = NULL;
	int ret, rc;

	*out = false;
	if ((ret = dc_sqlite__need_db(c, err)) != 0)
		return ret;
	if ((ret = prepare_user(c, stmt, stmt->sql, &st, &tail, err)) != 0)
		goto out;
	if (st && tail && *tail) {
		if ((ret = prepare_user(c, stmt, tail, &extra, NULL, err)) != 0)
			goto out;
	}
	if (!st || extra) {
		ret = dc_sqlite__fail(
		        c, err, DC_EINVAL, stmt->file, stmt->line, stmt->col,
		        "tenant '%s': a verify assertion must be exactly one statement",
		        dc_sqlite__tenant_id(c));
		goto out;
	}
	if (!sqlite3_stmt_readonly(st)) {
		ret = dc_sqlite__fail(
		        c, err, DC_EINVAL, stmt->file, stmt->line, stmt->col,
		        "tenant '%s': a verify assertion must not change the database",
		        dc_sqlite__tenant_id(c));
		goto out;
	}
	if (sqlite3_column_count(st) != 1) {
		ret = dc_sqlite__fail(
		        c, err, DC_EINVAL, stmt->file, stmt->line, stmt->col,
		        "tenant '%s': verify assertion returned %d columns (expected one)",
		        dc_sqlite__tenant_id(c), sqlite3_column_count(st));
		goto out;
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*out = truthy(st);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			*out = false;
			ret = dc_sqlite__fail(
			        c, err, DC_EINVAL, stmt->file, stmt->line, stmt->col,
			        "tenant '%s': verify assertion returned more than one row",
			        dc_sqlite__tenant_id(c));
			goto out;
		}
	} else if (rc == SQLITE_DONE) {
		ret = dc_sqlite__fail(c, err, DC_EINVAL, stmt->file, stmt->line, stmt->col,
		                      "tenant '%s': verify assertion returned no row",
		                      dc_sqlite__tenant_id(c));
		goto out;
	}
	if (rc != SQLITE_DONE) {
		*out = false;
		ret = stmt_fail(c, stmt, err);
	}
out:
	c->user = false;
	sqlite3_finalize(extra);
	sqlite3_finalize(st);
	return ret;
}

int dc_sqlite__query_text(dc_conn *c,
                          const char *sql,
                          dc_strbuf *out,
                          size_t max_rows,
                          dc_error *err)
{
	sqlite3_stmt *st = NULL;
	size_t nrows = 0;
	int ret, rc = SQLITE_DONE;

	if ((ret = dc_sqlite__need_db(c, err)) != 0)
		return ret;
	/* SQL of any kind, unwatched by the authorizer */
	c->graph_valid = false;
	c->graph_pending = false;
	if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK) {
		ret = dc_sqlite__db_fail(c, err, NULL);
		goto out;
	}
	while (nrows < max_rows && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const unsigned char *s = sqlite3_column_text(st, 0);

		if (s)
			dc_strbuf_add(out, s, (size_t)sqlite3_column_bytes(st, 0));
		dc_strbuf_addch(out, '\n');
		nrows++;
	}
	if (nrows < max_rows && rc != SQLITE_DONE) {
		ret = dc_sqlite__db_fail(c, err, NULL);
		goto out;
	}
	if (dc_strbuf_error(out))
		ret = dc_sqlite__fail(c, err, dc_strbuf_error(out), NULL, 0, 0,
		                      "tenant '%s': query output too large",
		                      dc_sqlite__tenant_id(c));
out:
	sqlite3_finalize(st);
	return ret;
}
