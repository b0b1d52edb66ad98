/* digest.c — "ALGORITHM:HEX" digests: SHA-2 through libcrypto's EVP interface (which picks
 * the CPU's SHA instructions), BLAKE3 through our own implementation. */
#include "hash/digest.h"

#include "hash/blake3.h"

#include <dlfcn.h>
#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* libcrypto is loaded on the first SHA-2 digest, not at start-up: it is a large library
   that most commands (exec, enter, list, …) never need. */
static struct
{
  EVP_MD_CTX *(*ctx_new) (void);
  void (*ctx_free) (EVP_MD_CTX *);
  int (*ctx_copy) (EVP_MD_CTX *, const EVP_MD_CTX *);
  int (*init) (EVP_MD_CTX *, const EVP_MD *, ENGINE *);
  int (*update) (EVP_MD_CTX *, const void *, size_t);
  int (*final) (EVP_MD_CTX *, unsigned char *, unsigned int *);
  const EVP_MD *(*sha256) (void);
  const EVP_MD *(*sha512) (void);
} lc;
static pthread_once_t lc_once = PTHREAD_ONCE_INIT;

static void
load_libcrypto (void)
{
  void *so = dlopen ("libcrypto.so.3", RTLD_NOW | RTLD_LOCAL);
  struct
  {
    const char *name;
    void **slot;
  } syms[] = {
    { "EVP_MD_CTX_new", (void **) &lc.ctx_new },   { "EVP_MD_CTX_free", (void **) &lc.ctx_free },
    { "EVP_MD_CTX_copy_ex", (void **) &lc.ctx_copy }, { "EVP_DigestInit_ex", (void **) &lc.init },
    { "EVP_DigestUpdate", (void **) &lc.update },  { "EVP_DigestFinal_ex", (void **) &lc.final },
    { "EVP_sha256", (void **) &lc.sha256 },        { "EVP_sha512", (void **) &lc.sha512 },
  };
  for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++)
    if (so == NULL || (*syms[i].slot = dlsym (so, syms[i].name)) == NULL)
      {
        fprintf (stderr, "karapace: error: SHA-2 needs libcrypto.so.3, which cannot be "
                         "loaded: %s\n  hint: install it: apt-get install libssl3\n",
                 dlerror ());
        exit (1);
      }
}

#define EVP_MD_CTX_new (pthread_once (&lc_once, load_libcrypto), lc.ctx_new)
#define EVP_MD_CTX_free lc.ctx_free
#define EVP_MD_CTX_copy_ex lc.ctx_copy
#define EVP_DigestInit_ex lc.init
#define EVP_DigestUpdate lc.update
#define EVP_DigestFinal_ex lc.final
#define EVP_sha256 lc.sha256
#define EVP_sha512 lc.sha512

struct kp_digest
{
  kp_digest_algo algo;
  uint64_t length;
  EVP_MD_CTX *evp; /* SHA-2 */
  kp_blake3 b3;
};

static const struct
{
  const char *name;
  size_t len;
} algos[] = {
  [KP_DIGEST_SHA256] = { "sha256", 32 },
  [KP_DIGEST_SHA512] = { "sha512", 64 },
  [KP_DIGEST_BLAKE3] = { "blake3", 32 },
};

const char *
kp_digest_algo_name (kp_digest_algo algo)
{
  return (size_t) algo < KP_N_ELEMENTS (algos) ? algos[algo].name : "unknown";
}

size_t
kp_digest_algo_len (kp_digest_algo algo)
{
  return (size_t) algo < KP_N_ELEMENTS (algos) ? algos[algo].len : 0;
}

static int
hex_value (char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  return -1;
}

int
kp_digest_parse (const char *s, kp_digest_algo *algo, uint8_t out[KP_DIGEST_MAX_LEN],
                 kp_error **err)
{
  const char *colon = s ? strchr (s, ':') : NULL;
  if (colon == NULL)
    return kp_error_set (err, KP_EXIT_FAILURE, "'%s' is not a digest: the form is "
                         "ALGORITHM:HEX (sha256:…)", s ? s : "");
  size_t name_len = (size_t) (colon - s);
  for (size_t a = 0; a < KP_N_ELEMENTS (algos); a++)
    {
      if (strlen (algos[a].name) != name_len || strncmp (s, algos[a].name, name_len) != 0)
        continue;
      const char *hex = colon + 1;
      size_t hex_len = strlen (hex);
      if (hex_len != 2 * algos[a].len)
        return kp_error_set (err, KP_EXIT_FAILURE, "digest '%s' has %zu hexadecimal digits, "
                             "%s needs %zu", s, hex_len, algos[a].name, 2 * algos[a].len);
      for (size_t i = 0; i < algos[a].len; i++)
        {
          int hi = hex_value (hex[2 * i]);
          int lo = hex_value (hex[2 * i + 1]);
          if (hi < 0 || lo < 0)
            return kp_error_set (err, KP_EXIT_FAILURE, "digest '%s': '%c' is not a lowercase "
                                 "hexadecimal digit", s, hi < 0 ? hex[2 * i] : hex[2 * i + 1]);
          if (out)
            out[i] = (uint8_t) (hi << 4 | lo);
        }
      if (algo)
        *algo = (kp_digest_algo) a;
      return 0;
    }
  return kp_error_set (err, KP_EXIT_FAILURE, "digest '%s': unsupported algorithm '%.*s' "
                       "(sha256, sha512 or blake3)", s, (int) name_len, s);
}

bool
kp_digest_is_valid (const char *s, kp_digest_algo *algo)
{
  return kp_digest_parse (s, algo, NULL, NULL) == 0;
}

kp_digest *
kp_digest_new (kp_digest_algo algo)
{
  kp_digest *d = xcalloc (1, sizeof *d);
  d->algo = algo;
  if (algo == KP_DIGEST_BLAKE3)
    {
      kp_blake3_init (&d->b3);
      return d;
    }
  d->evp = EVP_MD_CTX_new ();
  if (d->evp == NULL
      || EVP_DigestInit_ex (d->evp, algo == KP_DIGEST_SHA256 ? EVP_sha256 () : EVP_sha512 (),
                            NULL) != 1)
    kp_oom ();
  return d;
}

void
kp_digest_update (kp_digest *d, const void *data, size_t len)
{
  d->length += len;
  if (d->algo == KP_DIGEST_BLAKE3)
    kp_blake3_update (&d->b3, data, len);
  else if (EVP_DigestUpdate (d->evp, data, len) != 1)
    kp_oom ();
}

uint64_t
kp_digest_length (const kp_digest *d)
{
  return d->length;
}

void
kp_digest_final (kp_digest *d, char out[KP_DIGEST_STRING_MAX])
{
  static const char hex[] = "0123456789abcdef";
  uint8_t raw[KP_DIGEST_MAX_LEN];
  size_t n = algos[d->algo].len;
  if (d->algo == KP_DIGEST_BLAKE3)
    kp_blake3_final (&d->b3, raw, n);
  else
    {
      unsigned int got = 0;
      if (EVP_DigestFinal_ex (d->evp, raw, &got) != 1 || got != n)
        kp_oom ();
    }
  size_t p = (size_t) snprintf (out, KP_DIGEST_STRING_MAX, "%s:", algos[d->algo].name);
  for (size_t i = 0; i < n; i++)
    {
      out[p++] = hex[raw[i] >> 4];
      out[p++] = hex[raw[i] & 15];
    }
  out[p] = '\0';
}

kp_digest *
kp_digest_clone (const kp_digest *d)
{
  kp_digest *c = xcalloc (1, sizeof *c);
  c->algo = d->algo;
  c->length = d->length;
  if (d->algo == KP_DIGEST_BLAKE3)
    c->b3 = d->b3;
  else
    {
      c->evp = EVP_MD_CTX_new ();
      if (c->evp == NULL || EVP_MD_CTX_copy_ex (c->evp, d->evp) != 1)
        kp_oom ();
    }
  return c;
}

void
kp_digest_free (kp_digest *d)
{
  if (d == NULL)
    return;
  if (d->evp)
    EVP_MD_CTX_free (d->evp);
  free (d);
}

void
kp_digest_freep (kp_digest **d)
{
  kp_digest_free (*d);
  *d = NULL;
}

void
kp_digest_buffer (kp_digest_algo algo, const void *data, size_t len,
                  char out[KP_DIGEST_STRING_MAX])
{
  kp_cleanup_digest kp_digest *d = kp_digest_new (algo);
  kp_digest_update (d, data, len);
  kp_digest_final (d, out);
}

int
kp_digest_fd (kp_digest_algo algo, int fd, char out[KP_DIGEST_STRING_MAX], kp_error **err)
{
  kp_cleanup_digest kp_digest *d = kp_digest_new (algo);
  kp_cleanup_free char *buf = xmalloc (1 << 17);
  for (;;)
    {
      ssize_t n = read (fd, buf, 1 << 17);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return kp_error_errno (err, errno, "read");
      if (n == 0)
        break;
      kp_digest_update (d, buf, (size_t) n);
    }
  kp_digest_final (d, out);
  return 0;
}
