"""Fixtures for the system tests: they drive the real karapace binary, as an unprivileged
user, with a private store, configuration and XDG directories per test."""
import fcntl
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

KARAPACE = os.environ.get("KARAPACE_BIN", "")
SOURCE_ROOT = Path(os.environ.get("KARAPACE_SOURCE_ROOT", Path(__file__).resolve().parents[2]))
# The static probe run inside sandboxes (tests/sandbox-probe.c), set by meson.
SANDBOX_PROBE = os.environ.get("KARAPACE_SANDBOX_PROBE", "")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: needs the network or minutes (the Debian tree); deselect with -m 'not slow'")
    if not KARAPACE or not os.access(KARAPACE, os.X_OK):
        raise pytest.UsageError("set KARAPACE_BIN to the karapace binary (tests/system/run-system-tests does)")
    if os.getuid() == 0 and os.environ.get("KARAPACE_TEST_AS_ROOT") != "1":
        raise pytest.UsageError(
            "the system tests prove rootless behaviour: run them as an unprivileged user "
            "(tests/system/run-system-tests drops to one), or set KARAPACE_TEST_AS_ROOT=1 for the root-only pass")


class Result:
    def __init__(self, proc):
        self.returncode = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr

    def json(self):
        return json.loads(self.stdout)

    def __repr__(self):
        return f"<exit {self.returncode}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}>"


class Karapace:
    """Runs the binary with an isolated environment rooted in a temporary directory."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.home = tmp / "home"
        self.home.mkdir()
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            "USER": os.environ.get("USER", "tester"),
            "LANG": "C.UTF-8",
            "NO_COLOR": "1",
            "XDG_CONFIG_HOME": str(tmp / "config"),
            "XDG_DATA_HOME": str(tmp / "data"),
            "KARAPACE_CONFIG": str(tmp / "config" / "karapace" / "config.toml"),
        }
        if os.environ.get("XDG_RUNTIME_DIR"):
            self.env["XDG_RUNTIME_DIR"] = os.environ["XDG_RUNTIME_DIR"]

    def __call__(self, *args, input=None, cwd=None, env=None, timeout=120):
        e = dict(self.env)
        if env:
            e.update(env)
        proc = subprocess.run([KARAPACE, *map(str, args)], input=input, cwd=cwd or self.tmp,
                              env=e, capture_output=True, text=True, timeout=timeout)
        return Result(proc)

    def write(self, name, text):
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path


@pytest.fixture(autouse=True)
def _remove_subordinate_files(tmp_path):
    """Stores made by a test hold layer trees owned by subordinate ids, which the user can
    only remove inside the store's user namespace: clean them up that way."""
    yield
    if os.getuid() == 0 or not tmp_path.exists():
        return
    try:
        shutil.rmtree(tmp_path)
    except OSError:
        subprocess.run([KARAPACE, "unshare", "--", "rm", "-rf", str(tmp_path)],
                       capture_output=True, timeout=120)


@pytest.fixture
def kp(tmp_path):
    return Karapace(tmp_path)


@pytest.fixture
def source_root():
    return SOURCE_ROOT


@pytest.fixture(scope="session")
def sandbox_probe():
    """tests/sandbox-probe, static, so that it runs in any root filesystem."""
    if not SANDBOX_PROBE or not os.access(SANDBOX_PROBE, os.X_OK):
        pytest.skip("no sandbox-probe: KARAPACE_SANDBOX_PROBE is unset (meson sets it when the "
                    "C library can link statically: libc6-dev)")
    return Path(SANDBOX_PROBE)


@pytest.fixture(scope="session")
def rootfs(tmp_path_factory, sandbox_probe):
    """A busybox root filesystem owned by the caller (tests/make-test-rootfs), with the
    probe as /usr/bin/sandbox-probe. Shared by the session: tests must not change it, which
    is what a sandbox promises anyway (test_run.py checks that)."""
    if not os.access("/bin/busybox", os.X_OK):
        pytest.skip("no /bin/busybox: install busybox-static (scripts/install-deps --test)")
    tree = tmp_path_factory.mktemp("rootfs") / "tree"
    r = subprocess.run([str(SOURCE_ROOT / "tests" / "make-test-rootfs"), str(tree), str(sandbox_probe)],
                       capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        pytest.fail(f"make-test-rootfs failed ({r.returncode}):\n{r.stderr}")
    return tree


def _test_cache():
    cache = os.environ.get("KARAPACE_TEST_CACHE")
    return Path(cache) if cache else Path.home() / ".cache" / "karapace-test"


def _subordinate_ranges_exist():
    import pwd
    name = pwd.getpwuid(os.getuid()).pw_name
    for path in ("/etc/subuid", "/etc/subgid"):
        try:
            with open(path) as f:
                if not any(line.split(":")[0] in (name, str(os.getuid())) for line in f):
                    return False
        except FileNotFoundError:
            return False
    return True


@pytest.fixture(scope="session")
def debian_tree():
    """A Debian bookworm minbase tree made by mmdebstrap, built once (it needs the network,
    about 15 s on a fast mirror) and kept in $KARAPACE_TEST_CACHE (default
    ~/.cache/karapace-test). As a user it is made with --mode=unshare, so it is owned as the
    runtime expects: inside id i is the i-th subordinate id. As root, --mode=root, owned by
    the real ids. A build that fails leaves no tree behind and fails the tests using it."""
    if not shutil.which("mmdebstrap"):
        pytest.skip("mmdebstrap is not installed (scripts/install-deps --test)")
    root = os.getuid() == 0
    if not root and not _subordinate_ranges_exist():
        pytest.skip("mmdebstrap --mode=unshare needs ranges in /etc/subuid and /etc/subgid")
    suite = os.environ.get("KARAPACE_TEST_DEBIAN_SUITE", "bookworm")
    cache = _test_cache()
    cache.mkdir(parents=True, exist_ok=True)
    name = f"debian-{suite}-minbase" + ("-root" if root else "")
    tree = cache / name
    done = cache / f"{name}.done"
    with open(cache / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time, the others wait for it
        if done.exists() and tree.is_dir():
            return tree
        partial = cache / f"{name}.partial"
        for leftover in (partial, tree):
            _remove_tree(leftover)
        mode = "--mode=root" if root else "--mode=unshare"
        r = subprocess.run(["mmdebstrap", "--quiet", "--variant=minbase", mode, suite, str(partial)],
                           capture_output=True, text=True, timeout=1200, cwd="/")
        if r.returncode != 0:
            _remove_tree(partial)
            pytest.fail(f"mmdebstrap failed ({r.returncode}):\n{r.stderr[-4000:]}")
        if root:
            os.chmod(partial, 0o755)
        partial.rename(tree)
        done.write_text(suite + "\n")
        return tree


def _remove_tree(path):
    """Removes a tree that may be owned by the caller's subordinate ids."""
    if not os.path.lexists(path):
        return
    try:
        shutil.rmtree(path)
    except OSError:
        subprocess.run([KARAPACE, "unshare", "--", "rm", "-rf", str(path)],
                       capture_output=True, timeout=600)
