# plan --live: each target table's rows and size per shard from the catalog,
# next to the lock and the rewrite, before anything runs.
. "$(dirname "$0")/../cli/lib.sh"
if [ -z "${DEPLOYCLAW_PRIMARY:-}" ]; then
	echo "FAIL: DEPLOYCLAW_PRIMARY is not set (run under make test, or eval \"\$(scripts/pg-sandbox env)\")" >&2
	exit 1
fi
cd "$TMP"
DB=dcplan$$
psql -X -q -v ON_ERROR_STOP=1 "$DEPLOYCLAW_PRIMARY" -c "CREATE DATABASE $DB" >/dev/null || exit 1
trap 'for d in $DB ${DB}_t1 ${DB}_t2; do psql -X -q "$DEPLOYCLAW_PRIMARY" -c "DROP DATABASE IF EXISTS $d" >/dev/null 2>&1; done; rm -rf "$TMP"' EXIT
for t in a b c; do
	psql -X -q -v ON_ERROR_STOP=1 "$DEPLOYCLAW_PRIMARY dbname=$DB" -c "
		CREATE SCHEMA tenant_$t;
		CREATE TABLE tenant_$t.users (id int PRIMARY KEY, email text);
		INSERT INTO tenant_$t.users SELECT g, 'u' || g FROM generate_series(1, 2000) g;
		ANALYZE tenant_$t.users;" >/dev/null || exit 1
done
# a fourth tenant never analyzed: its rows are unknown, and said so
psql -X -q -v ON_ERROR_STOP=1 "$DEPLOYCLAW_PRIMARY dbname=$DB" -c "
	CREATE SCHEMA tenant_d; CREATE TABLE tenant_d.users (id int PRIMARY KEY, email text);" >/dev/null
mkdir -p migrations
cat > deployclaw.yaml <<YAML
engine: postgres
tenancy:
  model: schema
  pattern: "tenant_%"
shards:
  - name: s1
    primary: "$DEPLOYCLAW_PRIMARY dbname=$DB"
YAML
cat > migrations/0001_bigint.yaml <<'YAML'
version: "0001"
name: widen user ids
phases:
  - name: main
    up: ALTER TABLE users ALTER COLUMN id TYPE bigint;
    down: ALTER TABLE users ALTER COLUMN id TYPE int;
YAML
# plan reads the migrations behind their deployclaw.sum
"$DC" -q audit keygen && "$DC" -q hash || exit 1
run "$DC" plan --live
expect_rc 0
expect_out "ACCESS EXCLUSIVE on users"
expect_out "6 k rows"
expect_out "over 4 tenant tables; 1 never analyzed"
expect_out "table rewrite"
expect_out "risk: HIGH"

# plan --live measures the tenants the engine and topology find, and only
# those: schemas with LIKE wildcards in their names ('pgxtoast_e' matches an
# unescaped 'pg_toast%', 'we%ird' holds a '%'), and one that is not a tenant
# at all ('archive') but has a table of the same name.
for s in pgxtoast_e 'we%ird' archive; do
	psql -X -q -v ON_ERROR_STOP=1 "$DEPLOYCLAW_PRIMARY dbname=$DB" -c "
		CREATE SCHEMA \"$s\"; CREATE TABLE \"$s\".users (id int PRIMARY KEY, email text);
		ANALYZE \"$s\".users;" >/dev/null || exit 1
done
cp deployclaw.yaml pattern.yaml
cat > deployclaw.yaml <<YAML
engine: postgres
tenancy:
  model: schema
  list: [tenant_a, pgxtoast_e, "we%ird", nosuch]
shards:
  - name: s1
    primary: "$DEPLOYCLAW_PRIMARY dbname=$DB"
YAML
tenants_of() { # tenants_of TOPOLOGY_JSON: the tenants the topology found
	python3 -c 'import json, sys; print(sum(s["tenants"] for s in json.load(open(sys.argv[1]))["shards"]))' "$1"
}
run "$DC" topology --json
expect_rc 0
[ "$(tenants_of "$OUT")" = 3 ] || fail "topology found $(tenants_of "$OUT") tenants, expected 3"
run "$DC" plan --live
expect_rc 0
expect_out "over 3 tenant tables"
# the same through tenancy.query, with the pattern's tenants besides
cat > deployclaw.yaml <<YAML
engine: postgres
tenancy:
  model: schema
  pattern: 'tenant\_%'
  query: "SELECT nspname FROM pg_namespace WHERE nspname IN ('pgxtoast_e', 'we%ird');"
shards:
  - name: s1
    primary: "$DEPLOYCLAW_PRIMARY dbname=$DB"
YAML
run "$DC" topology --json
expect_rc 0
[ "$(tenants_of "$OUT")" = 6 ] || fail "topology found $(tenants_of "$OUT") tenants, expected 6"
run "$DC" plan --live
expect_rc 0
expect_out "over 6 tenant tables"

# database model: the tables of every tenant database, not of the primary's
# own database (which here holds seven tables of the name)
for t in t1 t2; do
	psql -X -q -v ON_ERROR_STOP=1 "$DEPLOYCLAW_PRIMARY" -c "CREATE DATABASE ${DB}_$t" >/dev/null || exit 1
	psql -X -q -v ON_ERROR_STOP=1 "$DEPLOYCLAW_PRIMARY dbname=${DB}_$t" -c "
		CREATE TABLE users (id int PRIMARY KEY, email text);
		INSERT INTO users SELECT g, 'u' || g FROM generate_series(1, 1000) g;
		ANALYZE users;" >/dev/null || exit 1
done
cat > deployclaw.yaml <<YAML
engine: postgres
tenancy:
  model: database
  pattern: '${DB}\_t%'
shards:
  - name: s1
    primary: "$DEPLOYCLAW_PRIMARY dbname=$DB"
YAML
run "$DC" plan --live
expect_rc 0
expect_out "2 k rows"
expect_out "over 2 tenant tables"
mv pattern.yaml deployclaw.yaml

# without --live nothing is measured, and a dead shard is named when it is asked
run "$DC" plan
expect_rc 0
expect_no_out "tenant tables"
sed -i "s/dbname=$DB/dbname=$DB port=1/" deployclaw.yaml
run "$DC" plan --live
expect_rc 1
expect_err "shard 's1': cannot connect"

finish
