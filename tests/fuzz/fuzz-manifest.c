/* Fuzz target for the manifest loader, the policy checks and the lock.
 *
 * Beyond "does not crash", it checks two properties on every accepted input: the normal
 * form printed as TOML loads again to the same normal form, and a lock made from the
 * manifest survives a round trip through its text with an intact env_id. */
#include "base/json.h"
#include "policy/policy.h"
#include "schema/identity.h"
#include "schema/lock.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  kp_error *err = NULL;
  kp_manifest *m = kp_manifest_load_text ((const char *) data, size, "/fuzz/karapace.toml", &err);
  if (m == NULL)
    {
      if (err == NULL || err->message == NULL || err->status != KP_EXIT_MANIFEST)
        abort (); /* every refusal is a manifest error with a message */
      kp_error_free (err);
      return 0;
    }
  kp_policy *policy = kp_policy_new_default ();
  if (kp_policy_check_manifest (policy, m, &err) < 0)
    {
      kp_error_free (err);
      err = NULL;
    }
  kp_policy_free (policy);

  kp_buf text = KP_BUF_INIT;
  kp_manifest_write_toml (m, NULL, &text);
  kp_manifest *again = kp_manifest_load_text (text.data, text.len, "/fuzz/again.toml", &err);
  if (again == NULL)
    abort (); /* the normal form must load */
  json_t *a = kp_manifest_to_json (m, false);
  json_t *b = kp_manifest_to_json (again, false);
  if (!json_equal (a, b))
    abort (); /* and be a fixed point */
  json_decref (a);
  json_decref (b);
  kp_buf_clear (&text);
  kp_manifest_free (again);

  kp_lock_base base = { "ref", "sha256:00", "11" };
  kp_lock_package pkg = { "pkg", "1.0", "amd64", "" };
  kp_lock *lock = kp_lock_new (m, &base, &pkg, 1, &err);
  if (lock == NULL)
    abort ();
  char *lock_text = kp_lock_to_toml (lock);
  kp_lock *read = kp_lock_load_text (lock_text, strlen (lock_text), "karapace.lock", &err);
  if (read == NULL || kp_lock_check_integrity (read, "karapace.lock", &err) < 0)
    abort ();
  char **diff = kp_lock_diff_manifest (read, m);
  if (diff[0] != NULL)
    abort (); /* a fresh lock matches its manifest */
  kp_strv_free (diff);
  kp_lock_free (read);
  free (lock_text);
  kp_lock_free (lock);
  kp_manifest_free (m);
  return 0;
}
