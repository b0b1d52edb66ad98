/* treedigest.c — the canonical walk behind tree digests (docs/identity.md, "Tree digest").
 *
 * The walk is iterative, with a stack of directory frames on the heap, so a deep tree
 * costs memory rather than C stack. Each frame lists and sorts its directory once when it
 * is entered. Frames keep their directory open for the first KEEP_OPEN_DEPTH levels; deeper
 * ones close their parent's descriptor and reopen it through ".." on the way back up,
 * checking device and inode, so a tree of any depth needs a bounded number of descriptors.
 *
 * Every lookup is relative to a held directory descriptor and never follows a symbolic
 * link. Entries readdir reports as regular files or directories are opened at once and
 * described by fstat on the descriptor; anything else, or a stale report, goes through
 * lstat first, and only regular files and directories are ever opened. */
#include "treedigest.h"

#include "base/xattr.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/* Directory descriptors held at once before the walk starts reopening parents via "..". */
#define KEEP_OPEN_DEPTH 64


typedef struct entry
{
  const char *name;   /* in the frame's name_store */
  size_t offset;      /* of the name in name_store, while the listing grows */
  unsigned char type; /* readdir's d_type: a hint, DT_UNKNOWN when the filesystem is silent */
} entry;

typedef struct frame
{
  int fd; /* -1 while a deeper frame has given it back */
  dev_t dev;
  ino_t ino;
  char *name_store; /* the names, each NUL-terminated */
  entry *entries;   /* sorted by name */
  size_t n_entries;
  size_t next;
  size_t path_len; /* this directory's relative path in walk.path ("" for the root) */
  size_t enc_len;  /* and in walk.enc_path */
} frame;

typedef struct walk
{
  const char *root; /* the path as given, for messages */
  frame *frames;
  size_t n_frames;
  size_t cap_frames;
  kp_buf path;     /* relative path of the current entry, raw bytes */
  kp_buf enc_path; /* the same, percent-encoded */
  kp_buf record;
  kp_buf xattrs;
  kp_xattrs xattr_set;
  uint8_t *file_buf;
  kp_blake3 hasher;
  kp_tree_digest_cb on_record;
  void *user_data;
} walk;

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

/* The current entry as the user would name it: the root as given, then the relative path. */
static char *
walk_display (const walk *w)
{
  if (w->path.len == 0)
    return xstrdup (w->root);
  bool slash = kp_str_has_suffix (w->root, "/");
  return xasprintf ("%s%s%s", w->root, slash ? "" : "/", kp_buf_str (&w->path));
}

static int
walk_fail_errno (const walk *w, kp_error **err, int errnum, const char *what)
{
  kp_cleanup_free char *display = walk_display (w);
  return kp_error_errno (err, errnum, "%s '%s'", what, display);
}

static int
walk_fail (const walk *w, kp_error **err, const char *what)
{
  kp_cleanup_free char *display = walk_display (w);
  return kp_error_set (err, KP_EXIT_FAILURE, "'%s' %s", display, what);
}

static void
walk_clear (walk *w)
{
  for (size_t i = 0; i < w->n_frames; i++)
    {
      if (w->frames[i].fd >= 0)
        close (w->frames[i].fd);
      free (w->frames[i].name_store);
      free (w->frames[i].entries);
    }
  free (w->frames);
  kp_buf_clear (&w->path);
  kp_buf_clear (&w->enc_path);
  kp_buf_clear (&w->record);
  kp_buf_clear (&w->xattrs);
  kp_xattrs_clear (&w->xattr_set);
  free (w->file_buf);
  memset (w, 0, sizeof *w);
}

static int
compare_entries (const void *a, const void *b)
{
  return strcmp (((const entry *) a)->name, ((const entry *) b)->name);
}

/* The directory's entries, without "." and "..", sorted byte-wise by name. */
static int
list_directory (const walk *w, int fd, frame *f, kp_error **err)
{
  /* readdir() owns the descriptor it is given; the frame keeps its own. */
  int dup_fd = fcntl (fd, F_DUPFD_CLOEXEC, 3);
  if (dup_fd < 0)
    return walk_fail_errno (w, err, errno, "duplicate descriptor of");
  kp_cleanup_dir DIR *dir = fdopendir (dup_fd);
  if (dir == NULL)
    {
      int e = errno;
      close (dup_fd);
      return walk_fail_errno (w, err, e, "list directory");
    }

  kp_cleanup_buf kp_buf store = KP_BUF_INIT;
  kp_cleanup_free entry *entries = NULL;
  size_t n = 0, cap = 0;
  for (;;)
    {
      errno = 0;
      struct dirent *de = readdir (dir);
      if (de == NULL)
        {
          if (errno != 0)
            return walk_fail_errno (w, err, errno, "list directory");
          break;
        }
      if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
        continue;
      if (n == cap)
        {
          cap = cap ? 2 * cap : 16;
          entries = xreallocarray (entries, cap, sizeof (entry));
        }
      entries[n++] = (entry) { .offset = store.len, .type = de->d_type };
      kp_buf_append (&store, de->d_name, strlen (de->d_name) + 1);
    }
  /* One allocation for all names; pointers only once it has stopped moving. */
  for (size_t i = 0; i < n; i++)
    entries[i].name = store.data + entries[i].offset;
  if (n)
    qsort (entries, n, sizeof (entry), compare_entries);
  f->name_store = kp_buf_steal (&store);
  f->entries = kp_steal_pointer (&entries);
  f->n_entries = n;
  return 0;
}

static int
xattr_fail (const walk *w, kp_error **err, int errnum)
{
  walk_fail_errno (w, err, errnum, "read extended attributes of");
  if (errnum == ENOENT)
    kp_error_hint (err, "attributes of links and special files are read through /proc/self/fd; "
                        "is /proc mounted?");
  return -1;
}

/* Fill w->xattrs with the XATTRS field: "-", or NAME=HEXVALUE pairs sorted by name. */
static int
read_xattrs (walk *w, int fd, int dir_fd, const char *name, kp_error **err)
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
record_begin (walk *w, char type, const struct stat *st)
{
  mode_t mode = type == 'l' ? 0777 : (st->st_mode & 07777);
  kp_buf_truncate (&w->record, 0);
  kp_buf_printf (&w->record, "%c %04o %lu %lu ", type, (unsigned) mode,
                 (unsigned long) st->st_uid, (unsigned long) st->st_gid);
}

/* Finish the record after its payload, hash it and hand it to the callback. */
static int
record_end (walk *w, kp_error **err)
{
  kp_buf_putc (&w->record, ' ');
  kp_buf_append (&w->record, w->xattrs.data, w->xattrs.len);
  kp_buf_putc (&w->record, ' ');
  if (w->enc_path.len == 0)
    kp_buf_putc (&w->record, '.');
  else
    kp_buf_append (&w->record, w->enc_path.data, w->enc_path.len);
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

/* Open an entry found by lstat and check that it is still that entry. */
static int
open_checked (const walk *w, int dir_fd, const char *name, int flags, const struct stat *seen,
              struct stat *st, kp_error **err)
{
  kp_cleanup_close int fd = openat (dir_fd, name, flags | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
  if (fd < 0)
    return walk_fail_errno (w, err, errno, "open");
  if (fstat (fd, st) < 0)
    return walk_fail_errno (w, err, errno, "stat");
  if (!same_inode (st, seen) || (st->st_mode & S_IFMT) != (seen->st_mode & S_IFMT))
    return walk_fail (w, err, "changed while the tree was being read");
  return kp_steal_fd (&fd);
}

/* Record a regular file, already open as fd with status st. */
static int
visit_file (walk *w, int fd, int dir_fd, const char *name, const struct stat *st,
            kp_error **err)
{
  if (read_xattrs (w, fd, dir_fd, name, err) < 0)
    return -1;

  uint8_t digest[KP_BLAKE3_OUT_LEN];
  if (kp_blake3_fd_buffer (fd, w->file_buf, KP_BLAKE3_FD_BUFFER_SIZE, digest, err) < 0)
    {
      kp_cleanup_free char *display = walk_display (w);
      return kp_error_prefix (err, "hash '%s'", display);
    }
  char hex[KP_BLAKE3_HEX_LEN + 1];
  kp_blake3_to_hex (digest, hex);

  record_begin (w, 'f', st);
  kp_buf_append (&w->record, hex, KP_BLAKE3_HEX_LEN);
  return record_end (w, err);
}

static int
visit_symlink (walk *w, int dir_fd, const char *name, const struct stat *st, kp_error **err)
{
  size_t size = st->st_size > 0 && st->st_size < 65536 ? (size_t) st->st_size + 1 : 256;
  kp_cleanup_free char *target = NULL;
  ssize_t len;
  for (;;)
    {
      target = xrealloc (target, size);
      len = readlinkat (dir_fd, name, target, size);
      if (len < 0)
        return walk_fail_errno (w, err, errno, "read link");
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
visit_special (walk *w, int dir_fd, const char *name, const struct stat *st, kp_error **err)
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
      return walk_fail (w, err, "has a file type a tree digest cannot represent");
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

/* Emit a directory's record and make it the current frame. Takes ownership of fd. */
static int
enter_directory (walk *w, int fd_in, const struct stat *st, kp_error **err)
{
  kp_cleanup_close int fd = fd_in;
  if (read_xattrs (w, fd, -1, NULL, err) < 0)
    return -1;
  record_begin (w, 'd', st);
  kp_buf_putc (&w->record, '-');
  if (record_end (w, err) < 0)
    return -1;

  frame child = { 0 };
  if (list_directory (w, fd, &child, err) < 0)
    return -1;
  if (w->n_frames == w->cap_frames)
    {
      w->cap_frames = w->cap_frames ? 2 * w->cap_frames : 16;
      w->frames = xreallocarray (w->frames, w->cap_frames, sizeof (frame));
    }
  if (w->n_frames >= KEEP_OPEN_DEPTH)
    {
      /* Reopened through ".." when this directory is done. */
      frame *parent = &w->frames[w->n_frames - 1];
      close (parent->fd);
      parent->fd = -1;
    }
  child.fd = kp_steal_fd (&fd);
  child.dev = st->st_dev;
  child.ino = st->st_ino;
  child.path_len = w->path.len;
  child.enc_len = w->enc_path.len;
  w->frames[w->n_frames++] = child;
  return 0;
}

static int
leave_directory (walk *w, kp_error **err)
{
  frame *done = &w->frames[w->n_frames - 1];
  if (w->n_frames >= 2 && w->frames[w->n_frames - 2].fd < 0)
    {
      frame *parent = &w->frames[w->n_frames - 2];
      kp_buf_truncate (&w->path, parent->path_len);
      kp_cleanup_close int fd = openat (done->fd, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (fd < 0)
        return walk_fail_errno (w, err, errno, "reopen directory");
      struct stat st;
      if (fstat (fd, &st) < 0)
        return walk_fail_errno (w, err, errno, "stat");
      if (st.st_dev != parent->dev || st.st_ino != parent->ino)
        return walk_fail (w, err, "was moved while the tree was being read");
      parent->fd = kp_steal_fd (&fd);
    }
  close (done->fd);
  free (done->name_store);
  free (done->entries);
  w->n_frames--;
  return 0;
}

/* When readdir says "regular file" or "directory", open the entry straight away and take
 * its status from the open descriptor, which saves an lstat per entry. Returns the
 * descriptor, or -1 with errno 0 when the hint turned out stale (the caller then starts
 * over with lstat), or -1 with errno set on a real failure. */
static int
open_by_hint (int dir_fd, const char *name, unsigned char type, struct stat *st)
{
  bool dir = type == DT_DIR;
  /* O_NONBLOCK: should the file have become a fifo, do not wait for a writer. */
  int flags = dir ? O_RDONLY | O_DIRECTORY : O_RDONLY | O_NONBLOCK;
  kp_cleanup_close int fd = openat (dir_fd, name, flags | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
  if (fd < 0)
    {
      /* A symbolic link or another type now stands there. */
      if (errno == ELOOP || errno == ENOTDIR || errno == ENXIO || errno == EOPNOTSUPP)
        errno = 0;
      return -1;
    }
  if (fstat (fd, st) < 0)
    return -1;
  if (dir ? !S_ISDIR (st->st_mode) : !S_ISREG (st->st_mode))
    {
      errno = 0;
      return -1;
    }
  return kp_steal_fd (&fd);
}

static int
visit_next (walk *w, kp_error **err)
{
  frame *f = &w->frames[w->n_frames - 1];
  const entry *e = &f->entries[f->next++];
  const char *name = e->name;
  int dir_fd = f->fd;

  kp_buf_truncate (&w->path, f->path_len);
  kp_buf_truncate (&w->enc_path, f->enc_len);
  if (f->path_len > 0)
    {
      kp_buf_putc (&w->path, '/');
      kp_buf_putc (&w->enc_path, '/');
    }
  kp_buf_puts (&w->path, name);
  kp_tree_digest_encode (&w->enc_path, name, strlen (name));

  struct stat st;
  if (e->type == DT_REG || e->type == DT_DIR)
    {
      int fd = open_by_hint (dir_fd, name, e->type, &st);
      if (fd >= 0 && e->type == DT_DIR)
        return enter_directory (w, fd, &st, err);
      if (fd >= 0)
        {
          kp_cleanup_close int file_fd = fd;
          return visit_file (w, file_fd, dir_fd, name, &st, err);
        }
      if (errno != 0)
        return walk_fail_errno (w, err, errno, "open");
    }

  if (fstatat (dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
    return walk_fail_errno (w, err, errno, "stat");

  struct stat opened;
  switch (st.st_mode & S_IFMT)
    {
    case S_IFREG:
      {
        kp_cleanup_close int fd
            = open_checked (w, dir_fd, name, O_RDONLY | O_NONBLOCK, &st, &opened, err);
        if (fd < 0)
          return -1;
        return visit_file (w, fd, dir_fd, name, &opened, err);
      }
    case S_IFDIR:
      {
        int fd = open_checked (w, dir_fd, name, O_RDONLY | O_DIRECTORY, &st, &opened, err);
        if (fd < 0)
          return -1;
        return enter_directory (w, fd, &opened, err);
      }
    case S_IFLNK:
      return visit_symlink (w, dir_fd, name, &st, err);
    default:
      return visit_special (w, dir_fd, name, &st, err);
    }
}

static int
open_root (int dirfd, const char *path, struct stat *st, kp_error **err)
{
  kp_cleanup_close int fd
      = openat (dirfd, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
  if (fd < 0)
    {
      int e = errno;
      struct stat lst;
      if ((e == ELOOP || e == ENOTDIR) && fstatat (dirfd, path, &lst, AT_SYMLINK_NOFOLLOW) == 0
          && S_ISLNK (lst.st_mode))
        return kp_error_set (err, KP_EXIT_FAILURE,
                             "'%s' is a symbolic link; a tree digest does not follow links", path);
      return kp_error_errno (err, e, "open directory '%s'", path);
    }
  if (fstat (fd, st) < 0)
    return kp_error_errno (err, errno, "stat '%s'", path);
  return kp_steal_fd (&fd);
}

static int
tree_digest_fd (int root_fd, const struct stat *st, const char *display,
                uint8_t out[KP_BLAKE3_OUT_LEN], kp_tree_digest_cb on_record, void *user_data,
                kp_error **err)
{
  walk w = { 0 };
  w.root = display;
  w.on_record = on_record;
  w.user_data = user_data;
  w.file_buf = aligned_alloc (64, KP_BLAKE3_FD_BUFFER_SIZE);
  if (w.file_buf == NULL)
    kp_oom ();
  kp_blake3_init (&w.hasher);

  int r = enter_directory (&w, root_fd, st, err);
  while (r == 0 && w.n_frames > 0)
    {
      frame *f = &w.frames[w.n_frames - 1];
      if (f->next < f->n_entries)
        r = visit_next (&w, err);
      else
        r = leave_directory (&w, err);
    }
  if (r == 0)
    kp_blake3_final (&w.hasher, out, KP_BLAKE3_OUT_LEN);
  walk_clear (&w);
  return r;
}

int
kp_tree_digest (int dirfd, const char *path, uint8_t out[KP_BLAKE3_OUT_LEN],
                kp_tree_digest_cb on_record, void *user_data, kp_error **err)
{
  struct stat st;
  int fd = open_root (dirfd, path, &st, err);
  if (fd < 0)
    return -1;
  return tree_digest_fd (fd, &st, path, out, on_record, user_data, err);
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
