/*
 * ignores.c -- '-- deployclaw:ignore DC101, ...' comments: parsed from the
 * text before a statement, they silence what the statement reported, and
 * those that silence nothing are reported themselves (DC001).
 */
#include <string.h>

#include "../lint_internal.h"

size_t dc_lint__parse_ignores(const char *t, size_t s, size_t e, ignore *ig, size_t max)
{
	static const char tag[] = "deployclaw:ignore";
	size_t n = 0, tl = sizeof(tag) - 1;

	while (s + tl <= e) {
		const char *p = memchr(t + s, 'd', e - s);
		size_t i;

		if (!p)
			break;
		i = (size_t)(p - t);
		if (i + tl > e)
			break;
		if (strncmp(p, tag, tl) != 0) {
			s = i + 1;
			continue;
		}
		i += tl;
		while (i < e && t[i] != '\n' && !(t[i] == '*' && i + 1 < e && t[i + 1] == '/')) {
			size_t b;

			while (i < e && (t[i] == ' ' || t[i] == '\t' || t[i] == ','))
				i++;
			b = i;
			while (i < e && t[i] != ' ' && t[i] != '\t' && t[i] != ',' &&
			       t[i] != '\n' && t[i] != '\r' &&
			       !(t[i] == '*' && i + 1 < e && t[i + 1] == '/'))
				i++;
			if (i > b && n < max) {
				size_t len = i - b < sizeof(ig[n].name) - 1
				                     ? i - b
				                     : sizeof(ig[n].name) - 1;

				memcpy(ig[n].name, t + b, len);
				ig[n].name[len] = '\0';
				ig[n].rule = dc_lint__rule_index(ig[n].name);
				ig[n].off = (size_t)(p - t);
				ig[n].used = false;
				n++;
			}
			while (i < e && (t[i] == '\r'))
				i++;
		}
		s = i;
	}
	return n;
}

void dc_lint__report_unused(lint *l, ignore *ig, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (ig[i].used)
			continue;
		if (ig[i].rule < 0)
			dc_lint__emit_at(l, R_UNUSED_IGNORE, ig[i].off, NULL,
			                 "'deployclaw:ignore %s' names no known rule", ig[i].name);
		else
			dc_lint__emit_at(
			        l, R_UNUSED_IGNORE, ig[i].off, NULL,
			        "'deployclaw:ignore %s' silences nothing: %s does not fire on the next "
			        "statement",
			        ig[i].name, dc_lint__rule(ig[i].rule)->id);
	}
}

/* Silences findings [from, len) that an ignore names. */
void dc_lint__apply_ignores(lint *l, size_t from, ignore *ig, size_t n)
{
	size_t i, k;

	for (i = from; i < l->out->len; i++)
		for (k = 0; k < n; k++)
			if (ig[k].rule >= 0 && l->out->items[i].rule == dc_lint__rule(ig[k].rule) &&
			    l->out->items[i].severity != DC_SEV_OFF) {
				l->out->items[i].severity = DC_SEV_OFF;
				ig[k].used = true;
			}
}
