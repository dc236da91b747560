/*
 * The check graph: a file's tables and views and their foreign keys, as the
 * scoped checks need them (see check_graph).
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sqlite3.h>

#include "sqlite_internal.h"
#include "util/util.h"

static void graph_free(check_graph *g)
{
	size_t i;

	for (i = 0; i < g->n; i++)
		free(g->t[i].name);
	for (i = 0; i < g->ne; i++)
		free(g->e[i].parent);
	free(g->t);
	free(g->e);
	memset(g, 0, sizeof(*g));
}

/* Frees a graph of the prefetch thread's, and the graph itself (NULL: none). */
void dc_sqlite__graph_destroy(check_graph *g)
{
	if (!g)
		return;
	graph_free(g);
	free(g);
}

/* Forgets the connection's graph, whoever read it. */
void dc_sqlite__graph_drop(dc_conn *c)
{
	graph_free(&c->graph);
	c->graph_valid = false;
	c->graph_sticky = false;
	c->graph_pending = false;
}

static int check_table_cmp(const void *a, const void *b)
{
	return strcasecmp(((const check_table *)a)->name, ((const check_table *)b)->name);
}

/*
 * The foreign keys of g's tables (dc_sqlite__graph_load listed them): only a table
 * whose SQL mentions REFERENCES can have one (REFERENCES is how SQLite
 * declares one), so only those are asked. Fills has_fk. An SQLite code.
 */
int dc_sqlite__graph_edges(sqlite3 *db, check_graph *g)
{
	sqlite3_stmt *st = NULL;
	size_t i, ae = g->ne;
	int rc = SQLITE_OK;

	for (i = 0; i < g->n && rc == SQLITE_OK; i++) {
		char *sql;

		g->t[i].has_fk = false;
		if (g->t[i].type != 't' || !g->t[i].refs)
			continue;
		sql = sqlite3_mprintf("PRAGMA main.foreign_key_list(\"%w\")", g->t[i].name);
		if (!sql)
			return SQLITE_NOMEM;
		rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
		sqlite3_free(sql);
		while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
			const char *p = (const char *)sqlite3_column_text(st, 2);

			rc = SQLITE_OK;
			g->t[i].has_fk = true;
			if (!p)
				continue;
			if (g->ne == ae && dc_array_grow(&g->e, &ae, sizeof(*g->e), 16) != 0) {
				rc = SQLITE_NOMEM;
				break;
			}
			g->e[g->ne].parent = dc_strdup(p);
			if (!g->e[g->ne].parent) {
				rc = SQLITE_NOMEM;
				break;
			}
			g->e[g->ne++].child = i;
		}
		sqlite3_finalize(st);
		st = NULL;
		if (rc == SQLITE_DONE)
			rc = SQLITE_OK;
	}
	if (rc == SQLITE_OK)
		g->edges = true;
	return rc;
}

/*
 * Reads into `g` (empty) the file's tables and views, SQLite's own left out,
 * by name -- one read of sqlite_schema -- and with `edges` their foreign
 * keys (dc_sqlite__graph_edges). A table's SQL tells a virtual table ("CREATE VIRTUAL
 * TABLE", as SQLite stores it) and whether it may have a foreign key. An
 * SQLite code; on failure `g` is left empty and `*what` names what failed.
 */
int dc_sqlite__graph_load(sqlite3 *db, bool edges, check_graph *g, const char **what)
{
	sqlite3_stmt *st = NULL;
	size_t at = 0;
	int rc;

	/* no WHERE: filtering the few rows here costs less than compiling it */
	rc = sqlite3_prepare_v2(db, "SELECT type, name, sql FROM main.sqlite_schema", -1, &st,
	                        NULL);
	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *type = (const char *)sqlite3_column_text(st, 0);
		const char *name = (const char *)sqlite3_column_text(st, 1);
		const char *sql = (const char *)sqlite3_column_text(st, 2);
		check_table *x;

		rc = SQLITE_OK;
		if (!name || !type || strncasecmp(name, "sqlite_", 7) == 0 ||
		    (strcmp(type, "table") != 0 && strcmp(type, "view") != 0))
			continue;
		if (g->n == at && dc_array_grow(&g->t, &at, sizeof(*g->t), 16) != 0) {
			rc = SQLITE_NOMEM;
			break;
		}
		x = &g->t[g->n];
		memset(x, 0, sizeof(*x));
		x->name = dc_strdup(name);
		if (!x->name) {
			rc = SQLITE_NOMEM;
			break;
		}
		x->type = strcmp(type, "view") == 0                                  ? 'v'
		          : sql && strncasecmp(sql, "CREATE VIRTUAL TABLE", 20) == 0 ? 'V'
		                                                                     : 't';
		x->refs = x->type == 't' && sql &&
		          sqlite3_strlike("%REFERENCES%", sql, 0) == 0; /* any case */
		g->n++;
	}
	sqlite3_finalize(st);
	*what = "sqlite_schema";
	if (rc == SQLITE_DONE) {
		rc = SQLITE_OK;
		if (g->n > 1) /* problems in name order, whatever the schema's */
			qsort(g->t, g->n, sizeof(*g->t), check_table_cmp);
		if (edges) {
			*what = "foreign_key_list";
			rc = dc_sqlite__graph_edges(db, g);
		}
	}
	if (rc != SQLITE_OK)
		graph_free(g);
	return rc;
}
