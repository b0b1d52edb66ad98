"""The store through the CLI: gc, verify-store and migrate — output, --json, exit codes —
against stores written by hand the way docs/store.md describes them, so that the format
itself is checked, not only the code that writes it."""
import fcntl
import json
import os
import subprocess
import time

import pytest

from conftest import KARAPACE


def digest(kp, path):
    r = kp("digest", path)
    assert r.returncode == 0, r
    return r.stdout.split()[0]


def add_object(kp, store, data: bytes):
    src = kp.tmp / "blob"
    src.write_bytes(data)
    oid = digest(kp, src)
    fan = store / "objects" / oid[:2]
    fan.mkdir(mode=0o700, exist_ok=True)
    (fan / oid[2:]).write_bytes(data)
    return oid


def canonical(doc):
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def add_env(kp, store, seed, name=None, state="built", objects=()):
    (kp.tmp / "seed").write_text(seed)
    env_id = digest(kp, kp.tmp / "seed")
    doc = {"format": 1, "env_id": env_id, "name": name, "state": state, "created": 1,
           "updated": 1, "layers": [], "objects": list(objects), "lock": None, "extra": {}}
    (kp.tmp / "canon").write_text(canonical(doc))
    doc["checksum"] = digest(kp, kp.tmp / "canon")
    d = store / "envs" / env_id
    d.mkdir(mode=0o700)
    (d / "env.json").write_text(json.dumps(doc, indent=2))
    return env_id


@pytest.fixture
def store(kp):
    path = kp.tmp / "store"
    r = kp("--store", path, "verify-store")
    assert r.returncode == 0, r
    return path


def test_new_store_layout_and_default_location(kp):
    r = kp("verify-store", "--json")
    assert r.returncode == 0, r
    default = kp.tmp / "data" / "karapace"
    assert r.json()["store"] == str(default)
    assert (default / "version").read_text() == "1\n"
    for d in ["objects", "layers", "envs", "images", "cache", "tmp", "journal"]:
        assert (default / d).is_dir()
        assert (default / d).stat().st_mode & 0o777 == 0o700
    assert default.stat().st_mode & 0o777 == 0o700
    # KARAPACE_STORE overrides the default.
    other = kp.tmp / "other"
    r = kp("verify-store", "--json", env={"KARAPACE_STORE": str(other)})
    assert r.returncode == 0 and r.json()["store"] == str(other)


def test_verify_store_reports_corruption(kp, store):
    oid = add_object(kp, store, b"precious bytes\n")
    env_id = add_env(kp, store, "one", name="web", objects=[oid])
    r = kp("--store", store, "verify-store", "--json")
    assert r.returncode == 0, r
    rep = r.json()
    assert rep["ok"] and rep["objects"] == 1 and rep["envs"] == 1 and rep["problems"] == []

    obj = store / "objects" / oid[:2] / oid[2:]
    obj.write_bytes(b"precious bytez\n")
    r = kp("--store", store, "verify-store")
    assert r.returncode == 3, r
    assert f"object {oid}" in r.stdout and "corrupt" in r.stdout
    assert "1 problems" in r.stdout
    assert "hint:" in r.stderr

    obj.unlink()
    rec = store / "envs" / env_id / "env.json"
    rec.write_text(rec.read_text().replace('"built"', '"frozen"'))
    r = kp("--store", store, "verify-store", "--json")
    assert r.returncode == 3, r
    problems = r.json()["problems"]
    assert any(p["kind"] == "env" and "checksum" in p["message"] for p in problems), problems


def test_verify_store_reports_dangling_reference(kp, store):
    missing = "ab" * 32
    add_env(kp, store, "two", objects=[missing])
    r = kp("--store", store, "verify-store", "--json")
    assert r.returncode == 3
    assert any(missing in p["message"] for p in r.json()["problems"])


def test_gc_dry_run_and_sweep(kp, store):
    live = add_object(kp, store, b"live")
    archived = add_object(kp, store, b"archived")
    running = add_object(kp, store, b"running")
    dead = add_object(kp, store, b"dead bytes")
    add_env(kp, store, "a", name="a", state="built", objects=[live])
    add_env(kp, store, "b", name="b", state="archived", objects=[archived])
    add_env(kp, store, "c", name="c", state="running", objects=[running])

    r = kp("--store", store, "gc", "--dry-run", "--json")
    assert r.returncode == 0, r
    rep = r.json()
    assert rep["dry_run"] and rep["freed_objects"] == 1 and rep["freed_object_bytes"] == 10
    assert rep["freed"] == [{"kind": "object", "id": dead, "bytes": 10}]
    assert (store / "objects" / dead[:2] / dead[2:]).exists()

    r = kp("--store", store, "gc")
    assert r.returncode == 0, r
    assert "freed 1 objects (10 B)" in r.stdout and "3 environments" in r.stdout
    assert not (store / "objects" / dead[:2] / dead[2:]).exists()
    for oid in (live, archived, running):
        assert (store / "objects" / oid[:2] / oid[2:]).exists()
    assert kp("--store", store, "verify-store").returncode == 0


def test_gc_refuses_to_guess_with_a_corrupt_record(kp, store):
    dead = add_object(kp, store, b"maybe referenced")
    env_id = add_env(kp, store, "x", objects=[dead])
    rec = store / "envs" / env_id / "env.json"
    rec.write_text(rec.read_text().replace("built", "bui1t"))
    r = kp("--store", store, "gc")
    assert r.returncode == 3, r
    assert "nothing was deleted" in r.stderr and "hint:" in r.stderr
    assert (store / "objects" / dead[:2] / dead[2:]).exists()


def test_unfinished_mutation_is_rolled_back(kp, store):
    half = store / "envs" / ("cd" * 32)
    half.mkdir()
    (half / "partial").write_text("x")
    entry = {"format": 1, "seq": 3, "operation": "create environment", "pid": 1, "created": 1,
             "rollback": [{"op": "remove", "path": "envs/" + "cd" * 32}]}
    (kp.tmp / "canon").write_text(canonical(entry))
    entry["checksum"] = digest(kp, kp.tmp / "canon")
    (store / "journal" / "0000000000000003.json").write_text(json.dumps(entry))
    (store / "tmp" / "file-1-leftover").write_text("half written")
    r = kp("--store", store, "verify-store", "--json")
    assert r.returncode == 0, r
    assert r.json()["recovered"] == {"rolled_back": 1, "quarantined": 0, "tmp_removed": 1}
    assert not half.exists()
    assert list((store / "journal").iterdir()) == []
    assert list((store / "tmp").iterdir()) == []


def test_corrupt_journal_entry_is_quarantined(kp, store):
    keep = store / "envs" / ("ef" * 32)
    keep.mkdir()
    (store / "journal" / "0000000000000004.json").write_text('{"format":1,"rollback":[')
    r = kp("--store", store, "verify-store")
    assert r.returncode == 3, r
    assert "quarantine" in r.stderr and "quarantine" in r.stdout
    assert keep.exists()  # its steps were not run
    assert len(list((store / "journal" / "quarantine").iterdir())) == 1


def test_migrate(kp, store):
    r = kp("--store", store, "migrate", "--json")
    assert r.returncode == 0, r
    assert r.json() == {"store": str(store), "from": 1, "version": 1, "action": "up to date"}
    new = kp.tmp / "fresh"
    r = kp("--store", new, "migrate")
    assert r.returncode == 0 and "created" in r.stdout
    (store / "version").write_text("9\n")
    r = kp("--store", store, "migrate")
    assert r.returncode == 3 and "newer" in r.stderr
    r = kp("--store", store, "gc")
    assert r.returncode == 3
    assert "format version 9" in r.stderr and "karapace migrate" in r.stderr


def test_not_a_store(kp):
    d = kp.tmp / "notastore"
    d.mkdir()
    (d / "thesis.tex").write_text("precious")
    r = kp("--store", d, "gc", "--json")
    assert r.returncode == 3
    err = json.loads(r.stderr)["error"]
    assert "not a karapace store" in err["message"] and err["status"] == 3 and err["hint"]
    assert (d / "thesis.tex").read_text() == "precious"


def test_waiting_for_the_lock_says_who_holds_it(kp, store):
    with open(store / "lock", "r+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.truncate(0)
        f.write(f"pid {os.getpid()}\nkarapace test-holder\n")
        f.flush()
        env = dict(kp.env)
        proc = subprocess.Popen([KARAPACE, "--store", str(store), "gc"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.0)
        assert proc.poll() is None, "gc did not wait for the lock"
        fcntl.flock(f, fcntl.LOCK_UN)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert f"waiting for the store lock held by pid {os.getpid()} (karapace test-holder)" in err
    assert err.count("waiting") == 1


def test_help_texts(kp):
    for cmd in ("gc", "verify-store", "migrate"):
        r = kp(cmd, "--help")
        assert r.returncode == 0 and f"karapace {cmd}" in r.stdout
    assert kp("gc", "extra").returncode == 64


def test_gc_interrupted_leaves_a_consistent_store(kp, store):
    # Many unreferenced objects, written directly in the layout under their digests (one
    # `karapace digest` call names them all), so that gc is still deleting when SIGINT
    # arrives. Interrupted or not, the store must verify clean and a second gc finish.
    blobs = kp.tmp / "blobs"
    blobs.mkdir()
    for i in range(3000):
        (blobs / f"{i:05d}").write_bytes(f"garbage {i}\n".encode())
    r = kp("digest", *sorted(blobs.iterdir()))
    assert r.returncode == 0, r
    for line in r.stdout.splitlines():
        oid, path = line.split("  ", 1)
        fan = store / "objects" / oid[:2]
        fan.mkdir(mode=0o700, exist_ok=True)
        os.rename(path, fan / oid[2:])
    keep = add_object(kp, store, b"kept")
    add_env(kp, store, "keeper", name="keeper", objects=[keep])

    proc = subprocess.Popen([KARAPACE, "--store", str(store), "gc", "--json"], env=kp.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.05)
    proc.send_signal(2)  # SIGINT
    out, err = proc.communicate(timeout=120)
    assert proc.returncode in (0, 130), err
    if proc.returncode == 130:
        assert json.loads(out)["interrupted"] is True
        assert "interrupted" in err and "consistent" in err
    r = kp("--store", store, "verify-store", "--json")
    assert r.returncode == 0, r
    r = kp("--store", store, "gc", "--json")
    assert r.returncode == 0 and not r.json()["interrupted"]
    left = [p for p in (store / "objects").rglob("*") if p.is_file()]
    assert [p.parent.name + p.name for p in left] == [keep]


TORTURE = os.environ.get("KARAPACE_STORE_TORTURE")
needs_torture = pytest.mark.skipif(not TORTURE, reason="KARAPACE_STORE_TORTURE is not set (meson test sets it)")


@needs_torture
def test_crash_safety_rootless(tmp_path):
    """200 SIGKILLs at random moments of puts, record updates and gc, as the user."""
    r = subprocess.run([TORTURE, "crash", "200", str(tmp_path / "store")], capture_output=True,
                       text=True, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr


@needs_torture
def test_concurrency_rootless(tmp_path):
    r = subprocess.run([TORTURE, "concurrency", "8", "10", str(tmp_path / "store")],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr


@needs_torture
def test_full_disk_rootless(tmp_path):
    """A tiny tmpfs mounted in a user and mount namespace: no root needed."""
    r = subprocess.run([TORTURE, "full-disk", str(tmp_path)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "hit ENOSPC" in r.stdout + r.stderr
