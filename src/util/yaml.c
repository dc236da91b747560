/*
 * yaml.c — YAML text → a tree of dc_yaml_node with positions
 * (yaml_internal.h).
 *
 * libfyaml 0.7.12 has no public start mark for mapping and sequence nodes of
 * its document tree, so we read its event stream instead and build a small
 * tree of our own in which every node carries its 1-based line and column.
 * That also lets us detect duplicate keys ourselves (with the key in the
 * message) and refuse aliases, which would otherwise allow a tiny file to
 * expand into a huge one.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libfyaml.h>
#include <sodium.h>

#include "util/array.h"
#include "yaml_internal.h"

struct reader {
	const char *text;
	size_t len;
	dc_yaml_problem *why;
	struct fy_parser *fyp;
	struct fy_diag *diag;
	dc_yaml_node *stack[DC_YAML_MAX_DEPTH];
	int depth;
	int ndocs;
	dc_yaml_node *root;
};

static int problem(struct reader *r, bool syntax, int line, int col, const char *fmt, ...)
        DC_PRINTF(5, 6);

static int problem(struct reader *r, bool syntax, int line, int col, const char *fmt, ...)
{
	va_list ap;

	r->why->line = line;
	r->why->col = col;
	r->why->syntax = syntax;
	va_start(ap, fmt);
	vsnprintf(r->why->msg, sizeof(r->why->msg), fmt, ap);
	va_end(ap);
	return DC_EPARSE;
}

const char *dc_yaml__kind_name(const dc_yaml_node *n)
{
	if (n->kind == DC_YAML_MAP)
		return "a mapping";
	if (n->kind == DC_YAML_SEQ)
		return "a sequence";
	if (n->kind == DC_YAML_ALIAS)
		return "an alias";
	return n->null ? "an empty value" : "a scalar";
}

/* ------------------------------------------------------------------------ */
/* The tree.                                                                */

void dc_yaml__free(dc_yaml_node *n)
{
	size_t i;

	if (!n)
		return;
	for (i = 0; i < n->nkids; i++)
		dc_yaml__free(n->kids[i]);
	free(n->kids);
	if (n->text) {
		sodium_memzero(n->text, n->len);
		free(n->text);
	}
	free(n);
}

static int ynode_push(dc_yaml_node *parent, dc_yaml_node *kid)
{
	if (parent->nkids == parent->alloc &&
	    dc_array_grow(&parent->kids, &parent->alloc, sizeof(*parent->kids), 8) != 0)
		return DC_ENOMEM;
	parent->kids[parent->nkids++] = kid;
	/* an empty value has no mark of its own: point at its key, or its parent */
	if (kid->line == 0) {
		const dc_yaml_node *at = parent->kind == DC_YAML_MAP && parent->nkids % 2 == 0
		                                 ? parent->kids[parent->nkids - 2]
		                                 : parent;

		kid->line = at->line;
		kid->col = at->col;
	}
	return 0;
}

static bool scalar_is_null(const char *s, size_t len, enum fy_scalar_style style)
{
	if (style != FYSS_PLAIN)
		return false;
	return len == 0 || (len == 1 && s[0] == '~') ||
	       (len == 4 &&
	        (!memcmp(s, "null", 4) || !memcmp(s, "Null", 4) || !memcmp(s, "NULL", 4)));
}

/*
 * The value of a single-quoted scalar from its source text (between the
 * quotes). libfyaml 0.7.12 gets runs of '' escapes wrong ('x''''y' reads as
 * x'''y) and leaks memory on them, so we unescape and fold ourselves: ''
 * is ', and line breaks fold as in any flow scalar (one break is a space,
 * n breaks are n-1 newlines, blanks around breaks are dropped).
 */
static int single_quoted(const char *raw, size_t len, char **out, size_t *outlen)
{
	dc_strbuf sb = DC_STRBUF_INIT;
	size_t i = 0, line_start = 0;

	while (i < len) {
		char ch = raw[i];

		if (ch == '\'' && i + 1 < len && raw[i + 1] == '\'') {
			dc_strbuf_addch(&sb, '\'');
			i += 2;
		} else if (ch == '\n' || ch == '\r') {
			size_t breaks = 0;

			while (sb.len > line_start &&
			       (sb.buf[sb.len - 1] == ' ' || sb.buf[sb.len - 1] == '\t'))
				dc_strbuf_setlen(&sb, sb.len - 1);
			for (; i < len && (raw[i] == ' ' || raw[i] == '\t' || raw[i] == '\r' ||
			                   raw[i] == '\n');
			     i++) {
				if (raw[i] == '\n' ||
				    (raw[i] == '\r' && (i + 1 == len || raw[i + 1] != '\n')))
					breaks++;
			}
			if (breaks == 1)
				dc_strbuf_addch(&sb, ' ');
			for (; breaks > 1; breaks--)
				dc_strbuf_addch(&sb, '\n');
			line_start = sb.len;
		} else {
			dc_strbuf_addch(&sb, ch);
			i++;
		}
	}
	*outlen = sb.len;
	*out = dc_strbuf_detach(&sb, NULL);
	return *out ? 0 : DC_ENOMEM;
}

/*
 * libfyaml marks a quoted scalar at its first character inside the quotes
 * and an alias at its name; point at the quote or the '*' instead.
 */
static void back_to(const struct reader *r, dc_yaml_node *n, const struct fy_mark *sm, char ch)
{
	if (sm && sm->input_pos > 0 && sm->input_pos <= r->len &&
	    r->text[sm->input_pos - 1] == ch && n->col > 1) {
		n->col--;
		if (n->has_span)
			n->pos--;
	}
}

static int syntax_error(struct reader *r)
{
	struct fy_diag_error *e;
	void *it = NULL;

	while ((e = fy_diag_errors_iterate(r->diag, &it)) != NULL) {
		if (e->type < FYET_ERROR)
			continue;
		/* libfyaml's collected positions are already 1-based */
		return problem(r, true, e->line > 0 ? e->line : 1, e->column > 0 ? e->column : 1,
		               "%s", e->msg ? e->msg : "invalid YAML");
	}
	return problem(r, true, 1, 1, "invalid YAML");
}

static dc_yaml_style style_of(enum fy_scalar_style st)
{
	switch (st) {
	case FYSS_SINGLE_QUOTED:
		return DC_YAML_SINGLE_QUOTED;
	case FYSS_DOUBLE_QUOTED:
		return DC_YAML_DOUBLE_QUOTED;
	case FYSS_LITERAL:
		return DC_YAML_LITERAL;
	case FYSS_FOLDED:
		return DC_YAML_FOLDED;
	case FYSS_ANY:
	case FYSS_PLAIN:
	default:
		return DC_YAML_PLAIN;
	}
}

/* A scalar event's text, span and style into `n`: 0 or DC_ENOMEM. */
static int read_scalar(struct reader *r,
                       dc_yaml_node *n,
                       struct fy_event *fye,
                       const struct fy_mark *sm,
                       const struct fy_mark *em)
{
	enum fy_scalar_style st = fy_token_scalar_style(fye->scalar.value);
	int rc;

	n->kind = DC_YAML_SCALAR;
	n->style = style_of(st);
	if (sm && em && em->input_pos >= sm->input_pos && em->input_pos <= r->len) {
		n->pos = sm->input_pos;
		n->end = em->input_pos;
		n->has_span = true;
	}
	if (st == FYSS_SINGLE_QUOTED && n->has_span && n->pos > 0 && n->end < r->len &&
	    r->text[n->pos - 1] == '\'' && r->text[n->end] == '\'') {
		rc = single_quoted(r->text + n->pos, n->end - n->pos, &n->text, &n->len);
	} else {
		size_t len = 0;
		const char *t = fy_token_get_text(fye->scalar.value, &len);

		n->text = dc_strndup(t ? t : "", t ? len : 0);
		/* dc_strndup copies a NUL too: keep the true length to refuse it */
		n->len = t ? len : 0;
		rc = n->text ? 0 : DC_ENOMEM;
	}
	if (rc != 0)
		return DC_ENOMEM;
	n->null = scalar_is_null(n->text, n->len, st);
	if (st == FYSS_SINGLE_QUOTED || st == FYSS_DOUBLE_QUOTED)
		back_to(r, n, sm, st == FYSS_SINGLE_QUOTED ? '\'' : '"');
	return 0;
}

/* A node event: a new node, attached to the tree (which then owns it). */
static int add_node(struct reader *r, struct fy_event *fye)
{
	const struct fy_mark *sm = fy_event_start_mark(fye), *em = fy_event_end_mark(fye);
	dc_yaml_node *n = calloc(1, sizeof(*n));
	int rc = 0;

	if (!n)
		return DC_ENOMEM;
	if (sm) {
		n->line = sm->line + 1;
		n->col = sm->column + 1;
	}
	if (fye->type == FYET_MAPPING_START)
		n->kind = DC_YAML_MAP;
	else if (fye->type == FYET_SEQUENCE_START)
		n->kind = DC_YAML_SEQ;
	else if (fye->type == FYET_ALIAS)
		n->kind = DC_YAML_ALIAS;
	else if ((rc = read_scalar(r, n, fye, sm, em)) != 0)
		goto out;
	if (n->kind == DC_YAML_ALIAS)
		back_to(r, n, sm, '*');
	if (r->depth == 0) {
		if (n->line == 0) {
			n->line = 1;
			n->col = 1;
		}
		r->root = n;
	} else if ((rc = ynode_push(r->stack[r->depth - 1], n)) != 0) {
		goto out;
	}
	/* attached: the tree owns it now */
	if (n->kind == DC_YAML_MAP || n->kind == DC_YAML_SEQ) {
		if (r->depth == DC_YAML_MAX_DEPTH) {
			n = NULL;
			rc = problem(r, false, sm ? sm->line + 1 : 1, sm ? sm->column + 1 : 1,
			             "nesting deeper than %d levels", DC_YAML_MAX_DEPTH);
			goto out;
		}
		r->stack[r->depth++] = n;
	}
	n = NULL;
out:
	dc_yaml__free(n); /* created but not attached */
	return rc;
}

/* One event: 0 to go on, 1 at the end of the stream, or an error. */
static int read_event(struct reader *r)
{
	struct fy_event *fye = fy_parser_parse(r->fyp);
	const struct fy_mark *sm;
	int rc = 0;

	if (!fye)
		return fy_parser_get_stream_error(r->fyp) ? syntax_error(r) : 1;
	sm = fy_event_start_mark(fye);
	switch (fye->type) {
	case FYET_DOCUMENT_START:
		if (++r->ndocs > 1)
			rc = problem(r, false, sm ? sm->line + 1 : 1, sm ? sm->column + 1 : 1,
			             "only one YAML document is allowed");
		break;
	case FYET_MAPPING_START:
	case FYET_SEQUENCE_START:
	case FYET_SCALAR:
	case FYET_ALIAS:
		rc = add_node(r, fye);
		break;
	case FYET_MAPPING_END:
	case FYET_SEQUENCE_END:
		if (r->depth > 0)
			r->depth--;
		break;
	case FYET_NONE:
	case FYET_STREAM_START:
	case FYET_STREAM_END:
	case FYET_DOCUMENT_END:
	default:
		break;
	}
	fy_parser_event_free(r->fyp, fye);
	return rc;
}

int dc_yaml__parse(dc_yaml_node **rootp, const char *text, size_t len, dc_yaml_problem *why)
{
	struct fy_diag_cfg dcfg;
	struct fy_parse_cfg pcfg;
	struct reader r;
	int rc = 0;

	*rootp = NULL;
	memset(&r, 0, sizeof(r));
	r.text = text ? text : "";
	r.len = len;
	r.why = why;
	/* collect diagnostics instead of printing them: library code never prints */
	fy_diag_cfg_default(&dcfg);
	dcfg.fp = NULL;
	dcfg.output_fn = NULL;
	dcfg.colorize = false;
	r.diag = fy_diag_create(&dcfg);
	if (!r.diag) {
		rc = DC_ENOMEM;
		goto out;
	}
	fy_diag_set_collect_errors(r.diag, true);
	memset(&pcfg, 0, sizeof(pcfg));
	/* a combination of flags is no named enumerator: say so to -Wassign-enum */
	pcfg.flags = (enum fy_parse_cfg_flags)(FYPCF_QUIET | FYPCF_COLLECT_DIAG | FYPCF_JSON_NONE);
	pcfg.diag = r.diag;
	r.fyp = fy_parser_create(&pcfg);
	if (!r.fyp || fy_parser_set_string(r.fyp, r.text, r.len) != 0) {
		rc = DC_ENOMEM;
		goto out;
	}
	while ((rc = read_event(&r)) == 0)
		;
	if (rc == 1)
		rc = 0;
out:
	if (r.fyp)
		fy_parser_destroy(r.fyp);
	if (r.diag)
		fy_diag_destroy(r.diag);
	if (rc == 0)
		*rootp = r.root;
	else
		dc_yaml__free(r.root);
	return rc;
}

bool dc_yaml__is(const dc_yaml_node *n, const char *s)
{
	size_t len = strlen(s);

	return n && n->kind == DC_YAML_SCALAR && n->len == len && memcmp(n->text, s, len) == 0;
}

const dc_yaml_node *dc_yaml__get(const dc_yaml_node *m, const char *key)
{
	size_t i;

	for (i = 0; m && i + 1 < m->nkids; i += 2)
		if (!strcmp(m->kids[i]->text, key))
			return m->kids[i + 1];
	return NULL;
}

dc_yaml_key_check dc_yaml__check_keys(const dc_yaml_node *m,
                                      const char *const *known,
                                      size_t nknown,
                                      const dc_yaml_node **bad,
                                      const dc_yaml_node **first)
{
	size_t i, j, k;

	for (i = 0; i + 1 < m->nkids; i += 2) {
		const dc_yaml_node *key = m->kids[i];
		bool ok = false;

		*bad = key;
		if (key->kind != DC_YAML_SCALAR || key->null)
			return DC_YAML_KEY_NOT_STRING;
		for (j = 0; j < i; j += 2) {
			const dc_yaml_node *prev = m->kids[j];

			if (prev->len == key->len && !memcmp(prev->text, key->text, key->len)) {
				*first = prev;
				return DC_YAML_KEY_DUPLICATE;
			}
		}
		for (k = 0; k < nknown && !ok; k++)
			ok = strlen(known[k]) == key->len && !memcmp(known[k], key->text, key->len);
		if (!ok)
			return DC_YAML_KEY_UNKNOWN;
	}
	*bad = NULL;
	return DC_YAML_KEYS_OK;
}

const char *dc_yaml__suggest_key(const dc_yaml_node *key, const char *const *known, size_t nknown)
{
	if (key->kind != DC_YAML_SCALAR || memchr(key->text, '\0', key->len))
		return NULL;
	return dc_suggest(key->text, known, nknown);
}
