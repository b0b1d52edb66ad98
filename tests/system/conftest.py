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


# ==== Registries, OCI test images and an LXC image server ====
# Helpers in registry.py and ociimage.py; the fixtures' own tests in
# test_registry_fixture.py. None of them needs the network.

def _need_registry_tools():
    for tool in ("docker-registry", "skopeo", "htpasswd", "openssl"):
        if not shutil.which(tool):
            pytest.skip(f"no {tool}: install docker-registry skopeo apache2-utils openssl "
                        "(scripts/install-deps --test)")


def _start_registry(tmp_path_factory, mode):
    _need_registry_tools()
    from registry import start_registry
    return start_registry(tmp_path_factory.mktemp(f"registry-{mode}"), mode)


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """docker-registry on 127.0.0.1, anonymous, empty, shared by the module: .host
    ("127.0.0.1:PORT"), .url, .port, .tamper(digest), .blob_path(digest) (registry.py)."""
    reg = _start_registry(tmp_path_factory, "anonymous")
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def registry_basic(tmp_path_factory):
    """docker-registry with htpasswd basic authentication; .creds is (user, password)."""
    reg = _start_registry(tmp_path_factory, "basic")
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def registry_token(tmp_path_factory):
    """docker-registry with bearer tokens from a TokenServer (RS256 JWTs, x5c header);
    .creds is what the token server accepts, .token_server.issued counts the tokens."""
    reg = _start_registry(tmp_path_factory, "token")
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def _busybox_tree(tmp_path_factory):
    """tests/make-test-rootfs without the probe, made once; tests must not change it."""
    if not os.access("/bin/busybox", os.X_OK):
        pytest.skip("no /bin/busybox: install busybox-static (scripts/install-deps --test)")
    from ociimage import busybox_tree
    return busybox_tree(tmp_path_factory.mktemp("busybox") / "tree")


@pytest.fixture(scope="session")
def oci_test_layout(tmp_path_factory, _busybox_tree):
    """The test image of ociimage.py as an OCI layout, built once per session: an
    ociimage.OciImage (.path, .tag "v1" naming the two-platform index, .platform_tag() the
    host platform's manifest alone, .digest, .manifests, .layers). Read-only for tests:
    copy it (or build_layout into tmp_path) to change it."""
    from ociimage import build_layout
    return build_layout(tmp_path_factory.mktemp("oci-test-layout") / "oci", "v1",
                        busybox=_busybox_tree)


LXC_TEST_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "armhf", "ppc64le": "ppc64el",
                 "s390x": "s390x", "riscv64": "riscv64"}.get(os.uname().machine, os.uname().machine)


@pytest.fixture(scope="session")
def _lxc_tarball(tmp_path_factory, _busybox_tree):
    """root.tar.xz of the busybox tree (owners 0:0, fixed mtimes, fixed /etc/passwd)."""
    import lzma
    from ociimage import FIXED_GROUP, FIXED_PASSWD, tar_bytes, tree_entries
    raw = tar_bytes(tree_entries(_busybox_tree, {"etc/passwd": FIXED_PASSWD, "etc/group": FIXED_GROUP}))
    path = tmp_path_factory.mktemp("lxc-tarball") / "rootfs.tar.xz"
    path.write_bytes(lzma.compress(raw, preset=6))
    return path


class LxcServer:
    """A plain HTTP server on 127.0.0.1 serving a simplestreams tree (streams/v1/index.json
    and images.json) with one product, testos:one:ARCH:default, whose one build VERSION has
    a root.tar.xz item with the right sha256 and size. .ref is "lxc://HOST/testos/one";
    .counts counts GETs by path."""
    VERSION = "20241120_05:24"

    def __init__(self, root, tarball, tree):
        import http.server
        import threading
        self.root, self.tree, self.arch = root, tree, LXC_TEST_ARCH
        self.path = f"images/testos/one/{self.arch}/default/{self.VERSION}/rootfs.tar.xz"
        self.tarball = root / self.path
        self.tarball.parent.mkdir(parents=True)
        shutil.copyfile(tarball, self.tarball)
        self.counts = {}
        self.write_index()
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a, **kw):
                super().__init__(*a, directory=str(root), **kw)

            def do_GET(self):
                server.counts[self.path] = server.counts.get(self.path, 0) + 1
                super().do_GET()

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.url = f"http://{self.host}"
        self.ref = f"lxc://{self.host}/testos/one"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def write_index(self, sha256=None, size=None):
        """(Re)writes the product list for the tarball now in place; sha256 and size
        override what it says."""
        import hashlib
        data = self.tarball.read_bytes()
        self.sha256 = sha256 or hashlib.sha256(data).hexdigest()
        self.size = size if size is not None else len(data)
        item = {"ftype": "root.tar.xz", "path": self.path, "sha256": self.sha256, "size": self.size}
        products = {"format": "products:1.0", "content_id": "images", "products": {
            f"testos:one:{self.arch}:default": {
                "os": "TestOS", "release": "one", "arch": self.arch, "variant": "default",
                "aliases": "testos/one/default,testos/one",
                "versions": {self.VERSION: {"items": {"root.tar.xz": item}}}}}}
        streams = self.root / "streams" / "v1"
        streams.mkdir(parents=True, exist_ok=True)
        (streams / "images.json").write_text(json.dumps(products, sort_keys=True))
        (streams / "index.json").write_text(json.dumps(
            {"format": "index:1.0", "index": {"images": {
                "datatype": "image-downloads", "format": "products:1.0",
                "path": "streams/v1/images.json", "products": [f"testos:one:{self.arch}:default"]}}},
            sort_keys=True))

    def swap(self, path, update_index=False):
        """Serves the file at `path` as the root.tar.xz; the index keeps the old sha256 and
        size unless update_index."""
        shutil.copyfile(path, self.tarball)
        if update_index:
            self.write_index()

    def tamper(self, offset=-100):
        """Flips one byte of the served tarball; the index still names the original."""
        data = bytearray(self.tarball.read_bytes())
        data[offset] ^= 0xFF
        self.tarball.write_bytes(bytes(data))

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def lxc_server(tmp_path, _lxc_tarball, _busybox_tree):
    """An LXC image server (simplestreams) on 127.0.0.1 for this test: LxcServer above
    (.ref, .tarball, .tree the busybox tree it was made from, .swap(), .tamper())."""
    www = tmp_path / "lxc-www"
    www.mkdir()
    srv = LxcServer(www, _lxc_tarball, _busybox_tree)
    yield srv
    srv.stop()
# ==== end of registries, OCI test images and an LXC image server ====


# ==== A local Debian mirror (debmirror.py) ====

@pytest.fixture(scope="module")
def deb_mirror():
    """A debmirror.DebMirror on 127.0.0.1, shared by the module, forwarding to the real
    Debian mirror with its disk cache in $KARAPACE_TEST_CACHE/mirror: .url
    ("http://127.0.0.1:PORT/debian"), .tamper(match, fn)/.untamper(), .counts, .count(match),
    .requests, .down, .fetch(path), .packages(suite), .stop(). Tests that alter it put it
    back. Skips when deb.debian.org does not answer."""
    from debmirror import UPSTREAM, DebMirror, upstream_reachable
    if not upstream_reachable():
        pytest.skip(f"{UPSTREAM} is not reachable (HEAD dists/bookworm/InRelease, 10 s)")
    mirror = DebMirror(_test_cache() / "mirror")
    yield mirror
    mirror.stop()
