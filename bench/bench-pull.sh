#!/bin/sh
# Pulling a multi-layer image from a local registry: karapace against skopeo + umoci, all
# rootless, in one hyperfine run (see bench/README.md).
#   bench/bench-pull.sh [BUILDDIR]
# Run as root, it runs itself again as $BENCH_USER (default kptest). Environment:
# BENCH_RUNS (default 5); BENCH_TREE, a root filesystem split into four layers (usr/lib,
# usr/share, the rest of usr, everything else; default: the Debian minbase tree the slow
# system tests cache, $KARAPACE_TEST_CACHE/debian-bookworm-minbase, when it exists);
# without one, BENCH_DIRS (the host directories packed into one layer each, default four
# directories of /usr).
set -eu
build=$(cd "${1:-build}" && pwd)
script=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")

if [ "$(id -u)" = 0 ]; then
  user=${BENCH_USER:-kptest}
  id "$user" >/dev/null 2>&1 || { echo "bench-pull: create $user first (scripts/test does)" >&2; exit 1; }
  uid=$(id -u "$user")
  [ -d "/run/user/$uid" ] || install -d -m 0700 -o "$user" -g "$(id -g "$user")" "/run/user/$uid"
  work=$(mktemp -d /tmp/karapace-bench-pull.XXXXXX)
  trap 'rm -rf "$work"' EXIT
  mkdir -p "$work/build/src/cli" "$work/bench"
  install -m 0755 "$build/src/cli/karapace" "$work/build/src/cli/"
  cp "$script" "$work/bench/"
  chmod -R a+rX "$work"
  su -s /bin/sh "$user" -c "cd /tmp && env XDG_RUNTIME_DIR=/run/user/$uid \
    BENCH_RUNS='${BENCH_RUNS:-}' BENCH_DIRS='${BENCH_DIRS:-}' BENCH_TREE='${BENCH_TREE:-}' \
    KARAPACE_TEST_CACHE='${KARAPACE_TEST_CACHE:-}' \
    sh '$work/bench/$(basename "$0")' '$work/build'"
  exit $?
fi

for tool in hyperfine skopeo umoci docker-registry python3; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "bench-pull: $tool is missing (scripts/install-deps --bench)" >&2; exit 1; }
done
karapace=$build/src/cli/karapace
runs=${BENCH_RUNS:-5}
dirs=${BENCH_DIRS:-"/usr/share/locale /usr/share/doc /usr/lib/python3 /usr/share/perl"}
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/run/user/$(id -u)}"
tmp=$(mktemp -d /tmp/karapace-bench.XXXXXX)
cleanup () {
  [ -n "${registry_pid:-}" ] && kill "$registry_pid" 2>/dev/null
  "$karapace" unshare -- rm -rf "$tmp" 2>/dev/null || rm -rf "$tmp"
}
trap cleanup EXIT

# The registry.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$tmp/registry.yml" <<EOF
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $tmp/registry}}
http: {addr: 127.0.0.1:$port}
EOF
docker-registry serve "$tmp/registry.yml" >"$tmp/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 100); do
  python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/v2/')" 2>/dev/null && break
  sleep 0.1
done

# The image: four gzip layers of a root filesystem, or one per host directory, in an OCI
# layout, pushed with skopeo.
cache=${KARAPACE_TEST_CACHE:-$HOME/.cache/karapace-test}
tree=${BENCH_TREE:-}
if [ -z "$tree" ] && [ -f "$cache/debian-bookworm-minbase.done" ] && [ -d "$cache/debian-bookworm-minbase" ]; then
  tree=$cache/debian-bookworm-minbase
fi
i=0
if [ -n "$tree" ]; then
  # The cached tree is owned by subordinate ids: read it in the store's namespace, where
  # its owners are the image's (0 for root), as an image build would record them.
  pack () { # OUT ARGS...
    out=$1; shift
    "$karapace" unshare -- tar -C "$tree" --numeric-owner --sort=name --mtime=@0 -czf "$out" "$@"
  }
  pack "$tmp/layer1.tar.gz" ./usr/lib
  pack "$tmp/layer2.tar.gz" ./usr/share
  pack "$tmp/layer3.tar.gz" --exclude=./usr/lib --exclude=./usr/share ./usr
  pack "$tmp/layer4.tar.gz" --exclude=./usr .
  i=4
  dirs="$tree (usr/lib, usr/share, the rest of usr, the rest)"
else
  for d in $dirs; do
    i=$((i + 1))
    tar -C / --numeric-owner --sort=name --mtime=@0 -czf "$tmp/layer$i.tar.gz" "${d#/}" 2>/dev/null || true
  done
fi
python3 - "$tmp" $i <<'EOF'
import hashlib, gzip, json, os, sys
tmp, n = sys.argv[1], int(sys.argv[2])
lay = os.path.join(tmp, "layout")
os.makedirs(os.path.join(lay, "blobs", "sha256"))
def blob(data):
    d = hashlib.sha256(data).hexdigest()
    open(os.path.join(lay, "blobs", "sha256", d), "wb").write(data)
    return "sha256:" + d
layers, diffs = [], []
for i in range(1, n + 1):
    data = open(os.path.join(tmp, f"layer{i}.tar.gz"), "rb").read()
    diffs.append("sha256:" + hashlib.sha256(gzip.decompress(data)).hexdigest())
    layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": blob(data), "size": len(data)})
cfg = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diffs}, "config": {}}).encode()
man = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                  "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": blob(cfg), "size": len(cfg)},
                  "layers": layers}).encode()
desc = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": blob(man), "size": len(man),
        "annotations": {"org.opencontainers.image.ref.name": "v1"}}
json.dump({"schemaVersion": 2, "manifests": [desc]}, open(os.path.join(lay, "index.json"), "w"))
open(os.path.join(lay, "oci-layout"), "w").write('{"imageLayoutVersion":"1.0.0"}')
EOF
skopeo copy --quiet --dest-tls-verify=false "oci:$tmp/layout:v1" "docker://127.0.0.1:$port/bench:v1"
size=$(du -sh "$tmp/layout/blobs" | cut -f1)
ref="docker://127.0.0.1:$port/bench:v1"
echo "bench-pull: image of $i layers, $size compressed: $dirs"

# Both sides end with an unpacked tree: skopeo + umoci into an OCI layout and a rootfs,
# karapace into its store (verified blobs, one flattened layer, its tree digest).
hyperfine --runs "$runs" --warmup 1 --export-markdown "$tmp/pull.md" \
  --prepare "'$karapace' unshare -- rm -rf $tmp/peer $tmp/peer-rootfs $tmp/store" \
  -n "skopeo copy + umoci unpack" \
  "skopeo copy --quiet --src-tls-verify=false $ref oci:$tmp/peer:v1 && umoci unpack --rootless --image $tmp/peer:v1 $tmp/peer-rootfs >/dev/null" \
  -n "karapace images pull" \
  "'$karapace' --store $tmp/store images pull --quiet $ref"
"$karapace" --store "$tmp/store" images pull --quiet "$ref" >/dev/null
hyperfine --runs $((runs * 4)) --warmup 1 --export-markdown "$tmp/cached.md" \
  -n "karapace images pull (cached)" "'$karapace' --store $tmp/store images pull --quiet $ref" \
  -n "skopeo inspect (one manifest request)" "skopeo inspect --raw --tls-verify=false $ref"
cat "$tmp/pull.md" "$tmp/cached.md"
