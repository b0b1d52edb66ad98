/* object.c — immutable blobs named by the BLAKE3 of their bytes, in objects/ab/cdef….
 *
 * Writing: the bytes go to a new file in tmp/ and through the hasher in the same pass;
 * the file is synced, then link()ed to its final name. link() never replaces: EEXIST
 * means the object is already there (same name, same bytes), so puts are idempotent and
 * two writers of one object cannot hurt each other. The fan-out directory is synced
 * last. Reading: every read re-hashes, and only a read that reached the end intact
 * reports success; a mismatch names the object. */
#include "store-private.h"

#include "base/fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define COPY_BUFFER_SIZE (256 * 1024)

bool
kp_store_is_object_id (const char *id)
{
  if (id == NULL)
    return false;
  size_t i = 0;
  for (; id[i]; i++)
    if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
      return false;
  return i == KP_STORE_OBJECT_ID_LEN;
}

void
kp_store_object_relpath (const char *id, char out[KP_STORE_OBJECT_ID_LEN + 2])
{
  out[0] = id[0];
  out[1] = id[1];
  out[2] = '/';
  memcpy (out + 3, id + 2, KP_STORE_OBJECT_ID_LEN - 2);
  out[KP_STORE_OBJECT_ID_LEN + 1] = '\0';
}

static int
check_id (const char *id, kp_error **err)
{
  if (kp_store_is_object_id (id))
    return 0;
  return kp_store_fail (err, "object ids are 64 lowercase hexadecimal digits",
                        "'%s' is not an object id", id ? id : "(null)");
}

/* Link tmp/NAME to objects/ab/cdef…; EEXIST is success. Removes the temporary file. */
static int
commit_object (kp_store *store, const char *tmp, const char *id, kp_error **err)
{
  char fan[3] = { id[0], id[1], '\0' };
  bool created_fan = false;
  if (mkdirat (store->objects_fd, fan, 0700) == 0)
    created_fan = true;
  else if (errno != EEXIST)
    {
      int saved = errno;
      unlinkat (store->tmp_fd, tmp, 0);
      return kp_store_fail_errno (err, saved, "cannot create '%s/objects/%s'", store->path, fan);
    }
  kp_cleanup_close int fanfd = openat (store->objects_fd, fan,
                                       O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fanfd < 0)
    {
      int saved = errno;
      unlinkat (store->tmp_fd, tmp, 0);
      return kp_store_fail_errno (err, saved, "cannot open '%s/objects/%s'", store->path, fan);
    }
  int r = 0;
  if (linkat (store->tmp_fd, tmp, fanfd, id + 2, 0) < 0)
    {
      r = errno == EEXIST ? 0 : -errno;
      /* Already there. A copy of another size is damaged (a truncated write on a
         filesystem that lost it): the good bytes we hold replace it. Same-size damage is
         left for reads and verify-store to find; re-hashing on every put would cost a
         read of every duplicate. */
      struct stat have, ours;
      if (r == 0 && fstatat (fanfd, id + 2, &have, AT_SYMLINK_NOFOLLOW) == 0
          && fstatat (store->tmp_fd, tmp, &ours, 0) == 0 && have.st_size != ours.st_size
          && renameat (store->tmp_fd, tmp, fanfd, id + 2) < 0)
        r = -errno;
    }
  unlinkat (store->tmp_fd, tmp, 0);
  if (r < 0)
    return kp_store_fail_errno (err, -r, "cannot add object %s", id);
  if (kp_store_fsync_dir (fanfd, "objects fan-out directory", err) < 0)
    return -1;
  if (created_fan && kp_store_fsync_dir (store->objects_fd, "objects", err) < 0)
    return -1;
  return 0;
}

static int
finish_tmp (kp_store *store, int fd, const char *tmp, kp_error **err)
{
  if (fchmod (fd, 0444) < 0 || fsync (fd) < 0)
    {
      int saved = errno;
      unlinkat (store->tmp_fd, tmp, 0);
      return kp_store_fail_errno (err, saved, "cannot write an object in '%s/tmp'",
                                  store->path);
    }
  return 0;
}

int
kp_store_put (kp_store *store, const void *data, size_t len,
              char id[KP_STORE_OBJECT_ID_LEN + 1], kp_error **err)
{
  if (kp_store_require_writable (store, "put an object", err) < 0)
    return -1;
  uint8_t digest[KP_BLAKE3_OUT_LEN];
  kp_blake3_hash (data, len, digest);
  kp_blake3_to_hex (digest, id);
  char rel[KP_STORE_OBJECT_ID_LEN + 2];
  kp_store_object_relpath (id, rel);
  struct stat st;
  if (fstatat (store->objects_fd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG (st.st_mode)
      && (uint64_t) st.st_size == (uint64_t) len)
    return 0;
  kp_cleanup_free char *tmp = NULL;
  kp_cleanup_close int fd = kp_store_tmp_create (store, &tmp, err);
  if (fd < 0)
    return -1;
  int r = kp_write_all (fd, data, len);
  if (r < 0)
    {
      unlinkat (store->tmp_fd, tmp, 0);
      return kp_store_fail_errno (err, -r, "cannot write object %s", id);
    }
  if (finish_tmp (store, fd, tmp, err) < 0)
    return -1;
  return commit_object (store, tmp, id, err);
}

/* Copy a regular file into the temporary object in the kernel (copy_file_range: one copy,
 * or none where the filesystem shares extents), then hash the copy through a mapping of
 * our own private temporary file. A read()+write() loop copies every byte twice through
 * user space, which costs far more than hashing. Returns 1 when done, 0 when the caller
 * must use the portable loop (nothing was consumed), -errno on failure. */
static int
put_by_copy_range (int in_fd, int out_fd, kp_blake3 *h)
{
  struct stat st;
  if (fstat (in_fd, &st) < 0 || !S_ISREG (st.st_mode) || st.st_size == 0)
    return 0;
  off_t copied = 0;
  for (;;)
    {
      ssize_t n = copy_file_range (in_fd, NULL, out_fd, NULL, 1 << 30, 0);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        {
          if (copied == 0 && (errno == ENOSYS || errno == EXDEV || errno == EINVAL
                              || errno == EOPNOTSUPP || errno == EBADF))
            return 0;
          return -errno;
        }
      if (n == 0)
        break;
      copied += n;
    }
  if (copied == 0)
    return 1;
  void *map = mmap (NULL, (size_t) copied, PROT_READ, MAP_SHARED, out_fd, 0);
  if (map == MAP_FAILED)
    return -errno;
  kp_blake3_update (h, map, (size_t) copied);
  munmap (map, (size_t) copied);
  return 1;
}

int
kp_store_put_fd (kp_store *store, int in_fd, char id[KP_STORE_OBJECT_ID_LEN + 1],
                 kp_error **err)
{
  if (kp_store_require_writable (store, "put an object", err) < 0)
    return -1;
  kp_cleanup_free char *tmp = NULL;
  kp_cleanup_close int fd = kp_store_tmp_create (store, &tmp, err);
  if (fd < 0)
    return -1;
  kp_blake3 h;
  kp_blake3_init (&h);
  int fast = put_by_copy_range (in_fd, fd, &h);
  if (fast < 0)
    {
      unlinkat (store->tmp_fd, tmp, 0);
      return kp_store_fail_errno (err, -fast, "cannot copy the data for a new object into "
                                  "'%s/tmp'", store->path);
    }
  kp_cleanup_free uint8_t *buf = fast ? NULL : xmalloc (COPY_BUFFER_SIZE);
  while (!fast)
    {
      ssize_t n = read (in_fd, buf, COPY_BUFFER_SIZE);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        {
          int saved = errno;
          unlinkat (store->tmp_fd, tmp, 0);
          return kp_store_fail_errno (err, saved, "cannot read the data for a new object");
        }
      if (n == 0)
        break;
      kp_blake3_update (&h, buf, (size_t) n);
      int r = kp_write_all (fd, buf, (size_t) n);
      if (r < 0)
        {
          unlinkat (store->tmp_fd, tmp, 0);
          return kp_store_fail_errno (err, -r, "cannot write a new object in '%s/tmp'",
                                      store->path);
        }
    }
  uint8_t digest[KP_BLAKE3_OUT_LEN];
  kp_blake3_final (&h, digest, sizeof digest);
  kp_blake3_to_hex (digest, id);
  if (finish_tmp (store, fd, tmp, err) < 0)
    return -1;
  return commit_object (store, tmp, id, err);
}

int
kp_store_has (kp_store *store, const char *id, kp_error **err)
{
  if (check_id (id, err) < 0)
    return -1;
  char rel[KP_STORE_OBJECT_ID_LEN + 2];
  kp_store_object_relpath (id, rel);
  struct stat st;
  if (fstatat (store->objects_fd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0)
    return S_ISREG (st.st_mode) ? 1 : 0;
  if (errno == ENOENT)
    return 0;
  return kp_store_fail_errno (err, errno, "cannot look up object %s", id);
}

struct kp_store_reader
{
  char id[KP_STORE_OBJECT_ID_LEN + 1];
  int fd;
  uint64_t size, done;
  kp_blake3 hash;
  bool finished;
};

kp_store_reader *
kp_store_reader_open (kp_store *store, const char *id, kp_error **err)
{
  if (check_id (id, err) < 0)
    return NULL;
  char rel[KP_STORE_OBJECT_ID_LEN + 2];
  kp_store_object_relpath (id, rel);
  int fd = openat (store->objects_fd, rel, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
  if (fd < 0)
    {
      if (errno == ENOENT)
        kp_store_fail (err, "the object is missing: " KP_STORE_HINT_VERIFY,
                       "object %s is not in the store '%s'", id, store->path);
      else
        kp_store_fail_errno (err, errno, "cannot open object %s", id);
      return NULL;
    }
  struct stat st;
  if (fstat (fd, &st) < 0 || !S_ISREG (st.st_mode))
    {
      close (fd);
      kp_store_fail (err, NULL, "object %s is not a regular file", id);
      return NULL;
    }
  kp_store_reader *r = xcalloc (1, sizeof *r);
  memcpy (r->id, id, sizeof r->id);
  r->fd = fd;
  r->size = (uint64_t) st.st_size;
  kp_blake3_init (&r->hash);
  return r;
}

ssize_t
kp_store_reader_read (kp_store_reader *r, void *buf, size_t len, kp_error **err)
{
  if (r->finished)
    return 0;
  for (;;)
    {
      ssize_t n = read (r->fd, buf, len);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return kp_store_fail_errno (err, errno, "cannot read object %s", r->id);
      if (n > 0)
        {
          kp_blake3_update (&r->hash, buf, (size_t) n);
          r->done += (uint64_t) n;
          return n;
        }
      break;
    }
  uint8_t digest[KP_BLAKE3_OUT_LEN];
  char hex[KP_BLAKE3_HEX_LEN + 1];
  kp_blake3_final (&r->hash, digest, sizeof digest);
  kp_blake3_to_hex (digest, hex);
  if (strcmp (hex, r->id) != 0)
    return kp_store_fail (err, "the object's bytes changed on disk; "
                          "restore it from a copy or rebuild what uses it, then run "
                          "'karapace verify-store'",
                          "object %s is corrupt: its content hashes to %s", r->id, hex);
  r->finished = true;
  return 0;
}

uint64_t
kp_store_reader_size (const kp_store_reader *r)
{
  return r->size;
}

void
kp_store_reader_close (kp_store_reader *r)
{
  if (r == NULL)
    return;
  close (r->fd);
  free (r);
}

static void
reader_closep (kp_store_reader **r)
{
  kp_store_reader_close (*r);
}
#define cleanup_reader __attribute__ ((cleanup (reader_closep)))

void *
kp_store_get (kp_store *store, const char *id, size_t max_size, size_t *len, kp_error **err)
{
  cleanup_reader kp_store_reader *r = kp_store_reader_open (store, id, err);
  if (r == NULL)
    return NULL;
  if (r->size > max_size)
    {
      kp_store_fail (err, "read it with the streaming reader",
                     "object %s is larger than %zu bytes", id, max_size);
      return NULL;
    }
  kp_cleanup_buf kp_buf b = KP_BUF_INIT;
  char chunk[65536];
  for (;;)
    {
      ssize_t n = kp_store_reader_read (r, chunk, sizeof chunk, err);
      if (n < 0)
        return NULL;
      if (n == 0)
        break;
      if (b.len + (size_t) n > max_size)
        {
          kp_store_fail (err, NULL, "object %s grew while it was read", id);
          return NULL;
        }
      kp_buf_append (&b, chunk, (size_t) n);
    }
  if (len)
    *len = b.len;
  return kp_buf_steal (&b);
}

int
kp_store_get_to_fd (kp_store *store, const char *id, int out_fd, kp_error **err)
{
  cleanup_reader kp_store_reader *r = kp_store_reader_open (store, id, err);
  if (r == NULL)
    return -1;
  kp_cleanup_free uint8_t *buf = xmalloc (COPY_BUFFER_SIZE);
  for (;;)
    {
      ssize_t n = kp_store_reader_read (r, buf, COPY_BUFFER_SIZE, err);
      if (n < 0)
        return -1;
      if (n == 0)
        return 0;
      int w = kp_write_all (out_fd, buf, (size_t) n);
      if (w < 0)
        return kp_store_fail_errno (err, -w, "cannot copy object %s", id);
    }
}

int
kp_store_verify_object (kp_store *store, const char *id, uint64_t *size, kp_error **err)
{
  cleanup_reader kp_store_reader *r = kp_store_reader_open (store, id, err);
  if (r == NULL)
    return -1;
  kp_cleanup_free uint8_t *buf = xmalloc (COPY_BUFFER_SIZE);
  for (;;)
    {
      ssize_t n = kp_store_reader_read (r, buf, COPY_BUFFER_SIZE, err);
      if (n < 0)
        return -1;
      if (n == 0)
        break;
    }
  if (size)
    *size = r->done;
  return 0;
}

int
kp_store_remove_object (kp_store *store, const char *id, kp_error **err)
{
  if (kp_store_require_writable (store, "remove an object", err) < 0 || check_id (id, err) < 0)
    return -1;
  char rel[KP_STORE_OBJECT_ID_LEN + 2];
  kp_store_object_relpath (id, rel);
  if (unlinkat (store->objects_fd, rel, 0) < 0)
    {
      if (errno == ENOENT)
        return 0;
      return kp_store_fail_errno (err, errno, "cannot remove object %s", id);
    }
  char fan[3] = { id[0], id[1], '\0' };
  kp_cleanup_close int fanfd = openat (store->objects_fd, fan,
                                       O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fanfd >= 0)
    return kp_store_fsync_dir (fanfd, "objects fan-out directory", err);
  return 0;
}

static bool
is_hex_name (const char *s, size_t len)
{
  size_t i = 0;
  for (; s[i]; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
      return false;
  return i == len;
}

int
kp_store_foreach_object (kp_store *store,
                         int (*fn) (const char *id, void *user_data, kp_error **err),
                         void *user_data, kp_error **err)
{
  kp_cleanup_dir DIR *d = kp_dir_open_at (store->objects_fd, NULL);
  if (d == NULL)
    return kp_store_fail_errno (err, errno, "cannot list '%s/objects'", store->path);
  struct dirent *de;
  while ((de = readdir (d)) != NULL)
    {
      if (!is_hex_name (de->d_name, 2))
        continue;
      kp_cleanup_dir DIR *sub = kp_dir_open_at (store->objects_fd, de->d_name);
      if (sub == NULL)
        continue;
      struct dirent *e;
      while ((e = readdir (sub)) != NULL)
        {
          if (!is_hex_name (e->d_name, KP_STORE_OBJECT_ID_LEN - 2))
            continue;
          char id[KP_STORE_OBJECT_ID_LEN + 1];
          id[0] = de->d_name[0];
          id[1] = de->d_name[1];
          memcpy (id + 2, e->d_name, KP_STORE_OBJECT_ID_LEN - 2 + 1);
          if (fn (id, user_data, err) < 0)
            return -1;
        }
    }
  return 0;
}

/* ---- streaming writer ---- */

struct kp_store_writer
{
  kp_store *store;
  char *tmp;
  int fd;
  uint64_t size;
  kp_blake3 h;
};

kp_store_writer *
kp_store_writer_new (kp_store *store, kp_error **err)
{
  if (kp_store_require_writable (store, "put an object", err) < 0)
    return NULL;
  kp_store_writer *w = xcalloc (1, sizeof *w);
  w->store = store;
  w->fd = kp_store_tmp_create (store, &w->tmp, err);
  if (w->fd < 0)
    {
      free (w);
      return NULL;
    }
  kp_blake3_init (&w->h);
  return w;
}

int
kp_store_writer_write (kp_store_writer *w, const void *data, size_t len, kp_error **err)
{
  int r = kp_write_all (w->fd, data, len);
  if (r < 0)
    return kp_store_fail_errno (err, -r, "cannot write a new object in '%s/tmp'",
                                w->store->path);
  kp_blake3_update (&w->h, data, len);
  w->size += len;
  return 0;
}

uint64_t
kp_store_writer_size (const kp_store_writer *w)
{
  return w->size;
}

int
kp_store_writer_commit (kp_store_writer *w, char id[KP_STORE_OBJECT_ID_LEN + 1],
                        kp_error **err)
{
  uint8_t digest[KP_BLAKE3_OUT_LEN];
  kp_blake3_final (&w->h, digest, sizeof digest);
  kp_blake3_to_hex (digest, id);
  int r = finish_tmp (w->store, w->fd, w->tmp, err);
  if (r == 0)
    r = commit_object (w->store, w->tmp, id, err);
  close (w->fd);
  free (w->tmp);
  free (w);
  return r;
}

void
kp_store_writer_abort (kp_store_writer *w)
{
  if (w == NULL)
    return;
  unlinkat (w->store->tmp_fd, w->tmp, 0);
  close (w->fd);
  free (w->tmp);
  free (w);
}
