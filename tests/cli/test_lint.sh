# lint and plan: exit codes, formats, ignores, config severities.
. "$(dirname "$0")/lib.sh"
cd "$TMP"

# a clean file
printf 'SET lock_timeout = %s;\nCREATE INDEX CONCURRENTLY IF NOT EXISTS i ON users (email);\n' "'2s'" > clean.sql
run "$DC" lint clean.sql
expect_rc 0
expect_out "no findings"

# warnings only: exit 0, compiler-style output with the source line and a caret
printf 'SELECT 1;\nCREATE INDEX idx ON users (email);\n' > warn.sql
run "$DC" lint warn.sql
expect_rc 0
expect_out "warn.sql:2:1: warning [DC101 create-index-non-concurrent]: CREATE INDEX 'idx' on 'users' blocks writes"
expect_out "    2 | CREATE INDEX idx ON users (email);"
expect_out "      | ^"
expect_out "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx ON users (email);"
expect_out "0 errors, 1 warning, 0 notes"

# an error: exit 1
printf 'ALTER TABLE users ADD COLUMN flag boolean NOT NULL;\n' > err.sql
run "$DC" lint err.sql warn.sql
expect_rc 1
expect_out "err.sql:1:30: error [DC211 add-required-column]"
expect_out "1 error, 1 warning"

# a syntax error is a finding with its position
printf 'SELECT 1;\nALTER TABLE t ADD COLUMN;\n' > syntax.sql
run "$DC" lint syntax.sql
expect_rc 1
expect_out "syntax.sql:2:25: error [DC000 syntax-error]"

# ignore comments: a used one silences, an unused one is reported
printf -- '-- deployclaw:ignore DC101\nCREATE INDEX idx ON users (email);\n' > ign.sql
run "$DC" lint ign.sql
expect_rc 0
expect_out "no findings"
printf -- '-- deployclaw:ignore DC202\nCREATE INDEX CONCURRENTLY IF NOT EXISTS i ON t (a);\n' > unused.sql
run "$DC" lint unused.sql
expect_rc 0
expect_out "unused.sql:1:4: warning [DC001 unused-ignore]"

# formats
run "$DC" lint --format json err.sql
expect_rc 1
expect_out '"rule": "DC211"'
expect_out '"errors": 1'
CHECKS=$((CHECKS + 1))
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["findings"][0]["line"] == 1' "$OUT" || fail "json does not parse"
run "$DC" lint --format sarif err.sql
expect_rc 1
expect_out '"version": "2.1.0"'
expect_out '"ruleId": "DC211"'
run "$DC" lint --format github err.sql warn.sql
expect_rc 1
expect_out "::error file=err.sql,line=1,col=30,title=DC211 add-required-column::adding 'flag' NOT NULL"
expect_out "::warning file=warn.sql,line=2,col=1,title=DC101 create-index-non-concurrent::"
run "$DC" lint --format yaml err.sql
expect_rc 2
expect_err "unknown format 'yaml'"
run "$DC" lint missing.sql
expect_rc 2
expect_err "'missing.sql' does not exist"

# a native migration folder: downs checked, positions in the YAML file
mkdir -p proj/migrations
cat > proj/migrations/0001_add.yaml <<'YAML'
version: "0001"
name: add column
phases:
  - name: expand
    up: |
      ALTER TABLE users ADD COLUMN nickname text;
      CREATE INDEX users_nick ON users (nickname);
YAML
cat > proj/deployclaw.yaml <<'YAML'
engine: postgres
tenancy:
  model: schema
  pattern: "tenant_%"
shards:
  - name: eu-1
    primary: "host=/nonexistent dbname=app"
lint:
  rules:
    DC101: error
YAML
cd proj
# the configured migrations are checked against deployclaw.sum first
run "$DC" lint
expect_rc 2
expect_err "no 'deployclaw.sum' in 'migrations': run 'deployclaw hash' to create it"
expect_no_out "DC101"
run "$DC" plan
expect_rc 2
expect_err "run 'deployclaw hash' to create it"
"$DC" -q audit keygen && "$DC" -q hash || fail "cannot hash the project"
run "$DC" lint
expect_rc 1
expect_out "migrations/0001_add.yaml:7:7: error [DC101 create-index-non-concurrent]"
expect_out "[DC502 missing-down]: phase 'expand' changes the schema but has no down"
expect_out "ALTER TABLE users DROP COLUMN nickname;"

# schema tenancy: another schema is an isolation error
printf 'ALTER TABLE public.users ADD COLUMN a text;\n' > ../foreign.sql
run "$DC" lint ../foreign.sql
expect_rc 1
expect_out "[DC501 foreign-schema]"

# an unknown rule in the config is a config error with its position
sed -i 's/DC101: error/DC1O1: error/' deployclaw.yaml
run "$DC" lint
expect_rc 2
expect_err "deployclaw.yaml:10:5: lint.rules.DC1O1: unknown rule (did you mean 'DC101'?)"
sed -i 's/DC1O1: error/DC101: off/' deployclaw.yaml

# plan: locks, effects and the risk summary
run "$DC" plan
expect_rc 0
expect_out "0001  add column"
expect_out "phase expand (transactional)"
expect_out "ACCESS EXCLUSIVE on users (table): blocks reads and writes"
expect_out "SHARE on users (table): blocks writes with a full scan"
expect_out "risk: MEDIUM (blocks reads); strongest lock ACCESS EXCLUSIVE"
run "$DC" --json plan
expect_rc 0
expect_out '"lock": "SHARE"'
expect_out '"effect": "scan"'
run "$DC" plan 0002
expect_rc 2
expect_err "no migration '0002'"

# a migration that leaves its tenant is HIGH risk whatever its locks
mkdir -p ../escape/migrations
cp deployclaw.yaml audit -r ../escape/ 2>/dev/null
printf 'UPDATE tenant_0003.users SET name = name;\n' >../escape/migrations/0001_x.up.sql
printf 'SELECT 1;\n' >../escape/migrations/0001_x.down.sql
(cd ../escape && "$DC" -q hash) || fail "cannot hash the escape project"
run "$DC" --config ../escape/deployclaw.yaml plan
expect_rc 0
expect_out "risk: HIGH (leaves the tenant: the isolation gate refuses it, see deployclaw lint)"
run "$DC" --config ../escape/deployclaw.yaml --json plan
expect_out '"leaves_tenant": 1'

# an edited or added migration: lint and plan refuse before reading it (exit 4)
sed -i 's/nickname text/nickname varchar/' migrations/0001_add.yaml
run "$DC" lint
expect_rc 4
expect_err "deployclaw.sum does not match the migrations: edited '0001_add.yaml'"
expect_no_out "DC101"
run "$DC" plan
expect_rc 4
expect_err "edited '0001_add.yaml'"
expect_no_out "0001  add column"
run "$DC" plan --safe 0001
expect_rc 4
expect_err "edited '0001_add.yaml'"
# an explicit path is the author's file, not hashed yet: exempt
run "$DC" lint migrations/0001_add.yaml
expect_rc 1
expect_out "[DC502 missing-down]"
run "$DC" plan --safe migrations/0001_add.yaml
expect_rc 0
expect_out "CREATE INDEX CONCURRENTLY"
"$DC" -q hash || fail "cannot rehash"
printf 'version: "0002"\nphases:\n  - name: a\n    up: SELECT 1;\n' > migrations/0002_more.yaml
run "$DC" lint
expect_rc 4
expect_err "added '0002_more.yaml'"
run "$DC" plan
expect_rc 4
expect_err "added '0002_more.yaml'"
rm migrations/0002_more.yaml

# plan --safe -o into the migrations folder says the sum needs writing again
run "$DC" plan --safe 0001 -o migrations/0001_add.yaml
expect_rc 0
expect_err "note: 'migrations/0001_add.yaml' is in the migrations folder: run 'deployclaw hash' to update deployclaw.sum"
expect_file migrations/0001_add.yaml
run "$DC" plan --safe 0001
expect_rc 4
expect_err "edited '0001_add.yaml'"
run "$DC" plan --safe 0001 -o ../safe.yaml
expect_rc 4
"$DC" -q hash || fail "cannot rehash"
run "$DC" plan --safe 0001 -o ../safe.yaml
expect_rc 0
expect_no_err "run 'deployclaw hash'"
run "$DC" plan
expect_rc 0

finish
