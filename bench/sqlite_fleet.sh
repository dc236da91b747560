#!/bin/sh
# deployclaw apply against a plain-SQLite baseline on a fleet of SQLite files.
#
#   bench/sqlite_fleet.sh [-n TENANTS] [-r REPEATS] [-j "1 2"] [-c "checks nochecks"]
#
# The defaults (10,000 tenants, 3 repeats, -j 1 and -j 2) take ~15-25 minutes
# on a 2-core VM with a shared disk; `-j 1` and `-j 2` run separately stay
# under ~10 minutes each.
#
# Builds (release, build-bench/) deployclaw and bench/sqlite_baseline, creates
# one fleet of TENANTS files (default 10000) with a 3-statement migration, a
# signing key and deployclaw.sum, then for every repeat and parallelism runs,
# each on its own fresh `cp -a` of that fleet (synced before the clock starts):
#
#   baseline   sqlite_baseline apply -j J: per tenant BEGIN IMMEDIATE, the 3
#              statements, CREATE TABLE IF NOT EXISTS deployclaw_history +
#              INSERT, COMMIT; J threads over interleaved parts of the list
#   checks     deployclaw apply -j J: canary 1, waves [10%, 100%], ledger on,
#              the default per-tenant gates (integrity_check, foreign_key_check)
#   nochecks   the same with gates: {integrity_check: false, foreign_key_check: false}
#   plan       deployclaw apply --dry-run -j J on the fleet itself (it changes
#              nothing): discovery, the planning pass that reads every tenant's
#              history, the preflight gates -- the part of a run the baseline
#              has no counterpart for, shown as a fraction of the baseline
#
# Every run prints wall time, tenants/s, peak RSS, CPU time (user + system)
# and user CPU time alone (deployclaw: `time -f "%M %U %S"`; the baseline:
# getrusage); the summary gives medians, the ratio deployclaw/baseline of the
# median wall times at equal parallelism, the median of the per-repeat ratios
# (each deployclaw run against the baseline run next to it: steadier when the
# machine's load drifts), and the same ratio for CPU time and for user CPU
# time alone: the work each side does itself, which a noisy disk disturbs
# least (system time grows with the disk's contention). TMPDIR picks the disk
# measured; SETTLE the pause after each fresh copy (see fresh); DEPLOYCLAW=path
# (and BASELINE=path) benchmark other
# builds, with no build step when both are given. SQLite's default durability
# throughout (rollback journal, synchronous=FULL).
set -eu
cd "$(dirname "$0")/.."
root=$(pwd)
. bench/lib/sqlite_fleet.sh

n=10000
repeats=3
pars="1 2"
configs="checks nochecks"
while [ $# -gt 0 ]; do
	case $1 in
	-n) n=$2; shift 2 ;;
	-r) repeats=$2; shift 2 ;;
	-j) pars=$2; shift 2 ;;
	-c) configs=$2; shift 2 ;;
	*) echo "usage: $0 [-n TENANTS] [-r REPEATS] [-j \"1 2\"] [-c \"checks nochecks\"]" >&2
	   exit 2 ;;
	esac
done

dc=${DEPLOYCLAW:-$root/build-bench/src/cli/deployclaw}
base=${BASELINE:-$root/build-bench/bench/sqlite_baseline}
if [ -z "${DEPLOYCLAW:-}" ] || [ -z "${BASELINE:-}" ]; then
	if [ ! -d build-bench ]; then
		meson setup build-bench --buildtype=release >/dev/null
	fi
	ninja -C build-bench src/cli/deployclaw bench/sqlite_baseline >/dev/null
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/dc-sqlite-bench.XXXXXX")
trap 'rm -rf "$dir"' EXIT INT TERM
fleet=$dir/fleet
results=$dir/results
: >"$results"

echo "sqlite_fleet on $(uname -m), $(nproc) CPUs, $(df -P "$dir" | awk 'NR==2 {print $1}')," \
	"SQLite $(pkg-config --modversion sqlite3 2>/dev/null || echo '?'); load average" \
	"$(cut -d' ' -f1-3 /proc/loadavg)"

# --- the fleet, created once ---------------------------------------------------
t0=$(date +%s)
make_fleet "$fleet" "$n" "$dc" "$base"
echo "fleet: $n tenants, $(du -sh "$fleet/tenants" | cut -f1), created in $(($(date +%s) - t0))s"

# --- runs ----------------------------------------------------------------------
now() { date +%s.%N; }

# A fresh copy of the fleet, then a pause: ext4 without a journal (this VM's
# disk) skips, for every new inode, each inode freed in the last 5-10 seconds
# (fs/ext4/ialloc.c, recently_deleted), reading its inode table block. The
# TENANTS files the previous run's copy just freed make every rollback journal
# created in the next seconds scan past them: `perf record` of a 2,000-tenant
# run started right after a 10,000-tenant copy was removed put 9-10 % of it in
# that scan (find_inode_bit, recently_deleted), against under 1 % otherwise.
# SETTLE (seconds, default 11) lets them age out before the clock starts.
fresh() {
	rm -rf "$dir/run"
	cp -a "$fleet" "$dir/run"
	sync
	sleep "${SETTLE:-11}"
}

run_baseline() { # J REPEAT
	fresh
	out=$("$base" apply "$dir/run/tenants" -j "$1")
	set -- "$1" "$2" $out
	# tenants N threads J wall_s S tenants_per_s R maxrss_kib K failed F cpu_s C user_s U
	[ "${14}" = 0 ] || { echo "baseline: ${14} tenants failed" >&2; exit 1; }
	echo "baseline $1 $2 $8 ${12} ${16} ${18}" >>"$results"
	printf '%-9s -j %s  #%s  %8.2f s  %8.1f tenants/s  %7s KiB  CPU %6.2f s (user %6.2f s)\n' \
		baseline "$1" "$2" "$8" "${10}" "${12}" "${16}" "${18}"
}

run_deployclaw() { # CONFIG J REPEAT
	fresh
	t=$(now)
	(cd "$dir/run" && command /usr/bin/time -f "%M %U %S" -o "$dir/rss" \
		"$dc" -q --config "$1.yaml" apply -j "$2") || {
		echo "deployclaw ($1, -j $2) failed" >&2
		exit 1
	}
	t=$(echo "$(now) $t" | awk '{printf "%.3f", $1 - $2}')
	rss=$(tail -n 1 "$dir/rss" | awk '{print $1}')
	cpu=$(tail -n 1 "$dir/rss" | awk '{printf "%.2f", $2 + $3}')
	user=$(tail -n 1 "$dir/rss" | awk '{printf "%.2f", $2}')
	echo "$1 $2 $3 $t $rss $cpu $user" >>"$results"
	printf '%-9s -j %s  #%s  %8.2f s  %8.1f tenants/s  %7s KiB  CPU %6.2f s (user %6.2f s)\n' \
		"$1" "$2" "$3" "$t" "$(echo "$n $t" | awk '{printf "%.1f", $1 / $2}')" "$rss" "$cpu" \
		"$user"
}

run_plan() { # J REPEAT: `apply --dry-run` (discover, read every history, gates): the planning pass alone
	t=$(now)
	(cd "$fleet" && "$dc" -q --config checks.yaml apply --dry-run -j "$1") >/dev/null
	t=$(echo "$(now) $t" | awk '{printf "%.3f", $1 - $2}')
	echo "plan $1 $2 $t 0 0 0" >>"$results"
	printf '%-9s -j %s  #%s  %8.2f s  (apply --dry-run: the planning pass)\n' plan "$1" "$2" "$t"
}

r=1
while [ "$r" -le "$repeats" ]; do
	for j in $pars; do
		# alternate the order, so a noisy neighbour does not always hit the same one
		if [ $((r % 2)) = 1 ]; then
			run_baseline "$j" "$r"
			for c in $configs; do run_deployclaw "$c" "$j" "$r"; done
		else
			for c in $configs; do run_deployclaw "$c" "$j" "$r"; done
			run_baseline "$j" "$r"
		fi
		run_plan "$j" "$r"
	done
	r=$((r + 1))
done

# --- summary: medians ----------------------------------------------------------
median() { # KIND J FIELD
	awk -v k="$1" -v j="$2" -v f="$3" '$1 == k && $2 == j {print $f}' "$results" |
		sort -g | awk '{v[NR] = $1} END {
			if (NR == 0) exit
			if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
paired_ratio() { # KIND J: median over repeats of deployclaw / the baseline of the same repeat
	awk -v k="$1" -v j="$2" '$2 == j && $1 == "baseline" {b[$3] = $4}
		$2 == j && $1 == k {d[$3] = $4}
		END {for (r in d) if (r in b) print d[r] / b[r]}' "$results" |
		sort -g | awk '{v[NR] = $1} END {
			if (NR == 0) exit
			if (NR % 2) printf "%.2f\n", v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
echo
echo "medians of $repeats runs, $n tenants; load average now $(cut -d' ' -f1-3 /proc/loadavg)"
printf '| %-26s | %2s | %9s | %10s | %12s | %8s | %8s | %8s | %9s | %10s |\n' run -j "wall (s)" \
	tenants/s "peak RSS" ratio paired "CPU (s)" "CPU ratio" "user ratio"
printf '| %-26s | %2s | %9s | %10s | %12s | %8s | %8s | %8s | %9s | %10s |\n' --- -- --- --- --- \
	--- --- --- --- ---
for j in $pars; do
	bw=$(median baseline "$j" 4)
	bc=$(median baseline "$j" 6)
	bu=$(median baseline "$j" 7)
	for k in baseline $configs plan; do
		w=$(median "$k" "$j" 4)
		m=$(median "$k" "$j" 5)
		c=$(median "$k" "$j" 6)
		u=$(median "$k" "$j" 7)
		cratio=$(echo "$c $bc" | awk '{printf "%.2f", $1 / $2}')
		uratio=$(echo "$u $bu" | awk '{printf "%.2f", $1 / $2}')
		case $k in
		baseline) label="baseline (plain SQLite)"; ratio="-"; paired="-" ;;
		plan) label="deployclaw apply --dry-run" ;;
		checks) label="deployclaw, checks on" ;;
		nochecks) label="deployclaw, checks off" ;;
		esac
		if [ "$k" != baseline ]; then
			ratio=$(echo "$w $bw" | awk '{printf "%.2f", $1 / $2}')
			paired=$(paired_ratio "$k" "$j")
		fi
		if [ "$k" = plan ]; then
			# what the planning pass adds: its time over the baseline's whole run
			printf '| %-26s | %2s | %9.2f | %10s | %12s | %8s | %8s | %8s | %9s | %10s |\n' \
				"$label" "$j" "$w" - - "+$ratio" "+$paired" - - -
			continue
		fi
		if [ "$k" = baseline ]; then cratio=-; uratio=-; fi
		printf '| %-26s | %2s | %9.2f | %10.1f | %8.1f MiB | %8s | %8s | %8.2f | %9s | %10s |\n' \
			"$label" "$j" "$w" "$(echo "$n $w" | awk '{print $1 / $2}')" \
			"$(echo "$m" | awk '{print $1 / 1024}')" "$ratio" "$paired" "$c" "$cratio" "$uratio"
	done
done
