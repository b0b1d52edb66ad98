"""The test registries, images and servers of conftest.py, registry.py and ociimage.py,
checked with skopeo, umoci and plain HTTP: the tests that use them to test karapace can
trust what they are given."""
import hashlib
import http.client
import io
import json
import lzma
import os
import shutil
import subprocess
import tarfile
import urllib.error
import urllib.request

import pytest

import ociimage
from ociimage import (EXPECTED_ABSENT, EXPECTED_CONTENT, EXPECTED_HARDLINKS, EXPECTED_MODES,
                      EXPECTED_OWNERS, EXPECTED_PRESENT, EXPECTED_SYMLINKS, push, skopeo_inspect)
from registry import CountingProxy, start_registry

pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("docker-registry", "skopeo", "htpasswd", "openssl")),
    reason="needs docker-registry, skopeo, apache2-utils and openssl (scripts/install-deps --test)")


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_layout_is_a_valid_deterministic_oci_layout(oci_test_layout, tmp_path, _busybox_tree):
    img = oci_test_layout
    assert json.loads((img.path / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((img.path / "index.json").read_text())
    names = {m["annotations"]["org.opencontainers.image.ref.name"]: m for m in index["manifests"]}
    assert names["v1"]["mediaType"] == ociimage.MT_INDEX and names["v1"]["digest"] == img.digest
    assert set(names) == {"v1", *img.platform_tags.values()}
    # Every blob is named by its digest.
    for blob in (img.path / "blobs" / "sha256").iterdir():
        assert sha256(blob.read_bytes()) == "sha256:" + blob.name
    top = json.loads(img.blob(img.digest).read_bytes())
    plats = {"/".join(filter(None, [m["platform"]["os"], m["platform"]["architecture"],
                                    m["platform"].get("variant")])) for m in top["manifests"]}
    assert plats == set(img.platforms) and len(plats) == 2
    assert {"linux/amd64", "linux/arm64/v8"} <= plats | {ociimage.host_platform()}
    layers = img.layers[img.full_platform]
    kinds = [layer["mediaType"].rsplit(".", 1)[1] for layer in layers]
    assert kinds == ["tar+gzip", "tar+zstd" if shutil.which("zstd") else "tar", "tar"]
    manifest = json.loads(img.blob(img.manifests[img.full_platform]).read_bytes())
    config = json.loads(img.blob(manifest["config"]["digest"]).read_bytes())
    assert config["rootfs"]["diff_ids"] == [layer["diff_id"] for layer in layers]
    # Built again, byte for byte the same.
    again = ociimage.build_layout(tmp_path / "again", "v1", busybox=_busybox_tree)
    assert again.digest == img.digest and again.manifests == img.manifests


def test_umoci_unpack_of_the_layout(oci_test_layout, tmp_path):
    """umoci's view of the flattened layers: whiteouts, opaque directory, hard links, modes,
    symbolic links. Rootless, so owners are not checked here (see the next test)."""
    if not shutil.which("umoci"):
        pytest.skip("no umoci (scripts/install-deps --test)")
    img = oci_test_layout
    root = ociimage.reference_tree(img.path, img.platform_tag(), tmp_path / "bundle", rootless=True)
    for rel in EXPECTED_ABSENT:
        assert not os.path.lexists(root / rel), rel
    for rel in EXPECTED_PRESENT:
        assert os.path.lexists(root / rel), rel
    for rel, data in EXPECTED_CONTENT.items():
        assert (root / rel).read_bytes() == data, rel
    assert sorted(os.listdir(root / "opaque")) == ["new1", "sub"]
    assert os.listdir(root / "opaque" / "sub") == ["new2"]
    assert os.listdir(root / "usr" / "share" / "doc") == ["a"]
    for group in EXPECTED_HARDLINKS:
        inodes = {os.lstat(root / rel).st_ino for rel in group}
        assert len(inodes) == 1, group
        assert os.lstat(root / group[0]).st_nlink == len(group)
    for rel, mode in EXPECTED_MODES.items():
        assert os.lstat(root / rel).st_mode & 0o7777 == mode, rel
    for rel, target in EXPECTED_SYMLINKS.items():
        assert os.readlink(root / rel) == target, rel
    assert not os.path.islink(root / "usr/lib/abs-link")
    # The busybox tree: an applet link per command.
    assert os.readlink(root / "bin" / "ls") == "../bin/busybox"


def test_reference_tree_keeps_owners_in_the_store_namespace(kp, oci_test_layout):
    """The non-rootless reference (what karapace's tree digest is compared with) keeps the
    image's owners as seen in the store's user namespace, as root and as a user."""
    if not shutil.which("umoci"):
        pytest.skip("no umoci (scripts/install-deps --test)")
    img = oci_test_layout
    root = ociimage.reference_tree(img.path, img.platform_tag(), kp.tmp / "ref", kp=kp)
    paths = ["bin/busybox", "data/setuid", *EXPECTED_OWNERS]
    r = kp("unshare", "--", "stat", "-c", "%u %g %a %n", *[root / p for p in paths])
    assert r.returncode == 0, r
    seen = {line.split()[3]: line.split()[:3] for line in r.stdout.splitlines()}
    assert seen[str(root / "bin/busybox")] == ["0", "0", "755"]
    assert seen[str(root / "data/setuid")] == ["0", "0", "4755"]
    for rel, (uid, gid) in EXPECTED_OWNERS.items():
        assert seen[str(root / rel)][:2] == [str(uid), str(gid)], rel
    digest = ociimage.reference_digest(img.path, img.platform_tag(), kp.tmp / "ref2", kp=kp)
    r = kp("unshare", "--", os.environ["KARAPACE_BIN"], "digest", root)
    assert r.returncode == 0 and r.stdout.split()[0] == digest, r


def test_anonymous_registry(registry, oci_test_layout):
    ref = push(oci_test_layout.path, "v1", registry.host, repo="fixture/anon")
    assert ref == f"{registry.host}/fixture/anon:v1"
    r = skopeo_inspect(ref, raw=True)
    assert r.returncode == 0, r.stderr
    assert sha256(r.stdout.encode()) == oci_test_layout.digest  # pushed unchanged (--all)
    assert len(json.loads(r.stdout)["manifests"]) == 2
    # One platform alone, by its own tag.
    tag = oci_test_layout.platform_tag()
    push(oci_test_layout.path, tag, registry.host, repo="fixture/anon")
    r = skopeo_inspect(f"{registry.host}/fixture/anon:{tag}", raw=True)
    assert r.returncode == 0 and json.loads(r.stdout)["mediaType"] == ociimage.MT_MANIFEST, r.stderr
    assert skopeo_inspect(f"{registry.host}/fixture/anon:nope").returncode != 0


@pytest.mark.parametrize("mode", ["basic", "token"])
def test_registry_with_login(request, mode, oci_test_layout):
    reg = request.getfixturevalue("registry_basic" if mode == "basic" else "registry_token")
    user, password = reg.creds
    repo = f"fixture/{mode}"
    with pytest.raises(RuntimeError):
        push(oci_test_layout.path, "v1", reg.host, repo=repo)
    issued = reg.token_server.issued if mode == "token" else 0
    ref = push(oci_test_layout.path, "v1", reg.host, creds=reg.creds, repo=repo)
    r = skopeo_inspect(ref, creds=reg.creds, raw=True)
    assert r.returncode == 0, r.stderr
    assert sha256(r.stdout.encode()) == oci_test_layout.digest
    for creds in (None, (user, "wrong"), ("nobody", password)):
        r = skopeo_inspect(ref, creds=creds, raw=True)
        assert r.returncode != 0, (creds, r.stdout)
    if mode == "token":
        assert reg.token_server.issued > issued
        # The registry's challenge names the token server.
        c = http.client.HTTPConnection(reg.host, timeout=10)
        c.request("GET", "/v2/")
        resp = c.getresponse()
        resp.read()
        assert resp.status == 401
        assert resp.getheader("WWW-Authenticate").startswith(
            f'Bearer realm="{reg.token_server.realm}"')


def test_counting_proxy_counts_and_truncates_once(registry, oci_test_layout, tmp_path):
    tag = oci_test_layout.platform_tag()
    push(oci_test_layout.path, tag, registry.host, repo="fixture/proxy")
    with CountingProxy(registry.port) as proxy:
        r = skopeo_inspect(f"{proxy.host}/fixture/proxy:{tag}", raw=True)
        assert r.returncode == 0, r.stderr
        assert proxy.counts["manifest"] == 1 and proxy.counts["blob"] == 0, proxy.counts
        proxy.reset()
        r = subprocess.run(["skopeo", "copy", "--quiet", "--src-tls-verify=false",
                            f"docker://{proxy.host}/fixture/proxy:{tag}", f"oci:{tmp_path}/copy:x"],
                           capture_output=True, text=True, env=ociimage.skopeo_env(), timeout=120)
        assert r.returncode == 0, r.stderr
        layers = oci_test_layout.layers[oci_test_layout.full_platform]
        assert proxy.counts["blob"] == len(layers) + 1, proxy.counts  # and the config

        # A blob cut after 100 bytes once, then fetched on with a Range header.
        blob = layers[0]
        path = f"/v2/fixture/proxy/blobs/{blob['digest']}"
        proxy.truncate_next_blob(100)
        c = http.client.HTTPConnection(proxy.host, timeout=30)
        c.request("GET", path)
        resp = c.getresponse()
        assert resp.status == 200 and int(resp.getheader("Content-Length")) == blob["size"]
        head = b""
        try:
            while True:
                chunk = resp.read1(65536)
                if not chunk:
                    break
                head += chunk
        except http.client.IncompleteRead as e:
            head += e.partial
        c.close()
        assert len(head) == 100
        c = http.client.HTTPConnection(proxy.host, timeout=30)
        c.request("GET", path, headers={"Range": "bytes=100-"})
        resp = c.getresponse()
        rest = resp.read()
        assert resp.status == 206, resp.status
        assert sha256(head + rest) == blob["digest"]
        assert proxy.ranges == ["bytes=100-"]


def test_tampered_blob_fails_skopeo_copy(tmp_path, oci_test_layout):
    tag = oci_test_layout.platform_tag()
    blob = oci_test_layout.layers[oci_test_layout.full_platform][0]["digest"]
    with start_registry(tmp_path / "reg") as reg:
        ref = push(oci_test_layout.path, tag, reg.host, repo="fixture/tamper")

        def copy(dest):
            return subprocess.run(["skopeo", "copy", "--quiet", "--src-tls-verify=false",
                                   f"docker://{ref}", f"oci:{tmp_path / dest}:x"],
                                  capture_output=True, text=True, env=ociimage.skopeo_env(), timeout=120)
        original = reg.tamper(blob)
        r = copy("bad")
        assert r.returncode != 0
        assert "digest" in r.stderr.lower(), r.stderr
        reg.restore(blob, original)
        r = copy("good")
        assert r.returncode == 0, r.stderr


def test_lxc_server(lxc_server, tmp_path):
    def get(path):
        with urllib.request.urlopen(f"{lxc_server.url}/{path}", timeout=10) as resp:
            return resp.read()
    index = json.loads(get("streams/v1/index.json"))
    images_path = index["index"]["images"]["path"]
    products = json.loads(get(images_path))["products"]
    product = products[f"testos:one:{lxc_server.arch}:default"]
    item = product["versions"][lxc_server.VERSION]["items"]["root.tar.xz"]
    data = get(item["path"])
    assert hashlib.sha256(data).hexdigest() == item["sha256"] and len(data) == item["size"]
    with tarfile.open(fileobj=io.BytesIO(lzma.decompress(data))) as t:
        members = {m.name: m for m in t.getmembers()}
    assert members["bin/busybox"].isfile() and members["bin/sh"].issym()
    assert {m.uid for m in members.values()} == {0}
    assert lxc_server.counts[f"/{item['path']}"] == 1
    if os.uname().machine == "x86_64":
        assert lxc_server.arch == "amd64"
    # Tampered: the index still names the original.
    lxc_server.tamper()
    assert hashlib.sha256(get(item["path"])).hexdigest() != item["sha256"]
    # Swapped for another file, with the index updated to it.
    other = tmp_path / "other.tar.xz"
    other.write_bytes(lzma.compress(b"\0" * 10240))
    lxc_server.swap(other, update_index=True)
    item = json.loads(get(images_path))["products"][f"testos:one:{lxc_server.arch}:default"][
        "versions"][lxc_server.VERSION]["items"]["root.tar.xz"]
    assert item["sha256"] == hashlib.sha256(other.read_bytes()).hexdigest()
    with pytest.raises(urllib.error.HTTPError):
        get("streams/v1/absent.json")
