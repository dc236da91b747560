/*
 * topology.c — shards, replicas, tenants and replica lag of a PostgreSQL
 * fleet (topology.h says what is measured and how replicas are matched).
 *
 * One thread per shard; each thread owns its connections and writes only
 * its own dc_topology_shard, so there is nothing to lock. Round trips per
 * shard: the primary gets an info query, the system identifier (when the
 * role may read it), discovery + versions in one query, and the
 * replication view after the replicas were sampled; each replica gets the
 * info query, the system identifier and its lag sample.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include <deployclaw/engine.h>
#include <deployclaw/migration.h>
#include <deployclaw/topology.h>

#include "util/pool.h"
#include "util/text.h"
#include "util/util.h"

#define MSG_SIZE 512

/* The session settings every topology connection starts with, read in the
 * first query: no catalog or lock wait may hang the command. */
static const char info_sql[] = "SELECT set_config('statement_timeout', '30s', false),"
                               " set_config('lock_timeout', '5s', false),"
                               " current_setting('server_version'),"
                               " current_setting('server_version_num'),"
                               " pg_is_in_recovery(),"
                               " to_regclass('deployclaw.tenant_state') IS NOT NULL,"
                               " has_function_privilege('pg_control_system()', 'EXECUTE')";

static const char sysid_sql[] = "SELECT system_identifier::text FROM pg_control_system()";

/* On a replica. pg_stat_wal_receiver shows details to privileged roles
 * only; the LEFT JOIN keeps the row when there is no WAL receiver. */
static const char replica_sql[] =
        "SELECT pg_last_wal_replay_lsn()::text,"
        " pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::bigint,"
        " extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8,"
        " w.pid, w.status, w.slot_name, w.conninfo, current_setting('cluster_name')"
        " FROM (SELECT 1) AS one LEFT JOIN pg_stat_wal_receiver AS w ON true";

/* On the primary, after the replicas: its current LSN and one row per
 * walsender, with the slot it serves. */
static const char replication_sql[] =
        "SELECT c.lsn::text, r.pid, r.application_name, host(r.client_addr), r.client_port,"
        " r.state, r.sync_state, extract(epoch FROM r.replay_lag)::float8, s.slot_name"
        " FROM (SELECT pg_current_wal_lsn() AS lsn) AS c"
        " LEFT JOIN (pg_stat_replication AS r"
        "  LEFT JOIN pg_replication_slots AS s ON s.active_pid = r.pid) ON true";

static void msgf(char *dst, const char *fmt, ...) DC_PRINTF(2, 3);

/* Writes a message into one of the fixed MSG_SIZE fields; longer text is
 * cut (these are one-line diagnostics). */
static void msgf(char *dst, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(dst, MSG_SIZE, fmt, ap);
	va_end(ap);
}

/* The first line of a libpq message, without its "ERROR:  " or "FATAL:  ";
 * an empty one says so. */
static void first_line(char *dst, size_t size, const char *msg)
{
	dc_text_first_line(dst, size, msg && *msg ? msg : "unknown error");
}

/* Connects with a bounded timeout; the DSN's own settings win (libpq keeps
 * the last value of a repeated keyword, and dbname expands last). With `db`
 * (not NULL), to that database instead: only the first dbname is expanded
 * as a conninfo, the second, a plain name, overrides the database it names. */
static PGconn *connect_dsn(const char *dsn, const char *db, char *why, size_t why_size)
{
	char timeout[16];
	const char *keys[] = { "connect_timeout", "fallback_application_name", "dbname", "dbname",
		               NULL };
	const char *vals[] = { timeout, "deployclaw/topology", dsn, db, NULL };
	PGconn *conn;

	if (!db)
		keys[3] = NULL;
	snprintf(timeout, sizeof(timeout), "%d", DC_TOPOLOGY_CONNECT_TIMEOUT_S);
	conn = PQconnectdbParams(keys, vals, 1);
	if (!conn) {
		first_line(why, why_size, "out of memory");
		return NULL;
	}
	if (PQstatus(conn) != CONNECTION_OK) {
		first_line(why, why_size, PQerrorMessage(conn));
		PQfinish(conn);
		return NULL;
	}
	return conn;
}

/* Runs one statement; NULL with the reason in `why` when it failed. */
static PGresult *run(PGconn *conn,
                     size_t *queries,
                     const char *sql,
                     int nparams,
                     const char *const *params,
                     char *why,
                     size_t why_size)
{
	PGresult *res;
	const char *state;
	char line[400];

	(*queries)++;
	res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
	if (res && PQresultStatus(res) == PGRES_TUPLES_OK)
		return res;
	first_line(line, sizeof(line), res ? PQresultErrorMessage(res) : PQerrorMessage(conn));
	state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	if (state)
		snprintf(why, why_size, "%.390s (SQLSTATE %.5s)", line, state);
	else
		snprintf(why, why_size, "%.390s", line);
	PQclear(res);
	return NULL;
}

static const char *value(const PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

static bool is_true(const PGresult *res, int row, int col)
{
	const char *v = value(res, row, col);

	return v && v[0] == 't';
}

/* "16/B374D848" → bytes; false when NULL or malformed. */
static bool parse_lsn(const char *s, uint64_t *out)
{
	unsigned int hi, lo;
	int end = 0;

	if (!s || sscanf(s, "%X/%X%n", &hi, &lo, &end) != 2 || s[end] != '\0')
		return false;
	*out = ((uint64_t)hi << 32) | lo;
	return true;
}

static bool parse_i64(const char *s, int64_t *out)
{
	char *end;
	long long v;

	if (!s)
		return false;
	v = strtoll(s, &end, 10);
	if (end == s || *end)
		return false;
	*out = (int64_t)v;
	return true;
}

static bool parse_double(const char *s, double *out)
{
	char *end;
	double v;

	if (!s)
		return false;
	v = strtod(s, &end);
	if (end == s || *end)
		return false;
	*out = v;
	return true;
}

/* ------------------------------------------------------------------------ */
/* Tenants and versions: one query per shard.                               */

/*
 * The discovery query: the shard's tenants as dc_pg_tenants_sql defines them
 * (the engine runs the same), joined with the applied and partial rows of
 * the state table when `state_join`.
 */
static int discovery_sql(const dc_config *cfg,
                         const dc_shard_config *sc,
                         bool state_join,
                         dc_strbuf *sql,
                         char **params,
                         int *nparams)
{
	if (dc_pg_tenants_sql(sql, params, nparams, cfg, sc->name, NULL) != 0)
		return DC_ENOMEM; /* DC_ECONFIG was ruled out by dc_topology_collect */
	if (state_join)
		dc_strbuf_adds(sql, "SELECT t.tenant, s.version, s.status FROM dc_tenants AS t"
		                    " LEFT JOIN deployclaw.tenant_state AS s ON s.tenant = t.tenant"
		                    " AND s.status IN ('applied', 'partial')"
		                    " ORDER BY t.tenant COLLATE \"C\"");
	else
		dc_strbuf_adds(sql, "SELECT t.tenant, NULL::text, NULL::text FROM dc_tenants AS t"
		                    " ORDER BY t.tenant COLLATE \"C\"");
	return dc_strbuf_error(sql) ? DC_ENOMEM : 0;
}

/* Natural version order; "" (nothing applied) first; byte order breaks ties
 * so that the sort is total. */
static int version_cmp(const void *a, const void *b)
{
	const char *x = *(const char *const *)a, *y = *(const char *const *)b;
	int c;

	if (!*x || !*y)
		return (*x != '\0') - (*y != '\0');
	c = dc_version_compare(x, y);
	return c ? c : strcmp(x, y);
}

static bool same_version(const char *a, const char *b)
{
	if (!*a || !*b)
		return !*a && !*b;
	return dc_version_compare(a, b) == 0;
}

/* One (tenant, version, status) row; version and status NULL when the
 * tenant has nothing applied. Borrowed from PGresults. */
typedef struct state_row {
	const char *tenant;
	const char *version;
	const char *status;
} state_row;

/* Reduces the rows, grouped by tenant, to the latest version per tenant (by
 * dc_version_compare, not SQL's text order) and counts tenants per version. */
static int tally(dc_topology_shard *sh, const state_row *rows, size_t nrows)
{
	const char **latest = NULL;
	size_t i = 0, n = 0, j, k;
	int rc = 0;

	latest = dc_malloc_array(nrows ? nrows : 1, sizeof(*latest));
	if (!latest)
		return DC_ENOMEM;
	while (i < nrows) {
		const char *tenant = rows[i].tenant;
		const char *best = NULL;
		bool partial = false;

		for (; i < nrows && !strcmp(rows[i].tenant, tenant); i++) {
			const char *v = rows[i].version, *st = rows[i].status;
			int c;

			if (!v)
				continue;
			c = best ? dc_version_compare(v, best) : 1;
			if (c > 0 || (c == 0 && strcmp(v, best) > 0)) {
				best = v;
				partial = st && !strcmp(st, "partial");
			}
		}
		latest[n++] = best ? best : "";
		sh->npartial += partial;
	}
	sh->ntenants = n;
	qsort(latest, n, sizeof(*latest), version_cmp);
	for (j = 0; j < n; j = k) {
		dc_topology_version *grown;

		/* "007" and "7" are one version (migration.h): one group. */
		for (k = j + 1; k < n && same_version(latest[k], latest[j]); k++)
			;
		grown = dc_realloc_array(sh->versions, sh->nversions + 1, sizeof(*grown));
		if (!grown) {
			rc = DC_ENOMEM;
			break;
		}
		sh->versions = grown;
		sh->versions[sh->nversions].tenants = k - j;
		sh->versions[sh->nversions].version = dc_strdup(latest[j]);
		if (!sh->versions[sh->nversions++].version) {
			rc = DC_ENOMEM;
			break;
		}
	}
	free(latest);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* Replicas.                                                                */

/* What a replica said about itself, kept until the primary was sampled. */
typedef struct replica_sample {
	bool replay_known;
	uint64_t replay_lsn;
	bool since_known;
	double since_replay_s; /* now() - pg_last_xact_replay_timestamp() */
	char *sysid;
	char *slot;
	char *appname; /* the name its walreceiver gives the primary */
} replica_sample;

/* The application_name a walreceiver presents: its primary_conninfo's,
 * else cluster_name, else "walreceiver" (PostgreSQL 12 and later). */
static char *walreceiver_appname(const char *conninfo, const char *cluster_name)
{
	PQconninfoOption *opts = conninfo ? PQconninfoParse(conninfo, NULL) : NULL;
	PQconninfoOption *o;
	char *name = NULL;

	for (o = opts; o && o->keyword; o++)
		if (!strcmp(o->keyword, "application_name") && o->val && *o->val)
			name = dc_strdup(o->val);
	PQconninfoFree(opts);
	if (name)
		return name;
	return dc_strdup(cluster_name && *cluster_name ? cluster_name : "walreceiver");
}

static int sample_replica(const char *dsn,
                          const char *primary_sysid,
                          dc_topology_replica *r,
                          replica_sample *s)
{
	PGconn *conn = NULL;
	PGresult *res = NULL;
	size_t queries = 0;
	char why[MSG_SIZE];
	const char *v;
	int rc = 0;

	if (!(conn = connect_dsn(dsn, NULL, why, sizeof(why)))) {
		msgf(r->error, "unreachable: %s", why);
		goto out;
	}
	if (!(res = run(conn, &queries, info_sql, 0, NULL, why, sizeof(why)))) {
		msgf(r->error, "unreachable: %s", why);
		goto out;
	}
	r->reachable = true;
	r->in_recovery = is_true(res, 0, 4);
	if (!(r->server_version = dc_strdup(PQgetvalue(res, 0, 2)))) {
		rc = DC_ENOMEM;
		goto out;
	}
	if (!r->in_recovery) {
		msgf(r->error, "not in recovery: a primary, not a replica");
		goto out;
	}
	if (is_true(res, 0, 6)) {
		PQclear(res);
		if (!(res = run(conn, &queries, sysid_sql, 0, NULL, why, sizeof(why)))) {
			msgf(r->error, "reading the system identifier failed: %s", why);
			goto out;
		}
		if (!(s->sysid = dc_strdup(PQgetvalue(res, 0, 0)))) {
			rc = DC_ENOMEM;
			goto out;
		}
		if (primary_sysid && strcmp(s->sysid, primary_sysid)) {
			msgf(r->error,
			     "a replica of another cluster (system identifier %s, the primary's is %s)",
			     s->sysid, primary_sysid);
			goto out;
		}
	}
	PQclear(res);
	if (!(res = run(conn, &queries, replica_sql, 0, NULL, why, sizeof(why)))) {
		msgf(r->error, "sampling replication lag failed: %s", why);
		goto out;
	}
	s->replay_known = parse_lsn(value(res, 0, 0), &s->replay_lsn);
	if (!parse_i64(value(res, 0, 1), &r->replay_pending_bytes))
		r->replay_pending_bytes = -1;
	s->since_known = parse_double(value(res, 0, 2), &s->since_replay_s);
	if ((v = value(res, 0, 4)) != NULL && !(r->receiver_status = dc_strdup(v))) {
		rc = DC_ENOMEM;
		goto out;
	}
	if ((v = value(res, 0, 5)) != NULL && *v && !(s->slot = dc_strdup(v))) {
		rc = DC_ENOMEM;
		goto out;
	}
	if (!(s->appname = walreceiver_appname(value(res, 0, 6), value(res, 0, 7)))) {
		rc = DC_ENOMEM;
		goto out;
	}
	if (!value(res, 0, 3))
		msgf(r->warning, "no WAL receiver runs (archive recovery, or it cannot reach its "
		                 "upstream)");
	else if (r->receiver_status && strcmp(r->receiver_status, "streaming"))
		msgf(r->warning, "WAL receiver is '%s', not streaming", r->receiver_status);
	r->ok = true;
out:
	PQclear(res);
	PQfinish(conn);
	return rc;
}

typedef struct sender_row {
	int row;
	bool claimed;
} sender_row;

/* Copies the primary's row `row` into the replica it belongs to. */
static int claim(dc_topology_replica *r, const PGresult *res, int row, const char *how)
{
	const char *v;
	int64_t port;

	r->streaming = true;
	r->matched_by = how;
	if ((v = value(res, row, 2)) != NULL && !(r->application_name = dc_strdup(v)))
		return DC_ENOMEM;
	if ((v = value(res, row, 3)) != NULL && !(r->client_addr = dc_strdup(v)))
		return DC_ENOMEM;
	r->client_port = parse_i64(value(res, row, 4), &port) ? (int)port : -1;
	if ((v = value(res, row, 5)) != NULL && !(r->state = dc_strdup(v)))
		return DC_ENOMEM;
	if ((v = value(res, row, 6)) != NULL && !(r->sync_state = dc_strdup(v)))
		return DC_ENOMEM;
	if (!parse_double(value(res, row, 7), &r->replay_lag_seconds))
		r->replay_lag_seconds = -1;
	return 0;
}

/* Matches the sampled replicas to the primary's walsenders (topology.h). */
static int match_senders(dc_topology_shard *sh, replica_sample *samples, const PGresult *res)
{
	int nrows = PQntuples(res), i;
	sender_row *rows = NULL;
	size_t nsenders = 0, j, unmatched = 0, last = 0, nfree = 0, free_row = 0;
	int rc = 0, pass;

	rows = dc_malloc_array(nrows > 0 ? (size_t)nrows : 1, sizeof(*rows));
	if (!rows)
		return DC_ENOMEM;
	for (i = 0; i < nrows; i++)
		if (value(res, i, 1)) /* a walsender, not the LEFT JOIN's empty side */
			rows[nsenders++] = (sender_row){ i, false };

	for (pass = 0; pass < 2 && !rc; pass++) {
		for (j = 0; j < sh->nreplicas && !rc; j++) {
			dc_topology_replica *r = &sh->replicas[j];
			const replica_sample *s = &samples[j];
			size_t k, hits = 0, hit = 0;

			if (!r->ok || r->streaming)
				continue;
			for (k = 0; k < nsenders; k++) {
				const char *v = value(res, rows[k].row, pass == 0 ? 8 : 2);
				const char *want = pass == 0 ? s->slot : s->appname;

				if (!rows[k].claimed && v && want && !strcmp(v, want)) {
					hits++;
					hit = k;
				}
			}
			if (hits == 1 || (pass == 0 && hits > 0)) {
				rows[hit].claimed = true;
				rc = claim(r, res, rows[hit].row,
				           pass == 0 ? "slot" : "application_name");
			}
		}
	}
	for (j = 0; j < sh->nreplicas; j++)
		if (sh->replicas[j].ok && !sh->replicas[j].streaming) {
			unmatched++;
			last = j;
		}
	for (j = 0; j < nsenders; j++)
		if (!rows[j].claimed) {
			nfree++;
			free_row = j;
		}
	if (!rc && unmatched == 1 && nfree == 1) {
		rows[free_row].claimed = true;
		rc = claim(&sh->replicas[last], res, rows[free_row].row, "only");
	}
	free(rows);
	return rc;
}

/* Connects to the tenant database `db` of the shard (the primary's DSN with
 * another dbname) and reads its applied and partial versions. A database
 * without the state table has nothing applied: *out is then NULL. */
static int read_database_state(const char *dsn, const char *db, PGresult **out, char *why)
{
	static const char state_sql[] = "SELECT version, status FROM deployclaw.tenant_state"
	                                " WHERE tenant = $1 AND status IN ('applied', 'partial')";
	const char *params[1] = { db };
	PGconn *conn;
	PGresult *res;
	const char *state;
	char line[400];

	*out = NULL;
	if (!(conn = connect_dsn(dsn, db, why, MSG_SIZE)))
		return -1;
	res = PQexecParams(conn, state_sql, 1, NULL, params, NULL, NULL, 0);
	if (res && PQresultStatus(res) == PGRES_TUPLES_OK) {
		*out = res;
		PQfinish(conn);
		return 0;
	}
	state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	/* undefined_table, invalid_schema_name: deployclaw never ran here */
	if (state && (!strcmp(state, "42P01") || !strcmp(state, "3F000"))) {
		PQclear(res);
		PQfinish(conn);
		return 0;
	}
	first_line(line, sizeof(line), res ? PQresultErrorMessage(res) : PQerrorMessage(conn));
	msgf(why, "%s", line);
	PQclear(res);
	PQfinish(conn);
	return -1;
}

/*
 * The shard's tenants and their versions. Schema and row models: one query
 * (state table joined). Database model: the engine keeps each tenant's state
 * in the tenant's own database, so after the one discovery query each tenant
 * database is visited once — the one case where versions cost a connection
 * per tenant.
 */
static int discover(PGconn *conn,
                    const dc_config *cfg,
                    const dc_shard_config *sc,
                    dc_topology_shard *sh)
{
	bool per_db = cfg->tenancy.model == DC_TENANCY_DATABASE;
	dc_strbuf sql = DC_STRBUF_INIT;
	char *params[DC_PG_TENANTS_MAX_PARAMS] = { NULL };
	int nparams = 0;
	PGresult *res = NULL, **dbres = NULL;
	state_row *rows = NULL;
	size_t nrows = 0, alloc = 0, ntenants = 0, i;
	char why[MSG_SIZE];
	int rc = 0, r, k;

	if ((rc = discovery_sql(cfg, sc, sh->state_table && !per_db, &sql, params, &nparams)) != 0)
		goto out;
	res = run(conn, &sh->queries, sql.buf, nparams, (const char *const *)params, why,
	          sizeof(why));
	if (!res) {
		if (!sh->error[0])
			msgf(sh->error, "discovering tenants failed: %s", why);
		goto out;
	}
	if (PQntuples(res) > DC_TOPOLOGY_MAX_ROWS) {
		if (!sh->error[0])
			msgf(sh->error, "discovering tenants: more than %d rows",
			     DC_TOPOLOGY_MAX_ROWS);
		goto out;
	}
	ntenants = (size_t)PQntuples(res);
	if (per_db) {
		sh->state_table = false;
		dbres = calloc(ntenants ? ntenants : 1, sizeof(*dbres));
		if (!dbres)
			goto oom;
	}
	for (r = 0; r < PQntuples(res); r++) {
		const char *tenant = PQgetvalue(res, r, 0);
		int nver = 1;

		if (per_db) {
			if (read_database_state(sc->primary, tenant, &dbres[r], why) != 0) {
				if (!sh->error[0])
					msgf(sh->error, "tenant database '%s': %s", tenant, why);
			} else if (dbres[r]) {
				sh->state_table = true;
				nver = PQntuples(dbres[r]) ? PQntuples(dbres[r]) : 1;
			}
		}
		if (nrows + (size_t)nver > alloc) {
			state_row *grown;

			alloc = (alloc + (size_t)nver) * 2;
			grown = dc_realloc_array(rows, alloc, sizeof(*rows));
			if (!grown)
				goto oom;
			rows = grown;
		}
		for (k = 0; k < nver; k++) {
			state_row *row = &rows[nrows++];

			row->tenant = tenant;
			if (!per_db) {
				row->version = value(res, r, 1);
				row->status = value(res, r, 2);
			} else if (dbres[r] && PQntuples(dbres[r])) {
				row->version = value(dbres[r], k, 0);
				row->status = value(dbres[r], k, 1);
			} else {
				row->version = row->status = NULL;
			}
		}
	}
	sh->tenants_known = true;
	rc = tally(sh, rows, nrows);
	goto out;
oom:
	rc = DC_ENOMEM;
out:
	if (dbres)
		for (i = 0; i < ntenants; i++)
			PQclear(dbres[i]);
	free(dbres);
	free(rows);
	PQclear(res);
	for (i = 0; i < DC_PG_TENANTS_MAX_PARAMS; i++)
		free(params[i]);
	dc_strbuf_release(&sql);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* One shard.                                                               */

typedef struct shard_job {
	const dc_config *cfg;
	const dc_shard_config *sc;
	dc_topology_shard *sh;
	int rc; /* 0 or DC_ENOMEM */
} shard_job;

static int inspect_shard(const dc_config *cfg, const dc_shard_config *sc, dc_topology_shard *sh)
{
	PGconn *conn = NULL;
	PGresult *res = NULL;
	replica_sample *samples = NULL;
	char why[MSG_SIZE];
	uint64_t primary_lsn = 0;
	bool lsn_known = false;
	size_t j;
	int rc = 0;

	samples = calloc(sc->nreplicas ? sc->nreplicas : 1, sizeof(*samples));
	if (!samples)
		return DC_ENOMEM;

	if (!(conn = connect_dsn(sc->primary, NULL, why, sizeof(why)))) {
		msgf(sh->error, "unreachable: %s", why);
		goto replicas;
	}
	if (!(res = run(conn, &sh->queries, info_sql, 0, NULL, why, sizeof(why)))) {
		msgf(sh->error, "unreachable: %s", why);
		goto replicas;
	}
	sh->reachable = true;
	sh->in_recovery = is_true(res, 0, 4);
	sh->state_table = is_true(res, 0, 5);
	sh->server_version_num = atoi(PQgetvalue(res, 0, 3));
	if (!(sh->server_version = dc_strdup(PQgetvalue(res, 0, 2)))) {
		rc = DC_ENOMEM;
		goto out;
	}
	if (sh->in_recovery)
		msgf(sh->error, "in recovery: a replica, not a primary");
	if (is_true(res, 0, 6)) {
		PQclear(res);
		if ((res = run(conn, &sh->queries, sysid_sql, 0, NULL, why, sizeof(why))) &&
		    !(sh->system_identifier = dc_strdup(PQgetvalue(res, 0, 0)))) {
			rc = DC_ENOMEM;
			goto out;
		}
	}
	PQclear(res);
	res = NULL;

	if ((rc = discover(conn, cfg, sc, sh)) != 0)
		goto out;

replicas:
	/* Replicas before the primary's LSN: lag may err high, never low. */
	for (j = 0; j < sh->nreplicas; j++)
		if ((rc = sample_replica(sc->replicas[j], sh->system_identifier, &sh->replicas[j],
		                         &samples[j])) != 0)
			goto out;

	if (conn && sh->reachable && !sh->in_recovery) {
		res = run(conn, &sh->queries, replication_sql, 0, NULL, why, sizeof(why));
		if (!res) {
			if (!sh->error[0])
				msgf(sh->error, "reading pg_stat_replication failed: %s", why);
		} else {
			lsn_known = parse_lsn(value(res, 0, 0), &primary_lsn);
			if ((rc = match_senders(sh, samples, res)) != 0)
				goto out;
		}
	}
	for (j = 0; j < sh->nreplicas; j++) {
		dc_topology_replica *r = &sh->replicas[j];
		const replica_sample *s = &samples[j];

		if (!r->ok)
			continue;
		if (lsn_known && s->replay_known)
			r->lag_bytes = primary_lsn > s->replay_lsn
			                       ? (int64_t)(primary_lsn - s->replay_lsn)
			                       : 0;
		if (r->lag_bytes == 0)
			r->lag_seconds = 0;
		else if (r->lag_bytes > 0 && s->since_known)
			r->lag_seconds = s->since_replay_s > 0 ? s->since_replay_s : 0;
		if (!r->warning[0] && res && !r->streaming)
			msgf(r->warning, "not in the primary's pg_stat_replication (cascading from "
			                 "another replica, or disconnected)");
	}
out:
	for (j = 0; j < sh->nreplicas; j++) {
		free(samples[j].sysid);
		free(samples[j].slot);
		free(samples[j].appname);
	}
	free(samples);
	PQclear(res);
	PQfinish(conn);
	return rc;
}

static void shard_thread(size_t i, void *arg)
{
	shard_job *job = &((shard_job *)arg)[i];
	int64_t t0 = dc_time_mono_ms();
	size_t j;

	job->rc = inspect_shard(job->cfg, job->sc, job->sh);
	job->sh->elapsed_ms = dc_time_mono_ms() - t0;
	job->sh->ok = !job->sh->error[0] && job->sh->tenants_known;
	for (j = 0; j < job->sh->nreplicas; j++)
		if (!job->sh->replicas[j].ok)
			job->sh->ok = false;
}

/* ------------------------------------------------------------------------ */
/* Public API.                                                              */

static int prepare_shard(dc_topology_shard *sh, const dc_shard_config *sc)
{
	size_t j;

	sh->name = dc_strdup(sc->name);
	sh->primary = dc_dsn_redact(sc->primary);
	if (!sh->name || !sh->primary)
		return DC_ENOMEM;
	if (sc->nreplicas) {
		sh->replicas = calloc(sc->nreplicas, sizeof(*sh->replicas));
		if (!sh->replicas)
			return DC_ENOMEM;
	}
	sh->nreplicas = sc->nreplicas;
	for (j = 0; j < sc->nreplicas; j++) {
		dc_topology_replica *r = &sh->replicas[j];

		r->index = j;
		r->lag_bytes = -1;
		r->lag_seconds = -1;
		r->replay_pending_bytes = -1;
		r->client_port = -1;
		r->replay_lag_seconds = -1;
		if (!(r->dsn = dc_dsn_redact(sc->replicas[j])))
			return DC_ENOMEM;
	}
	return 0;
}

int dc_topology_collect(dc_topology **out, const dc_config *cfg, dc_error *err)
{
	dc_topology *topo = NULL;
	shard_job *jobs = NULL;
	size_t i;
	int rc = 0;

	*out = NULL;
	if (cfg->engine != DC_ENGINE_POSTGRES)
		return dc_error_set(
		        err, DC_ECONFIG,
		        "engine: topology needs engine 'postgres' (shards with replicas)");
	if (cfg->tenancy.model != DC_TENANCY_ROW && !cfg->tenancy.pattern && !cfg->tenancy.query &&
	    cfg->tenancy.nlist == 0)
		return dc_error_set(
		        err, DC_ECONFIG,
		        "tenancy: model '%s' needs 'pattern', 'query' or 'list' to find "
		        "tenants",
		        cfg->tenancy.model == DC_TENANCY_SCHEMA ? "schema" : "database");
	topo = calloc(1, sizeof(*topo));
	jobs = calloc(cfg->nshards ? cfg->nshards : 1, sizeof(*jobs));
	if (!topo || !jobs ||
	    !(topo->shards = calloc(cfg->nshards ? cfg->nshards : 1, sizeof(*topo->shards)))) {
		rc = dc_error_set(err, DC_ENOMEM, "out of memory");
		goto out;
	}
	topo->nshards = cfg->nshards;
	for (i = 0; i < cfg->nshards; i++)
		if (prepare_shard(&topo->shards[i], &cfg->shards[i]) != 0) {
			rc = dc_error_set(err, DC_ENOMEM, "out of memory");
			goto out;
		}
	for (i = 0; i < cfg->nshards; i++) {
		jobs[i].cfg = cfg;
		jobs[i].sc = &cfg->shards[i];
		jobs[i].sh = &topo->shards[i];
	}
	/* The shards mostly wait on the network: one thread each. Without threads
	 * enough, as many as the CPU budget gives: slower, still right. */
	if (dc_pool_run(cfg->nshards, 0, DC_POOL_ALL, shard_thread, jobs) != 0)
		(void)dc_pool_run(cfg->nshards, 0, 0, shard_thread, jobs);
	for (i = 0; i < cfg->nshards; i++) {
		if (jobs[i].rc && !rc)
			rc = dc_error_set(err, jobs[i].rc, "out of memory inspecting shard '%s'",
			                  cfg->shards[i].name);
	}
	for (i = 0; i < topo->nshards; i++) {
		const dc_topology_shard *sh = &topo->shards[i];
		size_t j;

		topo->ntenants += sh->ntenants;
		topo->problems += sh->error[0] || !sh->tenants_known;
		for (j = 0; j < sh->nreplicas; j++)
			topo->problems += !sh->replicas[j].ok;
	}
out:
	free(jobs);
	if (rc) {
		dc_topology_free(topo);
		return rc;
	}
	*out = topo;
	return 0;
}

void dc_topology_free(dc_topology *topo)
{
	size_t i, j;

	if (!topo)
		return;
	for (i = 0; i < topo->nshards; i++) {
		dc_topology_shard *sh = &topo->shards[i];

		free(sh->name);
		free(sh->primary);
		free(sh->server_version);
		free(sh->system_identifier);
		for (j = 0; j < sh->nversions; j++)
			free(sh->versions[j].version);
		free(sh->versions);
		for (j = 0; j < sh->nreplicas; j++) {
			dc_topology_replica *r = &sh->replicas[j];

			free(r->dsn);
			free(r->server_version);
			free(r->receiver_status);
			free(r->application_name);
			free(r->client_addr);
			free(r->state);
			free(r->sync_state);
		}
		free(sh->replicas);
	}
	free(topo->shards);
	free(topo);
}

/* ------------------------------------------------------------------------ */
/* Table sizes (plan --live).                                               */

/* The catalog query's head: per relation name (a text[] parameter, its
 * number appended by the caller), the tenants' tables of that name summed. */
static const char tables_sql[] =
        "SELECT c.relname, sum(greatest(c.reltuples, 0))::float8,"
        " sum(pg_total_relation_size(c.oid))::float8, max(greatest(c.reltuples, 0))::float8,"
        " count(*), count(*) FILTER (WHERE c.reltuples < 0)"
        " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relkind IN ('r', 'p', 'm') AND c.relname = ANY(";

/* Row and database models: a tenant is a whole database, every schema but
 * the system's (`pg_` and anything: `_` is a LIKE wildcard) and
 * deployclaw's own. */
static const char tables_any_schema[] =
        "::text[]) AND n.nspname NOT IN ('information_schema', 'deployclaw')"
        " AND n.nspname NOT LIKE 'pg\\_%' GROUP BY c.relname";

/* No catalog or lock wait may hang the command (as info_sql). */
static const char timeouts_sql[] = "SELECT set_config('statement_timeout', '30s', false),"
                                   " set_config('lock_timeout', '5s', false)";

/* Adds the rows of one catalog query to the tables measured so far. */
static int tables_add(dc_topology_table **tables, size_t *n, const PGresult *res)
{
	int r;

	for (r = 0; r < PQntuples(res); r++) {
		const char *name = PQgetvalue(res, r, 0);
		dc_topology_table *t = NULL, *grown;
		double max_rows = atof(PQgetvalue(res, r, 3));
		size_t i;

		for (i = 0; i < *n && !t; i++)
			if (!strcmp((*tables)[i].name, name))
				t = &(*tables)[i];
		if (!t) {
			if (!(grown = dc_realloc_array(*tables, *n + 1, sizeof(*grown))))
				return DC_ENOMEM;
			*tables = grown;
			t = memset(&grown[*n], 0, sizeof(*grown));
			if (!(t->name = dc_strdup(name)))
				return DC_ENOMEM;
			(*n)++;
		}
		t->rows += atof(PQgetvalue(res, r, 1));
		t->bytes += atof(PQgetvalue(res, r, 2));
		if (max_rows > t->max_rows)
			t->max_rows = max_rows;
		t->tenants += atol(PQgetvalue(res, r, 4));
		t->unanalyzed += atol(PQgetvalue(res, r, 5));
	}
	return 0;
}

/* Runs the catalog query `sql` on `db` of the shard (NULL: the DSN's own)
 * and adds what it found. */
static int tables_measure(const dc_shard_config *sc,
                          const char *db,
                          const char *sql,
                          int nparams,
                          const char *const *params,
                          dc_topology_table **tables,
                          size_t *n,
                          dc_error *err)
{
	PGconn *conn = NULL;
	PGresult *res = NULL;
	size_t queries = 0;
	char why[MSG_SIZE];
	int rc = 0;

	if (!(conn = connect_dsn(sc->primary, db, why, sizeof(why)))) {
		rc = dc_error_set(err, DC_EDB, "shard '%s': cannot connect%s%s%s: %s", sc->name,
		                  db ? " to tenant database '" : "", db ? db : "", db ? "'" : "",
		                  why);
		goto out;
	}
	res = run(conn, &queries, timeouts_sql, 0, NULL, why, sizeof(why));
	if (res) {
		PQclear(res);
		res = run(conn, &queries, sql, nparams, params, why, sizeof(why));
	}
	if (!res) {
		rc = dc_error_set(err, DC_EDB, "shard '%s': catalog query failed: %s", sc->name,
		                  why);
		goto out;
	}
	if (tables_add(tables, n, res) != 0)
		rc = dc_error_set(err, DC_ENOMEM, "out of memory");
out:
	PQclear(res);
	PQfinish(conn);
	return rc;
}

/* Database model: every tenant database of the shard, found on the primary
 * by dc_pg_tenants_sql. */
static int tables_per_database(const dc_config *cfg,
                               const dc_shard_config *sc,
                               const char *names,
                               dc_topology_table **tables,
                               size_t *n,
                               dc_error *err)
{
	dc_strbuf sql = DC_STRBUF_INIT;
	char *params[DC_PG_TENANTS_MAX_PARAMS] = { NULL };
	const char *one[1] = { names };
	PGconn *conn = NULL;
	PGresult *res = NULL;
	size_t queries = 0;
	char why[MSG_SIZE];
	int nparams = 0, r, rc;

	if ((rc = dc_pg_tenants_sql(&sql, params, &nparams, cfg, sc->name, err)) != 0)
		goto out;
	dc_strbuf_adds(&sql, "SELECT tenant FROM dc_tenants ORDER BY tenant COLLATE \"C\"");
	if (dc_strbuf_error(&sql)) {
		rc = dc_error_set(err, DC_ENOMEM, "out of memory");
		goto out;
	}
	if (!(conn = connect_dsn(sc->primary, NULL, why, sizeof(why)))) {
		rc = dc_error_set(err, DC_EDB, "shard '%s': cannot connect: %s", sc->name, why);
		goto out;
	}
	if (!(res = run(conn, &queries, sql.buf, nparams, (const char *const *)params, why,
	                sizeof(why)))) {
		rc = dc_error_set(err, DC_EDB, "shard '%s': discovering tenants failed: %s",
		                  sc->name, why);
		goto out;
	}
	dc_strbuf_reset(&sql);
	dc_strbuf_adds(&sql, tables_sql);
	dc_strbuf_adds(&sql, "$1");
	dc_strbuf_adds(&sql, tables_any_schema);
	if (dc_strbuf_error(&sql)) {
		rc = dc_error_set(err, DC_ENOMEM, "out of memory");
		goto out;
	}
	for (r = 0; r < PQntuples(res) && !rc; r++)
		rc = tables_measure(sc, PQgetvalue(res, r, 0), sql.buf, 1, one, tables, n, err);
out:
	for (r = 0; r < DC_PG_TENANTS_MAX_PARAMS; r++)
		free(params[r]);
	PQclear(res);
	PQfinish(conn);
	dc_strbuf_release(&sql);
	return rc;
}

int dc_topology_tables(dc_topology_table **out,
                       size_t *n,
                       const dc_config *cfg,
                       const dc_shard_config *sc,
                       const char *const *names,
                       size_t nnames,
                       dc_error *err)
{
	dc_strbuf arr = DC_STRBUF_INIT, sql = DC_STRBUF_INIT;
	char *params[DC_PG_TENANTS_MAX_PARAMS] = { NULL };
	const char *qparams[DC_PG_TENANTS_MAX_PARAMS + 1];
	dc_topology_table *tables = NULL;
	size_t ntables = 0, i;
	int nparams = 0, rc = 0;

	*out = NULL;
	*n = 0;
	if (cfg->engine != DC_ENGINE_POSTGRES)
		return dc_error_set(err, DC_ECONFIG, "engine: table sizes need engine 'postgres'");
	dc_strbuf_addch(&arr, '{');
	for (i = 0; i < nnames; i++) {
		const char *p;

		dc_strbuf_adds(&arr, i ? ",\"" : "\"");
		for (p = names[i]; *p; p++) {
			if (*p == '"' || *p == '\\')
				dc_strbuf_addch(&arr, '\\');
			dc_strbuf_addch(&arr, *p);
		}
		dc_strbuf_addch(&arr, '"');
	}
	dc_strbuf_addch(&arr, '}');
	if (dc_strbuf_error(&arr)) {
		rc = dc_error_set(err, DC_ENOMEM, "out of memory");
		goto out;
	}
	if (cfg->tenancy.model == DC_TENANCY_DATABASE) {
		rc = tables_per_database(cfg, sc, arr.buf, &tables, &ntables, err);
		goto out;
	}
	if (cfg->tenancy.model == DC_TENANCY_SCHEMA) {
		/* the tenants' schemas, as the engine finds them */
		if ((rc = dc_pg_tenants_sql(&sql, params, &nparams, cfg, sc->name, err)) != 0)
			goto out;
		dc_strbuf_adds(&sql, tables_sql);
		dc_strbuf_addf(&sql,
		               "$%d::text[]) AND n.nspname IN (SELECT tenant FROM dc_tenants)"
		               " GROUP BY c.relname",
		               nparams + 1);
	} else {
		dc_strbuf_adds(&sql, tables_sql);
		dc_strbuf_adds(&sql, "$1");
		dc_strbuf_adds(&sql, tables_any_schema);
	}
	if (dc_strbuf_error(&sql)) {
		rc = dc_error_set(err, DC_ENOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < (size_t)nparams; i++)
		qparams[i] = params[i];
	qparams[nparams] = arr.buf; /* the names: the last parameter */
	rc = tables_measure(sc, NULL, sql.buf, nparams + 1, qparams, &tables, &ntables, err);
out:
	for (i = 0; i < (size_t)nparams; i++)
		free(params[i]);
	dc_strbuf_release(&arr);
	dc_strbuf_release(&sql);
	if (rc) {
		dc_topology_tables_free(tables, ntables);
		return rc;
	}
	*out = tables;
	*n = ntables;
	return 0;
}

void dc_topology_tables_free(dc_topology_table *tables, size_t n)
{
	size_t i;

	if (!tables)
		return;
	for (i = 0; i < n; i++)
		free(tables[i].name);
	free(tables);
}
