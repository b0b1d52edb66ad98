"""A real OCI registry for the tests: Debian's docker-registry (distribution 2.x) on
127.0.0.1, with an optional htpasswd login or bearer tokens (TokenServer), a counting proxy
in front of it that can also cut a blob short, and small test images built here from
scratch (OCI layouts pushed with skopeo). start_registry(root, mode) starts one in a given
mode; Registry, CountingProxy and TokenServer are context managers. The larger test image
(busybox tree, whiteouts, zstd, two platforms) and the umoci reference are in ociimage.py;
the fixtures (registry, registry_basic, registry_token, oci_test_layout, lxc_server) at
the end of conftest.py."""
import gzip
import hashlib
import http.client
import http.server
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import threading
import time
from pathlib import Path

REGISTRY_BIN = shutil.which("docker-registry") or "/usr/bin/docker-registry"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Registry:
    """docker-registry serving from a private directory; `htpasswd=(user, password)` turns
    on basic authentication."""

    def __init__(self, root: Path, htpasswd=None, token=None):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.creds = htpasswd
        config = {
            "version": "0.1",
            "log": {"level": "error", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(self.root / "data")},
                        "delete": {"enabled": True}},
            "http": {"addr": self.host},
        }
        if htpasswd:
            out = subprocess.run(["htpasswd", "-Bbn", htpasswd[0], htpasswd[1]], check=True,
                                 capture_output=True, text=True).stdout
            (self.root / "htpasswd").write_text(out)
            config["auth"] = {"htpasswd": {"realm": "karapace-test",
                                           "path": str(self.root / "htpasswd")}}
        if token:
            config["auth"] = token.registry_auth()
        # YAML is a superset of JSON.
        (self.root / "config.yml").write_text(json.dumps(config))
        self.proc = subprocess.Popen([REGISTRY_BIN, "serve", str(self.root / "config.yml")],
                                     stdout=subprocess.DEVNULL, stderr=open(self.root / "log", "w"))
        deadline = time.time() + 20
        while True:
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
                c.request("GET", "/v2/")
                c.getresponse().read()
                break
            except OSError:
                if time.time() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("docker-registry did not start: "
                                       + (self.root / "log").read_text())
                time.sleep(0.05)

    @property
    def url(self):
        return f"http://{self.host}"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def tamper(self, digest, offset=100):
        """Flips one byte of a stored blob, so that a client sees a digest mismatch (the
        registry serves blobs from disk without checking them). Returns the original
        bytes, for restore()."""
        path = self.blob_path(digest)
        original = path.read_bytes()
        data = bytearray(original)
        data[min(offset, len(data) - 1)] ^= 0xFF
        path.write_bytes(bytes(data))
        return original

    def restore(self, digest, original):
        self.blob_path(digest).write_bytes(original)

    def blob_path(self, digest):
        algo, hexd = digest.split(":")
        return self.root / "data" / "docker" / "registry" / "v2" / "blobs" / algo / hexd[:2] / hexd / "data"

    def stop(self):
        if getattr(self, "token_server", None) is not None:
            self.token_server.stop()
            self.token_server = None
        if self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class CountingProxy:
    """A plain HTTP proxy in front of a registry that counts requests by kind and can cut
    the next blob response after N bytes (to test resumed downloads)."""

    def __init__(self, upstream_port):
        self.counts = {"manifest": 0, "blob": 0, "other": 0}
        self.cut_next_blob_at = None
        self.ranges = []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _forward(self, method):
                kind = ("manifest" if "/manifests/" in self.path
                        else "blob" if "/blobs/" in self.path else "other")
                proxy.counts[kind] += 1
                if "Range" in self.headers:
                    proxy.ranges.append(self.headers["Range"])
                c = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=30)
                # Header by header: clients send Accept several times.
                c.putrequest(method, self.path, skip_host=True, skip_accept_encoding=True)
                c.putheader("Host", f"127.0.0.1:{upstream_port}")
                for k, v in self.headers.items():
                    if k.lower() not in ("host", "connection"):
                        c.putheader(k, v)
                c.endheaders()
                r = c.getresponse()
                body = r.read()
                cut = None
                if kind == "blob" and method == "GET" and proxy.cut_next_blob_at is not None and r.status in (200, 206):
                    cut, proxy.cut_next_blob_at = proxy.cut_next_blob_at, None
                self.send_response(r.status)
                for k, v in r.getheaders():
                    if k.lower() in ("transfer-encoding", "connection"):
                        continue
                    self.send_header(k, v)
                if cut is not None:
                    self.send_header("Connection", "close")
                self.end_headers()
                if method == "GET":
                    if cut is not None:
                        self.wfile.write(body[:cut])
                        self.wfile.flush()
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                    else:
                        self.wfile.write(body)

            def do_GET(self):
                self._forward("GET")

            def do_HEAD(self):
                self._forward("HEAD")

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.host = f"127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self):
        return f"http://{self.host}"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def truncate_next_blob(self, nbytes):
        """The next GET of a blob (200 or 206) sends its headers, then only `nbytes` of
        the body, then closes the connection; later requests, with a Range header or
        not, are forwarded whole (ranges are logged in .ranges)."""
        self.cut_next_blob_at = nbytes

    def reset(self):
        for k in self.counts:
            self.counts[k] = 0
        self.ranges.clear()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def start_registry(root, mode="anonymous", creds=("tester", "s3cret")):
    """A started Registry in one of three modes: "anonymous", "basic" (htpasswd) or
    "token" (a TokenServer of its own, stopped with the registry; see .token_server).
    .creds is the (user, password) that works, None when anonymous."""
    root = Path(root)
    if mode == "anonymous":
        reg = Registry(root)
        reg.creds = None
        reg.token_server = None
    elif mode == "basic":
        reg = Registry(root, htpasswd=creds)
        reg.token_server = None
    elif mode == "token":
        tokens = TokenServer(root / "tokens", *creds)
        try:
            reg = Registry(root, token=tokens)
        except BaseException:
            tokens.stop()
            raise
        reg.creds = creds
        reg.token_server = tokens
    else:
        raise ValueError(f"unknown registry mode {mode!r}")
    reg.mode = mode
    return reg


# ---- test images ----

def _sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _tar(entries):
    """entries: (name, kind, payload, mode) with kind file|dir|symlink|hardlink."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, kind, payload, mode in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 1700000000
            info.uid = info.gid = 0
            info.mode = mode
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                t.addfile(info)
            elif kind == "file":
                info.size = len(payload)
                t.addfile(info, io.BytesIO(payload))
            elif kind == "symlink":
                info.type = tarfile.SYMTYPE
                info.linkname = payload
                t.addfile(info)
            elif kind == "hardlink":
                info.type = tarfile.LNKTYPE
                info.linkname = payload
                t.addfile(info)
    return buf.getvalue()


def _blob(layout, data):
    d = _sha(data)
    p = layout / "blobs" / "sha256" / d.split(":")[1]
    p.write_bytes(data)
    return d


def _image(layout, arch, variant, layers):
    """Write layers (uncompressed tars, compression chosen per layer) and a config and
    manifest; returns the manifest descriptor."""
    descs, diff_ids = [], []
    for raw, comp in layers:
        diff_ids.append(_sha(raw))
        if comp == "gzip":
            data = gzip.compress(raw, mtime=0)
            mt = "application/vnd.oci.image.layer.v1.tar+gzip"
        elif comp == "zstd":
            data = subprocess.run(["zstd", "-q", "-c"], input=raw, check=True, capture_output=True).stdout
            mt = "application/vnd.oci.image.layer.v1.tar+zstd"
        else:
            data = raw
            mt = "application/vnd.oci.image.layer.v1.tar"
        descs.append({"mediaType": mt, "digest": _blob(layout, data), "size": len(data)})
    config = {"architecture": arch, "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids},
              "config": {"Env": ["PATH=/usr/bin:/bin"], "Cmd": ["/bin/sh"]}}
    if variant:
        config["variant"] = variant
    cdata = json.dumps(config, sort_keys=True).encode()
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": _blob(layout, cdata), "size": len(cdata)},
                "layers": descs}
    mdata = json.dumps(manifest, sort_keys=True).encode()
    desc = {"mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": _blob(layout, mdata), "size": len(mdata),
            "platform": {"os": "linux", "architecture": arch}}
    if variant:
        desc["platform"]["variant"] = variant
    return desc


def sample_layers():
    """Three layers exercising what flattening must get right."""
    l1 = _tar([
        ("bin", "dir", None, 0o755),
        ("bin/tool", "file", b"#!/bin/sh\necho tool\n" * 50, 0o755),
        ("bin/su", "file", b"setuid program", 0o4755),
        ("bin/sh", "symlink", "tool", 0o777),
        ("bin/tool-link", "hardlink", "bin/tool", 0o755),
        ("etc", "dir", None, 0o755),
        ("etc/hostname", "file", b"one\n", 0o644),
        ("etc/remove-me", "file", b"gone soon\n", 0o644),
        ("usr", "dir", None, 0o755),
        ("usr/share", "dir", None, 0o755),
        ("usr/share/doc", "dir", None, 0o755),
        ("usr/share/doc/a", "dir", None, 0o755),
        ("usr/share/doc/a/readme", "file", b"a\n", 0o644),
        ("usr/share/doc/b", "dir", None, 0o755),
        ("usr/share/doc/b/readme", "file", b"b\n", 0o644),
        ("opaque", "dir", None, 0o755),
        ("opaque/old1", "file", b"old1\n", 0o644),
        ("opaque/sub", "dir", None, 0o750),
        ("opaque/sub/old2", "file", b"old2\n", 0o600),
        ("tmp", "dir", None, 0o1777),
    ])
    l2 = _tar([
        ("etc", "dir", None, 0o755),
        ("etc/.wh.remove-me", "file", b"", 0o644),
        ("etc/hostname", "file", b"two\n", 0o644),
        ("usr/share/doc/.wh.b", "file", b"", 0o644),
        # The new entry comes before the opaque marker: it must survive.
        ("opaque/new1", "file", b"new1\n", 0o644),
        ("opaque/.wh..wh..opq", "file", b"", 0o644),
        # A hard link to a file of the layer below.
        ("bin/tool-link2", "hardlink", "bin/tool", 0o755),
    ])
    l3 = _tar([
        ("opaque/sub", "dir", None, 0o755),
        ("opaque/sub/new2", "file", b"new2\n", 0o644),
        ("etc/.wh.nonexistent", "file", b"", 0o644),
    ])
    return [(l1, "gzip"), (l2, "gzip"), (l3, "none")]


def build_layout(layout: Path, tag="v1", arm_too=True):
    """An OCI layout with `tag` naming a two-platform index (linux/amd64 = sample_layers(),
    linux/arm64/v8 = one small layer) or, with arm_too=False, the amd64 manifest alone."""
    (layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    amd = _image(layout, "amd64", None, sample_layers())
    if arm_too:
        arm = _image(layout, "arm64", "v8", [(_tar([("arm", "file", b"arm\n", 0o644)]), "gzip")])
        index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                 "manifests": [amd, arm]}
        idata = json.dumps(index, sort_keys=True).encode()
        top = {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": _blob(layout, idata),
               "size": len(idata)}
    else:
        top = dict(amd)
        top.pop("platform")
    top["annotations"] = {"org.opencontainers.image.ref.name": tag}
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [top]}))
    return top["digest"]


def push(layout: Path, tag, host, repo, creds=None, all_platforms=True):
    cmd = ["skopeo", "copy", "--quiet", "--dest-tls-verify=false"]
    if all_platforms:
        cmd.append("--all")
    if creds:
        cmd += ["--dest-creds", f"{creds[0]}:{creds[1]}"]
    cmd += [f"oci:{layout}:{tag}", f"docker://{host}/{repo}:{tag}"]
    env = dict(os.environ)
    env.setdefault("XDG_RUNTIME_DIR", str(layout.parent))
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    if r.returncode != 0:
        raise RuntimeError(f"skopeo copy failed: {r.stderr}")


# ---- bearer tokens ----

def _b64url(data: bytes) -> str:
    import base64
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    """The token service of the Docker registry token protocol, in a few lines: checks
    basic credentials, grants what the scope asks, signs an RS256 JWT with a self-signed
    certificate the registry trusts (x5c in the JWT header). Counts the tokens issued."""

    def __init__(self, root: Path, user, password, service="karapace-test", issuer="karapace-test-issuer"):
        import base64 as b64
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.key = self.root / "key.pem"
        self.cert = self.root / "cert.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=karapace-test-token", "-keyout", str(self.key),
                        "-out", str(self.cert)], check=True, capture_output=True)
        der = subprocess.run(["openssl", "x509", "-in", str(self.cert), "-outform", "DER"],
                             check=True, capture_output=True).stdout
        self.x5c = b64.b64encode(der).decode()
        self.service, self.issuer = service, issuer
        self.issued = 0
        expected = "Basic " + b64.b64encode(f"{user}:{password}".encode()).decode()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                from urllib.parse import parse_qs, urlparse
                q = parse_qs(urlparse(self.path).query)
                if self.headers.get("Authorization") != expected:
                    self.send_response(401)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                access = []
                for scope in q.get("scope", []):
                    parts = scope.split(":")
                    if len(parts) == 3:
                        access.append({"type": parts[0], "name": parts[1], "actions": parts[2].split(",")})
                body = json.dumps({"token": server.sign(access)}).encode()
                server.issued += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.realm = f"http://127.0.0.1:{self.server.server_address[1]}/token"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def sign(self, access):
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}
        claims = {"iss": self.issuer, "sub": "tester", "aud": self.service, "exp": now + 300,
                  "nbf": now - 10, "iat": now, "jti": os.urandom(8).hex(), "access": access}
        signing_input = _b64url(json.dumps(header).encode()) + "." + _b64url(json.dumps(claims).encode())
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(self.key)],
                             input=signing_input.encode(), check=True, capture_output=True).stdout
        return signing_input + "." + _b64url(sig)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def registry_auth(self):
        return {"token": {"realm": self.realm, "service": self.service, "issuer": self.issuer,
                          "rootcertbundle": str(self.cert)}}

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
