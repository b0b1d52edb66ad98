/* identity.c — canonical serialisation of a lock and env_id. See identity.h. */
#include "identity.h"

#include "base/buf.h"
#include "base/json.h"
#include "hash/blake3.h"

#include <stdlib.h>
#include <string.h>

static void
put_line (kp_buf *out, const char *key, json_t *value)
{
  kp_cleanup_free char *text = kp_json_canonical (value);
  kp_buf_printf (out, "%s %s\n", key, text);
  json_decref (value);
}

char *
kp_identity_serialize (const kp_lock *lock)
{
  kp_cleanup_buf kp_buf out = KP_BUF_INIT;
  kp_buf_puts (&out, KP_IDENTITY_HEADER "\n");
  for (size_t i = 0; i < KP_OPT__COUNT; i++)
    {
      const kp_option *opt = kp_option_get ((kp_option_id) i);
      if (!(opt->flags & KP_OPTF_IDENTITY))
        continue;
      put_line (&out, opt->key, kp_setting_to_json (opt, kp_manifest_setting (lock->settings, opt->id)));
      if (opt->id != KP_OPT_BASE_IMAGE)
        continue;
      /* What the image resolved to, and the closure, come right after the image. */
      put_line (&out, "base.reference", json_string (lock->base.reference));
      put_line (&out, "base.digest", json_string (lock->base.digest));
      put_line (&out, "base.tree_digest", json_string (lock->base.tree_digest));
      for (size_t p = 0; p < lock->n_packages; p++)
        {
          const kp_lock_package *pkg = &lock->packages[p];
          put_line (&out, "package",
                    json_pack ("[ssss]", pkg->name, pkg->version, pkg->arch, pkg->sha256));
        }
    }
  return kp_buf_steal (&out);
}

void
kp_identity_env_id (const kp_lock *lock, char out[KP_ENV_ID_LEN + 1])
{
  kp_cleanup_free char *text = kp_identity_serialize (lock);
  uint8_t digest[KP_BLAKE3_OUT_LEN];
  kp_blake3_hash (text, strlen (text), digest);
  kp_blake3_to_hex (digest, out);
}

void
kp_identity_short_id (const char *env_id, char out[KP_SHORT_ID_LEN + 1])
{
  memcpy (out, env_id, KP_SHORT_ID_LEN);
  out[KP_SHORT_ID_LEN] = '\0';
}

bool
kp_identity_is_env_id (const char *s)
{
  for (size_t i = 0; i < KP_ENV_ID_LEN; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
      return false;
  return s[KP_ENV_ID_LEN] == '\0';
}
