/* options.c — the option schema table and lookups. See options.h. */
#include "options.h"

#include "base/buf.h"

#include <stdlib.h>
#include <string.h>

static const char *const backend_choices[] = { "namespace", "oci", NULL };
static const char *const network_choices[] = { "host", "none", "user", NULL };

#define ORIG KP_OPTF_ORIGINAL
#define REQ KP_OPTF_REQUIRED
#define ID KP_OPTF_IDENTITY

static const kp_option option_table[KP_OPT__COUNT] = {
  [KP_OPT_MANIFEST_VERSION] = { KP_OPT_MANIFEST_VERSION, "manifest_version", KP_OPT_INT, "1", NULL, 1, 1, ORIG | REQ,
    "Version of the manifest format; 1 is the only one.", "1" },
  [KP_OPT_NAME] = { KP_OPT_NAME, "name", KP_OPT_STRING, "\"\"", NULL, 0, 0, 0,
    "Default name of the environment built from this manifest ([a-zA-Z0-9_-], 1 to 64 "
    "characters); `build --name` overrides it.",
    "\"myproject\"" },
  [KP_OPT_BASE_IMAGE] = { KP_OPT_BASE_IMAGE, "base.image", KP_OPT_STRING, NULL, NULL, 0, 0, ORIG | REQ | ID,
    "Base image: an alias (debian/bookworm, ubuntu/24.04, fedora/41, arch, ...), "
    "docker://REGISTRY/REPO:TAG, lxc://SERVER/DISTRO/RELEASE, file://PATH.tar, a directory, "
    "or an http(s):// tarball URL.",
    "\"debian/bookworm\"" },
  [KP_OPT_SYSTEM_PACKAGES] = { KP_OPT_SYSTEM_PACKAGES, "system.packages", KP_OPT_STRING_LIST, "[]", NULL, 0, 0, ORIG | ID,
    "Packages installed with the base's package manager; `name` or `name=version`.",
    "[\"git\", \"curl\"]" },
  [KP_OPT_GUI_APPS] = { KP_OPT_GUI_APPS, "gui.apps", KP_OPT_STRING_LIST, "[]", NULL, 0, 0, ORIG | ID,
    "Graphical applications exported to the host as .desktop entries.", "[\"firefox\"]" },
  [KP_OPT_HARDWARE_GPU] = { KP_OPT_HARDWARE_GPU, "hardware.gpu", KP_OPT_BOOL, "false", NULL, 0, 0, ORIG | ID,
    "Give the environment the GPU: /dev/dri (and /dev/nvidia* when present).", "false" },
  [KP_OPT_HARDWARE_AUDIO] = { KP_OPT_HARDWARE_AUDIO, "hardware.audio", KP_OPT_BOOL, "false", NULL, 0, 0, ORIG | ID,
    "Give the environment the sound devices: /dev/snd.", "false" },
  [KP_OPT_HARDWARE_NVIDIA] = { KP_OPT_HARDWARE_NVIDIA, "hardware.nvidia", KP_OPT_BOOL, "false", NULL, 0, 0, ID,
    "Inject the host's NVIDIA user-space driver libraries (needs gpu = true).", "false" },
  [KP_OPT_HARDWARE_DEVICES] = { KP_OPT_HARDWARE_DEVICES, "hardware.devices", KP_OPT_STRING_LIST, "[]", NULL, 0, 0, ID,
    "Extra host devices to pass through, each checked against the device policy.",
    "[\"/dev/kvm\"]" },
  [KP_OPT_MOUNTS] = { KP_OPT_MOUNTS, "mounts", KP_OPT_STRING_MAP, "{}", NULL, 0, 0, ORIG | ID,
    "Bind mounts: label = \"HOST:CONTAINER[:ro]\". HOST may be relative to the manifest, "
    "start with ~, or be absolute under an allowed prefix (/home, /tmp by default).",
    "{ workspace = \"./:/workspace\" }" },
  [KP_OPT_RUNTIME_BACKEND] = { KP_OPT_RUNTIME_BACKEND, "runtime.backend", KP_OPT_ENUM, "\"namespace\"", backend_choices, 0,
    0, ORIG | ID, "How the environment runs: our own namespace runtime, or a rootless OCI runtime.",
    "\"namespace\"" },
  [KP_OPT_RUNTIME_NETWORK_ISOLATION] = { KP_OPT_RUNTIME_NETWORK_ISOLATION, "runtime.network_isolation", KP_OPT_BOOL, "false", NULL, 0,
    0, ORIG, "Cut the network (loopback only); the same as network = \"none\".", "false" },
  [KP_OPT_RUNTIME_NETWORK] = { KP_OPT_RUNTIME_NETWORK, "runtime.network", KP_OPT_ENUM, "\"host\"", network_choices, 0, 0,
    ID,
    "Network mode: the host's network, none (loopback only), or user-mode networking "
    "(pasta or slirp4netns).",
    "\"host\"" },
  [KP_OPT_LIMITS_CPU_SHARES] = { KP_OPT_LIMITS_CPU_SHARES, "runtime.resource_limits.cpu_shares", KP_OPT_INT, "0", NULL, 0,
    262144, ORIG | ID,
    "Relative CPU weight (cgroup cpu shares; 1024 is the usual default). 0 = no limit.",
    "1024" },
  [KP_OPT_LIMITS_MEMORY_LIMIT_MB] = { KP_OPT_LIMITS_MEMORY_LIMIT_MB, "runtime.resource_limits.memory_limit_mb", KP_OPT_INT, "0",
    NULL, 0, INT64_C (1) << 40, ORIG | ID,
    "Memory limit in MiB; processes above it are killed. 0 = no limit.", "4096" },
  [KP_OPT_LIMITS_PIDS_MAX] = { KP_OPT_LIMITS_PIDS_MAX, "runtime.resource_limits.pids_max", KP_OPT_INT, "0", NULL, 0,
    4194304, ID, "Maximum number of processes and threads. 0 = no limit.", "4096" },
  [KP_OPT_HOST_HOME] = { KP_OPT_HOST_HOME, "host.home", KP_OPT_BOOL, "true", NULL, 0, 0, ID,
    "Mount your home directory; false gives the environment a private home.", "true" },
  [KP_OPT_HOST_CUSTOM_MOUNTS] = { KP_OPT_HOST_CUSTOM_MOUNTS, "host.custom_mounts", KP_OPT_STRING_LIST, "[]", NULL, 0, 0, ID,
    "Host directories mounted at the same path (checked against the mount policy).",
    "[\"~/src\"]" },
  [KP_OPT_HOST_ROOTFS] = { KP_OPT_HOST_ROOTFS, "host.rootfs", KP_OPT_BOOL, "false", NULL, 0, 0, ID,
    "Mount the host's root filesystem read-only at /run/host.", "false" },
  [KP_OPT_HOST_DISPLAY] = { KP_OPT_HOST_DISPLAY, "host.display", KP_OPT_BOOL, "true", NULL, 0, 0, ID,
    "Share the Wayland and X11 sockets (and Xauthority).", "true" },
  [KP_OPT_HOST_SOUND] = { KP_OPT_HOST_SOUND, "host.sound", KP_OPT_BOOL, "true", NULL, 0, 0, ID,
    "Share the PipeWire and PulseAudio sockets.", "true" },
  [KP_OPT_HOST_DBUS] = { KP_OPT_HOST_DBUS, "host.dbus", KP_OPT_BOOL, "true", NULL, 0, 0, ID,
    "Share the D-Bus session bus.", "true" },
  [KP_OPT_HOST_SSH_AGENT] = { KP_OPT_HOST_SSH_AGENT, "host.ssh_agent", KP_OPT_BOOL, "false", NULL, 0, 0, ID,
    "Share the SSH agent; SSH_AUTH_SOCK stays on the deny-list unless this is true.", "false" },
  [KP_OPT_ENV_PASS] = { KP_OPT_ENV_PASS, "env.pass", KP_OPT_STRING_LIST, "[]", NULL, 0, 0, ID,
    "Host variables passed through, in addition to TERM LANG HOME USER PATH SHELL "
    "XDG_RUNTIME_DIR; the deny-list still wins.",
    "[\"EDITOR\"]" },
  [KP_OPT_ENV_SET] = { KP_OPT_ENV_SET, "env.set", KP_OPT_STRING_MAP, "{}", NULL, 0, 0, ID,
    "Environment variables set inside the environment.", "{ EDITOR = \"vim\" }" },
};

static const char *const table_names[] = {
  "base", "system", "gui", "hardware", "mounts", "runtime", "runtime.resource_limits",
  "host", "env", NULL,
};

const kp_option *
kp_option_get (kp_option_id id)
{
  if ((unsigned) id >= KP_OPT__COUNT)
    return NULL;
  return &option_table[id];
}

const kp_option *
kp_option_find (const char *key)
{
  for (size_t i = 0; i < KP_OPT__COUNT; i++)
    if (strcmp (option_table[i].key, key) == 0)
      return &option_table[i];
  return NULL;
}

bool
kp_option_is_table (const char *table)
{
  for (size_t i = 0; table_names[i]; i++)
    if (strcmp (table_names[i], table) == 0)
      return true;
  return false;
}

const char *const *
kp_option_tables (void)
{
  return table_names;
}

/* Names valid directly inside `table`: option leaf names and subtables, each once, in
 * table order. */
static char **
names_in_table (const char *table)
{
  size_t tl = strlen (table), n = 0;
  char **names = xcalloc (KP_OPT__COUNT + 1, sizeof (char *));
  for (size_t i = 0; i < KP_OPT__COUNT; i++)
    {
      const char *key = option_table[i].key;
      const char *rest;
      if (tl == 0)
        rest = key;
      else if (strncmp (key, table, tl) == 0 && key[tl] == '.')
        rest = key + tl + 1;
      else
        continue;
      const char *dot = strchr (rest, '.');
      char *name = dot ? xstrndup (rest, (size_t) (dot - rest)) : xstrdup (rest);
      if (kp_strv_contains (names, name))
        free (name);
      else
        names[n++] = name;
    }
  return names;
}

char *
kp_option_suggest (const char *table, const char *name)
{
  kp_cleanup_strv char **names = names_in_table (table);
  const char *best = NULL;
  size_t best_distance = (size_t) -1;
  for (size_t i = 0; names[i]; i++)
    {
      size_t d = kp_levenshtein (name, names[i]);
      if (d < best_distance)
        {
          best_distance = d;
          best = names[i];
        }
    }
  /* A plausible typo: at most a third of the characters differ, and always 1 (2 from four
   * characters on) may. */
  size_t len = strlen (name);
  size_t limit = len / 3;
  if (limit < 1)
    limit = 1;
  if (len >= 4 && limit < 2)
    limit = 2;
  return best && best_distance <= limit ? xstrdup (best) : NULL;
}

char *
kp_option_list_names (const char *table)
{
  kp_cleanup_strv char **names = names_in_table (table);
  kp_cleanup_buf kp_buf buf = KP_BUF_INIT;
  for (size_t i = 0; names[i]; i++)
    kp_buf_printf (&buf, "%s%s", i ? ", " : "", names[i]);
  return kp_buf_steal (&buf);
}

const char *
kp_option_type_name (kp_option_type type)
{
  switch (type)
    {
    case KP_OPT_BOOL:
      return "boolean";
    case KP_OPT_INT:
      return "integer";
    case KP_OPT_STRING:
      return "string";
    case KP_OPT_ENUM:
      return "string";
    case KP_OPT_STRING_LIST:
      return "array of strings";
    case KP_OPT_STRING_MAP:
      return "table of strings";
    }
  return "value";
}
