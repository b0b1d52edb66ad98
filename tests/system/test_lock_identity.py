"""karapace.lock and env_id: the identity is recomputed by an independent model of
docs/identity.md (identity_model.py, hashed with Debian's b3sum), and the two lock checks
— integrity and intent — are exercised through `karapace validate`."""
import identity_model as model

MANIFEST = """manifest_version = 1
[base]
image = "debian/bookworm"
[system]
packages = ["git", "curl"]
[mounts]
workspace = "./:/workspace"
[runtime.resource_limits]
memory_limit_mb = 4096
"""

BASE = {"reference": "debian+http://deb.debian.org/debian#bookworm",
        "digest": "sha256:" + "ab" * 32, "tree_digest": "cd" * 32}
PACKAGES = [
    {"name": "git", "version": "1:2.39.5-0+deb12u2", "arch": "amd64", "sha256": "11" * 32},
    {"name": "curl", "version": "7.88.1-10+deb12u12", "arch": "amd64", "sha256": "22" * 32},
    {"name": "libcurl4", "version": "7.88.1-10+deb12u12", "arch": "amd64", "sha256": ""},
]


def settings():
    return model.settings_for("debian/bookworm", **{
        "system.packages": ["git", "curl"], "mounts": {"workspace": ".:/workspace"},
        "runtime.resource_limits.memory_limit_mb": 4096})


def write_project(kp, manifest=MANIFEST, packages=PACKAGES, env_id=None):
    s = settings()
    eid = env_id or model.env_id(s, BASE, packages)
    kp.write("proj/karapace.toml", manifest)
    kp.write("proj/karapace.lock", model.lock_text(s, BASE, packages, eid))
    return kp.tmp / "proj" / "karapace.toml", eid


def test_env_id_matches_independent_model(kp):
    path, eid = write_project(kp)
    r = kp("validate", "--json", path)
    assert r.returncode == 0, r
    lock = r.json()["lock"]
    assert lock["env_id"] == eid
    assert lock["short_id"] == eid[:12]
    assert lock["intact"] and lock["matches_manifest"] and lock["differences"] == []
    assert "intact and up to date" in kp("validate", path).stderr


def test_identity_changes_with_every_semantic_field(kp):
    base_id = model.env_id(settings(), BASE, PACKAGES)
    seen = {base_id}
    variants = {
        "hardware.gpu": True, "hardware.audio": True, "system.packages": ["git"],
        "gui.apps": ["firefox"], "hardware.devices": ["/dev/kvm"],
        "mounts": {"workspace": ".:/workspace:ro"}, "runtime.backend": "oci",
        "runtime.network": "none", "runtime.resource_limits.cpu_shares": 512,
        "runtime.resource_limits.memory_limit_mb": 2048, "runtime.resource_limits.pids_max": 100,
        "host.home": False, "host.custom_mounts": ["~/src"], "host.rootfs": True,
        "host.display": False, "host.sound": False, "host.dbus": False, "host.ssh_agent": True,
        "env.pass": ["EDITOR"], "env.set": {"EDITOR": "vim"},
    }
    for key, value in variants.items():
        s = settings()
        s[key] = value
        eid = model.env_id(s, BASE, PACKAGES)
        # karapace agrees with the model for this variant too.
        kp.write(f"{key}/karapace.lock", model.lock_text(s, BASE, PACKAGES, eid))
        kp.write(f"{key}/karapace.toml", MANIFEST)
        r = kp("validate", "--json", kp.tmp / key / "karapace.toml")
        assert r.returncode == 0, (key, r)
        assert r.json()["lock"]["env_id"] == eid, key
        assert not r.json()["lock"]["matches_manifest"], key
        assert eid not in seen, key
        seen.add(eid)
    for field, value in (("reference", "docker://x/y@sha256:" + "0" * 64), ("digest", "sha256:" + "1" * 64),
                         ("tree_digest", "2" * 64)):
        base = dict(BASE, **{field: value})
        eid = model.env_id(settings(), base, PACKAGES)
        assert eid not in seen
        seen.add(eid)


def test_package_order_in_lock_does_not_matter(kp):
    path, eid = write_project(kp, packages=list(reversed(PACKAGES)))
    assert eid == model.env_id(settings(), BASE, PACKAGES)
    r = kp("validate", "--json", path)
    assert r.returncode == 0, r
    assert r.json()["lock"]["env_id"] == eid


def test_manifest_package_order_and_duplicates_do_not_drift(kp):
    reordered = MANIFEST.replace('["git", "curl"]', '["curl", "git", "curl"]')
    path, _ = write_project(kp, manifest=reordered)
    r = kp("validate", "--json", "--locked", path)
    assert r.returncode == 0, r
    assert r.json()["lock"]["matches_manifest"]


def test_tampered_lock_is_refused(kp):
    path, eid = write_project(kp)
    lock = kp.tmp / "proj" / "karapace.lock"
    lock.write_text(lock.read_text().replace("1:2.39.5-0+deb12u2", "1:2.39.5-0+deb12u3"))
    r = kp("validate", path)
    assert r.returncode == 2, r
    assert f"env_id {eid} does not match the lock's content" in r.stderr
    assert "hint:" in r.stderr and "karapace build" in r.stderr


def test_drift_is_reported_and_locked_refuses(kp):
    changed = MANIFEST.replace('["git", "curl"]', '["git", "vim"]').replace("4096", "8192")
    path, _ = write_project(kp, manifest=changed)
    r = kp("validate", path)
    assert r.returncode == 0, r
    assert "is out of date" in r.stderr
    assert 'system.packages: manifest adds "vim"; removes "curl"' in r.stderr
    assert "runtime.resource_limits.memory_limit_mb: locked 4096, manifest says 8192" in r.stderr
    r = kp("validate", "--locked", path)
    assert r.returncode == 2, r
    r = kp("validate", "--locked", "--json", path)
    assert r.returncode == 2
    assert "differs from" in r.stderr


def test_locked_without_lock(kp):
    path = kp.write("solo/karapace.toml", MANIFEST)
    r = kp("validate", "--locked", path)
    assert r.returncode == 1, r
    assert "karapace.lock" in r.stderr and "karapace build" in r.stderr


def test_lock_with_unknown_key(kp):
    path, _ = write_project(kp)
    lock = kp.tmp / "proj" / "karapace.lock"
    lock.write_text(lock.read_text().replace("[base]\n", "[base]\nmirror = \"x\"\n"))
    r = kp("validate", path)
    assert r.returncode == 2, r
    assert f"{lock}:5:1: unknown key \"mirror\" in [base]" in r.stderr


def test_lock_with_non_identity_setting(kp):
    path, _ = write_project(kp)
    lock = kp.tmp / "proj" / "karapace.lock"
    lock.write_text(lock.read_text().replace("[settings]\n", "[settings]\nname = \"x\"\n"))
    r = kp("validate", path)
    assert r.returncode == 2, r
    assert "name does not belong in a lock's settings" in r.stderr


def test_lock_from_newer_version(kp):
    path, _ = write_project(kp)
    lock = kp.tmp / "proj" / "karapace.lock"
    lock.write_text(lock.read_text().replace("lock_version = 1", "lock_version = 7"))
    r = kp("validate", path)
    assert r.returncode == 2, r
    assert "lock_version 7 is not supported" in r.stderr


def test_verbose_shows_the_identity_serialisation(kp):
    path, eid = write_project(kp)
    r = kp("validate", "-vv", path)
    assert r.returncode == 0, r
    assert "policy: built-in defaults" in r.stderr
    assert model.identity_text(settings(), BASE, PACKAGES) in r.stderr
