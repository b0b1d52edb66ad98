/* xattr.c — complete, sorted reads of extended attributes. See xattr.h. */
#include "xattr.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

static ssize_t
xattr_list (int fd, const char *proc_path, char *buf, size_t size)
{
  return fd >= 0 ? flistxattr (fd, buf, size) : llistxattr (proc_path, buf, size);
}

static ssize_t
xattr_get (int fd, const char *proc_path, const char *name, void *buf, size_t size)
{
  return fd >= 0 ? fgetxattr (fd, name, buf, size) : lgetxattr (proc_path, name, buf, size);
}

static int
compare_items (const void *a, const void *b)
{
  return strcmp (((const kp_xattr *) a)->name, ((const kp_xattr *) b)->name);
}

int
kp_xattrs_read (kp_xattrs *x, int fd, int dir_fd, const char *name)
{
  x->len = 0;
  kp_buf_truncate (&x->values, 0);
  kp_cleanup_free char *proc_path = fd < 0 ? xasprintf ("/proc/self/fd/%d/%s", dir_fd, name)
                                           : NULL;
  ssize_t list_len;
  for (;;)
    {
      list_len = xattr_list (fd, proc_path, NULL, 0);
      if (list_len < 0 && (errno == ENOTSUP || errno == ENOSYS))
        return 0; /* a filesystem without extended attributes has none */
      if (list_len < 0)
        return -errno;
      if (list_len == 0)
        return 0;
      if ((size_t) list_len > x->list_cap)
        {
          x->list_cap = (size_t) list_len;
          x->list = xrealloc (x->list, x->list_cap);
        }
      list_len = xattr_list (fd, proc_path, x->list, x->list_cap);
      if (list_len >= 0)
        break;
      if (errno != ERANGE) /* ERANGE: the list grew meanwhile, ask again */
        return -errno;
    }

  /* Values go into one buffer; offsets become pointers once it has stopped growing. */
  kp_cleanup_free size_t *offsets = NULL;
  size_t offsets_cap = 0;
  for (ssize_t off = 0; off < list_len; off += (ssize_t) strlen (x->list + off) + 1)
    {
      const char *xname = x->list + off;
      if (*xname == '\0' || strcmp (xname, KP_XATTR_EXCLUDED) == 0)
        continue;
      size_t at = x->values.len;
      ssize_t len;
      for (;;)
        {
          kp_buf_truncate (&x->values, at);
          len = xattr_get (fd, proc_path, xname, NULL, 0);
          if (len < 0)
            break;
          char *dest = kp_buf_extend (&x->values, (size_t) len);
          len = xattr_get (fd, proc_path, xname, dest, (size_t) len);
          if (len >= 0 || errno != ERANGE) /* ERANGE: the value grew meanwhile */
            break;
        }
      if (len < 0)
        {
          kp_buf_truncate (&x->values, at);
          if (errno == ENODATA)
            continue; /* removed since it was listed */
          return -errno;
        }
      kp_buf_truncate (&x->values, at + (size_t) len);
      if (x->len == x->items_cap)
        {
          x->items_cap = x->items_cap ? 2 * x->items_cap : 8;
          x->items = xreallocarray (x->items, x->items_cap, sizeof (kp_xattr));
        }
      if (x->len == offsets_cap)
        {
          offsets_cap = x->items_cap;
          offsets = xreallocarray (offsets, offsets_cap, sizeof (size_t));
        }
      offsets[x->len] = at;
      x->items[x->len++] = (kp_xattr) { .name = xname, .len = (size_t) len };
    }
  for (size_t i = 0; i < x->len; i++)
    x->items[i].value = (const uint8_t *) x->values.data + offsets[i];
  if (x->len > 1)
    qsort (x->items, x->len, sizeof (kp_xattr), compare_items);
  return 0;
}

void
kp_xattrs_clear (kp_xattrs *x)
{
  free (x->items);
  free (x->list);
  kp_buf_clear (&x->values);
  memset (x, 0, sizeof *x);
}
