/* image-config.c — the image part of config.toml, read strictly.
 *
 * Every value is validated here, where its line and column are known, so that later code
 * (pulls, mirror bootstraps) can trust the strings it is handed and a user learns about a
 * typo when the file is read, not when a pull half-works. */
#include "image/image-config.h"

#include "base/buf.h"
#include "base/fs.h"
#include "image/http.h"
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
  for (size_t i = 0; c && host && i < c->n_registries; i++)
    if (strcmp (c->registries[i].host, host) == 0)
      return &c->registries[i];
  return NULL;
}

/* ---- validation of the values -------------------------------------------------------- */

static bool
is_digit (char c)
{
  return c >= '0' && c <= '9';
}

static bool
valid_port (const char *s, size_t n)
{
  if (n == 0 || n > 5)
    return false;
  long port = 0;
  for (size_t i = 0; i < n; i++)
    {
      if (!is_digit (s[i]))
        return false;
      port = port * 10 + (s[i] - '0');
    }
  return port >= 1 && port <= 65535;
}

/* HOST[:PORT] in the first n bytes of s: a lowercase DNS name or IPv4 address (letters,
 * digits, '.', '-'; no empty label), or a bracketed IPv6 address. */
static bool
valid_host_n (const char *s, size_t n)
{
  if (n == 0 || n > 255)
    return false;
  size_t name_len;
  if (s[0] == '[')
    {
      const char *end = memchr (s, ']', n);
      if (end == NULL || end == s + 1)
        return false;
      for (const char *c = s + 1; c < end; c++)
        if (!(is_digit (*c) || (*c >= 'a' && *c <= 'f') || *c == ':' || *c == '.'))
          return false;
      name_len = (size_t) (end - s) + 1;
    }
  else
    {
      const char *colon = memchr (s, ':', n);
      name_len = colon ? (size_t) (colon - s) : n;
      if (name_len == 0 || s[0] == '.' || s[0] == '-' || s[name_len - 1] == '.'
          || s[name_len - 1] == '-')
        return false;
      for (size_t i = 0; i < name_len; i++)
        {
          char c = s[i];
          if (!((c >= 'a' && c <= 'z') || is_digit (c) || c == '.' || c == '-'))
            return false;
          if (c == '.' && s[i + 1] == '.')
            return false;
        }
    }
  if (name_len == n)
    return true;
  return s[name_len] == ':' && valid_port (s + name_len + 1, n - name_len - 1);
}

static bool
valid_host (const char *s)
{
  return valid_host_n (s, strlen (s));
}

/* A path after a host: '/'-separated components of URL-safe characters; no ".." and
 * nothing a URL parser would read as a query or fragment. Empty is fine. */
static bool
valid_url_path (const char *p)
{
  if (strstr (p, ".."))
    return false;
  for (const unsigned char *c = (const unsigned char *) p; *c; c++)
    if (*c <= ' ' || *c >= 0x7f || *c == '?' || *c == '#' || *c == '%' || *c == '\\'
        || *c == '@')
      return false;
  return true;
}

/* A registry mirror: HOST[:PORT][/PREFIX], the prefix in the OCI repository alphabet. */
static bool
valid_registry_mirror (const char *s)
{
  size_t host_len = strcspn (s, "/");
  if (!valid_host_n (s, host_len))
    return false;
  const char *prefix = s + host_len;
  if (*prefix == '\0')
    return true;
  if (prefix[1] == '\0' || kp_str_has_suffix (prefix, "/") || strstr (prefix, "//")
      || strstr (prefix, ".."))
    return false;
  for (const char *c = prefix; *c; c++)
    if (!((*c >= 'a' && *c <= 'z') || is_digit (*c) || *c == '.' || *c == '_' || *c == '-'
          || *c == '/'))
      return false;
  return true;
}

/* "http(s)://HOST[:PORT][/PATH]" into a copy without trailing '/'; NULL when invalid.
 * *is_http tells the scheme, *host_out (optional) the host. */
static char *
normalize_url (const char *v, bool *is_http, char **host_out)
{
  const char *rest;
  if (kp_str_has_prefix (v, "https://"))
    rest = v + 8, *is_http = false;
  else if (kp_str_has_prefix (v, "http://"))
    rest = v + 7, *is_http = true;
  else
    return NULL;
  size_t host_len = strcspn (rest, "/");
  if (!valid_host_n (rest, host_len) || !valid_url_path (rest + host_len))
    return NULL;
  size_t n = strlen (v);
  while (n > (size_t) (rest - v) + host_len && v[n - 1] == '/')
    n--;
  if (host_out)
    *host_out = xstrndup (rest, host_len);
  return xstrndup (v, n);
}

/* ---- the reader ---------------------------------------------------------------------- */

typedef struct reader
{
  const char *file;
  kp_image_config *c;
} reader;

static const char *const top_tables[] = { "policy", "images", "registries", "mirrors", NULL };
static const char *const images_keys[] = { "lxc_server", "aliases", NULL };
static const char *const registry_keys[] = { "insecure", "mirrors", NULL };
static const char *const mirrors_keys[] = { "debian", "ubuntu", "keyring_dir", NULL };

static int
at_value (reader *r, const kp_toml_value *v, kp_error **err, const char *msg)
{
  return kp_error_at (err, r->file, v->pos.line, v->pos.column, "%s", msg);
}

static int
at_key (reader *r, const kp_toml_keyval *kv, kp_error **err, const char *msg)
{
  return kp_error_at (err, r->file, kv->key_pos.line, kv->key_pos.column, "%s", msg);
}

static int
unknown_key (reader *r, const kp_toml_keyval *kv, const char *where, const char *const *known,
             kp_error **err)
{
  bool table = kv->value->type == KP_TOML_TABLE;
  kp_cleanup_free char *msg = xasprintf ("unknown %s \"%s\" in %s", table ? "table" : "key",
                                         kv->key, where);
  at_key (r, kv, err, msg);
  const char *best = NULL;
  size_t best_distance = 3; /* a longer edit is a different word, not a typo */
  for (const char *const *k = known; *k; k++)
    {
      size_t d = kp_levenshtein (kv->key, *k);
      if (d < best_distance)
        best_distance = d, best = *k;
    }
  if (best)
    kp_error_hint (err, "did you mean \"%s\"?", best);
  else
    {
      kp_buf b = KP_BUF_INIT;
      for (const char *const *k = known; *k; k++)
        kp_buf_printf (&b, "%s%s", b.len ? ", " : "", *k);
      kp_error_hint (err, "%s has: %s (docs/config.md)", where, kp_buf_str (&b));
      kp_buf_clear (&b);
    }
  return -1;
}

static int
want_type (reader *r, const kp_toml_keyval *kv, const char *name, kp_toml_type type,
           const char *what, kp_error **err)
{
  if (kv->value->type == type)
    return 0;
  kp_cleanup_free char *msg = xasprintf ("%s must be %s, not %s", name, what,
                                         kp_toml_type_name (kv->value->type));
  return at_value (r, kv->value, err, msg);
}

/* A non-empty string without NUL, borrowed from the tree. */
static const char *
want_string (reader *r, const kp_toml_keyval *kv, const char *name, kp_error **err)
{
  if (want_type (r, kv, name, KP_TOML_STRING, "a string", err) < 0)
    return NULL;
  const kp_toml_value *v = kv->value;
  if (v->u.string.len == 0 || memchr (v->u.string.ptr, '\0', v->u.string.len))
    {
      kp_cleanup_free char *msg = xasprintf ("%s must be a non-empty string without NUL", name);
      at_value (r, v, err, msg);
      return NULL;
    }
  return v->u.string.ptr;
}

static int
read_lxc_server (reader *r, const kp_toml_keyval *kv, kp_error **err)
{
  const char *v = want_string (r, kv, "images.lxc_server", err);
  if (v == NULL)
    return -1;
  char *value;
  if (strstr (v, "://"))
    {
      bool is_http = false;
      kp_cleanup_free char *host = NULL;
      value = normalize_url (v, &is_http, &host);
      if (value == NULL)
        {
          kp_cleanup_free char *msg = xasprintf ("images.lxc_server: '%s' is not an "
                                                 "https://HOST[:PORT][/PATH] URL", v);
          return at_value (r, kv->value, err, msg);
        }
      /* The index is trusted through TLS alone (it is not signed), so plain HTTP is only
         for a server on this machine: a test fixture or a local cache. */
      if (is_http && !kp_http_host_is_loopback (host))
        {
          free (value);
          kp_cleanup_free char *msg = xasprintf ("images.lxc_server: plain HTTP is only "
                                                 "allowed for a loopback host, not '%s'", host);
          at_value (r, kv->value, err, msg);
          kp_error_hint (err, "use https://%s; the image index is not signed, so only TLS "
                              "protects it", host);
          return -1;
        }
    }
  else
    {
      size_t n = strlen (v);
      while (n > 0 && v[n - 1] == '/')
        n--;
      if (!valid_host_n (v, n))
        {
          kp_cleanup_free char *msg = xasprintf ("images.lxc_server: '%s' is not HOST[:PORT] "
                                                 "(lowercase) or an https:// URL", v);
          return at_value (r, kv->value, err, msg);
        }
      value = xstrndup (v, n);
    }
  free (r->c->lxc_server);
  r->c->lxc_server = value;
  return 0;
}

/* Only to decide where an error points: a bad name at the key, a bad target at the value.
 * The rule itself, and the message, are kp_image_aliases_set()'s. */
static bool
alias_name_plausible (const char *name)
{
  if (!((name[0] >= 'a' && name[0] <= 'z') || is_digit (name[0])))
    return false;
  for (const char *c = name; *c; c++)
    if (!((*c >= 'a' && *c <= 'z') || is_digit (*c) || strchr ("./-_", *c)))
      return false;
  return true;
}

static int
read_aliases (reader *r, const kp_toml_keyval *kv, kp_error **err)
{
  if (want_type (r, kv, "images.aliases", KP_TOML_TABLE, "a table of \"NAME\" = \"REFERENCE\"",
                 err) < 0)
    return -1;
  const kp_toml_value *t = kv->value;
  for (size_t i = 0; i < t->u.table.len; i++)
    {
      const kp_toml_keyval *al = &t->u.table.items[i];
      kp_cleanup_free char *name = xasprintf ("images.aliases.\"%s\"", al->key);
      const char *target = want_string (r, al, name, err);
      if (target == NULL)
        return -1;
      kp_cleanup_error kp_error *inner = NULL;
      if (kp_image_aliases_set (r->c->aliases, al->key, target, &inner) == 0)
        continue;
      if (alias_name_plausible (al->key))
        at_value (r, al->value, err, inner->message);
      else
        at_key (r, al, err, inner->message);
      if (inner->hint)
        kp_error_hint (err, "%s", inner->hint);
      return -1;
    }
  return 0;
}

static int
read_images (reader *r, const kp_toml_keyval *images, kp_error **err)
{
  if (want_type (r, images, "images", KP_TOML_TABLE, "a table", err) < 0)
    return -1;
  const kp_toml_value *t = images->value;
  for (size_t i = 0; i < t->u.table.len; i++)
    {
      const kp_toml_keyval *kv = &t->u.table.items[i];
      int rc;
      if (strcmp (kv->key, "lxc_server") == 0)
        rc = read_lxc_server (r, kv, err);
      else if (strcmp (kv->key, "aliases") == 0)
        rc = read_aliases (r, kv, err);
      else
        rc = unknown_key (r, kv, "[images]", images_keys, err);
      if (rc < 0)
        return -1;
    }
  return 0;
}

static int
read_registry_mirrors (reader *r, const kp_toml_keyval *kv, const char *where,
                       kp_registry_config *rc, kp_error **err)
{
  kp_cleanup_free char *name = xasprintf ("%s.mirrors", where);
  if (want_type (r, kv, name, KP_TOML_ARRAY, "an array of \"HOST[:PORT][/PREFIX]\" strings",
                 err) < 0)
    return -1;
  size_t n = kv->value->u.array.len;
  kp_cleanup_strv char **mirrors = xcalloc (n + 1, sizeof (char *));
  for (size_t j = 0; j < n; j++)
    {
      const kp_toml_value *m = kv->value->u.array.items[j];
      if (m->type != KP_TOML_STRING || memchr (m->u.string.ptr, '\0', m->u.string.len)
          || !valid_registry_mirror (m->u.string.ptr))
        {
          kp_cleanup_free char *msg
              = m->type == KP_TOML_STRING
                    ? xasprintf ("%s: '%s' is not HOST[:PORT][/PREFIX] (lowercase)", name,
                                 m->u.string.ptr)
                    : xasprintf ("%s: every mirror must be a string, not %s", name,
                                 kp_toml_type_name (m->type));
          at_value (r, m, err, msg);
          kp_error_hint (err, "for example \"mirror.gcr.io\" or \"mirror.example:5000/hub\"; "
                              "no scheme (insecure = true allows plain HTTP)");
          return -1;
        }
      mirrors[j] = xstrdup (m->u.string.ptr);
    }
  kp_strv_free (rc->mirrors);
  rc->mirrors = kp_steal_pointer (&mirrors);
  return 0;
}

static int
read_registry (reader *r, const kp_toml_keyval *entry, kp_error **err)
{
  if (!valid_host (entry->key))
    {
      kp_cleanup_free char *msg = xasprintf ("registries: \"%s\" is not a registry host",
                                             entry->key);
      at_key (r, entry, err, msg);
      kp_error_hint (err, "a key of [registries] is HOST[:PORT] in lowercase, as in "
                          "[registries.\"registry.local:5000\"]");
      return -1;
    }
  kp_cleanup_free char *where = xasprintf ("registries.\"%s\"", entry->key);
  if (want_type (r, entry, where, KP_TOML_TABLE, "a table", err) < 0)
    return -1;
  kp_image_config *c = r->c;
  c->registries = xreallocarray (c->registries, c->n_registries + 1,
                                 sizeof (kp_registry_config));
  kp_registry_config *rc = &c->registries[c->n_registries++];
  memset (rc, 0, sizeof *rc);
  rc->host = xstrdup (entry->key);
  const kp_toml_value *t = entry->value;
  for (size_t i = 0; i < t->u.table.len; i++)
    {
      const kp_toml_keyval *kv = &t->u.table.items[i];
      if (strcmp (kv->key, "insecure") == 0)
        {
          kp_cleanup_free char *name = xasprintf ("%s.insecure", where);
          if (want_type (r, kv, name, KP_TOML_BOOL, "true or false", err) < 0)
            return -1;
          rc->insecure = kv->value->u.boolean;
        }
      else if (strcmp (kv->key, "mirrors") == 0)
        {
          if (read_registry_mirrors (r, kv, where, rc, err) < 0)
            return -1;
        }
      else
        {
          kp_cleanup_free char *table = xasprintf ("[%s]", where);
          return unknown_key (r, kv, table, registry_keys, err);
        }
    }
  return 0;
}

static int
read_registries (reader *r, const kp_toml_keyval *kv, kp_error **err)
{
  if (want_type (r, kv, "registries", KP_TOML_TABLE, "a table of [registries.\"HOST\"]", err)
      < 0)
    return -1;
  for (size_t j = 0; j < kv->value->u.table.len; j++)
    if (read_registry (r, &kv->value->u.table.items[j], err) < 0)
      return -1;
  return 0;
}

static int
read_mirrors (reader *r, const kp_toml_keyval *mirrors, kp_error **err)
{
  if (want_type (r, mirrors, "mirrors", KP_TOML_TABLE, "a table", err) < 0)
    return -1;
  const kp_toml_value *t = mirrors->value;
  for (size_t i = 0; i < t->u.table.len; i++)
    {
      const kp_toml_keyval *kv = &t->u.table.items[i];
      if (!kp_strv_contains ((char *const *) mirrors_keys, kv->key))
        return unknown_key (r, kv, "[mirrors]", mirrors_keys, err);
      kp_cleanup_free char *name = xasprintf ("mirrors.%s", kv->key);
      const char *v = want_string (r, kv, name, err);
      if (v == NULL)
        return -1;
      if (strcmp (kv->key, "keyring_dir") == 0)
        {
          if (v[0] != '/')
            {
              kp_cleanup_free char *msg = xasprintf ("%s must be an absolute path", name);
              return at_value (r, kv->value, err, msg);
            }
          free (r->c->keyring_dir);
          r->c->keyring_dir = kp_path_normalize (v);
          continue;
        }
      /* Plain HTTP is the norm for Debian mirrors: InRelease is checked with gpgv. */
      bool is_http = false;
      char *url = normalize_url (v, &is_http, NULL);
      if (url == NULL)
        {
          kp_cleanup_free char *msg = xasprintf ("%s: '%s' is not an http(s)://HOST[:PORT]"
                                                 "[/PATH] URL", name, v);
          return at_value (r, kv->value, err, msg);
        }
      char **slot = strcmp (kv->key, "debian") == 0 ? &r->c->debian_mirror
                                                    : &r->c->ubuntu_mirror;
      free (*slot);
      *slot = url;
    }
  return 0;
}

static char *
default_config_path (bool *explicit_path)
{
  const char *env = getenv ("KARAPACE_CONFIG");
  *explicit_path = false;
  if (env && env[0])
    return xstrdup (env);
  kp_cleanup_free char *home = kp_xdg_config_home ();
  return kp_path_join (home, "karapace/config.toml");
}

static int
read_document (reader *r, const kp_toml_value *root, kp_error **err)
{
  for (size_t i = 0; i < root->u.table.len; i++)
    {
      const kp_toml_keyval *kv = &root->u.table.items[i];
      int rc;
      if (strcmp (kv->key, "policy") == 0)
        rc = want_type (r, kv, "policy", KP_TOML_TABLE, "a table", err); /* policy.h reads it */
      else if (strcmp (kv->key, "images") == 0)
        rc = read_images (r, kv, err);
      else if (strcmp (kv->key, "registries") == 0)
        rc = read_registries (r, kv, err);
      else if (strcmp (kv->key, "mirrors") == 0)
        rc = read_mirrors (r, kv, err);
      else
        rc = unknown_key (r, kv, "the configuration file", top_tables, err);
      if (rc < 0)
        return -1;
    }
  return 0;
}

int
kp_image_config_load (const char *path, kp_image_config *out, kp_error **err)
{
  memset (out, 0, sizeof *out);
  bool explicit_path = path != NULL;
  kp_cleanup_free char *file = path ? xstrdup (path) : default_config_path (&explicit_path);
  /* No file where one is looked for: the defaults below. */
  if (!explicit_path && access (file, F_OK) != 0)
    free (kp_steal_pointer (&file));

  kp_cleanup_toml kp_toml_value *root = NULL;
  if (file)
    {
      root = kp_toml_parse_file (file, err);
      if (root == NULL)
        return -1;
    }
  out->aliases = kp_image_aliases_new_default ();
  out->lxc_server = xstrdup (KP_DEFAULT_LXC_SERVER);
  out->debian_mirror = xstrdup ("http://deb.debian.org/debian");
  out->ubuntu_mirror = xstrdup ("http://archive.ubuntu.com/ubuntu");
  out->keyring_dir = xstrdup ("/usr/share/keyrings");
  if (root == NULL)
    return 0;
  reader r = { file, out };
  if (read_document (&r, root, err) < 0)
    {
      kp_image_config_clear (out);
      return -1;
    }
  out->path = kp_steal_pointer (&file);
  return 0;
}
