#!/bin/sh
# Store object throughput against b3sum on the same bytes (issue figures: put+verify
# ≥ 0.8 of `b3sum --num-threads 1`).
#   bench/bench-store.sh [BUILDDIR] [TREE]
# TREE defaults to /usr/lib/x86_64-linux-gnu (about 1.3 GB of real files). The store is
# created under $BENCH_STORE_DIR (default /dev/shm, so that the figures compare hashing and
# copying, not the disk; set it to a disk directory to include fsync costs).
set -eu
build=${1:-build}
tree=${2:-/usr/lib/x86_64-linux-gnu}
torture="$build/tests/store-torture"
[ -x "$torture" ] || { echo "build first: $torture is missing" >&2; exit 1; }
dir=$(mktemp -d "${BENCH_STORE_DIR:-/dev/shm}/karapace-bench.XXXXXX")
trap 'rm -rf "$dir"' EXIT

# Warm the page cache, then time b3sum over exactly the regular files the store will take.
find "$tree" -type f -print0 | xargs -0 cat >/dev/null 2>&1 || true
start=$(date +%s.%N)
find "$tree" -type f -print0 | xargs -0 b3sum --num-threads 1 >/dev/null 2>&1 || true
end=$(date +%s.%N)
bytes=$(find "$tree" -type f -printf '%s\n' | awk '{s += $1} END {print s}')
b3=$(echo "$bytes $start $end" | awk '{printf "%.0f", $1 / 1048576 / ($3 - $2)}')
echo "b3sum --num-threads 1: $b3 MiB/s"

out=$(TMPDIR="$dir" "$torture" bench "$tree" 2>&1 || true)
echo "$out"
put=$(echo "$out" | sed -n 's/.*put.*, \([0-9]*\) MiB\/s/\1/p')
verify=$(echo "$out" | sed -n 's/.*verify.*, \([0-9]*\) MiB\/s/\1/p')
echo "$b3 $put $verify" | awk '{printf "ratios vs b3sum: put %.2f, verify %.2f, put+verify (same bytes twice) %.2f\n", $2 / $1, $3 / $1, (1 / (1 / $2 + 1 / $3)) / $1}'
