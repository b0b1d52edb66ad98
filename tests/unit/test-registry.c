/* Unit tests for the parsing side of image fetching: WWW-Authenticate challenges, auth.json
 * lookup, manifests and indexes with platform selection, simplestreams indexes, the image
 * part of config.toml, and the loopback rule of http.c. No network. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "image/auth.h"
#include "image/http.h"
#include "image/image-config.h"
#include "image/registry.h"
#include "image/simplestreams.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define H64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static char *
write_temp (const char *text)
{
  char *path = strdup ("/tmp/kp-test-registry-XXXXXX");
  int fd = mkstemp (path);
  assert_true (fd >= 0);
  assert_int_equal (write (fd, text, strlen (text)), (ssize_t) strlen (text));
  close (fd);
  return path;
}

static void
test_challenges (void **state)
{
  kp_auth_challenge c;
  assert_int_equal (kp_auth_parse_challenge (
                        "Bearer realm=\"https://auth.docker.io/token\",service=\"registry.docker.io\","
                        "scope=\"repository:library/debian:pull\"", &c), 0);
  assert_string_equal (c.scheme, "bearer");
  assert_string_equal (c.realm, "https://auth.docker.io/token");
  assert_string_equal (c.service, "registry.docker.io");
  assert_string_equal (c.scope, "repository:library/debian:pull");
  kp_auth_challenge_clear (&c);
  /* ghcr, quay: spaces after commas, scheme case. */
  assert_int_equal (kp_auth_parse_challenge ("bearer realm=\"https://ghcr.io/token\", "
                                             "service=\"ghcr.io\", scope=\"repository:o/r:pull\"",
                                             &c), 0);
  assert_string_equal (c.scheme, "bearer");
  assert_string_equal (c.service, "ghcr.io");
  kp_auth_challenge_clear (&c);
  assert_int_equal (kp_auth_parse_challenge ("Basic realm=\"karapace-test\"", &c), 0);
  assert_string_equal (c.scheme, "basic");
  assert_string_equal (c.realm, "karapace-test");
  assert_null (c.service);
  kp_auth_challenge_clear (&c);
  /* Escapes inside quoted strings, unquoted values. */
  assert_int_equal (kp_auth_parse_challenge ("Bearer realm=\"a\\\"b\",service=plain", &c), 0);
  assert_string_equal (c.realm, "a\"b");
  assert_string_equal (c.service, "plain");
  kp_auth_challenge_clear (&c);
  assert_int_equal (kp_auth_parse_challenge ("", &c), -1);
  kp_auth_challenge_clear (&c);
  assert_int_equal (kp_auth_parse_challenge (NULL, &c), -1);
}

static void
test_auth_files (void **state)
{
  char *b64 = kp_base64_encode ("alice:s3:cret", 13);
  char *text = NULL;
  asprintf (&text, "{\"auths\":{\"reg.example:5000\":{\"auth\":\"%s\"},"
                   "\"https://index.docker.io/v1/\":{\"auth\":\"%s\"},"
                   "\"quay.io/team\":{\"auth\":\"%s\"}}}", b64, b64, b64);
  char *file = write_temp (text);
  char *u = NULL, *p = NULL, *src = NULL;
  assert_int_equal (kp_auth_lookup (file, "reg.example:5000", "x/y", &u, &p, &src, NULL), 1);
  assert_string_equal (u, "alice");
  assert_string_equal (p, "s3:cret");
  assert_string_equal (src, file);
  free (u), free (p), free (src);
  u = p = src = NULL;
  assert_int_equal (kp_auth_lookup (file, "docker.io", "library/debian", &u, &p, &src, NULL), 1);
  free (u), free (p), free (src);
  u = p = src = NULL;
  assert_int_equal (kp_auth_lookup (file, "quay.io", "team/app", &u, &p, &src, NULL), 1);
  free (u), free (p), free (src);
  u = p = src = NULL;
  assert_int_equal (kp_auth_lookup (file, "quay.io", "other/app", &u, &p, &src, NULL), 0);
  assert_int_equal (kp_auth_lookup (file, "other.example", "a", &u, &p, &src, NULL), 0);
  unlink (file);
  free (file);
  /* The standard places, in order. */
  char dir[] = "/tmp/kp-test-authdir-XXXXXX";
  assert_non_null (mkdtemp (dir));
  char *docker_dir = NULL, *docker = NULL;
  asprintf (&docker_dir, "%s/.docker", dir);
  mkdir (docker_dir, 0700);
  asprintf (&docker, "%s/config.json", docker_dir);
  FILE *f = fopen (docker, "w");
  fprintf (f, "{\"auths\":{\"reg.example:5000\":{\"auth\":\"%s\"}}}", b64);
  fclose (f);
  setenv ("HOME", dir, 1);
  setenv ("XDG_CONFIG_HOME", dir, 1);
  setenv ("XDG_RUNTIME_DIR", dir, 1);
  unsetenv ("REGISTRY_AUTH_FILE");
  assert_int_equal (kp_auth_lookup (NULL, "reg.example:5000", "a", &u, &p, &src, NULL), 1);
  assert_string_equal (src, docker);
  free (u), free (p), free (src);
  /* Malformed: named. */
  char *bad = write_temp ("{\"auths\":{\"h\":{\"auth\":\"!!!\"}}}");
  kp_error *err = NULL;
  assert_int_equal (kp_auth_lookup (bad, "h", "r", &u, &p, &src, &err), -1);
  assert_non_null (strstr (err->message, bad));
  kp_error_free (err);
  unlink (bad);
  free (bad);
  unlink (docker);
  rmdir (docker_dir);
  rmdir (dir);
  free (docker);
  free (docker_dir);
  free (text);
  free (b64);
}

static const char *index_json
    = "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\","
      "\"manifests\":["
      "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:" H64 "\","
      "\"size\":100,\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"}},"
      "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:"
      "1111111111111111111111111111111111111111111111111111111111111111\","
      "\"size\":101,\"platform\":{\"os\":\"linux\",\"architecture\":\"arm64\",\"variant\":\"v8\"}},"
      "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:"
      "2222222222222222222222222222222222222222222222222222222222222222\","
      "\"size\":102,\"platform\":{\"os\":\"unknown\",\"architecture\":\"unknown\"}}]}";

static void
test_index_selection (void **state)
{
  kp_platform want = { 0 };
  assert_int_equal (kp_platform_parse ("linux/arm64", &want, NULL), 0);
  bool is_index = false;
  kp_oci_descriptor chosen = { 0 };
  kp_oci_image img = { 0 };
  assert_int_equal (kp_oci_parse_manifest (index_json, strlen (index_json), NULL, &want,
                                           &is_index, &chosen, &img, NULL), 0);
  assert_true (is_index);
  assert_int_equal (chosen.size, 101); /* arm64 without a variant is v8 */
  kp_oci_descriptor_clear (&chosen);
  kp_platform_clear (&want);

  assert_int_equal (kp_platform_parse ("linux/s390x", &want, NULL), 0);
  kp_error *err = NULL;
  assert_int_equal (kp_oci_parse_manifest (index_json, strlen (index_json), NULL, &want,
                                           &is_index, &chosen, &img, &err), -1);
  assert_non_null (strstr (err->message, "not built for linux/s390x"));
  assert_non_null (strstr (err->hint, "linux/amd64, linux/arm64/v8"));
  assert_null (strstr (err->hint, "unknown"));
  kp_error_free (err);
  kp_platform_clear (&want);

  assert_int_equal (kp_platform_parse ("linux/arm64/v7", &want, NULL), 0);
  err = NULL;
  assert_int_equal (kp_oci_parse_manifest (index_json, strlen (index_json), NULL, &want,
                                           &is_index, &chosen, &img, &err), -1);
  kp_error_free (err);
  kp_platform_clear (&want);
  err = NULL;
  assert_int_equal (kp_platform_parse ("linux", &want, &err), -1);
  kp_error_free (err);
  kp_oci_image_clear (&img);
}

static void
test_image_manifest (void **state)
{
  const char *m
      = "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.docker.distribution.manifest.v2+json\","
        "\"config\":{\"mediaType\":\"application/vnd.docker.container.image.v1+json\",\"size\":7,"
        "\"digest\":\"sha256:" H64 "\"},\"layers\":["
        "{\"mediaType\":\"application/vnd.docker.image.rootfs.diff.tar.gzip\",\"size\":10,"
        "\"digest\":\"sha256:" H64 "\"},"
        "{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+zstd\",\"size\":11,"
        "\"digest\":\"sha256:" H64 "\"}]}";
  kp_platform want = { 0 };
  kp_platform_host (&want);
  bool is_index = true;
  kp_oci_descriptor chosen = { 0 };
  kp_oci_image img = { 0 };
  assert_int_equal (kp_oci_parse_manifest (m, strlen (m), NULL, &want, &is_index, &chosen, &img,
                                           NULL), 0);
  assert_false (is_index);
  assert_int_equal (img.n_layers, 2);
  assert_int_equal (img.layers[1].size, 11);
  assert_int_equal (img.config.size, 7);
  kp_oci_image_clear (&img);

  const char *foreign
      = "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
        "\"config\":{\"size\":7,\"digest\":\"sha256:" H64 "\"},\"layers\":["
        "{\"mediaType\":\"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip\",\"size\":1,"
        "\"digest\":\"sha256:" H64 "\"}]}";
  kp_error *err = NULL;
  assert_int_equal (kp_oci_parse_manifest (foreign, strlen (foreign), NULL, &want, &is_index,
                                           &chosen, &img, &err), -1);
  assert_non_null (strstr (err->message, "foreign"));
  kp_error_free (err);
  kp_oci_image_clear (&img);

  static const char *const broken[] = {
    "not json", "[]", "{\"layers\":[]}",
    "{\"config\":{\"size\":1,\"digest\":\"md5:00\"},\"layers\":[]}",
    "{\"mediaType\":\"application/vnd.docker.distribution.manifest.v1+json\"}",
  };
  for (size_t i = 0; i < sizeof broken / sizeof *broken; i++)
    {
      err = NULL;
      assert_int_equal (kp_oci_parse_manifest (broken[i], strlen (broken[i]), NULL, &want,
                                               &is_index, &chosen, &img, &err), -1);
      assert_non_null (err);
      kp_error_free (err);
      kp_oci_image_clear (&img);
    }
  kp_platform_clear (&want);
}

static void
test_loopback (void **state)
{
  assert_true (kp_http_host_is_loopback ("127.0.0.1:5000"));
  assert_true (kp_http_host_is_loopback ("127.9.8.7"));
  assert_true (kp_http_host_is_loopback ("localhost:80"));
  assert_true (kp_http_host_is_loopback ("[::1]:5000"));
  assert_true (kp_http_host_is_loopback ("::1"));
  assert_false (kp_http_host_is_loopback ("128.0.0.1"));
  assert_false (kp_http_host_is_loopback ("localhost.example.org"));
  assert_false (kp_http_host_is_loopback ("[::2]:5000"));
  assert_false (kp_http_host_is_loopback (""));
  /* Refused before any connection. */
  kp_http *h = kp_http_new ();
  kp_http_request req = { .url = "http://192.0.2.1/x" };
  kp_http_response resp = { 0 };
  kp_error *err = NULL;
  assert_int_equal (kp_http_get (h, &req, &resp, &err), -1);
  assert_non_null (strstr (err->message, "refusing plain HTTP"));
  kp_error_free (err);
  kp_http_free (h);
}

static const char *products
    = "{\"format\":\"products:1.0\",\"products\":{"
      "\"debian:bookworm:amd64:default\":{\"os\":\"Debian\",\"release\":\"bookworm\","
      "\"versions\":{"
      "\"20241119_05:24\":{\"items\":{\"root.tar.xz\":{\"ftype\":\"root.tar.xz\","
      "\"path\":\"images/debian/bookworm/amd64/default/20241119_05:24/rootfs.tar.xz\","
      "\"sha256\":\"" H64 "\",\"size\":1000}}},"
      "\"20241120_05:24\":{\"items\":{\"root.tar.xz\":{\"ftype\":\"root.tar.xz\","
      "\"path\":\"images/debian/bookworm/amd64/default/20241120_05:24/rootfs.tar.xz\","
      "\"sha256\":\"1111111111111111111111111111111111111111111111111111111111111111\",\"size\":2000}}},"
      "\"20241121_05:24\":{\"items\":{\"lxd.tar.xz\":{\"ftype\":\"lxd.tar.xz\",\"path\":\"x\"}}}}},"
      "\"debian:bookworm:arm64:default\":{\"versions\":{}},"
      "\"debian:bookworm:amd64:cloud\":{\"versions\":{}},"
      "\"ubuntu:noble:amd64:default\":{\"versions\":{}}}}";

static void
test_simplestreams (void **state)
{
  const char *index = "{\"index\":{\"images\":{\"datatype\":\"image-downloads\","
                      "\"path\":\"streams/v1/images.json\"},\"other\":{\"datatype\":\"x\",\"path\":\"y\"}}}";
  char *path = NULL;
  assert_int_equal (kp_simplestreams_products_path (index, strlen (index), &path, NULL), 0);
  assert_string_equal (path, "streams/v1/images.json");
  free (path);
  const char *evil = "{\"index\":{\"i\":{\"datatype\":\"image-downloads\",\"path\":\"../x\"}}}";
  kp_error *err = NULL;
  assert_int_equal (kp_simplestreams_products_path (evil, strlen (evil), &path, &err), -1);
  kp_error_free (err);

  kp_lxc_image img;
  assert_int_equal (kp_simplestreams_find (products, strlen (products), "debian", "bookworm",
                                           "amd64", "default", &img, NULL), 0);
  /* The newest version that has a root.tar.xz. */
  assert_string_equal (img.version, "20241120_05:24");
  assert_string_equal (img.sha256, "sha256:1111111111111111111111111111111111111111111111111111111111111111");
  assert_int_equal (img.size, 2000);
  kp_lxc_image_clear (&img);

  struct
  {
    const char *d, *r, *a, *v, *msg, *hint;
  } bad[] = {
    { "arch", "x", "amd64", "default", "no distribution 'arch'", "debian, ubuntu" },
    { "debian", "buster", "amd64", "default", "no release 'buster'", "bookworm" },
    { "debian", "bookworm", "s390x", "default", "not built for s390x", "amd64, arm64" },
    { "debian", "bookworm", "amd64", "tiny", "no variant 'tiny'", "default, cloud" },
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    {
      err = NULL;
      assert_int_equal (kp_simplestreams_find (products, strlen (products), bad[i].d, bad[i].r,
                                               bad[i].a, bad[i].v, &img, &err), -1);
      assert_non_null (strstr (err->message, bad[i].msg));
      assert_non_null (strstr (err->hint, bad[i].hint));
      kp_error_free (err);
    }
  assert_string_not_equal (kp_lxc_arch_host (), "unknown");
}

static void
test_config (void **state)
{
  char *file = write_temp ("[policy]\nallowed_mount_prefixes = [\"/tmp\"]\n"
                           "[images]\nlxc_server = \"http://127.0.0.1:8080\"\n"
                           "[images.aliases]\n\"mine/one\" = \"docker://reg.example/me/one:1\"\n"
                           "[registries.\"reg.example:5000\"]\ninsecure = true\n"
                           "mirrors = [\"mirror.example:5000/path\"]\n"
                           "[mirrors]\ndebian = \"http://deb.example/debian\"\n");
  kp_image_config c;
  kp_error *err = NULL;
  assert_int_equal (kp_image_config_load (file, &c, &err), 0);
  assert_string_equal (c.lxc_server, "http://127.0.0.1:8080");
  assert_string_equal (kp_image_aliases_lookup (c.aliases, "mine/one"),
                       "docker://reg.example/me/one:1");
  assert_non_null (kp_image_aliases_lookup (c.aliases, "debian/bookworm"));
  const kp_registry_config *rc = kp_image_config_registry (&c, "reg.example:5000");
  assert_non_null (rc);
  assert_true (rc->insecure);
  assert_string_equal (rc->mirrors[0], "mirror.example:5000/path");
  assert_null (kp_image_config_registry (&c, "other"));
  assert_string_equal (c.debian_mirror, "http://deb.example/debian");
  assert_string_equal (c.ubuntu_mirror, "http://archive.ubuntu.com/ubuntu");
  kp_image_config_clear (&c);
  unlink (file);
  free (file);

  struct
  {
    const char *text, *where;
  } bad[] = {
    { "[images]\nlxc_servr = \"x\"\n", ":2:1" },
    { "[images]\nlxc_server = 5\n", ":2:14" },
    { "[images.aliases]\n\"x/y\" = \"ftp://nope\"\n", ":2:9" },
    { "[registries.\"UPPER\"]\ninsecure = true\n", ":1:" },
    { "[registries.\"h\"]\ninsecure = \"yes\"\n", ":2:12" },
    { "[mirrors]\ndebian = \"ftp://x\"\n", ":2:10" },
    { "[other]\n", ":1:2" },
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    {
      file = write_temp (bad[i].text);
      err = NULL;
      assert_int_equal (kp_image_config_load (file, &c, &err), -1);
      assert_int_equal (err->status, KP_EXIT_MANIFEST);
      char *described = kp_error_describe (err);
      if (strstr (described, bad[i].where) == NULL)
        fail_msg ("case %zu: '%s' lacks '%s'", i, described, bad[i].where);
      free (described);
      kp_error_free (err);
      unlink (file);
      free (file);
    }
  /* A missing default file is fine; a missing explicit one is not. */
  setenv ("KARAPACE_CONFIG", "/nonexistent/karapace.toml", 1);
  unsetenv ("KARAPACE_CONFIG");
  setenv ("XDG_CONFIG_HOME", "/nonexistent", 1);
  assert_int_equal (kp_image_config_load (NULL, &c, NULL), 0);
  assert_null (c.path);
  kp_image_config_clear (&c);
  err = NULL;
  assert_int_equal (kp_image_config_load ("/nonexistent/x.toml", &c, &err), -1);
  kp_error_free (err);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_challenges),
    cmocka_unit_test (test_auth_files),
    cmocka_unit_test (test_index_selection),
    cmocka_unit_test (test_image_manifest),
    cmocka_unit_test (test_loopback),
    cmocka_unit_test (test_simplestreams),
    cmocka_unit_test (test_config),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
