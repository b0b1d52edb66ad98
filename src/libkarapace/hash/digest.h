/* digest.h — "ALGORITHM:HEX" content digests as registries, archives and indexes name them.
 *
 * OCI and Docker name blobs "sha256:<64 hex>" (sometimes "sha512:<128 hex>"); Debian's
 * indexes give SHA256; our own references may say "blake3:<64 hex>". One streaming type
 * computes any of them, so a download is checked while it arrives. SHA-2 comes from
 * libcrypto (OpenSSL), which uses the CPU's SHA extensions; BLAKE3 is ours (blake3.h). */
#ifndef KP_HASH_DIGEST_H
#define KP_HASH_DIGEST_H

#include "base/error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum kp_digest_algo
{
  KP_DIGEST_SHA256,
  KP_DIGEST_SHA512,
  KP_DIGEST_BLAKE3,
} kp_digest_algo;

#define KP_DIGEST_MAX_LEN 64                       /* bytes (sha512) */
#define KP_DIGEST_STRING_MAX (7 + 2 * KP_DIGEST_MAX_LEN + 1) /* "sha512:" + hex + NUL */

/* "sha256", "sha512", "blake3". */
const char *kp_digest_algo_name (kp_digest_algo algo);
/* Output length in bytes: 32, 64, 32. */
size_t kp_digest_algo_len (kp_digest_algo algo);

/* Is `s` a well-formed "ALGO:HEX" with a known algorithm, lowercase hex of the right
 * length? When algo is not NULL it receives the algorithm. */
bool kp_digest_is_valid (const char *s, kp_digest_algo *algo);
/* As kp_digest_is_valid(), with an error that says what is wrong (status KP_EXIT_FAILURE). */
int kp_digest_parse (const char *s, kp_digest_algo *algo, uint8_t out[KP_DIGEST_MAX_LEN],
                     kp_error **err);

typedef struct kp_digest kp_digest; /* a running hash */

kp_digest *kp_digest_new (kp_digest_algo algo);
void kp_digest_update (kp_digest *d, const void *data, size_t len);
/* Total bytes fed so far. */
uint64_t kp_digest_length (const kp_digest *d);
/* Finish into "ALGO:HEX" (KP_DIGEST_STRING_MAX bytes). The state may not be updated after. */
void kp_digest_final (kp_digest *d, char out[KP_DIGEST_STRING_MAX]);
/* A copy of the running state (to finish one copy and keep feeding the other). */
kp_digest *kp_digest_clone (const kp_digest *d);
void kp_digest_free (kp_digest *d);
void kp_digest_freep (kp_digest **d);
#define kp_cleanup_digest __attribute__ ((cleanup (kp_digest_freep)))

/* One-shot helpers: the digest of a buffer, or of everything readable from fd. */
void kp_digest_buffer (kp_digest_algo algo, const void *data, size_t len,
                       char out[KP_DIGEST_STRING_MAX]);
int kp_digest_fd (kp_digest_algo algo, int fd, char out[KP_DIGEST_STRING_MAX], kp_error **err);

#endif
