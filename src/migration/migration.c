/*
 * migration.c — a migrations folder → an ordered dc_migration_set.
 *
 * The folder's layout is recognised from file names; SQL is split with the
 * dialect's real parser (libpg_query, or sqlite3_complete plus
 * sqlite3_prepare_v2), and every statement keeps its line:col in its file.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <libfyaml.h>
#include <pg_query.h>
#include <sodium.h>
#include <sqlite3.h>

#include <deployclaw/migration.h>

/* Files a folder may hold: every migration has at most an up and a down file. */
#define MAX_FILES       ((size_t)DC_MIGRATION_MAX_COUNT * 2)
#define MAX_VERSION_LEN 128
/* How far the scalar/raw alignment may skip non-blank raw bytes (escapes). */
#define ALIGN_SKIP 8
/* sqlite3_complete may scan this many bytes plus 16 per byte of SQL. */
#define SPLIT_WORK_BASE ((size_t)256 * 1024 * 1024)

const char *dc_layout_name(dc_layout layout)
{
	switch (layout) {
	case DC_LAYOUT_NATIVE:
		return "native";
	case DC_LAYOUT_GOLANG_MIGRATE:
		return "golang-migrate";
	case DC_LAYOUT_DBMATE:
		return "dbmate";
	case DC_LAYOUT_FLYWAY:
		return "flyway";
	}
	return "unknown";
}

/* dc_statement.file is `char *` but borrowed: keep the const out of sight. */
static char *borrow(const char *s)
{
	return (char *)(uintptr_t)s;
}

/* The first bytes of s[0, len) as a C string; a long word is cut (in messages only). */
static void copy_word(char *dst, size_t size, const char *src, size_t len)
{
	if (len >= size)
		len = size - 1;
	memcpy(dst, src, len);
	dst[len] = '\0';
}

static bool is_blank(int c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* ------------------------------------------------------------------------ */
/* Positions: offsets in an SQL text → line:col in the file it came from.   */

struct srcmap {
	const char *raw; /* the text positions count in (usually the whole file) */
	size_t rawlen;
	const size_t *map; /* SQL offset → raw offset; NULL: raw offset = base + offset */
	size_t maplen;
	size_t base;
	size_t origin; /* raw offset whose position is line0:col0 */
	int line0, col0;
	/* Cursor: statements come in increasing order, so scanning resumes. */
	size_t cur;
	int line, col;
};

static void srcmap_init(struct srcmap *m, const char *raw, size_t rawlen, int line0, int col0)
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
static void srcmap_set_origin(struct srcmap *m, size_t off, int line, int col)
{
	if (off > m->rawlen)
		off = m->rawlen;
	m->origin = m->cur = off;
	m->line0 = m->line = line > 0 ? line : 1;
	m->col0 = m->col = col > 0 ? col : 1;
}

static void srcmap_pos(struct srcmap *m, size_t off, int *line, int *col)
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
	for (; m->cur < r; m->cur++) {
		unsigned char c = (unsigned char)m->raw[m->cur];

		if (c == '\n') {
			m->line++;
			m->col = 1;
		} else if ((c & 0xC0) != 0x80) {
			m->col++;
		}
	}
	*line = m->line;
	*col = m->col;
}

/* ------------------------------------------------------------------------ */
/* Splitting.                                                               */

struct splitter {
	dc_dialect dialect;
	sqlite3 *db; /* in-memory, only ever prepares */
};

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

static int splitter_open(struct splitter *sp, dc_dialect dialect, dc_error *err)
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

static void splitter_close(struct splitter *sp)
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
static size_t skip_space_comments(const char *sql, size_t s, size_t e, bool nest)
{
	while (s < e) {
		if (is_blank((unsigned char)sql[s])) {
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

static bool only_space_comments(const char *sql, size_t len)
{
	return skip_space_comments(sql, 0, len, true) >= len;
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

	s = skip_space_comments(sql, s, e, nest);
	while (e > s && is_blank((unsigned char)sql[e - 1]))
		e--;
	*start = s;
	if (s >= e)
		return 1; /* nothing but comments: no statement */
	if (sv->n == sv->alloc) {
		size_t na = sv->alloc ? sv->alloc * 2 : 8;
		dc_statement *nv = dc_realloc_array(sv->v, na, sizeof(*nv));

		if (!nv)
			return DC_ENOMEM;
		sv->v = nv;
		sv->alloc = na;
	}
	st = &sv->v[sv->n];
	st->sql = dc_strndup(sql + s, e - s);
	if (!st->sql)
		return DC_ENOMEM;
	st->file = borrow(file);
	srcmap_pos(m, s, &st->line, &st->col);
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
	srcmap_pos(m, s + (size_t)off, &line, &col);
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
			srcmap_pos(m, skip_space_comments(sql, start, i, false), &line, &col);
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

		srcmap_pos(m, off, &line, &col);
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
static int split_sql(struct splitter *sp,
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
	rc = splitter_open(&sp, dialect, err);
	if (rc < 0)
		return rc;
	srcmap_init(&m, sql, len, line, col);
	rc = split_sql(&sp, sql, len, &m, file, out, n, err);
	splitter_close(&sp);
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

/* ------------------------------------------------------------------------ */
/* Versions.                                                                */

int dc_version_compare(const char *a, const char *b)
{
	const unsigned char *p = (const unsigned char *)a, *q = (const unsigned char *)b;

	while (*p && *q) {
		if (isdigit(*p) && isdigit(*q)) {
			size_t lp = 0, lq = 0;
			int c;

			while (*p == '0' && isdigit(p[1]))
				p++;
			while (*q == '0' && isdigit(q[1]))
				q++;
			while (isdigit(p[lp]))
				lp++;
			while (isdigit(q[lq]))
				lq++;
			if (lp != lq)
				return lp < lq ? -1 : 1;
			c = memcmp(p, q, lp);
			if (c)
				return c < 0 ? -1 : 1;
			p += lp;
			q += lq;
		} else {
			if (*p != *q)
				return *p < *q ? -1 : 1;
			p++;
			q++;
		}
	}
	if (*p == *q)
		return 0;
	return *p < *q ? -1 : 1;
}

static bool version_valid(const char *v)
{
	size_t i, n = strlen(v);

	if (n == 0 || n > MAX_VERSION_LEN)
		return false;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)v[i];

		if (!isalnum(c) && c != '.' && c != '_' && c != '-')
			return false;
	}
	return true;
}

/* ------------------------------------------------------------------------ */
/* Freeing.                                                                 */

static void sql_release(dc_sql *s)
{
	free(s->text);
	free(s->file);
	dc_statements_free(s->stmts, s->nstmts);
	memset(s, 0, sizeof(*s));
}

static void migration_release(dc_migration *m)
{
	size_t i;

	free(m->version);
	free(m->name);
	free(m->audit);
	free(m->path);
	free(m->down_path);
	for (i = 0; i < m->nphases; i++) {
		free(m->phases[i].name);
		sql_release(&m->phases[i].up);
		sql_release(&m->phases[i].down);
	}
	free(m->phases);
	for (i = 0; i < m->nverify; i++)
		sql_release(&m->verify[i]);
	free(m->verify);
	memset(m, 0, sizeof(*m));
}

void dc_migration_set_free(dc_migration_set *set)
{
	size_t i;

	if (!set)
		return;
	for (i = 0; i < set->count; i++)
		migration_release(&set->migrations[i]);
	free(set->migrations);
	free(set->dir);
	free(set);
}

const dc_migration *dc_migration_set_find(const dc_migration_set *set, const char *version)
{
	size_t lo = 0, hi;

	if (!set || !version)
		return NULL;
	hi = set->count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = dc_version_compare(set->migrations[mid].version, version);

		if (c == 0)
			return &set->migrations[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* ------------------------------------------------------------------------ */
/* Loading one file.                                                        */

struct loader {
	struct splitter sp;
	dc_error *err;
};

/* A file's bytes, checked: not empty, valid UTF-8, no NUL. */
static int read_checked(char **out, size_t *len, const char *path, const char *name, dc_error *err)
{
	struct srcmap m;
	size_t bad = 0;
	int rc, line, col;
	char *buf = NULL;
	const char *nul;

	*out = NULL;
	rc = dc_file_read(&buf, len, path, DC_MIGRATION_MAX_FILE_BYTES, err);
	if (rc < 0)
		goto out;
	srcmap_init(&m, buf, *len, 1, 1);
	if (!dc_utf8_valid(buf, *len, &bad)) {
		srcmap_pos(&m, bad, &line, &col);
		rc = dc_error_set_at(err, DC_EPARSE, path, line, col, "'%s' is not valid UTF-8",
		                     name);
		goto out;
	}
	nul = memchr(buf, '\0', *len);
	if (nul) {
		srcmap_pos(&m, (size_t)(nul - buf), &line, &col);
		rc = dc_error_set_at(err, DC_EPARSE, path, line, col, "'%s' contains a NUL byte",
		                     name);
		goto out;
	}
	if (strspn(buf, " \t\r\n\f\v") == *len) {
		rc = dc_error_set_at(err, DC_EPARSE, path, 0, 0, "'%s' is empty", name);
		goto out;
	}
	*out = buf;
	buf = NULL;
out:
	free(buf);
	return rc;
}

/* Fills `out` from sql[0, len) (a copy is kept) and splits it. */
static int sql_fill(struct loader *L,
                    dc_sql *out,
                    const char *sql,
                    size_t len,
                    struct srcmap *m,
                    const char *path)
{
	out->text = dc_strndup(sql, len);
	out->file = dc_strdup(path);
	if (!out->text || !out->file)
		return dc_error_set(L->err, DC_ENOMEM, "out of memory");
	srcmap_pos(m, 0, &out->line, &out->col);
	return split_sql(&L->sp, out->text, len, m, out->file, &out->stmts, &out->nstmts, L->err);
}

static int phases_alloc(dc_migration *m, size_t n, dc_error *err)
{
	m->phases = calloc(n, sizeof(*m->phases));
	if (!m->phases)
		return dc_error_set(err, DC_ENOMEM, "out of memory");
	m->nphases = n;
	return 0;
}

/* One SQL file (golang-migrate, Flyway): all of it is one block. */
static int load_sql_file(struct loader *L,
                         dc_sql *out,
                         const char *raw,
                         size_t len,
                         const char *path)
{
	struct srcmap m;

	srcmap_init(&m, raw, len, 1, 1);
	return sql_fill(L, out, raw, len, &m, path);
}

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');

	return s ? s + 1 : path;
}

/* --- dbmate ------------------------------------------------------------- */

enum {
	MARK_NONE,
	MARK_UP,
	MARK_DOWN
};

/* Recognises "-- migrate:up [options]" at raw[s, e) (one line). */
static int dbmate_marker(const char *raw, size_t s, size_t e, size_t *opts)
{
	size_t p = s;

	if (e - s < 2 || raw[s] != '-' || raw[s + 1] != '-')
		return MARK_NONE;
	p += 2;
	while (p < e && (raw[p] == ' ' || raw[p] == '\t'))
		p++;
	if (e - p >= 10 && memcmp(raw + p, "migrate:up", 10) == 0 &&
	    (p + 10 == e || is_blank((unsigned char)raw[p + 10]))) {
		*opts = p + 10;
		return MARK_UP;
	}
	if (e - p >= 12 && memcmp(raw + p, "migrate:down", 12) == 0 &&
	    (p + 12 == e || is_blank((unsigned char)raw[p + 12]))) {
		*opts = p + 12;
		return MARK_DOWN;
	}
	return MARK_NONE;
}

static int dbmate_options(const char *raw,
                          size_t p,
                          size_t e,
                          struct srcmap *m,
                          const char *path,
                          bool *transactional,
                          dc_error *err)
{
	static const char *const known[] = { "transaction:true", "transaction:false" };
	char word[64];
	int line, col;

	for (;;) {
		size_t w, n;

		while (p < e && is_blank((unsigned char)raw[p]))
			p++;
		if (p >= e)
			return 0;
		w = p;
		while (p < e && !is_blank((unsigned char)raw[p]))
			p++;
		n = p - w;
		if (n == 16 && memcmp(raw + w, "transaction:true", n) == 0) {
			*transactional = true;
			continue;
		}
		if (n == 17 && memcmp(raw + w, "transaction:false", n) == 0) {
			*transactional = false;
			continue;
		}
		copy_word(word, sizeof(word), raw + w, n);
		srcmap_pos(m, w, &line, &col);
		{
			const char *hint = dc_suggest(word, known, 2);

			return dc_error_set_at(err, DC_EPARSE, path, line, col,
			                       "unknown option '%s' on a dbmate marker%s%s%s", word,
			                       hint ? " (did you mean '" : "", hint ? hint : "",
			                       hint ? "'?)" : "");
		}
	}
}

static int load_dbmate(struct loader *L, dc_migration *mig, const char *raw, size_t len)
{
	const char *path = mig->path, *name = base_name(mig->path);
	size_t p = 0, up_s = 0, up_e = 0, down_s = 0, down_e = 0, opts = 0;
	bool have_up = false, have_down = false, up_tx = true, down_tx = true;
	struct srcmap m, mm;
	int rc, line, col;

	srcmap_init(&m, raw, len, 1, 1);
	while (p < len) {
		size_t e = p, next;
		int kind;

		while (e < len && raw[e] != '\n')
			e++;
		next = e < len ? e + 1 : len;
		kind = dbmate_marker(raw, p, e, &opts);
		if (kind != MARK_NONE) {
			srcmap_pos(&m, p, &line, &col);
			if ((kind == MARK_UP && have_up) || (kind == MARK_DOWN && have_down))
				return dc_error_set_at(L->err, DC_EPARSE, path, line, col,
				                       "'%s' has a second '-- migrate:%s' marker",
				                       name, kind == MARK_UP ? "up" : "down");
			if (kind == MARK_DOWN && !have_up)
				return dc_error_set_at(
				        L->err, DC_EPARSE, path, line, col,
				        "'%s' has '-- migrate:down' before '-- migrate:up'", name);
			if (!have_up) {
				size_t s = skip_space_comments(raw, 0, p, false);

				if (s < p) {
					srcmap_pos(&m, s, &line, &col);
					return dc_error_set_at(
					        L->err, DC_EPARSE, path, line, col,
					        "'%s' has sql before '-- migrate:up'", name);
				}
			}
			rc = dbmate_options(raw, opts, e, &m, path,
			                    kind == MARK_UP ? &up_tx : &down_tx, L->err);
			if (rc < 0)
				return rc;
			if (kind == MARK_UP) {
				have_up = true;
				up_s = up_e = next;
			} else {
				have_down = true;
				up_e = p;
				down_s = down_e = next;
			}
		}
		p = next;
		if (have_down)
			down_e = p;
		else if (have_up)
			up_e = p;
	}
	if (!have_up)
		return dc_error_set_at(L->err, DC_EPARSE, path, 0, 0,
		                       "'%s' has no '-- migrate:up' marker", name);
	rc = phases_alloc(mig, 1, L->err);
	if (rc < 0)
		return rc;
	mig->phases[0].name = dc_strdup("main");
	if (!mig->phases[0].name)
		return dc_error_set(L->err, DC_ENOMEM, "out of memory");
	/* dc_phase has one flag: the up marker decides (down runs as a repair). */
	mig->phases[0].transactional = up_tx;
	srcmap_init(&mm, raw, len, 1, 1);
	mm.base = up_s;
	rc = sql_fill(L, &mig->phases[0].up, raw + up_s, up_e - up_s, &mm, path);
	if (rc < 0)
		return rc;
	if (mig->phases[0].up.nstmts == 0) {
		srcmap_pos(&m, up_s, &line, &col);
		return dc_error_set_at(L->err, DC_EPARSE, path, line, col,
		                       "the '-- migrate:up' section of '%s' has no sql statement",
		                       name);
	}
	if (have_down && !only_space_comments(raw + down_s, down_e - down_s)) {
		srcmap_init(&mm, raw, len, 1, 1);
		mm.base = down_s;
		rc = sql_fill(L, &mig->phases[0].down, raw + down_s, down_e - down_s, &mm, path);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* --- native YAML ------------------------------------------------------- */

struct yctx {
	struct loader *L;
	const char *path;
	const char *name;
	const char *raw;
	size_t rawlen;
};

static void fy_quiet(struct fy_diag *diag, void *user, const char *buf, size_t len)
{
	(void)diag;
	(void)user;
	(void)buf;
	(void)len;
}

/* 1-based position of a node: its token, or its first descendant's. */
static void node_pos(struct fy_node *n, int *line, int *col)
{
	int depth;

	*line = *col = 0;
	for (depth = 0; n && depth < 64; depth++) {
		void *it = NULL;

		if (fy_node_is_scalar(n)) {
			struct fy_token *t = fy_node_get_scalar_token(n);
			const struct fy_mark *mk = t ? fy_token_start_mark(t) : NULL;

			if (mk) {
				*line = mk->line + 1;
				*col = mk->column + 1;
			}
			return;
		}
		if (fy_node_is_mapping(n)) {
			struct fy_node_pair *pr = fy_node_mapping_iterate(n, &it);

			n = pr ? fy_node_pair_key(pr) : NULL;
		} else {
			n = fy_node_sequence_iterate(n, &it);
		}
	}
}

static int yerr(struct yctx *y, struct fy_node *n, const char *fmt, ...) DC_PRINTF(3, 4);

static int yerr(struct yctx *y, struct fy_node *n, const char *fmt, ...)
{
	dc_error *err = y->L->err;
	int line, col;
	va_list ap;

	if (!err || err->code != 0)
		return DC_EPARSE;
	node_pos(n, &line, &col);
	va_start(ap, fmt);
	dc_error_vset(err, DC_EPARSE, fmt, ap);
	va_end(ap);
	snprintf(err->file, sizeof(err->file), "%s", y->path);
	err->line = line;
	err->col = col;
	return DC_EPARSE;
}

/* A scalar's text (not NUL-terminated), or NULL for non-scalars and aliases. */
static const char *yscalar(struct fy_node *n, size_t *len)
{
	if (!n || !fy_node_is_scalar(n) || fy_node_is_alias(n))
		return NULL;
	return fy_node_get_scalar(n, len);
}

/* A scalar as a heap string; NULL on a type error (reported) or OOM. */
static int ystring(struct yctx *y, struct fy_node *key, struct fy_node *val, char **out)
{
	const char *s, *k;
	size_t len = 0, klen = 0;

	k = yscalar(key, &klen);
	s = yscalar(val, &len);
	if (!s)
		return yerr(y, val ? val : key, "'%.*s' must be a string in '%s'", (int)klen, k,
		            y->name);
	if (memchr(s, '\0', len))
		return yerr(y, val, "'%.*s' contains a NUL character in '%s'", (int)klen, k,
		            y->name);
	free(*out);
	*out = dc_strndup(s, len);
	return *out ? 0 : dc_error_set(y->L->err, DC_ENOMEM, "out of memory");
}

/* Unknown key → error with a did-you-mean. */
static int yunknown(struct yctx *y,
                    struct fy_node *key,
                    const char *where,
                    const char *const *known,
                    size_t n)
{
	char word[128];
	const char *s, *hint;
	size_t len = 0;

	s = yscalar(key, &len);
	if (!s)
		return yerr(y, key, "a key %s in '%s' is not a string", where, y->name);
	copy_word(word, sizeof(word), s, len);
	hint = dc_suggest(word, known, n);
	if (hint)
		return yerr(y, key, "unknown key '%s' %s in '%s' (did you mean '%s'?)", word, where,
		            y->name, hint);
	return yerr(y, key, "unknown key '%s' %s in '%s'", word, where, y->name);
}

static bool ykey_is(struct fy_node *key, const char *name)
{
	size_t len = 0;
	const char *s = yscalar(key, &len);

	return s && len == strlen(name) && memcmp(s, name, len) == 0;
}

/*
 * Maps every byte of a scalar's content to its byte in the file. Block and
 * plain scalars hold the same non-blank characters in the same order as the
 * file (only indentation and line folding differ), so walking both finds
 * each one; escapes in quoted scalars are skipped over, at most ALIGN_SKIP
 * bytes at a time, so a position there is at worst a few columns off.
 */
static size_t *yalign(struct yctx *y, struct fy_node *n, const char *c, size_t clen)
{
	struct fy_token *t = fy_node_get_scalar_token(n);
	const struct fy_mark *sm = t ? fy_token_start_mark(t) : NULL;
	const struct fy_mark *em = t ? fy_token_end_mark(t) : NULL;
	enum fy_node_style style = fy_node_get_style(n);
	size_t rs = sm ? sm->input_pos : 0, re = em ? em->input_pos : y->rawlen, r, i;
	size_t *map = dc_malloc_array(clen + 1, sizeof(*map));

	if (!map)
		return NULL;
	if (rs > y->rawlen)
		rs = y->rawlen;
	if (re > y->rawlen || re < rs)
		re = y->rawlen;
	if ((style == FYNS_LITERAL || style == FYNS_FOLDED) && rs < re &&
	    (y->raw[rs] == '|' || y->raw[rs] == '>')) {
		/*
		 * Content starts on the line after the indicator. libfyaml 0.7
		 * already marks that line; skip the header in case a version
		 * marks the indicator itself.
		 */
		while (rs < re && y->raw[rs] != '\n')
			rs++;
		if (rs < re)
			rs++;
	} else if (style == FYNS_SINGLE_QUOTED || style == FYNS_DOUBLE_QUOTED) {
		if (rs < re)
			rs++;
	}
	r = rs;
	for (i = 0; i < clen; i++) {
		size_t j, skipped = 0;

		if (is_blank((unsigned char)c[i])) {
			while (r < re && is_blank((unsigned char)y->raw[r]) && y->raw[r] != '\n')
				r++;
			map[i] = r;
			continue;
		}
		for (j = r; j < re; j++) {
			if (y->raw[j] == c[i])
				break;
			if (!is_blank((unsigned char)y->raw[j]) && ++skipped > ALIGN_SKIP) {
				j = re;
				break;
			}
		}
		if (j < re) {
			map[i] = j;
			r = j + 1;
		} else {
			map[i] = r;
		}
	}
	map[clen] = r;
	return map;
}

static int ysql(struct yctx *y, struct fy_node *key, struct fy_node *val, dc_sql *out)
{
	const char *s, *k;
	size_t len = 0, klen = 0;
	size_t *map = NULL;
	struct srcmap m;
	int rc;

	k = yscalar(key, &klen);
	s = yscalar(val, &len);
	if (!s)
		return yerr(y, val ? val : key, "'%.*s' must be a string of sql in '%s'", (int)klen,
		            k, y->name);
	if (memchr(s, '\0', len))
		return yerr(y, val, "'%.*s' contains a NUL character in '%s'", (int)klen, k,
		            y->name);
	if (only_space_comments(s, len))
		return yerr(y, val, "'%.*s' is empty in '%s'", (int)klen, k, y->name);
	sql_release(out);
	map = yalign(y, val, s, len);
	if (!map)
		return dc_error_set(y->L->err, DC_ENOMEM, "out of memory");
	srcmap_init(&m, y->raw, y->rawlen, 1, 1);
	{
		struct fy_token *t = fy_node_get_scalar_token(val);
		const struct fy_mark *mk = t ? fy_token_start_mark(t) : NULL;

		if (mk && mk->input_pos <= map[0])
			srcmap_set_origin(&m, mk->input_pos, mk->line + 1, mk->column + 1);
	}
	m.map = map;
	m.maplen = len;
	rc = sql_fill(y->L, out, s, len, &m, y->path);
	free(map);
	return rc;
}

static int ybool(struct yctx *y, struct fy_node *key, struct fy_node *val, bool *out)
{
	size_t len = 0;
	const char *s = yscalar(val, &len);
	static const char *const t[] = { "true", "True", "TRUE" };
	static const char *const f[] = { "false", "False", "FALSE" };
	size_t i;

	for (i = 0; s && i < 3; i++) {
		if (len == strlen(t[i]) && memcmp(s, t[i], len) == 0) {
			*out = true;
			return 0;
		}
		if (len == strlen(f[i]) && memcmp(s, f[i], len) == 0) {
			*out = false;
			return 0;
		}
	}
	s = yscalar(key, &len);
	return yerr(y, val ? val : key, "'%.*s' must be true or false in '%s'", (int)len, s,
	            y->name);
}

static int ybatch(struct yctx *y, struct fy_node *key, struct fy_node *val, int64_t *rows)
{
	static const char *const keys[] = { "rows" };
	struct fy_node_pair *pr;
	void *it = NULL;
	int64_t v = 0;
	bool have = false;

	if (!val || !fy_node_is_mapping(val))
		return yerr(y, val ? val : key,
		            "'batch' must be a mapping like '{ rows: 1000 }' in '%s'", y->name);
	while ((pr = fy_node_mapping_iterate(val, &it)) != NULL) {
		struct fy_node *k = fy_node_pair_key(pr), *vn = fy_node_pair_value(pr);
		const char *s;
		size_t len = 0, i;

		if (!ykey_is(k, "rows"))
			return yunknown(y, k, "in 'batch'", keys, 1);
		s = yscalar(vn, &len);
		if (!s || len == 0 || len > 10)
			goto bad;
		for (i = 0, v = 0; i < len; i++) {
			if (!isdigit((unsigned char)s[i]))
				goto bad;
			v = v * 10 + (s[i] - '0');
		}
		if (v <= 0 || v > 1000000000)
			goto bad;
		have = true;
		continue;
bad:
		return yerr(y, vn ? vn : k,
		            "'rows' must be a whole number from 1 to 1000000000 in '%s'", y->name);
	}
	if (!have)
		return yerr(y, key, "'batch' has no 'rows' in '%s'", y->name);
	*rows = v;
	return 0;
}

static int yphase(struct yctx *y, struct fy_node *n, dc_phase *ph, size_t idx, size_t count)
{
	static const char *const keys[] = { "name", "up", "down", "batch", "transaction" };
	struct fy_node_pair *pr;
	void *it = NULL;
	int rc;

	ph->transactional = true;
	if (!fy_node_is_mapping(n))
		return yerr(y, n, "phase %zu must be a mapping in '%s'", idx + 1, y->name);
	while ((pr = fy_node_mapping_iterate(n, &it)) != NULL) {
		struct fy_node *k = fy_node_pair_key(pr), *v = fy_node_pair_value(pr);

		if (ykey_is(k, "name"))
			rc = ystring(y, k, v, &ph->name);
		else if (ykey_is(k, "up"))
			rc = ysql(y, k, v, &ph->up);
		else if (ykey_is(k, "down"))
			rc = ysql(y, k, v, &ph->down);
		else if (ykey_is(k, "batch"))
			rc = ybatch(y, k, v, &ph->batch_rows);
		else if (ykey_is(k, "transaction"))
			rc = ybool(y, k, v, &ph->transactional);
		else
			rc = yunknown(y, k, "in a phase", keys, 5);
		if (rc < 0)
			return rc;
	}
	if (!ph->name) {
		char buf[32];

		if (count == 1)
			snprintf(buf, sizeof(buf), "main");
		else
			snprintf(buf, sizeof(buf), "phase%zu", idx + 1);
		ph->name = dc_strdup(buf);
		if (!ph->name)
			return dc_error_set(y->L->err, DC_ENOMEM, "out of memory");
	}
	if (!ph->up.text)
		return yerr(y, n, "phase '%s' has no 'up' in '%s'", ph->name, y->name);
	if (ph->up.nstmts == 0)
		return yerr(y, n, "the 'up' of phase '%s' has no sql statement in '%s'", ph->name,
		            y->name);
	return 0;
}

static size_t yseq_count(struct fy_node *n)
{
	void *it = NULL;
	size_t c = 0;

	while (fy_node_sequence_iterate(n, &it))
		c++;
	return c;
}

static int yphases(struct yctx *y, struct fy_node *key, struct fy_node *val, dc_migration *m)
{
	struct fy_node *n;
	void *it = NULL;
	size_t count, i = 0, j;
	int rc;

	if (m->phases)
		return yerr(y, key, "'phases' given twice in '%s'", y->name);
	if (!val || !fy_node_is_sequence(val) || (count = yseq_count(val)) == 0)
		return yerr(y, val ? val : key, "'phases' must be a non-empty list in '%s'",
		            y->name);
	if (count > DC_MIGRATION_MAX_PHASES)
		return dc_error_set_at(y->L->err, DC_ELIMIT, y->path, 0, 0,
		                       "'%s' has more than %d phases", y->name,
		                       DC_MIGRATION_MAX_PHASES);
	rc = phases_alloc(m, count, y->L->err);
	if (rc < 0)
		return rc;
	while ((n = fy_node_sequence_iterate(val, &it)) != NULL && i < count) {
		rc = yphase(y, n, &m->phases[i], i, count);
		if (rc < 0)
			return rc;
		for (j = 0; j < i; j++) {
			if (strcmp(m->phases[j].name, m->phases[i].name) == 0)
				return yerr(y, n, "duplicate phase name '%s' in '%s'",
				            m->phases[i].name, y->name);
		}
		i++;
	}
	return 0;
}

static int yverify(struct yctx *y, struct fy_node *key, struct fy_node *val, dc_migration *m)
{
	struct fy_node *n;
	void *it = NULL;
	size_t count, i = 0;
	int rc;

	if (!val || !fy_node_is_sequence(val))
		return yerr(y, val ? val : key, "'verify' must be a list of sql in '%s'", y->name);
	count = yseq_count(val);
	if (count == 0)
		return 0;
	if (count > DC_MIGRATION_MAX_PHASES)
		return dc_error_set_at(y->L->err, DC_ELIMIT, y->path, 0, 0,
		                       "'%s' has more than %d verify entries", y->name,
		                       DC_MIGRATION_MAX_PHASES);
	m->verify = calloc(count, sizeof(*m->verify));
	if (!m->verify)
		return dc_error_set(y->L->err, DC_ENOMEM, "out of memory");
	m->nverify = count;
	while ((n = fy_node_sequence_iterate(val, &it)) != NULL && i < count) {
		rc = ysql(y, key, n, &m->verify[i]);
		if (rc < 0)
			return rc;
		if (m->verify[i].nstmts != 1)
			return yerr(y, n, "each 'verify' entry must be one statement in '%s'",
			            y->name);
		i++;
	}
	return 0;
}

static int load_native(struct loader *L, dc_migration *m, const char *raw, size_t len)
{
	static const char *const keys[] = { "version", "name", "audit", "phases", "verify" };
	struct fy_diag_cfg dcfg;
	struct fy_parse_cfg pcfg;
	struct fy_diag *diag = NULL;
	struct fy_document *fyd = NULL;
	struct fy_node *root, *vnode = NULL;
	struct fy_node_pair *pr;
	struct yctx y = { L, m->path, base_name(m->path), raw, len };
	void *it = NULL;
	bool seen_verify = false;
	int rc = 0;

	fy_diag_cfg_default(&dcfg);
	dcfg.fp = NULL;
	dcfg.output_fn = fy_quiet;
	dcfg.colorize = false;
	diag = fy_diag_create(&dcfg);
	if (!diag) {
		rc = dc_error_set(L->err, DC_ENOMEM, "out of memory");
		goto out;
	}
	fy_diag_set_collect_errors(diag, true);
	memset(&pcfg, 0, sizeof(pcfg));
	pcfg.flags = FYPCF_QUIET;
	pcfg.diag = diag;
	fyd = fy_document_build_from_string(&pcfg, raw, len);
	if (!fyd || fy_diag_got_error(diag)) {
		struct fy_diag_error *de;
		void *dit = NULL;

		de = fy_diag_errors_iterate(diag, &dit);
		if (de)
			rc = dc_error_set_at(
			        L->err, DC_EPARSE, m->path, de->line >= 0 ? de->line + 1 : 0,
			        de->column >= 0 ? de->column + 1 : 0, "invalid yaml in '%s': %s",
			        y.name, de->msg ? de->msg : "parse error");
		else
			rc = dc_error_set_at(L->err, DC_EPARSE, m->path, 0, 0,
			                     "invalid yaml in '%s'", y.name);
		goto out;
	}
	root = fy_document_root(fyd);
	if (!root || !fy_node_is_mapping(root)) {
		rc = yerr(&y, root, "'%s' must be a mapping with 'version' and 'phases'", y.name);
		goto out;
	}
	while ((pr = fy_node_mapping_iterate(root, &it)) != NULL) {
		struct fy_node *k = fy_node_pair_key(pr), *v = fy_node_pair_value(pr);

		if (ykey_is(k, "version")) {
			vnode = v ? v : k;
			rc = ystring(&y, k, v, &m->version);
		} else if (ykey_is(k, "name")) {
			rc = ystring(&y, k, v, &m->name);
		} else if (ykey_is(k, "audit")) {
			rc = ystring(&y, k, v, &m->audit);
		} else if (ykey_is(k, "phases")) {
			rc = yphases(&y, k, v, m);
		} else if (ykey_is(k, "verify")) {
			rc = seen_verify ? yerr(&y, k, "'verify' given twice in '%s'", y.name)
			                 : yverify(&y, k, v, m);
			seen_verify = true;
		} else {
			rc = yunknown(&y, k, "at the top level", keys, 5);
		}
		if (rc < 0)
			goto out;
	}
	if (!m->version) {
		rc = yerr(&y, root, "'%s' has no 'version'", y.name);
		goto out;
	}
	if (!version_valid(m->version)) {
		rc = yerr(&y, vnode,
		          "invalid version '%.*s' in '%s': use letters, digits, '.', '_' and '-'",
		          MAX_VERSION_LEN, m->version, y.name);
		goto out;
	}
	if (!m->phases) {
		rc = yerr(&y, root, "'%s' has no 'phases'", y.name);
		goto out;
	}
	if (!m->name) {
		const char *dot = strrchr(y.name, '.');

		m->name = dc_strndup(y.name, dot ? (size_t)(dot - y.name) : strlen(y.name));
		if (!m->name) {
			rc = dc_error_set(L->err, DC_ENOMEM, "out of memory");
			goto out;
		}
	}
out:
	fy_document_destroy(fyd);
	if (diag)
		fy_diag_destroy(diag);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* Folder scanning and layout detection.                                    */

enum {
	KIND_ONLY,
	KIND_UP,
	KIND_DOWN
};

struct entry {
	char *name;
	dc_layout layout;
	int kind;
	char *version; /* from the name; NULL for native */
	char *title;
};

static void entries_free(struct entry *e, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(e[i].name);
		free(e[i].version);
		free(e[i].title);
	}
	free(e);
}

static bool ends_with(const char *s, size_t len, const char *suffix)
{
	size_t n = strlen(suffix);

	return len >= n && memcmp(s + len - n, suffix, n) == 0;
}

/* 1 when recognised, 0 when not a migration name, DC_ENOMEM. */
static int classify(const char *name, struct entry *e)
{
	size_t len = strlen(name), v, t, end;

	if (ends_with(name, len, ".yaml") || ends_with(name, len, ".yml")) {
		e->layout = DC_LAYOUT_NATIVE;
		e->kind = KIND_ONLY;
		return 1;
	}
	if (!ends_with(name, len, ".sql"))
		return 0;
	end = len - 4;
	if ((name[0] == 'V' || name[0] == 'U') && isdigit((unsigned char)name[1])) {
		/* Flyway: V<digits, '.' or '_' separated>__<description>.sql */
		const char *sep = strstr(name + 1, "__");
		size_t i;

		if (!sep || (size_t)(sep - name) > end)
			return 0;
		v = (size_t)(sep - name);
		if (!isdigit((unsigned char)name[v - 1]))
			return 0;
		for (i = 1; i < v; i++) {
			char c = name[i];

			if (!isdigit((unsigned char)c) &&
			    ((c != '.' && c != '_') || !isdigit((unsigned char)name[i + 1])))
				return 0;
		}
		t = v + 2;
		if (t >= end || v - 1 > MAX_VERSION_LEN)
			return 0;
		e->layout = DC_LAYOUT_FLYWAY;
		e->kind = name[0] == 'V' ? KIND_UP : KIND_DOWN;
		e->version = dc_strndup(name + 1, v - 1);
		e->title = dc_strndup(name + t, end - t);
		if (!e->version || !e->title)
			return DC_ENOMEM;
		/* Flyway reads '_' in a version as '.': V2_1 is version 2.1 */
		for (i = 0; e->version[i]; i++) {
			if (e->version[i] == '_')
				e->version[i] = '.';
		}
		return 1;
	}
	if (!isdigit((unsigned char)name[0]))
		return 0;
	for (v = 0; isdigit((unsigned char)name[v]); v++)
		;
	if (name[v] != '_' || v > MAX_VERSION_LEN)
		return 0;
	t = v + 1;
	if (ends_with(name, len, ".up.sql")) {
		e->layout = DC_LAYOUT_GOLANG_MIGRATE;
		e->kind = KIND_UP;
		end = len - 7;
	} else if (ends_with(name, len, ".down.sql")) {
		e->layout = DC_LAYOUT_GOLANG_MIGRATE;
		e->kind = KIND_DOWN;
		end = len - 9;
	} else {
		e->layout = DC_LAYOUT_DBMATE;
		e->kind = KIND_ONLY;
	}
	if (t >= end)
		return 0;
	e->version = dc_strndup(name, v);
	e->title = dc_strndup(name + t, end - t);
	if (!e->version || !e->title)
		return DC_ENOMEM;
	return 1;
}

static bool ignored(const char *name)
{
	return name[0] == '.' || strcmp(name, DC_SUM_FILE_NAME) == 0 ||
	       strncmp(name, "README", 6) == 0;
}

static bool name_printable(const char *name)
{
	const unsigned char *p;
	size_t bad;

	for (p = (const unsigned char *)name; *p; p++) {
		if (*p < 0x20 || *p == 0x7f)
			return false;
	}
	return dc_utf8_valid(name, strlen(name), &bad) != 0;
}

static int cmp_names(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;

	return strcmp(x->name, y->name);
}

static int scan_dir(struct entry **out, size_t *nout, const char *dir, dc_error *err)
{
	struct entry *ents = NULL;
	size_t n = 0, alloc = 0;
	DIR *d = NULL;
	struct dirent *de;
	char *path = NULL;
	int rc = 0;

	d = opendir(dir);
	if (!d) {
		rc = dc_error_set_at(err, errno == ENOENT ? DC_ENOTFOUND : DC_EIO, dir, 0, 0,
		                     "cannot open migrations folder '%s': %s", dir,
		                     strerror(errno));
		goto out;
	}
	for (;;) {
		struct stat st;

		errno = 0;
		de = readdir(d);
		if (!de)
			break;
		if (ignored(de->d_name))
			continue;
		free(path);
		path = dc_path_join(dir, de->d_name);
		if (!path) {
			rc = dc_error_set(err, DC_ENOMEM, "out of memory");
			goto out;
		}
		if (stat(path, &st) != 0) {
			rc = dc_error_set_at(err, DC_EIO, path, 0, 0, "cannot stat '%s': %s",
			                     de->d_name, strerror(errno));
			goto out;
		}
		if (S_ISDIR(st.st_mode))
			continue;
		if (!S_ISREG(st.st_mode)) {
			rc = dc_error_set_at(err, DC_EINVAL, path, 0, 0,
			                     "'%s' in the migrations folder is not a regular file",
			                     de->d_name);
			goto out;
		}
		if (n >= MAX_FILES) {
			rc = dc_error_set_at(err, DC_ELIMIT, dir, 0, 0,
			                     "migrations folder '%s' has more than %zu files", dir,
			                     MAX_FILES);
			goto out;
		}
		if (n == alloc) {
			size_t na = alloc ? alloc * 2 : 64;
			struct entry *ne = dc_realloc_array(ents, na, sizeof(*ne));

			if (!ne) {
				rc = dc_error_set(err, DC_ENOMEM, "out of memory");
				goto out;
			}
			ents = ne;
			alloc = na;
		}
		memset(&ents[n], 0, sizeof(ents[n]));
		ents[n].name = dc_strdup(de->d_name);
		if (!ents[n].name) {
			rc = dc_error_set(err, DC_ENOMEM, "out of memory");
			goto out;
		}
		n++;
	}
	if (errno != 0) {
		rc = dc_error_set_at(err, DC_EIO, dir, 0, 0,
		                     "cannot read migrations folder '%s': %s", dir,
		                     strerror(errno));
		goto out;
	}
	if (n > 1)
		qsort(ents, n, sizeof(*ents), cmp_names);
	*out = ents;
	*nout = n;
	ents = NULL;
	n = 0;
out:
	entries_free(ents, n);
	free(path);
	if (d)
		closedir(d);
	return rc;
}

/* Refuses a folder whose files belong to more than one layout, naming them. */
static int check_one_layout(struct entry *ents,
                            size_t n,
                            const char *dir,
                            dc_layout *layout,
                            dc_error *err)
{
	size_t counts[4] = { 0, 0, 0, 0 }, i, listed = 0, others = 0;
	dc_layout major = DC_LAYOUT_NATIVE;
	dc_strbuf sb = DC_STRBUF_INIT;
	int rc = 0, kinds = 0, l;

	for (i = 0; i < n; i++)
		counts[ents[i].layout]++;
	for (l = 0; l < 4; l++) {
		if (counts[l])
			kinds++;
		if (counts[l] > counts[major])
			major = (dc_layout)l;
	}
	*layout = major;
	if (kinds <= 1)
		return 0;
	dc_strbuf_addf(&sb, "migrations folder '%s' mixes layouts:", dir);
	for (i = 0; i < n; i++) {
		if (ents[i].layout == major)
			continue;
		others++;
		if (listed < 8) {
			dc_strbuf_addf(&sb, "%s '%s' (%s)", listed ? "," : "", ents[i].name,
			               dc_layout_name(ents[i].layout));
			listed++;
		}
	}
	if (others > listed)
		dc_strbuf_addf(&sb, " and %zu more", others - listed);
	dc_strbuf_addf(&sb, " next to %zu %s file%s", counts[major], dc_layout_name(major),
	               counts[major] == 1 ? "" : "s");
	if (dc_strbuf_error(&sb))
		rc = dc_error_set(err, DC_ENOMEM, "out of memory");
	else
		rc = dc_error_set_at(err, DC_EINVAL, dir, 0, 0, "%s", sb.buf);
	dc_strbuf_release(&sb);
	return rc;
}

static int cmp_migrations(const void *a, const void *b)
{
	const dc_migration *x = a, *y = b;
	int c = dc_version_compare(x->version, y->version);

	return c ? c : strcmp(x->path, y->path);
}

static int sort_check_duplicates(dc_migration *ms, size_t n, dc_error *err)
{
	size_t i;

	if (n > 1)
		qsort(ms, n, sizeof(*ms), cmp_migrations);
	for (i = 1; i < n; i++) {
		if (dc_version_compare(ms[i - 1].version, ms[i].version) == 0)
			return dc_error_set_at(err, DC_EINVAL, ms[i].path, 0, 0,
			                       "duplicate version '%s': '%s' and '%s'",
			                       ms[i].version, base_name(ms[i - 1].path),
			                       base_name(ms[i].path));
	}
	return 0;
}

static dc_migration *find_version(dc_migration *ms, size_t n, const char *version)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = dc_version_compare(ms[mid].version, version);

		if (c == 0)
			return &ms[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static void checksum_add(crypto_hash_sha256_state *st,
                         const char *name,
                         const char *data,
                         size_t len)
{
	char head[32];

	/* the name counts, so a rename is an edit */
	crypto_hash_sha256_update(st, (const unsigned char *)name, strlen(name) + 1);
	snprintf(head, sizeof(head), "%zu\n", len);
	crypto_hash_sha256_update(st, (const unsigned char *)head, strlen(head));
	crypto_hash_sha256_update(st, (const unsigned char *)data, len);
}

static int load_migration(struct loader *L, dc_migration *m)
{
	crypto_hash_sha256_state st;
	unsigned char h[crypto_hash_sha256_BYTES];
	char *raw = NULL, *down = NULL;
	size_t len = 0, dlen = 0;
	int rc;

	rc = read_checked(&raw, &len, m->path, base_name(m->path), L->err);
	if (rc < 0)
		goto out;
	if (m->down_path) {
		rc = read_checked(&down, &dlen, m->down_path, base_name(m->down_path), L->err);
		if (rc < 0)
			goto out;
	}
	switch (m->layout) {
	case DC_LAYOUT_NATIVE:
		rc = load_native(L, m, raw, len);
		break;
	case DC_LAYOUT_DBMATE:
		rc = load_dbmate(L, m, raw, len);
		break;
	case DC_LAYOUT_GOLANG_MIGRATE:
	case DC_LAYOUT_FLYWAY:
		rc = phases_alloc(m, 1, L->err);
		if (rc < 0)
			break;
		m->phases[0].transactional = true;
		m->phases[0].name = dc_strdup("main");
		if (!m->phases[0].name) {
			rc = dc_error_set(L->err, DC_ENOMEM, "out of memory");
			break;
		}
		rc = load_sql_file(L, &m->phases[0].up, raw, len, m->path);
		if (rc < 0)
			break;
		if (m->phases[0].up.nstmts == 0) {
			rc = dc_error_set_at(L->err, DC_EPARSE, m->path, 0, 0,
			                     "'%s' has no sql statement", base_name(m->path));
			break;
		}
		if (down) {
			rc = load_sql_file(L, &m->phases[0].down, down, dlen, m->down_path);
			if (rc == 0 && m->phases[0].down.nstmts == 0)
				sql_release(&m->phases[0].down); /* only comments: no down */
		}
		break;
	}
	if (rc < 0)
		goto out;
	crypto_hash_sha256_init(&st);
	checksum_add(&st, base_name(m->path), raw, len);
	if (down)
		checksum_add(&st, base_name(m->down_path), down, dlen);
	crypto_hash_sha256_final(&st, h);
	dc_hex_encode(m->checksum, h, sizeof(h));
out:
	free(raw);
	free(down);
	return rc;
}

int dc_migration_set_load(dc_migration_set **out,
                          const char *dir,
                          dc_dialect dialect,
                          dc_error *err)
{
	dc_migration_set *set = NULL;
	struct entry *ents = NULL;
	struct loader L;
	size_t nents = 0, i, nmig = 0;
	dc_layout layout = DC_LAYOUT_NATIVE;
	int rc;

	*out = NULL;
	L.err = err;
	L.sp.db = NULL;
	if (!dir)
		return dc_error_set(err, DC_EINVAL, "no migrations folder given");
	if (dialect != DC_DIALECT_SQLITE && dialect != DC_DIALECT_POSTGRES)
		return dc_error_set(err, DC_EINVAL, "unknown sql dialect %d", (int)dialect);
	rc = splitter_open(&L.sp, dialect, err);
	if (rc < 0)
		goto out;
	rc = scan_dir(&ents, &nents, dir, err);
	if (rc < 0)
		goto out;
	for (i = 0; i < nents; i++) {
		char *path = NULL;

		if (!name_printable(ents[i].name)) {
			rc = dc_error_set_at(err, DC_EINVAL, dir, 0, 0,
			                     "a file name in '%s' has control characters or is not "
			                     "valid UTF-8",
			                     dir);
			goto out;
		}
		rc = classify(ents[i].name, &ents[i]);
		if (rc < 0) {
			rc = dc_error_set(err, DC_ENOMEM, "out of memory");
			goto out;
		}
		if (rc == 0) {
			path = dc_path_join(dir, ents[i].name);
			rc = dc_error_set_at(
			        err, DC_EINVAL, path ? path : dir, 0, 0,
			        "'%s' is not a migration file: expected <version>_<name>.up.sql "
			        "and .down.sql, <version>_<name>.sql (dbmate), "
			        "V<version>__<name>.sql (flyway) or a .yaml migration",
			        ents[i].name);
			free(path);
			goto out;
		}
		if (ents[i].kind != KIND_DOWN)
			nmig++;
	}
	rc = check_one_layout(ents, nents, dir, &layout, err);
	if (rc < 0)
		goto out;
	if (nmig > DC_MIGRATION_MAX_COUNT) {
		rc = dc_error_set_at(err, DC_ELIMIT, dir, 0, 0,
		                     "migrations folder '%s' has more than %d migrations", dir,
		                     DC_MIGRATION_MAX_COUNT);
		goto out;
	}
	set = calloc(1, sizeof(*set));
	if (!set || !(set->dir = dc_strdup(dir)) ||
	    !(set->migrations = calloc(nmig ? nmig : 1, sizeof(*set->migrations)))) {
		rc = dc_error_set(err, DC_ENOMEM, "out of memory");
		goto out;
	}
	set->layout = layout;
	set->dialect = dialect;
	for (i = 0; i < nents; i++) {
		dc_migration *m;

		if (ents[i].kind == KIND_DOWN)
			continue;
		m = &set->migrations[set->count++];
		m->layout = layout;
		m->path = dc_path_join(dir, ents[i].name);
		m->version = ents[i].version;
		m->name = ents[i].title;
		ents[i].version = ents[i].title = NULL;
		if (!m->path) {
			rc = dc_error_set(err, DC_ENOMEM, "out of memory");
			goto out;
		}
	}
	if (layout == DC_LAYOUT_GOLANG_MIGRATE || layout == DC_LAYOUT_FLYWAY) {
		rc = sort_check_duplicates(set->migrations, set->count, err);
		if (rc < 0)
			goto out;
		for (i = 0; i < nents; i++) {
			dc_migration *m;
			char *path;

			if (ents[i].kind != KIND_DOWN)
				continue;
			path = dc_path_join(dir, ents[i].name);
			if (!path) {
				rc = dc_error_set(err, DC_ENOMEM, "out of memory");
				goto out;
			}
			m = find_version(set->migrations, set->count, ents[i].version);
			if (!m) {
				rc = dc_error_set_at(err, DC_EINVAL, path, 0, 0,
				                     "'%s' is a down migration without an up "
				                     "migration (version '%s')",
				                     ents[i].name, ents[i].version);
				free(path);
				goto out;
			}
			if (m->down_path) {
				rc = dc_error_set_at(err, DC_EINVAL, path, 0, 0,
				                     "duplicate version '%s': '%s' and '%s'",
				                     ents[i].version, base_name(m->down_path),
				                     ents[i].name);
				free(path);
				goto out;
			}
			m->down_path = path;
		}
	}
	for (i = 0; i < set->count; i++) {
		rc = load_migration(&L, &set->migrations[i]);
		if (rc < 0)
			goto out;
	}
	rc = sort_check_duplicates(set->migrations, set->count, err);
	if (rc < 0)
		goto out;
	*out = set;
	set = NULL;
out:
	dc_migration_set_free(set);
	entries_free(ents, nents);
	splitter_close(&L.sp);
	return rc;
}
