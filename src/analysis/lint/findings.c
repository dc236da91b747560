/*
 * findings.c -- reporting: positions in the text, the findings a rule
 * reports at its configured severity, and the public finding list.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "../lint_internal.h"
#include "util/array.h"
#include "util/text.h"

void dc_lint__pos_of(lint *l, size_t off, int *line, int *col)
{
	if (!l->exact) {
		if (l->stmts && l->stmt_i < l->nstmts) {
			*line = l->stmts[l->stmt_i].line;
			*col = l->stmts[l->stmt_i].col;
		} else {
			*line = l->line0;
			*col = l->col0;
		}
		return;
	}
	if (off > l->textlen)
		off = l->textlen;
	if (off < l->cur_off) {
		l->cur_off = 0;
		l->cur_line = l->line0;
		l->cur_col = l->col0;
	}
	dc_text_advance(l->text + l->cur_off, off - l->cur_off, &l->cur_line, &l->cur_col);
	l->cur_off = off;
	*line = l->cur_line;
	*col = l->cur_col;
}

static char *source_line(const lint *l, size_t off)
{
	size_t s = off, e = off;

	if (!l->exact || off > l->textlen)
		return NULL;
	while (s > 0 && l->text[s - 1] != '\n')
		s--;
	while (e < l->textlen && l->text[e] != '\n' && l->text[e] != '\r')
		e++;
	return dc_strndup(l->text + s, e - s);
}

static dc_finding *push_finding(lint *l)
{
	dc_finding_list *fl = l->out;

	if (fl->len == fl->alloc &&
	    dc_array_grow(&fl->items, &fl->alloc, sizeof(*fl->items), 16) != 0) {
		l->failed = DC_ENOMEM;
		return NULL;
	}
	memset(&fl->items[fl->len], 0, sizeof(dc_finding));
	return &fl->items[fl->len++];
}

static void vemit(lint *l,
                  int rule,
                  dc_severity sev,
                  size_t off,
                  const char *suggestion,
                  const char *fmt,
                  va_list ap) DC_PRINTF(6, 0);

static void vemit(lint *l,
                  int rule,
                  dc_severity sev,
                  size_t off,
                  const char *suggestion,
                  const char *fmt,
                  va_list ap)
{
	dc_strbuf msg = DC_STRBUF_INIT;
	dc_finding *f;

	if (sev == DC_SEV_OFF)
		return;
	if (!(f = push_finding(l)))
		return;
	f->rule = dc_lint__rule(rule);
	f->severity = sev;
	dc_lint__pos_of(l, off, &f->line, &f->col);
	dc_strbuf_vaddf(&msg, fmt, ap);
	f->message = dc_strbuf_detach(&msg, NULL);
	f->file = l->file ? dc_strdup(l->file) : NULL;
	f->suggestion = suggestion ? dc_strdup(suggestion) : NULL;
	f->source = source_line(l, off);
	if (!f->message || (l->file && !f->file) || (suggestion && !f->suggestion))
		l->failed = DC_ENOMEM;
}

void dc_lint__emit_at(lint *l, int rule, size_t off, const char *suggestion, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vemit(l, rule, l->cfg->severity[rule], off, suggestion, fmt, ap);
	va_end(ap);
}

/* A finding at the current statement's start. */

void dc_lint__emit(lint *l, int rule, const char *suggestion, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vemit(l, rule, l->cfg->severity[rule], l->stmt_off, suggestion, fmt, ap);
	va_end(ap);
}

void dc_lint__emit_sev(lint *l, int rule, dc_severity sev, size_t off, const char *fmt, ...)
{
	va_list ap;

	if (l->cfg->severity[rule] == DC_SEV_OFF)
		return;
	if (sev > l->cfg->severity[rule])
		sev = l->cfg->severity[rule];
	va_start(ap, fmt);
	vemit(l, rule, sev, off, NULL, fmt, ap);
	va_end(ap);
}

void dc_finding_list_release(dc_finding_list *fl)
{
	size_t i;

	if (!fl)
		return;
	for (i = 0; i < fl->len; i++) {
		free(fl->items[i].file);
		free(fl->items[i].message);
		free(fl->items[i].suggestion);
		free(fl->items[i].source);
	}
	free(fl->items);
	memset(fl, 0, sizeof(*fl));
}

size_t dc_finding_list_count(const dc_finding_list *fl, dc_severity min)
{
	size_t i, n = 0;

	for (i = 0; fl && i < fl->len; i++)
		if (fl->items[i].severity >= min && fl->items[i].severity != DC_SEV_OFF)
			n++;
	return n;
}

static int finding_cmp(const void *a, const void *b)
{
	const dc_finding *x = a, *y = b;
	int d = strcmp(x->file ? x->file : "", y->file ? y->file : "");

	if (d)
		return d;
	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	if (x->col != y->col)
		return x->col < y->col ? -1 : 1;
	return strcmp(x->rule->id, y->rule->id);
}

void dc_finding_list_sort(dc_finding_list *fl)
{
	if (fl && fl->len > 1)
		qsort(fl->items, fl->len, sizeof(*fl->items), finding_cmp);
}

/* Drops findings marked off (silenced after the fact), keeping order. */
void dc_lint__compact(dc_finding_list *fl, size_t from)
{
	size_t i, o = from;

	for (i = from; i < fl->len; i++) {
		if (fl->items[i].severity == DC_SEV_OFF) {
			free(fl->items[i].file);
			free(fl->items[i].message);
			free(fl->items[i].suggestion);
			free(fl->items[i].source);
			continue;
		}
		fl->items[o++] = fl->items[i];
	}
	fl->len = o;
}

/* The syntax error of a chunk (or of the whole block: base 0). */
void dc_lint__syntax_finding(lint *l, size_t base, const char *message, int cursorpos)
{
	size_t off = base, chars;

	if (cursorpos > 0) {
		chars = (size_t)cursorpos - 1;
		for (; off < l->textlen; off++) {
			if (((unsigned char)l->text[off] & 0xC0) == 0x80)
				continue;
			if (chars == 0)
				break;
			chars--;
		}
	}
	l->stmt_i = 0;
	dc_lint__emit_at(l, R_SYNTAX, off, NULL, "%s", message ? message : "syntax error");
}
