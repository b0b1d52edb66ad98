/* treewalk.c — the canonical walk of a directory tree. See treewalk.h.
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
#include "treewalk.h"

#include "base/buf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Directory descriptors held at once before the walk starts reopening parents via "..". */
#define KEEP_OPEN_DEPTH 64

typedef struct listed
{
  const char *name;   /* in the frame's name_store */
  size_t offset;      /* of the name in name_store, while the listing grows */
  unsigned char type; /* readdir's d_type: a hint, DT_UNKNOWN when the filesystem is silent */
} listed;

typedef struct frame
{
  int fd; /* -1 while a deeper frame has given it back */
  dev_t dev;
  ino_t ino;
  char *name_store; /* the names, each NUL-terminated */
  listed *entries;  /* sorted by name */
  size_t n_entries;
  size_t next;
  size_t path_len; /* this directory's relative path in walk.path ("" for the root) */
} frame;

typedef struct walk
{
  const char *root; /* the path as given, for messages */
  frame *frames;
  size_t n_frames;
  size_t cap_frames;
  kp_buf path; /* relative path of the current entry, raw bytes */
  kp_tree_visit_fn visit;
  void *user_data;
} walk;

static char *
display (const char *root, const char *path, size_t path_len)
{
  if (path_len == 0)
    return xstrdup (root);
  bool slash = kp_str_has_suffix (root, "/");
  return xasprintf ("%s%s%.*s", root, slash ? "" : "/", (int) path_len, path);
}

char *
kp_tree_entry_display (const kp_tree_entry *entry)
{
  return display (entry->root, entry->path, entry->path_len);
}

static int
walk_fail_errno (const walk *w, kp_error **err, int errnum, const char *what)
{
  kp_cleanup_free char *d = display (w->root, kp_buf_str (&w->path), w->path.len);
  return kp_error_errno (err, errnum, "%s '%s'", what, d);
}

static int
walk_fail (const walk *w, kp_error **err, const char *what)
{
  kp_cleanup_free char *d = display (w->root, kp_buf_str (&w->path), w->path.len);
  return kp_error_set (err, KP_EXIT_FAILURE, "'%s' %s", d, what);
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
}

static int
compare_listed (const void *a, const void *b)
{
  return strcmp (((const listed *) a)->name, ((const listed *) b)->name);
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
  kp_cleanup_free listed *entries = NULL;
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
          entries = xreallocarray (entries, cap, sizeof (listed));
        }
      entries[n++] = (listed) { .offset = store.len, .type = de->d_type };
      kp_buf_append (&store, de->d_name, strlen (de->d_name) + 1);
    }
  /* One allocation for all names; pointers only once it has stopped moving. */
  for (size_t i = 0; i < n; i++)
    entries[i].name = store.data + entries[i].offset;
  if (n)
    qsort (entries, n, sizeof (listed), compare_listed);
  f->name_store = kp_buf_steal (&store);
  f->entries = kp_steal_pointer (&entries);
  f->n_entries = n;
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

static int
visit (walk *w, int dir_fd, const char *name, int fd, const struct stat *st, kp_error **err)
{
  kp_tree_entry e = {
    .root = w->root,
    .path = kp_buf_str (&w->path),
    .path_len = w->path.len,
    .name = name,
    .dir_fd = dir_fd,
    .fd = fd,
    .st = st,
  };
  if (w->visit (&e, w->user_data, err) < 0)
    {
      if (err && *err == NULL)
        walk_fail (w, err, ": the walk was stopped");
      return -1;
    }
  return 0;
}

/* Visit a directory and make it the current frame. Takes ownership of fd_in. */
static int
enter_directory (walk *w, int dir_fd, const char *name, int fd_in, const struct stat *st,
                 kp_error **err)
{
  kp_cleanup_close int fd = fd_in;
  if (visit (w, dir_fd, name, fd, st, err) < 0)
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
  const listed *e = &f->entries[f->next++];
  const char *name = e->name;
  int dir_fd = f->fd;

  kp_buf_truncate (&w->path, f->path_len);
  if (f->path_len > 0)
    kp_buf_putc (&w->path, '/');
  kp_buf_puts (&w->path, name);

  struct stat st;
  if (e->type == DT_REG || e->type == DT_DIR)
    {
      int fd = open_by_hint (dir_fd, name, e->type, &st);
      if (fd >= 0 && e->type == DT_DIR)
        return enter_directory (w, dir_fd, name, fd, &st, err);
      if (fd >= 0)
        {
          kp_cleanup_close int file_fd = fd;
          return visit (w, dir_fd, name, file_fd, &st, err);
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
        return visit (w, dir_fd, name, fd, &opened, err);
      }
    case S_IFDIR:
      {
        int fd = open_checked (w, dir_fd, name, O_RDONLY | O_DIRECTORY, &st, &opened, err);
        if (fd < 0)
          return -1;
        return enter_directory (w, dir_fd, name, fd, &opened, err);
      }
    default:
      /* Never opened: opening a device or a fifo has effects of its own. */
      return visit (w, dir_fd, name, -1, &st, err);
    }
}

int
kp_tree_walk (int dirfd, const char *path, kp_tree_visit_fn visit_fn, void *user_data,
              kp_error **err)
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
                             "'%s' is a symbolic link; the walk does not follow links", path);
      return kp_error_errno (err, e, "open directory '%s'", path);
    }
  struct stat st;
  if (fstat (fd, &st) < 0)
    return kp_error_errno (err, errno, "stat '%s'", path);

  walk w = { .root = path, .visit = visit_fn, .user_data = user_data };
  int r = enter_directory (&w, -1, NULL, kp_steal_fd (&fd), &st, err);
  while (r == 0 && w.n_frames > 0)
    {
      frame *f = &w.frames[w.n_frames - 1];
      if (f->next < f->n_entries)
        r = visit_next (&w, err);
      else
        r = leave_directory (&w, err);
    }
  walk_clear (&w);
  return r;
}
