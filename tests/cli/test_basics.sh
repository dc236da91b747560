# The command skeleton: help, version, suggestions, usage errors, exit codes.
. "$(dirname "$0")/lib.sh"
cd "$TMP"

run "$DC" --version
expect_rc 0
expect_out "deployclaw 0.1.0"

run "$DC"
expect_rc 2
expect_err "usage: deployclaw"

run "$DC" help
expect_rc 0
expect_out "commands:"
expect_out "audit"
expect_out "exit codes:"

run "$DC" --help
expect_rc 0
expect_out "usage: deployclaw"

run "$DC" hash --help
expect_rc 0
expect_out "usage: deployclaw hash [options]"
expect_out "--check"
expect_out "global options:"
expect_out "--config FILE"

run "$DC" help audit verify
expect_rc 0
expect_out "usage: deployclaw audit verify"
expect_out "--expect-head SEQ:HASH"

run "$DC" audit --help
expect_rc 0
expect_out "keygen"
expect_out "export"

run "$DC" audit
expect_rc 2
expect_err "usage: deployclaw audit <command>"

# unknown commands and options suggest the closest name
run "$DC" hsah
expect_rc 2
expect_err "deployclaw: error: 'hsah' is not a deployclaw command (did you mean 'hash'?)"

run "$DC" audit verfy
expect_rc 2
expect_err "'verfy' is not a deployclaw audit command (did you mean 'verify'?)"

run "$DC" hash --chekc
expect_rc 2
expect_err "unknown option '--chekc' for 'deployclaw hash' (did you mean '--check'?)"

run "$DC" --jsn hash
expect_rc 2
expect_err_is "deployclaw: error: unknown option '--jsn' (did you mean '--json'?)"

# a short option is named as typed; one before the command is a global option
run "$DC" hash -c
expect_rc 2
expect_err_is "deployclaw: error: unknown option '-c' for 'deployclaw hash'; see 'deployclaw hash --help'"
run "$DC" audit verify -p key.pub
expect_rc 2
expect_err_is "deployclaw: error: unknown option '-p' for 'deployclaw audit verify'; see 'deployclaw audit verify --help'"
run "$DC" hash -check
expect_rc 2
expect_err_is "deployclaw: error: unknown option '-c' for 'deployclaw hash' (did you mean '--check'?)"
run "$DC" -x help
expect_rc 2
expect_err_is "deployclaw: error: unknown option '-x'; see 'deployclaw --help'"
run "$DC" --bogus help
expect_rc 2
expect_err_is "deployclaw: error: unknown option '--bogus'; see 'deployclaw --help'"
run "$DC" --confg=secret.yaml help
expect_rc 2
expect_err_is "deployclaw: error: unknown option '--confg' (did you mean '--config'?)"
run "$DC" -qx help
expect_rc 2
expect_err_is "deployclaw: error: option '--quiet' takes no value"

run "$DC" hash extra-arg
expect_rc 2
expect_err "unexpected argument 'extra-arg'"

run "$DC" audit export --format
expect_rc 2
expect_err "option '--format' needs a value (FORMAT)"

run "$DC" hash --check=yes
expect_rc 2
expect_err "option '--check' takes no value"

# no config here: a clear message, usage exit code
run "$DC" hash
expect_rc 2
expect_err "deployclaw: error: no 'deployclaw.yaml' here: run 'deployclaw init' or pass --config FILE"

run "$DC" --config missing.yaml config show
expect_rc 2
expect_err "missing.yaml"

# the worker pool's budget: a bad value is refused by name, a good one runs
for bad in 0 1025 two 4x ""; do
	run env DEPLOYCLAW_THREADS="$bad" "$DC" help
	expect_rc 2
	expect_err "DEPLOYCLAW_THREADS='$bad': expected a whole number from 1 to 1024"
done
run env DEPLOYCLAW_THREADS=3 "$DC" help
expect_rc 0

# a write error on stdout is detected
if [ -w /dev/full ]; then
	run sh -c "\"$DC\" help >/dev/full"
	expect_rc 1
	expect_err "write error on standard output"
fi

finish
