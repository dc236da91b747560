/*
 * rls.c -- DC506: a statement that weakens a table's row-level security
 * (DISABLE or NO FORCE ROW LEVEL SECURITY, DROP POLICY) and is not made
 * good later in the migration. What counts, and what makes it good, is
 * ../rls.c's, which the `rls` gate asks too: the gate refuses the same
 * statements under row tenancy with tenancy.column set.
 *
 * A weakening is reported when it is seen and its finding switched off when
 * a later statement makes it good (DC207's exemption does the same): the
 * open weakenings carry their finding's index + 1 as the tracker's tag, or
 * `silenced` when no finding was added (an ignore comment).
 */
#include "../rls.h"

#include <stdint.h>
#include <stdlib.h>

#include "../lint_internal.h"

static const char silenced;

/* The finding just added for rule DC506, as a tag; `silenced` when none was. */
static const void *last_finding(const lint *l, size_t before)
{
	if (l->out->len > before && l->out->items[l->out->len - 1].rule == dc_lint__rule(R_RLS))
		return (const void *)(uintptr_t)l->out->len;
	return &silenced;
}

void dc_lint__rls(lint *l, const PgQuery__Node *n)
{
	const void *before[DC_RLS_MAX_OPEN];
	dc_rls_tracker *t = l->rls;
	dc_error err = { 0 };
	char why[400];
	size_t i, k, nbefore, len;

	if (!t && !(t = l->rls = calloc(1, sizeof(*t)))) {
		l->failed = DC_ENOMEM;
		return;
	}
	nbefore = t->nopen;
	for (i = 0; i < nbefore; i++)
		before[i] = t->open[i].tag;
	if (dc_analysis__rls_node(t, n, -1, NULL, &err) != 0) {
		dc_lint__emit(l, R_RLS, NULL, "%s", err.message);
		return;
	}
	/* made good: the finding of each weakening that closed goes */
	for (i = 0; i < nbefore; i++) {
		for (k = 0; k < t->nopen && t->open[k].tag != before[i]; k++)
			;
		if (k == t->nopen && before[i] != &silenced)
			l->out->items[(uintptr_t)before[i] - 1].severity = DC_SEV_OFF;
	}
	/* opened by this statement: untagged */
	for (k = 0; k < t->nopen; k++) {
		dc_rls_weakening *w = &t->open[k];

		if (w->tag)
			continue;
		dc_analysis__rls_describe(w, why, sizeof(why));
		len = l->out->len;
		if (w->loc >= 0)
			dc_lint__emit_at(l, R_RLS, dc_lint__at(l, w->loc), NULL, "%s", why);
		else
			dc_lint__emit(l, R_RLS, NULL, "%s", why);
		w->tag = last_finding(l, len);
	}
}

void dc_lint__rls_reset(lint *l)
{
	if (l->rls)
		l->rls->nopen = 0;
}
