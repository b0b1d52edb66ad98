/* registry.c — the OCI Distribution API v2 client: manifests, blobs, authentication.
 *
 * Authentication is learned, not assumed: the first request goes out without credentials
 * and a 401's WWW-Authenticate says what the registry wants (a bearer token from a realm,
 * or basic credentials). That keeps a cached pull from an anonymous registry at exactly one
 * request. A token is requested once per client and refreshed once on a later 401. */
#include "image/registry.h"

#include "base/json.h"
#include "base/buf.h"
#include "hash/digest.h"
#include "image/auth.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define MANIFEST_ACCEPT                                                                      \
  "Accept: " KP_MT_OCI_INDEX ", " KP_MT_OCI_MANIFEST ", " KP_MT_DOCKER_LIST ", "            \
  KP_MT_DOCKER_MANIFEST
#define MAX_MANIFEST (4u << 20)
#define BLOB_RETRIES 3

struct kp_registry
{
  kp_http *http;
  char *registry;   /* as named: "docker.io", "127.0.0.1:5000" */
  char *api;        /* "https://registry-1.docker.io" */
  char *repository;
  kp_registry_options opts;
  kp_platform platform;
  char *user, *password, *cred_source;
  bool creds_looked_up;
  pthread_mutex_t lock; /* the authorization header and the stats */
  char *authorization;  /* "Authorization: Bearer …" or "Authorization: Basic …" */
  kp_registry_stats stats;
};

static char *
api_base (const char *registry, bool insecure)
{
  const char *host = strcmp (registry, "docker.io") == 0 ? "registry-1.docker.io" : registry;
  /* Loopback registries speak plain HTTP (as docker treats them); anything else HTTPS
     unless the user made it insecure, which also means plain HTTP. */
  bool plain = kp_http_host_is_loopback (host) || insecure;
  return xasprintf ("%s://%s", plain ? "http" : "https", host);
}

kp_registry *
kp_registry_new (kp_http *http, const char *registry, const char *repository,
                 const kp_registry_options *opts, kp_error **err)
{
  kp_registry *r = xcalloc (1, sizeof *r);
  r->http = http;
  r->registry = xstrdup (registry);
  r->repository = xstrdup (repository);
  if (opts)
    r->opts = *opts;
  r->opts.platform = (kp_platform){ 0 };
  if (opts && opts->platform.os)
    {
      r->platform.os = xstrdup (opts->platform.os);
      r->platform.architecture = xstrdup (opts->platform.architecture);
      r->platform.variant = opts->platform.variant ? xstrdup (opts->platform.variant) : NULL;
    }
  else
    kp_platform_host (&r->platform);
  r->api = api_base (registry, r->opts.insecure);
  pthread_mutex_init (&r->lock, NULL);
  if (opts && opts->username)
    {
      r->user = xstrdup (opts->username);
      r->password = xstrdup (opts->password ? opts->password : "");
      r->cred_source = xstrdup ("--creds");
      r->creds_looked_up = true;
    }
  return r;
}

void
kp_registry_free (kp_registry *r)
{
  if (r == NULL)
    return;
  free (r->registry);
  free (r->api);
  free (r->repository);
  free (r->user);
  free (r->password);
  free (r->cred_source);
  free (r->authorization);
  kp_platform_clear (&r->platform);
  pthread_mutex_destroy (&r->lock);
  free (r);
}

void
kp_registry_freep (kp_registry **r)
{
  kp_registry_free (*r);
  *r = NULL;
}

const kp_registry_stats *
kp_registry_get_stats (const kp_registry *r)
{
  return &r->stats;
}

static void
count (kp_registry *r, unsigned *counter, uint64_t bytes)
{
  pthread_mutex_lock (&r->lock);
  (*counter)++;
  r->stats.blob_bytes += bytes;
  pthread_mutex_unlock (&r->lock);
}

static int
load_credentials (kp_registry *r, kp_error **err)
{
  if (r->creds_looked_up)
    return 0;
  r->creds_looked_up = true;
  return kp_auth_lookup (r->opts.auth_file, r->registry, r->repository, &r->user,
                         &r->password, &r->cred_source, err) < 0 ? -1 : 0;
}

static char *
url_escape (const char *s)
{
  kp_buf b = KP_BUF_INIT;
  for (; *s; s++)
    {
      unsigned char c = (unsigned char) *s;
      if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
          || strchr ("-_.~", c))
        kp_buf_append (&b, s, 1);
      else
        kp_buf_printf (&b, "%%%02X", c);
    }
  kp_buf_append (&b, "", 1);
  return kp_buf_steal (&b);
}

/* After a 401: get what the challenge asks for. */
static int
authenticate (kp_registry *r, const char *challenge_header, kp_error **err)
{
  kp_auth_challenge ch;
  if (kp_auth_parse_challenge (challenge_header, &ch) < 0)
    {
      kp_error_set (err, KP_EXIT_FAILURE, "%s refused the request without saying how to "
                    "authenticate", r->registry);
      return -1;
    }
  int rc = -1;
  pthread_mutex_lock (&r->lock);
  if (load_credentials (r, err) < 0)
    goto out;
  if (strcmp (ch.scheme, "basic") == 0)
    {
      if (r->user == NULL)
        {
          kp_error_set (err, KP_EXIT_FAILURE, "%s requires a login", r->registry);
          kp_error_hint (err, "log in with 'podman login %s' (karapace reads its auth.json), or "
                              "pass --creds USER:PASSWORD", r->registry);
          goto out;
        }
      kp_cleanup_free char *pair = xasprintf ("%s:%s", r->user, r->password);
      kp_cleanup_free char *b = kp_base64_encode (pair, strlen (pair));
      free (r->authorization);
      r->authorization = xasprintf ("Authorization: Basic %s", b);
      rc = 0;
      goto out;
    }
  if (strcmp (ch.scheme, "bearer") != 0 || ch.realm == NULL)
    {
      kp_error_set (err, KP_EXIT_FAILURE, "%s asks for '%s' authentication, which karapace "
                    "does not speak", r->registry, ch.scheme);
      goto out;
    }
  {
    kp_cleanup_free char *scope = xasprintf ("repository:%s:pull", r->repository);
    kp_cleanup_free char *escope = url_escape (scope);
    kp_cleanup_free char *eservice = ch.service ? url_escape (ch.service) : NULL;
    kp_cleanup_free char *url = xasprintf ("%s%sscope=%s%s%s", ch.realm,
                                           strchr (ch.realm, '?') ? "&" : "?", escope,
                                           eservice ? "&service=" : "", eservice ? eservice : "");
    kp_cleanup_free char *basic = NULL;
    if (r->user)
      {
        kp_cleanup_free char *pair = xasprintf ("%s:%s", r->user, r->password);
        kp_cleanup_free char *b = kp_base64_encode (pair, strlen (pair));
        basic = xasprintf ("Authorization: Basic %s", b);
      }
    const char *headers[] = { basic, NULL };
    kp_cleanup_free char *realm_host = NULL;
    const char *hp = strstr (ch.realm, "://");
    if (hp)
      realm_host = xstrndup (hp + 3, strcspn (hp + 3, "/?#"));
    kp_http_request req = { .url = url, .headers = basic ? headers : NULL,
                            .insecure = r->opts.insecure, .max_body = 1 << 20 };
    kp_cleanup_http_response kp_http_response resp = { 0 };
    r->stats.token_requests++;
    if (kp_http_get (r->http, &req, &resp, err) < 0)
      {
        kp_error_prefix (err, "get a token for %s", r->registry);
        goto out;
      }
    if (resp.status == 401 || resp.status == 403)
      {
        if (r->user)
          {
            kp_error_set (err, KP_EXIT_FAILURE, "wrong credentials for %s (from %s): the token "
                          "server answered %ld", r->registry, r->cred_source, resp.status);
            kp_error_hint (err, "check the user and password, then 'podman login %s' again",
                           r->registry);
          }
        else
          {
            kp_error_set (err, KP_EXIT_FAILURE, "%s requires a login to pull %s", r->registry,
                          r->repository);
            kp_error_hint (err, "log in with 'podman login %s' (karapace reads its auth.json), "
                                "or pass --creds USER:PASSWORD", r->registry);
          }
        goto out;
      }
    if (resp.status != 200)
      {
        kp_error_set (err, KP_EXIT_FAILURE, "the token server of %s answered %ld", r->registry,
                      resp.status);
        goto out;
      }
    json_t *doc = json_loadb (resp.body, resp.body_len, 0, NULL);
    const char *token = json_string_value (json_object_get (doc, "token"));
    if (token == NULL || *token == '\0')
      token = json_string_value (json_object_get (doc, "access_token"));
    if (token == NULL || *token == '\0')
      {
        json_decref (doc);
        kp_error_set (err, KP_EXIT_FAILURE, "the token server of %s gave no token",
                      r->registry);
        goto out;
      }
    free (r->authorization);
    r->authorization = xasprintf ("Authorization: Bearer %s", token);
    json_decref (doc);
    rc = 0;
  }
out:
  pthread_mutex_unlock (&r->lock);
  kp_auth_challenge_clear (&ch);
  return rc;
}

/* One request with the current authorization; on 401, authenticate and retry once. */
static int
request (kp_registry *r, kp_http_request *req, const char *accept, unsigned *counter,
         kp_http_response *resp, kp_error **err)
{
  for (int attempt = 0; attempt < 2; attempt++)
    {
      pthread_mutex_lock (&r->lock);
      kp_cleanup_free char *auth = r->authorization ? xstrdup (r->authorization) : NULL;
      pthread_mutex_unlock (&r->lock);
      const char *headers[3] = { 0 };
      size_t n = 0;
      if (accept)
        headers[n++] = accept;
      if (auth)
        headers[n++] = auth;
      req->headers = headers;
      req->insecure = r->opts.insecure;
      count (r, counter, 0);
      if (kp_http_get (r->http, req, resp, err) < 0)
        return -1;
      if (resp->status != 401 || attempt == 1)
        break;
      kp_cleanup_free char *challenge = resp->www_authenticate ? xstrdup (resp->www_authenticate)
                                                               : NULL;
      if (auth && r->user && strncmp (auth, "Authorization: Basic", 20) == 0)
        {
          kp_error_set (err, KP_EXIT_FAILURE, "wrong credentials for %s (from %s)",
                        r->registry, r->cred_source);
          kp_error_hint (err, "check the user and password, then 'podman login %s' again",
                         r->registry);
          return -1;
        }
      kp_http_response_clear (resp);
      if (authenticate (r, challenge, err) < 0)
        return -1;
    }
  if (resp->status == 401 && r->user)
    {
      kp_error_set (err, KP_EXIT_FAILURE, "wrong credentials for %s (from %s)", r->registry,
                    r->cred_source);
      kp_error_hint (err, "check the user and password, then 'podman login %s' again",
                     r->registry);
      return -1;
    }
  if (resp->status == 401)
    {
      kp_error_set (err, KP_EXIT_FAILURE, "%s refused %s: not authorized", r->registry,
                    r->repository);
      kp_error_hint (err, r->user ? "check the credentials and that they may pull this "
                                    "repository"
                                  : "log in with 'podman login HOST' or pass --creds");
      return -1;
    }
  return 0;
}

static bool
is_digest_ref (const char *tag_or_digest)
{
  return strchr (tag_or_digest, ':') != NULL;
}

/* GET (or HEAD) a manifest; its bytes are checked against the digest asked for or, for a
 * tag, Docker-Content-Digest when the registry sends one. */
static int
get_manifest (kp_registry *r, const char *ref, const char *method, char **bytes, size_t *len,
              char **media_type, char **digest, kp_error **err)
{
  kp_cleanup_free char *url = xasprintf ("%s/v2/%s/manifests/%s", r->api, r->repository, ref);
  kp_http_request req = { .url = url, .method = method, .max_body = MAX_MANIFEST };
  kp_cleanup_http_response kp_http_response resp = { 0 };
  if (request (r, &req, MANIFEST_ACCEPT, &r->stats.manifest_requests, &resp, err) < 0)
    return -1;
  if (resp.status == 404)
    {
      if (is_digest_ref (ref))
        kp_error_set (err, KP_EXIT_FAILURE, "%s has no manifest %s in %s", r->registry, ref,
                      r->repository);
      else
        kp_error_set (err, KP_EXIT_FAILURE, "%s has no tag '%s' in %s", r->registry, ref,
                      r->repository);
      kp_error_hint (err, "check the repository and the tag (skopeo list-tags docker://%s/%s "
                          "lists the tags)", r->registry, r->repository);
      return -1;
    }
  if (resp.status != 200)
    return kp_error_set (err, KP_EXIT_FAILURE, "%s answered %ld for the manifest %s of %s",
                         r->registry, resp.status, ref, r->repository);
  if (method && strcmp (method, "HEAD") == 0)
    {
      if (resp.docker_content_digest == NULL)
        return 1; /* the caller falls back to GET */
      *digest = xstrdup (resp.docker_content_digest);
      return 0;
    }
  kp_digest_algo algo = KP_DIGEST_SHA256;
  const char *expect = is_digest_ref (ref) ? ref : resp.docker_content_digest;
  if (expect && !kp_digest_is_valid (expect, &algo))
    return kp_error_set (err, KP_EXIT_FAILURE, "%s sent an invalid digest '%s'", r->registry,
                         expect);
  char got[KP_DIGEST_STRING_MAX];
  kp_digest_buffer (algo, resp.body, resp.body_len, got);
  if (expect && strcmp (expect, got) != 0)
    return kp_error_set (err, KP_EXIT_FAILURE, "the manifest %s from %s is not what was asked "
                         "for: its content hashes to %s", expect, r->registry, got);
  *digest = xstrdup (got);
  *len = resp.body_len;
  *bytes = kp_steal_pointer (&resp.body);
  *media_type = resp.content_type ? xstrdup (resp.content_type) : NULL;
  return 0;
}

int
kp_registry_head_digest (kp_registry *r, const char *tag, char **digest, kp_error **err)
{
  char *bytes = NULL, *mt = NULL;
  size_t len = 0;
  int rc = get_manifest (r, tag, "HEAD", &bytes, &len, &mt, digest, err);
  if (rc == 1)
    rc = get_manifest (r, tag, NULL, &bytes, &len, &mt, digest, err);
  free (bytes);
  free (mt);
  return rc < 0 ? -1 : 0;
}

/* ---- blobs ---- */

typedef struct blob_job
{
  kp_registry *r;
  const kp_oci_descriptor *blobs;
  const kp_blob_sink *sink;
} blob_job;

typedef struct blob_stream
{
  const kp_blob_sink *sink;
  size_t index;
  kp_digest *digest;
  uint64_t received;
  uint64_t limit;
} blob_stream;

static int
blob_chunk (const void *data, size_t len, void *user_data, kp_error **err)
{
  blob_stream *s = user_data;
  if (s->received + len > s->limit)
    return kp_error_set (err, KP_EXIT_FAILURE, "more bytes came than the manifest says");
  kp_digest_update (s->digest, data, len);
  s->received += len;
  return s->sink->write (s->index, data, len, s->sink->user_data, err);
}

static int
fetch_one (kp_http *http, size_t i, void *user_data, kp_error **err)
{
  blob_job *job = user_data;
  kp_registry *r = job->r;
  const kp_oci_descriptor *d = &job->blobs[i];
  kp_digest_algo algo;
  if (!kp_digest_is_valid (d->digest, &algo))
    return kp_error_set (err, KP_EXIT_FAILURE, "invalid blob digest '%s'", d->digest);
  kp_cleanup_free char *url = xasprintf ("%s/v2/%s/blobs/%s", r->api, r->repository,
                                         d->digest);
  blob_stream s = { .sink = job->sink, .index = i, .digest = kp_digest_new (algo),
                    .limit = d->size };
  char label[24];
  snprintf (label, sizeof label, "%.19s", strchr (d->digest, ':') + 1);
  int rc = -1;
  kp_error *last = NULL;
  for (int attempt = 0; attempt <= BLOB_RETRIES; attempt++)
    {
      uint64_t before = s.received;
      kp_http_request req = {
        .url = url,
        .sink = blob_chunk,
        .sink_data = &s,
        .range_start = s.received,
        .progress_label = r->opts.progress ? label : NULL,
        .progress = r->opts.progress,
        .progress_data = r->opts.progress_data,
      };
      kp_http_response resp = { 0 };
      kp_error_free (last);
      last = NULL;
      int got = request (r, &req, NULL, &r->stats.blob_requests, &resp, &last);
      long status = resp.status;
      kp_http_response_clear (&resp);
      if (got == 0 && before > 0 && status == 200)
        {
          /* The server ignored Range and sent the blob from its start: those bytes went
             to the sink after the ones we had, so this blob cannot be completed. */
          kp_error_set (&last, KP_EXIT_FAILURE, "%s ignored a resumed request for %s",
                        r->registry, d->digest);
          break;
        }
      if (got == 0 && status != 200 && status != 206)
        {
          kp_error_set (&last, KP_EXIT_FAILURE, "%s answered %ld for blob %s", r->registry,
                        status, d->digest);
          if (status == 404)
            break;
          continue;
        }
      if (got == 0 && s.received == d->size)
        {
          rc = 0;
          break;
        }
      if (got == 0)
        kp_error_set (&last, KP_EXIT_FAILURE, "blob %s: the transfer ended after %llu of %llu "
                      "bytes", d->digest, (unsigned long long) s.received,
                      (unsigned long long) d->size);
      /* A broken transfer: try again from where it stopped, if it made progress. */
      if (s.received == before && attempt > 0)
        break;
    }
  if (rc == 0)
    {
      char got[KP_DIGEST_STRING_MAX];
      kp_digest_final (s.digest, got);
      if (strcmp (got, d->digest) != 0)
        {
          rc = kp_error_set (err, KP_EXIT_FAILURE, "blob %s from %s is corrupt: its content "
                             "hashes to %s", d->digest, r->registry, got);
          kp_error_hint (err, "nothing of it was kept; the registry's copy is damaged or was "
                              "replaced");
        }
      else
        {
          pthread_mutex_lock (&r->lock);
          r->stats.blob_bytes += s.received;
          pthread_mutex_unlock (&r->lock);
          rc = job->sink->done ? job->sink->done (i, job->sink->user_data, err) : 0;
        }
      kp_error_free (last);
    }
  else
    {
      if (err)
        *err = last;
      else
        kp_error_free (last);
    }
  if (rc < 0 && job->sink->discard)
    job->sink->discard (i, job->sink->user_data);
  kp_digest_free (s.digest);
  return rc;
}

int
kp_registry_fetch_blobs (kp_registry *r, const kp_oci_descriptor *blobs, size_t n,
                         const kp_blob_sink *sink, kp_error **err)
{
  blob_job job = { r, blobs, sink };
  /* Learn the authentication before the threads start, so that they do not all ask for a
     token at once. */
  return kp_http_run_parallel (r->http, n, r->opts.parallel ? r->opts.parallel : 4, fetch_one,
                               &job, err);
}

typedef struct small_blob
{
  kp_buf buf;
  size_t max;
} small_blob;

static int
small_write (size_t index, const void *data, size_t len, void *user_data, kp_error **err)
{
  small_blob *b = user_data;
  if (b->buf.len + len > b->max)
    return kp_error_set (err, KP_EXIT_FAILURE, "the blob is larger than %zu bytes", b->max);
  kp_buf_append (&b->buf, data, len);
  return 0;
}

int
kp_registry_fetch_small_blob (kp_registry *r, const kp_oci_descriptor *blob, size_t max,
                              char **bytes, size_t *len, kp_error **err)
{
  small_blob b = { KP_BUF_INIT, max };
  kp_blob_sink sink = { small_write, NULL, NULL, &b };
  kp_registry_options saved = r->opts;
  r->opts.progress = NULL;
  blob_job job = { r, blob, &sink };
  int rc = fetch_one (r->http, 0, &job, err);
  r->opts = saved;
  if (rc < 0)
    {
      kp_buf_clear (&b.buf);
      return -1;
    }
  *len = b.buf.len;
  kp_buf_append (&b.buf, "", 1);
  *bytes = kp_buf_steal (&b.buf);
  return 0;
}

/* ---- resolving ---- */

int
kp_registry_resolve (kp_registry *r, const char *tag_or_digest, kp_oci_image *out,
                     kp_error **err)
{
  memset (out, 0, sizeof *out);
  kp_cleanup_free char *bytes = NULL;
  kp_cleanup_free char *mt = NULL;
  kp_cleanup_free char *digest = NULL;
  size_t len = 0;
  if (get_manifest (r, tag_or_digest, NULL, &bytes, &len, &mt, &digest, err) < 0)
    return -1;
  bool is_index = false;
  kp_oci_descriptor chosen = { 0 };
  if (kp_oci_parse_manifest (bytes, len, mt, &r->platform, &is_index, &chosen, out, err) < 0)
    goto fail;
  out->digest = xstrdup (digest);
  if (is_index)
    {
      kp_cleanup_free char *mbytes = NULL, *mmt = NULL, *mdigest = NULL;
      size_t mlen = 0;
      if (get_manifest (r, chosen.digest, NULL, &mbytes, &mlen, &mmt, &mdigest, err) < 0)
        goto fail;
      bool again = false;
      kp_oci_descriptor unused = { 0 };
      if (kp_oci_parse_manifest (mbytes, mlen, mmt ? mmt : chosen.media_type, &r->platform,
                                 &again, &unused, out, err) < 0)
        goto fail;
      if (again)
        {
          kp_oci_descriptor_clear (&unused);
          kp_error_set (err, KP_EXIT_FAILURE, "%s nests an index in an index", r->registry);
          goto fail;
        }
      out->manifest_digest = xstrdup (chosen.digest);
    }
  else
    out->manifest_digest = xstrdup (digest);

  char *cbytes = NULL;
  size_t clen = 0;
  if (kp_registry_fetch_small_blob (r, &out->config, 8 << 20, &cbytes, &clen, err) < 0)
    {
      kp_error_prefix (err, "the image config");
      goto fail;
    }
  out->config_json = json_loadb (cbytes, clen, 0, NULL);
  free (cbytes);
  const char *os = json_string_value (json_object_get (out->config_json, "os"));
  const char *arch = json_string_value (json_object_get (out->config_json, "architecture"));
  const char *var = json_string_value (json_object_get (out->config_json, "variant"));
  kp_platform_clear (&out->platform);
  out->platform.os = xstrdup (os ? os : r->platform.os);
  out->platform.architecture = xstrdup (arch ? arch : r->platform.architecture);
  out->platform.variant = var && *var ? xstrdup (var) : NULL;
  kp_oci_descriptor_clear (&chosen);
  return 0;
fail:
  kp_oci_descriptor_clear (&chosen);
  kp_oci_image_clear (out);
  return -1;
}
