/* blake3.h — BLAKE3 (hash, keyed hash, key derivation, extendable output).
 *
 * Written from the public BLAKE3 specification. The portable compression function is the
 * reference; the seam for SIMD is kp_blake3_hash_many(), which hashes several whole chunks
 * (or parent nodes) at once. On x86-64 it also has SSE4.1, AVX2 and AVX-512 versions
 * (blake3-*.c), one of which is selected at run time. */
#ifndef KP_HASH_BLAKE3_H
#define KP_HASH_BLAKE3_H

#include "base/error.h"

#define KP_BLAKE3_OUT_LEN 32
#define KP_BLAKE3_KEY_LEN 32
#define KP_BLAKE3_BLOCK_LEN 64
#define KP_BLAKE3_CHUNK_LEN 1024
#define KP_BLAKE3_MAX_DEPTH 54
#define KP_BLAKE3_HEX_LEN (KP_BLAKE3_OUT_LEN * 2)

typedef struct kp_blake3_chunk_state
{
  uint32_t cv[8];
  uint64_t chunk_counter;
  uint8_t buf[KP_BLAKE3_BLOCK_LEN];
  uint8_t buf_len;
  uint8_t blocks_compressed;
  uint8_t flags;
} kp_blake3_chunk_state;

typedef struct kp_blake3
{
  uint32_t key[8];
  kp_blake3_chunk_state chunk;
  uint8_t cv_stack_len;
  uint8_t cv_stack[(KP_BLAKE3_MAX_DEPTH + 1) * KP_BLAKE3_OUT_LEN];
} kp_blake3;

void kp_blake3_init (kp_blake3 *h);
void kp_blake3_init_keyed (kp_blake3 *h, const uint8_t key[KP_BLAKE3_KEY_LEN]);
void kp_blake3_init_derive_key (kp_blake3 *h, const char *context);
void kp_blake3_update (kp_blake3 *h, const void *data, size_t len);
/* Any output length (extendable output); does not change the state. */
void kp_blake3_final (const kp_blake3 *h, uint8_t *out, size_t out_len);
/* Extendable output starting at a byte offset. */
void kp_blake3_final_seek (const kp_blake3 *h, uint64_t seek, uint8_t *out, size_t out_len);

/* One-shot helpers. `hex` receives KP_BLAKE3_HEX_LEN chars plus NUL. */
void kp_blake3_hash (const void *data, size_t len, uint8_t out[KP_BLAKE3_OUT_LEN]);
void kp_blake3_to_hex (const uint8_t digest[KP_BLAKE3_OUT_LEN], char hex[KP_BLAKE3_HEX_LEN + 1]);
/* Parse 64 lowercase or uppercase hex chars; -1 if malformed. */
int kp_blake3_from_hex (const char *hex, uint8_t digest[KP_BLAKE3_OUT_LEN]);

/* Hash everything readable from fd (streaming, no whole-file buffering). */
int kp_blake3_fd (int fd, uint8_t out[KP_BLAKE3_OUT_LEN], kp_error **err);
/* Open `path` (following links, like b3sum) and hash it; errors name the path. */
int kp_blake3_file (const char *path, uint8_t out[KP_BLAKE3_OUT_LEN], kp_error **err);
/* As kp_blake3_fd(), reading through the caller's buffer, for hashing many files in a row.
 * The error message is "read" with errno; callers add which file it was. */
int kp_blake3_fd_buffer (int fd, void *buf, size_t buf_size, uint8_t out[KP_BLAKE3_OUT_LEN],
                         kp_error **err);
/* The buffer size kp_blake3_fd() uses: also a good choice for kp_blake3_fd_buffer(). */
#define KP_BLAKE3_FD_BUFFER_SIZE (256 * 1024)

/* Name of the compression backend in use: "portable", "sse41", "avx2" or "avx512". The best
 * one the CPU supports is chosen on first use unless $KARAPACE_BLAKE3_BACKEND names another
 * (e.g. "portable"); all backends give identical results. */
const char *kp_blake3_backend (void);
/* Switch backend: a name from the list above, or NULL to choose again as on first use.
 * Returns -1 (and changes nothing) when the name is unknown or the CPU lacks the
 * instructions. Meant for tests and benchmarks; not to be called while hashing elsewhere. */
int kp_blake3_select_backend (const char *name);

/* ---- Backend seam (internal to the hash module) ----
 *
 * A backend compresses `n_inputs` inputs of `n_blocks` whole 64-byte blocks each, stored back
 * to back from `input`, each starting from the chaining value `key`, and writes one 32-byte
 * chaining value per input to `out` (which must not overlap `input`). With `chunks` true the
 * inputs are consecutive chunks: input i uses counter `counter + i`, its first block gets
 * CHUNK_START and its last CHUNK_END on top of `flags`. With `chunks` false they are parent
 * nodes (n_blocks = 1, `flags` includes PARENT) and all use `counter` unchanged. Vector
 * backends hash several inputs side by side, one per lane; any n_inputs is accepted. */
enum
{
  KP_BLAKE3_CHUNK_START = 1 << 0,
  KP_BLAKE3_CHUNK_END = 1 << 1,
  KP_BLAKE3_PARENT = 1 << 2,
  KP_BLAKE3_ROOT = 1 << 3,
  KP_BLAKE3_KEYED_HASH = 1 << 4,
  KP_BLAKE3_DERIVE_KEY_CONTEXT = 1 << 5,
  KP_BLAKE3_DERIVE_KEY_MATERIAL = 1 << 6,
};

extern const uint32_t kp_blake3_iv[8];

/* Message word order of each of the seven rounds: round r + 1 reads the words of round r
 * through the spec's permutation (2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8).
 * A macro so that each backend has its own copy, which the compiler folds into constant
 * indices once the rounds are unrolled. */
#define KP_BLAKE3_SCHEDULE                                                                    \
  {                                                                                           \
    { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 },                                 \
    { 2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8 },                                 \
    { 3, 4, 10, 12, 13, 2, 7, 14, 6, 5, 9, 0, 11, 15, 8, 1 },                                 \
    { 10, 7, 12, 9, 14, 3, 13, 15, 4, 0, 11, 2, 5, 8, 1, 6 },                                 \
    { 12, 13, 9, 11, 15, 10, 14, 8, 7, 2, 5, 3, 0, 1, 6, 4 },                                 \
    { 9, 14, 11, 5, 8, 12, 15, 1, 13, 3, 0, 10, 2, 6, 4, 7 },                                 \
    { 11, 15, 5, 0, 1, 9, 8, 6, 14, 10, 2, 12, 3, 4, 7, 13 },                                 \
  }

/* For the vector backends, which keep word i of every lane's state in vector v[i]: four
 * quarter-rounds side by side (state words a, b, c, d of each; message words x then y),
 * written with the backend's VADD, VXOR and VROTR16/12/8/7 so that the four independent
 * chains interleave. */
#define KP_BLAKE3_G4(v, a0, b0, c0, d0, a1, b1, c1, d1, a2, b2, c2, d2, a3, b3, c3, d3, x0, x1,  \
                     x2, x3, y0, y1, y2, y3)                                                  \
  do                                                                                          \
    {                                                                                         \
      v[a0] = VADD (VADD (v[a0], v[b0]), x0);                                                 \
      v[a1] = VADD (VADD (v[a1], v[b1]), x1);                                                 \
      v[a2] = VADD (VADD (v[a2], v[b2]), x2);                                                 \
      v[a3] = VADD (VADD (v[a3], v[b3]), x3);                                                 \
      v[d0] = VROTR16 (VXOR (v[d0], v[a0]));                                                  \
      v[d1] = VROTR16 (VXOR (v[d1], v[a1]));                                                  \
      v[d2] = VROTR16 (VXOR (v[d2], v[a2]));                                                  \
      v[d3] = VROTR16 (VXOR (v[d3], v[a3]));                                                  \
      v[c0] = VADD (v[c0], v[d0]);                                                            \
      v[c1] = VADD (v[c1], v[d1]);                                                            \
      v[c2] = VADD (v[c2], v[d2]);                                                            \
      v[c3] = VADD (v[c3], v[d3]);                                                            \
      v[b0] = VROTR12 (VXOR (v[b0], v[c0]));                                                  \
      v[b1] = VROTR12 (VXOR (v[b1], v[c1]));                                                  \
      v[b2] = VROTR12 (VXOR (v[b2], v[c2]));                                                  \
      v[b3] = VROTR12 (VXOR (v[b3], v[c3]));                                                  \
      v[a0] = VADD (VADD (v[a0], v[b0]), y0);                                                 \
      v[a1] = VADD (VADD (v[a1], v[b1]), y1);                                                 \
      v[a2] = VADD (VADD (v[a2], v[b2]), y2);                                                 \
      v[a3] = VADD (VADD (v[a3], v[b3]), y3);                                                 \
      v[d0] = VROTR8 (VXOR (v[d0], v[a0]));                                                   \
      v[d1] = VROTR8 (VXOR (v[d1], v[a1]));                                                   \
      v[d2] = VROTR8 (VXOR (v[d2], v[a2]));                                                   \
      v[d3] = VROTR8 (VXOR (v[d3], v[a3]));                                                   \
      v[c0] = VADD (v[c0], v[d0]);                                                            \
      v[c1] = VADD (v[c1], v[d1]);                                                            \
      v[c2] = VADD (v[c2], v[d2]);                                                            \
      v[c3] = VADD (v[c3], v[d3]);                                                            \
      v[b0] = VROTR7 (VXOR (v[b0], v[c0]));                                                   \
      v[b1] = VROTR7 (VXOR (v[b1], v[c1]));                                                   \
      v[b2] = VROTR7 (VXOR (v[b2], v[c2]));                                                   \
      v[b3] = VROTR7 (VXOR (v[b3], v[c3]));                                                   \
    }                                                                                         \
  while (0)

/* One round: the columns, then the diagonals, reading message vectors m through the
 * round's schedule row s. */
#define KP_BLAKE3_VECTOR_ROUND(v, m, s)                                                       \
  do                                                                                          \
    {                                                                                         \
      KP_BLAKE3_G4 (v, 0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15, m[s[0]], m[s[2]], \
                    m[s[4]], m[s[6]], m[s[1]], m[s[3]], m[s[5]], m[s[7]]);                    \
      KP_BLAKE3_G4 (v, 0, 5, 10, 15, 1, 6, 11, 12, 2, 7, 8, 13, 3, 4, 9, 14, m[s[8]],          \
                    m[s[10]], m[s[12]], m[s[14]], m[s[9]], m[s[11]], m[s[13]], m[s[15]]);     \
    }                                                                                         \
  while (0)

typedef void kp_blake3_hash_many_fn (const uint8_t *input, size_t n_inputs, size_t n_blocks,
                                     const uint32_t key[8], uint64_t counter, bool chunks,
                                     uint8_t flags, uint8_t *out);

kp_blake3_hash_many_fn kp_blake3_hash_many_portable;
#ifdef KP_BLAKE3_X86
kp_blake3_hash_many_fn kp_blake3_hash_many_sse41;
kp_blake3_hash_many_fn kp_blake3_hash_many_avx2;
kp_blake3_hash_many_fn kp_blake3_hash_many_avx512;
#endif

/* The backend in use (see kp_blake3_backend). */
void kp_blake3_hash_many (const uint8_t *input, size_t n_inputs, size_t n_blocks,
                          const uint32_t key[8], uint64_t counter, bool chunks, uint8_t flags,
                          uint8_t *out);

#endif
