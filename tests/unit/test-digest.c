/* Unit tests for hash/digest.c: known vectors, streaming equals one-shot, parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "hash/digest.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void
test_vectors (void **state)
{
  char out[KP_DIGEST_STRING_MAX];
  kp_digest_buffer (KP_DIGEST_SHA256, "", 0, out);
  assert_string_equal (out, "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  kp_digest_buffer (KP_DIGEST_SHA256, "abc", 3, out);
  assert_string_equal (out, "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  kp_digest_buffer (KP_DIGEST_SHA512, "abc", 3, out);
  assert_string_equal (out, "sha512:ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
                            "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f");
  kp_digest_buffer (KP_DIGEST_SHA512, "", 0, out);
  assert_string_equal (out, "sha512:cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce"
                            "47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e");
  kp_digest_buffer (KP_DIGEST_BLAKE3, "", 0, out);
  assert_string_equal (out, "blake3:af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262");
  kp_digest_buffer (KP_DIGEST_BLAKE3, "abc", 3, out);
  assert_string_equal (out, "blake3:6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85");
  /* Two-block SHA-256 message from FIPS 180-2. */
  const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  kp_digest_buffer (KP_DIGEST_SHA256, two, strlen (two), out);
  assert_string_equal (out, "sha256:248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  /* Every result is valid by its own rules. */
  for (int a = KP_DIGEST_SHA256; a <= KP_DIGEST_BLAKE3; a++)
    {
      kp_digest_algo got;
      kp_digest_buffer ((kp_digest_algo) a, "x", 1, out);
      assert_true (kp_digest_is_valid (out, &got));
      assert_int_equal (got, a);
      assert_int_equal (strlen (out), strlen (kp_digest_algo_name ((kp_digest_algo) a)) + 1
                                          + 2 * kp_digest_algo_len ((kp_digest_algo) a));
    }
  assert_string_equal (kp_digest_algo_name (KP_DIGEST_SHA512), "sha512");
  assert_int_equal (kp_digest_algo_len (KP_DIGEST_SHA256), 32);
  assert_int_equal (kp_digest_algo_len (KP_DIGEST_SHA512), 64);
  assert_int_equal (kp_digest_algo_len (KP_DIGEST_BLAKE3), 32);
}

static void
test_streaming (void **state)
{
  size_t n = 100000;
  unsigned char *data = malloc (n);
  for (size_t i = 0; i < n; i++)
    data[i] = (unsigned char) (i * 7 + 3);
  for (int a = KP_DIGEST_SHA256; a <= KP_DIGEST_BLAKE3; a++)
    {
      char whole[KP_DIGEST_STRING_MAX], parts[KP_DIGEST_STRING_MAX], cloned[KP_DIGEST_STRING_MAX];
      kp_digest_buffer ((kp_digest_algo) a, data, n, whole);
      kp_digest *d = kp_digest_new ((kp_digest_algo) a);
      size_t off = 0, step = 1;
      kp_digest *c = NULL;
      while (off < n)
        {
          size_t len = off + step > n ? n - off : step;
          kp_digest_update (d, data + off, len);
          off += len;
          step = step * 3 + 1;
          if (c == NULL && off > n / 2)
            c = kp_digest_clone (d);
        }
      assert_int_equal (kp_digest_length (d), n);
      kp_digest_final (d, parts);
      assert_string_equal (whole, parts);
      /* The clone goes on from where it was copied. */
      size_t done = kp_digest_length (c);
      kp_digest_update (c, data + done, n - done);
      kp_digest_final (c, cloned);
      assert_string_equal (whole, cloned);
      kp_digest_free (d);
      kp_digest_free (c);
    }
  char path[] = "/tmp/kp-digest-XXXXXX";
  int fd = mkstemp (path);
  assert_true (fd >= 0);
  assert_int_equal (write (fd, data, n), (ssize_t) n);
  lseek (fd, 0, SEEK_SET);
  char a[KP_DIGEST_STRING_MAX], b[KP_DIGEST_STRING_MAX];
  assert_int_equal (kp_digest_fd (KP_DIGEST_SHA256, fd, a, NULL), 0);
  kp_digest_buffer (KP_DIGEST_SHA256, data, n, b);
  assert_string_equal (a, b);
  close (fd);
  unlink (path);
  /* A pipe, written in odd pieces by a child: the same digest. */
  int pfd[2];
  assert_int_equal (pipe (pfd), 0);
  pid_t pid = fork ();
  assert_true (pid >= 0);
  if (pid == 0)
    {
      close (pfd[0]);
      for (size_t off = 0, step = 7; off < n; off += step, step = step * 2 + 1)
        if (write (pfd[1], data + off, off + step > n ? n - off : step) < 0)
          _exit (1);
      _exit (0);
    }
  close (pfd[1]);
  assert_int_equal (kp_digest_fd (KP_DIGEST_SHA256, pfd[0], a, NULL), 0);
  assert_string_equal (a, b);
  close (pfd[0]);
  int status = 0;
  assert_int_equal (waitpid (pid, &status, 0), pid);
  assert_int_equal (status, 0);
  kp_error *err = NULL;
  assert_int_equal (kp_digest_fd (KP_DIGEST_SHA256, -1, a, &err), -1);
  assert_int_equal (err->errno_value, EBADF);
  kp_error_free (err);
  free (data);
}

static void
test_parse (void **state)
{
  kp_digest_algo algo;
  assert_true (kp_digest_is_valid ("sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", &algo));
  assert_int_equal (algo, KP_DIGEST_SHA256);
  assert_true (kp_digest_is_valid ("blake3:af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262", &algo));
  assert_int_equal (algo, KP_DIGEST_BLAKE3);
  static const char *const bad[] = {
    "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855", /* uppercase */
    "sha256:e3b0", "md5:d41d8cd98f00b204e9800998ecf8427e", "e3b0c44298fc", "", ":",
    "sha256e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "sha512:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", /* too short */
    "SHA256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", /* algo case */
    "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85g", /* not hex */
    "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n",
    "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8550", /* too long */
    " sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "sha256::e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85",
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    {
      kp_error *err = NULL;
      assert_false (kp_digest_is_valid (bad[i], NULL));
      assert_int_equal (kp_digest_parse (bad[i], NULL, NULL, &err), -1);
      assert_non_null (err);
      kp_error_free (err);
    }
  /* The errors say what is wrong. */
  static const struct
  {
    const char *text, *message;
  } why[] = {
    { "e3b0c44298fc", "ALGORITHM:HEX" },
    { "md5:d41d8cd98f00b204e9800998ecf8427e", "unsupported algorithm 'md5'" },
    { "sha256:e3b0", "has 4 hexadecimal digits, sha256 needs 64" },
    { "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
      "'E' is not a lowercase hexadecimal digit" },
  };
  for (size_t i = 0; i < sizeof why / sizeof *why; i++)
    {
      kp_error *err = NULL;
      assert_int_equal (kp_digest_parse (why[i].text, NULL, NULL, &err), -1);
      if (strstr (err->message, why[i].message) == NULL)
        fail_msg ("'%s' lacks '%s'", err->message, why[i].message);
      assert_int_equal (err->status, KP_EXIT_FAILURE);
      kp_error_free (err);
    }
  uint8_t raw[KP_DIGEST_MAX_LEN];
  assert_int_equal (kp_digest_parse ("sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", &algo, raw, NULL), 0);
  assert_int_equal (raw[0], 0xba);
  assert_int_equal (raw[31], 0xad);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_vectors),
    cmocka_unit_test (test_streaming),
    cmocka_unit_test (test_parse),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
