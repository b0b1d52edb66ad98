/* Unit tests for base/: buffers, paths, atomic writes, errors, edit distance. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "base/buf.h"
#include "base/error.h"
#include "base/fs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void
test_buf (void **state)
{
  kp_cleanup_buf kp_buf b = KP_BUF_INIT;
  assert_string_equal (kp_buf_str (&b), "");
  for (int i = 0; i < 1000; i++)
    kp_buf_printf (&b, "%d,", i);
  assert_true (kp_str_has_prefix (b.data, "0,1,2,"));
  assert_true (kp_str_has_suffix (b.data, "998,999,"));
  kp_buf_truncate (&b, 2);
  assert_string_equal (b.data, "0,");
  kp_buf_put_utf8 (&b, 0xE9);
  kp_buf_put_utf8 (&b, 0x1F600);
  assert_string_equal (b.data, "0,\xC3\xA9\xF0\x9F\x98\x80");
  char *s = kp_buf_steal (&b);
  assert_null (b.data);
  free (s);
}

static void
test_path_normalize (void **state)
{
  static const char *const cases[][2] = {
    { "/", "/" },         { "//a//b/", "/a/b" },   { "/a/./b/../c", "/a/c" },
    { "/../..", "/" },    { "/home/../etc", "/etc" }, { ".", "." },
    { "./", "." },        { "a/..", "." },         { "../a", "../a" },
    { "a/../../b", "../b" }, { "./src/../src/", "src" }, { "../../x/..", "../.." },
  };
  for (size_t i = 0; i < KP_N_ELEMENTS (cases); i++)
    {
      kp_cleanup_free char *n = kp_path_normalize (cases[i][0]);
      assert_string_equal (n, cases[i][1]);
    }
}

static void
test_path_is_under (void **state)
{
  assert_true (kp_path_is_under ("/home", "/home"));
  assert_true (kp_path_is_under ("/home/a/b", "/home"));
  assert_true (kp_path_is_under ("/home/a", "/home/"));
  assert_false (kp_path_is_under ("/homes", "/home"));
  assert_false (kp_path_is_under ("/etc", "/home"));
  assert_true (kp_path_is_under ("/etc", "/"));
}

static void
test_atomic_write (void **state)
{
  char dir[] = "/tmp/kp-test-XXXXXX";
  assert_non_null (mkdtemp (dir));
  kp_cleanup_free char *path = kp_path_join (dir, "f");
  kp_error *err = NULL;
  assert_int_equal (kp_file_write_atomic (path, "one", 3, 0600, true, &err), 0);
  /* exclusive refuses to replace, and leaves no temporary file */
  assert_int_equal (kp_file_write_atomic (path, "two", 3, 0600, true, &err), -1);
  assert_int_equal (err->errno_value, EEXIST);
  kp_error_free (err);
  err = NULL;
  size_t len;
  kp_cleanup_free char *data = kp_file_read (path, 100, &len, &err);
  assert_string_equal (data, "one");
  assert_int_equal (kp_file_write_atomic (path, "three", 5, 0640, false, &err), 0);
  kp_cleanup_free char *data2 = kp_file_read (path, 100, &len, &err);
  assert_string_equal (data2, "three");
  struct stat st;
  assert_int_equal (stat (path, &st), 0);
  assert_int_equal (st.st_mode & 07777, 0640);
  /* size limit */
  assert_null (kp_file_read (path, 4, &len, &err));
  assert_non_null (strstr (err->message, "larger than 4 bytes"));
  kp_error_free (err);
  unlink (path);
  assert_int_equal (rmdir (dir), 0); /* empty: no temporary files left */
}

static int
fails (kp_error **err)
{
  return kp_error_errno (err, ENOENT, "open '%s'", "x");
}

static void
test_error_contract (void **state)
{
  kp_error *err = NULL;
  assert_int_equal (fails (&err), -1);
  kp_error_prefix (&err, "load");
  kp_error_hint (&err, "create %s", "it");
  assert_string_equal (err->message, "load: open 'x': No such file or directory");
  assert_string_equal (err->hint, "create it");
  assert_int_equal (err->errno_value, ENOENT);
  assert_int_equal (err->status, KP_EXIT_FAILURE);
  /* The first error is kept. */
  kp_error_set (&err, KP_EXIT_STORE, "second");
  assert_string_equal (err->message, "load: open 'x': No such file or directory");
  kp_error_free (err);
  err = NULL;
  kp_error_at (&err, "m.toml", 3, 7, "bad %s", "thing");
  kp_cleanup_free char *d = kp_error_describe (err);
  assert_string_equal (d, "m.toml:3:7: bad thing");
  assert_int_equal (err->status, KP_EXIT_MANIFEST);
  kp_error_free (err);
  /* A NULL err is allowed: the caller does not want details. */
  assert_int_equal (fails (NULL), -1);
}

static void
test_levenshtein (void **state)
{
  assert_int_equal (kp_levenshtein ("", ""), 0);
  assert_int_equal (kp_levenshtein ("gpu", "gpuu"), 1);
  assert_int_equal (kp_levenshtein ("kitten", "sitting"), 3);
  assert_int_equal (kp_levenshtein ("abc", ""), 3);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_buf),          cmocka_unit_test (test_path_normalize),
    cmocka_unit_test (test_path_is_under), cmocka_unit_test (test_atomic_write),
    cmocka_unit_test (test_error_contract), cmocka_unit_test (test_levenshtein),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
