"""The command-line surface: help, version, exit codes, new, validate output, schema docs,
completions and colour rules."""
import json
import os
import re
import subprocess

import pytest

COMMANDS = ["new", "validate", "digest", "doctor", "gc", "verify-store", "migrate", "unshare",
            "completions", "version"]
TEMPLATES = ["minimal", "debian", "dev", "gui-dev", "rust-dev", "ubuntu-dev"]


def test_no_command_prints_usage(kp):
    r = kp()
    assert r.returncode == 64
    assert "Usage: karapace" in r.stderr
    for c in COMMANDS:
        assert f"  {c} " in r.stderr


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(kp, command):
    r = kp(command, "--help")
    assert r.returncode == 0, r
    assert r.stdout.startswith(f"Usage: karapace {command}")
    assert "--json" in r.stdout and "--store" in r.stdout
    assert kp("help", command).stdout == r.stdout


def test_unknown_command_suggests(kp):
    r = kp("valdiate")
    assert r.returncode == 64
    assert "unknown command 'valdiate'; did you mean 'validate'?" in r.stderr


def test_unknown_option(kp):
    r = kp("validate", "--frobnicate")
    assert r.returncode == 64
    assert "frobnicate" in r.stderr and "karapace validate --help" in r.stderr


def test_version(kp, source_root):
    r = kp("version", "--json")
    assert r.returncode == 0
    v = r.json()
    meson = (source_root / "meson.build").read_text() if (source_root / "meson.build").exists() else None
    assert re.fullmatch(r"\d+\.\d+\.\d+", v["version"])
    assert v["manifest_version"] == 1 and v["lock_version"] == 1
    assert v["identity"] == "karapace-env-id v1"
    assert kp("--version").stdout.strip() == f"karapace {v['version']}"


@pytest.mark.parametrize("template", TEMPLATES)
def test_new_writes_valid_manifest(kp, template):
    r = kp("new", "demo-1", "--template", template, cwd=kp.tmp)
    assert r.returncode == 0, r
    manifest = kp.tmp / "karapace.toml"
    text = manifest.read_text()
    assert 'name = "demo-1"' in text
    v = kp("validate", "--json", manifest)
    assert v.returncode == 0, v
    assert v.json()["normalized"]["name"] == "demo-1"


@pytest.mark.parametrize("template", TEMPLATES)
def test_examples_are_the_templates(kp, source_root, template):
    example = source_root / "examples" / f"{template}.toml"
    r = kp("new", "example", "--template", template, "-o", "-")
    assert r.returncode == 0
    assert example.read_text() == r.stdout, f"examples/{template}.toml differs from the template"


def test_new_refuses_to_overwrite(kp):
    kp.write("karapace.toml", "# mine\n")
    r = kp("new", "demo", "--template", "minimal")
    assert r.returncode == 1, r
    assert "File exists" in r.stderr and "--force" in r.stderr
    assert (kp.tmp / "karapace.toml").read_text() == "# mine\n"
    assert kp("new", "demo", "--template", "minimal", "--force").returncode == 0
    assert "manifest_version = 1" in (kp.tmp / "karapace.toml").read_text()
    assert not [p for p in kp.tmp.iterdir() if ".tmp-" in p.name]


def test_new_without_template_and_without_terminal(kp):
    r = kp("new", "demo", input="")
    assert r.returncode == 64
    assert "choose a template with --template" in r.stderr
    for t in TEMPLATES:
        assert t in r.stderr
    assert not (kp.tmp / "karapace.toml").exists()


def test_new_asks_on_a_terminal(kp):
    # A real pseudo-terminal: `script` gives the command one.
    cmd = f"{os.environ['KARAPACE_BIN']} new asked"
    r = subprocess.run(["script", "-qec", cmd, "/dev/null"], cwd=kp.tmp, env=kp.env, input="3\n",
                       capture_output=True, text=True, timeout=30)
    assert "Which template?" in r.stdout, r.stdout
    assert 'name = "asked"' in (kp.tmp / "karapace.toml").read_text()
    assert "build-essential" in (kp.tmp / "karapace.toml").read_text()  # 3) dev


def test_new_rejects_bad_names_and_templates(kp):
    assert kp("new", "bad name", "--template", "minimal").returncode == 64
    r = kp("new", "ok", "--template", "nope")
    assert r.returncode == 64 and "unknown template 'nope'" in r.stderr


def test_new_list(kp):
    r = kp("new", "--list", "--json")
    assert [t["name"] for t in r.json()] == TEMPLATES


def test_validate_prints_normal_form(kp):
    path = kp.write("karapace.toml", """manifest_version = 1
[base]
image = "debian/bookworm"
[system]
packages = ["vim", "git", "curl", "git"]
[mounts]
src = "./src/../src/:/workspace/src:ro"
[runtime]
network_isolation = true
""")
    r = kp("validate", "--json", path)
    assert r.returncode == 0, r
    n = r.json()["normalized"]
    assert n["system"]["packages"] == ["curl", "git", "vim"]
    assert n["mounts"] == {"src": "./src:/workspace/src:ro"}
    assert n["runtime"]["network"] == "none" and n["runtime"]["network_isolation"] is True
    assert n["host"]["home"] is True and n["runtime"]["backend"] == "namespace"
    text = kp("validate", path)
    assert text.returncode == 0
    assert 'packages = ["curl", "git", "vim"]' in text.stdout
    assert text.stderr.strip() == f"{path}: valid"
    # The normal form is itself a valid manifest with the same normal form.
    again = kp.write("again/karapace.toml", text.stdout)
    r2 = kp("validate", "--json", again)
    assert r2.returncode == 0, r2
    assert r2.json()["normalized"] == n
    assert kp("validate", "--quiet", path).stdout == ""


def test_validate_default_path(kp):
    kp.write("karapace.toml", 'manifest_version = 1\n[base]\nimage = "alpine/3.20"\n')
    r = kp("validate", "--json")
    assert r.returncode == 0, r
    assert r.json()["manifest"] == "karapace.toml"


def test_original_manifest_parses_unchanged(kp):
    """Every key of the original tool's manifest, as its documentation writes them."""
    path = kp.write("karapace.toml", """manifest_version = 1

[base]
image = "rolling"

[system]
packages = ["git", "clang", "cmake"]

[gui]
apps = ["kate"]

[hardware]
gpu = true
audio = true

[mounts]
workspace = "./:/workspace"

[runtime]
backend = "namespace"
network_isolation = false

[runtime.resource_limits]
cpu_shares = 1024
memory_limit_mb = 4096
""")
    r = kp("validate", "--json", path)
    assert r.returncode == 0, r
    n = r.json()["normalized"]
    assert n["hardware"] == {"gpu": True, "audio": True, "nvidia": False, "devices": []}
    assert n["runtime"]["resource_limits"] == {"cpu_shares": 1024, "memory_limit_mb": 4096, "pids_max": 0}


def test_schema_docs_are_generated(kp, source_root):
    md = kp("validate", "--schema").stdout
    doc = (source_root / "docs" / "manifest.md").read_text()
    assert md.strip() in doc, "docs/manifest.md is out of date: paste `karapace validate --schema`"
    schema = kp("validate", "--schema", "--json").json()
    keys = [o["key"] for o in schema]
    assert "hardware.gpu" in keys and len(keys) == len(set(keys))
    for o in schema:
        assert o["help"] and o["example"]


def test_completions(kp):
    for shell in ("bash", "zsh", "fish"):
        r = kp("completions", shell)
        assert r.returncode == 0
        for c in COMMANDS:
            assert c in r.stdout
    bash = kp("completions", "bash").stdout
    check = subprocess.run(["bash", "-n"], input=bash, text=True, capture_output=True)
    assert check.returncode == 0, check.stderr
    assert kp("completions", "tcsh").returncode == 64


def test_color_rules(kp):
    path = kp.write("karapace.toml", "manifest_version = 1\n[base]\nimage = \"\"\n")
    plain = kp("validate", path)
    assert "\033[" not in plain.stderr
    forced = kp("validate", "--color", "always", path)
    assert "\033[" in forced.stderr
    env = {"NO_COLOR": "1"}
    assert "\033[" not in kp("validate", "--color", "auto", path, env=env).stderr


def test_global_options_before_the_command(kp):
    r = kp("--json", "version")
    assert r.returncode == 0 and r.json()["version"]
    r = kp("--quiet", "new", "q", "--template", "minimal")
    assert r.returncode == 0 and r.stderr == ""


def test_store_option_and_variable(kp):
    store = kp.tmp / "elsewhere"
    r = kp("doctor", "--quick", "--json", "--store", store)
    check = {c["id"]: c for c in r.json()["checks"]}["store"]
    assert str(store) in check["detail"]
    r = kp("doctor", "--quick", "--json", env={"KARAPACE_STORE": str(store / "env")})
    check = {c["id"]: c for c in r.json()["checks"]}["store"]
    assert str(store / "env") in check["detail"]
