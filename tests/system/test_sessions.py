"""Persistent holders: `karapace run --session NAME` starts a holder the first time and joins
it later, as `enter`/`exec` will (docs/runtime.md). Run as the unprivileged user."""
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from conftest import KARAPACE


def _name():
    return "t-" + uuid.uuid4().hex[:10]


def _state_dir(kp, name):
    runtime = kp.env.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_dir() and Path(runtime).stat().st_uid == os.getuid():
        base = Path(runtime) / "karapace"
    else:
        base = Path(f"/tmp/karapace-{os.getuid()}")
    return base / "sessions" / name


def _start(kp, rootfs, name, *command):
    """A first session in the background; returns once its holder answers."""
    proc = subprocess.Popen([KARAPACE, "run", "--session", name, "--rootfs", str(rootfs), "--", *command],
                            env=kp.env, cwd=kp.tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    sock = _state_dir(kp, name) / "holder.sock"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if sock.exists() and kp("run", "--session", name, "--", "true").returncode == 0:
            return proc
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    out, err = proc.communicate()
    pytest.fail(f"the first session did not come up: exit {proc.returncode}\n{err}")


def _holder_children(pid):
    """Pids whose parent is pid (the holder is a child of the first front end)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def _comm(pid):
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None


def _gone(pid, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _comm(pid) is None:
            return True
        time.sleep(0.05)
    return False


def test_later_sessions_join_the_same_environment(kp, rootfs):
    name = _name()
    first = _start(kp, rootfs, name, "sh", "-c", "echo from-first > /tmp/marker; exec sleep 1000")
    try:
        r = kp("run", "--session", name, "--", "sh", "-c", "cat /tmp/marker; cat /proc/1/comm; ps -o comm")
        assert r.returncode == 0, r
        lines = r.stdout.split()
        # The same throw-away layer, the same pid 1, the first session's process visible.
        assert lines[0] == "from-first"
        assert lines[1] == "karapace-holder"
        assert "sleep" in lines
        # The exit status of a joined session is its command's.
        assert kp("run", "--session", name, "--", "sh", "-c", "exit 5").returncode == 5
    finally:
        first.terminate()
        first.communicate(timeout=10)


def test_concurrent_sessions_share_one_holder(kp, rootfs):
    name = _name()
    first = _start(kp, rootfs, name, "sleep", "1000")
    try:
        procs = [subprocess.Popen([KARAPACE, "run", "--session", name, "--", "sh", "-c",
                                   f"echo {i} > /tmp/s{i}; cat /proc/1/comm; sleep 0.3"],
                                  env=kp.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for i in range(6)]
        for p in procs:
            out, err = p.communicate(timeout=30)
            assert p.returncode == 0, err
            assert out.strip() == "karapace-holder"
        r = kp("run", "--session", name, "--", "sh", "-c", "cat /tmp/s0 /tmp/s1 /tmp/s2 /tmp/s3 /tmp/s4 /tmp/s5")
        assert r.stdout.split() == ["0", "1", "2", "3", "4", "5"], r
        holders = [p for p in _holder_children(first.pid) if _comm(p) == "karapace-holder"]
        assert len(holders) == 1
    finally:
        first.terminate()
        first.communicate(timeout=10)


def test_holder_ends_with_its_last_session(kp, rootfs):
    name = _name()
    first = _start(kp, rootfs, name, "sleep", "1000")
    holders = [p for p in _holder_children(first.pid) if _comm(p) == "karapace-holder"]
    assert len(holders) == 1
    # SIGTERM to karapace reaches the command; its status comes back as 128+15.
    first.send_signal(signal.SIGTERM)
    first.communicate(timeout=10)
    assert first.returncode == 143
    assert _gone(holders[0]), "the holder outlived its last session"
    assert not (_state_dir(kp, name) / "holder.sock").exists()
    r = kp("run", "--session", name, "--", "true")
    assert r.returncode == 4 and f"no session {name} is running" in r.stderr, r


def test_stop_ends_every_session(kp, rootfs):
    name = _name()
    first = _start(kp, rootfs, name, "sleep", "1000")
    second = subprocess.Popen([KARAPACE, "run", "--session", name, "--", "sleep", "1000"],
                              env=kp.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.3)
    holders = [p for p in _holder_children(first.pid) if _comm(p) == "karapace-holder"]
    r = kp("run", "--session", name, "--stop")
    assert r.returncode == 0, r
    first.communicate(timeout=15)
    second.communicate(timeout=15)
    # Each session's command got SIGTERM.
    assert first.returncode == 143 and second.returncode == 143
    assert _gone(holders[0])
    assert kp("run", "--session", name, "--stop").returncode == 4


def test_kill_9_of_the_only_front_end_ends_the_holder(kp, rootfs):
    name = _name()
    first = _start(kp, rootfs, name, "sh", "-c", "sleep 1000 & sleep 1001")
    holders = [p for p in _holder_children(first.pid) if _comm(p) == "karapace-holder"]
    assert len(holders) == 1
    first.kill()
    first.communicate(timeout=10)
    assert _gone(holders[0])
    # Neither the command nor its background child survived.
    r = subprocess.run(["pgrep", "-u", str(os.getuid()), "-f", "sleep 100[01]"],
                       capture_output=True, text=True)
    assert r.stdout.strip() == ""


def test_state_directory_is_private(kp, rootfs):
    name = _name()
    first = _start(kp, rootfs, name, "sleep", "1000")
    try:
        state = _state_dir(kp, name)
        assert (state.stat().st_mode & 0o777) == 0o700
        assert state.stat().st_uid == os.getuid()
        assert (state / "holder.sock").stat().st_uid == os.getuid()
    finally:
        first.terminate()
        first.communicate(timeout=10)


def test_joining_without_a_holder_or_rootfs_is_refused(kp):
    r = kp("run", "--session", _name(), "--", "true")
    assert r.returncode == 4
    assert "start it with --rootfs" in r.stderr


def test_session_names_are_checked(kp, rootfs):
    for bad in ("../x", ".hidden", "a/b", "x" * 65):
        r = kp("run", "--session", bad, "--rootfs", rootfs, "--", "true")
        assert r.returncode == 64, (bad, r)


# --- terminals and job control -------------------------------------------------------

def _read_until(fd, needle, timeout=15):
    import select
    seen = b""
    deadline = time.monotonic() + timeout
    while needle.encode() not in seen:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"waited for {needle!r}, got {seen.decode(errors='replace')!r}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    return seen.decode(errors="replace")


def test_job_control_on_a_terminal(kp, rootfs):
    """An interactive shell's job control: ^C reaches the command, ^Z stops karapace with
    it and gives the terminal back to the shell, fg continues it with the terminal."""
    import pty
    pid, fd = pty.fork()
    if pid == 0:
        env = dict(kp.env, PS1="PROMPT$ ", TERM="dumb")
        os.execve("/bin/bash", ["bash", "--norc", "--noprofile", "-i"], env)
    try:
        _read_until(fd, "PROMPT$ ")
        # The command reads the terminal: it must be the foreground job to do so.
        os.write(fd, f"{KARAPACE} run --rootfs {rootfs} -- sh -c 'read line; echo got-$line'\n".encode())
        time.sleep(1.0)
        os.write(fd, b"\x1a")  # ^Z
        out = _read_until(fd, "PROMPT$ ")
        assert "Stopped" in out, out
        os.write(fd, b"jobs\n")
        assert "Stopped" in _read_until(fd, "PROMPT$ ")
        os.write(fd, b"fg\n")
        time.sleep(0.5)
        os.write(fd, b"hello\n")
        out = _read_until(fd, "got-hello")
        _read_until(fd, "PROMPT$ ")
        # ^C goes to the command (the foreground job), and its status comes back.
        os.write(fd, f"{KARAPACE} run --rootfs {rootfs} -- sleep 30; echo status=$?\n".encode())
        time.sleep(1.0)
        os.write(fd, b"\x03")  # ^C
        out = _read_until(fd, "status=")
        out += _read_until(fd, "PROMPT$ ")
        assert "status=130" in out, out
        os.write(fd, b"exit\n")
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)
        os.close(fd)


def _confinement(kp, name):
    """A joined session's view of its own confinement: (status fields, syscall results)."""
    caps = kp("run", "--session", name, "--", "/usr/bin/sandbox-probe", "caps")
    assert caps.returncode == 0, caps
    calls = kp("run", "--session", name, "--", "/usr/bin/sandbox-probe", "syscalls")
    assert calls.returncode == 0, calls
    fields = {k.strip(): v.strip() for k, v in
              (line.split(":", 1) for line in caps.stdout.splitlines() if ":" in line)}
    return fields, dict(line.split() for line in calls.stdout.splitlines())


def _header_and_body(data):
    header, _, body = data.partition(b"\n")
    return header + b"\n", body


@pytest.mark.parametrize("damage", [
    None,
    lambda d: d[:-3],                                           # cut short
    lambda d: _header_and_body(d)[0] + b"\0" * 8,              # not a program the kernel takes
    lambda d: _header_and_body(d)[1],                           # no header
    lambda d: b"",
], ids=["intact", "cut-short", "refused-by-the-kernel", "no-header", "empty"])
def test_joined_sessions_are_confined_like_the_first(kp, rootfs, damage):
    """The holder's starter keeps the compiled seccomp filter in the state directory and
    joined sessions load it rather than compile it (docs/runtime.md). Whatever became of
    that file, a joined command runs under the same filter, with no capabilities and
    no_new_privs."""
    name = _name()
    first = _start(kp, rootfs, name, "sleep", "1000")
    try:
        kept = _state_dir(kp, name) / "seccomp-default.bpf"
        data = kept.read_bytes()
        header, body = _header_and_body(data)
        assert header.startswith(b"karapace-seccomp-1 default "), header
        assert len(body) > 0 and len(body) % 8 == 0, len(body)
        assert kept.stat().st_mode & 0o077 == 0, oct(kept.stat().st_mode)
        if damage is not None:
            kept.write_bytes(damage(data))
        fields, results = _confinement(kp, name)
        assert fields["Seccomp"] == "2" and fields["NoNewPrivs"] == "1", fields
        assert int(fields["CapEff"], 16) == 0 and int(fields["CapBnd"], 16) == 0, fields
        denied = ["keyctl", "add_key", "unshare-user", "unshare-net", "mount", "setns"]
        assert {n: results[n] for n in denied} == {n: "EPERM" for n in denied}, results
    finally:
        kp("run", "--session", name, "--stop")
        first.wait(timeout=30)


def test_next_holder_reuses_the_kept_filter_of_the_same_build(kp, rootfs):
    """A holder started again in the same state directory loads the filter the previous
    one kept when the same build made it (the file is left as it is), and compiles and
    replaces one another build made."""
    name = _name()
    assert kp("run", "--session", name, "--rootfs", str(rootfs), "--", "true").returncode == 0
    kept = _state_dir(kp, name) / "seccomp-default.bpf"
    before = kept.stat()
    assert kp("run", "--session", name, "--rootfs", str(rootfs), "--", "true").returncode == 0
    after = kept.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    # Another build's file: replaced, and the session still confined.
    header, body = _header_and_body(kept.read_bytes())
    kept.write_bytes(header.replace(b"libseccomp-", b"libseccomp-0") + body)
    first = _start(kp, rootfs, name, "sleep", "1000")
    try:
        assert b"libseccomp-0" not in kept.read_bytes()
        fields, results = _confinement(kp, name)
        assert fields["Seccomp"] == "2" and results["mount"] == "EPERM", (fields, results)
    finally:
        kp("run", "--session", name, "--stop")
        first.wait(timeout=30)


def test_a_new_holder_waits_for_the_previous_one_to_end(kp, rootfs):
    """A holder that no longer answers (its socket is gone: it is ending) still has its
    overlay mounted until it has exited. A new holder in the same state directory waits
    for it to be gone before it mounts its own over the same directories."""
    name = _name()
    first = _start(kp, rootfs, name, "sleep", "1000")
    holders = [p for p in _holder_children(first.pid) if _comm(p) == "karapace-holder"]
    assert len(holders) == 1
    (_state_dir(kp, name) / "holder.sock").unlink()
    second = subprocess.Popen([KARAPACE, "run", "--session", name, "--rootfs", str(rootfs), "--",
                               "echo", "second"],
                              env=kp.env, cwd=kp.tmp, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1)
        assert second.poll() is None, second.communicate()
        assert _comm(holders[0]) == "karapace-holder"
        first.kill()
        first.communicate(timeout=10)
        out, err = second.communicate(timeout=30)
        assert second.returncode == 0 and out == "second\n", (second.returncode, out, err)
        # Exited before the new one started (a zombie until its new parent reaps it).
        try:
            state = Path(f"/proc/{holders[0]}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            state = "gone"
        assert state in ("Z", "X", "gone"), state
    finally:
        if second.poll() is None:
            second.kill()
            second.communicate()
