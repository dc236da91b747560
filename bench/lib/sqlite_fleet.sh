# Sourced by bench/sqlite_fleet.sh and bench/sqlite_work.sh: the fleet both
# measure. make_fleet DIR N DEPLOYCLAW BASELINE creates in DIR N tenant files
# (accounts and orders, as the demo's; `sqlite_baseline make-fleet`), the
# configs checks.yaml (the default gates) and nochecks.yaml (gates off), the
# 3-statement migration the baseline also runs (bench/sqlite_baseline.c), a
# signing key and deployclaw.sum.

make_fleet() { # DIR N DEPLOYCLAW BASELINE
	mkdir -p "$1/tenants" "$1/migrations" "$1/audit"
	"$4" make-fleet "$1/tenants" "$2"
	fleet_config "" >"$1/checks.yaml"
	fleet_config "  integrity_check: false
  foreign_key_check: false" >"$1/nochecks.yaml"
	cat >"$1/migrations/0001_add_plan.yaml" <<'MIGRATION'
version: "0001"
name: add a plan to every account
phases:
  - name: expand
    up: |
      ALTER TABLE accounts ADD COLUMN plan TEXT;
      UPDATE accounts SET plan = CASE WHEN seats > 10 THEN 'team' ELSE 'solo' END;
      CREATE INDEX accounts_plan ON accounts (plan);
    down: |
      DROP INDEX accounts_plan;
      ALTER TABLE accounts DROP COLUMN plan;
MIGRATION
	(cd "$1" && "$3" -q --config checks.yaml audit keygen && "$3" -q --config checks.yaml hash)
}

fleet_config() { # EXTRA-GATE-LINES
	cat <<CONFIG
engine: sqlite
migrations: migrations
tenancy:
  model: database
  glob: tenants/*.db
gates:
  lock_timeout: 5s
$1
rollout:
  canary: 1
  waves: [10%, 100%]
  max_failures: 0
audit:
  ledger: audit/ledger.jsonl
  key: audit/signing.key
CONFIG
}
