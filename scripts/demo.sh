#!/usr/bin/env bash
# demo.sh — what deployclaw does today, end to end, in a temporary folder:
# a project is created, its migrations are checksummed, the sum file catches
# an edited migration, and the signed audit ledger catches tampering.
set -euo pipefail
DC=$(realpath "${1:-build/src/cli/deployclaw}")
WORK=$(mktemp -d "${TMPDIR:-/tmp}/deployclaw-demo.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }
expect_fail() {
	local want=$1; shift
	printf '$ %s\n' "$*"
	set +e; "$@"; local rc=$?; set -e
	if [ "$rc" -ne "$want" ]; then
		echo "demo: expected exit $want, got $rc" >&2; exit 1
	fi
	echo "(exit $rc, as expected)"
}

say "1. a new project: config, an example migration, a signing key, the ledger"
show "$DC" init shop
cd shop

say "2. a second migration, then 'hash' records the checksums (and the ledger records the hash)"
cat > migrations/0002_add_plan.yaml <<'YAML'
version: "0002"
name: add plan to accounts
phases:
  - name: expand
    up: ALTER TABLE accounts ADD COLUMN plan TEXT NOT NULL DEFAULT 'free';
    down: ALTER TABLE accounts DROP COLUMN plan;
verify:
  - SELECT count(*) = 0 FROM accounts WHERE plan IS NULL
YAML
show "$DC" hash -v
show "$DC" hash --check

say "3. someone edits an already-hashed migration: refused by name, exit 4"
sed -i "s/'free'/'trial'/" migrations/0002_add_plan.yaml
expect_fail 4 "$DC" hash --check
sed -i "s/'trial'/'free'/" migrations/0002_add_plan.yaml

say "4. the audit ledger: every change, hash-chained and Ed25519-signed"
show "$DC" audit show
show "$DC" audit verify

say "5. tampering with the ledger is caught, and the bad entry is named"
cp audit/ledger.jsonl ledger.good
sed -i '2s/"event":"hash"/"event":"hush"/' audit/ledger.jsonl
expect_fail 4 "$DC" audit verify
cp ledger.good audit/ledger.jsonl
head -n 1 ledger.good > audit/ledger.jsonl
echo "(the last entry was cut off the ledger)"
expect_fail 4 "$DC" audit verify
cp ledger.good audit/ledger.jsonl
show "$DC" audit verify

say "done"
cat <<'TXT'
What happened: 'init' wrote a project and signed its first ledger entry; 'hash'
chained the migrations' SHA-256 sums into deployclaw.sum and recorded that in the
ledger; an edited migration was refused by name before anything could run it; and
the ledger caught both a modified entry and a truncated tail, naming the entry.
An auditor needs only audit/ledger.jsonl and audit/signing.key.pub to check it.
TXT
