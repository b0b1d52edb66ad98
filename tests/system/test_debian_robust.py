"""The Debian bootstrap under duress: killed in the middle, and offline in a network
namespace with no network at all (root only: making one needs privilege)."""
import os
import shutil
import signal
import subprocess
import time
import urllib.request

import pytest

from conftest import KARAPACE

pytestmark = pytest.mark.slow


def _mirror_reachable():
    try:
        urllib.request.urlopen("http://deb.debian.org/debian/dists/bookworm/InRelease", timeout=10)
        return True
    except OSError:
        return False


@pytest.fixture(scope="module", autouse=True)
def _need_mirror():
    if not _mirror_reachable():
        pytest.skip("the Debian mirror is not reachable")


def pull(kp, *args, timeout=900):
    return kp("images", "pull", "--json", *args, "debian:bookworm", timeout=timeout)


def test_killed_bootstrap_leaves_a_consistent_store(kp):
    store = kp.tmp / "data" / "karapace"
    env = dict(kp.env)
    proc = subprocess.Popen([KARAPACE, "images", "pull", "debian:bookworm"], env=env,
                            cwd=kp.tmp, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    # Let it get into the sandbox (the packages arrive in a few seconds), then kill it.
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        tmp = store / "tmp"
        if tmp.exists() and any(p.name.startswith("dir-") for p in tmp.iterdir()):
            time.sleep(2)
            break
        time.sleep(0.2)
    assert proc.poll() is None, f"the pull ended before it could be killed: {proc.stderr.read()}"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    # Nothing of the half-built tree is an image or a layer, and the store verifies clean
    # (the exclusive open verify-store does first removes what tmp/ holds).
    listed = kp("images", "list", "--json")
    assert listed.returncode == 0 and listed.json() == [], listed
    v = kp("verify-store", "--json")
    assert v.returncode == 0, v
    assert v.json()["problems"] == []
    assert not [p for p in (store / "tmp").iterdir()], list((store / "tmp").iterdir())
    # And the next pull finishes the job from what was already downloaded.
    r = pull(kp)
    assert r.returncode == 0, r
    assert r.json()["bytes"] < 2_000_000, r.json()  # the InRelease, maybe the index: no packages
    assert kp("verify-store", "--json").json()["problems"] == []


@pytest.mark.skipif(os.getuid() != 0, reason="a network namespace of one's own needs root here")
def test_offline_in_a_namespace_without_network(kp):
    if shutil.which("unshare") is None:
        pytest.skip("no unshare(1)")
    first = pull(kp)
    assert first.returncode == 0, first
    assert kp("images", "rm", "debian:bookworm").returncode == 0
    # No network at all: only lo, down. The package cache is all there is.
    r = subprocess.run(["unshare", "--net", KARAPACE, "images", "pull", "--json", "--offline",
                        "debian:bookworm"], env=kp.env, cwd=kp.tmp, capture_output=True,
                       text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    import json
    res = json.loads(r.stdout)
    assert res["requests"] == 0
    assert res["tree_digest"] == first.json()["tree_digest"]
    # Without --offline the same namespace cannot reach the mirror: a clear error.
    assert kp("images", "rm", "debian:bookworm").returncode == 0
    bad = subprocess.run(["unshare", "--net", KARAPACE, "images", "pull", "debian:bookworm"],
                         env=kp.env, cwd=kp.tmp, capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0
    assert "InRelease" in bad.stderr, bad.stderr
