"""A local Debian mirror for the system tests: DebMirror serves http://127.0.0.1:PORT/debian/
by forwarding each request to the real mirror (http://deb.debian.org/debian, or
$KARAPACE_TEST_DEBIAN_UPSTREAM) and keeps what it fetched on disk, so that later runs need
little or no network. Tests can alter what it serves (tamper), count what was asked for
(counts, count, requests) and take it away (stop).

The disk cache (a directory given by the caller, conftest's deb_mirror fixture uses
$KARAPACE_TEST_CACHE/mirror) holds:
  dists/SUITE/{InRelease,Release,Release.gpg}  refetched when older than a day, and pinned
      for the life of the test process, so that every mirror of one session serves the same
      signed Release;
  by-hash/SHA256                                every other dists/ file (Packages.xz, ...),
      fetched from the upstream's by-hash/ directory by the SHA256 the pinned InRelease
      gives, so that the index always matches the Release served with it;
  pool/...                                      packages, kept for good (a file in pool/
      never changes under the same name).
Every file is written to a temporary name and renamed into place."""
import collections
import hashlib
import http.server
import lzma
import os
import re
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

UPSTREAM = os.environ.get("KARAPACE_TEST_DEBIAN_UPSTREAM", "http://deb.debian.org/debian").rstrip("/")
DISTS_MAX_AGE = 24 * 3600       # seconds a cached InRelease is served before it is refetched
BY_HASH_MAX_IDLE = 30 * 24 * 3600  # an index nobody used for this long is removed
RELEASE_FILES = ("InRelease", "Release", "Release.gpg")
_USER_AGENT = "karapace-system-tests/debmirror"

ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "armhf", "i686": "i386",
        "ppc64le": "ppc64el", "s390x": "s390x", "riscv64": "riscv64"}.get(
            os.uname().machine, os.uname().machine)

_reachable = {}


def upstream_reachable(upstream=UPSTREAM, suite="bookworm", timeout=10):
    """Whether upstream answers a HEAD of dists/SUITE/InRelease (asked once per process)."""
    key = (upstream, suite)
    if key not in _reachable:
        req = urllib.request.Request(f"{upstream}/dists/{suite}/InRelease", method="HEAD",
                                     headers={"User-Agent": _USER_AGENT})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                _reachable[key] = resp.status == 200
        except (OSError, ValueError):
            _reachable[key] = False
    return _reachable[key]


def _atomic_write(path: Path, data: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".part-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def signed_text(inrelease: bytes) -> bytes:
    """The clear-signed text of an InRelease (between the armor header and the signature)."""
    start = inrelease.index(b"\n\n", inrelease.index(b"-----BEGIN PGP SIGNED MESSAGE-----")) + 2
    end = inrelease.index(b"\n-----BEGIN PGP SIGNATURE-----", start)
    return inrelease[start:end]


def release_sha256(inrelease: bytes) -> dict:
    """{path: (sha256, size)} from the SHA256 section of an InRelease or Release."""
    files, section = {}, False
    for line in signed_text(inrelease).decode("utf-8", "replace").splitlines():
        if line.startswith("- "):
            line = line[2:]  # dash-escaped, in principle
        if not line.startswith(" "):
            section = line.strip() == "SHA256:"
            continue
        if section:
            parts = line.split()
            if len(parts) == 3:
                files[parts[2]] = (parts[0], int(parts[1]))
    return files


def parse_packages(text: str) -> list:
    """The stanzas of a Packages file as dicts (continuation lines joined with newlines)."""
    out = []
    for block in text.split("\n\n"):
        fields, last = {}, None
        for line in block.splitlines():
            if line.startswith((" ", "\t")) and last:
                fields[last] += "\n" + line.strip()
            elif ":" in line:
                last, value = line.split(":", 1)
                fields[last] = value.strip()
        if fields:
            out.append(fields)
    return out


# ---- tampering helpers: each takes the bytes served and returns others ----

def alter_signed_text(inrelease: bytes) -> bytes:
    """One letter of the signed text changed (the signature no longer holds); the armor is
    left alone, so the file still looks like a clear-signed message."""
    text = signed_text(inrelease)
    if b"Origin: Debian" in text:
        altered = text.replace(b"Origin: Debian", b"Origin: Debiam", 1)
    else:
        altered = bytes([text[0] ^ 0x20]) + text[1:]
    return inrelease.replace(text, altered, 1)


def flip_last_byte(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 0x01])


def flip_byte(offset):
    def fn(data: bytes) -> bytes:
        i = offset % len(data)
        return data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:]
    return fn


class DebMirror:
    """A threaded HTTP server on 127.0.0.1 (random port) forwarding to a Debian mirror.

    url              "http://127.0.0.1:PORT/debian", what a debian+URL#SUITE reference names
    tamper(m, fn)    serve fn(bytes) instead of the bytes for paths matched by m: a str is a
                     suffix of the path ("/InRelease", "/Packages.xz"), a compiled regex is
                     searched in it, a callable is asked; returns the mirror
    untamper()       serve the real bytes again
    counts           {path below /debian/: GET and HEAD requests}
    count(m=None)    requests for paths matched by m (all of them without m)
    requests         [(method, path)] in the order they came
    reset_counts()   forget the requests so far
    down             while True, every request is counted and its connection closed with no
                     answer: the mirror looks unreachable (stop() makes it so for good)
    fetch(path)      the real bytes of a path below /debian/ (through the cache, uncounted)
    packages(suite)  the stanzas of main/binary-ARCH/Packages.xz the mirror serves
    stop()           no longer listen: any connection is refused afterwards
    """

    _pinned = {}               # (upstream, "dists/SUITE/InRelease") -> bytes, for the process
    _pin_lock = threading.Lock()

    def __init__(self, cache_dir, upstream=UPSTREAM):
        self.cache = Path(cache_dir)
        self.cache.mkdir(parents=True, exist_ok=True)
        self.upstream = upstream.rstrip("/")
        self.counts = collections.Counter()
        self.requests = []
        self.upstream_requests = []  # what had to go to the real mirror
        self._tampers = []
        self._lock = threading.Lock()
        self._path_locks = collections.defaultdict(threading.Lock)
        self._upstream_slots = threading.BoundedSemaphore(8)
        self._stopped = False
        self.down = False
        self._prune_by_hash()
        mirror = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "karapace-test-debmirror"

            def do_GET(self):
                mirror._serve(self, head=False)

            def do_HEAD(self):
                mirror._serve(self, head=True)

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/debian"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def __repr__(self):
        return f"<DebMirror {self.url} -> {self.upstream}, {sum(self.counts.values())} requests>"

    # ---- the test-facing side ----

    def tamper(self, match, fn):
        with self._lock:
            self._tampers.append((match, fn))
        return self

    def untamper(self):
        with self._lock:
            self._tampers.clear()

    @staticmethod
    def _matches(match, path):
        if match is None:
            return True
        if isinstance(match, str):
            return path.endswith(match)
        if isinstance(match, re.Pattern):
            return match.search(path) is not None
        return bool(match(path))

    def count(self, match=None):
        with self._lock:
            return sum(n for p, n in self.counts.items() if self._matches(match, p))

    def paths(self, match=None):
        with self._lock:
            return [p for _, p in self.requests if self._matches(match, p)]

    def reset_counts(self):
        with self._lock:
            self.counts.clear()
            self.requests.clear()

    def stop(self):
        if self._stopped:
            return
        self._stopped = True
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=10)

    def fetch(self, path):
        """The untampered bytes of `path` (relative to /debian/, a leading / or /debian/
        allowed), from the cache or the real mirror. Raises urllib.error.HTTPError (404) for
        what the mirror does not have."""
        return self._get(self._relative(path))

    def inrelease(self, suite="bookworm"):
        return self.fetch(f"dists/{suite}/InRelease")

    def packages(self, suite="bookworm", arch=ARCH, component="main"):
        raw = self.fetch(f"dists/{suite}/{component}/binary-{arch}/Packages.xz")
        return parse_packages(lzma.decompress(raw).decode("utf-8", "replace"))

    # ---- serving ----

    @staticmethod
    def _relative(path):
        path = urllib.parse.urlsplit(path).path
        for prefix in ("/debian/", "debian/", "/"):
            if path.startswith(prefix):
                path = path[len(prefix):]
                break
        rel = urllib.parse.unquote(path)
        parts = rel.split("/")
        if not rel or any(p in ("", ".", "..") for p in parts) or "\0" in rel:
            raise ValueError(f"not a mirror path: {path!r}")
        return rel

    def _serve(self, h, head):
        raw = urllib.parse.urlsplit(h.path).path
        if not raw.startswith("/debian/"):
            self._send(h, 404, b"not below /debian/\n", head)
            return
        try:
            rel = self._relative(raw)
        except ValueError as e:
            self._send(h, 400, f"{e}\n".encode(), head)
            return
        with self._lock:
            self.counts[rel] += 1
            self.requests.append(("HEAD" if head else "GET", rel))
            tampers = [fn for m, fn in self._tampers if self._matches(m, rel)]
        if self.down:
            h.close_connection = True  # no answer at all, as an unreachable host
            return
        try:
            data = self._get(rel)
        except urllib.error.HTTPError as e:
            self._send(h, e.code, f"upstream: HTTP {e.code} for {rel}\n".encode(), head)
            return
        except _OutOfSync as e:
            self._send(h, 502, f"{e}\n".encode(), head)
            return
        except (OSError, ValueError) as e:
            self._send(h, 502, f"upstream unreachable for {rel}: {e}\n".encode(), head)
            return
        for fn in tampers:
            data = fn(data)
        status, headers = 200, {"Accept-Ranges": "bytes"}
        rng = h.headers.get("Range")
        if rng:
            m = re.fullmatch(r"bytes=(\d*)-(\d*)", rng.strip())
            start = end = None
            if m and (m.group(1) or m.group(2)):
                if m.group(1):
                    start = int(m.group(1))
                    end = int(m.group(2)) if m.group(2) else len(data) - 1
                else:  # the last N bytes
                    start, end = max(0, len(data) - int(m.group(2))), len(data) - 1
                end = min(end, len(data) - 1)
            if start is None or start > end:
                headers["Content-Range"] = f"bytes */{len(data)}"
                self._send(h, 416, b"", head, headers)
                return
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            data, status = data[start:end + 1], 206
        self._send(h, status, data, head, headers)

    @staticmethod
    def _send(h, status, body, head, headers=None):
        try:
            h.send_response(status)
            h.send_header("Content-Type", "application/octet-stream" if status < 300 else "text/plain")
            h.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                h.send_header(k, v)
            h.end_headers()
            if not head:
                h.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            h.close_connection = True

    # ---- the cache ----

    def _upstream(self, rel):
        url = f"{self.upstream}/{urllib.parse.quote(rel)}"
        with self._upstream_slots:
            self.upstream_requests.append(rel)
            last = None
            for attempt in range(2):
                try:
                    req = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
                    with urllib.request.urlopen(req, timeout=120) as resp:
                        return resp.read()
                except urllib.error.HTTPError:
                    raise
                except OSError as e:
                    last = e
                    time.sleep(1)
            raise last

    def _get(self, rel):
        with self._path_locks[rel]:
            parts = rel.split("/")
            if parts[0] == "pool":
                return self._get_pool(rel)
            if parts[0] == "dists" and len(parts) == 3 and parts[2] in RELEASE_FILES:
                return self._get_release(rel)
            if parts[0] == "dists" and len(parts) > 3:
                return self._get_index(parts[1], "/".join(parts[2:]), rel)
            return self._upstream(rel)  # anything else: passed through, not kept

    def _get_pool(self, rel):
        local = self.cache / rel
        try:
            return local.read_bytes()
        except FileNotFoundError:
            pass
        data = self._upstream(rel)
        _atomic_write(local, data)
        return data

    def _get_release(self, rel):
        key = (self.upstream, rel)
        with DebMirror._pin_lock:
            if key in DebMirror._pinned:
                return DebMirror._pinned[key]
        local = self.cache / rel
        data = None
        try:
            if time.time() - local.stat().st_mtime < DISTS_MAX_AGE:
                data = local.read_bytes()
        except FileNotFoundError:
            pass
        if data is None:
            data = self._upstream(rel)
            _atomic_write(local, data)
        with DebMirror._pin_lock:
            return DebMirror._pinned.setdefault(key, data)

    def _get_index(self, suite, path, rel):
        """A file the suite's Release names: by its SHA256 there, from by-hash/."""
        try:
            inrelease = self._get_release(f"dists/{suite}/InRelease")
            entry = release_sha256(inrelease).get(path)
        except (urllib.error.HTTPError, ValueError):
            entry = None
        if entry is None:
            return self._upstream(rel)  # not in the Release: passed through, not kept
        sha, size = entry
        local = self.cache / "by-hash" / sha
        try:
            data = local.read_bytes()
            if hashlib.sha256(data).hexdigest() == sha:
                os.utime(local)
                return data
        except FileNotFoundError:
            pass
        directory = path.rsplit("/", 1)[0] if "/" in path else ""
        by_hash = f"dists/{suite}/{directory + '/' if directory else ''}by-hash/SHA256/{sha}"
        try:
            data = self._upstream(by_hash)
        except urllib.error.HTTPError:
            data = self._upstream(rel)
        if hashlib.sha256(data).hexdigest() != sha or len(data) != size:
            raise _OutOfSync(f"the real mirror's {rel} does not match the InRelease this "
                             f"mirror serves (SHA256 {sha}); remove {self.cache / 'dists'} "
                             "to refetch it")
        _atomic_write(local, data)
        return data

    def _prune_by_hash(self):
        d = self.cache / "by-hash"
        if not d.is_dir():
            return
        now = time.time()
        for f in d.iterdir():
            try:
                age = now - f.stat().st_mtime
                if age > BY_HASH_MAX_IDLE or (f.name.startswith(".part-") and age > 3600):
                    f.unlink()
            except OSError:
                pass


class _OutOfSync(Exception):
    pass
