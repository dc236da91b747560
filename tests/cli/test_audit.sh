# audit keygen|verify|show|export through the binary, tampering included.
. "$(dirname "$0")/lib.sh"
cd "$TMP"

run "$DC" init proj
expect_rc 0
cd proj
# a few more entries: hash twice more after adding migrations
for v in 0002 0003; do
	cat > migrations/${v}_t.yaml <<YAML
version: "$v"
name: table $v
phases:
  - name: expand
    up: CREATE TABLE t$v (id INTEGER PRIMARY KEY);
    down: DROP TABLE t$v;
YAML
	run "$DC" hash
	expect_rc 0
done

run "$DC" audit verify
expect_rc 0
expect_out "3 entries"
HEAD=$(sed -n 's/^head //p' "$OUT")
CHECKS=$((CHECKS + 1))
[ -n "$HEAD" ] || fail "verify printed no head"

run "$DC" --json audit verify
expect_rc 0
expect_out '"ok": true'
expect_out '"entries": 3'

run "$DC" audit verify --expect-head "$HEAD"
expect_rc 0

# keygen refuses to overwrite
run "$DC" audit keygen
expect_rc 2
expect_err "already exists"

# show and filters
run "$DC" audit show
expect_rc 0
expect_out "init"
expect_out "hash"
run "$DC" audit show --event hash
expect_rc 0
expect_no_out " init "
CHECKS=$((CHECKS + 1))
[ "$(wc -l <"$OUT")" -eq 2 ] || fail "--event hash did not select 2 entries"
run "$DC" --json audit show --event init
expect_rc 0
expect_out '"event":"init"'
run "$DC" audit show --since 2h
expect_rc 0
CHECKS=$((CHECKS + 1))
[ "$(wc -l <"$OUT")" -eq 3 ] || fail "--since 2h did not select all 3 entries"
run "$DC" audit show --until 2000-01-01
expect_rc 0
expect_err "no entry"
run "$DC" audit show --since yesterday
expect_rc 2
expect_err "--since 'yesterday'"

# export
run "$DC" audit export --format csv
expect_rc 0
expect_out "seq,ts,run_id,actor,event,key_id,prev,hash,sig,data"
CHECKS=$((CHECKS + 1))
[ "$(wc -l <"$OUT")" -eq 4 ] || fail "csv export is not header + 3 rows"
run "$DC" audit export --format jsonl -o export.jsonl
expect_rc 0
CHECKS=$((CHECKS + 1))
cmp -s export.jsonl audit/ledger.jsonl || fail "jsonl export differs from the ledger"
run "$DC" audit export --format xml
expect_rc 2
expect_err "--format 'xml': expected 'jsonl' or 'csv'"

# tampering: each on a copy, verify exits 4 naming the entry
cp audit/ledger.jsonl good.jsonl
cp audit/ledger.jsonl.head good.head

sed -i '2s/"event":"hash"/"event":"hasH"/' audit/ledger.jsonl
run "$DC" audit verify
expect_rc 4
expect_err "seq 2"
run "$DC" audit export
expect_rc 4
CHECKS=$((CHECKS + 1))
[ ! -s "$OUT" ] || fail "a tampered ledger was exported"
cp good.jsonl audit/ledger.jsonl

sed -i '2d' audit/ledger.jsonl
run "$DC" audit verify
expect_rc 4
expect_err "line 2"
cp good.jsonl audit/ledger.jsonl

# tail truncation: the head record catches it, and so does --expect-head
head -n 2 good.jsonl > audit/ledger.jsonl
run "$DC" audit verify
expect_rc 4
expect_err "truncat"
run "$DC" audit verify --expect-head "$HEAD"
expect_rc 4
cp good.jsonl audit/ledger.jsonl

# the whole ledger deleted: its head record, or --expect-head, makes it tampering
rm audit/ledger.jsonl
run "$DC" audit verify
expect_rc 4
expect_err "deployclaw: error: ledger '"
expect_err "audit/ledger.jsonl' is missing but its head record '"
expect_err "says seq 3: the whole ledger was deleted (entries seq 1..3 are gone)"
expect_no_err "cannot open"
run "$DC" audit verify --expect-head "$HEAD"
expect_rc 4
expect_err "says seq 3: the whole ledger was deleted"
run "$DC" --json audit verify
expect_rc 4
expect_out '"ok": false'
expect_out '"bad_seq": 1'
run "$DC" audit export
expect_rc 4
expect_err "the whole ledger was deleted"
CHECKS=$((CHECKS + 1))
[ ! -s "$OUT" ] || fail "a deleted ledger was exported"
run "$DC" audit show
expect_rc 4
expect_err "the whole ledger was deleted"
rm audit/ledger.jsonl.head
run "$DC" audit verify --expect-head "$HEAD"
expect_rc 4
expect_err "is missing but the expected head is seq 3: the whole ledger was deleted (entries seq 1..3 are gone)"
# neither a head record nor an expected head: nothing says it existed
run "$DC" audit verify
expect_rc 2
expect_err "cannot open ledger"
expect_err "No such file or directory"
cp good.jsonl audit/ledger.jsonl
cp good.head audit/ledger.jsonl.head

# a torn last line
printf '{"seq":4,"ts":"2026' >> audit/ledger.jsonl
run "$DC" audit verify
expect_rc 4
expect_err "torn"
run "$DC" hash
expect_rc 4
expect_err "torn"
cp good.jsonl audit/ledger.jsonl

# another key: verify with its public key fails
run "$DC" audit keygen --key other.key
expect_rc 0
expect_file other.key.pub
run "$DC" audit verify --pubkey other.key.pub
expect_rc 4
expect_err "different key"

# an auditor with only the ledger and the public key, no config
mkdir ../auditor
cp audit/ledger.jsonl audit/ledger.jsonl.head audit/signing.key.pub ../auditor/
cd ../auditor
run "$DC" audit verify --ledger ledger.jsonl --pubkey signing.key.pub
expect_rc 0
expect_out "3 entries"

finish
