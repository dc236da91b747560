# A rollback without --to undoes the newest migration applied anywhere in the
# fleet; run again after it stopped part-way, it finishes that same step
# instead of undoing one more migration on the tenants already done.
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
  parallel: 2
YAML
for t in t1 t2 t3 t4 t5 t6; do
	sqlite3 "tenants/$t.db" "CREATE TABLE items (id INTEGER PRIMARY KEY);"
done
for v in 1 2 3; do
	cat > migrations/000${v}_c$v.yaml <<YAML
version: "000$v"
name: column c$v
phases:
  - name: expand
    up: ALTER TABLE items ADD COLUMN c$v TEXT;
    down: ALTER TABLE items DROP COLUMN c$v;
YAML
done
run "$DC" audit keygen
expect_rc 0
run "$DC" hash
expect_rc 0
run "$DC" apply
expect_rc 0

applied() { # applied TENANT: its applied versions, comma-separated
	sqlite3 "tenants/$1.db" "SELECT group_concat(version) FROM (SELECT version FROM deployclaw_history WHERE status = 'applied' ORDER BY version)"
}

# a rollback that reached only two tenants (as if it had been stopped)
run "$DC" rollback --tenant t1 --tenant t2
expect_rc 0
for t in t1 t2; do
	CHECKS=$((CHECKS + 1))
	[ "$(applied $t)" = "0001,0002" ] || fail "$t: applied '$(applied $t)', expected 0001,0002"
done

# run again without --to: the fleet's step is 0003 -> 0002; t1 and t2 are already there
run "$DC" rollback
expect_rc 0
expect_out "4 tenants rolled back"
expect_out "2 already up to date"
for t in t1 t2 t3 t4 t5 t6; do
	CHECKS=$((CHECKS + 1))
	[ "$(applied $t)" = "0001,0002" ] || fail "$t: applied '$(applied $t)', expected 0001,0002"
	CHECKS=$((CHECKS + 1))
	[ "$(sqlite3 tenants/$t.db "SELECT count(*) FROM pragma_table_info('items') WHERE name = 'c3'")" = 0 ] ||
		fail "$t: column c3 still there"
done

# the next rollback takes the next step, everywhere
run "$DC" rollback
expect_rc 0
expect_out "6 tenants rolled back"
for t in t1 t6; do
	CHECKS=$((CHECKS + 1))
	[ "$(applied $t)" = "0001" ] || fail "$t: applied '$(applied $t)', expected 0001"
done

# an unknown --to is refused before anything is touched
run "$DC" rollback --to 0009
expect_rc 2
expect_err "--to '0009': no migration has this version"

run "$DC" apply
expect_rc 0
CHECKS=$((CHECKS + 1))
[ "$(applied t4)" = "0001,0002,0003" ] || fail "t4: not back at 0003"

finish
