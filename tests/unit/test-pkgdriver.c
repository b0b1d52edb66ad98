/* Unit tests for engine/pkgdriver.c: detection, install commands, and the parsers of what
 * each package manager lists. The dpkg list was captured from a bookworm minbase built by
 * karapace; the rpm, pacman and apk lists are written in those tools' formats (rpm -qa
 * --qf with the query the driver uses, pacman -Qi of Arch, /lib/apk/db/installed of Alpine
 * 3.20), since no such base can be fetched on the machine the tests run on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "base/fs.h"
#include "base/util.h"
#include "engine/pkgdriver.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *
fixture (const char *name)
{
  const char *dir = getenv ("KP_TEST_DATA");
  assert_non_null (dir);
  kp_cleanup_free char *path = xasprintf ("%s/pkg/%s", dir, name);
  size_t len;
  kp_error *err = NULL;
  char *text = kp_file_read (path, 1 << 20, &len, &err);
  if (text == NULL)
    fail_msg ("%s: %s", path, err->message);
  return text;
}

static const kp_lock_package *
find (const kp_lock_package *p, size_t n, const char *name)
{
  for (size_t i = 0; i < n; i++)
    if (strcmp (p[i].name, name) == 0)
      return &p[i];
  return NULL;
}

static void
test_dpkg (void **state)
{
  kp_cleanup_free char *text = fixture ("dpkg-query-bookworm-minbase.txt");
  kp_lock_package *p = NULL;
  size_t n = 0;
  kp_error *err = NULL;
  assert_int_equal (kp_pkg_parse_list (kp_pkg_driver_get (KP_PKG_APT), text, &p, &n, &err), 0);
  assert_int_equal (n, 96);
  const kp_lock_package *apt = find (p, n, "apt");
  assert_non_null (apt);
  assert_string_equal (apt->version, "2.6.1");
  assert_string_equal (apt->arch, "amd64");
  assert_string_equal (apt->sha256, "");
  for (size_t i = 1; i < n; i++)
    assert_true (strcmp (p[i - 1].name, p[i].name) <= 0);
  kp_pkg_list_free (p, n);
  /* A package dpkg only remembers (no version) is not installed. */
  assert_int_equal (kp_pkg_parse_list (kp_pkg_driver_get (KP_PKG_APT),
                                       "a\t1.0\tall\nb\t\tamd64\n", &p, &n, &err), 0);
  assert_int_equal (n, 1);
  kp_pkg_list_free (p, n);
  assert_int_equal (kp_pkg_parse_list (kp_pkg_driver_get (KP_PKG_APT), "a 1.0 all\n", &p, &n,
                                       &err), -1);
  assert_non_null (strstr (err->message, "line 1 of apt's package list"));
  kp_error_free (err);
}

static void
test_rpm (void **state)
{
  kp_cleanup_free char *text = fixture ("rpm-qa-fedora40.txt");
  kp_lock_package *p = NULL;
  size_t n = 0;
  kp_error *err = NULL;
  assert_int_equal (kp_pkg_parse_list (kp_pkg_driver_get (KP_PKG_DNF), text, &p, &n, &err), 0);
  assert_int_equal (n, 4); /* gpg-pubkey, arch (none), is a key, not a package */
  assert_null (find (p, n, "gpg-pubkey"));
  assert_string_equal (find (p, n, "openssl-libs")->version, "1:3.2.2-3.fc40");
  assert_string_equal (find (p, n, "fedora-release-common")->arch, "noarch");
  kp_pkg_list_free (p, n);
  /* zypper uses the same query. */
  assert_int_equal (kp_pkg_parse_list (kp_pkg_driver_get (KP_PKG_ZYPPER), text, &p, &n, &err),
                    0);
  assert_int_equal (n, 4);
  kp_pkg_list_free (p, n);
}

static void
test_pacman (void **state)
{
  kp_cleanup_free char *text = fixture ("pacman-Qi-arch.txt");
  kp_lock_package *p = NULL;
  size_t n = 0;
  kp_error *err = NULL;
  assert_int_equal (kp_pkg_parse_list (kp_pkg_driver_get (KP_PKG_PACMAN), text, &p, &n, &err),
                    0);
  assert_int_equal (n, 2);
  assert_string_equal (p[0].name, "bash");
  assert_string_equal (p[0].version, "5.2.026-2");
  assert_string_equal (p[0].arch, "x86_64");
  assert_string_equal (p[1].name, "filesystem");
  assert_string_equal (p[1].arch, "any");
  kp_pkg_list_free (p, n);
  assert_int_equal (kp_pkg_parse_list (kp_pkg_driver_get (KP_PKG_PACMAN),
                                       "Version : 1\nArchitecture : any\n\n", &p, &n, &err), -1);
  assert_non_null (strstr (err->message, "without a name"));
  kp_error_free (err);
}

static void
test_apk (void **state)
{
  kp_cleanup_free char *text = fixture ("apk-installed-alpine320.txt");
  kp_lock_package *p = NULL;
  size_t n = 0;
  kp_error *err = NULL;
  assert_int_equal (kp_pkg_parse_list (kp_pkg_driver_get (KP_PKG_APK), text, &p, &n, &err), 0);
  assert_int_equal (n, 2); /* the last entry has no blank line after it */
  assert_string_equal (p[0].name, "busybox");
  assert_string_equal (p[0].version, "1.36.1-r29");
  assert_string_equal (p[1].name, "musl");
  assert_string_equal (p[1].arch, "x86_64");
  kp_pkg_list_free (p, n);
  assert_int_equal (kp_pkg_parse_list (kp_pkg_driver_get (KP_PKG_APK), "P:x\nbroken\n", &p, &n,
                                       &err), -1);
  assert_non_null (strstr (err->message, "line 2 of apk's package list"));
  kp_error_free (err);
}

static void
test_install_commands (void **state)
{
  char *pkgs[] = { (char *) "git", (char *) "curl", NULL };
  static const struct
  {
    kp_pkg_manager id;
    bool refresh;
    const char *want;
  } cases[] = {
    { KP_PKG_APT, true, "apt-get update && apt-get install -y --no-install-recommends "
                        "-o Dpkg::Options::=--force-unsafe-io git curl" },
    { KP_PKG_DNF, true, "dnf install -y --setopt=install_weak_deps=False "
                        "--setopt=tsflags=nodocs git curl" },
    { KP_PKG_ZYPPER, false, "zypper --non-interactive install --no-recommends git curl" },
    { KP_PKG_PACMAN, true, "pacman -Sy --noconfirm --needed git curl" },
    { KP_PKG_PACMAN, false, "pacman -S --noconfirm --needed git curl" },
    { KP_PKG_APK, true, "apk update && apk add git curl" },
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    {
      kp_cleanup_free char *cmd = kp_pkg_install_command (kp_pkg_driver_get (cases[i].id), pkgs,
                                                          cases[i].refresh);
      assert_string_equal (cmd, cases[i].want);
    }
}

static void
make_file (const char *root, const char *rel)
{
  kp_cleanup_free char *path = xasprintf ("%s/%s", root, rel);
  kp_cleanup_free char *dir = kp_path_dirname (path);
  kp_cleanup_free char *cmd = xasprintf ("mkdir -p '%s' && touch '%s'", dir, path);
  assert_int_equal (system (cmd), 0);
}

static void
test_detect (void **state)
{
  char tmpl[] = "/tmp/test-pkgdriver-XXXXXX";
  assert_non_null (mkdtemp (tmpl));
  assert_null (kp_pkg_detect (tmpl));
  make_file (tmpl, "usr/sbin/apk"); /* apk lives in /sbin, here behind merged /usr */
  assert_int_equal (kp_pkg_detect (tmpl)->id, KP_PKG_APK);
  make_file (tmpl, "usr/bin/pacman");
  assert_int_equal (kp_pkg_detect (tmpl)->id, KP_PKG_PACMAN);
  make_file (tmpl, "usr/bin/dnf5");
  assert_int_equal (kp_pkg_detect (tmpl)->id, KP_PKG_DNF);
  make_file (tmpl, "usr/bin/apt-get");
  assert_int_equal (kp_pkg_detect (tmpl)->id, KP_PKG_APT);
  kp_cleanup_free char *cmd = xasprintf ("rm -rf '%s'", tmpl);
  assert_int_equal (system (cmd), 0);
  assert_null (kp_pkg_detect ("/nonexistent"));
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_dpkg),          cmocka_unit_test (test_rpm),
    cmocka_unit_test (test_pacman),        cmocka_unit_test (test_apk),
    cmocka_unit_test (test_install_commands), cmocka_unit_test (test_detect),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
