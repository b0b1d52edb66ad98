/* registry.c — the OCI Distribution API v2 client: manifests, blobs, authentication.
 *
 * Authentication is learned, not assumed: there is no separate "GET /v2/" ping. The first
 * request goes out as it is, and a 401's WWW-Authenticate says what the registry wants (a
 * bearer token from a realm, or basic credentials) exactly as a ping's would. That keeps
 * a cached pull from an anonymous registry at one request. A token is fetched once per
 * client, shared by the download threads, and fetched again once when a later request is
 * refused (tokens expire, typically after five minutes, in the middle of large pulls).
 *
 * Scheme. HTTPS with verified certificates, except: loopback registries are spoken to
 * over plain HTTP (local test registries and pull-through caches virtually always are; a
 * loopback registry that only speaks TLS is not reachable this way — a known limit), and
 * an insecure registry is tried over HTTPS without verification first and over plain HTTP
 * when that fails to connect, as docker does for its insecure-registries.
 *
 * What comes back is checked before it is used: manifests against the digest asked for
 * (or Docker-Content-Digest), blobs against their digest and size while they stream. */
#include "image/registry.h"

#include "base/buf.h"
#include "base/json.h"
#include "hash/digest.h"
#include "image/auth.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MANIFEST_ACCEPT                                                                      \
  "Accept: " KP_MT_OCI_INDEX ", " KP_MT_OCI_MANIFEST ", " KP_MT_DOCKER_LIST ", "            \
  KP_MT_DOCKER_MANIFEST
#define MAX_MANIFEST (4u << 20) /* what the distribution spec asks registries to accept */
#define MAX_CONFIG (8u << 20)
#define BLOB_RETRIES 3

struct kp_registry
{
  kp_http *http;
  char *registry;   /* as named: "docker.io", "127.0.0.1:5000" */
  char *host;       /* the API host: "registry-1.docker.io" */
  char *repository;
  kp_registry_options opts; /* without the platform, which is below */
  kp_platform platform;
  char *user, *password, *cred_source, *cred_note;
  bool creds_looked_up;
  pthread_mutex_t auth_lock; /* one authentication at a time (held across the token GET) */
  pthread_mutex_t lock;      /* short: the fields below */
  const char *scheme;        /* "https" or "http" */
  bool scheme_settled;       /* false while an insecure registry may still be plain HTTP */
  char *authorization;       /* "Authorization: Bearer …" or "Authorization: Basic …" */
  kp_registry_stats stats;
};

static bool
valid_registry (const char *s)
{
  if (s == NULL || *s == '\0' || strlen (s) > 255)
    return false;
  for (const char *p = s; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')
          || strchr (".-:[]", *p)))
      return false;
  return true;
}

/* Lowercase components of [a-z0-9._-] joined by single slashes (what goes into URLs). */
static bool
valid_repository (const char *s)
{
  if (s == NULL || *s == '\0' || *s == '/' || strlen (s) > 255)
    return false;
  for (const char *p = s; *p; p++)
    {
      if (*p == '/' && (p[1] == '/' || p[1] == '\0'))
        return false;
      if (*p == '.' && (p == s || p[-1] == '/') && (p[1] == '.' || p[1] == '/' || !p[1]))
        return false;
      if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || strchr ("._-/", *p)))
        return false;
    }
  return true;
}

kp_registry *
kp_registry_new (kp_http *http, const char *registry, const char *repository,
                 const kp_registry_options *opts, kp_error **err)
{
  if (!valid_registry (registry))
    {
      kp_error_set (err, KP_EXIT_FAILURE, "'%s' is not a registry host", registry ? registry : "");
      return NULL;
    }
  if (!valid_repository (repository))
    {
      kp_error_set (err, KP_EXIT_FAILURE, "'%s' is not a repository name", repository ? repository
                                                                                    : "");
      kp_error_hint (err, "repository names are lowercase letters, digits, '.', '_' and '-', "
                          "in components joined by '/'");
      return NULL;
    }
  kp_registry *r = xcalloc (1, sizeof *r);
  r->http = http;
  r->registry = xstrdup (registry);
  r->repository = xstrdup (repository);
  if (opts)
    r->opts = *opts;
  r->opts.platform = (kp_platform){ 0 };
  if (opts && opts->platform.os && opts->platform.architecture)
    {
      r->platform.os = xstrdup (opts->platform.os);
      r->platform.architecture = xstrdup (opts->platform.architecture);
      r->platform.variant = opts->platform.variant ? xstrdup (opts->platform.variant) : NULL;
    }
  else
    kp_platform_host (&r->platform);
  bool hub = strcmp (registry, "docker.io") == 0 || strcmp (registry, "index.docker.io") == 0;
  r->host = xstrdup (hub ? "registry-1.docker.io" : registry);
  if (kp_http_host_is_loopback (r->host))
    r->scheme = "http", r->scheme_settled = true;
  else
    r->scheme = "https", r->scheme_settled = !r->opts.insecure;
  pthread_mutex_init (&r->lock, NULL);
  pthread_mutex_init (&r->auth_lock, NULL);
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
  free (r->host);
  free (r->repository);
  free (r->user);
  if (r->password)
    explicit_bzero (r->password, strlen (r->password));
  free (r->password);
  free (r->cred_source);
  free (r->cred_note);
  free (r->authorization);
  kp_platform_clear (&r->platform);
  pthread_mutex_destroy (&r->lock);
  pthread_mutex_destroy (&r->auth_lock);
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
count (kp_registry *r, unsigned *counter)
{
  pthread_mutex_lock (&r->lock);
  (*counter)++;
  pthread_mutex_unlock (&r->lock);
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
  return kp_buf_steal (&b);
}

/* ---- errors that say what to do ---- */

static int
error_login_needed (kp_registry *r, kp_error **err)
{
  kp_error_set (err, KP_EXIT_FAILURE, "%s requires a login to pull %s (or the repository "
                "does not exist)", r->registry, r->repository);
  kp_error_hint (err, "%s%srun 'podman login %s', or put credentials in "
                 "$XDG_RUNTIME_DIR/containers/auth.json or ~/.docker/config.json, or pass "
                 "--creds USER:PASSWORD", r->cred_note ? r->cred_note : "",
                 r->cred_note ? "; " : "", r->registry);
  return -1;
}

static int
error_wrong_credentials (kp_registry *r, const char *detail, kp_error **err)
{
  kp_error_set (err, KP_EXIT_FAILURE, "wrong credentials for %s (from %s)%s", r->registry,
                r->cred_source ? r->cred_source : "?", detail ? detail : "");
  kp_error_hint (err, "check the user and password in %s (or --creds), then try again; "
                 "'podman login %s' writes them anew", r->cred_source ? r->cred_source
                                                                     : "auth.json",
                 r->registry);
  return -1;
}

/* ---- authentication ---- */

static int
load_credentials (kp_registry *r, kp_error **err)
{
  if (r->creds_looked_up)
    return 0;
  r->creds_looked_up = true;
  return kp_auth_lookup (r->opts.auth_file, r->registry, r->repository, &r->user,
                         &r->password, &r->cred_source, &r->cred_note, err) < 0 ? -1 : 0;
}

static char *
basic_header (kp_registry *r)
{
  kp_cleanup_free char *pair = xasprintf ("%s:%s", r->user, r->password);
  kp_cleanup_free char *b = kp_base64_encode (pair, strlen (pair));
  explicit_bzero (pair, strlen (pair));
  return xasprintf ("Authorization: Basic %s", b);
}

static int
fetch_token (kp_registry *r, const kp_auth_challenge *ch, char **authorization, kp_error **err)
{
  kp_cleanup_free char *scope = xasprintf ("repository:%s:pull", r->repository);
  kp_cleanup_free char *escope = url_escape (scope);
  kp_cleanup_free char *eservice = ch->service ? url_escape (ch->service) : NULL;
  kp_cleanup_free char *url = xasprintf ("%s%s%s%s%sscope=%s", ch->realm,
                                         strchr (ch->realm, '?') ? "&" : "?",
                                         eservice ? "service=" : "", eservice ? eservice : "",
                                         eservice ? "&" : "", escope);
  kp_cleanup_free char *basic = r->user ? basic_header (r) : NULL;
  const char *headers[] = { basic, NULL };
  kp_http_request req = { .url = url, .headers = headers, .insecure = r->opts.insecure,
                          .max_body = 1 << 20 };
  kp_cleanup_http_response kp_http_response resp = { 0 };
  count (r, &r->stats.token_requests);
  if (kp_http_get (r->http, &req, &resp, err) < 0)
    return kp_error_prefix (err, "get a token for %s", r->registry);
  if (resp.status == 401 || resp.status == 403)
    {
      if (r->user)
        return error_wrong_credentials (r, ": the token server refused them", err);
      return error_login_needed (r, err);
    }
  if (resp.status != 200)
    return kp_error_set (err, KP_EXIT_FAILURE, "the token server of %s (%s) answered %ld",
                         r->registry, ch->realm, resp.status);
  kp_cleanup_json json_t *doc = json_loadb (resp.body, resp.body_len, 0, NULL);
  const char *token = json_string_value (json_object_get (doc, "token"));
  if (token == NULL || *token == '\0')
    token = json_string_value (json_object_get (doc, "access_token"));
  if (token == NULL || *token == '\0' || strpbrk (token, "\r\n") != NULL)
    return kp_error_set (err, KP_EXIT_FAILURE, "the token server of %s (%s) gave no token",
                         r->registry, ch->realm);
  *authorization = xasprintf ("Authorization: Bearer %s", token);
  return 0;
}

/* After a 401 to a request made with `used` (NULL: none): get what the challenge asks for.
 * Threads refused at once wait here for the first one; when it has replaced the
 * authorization they used, they simply retry with the new one. */
static int
authenticate (kp_registry *r, const char *challenge_header, const char *used, kp_error **err)
{
  pthread_mutex_lock (&r->auth_lock);
  int rc = -1;
  kp_auth_challenge ch = { 0 };
  pthread_mutex_lock (&r->lock);
  bool changed = !kp_str_equal0 (r->authorization, used);
  pthread_mutex_unlock (&r->lock);
  if (changed)
    {
      rc = 0;
      goto out;
    }
  if (load_credentials (r, err) < 0)
    goto out;
  if (kp_auth_parse_challenge (challenge_header, &ch) < 0)
    {
      kp_error_set (err, KP_EXIT_FAILURE, "%s refused the request (401) without a readable "
                    "WWW-Authenticate challenge ('%s')", r->registry,
                    challenge_header ? challenge_header : "none");
      goto out;
    }
  char *authorization = NULL;
  if (strcmp (ch.scheme, "basic") == 0)
    {
      if (r->user == NULL)
        {
          error_login_needed (r, err);
          goto out;
        }
      authorization = basic_header (r);
    }
  else if (strcmp (ch.scheme, "bearer") == 0 && ch.realm)
    {
      if (fetch_token (r, &ch, &authorization, err) < 0)
        goto out;
    }
  else
    {
      kp_error_set (err, KP_EXIT_FAILURE, "%s asks for '%s' authentication%s, which karapace "
                    "does not speak", r->registry, ch.scheme, ch.realm ? "" : " without a realm");
      goto out;
    }
  pthread_mutex_lock (&r->lock);
  free (r->authorization);
  r->authorization = authorization;
  pthread_mutex_unlock (&r->lock);
  rc = 0;
out:
  kp_auth_challenge_clear (&ch);
  pthread_mutex_unlock (&r->auth_lock);
  return rc;
}

/* ---- one request ---- */

/* GET (or what req says) scheme://host + path with the current authorization; on a 401,
 * authenticate and retry once. Returns 0 with any other status for the caller to judge,
 * -1 with an error; *transport is set when no response came back at all (worth a retry). */
static int
request (kp_registry *r, const char *path, kp_http_request *req, const char *accept,
         unsigned *counter, kp_http_response *resp, bool *transport, kp_error **err)
{
  if (transport)
    *transport = false;
  for (int attempt = 0; attempt < 2; attempt++)
    {
      pthread_mutex_lock (&r->lock);
      kp_cleanup_free char *auth = r->authorization ? xstrdup (r->authorization) : NULL;
      kp_cleanup_free char *url = xasprintf ("%s://%s%s", r->scheme, r->host, path);
      bool settled = r->scheme_settled;
      pthread_mutex_unlock (&r->lock);
      const char *headers[3] = { 0 };
      size_t n = 0;
      if (accept)
        headers[n++] = accept;
      if (auth)
        headers[n++] = auth;
      req->url = url;
      req->headers = headers;
      req->insecure = r->opts.insecure;
      count (r, counter);
      kp_error *first = NULL;
      int got = kp_http_get (r->http, req, resp, &first);
      if (got < 0 && !settled)
        {
          /* An insecure registry that does not speak TLS: plain HTTP, once. */
          kp_http_response_clear (resp);
          kp_cleanup_free char *plain = xasprintf ("http://%s%s", r->host, path);
          req->url = plain;
          count (r, counter);
          kp_error *second = NULL;
          got = kp_http_get (r->http, req, resp, &second);
          if (got < 0)
            {
              kp_error_hint (&first, "plain http failed too: %s", second->message);
              kp_error_free (second);
            }
          else
            {
              pthread_mutex_lock (&r->lock);
              r->scheme = "http";
              pthread_mutex_unlock (&r->lock);
              kp_error_free (kp_steal_pointer (&first));
            }
          req->url = NULL;
        }
      if (got < 0)
        {
          if (transport)
            *transport = true;
          if (err)
            *err = first;
          else
            kp_error_free (first);
          req->url = NULL;
          return -1;
        }
      req->url = NULL;
      req->headers = NULL;
      if (!settled)
        {
          pthread_mutex_lock (&r->lock);
          r->scheme_settled = true;
          pthread_mutex_unlock (&r->lock);
        }
      if (resp->status != 401 || attempt == 1)
        break;
      if (auth && kp_str_has_prefix (auth, "Authorization: Basic"))
        {
          pthread_mutex_lock (&r->auth_lock); /* the credentials' fields */
          error_wrong_credentials (r, NULL, err); /* nothing to refresh */
          pthread_mutex_unlock (&r->auth_lock);
          return -1;
        }
      kp_cleanup_free char *challenge = resp->www_authenticate ? xstrdup (resp->www_authenticate)
                                                               : NULL;
      kp_http_response_clear (resp);
      if (authenticate (r, challenge, auth, err) < 0)
        return -1;
    }
  if (resp->status != 401 && resp->status != 403 && resp->status != 429)
    return 0;
  /* An error that names the credentials, which another thread may be loading. */
  pthread_mutex_lock (&r->auth_lock);
  switch (resp->status)
    {
    case 401:
      if (r->user)
        error_wrong_credentials (r, ", or they may not pull this repository", err);
      else
        error_login_needed (r, err);
      break;
    case 403:
      kp_error_set (err, KP_EXIT_FAILURE, "%s denied access to %s (403)", r->registry,
                    r->repository);
      kp_error_hint (err, r->user ? "the account (from %s) may not pull this repository"
                                  : "the repository may be private: log in (%s)",
                     r->user ? r->cred_source : "podman login, or --creds");
      break;
    default: /* 429 */
      kp_error_set (err, KP_EXIT_FAILURE, "%s refused the request: too many requests (429)",
                    r->registry);
      kp_error_hint (err, "the registry limits pulls%s; wait and try again, or log in, which "
                     "usually raises the limit", r->user ? "" : " from anonymous users");
      break;
    }
  pthread_mutex_unlock (&r->auth_lock);
  return -1;
}

static bool
is_digest_ref (const char *tag_or_digest)
{
  return strchr (tag_or_digest, ':') != NULL;
}

/* GET (or HEAD) a manifest; its bytes are checked against the digest asked for or, for a
 * tag, Docker-Content-Digest when the registry sends one. HEAD returns 1 when the answer
 * carries no digest (the caller falls back to GET). */
static int
get_manifest (kp_registry *r, const char *ref, const char *method, char **bytes, size_t *len,
              char **media_type, char **digest, kp_error **err)
{
  bool by_digest = is_digest_ref (ref);
  if (by_digest && !kp_digest_is_valid (ref, NULL))
    return kp_digest_parse (ref, NULL, NULL, err);
  kp_cleanup_free char *path = xasprintf ("/v2/%s/manifests/%s", r->repository, ref);
  kp_http_request req = { .method = method, .max_body = MAX_MANIFEST };
  kp_cleanup_http_response kp_http_response resp = { 0 };
  if (request (r, path, &req, MANIFEST_ACCEPT, &r->stats.manifest_requests, &resp, NULL, err)
      < 0)
    return -1;
  if (resp.status == 404)
    {
      if (by_digest)
        kp_error_set (err, KP_EXIT_FAILURE, "no manifest %s in %s at %s", ref, r->repository,
                      r->registry);
      else
        kp_error_set (err, KP_EXIT_FAILURE, "no tag '%s' in %s at %s", ref, r->repository,
                      r->registry);
      kp_error_hint (err, "check the repository and the tag; 'skopeo list-tags docker://%s/%s' "
                          "lists the tags", r->registry, r->repository);
      return -1;
    }
  if (resp.status != 200)
    return kp_error_set (err, KP_EXIT_FAILURE, "%s answered %ld for the manifest %s of %s",
                         r->registry, resp.status, ref, r->repository);
  if (method && strcmp (method, "HEAD") == 0)
    {
      if (resp.docker_content_digest == NULL
          || !kp_digest_is_valid (resp.docker_content_digest, NULL))
        return 1;
      *digest = xstrdup (resp.docker_content_digest);
      return 0;
    }
  kp_digest_algo algo = KP_DIGEST_SHA256;
  const char *expect = by_digest ? ref : resp.docker_content_digest;
  if (expect && !kp_digest_is_valid (expect, &algo))
    return kp_error_set (err, KP_EXIT_FAILURE, "%s sent an invalid digest '%s'", r->registry,
                         expect);
  char got[KP_DIGEST_STRING_MAX];
  kp_digest_buffer (algo, resp.body, resp.body_len, got);
  if (expect && strcmp (expect, got) != 0)
    {
      kp_error_set (err, KP_EXIT_FAILURE, "the manifest %s of %s from %s is not what was "
                    "asked for: its content hashes to %s", expect, r->repository, r->registry,
                    got);
      kp_error_hint (err, "nothing was kept; the registry (or something between it and you) "
                          "serves different content than it names");
      return -1;
    }
  *digest = xstrdup (got);
  *len = resp.body_len;
  *bytes = kp_steal_pointer (&resp.body);
  *media_type = resp.content_type ? xstrdup (resp.content_type) : NULL;
  return 0;
}

int
kp_registry_head_digest (kp_registry *r, const char *tag, char **digest, kp_error **err)
{
  kp_cleanup_free char *bytes = NULL;
  kp_cleanup_free char *mt = NULL;
  size_t len = 0;
  *digest = NULL;
  int rc = get_manifest (r, tag, "HEAD", &bytes, &len, &mt, digest, err);
  if (rc == 1)
    rc = get_manifest (r, tag, NULL, &bytes, &len, &mt, digest, err);
  return rc < 0 ? -1 : 0;
}

/* ---- blobs ---- */

typedef struct blob_stream
{
  const kp_blob_sink *sink;
  size_t index;
  kp_digest *digest;
  uint64_t received;
  uint64_t size;
  bool fatal; /* the sink failed or too much came: retrying cannot help */
} blob_stream;

static int
blob_chunk (const void *data, size_t len, void *user_data, kp_error **err)
{
  blob_stream *s = user_data;
  if (len > s->size - s->received)
    {
      s->fatal = true;
      return kp_error_set (err, KP_EXIT_FAILURE, "more than the %llu bytes the manifest "
                           "gives came", (unsigned long long) s->size);
    }
  kp_digest_update (s->digest, data, len);
  s->received += len;
  if (s->sink->write (s->index, data, len, s->sink->user_data, err) < 0)
    {
      s->fatal = true;
      return -1;
    }
  return 0;
}

static void
backoff (int attempt)
{
  struct timespec ts = { 0, 200L * 1000 * 1000 * attempt };
  while (nanosleep (&ts, &ts) < 0)
    ;
}

/* Download blob d into the sink as index `index`: a broken transfer is resumed from the
 * bytes already received; the digest is checked over everything at the end. */
static int
fetch_blob (kp_registry *r, const kp_oci_descriptor *d, size_t index, const kp_blob_sink *sink,
            bool quiet, kp_error **err)
{
  kp_digest_algo algo;
  if (kp_digest_parse (d->digest, &algo, NULL, err) < 0)
    return -1;
  kp_cleanup_free char *path = xasprintf ("/v2/%s/blobs/%s", r->repository, d->digest);
  kp_cleanup_digest kp_digest *digest = kp_digest_new (algo);
  blob_stream s = { .sink = sink, .index = index, .digest = digest, .size = d->size };
  char label[24];
  snprintf (label, sizeof label, "%.19s", strchr (d->digest, ':') + 1);
  bool progress = r->opts.progress && !quiet;
  int rc = -1;
  kp_error *last = NULL;
  for (int attempt = 0; attempt <= BLOB_RETRIES && rc < 0; attempt++)
    {
      if (attempt > 0)
        backoff (attempt);
      uint64_t before = s.received;
      kp_http_request req = {
        .sink = blob_chunk,
        .sink_data = &s,
        .range_start = s.received,
        .progress_label = progress ? label : NULL,
        .progress = progress ? r->opts.progress : NULL,
        .progress_data = r->opts.progress_data,
      };
      kp_cleanup_http_response kp_http_response resp = { 0 };
      kp_error_free (last);
      last = NULL;
      bool transport = false;
      if (request (r, path, &req, NULL, &r->stats.blob_requests, &resp, &transport, &last) < 0)
        {
          if (s.fatal || !transport)
            break;
          continue; /* a broken connection: again, from where it stopped */
        }
      if (resp.status == 200 && before > 0)
        {
          /* Nothing of this answer reached the sink (http.c stops it), but the first part
             did, and a sink cannot take bytes back: this blob cannot be completed here. */
          kp_error_set (&last, KP_EXIT_FAILURE, "%s does not resume downloads: it answered "
                        "the request for the rest of blob %s (from byte %llu) with the whole "
                        "blob", r->registry, d->digest, (unsigned long long) before);
          kp_error_hint (&last, "try the pull again; nothing of this blob was kept");
          break;
        }
      if (resp.status == 404)
        {
          kp_error_set (&last, KP_EXIT_FAILURE, "no blob %s in %s at %s", d->digest,
                        r->repository, r->registry);
          kp_error_hint (&last, "the registry lost a blob its manifest names; push the image "
                                "again or ask its maintainers");
          break;
        }
      if (resp.status != 200 && resp.status != 206)
        {
          kp_error_set (&last, KP_EXIT_FAILURE, "%s answered %ld for blob %s of %s", r->registry,
                        resp.status, d->digest, r->repository);
          if (resp.status >= 500)
            continue; /* the server's trouble may pass */
          break;
        }
      if (s.received == d->size)
        {
          rc = 0;
          break;
        }
      kp_error_set (&last, KP_EXIT_FAILURE, "blob %s: the transfer ended after %llu of %llu "
                    "bytes", d->digest, (unsigned long long) s.received,
                    (unsigned long long) d->size);
    }
  if (rc == 0)
    {
      char got[KP_DIGEST_STRING_MAX];
      kp_digest_final (digest, got);
      if (strcmp (got, d->digest) != 0)
        {
          rc = kp_error_set (err, KP_EXIT_FAILURE, "blob %s of %s from %s is corrupt: its "
                             "content hashes to %s", d->digest, r->repository, r->registry, got);
          kp_error_hint (err, "nothing of it was kept; the registry's copy is damaged or was "
                              "replaced (or something between it and you changes it)");
        }
      else
        {
          pthread_mutex_lock (&r->lock);
          r->stats.blob_bytes += s.received;
          pthread_mutex_unlock (&r->lock);
          rc = sink->done ? sink->done (index, sink->user_data, err) : 0;
        }
      kp_error_free (last);
    }
  else if (err)
    *err = last;
  else
    kp_error_free (last);
  if (rc < 0 && sink->discard)
    sink->discard (index, sink->user_data);
  return rc;
}

typedef struct blob_job
{
  kp_registry *r;
  const kp_oci_descriptor *blobs;
  const kp_blob_sink *sink;
} blob_job;

static int
blob_job_run (kp_http *http, size_t i, void *user_data, kp_error **err)
{
  blob_job *job = user_data;
  return fetch_blob (job->r, &job->blobs[i], i, job->sink, false, err);
}

int
kp_registry_fetch_blobs (kp_registry *r, const kp_oci_descriptor *blobs, size_t n,
                         const kp_blob_sink *sink, kp_error **err)
{
  blob_job job = { r, blobs, sink };
  /* Authentication is normally known by now (the manifest came first); when it is not,
     the first refused thread fetches the token and the others wait for it there. */
  return kp_http_run_parallel (r->http, n, r->opts.parallel ? r->opts.parallel : 4,
                               blob_job_run, &job, err);
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
  if (len > b->max - b->buf.len)
    return kp_error_set (err, KP_EXIT_FAILURE, "the blob is larger than %zu bytes", b->max);
  kp_buf_append (&b->buf, data, len);
  return 0;
}

int
kp_registry_fetch_small_blob (kp_registry *r, const kp_oci_descriptor *blob, size_t max,
                              char **bytes, size_t *len, kp_error **err)
{
  if (blob->size > max)
    return kp_error_set (err, KP_EXIT_FAILURE, "blob %s is %llu bytes, more than the %zu "
                         "allowed here", blob->digest, (unsigned long long) blob->size, max);
  small_blob b = { KP_BUF_INIT, max };
  kp_blob_sink sink = { small_write, NULL, NULL, &b };
  if (fetch_blob (r, blob, 0, &sink, true, err) < 0)
    {
      kp_buf_clear (&b.buf);
      return -1;
    }
  *len = b.buf.len;
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
  kp_cleanup_free char *cbytes = NULL;
  size_t len = 0, clen = 0;
  if (get_manifest (r, tag_or_digest, NULL, &bytes, &len, &mt, &digest, err) < 0)
    return -1;
  bool is_index = false;
  kp_oci_descriptor chosen = { 0 };
  if (kp_oci_parse_manifest (bytes, len, mt, &r->platform, &is_index, &chosen, out, err) < 0)
    {
      kp_error_prefix (err, "%s/%s%s%s", r->registry, r->repository,
                       is_digest_ref (tag_or_digest) ? "@" : ":", tag_or_digest);
      goto fail;
    }
  out->digest = xstrdup (digest);
  if (is_index)
    {
      kp_cleanup_free char *mbytes = NULL, *mmt = NULL, *mdigest = NULL;
      size_t mlen = 0;
      if (get_manifest (r, chosen.digest, NULL, &mbytes, &mlen, &mmt, &mdigest, err) < 0)
        goto fail;
      if (mlen != chosen.size)
        {
          kp_error_set (err, KP_EXIT_FAILURE, "the manifest %s from %s has %zu bytes, its "
                        "index says %llu", chosen.digest, r->registry, mlen,
                        (unsigned long long) chosen.size);
          goto fail;
        }
      bool again = false;
      kp_oci_descriptor unused = { 0 };
      if (kp_oci_parse_manifest (mbytes, mlen, mmt ? mmt : chosen.media_type, &r->platform,
                                 &again, &unused, out, err) < 0)
        {
          kp_error_prefix (err, "%s/%s@%s", r->registry, r->repository, chosen.digest);
          goto fail;
        }
      if (again)
        {
          kp_oci_descriptor_clear (&unused);
          kp_error_set (err, KP_EXIT_FAILURE, "%s nests an index in an index (%s), which "
                        "karapace does not follow", r->registry, chosen.digest);
          goto fail;
        }
      out->manifest_digest = xstrdup (chosen.digest);
    }
  else
    out->manifest_digest = xstrdup (digest);

  if (kp_registry_fetch_small_blob (r, &out->config, MAX_CONFIG, &cbytes, &clen, err) < 0)
    {
      kp_error_prefix (err, "the image config");
      goto fail;
    }
  json_error_t jerr;
  out->config_json = json_loadb (cbytes, clen, 0, &jerr);
  if (!json_is_object (out->config_json))
    {
      kp_error_set (err, KP_EXIT_FAILURE, "the image config %s from %s is not a JSON object: "
                    "%s", out->config.digest, r->registry,
                    out->config_json ? "wrong type" : jerr.text);
      goto fail;
    }
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
