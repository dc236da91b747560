# topology.sh — `deployclaw topology` against the sandbox cluster
# (scripts/pg-sandbox: a primary and one streaming replica), which `make test`
# starts and exports as DEPLOYCLAW_PRIMARY / DEPLOYCLAW_REPLICA.
#
# Two shards on the same server (databases topo_shard1 and topo_shard2),
# schema-per-tenant tenants, a deployclaw.tenant_state table on one of them:
# tenant counts, the applied-version distribution (natural order), replica
# lag (also with replay paused, so it must be non-zero), wrong roles, an
# unreachable replica, config errors, and no password in any output.
#
# usage: bash topology.sh path/to/deployclaw
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../cli/lib.sh"

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
cd "$TMP" || exit 1

# Whatever happens, the replica replays again and the databases go.
cleanup() {
	"$PSQL" -X -q "$DEPLOYCLAW_REPLICA" -c "SELECT pg_wal_replay_resume()" >/dev/null 2>&1
	for db in topo_shard1 topo_shard2 topo_db_a topo_db_b; do
		"$PSQL" -X -q "$DEPLOYCLAW_PRIMARY" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" \
			>/dev/null 2>&1
	done
	rm -rf "$TMP"
}
trap cleanup EXIT

# sql DSN SQL: runs SQL, stops the test when it fails.
sql() {
	PGOPTIONS="-c client_min_messages=warning" \
		"$PSQL" -X -q -A -t -v ON_ERROR_STOP=1 "$1" -c "$2" >/dev/null || {
		echo "FAIL: setup SQL failed on '$1': $2" >&2
		exit 1
	}
}

field() { # field KEY CONNINFO
	echo "$2" | tr ' ' '\n' | sed -n "s/^$1=//p" | tail -1
}
HOST=$(field host "$DEPLOYCLAW_PRIMARY")
PORT=$(field port "$DEPLOYCLAW_PRIMARY")
USER_=$(field user "$DEPLOYCLAW_PRIMARY")

# Later keywords win in a conninfo string: append to pick the database.
P1="$DEPLOYCLAW_PRIMARY dbname=topo_shard1"
P2="$DEPLOYCLAW_PRIMARY dbname=topo_shard2"
R1="$DEPLOYCLAW_REPLICA dbname=topo_shard1"
R2="$DEPLOYCLAW_REPLICA dbname=topo_shard2"
# Passwords the sandbox ignores (trust) and no output may show.
PW1=Pw1-conninfo-Secret
PW2=Pw2-uri-Secret
PW3=Pw3-bogus-replica-Secret

# ---------------------------------------------------------------- setup
for db in topo_shard1 topo_shard2 topo_db_a topo_db_b; do
	sql "$DEPLOYCLAW_PRIMARY" "DROP DATABASE IF EXISTS $db WITH (FORCE)"
done
for db in topo_shard1 topo_shard2; do
	sql "$DEPLOYCLAW_PRIMARY" "CREATE DATABASE $db"
done
sql "$DEPLOYCLAW_PRIMARY" "CREATE DATABASE topo_db_a"
sql "$DEPLOYCLAW_PRIMARY" "CREATE DATABASE topo_db_b"
# shard one: 12 tenants and the state table; shard two: 5, no state table.
sql "$P1" "
DO \$\$ BEGIN
  FOR i IN 1..12 LOOP
    EXECUTE format('CREATE SCHEMA %I', 'tenant_' || lpad(i::text, 3, '0'));
    EXECUTE format('CREATE TABLE %I.users (id int PRIMARY KEY, email text)',
                   'tenant_' || lpad(i::text, 3, '0'));
  END LOOP;
END \$\$;
CREATE SCHEMA billing;
CREATE SCHEMA deployclaw;
CREATE TABLE deployclaw.tenant_state (tenant text, version text, checksum text, status text,
  phase text, updated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (tenant, version));
-- '9' on tenants 1..11; '10' on 1..8; '11' partial on 1..2; '12' rolled back on 3;
-- tenant 12 only has a rolled-back '9'; tenant 999 is no schema.
INSERT INTO deployclaw.tenant_state (tenant, version, status)
  SELECT 'tenant_' || lpad(i::text, 3, '0'), '9', 'applied' FROM generate_series(1, 11) i
  UNION ALL SELECT 'tenant_' || lpad(i::text, 3, '0'), '10', 'applied' FROM generate_series(1, 8) i
  UNION ALL SELECT 'tenant_' || lpad(i::text, 3, '0'), '11', 'partial' FROM generate_series(1, 2) i
  UNION ALL VALUES ('tenant_003', '12', 'rolled_back'), ('tenant_012', '9', 'rolled_back'),
                   ('tenant_999', '10', 'applied'), ('one', '5', 'applied');"
# database model: each tenant database keeps its own state (as the engine does)
sql "$DEPLOYCLAW_PRIMARY dbname=topo_db_a" "
CREATE SCHEMA deployclaw;
CREATE TABLE deployclaw.tenant_state (tenant text, version text, checksum text, status text,
  phase text, updated_at timestamptz, PRIMARY KEY (tenant, version));
INSERT INTO deployclaw.tenant_state (tenant, version, status)
  VALUES ('topo_db_a', '2', 'applied'), ('topo_db_a', '3', 'partial'), ('topo_db_a', '4', 'rolled_back');"
sql "$P2" "
DO \$\$ BEGIN
  FOR i IN 101..105 LOOP
    EXECUTE format('CREATE SCHEMA %I', 'tenant_' || i);
  END LOOP;
END \$\$;"

# config NAME SHARD1-PRIMARY SHARD1-REPLICAS SHARD2-PRIMARY SHARD2-REPLICAS [TENANCY]
config() {
	cat >"$1" <<EOF
engine: postgres
tenancy:
${6:-  model: schema
  pattern: "tenant_%"}
shards:
  - name: one
    primary: "$2"
    replicas: [$3]
    parallel: 2
  - name: two
    primary: "$4"
    replicas: [$5]
EOF
}

# json_check FILE PYTHON-EXPR...: each expression over `d` must be true.
json_check() {
	local file=$1 out
	shift
	CHECKS=$((CHECKS + 1))
	out=$(python3 - "$file" "$@" <<'PY' 2>&1
import json, sys
d = json.load(open(sys.argv[1], encoding="utf-8"))
bad = [e for e in sys.argv[2:] if not eval(e, {"d": d})]
if bad:
    print("false: " + " | ".join(bad))
    sys.exit(1)
PY
	) || fail "json: $out"
}

no_password() {
	local pw
	for pw in "$PW1" "$PW2" "$PW3"; do
		expect_no_out "$pw"
		expect_no_err "$pw"
	done
}

URI2="postgres://$USER_:$PW2@$HOST:$PORT/topo_shard2"
GOOD=good.yaml
config $GOOD "$P1 password=$PW1" "\"$R1\"" "$URI2" "\"$R2\""

echo "== healthy fleet, human output"
run "$DC" --config $GOOD topology
expect_rc 0
expect_out "shard 'one'"
expect_out "shard 'two'"
expect_out "PostgreSQL 15"
expect_out "streaming"
expect_out "2 shards, 2 replicas, 17 tenants: all good"
expect_out "password=********"
expect_out "postgres://$USER_:********@"
expect_empty_err
no_password

echo "== healthy fleet, --json"
run "$DC" --config $GOOD topology --json
expect_rc 0
expect_empty_err
no_password
json_check "$OUT" \
	'd["ok"] is True and d["problems"] == 0 and d["tenants"] == 17' \
	'[s["name"] for s in d["shards"]] == ["one", "two"]' \
	'd["shards"][0]["tenants"] == 12 and d["shards"][0]["state_table"] is True' \
	'[(v["version"], v["tenants"]) for v in d["shards"][0]["versions"]] == [(None, 1), ("9", 3), ("10", 6), ("11", 2)]' \
	'd["shards"][0]["partial"] == 2' \
	'd["shards"][1]["tenants"] == 5 and d["shards"][1]["state_table"] is False' \
	'[(v["version"], v["tenants"]) for v in d["shards"][1]["versions"]] == [(None, 5)]' \
	'all(s["ok"] and not s["in_recovery"] and s["server_version_num"] >= 150000 for s in d["shards"])' \
	'all(s["queries"] <= 4 for s in d["shards"])' \
	'all(r["ok"] and r["in_recovery"] and r["streaming"] and r["state"] == "streaming" for s in d["shards"] for r in s["replicas"])' \
	'all(isinstance(r["lag_bytes"], int) and r["lag_bytes"] >= 0 for s in d["shards"] for r in s["replicas"])' \
	'all(isinstance(r["lag_ms"], int) and r["lag_ms"] >= 0 for s in d["shards"] for r in s["replicas"])' \
	'all(r["matched_by"] in ("slot", "application_name", "only") for s in d["shards"] for r in s["replicas"])' \
	'all(r["error"] is None for s in d["shards"] for r in s["replicas"])'

echo "== tenancy.query finds the same tenants"
config query.yaml "$P1" "\"$R1\"" "$P2" "" "  model: schema
  query: \"SELECT nspname FROM pg_namespace WHERE nspname ~ '^tenant_[0-9]+\$';\""
run "$DC" --config query.yaml topology --json
expect_rc 0
json_check "$OUT" \
	'd["shards"][0]["tenants"] == 12 and d["shards"][1]["tenants"] == 5' \
	'[(v["version"], v["tenants"]) for v in d["shards"][0]["versions"]] == [(None, 1), ("9", 3), ("10", 6), ("11", 2)]'

echo "== pattern and list together: the union"
config union.yaml "$P1" "" "$P2" "" "  model: schema
  pattern: \"tenant_%\"
  list: [billing, tenant_001, nosuch]"
run "$DC" --config union.yaml topology --json
expect_rc 0
json_check "$OUT" 'd["shards"][0]["tenants"] == 13 and d["shards"][1]["tenants"] == 5'

echo "== database and row models"
config dbmodel.yaml "$P1" "" "$P2" "" "  model: database
  pattern: \"topo_db_%\""
run "$DC" --config dbmodel.yaml topology --json
expect_rc 0
json_check "$OUT" \
	'd["shards"][0]["tenants"] == 2 and d["shards"][0]["state_table"] is True' \
	'[(v["version"], v["tenants"]) for v in d["shards"][0]["versions"]] == [(None, 1), ("3", 1)]' \
	'd["shards"][0]["partial"] == 1'
config rowmodel.yaml "$P1" "" "$P2" "" "  model: row"
run "$DC" --config rowmodel.yaml topology --json
expect_rc 0
json_check "$OUT" \
	'[(v["version"], v["tenants"]) for v in d["shards"][0]["versions"]] == [("5", 1)]' \
	'[(v["version"], v["tenants"]) for v in d["shards"][1]["versions"]] == [(None, 1)]'

echo "== replay paused: lag in bytes and time is measured"
sql "$DEPLOYCLAW_REPLICA" "SELECT pg_wal_replay_pause()"
# Let the replica stop at a replayed transaction, then write on the primary.
sleep 1
sql "$P1" "CREATE TABLE tenant_001.events AS SELECT g AS id, md5(g::text) AS body FROM generate_series(1, 20000) g"
for _ in $(seq 1 50); do # until the replica has received it (it still streams)
	[ "$("$PSQL" -X -A -t "$R1" -c "SELECT pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()) > 0")" = t ] && break
	sleep 0.1
done
run "$DC" --config $GOOD topology --json
expect_rc 0
json_check "$OUT" \
	'd["shards"][0]["replicas"][0]["lag_bytes"] > 100000' \
	'd["shards"][0]["replicas"][0]["replay_pending_bytes"] > 0' \
	'd["shards"][0]["replicas"][0]["lag_ms"] >= 500'
run "$DC" --config $GOOD topology
expect_rc 0
expect_out "iB " # KiB or MiB of lag, not "0 B"
sql "$DEPLOYCLAW_REPLICA" "SELECT pg_wal_replay_resume()"

echo "== an unreachable replica: exit 1, named, password redacted"
BOGUS="host=127.0.0.1 port=1 dbname=topo_shard2 user=$USER_ password=$PW3 connect_timeout=3"
config bogus.yaml "$P1 password=$PW1" "\"$R1\"" "$URI2" "\"$R2\", \"$BOGUS\""
run "$DC" --config bogus.yaml topology
expect_rc 1
expect_err "shard 'two': replica 1 'host=127.0.0.1 port=1 dbname=topo_shard2 user=$USER_ password=******** connect_timeout=3': unreachable"
expect_out "unreachable"
expect_out "PROBLEMS"
no_password
run "$DC" --config bogus.yaml topology --json
expect_rc 1
no_password
json_check "$OUT" \
	'd["ok"] is False and d["problems"] == 1' \
	'd["shards"][0]["ok"] is True and d["shards"][1]["ok"] is False' \
	'd["shards"][1]["replicas"][0]["ok"] is True' \
	'd["shards"][1]["replicas"][1]["reachable"] is False and "unreachable" in d["shards"][1]["replicas"][1]["error"]' \
	'"********" in d["shards"][1]["replicas"][1]["dsn"]'

echo "== a replica that is a primary, a primary that is a replica: exit 1"
config roles.yaml "$P1" "\"$P1 password=$PW1\"" "$R2" ""
run "$DC" --config roles.yaml topology
expect_rc 1
expect_err "shard 'one': replica 0 '$DEPLOYCLAW_PRIMARY dbname=topo_shard1 password=********': not in recovery"
expect_err "shard 'two': primary '$R2': in recovery"
no_password

echo "== config errors: exit 2"
config nofind.yaml "$P1" "" "$P2" "" "  model: schema"
run "$DC" --config nofind.yaml topology
expect_rc 2
expect_err "tenancy: model 'schema' needs 'pattern', 'query' or 'list'"
cat >sqlite.yaml <<'EOF'
engine: sqlite
tenancy:
  glob: tenants/*.db
EOF
run "$DC" --config sqlite.yaml topology
expect_rc 2
expect_err "topology needs engine 'postgres'"

finish
