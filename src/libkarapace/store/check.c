/* check.c — garbage collection and verification of a whole store.
 *
 * gc marks everything an environment record reaches (its layers, their parents and tar
 * objects, its lock and other objects) — whatever the environment's state: running,
 * frozen and archived environments keep all they reference — and everything an image
 * record names (its layer and objects), then deletes the rest. Each
 * deletion is one atomic step (unlink, or rename of a layer into tmp/), and nothing live is
 * deleted, so stopping between two deletions leaves a consistent store. Records are read
 * before anything is deleted: one unreadable record stops gc, since what it references
 * cannot be known.
 *
 * verify re-hashes every object through the same reader every get uses, checks every
 * record's checksum and references (image records and tags included), every layer's
 * record and tree digest, the journal, and reports leftovers. */
#include "store-private.h"

#include "base/fs.h"
#include "base/json.h"
#include "hash/treedigest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LAYER_MAX_SIZE (1024 * 1024)

/* ---- a set of ids: sorted strv ---- */

typedef struct id_set
{
  char **v;
  size_t n, cap;
  bool sorted;
} id_set;

static void
set_add (id_set *s, const char *id)
{
  if (s->n + 1 >= s->cap)
    {
      s->cap = s->cap ? s->cap * 2 : 64;
      s->v = xreallocarray (s->v, s->cap, sizeof (char *));
    }
  s->v[s->n++] = xstrdup (id);
  s->v[s->n] = NULL;
  s->sorted = false;
}

static int
compare_strings (const void *a, const void *b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

static bool
set_has (id_set *s, const char *id)
{
  if (s->n == 0)
    return false;
  if (!s->sorted)
    {
      qsort (s->v, s->n, sizeof (char *), compare_strings);
      s->sorted = true;
    }
  return bsearch (&id, s->v, s->n, sizeof (char *), compare_strings) != NULL;
}

static void
set_clear (id_set *s)
{
  for (size_t i = 0; i < s->n; i++)
    free (s->v[i]);
  free (s->v);
  memset (s, 0, sizeof *s);
}

/* ---- layer records ---- */

/* layers/<digest>/layer.json: {"tree_digest","kind","parent","tar","size","checksum"}. */
json_t *
kp_store_layer_record (kp_store *store, const char *digest, kp_error **err)
{
  kp_cleanup_free char *rel = xasprintf ("%s/layer.json", digest);
  kp_cleanup_close int fd = openat (store->layers_fd, rel, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    {
      kp_store_fail_errno (err, errno, "cannot open the record of layer %.12s", digest);
      return NULL;
    }
  size_t len;
  kp_cleanup_free char *text = kp_fd_read_all (fd, LAYER_MAX_SIZE, &len, err);
  if (text == NULL)
    {
      kp_store_wrap (err, NULL);
      return NULL;
    }
  json_t *doc = kp_store_json_load_checked (text, len, err);
  if (doc == NULL)
    {
      kp_error_prefix (err, "the record of layer %.12s is corrupt", digest);
      return NULL;
    }
  const char *td = json_string_value (json_object_get (doc, "tree_digest"));
  json_t *parent = json_object_get (doc, "parent");
  json_t *tar = json_object_get (doc, "tar");
  bool parent_ok = json_is_null (parent) || kp_store_is_object_id (json_string_value (parent));
  bool tar_ok = json_is_null (tar) || kp_store_is_object_id (json_string_value (tar));
  /* "tars": the archives of a flattened image, base first (absent for one archive). */
  json_t *tars = json_object_get (doc, "tars");
  bool tars_ok = tars == NULL || (json_is_array (tars) && json_array_size (tars) > 1);
  size_t i;
  json_t *t;
  json_array_foreach (tars, i, t)
    tars_ok = tars_ok && kp_store_is_object_id (json_string_value (t));
  if (!kp_str_equal0 (td, digest) || !parent_ok || !tar_ok || !tars_ok
      || json_integer_value (json_object_get (doc, "format")) != 1)
    {
      json_decref (doc);
      kp_store_fail (err, NULL, "the record of layer %.12s is malformed", digest);
      return NULL;
    }
  return doc;
}

/* Mark a layer, its tar object and its parents. */
static int
mark_layer (kp_store *store, const char *digest, id_set *layers, id_set *objects,
            kp_error **err)
{
  char current[KP_STORE_OBJECT_ID_LEN + 1];
  snprintf (current, sizeof current, "%s", digest);
  for (int depth = 0; depth < 4096; depth++)
    {
      if (set_has (layers, current))
        return 0;
      set_add (layers, current);
      struct stat st;
      if (fstatat (store->layers_fd, current, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return 0; /* missing: verify reports it; nothing to keep */
      kp_cleanup_json json_t *doc = kp_store_layer_record (store, current, err);
      if (doc == NULL)
        return -1;
      const char *tar = json_string_value (json_object_get (doc, "tar"));
      if (tar)
        set_add (objects, tar);
      size_t i;
      json_t *t;
      json_array_foreach (json_object_get (doc, "tars"), i, t)
        set_add (objects, json_string_value (t));
      const char *parent = json_string_value (json_object_get (doc, "parent"));
      if (parent == NULL)
        return 0;
      snprintf (current, sizeof current, "%s", parent);
    }
  return kp_store_fail (err, NULL, "layer %.12s has a parent chain that does not end", digest);
}

typedef struct image_marks
{
  kp_store *store;
  id_set *layers, *objects;
  kp_error *err;
} image_marks;

static void
keep_image_layer (const char *digest, void *data)
{
  image_marks *m = data;
  if (m->err == NULL)
    mark_layer (m->store, digest, m->layers, m->objects, &m->err);
}

static void
keep_image_object (const char *id, void *data)
{
  image_marks *m = data;
  set_add (m->objects, id);
}

static void
keep_cached_object (const char *id, void *data)
{
  set_add (data, id);
}

static int
mark (kp_store *store, id_set *layers, id_set *objects, uint64_t *envs, bool keep_cache,
      kp_error **err)
{
  if (keep_cache && kp_store_cache_mark (store, keep_cached_object, objects, err) < 0)
    return kp_error_prefix (err, "gc stopped before deleting anything");
  /* Image records keep their layer and blobs: a pulled image stays cached until it is
     removed with 'karapace images rm' or 'prune'. */
  image_marks im = { store, layers, objects, NULL };
  if (kp_store_image_mark (store, keep_image_layer, keep_image_object, &im, NULL, err) < 0)
    return kp_error_prefix (err, "gc stopped before deleting anything");
  if (im.err)
    {
      if (err)
        *err = im.err;
      else
        kp_error_free (im.err);
      return -1;
    }
  kp_cleanup_strv char **ids = kp_store_env_list (store, err);
  if (ids == NULL)
    return -1;
  for (char **id = ids; *id; id++)
    {
      kp_cleanup_env_record kp_env_record *rec = kp_store_env_read (store, *id, err);
      if (rec == NULL)
        return -1;
      (*envs)++;
      for (char **o = rec->objects; o && *o; o++)
        set_add (objects, *o);
      if (rec->lock)
        set_add (objects, rec->lock);
      for (char **l = rec->layers; l && *l; l++)
        if (mark_layer (store, *l, layers, objects, err) < 0)
          return -1;
    }
  return 0;
}

/* ---- gc ---- */

void
kp_store_gc_report_clear (kp_store_gc_report *r)
{
  json_decref (r->freed);
  memset (r, 0, sizeof *r);
}

typedef struct sweep_ctx
{
  kp_store *store;
  const kp_store_gc_options *opts;
  kp_store_gc_report *report;
  id_set *live;
} sweep_ctx;

static bool
cancelled (const kp_store_gc_options *opts)
{
  return opts->cancel && *opts->cancel;
}

static int
sweep_object (const char *id, void *user_data, kp_error **err)
{
  sweep_ctx *c = user_data;
  if (set_has (c->live, id))
    {
      c->report->kept_objects++;
      return 0;
    }
  if (cancelled (c->opts))
    {
      c->report->interrupted = true;
      return 1; /* stop the walk without an error */
    }
  char rel[KP_STORE_OBJECT_ID_LEN + 2];
  kp_store_object_relpath (id, rel);
  struct stat st;
  uint64_t size = fstatat (c->store->objects_fd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0
                      ? (uint64_t) st.st_size
                      : 0;
  if (!c->opts->dry_run && kp_store_remove_object (c->store, id, err) < 0)
    return -1;
  c->report->freed_objects++;
  c->report->freed_object_bytes += size;
  json_array_append_new (c->report->freed,
                         json_pack ("{s:s,s:s,s:I}", "kind", "object", "id", id, "bytes",
                                    (json_int_t) size));
  return 0;
}

static char **
list_layer_dirs (kp_store *store, kp_error **err)
{
  kp_cleanup_dir DIR *d = kp_dir_open_at (store->layers_fd, NULL);
  if (d == NULL)
    {
      kp_store_fail_errno (err, errno, "cannot list '%s/layers'", store->path);
      return NULL;
    }
  id_set s = { 0 };
  struct dirent *de;
  while ((de = readdir (d)) != NULL)
    if (strcmp (de->d_name, ".") && strcmp (de->d_name, ".."))
      set_add (&s, de->d_name);
  if (s.v == NULL)
    return xcalloc (1, sizeof (char *));
  qsort (s.v, s.n, sizeof (char *), compare_strings);
  return s.v;
}

int
kp_store_gc (kp_store *store, const kp_store_gc_options *opts, kp_store_gc_report *report,
             kp_error **err)
{
  kp_store_gc_options defaults = { 0 };
  if (opts == NULL)
    opts = &defaults;
  memset (report, 0, sizeof *report);
  report->freed = json_array ();
  report->removed_tmp = store->recovery.tmp_removed;
  if (kp_store_require_writable (store, "gc", err) < 0)
    return -1;
  id_set live_layers = { 0 }, live_objects = { 0 };
  kp_cleanup_strv char **dirs = NULL;
  int r = mark (store, &live_layers, &live_objects, &report->live_envs, !opts->drop_cache, err);
  if (r < 0)
    {
      kp_error_prefix (err, "gc: nothing was deleted");
      goto out;
    }
  /* Layers before objects, and a layer before its parent: whatever references goes
     before what it references, so stopping at any point leaves no dangling reference. */
  dirs = list_layer_dirs (store, err);
  if (dirs == NULL)
    {
      r = -1;
      goto out;
    }
  for (bool progress = true; progress && !report->interrupted;)
    {
      progress = false;
      id_set parents = { 0 };
      for (char **l = dirs; *l; l++)
        {
          if (!kp_store_is_object_id (*l) || set_has (&live_layers, *l))
            continue;
          kp_cleanup_error kp_error *ignored = NULL;
          kp_cleanup_json json_t *doc = kp_store_layer_record (store, *l, &ignored);
          const char *parent = doc ? json_string_value (json_object_get (doc, "parent")) : NULL;
          if (parent)
            set_add (&parents, parent);
        }
      for (char **l = dirs; *l; l++)
        {
          if (!kp_store_is_object_id (*l))
            continue; /* not ours to judge (or already freed): verify-store reports it */
          if (set_has (&live_layers, *l))
            continue;
          if (set_has (&parents, *l))
            continue; /* a child goes first */
          if (cancelled (opts))
            {
              report->interrupted = true;
              break;
            }
          uint64_t size = kp_store_du_any (store->layers_fd, *l);
          if (!opts->dry_run && (r = kp_store_remove_path (store, store->layers_fd, *l, err)) < 0)
            {
              set_clear (&parents);
              kp_error_prefix (err, "gc: remove layer %.12s", *l);
              goto out;
            }
          report->freed_layers++;
          report->freed_layer_bytes += size;
          json_array_append_new (report->freed, json_pack ("{s:s,s:s,s:I}", "kind", "layer",
                                                           "id", *l, "bytes", (json_int_t) size));
          (*l)[0] = '-'; /* done: no longer a digest */
          progress = true;
        }
      set_clear (&parents);
      if (opts->dry_run)
        break; /* nothing was deleted, so every dead parent would stay: count them once */
    }
  if (opts->dry_run)
    for (char **l = dirs; *l; l++)
      if (kp_store_is_object_id (*l) && !set_has (&live_layers, *l))
        {
          uint64_t size = kp_store_du_any (store->layers_fd, *l);
          report->freed_layers++;
          report->freed_layer_bytes += size;
          json_array_append_new (report->freed, json_pack ("{s:s,s:s,s:I}", "kind", "layer",
                                                           "id", *l, "bytes", (json_int_t) size));
        }
  for (char **l = dirs; *l; l++)
    if (set_has (&live_layers, *l))
      report->kept_layers++;
  if (report->interrupted)
    goto out;
  sweep_ctx c = { store, opts, report, &live_objects };
  r = kp_store_foreach_object (store, sweep_object, &c, err);
  if (r < 0)
    goto out;
  /* Then the cache records naming what went (dry run: nothing went). */
  if (!opts->dry_run && !report->interrupted
      && (r = kp_store_cache_sweep (store, false, NULL, err)) < 0)
    goto out;
  r = 0;
out:
  set_clear (&live_layers);
  set_clear (&live_objects);
  return r < 0 ? -1 : 0;
}

/* ---- verify ---- */

void
kp_store_verify_report_clear (kp_store_verify_report *r)
{
  json_decref (r->problem_list);
  memset (r, 0, sizeof *r);
}

void
kp_store_verify_problem (kp_store_verify_report *r, const char *kind, const char *id,
                         const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  kp_cleanup_free char *msg = xvasprintf (fmt, ap);
  va_end (ap);
  if (r->problem_list == NULL)
    r->problem_list = json_array ();
  json_array_append_new (r->problem_list,
                         json_pack ("{s:s,s:s,s:s}", "kind", kind, "id", id, "message", msg));
  r->problems++;
}

static int
verify_one_object (const char *id, void *user_data, kp_error **err)
{
  kp_store_verify_report *r = ((void **) user_data)[0];
  kp_store *store = ((void **) user_data)[1];
  uint64_t size = 0;
  kp_cleanup_error kp_error *bad = NULL;
  r->objects++;
  if (kp_store_verify_object (store, id, &size, &bad) < 0)
    kp_store_verify_problem (r, "object", id, "%s", bad->message);
  r->object_bytes += size;
  return 0;
}

/* Files in the object fan-out that are not objects (names the walk skips). */
static void
check_object_strays (kp_store *store, kp_store_verify_report *r)
{
  kp_cleanup_dir DIR *d = kp_dir_open_at (store->objects_fd, NULL);
  if (d == NULL)
    return;
  struct dirent *de;
  while ((de = readdir (d)) != NULL)
    {
      if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
        continue;
      bool fan = strlen (de->d_name) == 2 && strspn (de->d_name, "0123456789abcdef") == 2;
      if (!fan)
        {
          kp_store_verify_problem (r, "object", de->d_name, "unexpected entry in objects/");
          continue;
        }
      kp_cleanup_dir DIR *sub = kp_dir_open_at (store->objects_fd, de->d_name);
      struct dirent *e;
      while (sub && (e = readdir (sub)) != NULL)
        {
          if (strcmp (e->d_name, ".") == 0 || strcmp (e->d_name, "..") == 0)
            continue;
          if (strlen (e->d_name) != KP_STORE_OBJECT_ID_LEN - 2
              || strspn (e->d_name, "0123456789abcdef") != KP_STORE_OBJECT_ID_LEN - 2)
            {
              kp_cleanup_free char *n = xasprintf ("%s/%s", de->d_name, e->d_name);
              kp_store_verify_problem (r, "object", n, "unexpected entry in objects/");
            }
        }
    }
}

static void
check_reference (kp_store *store, kp_store_verify_report *r, const char *env_id,
                 const char *what, const char *id)
{
  kp_cleanup_error kp_error *bad = NULL;
  if (kp_store_has (store, id, &bad) != 1)
    kp_store_verify_problem (r, "env", env_id, "references %s %s, which is missing", what, id);
}

static void
check_envs (kp_store *store, kp_store_verify_report *r)
{
  kp_cleanup_dir DIR *d = kp_dir_open_at (store->envs_fd, NULL);
  if (d == NULL)
    {
      kp_store_verify_problem (r, "env", "envs", "cannot list envs/");
      return;
    }
  struct dirent *de;
  while ((de = readdir (d)) != NULL)
    {
      if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
        continue;
      if (!kp_store_is_object_id (de->d_name))
        {
          kp_store_verify_problem (r, "env", de->d_name, "unexpected entry in envs/");
          continue;
        }
      r->envs++;
      kp_cleanup_error kp_error *bad = NULL;
      kp_cleanup_env_record kp_env_record *rec = kp_store_env_read (store, de->d_name, &bad);
      if (rec == NULL)
        {
          kp_store_verify_problem (r, "env", de->d_name, "%s", bad->message);
          continue;
        }
      for (char **o = rec->objects; o && *o; o++)
        check_reference (store, r, rec->env_id, "object", *o);
      if (rec->lock)
        check_reference (store, r, rec->env_id, "lock object", rec->lock);
      for (char **l = rec->layers; l && *l; l++)
        {
          struct stat st;
          if (fstatat (store->layers_fd, *l, &st, AT_SYMLINK_NOFOLLOW) < 0)
            kp_store_verify_problem (r, "env", rec->env_id,
                                     "references layer %s, which is missing", *l);
        }
    }
}

static void
check_layers (kp_store *store, kp_store_verify_report *r)
{
  kp_cleanup_error kp_error *e = NULL;
  kp_cleanup_strv char **dirs = list_layer_dirs (store, &e);
  if (dirs == NULL)
    {
      kp_store_verify_problem (r, "layer", "layers", "%s", e->message);
      return;
    }
  for (char **l = dirs; *l; l++)
    {
      if (!kp_store_is_object_id (*l))
        {
          kp_store_verify_problem (r, "layer", *l, "unexpected entry in layers/");
          continue;
        }
      r->layers++;
      kp_cleanup_error kp_error *bad = NULL;
      kp_cleanup_json json_t *doc = kp_store_layer_record (store, *l, &bad);
      if (doc == NULL)
        {
          kp_store_verify_problem (r, "layer", *l, "%s", bad->message);
          continue;
        }
      const char *tar = json_string_value (json_object_get (doc, "tar"));
      if (tar && kp_store_has (store, tar, NULL) != 1)
        kp_store_verify_problem (r, "layer", *l, "its tar object %s is missing", tar);
      size_t i;
      json_t *t;
      json_array_foreach (json_object_get (doc, "tars"), i, t)
        {
          const char *id = json_string_value (t);
          if (!kp_str_equal0 (id, tar) && kp_store_has (store, id, NULL) != 1)
            kp_store_verify_problem (r, "layer", *l, "its tar object %s is missing", id);
        }
      const char *parent = json_string_value (json_object_get (doc, "parent"));
      struct stat st;
      if (parent && fstatat (store->layers_fd, parent, &st, AT_SYMLINK_NOFOLLOW) < 0)
        kp_store_verify_problem (r, "layer", *l, "its parent layer %s is missing", parent);
      /* The tree digest, recomputed in the store's user namespace (the tree's files belong
         to subordinate ids). */
      kp_cleanup_free char *tree = xasprintf ("%s/tree", *l);
      char hex[KP_BLAKE3_HEX_LEN + 1];
      if (kp_store_tree_digest (store, store->layers_fd, tree, hex, &bad) < 0)
        {
          kp_store_verify_problem (r, "layer", *l, "cannot digest its tree: %s", bad->message);
          continue;
        }
      if (strcmp (hex, *l) != 0)
        kp_store_verify_problem (r, "layer", *l, "its tree changed: it now digests to %s", hex);
    }
}

static void
check_tmp (kp_store *store, kp_store_verify_report *r)
{
  kp_cleanup_dir DIR *d = kp_dir_open_at (store->tmp_fd, NULL);
  if (d == NULL)
    return;
  struct dirent *de;
  while ((de = readdir (d)) != NULL)
    if (strcmp (de->d_name, ".") && strcmp (de->d_name, ".."))
      kp_store_verify_problem (r, "tmp", de->d_name,
                               "leftover temporary file (removed by the next command that "
                               "writes to the store)");
}

int
kp_store_verify (kp_store *store, kp_store_verify_report *report, kp_error **err)
{
  memset (report, 0, sizeof *report);
  report->problem_list = json_array ();
  void *ctx[2] = { report, store };
  if (kp_store_foreach_object (store, verify_one_object, ctx, err) < 0)
    return -1;
  check_object_strays (store, report);
  check_envs (store, report);
  kp_store_image_verify (store, report);
  kp_store_cache_verify (store, report);
  check_layers (store, report);
  if (kp_store_journal_check (store, report, err) < 0)
    return -1;
  check_tmp (store, report);
  return 0;
}
