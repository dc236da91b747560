#!/bin/sh
# Builds ledger_bench in release mode and runs it in a temporary folder.
# Extra arguments go to ledger_bench: --durable N (10000), --total N
# (1000000), --batch N (1000). TMPDIR picks the disk measured.
set -eu
cd "$(dirname "$0")/.."
if [ ! -d build-bench ]; then
	meson setup build-bench --buildtype=release
fi
ninja -C build-bench bench/ledger_bench >/dev/null
dir=$(mktemp -d "${TMPDIR:-/tmp}/dc-ledger-bench.XXXXXX")
trap 'rm -rf "$dir"' EXIT INT TERM
echo "ledger_bench on $(uname -m), $(nproc) CPUs, $(df -P "$dir" | awk 'NR==2 {print $1}')"
./build-bench/bench/ledger_bench --dir "$dir" "$@"
