/*
 * The consistency checks (integrity_check, foreign_key_check) of what a
 * migration wrote, or of the whole file.
 */
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include <sqlite3.h>

#include <deployclaw/engine.h>

#include "sqlite_internal.h"
#include "util/util.h"

/*
 * The checks are plain PRAGMAs: their table-valued forms cost a virtual
 * table and a nested prepare per call, several times the check of a small
 * table. A table's name is quoted with %w (it comes from SQLite itself: the
 * authorizer or table_list), never spliced raw.
 */
#define CHECK_INTEGRITY_ALL "PRAGMA main.integrity_check"
#define CHECK_FK_ALL        "PRAGMA main.foreign_key_check"

/* Runs one check (`fmt` with the quoted `table`, or `fmt` as is) and appends
 * its problems to `out`: integrity_check's rows other than "ok", one line per
 * foreign key violation. `*rows` counts the lines appended. */
static int check_run(dc_conn *c,
                     dc_check_kind kind,
                     const char *fmt,
                     const char *table,
                     dc_strbuf *out,
                     size_t max_rows,
                     size_t *rows,
                     dc_error *err)
{
	sqlite3_stmt *st = NULL;
	char *sql = table ? sqlite3_mprintf(fmt, table) : NULL;
	int ret = 0, rc;

	if (table && !sql)
		return dc_sqlite__fail(c, err, DC_ENOMEM, NULL, 0, 0, "out of memory");
	rc = sqlite3_prepare_v2(c->db, sql ? sql : fmt, -1, &st, NULL);
	while (rc == SQLITE_OK && *rows < max_rows && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *a = (const char *)sqlite3_column_text(st, 0);

		rc = SQLITE_OK;
		if (kind == DC_CHECK_INTEGRITY) {
			if (a && strcmp(a, "ok") == 0)
				continue;
			dc_strbuf_addf(out, "%s\n", a ? a : "");
		} else if (sqlite3_column_type(st, 1) == SQLITE_NULL) {
			dc_strbuf_addf(out, "%s: a row references a missing row of %s\n",
			               a ? a : "?", (const char *)sqlite3_column_text(st, 2));
		} else {
			dc_strbuf_addf(out, "%s: row %lld references a missing row of %s\n",
			               a ? a : "?", (long long)sqlite3_column_int64(st, 1),
			               (const char *)sqlite3_column_text(st, 2));
		}
		(*rows)++;
	}
	if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW)
		ret = dc_sqlite__db_fail(c, err, table);
	else if (dc_strbuf_error(out))
		ret = dc_sqlite__fail(c, err, dc_strbuf_error(out), NULL, 0, 0,
		                      "tenant '%s': check output too large",
		                      dc_sqlite__tenant_id(c));
	sqlite3_finalize(st);
	sqlite3_free(sql);
	return ret;
}

/*
 * Makes c->graph the file's as it stands, with its foreign keys when
 * `edges`: the one held when still valid (read by the prefetch thread, or
 * by an earlier check with no statement run since), else read now.
 */
static int check_graph_ready(dc_conn *c, bool edges, dc_error *err)
{
	const char *what = "foreign_key_list";
	int rc = SQLITE_OK;

	if (c->graph_valid && c->graph_sticky)
		c->graph_used = true;
	else if (!c->graph_valid && !c->graph_taken && !c->schema_changed && c->in_tx &&
	         c->txs == 1)
		c->graph_unwanted = false; /* a prefetched one would have served */
	if (!c->graph_valid) {
		dc_sqlite__graph_drop(c);
		rc = dc_sqlite__graph_load(c->db, edges, &c->graph, &what);
	} else if (edges && !c->graph.edges) {
		rc = dc_sqlite__graph_edges(c->db, &c->graph);
	}
	if (rc == SQLITE_OK) {
		c->graph_valid = true;
		return 0;
	}
	dc_sqlite__graph_drop(c);
	return rc == SQLITE_NOMEM ? dc_sqlite__fail(c, err, DC_ENOMEM, NULL, 0, 0, "out of memory")
	                          : dc_sqlite__db_fail(c, err, what);
}

static check_table *find_table(check_table *t, size_t n, const char *name)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcasecmp(t[i].name, name) == 0)
			return &t[i];
	return NULL;
}

/*
 * Marks the written tables in `t`. `*full` when one is gone without having
 * been dropped (renamed away: its new name is unknown) or is virtual (its
 * module writes shadow tables the authorizer does not see): only a check of
 * the whole file covers those.
 */
static void mark_written(const dc_conn *c, check_table *t, size_t n, bool *full)
{
	size_t i;

	for (i = 0; i < n; i++)
		t[i].in_set = false;
	for (i = 0; i < c->nwritten && !*full; i++) {
		check_table *x = find_table(t, n, c->written[i].name);

		if (!x)
			*full = !c->written[i].dropped;
		else if (x->type == 'V')
			*full = true;
		else
			x->in_set = true;
	}
}

/* Whether `name` is a table the migration dropped (see mark_referencing). */
static bool dropped_by_migration(const dc_conn *c, const char *name)
{
	size_t w;

	for (w = 0; w < c->nwritten; w++)
		if (c->written[w].dropped && strcasecmp(c->written[w].name, name) == 0)
			return true;
	return false;
}

/*
 * Adds to the set every table referencing one in the set (or a dropped
 * written one), transitively, along g's foreign keys: a deleted, re-keyed
 * or dropped parent orphans its children's rows.
 *
 * SQLite's own enforcement (deployclaw's connections turn foreign keys on)
 * does not make this redundant: it keeps a count, and a statement that
 * orphans a row while mending one dangling from before (UPDATE p SET id = 99
 * WHERE id = 1, with a child of 1 and an old child of 99) nets to zero and
 * passes.
 */
static void mark_referencing(const dc_conn *c, check_graph *g)
{
	bool grew;
	size_t i;

	do {
		grew = false;
		for (i = 0; i < g->ne; i++) {
			const check_table *p;

			if (g->t[g->e[i].child].in_set)
				continue;
			p = find_table(g->t, g->n, g->e[i].parent);
			if (p ? p->in_set : dropped_by_migration(c, g->e[i].parent)) {
				g->t[g->e[i].child].in_set = true;
				grew = true;
			}
		}
	} while (grew);
}

/*
 * The consistency checks of what the migration wrote: integrity_check of
 * every table written, with its indexes; foreign_key_check of every table
 * written and every table referencing one, transitively (mark_referencing).
 * The whole file when `full`, or after a write the authorizer could not
 * follow. Both checks of a tenant share one listing of its tables.
 */
int dc_sqlite__check(dc_conn *c,
                     dc_check_kind kind,
                     bool full,
                     dc_strbuf *out,
                     size_t max_rows,
                     dc_error *err)
{
	size_t rows = 0, i;
	int ret;

	if ((ret = dc_sqlite__need_db(c, err)) != 0)
		return ret;
	/* integrity_check skips CHECK constraints while they are ignored */
	if (c->ignored_checks) {
		if ((ret = dc_sqlite__run_internal(c, "PRAGMA ignore_check_constraints = OFF",
		                                   err)) != 0)
			return ret;
		c->ignored_checks = false;
	}
	full = full || c->written_all;
	if (!full && c->nwritten == 0)
		return 0; /* nothing written, nothing to check */
	if (!full) {
		if ((ret = check_graph_ready(c, kind == DC_CHECK_FOREIGN_KEYS, err)) != 0)
			return ret;
		mark_written(c, c->graph.t, c->graph.n, &full);
	}
	if (full)
		return check_run(c, kind,
		                 kind == DC_CHECK_INTEGRITY ? CHECK_INTEGRITY_ALL : CHECK_FK_ALL,
		                 NULL, out, max_rows, &rows, err);
	if (kind == DC_CHECK_INTEGRITY) {
		for (i = 0; i < c->graph.n && ret == 0 && rows < max_rows; i++)
			if (c->graph.t[i].in_set && c->graph.t[i].type != 'v')
				ret = check_run(c, kind, "PRAGMA main.integrity_check(\"%w\")",
				                c->graph.t[i].name, out, max_rows, &rows, err);
		return ret;
	}
	mark_referencing(c, &c->graph);
	for (i = 0; i < c->graph.n && ret == 0 && rows < max_rows; i++)
		if (c->graph.t[i].in_set && c->graph.t[i].has_fk)
			ret = check_run(c, kind, "PRAGMA main.foreign_key_check(\"%w\")",
			                c->graph.t[i].name, out, max_rows, &rows, err);
	return ret;
}
