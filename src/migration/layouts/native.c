/*
 * layouts/native.c — deployclaw's own layout: one YAML file per migration
 * with its version, phases (each an up, a down, batching, transaction) and
 * verify assertions (docs/migrations.md).
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../util/yaml_internal.h"
#include "../migration_internal.h"

/* How far the scalar/raw alignment may skip non-blank raw bytes (escapes). */
#define ALIGN_SKIP 8

struct yctx {
	struct loader *L;
	const char *path;
	const char *name;
	const char *raw;
	size_t rawlen;
};

typedef const dc_yaml_node node;

static int yerr(struct yctx *y, node *n, const char *fmt, ...) DC_PRINTF(3, 4);

static int yerr(struct yctx *y, node *n, const char *fmt, ...)
{
	dc_error *err = y->L->err;
	va_list ap;

	if (!err || err->code != 0)
		return DC_EPARSE;
	va_start(ap, fmt);
	dc_error_vset(err, DC_EPARSE, fmt, ap);
	va_end(ap);
	snprintf(err->file, sizeof(err->file), "%s", y->path);
	err->line = n ? n->line : 0;
	err->col = n ? n->col : 0;
	return DC_EPARSE;
}

/* A scalar's text (NUL-terminated, but `*len` counts a NUL inside), or NULL. */
static const char *yscalar(node *n, size_t *len)
{
	if (!n || n->kind != DC_YAML_SCALAR)
		return NULL;
	*len = n->len;
	return n->text;
}

/* Keys first: each a string, given once, known (with a did-you-mean). */
static int ykeys(struct yctx *y, node *m, const char *where, const char *const *known, size_t n)
{
	node *key = NULL, *first = NULL;
	char word[128];
	const char *hint;

	switch (dc_yaml__check_keys(m, known, n, &key, &first)) {
	case DC_YAML_KEYS_OK:
		return 0;
	case DC_YAML_KEY_NOT_STRING:
		return yerr(y, key, "a key %s in '%s' is not a string", where, y->name);
	case DC_YAML_KEY_DUPLICATE:
		dc_migration__copy_word(word, sizeof(word), key->text, key->len);
		return yerr(y, key, "'%s' given twice %s in '%s' (first at line %d, column %d)",
		            word, where, y->name, first->line, first->col);
	case DC_YAML_KEY_UNKNOWN:
	default:
		break;
	}
	dc_migration__copy_word(word, sizeof(word), key->text, key->len);
	hint = dc_yaml__suggest_key(key, known, n);
	if (hint)
		return yerr(y, key, "unknown key '%s' %s in '%s' (did you mean '%s'?)", word, where,
		            y->name, hint);
	return yerr(y, key, "unknown key '%s' %s in '%s'", word, where, y->name);
}

/* A scalar as a heap string; NULL on a type error (reported) or OOM. */
static int ystring(struct yctx *y, node *key, node *val, char **out)
{
	const char *s, *k;
	size_t len = 0, klen = 0;

	k = yscalar(key, &klen);
	s = yscalar(val, &len);
	if (!s)
		return yerr(y, val, "'%.*s' must be a string in '%s'", (int)klen, k, y->name);
	if (memchr(s, '\0', len))
		return yerr(y, val, "'%.*s' contains a NUL character in '%s'", (int)klen, k,
		            y->name);
	free(*out);
	*out = dc_strndup(s, len);
	return *out ? 0 : dc_error_set(y->L->err, DC_ENOMEM, "out of memory");
}

/*
 * Maps every byte of a scalar's content to its byte in the file. Block and
 * plain scalars hold the same non-blank characters in the same order as the
 * file (only indentation and line folding differ), so walking both finds
 * each one; escapes in quoted scalars are skipped over, at most ALIGN_SKIP
 * bytes at a time, so a position there is at worst a few columns off.
 */
static size_t *yalign(struct yctx *y, node *n, const char *c, size_t clen)
{
	size_t rs = n->has_span ? n->pos : 0, re = n->has_span ? n->end : y->rawlen, r, i;
	size_t *map = dc_malloc_array(clen + 1, sizeof(*map));

	if (!map)
		return NULL;
	if (rs > y->rawlen)
		rs = y->rawlen;
	if (re > y->rawlen || re < rs)
		re = y->rawlen;
	if ((n->style == DC_YAML_LITERAL || n->style == DC_YAML_FOLDED) && rs < re &&
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
	} else if (n->style == DC_YAML_SINGLE_QUOTED || n->style == DC_YAML_DOUBLE_QUOTED) {
		/* the span starts at the opening quote */
		if (rs < re)
			rs++;
	}
	r = rs;
	for (i = 0; i < clen; i++) {
		size_t j, skipped = 0;

		if (dc_migration__is_blank((unsigned char)c[i])) {
			while (r < re && dc_migration__is_blank((unsigned char)y->raw[r]) &&
			       y->raw[r] != '\n')
				r++;
			map[i] = r;
			continue;
		}
		for (j = r; j < re; j++) {
			if (y->raw[j] == c[i])
				break;
			if (!dc_migration__is_blank((unsigned char)y->raw[j]) &&
			    ++skipped > ALIGN_SKIP) {
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

static int ysql(struct yctx *y, node *key, node *val, dc_sql *out)
{
	const char *s, *k;
	size_t len = 0, klen = 0;
	size_t *map = NULL;
	struct srcmap m;
	int rc;

	k = yscalar(key, &klen);
	s = yscalar(val, &len);
	if (!s)
		return yerr(y, val, "'%.*s' must be a string of sql in '%s'", (int)klen, k,
		            y->name);
	if (memchr(s, '\0', len))
		return yerr(y, val, "'%.*s' contains a NUL character in '%s'", (int)klen, k,
		            y->name);
	if (dc_migration__only_space_comments(s, len))
		return yerr(y, val, "'%.*s' is empty in '%s'", (int)klen, k, y->name);
	dc_migration__sql_release(out);
	map = yalign(y, val, s, len);
	if (!map)
		return dc_error_set(y->L->err, DC_ENOMEM, "out of memory");
	dc_migration__srcmap_init(&m, y->raw, y->rawlen, 1, 1);
	if (val->has_span && val->pos <= map[0])
		dc_migration__srcmap_set_origin(&m, val->pos, val->line, val->col);
	m.map = map;
	m.maplen = len;
	rc = dc_migration__sql_fill(y->L, out, s, len, &m, y->path);
	free(map);
	return rc;
}

static int ybool(struct yctx *y, node *key, node *val, bool *out)
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
	return yerr(y, val, "'%.*s' must be true or false in '%s'", (int)len, s, y->name);
}

static int ybatch(struct yctx *y, node *key, node *val, int64_t *rows)
{
	static const char *const keys[] = { "rows" };
	int64_t v = 0;
	bool have = false;
	size_t p;
	int rc;

	if (val->kind != DC_YAML_MAP)
		return yerr(y, val, "'batch' must be a mapping like '{ rows: 1000 }' in '%s'",
		            y->name);
	if ((rc = ykeys(y, val, "in 'batch'", keys, 1)) < 0)
		return rc;
	for (p = 0; p + 1 < val->nkids; p += 2) {
		node *vn = val->kids[p + 1];
		const char *s;
		size_t len = 0, i;

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
		return yerr(y, vn, "'rows' must be a whole number from 1 to 1000000000 in '%s'",
		            y->name);
	}
	if (!have)
		return yerr(y, key, "'batch' has no 'rows' in '%s'", y->name);
	*rows = v;
	return 0;
}

static int yphase(struct yctx *y, node *n, dc_phase *ph, size_t idx, size_t count)
{
	static const char *const keys[] = { "name", "up", "down", "batch", "transaction" };
	size_t p;
	int rc;

	ph->transactional = true;
	if (n->kind != DC_YAML_MAP)
		return yerr(y, n, "phase %zu must be a mapping in '%s'", idx + 1, y->name);
	if ((rc = ykeys(y, n, "in a phase", keys, 5)) < 0)
		return rc;
	for (p = 0; p + 1 < n->nkids; p += 2) {
		node *k = n->kids[p], *v = n->kids[p + 1];

		if (dc_yaml__is(k, "name"))
			rc = ystring(y, k, v, &ph->name);
		else if (dc_yaml__is(k, "up"))
			rc = ysql(y, k, v, &ph->up);
		else if (dc_yaml__is(k, "down"))
			rc = ysql(y, k, v, &ph->down);
		else if (dc_yaml__is(k, "batch"))
			rc = ybatch(y, k, v, &ph->batch_rows);
		else /* "transaction", the last known key */
			rc = ybool(y, k, v, &ph->transactional);
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

static int yphases(struct yctx *y, node *val, dc_migration *m)
{
	size_t count, i, j;
	int rc;

	if (val->kind != DC_YAML_SEQ || (count = val->nkids) == 0)
		return yerr(y, val, "'phases' must be a non-empty list in '%s'", y->name);
	if (count > DC_MIGRATION_MAX_PHASES)
		return dc_error_set_at(y->L->err, DC_ELIMIT, y->path, 0, 0,
		                       "'%s' has more than %d phases", y->name,
		                       DC_MIGRATION_MAX_PHASES);
	rc = dc_migration__phases_alloc(m, count, y->L->err);
	if (rc < 0)
		return rc;
	for (i = 0; i < count; i++) {
		node *n = val->kids[i];

		rc = yphase(y, n, &m->phases[i], i, count);
		if (rc < 0)
			return rc;
		for (j = 0; j < i; j++) {
			if (strcmp(m->phases[j].name, m->phases[i].name) == 0)
				return yerr(y, n, "duplicate phase name '%s' in '%s'",
				            m->phases[i].name, y->name);
		}
	}
	return 0;
}

static int yverify(struct yctx *y, node *key, node *val, dc_migration *m)
{
	size_t count, i;
	int rc;

	if (val->kind != DC_YAML_SEQ)
		return yerr(y, val, "'verify' must be a list of sql in '%s'", y->name);
	count = val->nkids;
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
	for (i = 0; i < count; i++) {
		node *n = val->kids[i];

		rc = ysql(y, key, n, &m->verify[i]);
		if (rc < 0)
			return rc;
		if (m->verify[i].nstmts != 1)
			return yerr(y, n, "each 'verify' entry must be one statement in '%s'",
			            y->name);
	}
	return 0;
}

static int yscope(struct yctx *y, node *val, dc_migration *m)
{
	const char *s;
	size_t len = 0;

	s = yscalar(val, &len);
	if (!s)
		return yerr(y, val, "'scope' must be 'tenant' or 'shard' in '%s'", y->name);
	return dc_migration__scope_parse(y->L, m, s, len, y->path, val->line, val->col);
}

/* The top-level mapping, its keys checked, into m. */
static int yroot(struct yctx *y, node *root, dc_migration *m)
{
	static const char *const keys[] = {
		"version", "name", "audit", "phases", "verify", "scope"
	};
	node *vnode = NULL, *snode = NULL;
	size_t p;
	int rc;

	if (!root || root->kind != DC_YAML_MAP)
		return yerr(y, root, "'%s' must be a mapping with 'version' and 'phases'", y->name);
	if ((rc = ykeys(y, root, "at the top level", keys, 6)) < 0)
		return rc;
	for (p = 0; p + 1 < root->nkids; p += 2) {
		node *k = root->kids[p], *v = root->kids[p + 1];

		if (dc_yaml__is(k, "version")) {
			vnode = v;
			rc = ystring(y, k, v, &m->version);
		} else if (dc_yaml__is(k, "name")) {
			rc = ystring(y, k, v, &m->name);
		} else if (dc_yaml__is(k, "audit")) {
			rc = ystring(y, k, v, &m->audit);
		} else if (dc_yaml__is(k, "phases")) {
			rc = yphases(y, v, m);
		} else if (dc_yaml__is(k, "scope")) {
			snode = v;
			rc = yscope(y, v, m);
		} else { /* "verify", the last known key */
			rc = yverify(y, k, v, m);
		}
		if (rc < 0)
			return rc;
	}
	if (!m->version)
		return yerr(y, root, "'%s' has no 'version'", y->name);
	if (!dc_migration__version_valid(m->version))
		return yerr(y, vnode,
		            "invalid version '%.*s' in '%s': use letters, digits, '.', '_' and '-'",
		            MAX_VERSION_LEN, m->version, y->name);
	if (!m->phases)
		return yerr(y, root, "'%s' has no 'phases'", y->name);
	if (snode)
		return dc_migration__scope_check(y->L, m, snode->line, snode->col);
	return 0;
}

static int load(struct loader *L,
                dc_migration *m,
                const char *raw,
                size_t len,
                const char *down,
                size_t dlen)
{
	struct yctx y = { L, m->path, dc_path_basename(m->path), raw, len };
	dc_yaml_node *root = NULL;
	dc_yaml_problem why;
	int rc;

	(void)down;
	(void)dlen;
	rc = dc_yaml__parse(&root, raw, len, &why);
	if (rc == DC_EPARSE) {
		rc = dc_error_set_at(L->err, DC_EPARSE, m->path, why.line, why.col,
		                     "invalid yaml in '%s': %s", y.name, why.msg);
		goto out;
	}
	if (rc < 0) {
		rc = dc_error_set(L->err, rc, "out of memory");
		goto out;
	}
	rc = yroot(&y, root, m);
	if (rc < 0)
		goto out;
	if (!m->name) {
		const char *dot = strrchr(y.name, '.');

		m->name = dc_strndup(y.name, dot ? (size_t)(dot - y.name) : strlen(y.name));
		if (!m->name)
			rc = dc_error_set(L->err, DC_ENOMEM, "out of memory");
	}
out:
	dc_yaml__free(root);
	return rc;
}

static int detect(const char *name, struct dc_migration__entry *e)
{
	size_t len = strlen(name);

	if (!dc_migration__ends_with(name, len, ".yaml") &&
	    !dc_migration__ends_with(name, len, ".yml"))
		return 0;
	e->kind = KIND_ONLY;
	return 1;
}

const struct dc_migration__layout dc_migration__layout_native = {
	.id = DC_LAYOUT_NATIVE,
	.name = "native",
	.expected = "a .yaml migration",
	.down_files = false,
	.detect = detect,
	.load = load,
};
