/*
 * plan --safe: the output phases. Statements are added to the last phase
 * when of a mergeable kind, else to a new one; the result is written as a
 * native-YAML migration.
 */
#include <pg_query/pg_query.pb-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pg_query.h>

#include <deployclaw/analysis.h>
#include <deployclaw/rewrite.h>

#include "../analysis_internal.h"
#include "rewrite_internal.h"

/* Most phases a rewrite may produce (each statement yields at most ~10). */
#define MAX_OUT_PHASES 100000

void dc_rewrite__phase_free(void *p)
{
	out_phase *ph = p;

	if (!ph)
		return;
	free(ph->name);
	dc_strbuf_release(&ph->comment);
	dc_strbuf_release(&ph->up);
	dc_ptrvec_release(&ph->downs, free);
	free(ph->down_text);
	free(ph);
}

/* Appends `fmt` as a "# " comment line to `sb`, control characters shown as '?'. */
static void comment_line(dc_strbuf *sb, const char *fmt, va_list ap) DC_PRINTF(2, 0);

static void comment_line(dc_strbuf *sb, const char *fmt, va_list ap)
{
	dc_strbuf line = DC_STRBUF_INIT;
	size_t i;

	dc_strbuf_vaddf(&line, fmt, ap);
	dc_strbuf_adds(sb, "# ");
	for (i = 0; i < line.len; i++) {
		unsigned char ch = (unsigned char)line.buf[i];

		dc_strbuf_addch(sb, ch < 0x20 || ch == 0x7f ? '?' : ch);
	}
	dc_strbuf_addch(sb, '\n');
	if (dc_strbuf_error(&line))
		sb->failed = DC_ENOMEM;
	dc_strbuf_release(&line);
}

void dc_rewrite__note(rw *r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	comment_line(&r->pending, fmt, ap);
	va_end(ap);
}

/* The notes for the next statement go above phase `p`, which receives it. */
static void take_pending(rw *r, out_phase *p)
{
	if (!r->pending.len)
		return;
	dc_strbuf_add(&p->comment, r->pending.buf, r->pending.len);
	dc_strbuf_reset(&r->pending);
}

static bool phase_name_taken(const rw *r, const char *name)
{
	size_t i;
	const out_phase *p;

	dc_vec_foreach(&r->phases, i, p) {
		if (strcmp(p->name, name) == 0)
			return true;
	}
	return false;
}

out_phase *dc_rewrite__phase_new(rw *r, int kind, const char *hint)
{
	out_phase *p = NULL;
	dc_strbuf name = DC_STRBUF_INIT;
	unsigned n = 1;

	if (r->phases.len >= MAX_OUT_PHASES) {
		dc_error_set(r->err, DC_ELIMIT, "the rewrite needs more than %d phases",
		             MAX_OUT_PHASES);
		return NULL;
	}
	dc_strbuf_adds(&name, hint);
	while (!dc_strbuf_error(&name) && phase_name_taken(r, name.buf)) {
		dc_strbuf_reset(&name);
		dc_strbuf_addf(&name, "%s_%u", hint, ++n);
	}
	if (!(p = calloc(1, sizeof(*p))) || dc_strbuf_error(&name))
		goto fail;
	p->kind = kind;
	dc_strbuf_init(&p->comment, 0);
	dc_strbuf_init(&p->up, 0);
	p->transactional = kind == K_DDL || kind == K_VALIDATE;
	if (kind == K_BATCH)
		p->batch_rows = DC_REWRITE_BATCH_ROWS;
	if (!(p->name = dc_strbuf_detach(&name, NULL)) || dc_ptrvec_push(&r->phases, p) != 0)
		goto fail;
	take_pending(r, p);
	return p;
fail:
	dc_strbuf_release(&name);
	dc_rewrite__phase_free(p);
	dc_rewrite__oom(r);
	return NULL;
}

/* Parses generated SQL again: a statement that does not parse is a bug here. */
static int check_sql(rw *r, const char *sql)
{
	PgQueryProtobufParseResult res = pg_query_parse_protobuf(sql);
	int rc = 0;

	if (res.error)
		rc = dc_error_set(
		        r->err, DC_EINVAL,
		        "internal error: rewritten statement does not parse (%s): '%.300s'",
		        res.error->message, sql);
	pg_query_free_protobuf_parse_result(res);
	return rc;
}

/*
 * Adds statement `up` (and `down`, its inverse, may be NULL) to the last
 * phase when it is of the same mergeable kind, else to a new phase named
 * after `hint`. `generated`: parse both again first.
 */
int dc_rewrite__emit_sql(rw *r,
                         int kind,
                         const char *hint,
                         const char *up,
                         const char *down,
                         bool generated)
{
	out_phase *p = r->phases.len ? r->phases.items[r->phases.len - 1] : NULL;
	char *d = NULL;
	int rc;

	if (generated && ((rc = check_sql(r, up)) != 0 || (down && (rc = check_sql(r, down)) != 0)))
		return rc;
	if (!p || r->fresh || p->kind != kind || (kind != K_DDL && kind != K_VALIDATE)) {
		if (!(p = dc_rewrite__phase_new(r, kind, hint)))
			return r->err && r->err->code ? r->err->code : DC_ENOMEM;
		r->fresh = false;
	} else {
		take_pending(r, p);
	}
	if (r->ignore)
		dc_strbuf_addf(&p->up, "-- deployclaw:ignore %s\n", r->ignore);
	r->ignore = NULL;
	dc_strbuf_adds(&p->up, up);
	dc_strbuf_adds(&p->up, ";\n");
	if (down && (!(d = dc_strdup(down)) || dc_ptrvec_push(&p->downs, d) != 0)) {
		free(d);
		return dc_rewrite__oom(r);
	}
	if (dc_strbuf_error(&p->up))
		return dc_rewrite__oom(r);
	return 0;
}

int dc_rewrite__emit(rw *r, int kind, const char *hint, const dc_strbuf *up, const dc_strbuf *down)
{
	if (dc_strbuf_error(up) || (down && dc_strbuf_error(down)))
		return dc_rewrite__oom(r);
	return dc_rewrite__emit_sql(r, kind, hint, up->buf, down && down->len ? down->buf : NULL,
	                            true);
}

/* Silences lint rule `rule` (static string) for the next emitted statement
 * ("-- deployclaw:ignore <rule>" before it), where the rewrite does on
 * purpose what the rule warns about. */
void dc_rewrite__lint_ignore(rw *r, const char *rule)
{
	r->ignore = rule;
}

/* ------------------------------------------------------------------------ */
/* YAML                                                                     */

static void yaml_quoted(dc_strbuf *sb, const char *s)
{
	dc_strbuf_addch(sb, '"');
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			dc_strbuf_addf(sb, "\\%c", ch);
		else if (ch < 0x20 || ch == 0x7f)
			dc_strbuf_addf(sb, "\\x%02x", ch);
		else
			dc_strbuf_addch(sb, ch);
	}
	dc_strbuf_addch(sb, '"');
}

/* `key: |` and `text` as a literal block indented by `indent` spaces. Leading
 * blank space is dropped so the first line sets the indentation. */
static void yaml_block(dc_strbuf *sb, const char *prefix, const char *text, int indent)
{
	const char *p = text;

	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	dc_strbuf_adds(sb, prefix);
	dc_strbuf_adds(sb, "|\n");
	while (*p) {
		const char *e = strchr(p, '\n');
		size_t len = e ? (size_t)(e - p) : strlen(p);

		if (len)
			dc_strbuf_addf(sb, "%*s", indent, "");
		dc_strbuf_add(sb, p, len);
		dc_strbuf_addch(sb, '\n');
		p += len;
		if (*p == '\n')
			p++;
	}
}

static void write_phase(dc_strbuf *sb, const out_phase *p)
{
	dc_strbuf down = DC_STRBUF_INIT;
	size_t i;

	if (p->comment.len) {
		const char *s = p->comment.buf;

		while (*s) {
			const char *e = strchr(s, '\n');
			size_t len = e ? (size_t)(e - s) : strlen(s);

			dc_strbuf_adds(sb, "  ");
			dc_strbuf_add(sb, s, len);
			dc_strbuf_addch(sb, '\n');
			s += len + (e ? 1 : 0);
		}
	}
	dc_strbuf_adds(sb, "  - name: ");
	yaml_quoted(sb, p->name);
	dc_strbuf_addch(sb, '\n');
	if (!p->transactional)
		dc_strbuf_adds(sb, "    transaction: false\n");
	if (p->batch_rows > 0)
		dc_strbuf_addf(sb, "    batch: { rows: %lld }\n", (long long)p->batch_rows);
	yaml_block(sb, "    up: ", p->kind == K_VERBATIM ? p->up_text : p->up.buf, 6);
	if (p->kind == K_VERBATIM) {
		if (p->down_text)
			yaml_block(sb, "    down: ", p->down_text, 6);
		return;
	}
	for (i = p->downs.len; i > 0; i--) {
		dc_strbuf_adds(&down, p->downs.items[i - 1]);
		dc_strbuf_adds(&down, ";\n");
	}
	if (down.len)
		yaml_block(sb, "    down: ", down.buf, 6);
	if (dc_strbuf_error(&down))
		sb->failed = DC_ENOMEM;
	dc_strbuf_release(&down);
}

int dc_rewrite__write_yaml(rw *r, const char *source, dc_strbuf *out)
{
	const dc_migration *m = r->m;
	const out_phase *p;
	const char *v;
	size_t i;

	dc_strbuf_addf(out,
	               "# deployclaw plan --safe: '%s' in phases that do not block reads or "
	               "writes\n",
	               source);
	dc_strbuf_adds(out, "# (generated; review it, then use it in place of the original)\n");
	dc_strbuf_add(out, r->notes.buf, r->notes.len);
	dc_strbuf_adds(out, "version: ");
	yaml_quoted(out, m->version ? m->version : "");
	dc_strbuf_addch(out, '\n');
	if (m->name) {
		dc_strbuf_adds(out, "name: ");
		yaml_quoted(out, m->name);
		dc_strbuf_addch(out, '\n');
	}
	if (m->audit) {
		dc_strbuf_adds(out, "audit: ");
		yaml_quoted(out, m->audit);
		dc_strbuf_addch(out, '\n');
	}
	dc_strbuf_adds(out, "phases:\n");
	dc_vec_foreach(&r->phases, i, p) {
		write_phase(out, p);
	}
	if (m->nverify || r->verify.len) {
		dc_strbuf_adds(out, "verify:\n");
		for (i = 0; i < m->nverify; i++)
			if (m->verify[i].text)
				yaml_block(out, "  - ", m->verify[i].text, 4);
		dc_vec_foreach(&r->verify, i, v) {
			yaml_block(out, "  - ", v, 4);
		}
	}
	return dc_strbuf_error(out) ? dc_rewrite__oom(r) : 0;
}
