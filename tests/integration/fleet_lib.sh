# fleet_lib.sh — builds SQLite fleets for the integration tests and reads
# their state back with the sqlite3 CLI. Sourced after tests/cli/lib.sh.
#
# A fleet is a folder: deployclaw.yaml, migrations/ (+ deployclaw.sum),
# tenants/t-NNNN.db, audit/ (signing key, ledger). Tenants are copies of a
# few template databases made once per test run (`make_templates`).

SQLITE=${SQLITE:-sqlite3}
TPL="$TMP/templates"

# sql DB SQL...: runs SQL with the sqlite3 CLI (errors to stderr).
sql() {
	local db=$1
	shift
	"$SQLITE" -batch -noheader "$db" "$@"
}

# The tenants' own schema: accounts with orders, and an event log.
TENANT_SCHEMA="
CREATE TABLE accounts (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE,
  seats INTEGER NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE orders (id INTEGER PRIMARY KEY,
  account_id INTEGER NOT NULL REFERENCES accounts (id), sku TEXT NOT NULL,
  quantity INTEGER NOT NULL, unit_price_cents INTEGER NOT NULL);
CREATE INDEX orders_account ON orders (account_id);
CREATE TABLE events (id INTEGER PRIMARY KEY, account_id INTEGER NOT NULL,
  kind TEXT NOT NULL, payload TEXT);"

# make_template FILE NACCOUNTS NEVENTS
make_template() {
	sql "$1" "PRAGMA journal_mode=DELETE; BEGIN; $TENANT_SCHEMA
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $2)
  INSERT INTO accounts SELECT i, 'user' || i || '@example.com', 1 + (i * 7) % 25,
    '2026-01-15T09:00:00Z' FROM n;
INSERT INTO orders (account_id, sku, quantity, unit_price_cents)
  SELECT id, 'gadget', 1 + id % 5, 100 + id * 37 FROM accounts;
INSERT INTO orders (account_id, sku, quantity, unit_price_cents)
  SELECT id, 'widget', 2 + id % 3, 250 + id * 11 FROM accounts WHERE id % 2 = 0;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $3)
  INSERT INTO events SELECT i, 1 + i % $2,
    CASE i % 3 WHEN 0 THEN 'login' WHEN 1 THEN 'purchase' ELSE 'refund' END,
    printf('{\"n\":%d}', i) FROM n;
COMMIT;" >/dev/null
}

make_templates() {
	local v
	mkdir -p "$TPL"
	for v in 0 1 2 3 4; do
		make_template "$TPL/small$v.db" $((3 + 2 * v)) $((10 + v))
		make_template "$TPL/heavy$v.db" $((5 + v)) $((2000 + 100 * v))
	done
}

# write_config FLEET CANARY WAVES MAX_FAILURES PARALLEL
# (LOCK_TIMEOUT and BACKUP from the environment)
write_config() {
	cat >"$1/deployclaw.yaml" <<YAML
engine: sqlite
migrations: migrations
tenancy:
  model: database
  glob: tenants/*.db
gates:
  lock_timeout: ${LOCK_TIMEOUT:-2s}
  require_down: true
rollout:
  canary: $2
  waves: $3
  max_failures: $4
  parallel: $5
  backup: ${BACKUP:-false}
audit:
  ledger: audit/ledger.jsonl
  key: audit/signing.key
YAML
}

# The standard set: 0001 in three phases with a batched backfill and a
# verify, 0002 a new table, 0003 a column whose verify catches bad orders.
write_std_migrations() {
	local m=$1/migrations
	mkdir -p "$m"
	cat >"$m/0001_add_plan.yaml" <<'YAML'
version: "0001"
name: add a plan to every account
audit: critical
phases:
  - name: expand
    up: ALTER TABLE accounts ADD COLUMN plan TEXT;
    down: ALTER TABLE accounts DROP COLUMN plan;
  - name: backfill
    batch: { rows: 2 }
    up: |
      UPDATE accounts SET plan = CASE WHEN seats > 10 THEN 'team' ELSE 'solo' END
       WHERE id IN (SELECT id FROM accounts WHERE plan IS NULL LIMIT 2);
  - name: contract
    up: CREATE INDEX accounts_plan ON accounts (plan);
    down: DROP INDEX accounts_plan;
verify:
  - SELECT count(*) = 0 FROM accounts WHERE plan IS NULL
YAML
	cat >"$m/0002_create_invoices.yaml" <<'YAML'
version: "0002"
name: create invoices
phases:
  - name: expand
    up: |
      CREATE TABLE invoices (
        id INTEGER PRIMARY KEY,
        account_id INTEGER NOT NULL REFERENCES accounts (id),
        amount_cents INTEGER NOT NULL CHECK (amount_cents >= 0)
      );
      CREATE INDEX invoices_account ON invoices (account_id);
    down: DROP TABLE invoices;
verify:
  - SELECT count(*) = 0 FROM invoices
YAML
	cat >"$m/0003_order_totals.yaml" <<'YAML'
version: "0003"
name: store order totals
phases:
  - name: expand
    up: |
      ALTER TABLE orders ADD COLUMN total_cents INTEGER;
      UPDATE orders SET total_cents = quantity * unit_price_cents;
    down: ALTER TABLE orders DROP COLUMN total_cents;
verify:
  # a negative total means the tenant holds inconsistent orders
  - SELECT count(*) = 0 FROM orders WHERE total_cents IS NULL OR total_cents < 0
YAML
}

# The heavy set (crash tests): 0001's backfill commits batch by batch over
# a few thousand events (a non-transactional phase), 0002 is transactional.
write_heavy_migrations() {
	local m=$1/migrations
	mkdir -p "$m"
	cat >"$m/0001_event_weight.yaml" <<YAML
version: "0001"
name: weigh every event
phases:
  - name: expand
    up: ALTER TABLE events ADD COLUMN weight INTEGER;
    down: ALTER TABLE events DROP COLUMN weight;
  - name: backfill
    transaction: false
    batch: { rows: ${HEAVY_BATCH:-500} }
    up: |
      UPDATE events SET weight = length(kind) * 10 + id % 7
       WHERE id IN (SELECT id FROM events WHERE weight IS NULL LIMIT ${HEAVY_BATCH:-500});
  - name: contract
    up: CREATE INDEX events_weight ON events (weight);
    down: DROP INDEX events_weight;
verify:
  - SELECT count(*) = 0 FROM events WHERE weight IS NULL
YAML
	cat >"$m/0002_account_tier.yaml" <<'YAML'
version: "0002"
name: tier every account
phases:
  - name: expand
    up: |
      ALTER TABLE accounts ADD COLUMN tier INTEGER NOT NULL DEFAULT 0;
      UPDATE accounts SET tier = (SELECT count(*) FROM events e WHERE e.account_id = accounts.id) / 100;
    down: ALTER TABLE accounts DROP COLUMN tier;
verify:
  - SELECT count(*) = 0 FROM accounts WHERE tier < 0
YAML
}

# new_fleet DIR NTENANTS KIND(small|heavy) MIGSET(std|heavy) CANARY WAVES MAX_FAILURES PARALLEL
# Creates the fleet, its signing key and its sum (the ledger's first entry).
# Process starts are slow on CI machines: one python3 copies every tenant.
new_fleet() {
	local f=$1
	rm -rf "$f"
	mkdir -p "$f/tenants" "$f/audit"
	python3 -c '
import shutil, sys
tpl, dst, n, kind = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
for i in range(1, n + 1):
    shutil.copyfile(f"{tpl}/{kind}{i % 5}.db", f"{dst}/t-{i:04d}.db")
' "$TPL" "$f/tenants" "$2" "$3"
	"write_$4_migrations" "$f"
	write_config "$f" "$5" "$6" "$7" "$8"
	"$DC" --config "$f/deployclaw.yaml" audit keygen >/dev/null 2>&1 &&
		"$DC" --config "$f/deployclaw.yaml" hash >/dev/null 2>&1 ||
		{
			echo "cannot set up fleet '$f'" >&2
			exit 99
		}
}

tenant_db() { printf '%s/tenants/t-%04d.db' "$1" "$2"; }

# make_bad DB: one order with a negative quantity (0003's verify fails).
make_bad() { sql "$1" "UPDATE orders SET quantity = -3 WHERE id = (SELECT min(id) FROM orders)"; }

# Schema markers per migration set, over the attached tenant `t`.
#   std:   p = accounts.plan columns, x = accounts_plan index,
#          i = invoices table, t = orders.total_cents columns
#   heavy: w = events.weight columns, x = events_weight index,
#          r = accounts.tier columns, b = events with a missing or wrong weight
STD_MARKERS="'p' || (SELECT count(*) FROM pragma_table_info('accounts', 't') WHERE name = 'plan')
 || ' x' || (SELECT count(*) FROM t.sqlite_schema WHERE type = 'index' AND name = 'accounts_plan')
 || ' i' || (SELECT count(*) FROM t.sqlite_schema WHERE type = 'table' AND name = 'invoices')
 || ' t' || (SELECT count(*) FROM pragma_table_info('orders', 't') WHERE name = 'total_cents')"
HEAVY_MARKERS="'w' || (SELECT count(*) FROM pragma_table_info('events', 't') WHERE name = 'weight')
 || ' x' || (SELECT count(*) FROM t.sqlite_schema WHERE type = 'index' AND name = 'events_weight')
 || ' r' || (SELECT count(*) FROM pragma_table_info('accounts', 't') WHERE name = 'tier')"
# only valid once events.weight exists (else the statement fails and prints nothing)
HEAVY_EXTRA="SELECT 'B ' || count(*) FROM t.events WHERE weight IS NULL OR weight != length(kind) * 10 + id % 7;"

# fleet_states FLEET std|heavy > FILE: one line per tenant, read by ONE
# sqlite3 process that attaches each tenant in turn:
#   t-NNNN <markers> [b<N>] <history: version:status:checksum,... or "-">
# A tenant that cannot be read shows "ERR" for its markers.
fleet_states() {
	local db id markers extra=""
	if [ "$2" = std ]; then
		markers=$STD_MARKERS
	else
		markers=$HEAVY_MARKERS
		extra=$HEAVY_EXTRA
	fi
	for db in "$1"/tenants/*.db; do
		id=${db##*/}
		printf ".print @@ %s\nATTACH '%s' AS t;\nSELECT 'S ' || %s;\n%s\n" \
			"${id%.db}" "${db//\'/\'\'}" "$markers" "$extra"
		printf "SELECT 'H ' || coalesce((SELECT group_concat(version || ':' || status || ':' || checksum, ',')
 FROM (SELECT * FROM t.deployclaw_history ORDER BY version)), '-');\nDETACH t;\n"
	done | "$SQLITE" -batch -noheader 2>/dev/null | awk -v extra="${extra:+1}" '
		function emit() { if (id != "") print id, s (extra && s != "ERR" ? " b" (b == "" ? "-" : b) : ""), h }
		/^@@ / { emit(); id = $2; s = "ERR"; h = "-"; b = ""; next }
		/^S / { s = substr($0, 3); next }
		/^B / { b = $2; next }
		/^H / { h = $2; next }
		END { emit() }'
}

# history_of DB: version:status:checksum,... or "-" without a history table.
history_of() {
	local h
	h=$(sql "$1" "SELECT group_concat(version || ':' || status || ':' || checksum, ',')
  FROM (SELECT * FROM deployclaw_history ORDER BY version)" 2>/dev/null) || h=-
	echo "${h:--}"
}

# count_state FILE STATE: tenants whose state is exactly STATE.
count_state() { awk -v s="$2" '{ $1 = ""; sub(/^ /, ""); if ($0 == s) n++ } END { print n + 0 }' "$1"; }

# state_of FILE ID
state_of() { awk -v id="$2" '$1 == id { $1 = ""; sub(/^ /, ""); print }' "$1"; }

# fleet_sums FLEET: name, mtime, size and sha256 of every tenant file.
fleet_sums() {
	(cd "$1/tenants" && stat -c '%n %y %s' -- * && sha256sum -- *) | sort
}

# hold_lock FLEET TENANT READY: holds TENANT's deployclaw lock (the byte of
# the folder's lock file deployclaw locks, see src/engine/sqlite/locks.c) until
# killed, as another deployclaw process would; touches READY once it holds it.
hold_lock() {
	exec python3 - "$1/tenants" "$2.db" "$3" <<'PY'
import fcntl, os, sys, time
folder, base, ready = os.path.realpath(sys.argv[1]), sys.argv[2], sys.argv[3]
def fnv1a(h, s):
    for b in s.encode():
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h
h = fnv1a(fnv1a(fnv1a(0xcbf29ce484222325, folder), "/"), base)
h ^= h >> 33
fd = os.open(os.path.join(folder, ".deployclaw.lock"), os.O_RDWR | os.O_CREAT, 0o644)
fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, h & 0x3FFFFFFFFFFFFFFF, os.SEEK_SET)
open(ready, "w").close()
time.sleep(300)
PY
}

# wait_file FILE: up to 10 s for FILE to appear.
wait_file() {
	local i
	for ((i = 0; i < 200; i++)); do
		[ -e "$1" ] && return 0
		sleep 0.05
	done
	echo "timed out waiting for '$1'" >&2
	return 1
}

# checksums LEDGER: "version checksum" per migration, from the last run_start.
ledger_checksums() {
	python3 - "$1" <<'PY'
import json, sys
last = None
for line in open(sys.argv[1], encoding="utf-8"):
    e = json.loads(line)
    if e["event"] == "run_start":
        last = e
for m in last["data"]["migrations"]:
    print(m["version"], m["checksum"])
PY
}

# ledger_events LEDGER [last|all]: "event count" for the last run (default) or all.
ledger_events() {
	python3 - "$1" "${2:-last}" <<'PY'
import collections, json, sys
entries = [json.loads(line) for line in open(sys.argv[1], encoding="utf-8")]
if sys.argv[2] == "last":
    runs = [e["run_id"] for e in entries if e["event"] == "run_start"]
    entries = [e for e in entries if runs and e["run_id"] == runs[-1]]
for ev, n in sorted(collections.Counter(e["event"] for e in entries).items()):
    print(ev, n)
PY
}

# ledger_isolation LEDGER: the last run_end's tenant_isolation, as
# "verdict gates=... checked=N refused=N".
ledger_isolation() {
	python3 - "$1" <<'PY'
import json, sys
last = None
for line in open(sys.argv[1], encoding="utf-8"):
    e = json.loads(line)
    if e["event"] == "run_end":
        last = e["data"].get("tenant_isolation")
if last:
    print("%s gates=%s checked=%d refused=%d" % (last["verdict"], last["gates"],
          last["tenants_checked"], last["tenants_refused"]))
PY
}

# check CONDITION-DESCRIPTION ACTUAL EXPECTED
check_eq() {
	CHECKS=$((CHECKS + 1))
	[ "$2" = "$3" ] || fail "$1: got '$2', expected '$3'"
}

check_true() {
	CHECKS=$((CHECKS + 1))
	eval "$2" || fail "$1 (false: $2)"
}
