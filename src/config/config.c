/*
 * deployclaw.yaml -> dc_config.
 *
 * The YAML is read by the shared reader (src/util/yaml.c), which gives
 * every node its line and column; this file checks it against the schema
 * and fills dc_config.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include <deployclaw/config.h>

#include "../util/yaml_internal.h"

#define MAX_SCALAR      ((size_t)64 * 1024)
#define MAX_SHARDS      4096
#define MAX_REPLICAS    64
#define MAX_WAVES       100
#define MAX_PARALLEL    1024
#define MAX_FAILURES    1000000
#define MAX_COUNT       10000000
#define MAX_DURATION_MS 2147483647LL /* PostgreSQL's timeouts are int milliseconds */
#define MAX_VARNAME     128

typedef struct ctx {
	const char *file; /* for messages; may be NULL */
	const char *text;
	size_t len;
	dc_error *err;
} ctx;

/* ------------------------------------------------------------------------ */
/* Errors.                                                                  */

static int fail_at(ctx *c, int line, int col, const char *fmt, ...) DC_PRINTF(4, 5);

static int fail_at(ctx *c, int line, int col, const char *fmt, ...)
{
	char msg[sizeof(((dc_error *)0)->message)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return dc_error_set_at(c->err, DC_ECONFIG, c->file, line, col, "%s", msg);
}

#define fail(c, n, ...) fail_at((c), (n)->line, (n)->col, __VA_ARGS__)

/*
 * Copies user text for a message: at most 64 bytes, control characters and
 * quotes replaced, so a message stays one line. Never used on a DSN.
 */
static const char *shown(char *out, size_t size, const char *s, size_t len)
{
	size_t i, o = 0;

	for (i = 0; i < len && o + 4 < size && i < 64; i++) {
		unsigned char ch = (unsigned char)s[i];

		out[o++] = (ch < 0x20 || ch == 0x7f || ch == '\'') ? '?' : (char)ch;
	}
	if (i < len && o + 4 < size) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
	return out;
}

/* ------------------------------------------------------------------------ */
/* Scalars: ${VAR} expansion and typed values.                              */

static void join_path(char *out, size_t size, const char *parent, const char *key)
{
	if (!parent || !parent[0])
		snprintf(out, size, "%s", key);
	else
		snprintf(out, size, "%s.%s", parent, key);
}

/* memmem is a GNU extension; this is the portable few lines. */
static const char *find(const char *hay, size_t hlen, const char *needle, size_t nlen)
{
	size_t i;

	for (i = 0; nlen <= hlen && i <= hlen - nlen; i++)
		if (!memcmp(hay + i, needle, nlen))
			return hay + i;
	return NULL;
}

/* Where `needle` first occurs in the source text of scalar `n`. */
static void locate(const ctx *c, const dc_yaml_node *n, const char *needle, int *line, int *col)
{
	const char *hit = NULL, *p;
	size_t nlen = strlen(needle);

	*line = n->line;
	*col = n->col;
	if (n->has_span && n->end - n->pos >= nlen)
		hit = find(c->text + n->pos, n->end - n->pos, needle, nlen);
	if (!hit)
		return;
	/* columns count characters, as libfyaml's do */
	for (p = c->text + n->pos; p < hit; p++) {
		if (*p == '\n') {
			(*line)++;
			*col = 1;
		} else if (((unsigned char)*p & 0xc0) != 0x80) {
			(*col)++;
		}
	}
}

static int expand(ctx *c, const dc_yaml_node *n, const char *path, char **out)
{
	dc_strbuf sb = DC_STRBUF_INIT;
	const char *s = n->text, *end = n->text + n->len;
	int rc = 0, line, col;

	*out = NULL;
	dc_strbuf_init(&sb, MAX_SCALAR);
	while (s < end) {
		const char *close, *name, *def = NULL;
		size_t namelen, deflen = 0;
		char var[MAX_VARNAME + 1];
		char needle[MAX_VARNAME + 3];
		const char *val;

		if (*s != '$' || s + 1 >= end || (s[1] != '$' && s[1] != '{')) {
			dc_strbuf_addch(&sb, *s++);
			continue;
		}
		if (s[1] == '$') {
			dc_strbuf_addch(&sb, '$');
			s += 2;
			continue;
		}
		name = s + 2;
		close = memchr(name, '}', (size_t)(end - name));
		if (!close) {
			locate(c, n, "${", &line, &col);
			rc = fail_at(c, line, col,
			             "%s: unterminated '${' (write '$$' for a literal '$')", path);
			goto out;
		}
		for (namelen = 0; name + namelen < close; namelen++) {
			unsigned char ch = (unsigned char)name[namelen];

			if (!(isalpha(ch) || ch == '_' || (namelen > 0 && isdigit(ch))))
				break;
		}
		if (name + namelen < close) {
			if (close - (name + namelen) >= 2 && name[namelen] == ':' &&
			    name[namelen + 1] == '-') {
				def = name + namelen + 2;
				deflen = (size_t)(close - def);
			} else {
				namelen = 0; /* reported below */
			}
		}
		if (namelen == 0 || namelen > MAX_VARNAME) {
			locate(c, n, "${", &line, &col);
			rc = fail_at(
			        c, line, col,
			        "%s: invalid variable reference (expected ${NAME} or ${NAME:-default})",
			        path);
			goto out;
		}
		memcpy(var, name, namelen);
		var[namelen] = '\0';
		val = getenv(var);
		if (val && (val[0] || !def)) {
			dc_strbuf_adds(&sb, val);
		} else if (def) {
			dc_strbuf_add(&sb, def, deflen);
		} else {
			snprintf(needle, sizeof(needle), "${%s", var);
			locate(c, n, needle, &line, &col);
			rc = fail_at(
			        c, line, col,
			        "%s: undefined environment variable '%s' (set it, or write ${%s:-default})",
			        path, var, var);
			goto out;
		}
		s = close + 1;
	}
	if (dc_strbuf_error(&sb)) {
		rc = sb.failed == DC_ENOMEM
		             ? dc_error_set(c->err, DC_ENOMEM, "out of memory")
		             : fail(c, n, "%s: value longer than %zu bytes", path, MAX_SCALAR);
		goto out;
	}
	*out = dc_strbuf_detach(&sb, NULL);
	if (!*out)
		rc = dc_error_set(c->err, DC_ENOMEM, "out of memory");
out:
	if (sb.alloc)
		sodium_memzero(sb.buf, sb.alloc);
	dc_strbuf_release(&sb);
	return rc;
}

/* A non-empty scalar, expanded. `*out` is heap, freed by the caller. */
static int get_str(ctx *c, const dc_yaml_node *n, const char *path, char **out)
{
	*out = NULL;
	if (n->kind == DC_YAML_ALIAS)
		return fail(c, n, "%s: aliases are not supported", path);
	if (n->kind != DC_YAML_SCALAR || n->null)
		return fail(c, n, "%s: expected a string, got %s", path, dc_yaml__kind_name(n));
	if (memchr(n->text, '\0', n->len))
		return fail(c, n, "%s: value contains a NUL character", path);
	return expand(c, n, path, out);
}

static int get_nonempty(ctx *c, const dc_yaml_node *n, const char *path, char **out)
{
	int rc = get_str(c, n, path, out);

	if (rc == 0 && !(*out)[0]) {
		free(*out);
		*out = NULL;
		rc = fail(c, n, "%s: must not be empty", path);
	}
	return rc;
}

static int parse_int(const char *s, int64_t *v)
{
	int64_t x = 0;
	bool neg = false;

	if (*s == '-' || *s == '+')
		neg = *s++ == '-';
	if (!*s)
		return -1;
	for (; *s; s++) {
		if (!isdigit((unsigned char)*s) || x > (INT64_MAX - 9) / 10)
			return -1;
		x = x * 10 + (*s - '0');
	}
	*v = neg ? -x : x;
	return 0;
}

static int get_int(ctx *c,
                   const dc_yaml_node *n,
                   const char *path,
                   int64_t min,
                   int64_t max,
                   int *out)
{
	char *s = NULL, buf[80];
	int64_t v = 0;
	int rc;

	if ((rc = get_str(c, n, path, &s)) != 0)
		goto out;
	if (parse_int(s, &v) != 0) {
		rc = fail(c, n, "%s: expected an integer, got '%s'", path,
		          shown(buf, sizeof(buf), s, strlen(s)));
		goto out;
	}
	if (v < min || v > max) {
		if (max == INT32_MAX || max >= MAX_FAILURES)
			rc = fail(c, n, "%s: %lld is out of range (at least %lld)", path,
			          (long long)v, (long long)min);
		else
			rc = fail(c, n, "%s: %lld is out of range (%lld..%lld)", path, (long long)v,
			          (long long)min, (long long)max);
		goto out;
	}
	*out = (int)v;
out:
	free(s);
	return rc;
}

static int get_bool(ctx *c, const dc_yaml_node *n, const char *path, bool *out)
{
	char *s = NULL, buf[80];
	int rc;

	if ((rc = get_str(c, n, path, &s)) != 0)
		goto out;
	if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"))
		*out = true;
	else if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))
		*out = false;
	else
		rc = fail(c, n, "%s: expected true or false, got '%s'", path,
		          shown(buf, sizeof(buf), s, strlen(s)));
out:
	free(s);
	return rc;
}

/* A consistency check's scope: true or changed, full, false. */
static int get_check_scope(ctx *c, const dc_yaml_node *n, const char *path, dc_check_scope *out)
{
	char *s = NULL, buf[80];
	int rc;

	if ((rc = get_str(c, n, path, &s)) != 0)
		goto out;
	if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE") || !strcmp(s, "changed"))
		*out = DC_CHECK_CHANGED;
	else if (!strcmp(s, "full"))
		*out = DC_CHECK_FULL;
	else if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))
		*out = DC_CHECK_OFF;
	else
		rc = fail(
		        c, n,
		        "%s: expected true (the tables the migration wrote), full or false, got '%s'",
		        path, shown(buf, sizeof(buf), s, strlen(s)));
out:
	free(s);
	return rc;
}

static int get_duration(ctx *c, const dc_yaml_node *n, const char *path, int64_t *out)
{
	char *s = NULL, buf[80];
	int64_t ms = 0;
	int rc;

	if ((rc = get_str(c, n, path, &s)) != 0)
		goto out;
	if (dc_duration_parse(s, &ms) != 0) {
		rc = fail(
		        c, n,
		        "%s: invalid duration '%s' (expected a number and a unit: 500ms, 2s, 5m, 1h)",
		        path, shown(buf, sizeof(buf), s, strlen(s)));
		goto out;
	}
	if (ms > MAX_DURATION_MS) {
		rc = fail(c, n, "%s: duration '%s' is out of range (at most 2147483647ms)", path,
		          shown(buf, sizeof(buf), s, strlen(s)));
		goto out;
	}
	*out = ms;
out:
	free(s);
	return rc;
}

/* A count (min_count..MAX_COUNT) or a percentage (1%..100%). */
static int get_amount(ctx *c,
                      const dc_yaml_node *n,
                      const char *path,
                      int64_t min_count,
                      dc_amount *out)
{
	char *s = NULL, buf[80];
	size_t len;
	int64_t v = 0;
	int rc;

	if ((rc = get_str(c, n, path, &s)) != 0)
		goto out;
	len = strlen(s);
	shown(buf, sizeof(buf), s, len);
	if (len > 0 && s[len - 1] == '%') {
		s[len - 1] = '\0';
		if (parse_int(s, &v) != 0 || !isdigit((unsigned char)s[0]) || v < 1 || v > 100) {
			rc = fail(c, n, "%s: invalid percentage '%s' (expected 1%%..100%%)", path,
			          buf);
			goto out;
		}
		out->percent = true;
	} else {
		if (parse_int(s, &v) != 0) {
			rc = fail(c, n, "%s: expected a count or a percentage, got '%s'", path,
			          buf);
			goto out;
		}
		if (v < min_count || v > MAX_COUNT) {
			rc = fail(c, n, "%s: %lld is out of range (%lld..%d, or a percentage)",
			          path, (long long)v, (long long)min_count, MAX_COUNT);
			goto out;
		}
		out->percent = false;
	}
	out->value = v;
out:
	free(s);
	return rc;
}

/* One of `names`; its index in `*out`. */
static int get_enum(ctx *c,
                    const dc_yaml_node *n,
                    const char *path,
                    const char *const *names,
                    size_t nnames,
                    const char *expected,
                    int *out)
{
	char *s = NULL, buf[80];
	const char *hint;
	size_t i;
	int rc;

	if ((rc = get_str(c, n, path, &s)) != 0)
		goto out;
	for (i = 0; i < nnames; i++) {
		if (!strcmp(s, names[i])) {
			*out = (int)i;
			goto out;
		}
	}
	hint = dc_suggest(s, names, nnames);
	if (hint)
		rc = fail(c, n, "%s: unknown value '%s' (did you mean '%s'?)", path,
		          shown(buf, sizeof(buf), s, strlen(s)), hint);
	else
		rc = fail(c, n, "%s: unknown value '%s' (expected %s)", path,
		          shown(buf, sizeof(buf), s, strlen(s)), expected);
out:
	free(s);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* Mappings and sequences.                                                  */

/* Empty values stand for "not given" where a mapping or sequence is expected. */
static const dc_yaml_node *present(const dc_yaml_node *n)
{
	return n && !(n->kind == DC_YAML_SCALAR && n->null) ? n : NULL;
}

static int expect(ctx *c, const dc_yaml_node *n, const char *path, dc_yaml_kind kind)
{
	if (n->kind == kind)
		return 0;
	if (n->kind == DC_YAML_ALIAS)
		return fail(c, n, "%s: aliases are not supported", path);
	return fail(c, n, "%s: expected %s, got %s", path,
	            kind == DC_YAML_MAP ? "a mapping" : "a sequence", dc_yaml__kind_name(n));
}

/* Every key of mapping `m` a string, known, and given once (dc_yaml__check_keys). */
static int check_keys(ctx *c,
                      const dc_yaml_node *m,
                      const char *path,
                      const char *const *keys,
                      size_t nkeys)
{
	const dc_yaml_node *key = NULL, *first = NULL;
	char kp[512], buf[80];
	const char *hint;

	switch (dc_yaml__check_keys(m, keys, nkeys, &key, &first)) {
	case DC_YAML_KEYS_OK:
		return 0;
	case DC_YAML_KEY_NOT_STRING:
		return fail(c, key, "%s%skeys must be plain strings, got %s", path[0] ? path : "",
		            path[0] ? ": " : "", dc_yaml__kind_name(key));
	case DC_YAML_KEY_DUPLICATE:
	case DC_YAML_KEY_UNKNOWN:
	default:
		break;
	}
	shown(buf, sizeof(buf), key->text, key->len);
	join_path(kp, sizeof(kp), path, buf);
	if (first)
		return fail(c, key, "%s: duplicate key (first at line %d, column %d)", kp,
		            first->line, first->col);
	hint = dc_yaml__suggest_key(key, keys, nkeys);
	if (hint)
		return fail(c, key, "%s: unknown key (did you mean '%s'?)", kp, hint);
	return fail(c, key, "%s: unknown key", kp);
}

static int get_str_list(ctx *c,
                        const dc_yaml_node *seq,
                        const char *path,
                        size_t max,
                        char ***out,
                        size_t *nout)
{
	char ip[512];
	size_t i;
	int rc;

	if ((rc = expect(c, seq, path, DC_YAML_SEQ)) != 0)
		return rc;
	if (seq->nkids > max)
		return fail(c, seq, "%s: more than %zu entries", path, max);
	if (seq->nkids == 0)
		return 0;
	*out = calloc(seq->nkids, sizeof(**out));
	if (!*out)
		return dc_error_set(c->err, DC_ENOMEM, "out of memory");
	for (i = 0; i < seq->nkids; i++) {
		snprintf(ip, sizeof(ip), "%s[%zu]", path, i);
		if ((rc = get_nonempty(c, seq->kids[i], ip, &(*out)[i])) != 0)
			return rc;
		(*nout)++;
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* The schema.                                                              */

static const char *const root_keys[] = { "engine", "migrations", "tenancy", "shards",
	                                 "gates",  "rollout",    "audit",   "lint" };
static const char *const lint_keys[] = { "rules" };
/* in dc_severity order */
static const char *const severity_names[] = { "off", "info", "warning", "error" };
static const char *const tenancy_keys[] = { "model", "glob", "pattern", "query", "list" };
static const char *const shard_keys[] = { "name", "primary", "replicas", "parallel" };
static const char *const gates_keys[] = { "lock_timeout",      "statement_timeout",
	                                  "require_down",      "replication_lag",
	                                  "integrity_check",   "foreign_key_check",
	                                  "allow_out_of_order" };
static const char *const lag_keys[] = { "max", "timeout" };
static const char *const rollout_keys[] = { "canary",   "waves",  "max_failures",
	                                    "parallel", "backup", "retries" };
static const char *const audit_keys[] = { "ledger", "key" };
static const char *const engine_names[] = { "sqlite", "postgres" };
/* in dc_tenancy_model order */
static const char *const model_names[] = { "database", "schema", "row" };

#define N(a) (sizeof(a) / sizeof((a)[0]))

typedef struct tenant_ref {
	const char *id;
	size_t index;
} tenant_ref;

static int tenant_ref_cmp(const void *a, const void *b)
{
	const tenant_ref *x = a, *y = b;
	int d = strcmp(x->id, y->id);

	return d ? d : (x->index > y->index) - (x->index < y->index);
}

/* Duplicate tenant ids, found by sorting: a list may hold many thousands. */
static int check_tenant_list(ctx *c, const dc_config *cfg, const dc_yaml_node *seq)
{
	tenant_ref *refs = NULL;
	size_t i, dup = SIZE_MAX, first = 0;
	int rc = 0;
	char buf[80];

	if (cfg->tenancy.nlist < 2)
		return 0;
	refs = dc_malloc_array(cfg->tenancy.nlist, sizeof(*refs));
	if (!refs)
		return dc_error_set(c->err, DC_ENOMEM, "out of memory");
	for (i = 0; i < cfg->tenancy.nlist; i++) {
		refs[i].id = cfg->tenancy.list[i];
		refs[i].index = i;
	}
	qsort(refs, cfg->tenancy.nlist, sizeof(*refs), tenant_ref_cmp);
	for (i = 1; i < cfg->tenancy.nlist; i++)
		if (!strcmp(refs[i].id, refs[i - 1].id) && refs[i].index < dup)
			dup = refs[i].index;
	if (dup != SIZE_MAX) {
		/* the earliest occurrence of that id */
		for (i = 0; i < dup; i++) {
			if (!strcmp(cfg->tenancy.list[i], cfg->tenancy.list[dup])) {
				first = i;
				break;
			}
		}
		rc = fail(
		        c, seq->kids[dup],
		        "tenancy.list[%zu]: duplicate tenant '%s' (first at tenancy.list[%zu], line %d)",
		        dup,
		        shown(buf, sizeof(buf), cfg->tenancy.list[dup],
		              strlen(cfg->tenancy.list[dup])),
		        first, seq->kids[first]->line);
	}
	free(refs);
	return rc;
}

static int load_tenancy(ctx *c, dc_config *cfg, const dc_yaml_node *t)
{
	const dc_yaml_node *v;
	char *s = NULL;
	int rc, model = 0;

	if ((rc = expect(c, t, "tenancy", DC_YAML_MAP)) != 0 ||
	    (rc = check_keys(c, t, "tenancy", tenancy_keys, N(tenancy_keys))) != 0)
		return rc;
	if ((v = dc_yaml__get(t, "model")) != NULL) {
		if ((rc = get_enum(c, v, "tenancy.model", model_names, N(model_names),
		                   "'schema', 'database' or 'row'", &model)) != 0)
			return rc;
		cfg->tenancy.model = (dc_tenancy_model)model;
	}
	if ((v = dc_yaml__get(t, "glob")) != NULL) {
		if ((rc = get_nonempty(c, v, "tenancy.glob", &s)) != 0)
			return rc;
		cfg->tenancy.glob = dc_path_join(cfg->dir, s);
		free(s);
		if (!cfg->tenancy.glob)
			return dc_error_set(c->err, DC_ENOMEM, "out of memory");
	}
	if ((v = dc_yaml__get(t, "pattern")) != NULL &&
	    (rc = get_nonempty(c, v, "tenancy.pattern", &cfg->tenancy.pattern)) != 0)
		return rc;
	if ((v = dc_yaml__get(t, "query")) != NULL &&
	    (rc = get_nonempty(c, v, "tenancy.query", &cfg->tenancy.query)) != 0)
		return rc;
	if ((v = present(dc_yaml__get(t, "list"))) != NULL) {
		if ((rc = get_str_list(c, v, "tenancy.list", SIZE_MAX, &cfg->tenancy.list,
		                       &cfg->tenancy.nlist)) != 0)
			return rc;
		if ((rc = check_tenant_list(c, cfg, v)) != 0)
			return rc;
	}
	return 0;
}

static int load_shard(ctx *c, dc_config *cfg, const dc_yaml_node *m, size_t i)
{
	dc_shard_config *sh = &cfg->shards[i];
	const dc_yaml_node *v, *name = NULL;
	char path[64], kp[96], buf[80];
	size_t j;
	int rc;

	snprintf(path, sizeof(path), "shards[%zu]", i);
	if ((rc = expect(c, m, path, DC_YAML_MAP)) != 0 ||
	    (rc = check_keys(c, m, path, shard_keys, N(shard_keys))) != 0)
		return rc;
	sh->line = m->line;
	sh->col = m->col;
	if (!(name = dc_yaml__get(m, "name")))
		return fail(c, m, "%s: missing required key 'name'", path);
	snprintf(kp, sizeof(kp), "%s.name", path);
	if ((rc = get_nonempty(c, name, kp, &sh->name)) != 0)
		return rc;
	for (j = 0; j < i; j++) {
		if (!strcmp(cfg->shards[j].name, sh->name))
			return fail(c, name,
			            "%s: duplicate shard name '%s' (first at shards[%zu], line %d)",
			            kp, shown(buf, sizeof(buf), sh->name, strlen(sh->name)), j,
			            cfg->shards[j].line);
	}
	if (!(v = dc_yaml__get(m, "primary")))
		return fail(c, m, "%s: missing required key 'primary'", path);
	snprintf(kp, sizeof(kp), "%s.primary", path);
	/* a DSN: get_nonempty never echoes the value */
	if ((rc = get_nonempty(c, v, kp, &sh->primary)) != 0)
		return rc;
	if ((v = present(dc_yaml__get(m, "replicas"))) != NULL) {
		snprintf(kp, sizeof(kp), "%s.replicas", path);
		if ((rc = get_str_list(c, v, kp, MAX_REPLICAS, &sh->replicas, &sh->nreplicas)) != 0)
			return rc;
	}
	if ((v = dc_yaml__get(m, "parallel")) != NULL) {
		snprintf(kp, sizeof(kp), "%s.parallel", path);
		if ((rc = get_int(c, v, kp, 1, MAX_PARALLEL, &sh->parallel)) != 0)
			return rc;
	}
	return 0;
}

static int load_shards(ctx *c, dc_config *cfg, const dc_yaml_node *seq)
{
	size_t i;
	int rc;

	if ((rc = expect(c, seq, "shards", DC_YAML_SEQ)) != 0)
		return rc;
	if (seq->nkids > MAX_SHARDS)
		return fail(c, seq, "shards: more than %d shards", MAX_SHARDS);
	if (seq->nkids == 0)
		return 0;
	cfg->shards = calloc(seq->nkids, sizeof(*cfg->shards));
	if (!cfg->shards)
		return dc_error_set(c->err, DC_ENOMEM, "out of memory");
	for (i = 0; i < seq->nkids; i++) {
		cfg->nshards++;
		if ((rc = load_shard(c, cfg, seq->kids[i], i)) != 0)
			return rc;
	}
	return 0;
}

static int load_gates(ctx *c, dc_config *cfg, const dc_yaml_node *g)
{
	const dc_yaml_node *v, *lag;
	int rc;

	if ((rc = expect(c, g, "gates", DC_YAML_MAP)) != 0 ||
	    (rc = check_keys(c, g, "gates", gates_keys, N(gates_keys))) != 0)
		return rc;
	if ((v = dc_yaml__get(g, "lock_timeout")) != NULL &&
	    (rc = get_duration(c, v, "gates.lock_timeout", &cfg->gates.lock_timeout_ms)) != 0)
		return rc;
	if ((v = dc_yaml__get(g, "statement_timeout")) != NULL &&
	    (rc = get_duration(c, v, "gates.statement_timeout",
	                       &cfg->gates.statement_timeout_ms)) != 0)
		return rc;
	if ((v = dc_yaml__get(g, "require_down")) != NULL &&
	    (rc = get_bool(c, v, "gates.require_down", &cfg->gates.require_down)) != 0)
		return rc;
	if ((v = dc_yaml__get(g, "integrity_check")) != NULL &&
	    (rc = get_check_scope(c, v, "gates.integrity_check", &cfg->gates.integrity_check)) != 0)
		return rc;
	if ((v = dc_yaml__get(g, "foreign_key_check")) != NULL &&
	    (rc = get_check_scope(c, v, "gates.foreign_key_check",
	                          &cfg->gates.foreign_key_check)) != 0)
		return rc;
	if ((v = dc_yaml__get(g, "allow_out_of_order")) != NULL &&
	    (rc = get_bool(c, v, "gates.allow_out_of_order", &cfg->gates.allow_out_of_order)) != 0)
		return rc;
	if ((lag = present(dc_yaml__get(g, "replication_lag"))) != NULL) {
		if ((rc = expect(c, lag, "gates.replication_lag", DC_YAML_MAP)) != 0 ||
		    (rc = check_keys(c, lag, "gates.replication_lag", lag_keys, N(lag_keys))) != 0)
			return rc;
		if ((v = dc_yaml__get(lag, "max")) != NULL &&
		    (rc = get_duration(c, v, "gates.replication_lag.max",
		                       &cfg->gates.lag_max_ms)) != 0)
			return rc;
		if ((v = dc_yaml__get(lag, "timeout")) != NULL &&
		    (rc = get_duration(c, v, "gates.replication_lag.timeout",
		                       &cfg->gates.lag_timeout_ms)) != 0)
			return rc;
	}
	return 0;
}

/* lint: { rules: { id: severity } }; rule ids are checked by the linter. */
static int load_lint(ctx *c, dc_config *cfg, const dc_yaml_node *l)
{
	const dc_yaml_node *rules;
	char kp[160], buf[80];
	size_t i;
	int rc;

	if ((rc = expect(c, l, "lint", DC_YAML_MAP)) != 0 ||
	    (rc = check_keys(c, l, "lint", lint_keys, N(lint_keys))) != 0)
		return rc;
	if (!(rules = present(dc_yaml__get(l, "rules"))))
		return 0;
	/* keys are rule ids, checked below (duplicates) and by the linter (names) */
	if ((rc = expect(c, rules, "lint.rules", DC_YAML_MAP)) != 0)
		return rc;
	if (rules->nkids / 2 > 1000)
		return fail(c, rules, "lint.rules: more than 1000 entries");
	cfg->lint.rules = calloc(rules->nkids / 2 + 1, sizeof(*cfg->lint.rules));
	if (!cfg->lint.rules)
		return dc_error_set(c->err, DC_ENOMEM, "out of memory");
	for (i = 0; i + 1 < rules->nkids; i += 2) {
		const dc_yaml_node *key = rules->kids[i], *val = rules->kids[i + 1];
		struct dc_lint_rule_setting *r = &cfg->lint.rules[cfg->lint.nrules];
		size_t j;
		int sev = 0;

		if (key->kind != DC_YAML_SCALAR || key->null || !key->len)
			return fail(c, key, "lint.rules: keys must be rule ids, got %s",
			            dc_yaml__kind_name(key));
		shown(buf, sizeof(buf), key->text, key->len);
		snprintf(kp, sizeof(kp), "lint.rules.%.64s", buf);
		for (j = 0; j < i; j += 2)
			if (rules->kids[j]->len == key->len &&
			    !memcmp(rules->kids[j]->text, key->text, key->len))
				return fail(c, key,
				            "%s: duplicate key (first at line %d, column %d)", kp,
				            rules->kids[j]->line, rules->kids[j]->col);
		if ((rc = get_enum(c, val, kp, severity_names, N(severity_names),
		                   "'off', 'info', 'warning' or 'error'", &sev)) != 0)
			return rc;
		r->rule = dc_strndup(key->text, key->len);
		if (!r->rule)
			return dc_error_set(c->err, DC_ENOMEM, "out of memory");
		r->severity = sev;
		r->line = key->line;
		r->col = key->col;
		cfg->lint.nrules++;
	}
	return 0;
}

static int load_rollout(ctx *c, dc_config *cfg, const dc_yaml_node *r)
{
	const dc_yaml_node *v;
	char wp[64];
	size_t i;
	int rc;

	if ((rc = expect(c, r, "rollout", DC_YAML_MAP)) != 0 ||
	    (rc = check_keys(c, r, "rollout", rollout_keys, N(rollout_keys))) != 0)
		return rc;
	if ((v = dc_yaml__get(r, "canary")) != NULL &&
	    (rc = get_amount(c, v, "rollout.canary", 0, &cfg->rollout.canary)) != 0)
		return rc;
	if ((v = present(dc_yaml__get(r, "waves"))) != NULL) {
		dc_amount *waves;

		if ((rc = expect(c, v, "rollout.waves", DC_YAML_SEQ)) != 0)
			return rc;
		if (v->nkids == 0)
			return fail(c, v, "rollout.waves: must list at least one wave");
		if (v->nkids > MAX_WAVES)
			return fail(c, v, "rollout.waves: more than %d waves", MAX_WAVES);
		waves = dc_malloc_array(v->nkids, sizeof(*waves));
		if (!waves)
			return dc_error_set(c->err, DC_ENOMEM, "out of memory");
		free(cfg->rollout.waves);
		cfg->rollout.waves = waves;
		cfg->rollout.nwaves = v->nkids;
		for (i = 0; i < v->nkids; i++) {
			snprintf(wp, sizeof(wp), "rollout.waves[%zu]", i);
			if ((rc = get_amount(c, v->kids[i], wp, 1, &waves[i])) != 0)
				return rc;
		}
	}
	if ((v = dc_yaml__get(r, "max_failures")) != NULL &&
	    (rc = get_int(c, v, "rollout.max_failures", 0, MAX_FAILURES,
	                  &cfg->rollout.max_failures)) != 0)
		return rc;
	if ((v = dc_yaml__get(r, "parallel")) != NULL &&
	    (rc = get_int(c, v, "rollout.parallel", 1, MAX_PARALLEL, &cfg->rollout.parallel)) != 0)
		return rc;
	if ((v = dc_yaml__get(r, "retries")) != NULL &&
	    (rc = get_int(c, v, "rollout.retries", 0, 100, &cfg->rollout.retries)) != 0)
		return rc;
	if ((v = dc_yaml__get(r, "backup")) != NULL &&
	    (rc = get_bool(c, v, "rollout.backup", &cfg->rollout.backup)) != 0)
		return rc;
	return 0;
}

/* Replaces `*slot` (a path relative to the config's folder) by the value of `n`, resolved. */
static int load_path(ctx *c,
                     const dc_config *cfg,
                     const dc_yaml_node *n,
                     const char *path,
                     char **slot)
{
	char *s = NULL, *resolved;
	int rc;

	if ((rc = get_nonempty(c, n, path, &s)) != 0)
		return rc;
	resolved = dc_path_join(cfg->dir, s);
	free(s);
	if (!resolved)
		return dc_error_set(c->err, DC_ENOMEM, "out of memory");
	free(*slot);
	*slot = resolved;
	return 0;
}

static int set_defaults(dc_config *cfg)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	cfg->engine = DC_ENGINE_SQLITE;
	cfg->tenancy.model = DC_TENANCY_DATABASE;
	cfg->gates.lock_timeout_ms = 2000;
	cfg->gates.statement_timeout_ms = 5 * 60 * 1000;
	cfg->gates.require_down = true;
	cfg->gates.integrity_check = DC_CHECK_CHANGED;
	cfg->gates.foreign_key_check = DC_CHECK_CHANGED;
	cfg->gates.lag_max_ms = 500;
	cfg->gates.lag_timeout_ms = 10 * 60 * 1000;
	cfg->rollout.canary.value = 1;
	cfg->rollout.canary.percent = false;
	cfg->rollout.waves = malloc(sizeof(*cfg->rollout.waves));
	if (!cfg->rollout.waves)
		return DC_ENOMEM;
	cfg->rollout.waves[0].value = 100;
	cfg->rollout.waves[0].percent = true;
	cfg->rollout.nwaves = 1;
	cfg->rollout.max_failures = 0;
	cfg->rollout.retries = 3;
	cfg->rollout.parallel = ncpu < 1 ? 1 : ncpu > MAX_PARALLEL ? MAX_PARALLEL : (int)ncpu;
	cfg->migrations = dc_path_join(cfg->dir, "migrations");
	cfg->audit.ledger = dc_path_join(cfg->dir, "audit/ledger.jsonl");
	cfg->audit.key = dc_path_join(cfg->dir, "audit/signing.key");
	if (!cfg->migrations || !cfg->audit.ledger || !cfg->audit.key)
		return DC_ENOMEM;
	return 0;
}

static int load_root(ctx *c, dc_config *cfg, const dc_yaml_node *root)
{
	const dc_yaml_node *v, *engine, *tenancy, *shards;
	int rc, kind = 0;

	if (!root || (root->kind == DC_YAML_SCALAR && root->null))
		return fail_at(
		        c, 1, 1,
		        "the file is empty (expected a mapping with 'engine', 'tenancy', ...)");
	if (root->kind != DC_YAML_MAP)
		return fail(c, root, "expected a mapping at the top level, got %s",
		            dc_yaml__kind_name(root));
	if ((rc = check_keys(c, root, "", root_keys, N(root_keys))) != 0)
		return rc;
	if ((engine = dc_yaml__get(root, "engine")) != NULL) {
		if ((rc = get_enum(c, engine, "engine", engine_names, N(engine_names),
		                   "'sqlite' or 'postgres'", &kind)) != 0)
			return rc;
		cfg->engine = (dc_engine_kind)kind;
	}
	if ((v = dc_yaml__get(root, "migrations")) != NULL &&
	    (rc = load_path(c, cfg, v, "migrations", &cfg->migrations)) != 0)
		return rc;
	if ((tenancy = present(dc_yaml__get(root, "tenancy"))) != NULL &&
	    (rc = load_tenancy(c, cfg, tenancy)) != 0)
		return rc;
	if ((shards = present(dc_yaml__get(root, "shards"))) != NULL &&
	    (rc = load_shards(c, cfg, shards)) != 0)
		return rc;
	if ((v = present(dc_yaml__get(root, "gates"))) != NULL && (rc = load_gates(c, cfg, v)) != 0)
		return rc;
	if ((v = present(dc_yaml__get(root, "rollout"))) != NULL &&
	    (rc = load_rollout(c, cfg, v)) != 0)
		return rc;
	if ((v = present(dc_yaml__get(root, "lint"))) != NULL && (rc = load_lint(c, cfg, v)) != 0)
		return rc;
	if ((v = present(dc_yaml__get(root, "audit"))) != NULL) {
		if ((rc = expect(c, v, "audit", DC_YAML_MAP)) != 0 ||
		    (rc = check_keys(c, v, "audit", audit_keys, N(audit_keys))) != 0)
			return rc;
		if (dc_yaml__get(v, "ledger") &&
		    (rc = load_path(c, cfg, dc_yaml__get(v, "ledger"), "audit.ledger",
		                    &cfg->audit.ledger)) != 0)
			return rc;
		if (dc_yaml__get(v, "key") && (rc = load_path(c, cfg, dc_yaml__get(v, "key"),
		                                              "audit.key", &cfg->audit.key)) != 0)
			return rc;
	}

	/* rules across keys */
	if (cfg->engine == DC_ENGINE_POSTGRES && cfg->nshards == 0) {
		if (shards)
			return fail(c, shards,
			            "shards: engine 'postgres' needs at least one shard");
		return fail(c, engine,
		            "engine: 'postgres' needs at least one shard under 'shards'");
	}
	if (cfg->engine == DC_ENGINE_SQLITE) {
		const dc_yaml_node *model = dc_yaml__get(tenancy, "model");

		if (cfg->tenancy.model != DC_TENANCY_DATABASE)
			return fail(
			        c, model,
			        "tenancy.model: engine 'sqlite' supports only 'database' (one file per tenant)");
		if (!cfg->tenancy.glob && cfg->tenancy.nlist == 0) {
			if (tenancy)
				return fail(c, tenancy,
				            "tenancy: engine 'sqlite' needs 'glob' or 'list'");
			if (engine)
				return fail(
				        c, engine,
				        "engine: 'sqlite' needs 'tenancy' with 'glob' or 'list'");
			return fail(
			        c, root,
			        "missing required key 'tenancy' (engine 'sqlite' needs 'glob' or 'list')");
		}
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Public API.                                                              */

static void wipe_free(char *s)
{
	if (s) {
		sodium_memzero(s, strlen(s));
		free(s);
	}
}

void dc_config_free(dc_config *cfg)
{
	size_t i, j;

	if (!cfg)
		return;
	free(cfg->path);
	free(cfg->dir);
	free(cfg->migrations);
	free(cfg->tenancy.glob);
	free(cfg->tenancy.pattern);
	free(cfg->tenancy.query);
	for (i = 0; i < cfg->tenancy.nlist; i++)
		free(cfg->tenancy.list[i]);
	free(cfg->tenancy.list);
	for (i = 0; i < cfg->nshards; i++) {
		dc_shard_config *sh = &cfg->shards[i];

		free(sh->name);
		wipe_free(sh->primary);
		for (j = 0; j < sh->nreplicas; j++)
			wipe_free(sh->replicas[j]);
		free(sh->replicas);
	}
	free(cfg->shards);
	free(cfg->rollout.waves);
	for (i = 0; i < cfg->lint.nrules; i++)
		free(cfg->lint.rules[i].rule);
	free(cfg->lint.rules);
	free(cfg->audit.ledger);
	free(cfg->audit.key);
	free(cfg);
}

int dc_config_parse(dc_config **out, const char *path, const char *text, size_t len, dc_error *err)
{
	ctx c = { path, text, len, err };
	dc_config *cfg = NULL;
	dc_yaml_node *root = NULL;
	dc_yaml_problem why;
	const char *nul;
	size_t bad = 0;
	int rc = 0;

	*out = NULL;
	if (!text && len > 0)
		return dc_error_set(err, DC_EINVAL, "no configuration text");
	if (len > DC_CONFIG_MAX_BYTES) {
		rc = dc_error_set_at(err, DC_ECONFIG, path, 0, 0,
		                     "configuration is larger than %d bytes", DC_CONFIG_MAX_BYTES);
		goto out;
	}
	nul = len ? memchr(text, '\0', len) : NULL;
	if (!dc_utf8_valid(text ? text : "", len, &bad) || nul) {
		int line = 1, col = 1;
		size_t i, at = nul && (size_t)(nul - text) < bad ? (size_t)(nul - text) : bad;

		for (i = 0; i < at && i < len; i++) {
			if (text[i] == '\n') {
				line++;
				col = 1;
			} else if (((unsigned char)text[i] & 0xc0) != 0x80) {
				col++;
			}
		}
		rc = fail_at(&c, line, col, "%s",
		             nul && (size_t)(nul - text) == at ? "the file contains a NUL byte"
		                                               : "the file is not valid UTF-8");
		goto out;
	}
	cfg = calloc(1, sizeof(*cfg));
	if (!cfg) {
		rc = dc_error_set(err, DC_ENOMEM, "out of memory");
		goto out;
	}
	cfg->path = path ? dc_strdup(path) : NULL;
	cfg->dir = path ? dc_path_dirname(path) : dc_strdup(".");
	if ((path && !cfg->path) || !cfg->dir || set_defaults(cfg) != 0) {
		rc = dc_error_set(err, DC_ENOMEM, "out of memory");
		goto out;
	}
	c.text = text ? text : "";
	rc = dc_yaml__parse(&root, c.text, len, &why);
	if (rc == DC_EPARSE)
		rc = fail_at(&c, why.line, why.col, "%s%s", why.syntax ? "syntax error: " : "",
		             why.msg);
	else if (rc != 0)
		rc = dc_error_set(err, rc, "out of memory");
	if (rc != 0)
		goto out;
	if ((rc = load_root(&c, cfg, root)) != 0)
		goto out;
	*out = cfg;
	cfg = NULL;
out:
	dc_yaml__free(root);
	dc_config_free(cfg);
	return rc;
}

int dc_config_load(dc_config **out, const char *path, dc_error *err)
{
	dc_error ferr = { 0 };
	char *text = NULL;
	size_t len = 0;
	int rc;

	*out = NULL;
	/* one byte over the limit is enough to know it is too large */
	rc = dc_file_read(&text, &len, path, (size_t)DC_CONFIG_MAX_BYTES + 1, &ferr);
	if (rc == DC_ELIMIT)
		rc = dc_error_set_at(err, DC_ECONFIG, path, 0, 0,
		                     "configuration is larger than %d bytes", DC_CONFIG_MAX_BYTES);
	else if (rc != 0)
		rc = dc_error_set_at(err, rc, path, 0, 0, "%s", ferr.message);
	else
		rc = dc_config_parse(out, path, text, len, err);
	free(text);
	return rc;
}
