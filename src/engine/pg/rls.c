/*
 * Row tenancy's row-level security check (DC_CHECK_RLS): in the shard's
 * database, every table with the tenant column (tenancy.column) has RLS
 * enabled and forced and a policy whose expression refers to the column,
 * and the application role (tenancy.app_role) exists, is not a superuser,
 * lacks BYPASSRLS and owns none of those tables. One query reads it all;
 * the policies' expressions (pg_get_expr) are parsed here, with libpg_query,
 * so that a column reference counts and a string that spells the name does
 * not.
 *
 * The tables looked at are the ordinary and partitioned tables (partitions
 * included: a partition queried by name has only its own policies) of every
 * schema but PostgreSQL's own (pg_catalog, information_schema, pg_toast*,
 * pg_temp_*), deployclaw's two tables (deployclaw.tenant_state and the
 * history table) excepted. The schema `deployclaw` itself is looked at: an
 * unqualified CREATE TABLE of a row-model migration lands there when the
 * login role is named deployclaw ("$user" leads the default search_path).
 */
#include "analysis/rls.h"

#include "pg_internal.h"

/* One row for the role (k = 0), then one per table and policy (k = 1; no
 * policy: pol NULL), tables in byte order. */
#define RLS_SELECT                                                                                         \
	"WITH r AS (SELECT oid, rolsuper, rolbypassrls FROM pg_catalog.pg_roles "                          \
	"WHERE rolname = $2), t AS (SELECT c.oid, n.nspname::text AS nsp, "                                \
	"c.relname::text AS rel, c.relrowsecurity, c.relforcerowsecurity, EXISTS (SELECT 1 "               \
	"FROM r WHERE pg_catalog.pg_has_role(r.oid, c.relowner, 'MEMBER')) AS owned "                      \
	"FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "             \
	"WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', "                               \
	"'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' "                                      \
	"AND n.nspname NOT LIKE 'pg\\_temp\\_%' AND c.relname <> 'deployclaw_history' "                    \
	"AND NOT (n.nspname = 'deployclaw' AND c.relname = 'tenant_state') "                               \
	"AND EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.oid AND a.attname = $1 " \
	"AND a.attnum > 0 AND NOT a.attisdropped)) "                                                       \
	"SELECT * FROM (SELECT 0 AS k, NULL::text AS nsp, NULL::text AS rel, "                             \
	"r.oid IS NOT NULL AS a, r.rolsuper AS b, r.rolbypassrls AS c, NULL::text AS pol, "                \
	"NULL::text AS qual, NULL::text AS chk FROM (SELECT 1) one LEFT JOIN r ON true "                   \
	"UNION ALL SELECT 1, t.nsp, t.rel, t.relrowsecurity, t.relforcerowsecurity, t.owned, "             \
	"p.polname::text, pg_catalog.pg_get_expr(p.polqual, p.polrelid), "                                 \
	"pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid) FROM t LEFT JOIN "                             \
	"pg_catalog.pg_policy p ON p.polrelid = t.oid) s "                                                 \
	"ORDER BY k, nsp COLLATE \"C\", rel COLLATE \"C\", pol COLLATE \"C\""

enum {
	COL_K,
	COL_NSP,
	COL_REL,
	COL_A,
	COL_B,
	COL_C,
	COL_POL,
	COL_QUAL,
	COL_CHK
};

typedef struct judge {
	const PGresult *res;
	const char *column;
	const char *role;
	dc_strbuf *out;
	size_t max_rows;
	size_t lines; /* problems found, listed or not */
	size_t cut;   /* out's length after max_rows - 1 of them */
} judge;

static bool yes(const PGresult *res, int row, int col)
{
	return !PQgetisnull(res, row, col) && PQgetvalue(res, row, col)[0] == 't';
}

static void problem(judge *j, const char *fmt, ...) DC_PRINTF(2, 3);

static void problem(judge *j, const char *fmt, ...)
{
	va_list ap;

	if (j->lines++ >= j->max_rows)
		return;
	va_start(ap, fmt);
	dc_strbuf_vaddf(j->out, fmt, ap);
	va_end(ap);
	dc_strbuf_addch(j->out, '\n');
	if (j->lines + 1 == j->max_rows)
		j->cut = j->out->len;
}

/* Whether the policy of row `row` refers to the column, in USING or WITH CHECK. */
static int policy_refers(const judge *j, int row, bool *out, dc_error *err)
{
	int col, rc;

	*out = false;
	for (col = COL_QUAL; col <= COL_CHK && !*out; col++)
		if (!PQgetisnull(j->res, row, col) &&
		    (rc = dc_analysis__expr_refers_to(PQgetvalue(j->res, row, col), j->column, out,
		                                      err)) != 0)
			return rc;
	return 0;
}

/* The table of rows [first, end): its RLS flags and its policies, one line. */
static int judge_table(judge *j, int first, int end, dc_error *err)
{
	const PGresult *res = j->res;
	const char *nsp = PQgetvalue(res, first, COL_NSP), *rel = PQgetvalue(res, first, COL_REL);
	dc_strbuf line = DC_STRBUF_INIT;
	char names[256] = "";
	size_t len = 0;
	bool refers = false;
	int row, rc = 0;

	for (row = first; row < end && !refers && !PQgetisnull(res, row, COL_POL); row++) {
		if ((rc = policy_refers(j, row, &refers, err)) != 0)
			goto out;
		if (len + 70 < sizeof(names)) /* a name is at most 63 bytes */
			len += (size_t)snprintf(names + len, sizeof(names) - len, "%s'%s'",
			                        len ? ", " : "", PQgetvalue(res, row, COL_POL));
	}
	if (!yes(res, first, COL_A))
		dc_strbuf_adds(&line, "row-level security not enabled");
	else if (!yes(res, first, COL_B))
		dc_strbuf_adds(&line,
		               "row-level security not forced (its owner passes its policies)");
	if (!refers && names[0])
		dc_strbuf_addf(&line, "%sno policy refers to the tenant column '%s' (policies: %s)",
		               line.len ? ", " : "", j->column, names);
	else if (!refers)
		dc_strbuf_addf(&line, "%sno policy", line.len ? ", " : "");
	if (dc_strbuf_error(&line)) {
		rc = dc_error_set(err, DC_ENOMEM, "out of memory");
		goto out;
	}
	if (line.len)
		problem(j, "table '%s.%s': %s", nsp, rel, line.buf);
	if (yes(res, first, COL_C))
		problem(j, "application role '%s' owns table '%s.%s' (or is a member of its owner)",
		        j->role, nsp, rel);
out:
	dc_strbuf_release(&line);
	return rc;
}

static int judge_rows(judge *j, dc_error *err)
{
	const PGresult *res = j->res;
	int first, end, n = PQntuples(res), rc;

	if (n == 0 || strcmp(PQgetvalue(res, 0, COL_K), "0") != 0)
		return dc_error_set(err, DC_EDB,
		                    "the row-level security query returned no role row");
	if (!yes(res, 0, COL_A))
		problem(j, "application role '%s' does not exist", j->role);
	if (yes(res, 0, COL_B))
		problem(j,
		        "application role '%s' is a superuser: row-level security never applies to it",
		        j->role);
	if (yes(res, 0, COL_C))
		problem(j,
		        "application role '%s' has BYPASSRLS: row-level security never applies to it",
		        j->role);
	for (first = 1; first < n; first = end) {
		for (end = first + 1;
		     end < n &&
		     !strcmp(PQgetvalue(res, end, COL_NSP), PQgetvalue(res, first, COL_NSP)) &&
		     !strcmp(PQgetvalue(res, end, COL_REL), PQgetvalue(res, first, COL_REL));
		     end++)
			;
		if ((rc = judge_table(j, first, end, err)) != 0)
			return rc;
	}
	/* past the limit, its last line says how many more there are */
	if (j->max_rows && j->lines > j->max_rows) {
		dc_strbuf_setlen(j->out, j->cut);
		dc_strbuf_addf(j->out, "and %zu more\n", j->lines - (j->max_rows - 1));
	}
	return dc_strbuf_error(j->out) ? dc_error_set(err, DC_ENOMEM, "out of memory") : 0;
}

/* Whether the engine was opened with tenancy.column and tenancy.app_role. */
static bool configured(const dc_engine *e)
{
	return e->rls_column && e->rls_role;
}

int dc_pg__rls_check(dc_conn *c, dc_strbuf *out, size_t max_rows, dc_error *err)
{
	const char *params[2];
	PGresult *kept[1] = { NULL };
	pipe_q q[1];
	dc_error jerr = { 0 };
	judge j;
	int ret;

	if (!configured(c->engine))
		return dc_pg__conn_fail(c, err, DC_ECONFIG, NULL, NULL, 0, 0,
		                        "tenant '%s': the RLS check needs tenancy.column and "
		                        "tenancy.app_role",
		                        dc_pg__tenant_id(c));
	if ((ret = dc_pg__settle(c, err)) != 0 || (ret = dc_pg__need_tenant(c, err)) != 0)
		return ret;
	params[0] = c->engine->rls_column;
	params[1] = c->engine->rls_role;
	q[0] = (pipe_q){ RLS_SELECT, 2, params };
	if ((ret = dc_pg__pipe_run(c, q, 1, false, kept, NULL, 0, err)) != 0)
		goto out;
	j =
	        (judge){ kept[0], c->engine->rls_column, c->engine->rls_role, out, max_rows, 0,
		         out->len };
	if ((ret = judge_rows(&j, &jerr)) != 0)
		ret = dc_pg__conn_fail(c, err, ret, NULL, NULL, 0, 0, "tenant '%s': %s",
		                       dc_pg__tenant_id(c), jerr.message);
out:
	dc_pg__pipe_clear(kept, 1);
	return ret;
}

int dc_pg__rls_shard_check(dc_engine *e, dc_strbuf *out, size_t max_rows, dc_error *err)
{
	const char *params[2];
	PGresult *res = NULL;
	PGconn *pg = NULL;
	dc_error jerr = { 0 };
	judge j;
	int ret;

	if (!configured(e))
		return dc_pg__shard_fail(e, err, DC_ECONFIG, NULL,
		                         "shard '%s': the RLS check needs tenancy.column and "
		                         "tenancy.app_role",
		                         e->shard);
	params[0] = e->rls_column;
	params[1] = e->rls_role;
	pthread_mutex_lock(&e->mu);
	if ((ret = dc_pg__admin_conn(e, &pg, err)) != 0)
		goto out;
	res = PQexecParams(pg, RLS_SELECT, 2, NULL, params, NULL, NULL, 0);
	if (!dc_pg__res_ok(res)) {
		char why[512];

		dc_text_first_line(why, sizeof(why), PQresultErrorMessage(res));
		ret = dc_pg__shard_fail(e, err, DC_EDB, dc_pg__res_state(res),
		                        "shard '%s': cannot read row-level security: %s", e->shard,
		                        why);
		goto out;
	}
	j = (judge){ res, e->rls_column, e->rls_role, out, max_rows, 0, out->len };
	if ((ret = judge_rows(&j, &jerr)) != 0)
		ret = dc_pg__shard_fail(e, err, ret, NULL, "shard '%s': %s", e->shard,
		                        jerr.message);
out:
	pthread_mutex_unlock(&e->mu);
	PQclear(res);
	return ret;
}
