/* Unit tests for karapace.lock: round trip through text, integrity and intent checks,
 * strict reading. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "schema/identity.h"
#include "schema/lock.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char manifest_text[] = "manifest_version = 1\n"
                                    "[base]\n"
                                    "image = \"docker://registry.example/dev:1\"\n"
                                    "[system]\n"
                                    "packages = [\"gcc\", \"make\"]\n"
                                    "[mounts]\n"
                                    "src = \"~/src:/src:ro\"\n"
                                    "[env]\n"
                                    "set = { \"QUOTE\" = \"a \\\"b\\\"\\n\\u00e9\" }\n";

static const kp_lock_base base = { "docker://registry.example/dev@sha256:" "ab", "sha256:ab", "cd" };
static const kp_lock_package packages[] = {
  { "make", "4.3-4.1", "amd64", "" },
  { "gcc", "4:12.2.0-3", "amd64", "1111111111111111111111111111111111111111111111111111111111111111" },
  { "libc6", "2.36-9+deb12u14", "amd64", "" },
};

static kp_manifest *
load (const char *text)
{
  kp_error *err = NULL;
  kp_manifest *m = kp_manifest_load_text (text, strlen (text), "/p/karapace.toml", &err);
  if (m == NULL)
    fail_msg ("%s", err->message);
  return m;
}

static void
test_round_trip (void **state)
{
  kp_cleanup_manifest kp_manifest *m = load (manifest_text);
  kp_error *err = NULL;
  kp_cleanup_lock kp_lock *lock = kp_lock_new (m, &base, packages, 3, &err);
  assert_non_null (lock);
  kp_cleanup_free char *text = kp_lock_to_toml (lock);
  kp_cleanup_lock kp_lock *again = kp_lock_load_text (text, strlen (text), "karapace.lock", &err);
  if (again == NULL)
    fail_msg ("%s\n%s", err->message, text);
  assert_string_equal (again->env_id, lock->env_id);
  assert_int_equal (kp_lock_check_integrity (again, "karapace.lock", &err), 0);
  kp_cleanup_free char *text2 = kp_lock_to_toml (again);
  assert_string_equal (text, text2);
  /* Sorted by name in the file. */
  assert_string_equal (again->packages[0].name, "gcc");
  assert_string_equal (again->packages[2].name, "make");
  /* Strings with quotes, escapes and UTF-8 survive. */
  const kp_setting *set = kp_manifest_setting (again->settings, KP_OPT_ENV_SET);
  assert_int_equal (set->map_len, 1);
  assert_string_equal (set->map[0].value, "a \"b\"\n\xC3\xA9");
  /* And the saved file reads back the same. */
  char dir[] = "/tmp/kp-lock-XXXXXX";
  assert_non_null (mkdtemp (dir));
  kp_cleanup_free char *path = xasprintf ("%s/karapace.lock", dir);
  assert_int_equal (kp_lock_save (lock, path, &err), 0);
  kp_cleanup_lock kp_lock *loaded = kp_lock_load (path, &err);
  assert_non_null (loaded);
  assert_string_equal (loaded->env_id, lock->env_id);
  unlink (path);
  rmdir (dir);
}

static void
test_integrity (void **state)
{
  kp_cleanup_manifest kp_manifest *m = load (manifest_text);
  kp_error *err = NULL;
  kp_cleanup_lock kp_lock *lock = kp_lock_new (m, &base, packages, 3, &err);
  kp_cleanup_free char *text = kp_lock_to_toml (lock);
  static const char *const edits[][2] = {
    { "4.3-4.1", "4.3-4.2" },
    { "\"cd\"", "\"ce\"" },
    { "\"~/src:/src:ro\"", "\"~/src:/src\"" },
    { "packages = [\"gcc\", \"make\"]", "packages = [\"gcc\"]" },
  };
  for (size_t i = 0; i < KP_N_ELEMENTS (edits); i++)
    {
      char *hit = strstr (text, edits[i][0]);
      assert_non_null (hit);
      kp_cleanup_free char *edited
          = xasprintf ("%.*s%s%s", (int) (hit - text), text, edits[i][1], hit + strlen (edits[i][0]));
      kp_cleanup_lock kp_lock *bad = kp_lock_load_text (edited, strlen (edited), "l", &err);
      assert_non_null (bad);
      assert_int_equal (kp_lock_check_integrity (bad, "l", &err), -1);
      assert_non_null (strstr (err->message, "does not match the lock's content"));
      assert_int_equal (err->status, KP_EXIT_MANIFEST);
      kp_error_free (err);
      err = NULL;
    }
}

static void
test_intent_diff (void **state)
{
  kp_cleanup_manifest kp_manifest *m = load (manifest_text);
  kp_error *err = NULL;
  kp_cleanup_lock kp_lock *lock = kp_lock_new (m, &base, packages, 3, &err);
  kp_cleanup_strv char **none = kp_lock_diff_manifest (lock, m);
  assert_null (none[0]);

  kp_cleanup_manifest kp_manifest *changed = load (
      "manifest_version = 1\n[base]\nimage = \"docker://registry.example/dev:2\"\n"
      "[system]\npackages = [\"make\", \"gdb\"]\n[hardware]\ngpu = true\n"
      "[mounts]\nsrc = \"~/src:/src:ro\"\n[env]\nset = { \"QUOTE\" = \"a \\\"b\\\"\\n\\u00e9\" }\n");
  kp_cleanup_strv char **diff = kp_lock_diff_manifest (lock, changed);
  assert_int_equal (kp_strv_length (diff), 3);
  assert_string_equal (diff[0], "base.image: locked \"docker://registry.example/dev:1\", manifest "
                                "says \"docker://registry.example/dev:2\"");
  assert_string_equal (diff[1], "system.packages: manifest adds \"gdb\"; removes \"gcc\"");
  assert_string_equal (diff[2], "hardware.gpu: locked false, manifest says true");
}

static void
test_strict_reading (void **state)
{
  static const char *const bad[][2] = {
    { "lock_version = 1\nenv_id = \"x\"\n[settings]\n", "env_id must be 64" },
    { "lock_version = 2\n", "lock_version 2 is not supported" },
    { "lock_version = 1\n", "the lock has no env_id" },
    { "lock_version = 1\nextra = 1\n", "unknown key \"extra\"" },
    { "lock_version = 1\nenv_id = \"" "0000000000000000000000000000000000000000000000000000000000000000"
      "\"\n[[package]]\nname = \"a\"\n[settings]\n", "has no version" },
    { "lock_version = 1\nenv_id = \"" "0000000000000000000000000000000000000000000000000000000000000000"
      "\"\n[[package]]\nname = \"a\"\nversion = \"1\"\narch = \"x\"\nsha256 = \"zz\"\n[settings]\n",
      "sha256 must be 64" },
    { "lock_version = 1\nenv_id = \"" "0000000000000000000000000000000000000000000000000000000000000000"
      "\"\n[settings]\nname = \"n\"\n", "does not belong in a lock's settings" },
    { "lock_version = 1\nenv_id = \"" "0000000000000000000000000000000000000000000000000000000000000000"
      "\"\n[settings.hardware]\ngpu = 1\n", "must be a boolean" },
  };
  for (size_t i = 0; i < KP_N_ELEMENTS (bad); i++)
    {
      kp_error *err = NULL;
      kp_lock *lock = kp_lock_load_text (bad[i][0], strlen (bad[i][0]), "karapace.lock", &err);
      assert_null (lock);
      if (strstr (err->message, bad[i][1]) == NULL)
        fail_msg ("case %zu: \"%s\" lacks \"%s\"", i, err->message, bad[i][1]);
      assert_string_equal (err->file, "karapace.lock");
      kp_error_free (err);
    }
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_round_trip),
    cmocka_unit_test (test_integrity),
    cmocka_unit_test (test_intent_diff),
    cmocka_unit_test (test_strict_reading),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
