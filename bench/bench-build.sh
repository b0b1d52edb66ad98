#!/bin/sh
# Building an environment (debian/bookworm + git, curl, ca-certificates) from warm caches:
# `karapace build` against a plain `apt-get update && apt-get install` of the same packages
# in a throw-away sandbox over the same base tree, with apt's archive directory warm
# (see bench/README.md).
#   bench/bench-build.sh [BUILDDIR]
# Run as root, it runs itself again as $BENCH_USER (default kptest). BENCH_RUNS (default 5).
set -eu
build=$(cd "${1:-build}" && pwd)
script=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")

if [ "$(id -u)" = 0 ]; then
  user=${BENCH_USER:-kptest}
  id "$user" >/dev/null 2>&1 || { echo "bench-build: create $user first (scripts/test does)" >&2; exit 1; }
  uid=$(id -u "$user")
  [ -d "/run/user/$uid" ] || install -d -m 0700 -o "$user" -g "$(id -g "$user")" "/run/user/$uid"
  work=$(mktemp -d /tmp/karapace-bench-build.XXXXXX)
  trap 'rm -rf "$work"' EXIT
  mkdir -p "$work/build/src/cli" "$work/bench"
  install -m 0755 "$build/src/cli/karapace" "$work/build/src/cli/"
  cp "$script" "$work/bench/"
  chmod -R a+rX "$work"
  su -s /bin/sh "$user" -c "cd /tmp && env XDG_RUNTIME_DIR=/run/user/$uid \
    BENCH_RUNS='${BENCH_RUNS:-}' sh '$work/bench/$(basename "$0")' '$work/build'"
  exit $?
fi

for tool in hyperfine python3; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "bench-build: $tool is missing (scripts/install-deps --bench)" >&2; exit 1; }
done
karapace=$build/src/cli/karapace
runs=${BENCH_RUNS:-5}
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/run/user/$(id -u)}"
tmp=$(mktemp -d /tmp/karapace-bench.XXXXXX)
cleanup () {
  "$karapace" unshare -- rm -rf "$tmp" 2>/dev/null || rm -rf "$tmp"
}
trap cleanup EXIT
export KARAPACE_STORE=$tmp/store
pkgs="git curl ca-certificates"
mkdir -p "$tmp/env" "$tmp/archives/partial"
printf 'manifest_version = 1\nname = "benchbuild"\n[base]\nimage = "debian/bookworm"\n[system]\npackages = ["git", "curl", "ca-certificates"]\n' \
  >"$tmp/env/karapace.toml"

echo "bench-build: warming the caches"
"$karapace" build "$tmp/env/karapace.toml" >/dev/null 2>"$tmp/log" || { cat "$tmp/log" >&2; exit 1; }
plain="$karapace run --image debian/bookworm --user root --mount $tmp/archives:/var/cache/apt/archives -- \
sh -c 'apt-get update -qq && apt-get install -qq -y --no-install-recommends -o Dpkg::Options::=--force-unsafe-io $pkgs >/dev/null'"
sh -c "$plain" >/dev/null 2>&1 || { echo "bench-build: the plain apt-get run failed" >&2; exit 1; }

# Timed: karapace build of a manifest whose environment is gone (the lock removed too, so
# it resolves and installs, taking the packages from the store's cache); apt-get in a
# throw-away sandbox over the same base with its archive directory warm.
hyperfine --style basic --runs "$runs" --export-json "$tmp/build.json" \
  --prepare "$karapace destroy benchbuild >/dev/null 2>&1; rm -f $tmp/env/karapace.lock" \
  --prepare "true" \
  -n "karapace build" -n "apt-get install (throw-away sandbox)" \
  "$karapace build $tmp/env/karapace.toml" "$plain"

python3 - "$tmp/build.json" <<'EOF'
import json, sys
rs = json.load(open(sys.argv[1]))["results"]
base = rs[1]["median"]
print()
print(f"{'build from warm caches':40} {'median':>8}  {'ratio':>6}")
for r in rs:
    print(f"{r['command']:40} {r['median']:7.2f}s  {r['median'] / base:5.2f}x")
print("(ratio: median / median of the plain apt-get install)")
EOF
