/* test-simplestreams.c — choosing an LXC image from a simplestreams index: the index's
 * product file, the newest usable build per distribution, release (also by alias),
 * architecture and variant, the errors that list what a server offers, and the refusal of
 * hostile paths and digests. Fixtures: tests/data/simplestreams/ (trimmed copies of the
 * structure images.linuxcontainers.org serves). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "image/simplestreams.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *
read_data (const char *name, size_t *len)
{
  const char *dir = getenv ("KP_TEST_DATA");
  assert_non_null (dir);
  char path[4096];
  snprintf (path, sizeof path, "%s/simplestreams/%s", dir, name);
  FILE *f = fopen (path, "rb");
  if (f == NULL)
    fail_msg ("cannot open %s", path);
  assert_int_equal (fseek (f, 0, SEEK_END), 0);
  long n = ftell (f);
  assert_true (n >= 0);
  assert_int_equal (fseek (f, 0, SEEK_SET), 0);
  char *buf = malloc ((size_t) n + 1);
  assert_non_null (buf);
  assert_int_equal (fread (buf, 1, (size_t) n, f), (size_t) n);
  buf[n] = '\0';
  fclose (f);
  *len = (size_t) n;
  return buf;
}

/* ---- index.json ---------------------------------------------------------------------- */

static void
test_products_path (void **state)
{
  (void) state;
  size_t len;
  char *index = read_data ("index.json", &len);
  char *path = NULL;
  kp_error *err = NULL;
  /* The image-downloads entry, found among others rather than assumed. */
  assert_int_equal (kp_simplestreams_products_path (index, len, &path, &err), 0);
  assert_null (err);
  assert_string_equal (path, "streams/v1/images.json");
  free (path);
  free (index);
}

static void
test_products_path_refused (void **state)
{
  (void) state;
  static const struct
  {
    const char *json, *message;
  } cases[] = {
    { "{\"index\":{\"images\":{\"datatype\":\"image-downloads\",\"path\":\"../images.json\"}}}",
      "contains \"..\"" },
    { "{\"index\":{\"images\":{\"datatype\":\"image-downloads\",\"path\":\"/etc/passwd\"}}}",
      "is absolute" },
    { "{\"index\":{\"images\":{\"datatype\":\"image-downloads\",\"path\":\"a/b?c\"}}}",
      "'?'" },
    { "{\"index\":{\"images\":{\"datatype\":\"image-downloads\",\"path\":\"\"}}}", "empty" },
    { "{\"index\":{\"images\":{\"datatype\":\"image-downloads\"}}}", "has no path" },
    { "{\"index\":{\"tools\":{\"datatype\":\"content-download\",\"path\":\"t.json\"}}}",
      "no image-downloads" },
    { "{\"format\":\"index:1.0\"}", "no \"index\" object" },
    { "[1, 2]", "not a JSON object" },
    { "{\"index\": ", "not valid JSON" },
    /* Two readers of a document with duplicate keys could see different entries. */
    { "{\"index\":{\"a\":{\"datatype\":\"image-downloads\",\"path\":\"x.json\"},"
      "\"a\":{\"datatype\":\"image-downloads\",\"path\":\"y.json\"}}}",
      "not valid JSON" },
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
    {
      char *path = (char *) "untouched";
      kp_error *err = NULL;
      assert_int_equal (kp_simplestreams_products_path (cases[i].json, strlen (cases[i].json),
                                                        &path, &err),
                        -1);
      assert_null (path);
      assert_non_null (err);
      assert_int_equal (err->status, KP_EXIT_FAILURE);
      if (strstr (err->message, cases[i].message) == NULL)
        fail_msg ("case %zu: '%s' lacks '%s'", i, err->message, cases[i].message);
      kp_error_free (err);
    }
}

/* ---- images.json: choosing ----------------------------------------------------------- */

typedef struct expect
{
  const char *distro, *release, *arch, *variant;
  const char *product, *version, *sha256;
} expect;

static void
test_find (void **state)
{
  (void) state;
  size_t len;
  char *products = read_data ("images.json", &len);
  static const expect cases[] = {
    /* Three builds: the newest wins. */
    { "debian", "bookworm", "amd64", "default", "debian:bookworm:amd64:default",
      "20241120_05:24", "ef0e9ae8ea60afdbd6245f1956d7e44ccd83246531335b76b929afd7ba34b9ad" },
    { "debian", "bookworm", "i386", "cloud", "debian:bookworm:i386:cloud", "20241120_05:24",
      "ffc7e12a5d713870b371efebeb56beb0144efeb10a51db38faa243596b686c4d" },
    { "ubuntu", "noble", "arm64", "default", "ubuntu:noble:arm64:default", "20241120_07:42",
      "8341bbbdeb304913c480187a873db9bac6294300592969bc591143c0d2c91a6e" },
    /* The newest trixie build is a virtual machine only: the one before has a rootfs. */
    { "debian", "trixie", "amd64", "default", "debian:trixie:amd64:default", "20241120_05:24",
      "18c61b650142ef54223ebd25bdf34052b993761bd0d1731041e2b647ac2177d7" },
    /* The newest alpine root.tar.xz has no sha256: it cannot be checked, so it is passed
       over. */
    { "alpine", "3.20", "amd64", "default", "alpine:3.20:amd64:default", "20241119_13:00",
      "556c5639c956083f1d61e0134a9d8be57e5b90771e891185f0ed624bd6a9f1f8" },
    /* Case is ignored for the distribution and the release ("os": "Debian"). */
    { "Debian", "BOOKWORM", "amd64", "default", "debian:bookworm:amd64:default",
      "20241120_05:24", "ef0e9ae8ea60afdbd6245f1956d7e44ccd83246531335b76b929afd7ba34b9ad" },
    /* Releases by alias: "debian/12", "ubuntu/24.04". */
    { "debian", "12", "amd64", "default", "debian:bookworm:amd64:default", "20241120_05:24",
      "ef0e9ae8ea60afdbd6245f1956d7e44ccd83246531335b76b929afd7ba34b9ad" },
    { "debian", "12", "i386", "cloud", "debian:bookworm:i386:cloud", "20241120_05:24",
      "ffc7e12a5d713870b371efebeb56beb0144efeb10a51db38faa243596b686c4d" },
    { "ubuntu", "24.04", "arm64", "default", "ubuntu:noble:arm64:default", "20241120_07:42",
      "8341bbbdeb304913c480187a873db9bac6294300592969bc591143c0d2c91a6e" },
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
    {
      const expect *c = &cases[i];
      kp_lxc_image img;
      kp_error *err = NULL;
      if (kp_simplestreams_find (products, len, c->distro, c->release, c->arch, c->variant,
                                 &img, &err)
          < 0)
        fail_msg ("case %zu: %s", i, err->message);
      assert_string_equal (img.product, c->product);
      assert_string_equal (img.version, c->version);
      char want_sha[80], want_path[512];
      snprintf (want_sha, sizeof want_sha, "sha256:%s", c->sha256);
      assert_string_equal (img.sha256, want_sha);
      char d[64], r[64], a[64], v[64];
      assert_int_equal (sscanf (c->product, "%63[^:]:%63[^:]:%63[^:]:%63s", d, r, a, v), 4);
      snprintf (want_path, sizeof want_path, "images/%s/%s/%s/%s/%s/rootfs.tar.xz", d, r, a, v,
                c->version);
      assert_string_equal (img.path, want_path);
      assert_int_equal (img.size, 91230534);
      kp_lxc_image_clear (&img);
      assert_null (img.product);
      assert_null (img.sha256);
      kp_lxc_image_clear (&img); /* twice is harmless */
    }
  free (products);
}

/* The choice depends on the version strings, not on the order the server wrote them. */
static void
test_find_version_order (void **state)
{
  (void) state;
#define SHA(c) c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c \
    c c c c c c c c c c c c c c c c c c c c c c c c
  const char *doc = "{\"products\":{\"d:r:amd64:default\":{\"versions\":{"
                    "\"20241120_05:24\":{\"items\":{\"root.tar.xz\":{\"path\":\"b\",\"sha256\":\""
                    SHA ("b") "\",\"size\":2}}},"
                    "\"20241121_05:24\":{\"items\":{\"root.tar.xz\":{\"path\":\"c\",\"sha256\":\""
                    SHA ("c") "\"}}},"
                    "\"20241119_05:24\":{\"items\":{\"root.tar.xz\":{\"path\":\"a\",\"sha256\":\""
                    SHA ("a") "\",\"size\":1}}}}}}}";
  kp_lxc_image img;
  assert_int_equal (kp_simplestreams_find (doc, strlen (doc), "d", "r", "amd64", "default", &img,
                                           NULL),
                    0);
  assert_string_equal (img.version, "20241121_05:24");
  assert_string_equal (img.path, "c");
  assert_string_equal (img.sha256, "sha256:" SHA ("c"));
  assert_int_equal (img.size, 0); /* the index did not say */
  kp_lxc_image_clear (&img);

  /* An item found by its ftype under another name. */
  const char *renamed = "{\"products\":{\"d:r:amd64:default\":{\"versions\":{"
                        "\"1\":{\"items\":{\"rootfs\":{\"ftype\":\"root.tar.xz\",\"path\":\"p\","
                        "\"sha256\":\"" SHA ("d") "\",\"size\":7}}}}}}}";
  assert_int_equal (kp_simplestreams_find (renamed, strlen (renamed), "d", "r", "amd64",
                                           "default", &img, NULL),
                    0);
  assert_string_equal (img.path, "p");
  assert_int_equal (img.size, 7);
  kp_lxc_image_clear (&img);
#undef SHA
}

/* ---- images.json: what the errors say ------------------------------------------------ */

typedef struct bad_case
{
  const char *distro, *release, *arch, *variant;
  const char *message, *hint;
} bad_case;

static void
check_errors (const char *fixture, const bad_case *cases, size_t n)
{
  size_t len;
  char *products = read_data (fixture, &len);
  for (size_t i = 0; i < n; i++)
    {
      const bad_case *c = &cases[i];
      kp_lxc_image img;
      kp_error *err = NULL;
      memset (&img, 0xaa, sizeof img);
      assert_int_equal (kp_simplestreams_find (products, len, c->distro, c->release, c->arch,
                                               c->variant, &img, &err),
                        -1);
      /* Nothing is handed out on failure. */
      assert_null (img.product);
      assert_null (img.path);
      assert_null (img.sha256);
      assert_non_null (err);
      assert_int_equal (err->status, KP_EXIT_FAILURE);
      if (strstr (err->message, c->message) == NULL)
        fail_msg ("%s case %zu: message '%s' lacks '%s'", fixture, i, err->message, c->message);
      if (c->hint && (err->hint == NULL || strcmp (err->hint, c->hint) != 0))
        fail_msg ("%s case %zu: hint '%s', expected '%s'", fixture, i,
                  err->hint ? err->hint : "(none)", c->hint);
      kp_error_free (err);
    }
  free (products);
}

static void
test_find_errors (void **state)
{
  (void) state;
  static const bad_case cases[] = {
    { "arch", "rolling", "amd64", "default", "the server has no distribution 'arch'",
      "distributions offered: almalinux, alpine, debian, ubuntu" },
    { "debian", "buster", "amd64", "default", "the server has no release 'buster' of debian",
      "releases of debian: bookworm, trixie" },
    /* An alias of another distribution does not name a release of this one. */
    { "debian", "24.04", "amd64", "default", "no release '24.04' of debian",
      "releases of debian: bookworm, trixie" },
    { "debian", "bookworm", "s390x", "default", "debian/bookworm is not built for s390x",
      "architectures offered: amd64, arm64, i386" },
    { "debian", "trixie", "arm64", "default", "debian/trixie is not built for arm64",
      "architectures offered: amd64" },
    { "debian", "bookworm", "amd64", "minimal", "debian/bookworm has no variant 'minimal' for "
      "amd64", "variants offered: cloud, default" },
    { "ubuntu", "jammy", "amd64", "default", "ubuntu/jammy has no variant 'default'",
      "variants offered: cloud" },
    { "almalinux", "9", "amd64", "default", "almalinux:9:amd64:default has no build with a "
      "root.tar.xz", NULL },
  };
  check_errors ("images.json", cases, sizeof cases / sizeof *cases);
}

/* The newest build of each product is wrong in one way; an older good build exists, and it
 * must not be used instead: a server that answers like this is refused outright. */
static void
test_find_hostile (void **state)
{
  (void) state;
  static const bad_case cases[] = {
    { "evil", "dotdot", "amd64", "default", "path 'images/../../etc/shadow' of its "
      "root.tar.xz is unsafe: it contains \"..\"", NULL },
    { "evil", "absolute", "amd64", "default", "'/etc/shadow' of its root.tar.xz is unsafe: it "
      "is absolute", NULL },
    { "evil", "query", "amd64", "default", "is unsafe", NULL },
    { "evil", "encoded", "amd64", "default", "is unsafe", NULL },
    { "evil", "shortsha", "amd64", "default", "refusing evil:shortsha:amd64:default "
      "20241120_05:24: its root.tar.xz has a malformed sha256", NULL },
    { "evil", "uppersha", "amd64", "default", "malformed sha256", NULL },
    { "evil", "numsha", "amd64", "default", "malformed sha256", NULL },
    { "evil", "nopath", "amd64", "default", "its root.tar.xz has no path", NULL },
    { "evil", "negsize", "amd64", "default", "is not a non-negative integer", NULL },
  };
  check_errors ("images-hostile.json", cases, sizeof cases / sizeof *cases);
}

static void
test_find_malformed_documents (void **state)
{
  (void) state;
  static const struct
  {
    const char *json, *message;
  } cases[] = {
    { "{\"products\": [] }", "no \"products\" object" },
    { "{}", "no \"products\" object" },
    { "[\"products\"]", "not a JSON object" },
    { "{\"products\":{", "not valid JSON" },
    /* Product keys that are not DISTRO:RELEASE:ARCH:VARIANT are ignored. */
    { "{\"products\":{\"d:r:amd64\":{},\"d:r:amd64:default:x\":{},\"::amd64:default\":{}}}",
      "no distribution 'd'" },
    /* Two products matching one request: no guessing by key order. */
    { "{\"products\":{\"d:one:amd64:default\":{\"aliases\":\"d/x\",\"versions\":{}},"
      "\"d:two:amd64:default\":{\"aliases\":\"d/x/default\",\"versions\":{}}}}",
      "d/x is ambiguous on this server" },
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
    {
      kp_lxc_image img;
      kp_error *err = NULL;
      const char *release = strstr (cases[i].message, "ambiguous") ? "x" : "r";
      assert_int_equal (kp_simplestreams_find (cases[i].json, strlen (cases[i].json), "d",
                                               release, "amd64", "default", &img, &err),
                        -1);
      if (strstr (err->message, cases[i].message) == NULL)
        fail_msg ("case %zu: '%s' lacks '%s'", i, err->message, cases[i].message);
      kp_error_free (err);
    }
}

static void
test_arch_host (void **state)
{
  (void) state;
  static const char *const known[] = { "amd64", "arm64", "armhf", "i386", "ppc64el", "s390x",
                                       "riscv64" };
  const char *arch = kp_lxc_arch_host ();
  bool found = false;
  for (size_t i = 0; i < sizeof known / sizeof *known; i++)
    found = found || strcmp (arch, known[i]) == 0;
  if (!found)
    fail_msg ("kp_lxc_arch_host () = '%s', not an LXC architecture name", arch);
#if defined(__x86_64__)
  assert_string_equal (arch, "amd64");
#elif defined(__aarch64__)
  assert_string_equal (arch, "arm64");
#endif
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_products_path),
    cmocka_unit_test (test_products_path_refused),
    cmocka_unit_test (test_find),
    cmocka_unit_test (test_find_version_order),
    cmocka_unit_test (test_find_errors),
    cmocka_unit_test (test_find_hostile),
    cmocka_unit_test (test_find_malformed_documents),
    cmocka_unit_test (test_arch_host),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
