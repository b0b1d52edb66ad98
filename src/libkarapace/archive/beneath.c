/* beneath.c — resolving archive member names inside the target without leaving it.
 *
 * The rule is simple and strict: a member name is split into components, ".." is refused
 * outright, and every component is looked up relative to a held directory descriptor
 * without following symbolic links. openat2() checks a whole parent path in one call; when
 * the kernel lacks it (or KARAPACE_NO_OPENAT2=1 asks us not to use it) the same guarantee
 * comes from walking one component at a time with O_NOFOLLOW. Neither ever creates or
 * opens anything through a link, so a hostile archive cannot point a later member outside
 * the target by planting a link first. */
#include "archive-private.h"
#include "base/buf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_openat2
#define SYS_openat2 437
#endif

void
kp_beneath_path_clear (kp_beneath_path *p)
{
  kp_strv_free (p->components);
  p->components = NULL;
  p->n = 0;
}

int
kp_beneath_path_parse (const char *name, kp_beneath_path *out, const char **why)
{
  out->components = xcalloc (1, sizeof (char *));
  out->n = 0;

  const char *p = name;
  for (;;)
    {
      while (*p == '/')
        p++;
      const char *end = strchrnul (p, '/');
      size_t len = (size_t) (end - p);
      if (len == 2 && p[0] == '.' && p[1] == '.')
        {
          kp_beneath_path_clear (out);
          *why = "path leaves the target directory";
          return -1;
        }
      if (len > 0 && !(len == 1 && p[0] == '.'))
        {
          out->components = xreallocarray (out->components, out->n + 2, sizeof (char *));
          out->components[out->n++] = xstrndup (p, len);
          out->components[out->n] = NULL;
        }
      if (*end == '\0')
        break;
      p = end + 1;
    }
  return 0;
}

char *
kp_beneath_path_join (const kp_beneath_path *p, size_t n)
{
  if (n == 0)
    return xstrdup (".");
  kp_buf b = KP_BUF_INIT;
  for (size_t i = 0; i < n; i++)
    {
      if (i)
        kp_buf_putc (&b, '/');
      kp_buf_puts (&b, p->components[i]);
    }
  return kp_buf_steal (&b);
}

/* Explain why component i could not be entered. */
static int
component_fail (int dir_fd, const kp_beneath_path *p, size_t i, int errnum, const char *entry,
                kp_error **err)
{
  kp_cleanup_free char *where = kp_beneath_path_join (p, i + 1);
  struct stat st;
  if ((errnum == ENOTDIR || errnum == ELOOP)
      && fstatat (dir_fd, p->components[i], &st, AT_SYMLINK_NOFOLLOW) == 0)
    {
      if (S_ISLNK (st.st_mode))
        return kp_error_set (err, KP_EXIT_FAILURE,
                             "entry \"%s\": \"%s\" is a symbolic link; refusing to follow it",
                             entry, where);
      return kp_error_set (err, KP_EXIT_FAILURE, "entry \"%s\": \"%s\" is not a directory",
                           entry, where);
    }
  return kp_error_errno (err, errnum, "entry \"%s\": open directory \"%s\"", entry, where);
}

static int
walk_components (int root_fd, const kp_beneath_path *p, size_t n, bool create,
                 const char *entry, kp_error **err)
{
  kp_cleanup_close int cur = openat (root_fd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (cur < 0)
    return kp_error_errno (err, errno, "entry \"%s\": open the target directory", entry);
  for (size_t i = 0; i < n; i++)
    {
      const char *comp = p->components[i];
      int next = -1;
      for (int attempt = 0; attempt < 2; attempt++)
        {
          next = openat (cur, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
          if (next >= 0 || errno != ENOENT || !create)
            break;
          if (mkdirat (cur, comp, 0755) < 0 && errno != EEXIST)
            {
              int e = errno;
              kp_cleanup_free char *where = kp_beneath_path_join (p, i + 1);
              return kp_error_errno (err, e, "entry \"%s\": create directory \"%s\"", entry,
                                     where);
            }
        }
      if (next < 0)
        return component_fail (cur, p, i, errno, entry, err);
      close (cur);
      cur = next;
    }
  return kp_steal_fd (&cur);
}

int
kp_beneath_open_dir (int root_fd, const kp_beneath_path *p, size_t n, bool create,
                     bool use_openat2, const char *entry, kp_error **err)
{
  if (use_openat2 && n > 0)
    {
      kp_cleanup_free char *rel = kp_beneath_path_join (p, n);
      struct open_how how = {
        .flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
      };
      for (int attempt = 0; attempt < 8; attempt++)
        {
          long fd = syscall (SYS_openat2, root_fd, rel, &how, sizeof how);
          if (fd >= 0)
            return (int) fd;
          if (errno != EAGAIN && errno != EINTR)
            break;
        }
      /* Anything else (a missing directory to create, a link to explain, a kernel without
       * openat2) goes through the walk below, which is just as strict. */
    }
  return walk_components (root_fd, p, n, create, entry, err);
}

