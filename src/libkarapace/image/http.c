/* http.c — blocking HTTP(S) transfers on libcurl with a shared connection cache.
 *
 * The share object (DNS cache, TLS sessions, connection pool) is used from several
 * threads, so it carries one mutex per kind of data, as libcurl asks. Each transfer has
 * its own easy handle.
 *
 * Where a transfer may go. The first URL is judged before anything is sent: plain http://
 * only for a loopback host or an insecure request. Redirects are followed by libcurl and
 * judged twice more: REDIR_PROTOCOLS keeps an https transfer on https, and the
 * open-socket callback, which runs before every new connection, refuses a hop to plain
 * http on another host, and a hop away from loopback while certificates are not checked.
 *
 * Headers on redirects. libcurl sends CURLOPT_HTTPHEADER lines on every hop, except that
 * since 7.58 it drops a custom "Authorization:" (and since 7.83 "Cookie:") when the
 * host, port or scheme changes, unless CURLOPT_UNRESTRICTED_AUTH is set — which we never
 * do. So a registry's bearer token reaches the registry and not the storage server a blob
 * download is redirected to (the unit tests check this against two local servers). The
 * other headers we send (Accept, Range) are harmless anywhere. */
#include "image/http.h"

#include "base/buf.h"

#include <arpa/inet.h>
/* libcurl is loaded when the network is first needed, not at start-up: its dependencies
   (TLS, HTTP/2, IDN, Kerberos, LDAP, …) are dozens of libraries whose loading would cost
   every command — `karapace exec` included — a few milliseconds. */
#define CURL_DISABLE_TYPECHECK 1
#include <curl/curl.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#ifndef CURL_WRITEFUNC_ERROR /* before 7.87 */
#define CURL_WRITEFUNC_ERROR 0
#endif

struct kp_http
{
  pthread_mutex_t init_lock;
  CURLSH *share;
  pthread_mutex_t locks[CURL_LOCK_DATA_LAST];
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;

static struct
{
  bool loaded;
  char why[256];
  CURLcode (*global_init) (long);
  CURL *(*easy_init) (void);
  CURLcode (*easy_setopt) (CURL *, CURLoption, ...);
  CURLcode (*easy_perform) (CURL *);
  CURLcode (*easy_getinfo) (CURL *, CURLINFO, ...);
  void (*easy_cleanup) (CURL *);
  const char *(*easy_strerror) (CURLcode);
  CURLSH *(*share_init) (void);
  CURLSHcode (*share_setopt) (CURLSH *, CURLSHoption, ...);
  CURLSHcode (*share_cleanup) (CURLSH *);
  struct curl_slist *(*slist_append) (struct curl_slist *, const char *);
  void (*slist_free_all) (struct curl_slist *);
} lc;

#undef curl_easy_setopt
#undef curl_easy_getinfo
#undef curl_share_setopt
#define curl_global_init lc.global_init
#define curl_easy_init lc.easy_init
#define curl_easy_setopt lc.easy_setopt
#define curl_easy_perform lc.easy_perform
#define curl_easy_getinfo lc.easy_getinfo
#define curl_easy_cleanup lc.easy_cleanup
#define curl_easy_strerror lc.easy_strerror
#define curl_share_init lc.share_init
#define curl_share_setopt lc.share_setopt
#define curl_share_cleanup lc.share_cleanup
#define curl_slist_append lc.slist_append
#define curl_slist_free_all lc.slist_free_all

static void
global_init (void)
{
  void *so = dlopen ("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
  if (so == NULL)
    {
      snprintf (lc.why, sizeof lc.why, "%s", dlerror ());
      return;
    }
  struct
  {
    const char *name;
    void **slot;
  } syms[] = {
    { "curl_global_init", (void **) &lc.global_init },
    { "curl_easy_init", (void **) &lc.easy_init },
    { "curl_easy_setopt", (void **) &lc.easy_setopt },
    { "curl_easy_perform", (void **) &lc.easy_perform },
    { "curl_easy_getinfo", (void **) &lc.easy_getinfo },
    { "curl_easy_cleanup", (void **) &lc.easy_cleanup },
    { "curl_easy_strerror", (void **) &lc.easy_strerror },
    { "curl_share_init", (void **) &lc.share_init },
    { "curl_share_setopt", (void **) &lc.share_setopt },
    { "curl_share_cleanup", (void **) &lc.share_cleanup },
    { "curl_slist_append", (void **) &lc.slist_append },
    { "curl_slist_free_all", (void **) &lc.slist_free_all },
  };
  for (size_t i = 0; i < KP_N_ELEMENTS (syms); i++)
    if ((*syms[i].slot = dlsym (so, syms[i].name)) == NULL)
      {
        snprintf (lc.why, sizeof lc.why, "libcurl.so.4 has no %s", syms[i].name);
        return;
      }
  lc.loaded = curl_global_init (CURL_GLOBAL_DEFAULT) == CURLE_OK;
  if (!lc.loaded)
    snprintf (lc.why, sizeof lc.why, "curl_global_init failed");
}

static int
need_curl (kp_error **err)
{
  pthread_once (&global_once, global_init);
  if (lc.loaded)
    return 0;
  kp_error_set (err, KP_EXIT_FAILURE, "the network needs libcurl, which cannot be loaded: %s",
                lc.why);
  kp_error_hint (err, "install it: apt-get install libcurl4");
  return -1;
}

static void
share_lock (CURL *handle, curl_lock_data data, curl_lock_access access, void *user)
{
  kp_http *h = user;
  pthread_mutex_lock (&h->locks[data]);
}

static void
share_unlock (CURL *handle, curl_lock_data data, void *user)
{
  kp_http *h = user;
  pthread_mutex_unlock (&h->locks[data]);
}

kp_http *
kp_http_new (void)
{
  kp_http *h = xcalloc (1, sizeof *h);
  pthread_mutex_init (&h->init_lock, NULL);
  for (size_t i = 0; i < KP_N_ELEMENTS (h->locks); i++)
    pthread_mutex_init (&h->locks[i], NULL);
  return h;
}

/* The connection cache, made on the first request (loading libcurl then). */
static int
http_ready (kp_http *h, kp_error **err)
{
  if (need_curl (err) < 0)
    return -1;
  pthread_mutex_lock (&h->init_lock);
  if (h->share != NULL)
    {
      pthread_mutex_unlock (&h->init_lock);
      return 0;
    }
  h->share = curl_share_init ();
  if (h->share == NULL)
    kp_oom ();
  curl_share_setopt (h->share, CURLSHOPT_LOCKFUNC, share_lock);
  curl_share_setopt (h->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
  curl_share_setopt (h->share, CURLSHOPT_USERDATA, h);
  curl_share_setopt (h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
  curl_share_setopt (h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
  curl_share_setopt (h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
  pthread_mutex_unlock (&h->init_lock);
  return 0;
}

void
kp_http_free (kp_http *h)
{
  if (h == NULL)
    return;
  if (h->share)
    curl_share_cleanup (h->share);
  pthread_mutex_destroy (&h->init_lock);
  for (size_t i = 0; i < KP_N_ELEMENTS (h->locks); i++)
    pthread_mutex_destroy (&h->locks[i]);
  free (h);
}

void
kp_http_freep (kp_http **h)
{
  kp_http_free (*h);
  *h = NULL;
}

void
kp_http_response_clear (kp_http_response *r)
{
  free (r->body);
  free (r->content_type);
  free (r->www_authenticate);
  free (r->docker_content_digest);
  free (r->location);
  free (r->effective_url);
  memset (r, 0, sizeof *r);
}

bool
kp_http_host_is_loopback (const char *host)
{
  if (host == NULL || *host == '\0')
    return false;
  kp_cleanup_free char *name = NULL;
  if (host[0] == '[')
    {
      const char *end = strchr (host, ']');
      if (end == NULL)
        return false;
      name = xstrndup (host + 1, (size_t) (end - host - 1));
    }
  else
    {
      const char *colon = strchr (host, ':');
      /* More than one colon without brackets: a bare IPv6 address. */
      if (colon && strchr (colon + 1, ':'))
        name = xstrdup (host);
      else
        name = colon ? xstrndup (host, (size_t) (colon - host)) : xstrdup (host);
    }
  if (strcasecmp (name, "localhost") == 0)
    return true;
  struct in_addr a4;
  if (inet_pton (AF_INET, name, &a4) == 1)
    return (ntohl (a4.s_addr) >> 24) == 127;
  struct in6_addr a6;
  if (inet_pton (AF_INET6, name, &a6) == 1)
    return memcmp (&a6, &in6addr_loopback, sizeof a6) == 0;
  return false;
}

/* The "HOST[:PORT]" part of a URL, or NULL. */
static char *
url_host (const char *url)
{
  const char *p = strstr (url, "://");
  if (p == NULL)
    return NULL;
  p += 3;
  size_t n = strcspn (p, "/?#");
  const char *at = memchr (p, '@', n);
  if (at)
    {
      n -= (size_t) (at + 1 - p);
      p = at + 1;
    }
  return xstrndup (p, n);
}

typedef struct transfer
{
  CURL *curl;
  const kp_http_request *req;
  kp_http_response *resp;
  kp_buf body;
  size_t max_body;
  kp_error *sink_err;
  bool too_big;
  bool range_ignored;   /* asked for a Range, got the whole body (200) */
  bool tls_relaxed;     /* certificates unchecked because the first host is loopback */
  char *refused;        /* a redirect target the open-socket callback refused, and why */
  uint64_t last_now;
} transfer;

static size_t
on_body (char *data, size_t size, size_t nmemb, void *user)
{
  transfer *t = user;
  size_t len = size * nmemb;
  long status = t->resp->status;
  if (t->req->sink && (status == 200 || status == 206))
    {
      /* A server that ignores Range sends the whole body with 200: those bytes must not
         reach a sink that holds the first part already. Stop before the first one; the
         caller sees status 200 and received 0 and decides. */
      if (t->req->range_start > 0 && status == 200)
        {
          t->range_ignored = true;
          return CURL_WRITEFUNC_ERROR;
        }
      if (t->req->sink (data, len, t->req->sink_data, &t->sink_err) < 0)
        return CURL_WRITEFUNC_ERROR;
      t->resp->received += len;
      return len;
    }
  /* No sink, or an error page: keep it for the caller, bounded. */
  if (t->body.len + len > t->max_body)
    {
      t->too_big = true;
      return CURL_WRITEFUNC_ERROR;
    }
  kp_buf_append (&t->body, data, len);
  t->resp->received += len;
  return len;
}

static void
set_header (char **slot, const char *value, size_t len)
{
  while (len > 0 && (value[len - 1] == '\r' || value[len - 1] == '\n' || value[len - 1] == ' '))
    len--;
  while (len > 0 && (*value == ' ' || *value == '\t'))
    value++, len--;
  free (*slot);
  *slot = xstrndup (value, len);
}

static size_t
on_header (char *data, size_t size, size_t nmemb, void *user)
{
  transfer *t = user;
  size_t len = size * nmemb;
  if (len >= 5 && strncmp (data, "HTTP/", 5) == 0)
    {
      /* A new response (after a redirect or 100-continue): forget the previous headers. */
      const char *sp = memchr (data, ' ', len);
      t->resp->status = sp ? strtol (sp + 1, NULL, 10) : 0;
      free (t->resp->content_type);
      free (t->resp->www_authenticate);
      free (t->resp->docker_content_digest);
      free (t->resp->location);
      t->resp->content_type = t->resp->www_authenticate = NULL;
      t->resp->docker_content_digest = t->resp->location = NULL;
      t->resp->content_length = 0;
      return len;
    }
  const char *colon = memchr (data, ':', len);
  if (colon == NULL)
    return len;
  size_t nlen = (size_t) (colon - data);
  const char *v = colon + 1;
  size_t vlen = len - nlen - 1;
  static const struct
  {
    const char *name;
    size_t off;
  } wanted[] = {
    { "content-type", offsetof (kp_http_response, content_type) },
    { "www-authenticate", offsetof (kp_http_response, www_authenticate) },
    { "docker-content-digest", offsetof (kp_http_response, docker_content_digest) },
    { "location", offsetof (kp_http_response, location) },
  };
  for (size_t i = 0; i < KP_N_ELEMENTS (wanted); i++)
    if (strlen (wanted[i].name) == nlen && strncasecmp (data, wanted[i].name, nlen) == 0)
      set_header ((char **) ((char *) t->resp + wanted[i].off), v, vlen);
  if (nlen == 14 && strncasecmp (data, "content-length", 14) == 0)
    {
      kp_cleanup_free char *n = xstrndup (v, vlen);
      t->resp->content_length = strtoull (n, NULL, 10);
    }
  return len;
}

static int
on_progress (void *user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
             curl_off_t ulnow)
{
  transfer *t = user;
  if (t->req->progress && dlnow > 0 && (uint64_t) dlnow != t->last_now)
    {
      t->last_now = (uint64_t) dlnow;
      uint64_t base = t->req->range_start;
      t->req->progress (t->req->progress_label, base + (uint64_t) dlnow,
                        dltotal > 0 ? base + (uint64_t) dltotal : 0, false,
                        t->req->progress_data);
    }
  return 0;
}

/* Runs before libcurl opens a connection, for the first URL and for every redirect that
 * needs a new one: the place to refuse a hop the first-URL check could not see. */
static curl_socket_t
on_open_socket (void *user, curlsocktype purpose, struct curl_sockaddr *address)
{
  transfer *t = user;
  char *url = NULL;
  curl_easy_getinfo (t->curl, CURLINFO_EFFECTIVE_URL, &url);
  kp_cleanup_free char *host = url ? url_host (url) : NULL;
  bool loopback = host && kp_http_host_is_loopback (host);
  if (!t->req->insecure && !loopback && url && strncmp (url, "http://", 7) == 0)
    {
      free (t->refused);
      t->refused = xasprintf ("a redirect to plain HTTP on %s (%s)", host, url);
      return CURL_SOCKET_BAD;
    }
  if (t->tls_relaxed && !loopback)
    {
      free (t->refused);
      t->refused = xasprintf ("a redirect from a loopback host, whose certificate is not "
                              "checked, to %s (%s)", host ? host : "?", url ? url : "?");
      return CURL_SOCKET_BAD;
    }
  return socket (address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
}

int
kp_http_get (kp_http *h, const kp_http_request *req, kp_http_response *resp, kp_error **err)
{
  memset (resp, 0, sizeof *resp);
  if (http_ready (h, err) < 0)
    return -1;
  bool https = strncmp (req->url, "https://", 8) == 0;
  bool http = strncmp (req->url, "http://", 7) == 0;
  kp_cleanup_free char *host = url_host (req->url);
  if ((!https && !http) || host == NULL)
    return kp_error_set (err, KP_EXIT_FAILURE, "'%s' is not an http(s) URL", req->url);
  bool relaxed = req->insecure || kp_http_host_is_loopback (host);
  if (http && !relaxed)
    {
      kp_error_set (err, KP_EXIT_FAILURE, "refusing plain HTTP to %s (%s)", host, req->url);
      kp_error_hint (err, "use https, or, for a registry you trust on your own network, "
                          "--tls-verify=false or 'insecure = true' for it in config.toml");
      return -1;
    }

  CURL *c = curl_easy_init ();
  if (c == NULL)
    kp_oom ();
  /* A loopback https server (a test registry) rarely has a certificate anyone issued. */
  bool verify = !req->insecure && !(https && kp_http_host_is_loopback (host));
  transfer t = { .curl = c,
                 .req = req,
                 .resp = resp,
                 .max_body = req->max_body ? req->max_body : 16 << 20,
                 .tls_relaxed = !verify && !req->insecure };
  struct curl_slist *headers = NULL;
  for (const char *const *hp = req->headers; hp && *hp; hp++)
    headers = curl_slist_append (headers, *hp);
  char range[48];
  if (req->range_start > 0)
    {
      snprintf (range, sizeof range, "%llu-", (unsigned long long) req->range_start);
      curl_easy_setopt (c, CURLOPT_RANGE, range);
    }
  curl_easy_setopt (c, CURLOPT_URL, req->url);
  curl_easy_setopt (c, CURLOPT_SHARE, h->share);
  curl_easy_setopt (c, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt (c, CURLOPT_USERAGENT, "karapace");
  curl_easy_setopt (c, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt (c, CURLOPT_MAXREDIRS, 10L);
  /* Never downgrade: an https start may only be redirected to https. */
  curl_easy_setopt (c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt (c, CURLOPT_REDIR_PROTOCOLS_STR, https ? "https" : "http,https");
  /* Keep Authorization for the first host (see the top of this file). */
  curl_easy_setopt (c, CURLOPT_UNRESTRICTED_AUTH, 0L);
  curl_easy_setopt (c, CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
  curl_easy_setopt (c, CURLOPT_OPENSOCKETDATA, &t);
  curl_easy_setopt (c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt (c, CURLOPT_CONNECTTIMEOUT, 30L);
  curl_easy_setopt (c, CURLOPT_LOW_SPEED_LIMIT, 1024L);
  curl_easy_setopt (c, CURLOPT_LOW_SPEED_TIME, req->timeout_s > 0 ? req->timeout_s : 30L);
  /* Digests are over the bytes as stored: no transparent decompression. */
  curl_easy_setopt (c, CURLOPT_ACCEPT_ENCODING, "identity");
  curl_easy_setopt (c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt (c, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt (c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt (c, CURLOPT_HEADERDATA, &t);
  if (req->method && strcmp (req->method, "HEAD") == 0)
    curl_easy_setopt (c, CURLOPT_NOBODY, 1L);
  if (req->progress)
    {
      curl_easy_setopt (c, CURLOPT_XFERINFOFUNCTION, on_progress);
      curl_easy_setopt (c, CURLOPT_XFERINFODATA, &t);
      curl_easy_setopt (c, CURLOPT_NOPROGRESS, 0L);
    }
  if (!verify)
    {
      curl_easy_setopt (c, CURLOPT_SSL_VERIFYPEER, 0L);
      curl_easy_setopt (c, CURLOPT_SSL_VERIFYHOST, 0L);
    }
  char errbuf[CURL_ERROR_SIZE] = "";
  curl_easy_setopt (c, CURLOPT_ERRORBUFFER, errbuf);

  CURLcode rc = curl_easy_perform (c);
  long status = 0;
  curl_easy_getinfo (c, CURLINFO_RESPONSE_CODE, &status);
  resp->status = status;
  char *eff = NULL;
  if (curl_easy_getinfo (c, CURLINFO_EFFECTIVE_URL, &eff) == CURLE_OK && eff)
    resp->effective_url = xstrdup (eff);
  curl_easy_cleanup (c);
  curl_slist_free_all (headers);

  int ret = 0;
  if (rc == CURLE_WRITE_ERROR && t.range_ignored)
    ret = 0; /* a response: status 200 with nothing delivered, for the caller to judge */
  else if (t.refused)
    {
      kp_error_set (err, KP_EXIT_FAILURE, "%s: refused %s", req->url, t.refused);
      kp_error_hint (err, "if you trust this server and the network to it, allow it with "
                          "--tls-verify=false or 'insecure = true' in config.toml");
      ret = -1;
    }
  else if (rc == CURLE_WRITE_ERROR && t.sink_err)
    {
      if (err)
        *err = kp_steal_pointer (&t.sink_err);
      ret = -1;
    }
  else if (rc == CURLE_WRITE_ERROR && t.too_big)
    ret = kp_error_set (err, KP_EXIT_FAILURE, "%s: the answer is larger than %zu bytes",
                        req->url, t.max_body);
  else if (rc != CURLE_OK)
    {
      kp_error_set (err, KP_EXIT_FAILURE, "%s: %s", req->url, errbuf[0] ? errbuf
                                                                   : curl_easy_strerror (rc));
      switch (rc)
        {
        case CURLE_COULDNT_RESOLVE_HOST:
          kp_error_hint (err, "check the host name and your network (DNS)");
          break;
        case CURLE_COULDNT_CONNECT:
          kp_error_hint (err, "is the server running and reachable from here?");
          break;
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_SSL_CONNECT_ERROR:
          kp_error_hint (err, "the server's TLS certificate was not accepted (is the system's "
                              "CA bundle installed?); only for a registry you trust, on a "
                              "network you trust, --tls-verify=false skips the check");
          break;
        case CURLE_OPERATION_TIMEDOUT:
          kp_error_hint (err, "the transfer stalled; try again");
          break;
        case CURLE_UNSUPPORTED_PROTOCOL:
          kp_error_hint (err, "a redirect from https to plain http is refused");
          break;
        default:
          break;
        }
      ret = -1;
    }
  kp_error_free (t.sink_err);
  free (t.refused);
  if (ret == 0)
    {
      resp->body_len = t.body.len;
      kp_buf_append (&t.body, "", 1);
      resp->body = kp_buf_steal (&t.body);
      if (req->progress && req->progress_label)
        req->progress (req->progress_label, req->range_start + resp->received,
                       req->range_start + resp->received, true, req->progress_data);
    }
  kp_buf_clear (&t.body);
  return ret;
}

/* ---- several at once ----
 *
 * A fixed set of threads takes job indexes from a shared counter. After the first failure
 * no new job starts (the pull fails anyway, so more bandwidth would be wasted), but the
 * ones under way run to their end, so every job that started has called its callbacks to
 * completion when kp_http_run_parallel returns. */

typedef struct pool
{
  kp_http *h;
  size_t n, next;
  kp_http_job_fn fn;
  void *user_data;
  pthread_mutex_t lock;
  kp_error *first;
  bool failed;
} pool;

static void *
worker (void *data)
{
  pool *p = data;
  for (;;)
    {
      pthread_mutex_lock (&p->lock);
      size_t i = p->next < p->n && !p->failed ? p->next++ : p->n;
      pthread_mutex_unlock (&p->lock);
      if (i >= p->n)
        return NULL;
      kp_error *e = NULL;
      if (p->fn (p->h, i, p->user_data, &e) < 0)
        {
          if (e == NULL)
            kp_error_set (&e, KP_EXIT_FAILURE, "transfer %zu failed", i + 1);
          pthread_mutex_lock (&p->lock);
          p->failed = true;
          if (p->first == NULL)
            p->first = kp_steal_pointer (&e);
          pthread_mutex_unlock (&p->lock);
          kp_error_free (e);
        }
      else
        kp_error_free (e);
    }
}

int
kp_http_run_parallel (kp_http *h, size_t n, unsigned parallel, kp_http_job_fn fn,
                      void *user_data, kp_error **err)
{
  if (n == 0)
    return 0;
  if (parallel == 0)
    parallel = 4;
  if (parallel > n)
    parallel = (unsigned) n;
  pool p = { .h = h, .n = n, .fn = fn, .user_data = user_data };
  pthread_mutex_init (&p.lock, NULL);
  kp_cleanup_free pthread_t *threads = xcalloc (parallel, sizeof *threads);
  unsigned started = 0;
  /* The calling thread is one of the workers; a thread that cannot be created only makes
     the pool smaller. */
  for (unsigned i = 1; i < parallel; i++)
    {
      if (pthread_create (&threads[started], NULL, worker, &p) != 0)
        break;
      started++;
    }
  worker (&p);
  for (unsigned i = 0; i < started; i++)
    pthread_join (threads[i], NULL);
  pthread_mutex_destroy (&p.lock);
  if (p.first)
    {
      if (err)
        *err = p.first;
      else
        kp_error_free (p.first);
      return -1;
    }
  return 0;
}
