/* simplestreams.c — choosing an image from an LXC server's simplestreams index. */
#include "image/simplestreams.h"

#include "base/json.h"
#include "base/buf.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/utsname.h>

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
#elif defined(__arm__)
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

int
kp_simplestreams_products_path (const char *index_json, size_t len, char **path,
                                kp_error **err)
{
  json_error_t jerr;
  json_t *doc = json_loadb (index_json, len, 0, &jerr);
  if (doc == NULL)
    return kp_error_set (err, KP_EXIT_FAILURE, "the simplestreams index is not JSON: %s "
                         "(line %d)", jerr.text, jerr.line);
  json_t *index = json_object_get (doc, "index");
  const char *key;
  json_t *v;
  json_object_foreach (index, key, v)
    {
      const char *dt = json_string_value (json_object_get (v, "datatype"));
      const char *p = json_string_value (json_object_get (v, "path"));
      if (dt && p && strcmp (dt, "image-downloads") == 0)
        {
          if (p[0] == '/' || strstr (p, "..") || strchr (p, '?') || strchr (p, '#'))
            {
              kp_error_set (err, KP_EXIT_FAILURE, "the simplestreams index names an unsafe "
                            "path '%s'", p);
              json_decref (doc);
              return -1;
            }
          *path = xstrdup (p);
          json_decref (doc);
          return 0;
        }
    }
  json_decref (doc);
  return kp_error_set (err, KP_EXIT_FAILURE, "the simplestreams index has no image-downloads "
                       "product list");
}

/* Collect distinct values into a comma-separated list. */
static void
add_unique (kp_buf *b, const char *value)
{
  if (value == NULL)
    return;
  kp_cleanup_free char *needle = xasprintf (", %s,", value);
  kp_cleanup_free char *hay = xasprintf (", %s,", b->data ? b->data : "");
  if (strstr (hay, needle))
    return;
  kp_buf_printf (b, "%s%s", b->len ? ", " : "", value);
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

int
kp_simplestreams_find (const char *products_json, size_t len, const char *distro,
                       const char *release, const char *arch, const char *variant,
                       kp_lxc_image *out, kp_error **err)
{
  memset (out, 0, sizeof *out);
  json_error_t jerr;
  json_t *doc = json_loadb (products_json, len, 0, &jerr);
  if (doc == NULL)
    return kp_error_set (err, KP_EXIT_FAILURE, "the simplestreams product list is not JSON: "
                         "%s (line %d)", jerr.text, jerr.line);
  json_t *products = json_object_get (doc, "products");
  kp_buf distros = KP_BUF_INIT, releases = KP_BUF_INIT, arches = KP_BUF_INIT,
         variants = KP_BUF_INIT;
  json_t *chosen = NULL;
  const char *chosen_key = NULL;
  const char *key;
  json_t *p;
  json_object_foreach (products, key, p)
    {
      /* DISTRO:RELEASE:ARCH:VARIANT */
      char *parts[4] = { 0 };
      kp_cleanup_free char *copy = xstrdup (key);
      char *save = NULL;
      size_t n = 0;
      for (char *t = strtok_r (copy, ":", &save); t && n < 4; t = strtok_r (NULL, ":", &save))
        parts[n++] = t;
      if (n != 4)
        continue;
      add_unique (&distros, parts[0]);
      if (strcasecmp (parts[0], distro) != 0)
        continue;
      bool rel_ok = strcasecmp (parts[1], release) == 0;
      const char *rel_alias = json_string_value (json_object_get (p, "release"));
      if (!rel_ok && rel_alias && strcasecmp (rel_alias, release) == 0)
        rel_ok = true;
      add_unique (&releases, parts[1]);
      if (!rel_ok)
        continue;
      add_unique (&arches, parts[2]);
      if (strcmp (parts[2], arch) != 0)
        continue;
      add_unique (&variants, parts[3]);
      if (strcmp (parts[3], variant) != 0)
        continue;
      chosen = p;
      chosen_key = key;
    }
  int rc = -1;
  if (chosen == NULL)
    {
      if (releases.len == 0)
        {
          kp_error_set (err, KP_EXIT_FAILURE, "the server has no distribution '%s'", distro);
          kp_error_hint (err, "distributions offered: %s", distros.data ? distros.data : "none");
        }
      else if (arches.len == 0)
        {
          kp_error_set (err, KP_EXIT_FAILURE, "the server has no release '%s' of %s", release,
                        distro);
          kp_error_hint (err, "releases of %s: %s", distro, releases.data);
        }
      else if (variants.len == 0)
        {
          kp_error_set (err, KP_EXIT_FAILURE, "%s/%s is not built for %s", distro, release,
                        arch);
          kp_error_hint (err, "architectures offered: %s", arches.data);
        }
      else
        {
          kp_error_set (err, KP_EXIT_FAILURE, "%s/%s has no variant '%s'", distro, release,
                        variant);
          kp_error_hint (err, "variants offered: %s", variants.data);
        }
      goto out;
    }
  {
    json_t *versions = json_object_get (chosen, "versions");
    const char *best = NULL;
    json_t *best_item = NULL;
    const char *vkey;
    json_t *v;
    json_object_foreach (versions, vkey, v)
      {
        json_t *item = json_object_get (json_object_get (v, "items"), "root.tar.xz");
        if (item == NULL || !is_sha256_hex (json_string_value (json_object_get (item, "sha256")))
            || !json_is_string (json_object_get (item, "path")))
          continue;
        if (best == NULL || strcmp (vkey, best) > 0)
          best = vkey, best_item = item;
      }
    if (best == NULL)
      {
        kp_error_set (err, KP_EXIT_FAILURE, "%s has no build with a root.tar.xz", chosen_key);
        goto out;
      }
    const char *path = json_string_value (json_object_get (best_item, "path"));
    if (path[0] == '/' || strstr (path, "..") || strchr (path, '?') || strchr (path, '#'))
      {
        kp_error_set (err, KP_EXIT_FAILURE, "the product list names an unsafe path '%s'", path);
        goto out;
      }
    out->product = xstrdup (chosen_key);
    out->version = xstrdup (best);
    out->path = xstrdup (path);
    out->sha256 = xasprintf ("sha256:%s", json_string_value (json_object_get (best_item,
                                                                              "sha256")));
    json_int_t size = json_integer_value (json_object_get (best_item, "size"));
    out->size = size > 0 ? (uint64_t) size : 0;
    rc = 0;
  }
out:
  kp_buf_clear (&distros);
  kp_buf_clear (&releases);
  kp_buf_clear (&arches);
  kp_buf_clear (&variants);
  json_decref (doc);
  return rc;
}
