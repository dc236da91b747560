/*
 * The tenant's history table, deployclaw_history: created and read by the
 * first begin of a visit, written in the same statement as the state row.
 */
#include "pg_internal.h"

/* The tail of a history write after "WITH h AS (INSERT INTO <history>": the
 * history row, as a plain insert or an upsert, then the state row (dc_pg__history_write). */
#define HISTORY_INSERT                                                                     \
	" (version, name, checksum, phase, status, started_at, finished_at, duration_ms, " \
	"run_id, actor) VALUES ($1, $2, $3, $4, $5, to_timestamp($6::float8 / 1000), "     \
	"to_timestamp($7::float8 / 1000), $8::int8, $9, $10)) "
#define HISTORY_UPSERT                                                                     \
	" AS t (version, name, checksum, phase, status, started_at, finished_at, "         \
	"duration_ms, run_id, actor) VALUES ($1, $2, $3, $4, $5, "                         \
	"to_timestamp($6::float8 / 1000), to_timestamp($7::float8 / 1000), $8::int8, $9, " \
	"$10) ON CONFLICT (version) DO UPDATE SET name = EXCLUDED.name, "                  \
	"checksum = EXCLUDED.checksum, phase = EXCLUDED.phase, status = EXCLUDED.status, " \
	"started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at, "           \
	"duration_ms = EXCLUDED.duration_ms, run_id = EXCLUDED.run_id, "                   \
	"actor = EXCLUDED.actor, written_at = clock_timestamp()) "
/* The state row, from the parameters named (tenant, version, checksum, status, phase). */
#define STATE_UPSERT_OF(t, v, c, s, p)                                                         \
	"INSERT INTO deployclaw.tenant_state AS s (tenant, version, checksum, status, phase, " \
	"updated_at) VALUES (" t ", " v ", " c ", " s ", " p ", clock_timestamp()) "           \
	"ON CONFLICT (tenant, version) DO UPDATE SET checksum = EXCLUDED.checksum, "           \
	"status = EXCLUDED.status, phase = EXCLUDED.phase, updated_at = EXCLUDED.updated_at"
#define STATE_UPSERT STATE_UPSERT_OF("$11", "$1", "$3", "$5", "$4")

/*
 * tenancy.run_as: the history row is written under the tenant's role (the
 * table is the tenant's, created under that role by its first begin) and
 * the state row as deployclaw's login role, the only one that may use the
 * deployclaw schema (the preflight refuses a role that can), then the
 * tenant's role comes back for what follows in the transaction. The login
 * role runs nothing a tenant's role could have shaped: not the history
 * table (a trigger or rule on it would run as the login role), and with
 * search_path pg_catalog no object a migration created in the tenant's
 * schema (an operator or function shadowing a built-in). Granting the roles
 * a way into the deployclaw schema instead would let a migration rewrite
 * the state of every tenant.
 */
#define RUN_AS_LOGIN \
	"SELECT set_config('role', 'none', true), set_config('search_path', 'pg_catalog', true)"
#define RUN_AS_TENANT "SELECT set_config('role', $1, true), set_config('search_path', $2, true)"
#define RUN_AS_STATE  STATE_UPSERT_OF("$1", "$2", "$3", "$4", "$5")

int dc_pg__history_sql(dc_conn *c, dc_strbuf *sb, const char *head, const char *tail)
{
	dc_strbuf_reset(sb);
	dc_strbuf_adds(sb, head);
	dc_strbuf_adds(sb, c->qschema);
	dc_strbuf_adds(sb, ".deployclaw_history");
	dc_strbuf_adds(sb, tail);
	return dc_strbuf_error(sb);
}

/* ------------------------------------------------------------------------ */
/* History                                                                  */

static int dup_value(char **out, const PGresult *res, int row, int col)
{
	*out = NULL;
	if (PQgetisnull(res, row, col))
		return 0;
	*out = dc_strdup(PQgetvalue(res, row, col));
	return *out ? 0 : DC_ENOMEM;
}

static int64_t int_value(const PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? 0 : strtoll(PQgetvalue(res, row, col), NULL, 10);
}

/* Rows [first, first + n) of `res` as history rows. `state` selects the
 * layout of STATE_SELECT (tenant, version, checksum, phase, status,
 * updated_at) instead of HISTORY_FIELDS (version, name, checksum, phase,
 * status, started_at, finished_at, duration_ms, run_id, actor). DC_EINVAL
 * for a row without a version or with an unknown status; `*bad_version`
 * (heap) then names it. */
int dc_pg__history_rows(const PGresult *res,
                        int first,
                        int n,
                        bool state,
                        dc_history_row **out,
                        char **bad_version)
{
	dc_history_row *v = NULL;
	int i, ret = 0;

	*out = NULL;
	if (n <= 0)
		return 0;
	v = calloc((size_t)n, sizeof(*v));
	if (!v)
		return DC_ENOMEM;
	for (i = 0; i < n; i++) {
		dc_history_row *r = &v[i];
		int row = first + i;
		const char *status = PQgetisnull(res, row, 4) ? NULL : PQgetvalue(res, row, 4);

		if (dup_value(&r->version, res, row, state ? 1 : 0) ||
		    dup_value(&r->checksum, res, row, 2) || dup_value(&r->phase, res, row, 3)) {
			ret = DC_ENOMEM;
			goto out;
		}
		if (state) {
			r->finished_at_ms = int_value(res, row, 5);
		} else {
			if (dup_value(&r->name, res, row, 1) ||
			    dup_value(&r->run_id, res, row, 8) ||
			    dup_value(&r->actor, res, row, 9)) {
				ret = DC_ENOMEM;
				goto out;
			}
			r->started_at_ms = int_value(res, row, 5);
			r->finished_at_ms = int_value(res, row, 6);
			r->duration_ms = int_value(res, row, 7);
		}
		if (!r->version || dc_engine__parse_status(&r->status, status) != 0) {
			*bad_version = dc_strdup(r->version ? r->version : "(null)");
			ret = DC_EINVAL;
			goto out;
		}
	}
	*out = v;
	v = NULL;
out:
	dc_history_rows_free(v, (size_t)n); /* calloc'd: unfilled rows free nothing */
	return ret;
}

static bool version_known(const dc_conn *c, const char *version)
{
	const char *p, *end = c->versions.buf + c->versions.len;

	for (p = c->versions.buf; p && p < end; p += strlen(p) + 1)
		if (strcmp(p, version) == 0)
			return true;
	return false;
}

static void version_add(dc_conn *c, const char *version)
{
	if (!version_known(c, version)) {
		dc_strbuf_adds(&c->versions, version);
		dc_strbuf_addch(&c->versions, '\0');
	}
}

/* Takes note of the versions a history read returned: when it ran in a
 * transaction holding the tenant's lock, they are all there are. */
static void versions_note(dc_conn *c, const dc_history_row *rows, size_t n)
{
	size_t i;

	dc_strbuf_reset(&c->versions);
	c->versions_known = c->locked && dc_pg__in_tx(c);
	for (i = 0; c->versions_known && i < n; i++)
		version_add(c, rows[i].version);
	if (dc_strbuf_error(&c->versions))
		c->versions_known = false;
}

static int result_rows(dc_conn *c,
                       const PGresult *res,
                       dc_history_row **rows,
                       size_t *n,
                       dc_error *err)
{
	char *bad = NULL;
	int ret;

	if (PQntuples(res) > MAX_HISTORY_ROWS)
		return dc_pg__conn_fail(c, err, DC_ELIMIT, NULL, NULL, 0, 0,
		                        "tenant '%s': deployclaw_history has more than %d rows",
		                        dc_pg__tenant_id(c), MAX_HISTORY_ROWS);
	ret = dc_pg__history_rows(res, 0, PQntuples(res), false, rows, &bad);
	if (ret == 0) {
		*n = (size_t)PQntuples(res);
		versions_note(c, *rows, *n);
	} else if (ret == DC_EINVAL)
		ret = dc_pg__conn_fail(
		        c, err, DC_EINTEGRITY, NULL, NULL, 0, 0,
		        "tenant '%s': deployclaw_history: invalid row for version '%s'",
		        dc_pg__tenant_id(c), bad ? bad : "?");
	else
		ret = dc_pg__oom(c, err);
	free(bad);
	return ret;
}

int dc_pg__history_ensure(dc_conn *c, dc_error *err)
{
	dc_strbuf sql = DC_STRBUF_INIT;
	int ret;

	if ((ret = dc_pg__settle(c, err)) != 0)
		return ret;

	if ((ret = dc_pg__need_tenant(c, err)) != 0)
		return ret;
	if (c->history_ok)
		return 0; /* the first begin created it */
	if ((ret = dc_pg__ensure_state(c, err)) != 0)
		return ret;
	if (dc_pg__history_sql(c, &sql, "CREATE TABLE IF NOT EXISTS ", " " HISTORY_COLUMNS) != 0) {
		ret = dc_pg__oom(c, err);
		goto out;
	}
	if (c->engine->model == DC_TENANCY_DATABASE &&
	    (ret = dc_pg__run_simple(c, STATE_CREATE, "deployclaw.tenant_state", err)) != 0)
		goto out;
	if ((ret = dc_pg__run_simple(c, sql.buf, "deployclaw_history", err)) == 0)
		c->history_ok = true;
out:
	dc_strbuf_release(&sql);
	return ret;
}

int dc_pg__history_read(dc_conn *c, dc_history_row **rows, size_t *n, dc_error *err)
{
	dc_strbuf sql = DC_STRBUF_INIT;
	PGresult *res = NULL;
	const char *params[1];
	int ret;

	if ((ret = dc_pg__settle(c, err)) != 0)
		return ret;

	*rows = NULL;
	*n = 0;
	if ((ret = dc_pg__need_tenant(c, err)) != 0)
		return ret;
	if (c->history) {
		/* read by the first begin, and nothing ran since */
		ret = result_rows(c, c->history, rows, n, err);
		dc_pg__drop_history_cache(c);
		return ret;
	}
	if (dc_pg__history_sql(c, &sql, "SELECT " HISTORY_FIELDS " FROM ",
	                       " ORDER BY written_at, version") != 0) {
		ret = dc_pg__oom(c, err);
		goto out;
	}
	if (!c->history_ok && dc_pg__in_tx(c)) {
		/* a missing table must not abort the transaction: ask first */
		dc_strbuf probe = DC_STRBUF_INIT;

		dc_pg__history_sql(c, &probe, "", "");
		params[0] = probe.buf;
		res = dc_strbuf_error(&probe)
		              ? NULL
		              : PQexecParams(c->pg, "SELECT to_regclass($1) IS NOT NULL", 1, NULL,
		                             params, NULL, NULL, 0);
		dc_strbuf_release(&probe);
		if (!dc_pg__res_ok(res) || PQntuples(res) != 1) {
			ret = dc_pg__res_fail(c, res, NULL, "deployclaw_history", err);
			goto out;
		}
		if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
			versions_note(c, NULL, 0);
			goto out; /* no table: nothing was ever applied */
		}
		PQclear(res);
	}
	res = PQexec(c->pg, sql.buf);
	if (!dc_pg__res_ok(res)) {
		/* outside a transaction a missing table costs nothing to find out */
		if (strcmp(dc_pg__res_state(res), "42P01") == 0 && !dc_pg__in_tx(c))
			goto out;
		ret = dc_pg__res_fail(c, res, NULL, "deployclaw_history", err);
		goto out;
	}
	c->history_ok = true;
	ret = result_rows(c, res, rows, n, err);
out:
	PQclear(res);
	dc_strbuf_release(&sql);
	return ret;
}

/* The history write's queries with run_as (see RUN_AS_LOGIN): `hist` the
 * history row under the tenant's role, then the state row as the login
 * role, then the tenant's role again. Returns how many of `q` it filled. */
static size_t run_as_queries(const dc_conn *c,
                             const char *hist,
                             const char *const *params,
                             const char **state,
                             const char **back,
                             pipe_q *q)
{
	/* tenant, version, checksum, status, phase */
	state[0] = params[10];
	state[1] = params[0];
	state[2] = params[2];
	state[3] = params[4];
	state[4] = params[3];
	back[0] = c->run_as;
	back[1] = c->qschema;
	q[0] = (pipe_q){ hist, 10, params };
	q[1] = (pipe_q){ RUN_AS_LOGIN, 0, NULL };
	q[2] = (pipe_q){ RUN_AS_STATE, 5, state };
	q[3] = (pipe_q){ RUN_AS_TENANT, 2, back };
	return 4;
}

/* Inside a transaction the write is sent and not waited for: the commit
 * that follows reads its answers in one round trip, and any other
 * operation first reads them (dc_pg__settle), failing as the write would. */
static int send_write(dc_conn *c, const pipe_q *q, size_t n, dc_error *err)
{
	size_t i;
	int ret = 0;

	if (!PQenterPipelineMode(c->pg))
		return dc_pg__lost_fail(c, err);
	for (i = 0; i < n; i++)
		if (!PQsendQueryParams(c->pg, q[i].sql, q[i].nparams, NULL, q[i].params, NULL, NULL,
		                       0))
			break;
	if (i == n && PQsendFlushRequest(c->pg) && PQflush(c->pg) == 0) {
		c->write_sent = true;
		c->write_n = n;
	} else {
		ret = dc_pg__lost_fail(c, err);
		(void)PQexitPipelineMode(c->pg);
	}
	return ret;
}

int dc_pg__history_write(dc_conn *c, const dc_history_row *row, dc_error *err)
{
	dc_strbuf sql = DC_STRBUF_INIT;
	char started[24], finished[24], duration[24];
	const char *params[11], *state[5], *back[2];
	pipe_q q[6];
	size_t n = 0;
	PGresult *res = NULL;
	bool upsert, in_tx;
	int ret;

	if ((ret = dc_pg__settle(c, err)) != 0)
		return ret;

	if ((ret = dc_pg__need_tenant(c, err)) != 0)
		return ret;
	if (!row->version)
		return dc_pg__conn_fail(c, err, DC_EINVAL, NULL, NULL, 0, 0,
		                        "tenant '%s': a history row needs a version",
		                        dc_pg__tenant_id(c));
	if (!c->history_ok && (ret = dc_pg__history_ensure(c, err)) != 0)
		return ret;
	if ((ret = dc_pg__ensure_state(c, err)) != 0)
		return ret;
	dc_pg__drop_history_cache(c);
	snprintf(started, sizeof(started), "%lld", (long long)row->started_at_ms);
	snprintf(finished, sizeof(finished), "%lld", (long long)row->finished_at_ms);
	snprintf(duration, sizeof(duration), "%lld", (long long)row->duration_ms);
	params[0] = row->version;
	params[1] = row->name;
	params[2] = row->checksum;
	params[3] = row->phase;
	params[4] = dc_history_status_name(row->status);
	params[5] = row->started_at_ms > 0 ? started : NULL;
	params[6] = row->finished_at_ms > 0 ? finished : NULL;
	params[7] = duration;
	params[8] = row->run_id;
	params[9] = row->actor;
	params[10] = c->tenant->id;
	in_tx = dc_pg__in_tx(c);
	/*
	 * One statement: the history row and the state row are written together
	 * even outside a transaction (with run_as: one transaction, see
	 * RUN_AS_LOGIN). A version the history is known not to hold
	 * is a plain INSERT: an upsert (ON CONFLICT DO UPDATE) makes PostgreSQL
	 * look up the publications of the table's schema, and before
	 * PostgreSQL 17 that lookup scans a list that grows with every schema
	 * the session has seen -- across 10,000 tenant schemas it cost more than
	 * the rest of the history write.
	 */
	upsert = !(c->versions_known && in_tx && !version_known(c, row->version));
	if (dc_pg__history_sql(
	            c, &sql, "WITH h AS (INSERT INTO ",
	            c->run_as ? (upsert ? HISTORY_UPSERT "SELECT 1" : HISTORY_INSERT "SELECT 1")
	            : upsert  ? HISTORY_UPSERT STATE_UPSERT
	                      : HISTORY_INSERT STATE_UPSERT) != 0) {
		ret = dc_pg__oom(c, err);
		goto out;
	}
	if (c->versions_known)
		version_add(c, row->version);
	if (dc_strbuf_error(&c->versions))
		c->versions_known = false;
	if (!c->run_as) {
		q[n++] = (pipe_q){ sql.buf, 11, params };
	} else {
		if (!in_tx)
			q[n++] = (pipe_q){ "BEGIN", 0, NULL };
		n += run_as_queries(c, sql.buf, params, state, back, &q[n]);
		if (!in_tx)
			q[n - 1] = (pipe_q){ "COMMIT", 0, NULL }; /* SET LOCAL ends with it */
	}
	if (in_tx) {
		ret = send_write(c, q, n, err);
		goto out;
	}
	if (n > 1) {
		if ((ret = dc_pg__pipe_run(c, q, n, false, NULL, NULL, 0, err)) != 0)
			dc_pg__abandon_tx(c);
		goto out;
	}
	res = PQexecParams(c->pg, sql.buf, 11, NULL, params, NULL, NULL, 0);
	if (!dc_pg__res_ok(res))
		ret = dc_pg__res_fail(c, res, NULL, "deployclaw_history", err);
out:
	PQclear(res);
	dc_strbuf_release(&sql);
	return ret;
}
