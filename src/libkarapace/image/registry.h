/* registry.h — a client of the OCI Distribution API v2 (docs/images.md).
 *
 * What it does: ping /v2/, authenticate (anonymous, bearer token from the realm named in
 * WWW-Authenticate with the scope "repository:REPO:pull", HTTP basic), fetch a manifest by
 * tag or digest (OCI image manifest and index, Docker schema 2 manifest and manifest list),
 * select the platform from an index, fetch the config, and download blobs — each checked
 * against its digest while it streams, resumed with Range after a broken transfer, several
 * at once.
 *
 * Credentials come from the files podman and docker write, first match wins:
 * $REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json,
 * ~/.config/containers/auth.json, ~/.docker/config.json ("auths" → host → "auth" =
 * base64(user:password)); kp_registry_options.username/password override them. */
#ifndef KP_IMAGE_REGISTRY_H
#define KP_IMAGE_REGISTRY_H

#include "base/error.h"
#include "image/http.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/* Media types. */
#define KP_MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define KP_MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define KP_MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define KP_MT_DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"

typedef struct kp_platform
{
  char *os;           /* "linux" */
  char *architecture; /* "amd64", "arm64", … (GOARCH names) */
  char *variant;      /* "v8", or NULL */
} kp_platform;

/* The host's platform in GOARCH terms (x86_64 → amd64, aarch64 → arm64 + v8, …). */
void kp_platform_host (kp_platform *out);
/* "linux/arm64/v8". Caller frees. */
char *kp_platform_format (const kp_platform *p);
/* Parse "OS/ARCH[/VARIANT]". */
int kp_platform_parse (const char *text, kp_platform *out, kp_error **err);
void kp_platform_clear (kp_platform *p);

typedef struct kp_oci_descriptor
{
  char *media_type;
  char *digest; /* "sha256:…" */
  uint64_t size;
  kp_platform platform; /* index entries only */
} kp_oci_descriptor;

/* A resolved single-platform image: what a reference names after platform selection. */
typedef struct kp_oci_image
{
  char *digest;          /* digest of what the reference named: the index when it was one,
                            else the manifest. This is what a pinned reference carries. */
  char *manifest_digest; /* the platform's image manifest */
  char *manifest_media_type;
  json_t *manifest;      /* parsed image manifest */
  kp_oci_descriptor config;
  json_t *config_json;   /* parsed image config, when fetched */
  size_t n_layers;
  kp_oci_descriptor *layers; /* in order, base first */
  kp_platform platform;  /* from the config (or the index entry) */
} kp_oci_image;

void kp_oci_image_clear (kp_oci_image *img);
#define kp_cleanup_oci_image __attribute__ ((cleanup (kp_oci_image_clear)))

/* Parse manifest bytes of any of the four media types. When they are an index or a list,
 * choose the entry for `want` (os and architecture must match; the variant too when both
 * give one; among several matches the first) and return its descriptor in *chosen with
 * *is_index = true; the error for no match lists the platforms offered. When they are an
 * image manifest, fill img->config, img->layers and img->manifest. Layer media types
 * accepted: OCI tar, tar+gzip, tar+zstd, Docker rootfs.diff.tar.gzip; anything else
 * (foreign/non-distributable layers, encrypted layers) is refused by name. */
int kp_oci_parse_manifest (const char *bytes, size_t len, const char *media_type,
                           const kp_platform *want, bool *is_index, kp_oci_descriptor *chosen,
                           kp_oci_image *img, kp_error **err);
void kp_oci_descriptor_clear (kp_oci_descriptor *d);

typedef struct kp_registry_options
{
  bool insecure;            /* plain http / unverified TLS for a non-loopback registry */
  const char *username;     /* overrides the auth files when set */
  const char *password;
  const char *auth_file;    /* only this file, instead of the standard places */
  kp_platform platform;     /* zeroed: the host's */
  unsigned parallel;        /* blob downloads at once; 0: 4 */
  kp_http_progress_fn progress; /* NULL: quiet */
  void *progress_data;
} kp_registry_options;

typedef struct kp_registry kp_registry;

/* A client for one repository of one registry ("127.0.0.1:5000", "library/debian"). For
 * docker.io the API host is registry-1.docker.io. Nothing is sent yet. */
kp_registry *kp_registry_new (kp_http *http, const char *registry, const char *repository,
                              const kp_registry_options *opts, kp_error **err);
void kp_registry_free (kp_registry *r);
void kp_registry_freep (kp_registry **r);
#define kp_cleanup_registry __attribute__ ((cleanup (kp_registry_freep)))

/* Resolve `tag_or_digest` to an image for the options' platform: fetch the manifest (and,
 * through an index, the platform's manifest), check each against its digest (the digest
 * asked for, else Docker-Content-Digest when given), fetch and check the config. Wrong
 * credentials, an unknown repository or tag, a refused token: errors that say which and
 * what to do. */
int kp_registry_resolve (kp_registry *r, const char *tag_or_digest, kp_oci_image *out,
                         kp_error **err);

/* Only the digest a tag names now (one HEAD request, GET when HEAD gives no digest), for
 * "is my cached copy current?". */
int kp_registry_head_digest (kp_registry *r, const char *tag, char **digest, kp_error **err);

/* Download blobs. Bytes of blob i go to write(i, …) in order; they are checked against
 * blobs[i].digest and size while they stream; a broken transfer is retried from where it
 * stopped with Range (write then gets only the new bytes), up to 3 times; a mismatch calls
 * discard(i) and fails the whole call with an error naming the blob. done(i) is called
 * after the last byte of a verified blob. Blobs download on several threads at once (the
 * callbacks for one index are never called concurrently; for different indexes they may
 * be). */
typedef struct kp_blob_sink
{
  int (*write) (size_t index, const void *data, size_t len, void *user_data, kp_error **err);
  int (*done) (size_t index, void *user_data, kp_error **err);
  void (*discard) (size_t index, void *user_data);
  void *user_data;
} kp_blob_sink;

int kp_registry_fetch_blobs (kp_registry *r, const kp_oci_descriptor *blobs, size_t n,
                             const kp_blob_sink *sink, kp_error **err);

/* The bytes of one small blob (a config), checked, up to max bytes. */
int kp_registry_fetch_small_blob (kp_registry *r, const kp_oci_descriptor *blob, size_t max,
                                  char **bytes, size_t *len, kp_error **err);

/* Counts of requests made through this client, by kind, for the "a cached pull costs one
 * manifest request" promise and for tests: manifest GET/HEAD, blob GET, token GET. */
typedef struct kp_registry_stats
{
  unsigned manifest_requests, blob_requests, token_requests, ping_requests;
  uint64_t blob_bytes;
} kp_registry_stats;
const kp_registry_stats *kp_registry_get_stats (const kp_registry *r);

#endif
