/* treewalk.h — the canonical walk of a directory tree.
 *
 * Depth-first, pre-order, children sorted byte-wise by name, starting with the root
 * itself; never following a symbolic link; regular files and directories handed over
 * open, everything else only described. This order is the tree digest's
 * (docs/identity.md) and the packer's (docs/archive.md): they share this walker so they
 * can never disagree about it. */
#ifndef KP_HASH_TREEWALK_H
#define KP_HASH_TREEWALK_H

#include "base/error.h"

#include <sys/stat.h>

typedef struct kp_tree_entry
{
  const char *root;  /* the root path as given, for messages */
  const char *path;  /* relative path, raw bytes; "" for the root */
  size_t path_len;
  const char *name;  /* name in dir_fd; NULL for the root */
  int dir_fd;        /* the directory holding the entry; -1 for the root */
  int fd;            /* regular files and directories: open read-only (valid during the
                        visit; a file may be read, a directory must not be); else -1 */
  const struct stat *st;
} kp_tree_entry;

/* Called for every entry in walk order; a negative return stops the walk (and should
 * fill err). */
typedef int (*kp_tree_visit_fn) (const kp_tree_entry *entry, void *user_data, kp_error **err);

/* Walk the directory `path` (relative to dirfd). `path` itself must be a directory, not a
 * symbolic link to one. Any entry that cannot be listed, opened or described is an error
 * naming it; an entry that changes type or moves during the walk is an error too. */
int kp_tree_walk (int dirfd, const char *path, kp_tree_visit_fn visit, void *user_data,
                  kp_error **err);

/* The entry as a user would name it: the root as given, then the relative path. */
char *kp_tree_entry_display (const kp_tree_entry *entry);

#endif
