/* auth.c — WWW-Authenticate challenges and the auth.json files podman and docker write.
 *
 * Both are read from places an attacker may influence (a registry's answer, a file a
 * tool wrote), so the parsers are strict about structure and never guess: a challenge
 * they cannot read is no challenge, a credential they cannot decode is an error that
 * names the file. */
#include "image/auth.h"

#include "base/buf.h"
#include "base/fs.h"
#include "base/json.h"

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

/* RFC 7230 tchar. */
static bool
is_tchar (char c)
{
  return isalnum ((unsigned char) c) || (c != '\0' && strchr ("!#$%&'*+-.^_`|~", c) != NULL);
}

static const char *
skip_ows (const char *p)
{
  while (*p == ' ' || *p == '\t')
    p++;
  return p;
}

/* challenge = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
 * auth-param = token BWS "=" BWS ( token / quoted-string )
 * The first challenge is read; a token that is not followed by "=" starts the next one. */
int
kp_auth_parse_challenge (const char *header, kp_auth_challenge *out)
{
  memset (out, 0, sizeof *out);
  if (header == NULL)
    return -1;
  const char *p = skip_ows (header);
  size_t n = 0;
  while (is_tchar (p[n]))
    n++;
  if (n == 0 || (p[n] != '\0' && p[n] != ' ' && p[n] != '\t'))
    return -1;
  out->scheme = xstrndup (p, n);
  for (char *s = out->scheme; *s; s++)
    *s = (char) tolower ((unsigned char) *s);
  p += n;
  for (;;)
    {
      while (*p == ' ' || *p == '\t' || *p == ',')
        p++;
      if (*p == '\0')
        break;
      const char *name = p;
      while (is_tchar (*p))
        p++;
      size_t name_len = (size_t) (p - name);
      if (name_len == 0)
        goto malformed;
      const char *after = skip_ows (p);
      if (*after != '=')
        break; /* the next challenge's scheme: we use the first challenge only */
      p = after + 1;
      if (*p == '=')
        {
          /* token68 ("Negotiate abc=="): no parameters to read. */
          while (*p == '=')
            p++;
          continue;
        }
      p = skip_ows (p);
      kp_cleanup_buf kp_buf value = KP_BUF_INIT;
      if (*p == '"')
        {
          for (p++; *p != '"'; p++)
            {
              if (*p == '\\' && p[1] != '\0')
                p++;
              if (*p == '\0')
                goto malformed;
              kp_buf_append (&value, p, 1);
            }
          p++;
        }
      else
        {
          const char *v = p;
          while (is_tchar (*p) || *p == '/' || *p == ':')
            p++; /* not tchar, but unquoted URLs are common enough to accept */
          if (p == v)
            goto malformed;
          kp_buf_append (&value, v, (size_t) (p - v));
        }
      p = skip_ows (p);
      if (*p != '\0' && *p != ',')
        goto malformed;
      char **slot = NULL;
      if (name_len == 5 && strncasecmp (name, "realm", 5) == 0)
        slot = &out->realm;
      else if (name_len == 7 && strncasecmp (name, "service", 7) == 0)
        slot = &out->service;
      else if (name_len == 5 && strncasecmp (name, "scope", 5) == 0)
        slot = &out->scope;
      if (slot)
        {
          free (*slot);
          *slot = kp_buf_steal (&value);
        }
    }
  return 0;
malformed:
  kp_auth_challenge_clear (out);
  return -1;
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
  kp_cleanup_free char *buf = xmalloc (n / 4 * 3 + 4);
  size_t o = 0;
  unsigned acc = 0;
  int bits = 0;
  bool padding = false;
  for (size_t i = 0; i < n; i++)
    {
      char c = text[i];
      if (c == '\n' || c == '\r')
        continue;
      if (c == '=')
        {
          padding = true;
          continue;
        }
      const char *pos = strchr (b64, c);
      if (pos == NULL || padding) /* a foreign character, or data after the padding */
        return -1;
      acc = (acc << 6 | (unsigned) (pos - b64)) & 0xFFFFFF;
      bits += 6;
      if (bits >= 8)
        {
          bits -= 8;
          buf[o++] = (char) (acc >> bits & 0xFF);
        }
    }
  if (bits >= 6)
    return -1; /* a lone sixth of a byte: truncated */
  buf[o] = '\0';
  *out = kp_steal_pointer (&buf);
  *len = o;
  return 0;
}

/* The registry an auth.json key is for, as "host[:port][/path]": "https://host/v1/" and
 * "http://host" are legacy docker keys that name a host only (docker and podman ignore
 * their path too); Docker Hub's several names become "docker.io". */
static char *
normalize_key (const char *key)
{
  const char *k = key;
  bool legacy = false;
  if (strncasecmp (k, "https://", 8) == 0)
    k += 8, legacy = true;
  else if (strncasecmp (k, "http://", 7) == 0)
    k += 7, legacy = true;
  size_t host_len = strcspn (k, "/");
  size_t n = legacy ? host_len : strlen (k);
  while (n > host_len && k[n - 1] == '/')
    n--;
  kp_buf b = KP_BUF_INIT;
  kp_cleanup_free char *host = xstrndup (k, host_len);
  for (char *c = host; *c; c++)
    *c = (char) tolower ((unsigned char) *c);
  if (strcmp (host, "index.docker.io") == 0 || strcmp (host, "registry-1.docker.io") == 0)
    kp_buf_puts (&b, "docker.io");
  else
    kp_buf_puts (&b, host);
  kp_buf_append (&b, k + host_len, n - host_len);
  return kp_buf_steal (&b);
}

/* Look in one file: 1 with credentials, 0 without (and maybe a note), -1 on error. */
static int
lookup_in (const char *file, const char *registry, const char *repository, char **user,
           char **password, char **note, kp_error **err)
{
  size_t len = 0;
  kp_cleanup_free char *text = kp_file_read (file, 4 << 20, &len, err);
  if (text == NULL)
    return kp_error_prefix (err, "read the credentials in '%s'", file);
  json_error_t jerr;
  kp_cleanup_json json_t *doc = json_loadb (text, len, 0, &jerr);
  if (!json_is_object (doc))
    {
      kp_error_set (err, KP_EXIT_FAILURE, "'%s' is not a JSON object: %s (line %d)", file,
                    doc ? "wrong type" : jerr.text, doc ? 1 : jerr.line);
      kp_error_hint (err, "fix or remove the file, or log in again with 'podman login'");
      return -1;
    }
  kp_cleanup_free char *want_host = normalize_key (registry);
  kp_cleanup_free char *full = xasprintf ("%s/%s", want_host, repository ? repository : "");
  json_t *auths = json_object_get (doc, "auths");
  const char *key;
  json_t *entry;
  json_t *best = NULL;
  size_t best_len = 0;
  json_object_foreach (auths, key, entry)
    {
      kp_cleanup_free char *k = normalize_key (key);
      size_t kl = strlen (k);
      bool match = strcmp (k, want_host) == 0
                   || (strncmp (full, k, kl) == 0 && (full[kl] == '/' || full[kl] == '\0'));
      if (match && json_is_object (entry) && kl > best_len)
        best = entry, best_len = kl;
    }
  const char *auth = json_string_value (json_object_get (best, "auth"));
  if (auth && *auth)
    {
      kp_cleanup_free char *plain = NULL;
      size_t plen = 0;
      char *colon = NULL;
      if (kp_base64_decode (auth, &plain, &plen) < 0 || memchr (plain, '\0', plen) != NULL
          || (colon = strchr (plain, ':')) == NULL)
        {
          kp_error_set (err, KP_EXIT_FAILURE, "the credentials for %s in '%s' are not "
                        "base64 of USER:PASSWORD", registry, file);
          kp_error_hint (err, "log in again with 'podman login %s'", registry);
          return -1;
        }
      *user = xstrndup (plain, (size_t) (colon - plain));
      *password = xstrdup (colon + 1);
      explicit_bzero (plain, plen);
      return 1;
    }
  if (note && *note == NULL)
    {
      const char *helper = NULL;
      json_t *helpers = json_object_get (doc, "credHelpers");
      json_object_foreach (helpers, key, entry)
        {
          kp_cleanup_free char *k = normalize_key (key);
          if (strcmp (k, want_host) == 0)
            helper = json_string_value (entry);
        }
      if (helper == NULL)
        helper = json_string_value (json_object_get (doc, "credsStore"));
      if (json_string_value (json_object_get (best, "identitytoken")))
        *note = xasprintf ("'%s' has an identity token for %s, which karapace does not use",
                           file, registry);
      else if (helper && *helper)
        *note = xasprintf ("'%s' hands the credentials to docker-credential-%s, which "
                           "karapace does not run", file, helper);
    }
  return 0;
}

int
kp_auth_lookup (const char *auth_file, const char *registry, const char *repository,
                char **user, char **password, char **source, char **note, kp_error **err)
{
  if (note)
    *note = NULL;
  if (auth_file)
    {
      int r = lookup_in (auth_file, registry, repository, user, password, note, err);
      if (r == 1 && source)
        *source = xstrdup (auth_file);
      return r;
    }
  /* The order podman uses (containers-auth.json(5)), then docker's file. */
  kp_cleanup_strv char **candidates = xcalloc (5, sizeof *candidates);
  size_t n = 0;
  const char *env = getenv ("REGISTRY_AUTH_FILE");
  if (env && *env)
    candidates[n++] = xstrdup (env);
  const char *rt = getenv ("XDG_RUNTIME_DIR");
  if (rt && *rt)
    candidates[n++] = xasprintf ("%s/containers/auth.json", rt);
  kp_cleanup_free char *cfg = kp_xdg_config_home ();
  if (cfg)
    candidates[n++] = xasprintf ("%s/containers/auth.json", cfg);
  const char *home = kp_home_dir ();
  if (home && *home)
    candidates[n++] = xasprintf ("%s/.docker/config.json", home);
  for (size_t i = 0; i < n; i++)
    {
      /* Absent or unreadable standard files are simply not there; a malformed one is an
         error, because guessing past it could pick credentials the user did not mean. */
      if (access (candidates[i], R_OK) != 0)
        continue;
      int rc = lookup_in (candidates[i], registry, repository, user, password, note, err);
      if (rc == 1 && source)
        *source = xstrdup (candidates[i]);
      if (rc != 0)
        return rc;
    }
  return 0;
}
