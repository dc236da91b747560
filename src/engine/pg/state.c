/*
 * deployclaw's own state table, deployclaw.tenant_state: one row per tenant
 * and version in the shard's database (schema and row models), read for
 * every tenant of a shard at once by history_read_all.
 */
#include "pg_internal.h"

#define STATE_SELECT                                                                  \
	"SELECT tenant, version, checksum, phase, status, "                           \
	"(extract(epoch FROM updated_at) * 1000)::int8 FROM deployclaw.tenant_state " \
	"WHERE tenant = ANY($1::text[]) ORDER BY tenant, updated_at, version"

/* ------------------------------------------------------------------------ */
/* Transactions                                                             */

/* Creates deployclaw.tenant_state once per engine (schema and row models),
 * on the admin connection, in a transaction of its own. */
int dc_pg__ensure_state(dc_conn *c, dc_error *err)
{
	dc_engine *e = c->engine;
	PGconn *pg = NULL;
	PGresult *res = NULL;
	int ret = 0;

	if (e->model == DC_TENANCY_DATABASE)
		return 0; /* created by the tenant's first begin, in its database */
	pthread_mutex_lock(&e->mu);
	if (e->state_ready)
		goto out;
	if ((ret = dc_pg__admin_conn(e, &pg, err)) != 0)
		goto out;
	res = PQexec(pg, STATE_CREATE);
	if (!dc_pg__res_ok(res)) {
		char why[512];

		dc_text_first_line(why, sizeof(why), PQresultErrorMessage(res));
		ret = dc_pg__conn_fail(c, err, DC_EDB, dc_pg__res_state(res), NULL, 0, 0,
		                       "shard '%s': cannot create deployclaw.tenant_state: %s",
		                       e->shard, why);
		goto out;
	}
	e->state_ready = true;
out:
	PQclear(res);
	pthread_mutex_unlock(&e->mu);
	return ret;
}

/* ------------------------------------------------------------------------ */
/* history_read_all                                                         */

typedef struct tenant_index {
	const char *id;
	size_t i;
} tenant_index;

static int cmp_index(const void *a, const void *b)
{
	return strcmp(((const tenant_index *)a)->id, ((const tenant_index *)b)->id);
}

static void set_tenant_error(char (*errors)[512], size_t i, const char *fmt, ...) DC_PRINTF(3, 4);

static void set_tenant_error(char (*errors)[512], size_t i, const char *fmt, ...)
{
	dc_strbuf sb = DC_STRBUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	dc_strbuf_vaddf(&sb, fmt, ap);
	va_end(ap);
	dc_engine__copy_cut(errors[i], 512, dc_strbuf_error(&sb) ? "out of memory" : sb.buf);
	dc_strbuf_release(&sb);
}

/* Database model: each tenant database's history table, on a short-lived
 * connection per database (the state table lives in each of them). */
static int read_all_databases(dc_engine *e,
                              const dc_tenant *tenants,
                              size_t n,
                              dc_history_row **rows,
                              size_t *counts,
                              char (*errors)[512])
{
	dc_conn tmp;
	size_t i;

	for (i = 0; i < n; i++) {
		dc_error terr = { 0 };

		memset(&tmp, 0, sizeof(tmp));
		tmp.engine = e;
		if (dc_pg__enter(&tmp, &tenants[i], &terr) == 0)
			(void)dc_pg__history_read(&tmp, &rows[i], &counts[i], &terr);
		if (terr.code != 0) {
			if (terr.code == DC_ENOMEM) {
				dc_pg__leave(&tmp);
				dc_pg__drop_connection(&tmp);
				return DC_ENOMEM;
			}
			set_tenant_error(errors, i, "%s", terr.message);
		}
		dc_pg__leave(&tmp);
		dc_pg__drop_connection(&tmp);
	}
	return 0;
}

int dc_pg__history_read_all(dc_engine *e,
                            const dc_tenant *tenants,
                            size_t n,
                            dc_history_row **rows,
                            size_t *counts,
                            char (*errors)[512],
                            dc_error *err)
{
	dc_strbuf arr = DC_STRBUF_INIT;
	tenant_index *idx = NULL;
	PGresult *res = NULL;
	PGconn *pg = NULL;
	const char *params[1];
	char *bad = NULL;
	size_t i;
	int r, first, ret = 0;
	bool locked = false;

	for (i = 0; i < n; i++) {
		rows[i] = NULL;
		counts[i] = 0;
		errors[i][0] = '\0';
	}
	if (n == 0)
		return 0;
	if (e->model == DC_TENANCY_DATABASE) {
		ret = read_all_databases(e, tenants, n, rows, counts, errors);
		return ret ? dc_error_set(err, ret, "out of memory") : 0;
	}
	idx = dc_malloc_array(n, sizeof(*idx));
	if (!idx)
		goto oom;
	dc_strbuf_addch(&arr, '{');
	for (i = 0; i < n; i++) {
		idx[i].id = tenants[i].id;
		idx[i].i = i;
		dc_pg__array_add(&arr, tenants[i].id);
	}
	dc_strbuf_addch(&arr, '}');
	if (dc_strbuf_error(&arr))
		goto oom;
	qsort(idx, n, sizeof(*idx), cmp_index);
	pthread_mutex_lock(&e->mu);
	locked = true;
	if ((ret = dc_pg__admin_conn(e, &pg, err)) != 0)
		goto out;
	params[0] = arr.buf;
	res = PQexecParams(pg, STATE_SELECT, 1, NULL, params, NULL, NULL, 0);
	if (!dc_pg__res_ok(res)) {
		char why[512];

		if (strcmp(dc_pg__res_state(res), "42P01") == 0)
			goto out; /* no state table yet: nothing was applied on this shard */
		dc_text_first_line(why, sizeof(why), PQresultErrorMessage(res));
		ret = dc_pg__shard_fail(e, err, DC_EDB, dc_pg__res_state(res),
		                        "shard '%s': deployclaw.tenant_state: %s", e->shard, why);
		goto out;
	}
	pthread_mutex_unlock(&e->mu);
	locked = false;
	/* rows come grouped by tenant */
	for (first = 0; first < PQntuples(res); first = r) {
		const char *id = PQgetvalue(res, first, 0);
		tenant_index key = { id, 0 }, *hit;

		for (r = first + 1; r < PQntuples(res) && strcmp(PQgetvalue(res, r, 0), id) == 0;
		     r++)
			;
		hit = bsearch(&key, idx, n, sizeof(*idx), cmp_index);
		if (!hit || rows[hit->i])
			continue;
		if (r - first > MAX_HISTORY_ROWS) {
			set_tenant_error(errors, hit->i, "tenant '%s': too many state rows", id);
			continue;
		}
		ret = dc_pg__history_rows(res, first, r - first, true, &rows[hit->i], &bad);
		if (ret == DC_ENOMEM)
			goto oom;
		if (ret == DC_EINVAL) {
			set_tenant_error(
			        errors, hit->i,
			        "tenant '%s': deployclaw.tenant_state: invalid row for version '%s'",
			        id, bad ? bad : "?");
			free(bad);
			bad = NULL;
			ret = 0;
			continue;
		}
		counts[hit->i] = (size_t)(r - first);
	}
	goto out;
oom:
	ret = dc_error_set(err, DC_ENOMEM, "out of memory");
out:
	if (locked)
		pthread_mutex_unlock(&e->mu);
	if (ret != 0)
		for (i = 0; i < n; i++) {
			dc_history_rows_free(rows[i], counts[i]);
			rows[i] = NULL;
			counts[i] = 0;
		}
	PQclear(res);
	free(idx);
	free(bad);
	dc_strbuf_release(&arr);
	return ret;
}
