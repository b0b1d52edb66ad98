"""Debian bases from the mirror: trust checks against a local mirror that forwards to the real
one and alters what a test asks it to (InRelease, Packages, a .deb), and the real mirror for
a whole bootstrap (slow): apt and dpkg work inside, a second pull is one request, a second
store gets the same tree digest."""
import http.server
import json
import os
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import _test_cache

UPSTREAM = "http://deb.debian.org/debian"


def _reachable():
    try:
        urllib.request.urlopen(UPSTREAM + "/dists/bookworm/InRelease", timeout=10)
        return True
    except OSError:
        return False


@pytest.fixture(scope="module", autouse=True)
def _need_mirror():
    if not _reachable():
        pytest.skip("the Debian mirror is not reachable")


class DebMirror:
    """Serves /debian/... by forwarding to the real mirror. Index files (dists/) are fetched
    once per mirror object, so InRelease and Packages stay consistent with each other;
    packages (pool/) are kept on disk in the test cache between runs. `tamper[suffix]` maps
    a path suffix to a function that alters the bytes served."""

    def __init__(self):
        self.tamper = {}
        self.requests = []
        self.dists = {}
        self.pool = _test_cache() / "mirror-pool"
        self.pool.mkdir(parents=True, exist_ok=True)
        mirror = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                mirror.requests.append(self.path)
                try:
                    data = mirror.fetch(self.path)
                except urllib.error.HTTPError as e:
                    self.send_error(e.code)
                    return
                for suffix, fn in mirror.tamper.items():
                    if self.path.endswith(suffix):
                        data = fn(data)
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/debian"

    def fetch(self, path):
        assert path.startswith("/debian/") and ".." not in path
        rel = path[len("/debian/"):]
        if rel.startswith("pool/"):
            local = self.pool / rel.replace("/", "_")
            if not local.exists():
                data = urllib.request.urlopen(f"{UPSTREAM}/{rel}", timeout=60).read()
                tmp = local.with_suffix(".part")
                tmp.write_bytes(data)
                tmp.rename(local)
            return local.read_bytes()
        if rel not in self.dists:
            self.dists[rel] = urllib.request.urlopen(f"{UPSTREAM}/{rel}", timeout=60).read()
        return self.dists[rel]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def mirror():
    m = DebMirror()
    yield m
    m.stop()


def pull(kp, ref, *args, timeout=900):
    return kp("images", "pull", "--json", *args, ref, timeout=timeout)


def nothing_kept(kp):
    listed = kp("images", "list", "--json")
    assert listed.returncode == 0, listed
    assert listed.json() == []
    v = kp("verify-store", "--json")
    assert v.returncode == 0 and v.json()["problems"] == [], v


def test_tampered_inrelease_is_refused(kp, mirror):
    # One letter of the signed text changed: the signature no longer holds.
    mirror.tamper["/InRelease"] = lambda d: d.replace(b"Origin: Debian", b"Origin: Debiam", 1)
    r = pull(kp, f"debian+{mirror.url}#bookworm")
    assert r.returncode == 1, r
    assert "InRelease" in r.stderr and "gpgv" in r.stderr, r.stderr
    assert not any("Packages" in p for p in mirror.requests), mirror.requests
    nothing_kept(kp)
    objects = kp.tmp / "data" / "karapace" / "objects"
    assert not [p for p in objects.rglob("*") if p.is_file()]


def test_tampered_packages_index_is_refused(kp, mirror):
    mirror.tamper["/Packages.xz"] = lambda d: d[:-100] + bytes(100)
    r = pull(kp, f"debian+{mirror.url}#bookworm")
    assert r.returncode == 1, r
    assert "Packages" in r.stderr and "SHA256" in r.stderr, r.stderr
    assert not any("/pool/" in p for p in mirror.requests)
    nothing_kept(kp)


def test_wrong_keyring_is_refused(kp, mirror, tmp_path):
    empty = tmp_path / "keyrings"
    empty.mkdir()
    kp.write("config/karapace/config.toml", f'[mirrors]\nkeyring_dir = "{empty}"\n')
    r = pull(kp, f"debian+{mirror.url}#bookworm")
    assert r.returncode != 0, r
    assert "keyring" in r.stderr and str(empty) in r.stderr, r.stderr
    nothing_kept(kp)


def test_another_suite_signed_release_is_refused(kp, mirror):
    # A genuine, signed InRelease of another suite served as this one's.
    real = mirror.fetch("/debian/dists/trixie/InRelease")
    mirror.tamper["/dists/bookworm/InRelease"] = lambda d: real
    r = pull(kp, f"debian+{mirror.url}#bookworm")
    assert r.returncode == 1, r
    assert "describes suite" in r.stderr, r.stderr
    nothing_kept(kp)


@pytest.mark.slow
def test_tampered_package_is_refused(kp, mirror):
    # Whatever base-files is called today: its archive gets one bit flipped.
    orig = mirror.fetch

    def fetch(path):
        data = orig(path)
        if "/base-files_" in path:
            data = data[:-1] + bytes([data[-1] ^ 1])
        return data
    mirror.fetch = fetch
    r = pull(kp, f"debian+{mirror.url}#bookworm")
    assert r.returncode == 1, r
    assert ".deb" in r.stderr and "SHA256" in r.stderr and "base-files" in r.stderr, r.stderr
    nothing_kept(kp)
    # The mirror fixed, the next pull succeeds and downloads none of the packages that had
    # arrived intact (the failure stops the downloads not yet started).
    mirror.fetch = orig
    first = [p for p in mirror.requests if "/pool/" in p and "/base-files_" not in p]
    before = len(mirror.requests)
    ok = pull(kp, f"debian+{mirror.url}#bookworm")
    assert ok.returncode == 0, ok
    again = [p for p in mirror.requests[before:] if "/pool/" in p]
    assert any("/base-files_" in p for p in again), again
    assert not set(first) & set(again), set(first) & set(again)


@pytest.mark.slow
def test_real_mirror_bootstrap(kp):
    r = pull(kp, "debian/bookworm")
    assert r.returncode == 0, r
    res = r.json()
    assert res["reference"] == "debian:bookworm" and res["cached"] is False
    # apt and dpkg work inside, as you and as root of the namespace.
    a = kp("run", "--image", "debian/bookworm", "--network", "none", "--", "apt-get", "--version")
    assert a.returncode == 0 and a.stdout.startswith("apt "), a
    d = kp("run", "--image", "debian/bookworm", "--network", "none", "--user", "root", "--",
           "dpkg", "-l")
    assert d.returncode == 0, d
    installed = [l.split()[1].split(":")[0] for l in d.stdout.splitlines() if l.startswith("ii ")]
    assert {"apt", "dpkg", "base-files", "bash", "coreutils"} <= set(installed)
    # What the record pins: mirror, suite, the signed Release and every package by SHA256.
    info = kp("images", "inspect", "--json", "debian/bookworm").json()
    info = info[0] if isinstance(info, list) else info
    assert info["mirror"] == UPSTREAM and info["suite"] == "bookworm"
    assert info["inrelease"].startswith("sha256:")
    names = {p["name"] for p in info["packages"]}
    assert names == set(installed)
    assert all(len(p["sha256"]) == 64 for p in info["packages"])
    # Again: one request (the InRelease), nothing rebuilt.
    again = pull(kp, "debian/bookworm")
    assert again.returncode == 0, again
    assert again.json()["cached"] is True and again.json()["requests"] == 1
    # Another store, the same tree digest.
    other_dir = kp.tmp / "second"
    other_dir.mkdir()
    other = kp.__class__(other_dir)
    r2 = pull(other, "debian/bookworm")
    assert r2.returncode == 0, r2
    assert r2.json()["tree_digest"] == res["tree_digest"]
    # And the store verifies clean.
    assert kp("verify-store", "--json").json()["problems"] == []
