"""Base images from a real registry (Debian's docker-registry on 127.0.0.1) and from OCI
layouts: flattening compared with umoci's, the one-request cache, platforms, basic
authentication, tampered and truncated blobs (docs/images.md)."""
import hashlib
import json
import os
import shutil
import subprocess

import pytest

from registry import CountingProxy, Registry, build_layout, push

pytestmark = pytest.mark.skipif(
    not (shutil.which("docker-registry") and shutil.which("skopeo")),
    reason="needs docker-registry and skopeo (scripts/install-deps --test)")


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    path = tmp_path_factory.mktemp("layout") / "oci"
    index_digest = build_layout(path, "v1")
    single = tmp_path_factory.mktemp("layout1") / "oci"
    build_layout(single, "v1", arm_too=False)
    return path, index_digest, single


@pytest.fixture(scope="module")
def registry(tmp_path_factory, layout):
    reg = Registry(tmp_path_factory.mktemp("registry"))
    push(layout[0], "v1", reg.host, "test/multi")
    push(layout[2], "v1", reg.host, "test/single", all_platforms=False)
    yield reg
    reg.stop()


@pytest.fixture
def proxy(registry):
    p = CountingProxy(registry.port)
    yield p
    p.stop()


def pull(kp, store, *args, **kw):
    return kp("--store", store, "images", "pull", "--json", *args, timeout=300, **kw)


def umoci_digest(kp, layout_path, tag, dest):
    """The tree umoci makes of the same image, digested in the store's user namespace (as
    root of that namespace umoci keeps the owners the image says, as the store does)."""
    if not shutil.which("umoci"):
        pytest.skip("no umoci")
    r = kp("unshare", "--", "umoci", "unpack", "--image", f"{layout_path}:{tag}", str(dest))
    assert r.returncode == 0, r
    r = kp("unshare", "--", os.environ["KARAPACE_BIN"], "digest", str(dest / "rootfs"))
    assert r.returncode == 0, r
    return r.stdout.split()[0]


def test_pull_equals_umoci_unpack(kp, registry, layout):
    store = kp.tmp / "store"
    r = pull(kp, store, f"docker://{registry.host}/test/multi:v1")
    assert r.returncode == 0, r
    res = r.json()
    raw = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false",
                          f"docker://{registry.host}/test/multi:v1"],
                         check=True, capture_output=True).stdout
    index_digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    assert json.loads(raw)["mediaType"].endswith("index.v1+json")
    assert res["pinned"] == f"docker://{registry.host}/test/multi:v1@{index_digest}"
    # umoci 0.4 unpacks single-platform images: the amd64 manifest alone has the same layers.
    assert res["tree_digest"] == umoci_digest(kp, layout[2], "v1", kp.tmp / "umoci")


def test_flattened_tree_content(kp, registry):
    """What the whiteouts and the opaque directory leave, seen through the store."""
    store = kp.tmp / "store"
    res = pull(kp, store, f"{registry.host}/test/multi:v1").json()
    tree = store / "layers" / res["tree_digest"] / "tree"
    r = kp("unshare", "--", "sh", "-c",
           f"cd {tree} && find . | sort && stat -c '%n %h %a %u' bin/tool bin/su && cat etc/hostname")
    assert r.returncode == 0, r
    listing = r.stdout
    assert "./etc/remove-me" not in listing
    assert "./usr/share/doc/b" not in listing and "./usr/share/doc/a/readme" in listing
    assert "./opaque/new1" in listing and "./opaque/old1" not in listing
    assert "./opaque/sub/new2" in listing and "./opaque/sub/old2" not in listing
    assert "./etc/.wh" not in listing and ".wh." not in listing
    assert "bin/tool 3 755 0" in listing  # tool, tool-link, tool-link2 (across layers)
    assert "bin/su 1 4755 0" in listing
    assert listing.rstrip().endswith("two")


def test_layout_pull_equals_registry_pull(kp, registry, layout):
    store = kp.tmp / "store"
    a = pull(kp, store, f"docker://{registry.host}/test/multi:v1").json()
    b = pull(kp, store, f"oci-layout://{layout[0]}:v1")
    assert b.returncode == 0, b
    assert b.json()["tree_digest"] == a["tree_digest"]
    # skopeo rewrote the manifests on the way to the registry: two records, one layer.
    assert len(kp("--store", store, "images", "list", "--json").json()) == 2
    assert kp("--store", store, "verify-store", "--json").json()["layers"] == 1


def test_second_pull_is_one_manifest_request(kp, registry, proxy):
    store = kp.tmp / "store"
    ref = f"docker://{proxy.host}/test/multi:v1"
    first = pull(kp, store, ref)
    assert first.returncode == 0, first
    assert proxy.counts["blob"] >= 4  # 3 layers and the config
    proxy.reset()
    again = pull(kp, store, ref)
    assert again.returncode == 0, again
    assert again.json()["cached"] is True
    assert proxy.counts == {"manifest": 1, "blob": 0, "other": 0}
    pinned = again.json()["pinned"]
    proxy.reset()
    by_digest = pull(kp, store, pinned)
    assert by_digest.returncode == 0, by_digest
    assert by_digest.json()["requests"] == 0
    assert proxy.counts == {"manifest": 0, "blob": 0, "other": 0}
    proxy.reset()
    offline = pull(kp, store, "--offline", ref)
    assert offline.returncode == 0 and offline.json()["cached"] is True, offline
    assert sum(proxy.counts.values()) == 0


def test_platform_selection(kp, registry):
    store = kp.tmp / "store"
    amd = pull(kp, store, f"docker://{registry.host}/test/multi:v1", "--platform", "linux/amd64").json()
    arm = pull(kp, store, f"docker://{registry.host}/test/multi:v1", "--platform", "linux/arm64")
    assert arm.returncode == 0, arm
    assert arm.json()["digest"] != amd["digest"]
    listed = kp("--store", store, "images", "list", "--json").json()
    assert sorted(i["platform"] for i in listed) == ["linux/amd64", "linux/arm64/v8"]
    bad = pull(kp, store, f"docker://{registry.host}/test/multi:v1", "--platform", "linux/s390x")
    assert bad.returncode == 1, bad
    assert "not built for linux/s390x" in bad.stderr
    assert "linux/amd64, linux/arm64/v8" in bad.stderr


def test_single_manifest_image(kp, registry):
    store = kp.tmp / "store"
    r = pull(kp, store, f"docker://{registry.host}/test/single:v1")
    assert r.returncode == 0, r
    multi = pull(kp, store, f"docker://{registry.host}/test/multi:v1").json()
    assert r.json()["tree_digest"] == multi["tree_digest"]


def test_unknown_tag_and_repository(kp, registry):
    store = kp.tmp / "store"
    r = pull(kp, store, f"docker://{registry.host}/test/multi:nope")
    assert r.returncode == 1 and "no tag 'nope'" in r.stderr, r
    r = pull(kp, store, f"docker://{registry.host}/test/absent:v1")
    assert r.returncode == 1, r


def test_tampered_blob_is_refused_and_nothing_kept(kp, tmp_path, layout):
    reg = Registry(tmp_path / "reg")
    try:
        push(layout[2], "v1", reg.host, "test/single", all_platforms=False)
        manifest = json.loads(subprocess.run(
            ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{reg.host}/test/single:v1"],
            check=True, capture_output=True, text=True).stdout)
        blob = reg.blob_path(manifest["layers"][0]["digest"])
        data = bytearray(blob.read_bytes())
        data[100] ^= 0xFF
        blob.write_bytes(bytes(data))
        store = kp.tmp / "store"
        r = pull(kp, store, f"docker://{reg.host}/test/single:v1")
        assert r.returncode == 1, r
        assert "is corrupt" in r.stderr and manifest["layers"][0]["digest"] in r.stderr
        assert kp("--store", store, "images", "list", "--json").json() == []
        rep = kp("--store", store, "verify-store", "--json").json()
        assert rep["problems"] == [] and rep["layers"] == 0
    finally:
        reg.stop()


def test_truncated_transfer_is_resumed(kp, registry, proxy):
    store = kp.tmp / "store"
    proxy.cut_next_blob_at = 200
    r = pull(kp, store, f"docker://{proxy.host}/test/single:v1")
    assert r.returncode == 0, r
    assert any(rg.startswith("bytes=200-") for rg in proxy.ranges), proxy.ranges
    whole = pull(kp, kp.tmp / "store2", f"docker://{registry.host}/test/single:v1").json()
    assert r.json()["tree_digest"] == whole["tree_digest"]


def test_basic_auth(kp, tmp_path, layout):
    reg = Registry(tmp_path / "reg", htpasswd=("alice", "s3cret"))
    try:
        push(layout[2], "v1", reg.host, "test/private", creds=("alice", "s3cret"), all_platforms=False)
        store = kp.tmp / "store"
        ref = f"docker://{reg.host}/test/private:v1"
        r = pull(kp, store, ref)
        assert r.returncode == 1 and "requires a login" in r.stderr, r
        r = pull(kp, store, "--creds", "alice:wrong", ref)
        assert r.returncode == 1 and "wrong credentials" in r.stderr, r
        r = pull(kp, store, "--creds", "alice:s3cret", ref)
        assert r.returncode == 0, r
        # The file podman writes.
        auth = kp.tmp / "auth.json"
        import base64
        auth.write_text(json.dumps({"auths": {reg.host: {"auth": base64.b64encode(b"alice:s3cret").decode()}}}))
        r = pull(kp, kp.tmp / "store2", ref, env={"REGISTRY_AUTH_FILE": str(auth)})
        assert r.returncode == 0, r
    finally:
        reg.stop()


def test_plain_http_refused_for_remote_hosts(kp):
    r = pull(kp, kp.tmp / "store", "https://192.0.2.1/x.tar.gz".replace("https", "http"))
    assert r.returncode == 1, r
    assert "refusing plain HTTP" in r.stderr


def test_layout_errors(kp, layout):
    store = kp.tmp / "store"
    r = pull(kp, store, f"oci-layout://{layout[0]}:nope")
    assert r.returncode == 1 and "no image tagged 'nope'" in r.stderr and "v1" in r.stderr, r


def test_bearer_token_flow(kp, tmp_path, layout):
    from registry import TokenServer
    tokens = TokenServer(tmp_path / "tokens", "bob", "hunter2")
    reg = Registry(tmp_path / "reg", token=tokens)
    try:
        push(layout[2], "v1", reg.host, "test/tok", creds=("bob", "hunter2"), all_platforms=False)
        store = kp.tmp / "store"
        ref = f"docker://{reg.host}/test/tok:v1"
        r = pull(kp, store, ref)
        assert r.returncode == 1 and "requires a login" in r.stderr, r
        r = pull(kp, store, "--creds", "bob:wrong", ref)
        assert r.returncode == 1 and "wrong credentials" in r.stderr, r
        before = tokens.issued
        r = pull(kp, store, "--creds", "bob:hunter2", ref)
        assert r.returncode == 0, r
        # One token for the whole pull, shared by the parallel blob downloads.
        assert tokens.issued == before + 1
        single = pull(kp, kp.tmp / "store2", f"oci-layout://{layout[2]}:v1").json()
        assert r.json()["tree_digest"] == single["tree_digest"]
    finally:
        reg.stop()
        tokens.stop()


@pytest.mark.parametrize("case", ["dotdot", "symlink-parent", "whiteout-dotdot"])
def test_malicious_layers_are_refused(kp, tmp_path, registry, case):
    """Layers that try to write outside the tree: refused, nothing kept, nothing outside."""
    from registry import _image, _tar
    import json as _json
    outside = tmp_path / "outside"
    outside.mkdir()
    entries = {
        "dotdot": [("../../../escaped", "file", b"x", 0o644)],
        "symlink-parent": [("link", "symlink", str(outside), 0o777),
                           ("link/escaped", "file", b"x", 0o644)],
        "whiteout-dotdot": [("etc", "dir", None, 0o755), ("etc/.wh..", "file", b"", 0o644)],
    }[case]
    layout = tmp_path / "evil"
    (layout / "blobs" / "sha256").mkdir(parents=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    desc = _image(layout, "amd64", None, [(_tar(entries), "gzip")])
    desc.pop("platform")
    desc["annotations"] = {"org.opencontainers.image.ref.name": "v1"}
    (layout / "index.json").write_text(_json.dumps({"schemaVersion": 2, "manifests": [desc]}))
    push(layout, "v1", registry.host, f"test/evil-{case}", all_platforms=False)
    store = kp.tmp / "store"
    r = pull(kp, store, f"docker://{registry.host}/test/evil-{case}:v1")
    assert r.returncode == 1, r
    assert list(outside.iterdir()) == []
    assert not (tmp_path.parent / "escaped").exists()
    assert kp("--store", store, "images", "list", "--json").json() == []
    rep = kp("--store", store, "verify-store", "--json").json()
    assert rep["problems"] == [] and rep["layers"] == 0


def test_registry_mirror_from_config(kp, registry):
    """A registry that cannot be reached, mirrored (under a path prefix) by one that can."""
    kp.write("config/karapace/config.toml",
             f'[registries."127.0.0.1:9"]\nmirrors = ["127.0.0.1:1", "{registry.host}/test"]\n')
    store = kp.tmp / "store"
    r = pull(kp, store, "docker://127.0.0.1:9/single:v1")
    assert r.returncode == 0, r
    direct = pull(kp, kp.tmp / "store2", f"docker://{registry.host}/test/single:v1").json()
    assert r.json()["tree_digest"] == direct["tree_digest"]
    rec = kp("--store", store, "images", "inspect", "--json", "docker://127.0.0.1:9/single:v1").json()[0]
    assert rec["mirror"] == f"{registry.host}/test"


@pytest.mark.skipif(not shutil.which("zstd"), reason="no zstd (scripts/install-deps --test)")
def test_zstd_and_uncompressed_layers(kp, tmp_path, registry):
    """The same layers compressed three ways give the same tree."""
    from registry import _image, sample_layers
    import json as _json
    digests = []
    for comp in ("gzip", "zstd", "none"):
        layout = tmp_path / comp
        (layout / "blobs" / "sha256").mkdir(parents=True)
        (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
        desc = _image(layout, "amd64", None, [(raw, comp) for raw, _ in sample_layers()])
        desc.pop("platform")
        desc["annotations"] = {"org.opencontainers.image.ref.name": "v1"}
        (layout / "index.json").write_text(_json.dumps({"schemaVersion": 2, "manifests": [desc]}))
        push(layout, "v1", registry.host, f"test/comp-{comp}", all_platforms=False)
        r = pull(kp, kp.tmp / "store", f"docker://{registry.host}/test/comp-{comp}:v1")
        assert r.returncode == 0, r
        digests.append(r.json()["tree_digest"])
    assert len(set(digests)) == 1
