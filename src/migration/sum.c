/*
 * sum.c — deployclaw.sum: a hash chain over a migrations folder.
 *
 *   total <sha256 of every line below, each with its '\n'>
 *   <file name> <version> <hex>      hex_i = sha256(hex_{i-1} || checksum_i)
 *
 * Each line's hash covers every migration before it, so an edited, added,
 * removed or reordered migration changes its own line and all later ones.
 * To name the culprits, each line is also checked on its own: its hash is
 * recomputed from the previous line's hash in the file and the migration's
 * current checksum.
 */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "migration_internal.h"
#include "util/array.h"

/* A sum file is about 200 bytes a migration. */
#define SUM_MAX_BYTES ((size_t)64 * 1024 * 1024)

struct sum_line {
	char *name;
	char *version;
	char hash[65];
	int lineno;
};

static void chain(char out[65], const char *prev, const char *checksum)
{
	crypto_hash_sha256_state st;
	unsigned char h[crypto_hash_sha256_BYTES];

	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, (const unsigned char *)prev, strlen(prev));
	crypto_hash_sha256_update(&st, (const unsigned char *)checksum, strlen(checksum));
	crypto_hash_sha256_final(&st, h);
	dc_hex_encode(out, h, sizeof(h));
}

char *dc_sum_path(const dc_migration_set *set)
{
	return set ? dc_path_join(set->dir, DC_SUM_FILE_NAME) : NULL;
}

/* The lines after "total", as dc_sum_render writes them. */
static int render_lines(const dc_migration_set *set, dc_strbuf *lines)
{
	char prev[65] = "", h[65];
	size_t i;

	for (i = 0; i < set->count; i++) {
		const dc_migration *m = &set->migrations[i];

		chain(h, prev, m->checksum);
		dc_strbuf_addf(lines, "%s %s %s\n", dc_path_basename(m->path), m->version, h);
		memcpy(prev, h, sizeof(prev));
	}
	return dc_strbuf_error(lines);
}

int dc_sum_render(const dc_migration_set *set, dc_strbuf *out)
{
	dc_strbuf lines = DC_STRBUF_INIT;
	char total[65];
	int rc;

	if (!set)
		return DC_EINVAL;
	rc = render_lines(set, &lines);
	if (rc < 0)
		goto out;
	dc_sha256_hex(total, lines.buf, lines.len);
	dc_strbuf_addf(out, "total %s\n", total);
	dc_strbuf_add(out, lines.buf, lines.len);
	rc = dc_strbuf_error(out);
out:
	dc_strbuf_release(&lines);
	return rc;
}

/* The sum file's path for `set` into `*path` (the caller frees it). */
static int sum_path_of(const dc_migration_set *set, char **path, dc_error *err)
{
	if (!set)
		return dc_error_set(err, DC_EINVAL, "no migration set");
	if (!(*path = dc_sum_path(set)))
		return dc_error_set(err, DC_ENOMEM, "out of memory");
	return 0;
}

int dc_sum_write(const dc_migration_set *set, dc_error *err)
{
	dc_strbuf sb = DC_STRBUF_INIT;
	char *path = NULL;
	int rc;

	if ((rc = sum_path_of(set, &path, err)) != 0)
		goto out;
	rc = dc_sum_render(set, &sb);
	if (rc < 0) {
		rc = dc_error_set(err, rc, "cannot render '%s'", DC_SUM_FILE_NAME);
		goto out;
	}
	rc = dc_file_write_atomic(path, sb.buf, sb.len, 0644, false, err);
out:
	dc_strbuf_release(&sb);
	free(path);
	return rc;
}

static bool is_hex64(const char *s, size_t len)
{
	size_t i;

	if (len != 64)
		return false;
	for (i = 0; i < 64; i++) {
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	}
	return true;
}

static void lines_free(struct sum_line *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(v[i].name);
		free(v[i].version);
	}
	free(v);
}

/* Parses the file into its total and lines; DC_EINTEGRITY names the bad line. */
static int parse_sum(const char *buf,
                     size_t len,
                     const char *path,
                     char total[65],
                     struct sum_line **out,
                     size_t *nout,
                     dc_error *err)
{
	struct sum_line *v = NULL;
	size_t n = 0, alloc = 0, p = 0;
	int lineno = 0, rc = 0;

	while (p < len) {
		size_t e = p, sp1, sp2;
		const char *line = buf + p;
		size_t ll;

		while (e < len && buf[e] != '\n')
			e++;
		ll = e - p;
		lineno++;
		p = e < len ? e + 1 : len;
		if (lineno == 1) {
			if (ll != 70 || memcmp(line, "total ", 6) != 0 || !is_hex64(line + 6, 64)) {
				rc = dc_error_set_at(
				        err, DC_EINTEGRITY, path, 1, 0,
				        "malformed '%s': line 1 is not 'total <sha256>'",
				        DC_SUM_FILE_NAME);
				goto out;
			}
			memcpy(total, line + 6, 64);
			total[64] = '\0';
			continue;
		}
		/* "<name> <version> <hex>": the name may hold spaces, so split from the right */
		for (sp2 = ll; sp2 > 0 && line[sp2 - 1] != ' '; sp2--)
			;
		for (sp1 = sp2 > 1 ? sp2 - 1 : 0; sp1 > 0 && line[sp1 - 1] != ' '; sp1--)
			;
		if (sp2 < 2 || sp1 < 2 || sp2 - 1 <= sp1 || !is_hex64(line + sp2, ll - sp2) ||
		    memchr(line, '\r', ll)) {
			rc = dc_error_set_at(err, DC_EINTEGRITY, path, lineno, 0,
			                     "malformed '%s' at line %d: expected "
			                     "'<file> <version> <sha256>'",
			                     DC_SUM_FILE_NAME, lineno);
			goto out;
		}
		if (n == alloc && dc_array_grow(&v, &alloc, sizeof(*v), 64) != 0) {
			rc = dc_error_set(err, DC_ENOMEM, "out of memory");
			goto out;
		}
		memset(&v[n], 0, sizeof(v[n]));
		v[n].name = dc_strndup(line, sp1 - 1);
		v[n].version = dc_strndup(line + sp1, sp2 - 1 - sp1);
		memcpy(v[n].hash, line + sp2, 64);
		v[n].hash[64] = '\0';
		v[n].lineno = lineno;
		n++;
		if (!v[n - 1].name || !v[n - 1].version) {
			rc = dc_error_set(err, DC_ENOMEM, "out of memory");
			goto out;
		}
	}
	if (lineno == 0) {
		rc = dc_error_set_at(err, DC_EINTEGRITY, path, 1, 0, "malformed '%s': it is empty",
		                     DC_SUM_FILE_NAME);
		goto out;
	}
	*out = v;
	*nout = n;
	v = NULL;
	n = 0;
out:
	lines_free(v, n);
	return rc;
}

/* Names sorted for lookups: qsort has no context argument, so each entry carries its name. */
struct named {
	const char *name;
	size_t i;
};

static int cmp_named(const void *a, const void *b)
{
	return strcmp(((const struct named *)a)->name, ((const struct named *)b)->name);
}

static struct named *index_lines(const struct sum_line *v, size_t n)
{
	struct named *idx = dc_malloc_array(n ? n : 1, sizeof(*idx));
	size_t i;

	if (!idx)
		return NULL;
	for (i = 0; i < n; i++) {
		idx[i].name = v[i].name;
		idx[i].i = i;
	}
	qsort(idx, n, sizeof(*idx), cmp_named);
	return idx;
}

static struct named *index_migrations(const dc_migration *m, size_t n)
{
	struct named *idx = dc_malloc_array(n ? n : 1, sizeof(*idx));
	size_t i;

	if (!idx)
		return NULL;
	for (i = 0; i < n; i++) {
		idx[i].name = dc_path_basename(m[i].path);
		idx[i].i = i;
	}
	qsort(idx, n, sizeof(*idx), cmp_named);
	return idx;
}

/* Position of `name` in the indexed array, or (size_t)-1. */
static size_t find_named(const struct named *idx, size_t n, const char *name)
{
	struct named key = { name, 0 };
	const struct named *hit = n ? bsearch(&key, idx, n, sizeof(*idx), cmp_named) : NULL;

	return hit ? hit->i : (size_t)-1;
}

/* Appends "kind 'name'" to the report, up to a length that fits dc_error. */
static void report(dc_strbuf *sb, size_t *shown, size_t *hidden, const char *kind, const char *name)
{
	if (sb->len + strlen(name) + 32 > 900) {
		(*hidden)++;
		return;
	}
	dc_strbuf_addf(sb, "%s%s '%s'", *shown ? ", " : "", kind, name);
	(*shown)++;
}

int dc_sum_check(const dc_migration_set *set, dc_error *err)
{
	dc_error rerr = { 0 };
	dc_strbuf lines = DC_STRBUF_INIT, msg = DC_STRBUF_INIT;
	struct sum_line *v = NULL;
	struct named *lidx = NULL, *midx = NULL;
	size_t nv = 0, i, *common_s = NULL, *common_m = NULL;
	size_t ncs = 0, ncm = 0, shown = 0, hidden = 0;
	char *path = NULL, *buf = NULL, total[65], h[65];
	size_t len = 0;
	int rc = 0;

	if ((rc = sum_path_of(set, &path, err)) != 0)
		goto out;
	rc = dc_file_read(&buf, &len, path, SUM_MAX_BYTES, &rerr);
	if (rc == DC_ENOTFOUND) {
		rc = dc_error_set_at(err, DC_ENOTFOUND, path, 0, 0,
		                     "no '%s' in '%s': run 'deployclaw hash' to create it",
		                     DC_SUM_FILE_NAME, set->dir);
		goto out;
	}
	if (rc < 0) {
		rc = dc_error_set_at(err, rc, path, 0, 0, "%s", rerr.message);
		goto out;
	}
	rc = parse_sum(buf, len, path, total, &v, &nv, err);
	if (rc < 0)
		goto out;
	/* the total must match the file's own lines, or the file was tampered with */
	for (i = 0; i < nv; i++)
		dc_strbuf_addf(&lines, "%s %s %s\n", v[i].name, v[i].version, v[i].hash);
	if (dc_strbuf_error(&lines)) {
		rc = dc_error_set(err, DC_ENOMEM, "out of memory");
		goto out;
	}
	dc_sha256_hex(h, lines.buf, lines.len);
	if (strcmp(h, total) != 0) {
		rc = dc_error_set_at(err, DC_EINTEGRITY, path, 1, 0,
		                     "malformed '%s': its total does not match its lines",
		                     DC_SUM_FILE_NAME);
		goto out;
	}
	lidx = index_lines(v, nv);
	midx = index_migrations(set->migrations, set->count);
	common_s = dc_malloc_array(nv ? nv : 1, sizeof(*common_s));
	common_m = dc_malloc_array(set->count ? set->count : 1, sizeof(*common_m));
	if (!lidx || !midx || !common_s || !common_m) {
		rc = dc_error_set(err, DC_ENOMEM, "out of memory");
		goto out;
	}
	for (i = 1; i < nv; i++) {
		if (strcmp(lidx[i - 1].name, lidx[i].name) == 0) {
			rc = dc_error_set_at(err, DC_EINTEGRITY, path, v[lidx[i].i].lineno, 0,
			                     "malformed '%s' at line %d: '%s' is listed twice",
			                     DC_SUM_FILE_NAME, v[lidx[i].i].lineno, lidx[i].name);
			goto out;
		}
	}
	dc_strbuf_adds(&msg, "deployclaw.sum does not match the migrations: ");
	/* edited: the line's hash, recomputed from its predecessor in the file */
	for (i = 0; i < nv; i++) {
		size_t k = find_named(midx, set->count, v[i].name);

		if (k == (size_t)-1)
			continue;
		common_s[ncs++] = k;
		chain(h, i ? v[i - 1].hash : "", set->migrations[k].checksum);
		if (strcmp(h, v[i].hash) != 0 || strcmp(v[i].version, set->migrations[k].version))
			report(&msg, &shown, &hidden, "edited", v[i].name);
	}
	for (i = 0; i < set->count; i++) {
		const char *name = dc_path_basename(set->migrations[i].path);

		if (find_named(lidx, nv, name) == (size_t)-1)
			report(&msg, &shown, &hidden, "added", name);
		else
			common_m[ncm++] = i;
	}
	for (i = 0; i < nv; i++) {
		if (find_named(midx, set->count, v[i].name) == (size_t)-1)
			report(&msg, &shown, &hidden, "removed", v[i].name);
	}
	/* reordered: migrations in both whose relative order differs */
	for (i = 0; i < ncs && i < ncm; i++) {
		if (common_s[i] != common_m[i])
			report(&msg, &shown, &hidden, "reordered",
			       dc_path_basename(set->migrations[common_m[i]].path));
	}
	if (hidden)
		dc_strbuf_addf(&msg, " and %zu more", hidden);
	if (dc_strbuf_error(&msg)) {
		rc = dc_error_set(err, DC_ENOMEM, "out of memory");
		goto out;
	}
	if (shown || hidden) {
		rc = dc_error_set_at(err, DC_EINTEGRITY, path, 0, 0, "%s", msg.buf);
		goto out;
	}
	rc = 0;
out:
	dc_strbuf_release(&lines);
	dc_strbuf_release(&msg);
	lines_free(v, nv);
	free(lidx);
	free(midx);
	free(common_s);
	free(common_m);
	free(buf);
	free(path);
	return rc;
}
