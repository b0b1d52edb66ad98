/* Unit tests for image/deb822.c: paragraphs, Release files, Debian version ordering. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "image/deb822.h"

#include <stdlib.h>
#include <string.h>

static void
test_paragraphs (void **state)
{
  const char *text = "Package: apt\nVersion: 2.6.1\nDepends: libc6 (>= 2.34),\n libapt-pkg6.0 (>= 2.6.1)\n"
                     "Description: package manager\n line two\n .\n after\n\n\n"
                     "# comment\npackage: dpkg\nPre-Depends: libc6\r\n";
  kp_deb822 d;
  kp_error *err = NULL;
  assert_int_equal (kp_deb822_parse (text, strlen (text), "Packages", &d, &err), 0);
  assert_int_equal (d.n, 2);
  assert_string_equal (kp_deb822_get (&d.paragraphs[0], "package"), "apt");
  assert_string_equal (kp_deb822_get (&d.paragraphs[0], "Depends"),
                       "libc6 (>= 2.34),\nlibapt-pkg6.0 (>= 2.6.1)");
  assert_string_equal (kp_deb822_get (&d.paragraphs[0], "Description"),
                       "package manager\nline two\n.\nafter");
  assert_string_equal (kp_deb822_get (&d.paragraphs[1], "Package"), "dpkg");
  assert_string_equal (kp_deb822_get (&d.paragraphs[1], "Pre-Depends"), "libc6");
  assert_int_equal (d.paragraphs[1].line, 12);
  assert_null (kp_deb822_get (&d.paragraphs[1], "Depends"));
  kp_deb822_clear (&d);

  struct
  {
    const char *text, *msg;
  } bad[] = {
    { " continuation\n", "line 1: a continuation line" },
    { "Package: a\nno colon here\n", "line 2: not a field" },
    { "Package: a\nPackage: b\n", "line 2: field Package given twice" },
    { ": empty name\n", "line 1: not a field" },
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    {
      err = NULL;
      assert_int_equal (kp_deb822_parse (bad[i].text, strlen (bad[i].text), "Packages", &d, &err), -1);
      assert_non_null (strstr (err->message, bad[i].msg));
      kp_error_free (err);
    }
}

static void
test_release (void **state)
{
  const char *text
      = "Origin: Debian\nSuite: stable\nCodename: bookworm\nDate: Sat, 09 Nov 2024 10:33:47 UTC\n"
        "Architectures: all amd64 arm64\nComponents: main contrib non-free-firmware\n"
        "MD5Sum:\n 0123456789abcdef0123456789abcdef 100 main/binary-amd64/Packages\n"
        "SHA256:\n"
        " 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef 8786 main/binary-amd64/Packages.xz\n"
        " 1123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef 45000 main/binary-amd64/Packages\n";
  kp_release r;
  kp_error *err = NULL;
  assert_int_equal (kp_release_parse (text, strlen (text), &r, &err), 0);
  assert_string_equal (r.codename, "bookworm");
  assert_string_equal (r.suite, "stable");
  assert_int_equal (r.date_epoch, 1731148427);
  assert_string_equal (r.architectures[1], "amd64");
  assert_string_equal (r.components[2], "non-free-firmware");
  assert_int_equal (r.n_files, 2);
  const kp_release_file *f = kp_release_find (&r, "main/binary-amd64/Packages.xz");
  assert_non_null (f);
  assert_int_equal (f->size, 8786);
  assert_string_equal (f->sha256, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
  assert_null (kp_release_find (&r, "main/binary-arm64/Packages.xz"));
  kp_release_clear (&r);

  const char *no_sha = "Suite: stable\nMD5Sum:\n 0123456789abcdef0123456789abcdef 1 x\n";
  err = NULL;
  assert_int_equal (kp_release_parse (no_sha, strlen (no_sha), &r, &err), -1);
  assert_non_null (strstr (err->message, "no SHA256"));
  kp_error_free (err);
  const char *evil = "Suite: s\nSHA256:\n 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef 1 ../../etc/passwd\n";
  err = NULL;
  assert_int_equal (kp_release_parse (evil, strlen (evil), &r, &err), -1);
  kp_error_free (err);
}

static void
test_versions (void **state)
{
  /* Pairs with a < b, from deb-version(7) and dpkg's own test vectors. */
  static const char *const less[][2] = {
    { "1.0", "1.1" },         { "1.0", "1.0.1" },         { "1.0~rc1", "1.0" },
    { "1.0~~", "1.0~" },      { "1.0~", "1.0" },           { "1.0", "1.0a" },
    { "1.0a", "1.0+" },       { "1.0-1", "1.0-2" },        { "1.0-1", "1.0-1.1" },
    { "1:0.1", "2:0.0" },     { "9.9", "1:0.0" },          { "2.6.1", "2.10" },
    { "1.2.3-1", "1.2.3-1+deb12u1" }, { "2.36-9", "2.36-9+deb12u4" },
    { "1.0-1~bpo12+1", "1.0-1" }, { "a", "b" },            { "1.0-0", "1.0-1" },
  };
  for (size_t i = 0; i < sizeof less / sizeof *less; i++)
    {
      if (kp_deb_version_compare (less[i][0], less[i][1]) >= 0)
        fail_msg ("expected %s < %s", less[i][0], less[i][1]);
      if (kp_deb_version_compare (less[i][1], less[i][0]) <= 0)
        fail_msg ("expected %s > %s", less[i][1], less[i][0]);
    }
  static const char *const same[][2] = {
    { "1.0", "1.0" }, { "0:1.0", "1.0" }, { "1.0-0", "1.0" }, { "1.00", "1.0" }, { "1.01", "1.1" },
  };
  for (size_t i = 0; i < sizeof same / sizeof *same; i++)
    if (kp_deb_version_compare (same[i][0], same[i][1]) != 0)
      fail_msg ("expected %s = %s", same[i][0], same[i][1]);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_paragraphs),
    cmocka_unit_test (test_release),
    cmocka_unit_test (test_versions),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
