/* blake3-avx2.c — the hash_many seam with AVX2: eight inputs side by side.
 *
 * The layout is that of blake3-sse41.c with 256-bit vectors: lane i belongs to input i,
 * v[w] holds state word w of all eight. Each block is loaded as two 32-byte rows per input
 * and transposed 8x8 into word vectors. Leftover inputs (fewer than eight) go to the SSE4.1
 * code, which every AVX2 CPU has. */
#include "blake3.h"

#include <immintrin.h>

#define TARGET __attribute__ ((target ("avx2")))
#define LANES 8

static const uint8_t schedule[7][16] = KP_BLAKE3_SCHEDULE;

#define VADD(a, b) _mm256_add_epi32 (a, b)
#define VXOR(a, b) _mm256_xor_si256 (a, b)
#define VROTR16(x) _mm256_shuffle_epi8 (x, rot16)
#define VROTR8(x) _mm256_shuffle_epi8 (x, rot8)
#define VROTR12(x) _mm256_or_si256 (_mm256_srli_epi32 (x, 12), _mm256_slli_epi32 (x, 20))
#define VROTR7(x) _mm256_or_si256 (_mm256_srli_epi32 (x, 7), _mm256_slli_epi32 (x, 25))

/* Rows r[0..7] (eight words of one input each) become columns (one word of each input):
 * pairs of 32-bit words, then of 64-bit pairs, then the 128-bit halves change places. */
TARGET static inline void
transpose8 (__m256i r[8])
{
  __m256i t[8], u[8];
#pragma GCC unroll 16
  for (int i = 0; i < 4; i++)
    {
      t[2 * i] = _mm256_unpacklo_epi32 (r[2 * i], r[2 * i + 1]);
      t[2 * i + 1] = _mm256_unpackhi_epi32 (r[2 * i], r[2 * i + 1]);
    }
  /* u[0..3]: words 0|4, 1|5, 2|6, 3|7 of rows 0-3; u[4..7]: the same of rows 4-7. */
#pragma GCC unroll 16
  for (int g = 0; g < 2; g++)
    {
      u[4 * g + 0] = _mm256_unpacklo_epi64 (t[4 * g + 0], t[4 * g + 2]);
      u[4 * g + 1] = _mm256_unpackhi_epi64 (t[4 * g + 0], t[4 * g + 2]);
      u[4 * g + 2] = _mm256_unpacklo_epi64 (t[4 * g + 1], t[4 * g + 3]);
      u[4 * g + 3] = _mm256_unpackhi_epi64 (t[4 * g + 1], t[4 * g + 3]);
    }
#pragma GCC unroll 16
  for (int j = 0; j < 4; j++)
    {
      r[j] = _mm256_permute2x128_si256 (u[j], u[4 + j], 0x20);
      r[4 + j] = _mm256_permute2x128_si256 (u[j], u[4 + j], 0x31);
    }
}

TARGET static inline void
load_message (__m256i m[16], const uint8_t *block, size_t stride)
{
#pragma GCC unroll 16
  for (size_t half = 0; half < 2; half++)
    {
#pragma GCC unroll 16
      for (size_t lane = 0; lane < LANES; lane++)
        m[8 * half + lane]
            = _mm256_loadu_si256 ((const __m256i *) (block + lane * stride + 32 * half));
      transpose8 (&m[8 * half]);
    }
}

TARGET static void
hash8 (const uint8_t *input, size_t n_blocks, const uint32_t key[8], uint64_t counter,
       bool chunks, uint8_t flags, uint8_t *out)
{
  const __m256i rot16 = _mm256_setr_epi8 (2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13,
                                          2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13);
  const __m256i rot8 = _mm256_setr_epi8 (1, 2, 3, 0, 5, 6, 7, 4, 9, 10, 11, 8, 13, 14, 15, 12,
                                         1, 2, 3, 0, 5, 6, 7, 4, 9, 10, 11, 8, 13, 14, 15, 12);
  const size_t stride = n_blocks * KP_BLAKE3_BLOCK_LEN;

  uint32_t lo[LANES], hi[LANES];
#pragma GCC unroll 16
  for (size_t lane = 0; lane < LANES; lane++)
    {
      uint64_t c = counter + (chunks ? lane : 0);
      lo[lane] = (uint32_t) c;
      hi[lane] = (uint32_t) (c >> 32);
    }
  const __m256i counter_lo = _mm256_loadu_si256 ((const __m256i *) lo);
  const __m256i counter_hi = _mm256_loadu_si256 ((const __m256i *) hi);

  __m256i h[8];
#pragma GCC unroll 16
  for (int i = 0; i < 8; i++)
    h[i] = _mm256_set1_epi32 ((int) key[i]);

  for (size_t b = 0; b < n_blocks; b++)
    {
      uint8_t block_flags = flags;
      if (chunks && b == 0)
        block_flags |= KP_BLAKE3_CHUNK_START;
      if (chunks && b == n_blocks - 1)
        block_flags |= KP_BLAKE3_CHUNK_END;

      __m256i m[16];
      load_message (m, input + b * KP_BLAKE3_BLOCK_LEN, stride);

      __m256i v[16];
#pragma GCC unroll 16
      for (int i = 0; i < 8; i++)
        v[i] = h[i];
#pragma GCC unroll 16
      for (int i = 0; i < 4; i++)
        v[8 + i] = _mm256_set1_epi32 ((int) kp_blake3_iv[i]);
      v[12] = counter_lo;
      v[13] = counter_hi;
      v[14] = _mm256_set1_epi32 (KP_BLAKE3_BLOCK_LEN);
      v[15] = _mm256_set1_epi32 (block_flags);

#pragma GCC unroll 7
      for (int r = 0; r < 7; r++)
        KP_BLAKE3_VECTOR_ROUND (v, m, schedule[r]);

#pragma GCC unroll 16
      for (int i = 0; i < 8; i++)
        h[i] = VXOR (v[i], v[i + 8]);
    }

  transpose8 (h);
#pragma GCC unroll 16
  for (size_t lane = 0; lane < LANES; lane++)
    _mm256_storeu_si256 ((__m256i *) (out + lane * KP_BLAKE3_OUT_LEN), h[lane]);
}

void
kp_blake3_hash_many_avx2 (const uint8_t *input, size_t n_inputs, size_t n_blocks,
                          const uint32_t key[8], uint64_t counter, bool chunks, uint8_t flags,
                          uint8_t *out)
{
  const size_t stride = n_blocks * KP_BLAKE3_BLOCK_LEN;
  while (n_inputs >= LANES)
    {
      hash8 (input, n_blocks, key, counter, chunks, flags, out);
      input += LANES * stride;
      out += LANES * KP_BLAKE3_OUT_LEN;
      if (chunks)
        counter += LANES;
      n_inputs -= LANES;
    }
  kp_blake3_hash_many_sse41 (input, n_inputs, n_blocks, key, counter, chunks, flags, out);
}
