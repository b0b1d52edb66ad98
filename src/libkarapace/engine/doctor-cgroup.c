/* doctor-cgroup.c — can the runtime apply resource limits (memory, cpu, pids)?
 *
 * Limits need a cgroup the caller may write: on cgroup v2 a delegated subtree (systemd
 * `Delegate=yes`, reached directly or through a transient scope of the user manager); on
 * v1 a writable directory in each controller's hierarchy, which hosts rarely grant to
 * users. The version comes from the filesystem type of /sys/fs/cgroup, the caller's
 * cgroups from /proc/self/cgroup, and where each hierarchy is mounted from
 * /proc/self/mountinfo (a hierarchy's mount root may itself be a cgroup, as in
 * containers). Missing limits never stop an environment from running, so this check
 * warns, never fails. */
#include "doctor-internal.h"

#include "base/buf.h"
#include "base/fs.h"

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
  "cgroup v1 cannot be delegated to users: boot with systemd.unified_cgroup_hierarchy=1 "     \
  "(cgroup v2, with Delegate=yes for user@.service), or run as root; until then resource "    \
  "limits will be refused"

/* ---- /proc/self/cgroup -------------------------------------------------------------- */

static bool
parse_hierarchy (const char *s, size_t len, unsigned *out)
{
  if (len == 0 || len > 9)
    return false;
  unsigned v = 0;
  for (size_t i = 0; i < len; i++)
    {
      if (s[i] < '0' || s[i] > '9')
        return false;
      v = v * 10 + (unsigned) (s[i] - '0');
    }
  *out = v;
  return true;
}

void
kp_doctor_parse_proc_cgroup (const char *text, kp_cgroup_entries *out)
{
  memset (out, 0, sizeof *out);
  size_t cap = 0;
  for (const char *line = text; line != NULL && *line != '\0';)
    {
      const char *nl = strchr (line, '\n');
      size_t len = nl ? (size_t) (nl - line) : strlen (line);
      const char *next = nl ? nl + 1 : NULL;
      if (len == 0)
        {
          line = next;
          continue;
        }
      const char *c1 = memchr (line, ':', len);
      const char *c2 = c1 ? memchr (c1 + 1, ':', len - (size_t) (c1 + 1 - line)) : NULL;
      unsigned hierarchy;
      const char *path = c2 ? c2 + 1 : NULL;
      size_t path_len = c2 ? len - (size_t) (path - line) : 0;
      size_t ctl_len = c2 ? (size_t) (c2 - c1 - 1) : 0;
      if (c2 == NULL || !parse_hierarchy (line, (size_t) (c1 - line), &hierarchy)
          || path_len == 0 || path[0] != '/' || (hierarchy == 0 && ctl_len != 0)
          || (hierarchy != 0 && ctl_len == 0))
        {
          out->malformed++;
          line = next;
          continue;
        }
      if (out->len == cap)
        {
          cap = cap ? cap * 2 : 16;
          out->entries = xreallocarray (out->entries, cap, sizeof *out->entries);
        }
      out->entries[out->len++] = (kp_cgroup_entry) {
        .hierarchy = hierarchy,
        .controllers = xstrndup (c1 + 1, ctl_len),
        .path = xstrndup (path, path_len),
      };
      line = next;
    }
}

void
kp_cgroup_entries_clear (kp_cgroup_entries *e)
{
  for (size_t i = 0; i < e->len; i++)
    {
      free (e->entries[i].controllers);
      free (e->entries[i].path);
    }
  free (e->entries);
  memset (e, 0, sizeof *e);
}

/* Is `word` one of the comma-separated items of list? */
static bool
list_contains (const char *list, char sep, const char *word)
{
  size_t wlen = strlen (word);
  for (const char *p = list; p != NULL && *p != '\0';)
    {
      const char *end = strchr (p, sep);
      size_t len = end ? (size_t) (end - p) : strlen (p);
      if (len == wlen && memcmp (p, word, len) == 0)
        return true;
      p = end ? end + 1 : NULL;
    }
  return false;
}

const kp_cgroup_entry *
kp_cgroup_entries_find (const kp_cgroup_entries *e, const char *controller)
{
  for (size_t i = 0; i < e->len; i++)
    {
      const kp_cgroup_entry *en = &e->entries[i];
      if (controller == NULL ? en->hierarchy == 0 && en->controllers[0] == '\0'
                             : en->hierarchy != 0 && list_contains (en->controllers, ',', controller))
        return en;
    }
  return NULL;
}

/* ---- /proc/self/mountinfo ----------------------------------------------------------- */

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static char *
unescape_mountinfo (const char *s, size_t len)
{
  char *out = xmalloc (len + 1);
  size_t o = 0;
  for (size_t i = 0; i < len; i++)
    {
      if (s[i] == '\\' && i + 3 < len && s[i + 1] >= '0'
          && s[i + 1] <= '3' && s[i + 2] >= '0' && s[i + 2] <= '7' && s[i + 3] >= '0'
          && s[i + 3] <= '7')
        {
          out[o++] = (char) (((s[i + 1] - '0') << 6) | ((s[i + 2] - '0') << 3) | (s[i + 3] - '0'));
          i += 3;
        }
      else
        out[o++] = s[i];
    }
  out[o] = '\0';
  return out;
}

/* Split one mountinfo line into its space-separated fields (at most max). */
static size_t
split_fields (const char *line, size_t len, const char **fields, size_t *lens, size_t max)
{
  size_t n = 0;
  size_t i = 0;
  while (i < len && n < max)
    {
      while (i < len && line[i] == ' ')
        i++;
      if (i >= len)
        break;
      size_t start = i;
      while (i < len && line[i] != ' ')
        i++;
      fields[n] = line + start;
      lens[n] = i - start;
      n++;
    }
  return n;
}

static bool
field_is (const char *field, size_t len, const char *word)
{
  return strlen (word) == len && memcmp (field, word, len) == 0;
}

/* cgroup_path relative to a mount whose root is `root`, or NULL when it lies outside. */
static const char *
path_below_root (const char *cgroup_path, const char *root)
{
  if (strcmp (root, "/") == 0)
    return cgroup_path;
  size_t rlen = strlen (root);
  if (strncmp (cgroup_path, root, rlen) == 0
      && (cgroup_path[rlen] == '\0' || cgroup_path[rlen] == '/'))
    return cgroup_path + rlen;
  return NULL;
}

char *
kp_doctor_cgroup_dir (const char *mountinfo, const char *controller, const char *cgroup_path)
{
  for (const char *line = mountinfo; line != NULL && *line != '\0';)
    {
      const char *nl = strchr (line, '\n');
      size_t len = nl ? (size_t) (nl - line) : strlen (line);
      const char *next = nl ? nl + 1 : NULL;

      const char *f[64];
      size_t fl[64];
      size_t n = split_fields (line, len, f, fl, KP_N_ELEMENTS (f));
      size_t sep = 0;
      for (size_t i = 6; i < n; i++)
        if (field_is (f[i], fl[i], "-"))
          {
            sep = i;
            break;
          }
      line = next;
      if (sep == 0 || n < sep + 4) /* "- FSTYPE SOURCE SUPEROPTS" */
        continue;
      const char *fstype = f[sep + 1];
      size_t fstype_len = fl[sep + 1];
      if (controller == NULL)
        {
          if (!field_is (fstype, fstype_len, "cgroup2"))
            continue;
        }
      else
        {
          if (!field_is (fstype, fstype_len, "cgroup"))
            continue;
          kp_cleanup_free char *super = xstrndup (f[sep + 3], fl[sep + 3]);
          if (!list_contains (super, ',', controller))
            continue;
        }
      kp_cleanup_free char *root = unescape_mountinfo (f[3], fl[3]);
      kp_cleanup_free char *mountpoint = unescape_mountinfo (f[4], fl[4]);
      const char *rel = path_below_root (cgroup_path, root);
      if (rel == NULL)
        continue;
      while (*rel == '/')
        rel++;
      if (*rel == '\0')
        return kp_steal_pointer (&mountpoint);
      return xasprintf ("%s/%s", strcmp (mountpoint, "/") == 0 ? "" : mountpoint, rel);
    }
  return NULL;
}

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
    if (available == NULL || !list_contains (available, ' ', wanted_controllers[i]))
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
  kp_cleanup_free char *dir = kp_doctor_cgroup_dir (mountinfo, NULL, en->path);
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
      kp_cleanup_free char *top = kp_doctor_cgroup_dir (mountinfo, NULL, "/");
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
      return kp_check_set (c, KP_CHECK_OK, NULL,
                           "cgroup v2; limits through a transient scope of the systemd user "
                           "manager (%s offers memory, cpu and pids)",
                           service);
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
  size_t n_missing = 0, n_readonly = 0;

  /* In hybrid mode a controller may be bound to the unified hierarchy instead. */
  kp_cleanup_free char *v2_dir = NULL;
  kp_cleanup_free char *v2_available = NULL;
  const kp_cgroup_entry *v2 = kp_cgroup_entries_find (cg, NULL);
  if (hybrid && v2 != NULL)
    {
      v2_dir = kp_doctor_cgroup_dir (mountinfo, NULL, v2->path);
      if (v2_dir != NULL)
        v2_available = read_v2_controllers (v2_dir);
    }

  kp_buf_puts (&detail, "cgroup v1");
  if (hybrid)
    {
      kp_cleanup_free char *top = kp_doctor_cgroup_dir (mountinfo, NULL, "/");
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
        dir = kp_doctor_cgroup_dir (mountinfo, name, en->path);
      else if (v2_available != NULL && list_contains (v2_available, ' ', name))
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
      if (!cgroup_dir_writable (dir, v2_bound))
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
  kp_doctor_parse_proc_cgroup (self, &cg);

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
