/*
 * plan.c — what a tenant needs, from its history against the migration set.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rollout_internal.h"
#include "util/util.h"

void dc_rollout__todo_release(dc_rollout__todo *todo)
{
	free(todo->migs);
	memset(todo, 0, sizeof(*todo));
}

static const dc_history_row *find_row(const dc_history_row *rows, size_t n, const char *version)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(rows[i].version, version) == 0)
			return &rows[i];
	return NULL;
}

static bool counts_as_applied(const dc_history_row *row)
{
	return row && (row->status == DC_HISTORY_APPLIED || row->status == DC_HISTORY_PARTIAL);
}

/* Appends to a bounded problem text, "; "-separated. */
static void note(dc_rollout__todo *todo, const char *fmt, ...) DC_PRINTF(2, 3);

static void note(dc_rollout__todo *todo, const char *fmt, ...)
{
	dc_strbuf sb = DC_STRBUF_INIT;
	size_t len = strlen(todo->problem), n;
	va_list ap;

	if (len + 8 >= sizeof(todo->problem))
		return;
	if (len)
		dc_strbuf_adds(&sb, "; ");
	va_start(ap, fmt);
	dc_strbuf_vaddf(&sb, fmt, ap);
	va_end(ap);
	n = sb.len < sizeof(todo->problem) - 1 - len ? sb.len : sizeof(todo->problem) - 1 - len;
	memcpy(todo->problem + len, sb.buf, n);
	todo->problem[len + n] = '\0';
	dc_strbuf_release(&sb);
}

int dc_rollout__todo_compute(dc_rollout__todo *todo,
                             const dc_migration_set *set,
                             const dc_history_row *rows,
                             size_t nrows,
                             dc_rollout_direction dir,
                             const char *to)
{
	return dc_rollout__todo_compute_scope(todo, set, rows, nrows, dir, to, DC_SCOPE_TENANT);
}

int dc_rollout__todo_compute_scope(dc_rollout__todo *todo,
                                   const dc_migration_set *set,
                                   const dc_history_row *rows,
                                   size_t nrows,
                                   dc_rollout_direction dir,
                                   const char *to,
                                   dc_scope scope)
{
	const char *latest = NULL;
	size_t i, k;

	memset(todo, 0, sizeof(*todo));
	/* Latest applied version, drift, and applied versions the set lacks. */
	for (i = 0; i < nrows; i++) {
		const dc_migration *m;

		if (!counts_as_applied(&rows[i]))
			continue;
		if (!latest || dc_version_compare(rows[i].version, latest) > 0)
			latest = rows[i].version;
		if (rows[i].status == DC_HISTORY_PARTIAL)
			todo->partial = true;
		m = dc_migration_set_find(set, rows[i].version);
		if (!m) {
			todo->drift = true;
			note(todo, "version '%s' is applied but not in the migrations folder",
			     rows[i].version);
		} else if (rows[i].checksum && strcmp(rows[i].checksum, m->checksum) != 0) {
			todo->drift = true;
			note(todo,
			     "version '%s' was applied with checksum %.12s…, the file now differs",
			     rows[i].version, rows[i].checksum);
		}
	}
	snprintf(todo->from, sizeof(todo->from), "%s", latest ? latest : "");
	snprintf(todo->to, sizeof(todo->to), "%s", todo->from);
	todo->migs = dc_malloc_array(set->count ? set->count : 1, sizeof(*todo->migs));
	if (!todo->migs)
		return DC_ENOMEM;

	if (dir == DC_ROLLOUT_APPLY) {
		for (i = 0; i < set->count; i++) {
			const dc_migration *m = &set->migrations[i];
			const dc_history_row *row = find_row(rows, nrows, m->version);

			if (to && dc_version_compare(m->version, to) > 0)
				break;
			if (m->scope != scope)
				continue;
			if (row && row->status == DC_HISTORY_APPLIED)
				continue;
			if (row && row->status == DC_HISTORY_PARTIAL) {
				/* resume after the last phase that completed */
				for (k = 0; k < m->nphases; k++)
					if (row->phase &&
					    strcmp(m->phases[k].name, row->phase) == 0)
						break;
				if (todo->n == 0 && k < m->nphases)
					todo->resume_phase = k + 1;
			} else if (latest && dc_version_compare(m->version, latest) < 0) {
				todo->out_of_order = true;
				note(todo, "pending version '%s' is older than applied '%s'",
				     m->version, latest);
			}
			todo->migs[todo->n++] = m;
			snprintf(todo->to, sizeof(todo->to), "%s", m->version);
		}
		return 0;
	}

	/* rollback: applied versions above `to` (or the latest one), newest first */
	for (i = set->count; i-- > 0;) {
		const dc_migration *m = &set->migrations[i];

		if (m->scope != scope || !counts_as_applied(find_row(rows, nrows, m->version)))
			continue;
		if (to ? dc_version_compare(m->version, to) <= 0 : todo->n == 1)
			break;
		todo->migs[todo->n++] = m;
	}
	for (i = 0; i < nrows; i++) {
		if (!counts_as_applied(&rows[i]) || dc_migration_set_find(set, rows[i].version))
			continue;
		if (!to || dc_version_compare(rows[i].version, to) > 0)
			return DC_EINVAL; /* its down is unknown; `problem` already says so */
	}
	/* the version that remains the latest applied after the rollback */
	todo->to[0] = '\0';
	for (i = 0; i < nrows; i++) {
		bool undone = false;

		if (!counts_as_applied(&rows[i]))
			continue;
		for (k = 0; k < todo->n; k++)
			if (strcmp(todo->migs[k]->version, rows[i].version) == 0)
				undone = true;
		if (!undone && (!todo->to[0] || dc_version_compare(rows[i].version, todo->to) > 0))
			snprintf(todo->to, sizeof(todo->to), "%s", rows[i].version);
	}
	return 0;
}
