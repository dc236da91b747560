# pg_fleet.sh — integration tests of apply, rollback, status, resume and the
# PostgreSQL engine's locking on fleets in the sandbox cluster
# (scripts/pg-sandbox: a primary and one streaming replica, which `make test`
# starts and exports as DEPLOYCLAW_PRIMARY / DEPLOYCLAW_REPLICA).
#
# Every fleet lives in databases of its own, named dcpg<pid>_*, dropped at
# the end. The outcome is read back from the databases with psql: history
# rows, deployclaw.tenant_state, the schema (information_schema, pg_indexes,
# pg_index), plus the ledger and the exit codes.
#
#   1. the three tenancy models (schema over two shards, database, row):
#      apply, status, rollback, resume after kill -9, verify-failure rollback
#   2. a table lock held by another session: retried on 55P03, then succeeds;
#      or fails cleanly once the retries are spent
#   3. CREATE INDEX CONCURRENTLY (own phase, and inline: split out); a failing
#      CREATE UNIQUE INDEX CONCURRENTLY leaves no INVALID index behind
#   4. the per-tenant advisory lock between two concurrent runs
#   5. tenant schemas named with quotes, spaces and non-ASCII letters
#   6. topology (smoke; tests/integration/topology.sh goes in depth)
#   7. the isolation gate: hostile migrations refused (exit 3, file:line:col),
#      every tenant, history and deployclaw's schema unchanged; DO blocks and
#      function bodies looked into; with dynamic_sql: allow, dynamic SQL
#      leaving the tenant fails it at run time (isolation_runtime, exit 1),
#      rolled back, the other schemas unchanged
#   7b. tenancy.shared_schemas: read through the search_path, never changed
#      by a tenant migration
#   7c. a property test: generated migrations mixing qualified and quoted
#      names, search_path changes and dynamic SQL never change anything
#      outside their tenant, and the static gate agrees with lint
#   8. shard-scoped migrations (scope: shard): once per shard database before
#      the tenants, shard_history, ledger, a failing one stops the run,
#      rollback --to undoes them after the tenants
#   9. tenancy.run_as: a DO block writing to another tenant is stopped by
#      PostgreSQL's privileges (exit 1, rolled back); what a migration creates
#      belongs to the tenant's role; the preflight refuses a role that can use
#      another tenant's schema, a missing role and a superuser (exit 3)
#   10. row tenancy's RLS gates: a table without RLS or FORCE, a policy off the
#      tenant column, an app role with BYPASSRLS or owning a table refused
#      before the run (exit 3); a migration creating an unprotected table
#      rolled back (exit 1); one disabling RLS refused statically; a correct
#      one applied
#
# usage: bash pg_fleet.sh path/to/deployclaw
#   PG_FLEET_CASES="lock cic"  run only these cases (schema database row lock
#                              cic advisory names isolation shared fuzz shard
#                              runas rls; schema includes topology)
#   PG_FLEET_FUZZ_N=60         migrations the property test generates
#   PG_FLEET_KEEP=DIR          copy the fleets, outputs and ledgers there
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../cli/lib.sh"
. "$HERE/fleet_lib.sh" # check_eq, count_state, state_of, ledger helpers

# Never skip: CI runs this against the sandbox; without it, that is a bug.
if [ -z "${DEPLOYCLAW_PRIMARY:-}" ] || [ -z "${DEPLOYCLAW_REPLICA:-}" ]; then
	echo "FAIL: DEPLOYCLAW_PRIMARY and DEPLOYCLAW_REPLICA are not set: start the sandbox" >&2
	echo '  (scripts/pg-sandbox up && eval "$(scripts/pg-sandbox env)"; make test does it)' >&2
	exit 1
fi
case "$DEPLOYCLAW_PRIMARY$DEPLOYCLAW_REPLICA" in
*://*)
	echo "FAIL: this test needs key=value conninfo strings, not URIs" >&2
	exit 1
	;;
esac
PSQL=$(command -v psql || echo /usr/lib/postgresql/15/bin/psql)
[ -x "$PSQL" ] || {
	echo "FAIL: psql not found" >&2
	exit 1
}
export PGOPTIONS="-c client_min_messages=warning"
P=dcpg$$ # every database of this run starts with it

cleanup() {
	local pids
	pids=$(jobs -p)
	[ -n "$pids" ] && kill -9 $pids 2>/dev/null
	"$PSQL" -X -q -At "$DEPLOYCLAW_PRIMARY" -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname LIKE '${P}\\_%' AND pid <> pg_backend_pid()" >/dev/null 2>&1
	for db in $("$PSQL" -X -At "$DEPLOYCLAW_PRIMARY" -c "SELECT datname FROM pg_database WHERE datname LIKE '${P}\\_%'" 2>/dev/null); do
		"$PSQL" -X -q "$DEPLOYCLAW_PRIMARY" -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1
	done
	# the roles of case runas are the cluster's: dropped once their databases are
	for role in $("$PSQL" -X -At "$DEPLOYCLAW_PRIMARY" -c "SELECT rolname FROM pg_roles WHERE rolname LIKE '${P}\\_%'" 2>/dev/null); do
		"$PSQL" -X -q "$DEPLOYCLAW_PRIMARY" -c "DROP ROLE IF EXISTS \"$role\"" >/dev/null 2>&1
	done
	rm -rf "$TMP"
}
trap cleanup EXIT
cd "$TMP" || exit 1

T0=$SECONDS
section() { echo "== $* ($((SECONDS - T0))s)"; }
fail_here() { fail "$@"; }

# dsn DB / rdsn DB: the sandbox primary / replica, on database DB (the last
# dbname of a conninfo string wins).
dsn() { echo "$DEPLOYCLAW_PRIMARY dbname=$1"; }
rdsn() { echo "$DEPLOYCLAW_REPLICA dbname=$1"; }

# setup DB SQL...: runs SQL on DB; a failure stops the test.
setup() {
	local db=$1
	shift
	"$PSQL" -X -q -At -v ON_ERROR_STOP=1 "$(dsn "$db")" "$@" >/dev/null || {
		echo "FAIL: setup SQL failed on '$db': $*" >&2
		exit 1
	}
}

# q DB SQL: the rows of a query (fields '|'), "ERR: ..." when it fails.
q() {
	local out
	out=$("$PSQL" -X -q -At -v ON_ERROR_STOP=1 "$(dsn "$1")" -c "$2" 2>&1) || out="ERR: $out"
	printf '%s\n' "$out"
}

mkdb() { setup deployclaw -c "CREATE DATABASE \"$1\""; }

# A helper in each fleet database: pgit.state(pattern, markers) gives one line
# per schema matching pattern: "<schema> <markers> <history>", where markers
# is a query over the schema name $1 and history is version:status,... or "-".
STATE_FN='CREATE SCHEMA pgit;
CREATE FUNCTION pgit.state(pat text, markers text) RETURNS SETOF text LANGUAGE plpgsql AS $f$
DECLARE s text; m text; h text;
BEGIN
  FOR s IN SELECT nspname FROM pg_namespace WHERE nspname LIKE pat ORDER BY nspname COLLATE "C" LOOP
    EXECUTE markers INTO m USING s;
    IF to_regclass(format($q$%I.deployclaw_history$q$, s)) IS NULL THEN h := $q$-$q$;
    ELSE EXECUTE format($q$SELECT coalesce(string_agg(version || $s$:$s$ || status, $s$,$s$ ORDER BY version), $s$-$s$) FROM %I.deployclaw_history$q$, s) INTO h;
    END IF;
    RETURN NEXT s || $q$ $q$ || m || $q$ $q$ || h;
  END LOOP;
END $f$;'
# Schema tenants count themselves through these, each in an apply_count table
# of its own schema: a migration under schema tenancy may not name a table of
# another schema (the isolation gate refuses it), nor lock one while it runs
# (isolation_runtime refuses that), and pg_catalog is on every search_path.
# public.apply_count reads every schema's (needs the schema pgit).
COUNT_FN='CREATE FUNCTION pg_catalog.pgit_count(v text) RETURNS void LANGUAGE plpgsql AS $f$
BEGIN INSERT INTO apply_count VALUES (current_setting($q$deployclaw.tenant$q$), v); END $f$;
CREATE FUNCTION pg_catalog.pgit_uncount(v text) RETURNS void LANGUAGE plpgsql AS $f$
BEGIN DELETE FROM apply_count WHERE v IS NULL OR version = v; END $f$;
CREATE FUNCTION pgit.counts() RETURNS TABLE (tenant text, version text) LANGUAGE plpgsql AS $f$
DECLARE s text;
BEGIN
  FOR s IN SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE c.relname = $q$apply_count$q$ AND c.relkind = $q$r$q$ LOOP
    RETURN QUERY EXECUTE format($q$SELECT tenant, version FROM %I.apply_count$q$, s);
  END LOOP;
END $f$;
CREATE VIEW public.apply_count AS SELECT * FROM pgit.counts();'
STATE_FN="$STATE_FN
$COUNT_FN"

# col SCHEMA-EXPR TABLE COLUMN / idx SCHEMA-EXPR INDEX: SQL counting them.
col() { echo "(SELECT count(*) FROM information_schema.columns WHERE table_schema = $1 AND table_name = '$2' AND column_name = '$3')"; }
idx() { echo "(SELECT count(*) FROM pg_indexes WHERE schemaname = $1 AND indexname = '$2')"; }
tbl() { echo "(SELECT count(*) FROM information_schema.tables WHERE table_schema = $1 AND table_name = '$2')"; }

# states DB PATTERN MARKERS > FILE
states() { q "$1" "SELECT pgit.state('$2', \$m\$SELECT $3\$m\$)"; }

# pub_states TABLE DB...: one line per database, read by ONE psql (process
# starts are slow on a loaded machine):
#   <db> p<TABLE.plan> k<TABLE.kind> <history or -> <apply_count rows>/<versions> <tenant_state>
# where tenant_state is tenant:version:status,... ("self" for a tenant named
# as its database) or "-".
pub_states() {
	local t=$1 db
	shift
	for db in "$@"; do
		cat <<SQL
\c '$(dsn "$db")'
\echo @@ $db
SELECT 'p' || $(col "'public'" "$t" plan);
SELECT 'k' || $(col "'public'" "$t" kind);
SELECT to_regclass('public.deployclaw_history') IS NOT NULL AS has_h, to_regclass('deployclaw.tenant_state') IS NOT NULL AS has_s \gset
\if :has_h
SELECT 'h' || coalesce(string_agg(version || ':' || status, ',' ORDER BY version), '-') FROM public.deployclaw_history;
\endif
SELECT 'c' || count(*) || '/' || count(DISTINCT version) FROM public.apply_count;
\if :has_s
SELECT 's' || coalesce(string_agg(CASE WHEN tenant = current_database() THEN 'self' ELSE tenant END || ':' || version || ':' || status, ',' ORDER BY tenant, version), '-') FROM deployclaw.tenant_state;
\endif
SQL
	done | "$PSQL" -X -q -At "$DEPLOYCLAW_PRIMARY" 2>/dev/null | awk '
		function emit() { if (id != "") print id, p, k, h, c, st }
		/^@@ / { emit(); id = $2; p = "p?"; k = "k?"; h = "-"; c = "?"; st = "-"; next }
		/^p/ { p = $0; next }
		/^k/ { k = $0; next }
		/^h/ { h = substr($0, 2); next }
		/^c/ { c = substr($0, 2); next }
		/^s/ { st = substr($0, 2); next }
		END { emit() }'
}

# dc CONFIG ARGS...: deployclaw (stdout, stderr, exit code kept by `run`).
dc() {
	local c=$1
	shift
	run "$DC" --config "$c" "$@"
}

# project DIR: keygen and sum for the config and migrations already in DIR.
project() {
	"$DC" --config "$1/deployclaw.yaml" audit keygen >/dev/null 2>&1 &&
		"$DC" --config "$1/deployclaw.yaml" hash >/dev/null 2>&1 || {
		echo "FAIL: cannot set up project '$1'" >&2
		exit 1
	}
}
rehash() { "$DC" --config "$1/deployclaw.yaml" hash >/dev/null 2>&1 || fail_here "hash failed in $1"; }

# json_check FILE PYTHON-EXPR...: each expression over `d` must be true.
json_check() {
	local file=$1 out
	shift
	CHECKS=$((CHECKS + 1))
	out=$(python3 - "$file" "$@" <<'PY' 2>&1
import json, sys
try:
    d = json.load(open(sys.argv[1], encoding="utf-8"))
except Exception as e:
    print("not JSON:", e)
    sys.exit(1)
bad = [x for x in sys.argv[2:] if not eval(x)]
print("; ".join("false: " + x for x in bad))
sys.exit(1 if bad else 0)
PY
	) || fail "JSON check: $out"
}

# ledger_py LEDGER PYTHON: runs PYTHON with `e` = every ledger entry, `last`
# = the entries of the last run.
ledger_py() {
	python3 - "$1" "$2" <<'PY'
import json, sys
e = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
runs = [x["run_id"] for x in e if x["event"] == "run_start"]
last = [x for x in e if runs and x["run_id"] == runs[-1]]
# the last run's tenant outcomes, from its `tenants` entries (batches of outcomes)
outcomes = [o for x in last if x["event"] == "tenants" for o in x["data"]["outcomes"]]
exec(sys.argv[2])
PY
}
INTERRUPTED_PY='
started = [x["run_id"] for x in e if x["event"] == "run_start"]
ended = {x["run_id"] for x in e if x["event"] == "run_end"}
interrupted = [x["data"]["interrupted_run"] for x in e if x["event"] == "run_interrupted"]
open_runs = [r for r in started if r not in ended]
print(len(interrupted) > 0 or not open_runs, sorted(open_runs) == sorted(interrupted), len(set(interrupted)) == len(interrupted))'

# kill_rounds CONFIG N MIN_MS MAX_MS ARGS...: starts `apply ARGS` N times and
# kill -9s it a random MIN..MAX ms after planning; sets KILLS to how many were killed
# mid-run.
kill_rounds() {
	local c=$1 n=$2 lo=$3 hi=$4 round pid ms rc t0 plan
	shift 4
	KILLS=0
	# kills land after planning, however slow this build plans (a sanitizer
	# build is several times slower), so they hit runs that are migrating
	t0=$(date +%s%N)
	"$DC" -q --config "$c" apply --dry-run "$@" >/dev/null 2>&1
	plan=$((($(date +%s%N) - t0) / 1000000))
	lo=$((lo + plan))
	hi=$((hi + plan))
	for round in $(seq 1 "$n"); do
		"$DC" --config "$c" apply "$@" >"kill.$round.out" 2>&1 &
		pid=$!
		ms=$((lo + RANDOM % (hi - lo + 1)))
		sleep "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"
		kill -9 "$pid" 2>/dev/null
		{ wait "$pid"; } 2>/dev/null
		rc=$?
		if [ "$rc" -eq 137 ]; then
			KILLS=$((KILLS + 1))
		else
			echo "  round $round: apply ended by itself (exit $rc) before the kill at ${ms}ms"
		fi
	done
	echo "  $KILLS of $n runs killed"
}

# ========================================================================
case_schema() {
section "setup"
S1=${P}_s1
S2=${P}_s2
for db in "$S1" "$S2"; do
	mkdb "$db"
	setup "$db" -c "$STATE_FN"
done
# 150 tenants: tenant_001 .. tenant_150, odd ones on s1, even ones on s2;
# users and orders (a foreign key), 5 rows each.
for k in 1 2; do
	db=$S1
	[ $k = 2 ] && db=$S2
	setup "$db" -c "
DO \$\$ DECLARE s text; BEGIN
  FOR i IN 1..150 LOOP
    CONTINUE WHEN 1 + (i - 1) % 2 <> $k;
    s := 'tenant_' || lpad(i::text, 3, '0');
    EXECUTE format('CREATE SCHEMA %I', s);
    EXECUTE format('CREATE TABLE %1\$I.users (id int PRIMARY KEY, email text NOT NULL, n int NOT NULL);
      CREATE TABLE %1\$I.orders (id int PRIMARY KEY, user_id int NOT NULL REFERENCES %1\$I.users (id), total int NOT NULL);
      INSERT INTO %1\$I.users SELECT g, ''u'' || g || ''@example.com'', g FROM generate_series(1, 5) g;
      INSERT INTO %1\$I.orders SELECT g, g, 10 * g FROM generate_series(1, 5) g;
      CREATE TABLE %1\$I.apply_count (tenant text NOT NULL, version text NOT NULL);', s);
  END LOOP;
END \$\$"
done

SF=$TMP/schema
mkdir -p "$SF/migrations" "$SF/audit"
cat >"$SF/deployclaw.yaml" <<EOF
engine: postgres
migrations: migrations
tenancy:
  model: schema
  pattern: "tenant_%"
shards:
  - name: s1
    primary: "$(dsn "$S1")"
    replicas: ["$(rdsn "$S1")"]
    parallel: 1
  - name: s2
    primary: "$(dsn "$S2")"
    replicas: ["$(rdsn "$S2")"]
    parallel: 1
gates:
  lock_timeout: 5s
  statement_timeout: 1m
  require_down: true
rollout:
  canary: 1
  waves: [10%, 50%, 100%]
  max_failures: 5
  parallel: 2
audit:
  ledger: audit/ledger.jsonl
  key: audit/signing.key
EOF
# Each migration counts itself in public.apply_count (pgit_count, with the tenant
# from current_setting('deployclaw.tenant')): a tenant applied twice counts 2.
cat >"$SF/migrations/0001_add_plan.yaml" <<'EOF'
version: "0001"
name: add a plan to users
phases:
  - name: expand
    up: |
      SELECT pg_sleep(0.03);
      ALTER TABLE users ADD COLUMN plan text;
      SELECT pgit_count('0001');
    down: |
      SELECT pgit_uncount('0001');
      ALTER TABLE users DROP COLUMN plan;
  - name: backfill
    up: UPDATE users SET plan = CASE WHEN n > 2 THEN 'team' ELSE 'solo' END;
verify:
  - SELECT count(*) = 0 FROM users WHERE plan IS NULL
EOF
cat >"$SF/migrations/0002_invoices.yaml" <<'EOF'
version: "0002"
name: create invoices
phases:
  - name: expand
    up: |
      SELECT pg_sleep(0.03);
      CREATE TABLE invoices (id int PRIMARY KEY, user_id int NOT NULL REFERENCES users (id),
        amount_cents int NOT NULL CHECK (amount_cents >= 0));
      CREATE INDEX invoices_user ON invoices (user_id);
      SELECT pgit_count('0002');
    down: |
      SELECT pgit_uncount('0002');
      DROP TABLE invoices;
EOF
project "$SF"
SC=$SF/deployclaw.yaml
S_MARK="'p' || $(col '$1' users plan) || ' i' || $(tbl '$1' invoices) || ' x' || $(idx '$1' invoices_user) || ' t' || $(col '$1' orders total_cents)"
# s_states > FILE: both shards
s_states() { { states "$S1" 'tenant\_%' "$S_MARK"; states "$S2" 'tenant\_%' "$S_MARK"; } | sort; }
# counts DB: "version count-of-rows distinct-tenants max-per-tenant" per version
counts() { q "$1" "SELECT version, count(*), count(DISTINCT tenant), max(c) FROM (SELECT version, tenant, count(*) OVER (PARTITION BY version, tenant) c FROM public.apply_count) x GROUP BY version ORDER BY version"; }
# tstate DB: "status count" of deployclaw.tenant_state per version
tstate() { q "$1" "SELECT version || ' ' || status || ' ' || count(*) FROM deployclaw.tenant_state GROUP BY version, status ORDER BY version, status"; }

# ========================================================================
section "1a. schema model, two shards, 150 tenants: apply --to 0002 killed 5 times, then resumed"
kill_rounds "$SC" 5 400 1500 --to 0002
CHECKS=$((CHECKS + 1))
[ "$KILLS" -ge 4 ] || fail_here "only $KILLS of 5 runs were killed mid-run"
s_states >mid.st
echo "  after the kills: $(grep -c '0002:applied' mid.st) tenants at 0002, $(grep -c ' -$' mid.st) untouched"
check_eq "no tenant half-applied after the kills" \
	"$(awk '{ $1 = ""; print }' mid.st | sort -u | grep -Ev '^ (p0 i0 x0 t0 -|p1 i0 x0 t0 0001:applied|p1 i1 x1 t0 0001:applied,0002:applied)$')" ""
dc "$SC" apply --to 0002
expect_rc 0
expect_out_either "0 failed" "nothing to do"  # the last killed run may have finished
dc "$SC" apply --to 0002
expect_rc 0
expect_out "nothing to do: all 150 tenants are at '0002'"
s_states >resume.st
check_eq "every tenant at 0002: plan, invoices + index, history 0001 and 0002" \
	"$(count_state resume.st "p1 i1 x1 t0 0001:applied,0002:applied")" 150
check_eq "s1: each migration applied exactly once per tenant (apply_count)" \
	"$(counts "$S1")" $'0001|75|75|1\n0002|75|75|1'
check_eq "s2: each migration applied exactly once per tenant (apply_count)" \
	"$(counts "$S2")" $'0001|75|75|1\n0002|75|75|1'
check_eq "s1: deployclaw.tenant_state, one row per tenant and version" \
	"$(tstate "$S1")" $'0001 applied 75\n0002 applied 75'
check_eq "s2: deployclaw.tenant_state" "$(tstate "$S2")" $'0001 applied 75\n0002 applied 75'
check_eq "the backfill ran in the tenant's schema" \
	"$(q "$S2" "SELECT string_agg(plan, ',' ORDER BY id) FROM tenant_150.users")" "solo,solo,team,team,team"
check_eq "history rows carry a run id and checksum" \
	"$(q "$S1" "SELECT count(*) FROM tenant_001.deployclaw_history WHERE run_id ~ '^[0-9a-f]{16}\$' AND checksum ~ '^[0-9a-f]{64}\$'")" 2
dc "$SC" audit verify
expect_rc 0
check_eq "ledger: every killed run recorded as run_interrupted, once" \
	"$(ledger_py "$SF/audit/ledger.jsonl" "$INTERRUPTED_PY")" "True True True"

section "1b. schema model: verify failure on one inconsistent tenant, the others proceed"
cat >"$SF/migrations/0003_order_totals.yaml" <<'EOF'
version: "0003"
name: store order totals
phases:
  - name: expand
    up: |
      ALTER TABLE orders ADD COLUMN total_cents int;
      UPDATE orders SET total_cents = total * 100;
      SELECT pgit_count('0003');
    down: |
      SELECT pgit_uncount('0003');
      ALTER TABLE orders DROP COLUMN total_cents;
verify:
  # a negative total: the tenant holds inconsistent orders
  - SELECT count(*) = 0 FROM orders WHERE total_cents IS NULL OR total_cents < 0
EOF
rehash "$SF"
setup "$S1" -c "UPDATE tenant_077.orders SET total = -5 WHERE id = 2"
dc "$SC" apply
expect_rc 1
expect_err "1 tenant failed"
expect_out "149 tenants migrated to '0003', 1 failed"
CHECKS=$((CHECKS + 1))
grep -Eq "tenant_077 .*migrations/0003_order_totals\.yaml:[0-9]+:[0-9]+: verify assertion of '0003' is false" "$OUT" ||
	fail_here "the summary does not name tenant_077 with file:line:col and the verify assertion"
s_states >verify.st
check_eq "tenant_077: no total_cents, no 0003 history row" \
	"$(state_of verify.st tenant_077)" "p1 i1 x1 t0 0001:applied,0002:applied"
check_eq "the other 149 at 0003" \
	"$(count_state verify.st "p1 i1 x1 t1 0001:applied,0002:applied,0003:applied")" 149
check_eq "tenant_077: no 0003 in tenant_state, nor in apply_count" \
	"$(q "$S1" "SELECT count(*) FROM deployclaw.tenant_state WHERE tenant = 'tenant_077' AND version = '0003'") $(q "$S1" "SELECT count(*) FROM apply_count WHERE tenant = 'tenant_077' AND version = '0003'")" "0 0"

section "1c. schema model: status (text and --json)"
dc "$SC" status
expect_rc 0
CHECKS=$((CHECKS + 1))
grep -Eq '^ +0003 +store order totals +149$' "$OUT" || fail_here "status does not show 149 tenants at 0003"
CHECKS=$((CHECKS + 1))
grep -Eq '^ +0002 +create invoices +1$' "$OUT" || fail_here "status does not show 1 tenant at 0002"
CHECKS=$((CHECKS + 1))
grep -Eq "^ +tenant_077 .*verify assertion" "$OUT" || fail_here "status does not list tenant_077 as failed"
"$DC" --config "$SC" --json status >status.json 2>"$ERR"
json_check status.json 'd["tenants"] == 150' 'd["pending"] == 1' 'd["failed"] == 1' 'd["drifted"] == 0' \
	'[v["tenants"] for v in d["versions"]] == [0, 0, 1, 149]' \
	'len(d["tenant_list"]) == 150' \
	'[t["tenant"] for t in d["tenant_list"] if t["version"] != "0003"] == ["tenant_077"]' \
	'sorted({t["shard"] for t in d["tenant_list"]}) == ["s1", "s2"]' \
	'sum(t["shard"] == "s1" for t in d["tenant_list"]) == 75'

section "1d. schema model: rollback of the latest migration"
setup "$S1" -c "UPDATE tenant_077.orders SET total = 20 WHERE id = 2"
dc "$SC" apply
expect_rc 0
expect_out "1 tenant migrated to '0003', 0 failed, 149 already up to date"
dc "$SC" rollback
expect_rc 0
expect_out "150 tenants rolled back, 0 failed"
s_states >rb.st
check_eq "0003 rolled back everywhere: column gone, history rolled_back" \
	"$(count_state rb.st "p1 i1 x1 t0 0001:applied,0002:applied,0003:rolled_back")" 150
check_eq "tenant_state says rolled_back" \
	"$(q "$S2" "SELECT status || ' ' || count(*) FROM deployclaw.tenant_state WHERE version = '0003' GROUP BY status")" "rolled_back 75"
check_eq "the down ran in each tenant (apply_count 0003 gone)" \
	"$(q "$S1" "SELECT count(*) FROM apply_count WHERE version = '0003'")" 0
dc "$SC" status
expect_rc 0
CHECKS=$((CHECKS + 1))
grep -Eq '^ +0002 +create invoices +150$' "$OUT" || fail_here "status after rollback does not show 150 tenants at 0002"
dc "$SC" audit verify
expect_rc 0

section "6. topology on the two-shard config (smoke)"
dc "$SC" topology
expect_rc 0
expect_out "shard 's1'"
expect_out "shard 's2'"
expect_out "primary"
expect_out "streaming"
expect_out "2 shards, 2 replicas, 150 tenants: all good"
"$DC" --config "$SC" --json topology >topo.json 2>"$ERR"
json_check topo.json 'd["ok"] is True' '[s["name"] for s in d["shards"]] == ["s1", "s2"]' \
	'all(s["in_recovery"] is False and s["tenants"] == 75 for s in d["shards"])' \
	'all(len(s["replicas"]) == 1 for s in d["shards"])' \
	'all(isinstance(s["replicas"][0]["lag_bytes"], int) and s["replicas"][0]["lag_bytes"] >= 0 for s in d["shards"])' \
	'all(s["replicas"][0]["state"] == "streaming" for s in d["shards"])'

}

# ========================================================================
case_database() {
section "1e. database model: 8 tenant databases on one shard"
DA=${P}_dadmin
mkdb "$DA"
# the tenant databases are copies of one template, made by one psql
mkdb "${P}_dtpl"
setup "${P}_dtpl" -c "CREATE TABLE users (id int PRIMARY KEY, email text NOT NULL, n int NOT NULL);
	INSERT INTO users SELECT g, 'u' || g, g FROM generate_series(1, 5) g;
	CREATE TABLE public.apply_count (tenant text NOT NULL, version text NOT NULL)"
args=()
for i in 1 2 3 4 5 6 7 8; do args+=(-c "CREATE DATABASE ${P}_t0$i TEMPLATE ${P}_dtpl"); done
setup deployclaw "${args[@]}"
DF=$TMP/database
mkdir -p "$DF/migrations" "$DF/audit"
cat >"$DF/deployclaw.yaml" <<EOF
engine: postgres
migrations: migrations
tenancy:
  model: database
  pattern: "${P}\\\\_t%"
shards:
  - name: d
    primary: "$(dsn "$DA")"
    replicas: ["$(rdsn "$DA")"]
gates:
  lock_timeout: 5s
rollout:
  canary: 1
  waves: [100%]
  max_failures: 3
  parallel: 2
audit:
  ledger: audit/ledger.jsonl
  key: audit/signing.key
EOF
cat >"$DF/migrations/0001_plan.yaml" <<'EOF'
version: "0001"
name: add a plan
phases:
  - name: expand
    up: |
      SELECT pg_sleep(0.4);
      ALTER TABLE users ADD COLUMN plan text;
      INSERT INTO public.apply_count VALUES (current_setting('deployclaw.tenant'), '0001');
    down: |
      DELETE FROM public.apply_count WHERE version = '0001';
      ALTER TABLE users DROP COLUMN plan;
EOF
project "$DF"
DCF=$DF/deployclaw.yaml
TDBS=("${P}_t01" "${P}_t02" "${P}_t03" "${P}_t04" "${P}_t05" "${P}_t06" "${P}_t07" "${P}_t08")
d_states() { pub_states users "${TDBS[@]}"; }
kill_rounds "$DCF" 3 300 1200
dc "$DCF" apply
expect_rc 0
expect_out_either "0 failed" "nothing to do"  # the last killed run may have finished
d_states >d1.st
check_eq "every tenant database at 0001 exactly once, in its own tenant_state too" \
	"$(count_state d1.st "p1 k0 0001:applied 1/1 self:0001:applied")" 8
check_eq "ledger: killed database-model runs recorded as run_interrupted" \
	"$(ledger_py "$DF/audit/ledger.jsonl" "$INTERRUPTED_PY")" "True True True"
# verify failure in one tenant database
cat >"$DF/migrations/0002_kind.yaml" <<'EOF'
version: "0002"
name: add a kind
phases:
  - name: expand
    up: |
      ALTER TABLE users ADD COLUMN kind text NOT NULL DEFAULT 'person';
      INSERT INTO public.apply_count VALUES (current_setting('deployclaw.tenant'), '0002');
    down: |
      DELETE FROM public.apply_count WHERE version = '0002';
      ALTER TABLE users DROP COLUMN kind;
verify:
  - SELECT count(*) = 0 FROM users WHERE n < 0
EOF
rehash "$DF"
setup "${P}_t05" -c "UPDATE users SET n = -1 WHERE id = 4"
dc "$DCF" apply
expect_rc 1
expect_out "7 tenants migrated to '0002', 1 failed"
CHECKS=$((CHECKS + 1))
grep -Eq "${P}_t05 .*0002_kind\.yaml:[0-9]+:[0-9]+: verify assertion of '0002' is false" "$OUT" ||
	fail_here "the summary does not name ${P}_t05 with the verify assertion"
d_states >d2.st
check_eq "the failed tenant database: no kind column, no 0002 history" "$(state_of d2.st "${P}_t05")" "p1 k0 0001:applied 1/1 self:0001:applied"
check_eq "the other 7 at 0002" "$(count_state d2.st "p1 k1 0001:applied,0002:applied 2/2 self:0001:applied,self:0002:applied")" 7
"$DC" --config "$DCF" --json status >dstatus.json 2>"$ERR"
json_check dstatus.json 'd["tenants"] == 8' 'd["failed"] == 1' 'd["pending"] == 1' \
	'[v["tenants"] for v in d["versions"]] == [0, 1, 7]' \
	'[t["tenant"] for t in d["tenant_list"] if t["failed"]] == ["'"${P}_t05"'"]'
# without --to a rollback takes the fleet one step back: below the newest
# version applied anywhere (0002), so the tenant still at 0001 stays there
dc "$DCF" rollback
expect_rc 0
expect_out "7 tenants rolled back, 0 failed, 1 already up to date"
d_states >d3.st
check_eq "rollback: the 7 back at 0001" \
	"$(count_state d3.st "p1 k0 0001:applied,0002:rolled_back 1/1 self:0001:applied,self:0002:rolled_back")" 7
check_eq "rollback: the one at 0001 untouched" "$(state_of d3.st "${P}_t05")" "p1 k0 0001:applied 1/1 self:0001:applied"
dc "$DCF" status
expect_rc 0
CHECKS=$((CHECKS + 1))
grep -Eq '^ +0001 +add a plan +8$' "$OUT" || fail_here "database status after rollback does not show 8 tenants at 0001"

}

# ========================================================================
case_row() {
section "1f. row model: shared tables, one tenant per shard (two shards)"
R1=${P}_r1
R2=${P}_r2
for db in "$R1" "$R2"; do
	mkdb "$db"
	setup "$db" -c "CREATE TABLE accounts (id int PRIMARY KEY, tenant_id text NOT NULL, n int NOT NULL);
		ALTER TABLE accounts ENABLE ROW LEVEL SECURITY;
		CREATE POLICY accounts_tenant ON accounts USING (tenant_id = current_setting('app.tenant', true));
		INSERT INTO accounts SELECT g, 'c' || g % 4, g FROM generate_series(1, 40) g;
		CREATE TABLE public.apply_count (tenant text NOT NULL, version text NOT NULL)"
done
RF=$TMP/row
mkdir -p "$RF/migrations" "$RF/audit"
cat >"$RF/deployclaw.yaml" <<EOF
engine: postgres
migrations: migrations
tenancy:
  model: row
shards:
  - name: r1
    primary: "$(dsn "$R1")"
    replicas: ["$(rdsn "$R1")"]
  - name: r2
    primary: "$(dsn "$R2")"
    replicas: ["$(rdsn "$R2")"]
gates:
  lock_timeout: 5s
rollout:
  canary: 0
  waves: [100%]
  max_failures: 1
  parallel: 2
audit:
  ledger: audit/ledger.jsonl
  key: audit/signing.key
EOF
cat >"$RF/migrations/0001_plan.yaml" <<'EOF'
version: "0001"
name: add a plan
phases:
  - name: expand
    up: |
      SELECT pg_sleep(0.8);
      ALTER TABLE accounts ADD COLUMN plan text;
      INSERT INTO public.apply_count VALUES (current_setting('deployclaw.tenant'), '0001');
    down: |
      DELETE FROM public.apply_count WHERE version = '0001';
      ALTER TABLE accounts DROP COLUMN plan;
EOF
project "$RF"
RCF=$RF/deployclaw.yaml
r_state() { pub_states accounts "$1" | cut -d' ' -f2-; }
kill_rounds "$RCF" 3 300 900
dc "$RCF" apply
expect_rc 0
expect_out_either "0 failed" "nothing to do"  # the last killed run may have finished
check_eq "row model: r1 at 0001 once (history, tenant_state)" "$(r_state "$R1")" "p1 k0 0001:applied 1/1 r1:0001:applied"
check_eq "row model: r2 at 0001 once" "$(r_state "$R2")" "p1 k0 0001:applied 1/1 r2:0001:applied"
check_eq "ledger: killed row-model runs recorded as run_interrupted" \
	"$(ledger_py "$RF/audit/ledger.jsonl" "$INTERRUPTED_PY")" "True True True"
cat >"$RF/migrations/0002_kind.yaml" <<'EOF'
version: "0002"
name: add a kind
phases:
  - name: expand
    up: |
      ALTER TABLE accounts ADD COLUMN kind text NOT NULL DEFAULT 'company';
      INSERT INTO public.apply_count VALUES (current_setting('deployclaw.tenant'), '0002');
    down: |
      DELETE FROM public.apply_count WHERE version = '0002';
      ALTER TABLE accounts DROP COLUMN kind;
verify:
  - SELECT count(*) = 0 FROM accounts WHERE n < 0
EOF
rehash "$RF"
setup "$R2" -c "UPDATE accounts SET n = -7 WHERE id = 9"
dc "$RCF" apply
expect_rc 1
expect_out "1 tenant migrated to '0002', 1 failed"
CHECKS=$((CHECKS + 1))
grep -Eq "^ +r2 .*0002_kind\.yaml:[0-9]+:[0-9]+: verify assertion of '0002' is false" "$OUT" ||
	fail_here "the summary does not name shard-tenant r2 with the verify assertion"
check_eq "row model: r1 at 0002" "$(r_state "$R1")" "p1 k1 0001:applied,0002:applied 2/2 r1:0001:applied,r1:0002:applied"
check_eq "row model: r2 (verify failed) unchanged" "$(r_state "$R2")" "p1 k0 0001:applied 1/1 r2:0001:applied"
dc "$RCF" status
expect_rc 0
CHECKS=$((CHECKS + 1))
grep -Eq '^ +0002 +add a kind +1$' "$OUT" || fail_here "row status does not show 1 tenant at 0002"
dc "$RCF" rollback --tenant r1
expect_rc 0
expect_out "1 tenant rolled back"
check_eq "row model rollback: r1 back at 0001" "$(r_state "$R1")" "p1 k0 0001:applied,0002:rolled_back 1/1 r1:0001:applied,r1:0002:rolled_back"
check_eq "row model rollback --tenant r1: r2 untouched" "$(r_state "$R2")" "p1 k0 0001:applied 1/1 r2:0001:applied"

}

# ========================================================================
case_lock() {
section "2. a lock held by another session: retried on 55P03"
LK=${P}_lk
mkdb "$LK"
setup "$LK" -c "$STATE_FN" -c "
DO \$\$ BEGIN
  FOR s IN 1..3 LOOP
    EXECUTE format('CREATE SCHEMA %I; CREATE TABLE %1\$I.users (id int PRIMARY KEY, n int NOT NULL);
      INSERT INTO %1\$I.users SELECT g, g FROM generate_series(1, 5) g', 'lk_' || chr(96 + s));
  END LOOP;
END \$\$"
LF=$TMP/lock
mkdir -p "$LF/migrations" "$LF/audit"
cat >"$LF/deployclaw.yaml" <<EOF
engine: postgres
migrations: migrations
tenancy:
  model: schema
  pattern: "lk\\\\_%"
shards:
  - name: lk
    primary: "$(dsn "$LK")"
gates:
  lock_timeout: 500ms
rollout:
  canary: 0
  waves: [100%]
  max_failures: 3
  parallel: 2
  retries: 3
audit:
  ledger: audit/ledger.jsonl
  key: audit/signing.key
EOF
cat >"$LF/migrations/0001_plan.yaml" <<'EOF'
version: "0001"
name: add a plan
phases:
  - name: expand
    up: ALTER TABLE users ADD COLUMN plan text;
    down: ALTER TABLE users DROP COLUMN plan;
EOF
project "$LF"
LCF=$LF/deployclaw.yaml
LK_MARK="'p' || $(col '$1' users plan) || ' o' || $(col '$1' users note)"

# hold_table SCHEMA SECONDS: a psql session holds SCHEMA.users in ACCESS
# EXCLUSIVE mode for SECONDS (application_name pgit_holder); returns once the
# lock is granted. HOLDER is the psql's pid.
hold_table() {
	PGAPPNAME=pgit_holder "$PSQL" -X -q "$(dsn "$LK")" \
		-c "BEGIN" -c "LOCK TABLE $1.users IN ACCESS EXCLUSIVE MODE" -c "SELECT pg_sleep($2)" -c "COMMIT" \
		>/dev/null 2>&1 &
	HOLDER=$!
	local i
	for ((i = 0; i < 200; i++)); do
		[ "$(q "$LK" "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
			WHERE a.application_name = 'pgit_holder' AND l.relation = '$1.users'::regclass
			AND l.mode = 'AccessExclusiveLock' AND l.granted")" = 1 ] && return 0
		sleep 0.05
	done
	fail_here "the holder session never got its lock on $1.users"
}
release_holder() {
	q "$LK" "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'pgit_holder'" >/dev/null
	wait "$HOLDER" 2>/dev/null
}

hold_table lk_b 60
t1=$(date +%s%N)
"$DC" --config "$LCF" apply >"$OUT" 2>"$ERR" &
LA=$!
# once deployclaw waits for the table, release it ~1 s later (after the
# first 500ms lock_timeout, within the retries)
for ((i = 0; i < 300; i++)); do
	[ "$(q "$LK" "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
		WHERE a.application_name LIKE 'deployclaw/%' AND l.relation = 'lk_b.users'::regclass AND NOT l.granted")" = 1 ] && break
	sleep 0.05
done
CHECKS=$((CHECKS + 1))
[ "$i" -lt 300 ] || fail_here "deployclaw never waited for the lock on lk_b.users"
sleep 1
release_holder
wait "$LA"
RC=$?
t2=$(date +%s%N)
expect_rc 0
expect_out "3 tenants migrated to '0001', 0 failed"
echo "  apply with lk_b locked took $(((t2 - t1) / 1000000)) ms"
check_eq "every tenant at 0001, lk_b too" \
	"$(states "$LK" 'lk\_%' "$LK_MARK" | tr '\n' '|')" "lk_a p1 o0 0001:applied|lk_b p1 o0 0001:applied|lk_c p1 o0 0001:applied|"
ledger_py "$LF/audit/ledger.jsonl" '
r = [x["data"] for x in last if x["event"] == "tenant_retry"]
print("retries", len(r) >= 1, {x["tenant"] for x in r}, {x["sqlstate"] for x in r}, all(x["backoff_ms"] >= 100 for x in r))
t = [o for o in outcomes if o["tenant"] == "lk_b"][0]
print("lk_b", t["status"], t.get("attempts", 1) == len(r) + 1)' >lk1.ledger
check_eq "ledger: lk_b retried on 55P03 (lock timeout)" "$(grep ^retries lk1.ledger)" "retries True {'lk_b'} {'55P03'} True"
check_eq "ledger: lk_b succeeded, attempts = retries + 1" "$(grep ^lk_b lk1.ledger)" "lk_b succeeded True"

# held longer than every retry: the tenant fails cleanly
cat >"$LF/migrations/0002_note.yaml" <<'EOF'
version: "0002"
name: add a note
phases:
  - name: expand
    up: ALTER TABLE users ADD COLUMN note text;
    down: ALTER TABLE users DROP COLUMN note;
EOF
rehash "$LF"
hold_table lk_c 30
dc "$LCF" apply
release_holder
expect_rc 1
expect_out "2 tenants migrated to '0002', 1 failed"
CHECKS=$((CHECKS + 1))
grep -E "^ +lk_c " "$OUT" | grep -Eiq "lock timeout|55P03" ||
	fail_here "the failure of lk_c does not name the lock timeout (55P03)"
check_eq "lk_c unchanged (no note, no 0002 history); the others at 0002" \
	"$(states "$LK" 'lk\_%' "$LK_MARK" | tr '\n' '|')" \
	"lk_a p1 o1 0001:applied,0002:applied|lk_b p1 o1 0001:applied,0002:applied|lk_c p1 o0 0001:applied|"
check_eq "lk_c: tenant_state has no 0002" \
	"$(q "$LK" "SELECT count(*) FROM deployclaw.tenant_state WHERE tenant = 'lk_c' AND version = '0002'")" 0
ledger_py "$LF/audit/ledger.jsonl" '
r = [x["data"] for x in last if x["event"] == "tenant_retry"]
print("retries", len(r), {x["tenant"] for x in r}, {x["sqlstate"] for x in r})
t = [o for o in outcomes if o["tenant"] == "lk_c"][0]
print("lk_c", t["status"], t.get("attempts"), "lock timeout" in t.get("error", ""), t.get("sqlstate"))' >lk2.ledger
check_eq "ledger: lk_c retried exactly rollout.retries times, all 55P03" "$(grep ^retries lk2.ledger)" "retries 3 {'lk_c'} {'55P03'}"
check_eq "ledger: lk_c failed after 4 attempts, on the lock timeout" "$(grep ^lk_c lk2.ledger)" "lk_c failed 4 True 55P03"
dc "$LCF" apply
expect_rc 0
expect_out "1 tenant migrated to '0002'"

}

# ========================================================================
case_cic() {
section "3. CREATE INDEX CONCURRENTLY: own phase, inline (split out), and a failing one"
CC=${P}_cc
mkdb "$CC"
setup "$CC" -c "$STATE_FN" -c "
DO \$\$ BEGIN
  FOR s IN 1..5 LOOP
    EXECUTE format('CREATE SCHEMA %I; CREATE TABLE %1\$I.users (id int PRIMARY KEY, email text NOT NULL, n int NOT NULL);
      INSERT INTO %1\$I.users SELECT g, ''u'' || g || ''@example.com'', g FROM generate_series(1, 200) g', 'cc_' || s);
  END LOOP;
END \$\$" -c "UPDATE cc_4.users SET email = 'dup@example.com' WHERE id IN (7, 8)"
CF=$TMP/cic
mkdir -p "$CF/migrations" "$CF/audit"
cat >"$CF/deployclaw.yaml" <<EOF
engine: postgres
migrations: migrations
tenancy:
  model: schema
  pattern: "cc\\\\_%"
shards:
  - name: cc
    primary: "$(dsn "$CC")"
    replicas: ["$(rdsn "$CC")"]
gates:
  lock_timeout: 5s
rollout:
  canary: 1
  waves: [100%]
  max_failures: 3
  parallel: 2
audit:
  ledger: audit/ledger.jsonl
  key: audit/signing.key
EOF
cat >"$CF/migrations/0001_score.yaml" <<'EOF'
version: "0001"
name: score, indexed concurrently
phases:
  - name: expand
    up: ALTER TABLE users ADD COLUMN score int;
    down: ALTER TABLE users DROP COLUMN score;
  - name: index
    transaction: false
    up: CREATE INDEX CONCURRENTLY users_n_idx ON users (n);
    down: DROP INDEX CONCURRENTLY IF EXISTS users_n_idx;
verify:
  - SELECT count(*) = 1 FROM pg_indexes WHERE schemaname = current_schema() AND indexname = 'users_n_idx'
EOF
cat >"$CF/migrations/0002_note.yaml" <<'EOF'
version: "0002"
name: note, index inline
phases:
  - name: expand
    up: |
      ALTER TABLE users ADD COLUMN note text;
      CREATE INDEX CONCURRENTLY users_note_idx ON users (note);
      UPDATE users SET note = 'n' || n WHERE n <= 3;
    down: |
      DROP INDEX IF EXISTS users_note_idx;
      ALTER TABLE users DROP COLUMN note;
EOF
project "$CF"
CCF=$CF/deployclaw.yaml
CC_MARK="'s' || $(col '$1' users score) || ' n' || $(idx '$1' users_n_idx) || ' o' || $(col '$1' users note) || ' i' || $(idx '$1' users_note_idx) || ' e' || $(col '$1' users email_norm) || ' u' || $(idx '$1' users_email_uq)"
invalid() { q "$CC" "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname LIKE 'cc\\_%' AND NOT (i.indisvalid AND i.indisready)"; }
dc "$CCF" apply
expect_rc 0
expect_out "5 tenants migrated to '0002', 0 failed"
states "$CC" 'cc\_%' "$CC_MARK" >cc1.st
check_eq "both concurrent indexes everywhere, columns too" \
	"$(count_state cc1.st "s1 n1 o1 i1 e0 u0 0001:applied,0002:applied")" 5
check_eq "no INVALID index" "$(invalid)" 0
check_eq "the inline phase's statement after the split ran too" \
	"$(q "$CC" "SELECT count(*) FROM cc_5.users WHERE note IS NOT NULL")" 3
cat >"$CF/migrations/0003_email_unique.yaml" <<'EOF'
version: "0003"
name: unique emails
phases:
  - name: expand
    up: ALTER TABLE users ADD COLUMN email_norm text;
    down: ALTER TABLE users DROP COLUMN email_norm;
  - name: unique
    transaction: false
    up: CREATE UNIQUE INDEX CONCURRENTLY users_email_uq ON users (email);
    down: DROP INDEX CONCURRENTLY IF EXISTS users_email_uq;
EOF
rehash "$CF"
dc "$CCF" apply
expect_rc 1
expect_out "4 tenants migrated to '0003', 1 failed"
CHECKS=$((CHECKS + 1))
grep -E "^ +cc_4 " "$OUT" | grep -q "could not create unique index" ||
	fail_here "the failure of cc_4 does not say 'could not create unique index'"
expect_no_out "dropping the INVALID index it left failed"
expect_no_out "undoing its committed phases failed"
states "$CC" 'cc\_%' "$CC_MARK" >cc2.st
check_eq "no INVALID index left behind anywhere (pg_index.indisvalid)" "$(invalid)" 0
check_eq "cc_4: no unique index, its committed expand phase undone, 0003 rolled back" \
	"$(state_of cc2.st cc_4)" "s1 n1 o1 i1 e0 u0 0001:applied,0002:applied,0003:rolled_back"
check_eq "the other 4 at 0003 with a valid unique index" \
	"$(count_state cc2.st "s1 n1 o1 i1 e1 u1 0001:applied,0002:applied,0003:applied")" 4
check_eq "cc_4: tenant_state not applied for 0003" \
	"$(q "$CC" "SELECT coalesce(string_agg(status, ','), '-') FROM deployclaw.tenant_state WHERE tenant = 'cc_4' AND version = '0003'")" rolled_back
# the tenant's failure keeps its SQLSTATE (issue 4: "fails the tenant with
# SQLSTATE, message and statement position")
check_eq "ledger: cc_4's failure with SQLSTATE 23505 and the statement's position" \
	"$(ledger_py "$CF/audit/ledger.jsonl" 't = [o for o in outcomes if o["status"] == "failed"]; print([(x["tenant"], x.get("sqlstate"), x["file"].split("/")[-1], x["line"], x["col"]) for x in t])')" \
	"[('cc_4', '23505', '0003_email_unique.yaml', 9, 9)]"
"$DC" --config "$CCF" --json status >ccstatus.json 2>"$ERR"
json_check ccstatus.json 'd["failed"] == 1' '[t["tenant"] for t in d["tenant_list"] if t["failed"]] == ["cc_4"]'

}

# ========================================================================
case_advisory() {
section "4. advisory-lock exclusion between two concurrent runs"
AD=${P}_adv
mkdb "$AD"
setup "$AD" -c "$STATE_FN" -c "
DO \$\$ BEGIN
  FOR s IN 1..8 LOOP
    EXECUTE format('CREATE SCHEMA %I; CREATE TABLE %1\$I.users (id int PRIMARY KEY, n int NOT NULL);
      CREATE TABLE %1\$I.apply_count (tenant text NOT NULL, version text NOT NULL)', 'adv_0' || s);
  END LOOP;
END \$\$"
AF=$TMP/adv
mkdir -p "$AF/migrations" "$AF/audit"
adv_config() { # adv_config FILE LOCK_TIMEOUT PARALLEL
	cat >"$1" <<EOF
engine: postgres
migrations: migrations
tenancy:
  model: schema
  pattern: "adv\\\\_%"
shards:
  - name: adv
    primary: "$(dsn "$AD")"
gates:
  lock_timeout: $2
rollout:
  canary: 0
  waves: [100%]
  max_failures: 100
  parallel: $3
  retries: 0
audit:
  ledger: audit/ledger.jsonl
  key: audit/signing.key
EOF
}
adv_config "$AF/deployclaw.yaml" 30s 1
adv_config "$AF/second.yaml" 200ms 2
# adv_03 is slow (3 s): while the first run holds it, the second must give up
cat >"$AF/migrations/0001_plan.yaml" <<'EOF'
version: "0001"
name: add a plan
phases:
  - name: expand
    up: |
      SELECT pg_sleep(CASE current_setting('deployclaw.tenant') WHEN 'adv_03' THEN 3 ELSE 0.3 END);
      ALTER TABLE users ADD COLUMN plan text;
      SELECT pgit_count('0001');
    down: |
      SELECT pgit_uncount(NULL);
      ALTER TABLE users DROP COLUMN plan;
EOF
project "$AF"
"$DC" --config "$AF/deployclaw.yaml" apply >a1.out 2>a1.err &
A1=$!
# the first run is on adv_03 once one of its sessions sleeps longer than 0.5 s
A_PID=
for ((i = 0; i < 300; i++)); do
	A_PID=$(q "$AD" "SELECT pid || ' ' || application_name FROM pg_stat_activity WHERE application_name LIKE 'deployclaw/%'
		AND state = 'active' AND query LIKE '%pg_sleep%' AND now() - query_start > interval '0.5 s'")
	[ -n "$A_PID" ] && break
	sleep 0.05
done
CHECKS=$((CHECKS + 1))
[ -n "$A_PID" ] || fail_here "the first run never reached adv_03"
A_APP=${A_PID#* }
A_PID=${A_PID%% *}
"$DC" --config "$AF/second.yaml" apply --tenant adv_03 >b1.out 2>b1.err
B1=$?
"$DC" --config "$AF/second.yaml" apply >b2.out 2>b2.err &
B2=$!
wait "$A1"
RA=$?
wait "$B2"
RB2=$?
echo "  first run exit $RA; second run on adv_03 exit $B1; full second run exit $RB2"
check_eq "the first run (lock_timeout 30s) finished" "$RA" 0
[ "$RA" -eq 0 ] || { echo "  first run:"; sed 's/^/    /' a1.out a1.err; }
check_eq "the second run on the tenant the first holds gave up" "$B1" 1
CHECKS=$((CHECKS + 1))
grep -qF "tenant 'adv_03' (shard 'adv') is locked by another deployclaw process: application_name '$A_APP', pid $A_PID, since " b1.out ||
	fail_here "the lock message does not name the holder ($A_APP, pid $A_PID): $(grep adv_03 b1.out)"
CHECKS=$((CHECKS + 1))
grep -q "; waited 200ms" b1.out || fail_here "the lock message does not say how long it waited"
# a tenant the other run did meanwhile is skipped under its lock, and the
# connection moves on (the skip once left the history read's transaction
# open: every later tenant of the run failed "a transaction is still open")
CHECKS=$((CHECKS + 1))
! grep -q "a transaction is still open" a1.out b2.out || fail_here "a skipped tenant left its transaction open: $(grep -h 'still open' a1.out b2.out | head -3)"
CHECKS=$((CHECKS + 1))
[ "$RB2" -eq 0 ] || [ "$RB2" -eq 1 ] || fail_here "the concurrent full run exited $RB2"
CHECKS=$((CHECKS + 1))
! grep -qiE "already exists|duplicate" a1.out b1.out b2.out || fail_here "a tenant was applied twice: $(grep -hiE 'already exists|duplicate' a1.out b1.out b2.out)"
CHECKS=$((CHECKS + 1))
if grep -q "failed" b2.err; then
	grep -Eq "is locked by another deployclaw process" b2.out ||
		fail_here "the full second run failed, but not on a tenant lock: $(head -c 600 b2.out)"
fi
check_eq "the two runs migrated each tenant once between them" \
	"$(cat a1.out b2.out | sed -n "s/^\([0-9]*\) tenants\? migrated to '0001'.*/\1/p" | awk '{ n += $1 } END { print n + 0 }')" 8
check_eq "each tenant applied exactly once (apply_count)" \
	"$(q "$AD" "SELECT count(*) || ' ' || count(DISTINCT tenant) FROM apply_count")" "8 8"
check_eq "one history row per tenant" \
	"$(states "$AD" 'adv\_%' "'p' || $(col '$1' users plan)" | awk '{ print $2, $3 }' | sort | uniq -c | sed 's/^ *//')" "8 p1 0001:applied"
dc "$AF/deployclaw.yaml" apply
expect_rc 0
expect_out "nothing to do: all 8 tenants are at '0001'"

}

# ========================================================================
case_names() {
section "5. tenant schemas named with quotes, spaces and non-ASCII letters"
QD=${P}_q
mkdb "$QD"
NAMES=("tenant_o'brien" "tenant_with space" "tenant_ünïcode" 'tenant_dq"x' 'tenant_back\slash' "tenant_Plain")
for n in "${NAMES[@]}"; do
	setup "$QD" -v s="$n" <<'SQL'
CREATE SCHEMA :"s";
SET search_path = :"s";
CREATE TABLE users (id int PRIMARY KEY, n int NOT NULL);
INSERT INTO users SELECT g, g FROM generate_series(1, 3) g;
CREATE TABLE apply_count (tenant text NOT NULL, version text NOT NULL);
SQL
done
setup "$QD" -c "CREATE SCHEMA pgit" -c "$COUNT_FN"
setup "$QD" -c 'UPDATE "tenant_ünïcode".users SET n = -1 WHERE id = 2'
QF=$TMP/quoted
mkdir -p "$QF/migrations" "$QF/audit"
cat >"$QF/deployclaw.yaml" <<EOF
engine: postgres
migrations: migrations
tenancy:
  model: schema
  pattern: "tenant\\\\_%"
shards:
  - name: q
    primary: "$(dsn "$QD")"
    replicas: ["$(rdsn "$QD")"]
gates:
  lock_timeout: 5s
rollout:
  canary: 1
  waves: [100%]
  max_failures: 3
  parallel: 2
audit:
  ledger: audit/ledger.jsonl
  key: audit/signing.key
EOF
cat >"$QF/migrations/0001_plan.yaml" <<'EOF'
version: "0001"
name: add a plan
phases:
  - name: expand
    up: |
      ALTER TABLE users ADD COLUMN plan text;
      SELECT pgit_count('0001');
    down: |
      SELECT pgit_uncount('0001');
      ALTER TABLE users DROP COLUMN plan;
EOF
cat >"$QF/migrations/0002_kind.yaml" <<'EOF'
version: "0002"
name: add a kind
phases:
  - name: expand
    up: ALTER TABLE users ADD COLUMN kind text;
    down: ALTER TABLE users DROP COLUMN kind;
verify:
  - SELECT count(*) = 0 FROM users WHERE n < 0
EOF
project "$QF"
QCF=$QF/deployclaw.yaml
# q_state NAME: "p<plan> k<kind> <history> s:<tenant_state> c:<apply_count>"
# of the schema NAME ("-" for no history table)
q_state() {
	"$PSQL" -X -q -At -v ON_ERROR_STOP=1 "$(dsn "$QD")" -v s="$1" <<'SQL' 2>&1 | tr '\n' ' ' | sed 's/ $//'
SELECT 'p' || count(*) FROM information_schema.columns WHERE table_schema = :'s' AND table_name = 'users' AND column_name = 'plan';
SELECT 'k' || count(*) FROM information_schema.columns WHERE table_schema = :'s' AND table_name = 'users' AND column_name = 'kind';
SELECT to_regclass(format('%I.deployclaw_history', :'s')) IS NOT NULL AS has \gset
\if :has
SELECT coalesce(string_agg(version || ':' || status, ',' ORDER BY version), '-') FROM :"s".deployclaw_history;
\else
SELECT '-';
\endif
SELECT 's:' || coalesce(string_agg(version || ':' || status, ',' ORDER BY version), '-') FROM deployclaw.tenant_state WHERE tenant = :'s';
SELECT 'c:' || count(*) FROM public.apply_count WHERE tenant = :'s';
SQL
}
dc "$QCF" apply --to 0001 --tenant "tenant_o'brien"
expect_rc 0
expect_out "1 tenant migrated to '0001'"
check_eq "--tenant \"tenant_o'brien\": applied in its schema" "$(q_state "tenant_o'brien")" "p1 k0 0001:applied s:0001:applied c:1"
check_eq "--tenant: the others untouched" "$(q "$QD" "SELECT count(*) FROM information_schema.columns WHERE column_name = 'plan'")" 1
dc "$QCF" apply --tenant "tenant_with spac"
expect_rc 2
expect_err "no tenant 'tenant_with spac' in the fleet (did you mean 'tenant_with space'?)"
dc "$QCF" apply
expect_rc 1
expect_out "5 tenants migrated to '0002', 1 failed"
CHECKS=$((CHECKS + 1))
grep -Eq "^ +tenant_ünïcode .*verify assertion of '0002' is false" "$OUT" ||
	fail_here "the failure summary does not name 'tenant_ünïcode' intact"
for n in "tenant_o'brien" "tenant_with space" 'tenant_dq"x' 'tenant_back\slash' "tenant_Plain"; do
	check_eq "'$n': at 0002 (history, tenant_state, deployclaw.tenant setting)" "$(q_state "$n")" \
		"p1 k1 0001:applied,0002:applied s:0001:applied,0002:applied c:1"
done
check_eq "'tenant_ünïcode': verify failed, 0001 and 0002 both undone (no history table)" \
	"$(q_state "tenant_ünïcode")" "p0 k0 - s:- c:0"
dc "$QCF" status
expect_rc 0
for n in "tenant_ünïcode"; do
	expect_out "$n"
done
"$DC" --config "$QCF" --json status >qstatus.json 2>"$ERR"
json_check qstatus.json \
	'sorted(t["tenant"] for t in d["tenant_list"]) == sorted(["tenant_o'"'"'brien", "tenant_with space", "tenant_ünïcode", "tenant_dq\"x", "tenant_back\\slash", "tenant_Plain"])' \
	'[t["tenant"] for t in d["tenant_list"] if t["failed"]] == ["tenant_ünïcode"]' \
	'[v["tenants"] for v in d["versions"]] == [1, 0, 5]'
check_eq "ledger: tenant names intact" \
	"$(ledger_py "$QF/audit/ledger.jsonl" 'print(sorted({o["tenant"] for o in outcomes}))')" \
	"['tenant_Plain', 'tenant_back\\\\slash', 'tenant_dq\"x', \"tenant_o'brien\", 'tenant_with space', 'tenant_ünïcode']"
setup "$QD" -c 'UPDATE "tenant_ünïcode".users SET n = 2 WHERE id = 2'
dc "$QCF" apply --tenant "tenant_ünïcode"
expect_rc 0
expect_out "1 tenant migrated to '0002'"
dc "$QCF" rollback --tenant "tenant_with space"
expect_rc 0
expect_out "1 tenant rolled back"
check_eq "rollback --tenant 'tenant_with space'" "$(q_state "tenant_with space")" \
	"p1 k0 0001:applied,0002:rolled_back s:0001:applied,0002:rolled_back c:1"
dc "$QCF" rollback
expect_rc 0
expect_out "5 tenants rolled back, 0 failed, 1 already up to date"
dc "$QCF" rollback
expect_rc 0
expect_out "6 tenants rolled back, 0 failed, 0 already up to date"
for n in "${NAMES[@]}"; do
	check_eq "'$n': everything rolled back" "$(q_state "$n")" \
		"p0 k0 0001:rolled_back,0002:rolled_back s:0001:rolled_back,0002:rolled_back c:0"
done
dc "$QCF" --json status
expect_rc 0

}

case_isolation() {
section "7. isolation gate: a migration that would leave its tenant is refused before anything runs"
ISO=${P}_iso
mkdb "$ISO"
setup "$ISO" -c "$STATE_FN" -c "
DO \$\$ BEGIN
  FOR i IN 1..4 LOOP
    EXECUTE format('CREATE SCHEMA %1\$I; CREATE TABLE %1\$I.orders (id int PRIMARY KEY, total int NOT NULL);
      INSERT INTO %1\$I.orders SELECT g, 10 * g FROM generate_series(1, 3) g', 'tenant_000' || i);
  END LOOP;
END \$\$"
IB=$TMP/iso_base
mkdir -p "$IB/migrations" "$IB/audit"
cat >"$IB/deployclaw.yaml" <<EOF
engine: postgres
migrations: migrations
tenancy:
  model: schema
  pattern: "tenant\\\\_000%"
shards:
  - name: iso
    primary: "$(dsn "$ISO")"
rollout:
  canary: 0
  waves: [100%]
  parallel: 1
audit:
  ledger: audit/ledger.jsonl
  key: audit/signing.key
EOF
cat >"$IB/migrations/0001_note.yaml" <<'EOF'
version: "0001"
name: a note on orders
phases:
  - name: main
    up: ALTER TABLE orders ADD COLUMN note text;
    down: ALTER TABLE orders DROP COLUMN note;
EOF
project "$IB"
dc "$IB/deployclaw.yaml" apply
expect_rc 0
check_eq "every tenant at 0001" \
	"$(q "$ISO" "SELECT count(*) FROM pgit.state('tenant\\_000%', 'SELECT 1') h WHERE h LIKE '%0001:applied'")" 4
BEFORE=$(iso_snap)
iso_refused other_tenant 7:14 "      UPDATE tenant_0003.orders SET total = 0;"
iso_refused search_path 7:7 "      SET search_path TO tenant_0003;
      UPDATE orders SET total = 0;"
iso_refused set_config 7:14 "      SELECT set_config('search_path', 'tenant_0003', true);
      UPDATE orders SET total = 0;"
iso_refused do_block 7:19 "      DO \$\$ BEGIN EXECUTE 'UPDATE tenant_0003.orders SET total = 0'; END \$\$;"
# a DO block's and a function's static statements are checked where written
iso_refused do_static 7:26 "      DO \$\$ BEGIN UPDATE tenant_0003.orders SET total = 0; END \$\$;"
iso_refused function_body 7:84 "      CREATE FUNCTION wipe() RETURNS void LANGUAGE plpgsql AS \$\$ BEGIN DELETE FROM tenant_0003.orders; END \$\$;"
# on the body's second line (lint places a YAML block's findings at the statement: line 7)
iso_refused do_second_line 8:16 "      DO \$\$ BEGIN
        UPDATE tenant_0003.orders SET total = 0; END \$\$;" 7
iso_refused extension 7:7 "      CREATE EXTENSION IF NOT EXISTS pg_trgm;"
iso_refused reset_all 7:7 "      RESET ALL;
      CREATE TABLE leaked (a int);"
iso_refused own_schema 7:19 "      DELETE FROM deployclaw.tenant_state;"
# the same, in a set whose phases the rollout splits (a CREATE INDEX CONCURRENTLY in
# a later migration): the gates judge the plan all the same
d=$TMP/iso_split
rm -rf "$d"
cp -r "$IB" "$d"
printf '%s\n' 'version: "0002"' 'name: hostile' 'phases:' '  - name: main' \
	"    up: DO \$\$ BEGIN EXECUTE 'CREATE TABLE tenant_0003.stolen (a int)'; END \$\$;" \
	'    down: SELECT 1;' >"$d/migrations/0002_hostile.yaml"
printf '%s\n' 'version: "0003"' 'name: an index' 'phases:' '  - name: main' \
	'    up: CREATE INDEX CONCURRENTLY orders_total ON orders (total);' \
	'    down: DROP INDEX CONCURRENTLY orders_total;' >"$d/migrations/0003_index.yaml"
"$DC" --config "$d/deployclaw.yaml" hash >/dev/null 2>&1 || fail "split: hash failed"
dc "$d/deployclaw.yaml" apply
expect_rc 3
CHECKS=$((CHECKS + 1))
grep -qF "0002_hostile.yaml:5:21" "$ERR" || fail "split: the isolation gate did not refuse 0002 at 5:21"
check_eq "split: every tenant's data and history, and deployclaw's schema, unchanged" "$(iso_snap)" "$BEFORE"
check_eq "split: no table stolen into tenant_0003" "$(q "$ISO" "SELECT to_regclass('tenant_0003.stolen') IS NULL")" t
rm "$d/migrations/0002_hostile.yaml"
sed -i '/^    down:/d' "$d/migrations/0003_index.yaml"
"$DC" --config "$d/deployclaw.yaml" hash >/dev/null 2>&1 || fail "split: hash failed"
dc "$d/deployclaw.yaml" apply
expect_rc 3
CHECKS=$((CHECKS + 1))
grep -qF "require_down" "$ERR" || fail "split: require_down did not refuse 0003, which has no down"
# gates.isolation.dynamic_sql: allow lets a DO block through (the default refuses it, above)
d=$TMP/iso_allow
rm -rf "$d"
cp -r "$IB" "$d"
printf 'gates:\n  isolation:\n    dynamic_sql: allow\n' >>"$d/deployclaw.yaml"
printf '%s\n' 'version: "0002"' 'name: a table made by dynamic SQL' 'phases:' '  - name: main' \
	"    up: DO \$\$ BEGIN EXECUTE 'CREATE TABLE made_by_do (a int)'; END \$\$;" \
	'    down: DROP TABLE made_by_do;' >"$d/migrations/0002_do.yaml"
"$DC" --config "$d/deployclaw.yaml" hash >/dev/null 2>&1 || fail "allow: hash failed"
dc "$d/deployclaw.yaml" apply
expect_rc 0
check_eq "allow: the DO block ran in every tenant's schema" \
	"$(q "$ISO" "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE relname = 'made_by_do' AND nspname LIKE 'tenant\\_000%'")" 4
# the run-time check (isolation_runtime) catches what dynamic SQL does past
# the static gate, with allow: tenant_0001 fails and is rolled back whole
BEFORE=$(iso_snap)
CAT_BEFORE=$(iso_catalog)
CHECKS=$((CHECKS + 1))
case "$CAT_BEFORE$BEFORE" in *ERR*) fail "the catalog or data checksum failed: $CAT_BEFORE $BEFORE" ;; esac
iso_runtime ddl "table tenant_0003.x created or changed by this transaction" \
	"      DO \$\$ BEGIN EXECUTE format('CREATE TABLE %I.x (a int)', 'tenant_' || '0003'); END \$\$;"
iso_runtime dml "table tenant_0003.orders locked by this transaction (RowExclusiveLock)" \
	"      DO \$\$ BEGIN EXECUTE 'UPDATE tenant_' || '0003.orders SET total = 0'; END \$\$;"
iso_runtime search_path "search_path is 'tenant_0003', not '\"tenant_0001\"' as the transaction began" \
	"      DO \$\$ BEGIN EXECUTE format('SELECT set_config(%L, %L, true)', 'search_' || 'path', 'tenant_0003'); END \$\$;
      UPDATE orders SET total = 0;"
}

case_shared() {
section "7b. shared schemas: tenants read them on their search_path; only a shard migration changes them"
SH=${P}_shared
mkdb "$SH"
setup "$SH" -c "$STATE_FN" -c "
CREATE TABLE public.countries (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO public.countries VALUES (1, 'FR'), (2, 'JP');
CREATE SCHEMA tenant_0001; CREATE SCHEMA tenant_0002;"
SB=$TMP/shared
mkdir -p "$SB/migrations" "$SB/audit"
cat >"$SB/deployclaw.yaml" <<EOF
engine: postgres
migrations: migrations
tenancy:
  model: schema
  query: "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'tenant%' OR nspname = 'public'"
  shared_schemas: [public]
shards:
  - name: shared
    primary: "$(dsn "$SH")"
rollout:
  canary: 0
  waves: [100%]
  parallel: 2
audit:
  ledger: audit/ledger.jsonl
  key: audit/signing.key
EOF
cat >"$SB/migrations/0001_addresses.yaml" <<'EOF'
version: "0001"
name: addresses in a shared country
phases:
  - name: main
    up: |
      CREATE TABLE addresses (id int PRIMARY KEY, country int NOT NULL REFERENCES countries (id));
      INSERT INTO addresses SELECT id, id FROM countries;
    down: DROP TABLE addresses;
EOF
project "$SB"
dc "$SB/deployclaw.yaml" --json apply
expect_rc 0
CHECKS=$((CHECKS + 1))
grep -q '"validate_tenant_isolation_gates"' "$OUT" || fail "shared: no validate_tenant_isolation_gates step"
check_eq "shared: the run's closing entry records tenant isolation verified, and by which gates" \
	"$(ledger_isolation "$SB/audit/ledger.jsonl")" "verified gates=isolation, isolation_runtime checked=2 refused=0"
check_eq "shared: two tenants found (public is shared, not a tenant), each at 0001" \
	"$(q "$SH" "SELECT string_agg(h, ';' ORDER BY h) FROM pgit.state('%', 'SELECT 1') h WHERE h LIKE '%0001:applied'")" \
	"tenant_0001 1 0001:applied;tenant_0002 1 0001:applied"
check_eq "shared: each tenant's addresses reference public.countries through its search_path" \
	"$(q "$SH" "SELECT (SELECT count(*) FROM tenant_0001.addresses) || ' ' || (SELECT count(*) FROM tenant_0002.addresses) || ' ' || (SELECT count(*) FROM pg_constraint WHERE confrelid = 'public.countries'::regclass)")" \
	"2 2 2"
check_eq "shared: no tenant table landed in public" \
	"$(q "$SH" "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE nspname = 'public' AND relname = 'addresses'")" 0
SNAP=$(q "$SH" "SELECT md5(string_agg(id || name, ',' ORDER BY id)) FROM public.countries")
for bad in "INSERT INTO public.countries VALUES (3, 'DE');" "ALTER TABLE public.countries ADD COLUMN code text;" \
	"CREATE EXTENSION IF NOT EXISTS pg_trgm;"; do
	printf 'version: "0002"\nname: bad\nphases:\n  - name: main\n    up: %s\n    down: SELECT 1;\n' "$bad" \
		>"$SB/migrations/0002_bad.yaml"
	"$DC" --config "$SB/deployclaw.yaml" hash >/dev/null 2>&1 || fail "shared: hash failed"
	dc "$SB/deployclaw.yaml" apply
	expect_rc 3
	CHECKS=$((CHECKS + 1))
	grep -qF -- "scope: shard" "$OUT" "$ERR" || fail "shared: '$bad' refused without naming scope: shard"
done
check_eq "shared: public.countries unchanged, no extension, no tenant past 0001" \
	"$(q "$SH" "SELECT md5(string_agg(id || name, ',' ORDER BY id)) FROM public.countries") $(q "$SH" "SELECT count(*) FROM pg_extension WHERE extname = 'pg_trgm'") $(q "$SH" "SELECT count(*) FROM pgit.state('%', 'SELECT 1') h WHERE h LIKE '%0002:%'")" \
	"$SNAP 0 0"
# dynamic SQL the static gate lets through (dynamic_sql: allow) writing to the
# shared schema: isolation_runtime fails the tenants, the run records it
cp "$SB/deployclaw.yaml" "$SB/deployclaw.yaml.orig"
printf 'gates:\n  isolation:\n    dynamic_sql: allow\n' >>"$SB/deployclaw.yaml"
printf '%s\n' 'version: "0002"' 'name: dynamic' 'phases:' '  - name: main' \
	"    up: DO \$\$ BEGIN EXECUTE format('INSERT INTO %I.countries VALUES (4, %L)', 'pub' || 'lic', 'IT'); END \$\$;" \
	'    down: SELECT 1;' >"$SB/migrations/0002_bad.yaml"
"$DC" --config "$SB/deployclaw.yaml" hash >/dev/null 2>&1 || fail "shared: hash failed"
dc "$SB/deployclaw.yaml" apply
expect_rc 1
CHECKS=$((CHECKS + 1))
grep -qF "table public.countries locked by this transaction (RowExclusiveLock)" "$OUT" "$ERR" ||
	fail "shared: the run-time check does not name the shared table written"
check_eq "shared: public.countries unchanged after the dynamic write" \
	"$(q "$SH" "SELECT md5(string_agg(id || name, ',' ORDER BY id)) FROM public.countries")" "$SNAP"
check_eq "shared: the closing entry says the isolation gates refused" \
	"$(ledger_isolation "$SB/audit/ledger.jsonl")" "refused gates=isolation, isolation_runtime checked=0 refused=2"
mv "$SB/deployclaw.yaml.orig" "$SB/deployclaw.yaml"
# the fix the refusal names: the same change as a shard migration runs once
printf 'version: "0002"\nname: a country\nscope: shard\nphases:\n  - name: main\n    up: INSERT INTO public.countries VALUES (3, %s);\n    down: DELETE FROM public.countries WHERE id = 3;\n' \
	"'DE'" >"$SB/migrations/0002_bad.yaml"
"$DC" --config "$SB/deployclaw.yaml" hash >/dev/null 2>&1 || fail "shared: hash failed"
dc "$SB/deployclaw.yaml" apply
expect_rc 0
check_eq "shared: as scope: shard, the change ran once in the shard's database" \
	"$(q "$SH" "SELECT count(*) FROM public.countries") $(q "$SH" "SELECT string_agg(version || ':' || status, ',') FROM deployclaw.shard_history")" \
	"3 0002:applied"
}

case_fuzz() {
section "7c. isolation property: generated hostile and harmless migrations; nothing outside the tenant ever changes"
# Each migration mixes names (qualified, quoted, upper case), search_path
# changes and dynamic SQL, from a fixed seed. It runs on a fresh tenant of
# its own with dynamic_sql: allow, so what the static gate lets through
# meets the run-time checks. Invariants: the victims (two other tenants,
# public, deployclaw's schema and the other tenants' state) never change;
# exit 3 (refused before anything ran) exactly when lint reports DC501 or
# DC504; exit 1 leaves the tenant as it was; exit 0 records 0001.
FZ=${P}_fuzz
FZ_N=${PG_FLEET_FUZZ_N:-60}
mkdb "$FZ"
setup "$FZ" -c "$STATE_FN" -c "
CREATE TABLE public.p (id int PRIMARY KEY, v int);
INSERT INTO public.p VALUES (1, 1);
DO \$\$ BEGIN
  FOR i IN 0..$FZ_N LOOP
    EXECUTE format('CREATE SCHEMA %1\$I; CREATE TABLE %1\$I.t (id int PRIMARY KEY, v int); INSERT INTO %1\$I.t VALUES (1, 1)', 'tenant_a' || i);
  END LOOP;
END \$\$;
CREATE SCHEMA tenant_b; CREATE TABLE tenant_b.t (id int PRIMARY KEY, v int); INSERT INTO tenant_b.t VALUES (1, 1);
CREATE SCHEMA tenant_c; CREATE TABLE tenant_c.t (id int PRIMARY KEY, v int); INSERT INTO tenant_c.t VALUES (1, 1);"
RANDOM=4242
# tenant_a0 first, harmlessly: deployclaw's own schema exists from then on
fz_d=$TMP/fuzz_0
mkdir -p "$fz_d/migrations" "$fz_d/audit"
printf 'engine: postgres\nmigrations: migrations\ntenancy: { model: schema, list: [tenant_a0] }\nshards: [{ name: fuzz, primary: "%s" }]\naudit: { ledger: audit/ledger.jsonl, key: audit/signing.key }\n' \
	"$(dsn "$FZ")" >"$fz_d/deployclaw.yaml"
printf 'UPDATE t SET v = 2;\n' >"$fz_d/migrations/0001_fuzz.up.sql"
printf 'UPDATE t SET v = 1;\n' >"$fz_d/migrations/0001_fuzz.down.sql"
project "$fz_d"
dc "$fz_d/deployclaw.yaml" apply
expect_rc 0
local i k n target stmt up refused=0 caught=0 passed=0 lint_err victims before tenant d PICK
local FAILS_BEFORE=$FAILS
# fz_pick ARRAY: one of its items into PICK (no subshell: RANDOM advances)
fz_pick() { local -n arr=$1; PICK=${arr[RANDOM % ${#arr[@]}]}; }
local -a others=('tenant_b.t' '"tenant_b".t' '"tenant_b"."t"' 'TENANT_B.t' 'public.p' 'deployclaw.tenant_state' 'tenant_c.t')
local -a kinds=(plain plain plain other other)
# how the statement is run: as is (most often), in a DO block, by EXECUTE, ...
local -a wraps=(none none none none none none path config do_static do_static do_exec do_exec do_exec do_exec do_format function function perform)
for i in $(seq 1 "$FZ_N"); do
	tenant=tenant_a$i
	up=""
	for k in $(seq 1 $((1 + RANDOM % 4 / 3))); do
		n=$((RANDOM % 4))
		fz_pick kinds
		target=t
		[ "$PICK" = plain ] || { fz_pick others; target=$PICK; }
		case $n in
		0) stmt="UPDATE $target SET v = v + 1" ;;
		1) stmt="INSERT INTO $target (id, v) VALUES ($((100 + i * 10 + k)), 7)" ;;
		2) stmt="ALTER TABLE $target ADD COLUMN c$i$k int" ;;
		3) stmt="DELETE FROM $target WHERE id > 1000" ;;
		esac
		fz_pick wraps
		case $PICK in
		path) stmt="SET search_path TO tenant_b; UPDATE t SET v = 0" ;;
		config) stmt="SELECT set_config('search_path', 'tenant_b', true); UPDATE t SET v = 0" ;;
		do_static) stmt="DO \$d\$ BEGIN $stmt; END \$d\$" ;;
		do_exec) stmt="DO \$d\$ BEGIN EXECUTE '${stmt//\'/\'\'}'; END \$d\$" ;;
		do_format) stmt="DO \$d\$ BEGIN EXECUTE format('UPDATE %I.t SET v = 0', 'tenant_' || 'b'); END \$d\$" ;;
		function) stmt="CREATE FUNCTION f$i$k() RETURNS void LANGUAGE plpgsql AS \$f\$ BEGIN $stmt; END \$f\$; SELECT f$i$k()" ;;
		perform) stmt="DO \$d\$ BEGIN PERFORM set_config('search_path', 'tenant_b', true); END \$d\$; UPDATE t SET v = 0" ;;
		esac
		up="$up$stmt;
"
	done
	d=$TMP/fuzz_$i
	mkdir -p "$d/migrations" "$d/audit"
	cat >"$d/deployclaw.yaml" <<EOF
engine: postgres
migrations: migrations
tenancy:
  model: schema
  list: [$tenant]
shards:
  - name: fuzz
    primary: "$(dsn "$FZ")"
gates:
  isolation:
    dynamic_sql: allow
rollout:
  canary: 0
  waves: [100%]
audit:
  ledger: audit/ledger.jsonl
  key: audit/signing.key
EOF
	printf '%s' "$up" >"$d/migrations/0001_fuzz.up.sql"
	printf 'SELECT 1;\n' >"$d/migrations/0001_fuzz.down.sql"
	project "$d"
	victims="SELECT md5(string_agg(x, '|' ORDER BY x)) FROM (
	  SELECT 'b' || string_agg(id || ':' || v, ',' ORDER BY id) x FROM tenant_b.t
	  UNION ALL SELECT 'c' || string_agg(id || ':' || v, ',' ORDER BY id) FROM tenant_c.t
	  UNION ALL SELECT 'p' || string_agg(id || ':' || v, ',' ORDER BY id) FROM public.p
	  UNION ALL SELECT 's' || coalesce(string_agg(tenant || version || status, ',' ORDER BY tenant, version), '') FROM deployclaw.tenant_state WHERE tenant <> '$tenant'
	  UNION ALL SELECT 'r' || string_agg(nspname || '.' || relname || ':' || relnatts, ',' ORDER BY nspname, relname)
	    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
	    WHERE nspname IN ('tenant_b', 'tenant_c', 'public', 'deployclaw')
	  UNION ALL SELECT 'f' || coalesce(string_agg(nspname || '.' || proname, ',' ORDER BY nspname, proname), '')
	    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
	    WHERE nspname IN ('tenant_b', 'tenant_c', 'public', 'deployclaw')) y"
	before=$(q "$FZ" "$victims")
	local mine="SELECT (SELECT string_agg(id || ':' || v, ',' ORDER BY id) FROM $tenant.t) || ' ' || (SELECT string_agg(relname || ':' || relnatts, ',' ORDER BY relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE nspname = '$tenant' AND relname NOT LIKE 'deployclaw%')"
	local mine_before
	mine_before=$(q "$FZ" "$mine")
	dc "$d/deployclaw.yaml" lint
	lint_err=0
	grep -Eq 'error \[DC50[14]' "$OUT" && lint_err=1
	dc "$d/deployclaw.yaml" apply -t "$tenant"
	check_eq "fuzz $i: nothing outside $tenant changed (rc $RC)" "$(q "$FZ" "$victims")" "$before"
	case $RC in
	3)
		refused=$((refused + 1))
		check_eq "fuzz $i: refused before anything ran, and lint reports it" "$lint_err $(q "$FZ" "$mine")" "1 $mine_before" ;;
	1)
		caught=$((caught + 1))
		check_eq "fuzz $i: passed the static gate (lint agrees), failed and rolled back whole" "$lint_err $(q "$FZ" "$mine")" "0 $mine_before" ;;
	0)
		passed=$((passed + 1))
		check_eq "fuzz $i: passed, lint agrees, 0001 recorded" "$lint_err $(q "$FZ" "SELECT count(*) FROM $tenant.deployclaw_history WHERE version = '0001' AND status = 'applied'")" "0 1" ;;
	*)
		CHECKS=$((CHECKS + 1))
		fail "fuzz $i: exit $RC on:
$up" ;;
	esac
	[ "$FAILS_BEFORE" = "$FAILS" ] || { printf 'fuzz %s migration:\n%s\n' "$i" "$up" >&2; FAILS_BEFORE=$FAILS; }
done
echo "fuzz: $refused refused statically, $caught caught at run time, $passed passed"
CHECKS=$((CHECKS + 1))
[ "$refused" -gt 0 ] && [ "$caught" -gt 0 ] && [ "$passed" -gt 0 ] ||
	fail "fuzz: every path must be exercised (refused $refused, caught $caught, passed $passed)"
}

# iso_snap: a checksum of every tenant's orders and history, deployclaw's
# tenant_state and relations, and any table named leaked
iso_snap() {
	q "$ISO" "SELECT md5(string_agg(x, '|' ORDER BY x)) FROM (
	  SELECT 'o1' || string_agg(id || ':' || total || ':' || coalesce(note, '-'), ',' ORDER BY id) x FROM tenant_0001.orders
	  UNION ALL SELECT 'o2' || string_agg(id || ':' || total || ':' || coalesce(note, '-'), ',' ORDER BY id) FROM tenant_0002.orders
	  UNION ALL SELECT 'o3' || string_agg(id || ':' || total || ':' || coalesce(note, '-'), ',' ORDER BY id) FROM tenant_0003.orders
	  UNION ALL SELECT 'o4' || string_agg(id || ':' || total || ':' || coalesce(note, '-'), ',' ORDER BY id) FROM tenant_0004.orders
	  UNION ALL SELECT 'h' || h FROM pgit.state('tenant\\_000%', 'SELECT \$1') h
	  UNION ALL SELECT 's' || string_agg(tenant || version || status, ',' ORDER BY tenant, version) FROM deployclaw.tenant_state
	  UNION ALL SELECT 'r' || string_agg(relname, ',' ORDER BY relname) FROM pg_class c
	    JOIN pg_namespace n ON n.oid = c.relnamespace WHERE nspname = 'deployclaw' OR relname = 'leaked') y"
}

# iso_catalog: a checksum of the catalog rows of every tenant schema (with
# their xmin: a row rewritten in place of itself counts as changed)
iso_catalog() {
	q "$ISO" "SELECT md5(string_agg(x, '|' ORDER BY x)) FROM (
	  SELECT 'n' || nspname || ':' || xmin x FROM pg_namespace WHERE nspname LIKE 'tenant\\_000%'
	  UNION ALL SELECT 'c' || nspname || '.' || relname || ':' || relkind::text || ':' || c.xmin FROM pg_class c
	    JOIN pg_namespace n ON n.oid = c.relnamespace WHERE nspname LIKE 'tenant\\_000%'
	  UNION ALL SELECT 'a' || nspname || '.' || relname || '.' || attname || ':' || a.xmin FROM pg_attribute a
	    JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE nspname LIKE 'tenant\\_000%'
	  UNION ALL SELECT 'p' || nspname || '.' || proname || ':' || p.xmin FROM pg_proc p
	    JOIN pg_namespace n ON n.oid = p.pronamespace WHERE nspname LIKE 'tenant\\_000%') y"
}

# iso_runtime NAME DETAIL SQL: with dynamic_sql: allow, a 0003 whose up is a
# harmless UPDATE, then SQL (dynamic: the static gate lets it through), is
# refused in tenant_0001 by isolation_runtime naming DETAIL: exit 1, every
# tenant's data, history and catalog unchanged, the refusal in the ledger.
iso_runtime() {
	local d=$TMP/iso_rt_$1
	rm -rf "$d"
	cp -r "$TMP/iso_allow" "$d"
	printf 'version: "0003"\nname: %s\nphases:\n  - name: main\n    up: |\n      UPDATE orders SET note = %s;\n%s\n    down: UPDATE orders SET note = NULL;\n' \
		"$1" "'x'" "$3" >"$d/migrations/0003_$1.yaml"
	"$DC" --config "$d/deployclaw.yaml" hash >/dev/null 2>&1 || fail "$1: hash failed"
	dc "$d/deployclaw.yaml" apply --tenant tenant_0001
	expect_rc 1
	CHECKS=$((CHECKS + 1))
	grep -qF -- "isolation_runtime" "$OUT" "$ERR" || fail "$1: the failure does not name isolation_runtime"
	CHECKS=$((CHECKS + 1))
	grep -qF -- "$2" "$OUT" "$ERR" || fail "$1: the failure does not say '$2'"
	check_eq "$1: every tenant's data and history, and deployclaw's schema, unchanged" "$(iso_snap)" "$BEFORE"
	check_eq "$1: every tenant schema's catalog unchanged" "$(iso_catalog)" "$CAT_BEFORE"
	check_eq "$1: the ledger records the refusal, naming what left the tenant" "$(ledger_py "$d/audit/ledger.jsonl" "
o = [o for o in outcomes if o['tenant'] == 'tenant_0001']
m = json.dumps(o)
print(len(o), o[0]['status'] if o else '-', 'isolation_runtime' in m, '''$2''' in m.replace('\\\\\"', '\"'))")" "1 failed True True"
}

# iso_refused NAME LINE:COL SQL [LINT_LINE]: a 0002 whose up is a harmless
# UPDATE, then SQL, is refused by the isolation gate at LINE:COL of its file
# with exit 3, nothing changed anywhere; lint reports the same statement (on
# LINT_LINE, by default LINE).
iso_refused() {
	local d=$TMP/iso_$1
	rm -rf "$d"
	cp -r "$IB" "$d"
	printf 'version: "0002"\nname: %s\nphases:\n  - name: main\n    up: |\n      UPDATE orders SET note = %s;\n%s\n    down: UPDATE orders SET note = NULL;\n' \
		"$1" "'x'" "$3" >"$d/migrations/0002_$1.yaml"
	"$DC" --config "$d/deployclaw.yaml" hash >/dev/null 2>&1 || fail "$1: hash failed"
	dc "$d/deployclaw.yaml" apply
	expect_rc 3
	CHECKS=$((CHECKS + 1))
	grep -qF -- "0002_$1.yaml:$2" "$OUT" "$ERR" || fail "$1: no '0002_$1.yaml:$2' in the refusal"
	CHECKS=$((CHECKS + 1))
	grep -qF -- "isolation" "$OUT" "$ERR" || fail "$1: the refusal does not name the isolation gate"
	check_eq "$1: every tenant's data and history, and deployclaw's schema, unchanged" "$(iso_snap)" "$BEFORE"
	# lint reports the statement (at its start in a YAML block, which it does not map exactly)
	dc "$d/deployclaw.yaml" lint
	CHECKS=$((CHECKS + 1))
	grep -qF -- "0002_$1.yaml:${4:-${2%%:*}}:" "$OUT" || fail "$1: lint does not report line ${4:-${2%%:*}}"
}

case_shard() {
section "8. shard-scoped migrations: once per shard database, before its tenants"
SH1=${P}_sh1
SH2=${P}_sh2
for db in "$SH1" "$SH2"; do
	mkdb "$db"
	setup "$db" -c "$STATE_FN" -c "
DO \$\$ BEGIN
  FOR i IN 1..3 LOOP
    EXECUTE format('CREATE SCHEMA %1\$I; CREATE TABLE %1\$I.orders (id int PRIMARY KEY);
      INSERT INTO %1\$I.orders SELECT g FROM generate_series(1, 3) g', 'tenant_00' || i);
  END LOOP;
END \$\$"
done
SB=$TMP/shard
mkdir -p "$SB/migrations" "$SB/audit"
cat >"$SB/deployclaw.yaml" <<EOF
engine: postgres
migrations: migrations
tenancy:
  model: schema
  pattern: "tenant\\\\_00%"
shards:
  - name: sh1
    primary: "$(dsn "$SH1")"
  - name: sh2
    primary: "$(dsn "$SH2")"
rollout:
  canary: 1
  waves: [100%]
  parallel: 2
audit:
  ledger: audit/ledger.jsonl
  key: audit/signing.key
EOF
cat >"$SB/migrations/0001_note.yaml" <<'EOF'
version: "0001"
phases:
  - up: ALTER TABLE orders ADD COLUMN note text;
    down: ALTER TABLE orders DROP COLUMN note;
EOF
# the shared objects: an extension (in pg_catalog, on every tenant's search_path),
# a helper schema with a lookup table and a function every tenant would race to replace
cat >"$SB/migrations/0002_shared.yaml" <<'EOF'
version: "0002"
scope: shard
phases:
  - up: |
      CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA pg_catalog;
      CREATE SCHEMA shared;
      CREATE TABLE shared.countries (code text PRIMARY KEY);
      INSERT INTO shared.countries VALUES ('fr'), ('jp');
      CREATE OR REPLACE FUNCTION shared.f() RETURNS int LANGUAGE sql AS 'SELECT 1';
    down: |
      DROP SCHEMA shared CASCADE;
      DROP EXTENSION pg_trgm;
verify:
  - SELECT count(*) = 2 FROM shared.countries
EOF
cat >"$SB/migrations/0003_trgm.yaml" <<'EOF'
version: "0003"
phases:
  - up: CREATE INDEX orders_note_trgm ON orders USING gin (note gin_trgm_ops);
    down: DROP INDEX orders_note_trgm;
EOF
project "$SB"

# the plan lists each shard's shard migration, in words and in --json
dc "$SB/deployclaw.yaml" apply -n
expect_rc 0
CHECKS=$((CHECKS + 1))
[ "$(grep -c "shard sh[12] .*shard migration 0002 pending" "$OUT")" = 2 ] || fail "plan: the shard migration is not listed per shard"
run "$DC" --json --config "$SB/deployclaw.yaml" apply -n
expect_rc 0
json_check "$OUT" 'len(d["shard_migrations"]) == 2' \
	'all(s["versions"] == "0002" and s["pending"] == 1 and s["status"] == "not_run" for s in d["shard_migrations"])'
check_eq "plan: nothing ran" "$(q "$SH1" "SELECT to_regclass('deployclaw.shard_history') IS NULL AND to_regnamespace('shared') IS NULL")" t
dc "$SB/deployclaw.yaml" status
expect_rc 0
CHECKS=$((CHECKS + 1))
[ "$(grep -c "shard sh[12] .*applied: (none); pending: 0002" "$OUT")" = 2 ] || fail "status: the pending shard migration is not shown per shard"

dc "$SB/deployclaw.yaml" apply
expect_rc 0
for db in "$SH1" "$SH2"; do
	check_eq "$db: the shard migration in shard_history once" "$(shard_hist "$db")" "0002:applied"
	check_eq "$db: extension, shared table and function once, in the shard database" "$(shared_objs "$db")" "1 1 0 1"
	check_eq "$db: every tenant applied 0001 and 0003, none holds the shard migration" "$(tenants_at "$db" ' 0001:applied,0003:applied')" 3
	check_eq "$db: the trigram index in every tenant" "$(q "$db" "SELECT count(*) FROM pg_indexes WHERE indexname = 'orders_note_trgm' AND schemaname LIKE 'tenant\\_00%'")" 3
done
CHECKS=$((CHECKS + 1))
grep -q "shard sh1 .*shard migration 0002 applied" "$OUT" || fail "apply does not say the shard migration ran"
CHECKS=$((CHECKS + 1))
ledger_py "$SB/audit/ledger.jsonl" '
s = [x["data"] for x in last if x["event"] == "shard_migration"]
assert sorted(x["shard"] for x in s) == ["sh1", "sh2"], s
assert all(x["status"] == "succeeded" and x["versions"] == "0002" and x["done"] == 1 for x in s), s' ||
	fail "ledger: no shard_migration entry per shard"
WRITTEN=$(q "$SH1" "SELECT written_at FROM deployclaw.shard_history")
run "$DC" --json --config "$SB/deployclaw.yaml" status
expect_rc 0
json_check "$OUT" 'sorted(s["shard"] for s in d["shard_migrations"]) == ["sh1", "sh2"]' \
	'all(s["applied"] == "0002" and s["pending"] == 0 for s in d["shard_migrations"])' \
	'd["pending"] == 0'

# again: nothing to do, the shard migration is not run a second time
dc "$SB/deployclaw.yaml" apply
expect_rc 0
check_eq "again: shard_history untouched" "$(q "$SH1" "SELECT written_at FROM deployclaw.shard_history")" "$WRITTEN"
check_eq "again: still once" "$(shard_hist "$SH2")" "0002:applied"
CHECKS=$((CHECKS + 1))
ledger_py "$SB/audit/ledger.jsonl" 'assert not [x for x in last if x["event"] == "shard_migration"]' ||
	fail "again: a shard migration was recorded"

# a failing shard migration: rolled back whole, no tenant of any shard touched, exit != 0
d=$TMP/shard_fail
rm -rf "$d"
cp -r "$SB" "$d"
printf '%s\n' 'version: "0004"' 'scope: shard' 'phases:' '  - up: |' \
	'      CREATE TABLE shared.half (a int);' '      SELECT 1 / 0;' '    down: DROP TABLE shared.half;' >"$d/migrations/0004_bad.yaml"
printf '%s\n' 'version: "0005"' 'phases:' '  - up: ALTER TABLE orders ADD COLUMN x int;' '    down: ALTER TABLE orders DROP COLUMN x;' >"$d/migrations/0005_x.yaml"
rehash "$d"
dc "$d/deployclaw.yaml" apply
CHECKS=$((CHECKS + 1))
[ "$RC" != 0 ] || fail "a failing shard migration exits 0"
CHECKS=$((CHECKS + 1))
grep -qF "0004_bad.yaml:6:" "$ERR" || fail "the failure does not name 0004_bad.yaml:6"
for db in "$SH1" "$SH2"; do
	check_eq "$db: failed shard migration rolled back" "$(q "$db" "SELECT to_regclass('shared.half') IS NULL")" t
	check_eq "$db: not in shard_history" "$(shard_hist "$db")" "0002:applied"
	check_eq "$db: no tenant touched" "$(tenants_at "$db" ' 0001:applied,0003:applied')" 3
	check_eq "$db: no column x" "$(q "$db" "SELECT count(*) FROM information_schema.columns WHERE column_name = 'x'")" 0
done

# rollback --to 0001: the tenants go below 0002, then the shard migration's down runs once per shard
dc "$SB/deployclaw.yaml" rollback --to 0001
expect_rc 0
for db in "$SH1" "$SH2"; do
	check_eq "$db: rollback: tenants at 0001" "$(tenants_at "$db" ' 0001:applied,0003:rolled_back')" 3
	check_eq "$db: rollback: shard migration undone" "$(shard_hist "$db")" "0002:rolled_back"
	check_eq "$db: rollback: shared objects gone" "$(shared_objs "$db")" "0 0 0 0"
done

# database tenancy has no shared database: a shard migration there is refused, naming its file
d=$TMP/shard_db
rm -rf "$d"
cp -r "$SB" "$d"
sed -i -e 's/model: schema/model: database/' -e "s/pattern: .*/pattern: \"${P}_sh%\"/" "$d/deployclaw.yaml"
dc "$d/deployclaw.yaml" apply
CHECKS=$((CHECKS + 1))
[ "$RC" != 0 ] || fail "database tenancy: a shard migration was not refused"
CHECKS=$((CHECKS + 1))
grep -qF "0002_shared.yaml" "$ERR" && grep -qF "database tenancy" "$ERR" || fail "database tenancy: the refusal does not name 0002_shared.yaml"

# two runners at once: the shard's lock lets one run the shard migrations; the
# other, waiting for it, reads shard_history again under the lock and skips them.
# Runner A stops inside its shard transaction on a table another session locked.
R=$TMP/shard_race
rm -rf "$R"
cp -r "$SB" "$R"
sed -i 's/^audit:/gates:\n  lock_timeout: 300s\naudit:/' "$R/deployclaw.yaml"
printf '%s\n' 'version: "0004"' 'scope: shard' 'phases:' '  - up: |' \
	'      LOCK TABLE public.gate IN ACCESS EXCLUSIVE MODE;' '      CREATE TABLE shared.raced (a int);' \
	'    down: DROP TABLE shared.raced;' >"$R/migrations/0004_race.yaml"
rehash "$R"
setup "$SH1" -c "CREATE TABLE public.gate (a int)"
setup "$SH2" -c "CREATE TABLE public.gate (a int)"
"$PSQL" -X -q "$(dsn "$SH1")" -c "BEGIN; LOCK TABLE public.gate; SELECT pg_sleep(600)" >/dev/null 2>&1 &
wait_for() { # wait_for SQL: until SQL answers t on SH1
	local i
	for ((i = 0; i < 600; i++)); do
		[ "$(q "$SH1" "$1")" = t ] && return 0
		sleep 0.05
	done
	fail_here "timed out waiting for: $1"
	return 1
}
wait_for "SELECT EXISTS (SELECT FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'gate' AND l.granted AND l.mode = 'AccessExclusiveLock')"
"$DC" --config "$R/deployclaw.yaml" apply >"$TMP/race_a.out" 2>"$TMP/race_a.err" &
RACE_A=$!
wait_for "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE application_name LIKE 'deployclaw/%' AND wait_event_type = 'Lock' AND wait_event = 'relation')"
"$DC" --config "$R/deployclaw.yaml" apply >"$TMP/race_b.out" 2>"$TMP/race_b.err" &
RACE_B=$!
wait_for "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE application_name LIKE 'deployclaw/%' AND wait_event_type = 'Lock' AND wait_event = 'advisory')"
q "$SH1" "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(600)%' AND pid <> pg_backend_pid()" >/dev/null
wait "$RACE_A"
check_eq "race: the first runner succeeded" "$?" 0
wait "$RACE_B"
check_eq "race: the second runner succeeded" "$?" 0
check_eq "race: sh1's shard migrations applied once" "$(shard_hist "$SH1")" "0002:applied,0004:applied"
check_eq "race: sh1's tenants at 0003" "$(tenants_at "$SH1" ' 0001:applied,0003:applied')" 3
CHECKS=$((CHECKS + 1))
ledger_py "$R/audit/ledger.jsonl" '
s = [x["data"] for x in e if x["event"] == "shard_migration" and x["data"]["shard"] == "sh1" and x["data"]["versions"] == "0002 0004"]
assert sorted(x["done"] for x in s) == [0, 2], s' || fail "race: sh1's shard migrations were not run by exactly one runner"
}

# shard_hist DB: the shard's shard_history as version:status,...
shard_hist() { q "$1" "SELECT coalesce(string_agg(version || ':' || status, ',' ORDER BY version), '-') FROM deployclaw.shard_history"; }
# shared_objs DB: "<pg_trgm in pg_catalog> <shared.countries> <countries elsewhere> <shared.f>"
shared_objs() { q "$1" "SELECT (SELECT count(*) FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE extname = 'pg_trgm' AND nspname = 'pg_catalog')
	|| ' ' || (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE relname = 'countries' AND nspname = 'shared')
	|| ' ' || (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE relname = 'countries' AND nspname <> 'shared')
	|| ' ' || (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE proname = 'f' AND nspname = 'shared')"; }
# tenants_at DB SUFFIX: how many tenant schemas' history ends with SUFFIX
tenants_at() { q "$1" "SELECT count(*) FROM pgit.state('tenant\\_00%', 'SELECT 1') h WHERE h LIKE '%$2'"; }

# ========================================================================
case_runas() {
section "9. tenancy.run_as: PostgreSQL's privileges keep each tenant's migration in its schema"
RA=${P}_ra
mkdb "$RA"
# four tenants, each schema and table owned by a NOLOGIN role of its own of
# which deployclaw's login role is a member (what create-tenants.sh --roles does)
setup "$RA" -c "$STATE_FN" -c "
DO \$\$ DECLARE r text; BEGIN
  FOR i IN 1..4 LOOP
    r := '${P}_tenant_000' || i;
    EXECUTE format('CREATE ROLE %I NOLOGIN; GRANT %I TO CURRENT_USER', r, r);
    EXECUTE format('CREATE SCHEMA %1\$I AUTHORIZATION %2\$I;
      CREATE TABLE %1\$I.orders (id int PRIMARY KEY, total int NOT NULL, note text);
      INSERT INTO %1\$I.orders SELECT g, 10 * g FROM generate_series(1, 3) g;
      ALTER TABLE %1\$I.orders OWNER TO %2\$I', 'tenant_000' || i, r);
  END LOOP;
END \$\$"
RB=$TMP/ra_base
mkdir -p "$RB/migrations" "$RB/audit"
cat >"$RB/deployclaw.yaml" <<EOF
engine: postgres
migrations: migrations
tenancy:
  model: schema
  pattern: "tenant\\\\_000%"
  run_as: owner
shards:
  - name: ra
    primary: "$(dsn "$RA")"
gates:
  isolation:
    dynamic_sql: allow
rollout:
  canary: 0
  waves: [100%]
  parallel: 1
audit:
  ledger: audit/ledger.jsonl
  key: audit/signing.key
EOF
cat >"$RB/migrations/0001_made.yaml" <<'EOF'
version: "0001"
name: a table of the tenant's
phases:
  - name: main
    up: CREATE TABLE made (a int);
    down: DROP TABLE made;
EOF
project "$RB"
RA_BEFORE=$(ra_snap)

# the preflight: each refused with exit 3 naming tenant and shard, nothing changed
ra_refused "USAGE on another tenant's schema" "GRANT USAGE ON SCHEMA tenant_0002 TO ${P}_tenant_0001" \
	"REVOKE USAGE ON SCHEMA tenant_0002 FROM ${P}_tenant_0001" \
	"tenant 'tenant_0001' (shard 'ra'): tenancy.run_as role '${P}_tenant_0001' can use schema 'tenant_0002' (granted to '${P}_tenant_0001')"
ra_refused "membership of another tenant's role" "GRANT ${P}_tenant_0004 TO ${P}_tenant_0003" \
	"REVOKE ${P}_tenant_0004 FROM ${P}_tenant_0003" \
	"tenant 'tenant_0003' (shard 'ra'): tenancy.run_as role '${P}_tenant_0003' can own schema 'tenant_0004' (owned by '${P}_tenant_0004', a role it is a member of)"
ra_refused "a superuser role" "ALTER ROLE ${P}_tenant_0003 SUPERUSER" \
	"ALTER ROLE ${P}_tenant_0003 NOSUPERUSER" \
	"tenant 'tenant_0003' (shard 'ra'): tenancy.run_as role '${P}_tenant_0003' is a superuser"
# a role named by a pattern, one of which does not exist
sed -i "s/run_as: owner/run_as: \"${P}_{tenant}\"/" "$RB/deployclaw.yaml"
ra_refused "a missing role" "ALTER ROLE ${P}_tenant_0002 RENAME TO ${P}_renamed" \
	"ALTER ROLE ${P}_renamed RENAME TO ${P}_tenant_0002" \
	"tenant 'tenant_0002' (shard 'ra'): tenancy.run_as role '${P}_tenant_0002' does not exist"
sed -i "s/run_as: \"${P}_{tenant}\"/run_as: owner/" "$RB/deployclaw.yaml"

dc "$RB/deployclaw.yaml" apply
expect_rc 0
check_eq "what the migration created belongs to its tenant's role" \
	"$(q "$RA" "SELECT string_agg(n.nspname || ':' || pg_get_userbyid(c.relowner), ',' ORDER BY n.nspname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relname = 'made'")" \
	"tenant_0001:${P}_tenant_0001,tenant_0002:${P}_tenant_0002,tenant_0003:${P}_tenant_0003,tenant_0004:${P}_tenant_0004"
check_eq "the state rows were written (as the login role)" \
	"$(q "$RA" "SELECT count(*) FROM deployclaw.tenant_state WHERE version = '0001' AND status = 'applied'")" 4

# dynamic SQL writing to another tenant: tenant_0001 changes its own rows, then
# tenant_0003's through EXECUTE, which PostgreSQL refuses to its role
cat >"$RB/migrations/0002_reach.yaml" <<'EOF'
version: "0002"
name: reach into another tenant
phases:
  - name: main
    up: |
      DO $$ BEGIN
        IF current_setting('deployclaw.tenant') = 'tenant_0001' THEN
          UPDATE orders SET note = 'mine';
          EXECUTE format('UPDATE %I.orders SET total = 4', 'tenant_' || '0003');
        END IF;
      END $$;
    down: SELECT 1;
EOF
rehash "$RB"
RA_BEFORE=$(ra_snap)
# a history table its tenant's role cannot write (a fleet migrated before run_as)
LOGIN=$(q "$RA" "SELECT current_user")
ra_refused "a history table of another role" "ALTER TABLE tenant_0002.deployclaw_history OWNER TO CURRENT_USER" \
	"ALTER TABLE tenant_0002.deployclaw_history OWNER TO ${P}_tenant_0002" \
	"tenant 'tenant_0002' (shard 'ra'): tenancy.run_as role '${P}_tenant_0002' cannot write the tenant's deployclaw_history: it belongs to '$LOGIN'"
dc "$RB/deployclaw.yaml" apply
expect_rc 1
CHECKS=$((CHECKS + 1))
grep -q "tenant_0001.*shard 'ra'.*permission denied for schema tenant_0003" "$OUT" "$ERR" ||
	fail "dynamic SQL: no permission denied for schema tenant_0003 naming tenant_0001 and shard ra"
check_eq "dynamic SQL: tenant_0003's rows unchanged" \
	"$(q "$RA" "SELECT string_agg(id || ':' || total, ',' ORDER BY id) FROM tenant_0003.orders")" "1:10,2:20,3:30"
check_eq "dynamic SQL: tenant_0001 rolled back (its own rows, its history)" \
	"$(q "$RA" "SELECT count(*) FROM tenant_0001.orders WHERE note IS NOT NULL") $(q "$RA" "SELECT count(*) FROM tenant_0001.deployclaw_history WHERE version = '0002'")" "0 0"
check_eq "dynamic SQL: no tenant's data changed" "$(ra_snap | sed -n 1p)" "$(printf '%s\n' "$RA_BEFORE" | sed -n 1p)"
# the same outside a transaction (a phase with transaction: false): the
# session runs under the tenant's role too
sed -i 's/  - name: main/  - name: main\n    transaction: false/' "$RB/migrations/0002_reach.yaml"
rehash "$RB"
dc "$RB/deployclaw.yaml" apply
expect_rc 1
CHECKS=$((CHECKS + 1))
grep -q "tenant_0001.*shard 'ra'.*permission denied for schema tenant_0003" "$OUT" "$ERR" ||
	fail "transaction: false: no permission denied for schema tenant_0003 naming tenant_0001 and shard ra"
check_eq "transaction: false: no tenant's data changed" "$(ra_snap | sed -n 1p)" "$(printf '%s\n' "$RA_BEFORE" | sed -n 1p)"
}

# ra_snap: line 1 a checksum of every tenant's orders, line 2 of every history
# and deployclaw.tenant_state
ra_snap() {
	local t sel=""
	for t in tenant_0001 tenant_0002 tenant_0003 tenant_0004; do
		sel="$sel${sel:+ UNION ALL }SELECT '$t' || string_agg(id || ':' || total || ':' || coalesce(note, '-'), ',' ORDER BY id) FROM $t.orders"
	done
	q "$RA" "SELECT md5(string_agg(x, '|' ORDER BY x)) FROM ($sel) y(x)"
	q "$RA" "SELECT md5(coalesce(string_agg(h, '|' ORDER BY h), '') || coalesce((SELECT string_agg(tenant || version || status, ',' ORDER BY tenant, version) FROM deployclaw.tenant_state), '-')) FROM pgit.state('tenant\\_000%', 'SELECT 1') h"
}

# ra_refused WHAT BREAK MEND MESSAGE: with BREAK run on the fleet, apply is
# refused by the run_as gate (exit 3) with MESSAGE, and nothing changed; MEND
# undoes BREAK.
ra_refused() {
	setup "$RA" -c "$2"
	dc "$RB/deployclaw.yaml" apply
	expect_rc 3
	CHECKS=$((CHECKS + 1))
	grep -qF -- "$4" "$OUT" "$ERR" || fail "$1: no \"$4\" in the refusal"
	CHECKS=$((CHECKS + 1))
	grep -qF -- "run_as" "$OUT" "$ERR" || fail "$1: the refusal does not name the run_as gate"
	check_eq "$1: every tenant's data and history unchanged" "$(ra_snap)" "$RA_BEFORE"
	setup "$RA" -c "$3"
}

# ========================================================================
case_rls() {
section "10. RLS gates (row tenancy, tenancy.column): unprotected tenant tables refused or rolled back"
RL=${P}_rls
RAPP=${P}_app
mkdb "$RL"
setup deployclaw -c "CREATE ROLE \"$RAPP\" NOLOGIN"
setup "$RL" -c "CREATE TABLE accounts (id int PRIMARY KEY, tenant_id int NOT NULL, n int NOT NULL);
	ALTER TABLE accounts ENABLE ROW LEVEL SECURITY;
	ALTER TABLE accounts FORCE ROW LEVEL SECURITY;
	CREATE POLICY accounts_tenant ON accounts USING (tenant_id = current_setting('app.tenant')::int);
	INSERT INTO accounts SELECT g, g % 3, g FROM generate_series(1, 9) g;
	CREATE TABLE countries (code text PRIMARY KEY)"
RB=$TMP/rls_base
mkdir -p "$RB/migrations" "$RB/audit"
cat >"$RB/deployclaw.yaml" <<EOF
engine: postgres
migrations: migrations
tenancy:
  model: row
  column: tenant_id
  app_role: $RAPP
shards:
  - name: rl
    primary: "$(dsn "$RL")"
rollout:
  canary: 0
  waves: [100%]
  parallel: 1
audit:
  ledger: audit/ledger.jsonl
  key: audit/signing.key
EOF
# the correct migration: a tenant table with RLS enabled, forced and a policy on the column
cat >"$RB/migrations/0001_invoices.yaml" <<'EOF'
version: "0001"
name: invoices
phases:
  - name: main
    up: |
      CREATE TABLE invoices (id int PRIMARY KEY, tenant_id int NOT NULL, total int);
      ALTER TABLE invoices ENABLE ROW LEVEL SECURITY;
      ALTER TABLE invoices FORCE ROW LEVEL SECURITY;
      CREATE POLICY invoices_tenant ON invoices USING (tenant_id = current_setting('app.tenant')::int);
    down: DROP TABLE invoices;
EOF
project "$RB"
dc "$RB/deployclaw.yaml" apply
expect_rc 0
# deployclaw's own schema is never on a migration's search_path: with the login
# role named deployclaw, "$user" would otherwise make it where tables land
check_eq "row model: invoices in public, not next to deployclaw.tenant_state" \
	"$(q "$RL" "SELECT string_agg(n.nspname, ',') FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE relname = 'invoices'")" "public"
check_eq "correct migration: invoices made with RLS enabled and forced, 0001 applied" \
	"$(q "$RL" "SELECT relrowsecurity || ' ' || relforcerowsecurity FROM pg_class WHERE relname = 'invoices'") $(rls_history)" \
	"true true 0001:applied"
rls_refused no_rls "ALTER TABLE accounts DISABLE ROW LEVEL SECURITY" \
	"ALTER TABLE accounts ENABLE ROW LEVEL SECURITY" \
	"table 'public.accounts': row-level security not enabled"
rls_refused no_force "ALTER TABLE accounts NO FORCE ROW LEVEL SECURITY" \
	"ALTER TABLE accounts FORCE ROW LEVEL SECURITY" \
	"table 'public.accounts': row-level security not forced"
# the policy's text spells tenant_id, in a string: only a column reference counts
rls_refused policy_off_column "CREATE TABLE public.notes (id int, tenant_id int);
	ALTER TABLE public.notes ENABLE ROW LEVEL SECURITY; ALTER TABLE public.notes FORCE ROW LEVEL SECURITY;
	CREATE POLICY notes_any ON public.notes USING (current_setting('app.tenant_id', true) IS NOT NULL)" \
	"DROP TABLE public.notes" \
	"table 'public.notes': no policy refers to the tenant column 'tenant_id' (policies: 'notes_any')"
# past four problems, the last line counts the rest
rls_refused many "DO \$\$ BEGIN FOR i IN 1..5 LOOP EXECUTE format('CREATE TABLE public.many_%s (tenant_id int)', i); END LOOP; END \$\$" \
	"DROP TABLE public.many_1, public.many_2, public.many_3, public.many_4, public.many_5" \
	"table 'public.many_3': row-level security not enabled, no policy; and 2 more; nothing was changed"
rls_refused bypassrls "ALTER ROLE \"$RAPP\" BYPASSRLS" "ALTER ROLE \"$RAPP\" NOBYPASSRLS" \
	"application role '$RAPP' has BYPASSRLS"
rls_refused owner "ALTER TABLE accounts OWNER TO \"$RAPP\"" "ALTER TABLE accounts OWNER TO CURRENT_USER" \
	"application role '$RAPP' owns table 'public.accounts'"
# a migration that creates an unprotected tenant table fails its tenant before the commit
BEFORE=$(rls_snap)
d=$(rls_project leaky "      CREATE TABLE leaky (id int PRIMARY KEY, tenant_id int NOT NULL);")
dc "$d/deployclaw.yaml" apply
expect_rc 1
expect_out "gate 'rls_after' refused"
check_eq "leaky: rolled back (no table 'leaky' in any schema), history and catalog unchanged" \
	"$(q "$RL" "SELECT count(*) FROM pg_class WHERE relname = 'leaky'") $(rls_snap)" "0 $BEFORE"
check_eq "leaky: the ledger's outcome names the gate and the table" \
	"$(ledger_py "$d/audit/ledger.jsonl" 'f = [o for o in outcomes if o["status"] == "failed"]
print(len(f), all("rls_after" in o["error"] and ".leaky'"'"': row-level security not enabled, no policy" in o["error"] for o in f))')" \
	"1 True"
# weakening RLS in a migration is refused before anything runs, at its file:line:col
rls_static disable 7:19 "      ALTER TABLE accounts DISABLE ROW LEVEL SECURITY;" "DISABLE ROW LEVEL SECURITY"
rls_static no_force 7:19 "      ALTER TABLE accounts NO FORCE ROW LEVEL SECURITY;" "NO FORCE ROW LEVEL SECURITY"
rls_static drop_policy 7:7 "      DROP POLICY accounts_tenant ON accounts;" "DROP POLICY 'accounts_tenant'"
# ... unless the same migration makes it good again: a policy dropped and created anew
d=$(rls_project replace_policy "      DROP POLICY accounts_tenant ON accounts;
      CREATE POLICY accounts_tenant ON accounts USING (tenant_id = current_setting('app.tenant', true)::int);")
dc "$d/deployclaw.yaml" apply
expect_rc 0
check_eq "policy replaced in one migration: applied, accounts still guarded" \
	"$(rls_history) $(q "$RL" "SELECT count(*) FROM pg_policy WHERE polname = 'accounts_tenant'")" \
	"0001:applied,0002:applied 1"
}

rls_history() { q "$RL" "SELECT string_agg(version || ':' || status, ',' ORDER BY version) FROM public.deployclaw_history"; }

# rls_snap: a checksum of the history, deployclaw's state, every table with
# its RLS flags and owner, every policy, the app role and the accounts' data
rls_snap() {
	q "$RL" "SELECT md5(string_agg(x, '|' ORDER BY x)) FROM (
	  SELECT 'h' || version || status x FROM public.deployclaw_history
	  UNION ALL SELECT 's' || tenant || version || status FROM deployclaw.tenant_state
	  UNION ALL SELECT 'r' || nspname || '.' || relname || relrowsecurity || relforcerowsecurity || relowner::regrole
	    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
	    WHERE relkind IN ('r', 'p') AND nspname NOT IN ('pg_catalog', 'information_schema')
	  UNION ALL SELECT 'p' || polname || pg_get_expr(polqual, polrelid) FROM pg_policy
	  UNION ALL SELECT 'a' || rolsuper || rolbypassrls FROM pg_roles WHERE rolname = '$RAPP'
	  UNION ALL SELECT 'c' || attname FROM pg_attribute WHERE attrelid = 'public.accounts'::regclass AND attnum > 0
	  UNION ALL SELECT 'd' || string_agg(id || ':' || tenant_id || ':' || n, ',' ORDER BY id) FROM accounts) y"
}

# rls_project NAME SQL: a copy of the base project with a 0002 whose up adds
# a column to accounts, then SQL (from line 7); prints its folder.
rls_project() {
	local d=$TMP/rls_$1
	rm -rf "$d"
	cp -r "$RB" "$d"
	printf 'version: "0002"\nname: %s\nphases:\n  - name: main\n    up: |\n      ALTER TABLE accounts ADD COLUMN note text;\n%s\n    down: ALTER TABLE accounts DROP COLUMN note;\n' \
		"$1" "$2" >"$d/migrations/0002_$1.yaml"
	"$DC" --config "$d/deployclaw.yaml" hash >/dev/null 2>&1 || fail "$1: hash failed"
	echo "$d"
}

# rls_refused NAME FAULT UNDO TEXT: with FAULT made in the shard, a harmless
# 0002 is refused before the run by the rls gate naming TEXT (exit 3), and
# nothing changes; UNDO puts the shard back.
rls_refused() {
	local d
	setup "$RL" -c "$2"
	BEFORE=$(rls_snap)
	d=$(rls_project "$1" "")
	dc "$d/deployclaw.yaml" apply
	expect_rc 3
	expect_err "gate 'rls' refused: shard 'rl': "
	expect_err "$4"
	check_eq "$1: nothing changed" "$(rls_snap)" "$BEFORE"
	setup "$RL" -c "$3"
}

# rls_static NAME LINE:COL SQL TEXT: a 0002 running SQL at line 7 is refused
# by the rls gate at LINE:COL of its file (exit 3), nothing changed.
rls_static() {
	local d
	BEFORE=$(rls_snap)
	d=$(rls_project "$1" "$3")
	dc "$d/deployclaw.yaml" apply
	expect_rc 3
	expect_err "gate 'rls' refused: $d/migrations/0002_$1.yaml:$2: "
	expect_err "$4"
	check_eq "$1: nothing changed" "$(rls_snap)" "$BEFORE"
}

# PG_FLEET_CASES="lock cic" runs only those cases (for working on one);
# by default every case runs.
for c in schema database row lock cic advisory names isolation shared fuzz shard runas rls; do
	case " ${PG_FLEET_CASES:-schema database row lock cic advisory names isolation shared fuzz shard runas rls} " in
	*" $c "*) "case_$c" ;;
	esac
done

section "done"
[ -n "${PG_FLEET_KEEP:-}" ] && cp -r "$TMP"/. "$PG_FLEET_KEEP"/
finish
