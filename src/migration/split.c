/*
 * split.c — SQL text → statements, each with its line:col in its file.
 *
 * SQL is split with the dialect's real parser (libpg_query, or
 * sqlite3_complete plus sqlite3_prepare_v2).
 */
#include <stdlib.h>
#include <string.h>

#include <pg_query.h>
#include <sqlite3.h>

#include "migration_internal.h"
#include "util/array.h"
#include "util/text.h"

/* sqlite3_complete may scan this many bytes plus 16 per byte of SQL. */
#define SPLIT_WORK_BASE ((size_t)256 * 1024 * 1024)

/* dc_statement.file is `char *` but borrowed: keep the const out of sight. */
static char *borrow(const char *s)
{
	return (char *)(uintptr_t)s;
}

/* ------------------------------------------------------------------------ */
/* Positions: offsets in an SQL text → line:col in the file it came from.   */

void dc_migration__srcmap_init(struct srcmap *m,
                               const char *raw,
                               size_t rawlen,
                               int line0,
                               int col0)
{
	memset(m, 0, sizeof(*m));
	m->raw = raw;
	m->rawlen = rawlen;
	m->line0 = m->line = line0 > 0 ? line0 : 1;
	m->col0 = m->col = col0 > 0 ? col0 : 1;
}

/*
 * Positions count from raw[off], known to be at line:col, so that a scalar
 * deep in a big YAML file does not rescan the file from its first byte.
 */
void dc_migration__srcmap_set_origin(struct srcmap *m, size_t off, int line, int col)
{
	if (off > m->rawlen)
		off = m->rawlen;
	m->origin = m->cur = off;
	m->line0 = m->line = line > 0 ? line : 1;
	m->col0 = m->col = col > 0 ? col : 1;
}

void dc_migration__srcmap_pos(struct srcmap *m, size_t off, int *line, int *col)
{
	size_t r;

	if (m->map)
		r = m->map[off < m->maplen ? off : m->maplen];
	else
		r = m->base + off;
	if (r > m->rawlen)
		r = m->rawlen;
	if (r < m->origin)
		r = m->origin;
	if (r < m->cur) {
		m->cur = m->origin;
		m->line = m->line0;
		m->col = m->col0;
	}
	dc_text_advance(m->raw + m->cur, r - m->cur, &m->line, &m->col);
	m->cur = r;
	*line = m->line;
	*col = m->col;
}

/* ------------------------------------------------------------------------ */
/* Splitting.                                                               */

/*
 * Preparing must not act: a few pragmas take effect while compiling
 * (temp_store_directory, ...), so every pragma is refused here. A refusal is
 * not a syntax error, so the statement still loads.
 */
static int deny_pragma(void *arg,
                       int action,
                       const char *a,
                       const char *b,
                       const char *c,
                       const char *d)
{
	(void)arg;
	(void)a;
	(void)b;
	(void)c;
	(void)d;
	return action == SQLITE_PRAGMA || action == SQLITE_ATTACH ? SQLITE_DENY : SQLITE_OK;
}

int dc_migration__splitter_open(struct splitter *sp, dc_dialect dialect, dc_error *err)
{
	sp->dialect = dialect;
	sp->db = NULL;
	if (dialect != DC_DIALECT_SQLITE)
		return 0;
	if (sqlite3_open_v2(":memory:", &sp->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_MEMORY,
	                    NULL) != SQLITE_OK) {
		sqlite3_close(sp->db);
		sp->db = NULL;
		return dc_error_set(err, DC_ENOMEM, "cannot open an in-memory sqlite database");
	}
	sqlite3_set_authorizer(sp->db, deny_pragma, NULL);
	return 0;
}

void dc_migration__splitter_close(struct splitter *sp)
{
	sqlite3_close(sp->db);
	sp->db = NULL;
}

struct stmtvec {
	dc_statement *v;
	size_t n, alloc;
};

static void stmtvec_release(struct stmtvec *sv)
{
	dc_statements_free(sv->v, sv->n);
	sv->v = NULL;
	sv->n = sv->alloc = 0;
}

/* Skips blanks and comments from `s`; `nest` for PostgreSQL's nested block comments. */
size_t dc_migration__skip_space_comments(const char *sql, size_t s, size_t e, bool nest)
{
	while (s < e) {
		if (dc_migration__is_blank((unsigned char)sql[s])) {
			s++;
		} else if (s + 1 < e && sql[s] == '-' && sql[s + 1] == '-') {
			while (s < e && sql[s] != '\n')
				s++;
		} else if (s + 1 < e && sql[s] == '/' && sql[s + 1] == '*') {
			int depth = 1;

			s += 2;
			while (s < e && depth > 0) {
				if (s + 1 < e && sql[s] == '*' && sql[s + 1] == '/') {
					depth--;
					s += 2;
				} else if (nest && s + 1 < e && sql[s] == '/' &&
				           sql[s + 1] == '*') {
					depth++;
					s += 2;
				} else {
					s++;
				}
			}
		} else {
			break;
		}
	}
	return s;
}

bool dc_migration__only_space_comments(const char *sql, size_t len)
{
	return dc_migration__skip_space_comments(sql, 0, len, true) >= len;
}

/* Adds sql[s, e) as a statement, minus leading comments and surrounding blanks. */
static int emit(struct stmtvec *sv,
                const char *sql,
                size_t s,
                size_t e,
                bool nest,
                struct srcmap *m,
                const char *file,
                size_t *start)
{
	dc_statement *st;

	s = dc_migration__skip_space_comments(sql, s, e, nest);
	while (e > s && dc_migration__is_blank((unsigned char)sql[e - 1]))
		e--;
	*start = s;
	if (s >= e)
		return 1; /* nothing but comments: no statement */
	if (sv->n == sv->alloc && dc_array_grow(&sv->v, &sv->alloc, sizeof(*sv->v), 8) != 0)
		return DC_ENOMEM;
	st = &sv->v[sv->n];
	st->sql = dc_strndup(sql + s, e - s);
	if (!st->sql)
		return DC_ENOMEM;
	st->file = borrow(file);
	dc_migration__srcmap_pos(m, s, &st->line, &st->col);
	sv->n++;
	return 0;
}

static bool sqlite_syntax_error(const char *msg)
{
	return strstr(msg, "syntax error") || strstr(msg, "incomplete input") ||
	       strstr(msg, "unrecognized token");
}

/* Prepares sql[s, e) to find syntax errors; semantic errors are expected (no schema). */
static int sqlite_check(struct splitter *sp,
                        const char *sql,
                        size_t s,
                        size_t e,
                        struct srcmap *m,
                        const char *file,
                        dc_error *err)
{
	sqlite3_stmt *stmt = NULL;
	int rc, line, col, off;
	const char *msg;

	rc = sqlite3_prepare_v2(sp->db, sql + s, (int)(e - s), &stmt, NULL);
	sqlite3_finalize(stmt);
	if (rc == SQLITE_OK)
		return 0;
	if (rc == SQLITE_NOMEM)
		return dc_error_set(err, DC_ENOMEM, "out of memory preparing sql");
	msg = sqlite3_errmsg(sp->db);
	if (!sqlite_syntax_error(msg))
		return 0;
	off = sqlite3_error_offset(sp->db);
	if (off < 0 || (size_t)off > e - s)
		off = 0;
	dc_migration__srcmap_pos(m, s + (size_t)off, &line, &col);
	return dc_error_set_at(err, DC_EPARSE, file, line, col, "%s", msg);
}

static int split_sqlite(struct splitter *sp,
                        const char *sql,
                        size_t len,
                        struct srcmap *m,
                        const char *file,
                        struct stmtvec *sv,
                        dc_error *err)
{
	dc_strbuf cand = DC_STRBUF_INIT;
	size_t start = 0, fed = 0, i, s, work = 0;
	/* bytes sqlite3_complete may scan in all: see below */
	size_t budget = SPLIT_WORK_BASE + (len > SIZE_MAX / 16 ? SIZE_MAX / 2 : 16 * len);
	int rc = 0, line, col;

	/*
	 * A ';' ends a statement only where sqlite3_complete() says the text
	 * so far is complete: not inside strings, comments or trigger bodies.
	 * Each test rescans the statement so far, so a statement with very many
	 * ';' inside it (a string of them) is quadratic: the scanning is capped.
	 */
	for (i = 0; i < len; i++) {
		if (sql[i] != ';')
			continue;
		dc_strbuf_add(&cand, sql + fed, i + 1 - fed);
		fed = i + 1;
		if (dc_strbuf_error(&cand)) {
			rc = dc_error_set(err, DC_ENOMEM, "out of memory splitting sql");
			goto out;
		}
		work += cand.len;
		if (work > budget) {
			dc_migration__srcmap_pos(
			        m, dc_migration__skip_space_comments(sql, start, i, false), &line,
			        &col);
			rc = dc_error_set_at(err, DC_ELIMIT, file, line, col,
			                     "statement has too many ';' inside it to split");
			goto out;
		}
		if (!sqlite3_complete(cand.buf))
			continue;
		rc = emit(sv, sql, start, i, false, m, file, &s);
		if (rc < 0) {
			rc = dc_error_set(err, rc, "out of memory splitting sql");
			goto out;
		}
		if (rc == 0 && (rc = sqlite_check(sp, sql, s, i, m, file, err)) < 0)
			goto out;
		rc = 0;
		start = fed;
		dc_strbuf_reset(&cand);
	}
	/* The tail: a last statement without ';', or an unterminated one. */
	rc = emit(sv, sql, start, len, false, m, file, &s);
	if (rc < 0) {
		rc = dc_error_set(err, rc, "out of memory splitting sql");
		goto out;
	}
	if (rc == 0 && (rc = sqlite_check(sp, sql, s, len, m, file, err)) < 0)
		goto out;
	rc = 0;
out:
	dc_strbuf_release(&cand);
	return rc;
}

/* Byte offset of the `chars`-th character (0-based) of sql. */
static size_t char_to_byte(const char *sql, size_t len, size_t chars)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if (((unsigned char)sql[i] & 0xC0) == 0x80)
			continue;
		if (chars == 0)
			return i;
		chars--;
	}
	return len;
}

static int split_pg(const char *sql,
                    size_t len,
                    struct srcmap *m,
                    const char *file,
                    struct stmtvec *sv,
                    dc_error *err)
{
	PgQuerySplitResult res;
	int rc = 0, i, line, col;
	size_t s;

	res = pg_query_split_with_parser(sql);
	if (res.error) {
		int pos = res.error->cursorpos;
		size_t off = pos > 0 ? char_to_byte(sql, len, (size_t)pos - 1) : 0;

		dc_migration__srcmap_pos(m, off, &line, &col);
		rc = dc_error_set_at(err, DC_EPARSE, file, line, col, "%s",
		                     res.error->message ? res.error->message : "syntax error");
		goto out;
	}
	for (i = 0; i < res.n_stmts; i++) {
		int loc = res.stmts[i]->stmt_location, slen = res.stmts[i]->stmt_len;
		size_t b, e;

		if (loc < 0 || (size_t)loc > len || slen < 0 || (size_t)slen > len - (size_t)loc)
			continue;
		b = (size_t)loc;
		e = slen == 0 ? len : b + (size_t)slen;
		rc = emit(sv, sql, b, e, true, m, file, &s);
		if (rc < 0) {
			rc = dc_error_set(err, rc, "out of memory splitting sql");
			goto out;
		}
		rc = 0;
	}
out:
	pg_query_free_split_result(res);
	return rc;
}

/* `sql` must be NUL-terminated at `len`. */
int dc_migration__split_sql(struct splitter *sp,
                            const char *sql,
                            size_t len,
                            struct srcmap *m,
                            const char *file,
                            dc_statement **out,
                            size_t *n,
                            dc_error *err)
{
	struct stmtvec sv = { NULL, 0, 0 };
	int rc;

	*out = NULL;
	*n = 0;
	if (sp->dialect == DC_DIALECT_POSTGRES)
		rc = split_pg(sql, len, m, file, &sv, err);
	else
		rc = split_sqlite(sp, sql, len, m, file, &sv, err);
	if (rc < 0) {
		stmtvec_release(&sv);
		return rc;
	}
	*out = sv.v;
	*n = sv.n;
	return 0;
}

int dc_sql_split(dc_statement **out,
                 size_t *n,
                 const char *sql,
                 dc_dialect dialect,
                 const char *file,
                 int line,
                 int col,
                 dc_error *err)
{
	struct splitter sp;
	struct srcmap m;
	size_t len;
	int rc;

	*out = NULL;
	*n = 0;
	if (!sql)
		return dc_error_set(err, DC_EINVAL, "no sql to split");
	if (dialect != DC_DIALECT_SQLITE && dialect != DC_DIALECT_POSTGRES)
		return dc_error_set(err, DC_EINVAL, "unknown sql dialect %d", (int)dialect);
	len = strlen(sql);
	rc = dc_migration__splitter_open(&sp, dialect, err);
	if (rc < 0)
		return rc;
	dc_migration__srcmap_init(&m, sql, len, line, col);
	rc = dc_migration__split_sql(&sp, sql, len, &m, file, out, n, err);
	dc_migration__splitter_close(&sp);
	return rc;
}

void dc_statements_free(dc_statement *stmts, size_t n)
{
	size_t i;

	if (!stmts)
		return;
	for (i = 0; i < n; i++)
		free(stmts[i].sql);
	free(stmts);
}
