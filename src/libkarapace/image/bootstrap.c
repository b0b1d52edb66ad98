/* bootstrap.c — a Debian or Ubuntu base built straight from a signed mirror (docs/images.md,
 * "Debian and Ubuntu mirrors").
 *
 *   InRelease ── gpgv, the distribution's keyring ──▶ Release (trusted text)
 *   Release ── SHA256 ──▶ Packages.xz ── SHA256 ──▶ every .deb
 *   package set: required + Essential + apt (minbase), + important + standard (standard)
 *   stage 1 (the store's user namespace): merged /usr links, the Essential packages'
 *           data.tar unpacked by the store's safe unpacker, dpkg's database skeleton
 *   stage 2 (a sandbox whose root is the new tree, no network, root inside): the guest's
 *           own dpkg installs and configures the Essential set, then the rest
 *   stage 3 (the namespace again): sources.list, logs, caches, mount points and every
 *           file that differs from run to run removed; the tree becomes a base layer
 *
 * Every downloaded file is a store object; cache/ names them by SHA256 (and the last
 * verified InRelease by mirror and suite), so a later bootstrap — also --offline — takes
 * them from the store. Nothing unverified is ever kept: the InRelease is stored only once
 * the whole bootstrap succeeded. */
#include "image/deb822.h"
#include "image/debian.h"
#include "image/pull-private.h"

#include "archive/archive.h"
#include "base/buf.h"
#include "base/fs.h"
#include "base/json.h"
#include "base/util.h"
#include "hash/digest.h"
#include "sandbox/runtime.h"
#include "sandbox/userns.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#define INDEX_MAX (256u << 20)   /* an uncompressed Packages file */
#define INRELEASE_MAX (8u << 20)
#define DEBS_DIR "/var/cache/karapace-debs" /* where stage 2 sees the packages */
#define LOG_FILE "/tmp/karapace-bootstrap.log"

typedef struct deb_item
{
  const kp_deb_package *pkg;
  char object[KP_STORE_OBJECT_ID_LEN + 1];
  char *file; /* NAME_VERSION_ARCH.deb */
  bool essential; /* stage 1 unpacks it; the first dpkg run installs it */
  int round;      /* which dpkg run installs it: 0 for the Essential set */
  bool have;      /* in the store already */
  bool fetched;   /* downloaded and verified by this pull */
} deb_item;

typedef struct bootstrap
{
  kp_pull_ctx *ctx;
  const char *distribution, *suite, *variant;
  char *mirror;
  char arch[72];
  bool insecure;
  char inrelease_sha256[KP_DIGEST_STRING_MAX];
  char *inrelease;
  size_t inrelease_len;
  kp_release release;
  kp_deb_index index;
  deb_item *debs;
  size_t n;
  int64_t epoch;
  int rounds; /* dpkg runs after the Essential one */
  bool merged_usr;
  uint64_t index_bytes; /* the package index as fetched (0 when it came from the store) */
  /* downloads */
  pthread_mutex_t lock;
  uint64_t done_bytes, total_bytes;
  size_t *todo;
  size_t n_todo;
  char *tree; /* the new tree (stage functions) */
  char *debs_dir;
} bootstrap;

/* ---- small helpers ---- */

static const char *
host_arch (void)
{
  static const char *const map[][2] = {
    { "x86_64", "amd64" },   { "aarch64", "arm64" }, { "i686", "i386" },
    { "i586", "i386" },      { "armv7l", "armhf" },  { "ppc64le", "ppc64el" },
    { "s390x", "s390x" },    { "riscv64", "riscv64" }, { "mips64", "mips64el" },
  };
  static struct utsname u;
  if (uname (&u) < 0)
    return "amd64";
  for (size_t i = 0; i < KP_N_ELEMENTS (map); i++)
    if (strcmp (u.machine, map[i][0]) == 0)
      return map[i][1];
  return u.machine;
}

/* Suites from before merged /usr (debootstrap's list): everything newer is merged. */
static bool
suite_is_merged_usr (const char *suite)
{
  static const char *const split[] = { "jessie", "stretch", "buster", "xenial", "bionic",
                                       "focal",  NULL };
  for (size_t i = 0; split[i]; i++)
    if (strcmp (suite, split[i]) == 0)
      return false;
  return true;
}

static char *
deb_file_name (const kp_deb_package *p)
{
  kp_buf b = KP_BUF_INIT;
  kp_buf_printf (&b, "%s_", p->name);
  for (const char *c = p->version; *c; c++)
    {
      if (*c == ':')
        kp_buf_printf (&b, "%%3a");
      else
        kp_buf_append (&b, c, 1);
    }
  kp_buf_printf (&b, "_%s.deb", p->arch);
  return kp_buf_steal (&b);
}

static char *
object_path (kp_store *store, const char *id)
{
  return xasprintf ("%s/objects/%.2s/%s", kp_store_path (store), id, id + 2);
}

static int
fetch_small (bootstrap *b, const char *rel, size_t max, char **body, size_t *len,
             kp_error **err)
{
  kp_cleanup_free char *url = xasprintf ("%s/%s", b->mirror, rel);
  kp_http_request req = { .url = url, .insecure = b->insecure, .max_body = max };
  kp_cleanup_http_response kp_http_response resp = { 0 };
  if (kp_http_get (b->ctx->http, &req, &resp, err) < 0)
    return -1;
  if (resp.status != 200)
    {
      kp_error_set (err, KP_EXIT_FAILURE, "%s answered HTTP %ld", url, resp.status);
      if (resp.status == 404)
        kp_error_hint (err, "check the suite name and the mirror (the %s mirror is set by "
                            "[mirrors] in config.toml)", b->distribution);
      return -1;
    }
  *len = resp.body_len;
  *body = kp_steal_pointer (&resp.body);
  return 0;
}

/* Decompress an index (xz, gzip, bzip2 or plain) into memory. */
static char *
decompress (const char *data, size_t len, size_t *out_len, kp_error **err)
{
  struct archive *a = archive_read_new ();
  archive_read_support_filter_all (a);
  archive_read_support_format_raw (a);
  kp_buf b = KP_BUF_INIT;
  struct archive_entry *e;
  if (archive_read_open_memory (a, data, len) != ARCHIVE_OK
      || archive_read_next_header (a, &e) != ARCHIVE_OK)
    goto fail;
  char buf[1 << 16];
  for (;;)
    {
      la_ssize_t n = archive_read_data (a, buf, sizeof buf);
      if (n < 0)
        goto fail;
      if (n == 0)
        break;
      if (b.len + (size_t) n > INDEX_MAX)
        {
          archive_read_free (a);
          kp_buf_clear (&b);
          kp_error_set (err, KP_EXIT_FAILURE, "the package index is larger than %u MiB",
                        INDEX_MAX >> 20);
          return NULL;
        }
      kp_buf_append (&b, buf, (size_t) n);
    }
  archive_read_free (a);
  *out_len = b.len;
  kp_buf_extend (&b, 0); /* an empty index is still a string */
  return kp_buf_steal (&b);
fail:
  kp_error_set (err, KP_EXIT_FAILURE, "cannot decompress the package index: %s",
                archive_error_string (a) ? archive_error_string (a) : "unknown format");
  archive_read_free (a);
  kp_buf_clear (&b);
  return NULL;
}

/* ---- the signed Release ---- */

static int
load_release (bootstrap *b, bool *from_cache, kp_error **err)
{
  kp_pull_ctx *ctx = b->ctx;
  kp_cleanup_free char *key = xasprintf ("inrelease:%s#%s", b->mirror, b->suite);
  *from_cache = false;
  if (ctx->opts->offline)
    {
      char id[KP_STORE_OBJECT_ID_LEN + 1];
      int r = kp_store_cache_get (ctx->store, key, id, err);
      if (r < 0)
        return -1;
      if (r == 0)
        {
          kp_error_set (err, KP_EXIT_FAILURE, "offline, and no InRelease of %s from %s is in "
                        "the store", b->suite, b->mirror);
          kp_error_hint (err, "bootstrap it once with the network first");
          return -1;
        }
      b->inrelease = kp_store_get (ctx->store, id, INRELEASE_MAX, &b->inrelease_len, err);
      if (b->inrelease == NULL)
        return -1;
      *from_cache = true;
    }
  else
    {
      kp_cleanup_free char *rel = xasprintf ("dists/%s/InRelease", b->suite);
      if (fetch_small (b, rel, INRELEASE_MAX, &b->inrelease, &b->inrelease_len, err) < 0)
        return kp_error_prefix (err, "fetch the InRelease of %s", b->suite);
    }
  kp_digest_buffer (KP_DIGEST_SHA256, b->inrelease, b->inrelease_len, b->inrelease_sha256);

  const kp_image_config *cfg = ctx->opts->config;
  const char *dir = cfg && cfg->keyring_dir ? cfg->keyring_dir : "/usr/share/keyrings";
  kp_cleanup_free char *keyring = xasprintf ("%s/%s-archive-keyring.gpg", dir,
                                             b->distribution);
  if (access (keyring, R_OK) < 0)
    {
      kp_error_errno (err, errno, "the %s archive keyring %s", b->distribution, keyring);
      kp_error_hint (err, "install it (apt-get install %s), or set keyring_dir in [mirrors] of "
                          "config.toml",
                     strcmp (b->distribution, "ubuntu") == 0 ? "ubuntu-keyring"
                                                             : "debian-archive-keyring");
      return -1;
    }
  kp_cleanup_free char *text = NULL;
  size_t len = 0;
  if (kp_debian_verify_inrelease (b->inrelease, b->inrelease_len, keyring, &text, &len, err)
      < 0)
    return kp_error_prefix (err, "%s/dists/%s/InRelease", b->mirror, b->suite);
  if (kp_release_parse (text, len, &b->release, err) < 0)
    return kp_error_prefix (err, "the Release of %s", b->suite);
  /* A genuine Release of another suite (a replay, a misconfigured mirror) is not this one. */
  if (!kp_str_equal0 (b->release.suite, b->suite) && !kp_str_equal0 (b->release.codename, b->suite))
    return kp_error_set (err, KP_EXIT_FAILURE, "%s/dists/%s/InRelease is signed but describes "
                         "suite '%s' (codename '%s')", b->mirror, b->suite,
                         b->release.suite ? b->release.suite : "?",
                         b->release.codename ? b->release.codename : "?");
  return 0;
}

/* ---- the package index ---- */

static int
load_index (bootstrap *b, kp_error **err)
{
  kp_pull_ctx *ctx = b->ctx;
  static const char *const suffixes[] = { ".xz", ".gz", "" };
  const kp_release_file *f = NULL;
  kp_cleanup_free char *path = NULL;
  for (size_t i = 0; f == NULL && i < KP_N_ELEMENTS (suffixes); i++)
    {
      free (path);
      path = xasprintf ("main/binary-%s/Packages%s", b->arch, suffixes[i]);
      f = kp_release_find (&b->release, path);
    }
  if (f == NULL)
    return kp_error_set (err, KP_EXIT_FAILURE, "the Release of %s names no package index for "
                         "main/binary-%s", b->suite, b->arch);
  kp_cleanup_free char *key = xasprintf ("sha256:%s", f->sha256);
  char id[KP_STORE_OBJECT_ID_LEN + 1];
  int r = kp_store_cache_get (ctx->store, key, id, err);
  if (r < 0)
    return -1;
  kp_cleanup_free char *data = NULL;
  size_t len = 0;
  if (r == 1)
    {
      data = kp_store_get (ctx->store, id, f->size + 1, &len, err);
      if (data == NULL)
        return -1;
    }
  else if (ctx->opts->offline)
    return kp_error_set (err, KP_EXIT_FAILURE, "offline, and the package index %s of %s is "
                         "not in the store", path, b->suite);
  else
    {
      kp_cleanup_free char *rel = xasprintf ("dists/%s/%s", b->suite, path);
      kp_pull_progress_report ("Packages", 0, f->size, false, ctx->progress);
      if (fetch_small (b, rel, f->size + 1, &data, &len, err) < 0)
        return kp_error_prefix (err, "fetch the package index");
      b->index_bytes = len;
      kp_pull_progress_report ("Packages", len, f->size, true, ctx->progress);
    }
  char got[KP_DIGEST_STRING_MAX];
  kp_digest_buffer (KP_DIGEST_SHA256, data, len, got);
  if (len != f->size || strcmp (got + 7, f->sha256) != 0)
    {
      kp_error_set (err, KP_EXIT_FAILURE, "%s/dists/%s/%s does not match the signed Release: "
                    "SHA256 %s (%zu bytes), the Release says %s (%llu bytes)", b->mirror,
                    b->suite, path, got + 7, len, f->sha256, (unsigned long long) f->size);
      kp_error_hint (err, "the mirror is out of sync or the file was altered; nothing of it "
                          "was kept — try again later or another mirror");
      return -1;
    }
  if (r == 0)
    {
      if (kp_store_put (ctx->store, data, len, id, err) < 0
          || kp_store_cache_set (ctx->store, key, id, err) < 0)
        return -1;
    }
  size_t tlen = 0;
  kp_cleanup_free char *text = decompress (data, len, &tlen, err);
  if (text == NULL)
    return kp_error_prefix (err, "%s", path);
  if (kp_deb_index_parse (text, tlen, &b->index, err) < 0)
    return kp_error_prefix (err, "%s", path);
  return 0;
}

/* ---- the package set ---- */

/* Does `clause` ("a (>= 1) | b:any") name a package of the set that is not yet installed
 * (round < 0) while none of its alternatives is? Names outside the set (virtual ones, or
 * satisfied by Provides) count as satisfied: dpkg is the judge of those. */
static bool
clause_waits (const bootstrap *b, const char *clause)
{
  bool any_in_set = false;
  const char *alt = clause;
  while (alt && *alt)
    {
      while (*alt == ' ' || *alt == '|')
        alt++;
      size_t len = strcspn (alt, " (|:");
      for (size_t i = 0; i < b->n; i++)
        {
          const char *name = b->debs[i].pkg->name;
          if (strlen (name) == len && strncmp (name, alt, len) == 0)
            {
              if (b->debs[i].round >= 0)
                return false;
              any_in_set = true;
            }
        }
      alt = strchr (alt, '|');
    }
  return any_in_set;
}

/* dpkg --install unpacks a package only once its Pre-Depends are configured, and it
 * configures nothing between the unpacks of one run: so the packages go in rounds, each
 * one's Pre-Depends installed by an earlier round (a cycle is broken by taking the rest). */
static void
plan_rounds (bootstrap *b)
{
  size_t left = 0;
  for (size_t i = 0; i < b->n; i++)
    {
      b->debs[i].round = b->debs[i].essential ? 0 : -1;
      left += !b->debs[i].essential;
    }
  for (int round = 1; left > 0; round++)
    {
      size_t placed = 0;
      for (size_t i = 0; i < b->n; i++)
        {
          if (b->debs[i].round >= 0)
            continue;
          const char *pre = b->debs[i].pkg->pre_depends;
          bool waits = false;
          kp_cleanup_free char *copy = pre ? xstrdup (pre) : NULL;
          for (char *save = NULL, *c = copy ? strtok_r (copy, ",", &save) : NULL; c && !waits;
               c = strtok_r (NULL, ",", &save))
            waits = clause_waits (b, c);
          if (!waits)
            {
              b->debs[i].round = -2 - round; /* placed in this round, visible after it */
              placed++;
            }
        }
      if (placed == 0)
        for (size_t i = 0; i < b->n; i++)
          if (b->debs[i].round == -1)
            {
              b->debs[i].round = -2 - round;
              placed++;
            }
      for (size_t i = 0; i < b->n; i++)
        if (b->debs[i].round == -2 - round)
          b->debs[i].round = round;
      left -= placed;
      b->rounds = round;
    }
}


static int
resolve (bootstrap *b, kp_error **err)
{
  /* minbase: required + Essential + apt; standard adds important and standard. */
  kp_cleanup_strv char **extra = xcalloc (2, sizeof (char *));
  size_t n_extra = 0;
  extra[n_extra++] = xstrdup ("apt");
  if (strcmp (b->variant, "standard") == 0)
    for (size_t i = 0; i < b->index.n; i++)
      {
        const kp_deb_package *p = &b->index.pkgs[i];
        if (i > 0 && strcmp (b->index.pkgs[i - 1].name, p->name) == 0)
          continue; /* newest first: the first of a name is the one */
        if (p->priority && (strcmp (p->priority, "important") == 0
                            || strcmp (p->priority, "standard") == 0))
          {
            extra = xreallocarray (extra, n_extra + 2, sizeof (char *));
            extra[n_extra++] = xstrdup (p->name);
          }
      }
  extra[n_extra] = NULL;
  kp_cleanup_free const kp_deb_package **chosen = NULL;
  size_t n = 0;
  if (kp_deb_resolve (&b->index, true, (const char *const *) extra, &chosen, &n, err) < 0)
    return kp_error_prefix (err, "resolve the %s set of %s", b->variant, b->suite);

  /* The Essential set, closed over its dependencies, is what stage 1 unpacks and the first
     dpkg run installs (what of it the whole set also has). */
  kp_cleanup_strv char **names = xcalloc (1, sizeof (char *));
  size_t n_names = 0;
  for (size_t i = 0; i < b->index.n; i++)
    {
      const kp_deb_package *p = &b->index.pkgs[i];
      if (!p->essential || (i > 0 && strcmp (b->index.pkgs[i - 1].name, p->name) == 0))
        continue;
      names = xreallocarray (names, n_names + 2, sizeof (char *));
      names[n_names++] = xstrdup (p->name);
      names[n_names] = NULL;
    }
  kp_cleanup_free const kp_deb_package **essential = NULL;
  size_t n_essential = 0;
  if (kp_deb_resolve (&b->index, false, (const char *const *) names, &essential, &n_essential,
                      err) < 0)
    return kp_error_prefix (err, "resolve the Essential set of %s", b->suite);

  b->debs = xcalloc (n, sizeof *b->debs);
  b->n = n;
  for (size_t i = 0; i < n; i++)
    {
      b->debs[i].pkg = chosen[i];
      b->debs[i].file = deb_file_name (chosen[i]);
      for (size_t j = 0; j < n_essential; j++)
        if (essential[j] == chosen[i])
          b->debs[i].essential = true;
    }
  plan_rounds (b);
  return 0;
}

/* ---- downloads ---- */

typedef struct deb_download
{
  bootstrap *b;
  kp_store_writer *w;
  kp_digest *sha;
  uint64_t got;
} deb_download;

static int
deb_sink (const void *data, size_t len, void *user_data, kp_error **err)
{
  deb_download *d = user_data;
  kp_digest_update (d->sha, data, len);
  d->got += len;
  pthread_mutex_lock (&d->b->lock);
  d->b->done_bytes += len;
  uint64_t now = d->b->done_bytes, total = d->b->total_bytes;
  pthread_mutex_unlock (&d->b->lock);
  kp_pull_progress_report ("packages", now, total, false, d->b->ctx->progress);
  return kp_store_writer_write (d->w, data, len, err);
}

static int
download_one (kp_http *http, size_t index, void *user_data, kp_error **err)
{
  bootstrap *b = user_data;
  deb_item *it = &b->debs[b->todo[index]];
  const kp_deb_package *p = it->pkg;
  kp_cleanup_free char *url = xasprintf ("%s/%s", b->mirror, p->filename);
  for (int attempt = 0;; attempt++)
    {
      deb_download d = { b, kp_store_writer_new (b->ctx->store, err),
                         kp_digest_new (KP_DIGEST_SHA256), 0 };
      if (d.w == NULL)
        {
          kp_digest_free (d.sha);
          return -1;
        }
      kp_http_request req = { .url = url, .insecure = b->insecure, .sink = deb_sink,
                              .sink_data = &d };
      kp_cleanup_http_response kp_http_response resp = { 0 };
      int r = kp_http_get (http, &req, &resp, err);
      char got[KP_DIGEST_STRING_MAX];
      kp_digest_final (d.sha, got);
      kp_digest_free (d.sha);
      if (r == 0 && resp.status == 200 && d.got == p->size && strcmp (got + 7, p->sha256) == 0)
        {
          if (kp_store_writer_commit (d.w, it->object, err) < 0)
            return -1;
          it->fetched = true;
          return 0;
        }
      kp_store_writer_abort (d.w);
      pthread_mutex_lock (&b->lock);
      b->done_bytes -= d.got;
      pthread_mutex_unlock (&b->lock);
      /* A broken connection is tried again once; a wrong answer is not. */
      if (r < 0 && attempt == 0)
        {
          kp_error_free (err ? kp_steal_pointer (err) : NULL);
          continue;
        }
      if (r < 0)
        return kp_error_prefix (err, "download %s", p->filename);
      if (resp.status != 200)
        return kp_error_set (err, KP_EXIT_FAILURE, "%s answered HTTP %ld", url, resp.status);
      kp_error_set (err, KP_EXIT_FAILURE, "%s (%s.deb): SHA256 %s (%llu bytes), the Packages "
                    "index says %s (%llu bytes)", url, p->name, got + 7,
                    (unsigned long long) d.got, p->sha256, (unsigned long long) p->size);
      kp_error_hint (err, "the mirror is out of sync or the file was altered; it was not "
                          "kept — try again later or another mirror");
      return -1;
    }
}

static int
fetch_debs (bootstrap *b, uint64_t *downloaded, unsigned *requests, kp_error **err)
{
  kp_pull_ctx *ctx = b->ctx;
  b->todo = xcalloc (b->n + 1, sizeof *b->todo);
  for (size_t i = 0; i < b->n; i++)
    {
      deb_item *it = &b->debs[i];
      kp_cleanup_free char *key = xasprintf ("sha256:%s", it->pkg->sha256);
      int r = kp_store_cache_get (ctx->store, key, it->object, err);
      if (r < 0)
        return -1;
      if (r == 1)
        {
          /* Checked again on the way out: a flipped bit in the store is not installed. */
          uint64_t size = 0;
          kp_cleanup_error kp_error *bad = NULL;
          if (kp_store_verify_object (ctx->store, it->object, &size, &bad) == 0
              && size == it->pkg->size)
            {
              it->have = true;
              continue;
            }
        }
      b->todo[b->n_todo++] = i;
      b->total_bytes += it->pkg->size;
    }
  if (b->n_todo == 0)
    return 0;
  if (ctx->opts->offline)
    {
      deb_item *first = &b->debs[b->todo[0]];
      kp_error_set (err, KP_EXIT_FAILURE, "offline, and %zu of the %zu packages are not in the "
                    "store (%s %s first)", b->n_todo, b->n, first->pkg->name,
                    first->pkg->version);
      kp_error_hint (err, "bootstrap it once with the network first");
      return -1;
    }
  int r = kp_http_run_parallel (ctx->http, b->n_todo, 8, download_one, b, err);
  /* What arrived intact is kept for the next pull, even when another package failed. */
  for (size_t k = 0; k < b->n_todo; k++)
    {
      deb_item *it = &b->debs[b->todo[k]];
      if (!it->fetched)
        continue;
      kp_cleanup_free char *key = xasprintf ("sha256:%s", it->pkg->sha256);
      kp_cleanup_error kp_error *cache_err = NULL;
      if (kp_store_cache_set (ctx->store, key, it->object, r < 0 ? &cache_err : err) < 0
          && r == 0)
        return -1;
      it->have = true;
    }
  if (r < 0)
    return -1;
  kp_pull_progress_report ("packages", b->total_bytes, b->total_bytes, true, ctx->progress);
  *downloaded += b->total_bytes;
  *requests += (unsigned) b->n_todo;
  return 0;
}

/* ---- stage 1: in the store's user namespace ---- */

/* The data.tar member of a .deb, decompressed or not, copied into a memfd. */
static int
deb_data_fd (const char *path, kp_error **err)
{
  struct archive *a = archive_read_new ();
  archive_read_support_format_ar (a);
  int fd = -1;
  struct archive_entry *e;
  if (archive_read_open_filename (a, path, 1 << 16) != ARCHIVE_OK)
    goto fail;
  int r;
  while ((r = archive_read_next_header (a, &e)) == ARCHIVE_OK)
    {
      const char *name = archive_entry_pathname (e);
      if (name == NULL || !kp_str_has_prefix (name, "data.tar"))
        continue;
      fd = memfd_create ("data.tar", MFD_CLOEXEC);
      if (fd < 0)
        {
          archive_read_free (a);
          return kp_error_errno (err, errno, "memfd_create");
        }
      if (archive_read_data_into_fd (a, fd) != ARCHIVE_OK || lseek (fd, 0, SEEK_SET) < 0)
        goto fail;
      archive_read_free (a);
      return fd;
    }
  if (r == ARCHIVE_EOF)
    {
      archive_read_free (a);
      return kp_error_set (err, KP_EXIT_FAILURE, "%s has no data.tar member", path);
    }
fail:
  kp_error_set (err, KP_EXIT_FAILURE, "read %s: %s", path,
                archive_error_string (a) ? archive_error_string (a) : "not a .deb");
  archive_read_free (a);
  if (fd >= 0)
    close (fd);
  return -1;
}

static int
write_at (int dirfd, const char *rel, const char *text, mode_t mode, kp_error **err)
{
  kp_cleanup_close int fd = openat (dirfd, rel, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW
                                    | O_CLOEXEC, mode);
  if (fd < 0 || kp_write_all (fd, text, strlen (text)) < 0 || fchmod (fd, mode) < 0)
    return kp_error_errno (err, errno, "write /%s", rel);
  return 0;
}

static int
mkdirs_at (int dirfd, const char *rel, kp_error **err)
{
  kp_cleanup_free char *copy = xstrdup (rel);
  for (char *s = copy;; s++)
    {
      if (*s == '/' || *s == '\0')
        {
          char c = *s;
          *s = '\0';
          if (mkdirat (dirfd, copy, 0755) < 0 && errno != EEXIST)
            return kp_error_errno (err, errno, "create /%s", copy);
          if (c == '\0')
            break;
          *s = c;
        }
    }
  return 0;
}

static int
stage1 (void *data, kp_error **err)
{
  bootstrap *b = data;
  kp_cleanup_close int root = open (b->tree, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (root < 0)
    return kp_error_errno (err, errno, "open the new tree");
  if (b->merged_usr)
    {
      static const char *const links[] = { "bin", "sbin", "lib", NULL };
      if (mkdirat (root, "usr", 0755) < 0 && errno != EEXIST)
        return kp_error_errno (err, errno, "create /usr");
      for (size_t i = 0; links[i]; i++)
        {
          kp_cleanup_free char *dir = xasprintf ("usr/%s", links[i]);
          kp_cleanup_free char *target = xasprintf ("usr/%s", links[i]);
          if (mkdirs_at (root, dir, err) < 0)
            return -1;
          if (symlinkat (target, root, links[i]) < 0)
            return kp_error_errno (err, errno, "link /%s to /usr/%s", links[i], links[i]);
        }
      /* The dynamic loader's directory of the architecture. */
      const char *extra = strcmp (b->arch, "amd64") == 0     ? "lib64"
                          : strcmp (b->arch, "ppc64el") == 0 ? "lib64"
                          : strcmp (b->arch, "s390x") == 0   ? "lib64"
                          : strcmp (b->arch, "riscv64") == 0 ? "lib64"
                                                             : NULL;
      if (extra)
        {
          kp_cleanup_free char *dir = xasprintf ("usr/%s", extra);
          if (mkdirs_at (root, dir, err) < 0 || symlinkat (dir, root, extra) < 0)
            return kp_error_errno (err, errno, "link /%s into /usr", extra);
        }
    }
  static const char *const dirs[] = { "var/lib/dpkg/info", "var/lib/dpkg/updates",
                                      "var/lib/dpkg/triggers", "var/lib/dpkg/parts",
                                      "var/lib/dpkg/alternatives", "etc/apt/apt.conf.d",
                                      "etc/apt/sources.list.d", "etc/apt/preferences.d",
                                      "var/lib/apt/lists/partial",
                                      "var/cache/apt/archives/partial", "var/log/apt",
                                      "usr/sbin", "tmp", NULL };
  for (size_t i = 0; dirs[i]; i++)
    if (mkdirs_at (root, dirs[i], err) < 0)
      return -1;
  if (fchmodat (root, "tmp", 01777, 0) < 0)
    return kp_error_errno (err, errno, "chmod /tmp");
  kp_cleanup_free char *arch = xasprintf ("%s\n", b->arch);
  if (write_at (root, "var/lib/dpkg/status", "", 0644, err) < 0
      || write_at (root, "var/lib/dpkg/available", "", 0644, err) < 0
      || write_at (root, "var/lib/dpkg/arch", arch, 0644, err) < 0
      /* No service starts while packages are configured. */
      || write_at (root, "usr/sbin/policy-rc.d", "#!/bin/sh\nexit 101\n", 0755, err) < 0)
    return -1;

  kp_unpack_options opts = { .preserve_owner = true, .keep_setid = true,
                             .merged_usr = b->merged_usr };
  for (size_t i = 0; i < b->n; i++)
    {
      if (!b->debs[i].essential)
        continue;
      kp_cleanup_free char *path = xasprintf ("%s/%s", b->debs_dir, b->debs[i].file);
      kp_cleanup_close int fd = deb_data_fd (path, err);
      if (fd < 0)
        return -1;
      if (kp_archive_unpack (fd, root, &opts, NULL, err) < 0)
        return kp_error_prefix (err, "unpack %s", b->debs[i].file);
    }
  return 0;
}

/* ---- stage 2: the guest's dpkg, in a sandbox whose root is the tree ---- */

static int
dpkg_run (kp_holder *h, bootstrap *b, int round, kp_error **err)
{
  bool essential = round == 0;
  kp_buf cmd = KP_BUF_INIT;
  kp_buf_printf (&cmd, "exec >%s 2>&1; cd %s && dpkg --force-unsafe-io%s --install",
                 LOG_FILE, DEBS_DIR, essential ? " --force-depends" : "");
  size_t count = 0;
  for (size_t i = 0; i < b->n; i++)
    if (b->debs[i].round == round)
      {
        kp_buf_printf (&cmd, " ./%s", b->debs[i].file);
        count++;
      }
  if (count == 0)
    {
      kp_buf_clear (&cmd);
      return 0;
    }
  kp_cleanup_free char *script = kp_buf_steal (&cmd);
  kp_cleanup_free char *epoch = xasprintf ("SOURCE_DATE_EPOCH=%lld", (long long) b->epoch);
  char *const argv[] = { (char *) "/bin/sh", (char *) "-c", script, NULL };
  char *const envp[] = { (char *) "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
                         (char *) "DEBIAN_FRONTEND=noninteractive",
                         (char *) "DEBCONF_NONINTERACTIVE_SEEN=true",
                         (char *) "LC_ALL=C", (char *) "LANG=C", (char *) "HOME=/root",
                         (char *) "TZ=UTC", epoch, NULL };
  kp_session_spec s = { .argv = argv, .envp = envp, .as_root = true,
                        .seccomp = KP_SECCOMP_DEFAULT, .no_tty_control = true };
  int status = 0;
  char label[64], detail[64];
  if (essential)
    snprintf (label, sizeof label, "install (Essential)");
  else
    snprintf (label, sizeof label, "install (%d of %d)", round, b->rounds);
  snprintf (detail, sizeof detail, "%zu package%s, with dpkg", count, count == 1 ? "" : "s");
  kp_pull_progress_step (label, detail, false, b->ctx->progress);
  if (kp_holder_join (h, &s, &status, err) < 0)
    return -1;
  kp_pull_progress_step (label, detail, true, b->ctx->progress);
  if (status != 0)
    {
      kp_cleanup_free char *log_path = xasprintf ("%s%s", b->tree, LOG_FILE);
      size_t len = 0;
      kp_cleanup_free char *log = kp_file_read (log_path, 1 << 20, &len, NULL);
      /* dpkg's own complaints, then the end of the log. */
      kp_buf shown = KP_BUF_INIT;
      const char *text = log ? log : "";
      size_t complaints = 0;
      bool in_error = false;
      for (const char *line = text; *line && complaints < 16;)
        {
          const char *nl = strchr (line, '\n');
          size_t ll = nl ? (size_t) (nl - line) : strlen (line);
          if (line[0] != ' ')
            in_error = strncmp (line, "dpkg: error", 11) == 0
                       || memmem (line, ll, "rror", 4) != NULL;
          if (in_error)
            {
              kp_buf_append (&shown, line, ll);
              kp_buf_putc (&shown, '\n');
              complaints++;
            }
          line = nl ? nl + 1 : line + ll;
        }
      const char *tail = text;
      size_t lines = 0;
      for (const char *c = text + strlen (text); c > text; c--)
        if (c[-1] == '\n' && ++lines > 6)
          {
            tail = c;
            break;
          }
      kp_buf_printf (&shown, "...\n%s", tail);
      kp_error_set (err, KP_EXIT_FAILURE, "dpkg failed (status %d) installing the %s packages "
                    "of %s:\n%s", status, essential ? "Essential" : "other", b->suite,
                    kp_buf_str (&shown));
      kp_buf_clear (&shown);
      kp_error_hint (err, "the packages were verified, so this is the suite's own problem or "
                          "the sandbox's; 'karapace doctor' checks the sandbox");
      return -1;
    }
  return 0;
}

static int
stage2 (bootstrap *b, kp_error **err)
{
  kp_bind bind = { .source = b->debs_dir, .target = DEBS_DIR, .readonly = true };
  kp_sandbox_spec spec = { .rootfs = b->tree,
                           .binds = &bind,
                           .n_binds = 1,
                           .hostname = "karapace",
                           .network = KP_NET_NONE,
                           .name = "bootstrap",
                           .seccomp = KP_SECCOMP_DEFAULT };
  kp_holder *h = kp_holder_start (&spec, err);
  if (h == NULL)
    return kp_error_prefix (err, "start the bootstrap sandbox");
  int r = 0;
  for (int round = 0; r == 0 && round <= b->rounds; round++)
    r = dpkg_run (h, b, round, err);
  kp_holder_release (h);
  return r;
}

/* ---- stage 3: what differs from run to run goes ---- */

static int
remove_glob_like (int root, const char *dir, const char *suffix, kp_error **err)
{
  kp_cleanup_close int fd = openat (root, dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return errno == ENOENT ? 0 : kp_error_errno (err, errno, "open /%s", dir);
  kp_cleanup_dir DIR *d = kp_dir_open_at (fd, NULL);
  if (d == NULL)
    return kp_error_errno (err, errno, "list /%s", dir);
  struct dirent *de;
  while ((de = readdir (d)) != NULL)
    {
      if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
        continue;
      if (suffix && !kp_str_has_suffix (de->d_name, suffix))
        continue;
      if (suffix == NULL && strcmp (de->d_name, "partial") == 0)
        continue;
      int r = kp_remove_tree_at (fd, de->d_name);
      if (r < 0 && r != -ENOENT)
        return kp_error_errno (err, -r, "remove /%s/%s", dir, de->d_name);
    }
  return 0;
}

static bool
is_empty_file (int root, const char *rel)
{
  struct stat st;
  return fstatat (root, rel, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG (st.st_mode)
         && st.st_size == 0;
}

static int
stage3 (void *data, kp_error **err)
{
  bootstrap *b = data;
  kp_cleanup_close int root = open (b->tree, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (root < 0)
    return kp_error_errno (err, errno, "open the new tree");
  /* Files of the run: logs, caches, backups, the bootstrap's own helpers. */
  static const char *const files[] = {
    "usr/sbin/policy-rc.d", "var/log/dpkg.log", "var/log/alternatives.log",
    "var/log/bootstrap.log", "var/cache/ldconfig/aux-cache", "etc/machine-id",
    "var/lib/dbus/machine-id", "var/lib/dpkg/status-old", "var/lib/dpkg/available-old",
    "var/lib/dpkg/diversions-old", "var/lib/dpkg/statoverride-old",
    "var/cache/debconf/config.dat-old", "var/cache/debconf/templates.dat-old",
    "var/cache/debconf/passwords.dat-old", "etc/passwd-", "etc/group-", "etc/shadow-",
    "etc/gshadow-", "etc/subuid-", "etc/subgid-", "var/lib/systemd/random-seed",
    "var/cache/apt/pkgcache.bin", "var/cache/apt/srcpkgcache.bin", NULL };
  for (size_t i = 0; files[i]; i++)
    if (unlinkat (root, files[i], 0) < 0 && errno != ENOENT)
      return kp_error_errno (err, errno, "remove /%s", files[i]);
  /* Mount points the sandbox made, unless the packages ship them. */
  static const char *const mount_files[] = { "etc/hosts", "etc/resolv.conf", NULL };
  for (size_t i = 0; mount_files[i]; i++)
    if (is_empty_file (root, mount_files[i]) && unlinkat (root, mount_files[i], 0) < 0)
      return kp_error_errno (err, errno, "remove /%s", mount_files[i]);
  int r = kp_remove_tree_at (root, &DEBS_DIR[1]);
  if (r < 0 && r != -ENOENT)
    return kp_error_errno (err, -r, "remove %s", DEBS_DIR);
  if (remove_glob_like (root, "dev", NULL, err) < 0 || remove_glob_like (root, "tmp", NULL, err) < 0
      || remove_glob_like (root, "run", NULL, err) < 0
      || remove_glob_like (root, "var/log/apt", NULL, err) < 0
      || remove_glob_like (root, "var/cache/apt/archives", ".deb", err) < 0
      || remove_glob_like (root, "var/lib/apt/lists", NULL, err) < 0)
    return -1;
  static const char *const keep_dirs[] = { "dev", "proc", "sys", "run", "tmp", "root", NULL };
  for (size_t i = 0; keep_dirs[i]; i++)
    if (mkdirat (root, keep_dirs[i], 0755) < 0 && errno != EEXIST)
      return kp_error_errno (err, errno, "create /%s", keep_dirs[i]);
  if (fchmodat (root, "tmp", 01777, 0) < 0)
    return kp_error_errno (err, errno, "chmod /tmp");
  /* apt, inside, reads from the mirror it came from. */
  kp_cleanup_free char *sources
      = xasprintf ("deb %s %s main\n", b->mirror, b->suite);
  if (write_at (root, "etc/apt/sources.list", sources, 0644, err) < 0)
    return -1;
  return 0;
}

/* ---- the whole build ---- */

static int
link_debs (bootstrap *b, kp_error **err)
{
  if (mkdir (b->debs_dir, 0755) < 0)
    return kp_error_errno (err, errno, "create %s", b->debs_dir);
  for (size_t i = 0; i < b->n; i++)
    {
      kp_cleanup_free char *from = object_path (b->ctx->store, b->debs[i].object);
      kp_cleanup_free char *to = xasprintf ("%s/%s", b->debs_dir, b->debs[i].file);
      if (link (from, to) == 0)
        continue;
      /* Another file system or no right to link: a copy. */
      kp_cleanup_close int in = open (from, O_RDONLY | O_CLOEXEC);
      kp_cleanup_close int out = open (to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
      if (in < 0 || out < 0)
        return kp_error_errno (err, errno, "copy %s", b->debs[i].file);
      ssize_t n;
      while ((n = copy_file_range (in, NULL, out, NULL, 1 << 30, 0)) > 0)
        ;
      if (n < 0)
        return kp_error_errno (err, errno, "copy %s", b->debs[i].file);
    }
  return 0;
}

static int
build_tree (const char *tree, void *data, kp_error **err)
{
  bootstrap *b = data;
  b->tree = xstrdup (tree);
  b->debs_dir = xasprintf ("%s.debs", tree);
  int r = link_debs (b, err);
  if (r == 0)
    {
      size_t n_essential = 0;
      for (size_t i = 0; i < b->n; i++)
        n_essential += b->debs[i].essential;
      char detail[64];
      snprintf (detail, sizeof detail, "%zu Essential packages", n_essential);
      kp_pull_progress_step ("unpack", detail, false, b->ctx->progress);
      r = kp_userns_run (stage1, b, err);
      kp_pull_progress_step ("unpack", detail, r == 0, b->ctx->progress);
    }
  if (r == 0)
    r = stage2 (b, err);
  if (r == 0)
    {
      kp_pull_progress_step ("clean up", "logs, caches, mount points", false, b->ctx->progress);
      r = kp_userns_run (stage3, b, err);
      kp_pull_progress_step ("clean up", "logs, caches, mount points", r == 0, b->ctx->progress);
    }
  kp_remove_tree_at (AT_FDCWD, b->debs_dir);
  return r;
}

/* The identity of a bootstrap: what it was made from, as canonical JSON. */
static json_t *
describe (bootstrap *b)
{
  json_t *pkgs = json_array ();
  for (size_t i = 0; i < b->n; i++)
    {
      const kp_deb_package *p = b->debs[i].pkg;
      json_array_append_new (pkgs, json_pack ("{s:s,s:s,s:s,s:s,s:I}", "name", p->name,
                                              "version", p->version, "architecture", p->arch,
                                              "sha256", p->sha256, "size",
                                              (json_int_t) p->size));
    }
  return json_pack ("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:I,s:o}", "source", "debian-mirror",
                    "distribution", b->distribution, "mirror", b->mirror, "suite", b->suite,
                    "variant", b->variant, "architecture", b->arch, "inrelease",
                    b->inrelease_sha256, "source_date_epoch", (json_int_t) b->epoch,
                    "packages", pkgs);
}

static void
bootstrap_clear (bootstrap *b)
{
  free (b->mirror);
  free (b->inrelease);
  kp_release_clear (&b->release);
  kp_deb_index_clear (&b->index);
  for (size_t i = 0; i < b->n; i++)
    free (b->debs[i].file);
  free (b->debs);
  free (b->todo);
  free (b->tree);
  free (b->debs_dir);
  pthread_mutex_destroy (&b->lock);
}

int
kp_pull_debian (kp_pull_ctx *ctx, kp_pull_result *out, kp_error **err)
{
  const kp_image_ref *ref = ctx->ref;
  const kp_image_config *cfg = ctx->opts->config;
  bootstrap b = { .ctx = ctx, .distribution = ref->distribution, .suite = ref->suite,
                  .variant = ref->variant ? ref->variant : "minbase" };
  pthread_mutex_init (&b.lock, NULL);
  int rc = -1;
  bool is_ubuntu = strcmp (ref->distribution, "ubuntu") == 0;
  if (ref->mirror)
    b.mirror = xstrdup (ref->mirror);
  else if (cfg)
    b.mirror = xstrdup (is_ubuntu ? cfg->ubuntu_mirror : cfg->debian_mirror);
  else
    b.mirror = xstrdup (is_ubuntu ? "http://archive.ubuntu.com/ubuntu"
                                  : "http://deb.debian.org/debian");
  snprintf (b.arch, sizeof b.arch, "%s", host_arch ());
  b.merged_usr = suite_is_merged_usr (b.suite);
  /* Plain HTTP is how Debian mirrors are served: the signatures are what is trusted. */
  if (kp_str_has_prefix (b.mirror, "http://"))
    b.insecure = true;
  else
    {
      kp_cleanup_free char *host = xstrdup (b.mirror + 8);
      host[strcspn (host, "/")] = '\0';
      b.insecure = kp_pull_insecure_for (ctx->opts, host);
    }
  kp_cleanup_free char *tag_key = xasprintf ("%s|%s|%s", ref->canonical, b.mirror, b.arch);
  kp_cleanup_free char *release_key = NULL;

  /* Offline with a complete image: nothing to check against anyway. */
  if (ctx->opts->offline)
    {
      kp_cleanup_free char *cached = kp_pull_cached_digest (ctx, tag_key);
      if (cached)
        {
          rc = kp_pull_use_record (ctx, cached, tag_key, out, err);
          goto out;
        }
    }
  bool release_cached = false;
  if (load_release (&b, &release_cached, err) < 0)
    goto out;
  if (!release_cached)
    {
      out->bytes += b.inrelease_len;
      out->requests++;
    }
  /* The same signed Release as the image we have: nothing changed. */
  {
    kp_cleanup_free char *cached = kp_pull_cached_digest (ctx, tag_key);
    if (cached)
      {
        kp_cleanup_image_record kp_image_record *rec = kp_store_image_read (ctx->store, cached,
                                                                             NULL);
        const char *had = rec ? json_string_value (json_object_get (rec->extra, "inrelease"))
                              : NULL;
        if (kp_str_equal0 (had, b.inrelease_sha256))
          {
            rc = kp_pull_use_record (ctx, cached, tag_key, out, err);
            goto out;
          }
      }
  }
  const char *sde = getenv ("SOURCE_DATE_EPOCH");
  if (sde && *sde)
    {
      char *end;
      long long v = strtoll (sde, &end, 10);
      if (*end != '\0' || v < 0)
        {
          kp_error_set (err, KP_EXIT_USAGE, "SOURCE_DATE_EPOCH='%s' is not a number of seconds",
                        sde);
          goto out;
        }
      b.epoch = v;
    }
  else
    b.epoch = b.release.date_epoch > 0 ? b.release.date_epoch : 0;

  if (load_index (&b, err) < 0 || resolve (&b, err) < 0)
    goto out;
  if (b.index_bytes > 0)
    {
      out->bytes += b.index_bytes;
      out->requests++;
    }
  {
    uint64_t total = 0;
    for (size_t i = 0; i < b.n; i++)
      total += b.debs[i].pkg->size;
    kp_buf names = KP_BUF_INIT;
    kp_buf_printf (&names, "%s %s (%s, %s): %zu packages, %.1f MB:", b.distribution, b.suite,
                   b.variant, b.arch, b.n, (double) total / 1e6);
    /* Wrapped as a terminal would show it, indented. */
    size_t col = 80;
    for (size_t i = 0; i < b.n; i++)
      {
        const char *name = b.debs[i].pkg->name ? b.debs[i].pkg->name : "?";
        if (col + 1 + strlen (name) > 78)
          {
            kp_buf_puts (&names, "\n   ");
            col = 3;
          }
        kp_buf_printf (&names, " %s", name);
        col += 1 + strlen (name);
      }
    kp_buf_putc (&names, '\n');
    kp_pull_progress_print (ctx->progress, kp_buf_str (&names));
    kp_buf_clear (&names);
  }
  if (fetch_debs (&b, &out->bytes, &out->requests, err) < 0)
    goto out;

  /* dpkg gives files to many owners (root, man, mail, …): that needs subordinate ids. */
  if (geteuid () != 0)
    {
      kp_idmap map;
      if (kp_idmap_for_caller (&map, err) < 0)
        goto out;
      if (!map.full)
        {
          kp_error_set (err, KP_EXIT_RUNTIME, "bootstrapping %s needs subordinate ids, and "
                        "this user has none in /etc/subuid and /etc/subgid", ref->canonical);
          kp_error_hint (err, "ask an administrator for a range (usermod --add-subuids "
                              "100000-165535 --add-subgids 100000-165535 USER); 'karapace "
                              "doctor' checks it");
          goto out;
        }
    }
  char tree[KP_BLAKE3_HEX_LEN + 1];
  if (kp_store_layer_build (ctx->store, KP_LAYER_BASE, build_tree, &b, tree, err) < 0)
    {
      kp_error_prefix (err, "bootstrap %s", ref->canonical);
      goto out;
    }
  char inrelease_id[KP_STORE_OBJECT_ID_LEN + 1];
  release_key = xasprintf ("inrelease:%s#%s", b.mirror, b.suite);
  if (kp_store_put (ctx->store, b.inrelease, b.inrelease_len, inrelease_id, err) < 0
      || kp_store_cache_set (ctx->store, release_key, inrelease_id, err) < 0)
    goto out;
  {
    kp_cleanup_json json_t *extra = describe (&b);
    kp_cleanup_free char *canon = json_dumps (extra, JSON_COMPACT | JSON_SORT_KEYS);
    char digest[KP_DIGEST_STRING_MAX];
    kp_digest_buffer (KP_DIGEST_SHA256, canon, strlen (canon), digest);
    json_object_set_new (extra, "release_date",
                         json_string (b.release.date ? b.release.date : ""));
    json_object_set_new (extra, "tree_digest", json_string (tree));
    char **objects = xcalloc (b.n + 2, sizeof (char *));
    objects[0] = inrelease_id;
    for (size_t i = 0; i < b.n; i++)
      objects[i + 1] = b.debs[i].object;
    /* Its size is what it is made of, however much of it this pull had to fetch. */
    uint64_t size = b.inrelease_len;
    for (size_t i = 0; i < b.n; i++)
      size += b.debs[i].pkg->size;
    kp_image_record rec = { .digest = digest, .reference = ref->canonical,
                            .objects = objects, .size = size, .extra = extra };
    memcpy (rec.tree_digest, tree, sizeof tree);
    int w = kp_store_image_write (ctx->store, &rec, err);
    free (objects);
    if (w < 0 || kp_store_image_tag_set (ctx->store, tag_key, digest, time (NULL), err) < 0)
      goto out;
    memcpy (out->tree_digest, tree, sizeof tree);
    out->digest = xstrdup (digest);
  }
  rc = 0;
out:
  bootstrap_clear (&b);
  return rc;
}
