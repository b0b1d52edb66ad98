/* cgroup.c — a cgroup per run, with the limits written, and its removal (cgroup.h).
 *
 * Finding where the caller may create a cgroup is most of the work. On cgroup v2 the
 * caller's own cgroup must be delegated to it (writable, with the controllers offered);
 * the controllers are enabled in its cgroup.subtree_control, which the kernel refuses
 * while processes live in it (the "no internal processes" rule), so we first move
 * ourselves into a leaf `karapace-self` beside the runs. On v1 each controller is its own
 * hierarchy and each needs a writable place: the caller's cgroup there (true for root),
 * or a `karapace-USER` directory an administrator created and chowned
 * (scripts/delegate-cgroup-v1). Every failure says which directory was tried and why. */
#include "cgroup.h"

#include "base/buf.h"
#include "base/fs.h"
#include "systemd-scope.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#define KP_PROC_FILE_MAX (16u << 20)
#define KP_CGROUP_DEFAULT_ROOT "/sys/fs/cgroup"
#define KP_CGROUP_SELF_LEAF "karapace-self"

#define HINT_V1                                                                               \
  "ask an administrator to delegate a cgroup v1 subtree to you (scripts/delegate-cgroup-v1 " \
  "%s, as root), or boot with systemd.unified_cgroup_hierarchy=1 (cgroup v2 with "           \
  "Delegate=yes), or run without resource limits"
#define HINT_V2                                                                               \
  "run inside a delegated cgroup (systemd-run --user --scope -p Delegate=yes karapace …), "   \
  "enable delegation for your user manager (systemctl edit user@.service: '[Service]' "      \
  "'Delegate=yes'), or run without resource limits"

struct kp_cgroup
{
  kp_cgroup_version version;
  char **dirs;     /* one per hierarchy (v1) or one (v2); NULL-terminated */
  char *memory_dir; /* the entry of dirs that carries the memory controller, or NULL */
};

uint64_t
kp_cgroup_shares_to_weight (uint64_t shares)
{
  if (shares < KP_CGROUP_SHARES_MIN)
    shares = KP_CGROUP_SHARES_MIN;
  if (shares > KP_CGROUP_SHARES_MAX)
    shares = KP_CGROUP_SHARES_MAX;
  return 1 + ((shares - 2) * 9999) / 262142;
}

kp_cgroup_version
kp_cgroup_get_version (const kp_cgroup *cg)
{
  return cg->version;
}

char *const *
kp_cgroup_get_dirs (const kp_cgroup *cg)
{
  return cg->dirs;
}

/* ---- small file helpers ------------------------------------------------------------- */

static char *
read_file (const char *dir, const char *file, kp_error **err)
{
  kp_cleanup_free char *path = xasprintf ("%s/%s", dir, file);
  return kp_file_read (path, KP_PROC_FILE_MAX, NULL, err);
}

/* Write value to dir/file in one write(2), as cgroup files want. 0 or -errno. */
static int
write_value (const char *dir, const char *file, const char *value)
{
  kp_cleanup_free char *path = xasprintf ("%s/%s", dir, file);
  kp_cleanup_close int fd = open (path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0 || write (fd, value, strlen (value)) < 0)
    return -errno;
  return 0;
}

static int
write_file (const char *dir, const char *file, const char *value, kp_error **err)
{
  int r = write_value (dir, file, value);
  if (r < 0)
    return kp_error_errno (err, -r, "write '%s' to '%s/%s'", value, dir, file);
  return 0;
}

/* The first line of dir/file, or NULL when unreadable. */
static char *
read_line (const char *dir, const char *file)
{
  kp_cleanup_error kp_error *ignored = NULL;
  char *text = read_file (dir, file, &ignored);
  if (text != NULL)
    text[strcspn (text, "\n")] = '\0';
  return text;
}

static bool
file_exists (const char *dir, const char *file)
{
  kp_cleanup_free char *path = xasprintf ("%s/%s", dir, file);
  return access (path, F_OK) == 0;
}

/* The value of `key` in a "key value" per line file (memory.events, oom_control). */
static bool
keyed_value (const char *text, const char *key, uint64_t *out)
{
  size_t klen = strlen (key);
  for (const char *line = text; line != NULL && *line != '\0';)
    {
      if (strncmp (line, key, klen) == 0 && line[klen] == ' ')
        {
          char *end;
          errno = 0;
          unsigned long long v = strtoull (line + klen + 1, &end, 10);
          if (errno == 0 && end != line + klen + 1)
            {
              *out = v;
              return true;
            }
        }
      line = strchr (line, '\n');
      if (line != NULL)
        line++;
    }
  return false;
}

/* Can the caller create cgroups below dir and move processes into them? When not, *why
 * says what is missing. */
static bool
dir_usable (const char *dir, char **why)
{
  struct stat st;
  if (stat (dir, &st) < 0)
    {
      *why = xasprintf ("%s: %s", dir, strerror (errno));
      return false;
    }
  if (!S_ISDIR (st.st_mode))
    {
      *why = xasprintf ("%s is not a directory", dir);
      return false;
    }
  kp_cleanup_free char *procs = xasprintf ("%s/cgroup.procs", dir);
  if (access (procs, F_OK) < 0)
    {
      *why = xasprintf ("%s is not a cgroup (no cgroup.procs)", dir);
      return false;
    }
  if (access (dir, W_OK | X_OK) < 0 || access (procs, W_OK) < 0)
    {
      *why = xasprintf ("%s is not writable by you", dir);
      return false;
    }
  return true;
}

static bool
valid_name (const char *name)
{
  if (name == NULL || name[0] == '\0' || name[0] == '.' || strlen (name) > 200)
    return false;
  for (const char *p = name; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')
          || *p == '.' || *p == '_' || *p == '-'))
      return false;
  return true;
}

static char *
caller_name (const kp_cgroup_host *host)
{
  if (host != NULL && host->user != NULL)
    return xstrdup (host->user);
  struct passwd *pw = getpwuid (geteuid ());
  if (pw != NULL && pw->pw_name != NULL)
    return xstrdup (pw->pw_name);
  return xasprintf ("%u", (unsigned) geteuid ());
}

/* ---- where the hierarchies are ------------------------------------------------------ */

typedef struct host_view
{
  const char *root;       /* injected fake root, or NULL */
  char *mountinfo;        /* host's, when root is NULL */
  kp_cgroup_entries self; /* the caller's cgroups */
  char *user;
} host_view;

static void
host_view_clear (host_view *h)
{
  free (h->mountinfo);
  kp_cgroup_entries_clear (&h->self);
  free (h->user);
}

static int
host_view_load (host_view *h, const kp_cgroup_host *host, kp_error **err)
{
  memset (h, 0, sizeof *h);
  h->root = host != NULL ? host->root : NULL;
  h->user = caller_name (host);
  kp_cleanup_free char *self = NULL;
  const char *self_text = host != NULL ? host->proc_cgroup : NULL;
  if (self_text == NULL)
    {
      const char *path = host != NULL && host->proc_cgroup_path ? host->proc_cgroup_path
                                                                 : "/proc/self/cgroup";
      self = kp_file_read (path, KP_PROC_FILE_MAX, NULL, err);
      if (self == NULL)
        return -1;
      self_text = self;
    }
  kp_cgroup_parse_proc (self_text, &h->self);
  if (h->root == NULL)
    {
      h->mountinfo = kp_file_read ("/proc/self/mountinfo", KP_PROC_FILE_MAX, NULL, err);
      if (h->mountinfo == NULL)
        return -1;
    }
  return 0;
}

/* Is the unified hierarchy where the controllers are (pure cgroup v2)? */
static bool
host_is_v2 (const host_view *h)
{
  if (h->root != NULL)
    return file_exists (h->root, "cgroup.controllers");
  struct statfs sfs;
  return statfs (KP_CGROUP_DEFAULT_ROOT, &sfs) == 0
         && (unsigned long) sfs.f_type == CGROUP2_SUPER_MAGIC;
}

/* With a fake root: the directory of root whose comma-separated name lists controller. */
static char *
fake_v1_mount_point (const char *root, const char *controller)
{
  kp_cleanup_dir DIR *d = opendir (root);
  if (d == NULL)
    return NULL;
  struct dirent *de;
  while ((de = readdir (d)) != NULL)
    if (de->d_name[0] != '.' && kp_cgroup_list_contains (de->d_name, ',', controller))
      return xasprintf ("%s/%s", root, de->d_name);
  return NULL;
}

/* The top of a hierarchy as the caller sees it (controller NULL: the unified one). */
static char *
hierarchy_top (const host_view *h, const char *controller)
{
  if (h->root != NULL)
    return controller == NULL ? xstrdup (h->root) : fake_v1_mount_point (h->root, controller);
  return kp_cgroup_mount_point (h->mountinfo, controller);
}

/* A cgroup of a hierarchy (controller NULL: the unified one), as a host directory, or
 * NULL. */
static char *
entry_dir (const host_view *h, const char *controller, const char *path)
{
  if (h->root == NULL)
    return kp_cgroup_mount_dir (h->mountinfo, controller, path);
  kp_cleanup_free char *top = hierarchy_top (h, controller);
  if (top == NULL)
    return NULL;
  return strcmp (path, "/") == 0 ? kp_steal_pointer (&top) : xasprintf ("%s%s", top, path);
}

/* The caller's own cgroup in a hierarchy, as a host directory, or NULL. */
static char *
own_dir (const host_view *h, const char *controller)
{
  const kp_cgroup_entry *en = kp_cgroup_entries_find (&h->self, controller);
  return en ? entry_dir (h, controller, en->path) : NULL;
}

/* ---- creating --------------------------------------------------------------------- */

static int
make_cgroup_dir (const char *path, kp_error **err)
{
  if (mkdir (path, 0755) < 0)
    {
      int e = errno;
      kp_error_errno (err, e, "create cgroup '%s'", path);
      kp_error_set_status (err, KP_EXIT_RUNTIME);
      if (e == EEXIST)
        kp_error_hint (err, "another run uses this name; remove '%s' if it is stale", path);
      return -1;
    }
  return 0;
}

static int
runtime_error (kp_error **err, const char *hint, const char *fmt, ...) KP_PRINTF (3, 4);

static int
runtime_error (kp_error **err, const char *hint, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  kp_cleanup_free char *msg = xvasprintf (fmt, ap);
  va_end (ap);
  kp_error_set (err, KP_EXIT_RUNTIME, "%s", msg);
  if (hint != NULL)
    kp_error_hint (err, "%s", hint);
  return -1;
}

static int
write_u64 (const char *dir, const char *file, uint64_t v, kp_error **err)
{
  char value[32];
  snprintf (value, sizeof value, "%llu", (unsigned long long) v);
  return write_file (dir, file, value, err);
}

static int
memory_bytes (const kp_cgroup_limits *l, uint64_t *bytes, kp_error **err)
{
  if (__builtin_mul_overflow (l->memory_limit_mb, (uint64_t) 1 << 20, bytes)
      || *bytes > (uint64_t) INT64_MAX)
    return runtime_error (err, NULL, "memory limit of %llu MiB is too large",
                          (unsigned long long) l->memory_limit_mb);
  return 0;
}

static int
write_limits_v1 (const char *controller, const char *dir, const kp_cgroup_limits *l,
                 kp_error **err)
{
  if (strcmp (controller, "memory") == 0)
    {
      uint64_t bytes;
      if (memory_bytes (l, &bytes, err) < 0 || write_u64 (dir, "memory.limit_in_bytes", bytes, err) < 0)
        return -1;
      /* With swap accounting the limit covers swap too, so the OOM killer acts at the
       * limit instead of the run swapping without end. Without it (no such file) there is
       * no swap limit to set. */
      if (file_exists (dir, "memory.memsw.limit_in_bytes")
          && write_u64 (dir, "memory.memsw.limit_in_bytes", bytes, err) < 0)
        return -1;
      return 0;
    }
  if (strcmp (controller, "cpu") == 0)
    {
      uint64_t shares = l->cpu_shares;
      if (shares < KP_CGROUP_SHARES_MIN)
        shares = KP_CGROUP_SHARES_MIN;
      if (shares > KP_CGROUP_SHARES_MAX)
        shares = KP_CGROUP_SHARES_MAX;
      return write_u64 (dir, "cpu.shares", shares, err);
    }
  return write_u64 (dir, "pids.max", l->pids_max, err);
}

static void
cgroup_free (kp_cgroup *cg)
{
  if (cg == NULL)
    return;
  kp_strv_free (cg->dirs);
  free (cg);
}

/* cgroup v1: one directory per needed hierarchy. */
static kp_cgroup *
create_v1 (const host_view *h, const kp_cgroup_limits *l, const char *name, kp_error **err)
{
  const char *wanted[3];
  size_t n_wanted = 0;
  if (l->memory_limit_mb)
    wanted[n_wanted++] = "memory";
  if (l->cpu_shares)
    wanted[n_wanted++] = "cpu";
  if (l->pids_max)
    wanted[n_wanted++] = "pids";

  /* Find a place in every hierarchy before creating anything. */
  char *bases[3] = { NULL, NULL, NULL };
  kp_cleanup_free char *hint = xasprintf (HINT_V1, h->user);
  int r = 0;
  for (size_t i = 0; i < n_wanted && r == 0; i++)
    {
      kp_cleanup_free char *top = hierarchy_top (h, wanted[i]);
      if (top == NULL)
        {
          r = runtime_error (err,
                             "enable the controller in the kernel (e.g. cgroup_enable=memory) "
                             "and mount its hierarchy under /sys/fs/cgroup",
                             "%s limit requested, but no cgroup v1 hierarchy with the %s "
                             "controller is mounted",
                             wanted[i], wanted[i]);
          break;
        }
      kp_cleanup_free char *own = own_dir (h, wanted[i]);
      kp_cleanup_free char *own_why = NULL;
      if (own != NULL && dir_usable (own, &own_why))
        {
          bases[i] = kp_steal_pointer (&own);
          continue;
        }
      kp_cleanup_free char *delegated = xasprintf ("%s/karapace-%s", top, h->user);
      kp_cleanup_free char *delegated_why = NULL;
      if (dir_usable (delegated, &delegated_why))
        {
          bases[i] = kp_steal_pointer (&delegated);
          continue;
        }
      r = runtime_error (err, hint,
                         "%s limit requested, but no writable cgroup v1 %s hierarchy: %s; %s",
                         wanted[i], wanted[i],
                         own_why ? own_why : "your cgroup there is unknown", delegated_why);
    }

  kp_cgroup *cg = NULL;
  if (r == 0)
    {
      cg = xcalloc (1, sizeof *cg);
      cg->version = KP_CGROUP_V1;
      cg->dirs = xcalloc (n_wanted + 1, sizeof *cg->dirs);
      size_t made = 0;
      for (size_t i = 0; i < n_wanted && r == 0; i++)
        {
          kp_cleanup_free char *dir = xasprintf ("%s/%s", bases[i], name);
          if (make_cgroup_dir (dir, err) < 0)
            {
              r = -1;
              break;
            }
          cg->dirs[made++] = xstrdup (dir);
          if (strcmp (wanted[i], "memory") == 0)
            cg->memory_dir = cg->dirs[made - 1];
          if (write_limits_v1 (wanted[i], dir, l, err) < 0)
            {
              kp_error_prefix (err, "set the %s limit", wanted[i]);
              kp_error_set_status (err, KP_EXIT_RUNTIME);
              r = -1;
            }
        }
      if (r < 0)
        {
          kp_cgroup_destroy (cg, NULL);
          cg = NULL;
        }
    }
  for (size_t i = 0; i < KP_N_ELEMENTS (bases); i++)
    free (bases[i]);
  return cg;
}

/* Move every process of dir into dir/karapace-self so that dir may enable controllers
 * for its children. Usually only we live there (a scope made for karapace); a process of
 * the same user that shares the scope is moved too, since the leaf keeps every limit its
 * old cgroup had. */
static int
evacuate_to_leaf (const char *dir, kp_error **err)
{
  kp_cleanup_free char *leaf = xasprintf ("%s/" KP_CGROUP_SELF_LEAF, dir);
  if (mkdir (leaf, 0755) < 0 && errno != EEXIST)
    return kp_error_errno (err, errno, "create cgroup '%s'", leaf);
  for (int round = 0; round < 8; round++)
    {
      kp_cleanup_free char *procs = read_file (dir, "cgroup.procs", err);
      if (procs == NULL)
        return -1;
      if (procs[0] == '\0')
        return 0;
      for (char *line = procs; *line;)
        {
          char *nl = strchr (line, '\n');
          if (nl != NULL)
            *nl = '\0';
          /* A process may exit meanwhile (ESRCH); the next round rereads the list. */
          int r = *line ? write_value (leaf, "cgroup.procs", line) : 0;
          if (r < 0 && r != -ESRCH)
            return kp_error_errno (err, -r, "move process %s into '%s'", line, leaf);
          line = nl ? nl + 1 : line + strlen (line);
        }
    }
  return kp_error_errno (err, EBUSY, "empty cgroup '%s'", dir);
}

static const char *const v2_controllers[] = { "memory", "cpu", "pids" };

/* Enable controllers ("+memory +pids") for the children of our own cgroup dir. */
static int
enable_controllers (const char *dir, const char *enable, kp_error **err)
{
  int r = write_value (dir, "cgroup.subtree_control", enable);
  /* EBUSY: processes live in our cgroup (the "no internal processes" rule). */
  if (r == -EBUSY)
    {
      if (evacuate_to_leaf (dir, err) < 0)
        goto failed;
      r = write_value (dir, "cgroup.subtree_control", enable);
    }
  if (r < 0)
    {
      kp_error_errno (err, -r, "write '%s' to '%s/cgroup.subtree_control'", enable, dir);
      goto failed;
    }
  return 0;

failed:
  kp_error_prefix (err, "enable controllers for the runs in '%s'", dir);
  kp_error_set_status (err, KP_EXIT_RUNTIME);
  kp_error_hint (err, "%s", HINT_V2);
  return -1;
}

/* Our cgroup is not ours to divide: ask the systemd user manager for a delegated scope
 * holding us, then look again. Returns 1 when we moved, 0 when there is no manager to ask
 * (err untouched), -1 when asking failed. */
static int
move_into_systemd_scope (host_view *h, const kp_cgroup_host *host, const char *name,
                         kp_error **err)
{
  kp_cleanup_free char *bus = host != NULL && host->bus_address ? xstrdup (host->bus_address)
                                                                : kp_systemd_user_bus ();
  if (bus == NULL || bus[0] == '\0')
    return 0;
  kp_cleanup_free char *unit = xasprintf ("%s.scope", name);
  if (kp_systemd_delegated_scope (bus, unit, err) < 0)
    {
      kp_error_prefix (err, "resource limits");
      kp_error_hint (err, "%s", HINT_V2);
      return -1;
    }
  host_view_clear (h);
  if (host_view_load (h, host, err) < 0)
    return kp_error_prefix (err, "resource limits: after moving into %s", unit);
  return 1;
}

static kp_cgroup *
create_v2 (host_view *h, const kp_cgroup_host *host, const kp_cgroup_limits *l,
           const char *name, kp_error **err)
{
  const bool want[3] = { l->memory_limit_mb != 0, l->cpu_shares != 0, l->pids_max != 0 };
  kp_cleanup_free char *own = own_dir (h, NULL);
  kp_cleanup_free char *why = NULL;
  /* A process that already moved itself into the leaf makes its runs beside it. */
  if (own != NULL && kp_str_has_suffix (own, "/" KP_CGROUP_SELF_LEAF))
    own[strlen (own) - strlen ("/" KP_CGROUP_SELF_LEAF)] = '\0';
  if (own == NULL)
    {
      runtime_error (err, HINT_V2,
                     "resource limits requested, but your cgroup v2 cgroup is unknown (no "
                     "'0::' line in /proc/self/cgroup, or it is not mounted)");
      return NULL;
    }
  if (!dir_usable (own, &why) || !file_exists (own, "cgroup.subtree_control"))
    {
      int moved = move_into_systemd_scope (h, host, name, err);
      if (moved < 0)
        return NULL;
      if (moved > 0)
        {
          free (own);
          free (why);
          why = NULL;
          own = own_dir (h, NULL);
        }
      if (own == NULL || !dir_usable (own, &why)
          || !file_exists (own, "cgroup.subtree_control"))
        {
          runtime_error (err, HINT_V2,
                         moved > 0 ? "resource limits requested, but the scope systemd made "
                                     "for us is not delegated: %s"
                                   : "resource limits requested, but your cgroup is not "
                                     "delegated to you: %s",
                         why ? why : own ? own : "no cgroup v2 entry in /proc/self/cgroup");
          return NULL;
        }
    }

  kp_cleanup_free char *available = read_line (own, "cgroup.controllers");
  kp_cleanup_free char *enabled = read_line (own, "cgroup.subtree_control");
  kp_cleanup_buf kp_buf missing = KP_BUF_INIT;
  kp_cleanup_buf kp_buf enable = KP_BUF_INIT;
  for (size_t i = 0; i < KP_N_ELEMENTS (v2_controllers); i++)
    {
      if (!want[i])
        continue;
      if (available == NULL || !kp_cgroup_list_contains (available, ' ', v2_controllers[i]))
        kp_buf_printf (&missing, "%s%s", missing.len ? ", " : "", v2_controllers[i]);
      if (enabled == NULL || !kp_cgroup_list_contains (enabled, ' ', v2_controllers[i]))
        kp_buf_printf (&enable, "%s+%s", enable.len ? " " : "", v2_controllers[i]);
    }
  if (missing.len > 0)
    {
      runtime_error (err, HINT_V2,
                     "resource limits requested, but your cgroup %s does not offer: %s", own,
                     kp_buf_str (&missing));
      return NULL;
    }
  if (enable.len > 0 && enable_controllers (own, kp_buf_str (&enable), err) < 0)
    return NULL;

  kp_cgroup *cg = xcalloc (1, sizeof *cg);
  cg->version = KP_CGROUP_V2;
  cg->dirs = xcalloc (2, sizeof *cg->dirs);
  kp_cleanup_free char *dir = xasprintf ("%s/%s", own, name);
  if (make_cgroup_dir (dir, err) < 0)
    {
      cgroup_free (cg);
      return NULL;
    }
  cg->dirs[0] = kp_steal_pointer (&dir);
  const char *d = cg->dirs[0];
  int r = 0;
  if (l->memory_limit_mb)
    {
      uint64_t bytes;
      cg->memory_dir = cg->dirs[0];
      r = memory_bytes (l, &bytes, err);
      if (r == 0)
        r = write_u64 (d, "memory.max", bytes, err);
      /* Swap would let the run outgrow its limit unseen: the limit is memory and swap. */
      if (r == 0 && file_exists (d, "memory.swap.max"))
        r = write_file (d, "memory.swap.max", "0", err);
    }
  if (r == 0 && l->cpu_shares)
    r = write_u64 (d, "cpu.weight", kp_cgroup_shares_to_weight (l->cpu_shares), err);
  if (r == 0 && l->pids_max)
    r = write_u64 (d, "pids.max", l->pids_max, err);
  if (r < 0)
    {
      kp_error_prefix (err, "set resource limits");
      kp_error_set_status (err, KP_EXIT_RUNTIME);
      kp_cgroup_destroy (cg, NULL);
      return NULL;
    }
  return cg;

}

kp_cgroup *
kp_cgroup_create (const kp_cgroup_limits *limits, const char *name, const kp_cgroup_host *host,
                  kp_error **err)
{
  if (limits == NULL
      || (limits->cpu_shares == 0 && limits->memory_limit_mb == 0 && limits->pids_max == 0))
    return NULL;
  if (!valid_name (name))
    return runtime_error (err, NULL, "invalid cgroup name '%s'", name ? name : "(null)"), NULL;

  host_view h;
  kp_cgroup *cg = NULL;
  if (host_view_load (&h, host, err) < 0)
    {
      kp_error_prefix (err, "resource limits");
      kp_error_set_status (err, KP_EXIT_RUNTIME);
    }
  else if (host_is_v2 (&h))
    cg = create_v2 (&h, host, limits, name, err);
  else
    cg = create_v1 (&h, limits, name, err);
  host_view_clear (&h);
  return cg;
}

/* ---- finding a run's cgroup again ------------------------------------------------ */

bool
kp_cgroup_is_run_name (const char *name)
{
  const char *dash = strrchr (name, '-');
  return kp_str_has_prefix (name, "karapace-") && dash != NULL && dash > name + 8
         && dash[1] != '\0' && strspn (dash + 1, "0123456789") == strlen (dash + 1);
}

kp_cgroup *
kp_cgroup_of_process (pid_t pid, const kp_cgroup_host *host, kp_error **err)
{
  char proc[64];
  snprintf (proc, sizeof proc, "/proc/%d/cgroup", (int) pid);
  kp_cgroup_host where = host ? *host : (kp_cgroup_host){ 0 };
  kp_cleanup_free char *text = NULL;
  if (where.proc_cgroup == NULL)
    {
      text = kp_file_read (where.proc_cgroup_path ? where.proc_cgroup_path : proc,
                           KP_PROC_FILE_MAX, NULL, err);
      if (text == NULL)
        return NULL;
      where.proc_cgroup = text;
    }
  /* Most holders have no limits: then there is no mount table to read. */
  {
    kp_cgroup_entries entries;
    kp_cgroup_parse_proc (where.proc_cgroup, &entries);
    bool any = false;
    for (size_t i = 0; i < entries.len && !any; i++)
      {
        const char *base = strrchr (entries.entries[i].path, '/');
        any = base != NULL && kp_cgroup_is_run_name (base + 1);
      }
    kp_cgroup_entries_clear (&entries);
    if (!any)
      return NULL;
  }
  host_view h;
  if (host_view_load (&h, &where, err) < 0)
    {
      host_view_clear (&h);
      return NULL;
    }
  bool v2 = host_is_v2 (&h);
  kp_cgroup *cg = xcalloc (1, sizeof *cg);
  cg->version = v2 ? KP_CGROUP_V2 : KP_CGROUP_V1;
  cg->dirs = xcalloc (h.self.len + 1, sizeof *cg->dirs);
  size_t n = 0;
  for (size_t i = 0; i < h.self.len; i++)
    {
      const kp_cgroup_entry *en = &h.self.entries[i];
      const char *base = strrchr (en->path, '/');
      if ((en->hierarchy == 0) != v2 || base == NULL || !kp_cgroup_is_run_name (base + 1))
        continue;
      /* A v1 hierarchy by its first controller ("cpu" of "cpu,cpuacct"). */
      kp_cleanup_free char *controller
          = v2 ? NULL : xstrndup (en->controllers, strcspn (en->controllers, ","));
      char *dir = entry_dir (&h, controller, en->path);
      if (dir == NULL)
        continue;
      cg->dirs[n++] = dir;
      if (v2 || kp_cgroup_list_contains (en->controllers, ',', "memory"))
        cg->memory_dir = dir;
    }
  host_view_clear (&h);
  if (n == 0)
    {
      cgroup_free (cg);
      return NULL;
    }
  return cg;
}

void
kp_cgroup_forget (kp_cgroup *cg)
{
  cgroup_free (cg);
}

/* ---- using ------------------------------------------------------------------------ */

int
kp_cgroup_attach (kp_cgroup *cg, pid_t pid, kp_error **err)
{
  char value[32];
  snprintf (value, sizeof value, "%d", (int) pid);
  for (char **d = cg->dirs; *d != NULL; d++)
    if (write_file (*d, "cgroup.procs", value, err) < 0)
      {
        kp_error_prefix (err, "move process %d into its cgroup", (int) pid);
        kp_error_set_status (err, KP_EXIT_RUNTIME);
        return -1;
      }
  return 0;
}

int
kp_cgroup_memory_events_read (const kp_cgroup *cg, kp_cgroup_memory_events *ev, kp_error **err)
{
  memset (ev, 0, sizeof *ev);
  if (cg->memory_dir == NULL)
    return 0;
  if (cg->version == KP_CGROUP_V2)
    {
      kp_cleanup_free char *text = read_file (cg->memory_dir, "memory.events", err);
      if (text == NULL)
        return -1;
      keyed_value (text, "oom_kill", &ev->oom_kills);
      keyed_value (text, "max", &ev->limit_hits);
      return 0;
    }
  kp_cleanup_free char *oom = read_file (cg->memory_dir, "memory.oom_control", err);
  kp_cleanup_free char *failcnt = oom ? read_file (cg->memory_dir, "memory.failcnt", err) : NULL;
  if (failcnt == NULL)
    return -1;
  ev->limit_hits = strtoull (failcnt, NULL, 10);
  /* With swap accounting the memory+swap limit (set to the same value) is often the one
   * that is hit. */
  kp_cleanup_free char *memsw = read_line (cg->memory_dir, "memory.memsw.failcnt");
  if (memsw != NULL && strtoull (memsw, NULL, 10) > ev->limit_hits)
    ev->limit_hits = strtoull (memsw, NULL, 10);
  if (!keyed_value (oom, "oom_kill", &ev->oom_kills))
    {
      uint64_t under = 0;
      keyed_value (oom, "under_oom", &under);
      ev->oom_kills = under ? 1 : 0;
    }
  return 0;
}

/* ---- destroying ------------------------------------------------------------------- */

static void
sleep_ms (long ms)
{
  struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
  while (nanosleep (&ts, &ts) < 0 && errno == EINTR)
    ;
}

/* SIGKILL every process listed in dir/cgroup.procs. Returns how many were listed. */
static size_t
kill_listed (const char *dir)
{
  kp_cleanup_free char *procs = read_file (dir, "cgroup.procs", NULL);
  size_t n = 0;
  for (char *p = procs; p != NULL && *p;)
    {
      char *end;
      long pid = strtol (p, &end, 10);
      if (end == p)
        break;
      if (pid > 0)
        {
          kill ((pid_t) pid, SIGKILL);
          n++;
        }
      p = end;
      while (*p == '\n')
        p++;
    }
  return n;
}

static int
destroy_dir (const char *dir, kp_cgroup_version version, kp_error **err)
{
  bool killed = version == KP_CGROUP_V2 && write_file (dir, "cgroup.kill", "1", NULL) == 0;
  /* Killed processes leave the cgroup once they have exited: retry for about 2 s. */
  for (int attempt = 0; attempt < 200; attempt++)
    {
      if (!killed)
        kill_listed (dir);
      if (rmdir (dir) == 0 || errno == ENOENT)
        return 0;
      if (errno != EBUSY)
        break;
      sleep_ms (attempt < 10 ? 1 : 10);
    }
  int e = errno;
  kp_error_errno (err, e, "remove cgroup '%s'", dir);
  kp_error_set_status (err, KP_EXIT_RUNTIME);
  kp_error_hint (err, "processes may remain inside; see %s/cgroup.procs", dir);
  return -1;
}

int
kp_cgroup_destroy (kp_cgroup *cg, kp_error **err)
{
  if (cg == NULL)
    return 0;
  int r = 0;
  for (char **d = cg->dirs; *d != NULL; d++)
    if (destroy_dir (*d, cg->version, r == 0 ? err : NULL) < 0)
      r = -1;
  cgroup_free (cg);
  return r;
}

void
kp_cgroup_destroyp (kp_cgroup **cg)
{
  kp_cgroup_destroy (kp_steal_pointer (cg), NULL);
}
