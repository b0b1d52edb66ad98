/* blake3-sse41.c — the hash_many seam with SSE4.1: four inputs side by side.
 *
 * Lane i of every vector belongs to input i; vector v[w] holds state word w of all four.
 * Message blocks are loaded row by row (one input's 16 bytes at a time) and transposed
 * into word vectors, and the final chaining values are transposed back. Rotations by 16
 * and 8 are byte shuffles; by 12 and 7, two shifts and an or. Fewer than four inputs go
 * to the portable code. Compiled for any x86-64 CPU, run only after a CPUID check. */
#include "blake3.h"

#include <immintrin.h>

#define TARGET __attribute__ ((target ("sse4.1")))
#define LANES 4

static const uint8_t schedule[7][16] = KP_BLAKE3_SCHEDULE;

#define VADD(a, b) _mm_add_epi32 (a, b)
#define VXOR(a, b) _mm_xor_si128 (a, b)
#define VROTR16(x) _mm_shuffle_epi8 (x, rot16)
#define VROTR8(x) _mm_shuffle_epi8 (x, rot8)
#define VROTR12(x) _mm_or_si128 (_mm_srli_epi32 (x, 12), _mm_slli_epi32 (x, 20))
#define VROTR7(x) _mm_or_si128 (_mm_srli_epi32 (x, 7), _mm_slli_epi32 (x, 25))

/* Rows r[0..3] (four words of one input each) become columns (one word of each input). */
TARGET static inline void
transpose4 (__m128i r[4])
{
  __m128i t0 = _mm_unpacklo_epi32 (r[0], r[1]);
  __m128i t1 = _mm_unpackhi_epi32 (r[0], r[1]);
  __m128i t2 = _mm_unpacklo_epi32 (r[2], r[3]);
  __m128i t3 = _mm_unpackhi_epi32 (r[2], r[3]);
  r[0] = _mm_unpacklo_epi64 (t0, t2);
  r[1] = _mm_unpackhi_epi64 (t0, t2);
  r[2] = _mm_unpacklo_epi64 (t1, t3);
  r[3] = _mm_unpackhi_epi64 (t1, t3);
}

TARGET static inline void
load_message (__m128i m[16], const uint8_t *block, size_t stride)
{
#pragma GCC unroll 16
  for (size_t q = 0; q < 4; q++)
    {
#pragma GCC unroll 16
      for (size_t lane = 0; lane < LANES; lane++)
        m[4 * q + lane]
            = _mm_loadu_si128 ((const __m128i *) (block + lane * stride + 16 * q));
      transpose4 (&m[4 * q]);
    }
}

TARGET static void
hash4 (const uint8_t *input, size_t n_blocks, const uint32_t key[8], uint64_t counter,
       bool chunks, uint8_t flags, uint8_t *out)
{
  const __m128i rot16 = _mm_setr_epi8 (2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13);
  const __m128i rot8 = _mm_setr_epi8 (1, 2, 3, 0, 5, 6, 7, 4, 9, 10, 11, 8, 13, 14, 15, 12);
  const size_t stride = n_blocks * KP_BLAKE3_BLOCK_LEN;

  uint32_t lo[LANES], hi[LANES];
#pragma GCC unroll 16
  for (size_t lane = 0; lane < LANES; lane++)
    {
      uint64_t c = counter + (chunks ? lane : 0);
      lo[lane] = (uint32_t) c;
      hi[lane] = (uint32_t) (c >> 32);
    }
  const __m128i counter_lo = _mm_loadu_si128 ((const __m128i *) lo);
  const __m128i counter_hi = _mm_loadu_si128 ((const __m128i *) hi);

  __m128i h[8];
#pragma GCC unroll 16
  for (int i = 0; i < 8; i++)
    h[i] = _mm_set1_epi32 ((int) key[i]);

  for (size_t b = 0; b < n_blocks; b++)
    {
      uint8_t block_flags = flags;
      if (chunks && b == 0)
        block_flags |= KP_BLAKE3_CHUNK_START;
      if (chunks && b == n_blocks - 1)
        block_flags |= KP_BLAKE3_CHUNK_END;

      __m128i m[16];
      load_message (m, input + b * KP_BLAKE3_BLOCK_LEN, stride);

      __m128i v[16];
#pragma GCC unroll 16
      for (int i = 0; i < 8; i++)
        v[i] = h[i];
#pragma GCC unroll 16
      for (int i = 0; i < 4; i++)
        v[8 + i] = _mm_set1_epi32 ((int) kp_blake3_iv[i]);
      v[12] = counter_lo;
      v[13] = counter_hi;
      v[14] = _mm_set1_epi32 (KP_BLAKE3_BLOCK_LEN);
      v[15] = _mm_set1_epi32 (block_flags);

#pragma GCC unroll 7
      for (int r = 0; r < 7; r++)
        KP_BLAKE3_VECTOR_ROUND (v, m, schedule[r]);

#pragma GCC unroll 16
      for (int i = 0; i < 8; i++)
        h[i] = VXOR (v[i], v[i + 8]);
    }

  transpose4 (&h[0]);
  transpose4 (&h[4]);
#pragma GCC unroll 16
  for (size_t lane = 0; lane < LANES; lane++)
    {
      _mm_storeu_si128 ((__m128i *) (out + lane * KP_BLAKE3_OUT_LEN), h[lane]);
      _mm_storeu_si128 ((__m128i *) (out + lane * KP_BLAKE3_OUT_LEN + 16), h[4 + lane]);
    }
}

void
kp_blake3_hash_many_sse41 (const uint8_t *input, size_t n_inputs, size_t n_blocks,
                           const uint32_t key[8], uint64_t counter, bool chunks, uint8_t flags,
                           uint8_t *out)
{
  const size_t stride = n_blocks * KP_BLAKE3_BLOCK_LEN;
  while (n_inputs >= LANES)
    {
      hash4 (input, n_blocks, key, counter, chunks, flags, out);
      input += LANES * stride;
      out += LANES * KP_BLAKE3_OUT_LEN;
      if (chunks)
        counter += LANES;
      n_inputs -= LANES;
    }
  kp_blake3_hash_many_portable (input, n_inputs, n_blocks, key, counter, chunks, flags, out);
}
