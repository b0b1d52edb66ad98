#!/bin/sh
# Sandbox start-up and a metadata-heavy workload: karapace run against bubblewrap, crun and
# podman, all rootless, in one hyperfine run each (see bench/README.md).
#   bench/bench-run.sh [BUILDDIR]
# Run as root, it runs itself again as $BENCH_USER (default kptest, the test user of
# scripts/test): rootless is the point. Environment: BENCH_RUNS (default 30 for start-up,
# 5 for the workload), BENCH_TAR_MB (size of the tarball, default 100), BENCH_CACHE (where
# the tarball is kept between runs, default ~/.cache/karapace-bench).
set -eu
build=$(cd "${1:-build}" && pwd)
script=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
src=$(cd "$(dirname "$0")/.." && pwd)

if [ "$(id -u)" = 0 ]; then
  user=${BENCH_USER:-kptest}
  if ! id "$user" >/dev/null 2>&1; then
    echo "bench-run: run as an unprivileged user, or create $user (scripts/test does)" >&2
    exit 1
  fi
  uid=$(id -u "$user")
  [ -d "/run/user/$uid" ] || install -d -m 0700 -o "$user" -g "$(id -g "$user")" "/run/user/$uid"
  # The binaries may live where the user cannot read: copy them next to a copy of the script.
  work=$(mktemp -d /tmp/karapace-bench-run.XXXXXX)
  trap 'rm -rf "$work"' EXIT
  mkdir -p "$work/build/src/cli" "$work/build/tests" "$work/bench" "$work/tests"
  install -m 0755 "$build/src/cli/karapace" "$work/build/src/cli/"
  cp "$script" "$work/bench/"
  cp "$src/tests/make-test-rootfs" "$work/tests/"
  chmod -R a+rX "$work"
  set +e
  as_user="cd /tmp && env XDG_RUNTIME_DIR=/run/user/$uid \
    BENCH_RUNS='${BENCH_RUNS:-}' BENCH_RUNS_WORK='${BENCH_RUNS_WORK:-}' \
    BENCH_TAR_MB='${BENCH_TAR_MB:-}' BENCH_CACHE='${BENCH_CACHE:-}' \
    KARAPACE_OVERLAY='${KARAPACE_OVERLAY:-}' sh '$work/bench/$(basename "$0")' '$work/build'"
  # crun, podman's runtime, refuses a hybrid cgroup host (v1 plus a cgroup2 hierarchy).
  # Hide the cgroup2 hierarchy in a private mount namespace for the whole run, so that all
  # tools see the same host and podman can be measured at all.
  if [ "$(stat -f -c %T /sys/fs/cgroup/unified 2>/dev/null)" = cgroup2fs ]; then
    echo "bench-run: hybrid cgroup host: /sys/fs/cgroup/unified hidden for this run (crun refuses it)"
    unshare -m sh -c "mount -t tmpfs none /sys/fs/cgroup/unified && su -s /bin/sh '$user' -c \"$as_user\""
  else
    su -s /bin/sh "$user" -c "$as_user"
  fi
  exit $?
fi

for tool in hyperfine python3 /bin/busybox; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "bench-run: $tool is missing (scripts/install-deps --bench; busybox-static for /bin/busybox)" >&2
    exit 1
  }
done
karapace=$build/src/cli/karapace
[ -x "$karapace" ] || { echo "bench-run: build first: $karapace is missing" >&2; exit 1; }
runs=${BENCH_RUNS:-30}
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/run/user/$(id -u)}"
tmp=$(mktemp -d /tmp/karapace-bench.XXXXXX)
cleanup () {
  if [ -n "${warm_pid:-}" ]; then
    kill "$warm_pid" 2>/dev/null || true
    wait "$warm_pid" 2>/dev/null || true
  fi
  if [ -n "${session:-}" ]; then
    "$karapace" run --session "$session" --stop >/dev/null 2>&1 || true
  fi
  if [ -d "$tmp/podman" ]; then
    # Rootless podman leaves a pause process holding its user namespace; with --tmpdir its
    # pid is in our directory. The storage holds files of subordinate ids: remove them in
    # that namespace, then stop the pause process.
    pause=$(cat "$tmp/podman/tmp/pause.pid" 2>/dev/null || true)
    podman --root "$tmp/podman/storage" --runroot "$tmp/podman/run" --tmpdir "$tmp/podman/tmp" \
      unshare rm -rf "$tmp/podman" >/dev/null 2>&1 || true
    if [ -n "$pause" ]; then kill "$pause" 2>/dev/null || true; fi
  fi
  # The environments' layers belong to subordinate ids: removed in the store's namespace.
  "$karapace" unshare -- rm -rf "$tmp" 2>/dev/null || rm -rf "$tmp" 2>/dev/null || true
}
trap cleanup EXIT INT TERM
notes=$tmp/notes
: >"$notes"
note () { echo "$*" >>"$notes"; }

# The tree: the busybox root filesystem of the tests.
rootfs=$tmp/rootfs
"$(dirname "$0")/../tests/make-test-rootfs" "$rootfs" >/dev/null

have_run=false
if "$karapace" run --help >/dev/null 2>&1; then
  have_run=true
else
  note "karapace run: not in this build ($karapace has no 'run' command)"
fi

# --- start-up: /bin/true --------------------------------------------------------------
hf_args=$tmp/hf-args
: >"$hf_args"
cmd () { printf '%s\n%s\n' "$1" "$2" >>"$hf_args"; } # NAME COMMAND: two lines each

if $have_run; then
  cmd "karapace run" "$karapace run --rootfs $rootfs -- /bin/true"
  # Joining a running holder (what enter/exec do): a first session keeps it up.
  session=kp-bench-$$
  "$karapace" run --session "$session" --rootfs "$rootfs" -- sleep 100000 >/dev/null 2>&1 &
  for _ in $(seq 100); do
    "$karapace" run --session "$session" -- /bin/true >/dev/null 2>&1 && break
    sleep 0.05
  done
  cmd "karapace run --session (join)" "$karapace run --session $session -- /bin/true"
fi
# An environment built from the same tree: exec cold (starts its holder) and warm (joins the
# holder a first exec keeps up).
if "$karapace" exec --help >/dev/null 2>&1; then
  export KARAPACE_STORE=$tmp/store
  mkdir -p "$tmp/env"
  printf 'manifest_version = 1\nname = "benchenv"\n[base]\nimage = "%s"\n' "$rootfs" \
    >"$tmp/env/karapace.toml"
  # A second environment (one more variable, so another identity) is kept running.
  mkdir -p "$tmp/warm"
  printf 'manifest_version = 1\nname = "benchwarm"\n[base]\nimage = "%s"\n[env]\nset = { BENCH = "warm" }\n' \
    "$rootfs" >"$tmp/warm/karapace.toml"
  if "$karapace" build "$tmp/env/karapace.toml" >/dev/null 2>&1 \
     && "$karapace" build "$tmp/warm/karapace.toml" >/dev/null 2>&1; then
    cmd "karapace exec (cold)" "$karapace exec benchenv -- /bin/true"
    cmd "karapace exec (warm)" "$karapace exec benchwarm -- /bin/true"
    warm_env=yes
  else
    note "karapace build failed: no exec figures"
  fi
fi
if [ -n "${warm_env:-}" ]; then
  "$karapace" exec benchwarm -- sleep 100000 >/dev/null 2>&1 &
  warm_pid=$!
  for _ in $(seq 100); do
    "$karapace" exec benchwarm -- /bin/true >/dev/null 2>&1 && break
    sleep 0.05
  done
fi
if command -v bwrap >/dev/null 2>&1; then
  cmd "bwrap" "bwrap --unshare-all --ro-bind $rootfs / --proc /proc --dev /dev /bin/true"
else
  note "bwrap: not installed (package bubblewrap)"
fi

# crun: an OCI bundle made by `crun spec --rootless` whose root is the same tree.
if command -v crun >/dev/null 2>&1; then
  bundle=$tmp/bundle
  mkdir -p "$bundle"
  (cd "$bundle" && crun spec --rootless)
  python3 - "$bundle/config.json" "$rootfs" <<'EOF'
import json, sys
path, rootfs = sys.argv[1], sys.argv[2]
c = json.load(open(path))
c["root"] = {"path": rootfs, "readonly": True}
c["process"]["args"] = ["/bin/true"]
c["process"]["terminal"] = False
json.dump(c, open(path, "w"), indent=1)
EOF
  crun_cmd="crun run --bundle $bundle kp-bench-$$"
  if err=$(crun run --bundle "$bundle" "kp-bench-$$" 2>&1); then
    cmd "crun run" "$crun_cmd"
  elif echo "$err" | grep -q "hybrid mode"; then
    # crun refuses a cgroup v1 host with a cgroup2 hierarchy that has controllers (hybrid).
    # Hidden under a tmpfs in a user namespace of our own, it runs; that costs an unshare.
    hidden="unshare --user --map-root-user --mount sh -c 'mount -t tmpfs none /sys/fs/cgroup/unified && exec $crun_cmd'"
    if sh -c "$hidden" >/dev/null 2>&1; then
      cmd "crun run (hybrid)" "$hidden"
      note "crun run (hybrid): crun refuses this hybrid cgroup host ($err); measured inside 'unshare -r' with /sys/fs/cgroup/unified hidden"
    else
      note "crun: cannot run here: $err"
    fi
  else
    note "crun: cannot run here: $(echo "$err" | tail -n 1)"
  fi
else
  note "crun: not installed (package crun)"
fi

# podman: the tree imported as an image into storage of its own, rootless.
if command -v podman >/dev/null 2>&1; then
  p="podman --root $tmp/podman/storage --runroot $tmp/podman/run --tmpdir $tmp/podman/tmp --events-backend none"
  podman_ok=false
  tar -C "$rootfs" --numeric-owner -cf "$tmp/rootfs.tar" .
  for driver in overlay vfs; do
    if err=$($p --storage-driver $driver import "$tmp/rootfs.tar" kp-bench:latest 2>&1) &&
       err=$($p --storage-driver $driver run --rm --network none kp-bench:latest /bin/true 2>&1); then
      cmd "podman run ($driver)" "$p --storage-driver $driver run --rm --network none kp-bench:latest /bin/true"
      podman_ok=true
      break
    fi
    $p --storage-driver $driver unshare rm -rf "$tmp/podman/storage" "$tmp/podman/run" >/dev/null 2>&1 ||
      rm -rf "$tmp/podman/storage" "$tmp/podman/run" 2>/dev/null || true
  done
  if ! $podman_ok; then
    why=$(echo "$err" | grep -v 'level=warning' | grep -Ei 'error|failed' |
          sed 's/^time="[^"]*" level=[a-z]* msg=//' | tail -n 2 | tr '\n' ' ')
    case $err in
      *newuidmap*|*newgidmap*)
        why="$why(rootless podman maps all of $(id -un)'s ranges in /etc/subuid and /etc/subgid at once; the kernel refuses ranges that overlap)" ;;
    esac
    note "podman: cannot run here: $why"
  fi
else
  note "podman: not installed (package podman)"
fi

run_hyperfine () { # JSON PAIRS-FILE RUNS [hyperfine options...]
  json=$1; pairs=$2; n=$3; shift 3
  set -- "$@" --runs "$n" --export-json "$json"
  while IFS= read -r name && IFS= read -r command; do
    set -- "$@" -n "$name" "$command"
  done <"$pairs"
  hyperfine --style basic "$@"
}

echo "== start-up: /bin/true in the busybox tree ($runs runs each)"
if [ -s "$hf_args" ]; then
  run_hyperfine "$tmp/startup.json" "$hf_args" "$runs" --warmup 3 -N 2>/dev/null ||
    run_hyperfine "$tmp/startup.json" "$hf_args" "$runs" --warmup 3
fi

# --- metadata-heavy: unpack a tarball of /usr/share, then count the entries -----------
mb=${BENCH_TAR_MB:-100}
cache=${BENCH_CACHE:-$HOME/.cache/karapace-bench}
mkdir -p "$cache"
tarball=$cache/usr-share-${mb}M.tar
if [ ! -s "$tarball" ]; then
  # The small files (up to 64 KiB) of /usr/share in path order — documentation, manual
  # pages, translations, sources — until about $mb MB: many entries for their size.
  find /usr/share -type f -readable -size -65k -printf '%s %P\n' | LC_ALL=C sort -k2 |
    awk -v limit=$((mb * 1048576)) '{ total += $1; sub(/^[0-9]+ /, ""); print "usr/share/" $0 }
                                    total >= limit { exit }' >"$tmp/tar-list"
  tar -C / -cf "$tarball.tmp" -T "$tmp/tar-list"
  mv "$tarball.tmp" "$tarball"
fi
entries=$(tar -tf "$tarball" | wc -l)
echo "== metadata: busybox tar -xf ($(du -m "$tarball" | cut -f1) MB, $entries entries), then find | wc -l"
work_pairs=$tmp/work-pairs
: >"$work_pairs"
job="mkdir -p /tmp/kp-unpack && tar -C /tmp/kp-unpack -xf /data/$(basename "$tarball") && find /tmp/kp-unpack | wc -l"
host_dir=/dev/shm/karapace-bench-$$
printf '%s\n%s\n' "host (tmpfs)" \
  "sh -c 'rm -rf $host_dir && mkdir -p $host_dir && /bin/busybox tar -C $host_dir -xf $tarball && /bin/busybox find $host_dir | wc -l; rm -rf $host_dir'" >>"$work_pairs"
if $have_run; then
  printf '%s\n%s\n' "karapace run (overlay)" \
    "$karapace run --rootfs $rootfs --mount $cache:/data:ro -- sh -c '$job'" >>"$work_pairs"
  if command -v fuse-overlayfs >/dev/null 2>&1; then
    printf '%s\n%s\n' "karapace run (fuse-overlayfs)" \
      "env KARAPACE_OVERLAY=fuse $karapace run --rootfs $rootfs --mount $cache:/data:ro -- sh -c '$job'" >>"$work_pairs"
  else
    note "fuse-overlayfs: not installed, its line is missing"
  fi
fi
run_hyperfine "$tmp/work.json" "$work_pairs" "${BENCH_RUNS_WORK:-5}" --warmup 1
rm -rf "$host_dir"

# --- the table ------------------------------------------------------------------------
echo
python3 - "$tmp/startup.json" "$tmp/work.json" <<'EOF'
import json, os, statistics, sys

def table(path, title, base_names):
    if not os.path.exists(path):
        return
    results = json.load(open(path))["results"]
    medians = {r["command"]: statistics.median(r["times"]) for r in results}
    base = next((b for b in base_names if b in medians), None)
    print(f"{title:<34} {'median':>10} {'ratio':>8}")
    for name, m in medians.items():
        ratio = f"{m / medians[base]:.2f}x" if base else "-"
        print(f"{name:<34} {m * 1000:>8.1f}ms {ratio:>8}")
    if base:
        print(f"(ratio: median / median of '{base}')")
    print()

table(sys.argv[1], "start-up, /bin/true", ["bwrap", "karapace run"])
table(sys.argv[2], "tar -xf + find | wc -l", ["host (tmpfs)"])
EOF
if [ -s "$notes" ]; then
  echo "notes:"
  sed 's/^/  /' "$notes"
fi
