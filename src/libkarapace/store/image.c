/* image.c — image records (images/ALGO-HEX.json) and tags (images/tags/HASH.json).
 *
 * A record is a checksummed JSON document like env.json: it names the base layer an image
 * became and the objects it came from, and gc keeps both alive while it exists. A tag is a
 * small checksummed document {reference, digest, resolved}, stored under the BLAKE3 of the
 * reference so that any reference text maps to a safe file name. Names read back from the
 * directory are validated before they are used. */
#include "store-private.h"

#include "base/fs.h"
#include "base/json.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static bool
is_lower_hex (const char *s, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
      return false;
  return s[n] == '\0';
}

/* sha256:<64> | sha512:<128> | blake3:<64>. */
static bool
valid_digest (const char *d)
{
  if (d == NULL)
    return false;
  if (strncmp (d, "sha256:", 7) == 0 || strncmp (d, "blake3:", 7) == 0)
    return strlen (d + 7) == 64 && is_lower_hex (d + 7, 64);
  if (strncmp (d, "sha512:", 7) == 0)
    return strlen (d + 7) == 128 && is_lower_hex (d + 7, 128);
  return false;
}

/* "sha256:abc" → "sha256-abc.json". */
static char *
record_name (const char *digest)
{
  kp_cleanup_free char *n = xasprintf ("%s.json", digest);
  n[6] = '-';
  return kp_steal_pointer (&n);
}

static int
invalid_digest (kp_error **err, const char *digest)
{
  return kp_store_fail (err, "image digests are sha256:HEX, sha512:HEX or blake3:HEX",
                        "'%s' is not an image digest", digest ? digest : "(null)");
}

/* images/: made when the store is created (store.c). */
static int
images_dir (kp_store *store, kp_error **err)
{
  int fd = openat (store->dirfd, "images", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return kp_store_fail_errno (err, errno, "cannot open '%s/images'", store->path);
  return fd;
}

/* images/tags/, made by the first tag. Without create, a missing directory is no error:
 * -1 with *absent set and err untouched. */
static int
tags_dir (kp_store *store, bool create, bool *absent, kp_error **err)
{
  if (absent)
    *absent = false;
  kp_cleanup_close int img = images_dir (store, err);
  if (img < 0)
    return -1;
  if (create && mkdirat (img, "tags", 0700) == 0
      && kp_store_fsync_dir (img, "images", err) < 0)
    return -1;
  int fd = openat (img, "tags", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd >= 0)
    return fd;
  if (errno == ENOENT && !create && absent)
    {
      *absent = true;
      return -1;
    }
  return kp_store_fail_errno (err, errno, "cannot open '%s/images/tags'", store->path);
}

void
kp_image_record_free (kp_image_record *rec)
{
  if (rec == NULL)
    return;
  free (rec->digest);
  free (rec->reference);
  kp_strv_free (rec->objects);
  json_decref (rec->extra);
  free (rec);
}

void
kp_image_record_freep (kp_image_record **rec)
{
  kp_image_record_free (*rec);
  *rec = NULL;
}

int
kp_store_image_write (kp_store *store, const kp_image_record *rec, kp_error **err)
{
  if (kp_store_require_writable (store, "write an image record", err) < 0)
    return -1;
  if (!valid_digest (rec->digest))
    return invalid_digest (err, rec->digest);
  if (kp_store_layer_exists (store, rec->tree_digest, err) != 1)
    return kp_store_fail (err, NULL, "image %s: its layer %.12s is not in the store",
                          rec->digest, rec->tree_digest);
  for (char **o = rec->objects; o && *o; o++)
    if (kp_store_has (store, *o, err) != 1)
      return kp_store_fail (err, NULL, "image %s: object %.12s is not in the store",
                            rec->digest, *o);
  int64_t created = rec->created;
  if (created == 0)
    {
      kp_cleanup_image_record kp_image_record *old = kp_store_image_read (store, rec->digest,
                                                                         NULL);
      created = old ? old->created : (int64_t) time (NULL);
    }
  kp_cleanup_json json_t *doc = json_pack (
      "{s:i,s:s,s:s,s:s,s:I,s:I,s:o}", "format", 1, "digest", rec->digest, "reference",
      rec->reference ? rec->reference : "", "tree_digest", rec->tree_digest, "created",
      (json_int_t) created, "size", (json_int_t) rec->size, "objects",
      kp_json_strv (rec->objects));
  json_object_set_new (doc, "extra", rec->extra ? json_incref (rec->extra) : json_object ());
  kp_cleanup_free char *text = kp_store_json_dump_checked (doc);
  kp_cleanup_close int dfd = images_dir (store, err);
  if (dfd < 0)
    return -1;
  kp_cleanup_free char *name = record_name (rec->digest);
  return kp_store_write_file (store, dfd, name, text, strlen (text), err);
}

static kp_image_record *
parse_record (const char *text, size_t len, const char *digest, kp_error **err)
{
  kp_cleanup_json json_t *doc = kp_store_json_load_checked (text, len, err);
  if (doc == NULL)
    {
      kp_error_prefix (err, "the record of image %s is corrupt", digest);
      return NULL;
    }
  const char *d = json_string_value (json_object_get (doc, "digest"));
  const char *tree = json_string_value (json_object_get (doc, "tree_digest"));
  json_t *objects = json_object_get (doc, "objects");
  if (!kp_str_equal0 (d, digest) || tree == NULL || !kp_store_is_object_id (tree)
      || !json_is_array (objects) || json_integer_value (json_object_get (doc, "format")) != 1)
    {
      kp_store_fail (err, KP_STORE_HINT_VERIFY, "the record of image %s is malformed", digest);
      return NULL;
    }
  kp_image_record *rec = xcalloc (1, sizeof *rec);
  rec->digest = xstrdup (d);
  const char *ref = json_string_value (json_object_get (doc, "reference"));
  rec->reference = ref && *ref ? xstrdup (ref) : NULL;
  memcpy (rec->tree_digest, tree, KP_BLAKE3_HEX_LEN + 1);
  rec->created = json_integer_value (json_object_get (doc, "created"));
  rec->size = (uint64_t) json_integer_value (json_object_get (doc, "size"));
  size_t n = json_array_size (objects);
  rec->objects = xcalloc (n + 1, sizeof (char *));
  for (size_t i = 0; i < n; i++)
    {
      const char *o = json_string_value (json_array_get (objects, i));
      if (!kp_store_is_object_id (o))
        {
          kp_image_record_free (rec);
          kp_store_fail (err, KP_STORE_HINT_VERIFY, "the record of image %s names an invalid "
                         "object", digest);
          return NULL;
        }
      rec->objects[i] = xstrdup (o);
    }
  json_t *extra = json_object_get (doc, "extra");
  rec->extra = json_is_object (extra) ? json_incref (extra) : NULL;
  return rec;
}

kp_image_record *
kp_store_image_read (kp_store *store, const char *digest, kp_error **err)
{
  if (!valid_digest (digest))
    {
      invalid_digest (err, digest);
      return NULL;
    }
  kp_cleanup_close int dfd = images_dir (store, err);
  if (dfd < 0)
    return NULL;
  kp_cleanup_free char *name = record_name (digest);
  kp_cleanup_close int fd = openat (dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    {
      if (errno == ENOENT)
        {
          kp_error_set (err, KP_EXIT_STORE, "no image %s in the store", digest);
          kp_error_hint (err, "'karapace images pull REF' fetches it");
        }
      else
        kp_store_fail_errno (err, errno, "cannot open the record of image %s", digest);
      return NULL;
    }
  size_t len = 0;
  kp_cleanup_free char *text = kp_fd_read_all (fd, 64 << 20, &len, err);
  if (text == NULL)
    return NULL;
  return parse_record (text, len, digest, err);
}

int
kp_store_image_has (kp_store *store, const char *digest, kp_error **err)
{
  if (!valid_digest (digest))
    return invalid_digest (err, digest);
  kp_cleanup_close int dfd = images_dir (store, err);
  if (dfd < 0)
    return -1;
  kp_cleanup_free char *name = record_name (digest);
  struct stat st;
  if (fstatat (dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
    return S_ISREG (st.st_mode) ? 1 : 0;
  return errno == ENOENT ? 0 : kp_store_fail_errno (err, errno, "cannot look for image %s",
                                                    digest);
}

static int
compare_strings (const void *a, const void *b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

/* "sha256-HEX.json" → "sha256:HEX" when valid, else NULL. */
static char *
digest_of_name (const char *name)
{
  size_t n = strlen (name);
  if (n < 12 || strcmp (name + n - 5, ".json") != 0 || name[6] != '-')
    return NULL;
  kp_cleanup_free char *d = xstrndup (name, n - 5);
  d[6] = ':';
  return valid_digest (d) ? kp_steal_pointer (&d) : NULL;
}

char **
kp_store_image_list (kp_store *store, kp_error **err)
{
  kp_cleanup_close int dfd = images_dir (store, err);
  if (dfd < 0)
    return NULL;
  kp_cleanup_dir DIR *d = kp_dir_open_at (dfd, NULL);
  if (d == NULL)
    {
      kp_store_fail_errno (err, errno, "cannot list '%s/images'", store->path);
      return NULL;
    }
  size_t n = 0;
  char **out = xcalloc (1, sizeof (char *));
  struct dirent *de;
  while ((de = readdir (d)) != NULL)
    {
      char *digest = digest_of_name (de->d_name);
      if (digest == NULL)
        continue;
      out = xreallocarray (out, n + 2, sizeof (char *));
      out[n++] = digest;
      out[n] = NULL;
    }
  qsort (out, n, sizeof (char *), compare_strings);
  return out;
}

/* ---- tags ---- */

static void
tag_name (const char *reference, char name[KP_BLAKE3_HEX_LEN + 6])
{
  uint8_t d[KP_BLAKE3_OUT_LEN];
  char hex[KP_BLAKE3_HEX_LEN + 1];
  kp_blake3_hash (reference, strlen (reference), d);
  kp_blake3_to_hex (d, hex);
  snprintf (name, KP_BLAKE3_HEX_LEN + 6, "%s.json", hex);
}

/* A reference is text the caller canonicalized; the store only needs it to be a string
 * it can hash and give back. */
static int
check_reference (const char *reference, kp_error **err)
{
  if (reference == NULL || *reference == '\0' || strlen (reference) > 4096)
    return kp_store_fail (err, NULL, "an image tag needs a reference (1 to 4096 bytes)");
  return 0;
}

int
kp_store_image_tag_set (kp_store *store, const char *reference, const char *digest,
                        int64_t resolved_at, kp_error **err)
{
  if (kp_store_require_writable (store, "tag an image", err) < 0
      || check_reference (reference, err) < 0)
    return -1;
  if (!valid_digest (digest))
    return invalid_digest (err, digest);
  kp_cleanup_close int dfd = tags_dir (store, true, NULL, err);
  if (dfd < 0)
    return -1;
  kp_cleanup_json json_t *doc = json_pack ("{s:i,s:s,s:s,s:I}", "format", 1, "reference",
                                           reference, "digest", digest, "resolved",
                                           (json_int_t) resolved_at);
  if (doc == NULL)
    return kp_store_fail (err, NULL, "the reference '%s' is not valid UTF-8", reference);
  kp_cleanup_free char *text = kp_store_json_dump_checked (doc);
  char name[KP_BLAKE3_HEX_LEN + 6];
  tag_name (reference, name);
  return kp_store_write_file (store, dfd, name, text, strlen (text), err);
}

/* Read and check images/tags/NAME. NULL with err untouched when it does not exist. A tag
 * must sit under the hash of its own reference: a file copied or renamed by hand would
 * otherwise answer for a reference it does not name. */
static json_t *
read_tag (int dfd, const char *name, kp_error **err)
{
  kp_cleanup_close int fd = openat (dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    {
      if (errno != ENOENT)
        kp_store_fail_errno (err, errno, "cannot open tag %s", name);
      return NULL;
    }
  size_t len = 0;
  kp_cleanup_free char *text = kp_fd_read_all (fd, 1 << 20, &len, err);
  if (text == NULL)
    {
      kp_store_wrap (err, NULL);
      return NULL;
    }
  kp_cleanup_json json_t *doc = kp_store_json_load_checked (text, len, err);
  if (doc == NULL)
    {
      kp_error_prefix (err, "tag %s is corrupt", name);
      return NULL;
    }
  const char *reference = json_string_value (json_object_get (doc, "reference"));
  char want[KP_BLAKE3_HEX_LEN + 6];
  if (reference && *reference)
    tag_name (reference, want);
  if (reference == NULL || *reference == '\0' || strcmp (want, name) != 0
      || !valid_digest (json_string_value (json_object_get (doc, "digest")))
      || json_integer_value (json_object_get (doc, "format")) != 1)
    {
      kp_store_fail (err, KP_STORE_HINT_VERIFY, "tag %s is malformed", name);
      return NULL;
    }
  return kp_steal_pointer (&doc);
}

static bool
is_tag_name (const char *name)
{
  return strlen (name) == KP_BLAKE3_HEX_LEN + 5
         && strspn (name, "0123456789abcdef") == KP_BLAKE3_HEX_LEN
         && strcmp (name + KP_BLAKE3_HEX_LEN, ".json") == 0;
}

int
kp_store_image_tag_get (kp_store *store, const char *reference, char **digest,
                        int64_t *resolved_at, kp_error **err)
{
  if (check_reference (reference, err) < 0)
    return -1;
  bool absent;
  kp_cleanup_close int dfd = tags_dir (store, false, &absent, err);
  if (dfd < 0)
    return absent ? 0 : -1;
  char name[KP_BLAKE3_HEX_LEN + 6];
  tag_name (reference, name);
  kp_error *e = NULL;
  kp_cleanup_json json_t *doc = read_tag (dfd, name, &e);
  if (doc == NULL)
    {
      if (e == NULL)
        return 0;
      if (err)
        *err = e;
      else
        kp_error_free (e);
      return -1;
    }
  if (strcmp (json_string_value (json_object_get (doc, "reference")), reference) != 0)
    return 0; /* a hash collision would be news; treat it as absent */
  if (digest)
    *digest = xstrdup (json_string_value (json_object_get (doc, "digest")));
  if (resolved_at)
    *resolved_at = json_integer_value (json_object_get (doc, "resolved"));
  return 1;
}

int
kp_store_image_tag_remove (kp_store *store, const char *reference, kp_error **err)
{
  if (kp_store_require_writable (store, "remove a tag", err) < 0
      || check_reference (reference, err) < 0)
    return -1;
  bool absent;
  kp_cleanup_close int dfd = tags_dir (store, false, &absent, err);
  if (dfd < 0)
    return absent ? 0 : -1;
  char name[KP_BLAKE3_HEX_LEN + 6];
  tag_name (reference, name);
  if (unlinkat (dfd, name, 0) < 0)
    {
      if (errno == ENOENT)
        return 0;
      return kp_store_fail_errno (err, errno, "cannot remove the tag of %s", reference);
    }
  return kp_store_fsync_dir (dfd, "images/tags", err);
}

static int
compare_tags (const void *a, const void *b)
{
  json_t *const *x = a, *const *y = b;
  return strcmp (json_string_value (json_object_get (*x, "reference")),
                 json_string_value (json_object_get (*y, "reference")));
}

/* Call fn for each tag file's name and document, in directory order. An unreadable tag
 * stops the walk with its error when on_bad is NULL, else goes to on_bad. Names that are not
 * tag names go to on_stray (when not NULL). */
typedef struct tag_walk
{
  int (*fn) (const char *name, json_t *doc, void *data, kp_error **err);
  void (*on_bad) (const char *name, const kp_error *why, void *data);
  void (*on_stray) (const char *name, void *data);
  void *data;
} tag_walk;

static int
walk_tags (kp_store *store, const tag_walk *w, kp_error **err)
{
  bool absent;
  kp_cleanup_close int dfd = tags_dir (store, false, &absent, err);
  if (dfd < 0)
    return absent ? 0 : -1;
  kp_cleanup_dir DIR *d = kp_dir_open_at (dfd, NULL);
  if (d == NULL)
    return kp_store_fail_errno (err, errno, "cannot list '%s/images/tags'", store->path);
  struct dirent *de;
  while ((de = readdir (d)) != NULL)
    {
      if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
        continue;
      if (!is_tag_name (de->d_name))
        {
          if (w->on_stray)
            w->on_stray (de->d_name, w->data);
          continue;
        }
      kp_cleanup_error kp_error *e = NULL;
      kp_cleanup_json json_t *doc = read_tag (dfd, de->d_name, &e);
      if (doc == NULL)
        {
          if (e == NULL)
            continue; /* removed meanwhile */
          if (w->on_bad == NULL)
            {
              if (err)
                *err = kp_steal_pointer (&e);
              return -1;
            }
          w->on_bad (de->d_name, e, w->data);
          continue;
        }
      if (w->fn (de->d_name, doc, w->data, err) < 0)
        return -1;
    }
  return 0;
}

typedef struct tag_list
{
  json_t **items;
  size_t n;
} tag_list;

static int
collect_tag (const char *name, json_t *doc, void *data, kp_error **err)
{
  tag_list *l = data;
  l->items = xreallocarray (l->items, l->n + 1, sizeof *l->items);
  l->items[l->n++] = json_pack ("{s:O,s:O,s:O}", "reference", json_object_get (doc, "reference"),
                                "digest", json_object_get (doc, "digest"), "resolved",
                                json_object_get (doc, "resolved"));
  return 0;
}

json_t *
kp_store_image_tags (kp_store *store, kp_error **err)
{
  tag_list l = { NULL, 0 };
  tag_walk w = { .fn = collect_tag, .data = &l };
  int r = walk_tags (store, &w, err);
  json_t *out = r < 0 ? NULL : json_array ();
  if (l.n > 0 && out)
    qsort (l.items, l.n, sizeof *l.items, compare_tags);
  for (size_t i = 0; i < l.n; i++)
    {
      if (out)
        json_array_append_new (out, l.items[i]);
      else
        json_decref (l.items[i]);
    }
  free (l.items);
  return out;
}

typedef struct untag
{
  kp_store *store;
  const char *digest;
  int dfd;
  bool removed;
} untag;

static int
remove_tag_of (const char *name, json_t *doc, void *data, kp_error **err)
{
  untag *u = data;
  if (strcmp (json_string_value (json_object_get (doc, "digest")), u->digest) != 0)
    return 0;
  if (unlinkat (u->dfd, name, 0) < 0 && errno != ENOENT)
    return kp_store_fail_errno (err, errno, "cannot remove the tag of %s",
                                json_string_value (json_object_get (doc, "reference")));
  u->removed = true;
  return 0;
}

static void
ignore_bad_tag (const char *name, const kp_error *why, void *data)
{
  /* Not this command's business: verify-store reports it, and a tag is only a cache. */
}

int
kp_store_image_remove (kp_store *store, const char *digest, kp_error **err)
{
  if (kp_store_require_writable (store, "remove an image", err) < 0)
    return -1;
  if (!valid_digest (digest))
    return invalid_digest (err, digest);
  /* Tags first: a tag left behind without its record is only a cache miss. */
  bool absent;
  kp_cleanup_close int tfd = tags_dir (store, false, &absent, err);
  if (tfd < 0 && !absent)
    return -1;
  if (tfd >= 0)
    {
      untag u = { store, digest, tfd, false };
      tag_walk w = { .fn = remove_tag_of, .on_bad = ignore_bad_tag, .data = &u };
      if (walk_tags (store, &w, err) < 0)
        return -1;
      if (u.removed && kp_store_fsync_dir (tfd, "images/tags", err) < 0)
        return -1;
    }
  kp_cleanup_close int dfd = images_dir (store, err);
  if (dfd < 0)
    return -1;
  kp_cleanup_free char *name = record_name (digest);
  if (unlinkat (dfd, name, 0) < 0)
    {
      if (errno == ENOENT)
        return 0;
      return kp_store_fail_errno (err, errno, "cannot remove the record of image %s", digest);
    }
  return kp_store_fsync_dir (dfd, "images", err);
}

/* ---- for gc and verify (store-private.h) ---- */

int
kp_store_image_mark (kp_store *store, void (*keep_layer) (const char *, void *),
                     void (*keep_object) (const char *, void *), void *user_data,
                     uint64_t *count, kp_error **err)
{
  kp_cleanup_strv char **digests = kp_store_image_list (store, err);
  if (digests == NULL)
    return -1;
  for (char **d = digests; *d; d++)
    {
      kp_cleanup_image_record kp_image_record *rec = kp_store_image_read (store, *d, err);
      if (rec == NULL)
        return -1;
      if (count)
        (*count)++;
      keep_layer (rec->tree_digest, user_data);
      for (char **o = rec->objects; o && *o; o++)
        keep_object (*o, user_data);
    }
  return 0;
}

typedef struct image_check
{
  kp_store *store;
  kp_store_verify_report *report;
  char **digests;
} image_check;

static int
check_tag (const char *name, json_t *doc, void *data, kp_error **err)
{
  image_check *c = data;
  const char *digest = json_string_value (json_object_get (doc, "digest"));
  if (!kp_strv_contains (c->digests, digest))
    kp_store_verify_problem (c->report, "image-tag",
                             json_string_value (json_object_get (doc, "reference")),
                             "the tag names image %s, which is not in the store", digest);
  return 0;
}

static void
report_bad_tag (const char *name, const kp_error *why, void *data)
{
  image_check *c = data;
  kp_store_verify_problem (c->report, "image-tag", name, "%s", why->message);
}

static void
report_stray_tag (const char *name, void *data)
{
  image_check *c = data;
  kp_store_verify_problem (c->report, "image-tag", name, "unexpected entry in images/tags/");
}

void
kp_store_image_verify (kp_store *store, kp_store_verify_report *report)
{
  kp_cleanup_error kp_error *e = NULL;
  kp_cleanup_close int dfd = images_dir (store, &e);
  kp_cleanup_dir DIR *d = dfd >= 0 ? kp_dir_open_at (dfd, NULL) : NULL;
  if (d == NULL)
    {
      kp_store_verify_problem (report, "image", "images", "%s",
                               e ? e->message : "cannot list images/");
      return;
    }
  kp_cleanup_strv char **digests = xcalloc (1, sizeof (char *));
  size_t n = 0;
  struct dirent *de;
  while ((de = readdir (d)) != NULL)
    {
      if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
        continue;
      struct stat st;
      if (strcmp (de->d_name, "tags") == 0
          && fstatat (dfd, "tags", &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR (st.st_mode))
        continue;
      kp_cleanup_free char *digest = digest_of_name (de->d_name);
      if (digest == NULL)
        {
          kp_store_verify_problem (report, "image", de->d_name, "unexpected entry in images/");
          continue;
        }
      kp_cleanup_error kp_error *bad = NULL;
      kp_cleanup_image_record kp_image_record *rec = kp_store_image_read (store, digest, &bad);
      /* A corrupt record still counts as present for its tags: the record is the problem,
         not them. */
      digests = xreallocarray (digests, n + 2, sizeof (char *));
      digests[n++] = xstrdup (digest);
      digests[n] = NULL;
      if (rec == NULL)
        {
          kp_store_verify_problem (report, "image", digest, "%s", bad->message);
          continue;
        }
      if (kp_store_layer_exists (store, rec->tree_digest, NULL) != 1)
        kp_store_verify_problem (report, "image", digest, "its layer %s is missing",
                                 rec->tree_digest);
      for (char **o = rec->objects; o && *o; o++)
        if (kp_store_has (store, *o, NULL) != 1)
          kp_store_verify_problem (report, "image", digest, "its object %s is missing", *o);
    }
  image_check c = { store, report, digests };
  tag_walk w = { .fn = check_tag, .on_bad = report_bad_tag, .on_stray = report_stray_tag,
                 .data = &c };
  kp_cleanup_error kp_error *te = NULL;
  if (walk_tags (store, &w, &te) < 0)
    kp_store_verify_problem (report, "image-tag", "images/tags", "%s", te->message);
}
