/* cmd-env.c — environments: `build`, `exec`, `list`, `destroy` (docs/build.md). */
#include "commands.h"

#include "base/fs.h"
#include "hash/blake3.h"
#include "engine/build.h"
#include "image/image-config.h"
#include "policy/policy.h"
#include "sandbox/environ.h"
#include "sandbox/runtime.h"
#include "sandbox/userns.h"
#include "schema/identity.h"
#include "schema/lock.h"
#include "schema/toml.h"
#include "schema/manifest.h"
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <sys/file.h>
#include <sys/syscall.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static kp_store *
open_env_store (kp_cli *cli, bool write, const char *purpose, kp_error **err)
{
  kp_store_open_options o = { .flags = write ? KP_STORE_WRITE : KP_STORE_READ,
                              .purpose = purpose, .on_wait = kp_cli_store_wait,
                              .user_data = cli };
  return kp_store_open_with (cli->store, &o, err);
}

/* ---- build ---- */

int
kp_cmd_build (kp_cli *cli, const kp_cli_command *cmd, int argc, char **argv)
{
  enum { OPT_NAME = 1000, OPT_OFFLINE, OPT_LOCKED };
  static const struct option options[] = {
    KP_CLI_COMMON_LONG_OPTIONS,
    { "name", required_argument, NULL, OPT_NAME },
    { "offline", no_argument, NULL, OPT_OFFLINE },
    { "locked", no_argument, NULL, OPT_LOCKED },
    { NULL, 0, NULL, 0 },
  };
  kp_build_options bo = { 0 };
  int c;
  while ((c = getopt_long (argc, argv, KP_CLI_COMMON_SHORT_OPTIONS, options, NULL)) != -1)
    {
      if (c == OPT_NAME)
        {
          if (!kp_store_is_env_name (optarg))
            return kp_cli_usage_error (cli, cmd, "--name: '%s' is not a name (letters, digits, "
                                       "'-' and '_', up to 64, not only hex digits)", optarg);
          bo.name = optarg;
          continue;
        }
      if (c == OPT_OFFLINE)
        {
          bo.offline = true;
          continue;
        }
      if (c == OPT_LOCKED)
        {
          bo.locked = true;
          continue;
        }
      int r = kp_cli_common_option (cli, cmd, c, optarg);
      if (r != KP_CLI_CONTINUE)
        return r;
    }
  if (argc - optind > 1)
    return kp_cli_usage_error (cli, cmd, "build takes one manifest");
  bo.manifest = optind < argc ? argv[optind] : "karapace.toml";
  kp_error *err = NULL;
  kp_image_config config = { 0 };
  if (kp_image_config_load (NULL, &config, &err) < 0)
    return kp_cli_fail (cli, err);
  kp_cleanup_policy kp_policy *policy = kp_policy_load (NULL, &err);
  if (policy == NULL)
    {
      kp_image_config_clear (&config);
      return kp_cli_fail (cli, err);
    }
  bo.config = &config;
  bo.policy = policy;
  bo.progress = !cli->quiet && !cli->json && isatty (STDERR_FILENO);
  kp_cleanup_store kp_store *store = open_env_store (cli, true, "karapace build", &err);
  kp_build_result res = { 0 };
  int r = store ? kp_build (store, &bo, &res, &err) : -1;
  kp_image_config_clear (&config);
  if (r < 0)
    return kp_cli_fail (cli, err);
  char short_id[KP_SHORT_ID_LEN + 1];
  kp_identity_short_id (res.env_id, short_id);
  if (cli->json)
    {
      kp_cleanup_json json_t *j = json_pack (
          "{s:s,s:s,s:s,s:b,s:I,s:s,s:s*}", "env_id", res.env_id, "short_id", short_id,
          "lock", res.lock_path, "existed", res.existed, "packages",
          (json_int_t) res.n_packages, "base_tree", res.base_tree, "packages_tree",
          res.packages_tree[0] ? res.packages_tree : NULL);
      kp_cli_print_json (cli, j);
    }
  else
    {
      printf ("%s\n", res.env_id);
      kp_cli_info (cli, "%s %s (%zu packages locked in %s)", res.existed ? "already built:" : "built",
                   short_id, res.n_packages, res.lock_path);
    }
  kp_build_result_clear (&res);
  return 0;
}

/* ---- exec ---- */

/* Where an environment's holder can be found while it runs: named by the store and the
 * environment (two stores may hold the same identity), short enough for a socket path. */
static char *
env_state_dir (kp_store *store, const char *env_id, kp_error **err)
{
  kp_cleanup_free char *key = xasprintf ("%s\n%s", kp_store_path (store), env_id);
  uint8_t d[KP_BLAKE3_OUT_LEN];
  char hex[KP_BLAKE3_HEX_LEN + 1];
  kp_blake3_hash (key, strlen (key), d);
  kp_blake3_to_hex (d, hex);
  hex[32] = '\0';
  kp_cleanup_free char *runtime = kp_runtime_state_dir (err);
  if (runtime == NULL)
    return NULL;
  kp_cleanup_free char *envs = xasprintf ("%s/envs", runtime);
  if (mkdir (envs, 0700) < 0 && errno != EEXIST)
    {
      kp_error_errno (err, errno, "create %s", envs);
      return NULL;
    }
  return xasprintf ("%s/%s", envs, hex);
}

/* Does a holder of this environment answer? */
static bool
env_running (kp_store *store, const char *env_id)
{
  kp_cleanup_error kp_error *e = NULL;
  kp_cleanup_free char *dir = env_state_dir (store, env_id, &e);
  kp_holder *h = dir ? kp_holder_connect (dir, &e) : NULL;
  kp_holder_release (h);
  return h != NULL;
}

kp_net_mode
kp_cli_manifest_network (const kp_manifest *m)
{
  if (kp_manifest_bool (m, KP_OPT_RUNTIME_NETWORK_ISOLATION)
      || kp_str_equal0 (kp_manifest_string (m, KP_OPT_RUNTIME_NETWORK), "none"))
    return KP_NET_NONE;
  if (kp_str_equal0 (kp_manifest_string (m, KP_OPT_RUNTIME_NETWORK), "user"))
    return KP_NET_USER;
  return KP_NET_HOST;
}

kp_cgroup_limits
kp_cli_manifest_limits (const kp_manifest *m)
{
  return (kp_cgroup_limits){
    .cpu_shares = (uint64_t) kp_manifest_int (m, KP_OPT_LIMITS_CPU_SHARES),
    .memory_limit_mb = (uint64_t) kp_manifest_int (m, KP_OPT_LIMITS_MEMORY_LIMIT_MB),
    .pids_max = (uint64_t) kp_manifest_int (m, KP_OPT_LIMITS_PIDS_MAX),
  };
}

void
kp_cli_binds_free (kp_bind *binds, size_t n)
{
  for (size_t i = 0; binds && i < n; i++)
    {
      free ((char *) binds[i].source);
      free ((char *) binds[i].target);
    }
  free (binds);
}

int
kp_cli_manifest_binds (const kp_policy *policy, const kp_manifest *m, kp_bind **out, size_t *n,
                       kp_error **err)
{
  const kp_setting *mounts = kp_manifest_setting (m, KP_OPT_MOUNTS);
  *out = xcalloc (mounts->map_len + 1, sizeof **out);
  *n = 0;
  for (size_t i = 0; i < mounts->map_len; i++)
    {
      kp_mount_spec spec = { 0 };
      if (kp_mount_spec_parse (mounts->map[i].key, mounts->map[i].value, &spec, err) < 0)
        return -1;
      kp_cleanup_free char *host = kp_policy_resolve_host_path (m, spec.host);
      char resolved[PATH_MAX];
      if (realpath (host, resolved) == NULL)
        {
          kp_error_errno (err, errno, "[mounts] %s: %s", spec.label, host);
          kp_error_set_status (err, KP_EXIT_RUNTIME);
          kp_mount_spec_clear (&spec);
          return -1;
        }
      if (!kp_policy_mount_allowed (policy, m, resolved))
        {
          kp_error_set (err, KP_EXIT_RUNTIME, "[mounts] %s: %s is outside the mount allow-list",
                        spec.label, resolved);
          kp_mount_spec_clear (&spec);
          return -1;
        }
      (*out)[*n] = (kp_bind){ xstrdup (resolved), xstrdup (spec.container), spec.read_only };
      (*n)++;
      kp_mount_spec_clear (&spec);
    }
  return 0;
}

/* ---- rebuild ---- */

int
kp_cmd_rebuild (kp_cli *cli, const kp_cli_command *cmd, int argc, char **argv)
{
  static const struct option options[] = { KP_CLI_COMMON_LONG_OPTIONS, { NULL, 0, NULL, 0 } };
  int c;
  while ((c = getopt_long (argc, argv, KP_CLI_COMMON_SHORT_OPTIONS, options, NULL)) != -1)
    {
      int r = kp_cli_common_option (cli, cmd, c, optarg);
      if (r != KP_CLI_CONTINUE)
        return r;
    }
  if (argc - optind > 1)
    return kp_cli_usage_error (cli, cmd, "rebuild takes one manifest");
  kp_build_options bo = { .manifest = optind < argc ? argv[optind] : "karapace.toml",
                          .fresh = true, .unnamed = true };
  kp_error *err = NULL;
  kp_image_config config = { 0 };
  if (kp_image_config_load (NULL, &config, &err) < 0)
    return kp_cli_fail (cli, err);
  kp_cleanup_policy kp_policy *policy = kp_policy_load (NULL, &err);
  kp_cleanup_store kp_store *store = policy ? open_env_store (cli, true, "karapace rebuild", &err)
                                            : NULL;
  if (store == NULL)
    {
      kp_image_config_clear (&config);
      return kp_cli_fail (cli, err);
    }
  bo.config = &config;
  bo.policy = policy;
  bo.progress = !cli->quiet && !cli->json && isatty (STDERR_FILENO);
  /* The environment the lock beside the manifest names, if any: replaced only once the new
     one is built. */
  kp_cleanup_free char *dir = kp_path_dirname (bo.manifest);
  kp_cleanup_free char *lock_path = kp_path_join (dir, "karapace.lock");
  kp_cleanup_lock kp_lock *old_lock = access (lock_path, F_OK) == 0 ? kp_lock_load (lock_path, NULL)
                                                                  : NULL;
  kp_cleanup_env_record kp_env_record *old = old_lock ? kp_store_env_read (store, old_lock->env_id,
                                                                           NULL)
                                                      : NULL;
  if (old && env_running (store, old->env_id))
    {
      kp_image_config_clear (&config);
      kp_error_set (&err, KP_EXIT_FAILURE, "environment %s is running", old->name ? old->name
                                                                               : old->env_id);
      kp_error_hint (&err, "stop it first: karapace stop %s", old->name ? old->name : old->env_id);
      return kp_cli_fail (cli, err);
    }
  kp_build_result res = { 0 };
  int r = kp_build (store, &bo, &res, &err);
  kp_image_config_clear (&config);
  if (r < 0)
    return kp_cli_fail (cli, err); /* the old environment is untouched */
  kp_cleanup_env_record kp_env_record *rec = kp_store_env_read (store, res.env_id, &err);
  if (rec == NULL)
    return kp_cli_fail (cli, err);
  kp_cleanup_manifest kp_manifest *m = kp_manifest_load (bo.manifest, &err);
  if (m == NULL)
    return kp_cli_fail (cli, err);
  const char *name = kp_manifest_string (m, KP_OPT_NAME);
  if ((name == NULL || !*name) && old)
    name = old->name;
  if (old && strcmp (old->env_id, res.env_id) != 0)
    {
      if (kp_store_env_remove (store, old->env_id, &err) < 0)
        return kp_cli_fail (cli, err);
      kp_cli_info (cli, "replaced %.12s", old->env_id);
    }
  if (name && *name && !kp_str_equal0 (rec->name, name))
    {
      free (rec->name);
      rec->name = xstrdup (name);
      if (kp_store_env_write (store, rec, &err) < 0)
        return kp_cli_fail (cli, err);
    }
  if (cli->json)
    {
      kp_cleanup_json json_t *j = json_pack ("{s:s,s:s?,s:s}", "env_id", res.env_id,
                                             "replaced", old ? old->env_id : NULL, "lock",
                                             res.lock_path);
      kp_cli_print_json (cli, j);
    }
  else
    printf ("%s\n", res.env_id);
  kp_build_result_clear (&res);
  return 0;
}

/* ---- verify ---- */

enum
{
  OPT_VERIFY_REPAIR = 0x300,
};

int
kp_cmd_verify (kp_cli *cli, const kp_cli_command *cmd, int argc, char **argv)
{
  static const struct option options[] = { KP_CLI_COMMON_LONG_OPTIONS,
                                           { "repair", no_argument, NULL, OPT_VERIFY_REPAIR },
                                           { NULL, 0, NULL, 0 } };
  bool repair = false;
  int c;
  while ((c = getopt_long (argc, argv, KP_CLI_COMMON_SHORT_OPTIONS, options, NULL)) != -1)
    {
      if (c == OPT_VERIFY_REPAIR)
        {
          repair = true;
          continue;
        }
      int r = kp_cli_common_option (cli, cmd, c, optarg);
      if (r != KP_CLI_CONTINUE)
        return r;
    }
  if (optind + 1 != argc)
    return kp_cli_usage_error (cli, cmd, "verify takes one environment");
  const char *which = argv[optind];
  kp_error *err = NULL;
  kp_cleanup_store kp_store *store = open_env_store (cli, true, "karapace verify", &err);
  kp_cleanup_env_record kp_env_record *rec = store ? kp_store_env_lookup (store, which, &err)
                                                   : NULL;
  if (rec == NULL)
    return kp_cli_fail (cli, err);
  const char *manifest = json_string_value (json_object_get (rec->extra, "manifest"));
  if (manifest == NULL || access (manifest, R_OK) < 0 || rec->lock == NULL)
    {
      kp_error_set (&err, KP_EXIT_FAILURE, "environment %s: its manifest %s is gone", which,
                    manifest ? manifest : "(unknown)");
      return kp_cli_fail (cli, err);
    }
  /* The lock it was built with, from the store, is the plan for a second build. */
  size_t len = 0;
  kp_cleanup_free char *text = kp_store_get (store, rec->lock, 16 << 20, &len, &err);
  if (text == NULL)
    return kp_cli_fail (cli, err);
  kp_cleanup_free char *runtime = kp_runtime_state_dir (&err);
  if (runtime == NULL)
    return kp_cli_fail (cli, err);
  kp_cleanup_free char *lock_file = xasprintf ("%s/verify-%.16s.lock", runtime, rec->env_id);
  if (kp_file_write_atomic (lock_file, text, len, 0600, false, &err) < 0)
    return kp_cli_fail (cli, err);
  kp_image_config config = { 0 };
  kp_cleanup_policy kp_policy *policy = NULL;
  if (kp_image_config_load (NULL, &config, &err) < 0
      || (policy = kp_policy_load (NULL, &err)) == NULL)
    {
      unlink (lock_file);
      return kp_cli_fail (cli, err);
    }
  kp_build_options bo = { .manifest = manifest, .config = &config, .policy = policy,
                          .locked = true, .fresh = true, .no_record = true,
                          .lock_file = lock_file,
                          .progress = !cli->quiet && !cli->json && isatty (STDERR_FILENO) };
  kp_build_result res = { 0 };
  /* The rebuilt packages layer has the recorded one's name when the build reproduces:
     the store then compares the two trees instead of dropping the new one (and with
     --repair puts it in the place of a recorded layer changed on disk since). */
  kp_store_layer_check (store, true, repair);
  int r = kp_build (store, &bo, &res, &err);
  unlink (lock_file);
  kp_image_config_clear (&config);
  if (r < 0)
    return kp_cli_fail (cli, err);
  const kp_layer_check_result *check = kp_store_layer_check_result (store);
  const char *had = rec->layers && rec->layers[0] && rec->layers[1] ? rec->layers[1] : "";
  bool same = strcmp (had, res.packages_tree) == 0 && strcmp (res.env_id, rec->env_id) == 0;
  /* Every recorded layer as it is on disk now (the packages layer was just compared when
     the rebuild gave its name). */
  char now[KP_BLAKE3_HEX_LEN + 1] = "";
  const char *changed = NULL;
  for (char **l = rec->layers; l && *l && changed == NULL; l++)
    {
      if (check->damaged && strcmp (*l, check->layer) == 0)
        continue;
      if (kp_store_layer_digest_now (store, *l, now, &err) < 0)
        return kp_cli_fail (cli, err);
      if (strcmp (now, *l) != 0)
        changed = *l;
    }
  size_t total = 0;
  kp_cleanup_strv char **diff = NULL;
  if (!same && had[0] && res.packages_tree[0] && changed == NULL
      && !(check->damaged && !check->repaired && strcmp (check->layer, had) == 0))
    {
      diff = kp_store_layer_diff (store, had, res.packages_tree, 50, &total, &err);
      if (diff == NULL)
        return kp_cli_fail (cli, err);
    }
  bool damaged = check->damaged && !check->repaired;
  if (cli->json)
    {
      kp_cleanup_json json_t *j = json_pack (
          "{s:s,s:b,s:s,s:s,s:o,s:I}", "env_id", rec->env_id, "reproducible", same,
          "packages_tree", had, "rebuilt_tree", res.packages_tree, "differences",
          kp_json_strv (diff ? diff : (char *[]){ NULL }), "total_differences",
          (json_int_t) total);
      if (check->damaged)
        json_object_set_new (
            j, "damaged_layer",
            json_pack ("{s:s,s:s,s:o,s:I,s:b}", "layer", check->layer, "digest_now",
                       check->digest_now, "changes",
                       kp_json_strv (check->changes ? check->changes : (char *[]){ NULL }),
                       "total_changes", (json_int_t) check->total, "repaired",
                       check->repaired));
      if (changed)
        json_object_set_new (j, "changed_layer",
                             json_pack ("{s:s,s:s}", "layer", changed, "digest_now", now));
      kp_cli_print_json (cli, j);
    }
  else
    {
      if (same)
        printf ("reproducible: %.12s rebuilt from its lock gives the same tree%s%.12s\n",
                rec->env_id, had[0] ? " " : "", had);
      else
        {
          printf ("not reproducible: %.12s rebuilt from its lock gives %.12s, not %.12s\n",
                  rec->env_id, res.packages_tree, had);
          for (char **d = diff; d && *d; d++)
            printf ("  %s\n", *d);
          if (total > 50)
            printf ("  … and %zu more\n", total - 50);
        }
      if (check->damaged)
        {
          printf ("%s: layer %.12s changed on disk since it was built (its tree digests to "
                  "%.12s now); against the rebuilt tree:\n",
                  check->repaired ? "repaired" : "damaged", check->layer, check->digest_now);
          for (char **d = check->changes; d && *d; d++)
            printf ("  %s\n", *d);
          if (check->total > 50)
            printf ("  … and %zu more\n", check->total - 50);
          if (check->repaired)
            printf ("the rebuilt tree has taken its place\n");
          else
            printf ("'karapace verify --repair %s' puts the rebuilt tree in its place\n",
                    which);
        }
      if (changed)
        printf ("damaged: layer %.12s of %.12s changed since it was built (its tree digests "
                "to %.12s now) and was not rebuilt; 'karapace verify-store' reports it\n",
                changed, rec->env_id, now);
    }
  kp_build_result_clear (&res);
  return same && !damaged && changed == NULL ? 0 : 1;
}

/* ---- the holder of an environment ---- */

typedef struct env_open
{
  bool as_root;
  bool account;   /* enter: your account entry in /etc/passwd and /etc/group */
  bool home;      /* enter: your home directory at its own path */
  bool login;     /* enter: start in your home when your working directory is not there */
} env_open;

typedef struct account_call
{
  const char *upper;      /* the environment's upper directory */
  const char *lower_etc;  /* the topmost layer's /etc */
  const char *passwd_line, *group_line, *user, *group;
} account_call;

/* upper/etc/NAME as the environment sees it (the upper layer's copy, else the layers'),
 * or NULL. */
static char *
read_etc (const account_call *c, const char *name, size_t *len)
{
  kp_cleanup_free char *up = xasprintf ("%s/etc/%s", c->upper, name);
  kp_cleanup_free char *low = xasprintf ("%s/%s", c->lower_etc, name);
  char *text = kp_file_read (up, 4 << 20, len, NULL);
  return text ? text : kp_file_read (low, 4 << 20, len, NULL);
}

static bool
has_entry (const char *text, const char *key)
{
  kp_cleanup_free char *prefix = xasprintf ("%s:", key);
  kp_cleanup_free char *nl_prefix = xasprintf ("\n%s:", key);
  return text && (kp_str_has_prefix (text, prefix) || strstr (text, nl_prefix) != NULL);
}

/* Are both entries there already? Read from the host, so that the usual case (every
 * start after the first) needs no user namespace to write them. */
static bool
account_present (const account_call *c)
{
  size_t len = 0;
  kp_cleanup_free char *passwd = read_etc (c, "passwd", &len);
  kp_cleanup_free char *group = read_etc (c, "group", &len);
  return has_entry (passwd, c->user) && has_entry (group, c->group);
}

/* Append LINE to upper/etc/NAME (copied up from the layers first) unless an entry of
 * that name is there. */
static int
add_entry (const account_call *c, const char *name, const char *key, const char *line,
           kp_error **err)
{
  kp_cleanup_free char *up = xasprintf ("%s/etc/%s", c->upper, name);
  size_t len = 0;
  kp_cleanup_free char *text = read_etc (c, name, &len);
  kp_buf b = KP_BUF_INIT;
  if (text)
    kp_buf_append (&b, text, len);
  bool found = has_entry (kp_buf_str (&b), key);
  int r = 0;
  if (!found)
    {
      if (b.len && b.data[b.len - 1] != '\n')
        kp_buf_putc (&b, '\n');
      kp_buf_printf (&b, "%s\n", line);
      kp_cleanup_free char *etc = xasprintf ("%s/etc", c->upper);
      if (mkdir (etc, 0755) < 0 && errno != EEXIST)
        r = kp_error_errno (err, errno, "create %s", etc);
      else
        r = kp_file_write_atomic (up, b.data, b.len, 0644, false, err);
    }
  kp_buf_clear (&b);
  return r;
}

static int
add_account (void *data, kp_error **err)
{
  account_call *c = data;
  if (add_entry (c, "passwd", c->user, c->passwd_line, err) < 0
      || add_entry (c, "group", c->group, c->group_line, err) < 0)
    return -1;
  return 0;
}

/* Connect to the environment's holder, or start it: over its layers and its own upper
 * layer, with the manifest's mounts and network. Closes *store (a holder inherits its
 * parent's descriptors and must not keep the store's lock). */
static kp_holder *
env_holder (kp_store **store, const kp_env_record *rec, const kp_policy *policy,
            const kp_manifest *m, const kp_bind *binds, size_t n_binds, const env_open *how,
            kp_error **err)
{
  kp_holder *h = NULL;
  kp_cleanup_strv char **layers = NULL;
  kp_cleanup_free char *upper = NULL, *work = NULL, *state_dir = NULL, *lock_path = NULL;
  kp_cleanup_close int lock_fd = -1;
  kp_cleanup_error kp_error *connect_err = NULL;
  size_t n_layers = 0;
  while (rec->layers && rec->layers[n_layers])
    n_layers++;
  if (n_layers == 0)
    {
      kp_error_set (err, KP_EXIT_STORE, "environment %.12s has no layers", rec->env_id);
      goto out;
    }
  /* Topmost first. */
  layers = xcalloc (n_layers + 1, sizeof (char *));
  for (size_t i = 0; i < n_layers; i++)
    layers[i] = xasprintf ("%s/layers/%s/tree", kp_store_path (*store),
                           rec->layers[n_layers - 1 - i]);
  upper = xasprintf ("%s/envs/%s/upper", kp_store_path (*store), rec->env_id);
  work = xasprintf ("%s/envs/%s/work", kp_store_path (*store), rec->env_id);
  state_dir = env_state_dir (*store, rec->env_id, err);
  if (state_dir == NULL)
    goto out;
  lock_path = xasprintf ("%s.lock", state_dir);
  lock_fd = open (lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd < 0 || flock (lock_fd, LOCK_EX) < 0)
    {
      kp_error_errno (err, errno, "lock %s", lock_path);
      goto out;
    }
  h = kp_holder_connect (state_dir, &connect_err);
  kp_store_close (kp_steal_pointer (store));
  if (h == NULL)
    {
      if (how->account)
        {
          /* Your account inside, so that tools find your name and home. Written while no
             holder has the upper layer mounted. */
          struct passwd *pw = getpwuid (getuid ());
          struct group *gr = getgrgid (getgid ());
          kp_cleanup_free char *user = xstrdup (pw ? pw->pw_name : "user");
          kp_cleanup_free char *group = xstrdup (gr ? gr->gr_name : user);
          kp_cleanup_free char *shell = NULL;
          static const char *const shells[] = { "usr/bin/bash", "bin/bash", NULL };
          for (size_t i = 0; shells[i] && shell == NULL; i++)
            for (size_t l = 0; l < n_layers && shell == NULL; l++)
              {
                kp_cleanup_free char *p = xasprintf ("%s/%s", layers[l], shells[i]);
                struct stat st;
                if (lstat (p, &st) == 0)
                  shell = xasprintf ("/%s", shells[i]);
              }
          kp_cleanup_free char *pl = xasprintf ("%s:x:%u:%u::%s:%s", user, (unsigned) getuid (),
                                                (unsigned) getgid (), kp_home_dir (),
                                                shell ? shell : "/bin/sh");
          kp_cleanup_free char *gl = xasprintf ("%s:x:%u:", group, (unsigned) getgid ());
          kp_cleanup_free char *lower_etc = xasprintf ("%s/etc", layers[0]);
          account_call ac = { upper, lower_etc, pl, gl, user, group };
          if (!account_present (&ac) && kp_userns_run (add_account, &ac, err) < 0)
            {
              kp_error_prefix (err, "add your account to the environment");
              goto out;
            }
        }
      kp_net_mode net = m ? kp_cli_manifest_network (m) : KP_NET_HOST;
      /* [runtime.resource_limits], within the policy's ceilings: the holder's cgroup,
         which every session of it joins. */
      kp_cgroup_limits limits = { 0 };
      if (m)
        {
          if (kp_policy_check_manifest (policy, m, err) < 0)
            goto out;
          limits = kp_cli_manifest_limits (m);
        }
      char short_id[KP_SHORT_ID_LEN + 1];
      kp_identity_short_id (rec->env_id, short_id);
      kp_sandbox_spec spec = { .layers = (const char *const *) layers,
                               .upper = upper,
                               .work = work,
                               .state_dir = state_dir,
                               .binds = binds,
                               .n_binds = n_binds,
                               .hostname = rec->name ? rec->name : short_id,
                               .network = net,
                               .name = rec->name ? rec->name : short_id,
                               .seccomp = KP_SECCOMP_DEFAULT,
                               .readonly_root = rec->state == KP_ENV_FROZEN,
                               .limits = limits,
                               .single_id_as_root = how->as_root };
      h = kp_holder_start (&spec, err);
    }
  if (h != NULL)
    flock (lock_fd, LOCK_UN);
out:
  return h;
}

/* Open the store, find ENV, load its manifest (when it is still there) and the policy. */
static int
env_find (kp_cli *cli, bool write, const char *which, kp_store **store, kp_env_record **rec,
          kp_manifest **m, kp_policy **policy, kp_error **err)
{
  *store = open_env_store (cli, write, write ? "karapace" : NULL, err);
  if (*store == NULL)
    return -1;
  *rec = kp_store_env_lookup (*store, which, err);
  if (*rec == NULL)
    return -1;
  if (policy && (*policy = kp_policy_load (NULL, err)) == NULL)
    return -1;
  if (m == NULL)
    return 0;
  /* The settings the environment was built with, from its lock in the store: they are
     part of its identity, so an edited manifest (a new identity, built anew) or a missing
     one never changes how this environment runs. Relative [mounts] are resolved beside
     the manifest it was built from. */
  const char *manifest = json_string_value (json_object_get ((*rec)->extra, "manifest"));
  const char *settings = json_string_value (json_object_get ((*rec)->extra, "settings"));
  const char *where = manifest ? manifest : "karapace.lock";
  if (settings)
    {
      /* Written by the build beside the lock's id: a few lines to parse, not the whole
         lock with its packages. */
      kp_cleanup_toml kp_toml_value *root = kp_toml_parse (settings, strlen (settings),
                                                           "the environment's record", err);
      const kp_toml_value *table = root ? kp_toml_table_get (root, "settings") : NULL;
      if (root && table == NULL)
        kp_error_set (err, KP_EXIT_STORE, "the environment's record has no [settings]");
      if (table == NULL || (*m = kp_manifest_load_settings (table, where, err)) == NULL)
        return kp_error_prefix (err, "environment %.12s", (*rec)->env_id);
    }
  else
    {
      /* Recorded before the settings were kept in the record: from the lock. */
      if ((*rec)->lock == NULL)
        return kp_error_set (err, KP_EXIT_STORE, "environment %.12s has no lock in the store",
                             (*rec)->env_id);
      size_t len = 0;
      kp_cleanup_free char *text = kp_store_get (*store, (*rec)->lock, 16 << 20, &len, err);
      if (text == NULL)
        return -1;
      kp_cleanup_lock kp_lock *lock = kp_lock_load_text (text, len, where, err);
      if (lock == NULL)
        return kp_error_prefix (err, "environment %.12s: its lock", (*rec)->env_id);
      *m = kp_steal_pointer (&lock->settings);
    }
  /* Settings read from a lock know no directory ("/"): relative mounts, and the
     allow-list's "the project's own directory", are the manifest's directory's. */
  free ((*m)->dir);
  (*m)->dir = NULL;
  if (manifest)
    {
      kp_cleanup_free char *abs = kp_path_absolute (manifest, NULL);
      (*m)->dir = abs ? kp_path_dirname (abs) : NULL;
    }
  if ((*m)->dir == NULL)
    return kp_error_set (err, KP_EXIT_STORE,
                         "environment %.12s: the manifest it was built from is not recorded",
                         (*rec)->env_id);
  return 0;
}

/* The manifest's [mounts], then your home at its own path unless the manifest keeps the
 * environment's home private: what a new holder binds, and what shows where you are. */
static int
env_binds (const kp_policy *policy, const kp_manifest *m, const env_open *how, kp_bind **binds,
           size_t *n, bool *home_mounted, kp_error **err)
{
  *binds = NULL;
  *n = 0;
  if (m && kp_cli_manifest_binds (policy, m, binds, n, err) < 0)
    {
      kp_cli_binds_free (*binds, *n);
      *binds = NULL;
      *n = 0;
      return -1;
    }
  *home_mounted = how->home && (m == NULL || kp_manifest_bool (m, KP_OPT_HOST_HOME));
  if (*home_mounted)
    {
      *binds = xreallocarray (*binds, *n + 1, sizeof **binds);
      (*binds)[(*n)++] = (kp_bind){ xstrdup (kp_home_dir ()), xstrdup (kp_home_dir ()), false };
    }
  return 0;
}

/* Where the caller's working directory is inside the environment, or NULL when nothing
 * shows it there: the target of the bind whose host directory holds it (the deepest one;
 * your home is bound at its own path). */
static char *
cwd_inside (const kp_bind *binds, size_t n)
{
  char cwd[PATH_MAX];
  if (getcwd (cwd, sizeof cwd) == NULL)
    return NULL;
  char *inside = NULL;
  size_t best = 0;
  for (size_t i = 0; i < n; i++)
    {
      const char *src = binds[i].source;
      size_t len = strlen (src);
      if (kp_path_is_under (cwd, src) && (inside == NULL || len > best))
        {
          const char *rest = cwd + len;
          while (*rest == '/')
            rest++;
          free (inside);
          inside = *rest ? kp_path_join (binds[i].target, rest) : xstrdup (binds[i].target);
          best = len;
        }
    }
  return inside;
}

static int
run_in_env (kp_cli *cli, const char *which, char *const *argv, const env_open *how,
            kp_error **err)
{
  kp_cleanup_store kp_store *store = NULL;
  kp_cleanup_env_record kp_env_record *rec = NULL;
  kp_cleanup_manifest kp_manifest *m = NULL;
  kp_cleanup_policy kp_policy *policy = NULL;
  if (env_find (cli, false, which, &store, &rec, &m, &policy, err) < 0)
    return -1;
  if (rec->state == KP_ENV_ARCHIVED)
    {
      kp_error_set (err, KP_EXIT_FAILURE, "environment %s is archived: nothing runs in it",
                    which);
      kp_error_hint (err, "karapace unarchive %s first", which);
      return -1;
    }
  kp_environ_overrides ov = {
    .path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    .home = how->as_root ? "/root" : NULL,
    .user = how->as_root ? "root" : NULL,
  };
  kp_cleanup_strv char **env = kp_environ_build (policy, m, environ, &ov, err);
  if (env == NULL)
    return -1;
  /* Where you are when it is visible inside; else enter starts in your home (when it is
     there) and exec at /. */
  kp_bind *binds = NULL;
  size_t n_binds = 0;
  bool home_mounted = false;
  if (env_binds (policy, m, how, &binds, &n_binds, &home_mounted, err) < 0)
    return -1;
  kp_cleanup_free char *here = cwd_inside (binds, n_binds);
  const char *cwd = here ? here : how->login && home_mounted ? kp_home_dir () : NULL;
  kp_holder *h = env_holder (&store, rec, policy, m, binds, n_binds, how, err);
  kp_cli_binds_free (binds, n_binds);
  if (h == NULL)
    return -1;
  int status = 0;
  kp_session_spec session = { .argv = argv, .envp = env, .as_root = how->as_root,
                              .seccomp = KP_SECCOMP_DEFAULT, .cwd = cwd };
  int r = kp_holder_join (h, &session, &status, err);
  kp_holder_release (h);
  return r < 0 ? -1 : status;
}

/* ---- exec, enter ---- */

static int
parse_user (kp_cli *cli, const kp_cli_command *cmd, int argc, char **argv, bool *as_root)
{
  enum { OPT_USER = 1000 };
  static const struct option options[] = {
    KP_CLI_COMMON_LONG_OPTIONS,
    { "user", required_argument, NULL, OPT_USER },
    { NULL, 0, NULL, 0 },
  };
  int c;
  while ((c = getopt_long (argc, argv, "+" KP_CLI_COMMON_SHORT_OPTIONS, options, NULL)) != -1)
    {
      if (c == OPT_USER)
        {
          if (strcmp (optarg, "root") == 0)
            *as_root = true;
          else if (strcmp (optarg, "self") != 0)
            return kp_cli_usage_error (cli, cmd, "--user: self or root, not '%s'", optarg);
          continue;
        }
      int r = kp_cli_common_option (cli, cmd, c, optarg);
      if (r != KP_CLI_CONTINUE)
        return r;
    }
  return KP_CLI_CONTINUE;
}

int
kp_cmd_exec (kp_cli *cli, const kp_cli_command *cmd, int argc, char **argv)
{
  env_open how = { .account = true, .home = true };
  int r = parse_user (cli, cmd, argc, argv, &how.as_root);
  if (r != KP_CLI_CONTINUE)
    return r;
  if (optind >= argc)
    return kp_cli_usage_error (cli, cmd, "which environment? karapace exec ENV -- CMD");
  const char *which = argv[optind++];
  if (optind < argc && strcmp (argv[optind], "--") == 0)
    optind++;
  if (optind >= argc)
    return kp_cli_usage_error (cli, cmd, "no command given: karapace exec ENV -- CMD");
  kp_error *err = NULL;
  int status = run_in_env (cli, which, argv + optind, &how, &err);
  if (status < 0)
    return kp_cli_fail (cli, err);
  return status;
}

int
kp_cmd_enter (kp_cli *cli, const kp_cli_command *cmd, int argc, char **argv)
{
  env_open how = { .account = true, .home = true };
  int r = parse_user (cli, cmd, argc, argv, &how.as_root);
  if (r != KP_CLI_CONTINUE)
    return r;
  if (optind >= argc)
    return kp_cli_usage_error (cli, cmd, "which environment? karapace enter ENV [-- CMD]");
  const char *which = argv[optind++];
  if (optind < argc && strcmp (argv[optind], "--") == 0)
    optind++;
  /* A login shell by default: your account's shell inside. */
  char *login[] = { (char *) "/bin/sh", (char *) "-l", NULL };
  char **command = optind < argc ? argv + optind : login;
  if (optind >= argc)
    {
      struct stat st;
      kp_cleanup_store kp_store *store = open_env_store (cli, false, NULL, NULL);
      kp_cleanup_env_record kp_env_record *rec = store ? kp_store_env_lookup (store, which, NULL)
                                                       : NULL;
      for (char **l = rec ? rec->layers : NULL; l && *l; l++)
        {
          kp_cleanup_free char *bash = xasprintf ("%s/layers/%s/tree/usr/bin/bash",
                                                  kp_store_path (store), *l);
          if (lstat (bash, &st) == 0)
            login[0] = (char *) "/bin/bash";
        }
    }
  kp_error *err = NULL;
  how.login = true;
  int status = run_in_env (cli, which, command, &how, &err);
  if (status < 0)
    return kp_cli_fail (cli, err);
  return status;
}

/* ---- start, stop ---- */

int
kp_cmd_start (kp_cli *cli, const kp_cli_command *cmd, int argc, char **argv)
{
  static const struct option options[] = { KP_CLI_COMMON_LONG_OPTIONS, { NULL, 0, NULL, 0 } };
  int c;
  while ((c = getopt_long (argc, argv, KP_CLI_COMMON_SHORT_OPTIONS, options, NULL)) != -1)
    {
      int r = kp_cli_common_option (cli, cmd, c, optarg);
      if (r != KP_CLI_CONTINUE)
        return r;
    }
  if (optind + 1 != argc)
    return kp_cli_usage_error (cli, cmd, "start takes one environment");
  const char *which = argv[optind];
  kp_error *err = NULL;
  kp_cleanup_store kp_store *store = NULL;
  kp_cleanup_env_record kp_env_record *rec = NULL;
  kp_cleanup_manifest kp_manifest *m = NULL;
  kp_cleanup_policy kp_policy *policy = NULL;
  if (env_find (cli, false, which, &store, &rec, &m, &policy, &err) < 0)
    return kp_cli_fail (cli, err);
  if (rec->state == KP_ENV_ARCHIVED)
    {
      kp_error_set (&err, KP_EXIT_FAILURE, "environment %s is archived", which);
      return kp_cli_fail (cli, err);
    }
  if (env_running (store, rec->env_id))
    {
      kp_cli_info (cli, "%s is running already", which);
      return 0;
    }
  /* A keeper process holds the holder until `stop`: detached, in a session of its own. */
  int ready[2];
  if (pipe2 (ready, O_CLOEXEC) < 0)
    {
      kp_error_errno (&err, errno, "pipe");
      return kp_cli_fail (cli, err);
    }
  pid_t pid = fork ();
  if (pid < 0)
    {
      kp_error_errno (&err, errno, "fork");
      return kp_cli_fail (cli, err);
    }
  if (pid == 0)
    {
      close (ready[0]);
      setsid ();
      /* Nothing of the caller's terminal or pipes goes to the keeper or the holder it
         starts (a pipe held open would keep `start` from ever looking finished). */
      int devnull = open ("/dev/null", O_RDWR | O_CLOEXEC);
      if (devnull >= 0)
        {
          dup2 (devnull, STDIN_FILENO);
          dup2 (devnull, STDOUT_FILENO);
          dup2 (devnull, STDERR_FILENO);
        }
      env_open how = { .account = true, .home = true };
      kp_error *e = NULL;
      kp_bind *binds = NULL;
      size_t n_binds = 0;
      bool home_mounted = false;
      kp_holder *h = env_binds (policy, m, &how, &binds, &n_binds, &home_mounted, &e) < 0
                         ? NULL
                         : env_holder (&store, rec, policy, m, binds, n_binds, &how, &e);
      kp_cli_binds_free (binds, n_binds);
      /* 'y', or 'n' and the error's message. */
      kp_cleanup_free char *msg = h ? xstrdup ("y") : xasprintf ("n%s", e ? e->message : "");
      if (kp_write_all (ready[1], msg, strlen (msg)) < 0)
        _exit (1);
      close (ready[1]);
      if (h == NULL)
        _exit (1);
      /* Until the holder ends (stop, or everything inside gone). */
      int pidfd = (int) syscall (SYS_pidfd_open, kp_holder_pid (h), 0);
      struct pollfd p = { .fd = pidfd, .events = POLLIN };
      while (pidfd >= 0 && poll (&p, 1, -1) < 0 && errno == EINTR)
        ;
      if (pidfd < 0)
        pause ();
      _exit (0);
    }
  close (ready[1]);
  char answer[4096] = "";
  ssize_t n = read (ready[0], answer, sizeof answer - 1);
  close (ready[0]);
  if (n < 1 || answer[0] != 'y')
    {
      kp_error_set (&err, KP_EXIT_RUNTIME, "environment %s did not start%s%s", which,
                    n > 1 ? ": " : "", n > 1 ? answer + 1 : "");
      return kp_cli_fail (cli, err);
    }
  kp_cli_info (cli, "started %s", which);
  return 0;
}

int
kp_cmd_stop (kp_cli *cli, const kp_cli_command *cmd, int argc, char **argv)
{
  static const struct option options[] = { KP_CLI_COMMON_LONG_OPTIONS, { NULL, 0, NULL, 0 } };
  int c;
  while ((c = getopt_long (argc, argv, KP_CLI_COMMON_SHORT_OPTIONS, options, NULL)) != -1)
    {
      int r = kp_cli_common_option (cli, cmd, c, optarg);
      if (r != KP_CLI_CONTINUE)
        return r;
    }
  if (optind + 1 != argc)
    return kp_cli_usage_error (cli, cmd, "stop takes one environment");
  const char *which = argv[optind];
  kp_error *err = NULL;
  kp_cleanup_store kp_store *store = open_env_store (cli, false, NULL, &err);
  kp_cleanup_env_record kp_env_record *rec = store ? kp_store_env_lookup (store, which, &err)
                                                   : NULL;
  if (rec == NULL)
    return kp_cli_fail (cli, err);
  kp_cleanup_free char *dir = env_state_dir (store, rec->env_id, &err);
  kp_cleanup_error kp_error *connect_err = NULL;
  kp_holder *h = dir ? kp_holder_connect (dir, &connect_err) : NULL;
  if (h == NULL)
    {
      if (err == NULL)
        kp_error_set (&err, KP_EXIT_FAILURE, "environment %s is not running", which);
      return kp_cli_fail (cli, err);
    }
  int r = kp_holder_stop (h, &err);
  kp_holder_release (h);
  if (r < 0)
    return kp_cli_fail (cli, err);
  kp_cli_info (cli, "stopped %s", which);
  return 0;
}

/* ---- freeze, unfreeze, archive, unarchive, rename ---- */

static int
change_state (kp_cli *cli, const kp_cli_command *cmd, int argc, char **argv, const char *verb,
              const kp_env_state *from, size_t n_from, kp_env_state to)
{
  static const struct option options[] = { KP_CLI_COMMON_LONG_OPTIONS, { NULL, 0, NULL, 0 } };
  int c;
  while ((c = getopt_long (argc, argv, KP_CLI_COMMON_SHORT_OPTIONS, options, NULL)) != -1)
    {
      int r = kp_cli_common_option (cli, cmd, c, optarg);
      if (r != KP_CLI_CONTINUE)
        return r;
    }
  if (optind >= argc)
    return kp_cli_usage_error (cli, cmd, "which environment? karapace %s ENV...", verb);
  kp_error *err = NULL;
  kp_cleanup_store kp_store *store = open_env_store (cli, true, "karapace", &err);
  if (store == NULL)
    return kp_cli_fail (cli, err);
  for (int i = optind; i < argc; i++)
    {
      kp_cleanup_env_record kp_env_record *rec = kp_store_env_lookup (store, argv[i], &err);
      if (rec == NULL)
        return kp_cli_fail (cli, err);
      bool allowed = false;
      for (size_t k = 0; k < n_from; k++)
        allowed = allowed || rec->state == from[k];
      if (!allowed)
        {
          kp_error_set (&err, KP_EXIT_FAILURE, "cannot %s %s: it is %s", verb, argv[i],
                        kp_env_state_name (rec->state));
          return kp_cli_fail (cli, err);
        }
      if (env_running (store, rec->env_id))
        {
          kp_error_set (&err, KP_EXIT_FAILURE, "cannot %s %s: it is running", verb, argv[i]);
          kp_error_hint (&err, "stop it first: karapace stop %s", argv[i]);
          return kp_cli_fail (cli, err);
        }
      rec->state = to;
      if (kp_store_env_write (store, rec, &err) < 0)
        return kp_cli_fail (cli, err);
      kp_cli_info (cli, "%s: %s", argv[i], kp_env_state_name (to));
    }
  return 0;
}

int
kp_cmd_freeze (kp_cli *cli, const kp_cli_command *cmd, int argc, char **argv)
{
  static const kp_env_state from[] = { KP_ENV_BUILT };
  return change_state (cli, cmd, argc, argv, "freeze", from, 1, KP_ENV_FROZEN);
}

int
kp_cmd_unfreeze (kp_cli *cli, const kp_cli_command *cmd, int argc, char **argv)
{
  static const kp_env_state from[] = { KP_ENV_FROZEN };
  return change_state (cli, cmd, argc, argv, "unfreeze", from, 1, KP_ENV_BUILT);
}

int
kp_cmd_archive (kp_cli *cli, const kp_cli_command *cmd, int argc, char **argv)
{
  static const kp_env_state from[] = { KP_ENV_BUILT, KP_ENV_FROZEN };
  return change_state (cli, cmd, argc, argv, "archive", from, 2, KP_ENV_ARCHIVED);
}

int
kp_cmd_unarchive (kp_cli *cli, const kp_cli_command *cmd, int argc, char **argv)
{
  static const kp_env_state from[] = { KP_ENV_ARCHIVED };
  return change_state (cli, cmd, argc, argv, "unarchive", from, 1, KP_ENV_BUILT);
}

int
kp_cmd_rename (kp_cli *cli, const kp_cli_command *cmd, int argc, char **argv)
{
  static const struct option options[] = { KP_CLI_COMMON_LONG_OPTIONS, { NULL, 0, NULL, 0 } };
  int c;
  while ((c = getopt_long (argc, argv, KP_CLI_COMMON_SHORT_OPTIONS, options, NULL)) != -1)
    {
      int r = kp_cli_common_option (cli, cmd, c, optarg);
      if (r != KP_CLI_CONTINUE)
        return r;
    }
  if (optind + 2 != argc)
    return kp_cli_usage_error (cli, cmd, "usage: karapace rename ENV NEW_NAME");
  const char *name = argv[optind + 1];
  if (!kp_store_is_env_name (name))
    return kp_cli_usage_error (cli, cmd, "'%s' is not a name (letters, digits, '-' and '_', "
                               "up to 64, not only hex digits)", name);
  kp_error *err = NULL;
  kp_cleanup_store kp_store *store = open_env_store (cli, true, "karapace rename", &err);
  kp_cleanup_env_record kp_env_record *rec = store ? kp_store_env_lookup (store, argv[optind], &err)
                                                   : NULL;
  if (rec == NULL)
    return kp_cli_fail (cli, err);
  free (rec->name);
  rec->name = xstrdup (name);
  if (kp_store_env_write (store, rec, &err) < 0)
    return kp_cli_fail (cli, err);
  kp_cli_info (cli, "%s is now %s", argv[optind], name);
  return 0;
}

/* ---- inspect ---- */

int
kp_cmd_inspect (kp_cli *cli, const kp_cli_command *cmd, int argc, char **argv)
{
  static const struct option options[] = { KP_CLI_COMMON_LONG_OPTIONS, { NULL, 0, NULL, 0 } };
  int c;
  while ((c = getopt_long (argc, argv, KP_CLI_COMMON_SHORT_OPTIONS, options, NULL)) != -1)
    {
      int r = kp_cli_common_option (cli, cmd, c, optarg);
      if (r != KP_CLI_CONTINUE)
        return r;
    }
  if (optind + 1 != argc)
    return kp_cli_usage_error (cli, cmd, "inspect takes one environment");
  kp_error *err = NULL;
  kp_cleanup_store kp_store *store = open_env_store (cli, false, NULL, &err);
  kp_cleanup_env_record kp_env_record *rec = store ? kp_store_env_lookup (store, argv[optind], &err)
                                                   : NULL;
  if (rec == NULL)
    return kp_cli_fail (cli, err);
  char short_id[KP_SHORT_ID_LEN + 1];
  kp_identity_short_id (rec->env_id, short_id);
  bool running = env_running (store, rec->env_id);
  kp_cleanup_json json_t *j = json_pack (
      "{s:s,s:s,s:s?,s:s,s:b,s:I,s:I,s:o,s:s?,s:O?}", "env_id", rec->env_id, "short_id",
      short_id, "name", rec->name, "state", kp_env_state_name (rec->state), "running", running,
      "created", (json_int_t) rec->created, "updated", (json_int_t) rec->updated, "layers",
      kp_json_strv (rec->layers), "lock", rec->lock, "extra", rec->extra);
  if (rec->lock)
    {
      size_t len = 0;
      kp_cleanup_free char *text = kp_store_get (store, rec->lock, 16 << 20, &len, NULL);
      if (text)
        json_object_set_new (j, "lock_text", json_string (text));
    }
  if (cli->json)
    {
      kp_cli_print_json (cli, j);
      return 0;
    }
  printf ("env_id   %s\nname     %s\nstate    %s%s\nlayers  ", rec->env_id,
          rec->name ? rec->name : "-", kp_env_state_name (rec->state),
          running ? " (running)" : "");
  for (char **l = rec->layers; l && *l; l++)
    printf (" %.12s", *l);
  printf ("\n");
  const char *manifest = json_string_value (json_object_get (rec->extra, "manifest"));
  if (manifest)
    printf ("manifest %s\n", manifest);
  json_t *pk = json_object_get (rec->extra, "packages");
  if (pk)
    printf ("packages %lld\n", (long long) json_integer_value (pk));
  return 0;
}

/* ---- list ---- */

int
kp_cmd_list (kp_cli *cli, const kp_cli_command *cmd, int argc, char **argv)
{
  static const struct option options[] = {
    KP_CLI_COMMON_LONG_OPTIONS,
    { NULL, 0, NULL, 0 },
  };
  int c;
  while ((c = getopt_long (argc, argv, KP_CLI_COMMON_SHORT_OPTIONS, options, NULL)) != -1)
    {
      int r = kp_cli_common_option (cli, cmd, c, optarg);
      if (r != KP_CLI_CONTINUE)
        return r;
    }
  if (optind < argc)
    return kp_cli_usage_error (cli, cmd, "list takes no arguments");
  kp_error *err = NULL;
  kp_cleanup_store kp_store *store = open_env_store (cli, false, NULL, &err);
  kp_cleanup_strv char **ids = store ? kp_store_env_list (store, &err) : NULL;
  if (ids == NULL)
    return kp_cli_fail (cli, err);
  kp_cleanup_json json_t *all = json_array ();
  for (char **id = ids; *id; id++)
    {
      kp_cleanup_env_record kp_env_record *rec = kp_store_env_read (store, *id, &err);
      if (rec == NULL)
        return kp_cli_fail (cli, err);
      char short_id[KP_SHORT_ID_LEN + 1];
      kp_identity_short_id (rec->env_id, short_id);
      json_t *pk = json_object_get (rec->extra, "packages");
      json_array_append_new (all, json_pack ("{s:s,s:s,s:s?,s:s,s:b,s:s?,s:I,s:I}", "env_id",
                                             rec->env_id, "short_id", short_id, "name",
                                             rec->name, "state",
                                             kp_env_state_name (rec->state), "running",
                                             env_running (store, rec->env_id), "base",
                                             rec->layers ? rec->layers[0] : NULL, "packages",
                                             json_integer_value (pk), "created",
                                             (json_int_t) rec->created));
    }
  if (cli->json)
    {
      kp_cli_print_json (cli, all);
      return 0;
    }
  printf ("%-12s  %-20s  %-8s  %-12s  %8s  %s\n", "SHORT_ID", "NAME", "STATE", "BASE",
          "PACKAGES", "CREATED");
  size_t i;
  json_t *e;
  json_array_foreach (all, i, e)
    {
      char when[32];
      time_t t = (time_t) json_integer_value (json_object_get (e, "created"));
      struct tm tm;
      gmtime_r (&t, &tm);
      strftime (when, sizeof when, "%Y-%m-%d %H:%MZ", &tm);
      const char *name = json_string_value (json_object_get (e, "name"));
      const char *base = json_string_value (json_object_get (e, "base"));
      bool running = json_is_true (json_object_get (e, "running"));
      printf ("%-12s  %-20s  %-8s  %-12.12s  %8lld  %s\n",
              json_string_value (json_object_get (e, "short_id")), name ? name : "-",
              running ? "running" : json_string_value (json_object_get (e, "state")),
              base ? base : "-",
              (long long) json_integer_value (json_object_get (e, "packages")), when);
    }
  return 0;
}

/* ---- destroy ---- */

int
kp_cmd_destroy (kp_cli *cli, const kp_cli_command *cmd, int argc, char **argv)
{
  static const struct option options[] = {
    KP_CLI_COMMON_LONG_OPTIONS,
    { NULL, 0, NULL, 0 },
  };
  int c;
  while ((c = getopt_long (argc, argv, KP_CLI_COMMON_SHORT_OPTIONS, options, NULL)) != -1)
    {
      int r = kp_cli_common_option (cli, cmd, c, optarg);
      if (r != KP_CLI_CONTINUE)
        return r;
    }
  if (optind >= argc)
    return kp_cli_usage_error (cli, cmd, "which environment? karapace destroy ENV...");
  kp_error *err = NULL;
  kp_cleanup_store kp_store *store = open_env_store (cli, true, "karapace destroy", &err);
  if (store == NULL)
    return kp_cli_fail (cli, err);
  for (int i = optind; i < argc; i++)
    {
      kp_cleanup_env_record kp_env_record *rec = kp_store_env_lookup (store, argv[i], &err);
      if (rec == NULL)
        return kp_cli_fail (cli, err);
      if (rec->state == KP_ENV_RUNNING || env_running (store, rec->env_id))
        {
          kp_error_set (&err, KP_EXIT_FAILURE, "environment %s is running", argv[i]);
          kp_error_hint (&err, "stop it first: karapace stop %s", argv[i]);
          return kp_cli_fail (cli, err);
        }
      if (kp_store_env_remove (store, rec->env_id, &err) < 0)
        return kp_cli_fail (cli, err);
      kp_cli_info (cli, "destroyed %s", argv[i]);
    }
  return 0;
}
