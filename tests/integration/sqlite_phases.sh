# Non-transactional phases on SQLite: VACUUM outside the transaction, its
# progress recorded, and the downs of committed phases run when a later phase
# fails — the tenant ends where it started.
. "$(dirname "$0")/../cli/lib.sh"
cd "$TMP"

mkdir -p fleet/migrations fleet/tenants
cd fleet
cat > deployclaw.yaml <<'YAML'
engine: sqlite
tenancy:
  model: database
  glob: tenants/*.db
rollout:
  canary: 1
  waves: [100%]
  max_failures: 5
  parallel: 2
YAML
for t in alpha beta gamma; do
	sqlite3 "tenants/$t.db" "CREATE TABLE items (id INTEGER PRIMARY KEY, sku TEXT NOT NULL);
		INSERT INTO items (sku) VALUES ('a'), ('b'), ('c');"
done
# beta holds a duplicate sku: the contract phase's unique index fails there
sqlite3 tenants/beta.db "INSERT INTO items (sku) VALUES ('a');"

cat > migrations/0001_sku_index.yaml <<'YAML'
version: "0001"
name: normalise skus
phases:
  - name: expand
    up: ALTER TABLE items ADD COLUMN sku_norm TEXT;
    down: ALTER TABLE items DROP COLUMN sku_norm;
  - name: compact
    transaction: false
    up: VACUUM;
  - name: contract
    up: |
      UPDATE items SET sku_norm = lower(sku);
      CREATE UNIQUE INDEX items_sku_norm ON items (sku_norm);
    down: DROP INDEX items_sku_norm;
YAML
run "$DC" audit keygen
expect_rc 0
run "$DC" hash
expect_rc 0

run "$DC" apply
expect_rc 1
expect_out "beta"
expect_out "UNIQUE constraint failed"
expect_out "0001_sku_index.yaml:13:"

# alpha and gamma: applied once, column and index present
for t in alpha gamma; do
	CHECKS=$((CHECKS + 1))
	[ "$(sqlite3 tenants/$t.db "SELECT status || ':' || phase FROM deployclaw_history WHERE version = '0001'")" = "applied:contract" ] ||
		fail "$t: history is not applied:contract"
	CHECKS=$((CHECKS + 1))
	[ "$(sqlite3 tenants/$t.db "SELECT count(*) FROM pragma_index_list('items') WHERE name = 'items_sku_norm'")" = 1 ] ||
		fail "$t: index missing"
done
# beta: the expand phase had committed before VACUUM; its down ran; recorded rolled back
CHECKS=$((CHECKS + 1))
[ "$(sqlite3 tenants/beta.db "SELECT count(*) FROM pragma_table_info('items') WHERE name = 'sku_norm'")" = 0 ] ||
	fail "beta: sku_norm was not dropped by the compensation"
CHECKS=$((CHECKS + 1))
[ "$(sqlite3 tenants/beta.db "SELECT status FROM deployclaw_history WHERE version = '0001'")" = "rolled_back" ] ||
	fail "beta: history is not rolled_back"

# fixed data, apply again: beta catches up, the others are skipped
sqlite3 tenants/beta.db "DELETE FROM items WHERE id = 4;"
run "$DC" apply
expect_rc 0
expect_out "1 tenant migrated"
CHECKS=$((CHECKS + 1))
[ "$(sqlite3 tenants/beta.db "SELECT status FROM deployclaw_history WHERE version = '0001'")" = "applied" ] ||
	fail "beta: not applied after the fix"

# VACUUM inside a transactional phase is refused, with the position
cat > migrations/0002_vacuum.yaml <<'YAML'
version: "0002"
name: vacuum in a transaction
phases:
  - name: main
    up: VACUUM;
    down: SELECT 1;
YAML
run "$DC" hash
expect_rc 0
run "$DC" apply --tenant alpha
expect_rc 1
expect_out "VACUUM cannot run inside a transaction"
expect_out "0002_vacuum.yaml:5:"
CHECKS=$((CHECKS + 1))
[ "$(sqlite3 tenants/alpha.db "SELECT count(*) FROM deployclaw_history WHERE version = '0002'")" = 0 ] ||
	fail "alpha: 0002 recorded although it failed"

run "$DC" audit verify
expect_rc 0

finish
