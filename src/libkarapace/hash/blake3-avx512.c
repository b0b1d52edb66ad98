/* blake3-avx512.c — the hash_many seam with AVX-512F: sixteen inputs side by side.
 *
 * Lane i belongs to input i, v[w] holds state word w of all sixteen. A block is exactly one
 * 64-byte row per input, so sixteen loads and a 16x16 transpose of 32-bit words give the
 * message vectors. AVX-512 rotates natively. Leftover inputs go to the AVX2 code (every
 * AVX-512 CPU has AVX2; the dispatcher checks both). */
#include "blake3.h"

#include <immintrin.h>

#define TARGET __attribute__ ((target ("avx512f")))
#define LANES 16

static const uint8_t schedule[7][16] = KP_BLAKE3_SCHEDULE;

#define VADD(a, b) _mm512_add_epi32 (a, b)
#define VXOR(a, b) _mm512_xor_si512 (a, b)
#define VROTR16(x) _mm512_ror_epi32 (x, 16)
#define VROTR12(x) _mm512_ror_epi32 (x, 12)
#define VROTR8(x) _mm512_ror_epi32 (x, 8)
#define VROTR7(x) _mm512_ror_epi32 (x, 7)

/* Rows r[0..15] (one input's sixteen words each) become columns (word w of every input).
 *
 * Within each 128-bit quarter, interleaving 32-bit then 64-bit elements transposes 4x4
 * blocks: afterwards u[4g + j], quarter k, holds word 4k + j of rows 4g..4g+3. Column
 * 4k + j gathers quarter k of u[j], u[4 + j], u[8 + j], u[12 + j], a 4x4 transpose of
 * quarters done with two rounds of shuffle_i32x4. */
TARGET static inline void
transpose16 (__m512i r[16])
{
  __m512i t[16], u[16];
#pragma GCC unroll 16
  for (int i = 0; i < 8; i++)
    {
      t[2 * i] = _mm512_unpacklo_epi32 (r[2 * i], r[2 * i + 1]);
      t[2 * i + 1] = _mm512_unpackhi_epi32 (r[2 * i], r[2 * i + 1]);
    }
#pragma GCC unroll 16
  for (int g = 0; g < 4; g++)
    {
      u[4 * g + 0] = _mm512_unpacklo_epi64 (t[4 * g + 0], t[4 * g + 2]);
      u[4 * g + 1] = _mm512_unpackhi_epi64 (t[4 * g + 0], t[4 * g + 2]);
      u[4 * g + 2] = _mm512_unpacklo_epi64 (t[4 * g + 1], t[4 * g + 3]);
      u[4 * g + 3] = _mm512_unpackhi_epi64 (t[4 * g + 1], t[4 * g + 3]);
    }
#pragma GCC unroll 16
  for (int j = 0; j < 4; j++)
    {
      /* Quarters 0,1 and 2,3 of rows 0-3 with those of rows 4-7, and likewise 8-15. */
      __m512i a = _mm512_shuffle_i32x4 (u[j], u[4 + j], 0x44);
      __m512i b = _mm512_shuffle_i32x4 (u[j], u[4 + j], 0xee);
      __m512i c = _mm512_shuffle_i32x4 (u[8 + j], u[12 + j], 0x44);
      __m512i d = _mm512_shuffle_i32x4 (u[8 + j], u[12 + j], 0xee);
      r[j] = _mm512_shuffle_i32x4 (a, c, 0x88);
      r[4 + j] = _mm512_shuffle_i32x4 (a, c, 0xdd);
      r[8 + j] = _mm512_shuffle_i32x4 (b, d, 0x88);
      r[12 + j] = _mm512_shuffle_i32x4 (b, d, 0xdd);
    }
}

/* The eight chaining-value vectors h[0..7] back to eight words per input, stored. */
TARGET static inline void
store_cvs (__m512i h[8], uint8_t *out)
{
  __m512i t[8], u[8];
#pragma GCC unroll 16
  for (int i = 0; i < 4; i++)
    {
      t[2 * i] = _mm512_unpacklo_epi32 (h[2 * i], h[2 * i + 1]);
      t[2 * i + 1] = _mm512_unpackhi_epi32 (h[2 * i], h[2 * i + 1]);
    }
  /* u[4g + j], quarter k: words 4g..4g+3 of input 4k + j. */
#pragma GCC unroll 16
  for (int g = 0; g < 2; g++)
    {
      u[4 * g + 0] = _mm512_unpacklo_epi64 (t[4 * g + 0], t[4 * g + 2]);
      u[4 * g + 1] = _mm512_unpackhi_epi64 (t[4 * g + 0], t[4 * g + 2]);
      u[4 * g + 2] = _mm512_unpacklo_epi64 (t[4 * g + 1], t[4 * g + 3]);
      u[4 * g + 3] = _mm512_unpackhi_epi64 (t[4 * g + 1], t[4 * g + 3]);
    }
#pragma GCC unroll 16
  for (int j = 0; j < 4; j++)
    {
      /* Pair quarter k of u[j] (words 0-3) with quarter k of u[4 + j] (words 4-7). */
      __m512i lo = _mm512_shuffle_i32x4 (u[j], u[4 + j], 0x44);
      __m512i hi = _mm512_shuffle_i32x4 (u[j], u[4 + j], 0xee);
      lo = _mm512_shuffle_i32x4 (lo, lo, 0xd8); /* inputs j, 4 + j */
      hi = _mm512_shuffle_i32x4 (hi, hi, 0xd8); /* inputs 8 + j, 12 + j */
      _mm256_storeu_si256 ((__m256i *) (out + (0 + j) * KP_BLAKE3_OUT_LEN),
                           _mm512_castsi512_si256 (lo));
      _mm256_storeu_si256 ((__m256i *) (out + (4 + j) * KP_BLAKE3_OUT_LEN),
                           _mm512_extracti64x4_epi64 (lo, 1));
      _mm256_storeu_si256 ((__m256i *) (out + (8 + j) * KP_BLAKE3_OUT_LEN),
                           _mm512_castsi512_si256 (hi));
      _mm256_storeu_si256 ((__m256i *) (out + (12 + j) * KP_BLAKE3_OUT_LEN),
                           _mm512_extracti64x4_epi64 (hi, 1));
    }
}

TARGET static void
hash16 (const uint8_t *input, size_t n_blocks, const uint32_t key[8], uint64_t counter,
        bool chunks, uint8_t flags, uint8_t *out)
{
  const size_t stride = n_blocks * KP_BLAKE3_BLOCK_LEN;

  uint32_t lo[LANES], hi[LANES];
#pragma GCC unroll 16
  for (size_t lane = 0; lane < LANES; lane++)
    {
      uint64_t c = counter + (chunks ? lane : 0);
      lo[lane] = (uint32_t) c;
      hi[lane] = (uint32_t) (c >> 32);
    }
  const __m512i counter_lo = _mm512_loadu_si512 (lo);
  const __m512i counter_hi = _mm512_loadu_si512 (hi);

  __m512i h[8];
#pragma GCC unroll 16
  for (int i = 0; i < 8; i++)
    h[i] = _mm512_set1_epi32 ((int) key[i]);

  for (size_t b = 0; b < n_blocks; b++)
    {
      uint8_t block_flags = flags;
      if (chunks && b == 0)
        block_flags |= KP_BLAKE3_CHUNK_START;
      if (chunks && b == n_blocks - 1)
        block_flags |= KP_BLAKE3_CHUNK_END;

      __m512i m[16];
      const uint8_t *block = input + b * KP_BLAKE3_BLOCK_LEN;
#pragma GCC unroll 16
      for (size_t lane = 0; lane < LANES; lane++)
        m[lane] = _mm512_loadu_si512 (block + lane * stride);
      transpose16 (m);

      __m512i v[16];
#pragma GCC unroll 16
      for (int i = 0; i < 8; i++)
        v[i] = h[i];
#pragma GCC unroll 16
      for (int i = 0; i < 4; i++)
        v[8 + i] = _mm512_set1_epi32 ((int) kp_blake3_iv[i]);
      v[12] = counter_lo;
      v[13] = counter_hi;
      v[14] = _mm512_set1_epi32 (KP_BLAKE3_BLOCK_LEN);
      v[15] = _mm512_set1_epi32 (block_flags);

#pragma GCC unroll 7
      for (int r = 0; r < 7; r++)
        KP_BLAKE3_VECTOR_ROUND (v, m, schedule[r]);

#pragma GCC unroll 16
      for (int i = 0; i < 8; i++)
        h[i] = VXOR (v[i], v[i + 8]);
    }
  store_cvs (h, out);
}

void
kp_blake3_hash_many_avx512 (const uint8_t *input, size_t n_inputs, size_t n_blocks,
                            const uint32_t key[8], uint64_t counter, bool chunks, uint8_t flags,
                            uint8_t *out)
{
  const size_t stride = n_blocks * KP_BLAKE3_BLOCK_LEN;
  while (n_inputs >= LANES)
    {
      hash16 (input, n_blocks, key, counter, chunks, flags, out);
      input += LANES * stride;
      out += LANES * KP_BLAKE3_OUT_LEN;
      if (chunks)
        counter += LANES;
      n_inputs -= LANES;
    }
  kp_blake3_hash_many_avx2 (input, n_inputs, n_blocks, key, counter, chunks, flags, out);
}
