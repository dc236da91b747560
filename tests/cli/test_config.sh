# config show: resolved values, secrets redacted in YAML and JSON, and config
# errors named by file:line:col and key path (exit 2), never with a password.
. "$(dirname "$0")/lib.sh"
cd "$TMP"
unset TENANT_PATTERN US_DSN DC_NOT_SET

# expect_no_secret: the password of the fixtures is on neither stream.
expect_no_secret() {
	expect_no_out "secret"
	expect_no_err "secret"
}

# defaults filled in for what the file leaves out
run "$DC" init proj
expect_rc 0
cd proj
run "$DC" config show
expect_rc 0
expect_empty_err
expect_out "engine: sqlite"
expect_out '  glob: "tenants/*.db"'
expect_out "  statement_timeout: 5m"
expect_out "  waves: [10%, 50%, 100%]"
expect_out "  retries: 3"
expect_out '  key: "audit/signing.key"'
cd ..

# a file in another folder: paths resolved against it, ${VAR} expanded, every
# form of password in a DSN redacted
mkdir sub
cat > sub/deployclaw.yaml <<'YAML'
engine: postgres
migrations: db/migrations
tenancy:
  model: schema
  pattern: "${TENANT_PATTERN:-tenant_%}"
shards:
  - name: eu-1
    primary: "host=10.0.0.5 dbname=app user=deploy password=secret"
    replicas: ["postgres://deploy:secret@10.0.0.6:5432/app?sslmode=require", "host=h2 password='secret' dbname=app"]
    parallel: 4
  - name: us-1
    primary: "${US_DSN}"
gates:
  lock_timeout: 1500ms
rollout:
  waves: [5, 50%, 100%]
audit:
  ledger: /var/tmp/dc-ledger.jsonl
YAML
export US_DSN="postgresql://u:secret@us.example/app?password=secret&sslmode=disable"
run "$DC" --config sub/deployclaw.yaml config show
expect_rc 0
expect_empty_err
expect_no_secret
expect_out "engine: postgres"
expect_out 'migrations: "sub/db/migrations"'
expect_out '  pattern: "tenant_%"'
expect_out '    primary: "host=10.0.0.5 dbname=app user=deploy password=********"'
expect_out '      - "postgres://deploy:********@10.0.0.6:5432/app?sslmode=require"'
expect_out '      - "host=h2 password=******** dbname=app"'
expect_out '    primary: "postgresql://u:********@us.example/app?password=********&sslmode=disable"'
expect_out "    parallel: 4"
expect_out "  lock_timeout: 1500ms"
expect_out "  statement_timeout: 5m"
expect_out "  waves: [5, 50%, 100%]"
expect_out '  ledger: "/var/tmp/dc-ledger.jsonl"'
expect_out '  key: "sub/audit/signing.key"'

# a set variable wins over the default
TENANT_PATTERN='acct_%' run "$DC" --config sub/deployclaw.yaml config show
expect_rc 0
expect_out '  pattern: "acct_%"'

# --json: the same values, as JSON, redacted too
run "$DC" --json --config sub/deployclaw.yaml config show
expect_rc 0
expect_empty_err
expect_no_secret
CHECKS=$((CHECKS + 1))
python3 - "$OUT" <<'PY' || fail "--json config show is not the resolved config"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["engine"] == "postgres", d["engine"]
assert d["migrations"] == "sub/db/migrations", d["migrations"]
assert d["tenancy"] == {"model": "schema", "pattern": "tenant_%"}, d["tenancy"]
eu, us = d["shards"]
assert eu["name"] == "eu-1" and eu["parallel"] == 4, eu
assert eu["primary"] == "host=10.0.0.5 dbname=app user=deploy password=********", eu
assert eu["replicas"] == ["postgres://deploy:********@10.0.0.6:5432/app?sslmode=require",
                          "host=h2 password=******** dbname=app"], eu["replicas"]
assert us["name"] == "us-1" and us["replicas"] == [], us
assert "********" in us["primary"], us
assert d["gates"]["lock_timeout"] == "1500ms", d["gates"]
assert d["gates"]["require_down"] is True, d["gates"]
assert d["rollout"]["waves"] == [5, "50%", "100%"], d["rollout"]
assert d["audit"] == {"ledger": "/var/tmp/dc-ledger.jsonl", "key": "sub/audit/signing.key"}, d["audit"]
PY

# config errors: exit 2, file:line:col and the key path, no output, no password
# bad NAME LINE...: writes NAME.yaml from the remaining lines (a postgres fleet
# whose DSN holds a password) and runs config show on it, in YAML and JSON.
bad() {
	local name=$1
	shift
	{
		printf 'engine: postgres\ntenancy:\n  model: schema\n  pattern: "t_%%"\nshards:\n'
		printf '  - name: a\n    primary: "host=a password=secret"\n'
		printf '%s\n' "$@"
	} >"$name.yaml"
	run "$DC" --json --config "$name.yaml" config show
	expect_rc 2
	expect_no_out "{"
	expect_no_secret
	run "$DC" --config "$name.yaml" config show
	expect_rc 2
	expect_no_secret
	CHECKS=$((CHECKS + 1))
	[ ! -s "$OUT" ] || fail "a config that does not load printed something"
}

bad unknown_key '    paralel: 3'
expect_err_is "deployclaw: error: unknown_key.yaml:8:5: shards[0].paralel: unknown key (did you mean 'parallel'?)"
bad wrong_type '    replicas: "postgres://u:secret@h/db"'
expect_err_is "deployclaw: error: wrong_type.yaml:8:15: shards[0].replicas: expected a sequence, got a scalar"
bad missing_key '  - primary: "host=b password=secret"'
expect_err_is "deployclaw: error: missing_key.yaml:8:5: shards[1]: missing required key 'name'"
bad out_of_range '    parallel: 0'
expect_err_is "deployclaw: error: out_of_range.yaml:8:15: shards[0].parallel: 0 is out of range (1..1024)"
bad undefined_var '  - name: b' '    primary: "host=b password=secret user=${DC_NOT_SET}"'
expect_err_is "deployclaw: error: undefined_var.yaml:9:43: shards[1].primary: undefined environment variable 'DC_NOT_SET' (set it, or write \${DC_NOT_SET:-default})"
bad duplicate_shard '  - name: a' '    primary: "host=b password=secret"'
expect_err_is "deployclaw: error: duplicate_shard.yaml:8:11: shards[1].name: duplicate shard name 'a' (first at shards[0], line 6)"
bad bad_duration 'gates:' '  lock_timeout: 2'
expect_err_is "deployclaw: error: bad_duration.yaml:9:17: gates.lock_timeout: invalid duration '2' (expected a number and a unit: 500ms, 2s, 5m, 1h)"
bad bad_percent 'rollout:' '  waves: [150%]'
expect_err_is "deployclaw: error: bad_percent.yaml:9:11: rollout.waves[0]: invalid percentage '150%' (expected 1%..100%)"
bad duplicate_key 'engine: sqlite'
expect_err_is "deployclaw: error: duplicate_key.yaml:8:1: engine: duplicate key (first at line 1, column 1)"
bad syntax 'rollout: a: b'
expect_err_is "deployclaw: error: syntax.yaml:8:11: syntax error: invalid nested block mapping on the same line"

# config without a subcommand is usage; a typo gets the closest name
run "$DC" config
expect_rc 2
expect_err "usage: deployclaw config <command>"
run "$DC" config shw
expect_rc 2
expect_err_is "deployclaw: error: 'shw' is not a deployclaw config command (did you mean 'show'?)"

finish
