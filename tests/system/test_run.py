"""`karapace run`: a command in a sandbox made from a root filesystem directory, as the user
relies on it. Inside: ids mapped as docs/runtime.md says, binds of allowed host paths only,
only the allowed devices, a cleared environment, a seccomp filter and no capabilities, pid 1
reaping orphans, limits enforced, the network mode asked for; outside: the root filesystem
untouched, and nothing left behind however the front end ends.

Most tests run in the busybox tree of tests/make-test-rootfs (fixture `rootfs`), where
tests/sandbox-probe.c is /usr/bin/sandbox-probe; the slow ones in a Debian minbase tree
(fixture `debian_tree`)."""
import errno
import os
import pty
import random
import select
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import KARAPACE
from subids import usable_ranges

ROOT = os.getuid() == 0
PROBE = "/usr/bin/sandbox-probe"

# docs/runtime.md: /dev is a tmpfs with these and nothing else from the host.
DEV_ALLOWED = {"null", "zero", "full", "random", "urandom", "tty", "pts", "ptmx", "shm",
               "mqueue", "fd", "stdin", "stdout", "stderr"}
DEV_REQUIRED = {"null", "zero", "full", "random", "urandom", "tty", "pts", "ptmx", "shm",
                "fd", "stdin", "stdout", "stderr"}
DENIED_VARIABLES = {"SSH_AUTH_SOCK": "/tmp/agent.sock", "GPG_AGENT_INFO": "/tmp/gpg:1:1",
                    "AWS_SECRET_ACCESS_KEY": "kp-secret-1", "DOCKER_HOST": "unix:///tmp/d.sock",
                    "GITHUB_TOKEN": "kp-secret-2"}
SECCOMP_DENIED = ["keyctl", "add_key", "request_key", "init_module", "finit_module", "kexec_load",
                  "reboot", "swapon", "open_by_handle_at", "bpf", "perf_event_open", "unshare-user",
                  "unshare-net", "mount", "setns"]
# Capability numbers (linux/capability.h).
CAP = {"CHOWN": 0, "DAC_OVERRIDE": 1, "SETGID": 6, "SETUID": 7, "NET_ADMIN": 12, "NET_RAW": 13,
       "SYS_MODULE": 16, "SYS_RAWIO": 17, "SYS_PTRACE": 19, "SYS_ADMIN": 21, "SYS_BOOT": 22,
       "MKNOD": 27, "AUDIT_WRITE": 29}


def run(kp, rootfs, *command, options=(), **kw):
    return kp("run", "--rootfs", rootfs, *options, "--", *command, **kw)


def probe(kp, rootfs, *args, options=(), **kw):
    return run(kp, rootfs, PROBE, *args, options=options, **kw)


SUBUIDS = usable_ranges("/etc/subuid")
SUBGIDS = usable_ranges("/etc/subgid")
needs_ranges = pytest.mark.skipif(
    ROOT or not (SUBUIDS and SUBGIDS),
    reason="as root every id maps to itself" if ROOT
    else "this user has no ranges in /etc/subuid and /etc/subgid")
not_root = pytest.mark.skipif(ROOT, reason="as root, --user self is root: nothing rootless to prove")


def host_probe(sandbox_probe, *args):
    r = subprocess.run([str(sandbox_probe), *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def tree_state(kp, tree):
    """What a run must not change: the tree digest (contents, modes, owners, xattrs) and,
    for every entry the caller can see, its change time (which any write updates)."""
    r = kp("digest", tree)
    assert r.returncode == 0, r
    times = {}
    for top, dirs, files in os.walk(tree):
        for name in dirs + files + ["."]:
            p = os.path.join(top, name)
            st = os.lstat(p)
            times[p] = (st.st_ctime_ns, st.st_mtime_ns, st.st_size)
    return r.stdout.split()[0], times


def status_fields(text):
    return {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in text.splitlines() if ":" in line)}


# --- the command line -------------------------------------------------------------------

def test_help(kp):
    r = kp("run", "--help")
    assert r.returncode == 0, r
    assert r.stdout.startswith("Usage: karapace run")
    for option in ("--rootfs", "--mount", "--device", "--network", "--user", "--memory", "--env"):
        assert option in r.stdout, option
    assert kp("help", "run").stdout == r.stdout


def test_without_rootfs_is_a_usage_error(kp):
    r = kp("run", "--", "true")
    assert r.returncode == 64, r


# --- exit status ------------------------------------------------------------------------

@pytest.mark.parametrize("command,status", [
    (["sh", "-c", "exit 7"], 7),
    (["sh", "-c", "exit 0"], 0),
    (["sh", "-c", "kill -TERM $$"], 128 + signal.SIGTERM),
    ([PROBE, "signal", str(int(signal.SIGKILL))], 128 + signal.SIGKILL),
    (["/nonexistent/command"], 127),
    (["kp-no-such-command"], 127),
    (["/etc/passwd"], 126),
])
def test_exit_status(kp, rootfs, command, status):
    r = run(kp, rootfs, *command)
    assert r.returncode == status, r


def test_output_and_input_pass_through(kp, rootfs):
    r = run(kp, rootfs, "sh", "-c", "cat; echo err >&2", input="from stdin\n")
    assert r.returncode == 0, r
    assert r.stdout == "from stdin\n"
    assert "err" in r.stderr


def test_hostname_and_workdir(kp, rootfs):
    r = run(kp, rootfs, "sh", "-c", "hostname; pwd")
    assert r.stdout.split() == ["karapace", "/"], r
    r = run(kp, rootfs, "sh", "-c", "hostname; pwd", options=["--hostname", "kp-box", "--workdir", "/etc"])
    assert r.stdout.split() == ["kp-box", "/etc"], r


# --- ids --------------------------------------------------------------------------------

def ids(text):
    return dict(field.split("=", 1) for field in text.split())


def test_user_self_has_the_callers_ids(kp, rootfs):
    r = probe(kp, rootfs, "ids")
    assert r.returncode == 0, r
    got = ids(r.stdout)
    assert (got["uid"], got["euid"]) == (str(os.getuid()),) * 2
    assert (got["gid"], got["egid"]) == (str(os.getgid()),) * 2
    r = run(kp, rootfs, "id", "-u", options=["--user", "self"])
    assert r.stdout == f"{os.getuid()}\n", r


def test_user_root_is_uid_0(kp, rootfs):
    r = probe(kp, rootfs, "ids", options=["--user", "root"])
    assert r.returncode == 0, r
    got = ids(r.stdout)
    assert got["uid"] == got["euid"] == got["gid"] == got["egid"] == "0"
    r = run(kp, rootfs, "id", "-u", options=["--user", "root"])
    assert r.stdout == "0\n", r


def expected_host_id(inside, own, ranges):
    """docs/runtime.md: inside id i is the i-th subordinate id, except the caller's own."""
    if inside == own:
        return own
    for start, count in ranges:
        if inside < count:
            return start + inside
        inside -= count
    return None


def check_map(text, own, ranges):
    lines = [tuple(int(x) for x in line.split()) for line in text.splitlines() if line.strip()]
    assert lines, "empty map"
    mapped = set()
    for inside, outside, count in lines:
        for i in range(inside, inside + count):
            assert outside + (i - inside) == expected_host_id(i, own, ranges), \
                f"inside {i} maps to {outside + (i - inside)}: {lines}"
            mapped.add(i)
    total = sum(c for _, c in ranges)
    assert 0 in mapped and own in mapped
    assert 65534 in mapped or total <= 65534, "nobody (65534) is not mapped"
    assert mapped >= set(range(min(total, own))), "a hole in the map below the caller's id"


@needs_ranges
@pytest.mark.parametrize("user", ["self", "root"])
def test_id_maps(kp, rootfs, user):
    r = run(kp, rootfs, "cat", "/proc/self/uid_map", options=["--user", user])
    assert r.returncode == 0, r
    check_map(r.stdout, os.getuid(), SUBUIDS)
    r = run(kp, rootfs, "cat", "/proc/self/gid_map", options=["--user", user])
    assert r.returncode == 0, r
    check_map(r.stdout, os.getgid(), SUBGIDS)


@needs_ranges
def test_files_of_the_tree_keep_their_owners(kp, tmp_path, sandbox_probe, source_root):
    """A file owned on the host by the caller shows as the caller; one owned by the first
    subordinate id (image root, as mmdebstrap --mode=unshare makes it) shows as root."""
    tree = tmp_path / "tree"
    r = subprocess.run([str(source_root / "tests" / "make-test-rootfs"),
                        str(tree), str(sandbox_probe)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    (tree / "etc" / "mine").write_text("mine\n")
    (tree / "etc" / "image-root").write_text("root\n")
    r = kp("unshare", "--", "chown", "0:0", tree / "etc" / "image-root")
    assert r.returncode == 0, r
    assert os.stat(tree / "etc" / "image-root").st_uid == SUBUIDS[0][0]
    r = run(kp, tree, "stat", "-c", "%n %u %g", "/etc/mine", "/etc/image-root")
    assert r.returncode == 0, r
    assert r.stdout.splitlines() == [f"/etc/mine {os.getuid()} {os.getgid()}", "/etc/image-root 0 0"]


# --- the root filesystem is never written ----------------------------------------------

@pytest.mark.parametrize("user", ["self", "root"])
def test_rootfs_unchanged_after_writing_everywhere(kp, rootfs, user):
    before = tree_state(kp, rootfs)
    r = probe(kp, rootfs, "write-everywhere", options=["--user", user])
    assert r.returncode == 0, r
    results = [line.split(" ", 2) for line in r.stdout.splitlines()]
    # The writes themselves succeed: they land in the throw-away layer.
    for d in ("/", "/etc", "/usr", "/bin"):
        target = d.rstrip("/") + "/kp-probe-file"
        assert ["ok", "create", target] in results, r.stdout
    succeeded = [x for x in results if x[0] == "ok"]
    assert any(x[1] == "truncate" for x in succeeded) and any(x[1] == "unlink" for x in succeeded), r.stdout
    # ... and are seen by the rest of the same run:
    r = run(kp, rootfs, "sh", "-c", f"{PROBE} write-everywhere /etc >/dev/null; ls /etc; cat /etc/kp-probe-renamed",
            options=["--user", user])
    assert "kp-probe-renamed" in r.stdout.split() and r.stdout.endswith("written\n"), r
    after = tree_state(kp, rootfs)
    assert after[0] == before[0], "the tree digest changed"
    changed = [p for p in set(before[1]) | set(after[1]) if before[1].get(p) != after[1].get(p)]
    assert changed == [], f"changed on the host: {sorted(changed)[:10]}"
    # A new run starts from the unchanged tree.
    r = run(kp, rootfs, "sh", "-c", "test -e /etc/kp-probe-renamed || test -e /kp-probe-dir; echo $?")
    assert r.stdout == "1\n", r


def test_root_directory_keeps_its_owner_and_mode(kp, rootfs):
    """The overlay's root shows the tree's root, as every other directory shows its own."""
    st = os.stat(rootfs)
    r = run(kp, rootfs, "stat", "-c", "%u %g %a", "/", "/etc")
    assert r.returncode == 0, r
    etc = os.stat(rootfs / "etc")
    assert r.stdout.splitlines() == [f"{st.st_uid} {st.st_gid} {st.st_mode & 0o7777:o}",
                                     f"{etc.st_uid} {etc.st_gid} {etc.st_mode & 0o7777:o}"]


def test_sys_is_read_only(kp, rootfs):
    r = probe(kp, rootfs, "write-everywhere", "/sys", "/sys/kernel", options=["--user", "root"])
    assert r.returncode == 0, r
    lines = r.stdout.splitlines()
    assert lines and not [x for x in lines if x.startswith("ok ")], r.stdout


# --- bind mounts ------------------------------------------------------------------------

@pytest.fixture(params=["home", "tmp"])
def host_dir(request, tmp_path):
    """A host directory under the caller's home (the pytest directory is there) or /tmp."""
    if request.param == "home":
        d = tmp_path / "share"
        d.mkdir()
        yield d
    else:
        import tempfile
        d = Path(tempfile.mkdtemp(prefix="kp-run-", dir="/tmp"))
        yield d
        shutil.rmtree(d, ignore_errors=True)


def test_bind_mount_files_belong_to_the_caller(kp, rootfs, host_dir):
    (host_dir / "from-host").write_text("host\n")
    r = run(kp, rootfs, "sh", "-c",
            "cat /work/from-host && echo inside > /work/new && mkdir /work/dir && touch /work/dir/f",
            options=["--mount", f"{host_dir}:/work"])
    assert r.returncode == 0, r
    assert r.stdout == "host\n"
    assert (host_dir / "new").read_text() == "inside\n"
    for p in (host_dir / "new", host_dir / "dir", host_dir / "dir" / "f"):
        st = os.stat(p)
        assert (st.st_uid, st.st_gid) == (os.getuid(), os.getgid()), p


def test_read_only_bind(kp, rootfs, tmp_path):
    share = tmp_path / "ro"
    share.mkdir()
    (share / "keep").write_text("keep\n")
    r = run(kp, rootfs, "sh", "-c", "cat /ro/keep; echo x > /ro/keep; touch /ro/new; rm -f /ro/keep; true",
            options=["--mount", f"{share}:/ro:ro", "--user", "root"])
    assert r.returncode == 0, r
    assert r.stdout == "keep\n"
    assert sorted(p.name for p in share.iterdir()) == ["keep"]
    assert (share / "keep").read_text() == "keep\n"


def refused_mount(kp, rootfs, tmp_path, spec):
    """Runs with a forbidden bind plus an allowed one where a marker would be written."""
    marks = tmp_path / "marks"
    marks.mkdir(exist_ok=True)
    r = run(kp, rootfs, "sh", "-c", "touch /marks/ran", options=["--mount", f"{marks}:/marks", "--mount", spec])
    return r, marks / "ran"


@pytest.mark.parametrize("source", ["/etc", "/usr/share", "/", "/tmp/../etc", "/proc/self"])
def test_mount_outside_the_allow_list_is_refused(kp, rootfs, tmp_path, source):
    r, marker = refused_mount(kp, rootfs, tmp_path, f"{source}:/x")
    assert r.returncode == 4, r
    assert not marker.exists(), "the command ran"
    assert os.path.normpath(source) in r.stderr or source in r.stderr, r.stderr
    assert "/tmp" in r.stderr and "/home" in r.stderr, "the message should name the allow-list"


def test_mount_through_a_symbolic_link_is_judged_by_its_target(kp, rootfs, tmp_path):
    link = tmp_path / "to-etc"
    link.symlink_to("/etc")
    r, marker = refused_mount(kp, rootfs, tmp_path, f"{link}:/x")
    assert r.returncode == 4, r
    assert not marker.exists(), "the command ran"


def test_mount_into_proc_is_refused(kp, rootfs, tmp_path):
    r, marker = refused_mount(kp, rootfs, tmp_path, f"{tmp_path}:/proc/sys/kernel")
    assert r.returncode in (4, 64), r
    assert not marker.exists()


# --- devices ----------------------------------------------------------------------------

def test_only_the_allowed_devices(kp, rootfs):
    r = run(kp, rootfs, "ls", "-A", "/dev")
    assert r.returncode == 0, r
    names = set(r.stdout.split())
    assert names <= DEV_ALLOWED, f"unexpected in /dev: {sorted(names - DEV_ALLOWED)}"
    assert DEV_REQUIRED <= names, f"missing from /dev: {sorted(DEV_REQUIRED - names)}"
    host_only = {n for n in os.listdir("/dev")} - DEV_ALLOWED
    assert host_only, "this host has no other device to hide: the test proves nothing"
    # The standard devices work.
    r = run(kp, rootfs, "sh", "-c", "head -c 16 /dev/urandom | wc -c; head -c 4 /dev/zero | wc -c; echo x > /dev/null")
    assert r.stdout.split() == ["16", "4"], r


def test_devpts_is_a_new_instance(kp, rootfs):
    """The host's terminals are not there, only the multiplexer of a new instance."""
    master, slave = os.openpty()  # so that the host's instance has at least one terminal
    try:
        assert os.path.basename(os.ttyname(slave)) in os.listdir("/dev/pts")
        r = run(kp, rootfs, "ls", "-A", "/dev/pts")
    finally:
        os.close(master)
        os.close(slave)
    assert r.returncode == 0, r
    assert r.stdout.split() == ["ptmx"], r


@pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="no /dev/fuse on this host")
def test_allowed_device_is_passed(kp, rootfs):
    r = run(kp, rootfs, "sh", "-c", "test -c /dev/fuse && ls -A /dev", options=["--device", "/dev/fuse"])
    assert r.returncode == 0, r
    assert "fuse" in r.stdout.split()
    st_host = os.stat("/dev/fuse")
    r = run(kp, rootfs, "stat", "-c", "%t:%T", "/dev/fuse", options=["--device", "/dev/fuse"])
    assert r.stdout.strip() == f"{os.major(st_host.st_rdev):x}:{os.minor(st_host.st_rdev):x}", r


def test_device_outside_the_policy_is_refused(kp, rootfs, tmp_path):
    candidates = ["/dev/vda", "/dev/sda", "/dev/nvme0n1", "/dev/loop0", "/dev/mem", "/dev/kmsg"]
    device = next((d for d in candidates if os.path.exists(d)), None)
    if device is None:
        pytest.skip("none of these devices exists here: " + " ".join(candidates))
    marks = tmp_path / "marks"
    marks.mkdir()
    r = run(kp, rootfs, "sh", "-c", "touch /marks/ran", options=["--device", device, "--mount", f"{marks}:/marks"])
    assert r.returncode == 4, r
    assert device in r.stderr
    assert not (marks / "ran").exists()


# --- environment ------------------------------------------------------------------------

def test_environment_is_rebuilt(kp, rootfs):
    env = dict(DENIED_VARIABLES, TERM="xterm-kptest", LANG="C.UTF-8", KP_NOT_ALLOWED="leak")
    r = run(kp, rootfs, "env", env=env)
    assert r.returncode == 0, r
    inside = dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)
    for name in DENIED_VARIABLES:
        assert name not in inside, name
    assert "KP_NOT_ALLOWED" not in inside
    assert not any(v in r.stdout for v in DENIED_VARIABLES.values())
    assert inside.get("TERM") == "xterm-kptest"
    assert inside.get("LANG") == "C.UTF-8"
    assert inside.get("PATH"), "no PATH"


def test_env_option(kp, rootfs):
    r = run(kp, rootfs, "sh", "-c", 'echo "$KP_SET"', options=["--env", "KP_SET=a b=c"])
    assert r.returncode == 0, r
    assert r.stdout == "a b=c\n"


@pytest.mark.parametrize("name", sorted(DENIED_VARIABLES))
def test_env_option_refuses_denied_names(kp, rootfs, tmp_path, name):
    marks = tmp_path / "marks"
    marks.mkdir()
    r = run(kp, rootfs, "sh", "-c", "touch /marks/ran", options=["--env", f"{name}=x", "--mount", f"{marks}:/marks"])
    assert r.returncode != 0, r
    assert name in r.stderr
    assert not (marks / "ran").exists()


# --- lockdown ---------------------------------------------------------------------------

def test_probe_tells_a_filter_from_the_kernel(sandbox_probe):
    """Outside any sandbox the probe's calls fail, where they fail, with another errno than
    EPERM: so EPERM inside comes from the filter."""
    results = dict(line.split() for line in host_probe(sandbox_probe, "syscalls").splitlines())
    informative = [n for n in SECCOMP_DENIED if results[n] != "EPERM"]
    # (bpf, and calls checking a capability of the host first, may say EPERM on their own.)
    assert {"keyctl", "add_key", "request_key", "perf_event_open", "setns", "mount"} <= set(informative), results


@pytest.mark.parametrize("user", ["self", "root"])
def test_seccomp_denies_with_eperm(kp, rootfs, user):
    r = probe(kp, rootfs, "syscalls", options=["--user", user])
    assert r.returncode == 0, r
    results = dict(line.split() for line in r.stdout.splitlines())
    wrong = {n: v for n, v in results.items() if n in SECCOMP_DENIED and v != "EPERM"}
    assert wrong == {}, r.stdout


def test_nesting_profile_allows_namespaces(kp, rootfs):
    """docs/seccomp.md: namespaces and mounts allowed, keyrings ENOSYS, the rest denied."""
    r = probe(kp, rootfs, "syscalls", options=["--seccomp", "nesting"])
    assert r.returncode == 0, r
    results = dict(line.split() for line in r.stdout.splitlines())
    assert results["unshare-user"] == "ok", r.stdout
    assert results["setns"] == "EBADF", r.stdout
    assert results["mount"] != "EPERM", r.stdout
    for name in ("keyctl", "add_key", "request_key"):
        assert results[name] == "ENOSYS", (name, r.stdout)
    for name in ("init_module", "kexec_load", "bpf", "perf_event_open", "open_by_handle_at", "swapon"):
        assert results[name] == "EPERM", (name, r.stdout)


def test_tiocsti_on_a_new_terminal_is_refused(kp, rootfs, sandbox_probe):
    assert host_probe(sandbox_probe, "tiocsti").strip() != "EPERM"
    r = probe(kp, rootfs, "tiocsti")
    assert r.returncode == 0, r
    assert r.stdout == "EPERM\n"


def run_on_pty(argv, env, timeout=60):
    """Runs argv with a new pseudo-terminal as its controlling terminal and stdin/stdout/
    stderr; returns (exit status, everything written to the terminal)."""
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.execve(argv[0], argv, env)
        finally:
            os._exit(127)
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                data = os.read(fd, 4096)
            except OSError as e:
                if e.errno == errno.EIO:
                    break
                raise
            if not data:
                break
            out += data
    else:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), out.decode(errors="replace")


def test_tiocsti_on_the_callers_terminal_is_refused(kp, rootfs, sandbox_probe):
    """On the user's own terminal, TIOCSTI would type into the shell that runs next. (The
    host may refuse it too, with EIO, when dev.tty.legacy_tiocsti is 0; the filter answers
    first, with EPERM.)"""
    env = dict(kp.env, TERM="xterm")
    status, out = run_on_pty([KARAPACE, "run", "--rootfs", str(rootfs), "--", PROBE, "tiocsti", "/dev/tty"], env)
    assert status == 0, out
    assert out.split()[-1] == "EPERM", out


@not_root
def test_user_self_has_no_capabilities(kp, rootfs):
    r = probe(kp, rootfs, "caps")
    assert r.returncode == 0, r
    f = status_fields(r.stdout)
    for key in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(f[key], 16) == 0, (key, r.stdout)
    assert f["NoNewPrivs"] == "1"
    assert f["Seccomp"] == "2"


def test_user_root_has_a_reduced_set(kp, rootfs):
    r = probe(kp, rootfs, "caps", options=["--user", "root"])
    assert r.returncode == 0, r
    f = status_fields(r.stdout)
    eff, bnd = int(f["CapEff"], 16), int(f["CapBnd"], 16)
    for name in ("CHOWN", "DAC_OVERRIDE", "SETUID", "SETGID"):
        assert eff & (1 << CAP[name]), name
    for name in ("SYS_ADMIN", "SYS_MODULE", "SYS_RAWIO", "SYS_BOOT", "NET_ADMIN", "NET_RAW", "MKNOD",
                 "AUDIT_WRITE"):
        assert not bnd & (1 << CAP[name]), name
        assert not eff & (1 << CAP[name]), name
    assert f["NoNewPrivs"] == "1"
    assert f["Seccomp"] == "2"


def test_sensitive_proc_paths_are_masked(kp, rootfs, sandbox_probe):
    paths = ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sysrq-trigger"]
    host = {line.split()[0]: line.split()[1:] for line in host_probe(sandbox_probe, "masked", *paths).splitlines()}
    r = probe(kp, rootfs, "masked", *paths, options=["--user", "root"])
    assert r.returncode == 0, r
    for line in r.stdout.splitlines():
        path, read, write, kind = line.split()
        # Writable only when masked by the null device, which discards what it is given.
        assert write != "write=ok" or kind == "kind=chr:1:3", line
        if os.path.exists(path):
            assert read in ("read=0", "read=EACCES", "read=EPERM"), line
        else:
            assert read in ("read=0", "read=ENOENT"), line
    # Where the host shows content (as /proc/keys does to its owner), inside shows none.
    shown = [p for p, fields in host.items() if fields[0][5:].isdigit() and fields[0] != "read=0"]
    for line in r.stdout.splitlines():
        if line.split()[0] in shown:
            assert line.split()[1] == "read=0", line


# --- processes --------------------------------------------------------------------------

def test_pid_1_is_the_holder(kp, rootfs):
    r = probe(kp, rootfs, "pids")
    assert r.returncode == 0, r
    f = ids(r.stdout)
    assert f["pid1"] == "karapace-holder"
    assert int(f["pid"]) >= 2


def test_orphans_are_reaped(kp, rootfs, sandbox_probe):
    r = probe(kp, rootfs, "zombie")
    assert r.returncode == 0, r
    assert r.stdout.splitlines() == ["reaped", "parent 1"]


def test_processes_inside_are_the_sandboxs_own(kp, rootfs):
    host = len([e for e in os.listdir("/proc") if e.isdigit()])
    r = run(kp, rootfs, "sh", "-c", "ls /proc | grep -c '^[0-9][0-9]*$'")
    assert r.returncode == 0, r
    # The holder, sh, ls and grep: not the host's processes.
    assert int(r.stdout) <= 4 < host, r


# --- limits -----------------------------------------------------------------------------

def test_memory_limit_kills_an_over_allocating_process(kp, rootfs):
    r = probe(kp, rootfs, "alloc", "16", options=["--memory", "64"])
    assert r.returncode == 0 and r.stdout == "survived\n", r
    r = probe(kp, rootfs, "alloc", "256")
    assert r.returncode == 0 and r.stdout == "survived\n", r
    r = probe(kp, rootfs, "alloc", "256", options=["--memory", "64"])
    assert r.returncode == 128 + signal.SIGKILL, r
    assert "survived" not in r.stdout


def test_pids_limit(kp, rootfs):
    script = "for i in $(seq 12); do sleep 2 & done; wait; echo done"
    r = run(kp, rootfs, "sh", "-c", script)
    assert r.returncode == 0 and "fork" not in r.stderr, r
    r = run(kp, rootfs, "sh", "-c", script, options=["--pids", "8"])
    assert "can't fork" in r.stderr, r


# --- network ----------------------------------------------------------------------------

def interfaces(text):
    return sorted(text.split())


def test_network_none_has_only_lo(kp, rootfs):
    r = probe(kp, rootfs, "netdev", options=["--network", "none"])
    assert r.returncode == 0, r
    assert interfaces(r.stdout) == ["lo"]
    r = run(kp, rootfs, "ip", "-o", "link", options=["--network", "none"])
    assert r.returncode == 0, r
    assert [line.split(":")[1].strip() for line in r.stdout.splitlines()] == ["lo"]


def test_network_host_is_the_hosts(kp, rootfs, sandbox_probe):
    host = interfaces(host_probe(sandbox_probe, "netdev"))
    assert host != ["lo"], "this host has only lo: the test proves nothing"
    r = probe(kp, rootfs, "netdev")
    assert r.returncode == 0, r
    assert interfaces(r.stdout) == host


class Responder:
    """A TCP server on all host addresses answering each connection with a token."""

    def __init__(self):
        self.token = f"kp-pong-{random.randrange(10**9)}"
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("0.0.0.0", 0))
        self.sock.listen(8)
        self.sock.settimeout(1)
        self.port = self.sock.getsockname()[1]
        self.stopped = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            with conn:
                conn.settimeout(5)
                try:
                    conn.recv(64)
                    conn.sendall((self.token + "\n").encode())
                except OSError:
                    pass

    def close(self):
        self.stopped = True
        self.thread.join(timeout=5)
        self.sock.close()


def host_address():
    """The host's IPv4 address towards its default route (a UDP connect sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("203.0.113.1", 9))  # TEST-NET-3: only routed, never reached
        except OSError:
            return None
        address = s.getsockname()[0]
    return None if address.startswith("127.") else address


@pytest.mark.skipif(not (shutil.which("pasta") or shutil.which("slirp4netns")),
                    reason="neither pasta (package passt) nor slirp4netns is installed")
def test_network_user_reaches_the_host(kp, rootfs):
    """User-mode networking reaches the host's services through the host's own address (the
    gateway does not lead to the host's loopback: docs/network.md)."""
    address = host_address()
    if address is None:
        pytest.skip("this host has no IPv4 address but loopback")
    server = Responder()
    try:
        r = probe(kp, rootfs, "connect", address, str(server.port), options=["--network", "user"])
        assert r.returncode == 0, r
        assert r.stdout == server.token + "\n", r
        # Its own namespace, not the host's.
        r = probe(kp, rootfs, "netdev", options=["--network", "user"])
        assert "lo" in r.stdout.split()
        with open("/proc/net/dev") as f:
            host = sorted(line.split(":")[0].strip() for line in f if ":" in line)
        assert interfaces(r.stdout) != host, r
    finally:
        server.close()


def test_network_none_cannot_reach_the_host(kp, rootfs):
    server = Responder()
    try:
        r = probe(kp, rootfs, "connect", "127.0.0.1", str(server.port), options=["--network", "none"])
        assert r.returncode == 0, r
        assert r.stdout.startswith("connect-"), r
    finally:
        server.close()


# --- nothing left behind -----------------------------------------------------------------

def process_table():
    """{pid: (ppid, start time, cmdline)} for every process the caller can see."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        table[int(entry)] = (int(fields[1]), fields[19], cmdline)
    return table


def descendants(table, pid):
    found, todo = set(), [pid]
    while todo:
        p = todo.pop()
        for child, (ppid, _, _) in table.items():
            if ppid == p and child not in found:
                found.add(child)
                todo.append(child)
    return found


def readable_mountinfo():
    lines = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/mountinfo") as f:
                    lines += f.read().splitlines()
            except OSError:
                pass
    return lines


def test_kill_9_of_the_front_end_leaves_nothing(kp, rootfs):
    with open("/proc/self/mountinfo") as f:
        mounts_before = set(f.read().splitlines())
    token = str(random.randrange(10**8, 10**9))
    proc = subprocess.Popen([KARAPACE, "run", "--rootfs", str(rootfs), "--", "sleep", token],
                            env=kp.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            table = process_table()
            if any(c == f"sleep {token}" for _, _, c in table.values()):
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        else:
            pytest.fail("the command never started")
        ours = {p: table[p][1] for p in descendants(table, proc.pid)}
        assert ours, "no process below the front end"
        proc.kill()
        proc.wait(timeout=10)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            table = process_table()
            left = [p for p, start in ours.items() if p in table and table[p][1] == start]
            left += [p for p, (_, _, c) in table.items() if c == f"sleep {token}"]
            if not left:
                break
            time.sleep(0.1)
        assert not left, [table[p] for p in left]
        # Nothing refers to the tree any more: no overlay, fuse-overlayfs or bind of it.
        assert not [p for p, (_, _, c) in table.items() if str(rootfs) in c]
        assert not [line for line in readable_mountinfo() if str(rootfs) in line]
        with open("/proc/self/mountinfo") as f:
            new = set(f.read().splitlines()) - mounts_before
        assert new == set(), new
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_sigterm_to_the_front_end_reaches_the_command(kp, rootfs):
    proc = subprocess.Popen([KARAPACE, "run", "--rootfs", str(rootfs), "--", "sh", "-c",
                             "trap 'echo got-term; exit 5' TERM; echo ready; while :; do sleep 0.1; done"],
                            env=kp.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "ready\n"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
        assert "got-term" in out, (out, err)
        assert proc.returncode == 5, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# --- a real distribution tree (slow: built once with mmdebstrap, needs the network) ------

@pytest.mark.slow
def test_debian_tools_work(kp, debian_tree):
    r = run(kp, debian_tree, "apt-get", "--version")
    assert r.returncode == 0, r
    assert r.stdout.startswith("apt ")
    r = run(kp, debian_tree, "dpkg", "-l")
    assert r.returncode == 0, r
    installed = {line.split()[1].split(":")[0] for line in r.stdout.splitlines() if line.startswith("ii ")}
    assert {"apt", "dpkg", "base-files", "libc6"} <= installed
    r = run(kp, debian_tree, "sh", "-c", "id -un; stat -c %U /etc/passwd", options=["--user", "root"])
    assert r.stdout.split() == ["root", "root"], r


@pytest.mark.slow
def test_debian_writes_go_to_the_throw_away_layer(kp, debian_tree):
    before = kp("unshare", "--", KARAPACE, "digest", debian_tree)
    assert before.returncode == 0, before
    r = run(kp, debian_tree, "sh", "-c",
            "echo kp > /etc/kp-written && rm /usr/bin/apt-get && dpkg --purge --force-all apt >/dev/null 2>&1;"
            " test ! -e /usr/bin/apt-get && cat /etc/kp-written", options=["--user", "root"])
    assert r.returncode == 0, r
    assert r.stdout == "kp\n"
    assert not (debian_tree / "etc" / "kp-written").exists()
    assert (debian_tree / "usr" / "bin" / "apt-get").exists()
    after = kp("unshare", "--", KARAPACE, "digest", debian_tree)
    assert after.stdout == before.stdout
    r = run(kp, debian_tree, "apt-get", "--version")
    assert r.returncode == 0, r
