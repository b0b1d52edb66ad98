#!/bin/sh
# bench-hash.sh — file and tree digests against Debian's b3sum, one thread each.
#
#     bench/bench-hash.sh [BUILD_DIR [TREE_DIR]]
#
# BUILD_DIR (default: build) must already be built; nothing is compiled here. The digests
# are taken with `karapace digest` when that command exists, else with bench/bench-hash.
# TREE_DIR is the tree to digest; by default a copy of /usr/share (about BENCH_TREE_MB,
# default 500, megabytes) is made in a temporary directory. The file is BENCH_FILE_SIZE
# (default 1G) of random bytes. Both are read from the page cache (hyperfine warms up),
# so the figures compare hashing and I/O paths, not disks.
#
# Ratio = b3sum time / our time: above 1, we are faster.
set -eu

build=${1:-build}
tree=${2:-}
file_size=${BENCH_FILE_SIZE:-1G}
tree_mb=${BENCH_TREE_MB:-500}
runs=${BENCH_RUNS:-10}

die () { echo "bench-hash: $*" >&2; exit 1; }

command -v hyperfine > /dev/null || die "hyperfine not found: apt-get install hyperfine"
command -v b3sum > /dev/null || die "b3sum not found: apt-get install b3sum"
[ -d "$build" ] || die "no build directory '$build' (meson setup $build && ninja -C $build)"

# Ours: `karapace digest` if the CLI has it, else the bench program.
ours=
if [ -x "$build/src/cli/karapace" ] && "$build/src/cli/karapace" digest --help > /dev/null 2>&1; then
  ours="$build/src/cli/karapace digest"
  ours_name="karapace digest"
elif [ -x "$build/bench/bench-hash" ]; then
  ours_name="bench-hash"
else
  die "neither $build/src/cli/karapace (with digest) nor $build/bench/bench-hash is built"
fi
bench_hash=$build/bench/bench-hash
ours_file=${ours:-$bench_hash file}
ours_tree=${ours:-$bench_hash tree}

work=$(mktemp -d "${TMPDIR:-/tmp}/bench-hash.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

echo "== setup"
echo "ours: $ours_name ($build)"
[ -x "$bench_hash" ] && echo "BLAKE3 backend: $("$bench_hash" backend)"
echo "b3sum: $(b3sum --version)"

file=$work/file.bin
head -c "$file_size" /dev/urandom > "$file"
file_bytes=$(stat -c %s "$file")
echo "file: $file_bytes bytes"

if [ -z "$tree" ]; then
  tree=$work/tree
  mkdir "$tree"
  limit=$((tree_mb * 1024 * 1024))
  total=0
  for d in /usr/share/*; do
    [ "$total" -lt "$limit" ] || break
    # Unreadable parts of /usr/share are left behind: the copy is what gets measured.
    cp -a "$d" "$tree/" 2> /dev/null || true
    total=$(du -sb "$tree" | cut -f1)
  done
fi
tree_bytes=$(find "$tree" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
tree_files=$(find "$tree" -type f | wc -l)
echo "tree: $tree, $tree_files files, $tree_bytes bytes"

# Let writeback of what was just written finish: it would compete with the runs.
sync

# Same answer first: a fast wrong digest is worth nothing.
want=$(b3sum --no-names "$file")
got=$($ours_file "$file" | cut -d' ' -f1)
[ "$got" = "$want" ] || die "file digest differs from b3sum: $got vs $want"
$ours_tree "$tree" > /dev/null || die "tree digest of $tree failed"

# measure NAME BYTES OURS_CMD B3SUM_CMD [B3SUM_STREAMING_CMD]: hyperfine them, then print
# throughputs and ratios. Other work on the machine only ever adds time, so the fastest
# runs say the most; the means are printed too.
measure () {
  name=$1 bytes=$2 ours_cmd=$3 b3_cmd=$4 stream_cmd=${5:-}
  csv=$work/$name.csv
  echo
  echo "== $name"
  if [ -n "$stream_cmd" ]; then
    hyperfine --warmup 2 --runs "$runs" --export-csv "$csv" --command-name ours "$ours_cmd" \
      --command-name b3sum "$b3_cmd" --command-name b3sum-read "$stream_cmd"
  else
    hyperfine --warmup 2 --runs "$runs" --export-csv "$csv" --command-name ours "$ours_cmd" \
      --command-name b3sum "$b3_cmd"
  fi
  awk -F, -v bytes="$bytes" -v name="$name" '
    NR > 1 { mean[$1] = $2; min[$1] = $7 }
    function line(other) {
      printf "%s: ours %.0f MB/s, %s %.0f MB/s: ratio %.2f (best runs %.1f vs %.1f ms; " \
             "means %.1f vs %.1f ms, ratio %.2f)\n",
        name, bytes / min["ours"] / 1e6, other, bytes / min[other] / 1e6,
        min[other] / min["ours"], min["ours"] * 1000, min[other] * 1000,
        mean["ours"] * 1000, mean[other] * 1000, mean[other] / mean["ours"]
    }
    END { line("b3sum"); if ("b3sum-read" in min) line("b3sum-read") }' "$csv" >> "$work/summary"
}

# b3sum maps files into memory; `--no-mmap` makes it read(2) through a buffer as we do,
# which shows how much of a difference is the copy out of the page cache.
measure file "$file_bytes" "$ours_file $file" "b3sum --num-threads 1 $file" \
  "b3sum --num-threads 1 --no-mmap $file"
measure tree "$tree_bytes" "$ours_tree $tree" \
  "sh -c 'find $tree -type f -print0 | xargs -0 b3sum --num-threads 1 > /dev/null'"

echo
echo "== summary (throughput from the best run; ratio = b3sum time / our time)"
cat "$work/summary"
