/* doctor-cgroup.c — can the runtime apply resource limits (memory, cpu, pids)?
 *
 * Limits need a cgroup the caller may write: on cgroup v2 a delegated subtree (systemd
 * `Delegate=yes`, reached directly or through a transient scope of the user manager); on
 * v1 a writable directory in each controller's hierarchy, which hosts rarely grant to
 * users. The version comes from the filesystem type of /sys/fs/cgroup, the caller's
 * cgroups from /proc/self/cgroup, and where each hierarchy is mounted from
 * /proc/self/mountinfo, both read by the runtime's own parsers (sandbox/cgroup.h).
 * Missing limits never stop an environment from running, so this check warns, never
 * fails. */
#include "doctor-internal.h"

#include "base/buf.h"
#include "base/fs.h"
#include "sandbox/cgroup.h"

#include <errno.h>
#include <stdlib.h>
#include <linux/magic.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#define KP_PROC_FILE_MAX (16u << 20)

static const char *const wanted_controllers[] = { "memory", "cpu", "pids" };

#define FIX_DELEGATE                                                                          \
  "enable delegation: systemctl edit user@.service, add '[Service]' 'Delegate=yes', then "    \
  "log in again"
#define FIX_V1                                                                                \
  "ask an administrator to delegate a cgroup v1 subtree to you (scripts/delegate-cgroup-v1 "  \
  "USER, as root), or boot with systemd.unified_cgroup_hierarchy=1 (cgroup v2, with "         \
  "Delegate=yes for user@.service), or run as root; until then resource limits will be "     \
  "refused"

/* ---- the check ---------------------------------------------------------------------- */

/* Can the caller create cgroups below dir and move processes into them? */
static bool
cgroup_dir_writable (const char *dir, bool v2)
{
  kp_cleanup_free char *procs = xasprintf ("%s/cgroup.procs", dir);
  if (access (dir, W_OK | X_OK) < 0 || access (procs, W_OK) < 0)
    return false;
  if (!v2)
    return true;
  kp_cleanup_free char *subtree = xasprintf ("%s/cgroup.subtree_control", dir);
  return access (subtree, W_OK) == 0;
}

/* The controllers available in a v2 cgroup (cgroup.controllers), or NULL. */
static char *
read_v2_controllers (const char *dir)
{
  kp_cleanup_free char *path = xasprintf ("%s/cgroup.controllers", dir);
  kp_cleanup_error kp_error *err = NULL;
  char *text = kp_file_read (path, 4096, NULL, &err);
  if (text != NULL)
    text[strcspn (text, "\n")] = '\0';
  return text;
}

/* Append the wanted controllers missing from a space-separated list to buf. */
static size_t
missing_controllers (const char *available, kp_buf *buf)
{
  size_t missing = 0;
  for (size_t i = 0; i < KP_N_ELEMENTS (wanted_controllers); i++)
    if (available == NULL || !kp_cgroup_list_contains (available, ' ', wanted_controllers[i]))
      {
        kp_buf_printf (buf, "%s%s", missing++ ? ", " : "", wanted_controllers[i]);
      }
  return missing;
}

static bool
is_socket (const char *path)
{
  struct stat st;
  return stat (path, &st) == 0 && S_ISSOCK (st.st_mode);
}

/* A systemd user manager we could ask for a transient scope. */
static bool
user_manager_reachable (uid_t uid)
{
  const char *xdg = getenv ("XDG_RUNTIME_DIR");
  if (xdg != NULL && xdg[0] == '/')
    {
      kp_cleanup_free char *priv = xasprintf ("%s/systemd/private", xdg);
      kp_cleanup_free char *bus = xasprintf ("%s/bus", xdg);
      if (is_socket (priv) || is_socket (bus))
        return true;
    }
  kp_cleanup_free char *priv = xasprintf ("/run/user/%u/systemd/private", (unsigned) uid);
  kp_cleanup_free char *bus = xasprintf ("/run/user/%u/bus", (unsigned) uid);
  return is_socket (priv) || is_socket (bus);
}

static int
check_v2 (kp_doctor_ctx *ctx, kp_check *c, const kp_cgroup_entries *cg, const char *mountinfo)
{
  const kp_cgroup_entry *en = kp_cgroup_entries_find (cg, NULL);
  if (en == NULL)
    return kp_check_set (c, KP_CHECK_WARN, FIX_DELEGATE,
                         "cgroup v2, but /proc/self/cgroup has no '0::' line");
  kp_cleanup_free char *dir = kp_cgroup_mount_dir (mountinfo, NULL, en->path);
  if (dir == NULL)
    dir = xasprintf ("/sys/fs/cgroup%s", strcmp (en->path, "/") == 0 ? "" : en->path);
  kp_cleanup_free char *available = read_v2_controllers (dir);
  kp_cleanup_buf kp_buf missing = KP_BUF_INIT;
  size_t n_missing = missing_controllers (available, &missing);

  if (cgroup_dir_writable (dir, true))
    {
      if (n_missing == 0)
        return kp_check_set (c, KP_CHECK_OK, NULL,
                             "cgroup v2; your cgroup %s is writable (delegated) and offers "
                             "memory, cpu and pids",
                             dir);
      kp_cleanup_free char *fix = xasprintf (
          "enable the controllers for your cgroup (write '+memory +cpu +pids' to the parent's "
          "cgroup.subtree_control), or %s",
          FIX_DELEGATE);
      return kp_check_set (c, KP_CHECK_WARN, fix,
                           "cgroup v2; your cgroup %s is writable but lacks %s: those limits "
                           "will be refused",
                           dir, kp_buf_str (&missing));
    }

  if (user_manager_reachable (ctx->uid))
    {
      kp_cleanup_free char *top = kp_cgroup_mount_dir (mountinfo, NULL, "/");
      kp_cleanup_free char *service
          = xasprintf ("%s/user.slice/user-%u.slice/user@%u.service", top ? top : "/sys/fs/cgroup",
                       (unsigned) ctx->uid, (unsigned) ctx->uid);
      kp_cleanup_free char *delegated = read_v2_controllers (service);
      kp_cleanup_buf kp_buf svc_missing = KP_BUF_INIT;
      if (delegated == NULL)
        return kp_check_set (c, KP_CHECK_WARN, FIX_DELEGATE,
                             "cgroup v2; a systemd user manager is reachable but %s does not "
                             "exist, and your cgroup %s is not writable",
                             service, dir);
      if (missing_controllers (delegated, &svc_missing) > 0)
        return kp_check_set (c, KP_CHECK_WARN, FIX_DELEGATE,
                             "cgroup v2; the systemd user manager's cgroup %s lacks %s: those "
                             "limits will be refused",
                             service, kp_buf_str (&svc_missing));
      /* The runtime cannot ask for the scope yet (docs/cgroups.md): say so, not ok. */
      return kp_check_set (c, KP_CHECK_WARN,
                           "run karapace inside a delegated scope: systemd-run --user --scope "
                           "-p Delegate=yes karapace …",
                           "cgroup v2; the systemd user manager could give limits through a "
                           "transient scope (%s offers memory, cpu and pids), but the runtime "
                           "does not create such scopes yet, and your cgroup %s is not "
                           "writable",
                           service, dir);
    }
  return kp_check_set (c, KP_CHECK_WARN, FIX_DELEGATE,
                       "cgroup v2; your cgroup %s is not writable and no systemd user manager "
                       "is reachable: resource limits will be refused",
                       dir);
}

static int
check_v1 (kp_doctor_ctx *ctx, kp_check *c, const kp_cgroup_entries *cg, const char *mountinfo,
          bool hybrid)
{
  kp_cleanup_buf kp_buf detail = KP_BUF_INIT;
  kp_cleanup_buf kp_buf missing = KP_BUF_INIT;
  kp_cleanup_buf kp_buf readonly = KP_BUF_INIT;
  kp_cleanup_buf kp_buf delegated_dirs = KP_BUF_INIT;
  size_t n_missing = 0, n_readonly = 0;

  /* In hybrid mode a controller may be bound to the unified hierarchy instead. */
  kp_cleanup_free char *v2_dir = NULL;
  kp_cleanup_free char *v2_available = NULL;
  const kp_cgroup_entry *v2 = kp_cgroup_entries_find (cg, NULL);
  if (hybrid && v2 != NULL)
    {
      v2_dir = kp_cgroup_mount_dir (mountinfo, NULL, v2->path);
      if (v2_dir != NULL)
        v2_available = read_v2_controllers (v2_dir);
    }

  kp_buf_puts (&detail, "cgroup v1");
  if (hybrid)
    {
      kp_cleanup_free char *top = kp_cgroup_mount_dir (mountinfo, NULL, "/");
      kp_cleanup_free char *top_ctl = top ? read_v2_controllers (top) : NULL;
      bool none = top_ctl == NULL || top_ctl[0] == '\0';
      kp_buf_printf (&detail, " (hybrid: the cgroup2 hierarchy%s%s holds %s%s)",
                     top ? " at " : "", top ? top : "", none ? "no controllers" : "only ",
                     none ? "" : top_ctl);
    }

  for (size_t i = 0; i < KP_N_ELEMENTS (wanted_controllers); i++)
    {
      const char *name = wanted_controllers[i];
      const kp_cgroup_entry *en = kp_cgroup_entries_find (cg, name);
      kp_cleanup_free char *dir = NULL;
      bool v2_bound = false;
      if (en != NULL)
        dir = kp_cgroup_mount_dir (mountinfo, name, en->path);
      else if (v2_available != NULL && kp_cgroup_list_contains (v2_available, ' ', name))
        {
          dir = xstrdup (v2_dir);
          v2_bound = true;
        }
      struct stat st;
      if (dir == NULL || stat (dir, &st) < 0 || !S_ISDIR (st.st_mode))
        {
          kp_buf_printf (&missing, "%s%s", n_missing++ ? ", " : "", name);
          continue;
        }
      if (cgroup_dir_writable (dir, v2_bound))
        continue;
      /* The runtime also uses a karapace-USER directory an administrator delegated. */
      kp_cleanup_free char *top = v2_bound ? NULL : kp_cgroup_mount_point (mountinfo, name);
      kp_cleanup_free char *delegated
          = top != NULL && ctx->user != NULL ? xasprintf ("%s/karapace-%s", top, ctx->user) : NULL;
      if (delegated != NULL && cgroup_dir_writable (delegated, false))
        kp_buf_printf (&delegated_dirs, "%s%s", delegated_dirs.len ? ", " : "", delegated);
      else
        kp_buf_printf (&readonly, "%s%s", n_readonly++ ? ", " : "", dir);
    }

  if (n_missing > 0)
    kp_buf_printf (&detail, "; missing: %s", kp_buf_str (&missing));
  else
    kp_buf_puts (&detail, "; memory, cpu and pids mounted");
  if (n_readonly > 0)
    kp_buf_printf (&detail, "; not writable by you: %s: resource limits will be refused",
                   kp_buf_str (&readonly));
  else if (n_missing < KP_N_ELEMENTS (wanted_controllers))
    kp_buf_puts (&detail, "; your cgroups are writable");
  if (delegated_dirs.len > 0)
    kp_buf_printf (&detail, " (delegated to you: %s)", kp_buf_str (&delegated_dirs));

  if (n_missing == 0 && n_readonly == 0)
    return kp_check_set (c, KP_CHECK_OK, NULL, "%s", kp_buf_str (&detail));
  if (n_readonly > 0 || ctx->root)
    return kp_check_set (c, KP_CHECK_WARN, FIX_V1, "%s", kp_buf_str (&detail));
  return kp_check_set (c, KP_CHECK_WARN,
                       "enable the missing controllers in the kernel (e.g. cgroup_enable=memory) "
                       "or boot with systemd.unified_cgroup_hierarchy=1",
                       "%s", kp_buf_str (&detail));
}

int
kp_doctor_check_cgroup (kp_doctor_ctx *ctx, kp_check *c)
{
  struct statfs sfs;
  if (statfs ("/sys/fs/cgroup", &sfs) < 0)
    return kp_check_set (c, KP_CHECK_WARN, "mount the cgroup2 filesystem on /sys/fs/cgroup",
                         "cannot inspect /sys/fs/cgroup: %s: resource limits will be refused",
                         strerror (errno));

  kp_cleanup_error kp_error *err = NULL;
  kp_cleanup_free char *self = kp_file_read ("/proc/self/cgroup", KP_PROC_FILE_MAX, NULL, &err);
  kp_cleanup_free char *mountinfo
      = self ? kp_file_read ("/proc/self/mountinfo", KP_PROC_FILE_MAX, NULL, &err) : NULL;
  if (mountinfo == NULL)
    {
      kp_cleanup_free char *msg = kp_error_describe (err);
      return kp_check_set (c, KP_CHECK_WARN, "mount /proc", "%s", msg);
    }
  kp_cgroup_entries cg;
  kp_cgroup_parse_proc (self, &cg);

  int r;
  if ((unsigned long) sfs.f_type == CGROUP2_SUPER_MAGIC)
    r = check_v2 (ctx, c, &cg, mountinfo);
  else if ((unsigned long) sfs.f_type == TMPFS_MAGIC)
    {
      struct statfs ufs;
      bool hybrid = statfs ("/sys/fs/cgroup/unified", &ufs) == 0
                    && (unsigned long) ufs.f_type == CGROUP2_SUPER_MAGIC;
      r = check_v1 (ctx, c, &cg, mountinfo, hybrid);
    }
  else
    r = kp_check_set (c, KP_CHECK_WARN, "mount the cgroup2 filesystem on /sys/fs/cgroup",
                      "no cgroup hierarchy at /sys/fs/cgroup (it is %s): resource limits will "
                      "be refused",
                      kp_doctor_fs_name ((long) sfs.f_type));
  kp_cgroup_entries_clear (&cg);
  return r;
}
