/*
 * migration.c — a migrations folder → an ordered dc_migration_set.
 *
 * The folder's layout is recognised from file names by the table of
 * layouts (layouts/); this file holds what all layouts share: scanning the
 * folder, refusing mixed layouts, reading and checksumming files, pairing
 * down files, versions and their natural order.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sodium.h>

#include "migration_internal.h"
#include "util/array.h"

/* Files a folder may hold: every migration has at most an up and a down file. */
#define MAX_FILES ((size_t)DC_MIGRATION_MAX_COUNT * 2)

/*
 * The layouts, in the order they are asked to claim a file name (see
 * dc_migration__layout.detect) and listed in messages. A layout's id is
 * its dc_layout value; the ids are 0..NLAYOUTS-1.
 */
static const struct dc_migration__layout *const layouts[] = {
	&dc_migration__layout_golang_migrate,
	&dc_migration__layout_dbmate,
	&dc_migration__layout_flyway,
	&dc_migration__layout_native,
};

#define NLAYOUTS (sizeof(layouts) / sizeof(layouts[0]))

static const struct dc_migration__layout *layout_of(dc_layout id)
{
	size_t i;

	for (i = 0; i < NLAYOUTS; i++) {
		if (layouts[i]->id == id)
			return layouts[i];
	}
	return NULL;
}

const char *dc_layout_name(dc_layout layout)
{
	const struct dc_migration__layout *l = layout_of(layout);

	return l ? l->name : "unknown";
}

/* The first bytes of s[0, len) as a C string; a long word is cut (in messages only). */
void dc_migration__copy_word(char *dst, size_t size, const char *src, size_t len)
{
	if (len >= size)
		len = size - 1;
	memcpy(dst, src, len);
	dst[len] = '\0';
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

bool dc_migration__version_valid(const char *v)
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

void dc_migration__sql_release(dc_sql *s)
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
		dc_migration__sql_release(&m->phases[i].up);
		dc_migration__sql_release(&m->phases[i].down);
	}
	free(m->phases);
	for (i = 0; i < m->nverify; i++)
		dc_migration__sql_release(&m->verify[i]);
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
	dc_migration__srcmap_init(&m, buf, *len, 1, 1);
	if (!dc_utf8_valid(buf, *len, &bad)) {
		dc_migration__srcmap_pos(&m, bad, &line, &col);
		rc = dc_error_set_at(err, DC_EPARSE, path, line, col, "'%s' is not valid UTF-8",
		                     name);
		goto out;
	}
	nul = memchr(buf, '\0', *len);
	if (nul) {
		dc_migration__srcmap_pos(&m, (size_t)(nul - buf), &line, &col);
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
int dc_migration__sql_fill(struct loader *L,
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
	dc_migration__srcmap_pos(m, 0, &out->line, &out->col);
	return dc_migration__split_sql(&L->sp, out->text, len, m, out->file, &out->stmts,
	                               &out->nstmts, L->err);
}

int dc_migration__phases_alloc(dc_migration *m, size_t n, dc_error *err)
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

	dc_migration__srcmap_init(&m, raw, len, 1, 1);
	return dc_migration__sql_fill(L, out, raw, len, &m, path);
}

int dc_migration__load_up_down(struct loader *L,
                               dc_migration *m,
                               const char *raw,
                               size_t len,
                               const char *down,
                               size_t dlen)
{
	int rc;

	rc = dc_migration__phases_alloc(m, 1, L->err);
	if (rc < 0)
		return rc;
	m->phases[0].transactional = true;
	m->phases[0].name = dc_strdup("main");
	if (!m->phases[0].name)
		return dc_error_set(L->err, DC_ENOMEM, "out of memory");
	rc = load_sql_file(L, &m->phases[0].up, raw, len, m->path);
	if (rc < 0)
		return rc;
	if (m->phases[0].up.nstmts == 0)
		return dc_error_set_at(L->err, DC_EPARSE, m->path, 0, 0,
		                       "'%s' has no sql statement", dc_path_basename(m->path));
	if (down) {
		rc = load_sql_file(L, &m->phases[0].down, down, dlen, m->down_path);
		if (rc == 0 && m->phases[0].down.nstmts == 0)
			dc_migration__sql_release(&m->phases[0].down); /* only comments: no down */
	}
	return rc;
}

/* ------------------------------------------------------------------------ */
/* Folder scanning and layout detection.                                    */

static void entries_free(struct dc_migration__entry *e, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(e[i].name);
		free(e[i].version);
		free(e[i].title);
	}
	free(e);
}

bool dc_migration__ends_with(const char *s, size_t len, const char *suffix)
{
	size_t n = strlen(suffix);

	return len >= n && memcmp(s + len - n, suffix, n) == 0;
}

int dc_migration__entry_named(struct dc_migration__entry *e,
                              const char *version,
                              size_t vlen,
                              const char *title,
                              size_t tlen)
{
	e->version = dc_strndup(version, vlen);
	e->title = dc_strndup(title, tlen);
	if (!e->version || !e->title)
		return DC_ENOMEM;
	return 1;
}

/* 1 when a layout claims the name (fills e), 0 when none does, DC_ENOMEM. */
static int classify(const char *name, struct dc_migration__entry *e)
{
	size_t i;
	int rc;

	for (i = 0; i < NLAYOUTS; i++) {
		rc = layouts[i]->detect(name, e);
		if (rc != 0) {
			e->layout = layouts[i]->id;
			return rc;
		}
	}
	return 0;
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
	const struct dc_migration__entry *x = a, *y = b;

	return strcmp(x->name, y->name);
}

static int scan_dir(struct dc_migration__entry **out, size_t *nout, const char *dir, dc_error *err)
{
	struct dc_migration__entry *ents = NULL;
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
		if (n == alloc && dc_array_grow(&ents, &alloc, sizeof(*ents), 64) != 0) {
			rc = dc_error_set(err, DC_ENOMEM, "out of memory");
			goto out;
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
static int check_one_layout(struct dc_migration__entry *ents,
                            size_t n,
                            const char *dir,
                            dc_layout *layout,
                            dc_error *err)
{
	size_t counts[NLAYOUTS] = { 0 }, i, listed = 0, others = 0;
	dc_layout major = DC_LAYOUT_NATIVE;
	dc_strbuf sb = DC_STRBUF_INIT;
	int rc = 0, kinds = 0, l;

	/* counted by id, so a tie goes to the lowest dc_layout value */
	for (i = 0; i < n; i++)
		counts[ents[i].layout]++;
	for (l = 0; l < (int)NLAYOUTS; l++) {
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
			                       ms[i].version, dc_path_basename(ms[i - 1].path),
			                       dc_path_basename(ms[i].path));
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

static int load_migration(struct loader *L, const struct dc_migration__layout *def, dc_migration *m)
{
	crypto_hash_sha256_state st;
	unsigned char h[crypto_hash_sha256_BYTES];
	char *raw = NULL, *down = NULL;
	size_t len = 0, dlen = 0;
	int rc, sline = 0, scol = 0;

	rc = read_checked(&raw, &len, m->path, dc_path_basename(m->path), L->err);
	if (rc < 0)
		goto out;
	if (m->down_path) {
		rc = read_checked(&down, &dlen, m->down_path, dc_path_basename(m->down_path),
		                  L->err);
		if (rc < 0)
			goto out;
	}
	if (def->id != DC_LAYOUT_NATIVE &&
	    (rc = dc_migration__scope_directive(L, m, raw, len, &sline, &scol)) < 0)
		goto out;
	rc = def->load(L, m, raw, len, down, dlen);
	if (rc == 0 && def->id != DC_LAYOUT_NATIVE)
		rc = dc_migration__scope_check(L, m, sline, scol);
	if (rc < 0)
		goto out;
	crypto_hash_sha256_init(&st);
	checksum_add(&st, dc_path_basename(m->path), raw, len);
	if (down)
		checksum_add(&st, dc_path_basename(m->down_path), down, dlen);
	crypto_hash_sha256_final(&st, h);
	dc_hex_encode(m->checksum, h, sizeof(h));
out:
	free(raw);
	free(down);
	return rc;
}

/* The message for a file no layout claims: the names every layout expects. */
static int not_a_migration(const char *dir, const char *name, dc_error *err)
{
	dc_strbuf sb = DC_STRBUF_INIT;
	char *path = dc_path_join(dir, name);
	size_t i;
	int rc;

	dc_strbuf_addf(&sb, "'%s' is not a migration file: expected ", name);
	for (i = 0; i < NLAYOUTS; i++)
		dc_strbuf_addf(&sb, "%s%s",
		               i == 0             ? ""
		               : i + 1 < NLAYOUTS ? ", "
		                                  : " or ",
		               layouts[i]->expected);
	if (dc_strbuf_error(&sb))
		rc = dc_error_set(err, DC_ENOMEM, "out of memory");
	else
		rc = dc_error_set_at(err, DC_EINVAL, path ? path : dir, 0, 0, "%s", sb.buf);
	dc_strbuf_release(&sb);
	free(path);
	return rc;
}

/* Gives every entry its layout; counts the migrations (down files aside). */
static int classify_entries(struct dc_migration__entry *ents,
                            size_t nents,
                            const char *dir,
                            size_t *nmig,
                            dc_error *err)
{
	size_t i;
	int rc;

	*nmig = 0;
	for (i = 0; i < nents; i++) {
		if (!name_printable(ents[i].name))
			return dc_error_set_at(
			        err, DC_EINVAL, dir, 0, 0,
			        "a file name in '%s' has control characters or is not "
			        "valid UTF-8",
			        dir);
		rc = classify(ents[i].name, &ents[i]);
		if (rc < 0)
			return dc_error_set(err, DC_ENOMEM, "out of memory");
		if (rc == 0)
			return not_a_migration(dir, ents[i].name, err);
		if (ents[i].kind != KIND_DOWN)
			(*nmig)++;
	}
	return 0;
}

/* One migration per up (or only) file, its version and title from the name. */
static int fill_set(dc_migration_set *set, struct dc_migration__entry *ents, size_t nents)
{
	size_t i;

	for (i = 0; i < nents; i++) {
		dc_migration *m;

		if (ents[i].kind == KIND_DOWN)
			continue;
		m = &set->migrations[set->count++];
		m->layout = set->layout;
		m->path = dc_path_join(set->dir, ents[i].name);
		m->version = ents[i].version;
		m->name = ents[i].title;
		ents[i].version = ents[i].title = NULL;
		if (!m->path)
			return DC_ENOMEM;
	}
	return 0;
}

/* Gives each migration its down file (layouts with down_files), by version. */
static int pair_downs(dc_migration_set *set,
                      const struct dc_migration__entry *ents,
                      size_t nents,
                      dc_error *err)
{
	size_t i;
	int rc;

	rc = sort_check_duplicates(set->migrations, set->count, err);
	if (rc < 0)
		return rc;
	for (i = 0; i < nents; i++) {
		dc_migration *m;
		char *path;

		if (ents[i].kind != KIND_DOWN)
			continue;
		path = dc_path_join(set->dir, ents[i].name);
		if (!path)
			return dc_error_set(err, DC_ENOMEM, "out of memory");
		m = find_version(set->migrations, set->count, ents[i].version);
		if (!m) {
			rc = dc_error_set_at(err, DC_EINVAL, path, 0, 0,
			                     "'%s' is a down migration without an up "
			                     "migration (version '%s')",
			                     ents[i].name, ents[i].version);
			free(path);
			return rc;
		}
		if (m->down_path) {
			rc = dc_error_set_at(
			        err, DC_EINVAL, path, 0, 0, "duplicate version '%s': '%s' and '%s'",
			        ents[i].version, dc_path_basename(m->down_path), ents[i].name);
			free(path);
			return rc;
		}
		m->down_path = path;
	}
	return 0;
}

int dc_migration_set_load(dc_migration_set **out,
                          const char *dir,
                          dc_dialect dialect,
                          dc_error *err)
{
	dc_migration_set *set = NULL;
	struct dc_migration__entry *ents = NULL;
	const struct dc_migration__layout *def;
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
	rc = dc_migration__splitter_open(&L.sp, dialect, err);
	if (rc < 0)
		goto out;
	rc = scan_dir(&ents, &nents, dir, err);
	if (rc < 0)
		goto out;
	rc = classify_entries(ents, nents, dir, &nmig, err);
	if (rc < 0)
		goto out;
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
	rc = fill_set(set, ents, nents);
	if (rc < 0) {
		rc = dc_error_set(err, rc, "out of memory");
		goto out;
	}
	def = layout_of(layout);
	if (!def) {
		rc = dc_error_set(err, DC_EINVAL, "unknown migration layout %d", (int)layout);
		goto out;
	}
	if (def->down_files) {
		rc = pair_downs(set, ents, nents, err);
		if (rc < 0)
			goto out;
	}
	for (i = 0; i < set->count; i++) {
		rc = load_migration(&L, def, &set->migrations[i]);
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
	dc_migration__splitter_close(&L.sp);
	return rc;
}
