/*
 * scope.c — a migration's scope: `tenant` (the default) or `shard`.
 *
 * The native layout reads it as the top-level `scope:` key (layouts/native.c);
 * the SQL-file layouts read it from a directive in the comment lines that
 * head the up (or only) file:
 *
 *     -- deployclaw:scope shard
 *
 * A shard-scoped migration runs once in the shard's database, before its
 * tenants (src/rollout/shard.c), so it must be PostgreSQL (a SQLite tenant is
 * a database of its own: there is no shard database to run it in) and
 * transactional (it is rolled back whole when it fails).
 */
#include <string.h>

#include "migration_internal.h"

#define DIRECTIVE     "deployclaw:scope"
#define DIRECTIVE_LEN (sizeof(DIRECTIVE) - 1)

const char *dc_scope_name(dc_scope scope)
{
	return scope == DC_SCOPE_SHARD ? "shard" : "tenant";
}

int dc_migration__scope_parse(struct loader *L,
                              dc_migration *m,
                              const char *word,
                              size_t len,
                              const char *path,
                              int line,
                              int col)
{
	static const char *const known[] = { "tenant", "shard" };
	char buf[64];
	const char *hint;

	if (len == 6 && memcmp(word, "tenant", 6) == 0) {
		m->scope = DC_SCOPE_TENANT;
		return 0;
	}
	if (len == 5 && memcmp(word, "shard", 5) == 0) {
		m->scope = DC_SCOPE_SHARD;
		/* said here, before the SQL: SQLite's parser may not know a
		 * PostgreSQL shard migration's statements */
		if (L->sp.dialect != DC_DIALECT_POSTGRES)
			return dc_error_set_at(L->err, DC_EPARSE, path, line, col,
			                       "'%s' has scope 'shard', which needs PostgreSQL: "
			                       "each SQLite tenant is a database of its own, "
			                       "there is no shard database to run it in",
			                       dc_path_basename(path));
		return 0;
	}
	dc_migration__copy_word(buf, sizeof(buf), word, len);
	hint = dc_suggest(buf, known, 2);
	return dc_error_set_at(L->err, DC_EPARSE, path, line, col,
	                       "scope '%s' in '%s' must be 'tenant' or 'shard'%s%s%s", buf,
	                       dc_path_basename(path), hint ? " (did you mean '" : "",
	                       hint ? hint : "", hint ? "'?)" : "");
}

int dc_migration__scope_check(struct loader *L, const dc_migration *m, int line, int col)
{
	const char *name = dc_path_basename(m->path);
	size_t i;

	if (m->scope != DC_SCOPE_SHARD)
		return 0;
	for (i = 0; i < m->nphases; i++) {
		if (!m->phases[i].transactional)
			return dc_error_set_at(
			        L->err, DC_EPARSE, m->path, line, col,
			        "'%s' has scope 'shard' and a phase '%s' that is not "
			        "transactional: a shard migration runs in one "
			        "transaction, rolled back whole when it fails",
			        name, m->phases[i].name);
		if (m->phases[i].batch_rows > 0)
			return dc_error_set_at(L->err, DC_EPARSE, m->path, line, col,
			                       "'%s' has scope 'shard' and a batched phase '%s': a "
			                       "shard migration runs in one transaction",
			                       name, m->phases[i].name);
	}
	return 0;
}

/* The directive in the comment lines heading raw[0, len): blank lines and
 * "--" comments are read until the first other line. */
int dc_migration__scope_directive(struct loader *L,
                                  dc_migration *m,
                                  const char *raw,
                                  size_t len,
                                  int *at_line,
                                  int *at_col)
{
	size_t p = 0;
	int line = 1;

	while (p < len) {
		size_t e = p, q = p, w;

		while (e < len && raw[e] != '\n')
			e++;
		while (q < e && dc_migration__is_blank((unsigned char)raw[q]))
			q++;
		if (q < e) {
			if (e - q < 2 || raw[q] != '-' || raw[q + 1] != '-')
				return 0; /* the first statement: the head is over */
			q += 2;
			while (q < e && (raw[q] == ' ' || raw[q] == '\t'))
				q++;
			if ((size_t)(e - q) >= DIRECTIVE_LEN &&
			    memcmp(raw + q, DIRECTIVE, DIRECTIVE_LEN) == 0 &&
			    (q + DIRECTIVE_LEN == e ||
			     dc_migration__is_blank((unsigned char)raw[q + DIRECTIVE_LEN]))) {
				q += DIRECTIVE_LEN;
				while (q < e && dc_migration__is_blank((unsigned char)raw[q]))
					q++;
				for (w = q;
				     w < e && !dc_migration__is_blank((unsigned char)raw[w]);)
					w++;
				*at_line = line;
				*at_col = (int)(q - p) + 1;
				return dc_migration__scope_parse(L, m, raw + q, w - q, m->path,
				                                 line, *at_col);
			}
		}
		p = e < len ? e + 1 : len;
		line++;
	}
	return 0;
}
