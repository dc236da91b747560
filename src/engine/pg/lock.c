/*
 * Tenant locks: a session advisory lock per tenant, keyed by shard and
 * tenant, taken with the begin that follows when possible.
 */
#include "pg_internal.h"

#define HOLDER_SELECT                                                                          \
	"SELECT a.application_name, a.pid, "                                                   \
	"extract(epoch FROM coalesce(a.xact_start, a.state_change, a.backend_start))::float8 " \
	"FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "                            \
	"WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1::oid "                 \
	"AND l.objid = $2::oid AND l.objsubid = 1 AND l.database = "                           \
	"(SELECT oid FROM pg_database WHERE datname = current_database()) "                    \
	"AND a.pid <> pg_backend_pid() LIMIT 1"

/* ------------------------------------------------------------------------ */
/* Locks                                                                    */

uint64_t dc_pg__tenant_key(const char *shard, const char *tenant)
{
	/* the NUL separates ("ab", "c") from ("a", "bc") */
	uint64_t h = dc_fnv1a64(DC_FNV1A64_INIT, shard, strlen(shard) + 1);

	return dc_fnv1a64(h, tenant, strlen(tenant));
}

void dc_pg__key_text(char out[24], uint64_t key)
{
	int64_t k;

	memcpy(&k, &key, sizeof(k)); /* the bigint PostgreSQL sees */
	snprintf(out, 24, "%lld", (long long)k);
}

static int try_lock(dc_conn *c, const char *key, bool *got, dc_error *err)
{
	static const char sql[] = "SELECT pg_try_advisory_lock($1::bigint)";
	const char *params[1] = { key };
	PGresult *res;
	int ret = 0;

	*got = false;
	if (c->unlock_sent) {
		/* the previous tenant's unlock is still in flight, in pipeline
		 * mode: queue this behind it, one round trip for both */
		c->unlock_sent = false;
		if (!PQsendQueryParams(c->pg, sql, 1, NULL, params, NULL, NULL, 0) ||
		    !PQpipelineSync(c->pg)) {
			ret = dc_pg__lost_fail(c, err);
			(void)PQexitPipelineMode(c->pg);
			return ret;
		}
		dc_pg__read_unlock(c);
		res = PQgetResult(c->pg);
		if (res) {
			PGresult *end;

			while ((end = PQgetResult(c->pg)) != NULL)
				PQclear(end);
			PQclear(PQgetResult(c->pg)); /* PGRES_PIPELINE_SYNC */
		}
		(void)PQexitPipelineMode(c->pg);
	} else {
		res = PQexecParams(c->pg, sql, 1, NULL, params, NULL, NULL, 0);
	}
	if (!dc_pg__res_ok(res) || PQntuples(res) != 1)
		ret = dc_pg__res_fail(c, res, NULL, "advisory lock", err);
	else
		*got = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	return ret;
}

/* "application_name 'x', pid n, since HH:MM:SS" of the session holding the
 * tenant's advisory lock, or "" when it is gone. */
static void lock_holder(dc_conn *c, uint64_t key, char *out, size_t size)
{
	char classid[16], objid[16], when[16] = "";
	const char *params[2] = { classid, objid };
	PGresult *res;

	out[0] = '\0';
	snprintf(classid, sizeof(classid), "%u", (unsigned)(key >> 32));
	snprintf(objid, sizeof(objid), "%u", (unsigned)(key & 0xffffffffu));
	res = PQexecParams(c->pg, HOLDER_SELECT, 2, NULL, params, NULL, NULL, 0);
	if (dc_pg__res_ok(res) && PQntuples(res) == 1) {
		dc_strbuf sb = DC_STRBUF_INIT;

		if (!PQgetisnull(res, 0, 2)) {
			time_t t = (time_t)strtod(PQgetvalue(res, 0, 2), NULL);
			struct tm tm;

			if (localtime_r(&t, &tm))
				strftime(when, sizeof(when), "%H:%M:%S", &tm);
		}
		dc_strbuf_addf(&sb, "application_name '%s', pid %s", PQgetvalue(res, 0, 0),
		               PQgetvalue(res, 0, 1));
		if (when[0])
			dc_strbuf_addf(&sb, ", since %s", when);
		if (!dc_strbuf_error(&sb))
			dc_engine__copy_cut(out, size, sb.buf);
		dc_strbuf_release(&sb);
	}
	PQclear(res);
}

/* DC_ELOCKED for the tenant, naming the session that holds its lock. */
static int locked_fail(dc_conn *c, int64_t timeout_ms, dc_error *err)
{
	char holder[400], waited[32];

	lock_holder(c, dc_pg__tenant_key(c->engine->shard, c->tenant->id), holder, sizeof(holder));
	dc_duration_format(waited, sizeof(waited), timeout_ms > 0 ? timeout_ms : 0);
	return dc_pg__conn_fail(
	        c, err, DC_ELOCKED, NULL, NULL, 0, 0,
	        "tenant '%s' (shard '%s') is locked by another deployclaw process%s%s; "
	        "waited %s",
	        c->tenant->id, c->engine->shard, holder[0] ? ": " : "", holder, waited);
}

/* Takes the tenant's session advisory lock, polling while another session
 * holds it, for at most `timeout_ms`. */
int dc_pg__lock_now(dc_conn *c, int64_t timeout_ms, dc_error *err)
{
	char key[24];
	int64_t deadline;
	uint64_t k;
	bool got = false;
	int ret;

	if ((ret = dc_pg__need_tenant(c, err)) != 0)
		return ret;
	if (c->locked)
		return 0;
	k = dc_pg__tenant_key(c->engine->shard, c->tenant->id);
	dc_pg__key_text(key, k);
	deadline = dc_time_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	for (;;) {
		if ((ret = try_lock(c, key, &got, err)) != 0)
			return ret;
		if (got)
			break;
		if (dc_time_mono_ms() >= deadline) {
			return locked_fail(c, timeout_ms, err);
		} else {
			dc_sleep_poll(deadline, LOCK_POLL_MS);
		}
	}
	c->locked = true;
	c->lock_key = k;
	return 0;
}

/*
 * Outside a transaction the lock is not taken here but deferred: the begin
 * that follows (the rollout's next step) asks for it in the same round trip
 * as BEGIN and the tenant's settings, and any other operation takes it
 * first (dc_pg__settle). Either way nothing runs on the tenant before the lock is
 * held, and a lock that cannot be had fails that operation with DC_ELOCKED.
 */
int dc_pg__lock_tenant(dc_conn *c, int64_t timeout_ms, dc_error *err)
{
	int ret;

	if ((ret = dc_pg__need_tenant(c, err)) != 0)
		return ret;
	if (c->locked || c->lock_deferred)
		return 0;
	if (!c->write_sent && (c->unlock_sent || !dc_pg__in_tx(c))) {
		c->lock_deferred = true;
		c->lock_timeout_ms = timeout_ms;
		return 0;
	}
	return dc_pg__lock_now(c, timeout_ms, err);
}

int dc_pg__unlock_tenant(dc_conn *c, dc_error *err)
{
	char key[24];
	const char *params[1] = { key };
	PGresult *res;
	int ret = 0;

	c->lock_deferred = false; /* never asked for */
	(void)dc_pg__settle(c, NULL);

	if (!c->locked)
		return 0;
	c->locked = false;
	if (dc_pg__conn_lost(c))
		return 0; /* the session ended: the server released its locks */
	dc_pg__key_text(key, c->lock_key);
	if (!err && !dc_pg__in_tx(c)) {
		/* nobody reads the outcome: send it (flushed by the sync: the
		 * server releases the lock as soon as it reads it), with the
		 * session reset when the migration ran here, and read the
		 * answers later -- with the next tenant's begin or try_lock, one
		 * round trip for both, or in settle before any other operation */
		c->sent_n = 1;
		if (PQenterPipelineMode(c->pg) &&
		    PQsendQueryParams(c->pg, "SELECT pg_advisory_unlock($1::bigint)", 1, NULL,
		                      params, NULL, NULL, 0) &&
		    (!c->dirty || dc_pg__send_reset(c)) && PQpipelineSync(c->pg)) {
			c->unlock_sent = true;
			return 0;
		}
		c->sent_n = 0;
		(void)PQexitPipelineMode(c->pg);
		return dc_pg__res_fail(c, NULL, NULL, "advisory unlock", err);
	}
	res = PQexecParams(c->pg, "SELECT pg_advisory_unlock($1::bigint)", 1, NULL, params, NULL,
	                   NULL, 0);
	if (!dc_pg__res_ok(res))
		ret = dc_pg__res_fail(c, res, NULL, "advisory unlock", err);
	PQclear(res);
	return ret;
}
