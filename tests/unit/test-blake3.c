/* test-blake3.c — BLAKE3 against the official test vectors and Debian's b3sum.
 *
 * Every check runs once per compression backend the CPU supports, since the vector
 * backends and the portable one must agree bit for bit. The comparison with b3sum covers
 * every chunk and block boundary the tree logic cares about; without b3sum it fails. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/fs.h"
#include "hash/blake3.h"

static const char *const all_backends[] = { "portable", "sse41", "avx2", "avx512" };

/* Select backend i, or say why it cannot run here. */
static bool
use_backend (size_t i)
{
  if (kp_blake3_select_backend (all_backends[i]) == 0)
    {
      assert_string_equal (kp_blake3_backend (), all_backends[i]);
      return true;
    }
  print_message ("[ SKIP     ] backend %s: not built for or not supported by this CPU\n",
                 all_backends[i]);
  return false;
}

static void
restore_backend (void)
{
  assert_int_equal (kp_blake3_select_backend (NULL), 0);
}

static uint8_t *
pattern_input (size_t len)
{
  uint8_t *p = xmalloc (len);
  for (size_t i = 0; i < len; i++)
    p[i] = (uint8_t) (i % 251);
  return p;
}

static void
hex_decode (const char *hex, uint8_t *out, size_t out_len)
{
  assert_int_equal (strlen (hex), 2 * out_len);
  for (size_t i = 0; i < out_len; i++)
    {
      unsigned v;
      assert_int_equal (sscanf (hex + 2 * i, "%2x", &v), 1);
      out[i] = (uint8_t) v;
    }
}

static void
assert_hex_equal (const uint8_t *got, size_t len, const char *want_hex, const char *what,
                  size_t input_len)
{
  uint8_t want[256];
  assert_true (len <= sizeof want);
  hex_decode (want_hex, want, len);
  if (memcmp (got, want, len) != 0)
    fail_msg ("%s mismatch for input_len %zu (%zu bytes, backend %s)", what, input_len, len,
              kp_blake3_backend ());
}

/* ---- Official test vectors ---- */

static json_t *
load_vectors (void)
{
  const char *dir = getenv ("KP_TEST_DATA");
  assert_non_null (dir);
  kp_cleanup_free char *path = xasprintf ("%s/blake3-test-vectors.json", dir);
  json_error_t jerr;
  json_t *root = json_load_file (path, 0, &jerr);
  if (root == NULL)
    fail_msg ("%s:%d: %s", path, jerr.line, jerr.text);
  return root;
}

static void
check_vectors (json_t *root)
{
  const char *key = json_string_value (json_object_get (root, "key"));
  const char *context = json_string_value (json_object_get (root, "context_string"));
  json_t *cases = json_object_get (root, "cases");
  assert_non_null (key);
  assert_int_equal (strlen (key), KP_BLAKE3_KEY_LEN);
  assert_non_null (context);
  assert_true (json_array_size (cases) > 30);

  size_t i;
  json_t *c;
  json_array_foreach (cases, i, c)
    {
      size_t len = (size_t) json_integer_value (json_object_get (c, "input_len"));
      kp_cleanup_free uint8_t *input = pattern_input (len);
      const char *modes[] = { "hash", "keyed_hash", "derive_key" };
      for (size_t m = 0; m < KP_N_ELEMENTS (modes); m++)
        {
          const char *want = json_string_value (json_object_get (c, modes[m]));
          assert_non_null (want);
          size_t xof_len = strlen (want) / 2;
          assert_int_equal (xof_len, 131);

          kp_blake3 h;
          if (m == 0)
            kp_blake3_init (&h);
          else if (m == 1)
            kp_blake3_init_keyed (&h, (const uint8_t *) key);
          else
            kp_blake3_init_derive_key (&h, context);
          kp_blake3_update (&h, input, len);

          uint8_t out[131];
          kp_blake3_final (&h, out, xof_len);
          assert_hex_equal (out, xof_len, want, modes[m], len);

          /* The default length is a prefix of the extended output. */
          uint8_t out32[KP_BLAKE3_OUT_LEN];
          kp_blake3_final (&h, out32, sizeof out32);
          assert_memory_equal (out32, out, sizeof out32);

          if (m == 0)
            {
              kp_blake3_hash (input, len, out32);
              assert_memory_equal (out32, out, sizeof out32);
            }
        }
    }
}

static void
test_vectors (void **state)
{
  json_t *root = load_vectors ();
  for (size_t b = 0; b < KP_N_ELEMENTS (all_backends); b++)
    if (use_backend (b))
      check_vectors (root);
  restore_backend ();
  json_decref (root);
}

static void
test_env_forces_portable (void **state)
{
  assert_int_equal (setenv ("KARAPACE_BLAKE3_BACKEND", "portable", 1), 0);
  restore_backend ();
  assert_string_equal (kp_blake3_backend (), "portable");

  /* An unknown name falls back to the automatic choice rather than failing. */
  assert_int_equal (setenv ("KARAPACE_BLAKE3_BACKEND", "no-such-backend", 1), 0);
  restore_backend ();
  const char *chosen = kp_blake3_backend ();
  assert_int_equal (unsetenv ("KARAPACE_BLAKE3_BACKEND"), 0);
  restore_backend ();
  assert_string_equal (kp_blake3_backend (), chosen);
  print_message ("automatic backend: %s\n", chosen);

  assert_int_equal (kp_blake3_select_backend ("no-such-backend"), -1);
  assert_string_equal (kp_blake3_backend (), chosen);
}

/* ---- The backend seam itself ---- */

static void
test_hash_many_backends_agree (void **state)
{
  enum { MAX_INPUTS = 40 };
  kp_cleanup_free uint8_t *input = xmalloc (MAX_INPUTS * KP_BLAKE3_CHUNK_LEN);
  uint32_t seed = 12345;
  for (size_t i = 0; i < MAX_INPUTS * KP_BLAKE3_CHUNK_LEN; i++)
    {
      seed = seed * 1103515245u + 12345u;
      input[i] = (uint8_t) (seed >> 16);
    }
  uint32_t key[8];
  for (int i = 0; i < 8; i++)
    key[i] = kp_blake3_iv[i] ^ (uint32_t) (0x01010101u * (unsigned) i);

  /* Counters that carry into the high word between lanes. */
  const uint64_t counters[] = { 0, 7, 0xfffffff0u, 0xffffffffu, 0x123456789abull };
  for (size_t b = 0; b < KP_N_ELEMENTS (all_backends); b++)
    {
      if (!use_backend (b))
        continue;
      for (size_t n = 0; n <= MAX_INPUTS; n++)
        for (size_t c = 0; c < KP_N_ELEMENTS (counters); c++)
          {
            uint8_t want[MAX_INPUTS * KP_BLAKE3_OUT_LEN + 1];
            uint8_t got[MAX_INPUTS * KP_BLAKE3_OUT_LEN + 1];
            memset (want, 0xaa, sizeof want);
            memset (got, 0xaa, sizeof got);
            kp_blake3_hash_many_portable (input, n, 16, key, counters[c], true,
                                          KP_BLAKE3_KEYED_HASH, want);
            kp_blake3_hash_many (input, n, 16, key, counters[c], true, KP_BLAKE3_KEYED_HASH, got);
            if (memcmp (want, got, sizeof want) != 0)
              fail_msg ("chunks: backend %s, %zu inputs, counter %#llx", all_backends[b], n,
                        (unsigned long long) counters[c]);

            memset (want, 0xaa, sizeof want);
            memset (got, 0xaa, sizeof got);
            kp_blake3_hash_many_portable (input, n, 1, key, counters[c], false,
                                          KP_BLAKE3_PARENT, want);
            kp_blake3_hash_many (input, n, 1, key, counters[c], false, KP_BLAKE3_PARENT, got);
            if (memcmp (want, got, sizeof want) != 0)
              fail_msg ("parents: backend %s, %zu inputs, counter %#llx", all_backends[b], n,
                        (unsigned long long) counters[c]);

            /* Odd block counts too: the seam accepts any. */
            memset (want, 0xaa, sizeof want);
            memset (got, 0xaa, sizeof got);
            kp_blake3_hash_many_portable (input, n, 3, key, counters[c], true, 0, want);
            kp_blake3_hash_many (input, n, 3, key, counters[c], true, 0, got);
            if (memcmp (want, got, sizeof want) != 0)
              fail_msg ("3-block inputs: backend %s, %zu inputs", all_backends[b], n);
          }
    }
  restore_backend ();
}

/* ---- Incremental updates ---- */

typedef size_t (*split_fn) (size_t step, uint32_t *rng);

static size_t
split_random (size_t step, uint32_t *rng)
{
  *rng = *rng * 1664525u + 1013904223u;
  uint32_t r = *rng >> 8;
  /* Mostly small pieces, sometimes several chunks. */
  return (r & 7) == 0 ? r % 70000 : r % 1500;
}

static size_t
split_growing (size_t step, uint32_t *rng)
{
  return step + 1;
}

static void
hash_split (int mode, const uint8_t *input, size_t len, size_t fixed, split_fn fn, uint8_t *out,
            size_t out_len)
{
  static const uint8_t key[KP_BLAKE3_KEY_LEN] = "whats the Elvish word for friend";
  kp_blake3 h;
  if (mode == 0)
    kp_blake3_init (&h);
  else if (mode == 1)
    kp_blake3_init_keyed (&h, key);
  else
    kp_blake3_init_derive_key (&h, "karapace test context");

  uint32_t rng = 42;
  size_t pos = 0;
  for (size_t step = 0; pos < len; step++)
    {
      size_t piece = fn ? fn (step, &rng) : fixed;
      if (piece > len - pos)
        piece = len - pos;
      kp_blake3_update (&h, input + pos, piece);
      /* Finalising must not disturb the state. */
      if (step % 97 == 3)
        {
          uint8_t scratch[40];
          kp_blake3_final (&h, scratch, sizeof scratch);
        }
      pos += piece;
    }
  kp_blake3_final (&h, out, out_len);
}

static void
test_incremental_splits (void **state)
{
  const size_t lengths[] = { 0, 1, 1024, 1025, 2048, 4097, 65536, 65537, 300000, 1 << 20 };
  const size_t fixed[] = { 0 /* one piece */, 1, 7, 63, 64, 65, 1000, 1023, 1024, 1025,
                           2048, 3000, 4096, 65536, 262144 };
  for (size_t b = 0; b < KP_N_ELEMENTS (all_backends); b++)
    {
      if (!use_backend (b))
        continue;
      for (size_t l = 0; l < KP_N_ELEMENTS (lengths); l++)
        {
          size_t len = lengths[l];
          kp_cleanup_free uint8_t *input = pattern_input (len ? len : 1);
          for (int mode = 0; mode < 3; mode++)
            {
              uint8_t want[100], got[100];
              hash_split (mode, input, len, len ? len : 1, NULL, want, sizeof want);
              for (size_t f = 1; f < KP_N_ELEMENTS (fixed); f++)
                {
                  /* Byte-at-a-time over a megabyte is slow and adds nothing. */
                  if (fixed[f] < 64 && len > 70000)
                    continue;
                  hash_split (mode, input, len, fixed[f], NULL, got, sizeof got);
                  if (memcmp (want, got, sizeof want) != 0)
                    fail_msg ("split %zu of %zu bytes, mode %d, backend %s", fixed[f], len, mode,
                              all_backends[b]);
                }
              hash_split (mode, input, len, 0, split_random, got, sizeof got);
              if (memcmp (want, got, sizeof want) != 0)
                fail_msg ("random split of %zu bytes, mode %d", len, mode);
              if (len <= 70000)
                {
                  hash_split (mode, input, len, 0, split_growing, got, sizeof got);
                  if (memcmp (want, got, sizeof want) != 0)
                    fail_msg ("growing split of %zu bytes, mode %d", len, mode);
                }
            }
        }
    }
  restore_backend ();
}

/* ---- Extendable output ---- */

static void
test_final_seek (void **state)
{
  const size_t lengths[] = { 0, 65, 1025, 5000 };
  for (size_t l = 0; l < KP_N_ELEMENTS (lengths); l++)
    {
      kp_cleanup_free uint8_t *input = pattern_input (lengths[l] + 1);
      kp_blake3 h;
      kp_blake3_init (&h);
      kp_blake3_update (&h, input, lengths[l]);

      uint8_t full[300];
      kp_blake3_final (&h, full, sizeof full);
      for (size_t seek = 0; seek < sizeof full; seek++)
        for (size_t n = 0; seek + n <= sizeof full; n += 1 + n / 3)
          {
            uint8_t part[300];
            memset (part, 0, sizeof part);
            kp_blake3_final_seek (&h, seek, part, n);
            if (memcmp (part, full + seek, n) != 0)
              fail_msg ("seek %zu length %zu of input %zu", seek, n, lengths[l]);
          }

      /* Far offsets, where the block counter needs its high word: overlapping reads
       * must agree wherever they overlap. */
      const uint64_t far[] = { 1ull << 38, (1ull << 38) - 5, 0xffffffffull * 64 + 10 };
      for (size_t i = 0; i < KP_N_ELEMENTS (far); i++)
        {
          uint8_t a[200], b[150];
          kp_blake3_final_seek (&h, far[i], a, sizeof a);
          kp_blake3_final_seek (&h, far[i] + 50, b, sizeof b);
          assert_memory_equal (a + 50, b, sizeof b);
        }
    }
  /* The official vectors give 131 bytes; their tail read through a seek. */
  json_t *root = load_vectors ();
  json_t *c = json_array_get (json_object_get (root, "cases"), 17); /* input_len 1025 */
  assert_int_equal (json_integer_value (json_object_get (c, "input_len")), 1025);
  uint8_t want[131];
  hex_decode (json_string_value (json_object_get (c, "hash")), want, sizeof want);
  kp_cleanup_free uint8_t *input = pattern_input (1025);
  kp_blake3 h;
  kp_blake3_init (&h);
  kp_blake3_update (&h, input, 1025);
  uint8_t tail[131 - 70];
  kp_blake3_final_seek (&h, 70, tail, sizeof tail);
  assert_memory_equal (tail, want + 70, sizeof tail);
  json_decref (root);
}

/* ---- Hex ---- */

static void
test_hex (void **state)
{
  uint8_t digest[KP_BLAKE3_OUT_LEN], back[KP_BLAKE3_OUT_LEN];
  char hex[KP_BLAKE3_HEX_LEN + 1];
  for (int round = 0; round < 64; round++)
    {
      for (size_t i = 0; i < sizeof digest; i++)
        digest[i] = (uint8_t) (round * 37 + i * 11);
      kp_blake3_to_hex (digest, hex);
      assert_int_equal (strlen (hex), KP_BLAKE3_HEX_LEN);
      for (size_t i = 0; i < KP_BLAKE3_HEX_LEN; i++)
        assert_non_null (strchr ("0123456789abcdef", hex[i]));
      memset (back, 0, sizeof back);
      assert_int_equal (kp_blake3_from_hex (hex, back), 0);
      assert_memory_equal (back, digest, sizeof digest);
    }

  kp_blake3_hash ("", 0, digest);
  kp_blake3_to_hex (digest, hex);
  assert_string_equal (hex, "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262");

  /* Upper case is accepted. */
  assert_int_equal (
      kp_blake3_from_hex ("AF1349B9F5F9A1A6A0404DEA36DCC9499BCB25C9ADC112B7CC9A93CAE41F3262",
                          back),
      0);
  assert_memory_equal (back, digest, sizeof digest);

  /* Malformed: short, long, bad digit, embedded NUL; the output is left alone. */
  const char *bad[] = {
    "",
    "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f326",
    "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f32620",
    "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f326g",
    "gf1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",
    "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262\n",
    " af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",
    "+f1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",
  };
  for (size_t i = 0; i < KP_N_ELEMENTS (bad); i++)
    {
      memset (back, 0x5a, sizeof back);
      assert_int_equal (kp_blake3_from_hex (bad[i], back), -1);
      for (size_t j = 0; j < sizeof back; j++)
        assert_int_equal (back[j], 0x5a);
    }
  char embedded[KP_BLAKE3_HEX_LEN + 1];
  memcpy (embedded, "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",
          sizeof embedded);
  embedded[10] = '\0';
  assert_int_equal (kp_blake3_from_hex (embedded, back), -1);
}

/* ---- Files and Debian's b3sum ---- */

static const char *
find_b3sum (void)
{
  if (access ("/usr/bin/b3sum", X_OK) == 0)
    return "/usr/bin/b3sum";
  return NULL;
}

/* Run b3sum with extra arguments on one file and return its hex digest. */
static char *
b3sum_digest (const char *b3sum, const char *const *extra, size_t n_extra, const char *path,
              const uint8_t *stdin_data, size_t stdin_len)
{
  int in_pipe[2], out_pipe[2];
  assert_int_equal (pipe2 (in_pipe, O_CLOEXEC), 0);
  assert_int_equal (pipe2 (out_pipe, O_CLOEXEC), 0);
  pid_t pid = fork ();
  assert_true (pid >= 0);
  if (pid == 0)
    {
      dup2 (in_pipe[0], STDIN_FILENO);
      dup2 (out_pipe[1], STDOUT_FILENO);
      const char *argv[16];
      size_t n = 0;
      argv[n++] = b3sum;
      argv[n++] = "--no-names";
      argv[n++] = "--num-threads";
      argv[n++] = "1";
      for (size_t i = 0; i < n_extra; i++)
        argv[n++] = extra[i];
      argv[n++] = path;
      argv[n] = NULL;
      execv (b3sum, (char *const *) argv);
      _exit (127);
    }
  close (in_pipe[0]);
  close (out_pipe[1]);
  if (stdin_len > 0)
    assert_int_equal (kp_write_all (in_pipe[1], stdin_data, stdin_len), 0);
  close (in_pipe[1]);

  char line[1024];
  size_t got = 0;
  for (;;)
    {
      ssize_t n = read (out_pipe[0], line + got, sizeof line - 1 - got);
      if (n < 0 && errno == EINTR)
        continue;
      assert_true (n >= 0);
      if (n == 0)
        break;
      got += (size_t) n;
    }
  close (out_pipe[0]);
  line[got] = '\0';
  int status;
  assert_int_equal (waitpid (pid, &status, 0), pid);
  if (!WIFEXITED (status) || WEXITSTATUS (status) != 0)
    fail_msg ("%s failed on %s", b3sum, path);
  char *nl = strchr (line, '\n');
  if (nl)
    *nl = '\0';
  return xstrdup (line);
}

/* Deterministic, incompressible-looking content: byte i of every file is the same
 * function of i, so files share prefixes and differ only in length. */
static void
write_file (const char *path, size_t len)
{
  kp_cleanup_close int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  assert_true (fd >= 0);
  enum { PIECE = 1 << 20 };
  kp_cleanup_free uint8_t *buf = xmalloc (PIECE);
  uint64_t x = 0x9e3779b97f4a7c15ull;
  for (size_t pos = 0; pos < len;)
    {
      size_t n = len - pos < PIECE ? len - pos : PIECE;
      for (size_t i = 0; i < n; i++)
        {
          /* xorshift64 */
          x ^= x << 13;
          x ^= x >> 7;
          x ^= x << 17;
          buf[i] = (uint8_t) (x >> 24);
        }
      assert_int_equal (kp_write_all (fd, buf, n), 0);
      pos += n;
    }
}

/* The scratch directory of test_against_b3sum, removed even when the test fails. */
static int
remove_scratch (void **state)
{
  char *dir = *state;
  if (dir == NULL)
    return 0;
  DIR *d = opendir (dir);
  if (d)
    {
      struct dirent *de;
      while ((de = readdir (d)))
        if (de->d_name[0] != '.')
          {
            kp_cleanup_free char *p = xasprintf ("%s/%s", dir, de->d_name);
            unlink (p);
          }
      closedir (d);
    }
  rmdir (dir);
  free (dir);
  *state = NULL;
  return 0;
}

static void
test_against_b3sum (void **state)
{
  const char *b3sum = find_b3sum ();
  if (b3sum == NULL)
    fail_msg ("/usr/bin/b3sum not found: install the Debian package `b3sum` "
              "(apt-get install b3sum); this test compares against it and must not be skipped");

  const size_t sizes[] = {
    0, 1, 63, 64, 65, 1023, 1024, 1025, 2047, 2048, 2049, 3071, 3072, 3073,
    4095, 4096, 4097, 8191, 8192, 8193, 16383, 16384, 16385, 31744,
    32767, 32768, 32769, 65535, 65536, 65537,
    (1 << 20) - 1, 1 << 20, (1 << 20) + 1, 100u << 20,
  };
  enum { N = sizeof sizes / sizeof sizes[0] };

  const char *tmp = getenv ("TMPDIR");
  char *dir = xasprintf ("%s/test-blake3-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  *state = dir;
  assert_non_null (mkdtemp (dir));
  char *names[N];
  char *want[N];
  for (size_t i = 0; i < N; i++)
    {
      names[i] = xasprintf ("f%zu", sizes[i]);
      kp_cleanup_free char *path = xasprintf ("%s/%s", dir, names[i]);
      write_file (path, sizes[i]);
      want[i] = b3sum_digest (b3sum, NULL, 0, path, NULL, 0);
      assert_int_equal (strlen (want[i]), KP_BLAKE3_HEX_LEN);
    }

  for (size_t b = 0; b < KP_N_ELEMENTS (all_backends); b++)
    {
      if (!use_backend (b))
        continue;
      for (size_t i = 0; i < N; i++)
        {
          kp_cleanup_free char *path = xasprintf ("%s/%s", dir, names[i]);
          kp_cleanup_error kp_error *err = NULL;
          uint8_t digest[KP_BLAKE3_OUT_LEN];
          char hex[KP_BLAKE3_HEX_LEN + 1];
          assert_int_equal (kp_blake3_file (path, digest, &err), 0);
          kp_blake3_to_hex (digest, hex);
          if (strcmp (hex, want[i]) != 0)
            fail_msg ("size %zu, backend %s: ours %s, b3sum %s", sizes[i], all_backends[b], hex,
                      want[i]);
        }
    }
  restore_backend ();

  /* Keyed and key-derivation modes, and extended output, on a few sizes. */
  static const uint8_t key[KP_BLAKE3_KEY_LEN] = "0123456789abcdef0123456789abcdef";
  const char *keyed_args[] = { "--keyed" };
  const char *derive_args[] = { "--derive-key", "karapace 2024 test context" };
  const char *long_args[] = { "--length", "200" };
  for (size_t i = 0; i < N; i++)
    {
      if (sizes[i] > (2u << 20))
        continue;
      kp_cleanup_free char *path = xasprintf ("%s/%s", dir, names[i]);
      size_t len;
      kp_cleanup_error kp_error *err = NULL;
      kp_cleanup_free char *data = kp_file_read (path, 4u << 20, &len, &err);
      assert_non_null (data);

      kp_blake3 h;
      uint8_t out[200];
      char hex[2 * sizeof out + 1];

      kp_blake3_init_keyed (&h, key);
      kp_blake3_update (&h, data, len);
      kp_blake3_final (&h, out, 32);
      kp_blake3_to_hex (out, hex);
      kp_cleanup_free char *keyed = b3sum_digest (b3sum, keyed_args, 1, path, key, sizeof key);
      assert_string_equal (hex, keyed);

      kp_blake3_init_derive_key (&h, derive_args[1]);
      kp_blake3_update (&h, data, len);
      kp_blake3_final (&h, out, 32);
      kp_blake3_to_hex (out, hex);
      kp_cleanup_free char *derived = b3sum_digest (b3sum, derive_args, 2, path, NULL, 0);
      assert_string_equal (hex, derived);

      kp_blake3_init (&h);
      kp_blake3_update (&h, data, len);
      kp_blake3_final (&h, out, sizeof out);
      for (size_t j = 0; j < sizeof out; j++)
        sprintf (hex + 2 * j, "%02x", out[j]);
      kp_cleanup_free char *extended = b3sum_digest (b3sum, long_args, 2, path, NULL, 0);
      assert_string_equal (hex, extended);
    }

  for (size_t i = 0; i < N; i++)
    {
      free (names[i]);
      free (want[i]);
    }
}

/* A pipe delivers short reads of odd sizes: the result must not depend on them. A
 * non-blocking pipe also runs dry now and then, which must mean "wait", not "fail". */
static void
test_fd_pipe (void **state)
{
  const size_t len = 3 * 1024 * 1024 + 17;
  kp_cleanup_free uint8_t *input = pattern_input (len);
  uint8_t want[KP_BLAKE3_OUT_LEN], got[KP_BLAKE3_OUT_LEN];
  kp_blake3_hash (input, len, want);

  for (int nonblocking = 0; nonblocking < 2; nonblocking++)
    {
      int fds[2];
      assert_int_equal (pipe2 (fds, O_CLOEXEC), 0);
      if (nonblocking)
        assert_int_equal (fcntl (fds[0], F_SETFL, O_NONBLOCK), 0);
      pid_t pid = fork ();
      assert_true (pid >= 0);
      if (pid == 0)
        {
          close (fds[0]);
          /* Odd write sizes so that reads end mid-chunk and mid-block, with pauses. */
          size_t pos = 0, piece = 1;
          while (pos < len)
            {
              size_t n = piece < len - pos ? piece : len - pos;
              if (kp_write_all (fds[1], input + pos, n) < 0)
                _exit (1);
              pos += n;
              piece = piece * 3 + 7;
              if (piece > 200000)
                {
                  piece = 1;
                  usleep (1000);
                }
            }
          _exit (0);
        }
      close (fds[1]);
      kp_cleanup_error kp_error *err = NULL;
      assert_int_equal (kp_blake3_fd (fds[0], got, &err), 0);
      close (fds[0]);
      int status;
      assert_int_equal (waitpid (pid, &status, 0), pid);
      assert_true (WIFEXITED (status) && WEXITSTATUS (status) == 0);
      assert_memory_equal (got, want, sizeof want);
    }
}

static void
test_file_errors (void **state)
{
  kp_cleanup_error kp_error *err = NULL;
  uint8_t digest[KP_BLAKE3_OUT_LEN];
  assert_int_equal (kp_blake3_file ("/nonexistent/karapace-test", digest, &err), -1);
  assert_non_null (err);
  assert_int_equal (err->errno_value, ENOENT);
  assert_non_null (strstr (err->message, "/nonexistent/karapace-test"));
  kp_error_free (kp_steal_pointer (&err));

  /* Reading a directory fails with EISDIR, reported with the path. */
  assert_int_equal (kp_blake3_file ("/", digest, &err), -1);
  assert_non_null (err);
  assert_int_equal (err->errno_value, EISDIR);
  assert_non_null (strstr (err->message, "'/'"));
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_vectors),
    cmocka_unit_test (test_env_forces_portable),
    cmocka_unit_test (test_hash_many_backends_agree),
    cmocka_unit_test (test_incremental_splits),
    cmocka_unit_test (test_final_seek),
    cmocka_unit_test (test_hex),
    cmocka_unit_test_teardown (test_against_b3sum, remove_scratch),
    cmocka_unit_test (test_fd_pipe),
    cmocka_unit_test (test_file_errors),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
