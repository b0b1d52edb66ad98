"""Test images built from scratch, without the network: OCI image layouts (oci-layout,
index.json, blobs/sha256/...) made with tarfile, json and hashlib, pushed to a registry
with skopeo, and unpacked with umoci as the reference to compare karapace's trees with.

The image (build_layout with the default layers), for the host's platform:

  layer 1, gzip   the busybox tree of tests/make-test-rootfs (without the probe; fixed
                  /etc/passwd and /etc/group so that root and kptest build the same bytes)
                  plus crafted entries: files to be deleted later, a hard link pair, a
                  setuid (4755) and a setgid (2755) file, directories with modes 0700, 0555,
                  2775 and 1777, a directory and file owned by 1000:1000, absolute,
                  dangling and directory symbolic links;
  layer 2, zstd   (when the zstd program exists; else uncompressed) whiteouts: a file
                  (etc/.wh.remove-me), a lower directory with a subtree
                  (usr/share/doc/.wh.b), an opaque directory (opaque/.wh..wh..opq) with a
                  new entry placed *before* the marker, a hard link to a file of layer 1,
                  a new hard link pair, a changed file;
  layer 3, none   a re-created subdirectory of the opaque directory (opaque/sub/new2
                  only), a symbolic link replaced by a file, a whiteout of something absent.

EXPECTED_PRESENT / EXPECTED_ABSENT / EXPECTED_CONTENT say what the flattened tree holds.
The other platform of the index (linux/arm64/v8 by default, or linux/amd64 on an arm64
host) has one tiny layer. Everything is deterministic: fixed mtimes, sorted entries,
gzip without a timestamp, owners by number without names; the same call gives the same
digests on every run, as root or as a user.

Tags in index.json: TAG names the two-platform index; TAG-ARCH[VARIANT] (e.g. v1-amd64,
v1-arm64v8) names each platform's manifest alone, because umoci 0.4 unpacks only a tag
that names a manifest, not an index.

Comparing karapace's tree with umoci's (the method, exactly)
------------------------------------------------------------
A tree digest (docs/identity.md) covers type, mode, numeric uid and gid, content, link
target and extended attributes, as lstat reports them to the caller. karapace flattens
the layers of a pulled image in the store's user namespace, as root of that namespace, so
the owners are the image's owners *as seen inside that namespace*, and `images pull
--json` reports that digest as `tree_digest`. The reference must therefore be made and
digested in the same namespace with owners kept:

    karapace unshare -- umoci unpack --image LAYOUT:TAG-amd64 DEST        (not --rootless)
    karapace unshare -- $KARAPACE_BIN digest DEST/rootfs

reference_tree(..., kp=kp) and reference_digest(..., kp=kp) do exactly that through the
`kp` fixture (so HOME, XDG_* and the store are the test's). As the unprivileged user,
umoci runs as root of the namespace and chowns to the image's ids (mapped onto the
subordinate range); as real root `karapace unshare` adds only a mount namespace and the
ids are the real ones: both passes give the same digest as karapace's pull in that pass.
Use the per-platform tag (TAG-amd64 on x86_64, see OciImage.platform_tag), the one
karapace selects by default, and digest DEST/rootfs, not DEST (umoci puts config.json,
umoci.json and an mtree file next to rootfs). The tree under DEST is owned by
subordinate ids: the autouse cleanup of conftest.py removes it in the namespace.

`umoci unpack --rootless` (reference_tree(..., rootless=True)) does NOT give a
comparable digest when run by a user: every entry is owned by the caller (1002 0 ... ->
1002 1002), and it cannot create what needs root. It is good for looking at names,
contents, modes and hard links without karapace, which is what test_registry_fixture.py
does. Hard links never change a digest (identity.md), so comparing link counts is a
separate check (os.stat(...).st_nlink, st_ino).
"""
import gzip
import hashlib
import io
import json
import os
import platform as _platform
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

MTIME = 1700000000
SOURCE_ROOT = Path(os.environ.get("KARAPACE_SOURCE_ROOT", Path(__file__).resolve().parents[2]))

MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = {
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
    "none": "application/vnd.oci.image.layer.v1.tar",
}

FIXED_PASSWD = b"root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n" \
               b"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
FIXED_GROUP = b"root:x:0:\nuser:x:1000:\nnogroup:x:65534:\n"

# What the flattened default image holds (paths relative to the root).
EXPECTED_ABSENT = [
    "etc/remove-me",            # whiteout of a file
    "usr/share/doc/b",          # whiteout of a directory ...
    "usr/share/doc/b/readme",   # ... and everything below it
    "usr/share/doc/b/sub/deep",
    "opaque/old1",              # hidden by the opaque marker
    "opaque/sub/old2",          # the re-created subdirectory keeps only the new content
    "opaque/.wh..wh..opq",      # markers never appear
    "etc/.wh.remove-me",
    "usr/share/doc/.wh.b",
]
EXPECTED_PRESENT = [
    "bin/busybox", "bin/sh", "usr/share/doc/a/readme", "opaque/new1", "opaque/sub/new2",
    "data/tool", "data/tool-link", "data/tool-link2", "data/pair-a", "data/pair-b",
    "data/setuid", "data/setgid", "srv/private/secret", "srv/readonly/file",
    "home/user/notes", "usr/lib/abs-link", "usr/lib/dangling", "lib",
]
EXPECTED_CONTENT = {
    "etc/hostname": b"two\n",
    "opaque/new1": b"new1\n",
    "opaque/sub/new2": b"new2\n",
    "usr/lib/abs-link": b"now a file\n",
    "etc/passwd": FIXED_PASSWD,
}
# Names that are one inode in the flattened tree (across layers too).
EXPECTED_HARDLINKS = [("data/tool", "data/tool-link", "data/tool-link2"), ("data/pair-a", "data/pair-b")]
EXPECTED_MODES = {
    "data/setuid": 0o4755, "data/setgid": 0o2755, "srv/private": 0o700,
    "srv/private/secret": 0o600, "srv/readonly": 0o555, "srv/shared": 0o2775,
    "tmp": 0o1777, "home/user": 0o750,
}
EXPECTED_SYMLINKS = {"bin/sh": "../bin/busybox", "usr/lib/dangling": "../nowhere", "lib": "usr/lib"}
EXPECTED_OWNERS = {"home/user": (1000, 1000), "home/user/notes": (1000, 1000)}


# ---- tar entries ----

@dataclass
class Entry:
    name: str
    kind: str = "file"            # file | dir | symlink | hardlink
    data: object = b""            # bytes for a file, the target for links
    mode: int = 0o644
    uid: int = 0
    gid: int = 0


def F(name, data, mode=0o644, uid=0, gid=0):
    return Entry(name, "file", data, mode, uid, gid)


def D(name, mode=0o755, uid=0, gid=0):
    return Entry(name, "dir", None, mode, uid, gid)


def L(name, target):
    return Entry(name, "symlink", target, 0o777)


def H(name, target):
    return Entry(name, "hardlink", target, 0o644)


def tar_bytes(entries, sort=True):
    """An uncompressed tar of `entries`, deterministic. sort=False keeps the given order
    (whiteout tests need an entry before a marker)."""
    if sort:
        entries = sorted(entries, key=lambda e: e.name)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for e in entries:
            info = tarfile.TarInfo(e.name)
            info.mtime = MTIME
            info.uid, info.gid = e.uid, e.gid
            info.uname = info.gname = ""
            info.mode = e.mode
            if e.kind == "dir":
                info.type = tarfile.DIRTYPE
                t.addfile(info)
            elif e.kind == "file":
                info.size = len(e.data)
                t.addfile(info, io.BytesIO(e.data))
            elif e.kind == "symlink":
                info.type = tarfile.SYMTYPE
                info.linkname = e.data
                t.addfile(info)
            elif e.kind == "hardlink":
                info.type = tarfile.LNKTYPE
                info.linkname = e.data
                t.addfile(info)
            else:
                raise ValueError(e.kind)
    return buf.getvalue()


def busybox_tree(dest):
    """The busybox tree of tests/make-test-rootfs in `dest` (no sandbox probe)."""
    env = dict(os.environ, KARAPACE_SANDBOX_PROBE="")
    r = subprocess.run([str(SOURCE_ROOT / "tests" / "make-test-rootfs"), str(dest)],
                       capture_output=True, text=True, env=env, timeout=120)
    if r.returncode != 0:
        raise RuntimeError(f"make-test-rootfs failed ({r.returncode}): {r.stderr}")
    return Path(dest)


def tree_entries(tree, overrides=None):
    """Entries for everything below `tree`, owned by 0:0; `overrides` maps a relative
    path to bytes to store instead of the file's content."""
    overrides = overrides or {}
    out = []
    tree = Path(tree)
    for dirpath, dirnames, filenames in os.walk(tree):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            p = Path(dirpath) / name
            rel = str(p.relative_to(tree))
            st = os.lstat(p)
            mode = st.st_mode & 0o7777
            if os.path.islink(p):
                out.append(L(rel, os.readlink(p)))
            elif p.is_dir():
                out.append(D(rel, mode))
            else:
                out.append(F(rel, overrides.get(rel, p.read_bytes()), mode))
    return out


def have_zstd():
    return shutil.which("zstd") is not None


def default_layers(busybox=None):
    """[(entries, compression, sort)] for the full image (see the module's docstring).
    `busybox`: an existing tests/make-test-rootfs tree, else one is made."""
    if busybox is None:
        with tempfile.TemporaryDirectory() as tmp:
            base = tree_entries(busybox_tree(Path(tmp) / "tree"),
                                {"etc/passwd": FIXED_PASSWD, "etc/group": FIXED_GROUP})
    else:
        base = tree_entries(busybox, {"etc/passwd": FIXED_PASSWD, "etc/group": FIXED_GROUP})
    tool = b"#!/bin/sh\necho tool\n" * 64
    l1 = base + [
        F("etc/hostname", b"one\n"),
        F("etc/remove-me", b"gone soon\n"),
        D("usr/lib"), D("usr/share"), D("usr/share/doc"),
        D("usr/share/doc/a"), F("usr/share/doc/a/readme", b"a\n"),
        D("usr/share/doc/b"), F("usr/share/doc/b/readme", b"b\n"),
        D("usr/share/doc/b/sub", 0o700), F("usr/share/doc/b/sub/deep", b"deep\n", 0o600),
        D("opaque"), F("opaque/old1", b"old1\n"),
        D("opaque/sub", 0o750), F("opaque/sub/old2", b"old2\n", 0o600),
        D("data"), F("data/tool", tool, 0o755), H("data/tool-link", "data/tool"),
        F("data/setuid", b"setuid program\n", 0o4755),
        F("data/setgid", b"setgid program\n", 0o2755),
        D("srv"), D("srv/private", 0o700), F("srv/private/secret", b"secret\n", 0o600),
        D("srv/readonly", 0o555), F("srv/readonly/file", b"read only\n", 0o444),
        D("srv/shared", 0o2775),
        D("home/user", 0o750, 1000, 1000), F("home/user/notes", b"notes\n", 0o640, 1000, 1000),
        L("usr/lib/abs-link", "/etc/hostname"),
        L("usr/lib/dangling", "../nowhere"),
        L("lib", "usr/lib"),
    ]
    # The busybox tree has no etc/hostname: the crafted entries never repeat a name.
    l2 = [
        D("etc"),
        F("etc/.wh.remove-me", b""),
        F("etc/hostname", b"two\n"),
        F("usr/share/doc/.wh.b", b""),
        # The new entry comes before the opaque marker: it must survive.
        F("opaque/new1", b"new1\n"),
        F("opaque/.wh..wh..opq", b""),
        # A hard link to a file of the layer below.
        H("data/tool-link2", "data/tool"),
        F("data/pair-a", b"pair\n", 0o640),
        H("data/pair-b", "data/pair-a"),
    ]
    l3 = [
        D("opaque/sub", 0o755),
        F("opaque/sub/new2", b"new2\n"),
        F("usr/lib/abs-link", b"now a file\n"),
        F("etc/.wh.nonexistent", b""),
    ]
    return [(l1, "gzip", True), (l2, "zstd" if have_zstd() else "none", False), (l3, "none", True)]


def small_layers(name="arm"):
    return [([F(name, f"{name}\n".encode()), D("etc"), F("etc/hostname", f"{name}\n".encode())],
             "gzip", True)]


# ---- layouts ----

def _sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def compress(raw, comp):
    if comp == "gzip":
        return gzip.compress(raw, compresslevel=6, mtime=0)
    if comp == "zstd":
        return subprocess.run(["zstd", "-q", "-c", "-3"], input=raw, check=True,
                              capture_output=True).stdout
    if comp == "none":
        return raw
    raise ValueError(comp)


def host_platform():
    m = _platform.machine()
    return {"x86_64": "linux/amd64", "aarch64": "linux/arm64/v8", "arm64": "linux/arm64/v8",
            "ppc64le": "linux/ppc64le", "s390x": "linux/s390x", "riscv64": "linux/riscv64"}.get(m, f"linux/{m}")


def _split_platform(p):
    parts = p.split("/")
    return parts[0], parts[1], (parts[2] if len(parts) > 2 else None)


def platform_tag(tag, platform):
    _, arch, variant = _split_platform(platform)
    return f"{tag}-{arch}{variant or ''}"


@dataclass
class OciImage:
    path: Path                     # the layout directory
    tag: str                       # names the index (or the manifest, one platform)
    digest: str                    # of what `tag` names
    platforms: list                # "os/arch[/variant]"
    manifests: dict                # platform -> manifest digest
    layers: dict                   # platform -> [{"digest", "diff_id", "mediaType", "size"}]
    full_platform: str             # the platform with the default (full) layers
    platform_tags: dict = field(default_factory=dict)  # platform -> tag of its manifest

    def platform_tag(self, platform=None):
        return self.platform_tags[platform or self.full_platform]

    def blob(self, digest):
        return self.path / "blobs" / "sha256" / digest.split(":", 1)[1]

    def __fspath__(self):
        return str(self.path)

    def __str__(self):
        return str(self.path)


class _Writer:
    def __init__(self, layout):
        self.layout = Path(layout)
        (self.layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (self.layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')

    def blob(self, data):
        d = _sha(data)
        p = self.layout / "blobs" / "sha256" / d.split(":")[1]
        if not p.exists():
            p.write_bytes(data)
        return d

    def image(self, platform, layers):
        os_, arch, variant = _split_platform(platform)
        descs, diff_ids, info = [], [], []
        for entries, comp, sort in layers:
            raw = tar_bytes(entries, sort=sort)
            data = compress(raw, comp)
            d = {"mediaType": MT_LAYER[comp], "digest": self.blob(data), "size": len(data)}
            descs.append(d)
            diff_ids.append(_sha(raw))
            info.append(dict(d, diff_id=_sha(raw)))
        config = {"architecture": arch, "os": os_, "created": "2023-11-14T22:13:20Z",
                  "rootfs": {"type": "layers", "diff_ids": diff_ids},
                  "config": {"Env": ["PATH=/usr/bin:/bin"], "Cmd": ["/bin/sh"]}}
        if variant:
            config["variant"] = variant
        cdata = json.dumps(config, sort_keys=True).encode()
        manifest = {"schemaVersion": 2, "mediaType": MT_MANIFEST,
                    "config": {"mediaType": MT_CONFIG, "digest": self.blob(cdata), "size": len(cdata)},
                    "layers": descs}
        mdata = json.dumps(manifest, sort_keys=True).encode()
        desc = {"mediaType": MT_MANIFEST, "digest": self.blob(mdata), "size": len(mdata),
                "platform": {"os": os_, "architecture": arch}}
        if variant:
            desc["platform"]["variant"] = variant
        return desc, info


def build_layout(layout, tag="v1", layers=None, platforms=None, other_layers=None, busybox=None):
    """Writes an OCI layout at `layout` and returns an OciImage.

    layers: [(entries, "gzip"|"zstd"|"none", sort)] for the full platform (default:
    default_layers(busybox)). platforms: the index's platforms (default: the host's
    platform first, then linux/arm64/v8 or linux/amd64); the full layers go to the host's
    platform when it is listed, else to the first. other_layers: the layers of the other
    platforms (default: one tiny layer each). With a single platform, `tag` names its
    manifest directly (no index). Calling it again on the same directory adds tags."""
    layout = Path(layout)
    if platforms is None:
        hp = host_platform()
        other = "linux/arm64/v8" if hp != "linux/arm64/v8" else "linux/amd64"
        platforms = [hp, other]
    platforms = list(platforms)
    full = host_platform() if host_platform() in platforms else platforms[0]
    if layers is None:
        layers = default_layers(busybox)
    w = _Writer(layout)
    descs, manifests, layer_info, ptags = [], {}, {}, {}
    for p in platforms:
        ls = layers if p == full else (other_layers or small_layers(_split_platform(p)[1]))
        desc, info = w.image(p, ls)
        descs.append(desc)
        manifests[p] = desc["digest"]
        layer_info[p] = info
        ptags[p] = platform_tag(tag, p)
    if len(descs) > 1:
        idata = json.dumps({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": descs},
                           sort_keys=True).encode()
        top = {"mediaType": MT_INDEX, "digest": w.blob(idata), "size": len(idata)}
    else:
        top = {k: v for k, v in descs[0].items() if k != "platform"}
    entries = []
    index_path = layout / "index.json"
    if index_path.exists():
        old = json.loads(index_path.read_text())
        names = {tag, *ptags.values()}
        entries = [m for m in old.get("manifests", [])
                   if m.get("annotations", {}).get("org.opencontainers.image.ref.name") not in names]
    entries.append(dict(top, annotations={"org.opencontainers.image.ref.name": tag}))
    if len(descs) > 1:
        for desc in descs:
            p = "/".join(filter(None, [desc["platform"]["os"], desc["platform"]["architecture"],
                                       desc["platform"].get("variant")]))
            entries.append(dict(desc, annotations={"org.opencontainers.image.ref.name": ptags[p]}))
    else:
        ptags = {platforms[0]: tag}
    index_path.write_text(json.dumps({"schemaVersion": 2, "mediaType": MT_INDEX,
                                      "manifests": entries}, sort_keys=True))
    return OciImage(layout, tag, top["digest"], platforms, manifests, layer_info, full, ptags)


def _layout_and_top(layout, tag):
    path = Path(layout)
    index = json.loads((path / "index.json").read_text())
    for m in index["manifests"]:
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag:
            return path, m
    raise KeyError(f"{path} has no tag {tag!r}")


# ---- registries ----

def skopeo_env():
    env = dict(os.environ)
    rt = env.get("XDG_RUNTIME_DIR")
    if not rt or not os.access(rt, os.W_OK):
        # skopeo keeps nothing there for these commands, but wants the directory.
        env["XDG_RUNTIME_DIR"] = tempfile.gettempdir()
    return env


def push(layout, tag, registry_host, creds=None, repo="test/image", dest_tag=None,
         preserve_digests=True):
    """skopeo copy oci:LAYOUT:TAG docker://HOST/REPO:DEST_TAG (all platforms when TAG names
    an index). creds: (user, password). Returns "HOST/REPO:DEST_TAG".
    With preserve_digests (the default) the registry holds exactly the layout's manifests
    and blobs: without it skopeo gzips uncompressed layers on the way and rewrites the
    manifests, so the pushed digests differ from OciImage.digest/.manifests."""
    path, top = _layout_and_top(layout, tag)
    ref = f"{registry_host}/{repo}:{dest_tag or tag}"
    cmd = ["skopeo", "copy", "--quiet", "--dest-tls-verify=false"]
    if top["mediaType"] == MT_INDEX:
        cmd.append("--all")
    if preserve_digests:
        cmd.append("--preserve-digests")
    if creds:
        cmd += ["--dest-creds", f"{creds[0]}:{creds[1]}"]
    cmd += [f"oci:{path}:{tag}", f"docker://{ref}"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=skopeo_env(), timeout=180)
    if r.returncode != 0:
        raise RuntimeError(f"skopeo copy to {ref} failed ({r.returncode}): {r.stderr}")
    return ref


def skopeo_inspect(ref, creds=None, raw=False, config=False):
    """`skopeo inspect --tls-verify=false docker://REF`: the CompletedProcess (text)."""
    cmd = ["skopeo", "inspect", "--tls-verify=false"]
    if raw:
        cmd.append("--raw")
    if config:
        cmd.append("--config")
    if creds:
        cmd += ["--creds", f"{creds[0]}:{creds[1]}"]
    else:
        cmd.append("--no-creds")
    cmd.append(ref if "://" in ref else f"docker://{ref}")
    return subprocess.run(cmd, capture_output=True, text=True, env=skopeo_env(), timeout=120)


# ---- the reference tree ----

def _run(kp, args, timeout=300):
    if kp is not None:
        return kp(*args, timeout=timeout)
    karapace = os.environ.get("KARAPACE_BIN")
    if not karapace:
        raise RuntimeError("reference_tree needs kp= or $KARAPACE_BIN for karapace unshare")
    return subprocess.run([karapace, *map(str, args)], capture_output=True, text=True, timeout=timeout)


def umoci_compatible(layout, tag, work):
    """umoci 0.4 refuses zstd layers. When the manifest LAYOUT:TAG has some, writes a
    private layout at `work` where they are gzip instead (same diff_ids, the same
    config, so the same tree) and returns (work, tag); else returns (layout, tag)."""
    path, top = _layout_and_top(layout, tag)
    if top["mediaType"] != MT_MANIFEST:
        raise ValueError(f"{path}:{tag} names an index: umoci 0.4 needs a manifest's tag "
                         "(OciImage.platform_tag())")
    blobs = path / "blobs" / "sha256"
    manifest = json.loads((blobs / top["digest"].split(":")[1]).read_bytes())
    if not any(l["mediaType"] == MT_LAYER["zstd"] for l in manifest["layers"]):
        return path, tag
    w = _Writer(work)
    cfg = manifest["config"]
    w.blob((blobs / cfg["digest"].split(":")[1]).read_bytes())
    layers = []
    for l in manifest["layers"]:
        data = (blobs / l["digest"].split(":")[1]).read_bytes()
        if l["mediaType"] == MT_LAYER["zstd"]:
            raw = subprocess.run(["zstd", "-q", "-d", "-c"], input=data, check=True,
                                 capture_output=True).stdout
            data = compress(raw, "gzip")
            l = {"mediaType": MT_LAYER["gzip"], "digest": w.blob(data), "size": len(data)}
        else:
            w.blob(data)
        layers.append(l)
    mdata = json.dumps(dict(manifest, layers=layers), sort_keys=True).encode()
    desc = {"mediaType": MT_MANIFEST, "digest": w.blob(mdata), "size": len(mdata),
            "annotations": {"org.opencontainers.image.ref.name": tag}}
    (Path(work) / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [desc]}))
    return Path(work), tag


def reference_tree(layout, tag, dest, kp=None, rootless=False):
    """umoci's unpack of LAYOUT:TAG (TAG must name a manifest: use OciImage.platform_tag();
    zstd layers are recompressed first, see umoci_compatible, in DEST.layout).
    Default: `karapace unshare -- umoci unpack --image ...`, owners kept as in the image,
    in the store's namespace (the module's docstring); kp: the `kp` fixture (else
    $KARAPACE_BIN with the caller's environment). rootless=True: `umoci unpack --rootless`
    as the caller, without karapace. Returns DEST/rootfs."""
    path, tag = umoci_compatible(layout, tag, Path(str(dest) + ".layout"))
    dest = Path(dest)
    if rootless:
        r = subprocess.run(["umoci", "unpack", "--rootless", "--image", f"{path}:{tag}", str(dest)],
                           capture_output=True, text=True, timeout=300)
    else:
        r = _run(kp, ["unshare", "--", "umoci", "unpack", "--image", f"{path}:{tag}", str(dest)])
    if r.returncode != 0:
        raise RuntimeError(f"umoci unpack failed ({r.returncode}): {r.stderr}")
    return dest / "rootfs"


def reference_digest(layout, tag, dest, kp=None):
    """The tree digest of umoci's unpack, computed where karapace computes a pulled
    image's: reference_tree(...) then `karapace unshare -- karapace digest DEST/rootfs`."""
    rootfs = reference_tree(layout, tag, dest, kp=kp)
    karapace = os.environ.get("KARAPACE_BIN", "karapace")
    r = _run(kp, ["unshare", "--", karapace, "digest", str(rootfs)])
    if r.returncode != 0:
        raise RuntimeError(f"karapace digest failed ({r.returncode}): {r.stderr}")
    return r.stdout.split()[0]
