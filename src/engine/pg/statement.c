/*
 * User statements: classification (libpg_query, cached per connection),
 * exec with the cleanup of a failed CREATE INDEX CONCURRENTLY, and verify
 * assertions.
 */
#include "pg_internal.h"

#define INVALID_INDEXES                                                     \
	"SELECT coalesce(array_agg(indexrelid), '{}')::text FROM pg_index " \
	"WHERE indrelid = to_regclass($1) AND NOT indisvalid"

#define NEW_INVALID_INDEXES                                                                    \
	"SELECT n.nspname, c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid " \
	"JOIN pg_namespace n ON n.oid = c.relnamespace WHERE i.indrelid = to_regclass($1) "    \
	"AND NOT i.indisvalid AND NOT i.indexrelid = ANY($2::oid[])"

/* ------------------------------------------------------------------------ */
/* User statements                                                          */

/* Session settings for statements run outside a transaction, once per
 * tenant visit (inside one, begin's SET LOCAL values win). */
int dc_pg__session_settings(dc_conn *c, dc_error *err)
{
	dc_engine *e = c->engine;
	const char *params[5] = { e->lock_timeout, e->statement_timeout, c->tenant->id,
		                  c->search_path, c->run_as };
	const char *sql =
	        "SELECT set_config('lock_timeout', $1, false), "
	        "set_config('statement_timeout', $2, false), "
	        "set_config('deployclaw.tenant', $3, false), " DC_PG_PATH_WITHOUT_OWN_SCHEMA(
	                "false");
	int nparams = 3;
	PGresult *res;
	int ret = 0;

	if (c->session_set)
		return 0;
	/* run_as: statements outside a transaction run under the tenant's role
	 * too; the session reset before the next tenant drops it (SET SESSION
	 * AUTHORIZATION DEFAULT, RESET ALL) */
	if (c->run_as) {
		sql = "SELECT set_config('lock_timeout', $1, false), "
		      "set_config('statement_timeout', $2, false), "
		      "set_config('deployclaw.tenant', $3, false), "
		      "set_config('search_path', $4, false), set_config('role', $5, false)";
		nparams = 5;
	} else if (e->model == DC_TENANCY_SCHEMA) {
		sql = "SELECT set_config('lock_timeout', $1, false), "
		      "set_config('statement_timeout', $2, false), "
		      "set_config('deployclaw.tenant', $3, false), "
		      "set_config('search_path', $4, false)";
		nparams = 4;
	}
	res = PQexecParams(c->pg, sql, nparams, NULL, params, NULL, NULL, 0);
	if (dc_pg__res_ok(res))
		c->session_set = true;
	else
		ret = dc_pg__res_fail(c, res, NULL, "session settings", err);
	PQclear(res);
	return ret;
}

/* dc_pg_classify of a user statement, with a syntax error placed in the
 * statement's file. */
static int classify_stmt(const dc_statement *stmt, dc_pg_stmt_info *info, dc_error *err)
{
	bool fresh = err && err->code == 0; /* the first error survives */
	int ret = dc_pg_classify(stmt->sql ? stmt->sql : "", info, err);

	if (ret != 0 && fresh) {
		int l = err->line, k = err->col;

		dc_engine__copy_cut(err->file, sizeof(err->file), stmt->file);
		err->line = l > 1 ? stmt->line + l - 1 : stmt->line;
		err->col = l > 1 ? k : stmt->col + (k > 0 ? k - 1 : 0);
	}
	return ret;
}

int dc_pg__autocommit_only(const dc_statement *stmt, bool *out, dc_error *err)
{
	dc_pg_stmt_info info;
	int ret = classify_stmt(stmt, &info, err);

	*out = ret == 0 && info.autocommit_only;
	return ret;
}

/* The table of a CREATE INDEX CONCURRENTLY as to_regclass reads it. */
static int cic_table(dc_conn *c, const dc_pg_stmt_info *info, dc_strbuf *out)
{
	char *q;

	dc_strbuf_reset(out);
	if (info->schema[0]) {
		q = PQescapeIdentifier(c->pg, info->schema, strlen(info->schema));
		if (!q)
			return DC_ENOMEM;
		dc_strbuf_adds(out, q);
		dc_strbuf_addch(out, '.');
		PQfreemem(q);
	}
	q = PQescapeIdentifier(c->pg, info->table_name, strlen(info->table_name));
	if (!q)
		return DC_ENOMEM;
	dc_strbuf_adds(out, q);
	PQfreemem(q);
	return dc_strbuf_error(out);
}

/* The INVALID indexes of the table, as an oid[] literal; "{}" on any error
 * (then nothing is spared: the cleanup keys on names too). */
static char *invalid_indexes(dc_conn *c, const char *table)
{
	const char *params[1] = { table };
	PGresult *res = PQexecParams(c->pg, INVALID_INDEXES, 1, NULL, params, NULL, NULL, 0);
	char *s = NULL;

	if (dc_pg__res_ok(res) && PQntuples(res) == 1)
		s = dc_strdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	return s;
}

/* After a failed CREATE INDEX CONCURRENTLY: drops the INVALID index it left
 * (any invalid index of the table that was not there before). A failure to
 * clean up is appended to the statement's error message. */
static void cic_cleanup(dc_conn *c, const char *table, const char *before, dc_error *err)
{
	const char *params[2] = { table, before };
	dc_strbuf sql = DC_STRBUF_INIT;
	PGresult *res, *drop = NULL;
	char why[300] = "";
	int i;

	res = PQexecParams(c->pg, NEW_INVALID_INDEXES, 2, NULL, params, NULL, NULL, 0);
	if (!dc_pg__res_ok(res)) {
		dc_text_first_line(why, sizeof(why), PQresultErrorMessage(res));
		goto out;
	}
	for (i = 0; i < PQntuples(res) && !why[0]; i++) {
		const char *ns = PQgetvalue(res, i, 0), *name = PQgetvalue(res, i, 1);
		char *qn = PQescapeIdentifier(c->pg, ns, strlen(ns));
		char *qi = PQescapeIdentifier(c->pg, name, strlen(name));

		dc_strbuf_reset(&sql);
		dc_strbuf_adds(&sql, "DROP INDEX CONCURRENTLY IF EXISTS ");
		dc_strbuf_adds(&sql, qn ? qn : "");
		dc_strbuf_addch(&sql, '.');
		dc_strbuf_adds(&sql, qi ? qi : "");
		if (qn && qi && !dc_strbuf_error(&sql)) {
			drop = PQexec(c->pg, sql.buf);
			if (!dc_pg__res_ok(drop))
				dc_text_first_line(why, sizeof(why), PQresultErrorMessage(drop));
			PQclear(drop);
		} else {
			dc_engine__copy_cut(why, sizeof(why), "out of memory");
		}
		PQfreemem(qn);
		PQfreemem(qi);
	}
out:
	if (why[0] && err && err->code != 0) {
		size_t len = strlen(err->message);
		dc_strbuf sb = DC_STRBUF_INIT;

		dc_strbuf_addf(&sb, "; dropping the INVALID index it left failed too: %s", why);
		if (!dc_strbuf_error(&sb))
			dc_engine__copy_cut(err->message + len, sizeof(err->message) - len, sb.buf);
		dc_strbuf_release(&sb);
	}
	PQclear(res);
	dc_strbuf_release(&sql);
}

/* Classifies a user statement and refuses what cannot run where it is. */
/* classify_stmt through the connection's cache: a statement is parsed once
 * per worker, not once per tenant. Only successes are kept (an error is
 * reported again, with its position, each time). */
static int classify_cached(dc_conn *c,
                           const dc_statement *stmt,
                           dc_pg_stmt_info *info,
                           dc_error *err)
{
	const char *sql = stmt->sql ? stmt->sql : "";
	classified *slot;
	size_t i;
	int ret;

	for (i = 0; i < CLASSIFIED_MAX; i++)
		if (c->cls[i].stmt == stmt && c->cls[i].sql && strcmp(c->cls[i].sql, sql) == 0) {
			*info = c->cls[i].info;
			return 0;
		}
	if ((ret = classify_stmt(stmt, info, err)) != 0)
		return ret;
	slot = &c->cls[c->cls_next];
	c->cls_next = (c->cls_next + 1) % CLASSIFIED_MAX;
	free(slot->sql);
	slot->stmt = stmt;
	slot->sql = dc_strdup(sql); /* NULL (out of memory): simply not cached */
	slot->info = *info;
	return 0;
}

static int check_stmt(dc_conn *c, const dc_statement *stmt, dc_pg_stmt_info *info, dc_error *err)
{
	int ret;

	/* parsed once per statement and connection (classify_cached) */
	if ((ret = classify_cached(c, stmt, info, err)) != 0)
		return ret;
	if (info->is_transaction_control)
		return dc_pg__conn_fail(
		        c, err, DC_EINVAL, NULL, stmt->file, stmt->line, stmt->col,
		        "tenant '%s': %s inside a migration: deployclaw manages the transaction",
		        dc_pg__tenant_id(c), info->what);
	if (info->autocommit_only && dc_pg__in_tx(c))
		return dc_pg__conn_fail(
		        c, err, DC_EINVAL, NULL, stmt->file, stmt->line, stmt->col,
		        "tenant '%s': %s cannot run inside a transaction: put it in a phase with `transaction: false`",
		        dc_pg__tenant_id(c), info->what);
	if (info->autocommit_only && info->nstmts > 1)
		return dc_pg__conn_fail(c, err, DC_EINVAL, NULL, stmt->file, stmt->line, stmt->col,
		                        "tenant '%s': %s must be a statement of its own",
		                        dc_pg__tenant_id(c), info->what);
	return 0;
}

static bool counts_rows(const char *status)
{
	static const char *const dml[] = { "INSERT ", "UPDATE ", "DELETE ", "MERGE ", "COPY " };
	size_t i;

	for (i = 0; i < sizeof(dml) / sizeof(dml[0]); i++)
		if (strncmp(status, dml[i], strlen(dml[i])) == 0)
			return true;
	return false;
}

int dc_pg__exec(dc_conn *c, const dc_statement *stmt, int64_t *rows, dc_error *err)
{
	dc_pg_stmt_info info;
	dc_strbuf table = DC_STRBUF_INIT;
	char *before = NULL;
	PGresult *res = NULL;
	const char *state;
	int ret;

	if ((ret = dc_pg__settle(c, err)) != 0)
		return ret;

	if (rows)
		*rows = 0;
	if ((ret = dc_pg__need_tenant(c, err)) != 0)
		return ret;
	if ((ret = check_stmt(c, stmt, &info, err)) != 0)
		return ret;
	dc_pg__drop_history_cache(c); /* the statement may write the history */
	if (!dc_pg__in_tx(c) && (ret = dc_pg__session_settings(c, err)) != 0)
		return ret;
	c->dirty = true; /* whatever it leaves on the session goes before the next tenant */
	if (info.create_index_concurrently && info.table_name[0]) {
		if (cic_table(c, &info, &table) != 0) {
			ret = dc_pg__oom(c, err);
			goto out;
		}
		before = invalid_indexes(c, table.buf);
	}
	res = PQexec(c->pg, stmt->sql);
	if (!dc_pg__res_ok(res)) {
		ret = dc_pg__res_fail(c, res, stmt, NULL, err);
		state = dc_pg__res_state(res);
		/* 42P07: the name was taken before; that index is not ours to drop */
		if (info.create_index_concurrently && before && !dc_pg__conn_lost(c) &&
		    strcmp(state, "42P07") != 0)
			cic_cleanup(c, table.buf, before, err);
		goto out;
	}
	if (rows && counts_rows(PQcmdStatus(res)))
		*rows = strtoll(PQcmdTuples(res), NULL, 10);
out:
	PQclear(res);
	free(before);
	dc_strbuf_release(&table);
	return ret;
}

static bool truthy(const char *s)
{
	char *end;
	double d;

	if (strcasecmp(s, "t") == 0 || strcasecmp(s, "true") == 0)
		return true;
	d = strtod(s, &end);
	return end != s && *end == '\0' && d != 0.0;
}

int dc_pg__user_query(dc_conn *c,
                      const char *sql,
                      const dc_statement *stmt,
                      const char *what,
                      PGresult **out,
                      dc_error *err)
{
	PGresult *res;
	int ret;

	*out = NULL;
	if ((ret = dc_pg__settle(c, err)) != 0)
		return ret;
	if ((ret = dc_pg__need_tenant(c, err)) != 0)
		return ret;
	if (!dc_pg__in_tx(c) && (ret = dc_pg__session_settings(c, err)) != 0)
		return ret;
	dc_pg__drop_history_cache(c); /* the query may write the history */
	c->dirty = true;              /* ... or leave session state behind */
	/* the extended protocol refuses a text of several statements */
	res = PQexecParams(c->pg, sql, 0, NULL, NULL, NULL, NULL, 0);
	if (!dc_pg__res_ok(res)) {
		ret = dc_pg__res_fail(c, res, stmt, what, err);
		PQclear(res);
		return ret;
	}
	*out = res;
	return 0;
}

int dc_pg__query_bool(dc_conn *c, const dc_statement *stmt, bool *out, dc_error *err)
{
	PGresult *res = NULL;
	int ret;

	*out = false;
	if ((ret = dc_pg__user_query(c, stmt->sql, stmt, "verify assertion", &res, err)) != 0)
		return ret;
	if (PQnfields(res) != 1) {
		ret = dc_pg__conn_fail(
		        c, err, DC_EINVAL, NULL, stmt->file, stmt->line, stmt->col,
		        "tenant '%s': verify assertion returned %d columns (expected one)",
		        dc_pg__tenant_id(c), PQnfields(res));
		goto out;
	}
	if (PQntuples(res) != 1) {
		ret = dc_pg__conn_fail(
		        c, err, DC_EINVAL, NULL, stmt->file, stmt->line, stmt->col,
		        "tenant '%s': verify assertion returned %d rows (expected one)",
		        dc_pg__tenant_id(c), PQntuples(res));
		goto out;
	}
	/* NULL (unknown) is not true */
	*out = !PQgetisnull(res, 0, 0) && truthy(PQgetvalue(res, 0, 0));
out:
	PQclear(res);
	return ret;
}
