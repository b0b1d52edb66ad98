/* oci.c — OCI and Docker manifests, indexes and platforms: parsing only, no network.
 *
 * The bytes come from a registry or a layout on disk and are checked against their digest
 * before they get here, but their content is still the publisher's: every field used is
 * type-checked, and anything that is not a container image (schema 1, artifacts, foreign
 * or encrypted layers) is refused by name rather than half-understood. */
#include "image/registry.h"

#include "base/json.h"
#include "base/buf.h"
#include "hash/digest.h"

#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

void
kp_platform_clear (kp_platform *p)
{
  free (p->os);
  free (p->architecture);
  free (p->variant);
  memset (p, 0, sizeof *p);
}

void
kp_platform_host (kp_platform *out)
{
  memset (out, 0, sizeof *out);
  out->os = xstrdup ("linux");
#if defined(__x86_64__)
  out->architecture = xstrdup ("amd64");
#elif defined(__aarch64__)
  out->architecture = xstrdup ("arm64");
  out->variant = xstrdup ("v8");
#elif defined(__arm__)
  out->architecture = xstrdup ("arm");
  out->variant = xstrdup ("v7");
#elif defined(__i386__)
  out->architecture = xstrdup ("386");
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  out->architecture = xstrdup ("ppc64le");
#elif defined(__s390x__)
  out->architecture = xstrdup ("s390x");
#elif defined(__riscv) && __riscv_xlen == 64
  out->architecture = xstrdup ("riscv64");
#else
  struct utsname u;
  uname (&u);
  out->architecture = xstrdup (u.machine);
#endif
}

char *
kp_platform_format (const kp_platform *p)
{
  if (p->variant && *p->variant)
    return xasprintf ("%s/%s/%s", p->os ? p->os : "?", p->architecture ? p->architecture : "?",
                      p->variant);
  return xasprintf ("%s/%s", p->os ? p->os : "?", p->architecture ? p->architecture : "?");
}

static bool
platform_word (const char *s, size_t n)
{
  if (n == 0 || n > 64)
    return false;
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'
          || s[i] == '-' || s[i] == '.'))
      return false;
  return true;
}

int
kp_platform_parse (const char *text, kp_platform *out, kp_error **err)
{
  memset (out, 0, sizeof *out);
  const char *a = strchr (text, '/');
  const char *v = a ? strchr (a + 1, '/') : NULL;
  size_t os_len = a ? (size_t) (a - text) : 0;
  size_t arch_len = a ? (v ? (size_t) (v - a - 1) : strlen (a + 1)) : 0;
  if (a == NULL || !platform_word (text, os_len) || !platform_word (a + 1, arch_len)
      || (v && !platform_word (v + 1, strlen (v + 1))))
    {
      kp_error_set (err, KP_EXIT_FAILURE, "'%s' is not a platform", text);
      kp_error_hint (err, "the form is OS/ARCH[/VARIANT], e.g. linux/amd64 or linux/arm64/v8");
      return -1;
    }
  out->os = xstrndup (text, os_len);
  out->architecture = xstrndup (a + 1, arch_len);
  out->variant = v ? xstrdup (v + 1) : NULL;
  return 0;
}

void
kp_oci_descriptor_clear (kp_oci_descriptor *d)
{
  free (d->media_type);
  free (d->digest);
  kp_platform_clear (&d->platform);
  memset (d, 0, sizeof *d);
}

void
kp_oci_image_clear (kp_oci_image *img)
{
  free (img->digest);
  free (img->manifest_digest);
  free (img->manifest_media_type);
  json_decref (img->manifest);
  kp_oci_descriptor_clear (&img->config);
  json_decref (img->config_json);
  for (size_t i = 0; i < img->n_layers; i++)
    kp_oci_descriptor_clear (&img->layers[i]);
  free (img->layers);
  kp_platform_clear (&img->platform);
  memset (img, 0, sizeof *img);
}

static int
parse_descriptor (json_t *j, const char *what, kp_oci_descriptor *d, kp_error **err)
{
  memset (d, 0, sizeof *d);
  const char *digest = json_string_value (json_object_get (j, "digest"));
  json_t *size = json_object_get (j, "size");
  const char *mt = json_string_value (json_object_get (j, "mediaType"));
  if (digest == NULL || !kp_digest_is_valid (digest, NULL))
    return kp_error_set (err, KP_EXIT_FAILURE, "the manifest's %s has no valid digest", what);
  if (!json_is_integer (size) || json_integer_value (size) < 0)
    return kp_error_set (err, KP_EXIT_FAILURE, "the manifest's %s has no valid size", what);
  d->digest = xstrdup (digest);
  d->size = (uint64_t) json_integer_value (size);
  d->media_type = mt ? xstrdup (mt) : NULL;
  json_t *p = json_object_get (j, "platform");
  if (json_is_object (p))
    {
      const char *os = json_string_value (json_object_get (p, "os"));
      const char *arch = json_string_value (json_object_get (p, "architecture"));
      const char *var = json_string_value (json_object_get (p, "variant"));
      d->platform.os = os ? xstrdup (os) : NULL;
      d->platform.architecture = arch ? xstrdup (arch) : NULL;
      d->platform.variant = var && *var ? xstrdup (var) : NULL;
    }
  return 0;
}

static bool
layer_type_ok (const char *mt)
{
  static const char *const ok[] = {
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.diff.tar",
  };
  if (mt == NULL)
    return true; /* OCI allows a missing mediaType in old manifests; libarchive detects */
  for (size_t i = 0; i < KP_N_ELEMENTS (ok); i++)
    if (strcmp (mt, ok[i]) == 0)
      return true;
  return false;
}

/* Does `have` (from an index) serve `want`? os and architecture must match; the variant
 * too when both name one (arm64 without a variant is v8). */
static bool
platform_matches (const kp_platform *have, const kp_platform *want)
{
  if (have->os == NULL || have->architecture == NULL)
    return false;
  /* Attestations and signatures sit in indexes as "unknown/unknown": never an image. */
  if (strcmp (have->os, "unknown") == 0 || strcmp (have->architecture, "unknown") == 0)
    return false;
  if (strcmp (have->os, want->os) != 0 || strcmp (have->architecture, want->architecture) != 0)
    return false;
  const char *hv = have->variant, *wv = want->variant;
  if (strcmp (want->architecture, "arm64") == 0)
    {
      hv = hv ? hv : "v8";
      wv = wv ? wv : "v8";
    }
  return hv == NULL || wv == NULL || strcmp (hv, wv) == 0;
}

static bool
is_known_type (const char *mt)
{
  return strcmp (mt, KP_MT_OCI_MANIFEST) == 0 || strcmp (mt, KP_MT_OCI_INDEX) == 0
         || strcmp (mt, KP_MT_DOCKER_MANIFEST) == 0 || strcmp (mt, KP_MT_DOCKER_LIST) == 0;
}

static bool
config_type_ok (const char *mt)
{
  return mt == NULL || strcmp (mt, "application/vnd.oci.image.config.v1+json") == 0
         || strcmp (mt, "application/vnd.docker.container.image.v1+json") == 0;
}

int
kp_oci_parse_manifest (const char *bytes, size_t len, const char *media_type,
                       const kp_platform *want, bool *is_index, kp_oci_descriptor *chosen,
                       kp_oci_image *img, kp_error **err)
{
  *is_index = false;
  json_error_t jerr;
  kp_cleanup_json json_t *doc = json_loadb (bytes, len, JSON_REJECT_DUPLICATES, &jerr);
  if (!json_is_object (doc))
    return kp_error_set (err, KP_EXIT_FAILURE, "the manifest is not a JSON object: %s",
                         doc ? "wrong type" : jerr.text);
  json_t *version = json_object_get (doc, "schemaVersion");
  if (json_is_integer (version) && json_integer_value (version) == 1)
    {
      kp_error_set (err, KP_EXIT_FAILURE, "the manifest is Docker schema 1, which karapace "
                    "does not read");
      kp_error_hint (err, "schema 1 is deprecated; push the image again with a current "
                          "docker, podman or skopeo (they write schema 2 or OCI)");
      return -1;
    }
  /* The document's own mediaType decides; the Content-Type the server sent is a fallback,
     used only when it is one of ours (some servers send application/json), without its
     parameters. */
  const char *mt = json_string_value (json_object_get (doc, "mediaType"));
  kp_cleanup_free char *header_type = NULL;
  if (mt == NULL && media_type)
    {
      header_type = xstrndup (media_type, strcspn (media_type, "; \t"));
      if (kp_str_has_prefix (header_type, "application/vnd.docker.distribution.manifest.v1+"))
        {
          kp_error_set (err, KP_EXIT_FAILURE, "the manifest is Docker schema 1 (%s), which "
                        "karapace does not read", header_type);
          return -1;
        }
      if (is_known_type (header_type))
        mt = header_type;
    }
  json_t *manifests = json_object_get (doc, "manifests");
  bool index = (mt && (strcmp (mt, KP_MT_OCI_INDEX) == 0 || strcmp (mt, KP_MT_DOCKER_LIST) == 0))
               || (mt == NULL && json_is_array (manifests));
  if (index)
    {
      if (!json_is_array (manifests))
        return kp_error_set (err, KP_EXIT_FAILURE, "the image index has no manifest list");
      kp_buf offered = KP_BUF_INIT;
      size_t i;
      json_t *m;
      json_array_foreach (manifests, i, m)
        {
          kp_oci_descriptor d;
          if (parse_descriptor (m, "index entry", &d, err) < 0)
            {
              kp_buf_clear (&offered);
              return -1;
            }
          if (d.platform.os && strcmp (d.platform.os, "unknown") != 0)
            {
              kp_cleanup_free char *p = kp_platform_format (&d.platform);
              kp_buf_printf (&offered, "%s%s", offered.len ? ", " : "", p);
            }
          if (platform_matches (&d.platform, want))
            {
              *chosen = d;
              *is_index = true;
              kp_buf_clear (&offered);
              return 0;
            }
          kp_oci_descriptor_clear (&d);
        }
      kp_cleanup_free char *w = kp_platform_format (want);
      kp_error_set (err, KP_EXIT_FAILURE, "the image is not built for %s", w);
      kp_error_hint (err, "platforms offered: %s; choose one with --platform",
                     offered.len ? offered.data : "none");
      kp_buf_clear (&offered);
      return -1;
    }
  if (mt && strcmp (mt, KP_MT_OCI_MANIFEST) != 0 && strcmp (mt, KP_MT_DOCKER_MANIFEST) != 0)
    {
      kp_error_set (err, KP_EXIT_FAILURE, "unsupported manifest type '%s'", mt);
      kp_error_hint (err, "supported: OCI image manifests and indexes, Docker schema 2 "
                          "manifests and manifest lists");
      return -1;
    }
  json_t *config = json_object_get (doc, "config");
  json_t *layers = json_object_get (doc, "layers");
  if (!json_is_object (config) || !json_is_array (layers))
    return kp_error_set (err, KP_EXIT_FAILURE, "the image manifest lacks its config or "
                         "layers");
  if (parse_descriptor (config, "config", &img->config, err) < 0)
    return -1;
  if (!config_type_ok (img->config.media_type))
    {
      const char *artifact = json_string_value (json_object_get (doc, "artifactType"));
      kp_error_set (err, KP_EXIT_FAILURE, "the manifest describes %s '%s', not a container "
                    "image", artifact ? "an artifact of type" : "a config of type",
                    artifact ? artifact : img->config.media_type);
      kp_error_hint (err, "check the reference: it names something (a Helm chart, a "
                          "signature, an SBOM, …) that is not an image to run");
      return -1;
    }
  size_t n = json_array_size (layers);
  img->layers = xcalloc (n + 1, sizeof *img->layers);
  for (size_t i = 0; i < n; i++)
    {
      if (parse_descriptor (json_array_get (layers, i), "layer", &img->layers[i], err) < 0)
        return -1;
      img->n_layers = i + 1;
      if (!layer_type_ok (img->layers[i].media_type))
        {
          kp_error_set (err, KP_EXIT_FAILURE, "layer %zu has media type '%s', which karapace "
                        "does not unpack", i + 1, img->layers[i].media_type);
          kp_error_hint (err, "plain, gzip and zstd tar layers are supported; foreign, "
                              "non-distributable and encrypted layers are not");
          return -1;
        }
    }
  free (img->manifest_media_type);
  img->manifest_media_type = xstrdup (mt ? mt : KP_MT_OCI_MANIFEST);
  json_decref (img->manifest);
  img->manifest = json_incref (doc);
  return 0;
}
