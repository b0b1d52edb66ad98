/* Unit tests for engine/pkgdriver.c: detection, install commands, and the parsers of what
 * each package manager lists. The dpkg list was captured from a bookworm minbase built by
 * karapace. The rpm and pacman lists were captured from the real tools (dnf 4.14, zypper
 * 1.14.42, rpm 4.18, pacman 6.0.2) after each ran the driver's install command against a
 * local repository of test packages (tests/data/pkg/README.md, sources/capture.sh). The apk
 * database is written by hand in Alpine 3.20's format: apk-tools is not packaged on the
 * machine the captures were made on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "base/buf.h"
#include "base/fs.h"
#include "base/util.h"
#include "engine/pkgdriver.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
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

typedef struct want
{
  const char *name, *version, *arch;
} want;

/* Parse a fixture with a driver and compare the result, in the parser's order, with `w`:
   every field, the archive hash being unknown ("") for these managers. */
static void
expect_list (kp_pkg_manager id, const char *name, const want *w, size_t nw)
{
  kp_cleanup_free char *text = fixture (name);
  kp_lock_package *p = NULL;
  size_t n = 0;
  kp_error *err = NULL;
  if (kp_pkg_parse_list (kp_pkg_driver_get (id), text, &p, &n, &err) < 0)
    fail_msg ("%s: %s", name, err->message);
  assert_int_equal (n, nw);
  for (size_t i = 0; i < n; i++)
    {
      assert_string_equal (p[i].name, w[i].name);
      assert_string_equal (p[i].version, w[i].version);
      assert_string_equal (p[i].arch, w[i].arch);
      assert_string_equal (p[i].sha256, "");
    }
  kp_pkg_list_free (p, n);
}

static void
test_rpm (void **state)
{
  /* gpg-pubkey, architecture (none), is the repository key dnf imported (or the base
     shipped, for zypper), not a package. */
  static const want dnf[] = {
    { "kp-data", "2:2.3-4", "noarch" },
    { "kp-hello", "1.0-1", "x86_64" },
  };
  expect_list (KP_PKG_DNF, "rpm-qa-captured-dnf414-rpm418.txt", dnf, 2);
  kp_cleanup_free char *text = fixture ("rpm-qa-captured-dnf414-rpm418.txt");
  assert_true (kp_str_has_prefix (text, "gpg-pubkey\t") || strstr (text, "\ngpg-pubkey\t"));
  static const want zypper[] = {
    { "kp-data", "2:2.3-4", "noarch" },
    { "kp-eula", "0.9-1", "noarch" },
    { "kp-hello", "1.0-1", "x86_64" },
  };
  expect_list (KP_PKG_ZYPPER, "rpm-qa-captured-zypper1142-rpm418.txt", zypper, 3);
  /* The same query, so either driver reads either list. */
  expect_list (KP_PKG_ZYPPER, "rpm-qa-captured-dnf414-rpm418.txt", dnf, 2);

  kp_lock_package *p = NULL;
  size_t n = 0;
  kp_error *err = NULL;
  assert_int_equal (kp_pkg_parse_list (kp_pkg_driver_get (KP_PKG_DNF), "a\t1-1\tx86_64\textra\n",
                                       &p, &n, &err), -1);
  assert_non_null (strstr (err->message, "line 1 of dnf's package list"));
  kp_error_free (err);
}

static void
test_pacman (void **state)
{
  /* Optional Deps continues on indented lines that hold a colon; with COLUMNS set, pacman
     also wraps long values onto indented lines without one. */
  static const want w[] = {
    { "kp-lib", "1:2.3-4", "any" },
    { "kp-tool", "1.0-1", "x86_64" },
  };
  expect_list (KP_PKG_PACMAN, "pacman-Qi-captured-pacman602.txt", w, 2);
  expect_list (KP_PKG_PACMAN, "pacman-Qi-captured-pacman602-columns50.txt", w, 2);

  kp_lock_package *p = NULL;
  size_t n = 0;
  kp_error *err = NULL;
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
    { KP_PKG_APT, true, "(apt-get update && apt-get install -y --no-install-recommends "
                        "-o Dpkg::Options::=--force-unsafe-io git curl)" },
    { KP_PKG_DNF, true, "dnf install -y --refresh --setopt=install_weak_deps=False "
                        "--setopt=tsflags=nodocs git curl" },
    { KP_PKG_DNF, false, "dnf install -y --setopt=install_weak_deps=False "
                         "--setopt=tsflags=nodocs git curl" },
    { KP_PKG_ZYPPER, true, "(zypper --non-interactive refresh && zypper --non-interactive "
                           "install --no-recommends --auto-agree-with-licenses git curl)" },
    { KP_PKG_ZYPPER, false, "zypper --non-interactive install --no-recommends "
                            "--auto-agree-with-licenses git curl" },
    { KP_PKG_PACMAN, true, "pacman -Sy --noconfirm --needed git curl" },
    { KP_PKG_PACMAN, false, "pacman -S --noconfirm --needed git curl" },
    { KP_PKG_APK, true, "(apk update && apk add git curl)" },
    { KP_PKG_APK, false, "apk add git curl" },
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    {
      kp_cleanup_free char *cmd = kp_pkg_install_command (kp_pkg_driver_get (cases[i].id), pkgs,
                                                          cases[i].refresh);
      assert_string_equal (cmd, cases[i].want);
    }
}

/* What the real tools needed (tests/data/pkg/README.md), option by option. */
static void
test_install_commands_real_tools (void **state)
{
  char *pkgs[] = { (char *) "kp-hello", NULL };
  kp_cleanup_free char *dnf = kp_pkg_install_command (kp_pkg_driver_get (KP_PKG_DNF), pkgs,
                                                      true);
  /* Without -y dnf asks before importing the repository's key and, given no answer, fails
     ("repomd.xml GPG signature verification error: Bad GPG signature"); without --refresh
     it keeps a cache it does not hold as expired ("No match for argument: kp-late"). */
  assert_true (kp_str_has_prefix (dnf, "dnf install -y "));
  assert_non_null (strstr (dnf, " --refresh "));
  assert_non_null (strstr (dnf, " --setopt=install_weak_deps=False "));
  assert_non_null (strstr (dnf, " --setopt=tsflags=nodocs "));

  kp_cleanup_free char *zypper = kp_pkg_install_command (kp_pkg_driver_get (KP_PKG_ZYPPER),
                                                         pkgs, true);
  /* zypper install does not refresh a repository added without autorefresh ("No provider
     of 'kp-late' found"), and --non-interactive answers "no" to a license ("Aborting
     installation due to the need for license confirmation"). */
  assert_true (kp_str_has_prefix (zypper, "(zypper --non-interactive refresh && "));
  const char *install = strstr (zypper, "&& zypper --non-interactive install ");
  assert_non_null (install);
  assert_non_null (strstr (install, " --no-recommends "));
  assert_non_null (strstr (install, " --auto-agree-with-licenses "));

  kp_cleanup_free char *pacman = kp_pkg_install_command (kp_pkg_driver_get (KP_PKG_PACMAN),
                                                         pkgs, true);
  assert_true (kp_str_has_prefix (pacman, "pacman -Sy "));
  assert_non_null (strstr (pacman, " --noconfirm "));

  /* zypper leaves its empty lock file in /run, which would stay in the layer. */
  bool pid = false;
  for (const char *const *p = kp_pkg_driver_get (KP_PKG_ZYPPER)->clean_paths; *p; p++)
    pid = pid || strcmp (*p, "run/zypp.pid") == 0;
  assert_true (pid);
}

/* The build runs "set -e; INSTALL; LIST": a failed refresh must stop it, not leave it to
   list a closure without the packages (zypper rejecting a repository's key did that while
   the refresh was chained with a bare &&). Every tool here fails. */
static void
test_install_commands_stop_set_e (void **state)
{
  char tmpl[] = "/tmp/test-pkgdriver-XXXXXX";
  assert_non_null (mkdtemp (tmpl));
  static const char *const tools[] = { "apt-get", "dnf", "zypper", "pacman", "apk" };
  for (size_t i = 0; i < sizeof tools / sizeof tools[0]; i++)
    {
      kp_cleanup_free char *path = xasprintf ("%s/%s", tmpl, tools[i]);
      kp_error *err = NULL;
      const char *stub = "#!/bin/sh\nexit 4\n";
      if (kp_file_write_atomic (path, stub, strlen (stub), 0755, false, &err) < 0)
        fail_msg ("%s", err->message);
    }
  char *pkgs[] = { (char *) "kp-hello", NULL };
  for (kp_pkg_manager id = 0; id < KP_PKG__COUNT; id++)
    for (int refresh = 0; refresh < 2; refresh++)
      {
        kp_cleanup_free char *cmd = kp_pkg_install_command (kp_pkg_driver_get (id), pkgs,
                                                            refresh);
        kp_cleanup_free char *sh = xasprintf ("PATH='%s':\"$PATH\" sh -c 'set -e; %s; "
                                              "touch %s/listed'", tmpl, cmd, tmpl);
        int status = system (sh);
        assert_true (WIFEXITED (status) && WEXITSTATUS (status) == 4);
        kp_cleanup_free char *listed = xasprintf ("%s/listed", tmpl);
        assert_int_equal (access (listed, F_OK), -1);
      }
  kp_cleanup_free char *rm = xasprintf ("rm -rf '%s'", tmpl);
  assert_int_equal (system (rm), 0);
}

/* The value of NAME='…' or NAME="…" in capture.sh, as the shell reads it (in double quotes
   only \\ matters here). */
static char *
script_value (const char *script, const char *name)
{
  kp_cleanup_free char *key = xasprintf ("\n%s=", name);
  const char *p = strstr (script, key);
  if (p == NULL)
    fail_msg ("capture.sh does not set %s", name);
  p += strlen (key);
  char quote = *p++;
  kp_buf b = KP_BUF_INIT;
  for (; *p && *p != quote; p++)
    {
      if (quote == '"' && p[0] == '\\' && p[1] == '\\')
        p++;
      kp_buf_putc (&b, *p);
    }
  assert_int_equal (*p, quote);
  return kp_buf_steal (&b);
}

/* The fixtures were captured with the driver's own command lines: capture.sh spells them
   out, and they must stay what the driver produces (change one, capture again). */
static void
test_capture_script (void **state)
{
  kp_cleanup_free char *script = fixture ("sources/capture.sh");
  char *hello[] = { (char *) "kp-hello", NULL };
  char *late[] = { (char *) "kp-late", NULL };
  char *hello_eula[] = { (char *) "kp-hello", (char *) "kp-eula", NULL };
  char *tool[] = { (char *) "kp-tool", NULL };
  const struct
  {
    const char *var;
    kp_pkg_manager id;
    char **packages; /* NULL: the list command */
  } cases[] = {
    { "DNF_INSTALL", KP_PKG_DNF, hello },
    { "DNF_INSTALL_LATE", KP_PKG_DNF, late },
    { "ZYPPER_INSTALL", KP_PKG_ZYPPER, hello_eula },
    { "ZYPPER_INSTALL_LATE", KP_PKG_ZYPPER, late },
    { "PACMAN_INSTALL", KP_PKG_PACMAN, tool },
    { "RPM_LIST", KP_PKG_DNF, NULL },
    { "RPM_LIST", KP_PKG_ZYPPER, NULL },
    { "PACMAN_LIST", KP_PKG_PACMAN, NULL },
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    {
      kp_cleanup_free char *value = script_value (script, cases[i].var);
      const kp_pkg_driver *d = kp_pkg_driver_get (cases[i].id);
      kp_cleanup_free char *cmd = cases[i].packages
                                    ? kp_pkg_install_command (d, cases[i].packages, true)
                                    : xstrdup (d->list_command);
      assert_string_equal (value, cmd);
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
    cmocka_unit_test (test_install_commands),
    cmocka_unit_test (test_install_commands_real_tools),
    cmocka_unit_test (test_install_commands_stop_set_e),
    cmocka_unit_test (test_capture_script), cmocka_unit_test (test_detect),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
