/* doctor-ids.c — subordinate id ranges (/etc/subuid, /etc/subgid) and the setuid helpers
 * that map them (newuidmap, newgidmap).
 *
 * Without ranges the runtime falls back to mapping only the caller's own id, which works
 * until a package changes a file's owner; with ranges it needs newuidmap/newgidmap, which
 * only work when the kernel honours their setuid bit or file capability. The files are read
 * by sandbox/subid.c, the same reader the user namespace setup maps from. */
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

#define KP_SUBID_WANTED 65536u

/* ---- the subids check --------------------------------------------------------------- */

typedef struct subid_file_report
{
  const char *path;
  const char *kind; /* "uid" or "gid" */
  uint64_t total;
  bool unreadable;
} subid_file_report;

static void
describe_subid_file (kp_buf *detail, subid_file_report *f, const char *user, uid_t uid,
                     uint32_t own)
{
  kp_cleanup_error kp_error *err = NULL;
  kp_subid_ranges ranges;
  if (kp_subid_read (f->path, user, uid, &ranges, &err) < 0)
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
  /* Count what the id map can use: a range overlapping your own id or an earlier range is
   * skipped there (the kernel refuses overlapping maps), so it is not counted here. */
  uint64_t usable = 0;
  size_t skipped = 0;
  kp_cleanup_free bool *skip = xcalloc (ranges.len + 1, sizeof *skip);
  for (size_t i = 0; i < ranges.len; i++)
    {
      const kp_subid_range *r = &ranges.ranges[i];
      uint64_t end = (uint64_t) r->start + r->count;
      bool overlaps = r->start <= own && own < end;
      for (size_t j = 0; j < i && !overlaps; j++)
        {
          const kp_subid_range *o = &ranges.ranges[j];
          if (skip[j])
            continue;
          overlaps = r->start < (uint64_t) o->start + o->count && o->start < end;
        }
      if (overlaps)
        {
          skip[i] = true;
          skipped++;
          continue;
        }
      usable += r->count;
    }
  f->total = usable;
  if (ranges.len == 0)
    kp_buf_printf (detail, "no sub%ss in %s", f->kind, f->path);
  else
    kp_buf_printf (detail, "%llu sub%ss in %zu range%s", (unsigned long long) usable, f->kind,
                   ranges.len - skipped, ranges.len - skipped == 1 ? "" : "s");
  if (skipped > 0)
    kp_buf_printf (detail, " (%zu range%s overlapping your id or another range ignored)",
                   skipped, skipped == 1 ? "" : "s");
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
    { KP_SUBUID_PATH, "uid", 0, false },
    { KP_SUBGID_PATH, "gid", 0, false },
  };
  kp_cleanup_buf kp_buf detail = KP_BUF_INIT;
  for (size_t i = 0; i < KP_N_ELEMENTS (files); i++)
    {
      if (i > 0)
        kp_buf_puts (&detail, "; ");
      describe_subid_file (&detail, &files[i], ctx->user, ctx->uid,
                           i == 0 ? (uint32_t) ctx->uid : (uint32_t) ctx->gid);
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
  kp_cleanup_free char *path = kp_find_program (name);
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
