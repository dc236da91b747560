#!/usr/bin/env bash
# create-tenants.sh [COUNT] — (re)creates the example fleet on the sandbox:
# the databases shard1 and shard2 on the primary, and COUNT tenant schemas
# (default 300) dealt out between them, tenant_0001 to shard1, tenant_0002 to
# shard2, and so on. Each tenant has users, orders (a foreign key to users)
# and audit_events, about 20 rows each.
#
# It drops shard1 and shard2 first: run it again to start over.
# Connects with $DEPLOYCLAW_PRIMARY (eval "$(scripts/pg-sandbox env)"), else
# the sandbox's default port.
set -euo pipefail

COUNT=${1:-300}
case "$COUNT" in
'' | *[!0-9]*) echo "usage: $0 [COUNT]" >&2; exit 2 ;;
esac
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

for shard in 1 2; do
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
	n=$("$PSQL" -X -A -t "$PRIMARY dbname=shard$shard" -c \
		"SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'tenant\_%'")
	echo "shard$shard: $n tenants"
done
