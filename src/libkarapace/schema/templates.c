/* templates.c — manifests for `karapace new`. Keep them short, commented and valid: the
 * tests load every template through the manifest loader and the policy. */
#include "templates.h"

#include "base/buf.h"

#include <string.h>

#define HEADER                                                                                \
  "# karapace.toml for @NAME@. Reference: docs/manifest.md; check with `karapace validate`.\n" \
  "manifest_version = 1\n"                                                                    \
  "name = \"@NAME@\"\n\n"

#define HOST_DEFAULTS                                                                         \
  "\n# How much of your desktop the environment sees (the trust dial).\n"                     \
  "[host]\n"                                                                                  \
  "home = true           # your home directory, at the same path\n"                           \
  "display = true        # Wayland and X11\n"                                                 \
  "sound = true          # PipeWire and PulseAudio\n"                                         \
  "dbus = true           # the session bus\n"                                                 \
  "ssh_agent = false     # SSH_AUTH_SOCK stays hidden unless true\n"

static const kp_template templates[] = {
  { "minimal", "a bare Debian base, nothing shared with the host but the project",
    HEADER
    "[base]\n"
    "image = \"debian/bookworm\"\n\n"
    "[mounts]\n"
    "workspace = \"./:/workspace\"   # this directory, at /workspace\n\n"
    "[runtime]\n"
    "network = \"none\"              # loopback only\n\n"
    "[host]\n"
    "home = false                  # a private home inside the environment\n"
    "display = false\n"
    "sound = false\n"
    "dbus = false\n" },
  { "debian", "Debian 12 with git and curl: the quickstart",
    HEADER
    "[base]\n"
    "image = \"debian/bookworm\"     # built from the signed Debian mirror\n\n"
    "[system]\n"
    "packages = [\"git\", \"curl\", \"ca-certificates\"]\n\n"
    "[mounts]\n"
    "workspace = \"./:/workspace\"\n" },
  { "dev", "a C/C++ toolchain on Debian 12",
    HEADER
    "[base]\n"
    "image = \"debian/bookworm\"\n\n"
    "[system]\n"
    "packages = [\n"
    "  \"build-essential\", \"cmake\", \"ninja-build\", \"meson\", \"pkg-config\",\n"
    "  \"gdb\", \"git\", \"curl\", \"ca-certificates\",\n"
    "]\n\n"
    "[mounts]\n"
    "workspace = \"./:/workspace\"\n\n"
    "[runtime.resource_limits]\n"
    "memory_limit_mb = 8192\n"
    "pids_max = 4096\n"
    HOST_DEFAULTS
    "\n[env]\n"
    "set = { CC = \"gcc\", CXX = \"g++\" }\n"
    "pass = [\"EDITOR\"]\n" },
  { "gui-dev", "graphical development with GPU, sound and apps exported to the host",
    HEADER
    "[base]\n"
    "image = \"debian/bookworm\"\n\n"
    "[system]\n"
    "packages = [\"build-essential\", \"git\", \"qtcreator\", \"qt6-base-dev\"]\n\n"
    "[gui]\n"
    "apps = [\"qtcreator\"]          # appears in your desktop's menu\n\n"
    "[hardware]\n"
    "gpu = true                    # /dev/dri\n"
    "audio = true                  # /dev/snd\n\n"
    "[mounts]\n"
    "workspace = \"./:/workspace\"\n"
    HOST_DEFAULTS },
  { "rust-dev", "Rust from Debian's packages, with cargo and rust-analyzer's needs",
    HEADER
    "[base]\n"
    "image = \"debian/bookworm\"\n\n"
    "[system]\n"
    "packages = [\"cargo\", \"rustc\", \"rust-src\", \"build-essential\", \"pkg-config\", "
    "\"libssl-dev\", \"git\"]\n\n"
    "[mounts]\n"
    "workspace = \"./:/workspace\"\n\n"
    "[runtime.resource_limits]\n"
    "memory_limit_mb = 8192\n"
    HOST_DEFAULTS
    "\n[env]\n"
    "set = { CARGO_HOME = \"/workspace/.cargo\" }\n" },
  { "ubuntu-dev", "a development toolchain on Ubuntu 24.04 LTS",
    HEADER
    "[base]\n"
    "image = \"ubuntu/24.04\"\n\n"
    "[system]\n"
    "packages = [\"build-essential\", \"git\", \"curl\", \"ca-certificates\", \"gdb\"]\n\n"
    "[mounts]\n"
    "workspace = \"./:/workspace\"\n"
    HOST_DEFAULTS },
  { NULL, NULL, NULL },
};

const kp_template *
kp_templates (void)
{
  return templates;
}

const kp_template *
kp_template_find (const char *name)
{
  for (const kp_template *t = templates; t->name; t++)
    if (strcmp (t->name, name) == 0)
      return t;
  return NULL;
}

char *
kp_template_render (const kp_template *t, const char *env_name)
{
  kp_cleanup_buf kp_buf out = KP_BUF_INIT;
  const char *p = t->body;
  const char *hit;
  while ((hit = strstr (p, "@NAME@")))
    {
      kp_buf_append (&out, p, (size_t) (hit - p));
      kp_buf_puts (&out, env_name);
      p = hit + strlen ("@NAME@");
    }
  kp_buf_puts (&out, p);
  return kp_buf_steal (&out);
}

char *
kp_template_names (void)
{
  kp_cleanup_buf kp_buf out = KP_BUF_INIT;
  for (const kp_template *t = templates; t->name; t++)
    kp_buf_printf (&out, "%s%s", t == templates ? "" : ", ", t->name);
  return kp_buf_steal (&out);
}
