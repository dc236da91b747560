# The per-tenant consistency gates on SQLite (gates.integrity_check,
# gates.foreign_key_check): by default they check what the tenant's migration
# wrote -- a violation there fails the tenant, which is rolled back; one in a
# table the migration never touched does not -- and `full` checks the whole
# file. Outcomes are read back from the tenant files, `status` and the ledger.
. "$(dirname "$0")/../cli/lib.sh"
cd "$TMP"

mkdir -p fleet/migrations fleet/tenants
cd fleet
config() { # INTEGRITY_SCOPE
	cat > deployclaw.yaml <<YAML
engine: sqlite
tenancy:
  model: database
  glob: tenants/*.db
gates:
  integrity_check: $1
rollout:
  canary: 1
  waves: [100%]
  max_failures: 5
  parallel: 2
YAML
}
check_eq() { CHECKS=$((CHECKS + 1)); [ "$2" = "$3" ] || fail "$1: '$2', expected '$3'"; }
config true
for t in alpha beta gamma delta; do
	sqlite3 "tenants/$t.db" "
		CREATE TABLE accounts (id INTEGER PRIMARY KEY, email TEXT NOT NULL, closed INTEGER NOT NULL DEFAULT 0);
		CREATE TABLE orders (id INTEGER PRIMARY KEY, account_id INTEGER NOT NULL REFERENCES accounts (id), sku TEXT);
		CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT CHECK (length(body) > 0));
		INSERT INTO accounts (email, closed) VALUES ('a@x', 0), ('b@x', 1);
		INSERT INTO orders (account_id, sku) VALUES (1, 'x');
		INSERT INTO notes (body) VALUES ('hello');"
done
# beta: the closed account still has an order, which its removal would orphan
sqlite3 tenants/beta.db "INSERT INTO orders (account_id, sku) VALUES (2, 'y');"
# gamma: a broken CHECK in a table no migration here touches
sqlite3 tenants/gamma.db "PRAGMA ignore_check_constraints = ON; INSERT INTO notes (body) VALUES ('');"

cat > migrations/0001_drop_closed.yaml <<'YAML'
version: "0001"
name: remove closed accounts
phases:
  - name: purge
    up: |
      PRAGMA defer_foreign_keys = ON;
      DELETE FROM accounts WHERE closed = 1;
    down: SELECT 1;
YAML
run "$DC" audit keygen
expect_rc 0
run "$DC" hash
expect_rc 0

run "$DC" apply
expect_rc 1
expect_out "beta"
expect_out "foreign key violation: orders: row 2 references a missing row of accounts"
for t in alpha gamma delta; do
	check_eq "$t history" "$(sqlite3 tenants/$t.db "SELECT status FROM deployclaw_history WHERE version = '0001'")" applied
	check_eq "$t accounts" "$(sqlite3 tenants/$t.db "SELECT count(*) FROM accounts")" 1
done
# beta rolled back whole: its account is there, no history row
check_eq "beta accounts" "$(sqlite3 tenants/beta.db "SELECT count(*) FROM accounts")" 2
check_eq "beta history" "$(sqlite3 tenants/beta.db "SELECT count(*) FROM sqlite_schema WHERE name = 'deployclaw_history'")" 0
run "$DC" status
expect_out "beta"
# the ledger says which gate refused it, and why
CHECKS=$((CHECKS + 1))
grep -F '"beta"' audit/ledger.jsonl | grep -qF 'foreign key violation: orders: row 2' ||
	fail "the ledger lacks beta's foreign key refusal"

# gates.integrity_check: full -- gamma's old broken note now refuses it
config full
sqlite3 tenants/beta.db "DELETE FROM orders WHERE account_id = 2"
cat > migrations/0002_plan.yaml <<'YAML'
version: "0002"
name: add a plan
phases:
  - name: expand
    up: ALTER TABLE accounts ADD COLUMN plan TEXT;
    down: ALTER TABLE accounts DROP COLUMN plan;
YAML
run "$DC" hash
expect_rc 0
run "$DC" apply
expect_rc 1
expect_out "gamma"
expect_out "integrity check failed: CHECK constraint failed in notes"
check_eq "gamma 0002" "$(sqlite3 tenants/gamma.db "SELECT count(*) FROM deployclaw_history WHERE version = '0002'")" 0
check_eq "gamma plan column" "$(sqlite3 tenants/gamma.db "SELECT count(*) FROM pragma_table_info('accounts') WHERE name = 'plan'")" 0
for t in alpha beta delta; do
	check_eq "$t 0002" "$(sqlite3 tenants/$t.db "SELECT status FROM deployclaw_history WHERE version = '0002'")" applied
done
run "$DC" audit verify
expect_rc 0

# The ledger file deleted, its signed head record left: apply refuses before
# touching any tenant (a missing ledger is new only when nothing says it existed)
cat > migrations/0003_note.yaml <<'YAML'
version: "0003"
name: a note column
phases:
  - name: expand
    up: ALTER TABLE accounts ADD COLUMN note TEXT;
    down: ALTER TABLE accounts DROP COLUMN note;
YAML
run "$DC" hash
expect_rc 0
rm audit/ledger.jsonl
run "$DC" apply
expect_rc 4
expect_err "the tail was truncated (entry seq 1 onwards is missing)"
for t in alpha beta gamma delta; do
	check_eq "$t 0003" "$(sqlite3 tenants/$t.db "SELECT count(*) FROM deployclaw_history WHERE version = '0003'")" 0
done
finish
