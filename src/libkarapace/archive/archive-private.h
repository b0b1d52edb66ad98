/* archive-private.h — what pack.c and unpack.c share inside the archive module.
 *
 * beneath.c resolves relative paths below a directory descriptor without ever following a
 * symbolic link, creates missing directories on the way, and removes trees; unpack.c builds
 * everything it does on it. */
#ifndef KP_ARCHIVE_PRIVATE_H
#define KP_ARCHIVE_PRIVATE_H

#include "base/error.h"

#include <sys/types.h>

/* A path inside the target, split into components. None is "", "." or "..". */
typedef struct kp_beneath_path
{
  char **components; /* NULL-terminated */
  size_t n;
} kp_beneath_path;

void kp_beneath_path_clear (kp_beneath_path *p);

/* Split an archive member name: leading "/" and "./" are stripped and empty or "." parts
 * dropped, as tar does; a ".." anywhere is refused (-1, with *why set to a reason). The
 * result may be empty: the name then stands for the target directory itself. */
int kp_beneath_path_parse (const char *name, kp_beneath_path *out, const char **why);

/* The joined relative path (components[0..n)), "." when n is 0. */
char *kp_beneath_path_join (const kp_beneath_path *p, size_t n);

/* Open the directory made of the first n components beneath root_fd as an O_PATH
 * descriptor, never following a symbolic link. With create, missing directories are made
 * (mode 0755). use_openat2 picks openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|
 * RESOLVE_NO_MAGICLINKS) as the fast path; the component-by-component walk is used when it
 * is off or unavailable and to explain a refusal. Errors name `entry`. */
int kp_beneath_open_dir (int root_fd, const kp_beneath_path *p, size_t n, bool create,
                         bool use_openat2, const char *entry, kp_error **err);


#endif
