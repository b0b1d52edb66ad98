/* image-config.c — the image part of config.toml, read strictly. */
#include "image/image-config.h"

#include "base/fs.h"
#include "schema/toml.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void
kp_image_config_clear (kp_image_config *c)
{
  free (c->path);
  kp_image_aliases_free (c->aliases);
  free (c->lxc_server);
  free (c->debian_mirror);
  free (c->ubuntu_mirror);
  free (c->keyring_dir);
  for (size_t i = 0; i < c->n_registries; i++)
    {
      free (c->registries[i].host);
      kp_strv_free (c->registries[i].mirrors);
    }
  free (c->registries);
  memset (c, 0, sizeof *c);
}

const kp_registry_config *
kp_image_config_registry (const kp_image_config *c, const char *host)
{
  for (size_t i = 0; c && i < c->n_registries; i++)
    if (strcmp (c->registries[i].host, host) == 0)
      return &c->registries[i];
  return NULL;
}

typedef struct reader
{
  const char *path;
  kp_image_config *c;
} reader;

static int
unknown_key (reader *r, const kp_toml_keyval *kv, const char *where,
             const char *const *known, kp_error **err)
{
  kp_error_at (err, r->path, kv->key_pos.line, kv->key_pos.column, "unknown key \"%s\" in %s",
               kv->key, where);
  const char *best = NULL;
  size_t best_d = 3;
  for (const char *const *k = known; *k; k++)
    {
      size_t d = kp_levenshtein (kv->key, *k);
      if (d < best_d)
        best_d = d, best = *k;
    }
  if (best)
    kp_error_hint (err, "did you mean \"%s\"?", best);
  else
    {
      kp_buf b = KP_BUF_INIT;
      for (const char *const *k = known; *k; k++)
        kp_buf_printf (&b, "%s%s", b.len ? ", " : "", *k);
      kp_error_hint (err, "known keys: %s (docs/config.md)", b.data ? b.data : "none");
      kp_buf_clear (&b);
    }
  return -1;
}

static int
want_type (reader *r, const kp_toml_keyval *kv, kp_toml_type type, const char *what,
           kp_error **err)
{
  if (kv->value->type == type)
    return 0;
  return kp_error_at (err, r->path, kv->value->pos.line, kv->value->pos.column,
                      "%s must be %s, not %s", kv->key, what,
                      kp_toml_type_name (kv->value->type));
}

static int
read_string (reader *r, const kp_toml_keyval *kv, char **out, kp_error **err)
{
  if (want_type (r, kv, KP_TOML_STRING, "a string", err) < 0)
    return -1;
  if (strlen (kv->value->u.string.ptr) != kv->value->u.string.len
      || kv->value->u.string.len == 0)
    return kp_error_at (err, r->path, kv->value->pos.line, kv->value->pos.column,
                        "%s must be a non-empty string without NUL", kv->key);
  free (*out);
  *out = xstrdup (kv->value->u.string.ptr);
  return 0;
}

/* host[:port]: lowercase letters, digits, '.', '-', and a port; or [v6]:port. */
static bool
valid_host (const char *s)
{
  if (*s == '\0' || strlen (s) > 255)
    return false;
  if (*s == '[')
    return strchr (s, ']') != NULL;
  const char *colon = strchr (s, ':');
  size_t n = colon ? (size_t) (colon - s) : strlen (s);
  if (n == 0)
    return false;
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '.'
          || s[i] == '-'))
      return false;
  if (colon)
    {
      char *end;
      long port = strtol (colon + 1, &end, 10);
      if (*end || port < 1 || port > 65535 || colon[1] == '\0')
        return false;
    }
  return true;
}

static int
read_images (reader *r, const kp_toml_value *t, kp_error **err)
{
  static const char *const known[] = { "lxc_server", "aliases", NULL };
  for (size_t i = 0; i < t->u.table.len; i++)
    {
      const kp_toml_keyval *kv = &t->u.table.items[i];
      if (strcmp (kv->key, "lxc_server") == 0)
        {
          if (read_string (r, kv, &r->c->lxc_server, err) < 0)
            return -1;
          const char *v = r->c->lxc_server;
          const char *host = kp_str_has_prefix (v, "https://") ? v + 8
                             : kp_str_has_prefix (v, "http://") ? v + 7 : v;
          kp_cleanup_free char *h = xstrndup (host, strcspn (host, "/"));
          if (!valid_host (h))
            return kp_error_at (err, r->path, kv->value->pos.line, kv->value->pos.column,
                                "lxc_server must be HOST[:PORT] or an http(s):// URL, not "
                                "'%s'", v);
        }
      else if (strcmp (kv->key, "aliases") == 0)
        {
          if (want_type (r, kv, KP_TOML_TABLE, "a table of name = \"reference\"", err) < 0)
            return -1;
          const kp_toml_value *a = kv->value;
          for (size_t j = 0; j < a->u.table.len; j++)
            {
              const kp_toml_keyval *al = &a->u.table.items[j];
              if (want_type (r, al, KP_TOML_STRING, "a string (an image reference)", err) < 0)
                return -1;
              if (kp_image_aliases_set (r->c->aliases, al->key, al->value->u.string.ptr, err)
                  < 0)
                {
                  kp_cleanup_free char *msg = xstrdup ((*err)->message);
                  kp_error_free (kp_steal_pointer (err));
                  return kp_error_at (err, r->path, al->value->pos.line, al->value->pos.column,
                                      "%s", msg);
                }
            }
        }
      else
        return unknown_key (r, kv, "[images]", known, err);
    }
  return 0;
}

static int
read_registry (reader *r, const kp_toml_keyval *entry, kp_error **err)
{
  if (!valid_host (entry->key))
    return kp_error_at (err, r->path, entry->key_pos.line, entry->key_pos.column,
                        "\"%s\" is not a registry host (HOST[:PORT], lowercase)", entry->key);
  if (want_type (r, entry, KP_TOML_TABLE, "a table", err) < 0)
    return -1;
  kp_image_config *c = r->c;
  c->registries = xreallocarray (c->registries, c->n_registries + 1,
                                 sizeof (kp_registry_config));
  kp_registry_config *rc = &c->registries[c->n_registries++];
  memset (rc, 0, sizeof *rc);
  rc->host = xstrdup (entry->key);
  static const char *const known[] = { "insecure", "mirrors", NULL };
  const kp_toml_value *t = entry->value;
  for (size_t i = 0; i < t->u.table.len; i++)
    {
      const kp_toml_keyval *kv = &t->u.table.items[i];
      if (strcmp (kv->key, "insecure") == 0)
        {
          if (want_type (r, kv, KP_TOML_BOOL, "true or false", err) < 0)
            return -1;
          rc->insecure = kv->value->u.boolean;
        }
      else if (strcmp (kv->key, "mirrors") == 0)
        {
          if (want_type (r, kv, KP_TOML_ARRAY, "an array of hosts", err) < 0)
            return -1;
          size_t n = kv->value->u.array.len;
          kp_strv_free (rc->mirrors);
          rc->mirrors = xcalloc (n + 1, sizeof (char *));
          for (size_t j = 0; j < n; j++)
            {
              const kp_toml_value *m = kv->value->u.array.items[j];
              kp_cleanup_free char *host = m->type == KP_TOML_STRING
                                               ? xstrndup (m->u.string.ptr,
                                                           strcspn (m->u.string.ptr, "/"))
                                               : NULL;
              if (host == NULL || !valid_host (host))
                return kp_error_at (err, r->path, m->pos.line, m->pos.column,
                                    "a mirror is a string HOST[:PORT][/PATH]");
              rc->mirrors[j] = xstrdup (m->u.string.ptr);
            }
        }
      else
        {
          kp_cleanup_free char *where = xasprintf ("[registries.\"%s\"]", entry->key);
          return unknown_key (r, kv, where, known, err);
        }
    }
  return 0;
}

static int
read_mirrors (reader *r, const kp_toml_value *t, kp_error **err)
{
  static const char *const known[] = { "debian", "ubuntu", "keyring_dir", NULL };
  for (size_t i = 0; i < t->u.table.len; i++)
    {
      const kp_toml_keyval *kv = &t->u.table.items[i];
      char **slot = strcmp (kv->key, "debian") == 0        ? &r->c->debian_mirror
                    : strcmp (kv->key, "ubuntu") == 0      ? &r->c->ubuntu_mirror
                    : strcmp (kv->key, "keyring_dir") == 0 ? &r->c->keyring_dir
                                                           : NULL;
      if (slot == NULL)
        return unknown_key (r, kv, "[mirrors]", known, err);
      if (read_string (r, kv, slot, err) < 0)
        return -1;
      bool url = kp_str_has_prefix (*slot, "http://") || kp_str_has_prefix (*slot, "https://");
      if (slot == &r->c->keyring_dir ? (*slot)[0] != '/' : !url)
        return kp_error_at (err, r->path, kv->value->pos.line, kv->value->pos.column,
                            slot == &r->c->keyring_dir ? "keyring_dir must be an absolute path"
                                                       : "%s must be an http(s):// URL",
                            kv->key);
    }
  return 0;
}

int
kp_image_config_load (const char *path, kp_image_config *out, kp_error **err)
{
  memset (out, 0, sizeof *out);
  out->aliases = kp_image_aliases_new_default ();
  out->debian_mirror = xstrdup ("http://deb.debian.org/debian");
  out->ubuntu_mirror = xstrdup ("http://archive.ubuntu.com/ubuntu");
  out->keyring_dir = xstrdup ("/usr/share/keyrings");
  kp_cleanup_free char *file = NULL;
  if (path)
    file = xstrdup (path);
  else
    {
      const char *env = getenv ("KARAPACE_CONFIG");
      if (env && env[0])
        file = xstrdup (env);
      else
        {
          kp_cleanup_free char *home = kp_xdg_config_home ();
          file = kp_path_join (home, "karapace/config.toml");
        }
      if (access (file, F_OK) != 0)
        return 0;
    }
  kp_cleanup_toml kp_toml_value *root = kp_toml_parse_file (file, err);
  if (root == NULL)
    {
      kp_image_config_clear (out);
      return -1;
    }
  out->path = xstrdup (file);
  reader r = { file, out };
  for (size_t i = 0; i < root->u.table.len; i++)
    {
      const kp_toml_keyval *kv = &root->u.table.items[i];
      int rc = 0;
      if (strcmp (kv->key, "policy") == 0)
        continue; /* policy.h reads it */
      else if (strcmp (kv->key, "images") == 0)
        rc = want_type (&r, kv, KP_TOML_TABLE, "a table", err) < 0 ? -1
                                                                    : read_images (&r, kv->value,
                                                                                   err);
      else if (strcmp (kv->key, "registries") == 0)
        {
          rc = want_type (&r, kv, KP_TOML_TABLE, "a table of [registries.\"HOST\"]", err);
          for (size_t j = 0; rc == 0 && j < kv->value->u.table.len; j++)
            rc = read_registry (&r, &kv->value->u.table.items[j], err);
        }
      else if (strcmp (kv->key, "mirrors") == 0)
        rc = want_type (&r, kv, KP_TOML_TABLE, "a table", err) < 0 ? -1
                                                                    : read_mirrors (&r, kv->value,
                                                                                    err);
      else
        {
          static const char *const known[] = { "policy", "images", "registries", "mirrors",
                                                NULL };
          rc = unknown_key (&r, kv, "the configuration file", known, err);
        }
      if (rc < 0)
        {
          kp_image_config_clear (out);
          return -1;
        }
    }
  return 0;
}
