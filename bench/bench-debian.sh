#!/bin/sh
# Bootstrapping Debian minbase from the mirror with warm package caches: karapace against
# mmdebstrap --mode=unshare, same suite, same mirror, same run (see bench/README.md).
#   bench/bench-debian.sh [BUILDDIR]
# Run as root, it runs itself again as $BENCH_USER (default kptest). Environment:
# BENCH_RUNS (default 3), BENCH_SUITE (default bookworm), BENCH_MIRROR (default
# http://deb.debian.org/debian).
set -eu
build=$(cd "${1:-build}" && pwd)
script=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")

if [ "$(id -u)" = 0 ]; then
  user=${BENCH_USER:-kptest}
  id "$user" >/dev/null 2>&1 || { echo "bench-debian: create $user first (scripts/test does)" >&2; exit 1; }
  uid=$(id -u "$user")
  [ -d "/run/user/$uid" ] || install -d -m 0700 -o "$user" -g "$(id -g "$user")" "/run/user/$uid"
  work=$(mktemp -d /tmp/karapace-bench-debian.XXXXXX)
  trap 'rm -rf "$work"' EXIT
  mkdir -p "$work/build/src/cli" "$work/bench"
  install -m 0755 "$build/src/cli/karapace" "$work/build/src/cli/"
  cp "$script" "$work/bench/"
  chmod -R a+rX "$work"
  su -s /bin/sh "$user" -c "cd /tmp && env XDG_RUNTIME_DIR=/run/user/$uid \
    BENCH_RUNS='${BENCH_RUNS:-}' BENCH_SUITE='${BENCH_SUITE:-}' BENCH_MIRROR='${BENCH_MIRROR:-}' \
    sh '$work/bench/$(basename "$0")' '$work/build'"
  exit $?
fi

for tool in hyperfine mmdebstrap python3; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "bench-debian: $tool is missing (scripts/install-deps --bench)" >&2; exit 1; }
done
karapace=$build/src/cli/karapace
runs=${BENCH_RUNS:-3}
suite=${BENCH_SUITE:-bookworm}
mirror=${BENCH_MIRROR:-http://deb.debian.org/debian}
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/run/user/$(id -u)}"
tmp=$(mktemp -d /tmp/karapace-bench.XXXXXX)
cleanup () {
  "$karapace" unshare -- rm -rf "$tmp" 2>/dev/null || rm -rf "$tmp"
}
trap cleanup EXIT
export KARAPACE_STORE=$tmp/store
ref="debian+$mirror#$suite"
cache=$tmp/debs
mkdir -p "$cache"

# Warm both caches: one untimed run each. mmdebstrap keeps its .debs in $cache through its
# documented sync-in/sync-out hooks.
mmdeb () { # OUT
  mmdebstrap --quiet --variant=minbase --mode=unshare --skip=essential/unlink \
    --setup-hook="mkdir -p \"\$1\"/var/cache/apt/archives/" \
    --setup-hook="sync-in $cache /var/cache/apt/archives/" \
    --customize-hook="sync-out /var/cache/apt/archives $cache" \
    "$suite" "$1" "$mirror"
}
echo "bench-debian: warming the caches ($suite from $mirror)"
"$karapace" images pull "$ref" >/dev/null 2>"$tmp/karapace.log" || { cat "$tmp/karapace.log" >&2; exit 1; }
mmdeb "$tmp/mmdeb.tar" || { echo "bench-debian: mmdebstrap failed" >&2; exit 1; }
echo "bench-debian: $(ls "$cache" | wc -l) packages in mmdebstrap's cache"

# Timed: karapace rebuilds the tree from its package cache (the image record is removed
# first, so the whole bootstrap runs: verify the InRelease, the index, unpack, dpkg);
# mmdebstrap the same from its cache, writing a tarball (a directory output measures
# about the same).
mmdeb_cmd="mmdebstrap --quiet --variant=minbase --mode=unshare --skip=essential/unlink \
--setup-hook='mkdir -p \"\$1\"/var/cache/apt/archives/' \
--setup-hook='sync-in $cache /var/cache/apt/archives/' $suite $tmp/out.tar $mirror"
hyperfine --style basic --runs "$runs" --export-json "$tmp/debian.json" \
  --prepare "$karapace images rm $ref >/dev/null 2>&1 || true" \
  --prepare "rm -f $tmp/out.tar" \
  -n "karapace images pull (warm cache)" -n "mmdebstrap --mode=unshare (warm cache)" \
  "$karapace images pull $ref" "$mmdeb_cmd"

python3 - "$tmp/debian.json" <<'EOF'
import json, sys
rs = json.load(open(sys.argv[1]))["results"]
base = rs[1]["median"]
print()
print(f"{'bootstrap, warm package caches':40} {'median':>8}  {'ratio':>6}")
for r in rs:
    print(f"{r['command']:40} {r['median']:7.2f}s  {r['median'] / base:5.2f}x")
print("(ratio: median / median of mmdebstrap)")
EOF
