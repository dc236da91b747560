/*
 * The run-time isolation check (DC_CHECK_ISOLATION): before the tenant's
 * commit, inside its transaction, one query asks the server whether the
 * transaction stayed where deployclaw put it. It catches what dynamic SQL
 * (EXECUTE in a DO block or a function) did past the static isolation gate.
 *
 * Every model: search_path is what the transaction's begin left (schema
 * model: the tenant's schema, set there), current_user is the run-as role
 * or the login role, session_user the login role.
 *
 * Schema model, always: no relation outside the tenant's schema is locked
 * by this backend. DML, DDL and the creation of a relation all lock it, and
 * the locks last until the commit, so this sees what the transaction
 * touched, not only what it left. Allowed: the tenant's schema, pg_catalog,
 * pg_toast, information_schema, the temporary schemas,
 * deployclaw.tenant_state with its primary key, which the history write
 * itself locks, and the shared schemas (tenancy.shared_schemas) in the modes
 * of reading them and of a foreign key referencing them (ACCESS SHARE, ROW
 * SHARE, SHARE ROW EXCLUSIVE).
 *
 * Schema model, with `full`: no catalog row this transaction (or one of its
 * subtransactions: a DO block with an EXCEPTION clause runs in one) created
 * or updated belongs to another schema -- pg_namespace, pg_class,
 * pg_attribute, pg_proc, pg_type, pg_constraint, pg_trigger, pg_policy.
 * These are sequential scans of catalogs that grow with the tenant count,
 * which is why they run only with `full`.
 *
 * Not seen: what the transaction dropped (a dropped object's rows are gone
 * from its own view; its lock remains, on an oid nothing names any more).
 */
#include "pg_internal.h"

/* The SQL below is laid out one clause a line. */
/* clang-format off */

/* The kind of pg_class row `c`, in words. */
#define RELKIND(c)                                                                   \
	"CASE " c ".relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'partitioned table' " \
	"WHEN 'i' THEN 'index' WHEN 'I' THEN 'partitioned index' "                    \
	"WHEN 'S' THEN 'sequence' WHEN 'v' THEN 'view' "                              \
	"WHEN 'm' THEN 'materialized view' WHEN 'c' THEN 'type' "                     \
	"WHEN 'f' THEN 'foreign table' WHEN 't' THEN 'TOAST table' "                  \
	"ELSE 'relation' END"

/*
 * Whether a visible row's xmin `x` is this transaction's or one of its
 * subtransactions': a row visible to it whose creator is still in progress
 * can only be its own. age() <= 0 keeps the few rows newer than the
 * transaction's xid (cheap, per row) before their 64-bit xid (the 32-bit
 * one placed within 2^31 of the transaction's) is looked up.
 */
#define OWN(x)                                                                      \
	"(age(" x ") <= 0 AND txid_status((SELECT top FROM tx) + (" x "::text::bigint " \
	"- (SELECT top FROM tx) % 4294967296 + 6442450944) % 4294967296 - 2147483648) " \
	"= 'in progress')"

/* $1: search_path at begin, $2: the role expected as current_user, $3: the
 * login role. */
#define SETTINGS                                                                          \
	"SELECT format('search_path is %L, not %L as the transaction began', "            \
	"current_setting('search_path'), $1::text) AS l "                                 \
	"WHERE current_setting('search_path') IS DISTINCT FROM $1::text "                 \
	"UNION ALL SELECT format('current_user is %L, not %L', current_user, $2::text) "  \
	"WHERE current_user::text <> $2::text "                                           \
	"UNION ALL SELECT format('session_user is %L, not %L', session_user, $3::text) " \
	"WHERE session_user::text <> $3::text "

/* Whether schema name `s` is one the tenant may touch: $4 (its own), the
 * system's, or a temporary one (pg_temp: how pg_identify_object_as_address
 * names the session's own). */
#define ALLOWED(s)                                                                 \
	"(" s " = ANY ($4::text[]) "                                               \
	"OR " s " IN ('pg_catalog', 'pg_toast', 'information_schema', 'pg_temp') " \
	"OR " s " LIKE 'pg\\_temp\\_%' "                                           \
	"OR " s " LIKE 'pg\\_toast\\_temp\\_%')"

/* The other schemas, and this transaction's top-level xid (NULL: it wrote
 * nothing), for the catalog scans. */
#define FOREIGN_NS                                                   \
	"WITH ns AS (SELECT oid, nspname, xmin FROM pg_namespace n " \
	"WHERE NOT " ALLOWED("n.nspname") "), "                      \
	"tx AS (SELECT txid_current_if_assigned() AS top) "

/* The relations this backend holds a lock on (all in its own database, or
 * shared catalogs), one line per lock mode, named by
 * pg_identify_object_as_address (its schema and name unquoted): planned
 * once per tenant, two function scans plan in a third of the time a join
 * of pg_locks, pg_class and pg_namespace does. A relation the transaction
 * dropped has no name any more (NULLs, PostgreSQL 14+): it is not
 * reported. The system's own relations (oids below FirstNormalObjectId,
 * 16384: the catalogs every DDL statement locks) are allowed anyway and not
 * named at all. */
#define LOCKS                                                                   \
	"UNION ALL SELECT format('%s %I.%I locked by this transaction (%s)', "   \
	"o.type, o.object_names[1], o.object_names[2], m.mode) "                \
	"FROM pg_lock_status() m, "                                             \
	"pg_identify_object_as_address(1259, m.relation, 0) o "                 \
	"WHERE m.locktype = 'relation' AND m.pid = pg_backend_pid() "           \
	"AND m.relation >= 16384 "                                              \
	"AND NOT " ALLOWED("o.object_names[1]") " "                             \
	"AND NOT (o.object_names[1] = 'deployclaw' "                            \
	"AND o.object_names[2] IN ('tenant_state', 'tenant_state_pkey')) "      \
	"AND NOT (o.object_names[1] = ANY ($5::text[]) AND m.mode IN "          \
	"('AccessShareLock', 'RowShareLock', 'ShareRowExclusiveLock')) "

#define MADE " created or changed by this transaction'"

#define CATALOGS                                                                    \
	"UNION ALL SELECT format('schema %I" MADE ", n.nspname) "                   \
	"FROM ns n WHERE " OWN("n.xmin") " "                                        \
	"UNION ALL SELECT format('%s %I.%I" MADE ", " RELKIND("c") ", "             \
	"n.nspname, c.relname) "                                                    \
	"FROM pg_class c JOIN ns n ON n.oid = c.relnamespace "                      \
	"WHERE " OWN("c.xmin") " "                                                  \
	"UNION ALL SELECT format('column %I.%I.%I" MADE ", "                        \
	"n.nspname, c.relname, a.attname) "                                         \
	"FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "                \
	"JOIN ns n ON n.oid = c.relnamespace "                                      \
	"WHERE a.attnum > 0 AND " OWN("a.xmin") " "                                 \
	"UNION ALL SELECT format('%s %I.%I" MADE ", CASE p.prokind "                \
	"WHEN 'p' THEN 'procedure' WHEN 'a' THEN 'aggregate' ELSE 'function' END, " \
	"n.nspname, p.proname) "                                                    \
	"FROM pg_proc p JOIN ns n ON n.oid = p.pronamespace "                       \
	"WHERE " OWN("p.xmin") " "                                                  \
	"UNION ALL SELECT format('type %I.%I" MADE ", n.nspname, t.typname) "       \
	"FROM pg_type t JOIN ns n ON n.oid = t.typnamespace "                       \
	"WHERE t.typrelid = 0 AND t.typcategory <> 'A' AND " OWN("t.xmin") " "      \
	"UNION ALL SELECT format('constraint %I.%I" MADE ", n.nspname, k.conname) " \
	"FROM pg_constraint k JOIN ns n ON n.oid = k.connamespace "                 \
	"WHERE " OWN("k.xmin") " "                                                  \
	"UNION ALL SELECT format('trigger %I on %I.%I" MADE ", "                    \
	"g.tgname, n.nspname, c.relname) "                                          \
	"FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid "                   \
	"JOIN ns n ON n.oid = c.relnamespace "                                      \
	"WHERE NOT g.tgisinternal AND " OWN("g.xmin") " "                           \
	"UNION ALL SELECT format('policy %I on %I.%I" MADE ", "                     \
	"o.polname, n.nspname, c.relname) "                                         \
	"FROM pg_policy o JOIN pg_class c ON c.oid = o.polrelid "                   \
	"JOIN ns n ON n.oid = c.relnamespace WHERE " OWN("o.xmin") " "

/* clang-format on */

/* The query for this model and `full`, limited to `max_rows` lines. */
static int build(dc_strbuf *sql, bool schema, bool full, size_t max_rows)
{
	if (schema && full)
		dc_strbuf_adds(sql, FOREIGN_NS);
	dc_strbuf_adds(sql, "SELECT l FROM (" SETTINGS);
	if (schema)
		dc_strbuf_adds(sql, LOCKS);
	if (schema && full)
		dc_strbuf_adds(sql, CATALOGS);
	dc_strbuf_addf(sql, ") s ORDER BY l COLLATE \"C\" LIMIT %zu", max_rows);
	return dc_strbuf_error(sql);
}

int dc_pg__check_isolation(dc_conn *c, bool full, dc_strbuf *out, size_t max_rows, dc_error *err)
{
	bool schema = c->engine->model == DC_TENANCY_SCHEMA;
	dc_strbuf sql = DC_STRBUF_INIT, allowed = DC_STRBUF_INIT;
	const char *params[5];
	int ret;

	if ((ret = dc_pg__need_tenant(c, err)) != 0)
		return ret;
	/* outside a transaction (the tenant's last phase ran without one) each
	 * statement committed as it ran: there is nothing left to hold back */
	if (!c->write_sent && !dc_pg__in_tx(c))
		return 0;
	if (!c->begin_search_path)
		return dc_pg__conn_fail(c, err, DC_EINVAL, NULL, NULL, 0, 0,
		                        "tenant '%s' (shard '%s'): the isolation check runs "
		                        "inside a transaction begun by deployclaw",
		                        dc_pg__tenant_id(c), c->engine->shard);
	dc_strbuf_addch(&allowed, '{');
	dc_pg__array_add(&allowed, c->tenant->target);
	dc_strbuf_addch(&allowed, '}');
	if (build(&sql, schema, full, max_rows) || dc_strbuf_error(&allowed)) {
		ret = dc_pg__oom(c, err);
		goto out;
	}
	params[0] = c->begin_search_path;
	params[1] = c->run_as ? c->run_as : PQuser(c->pg);
	params[2] = PQuser(c->pg);
	params[3] = allowed.buf;
	params[4] = c->engine->shared_array;
	ret = dc_pg__check_query(c, sql.buf, schema ? 5 : 3, params, "isolation check", out,
	                         max_rows, err);
out:
	dc_strbuf_release(&sql);
	dc_strbuf_release(&allowed);
	return ret;
}
