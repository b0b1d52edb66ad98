/* Unit tests for the registry client: WWW-Authenticate challenges, auth.json lookup in the
 * places podman and docker use, manifests and indexes with platform selection, the
 * loopback rule of http.c, and whole exchanges with a small HTTP/1.1 server forked on
 * 127.0.0.1 (tokens that expire, redirects that must not carry the token, a transfer cut
 * in the middle and resumed, a corrupt blob, a server that ignores Range). No network
 * beyond loopback. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "base/buf.h"
#include "hash/digest.h"
#include "image/auth.h"
#include "image/http.h"
#include "image/registry.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#define H16 "0123456789abcdef"
#define H64 H16 H16 H16 H16
#define D1 "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define D2 "sha256:2222222222222222222222222222222222222222222222222222222222222222"
#define D3 "sha256:3333333333333333333333333333333333333333333333333333333333333333"

static char *
write_file (const char *path, const char *text)
{
  FILE *f = fopen (path, "w");
  assert_non_null (f);
  fputs (text, f);
  fclose (f);
  return strdup (path);
}

static char *
write_temp (const char *text)
{
  char path[] = "/tmp/kp-test-registry-XXXXXX";
  int fd = mkstemp (path);
  assert_true (fd >= 0);
  close (fd);
  return write_file (path, text);
}

static bool
contains (const char *haystack, const char *needle)
{
  if (haystack && strstr (haystack, needle))
    return true;
  print_error ("'%s' lacks '%s'\n", haystack ? haystack : "(null)", needle);
  return false;
}

/* ---- WWW-Authenticate ---- */

static void
test_challenges (void **state)
{
  static const struct
  {
    const char *header, *scheme, *realm, *service, *scope;
  } good[] = {
    /* Docker Hub */
    { "Bearer realm=\"https://auth.docker.io/token\",service=\"registry.docker.io\","
      "scope=\"repository:library/debian:pull\"",
      "bearer", "https://auth.docker.io/token", "registry.docker.io",
      "repository:library/debian:pull" },
    /* ghcr.io */
    { "Bearer realm=\"https://ghcr.io/token\",service=\"ghcr.io\",scope=\"repository:o/r:pull\"",
      "bearer", "https://ghcr.io/token", "ghcr.io", "repository:o/r:pull" },
    /* quay.io: realm with a path */
    { "Bearer realm=\"https://quay.io/v2/auth\",service=\"quay.io\"", "bearer",
      "https://quay.io/v2/auth", "quay.io", NULL },
    /* GitLab: an extra parameter, spaces after commas */
    { "Bearer realm=\"https://gitlab.com/jwt/auth\", service=\"container_registry\", "
      "scope=\"repository:g/p:pull\", error=\"insufficient_scope\"",
      "bearer", "https://gitlab.com/jwt/auth", "container_registry", "repository:g/p:pull" },
    /* distribution's htpasswd */
    { "Basic realm=\"Registry Realm\"", "basic", "Registry Realm", NULL, NULL },
    /* scheme case, unquoted values, whitespace around '=' */
    { "BASIC realm = registry", "basic", "registry", NULL, NULL },
    { "bearer realm=https://r.example/token,service=r.example", "bearer",
      "https://r.example/token", "r.example", NULL },
    /* escapes in a quoted string, parameter names in any case */
    { "Bearer REALM=\"a\\\"b\\\\c\",Service=\"s\"", "bearer", "a\"b\\c", "s", NULL },
    /* two challenges: the first one counts */
    { "Bearer realm=\"https://t/x\",service=\"t\", Basic realm=\"other\"", "bearer",
      "https://t/x", "t", NULL },
    /* a scheme alone */
    { "  Bearer", "bearer", NULL, NULL, NULL },
  };
  for (size_t i = 0; i < KP_N_ELEMENTS (good); i++)
    {
      kp_auth_challenge c;
      if (kp_auth_parse_challenge (good[i].header, &c) != 0)
        fail_msg ("case %zu refused: %s", i, good[i].header);
      assert_string_equal (c.scheme, good[i].scheme);
#define CHECK(field)                                                                          \
  if (good[i].field)                                                                          \
    assert_string_equal (c.field, good[i].field);                                             \
  else                                                                                        \
    assert_null (c.field);
      CHECK (realm);
      CHECK (service);
      CHECK (scope);
#undef CHECK
      kp_auth_challenge_clear (&c);
    }
  static const char *const bad[] = {
    "", "   ", "=realm", "Bearer realm=\"unterminated", "Bearer realm=", "Bearer realm=,",
    "Bearer realm=\"x\" junk", "Bear(er realm=\"x\"", "Bearer realm=\"x\\",
  };
  for (size_t i = 0; i < KP_N_ELEMENTS (bad); i++)
    {
      kp_auth_challenge c;
      if (kp_auth_parse_challenge (bad[i], &c) != -1)
        fail_msg ("case '%s' accepted", bad[i]);
      assert_null (c.scheme);
      assert_null (c.realm);
    }
  kp_auth_challenge c;
  assert_int_equal (kp_auth_parse_challenge (NULL, &c), -1);
}

static void
test_base64 (void **state)
{
  char *e = kp_base64_encode ("alice:s3cret", 12);
  assert_string_equal (e, "YWxpY2U6czNjcmV0");
  char *d = NULL;
  size_t n = 0;
  assert_int_equal (kp_base64_decode (e, &d, &n), 0);
  assert_int_equal (n, 12);
  assert_memory_equal (d, "alice:s3cret", 12);
  free (d);
  free (e);
  for (size_t len = 0; len < 5; len++)
    {
      e = kp_base64_encode ("abcd", len);
      assert_int_equal (kp_base64_decode (e, &d, &n), 0);
      assert_int_equal (n, len);
      assert_memory_equal (d, "abcd", len);
      free (d);
      free (e);
    }
  assert_int_equal (kp_base64_decode ("!!!", &d, &n), -1);
  assert_int_equal (kp_base64_decode ("YQ==YQ", &d, &n), -1); /* data after padding */
  assert_int_equal (kp_base64_decode ("Y", &d, &n), -1);      /* truncated */
}

/* ---- auth.json ---- */

typedef struct found
{
  int rc;
  char *user, *password, *source, *note;
  kp_error *err;
} found;

static found
lookup (const char *file, const char *registry, const char *repository)
{
  found f = { 0 };
  f.rc = kp_auth_lookup (file, registry, repository, &f.user, &f.password, &f.source, &f.note,
                         &f.err);
  return f;
}

static void
found_clear (found *f)
{
  free (f->user);
  free (f->password);
  free (f->source);
  free (f->note);
  kp_error_free (f->err);
  memset (f, 0, sizeof *f);
}

static char *
auth_entry (const char *user_password)
{
  char *b = kp_base64_encode (user_password, strlen (user_password));
  char *out = NULL;
  assert_true (asprintf (&out, "{\"auth\":\"%s\"}", b) > 0);
  free (b);
  return out;
}

static void
test_auth_keys (void **state)
{
  char *alice = auth_entry ("alice:s3:cret"), *bob = auth_entry ("bob:pw"),
       *carol = auth_entry ("carol:pw"), *dave = auth_entry ("dave:pw");
  char *text = NULL;
  assert_true (asprintf (&text,
                         "{\"auths\":{\"reg.example:5000\":%s,"
                         "\"https://index.docker.io/v1/\":%s,"
                         "\"quay.io\":%s,\"quay.io/team\":%s,"
                         "\"https://legacy.example/v2/\":%s,"
                         "\"ghcr.io\":{\"identitytoken\":\"opaque\"}},"
                         "\"credHelpers\":{\"gcr.io\":\"gcloud\"}}",
                         alice, bob, carol, dave, alice) > 0);
  char *file = write_temp (text);
  found f = lookup (file, "reg.example:5000", "x/y");
  assert_int_equal (f.rc, 1);
  assert_string_equal (f.user, "alice");
  assert_string_equal (f.password, "s3:cret"); /* only the first colon separates */
  assert_string_equal (f.source, file);
  found_clear (&f);
  /* Docker Hub under its legacy key, whichever name the caller uses. */
  f = lookup (file, "docker.io", "library/debian");
  assert_int_equal (f.rc, 1);
  assert_string_equal (f.user, "bob");
  found_clear (&f);
  /* The longest prefix of HOST/REPOSITORY wins; prefixes end at a '/'. */
  f = lookup (file, "quay.io", "team/app");
  assert_string_equal (f.user, "dave");
  found_clear (&f);
  f = lookup (file, "quay.io", "teamx/app");
  assert_string_equal (f.user, "carol");
  found_clear (&f);
  /* "https://host/path" names the host. */
  f = lookup (file, "legacy.example", "a/b");
  assert_int_equal (f.rc, 1);
  assert_string_equal (f.user, "alice");
  found_clear (&f);
  /* A different port is a different registry. */
  f = lookup (file, "reg.example", "x/y");
  assert_int_equal (f.rc, 0);
  assert_null (f.user);
  assert_null (f.note);
  found_clear (&f);
  /* What we cannot use is said, not silently ignored. */
  f = lookup (file, "ghcr.io", "o/r");
  assert_int_equal (f.rc, 0);
  assert_true (contains (f.note, "identity token"));
  found_clear (&f);
  f = lookup (file, "gcr.io", "p/i");
  assert_int_equal (f.rc, 0);
  assert_true (contains (f.note, "docker-credential-gcloud"));
  found_clear (&f);
  unlink (file);
  free (file);
  free (text);

  /* Malformed files and entries are errors that name the file. */
  static const char *const broken[] = {
    "{\"auths\":{\"h\":{\"auth\":\"!!!\"}}}",
    "{\"auths\":{\"h\":{\"auth\":\"bm9jb2xvbg==\"}}}", /* "nocolon" */
    "{\"auths\":", "[1]",
  };
  for (size_t i = 0; i < KP_N_ELEMENTS (broken); i++)
    {
      file = write_temp (broken[i]);
      f = lookup (file, "h", "r");
      assert_int_equal (f.rc, -1);
      assert_true (contains (f.err->message, file));
      found_clear (&f);
      unlink (file);
      free (file);
    }
  f = lookup ("/nonexistent/auth.json", "h", "r");
  assert_int_equal (f.rc, -1);
  assert_true (contains (f.err->message, "/nonexistent/auth.json"));
  found_clear (&f);
  free (alice), free (bob), free (carol), free (dave);
}

static void
test_auth_order (void **state)
{
  char dir[] = "/tmp/kp-test-authdir-XXXXXX";
  assert_non_null (mkdtemp (dir));
  char path[512];
  const char *subdirs[] = { "run", "run/containers", "config", "config/containers", "home",
                            "home/.docker" };
  for (size_t i = 0; i < KP_N_ELEMENTS (subdirs); i++)
    {
      snprintf (path, sizeof path, "%s/%s", dir, subdirs[i]);
      assert_int_equal (mkdir (path, 0700), 0);
    }
  char env_file[512], run_file[512], config_file[512], docker_file[512];
  snprintf (env_file, sizeof env_file, "%s/env.json", dir);
  snprintf (run_file, sizeof run_file, "%s/run/containers/auth.json", dir);
  snprintf (config_file, sizeof config_file, "%s/config/containers/auth.json", dir);
  snprintf (docker_file, sizeof docker_file, "%s/home/.docker/config.json", dir);
  const struct
  {
    const char *file, *user;
  } files[] = {
    { env_file, "from-env" }, { run_file, "from-run" },
    { config_file, "from-config" }, { docker_file, "from-docker" },
  };
  for (size_t i = 0; i < KP_N_ELEMENTS (files); i++)
    {
      char pair[64];
      snprintf (pair, sizeof pair, "%s:pw", files[i].user);
      char *entry = auth_entry (pair);
      char *text = NULL;
      assert_true (asprintf (&text, "{\"auths\":{\"reg.example\":%s}}", entry) > 0);
      free (write_file (files[i].file, text));
      free (text);
      free (entry);
    }
  snprintf (path, sizeof path, "%s/run", dir);
  setenv ("XDG_RUNTIME_DIR", path, 1);
  snprintf (path, sizeof path, "%s/config", dir);
  setenv ("XDG_CONFIG_HOME", path, 1);
  snprintf (path, sizeof path, "%s/home", dir);
  setenv ("HOME", path, 1);
  setenv ("REGISTRY_AUTH_FILE", env_file, 1);

  /* Remove the winner each time: the next place answers. */
  for (size_t i = 0; i < KP_N_ELEMENTS (files); i++)
    {
      found f = lookup (NULL, "reg.example", "a/b");
      assert_int_equal (f.rc, 1);
      assert_string_equal (f.user, files[i].user);
      assert_string_equal (f.source, files[i].file);
      found_clear (&f);
      /* An explicit file is the only place looked at. */
      f = lookup (files[KP_N_ELEMENTS (files) - 1].file, "reg.example", "a/b");
      assert_string_equal (f.user, "from-docker");
      found_clear (&f);
      unlink (files[i].file);
    }
  found f = lookup (NULL, "reg.example", "a/b");
  assert_int_equal (f.rc, 0);
  found_clear (&f);

  /* A file without the registry lets the next one answer. */
  free (write_file (run_file, "{\"auths\":{\"other.example\":{\"auth\":\"eDp5\"}}}"));
  char *entry = auth_entry ("late:pw");
  char *text = NULL;
  assert_true (asprintf (&text, "{\"auths\":{\"reg.example\":%s}}", entry) > 0);
  free (write_file (docker_file, text));
  f = lookup (NULL, "reg.example", "a/b");
  assert_string_equal (f.user, "late");
  found_clear (&f);
  free (text);
  free (entry);
  unlink (run_file);
  unlink (docker_file);
  unsetenv ("REGISTRY_AUTH_FILE");
  const char *rm[] = { "home/.docker", "home", "config/containers", "config", "run/containers",
                       "run" };
  for (size_t i = 0; i < KP_N_ELEMENTS (rm); i++)
    {
      snprintf (path, sizeof path, "%s/%s", dir, rm[i]);
      assert_int_equal (rmdir (path), 0);
    }
  assert_int_equal (rmdir (dir), 0);
}

/* ---- manifests and platforms ---- */

/* docker buildx's output: two platforms plus their attestation manifests. */
static const char *oci_index
    = "{\n  \"schemaVersion\": 2,\n  \"mediaType\": \"application/vnd.oci.image.index.v1+json\",\n"
      "  \"manifests\": [\n"
      "    {\"mediaType\": \"application/vnd.oci.image.manifest.v1+json\", \"digest\": \"" D1 "\","
      " \"size\": 1234, \"platform\": {\"architecture\": \"amd64\", \"os\": \"linux\"}},\n"
      "    {\"mediaType\": \"application/vnd.oci.image.manifest.v1+json\", \"digest\": \"" D2 "\","
      " \"size\": 1235, \"platform\": {\"architecture\": \"arm64\", \"os\": \"linux\","
      " \"variant\": \"v8\"}},\n"
      "    {\"mediaType\": \"application/vnd.oci.image.manifest.v1+json\", \"digest\": \"" D3 "\","
      " \"size\": 566, \"annotations\": {\"vnd.docker.reference.digest\": \"" D1 "\","
      " \"vnd.docker.reference.type\": \"attestation-manifest\"},"
      " \"platform\": {\"architecture\": \"unknown\", \"os\": \"unknown\"}}\n"
      "  ]\n}\n";

/* A Docker manifest list as Docker Hub serves for official images (abridged). */
static const char *docker_list
    = "{\"manifests\":["
      "{\"digest\":\"" D1 "\",\"mediaType\":\"application/vnd.docker.distribution.manifest.v2+json\","
      "\"platform\":{\"architecture\":\"amd64\",\"os\":\"linux\"},\"size\":529},"
      "{\"digest\":\"" D2 "\",\"mediaType\":\"application/vnd.docker.distribution.manifest.v2+json\","
      "\"platform\":{\"architecture\":\"arm\",\"os\":\"linux\",\"variant\":\"v5\"},\"size\":530},"
      "{\"digest\":\"" D3 "\",\"mediaType\":\"application/vnd.docker.distribution.manifest.v2+json\","
      "\"platform\":{\"architecture\":\"arm\",\"os\":\"linux\",\"variant\":\"v7\"},\"size\":531},"
      "{\"digest\":\"sha256:" H64 "\",\"mediaType\":\"application/vnd.docker.distribution.manifest.v2+json\","
      "\"platform\":{\"architecture\":\"arm64\",\"os\":\"linux\"},\"size\":532},"
      "{\"digest\":\"" D1 "\",\"mediaType\":\"application/vnd.docker.distribution.manifest.v2+json\","
      "\"platform\":{\"architecture\":\"ppc64le\",\"os\":\"linux\"},\"size\":533},"
      "{\"digest\":\"" D2 "\",\"mediaType\":\"application/vnd.docker.distribution.manifest.v2+json\","
      "\"platform\":{\"architecture\":\"amd64\",\"os\":\"windows\",\"os.version\":\"10.0.17763\"},"
      "\"size\":534}],"
      "\"mediaType\":\"application/vnd.docker.distribution.manifest.list.v2+json\","
      "\"schemaVersion\":2}";

/* Parse `json` for `platform`: the chosen entry's size, or -1 with the error in *err. */
static long
choose (const char *json, const char *media_type, const char *platform, kp_error **err)
{
  kp_platform want = { 0 };
  assert_int_equal (kp_platform_parse (platform, &want, NULL), 0);
  bool is_index = false;
  kp_oci_descriptor chosen = { 0 };
  kp_oci_image img = { 0 };
  long size = -1;
  if (kp_oci_parse_manifest (json, strlen (json), media_type, &want, &is_index, &chosen, &img,
                             err) == 0)
    {
      assert_true (is_index);
      assert_non_null (chosen.digest);
      size = (long) chosen.size;
    }
  kp_oci_descriptor_clear (&chosen);
  kp_oci_image_clear (&img);
  kp_platform_clear (&want);
  return size;
}

static void
test_platform_selection (void **state)
{
  assert_int_equal (choose (oci_index, NULL, "linux/amd64", NULL), 1234);
  assert_int_equal (choose (oci_index, NULL, "linux/arm64", NULL), 1235);
  assert_int_equal (choose (oci_index, NULL, "linux/arm64/v8", NULL), 1235);
  /* The media type may come from the Content-Type only, even with parameters. */
  assert_int_equal (choose (oci_index + 0, KP_MT_OCI_INDEX "; charset=utf-8", "linux/amd64",
                            NULL), 1234);
  assert_int_equal (choose (docker_list, NULL, "linux/arm/v7", NULL), 531);
  assert_int_equal (choose (docker_list, NULL, "linux/arm/v5", NULL), 530);
  /* No variant asked: the first entry of the architecture. */
  assert_int_equal (choose (docker_list, NULL, "linux/arm", NULL), 530);
  /* arm64 without a variant is v8, on either side. */
  assert_int_equal (choose (docker_list, NULL, "linux/arm64/v8", NULL), 532);
  assert_int_equal (choose (docker_list, NULL, "windows/amd64", NULL), 534);

  kp_error *err = NULL;
  assert_int_equal (choose (oci_index, NULL, "linux/s390x", &err), -1);
  assert_true (contains (err->message, "not built for linux/s390x"));
  assert_true (contains (err->hint, "linux/amd64, linux/arm64/v8;"));
  assert_null (strstr (err->hint, "unknown")); /* attestations are not platforms */
  kp_error_free (err);
  err = NULL;
  assert_int_equal (choose (oci_index, NULL, "linux/arm64/v9", &err), -1);
  kp_error_free (err);
  err = NULL;
  assert_int_equal (choose (docker_list, NULL, "linux/arm/v6", &err), -1);
  assert_true (contains (err->hint, "linux/amd64, linux/arm/v5, linux/arm/v7, linux/arm64, "
                                    "linux/ppc64le, windows/amd64"));
  kp_error_free (err);
  /* Nobody is built for "unknown/unknown", not even when asked. */
  err = NULL;
  assert_int_equal (choose (oci_index, NULL, "unknown/unknown", &err), -1);
  kp_error_free (err);
}

static void
test_platform_strings (void **state)
{
  kp_platform p = { 0 };
  kp_platform_host (&p);
  assert_string_equal (p.os, "linux");
  struct utsname u;
  assert_int_equal (uname (&u), 0);
  if (strcmp (u.machine, "x86_64") == 0)
    {
      assert_string_equal (p.architecture, "amd64");
      assert_null (p.variant);
    }
  else if (strcmp (u.machine, "aarch64") == 0)
    {
      assert_string_equal (p.architecture, "arm64");
      assert_string_equal (p.variant, "v8");
    }
  char *text = kp_platform_format (&p);
  kp_platform back = { 0 };
  assert_int_equal (kp_platform_parse (text, &back, NULL), 0);
  assert_string_equal (back.architecture, p.architecture);
  free (text);
  kp_platform_clear (&back);
  kp_platform_clear (&p);
  assert_null (p.os);

  assert_int_equal (kp_platform_parse ("linux/arm/v7", &p, NULL), 0);
  assert_string_equal (p.os, "linux");
  assert_string_equal (p.architecture, "arm");
  assert_string_equal (p.variant, "v7");
  text = kp_platform_format (&p);
  assert_string_equal (text, "linux/arm/v7");
  free (text);
  kp_platform_clear (&p);
  static const char *const bad[] = { "linux", "linux/", "/amd64", "Linux/amd64",
                                     "linux/arm/v7/x", "linux//v7", "linux/am d64", "" };
  for (size_t i = 0; i < KP_N_ELEMENTS (bad); i++)
    {
      kp_error *err = NULL;
      if (kp_platform_parse (bad[i], &p, &err) != -1)
        fail_msg ("platform '%s' accepted", bad[i]);
      assert_true (contains (err->hint, "OS/ARCH[/VARIANT]"));
      kp_error_free (err);
    }
}

static int
parse_image (const char *json, const char *media_type, kp_oci_image *img, kp_error **err)
{
  kp_platform want = { 0 };
  kp_platform_host (&want);
  bool is_index = true;
  kp_oci_descriptor chosen = { 0 };
  int rc = kp_oci_parse_manifest (json, strlen (json), media_type, &want, &is_index, &chosen,
                                  img, err);
  if (rc == 0)
    assert_false (is_index);
  kp_platform_clear (&want);
  return rc;
}

static void
test_image_manifests (void **state)
{
  /* Docker schema 2, as `docker push` writes it. */
  const char *docker
      = "{\n   \"schemaVersion\": 2,\n   \"mediaType\": "
        "\"application/vnd.docker.distribution.manifest.v2+json\",\n   \"config\": {\n"
        "      \"mediaType\": \"application/vnd.docker.container.image.v1+json\",\n"
        "      \"size\": 1463,\n      \"digest\": \"" D1 "\"\n   },\n   \"layers\": [\n"
        "      {\n         \"mediaType\": \"application/vnd.docker.image.rootfs.diff.tar.gzip\",\n"
        "         \"size\": 29126484,\n         \"digest\": \"" D2 "\"\n      }\n   ]\n}";
  kp_oci_image img = { 0 };
  assert_int_equal (parse_image (docker, NULL, &img, NULL), 0);
  assert_string_equal (img.manifest_media_type, KP_MT_DOCKER_MANIFEST);
  assert_int_equal (img.config.size, 1463);
  assert_string_equal (img.config.digest, D1);
  assert_int_equal (img.n_layers, 1);
  assert_int_equal (img.layers[0].size, 29126484);
  assert_string_equal (img.layers[0].digest, D2);
  assert_non_null (img.manifest);
  kp_oci_image_clear (&img);
  assert_null (img.layers);

  /* OCI, without a mediaType field (allowed), type from the Content-Type header. */
  const char *oci
      = "{\"schemaVersion\":2,\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\","
        "\"digest\":\"" D1 "\",\"size\":7},\"layers\":["
        "{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"" D2 "\",\"size\":10},"
        "{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+zstd\",\"digest\":\"" D3 "\",\"size\":11},"
        "{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"" D3 "\",\"size\":12}],"
        "\"annotations\":{\"org.opencontainers.image.created\":\"2024-11-19T00:00:00Z\"}}";
  assert_int_equal (parse_image (oci, "application/vnd.oci.image.manifest.v1+json", &img, NULL), 0);
  assert_string_equal (img.manifest_media_type, KP_MT_OCI_MANIFEST);
  assert_int_equal (img.n_layers, 3);
  assert_int_equal (img.layers[2].size, 12);
  kp_oci_image_clear (&img);
  /* ... or with no type at all (some servers say application/json). */
  assert_int_equal (parse_image (oci, "application/json", &img, NULL), 0);
  kp_oci_image_clear (&img);

  static const struct
  {
    const char *json, *media_type, *message;
  } refused[] = {
    { "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.docker.distribution.manifest.v2+json\","
      "\"config\":{\"size\":7,\"digest\":\"" D1 "\"},\"layers\":["
      "{\"mediaType\":\"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip\",\"size\":1,"
      "\"digest\":\"" D2 "\",\"urls\":[\"https://go.microsoft.com/fwlink/?linkid=0\"]}]}",
      NULL, "foreign.diff" },
    { "{\"schemaVersion\":2,\"config\":{\"size\":7,\"digest\":\"" D1 "\"},\"layers\":["
      "{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip+encrypted\",\"size\":1,"
      "\"digest\":\"" D2 "\"}]}",
      KP_MT_OCI_MANIFEST, "encrypted" },
    { "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
      "\"artifactType\":\"application/vnd.cncf.helm.config.v1+json\",\"config\":{\"mediaType\":"
      "\"application/vnd.cncf.helm.config.v1+json\",\"size\":7,\"digest\":\"" D1 "\"},"
      "\"layers\":[]}",
      NULL, "not a container image" },
    { "{\"schemaVersion\":1,\"name\":\"library/x\",\"tag\":\"1\",\"fsLayers\":[]}", NULL,
      "schema 1" },
    { "{\"name\":\"library/x\",\"fsLayers\":[]}",
      "application/vnd.docker.distribution.manifest.v1+prettyjws", "schema 1" },
    { "{\"mediaType\":\"application/vnd.oci.artifact.manifest.v1+json\"}", NULL,
      "unsupported manifest type" },
    { "not json", NULL, "not a JSON object" },
    { "[]", NULL, "not a JSON object" },
    { "{\"config\":{\"size\":1,\"digest\":\"" D1 "\"},\"config\":{},\"layers\":[]}", NULL,
      "duplicate" },
    { "{\"layers\":[]}", NULL, "lacks its config" },
    { "{\"config\":{\"size\":1,\"digest\":\"md5:00\"},\"layers\":[]}", NULL, "no valid digest" },
    { "{\"config\":{\"size\":-1,\"digest\":\"" D1 "\"},\"layers\":[]}", NULL, "no valid size" },
    { "{\"config\":{\"size\":1,\"digest\":\"" D1 "\"},\"layers\":[{\"size\":1}]}", NULL,
      "layer has no valid digest" },
    { "{\"mediaType\":\"application/vnd.oci.image.index.v1+json\"}", NULL, "no manifest list" },
  };
  for (size_t i = 0; i < KP_N_ELEMENTS (refused); i++)
    {
      kp_error *err = NULL;
      if (parse_image (refused[i].json, refused[i].media_type, &img, &err) != -1)
        fail_msg ("case %zu accepted", i);
      if (!contains (err->message, refused[i].message))
        fail_msg ("case %zu", i);
      kp_error_free (err);
      kp_oci_image_clear (&img);
    }
}

static void
test_loopback_rule (void **state)
{
  static const char *const loopback[] = { "127.0.0.1:5000", "127.9.8.7", "localhost:80",
                                          "LOCALHOST", "[::1]:5000", "::1", "localhost" };
  static const char *const remote[] = { "128.0.0.1", "localhost.example.org", "[::2]:5000",
                                        "", "10.0.0.1:5000", "127.0.0.1.nip.io", "[::1" };
  for (size_t i = 0; i < KP_N_ELEMENTS (loopback); i++)
    if (!kp_http_host_is_loopback (loopback[i]))
      fail_msg ("'%s' is loopback", loopback[i]);
  for (size_t i = 0; i < KP_N_ELEMENTS (remote); i++)
    if (kp_http_host_is_loopback (remote[i]))
      fail_msg ("'%s' is not loopback", remote[i]);
  assert_false (kp_http_host_is_loopback (NULL));

  /* Refused before any connection: 192.0.2.1 (TEST-NET-1) would hang if tried. */
  kp_http *h = kp_http_new ();
  kp_http_request req = { .url = "http://192.0.2.1/x" };
  kp_http_response resp = { 0 };
  kp_error *err = NULL;
  assert_int_equal (kp_http_get (h, &req, &resp, &err), -1);
  assert_true (contains (err->message, "refusing plain HTTP to 192.0.2.1"));
  assert_true (contains (err->hint, "--tls-verify=false"));
  kp_error_free (err);
  kp_http_response_clear (&resp);
  req.url = "ftp://127.0.0.1/x";
  err = NULL;
  assert_int_equal (kp_http_get (h, &req, &resp, &err), -1);
  kp_error_free (err);
  kp_http_response_clear (&resp);
  /* A registry client for a remote host refuses plain HTTP the same way. */
  kp_registry_options opts = { 0 };
  err = NULL;
  assert_null (kp_registry_new (h, "reg.example", "Bad/Name", &opts, &err));
  assert_true (contains (err->message, "not a repository name"));
  kp_error_free (err);
  err = NULL;
  assert_null (kp_registry_new (h, "reg.example/x", "a", &opts, &err));
  kp_error_free (err);
  kp_http_free (h);
}

/* ---- a registry on 127.0.0.1 ----
 *
 * A forked child serves one connection at a time ("Connection: close"), so its state (the
 * current token) needs no locking; a second listening socket plays the storage server
 * that blob downloads are redirected to. */

enum
{
  B_CONFIG,
  B_LAYER,
  B_CUT,     /* the first answer stops half-way; a Range request gets the rest */
  B_BAD,     /* served with one byte changed */
  B_NORANGE, /* stops half-way, and answers Range with the whole blob */
  B_REDIR,   /* redirected to the storage server, which refuses an Authorization header */
  B_PRIV,    /* using it expires the token */
  N_BLOBS
};

typedef struct test_blob
{
  char *data;
  size_t len;
  char digest[KP_DIGEST_STRING_MAX];
} test_blob;

static test_blob blobs[N_BLOBS];
static char *manifest_doc, *index_doc;
static char manifest_digest[KP_DIGEST_STRING_MAX], index_digest[KP_DIGEST_STRING_MAX];
static char server_host[64];
static int server_port, storage_port;
static pid_t server_pid;
static int token_generation = 1; /* the child's */

static const char *
request_header (const char *request, const char *name)
{
  static char value[1024];
  for (const char *p = strstr (request, "\r\n"); p; p = strstr (p + 2, "\r\n"))
    {
      size_t n = strlen (name);
      if (strncasecmp (p + 2, name, n) == 0 && p[2 + n] == ':')
        {
          const char *v = p + 3 + n;
          while (*v == ' ')
            v++;
          size_t len = strcspn (v, "\r\n");
          snprintf (value, sizeof value, "%.*s", (int) len, v);
          return value;
        }
    }
  return NULL;
}

static void
send_all (int fd, const void *data, size_t len)
{
  const char *p = data;
  while (len > 0)
    {
      ssize_t w = write (fd, p, len);
      if (w <= 0)
        return;
      p += w;
      len -= (size_t) w;
    }
}

/* Status line and headers announcing `len` bytes, then `send_len` of them. */
static void
respond (int fd, int status, const char *headers, const char *body, size_t len, size_t send_len,
         bool head)
{
  char top[512];
  int n = snprintf (top, sizeof top, "HTTP/1.1 %d Test\r\nContent-Length: %zu\r\n"
                                     "Connection: close\r\n%s\r\n", status, len,
                    headers ? headers : "");
  send_all (fd, top, (size_t) n);
  if (!head && body)
    send_all (fd, body, send_len);
}

static void
respond_text (int fd, int status, const char *headers, const char *text, bool head)
{
  respond (fd, status, headers, text, strlen (text), strlen (text), head);
}

static void
serve_blob (int fd, int b, const char *range, bool head)
{
  unsigned long long from = 0;
  bool ranged = range && sscanf (range, "bytes=%llu-", &from) == 1;
  test_blob *bl = &blobs[b];
  char *data = bl->data;
  char *changed = NULL;
  if (b == B_BAD)
    {
      changed = malloc (bl->len);
      memcpy (changed, bl->data, bl->len);
      changed[bl->len / 2] ^= 1;
      data = changed;
    }
  if ((b == B_CUT || b == B_NORANGE) && !ranged)
    respond (fd, 200, NULL, data, bl->len, bl->len / 2, head);
  else if (ranged && b != B_NORANGE && from < bl->len)
    {
      char h[128];
      snprintf (h, sizeof h, "Content-Range: bytes %llu-%zu/%zu\r\n", from, bl->len - 1, bl->len);
      respond (fd, 206, h, data + from, bl->len - from, bl->len - from, head);
    }
  else
    respond (fd, 200, NULL, data, bl->len, bl->len, head);
  free (changed);
}

static int
blob_by_digest (const char *digest)
{
  for (int b = 0; b < N_BLOBS; b++)
    if (strcmp (blobs[b].digest, digest) == 0)
      return b;
  return -1;
}

static void
serve_registry (int fd, const char *method, const char *path, const char *request)
{
  bool head = strcmp (method, "HEAD") == 0;
  const char *auth = request_header (request, "Authorization");
  char h[512];
  if (strcmp (path, "/hdr") == 0)
    {
      respond_text (fd, 200, "content-TYPE: text/x-test\r\ndocker-content-digest:   " D1 "  \r\n"
                             "WWW-AUTHENTICATE: Basic realm=\"x\"\r\n", "hello", head);
      return;
    }
  if (strcmp (path, "/echo-auth") == 0)
    {
      respond_text (fd, 200, NULL, auth ? auth : "none", head);
      return;
    }
  if (strcmp (path, "/to-self-echo") == 0)
    {
      respond_text (fd, 302, "Location: /echo-auth\r\n", "", head);
      return;
    }
  if (strcmp (path, "/to-storage-echo") == 0)
    {
      snprintf (h, sizeof h, "Location: http://127.0.0.1:%d/echo-auth\r\n", storage_port);
      respond_text (fd, 302, h, "", head);
      return;
    }
  if (strcmp (path, "/to-remote") == 0)
    {
      respond_text (fd, 302, "Location: http://192.0.2.1/x\r\n", "", head);
      return;
    }
  if (strncmp (path, "/token?", 7) == 0)
    {
      char *good = kp_base64_encode ("alice:secret", 12);
      char want[128];
      snprintf (want, sizeof want, "Basic %s", good);
      free (good);
      if (auth == NULL || strcmp (auth, want) != 0
          || strstr (path, "service=kp-test") == NULL
          || strstr (path, "scope=repository%3Atest%2Fprivate%3Apull") == NULL)
        {
          respond_text (fd, 401, NULL, "{\"errors\":[{\"code\":\"UNAUTHORIZED\"}]}", head);
          return;
        }
      char body[128];
      /* Both spellings of the field occur in the wild. */
      snprintf (body, sizeof body, "{\"%s\":\"tok-%d\",\"expires_in\":300}",
                token_generation % 2 ? "token" : "access_token", token_generation);
      respond_text (fd, 200, "Content-Type: application/json\r\n", body, head);
      return;
    }
  const char *repo_end = NULL;
  bool private = false;
  if (strncmp (path, "/v2/test/img/", 13) == 0)
    repo_end = path + 13;
  else if (strncmp (path, "/v2/test/private/", 17) == 0)
    repo_end = path + 17, private = true;
  if (repo_end == NULL)
    {
      respond_text (fd, 404, NULL, "no such thing", head);
      return;
    }
  if (private)
    {
      char want[64];
      snprintf (want, sizeof want, "Bearer tok-%d", token_generation);
      if (auth == NULL || strcmp (auth, want) != 0)
        {
          snprintf (h, sizeof h, "Www-Authenticate: Bearer realm=\"http://127.0.0.1:%d/token\","
                                 "service=\"kp-test\",scope=\"repository:test/private:pull\"\r\n",
                    server_port);
          respond_text (fd, 401, h, "{\"errors\":[{\"code\":\"UNAUTHORIZED\"}]}", head);
          return;
        }
    }
  if (strncmp (repo_end, "manifests/", 10) == 0)
    {
      const char *ref = repo_end + 10;
      const char *doc = NULL, *type = NULL, *digest = NULL;
      if (strcmp (ref, "v1") == 0 || strcmp (ref, index_digest) == 0)
        doc = index_doc, type = KP_MT_OCI_INDEX, digest = index_digest;
      else if (strcmp (ref, "evil") == 0)
        doc = index_doc, type = KP_MT_OCI_INDEX, digest = D1;
      else if (strcmp (ref, manifest_digest) == 0)
        doc = manifest_doc, type = KP_MT_OCI_MANIFEST, digest = manifest_digest;
      if (doc == NULL)
        {
          respond_text (fd, 404, NULL, "{\"errors\":[{\"code\":\"MANIFEST_UNKNOWN\"}]}", head);
          return;
        }
      snprintf (h, sizeof h, "Content-Type: %s\r\nDocker-Content-Digest: %s\r\n", type, digest);
      respond_text (fd, 200, h, doc, head);
      return;
    }
  if (strncmp (repo_end, "blobs/", 6) == 0)
    {
      int b = blob_by_digest (repo_end + 6);
      if (b < 0)
        respond_text (fd, 404, NULL, "{\"errors\":[{\"code\":\"BLOB_UNKNOWN\"}]}", head);
      else if (b == B_REDIR)
        {
          snprintf (h, sizeof h, "Location: http://127.0.0.1:%d/blob/%s\r\n", storage_port,
                    blobs[b].digest);
          respond_text (fd, 307, h, "", head);
        }
      else
        {
          serve_blob (fd, b, request_header (request, "Range"), head);
          if (b == B_PRIV)
            token_generation++;
        }
      return;
    }
  respond_text (fd, 404, NULL, "", head);
}

static void
serve_storage (int fd, const char *method, const char *path, const char *request)
{
  bool head = strcmp (method, "HEAD") == 0;
  const char *auth = request_header (request, "Authorization");
  if (strcmp (path, "/echo-auth") == 0)
    respond_text (fd, 200, NULL, auth ? auth : "none", head);
  else if (auth)
    respond_text (fd, 403, NULL, "an Authorization header reached the storage server", head);
  else if (strncmp (path, "/blob/", 6) == 0 && blob_by_digest (path + 6) >= 0)
    serve_blob (fd, blob_by_digest (path + 6), request_header (request, "Range"), head);
  else
    respond_text (fd, 404, NULL, "", head);
}

static void
serve_connection (int fd, bool storage)
{
  char request[16384];
  size_t n = 0;
  while (n < sizeof request - 1)
    {
      ssize_t r = read (fd, request + n, sizeof request - 1 - n);
      if (r <= 0)
        return;
      n += (size_t) r;
      request[n] = '\0';
      if (strstr (request, "\r\n\r\n"))
        break;
    }
  char method[16], path[2048];
  if (sscanf (request, "%15s %2047s", method, path) != 2)
    return;
  if (storage)
    serve_storage (fd, method, path, request);
  else
    serve_registry (fd, method, path, request);
}

static int
listen_loopback (int *port)
{
  int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true (fd >= 0);
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
  assert_int_equal (bind (fd, (struct sockaddr *) &a, sizeof a), 0);
  assert_int_equal (listen (fd, 64), 0);
  socklen_t len = sizeof a;
  assert_int_equal (getsockname (fd, (struct sockaddr *) &a, &len), 0);
  *port = ntohs (a.sin_port);
  return fd;
}

static void
make_blob (int b, size_t len, unsigned seed)
{
  blobs[b].data = malloc (len + 1);
  for (size_t i = 0; i < len; i++)
    blobs[b].data[i] = (char) ((i * 2654435761u + seed) >> 13);
  blobs[b].len = len;
  kp_digest_buffer (KP_DIGEST_SHA256, blobs[b].data, len, blobs[b].digest);
}

static int
server_start (void **state)
{
  make_blob (B_LAYER, 200000, 1);
  make_blob (B_CUT, 300001, 2);
  make_blob (B_BAD, 5000, 3);
  make_blob (B_NORANGE, 100000, 4);
  make_blob (B_REDIR, 70000, 5);
  make_blob (B_PRIV, 1000, 6);
  const char *config = "{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"Env\":"
                       "[\"PATH=/usr/bin\"]},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}";
  blobs[B_CONFIG].data = strdup (config);
  blobs[B_CONFIG].len = strlen (config);
  kp_digest_buffer (KP_DIGEST_SHA256, config, strlen (config), blobs[B_CONFIG].digest);
  assert_true (asprintf (&manifest_doc,
                         "{\"schemaVersion\":2,\"mediaType\":\"" KP_MT_OCI_MANIFEST "\","
                         "\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\","
                         "\"digest\":\"%s\",\"size\":%zu},\"layers\":[{\"mediaType\":"
                         "\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"%s\","
                         "\"size\":%zu}]}",
                         blobs[B_CONFIG].digest, blobs[B_CONFIG].len, blobs[B_LAYER].digest,
                         blobs[B_LAYER].len) > 0);
  kp_digest_buffer (KP_DIGEST_SHA256, manifest_doc, strlen (manifest_doc), manifest_digest);
  assert_true (asprintf (&index_doc,
                         "{\"schemaVersion\":2,\"mediaType\":\"" KP_MT_OCI_INDEX "\","
                         "\"manifests\":[{\"mediaType\":\"" KP_MT_OCI_MANIFEST "\","
                         "\"digest\":\"" D2 "\",\"size\":99,\"platform\":{\"os\":\"linux\","
                         "\"architecture\":\"arm64\",\"variant\":\"v8\"}},"
                         "{\"mediaType\":\"" KP_MT_OCI_MANIFEST "\",\"digest\":\"%s\",\"size\":%zu,"
                         "\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"}}]}",
                         manifest_digest, strlen (manifest_doc)) > 0);
  kp_digest_buffer (KP_DIGEST_SHA256, index_doc, strlen (index_doc), index_digest);

  int main_fd = listen_loopback (&server_port);
  int storage_fd = listen_loopback (&storage_port);
  snprintf (server_host, sizeof server_host, "127.0.0.1:%d", server_port);
  server_pid = fork ();
  assert_true (server_pid >= 0);
  if (server_pid == 0)
    {
      prctl (PR_SET_PDEATHSIG, SIGKILL);
      signal (SIGPIPE, SIG_IGN);
      struct pollfd fds[2] = { { .fd = main_fd, .events = POLLIN },
                               { .fd = storage_fd, .events = POLLIN } };
      for (;;)
        {
          if (poll (fds, 2, -1) < 0)
            continue;
          for (int i = 0; i < 2; i++)
            if (fds[i].revents & POLLIN)
              {
                int c = accept4 (fds[i].fd, NULL, NULL, SOCK_CLOEXEC);
                if (c < 0)
                  continue;
                serve_connection (c, i == 1);
                shutdown (c, SHUT_WR);
                close (c);
              }
        }
    }
  close (main_fd);
  close (storage_fd);
  return 0;
}

static int
server_stop (void **state)
{
  if (server_pid > 0)
    {
      kill (server_pid, SIGTERM);
      waitpid (server_pid, NULL, 0);
    }
  for (int b = 0; b < N_BLOBS; b++)
    free (blobs[b].data);
  free (manifest_doc);
  free (index_doc);
  return 0;
}

/* ---- against it ---- */

static kp_http_response
get (kp_http *h, const char *path, const char *method, const char *header, kp_error **err,
     int *rc)
{
  char url[256];
  snprintf (url, sizeof url, "http://%s%s", server_host, path);
  const char *headers[] = { header, NULL };
  kp_http_request req = { .url = url, .method = method, .headers = headers };
  kp_http_response resp = { 0 };
  *rc = kp_http_get (h, &req, &resp, err);
  return resp;
}

static void
test_http_exchange (void **state)
{
  kp_http *h = kp_http_new ();
  int rc;
  kp_http_response r = get (h, "/hdr", NULL, NULL, NULL, &rc);
  assert_int_equal (rc, 0);
  assert_int_equal (r.status, 200);
  assert_string_equal (r.body, "hello");
  assert_int_equal (r.body_len, 5);
  assert_int_equal (r.received, 5);
  assert_int_equal (r.content_length, 5);
  /* Header names in any case, values trimmed. */
  assert_string_equal (r.content_type, "text/x-test");
  assert_string_equal (r.docker_content_digest, D1);
  assert_string_equal (r.www_authenticate, "Basic realm=\"x\"");
  kp_http_response_clear (&r);
  r = get (h, "/hdr", "HEAD", NULL, NULL, &rc);
  assert_int_equal (rc, 0);
  assert_int_equal (r.status, 200);
  assert_int_equal (r.body_len, 0);
  assert_string_equal (r.docker_content_digest, D1);
  kp_http_response_clear (&r);
  /* Any status is a response for the caller to judge. */
  r = get (h, "/missing", NULL, NULL, NULL, &rc);
  assert_int_equal (rc, 0);
  assert_int_equal (r.status, 404);
  kp_http_response_clear (&r);

  /* The token goes to the host it was given for, and through a redirect on that host ... */
  r = get (h, "/echo-auth", NULL, "Authorization: Bearer s3cret", NULL, &rc);
  assert_string_equal (r.body, "Bearer s3cret");
  kp_http_response_clear (&r);
  r = get (h, "/to-self-echo", NULL, "Authorization: Bearer s3cret", NULL, &rc);
  assert_int_equal (r.status, 200);
  assert_string_equal (r.body, "Bearer s3cret");
  kp_http_response_clear (&r);
  /* ... but not to another one (here: another port, which curl counts as another host). */
  r = get (h, "/to-storage-echo", NULL, "Authorization: Bearer s3cret", NULL, &rc);
  assert_int_equal (rc, 0);
  assert_int_equal (r.status, 200);
  assert_string_equal (r.body, "none");
  kp_http_response_clear (&r);

  /* A loopback server may not send us to plain HTTP elsewhere (refused before connecting). */
  kp_error *err = NULL;
  r = get (h, "/to-remote", NULL, NULL, &err, &rc);
  assert_int_equal (rc, -1);
  assert_true (contains (err->message, "redirect to plain HTTP on 192.0.2.1"));
  kp_error_free (err);
  kp_http_response_clear (&r);

  /* A body larger than allowed is an error, not a truncation. */
  char url[256];
  snprintf (url, sizeof url, "http://%s/hdr", server_host);
  kp_http_request req = { .url = url, .max_body = 3 };
  err = NULL;
  assert_int_equal (kp_http_get (h, &req, &r, &err), -1);
  assert_true (contains (err->message, "larger than 3 bytes"));
  kp_error_free (err);
  kp_http_response_clear (&r);
  kp_http_free (h);
}

static kp_registry *
client (kp_http *h, const char *repository, const char *platform, const char *auth_file,
        unsigned parallel)
{
  kp_registry_options opts = { .auth_file = auth_file, .parallel = parallel };
  if (platform)
    assert_int_equal (kp_platform_parse (platform, &opts.platform, NULL), 0);
  kp_error *err = NULL;
  kp_registry *r = kp_registry_new (h, server_host, repository, &opts, &err);
  if (r == NULL)
    fail_msg ("%s", err->message);
  kp_platform_clear (&opts.platform);
  return r;
}

static void
test_registry_resolve (void **state)
{
  kp_http *h = kp_http_new ();
  kp_registry *r = client (h, "test/img", "linux/amd64", NULL, 0);
  kp_oci_image img;
  kp_error *err = NULL;
  if (kp_registry_resolve (r, "v1", &img, &err) < 0)
    fail_msg ("%s", err->message);
  assert_string_equal (img.digest, index_digest);
  assert_string_equal (img.manifest_digest, manifest_digest);
  assert_string_equal (img.manifest_media_type, KP_MT_OCI_MANIFEST);
  assert_int_equal (img.n_layers, 1);
  assert_string_equal (img.layers[0].digest, blobs[B_LAYER].digest);
  assert_string_equal (img.config.digest, blobs[B_CONFIG].digest);
  assert_non_null (json_object_get (img.config_json, "config"));
  assert_string_equal (img.platform.architecture, "amd64");
  const kp_registry_stats *s = kp_registry_get_stats (r);
  assert_int_equal (s->manifest_requests, 2); /* the index, then the platform's manifest */
  assert_int_equal (s->blob_requests, 1);     /* the config */
  assert_int_equal (s->token_requests, 0);
  assert_int_equal (s->ping_requests, 0);
  kp_oci_image_clear (&img);

  /* By digest: the manifest itself, and what a pinned reference names. */
  assert_int_equal (kp_registry_resolve (r, manifest_digest, &img, NULL), 0);
  assert_string_equal (img.digest, manifest_digest);
  kp_oci_image_clear (&img);
  char *digest = NULL;
  assert_int_equal (kp_registry_head_digest (r, "v1", &digest, NULL), 0);
  assert_string_equal (digest, index_digest);
  free (digest);

  char want[256];
  assert_int_equal (kp_registry_resolve (r, "nope", &img, &err), -1);
  snprintf (want, sizeof want, "no tag 'nope' in test/img at %s", server_host);
  assert_true (contains (err->message, want));
  kp_error_free (err);
  err = NULL;
  /* A Docker-Content-Digest that the bytes do not have. */
  assert_int_equal (kp_registry_resolve (r, "evil", &img, &err), -1);
  assert_true (contains (err->message, "is not what was asked for"));
  kp_error_free (err);
  err = NULL;
  assert_int_equal (kp_registry_resolve (r, D3, &img, &err), -1);
  assert_true (contains (err->message, "no manifest " D3));
  kp_error_free (err);
  kp_registry_free (r);

  r = client (h, "test/img", "linux/s390x", NULL, 0);
  err = NULL;
  assert_int_equal (kp_registry_resolve (r, "v1", &img, &err), -1);
  assert_true (contains (err->message, "not built for linux/s390x"));
  assert_true (contains (err->hint, "linux/arm64/v8, linux/amd64"));
  kp_error_free (err);
  kp_registry_free (r);
  kp_http_free (h);
}

typedef struct collected
{
  kp_buf data[N_BLOBS];
  int done[N_BLOBS];
  int discarded[N_BLOBS];
} collected;

static int
collect_write (size_t index, const void *data, size_t len, void *user_data, kp_error **err)
{
  collected *c = user_data;
  kp_buf_append (&c->data[index], data, len);
  return 0;
}

static int
collect_done (size_t index, void *user_data, kp_error **err)
{
  collected *c = user_data;
  c->done[index]++;
  return 0;
}

static void
collect_discard (size_t index, void *user_data)
{
  collected *c = user_data;
  c->discarded[index]++;
}

static void
collected_clear (collected *c)
{
  for (int i = 0; i < N_BLOBS; i++)
    kp_buf_clear (&c->data[i]);
  memset (c, 0, sizeof *c);
}

/* Fetch the blobs listed in `which` (terminated by -1) as indexes 0, 1, … */
static int
fetch (kp_registry *r, const int *which, collected *c, kp_error **err)
{
  kp_oci_descriptor d[N_BLOBS] = { { 0 } };
  size_t n = 0;
  for (; which[n] >= 0; n++)
    {
      d[n].digest = blobs[which[n]].digest;
      d[n].size = blobs[which[n]].len;
    }
  kp_blob_sink sink = { collect_write, collect_done, collect_discard, c };
  return kp_registry_fetch_blobs (r, d, n, &sink, err);
}

static void
assert_blob (collected *c, size_t index, int b)
{
  assert_int_equal (c->data[index].len, blobs[b].len);
  assert_memory_equal (c->data[index].data, blobs[b].data, blobs[b].len);
  assert_int_equal (c->done[index], 1);
  assert_int_equal (c->discarded[index], 0);
}

static void
test_blobs (void **state)
{
  kp_http *h = kp_http_new ();
  kp_registry *r = client (h, "test/img", NULL, NULL, 2);
  collected c = { 0 };
  kp_error *err = NULL;

  /* Two at once; one of them broken half-way and resumed with Range. */
  if (fetch (r, (int[]){ B_LAYER, B_CUT, -1 }, &c, &err) < 0)
    fail_msg ("%s", err->message);
  assert_blob (&c, 0, B_LAYER);
  assert_blob (&c, 1, B_CUT);
  const kp_registry_stats *s = kp_registry_get_stats (r);
  assert_int_equal (s->blob_requests, 3);
  assert_int_equal (s->blob_bytes, blobs[B_LAYER].len + blobs[B_CUT].len);
  collected_clear (&c);

  /* A corrupt blob: an error that names it, and its bytes discarded. */
  err = NULL;
  assert_int_equal (fetch (r, (int[]){ B_BAD, -1 }, &c, &err), -1);
  assert_true (contains (err->message, blobs[B_BAD].digest));
  assert_true (contains (err->message, "is corrupt"));
  assert_int_equal (c.discarded[0], 1);
  assert_int_equal (c.done[0], 0);
  kp_error_free (err);
  collected_clear (&c);

  /* A server that answers Range with the whole blob: refused without appending it. */
  err = NULL;
  assert_int_equal (fetch (r, (int[]){ B_NORANGE, -1 }, &c, &err), -1);
  assert_true (contains (err->message, "does not resume downloads"));
  assert_int_equal (c.data[0].len, blobs[B_NORANGE].len / 2);
  assert_int_equal (c.discarded[0], 1);
  assert_int_equal (c.done[0], 0);
  kp_error_free (err);
  collected_clear (&c);

  /* More bytes than the descriptor says: refused at once, not retried. */
  kp_oci_descriptor small = { .digest = blobs[B_LAYER].digest, .size = 1000 };
  kp_blob_sink sink = { collect_write, collect_done, collect_discard, &c };
  unsigned before = s->blob_requests;
  err = NULL;
  assert_int_equal (kp_registry_fetch_blobs (r, &small, 1, &sink, &err), -1);
  assert_true (contains (err->message, "more than the 1000 bytes"));
  assert_int_equal (s->blob_requests, before + 1);
  assert_int_equal (c.discarded[0], 1);
  kp_error_free (err);
  collected_clear (&c);

  /* A blob the registry does not have. */
  kp_oci_descriptor missing = { .digest = D3, .size = 10 };
  err = NULL;
  assert_int_equal (kp_registry_fetch_blobs (r, &missing, 1, &sink, &err), -1);
  assert_true (contains (err->message, "no blob " D3));
  kp_error_free (err);
  collected_clear (&c);

  /* A small blob, checked, with its limit. */
  kp_oci_descriptor config = { .digest = blobs[B_CONFIG].digest, .size = blobs[B_CONFIG].len };
  char *bytes = NULL;
  size_t len = 0;
  assert_int_equal (kp_registry_fetch_small_blob (r, &config, 4096, &bytes, &len, NULL), 0);
  assert_int_equal (len, blobs[B_CONFIG].len);
  assert_string_equal (bytes, blobs[B_CONFIG].data);
  free (bytes);
  err = NULL;
  assert_int_equal (kp_registry_fetch_small_blob (r, &config, 10, &bytes, &len, &err), -1);
  kp_error_free (err);
  kp_registry_free (r);
  kp_http_free (h);
}

static char *
auth_file_for (const char *user_password)
{
  char *text = NULL;
  if (user_password == NULL)
    return write_temp ("{\"auths\":{}}");
  char *entry = auth_entry (user_password);
  assert_true (asprintf (&text, "{\"auths\":{\"%s\":%s}}", server_host, entry) > 0);
  char *file = write_temp (text);
  free (text);
  free (entry);
  return file;
}

static void
test_private (void **state)
{
  kp_http *h = kp_http_new ();
  char *file = auth_file_for ("alice:secret");
  kp_registry *r = client (h, "test/private", NULL, file, 1);
  collected c = { 0 };
  kp_error *err = NULL;
  /* B_PRIV needs a token (the first), and expires it; B_REDIR is then refused, gets a
     second token, and is redirected to the storage server, which refuses any
     Authorization header: so it arriving proves the token stayed behind. */
  if (fetch (r, (int[]){ B_PRIV, B_REDIR, -1 }, &c, &err) < 0)
    fail_msg ("%s", err->message);
  assert_blob (&c, 0, B_PRIV);
  assert_blob (&c, 1, B_REDIR);
  const kp_registry_stats *s = kp_registry_get_stats (r);
  assert_int_equal (s->token_requests, 2);
  assert_int_equal (s->blob_requests, 4);
  collected_clear (&c);
  kp_registry_free (r);

  /* The same through --creds. */
  kp_registry_options opts = { .username = "alice", .password = "secret", .parallel = 1 };
  r = kp_registry_new (h, server_host, "test/private", &opts, NULL);
  assert_int_equal (fetch (r, (int[]){ B_REDIR, -1 }, &c, NULL), 0);
  assert_blob (&c, 0, B_REDIR);
  collected_clear (&c);
  kp_registry_free (r);
  unlink (file);
  free (file);

  char want[256];
  file = auth_file_for ("alice:wrong");
  r = client (h, "test/private", NULL, file, 1);
  err = NULL;
  assert_int_equal (fetch (r, (int[]){ B_REDIR, -1 }, &c, &err), -1);
  snprintf (want, sizeof want, "wrong credentials for %s (from %s)", server_host, file);
  assert_true (contains (err->message, want));
  assert_true (contains (err->hint, file));
  assert_int_equal (c.discarded[0], 1);
  kp_error_free (err);
  collected_clear (&c);
  kp_registry_free (r);
  unlink (file);
  free (file);

  file = auth_file_for (NULL);
  r = client (h, "test/private", NULL, file, 1);
  err = NULL;
  assert_int_equal (fetch (r, (int[]){ B_REDIR, -1 }, &c, &err), -1);
  snprintf (want, sizeof want, "%s requires a login to pull test/private", server_host);
  assert_true (contains (err->message, want));
  snprintf (want, sizeof want, "podman login %s", server_host);
  assert_true (contains (err->hint, want));
  kp_error_free (err);
  collected_clear (&c);
  kp_registry_free (r);
  unlink (file);
  free (file);
  kp_http_free (h);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_challenges),
    cmocka_unit_test (test_base64),
    cmocka_unit_test (test_auth_keys),
    cmocka_unit_test (test_auth_order),
    cmocka_unit_test (test_platform_selection),
    cmocka_unit_test (test_platform_strings),
    cmocka_unit_test (test_image_manifests),
    cmocka_unit_test (test_loopback_rule),
    cmocka_unit_test (test_http_exchange),
    cmocka_unit_test (test_registry_resolve),
    cmocka_unit_test (test_blobs),
    cmocka_unit_test (test_private),
  };
  return cmocka_run_group_tests (tests, server_start, server_stop);
}
