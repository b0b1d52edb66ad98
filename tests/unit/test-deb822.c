/* Unit tests for image/deb822.c: paragraphs, Release files, Debian version ordering. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "image/deb822.h"
#include "image/debian.h"

#include <stdio.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

static char *
read_data (const char *name, size_t *len)
{
  const char *dir = getenv ("KP_TEST_DATA");
  assert_non_null (dir);
  char path[4096];
  snprintf (path, sizeof path, "%s/debian/%s", dir, name);
  FILE *f = fopen (path, "rb");
  assert_non_null (f);
  fseek (f, 0, SEEK_END);
  long n = ftell (f);
  fseek (f, 0, SEEK_SET);
  char *buf = malloc ((size_t) n + 1);
  assert_int_equal (fread (buf, 1, (size_t) n, f), (size_t) n);
  buf[n] = '\0';
  fclose (f);
  *len = (size_t) n;
  return buf;
}

#define KEYRING "/usr/share/keyrings/debian-archive-keyring.gpg"

static void
test_inrelease (void **state)
{
  if (access (KEYRING, R_OK) != 0 || access ("/usr/bin/gpgv", X_OK) != 0)
    {
      fprintf (stderr, "skip: no gpgv or debian-archive-keyring\n");
      skip ();
    }
  size_t len = 0;
  char *in = read_data ("bookworm-InRelease", &len);
  char *release = NULL;
  size_t rlen = 0;
  kp_error *err = NULL;
  if (kp_debian_verify_inrelease (in, len, KEYRING, &release, &rlen, &err) < 0)
    fail_msg ("verify: %s", err->message);
  assert_null (strstr (release, "BEGIN PGP"));
  kp_release r;
  assert_int_equal (kp_release_parse (release, rlen, &r, &err), 0);
  assert_string_equal (r.codename, "bookworm");
  assert_non_null (kp_release_find (&r, "main/binary-amd64/Packages.xz"));
  assert_true (r.date_epoch > 1700000000);
  kp_release_clear (&r);
  free (release);

  /* One changed byte in the signed text. */
  char *v = strstr (in, "Codename: bookworm");
  assert_non_null (v);
  v[10] = 'B';
  err = NULL;
  assert_int_equal (kp_debian_verify_inrelease (in, len, KEYRING, &release, &rlen, &err), -1);
  assert_non_null (strstr (err->message, "not signed by a key"));
  kp_error_free (err);
  v[10] = 'b';
  /* The right file against a keyring without the key. */
  const char *other = "/usr/share/keyrings/debian-archive-removed-keys.gpg";
  if (access (other, R_OK) == 0)
    {
      err = NULL;
      assert_int_equal (kp_debian_verify_inrelease (in, len, other, &release, &rlen, &err), -1);
      kp_error_free (err);
    }
  err = NULL;
  assert_int_equal (kp_debian_verify_inrelease (in, len, "/nonexistent.gpg", &release, &rlen,
                                                &err), -1);
  kp_error_free (err);
  /* Not signed at all. */
  err = NULL;
  assert_int_equal (kp_debian_verify_inrelease ("Suite: x\n", 9, KEYRING, &release, &rlen, &err), -1);
  kp_error_free (err);
  free (in);
}

#define SHA "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define PKG(name, ver, extra)                                                                 \
  "Package: " name "\nVersion: " ver "\nArchitecture: amd64\nFilename: pool/" name ".deb\n"  \
  "Size: 10\nSHA256: " SHA "\n" extra "\n"

static void
test_resolve (void **state)
{
  const char *packages
      = PKG ("base-files", "12.4", "Priority: required\nEssential: yes\n")
        PKG ("libc6", "2.36-9", "Priority: required\nDepends: libgcc-s1\n")
        PKG ("libc6", "2.36-9+deb12u4", "Priority: required\nDepends: libgcc-s1\n")
        PKG ("libgcc-s1", "12.2.0-14", "Priority: optional\nDepends: gcc-12-base (= 12.2.0-14), libc6 (>= 2.35)\n")
        PKG ("gcc-12-base", "12.2.0-14", "Priority: optional\n")
        PKG ("apt", "2.6.1", "Priority: important\nDepends: libc6 (>= 2.36), debian-archive-keyring | mail-keyring, awk-virtual\n")
        PKG ("debian-archive-keyring", "2023.3", "Priority: important\n")
        PKG ("mawk", "1.3.4", "Priority: required\nProvides: awk-virtual\n")
        PKG ("gawk", "5.2", "Priority: optional\nProvides: awk-virtual\n")
        PKG ("unrelated", "1", "Priority: optional\nDepends: nothing-at-all\n");
  kp_deb_index idx;
  kp_error *err = NULL;
  assert_int_equal (kp_deb_index_parse (packages, strlen (packages), &idx, &err), 0);
  assert_int_equal (idx.n, 10);
  assert_string_equal (kp_deb_index_find (&idx, "libc6")->version, "2.36-9+deb12u4");
  assert_null (kp_deb_index_find (&idx, "zzz"));
  const char *extra[] = { "apt", NULL };
  const kp_deb_package **chosen = NULL;
  size_t n = 0;
  assert_int_equal (kp_deb_resolve (&idx, true, extra, &chosen, &n, &err), 0);
  const char *want[] = { "apt", "base-files", "debian-archive-keyring", "gcc-12-base", "libc6",
                         "libgcc-s1", "mawk" };
  assert_int_equal (n, sizeof want / sizeof *want);
  for (size_t i = 0; i < n; i++)
    assert_string_equal (chosen[i]->name, want[i]);
  assert_string_equal (chosen[4]->version, "2.36-9+deb12u4");
  free (chosen);

  const char *broken[] = { "unrelated", NULL };
  err = NULL;
  assert_int_equal (kp_deb_resolve (&idx, false, broken, &chosen, &n, &err), -1);
  assert_non_null (strstr (err->message, "unrelated 1 depends on nothing-at-all"));
  kp_error_free (err);
  kp_deb_index_clear (&idx);

  const char *evil = "Package: x\nVersion: 1\nArchitecture: amd64\nFilename: ../x.deb\nSize: 1\nSHA256: " SHA "\n";
  err = NULL;
  assert_int_equal (kp_deb_index_parse (evil, strlen (evil), &idx, &err), -1);
  kp_error_free (err);
  const char *missing = "Package: x\nVersion: 1\n";
  err = NULL;
  assert_int_equal (kp_deb_index_parse (missing, strlen (missing), &idx, &err), -1);
  assert_non_null (strstr (err->message, "line 1"));
  kp_error_free (err);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_paragraphs),
    cmocka_unit_test (test_release),
    cmocka_unit_test (test_versions),
    cmocka_unit_test (test_inrelease),
    cmocka_unit_test (test_resolve),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
