/* Unit tests for env_id: a golden value computed outside karapace (the serialisation of
 * docs/identity.md written out by hand and hashed with Debian's b3sum), normalisation
 * invariants, and sensitivity to every identity option. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "hash/blake3.h"
#include "schema/identity.h"

#include <stdlib.h>
#include <string.h>

#define Z64 "0000000000000000000000000000000000000000000000000000000000000000"
#define O64 "1111111111111111111111111111111111111111111111111111111111111111"
#define A64 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

static const char golden_manifest[] = "manifest_version = 1\n"
                                      "name = \"golden\"\n"
                                      "[base]\n"
                                      "image = \"debian/bookworm\"\n"
                                      "[system]\n"
                                      "packages = [\"git\", \"curl\", \"git\"]\n"
                                      "[hardware]\n"
                                      "gpu = true\n"
                                      "[mounts]\n"
                                      "workspace = \"./:/workspace\"\n"
                                      "[runtime]\n"
                                      "network_isolation = true\n"
                                      "[runtime.resource_limits]\n"
                                      "cpu_shares = 1024\n"
                                      "memory_limit_mb = 4096\n"
                                      "[env]\n"
                                      "pass = [\"EDITOR\"]\n"
                                      "set = { LANG = \"C.UTF-8\", EDITOR = \"vim\" }\n";

/* docs/identity.md, applied by hand to the manifest and resolution above. */
static const char golden_serialization[]
    = "karapace-env-id v1\n"
      "base.image \"debian/bookworm\"\n"
      "base.reference \"debian+http://deb.debian.org/debian#bookworm\"\n"
      "base.digest \"sha256:" Z64 "\"\n"
      "base.tree_digest \"" O64 "\"\n"
      "package [\"curl\",\"7.88.1-10+deb12u12\",\"amd64\",\"" A64 "\"]\n"
      "package [\"git\",\"1:2.39.5-0+deb12u2\",\"amd64\",\"\"]\n"
      "system.packages [\"curl\",\"git\"]\n"
      "gui.apps []\n"
      "hardware.gpu true\n"
      "hardware.audio false\n"
      "hardware.nvidia false\n"
      "hardware.devices []\n"
      "mounts {\"workspace\":\".:/workspace\"}\n"
      "runtime.backend \"namespace\"\n"
      "runtime.network \"none\"\n"
      "runtime.resource_limits.cpu_shares 1024\n"
      "runtime.resource_limits.memory_limit_mb 4096\n"
      "runtime.resource_limits.pids_max 0\n"
      "host.home true\n"
      "host.custom_mounts []\n"
      "host.rootfs false\n"
      "host.display true\n"
      "host.sound true\n"
      "host.dbus true\n"
      "host.ssh_agent false\n"
      "env.pass [\"EDITOR\"]\n"
      "env.set {\"EDITOR\":\"vim\",\"LANG\":\"C.UTF-8\"}\n";

/* `printf '%s' "$golden_serialization" | b3sum` */
#define GOLDEN_ENV_ID "371dae9063b5a950e1ba38dfcb3310cae3a28f6688021e0a54d8094cedeec78d"

static const kp_lock_base golden_base = {
  .reference = "debian+http://deb.debian.org/debian#bookworm",
  .digest = "sha256:" Z64,
  .tree_digest = O64,
};
static const kp_lock_package golden_packages[] = {
  { "git", "1:2.39.5-0+deb12u2", "amd64", "" },
  { "curl", "7.88.1-10+deb12u12", "amd64", A64 },
};

static kp_lock *
lock_from_text (const char *manifest)
{
  kp_error *err = NULL;
  kp_cleanup_manifest kp_manifest *m
      = kp_manifest_load_text (manifest, strlen (manifest), "/p/karapace.toml", &err);
  if (m == NULL)
    fail_msg ("%s", err->message);
  kp_lock *lock = kp_lock_new (m, &golden_base, golden_packages, 2, &err);
  if (lock == NULL)
    fail_msg ("%s", err->message);
  return lock;
}

static void
test_golden_env_id (void **state)
{
  kp_cleanup_lock kp_lock *lock = lock_from_text (golden_manifest);
  kp_cleanup_free char *text = kp_identity_serialize (lock);
  assert_string_equal (text, golden_serialization);
  /* Hashing the hand-written text with the library's BLAKE3 and with b3sum agree. */
  uint8_t d[KP_BLAKE3_OUT_LEN];
  char hex[KP_BLAKE3_HEX_LEN + 1];
  kp_blake3_hash (golden_serialization, strlen (golden_serialization), d);
  kp_blake3_to_hex (d, hex);
  assert_string_equal (hex, GOLDEN_ENV_ID);
  assert_string_equal (lock->env_id, GOLDEN_ENV_ID);
  char short_id[KP_SHORT_ID_LEN + 1];
  kp_identity_short_id (lock->env_id, short_id);
  assert_string_equal (short_id, "371dae9063b5");
  assert_true (kp_identity_is_env_id (lock->env_id));
  assert_false (kp_identity_is_env_id ("371DAE"));
}

static char *
replace (const char *text, const char *from, const char *to)
{
  const char *hit = strstr (text, from);
  assert_non_null (hit);
  return xasprintf ("%.*s%s%s", (int) (hit - text), text, to, hit + strlen (from));
}

static void
test_normalisation_keeps_identity (void **state)
{
  /* Package order, duplicates, table order of env.set, spelling of the mount, the original
   * network key versus ours, and the non-identity name: none changes env_id. */
  static const char *const same[][2] = {
    { "[\"git\", \"curl\", \"git\"]", "[\"curl\", \"git\"]" },
    { "[\"git\", \"curl\", \"git\"]", "[\"curl\",\"curl\",\"git\",\"git\"]" },
    { "{ LANG = \"C.UTF-8\", EDITOR = \"vim\" }", "{ EDITOR = \"vim\", LANG = \"C.UTF-8\" }" },
    { "\"./:/workspace\"", "\".//:/workspace/:rw\"" },
    { "network_isolation = true", "network = \"none\"" },
    { "name = \"golden\"", "name = \"other\"" },
    { "cpu_shares = 1024", "cpu_shares = 0x400" },
  };
  for (size_t i = 0; i < KP_N_ELEMENTS (same); i++)
    {
      kp_cleanup_free char *text = replace (golden_manifest, same[i][0], same[i][1]);
      kp_cleanup_lock kp_lock *lock = lock_from_text (text);
      if (strcmp (lock->env_id, GOLDEN_ENV_ID) != 0)
        fail_msg ("replacing %s by %s changed env_id", same[i][0], same[i][1]);
    }
}

static void
test_every_field_changes_identity (void **state)
{
  static const char *const changes[][2] = {
    { "image = \"debian/bookworm\"", "image = \"debian/trixie\"" },
    { "[\"git\", \"curl\", \"git\"]", "[\"git\"]" },
    { "gpu = true", "gpu = false" },
    { "gpu = true", "gpu = true\naudio = true" },
    { "gpu = true", "gpu = true\nnvidia = true" },
    { "gpu = true", "gpu = true\ndevices = [\"/dev/kvm\"]" },
    { "\"./:/workspace\"", "\"./:/workspace:ro\"" },
    { "\"./:/workspace\"", "\"./src:/workspace\"" },
    { "network_isolation = true", "network = \"user\"" },
    { "network_isolation = true", "network_isolation = true\nbackend = \"oci\"" },
    { "cpu_shares = 1024", "cpu_shares = 512" },
    { "memory_limit_mb = 4096", "memory_limit_mb = 4097" },
    { "memory_limit_mb = 4096", "memory_limit_mb = 4096\npids_max = 10" },
    { "[env]", "[host]\nhome = false\n[env]" },
    { "[env]", "[host]\ncustom_mounts = [\"~/src\"]\n[env]" },
    { "[env]", "[host]\nrootfs = true\n[env]" },
    { "[env]", "[host]\ndisplay = false\n[env]" },
    { "[env]", "[host]\nsound = false\n[env]" },
    { "[env]", "[host]\ndbus = false\n[env]" },
    { "[env]", "[host]\nssh_agent = true\n[env]" },
    { "pass = [\"EDITOR\"]", "pass = [\"EDITOR\", \"PAGER\"]" },
    { "EDITOR = \"vim\"", "EDITOR = \"nano\"" },
    { "[system]", "[gui]\napps = [\"kate\"]\n[system]" },
  };
  kp_cleanup_strv char **seen = xcalloc (KP_N_ELEMENTS (changes) + 2, sizeof (char *));
  seen[0] = xstrdup (GOLDEN_ENV_ID);
  for (size_t i = 0; i < KP_N_ELEMENTS (changes); i++)
    {
      kp_cleanup_free char *text = replace (golden_manifest, changes[i][0], changes[i][1]);
      kp_cleanup_lock kp_lock *lock = lock_from_text (text);
      if (kp_strv_contains (seen, lock->env_id))
        fail_msg ("replacing %s by %s did not give a new env_id", changes[i][0], changes[i][1]);
      seen[i + 1] = xstrdup (lock->env_id);
    }
  /* Every identity option is covered by a change above. */
  size_t identity_options = 0;
  for (size_t i = 0; i < KP_OPT__COUNT; i++)
    if (kp_option_get ((kp_option_id) i)->flags & KP_OPTF_IDENTITY)
      identity_options++;
  assert_int_equal (identity_options, 22);
}

static void
test_resolution_changes_identity (void **state)
{
  kp_error *err = NULL;
  kp_cleanup_manifest kp_manifest *m
      = kp_manifest_load_text (golden_manifest, strlen (golden_manifest), "/p/k.toml", &err);
  kp_lock_package pkgs[2];
  memcpy (pkgs, golden_packages, sizeof pkgs);
  pkgs[0].version = "1:2.39.5-0+deb12u3";
  kp_cleanup_lock kp_lock *a = kp_lock_new (m, &golden_base, pkgs, 2, &err);
  assert_string_not_equal (a->env_id, GOLDEN_ENV_ID);
  kp_lock_base base = golden_base;
  base.tree_digest = Z64;
  kp_cleanup_lock kp_lock *b = kp_lock_new (m, &base, golden_packages, 2, &err);
  assert_string_not_equal (b->env_id, GOLDEN_ENV_ID);
  /* Package order in the resolution does not matter. */
  kp_lock_package reversed[2] = { golden_packages[1], golden_packages[0] };
  kp_cleanup_lock kp_lock *c = kp_lock_new (m, &golden_base, reversed, 2, &err);
  assert_string_equal (c->env_id, GOLDEN_ENV_ID);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_golden_env_id),
    cmocka_unit_test (test_normalisation_keeps_identity),
    cmocka_unit_test (test_every_field_changes_identity),
    cmocka_unit_test (test_resolution_changes_identity),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
