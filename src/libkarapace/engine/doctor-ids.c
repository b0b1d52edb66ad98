/* doctor-ids.c — subordinate id ranges (/etc/subuid, /etc/subgid) and the setuid helpers
 * that map them (newuidmap, newgidmap).
 *
 * Without ranges the runtime falls back to mapping only the caller's own id, which works
 * until a package changes a file's owner; with ranges it needs newuidmap/newgidmap, which
 * only work when the kernel honours their setuid bit or file capability. */
#include "doctor-internal.h"

#include "base/fs.h"

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <linux/capability.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#define KP_SUBID_FILE_MAX (16u << 20)
#define KP_SUBID_WANTED 65536u

/* ---- the parser --------------------------------------------------------------------- */

/* A decimal number of at most 32 bits, digits only. */
static bool
parse_u32 (const char *s, size_t len, uint32_t *out)
{
  if (len == 0 || len > 10)
    return false;
  uint64_t v = 0;
  for (size_t i = 0; i < len; i++)
    {
      if (s[i] < '0' || s[i] > '9')
        return false;
      v = v * 10 + (uint64_t) (s[i] - '0');
    }
  if (v > UINT32_MAX)
    return false;
  *out = (uint32_t) v;
  return true;
}

static bool
is_blank (char ch)
{
  return ch == ' ' || ch == '\t' || ch == '\r';
}

/* One line without its newline. Returns 1 for an entry (name, start, count filled), 0 for
 * a blank line or comment, -1 for a malformed line. */
static int
parse_subid_line (const char *line, size_t len, const char **name, size_t *name_len,
                  uint32_t *start, uint32_t *count)
{
  while (len > 0 && is_blank (line[0]))
    line++, len--;
  while (len > 0 && is_blank (line[len - 1]))
    len--;
  if (len == 0 || line[0] == '#')
    return 0;
  if (memchr (line, '\0', len) != NULL)
    return -1;
  const char *c1 = memchr (line, ':', len);
  if (c1 == NULL || c1 == line)
    return -1;
  const char *rest = c1 + 1;
  size_t rest_len = len - (size_t) (rest - line);
  const char *c2 = memchr (rest, ':', rest_len);
  if (c2 == NULL)
    return -1;
  const char *third = c2 + 1;
  size_t third_len = len - (size_t) (third - line);
  if (!parse_u32 (rest, (size_t) (c2 - rest), start) || !parse_u32 (third, third_len, count))
    return -1; /* also rejects a fourth field: ':' is not a digit */
  /* uid_t (u32)-1 is "no id": a range may end at 4294967294 at most. */
  if (*count == 0 || (uint64_t) *start + *count > UINT32_MAX)
    return -1;
  *name = line;
  *name_len = (size_t) (c1 - line);
  return 1;
}

static bool
subid_name_matches (const char *name, size_t name_len, const char *user, uid_t uid)
{
  if (user != NULL && strlen (user) == name_len && memcmp (name, user, name_len) == 0)
    return true;
  uint32_t numeric;
  return parse_u32 (name, name_len, &numeric) && numeric == (uint32_t) uid;
}

int
kp_doctor_read_subids (const char *path, const char *user, uid_t uid, kp_subid_ranges *out,
                       kp_error **err)
{
  memset (out, 0, sizeof *out);
  size_t len;
  kp_cleanup_free char *text = kp_file_read (path, KP_SUBID_FILE_MAX, &len, err);
  if (text == NULL)
    return -1;
  size_t cap = 0;
  for (size_t pos = 0; pos < len;)
    {
      const char *line = text + pos;
      const char *nl = memchr (line, '\n', len - pos);
      size_t line_len = nl ? (size_t) (nl - line) : len - pos;
      pos += line_len + 1;

      const char *name;
      size_t name_len;
      uint32_t start, count;
      int r = parse_subid_line (line, line_len, &name, &name_len, &start, &count);
      if (r < 0)
        out->malformed++;
      if (r <= 0 || !subid_name_matches (name, name_len, user, uid))
        continue;
      if (out->len == cap)
        {
          cap = cap ? cap * 2 : 4;
          out->ranges = xreallocarray (out->ranges, cap, sizeof *out->ranges);
        }
      out->ranges[out->len++] = (kp_subid_range) { start, count };
      out->total += count;
    }
  return 0;
}

void
kp_subid_ranges_clear (kp_subid_ranges *r)
{
  free (r->ranges);
  memset (r, 0, sizeof *r);
}

/* ---- the subids check --------------------------------------------------------------- */

typedef struct subid_file_report
{
  const char *path;
  const char *kind; /* "uid" or "gid" */
  uint64_t total;
  bool unreadable;
} subid_file_report;

static void
describe_subid_file (kp_buf *detail, subid_file_report *f, const char *user, uid_t uid)
{
  kp_cleanup_error kp_error *err = NULL;
  kp_subid_ranges ranges;
  if (kp_doctor_read_subids (f->path, user, uid, &ranges, &err) < 0)
    {
      if (err->errno_value == ENOENT)
        kp_buf_printf (detail, "%s is missing", f->path);
      else
        {
          f->unreadable = true;
          kp_cleanup_free char *msg = kp_error_describe (err);
          kp_buf_printf (detail, "%s", msg);
        }
      return;
    }
  f->total = ranges.total;
  if (ranges.len == 0)
    kp_buf_printf (detail, "no sub%ss in %s", f->kind, f->path);
  else
    kp_buf_printf (detail, "%llu sub%ss in %zu range%s", (unsigned long long) ranges.total,
                   f->kind, ranges.len, ranges.len == 1 ? "" : "s");
  if (ranges.malformed > 0)
    kp_buf_printf (detail, " (%zu malformed line%s in %s ignored)", ranges.malformed,
                   ranges.malformed == 1 ? "" : "s", f->path);
  kp_subid_ranges_clear (&ranges);
}

/* uid_map of the initial namespace: "0 0 4294967295" */
#define KP_ALL_IDS 4294967295ull

/* How many ids a /proc/self/{uid,gid}_map maps; 0 when it cannot be read. */
static uint64_t
mapped_ids (const char *path)
{
  kp_cleanup_error kp_error *err = NULL;
  kp_cleanup_free char *text = kp_file_read (path, 1 << 16, NULL, &err);
  uint64_t total = 0;
  for (char *line = text; line != NULL && *line != '\0';)
    {
      char *nl = strchr (line, '\n');
      unsigned long long inside, outside, count;
      if (sscanf (line, "%llu %llu %llu", &inside, &outside, &count) == 3)
        total += count;
      line = nl ? nl + 1 : NULL;
    }
  return total;
}

int
kp_doctor_check_subids (kp_doctor_ctx *ctx, kp_check *c)
{
  subid_file_report files[] = {
    { "/etc/subuid", "uid", 0, false },
    { "/etc/subgid", "gid", 0, false },
  };
  kp_cleanup_buf kp_buf detail = KP_BUF_INIT;
  for (size_t i = 0; i < KP_N_ELEMENTS (files); i++)
    {
      if (i > 0)
        kp_buf_puts (&detail, "; ");
      describe_subid_file (&detail, &files[i], ctx->user, ctx->uid);
    }
  if (ctx->root)
    {
      /* Root maps ids itself, but only those its own user namespace holds: all of them on
       * the host, perhaps a few inside a container. */
      uint64_t uids = mapped_ids ("/proc/self/uid_map");
      uint64_t gids = mapped_ids ("/proc/self/gid_map");
      if (uids == KP_ALL_IDS && gids == KP_ALL_IDS)
        return kp_check_set (c, KP_CHECK_OK, NULL,
                             "running as root: id ranges are mapped directly, none are needed "
                             "(%s)",
                             kp_buf_str (&detail));
      if (uids >= KP_SUBID_WANTED && gids >= KP_SUBID_WANTED)
        return kp_check_set (c, KP_CHECK_OK, NULL,
                             "running as root of a user namespace that holds %llu uids and "
                             "%llu gids",
                             (unsigned long long) uids, (unsigned long long) gids);
      return kp_check_set (c, KP_CHECK_WARN,
                           "run in a user namespace that holds at least 65536 uids and gids "
                           "(give the outer user subordinate ranges)",
                           "running as root of a user namespace that holds only %llu uids and "
                           "%llu gids: files owned by other ids cannot be mapped",
                           (unsigned long long) uids, (unsigned long long) gids);
    }
  ctx->subuid_count = files[0].total;
  ctx->subgid_count = files[1].total;

  kp_cleanup_free char *who
      = ctx->user ? xstrdup (ctx->user) : xasprintf ("%u", (unsigned) ctx->uid);
  kp_cleanup_free char *fix = xasprintf (
      "give %s 65536 ids of a range no other user has: usermod --add-subuids 100000-165535 "
      "--add-subgids 100000-165535 %s",
      who, ctx->user ? ctx->user : "USER");
  if (files[0].unreadable || files[1].unreadable)
    return kp_check_set (c, KP_CHECK_WARN, "make /etc/subuid and /etc/subgid readable (mode 0644)",
                         "%s", kp_buf_str (&detail));
  if (files[0].total == 0 || files[1].total == 0)
    return kp_check_set (c, KP_CHECK_WARN, fix,
                         "%s: only your own id can be mapped (packages that change file owners "
                         "will fail)",
                         kp_buf_str (&detail));
  if (files[0].total < KP_SUBID_WANTED || files[1].total < KP_SUBID_WANTED)
    return kp_check_set (c, KP_CHECK_WARN, fix,
                         "%s: fewer than 65536, files owned by higher ids cannot be mapped",
                         kp_buf_str (&detail));
  return kp_check_set (c, KP_CHECK_OK, NULL, "%s", kp_buf_str (&detail));
}

/* ---- the newuidmap check ------------------------------------------------------------ */

/* Does the security.capability xattr grant `cap` in the permitted set? Revisions 1-3 all
 * start with magic_etc then the low permitted word (little-endian). */
static bool
file_cap_permits (const char *path, int cap)
{
  uint32_t raw[6] = { 0 };
  ssize_t n = getxattr (path, "security.capability", raw, sizeof raw);
  if (n < (ssize_t) (2 * sizeof (uint32_t)))
    return false;
  uint32_t rev = le32toh (raw[0]) & VFS_CAP_REVISION_MASK;
  if (rev != VFS_CAP_REVISION_1 && rev != VFS_CAP_REVISION_2 && rev != VFS_CAP_REVISION_3)
    return false;
  return (le32toh (raw[1]) >> cap) & 1u;
}

/* Describe one helper into detail; returns false and sets *fix when it will not work. */
static bool
inspect_id_helper (const char *name, int cap, const char *cap_name, kp_buf *detail,
                   const char **fix)
{
  kp_cleanup_free char *path = kp_doctor_find_program (name);
  if (path == NULL)
    {
      kp_buf_printf (detail, "%s not found", name);
      *fix = "apt-get install uidmap";
      return false;
    }
  struct stat st;
  if (stat (path, &st) < 0)
    {
      kp_buf_printf (detail, "%s: %s", path, strerror (errno));
      *fix = "apt-get install --reinstall uidmap";
      return false;
    }
  const char *how = NULL;
  if (st.st_uid == 0 && (st.st_mode & S_ISUID))
    how = "setuid root";
  else if (file_cap_permits (path, cap))
    how = cap_name;
  if (how == NULL)
    {
      kp_buf_printf (detail, "%s is neither setuid root nor has %s", path, cap_name);
      *fix = "apt-get install --reinstall uidmap (it installs the helpers setuid root)";
      return false;
    }
  struct statvfs vfs;
  if (statvfs (path, &vfs) == 0 && (vfs.f_flag & ST_NOSUID))
    {
      kp_buf_printf (detail, "%s is %s but on a nosuid mount, which ignores that", path, how);
      *fix = "remount the filesystem holding newuidmap/newgidmap without nosuid";
      return false;
    }
  kp_buf_printf (detail, "%s (%s)", path, how);
  return true;
}

int
kp_doctor_check_newuidmap (kp_doctor_ctx *ctx, kp_check *c)
{
  kp_cleanup_buf kp_buf detail = KP_BUF_INIT;
  const char *fix_uid = NULL, *fix_gid = NULL;
  bool uid_ok = inspect_id_helper ("newuidmap", CAP_SETUID, "cap_setuid", &detail, &fix_uid);
  kp_buf_puts (&detail, ", ");
  bool gid_ok = inspect_id_helper ("newgidmap", CAP_SETGID, "cap_setgid", &detail, &fix_gid);
  if (uid_ok && gid_ok)
    return kp_check_set (c, KP_CHECK_OK, NULL, "%s%s", kp_buf_str (&detail),
                         ctx->root ? " (not needed as root)" : "");
  const char *fix = fix_uid ? fix_uid : fix_gid;
  if (ctx->root)
    return kp_check_set (c, KP_CHECK_SKIP, NULL, "%s: not needed as root", kp_buf_str (&detail));
  if (ctx->subuid_count > 0 && ctx->subgid_count > 0)
    return kp_check_set (c, KP_CHECK_FAIL, fix,
                         "%s: your subordinate ranges cannot be mapped", kp_buf_str (&detail));
  return kp_check_set (c, KP_CHECK_WARN, fix,
                       "%s (needed once you have subordinate ranges)", kp_buf_str (&detail));
}
