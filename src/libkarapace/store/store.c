/* store.c — opening a store: layout, format version, the lock, recovery; and the write
 * helpers every other file of the module uses.
 *
 * The lock is flock() on `lock`: shared for readers, exclusive for writers. While a process
 * holds it exclusively, the file says who it is ("pid 1234\nkarapace gc\n") so that a
 * waiting process can tell the user what it waits for. Because every mutation holds the
 * exclusive lock, an exclusive open may clear tmp/ and roll back the journal: nobody else
 * can be in the middle of writing. */
#include "store-private.h"

#include "base/fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- errors ---- */

static const char *
hint_for_errno (int errnum)
{
  switch (errnum)
    {
    case ENOSPC:
    case EDQUOT:
      return "free space on the filesystem that holds the store (or run 'karapace gc'), "
             "then try again; the store itself is unchanged";
    case EACCES:
    case EPERM:
    case EROFS:
      return "check that the store belongs to you and is writable, or choose another one "
             "with --store or KARAPACE_STORE";
    case EIO:
      return "the disk reported an I/O error: check it, then run 'karapace verify-store'";
    default:
      return KP_STORE_HINT_VERIFY;
    }
}

int
kp_store_fail_errno (kp_error **err, int errnum, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  kp_cleanup_free char *msg = xvasprintf (fmt, ap);
  va_end (ap);
  if (err && *err)
    return -1;
  kp_error_errno (err, errnum, "%s", msg);
  kp_error_set_status (err, KP_EXIT_STORE);
  kp_error_hint (err, "%s", hint_for_errno (errnum));
  return -1;
}

int
kp_store_fail (kp_error **err, const char *hint, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  kp_cleanup_free char *msg = xvasprintf (fmt, ap);
  va_end (ap);
  if (err && *err)
    return -1;
  kp_error_set (err, KP_EXIT_STORE, "%s", msg);
  kp_error_hint (err, "%s", hint ? hint : KP_STORE_HINT_VERIFY);
  return -1;
}

int
kp_store_wrap (kp_error **err, const char *hint)
{
  if (err && *err)
    {
      kp_error_set_status (err, KP_EXIT_STORE);
      if ((*err)->hint == NULL || hint)
        kp_error_hint (err, "%s",
                       hint ? hint : hint_for_errno ((*err)->errno_value));
    }
  return -1;
}

int
kp_store_require_writable (kp_store *store, const char *what, kp_error **err)
{
  if (store->writable)
    return 0;
  return kp_store_fail (err, "open the store with KP_STORE_WRITE (the exclusive lock)",
                        "%s: the store was opened for reading only", what);
}

/* ---- small file-system helpers ---- */

int
kp_store_fsync_dir (int dirfd, const char *what, kp_error **err)
{
  if (fsync (dirfd) < 0 && errno != EINVAL)
    return kp_store_fail_errno (err, errno, "cannot sync '%s'", what);
  return 0;
}

static char *
random_name (const char *prefix)
{
  static const char chars[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  uint64_t x = (uint64_t) ts.tv_nsec ^ ((uint64_t) getpid () << 32) ^ (uint64_t) ts.tv_sec;
  static __thread uint64_t counter;
  x ^= ++counter * 0x9e3779b97f4a7c15ULL;
  char r[13];
  for (size_t i = 0; i < 12; i++)
    {
      x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
      r[i] = chars[(x * 0x2545f4914f6cdd1dULL >> 58) % (sizeof chars - 1)];
    }
  r[12] = '\0';
  return xasprintf ("%s-%d-%s", prefix, (int) getpid (), r);
}

int
kp_store_tmp_create (kp_store *store, char **name, kp_error **err)
{
  for (int attempt = 0; attempt < 100; attempt++)
    {
      kp_cleanup_free char *n = random_name ("file");
      int fd = openat (store->tmp_fd, n, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
                       0600);
      if (fd >= 0)
        {
          *name = kp_steal_pointer (&n);
          return fd;
        }
      if (errno != EEXIST)
        return kp_store_fail_errno (err, errno, "cannot create a file in '%s/tmp'",
                                    store->path);
    }
  return kp_store_fail (err, NULL, "cannot find a free temporary name in '%s/tmp'",
                        store->path);
}

int
kp_store_tmp_mkdir (kp_store *store, char **name, kp_error **err)
{
  for (int attempt = 0; attempt < 100; attempt++)
    {
      kp_cleanup_free char *n = random_name ("dir");
      if (mkdirat (store->tmp_fd, n, 0700) == 0)
        {
          *name = kp_steal_pointer (&n);
          return 0;
        }
      if (errno != EEXIST)
        return kp_store_fail_errno (err, errno, "cannot create a directory in '%s/tmp'",
                                    store->path);
    }
  return kp_store_fail (err, NULL, "cannot find a free temporary name in '%s/tmp'",
                        store->path);
}

int
kp_store_write_file (kp_store *store, int dirfd, const char *name, const void *data,
                     size_t len, kp_error **err)
{
  kp_cleanup_free char *tmp = NULL;
  kp_cleanup_close int fd = kp_store_tmp_create (store, &tmp, err);
  if (fd < 0)
    return -1;
  int r = kp_write_all (fd, data, len);
  if (r == 0 && fsync (fd) < 0)
    r = -errno;
  if (r == 0 && renameat (store->tmp_fd, tmp, dirfd, name) < 0)
    r = -errno;
  if (r < 0)
    {
      unlinkat (store->tmp_fd, tmp, 0);
      return kp_store_fail_errno (err, -r, "cannot write '%s'", name);
    }
  return kp_store_fsync_dir (dirfd, name, err);
}

int
kp_store_rm_rf_at (int parent_fd, const char *name, kp_error **err)
{
  int r = kp_remove_tree_at (parent_fd, name);
  if (r < 0)
    return kp_store_fail_errno (err, -r, "cannot remove '%s'", name);
  return 0;
}

uint64_t
kp_store_du_at_checked (int parent_fd, const char *name, bool *complete)
{
  struct stat st;
  if (fstatat (parent_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
    {
      if (errno != ENOENT && complete)
        *complete = false;
      return 0;
    }
  if (!S_ISDIR (st.st_mode))
    return S_ISREG (st.st_mode) ? (uint64_t) st.st_size : 0;
  kp_cleanup_dir DIR *d = kp_dir_open_at (parent_fd, name);
  if (d == NULL)
    {
      if (errno != ENOENT && complete)
        *complete = false;
      return 0;
    }
  uint64_t total = 0;
  struct dirent *de;
  while ((de = readdir (d)) != NULL)
    if (strcmp (de->d_name, ".") && strcmp (de->d_name, ".."))
      total += kp_store_du_at_checked (dirfd (d), de->d_name, complete);
  return total;
}

uint64_t
kp_store_du_at (int parent_fd, const char *name)
{
  return kp_store_du_at_checked (parent_fd, name, NULL);
}

int
kp_store_remove_path (kp_store *store, int dirfd, const char *name, kp_error **err)
{
  struct stat st;
  if (fstatat (dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
    {
      if (errno == ENOENT)
        return 0;
      return kp_store_fail_errno (err, errno, "cannot look at '%s'", name);
    }
  if (!S_ISDIR (st.st_mode))
    {
      if (unlinkat (dirfd, name, 0) < 0 && errno != ENOENT)
        return kp_store_fail_errno (err, errno, "cannot remove '%s'", name);
      return kp_store_fsync_dir (dirfd, name, err);
    }
  /* One rename makes the whole directory disappear from its place; what is left in tmp/
     is cleared now, or by the next exclusive open after a crash. */
  kp_cleanup_free char *trash = random_name ("trash");
  if (renameat (dirfd, name, store->tmp_fd, trash) < 0)
    {
      if (errno == ENOENT)
        return 0;
      return kp_store_fail_errno (err, errno, "cannot remove '%s'", name);
    }
  if (kp_store_fsync_dir (dirfd, name, err) < 0)
    return -1;
  return kp_store_rm_rf_any (store->tmp_fd, trash, err);
}

/* ---- layout, version, lock ---- */

static const char *const store_dirs[] = { "objects", "layers", "envs", "images",
                                          "cache",   "tmp",    "journal" };

char *
kp_store_default_path (void)
{
  const char *env = getenv ("KARAPACE_STORE");
  if (env && env[0])
    return xstrdup (env);
  kp_cleanup_free char *data = kp_xdg_data_home ();
  return kp_path_join (data, "karapace");
}

static int
mkdir_parents (const char *path, kp_error **err)
{
  kp_cleanup_free char *copy = xstrdup (path);
  for (char *p = copy + 1; *p; p++)
    if (*p == '/')
      {
        *p = '\0';
        if (mkdir (copy, 0700) < 0 && errno != EEXIST)
          return kp_store_fail_errno (err, errno, "cannot create '%s'", copy);
        *p = '/';
      }
  if (mkdir (copy, 0700) < 0 && errno != EEXIST)
    return kp_store_fail_errno (err, errno, "cannot create the store '%s'", copy);
  return 0;
}

/* 0 when there is no version file; -1 when it is unreadable or malformed. */
static int
read_version_at (int dirfd, const char *path, kp_error **err)
{
  kp_cleanup_close int fd = openat (dirfd, "version", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0)
    {
      if (errno == ENOENT)
        return 0;
      return kp_store_fail_errno (err, errno, "cannot read '%s/version'", path);
    }
  char buf[32];
  ssize_t n = read (fd, buf, sizeof buf - 1);
  if (n < 0)
    return kp_store_fail_errno (err, errno, "cannot read '%s/version'", path);
  buf[n] = '\0';
  char *end;
  errno = 0;
  long v = strtol (buf, &end, 10);
  if (errno || end == buf || v <= 0 || v > 1000000 || (*end && strcmp (end, "\n") != 0))
    return kp_store_fail (err, "restore the file (it holds the format version, '1'), or move "
                          "the store aside and start a new one",
                          "'%s/version' is malformed", path);
  return (int) v;
}

int
kp_store_read_version (const char *path, kp_error **err)
{
  kp_cleanup_free char *p = path ? xstrdup (path) : kp_store_default_path ();
  kp_cleanup_close int dfd = open (p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0)
    {
      if (errno == ENOENT)
        return 0;
      return kp_store_fail_errno (err, errno, "cannot open the store '%s'", p);
    }
  return read_version_at (dfd, p, err);
}

static bool
is_store_entry (const char *name)
{
  /* version.tmp: a creation killed before its commit record was renamed into place. */
  if (strcmp (name, "lock") == 0 || strcmp (name, "version") == 0
      || strcmp (name, "version.tmp") == 0)
    return true;
  for (size_t i = 0; i < KP_N_ELEMENTS (store_dirs); i++)
    if (strcmp (name, store_dirs[i]) == 0)
      return true;
  return false;
}

/* A missing version file is a new store only when the directory holds nothing else: we
   never adopt (and later garbage-collect in) a directory that is someone else's. */
static int
initialize (kp_store *s, kp_error **err)
{
  kp_cleanup_dir DIR *d = kp_dir_open_at (s->dirfd, NULL);
  if (d == NULL)
    return kp_store_fail_errno (err, errno, "cannot list '%s'", s->path);
  struct dirent *de;
  while ((de = readdir (d)) != NULL)
    {
      if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
        continue;
      if (!is_store_entry (de->d_name))
        return kp_store_fail (err, "give --store (or KARAPACE_STORE) an empty or new "
                              "directory",
                              "'%s' is not a karapace store (it has no version file and "
                              "holds '%s')", s->path, de->d_name);
    }
  if (fchmod (s->dirfd, 0700) < 0)
    return kp_store_fail_errno (err, errno, "cannot make '%s' private", s->path);
  for (size_t i = 0; i < KP_N_ELEMENTS (store_dirs); i++)
    if (mkdirat (s->dirfd, store_dirs[i], 0700) < 0 && errno != EEXIST)
      return kp_store_fail_errno (err, errno, "cannot create '%s/%s'", s->path, store_dirs[i]);
  if (kp_store_fsync_dir (s->dirfd, s->path, err) < 0)
    return -1;
  /* The version file is the store's commit record: written last, atomically. */
  char text[16];
  int n = snprintf (text, sizeof text, "%d\n", KP_STORE_VERSION);
  kp_cleanup_free char *tmp = xstrdup ("version.tmp");
  kp_cleanup_close int fd = openat (s->dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC
                                    | O_NOFOLLOW, 0600);
  if (fd < 0)
    return kp_store_fail_errno (err, errno, "cannot write '%s/version'", s->path);
  int r = kp_write_all (fd, text, (size_t) n);
  if (r == 0 && fsync (fd) < 0)
    r = -errno;
  if (r == 0 && renameat (s->dirfd, tmp, s->dirfd, "version") < 0)
    r = -errno;
  if (r < 0)
    {
      unlinkat (s->dirfd, tmp, 0);
      return kp_store_fail_errno (err, -r, "cannot write '%s/version'", s->path);
    }
  return kp_store_fsync_dir (s->dirfd, s->path, err);
}

static void
default_on_wait (const char *message, void *user_data)
{
  fprintf (stderr, "karapace: %s\n", message);
}

static char *
describe_holder (int lockfd, bool want_exclusive)
{
  char buf[256];
  ssize_t n = pread (lockfd, buf, sizeof buf - 1, 0);
  if (n > 0)
    {
      buf[n] = '\0';
      long pid = 0;
      char what[200] = "";
      if (sscanf (buf, "pid %ld\n%199[^\n]", &pid, what) >= 1 && pid > 0)
        {
          if (kill ((pid_t) pid, 0) == 0 || errno == EPERM)
            return xasprintf ("waiting for the store lock held by pid %ld (%s)", pid,
                              what[0] ? what : "karapace");
          /* A helper it started (a user namespace child) inherited the lock. */
          return xasprintf ("waiting for the store lock held by a process that pid %ld (%s) "
                            "left behind when it exited",
                            pid, what[0] ? what : "karapace");
        }
    }
  return xstrdup (want_exclusive ? "waiting for the store lock: other karapace commands are "
                                   "reading the store"
                                 : "waiting for the store lock held by another karapace "
                                   "command");
}

static int
take_lock (kp_store *s, int op, const kp_store_open_options *o, bool *told, kp_error **err)
{
  struct timespec start;
  clock_gettime (CLOCK_MONOTONIC, &start);
  long delay_ms = 5;
  for (;;)
    {
      if (flock (s->lockfd, op | LOCK_NB) == 0)
        return 0;
      if (errno == EINTR)
        continue;
      if (errno != EWOULDBLOCK)
        return kp_store_fail_errno (err, errno, "cannot lock '%s/lock'", s->path);
      kp_cleanup_free char *msg = describe_holder (s->lockfd, op == LOCK_EX);
      if (o->flags & KP_STORE_NO_WAIT)
        return kp_store_fail (err, "try again when that command has finished",
                              "the store '%s' is busy: %s", s->path, msg + strlen ("waiting for "));
      if (!*told)
        {
          (o->on_wait ? o->on_wait : default_on_wait) (msg, o->user_data);
          *told = true;
        }
      if (o->lock_timeout_ms > 0)
        {
          struct timespec now;
          clock_gettime (CLOCK_MONOTONIC, &now);
          long waited = (now.tv_sec - start.tv_sec) * 1000
                        + (now.tv_nsec - start.tv_nsec) / 1000000;
          if (waited >= o->lock_timeout_ms)
            return kp_store_fail (err, "try again when that command has finished",
                                  "gave up after %d ms %s", o->lock_timeout_ms, msg);
        }
      struct timespec ts = { delay_ms / 1000, (delay_ms % 1000) * 1000000 };
      nanosleep (&ts, NULL);
      if (delay_ms < 100)
        delay_ms *= 2;
    }
}

static int
write_holder (kp_store *s, const char *purpose)
{
  kp_cleanup_free char *text = xasprintf ("pid %ld\n%s\n", (long) getpid (),
                                          purpose ? purpose : "karapace");
  if (ftruncate (s->lockfd, 0) < 0)
    return -1;
  return pwrite (s->lockfd, text, strlen (text), 0) < 0 ? -1 : 0;
}

static int
clear_tmp (kp_store *s, kp_error **err)
{
  kp_cleanup_dir DIR *d = kp_dir_open_at (s->tmp_fd, NULL);
  if (d == NULL)
    return kp_store_fail_errno (err, errno, "cannot list '%s/tmp'", s->path);
  struct dirent *de;
  while ((de = readdir (d)) != NULL)
    {
      if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
        continue;
      if (kp_store_rm_rf_any (s->tmp_fd, de->d_name, err) < 0)
        return kp_error_prefix (err, "clear '%s/tmp'", s->path);
      s->recovery.tmp_removed++;
    }
  /* A crash while the version file was first written leaves this behind. */
  unlinkat (s->dirfd, "version.tmp", 0);
  return 0;
}

static int
open_subdir (kp_store *s, const char *name, int *fd, kp_error **err)
{
  if (s->writable && mkdirat (s->dirfd, name, 0700) < 0 && errno != EEXIST)
    return kp_store_fail_errno (err, errno, "cannot create '%s/%s'", s->path, name);
  *fd = openat (s->dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (*fd < 0)
    return kp_store_fail_errno (err, errno, "cannot open '%s/%s'", s->path, name);
  return 0;
}

kp_store *
kp_store_open_with (const char *path, const kp_store_open_options *opts, kp_error **err)
{
  kp_store_open_options defaults = { 0 };
  const kp_store_open_options *o = opts ? opts : &defaults;
  kp_store *s = xcalloc (1, sizeof *s);
  s->dirfd = s->lockfd = s->objects_fd = s->layers_fd = s->envs_fd = s->tmp_fd
      = s->journal_fd = -1;
  s->writable = (o->flags & KP_STORE_WRITE) != 0;
  {
    kp_cleanup_free char *p = path ? xstrdup (path) : kp_store_default_path ();
    s->path = kp_path_absolute (p, err);
  }
  if (s->path == NULL)
    goto fail;

  s->dirfd = open (s->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (s->dirfd < 0 && errno == ENOENT && !(o->flags & KP_STORE_NO_CREATE))
    {
      if (mkdir_parents (s->path, err) < 0)
        goto fail;
      s->dirfd = open (s->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    }
  if (s->dirfd < 0)
    {
      if (errno == ENOENT)
        kp_store_fail (err, "create it with a command that writes to it, or check --store "
                       "and KARAPACE_STORE",
                       "there is no store at '%s'", s->path);
      else
        kp_store_fail_errno (err, errno, "cannot open the store '%s'", s->path);
      goto fail;
    }
  s->lockfd = openat (s->dirfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (s->lockfd < 0 && (errno == EACCES || errno == EROFS) && !s->writable)
    s->lockfd = openat (s->dirfd, "lock", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (s->lockfd < 0)
    {
      kp_store_fail_errno (err, errno, "cannot open '%s/lock'", s->path);
      goto fail;
    }
  bool told = false;
  if (take_lock (s, s->writable ? LOCK_EX : LOCK_SH, o, &told, err) < 0)
    goto fail;

  int version = read_version_at (s->dirfd, s->path, err);
  if (version < 0)
    goto fail;
  if (version == 0)
    {
      if (o->flags & KP_STORE_NO_CREATE)
        {
          kp_store_fail (err, NULL, "'%s' is not a karapace store yet (no version file)",
                         s->path);
          goto fail;
        }
      /* Creating needs the exclusive lock; a reader takes it for the moment. It lets go
         of its shared lock first: two readers converting at once would wait for each
         other forever. */
      if (!s->writable && (flock (s->lockfd, LOCK_UN) < 0
                           || take_lock (s, LOCK_EX, o, &told, err) < 0))
        {
          kp_store_fail_errno (err, errno, "cannot lock '%s/lock'", s->path);
          goto fail;
        }
      version = read_version_at (s->dirfd, s->path, err);
      if (version < 0)
        goto fail;
      if (version == 0 && initialize (s, err) < 0)
        goto fail;
      version = KP_STORE_VERSION;
      if (!s->writable && take_lock (s, LOCK_SH, o, &told, err) < 0)
        goto fail;
    }
  if (version != KP_STORE_VERSION)
    {
      kp_store_fail (err, "run 'karapace migrate' (with a karapace that knows this format)",
                     "the store '%s' has format version %d; this karapace knows version %d",
                     s->path, version, KP_STORE_VERSION);
      goto fail;
    }
  if (open_subdir (s, "objects", &s->objects_fd, err) < 0
      || open_subdir (s, "layers", &s->layers_fd, err) < 0
      || open_subdir (s, "envs", &s->envs_fd, err) < 0
      || open_subdir (s, "tmp", &s->tmp_fd, err) < 0
      || open_subdir (s, "journal", &s->journal_fd, err) < 0)
    goto fail;
  if (s->writable)
    {
      for (size_t i = 0; i < KP_N_ELEMENTS (store_dirs); i++)
        if (mkdirat (s->dirfd, store_dirs[i], 0700) < 0 && errno != EEXIST)
          {
            kp_store_fail_errno (err, errno, "cannot create '%s/%s'", s->path, store_dirs[i]);
            goto fail;
          }
      write_holder (s, o->purpose);
      /* Journal first: its rollbacks may move things into tmp/, which is cleared after. */
      if (kp_store_journal_recover (s, err) < 0 || clear_tmp (s, err) < 0)
        {
          kp_error_prefix (err, "recover the store '%s'", s->path);
          goto fail;
        }
    }
  return s;

fail:
  kp_store_close (s);
  return NULL;
}

kp_store *
kp_store_open (const char *path, unsigned flags, kp_error **err)
{
  kp_store_open_options o = { .flags = flags };
  return kp_store_open_with (path, &o, err);
}

static void
close_fd (int *fd)
{
  if (*fd >= 0)
    close (*fd);
  *fd = -1;
}

void
kp_store_close (kp_store *s)
{
  if (s == NULL)
    return;
  if (s->lockfd >= 0 && s->writable)
    {
      /* Say nobody holds it any more, while we still do. */
      if (ftruncate (s->lockfd, 0) < 0)
        {
          /* Stale holder text is harmless: waiters check the pid. */
        }
    }
  kp_strv_free (s->damage.changes);
  close_fd (&s->objects_fd);
  close_fd (&s->layers_fd);
  close_fd (&s->envs_fd);
  close_fd (&s->tmp_fd);
  close_fd (&s->journal_fd);
  close_fd (&s->dirfd);
  close_fd (&s->lockfd); /* releases the flock */
  free (s->path);
  free (s);
}

void
kp_store_closep (kp_store **store)
{
  if (*store)
    kp_store_close (*store);
  *store = NULL;
}

const char *
kp_store_path (const kp_store *store)
{
  return store->path;
}

bool
kp_store_is_writable (const kp_store *store)
{
  return store->writable;
}

const kp_store_recovery *
kp_store_last_recovery (const kp_store *store)
{
  return &store->recovery;
}

int
kp_store_migrate (const char *path, int *from, kp_error **err)
{
  int version = kp_store_read_version (path, err);
  if (version < 0)
    return -1;
  *from = version;
  if (version > KP_STORE_VERSION)
    return kp_store_fail (err, "use a karapace release that knows this format; stores are "
                          "never downgraded",
                          "the store has format version %d, newer than this karapace "
                          "(version %d)", version, KP_STORE_VERSION);
  /* Version 1 is the only format: opening writes a missing store and recovers. */
  kp_store *s = kp_store_open (path, KP_STORE_WRITE, err);
  if (s == NULL)
    return -1;
  kp_store_close (s);
  return 0;
}
