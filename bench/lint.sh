#!/bin/sh
# Lint throughput: statements per second of `deployclaw lint` against squawk
# (npm squawk-cli, installed into bench/squawk/) on the same input, in the
# same run, over
#   - one file of 100,000 statements, and
#   - 1,000 files of 100 statements each (golang-migrate names, so the same
#     files are a migrations folder for deployclaw and plain .sql for squawk).
# The DDL is generated deterministically (a Park-Miller generator in awk,
# seed below): CREATE TABLE, ADD COLUMN (with and without defaults, NOT
# NULL), CREATE INDEX (plain, concurrent, unique, partial, expression), ADD
# CONSTRAINT (FK, CHECK, UNIQUE, NOT VALID), VALIDATE, SET NOT NULL, ALTER
# COLUMN TYPE, RENAME, DROP INDEX, UPDATE/INSERT/DELETE backfills, COMMENT,
# SET lock_timeout, CREATE FUNCTION with a dollar-quoted body.
#
#   bench/lint.sh [--runs N] [--statements N] [--files N]
#
# Each measurement is the best of N runs (3) of the whole command; both tools
# write JSON (squawk --reporter json, deployclaw --format json) to /dev/null,
# so both do the same work: parse, lint, serialise every finding. Prints both
# rates and the ratio deployclaw / squawk.
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
RUNS=3
STMTS=100000
FILES=1000
SEED=20240601
while [ $# -gt 0 ]; do
	case "$1" in
	--runs) RUNS=$2; shift 2 ;;
	--statements) STMTS=$2; shift 2 ;;
	--files) FILES=$2; shift 2 ;;
	*) echo "usage: bench/lint.sh [--runs N] [--statements N] [--files N]" >&2; exit 2 ;;
	esac
done
PER_FILE=$((STMTS / FILES))

# squawk: installed on first use
SQUAWK=$ROOT/bench/squawk/node_modules/.bin/squawk
if [ ! -x "$SQUAWK" ]; then
	npm install --prefix "$ROOT/bench/squawk" --no-audit --no-fund squawk-cli >/dev/null
fi
"$SQUAWK" --version >/dev/null 2>&1 || { echo "bench/lint.sh: squawk does not run here" >&2; exit 1; }

if [ ! -d build-bench ]; then
	meson setup build-bench --buildtype=release >/dev/null
fi
ninja -C build-bench src/cli/deployclaw >/dev/null
DC=$ROOT/build-bench/src/cli/deployclaw
HAVE_DC_LINT=1
if ! "$DC" lint --help >/dev/null 2>&1; then
	HAVE_DC_LINT=0
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/dc-lint-bench.XXXXXX")
trap 'rm -rf "$dir"' EXIT INT TERM

# gen N SEED: N statements on stdout, separated by blank lines.
gen() {
	awk -v n="$1" -v seed="$2" '
	function rnd(k) { seed = (seed * 16807) % 2147483647; return seed % k }
	function pick(s,   a, c) { c = split(s, a, " "); return a[rnd(c) + 1] }
	BEGIN {
		types = "bigint integer text varchar(200) timestamptz timestamp boolean jsonb uuid numeric(12,2) smallint date"
		tables = 0
		for (i = 0; i < n; i++) {
			k = rnd(100)
			t = "t" (tables > 0 ? rnd(tables) : 0)
			c = "c" rnd(40)
			if (tables == 0 || k < 8) {
				t = "t" tables++
				ncol = 3 + rnd(8)
				s = "CREATE TABLE IF NOT EXISTS app." t " (\n    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY"
				for (j = 0; j < ncol; j++)
					s = s ",\n    c" j " " pick(types) (rnd(3) == 0 ? " NOT NULL" : "") (rnd(5) == 0 ? " DEFAULT 0" : "")
				if (rnd(3) == 0 && tables > 1)
					s = s ",\n    parent_id bigint REFERENCES app.t" rnd(tables - 1) " (id)"
				s = s "\n)"
			} else if (k < 24) {
				d = pick("none none now() 0 gen_random_uuid() random() '\''x'\'' '\''{}'\''::jsonb")
				s = "ALTER TABLE app." t " ADD COLUMN " c "_" i " " pick(types) \
				    (d == "none" ? "" : " DEFAULT " d) (rnd(4) == 0 ? " NOT NULL" : "")
			} else if (k < 36) {
				s = "CREATE " (rnd(5) == 0 ? "UNIQUE " : "") "INDEX " (rnd(2) ? "CONCURRENTLY " : "") \
				    "idx_" t "_" i " ON app." t " (" (rnd(4) == 0 ? "lower(" c "::text)" : c) \
				    (rnd(3) == 0 ? ", id" : "") ")" (rnd(6) == 0 ? " WHERE " c " IS NOT NULL" : "")
			} else if (k < 46) {
				r = rnd(4)
				if (r == 0)
					s = "ALTER TABLE app." t " ADD CONSTRAINT fk_" i " FOREIGN KEY (" c ") REFERENCES app.t" rnd(tables) " (id)" (rnd(2) ? " NOT VALID" : "")
				else if (r == 1)
					s = "ALTER TABLE app." t " ADD CONSTRAINT ck_" i " CHECK (" c " IS NOT NULL AND length(" c "::text) < " 10 + rnd(200) ")" (rnd(2) ? " NOT VALID" : "")
				else if (r == 2)
					s = "ALTER TABLE app." t " ADD CONSTRAINT uq_" i " UNIQUE (" c ")"
				else
					s = "ALTER TABLE app." t " VALIDATE CONSTRAINT ck_" rnd(i + 1)
			} else if (k < 60) {
				s = "UPDATE app." t " SET " c " = " c " + " rnd(100) " WHERE id IN (SELECT id FROM app." t " WHERE " c " IS NULL ORDER BY id LIMIT " 100 * (1 + rnd(50)) ")"
			} else if (k < 66) {
				s = "INSERT INTO app." t " (" c ", c" rnd(40) ") VALUES (" rnd(1000) ", '\''v" i "'\'') ON CONFLICT DO NOTHING"
			} else if (k < 70) {
				s = "DELETE FROM app." t " WHERE id < " rnd(100000) " AND " c " IS NULL"
			} else if (k < 76) {
				s = "ALTER TABLE app." t " ALTER COLUMN " c " SET NOT NULL"
			} else if (k < 80) {
				s = "ALTER TABLE app." t " ALTER COLUMN " c " TYPE " pick(types) (rnd(3) == 0 ? " USING " c "::text::" pick("bigint text") : "")
			} else if (k < 83) {
				s = "ALTER TABLE app." t " RENAME COLUMN " c " TO " c "_old_" i
			} else if (k < 86) {
				s = "DROP INDEX " (rnd(2) ? "CONCURRENTLY " : "") "IF EXISTS app.idx_" t "_" rnd(i + 1)
			} else if (k < 90) {
				s = "COMMENT ON COLUMN app." t "." c " IS '\''column " i "; see the docs'\''"
			} else if (k < 93) {
				s = "SET lock_timeout = '\''" (1 + rnd(5)) "s'\''"
			} else if (k < 96) {
				s = "ALTER TABLE app." t " ALTER COLUMN " c " SET DEFAULT " rnd(10)
			} else {
				s = "CREATE OR REPLACE FUNCTION app.touch_" i "() RETURNS trigger LANGUAGE plpgsql AS $fn$\nBEGIN\n    NEW." c " := now(); -- keep ; inside the body\n    RETURN NEW;\nEND\n$fn$"
			}
			print s ";\n"
		}
	}'
}

mkdir -p "$dir/one" "$dir/many"
gen "$STMTS" "$SEED" >"$dir/one/1_big.up.sql"
i=1
while [ "$i" -le "$FILES" ]; do
	gen "$PER_FILE" $((SEED + i)) >"$dir/many/$(printf '%04d' "$i")_m.up.sql"
	i=$((i + 1))
done

# best RUNS CMD...: the best wall time in seconds of CMD (output discarded;
# a non-zero exit is expected: both tools exit 1 on findings, not 2).
best() {
	b=""
	r=0
	while [ "$r" -lt "$RUNS" ]; do
		t0=$(date +%s.%N)
		set +e
		"$@" >/dev/null 2>"$dir/stderr"
		rc=$?
		set -e
		t1=$(date +%s.%N)
		if [ "$rc" -gt 1 ]; then
			echo "bench/lint.sh: '$*' failed ($rc):" >&2
			head -5 "$dir/stderr" >&2
			exit 1
		fi
		b=$(echo "$t0 $t1 $b" | awk '{ d = $2 - $1; if (NF == 3 && $3 < d) d = $3; printf "%.4f", d }')
		r=$((r + 1))
	done
	echo "$b"
}

rate() { echo "$1 $2" | awk '{ printf "%.0f", $1 / $2 }'; }
ratio() { echo "$1 $2" | awk '{ printf "%.2f", $1 / $2 }'; }

echo "lint bench on $(uname -m), $(nproc) CPUs; $STMTS statements; best of $RUNS; squawk $("$SQUAWK" --version | awk '{print $2}')"

sq_one=$(best "$SQUAWK" --reporter json "$dir/one/1_big.up.sql")
sq_many=$(best "$SQUAWK" --reporter json "$dir"/many/*.sql)
printf '%-34s %10s s %12s stmt/s\n' "squawk, 1 file" "$sq_one" "$(rate "$STMTS" "$sq_one")"
printf '%-34s %10s s %12s stmt/s\n' "squawk, $FILES files" "$sq_many" "$(rate "$STMTS" "$sq_many")"

if [ "$HAVE_DC_LINT" -eq 0 ]; then
	echo "deployclaw lint is not available in this build: squawk only"
	exit 0
fi
dc_one=$(best "$DC" lint --format json "$dir/one/1_big.up.sql")
dc_many=$(best "$DC" lint --format json "$dir"/many/*.sql)
printf '%-34s %10s s %12s stmt/s\n' "deployclaw lint, 1 file" "$dc_one" "$(rate "$STMTS" "$dc_one")"
printf '%-34s %10s s %12s stmt/s\n' "deployclaw lint, $FILES files" "$dc_many" "$(rate "$STMTS" "$dc_many")"
echo "ratio deployclaw / squawk: 1 file $(ratio "$sq_one" "$dc_one")x, $FILES files $(ratio "$sq_many" "$dc_many")x"
