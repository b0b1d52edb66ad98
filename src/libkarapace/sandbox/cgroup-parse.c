/* cgroup-parse.c — reading /proc/PID/cgroup and /proc/PID/mountinfo.
 *
 * Shared by the runtime (cgroup.c) and `karapace doctor`, and kept apart from anything
 * that touches the host so that tests can feed it captured and hostile text. A
 * hierarchy's mount root may itself be a cgroup (inside containers), so a process's
 * cgroup path is taken relative to that root before it is joined to the mount point. */
#include "cgroup.h"

#include <stdlib.h>
#include <string.h>

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
kp_cgroup_parse_proc (const char *text, kp_cgroup_entries *out)
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
bool
kp_cgroup_list_contains (const char *list, char sep, const char *word)
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
                             : en->hierarchy != 0 && kp_cgroup_list_contains (en->controllers, ',', controller))
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

/* The first mount of the hierarchy that shows cgroup_path (any, when NULL): the joined
 * directory, or with cgroup_path NULL the mount point. */
static char *
find_mount (const char *mountinfo, const char *controller, const char *cgroup_path)
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
          if (!kp_cgroup_list_contains (super, ',', controller))
            continue;
        }
      kp_cleanup_free char *root = unescape_mountinfo (f[3], fl[3]);
      kp_cleanup_free char *mountpoint = unescape_mountinfo (f[4], fl[4]);
      if (cgroup_path == NULL)
        return kp_steal_pointer (&mountpoint);
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


char *
kp_cgroup_mount_dir (const char *mountinfo, const char *controller, const char *cgroup_path)
{
  return find_mount (mountinfo, controller, cgroup_path);
}

char *
kp_cgroup_mount_point (const char *mountinfo, const char *controller)
{
  return find_mount (mountinfo, controller, NULL);
}
