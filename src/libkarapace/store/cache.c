/* cache.c — the store's index of objects by another name (docs/store.md, "cache/").
 *
 * A download cache needs to find an object by what its source calls it: a .deb by the
 * SHA256 its Packages index names, the last InRelease of a mirror's suite by the suite.
 * cache/<blake3 of the key> is a small checksummed record {key, object, time}. gc keeps
 * what it names unless told to drop the cache, then removes the records whose object went;
 * a record whose object is gone is a miss. */
#include "store-private.h"

#include "base/fs.h"
#include "base/json.h"
#include "base/util.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CACHE_RECORD_MAX 4096

static void
record_name (const char *key, char out[KP_BLAKE3_HEX_LEN + 1])
{
  uint8_t d[KP_BLAKE3_OUT_LEN];
  kp_blake3_hash (key, strlen (key), d);
  kp_blake3_to_hex (d, out);
}

static int
open_cache_dir (kp_store *store, kp_error **err)
{
  int fd = openat (store->dirfd, "cache", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return kp_store_fail_errno (err, errno, "cannot open '%s/cache'", store->path);
  return fd;
}

int
kp_store_cache_set (kp_store *store, const char *key, const char *object_id, kp_error **err)
{
  if (kp_store_require_writable (store, "record a cache entry", err) < 0)
    return -1;
  if (!kp_store_is_object_id (object_id))
    return kp_store_fail (err, NULL, "'%s' is not an object id", object_id);
  kp_cleanup_close int dirfd = open_cache_dir (store, err);
  if (dirfd < 0)
    return -1;
  char name[KP_BLAKE3_HEX_LEN + 1];
  record_name (key, name);
  kp_cleanup_json json_t *doc = json_pack ("{s:i,s:s,s:s,s:I}", "format", 1, "key", key,
                                           "object", object_id, "time",
                                           (json_int_t) time (NULL));
  kp_cleanup_free char *text = kp_store_json_dump_checked (doc);
  if (strlen (text) > CACHE_RECORD_MAX)
    return kp_store_fail (err, NULL, "cache key too long");
  return kp_store_write_file (store, dirfd, name, text, strlen (text), err);
}

int
kp_store_cache_get (kp_store *store, const char *key, char id[KP_STORE_OBJECT_ID_LEN + 1],
                    kp_error **err)
{
  kp_cleanup_close int dirfd = open_cache_dir (store, err);
  if (dirfd < 0)
    return -1;
  char name[KP_BLAKE3_HEX_LEN + 1];
  record_name (key, name);
  kp_cleanup_close int fd = openat (dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    {
      if (errno == ENOENT)
        return 0;
      return kp_store_fail_errno (err, errno, "cannot open cache record %s", name);
    }
  size_t len;
  kp_cleanup_error kp_error *bad = NULL;
  kp_cleanup_free char *text = kp_fd_read_all (fd, CACHE_RECORD_MAX, &len, &bad);
  kp_cleanup_json json_t *doc = text ? kp_store_json_load_checked (text, len, NULL) : NULL;
  const char *k = json_string_value (json_object_get (doc, "key"));
  const char *o = json_string_value (json_object_get (doc, "object"));
  /* A damaged record is a miss, not an error: the source is asked again and the record
     rewritten. verify-store reports it. */
  if (!kp_str_equal0 (k, key) || o == NULL || !kp_store_is_object_id (o))
    return 0;
  int has = kp_store_has (store, o, err);
  if (has <= 0)
    return has;
  memcpy (id, o, KP_STORE_OBJECT_ID_LEN + 1);
  return 1;
}

int
kp_store_cache_mark (kp_store *store, void (*keep) (const char *, void *), void *data,
                     kp_error **err)
{
  kp_cleanup_close int dirfd = open_cache_dir (store, err);
  if (dirfd < 0)
    return -1;
  kp_cleanup_dir DIR *d = kp_dir_open_at (dirfd, NULL);
  if (d == NULL)
    return kp_store_fail_errno (err, errno, "cannot list '%s/cache'", store->path);
  struct dirent *de;
  while ((de = readdir (d)) != NULL)
    {
      if (de->d_name[0] == '.')
        continue;
      kp_cleanup_close int fd = openat (dirfd, de->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0)
        continue;
      size_t len;
      kp_cleanup_error kp_error *bad = NULL;
      kp_cleanup_free char *text = kp_fd_read_all (fd, CACHE_RECORD_MAX, &len, &bad);
      kp_cleanup_json json_t *doc = text ? kp_store_json_load_checked (text, len, NULL) : NULL;
      const char *o = json_string_value (json_object_get (doc, "object"));
      if (o && kp_store_is_object_id (o))
        keep (o, data);
    }
  return 0;
}

int
kp_store_cache_sweep (kp_store *store, bool dry_run, uint64_t *removed, kp_error **err)
{
  kp_cleanup_close int dirfd = open_cache_dir (store, err);
  if (dirfd < 0)
    return -1;
  kp_cleanup_dir DIR *d = kp_dir_open_at (dirfd, NULL);
  if (d == NULL)
    return kp_store_fail_errno (err, errno, "cannot list '%s/cache'", store->path);
  struct dirent *de;
  while ((de = readdir (d)) != NULL)
    {
      if (de->d_name[0] == '.')
        continue;
      kp_cleanup_close int fd = openat (dirfd, de->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0)
        continue;
      size_t len;
      kp_cleanup_error kp_error *bad = NULL;
      kp_cleanup_free char *text = kp_fd_read_all (fd, CACHE_RECORD_MAX, &len, &bad);
      kp_cleanup_json json_t *doc = text ? kp_store_json_load_checked (text, len, NULL) : NULL;
      const char *o = json_string_value (json_object_get (doc, "object"));
      bool stale = o == NULL || !kp_store_is_object_id (o) || kp_store_has (store, o, NULL) != 1;
      if (!stale)
        continue;
      if (!dry_run && unlinkat (dirfd, de->d_name, 0) < 0 && errno != ENOENT)
        return kp_store_fail_errno (err, errno, "cannot remove cache record %s", de->d_name);
      if (removed)
        (*removed)++;
    }
  return 0;
}

void
kp_store_cache_verify (kp_store *store, kp_store_verify_report *report)
{
  kp_cleanup_error kp_error *e = NULL;
  kp_cleanup_close int dirfd = open_cache_dir (store, &e);
  if (dirfd < 0)
    {
      kp_store_verify_problem (report, "cache", "cache", "%s", e->message);
      return;
    }
  kp_cleanup_dir DIR *d = kp_dir_open_at (dirfd, NULL);
  if (d == NULL)
    {
      kp_store_verify_problem (report, "cache", "cache", "cannot list it: %s", strerror (errno));
      return;
    }
  struct dirent *de;
  while ((de = readdir (d)) != NULL)
    {
      if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
        continue;
      kp_cleanup_close int fd = openat (dirfd, de->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
      size_t len = 0;
      kp_cleanup_error kp_error *bad = NULL;
      kp_cleanup_free char *text = fd >= 0 ? kp_fd_read_all (fd, CACHE_RECORD_MAX, &len, &bad)
                                           : NULL;
      kp_cleanup_json json_t *doc = text ? kp_store_json_load_checked (text, len, NULL) : NULL;
      const char *k = json_string_value (json_object_get (doc, "key"));
      const char *o = json_string_value (json_object_get (doc, "object"));
      char name[KP_BLAKE3_HEX_LEN + 1] = "";
      if (k)
        record_name (k, name);
      /* A record of an object gc freed is only stale (gc removes it); a damaged one or a
         file that is no record is worth a look, though it is only ever a cache miss. */
      if (doc == NULL || o == NULL || !kp_store_is_object_id (o) || strcmp (name, de->d_name) != 0)
        kp_store_verify_problem (report, "cache", de->d_name,
                                 "not an intact cache record (it is ignored; remove it)");
    }
}
