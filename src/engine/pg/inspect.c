/*
 * Reading a tenant's state for tests, diagnostics and rollback checks:
 * query_text and the schema fingerprint.
 */
#include "pg_internal.h"

/* Columns, indexes and constraints of the tenant's schema(s), one line each,
 * with search_path pinned to pg_catalog so the text does not depend on it. */
#define FINGERPRINT_SELECT                                                                    \
	"WITH ns AS (SELECT oid, nspname FROM pg_namespace WHERE CASE WHEN $1::text <> '' "   \
	"THEN nspname = $1::text ELSE nspname NOT IN ('pg_catalog', 'information_schema', "   \
	"'deployclaw') AND nspname NOT LIKE 'pg\\_toast%' AND nspname NOT LIKE 'pg\\_temp%' " \
	"END), rel AS (SELECT c.oid, c.relname, ns.nspname FROM pg_class c JOIN ns "          \
	"ON ns.oid = c.relnamespace WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') "            \
	"AND c.relname <> 'deployclaw_history') "                                             \
	"SELECT l FROM (SELECT format('column %s.%s.%s %s%s%s', r.nspname, r.relname, "       \
	"a.attname, format_type(a.atttypid, a.atttypmod), "                                   \
	"CASE WHEN a.attnotnull THEN ' not null' ELSE '' END, "                               \
	"coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')) AS l "                 \
	"FROM rel r JOIN pg_attribute a ON a.attrelid = r.oid LEFT JOIN pg_attrdef d "        \
	"ON d.adrelid = a.attrelid AND d.adnum = a.attnum "                                   \
	"WHERE a.attnum > 0 AND NOT a.attisdropped "                                          \
	"UNION ALL SELECT format('index %s.%s %s%s', r.nspname, r.relname, "                  \
	"pg_get_indexdef(i.indexrelid), CASE WHEN i.indisvalid THEN '' ELSE ' invalid' END) " \
	"FROM rel r JOIN pg_index i ON i.indrelid = r.oid "                                   \
	"UNION ALL SELECT format('constraint %s.%s.%s %s', r.nspname, r.relname, "            \
	"co.conname, pg_get_constraintdef(co.oid)) FROM rel r JOIN pg_constraint co "         \
	"ON co.conrelid = r.oid) s ORDER BY l COLLATE \"C\""

/* ------------------------------------------------------------------------ */
/* Checks, fingerprint                                                      */

int dc_pg__query_text(dc_conn *c, const char *sql, dc_strbuf *out, size_t max_rows, dc_error *err)
{
	PGresult *res = NULL;
	size_t i;
	int ret;

	if ((ret = dc_pg__user_query(c, sql, NULL, NULL, &res, err)) != 0)
		return ret;
	for (i = 0; i < max_rows && i < (size_t)PQntuples(res); i++) {
		if (PQnfields(res) > 0 && !PQgetisnull(res, (int)i, 0))
			dc_strbuf_adds(out, PQgetvalue(res, (int)i, 0));
		dc_strbuf_addch(out, '\n');
	}
	if (dc_strbuf_error(out))
		ret = dc_pg__conn_fail(c, err, dc_strbuf_error(out), NULL, NULL, 0, 0,
		                       "tenant '%s': query output too large", dc_pg__tenant_id(c));
	PQclear(res);
	return ret;
}

int dc_pg__schema_fingerprint(dc_conn *c, char out[65], dc_error *err)
{
	const char *params[1];
	dc_strbuf text = DC_STRBUF_INIT;
	PGresult *res = NULL, *kept[5];
	pipe_q q[5];
	size_t n = 0, keep;
	bool tx;
	int i, ret;

	if ((ret = dc_pg__settle(c, err)) != 0)
		return ret;

	out[0] = '\0';
	if ((ret = dc_pg__need_tenant(c, err)) != 0)
		return ret;
	dc_pg__drop_history_cache(c);
	params[0] = c->engine->model == DC_TENANCY_SCHEMA ? c->tenant->target : "";
	/* search_path pinned for the query only: a savepoint inside the tenant's
	 * transaction (rolling back to it undoes the SET LOCAL), a transaction of
	 * its own outside one */
	tx = dc_pg__in_tx(c);
	q[n++] = (pipe_q){ tx ? "SAVEPOINT deployclaw_fingerprint" : "BEGIN", 0, NULL };
	q[n++] = (pipe_q){ "SELECT set_config('search_path', 'pg_catalog', true)", 0, NULL };
	keep = n;
	q[n++] = (pipe_q){ FINGERPRINT_SELECT, 1, params };
	if (tx) {
		q[n++] = (pipe_q){ "ROLLBACK TO SAVEPOINT deployclaw_fingerprint", 0, NULL };
		q[n++] = (pipe_q){ "RELEASE SAVEPOINT deployclaw_fingerprint", 0, NULL };
	} else {
		q[n++] = (pipe_q){ "COMMIT", 0, NULL };
	}
	ret = dc_pg__pipe_run(c, q, n, false, kept, NULL, 0, err);
	res = kept[keep];
	kept[keep] = NULL;
	dc_pg__pipe_clear(kept, n);
	if (ret != 0) {
		if (!tx)
			dc_pg__abandon_tx(c);
		goto out;
	}
	for (i = 0; i < PQntuples(res); i++) {
		dc_strbuf_adds(&text, PQgetvalue(res, i, 0));
		dc_strbuf_addch(&text, '\0'); /* no line holds a NUL: a separator */
	}
	if (dc_strbuf_error(&text)) {
		ret = dc_pg__oom(c, err);
		goto out;
	}
	dc_sha256_hex(out, text.buf, text.len);
out:
	PQclear(res);
	dc_strbuf_release(&text);
	return ret;
}
