/* pack.c — a tree as a tar that depends on nothing but the tree (docs/archive.md).
 *
 * The walk is the tree digest's own (hash/treewalk.c: depth first, a directory before its
 * children, children sorted byte-wise), so the archive lists a layer exactly as its digest
 * does. Every entry is built from scratch from lstat: numeric ids only, mode and type, the
 * modification time to the second (clamped), never access, change or birth times, device
 * and inode numbers, or user and group names. Hard links stay hard links: the first name of
 * an inode in walk order carries the data, later names point back to it. Extended
 * attributes go in pax SCHILY.xattr records sorted by name, without security.selinux,
 * which belongs to the host's labelling policy rather than to the tree.
 *
 * The bytes pass through a write callback that hashes them on their way to out_fd, so the
 * digest comes without a second read. */
#include "archive/archive.h"
#include "base/buf.h"
#include "base/fs.h"
#include "base/xattr.h"
#include "hash/treewalk.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define READ_BUFFER_SIZE (256 * 1024)
#define OUT_BUFFER_SIZE (1024 * 1024)

typedef struct link_slot
{
  dev_t dev;
  ino_t ino;
  char *path; /* NULL: free slot */
} link_slot;

typedef struct pack
{
  struct archive *ar;
  int out_fd;
  int write_errno;
  kp_blake3 hasher;
  uint8_t *out_buf; /* bytes written by libarchive, not yet hashed and written */
  size_t out_len;
  int64_t mtime_clamp;
  bool oci_whiteouts;
  const char *root; /* as given, for messages */
  kp_buf path;      /* relative path of the current entry ("" for the root) */
  uint8_t *buf;
  link_slot *links; /* open addressing on (dev, ino) */
  size_t links_cap;
  size_t links_used;
  kp_xattrs xattrs;
} pack;

/* ---- Output: hash, then write everything, retrying short writes and EINTR ----
 *
 * libarchive hands over one 10 KiB block at a time; gathering them into a large buffer
 * lets BLAKE3 hash many chunks side by side and saves most of the write calls. */

static int
pack_flush (pack *pk)
{
  if (pk->out_len == 0)
    return 0;
  kp_blake3_update (&pk->hasher, pk->out_buf, pk->out_len);
  int r = kp_write_all (pk->out_fd, pk->out_buf, pk->out_len);
  pk->out_len = 0;
  if (r < 0)
    pk->write_errno = -r;
  return r;
}

static la_ssize_t
pack_write_cb (struct archive *ar, void *data, const void *buffer, size_t length)
{
  pack *pk = data;
  const uint8_t *p = buffer;
  size_t left = length;
  while (left > 0)
    {
      size_t n = OUT_BUFFER_SIZE - pk->out_len;
      if (n > left)
        n = left;
      memcpy (pk->out_buf + pk->out_len, p, n);
      pk->out_len += n;
      p += n;
      left -= n;
      if (pk->out_len == OUT_BUFFER_SIZE && pack_flush (pk) < 0)
        {
          archive_set_error (ar, pk->write_errno, "write: %s", strerror (pk->write_errno));
          return -1;
        }
    }
  return (la_ssize_t) length;
}

/* ---- Messages ---- */

static char *
pack_display (const pack *pk)
{
  if (pk->path.len == 0)
    return xstrdup (pk->root);
  return xasprintf ("%s/%s", pk->root, kp_buf_str (&pk->path));
}

static int
pack_fail_errno (const pack *pk, kp_error **err, int errnum, const char *what)
{
  kp_cleanup_free char *display = pack_display (pk);
  return kp_error_errno (err, errnum, "pack: %s '%s'", what, display);
}

static int
pack_fail (const pack *pk, kp_error **err, const char *what)
{
  kp_cleanup_free char *display = pack_display (pk);
  return kp_error_set (err, KP_EXIT_FAILURE, "pack: '%s': %s", display, what);
}

static int
pack_fail_archive (pack *pk, kp_error **err)
{
  if (pk->write_errno)
    return kp_error_errno (err, pk->write_errno, "pack: write the archive");
  kp_cleanup_free char *display = pack_display (pk);
  return kp_error_set (err, KP_EXIT_FAILURE, "pack: '%s': %s", display,
                       archive_error_string (pk->ar) ? archive_error_string (pk->ar)
                                                     : "archive error");
}

/* ---- Hard links: the first path of each (dev, ino) seen with st_nlink > 1 ---- */

static size_t
link_hash (dev_t dev, ino_t ino)
{
  uint64_t h = (uint64_t) ino * 0x9E3779B97F4A7C15ull ^ (uint64_t) dev * 0xC2B2AE3D27D4EB4Full;
  return (size_t) (h ^ (h >> 29));
}

static link_slot *
link_find (pack *pk, dev_t dev, ino_t ino)
{
  size_t mask = pk->links_cap - 1;
  for (size_t i = link_hash (dev, ino) & mask;; i = (i + 1) & mask)
    {
      link_slot *s = &pk->links[i];
      if (s->path == NULL || (s->dev == dev && s->ino == ino))
        return s;
    }
}

/* The earlier path of this inode, or NULL after remembering `path` as its first. */
static const char *
link_first_path (pack *pk, dev_t dev, ino_t ino, const char *path)
{
  if (2 * (pk->links_used + 1) > pk->links_cap)
    {
      link_slot *old = pk->links;
      size_t old_cap = pk->links_cap;
      pk->links_cap = old_cap ? 2 * old_cap : 256;
      pk->links = xcalloc (pk->links_cap, sizeof (link_slot));
      for (size_t i = 0; i < old_cap; i++)
        if (old[i].path)
          *link_find (pk, old[i].dev, old[i].ino) = old[i];
      free (old);
    }
  link_slot *s = link_find (pk, dev, ino);
  if (s->path)
    return s->path;
  s->dev = dev;
  s->ino = ino;
  s->path = xstrdup (path);
  pk->links_used++;
  return NULL;
}

/* ---- Extended attributes, sorted by name ---- */

static bool
is_overlay_xattr (const char *name)
{
  return kp_str_has_prefix (name, "trusted.overlay.") || kp_str_has_prefix (name, "user.overlay.");
}

/* Add the entry's attributes; through fd when it has one, else through its
 * /proc/self/fd/DIR/NAME path (links and special files are never opened). With
 * oci_whiteouts, the overlay's attributes stay out of the archive; *opaque says whether
 * one of them marked the directory opaque. */
static int
add_xattrs (pack *pk, struct archive_entry *e, int fd, int dir_fd, const char *name,
            bool *opaque, kp_error **err)
{
  int r = kp_xattrs_read (&pk->xattrs, fd, dir_fd, name);
  if (r < 0)
    return pack_fail_errno (pk, err, -r, "read extended attributes of");
  for (size_t i = 0; i < pk->xattrs.len; i++)
    {
      const kp_xattr *x = &pk->xattrs.items[i];
      if (pk->oci_whiteouts && is_overlay_xattr (x->name))
        {
          if (opaque && kp_str_has_suffix (x->name, ".overlay.opaque") && x->len == 1
              && x->value[0] == 'y')
            *opaque = true;
          continue;
        }
      archive_entry_xattr_add_entry (e, x->name, x->value, x->len);
    }
  return 0;
}

/* ---- Entries ---- */

/* The fields every entry shares; never atime, ctime, birthtime, dev, ino or names. */
static struct archive_entry *
entry_new (const pack *pk, const struct stat *st)
{
  struct archive_entry *e = archive_entry_new ();
  if (e == NULL)
    kp_oom ();
  if (pk->path.len == 0)
    archive_entry_copy_pathname (e, "./");
  else
    archive_entry_copy_pathname (e, kp_buf_str (&pk->path));
  archive_entry_set_mode (e, st->st_mode);
  archive_entry_set_uid (e, (la_int64_t) st->st_uid);
  archive_entry_set_gid (e, (la_int64_t) st->st_gid);
  int64_t mtime = (int64_t) st->st_mtim.tv_sec;
  if (pk->mtime_clamp >= 0 && mtime > pk->mtime_clamp)
    mtime = pk->mtime_clamp;
  archive_entry_set_mtime (e, (time_t) mtime, 0);
  return e;
}

static void
entry_freep (struct archive_entry **e)
{
  if (*e)
    archive_entry_free (*e);
}
#define cleanup_entry __attribute__ ((cleanup (entry_freep)))

static int
write_header (pack *pk, struct archive_entry *e, kp_error **err)
{
  int r = archive_write_header (pk->ar, e);
  if (r < ARCHIVE_WARN)
    return pack_fail_archive (pk, err);
  return 0;
}

/* A regular file, open as fd (the walker checked its type and identity). */
static int
pack_regular (pack *pk, int fd, int dir_fd, const char *name, const struct stat *seen,
              kp_error **err)
{
  const struct stat st = *seen;
  cleanup_entry struct archive_entry *e = entry_new (pk, &st);
  archive_entry_set_size (e, (la_int64_t) st.st_size);
  if (add_xattrs (pk, e, fd, dir_fd, name, NULL, err) < 0)
    return -1;
  if (write_header (pk, e, err) < 0)
    return -1;

  uint64_t left = (uint64_t) st.st_size;
  while (left > 0)
    {
      size_t want = left < READ_BUFFER_SIZE ? (size_t) left : READ_BUFFER_SIZE;
      ssize_t got = read (fd, pk->buf, want);
      if (got < 0 && errno == EINTR)
        continue;
      if (got < 0)
        return pack_fail_errno (pk, err, errno, "read");
      if (got == 0)
        return pack_fail (pk, err, "shrank while it was being packed");
      if (archive_write_data (pk->ar, pk->buf, (size_t) got) != got)
        return pack_fail_archive (pk, err);
      left -= (uint64_t) got;
    }
  /* One more byte would mean the file grew: the archive would no longer match it. */
  ssize_t extra;
  do
    extra = read (fd, pk->buf, 1);
  while (extra < 0 && errno == EINTR);
  if (extra > 0)
    return pack_fail (pk, err, "grew while it was being packed");
  return 0;
}

static int
pack_hardlink (pack *pk, const struct stat *st, const char *first, kp_error **err)
{
  cleanup_entry struct archive_entry *e = entry_new (pk, st);
  archive_entry_copy_hardlink (e, first);
  archive_entry_set_size (e, 0);
  return write_header (pk, e, err);
}

static int
pack_other (pack *pk, int dir_fd, const char *name, const struct stat *st, kp_error **err)
{
  cleanup_entry struct archive_entry *e = entry_new (pk, st);
  archive_entry_set_size (e, 0);
  if (S_ISLNK (st->st_mode))
    {
      size_t cap = st->st_size > 0 ? (size_t) st->st_size + 1 : 256;
      kp_cleanup_free char *target = NULL;
      for (;;)
        {
          target = xrealloc (target, cap);
          ssize_t n = readlinkat (dir_fd, name, target, cap);
          if (n < 0)
            return pack_fail_errno (pk, err, errno, "read link");
          if ((size_t) n < cap)
            {
              target[n] = '\0';
              break;
            }
          cap *= 2;
        }
      archive_entry_copy_symlink (e, target);
    }
  else if (S_ISCHR (st->st_mode) || S_ISBLK (st->st_mode))
    {
      archive_entry_set_rdevmajor (e, major (st->st_rdev));
      archive_entry_set_rdevminor (e, minor (st->st_rdev));
    }
  if (add_xattrs (pk, e, -1, dir_fd, name, NULL, err) < 0)
    return -1;
  return write_header (pk, e, err);
}

/* An OCI whiteout marker: an empty regular file named DIR/.wh.NAME (or .wh..wh..opq),
 * with the owner and time of what it stands for. */
static int
pack_whiteout_marker (pack *pk, const struct stat *st, const char *marker_path, mode_t perm,
                      kp_error **err)
{
  struct stat marker = *st;
  marker.st_mode = S_IFREG | perm;
  cleanup_entry struct archive_entry *e = entry_new (pk, &marker);
  archive_entry_copy_pathname (e, marker_path);
  archive_entry_set_size (e, 0);
  return write_header (pk, e, err);
}

/* Write one entry of the walk (docs/archive.md). The walk is the tree digest's, so an
 * archive lists entries in the order their digest records do. */
static int
pack_entry (const kp_tree_entry *en, void *user_data, kp_error **err)
{
  pack *pk = user_data;
  const struct stat *st = en->st;
  kp_buf_truncate (&pk->path, 0);
  kp_buf_append (&pk->path, en->path, en->path_len);

  if (S_ISDIR (st->st_mode))
    {
      bool opaque = false;
      cleanup_entry struct archive_entry *e = entry_new (pk, st);
      if (add_xattrs (pk, e, en->fd, en->dir_fd, en->name, &opaque, err) < 0
          || write_header (pk, e, err) < 0)
        return -1;
      if (!opaque)
        return 0;
      kp_cleanup_free char *marker = en->path_len
                                         ? xasprintf ("%s/.wh..wh..opq", kp_buf_str (&pk->path))
                                         : xstrdup (".wh..wh..opq");
      return pack_whiteout_marker (pk, st, marker, 0644, err);
    }

  if (S_ISSOCK (st->st_mode))
    return 0; /* tar has no way to hold a socket (docs/archive.md) */

  if (pk->oci_whiteouts && S_ISCHR (st->st_mode) && st->st_rdev == makedev (0, 0))
    {
      size_t name_len = strlen (en->name);
      size_t parent_len = en->path_len > name_len ? en->path_len - name_len - 1 : 0;
      kp_cleanup_free char *marker
          = parent_len ? xasprintf ("%.*s/.wh.%s", (int) parent_len, en->path, en->name)
                       : xasprintf (".wh.%s", en->name);
      return pack_whiteout_marker (pk, st, marker, 0644, err);
    }

  if (st->st_nlink > 1)
    {
      const char *first = link_first_path (pk, st->st_dev, st->st_ino, kp_buf_str (&pk->path));
      if (first)
        return pack_hardlink (pk, st, first, err);
    }

  if (S_ISREG (st->st_mode))
    return pack_regular (pk, en->fd, en->dir_fd, en->name, st, err);
  return pack_other (pk, en->dir_fd, en->name, st, err);
}

static void
pack_clear (pack *pk)
{
  if (pk->ar)
    archive_write_free (pk->ar);
  for (size_t i = 0; i < pk->links_cap; i++)
    free (pk->links[i].path);
  free (pk->links);
  free (pk->buf);
  free (pk->out_buf);
  kp_xattrs_clear (&pk->xattrs);
  kp_buf_clear (&pk->path);
}

int
kp_archive_pack (int dirfd, const char *path, int out_fd, const kp_pack_options *opts,
                 uint8_t digest[KP_BLAKE3_OUT_LEN], kp_error **err)
{
  __attribute__ ((cleanup (pack_clear))) pack pk = { 0 };
  pk.out_fd = out_fd;
  pk.mtime_clamp = opts ? opts->mtime_clamp : -1;
  pk.oci_whiteouts = opts && opts->oci_whiteouts;
  pk.root = path;
  pk.buf = xmalloc (READ_BUFFER_SIZE);
  pk.out_buf = xmalloc (OUT_BUFFER_SIZE);
  kp_blake3_init (&pk.hasher);

  pk.ar = archive_write_new ();
  if (pk.ar == NULL)
    kp_oom ();
  if (archive_write_set_format_pax_restricted (pk.ar) != ARCHIVE_OK
      || archive_write_set_format_option (pk.ar, "pax", "xattrheader", "SCHILY") != ARCHIVE_OK
      || archive_write_add_filter_none (pk.ar) != ARCHIVE_OK)
    return kp_error_set (err, KP_EXIT_FAILURE, "pack: set up the archive writer: %s",
                         archive_error_string (pk.ar));
  if (archive_write_open (pk.ar, &pk, NULL, pack_write_cb, NULL) != ARCHIVE_OK)
    return pack_fail_archive (&pk, err);

  /* The root's own entry comes first and carries its mode, owner and attributes, which
   * the digest counts too. */
  if (kp_tree_walk (dirfd, path, pack_entry, &pk, err) < 0)
    return kp_error_prefix (err, "pack");
  if (archive_write_close (pk.ar) != ARCHIVE_OK)
    return pack_fail_archive (&pk, err);
  if (pack_flush (&pk) < 0)
    return kp_error_errno (err, pk.write_errno, "pack: write the archive");
  if (digest)
    kp_blake3_final (&pk.hasher, digest, KP_BLAKE3_OUT_LEN);
  return 0;
}

#ifdef KP_STATIC_LIBARCHIVE
/* Only when libarchive is linked statically (meson option static_libarchive).
 *
 * libarchive's pax writer reports an entry it cannot archive through one helper,
 * __archive_write_entry_filetype_unsupported(), which lives in the object that also
 * holds archive_write_set_format(): the table of every writer libarchive has. Taking
 * the helper from there pulls in the 7zip, cpio, iso9660, mtree, shar, warc, xar and
 * zip writers, and with them libxml2 (and so ICU and libstdc++) and nettle -- about
 * 1.2 ms of dynamic loading on every start of every command, for writers we never
 * call. Defining the helper here, in an object every link that packs takes before
 * libarchive's, satisfies the pax writer, so the linker leaves that object out. The
 * pax writer is the only one we use; the startup-libraries test checks that the
 * binary does not need those libraries. */

/* The prototype libarchive's private archive_write_private.h declares. */
void __archive_write_entry_filetype_unsupported (struct archive *a,
                                                 struct archive_entry *entry,
                                                 const char *format);

void
__archive_write_entry_filetype_unsupported (struct archive *a,
                                            struct archive_entry *entry,
                                            const char *format)
{
  const char *what;

  switch (archive_entry_filetype (entry))
    {
    case AE_IFREG: what = "regular files"; break;
    case AE_IFDIR: what = "directories"; break;
    case AE_IFLNK: what = "symbolic links"; break;
    case AE_IFCHR: what = "character devices"; break;
    case AE_IFBLK: what = "block devices"; break;
    case AE_IFIFO: what = "named pipes"; break;
    case AE_IFSOCK: what = "sockets"; break;
    default: what = "this kind of file"; break;
    }
  archive_set_error (a, EINVAL, "%s: the %s format cannot store %s",
                     archive_entry_pathname (entry), format, what);
}
#endif
