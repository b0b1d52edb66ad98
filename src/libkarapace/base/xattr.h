/* xattr.h — an entry's extended attributes, read completely and sorted by name.
 *
 * The tree digest and the tar packer both need every attribute of an entry in a canonical
 * order, without following symbolic links and without opening devices or fifos. */
#ifndef KP_BASE_XATTR_H
#define KP_BASE_XATTR_H

#include "buf.h"

typedef struct kp_xattr
{
  const char *name;    /* into the set's storage */
  const uint8_t *value;
  size_t len;
} kp_xattr;

typedef struct kp_xattrs
{
  kp_xattr *items; /* sorted by name (strcmp) */
  size_t len;
  /* storage, reused from one read to the next */
  char *list;
  size_t list_cap;
  kp_buf values;
  size_t items_cap;
} kp_xattrs;

#define KP_XATTRS_INIT { NULL, 0, NULL, 0, KP_BUF_INIT, 0 }

/* Depends on the host's labelling policy, not on the content: always left out. */
#define KP_XATTR_EXCLUDED "security.selinux"

/* Read the attributes of an entry: through `fd` when it is >= 0, else of `name` in
 * `dir_fd` without following it (through /proc/self/fd, which must be mounted). A
 * filesystem without extended attributes gives none; attributes removed while being read
 * are skipped. Returns 0, or -errno for the caller to word. */
int kp_xattrs_read (kp_xattrs *x, int fd, int dir_fd, const char *name);
void kp_xattrs_clear (kp_xattrs *x);

#endif
