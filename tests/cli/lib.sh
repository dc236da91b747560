# lib.sh — assertions for the CLI tests. Each test script sources this with
# the binary as $1, runs commands through `run`, and checks what they did.
set -u
DC=$(realpath "$1")
TMP=$(mktemp -d "${TMPDIR:-/tmp}/dc-cli.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
export NO_COLOR=1
FAILS=0
CHECKS=0
OUT="$TMP/.stdout"
ERR="$TMP/.stderr"
RC=0

# run CMD...: runs it, keeping stdout, stderr and the exit code.
run() {
	"$@" >"$OUT" 2>"$ERR"
	RC=$?
}

fail() {
	FAILS=$((FAILS + 1))
	echo "FAIL (line ${BASH_LINENO[1]}): $*" >&2
	echo "  stdout: $(head -c 2000 "$OUT")" >&2
	echo "  stderr: $(head -c 2000 "$ERR")" >&2
}

expect_rc() {
	CHECKS=$((CHECKS + 1))
	[ "$RC" -eq "$1" ] || fail "exit code $RC, expected $1"
}

expect_out() {
	CHECKS=$((CHECKS + 1))
	grep -qF -- "$1" "$OUT" || fail "stdout lacks '$1'"
}

# expect_out_either A B: stdout has A or B (a resume that may find nothing left to do).
expect_out_either() {
	CHECKS=$((CHECKS + 1))
	grep -qF -- "$1" "$OUT" || grep -qF -- "$2" "$OUT" || fail "stdout lacks both '$1' and '$2'"
}

expect_err() {
	CHECKS=$((CHECKS + 1))
	grep -qF -- "$1" "$ERR" || fail "stderr lacks '$1'"
}

# expect_err_is TEXT: stderr is exactly TEXT (one line, its newline aside).
expect_err_is() {
	CHECKS=$((CHECKS + 1))
	[ "$(cat "$ERR")" = "$1" ] || fail "stderr is not '$1'"
}

expect_no_out() {
	CHECKS=$((CHECKS + 1))
	! grep -qF -- "$1" "$OUT" || fail "stdout has '$1'"
}

expect_no_err() {
	CHECKS=$((CHECKS + 1))
	! grep -qF -- "$1" "$ERR" || fail "stderr has '$1'"
}

expect_empty_err() {
	CHECKS=$((CHECKS + 1))
	[ ! -s "$ERR" ] || fail "stderr is not empty"
}

expect_file() {
	CHECKS=$((CHECKS + 1))
	[ -e "$1" ] || fail "file '$1' missing"
}

finish() {
	echo "$CHECKS checks, $FAILS failed"
	[ "$FAILS" -eq 0 ]
}
