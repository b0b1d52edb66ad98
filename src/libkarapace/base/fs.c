/* fs.c — reading files, atomic replacement, lexical paths. */
#include "fs.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *
kp_fd_read_all (int fd, size_t max_size, size_t *len, kp_error **err)
{
  kp_cleanup_buf kp_buf buf = KP_BUF_INIT;
  char chunk[65536];
  for (;;)
    {
      ssize_t n = read (fd, chunk, sizeof chunk);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        {
          kp_error_errno (err, errno, "read");
          return NULL;
        }
      if (n == 0)
        break;
      if (buf.len + (size_t) n > max_size)
        {
          kp_error_set (err, KP_EXIT_FAILURE, "input is larger than %zu bytes", max_size);
          return NULL;
        }
      kp_buf_append (&buf, chunk, (size_t) n);
    }
  if (len)
    *len = buf.len;
  return kp_buf_steal (&buf);
}

char *
kp_file_read (const char *path, size_t max_size, size_t *len, kp_error **err)
{
  kp_cleanup_close int fd = open (path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0)
    {
      kp_error_errno (err, errno, "cannot open '%s'", path);
      return NULL;
    }
  struct stat st;
  if (fstat (fd, &st) < 0)
    {
      kp_error_errno (err, errno, "cannot stat '%s'", path);
      return NULL;
    }
  if (S_ISDIR (st.st_mode))
    {
      kp_error_set (err, KP_EXIT_FAILURE, "'%s' is a directory, not a file", path);
      return NULL;
    }
  char *data = kp_fd_read_all (fd, max_size, len, err);
  if (data == NULL)
    kp_error_prefix (err, "%s", path);
  return data;
}

int
kp_write_all (int fd, const void *data, size_t len)
{
  const char *p = data;
  while (len > 0)
    {
      ssize_t n = write (fd, p, len);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return -errno;
      p += n;
      len -= (size_t) n;
    }
  return 0;
}

static int
write_replace (const char *path, const void *data, size_t len, mode_t mode, bool exclusive,
               bool sync, kp_error **err);

int
kp_file_write_atomic (const char *path, const void *data, size_t len, mode_t mode,
                      bool exclusive, kp_error **err)
{
  return write_replace (path, data, len, mode, exclusive, true, err);
}

int
kp_file_write_volatile (const char *path, const void *data, size_t len, mode_t mode,
                        kp_error **err)
{
  return write_replace (path, data, len, mode, false, false, err);
}

static int
write_replace (const char *path, const void *data, size_t len, mode_t mode, bool exclusive,
               bool sync, kp_error **err)
{
  kp_cleanup_free char *dir = kp_path_dirname (path);
  kp_cleanup_free char *tmp = xasprintf ("%s.tmp-XXXXXX", path);
  kp_cleanup_close int fd = mkostemp (tmp, O_CLOEXEC);
  if (fd < 0)
    return kp_error_errno (err, errno, "cannot create a file in '%s'", dir);
  int r = kp_write_all (fd, data, len);
  if (r == 0 && fchmod (fd, mode) < 0)
    r = -errno;
  if (r == 0 && sync && fsync (fd) < 0)
    r = -errno;
  if (r < 0)
    {
      unlink (tmp);
      return kp_error_errno (err, -r, "cannot write '%s'", path);
    }
  if (exclusive)
    {
      /* link() refuses to replace, which rename() would do silently. */
      if (link (tmp, path) < 0)
        {
          int saved = errno;
          unlink (tmp);
          return kp_error_errno (err, saved, "cannot create '%s'", path);
        }
      unlink (tmp);
    }
  else if (rename (tmp, path) < 0)
    {
      int saved = errno;
      unlink (tmp);
      return kp_error_errno (err, saved, "cannot replace '%s'", path);
    }
  if (!sync)
    return 0;
  kp_cleanup_close int dfd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0)
    fsync (dfd);
  return 0;
}

char *
kp_path_normalize (const char *path)
{
  bool absolute = path[0] == '/';
  kp_cleanup_strv char **parts = xcalloc (strlen (path) / 2 + 2, sizeof (char *));
  size_t n = 0, leading_up = 0;
  const char *p = path;
  while (*p)
    {
      while (*p == '/')
        p++;
      if (!*p)
        break;
      const char *end = strchrnul (p, '/');
      size_t len = (size_t) (end - p);
      if (len == 1 && p[0] == '.')
        ;
      else if (len == 2 && p[0] == '.' && p[1] == '.')
        {
          if (n > leading_up)
            {
              free (parts[--n]);
              parts[n] = NULL;
            }
          else if (!absolute)
            {
              parts[n++] = xstrdup ("..");
              leading_up++;
            }
        }
      else
        parts[n++] = xstrndup (p, len);
      p = end;
    }
  kp_cleanup_buf kp_buf out = KP_BUF_INIT;
  if (absolute)
    kp_buf_putc (&out, '/');
  for (size_t i = 0; i < n; i++)
    {
      if (i > 0)
        kp_buf_putc (&out, '/');
      kp_buf_puts (&out, parts[i]);
    }
  if (out.len == 0)
    kp_buf_putc (&out, '.');
  return kp_buf_steal (&out);
}

char *
kp_path_join (const char *base, const char *rel)
{
  if (rel[0] == '/')
    return xstrdup (rel);
  size_t lb = strlen (base);
  if (lb > 0 && base[lb - 1] == '/')
    return xasprintf ("%s%s", base, rel);
  return xasprintf ("%s/%s", base, rel);
}

bool
kp_path_is_under (const char *path, const char *prefix)
{
  size_t lp = strlen (prefix);
  while (lp > 1 && prefix[lp - 1] == '/')
    lp--;
  if (lp == 1 && prefix[0] == '/')
    return path[0] == '/';
  if (strncmp (path, prefix, lp) != 0)
    return false;
  return path[lp] == '\0' || path[lp] == '/';
}

char *
kp_path_dirname (const char *path)
{
  kp_cleanup_free char *copy = xstrdup (path);
  return xstrdup (dirname (copy));
}

char *
kp_path_absolute (const char *path, kp_error **err)
{
  if (path[0] == '/')
    return kp_path_normalize (path);
  kp_cleanup_free char *cwd = getcwd (NULL, 0);
  if (cwd == NULL)
    {
      kp_error_errno (err, errno, "cannot find the current directory");
      return NULL;
    }
  kp_cleanup_free char *joined = kp_path_join (cwd, path);
  return kp_path_normalize (joined);
}

const char *
kp_home_dir (void)
{
  const char *home = getenv ("HOME");
  if (home && home[0] == '/')
    return home;
  struct passwd *pw = getpwuid (getuid ());
  return pw && pw->pw_dir ? pw->pw_dir : "/";
}

static char *
xdg_dir (const char *var, const char *fallback)
{
  const char *v = getenv (var);
  if (v && v[0] == '/')
    return xstrdup (v);
  return kp_path_join (kp_home_dir (), fallback);
}

char *
kp_xdg_config_home (void)
{
  return xdg_dir ("XDG_CONFIG_HOME", ".config");
}

char *
kp_xdg_data_home (void)
{
  return xdg_dir ("XDG_DATA_HOME", ".local/share");
}

char *
kp_runtime_state_dir (kp_error **err)
{
  const char *runtime = getenv ("XDG_RUNTIME_DIR");
  struct stat st;
  kp_cleanup_free char *dir = NULL;
  if (runtime && runtime[0] == '/' && stat (runtime, &st) == 0 && S_ISDIR (st.st_mode)
      && st.st_uid == geteuid ())
    dir = xasprintf ("%s/karapace", runtime);
  else
    dir = xasprintf ("/tmp/karapace-%u", (unsigned) geteuid ());
  if (mkdir (dir, 0700) < 0 && errno != EEXIST)
    {
      kp_error_errno (err, errno, "create the runtime directory %s", dir);
      return NULL;
    }
  if (lstat (dir, &st) < 0)
    {
      kp_error_errno (err, errno, "runtime directory %s", dir);
      return NULL;
    }
  if (!S_ISDIR (st.st_mode) || st.st_uid != geteuid () || (st.st_mode & 0077) != 0)
    {
      kp_error_set (err, KP_EXIT_RUNTIME,
                    "the runtime directory %s is not a directory private to you", dir);
      kp_error_hint (err, "remove it, or set XDG_RUNTIME_DIR to a directory of your own");
      return NULL;
    }
  return kp_steal_pointer (&dir);
}

static int
remove_tree_children (int dir_fd)
{
  kp_cleanup_dir DIR *dir = kp_dir_open_at (dir_fd, NULL);
  if (dir == NULL)
    return -errno;
  /* List first, remove after: readdir() makes no promise while the directory changes. */
  kp_cleanup_strv char **names = xcalloc (1, sizeof (char *));
  size_t n = 0;
  for (;;)
    {
      errno = 0;
      struct dirent *de = readdir (dir);
      if (de == NULL)
        {
          if (errno)
            return -errno;
          break;
        }
      if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
        continue;
      names = xreallocarray (names, n + 2, sizeof (char *));
      names[n++] = xstrdup (de->d_name);
      names[n] = NULL;
    }
  for (size_t i = 0; i < n; i++)
    {
      int r = kp_remove_tree_at (dirfd (dir), names[i]);
      if (r < 0)
        return r;
    }
  return 0;
}

int
kp_remove_tree_at (int dir_fd, const char *name)
{
  if (unlinkat (dir_fd, name, 0) == 0)
    return 0;
  if (errno == ENOENT)
    return 0;
  if (errno != EISDIR && errno != EPERM)
    return -errno;

  struct stat st;
  if (fstatat (dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
    return errno == ENOENT ? 0 : -errno;
  if (!S_ISDIR (st.st_mode))
    return -EPERM;
  kp_cleanup_close int sub = openat (dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (sub < 0 && errno == EACCES)
    {
      /* Our own directory with a mode that keeps us out (a 0000 member, say). */
      kp_cleanup_close int path_fd
          = openat (dir_fd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (path_fd >= 0)
        {
          char proc[64];
          snprintf (proc, sizeof proc, "/proc/self/fd/%d", path_fd);
          (void) chmod (proc, 0700);
        }
      sub = openat (dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }
  if (sub < 0)
    return -errno;
  (void) fchmod (sub, 0700);
  int r = remove_tree_children (sub);
  if (r < 0)
    return r;
  if (unlinkat (dir_fd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
    return -errno;
  return 0;
}

DIR *
kp_dir_open_at (int dirfd, const char *name)
{
  int fd = openat (dirfd, name ? name : ".", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return NULL;
  DIR *d = fdopendir (fd);
  if (d == NULL)
    {
      int saved = errno;
      close (fd);
      errno = saved;
    }
  return d;
}

static char *
program_in_dir (const char *dir, size_t dir_len, const char *name)
{
  if (dir_len == 0 || dir[0] != '/')
    return NULL;
  char *path = xasprintf ("%.*s/%s", (int) dir_len, dir, name);
  struct stat st;
  if (stat (path, &st) == 0 && S_ISREG (st.st_mode) && access (path, X_OK) == 0)
    return path;
  free (path);
  return NULL;
}

char *
kp_find_program (const char *name)
{
  const char *path = getenv ("PATH");
  for (const char *p = path; p != NULL;)
    {
      const char *end = strchrnul (p, ':');
      char *found = program_in_dir (p, (size_t) (end - p), name);
      if (found != NULL)
        return found;
      p = *end ? end + 1 : NULL;
    }
  static const char *const fallback[] = { "/usr/bin", "/usr/sbin", "/bin", "/sbin" };
  for (size_t i = 0; i < KP_N_ELEMENTS (fallback); i++)
    {
      char *found = program_in_dir (fallback[i], strlen (fallback[i]), name);
      if (found != NULL)
        return found;
    }
  return NULL;
}
