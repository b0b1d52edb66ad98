#!/bin/sh
# bench-pack.sh — deterministic packing against GNU tar piped into b3sum.
#
#     bench/bench-pack.sh [BUILD_DIR [TREE_DIR]]
#
# BUILD_DIR (default: build) must already be built; nothing is compiled here. Ours is
# BUILD_DIR/bench/bench-pack, which packs TREE_DIR with kp_archive_pack() to /dev/null and
# prints the archive's BLAKE3 (hashed while it is written). The reference does the same
# job with the usual tools:
#
#     tar --sort=name --numeric-owner -cf - TREE | b3sum --num-threads 1
#
# TREE_DIR defaults to a copy of /usr/share of about BENCH_TREE_MB (default 400) megabytes
# in a temporary directory. Everything is read from the page cache after warm-up runs.
#
# Ratio = our time / tar's time: below 1, we are faster (the aim is at most 1.3).
set -eu

build=${1:-build}
tree=${2:-}
tree_mb=${BENCH_TREE_MB:-400}
runs=${BENCH_RUNS:-10}

die () { echo "bench-pack: $*" >&2; exit 1; }

command -v hyperfine > /dev/null || die "hyperfine not found: apt-get install hyperfine"
command -v b3sum > /dev/null || die "b3sum not found: apt-get install b3sum"
command -v tar > /dev/null || die "tar not found"
pack=$build/bench/bench-pack
[ -x "$pack" ] || die "$pack is not built (needs libarchive-dev; ninja -C $build bench/bench-pack)"

work=$(mktemp -d "${TMPDIR:-/tmp}/bench-pack.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

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
tree_entries=$(find "$tree" | wc -l)
echo "== setup"
echo "tree: $tree, $tree_entries entries, $tree_bytes bytes of file data"
echo "tar: $(tar --version | head -n 1); b3sum: $(b3sum --version)"
sync

# Same answer first: the archive must be a real tar that lists the whole tree, and its
# digest must be what b3sum says of the bytes.
"$pack" "$tree" "$work/ours.tar" > "$work/ours.out"
want=$(b3sum --no-names "$work/ours.tar")
got=$(cut -d' ' -f1 "$work/ours.out")
[ "$got" = "$want" ] || die "our digest $got differs from b3sum's $want"
# (GNU tar notes that it ignores the pax hdrcharset keyword of non-UTF-8 names.)
listed=$(tar -tf "$work/ours.tar" 2> /dev/null | wc -l)
[ "$listed" -eq "$tree_entries" ] || echo "note: tar lists $listed entries, find $tree_entries (sockets are not packed)"
"$pack" "$tree" "$work/again.tar" > /dev/null
cmp -s "$work/ours.tar" "$work/again.tar" || die "two packs of the same tree differ"
echo "archive: $(stat -c %s "$work/ours.tar") bytes, identical on repacking"
rm -f "$work/ours.tar" "$work/again.tar"

csv=$work/pack.csv
echo
echo "== pack"
hyperfine --warmup 2 --runs "$runs" --export-csv "$csv" \
  --command-name ours "$pack $tree" \
  --command-name tar "sh -c 'tar --sort=name --numeric-owner -cf - -C $tree . | b3sum --num-threads 1 > /dev/null'"

echo
echo "== summary (ratio = our time / tar's time; the aim is at most 1.3)"
awk -F, -v bytes="$tree_bytes" '
  NR > 1 { mean[$1] = $2; min[$1] = $7 }
  END {
    printf "ours %.0f MB/s, tar|b3sum %.0f MB/s: ratio %.2f (best runs %.1f vs %.1f ms; " \
           "means %.1f vs %.1f ms, ratio %.2f)\n",
      bytes / min["ours"] / 1e6, bytes / min["tar"] / 1e6, min["ours"] / min["tar"],
      min["ours"] * 1000, min["tar"] * 1000, mean["ours"] * 1000, mean["tar"] * 1000,
      mean["ours"] / mean["tar"]
  }' "$csv"
