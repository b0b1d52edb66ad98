/* pull.h — resolve a base image reference to a base layer in the store (docs/images.md).
 *
 * Every source ends the same way: the bytes are checked against the digest the source
 * names (a registry's sha256, the simplestreams index's sha256, a reference's #sha256= or
 * #blake3=), kept as store objects, applied in order into one layer (whiteouts resolved,
 * owners kept, in the store's user namespace), and an image record names the layer by its
 * tree digest under the image's content digest. A tag record remembers what a reference
 * resolved to and when, so a second pull of an unchanged tag costs one manifest request,
 * and a pull of a digest-pinned reference already in the store costs none. */
#ifndef KP_IMAGE_PULL_H
#define KP_IMAGE_PULL_H

#include "base/error.h"
#include "image/image-config.h"
#include "image/http.h"
#include "image/reference.h"
#include "store/store.h"

typedef struct kp_pull_options
{
  const kp_image_config *config; /* registries, LXC server; NULL: the defaults */
  int tls_verify;       /* -1: the configuration decides (loopback is always allowed);
                           0: plain HTTP and unverified TLS allowed; 1: always verify */
  const char *platform; /* "OS/ARCH[/VARIANT]" for registry images; NULL: this host's */
  const char *username; /* registry credentials overriding the auth files */
  const char *password;
  const char *auth_file;
  bool offline;         /* never touch the network: the cache or an error */
  bool progress;        /* draw progress on stderr (a terminal) */
} kp_pull_options;

typedef struct kp_pull_result
{
  char *reference; /* canonical reference that was pulled */
  char *digest;    /* the image record's key: "sha256:…" (registry manifest, archive) */
  char *pinned;    /* the reference pinned to that content, or NULL when the kind cannot be
                      pinned (dir://, oci-layout://) */
  char tree_digest[KP_BLAKE3_HEX_LEN + 1];
  bool cached;     /* nothing was downloaded or unpacked */
  uint64_t bytes;  /* bytes downloaded or read */
  unsigned requests; /* network requests made */
} kp_pull_result;

void kp_pull_result_clear (kp_pull_result *r);
#define kp_cleanup_pull_result __attribute__ ((cleanup (kp_pull_result_clear)))

/* Fetch (or find in the cache) what `ref` names and make it a base layer. The store must be
 * open for writing. */
int kp_image_pull (kp_store *store, const kp_image_ref *ref, const kp_pull_options *opts,
                   kp_pull_result *out, kp_error **err);

/* Does the reference name fixed content (a registry digest, a #sha256=/#blake3= check)? */
bool kp_image_ref_is_pinned (const kp_image_ref *ref);

/* Find an image record by what a user types: a digest ("sha256:…", or a unique prefix of
 * its hex of 6+ characters), or a reference that was pulled (canonical or not; aliases
 * resolved). Returns the record's digest (caller frees) or NULL with *err. */
char *kp_image_find (kp_store *store, const char *what, const kp_image_aliases *aliases,
                     kp_error **err);

#endif
