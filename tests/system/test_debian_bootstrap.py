"""A Debian base bootstrapped straight from a signed mirror (karapace images pull
debian+http://MIRROR#SUITE, debian:SUITE, debian/SUITE), against debmirror.DebMirror: a local
mirror on 127.0.0.1 that forwards to deb.debian.org, keeps what it fetched in the test cache
and alters what a test asks it to.

The trust checks (the InRelease's signature, the keyring, Packages.xz against the Release, a
.deb against Packages) fail before anything is unpacked and leave no image behind. The slow
tests bootstrap bookworm minbase once for the module (the `bootstrapped` fixture) and check
the tree (apt and dpkg installed and working, the package set), a second pull (one request),
a second store (the same tree digest) and --offline from the package cache after
`images rm`."""
import re
import shutil
import types

import pytest

import debmirror
from conftest import Karapace, _remove_tree

SUITE = "bookworm"
HEX64 = re.compile(r"[0-9a-f]{64}")
BASE_FILES = re.compile(r"^pool/.*/base-files_[^/]*\.deb$")
POOL = re.compile(r"^pool/")
INSTALLED = "install ok installed"


def ref(mirror, suite=SUITE):
    return f"debian+{mirror.url}#{suite}"


def pull(kp, reference, *args, json_out=True, timeout=900):
    return kp("images", "pull", *(["--json"] if json_out else []), *args, reference,
              timeout=timeout)


def pulled(r):
    """The JSON of a successful pull, checked for the keys every pull reports."""
    assert r.returncode == 0, r
    res = r.json()
    for key in ("reference", "digest", "tree_digest", "cached", "bytes", "requests"):
        assert key in res, (key, res)
    assert HEX64.fullmatch(res["tree_digest"]), res
    assert isinstance(res["cached"], bool), res
    assert res["digest"], res
    return res


def refused(r):
    """A deliberate failure: a non-zero status that is not a signal, and a message."""
    assert 0 < r.returncode < 128, r
    assert r.stderr.strip(), r


def images(kp):
    r = kp("images", "list", "--json")
    assert r.returncode == 0, r
    return r.json()


def nothing_kept(kp):
    """No image, no layer, and a store that verifies clean (if there is one)."""
    assert images(kp) == []
    store = kp.tmp / "data" / "karapace"
    layers = store / "layers"
    if layers.is_dir():
        assert not [p.name for p in layers.iterdir() if HEX64.fullmatch(p.name)]
    if store.is_dir():
        v = kp("verify-store", "--json")
        assert v.returncode == 0 and v.json()["problems"] == [], v


def layer_tree(kp, tree_digest):
    return kp.tmp / "data" / "karapace" / "layers" / tree_digest / "tree"


def dpkg_status(tree):
    """var/lib/dpkg/status of a tree: {package name: stanza}."""
    return {s["Package"]: s for s in
            debmirror.parse_packages((tree / "var/lib/dpkg/status").read_text())}


def names(field):
    """Each clause of a Depends-like field as its alternatives' names, without versions or
    architecture qualifiers."""
    out = []
    for clause in (field or "").split(","):
        alts = [re.split(r"[\s(:]", a.strip(), maxsplit=1)[0] for a in clause.split("|")]
        alts = [a for a in alts if a]
        if alts:
            out.append(alts)
    return out


def newest(index):
    """{name: stanza} of a Packages index, for this architecture or all (the first of a
    name, as the mirror lists only one version of each in a suite)."""
    out = {}
    for p in index:
        if p.get("Architecture") in (debmirror.ARCH, "all"):
            out.setdefault(p["Package"], p)
    return out


def set_config(kp, text):
    kp.write("config/karapace/config.toml", text)


@pytest.fixture
def mirror(deb_mirror):
    """The module's mirror with nothing altered and its counts at zero; put back after."""
    deb_mirror.untamper()
    deb_mirror.down = False
    deb_mirror.reset_counts()
    yield deb_mirror
    deb_mirror.untamper()
    deb_mirror.down = False


@pytest.fixture(scope="module")
def bootstrapped(tmp_path_factory, deb_mirror):
    """One bootstrap of bookworm minbase from the module's mirror, in a store of its own:
    .kp, .ref, .result (the pull's Result), .requests (what the mirror was asked for it).
    Tests that change the store do so at the end of the module."""
    deb_mirror.untamper()
    deb_mirror.down = False
    deb_mirror.reset_counts()
    home = tmp_path_factory.mktemp("debian-bootstrap")
    kp = Karapace(home)
    reference = ref(deb_mirror)
    r = pull(kp, reference)
    b = types.SimpleNamespace(kp=kp, ref=reference, result=r, requests=list(deb_mirror.paths()))
    yield b
    _remove_tree(home)


# ---- references and --offline: no network at all ----

@pytest.mark.parametrize("bad", [
    "debian+ftp://x#bookworm",
    "debian:",
    "debian+http://127.0.0.1:9/debian",
    "debian+http://127.0.0.1:9/debian#",
    "debian:bookworm/nosuchvariant",
])
def test_bad_reference_is_a_clear_error(kp, bad):
    r = pull(kp, bad, json_out=False, timeout=60)
    refused(r)
    assert bad in r.stderr, r.stderr
    assert images(kp) == []


def test_offline_with_an_empty_store_fails_without_a_request(kp, tmp_path):
    # A mirror whose upstream is a closed port, configured for the short references too: it
    # counts what is asked of it, and nothing should be.
    with debmirror.DebMirror(tmp_path / "mirror-cache", upstream="http://127.0.0.1:9/debian") as m:
        set_config(kp, f'[mirrors]\ndebian = "{m.url}"\n')
        for reference in (ref(m), "debian:bookworm", "debian/bookworm"):
            r = pull(kp, reference, "--offline", json_out=False, timeout=60)
            refused(r)
            assert "offline" in r.stderr.lower(), r.stderr
        assert m.count() == 0, m.requests
    assert images(kp) == []


# ---- the trust checks, against the mirror ----

def test_tampered_inrelease_is_refused(kp, mirror):
    mirror.tamper("/InRelease", debmirror.alter_signed_text)
    r = pull(kp, ref(mirror), json_out=False)
    refused(r)
    assert "InRelease" in r.stderr and "gpgv" in r.stderr, r.stderr
    assert "BAD signature" in r.stderr, r.stderr  # gpgv's own words
    assert mirror.count(f"dists/{SUITE}/InRelease") == 1, mirror.requests
    assert mirror.count("Packages.xz") == 0 and mirror.count(POOL) == 0, mirror.requests
    nothing_kept(kp)
    # Nothing unverified was kept: offline there is still no InRelease to start from.
    off = pull(kp, ref(mirror), "--offline", json_out=False)
    refused(off)
    assert "offline" in off.stderr.lower(), off.stderr


def test_another_suites_signed_release_is_refused(kp, mirror):
    # A genuine InRelease, signed by Debian, but of another suite, served as this one's:
    # the signature holds, the suite it names does not.
    other = mirror.inrelease("trixie")
    mirror.tamper(f"dists/{SUITE}/InRelease", lambda d: other)
    r = pull(kp, ref(mirror), json_out=False)
    refused(r)
    assert "describes suite" in r.stderr, r.stderr
    assert mirror.count("Packages.xz") == 0 and mirror.count(POOL) == 0, mirror.requests
    nothing_kept(kp)


def test_inrelease_signed_by_keys_not_in_the_keyring_is_refused(kp, mirror, tmp_path):
    # The genuine InRelease, but the configured keyring holds only Debian's removed keys.
    removed = "/usr/share/keyrings/debian-archive-removed-keys.gpg"
    try:
        data = open(removed, "rb").read()
    except FileNotFoundError:
        pytest.skip(f"no {removed} (debian-archive-keyring)")
    keyrings = tmp_path / "keyrings"
    keyrings.mkdir()
    (keyrings / "debian-archive-keyring.gpg").write_bytes(data)
    set_config(kp, f'[mirrors]\nkeyring_dir = "{keyrings}"\n')
    r = pull(kp, ref(mirror), json_out=False)
    refused(r)
    assert "InRelease" in r.stderr and "gpgv" in r.stderr, r.stderr
    assert mirror.count("Packages.xz") == 0 and mirror.count(POOL) == 0, mirror.requests
    nothing_kept(kp)


def test_keyring_dir_without_the_keyring_is_refused(kp, mirror, tmp_path):
    empty = tmp_path / "keyrings"
    empty.mkdir()
    set_config(kp, f'[mirrors]\nkeyring_dir = "{empty}"\n')
    r = pull(kp, ref(mirror), json_out=False)
    refused(r)
    assert "keyring" in r.stderr.lower(), r.stderr
    assert str(empty) in r.stderr, r.stderr  # where it looked
    assert mirror.count("Packages.xz") == 0 and mirror.count(POOL) == 0, mirror.requests
    nothing_kept(kp)


def test_tampered_packages_index_is_refused(kp, mirror):
    # Same length, one byte in the middle flipped: only the SHA256 can tell.
    mirror.tamper(f"/binary-{debmirror.ARCH}/Packages.xz",
                  lambda d: debmirror.flip_byte(len(d) // 2)(d))
    r = pull(kp, ref(mirror), json_out=False)
    refused(r)
    assert "Packages" in r.stderr and "SHA256" in r.stderr, r.stderr
    assert mirror.count(f"/binary-{debmirror.ARCH}/Packages.xz") >= 1, mirror.requests
    assert mirror.count(POOL) == 0, mirror.requests
    nothing_kept(kp)


def test_keyring_dir_is_where_the_keyring_is_taken_from(kp, mirror, tmp_path):
    # The real keyring, copied to a directory of one's own: the InRelease verifies (the
    # pull gets as far as the index, altered here so that it stops there).
    keyrings = tmp_path / "keyrings"
    keyrings.mkdir()
    shutil.copyfile("/usr/share/keyrings/debian-archive-keyring.gpg",
                    keyrings / "debian-archive-keyring.gpg")
    set_config(kp, f'[mirrors]\nkeyring_dir = "{keyrings}"\n')
    mirror.tamper("Packages.xz", debmirror.flip_last_byte)
    r = pull(kp, ref(mirror), json_out=False)
    refused(r)
    assert "Packages" in r.stderr and "SHA256" in r.stderr, r.stderr
    assert "gpgv" not in r.stderr and "keyring" not in r.stderr.lower(), r.stderr
    nothing_kept(kp)


@pytest.mark.parametrize("reference", ["debian:bookworm", "debian/bookworm"])
def test_short_reference_uses_the_configured_mirror(kp, mirror, reference):
    # The mirror of [mirrors] in the configuration, not deb.debian.org: it is asked for the
    # InRelease (altered, so that the pull stops right there).
    set_config(kp, f'[mirrors]\ndebian = "{mirror.url}"\n')
    mirror.tamper("/InRelease", debmirror.alter_signed_text)
    r = pull(kp, reference, json_out=False)
    refused(r)
    assert "InRelease" in r.stderr and "gpgv" in r.stderr, r.stderr
    assert mirror.count(f"dists/{SUITE}/InRelease") == 1, mirror.requests
    nothing_kept(kp)


def test_tampered_package_is_refused(kp, mirror):
    # base-files, whatever its version today, with its last bit flipped. The packages are
    # downloaded (from the mirror's disk cache after the first run), nothing is unpacked.
    mirror.tamper(BASE_FILES, debmirror.flip_last_byte)
    r = pull(kp, ref(mirror), json_out=False)
    refused(r)
    assert ".deb" in r.stderr and "SHA256" in r.stderr, r.stderr
    assert "base-files" in r.stderr, r.stderr  # which one
    assert mirror.count(BASE_FILES) >= 1, mirror.requests
    nothing_kept(kp)


# ---- whole bootstraps (slow) ----

@pytest.mark.slow
def test_bootstrap_installs_a_working_apt_and_dpkg(bootstrapped):
    b = bootstrapped
    res = pulled(b.result)
    assert res["cached"] is False, res
    assert SUITE in res["reference"], res
    tree = layer_tree(b.kp, res["tree_digest"])
    assert tree.is_dir(), f"no layer {tree}"
    for tool in ("usr/bin/apt-get", "usr/bin/dpkg"):
        assert (tree / tool).is_file(), tool
    status = dpkg_status(tree)
    assert status.get("apt", {}).get("Status") == INSTALLED, status.get("apt")
    unfinished = {n: s.get("Status") for n, s in status.items() if s.get("Status") != INSTALLED}
    assert not unfinished, unfinished

    # They run: apt-get in a sandbox over the image (named by digest), dpkg -l (named by the
    # reference) lists what the status file says.
    a = b.kp("run", "--image", res["digest"], "--network", "none", "--", "apt-get", "--version")
    assert a.returncode == 0 and a.stdout.startswith("apt "), a
    d = b.kp("run", "--image", b.ref, "--network", "none", "--", "dpkg", "-l")
    assert d.returncode == 0, d
    listed = {line.split()[1].split(":")[0] for line in d.stdout.splitlines()
              if line.startswith("ii ")}
    assert listed == set(status), listed ^ set(status)
    # And the stored layer itself, entered with chroot in the store's namespace: dpkg finds
    # nothing half-installed.
    chroot = shutil.which("chroot") or "/usr/sbin/chroot"
    audit = b.kp("unshare", "--", chroot, tree, "/usr/bin/dpkg", "--audit")
    assert audit.returncode == 0 and audit.stdout.strip() == "", audit

    # What list and inspect say of it.
    [img] = images(b.kp)
    assert img["digest"] == res["digest"] and img["tree_digest"] == res["tree_digest"], img
    info = b.kp("images", "inspect", "--json", b.ref)
    assert info.returncode == 0, info
    records = info.json()
    records = records if isinstance(records, list) else [records]
    assert [r["tree_digest"] for r in records] == [res["tree_digest"]], records


@pytest.mark.slow
def test_bootstrap_installs_the_minbase_set(bootstrapped, deb_mirror):
    b = bootstrapped
    res = pulled(b.result)
    status = dpkg_status(layer_tree(b.kp, res["tree_digest"]))
    index = newest(deb_mirror.packages(SUITE))
    installed = set(status)
    # required + Essential + apt ...
    wanted = {n for n, p in index.items()
              if p.get("Priority") == "required" or p.get("Essential") == "yes"} | {"apt"}
    assert wanted <= installed, sorted(wanted - installed)
    # ... closed over Depends and Pre-Depends (a name or something that Provides it) ...
    provided = set(installed)
    for s in status.values():
        provided |= {alts[0] for alts in names(s.get("Provides"))}
    unmet = {n: alts for n, s in status.items()
             for field in ("Depends", "Pre-Depends") for alts in names(s.get(field))
             if not set(alts) & provided}
    assert not unmet, unmet
    # ... and not much more: bookworm's minbase is about 96 packages.
    assert 80 <= len(installed) <= 130, sorted(installed)
    # Each at the version this mirror's index has, downloaded from its pool exactly once.
    wrong = {n: (s["Version"], index.get(n, {}).get("Version")) for n, s in status.items()
             if index.get(n, {}).get("Version") != s["Version"]}
    assert not wrong, wrong
    fetched = sorted(p for p in b.requests if POOL.match(p))
    assert fetched == sorted(index[n]["Filename"] for n in installed)
    assert res["bytes"] >= sum(int(index[n]["Size"]) for n in installed), res


@pytest.mark.slow
def test_bootstrap_reports_what_it_fetched(bootstrapped, deb_mirror):
    b = bootstrapped
    res = pulled(b.result)
    # One InRelease, one index, each package once; every request the mirror saw is one the
    # pull counted, and every byte it served.
    assert b.requests.count(f"dists/{SUITE}/InRelease") == 1, b.requests
    assert len([p for p in b.requests if p.startswith("dists/")]) == 2, b.requests
    debs = [p for p in b.requests if POOL.match(p)]
    assert len(debs) == len(set(debs)), "a package was fetched twice"
    served = sum(len(deb_mirror.fetch(p)) for p in b.requests)
    assert (res["requests"], res["bytes"]) == (len(b.requests), served), \
        {"reported": (res["requests"], res["bytes"]),
         "mirror served": (len(b.requests), served), "asked for": sorted(set(b.requests))[:3]}


@pytest.mark.slow
def test_bootstrap_set_is_what_mmdebstrap_installs(bootstrapped, debian_tree):
    b = bootstrapped
    res = pulled(b.result)
    ours = set(dpkg_status(layer_tree(b.kp, res["tree_digest"])))
    theirs = set(dpkg_status(debian_tree))
    assert ours == theirs, {"only karapace": sorted(ours - theirs),
                            "only mmdebstrap": sorted(theirs - ours)}


@pytest.mark.slow
def test_second_pull_is_one_inrelease_request(bootstrapped, mirror):
    b = bootstrapped
    first = pulled(b.result)
    r = pull(b.kp, b.ref)
    res = pulled(r)
    assert res["cached"] is True, res
    assert res["requests"] == 1, res
    assert (res["digest"], res["tree_digest"]) == (first["digest"], first["tree_digest"]), res
    assert mirror.paths() == [f"dists/{SUITE}/InRelease"], mirror.requests
    assert len(images(b.kp)) == 1


@pytest.mark.slow
def test_another_store_gets_the_same_tree(bootstrapped, mirror, tmp_path):
    b = bootstrapped
    first = pulled(b.result)
    other = Karapace(tmp_path)
    res = pulled(pull(other, b.ref))
    assert res["cached"] is False, res
    # A bootstrap of its own (the packages come from the mirror again), same tree.
    assert mirror.count(POOL) >= 80, mirror.requests
    assert res["tree_digest"] == first["tree_digest"], (res, first)
    v = other("verify-store", "--json")
    assert v.returncode == 0 and v.json()["problems"] == [], v


@pytest.mark.slow
def test_offline_bootstrap_from_the_package_cache(bootstrapped, mirror):
    # Last of the module: it removes the image of the shared store (and makes it again).
    b = bootstrapped
    first = pulled(b.result)
    rm = b.kp("images", "rm", b.ref)
    assert rm.returncode == 0, rm
    assert images(b.kp) == []
    # The mirror gone (connections get no answer); the package cache is all there is.
    mirror.down = True
    try:
        r = pull(b.kp, b.ref, "--offline")
    finally:
        mirror.down = False
    res = pulled(r)
    assert mirror.count() == 0, mirror.requests
    assert res["requests"] == 0, res
    assert res["tree_digest"] == first["tree_digest"], (res, first)
    assert [i["tree_digest"] for i in images(b.kp)] == [first["tree_digest"]]
    # Without --offline and without the mirror: it tries, and fails.
    assert b.kp("images", "rm", b.ref).returncode == 0
    mirror.down = True
    try:
        bad = pull(b.kp, b.ref, json_out=False, timeout=300)
    finally:
        mirror.down = False
    refused(bad)
    assert mirror.count(f"dists/{SUITE}/InRelease") >= 1, mirror.requests
    assert images(b.kp) == []
