"""`karapace unshare`: a command in the store's user namespace. Inside, the command is root
(the first subordinate id on the host), the caller's own uid and gid are themselves, every
other id i is the caller's i-th subordinate id, files chowned inside land on the host owned
by those ids, mounts stay inside, and the command's exit status comes back."""
import os
import shutil
import subprocess

import pytest

from subids import caller_ranges

ROOT = os.getuid() == 0


SUBUIDS = caller_ranges("/etc/subuid")
SUBGIDS = caller_ranges("/etc/subgid")

needs_ranges = pytest.mark.skipif(
    ROOT or not (SUBUIDS and SUBGIDS),
    reason="as root no id mapping is made" if ROOT
    else "this user has no ranges in /etc/subuid and /etc/subgid")


def map_lines(text):
    return [tuple(int(x) for x in line.split()) for line in text.splitlines() if line.strip()]


def keep_id_map(ranges, self_id):
    """The lines docs/userns.md promises: S (the ranges in file order, those overlapping
    the caller's own id or an earlier range left out) laid out from inside 0, with inside
    self_id mapped to itself and S[self_id] unused."""
    used = []
    total = 0
    for start, count in ranges:
        if total + count > 2**32 - 1:
            break
        if start <= self_id < start + count:
            continue
        if any(start < s + c and s < start + count for s, c in used):
            continue
        used.append((start, count))
        total += count
    lines = []
    inside = 0
    for start, count in used:
        if inside <= self_id < inside + count:
            before = self_id - inside
            lines.append((inside, start, before))
            lines.append((self_id + 1, start + before + 1, count - before - 1))
        else:
            lines.append((inside, start, count))
        inside += count
    lines = [line for line in lines if line[2] > 0][:9]
    return sorted(lines + [(self_id, self_id, 1)])


def host_id(lines, inside):
    for first, outside, count in lines:
        if first <= inside < first + count:
            return outside + inside - first
    raise AssertionError(f"inside id {inside} is not mapped by {lines}")


UID_MAP = keep_id_map(SUBUIDS, os.getuid())
GID_MAP = keep_id_map(SUBGIDS, os.getgid())


def test_help(kp):
    r = kp("unshare", "--help")
    assert r.returncode == 0, r
    assert r.stdout.startswith("Usage: karapace unshare")
    assert "subordinate" in r.stdout
    assert kp("help", "unshare").stdout == r.stdout


def test_root_inside(kp):
    r = kp("unshare", "--", "id", "-u")
    assert r.returncode == 0, r
    assert r.stdout == "0\n"
    r = kp("unshare", "--", "id", "-g")
    assert r.stdout == "0\n", r


def test_options_end_at_the_command(kp):
    r = kp("unshare", "id", "-u")
    assert r.returncode == 0, r
    assert r.stdout == "0\n"


@needs_ranges
def test_full_mapping(kp):
    r = kp("unshare", "--", "cat", "/proc/self/uid_map")
    assert r.returncode == 0, r
    lines = map_lines(r.stdout)
    assert lines == UID_MAP
    assert (os.getuid(), os.getuid(), 1) in lines
    r = kp("unshare", "--", "cat", "/proc/self/gid_map")
    lines = map_lines(r.stdout)
    assert lines == GID_MAP
    assert (os.getgid(), os.getgid(), 1) in lines


@pytest.mark.skipif(not ROOT and (SUBUIDS and SUBGIDS),
                    reason="this user has subordinate ranges: the single-id map is not used")
def test_single_or_root_mapping(kp):
    r = kp("unshare", "--", "cat", "/proc/self/uid_map")
    assert r.returncode == 0, r
    expected = (0, 0, 4294967295) if ROOT else (0, os.getuid(), 1)
    assert map_lines(r.stdout) == [expected]


@needs_ranges
def test_chown_lands_on_subordinate_ids(kp, tmp_path):
    work = tmp_path / "owned"
    work.mkdir()
    r = kp("unshare", "--", "sh", "-c",
           'touch "$1/root" "$1/one" "$1/thousand" && chown 1:1 "$1/one" '
           '&& chown 1000:1000 "$1/thousand"',
           "sh", work)
    assert r.returncode == 0, r
    # What root creates inside is the first subordinate id on the host, not the caller.
    root = os.stat(work / "root")
    assert (root.st_uid, root.st_gid) == (host_id(UID_MAP, 0), host_id(GID_MAP, 0))
    assert root.st_uid != os.getuid()
    one = os.stat(work / "one")
    assert (one.st_uid, one.st_gid) == (host_id(UID_MAP, 1), host_id(GID_MAP, 1))
    thousand = os.stat(work / "thousand")
    assert (thousand.st_uid, thousand.st_gid) == (host_id(UID_MAP, 1000), host_id(GID_MAP, 1000))
    # Inside, the same file is owned by 1 and can be changed and removed.
    r = kp("unshare", "--", "stat", "-c", "%u:%g", work / "one")
    assert r.stdout == "1:1\n", r
    r = kp("unshare", "--", "sh", "-c",
           'chmod 0600 "$1/one" && rm "$1/root" "$1/one" "$1/thousand"', "sh", work)
    assert r.returncode == 0, r
    assert list(work.iterdir()) == []


@needs_ranges
def test_callers_files_keep_their_owner(kp, tmp_path):
    mine = tmp_path / "mine"
    mine.write_text("mine\n")
    uid, gid = os.getuid(), os.getgid()
    # The caller's own file shows the caller's ids inside, not 0.
    r = kp("unshare", "--", "stat", "-c", "%u:%g", mine)
    assert r.returncode == 0, r
    assert r.stdout == f"{uid}:{gid}\n"
    # Root inside may still change it, and a file given the caller's ids inside is the
    # caller's on the host.
    r = kp("unshare", "--", "sh", "-c",
           'chmod 0600 "$1/mine" && touch "$1/given" && chown "$2:$3" "$1/given"',
           "sh", tmp_path, str(uid), str(gid))
    assert r.returncode == 0, r
    assert mine.stat().st_mode & 0o777 == 0o600
    given = os.stat(tmp_path / "given")
    assert (given.st_uid, given.st_gid) == (uid, gid)
    os.unlink(tmp_path / "given")


def test_mounts_stay_inside(kp, tmp_path):
    target = tmp_path / "mnt"
    target.mkdir()
    r = kp("unshare", "--", "sh", "-c",
           'mount -t tmpfs kp-test "$1" && touch "$1/inside" && test -e "$1/inside"',
           "sh", target)
    assert r.returncode == 0, r
    assert list(target.iterdir()) == []
    assert os.stat(target).st_dev == os.stat(tmp_path).st_dev


def test_exit_status_propagates(kp):
    assert kp("unshare", "--", "sh", "-c", "exit 7").returncode == 7
    assert kp("unshare", "--", "true").returncode == 0
    assert kp("unshare", "--", "sh", "-c", "kill -TERM $$").returncode == 128 + 15


def test_stdio_is_the_callers(kp):
    r = kp("unshare", "--", "sh", "-c", "cat; echo err >&2", input="from stdin\n")
    assert r.returncode == 0, r
    assert r.stdout == "from stdin\n"
    assert r.stderr == "err\n"


def test_default_command_is_the_shell(kp):
    r = kp("unshare", input="id -u\nexit 3\n", env={"SHELL": "/bin/sh"})
    assert r.returncode == 3, r
    assert r.stdout == "0\n"


def test_command_not_found(kp):
    r = kp("unshare", "--", "/nonexistent/kp-no-such-command")
    assert r.returncode == 127, r
    assert "kp-no-such-command" in r.stderr and "No such file" in r.stderr
    r = kp("--json", "unshare", "--", "/nonexistent/kp-no-such-command")
    assert r.returncode == 127
    assert '"status":127' in r.stderr


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
def test_namespace_failure_is_reported(kp):
    # Fault injection: unshare(2) fails as it does where user namespaces are disabled.
    proc = subprocess.run(
        ["strace", "-f", "-o", "/dev/null", "-e", "trace=unshare",
         "-e", "inject=unshare:error=EPERM", os.environ["KARAPACE_BIN"], "unshare", "--", "id"],
        env=kp.env, cwd=kp.tmp, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 4, proc.stderr
    assert proc.stdout == ""
    assert "unshare the" in proc.stderr and "Operation not permitted" in proc.stderr
    if not ROOT:
        assert "hint:" in proc.stderr and "user namespaces" in proc.stderr


@needs_ranges
def test_newuidmap_failure_is_reported(kp, tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "newuidmap").write_text("#!/bin/sh\necho 'newuidmap: refused for the test' >&2\nexit 1\n")
    (fake / "newuidmap").chmod(0o755)
    r = kp("unshare", "--", "id", "-u", env={"PATH": f"{fake}:{kp.env['PATH']}"})
    assert r.returncode == 4, r
    assert r.stdout == ""
    assert "map subordinate ids" in r.stderr
    assert "exited with status 1: newuidmap: refused for the test" in r.stderr
    assert "hint:" in r.stderr


def test_no_descriptors_leak(kp):
    # The setup socket and pipes are close-on-exec: the command sees stdio only (and the
    # directory ls itself opens).
    r = kp("unshare", "--", "ls", "/proc/self/fd")
    assert r.returncode == 0, r
    assert sorted(r.stdout.split()) == ["0", "1", "2", "3"]
