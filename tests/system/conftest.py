"""Fixtures for the system tests: they drive the real karapace binary, as an unprivileged
user, with a private store, configuration and XDG directories per test."""
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

KARAPACE = os.environ.get("KARAPACE_BIN", "")
SOURCE_ROOT = Path(os.environ.get("KARAPACE_SOURCE_ROOT", Path(__file__).resolve().parents[2]))


def pytest_configure(config):
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
