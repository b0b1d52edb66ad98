"""karapace build / exec / list / destroy: a manifest becomes a locked environment that
commands run in. The fast tests use a local base (the busybox tree, no network); the slow
one builds examples/debian.toml from the Debian mirror with real packages."""
import json
import os
import shutil
import tomllib
import urllib.request

import pytest


def manifest(kp, base, extra="", name="demo", directory="proj"):
    text = (f'manifest_version = 1\nname = "{name}"\n[base]\nimage = "{base}"\n' + extra)
    return kp.write(f"{directory}/karapace.toml", text)


def envs(kp):
    r = kp("list", "--json")
    assert r.returncode == 0, r
    return r.json()


def test_build_exec_list_destroy(kp, rootfs):
    path = manifest(kp, rootfs)
    r = kp("build", "--json", path)
    assert r.returncode == 0, r
    res = r.json()
    env_id = res["env_id"]
    assert len(env_id) == 64 and res["short_id"] == env_id[:12]
    assert res["existed"] is False
    lock_path = path.parent / "karapace.lock"
    assert res["lock"] == str(lock_path)
    lock = tomllib.loads(lock_path.read_text())
    assert lock["env_id"] == env_id
    assert lock["base"]["tree_digest"] == res["base_tree"]
    # The lock's integrity holds and it agrees with the manifest.
    v = kp("validate", "--locked", path)
    assert v.returncode == 0, v

    listed = envs(kp)
    assert [(e["env_id"], e["name"], e["state"]) for e in listed] == [(env_id, "demo", "built")]

    # exec by name, short id and full id; the command's status comes back.
    for ref in ("demo", env_id[:12], env_id):
        e = kp("exec", ref, "--", "sh", "-c", "cat /etc/os-release-test 2>/dev/null; id -u; exit 7")
        assert e.returncode == 7, e
        assert e.stdout.strip().splitlines()[-1] == str(os.getuid())
    root = kp("exec", "--user", "root", "demo", "--", "id", "-u")
    assert root.returncode == 0 and root.stdout.strip() == "0", root
    # Writes go to the environment's own layer: they stay, and the layers below do not change.
    w = kp("exec", "--user", "root", "demo", "--", "sh", "-c", "echo x > /etc/written")
    assert w.returncode == 0, w
    kept = kp("exec", "demo", "--", "cat", "/etc/written")
    assert kept.returncode == 0 and kept.stdout == "x\n", kept
    assert not (rootfs / "etc" / "written").exists()

    # The same manifest again: nothing to do, the same identity.
    again = kp("build", "--json", path)
    assert again.returncode == 0, again
    assert again.json()["env_id"] == env_id and again.json()["existed"] is True

    d = kp("destroy", "demo")
    assert d.returncode == 0, d
    assert envs(kp) == []
    missing = kp("exec", "demo", "--", "true")
    assert missing.returncode != 0 and "demo" in missing.stderr, missing
    assert kp("verify-store", "--json").json()["problems"] == []


def test_concurrent_execs_share_one_sandbox(kp, rootfs):
    import subprocess
    import time
    from conftest import KARAPACE
    path = manifest(kp, rootfs, '[mounts]\nworkspace = "./:/workspace"\n')
    assert kp("build", path).returncode == 0
    marker = path.parent / "started"
    first = subprocess.Popen([KARAPACE, "exec", "demo", "--", "sh", "-c",
                              "echo yes > /workspace/started; exec sleep 30"],
                             env=kp.env, cwd=kp.tmp, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(200):
            if marker.exists() or first.poll() is not None:
                break
            time.sleep(0.05)
        assert first.poll() is None, first.communicate()
        # The second command runs beside the first one: the same pid namespace.
        seen = kp("exec", "demo", "--", "sh", "-c", "cat /proc/[0-9]*/cmdline | tr '\\0' ' '")
        assert seen.returncode == 0, seen
        assert "sleep 30" in seen.stdout, seen
        # An environment in use is not destroyed.
        busy = kp("destroy", "demo")
        assert busy.returncode != 0 and "running" in busy.stderr, busy
    finally:
        first.kill()
        first.wait()
    for _ in range(100):
        if kp("destroy", "demo").returncode == 0:
            break
        time.sleep(0.1)
    assert envs(kp) == []


def test_exec_holds_to_the_manifest_limits(kp, rootfs):
    """[runtime.resource_limits] hold for every command run in the environment: the holder
    the first exec starts lives in a cgroup with the limits, and later execs join it, so
    the limits are the environment's, not each command's."""
    import subprocess
    import time
    from conftest import KARAPACE
    path = manifest(kp, rootfs, "[runtime.resource_limits]\nmemory_limit_mb = 64\n"
                                "pids_max = 40\n")
    assert kp("build", path).returncode == 0
    probe = "/usr/bin/sandbox-probe"
    small = kp("exec", "demo", "--", probe, "alloc", "16")
    assert small.returncode == 0 and small.stdout == "survived\n", small
    big = kp("exec", "demo", "--", probe, "alloc", "256")
    assert big.returncode == 128 + 9 and "survived" not in big.stdout, big
    # A first command holds 30 processes; a joined one may not go past the 40 in total.
    first = subprocess.Popen([KARAPACE, "exec", "demo", "--", "sh", "-c",
                              "for i in $(seq 30); do sleep 60 & done; echo up; wait"],
                             env=kp.env, cwd=kp.tmp, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        assert first.stdout.readline() == "up\n", first.stderr.read()
        joined = kp("exec", "demo", "--", "sh", "-c",
                    "for i in $(seq 12); do sleep 60 & done; wait")
        assert "can't fork" in joined.stderr, joined
        big = kp("exec", "demo", "--", probe, "alloc", "256")
        assert big.returncode == 128 + 9, big
    finally:
        first.kill()
        first.wait()
    # Above the policy's ceiling, refused before anything runs.
    kp.write("config/karapace/config.toml", "[policy]\nmax_memory_limit_mb = 32\n")
    r = kp("exec", "demo", "--", "true")
    if r.returncode == 0:
        # A holder was still up from before: wait for it to end.
        for _ in range(100):
            time.sleep(0.1)
            r = kp("exec", "demo", "--", "true")
            if r.returncode != 0:
                break
    assert r.returncode != 0 and "memory_limit_mb" in r.stderr, r


def test_the_holder_keeps_no_output_of_the_exec_that_started_it(kp, rootfs):
    """The exec that starts an environment's holder returns its output's end as soon as
    its command ends, even while another session keeps the holder up: `exec ... | tee`
    must not hang on the holder."""
    import subprocess
    import time
    from conftest import KARAPACE
    assert kp("build", manifest(kp, rootfs)).returncode == 0
    starter = subprocess.Popen([KARAPACE, "exec", "demo", "--", "sh", "-c", "echo first; sleep 2"],
                               env=kp.env, cwd=kp.tmp, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    keeper = None
    try:
        assert starter.stdout.readline() == "first\n"
        keeper = subprocess.Popen([KARAPACE, "exec", "demo", "--", "sleep", "60"], env=kp.env,
                                  cwd=kp.tmp, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        assert keeper.poll() is None
        began = time.monotonic()
        out, err = starter.communicate(timeout=20)
        assert starter.returncode == 0, err
        assert time.monotonic() - began < 10  # the end of the pipe, not the keeper's
        assert keeper.poll() is None, "the holder ended with its first session"
    finally:
        for p in (starter, keeper):
            if p and p.poll() is None:
                p.kill()
                p.communicate()


def test_identity_follows_the_manifest(kp, rootfs):
    a = kp("build", "--json", manifest(kp, rootfs, directory="a"))
    assert a.returncode == 0, a
    # A different setting: a different identity.
    b = kp("build", "--json", manifest(kp, rootfs, "[runtime]\nnetwork = \"none\"\n",
                                       name="other", directory="b"))
    assert b.returncode == 0, b
    assert a.json()["env_id"] != b.json()["env_id"]
    # A second store, the same manifest: the same identity.
    (kp.tmp / "second").mkdir()
    other = kp.__class__(kp.tmp / "second")
    c = other("build", "--json", manifest(kp, rootfs, directory="c"))
    assert c.returncode == 0, c
    assert c.json()["env_id"] == a.json()["env_id"]


def test_exec_uses_the_manifest_mounts(kp, rootfs):
    work = kp.tmp / "proj"
    path = manifest(kp, rootfs, '[mounts]\nworkspace = "./:/workspace"\n')
    (work / "hello.txt").write_text("from the host\n")
    assert kp("build", path).returncode == 0
    r = kp("exec", "demo", "--", "cat", "/workspace/hello.txt")
    assert r.returncode == 0 and r.stdout == "from the host\n", r


def test_run_manifest_is_throw_away(kp, rootfs):
    path = manifest(kp, rootfs)
    r = kp("run", path, "--", "sh", "-c", "echo x > /etc/scratch; cat /etc/scratch")
    assert r.returncode == 0 and r.stdout == "x\n", r
    # Built on the way (the lock is there), and nothing of the run stayed.
    assert (path.parent / "karapace.lock").exists()
    gone = kp("exec", "demo", "--", "test", "-e", "/etc/scratch")
    assert gone.returncode == 1, gone
    # In the manifest's directory, `run -- CMD` finds ./karapace.toml.
    here = kp("run", "--", "true", cwd=path.parent)
    assert here.returncode == 0, here
    nowhere = kp("run", "--", "true", cwd=kp.tmp)
    assert nowhere.returncode == 64 and "manifest" in nowhere.stderr, nowhere


def test_run_manifest_has_the_environments_settings(kp, rootfs):
    """run MANIFEST runs as exec would: the manifest's [mounts], [env], network and
    resource limits, unless an option of run says otherwise."""
    path = manifest(kp, rootfs, '[mounts]\nworkspace = "./:/workspace"\n'
                                '[env]\nset = { GREETING = "hello" }\n'
                                '[runtime]\nnetwork = "none"\n'
                                '[runtime.resource_limits]\npids_max = 8\n')
    (path.parent / "marker").write_text("here\n")
    r = kp("run", path, "--", "sh", "-c",
           "cat /workspace/marker; echo $GREETING; ls /sys/class/net")
    assert r.returncode == 0, r
    assert r.stdout.split() == ["here", "hello", "lo"], r.stdout
    forks = kp("run", path, "--", "sh", "-c", "for i in $(seq 12); do sleep 2 & done; wait")
    assert "can't fork" in forks.stderr, forks
    # Options win: the host's network, more tasks.
    r = kp("run", "--network", "host", "--pids", "64", path, "--", "sh", "-c",
           "ls /sys/class/net | wc -l; for i in $(seq 12); do sleep 0.1 & done; wait")
    assert r.returncode == 0 and "can't fork" not in r.stderr, r
    assert int(r.stdout.split()[0]) > 1, r.stdout


def test_exec_keeps_the_settings_the_environment_was_built_with(kp, rootfs):
    """The runtime settings are part of the environment's identity: exec takes them from
    its lock in the store. Editing the manifest without building (a new identity) or
    removing it does not change how the built environment runs."""
    path = manifest(kp, rootfs, '[mounts]\nworkspace = "./:/workspace"\n'
                                '[env]\nset = { STAGE = "built" }\n'
                                '[runtime]\nnetwork = "none"\n')
    assert kp("build", path).returncode == 0
    (path.parent / "marker").write_text("here\n")
    probe = ["sh", "-c", "ls /sys/class/net; echo $STAGE; cat /workspace/marker"]
    r = kp("exec", "demo", "--", *probe)
    assert r.returncode == 0 and r.stdout.split() == ["lo", "built", "here"], r
    path.write_text(path.read_text().replace('network = "none"', 'network = "host"')
                    .replace('"built"', '"edited"'))
    r = kp("exec", "demo", "--", *probe)
    assert r.returncode == 0 and r.stdout.split() == ["lo", "built", "here"], r
    path.unlink()
    r = kp("exec", "demo", "--", *probe)
    assert r.returncode == 0 and r.stdout.split() == ["lo", "built", "here"], r


def test_build_errors(kp, rootfs):
    bad = kp.write("bad/karapace.toml", 'manifest_version = 1\n[base]\nimage = "debain/bookworm"\n')
    r = kp("build", bad)
    assert r.returncode == 2, r
    assert "karapace.toml:3:9" in r.stderr and "did you mean" in r.stderr, r
    assert kp("exec", "nope", "--", "true").returncode != 0
    assert kp("destroy", "nope").returncode != 0
    # Packages on a base without a package manager: said plainly, nothing kept.
    none = manifest(kp, rootfs, '[system]\npackages = ["git"]\n', directory="nopm")
    r = kp("build", none)
    assert r.returncode == 1 and "no package manager" in r.stderr, r
    assert envs(kp) == []


def _mirror_reachable():
    try:
        urllib.request.urlopen("http://deb.debian.org/debian/dists/bookworm/InRelease", timeout=10)
        return True
    except OSError:
        return False


@pytest.mark.slow
def test_debian_example_with_packages(kp, source_root):
    if not _mirror_reachable():
        pytest.skip("the Debian mirror is not reachable")
    proj = kp.tmp / "example"
    proj.mkdir()
    shutil.copy(source_root / "examples" / "debian.toml", proj / "karapace.toml")
    r = kp("build", "--json", proj / "karapace.toml", timeout=900)
    assert r.returncode == 0, r
    env_id = r.json()["env_id"]
    g = kp("exec", "example", "--", "git", "--version")
    assert g.returncode == 0 and g.stdout.startswith("git version"), g
    lock = tomllib.loads((proj / "karapace.lock").read_text())
    by_name = {p["name"]: p for p in lock["package"]}
    # The full closure: what was asked for, what it needs, and the base's own packages,
    # each with its archive's SHA256.
    for name in ("git", "curl", "ca-certificates", "libcurl4", "dpkg", "apt"):
        assert name in by_name, name
        assert len(by_name[name]["sha256"]) == 64, by_name[name]
    assert all(len(p["sha256"]) == 64 for p in lock["package"])
    # Built again in a second store (packages from the mirror again): the same identity.
    (kp.tmp / "second").mkdir()
    other = kp.__class__(kp.tmp / "second")
    proj2 = kp.tmp / "example2"
    proj2.mkdir()
    shutil.copy(source_root / "examples" / "debian.toml", proj2 / "karapace.toml")
    r2 = other("build", "--json", proj2 / "karapace.toml", timeout=900)
    assert r2.returncode == 0, r2
    assert r2.json()["env_id"] == env_id
    assert r2.json()["packages_tree"] == r.json()["packages_tree"]


def test_lifecycle(kp, rootfs):
    assert kp("build", manifest(kp, rootfs)).returncode == 0
    state = lambda: {e["name"]: (e["state"], e["running"]) for e in envs(kp)}["demo"]
    assert state() == ("built", False)

    # start keeps a sandbox until stop; commands join it.
    assert kp("start", "demo").returncode == 0
    assert state() == ("built", True)
    again = kp("start", "demo")
    assert again.returncode == 0 and "already" in again.stderr, again
    seen = kp("exec", "demo", "--", "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '")
    assert "start demo" in seen.stdout, seen
    for verb in ("freeze", "archive", "destroy"):
        r = kp(verb, "demo")
        assert r.returncode != 0 and "running" in r.stderr, (verb, r)
    assert kp("stop", "demo").returncode == 0
    assert state() == ("built", False)
    stopped = kp("stop", "demo")
    assert stopped.returncode != 0 and "not running" in stopped.stderr, stopped

    # Frozen: commands run, writes fail.
    assert kp("freeze", "demo").returncode == 0
    assert state() == ("frozen", False)
    ro = kp("exec", "--user", "root", "demo", "--", "sh", "-c", "echo x > /etc/nope")
    assert ro.returncode != 0 and "Read-only" in ro.stderr, ro
    assert kp("exec", "demo", "--", "true").returncode == 0
    assert kp("freeze", "demo").returncode != 0
    assert kp("unfreeze", "demo").returncode == 0
    w = kp("exec", "--user", "root", "demo", "--", "sh", "-c", "echo x > /etc/yes")
    assert w.returncode == 0, w

    # Archived: kept, nothing runs; gc keeps its layers.
    assert kp("archive", "demo").returncode == 0
    refused = kp("exec", "demo", "--", "true")
    assert refused.returncode != 0 and "archived" in refused.stderr, refused
    assert kp("gc").returncode == 0
    assert kp("unarchive", "demo").returncode == 0
    assert kp("exec", "demo", "--", "cat", "/etc/yes").stdout == "x\n"

    # rename, inspect.
    assert kp("rename", "demo", "renamed").returncode == 0
    info = kp("inspect", "--json", "renamed")
    assert info.returncode == 0, info
    j = info.json()
    assert j["name"] == "renamed" and j["state"] == "built" and j["running"] is False
    assert len(j["layers"]) == 1 and "lock_text" in j and j["env_id"] in j["lock_text"]
    bad = kp("rename", "renamed", "not a name")
    assert bad.returncode == 64 and "not a name" in bad.stderr, bad
    assert kp("destroy", "renamed").returncode == 0


def test_enter_is_you_at_home(kp, rootfs):
    assert kp("build", manifest(kp, rootfs)).returncode == 0
    home = kp.home
    (home / "note").write_text("mine\n")
    r = kp("enter", "demo", "--", "sh", "-c", "id -u; pwd; echo $HOME; cat note; grep -c \"^$(id -un):\" /etc/passwd",
           cwd=home)
    assert r.returncode == 0, r
    lines = r.stdout.split()
    assert lines[0] == str(os.getuid())
    assert lines[1] == str(home) and lines[2] == str(home)
    assert lines[3] == "mine" and lines[4] == "1"
    root = kp("enter", "--user", "root", "demo", "--", "id", "-u")
    assert root.returncode == 0 and root.stdout.strip() == "0", root


def test_exec_starts_where_you_are_when_it_is_visible(kp, rootfs):
    """exec and enter start in your working directory as the environment shows it: the
    same path under your home, the mount's target under a [mounts] directory; else exec
    starts at / and enter in your home."""
    path = manifest(kp, rootfs, '[mounts]\nworkspace = "./:/workspace"\n')
    assert kp("build", path).returncode == 0
    sub = path.parent / "src" / "lib"
    sub.mkdir(parents=True)
    r = kp("exec", "demo", "--", "pwd", cwd=sub)
    assert r.returncode == 0 and r.stdout == "/workspace/src/lib\n", r
    r = kp("exec", "demo", "--", "pwd", cwd=path.parent)
    assert r.returncode == 0 and r.stdout == "/workspace\n", r
    (kp.home / "work").mkdir()
    r = kp("exec", "demo", "--", "pwd", cwd=kp.home / "work")
    assert r.returncode == 0 and r.stdout == f"{kp.home}/work\n", r
    r = kp("exec", "demo", "--", "pwd", cwd="/")
    assert r.returncode == 0 and r.stdout == "/\n", r
    r = kp("enter", "demo", "--", "pwd", cwd="/")
    assert r.returncode == 0 and r.stdout == f"{kp.home}\n", r
    r = kp("enter", "demo", "--", "pwd", cwd=sub)
    assert r.returncode == 0 and r.stdout == "/workspace/src/lib\n", r


@pytest.mark.slow
def test_locked_offline_verify_rebuild(kp, source_root):
    if not _mirror_reachable():
        pytest.skip("the Debian mirror is not reachable")
    proj = kp.tmp / "example"
    proj.mkdir()
    shutil.copy(source_root / "examples" / "debian.toml", proj / "karapace.toml")
    manifest_path = proj / "karapace.toml"
    first = kp("build", "--json", manifest_path, timeout=900)
    assert first.returncode == 0, first
    env_id = first.json()["env_id"]

    # verify: rebuilt from its lock, the same tree.
    v = kp("verify", "--json", "example", timeout=900)
    assert v.returncode == 0, v
    assert v.json()["reproducible"] is True and v.json()["differences"] == []

    # --locked and --offline rebuild exactly the lock (offline: the sandbox has no network,
    # the packages come from the store's cache).
    for flags in (["--locked"], ["--offline"]):
        assert kp("destroy", "example").returncode == 0
        r = kp("build", "--json", *flags, manifest_path, timeout=900)
        assert r.returncode == 0, (flags, r)
        assert r.json()["env_id"] == env_id
    assert kp("exec", "example", "--", "git", "--version").returncode == 0

    # An edited lock is refused, and the difference is shown.
    lock_path = proj / "karapace.lock"
    original = lock_path.read_text()
    git_version = [b for b in original.split("[[package]]") if 'name = "git"\n' in b][0]
    version = git_version.split('version = "')[1].split('"')[0]
    lock_path.write_text(original.replace(f'version = "{version}"', 'version = "1:0.0-1"', 1))
    bad = kp("build", "--locked", manifest_path, timeout=300)
    assert bad.returncode != 0, bad
    assert "1:0.0-1" in bad.stderr and version in bad.stderr, bad.stderr
    lock_path.write_text(original)

    # A changed layer is found by verify, with the path.
    store = kp.tmp / "data" / "karapace"
    layer = first.json()["packages_tree"]
    target = store / "layers" / layer / "tree" / "usr" / "share" / "doc" / "git" / "copyright"
    t = kp("unshare", "--", "sh", "-c", f"echo changed >> {target}")
    assert t.returncode == 0, t
    evil = store / "layers" / layer / "tree" / "usr" / "bin" / "karapace-test-added"
    t = kp("unshare", "--", "sh", "-c", f"echo x > {evil}")
    assert t.returncode == 0, t
    changed = kp("verify", "--json", "example", timeout=900)
    assert changed.returncode == 1, changed
    damage = changed.json()["damaged_layer"]
    assert damage["layer"] == layer and damage["digest_now"] != layer, damage
    assert damage["repaired"] is False
    assert sorted(damage["changes"]) == ["- usr/bin/karapace-test-added",
                                         "~ usr/share/doc/git/copyright"], damage
    # The rebuild itself reproduces the lock; the stored copy is what changed.
    assert changed.json()["reproducible"] is True, changed.json()
    text = kp("verify", "example", timeout=900)
    assert text.returncode == 1 and "damaged: layer " + layer[:12] in text.stdout, text
    assert "~ usr/share/doc/git/copyright" in text.stdout, text
    assert "karapace verify --repair example" in text.stdout, text
    # --repair puts the rebuilt tree in its place; then all is well again.
    fixed = kp("verify", "--repair", "--json", "example", timeout=900)
    assert fixed.returncode == 0, fixed
    assert fixed.json()["damaged_layer"]["repaired"] is True, fixed.json()
    again = kp("verify", "--json", "example", timeout=900)
    assert again.returncode == 0 and "damaged_layer" not in again.json(), again
    assert kp("verify-store", "--json").json()["problems"] == []
    assert kp("exec", "example", "--", "test", "!", "-e", "/usr/bin/karapace-test-added").returncode == 0

    # rebuild: built anew before the old one goes; the same identity here.
    rb = kp("rebuild", "--json", manifest_path, timeout=900)
    assert rb.returncode == 0, rb
    assert [e["name"] for e in envs(kp)] == ["example"]
