/* cmd-env.c — environments: `build`, `exec`, `list`, `destroy` (docs/build.md). */
#include "commands.h"

#include "base/fs.h"
#include "engine/build.h"
#include "image/image-config.h"
#include "policy/policy.h"
#include "sandbox/environ.h"
#include "sandbox/runtime.h"
#include "schema/identity.h"
#include "schema/manifest.h"
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
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
  enum { OPT_NAME = 1000, OPT_OFFLINE };
  static const struct option options[] = {
    KP_CLI_COMMON_LONG_OPTIONS,
    { "name", required_argument, NULL, OPT_NAME },
    { "offline", no_argument, NULL, OPT_OFFLINE },
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

/* Where an environment's holder can be found while it runs. */
static char *
env_state_dir (const char *env_id, kp_error **err)
{
  kp_cleanup_free char *runtime = kp_runtime_state_dir (err);
  if (runtime == NULL)
    return NULL;
  kp_cleanup_free char *envs = xasprintf ("%s/envs", runtime);
  if (mkdir (envs, 0700) < 0 && errno != EEXIST)
    {
      kp_error_errno (err, errno, "create %s", envs);
      return NULL;
    }
  return xasprintf ("%s/%s", envs, env_id);
}

/* Does a holder of this environment answer? */
static bool
env_running (const char *env_id)
{
  kp_cleanup_error kp_error *e = NULL;
  kp_cleanup_free char *dir = env_state_dir (env_id, &e);
  kp_holder *h = dir ? kp_holder_connect (dir, &e) : NULL;
  kp_holder_release (h);
  return h != NULL;
}

static int
env_binds (const kp_policy *policy, const kp_manifest *m, kp_bind **out, size_t *n,
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

int
kp_cmd_exec (kp_cli *cli, const kp_cli_command *cmd, int argc, char **argv)
{
  enum { OPT_USER = 1000 };
  static const struct option options[] = {
    KP_CLI_COMMON_LONG_OPTIONS,
    { "user", required_argument, NULL, OPT_USER },
    { NULL, 0, NULL, 0 },
  };
  bool as_root = false;
  int c;
  while ((c = getopt_long (argc, argv, "+" KP_CLI_COMMON_SHORT_OPTIONS, options, NULL)) != -1)
    {
      if (c == OPT_USER)
        {
          if (strcmp (optarg, "root") == 0)
            as_root = true;
          else if (strcmp (optarg, "self") != 0)
            return kp_cli_usage_error (cli, cmd, "--user: self or root, not '%s'", optarg);
          continue;
        }
      int r = kp_cli_common_option (cli, cmd, c, optarg);
      if (r != KP_CLI_CONTINUE)
        return r;
    }
  if (optind >= argc)
    return kp_cli_usage_error (cli, cmd, "which environment? karapace exec ENV -- CMD");
  const char *which = argv[optind++];
  if (optind < argc && strcmp (argv[optind], "--") == 0)
    optind++;
  if (optind >= argc)
    return kp_cli_usage_error (cli, cmd, "no command given: karapace exec ENV -- CMD");

  kp_error *err = NULL;
  kp_holder *h = NULL;
  kp_bind *binds = NULL;
  size_t n_binds = 0;
  int status = 1;
  kp_cleanup_store kp_store *store = open_env_store (cli, false, NULL, &err);
  kp_cleanup_env_record kp_env_record *rec = store ? kp_store_env_lookup (store, which, &err)
                                                   : NULL;
  kp_cleanup_policy kp_policy *policy = rec ? kp_policy_load (NULL, &err) : NULL;
  kp_cleanup_strv char **env = NULL;
  kp_cleanup_manifest kp_manifest *m = NULL;
  kp_cleanup_strv char **layers = NULL;
  kp_cleanup_free char *upper = NULL, *work = NULL, *state_dir = NULL, *lock_path = NULL;
  kp_cleanup_close int lock_fd = -1;
  kp_cleanup_error kp_error *connect_err = NULL;
  if (policy == NULL)
    goto fail;
  if (rec->state == KP_ENV_ARCHIVED)
    {
      kp_error_set (&err, KP_EXIT_FAILURE, "environment %s is archived", which);
      goto fail;
    }
  /* The manifest's mounts and network, when it is still where it was built from. */
  const char *manifest = json_string_value (json_object_get (rec->extra, "manifest"));
  if (manifest && access (manifest, R_OK) == 0)
    {
      m = kp_manifest_load (manifest, &err);
      if (m == NULL || env_binds (policy, m, &binds, &n_binds, &err) < 0)
        goto fail;
    }
  size_t n_layers = 0;
  while (rec->layers && rec->layers[n_layers])
    n_layers++;
  if (n_layers == 0)
    {
      kp_error_set (&err, KP_EXIT_STORE, "environment %s has no layers", which);
      goto fail;
    }
  /* Topmost first. */
  layers = xcalloc (n_layers + 1, sizeof (char *));
  for (size_t i = 0; i < n_layers; i++)
    layers[i] = xasprintf ("%s/layers/%s/tree", kp_store_path (store),
                           rec->layers[n_layers - 1 - i]);
  kp_environ_overrides ov = {
    .path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    .home = as_root ? "/root" : NULL,
    .user = as_root ? "root" : NULL,
  };
  env = kp_environ_build (policy, m, environ, &ov, &err);
  if (env == NULL)
    goto fail;
  kp_net_mode net = KP_NET_HOST;
  if (m && (kp_manifest_bool (m, KP_OPT_RUNTIME_NETWORK_ISOLATION)
            || kp_str_equal0 (kp_manifest_string (m, KP_OPT_RUNTIME_NETWORK), "none")))
    net = KP_NET_NONE;
  else if (m && kp_str_equal0 (kp_manifest_string (m, KP_OPT_RUNTIME_NETWORK), "user"))
    net = KP_NET_USER;
  char short_id[KP_SHORT_ID_LEN + 1];
  kp_identity_short_id (rec->env_id, short_id);
  /* One holder per environment: the first exec starts it over the environment's own
     writable layer, the others join it (one overlay per upper directory), and it ends
     with the last of them. */
  upper = xasprintf ("%s/envs/%s/upper", kp_store_path (store), rec->env_id);
  work = xasprintf ("%s/envs/%s/work", kp_store_path (store), rec->env_id);
  state_dir = env_state_dir (rec->env_id, &err);
  if (state_dir == NULL)
    goto fail;
  lock_path = xasprintf ("%s.lock", state_dir);
  lock_fd = open (lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd < 0 || flock (lock_fd, LOCK_EX) < 0)
    {
      kp_error_errno (&err, errno, "lock %s", lock_path);
      goto fail;
    }
  h = kp_holder_connect (state_dir, &connect_err);
  /* The environment's record keeps its layers from gc, and destroy refuses while a holder
     answers: the store is free for other commands from here on (and a holder started
     below must not inherit its lock). */
  kp_store_close (kp_steal_pointer (&store));
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
                           .single_id_as_root = as_root };
  if (h == NULL)
    h = kp_holder_start (&spec, &err);
  if (h == NULL)
    goto fail;
  flock (lock_fd, LOCK_UN);
  kp_session_spec session = { .argv = argv + optind, .envp = env, .as_root = as_root,
                              .seccomp = KP_SECCOMP_DEFAULT };
  if (kp_holder_join (h, &session, &status, &err) < 0)
    goto fail;
  kp_holder_release (h);
  for (size_t i = 0; i < n_binds; i++)
    {
      free ((char *) binds[i].source);
      free ((char *) binds[i].target);
    }
  free (binds);
  return status;
fail:
  kp_holder_release (h);
  for (size_t i = 0; i < n_binds; i++)
    {
      free ((char *) binds[i].source);
      free ((char *) binds[i].target);
    }
  free (binds);
  return kp_cli_fail (cli, err);
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
      json_array_append_new (all, json_pack ("{s:s,s:s,s:s?,s:s,s:s?,s:I,s:I}", "env_id",
                                             rec->env_id, "short_id", short_id, "name",
                                             rec->name, "state",
                                             kp_env_state_name (rec->state), "base",
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
      printf ("%-12s  %-20s  %-8s  %-12.12s  %8lld  %s\n",
              json_string_value (json_object_get (e, "short_id")), name ? name : "-",
              json_string_value (json_object_get (e, "state")), base ? base : "-",
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
      if (rec->state == KP_ENV_RUNNING || env_running (rec->env_id))
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
