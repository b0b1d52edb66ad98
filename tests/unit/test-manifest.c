/* Unit tests for the manifest loader, its normal form, the option schema and the policy. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "policy/policy.h"
#include "schema/manifest.h"
#include "schema/templates.h"

#include <stdlib.h>
#include <string.h>

static kp_manifest *
load_ok (const char *text)
{
  kp_error *err = NULL;
  kp_manifest *m = kp_manifest_load_text (text, strlen (text), "/proj/karapace.toml", &err);
  if (m == NULL)
    fail_msg ("%s", err->message);
  return m;
}

static kp_error *
load_err (const char *text)
{
  kp_error *err = NULL;
  kp_manifest *m = kp_manifest_load_text (text, strlen (text), "/proj/karapace.toml", &err);
  if (m)
    fail_msg ("accepted: %s", text);
  return err;
}

static void
test_defaults (void **state)
{
  kp_cleanup_manifest kp_manifest *m = load_ok ("manifest_version = 1\n[base]\nimage = \"x\"\n");
  assert_string_equal (kp_manifest_string (m, KP_OPT_BASE_IMAGE), "x");
  assert_string_equal (kp_manifest_string (m, KP_OPT_RUNTIME_BACKEND), "namespace");
  assert_string_equal (kp_manifest_string (m, KP_OPT_RUNTIME_NETWORK), "host");
  assert_true (kp_manifest_bool (m, KP_OPT_HOST_HOME));
  assert_false (kp_manifest_bool (m, KP_OPT_HARDWARE_GPU));
  assert_int_equal (kp_manifest_int (m, KP_OPT_LIMITS_MEMORY_LIMIT_MB), 0);
  assert_false (kp_manifest_setting (m, KP_OPT_HARDWARE_GPU)->present);
  assert_string_equal (m->dir, "/proj");
}

static void
test_schema_table (void **state)
{
  for (size_t i = 0; i < KP_OPT__COUNT; i++)
    {
      const kp_option *o = kp_option_get ((kp_option_id) i);
      assert_int_equal (o->id, i); /* the table is indexed by id */
      assert_ptr_equal (kp_option_find (o->key), o);
      assert_non_null (o->help);
      assert_non_null (o->example);
      if (o->type == KP_OPT_ENUM)
        assert_non_null (o->choices);
      /* Every example is a valid value for its option. */
      const char *dot = strrchr (o->key, '.');
      kp_cleanup_free char *text = NULL;
      if (o->id == KP_OPT_MANIFEST_VERSION || o->id == KP_OPT_BASE_IMAGE)
        continue;
      if (o->id == KP_OPT_HARDWARE_NVIDIA)
        text = xstrdup ("manifest_version = 1\n[base]\nimage = \"x\"\n[hardware]\ngpu = true\nnvidia = true\n");
      else if (o->type == KP_OPT_STRING_MAP)
        text = xasprintf ("manifest_version = 1\n[base]\nimage = \"x\"\n[%s]\n%.*s\n", o->key,
                          (int) strlen (o->example) - 4, o->example + 2);
      else if (dot)
        text = xasprintf ("manifest_version = 1\n[base]\nimage = \"x\"\n[%.*s]\n%s = %s\n",
                          (int) (dot - o->key), o->key, dot + 1, o->example);
      else
        text = xasprintf ("manifest_version = 1\n%s = %s\n[base]\nimage = \"x\"\n", o->key,
                          o->example);
      kp_cleanup_manifest kp_manifest *m = load_ok (text);
      assert_true (kp_manifest_setting (m, o->id)->present);
    }
  assert_true (kp_option_is_table ("runtime.resource_limits"));
  assert_false (kp_option_is_table ("runtime.limits"));
  kp_cleanup_free char *s1 = kp_option_suggest ("hardware", "gpuu");
  assert_string_equal (s1, "gpu");
  kp_cleanup_free char *s2 = kp_option_suggest ("", "hardwre");
  assert_string_equal (s2, "hardware");
  kp_cleanup_free char *s3 = kp_option_suggest ("hardware", "zzzzzz");
  assert_null (s3);
  kp_cleanup_free char *names = kp_option_list_names ("runtime");
  assert_string_equal (names, "backend, network_isolation, network, resource_limits");
}

static void
test_normal_form (void **state)
{
  kp_cleanup_manifest kp_manifest *m = load_ok (
      "manifest_version = 1\n[base]\nimage = \"x\"\n"
      "[system]\npackages = [\"b\", \"a\", \"b\", \"c=1.0\"]\n"
      "[hardware]\ndevices = [\"/dev/./kvm\", \"/dev/kvm\"]\n"
      "[mounts]\nz = \"~:/home/me\"\na = \"src/../lib/:/lib2/:ro\"\n"
      "[host]\ncustom_mounts = [\"~/x/\", \"/tmp//y\"]\n");
  const kp_setting *p = kp_manifest_setting (m, KP_OPT_SYSTEM_PACKAGES);
  assert_int_equal (p->list_len, 3);
  assert_string_equal (p->list[0].value, "a");
  assert_string_equal (p->list[1].value, "b");
  assert_string_equal (p->list[2].value, "c=1.0");
  assert_int_equal (p->list[1].pos.column, 13); /* the first "b" keeps its position */
  const kp_setting *d = kp_manifest_setting (m, KP_OPT_HARDWARE_DEVICES);
  assert_int_equal (d->list_len, 1);
  assert_string_equal (d->list[0].value, "/dev/kvm");
  const kp_setting *mounts = kp_manifest_setting (m, KP_OPT_MOUNTS);
  assert_string_equal (mounts->map[0].key, "a");
  assert_string_equal (mounts->map[0].value, "./lib:/lib2:ro");
  assert_string_equal (mounts->map[1].value, "~:/home/me");
  const kp_setting *c = kp_manifest_setting (m, KP_OPT_HOST_CUSTOM_MOUNTS);
  assert_string_equal (c->list[0].value, "/tmp/y");
  assert_string_equal (c->list[1].value, "~/x");
}

static void
test_names (void **state)
{
  static const char *const good_packages[] = { "git", "g++", "libc6:amd64", "python3.11",
                                               "@development-tools", "git=1:2.39.5-0+deb12u2",
                                               "perl-Text-CSV", NULL };
  static const char *const bad_packages[] = { "", "-rf", "a b", "a;b", "a=", "a==1", "$(x)",
                                              "a\nb", "a=1 2", "'a'", NULL };
  for (size_t i = 0; good_packages[i]; i++)
    assert_true (kp_package_name_valid (good_packages[i]));
  for (size_t i = 0; bad_packages[i]; i++)
    assert_false (kp_package_name_valid (bad_packages[i]));
  assert_true (kp_environment_name_valid ("a"));
  assert_true (kp_environment_name_valid ("my-env_2"));
  assert_false (kp_environment_name_valid (""));
  assert_false (kp_environment_name_valid ("a.b"));
  char long_name[66];
  memset (long_name, 'a', 65);
  long_name[65] = '\0';
  assert_false (kp_environment_name_valid (long_name));
  long_name[64] = '\0';
  assert_true (kp_environment_name_valid (long_name));
  assert_true (kp_env_name_valid ("_X1"));
  assert_false (kp_env_name_valid ("1X"));
  assert_false (kp_env_name_valid ("A-B"));
}

static void
test_errors_have_positions (void **state)
{
  kp_error *err = load_err ("manifest_version = 1\n[base]\nimage = \"x\"\n[system]\n"
                            "packages = [\"ok\",\n  \"not ok\"]\n");
  assert_int_equal (err->line, 6);
  assert_int_equal (err->column, 3);
  assert_string_equal (err->file, "/proj/karapace.toml");
  assert_int_equal (err->status, KP_EXIT_MANIFEST);
  kp_error_free (err);
  err = load_err ("manifest_version = 1\n[base]\nimage = \"x\"\n\"hardware.gpu\" = true\n");
  assert_non_null (strstr (err->message, "unknown key \"hardware.gpu\""));
  kp_error_free (err);
}

static void
test_templates_are_valid (void **state)
{
  kp_cleanup_policy kp_policy *policy = kp_policy_new_default ();
  size_t n = 0;
  for (const kp_template *t = kp_templates (); t->name; t++, n++)
    {
      kp_cleanup_free char *text = kp_template_render (t, "demo");
      kp_cleanup_manifest kp_manifest *m = load_ok (text);
      kp_error *err = NULL;
      if (kp_policy_check_manifest (policy, m, &err) < 0)
        fail_msg ("template %s: %s", t->name, err->message);
      assert_string_equal (kp_manifest_string (m, KP_OPT_NAME), "demo");
    }
  assert_int_equal (n, 6);
}

static void
test_policy (void **state)
{
  kp_cleanup_policy kp_policy *p = kp_policy_new_default ();
  assert_true (kp_policy_env_denied (p, "SSH_AUTH_SOCK", false));
  assert_false (kp_policy_env_denied (p, "SSH_AUTH_SOCK", true));
  assert_false (kp_policy_env_denied (p, "EDITOR", false));
  assert_true (kp_policy_device_allowed (p, "/dev/dri/card0"));
  assert_true (kp_policy_device_allowed (p, "/dev/video0"));
  assert_false (kp_policy_device_allowed (p, "/dev/mem"));
  assert_false (kp_policy_device_allowed (p, "/dev/sda"));
  kp_cleanup_manifest kp_manifest *m = load_ok ("manifest_version = 1\n[base]\nimage = \"x\"\n");
  assert_true (kp_policy_mount_allowed (p, m, "/proj/sub"));
  assert_true (kp_policy_mount_allowed (p, m, "/tmp/x"));
  assert_false (kp_policy_mount_allowed (p, m, "/etc"));
  assert_false (kp_policy_mount_allowed (p, m, "/projx"));
  kp_cleanup_free char *r1 = kp_policy_resolve_host_path (m, "../../../etc");
  assert_string_equal (r1, "/etc");
  kp_cleanup_free char *r2 = kp_policy_resolve_host_path (m, "./a/../b");
  assert_string_equal (r2, "/proj/b");
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_defaults),        cmocka_unit_test (test_schema_table),
    cmocka_unit_test (test_normal_form),     cmocka_unit_test (test_names),
    cmocka_unit_test (test_errors_have_positions), cmocka_unit_test (test_templates_are_valid),
    cmocka_unit_test (test_policy),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
