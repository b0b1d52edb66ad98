/* auth.c — WWW-Authenticate challenges and auth.json credentials. */
#include "image/auth.h"

#include "base/json.h"
#include "base/buf.h"
#include "base/fs.h"

#include <ctype.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

void
kp_auth_challenge_clear (kp_auth_challenge *c)
{
  free (c->scheme);
  free (c->realm);
  free (c->service);
  free (c->scope);
  memset (c, 0, sizeof *c);
}

/* auth-param = token "=" ( token / quoted-string ), separated by commas (RFC 7235). */
int
kp_auth_parse_challenge (const char *header, kp_auth_challenge *out)
{
  memset (out, 0, sizeof *out);
  if (header == NULL)
    return -1;
  const char *p = header;
  while (*p == ' ' || *p == '\t')
    p++;
  size_t n = strcspn (p, " \t,");
  if (n == 0)
    return -1;
  out->scheme = xstrndup (p, n);
  for (char *s = out->scheme; *s; s++)
    *s = (char) tolower ((unsigned char) *s);
  p += n;
  while (*p)
    {
      while (*p == ' ' || *p == '\t' || *p == ',')
        p++;
      if (*p == '\0')
        break;
      size_t kn = strcspn (p, "= \t,");
      if (p[kn] != '=')
        break; /* the next challenge begins: we use the first */
      kp_cleanup_free char *key = xstrndup (p, kn);
      p += kn + 1;
      kp_buf v = KP_BUF_INIT;
      if (*p == '"')
        {
          p++;
          while (*p && *p != '"')
            {
              if (*p == '\\' && p[1])
                p++;
              kp_buf_append (&v, p, 1);
              p++;
            }
          if (*p == '"')
            p++;
        }
      else
        {
          size_t vn = strcspn (p, ", \t");
          kp_buf_append (&v, p, vn);
          p += vn;
        }
      kp_buf_append (&v, "", 1);
      char **slot = strcasecmp (key, "realm") == 0     ? &out->realm
                    : strcasecmp (key, "service") == 0 ? &out->service
                    : strcasecmp (key, "scope") == 0   ? &out->scope
                                                       : NULL;
      if (slot)
        {
          free (*slot);
          *slot = kp_buf_steal (&v);
        }
      kp_buf_clear (&v);
    }
  return 0;
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *
kp_base64_encode (const void *data, size_t len)
{
  const unsigned char *s = data;
  char *out = xmalloc ((len + 2) / 3 * 4 + 1);
  size_t o = 0;
  for (size_t i = 0; i < len; i += 3)
    {
      unsigned v = (unsigned) s[i] << 16 | (i + 1 < len ? (unsigned) s[i + 1] << 8 : 0)
                   | (i + 2 < len ? s[i + 2] : 0);
      out[o++] = b64[v >> 18 & 63];
      out[o++] = b64[v >> 12 & 63];
      out[o++] = i + 1 < len ? b64[v >> 6 & 63] : '=';
      out[o++] = i + 2 < len ? b64[v & 63] : '=';
    }
  out[o] = '\0';
  return out;
}

int
kp_base64_decode (const char *text, char **out, size_t *len)
{
  size_t n = strlen (text);
  char *buf = xmalloc (n / 4 * 3 + 4);
  size_t o = 0;
  unsigned acc = 0;
  int bits = 0;
  for (size_t i = 0; i < n; i++)
    {
      char c = text[i];
      if (c == '=' || c == '\n' || c == '\r')
        continue;
      const char *pos = strchr (b64, c);
      if (pos == NULL || c == '\0')
        {
          free (buf);
          return -1;
        }
      acc = acc << 6 | (unsigned) (pos - b64);
      bits += 6;
      if (bits >= 8)
        {
          bits -= 8;
          buf[o++] = (char) (acc >> bits & 0xFF);
        }
    }
  buf[o] = '\0';
  *out = buf;
  *len = o;
  return 0;
}

/* The registry part of an auth.json key: "https://host/v1/" → "host/v1". */
static char *
normalize_key (const char *key)
{
  const char *k = key;
  if (strncmp (k, "https://", 8) == 0)
    k += 8;
  else if (strncmp (k, "http://", 7) == 0)
    k += 7;
  size_t n = strlen (k);
  while (n > 0 && k[n - 1] == '/')
    n--;
  char *out = xstrndup (k, n);
  if (strcmp (out, "index.docker.io/v1") == 0 || strcmp (out, "index.docker.io") == 0
      || strcmp (out, "registry-1.docker.io") == 0)
    {
      free (out);
      out = xstrdup ("docker.io");
    }
  return out;
}

static int
lookup_in (const char *file, const char *registry, const char *repository, char **user,
           char **password, kp_error **err)
{
  size_t len = 0;
  kp_cleanup_free char *text = kp_file_read (file, 4 << 20, &len, err);
  if (text == NULL)
    return kp_error_prefix (err, "read the credentials in '%s'", file);
  json_error_t jerr;
  json_t *doc = json_loadb (text, len, 0, &jerr);
  if (doc == NULL)
    {
      kp_error_set (err, KP_EXIT_FAILURE, "'%s' is not JSON: %s (line %d)", file, jerr.text,
                    jerr.line);
      return -1;
    }
  kp_cleanup_free char *full = xasprintf ("%s/%s", registry, repository ? repository : "");
  json_t *auths = json_object_get (doc, "auths");
  const char *key;
  json_t *entry;
  json_t *best = NULL;
  size_t best_len = 0;
  json_object_foreach (auths, key, entry)
    {
      kp_cleanup_free char *k = normalize_key (key);
      size_t kl = strlen (k);
      bool match = strcmp (k, registry) == 0
                   || (strncmp (full, k, kl) == 0 && (full[kl] == '/' || full[kl] == '\0'));
      if (match && kl > best_len)
        best = entry, best_len = kl;
    }
  int rc = 0;
  const char *auth = best ? json_string_value (json_object_get (best, "auth")) : NULL;
  if (auth && *auth)
    {
      char *plain = NULL;
      size_t plen = 0;
      char *colon = NULL;
      if (kp_base64_decode (auth, &plain, &plen) < 0 || (colon = strchr (plain, ':')) == NULL)
        {
          free (plain);
          rc = kp_error_set (err, KP_EXIT_FAILURE, "the credentials for %s in '%s' are not "
                             "base64 of USER:PASSWORD", registry, file);
        }
      else
        {
          *user = xstrndup (plain, (size_t) (colon - plain));
          *password = xstrdup (colon + 1);
          free (plain);
          rc = 1;
        }
    }
  json_decref (doc);
  return rc;
}

int
kp_auth_lookup (const char *auth_file, const char *registry, const char *repository,
                char **user, char **password, char **source, kp_error **err)
{
  if (auth_file)
    {
      int r = lookup_in (auth_file, registry, repository, user, password, err);
      if (r == 1 && source)
        *source = xstrdup (auth_file);
      return r;
    }
  char *candidates[5] = { 0 };
  size_t n = 0;
  const char *env = getenv ("REGISTRY_AUTH_FILE");
  if (env && *env)
    candidates[n++] = xstrdup (env);
  const char *rt = getenv ("XDG_RUNTIME_DIR");
  if (rt && *rt)
    candidates[n++] = xasprintf ("%s/containers/auth.json", rt);
  kp_cleanup_free char *cfg = kp_xdg_config_home ();
  candidates[n++] = xasprintf ("%s/containers/auth.json", cfg);
  const char *home = getenv ("HOME");
  if (home && *home)
    candidates[n++] = xasprintf ("%s/.docker/config.json", home);
  int rc = 0;
  for (size_t i = 0; i < n && rc == 0; i++)
    if (access (candidates[i], R_OK) == 0)
      {
        rc = lookup_in (candidates[i], registry, repository, user, password, err);
        if (rc == 1 && source)
          *source = xstrdup (candidates[i]);
      }
  for (size_t i = 0; i < n; i++)
    free (candidates[i]);
  return rc;
}
