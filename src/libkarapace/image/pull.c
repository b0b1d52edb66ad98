/* pull.c — from a reference to a base layer: registries and OCI layouts here, the other
 * sources in source.c, the common ending (objects → layer → records) in both through
 * kp_pull_finish().
 *
 * Cache rules, so that a pull does no more network work than it must:
 *   - a digest-pinned reference whose record exists: no request at all;
 *   - a tag seen before: one manifest request (HEAD); unchanged → the cached layer;
 *   - a new manifest whose record exists under another tag: no blob download;
 *   - --offline: the tag record or an error, never the network. */
#include "image/pull-private.h"

#include "base/fs.h"
#include "base/json.h"
#include "hash/digest.h"
#include "image/registry.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void
kp_pull_result_clear (kp_pull_result *r)
{
  free (r->reference);
  free (r->digest);
  free (r->pinned);
  memset (r, 0, sizeof *r);
}

bool
kp_image_ref_is_pinned (const kp_image_ref *ref)
{
  switch (ref->kind)
    {
    case KP_REF_OCI:
      return ref->digest != NULL;
    case KP_REF_FILE:
    case KP_REF_URL:
      return ref->expect_digest != NULL;
    default:
      return false;
    }
}

/* ---- progress on a terminal: one line per transfer, redrawn in place ---- */

#define PROGRESS_MAX_LINES 16

typedef struct progress_line
{
  char label[48];
  uint64_t now, total;
  bool done;
  bool step;        /* a stage of work, not bytes: shows `detail` and the time it took */
  char detail[48];
  double took;
  struct timespec started;
} progress_line;

struct kp_pull_progress
{
  pthread_mutex_t lock;
  progress_line lines[PROGRESS_MAX_LINES];
  size_t n;
  size_t drawn; /* lines on the screen from the last draw */
  struct timespec last_draw;
};

static double
seconds_since (const struct timespec *t)
{
  struct timespec now;
  clock_gettime (CLOCK_MONOTONIC, &now);
  return (double) (now.tv_sec - t->tv_sec) + (double) (now.tv_nsec - t->tv_nsec) / 1e9;
}

static void
format_bytes (char *out, size_t size, double n)
{
  static const char *const units[] = { "B", "KiB", "MiB", "GiB" };
  size_t u = 0;
  while (n >= 1024 && u + 1 < KP_N_ELEMENTS (units))
    n /= 1024, u++;
  snprintf (out, size, u == 0 ? "%.0f %s" : "%.1f %s", n, units[u]);
}

static void
progress_draw (kp_pull_progress *p)
{
  kp_buf b = KP_BUF_INIT;
  if (p->drawn > 0)
    kp_buf_printf (&b, "\033[%zuA", p->drawn);
  for (size_t i = 0; i < p->n; i++)
    {
      progress_line *l = &p->lines[i];
      char now[32], total[32], rate[32];
      double secs = seconds_since (&l->started);
      double bps = secs > 0.05 ? (double) l->now / secs : 0;
      format_bytes (now, sizeof now, (double) l->now);
      format_bytes (total, sizeof total, (double) l->total);
      format_bytes (rate, sizeof rate, bps);
      if (l->step)
        {
          kp_buf_printf (&b, "\r\033[K  %-20s %-24s", l->label, l->detail);
          if (l->done)
            kp_buf_printf (&b, "  done in %.1fs\n", l->took);
          else
            kp_buf_printf (&b, "  %.0fs\n", secs);
          continue;
        }
      kp_buf_printf (&b, "\r\033[K  %-20s %10s", l->label, now);
      if (l->total)
        kp_buf_printf (&b, " / %-10s %3.0f%%", total, 100.0 * (double) l->now / (double) l->total);
      if (l->done)
        kp_buf_printf (&b, "  done");
      else
        {
          kp_buf_printf (&b, "  %s/s", rate);
          if (l->total && bps > 0 && l->now < l->total)
            kp_buf_printf (&b, "  ETA %.0fs", (double) (l->total - l->now) / bps);
        }
      kp_buf_printf (&b, "\n");
    }
  p->drawn = p->n;
  fwrite (b.data, 1, b.len, stderr);
  fflush (stderr);
  kp_buf_clear (&b);
}

void
kp_pull_progress_report (const char *label, uint64_t now, uint64_t total, bool done,
                         void *user_data)
{
  kp_pull_progress *p = user_data;
  if (p == NULL || label == NULL)
    return;
  pthread_mutex_lock (&p->lock);
  progress_line *l = NULL;
  for (size_t i = 0; i < p->n; i++)
    if (strncmp (p->lines[i].label, label, sizeof p->lines[i].label - 1) == 0)
      l = &p->lines[i];
  if (l == NULL && p->n < PROGRESS_MAX_LINES)
    {
      l = &p->lines[p->n++];
      snprintf (l->label, sizeof l->label, "%s", label);
      clock_gettime (CLOCK_MONOTONIC, &l->started);
    }
  if (l != NULL)
    {
      l->now = now;
      l->total = total;
      l->done = done;
      if (done || seconds_since (&p->last_draw) > 0.1)
        {
          progress_draw (p);
          clock_gettime (CLOCK_MONOTONIC, &p->last_draw);
        }
    }
  pthread_mutex_unlock (&p->lock);
}

void
kp_pull_progress_print (void *user_data, const char *text)
{
  kp_pull_progress *p = user_data;
  if (p == NULL)
    {
      fputs (text, stderr);
      return;
    }
  pthread_mutex_lock (&p->lock);
  /* The lines drawn so far stay as they are, above the text; new ones start below it. */
  fputs (text, stderr);
  fflush (stderr);
  p->drawn = 0;
  p->n = 0;
  pthread_mutex_unlock (&p->lock);
}

void
kp_pull_progress_step (const char *label, const char *detail, bool done, void *user_data)
{
  kp_pull_progress *p = user_data;
  if (p == NULL || label == NULL)
    return;
  pthread_mutex_lock (&p->lock);
  progress_line *l = NULL;
  for (size_t i = 0; i < p->n; i++)
    if (strncmp (p->lines[i].label, label, sizeof p->lines[i].label - 1) == 0)
      l = &p->lines[i];
  if (l == NULL && p->n < PROGRESS_MAX_LINES)
    {
      l = &p->lines[p->n++];
      snprintf (l->label, sizeof l->label, "%s", label);
      clock_gettime (CLOCK_MONOTONIC, &l->started);
    }
  if (l != NULL)
    {
      l->step = true;
      snprintf (l->detail, sizeof l->detail, "%s", detail ? detail : "");
      l->done = done;
      if (done)
        l->took = seconds_since (&l->started);
      progress_draw (p);
      clock_gettime (CLOCK_MONOTONIC, &p->last_draw);
    }
  pthread_mutex_unlock (&p->lock);
}

kp_pull_progress *
kp_pull_progress_new (bool enabled)
{
  if (!enabled)
    return NULL;
  kp_pull_progress *p = xcalloc (1, sizeof *p);
  pthread_mutex_init (&p->lock, NULL);
  return p;
}

void
kp_pull_progress_free (kp_pull_progress *p)
{
  if (p == NULL)
    return;
  pthread_mutex_destroy (&p->lock);
  free (p);
}

/* ---- the common ending ---- */

int
kp_pull_finish (kp_pull_ctx *ctx, const char *digest, char **objects, size_t n_layers,
                const char *tag_key, json_t *extra, kp_pull_result *out, kp_error **err)
{
  char tree[KP_BLAKE3_HEX_LEN + 1];
  if (kp_store_layer_from_tars (ctx->store, (const char *const *) objects, n_layers,
                                KP_LAYER_BASE, NULL, tree, err) < 0)
    {
      /* An entry the unpacker refused (one leaving the tree, a bad whiteout) is the
         image's fault, not the store's, which is unchanged. */
      if (err && *err && (*err)->errno_value == 0
          && strstr ((*err)->message, "unpack: entry \""))
        {
          kp_error_set_status (err, KP_EXIT_FAILURE);
          kp_error_hint (err, "the image is malformed or hostile; nothing of it was kept");
        }
      return kp_error_prefix (err, "unpack %s", ctx->ref->canonical);
    }
  kp_image_record rec = {
    .digest = (char *) digest,
    .reference = ctx->ref->canonical,
    .objects = objects,
    .created = 0,
    .size = out->bytes,
    .extra = extra,
  };
  memcpy (rec.tree_digest, tree, sizeof tree);
  if (kp_store_image_write (ctx->store, &rec, err) < 0)
    return -1;
  if (tag_key && kp_store_image_tag_set (ctx->store, tag_key, digest, time (NULL), err) < 0)
    return -1;
  memcpy (out->tree_digest, tree, sizeof tree);
  out->digest = xstrdup (digest);
  return 0;
}

int
kp_pull_use_record (kp_pull_ctx *ctx, const char *digest, const char *tag_key,
                    kp_pull_result *out, kp_error **err)
{
  kp_cleanup_image_record kp_image_record *rec = kp_store_image_read (ctx->store, digest, err);
  if (rec == NULL)
    return -1;
  if (kp_store_layer_exists (ctx->store, rec->tree_digest, err) != 1)
    {
      kp_error_free (err ? kp_steal_pointer (err) : NULL);
      return kp_error_set (err, KP_EXIT_STORE, "the layer of image %s is missing", digest);
    }
  if (tag_key && kp_store_image_tag_set (ctx->store, tag_key, digest, time (NULL), err) < 0)
    return -1;
  memcpy (out->tree_digest, rec->tree_digest, sizeof out->tree_digest);
  out->digest = xstrdup (digest);
  out->cached = true;
  return 0;
}

/* The record a tag names, if it is complete. */
char *
kp_pull_cached_digest (kp_pull_ctx *ctx, const char *tag_key)
{
  char *digest = NULL;
  int64_t when = 0;
  if (kp_store_image_tag_get (ctx->store, tag_key, &digest, &when, NULL) != 1)
    return NULL;
  kp_cleanup_image_record kp_image_record *rec = kp_store_image_read (ctx->store, digest, NULL);
  if (rec == NULL || kp_store_layer_exists (ctx->store, rec->tree_digest, NULL) != 1)
    {
      free (digest);
      return NULL;
    }
  return digest;
}

/* ---- blobs into store objects ---- */

typedef struct blob_writers
{
  kp_store *store;
  size_t n;
  kp_store_writer **w;
  char **ids;
} blob_writers;

static int
blob_write (size_t index, const void *data, size_t len, void *user_data, kp_error **err)
{
  blob_writers *b = user_data;
  if (b->w[index] == NULL)
    {
      b->w[index] = kp_store_writer_new (b->store, err);
      if (b->w[index] == NULL)
        return -1;
    }
  return kp_store_writer_write (b->w[index], data, len, err);
}

static int
blob_done (size_t index, void *user_data, kp_error **err)
{
  blob_writers *b = user_data;
  if (b->w[index] == NULL)
    {
      /* An empty blob: no byte ever came. */
      b->w[index] = kp_store_writer_new (b->store, err);
      if (b->w[index] == NULL)
        return -1;
    }
  char id[KP_STORE_OBJECT_ID_LEN + 1];
  kp_store_writer *w = kp_steal_pointer (&b->w[index]);
  if (kp_store_writer_commit (w, id, err) < 0)
    return -1;
  b->ids[index] = xstrdup (id);
  return 0;
}

static void
blob_discard (size_t index, void *user_data)
{
  blob_writers *b = user_data;
  kp_store_writer_abort (kp_steal_pointer (&b->w[index]));
}

static void
blob_writers_clear (blob_writers *b)
{
  for (size_t i = 0; i < b->n; i++)
    {
      kp_store_writer_abort (b->w[i]);
      free (b->ids[i]);
    }
  free (b->w);
  free (b->ids);
}

/* ---- facts kept in the record ---- */

static json_t *
descriptor_json (const kp_oci_descriptor *d, const char *object)
{
  json_t *j = json_pack ("{s:s,s:s,s:I}", "media_type", d->media_type ? d->media_type : "",
                         "digest", d->digest, "size", (json_int_t) d->size);
  if (object)
    json_object_set_new (j, "object", json_string (object));
  return j;
}

static json_t *
image_extra (const char *source, const kp_oci_image *img, char *const *objects)
{
  json_t *layers = json_array ();
  for (size_t i = 0; i < img->n_layers; i++)
    json_array_append_new (layers, descriptor_json (&img->layers[i], objects ? objects[i] : NULL));
  kp_cleanup_free char *platform = kp_platform_format (&img->platform);
  json_t *extra = json_pack ("{s:s,s:s,s:s,s:o}", "source", source, "platform", platform,
                             "manifest_digest", img->manifest_digest, "layers", layers);
  if (img->digest && strcmp (img->digest, img->manifest_digest) != 0)
    json_object_set_new (extra, "index_digest", json_string (img->digest));
  if (img->manifest)
    json_object_set (extra, "manifest", img->manifest);
  if (img->config_json)
    {
      /* What a run needs from the image's own settings; the rest stays in the registry. */
      json_t *cfg = json_object_get (img->config_json, "config");
      json_t *keep = json_object ();
      static const char *const keys[] = { "Env", "Cmd", "Entrypoint", "WorkingDir", "User",
                                          "Labels" };
      for (size_t i = 0; cfg && i < KP_N_ELEMENTS (keys); i++)
        {
          json_t *v = json_object_get (cfg, keys[i]);
          if (v && !json_is_null (v))
            json_object_set (keep, keys[i], v);
        }
      json_object_set_new (extra, "config", keep);
      json_t *created = json_object_get (img->config_json, "created");
      if (json_is_string (created))
        json_object_set (extra, "image_created", created);
    }
  return extra;
}

static uint64_t
layers_size (const kp_oci_image *img)
{
  uint64_t n = 0;
  for (size_t i = 0; i < img->n_layers; i++)
    n += img->layers[i].size;
  return n;
}

/* ---- registries ---- */

static int
host_platform_or (const kp_pull_options *opts, kp_platform *out, kp_error **err)
{
  if (opts->platform)
    return kp_platform_parse (opts->platform, out, err);
  kp_platform_host (out);
  return 0;
}

bool
kp_pull_insecure_for (const kp_pull_options *opts, const char *host)
{
  if (opts->tls_verify == 0)
    return true;
  if (opts->tls_verify == 1 || opts->config == NULL)
    return false;
  const kp_registry_config *rc = kp_image_config_registry (opts->config, host);
  return rc != NULL && rc->insecure;
}

static char *
oci_pinned (const kp_image_ref *ref, const char *digest)
{
  if (ref->tag)
    return xasprintf ("docker://%s/%s:%s@%s", ref->registry, ref->repository, ref->tag, digest);
  return xasprintf ("docker://%s/%s@%s", ref->registry, ref->repository, digest);
}

static unsigned
registry_requests (kp_registry *r)
{
  const kp_registry_stats *s = kp_registry_get_stats (r);
  return s->manifest_requests + s->blob_requests + s->token_requests + s->ping_requests;
}

static int
pull_registry (kp_pull_ctx *ctx, kp_pull_result *out, kp_error **err)
{
  const kp_image_ref *ref = ctx->ref;
  const kp_pull_options *opts = ctx->opts;
  kp_platform want = { 0 };
  if (host_platform_or (opts, &want, err) < 0)
    return -1;
  kp_cleanup_free char *platform = kp_platform_format (&want);
  kp_cleanup_free char *tag_key = xasprintf ("%s|%s", ref->canonical, platform);

  kp_cleanup_free char *cached = kp_pull_cached_digest (ctx, tag_key);
  if (cached && (ref->digest || opts->offline))
    {
      /* A digest names fixed content; offline, the last resolution is all there is. */
      kp_platform_clear (&want);
      int r = kp_pull_use_record (ctx, cached, NULL, out, err);
      if (r == 0)
        {
          kp_cleanup_image_record kp_image_record *rec = kp_store_image_read (ctx->store, cached,
                                                                             NULL);
          const char *idx = rec ? json_string_value (json_object_get (rec->extra,
                                                                     "index_digest")) : NULL;
          out->pinned = oci_pinned (ref, ref->digest ? ref->digest : idx ? idx : cached);
        }
      return r;
    }
  if (opts->offline)
    {
      kp_platform_clear (&want);
      kp_error_set (err, KP_EXIT_FAILURE, "%s (%s) is not in the image cache, and --offline "
                    "forbids the network", ref->canonical, platform);
      kp_error_hint (err, "pull it once with the network: karapace images pull %s",
                     ref->canonical);
      return -1;
    }

  kp_registry_options ro = {
    .insecure = kp_pull_insecure_for (opts, ref->registry),
    .username = opts->username,
    .password = opts->password,
    .auth_file = opts->auth_file,
    .platform = want,
    .progress = ctx->progress ? kp_pull_progress_report : NULL,
    .progress_data = ctx->progress,
  };
  /* Mirrors from config.toml first ("HOST[:PORT][/PREFIX]": the repository goes below
     PREFIX); the first that has the tag or digest serves the whole pull. */
  kp_cleanup_registry kp_registry *reg = NULL;
  kp_cleanup_free char *probed = NULL;
  kp_cleanup_free char *mirror_used = NULL;
  const kp_registry_config *rcfg = opts->config ? kp_image_config_registry (opts->config,
                                                                            ref->registry)
                                                : NULL;
  for (char **m = rcfg ? rcfg->mirrors : NULL; m && *m && reg == NULL; m++)
    {
      const char *slash = strchr (*m, '/');
      kp_cleanup_free char *host = slash ? xstrndup (*m, (size_t) (slash - *m)) : xstrdup (*m);
      kp_cleanup_free char *repo = slash ? xasprintf ("%s/%s", slash + 1, ref->repository)
                                         : xstrdup (ref->repository);
      kp_registry_options mo = ro;
      mo.insecure = kp_pull_insecure_for (opts, host);
      kp_registry *candidate = kp_registry_new (ctx->http, host, repo, &mo, NULL);
      if (candidate == NULL)
        continue;
      char *d = NULL;
      if (kp_registry_head_digest (candidate, ref->digest ? ref->digest : ref->tag, &d, NULL)
          == 0)
        {
          reg = candidate;
          probed = d;
          mirror_used = xstrdup (*m);
        }
      else
        {
          out->requests += registry_requests (candidate);
          kp_registry_free (candidate);
        }
    }
  if (reg == NULL)
    reg = kp_registry_new (ctx->http, ref->registry, ref->repository, &ro, err);
  if (reg == NULL)
    {
      kp_platform_clear (&want);
      return -1;
    }
  int rc = -1;
  kp_cleanup_oci_image kp_oci_image img = { 0 };
  blob_writers bw = { 0 };
  char **objects = NULL;
  kp_cleanup_free char *source = NULL;
  kp_cleanup_json json_t *extra = NULL;

  if (cached)
    {
      /* Seen before: is the tag still where it was? One HEAD request. */
      kp_cleanup_free char *now = probed ? xstrdup (probed) : NULL;
      if (now == NULL && kp_registry_head_digest (reg, ref->tag, &now, err) < 0)
        goto out;
      kp_cleanup_image_record kp_image_record *rec = kp_store_image_read (ctx->store, cached,
                                                                         NULL);
      const char *idx = rec ? json_string_value (json_object_get (rec->extra, "index_digest"))
                            : NULL;
      if (rec && (strcmp (now, cached) == 0 || (idx && strcmp (now, idx) == 0)))
        {
          rc = kp_pull_use_record (ctx, cached, tag_key, out, err);
          if (rc == 0)
            out->pinned = oci_pinned (ref, now);
          goto out;
        }
    }

  if (kp_registry_resolve (reg, ref->digest ? ref->digest : ref->tag, &img, err) < 0)
    goto out;
  if (kp_store_image_has (ctx->store, img.manifest_digest, NULL) == 1
      && kp_pull_use_record (ctx, img.manifest_digest, tag_key, out, NULL) == 0)
    {
      out->pinned = oci_pinned (ref, img.digest);
      rc = 0;
      goto out;
    }

  bw.store = ctx->store;
  bw.n = img.n_layers;
  bw.w = xcalloc (img.n_layers + 1, sizeof *bw.w);
  bw.ids = xcalloc (img.n_layers + 1, sizeof *bw.ids);
  kp_blob_sink sink = { blob_write, blob_done, blob_discard, &bw };
  if (kp_registry_fetch_blobs (reg, img.layers, img.n_layers, &sink, err) < 0)
    goto out;
  out->bytes = layers_size (&img);
  objects = xcalloc (img.n_layers + 1, sizeof *objects);
  for (size_t i = 0; i < img.n_layers; i++)
    objects[i] = bw.ids[i];
  source = xasprintf ("registry %s/%s", ref->registry, ref->repository);
  extra = image_extra (source, &img, objects);
  if (mirror_used)
    json_object_set_new (extra, "mirror", json_string (mirror_used));
  if (kp_pull_finish (ctx, img.manifest_digest, objects, img.n_layers, tag_key, extra, out,
                      err) < 0)
    goto out;
  out->pinned = oci_pinned (ref, img.digest);
  rc = 0;
out:
  if (rc == 0 && out->pinned && out->digest && !ref->digest)
    {
      /* The pinned form of what the tag resolved to is known now too: a later pull of it
         needs no request. */
      kp_cleanup_free char *pinned_key = xasprintf ("%s|%s", out->pinned, platform);
      kp_store_image_tag_set (ctx->store, pinned_key, out->digest, time (NULL), NULL);
    }
  out->requests += registry_requests (reg);
  free (objects);
  blob_writers_clear (&bw);
  kp_platform_clear (&want);
  return rc;
}

/* ---- OCI layouts on disk ---- */

/* Open blobs/ALGO/HEX of a layout, refusing anything but a regular file inside it. */
static int
layout_open_blob (int layout_fd, const char *digest, kp_error **err)
{
  kp_digest_algo algo;
  if (!kp_digest_is_valid (digest, &algo))
    return kp_error_set (err, KP_EXIT_FAILURE, "invalid digest '%s' in the layout", digest);
  const char *colon = strchr (digest, ':');
  kp_cleanup_free char *rel = xasprintf ("blobs/%.*s/%s", (int) (colon - digest), digest,
                                         colon + 1);
  int fd = kp_pull_open_beneath (layout_fd, rel);
  if (fd < 0)
    return kp_error_errno (err, errno, "open blob %s of the layout", digest);
  return fd;
}

/* Read a small blob, checked. */
static char *
layout_read_blob (int layout_fd, const kp_oci_descriptor *d, size_t max, size_t *len,
                  kp_error **err)
{
  kp_cleanup_close int fd = layout_open_blob (layout_fd, d->digest, err);
  if (fd < 0)
    return NULL;
  size_t n = 0;
  kp_cleanup_free char *bytes = kp_fd_read_all (fd, max, &n, err);
  if (bytes == NULL)
    return NULL;
  kp_digest_algo algo;
  kp_digest_is_valid (d->digest, &algo);
  char got[KP_DIGEST_STRING_MAX];
  kp_digest_buffer (algo, bytes, n, got);
  if (strcmp (got, d->digest) != 0)
    {
      kp_error_set (err, KP_EXIT_FAILURE, "blob %s of the layout is corrupt: its content "
                    "hashes to %s", d->digest, got);
      return NULL;
    }
  *len = n;
  return kp_steal_pointer (&bytes);
}

/* Copy a layer blob into a store object, checking digest and size. */
static int
layout_copy_blob (kp_pull_ctx *ctx, int layout_fd, const kp_oci_descriptor *d, char **id,
                  kp_error **err)
{
  kp_cleanup_close int fd = layout_open_blob (layout_fd, d->digest, err);
  if (fd < 0)
    return -1;
  kp_digest_algo algo;
  kp_digest_is_valid (d->digest, &algo);
  kp_cleanup_digest kp_digest *h = kp_digest_new (algo);
  kp_store_writer *w = kp_store_writer_new (ctx->store, err);
  if (w == NULL)
    return -1;
  static __thread char buf[1 << 17];
  for (;;)
    {
      ssize_t n = read (fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        {
          kp_store_writer_abort (w);
          return kp_error_errno (err, errno, "read blob %s", d->digest);
        }
      if (n == 0)
        break;
      kp_digest_update (h, buf, (size_t) n);
      if (kp_store_writer_write (w, buf, (size_t) n, err) < 0)
        {
          kp_store_writer_abort (w);
          return -1;
        }
    }
  char got[KP_DIGEST_STRING_MAX];
  uint64_t size = kp_digest_length (h);
  kp_digest_final (h, got);
  if (strcmp (got, d->digest) != 0 || (d->size && size != d->size))
    {
      kp_store_writer_abort (w);
      return kp_error_set (err, KP_EXIT_FAILURE, "layer %s of the layout is corrupt: %llu "
                           "bytes hashing to %s", d->digest, (unsigned long long) size, got);
    }
  char oid[KP_STORE_OBJECT_ID_LEN + 1];
  if (kp_store_writer_commit (w, oid, err) < 0)
    return -1;
  *id = xstrdup (oid);
  return 0;
}

static int
layout_choose (int layout_fd, const char *tag, kp_oci_descriptor *out, kp_error **err)
{
  kp_cleanup_close int fd = kp_pull_open_beneath (layout_fd, "index.json");
  if (fd < 0)
    return kp_error_errno (err, errno, "not an OCI layout: cannot open its index.json");
  size_t len = 0;
  kp_cleanup_free char *text = kp_fd_read_all (fd, 4 << 20, &len, err);
  if (text == NULL)
    return -1;
  json_error_t jerr;
  kp_cleanup_json json_t *index = json_loadb (text, len, 0, &jerr);
  json_t *manifests = index ? json_object_get (index, "manifests") : NULL;
  if (!json_is_array (manifests))
    return kp_error_set (err, KP_EXIT_FAILURE, "index.json of the layout is not an OCI image "
                         "index%s%s", index ? "" : ": ", index ? "" : jerr.text);
  size_t i;
  json_t *m;
  json_t *found = NULL;
  kp_buf names = KP_BUF_INIT;
  json_array_foreach (manifests, i, m)
    {
      const char *name = json_string_value (json_object_get (
          json_object_get (m, "annotations"), "org.opencontainers.image.ref.name"));
      if (name)
        kp_buf_printf (&names, "%s%s", names.len ? ", " : "", name);
      if (tag ? (name && strcmp (name, tag) == 0) : json_array_size (manifests) == 1)
        found = m;
    }
  if (found == NULL)
    {
      if (tag)
        kp_error_set (err, KP_EXIT_FAILURE, "the layout has no image tagged '%s'", tag);
      else
        kp_error_set (err, KP_EXIT_FAILURE, "the layout holds %zu images: say which by tag",
                      json_array_size (manifests));
      if (names.len)
        kp_error_hint (err, "tags in the layout: %s", names.data);
      kp_buf_clear (&names);
      return -1;
    }
  kp_buf_clear (&names);
  const char *digest = json_string_value (json_object_get (found, "digest"));
  const char *mt = json_string_value (json_object_get (found, "mediaType"));
  if (digest == NULL || !kp_digest_is_valid (digest, NULL))
    return kp_error_set (err, KP_EXIT_FAILURE, "index.json names an invalid digest");
  out->digest = xstrdup (digest);
  out->media_type = xstrdup (mt ? mt : KP_MT_OCI_MANIFEST);
  out->size = (uint64_t) json_integer_value (json_object_get (found, "size"));
  return 0;
}

static int
pull_layout (kp_pull_ctx *ctx, kp_pull_result *out, kp_error **err)
{
  const kp_image_ref *ref = ctx->ref;
  kp_cleanup_close int layout_fd = open (ref->path_or_url, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (layout_fd < 0)
    return kp_error_errno (err, errno, "open the OCI layout '%s'", ref->path_or_url);
  kp_platform want = { 0 };
  if (host_platform_or (ctx->opts, &want, err) < 0)
    return -1;
  int rc = -1;
  kp_oci_descriptor top = { 0 };
  kp_oci_descriptor chosen = { 0 };
  kp_cleanup_oci_image kp_oci_image img = { 0 };
  char **objects = NULL;
  size_t len = 0;
  kp_cleanup_free char *bytes = NULL;
  if (layout_choose (layout_fd, ref->layout_tag, &top, err) < 0)
    goto out;
  bytes = layout_read_blob (layout_fd, &top, 4 << 20, &len, err);
  if (bytes == NULL)
    goto out;
  bool is_index = false;
  if (kp_oci_parse_manifest (bytes, len, top.media_type, &want, &is_index, &chosen, &img, err)
      < 0)
    goto out;
  img.digest = xstrdup (top.digest);
  if (is_index)
    {
      size_t mlen = 0;
      kp_cleanup_free char *mbytes = layout_read_blob (layout_fd, &chosen, 4 << 20, &mlen, err);
      if (mbytes == NULL)
        goto out;
      bool again = false;
      kp_oci_descriptor unused = { 0 };
      if (kp_oci_parse_manifest (mbytes, mlen, chosen.media_type, &want, &again, &unused, &img,
                                 err) < 0)
        goto out;
      kp_oci_descriptor_clear (&unused);
      if (again)
        {
          kp_error_set (err, KP_EXIT_FAILURE, "the layout nests an index in an index");
          goto out;
        }
      img.manifest_digest = xstrdup (chosen.digest);
    }
  else
    img.manifest_digest = xstrdup (top.digest);
  if (img.platform.os == NULL)
    {
      kp_platform_clear (&img.platform);
      img.platform.os = xstrdup (want.os);
      img.platform.architecture = xstrdup (want.architecture);
      img.platform.variant = want.variant ? xstrdup (want.variant) : NULL;
    }
  {
    size_t clen = 0;
    kp_cleanup_free char *cbytes = layout_read_blob (layout_fd, &img.config, 4 << 20, &clen,
                                                     err);
    if (cbytes == NULL)
      goto out;
    img.config_json = json_loadb (cbytes, clen, 0, NULL);
  }
  if (kp_store_image_has (ctx->store, img.manifest_digest, NULL) == 1
      && kp_pull_use_record (ctx, img.manifest_digest, NULL, out, NULL) == 0)
    {
      rc = 0;
      goto out;
    }
  objects = xcalloc (img.n_layers + 1, sizeof *objects);
  for (size_t i = 0; i < img.n_layers; i++)
    {
      if (layout_copy_blob (ctx, layout_fd, &img.layers[i], &objects[i], err) < 0)
        goto out;
      out->bytes += img.layers[i].size;
      if (ctx->progress)
        kp_pull_progress_report (img.layers[i].digest + 7, img.layers[i].size,
                                 img.layers[i].size, true, ctx->progress);
    }
  {
    kp_cleanup_json json_t *extra = image_extra ("oci-layout", &img, objects);
    if (kp_pull_finish (ctx, img.manifest_digest, objects, img.n_layers, NULL, extra, out, err)
        < 0)
      goto out;
  }
  rc = 0;
out:
  if (objects)
    for (size_t i = 0; i < img.n_layers; i++)
      free (objects[i]);
  free (objects);
  kp_oci_descriptor_clear (&top);
  kp_oci_descriptor_clear (&chosen);
  kp_platform_clear (&want);
  return rc;
}

/* ---- the entry point ---- */

int
kp_image_pull (kp_store *store, const kp_image_ref *ref, const kp_pull_options *opts,
               kp_pull_result *out, kp_error **err)
{
  static const kp_pull_options defaults = { .tls_verify = -1 };
  if (opts == NULL)
    opts = &defaults;
  memset (out, 0, sizeof *out);
  kp_cleanup_http kp_http *http = kp_http_new ();
  kp_pull_ctx ctx = {
    .store = store,
    .ref = ref,
    .opts = opts,
    .http = http,
    .progress = kp_pull_progress_new (opts->progress),
  };
  int r;
  switch (ref->kind)
    {
    case KP_REF_OCI:
      r = pull_registry (&ctx, out, err);
      break;
    case KP_REF_OCI_LAYOUT:
      r = pull_layout (&ctx, out, err);
      break;
    case KP_REF_FILE:
      r = kp_pull_file (&ctx, out, err);
      break;
    case KP_REF_URL:
      r = kp_pull_url (&ctx, out, err);
      break;
    case KP_REF_DIR:
      r = kp_pull_dir (&ctx, out, err);
      break;
    case KP_REF_LXC:
      r = kp_pull_lxc (&ctx, out, err);
      break;
    case KP_REF_DEBIAN:
      r = kp_pull_debian (&ctx, out, err);
      break;
    default:
      r = kp_error_set (err, KP_EXIT_FAILURE, "%s: unknown kind of reference", ref->canonical);
      break;
    }
  kp_pull_progress_free (ctx.progress);
  if (r < 0)
    {
      kp_pull_result_clear (out);
      return kp_error_prefix (err, "pull %s", ref->canonical);
    }
  out->reference = xstrdup (ref->canonical);
  return 0;
}

/* ---- finding a record ---- */

static bool
is_hex (const char *s)
{
  for (; *s; s++)
    if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
      return false;
  return true;
}

char *
kp_image_find (kp_store *store, const char *what, const kp_image_aliases *aliases,
               kp_error **err)
{
  if (kp_digest_is_valid (what, NULL))
    {
      if (kp_store_image_has (store, what, err) == 1)
        return xstrdup (what);
      kp_error_set (err, KP_EXIT_FAILURE, "no image %s in the store", what);
      kp_error_hint (err, "'karapace images list' shows the images kept");
      return NULL;
    }
  const char *hex = strchr (what, ':') && kp_str_has_prefix (what, "sha256:") ? what + 7 : what;
  if (strlen (hex) >= 6 && is_hex (hex))
    {
      kp_cleanup_strv char **all = kp_store_image_list (store, err);
      if (all == NULL)
        return NULL;
      char *match = NULL;
      for (char **d = all; *d; d++)
        {
          const char *colon = strchr (*d, ':');
          if (colon && kp_str_has_prefix (colon + 1, hex))
            {
              if (match)
                {
                  free (match);
                  kp_error_set (err, KP_EXIT_FAILURE, "'%s' is the start of several image "
                                "digests", what);
                  kp_error_hint (err, "give more digits");
                  return NULL;
                }
              match = xstrdup (*d);
            }
        }
      if (match)
        return match;
    }
  kp_cleanup_image_ref kp_image_ref ref = { 0 };
  kp_cleanup_free char *cwd = getcwd (NULL, 0);
  if (kp_image_ref_parse (what, cwd, aliases, &ref, err) < 0)
    return NULL;
  kp_cleanup_json json_t *tags = kp_store_image_tags (store, err);
  if (tags == NULL)
    return NULL;
  size_t plen = strlen (ref.canonical);
  size_t i;
  json_t *t;
  json_array_foreach (tags, i, t)
    {
      const char *r = json_string_value (json_object_get (t, "reference"));
      if (r && strncmp (r, ref.canonical, plen) == 0 && (r[plen] == '\0' || r[plen] == '|'))
        return xstrdup (json_string_value (json_object_get (t, "digest")));
    }
  kp_error_set (err, KP_EXIT_FAILURE, "no image pulled as %s", ref.canonical);
  kp_error_hint (err, "'karapace images list' shows the images kept; 'karapace images pull "
                      "%s' fetches it", what);
  return NULL;
}
