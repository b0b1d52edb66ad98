/* unpack.c — a tar into a directory, and never anywhere else (docs/archive.md).
 *
 * Each member name is split into components (".." refused, a leading "/" or "./" dropped
 * as tar does), its parent directory is resolved beneath the target without following a
 * single symbolic link (beneath.c), and the member itself is made with *at() calls relative
 * to that parent: whatever stood at its name is removed first, never written through.
 * Hard links must point at a member already beneath the target. Ownership, modes, times and
 * attributes are applied to the created object itself (its descriptor, or its name with
 * AT_SYMLINK_NOFOLLOW), never through a link.
 *
 * Directories are made 0700 and get their real mode, owner and time at the end, deepest
 * first, so a 0555 directory can still be filled and its time is not disturbed by its own
 * contents.
 *
 * In flatten mode (apply_whiteouts) the archive is one OCI layer over the layers already in
 * the target: whiteouts delete from those at once, opaque directories are emptied of them
 * after the last member, and neither ever touches what this archive put in place. */
#include "archive/archive.h"
#include "archive/archive-private.h"
#include "base/fs.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#define DEFAULT_MAX_BYTES (64ull << 30)
#define DEFAULT_MAX_ENTRIES 4000000ull
#define READ_BLOCK_SIZE (64 * 1024)

/* How an overlay mounted with "userxattr" in a user namespace (the sandbox's overlay) reads
 * an opaque directory; see docs/archive.md for the choice. */
#define OPAQUE_XATTR "user.overlay.opaque"
#define WHITEOUT_PREFIX ".wh."
#define WHITEOUT_META_PREFIX ".wh..wh."
#define WHITEOUT_OPAQUE ".wh..wh..opq"

typedef struct dir_fixup
{
  char *path; /* relative, "" for the target itself */
  size_t seq; /* archive order, so the last of duplicates wins */
  mode_t mode;
  uid_t uid;
  gid_t gid;
  int64_t mtime;
  bool has_mtime;
} dir_fixup;

/* A set of relative paths ("" is the target itself), looked up while the archive streams
 * by: open addressing, FNV-1a, at most half full. */
typedef struct path_set
{
  char **slots;
  size_t cap, n;
} path_set;

static uint64_t
path_hash (const char *s)
{
  uint64_t h = 0xcbf29ce484222325ull;
  for (; *s; s++)
    h = (h ^ (unsigned char) *s) * 0x100000001b3ull;
  return h;
}

static char **
path_set_slot (const path_set *set, const char *path)
{
  size_t mask = set->cap - 1;
  for (size_t i = (size_t) path_hash (path) & mask;; i = (i + 1) & mask)
    if (set->slots[i] == NULL || strcmp (set->slots[i], path) == 0)
      return &set->slots[i];
}

static bool
path_set_has (const path_set *set, const char *path)
{
  return set->cap > 0 && *path_set_slot (set, path) != NULL;
}

/* Add a copy of path; false when it was there already. */
static bool
path_set_add (path_set *set, const char *path)
{
  if (2 * (set->n + 1) > set->cap)
    {
      path_set bigger = { .cap = set->cap ? 2 * set->cap : 256 };
      bigger.slots = xcalloc (bigger.cap, sizeof (char *));
      for (size_t i = 0; i < set->cap; i++)
        if (set->slots[i])
          *path_set_slot (&bigger, set->slots[i]) = set->slots[i];
      free (set->slots);
      set->slots = bigger.slots;
      set->cap = bigger.cap;
    }
  char **slot = path_set_slot (set, path);
  if (*slot)
    return false;
  *slot = xstrdup (path);
  set->n++;
  return true;
}

static void
path_set_clear (path_set *set)
{
  for (size_t i = 0; i < set->cap; i++)
    free (set->slots[i]);
  free (set->slots);
  memset (set, 0, sizeof *set);
}

typedef struct unpack
{
  struct archive *ar;
  int target;
  kp_unpack_options opts;
  kp_unpack_stats stats;
  bool use_openat2;
  char *display; /* the current member's name, printable */
  dir_fixup *dirs;
  size_t n_dirs;
  size_t cap_dirs;
  /* Flatten mode: the paths this archive put in place (with their parents), and the
     directories whose lower content goes at the end (opaque markers, and whiteouts of a
     directory this archive had already written into). */
  path_set mine;
  char **opaque;
} unpack;

static void
unpack_clear (unpack *u)
{
  if (u->ar)
    archive_read_free (u->ar);
  for (size_t i = 0; i < u->n_dirs; i++)
    free (u->dirs[i].path);
  free (u->dirs);
  free (u->display);
  path_set_clear (&u->mine);
  kp_strv_free (u->opaque);
}

/* Member names come from the archive: show control characters as '?'. */
static char *
printable (const char *s)
{
  char *copy = xstrdup (s);
  for (char *p = copy; *p; p++)
    if ((unsigned char) *p < 0x20 || *p == 0x7f)
      *p = '?';
  return copy;
}

static int
entry_fail (unpack *u, kp_error **err, const char *why)
{
  return kp_error_set (err, KP_EXIT_FAILURE, "unpack: entry \"%s\": %s", u->display, why);
}

static int
entry_fail_errno (unpack *u, kp_error **err, int errnum, const char *what)
{
  return kp_error_errno (err, errnum, "unpack: entry \"%s\": %s", u->display, what);
}

/* ---- Metadata ---- */

static bool
is_overlay_xattr (const char *name)
{
  return kp_str_has_prefix (name, "trusted.overlay.") || kp_str_has_prefix (name, "user.overlay.");
}

/* Set the member's attributes, through fd when there is one, else through
 * /proc/self/fd/PARENT/LEAF without following LEAF. Attributes the caller may not set
 * (trusted.* without privilege, user.* on a link) and the overlay's own are skipped and
 * counted as refused: they never leave the target, and failing a layer over them would make
 * unprivileged unpacking impossible. */
static int
apply_xattrs (unpack *u, struct archive_entry *e, int fd, int parent, const char *leaf,
              kp_error **err)
{
  if (archive_entry_xattr_reset (e) == 0)
    return 0;
  kp_cleanup_free char *proc_path = NULL;
  if (fd < 0)
    proc_path = xasprintf ("/proc/self/fd/%d/%s", parent, leaf);
  bool refused = false;
  const char *name;
  const void *value;
  size_t size;
  while (archive_entry_xattr_next (e, &name, &value, &size) == ARCHIVE_OK)
    {
      if (name == NULL || *name == '\0' || strcmp (name, "security.selinux") == 0)
        continue;
      if (is_overlay_xattr (name))
        {
          refused = true;
          continue;
        }
      int r = fd >= 0 ? fsetxattr (fd, name, value, size, 0)
                      : lsetxattr (proc_path, name, value, size, 0);
      if (r == 0)
        continue;
      if (errno == EPERM || errno == ENOTSUP || errno == EACCES || errno == EINVAL)
        {
          refused = true;
          continue;
        }
      kp_cleanup_free char *what = xasprintf ("set extended attribute \"%s\"", name);
      return entry_fail_errno (u, err, errno, what);
    }
  if (refused)
    u->stats.refused++;
  return 0;
}

static mode_t
entry_mode (const unpack *u, struct archive_entry *e, bool is_dir)
{
  mode_t mode = archive_entry_perm (e) & 07777;
  if (!is_dir && !u->opts.keep_setid)
    mode &= (mode_t) ~(S_ISUID | S_ISGID);
  return mode;
}

static void
entry_times (struct archive_entry *e, struct timespec ts[2])
{
  if (archive_entry_mtime_is_set (e))
    {
      ts[1].tv_sec = archive_entry_mtime (e);
      ts[1].tv_nsec = archive_entry_mtime_nsec (e);
      if (ts[1].tv_nsec < 0 || ts[1].tv_nsec > 999999999)
        ts[1].tv_nsec = 0;
    }
  else
    ts[1].tv_nsec = UTIME_OMIT;
  ts[0] = ts[1];
}

static int
chown_entry (unpack *u, struct archive_entry *e, int fd, int parent, const char *leaf,
             kp_error **err)
{
  if (!u->opts.preserve_owner)
    return 0;
  la_int64_t uid = archive_entry_uid (e), gid = archive_entry_gid (e);
  if (uid < 0 || gid < 0 || uid > (la_int64_t) UINT32_MAX - 1 || gid > (la_int64_t) UINT32_MAX - 1)
    return entry_fail (u, err, "owner out of range");
  int r = fd >= 0 ? fchown (fd, (uid_t) uid, (gid_t) gid)
                  : fchownat (parent, leaf, (uid_t) uid, (gid_t) gid, AT_SYMLINK_NOFOLLOW);
  if (r < 0)
    return entry_fail_errno (u, err, errno, "change owner");
  return 0;
}

/* chmod a special file by name without following a link put in its place. */
static int
chmod_nofollow (int parent, const char *leaf, mode_t type, mode_t mode)
{
  kp_cleanup_close int fd = openat (parent, leaf, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return -1;
  struct stat st;
  if (fstat (fd, &st) < 0)
    return -1;
  if ((st.st_mode & S_IFMT) != type)
    {
      errno = EEXIST;
      return -1;
    }
  char proc[64];
  snprintf (proc, sizeof proc, "/proc/self/fd/%d", fd);
  return chmod (proc, mode);
}

/* ---- Making room for a member ---- */

/* Remove whatever stands at leaf, unless keep_dir and it is a directory (1 is returned
 * then: a directory over a directory keeps its contents). */
static int
make_room (unpack *u, int parent, const char *leaf, bool keep_dir, kp_error **err)
{
  struct stat st;
  if (fstatat (parent, leaf, &st, AT_SYMLINK_NOFOLLOW) < 0)
    {
      if (errno == ENOENT)
        return 0;
      return entry_fail_errno (u, err, errno, "stat");
    }
  if (keep_dir && S_ISDIR (st.st_mode))
    return 1;
  int r = kp_remove_tree_at (parent, leaf);
  if (r < 0)
    return entry_fail_errno (u, err, -r, "remove the existing entry");
  return 0;
}

/* ---- Members ---- */

static void
record_dir (unpack *u, const char *path, struct archive_entry *e)
{
  if (u->n_dirs == u->cap_dirs)
    {
      u->cap_dirs = u->cap_dirs ? 2 * u->cap_dirs : 64;
      u->dirs = xreallocarray (u->dirs, u->cap_dirs, sizeof (dir_fixup));
    }
  dir_fixup *d = &u->dirs[u->n_dirs];
  d->path = xstrdup (path);
  d->seq = u->n_dirs;
  d->mode = entry_mode (u, e, true);
  d->uid = (uid_t) archive_entry_uid (e);
  d->gid = (gid_t) archive_entry_gid (e);
  d->has_mtime = archive_entry_mtime_is_set (e);
  d->mtime = archive_entry_mtime (e);
  u->n_dirs++;
}

static int
check_owner_range (unpack *u, struct archive_entry *e, kp_error **err)
{
  la_int64_t uid = archive_entry_uid (e), gid = archive_entry_gid (e);
  if (u->opts.preserve_owner
      && (uid < 0 || gid < 0 || uid >= (la_int64_t) UINT32_MAX || gid >= (la_int64_t) UINT32_MAX))
    return entry_fail (u, err, "owner out of range");
  return 0;
}

static int
unpack_dir (unpack *u, struct archive_entry *e, int parent, const char *leaf, const char *path,
            kp_error **err)
{
  if (check_owner_range (u, e, err) < 0)
    return -1;
  kp_cleanup_close int fd = -1;
  if (parent < 0)
    fd = openat (u->target, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  else
    {
      int r = make_room (u, parent, leaf, true, err);
      if (r < 0)
        return -1;
      if (r == 0 && mkdirat (parent, leaf, 0700) < 0)
        return entry_fail_errno (u, err, errno, "create directory");
      fd = openat (parent, leaf, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }
  if (fd < 0)
    return entry_fail_errno (u, err, errno, "open directory");
  if (apply_xattrs (u, e, fd, -1, NULL, err) < 0)
    return -1;
  record_dir (u, path, e);
  return 0;
}

static int
unpack_regular (unpack *u, struct archive_entry *e, int parent, const char *leaf,
                kp_error **err)
{
  la_int64_t size = archive_entry_size_is_set (e) ? archive_entry_size (e) : 0;
  if (size < 0)
    return entry_fail (u, err, "negative size");
  if ((uint64_t) size > u->opts.max_bytes - u->stats.bytes)
    {
      kp_cleanup_free char *why = xasprintf ("archive exceeds the limit of %llu bytes",
                                             (unsigned long long) u->opts.max_bytes);
      return entry_fail (u, err, why);
    }
  if (check_owner_range (u, e, err) < 0)
    return -1;
  if (make_room (u, parent, leaf, false, err) < 0)
    return -1;
  kp_cleanup_close int fd
      = openat (parent, leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0)
    return entry_fail_errno (u, err, errno, "create file");

  for (;;)
    {
      const void *block;
      size_t len;
      la_int64_t offset;
      int r = archive_read_data_block (u->ar, &block, &len, &offset);
      if (r == ARCHIVE_EOF)
        break;
      if (r < ARCHIVE_WARN)
        {
          kp_cleanup_free char *why = xasprintf ("read data: %s", archive_error_string (u->ar));
          return entry_fail (u, err, why);
        }
      if (offset < 0 || (uint64_t) offset + len > (uint64_t) size)
        return entry_fail (u, err, "data beyond the declared size");
      const char *p = block;
      uint64_t at = (uint64_t) offset;
      while (len > 0)
        {
          ssize_t n = pwrite (fd, p, len, (off_t) at);
          if (n < 0 && errno == EINTR)
            continue;
          if (n < 0)
            return entry_fail_errno (u, err, errno, "write");
          p += n;
          at += (uint64_t) n;
          len -= (size_t) n;
        }
    }
  /* Holes at the end of a sparse member, or a member shorter than declared. */
  if (ftruncate (fd, (off_t) size) < 0)
    return entry_fail_errno (u, err, errno, "set size");
  /* The declared size counts, holes included: a tree of sparse giants is still a bomb for
   * whoever copies or packs it next. */
  u->stats.bytes += (uint64_t) size;

  if (chown_entry (u, e, fd, -1, NULL, err) < 0 || apply_xattrs (u, e, fd, -1, NULL, err) < 0)
    return -1;
  if (fchmod (fd, entry_mode (u, e, false)) < 0)
    return entry_fail_errno (u, err, errno, "change mode");
  struct timespec ts[2];
  entry_times (e, ts);
  if (futimens (fd, ts) < 0)
    return entry_fail_errno (u, err, errno, "set times");
  return 0;
}

static int
unpack_symlink (unpack *u, struct archive_entry *e, int parent, const char *leaf,
                kp_error **err)
{
  const char *target = archive_entry_symlink (e);
  if (target == NULL)
    target = archive_entry_symlink_utf8 (e);
  if (target == NULL || *target == '\0')
    return entry_fail (u, err, "symbolic link without a target");
  if (check_owner_range (u, e, err) < 0)
    return -1;
  if (make_room (u, parent, leaf, false, err) < 0)
    return -1;
  /* The target is stored as text and never followed here: where it points does not matter
   * to the unpacking, and the sandbox resolves it inside the environment's root. */
  if (symlinkat (target, parent, leaf) < 0)
    return entry_fail_errno (u, err, errno, "create symbolic link");
  if (chown_entry (u, e, -1, parent, leaf, err) < 0
      || apply_xattrs (u, e, -1, parent, leaf, err) < 0)
    return -1;
  struct timespec ts[2];
  entry_times (e, ts);
  if (utimensat (parent, leaf, ts, AT_SYMLINK_NOFOLLOW) < 0)
    return entry_fail_errno (u, err, errno, "set times");
  return 0;
}

static int
unpack_special (unpack *u, struct archive_entry *e, mode_t type, int parent, const char *leaf,
                kp_error **err)
{
  dev_t rdev = 0;
  if (type == S_IFCHR || type == S_IFBLK)
    {
      rdev = makedev (archive_entry_rdevmajor (e), archive_entry_rdevminor (e));
      /* 0:0 is an overlay whiteout, not a device: nothing can be opened through it. */
      bool whiteout = type == S_IFCHR && rdev == makedev (0, 0);
      if (!whiteout && !u->opts.allow_devices)
        return entry_fail (u, err, "device nodes are not allowed");
    }
  if (check_owner_range (u, e, err) < 0)
    return -1;
  if (make_room (u, parent, leaf, false, err) < 0)
    return -1;
  if (mknodat (parent, leaf, type | 0600, rdev) < 0)
    return entry_fail_errno (u, err, errno,
                             type == S_IFIFO ? "create fifo" : "create device node");
  if (chown_entry (u, e, -1, parent, leaf, err) < 0
      || apply_xattrs (u, e, -1, parent, leaf, err) < 0)
    return -1;
  if (chmod_nofollow (parent, leaf, type, entry_mode (u, e, false)) < 0)
    return entry_fail_errno (u, err, errno, "change mode");
  struct timespec ts[2];
  entry_times (e, ts);
  if (utimensat (parent, leaf, ts, AT_SYMLINK_NOFOLLOW) < 0)
    return entry_fail_errno (u, err, errno, "set times");
  return 0;
}

/* Merged /usr: "bin/sh" is "usr/bin/sh" (the links are the target's, never followed). */
static const char *const merged_usr_dirs[]
    = { "bin", "sbin", "lib", "lib32", "lib64", "libx32", "libo32", NULL };

static bool
is_merged_usr_dir (const char *name)
{
  for (size_t i = 0; merged_usr_dirs[i]; i++)
    if (strcmp (name, merged_usr_dirs[i]) == 0)
      return true;
  return false;
}

static void
merged_usr_rewrite (kp_beneath_path *p)
{
  if (p->n == 0 || !is_merged_usr_dir (p->components[0]))
    return;
  p->components = xreallocarray (p->components, p->n + 2, sizeof (char *));
  memmove (p->components + 1, p->components, (p->n + 1) * sizeof (char *));
  p->components[0] = xstrdup ("usr");
  p->n++;
}

static int
unpack_hardlink (unpack *u, const char *link, int parent, const char *leaf, kp_error **err)
{
  __attribute__ ((cleanup (kp_beneath_path_clear))) kp_beneath_path tp = { 0 };
  const char *why = NULL;
  kp_cleanup_free char *shown = printable (link);
  if (kp_beneath_path_parse (link, &tp, &why) < 0)
    {
      kp_cleanup_free char *msg = xasprintf ("hard link to \"%s\": %s", shown, why);
      return entry_fail (u, err, msg);
    }
  if (tp.n == 0)
    return entry_fail (u, err, "hard link to the target directory");
  if (u->opts.merged_usr)
    merged_usr_rewrite (&tp);
  /* Reads as: entry "NAME": hard link to "TARGET": <why the target's directory failed>. */
  kp_cleanup_free char *context = xasprintf ("%s\": hard link to \"%s", u->display, shown);
  kp_cleanup_close int tparent
      = kp_beneath_open_dir (u->target, &tp, tp.n - 1, false, u->use_openat2, context, err);
  if (tparent < 0)
    return kp_error_prefix (err, "unpack");
  const char *tleaf = tp.components[tp.n - 1];
  struct stat tst;
  if (fstatat (tparent, tleaf, &tst, AT_SYMLINK_NOFOLLOW) < 0)
    {
      kp_cleanup_free char *msg = xasprintf ("hard link to \"%s\"", shown);
      return entry_fail_errno (u, err, errno, msg);
    }
  if (S_ISDIR (tst.st_mode))
    {
      kp_cleanup_free char *msg = xasprintf ("hard link to the directory \"%s\"", shown);
      return entry_fail (u, err, msg);
    }
  struct stat st;
  if (fstatat (parent, leaf, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_dev == tst.st_dev
      && st.st_ino == tst.st_ino)
    return 0; /* already that file */
  if (make_room (u, parent, leaf, false, err) < 0)
    return -1;
  /* No AT_SYMLINK_FOLLOW: a link to a symbolic link links the link itself. */
  if (linkat (tparent, tleaf, parent, leaf, 0) < 0)
    return entry_fail_errno (u, err, errno, "create hard link");
  return 0;
}

static int
unpack_whiteout (unpack *u, const kp_beneath_path *p, kp_error **err)
{
  const char *leaf = p->components[p->n - 1];
  kp_cleanup_close int parent
      = kp_beneath_open_dir (u->target, p, p->n - 1, true, u->use_openat2, u->display, err);
  if (parent < 0)
    return kp_error_prefix (err, "unpack");

  if (strcmp (leaf, WHITEOUT_OPAQUE) == 0)
    {
      kp_cleanup_close int dir = openat (parent, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (dir < 0)
        return entry_fail_errno (u, err, errno, "open directory");
      if (fsetxattr (dir, OPAQUE_XATTR, "y", 1, 0) < 0)
        return entry_fail_errno (u, err, errno, "mark the directory opaque (" OPAQUE_XATTR ")");
      u->stats.whiteouts++;
      return 0;
    }
  if (kp_str_has_prefix (leaf, WHITEOUT_META_PREFIX))
    return entry_fail (u, err, "unknown whiteout name (\".wh..wh.\" is reserved)");

  const char *name = leaf + strlen (WHITEOUT_PREFIX);
  if (*name == '\0' || strcmp (name, ".") == 0)
    return entry_fail (u, err, "whiteout names no entry");
  if (strcmp (name, "..") == 0)
    return entry_fail (u, err, "path leaves the target directory");
  int r = kp_remove_tree_at (parent, name);
  if (r < 0)
    return entry_fail_errno (u, err, -r, "remove the whited-out entry");
  if (mknodat (parent, name, S_IFCHR | 0000, makedev (0, 0)) < 0)
    return entry_fail_errno (u, err, errno, "create whiteout");
  u->stats.whiteouts++;
  return 0;
}

/* ---- Flatten mode: whiteouts applied to the layers below ---- */

/* The first n components joined, "" for none (the target itself). */
static char *
relative_path (const kp_beneath_path *p, size_t n)
{
  return n == 0 ? xstrdup ("") : kp_beneath_path_join (p, n);
}

/* Remember the first n components of p, and each of their parents, as this archive's.
 * Deepest first: once a path is known, so are its parents. */
static void
mine_add (unpack *u, const kp_beneath_path *p, size_t n)
{
  for (; n > 0; n--)
    {
      kp_cleanup_free char *path = kp_beneath_path_join (p, n);
      if (!path_set_add (&u->mine, path))
        break;
    }
}

static void
opaque_add (unpack *u, const char *dir)
{
  size_t n = kp_strv_length (u->opaque);
  u->opaque = xreallocarray (u->opaque, n + 2, sizeof (char *));
  u->opaque[n] = xstrdup (dir);
  u->opaque[n + 1] = NULL;
}

static int
apply_whiteout (unpack *u, const kp_beneath_path *p, kp_error **err)
{
  const char *leaf = p->components[p->n - 1];
  /* The directory holding a marker is this layer's too (an overlay's upper directory has
     it), whether or not the archive has a member for it. */
  mine_add (u, p, p->n - 1);
  if (strcmp (leaf, WHITEOUT_OPAQUE) == 0)
    {
      kp_cleanup_free char *dir = relative_path (p, p->n - 1);
      opaque_add (u, dir);
      u->stats.whiteouts++;
      return 0;
    }
  if (kp_str_has_prefix (leaf, WHITEOUT_META_PREFIX))
    return entry_fail (u, err, "unknown whiteout name (\".wh..wh.\" is reserved)");
  const char *name = leaf + strlen (WHITEOUT_PREFIX);
  if (*name == '\0' || strcmp (name, ".") == 0)
    return entry_fail (u, err, "whiteout names no entry");
  if (strcmp (name, "..") == 0 || strchr (name, '/'))
    return entry_fail (u, err, "path leaves the target directory");
  u->stats.whiteouts++;

  kp_cleanup_free char *dir = relative_path (p, p->n - 1);
  kp_cleanup_free char *whited = *dir ? xasprintf ("%s/%s", dir, name) : xstrdup (name);
  if (path_set_has (&u->mine, whited))
    {
      /* A whiteout hides only what the layers below have (OCI image-spec, "Whiteouts"):
         this archive's own entry stays, and if it is a directory the lower content under
         it goes at the end, as below an opaque marker. */
      opaque_add (u, whited);
      return 0;
    }
  /* Never through a symbolic link, never creating anything: a whiteout below something the
     layers below do not have as a directory has nothing to delete. */
  kp_cleanup_error kp_error *unresolved = NULL;
  kp_cleanup_close int parent = kp_beneath_open_dir (u->target, p, p->n - 1, false,
                                                     u->use_openat2, u->display, &unresolved);
  if (parent < 0)
    {
      int e = unresolved->errno_value;
      if (e == 0 || e == ENOENT || e == ENOTDIR || e == ELOOP)
        return 0;
      if (err)
        *err = kp_steal_pointer (&unresolved);
      return kp_error_prefix (err, "unpack");
    }
  int r = kp_remove_tree_at (parent, name);
  if (r < 0 && r != -ENOENT)
    return entry_fail_errno (u, err, -r, "remove the whited-out entry");
  return 0;
}

/* Remove everything below dirfd (which is `path`) that this archive did not put there. */
static int
remove_not_mine (unpack *u, int dirfd, const char *path, int depth, kp_error **err)
{
  if (depth > 4096)
    return entry_fail (u, err, "directories nested too deep");
  kp_cleanup_dir DIR *d = kp_dir_open_at (dirfd, NULL);
  if (d == NULL)
    return entry_fail_errno (u, err, errno, "list an opaque directory");
  kp_cleanup_strv char **names = xcalloc (1, sizeof (char *));
  size_t n = 0;
  struct dirent *de;
  while ((de = readdir (d)) != NULL)
    {
      if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
        continue;
      names = xreallocarray (names, n + 2, sizeof (char *));
      names[n++] = xstrdup (de->d_name);
      names[n] = NULL;
    }
  for (size_t i = 0; i < n; i++)
    {
      kp_cleanup_free char *child = path[0] ? xasprintf ("%s/%s", path, names[i])
                                            : xstrdup (names[i]);
      if (!path_set_has (&u->mine, child))
        {
          int r = kp_remove_tree_at (dirfd, names[i]);
          if (r < 0 && r != -ENOENT)
            return entry_fail_errno (u, err, -r, "remove what an opaque directory hides");
          continue;
        }
      struct stat st;
      if (fstatat (dirfd, names[i], &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR (st.st_mode))
        {
          kp_cleanup_close int sub = openat (dirfd, names[i], O_RDONLY | O_DIRECTORY
                                                                  | O_NOFOLLOW | O_CLOEXEC);
          if (sub < 0)
            return entry_fail_errno (u, err, errno, "open a directory below an opaque one");
          if (remove_not_mine (u, sub, child, depth + 1, err) < 0)
            return -1;
        }
    }
  return 0;
}

static int
apply_opaque_dirs (unpack *u, kp_error **err)
{
  if (u->opaque == NULL)
    return 0;
  for (char **o = u->opaque; *o; o++)
    {
      free (u->display);
      u->display = printable (**o ? *o : "./");
      kp_cleanup_close int fd = -1;
      if (**o == '\0')
        fd = openat (u->target, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      else
        {
          __attribute__ ((cleanup (kp_beneath_path_clear))) kp_beneath_path p = { 0 };
          const char *why;
          if (kp_beneath_path_parse (*o, &p, &why) < 0 || p.n == 0)
            continue;
          /* Resolved again without following links: a later member may have put a link
             where a directory was. */
          kp_cleanup_close int parent
              = kp_beneath_open_dir (u->target, &p, p.n - 1, false, u->use_openat2, u->display,
                                     NULL);
          if (parent < 0)
            continue;
          fd = openat (parent, p.components[p.n - 1],
                       O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
          if (fd < 0)
            continue; /* not a directory (any more): nothing below it to hide */
        }
      if (fd < 0)
        return entry_fail_errno (u, err, errno, "open the target");
      if (remove_not_mine (u, fd, *o, 0, err) < 0)
        return -1;
    }
  return 0;
}

static int
unpack_entry (unpack *u, struct archive_entry *e, kp_error **err)
{
  const char *name = archive_entry_pathname (e);
  if (name == NULL)
    name = archive_entry_pathname_utf8 (e);
  free (u->display);
  u->display = printable (name ? name : "");
  if (name == NULL || *name == '\0')
    return entry_fail (u, err, "empty name");

  __attribute__ ((cleanup (kp_beneath_path_clear))) kp_beneath_path p = { 0 };
  const char *why = NULL;
  if (kp_beneath_path_parse (name, &p, &why) < 0)
    return entry_fail (u, err, why);

  const char *link = archive_entry_hardlink (e);
  if (link == NULL)
    link = archive_entry_hardlink_utf8 (e);
  mode_t type = archive_entry_filetype (e);

  if (p.n == 0)
    {
      if (link != NULL || type != AE_IFDIR)
        return entry_fail (u, err, "would replace the target directory with a non-directory");
      return unpack_dir (u, e, -1, NULL, "", err);
    }
  if (u->opts.merged_usr && is_merged_usr_dir (p.components[0]))
    {
      if (p.n == 1 && link == NULL && type == AE_IFDIR)
        return 0; /* the link to usr/ stands for it */
      merged_usr_rewrite (&p);
    }
  const char *leaf = p.components[p.n - 1];
  if (u->opts.apply_whiteouts && kp_str_has_prefix (leaf, WHITEOUT_PREFIX))
    return apply_whiteout (u, &p, err);
  if (u->opts.oci_whiteouts && kp_str_has_prefix (leaf, WHITEOUT_PREFIX))
    return unpack_whiteout (u, &p, err);
  if (u->opts.apply_whiteouts)
    mine_add (u, &p, p.n);

  kp_cleanup_close int parent
      = kp_beneath_open_dir (u->target, &p, p.n - 1, true, u->use_openat2, u->display, err);
  if (parent < 0)
    return kp_error_prefix (err, "unpack");

  if (link != NULL)
    return unpack_hardlink (u, link, parent, leaf, err);
  switch (type)
    {
    case AE_IFDIR:
      {
        kp_cleanup_free char *path = kp_beneath_path_join (&p, p.n);
        return unpack_dir (u, e, parent, leaf, path, err);
      }
    case AE_IFREG:
      return unpack_regular (u, e, parent, leaf, err);
    case AE_IFLNK:
      return unpack_symlink (u, e, parent, leaf, err);
    case AE_IFCHR:
      return unpack_special (u, e, S_IFCHR, parent, leaf, err);
    case AE_IFBLK:
      return unpack_special (u, e, S_IFBLK, parent, leaf, err);
    case AE_IFIFO:
      return unpack_special (u, e, S_IFIFO, parent, leaf, err);
    default:
      return entry_fail (u, err, "unsupported entry type");
    }
}

/* ---- Directory modes, owners and times, deepest first ---- */

static int
compare_fixups (const void *a, const void *b)
{
  const dir_fixup *x = a, *y = b;
  int c = strcmp (x->path, y->path);
  if (c)
    return c;
  return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int
fix_directories (unpack *u, kp_error **err)
{
  if (u->n_dirs == 0)
    return 0;
  qsort (u->dirs, u->n_dirs, sizeof (dir_fixup), compare_fixups);
  for (size_t i = u->n_dirs; i-- > 0;)
    {
      dir_fixup *d = &u->dirs[i];
      if (i + 1 < u->n_dirs && strcmp (d->path, u->dirs[i + 1].path) == 0)
        continue; /* an earlier duplicate: the later member won */
      free (u->display);
      u->display = printable (d->path[0] ? d->path : "./");

      kp_cleanup_close int fd = -1;
      if (d->path[0] == '\0')
        fd = openat (u->target, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      else
        {
          __attribute__ ((cleanup (kp_beneath_path_clear))) kp_beneath_path p = { 0 };
          const char *why;
          if (kp_beneath_path_parse (d->path, &p, &why) < 0 || p.n == 0)
            continue;
          /* A later member may have replaced the directory or one of its parents: then
           * there is nothing of it left to fix. */
          kp_cleanup_close int parent
              = kp_beneath_open_dir (u->target, &p, p.n - 1, false, u->use_openat2, u->display,
                                     NULL);
          if (parent < 0)
            continue;
          fd = openat (parent, p.components[p.n - 1],
                       O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
          if (fd < 0 && (errno == ENOENT || errno == ENOTDIR || errno == ELOOP))
            continue;
        }
      if (fd < 0)
        return entry_fail_errno (u, err, errno, "open directory");
      if (u->opts.preserve_owner && fchown (fd, d->uid, d->gid) < 0)
        return entry_fail_errno (u, err, errno, "change owner");
      if (fchmod (fd, d->mode) < 0)
        return entry_fail_errno (u, err, errno, "change mode");
      struct timespec ts[2] = { { 0, UTIME_OMIT }, { 0, UTIME_OMIT } };
      if (d->has_mtime)
        ts[0].tv_sec = ts[1].tv_sec = (time_t) d->mtime, ts[0].tv_nsec = ts[1].tv_nsec = 0;
      if (futimens (fd, ts) < 0)
        return entry_fail_errno (u, err, errno, "set times");
    }
  return 0;
}

int
kp_archive_unpack (int in_fd, int target_dirfd, const kp_unpack_options *opts,
                   kp_unpack_stats *stats, kp_error **err)
{
  __attribute__ ((cleanup (unpack_clear))) unpack u = { 0 };
  if (opts)
    u.opts = *opts;
  if (u.opts.max_bytes == 0)
    u.opts.max_bytes = DEFAULT_MAX_BYTES;
  if (u.opts.max_entries == 0)
    u.opts.max_entries = DEFAULT_MAX_ENTRIES;
  const char *no_openat2 = getenv ("KARAPACE_NO_OPENAT2");
  u.use_openat2 = !(no_openat2 && strcmp (no_openat2, "1") == 0);
  u.target = target_dirfd;

  struct stat st;
  if (fstat (target_dirfd, &st) < 0)
    return kp_error_errno (err, errno, "unpack: target directory");
  if (!S_ISDIR (st.st_mode))
    return kp_error_set (err, KP_EXIT_FAILURE, "unpack: the target is not a directory");

  u.ar = archive_read_new ();
  if (u.ar == NULL)
    kp_oom ();
  /* Named filters only: the catch-all would also run external programs (lrzip, lzop, …)
   * on whatever the archive claims to be. */
  archive_read_support_filter_gzip (u.ar);
  archive_read_support_filter_bzip2 (u.ar);
  archive_read_support_filter_xz (u.ar);
  archive_read_support_filter_lzma (u.ar);
  archive_read_support_filter_zstd (u.ar);
  archive_read_support_format_tar (u.ar);
  archive_read_support_format_empty (u.ar);
  if (archive_read_open_fd (u.ar, in_fd, READ_BLOCK_SIZE) != ARCHIVE_OK)
    return kp_error_set (err, KP_EXIT_FAILURE, "unpack: read the archive: %s",
                         archive_error_string (u.ar));

  for (;;)
    {
      struct archive_entry *e;
      int r = archive_read_next_header (u.ar, &e);
      if (r == ARCHIVE_EOF)
        break;
      if (r < ARCHIVE_WARN)
        {
          if (u.display)
            return kp_error_set (err, KP_EXIT_FAILURE,
                                 "unpack: read the archive after entry \"%s\": %s", u.display,
                                 archive_error_string (u.ar));
          return kp_error_set (err, KP_EXIT_FAILURE, "unpack: read the archive: %s",
                               archive_error_string (u.ar));
        }
      if (u.stats.entries >= u.opts.max_entries)
        return kp_error_set (err, KP_EXIT_FAILURE,
                             "unpack: archive exceeds the limit of %llu entries",
                             (unsigned long long) u.opts.max_entries);
      u.stats.entries++;
      if (unpack_entry (&u, e, err) < 0)
        return -1;
    }
  if (apply_opaque_dirs (&u, err) < 0)
    return -1;
  if (fix_directories (&u, err) < 0)
    return -1;
  if (stats)
    *stats = u.stats;
  return 0;
}
