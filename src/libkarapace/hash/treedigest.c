/* treedigest.c — file and tree digests (docs/identity.md, "Tree digest").
 *
 * The walk itself, its order and its safety rules, live in treewalk.c, which the packer
 * shares; this file turns each entry into its record and hashes the records. */
#include "treedigest.h"

#include "base/xattr.h"
#include "treewalk.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

typedef struct digest_state
{
  const kp_tree_entry *entry; /* the entry being recorded */
  kp_buf record;
  kp_buf xattrs;
  kp_xattrs xattr_set;
  uint8_t *file_buf;
  kp_blake3 hasher;
  kp_tree_digest_cb on_record;
  void *user_data;
} digest_state;

void
kp_tree_digest_encode (kp_buf *b, const void *data, size_t len)
{
  static const char digits[] = "0123456789ABCDEF";
  const uint8_t *p = data;
  size_t run = 0; /* bytes at p[i - run .. i) that need no escaping */
  for (size_t i = 0; i < len; i++)
    {
      uint8_t c = p[i];
      if (c >= 0x21 && c <= 0x7e && c != '%' && c != ',' && c != '=')
        {
          run++;
          continue;
        }
      if (run)
        kp_buf_append (b, p + i - run, run);
      run = 0;
      char esc[3] = { '%', digits[c >> 4], digits[c & 0xf] };
      kp_buf_append (b, esc, sizeof esc);
    }
  if (run)
    kp_buf_append (b, p + len - run, run);
}

static void
append_hex (kp_buf *b, const uint8_t *data, size_t len)
{
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < len; i++)
    {
      char pair[2] = { digits[data[i] >> 4], digits[data[i] & 0xf] };
      kp_buf_append (b, pair, sizeof pair);
    }
}

static int
entry_fail_errno (const digest_state *d, kp_error **err, int errnum, const char *what)
{
  kp_cleanup_free char *display = kp_tree_entry_display (d->entry);
  return kp_error_errno (err, errnum, "%s '%s'", what, display);
}

static int
entry_fail (const digest_state *d, kp_error **err, const char *what)
{
  kp_cleanup_free char *display = kp_tree_entry_display (d->entry);
  return kp_error_set (err, KP_EXIT_FAILURE, "'%s' %s", display, what);
}

static int
xattr_fail (const digest_state *w, kp_error **err, int errnum)
{
  entry_fail_errno (w, err, errnum, "read extended attributes of");
  if (errnum == ENOENT)
    kp_error_hint (err, "attributes of links and special files are read through /proc/self/fd; "
                        "is /proc mounted?");
  return -1;
}

/* Fill w->xattrs with the XATTRS field: "-", or NAME=HEXVALUE pairs sorted by name. */
static int
read_xattrs (digest_state *w, int fd, int dir_fd, const char *name, kp_error **err)
{
  kp_buf_truncate (&w->xattrs, 0);
  int r = kp_xattrs_read (&w->xattr_set, fd, dir_fd, name);
  if (r < 0)
    return xattr_fail (w, err, -r);
  if (w->xattr_set.len == 0)
    {
      kp_buf_putc (&w->xattrs, '-');
      return 0;
    }
  for (size_t i = 0; i < w->xattr_set.len; i++)
    {
      const kp_xattr *x = &w->xattr_set.items[i];
      if (i > 0)
        kp_buf_putc (&w->xattrs, ',');
      kp_tree_digest_encode (&w->xattrs, x->name, strlen (x->name));
      kp_buf_putc (&w->xattrs, '=');
      append_hex (&w->xattrs, x->value, x->len);
    }
  return 0;
}

static void
record_begin (digest_state *w, char type, const struct stat *st)
{
  mode_t mode = type == 'l' ? 0777 : (st->st_mode & 07777);
  kp_buf_truncate (&w->record, 0);
  kp_buf_printf (&w->record, "%c %04o %lu %lu ", type, (unsigned) mode,
                 (unsigned long) st->st_uid, (unsigned long) st->st_gid);
}

/* Finish the record after its payload, hash it and hand it to the callback. */
static int
record_end (digest_state *w, kp_error **err)
{
  kp_buf_putc (&w->record, ' ');
  kp_buf_append (&w->record, w->xattrs.data, w->xattrs.len);
  kp_buf_putc (&w->record, ' ');
  if (w->entry->path_len == 0)
    kp_buf_putc (&w->record, '.');
  else
    kp_tree_digest_encode (&w->record, w->entry->path, w->entry->path_len);
  kp_buf_putc (&w->record, '\n');

  kp_blake3_update (&w->hasher, w->record.data, w->record.len);
  if (w->on_record && w->on_record (w->record.data, w->record.len, w->user_data, err) < 0)
    {
      if (err && *err == NULL)
        kp_error_set (err, KP_EXIT_FAILURE, "tree digest: stopped while listing records");
      return -1;
    }
  return 0;
}

static bool
same_inode (const struct stat *a, const struct stat *b)
{
  return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

/* Record a regular file, already open as fd with status st. */
static int
visit_file (digest_state *w, int fd, int dir_fd, const char *name, const struct stat *st,
            kp_error **err)
{
  if (read_xattrs (w, fd, dir_fd, name, err) < 0)
    return -1;

  uint8_t digest[KP_BLAKE3_OUT_LEN];
  if (kp_blake3_fd_buffer (fd, w->file_buf, KP_BLAKE3_FD_BUFFER_SIZE, digest, err) < 0)
    {
      kp_cleanup_free char *display = kp_tree_entry_display (w->entry);
      return kp_error_prefix (err, "hash '%s'", display);
    }
  char hex[KP_BLAKE3_HEX_LEN + 1];
  kp_blake3_to_hex (digest, hex);

  record_begin (w, 'f', st);
  kp_buf_append (&w->record, hex, KP_BLAKE3_HEX_LEN);
  return record_end (w, err);
}

static int
visit_symlink (digest_state *w, int dir_fd, const char *name, const struct stat *st, kp_error **err)
{
  size_t size = st->st_size > 0 && st->st_size < 65536 ? (size_t) st->st_size + 1 : 256;
  kp_cleanup_free char *target = NULL;
  ssize_t len;
  for (;;)
    {
      target = xrealloc (target, size);
      len = readlinkat (dir_fd, name, target, size);
      if (len < 0)
        return entry_fail_errno (w, err, errno, "read link");
      if ((size_t) len < size)
        break;
      if (__builtin_mul_overflow (size, 2, &size))
        kp_oom ();
    }
  if (read_xattrs (w, -1, dir_fd, name, err) < 0)
    return -1;
  record_begin (w, 'l', st);
  kp_tree_digest_encode (&w->record, target, (size_t) len);
  return record_end (w, err);
}

static int
visit_special (digest_state *w, int dir_fd, const char *name, const struct stat *st, kp_error **err)
{
  char type;
  switch (st->st_mode & S_IFMT)
    {
    case S_IFCHR:
      type = 'c';
      break;
    case S_IFBLK:
      type = 'b';
      break;
    case S_IFIFO:
      type = 'p';
      break;
    case S_IFSOCK:
      type = 's';
      break;
    default:
      return entry_fail (w, err, "has a file type a tree digest cannot represent");
    }
  /* Never opened: opening a device or a fifo has effects of its own. */
  if (read_xattrs (w, -1, dir_fd, name, err) < 0)
    return -1;
  record_begin (w, type, st);
  if (type == 'c' || type == 'b')
    kp_buf_printf (&w->record, "%u,%u", major (st->st_rdev), minor (st->st_rdev));
  else
    kp_buf_putc (&w->record, '-');
  return record_end (w, err);
}

static int
record_entry (const kp_tree_entry *e, void *user_data, kp_error **err)
{
  digest_state *d = user_data;
  d->entry = e;
  const struct stat *st = e->st;
  switch (st->st_mode & S_IFMT)
    {
    case S_IFDIR:
      if (read_xattrs (d, e->fd, -1, NULL, err) < 0)
        return -1;
      record_begin (d, 'd', st);
      kp_buf_putc (&d->record, '-');
      return record_end (d, err);
    case S_IFREG:
      return visit_file (d, e->fd, e->dir_fd, e->name, st, err);
    case S_IFLNK:
      return visit_symlink (d, e->dir_fd, e->name, st, err);
    default:
      return visit_special (d, e->dir_fd, e->name, st, err);
    }
}

int
kp_tree_digest (int dirfd, const char *path, uint8_t out[KP_BLAKE3_OUT_LEN],
                kp_tree_digest_cb on_record, void *user_data, kp_error **err)
{
  digest_state d = { .on_record = on_record, .user_data = user_data };
  d.file_buf = aligned_alloc (64, KP_BLAKE3_FD_BUFFER_SIZE);
  if (d.file_buf == NULL)
    kp_oom ();
  kp_blake3_init (&d.hasher);
  int r = kp_tree_walk (dirfd, path, record_entry, &d, err);
  if (r == 0)
    kp_blake3_final (&d.hasher, out, KP_BLAKE3_OUT_LEN);
  free (d.file_buf);
  kp_buf_clear (&d.record);
  kp_buf_clear (&d.xattrs);
  kp_xattrs_clear (&d.xattr_set);
  return r;
}

static const char *
type_name (mode_t mode)
{
  switch (mode & S_IFMT)
    {
    case S_IFLNK:
      return "symbolic link";
    case S_IFCHR:
      return "character device";
    case S_IFBLK:
      return "block device";
    case S_IFIFO:
      return "fifo";
    case S_IFSOCK:
      return "socket";
    default:
      return "special file";
    }
}

int
kp_digest_path (int dirfd, const char *path, uint8_t out[KP_BLAKE3_OUT_LEN],
                kp_digest_kind *kind, kp_tree_digest_cb on_record, void *user_data,
                kp_error **err)
{
  struct stat seen;
  if (fstatat (dirfd, path, &seen, AT_SYMLINK_NOFOLLOW) < 0)
    return kp_error_errno (err, errno, "stat '%s'", path);

  if (S_ISDIR (seen.st_mode))
    {
      if (kp_tree_digest (dirfd, path, out, on_record, user_data, err) < 0)
        return -1;
      if (kind)
        *kind = KP_DIGEST_TREE;
      return 0;
    }
  if (!S_ISREG (seen.st_mode))
    return kp_error_set (err, KP_EXIT_FAILURE,
                         "'%s' is a %s; only regular files and directories have a digest", path,
                         type_name (seen.st_mode));

  kp_cleanup_close int fd
      = openat (dirfd, path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0)
    return kp_error_errno (err, errno, "open '%s'", path);
  struct stat st;
  if (fstat (fd, &st) < 0)
    return kp_error_errno (err, errno, "stat '%s'", path);
  if (!S_ISREG (st.st_mode) || !same_inode (&st, &seen))
    return kp_error_set (err, KP_EXIT_FAILURE, "'%s' changed while it was being read", path);
  if (kp_blake3_fd (fd, out, err) < 0)
    return kp_error_prefix (err, "hash '%s'", path);
  if (kind)
    *kind = KP_DIGEST_FILE;
  return 0;
}
