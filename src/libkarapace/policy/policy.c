/* policy.c — built-in policy, configuration file, and the manifest checks. */
#include "policy.h"

#include "base/fs.h"

#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const default_mount_prefixes[] = { "/home", "/tmp", NULL };
static const char *const default_devices[] = {
  "/dev/kvm",       "/dev/fuse",      "/dev/net/tun",  "/dev/dri",    "/dev/dri/*",
  "/dev/snd",       "/dev/snd/*",     "/dev/video[0-9]*", "/dev/ttyUSB[0-9]*",
  "/dev/ttyACM[0-9]*", "/dev/hidraw[0-9]*", "/dev/bus/usb", "/dev/bus/usb/*", NULL,
};
static const char *const default_env_allow[] = {
  "TERM", "LANG", "HOME", "USER", "PATH", "SHELL", "XDG_RUNTIME_DIR", NULL,
};
static const char *const default_env_deny[] = {
  "SSH_AUTH_SOCK",   "GPG_AGENT_INFO", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
  "DOCKER_HOST",     "GITHUB_TOKEN",   "GH_TOKEN",              "GITLAB_TOKEN",
  "NPM_TOKEN",       "VAULT_TOKEN",    "AZURE_CLIENT_SECRET",   "GOOGLE_APPLICATION_CREDENTIALS",
  "KRB5CCNAME",      NULL,
};

#define DEFAULT_MAX_CPU_SHARES 10240
#define DEFAULT_MAX_MEMORY_MB 65536
#define DEFAULT_MAX_PIDS 32768

kp_policy *
kp_policy_new_default (void)
{
  kp_policy *p = xcalloc (1, sizeof *p);
  p->mount_prefixes = kp_strv_dup ((char *const *) default_mount_prefixes);
  p->device_patterns = kp_strv_dup ((char *const *) default_devices);
  p->env_allow = kp_strv_dup ((char *const *) default_env_allow);
  p->env_deny = kp_strv_dup ((char *const *) default_env_deny);
  p->max_cpu_shares = DEFAULT_MAX_CPU_SHARES;
  p->max_memory_limit_mb = DEFAULT_MAX_MEMORY_MB;
  p->max_pids = DEFAULT_MAX_PIDS;
  return p;
}

void
kp_policy_free (kp_policy *p)
{
  if (p == NULL)
    return;
  kp_strv_free (p->mount_prefixes);
  kp_strv_free (p->device_patterns);
  kp_strv_free (p->env_allow);
  kp_strv_free (p->env_deny);
  free (p->source);
  free (p);
}

void
kp_policy_freep (kp_policy **p)
{
  kp_policy_free (*p);
  *p = NULL;
}

char *
kp_policy_default_config_path (void)
{
  const char *env = getenv ("KARAPACE_CONFIG");
  if (env && env[0])
    return xstrdup (env);
  kp_cleanup_free char *config = kp_xdg_config_home ();
  return kp_path_join (config, "karapace/config.toml");
}

/* ---- configuration file -------------------------------------------------------------- */

/* Tables of config.toml that later parts of karapace read; accepted and ignored here. */
static const char *const other_config_tables[] = { "images", "registries", "mirrors", NULL };

static char **
read_string_list (const char *path, const kp_toml_keyval *kv, bool absolute_paths,
                  kp_error **err)
{
  const kp_toml_value *v = kv->value;
  if (v->type != KP_TOML_ARRAY)
    {
      kp_error_at (err, path, v->pos.line, v->pos.column, "policy.%s must be an array of strings",
                   kv->key);
      return NULL;
    }
  kp_cleanup_strv char **out = xcalloc (v->u.array.len + 1, sizeof (char *));
  for (size_t i = 0; i < v->u.array.len; i++)
    {
      const kp_toml_value *item = v->u.array.items[i];
      if (item->type != KP_TOML_STRING || memchr (item->u.string.ptr, 0, item->u.string.len))
        {
          kp_error_at (err, path, item->pos.line, item->pos.column,
                       "every element of policy.%s must be a string", kv->key);
          return NULL;
        }
      if (absolute_paths && item->u.string.ptr[0] != '/')
        {
          kp_error_at (err, path, item->pos.line, item->pos.column,
                       "policy.%s: \"%s\" must be an absolute path", kv->key,
                       item->u.string.ptr);
          return NULL;
        }
      out[i] = absolute_paths ? kp_path_normalize (item->u.string.ptr)
                              : xstrdup (item->u.string.ptr);
    }
  return kp_steal_pointer (&out);
}

static int
read_ceiling (const char *path, const kp_toml_keyval *kv, int64_t *out, kp_error **err)
{
  const kp_toml_value *v = kv->value;
  if (v->type != KP_TOML_INTEGER || v->u.integer < 0)
    return kp_error_at (err, path, v->pos.line, v->pos.column,
                        "policy.%s must be a non-negative integer", kv->key);
  *out = v->u.integer;
  return 0;
}

static void
strv_extend (char ***v, char **extra)
{
  size_t n = kp_strv_length (*v), k = kp_strv_length (extra);
  *v = xreallocarray (*v, n + k + 1, sizeof (char *));
  for (size_t i = 0; i < k; i++)
    if (!kp_strv_contains (*v, extra[i]))
      (*v)[n++] = xstrdup (extra[i]);
  (*v)[n] = NULL;
}

static int
apply_policy_table (kp_policy *p, const char *path, const kp_toml_value *table, kp_error **err)
{
  static const char *const keys[] = { "allowed_mount_prefixes", "allowed_devices",
                                      "max_cpu_shares",         "max_memory_limit_mb",
                                      "max_pids",               "env_allow",
                                      "env_deny",               NULL };
  for (size_t i = 0; i < table->u.table.len; i++)
    {
      const kp_toml_keyval *kv = &table->u.table.items[i];
      const char *k = kv->key;
      kp_cleanup_strv char **list = NULL;
      if (strcmp (k, "allowed_mount_prefixes") == 0 || strcmp (k, "allowed_devices") == 0)
        {
          if ((list = read_string_list (path, kv, true, err)) == NULL)
            return -1;
          char ***target = k[8] == 'm' ? &p->mount_prefixes : &p->device_patterns;
          kp_strv_free (*target);
          *target = kp_steal_pointer (&list);
        }
      else if (strcmp (k, "env_allow") == 0 || strcmp (k, "env_deny") == 0)
        {
          /* Both only add: the built-in deny-list cannot be emptied by a file. */
          if ((list = read_string_list (path, kv, false, err)) == NULL)
            return -1;
          strv_extend (k[4] == 'a' ? &p->env_allow : &p->env_deny, list);
        }
      else if (strcmp (k, "max_cpu_shares") == 0)
        {
          if (read_ceiling (path, kv, &p->max_cpu_shares, err) < 0)
            return -1;
        }
      else if (strcmp (k, "max_memory_limit_mb") == 0)
        {
          if (read_ceiling (path, kv, &p->max_memory_limit_mb, err) < 0)
            return -1;
        }
      else if (strcmp (k, "max_pids") == 0)
        {
          if (read_ceiling (path, kv, &p->max_pids, err) < 0)
            return -1;
        }
      else
        {
          kp_error_at (err, path, kv->key_pos.line, kv->key_pos.column,
                       "unknown key \"%s\" in [policy]", k);
          const char *best = NULL;
          size_t best_d = 4;
          for (size_t j = 0; keys[j]; j++)
            {
              size_t d = kp_levenshtein (k, keys[j]);
              if (d < best_d)
                best_d = d, best = keys[j];
            }
          if (best)
            kp_error_hint (err, "did you mean \"%s\"?", best);
          else
            kp_error_hint (err, "valid keys: allowed_mount_prefixes, allowed_devices, "
                                "max_cpu_shares, max_memory_limit_mb, max_pids, env_allow, "
                                "env_deny");
          return -1;
        }
    }
  return 0;
}

kp_policy *
kp_policy_load (const char *path, kp_error **err)
{
  kp_cleanup_free char *config = path ? xstrdup (path) : kp_policy_default_config_path ();
  kp_cleanup_policy kp_policy *p = kp_policy_new_default ();
  if (path == NULL && access (config, F_OK) != 0)
    return kp_steal_pointer (&p);
  kp_cleanup_toml kp_toml_value *root = kp_toml_parse_file (config, err);
  if (root == NULL)
    return NULL;
  for (size_t i = 0; i < root->u.table.len; i++)
    {
      const kp_toml_keyval *kv = &root->u.table.items[i];
      if (strcmp (kv->key, "policy") == 0 && kv->value->type == KP_TOML_TABLE)
        {
          if (apply_policy_table (p, config, kv->value, err) < 0)
            return NULL;
          continue;
        }
      if (kv->value->type == KP_TOML_TABLE
          && kp_strv_contains ((char *const *) other_config_tables, kv->key))
        continue;
      kp_error_at (err, config, kv->key_pos.line, kv->key_pos.column,
                   "unknown %s \"%s\" in the configuration file",
                   kv->value->type == KP_TOML_TABLE ? "table" : "key", kv->key);
      kp_error_hint (err, "the configuration file has the tables [policy], [images], "
                          "[registries] and [mirrors]; see docs/security.md");
      return NULL;
    }
  p->source = kp_steal_pointer (&config);
  return kp_steal_pointer (&p);
}

/* ---- checks -------------------------------------------------------------------------- */

char *
kp_policy_resolve_host_path (const kp_manifest *m, const char *host)
{
  if (host[0] == '~')
    {
      kp_cleanup_free char *joined = kp_path_join (kp_home_dir (), host[1] ? host + 2 : ".");
      return kp_path_normalize (joined);
    }
  kp_cleanup_free char *joined = kp_path_join (m->dir, host);
  return kp_path_normalize (joined);
}

bool
kp_policy_mount_allowed (const kp_policy *p, const kp_manifest *m, const char *abs_path)
{
  /* The manifest's own directory tree is the project: always allowed ("./" mounts). */
  if (m && kp_path_is_under (abs_path, m->dir))
    return true;
  /* Your own home is yours to mount (host.home mounts it whole by default). */
  kp_cleanup_free char *home = kp_path_normalize (kp_home_dir ());
  if (strcmp (home, "/") != 0 && kp_path_is_under (abs_path, home))
    return true;
  for (size_t i = 0; p->mount_prefixes[i]; i++)
    if (kp_path_is_under (abs_path, p->mount_prefixes[i]))
      return true;
  return false;
}

bool
kp_policy_device_allowed (const kp_policy *p, const char *device)
{
  for (size_t i = 0; p->device_patterns[i]; i++)
    if (fnmatch (p->device_patterns[i], device, FNM_PATHNAME) == 0)
      return true;
  return false;
}

bool
kp_policy_env_denied (const kp_policy *p, const char *name, bool ssh_agent)
{
  if (ssh_agent && strcmp (name, "SSH_AUTH_SOCK") == 0)
    return false;
  return kp_strv_contains (p->env_deny, name);
}

static const char *
policy_origin (const kp_policy *p)
{
  return p->source ? p->source : "the built-in policy";
}

static int
check_mount_path (const kp_policy *p, const kp_manifest *m, const char *what, const char *host,
                  kp_toml_pos pos, kp_error **err)
{
  kp_cleanup_free char *abs = kp_policy_resolve_host_path (m, host);
  if (kp_policy_mount_allowed (p, m, abs))
    return 0;
  kp_cleanup_buf kp_buf prefixes = KP_BUF_INIT;
  for (size_t i = 0; p->mount_prefixes[i]; i++)
    kp_buf_printf (&prefixes, "%s%s", i ? ", " : "", p->mount_prefixes[i]);
  kp_error_at (err, m->path, pos.line, pos.column,
               "%s: host path \"%s\" (%s) is outside the mount allow-list", what, host, abs);
  kp_error_hint (err, "allowed: the manifest's directory, your home, and %s (from %s); add a "
                      "prefix to allowed_mount_prefixes in [policy] of %s to allow more",
                 kp_buf_str (&prefixes), policy_origin (p),
                 p->source ? p->source : "~/.config/karapace/config.toml");
  return -1;
}

static int
check_ceiling (const kp_policy *p, const kp_manifest *m, kp_option_id id, int64_t ceiling,
               const char *policy_key, kp_error **err)
{
  const kp_setting *s = kp_manifest_setting (m, id);
  if (s->integer <= ceiling)
    return 0;
  kp_error_at (err, m->path, s->pos.line, s->pos.column,
               "%s = %lld exceeds the policy ceiling of %lld", kp_option_get (id)->key,
               (long long) s->integer, (long long) ceiling);
  kp_error_hint (err, "lower the value, or raise %s in [policy] of %s", policy_key,
                 p->source ? p->source : "~/.config/karapace/config.toml");
  return -1;
}

int
kp_policy_check_manifest (const kp_policy *p, const kp_manifest *m, kp_error **err)
{
  const kp_setting *mounts = kp_manifest_setting (m, KP_OPT_MOUNTS);
  for (size_t i = 0; i < mounts->map_len; i++)
    {
      kp_mount_spec spec;
      if (kp_mount_spec_parse (mounts->map[i].key, mounts->map[i].value, &spec, err) < 0)
        return -1;
      kp_cleanup_free char *what = xasprintf ("mount \"%s\"", spec.label);
      int r = check_mount_path (p, m, what, spec.host, mounts->map[i].value_pos, err);
      kp_mount_spec_clear (&spec);
      if (r < 0)
        return -1;
    }
  const kp_setting *custom = kp_manifest_setting (m, KP_OPT_HOST_CUSTOM_MOUNTS);
  for (size_t i = 0; i < custom->list_len; i++)
    if (check_mount_path (p, m, "custom mount", custom->list[i].value, custom->list[i].pos, err)
        < 0)
      return -1;

  const kp_setting *devices = kp_manifest_setting (m, KP_OPT_HARDWARE_DEVICES);
  for (size_t i = 0; i < devices->list_len; i++)
    if (!kp_policy_device_allowed (p, devices->list[i].value))
      {
        kp_error_at (err, m->path, devices->list[i].pos.line, devices->list[i].pos.column,
                     "device \"%s\" is not allowed by the device policy",
                     devices->list[i].value);
        kp_error_hint (err, "use hardware.gpu or hardware.audio for /dev/dri and /dev/snd; "
                            "other devices must match allowed_devices in [policy] (%s)",
                       policy_origin (p));
        return -1;
      }

  if (check_ceiling (p, m, KP_OPT_LIMITS_CPU_SHARES, p->max_cpu_shares, "max_cpu_shares", err)
          < 0
      || check_ceiling (p, m, KP_OPT_LIMITS_MEMORY_LIMIT_MB, p->max_memory_limit_mb,
                        "max_memory_limit_mb", err)
             < 0
      || check_ceiling (p, m, KP_OPT_LIMITS_PIDS_MAX, p->max_pids, "max_pids", err) < 0)
    return -1;

  bool ssh_agent = kp_manifest_bool (m, KP_OPT_HOST_SSH_AGENT);
  const kp_setting *set = kp_manifest_setting (m, KP_OPT_ENV_SET);
  for (size_t i = 0; i < set->map_len; i++)
    if (kp_policy_env_denied (p, set->map[i].key, false))
      {
        kp_error_at (err, m->path, set->map[i].key_pos.line, set->map[i].key_pos.column,
                     "env.set: %s is on the deny-list and cannot be set", set->map[i].key);
        kp_error_hint (err, "denied variables carry host secrets; remove it from [env.set]");
        return -1;
      }
  const kp_setting *pass = kp_manifest_setting (m, KP_OPT_ENV_PASS);
  for (size_t i = 0; i < pass->list_len; i++)
    if (kp_policy_env_denied (p, pass->list[i].value, ssh_agent))
      {
        kp_error_at (err, m->path, pass->list[i].pos.line, pass->list[i].pos.column,
                     "env.pass: %s is on the deny-list and is never passed through",
                     pass->list[i].value);
        if (strcmp (pass->list[i].value, "SSH_AUTH_SOCK") == 0)
          kp_error_hint (err, "set ssh_agent = true in [host] to share the SSH agent");
        else
          kp_error_hint (err, "remove it from env.pass; the deny-list always wins");
        return -1;
      }
  return 0;
}
