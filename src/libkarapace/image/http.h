/* http.h — HTTP(S) transfers on libcurl, for registries, image servers and mirrors.
 *
 * One kp_http per pull: it keeps connections alive (a curl share of DNS, TLS sessions and
 * the connection pool), so many requests to one host pay one handshake. Transfers are
 * blocking; kp_http_run_parallel() runs several at once (one thread each, bounded).
 *
 * Security: TLS certificates are verified and plain http:// is refused, unless the host is
 * a loopback address (127.0.0.0/8, ::1, "localhost") — as Docker does — or the caller set
 * `insecure` because the user asked for it (--tls-verify=false, a registry the
 * configuration file marks insecure). Redirects are followed (registries send blob
 * downloads to storage servers) but never from https to http, and Authorization headers are
 * not sent to another host. */
#ifndef KP_IMAGE_HTTP_H
#define KP_IMAGE_HTTP_H

#include "base/error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct kp_http kp_http;

/* Shows what a transfer does; the caller owns it (a progress bar on a terminal). Called
 * from the transfer's thread, at most a few times a second, and once at the end with
 * done == true. `total` is 0 when unknown. */
typedef void (*kp_http_progress_fn) (const char *label, uint64_t now, uint64_t total, bool done,
                                     void *user_data);

kp_http *kp_http_new (void);
void kp_http_free (kp_http *h);
void kp_http_freep (kp_http **h);
#define kp_cleanup_http __attribute__ ((cleanup (kp_http_freep)))

/* True for 127.0.0.0/8, ::1, localhost (with or without a port): hosts where plain HTTP and
 * unverified TLS are allowed without asking. `host` is "HOST[:PORT]" or "[V6]:PORT". */
bool kp_http_host_is_loopback (const char *host);

typedef struct kp_http_request
{
  const char *method;        /* "GET" (NULL), "HEAD" */
  const char *url;
  const char *const *headers; /* "Name: value" lines, NULL-terminated, or NULL */
  bool insecure;             /* allow http:// and unverified TLS for any host */
  uint64_t range_start;      /* > 0: ask for bytes from here on (Range); see `status` 206.
                                A server that ignores Range answers 200: then no byte
                                reaches the sink and kp_http_get returns 0 with status 200 */
  /* Where the body goes: when `sink` is set it gets every chunk (return < 0 to abort the
   * transfer; the error it sets is what kp_http_get returns); otherwise the body is kept in
   * the response, up to max_body bytes (0: 16 MiB), and a longer body is an error. */
  int (*sink) (const void *data, size_t len, void *user_data, kp_error **err);
  void *sink_data;
  size_t max_body;
  const char *progress_label; /* NULL: no progress reports */
  kp_http_progress_fn progress;
  void *progress_data;
  long timeout_s;             /* stall timeout: fail when < 1 KiB/s for this long (0: 30 s) */
} kp_http_request;

typedef struct kp_http_response
{
  long status;               /* the final status after redirects */
  char *body;                /* when no sink: NUL-terminated body */
  size_t body_len;
  char *content_type;        /* headers of the final response, or NULL */
  char *www_authenticate;
  char *docker_content_digest;
  char *location;
  char *effective_url;
  uint64_t content_length;   /* 0 when not given */
  uint64_t received;         /* body bytes delivered (to the sink or kept) */
} kp_http_response;

void kp_http_response_clear (kp_http_response *r);
#define kp_cleanup_http_response __attribute__ ((cleanup (kp_http_response_clear)))

/* Perform one request. Returns 0 when a response came back, whatever its status (the
 * caller judges it), -1 when none did (DNS, connection, TLS, timeout, an aborting sink, a
 * refused insecure URL): the error names the URL and what to check. */
int kp_http_get (kp_http *h, const kp_http_request *req, kp_http_response *resp, kp_error **err);

/* Run n independent jobs on up to `parallel` threads (0: 4). Each job is a function that
 * usually calls kp_http_get; the first failure is returned (the jobs under way still
 * finish; jobs not yet started are skipped), with *err set. */
typedef int (*kp_http_job_fn) (kp_http *h, size_t index, void *user_data, kp_error **err);
int kp_http_run_parallel (kp_http *h, size_t n, unsigned parallel, kp_http_job_fn fn,
                          void *user_data, kp_error **err);

#endif
