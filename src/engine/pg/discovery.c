/*
 * Tenant discovery of the PostgreSQL engine.
 */
#include "pg_internal.h"

/* ------------------------------------------------------------------------ */
/* Discovery                                                                */

/* Appends `s` to a text[] literal being built in `sb` (after "{"). */
void dc_pg__array_add(dc_strbuf *sb, const char *s)
{
	if (sb->len > 1)
		dc_strbuf_addch(sb, ',');
	dc_strbuf_addch(sb, '"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			dc_strbuf_addch(sb, '\\');
		dc_strbuf_addch(sb, *s);
	}
	dc_strbuf_addch(sb, '"');
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Appends column 0 of every row of `res` to `names` (NULLs skipped). */
static int collect(dc_ptrvec *names, const PGresult *res)
{
	int i;

	for (i = 0; i < PQntuples(res); i++) {
		char *s;

		if (PQgetisnull(res, i, 0))
			continue;
		if (names->len >= MAX_TENANTS)
			return DC_ELIMIT;
		s = dc_strdup(PQgetvalue(res, i, 0));
		if (!s || dc_ptrvec_push(names, s) != 0) {
			free(s);
			return DC_ENOMEM;
		}
	}
	return 0;
}

static int discover_query(dc_engine *e,
                          PGconn *pg,
                          dc_ptrvec *names,
                          const char *sql,
                          int nparams,
                          const char *const *params,
                          const char *what,
                          dc_error *err)
{
	PGresult *res = PQexecParams(pg, sql, nparams, NULL, params, NULL, NULL, 0);
	char why[512];
	int ret = 0;

	if (!dc_pg__res_ok(res)) {
		if (res && PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY))
			dc_pg__copy_cut(why, sizeof(why),
			                PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY));
		else
			dc_pg__first_line(why, sizeof(why), PQerrorMessage(pg));
		ret = dc_pg__shard_fail(e, err, DC_EDB, dc_pg__res_state(res), "shard '%s': %s: %s",
		                        e->shard, what, why);
		goto out;
	}
	if (PQnfields(res) < 1) {
		ret = dc_error_set(err, DC_ECONFIG, "shard '%s': %s returned no column", e->shard,
		                   what);
		goto out;
	}
	ret = collect(names, res);
	if (ret == DC_ELIMIT)
		ret = dc_error_set(err, ret, "shard '%s': more than %zu tenants", e->shard,
		                   MAX_TENANTS);
	else if (ret)
		ret = dc_error_set(err, ret, "out of memory");
out:
	PQclear(res);
	return ret;
}

int dc_pg__discover(dc_engine *e, dc_tenant **tenants, size_t *n, dc_error *err)
{
	dc_ptrvec names = DC_PTRVEC_INIT;
	dc_strbuf arr = DC_STRBUF_INIT;
	dc_tenant *ts = NULL;
	PGconn *pg = NULL;
	size_t i, nt = 0;
	bool schema = e->model == DC_TENANCY_SCHEMA;
	int ret;

	*tenants = NULL;
	*n = 0;
	pthread_mutex_lock(&e->mu);
	if ((ret = dc_pg__admin_conn(e, &pg, err)) != 0)
		goto out;
	if (e->model == DC_TENANCY_ROW) {
		char *id = dc_strdup(e->shard);

		if (!id || dc_ptrvec_push(&names, id) != 0) {
			free(id);
			goto oom;
		}
	}
	if (e->model != DC_TENANCY_ROW && e->pattern) {
		const char *params[1] = { e->pattern };

		ret = discover_query(
		        e, pg, &names,
		        schema ? "SELECT nspname FROM pg_namespace WHERE nspname LIKE $1 "
		                 "AND nspname <> 'deployclaw' AND nspname <> 'information_schema' "
		                 "AND nspname NOT LIKE 'pg\\_%'"
		               : "SELECT datname FROM pg_database WHERE datname LIKE $1 "
		                 "AND datallowconn AND NOT datistemplate",
		        1, params, "tenancy.pattern", err);
		if (ret)
			goto out;
	}
	if (e->model != DC_TENANCY_ROW && e->query &&
	    (ret = discover_query(e, pg, &names, e->query, 0, NULL, "tenancy.query", err)) != 0)
		goto out;
	if (e->model != DC_TENANCY_ROW && e->nlist) {
		const char *params[1];

		/* a listed tenant lives on one shard: keep those that exist here */
		dc_strbuf_addch(&arr, '{');
		for (i = 0; i < e->nlist; i++)
			dc_pg__array_add(&arr, e->list[i]);
		dc_strbuf_addch(&arr, '}');
		if (dc_strbuf_error(&arr))
			goto oom;
		params[0] = arr.buf;
		ret = discover_query(
		        e, pg, &names,
		        schema ? "SELECT nspname FROM pg_namespace WHERE nspname = ANY($1::text[])"
		               : "SELECT datname FROM pg_database WHERE datname = ANY($1::text[]) "
		                 "AND datallowconn AND NOT datistemplate",
		        1, params, "tenancy.list", err);
		if (ret)
			goto out;
	}
	if (names.len == 0)
		goto out;
	qsort(names.items, names.len, sizeof(*names.items), cmp_str);
	ts = calloc(names.len, sizeof(*ts));
	if (!ts)
		goto oom;
	for (i = 0; i < names.len; i++) {
		dc_tenant *t;

		if (nt > 0 && strcmp(names.items[i], ts[nt - 1].id) == 0)
			continue; /* found by two of pattern, query and list */
		t = &ts[nt++];
		t->id = names.items[i];
		names.items[i] = NULL;
		t->shard = dc_strdup(e->shard);
		t->target = dc_strdup(e->model == DC_TENANCY_ROW ? PQdb(pg) : t->id);
		if (!t->shard || !t->target)
			goto oom;
	}
	*tenants = ts;
	*n = nt;
	ts = NULL;
	nt = 0;
	goto out;
oom:
	ret = dc_error_set(err, DC_ENOMEM, "out of memory");
out:
	pthread_mutex_unlock(&e->mu);
	dc_tenants_free(ts, nt);
	dc_ptrvec_release(&names, free);
	dc_strbuf_release(&arr);
	return ret;
}
