/*
 * Errors of the PostgreSQL engine: every message names the tenant and the
 * shard, keeps the SQLSTATE and, for a user statement, its position in the
 * migration file.
 */
#include "pg_internal.h"

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */

const char *dc_pg__tenant_id(const dc_conn *c)
{
	return c->tenant && c->tenant->id ? c->tenant->id : "?";
}

int dc_pg__conn_fail(const dc_conn *c,
                     dc_error *err,
                     int code,
                     const char *sqlstate,
                     const char *file,
                     int line,
                     int col,
                     const char *fmt,
                     ...)
{
	const dc_engine__where where = {
		.tenant = c->tenant ? c->tenant->id : NULL,
		.shard = c->engine->shard,
		.sqlstate = sqlstate,
		.file = file,
		.line = line,
		.col = col,
	};
	va_list ap;

	va_start(ap, fmt);
	dc_engine__vfail(err, code, &where, fmt, ap);
	va_end(ap);
	return code;
}

int dc_pg__shard_fail(const dc_engine *e,
                      dc_error *err,
                      int code,
                      const char *sqlstate,
                      const char *fmt,
                      ...)
{
	const dc_engine__where where = { .shard = e->shard, .sqlstate = sqlstate };
	va_list ap;

	va_start(ap, fmt);
	dc_engine__vfail(err, code, &where, fmt, ap);
	va_end(ap);
	return code;
}

int dc_pg__oom(const dc_conn *c, dc_error *err)
{
	return dc_pg__conn_fail(c, err, DC_ENOMEM, NULL, NULL, 0, 0, "out of memory");
}

/* The first line of a libpq message, without "ERROR:  " and the newline. */
bool dc_pg__conn_lost(const dc_conn *c)
{
	return !c->pg || PQstatus(c->pg) == CONNECTION_BAD;
}

int dc_pg__lost_fail(const dc_conn *c, dc_error *err)
{
	char why[512];

	dc_text_first_line(why, sizeof(why), c->pg ? PQerrorMessage(c->pg) : "");
	return dc_pg__conn_fail(c, err, DC_EDB, "08006", NULL, 0, 0,
	                        "tenant '%s' (shard '%s'): connection to the server lost%s%s",
	                        dc_pg__tenant_id(c), c->engine->shard, why[0] ? ": " : "", why);
}

/* The position of the 1-based character `pos` of `stmt->sql` in its file. */
static void stmt_position(const dc_statement *stmt, long pos, int *line, int *col)
{
	const char *s = stmt->sql;
	long chars = 0;
	int l = stmt->line, k = stmt->col;

	for (; s && *s && chars < pos - 1; s++) {
		unsigned char ch = (unsigned char)*s;

		if ((ch & 0xC0) == 0x80)
			continue;
		chars++;
		if (ch == '\n') {
			l++;
			k = 1;
		} else {
			k++;
		}
	}
	*line = l;
	*col = k;
}

/* Fills `err` from a failed result: SQLSTATE, the primary message and, for a
 * user statement, its position in the migration file. */
int dc_pg__res_fail(const dc_conn *c,
                    const PGresult *res,
                    const dc_statement *stmt,
                    const char *what,
                    dc_error *err)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	const char *position = res ? PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION) : NULL;
	char msg[768];
	int line = 0, col = 0;

	if (dc_pg__conn_lost(c) || !res)
		return dc_pg__lost_fail(c, err);
	if (primary)
		dc_engine__copy_cut(msg, sizeof(msg), primary);
	else
		dc_text_first_line(msg, sizeof(msg), PQresultErrorMessage(res));
	if (stmt) {
		line = stmt->line;
		col = stmt->col;
		if (position)
			stmt_position(stmt, strtol(position, NULL, 10), &line, &col);
	}
	return dc_pg__conn_fail(c, err, DC_EDB, state, stmt ? stmt->file : NULL, line, col,
	                        "tenant '%s' (shard '%s'): %s%s%s", dc_pg__tenant_id(c),
	                        c->engine->shard, what ? what : "", what ? ": " : "", msg);
}

bool dc_pg__res_ok(const PGresult *res)
{
	ExecStatusType st = PQresultStatus(res);

	return res && (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK);
}

const char *dc_pg__res_state(const PGresult *res)
{
	const char *s = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

	return s ? s : "";
}
