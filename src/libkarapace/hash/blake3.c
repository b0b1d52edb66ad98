/* blake3.c — BLAKE3: compression, chunks, the tree, extendable output, backend choice.
 *
 * Written from the BLAKE3 specification (Aumasson, Neves, O'Connor, Wilcox-O'Hearn, 2020).
 * Input is split into 1 KiB chunks of 64-byte blocks; chunk chaining values are combined
 * pairwise in a binary tree whose left subtrees are always complete powers of two, and the
 * root node is compressed again, with a block counter, to produce any amount of output.
 *
 * Large updates are cut into power-of-two subtrees aligned on the chunk counter. All the
 * chunks of such a subtree, then each level of its parent nodes, go through the backend's
 * hash_many() at once, which is where vector backends find independent work for their lanes.
 * The subtree is pushed as its two halves and only merged once more input shows that it is
 * not the root: the tree's root must be compressed with the ROOT flag, so nothing may be
 * finalised before the hasher knows whether more input follows. */
#include "blake3.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef KP_BLAKE3_X86
#include <cpuid.h>
#endif

/* Chunks per subtree handed to hash_many() at once: bounds the stack space for the
 * chaining values (8 KiB) while leaving vector backends many full batches. */
#define MAX_SUBTREE_CHUNKS 256

const uint32_t kp_blake3_iv[8] = {
  0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19,
};

static const uint8_t schedule[7][16] = KP_BLAKE3_SCHEDULE;

static inline uint32_t
load32 (const uint8_t *p)
{
  return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}

static inline void
store32 (uint8_t *p, uint32_t w)
{
  p[0] = (uint8_t) w;
  p[1] = (uint8_t) (w >> 8);
  p[2] = (uint8_t) (w >> 16);
  p[3] = (uint8_t) (w >> 24);
}

static inline void
words_from_bytes (uint32_t *w, const uint8_t *p, size_t n)
{
  for (size_t i = 0; i < n; i++)
    w[i] = load32 (p + 4 * i);
}

static inline void
words_to_bytes (uint8_t *p, const uint32_t *w, size_t n)
{
  for (size_t i = 0; i < n; i++)
    store32 (p + 4 * i, w[i]);
}

static inline uint32_t
rotr32 (uint32_t w, unsigned c)
{
  return (w >> c) | (w << (32 - c));
}

/* The quarter-round G mixes one column or diagonal of the state with two message words. */
#define G(a, b, c, d, x, y)                                                                    \
  do                                                                                           \
    {                                                                                          \
      v[a] = v[a] + v[b] + (x);                                                                \
      v[d] = rotr32 (v[d] ^ v[a], 16);                                                         \
      v[c] = v[c] + v[d];                                                                      \
      v[b] = rotr32 (v[b] ^ v[c], 12);                                                         \
      v[a] = v[a] + v[b] + (y);                                                                \
      v[d] = rotr32 (v[d] ^ v[a], 8);                                                          \
      v[c] = v[c] + v[d];                                                                      \
      v[b] = rotr32 (v[b] ^ v[c], 7);                                                          \
    }                                                                                          \
  while (0)

/* Run the seven rounds; v[0..7] ^ v[8..15] is then the new chaining value. */
static inline void
compress_rounds (uint32_t v[16], const uint32_t cv[8], const uint8_t block[KP_BLAKE3_BLOCK_LEN],
                 uint8_t block_len, uint64_t counter, uint8_t flags)
{
  uint32_t m[16];
  words_from_bytes (m, block, 16);

  memcpy (v, cv, 8 * sizeof (uint32_t));
  memcpy (v + 8, kp_blake3_iv, 4 * sizeof (uint32_t));
  v[12] = (uint32_t) counter;
  v[13] = (uint32_t) (counter >> 32);
  v[14] = block_len;
  v[15] = flags;

#pragma GCC unroll 7
  for (int r = 0; r < 7; r++)
    {
      const uint8_t *s = schedule[r];
      G (0, 4, 8, 12, m[s[0]], m[s[1]]);
      G (1, 5, 9, 13, m[s[2]], m[s[3]]);
      G (2, 6, 10, 14, m[s[4]], m[s[5]]);
      G (3, 7, 11, 15, m[s[6]], m[s[7]]);
      G (0, 5, 10, 15, m[s[8]], m[s[9]]);
      G (1, 6, 11, 12, m[s[10]], m[s[11]]);
      G (2, 7, 8, 13, m[s[12]], m[s[13]]);
      G (3, 4, 9, 14, m[s[14]], m[s[15]]);
    }
}

static void
compress_in_place (uint32_t cv[8], const uint8_t block[KP_BLAKE3_BLOCK_LEN], uint8_t block_len,
                   uint64_t counter, uint8_t flags)
{
  uint32_t v[16];
  compress_rounds (v, cv, block, block_len, counter, flags);
  for (int i = 0; i < 8; i++)
    cv[i] = v[i] ^ v[i + 8];
}

/* The full 64-byte output of one compression, as the root node produces it. */
static void
compress_xof (const uint32_t cv[8], const uint8_t block[KP_BLAKE3_BLOCK_LEN], uint8_t block_len,
              uint64_t counter, uint8_t flags, uint8_t out[64])
{
  uint32_t v[16];
  compress_rounds (v, cv, block, block_len, counter, flags);
  for (int i = 0; i < 8; i++)
    {
      store32 (out + 4 * i, v[i] ^ v[i + 8]);
      store32 (out + 32 + 4 * i, v[i + 8] ^ cv[i]);
    }
}

void
kp_blake3_hash_many_portable (const uint8_t *input, size_t n_inputs, size_t n_blocks,
                              const uint32_t key[8], uint64_t counter, bool chunks, uint8_t flags,
                              uint8_t *out)
{
  for (size_t i = 0; i < n_inputs; i++)
    {
      uint32_t cv[8];
      memcpy (cv, key, sizeof cv);
      for (size_t b = 0; b < n_blocks; b++)
        {
          uint8_t block_flags = flags;
          if (chunks && b == 0)
            block_flags |= KP_BLAKE3_CHUNK_START;
          if (chunks && b == n_blocks - 1)
            block_flags |= KP_BLAKE3_CHUNK_END;
          compress_in_place (cv, input + b * KP_BLAKE3_BLOCK_LEN, KP_BLAKE3_BLOCK_LEN,
                             counter, block_flags);
        }
      words_to_bytes (out, cv, 8);
      input += n_blocks * KP_BLAKE3_BLOCK_LEN;
      out += KP_BLAKE3_OUT_LEN;
      if (chunks)
        counter++;
    }
}

/* ---- Backends ---- */

struct cpu_features;

typedef struct backend
{
  const char *name;
  kp_blake3_hash_many_fn *hash_many;
  bool (*supported) (const struct cpu_features *cpu);
} backend;

/* What the CPU offers and the kernel saves across context switches, read with cpuid and
 * xgetbv when a digest is first needed. (Not __builtin_cpu_supports: that pulls in
 * libgcc's constructor, which runs a dozen cpuid instructions -- each a trap to the
 * hypervisor on a virtual machine -- at the start of every command, hashing or not.) */
typedef struct cpu_features
{
  bool sse41, avx2, avx512f;
} cpu_features;

static void
detect_cpu (cpu_features *f)
{
  memset (f, 0, sizeof *f);
#ifdef KP_BLAKE3_X86
  unsigned a, b, c, d;
  if (!__get_cpuid (1, &a, &b, &c, &d))
    return;
  f->sse41 = (c & bit_SSE4_1) != 0;
  bool avx = (c & bit_AVX) != 0;
  uint64_t xcr0 = 0;
  if (c & bit_OSXSAVE)
    {
      unsigned lo, hi;
      __asm__ volatile ("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
      xcr0 = ((uint64_t) hi << 32) | lo;
    }
  bool ymm = (xcr0 & 0x6) == 0x6;           /* SSE and AVX state */
  bool zmm = ymm && (xcr0 & 0xe0) == 0xe0;  /* opmask and both halves of ZMM */
  if (__get_cpuid_max (0, NULL) < 7)
    return;
  __cpuid_count (7, 0, a, b, c, d);
  f->avx2 = avx && ymm && (b & bit_AVX2) != 0;
  f->avx512f = zmm && (b & bit_AVX512F) != 0;
#endif
}

static bool
always_supported (const cpu_features *cpu)
{
  (void) cpu;
  return true;
}

#ifdef KP_BLAKE3_X86
static bool
cpu_has_sse41 (const cpu_features *cpu)
{
  return cpu->sse41;
}

static bool
cpu_has_avx2 (const cpu_features *cpu)
{
  return cpu->avx2;
}

static bool
cpu_has_avx512 (const cpu_features *cpu)
{
  /* The AVX-512 backend finishes odd batches with the AVX2 one. */
  return cpu->avx512f && cpu->avx2;
}
#endif

/* Best first. */
static const backend backends[] = {
#ifdef KP_BLAKE3_X86
  { "avx512", kp_blake3_hash_many_avx512, cpu_has_avx512 },
  { "avx2", kp_blake3_hash_many_avx2, cpu_has_avx2 },
  { "sse41", kp_blake3_hash_many_sse41, cpu_has_sse41 },
#endif
  { "portable", kp_blake3_hash_many_portable, always_supported },
};

/* The one piece of process-wide state: which backend to use. It is a pure function of the
 * CPU and of the environment variable, so racing first uses store the same value; only
 * kp_blake3_select_backend(), for tests and benchmarks, changes it later. */
static const backend *current_backend;

static const backend *
find_backend (const char *name, const cpu_features *cpu)
{
  for (size_t i = 0; i < KP_N_ELEMENTS (backends); i++)
    if (strcmp (backends[i].name, name) == 0)
      return backends[i].supported (cpu) ? &backends[i] : NULL;
  return NULL;
}

static const backend *
choose_backend (void)
{
  cpu_features cpu;
  detect_cpu (&cpu);
  const char *forced = getenv ("KARAPACE_BLAKE3_BACKEND");
  if (forced && *forced)
    {
      const backend *b = find_backend (forced, &cpu);
      if (b)
        return b;
    }
  for (size_t i = 0; i < KP_N_ELEMENTS (backends); i++)
    if (backends[i].supported (&cpu))
      return &backends[i];
  return &backends[KP_N_ELEMENTS (backends) - 1];
}

static const backend *
get_backend (void)
{
  const backend *b = __atomic_load_n (&current_backend, __ATOMIC_ACQUIRE);
  if (b == NULL)
    {
      b = choose_backend ();
      __atomic_store_n (&current_backend, b, __ATOMIC_RELEASE);
    }
  return b;
}

const char *
kp_blake3_backend (void)
{
  return get_backend ()->name;
}

int
kp_blake3_select_backend (const char *name)
{
  cpu_features cpu;
  detect_cpu (&cpu);
  const backend *b = name ? find_backend (name, &cpu) : choose_backend ();
  if (b == NULL)
    return -1;
  __atomic_store_n (&current_backend, b, __ATOMIC_RELEASE);
  return 0;
}

void
kp_blake3_hash_many (const uint8_t *input, size_t n_inputs, size_t n_blocks,
                     const uint32_t key[8], uint64_t counter, bool chunks, uint8_t flags,
                     uint8_t *out)
{
  get_backend ()->hash_many (input, n_inputs, n_blocks, key, counter, chunks, flags, out);
}

/* ---- Chunks ---- */

/* What a node's last compression takes: kept unevaluated so that the root can be
 * compressed with ROOT and any output block counter. */
typedef struct node_output
{
  uint32_t cv[8];
  uint8_t block[KP_BLAKE3_BLOCK_LEN];
  uint64_t counter;
  uint8_t block_len;
  uint8_t flags;
} node_output;

static void
chunk_init (kp_blake3_chunk_state *c, const uint32_t key[8], uint64_t counter, uint8_t flags)
{
  memcpy (c->cv, key, sizeof c->cv);
  c->chunk_counter = counter;
  memset (c->buf, 0, sizeof c->buf);
  c->buf_len = 0;
  c->blocks_compressed = 0;
  c->flags = flags;
}

static size_t
chunk_len (const kp_blake3_chunk_state *c)
{
  return (size_t) c->blocks_compressed * KP_BLAKE3_BLOCK_LEN + c->buf_len;
}

static uint8_t
chunk_start_flag (const kp_blake3_chunk_state *c)
{
  return c->blocks_compressed == 0 ? KP_BLAKE3_CHUNK_START : 0;
}

/* Add bytes to the current chunk; the caller keeps chunk_len() within one chunk. The last
 * block always stays buffered: only the chunk's end decides its CHUNK_END flag. */
static void
chunk_update (kp_blake3_chunk_state *c, const uint8_t *in, size_t len)
{
  while (len > 0)
    {
      if (c->buf_len == KP_BLAKE3_BLOCK_LEN)
        {
          compress_in_place (c->cv, c->buf, KP_BLAKE3_BLOCK_LEN, c->chunk_counter,
                             c->flags | chunk_start_flag (c));
          c->blocks_compressed++;
          c->buf_len = 0;
          memset (c->buf, 0, sizeof c->buf);
        }
      if (c->buf_len == 0)
        while (len > KP_BLAKE3_BLOCK_LEN)
          {
            compress_in_place (c->cv, in, KP_BLAKE3_BLOCK_LEN, c->chunk_counter,
                               c->flags | chunk_start_flag (c));
            c->blocks_compressed++;
            in += KP_BLAKE3_BLOCK_LEN;
            len -= KP_BLAKE3_BLOCK_LEN;
          }
      size_t take = KP_BLAKE3_BLOCK_LEN - c->buf_len;
      if (take > len)
        take = len;
      memcpy (c->buf + c->buf_len, in, take);
      c->buf_len += (uint8_t) take;
      in += take;
      len -= take;
    }
}

static void
chunk_output (const kp_blake3_chunk_state *c, node_output *o)
{
  memcpy (o->cv, c->cv, sizeof o->cv);
  /* Bytes past buf_len are zero: chunk_init() and chunk_update() keep them so. */
  memcpy (o->block, c->buf, sizeof o->block);
  o->block_len = c->buf_len;
  o->counter = c->chunk_counter;
  o->flags = c->flags | chunk_start_flag (c) | KP_BLAKE3_CHUNK_END;
}

static void
parent_output (const uint8_t block[KP_BLAKE3_BLOCK_LEN], const uint32_t key[8], uint8_t flags,
               node_output *o)
{
  memcpy (o->cv, key, sizeof o->cv);
  memcpy (o->block, block, sizeof o->block);
  o->block_len = KP_BLAKE3_BLOCK_LEN;
  o->counter = 0;
  o->flags = flags | KP_BLAKE3_PARENT;
}

static void
output_cv (const node_output *o, uint8_t cv_bytes[KP_BLAKE3_OUT_LEN])
{
  uint32_t cv[8];
  memcpy (cv, o->cv, sizeof cv);
  compress_in_place (cv, o->block, o->block_len, o->counter, o->flags);
  words_to_bytes (cv_bytes, cv, 8);
}

/* ---- The hasher and its stack of subtree chaining values ---- */

static void
hasher_init (kp_blake3 *h, const uint32_t key[8], uint8_t flags)
{
  memcpy (h->key, key, sizeof h->key);
  chunk_init (&h->chunk, key, 0, flags);
  h->cv_stack_len = 0;
}

void
kp_blake3_init (kp_blake3 *h)
{
  hasher_init (h, kp_blake3_iv, 0);
}

void
kp_blake3_init_keyed (kp_blake3 *h, const uint8_t key[KP_BLAKE3_KEY_LEN])
{
  uint32_t words[8];
  words_from_bytes (words, key, 8);
  hasher_init (h, words, KP_BLAKE3_KEYED_HASH);
}

void
kp_blake3_init_derive_key (kp_blake3 *h, const char *context)
{
  kp_blake3 context_hasher;
  hasher_init (&context_hasher, kp_blake3_iv, KP_BLAKE3_DERIVE_KEY_CONTEXT);
  kp_blake3_update (&context_hasher, context, strlen (context));
  uint8_t context_key[KP_BLAKE3_KEY_LEN];
  kp_blake3_final (&context_hasher, context_key, sizeof context_key);

  uint32_t words[8];
  words_from_bytes (words, context_key, 8);
  hasher_init (h, words, KP_BLAKE3_DERIVE_KEY_MATERIAL);
}

static uint8_t *
stack_entry (kp_blake3 *h, size_t i)
{
  return h->cv_stack + i * KP_BLAKE3_OUT_LEN;
}

/* Input follows the `chunks` chunks already on the stack, so every complete subtree among
 * them now has a right neighbour and can be merged: a finished prefix of `chunks` chunks
 * is one subtree per set bit of its count. */
static void
stack_merge (kp_blake3 *h, uint64_t chunks)
{
  size_t want = (size_t) __builtin_popcountll (chunks);
  while (h->cv_stack_len > want)
    {
      uint8_t *left = stack_entry (h, h->cv_stack_len - 2u);
      node_output o;
      /* The two entries are adjacent: together they are the parent's block. */
      parent_output (left, h->key, h->chunk.flags, &o);
      output_cv (&o, left);
      h->cv_stack_len--;
    }
}

static void
stack_push (kp_blake3 *h, const uint8_t cv[KP_BLAKE3_OUT_LEN])
{
  memcpy (stack_entry (h, h->cv_stack_len), cv, KP_BLAKE3_OUT_LEN);
  h->cv_stack_len++;
}

/* Hash a complete subtree of n_chunks (a power of two, at least 2) chunks and write the
 * chaining values of its two halves to out. */
static void
subtree_halves (const kp_blake3 *h, const uint8_t *in, size_t n_chunks, uint64_t counter,
                uint8_t out[2 * KP_BLAKE3_OUT_LEN])
{
  uint8_t level_a[MAX_SUBTREE_CHUNKS * KP_BLAKE3_OUT_LEN];
  uint8_t level_b[MAX_SUBTREE_CHUNKS / 2 * KP_BLAKE3_OUT_LEN];
  uint8_t flags = h->chunk.flags;

  kp_blake3_hash_many (in, n_chunks, KP_BLAKE3_CHUNK_LEN / KP_BLAKE3_BLOCK_LEN, h->key, counter,
                       true, flags, level_a);
  uint8_t *src = level_a;
  uint8_t *dst = level_b;
  size_t count = n_chunks;
  while (count > 2)
    {
      /* Each pair of adjacent chaining values is one parent block. */
      kp_blake3_hash_many (src, count / 2, 1, h->key, 0, false, flags | KP_BLAKE3_PARENT, dst);
      count /= 2;
      uint8_t *t = src;
      src = dst;
      dst = t;
    }
  memcpy (out, src, 2 * KP_BLAKE3_OUT_LEN);
}

void
kp_blake3_update (kp_blake3 *h, const void *data, size_t len)
{
  const uint8_t *in = data;
  if (len == 0)
    return;

  /* Complete a partly filled chunk first. */
  size_t have = chunk_len (&h->chunk);
  if (have > 0)
    {
      size_t take = KP_BLAKE3_CHUNK_LEN - have;
      if (take > len)
        take = len;
      chunk_update (&h->chunk, in, take);
      in += take;
      len -= take;
      if (len == 0)
        return;
      /* The chunk is full and more input follows, so it is not the root. */
      node_output o;
      uint8_t cv[KP_BLAKE3_OUT_LEN];
      chunk_output (&h->chunk, &o);
      output_cv (&o, cv);
      stack_merge (h, h->chunk.chunk_counter);
      stack_push (h, cv);
      chunk_init (&h->chunk, h->key, h->chunk.chunk_counter + 1, h->chunk.flags);
    }

  /* Whole subtrees straight from the input. A lone chunk is only taken when more input
   * follows; a subtree of two chunks or more is pushed as two halves, which the end can
   * still combine into the root. */
  while (len > KP_BLAKE3_CHUNK_LEN)
    {
      uint64_t counter = h->chunk.chunk_counter;
      size_t n_chunks = len / KP_BLAKE3_CHUNK_LEN;
      if (n_chunks > MAX_SUBTREE_CHUNKS)
        n_chunks = MAX_SUBTREE_CHUNKS;
      /* Largest power of two that fits and keeps the subtree aligned on the counter. */
      n_chunks = (size_t) 1 << (63 - __builtin_clzll (n_chunks));
      while ((counter & (n_chunks - 1)) != 0)
        n_chunks /= 2;

      stack_merge (h, counter);
      if (n_chunks == 1)
        {
          uint8_t cv[KP_BLAKE3_OUT_LEN];
          kp_blake3_hash_many (in, 1, KP_BLAKE3_CHUNK_LEN / KP_BLAKE3_BLOCK_LEN, h->key, counter,
                               true, h->chunk.flags, cv);
          stack_push (h, cv);
        }
      else
        {
          subtree_halves (h, in, n_chunks, counter, stack_entry (h, h->cv_stack_len));
          h->cv_stack_len += 2;
        }
      in += n_chunks * KP_BLAKE3_CHUNK_LEN;
      len -= n_chunks * KP_BLAKE3_CHUNK_LEN;
      chunk_init (&h->chunk, h->key, counter + n_chunks, h->chunk.flags);
    }

  if (len > 0)
    {
      stack_merge (h, h->chunk.chunk_counter);
      chunk_update (&h->chunk, in, len);
    }
}

/* The root node: the current chunk (or the last subtree's two halves when the input
 * ended exactly on it) folded with every subtree on the stack, right to left. */
static void
root_output (const kp_blake3 *h, node_output *o)
{
  size_t n = h->cv_stack_len;
  if (chunk_len (&h->chunk) > 0 || n == 0)
    chunk_output (&h->chunk, o);
  else
    {
      parent_output (h->cv_stack + (n - 2) * KP_BLAKE3_OUT_LEN, h->key, h->chunk.flags, o);
      n -= 2;
    }
  while (n > 0)
    {
      uint8_t block[KP_BLAKE3_BLOCK_LEN];
      memcpy (block, h->cv_stack + (n - 1) * KP_BLAKE3_OUT_LEN, KP_BLAKE3_OUT_LEN);
      output_cv (o, block + KP_BLAKE3_OUT_LEN);
      parent_output (block, h->key, h->chunk.flags, o);
      n--;
    }
}

void
kp_blake3_final_seek (const kp_blake3 *h, uint64_t seek, uint8_t *out, size_t out_len)
{
  node_output o;
  root_output (h, &o);

  uint64_t counter = seek / 64;
  size_t skip = (size_t) (seek % 64);
  while (out_len > 0)
    {
      uint8_t block[64];
      compress_xof (o.cv, o.block, o.block_len, counter, o.flags | KP_BLAKE3_ROOT, block);
      size_t take = 64 - skip;
      if (take > out_len)
        take = out_len;
      memcpy (out, block + skip, take);
      out += take;
      out_len -= take;
      skip = 0;
      counter++;
    }
}

void
kp_blake3_final (const kp_blake3 *h, uint8_t *out, size_t out_len)
{
  kp_blake3_final_seek (h, 0, out, out_len);
}

/* ---- One-shot helpers ---- */

void
kp_blake3_hash (const void *data, size_t len, uint8_t out[KP_BLAKE3_OUT_LEN])
{
  kp_blake3 h;
  kp_blake3_init (&h);
  kp_blake3_update (&h, data, len);
  kp_blake3_final (&h, out, KP_BLAKE3_OUT_LEN);
}

void
kp_blake3_to_hex (const uint8_t digest[KP_BLAKE3_OUT_LEN], char hex[KP_BLAKE3_HEX_LEN + 1])
{
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < KP_BLAKE3_OUT_LEN; i++)
    {
      hex[2 * i] = digits[digest[i] >> 4];
      hex[2 * i + 1] = digits[digest[i] & 0xf];
    }
  hex[KP_BLAKE3_HEX_LEN] = '\0';
}

static int
hex_value (char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

int
kp_blake3_from_hex (const char *hex, uint8_t digest[KP_BLAKE3_OUT_LEN])
{
  uint8_t parsed[KP_BLAKE3_OUT_LEN];
  for (size_t i = 0; i < KP_BLAKE3_OUT_LEN; i++)
    {
      /* hex_value('\0') is -1, so a short string stops here without reading past it. */
      int hi = hex_value (hex[2 * i]);
      if (hi < 0)
        return -1;
      int lo = hex_value (hex[2 * i + 1]);
      if (lo < 0)
        return -1;
      parsed[i] = (uint8_t) (hi << 4 | lo);
    }
  if (hex[KP_BLAKE3_HEX_LEN] != '\0')
    return -1;
  memcpy (digest, parsed, sizeof parsed);
  return 0;
}

/* ---- Files ---- */

int
kp_blake3_fd_buffer (int fd, void *buf, size_t buf_size, uint8_t out[KP_BLAKE3_OUT_LEN],
                     kp_error **err)
{
  kp_blake3 h;
  kp_blake3_init (&h);
  for (;;)
    {
      ssize_t n = read (fd, buf, buf_size);
      if (n < 0)
        {
          if (errno == EINTR)
            continue;
          if (errno == EAGAIN || errno == EWOULDBLOCK)
            {
              /* A non-blocking descriptor (the tree walk opens files that way, and FUSE
               * may honour it): wait for data rather than fail. */
              struct pollfd p = { .fd = fd, .events = POLLIN };
              if (poll (&p, 1, -1) < 0 && errno != EINTR)
                return kp_error_errno (err, errno, "poll");
              continue;
            }
          return kp_error_errno (err, errno, "read");
        }
      if (n == 0)
        break;
      kp_blake3_update (&h, buf, (size_t) n);
    }
  kp_blake3_final (&h, out, KP_BLAKE3_OUT_LEN);
  return 0;
}

/* The read size is large enough to amortise system calls and to feed whole subtrees to the
 * vector backends, small enough to stay in the CPU's L2 cache with the data it hashes. */
int
kp_blake3_fd (int fd, uint8_t out[KP_BLAKE3_OUT_LEN], kp_error **err)
{
  kp_cleanup_free uint8_t *buf = aligned_alloc (64, KP_BLAKE3_FD_BUFFER_SIZE);
  if (buf == NULL)
    kp_oom ();

  /* A hint only: pipes and sockets refuse it, which is fine. */
  (void) posix_fadvise (fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  return kp_blake3_fd_buffer (fd, buf, KP_BLAKE3_FD_BUFFER_SIZE, out, err);
}

int
kp_blake3_file (const char *path, uint8_t out[KP_BLAKE3_OUT_LEN], kp_error **err)
{
  kp_cleanup_close int fd = -1;
  do
    fd = open (path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  while (fd < 0 && errno == EINTR);
  if (fd < 0)
    return kp_error_errno (err, errno, "open '%s'", path);
  if (kp_blake3_fd (fd, out, err) < 0)
    return kp_error_prefix (err, "hash '%s'", path);
  return 0;
}
