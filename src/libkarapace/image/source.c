/* source.c — the sources that are one archive or one tree: local tarballs, tarball URLs,
 * directories, and LXC image servers (whose images are one rootfs.tar.xz named by a
 * simplestreams index). Each becomes one tar object and then a layer through
 * kp_pull_finish(). */
#include "image/pull-private.h"

#include "archive/archive.h"
#include "base/json.h"
#include "base/fs.h"
#include "hash/digest.h"
#include "image/simplestreams.h"
#include "sandbox/userns.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_LXC_SERVER "images.linuxcontainers.org"

int
kp_pull_open_beneath (int dirfd, const char *rel)
{
  struct open_how how = {
    .flags = O_RDONLY | O_CLOEXEC,
    .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS,
  };
  int fd = (int) syscall (SYS_openat2, dirfd, rel, &how, sizeof how);
  if (fd >= 0 || (errno != ENOSYS && errno != EPERM))
    return fd;
  /* No openat2 (old kernel, or a seccomp filter refusing it): one component at a time. */
  kp_cleanup_free char *copy = xstrdup (rel);
  int cur = dirfd;
  char *save = NULL;
  for (char *part = strtok_r (copy, "/", &save); part; part = strtok_r (NULL, "/", &save))
    {
      if (strcmp (part, "..") == 0)
        {
          if (cur != dirfd)
            close (cur);
          errno = EXDEV;
          return -1;
        }
      int next = openat (cur, part, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
      int saved = errno;
      if (cur != dirfd)
        close (cur);
      if (next < 0)
        {
          errno = saved;
          return -1;
        }
      cur = next;
    }
  return cur == dirfd ? openat (dirfd, ".", O_RDONLY | O_CLOEXEC) : cur;
}

/* ---- a stream of bytes into one object, hashed on the way ---- */

typedef struct object_stream
{
  kp_store_writer *w;
  kp_digest *sha256;
  kp_digest *blake3; /* only when a blake3 check was asked for */
} object_stream;

static int
object_stream_open (kp_pull_ctx *ctx, object_stream *s, bool want_blake3, kp_error **err)
{
  memset (s, 0, sizeof *s);
  s->w = kp_store_writer_new (ctx->store, err);
  if (s->w == NULL)
    return -1;
  s->sha256 = kp_digest_new (KP_DIGEST_SHA256);
  if (want_blake3)
    s->blake3 = kp_digest_new (KP_DIGEST_BLAKE3);
  return 0;
}

static int
object_stream_sink (const void *data, size_t len, void *user_data, kp_error **err)
{
  object_stream *s = user_data;
  kp_digest_update (s->sha256, data, len);
  if (s->blake3)
    kp_digest_update (s->blake3, data, len);
  return kp_store_writer_write (s->w, data, len, err);
}

static void
object_stream_clear (object_stream *s)
{
  kp_store_writer_abort (s->w);
  kp_digest_free (s->sha256);
  kp_digest_free (s->blake3);
  memset (s, 0, sizeof *s);
}

/* Finish the hashes; check `expect` ("sha256:…" / "blake3:…", or NULL). */
static int
object_stream_check (object_stream *s, const char *what, const char *expect,
                     char sha256[KP_DIGEST_STRING_MAX], kp_error **err)
{
  kp_digest_final (s->sha256, sha256);
  if (expect == NULL)
    return 0;
  char b3[KP_DIGEST_STRING_MAX] = "";
  if (s->blake3)
    kp_digest_final (s->blake3, b3);
  const char *got = kp_str_has_prefix (expect, "blake3:") ? b3 : sha256;
  if (strcmp (got, expect) == 0)
    return 0;
  kp_error_set (err, KP_EXIT_FAILURE, "%s does not have the expected content: it hashes to %s, "
                "the reference says %s", what, got, expect);
  kp_error_hint (err, "nothing was kept; if the new content is what you want, update the "
                      "digest after the '#' (karapace pin rewrites it)");
  return -1;
}

/* Commit the stream, or use the record its digest already has. */
static int
object_stream_finish (kp_pull_ctx *ctx, object_stream *s, const char *digest,
                      const char *tag_key, json_t *extra, kp_pull_result *out, kp_error **err)
{
  if (kp_store_image_has (ctx->store, digest, NULL) == 1
      && kp_pull_use_record (ctx, digest, tag_key, out, NULL) == 0)
    {
      kp_store_writer_abort (kp_steal_pointer (&s->w));
      return 0;
    }
  char id[KP_STORE_OBJECT_ID_LEN + 1];
  if (kp_store_writer_commit (kp_steal_pointer (&s->w), id, err) < 0)
    return -1;
  char *objects[2] = { id, NULL };
  return kp_pull_finish (ctx, digest, objects, 1, tag_key, extra, out, err);
}

/* ---- file:// and plain paths ---- */

int
kp_pull_file (kp_pull_ctx *ctx, kp_pull_result *out, kp_error **err)
{
  const kp_image_ref *ref = ctx->ref;
  kp_cleanup_close int fd = open (ref->path_or_url, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0)
    return kp_error_errno (err, errno, "open '%s'", ref->path_or_url);
  struct stat st;
  if (fstat (fd, &st) < 0 || !S_ISREG (st.st_mode))
    return kp_error_set (err, KP_EXIT_FAILURE, "'%s' is not a regular file", ref->path_or_url);

  bool want_b3 = ref->expect_digest && kp_str_has_prefix (ref->expect_digest, "blake3:");
  object_stream s;
  if (object_stream_open (ctx, &s, want_b3, err) < 0)
    return -1;
  static __thread char buf[1 << 17];
  int rc = -1;
  for (;;)
    {
      ssize_t n = read (fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        {
          kp_error_errno (err, errno, "read '%s'", ref->path_or_url);
          goto out;
        }
      if (n == 0)
        break;
      if (object_stream_sink (buf, (size_t) n, &s, err) < 0)
        goto out;
      out->bytes += (uint64_t) n;
    }
  char sha256[KP_DIGEST_STRING_MAX];
  if (object_stream_check (&s, ref->path_or_url, ref->expect_digest, sha256, err) < 0)
    goto out;
  {
    kp_cleanup_json json_t *extra = json_pack ("{s:s,s:s}", "source", "file", "path",
                                               ref->path_or_url);
    if (object_stream_finish (ctx, &s, sha256, ref->canonical, extra, out, err) < 0)
      goto out;
  }
  out->pinned = xasprintf ("file://%s#%s=%s", ref->path_or_url, "sha256", sha256 + 7);
  rc = 0;
out:
  object_stream_clear (&s);
  return rc;
}

/* ---- one download into an object ---- */

static int
download (kp_pull_ctx *ctx, const char *url, const char *label, object_stream *s,
          kp_error **err)
{
  kp_cleanup_free char *host = NULL;
  const char *p = strstr (url, "://");
  if (p)
    {
      p += 3;
      host = xstrndup (p, strcspn (p, "/?#"));
    }
  kp_http_request req = {
    .url = url,
    .insecure = host && kp_pull_insecure_for (ctx->opts, host),
    .sink = object_stream_sink,
    .sink_data = s,
    .progress_label = label,
    .progress = ctx->progress ? kp_pull_progress_report : NULL,
    .progress_data = ctx->progress,
  };
  kp_cleanup_http_response kp_http_response resp = { 0 };
  if (kp_http_get (ctx->http, &req, &resp, err) < 0)
    return -1;
  if (resp.status != 200)
    {
      kp_error_set (err, KP_EXIT_FAILURE, "%s answered %ld", url, resp.status);
      kp_error_hint (err, resp.status == 404 ? "check the address: nothing is there"
                                             : "try again later, or check the address");
      return -1;
    }
  return 0;
}

/* ---- http(s):// tarballs ---- */

int
kp_pull_url (kp_pull_ctx *ctx, kp_pull_result *out, kp_error **err)
{
  const kp_image_ref *ref = ctx->ref;
  kp_cleanup_free char *cached = kp_pull_cached_digest (ctx, ref->canonical);
  /* With a digest in the reference the content is fixed: the cache answers. Without
     one, only --offline settles for what was downloaded last time. */
  if (cached && (ref->expect_digest || ctx->opts->offline))
    {
      if (kp_pull_use_record (ctx, cached, NULL, out, err) < 0)
        return -1;
      out->pinned = xasprintf ("%s#sha256=%s", ref->path_or_url, cached + 7);
      return 0;
    }
  if (ctx->opts->offline)
    {
      kp_error_set (err, KP_EXIT_FAILURE, "%s is not in the image cache, and --offline "
                    "forbids the network", ref->path_or_url);
      kp_error_hint (err, "pull it once with the network: karapace images pull %s",
                     ref->canonical);
      return -1;
    }
  bool want_b3 = ref->expect_digest && kp_str_has_prefix (ref->expect_digest, "blake3:");
  object_stream s;
  if (object_stream_open (ctx, &s, want_b3, err) < 0)
    return -1;
  int rc = -1;
  const char *slash = strrchr (ref->path_or_url, '/');
  out->requests++;
  if (download (ctx, ref->path_or_url, slash ? slash + 1 : ref->path_or_url, &s, err) < 0)
    goto out;
  out->bytes = kp_digest_length (s.sha256);
  char sha256[KP_DIGEST_STRING_MAX];
  if (object_stream_check (&s, ref->path_or_url, ref->expect_digest, sha256, err) < 0)
    goto out;
  {
    kp_cleanup_json json_t *extra = json_pack ("{s:s,s:s}", "source", "url", "url",
                                               ref->path_or_url);
    if (object_stream_finish (ctx, &s, sha256, ref->canonical, extra, out, err) < 0)
      goto out;
  }
  out->pinned = xasprintf ("%s#sha256=%s", ref->path_or_url, sha256 + 7);
  rc = 0;
out:
  object_stream_clear (&s);
  return rc;
}

/* ---- dir:// ---- */

/* The tree is packed in the store's user namespace, where files of subordinate ids (a
 * tree made by mmdebstrap --mode=unshare) are readable; the tar streams out through a
 * pipe that a second thread drains into the object. */
typedef struct pack_job
{
  const char *path;
  int out_fd;
  kp_error *err;
  int rc;
} pack_job;

static int
pack_in_namespace (void *data, kp_error **err)
{
  pack_job *j = data;
  kp_pack_options o = { .mtime_clamp = -1 };
  return kp_archive_pack (AT_FDCWD, j->path, j->out_fd, &o, NULL, err);
}

static void *
pack_thread (void *data)
{
  pack_job *j = data;
  j->rc = kp_userns_run (pack_in_namespace, j, &j->err);
  close (j->out_fd);
  return NULL;
}

int
kp_pull_dir (kp_pull_ctx *ctx, kp_pull_result *out, kp_error **err)
{
  const kp_image_ref *ref = ctx->ref;
  struct stat st;
  if (stat (ref->path_or_url, &st) < 0)
    return kp_error_errno (err, errno, "'%s'", ref->path_or_url);
  if (!S_ISDIR (st.st_mode))
    return kp_error_set (err, KP_EXIT_FAILURE, "'%s' is not a directory", ref->path_or_url);
  int fds[2];
  if (pipe2 (fds, O_CLOEXEC) < 0)
    return kp_error_errno (err, errno, "pipe");
  object_stream s;
  if (object_stream_open (ctx, &s, false, err) < 0)
    {
      close (fds[0]);
      close (fds[1]);
      return -1;
    }
  pack_job job = { .path = ref->path_or_url, .out_fd = fds[1] };
  pthread_t thread;
  if (pthread_create (&thread, NULL, pack_thread, &job) != 0)
    {
      close (fds[0]);
      close (fds[1]);
      object_stream_clear (&s);
      return kp_error_set (err, KP_EXIT_FAILURE, "cannot start a thread");
    }
  static __thread char buf[1 << 17];
  int rc = 0;
  kp_error *write_err = NULL;
  for (;;)
    {
      ssize_t n = read (fds[0], buf, sizeof buf);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        break;
      if (rc == 0 && object_stream_sink (buf, (size_t) n, &s, &write_err) < 0)
        rc = -1; /* keep draining so the packer can finish */
      out->bytes += (uint64_t) n;
    }
  close (fds[0]);
  pthread_join (thread, NULL);
  if (job.rc < 0)
    {
      kp_error_free (write_err);
      object_stream_clear (&s);
      if (err)
        *err = kp_steal_pointer (&job.err);
      kp_error_free (job.err);
      return kp_error_prefix (err, "pack '%s'", ref->path_or_url);
    }
  if (rc < 0)
    {
      object_stream_clear (&s);
      if (err)
        *err = write_err;
      else
        kp_error_free (write_err);
      return -1;
    }
  /* The tar is a pure function of the tree, so the hash of the tar names the tree. */
  char sha256[KP_DIGEST_STRING_MAX];
  kp_digest_final (s.sha256, sha256);
  kp_cleanup_json json_t *extra = json_pack ("{s:s,s:s}", "source", "dir", "path",
                                             ref->path_or_url);
  rc = object_stream_finish (ctx, &s, sha256, ref->canonical, extra, out, err);
  object_stream_clear (&s);
  return rc;
}

/* ---- lxc:// ---- */

/* The server's base URL: https://HOST, or http://HOST for loopback hosts (tests, local
 * mirrors), or what the configuration says for the default server. */
static char *
lxc_base_url (kp_pull_ctx *ctx)
{
  const char *server = ctx->ref->server;
  const kp_image_config *cfg = ctx->opts->config;
  if (cfg && cfg->lxc_server && strcmp (server, DEFAULT_LXC_SERVER) == 0)
    server = cfg->lxc_server;
  if (strstr (server, "://"))
    {
      size_t n = strlen (server);
      while (n > 0 && server[n - 1] == '/')
        n--;
      return xstrndup (server, n);
    }
  return xasprintf ("%s://%s", kp_http_host_is_loopback (server) ? "http" : "https", server);
}

static char *
fetch_text (kp_pull_ctx *ctx, const char *url, size_t max, size_t *len, kp_error **err)
{
  kp_cleanup_free char *host = NULL;
  const char *p = strstr (url, "://");
  if (p)
    host = xstrndup (p + 3, strcspn (p + 3, "/?#"));
  kp_http_request req = {
    .url = url,
    .insecure = host && kp_pull_insecure_for (ctx->opts, host),
    .max_body = max,
  };
  kp_http_response resp = { 0 };
  if (kp_http_get (ctx->http, &req, &resp, err) < 0)
    return NULL;
  if (resp.status != 200)
    {
      kp_error_set (err, KP_EXIT_FAILURE, "%s answered %ld", url, resp.status);
      kp_error_hint (err, "is this a simplestreams image server (images.linuxcontainers.org "
                          "or a mirror of it)?");
      kp_http_response_clear (&resp);
      return NULL;
    }
  *len = resp.body_len;
  char *body = kp_steal_pointer (&resp.body);
  kp_http_response_clear (&resp);
  return body;
}

int
kp_pull_lxc (kp_pull_ctx *ctx, kp_pull_result *out, kp_error **err)
{
  const kp_image_ref *ref = ctx->ref;
  kp_cleanup_free char *cached = kp_pull_cached_digest (ctx, ref->canonical);
  if (ctx->opts->offline)
    {
      if (cached)
        {
          if (kp_pull_use_record (ctx, cached, NULL, out, err) < 0)
            return -1;
          kp_cleanup_image_record kp_image_record *rec = kp_store_image_read (ctx->store,
                                                                             cached, NULL);
          const char *url = rec ? json_string_value (json_object_get (rec->extra, "url"))
                                : NULL;
          if (url)
            out->pinned = xasprintf ("%s#sha256=%s", url, cached + 7);
          return 0;
        }
      kp_error_set (err, KP_EXIT_FAILURE, "%s is not in the image cache, and --offline "
                    "forbids the network", ref->canonical);
      kp_error_hint (err, "pull it once with the network: karapace images pull %s",
                     ref->canonical);
      return -1;
    }
  kp_cleanup_free char *base = lxc_base_url (ctx);
  kp_cleanup_free char *index_url = xasprintf ("%s/streams/v1/index.json", base);
  size_t len = 0;
  out->requests++;
  kp_cleanup_free char *index = fetch_text (ctx, index_url, 16 << 20, &len, err);
  if (index == NULL)
    return -1;
  kp_cleanup_free char *products_path = NULL;
  if (kp_simplestreams_products_path (index, len, &products_path, err) < 0)
    return kp_error_prefix (err, "%s", index_url);
  kp_cleanup_free char *products_url = xasprintf ("%s/%s", base, products_path);
  out->requests++;
  kp_cleanup_free char *products = fetch_text (ctx, products_url, 256 << 20, &len, err);
  if (products == NULL)
    return -1;
  kp_lxc_image img = { 0 };
  if (kp_simplestreams_find (products, len, ref->distro, ref->release, kp_lxc_arch_host (),
                             ref->variant, &img, err) < 0)
    return kp_error_prefix (err, "%s", products_url);
  kp_cleanup_free char *url = xasprintf ("%s/%s", base, img.path);
  int rc = -1;
  object_stream s = { 0 };
  kp_cleanup_free char *label = xasprintf ("%s %s", img.product, img.version);
  if (cached && strcmp (cached, img.sha256) == 0)
    {
      rc = kp_pull_use_record (ctx, cached, ref->canonical, out, err);
      if (rc == 0)
        out->pinned = xasprintf ("%s#sha256=%s", url, cached + 7);
      goto out;
    }
  if (object_stream_open (ctx, &s, false, err) < 0)
    goto out;
  out->requests++;
  if (download (ctx, url, label, &s, err) < 0)
    goto out;
  out->bytes = kp_digest_length (s.sha256);
  if (img.size && out->bytes != img.size)
    {
      kp_error_set (err, KP_EXIT_FAILURE, "%s: %llu bytes came, the index says %llu", url,
                    (unsigned long long) out->bytes, (unsigned long long) img.size);
      goto out;
    }
  char sha256[KP_DIGEST_STRING_MAX];
  if (object_stream_check (&s, url, img.sha256, sha256, err) < 0)
    goto out;
  {
    kp_cleanup_json json_t *extra = json_pack ("{s:s,s:s,s:s,s:s}", "source", "lxc", "product",
                                               img.product, "version", img.version, "url", url);
    if (object_stream_finish (ctx, &s, sha256, ref->canonical, extra, out, err) < 0)
      goto out;
  }
  out->pinned = xasprintf ("%s#sha256=%s", url, sha256 + 7);
  rc = 0;
out:
  if (rc == 0 && out->pinned && out->digest)
    /* The tarball's pinned URL names the same image: a later pull of it needs no request. */
    kp_store_image_tag_set (ctx->store, out->pinned, out->digest, time (NULL), NULL);
  object_stream_clear (&s);
  kp_lxc_image_clear (&img);
  return rc;
}
