/*
 * tenancy.run_as: the role each tenant's transactions run as (SET LOCAL
 * ROLE in begin's settings query), so that PostgreSQL's own privileges stop
 * a migration -- dynamic SQL included -- from writing to another tenant or
 * to deployclaw's schema. Here: each tenant's role, resolved once per
 * discovery, and the preflight that the roles are isolated, one query per
 * shard (shard_check, DC_CHECK_ISOLATION).
 */
#include "pg_internal.h"

/*
 * One query per shard, whatever the number of tenants: no privilege
 * function per (role, schema) pair (N^2 at 10,000 tenants) but the
 * schemas' ACLs (aclexplode; acldefault where the ACL is NULL) and
 * ownership joined on grantee with what each role holds: itself, the roles
 * it is a member of (recursively over pg_auth_members; every membership
 * counts, INHERIT or not, since a member can SET ROLE to it) and PUBLIC.
 * A tenant's deployclaw_history must belong to its role (or to a role it is
 * a member of): the role reads and writes it.
 * $1 the shard's tenants, $2 their roles, $3 the run's tenants, $4 the
 * most rows. Rows: tenant, role, problem, schema, grantee.
 */
#define ROLES_CHECK                                                                              \
	"WITH RECURSIVE t AS (SELECT u.tenant, u.role, u.tenant = ANY($3::text[]) AS run "       \
	"FROM unnest($1::text[], $2::text[]) AS u(tenant, role)), "                              \
	"r AS (SELECT t.tenant, t.role, a.oid, a.rolsuper, a.rolbypassrls FROM t "               \
	"LEFT JOIN pg_roles a ON a.rolname = t.role WHERE t.run), "                              \
	"mem(tenant, role, via) AS (SELECT tenant, role, oid FROM r WHERE oid IS NOT NULL "      \
	"UNION SELECT m.tenant, m.role, am.roleid FROM mem m "                                   \
	"JOIN pg_auth_members am ON am.member = m.via), "                                        \
	"login(via) AS (SELECT oid FROM pg_roles WHERE rolname = session_user "                  \
	"UNION SELECT am.roleid FROM login l JOIN pg_auth_members am ON am.member = l.via), "    \
	"s AS (SELECT n.nspname::text AS nspname, n.nspowner, n.nspacl FROM pg_namespace n "     \
	"WHERE n.nspname IN (SELECT tenant FROM t) OR n.nspname = 'deployclaw'), "               \
	"acl(nspname, grantee, priv) AS (SELECT s.nspname, a.grantee, a.privilege_type FROM s "  \
	"CROSS JOIN LATERAL aclexplode(coalesce(s.nspacl, acldefault('n', s.nspowner))) a "      \
	"WHERE a.privilege_type IN ('USAGE', 'CREATE') "                                         \
	"UNION ALL SELECT nspname, nspowner, 'OWNER' FROM s), "                                  \
	"h AS (SELECT n.nspname::text AS tenant, c.relowner FROM pg_class c "                    \
	"JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relname = 'deployclaw_history') " \
	"(SELECT tenant, role, CASE WHEN oid IS NULL THEN 'missing' WHEN rolsuper "              \
	"THEN 'superuser' ELSE 'bypassrls' END, NULL::text, NULL::text FROM r "                  \
	"WHERE oid IS NULL OR rolsuper OR rolbypassrls "                                         \
	"UNION ALL SELECT tenant, role, 'not_member', NULL, NULL FROM r "                        \
	"WHERE oid IS NOT NULL AND NOT EXISTS (SELECT 1 FROM login WHERE login.via = r.oid) "    \
	"AND NOT (SELECT rolsuper FROM pg_roles WHERE rolname = session_user) "                  \
	"UNION ALL SELECT r.tenant, r.role, 'history', NULL, pg_get_userbyid(h.relowner) "       \
	"FROM r JOIN h ON h.tenant = r.tenant WHERE r.oid IS NOT NULL AND NOT EXISTS "           \
	"(SELECT 1 FROM mem WHERE mem.tenant = r.tenant AND mem.via = h.relowner) "              \
	"UNION ALL SELECT w.tenant, w.role, acl.priv, acl.nspname, CASE acl.grantee WHEN 0 "     \
	"THEN 'PUBLIC' ELSE pg_get_userbyid(acl.grantee)::text END "                             \
	"FROM (SELECT tenant, role, via FROM mem UNION ALL "                                     \
	"SELECT tenant, role, 0::oid FROM r WHERE oid IS NOT NULL) w "                           \
	"JOIN acl ON acl.grantee = w.via AND acl.nspname <> w.tenant) LIMIT $4::int8"

/* The role of `tenant`: `owner` (its schema's owner, run_as 'owner') or
 * run_as with the tenant id for DC_RUN_AS_TENANT. NULL: out of memory, or
 * an owner discovery did not see. */
static char *role_of(const dc_engine *e, const char *tenant, const char *owner)
{
	dc_strbuf sb = DC_STRBUF_INIT;
	const char *at;

	if (strcmp(e->run_as, "owner") == 0)
		return owner ? dc_strdup(owner) : NULL;
	/* the config admits the placeholder exactly once */
	at = strstr(e->run_as, DC_RUN_AS_TENANT);
	if (!at)
		return dc_strdup(e->run_as);
	dc_strbuf_add(&sb, e->run_as, (size_t)(at - e->run_as));
	dc_strbuf_adds(&sb, tenant);
	dc_strbuf_adds(&sb, at + strlen(DC_RUN_AS_TENANT));
	return dc_strbuf_detach(&sb, NULL);
}

void dc_pg__roles_free(dc_engine *e)
{
	size_t i;

	for (i = 0; i < e->nroles; i++) {
		free(e->roles[i].tenant);
		free(e->roles[i].role);
	}
	free(e->roles);
	e->roles = NULL;
	e->nroles = 0;
}

int dc_pg__roles_keep(dc_engine *e, const dc_tenant *tenants, char **owners, size_t n)
{
	dc_pg_run_as *v;
	size_t i;

	dc_pg__roles_free(e);
	if (n == 0)
		return 0;
	if (!(v = calloc(n, sizeof(*v))))
		return DC_ENOMEM;
	e->roles = v;
	e->nroles = n;
	for (i = 0; i < n; i++) {
		v[i].tenant = dc_strdup(tenants[i].id);
		v[i].role = role_of(e, tenants[i].id, owners ? owners[i] : NULL);
		/* a schema without an owner row is left NULL: the preflight
		 * reports it missing */
		if (!v[i].tenant || (!v[i].role && (!owners || owners[i]))) {
			dc_pg__roles_free(e);
			return DC_ENOMEM;
		}
	}
	return 0;
}

static int cmp_run_as(const void *key, const void *entry)
{
	return strcmp(key, ((const dc_pg_run_as *)entry)->tenant);
}

int dc_pg__roles_enter(dc_conn *c, dc_error *err)
{
	dc_engine *e = c->engine;
	const dc_pg_run_as *hit;
	char *role = NULL;

	free((char *)(uintptr_t)c->run_as);
	c->run_as = NULL;
	if (!e->run_as)
		return 0;
	pthread_mutex_lock(&e->mu);
	/* discovery's order is byte order (COLLATE "C"), strcmp's */
	hit = bsearch(c->tenant->id, e->roles, e->nroles, sizeof(*e->roles), cmp_run_as);
	if (hit && hit->role)
		role = dc_strdup(hit->role);
	else if (strcmp(e->run_as, "owner") != 0)
		role = role_of(e, c->tenant->id, NULL);
	pthread_mutex_unlock(&e->mu);
	if (!role && (hit || strcmp(e->run_as, "owner") != 0))
		return dc_pg__oom(c, err);
	if (!role)
		return dc_pg__conn_fail(c, err, DC_ETENANT, NULL, NULL, 0, 0,
		                        "tenant '%s' (shard '%s'): tenancy.run_as 'owner': the "
		                        "schema's owner is unknown (discovery did not find it)",
		                        c->tenant->id, e->shard);
	c->run_as = role;
	return 0;
}

/* One line of the preflight's verdict for row `i` of `res`. */
static void problem_line(const dc_engine *e, const PGresult *res, int i, dc_strbuf *out)
{
	const char *tenant = PQgetvalue(res, i, 0), *role = PQgetvalue(res, i, 1);
	const char *what = PQgetvalue(res, i, 2), *schema = PQgetvalue(res, i, 3);
	const char *via = PQgetvalue(res, i, 4);

	dc_strbuf_addf(out, "tenant '%s' (shard '%s'): tenancy.run_as role '%s' ", tenant, e->shard,
	               role);
	if (strcmp(what, "missing") == 0)
		dc_strbuf_adds(out, "does not exist");
	else if (strcmp(what, "superuser") == 0)
		dc_strbuf_adds(out, "is a superuser: no privilege stops it");
	else if (strcmp(what, "bypassrls") == 0)
		dc_strbuf_adds(out, "has BYPASSRLS: row-level security does not stop it");
	else if (strcmp(what, "not_member") == 0)
		dc_strbuf_adds(out, "cannot be set: deployclaw's login role is not a member of it");
	else if (strcmp(what, "history") == 0)
		dc_strbuf_addf(out,
		               "cannot write the tenant's deployclaw_history: it belongs to '%s' "
		               "(hand it to the role: ALTER TABLE ... OWNER TO)",
		               via);
	else {
		dc_strbuf_addf(out, "can %s schema '%s' (%s '%s'%s)",
		               strcmp(what, "OWNER") == 0    ? "own"
		               : strcmp(what, "CREATE") == 0 ? "create in"
		                                             : "use",
		               schema, strcmp(what, "OWNER") == 0 ? "owned by" : "granted to", via,
		               strcmp(via, role) == 0 || strcmp(via, "PUBLIC") == 0
		                       ? ""
		                       : ", a role it is a member of");
	}
	dc_strbuf_addch(out, '\n');
}

/* The arrays of the preflight's query: the shard's tenants and their roles
 * (from discovery), and the run's tenants. */
static void check_params(const dc_engine *e,
                         const dc_tenant *tenants,
                         size_t n,
                         dc_strbuf *all,
                         dc_strbuf *roles,
                         dc_strbuf *run)
{
	size_t i;

	dc_strbuf_addch(all, '{');
	dc_strbuf_addch(roles, '{');
	dc_strbuf_addch(run, '{');
	for (i = 0; i < e->nroles; i++) {
		dc_pg__array_add(all, e->roles[i].tenant);
		if (e->roles[i].role) {
			dc_pg__array_add(roles, e->roles[i].role);
		} else {
			if (roles->len > 1)
				dc_strbuf_addch(roles, ',');
			dc_strbuf_adds(roles, "NULL");
		}
	}
	for (i = 0; i < n; i++)
		dc_pg__array_add(run, tenants[i].id);
	dc_strbuf_addch(all, '}');
	dc_strbuf_addch(roles, '}');
	dc_strbuf_addch(run, '}');
}

int dc_pg__roles_check(dc_engine *e,
                       const dc_tenant *tenants,
                       size_t n,
                       dc_strbuf *out,
                       size_t max_rows,
                       dc_error *err)
{
	dc_strbuf all = DC_STRBUF_INIT, roles = DC_STRBUF_INIT, run = DC_STRBUF_INIT;
	PGresult *res = NULL;
	PGconn *pg = NULL;
	const char *params[4];
	char limit[24];
	int i, ret = 0;

	if (!e->run_as || n == 0)
		return 0; /* no role to check */
	pthread_mutex_lock(&e->mu);
	check_params(e, tenants, n, &all, &roles, &run);
	if (dc_strbuf_error(&all) || dc_strbuf_error(&roles) || dc_strbuf_error(&run)) {
		ret = dc_error_set(err, DC_ENOMEM, "out of memory");
		goto out;
	}
	if ((ret = dc_pg__admin_conn(e, &pg, err)) != 0)
		goto out;
	snprintf(limit, sizeof(limit), "%zu", max_rows);
	params[0] = all.buf;
	params[1] = roles.buf;
	params[2] = run.buf;
	params[3] = limit;
	/* The planner does not know how many roles and grants the CTEs hold
	 * and may pick a nested loop over roles x grants: 10^8 comparisons at
	 * 10,000 tenants (a minute) where a hash or merge join takes 0.1 s. The
	 * setting is local to a transaction that only reads. */
	res = PQexec(pg, "BEGIN READ ONLY; SET LOCAL enable_nestloop = off");
	if (dc_pg__res_ok(res)) {
		PQclear(res);
		res = PQexecParams(pg, ROLES_CHECK, 4, NULL, params, NULL, NULL, 0);
	}
	PQclear(PQexec(pg, "ROLLBACK"));
	if (!dc_pg__res_ok(res)) {
		char why[512];

		dc_text_first_line(why, sizeof(why), PQresultErrorMessage(res));
		ret = dc_pg__shard_fail(e, err, DC_EDB, dc_pg__res_state(res),
		                        "shard '%s': tenancy.run_as: cannot check the roles: %s",
		                        e->shard, why);
		goto out;
	}
	for (i = 0; i < PQntuples(res); i++)
		problem_line(e, res, i, out);
	if (dc_strbuf_error(out))
		ret = dc_error_set(err, DC_ENOMEM, "out of memory");
out:
	pthread_mutex_unlock(&e->mu);
	PQclear(res);
	dc_strbuf_release(&all);
	dc_strbuf_release(&roles);
	dc_strbuf_release(&run);
	return ret;
}
