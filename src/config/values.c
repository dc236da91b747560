/*
 * values.c — one value of deployclaw.yaml: its type, its range, ${VAR}
 * expansion, and a message naming the key path and line:col when it is
 * wrong.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "config_internal.h"

/* ------------------------------------------------------------------------ */
/* Errors.                                                                  */

int dc_config__fail_at(ctx *c, int line, int col, const char *fmt, ...)
{
	char msg[sizeof(((dc_error *)0)->message)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return dc_error_set_at(c->err, DC_ECONFIG, c->file, line, col, "%s", msg);
}

const char *dc_config__shown(char *out, size_t size, const char *s, size_t len)
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
			rc = dc_config__fail_at(
			        c, line, col,
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
			rc = dc_config__fail_at(
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
			rc = dc_config__fail_at(
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
int dc_config__get_str(ctx *c, const dc_yaml_node *n, const char *path, char **out)
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

int dc_config__get_nonempty(ctx *c, const dc_yaml_node *n, const char *path, char **out)
{
	int rc = dc_config__get_str(c, n, path, out);

	if (rc == 0 && !(*out)[0]) {
		free(*out);
		*out = NULL;
		rc = fail(c, n, "%s: must not be empty", path);
	}
	return rc;
}

static size_t count_char(const char *s, char ch)
{
	size_t n = 0;

	for (; *s; s++)
		n += *s == ch;
	return n;
}

int dc_config__get_run_as(ctx *c, const dc_yaml_node *n, char **out)
{
	int rc = dc_config__get_nonempty(c, n, "tenancy.run_as", out);
	char shown[64];

	if (rc != 0 || strcmp(*out, "owner") == 0)
		return rc;
	/* one placeholder, one syntax: another brace is a typo ({tenant_id},
	 * {tenant}_{tenant}), not a role name anyone means */
	if (strstr(*out, DC_RUN_AS_TENANT) && count_char(*out, '{') == 1 &&
	    count_char(*out, '}') == 1)
		return 0;
	rc = fail(c, n,
	          "tenancy.run_as: '%s' is neither 'owner' nor a role name holding "
	          "'" DC_RUN_AS_TENANT "' once (for example '" DC_RUN_AS_TENANT "_owner')",
	          dc_config__shown(shown, sizeof(shown), *out, strlen(*out)));
	free(*out);
	*out = NULL;
	return rc;
}

/* PostgreSQL keeps NAMEDATALEN - 1 bytes of a name and truncates the rest: a
 * longer configured name would never equal the catalog's. */
#define PG_NAME_MAX 63

int dc_config__get_pg_name(ctx *c, const dc_yaml_node *n, const char *path, char **out)
{
	int rc = dc_config__get_nonempty(c, n, path, out);

	if (rc == 0 && strlen(*out) > PG_NAME_MAX) {
		free(*out);
		*out = NULL;
		rc = fail(c, n, "%s: longer than %d bytes, PostgreSQL's limit for a name", path,
		          PG_NAME_MAX);
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

int dc_config__get_int(ctx *c,
                       const dc_yaml_node *n,
                       const char *path,
                       int64_t min,
                       int64_t max,
                       int *out)
{
	char *s = NULL, buf[80];
	int64_t v = 0;
	int rc;

	if ((rc = dc_config__get_str(c, n, path, &s)) != 0)
		goto out;
	if (parse_int(s, &v) != 0) {
		rc = fail(c, n, "%s: expected an integer, got '%s'", path,
		          dc_config__shown(buf, sizeof(buf), s, strlen(s)));
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

int dc_config__get_bool(ctx *c, const dc_yaml_node *n, const char *path, bool *out)
{
	char *s = NULL, buf[80];
	int rc;

	if ((rc = dc_config__get_str(c, n, path, &s)) != 0)
		goto out;
	if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"))
		*out = true;
	else if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))
		*out = false;
	else
		rc = fail(c, n, "%s: expected true or false, got '%s'", path,
		          dc_config__shown(buf, sizeof(buf), s, strlen(s)));
out:
	free(s);
	return rc;
}

/* A consistency check's scope: true or changed, full, false. */
int dc_config__get_check_scope(ctx *c, const dc_yaml_node *n, const char *path, dc_check_scope *out)
{
	char *s = NULL, buf[80];
	int rc;

	if ((rc = dc_config__get_str(c, n, path, &s)) != 0)
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
		        path, dc_config__shown(buf, sizeof(buf), s, strlen(s)));
out:
	free(s);
	return rc;
}

int dc_config__get_duration(ctx *c, const dc_yaml_node *n, const char *path, int64_t *out)
{
	char *s = NULL, buf[80];
	int64_t ms = 0;
	int rc;

	if ((rc = dc_config__get_str(c, n, path, &s)) != 0)
		goto out;
	if (dc_duration_parse(s, &ms) != 0) {
		rc = fail(
		        c, n,
		        "%s: invalid duration '%s' (expected a number and a unit: 500ms, 2s, 5m, 1h)",
		        path, dc_config__shown(buf, sizeof(buf), s, strlen(s)));
		goto out;
	}
	if (ms > MAX_DURATION_MS) {
		rc = fail(c, n, "%s: duration '%s' is out of range (at most 2147483647ms)", path,
		          dc_config__shown(buf, sizeof(buf), s, strlen(s)));
		goto out;
	}
	*out = ms;
out:
	free(s);
	return rc;
}

/* A count (min_count..MAX_COUNT) or a percentage (1%..100%). */
int dc_config__get_amount(ctx *c,
                          const dc_yaml_node *n,
                          const char *path,
                          int64_t min_count,
                          dc_amount *out)
{
	char *s = NULL, buf[80];
	size_t len;
	int64_t v = 0;
	int rc;

	if ((rc = dc_config__get_str(c, n, path, &s)) != 0)
		goto out;
	len = strlen(s);
	dc_config__shown(buf, sizeof(buf), s, len);
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
int dc_config__get_enum(ctx *c,
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

	if ((rc = dc_config__get_str(c, n, path, &s)) != 0)
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
		          dc_config__shown(buf, sizeof(buf), s, strlen(s)), hint);
	else
		rc = fail(c, n, "%s: unknown value '%s' (expected %s)", path,
		          dc_config__shown(buf, sizeof(buf), s, strlen(s)), expected);
out:
	free(s);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* Mappings and sequences.                                                  */

/* Empty values stand for "not given" where a mapping or sequence is expected. */
const dc_yaml_node *dc_config__present(const dc_yaml_node *n)
{
	return n && !(n->kind == DC_YAML_SCALAR && n->null) ? n : NULL;
}

int dc_config__expect(ctx *c, const dc_yaml_node *n, const char *path, dc_yaml_kind kind)
{
	if (n->kind == kind)
		return 0;
	if (n->kind == DC_YAML_ALIAS)
		return fail(c, n, "%s: aliases are not supported", path);
	return fail(c, n, "%s: expected %s, got %s", path,
	            kind == DC_YAML_MAP ? "a mapping" : "a sequence", dc_yaml__kind_name(n));
}

/* Every key of mapping `m` a string, known, and given once (dc_yaml__check_keys). */
int dc_config__check_keys(ctx *c,
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
	dc_config__shown(buf, sizeof(buf), key->text, key->len);
	join_path(kp, sizeof(kp), path, buf);
	if (first)
		return fail(c, key, "%s: duplicate key (first at line %d, column %d)", kp,
		            first->line, first->col);
	hint = dc_yaml__suggest_key(key, keys, nkeys);
	if (hint)
		return fail(c, key, "%s: unknown key (did you mean '%s'?)", kp, hint);
	return fail(c, key, "%s: unknown key", kp);
}

int dc_config__get_str_list(ctx *c,
                            const dc_yaml_node *seq,
                            const char *path,
                            size_t max,
                            char ***out,
                            size_t *nout)
{
	char ip[512];
	size_t i;
	int rc;

	if ((rc = dc_config__expect(c, seq, path, DC_YAML_SEQ)) != 0)
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
		if ((rc = dc_config__get_nonempty(c, seq->kids[i], ip, &(*out)[i])) != 0)
			return rc;
		(*nout)++;
	}
	return 0;
}
