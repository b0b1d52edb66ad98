"""An independent model of docs/identity.md and docs/lockfile.md, written from the docs
and not from the C code, so the tests can check env_id against a second implementation."""
import json
import subprocess

# The identity options, in the documented order (docs/identity.md).
IDENTITY_KEYS = [
    "base.image", "system.packages", "gui.apps", "hardware.gpu", "hardware.audio",
    "hardware.nvidia", "hardware.devices", "mounts", "runtime.backend", "runtime.network",
    "runtime.resource_limits.cpu_shares", "runtime.resource_limits.memory_limit_mb",
    "runtime.resource_limits.pids_max", "host.home", "host.custom_mounts", "host.rootfs",
    "host.display", "host.sound", "host.dbus", "host.ssh_agent", "env.pass", "env.set",
]

DEFAULTS = {
    "system.packages": [], "gui.apps": [], "hardware.gpu": False, "hardware.audio": False,
    "hardware.nvidia": False, "hardware.devices": [], "mounts": {}, "runtime.backend": "namespace",
    "runtime.network": "host", "runtime.resource_limits.cpu_shares": 0,
    "runtime.resource_limits.memory_limit_mb": 0, "runtime.resource_limits.pids_max": 0,
    "host.home": True, "host.custom_mounts": [], "host.rootfs": False, "host.display": True,
    "host.sound": True, "host.dbus": True, "host.ssh_agent": False, "env.pass": [], "env.set": {},
}


def canonical(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def b3sum(data: bytes) -> str:
    out = subprocess.run(["b3sum", "--no-names"], input=data, capture_output=True, check=True)
    return out.stdout.decode().strip()


def settings_for(image, **overrides):
    s = dict(DEFAULTS)
    s["base.image"] = image
    for k, v in overrides.items():
        s[k] = v
    for k, v in s.items():
        if isinstance(v, list):
            s[k] = sorted(set(v))
    return s


def identity_text(settings, base, packages):
    lines = ["karapace-env-id v1"]
    for key in IDENTITY_KEYS:
        lines.append(f"{key} {canonical(settings[key])}")
        if key == "base.image":
            lines.append(f"base.reference {canonical(base['reference'])}")
            lines.append(f"base.digest {canonical(base['digest'])}")
            lines.append(f"base.tree_digest {canonical(base['tree_digest'])}")
            for p in sorted(packages, key=lambda p: (p["name"], p["arch"], p["version"])):
                lines.append("package " + canonical([p["name"], p["version"], p["arch"], p["sha256"]]))
    return "".join(l + "\n" for l in lines)


def env_id(settings, base, packages):
    return b3sum(identity_text(settings, base, packages).encode())


def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(x)}" for k, x in sorted(v.items())) + " }"
    raise TypeError(v)


def lock_text(settings, base, packages, env_id_value):
    out = ["lock_version = 1", f'env_id = "{env_id_value}"', "", "[base]"]
    for k in ("reference", "digest", "tree_digest"):
        out.append(f"{k} = {toml_value(base[k])}")
    for p in packages:
        out += ["", "[[package]]"] + [f"{k} = {toml_value(p[k])}" for k in ("name", "version", "arch", "sha256")]
    out += ["", "[settings]"]
    for key in IDENTITY_KEYS:
        out.append(f"{key} = {toml_value(settings[key])}")
    return "\n".join(out) + "\n"
