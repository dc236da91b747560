/*
 * layouts/native.c — deployclaw's own layout: one YAML file per migration
 * with its version, phases (each an up, a down, batching, transaction) and
 * verify assertions (docs/migrations.md).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libfyaml.h>

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
	dc_migration__copy_word(word, sizeof(word), s, len);
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
	if (dc_migration__only_space_comments(s, len))
		return yerr(y, val, "'%.*s' is empty in '%s'", (int)klen, k, y->name);
	dc_migration__sql_release(out);
	map = yalign(y, val, s, len);
	if (!map)
		return dc_error_set(y->L->err, DC_ENOMEM, "out of memory");
	dc_migration__srcmap_init(&m, y->raw, y->rawlen, 1, 1);
	{
		struct fy_token *t = fy_node_get_scalar_token(val);
		const struct fy_mark *mk = t ? fy_token_start_mark(t) : NULL;

		if (mk && mk->input_pos <= map[0])
			dc_migration__srcmap_set_origin(&m, mk->input_pos, mk->line + 1,
			                                mk->column + 1);
	}
	m.map = map;
	m.maplen = len;
	rc = dc_migration__sql_fill(y->L, out, s, len, &m, y->path);
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
	rc = dc_migration__phases_alloc(m, count, y->L->err);
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

static int load(struct loader *L,
                dc_migration *m,
                const char *raw,
                size_t len,
                const char *down,
                size_t dlen)
{
	static const char *const keys[] = { "version", "name", "audit", "phases", "verify" };
	struct fy_diag_cfg dcfg;
	struct fy_parse_cfg pcfg;
	struct fy_diag *diag = NULL;
	struct fy_document *fyd = NULL;
	struct fy_node *root, *vnode = NULL;
	struct fy_node_pair *pr;
	struct yctx y = { L, m->path, dc_migration__base_name(m->path), raw, len };
	void *it = NULL;
	bool seen_verify = false;
	int rc = 0;

	(void)down;
	(void)dlen;
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
	if (!dc_migration__version_valid(m->version)) {
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
