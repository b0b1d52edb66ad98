/* layer.c — layers: layers/<tree_digest>/{tree/,layer.json}, made from tar objects.
 *
 * Layer trees hold files owned by subordinate ids, which the user cannot touch from the
 * host (not even image root's: that is the first subordinate id, not the user), so
 * unpacking, digesting, measuring and deleting them run inside the store's user namespace
 * (kp_userns_run). That runs in a child process: results come back through a small
 * shared mapping. A layer is built complete in tmp/ (tree, record), synced, then renamed
 * into place in one step, with a journal entry that removes it again should the process
 * die before the layer is durable. A layer that already exists is kept: same digest, same
 * tree. */
#include "store-private.h"

#include "archive/archive.h"
#include "base/fs.h"
#include "base/json.h"
#include "hash/treedigest.h"
#include "sandbox/userns.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *const kind_names[] = { "base", "packages", "snapshot" };

const char *
kp_layer_kind_name (kp_layer_kind kind)
{
  return (size_t) kind < KP_N_ELEMENTS (kind_names) ? kind_names[kind] : "unknown";
}

/* ---- work in the user namespace ---- */

typedef struct shared_result
{
  char digest[KP_BLAKE3_HEX_LEN + 1];
  uint64_t bytes;
} shared_result;

static shared_result *
shared_new (void)
{
  void *p = mmap (NULL, sizeof (shared_result), PROT_READ | PROT_WRITE,
                  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED)
    kp_oom ();
  memset (p, 0, sizeof (shared_result));
  return p;
}

static void
shared_free (shared_result *r)
{
  munmap (r, sizeof *r);
}

typedef struct unpack_call
{
  const int *tar_fds;
  size_t n;
  bool flatten; /* apply OCI whiteouts (an image's layers) instead of keeping them */
  int dirfd;  /* the directory holding "tree" */
  shared_result *out;
} unpack_call;

static int
unpack_in_namespace (void *data, kp_error **err)
{
  unpack_call *c = data;
  kp_cleanup_close int tree = openat (c->dirfd, "tree", O_RDONLY | O_DIRECTORY | O_NOFOLLOW
                                      | O_CLOEXEC);
  if (tree < 0)
    return kp_error_errno (err, errno, "open the new tree");
  /* We made the directory as ourselves, which inside is our own id, not root: the root of
   * an image is root's unless the tar says otherwise. */
  if (fchown (tree, 0, 0) < 0)
    return kp_error_errno (err, errno, "give the new tree to root");
  /* Set-id bits stay: they are owned by ids of the store's namespace, and images need them
     (su, passwd). */
  kp_unpack_options opts = { .preserve_owner = true, .keep_setid = true,
                             .oci_whiteouts = !c->flatten,
                             .apply_whiteouts = c->flatten };
  uint64_t bytes = 0;
  for (size_t i = 0; i < c->n; i++)
    {
      kp_unpack_stats stats = { 0 };
      if (kp_archive_unpack (c->tar_fds[i], tree, &opts, &stats, err) < 0)
        return c->n > 1 ? kp_error_prefix (err, "layer %zu of %zu", i + 1, c->n) : -1;
      bytes += stats.bytes;
    }
  /* Flattened, the archives' bytes count what later layers deleted: measure the tree. */
  if (c->flatten && c->n > 1)
    bytes = kp_store_du_at (c->dirfd, "tree");
  uint8_t d[KP_BLAKE3_OUT_LEN];
  if (kp_tree_digest (c->dirfd, "tree", d, NULL, NULL, err) < 0)
    return -1;
  /* The tree must be on disk before it gets a name anyone relies on. */
  if (syncfs (tree) < 0)
    return kp_error_errno (err, errno, "sync the new tree");
  kp_blake3_to_hex (d, c->out->digest);
  c->out->bytes = bytes;
  return 0;
}

typedef struct digest_call
{
  int dirfd;
  const char *name;
  shared_result *out;
} digest_call;

static int
digest_in_namespace (void *data, kp_error **err)
{
  digest_call *c = data;
  uint8_t d[KP_BLAKE3_OUT_LEN];
  if (kp_tree_digest (c->dirfd, c->name, d, NULL, NULL, err) < 0)
    return -1;
  kp_blake3_to_hex (d, c->out->digest);
  return 0;
}

int
kp_store_tree_digest (kp_store *store, int dirfd, const char *name,
                      char out[KP_BLAKE3_HEX_LEN + 1], kp_error **err)
{
  shared_result *res = shared_new ();
  digest_call c = { dirfd, name, res };
  int r = kp_userns_run (digest_in_namespace, &c, err);
  if (r == 0)
    memcpy (out, res->digest, KP_BLAKE3_HEX_LEN + 1);
  shared_free (res);
  return r;
}

typedef struct du_call
{
  int dirfd;
  const char *name;
  shared_result *out;
} du_call;

static int
du_in_namespace (void *data, kp_error **err)
{
  du_call *c = data;
  c->out->bytes = kp_store_du_at (c->dirfd, c->name);
  return 0;
}

uint64_t
kp_store_du_any (int dirfd, const char *name)
{
  bool complete = true;
  uint64_t bytes = kp_store_du_at_checked (dirfd, name, &complete);
  if (complete)
    return bytes;
  /* Directories of other owners (an image's /root is 0700): only the namespace sees all. */
  shared_result *res = shared_new ();
  du_call c = { dirfd, name, res };
  if (kp_userns_run (du_in_namespace, &c, NULL) == 0 && res->bytes > bytes)
    bytes = res->bytes;
  shared_free (res);
  return bytes;
}

typedef struct rm_call
{
  int dirfd;
  const char *name;
} rm_call;

static int
rm_in_namespace (void *data, kp_error **err)
{
  rm_call *c = data;
  return kp_store_rm_rf_at (c->dirfd, c->name, err);
}

int
kp_store_rm_rf_any (int dirfd, const char *name, kp_error **err)
{
  kp_error *first = NULL;
  if (kp_store_rm_rf_at (dirfd, name, &first) == 0)
    return 0;
  int e = first->errno_value;
  kp_error_free (first);
  if (e != EACCES && e != EPERM)
    return kp_store_rm_rf_at (dirfd, name, err);
  /* Files of subordinate ids: only the user namespace can remove them. */
  rm_call c = { dirfd, name };
  if (kp_userns_run (rm_in_namespace, &c, err) < 0)
    return kp_store_wrap (err, "run 'karapace unshare rm -rf PATH' to remove it by hand");
  return 0;
}

/* ---- records ---- */

static int
write_record (kp_store *store, int dirfd, const kp_layer_info *info, const char *const *tars,
              kp_error **err)
{
  kp_cleanup_json json_t *doc = json_pack ("{s:i,s:s,s:s,s:I,s:I}", "format", 1, "tree_digest",
                                           info->tree_digest, "kind",
                                           kp_layer_kind_name (info->kind), "size",
                                           (json_int_t) info->size, "created",
                                           (json_int_t) time (NULL));
  json_object_set_new (doc, "parent", info->parent[0] ? json_string (info->parent)
                                                      : json_null ());
  json_object_set_new (doc, "tar", info->tar[0] ? json_string (info->tar) : json_null ());
  if (tars && tars[0] && tars[1])
    json_object_set_new (doc, "tars", kp_json_strv ((char *const *) tars));
  kp_cleanup_free char *text = kp_store_json_dump_checked (doc);
  return kp_store_write_file (store, dirfd, "layer.json", text, strlen (text), err);
}

int
kp_store_layer_read (kp_store *store, const char *digest, kp_layer_info *info, kp_error **err)
{
  if (!kp_store_is_object_id (digest))
    return kp_store_fail (err, NULL, "'%s' is not a layer digest", digest);
  kp_cleanup_json json_t *doc = kp_store_layer_record (store, digest, err);
  if (doc == NULL)
    return -1;
  memset (info, 0, sizeof *info);
  memcpy (info->tree_digest, digest, sizeof info->tree_digest);
  const char *kind = json_string_value (json_object_get (doc, "kind"));
  info->kind = KP_LAYER_BASE;
  for (size_t i = 0; kind && i < KP_N_ELEMENTS (kind_names); i++)
    if (strcmp (kind, kind_names[i]) == 0)
      info->kind = (kp_layer_kind) i;
  const char *parent = json_string_value (json_object_get (doc, "parent"));
  const char *tar = json_string_value (json_object_get (doc, "tar"));
  snprintf (info->parent, sizeof info->parent, "%s", parent ? parent : "");
  snprintf (info->tar, sizeof info->tar, "%s", tar ? tar : "");
  info->size = (uint64_t) json_integer_value (json_object_get (doc, "size"));
  return 0;
}

/* ---- creating a layer ---- */

/* Give the finished layer in tmp/<tmpname> (a "tree" and nothing else yet) its record and
 * its name; an existing layer with the same digest wins. Removes tmp/<tmpname> on every
 * path but success. */
static int check_existing (kp_store *store, const char *tmpname, int dirfd,
                           const kp_layer_info *info, const char *const *tars, kp_error **err);

static int
adopt_layer (kp_store *store, const char *tmpname, int dirfd, const kp_layer_info *info,
             const char *const *tars, kp_error **err)
{
  struct stat st;
  if (fstatat (store->layers_fd, info->tree_digest, &st, AT_SYMLINK_NOFOLLOW) == 0)
    {
      /* Already there: the same digest names the same tree, unless it was changed on
         disk since, which a check looks for. */
      int r = store->check_layers ? check_existing (store, tmpname, dirfd, info, tars, err) : 0;
      /* The new tree, or after a repair the damaged one. */
      kp_store_rm_rf_any (store->tmp_fd, tmpname, NULL);
      return r < 0 ? -1 : 0;
    }
  if (write_record (store, dirfd, info, tars, err) < 0)
    {
      kp_store_rm_rf_any (store->tmp_fd, tmpname, NULL);
      return -1;
    }
  kp_cleanup_free char *undo = xasprintf ("layers/%s", info->tree_digest);
  kp_cleanup_store_txn kp_store_txn *txn = kp_store_txn_begin (store, "create layer", err);
  if (txn == NULL || kp_store_txn_undo_remove (txn, undo, err) < 0)
    {
      kp_store_rm_rf_any (store->tmp_fd, tmpname, NULL);
      return -1;
    }
  if (renameat (store->tmp_fd, tmpname, store->layers_fd, info->tree_digest) < 0)
    {
      int saved = errno;
      kp_store_rm_rf_any (store->tmp_fd, tmpname, NULL);
      return kp_store_fail_errno (err, saved, "cannot move layer %.12s into place",
                                  info->tree_digest);
    }
  if (kp_store_fsync_dir (store->layers_fd, "layers", err) < 0)
    return -1;
  return kp_store_txn_commit (kp_steal_pointer (&txn), err);
}

static int
layer_from_tars (kp_store *store, const char *const *tar_ids, size_t n, bool flatten,
                 kp_layer_kind kind, const char *parent, char digest[KP_BLAKE3_HEX_LEN + 1],
                 kp_error **err)
{
  if (kp_store_require_writable (store, "create a layer", err) < 0)
    return -1;
  if (n == 0)
    return kp_store_fail (err, NULL, "a layer needs at least one archive");
  if (parent)
    {
      struct stat st;
      if (!kp_store_is_object_id (parent)
          || fstatat (store->layers_fd, parent, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return kp_store_fail (err, NULL, "parent layer '%s' is not in the store", parent);
    }
  /* The tar is verified as a whole first; under the exclusive lock nobody else writes
     objects while we unpack it. */
  for (size_t i = 0; i < n; i++)
    if (kp_store_verify_object (store, tar_ids[i], NULL, err) < 0)
      return kp_error_prefix (err, "create a layer");

  kp_cleanup_free char *tmpname = NULL;
  if (kp_store_tmp_mkdir (store, &tmpname, err) < 0)
    return -1;
  kp_cleanup_close int dirfd = openat (store->tmp_fd, tmpname,
                                       O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dirfd < 0 || mkdirat (dirfd, "tree", 0755) < 0)
    return kp_store_fail_errno (err, errno, "cannot prepare a layer in '%s/tmp'", store->path);
  int *fds = xcalloc (n, sizeof *fds);
  for (size_t i = 0; i < n; i++)
    {
      char rel[KP_STORE_OBJECT_ID_LEN + 2];
      kp_store_object_relpath (tar_ids[i], rel);
      fds[i] = openat (store->objects_fd, rel, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
      if (fds[i] < 0)
        {
          int saved = errno;
          for (size_t j = 0; j < i; j++)
            close (fds[j]);
          free (fds);
          kp_store_rm_rf_any (store->tmp_fd, tmpname, NULL);
          return kp_store_fail_errno (err, saved, "cannot open object %s", tar_ids[i]);
        }
    }

  shared_result *res = shared_new ();
  unpack_call call = { fds, n, flatten, dirfd, res };
  int r = kp_userns_run (unpack_in_namespace, &call, err);
  for (size_t i = 0; i < n; i++)
    close (fds[i]);
  free (fds);
  kp_layer_info info = { .kind = kind, .size = res->bytes };
  memcpy (info.tree_digest, res->digest, sizeof info.tree_digest);
  shared_free (res);
  if (r < 0)
    {
      kp_store_rm_rf_any (store->tmp_fd, tmpname, NULL);
      if (n == 1)
        kp_error_prefix (err, "unpack object %.12s into a layer", tar_ids[0]);
      else
        kp_error_prefix (err, "unpack %zu objects into one layer", n);
      return kp_store_wrap (err, NULL);
    }
  snprintf (info.parent, sizeof info.parent, "%s", parent ? parent : "");
  snprintf (info.tar, sizeof info.tar, "%s", tar_ids[0]);
  memcpy (digest, info.tree_digest, KP_BLAKE3_HEX_LEN + 1);
  return adopt_layer (store, tmpname, dirfd, &info, tar_ids, err);
}

int
kp_store_layer_from_tar (kp_store *store, const char *tar_id, kp_layer_kind kind,
                         const char *parent, char digest[KP_BLAKE3_HEX_LEN + 1],
                         kp_error **err)
{
  const char *ids[2] = { tar_id, NULL };
  return layer_from_tars (store, ids, 1, false, kind, parent, digest, err);
}

int
kp_store_layer_from_tars (kp_store *store, const char *const *tar_ids, size_t n,
                          kp_layer_kind kind, const char *parent,
                          char digest[KP_BLAKE3_HEX_LEN + 1], kp_error **err)
{
  /* NULL-terminated copy: the record lists them. */
  const char **ids = xcalloc (n + 1, sizeof *ids);
  for (size_t i = 0; i < n; i++)
    ids[i] = tar_ids[i];
  int r = layer_from_tars (store, ids, n, true, kind, parent, digest, err);
  free (ids);
  return r;
}

int
kp_store_layer_exists (kp_store *store, const char *digest, kp_error **err)
{
  if (!kp_store_is_object_id (digest))
    return kp_store_fail (err, NULL, "'%s' is not a layer digest", digest);
  struct stat st;
  if (fstatat (store->layers_fd, digest, &st, AT_SYMLINK_NOFOLLOW) == 0)
    return S_ISDIR (st.st_mode) ? 1 : 0;
  if (errno == ENOENT)
    return 0;
  return kp_store_fail_errno (err, errno, "cannot look at layer %.12s", digest);
}

/* ---- building a layer in place ---- */

typedef struct finish_call
{
  int dirfd; /* the directory holding "tree" */
  shared_result *out;
} finish_call;

static int
finish_in_namespace (void *data, kp_error **err)
{
  finish_call *c = data;
  kp_cleanup_close int tree = openat (c->dirfd, "tree", O_RDONLY | O_DIRECTORY | O_NOFOLLOW
                                      | O_CLOEXEC);
  if (tree < 0)
    return kp_error_errno (err, errno, "open the new tree");
  uint8_t d[KP_BLAKE3_OUT_LEN];
  if (kp_tree_digest (c->dirfd, "tree", d, NULL, NULL, err) < 0)
    return -1;
  if (syncfs (tree) < 0)
    return kp_error_errno (err, errno, "sync the new tree");
  kp_blake3_to_hex (d, c->out->digest);
  c->out->bytes = kp_store_du_at (c->dirfd, "tree");
  return 0;
}

typedef struct prepare_call
{
  int dirfd;
} prepare_call;

static int
prepare_in_namespace (void *data, kp_error **err)
{
  prepare_call *c = data;
  /* Made as ourselves, which inside is our own id: a root filesystem is root's. */
  if (fchownat (c->dirfd, "tree", 0, 0, AT_SYMLINK_NOFOLLOW) < 0)
    return kp_error_errno (err, errno, "give the new tree to root");
  return 0;
}

int
kp_store_layer_build (kp_store *store, kp_layer_kind kind, kp_layer_build_fn fn, void *data,
                      char digest[KP_BLAKE3_HEX_LEN + 1], kp_error **err)
{
  if (kp_store_require_writable (store, "create a layer", err) < 0)
    return -1;
  kp_cleanup_free char *tmpname = NULL;
  if (kp_store_tmp_mkdir (store, &tmpname, err) < 0)
    return -1;
  kp_cleanup_close int dirfd = openat (store->tmp_fd, tmpname,
                                       O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dirfd < 0 || mkdirat (dirfd, "tree", 0755) < 0)
    return kp_store_fail_errno (err, errno, "cannot prepare a layer in '%s/tmp'", store->path);
  prepare_call pc = { dirfd };
  kp_cleanup_free char *tree = xasprintf ("%s/tmp/%s/tree", store->path, tmpname);
  if (kp_userns_run (prepare_in_namespace, &pc, err) < 0 || fn (tree, data, err) < 0)
    {
      kp_store_rm_rf_any (store->tmp_fd, tmpname, NULL);
      return -1;
    }
  shared_result *res = shared_new ();
  finish_call fc = { dirfd, res };
  int r = kp_userns_run (finish_in_namespace, &fc, err);
  kp_layer_info info = { .kind = kind, .size = res->bytes };
  memcpy (info.tree_digest, res->digest, sizeof info.tree_digest);
  shared_free (res);
  if (r < 0)
    {
      kp_store_rm_rf_any (store->tmp_fd, tmpname, NULL);
      kp_error_prefix (err, "digest the new layer");
      return kp_store_wrap (err, NULL);
    }
  memcpy (digest, info.tree_digest, KP_BLAKE3_HEX_LEN + 1);
  return adopt_layer (store, tmpname, dirfd, &info, NULL, err);
}

/* ---- comparing two layers ---- */

typedef struct records_call
{
  int dirfd;
  const char *name;
  int out_fd; /* a memfd the records go to */
} records_call;

static int
write_record_line (const char *record, size_t len, void *data, kp_error **err)
{
  int fd = *(int *) data;
  if (kp_write_all (fd, record, len) < 0)
    return kp_error_errno (err, errno, "write the tree's records");
  return 0;
}

static int
records_in_namespace (void *data, kp_error **err)
{
  records_call *c = data;
  uint8_t d[KP_BLAKE3_OUT_LEN];
  return kp_tree_digest (c->dirfd, c->name, d, write_record_line, &c->out_fd, err);
}

/* The records of the tree dirfd/name, one per line, in walk order. */
static char *
tree_records (int dirfd, const char *name, size_t *len, kp_error **err)
{
  kp_cleanup_close int fd = memfd_create ("records", MFD_CLOEXEC);
  if (fd < 0)
    {
      kp_error_errno (err, errno, "memfd_create");
      return NULL;
    }
  records_call c = { dirfd, name, fd };
  if (kp_userns_run (records_in_namespace, &c, err) < 0 || lseek (fd, 0, SEEK_SET) < 0)
    return NULL;
  return kp_fd_read_all (fd, (size_t) 1 << 31, len, err);
}

/* The records of a layer's tree. */
static char *
layer_records (kp_store *store, const char *digest, size_t *len, kp_error **err)
{
  kp_cleanup_close int fd = memfd_create ("records", MFD_CLOEXEC);
  if (fd < 0)
    {
      kp_error_errno (err, errno, "memfd_create");
      return NULL;
    }
  kp_cleanup_free char *name = xasprintf ("%s/tree", digest);
  records_call c = { store->layers_fd, name, fd };
  if (kp_userns_run (records_in_namespace, &c, err) < 0 || lseek (fd, 0, SEEK_SET) < 0)
    return NULL;
  return kp_fd_read_all (fd, (size_t) 1 << 31, len, err);
}

static const char *
record_path (const char *line, size_t len, size_t *plen)
{
  const char *sp = memrchr (line, ' ', len);
  const char *p = sp ? sp + 1 : line;
  *plen = (size_t) (line + len - p);
  return p;
}

typedef struct record_line
{
  const char *line, *path;
  size_t len, plen;
} record_line;

static int
compare_record_paths (const void *x, const void *y)
{
  const record_line *a = x, *b = y;
  size_t m = a->plen < b->plen ? a->plen : b->plen;
  int c = memcmp (a->path, b->path, m);
  return c ? c : (a->plen < b->plen ? -1 : a->plen > b->plen);
}

static record_line *
split_records (const char *text, size_t len, size_t *n)
{
  record_line *v = NULL;
  *n = 0;
  for (const char *p = text, *end = text + len; p < end;)
    {
      const char *nl = memchr (p, '\n', (size_t) (end - p));
      size_t l = nl ? (size_t) (nl - p) : (size_t) (end - p);
      v = xreallocarray (v, *n + 1, sizeof *v);
      v[*n].line = p;
      v[*n].len = l;
      v[*n].path = record_path (p, l, &v[*n].plen);
      (*n)++;
      p += l + 1;
    }
  if (*n)
    qsort (v, *n, sizeof *v, compare_record_paths);
  return v;
}

static char **
diff_records (const char *ra, size_t la, const char *rb, size_t lb, size_t max, size_t *total);

char **
kp_store_layer_diff (kp_store *store, const char *a, const char *b, size_t max, size_t *total,
                     kp_error **err)
{
  size_t la = 0, lb = 0;
  kp_cleanup_free char *ra = layer_records (store, a, &la, err);
  kp_cleanup_free char *rb = ra ? layer_records (store, b, &lb, err) : NULL;
  if (rb == NULL)
    return NULL;
  return diff_records (ra, la, rb, lb, max, total);
}

static char **
diff_records (const char *ra, size_t la, const char *rb, size_t lb, size_t max, size_t *total)
{
  size_t na = 0, nb = 0;
  kp_cleanup_free record_line *va = split_records (ra, la, &na);
  kp_cleanup_free record_line *vb = split_records (rb, lb, &nb);
  char **out = xcalloc (max + 1, sizeof (char *));
  size_t n = 0, count = 0, i = 0, j = 0;
  while (i < na || j < nb)
    {
      int cmp = i >= na ? 1 : j >= nb ? -1 : compare_record_paths (&va[i], &vb[j]);
      char *change = NULL;
      if (cmp < 0)
        {
          change = xasprintf ("- %.*s", (int) va[i].plen, va[i].path);
          i++;
        }
      else if (cmp > 0)
        {
          change = xasprintf ("+ %.*s", (int) vb[j].plen, vb[j].path);
          j++;
        }
      else
        {
          if (va[i].len != vb[j].len || memcmp (va[i].line, vb[j].line, va[i].len) != 0)
            change = xasprintf ("~ %.*s", (int) va[i].plen, va[i].path);
          i++;
          j++;
        }
      if (change)
        {
          count++;
          if (n < max)
            out[n++] = change;
          else
            free (change);
        }
    }
  if (total)
    *total = count;
  return out;
}

int
kp_store_layer_digest_now (kp_store *store, const char *digest, char out[KP_BLAKE3_HEX_LEN + 1],
                           kp_error **err)
{
  if (!kp_store_is_object_id (digest))
    return kp_store_fail (err, NULL, "'%s' is not a layer digest", digest);
  kp_cleanup_free char *tree = xasprintf ("%s/tree", digest);
  return kp_store_tree_digest (store, store->layers_fd, tree, out, err);
}

/* ---- checking a layer built again against the one of its name ---- */

void
kp_store_layer_check (kp_store *store, bool check, bool repair)
{
  store->check_layers = check;
  store->repair_layers = check && repair;
  kp_strv_free (store->damage.changes);
  memset (&store->damage, 0, sizeof store->damage);
}

const kp_layer_check_result *
kp_store_layer_check_result (const kp_store *store)
{
  return &store->damage;
}

/* The layer info->tree_digest exists, and tmp/tmpname holds a tree just built that
 * digests to that name. Returns 1 when the new tree took the damaged one's place (tmpname
 * then holds the damaged one), 0 when the existing layer is kept, -1 on error. */
static int
check_existing (kp_store *store, const char *tmpname, int dirfd, const kp_layer_info *info,
                const char *const *tars, kp_error **err)
{
  char now[KP_BLAKE3_HEX_LEN + 1];
  if (kp_store_layer_digest_now (store, info->tree_digest, now, err) < 0)
    return -1;
  if (strcmp (now, info->tree_digest) == 0)
    return 0;
  kp_layer_check_result *d = &store->damage;
  kp_strv_free (d->changes);
  memset (d, 0, sizeof *d);
  d->damaged = true;
  memcpy (d->layer, info->tree_digest, sizeof d->layer);
  memcpy (d->digest_now, now, sizeof d->digest_now);
  size_t la = 0, lb = 0;
  kp_cleanup_free char *damaged_tree = xasprintf ("%s/tree", info->tree_digest);
  kp_cleanup_free char *new_tree = xasprintf ("%s/tree", tmpname);
  kp_cleanup_free char *ra = tree_records (store->layers_fd, damaged_tree, &la, err);
  kp_cleanup_free char *rb = ra ? tree_records (store->tmp_fd, new_tree, &lb, err) : NULL;
  if (rb == NULL)
    return -1;
  d->changes = diff_records (ra, la, rb, lb, 50, &d->total);
  if (!store->repair_layers)
    return 0;
  /* The new tree with its record, exchanged with the damaged layer in one step: a crash
     leaves either the damaged layer in place or the new one, and the other in tmp/. */
  if (write_record (store, dirfd, info, tars, err) < 0)
    return -1;
  if (renameat2 (store->tmp_fd, tmpname, store->layers_fd, info->tree_digest,
                 RENAME_EXCHANGE)
      < 0)
    return kp_store_fail_errno (err, errno, "cannot put the rebuilt layer %.12s in place",
                                info->tree_digest);
  if (kp_store_fsync_dir (store->layers_fd, "layers", err) < 0
      || kp_store_fsync_dir (store->tmp_fd, "tmp", err) < 0)
    return -1;
  d->repaired = true;
  return 1;
}
