#!/bin/sh
# deployclaw apply against a psql baseline on a PostgreSQL fleet of schema tenants.
#
#   bench/pg_fleet.sh [-n TENANTS] [-r REPEATS] [-j "1 2"] [--no-status]
#
# (defaults: 10,000 tenants, 3 repeats, -j 1 and 2. On a shared 2-core VM
# creating the 10,000-tenant fleet takes ~10 minutes (~4 GB), every run 1-1.5
# minutes plus ~30 s of restore, so the defaults take ~45 minutes; `-r 1`, or
# -j 1 and -j 2 run separately, keep one invocation near 10-15 minutes; use
# -n 1000 to iterate.)
#
# The server: the sandbox (scripts/pg-sandbox), started by this script on its
# own port and folder (BENCH_PG_PORT, default 54391; a temporary folder) and
# stopped at the end -- or, when BENCH_PG_DSN is set (a libpq conninfo of a
# superuser, e.g. "host=127.0.0.1 port=54381 user=deployclaw"), that server,
# where the script creates the database dc_bench_fleet_TENANTS (kept: a later
# run with the same TENANTS reuses it; drop it by hand).
#
# Builds (release, build-bench/) deployclaw, creates the database
# dc_bench_fleet_TENANTS once: TENANTS schemas tenant_00001.. with users, orders (a
# foreign key to users) and audit_events, 20 rows each, AND an empty
# deployclaw_history table (deployclaw's own definition) in every tenant --
# created beforehand for both sides, so that neither pays for creating it.
# The migration is three statements in one transactional phase, no verify:
#
#   ALTER TABLE orders ADD COLUMN status text NOT NULL DEFAULT 'open';
#   ALTER TABLE users ADD COLUMN last_login_at timestamptz;
#   CREATE INDEX orders_created_at_idx ON orders (created_at);
#
# Every run starts from the same state, restored before the clock starts: in
# every tenant the index and the two columns are dropped (IF EXISTS) and
# deployclaw_history is emptied (server-side loops, two sessions),
# deployclaw.tenant_state is emptied, the catalogs are vacuumed and a
# CHECKPOINT is taken. (Recreating the database from a template with CREATE
# DATABASE ... TEMPLATE is exact but takes minutes at 10,000 tenants, ~4 GB;
# the restore leaves two dropped-column slots per run in orders and users,
# the same for both sides, which alternate.) Then, for every repeat and
# parallelism J:
#
#   baseline   psql -f: per tenant BEGIN; SET LOCAL search_path; the 3
#              statements; INSERT INTO deployclaw_history (the same columns
#              deployclaw writes); COMMIT. J psql processes, each piping an
#              interleaved half (third, ...) of the tenants from a file
#              written before the clock starts.
#   deployclaw deployclaw apply -j J: the shard's parallel budget J, canary 1,
#              waves [10%, 100%], max_failures 0, the ledger on (signed),
#              lock_timeout and statement_timeout set. Per tenant: advisory
#              lock, BEGIN + SET LOCALs + history read, the 3 statements,
#              history + tenant_state upsert, COMMIT, unlock. (The per-tenant
#              gates integrity_check/foreign_key_check are SQLite-only.)
#   status     deployclaw status on the migrated fleet (one query per shard).
#
# The summary gives medians, the ratio deployclaw/baseline of the median wall
# times at equal parallelism, and the median of the per-repeat ratios
# (each deployclaw run against the baseline run next to it). The sandbox runs
# with its defaults (fsync on, synchronous_commit on): every tenant is one
# durable commit on both sides.
set -eu
case ${DEPLOYCLAW:-/} in
/*) ;;
*) DEPLOYCLAW=$(pwd)/$DEPLOYCLAW ;;
esac
cd "$(dirname "$0")/.."
root=$(pwd)

n=10000
repeats=3
pars="1 2"
do_status=1
while [ $# -gt 0 ]; do
	case $1 in
	-n) n=$2; shift 2 ;;
	-r) repeats=$2; shift 2 ;;
	-j) pars=$2; shift 2 ;;
	--no-status) do_status=0; shift ;;
	*) echo "usage: $0 [-n TENANTS] [-r REPEATS] [-j \"1 2\"] [--no-status]" >&2
	   exit 2 ;;
	esac
done

pgbin=${DEPLOYCLAW_PGBIN:-/usr/lib/postgresql/15/bin}
psql=$pgbin/psql
dc=${DEPLOYCLAW:-$root/build-bench/src/cli/deployclaw}
if [ -z "${DEPLOYCLAW:-}" ]; then
	if [ ! -d build-bench ]; then
		meson setup build-bench --buildtype=release >/dev/null
	fi
	ninja -C build-bench src/cli/deployclaw >/dev/null
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/dc-pg-bench.XXXXXX")
sandbox_dir=
cleanup() {
	if [ -n "$sandbox_dir" ]; then
		DEPLOYCLAW_SANDBOX_DIR=$sandbox_dir scripts/pg-sandbox down >/dev/null 2>&1 || true
		rm -rf "$sandbox_dir"
	fi
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -n "${BENCH_PG_DSN:-}" ]; then
	dsn=$BENCH_PG_DSN
else
	sandbox_dir=$dir/sandbox
	port=${BENCH_PG_PORT:-54391}
	DEPLOYCLAW_SANDBOX_DIR=$sandbox_dir DEPLOYCLAW_SANDBOX_PORT=$port \
		scripts/pg-sandbox up >/dev/null
	dsn="host=127.0.0.1 port=$port user=deployclaw"
fi
export PGOPTIONS="-c client_min_messages=warning"
sql() { # sql DATABASE ARGS...: quiet psql, stop on the first error
	sql_db=$1
	shift
	"$psql" -X -q -A -t -v ON_ERROR_STOP=1 "$dsn dbname=$sql_db" "$@"
}

echo "pg_fleet on $(uname -m), $(nproc) CPUs, $(sql postgres -c 'SHOW server_version' | cut -d' ' -f1)" \
	"(fsync $(sql postgres -c 'SHOW fsync'), synchronous_commit $(sql postgres -c 'SHOW synchronous_commit'));" \
	"load average $(cut -d' ' -f1-3 /proc/loadavg)"

# --- the fleet, created once ------------------------------------------------------
db=dc_bench_fleet_$n
t0=$(date +%s)
have=$(sql postgres -c "SELECT count(*) FROM pg_database WHERE datname = '$db'")
if [ "$have" = 1 ] && [ "$(sql $db -c "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'tenant\\_%'")" = "$n" ] &&
	[ "$(sql $db -c "SELECT count(*) FROM pg_class WHERE relname = 'deployclaw_history'")" = "$n" ]; then
	echo "fleet: $db with $n tenants exists, reused"
else
	sql postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" \
		-c "CREATE DATABASE $db"
	make_part() { # FROM TO: tenants FROM..TO, a commit every 50
		sql $db -c "SET synchronous_commit = off" -c \
			"SELECT set_config('bench.lo', '$1', false), set_config('bench.hi', '$2', false)" \
			-f - >/dev/null <<'SQL'
DO $$
DECLARE
	n int;
	s text;
BEGIN
	FOR n IN current_setting('bench.lo')::int..current_setting('bench.hi')::int LOOP
		s := format('tenant_%s', lpad(n::text, 5, '0'));
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
			CREATE TABLE %1$I.deployclaw_history (version text PRIMARY KEY, name text,
				checksum text, phase text, status text NOT NULL, started_at timestamptz,
				finished_at timestamptz, duration_ms bigint, run_id text, actor text,
				written_at timestamptz NOT NULL DEFAULT clock_timestamp());
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
	}
	half=$((n / 2))
	make_part 1 "$half" &
	p1=$!
	make_part $((half + 1)) "$n" &
	p2=$!
	wait $p1
	wait $p2
	sql $db -c "VACUUM ANALYZE" -c "CHECKPOINT"
	echo "fleet: $db, $n tenants, created in $(($(date +%s) - t0))s"
fi

# --- the deployclaw project and the baseline's SQL --------------------------------
mkdir -p "$dir/project/migrations" "$dir/project/audit"
cat >"$dir/project/migrations/0001_order_status.yaml" <<'EOF'
version: "0001"
name: order status, last login, orders by time
phases:
  - name: expand
    up: |
      ALTER TABLE orders ADD COLUMN status text NOT NULL DEFAULT 'open';
      ALTER TABLE users ADD COLUMN last_login_at timestamptz;
      CREATE INDEX orders_created_at_idx ON orders (created_at);
    down: |
      DROP INDEX orders_created_at_idx;
      ALTER TABLE users DROP COLUMN last_login_at;
      ALTER TABLE orders DROP COLUMN status;
EOF
for j in $pars; do
	cat >"$dir/project/j$j.yaml" <<EOF
engine: postgres
migrations: migrations
tenancy:
  model: schema
  pattern: "tenant_%"
shards:
  - name: bench
    primary: "$dsn dbname=$db"
    parallel: $j
gates:
  lock_timeout: 5s
  statement_timeout: 1m
rollout:
  canary: 1
  waves: [10%, 100%]
  max_failures: 0
audit:
  ledger: audit/ledger.jsonl
  key: audit/signing.key
EOF
done
first=$(echo "$pars" | cut -d' ' -f1)
(cd "$dir/project" && "$dc" -q --config "j$first.yaml" audit keygen &&
	"$dc" -q --config "j$first.yaml" hash)

# The baseline: one file per psql process and parallelism, tenants dealt out
# interleaved (tenant i to process i mod J).
for j in $pars; do
	k=0
	while [ "$k" -lt "$j" ]; do
		awk -v n="$n" -v j="$j" -v k="$k" 'BEGIN {
			for (i = 1; i <= n; i++) {
				if ((i - 1) % j != k) continue
				s = sprintf("tenant_%05d", i)
				print "BEGIN;"
				print "SET LOCAL search_path TO \"" s "\";"
				print "ALTER TABLE orders ADD COLUMN status text NOT NULL DEFAULT '\''open'\'';"
				print "ALTER TABLE users ADD COLUMN last_login_at timestamptz;"
				print "CREATE INDEX orders_created_at_idx ON orders (created_at);"
				print "INSERT INTO deployclaw_history (version, name, checksum, phase, status, " \
					"started_at, finished_at, duration_ms, run_id, actor) VALUES ('\''0001'\'', " \
					"'\''order status, last login, orders by time'\'', '\''0123456789abcdef'\'', " \
					"'\''expand'\'', '\''applied'\'', now(), clock_timestamp(), 1, '\''baseline'\'', '\''bench'\'');"
				print "COMMIT;"
			}
		}' >"$dir/base_j${j}_$k.sql"
		k=$((k + 1))
	done
done

# --- runs ------------------------------------------------------------------------
results=$dir/results
: >"$results"
now() { date +%s.%N; }
elapsed() { echo "$(now) $1" | awk '{printf "%.3f", $1 - $2}'; }

restore_part() { # FROM TO: undo the migration in tenants FROM..TO, a commit every 100
	sql $db -c "SET synchronous_commit = off" -c \
		"SELECT set_config('bench.lo', '$1', false), set_config('bench.hi', '$2', false)" \
		-f - >/dev/null <<'SQL'
DO $$
DECLARE
	n int;
BEGIN
	FOR n IN current_setting('bench.lo')::int..current_setting('bench.hi')::int LOOP
		EXECUTE format('DROP INDEX IF EXISTS %1$I.orders_created_at_idx; '
			'ALTER TABLE %1$I.users DROP COLUMN IF EXISTS last_login_at; '
			'ALTER TABLE %1$I.orders DROP COLUMN IF EXISTS status; '
			'DELETE FROM %1$I.deployclaw_history',
			format('tenant_%s', lpad(n::text, 5, '0')));
		IF n % 100 = 0 THEN
			COMMIT;
		END IF;
	END LOOP;
END
$$;
SQL
}

fresh() {
	half=$((n / 2))
	restore_part 1 "$half" &
	p1=$!
	restore_part $((half + 1)) "$n" &
	p2=$!
	wait $p1
	wait $p2
	sql $db -c "DO \$\$ BEGIN IF to_regclass('deployclaw.tenant_state') IS NOT NULL THEN
		TRUNCATE deployclaw.tenant_state; END IF; END \$\$" \
		-c "VACUUM pg_class, pg_attribute, pg_index, pg_depend, pg_type, pg_attrdef, pg_statistic" \
		-c "CHECKPOINT"
	left=$(sql $db -c "SELECT count(*) FROM pg_class WHERE relname = 'orders_created_at_idx'")
	[ "$left" = 0 ] || { echo "restore failed: $left indexes left" >&2; exit 1; }
}

report() { # KIND J REPEAT SECONDS
	echo "$1 $2 $3 $4" >>"$results"
	printf '%-10s -j %s  #%s  %8.2f s  %8.1f tenants/s\n' "$1" "$2" "$3" "$4" \
		"$(echo "$n $4" | awk '{printf "%.1f", $1 / $2}')"
}

run_baseline() { # J REPEAT
	fresh
	t=$(now)
	pids=
	k=0
	while [ "$k" -lt "$1" ]; do
		sql $db -f "$dir/base_j$1_$k.sql" >/dev/null &
		pids="$pids $!"
		k=$((k + 1))
	done
	for p in $pids; do
		wait "$p" || { echo "baseline (-j $1) failed" >&2; exit 1; }
	done
	report baseline "$1" "$2" "$(elapsed "$t")"
}

run_deployclaw() { # J REPEAT
	fresh
	t=$(now)
	(cd "$dir/project" && "$dc" -q --config "j$1.yaml" apply -j "$1") || {
		echo "deployclaw (-j $1) failed" >&2
		exit 1
	}
	report deployclaw "$1" "$2" "$(elapsed "$t")"
	if [ "$do_status" = 1 ]; then
		t=$(now)
		(cd "$dir/project" && "$dc" --config "j$1.yaml" status >"$dir/status.out") || {
			echo "deployclaw status failed" >&2
			exit 1
		}
		t=$(elapsed "$t")
		echo "status $1 $2 $t" >>"$results"
		printf '%-10s        #%s  %8.3f s  (%s tenants)\n' status "$2" "$t" "$n"
	fi
}

r=1
while [ "$r" -le "$repeats" ]; do
	for j in $pars; do
		# alternate the order, so a noisy neighbour does not always hit the same one
		if [ $((r % 2)) = 1 ]; then
			run_baseline "$j" "$r"
			run_deployclaw "$j" "$r"
		else
			run_deployclaw "$j" "$r"
			run_baseline "$j" "$r"
		fi
	done
	r=$((r + 1))
done
fresh

# --- summary: medians --------------------------------------------------------------
median() { # KIND J
	awk -v k="$1" -v j="$2" '$1 == k && $2 == j {print $4}' "$results" |
		sort -g | awk '{v[NR] = $1} END {
			if (NR == 0) exit
			if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
paired_ratio() { # J: median over repeats of deployclaw / the baseline of the same repeat
	awk -v j="$1" '$2 == j && $1 == "baseline" {b[$3] = $4}
		$2 == j && $1 == "deployclaw" {d[$3] = $4}
		END {for (r in d) if (r in b) print d[r] / b[r]}' "$results" |
		sort -g | awk '{v[NR] = $1} END {
			if (NR == 0) exit
			if (NR % 2) printf "%.2f\n", v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
echo
echo "medians of $repeats runs, $n tenants; load average now $(cut -d' ' -f1-3 /proc/loadavg)"
printf '| %-28s | %2s | %9s | %10s | %6s | %6s |\n' run -j "wall (s)" tenants/s ratio paired
printf '| %-28s | %2s | %9s | %10s | %6s | %6s |\n' --- -- --- --- --- ---
for j in $pars; do
	bw=$(median baseline "$j")
	dw=$(median deployclaw "$j")
	printf '| %-28s | %2s | %9.2f | %10.1f | %6s | %6s |\n' "baseline (psql)" "$j" "$bw" \
		"$(echo "$n $bw" | awk '{print $1 / $2}')" - -
	printf '| %-28s | %2s | %9.2f | %10.1f | %6s | %6s |\n' "deployclaw apply" "$j" "$dw" \
		"$(echo "$n $dw" | awk '{print $1 / $2}')" "$(echo "$dw $bw" | awk '{printf "%.2f", $1 / $2}')" \
		"$(paired_ratio "$j")"
done
if [ "$do_status" = 1 ]; then
	all=$(awk '$1 == "status" {print $4}' "$results" | sort -g | awk '{v[NR] = $1} END {
		if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
	echo "deployclaw status, $n tenants: median $all s (target < 1 s)"
fi
