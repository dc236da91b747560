/*
 * Shard-scoped migrations (`scope: shard`): run once in the shard's database,
 * on a connection of their own (no tenant's settings, search_path as the
 * login role's default), in one transaction that holds the shard's lock and
 * writes deployclaw.shard_history (the columns of deployclaw_history).
 */
#include "pg_internal.h"

#define SHARD_HISTORY "deployclaw.shard_history"

/* Created when missing, under the lock that serialises deployclaw's schema
 * creation (see STATE_CREATE). */
#define SHARD_HISTORY_CREATE                                                         \
	"DO $dc$ BEGIN IF to_regclass('" SHARD_HISTORY "') IS NULL THEN "            \
	"PERFORM pg_advisory_xact_lock(" STATE_CREATE_KEY "); "                      \
	"CREATE SCHEMA IF NOT EXISTS deployclaw; "                                   \
	"CREATE TABLE IF NOT EXISTS " SHARD_HISTORY " " HISTORY_COLUMNS "; END IF; " \
	"END $dc$"

#define SHARD_HISTORY_SELECT \
	"SELECT " HISTORY_FIELDS " FROM " SHARD_HISTORY " ORDER BY written_at, version"

#define SHARD_HISTORY_UPSERT                                                                \
	"INSERT INTO " SHARD_HISTORY " AS t (version, name, checksum, phase, status, "      \
	"started_at, finished_at, duration_ms, run_id, actor) VALUES ($1, $2, $3, $4, $5, " \
	"to_timestamp($6::float8 / 1000), to_timestamp($7::float8 / 1000), $8::int8, $9, "  \
	"$10) ON CONFLICT (version) DO UPDATE SET name = EXCLUDED.name, "                   \
	"checksum = EXCLUDED.checksum, phase = EXCLUDED.phase, status = EXCLUDED.status, "  \
	"started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at, "            \
	"duration_ms = EXCLUDED.duration_ms, run_id = EXCLUDED.run_id, "                    \
	"actor = EXCLUDED.actor, written_at = clock_timestamp()"

/* The shard's lock: the key of a tenant with the empty id, which no tenant has. */
static uint64_t shard_key(const dc_engine *e)
{
	return dc_pg__tenant_key(e->shard, "");
}

static int fail(dc_error *err, int code, const dc_engine__where *where, const char *fmt, ...)
        DC_PRINTF(4, 5);

static int fail(dc_error *err, int code, const dc_engine__where *where, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	dc_engine__vfail(err, code, where, fmt, ap);
	va_end(ap);
	return code;
}

/* A failed result as an error naming the shard, the version and, for a
 * user statement, its position. */
static int res_fail(dc_engine *e,
                    PGconn *pg,
                    const PGresult *res,
                    const dc_migration *m,
                    const dc_statement *st,
                    const char *what,
                    dc_error *err)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : "08006";
	const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	dc_engine__where where = { .shard = e->shard, .sqlstate = state };
	char msg[768];
	int code = DC_EDB;

	if (primary)
		dc_engine__copy_cut(msg, sizeof(msg), primary);
	else
		dc_text_first_line(msg, sizeof(msg),
		                   res ? PQresultErrorMessage(res) : PQerrorMessage(pg));
	if (st) {
		where.file = st->file;
		where.line = st->line;
		where.col = st->col;
	}
	if (state && strcmp(state, "55P03") == 0)
		code = DC_ELOCKED;
	return fail(err, code, &where, "shard '%s'%s%s%s: %s%s%s", e->shard,
	            m ? ", shard migration '" : "", m ? m->version : "", m ? "'" : "", what,
	            what[0] ? ": " : "", msg);
}

/* Runs one statement (no parameters but `params`); the result when `keep`. */
static int run(dc_engine *e,
               PGconn *pg,
               const char *sql,
               int nparams,
               const char *const *params,
               const dc_migration *m,
               const dc_statement *st,
               const char *what,
               PGresult **keep,
               dc_error *err)
{
	PGresult *res = PQexecParams(pg, sql, nparams, NULL, params, NULL, NULL, 0);
	int ret = 0;

	if (!dc_pg__res_ok(res))
		ret = res_fail(e, pg, res, m, st, what, err);
	if (ret == 0 && keep)
		*keep = res;
	else
		PQclear(res);
	return ret;
}

static int read_rows(dc_engine *e, PGconn *pg, dc_history_row **rows, size_t *n, dc_error *err)
{
	PGresult *res = NULL;
	char *bad = NULL;
	int ret;

	*rows = NULL;
	*n = 0;
	if ((ret = run(e, pg, SHARD_HISTORY_SELECT, 0, NULL, NULL, NULL, SHARD_HISTORY, &res,
	               err)) != 0)
		return ret;
	if (PQntuples(res) > MAX_HISTORY_ROWS) {
		ret = dc_pg__shard_fail(e, err, DC_ELIMIT, NULL,
		                        "shard '%s': " SHARD_HISTORY " has more than %d rows",
		                        e->shard, MAX_HISTORY_ROWS);
		goto out;
	}
	*n = (size_t)PQntuples(res);
	ret = dc_pg__history_rows(res, 0, PQntuples(res), false, rows, &bad);
	if (ret == DC_EINVAL)
		ret = dc_pg__shard_fail(e, err, DC_EINVAL, NULL,
		                        "shard '%s': " SHARD_HISTORY " has an invalid row '%s'",
		                        e->shard, bad ? bad : "?");
	else if (ret < 0)
		ret = dc_pg__shard_fail(e, err, ret, NULL, "out of memory");
	if (ret < 0)
		*n = 0;
out:
	free(bad);
	PQclear(res);
	return ret;
}

int dc_pg__shard_history_read(dc_engine *e, dc_history_row **rows, size_t *n, dc_error *err)
{
	PGconn *pg = NULL;
	PGresult *res = NULL;
	int ret;

	*rows = NULL;
	*n = 0;
	pthread_mutex_lock(&e->mu);
	if ((ret = dc_pg__admin_conn(e, &pg, err)) != 0)
		goto out;
	ret = run(e, pg, "SELECT to_regclass('" SHARD_HISTORY "') IS NOT NULL", 0, NULL, NULL, NULL,
	          SHARD_HISTORY, &res, err);
	if (ret == 0 && PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0)
		ret = read_rows(e, pg, rows, n, err);
out:
	PQclear(res);
	pthread_mutex_unlock(&e->mu);
	return ret;
}

static const dc_history_row *find(const dc_history_row *rows, size_t n, const char *version)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(rows[i].version, version) == 0)
			return &rows[i];
	return NULL;
}

/* One migration's statements (up, or down last phase first), then its verify assertions. */
static int run_one(dc_engine *e, PGconn *pg, const dc_migration *m, bool down, dc_error *err)
{
	size_t k, i;
	int ret;

	for (k = 0; k < m->nphases; k++) {
		const dc_phase *ph = &m->phases[down ? m->nphases - 1 - k : k];
		const dc_sql *sql = down ? &ph->down : &ph->up;

		if (down && !ph->down.text)
			return dc_pg__shard_fail(
			        e, err, DC_EINVAL, NULL,
			        "shard '%s': shard migration '%s' cannot be rolled "
			        "back: its phase '%s' has no down",
			        e->shard, m->version, ph->name);
		for (i = 0; i < sql->nstmts; i++)
			if ((ret = run(e, pg, sql->stmts[i].sql, 0, NULL, m, &sql->stmts[i], "",
			               NULL, err)) != 0)
				return ret;
	}
	for (i = 0; !down && i < m->nverify; i++) {
		const dc_statement *st = &m->verify[i].stmts[0];
		PGresult *res = NULL;
		bool ok;

		if ((ret = run(e, pg, st->sql, 0, NULL, m, st, "verify", &res, err)) != 0)
			return ret;
		ok = PQntuples(res) == 1 && PQnfields(res) >= 1 && !PQgetisnull(res, 0, 0) &&
		     strcmp(PQgetvalue(res, 0, 0), "t") == 0;
		PQclear(res);
		if (!ok)
			return fail(
			        err, DC_EDB,
			        &(dc_engine__where){ .shard = e->shard,
			                             .file = st->file,
			                             .line = st->line,
			                             .col = st->col },
			        "shard '%s': verify assertion of shard migration '%s' is false: "
			        "%.300s",
			        e->shard, m->version, st->sql);
	}
	return 0;
}

static int write_row(dc_engine *e,
                     PGconn *pg,
                     const dc_migration *m,
                     bool down,
                     int64_t started,
                     const char *run_id,
                     const char *actor,
                     dc_error *err)
{
	int64_t now = dc_time_now_ms();
	char s[24], f[24], d[24];
	const char *params[10];

	snprintf(s, sizeof(s), "%lld", (long long)started);
	snprintf(f, sizeof(f), "%lld", (long long)now);
	snprintf(d, sizeof(d), "%lld", (long long)(now - started));
	params[0] = m->version;
	params[1] = m->name;
	params[2] = m->checksum;
	params[3] = down ? "" : m->phases[m->nphases - 1].name;
	params[4] = dc_history_status_name(down ? DC_HISTORY_ROLLED_BACK : DC_HISTORY_APPLIED);
	params[5] = s;
	params[6] = f;
	params[7] = d;
	params[8] = run_id;
	params[9] = actor;
	return run(e, pg, SHARD_HISTORY_UPSERT, 10, params, m, NULL, SHARD_HISTORY, NULL, err);
}

/* BEGIN, the transaction's settings, the shard's lock, the history table. */
static int open_tx(dc_engine *e, PGconn *pg, int64_t lock_timeout_ms, dc_error *err)
{
	char key[24], lt[24];
	const char *params[3] = { lt, e->statement_timeout, key };
	int ret;

	dc_pg__key_text(key, shard_key(e));
	snprintf(lt, sizeof(lt), "%lld", (long long)(lock_timeout_ms > 0 ? lock_timeout_ms : 0));
	if ((ret = run(e, pg, "BEGIN", 0, NULL, NULL, NULL, "begin", NULL, err)) != 0 ||
	    (ret = run(e, pg,
	               "SELECT set_config('lock_timeout', $1, true), "
	               "set_config('statement_timeout', $2, true), "
	               "pg_advisory_xact_lock($3::bigint)",
	               3, params, NULL, NULL, "the shard's lock", NULL, err)) != 0 ||
	    (ret = run(e, pg, "SELECT set_config('lock_timeout', $1, true)", 1,
	               (const char *const[]){ e->lock_timeout }, NULL, NULL, "settings", NULL,
	               err)) != 0)
		return ret;
	return run(e, pg, SHARD_HISTORY_CREATE, 0, NULL, NULL, NULL, SHARD_HISTORY, NULL, err);
}

int dc_pg__shard_run(dc_engine *e,
                     const dc_migration *const *migs,
                     size_t n,
                     bool down,
                     const char *run_id,
                     const char *actor,
                     int64_t lock_timeout_ms,
                     bool *done,
                     dc_error *err)
{
	dc_history_row *rows = NULL;
	size_t nrows = 0, i;
	PGconn *pg = NULL;
	int ret;

	for (i = 0; i < n; i++)
		done[i] = false;
	if ((ret = dc_pg__connect_db(e, NULL, &pg, err)) != 0)
		return ret;
	if ((ret = open_tx(e, pg, lock_timeout_ms, err)) != 0 ||
	    (ret = read_rows(e, pg, &rows, &nrows, err)) != 0)
		goto out;
	for (i = 0; i < n; i++) {
		const dc_history_row *row = find(rows, nrows, migs[i]->version);
		bool applied = row && row->status == DC_HISTORY_APPLIED;
		int64_t started = dc_time_now_ms();

		if (applied != down) /* done by another process meanwhile */
			continue;
		if ((ret = run_one(e, pg, migs[i], down, err)) != 0 ||
		    (ret = write_row(e, pg, migs[i], down, started, run_id, actor, err)) != 0)
			goto out;
		done[i] = true;
	}
	ret = run(e, pg, "COMMIT", 0, NULL, NULL, NULL, "commit", NULL, err);
out:
	if (ret != 0)
		for (i = 0; i < n; i++)
			done[i] = false;
	dc_history_rows_free(rows, nrows);
	PQfinish(pg); /* a transaction still open is rolled back with the session */
	return ret;
}
