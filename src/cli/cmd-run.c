/* cmd-run.c — `karapace run --rootfs DIR [OPTIONS] -- CMD [ARGS...]`: a command in a
 * throw-away sandbox over any root filesystem directory, which is never modified.
 *
 * Everything the policy decides is checked here, before anything starts: bind sources
 * against the mount allow-list, devices against the device allow-list, variables against
 * the deny-list, limits against the ceilings. */
#include "commands.h"

#include "base/fs.h"
#include "image/image-config.h"
#include "image/pull.h"
#include "engine/build.h"
#include "store/store.h"
#include "policy/policy.h"
#include "sandbox/environ.h"
#include "sandbox/runtime.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

extern char **environ;

enum
{
  OPT_ROOTFS = 1,
  OPT_MOUNT,
  OPT_DEVICE,
  OPT_GPU,
  OPT_AUDIO,
  OPT_NETWORK,
  OPT_USER,
  OPT_HOSTNAME,
  OPT_WORKDIR,
  OPT_ENV,
  OPT_MEMORY,
  OPT_CPU_SHARES,
  OPT_PIDS,
  OPT_SECCOMP,
  OPT_OVERLAY,
  OPT_POLICY,
  OPT_SESSION,
  OPT_STOP,
  OPT_IMAGE,
};

typedef struct run_options
{
  const char *rootfs;
  const char *image;  /* a base image in the store (its layer becomes the root) */
  const char *manifest; /* run MANIFEST -- CMD: built if needed, its layers the root */
  char **layer_paths;   /* the environment's layers, topmost first */
  char *image_tree;   /* that layer's tree */
  char **mounts; /* HOST:CONTAINER[:ro|:rw] as given */
  size_t n_mounts;
  char **devices;
  size_t n_devices;
  char **env;
  size_t n_env;
  bool gpu, audio, as_root;
  kp_net_mode network;
  bool network_given;
  kp_manifest *m;      /* run MANIFEST: its runtime settings, where no option overrides */
  kp_bind *manifest_binds;
  size_t n_manifest_binds;
  const char *hostname, *workdir, *policy, *session;
  bool stop;
  kp_cgroup_limits limits;
  kp_seccomp_profile seccomp;
  kp_overlay_driver overlay;
} run_options;

static void
push (char ***list, size_t *n, const char *value)
{
  *list = xreallocarray (*list, *n + 2, sizeof **list);
  (*list)[(*n)++] = xstrdup (value);
  (*list)[*n] = NULL;
}

static void
run_options_clear (run_options *o)
{
  kp_strv_free (o->mounts);
  kp_strv_free (o->devices);
  kp_strv_free (o->env);
  free (o->image_tree);
  kp_strv_free (o->layer_paths);
  kp_manifest_free (o->m);
  kp_cli_binds_free (o->manifest_binds, o->n_manifest_binds);
}

static int
parse_u64 (const char *text, uint64_t min, uint64_t max, uint64_t *out)
{
  char *end;
  errno = 0;
  unsigned long long v = strtoull (text, &end, 10);
  if (errno || end == text || *end || text[0] == '-' || v < min || v > max)
    return -1;
  *out = v;
  return 0;
}

/* A policy refusal (status KP_EXIT_RUNTIME) with an optional hint; evaluates to -1. */
#define refuse(err, hint, ...)                                                               \
  (kp_error_set ((err), KP_EXIT_RUNTIME, __VA_ARGS__), add_hint ((err), (hint)), -1)

static void
add_hint (kp_error **err, const char *hint)
{
  if (hint)
    kp_error_hint (err, "%s", hint);
}

/* HOST:CONTAINER[:ro|:rw] → a bind, the host side resolved and checked against the
 * policy. */
static int
parse_mount (const kp_policy *p, const char *text, kp_bind *b, kp_error **err)
{
  kp_cleanup_free char *copy = xstrdup (text);
  char *host = copy, *container = strchr (copy, ':');
  if (container == NULL)
    return kp_error_set (err, KP_EXIT_USAGE, "--mount %s: expected HOST:CONTAINER[:ro]", text);
  *container++ = '\0';
  char *mode = strchr (container, ':');
  b->readonly = false;
  if (mode)
    {
      *mode++ = '\0';
      if (strcmp (mode, "ro") == 0)
        b->readonly = true;
      else if (strcmp (mode, "rw") != 0)
        return kp_error_set (err, KP_EXIT_USAGE, "--mount %s: the mode must be ro or rw, not '%s'",
                             text, mode);
    }
  if (host[0] == '\0' || container[0] != '/')
    return kp_error_set (err, KP_EXIT_USAGE,
                         "--mount %s: the host path must not be empty and the path inside must "
                         "be absolute",
                         text);
  kp_cleanup_free char *target = kp_path_normalize (container);
  if (strcmp (target, "/") == 0 || kp_path_is_under (target, "/proc")
      || kp_path_is_under (target, "/sys") || kp_path_is_under (target, "/dev"))
    return refuse (err, "use --device for device nodes",
                   "--mount %s: %s is not a place to mount over", text, target);
  char resolved[PATH_MAX];
  if (realpath (host, resolved) == NULL)
    {
      kp_error_errno (err, errno, "--mount %s: host path %s", text, host);
      kp_error_set_status (err, KP_EXIT_RUNTIME);
      return -1;
    }
  if (!kp_policy_mount_allowed (p, NULL, resolved))
    {
      kp_cleanup_buf kp_buf prefixes = KP_BUF_INIT;
      for (size_t i = 0; p->mount_prefixes[i]; i++)
        kp_buf_printf (&prefixes, "%s%s", i ? ", " : "", p->mount_prefixes[i]);
      kp_error_set (err, KP_EXIT_RUNTIME,
                    "--mount %s: host path %s is outside the mount allow-list", text, resolved);
      kp_error_hint (err,
                     "allowed: your home and %s; add a prefix to allowed_mount_prefixes in "
                     "[policy] of %s to allow more",
                     kp_buf_str (&prefixes),
                     p->source ? p->source : "~/.config/karapace/config.toml");
      return -1;
    }
  b->source = xstrdup (resolved);
  b->target = kp_steal_pointer (&target);
  return 0;
}

static int
check_device (const kp_policy *p, const char *path, kp_error **err)
{
  kp_cleanup_free char *norm = kp_path_normalize (path);
  if (norm[0] != '/' || !kp_path_is_under (norm, "/dev") || strcmp (norm, "/dev") == 0)
    return refuse (err, NULL, "--device %s: %s is not under /dev", path, norm);
  if (!kp_policy_device_allowed (p, norm))
    return refuse (err,
                   "allow it with allowed_devices in [policy] of "
                   "~/.config/karapace/config.toml",
                   "--device %s: %s is not in the device allow-list", path, norm);
  struct stat st;
  if (stat (norm, &st) < 0)
    {
      kp_error_errno (err, errno, "--device %s", path);
      kp_error_set_status (err, KP_EXIT_RUNTIME);
      return -1;
    }
  if (!S_ISCHR (st.st_mode) && !S_ISBLK (st.st_mode) && !S_ISDIR (st.st_mode))
    return refuse (err, NULL, "--device %s: %s is not a device node", path, norm);
  return 0;
}

static int
check_ceiling (const char *option, uint64_t value, int64_t ceiling, kp_error **err)
{
  if (value == 0 || ceiling <= 0 || value <= (uint64_t) ceiling)
    return 0;
  kp_error_set (err, KP_EXIT_RUNTIME, "%s %llu is above the policy's ceiling of %lld", option,
                (unsigned long long) value, (long long) ceiling);
  kp_error_hint (err, "ask for less, or raise the ceiling in [policy] of "
                      "~/.config/karapace/config.toml");
  return -1;
}

static bool
valid_env_name (const char *name, size_t len)
{
  if (len == 0 || (name[0] >= '0' && name[0] <= '9'))
    return false;
  for (size_t i = 0; i < len; i++)
    if (!(name[i] == '_' || (name[i] >= 'A' && name[i] <= 'Z')
          || (name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9')))
      return false;
  return true;
}

/* The environment: the policy's allow-list from ours, then --env, the deny-list winning. */
static char **
build_environment (const kp_policy *p, const run_options *o, kp_error **err)
{
  kp_environ_overrides ov = {
    .path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    .home = o->as_root ? "/root" : NULL,
    .user = o->as_root ? "root" : NULL,
  };
  kp_cleanup_strv char **env = kp_environ_build (p, o->m, environ, &ov, err);
  if (env == NULL)
    return NULL;
  size_t n = 0;
  while (env[n])
    n++;
  for (size_t i = 0; i < o->n_env; i++)
    {
      const char *eq = strchr (o->env[i], '=');
      size_t len = eq ? (size_t) (eq - o->env[i]) : strlen (o->env[i]);
      if (eq == NULL || !valid_env_name (o->env[i], len))
        {
          kp_error_set (err, KP_EXIT_USAGE, "--env %s: expected NAME=VALUE with NAME made of "
                                            "letters, digits and '_'",
                        o->env[i]);
          return NULL;
        }
      kp_cleanup_free char *name = xstrndup (o->env[i], len);
      if (kp_policy_env_denied (p, name, false))
        {
          kp_error_set (err, KP_EXIT_RUNTIME, "--env %s: %s is on the policy's deny-list",
                        o->env[i], name);
          kp_error_hint (err, "secrets and agent sockets never enter an environment this "
                              "way (docs/security.md)");
          return NULL;
        }
      size_t j = 0;
      for (; j < n; j++)
        if (strncmp (env[j], o->env[i], len + 1) == 0)
          break;
      if (j == n)
        {
          env = xreallocarray (env, n + 2, sizeof *env);
          env[n++] = NULL;
          env[n] = NULL;
        }
      free (env[j]);
      env[j] = xstrdup (o->env[i]);
    }
  return kp_steal_pointer (&env);
}

static int
parse_options (kp_cli *cli, const kp_cli_command *cmd, int argc, char **argv, run_options *o)
{
  static const struct option options[] = {
    KP_CLI_COMMON_LONG_OPTIONS,
    { "rootfs", required_argument, NULL, OPT_ROOTFS },
    { "image", required_argument, NULL, OPT_IMAGE },
    { "mount", required_argument, NULL, OPT_MOUNT },
    { "device", required_argument, NULL, OPT_DEVICE },
    { "gpu", no_argument, NULL, OPT_GPU },
    { "audio", no_argument, NULL, OPT_AUDIO },
    { "network", required_argument, NULL, OPT_NETWORK },
    { "user", required_argument, NULL, OPT_USER },
    { "hostname", required_argument, NULL, OPT_HOSTNAME },
    { "workdir", required_argument, NULL, OPT_WORKDIR },
    { "env", required_argument, NULL, OPT_ENV },
    { "memory", required_argument, NULL, OPT_MEMORY },
    { "cpu-shares", required_argument, NULL, OPT_CPU_SHARES },
    { "pids", required_argument, NULL, OPT_PIDS },
    { "seccomp", required_argument, NULL, OPT_SECCOMP },
    { "overlay", required_argument, NULL, OPT_OVERLAY },
    { "policy", required_argument, NULL, OPT_POLICY },
    { "session", required_argument, NULL, OPT_SESSION },
    { "stop", no_argument, NULL, OPT_STOP },
    { NULL, 0, NULL, 0 },
  };
  int c;
  /* '+': options end at the command. */
  while ((c = getopt_long (argc, argv, "+" KP_CLI_COMMON_SHORT_OPTIONS "w:e:", options, NULL))
         != -1)
    switch (c)
      {
      case OPT_ROOTFS:
        o->rootfs = optarg;
        break;
      case OPT_IMAGE:
        o->image = optarg;
        break;
      case OPT_MOUNT:
        push (&o->mounts, &o->n_mounts, optarg);
        break;
      case OPT_DEVICE:
        push (&o->devices, &o->n_devices, optarg);
        break;
      case OPT_GPU:
        o->gpu = true;
        break;
      case OPT_AUDIO:
        o->audio = true;
        break;
      case OPT_NETWORK:
        if (kp_net_mode_from_name (optarg, &o->network) < 0)
          return kp_cli_usage_error (cli, cmd, "--network: host, none or user, not '%s'", optarg);
        o->network_given = true;
        break;
      case OPT_USER:
        if (strcmp (optarg, "root") == 0 || strcmp (optarg, "self") == 0)
          o->as_root = strcmp (optarg, "root") == 0;
        else
          return kp_cli_usage_error (cli, cmd, "--user: self or root, not '%s'", optarg);
        break;
      case OPT_HOSTNAME:
        if (optarg[0] == '\0' || strlen (optarg) > 64)
          return kp_cli_usage_error (cli, cmd, "--hostname: 1 to 64 characters");
        o->hostname = optarg;
        break;
      case 'w':
      case OPT_WORKDIR:
        if (optarg[0] != '/')
          return kp_cli_usage_error (cli, cmd, "--workdir: an absolute path inside");
        o->workdir = optarg;
        break;
      case 'e':
      case OPT_ENV:
        push (&o->env, &o->n_env, optarg);
        break;
      case OPT_MEMORY:
        if (parse_u64 (optarg, 4, UINT64_MAX >> 20, &o->limits.memory_limit_mb) < 0)
          return kp_cli_usage_error (cli, cmd, "--memory: MiB, at least 4, not '%s'", optarg);
        break;
      case OPT_CPU_SHARES:
        if (parse_u64 (optarg, KP_CGROUP_SHARES_MIN, KP_CGROUP_SHARES_MAX, &o->limits.cpu_shares)
            < 0)
          return kp_cli_usage_error (cli, cmd, "--cpu-shares: %u to %u, not '%s'",
                                     KP_CGROUP_SHARES_MIN, KP_CGROUP_SHARES_MAX, optarg);
        break;
      case OPT_PIDS:
        if (parse_u64 (optarg, 1, UINT32_MAX, &o->limits.pids_max) < 0)
          return kp_cli_usage_error (cli, cmd, "--pids: a positive number, not '%s'", optarg);
        break;
      case OPT_SECCOMP:
        if (kp_seccomp_profile_from_name (optarg, &o->seccomp) < 0
            || o->seccomp == KP_SECCOMP_NONE)
          return kp_cli_usage_error (cli, cmd, "--seccomp: default or nesting, not '%s'",
                                     optarg);
        break;
      case OPT_OVERLAY:
        if (kp_overlay_driver_from_name (optarg, &o->overlay) < 0)
          return kp_cli_usage_error (cli, cmd, "--overlay: auto, kernel or fuse, not '%s'",
                                     optarg);
        break;
      case OPT_POLICY:
        o->policy = optarg;
        break;
      case OPT_SESSION:
        if (optarg[0] == '\0' || optarg[0] == '.' || strlen (optarg) > 64
            || strspn (optarg, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
                   != strlen (optarg))
          return kp_cli_usage_error (cli, cmd,
                                     "--session: 1 to 64 letters, digits, '.', '_' or '-', "
                                     "not starting with '.'");
        o->session = optarg;
        break;
      case OPT_STOP:
        o->stop = true;
        break;
      default:
        {
          int r = kp_cli_common_option (cli, cmd, c, optarg);
          if (r != KP_CLI_CONTINUE)
            return r;
        }
      }
  if (o->stop)
    {
      if (o->session == NULL)
        return kp_cli_usage_error (cli, cmd, "--stop needs --session NAME");
      if (optind < argc)
        return kp_cli_usage_error (cli, cmd, "--stop takes no command");
      return KP_CLI_CONTINUE;
    }
  if (o->rootfs && o->image)
    return kp_cli_usage_error (cli, cmd, "--rootfs and --image exclude each other");
  /* run [MANIFEST] -- CMD: a manifest (or ./karapace.toml) in place of --rootfs/--image. */
  if (o->rootfs == NULL && o->image == NULL && o->session == NULL && optind < argc)
    {
      if (strcmp (argv[optind], "--") != 0 && kp_str_has_suffix (argv[optind], ".toml"))
        o->manifest = argv[optind++];
      else if (((optind > 0 && strcmp (argv[optind - 1], "--") == 0)
                || strcmp (argv[optind], "--") == 0)
               && access ("karapace.toml", F_OK) == 0)
        o->manifest = "karapace.toml";
      if (o->manifest && optind < argc && strcmp (argv[optind], "--") == 0)
        optind++;
    }
  if (o->rootfs == NULL && o->image == NULL && o->session == NULL && o->manifest == NULL)
    return kp_cli_usage_error (cli, cmd, "--rootfs DIR, --image REF or a manifest is required");
  if (optind >= argc)
    return kp_cli_usage_error (cli, cmd, "no command given: karapace run --rootfs DIR -- CMD");
  return KP_CLI_CONTINUE;
}

/* The layer of a base image in the store, by reference or digest (aliases resolved). */
static kp_store *
open_image_layer (kp_cli *cli, run_options *o, kp_error **err)
{
  kp_image_config config = { 0 };
  if (kp_image_config_load (NULL, &config, err) < 0)
    return NULL;
  kp_store_open_options so = { .flags = KP_STORE_READ, .on_wait = kp_cli_store_wait,
                               .user_data = cli };
  kp_store *store = kp_store_open_with (cli->store, &so, err);
  kp_cleanup_free char *digest = store ? kp_image_find (store, o->image, config.aliases, err)
                                       : NULL;
  kp_image_config_clear (&config);
  if (digest == NULL)
    {
      if (store && err && *err && strstr ((*err)->message, "no image"))
        {
          kp_error_free (kp_steal_pointer (err));
          kp_error_set (err, KP_EXIT_FAILURE, "the image %s is not in the store", o->image);
          kp_error_hint (err, "fetch it first: karapace images pull %s", o->image);
        }
      kp_store_close (store);
      return NULL;
    }
  kp_cleanup_image_record kp_image_record *rec = kp_store_image_read (store, digest, err);
  if (rec == NULL)
    {
      kp_store_close (store);
      return NULL;
    }
  o->image_tree = xasprintf ("%s/layers/%s/tree", kp_store_path (store), rec->tree_digest);
  return store;
}

/* Check everything against the policy, then start a holder over --rootfs. */
static kp_holder *
start_holder (kp_cli *cli, const run_options *o, const kp_policy *policy,
              const char *state_dir, kp_error **err)
{
  char resolved_rootfs[PATH_MAX];
  struct stat st;
  if (realpath (o->rootfs, resolved_rootfs) == NULL || stat (resolved_rootfs, &st) < 0)
    {
      kp_error_errno (err, errno, "root filesystem %s", o->rootfs);
      kp_error_set_status (err, KP_EXIT_RUNTIME);
      return NULL;
    }
  if (!S_ISDIR (st.st_mode))
    {
      kp_error_set (err, KP_EXIT_RUNTIME, "root filesystem %s is not a directory", o->rootfs);
      return NULL;
    }
  kp_holder *h = NULL;
  kp_bind *binds = xcalloc (o->n_manifest_binds + o->n_mounts + 1, sizeof *binds);
  size_t n_binds = 0, n_devices = 0;
  kp_cleanup_strv char **devices = NULL;
  /* The manifest's [mounts] first, so that a --mount on the same target comes later and
     wins. */
  for (size_t i = 0; i < o->n_manifest_binds; i++, n_binds++)
    binds[n_binds] = (kp_bind){ xstrdup (o->manifest_binds[i].source),
                                xstrdup (o->manifest_binds[i].target),
                                o->manifest_binds[i].readonly };
  for (size_t i = 0; i < o->n_mounts; i++, n_binds++)
    if (parse_mount (policy, o->mounts[i], &binds[n_binds], err) < 0)
      goto out;
  for (size_t i = 0; i < o->n_devices; i++)
    {
      if (check_device (policy, o->devices[i], err) < 0)
        goto out;
      push (&devices, &n_devices, o->devices[i]);
    }
  static const struct
  {
    const char *path, *what;
  } classes[] = { { "/dev/dri", "gpu" }, { "/dev/snd", "audio" } };
  for (size_t i = 0; i < 2; i++)
    {
      if (!(i == 0 ? o->gpu : o->audio))
        continue;
      if (access (classes[i].path, F_OK) < 0)
        {
          kp_cli_warn (cli, "--%s: %s does not exist on this machine; nothing to expose",
                       classes[i].what, classes[i].path);
          continue;
        }
      if (check_device (policy, classes[i].path, err) < 0)
        goto out;
      push (&devices, &n_devices, classes[i].path);
    }
  if (check_ceiling ("--memory", o->limits.memory_limit_mb, policy->max_memory_limit_mb, err)
          < 0
      || check_ceiling ("--cpu-shares", o->limits.cpu_shares, policy->max_cpu_shares, err) < 0
      || check_ceiling ("--pids", o->limits.pids_max, policy->max_pids, err) < 0)
    goto out;

  const char *single[] = { resolved_rootfs, NULL };
  const char *const *layers = o->layer_paths ? (const char *const *) o->layer_paths : single;
  kp_sandbox_spec spec = {
    .layers = (const char **) layers,
    .binds = binds,
    .n_binds = n_binds,
    .devices = (const char *const *) devices,
    .hostname = o->hostname,
    .network = o->network,
    .limits = o->limits,
    .name = "run",
    .overlay = o->overlay,
    .seccomp = o->seccomp,
    .state_dir = state_dir,
    .single_id_as_root = o->as_root,
  };
  h = kp_holder_start (&spec, err);
  if (h == NULL)
    goto out;
  for (char *const *w = kp_holder_warnings (h); *w; w++)
    kp_cli_warn (cli, "%s", *w);
  if (kp_holder_overlay_fallback_reason (h) && o->overlay == KP_OVERLAY_AUTO)
    kp_cli_warn (cli, "using fuse-overlayfs: %s", kp_holder_overlay_fallback_reason (h));
  if (cli->verbose)
    kp_cli_info (cli, "sandbox: holder pid %d, %s overlay, network %s", (int) kp_holder_pid (h),
                 kp_holder_overlay (h), kp_net_mode_name (o->network));
out:
  kp_cli_binds_free (binds, n_binds);
  return h;
}

/* --session NAME: the state directory, and the running holder when there is one (else
 * *h is NULL). With --stop, stops it: returns 1. */
static int
open_session (kp_cli *cli, const run_options *o, char **state_dir, kp_holder **h,
              kp_error **err)
{
  kp_cleanup_free char *runtime = kp_runtime_state_dir (err);
  if (runtime == NULL)
    return -1;
  kp_cleanup_free char *sessions = xasprintf ("%s/sessions", runtime);
  if (mkdir (sessions, 0700) < 0 && errno != EEXIST)
    return kp_error_errno (err, errno, "create %s", sessions);
  *state_dir = xasprintf ("%s/%s", sessions, o->session);
  kp_cleanup_error kp_error *connect_err = NULL;
  *h = kp_holder_connect (*state_dir, &connect_err);
  if (o->stop)
    {
      if (*h == NULL)
        {
          kp_error_set (err, KP_EXIT_RUNTIME, "no session %s is running", o->session);
          return -1;
        }
      int r = kp_holder_stop (*h, err);
      kp_holder_release (*h);
      *h = NULL;
      if (r < 0)
        return -1;
      kp_cli_info (cli, "stopped session %s", o->session);
      return 1;
    }
  if (*h == NULL && o->rootfs == NULL && o->image == NULL)
    {
      kp_error_set (err, KP_EXIT_RUNTIME, "no session %s is running", o->session);
      kp_error_hint (err, "start it with --rootfs DIR or --image REF");
      return -1;
    }
  if (*h != NULL && (o->rootfs || o->image || o->n_mounts || o->n_devices || o->gpu || o->audio))
    kp_cli_warn (cli,
                 "session %s runs already: its root filesystem, mounts and devices stay as "
                 "they were",
                 o->session);
  return 0;
}

int
kp_cmd_run (kp_cli *cli, const kp_cli_command *cmd, int argc, char **argv)
{
  run_options o = { .network = KP_NET_HOST, .seccomp = KP_SECCOMP_DEFAULT };
  const char *forced = getenv ("KARAPACE_OVERLAY");
  if (forced && forced[0] && kp_overlay_driver_from_name (forced, &o.overlay) < 0)
    return kp_cli_usage_error (cli, cmd, "KARAPACE_OVERLAY: auto, kernel or fuse, not '%s'",
                               forced);
  int status = parse_options (cli, cmd, argc, argv, &o);
  if (status != KP_CLI_CONTINUE)
    {
      run_options_clear (&o);
      return status;
    }

  kp_error *err = NULL;
  kp_cleanup_free char *state_dir = NULL;
  kp_cleanup_strv char **env = NULL;
  kp_holder *h = NULL;
  kp_cleanup_policy kp_policy *policy = kp_policy_load (o.policy, &err);
  kp_cleanup_store kp_store *store = NULL;
  if (policy == NULL)
    goto fail;
  if (o.image)
    {
      if ((store = open_image_layer (cli, &o, &err)) == NULL)
        goto fail;
      o.rootfs = o.image_tree;
      /* Not held while the command runs: the holder would inherit the store's lock and
         keep every writer waiting (a session's for as long as it lives). The image record
         keeps the layer; removing the image while it runs is on the user. */
      kp_store_close (kp_steal_pointer (&store));
    }
  if (o.manifest)
    {
      /* Built if needed (an unchanged lock whose environment exists costs nothing), then
         its layers under a throw-away upper layer. */
      kp_image_config config = { 0 };
      kp_store_open_options so = { .flags = KP_STORE_WRITE, .purpose = "karapace run",
                                   .on_wait = kp_cli_store_wait, .user_data = cli };
      if (kp_image_config_load (NULL, &config, &err) < 0)
        goto fail;
      store = kp_store_open_with (cli->store, &so, &err);
      kp_build_options bo = { .manifest = o.manifest, .config = &config, .policy = policy,
                              .progress = !cli->quiet && isatty (STDERR_FILENO) };
      kp_build_result res = { 0 };
      int br = store ? kp_build (store, &bo, &res, &err) : -1;
      kp_image_config_clear (&config);
      if (br < 0)
        goto fail;
      o.layer_paths = xcalloc (3, sizeof (char *));
      size_t k = 0;
      if (res.packages_tree[0])
        o.layer_paths[k++] = xasprintf ("%s/layers/%s/tree", kp_store_path (store),
                                        res.packages_tree);
      o.layer_paths[k++] = xasprintf ("%s/layers/%s/tree", kp_store_path (store), res.base_tree);
      o.rootfs = o.layer_paths[k - 1];
      kp_build_result_clear (&res);
      kp_store_close (kp_steal_pointer (&store));
      /* The environment's runtime settings, as exec gives them; options given here win. */
      if ((o.m = kp_manifest_load (o.manifest, &err)) == NULL
          || kp_cli_manifest_binds (policy, o.m, &o.manifest_binds, &o.n_manifest_binds, &err)
                 < 0)
        goto fail;
      if (!o.network_given)
        o.network = kp_cli_manifest_network (o.m);
      kp_cgroup_limits ml = kp_cli_manifest_limits (o.m);
      if (o.limits.cpu_shares == 0)
        o.limits.cpu_shares = ml.cpu_shares;
      if (o.limits.memory_limit_mb == 0)
        o.limits.memory_limit_mb = ml.memory_limit_mb;
      if (o.limits.pids_max == 0)
        o.limits.pids_max = ml.pids_max;
    }
  if (o.session)
    {
      int r = open_session (cli, &o, &state_dir, &h, &err);
      if (r < 0)
        goto fail;
      if (r > 0)
        {
          run_options_clear (&o);
          return 0;
        }
    }
  if ((env = build_environment (policy, &o, &err)) == NULL)
    goto fail;
  if (h == NULL && (h = start_holder (cli, &o, policy, state_dir, &err)) == NULL)
    goto fail;
  kp_session_spec session = {
    .argv = argv + optind,
    .envp = env,
    .cwd = o.workdir,
    .as_root = o.as_root,
    .seccomp = o.seccomp,
  };
  if (kp_holder_join (h, &session, &status, &err) < 0)
    goto fail;
  kp_holder_release (h);
  run_options_clear (&o);
  return status;

fail:
  kp_holder_release (h);
  run_options_clear (&o);
  return kp_cli_fail (cli, err);
}
