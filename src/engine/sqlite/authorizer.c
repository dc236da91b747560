/*
 * The authorizer of user statements: tenant isolation, and what a statement
 * is (DDL, DML) and which tables it reads and writes.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sqlite3.h>

#include "sqlite_internal.h"
#include "util/util.h"

/* Distinct tables recorded as written per tenant visit; more checks the
 * whole database. */
#define MAX_WRITTEN 256

static void refuse(dc_conn *c, const char *fmt, ...) DC_PRINTF(2, 3);

static void refuse(dc_conn *c, const char *fmt, ...)
{
	va_list ap;

	if (c->refusal[0])
		return; /* the first reason is the one to report */
	va_start(ap, fmt);
	vsnprintf(c->refusal, sizeof(c->refusal), fmt, ap);
	va_end(ap);
}

static void note_table(dc_conn *c, const char *table)
{
	size_t i;

	if (!table || strncmp(table, "sqlite_", 7) == 0)
		return;
	for (i = 0; i < c->ntables; i++)
		if (strcmp(c->tables[i], table) == 0)
			return;
	if (c->ntables < DC_SQLITE__MAX_TABLES)
		snprintf(c->tables[c->ntables++], sizeof(c->tables[0]), "%s", table);
}

/* Notes that the user's statement writes `table` of database `db`. */
static void note_written(dc_conn *c, const char *table, const char *db, bool dropped)
{
	written_table *w;
	size_t i;

	if (!table || strncasecmp(table, "sqlite_", 7) == 0 || (db && strcmp(db, "main") != 0))
		return; /* SQLite's own tables; temp tables are not in the file */
	for (i = 0; i < c->nwritten; i++) {
		if (strcasecmp(c->written[i].name, table) == 0) {
			c->written[i].dropped |= dropped;
			return;
		}
	}
	if (c->nwritten == MAX_WRITTEN) {
		c->written_all = true;
		return;
	}
	if (c->nwritten == c->awritten &&
	    dc_array_grow(&c->written, &c->awritten, sizeof(*c->written), 8) != 0) {
		c->written_all = true;
		return;
	}
	w = &c->written[c->nwritten];
	w->name = dc_strdup(table);
	if (!w->name) {
		c->written_all = true;
		return;
	}
	w->dropped = dropped;
	c->nwritten++;
}

/* A user statement may change what the checks know of the schema (tables,
 * views, foreign keys): the prefetched graph no longer holds. */
static void schema_change(dc_conn *c)
{
	c->schema_changed = true;
	c->graph_valid = false;
	c->graph_pending = false;
}

static bool own_database(const char *db)
{
	return !db || strcmp(db, "main") == 0 || strcmp(db, "temp") == 0;
}

/* The class and tables of a user statement; and for the checks scoped to
 * what a migration wrote, the tables it writes (note_written). Split from
 * the authorizer, which checks isolation first. */
static void classify(dc_conn *c, int action, const char *a1, const char *a2, const char *db)
{
	switch (action) {
	case SQLITE_CREATE_INDEX:
	case SQLITE_DROP_INDEX:
		c->ddl = true;
		note_table(c, a2);
		note_written(c, a2, db, false);
		break;
	case SQLITE_CREATE_TEMP_INDEX:
	case SQLITE_CREATE_TRIGGER:
	case SQLITE_CREATE_TEMP_TRIGGER:
	case SQLITE_DROP_TEMP_INDEX:
	case SQLITE_DROP_TRIGGER:
	case SQLITE_DROP_TEMP_TRIGGER:
		c->ddl = true;
		note_table(c, a2);
		break;
	case SQLITE_CREATE_TABLE:
	case SQLITE_DROP_TABLE:
		c->ddl = true;
		schema_change(c);
		note_table(c, a1);
		note_written(c, a1, db, action == SQLITE_DROP_TABLE);
		break;
	case SQLITE_CREATE_VIEW:
	case SQLITE_DROP_VIEW:
		schema_change(c);
		/* fall through */
	case SQLITE_CREATE_TEMP_TABLE:
	case SQLITE_CREATE_TEMP_VIEW:
	case SQLITE_DROP_TEMP_TABLE:
	case SQLITE_DROP_TEMP_VIEW:
	case SQLITE_REINDEX: /* rebuilds indexes from their tables: nothing to check */
	case SQLITE_ANALYZE:
		c->ddl = true;
		note_table(c, a1);
		break;
	case SQLITE_CREATE_VTABLE:
	case SQLITE_DROP_VTABLE:
		c->ddl = true;
		schema_change(c);
		note_table(c, a1);
		c->written_all = true; /* its module writes shadow tables unseen */
		break;
	case SQLITE_ALTER_TABLE:
		c->ddl = true;
		c->altering = true;
		/* Its table keeps its name (a rename makes the checks cover the
		 * whole file: see SQLITE_UPDATE) and may gain a foreign key only by
		 * an ADD COLUMN that says REFERENCES: SQLite stores the column's
		 * definition as written, and allows no DROP COLUMN of a key's. */
		if (!c->stmt_sql || sqlite3_strlike("%REFERENCES%", c->stmt_sql, 0) == 0)
			schema_change(c);
		note_table(c, a2);
		note_written(c, a2, db, false);
		break;
	case SQLITE_INSERT:
	case SQLITE_UPDATE:
	case SQLITE_DELETE:
		/* ALTER TABLE ... RENAME TO rewrites the table's name in sqlite_schema
		 * (its nested UPDATE is authorized with the ALTER; CREATE TABLE
		 * writes the name too, not under an ALTER): the rows now live
		 * under a name no statement wrote, and a table made under the old
		 * name hides the move -- the checks cover the whole file */
		if (action == SQLITE_UPDATE && c->altering && a1 && a2 && own_database(db) &&
		    (strcasecmp(a1, "sqlite_master") == 0 ||
		     strcasecmp(a1, "sqlite_schema") == 0) &&
		    (strcasecmp(a2, "name") == 0 || strcasecmp(a2, "tbl_name") == 0))
			c->written_all = true;
		/* DDL writes sqlite_schema: that is not a row change of the user's. */
		if (a1 && strncmp(a1, "sqlite_", 7) != 0)
			c->dml = true;
		note_table(c, a1);
		note_written(c, a1, db, false);
		break;
	case SQLITE_PRAGMA:
		if (a1 && strcasecmp(a1, "ignore_check_constraints") == 0)
			c->ignored_checks = true;
		break;
	case SQLITE_READ:
		note_table(c, a1);
		break;
	default:
		break;
	}
}

/* A PRAGMA that defeats the tenant's atomic rollback: writable_schema (any
 * value, also a read: the migration has no use for it) edits sqlite_schema
 * behind SQLite's back, and journal_mode OFF or MEMORY leaves a file that a
 * crash mid-transaction cannot roll back. deployclaw's own statements
 * (c->user false) are not asked. */
static bool refuse_pragma(dc_conn *c, const char *name, const char *value)
{
	if (!name)
		return false;
	if (strcasecmp(name, "writable_schema") == 0) {
		refuse(c,
		       "statement refused: PRAGMA writable_schema would defeat the rollback of tenant '%s' (tenant isolation)",
		       dc_sqlite__tenant_id(c));
		return true;
	}
	if (strcasecmp(name, "journal_mode") == 0 && value &&
	    (strcasecmp(value, "off") == 0 || strcasecmp(value, "memory") == 0)) {
		refuse(c,
		       "statement refused: PRAGMA journal_mode = %s would defeat the rollback of tenant '%s' (tenant isolation)",
		       value, dc_sqlite__tenant_id(c));
		return true;
	}
	return false;
}

/*
 * The authorizer: tenant isolation (no ATTACH/DETACH, no schema other than
 * main and temp, no PRAGMA that defeats the rollback), no transaction
 * control, and the statement's class (DDL or DML) and tables. Runs while a
 * user statement is prepared (and re-prepared).
 */
int dc_sqlite__authorize(void *arg,
                         int action,
                         const char *a1,
                         const char *a2,
                         const char *db,
                         const char *trigger)
{
	dc_conn *c = arg;

	if (!c->user) {
		/* deployclaw's own statements; a trigger a migration put on one of
		 * its tables writes unseen tables: the checks then cover the file */
		if (trigger && action != SQLITE_READ && action != SQLITE_SELECT)
			c->written_all = true;
		return SQLITE_OK;
	}
	c->actions++;
	switch (action) {
	case SQLITE_ATTACH:
	case SQLITE_DETACH:
		refuse(c,
		       "statement refused: %s would reach outside tenant '%s' (tenant isolation)",
		       action == SQLITE_ATTACH ? "ATTACH" : "DETACH", dc_sqlite__tenant_id(c));
		return SQLITE_DENY;
	case SQLITE_TRANSACTION:
	case SQLITE_SAVEPOINT:
		refuse(c,
		       "tenant '%s': BEGIN/COMMIT inside a migration: deployclaw manages the transaction",
		       dc_sqlite__tenant_id(c));
		return SQLITE_DENY;
	case SQLITE_PRAGMA:
		if (refuse_pragma(c, a1, a2))
			return SQLITE_DENY;
		break;
	default:
		break;
	}
	/* For SQLITE_ALTER_TABLE the schema is arg1 (and DROP COLUMN puts the
	 * column name where other actions put the schema). */
	if (action == SQLITE_ALTER_TABLE)
		db = a1;
	if (!own_database(db)) {
		refuse(c,
		       "statement refused: database '%s' would reach outside tenant '%s' (tenant isolation)",
		       db, dc_sqlite__tenant_id(c));
		return SQLITE_DENY;
	}
	classify(c, action, a1, a2, db);
	return SQLITE_OK;
}
