/* reference.c — the image reference grammar of docs/images.md.
 *
 * Everything here is lexical: a reference is read as slices of the user's text, so that
 * every error can name the character it is about (1-based, in bytes of the reference). The
 * OCI part follows the registry reference grammar of the OCI distribution specification and
 * docker's normalisation rules (default registry docker.io, "library/" for its one-word
 * names, tag "latest" when neither tag nor digest is given). */
#include "image/reference.h"

#include "base/buf.h"
#include "base/fs.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_REGISTRY "docker.io"
#define LEGACY_REGISTRY "index.docker.io"
#define DEFAULT_LXC_SERVER "images.linuxcontainers.org"
#define DEFAULT_LXC_VARIANT "default"
#define MAX_NAME_LENGTH 255 /* registry + "/" + repository, as docker limits it */
#define MAX_TAG_LENGTH 128

/* The parse state: the whole input (for positions) and the reference being filled. */
typedef struct parser
{
  const char *text;
  kp_image_ref *ref;
} parser;

/* "image reference 'TEXT': WHAT at character N", with a hint; returns -1. */
static int KP_PRINTF (5, 6)
fail_at (const parser *p, const char *where, kp_error **err, const char *hint, const char *fmt,
         ...)
{
  va_list ap;
  va_start (ap, fmt);
  kp_cleanup_free char *what = xvasprintf (fmt, ap);
  va_end (ap);
  if (where != NULL)
    kp_error_set (err, KP_EXIT_FAILURE, "image reference '%s': %s at character %zu", p->text,
                  what, (size_t) (where - p->text) + 1);
  else
    kp_error_set (err, KP_EXIT_FAILURE, "image reference '%s': %s", p->text, what);
  if (hint != NULL)
    kp_error_hint (err, "%s", hint);
  return -1;
}

static bool
is_lower_alnum (char c)
{
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool
is_alnum (char c)
{
  return is_lower_alnum (c) || (c >= 'A' && c <= 'Z');
}

static bool
is_lower_hex (char c)
{
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

static const char *
find_in (const char *s, size_t len, char c)
{
  return memchr (s, c, len);
}

static const char *
find_last_in (const char *s, size_t len, char c)
{
  for (size_t i = len; i > 0; i--)
    if (s[i - 1] == c)
      return s + i - 1;
  return NULL;
}

/* ---- OCI names ---- */

/* host[:port] or [ipv6][:port]: docker's domain grammar. */
static int
check_host (const parser *p, const char *s, size_t len, const char *what, kp_error **err)
{
  const char *end = s + len;
  const char *c = s;
  if (len == 0)
    return fail_at (p, s, err, NULL, "%s is empty", what);
  if (*c == '[')
    {
      const char *close = find_in (s, len, ']');
      if (close == NULL)
        return fail_at (p, s, err, "an IPv6 address is written in brackets: [::1]:5000",
                        "unterminated '[' in %s", what);
      for (c = s + 1; c < close; c++)
        if (!is_lower_hex (*c) && !(*c >= 'A' && *c <= 'F') && *c != ':')
          return fail_at (p, c, err, NULL, "invalid character '%c' in IPv6 address", *c);
      if (close == s + 1)
        return fail_at (p, close, err, NULL, "empty IPv6 address in %s", what);
      c = close + 1;
    }
  else
    {
      /* Components [A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])? separated by single dots. */
      const char *start = c;
      for (; c < end && *c != ':'; c++)
        {
          if (*c == '.')
            {
              if (c == start || c[-1] == '-')
                return fail_at (p, c, err, NULL, "misplaced '.' in %s", what);
              start = c + 1;
            }
          else if (*c == '-')
            {
              if (c == start)
                return fail_at (p, c, err, NULL, "a host name component of %s cannot start "
                                "with '-'", what);
            }
          else if (!is_alnum (*c))
            return fail_at (p, c, err, NULL, "invalid character '%c' in %s", *c, what);
        }
      if (c == start || c[-1] == '-' || c[-1] == '.')
        return fail_at (p, c - (c > s), err, NULL, "%s ends badly", what);
    }
  if (c < end)
    {
      if (*c != ':')
        return fail_at (p, c, err, NULL, "unexpected '%c' after the host of %s", *c, what);
      const char *port = ++c;
      unsigned long value = 0;
      for (; c < end; c++)
        {
          if (*c < '0' || *c > '9')
            return fail_at (p, c, err, NULL, "invalid character '%c' in the port of %s", *c,
                            what);
          value = value * 10 + (unsigned long) (*c - '0');
          if (value > 65535)
            return fail_at (p, port, err, NULL, "port of %s is above 65535", what);
        }
      if (c == port || value == 0)
        return fail_at (p, port, err, NULL, "missing or zero port in %s", what);
    }
  return 0;
}

/* path-component = [a-z0-9]+ ((\.|_|__|-+) [a-z0-9]+)* */
static int
check_repository_component (const parser *p, const char *s, size_t len, kp_error **err)
{
  static const char hint[] = "repository names are lowercase letters and digits, separated "
                             "by '.', '_', '__' or dashes, in components joined by '/'";
  if (len == 0)
    return fail_at (p, s, err, hint, "empty repository component");
  for (size_t i = 0; i < len;)
    {
      if (!is_lower_alnum (s[i]))
        {
          if (s[i] >= 'A' && s[i] <= 'Z')
            return fail_at (p, s + i, err, hint, "uppercase letter '%c' in the repository",
                            s[i]);
          return fail_at (p, s + i, err, hint, "invalid character '%c' in the repository",
                          s[i]);
        }
      while (i < len && is_lower_alnum (s[i]))
        i++;
      if (i == len)
        break;
      size_t sep = i;
      if (s[i] == '.')
        i++;
      else if (s[i] == '_')
        i += (i + 1 < len && s[i + 1] == '_') ? 2 : 1;
      else if (s[i] == '-')
        while (i < len && s[i] == '-')
          i++;
      else
        {
          if (s[i] >= 'A' && s[i] <= 'Z')
            return fail_at (p, s + i, err, hint, "uppercase letter '%c' in the repository",
                            s[i]);
          return fail_at (p, s + i, err, hint, "invalid character '%c' in the repository",
                          s[i]);
        }
      if (i == len || !is_lower_alnum (s[i]))
        return fail_at (p, s + sep, err, hint, "misplaced separator '%c' in the repository",
                        s[sep]);
    }
  return 0;
}

static int
check_repository (const parser *p, const char *s, size_t len, kp_error **err)
{
  const char *end = s + len;
  for (const char *c = s;;)
    {
      const char *slash = find_in (c, (size_t) (end - c), '/');
      const char *stop = slash ? slash : end;
      if (check_repository_component (p, c, (size_t) (stop - c), err) < 0)
        return -1;
      if (slash == NULL)
        return 0;
      c = slash + 1;
    }
}

/* tag = [A-Za-z0-9_][A-Za-z0-9_.-]{0,127} */
static int
check_tag (const parser *p, const char *s, size_t len, kp_error **err)
{
  static const char hint[] = "a tag is up to 128 letters, digits, '_', '.' and '-', and does "
                             "not start with '.' or '-'";
  if (len == 0)
    return fail_at (p, s, err, hint, "empty tag");
  if (len > MAX_TAG_LENGTH)
    return fail_at (p, s, err, hint, "tag longer than %d characters", MAX_TAG_LENGTH);
  for (size_t i = 0; i < len; i++)
    {
      char c = s[i];
      bool ok = is_alnum (c) || c == '_' || (i > 0 && (c == '.' || c == '-'));
      if (!ok)
        return fail_at (p, s + i, err, hint, "invalid character '%c' in the tag", c);
    }
  return 0;
}

/* A run of lowercase hex digits of an exact length; `what` names it in the error. */
static int
check_hex (const parser *p, const char *s, size_t len, size_t want, const char *what,
           const char *hint, kp_error **err)
{
  for (size_t i = 0; i < len; i++)
    if (!is_lower_hex (s[i]))
      return fail_at (p, s + i, err, hint, "invalid character '%c' in the %s", s[i], what);
  if (len != want)
    return fail_at (p, s, err, hint, "%s has %zu hexadecimal digits, not %zu", what, len,
                    want);
  return 0;
}

/* digest = (sha256:<64 hex> | sha512:<128 hex>) */
static int
check_digest (const parser *p, const char *s, size_t len, kp_error **err)
{
  static const char hint[] = "a digest is sha256: followed by 64 lowercase hexadecimal "
                             "digits (or sha512: and 128)";
  const char *colon = find_in (s, len, ':');
  if (len == 0)
    return fail_at (p, s, err, hint, "empty digest after '@'");
  if (colon == NULL)
    return fail_at (p, s, err, hint, "digest without an algorithm");
  size_t alg = (size_t) (colon - s);
  size_t want;
  if (alg == 6 && memcmp (s, "sha256", 6) == 0)
    want = 64;
  else if (alg == 6 && memcmp (s, "sha512", 6) == 0)
    want = 128;
  else
    return fail_at (p, s, err, hint, "unsupported digest algorithm '%.*s'", (int) alg, s);
  return check_hex (p, colon + 1, len - alg - 1, want, "digest", hint, err);
}

/* docker's rule: the first component is a registry when it contains '.' or ':', is
 * "localhost", or has an uppercase letter (repositories cannot). */
static bool
looks_like_registry (const char *s, size_t len)
{
  if (len == 9 && memcmp (s, "localhost", 9) == 0)
    return true;
  for (size_t i = 0; i < len; i++)
    if (s[i] == '.' || s[i] == ':' || (s[i] >= 'A' && s[i] <= 'Z'))
      return true;
  return false;
}

/* The part after "docker://", or a bare reference. */
static int
parse_oci (parser *p, const char *s, kp_error **err)
{
  kp_image_ref *r = p->ref;
  size_t len = strlen (s);
  if (len == 0)
    return fail_at (p, s, err, "for example: docker://docker.io/library/debian:bookworm",
                    "missing repository");

  const char *at = find_in (s, len, '@');
  size_t name_len = at ? (size_t) (at - s) : len;
  if (at != NULL)
    {
      if (check_digest (p, at + 1, len - name_len - 1, err) < 0)
        return -1;
      r->digest = xstrdup (at + 1);
    }

  const char *slash = find_last_in (s, name_len, '/');
  const char *after = slash ? slash + 1 : s;
  const char *colon = find_in (after, (size_t) (s + name_len - after), ':');
  if (colon != NULL)
    {
      size_t tag_len = (size_t) (s + name_len - colon - 1);
      if (check_tag (p, colon + 1, tag_len, err) < 0)
        return -1;
      r->tag = xstrndup (colon + 1, tag_len);
      name_len = (size_t) (colon - s);
    }
  if (name_len == 0)
    return fail_at (p, s, err, "for example: docker://docker.io/library/debian:bookworm",
                    "missing repository");

  const char *first = find_in (s, name_len, '/');
  const char *repo = s;
  if (first != NULL && looks_like_registry (s, (size_t) (first - s)))
    {
      if (check_host (p, s, (size_t) (first - s), "the registry", err) < 0)
        return -1;
      r->registry = xstrndup (s, (size_t) (first - s));
      repo = first + 1;
    }
  else
    r->registry = xstrdup (DEFAULT_REGISTRY);
  size_t repo_len = name_len - (size_t) (repo - s);
  if (check_repository (p, repo, repo_len, err) < 0)
    return -1;

  if (strcmp (r->registry, LEGACY_REGISTRY) == 0)
    {
      free (r->registry);
      r->registry = xstrdup (DEFAULT_REGISTRY);
    }
  if (strcmp (r->registry, DEFAULT_REGISTRY) == 0 && find_in (repo, repo_len, '/') == NULL)
    r->repository = xasprintf ("library/%.*s", (int) repo_len, repo);
  else
    r->repository = xstrndup (repo, repo_len);
  if (strlen (r->registry) + 1 + strlen (r->repository) > MAX_NAME_LENGTH)
    return fail_at (p, s, err, NULL, "name longer than %d characters", MAX_NAME_LENGTH);

  if (r->tag == NULL && r->digest == NULL)
    r->tag = xstrdup ("latest");

  kp_buf b = KP_BUF_INIT;
  kp_buf_printf (&b, "docker://%s/%s", r->registry, r->repository);
  if (r->tag != NULL)
    kp_buf_printf (&b, ":%s", r->tag);
  if (r->digest != NULL)
    kp_buf_printf (&b, "@%s", r->digest);
  r->canonical = kp_buf_steal (&b);
  r->kind = KP_REF_OCI;
  return 0;
}

/* ---- LXC ---- */

/* distro, release, variant: [A-Za-z0-9][A-Za-z0-9._-]* (releases such as "9-Stream"). */
static int
check_lxc_word (const parser *p, const char *s, size_t len, const char *what, kp_error **err)
{
  static const char hint[] = "for example: lxc:ubuntu/noble or "
                             "lxc://images.linuxcontainers.org/alpine/3.20/cloud";
  if (len == 0)
    return fail_at (p, s, err, hint, "missing %s", what);
  for (size_t i = 0; i < len; i++)
    if (!(is_alnum (s[i]) || (i > 0 && (s[i] == '.' || s[i] == '_' || s[i] == '-'))))
      return fail_at (p, s + i, err, hint, "invalid character '%c' in the %s", s[i], what);
  return 0;
}

static int
parse_lxc (parser *p, const char *s, bool with_server, kp_error **err)
{
  kp_image_ref *r = p->ref;
  static const char *const what[] = { "server", "distribution", "release", "variant" };
  char **fields[] = { &r->server, &r->distro, &r->release, &r->variant };
  size_t i = with_server ? 0 : 1;
  const char *c = s;
  for (;; i++)
    {
      const char *slash = strchr (c, '/');
      size_t len = slash ? (size_t) (slash - c) : strlen (c);
      if (i >= KP_N_ELEMENTS (fields))
        return fail_at (p, c - 1, err, "the form is lxc://SERVER/DISTRO/RELEASE[/VARIANT]",
                        "too many components");
      if (i == 0 ? check_host (p, c, len, "the server", err) < 0
                 : check_lxc_word (p, c, len, what[i], err) < 0)
        return -1;
      *fields[i] = xstrndup (c, len);
      if (slash == NULL)
        break;
      c = slash + 1;
    }
  if (r->distro == NULL)
    return fail_at (p, NULL, err, "the form is lxc://SERVER/DISTRO/RELEASE[/VARIANT]",
                    "missing distribution and release");
  if (r->release == NULL)
    return fail_at (p, NULL, err, "the form is lxc://SERVER/DISTRO/RELEASE[/VARIANT]",
                    "missing release");
  if (r->server == NULL)
    r->server = xstrdup (DEFAULT_LXC_SERVER);
  if (r->variant == NULL)
    r->variant = xstrdup (DEFAULT_LXC_VARIANT);
  r->canonical = xasprintf ("lxc://%s/%s/%s/%s", r->server, r->distro, r->release, r->variant);
  r->kind = KP_REF_LXC;
  return 0;
}

/* ---- Local files, directories and URLs ---- */

/* "#sha256=HEX" or "#blake3=HEX", both 64 lowercase hex digits; `s` is after the '#'. */
static int
parse_expect_digest (parser *p, const char *s, kp_error **err)
{
  static const char hint[] = "the expected digest is written #sha256=HEX or #blake3=HEX, with "
                             "64 lowercase hexadecimal digits";
  const char *alg;
  if (kp_str_has_prefix (s, "sha256="))
    alg = "sha256";
  else if (kp_str_has_prefix (s, "blake3="))
    alg = "blake3";
  else
    return fail_at (p, s, err, hint, "malformed expected digest '#%s'", s);
  const char *hex = s + 7;
  if (check_hex (p, hex, strlen (hex), 64, "expected digest", hint, err) < 0)
    return -1;
  p->ref->expect_digest = xasprintf ("%s:%s", alg, hex);
  return 0;
}

static bool
is_tarball_name (const char *path)
{
  static const char *const suffixes[] = { ".tar", ".tar.gz", ".tar.xz", ".tar.zst" };
  for (size_t i = 0; i < KP_N_ELEMENTS (suffixes); i++)
    if (kp_str_has_suffix (path, suffixes[i]))
      return true;
  return false;
}

/* Resolve and normalise a path; `s` points into the input for positions. */
static char *
local_path (parser *p, const char *s, size_t len, const char *manifest_dir, kp_error **err)
{
  kp_cleanup_free char *raw = xstrndup (s, len);
  if (len == 0)
    {
      fail_at (p, s, err, NULL, "empty path");
      return NULL;
    }
  if (raw[0] != '/')
    {
      if (manifest_dir == NULL || manifest_dir[0] != '/')
        {
          fail_at (p, s, err, "write an absolute path, or use the reference in a manifest",
                   "relative path without a manifest directory");
          return NULL;
        }
      kp_cleanup_free char *joined = kp_path_join (manifest_dir, raw);
      return kp_path_normalize (joined);
    }
  return kp_path_normalize (raw);
}

static int
set_file (parser *p, const char *s, const char *manifest_dir, bool plain, kp_error **err)
{
  kp_image_ref *r = p->ref;
  const char *hash = strchr (s, '#');
  size_t len = hash ? (size_t) (hash - s) : strlen (s);
  r->path_or_url = local_path (p, s, len, manifest_dir, err);
  if (r->path_or_url == NULL)
    return -1;
  if (!is_tarball_name (r->path_or_url))
    {
      if (!plain)
        return fail_at (p, s, err, "use dir:// for a directory, oci-layout:// for an OCI "
                        "image layout",
                        "file:// names a root filesystem tarball (.tar, .tar.gz, .tar.xz or "
                        ".tar.zst)");
      if (hash != NULL)
        return fail_at (p, hash, err, NULL,
                        "an expected digest is only for tarballs, not directories");
      r->kind = KP_REF_DIR;
      r->canonical = xasprintf ("dir://%s", r->path_or_url);
      return 0;
    }
  if (hash != NULL && parse_expect_digest (p, hash + 1, err) < 0)
    return -1;
  r->kind = KP_REF_FILE;
  if (r->expect_digest != NULL)
    {
      const char *colon = strchr (r->expect_digest, ':');
      r->canonical = xasprintf ("file://%s#%.*s=%s", r->path_or_url,
                                (int) (colon - r->expect_digest), r->expect_digest, colon + 1);
    }
  else
    r->canonical = xasprintf ("file://%s", r->path_or_url);
  return 0;
}

static int
parse_file (parser *p, const char *s, kp_error **err)
{
  if (*s != '/')
    return fail_at (p, s, err, "write file:///absolute/rootfs.tar, or ./relative/rootfs.tar "
                    "without file://", "file:// needs an absolute path");
  return set_file (p, s, NULL, false, err);
}

static int
parse_dir (parser *p, const char *s, kp_error **err)
{
  kp_image_ref *r = p->ref;
  if (*s != '/')
    return fail_at (p, s, err, "write dir:///absolute/path, or ./relative/path without dir://",
                    "dir:// needs an absolute path");
  const char *hash = strchr (s, '#');
  if (hash != NULL)
    return fail_at (p, hash, err, NULL, "'#' in a directory reference");
  r->path_or_url = kp_path_normalize (s);
  r->kind = KP_REF_DIR;
  r->canonical = xasprintf ("dir://%s", r->path_or_url);
  return 0;
}

static int
parse_oci_layout (parser *p, const char *s, kp_error **err)
{
  kp_image_ref *r = p->ref;
  if (*s != '/')
    return fail_at (p, s, err, "write oci-layout:///absolute/path[:TAG]",
                    "oci-layout:// needs an absolute path");
  const char *hash = strchr (s, '#');
  if (hash != NULL)
    return fail_at (p, hash, err, NULL, "'#' in an OCI layout reference");
  size_t len = strlen (s);
  const char *slash = strrchr (s, '/');
  const char *colon = strchr (slash, ':');
  if (colon != NULL)
    {
      if (check_tag (p, colon + 1, len - (size_t) (colon + 1 - s), err) < 0)
        return -1;
      r->layout_tag = xstrdup (colon + 1);
      len = (size_t) (colon - s);
    }
  kp_cleanup_free char *raw = xstrndup (s, len);
  r->path_or_url = kp_path_normalize (raw);
  /* A ':' left in the last component would read back as a tag. */
  if (r->layout_tag == NULL && strchr (strrchr (r->path_or_url, '/'), ':') != NULL)
    return fail_at (p, s, err, "add the tag explicitly: oci-layout:///path:TAG",
                    "':' in the last component of an OCI layout path");
  r->kind = KP_REF_OCI_LAYOUT;
  r->canonical = r->layout_tag ? xasprintf ("oci-layout://%s:%s", r->path_or_url, r->layout_tag)
                               : xasprintf ("oci-layout://%s", r->path_or_url);
  return 0;
}

/* scheme "://" host[:port] path; `rest` is after "://". Returns the end of the URL (the
 * '#', or the end of the text). */
static const char *
check_url (parser *p, const char *rest, kp_error **err)
{
  const char *hash = strchr (rest, '#');
  const char *end = hash ? hash : rest + strlen (rest);
  const char *slash = find_in (rest, (size_t) (end - rest), '/');
  const char *host_end = slash ? slash : end;
  const char *at = find_in (rest, (size_t) (host_end - rest), '@');
  if (at != NULL)
    {
      fail_at (p, at, err, "credentials belong in the configuration, not in the reference",
               "user information in a URL");
      return NULL;
    }
  if (check_host (p, rest, (size_t) (host_end - rest), "the URL host", err) < 0)
    return NULL;
  return end;
}

static int
parse_url (parser *p, const char *s, size_t scheme_len, kp_error **err)
{
  kp_image_ref *r = p->ref;
  const char *end = check_url (p, s + scheme_len, err);
  if (end == NULL)
    return -1;
  if (*end == '#' && parse_expect_digest (p, end + 1, err) < 0)
    return -1;
  r->path_or_url = xstrndup (s, (size_t) (end - s));
  r->kind = KP_REF_URL;
  if (r->expect_digest != NULL)
    {
      const char *colon = strchr (r->expect_digest, ':');
      r->canonical = xasprintf ("%s#%.*s=%s", r->path_or_url, (int) (colon - r->expect_digest),
                                r->expect_digest, colon + 1);
    }
  else
    r->canonical = xstrdup (r->path_or_url);
  return 0;
}

/* SUITE[/VARIANT] of a Debian or Ubuntu source, from `s` to the end. */
static int
parse_suite (parser *p, const char *s, const char *hint, kp_error **err)
{
  kp_image_ref *r = p->ref;
  if (*s == '\0')
    return fail_at (p, s, err, hint, "missing suite (bookworm, trixie, noble, ...)");
  const char *slash = strchr (s, '/');
  const char *end = slash ? slash : s + strlen (s);
  for (const char *c = s; c < end; c++)
    if (!(is_lower_alnum (*c) || (c > s && (*c == '.' || *c == '-' || *c == '_'))))
      return fail_at (p, c, err, hint, "invalid character '%c' in the suite", *c);
  r->suite = xstrndup (s, (size_t) (end - s));
  const char *variant = slash ? slash + 1 : "minbase";
  if (strcmp (variant, "minbase") != 0 && strcmp (variant, "standard") != 0)
    return fail_at (p, slash + 1, err, "the variants are minbase (the default) and standard",
                    "unknown variant '%s'", variant);
  r->variant = xstrdup (variant);
  return 0;
}

/* debian+http(s)://MIRROR/PATH#SUITE[/VARIANT]; `s` is after "debian+" or "ubuntu+". */
static int
parse_debian (parser *p, const char *distribution, const char *s, size_t scheme_len,
              kp_error **err)
{
  kp_image_ref *r = p->ref;
  static const char hint[] = "for example: debian+http://deb.debian.org/debian#bookworm";
  const char *end = check_url (p, s + scheme_len, err);
  if (end == NULL)
    return -1;
  if (*end != '#' || end[1] == '\0')
    return fail_at (p, end, err, hint, "missing '#SUITE' after the mirror");
  if (parse_suite (p, end + 1, hint, err) < 0)
    return -1;
  size_t len = (size_t) (end - s);
  while (len > scheme_len && s[len - 1] == '/')
    len--;
  r->mirror = xstrndup (s, len);
  r->distribution = xstrdup (distribution);
  r->kind = KP_REF_DEBIAN;
  bool variant = strcmp (r->variant, "minbase") != 0;
  r->canonical = xasprintf ("%s+%s#%s%s%s", r->distribution, r->mirror, r->suite,
                            variant ? "/" : "", variant ? r->variant : "");
  return 0;
}

/* debian:SUITE[/VARIANT], ubuntu:SUITE[/VARIANT]: the configured mirror (or the default). */
static int
parse_debian_short (parser *p, const char *distribution, const char *s, kp_error **err)
{
  kp_image_ref *r = p->ref;
  kp_cleanup_free char *hint = xasprintf ("for example: %s:%s or %s:%s/standard", distribution,
                                          strcmp (distribution, "ubuntu") == 0 ? "noble"
                                                                               : "bookworm",
                                          distribution,
                                          strcmp (distribution, "ubuntu") == 0 ? "noble"
                                                                               : "bookworm");
  if (parse_suite (p, s, hint, err) < 0)
    return -1;
  r->distribution = xstrdup (distribution);
  r->kind = KP_REF_DEBIAN;
  bool variant = strcmp (r->variant, "minbase") != 0;
  r->canonical = xasprintf ("%s:%s%s%s", r->distribution, r->suite, variant ? "/" : "",
                            variant ? r->variant : "");
  return 0;
}

/* ---- Aliases ---- */

static const char *const default_aliases[][2] = {
  { "rolling", "docker://registry.opensuse.org/opensuse/tumbleweed:latest" },
  { "opensuse/tumbleweed", "docker://registry.opensuse.org/opensuse/tumbleweed:latest" },
  { "opensuse/leap", "docker://registry.opensuse.org/opensuse/leap:latest" },
  { "ubuntu", "ubuntu:noble" },
  { "ubuntu/24.04", "ubuntu:noble" },
  { "ubuntu/22.04", "ubuntu:jammy" },
  { "ubuntu/20.04", "ubuntu:focal" },
  { "debian", "debian:bookworm" },
  { "debian/bookworm", "debian:bookworm" },
  { "debian/trixie", "debian:trixie" },
  { "debian/sid", "debian:sid" },
  { "fedora/40", "docker://registry.fedoraproject.org/fedora:40" },
  { "fedora/41", "docker://registry.fedoraproject.org/fedora:41" },
  { "fedora/42", "docker://registry.fedoraproject.org/fedora:42" },
  { "arch", "docker://docker.io/library/archlinux:latest" },
  { "archlinux", "docker://docker.io/library/archlinux:latest" },
  { "alpine/3.18", "docker://docker.io/library/alpine:3.18" },
  { "alpine/3.19", "docker://docker.io/library/alpine:3.19" },
  { "alpine/3.20", "docker://docker.io/library/alpine:3.20" },
  { "alpine/3.21", "docker://docker.io/library/alpine:3.21" },
};

kp_image_aliases *
kp_image_aliases_new (void)
{
  return xcalloc (1, sizeof (kp_image_aliases));
}

kp_image_aliases *
kp_image_aliases_new_default (void)
{
  kp_image_aliases *a = kp_image_aliases_new ();
  a->names = xcalloc (KP_N_ELEMENTS (default_aliases), sizeof (char *));
  a->targets = xcalloc (KP_N_ELEMENTS (default_aliases), sizeof (char *));
  for (size_t i = 0; i < KP_N_ELEMENTS (default_aliases); i++)
    {
      a->names[i] = xstrdup (default_aliases[i][0]);
      a->targets[i] = xstrdup (default_aliases[i][1]);
    }
  a->n = KP_N_ELEMENTS (default_aliases);
  return a;
}

const char *
kp_image_aliases_lookup (const kp_image_aliases *a, const char *name)
{
  for (size_t i = 0; a != NULL && i < a->n; i++)
    if (strcmp (a->names[i], name) == 0)
      return a->targets[i];
  return NULL;
}

int
kp_image_aliases_set (kp_image_aliases *a, const char *name, const char *target,
                      kp_error **err)
{
  if (name[0] == '\0' || !is_lower_alnum (name[0]))
    return kp_error_set (err, KP_EXIT_FAILURE, "image alias '%s': must start with a lowercase "
                         "letter or digit", name);
  for (const char *c = name; *c; c++)
    if (!is_lower_alnum (*c) && *c != '.' && *c != '/' && *c != '-' && *c != '_')
      return kp_error_set (err, KP_EXIT_FAILURE, "image alias '%s': invalid character '%c' at "
                           "character %zu", name, *c, (size_t) (c - name) + 1);
  kp_cleanup_image_ref kp_image_ref ref = { 0 };
  if (kp_image_ref_parse (target, NULL, NULL, &ref, err) < 0)
    return kp_error_prefix (err, "image alias '%s'", name);
  for (size_t i = 0; i < a->n; i++)
    if (strcmp (a->names[i], name) == 0)
      {
        free (a->targets[i]);
        a->targets[i] = kp_steal_pointer (&ref.canonical);
        return 0;
      }
  a->names = xreallocarray (a->names, a->n + 1, sizeof (char *));
  a->targets = xreallocarray (a->targets, a->n + 1, sizeof (char *));
  a->names[a->n] = xstrdup (name);
  a->targets[a->n] = kp_steal_pointer (&ref.canonical);
  a->n++;
  return 0;
}

void
kp_image_aliases_free (kp_image_aliases *a)
{
  if (a == NULL)
    return;
  for (size_t i = 0; i < a->n; i++)
    {
      free (a->names[i]);
      free (a->targets[i]);
    }
  free (a->names);
  free (a->targets);
  free (a);
}

void
kp_image_aliases_freep (kp_image_aliases **a)
{
  kp_image_aliases_free (*a);
  *a = NULL;
}

/* A name that was meant as an alias but is not one: WORD/WORD, no registry, tag or digest,
 * whose first word begins some alias ("debian/buster") or which is within two edits of an
 * alias ("debain/bookworm"). Such names are errors, not Docker Hub repositories. */
static int
check_unknown_alias (parser *p, const kp_image_aliases *a, kp_error **err)
{
  const char *text = p->text;
  const char *slash = strchr (text, '/');
  if (slash == NULL || strchr (slash + 1, '/') != NULL || strpbrk (text, ":@") != NULL
      || looks_like_registry (text, (size_t) (slash - text)))
    return 0;
  size_t family_len = (size_t) (slash - text);
  bool family = false;
  const char *best = NULL;
  size_t best_distance = 3;
  for (size_t i = 0; i < a->n; i++)
    {
      const char *n = a->names[i];
      size_t first = strcspn (n, "/");
      if (first == family_len && memcmp (n, text, first) == 0)
        family = true;
      size_t d = kp_levenshtein (text, n);
      if (d < best_distance)
        {
          best_distance = d;
          best = n;
        }
    }
  if (!family && best == NULL)
    return 0;
  kp_cleanup_buf kp_buf known = KP_BUF_INIT;
  for (size_t i = 0; i < a->n; i++)
    kp_buf_printf (&known, "%s%s", i ? ", " : "", a->names[i]);
  kp_error_set (err, KP_EXIT_FAILURE, "unknown alias '%s'", text);
  if (best != NULL)
    kp_error_hint (err, "did you mean '%s'? known aliases: %s (a Docker Hub repository is "
                   "written docker://%s)", best, kp_buf_str (&known), text);
  else
    kp_error_hint (err, "known aliases: %s (a Docker Hub repository is written docker://%s)",
                   kp_buf_str (&known), text);
  return -1;
}

/* ---- The entry point ---- */

const char *
kp_ref_kind_name (kp_ref_kind kind)
{
  switch (kind)
    {
    case KP_REF_OCI: return "oci";
    case KP_REF_LXC: return "lxc";
    case KP_REF_FILE: return "file";
    case KP_REF_DIR: return "dir";
    case KP_REF_OCI_LAYOUT: return "oci-layout";
    case KP_REF_URL: return "url";
    case KP_REF_DEBIAN: return "debian";
    }
  return "unknown";
}

static int
parse_any (parser *p, const char *manifest_dir, const kp_image_aliases *aliases,
           kp_error **err)
{
  const char *s = p->text;
  if (*s == '\0')
    return fail_at (p, NULL, err, "for example: debian/bookworm or docker://docker.io/library/"
                    "debian:bookworm", "empty reference");
  for (const char *c = s; *c; c++)
    if ((unsigned char) *c <= ' ' || *c == 0x7f)
      return fail_at (p, c, err, NULL, "space or control character");

  if (kp_str_has_prefix (s, "docker://"))
    return parse_oci (p, s + 9, err);
  if (kp_str_has_prefix (s, "lxc://"))
    return parse_lxc (p, s + 6, true, err);
  if (kp_str_has_prefix (s, "lxc:"))
    return parse_lxc (p, s + 4, false, err);
  if (kp_str_has_prefix (s, "file://"))
    return parse_file (p, s + 7, err);
  if (kp_str_has_prefix (s, "dir://"))
    return parse_dir (p, s + 6, err);
  if (kp_str_has_prefix (s, "oci-layout://"))
    return parse_oci_layout (p, s + 13, err);
  if (kp_str_has_prefix (s, "http://"))
    return parse_url (p, s, 7, err);
  if (kp_str_has_prefix (s, "https://"))
    return parse_url (p, s, 8, err);
  static const char *const distributions[] = { "debian", "ubuntu" };
  for (size_t i = 0; i < KP_N_ELEMENTS (distributions); i++)
    {
      size_t n = strlen (distributions[i]);
      if (strncmp (s, distributions[i], n) == 0 && s[n] == '+')
        {
          const char *u = s + n + 1;
          if (kp_str_has_prefix (u, "http://"))
            return parse_debian (p, distributions[i], u, 7, err);
          if (kp_str_has_prefix (u, "https://"))
            return parse_debian (p, distributions[i], u, 8, err);
          return fail_at (p, u, err, "for example: debian+http://deb.debian.org/debian#bookworm",
                          "a %s mirror is an http:// or https:// URL", distributions[i]);
        }
      /* debian:SUITE; "debian:TAG@DIGEST" stays a pinned Docker Hub name. */
      if (strncmp (s, distributions[i], n) == 0 && s[n] == ':' && strchr (s, '@') == NULL)
        return parse_debian_short (p, distributions[i], s + n + 1, err);
    }
  const char *scheme = strstr (s, "://");
  if (scheme != NULL)
    return fail_at (p, s, err, "known schemes: docker://, lxc://, file://, dir://, "
                    "oci-layout://, http://, https://, debian+http(s)://, ubuntu+http(s)://",
                    "unknown scheme '%.*s://'", (int) (scheme - s), s);

  if (s[0] == '/' || kp_str_has_prefix (s, "./") || kp_str_has_prefix (s, "../")
      || strcmp (s, ".") == 0 || strcmp (s, "..") == 0)
    return set_file (p, s, manifest_dir, true, err);

  if (aliases != NULL)
    {
      const char *target = kp_image_aliases_lookup (aliases, s);
      if (target != NULL)
        {
          parser inner = { target, p->ref };
          if (parse_any (&inner, NULL, NULL, err) < 0)
            return kp_error_prefix (err, "alias '%s'", s);
          p->ref->alias = xstrdup (s);
          return 0;
        }
      if (check_unknown_alias (p, aliases, err) < 0)
        return -1;
    }
  return parse_oci (p, s, err);
}

int
kp_image_ref_parse (const char *text, const char *manifest_dir,
                    const kp_image_aliases *aliases, kp_image_ref *out, kp_error **err)
{
  memset (out, 0, sizeof *out);
  parser p = { text, out };
  if (parse_any (&p, manifest_dir, aliases, err) < 0)
    {
      kp_image_ref_clear (out);
      return -1;
    }
  out->input = xstrdup (text);
  return 0;
}

void
kp_image_ref_clear (kp_image_ref *r)
{
  char **fields[] = {
    &r->input,       &r->canonical, &r->registry,    &r->repository,   &r->tag,
    &r->digest,      &r->server,    &r->distro,      &r->release,      &r->variant,
    &r->path_or_url, &r->layout_tag, &r->expect_digest, &r->distribution, &r->suite,
    &r->mirror,      &r->alias,
  };
  for (size_t i = 0; i < KP_N_ELEMENTS (fields); i++)
    {
      free (*fields[i]);
      *fields[i] = NULL;
    }
  r->kind = KP_REF_OCI;
}
