"""Base images from local sources and plain URLs (docs/images.md): directories, tarballs,
tarball URLs and an LXC image server (simplestreams) served from 127.0.0.1; the cache,
pinning and the errors. Registries and OCI layouts are in test_images_registry.py."""
import hashlib
import http.server
import json
import os
import shutil
import subprocess
import tarfile
import threading
from pathlib import Path

import pytest


def tree_digest(kp, path):
    r = kp("digest", path)
    assert r.returncode == 0, r
    return r.stdout.split()[0]


def sha256_file(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def make_tarball(rootfs, dest, mode="w:gz"):
    """A root filesystem tarball of the busybox tree, as users make them (GNU tar)."""
    comp = {"w:gz": "-z", "w:xz": "-J", "w:": ""}[mode]
    cmd = ["tar", "-C", str(rootfs), "--numeric-owner", "-c"]
    if comp:
        cmd.append(comp)
    cmd += ["-f", str(dest), "."]
    subprocess.run(cmd, check=True, capture_output=True)
    return dest


def images(kp, store):
    r = kp("--store", store, "images", "list", "--json")
    assert r.returncode == 0, r
    return r.json()


def store_clean(kp, store):
    r = kp("--store", store, "verify-store", "--json")
    assert r.returncode == 0, r
    return r.json()


@pytest.fixture
def store(kp):
    return kp.tmp / "store"


@pytest.fixture
def http_files(tmp_path):
    """A plain HTTP server on 127.0.0.1 serving a directory; counts GET requests."""
    root = tmp_path / "www"
    root.mkdir()
    counts = {"GET": 0}

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(root), **kw)

        def do_GET(self):
            counts["GET"] += 1
            super().do_GET()

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield root, f"http://127.0.0.1:{srv.server_address[1]}", counts
    srv.shutdown()


def test_dir_pull_keeps_the_tree(kp, store, rootfs):
    r = kp("--store", store, "images", "pull", "--json", f"dir://{rootfs}")
    assert r.returncode == 0, r
    res = r.json()
    assert res["reference"] == f"dir://{rootfs}"
    assert res["pinned"] is None
    assert res["cached"] is False
    assert res["digest"].startswith("sha256:")
    # The layer is the same tree, byte for byte and owner for owner.
    assert res["tree_digest"] == tree_digest(kp, rootfs)
    listed = images(kp, store)
    assert [i["digest"] for i in listed] == [res["digest"]]
    assert listed[0]["references"][0]["reference"] == f"dir://{rootfs}"
    assert listed[0]["source"] == "dir"
    again = kp("--store", store, "images", "pull", "--json", f"dir://{rootfs}")
    assert again.returncode == 0, again
    assert again.json()["cached"] is True
    assert again.json()["tree_digest"] == res["tree_digest"]
    assert store_clean(kp, store)["problems"] == []


@pytest.mark.parametrize("mode,suffix", [("w:gz", ".tar.gz"), ("w:xz", ".tar.xz"), ("w:", ".tar")])
def test_file_pull_verifies_and_pins(kp, store, rootfs, mode, suffix):
    tarball = make_tarball(rootfs, kp.tmp / f"rootfs{suffix}", mode)
    sha = sha256_file(tarball)
    r = kp("--store", store, "images", "pull", "--json", f"file://{tarball}#sha256={sha}")
    assert r.returncode == 0, r
    res = r.json()
    assert res["digest"] == f"sha256:{sha}"
    assert res["pinned"] == f"file://{tarball}#sha256={sha}"
    # GNU tar records the root directory too, so the trees agree for every compression.
    assert res["tree_digest"] == tree_digest(kp, rootfs)


def test_file_with_wrong_digest_is_refused_and_nothing_kept(kp, store, rootfs):
    tarball = make_tarball(rootfs, kp.tmp / "rootfs.tar.gz")
    wrong = "0" * 64
    r = kp("--store", store, "images", "pull", f"file://{tarball}#sha256={wrong}")
    assert r.returncode == 1, r
    assert "does not have the expected content" in r.stderr
    assert f"sha256:{wrong}" in r.stderr
    assert images(kp, store) == []
    rep = store_clean(kp, store)
    assert rep["problems"] == []
    assert rep["objects"] == 0 and rep["layers"] == 0


def test_blake3_pin_is_checked(kp, store, rootfs):
    tarball = make_tarball(rootfs, kp.tmp / "rootfs.tar")
    b3 = tree_digest(kp, tarball)  # for a file, `karapace digest` is its BLAKE3
    ok = kp("--store", store, "images", "pull", f"file://{tarball}#blake3={b3}")
    assert ok.returncode == 0, ok
    bad = kp("--store", store, "images", "pull", f"file://{tarball}#blake3={'a' * 64}")
    assert bad.returncode == 1, bad
    assert f"hashes to blake3:{b3}" in bad.stderr


def test_url_pull_then_cache_without_requests(kp, store, rootfs, http_files):
    root, base, counts = http_files
    tarball = make_tarball(rootfs, root / "rootfs.tar.gz")
    sha = sha256_file(tarball)
    url = f"{base}/rootfs.tar.gz#sha256={sha}"
    r = kp("--store", store, "images", "pull", "--json", url)
    assert r.returncode == 0, r
    assert r.json()["requests"] == 1 and counts["GET"] == 1
    assert r.json()["tree_digest"] == tree_digest(kp, rootfs)
    again = kp("--store", store, "images", "pull", "--json", url)
    assert again.returncode == 0, again
    assert again.json()["cached"] is True
    assert again.json()["requests"] == 0 and counts["GET"] == 1


def test_url_tampered_on_the_server_is_refused(kp, store, rootfs, http_files):
    root, base, counts = http_files
    tarball = make_tarball(rootfs, root / "rootfs.tar.gz")
    sha = sha256_file(tarball)
    data = bytearray(tarball.read_bytes())
    data[len(data) // 2] ^= 0xFF
    tarball.write_bytes(bytes(data))
    r = kp("--store", store, "images", "pull", f"{base}/rootfs.tar.gz#sha256={sha}")
    assert r.returncode == 1, r
    assert "does not have the expected content" in r.stderr
    assert images(kp, store) == []
    assert store_clean(kp, store)["objects"] == 0


def test_url_missing_says_so(kp, store, http_files):
    root, base, counts = http_files
    r = kp("--store", store, "images", "pull", f"{base}/nothing.tar.gz")
    assert r.returncode == 1, r
    assert "404" in r.stderr


def test_offline_without_cache_fails_clearly(kp, store, http_files):
    root, base, counts = http_files
    r = kp("--store", store, "images", "pull", "--offline", f"{base}/rootfs.tar.gz#sha256={'1' * 64}")
    assert r.returncode == 1, r
    assert "--offline" in r.stderr and counts["GET"] == 0


def test_unknown_alias_lists_the_aliases(kp, store):
    r = kp("--store", store, "images", "pull", "debain/bookworm")
    assert r.returncode == 1, r
    assert "unknown alias 'debain/bookworm'" in r.stderr
    assert "did you mean 'debian/bookworm'" in r.stderr
    assert "known aliases:" in r.stderr


def test_config_alias_override(kp, store, rootfs):
    tarball = make_tarball(rootfs, kp.tmp / "rootfs.tar.gz")
    kp.write("config/karapace/config.toml",
             f'[images.aliases]\n"mine/one" = "file://{tarball}"\n')
    r = kp("--store", store, "images", "pull", "--json", "mine/one")
    assert r.returncode == 0, r
    assert r.json()["reference"] == f"file://{tarball}"


def test_bad_config_names_the_place(kp, store):
    kp.write("config/karapace/config.toml", '[images]\nlxc_servr = "x"\n')
    r = kp("--store", store, "images", "pull", "dir:///nonexistent")
    assert r.returncode == 2, r
    assert "config.toml:2:" in r.stderr


def test_rm_prune_inspect(kp, store, rootfs):
    tarball = make_tarball(rootfs, kp.tmp / "rootfs.tar.gz")
    a = kp("--store", store, "images", "pull", "--json", f"file://{tarball}").json()
    b = kp("--store", store, "images", "pull", "--json", f"dir://{rootfs}").json()
    assert a["tree_digest"] == b["tree_digest"]  # the same tree: one layer
    ins = kp("--store", store, "images", "inspect", "--json", a["digest"])
    assert ins.returncode == 0, ins
    rec = ins.json()[0]
    assert rec["tree_digest"] == a["tree_digest"] and rec["source"] == "file"
    assert rec["tags"][0]["reference"] == f"file://{tarball}"
    # By reference, by digest prefix.
    hexpart = b["digest"].split(":")[1]
    r = kp("--store", store, "images", "rm", "--json", hexpart[:10])
    assert r.returncode == 0, r
    assert r.json()["removed"] == [b["digest"]]
    # The layer is still kept by the other image.
    assert [i["digest"] for i in images(kp, store)] == [a["digest"]]
    assert store_clean(kp, store)["layers"] == 1
    r = kp("--store", store, "images", "prune", "--json")
    assert r.returncode == 0 and r.json()["removed"] == [], r  # still tagged
    r = kp("--store", store, "images", "prune", "--all", "--json")
    assert r.returncode == 0 and r.json()["removed"] == [a["digest"]], r
    rep = store_clean(kp, store)
    assert rep["layers"] == 0 and rep["objects"] == 0 and rep["problems"] == []
    r = kp("--store", store, "images", "rm", "sha256:" + "0" * 64)
    assert r.returncode == 1 and "no image" in r.stderr, r


def test_list_table(kp, store, rootfs):
    kp("--store", store, "images", "pull", f"dir://{rootfs}")
    r = kp("--store", store, "images")
    assert r.returncode == 0, r
    head = r.stdout.splitlines()[0].split()
    assert head == ["REFERENCE", "DIGEST", "TREE", "SIZE", "PULLED"]
    assert f"dir://{rootfs}" in r.stdout


def test_pin_rewrites_only_the_image(kp, store, rootfs):
    make_tarball(rootfs, kp.tmp / "rootfs.tar.gz")
    manifest = kp.write("karapace.toml", 'manifest_version = 1\n\n[base]\n# our base\nimage = "./rootfs.tar.gz"  # local\n\n[system]\npackages = ["git"]\n')
    before = manifest.read_text()
    r = kp("--store", store, "pin", "--check", manifest)
    assert r.returncode == 1, r
    assert "not pinned" in r.stdout
    r = kp("--store", store, "pin", manifest)
    assert r.returncode == 0, r
    sha = sha256_file(kp.tmp / "rootfs.tar.gz")
    after = manifest.read_text()
    pinned = f'file://{kp.tmp}/rootfs.tar.gz#sha256={sha}'
    assert after == before.replace('"./rootfs.tar.gz"', f'"{pinned}"')
    r = kp("--store", store, "pin", "--check", "--json", manifest)
    assert r.returncode == 0 and r.json()["pinned"] is True, r
    r = kp("--store", store, "validate", manifest)
    assert r.returncode == 0, r


def test_pin_refuses_a_directory(kp, store, rootfs):
    manifest = kp.write("karapace.toml", f'manifest_version = 1\n[base]\nimage = "dir://{rootfs}"\n')
    r = kp("--store", store, "pin", manifest)
    assert r.returncode == 1, r
    assert "cannot be pinned" in r.stderr


def test_malicious_tarball_is_contained(kp, store, tmp_path):
    """Entries that climb out of the tree are refused; nothing is kept."""
    bad = tmp_path / "evil.tar"
    with tarfile.open(bad, "w") as t:
        info = tarfile.TarInfo("etc")
        info.type = tarfile.DIRTYPE
        t.addfile(info)
        info = tarfile.TarInfo("../../escaped")
        data = b"x"
        info.size = len(data)
        import io
        t.addfile(info, io.BytesIO(data))
    r = kp("--store", store, "images", "pull", f"file://{bad}")
    assert r.returncode != 0, r
    assert "escaped" in r.stderr
    assert not (tmp_path.parent / "escaped").exists()
    assert images(kp, store) == []
    assert store_clean(kp, store)["problems"] == []


def test_help(kp):
    for args in (["images", "--help"], ["images", "pull", "--help"], ["pin", "--help"]):
        r = kp(*args)
        assert r.returncode == 0, r
        assert "Options" in r.stdout or "Subcommands" in r.stdout


# ---- LXC image servers (simplestreams), served from 127.0.0.1 ----

LXC_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)


def lxc_tree(root, rootfs, version, tarball=None):
    """streams/v1/index.json + images.json with testos/one for this machine, whose newest
    build is `version`; an older build too, and a newer one without a rootfs."""
    path = f"images/testos/one/{LXC_ARCH}/default/{version}/rootfs.tar.xz"
    dest = root / path
    dest.parent.mkdir(parents=True, exist_ok=True)
    if tarball is None:
        make_tarball(rootfs, dest, "w:xz")
    else:
        shutil.copy(tarball, dest)
    versions = {
        "20200101_00:00": {"items": {"root.tar.xz": {"ftype": "root.tar.xz", "path": "images/old/rootfs.tar.xz",
                                                     "sha256": "0" * 64, "size": 1}}},
        version: {"items": {"root.tar.xz": {"ftype": "root.tar.xz", "path": path,
                                            "sha256": sha256_file(dest), "size": dest.stat().st_size}}},
        "29991231_00:00": {"items": {"lxd.tar.xz": {"ftype": "lxd.tar.xz", "path": "x", "sha256": "1" * 64}}},
    }
    products = {"format": "products:1.0", "products": {
        f"testos:one:{LXC_ARCH}:default": {"os": "TestOS", "release": "one", "versions": versions},
        "testos:one:s390x:default": {"versions": {}},
    }}
    streams = root / "streams" / "v1"
    streams.mkdir(parents=True, exist_ok=True)
    (streams / "images.json").write_text(json.dumps(products))
    (streams / "index.json").write_text(json.dumps(
        {"format": "index:1.0", "index": {"images": {"datatype": "image-downloads",
                                                     "path": "streams/v1/images.json"}}}))
    return dest


def test_lxc_pull_newest_build_and_cache(kp, store, rootfs, http_files):
    root, base, counts = http_files
    host = base.split("//")[1]
    lxc_tree(root, rootfs, "20241120_05:24")
    ref = f"lxc://{host}/testos/one"
    r = kp("--store", store, "images", "pull", "--json", ref)
    assert r.returncode == 0, r
    res = r.json()
    assert res["reference"] == f"lxc://{host}/testos/one/default"
    assert res["tree_digest"] == tree_digest(kp, rootfs)
    assert res["pinned"].startswith(f"{base}/images/testos/one/{LXC_ARCH}/default/20241120_05:24/rootfs.tar.xz#sha256=")
    assert counts["GET"] == 3
    # Unchanged: the index and the product list, not the tarball.
    again = kp("--store", store, "images", "pull", "--json", ref)
    assert again.returncode == 0 and again.json()["cached"] is True, again
    assert counts["GET"] == 5
    # The pinned form is a URL with its digest: no request at all.
    pinned = kp("--store", store, "images", "pull", "--json", res["pinned"])
    assert pinned.returncode == 0 and pinned.json()["requests"] == 0 and counts["GET"] == 5, pinned


def test_lxc_tampered_tarball_is_refused(kp, store, rootfs, http_files, tmp_path):
    root, base, counts = http_files
    host = base.split("//")[1]
    dest = lxc_tree(root, rootfs, "20241120_05:24")
    data = bytearray(dest.read_bytes())
    data[-100] ^= 0xFF
    dest.write_bytes(bytes(data))
    r = kp("--store", store, "images", "pull", f"lxc://{host}/testos/one")
    assert r.returncode == 1, r
    assert "does not have the expected content" in r.stderr
    assert images(kp, store) == []


def test_lxc_unknown_release_lists_what_is_offered(kp, store, rootfs, http_files):
    root, base, counts = http_files
    host = base.split("//")[1]
    lxc_tree(root, rootfs, "20241120_05:24")
    r = kp("--store", store, "images", "pull", f"lxc://{host}/testos/two")
    assert r.returncode == 1, r
    assert "no release 'two'" in r.stderr and "one" in r.stderr
    r = kp("--store", store, "images", "pull", f"lxc://{host}/testos/one/cloud")
    assert r.returncode == 1 and "no variant 'cloud'" in r.stderr, r
