# sqlite_fleet.sh — integration tests of apply, rollback, status and the
# ledger on fleets of 100-200 SQLite tenants: the outcome is read back from
# the tenants themselves (history rows, the schema with the sqlite3 CLI),
# the ledger and the exit codes.
#
# usage: bash sqlite_fleet.sh path/to/deployclaw
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../cli/lib.sh"
. "$HERE/fleet_lib.sh"
# background deployclaw and lock holders die with the test
trap 'kill -9 $(jobs -p) 2>/dev/null; rm -rf "$TMP"' EXIT
cd "$TMP" || exit 99

command -v "$SQLITE" >/dev/null || {
	echo "sqlite3 CLI not found: skipped"
	exit 77
}

T0=$SECONDS
WAVES="[10%, 50%, 100%]"
F=

# dc ARGS...: deployclaw on fleet $F (stdout, stderr, exit code kept by `run`).
dc() { run "$DC" --config "$F/deployclaw.yaml" "$@"; }

# fail_here MESSAGE: fail from the script's own line (lib.sh's fail reports
# its caller's caller)
fail_here() { fail "$@"; }

section() { echo "== $* ($((SECONDS - T0))s)"; }

# ids FILE FROM TO: the state lines of tenants FROM..TO (numbers).
ids() { awk -v a="$(printf 't-%04d' "$2")" -v b="$(printf 't-%04d' "$3")" '$1 >= a && $1 <= b' "$1"; }

# json_check FILE PYTHON-EXPR...: each expression (over `d`, the parsed
# JSON) must be true; a false one or unparsable JSON fails the test.
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

make_templates

# expected history lines, from the checksums the run recorded in the ledger
std_history() {
	local v c h=""
	while read -r v c; do
		h="$h${h:+,}$v:$(grep -q "^$v\$" <<<"$ROLLED" && echo rolled_back || echo applied):$c"
	done < <(ledger_checksums "$F/audit/ledger.jsonl")
	echo "$h"
}
ROLLED=""

# ------------------------------------------------------------------------
section "1. happy path: 120 tenants, canary 1, waves $WAVES"
F=$TMP/happy
new_fleet "$F" 120 small std 1 "$WAVES" 0 2
dc apply
expect_rc 0
expect_out "120 tenants migrated to '0003', 0 failed"
H3=$(std_history)
CHECKS=$((CHECKS + 1))
[ "$(grep -o ':applied:[0-9a-f]\{64\}' <<<"$H3" | wc -l)" -eq 3 ] || fail_here "run_start lacks 3 checksums: '$H3'"
fleet_states "$F" std >happy.st
check_eq "tenants at 0003 with 3 applied history rows and the new schema" \
	"$(count_state happy.st "p1 x1 i1 t1 $H3")" 120
RUN=$(python3 -c 'import json,sys; print([json.loads(l)["run_id"] for l in open(sys.argv[1]) if "\"run_start\"" in l][-1])' "$F/audit/ledger.jsonl")
check_eq "history rows carry the run id and the last phase" \
	"$(sql "$(tenant_db "$F" 77)" "SELECT group_concat(run_id || ':' || phase, ' ') FROM deployclaw_history")" \
	"$RUN:contract $RUN:expand $RUN:expand"
# the data moved as the migrations say (a few tenants, each template)
for i in 1 2 3 4 60 120; do
	check_eq "t-$i: plans backfilled, totals computed" \
		"$(sql "$(tenant_db "$F" $i)" "SELECT (SELECT count(*) FROM accounts WHERE plan IS NULL OR plan != CASE WHEN seats > 10 THEN 'team' ELSE 'solo' END) || ' ' || (SELECT count(*) FROM orders WHERE total_cents IS NOT quantity * unit_price_cents) || ' ' || (SELECT count(*) > 2 FROM accounts)")" "0 0 1"
done
check_eq "PRAGMA table_info(accounts) of t-0007" \
	"$(sql "$(tenant_db "$F" 7)" "SELECT group_concat(name, ',') FROM pragma_table_info('accounts')")" \
	"id,email,seats,created_at,plan"
check_eq "integrity of t-0099" "$(sql "$(tenant_db "$F" 99)" "PRAGMA integrity_check")" ok

dc status
expect_rc 0
expect_out "every tenant is at '0003'"
CHECKS=$((CHECKS + 1))
grep -Eq '^ +0003 +store order totals +120$' "$OUT" || fail_here "status does not show 120 tenants at 0003"
"$DC" --config "$F/deployclaw.yaml" --json status >status.json 2>"$ERR"
json_check status.json 'd["tenants"] == 120' 'd["pending"] == 0' 'd["failed"] == 0' \
	'd["drifted"] == 0' '[v["tenants"] for v in d["versions"]] == [0, 0, 0, 120]' \
	'all(t["version"] == "0003" and t["pending"] == 0 for t in d["tenant_list"])' \
	'len(d["tenant_list"]) == 120'

dc audit verify
expect_rc 0
python3 - "$F/audit/ledger.jsonl" >happy.ledger <<'PY'
import json, sys
e = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
run = [x for x in e if x["event"] == "run_start"][-1]["run_id"]
e = [x for x in e if x["run_id"] == run]
ev = [x["event"] for x in e]
print("events", ev[0], ev[-1], ev.count("run_start"), ev.count("run_end"))
print("gates", ev.count("gate"), all(x["data"]["verdict"] == "pass" for x in e if x["event"] == "gate"))
print("waves", [x["data"]["tenants"] for x in e if x["event"] == "wave_start"], ev.count("wave_end"))
t = [o for x in e if x["event"] == "tenants" for o in x["data"]["outcomes"]]
print("tenants", len(t), len({x["tenant"] for x in t}), all(x["status"] == "succeeded" and x["to"] == "0003" and x["migrations"] == 3 for x in t))
end = [x["data"] for x in e if x["event"] == "run_end"][0]
print("end", end["status"], end["succeeded"], end["failed"], end["not_run"])
# each wave's tenants are decided before any of them is dispatched
# and its outcomes are recorded, batched into one signed `tenants` entry, before it ends
order = [x["event"] for x in e if x["event"] in ("wave_start", "tenants", "wave_end")]
print("order", order == ["wave_start", "tenants", "wave_end"] * 4, "tenant" not in ev)
PY
check_eq "ledger: run_start first, run_end last" "$(grep ^events happy.ledger)" "events run_start run_end 1 1"
check_eq "ledger: gate entries" "$(grep ^gates happy.ledger)" "gates 7 True"
check_eq "ledger: canary 1, then 10%, 50%, 100% of 120" "$(grep ^waves happy.ledger)" "waves [1, 11, 48, 60] 4"
check_eq "ledger: one tenant entry per tenant" "$(grep ^tenants happy.ledger)" "tenants 120 120 True"
check_eq "ledger: run_end" "$(grep ^end happy.ledger)" "end succeeded 120 0 0"
# a human `audit show` lists a batch as one `tenant` line per outcome; --tenant keeps only its own
dc audit show --tenant t-0042
expect_rc 0
check_eq "audit show --tenant t-0042: one tenant line, its own" \
	"$(awk '{ print $3, ($0 ~ /"tenant":"t-0042"/) }' "$OUT" | sort | uniq -c | awk '{ print $1, $2, $3 }')" \
	"1 tenant 1"
dc audit show --event tenants
expect_rc 0
check_eq "audit show --event tenants: 120 outcome lines" "$(grep -c '"status":"succeeded"' "$OUT")" 120
check_eq "ledger: wave_start, one tenants entry, wave_end per wave" "$(grep ^order happy.ledger)" "order True True"

# apply again: everything skipped, not a byte of any tenant changed
fleet_sums "$F" >happy.sums
"$DC" --config "$F/deployclaw.yaml" --json apply >again.json 2>"$ERR"
RC=$?
expect_rc 0
json_check again.json 'd["tenants"] == {"total": 120, "succeeded": 0, "failed": 0, "skipped": 120, "not_run": 0}'
dc apply
expect_rc 0
expect_out "nothing to do: all 120 tenants are at '0003'"
CHECKS=$((CHECKS + 1))
fleet_sums "$F" | cmp -s - happy.sums || fail_here "a second apply changed tenant files"
check_eq "second apply: no tenant entries in its ledger run" \
	"$(ledger_events "$F/audit/ledger.jsonl" | grep -c '^tenants\? ')" 0

# ------------------------------------------------------------------------
section "6. rollback: latest, then --to the first, then apply again"
# (on the fleet of case 1, at the target)
dc rollback
expect_rc 0
ROLLED=0003
fleet_states "$F" std >rb1.st
check_eq "0003 rolled back everywhere (column gone, history 'rolled_back')" \
	"$(count_state rb1.st "p1 x1 i1 t0 $(std_history)")" 120
dc rollback --to 0001
expect_rc 0
ROLLED=$'0002\n0003'
fleet_states "$F" std >rb2.st
check_eq "rolled back to 0001 everywhere (invoices gone, 0001 still applied)" \
	"$(count_state rb2.st "p1 x1 i0 t0 $(std_history)")" 120
check_eq "ledger: the rollback run" \
	"$(python3 -c 'import json,sys; print([json.loads(l)["data"]["direction"] for l in open(sys.argv[1]) if "\"run_start\"" in l][-1])' "$F/audit/ledger.jsonl")" rollback
dc status
expect_rc 0
CHECKS=$((CHECKS + 1))
grep -Eq '^ +0001 +add a plan to every account +120$' "$OUT" || fail_here "status does not show 120 tenants at 0001"
dc apply
expect_rc 0
expect_out "120 tenants migrated to '0003'"
ROLLED=""
fleet_states "$F" std >rb3.st
check_eq "apply after rollback reaches the target again" "$(count_state rb3.st "p1 x1 i1 t1 $H3")" 120
dc audit verify
expect_rc 0

# ------------------------------------------------------------------------
section "2. verify failure: only the 2 inconsistent tenants roll back, whole"
F=$TMP/verify
new_fleet "$F" 120 small std 1 "$WAVES" 5 2
make_bad "$(tenant_db "$F" 30)"
make_bad "$(tenant_db "$F" 90)"
dc apply
expect_rc 1
expect_err "2 tenants failed"
for t in t-0030 t-0090; do
	CHECKS=$((CHECKS + 1))
	grep -Eq "$t .*migrations/0003_order_totals\.yaml:11:5: verify assertion of '0003' is false" "$OUT" ||
		fail_here "the summary does not name $t with file:line:col and 'verify assertion'"
done
expect_out "118 tenants migrated to '0003', 2 failed"
H3=$(std_history)
fleet_states "$F" std >verify.st
check_eq "t-0030: no history, no schema change (0001 and 0002 rolled back too)" "$(state_of verify.st t-0030)" "p0 x0 i0 t0 -"
check_eq "t-0090: no history, no schema change" "$(state_of verify.st t-0090)" "p0 x0 i0 t0 -"
check_eq "the other 118 at the target" "$(count_state verify.st "p1 x1 i1 t1 $H3")" 118
check_eq "t-0030 data untouched" "$(sql "$(tenant_db "$F" 30)" "SELECT count(*) FROM orders WHERE quantity = -3")" 1
python3 - "$F/audit/ledger.jsonl" >verify.ledger <<'PY'
import json, sys
e = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
for d in [o for x in e if x["event"] == "tenants" for o in x["data"]["outcomes"]]:
    if d["status"] == "failed":
        print(d["tenant"], d["file"].split("/")[-1], d["line"], d["col"], "verify assertion" in d["error"])
PY
check_eq "ledger: the failed tenants with file, line, col" "$(cat verify.ledger)" \
	$'t-0030 0003_order_totals.yaml 11 5 True\nt-0090 0003_order_totals.yaml 11 5 True'
"$DC" --config "$F/deployclaw.yaml" --json status >vstatus.json 2>"$ERR"
json_check vstatus.json 'd["failed"] == 2' 'd["pending"] == 2' \
	'sorted(t["tenant"] for t in d["tenant_list"] if t["failed"]) == ["t-0030", "t-0090"]' \
	'all("verify assertion" in t["detail"] for t in d["tenant_list"] if t["failed"])'

# a rollback of a mixed fleet undoes 0003 where it is applied, nothing elsewhere
dc rollback
expect_rc 0
expect_out "118 tenants rolled back, 0 failed, 2 already up to date"
ROLLED=0003
fleet_states "$F" std >verify_rb.st
check_eq "mixed fleet rollback: 0003 undone on the 118" "$(count_state verify_rb.st "p1 x1 i1 t0 $(std_history)")" 118
check_eq "mixed fleet rollback: the 2 untouched" "$(count_state verify_rb.st "p0 x0 i0 t0 -")" 2
ROLLED=""

section "2b. verify failure after a committed non-transactional phase: compensated"
F=$TMP/verify2
new_fleet "$F" 40 heavy heavy 1 "[100%]" 5 2
# 0002's verify: no event may point at a missing account
sed -i 's/tier < 0$/tier < 0 OR EXISTS (SELECT 1 FROM events WHERE account_id NOT IN (SELECT id FROM accounts))/' \
	"$F/migrations/0002_account_tier.yaml"
"$DC" --config "$F/deployclaw.yaml" hash >/dev/null 2>&1
sql "$(tenant_db "$F" 17)" "INSERT INTO events (account_id, kind) VALUES (999, 'login')"
dc apply
expect_rc 1
CHECKS=$((CHECKS + 1))
grep -Eq "t-0017 .*migrations/0002_account_tier\.yaml:[0-9]+:[0-9]+: verify assertion of '0002' is false" "$OUT" ||
	fail_here "t-0017 not reported with the verify assertion's file:line:col"
expect_no_out "undoing its committed phases failed"
fleet_states "$F" heavy >verify2.st
C1=$(ledger_checksums "$F/audit/ledger.jsonl" | awk '$1 == "0001" { print $2 }')
check_eq "t-0017: the committed backfill's migration undone (column gone), recorded rolled back" \
	"$(state_of verify2.st t-0017)" "w0 x0 r0 b- 0001:rolled_back:$C1"
check_eq "the other 39 at the target" "$(count_state verify2.st "w1 x1 r1 b0 $(std_history)")" 39
# fixed, the tenant is applied on the next run
sql "$(tenant_db "$F" 17)" "DELETE FROM events WHERE account_id = 999"
dc apply
expect_rc 0
expect_out "1 tenant migrated to '0002', 0 failed, 39 already up to date"
fleet_states "$F" heavy >verify2b.st
check_eq "after the fix every tenant at the target" "$(count_state verify2b.st "w1 x1 r1 b0 $(std_history)")" 40

# ------------------------------------------------------------------------
section "3. failure budget: max_failures 0, bad tenants in wave 1"
F=$TMP/budget
new_fleet "$F" 120 small std 1 "$WAVES" 0 2
for i in 4 7 10; do make_bad "$(tenant_db "$F" $i)"; done
"$DC" --config "$F/deployclaw.yaml" --json apply >budget.json 2>"$ERR"
RC=$?
expect_rc 1
expect_err "the failure budget stopped the rollout"
json_check budget.json \
	'set(d) == {"task", "timestamp", "run_id", "agent", "execution_log", "safety_gates_status", "tenants", "estimated_completion"}' \
	'all(isinstance(d[k], str) and d[k] for k in ("task", "timestamp", "run_id", "agent", "estimated_completion"))' \
	'len(d["execution_log"]) >= 5' \
	'all(set(s) == {"step", "action", "detail", "status", "duration_ms"} for s in d["execution_log"])' \
	'all(isinstance(s["duration_ms"], int) and s["status"] in ("success", "failed", "warning", "skipped") for s in d["execution_log"])' \
	'[s["step"] for s in d["execution_log"]][:4] == ["analyze_service_topology", "generate_migration_plan", "validate_migration_prerequisites", "validate_safety_gates"]' \
	'any(s["step"] == "execute_migration_with_rollback" and s["status"] == "failed" and "failure budget" in s["detail"] for s in d["execution_log"])' \
	'all(v["status"] == "passed" for v in d["safety_gates_status"].values())' \
	'{"total", "succeeded", "failed", "skipped"} <= set(d["tenants"])' \
	'd["tenants"]["total"] == 120' \
	'1 <= d["tenants"]["failed"] <= 3' \
	'd["tenants"]["not_run"] >= 108' \
	'd["tenants"]["succeeded"] + d["tenants"]["failed"] + d["tenants"]["not_run"] == 120'
fleet_states "$F" std >budget.st
check_eq "later waves untouched (no history table, no schema change)" \
	"$(ids budget.st 13 120 | awk '{ $1 = ""; print }' | sort -u)" " p0 x0 i0 t0 -"
check_eq "the canary reached the target" "$(state_of budget.st t-0001)" "p1 x1 i1 t1 $(std_history)"
for i in 4 7 10; do
	check_eq "bad t-$i left as it was" "$(ids budget.st $i $i | cut -d' ' -f2-)" "p0 x0 i0 t0 -"
done
python3 - "$F/audit/ledger.jsonl" >budget.ledger <<'PY'
import json, sys
e = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
print("waves", sum(x["event"] == "wave_start" for x in e),
      [x["data"]["over_budget"] for x in e if x["event"] == "wave_end"])
end = [x["data"] for x in e if x["event"] == "run_end"][-1]
print("end", end["status"], end["not_run"] >= 108)
PY
check_eq "ledger: no wave after the one over budget" "$(grep ^waves budget.ledger)" "waves 2 [False, True]"
check_eq "ledger: run_end failed with tenants not run" "$(grep ^end budget.ledger)" "end failed True"

# ------------------------------------------------------------------------
section "4. SIGKILL at random points, then resume"
F=$TMP/kill
NKILL=200
HEAVY_BATCH=250 new_fleet "$F" $NKILL heavy heavy 1 "$WAVES" 0 2
# How long this build takes to plan and to migrate the whole fleet (a
# sanitizer build is several times slower, CI machines faster than this one):
# a probe fleet of the same shape is migrated once, uninterrupted. The kills
# land after planning, each within 1/48..1/16 of the full run: twelve of them
# together reach at most three quarters of the fleet, so every round is
# killed mid-run however fast or slow the machine is.
t0=$(date +%s%N)
"$DC" -q --config "$F/deployclaw.yaml" apply --dry-run >/dev/null 2>&1
PLAN_MS=$((($(date +%s%N) - t0) / 1000000))
HEAVY_BATCH=250 new_fleet "$TMP/probe" $NKILL heavy heavy 1 "$WAVES" 0 2
t0=$(date +%s%N)
"$DC" -q --config "$TMP/probe/deployclaw.yaml" apply -j 2 >/dev/null 2>&1 ||
	fail_here "the probe fleet did not migrate"
RUN_MS=$((($(date +%s%N) - t0) / 1000000 - PLAN_MS))
[ "$RUN_MS" -ge 48 ] || RUN_MS=48
rm -rf "$TMP/probe"
echo "  planning takes ${PLAN_MS}ms here, migrating the fleet ${RUN_MS}ms"
kills=0
finished=0
for round in $(seq 1 12); do
	"$DC" --config "$F/deployclaw.yaml" apply -j 2 >"kill$round.out" 2>&1 &
	pid=$!
	ms=$((PLAN_MS + RUN_MS / 48 + RANDOM % (RUN_MS / 24 + 1)))
	sleep "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"
	kill -9 "$pid" 2>/dev/null
	{ wait "$pid"; } 2>/dev/null
	rc=$?
	if [ "$rc" -eq 137 ]; then
		kills=$((kills + 1))
	else
		finished=$((finished + 1))
		echo "  round $round: apply ended by itself (exit $rc) before the kill at ${ms}ms"
	fi
done
echo "  $kills runs killed"
CHECKS=$((CHECKS + 1))
[ "$kills" -ge 9 ] || fail_here "only $kills of 12 runs were killed mid-run"
fleet_states "$F" heavy >kill_mid.st
echo "  after the kills: $(grep -c '0002:applied' kill_mid.st) tenants done, $(grep -c 'partial' kill_mid.st) partial"
dc apply
expect_rc 0
expect_out_either "0 failed" "nothing to do"  # the last killed run may have finished
dc apply
expect_rc 0
expect_out "nothing to do: all $NKILL tenants are at '0002'"
HH=$(std_history)
fleet_states "$F" heavy >kill.st
check_eq "every tenant at the target exactly once, weights right, schema complete" \
	"$(count_state kill.st "w1 x1 r1 b0 $HH")" $NKILL
[ "$(count_state kill.st "w1 x1 r1 b0 $HH")" -eq $NKILL ] ||
	awk '{ $1 = ""; print }' kill.st | sort | uniq -c | head >&2 # what the others are
check_eq "history rows per tenant (one per version)" \
	"$(for db in "$F"/tenants/t-00{01,50,99}.db "$F"/tenants/t-0{150,199,200}.db; do
		sql "$db" "SELECT count(*) || '/' || count(DISTINCT version) FROM deployclaw_history"
	done | sort -u)" "2/2"
check_eq "no hot journal left behind" "$(find "$F/tenants" -name '*-journal' | wc -l)" 0
dc audit verify
expect_rc 0
python3 - "$F/audit/ledger.jsonl" >kill.ledger <<'PY'
import json, sys
e = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
started = [x["run_id"] for x in e if x["event"] == "run_start"]
ended = {x["run_id"] for x in e if x["event"] == "run_end"}
interrupted = [x["data"]["interrupted_run"] for x in e if x["event"] == "run_interrupted"]
open_runs = [r for r in started if r not in ended]
print("interrupted", len(interrupted) > 0 or not open_runs, sorted(open_runs) == sorted(interrupted), len(set(interrupted)) == len(interrupted))
PY
check_eq "ledger: every killed run recorded as run_interrupted, once" "$(cat kill.ledger)" "interrupted True True True"
dc status
expect_rc 0
expect_out "every tenant is at '0002'"

section "4b. SIGKILL during a rollback, then resume"
kills=0
for round in 1 2 3 4; do
	"$DC" --config "$F/deployclaw.yaml" rollback --to 0001 -j 2 >"rbkill$round.out" 2>&1 &
	pid=$!
	ms=$((PLAN_MS + RUN_MS / 48 + RANDOM % (RUN_MS / 16 + 1)))
	sleep "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"
	kill -9 "$pid" 2>/dev/null
	{ wait "$pid"; } 2>/dev/null
	[ $? -eq 137 ] && kills=$((kills + 1))
done
echo "  $kills rollbacks killed"
# --to: a re-run of a plain `rollback` would undo one more migration on the
# tenants the killed runs finished (it undoes each tenant's latest)
dc rollback --to 0001
expect_rc 0
ROLLED=0002
fleet_states "$F" heavy >rbkill.st
check_eq "0002 rolled back exactly once everywhere" "$(count_state rbkill.st "w1 x1 r0 b0 $(std_history)")" $NKILL
ROLLED=""
dc audit verify
expect_rc 0

section "4c. SIGTERM: a graceful stop, nothing half-applied, then resume"
F=$TMP/term
HEAVY_BATCH=100 new_fleet "$F" 100 heavy heavy 1 "[100%]" 0 2
"$DC" --config "$F/deployclaw.yaml" apply >term.out 2>term.err &
pid=$!
# the signal handler is in place once the rollout started: its first wave is in the ledger
for _ in $(seq 1000); do
	grep -q '"event":"wave_start"' "$F/audit/ledger.jsonl" && break
	sleep 0.01
done
# at once: on a fast machine the 99 tenants after the canary take well under a second
kill -TERM "$pid"
wait "$pid"
RC=$?
expect_rc 1
CHECKS=$((CHECKS + 1))
grep -q "not run (interrupted)" term.out || fail_here "the summary does not say the run was interrupted: $(tail -3 term.out)"
check_eq "ledger: the run ended as interrupted" \
	"$(python3 -c 'import json,sys; print([json.loads(l)["data"]["status"] for l in open(sys.argv[1]) if "\"run_end\"" in l][-1])' "$F/audit/ledger.jsonl")" interrupted
fleet_states "$F" heavy >term.st
check_eq "no tenant left partial or half-applied" \
	"$(awk '{ $1 = ""; print }' term.st | sed 's/:[0-9a-f]\{64\}//g' | grep -Ev '^ (w0 x0 r0 b- (-|0001:rolled_back)|w1 x1 r1 b0 0001:applied,0002:applied)$' | sort | uniq -c)" ""
dc apply
expect_rc 0
fleet_states "$F" heavy >term2.st
check_eq "resumed to the target" "$(count_state term2.st "w1 x1 r1 b0 $(std_history)")" 100

# ------------------------------------------------------------------------
section "5. two applies at once on one fleet"
F=$TMP/conc
new_fleet "$F" 120 heavy heavy 1 "[100%]" 120 2
"$DC" --config "$F/deployclaw.yaml" apply >c1.out 2>c1.err &
p1=$!
"$DC" --config "$F/deployclaw.yaml" apply >c2.out 2>c2.err &
p2=$!
wait "$p1"
r1=$?
wait "$p2"
r2=$?
echo "  concurrent applies exited $r1 and $r2"
for r in $r1 $r2; do
	CHECKS=$((CHECKS + 1))
	[ "$r" -eq 0 ] || [ "$r" -eq 1 ] || fail_here "a concurrent apply exited $r"
done
CHECKS=$((CHECKS + 1))
! grep -qi "duplicate column" c1.out c1.err c2.out c2.err || fail_here "a tenant was applied twice (duplicate column)"
for k in 1 2; do
	CHECKS=$((CHECKS + 1))
	if grep -q "failed" "c$k.err"; then
		grep -q "locked by another deployclaw process" "c$k.out" ||
			fail_here "apply $k failed, but not on a lock: $(head -c 600 "c$k.out")"
	fi
done
check_eq "the two runs migrated each tenant once between them" \
	"$(cat c1.out c2.out | sed -n "s/^\([0-9]*\) tenants\? migrated to '0002'.*/\1/p" | awk '{ n += $1 } END { print n + 0 }')" 120
dc apply
expect_rc 0
HH=$(std_history)
fleet_states "$F" heavy >conc.st
check_eq "complete after the concurrent runs" "$(count_state conc.st "w1 x1 r1 b0 $HH")" 120
dc audit verify
expect_rc 0

# a tenant another process holds: a clear lock error names the tenant
F=$TMP/lock
LOCK_TIMEOUT=300ms new_fleet "$F" 100 small std 1 "$WAVES" 5 2
hold_lock "$F" t-0005 "$TMP/lock.ready" &
holder=$!
wait_file "$TMP/lock.ready"
dc apply
expect_rc 1
expect_out "t-0005"
expect_out "tenant 't-0005' is locked by another deployclaw process (pid $holder); waited 300ms"
expect_out "99 tenants migrated to '0003', 1 failed"
kill "$holder" 2>/dev/null
wait "$holder" 2>/dev/null
fleet_states "$F" std >lock.st
check_eq "the locked tenant untouched" "$(state_of lock.st t-0005)" "p0 x0 i0 t0 -"
dc apply
expect_rc 0
expect_out "1 tenant migrated to '0003'"

# two processes wait for the same tenant; the one served second must see
# what the first did (its view from before the lock is stale)
F=$TMP/lock2
LOCK_TIMEOUT=10s new_fleet "$F" 100 small std 1 "$WAVES" 0 1
hold_lock "$F" t-0005 "$TMP/lock2.ready" &
holder=$!
wait_file "$TMP/lock2.ready"
"$DC" --config "$F/deployclaw.yaml" apply --tenant t-0005 >w1.out 2>&1 &
w1=$!
"$DC" --config "$F/deployclaw.yaml" apply --tenant t-0005 >w2.out 2>&1 &
w2=$!
sleep 1 # both have read the tenant and wait for its lock
kill "$holder"
wait "$holder" 2>/dev/null
wait "$w1"
r1=$?
wait "$w2"
r2=$?
check_eq "two applies served one after the other on one tenant: exit codes" "$r1 $r2" "0 0"
CHECKS=$((CHECKS + 1))
! grep -q "duplicate column" w1.out w2.out || fail_here "the tenant was applied twice: $(grep -h 'duplicate' w1.out w2.out)"
check_eq "one migrated it, the other found it done" \
	"$(cat w1.out w2.out | grep -Eo '^[01] tenants? migrated to .0003., 0 failed, [01] already up to date' | sort | tr '\n' '|')" \
	"0 tenants migrated to '0003', 0 failed, 1 already up to date|1 tenant migrated to '0003', 0 failed, 0 already up to date|"
fleet_states "$F" std >lock2.st
check_eq "the tenant at the target once" "$(state_of lock2.st t-0005)" "p1 x1 i1 t1 $(std_history)"

# ------------------------------------------------------------------------
section "7. edited migration: exit 4 before any tenant is touched"
F=$TMP/edit
new_fleet "$F" 100 small std 1 "$WAVES" 0 2
dc apply --to 0001
expect_rc 0
fleet_states "$F" std >edit_before.st
fleet_sums "$F" >edit.sums
sed -i 's/amount_cents >= 0/amount_cents > 0/' "$F/migrations/0002_create_invoices.yaml"
dc apply
expect_rc 4
expect_err "0002_create_invoices.yaml"
expect_no_out "migrated"
CHECKS=$((CHECKS + 1))
fleet_sums "$F" | cmp -s - edit.sums || fail_here "an apply refused for an edited migration changed tenant files"
fleet_states "$F" std >edit_after.st
CHECKS=$((CHECKS + 1))
cmp -s edit_before.st edit_after.st || fail_here "history or schema changed after a refused apply"

# ------------------------------------------------------------------------
section "8. tampered ledger: exit 4, no tenant touched"
F=$TMP/tamper
new_fleet "$F" 100 small std 1 "$WAVES" 0 2
dc apply --to 0002
expect_rc 0
fleet_sums "$F" >tamper.sums
python3 - "$F/audit/ledger.jsonl" <<'PY'
import sys
p = sys.argv[1]
lines = open(p, encoding="utf-8").read().split("\n")
for i, l in enumerate(lines):
    t = '"status":"succeeded","tenant":"t-0042"'
    if '"event":"tenants"' in l and t in l:
        lines[i] = l.replace(t, t.replace("succeeded", "skipped"))
        break
else:
    sys.exit("t-0042's outcome is not in the ledger")
open(p, "w", encoding="utf-8").write("\n".join(lines))
PY
dc apply
expect_rc 4
expect_err "ledger"
expect_no_out "migrated"
CHECKS=$((CHECKS + 1))
fleet_sums "$F" | cmp -s - tamper.sums || fail_here "an apply refused for a tampered ledger changed tenant files"
dc audit verify
expect_rc 4
expect_err "seq"

# ------------------------------------------------------------------------
section "9. a tenant that is not a database, one that is read-only"
F=$TMP/bad
new_fleet "$F" 100 small std 1 "$WAVES" 10 2
head -c 20000 /dev/urandom >"$(tenant_db "$F" 20)"
chmod 0444 "$(tenant_db "$F" 50)"
fleet_sums "$F" >bad.sums
dc apply
expect_rc 1
expect_out "98 tenants migrated to '0003', 2 failed"
CHECKS=$((CHECKS + 1))
grep -E "t-0020 .*t-0020\.db.*(file is not a database|not a database)" "$OUT" >/dev/null ||
	fail_here "the garbage tenant is not reported as 'not a database'"
CHECKS=$((CHECKS + 1))
grep -E "t-0050 .*t-0050\.db.*the database file is read-only" "$OUT" >/dev/null ||
	fail_here "the 0444 tenant is not reported as read-only"
check_eq "the garbage and read-only files are unchanged" \
	"$(fleet_sums "$F" | grep -E 't-00(20|50)\.db')" "$(grep -E 't-00(20|50)\.db' bad.sums)"
fleet_states "$F" std >bad.st
check_eq "the others proceed" "$(count_state bad.st "p1 x1 i1 t1 $(std_history)")" 98
check_eq "the read-only tenant has no history" "$(state_of bad.st t-0050)" "p0 x0 i0 t0 -"
check_eq "the garbage tenant is unreadable" "$(state_of bad.st t-0020)" "ERR -"

# ------------------------------------------------------------------------
section "10. --dry-run, --tenant"
F=$TMP/dry
new_fleet "$F" 100 small std 1 "$WAVES" 0 2
fleet_sums "$F" >dry.sums
cp "$F/audit/ledger.jsonl" dry.ledger
dc apply --dry-run
expect_rc 0
expect_out "plan (dry run, nothing changed): 100 of 100 tenants need work, target '0003'"
CHECKS=$((CHECKS + 1))
fleet_sums "$F" | cmp -s - dry.sums || fail_here "--dry-run changed tenant files"
CHECKS=$((CHECKS + 1))
cmp -s dry.ledger "$F/audit/ledger.jsonl" || fail_here "--dry-run wrote to the ledger"
dc apply --tenant t-0042
expect_rc 0
expect_out "1 tenant migrated to '0003'"
fleet_states "$F" std >dry.st
check_eq "--tenant: the named tenant at the target" "$(state_of dry.st t-0042)" "p1 x1 i1 t1 $(std_history)"
check_eq "--tenant: the other 99 untouched" "$(count_state dry.st "p0 x0 i0 t0 -")" 99
check_eq "--tenant: the other files unchanged" "$(fleet_sums "$F" | grep -v t-0042)" "$(grep -v t-0042 dry.sums)"
cp "$F/audit/ledger.jsonl" dry.ledger
dc apply --tenant nope
expect_rc 2
expect_err "no tenant 'nope' in the fleet"
dc apply --tenant t-0O42
expect_rc 2
expect_err "no tenant 't-0O42' in the fleet (did you mean 't-0042'?)"
dc apply --tenant t-0O99
expect_rc 2
expect_err "no tenant 't-0O99' in the fleet (did you mean 't-0099'?)"
CHECKS=$((CHECKS + 1))
cmp -s dry.ledger "$F/audit/ledger.jsonl" || fail_here "an unknown --tenant wrote to the ledger"
check_eq "an unknown --tenant changes nothing" "$(fleet_sums "$F" | grep -v t-0042)" "$(grep -v t-0042 dry.sums)"

# ------------------------------------------------------------------------
section "11. rollout.backup: a copy kept for the failed tenant only"
F=$TMP/backup
BACKUP=true new_fleet "$F" 100 small std 1 "$WAVES" 5 2
make_bad "$(tenant_db "$F" 30)"
dc apply
expect_rc 1
expect_out "99 tenants migrated to '0003', 1 failed"
check_eq "backups left" "$(cd "$F/tenants" && ls -a | grep deployclaw-backup)" "t-0030.db.deployclaw-backup"
B=$F/tenants/t-0030.db.deployclaw-backup
check_eq "the backup is the tenant before the run" \
	"$(sql "$B" "PRAGMA integrity_check; SELECT count(*) FROM pragma_table_info('accounts') WHERE name = 'plan'; SELECT count(*) FROM orders WHERE quantity = -3")" \
	$'ok\n0\n1'
check_eq "the backup is not a tenant" "$(grep -c deployclaw-backup <(fleet_states "$F" std))" 0

section "done"
finish
