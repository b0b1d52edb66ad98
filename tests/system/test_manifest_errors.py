"""Bad manifests: each gives exit status 2, a message with file:line:column, a source
excerpt with a caret, and a hint saying what to do. The manifest is left untouched."""
import pytest

HEAD = 'manifest_version = 1\n[base]\nimage = "debian/bookworm"\n'

# (id, manifest text, line, column, message fragment, hint fragment)
CASES = [
    ("unknown-key-typo", HEAD + "[hardware]\ngpuu = true\n", 5, 1,
     'unknown key "gpuu" in [hardware]', 'did you mean "gpu"'),
    ("unknown-table-typo", HEAD + "[hardwre]\ngpu = true\n", 4, 2,
     'unknown table "hardwre"', 'did you mean "hardware"'),
    ("unknown-top-level-key", 'manifest_versoin = 1\n[base]\nimage = "x"\n', 1, 1,
     'unknown key "manifest_versoin"', 'did you mean "manifest_version"'),
    ("unknown-limit-key", HEAD + "[runtime.resource_limits]\nmemory_limit = 10\n", 5, 1,
     'unknown key "memory_limit" in [runtime.resource_limits]', 'did you mean "memory_limit_mb"'),
    ("bool-as-string", HEAD + '[hardware]\ngpu = "yes"\n', 5, 7,
     "hardware.gpu must be a boolean (true or false), found a string", "gpu = false"),
    ("int-as-float", HEAD + "[runtime.resource_limits]\nmemory_limit_mb = 4.5\n", 5, 19,
     "memory_limit_mb must be an integer, found a float", "memory_limit_mb = 4096"),
    ("table-as-value", 'manifest_version = 1\nhardware = 1\n[base]\nimage = "x"\n', 2, 12,
     '"hardware" must be a table ([hardware]), found an integer', "[hardware]"),
    ("missing-version", '[base]\nimage = "debian/bookworm"\n', 1, 1,
     "manifest_version is missing", "manifest_version = 1"),
    ("unsupported-version", 'manifest_version = 2\n[base]\nimage = "x"\n', 1, 20,
     "manifest_version 2 is not supported", "manifest_version = 1"),
    ("missing-base", "manifest_version = 1\n[system]\npackages = []\n", 1, 1,
     "base.image is missing", "add to [base]"),
    ("missing-image", "manifest_version = 1\n[base]\n", 2, 2,
     "base.image is missing", 'image = "debian/bookworm"'),
    ("empty-image", 'manifest_version = 1\n[base]\nimage = ""\n', 3, 9,
     "base.image is empty", "debian/bookworm"),
    ("image-with-space", 'manifest_version = 1\n[base]\nimage = "debian bookworm"\n', 3, 9,
     "must not contain spaces", "debian/bookworm"),
    ("packages-not-array", HEAD + '[system]\npackages = "git"\n', 5, 12,
     "system.packages must be an array of strings, found a string", 'packages = ["git", "curl"]'),
    ("package-not-string", HEAD + '[system]\npackages = ["git", 3]\n', 5, 20,
     "every element of system.packages must be a string, found an integer", "packages ="),
    ("package-shell-syntax", HEAD + '[system]\npackages = ["git", "vim; rm -rf /"]\n', 5, 20,
     '"vim; rm -rf /" is not a valid package name', "name=version"),
    ("package-empty", HEAD + '[system]\npackages = [""]\n', 5, 13,
     '"" is not a valid package name', "one package per string"),
    ("mount-no-colon", HEAD + '[mounts]\nwork = "/workspace"\n', 5, 8,
     'mount "work" must be "HOST:CONTAINER"', 'work = "./:/workspace"'),
    ("mount-relative-container", HEAD + '[mounts]\nwork = "./:workspace"\n', 5, 8,
     'the container path "workspace" must be absolute', '"/workspace"'),
    ("mount-bad-option", HEAD + '[mounts]\nwork = "./:/w:rx"\n', 5, 8,
     'unknown option "rx"', ':ro'),
    ("mount-bad-label", HEAD + '[mounts]\n"my work" = "./:/w"\n', 5, 1,
     'mount label "my work" must use only letters, digits', None),
    ("mount-over-proc", HEAD + '[mounts]\np = "./:/proc/sys"\n', 5, 5,
     'cannot mount over "/proc/sys"', "/workspace"),
    ("mount-outside-allow-list", HEAD + '[mounts]\netc = "/etc:/host-etc"\n', 5, 7,
     'host path "/etc" (/etc) is outside the mount allow-list', "allowed_mount_prefixes"),
    ("mount-dotdot-escape", HEAD + '[mounts]\nup = "/home/../etc:/x"\n', 5, 6,
     "is outside the mount allow-list", "/home, /tmp"),
    ("mount-relative-escape", HEAD + '[mounts]\nup = "' + "../" * 40 + 'etc:/x"\n', 5, 6,
     "(/etc) is outside the mount allow-list", "allowed_mount_prefixes"),
    ("custom-mount-relative", HEAD + '[host]\ncustom_mounts = ["src"]\n', 5, 18,
     'custom mount "src" must be absolute or start with ~', "[mounts]"),
    ("custom-mount-outside", HEAD + '[host]\ncustom_mounts = ["/opt/tools"]\n', 5, 18,
     'custom mount: host path "/opt/tools" (/opt/tools) is outside the mount allow-list', "allowed_mount_prefixes"),
    ("backend-unknown", HEAD + '[runtime]\nbackend = "docker"\n', 5, 11,
     'runtime.backend = "docker" is not allowed', 'choose one of "namespace", "oci"'),
    ("network-unknown", HEAD + '[runtime]\nnetwork = "bridge"\n', 5, 11,
     'runtime.network = "bridge" is not allowed', '"host", "none", "user"'),
    ("network-contradiction", HEAD + '[runtime]\nnetwork_isolation = true\nnetwork = "host"\n', 6, 11,
     'runtime.network = "host" contradicts runtime.network_isolation = true (line 5)', 'network = "none"'),
    ("cpu-negative", HEAD + "[runtime.resource_limits]\ncpu_shares = -5\n", 5, 14,
     "cpu_shares = -5 is out of range (0 to 262144)", None),
    ("memory-over-ceiling", HEAD + "[runtime.resource_limits]\nmemory_limit_mb = 999999\n", 5, 19,
     "memory_limit_mb = 999999 exceeds the policy ceiling of 65536", "max_memory_limit_mb"),
    ("pids-over-ceiling", HEAD + "[runtime.resource_limits]\npids_max = 100000\n", 5, 12,
     "pids_max = 100000 exceeds the policy ceiling of 32768", "max_pids"),
    ("env-set-denied", HEAD + '[env]\nset = { SSH_AUTH_SOCK = "/tmp/agent" }\n', 5, 9,
     "env.set: SSH_AUTH_SOCK is on the deny-list", "remove it"),
    ("env-set-bad-name", HEAD + '[env.set]\n"MY-VAR" = "1"\n', 5, 1,
     '"MY-VAR" is not a valid environment variable name', "letters, digits and _"),
    ("env-pass-denied", HEAD + '[env]\npass = ["AWS_SECRET_ACCESS_KEY"]\n', 5, 9,
     "env.pass: AWS_SECRET_ACCESS_KEY is on the deny-list", "deny-list always wins"),
    ("env-pass-ssh-agent", HEAD + '[env]\npass = ["SSH_AUTH_SOCK"]\n', 5, 9,
     "env.pass: SSH_AUTH_SOCK is on the deny-list", "ssh_agent = true"),
    ("device-denied", HEAD + '[hardware]\ndevices = ["/dev/mem"]\n', 5, 12,
     'device "/dev/mem" is not allowed by the device policy', "allowed_devices"),
    ("device-not-dev", HEAD + '[hardware]\ndevices = ["/etc/passwd"]\n', 5, 12,
     'device "/etc/passwd" is not a path under /dev', '"/dev/kvm"'),
    ("nvidia-without-gpu", HEAD + "[hardware]\nnvidia = true\n", 5, 10,
     "hardware.nvidia = true needs hardware.gpu = true", "gpu = true"),
    ("bad-name", 'manifest_version = 1\nname = "my project"\n[base]\nimage = "x"\n', 2, 8,
     'name "my project" must be 1 to 64 letters', None),
    ("toml-duplicate-key", HEAD + "[hardware]\ngpu = true\ngpu = false\n", 6, 1,
     "gpu", None),
    ("toml-unterminated-string", 'manifest_version = 1\n[base]\nimage = "debian\n', 3, None,
     "", None),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_manifest(kp, case):
    name, text, line, column, message, hint = case
    path = kp.write("project/karapace.toml", text)
    r = kp("validate", path)
    assert r.returncode == 2, r
    assert r.stdout == "", r
    first = r.stderr.splitlines()[0]
    where = f"{path}:{line}:" + (f"{column}:" if column else "")
    assert first.startswith(f"karapace: error: {where}"), r
    assert message in first, r
    # The excerpt shows the line and a caret under the column.
    lines = r.stderr.splitlines()
    assert lines[1].strip().startswith(f"{line} |"), r
    if column:
        assert lines[2].index("^") - lines[2].index("|") - 2 == column - 1, r
    if hint:
        assert any(l.strip().startswith("hint:") and hint in l for l in lines), r
    assert path.read_text() == text  # nothing rewritten


def test_bad_manifest_json_error(kp):
    path = kp.write("karapace.toml", HEAD + "[hardware]\ngpuu = true\n")
    r = kp("validate", "--json", path)
    assert r.returncode == 2
    assert r.stdout == ""
    import json
    err = json.loads(r.stderr)["error"]
    assert err["file"] == str(path)
    assert (err["line"], err["column"]) == (5, 1)
    assert err["status"] == 2
    assert 'did you mean "gpu"' in err["hint"]


def test_invalid_utf8(kp):
    path = kp.tmp / "karapace.toml"
    path.write_bytes(b'manifest_version = 1\n[base]\nimage = "deb\xff"\n')
    r = kp("validate", path)
    assert r.returncode == 2, r
    assert f"{path}:3:" in r.stderr
    assert "UTF-8" in r.stderr


def test_missing_manifest(kp):
    r = kp("validate", kp.tmp / "nope.toml")
    assert r.returncode == 1, r
    assert "nope.toml" in r.stderr and "No such file" in r.stderr
    assert "karapace new" in r.stderr


def test_policy_config_error(kp):
    kp.write("config/karapace/config.toml", "[policy]\nmax_cpu_sharez = 5\n")
    path = kp.write("karapace.toml", HEAD)
    r = kp("validate", path)
    assert r.returncode == 2, r
    assert f"config.toml:2:1: unknown key \"max_cpu_sharez\" in [policy]" in r.stderr
    assert 'did you mean "max_cpu_shares"' in r.stderr


def test_policy_config_raises_ceiling(kp):
    text = HEAD + "[runtime.resource_limits]\nmemory_limit_mb = 100000\n"
    path = kp.write("karapace.toml", text)
    assert kp("validate", path).returncode == 2
    kp.write("config/karapace/config.toml", "[policy]\nmax_memory_limit_mb = 200000\n")
    r = kp("validate", path)
    assert r.returncode == 0, r


def test_policy_config_allows_mount_prefix(kp):
    text = HEAD + '[mounts]\ntools = "/opt/tools:/tools:ro"\n'
    path = kp.write("karapace.toml", text)
    assert kp("validate", path).returncode == 2
    kp.write("config/karapace/config.toml", '[policy]\nallowed_mount_prefixes = ["/home", "/opt"]\n')
    r = kp("validate", "--json", path)
    assert r.returncode == 0, r
    assert r.json()["normalized"]["mounts"] == {"tools": "/opt/tools:/tools:ro"}
