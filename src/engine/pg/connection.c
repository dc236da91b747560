/*
 * Connections of the PostgreSQL engine: the shard's admin connection and one
 * connection per worker, pointed at a tenant by enter, its session reset
 * between tenants.
 */
#include "pg_internal.h"

/* ------------------------------------------------------------------------ */
/* Connections                                                              */

static void no_notices(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

/* Connects to the shard (or to `dbname` on it). On failure `err` names the
 * shard and the redacted conninfo, with sqlstate 08001. */
int dc_pg__connect_db(dc_engine *e, const char *dbname, PGconn **out, dc_error *err)
{
	const char *keys[4] = { "dbname", "application_name", NULL, NULL };
	const char *vals[4] = { NULL, NULL, NULL, NULL };
	PGconn *pg;
	char why[512];
	char *shown;
	int ret;

	*out = NULL;
	vals[0] = e->conninfo;
	vals[1] = e->app_name;
	if (dbname) {
		/* only the first dbname is expanded: this one is a plain name */
		keys[2] = "dbname";
		vals[2] = dbname;
	}
	pg = PQconnectdbParams(keys, vals, 1);
	if (!pg)
		return dc_error_set(err, DC_ENOMEM, "out of memory");
	if (PQstatus(pg) != CONNECTION_OK) {
		dc_text_first_line(why, sizeof(why), PQerrorMessage(pg));
		PQfinish(pg);
		shown = dc_dsn_redact(e->conninfo);
		ret = dc_pg__shard_fail(e, err, DC_EDB, "08001",
		                        "shard '%s': cannot connect to '%s'%s%s%s: %s", e->shard,
		                        shown ? shown : "?", dbname ? " (database '" : "",
		                        dbname ? dbname : "", dbname ? "')" : "", why);
		free(shown);
		return ret;
	}
	PQsetNoticeProcessor(pg, no_notices, NULL);
	*out = pg;
	return 0;
}

/* The admin connection, connected on first use. Called with e->mu held. */
int dc_pg__admin_conn(dc_engine *e, PGconn **out, dc_error *err)
{
	int ret;

	if (e->admin && PQstatus(e->admin) != CONNECTION_OK) {
		PQfinish(e->admin);
		e->admin = NULL;
	}
	if (!e->admin && (ret = dc_pg__connect_db(e, NULL, &e->admin, err)) != 0)
		return ret;
	*out = e->admin;
	return 0;
}

void dc_pg__drop_history_cache(dc_conn *c)
{
	PQclear(c->history);
	c->history = NULL;
}

/* What a tenant visit learned on its session: neither a new tenant nor a
 * new session may trust it. */
static void forget_visit(dc_conn *c)
{
	dc_pg__drop_history_cache(c);
	c->begun_once = false;
	c->history_ok = false;
	c->session_set = false;
	c->lock_deferred = false;
}

/* Forgets the current tenant (the connection stays). */
void dc_pg__leave(dc_conn *c)
{
	forget_visit(c);
	free(c->qschema);
	c->qschema = NULL;
	free(c->search_path);
	c->search_path = NULL;
	free((char *)(uintptr_t)c->run_as);
	c->run_as = NULL;
	c->tenant = NULL;
	c->versions_known = false;
	dc_strbuf_reset(&c->versions);
}

void dc_pg__drop_connection(dc_conn *c)
{
	if (c->pg)
		PQfinish(c->pg); /* ends the session: its advisory locks go with it */
	c->pg = NULL;
	c->locked = false;
	c->unlock_sent = false;
	c->sent_n = 0;
	c->dirty = false; /* the next session starts clean */
	forget_visit(c);
	free(c->dbname);
	c->dbname = NULL;
}

/*
 * What a migration can leave on a worker's session -- session GUCs (SET,
 * set_config(..., false)), SET ROLE / SESSION AUTHORIZATION, WITH HOLD
 * cursors, prepared statements, LISTEN, session advisory locks, temporary
 * tables, currval/lastval -- is gone before the next tenant. This is DISCARD
 * ALL in its documented equivalent minus DISCARD PLANS (cached plans carry no
 * tenant's data): DISCARD ALL itself refuses the implicit transaction of a
 * pipeline, and these run in one, behind the tenant's unlock. RESET ALL
 * keeps application_name (a connection parameter, the reset value) and drops
 * deployclaw's own session settings, which are made again for each visit
 * (session_set, begin's SET LOCAL); deployclaw prepares no named statement.
 * pg_advisory_unlock_all also releases the tenant's lock, which the unlock
 * sent before it released already.
 */
static const char *const session_reset[] = {
	"CLOSE ALL",  "SET SESSION AUTHORIZATION DEFAULT", "RESET ALL",    "DEALLOCATE ALL",
	"UNLISTEN *", "SELECT pg_advisory_unlock_all()",   "DISCARD TEMP", "DISCARD SEQUENCES",
};

bool dc_pg__send_reset(dc_conn *c)
{
	size_t i;

	for (i = 0; i < sizeof(session_reset) / sizeof(session_reset[0]); i++) {
		if (!PQsendQueryParams(c->pg, session_reset[i], 0, NULL, NULL, NULL, NULL, 0))
			return false;
		c->sent_n++;
	}
	c->dirty = false;
	return true;
}

/* The reset of a session the migration ran on, when the tenant's unlock did
 * not carry it (no lock, or an unlock that had to wait for its answer): sent
 * without waiting, like an unlock, and read with the next operation's
 * answers -- no round trip of its own. A session that cannot take it is
 * ended: a new one is clean. */
static void reset_session(dc_conn *c)
{
	if (!c->dirty || !c->pg)
		return;
	dc_pg__settle_unlock(c);
	if (PQstatus(c->pg) == CONNECTION_OK && !dc_pg__in_tx(c) && PQenterPipelineMode(c->pg)) {
		c->sent_n = 0;
		if (dc_pg__send_reset(c) && PQpipelineSync(c->pg)) {
			c->unlock_sent = true;
			return;
		}
		(void)PQexitPipelineMode(c->pg);
	}
	dc_pg__drop_connection(c);
}

/* (Re)connects when there is no usable connection, to the tenant's database
 * in the database model. */
int dc_pg__ensure_connection(dc_conn *c, dc_error *err)
{
	const char *db = NULL;
	bool fresh;
	int ret;

	if (c->engine->model == DC_TENANCY_DATABASE) {
		if (!c->tenant)
			return dc_pg__conn_fail(c, err, DC_EINVAL, NULL, NULL, 0, 0,
			                        "no tenant entered on this connection");
		db = c->tenant->target;
		if (c->pg && c->dbname && strcmp(c->dbname, db) != 0)
			dc_pg__drop_connection(c);
	}
	if (c->pg && PQstatus(c->pg) == CONNECTION_OK)
		return 0;
	dc_pg__drop_connection(c);
	fresh = err && err->code == 0;
	if ((ret = dc_pg__connect_db(c->engine, db, &c->pg, err)) != 0) {
		if (fresh && c->tenant)
			dc_engine__copy_cut(err->tenant, sizeof(err->tenant), c->tenant->id);
		return ret;
	}
	if (db && !(c->dbname = dc_strdup(db))) {
		dc_pg__drop_connection(c);
		return dc_pg__oom(c, err);
	}
	return 0;
}

int dc_pg__need_tenant(const dc_conn *c, dc_error *err)
{
	if (!c->tenant)
		return dc_pg__conn_fail(c, err, DC_EINVAL, NULL, NULL, 0, 0,
		                        "no tenant entered on this connection");
	if (dc_pg__conn_lost(c))
		return dc_pg__lost_fail(c, err);
	return 0;
}

bool dc_pg__in_tx(const dc_conn *c)
{
	PGTransactionStatusType st = PQtransactionStatus(c->pg);

	return st == PQTRANS_INTRANS || st == PQTRANS_INERROR || st == PQTRANS_ACTIVE;
}

/* ------------------------------------------------------------------------ */
/* Connections                                                              */

int dc_pg__connect(dc_engine *e, dc_conn **out, dc_error *err)
{
	dc_conn *c = calloc(1, sizeof(*c));
	int ret;

	*out = NULL;
	if (!c)
		return dc_error_set(err, DC_ENOMEM, "out of memory");
	c->engine = e;
	dc_strbuf_init(&c->versions, 0);
	/* the database model connects in enter, to the tenant's database */
	if (e->model != DC_TENANCY_DATABASE &&
	    (ret = dc_pg__connect_db(e, NULL, &c->pg, err)) != 0) {
		dc_strbuf_release(&c->versions);
		free(c);
		return ret;
	}
	*out = c;
	return 0;
}

void dc_pg__disconnect(dc_conn *c)
{
	size_t i;

	if (!c)
		return;
	c->lock_deferred = false; /* never asked for: nothing to take */
	(void)dc_pg__settle(c, NULL);
	dc_pg__leave(c);
	dc_pg__drop_connection(c);
	for (i = 0; i < CLASSIFIED_MAX; i++)
		free(c->cls[i].sql);
	dc_strbuf_release(&c->versions);
	free(c->begin_search_path);
	free(c);
}

/* The schema model's search_path: the tenant's schema, then the shared ones
 * (heap; NULL when out of memory). */
static char *search_path(const dc_conn *c)
{
	dc_strbuf sp = DC_STRBUF_INIT;

	dc_strbuf_adds(&sp, c->qschema);
	dc_strbuf_adds(&sp, c->engine->shared_path);
	return dc_strbuf_detach(&sp, NULL);
}

int dc_pg__enter(dc_conn *c, const dc_tenant *t, dc_error *err)
{
	char *q;
	int ret;

	/* no settle: the next tenant's try_lock reads a pending unlock (which is
	 * only ever sent outside a transaction) in its own round trip */
	if (c->pg && !c->unlock_sent && dc_pg__in_tx(c))
		return dc_pg__conn_fail(c, err, DC_EINVAL, NULL, NULL, 0, 0,
		                        "tenant '%s': a transaction is still open",
		                        dc_pg__tenant_id(c));
	dc_pg__leave(c);
	/* the rollout unlocks before it moves on; a lock left behind would
	 * outlive its tenant */
	if (c->locked)
		(void)dc_pg__unlock_tenant(c, NULL);
	reset_session(c);
	c->tenant = t;
	if ((ret = dc_pg__ensure_connection(c, err)) != 0)
		return ret;
	if (c->engine->model != DC_TENANCY_SCHEMA) {
		c->qschema = dc_strdup("public");
		return c->qschema ? 0 : dc_pg__oom(c, err);
	}
	q = PQescapeIdentifier(c->pg, t->target, strlen(t->target));
	if (!q)
		return dc_pg__conn_fail(c, err, DC_EINVAL, NULL, NULL, 0, 0,
		                        "tenant '%s' (shard '%s'): %s", t->id, c->engine->shard,
		                        PQerrorMessage(c->pg));
	c->qschema = dc_strdup(q);
	PQfreemem(q);
	if (!c->qschema || !(c->search_path = search_path(c)))
		return dc_pg__oom(c, err);
	return dc_pg__roles_enter(c, err);
}
