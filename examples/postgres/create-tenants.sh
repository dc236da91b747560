#!/usr/bin/env bash
# create-tenants.sh [COUNT] [--roles] — (re)creates the example fleet on the sandbox:
# the databases shard1 and shard2 on the primary, and COUNT tenant schemas
# (default 300) dealt out between them, tenant_0001 to shard1, tenant_0002 to
# shard2, and so on. Each tenant has users, orders (a foreign key to users)
# and audit_events, about 20 rows each.
#
# With --roles, each tenant gets a NOLOGIN role of its own, <schema>_owner,
# which owns the tenant's schema and everything in it, and of which the
# connecting (deployclaw's) role is a member: what tenancy.run_as: owner needs
# (see deployclaw.yaml). Roles belong to the cluster, not to a database, so
# they outlive the shards; existing ones are reused. On its own
# (create-tenants.sh --roles, no COUNT) it gives the roles to the tenants that
# exist, without recreating anything.
#
# It drops shard1 and shard2 first: run it again to start over.
# Connects with $DEPLOYCLAW_PRIMARY (eval "$(scripts/pg-sandbox env)"), else
# the sandbox's default port.
set -euo pipefail

COUNT=300
ROLES=0
CREATE=1
for arg in "$@"; do
	case "$arg" in
	--roles) ROLES=1 ;;
	'' | *[!0-9]*) echo "usage: $0 [COUNT] [--roles]" >&2; exit 2 ;;
	*) COUNT=$arg ;;
	esac
done
[ "$ROLES" = 1 ] && [ "$#" = 1 ] && CREATE=0
PRIMARY=${DEPLOYCLAW_PRIMARY:-host=127.0.0.1 port=54321 dbname=deployclaw user=deployclaw}
PSQL=$(command -v psql || echo /usr/lib/postgresql/15/bin/psql)
# Throwaway example data: no need to wait for the disk at every commit.
export PGOPTIONS="-c client_min_messages=warning -c synchronous_commit=off"

psql_do() { # psql_do DSN SQL...
	local dsn=$1
	shift
	"$PSQL" -X -q -v ON_ERROR_STOP=1 "$dsn" "$@" >/dev/null
}

psql_do "$PRIMARY" -c "SELECT 1" 2>/dev/null || {
	echo "$0: cannot connect to '$PRIMARY': is the sandbox up? (scripts/pg-sandbox up)" >&2
	exit 1
}

# give_roles SHARD: every tenant schema of the shard and its objects to
# <schema>_owner (created NOLOGIN when missing, granted to the connecting
# role); idempotent. A transaction per 50 tenants, as above.
give_roles() {
	psql_do "$PRIMARY dbname=shard$1" <<'SQL'
DO $$
DECLARE
	s text;
	r text;
	o record;
	n int := 0;
BEGIN
	FOR s IN SELECT nspname FROM pg_namespace WHERE nspname LIKE 'tenant\_%' ORDER BY 1 LOOP
		r := s || '_owner';
		IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
			EXECUTE format('CREATE ROLE %I NOLOGIN', r);
		END IF;
		IF NOT pg_has_role(current_user, r, 'MEMBER') THEN
			EXECUTE format('GRANT %I TO CURRENT_USER', r);
		END IF;
		EXECUTE format('ALTER SCHEMA %I OWNER TO %I', s, r);
		-- tables, views and their indexes and owned sequences; then what is
		-- left: free-standing sequences, functions (deployclaw_history too)
		FOR o IN SELECT c.relname, c.relkind FROM pg_class c
			WHERE c.relnamespace = s::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
			AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
				AND d.objid = c.oid AND d.deptype IN ('a', 'i'))
		LOOP
			EXECUTE format('ALTER %s %I.%I OWNER TO %I',
				CASE o.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW'
					WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'f' THEN 'FOREIGN TABLE'
					ELSE 'TABLE' END, s, o.relname, r);
		END LOOP;
		FOR o IN SELECT p.oid::regprocedure AS f FROM pg_proc p WHERE p.pronamespace = s::regnamespace LOOP
			EXECUTE format('ALTER ROUTINE %s OWNER TO %I', o.f, r);
		END LOOP;
		n := n + 1;
		IF n % 50 = 0 THEN
			COMMIT;
		END IF;
	END LOOP;
END
$$;
SQL
}

for shard in 1 2; do
	if [ "$CREATE" = 0 ]; then
		give_roles "$shard"
		echo "shard$shard: roles given"
		continue
	fi
	psql_do "$PRIMARY" -c "DROP DATABASE IF EXISTS shard$shard WITH (FORCE)" \
		-c "CREATE DATABASE shard$shard"
	# A transaction per 25 tenants (COMMIT inside DO), so that a few thousand
	# tenants never need a few thousand locks at once. Tenant n lives on
	# shard 1 + (n - 1) % 2.
	psql_do "$PRIMARY dbname=shard$shard" -v count="$COUNT" -v shard="$shard" <<'SQL'
SELECT set_config('example.count', :'count', false), set_config('example.shard', :'shard', false);
DO $$
DECLARE
	n int;
	s text;
BEGIN
	FOR n IN 1..current_setting('example.count')::int LOOP
		CONTINUE WHEN 1 + (n - 1) % 2 <> current_setting('example.shard')::int;
		s := format('tenant_%s', lpad(n::text, 4, '0'));
		EXECUTE format('CREATE SCHEMA %I', s);
		EXECUTE format($f$
			CREATE TABLE %1$I.users (
				id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
				email text NOT NULL UNIQUE,
				name text NOT NULL,
				created_at timestamptz NOT NULL DEFAULT now());
			CREATE TABLE %1$I.orders (
				id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
				user_id bigint NOT NULL REFERENCES %1$I.users (id),
				total_cents integer NOT NULL CHECK (total_cents >= 0),
				created_at timestamptz NOT NULL DEFAULT now());
			CREATE INDEX ON %1$I.orders (user_id);
			CREATE TABLE %1$I.audit_events (
				id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
				user_id bigint REFERENCES %1$I.users (id),
				kind text NOT NULL,
				payload jsonb NOT NULL DEFAULT '{}',
				created_at timestamptz NOT NULL DEFAULT now());
			INSERT INTO %1$I.users (email, name)
				SELECT format('user%%s@%1$s.example', g), format('User %%s', g)
				FROM generate_series(1, 20) g;
			INSERT INTO %1$I.orders (user_id, total_cents, created_at)
				SELECT 1 + g %% 20, 100 * g + 99, now() - g * interval '1 day'
				FROM generate_series(1, 20) g;
			INSERT INTO %1$I.audit_events (user_id, kind, payload, created_at)
				SELECT 1 + g %% 20, (ARRAY['login', 'order', 'logout'])[1 + g %% 3],
				       jsonb_build_object('n', g), now() - g * interval '1 hour'
				FROM generate_series(1, 20) g;
		$f$, s);
		IF n % 50 = 0 THEN
			COMMIT;
		END IF;
	END LOOP;
END
$$;
SQL
	[ "$ROLES" = 1 ] && give_roles "$shard"
	n=$("$PSQL" -X -A -t "$PRIMARY dbname=shard$shard" -c \
		"SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'tenant\_%'")
	echo "shard$shard: $n tenants$([ "$ROLES" = 1 ] && echo ", each owned by its role")"
done
