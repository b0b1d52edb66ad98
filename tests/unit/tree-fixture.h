/* tree-fixture.h — building small directory trees in unit tests (cmocka). */
#ifndef KP_TESTS_TREE_FIXTURE_H
#define KP_TESTS_TREE_FIXTURE_H

#include "base/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static inline char *
path_in (const char *dir, const char *rel)
{
  return xasprintf ("%s/%s", dir, rel);
}

/* A regular file with this content and mode. */
static inline void
put_file (const char *dir, const char *rel, const char *content, mode_t mode)
{
  kp_cleanup_free char *p = path_in (dir, rel);
  kp_cleanup_close int fd = open (p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    fail_msg ("create %s: %s", p, strerror (errno));
  assert_int_equal (kp_write_all (fd, content, strlen (content)), 0);
  assert_int_equal (fchmod (fd, mode), 0);
}

/* A directory with this mode (not narrowed by the umask). */
static inline void
put_dir (const char *dir, const char *rel, mode_t mode)
{
  kp_cleanup_free char *p = path_in (dir, rel);
  if (mkdir (p, mode) < 0)
    fail_msg ("mkdir %s: %s", p, strerror (errno));
  assert_int_equal (chmod (p, mode), 0);
}

#endif
