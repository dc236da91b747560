#!/bin/sh
# The work behind the SQLite fleet ratio, in instructions: callgrind, which
# counts what each thread executes whatever the disk and the neighbours do
# (bench/sqlite_fleet.sh measures time; this measures work).
#
#   bench/sqlite_work.sh [-n TENANTS] [-c CONFIG]
#
# On a fleet of TENANTS (default 500) made as bench/sqlite_fleet.sh makes it
# (bench/lib/sqlite_fleet.sh), runs under `valgrind --tool=callgrind
# --separate-threads=yes`, each on its own copy of the fleet:
#
#   baseline           sqlite_baseline apply -j 1 (the plain loop)
#   baseline+mimalloc  the same with LD_PRELOAD=libmimalloc.so.2, when
#                      installed: what the allocator alone gives a plain loop
#   deployclaw         deployclaw -q --config CONFIG.yaml apply -j 1 (CONFIG:
#                      checks, the default gates, or nochecks)
#
# and prints, for each, the instructions of every thread and their total,
# per tenant too, and deployclaw's total / the baseline's. deployclaw's threads
# are named by the function they spend most in that says what they are (the
# run's worker, the prefetch thread, the planning pass, the ledger writer,
# main). Threads come from the worker pool and are reused, so a thread that
# planned and then migrated is named by whichever did more, and main runs
# one of the run's workers itself. DEPLOYCLAW= and BASELINE= pick
# other builds (no build step when both are given). Takes ~1 minute at 500.
set -eu
cd "$(dirname "$0")/.."
. bench/lib/sqlite_fleet.sh

n=500
cfg=checks
while [ $# -gt 0 ]; do
	case $1 in
	-n) n=$2; shift 2 ;;
	-c) cfg=$2; shift 2 ;;
	*) echo "usage: $0 [-n TENANTS] [-c checks|nochecks]" >&2; exit 2 ;;
	esac
done
if ! command -v valgrind >/dev/null; then
	echo "sqlite_work: skipped: needs valgrind (apt-get install valgrind)"
	exit 0
fi

dc=${DEPLOYCLAW:-$(pwd)/build-bench/src/cli/deployclaw}
base=${BASELINE:-$(pwd)/build-bench/bench/sqlite_baseline}
if [ -z "${DEPLOYCLAW:-}" ] || [ -z "${BASELINE:-}" ]; then
	[ -d build-bench ] || meson setup build-bench --buildtype=release >/dev/null
	ninja -C build-bench src/cli/deployclaw bench/sqlite_baseline >/dev/null
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/dc-sqlite-work.XXXXXX")
trap 'rm -rf "$dir"' EXIT INT TERM
make_fleet "$dir/fleet" "$n" "$dc" "$base"

# The per-thread totals of one callgrind run: "THREAD-NAME INSTRUCTIONS" lines.
threads() { # OUT-PREFIX
	for f in "$1"-[0-9]*; do
		total=$(sed -n 's/^summary: //p' "$f")
		name=$(callgrind_annotate --inclusive=yes "$f" 2>/dev/null |
			grep -o -m1 -E '[^_a-z](wave_worker|prefetch_main|plan_worker|ledger_writer|run_part|main) ' |
			sed 's/^.//' |
			tr -d ' ')
		echo "${name:-other} $total"
	done
}

measure() { # LABEL ENV COMMAND...: on a fresh copy; ENV is VAR=VALUE or -
	label=$1 envset=$2
	shift 2
	[ "$envset" = - ] && envset=DC_UNUSED=1
	rm -rf "$dir/run"
	cp -a "$dir/fleet" "$dir/run"
	(cd "$dir/run" && env "$envset" valgrind --tool=callgrind --separate-threads=yes \
		--callgrind-out-file="$dir/cg.$label" "$@" >/dev/null 2>"$dir/vg.$label") || {
		echo "sqlite_work: $label failed:" >&2
		tail -5 "$dir/vg.$label" >&2
		exit 1
	}
	threads "$dir/cg.$label" | awk -v l="$label" -v n="$n" -v out="$dir/total.$label" '
		{ printf "%-18s %-14s %14.0f\n", l, $1, $2; t += $2 }
		END { printf "%-18s %-14s %14.0f  (%.3f M per tenant)\n", l, "total", t, t / n / 1e6
		      print t > out }'
}

echo "sqlite_work: $n tenants, SQLite $(pkg-config --modversion sqlite3 2>/dev/null || echo '?'), config $cfg"
printf '%-18s %-14s %14s\n' run thread instructions
measure baseline - "$base" apply tenants -j 1
mi=/usr/lib/$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)/libmimalloc.so.2
if [ -e "$mi" ]; then
	measure baseline+mimalloc LD_PRELOAD="$mi" "$base" apply tenants -j 1
fi
measure deployclaw - "$dc" -q --config "$cfg.yaml" apply -j 1
awk -v d="$(cat "$dir/total.deployclaw")" -v b="$(cat "$dir/total.baseline")" \
	'BEGIN { printf "deployclaw / baseline: %.2f\n", d / b }'
