/* Fuzz target for what registries and image servers send: manifests and indexes (with
 * platform selection), WWW-Authenticate challenges and simplestreams indexes. Every input
 * is either parsed or refused with a message; nothing else may happen. Debian Release and
 * Packages files too, and resolving a package set from them. */
#include "image/auth.h"
#include "image/deb822.h"
#include "image/debian.h"
#include "image/registry.h"
#include "image/simplestreams.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static void
expect_error (int r, kp_error *err)
{
  if (r < 0 && (err == NULL || err->message == NULL))
    abort ();
  kp_error_free (err);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  const char *text = (const char *) data;
  kp_platform want = { 0 };
  kp_platform_host (&want);
  bool is_index = false;
  kp_oci_descriptor chosen = { 0 };
  kp_oci_image img = { 0 };
  kp_error *err = NULL;
  int r = kp_oci_parse_manifest (text, size, NULL, &want, &is_index, &chosen, &img, &err);
  expect_error (r, err);
  if (r == 0 && is_index && (chosen.digest == NULL || chosen.platform.os == NULL))
    abort ();
  kp_oci_descriptor_clear (&chosen);
  kp_oci_image_clear (&img);
  kp_platform_clear (&want);

  char *copy = strndup (text, size);
  kp_auth_challenge ch;
  kp_auth_parse_challenge (copy, &ch);
  kp_auth_challenge_clear (&ch);
  char *decoded = NULL;
  size_t dlen = 0;
  if (kp_base64_decode (copy, &decoded, &dlen) == 0)
    free (decoded);
  free (copy);

  char *path = NULL;
  err = NULL;
  r = kp_simplestreams_products_path (text, size, &path, &err);
  expect_error (r, err);
  if (r == 0 && (path[0] == '/' || strstr (path, "..")))
    abort ();
  free (path);
  kp_lxc_image lxc;
  err = NULL;
  r = kp_simplestreams_find (text, size, "debian", "bookworm", "amd64", "default", &lxc, &err);
  expect_error (r, err);
  if (r == 0 && (strstr (lxc.path, "..") || strlen (lxc.sha256) != 71))
    abort ();
  kp_lxc_image_clear (&lxc);

  /* Debian control data: Release and Packages, and resolving what a Packages file says. */
  kp_release rel;
  err = NULL;
  r = kp_release_parse (text, size, &rel, &err);
  expect_error (r, err);
  if (r == 0)
    {
      for (size_t i = 0; i < rel.n_files; i++)
        if (rel.files[i].path[0] == '/' || strstr (rel.files[i].path, ".."))
          abort ();
      kp_release_clear (&rel);
    }
  kp_deb_index idx;
  err = NULL;
  r = kp_deb_index_parse (text, size, &idx, &err);
  expect_error (r, err);
  if (r == 0)
    {
      const kp_deb_package **picked = NULL;
      size_t n = 0;
      err = NULL;
      r = kp_deb_resolve (&idx, true, NULL, &picked, &n, &err);
      expect_error (r, err);
      free (picked);
      kp_deb_index_clear (&idx);
    }
  return 0;
}
