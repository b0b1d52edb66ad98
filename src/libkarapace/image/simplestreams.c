/* simplestreams.c — choosing an image from an LXC server's simplestreams index.
 *
 * The product file of the public server is several megabytes and lists every distribution,
 * so one pass over it both finds the product and gathers, at each step of the match
 * (distribution, release, architecture, variant), what the server does offer; a failed
 * match then names the step that failed and the alternatives, without a second pass. */
#include "image/simplestreams.h"

#include "base/buf.h"
#include "base/json.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void
kp_lxc_image_clear (kp_lxc_image *img)
{
  free (img->product);
  free (img->version);
  free (img->path);
  free (img->sha256);
  memset (img, 0, sizeof *img);
}

const char *
kp_lxc_arch_host (void)
{
#if defined(__x86_64__)
  return "amd64";
#elif defined(__aarch64__)
  return "arm64";
#elif defined(__arm__) && defined(__ARM_PCS_VFP)
  return "armhf";
#elif defined(__i386__)
  return "i386";
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  return "ppc64el";
#elif defined(__s390x__)
  return "s390x";
#elif defined(__riscv) && __riscv_xlen == 64
  return "riscv64";
#else
  return "unknown";
#endif
}

/* A path the server names is appended to its base URL and becomes a file name in logs and
 * records, so it must stay below the base: relative, no "..", and nothing that a URL parser
 * would read as a query, a fragment or a different separator. */
static const char *
unsafe_path_reason (const char *p)
{
  if (p[0] == '\0')
    return "it is empty";
  if (p[0] == '/')
    return "it is absolute";
  if (strstr (p, ".."))
    return "it contains \"..\"";
  for (const unsigned char *c = (const unsigned char *) p; *c; c++)
    if (*c <= ' ' || *c == 0x7f || *c == '?' || *c == '#' || *c == '\\' || *c == '%')
      return "it contains a blank, a control character, '?', '#', '%' or '\\'";
  return NULL;
}

static json_t *
load_object (const char *text, size_t len, const char *what, kp_error **err)
{
  json_error_t jerr;
  /* Duplicate keys would let two readers of the same file see different products. */
  json_t *doc = json_loadb (text, len, JSON_REJECT_DUPLICATES, &jerr);
  if (doc == NULL)
    {
      kp_error_set (err, KP_EXIT_FAILURE, "the %s is not valid JSON: %s (line %d, column %d)",
                    what, jerr.text, jerr.line, jerr.column);
      return NULL;
    }
  if (!json_is_object (doc))
    {
      json_decref (doc);
      kp_error_set (err, KP_EXIT_FAILURE, "the %s is not a JSON object", what);
      return NULL;
    }
  return doc;
}

int
kp_simplestreams_products_path (const char *index_json, size_t len, char **path,
                                kp_error **err)
{
  *path = NULL;
  kp_cleanup_json json_t *doc = load_object (index_json, len, "simplestreams index", err);
  if (doc == NULL)
    return -1;
  json_t *index = json_object_get (doc, "index");
  if (!json_is_object (index))
    return kp_error_set (err, KP_EXIT_FAILURE,
                         "the simplestreams index has no \"index\" object");
  const char *key;
  json_t *entry;
  json_object_foreach (index, key, entry)
    {
      const char *datatype = json_string_value (json_object_get (entry, "datatype"));
      if (datatype == NULL || strcmp (datatype, "image-downloads") != 0)
        continue;
      const char *p = json_string_value (json_object_get (entry, "path"));
      if (p == NULL)
        return kp_error_set (err, KP_EXIT_FAILURE, "the simplestreams index entry \"%s\" "
                             "has no path", key);
      const char *why = unsafe_path_reason (p);
      if (why)
        return kp_error_set (err, KP_EXIT_FAILURE, "refusing the product list path '%s' of "
                             "the simplestreams index: %s", p, why);
      *path = xstrdup (p);
      return 0;
    }
  kp_error_set (err, KP_EXIT_FAILURE, "the simplestreams index lists no image-downloads "
                "product file");
  kp_error_hint (err, "is this an LXC image server (like images.linuxcontainers.org)?");
  return -1;
}

/* ---- the set of names offered at each step of the match ------------------------------ */

typedef struct name_set
{
  char **v; /* NULL-terminated once non-empty */
  size_t n;
} name_set;

static void
name_set_add (name_set *s, const char *name)
{
  if (name == NULL || (s->v && kp_strv_contains (s->v, name)))
    return;
  s->v = xreallocarray (s->v, s->n + 2, sizeof (char *));
  s->v[s->n++] = xstrdup (name);
  s->v[s->n] = NULL;
}

/* "a, b, c", in the order the server lists them (jansson keeps document order), so the
 * message follows the document and not our guess at a better order. */
static char *
name_set_join (const name_set *s)
{
  if (s->n == 0)
    return xstrdup ("none");
  kp_buf b = KP_BUF_INIT;
  for (size_t i = 0; i < s->n; i++)
    kp_buf_printf (&b, "%s%s", i ? ", " : "", s->v[i]);
  return kp_buf_steal (&b);
}

static void
name_set_clear (name_set *s)
{
  kp_strv_free (s->v);
  memset (s, 0, sizeof *s);
}

/* ---- matching ------------------------------------------------------------------------ */

/* The four parts of "DISTRO:RELEASE:ARCH:VARIANT" in one buffer; false for other keys. */
static bool
split_product_key (const char *key, char *buf, size_t size, char *parts[4])
{
  if (strlen (key) >= size)
    return false;
  strcpy (buf, key);
  size_t n = 0;
  char *p = buf;
  for (;;)
    {
      if (n == 4)
        return false;
      parts[n++] = p;
      char *colon = strchr (p, ':');
      if (colon == NULL)
        break;
      *colon = '\0';
      p = colon + 1;
    }
  if (n != 4)
    return false;
  for (size_t i = 0; i < 4; i++)
    if (parts[i][0] == '\0')
      return false;
  return true;
}

/* "aliases" is a comma-separated list of DISTRO/RELEASE[/VARIANT]: "debian/12" lets a user
 * name bookworm by its number. */
static bool
release_alias_matches (const char *aliases, const char *distro, const char *release)
{
  if (aliases == NULL)
    return false;
  size_t dlen = strlen (distro), rlen = strlen (release);
  for (const char *a = aliases; *a;)
    {
      size_t n = strcspn (a, ",");
      const char *slash = memchr (a, '/', n);
      if (slash && (size_t) (slash - a) == dlen && strncasecmp (a, distro, dlen) == 0)
        {
          const char *r = slash + 1;
          size_t rest = n - (size_t) (r - a);
          size_t rn = strcspn (r, "/,");
          if (rn > rest)
            rn = rest;
          if (rn == rlen && strncasecmp (r, release, rlen) == 0)
            return true;
        }
      a += n;
      if (*a == ',')
        a++;
    }
  return false;
}

static bool
is_sha256_hex (const char *s)
{
  if (s == NULL || strlen (s) != 64)
    return false;
  for (; *s; s++)
    if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
      return false;
  return true;
}

/* The root filesystem item of one version: the "root.tar.xz" entry, or one whose ftype
 * says so; only with a sha256, since an item we cannot check is not one we can use. */
static json_t *
root_item (json_t *version)
{
  json_t *items = json_object_get (version, "items");
  json_t *item = json_object_get (items, "root.tar.xz");
  if (!json_is_object (item))
    {
      item = NULL;
      const char *name;
      json_t *it;
      json_object_foreach (items, name, it)
        {
          const char *ftype = json_string_value (json_object_get (it, "ftype"));
          if (ftype && strcmp (ftype, "root.tar.xz") == 0)
            {
              item = it;
              break;
            }
        }
    }
  if (item == NULL || json_object_get (item, "sha256") == NULL)
    return NULL;
  return item;
}

/* Fill *out from the newest usable version of `product`. */
static int
choose_version (const char *key, json_t *product, kp_lxc_image *out, kp_error **err)
{
  json_t *versions = json_object_get (product, "versions");
  const char *best = NULL;
  json_t *best_item = NULL;
  const char *name;
  json_t *version;
  json_object_foreach (versions, name, version)
    {
      json_t *item = root_item (version);
      if (item && (best == NULL || strcmp (name, best) > 0))
        best = name, best_item = item;
    }
  if (best == NULL)
    {
      kp_error_set (err, KP_EXIT_FAILURE, "%s has no build with a root.tar.xz", key);
      kp_error_hint (err, "the server publishes it only in other forms (virtual machine "
                          "disks, squashfs); choose another release or variant");
      return -1;
    }
  const char *sha256 = json_string_value (json_object_get (best_item, "sha256"));
  if (!is_sha256_hex (sha256))
    return kp_error_set (err, KP_EXIT_FAILURE, "refusing %s %s: its root.tar.xz has a "
                         "malformed sha256 (64 lowercase hexadecimal digits expected)", key,
                         best);
  const char *path = json_string_value (json_object_get (best_item, "path"));
  if (path == NULL)
    return kp_error_set (err, KP_EXIT_FAILURE, "refusing %s %s: its root.tar.xz has no "
                         "path", key, best);
  const char *why = unsafe_path_reason (path);
  if (why)
    return kp_error_set (err, KP_EXIT_FAILURE, "refusing %s %s: the path '%s' of its "
                         "root.tar.xz is unsafe: %s", key, best, path, why);
  json_t *size = json_object_get (best_item, "size");
  if (size && (!json_is_integer (size) || json_integer_value (size) < 0))
    return kp_error_set (err, KP_EXIT_FAILURE, "refusing %s %s: the size of its root.tar.xz "
                         "is not a non-negative integer", key, best);
  out->product = xstrdup (key);
  out->version = xstrdup (best);
  out->path = xstrdup (path);
  out->sha256 = xasprintf ("sha256:%s", sha256);
  out->size = size ? (uint64_t) json_integer_value (size) : 0;
  return 0;
}

typedef struct match_state
{
  name_set distros, releases, arches, variants;
  const char *chosen_key;
  json_t *chosen;
  const char *other_key; /* a second product that matched too */
} match_state;

static void
match_product (match_state *m, const char *key, json_t *product, const char *distro,
               const char *release, const char *arch, const char *variant)
{
  char buf[512];
  char *parts[4];
  if (!json_is_object (product) || !split_product_key (key, buf, sizeof buf, parts))
    return;
  name_set_add (&m->distros, parts[0]);
  const char *os = json_string_value (json_object_get (product, "os"));
  if (strcasecmp (parts[0], distro) != 0 && (os == NULL || strcasecmp (os, distro) != 0))
    return;
  name_set_add (&m->releases, parts[1]);
  const char *rel = json_string_value (json_object_get (product, "release"));
  if (strcasecmp (parts[1], release) != 0 && (rel == NULL || strcasecmp (rel, release) != 0)
      && !release_alias_matches (json_string_value (json_object_get (product, "aliases")),
                                 parts[0], release))
    return;
  name_set_add (&m->arches, parts[2]);
  if (strcmp (parts[2], arch) != 0)
    return;
  name_set_add (&m->variants, parts[3]);
  if (strcmp (parts[3], variant) != 0)
    return;
  if (m->chosen == NULL)
    m->chosen = product, m->chosen_key = key;
  else if (m->other_key == NULL)
    m->other_key = key;
}

static int
explain_no_match (match_state *m, const char *distro, const char *release, const char *arch,
                  const char *variant, kp_error **err)
{
  kp_cleanup_free char *list = NULL;
  if (m->releases.n == 0)
    {
      list = name_set_join (&m->distros);
      kp_error_set (err, KP_EXIT_FAILURE, "the server has no distribution '%s'", distro);
      kp_error_hint (err, "distributions offered: %s", list);
    }
  else if (m->arches.n == 0)
    {
      list = name_set_join (&m->releases);
      kp_error_set (err, KP_EXIT_FAILURE, "the server has no release '%s' of %s", release,
                    distro);
      kp_error_hint (err, "releases of %s: %s", distro, list);
    }
  else if (m->variants.n == 0)
    {
      list = name_set_join (&m->arches);
      kp_error_set (err, KP_EXIT_FAILURE, "%s/%s is not built for %s", distro, release, arch);
      kp_error_hint (err, "architectures offered: %s", list);
    }
  else
    {
      list = name_set_join (&m->variants);
      kp_error_set (err, KP_EXIT_FAILURE, "%s/%s has no variant '%s' for %s", distro, release,
                    variant, arch);
      kp_error_hint (err, "variants offered: %s", list);
    }
  return -1;
}

int
kp_simplestreams_find (const char *products_json, size_t len, const char *distro,
                       const char *release, const char *arch, const char *variant,
                       kp_lxc_image *out, kp_error **err)
{
  memset (out, 0, sizeof *out);
  kp_cleanup_json json_t *doc = load_object (products_json, len, "simplestreams product list",
                                             err);
  if (doc == NULL)
    return -1;
  json_t *products = json_object_get (doc, "products");
  if (!json_is_object (products))
    return kp_error_set (err, KP_EXIT_FAILURE, "the simplestreams product list has no "
                         "\"products\" object");

  match_state m = { 0 };
  const char *key;
  json_t *product;
  json_object_foreach (products, key, product)
    match_product (&m, key, product, distro, release, arch, variant);

  int rc;
  if (m.chosen == NULL)
    rc = explain_no_match (&m, distro, release, arch, variant, err);
  else if (m.other_key)
    {
      /* Only possible through aliases or the os/release fields; guessing would make the
         choice depend on the server's key order. */
      rc = kp_error_set (err, KP_EXIT_FAILURE, "%s/%s is ambiguous on this server: both %s "
                         "and %s match", distro, release, m.chosen_key, m.other_key);
      kp_error_hint (err, "name the release as the product key spells it");
    }
  else
    rc = choose_version (m.chosen_key, m.chosen, out, err);
  if (rc < 0)
    kp_lxc_image_clear (out);
  name_set_clear (&m.distros);
  name_set_clear (&m.releases);
  name_set_clear (&m.arches);
  name_set_clear (&m.variants);
  return rc;
}
