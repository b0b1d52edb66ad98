/* Unit tests for image/reference.c: every form of docs/images.md, its normalisation, the
 * errors a user sees for malformed references, round trips of canonical forms and aliases. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "image/reference.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define H16 "0123456789abcdef"
#define H64 H16 H16 H16 H16
#define H128 H64 H64

/* The four kind-specific fields, in this order:
 *   OCI: registry, repository, tag, digest
 *   LXC: server, distro, release, variant
 *   FILE, DIR, OCI_LAYOUT, URL: path_or_url, layout_tag, expect_digest, (unused)
 *   DEBIAN: distribution, suite, mirror, (unused) */
typedef struct valid_case
{
  const char *input;
  kp_ref_kind kind;
  const char *canonical;
  const char *f[4];
  const char *alias;
} valid_case;

static const valid_case valid_cases[] = {
  /* OCI, bare, docker's normalisation */
  { "fedora:41", KP_REF_OCI, "docker://docker.io/library/fedora:41",
    { "docker.io", "library/fedora", "41", NULL } },
  { "fedora", KP_REF_OCI, "docker://docker.io/library/fedora:latest",
    { "docker.io", "library/fedora", "latest", NULL } },
  { "library/debian:12", KP_REF_OCI, "docker://docker.io/library/debian:12",
    { "docker.io", "library/debian", "12", NULL } },
  { "someone/tool", KP_REF_OCI, "docker://docker.io/someone/tool:latest",
    { "docker.io", "someone/tool", "latest", NULL } },
  { "docker.io/debian", KP_REF_OCI, "docker://docker.io/library/debian:latest",
    { "docker.io", "library/debian", "latest", NULL } },
  { "index.docker.io/debian:sid", KP_REF_OCI, "docker://docker.io/library/debian:sid",
    { "docker.io", "library/debian", "sid", NULL } },
  { "quay.io/fedora/fedora:41", KP_REF_OCI, "docker://quay.io/fedora/fedora:41",
    { "quay.io", "fedora/fedora", "41", NULL } },
  { "localhost/img", KP_REF_OCI, "docker://localhost/img:latest",
    { "localhost", "img", "latest", NULL } },
  { "localhost:5000/a/b/c:v1.2_3-x", KP_REF_OCI, "docker://localhost:5000/a/b/c:v1.2_3-x",
    { "localhost:5000", "a/b/c", "v1.2_3-x", NULL } },
  { "[::1]:5000/img:1", KP_REF_OCI, "docker://[::1]:5000/img:1",
    { "[::1]:5000", "img", "1", NULL } },
  { "[fe80::1]/img", KP_REF_OCI, "docker://[fe80::1]/img:latest",
    { "[fe80::1]", "img", "latest", NULL } },
  { "Registry/img", KP_REF_OCI, "docker://Registry/img:latest",
    { "Registry", "img", "latest", NULL } },
  { "my-registry.example.com:443/x.y_z__w---v:_t", KP_REF_OCI,
    "docker://my-registry.example.com:443/x.y_z__w---v:_t",
    { "my-registry.example.com:443", "x.y_z__w---v", "_t", NULL } },
  { "debian@sha256:" H64, KP_REF_OCI, "docker://docker.io/library/debian@sha256:" H64,
    { "docker.io", "library/debian", NULL, "sha256:" H64 } },
  { "debian:bookworm@sha256:" H64, KP_REF_OCI,
    "docker://docker.io/library/debian:bookworm@sha256:" H64,
    { "docker.io", "library/debian", "bookworm", "sha256:" H64 } },
  { "alpine:" H128, KP_REF_OCI, "docker://docker.io/library/alpine:" H128,
    { "docker.io", "library/alpine", H128, NULL } },
  { "ghcr.io/o/r@sha512:" H128, KP_REF_OCI, "docker://ghcr.io/o/r@sha512:" H128,
    { "ghcr.io", "o/r", NULL, "sha512:" H128 } },
  /* OCI, explicit */
  { "docker://debian:bookworm", KP_REF_OCI, "docker://docker.io/library/debian:bookworm",
    { "docker.io", "library/debian", "bookworm", NULL } },
  { "docker://docker.io/library/debian:bookworm", KP_REF_OCI,
    "docker://docker.io/library/debian:bookworm",
    { "docker.io", "library/debian", "bookworm", NULL } },
  { "docker://registry.opensuse.org/opensuse/tumbleweed", KP_REF_OCI,
    "docker://registry.opensuse.org/opensuse/tumbleweed:latest",
    { "registry.opensuse.org", "opensuse/tumbleweed", "latest", NULL } },
  { "docker://alpine/git", KP_REF_OCI, "docker://docker.io/alpine/git:latest",
    { "docker.io", "alpine/git", "latest", NULL } },
  { "docker://lxc:tag", KP_REF_OCI, "docker://docker.io/library/lxc:tag",
    { "docker.io", "library/lxc", "tag", NULL } },
  /* LXC */
  { "lxc:ubuntu/noble", KP_REF_LXC, "lxc://images.linuxcontainers.org/ubuntu/noble/default",
    { "images.linuxcontainers.org", "ubuntu", "noble", "default" } },
  { "lxc:alpine/3.20/cloud", KP_REF_LXC,
    "lxc://images.linuxcontainers.org/alpine/3.20/cloud",
    { "images.linuxcontainers.org", "alpine", "3.20", "cloud" } },
  { "lxc://images.example.org:8443/centos/9-Stream", KP_REF_LXC,
    "lxc://images.example.org:8443/centos/9-Stream/default",
    { "images.example.org:8443", "centos", "9-Stream", "default" } },
  { "lxc://mirror/debian/trixie/default", KP_REF_LXC, "lxc://mirror/debian/trixie/default",
    { "mirror", "debian", "trixie", "default" } },
  /* Local tarballs and directories */
  { "file:///srv/rootfs.tar", KP_REF_FILE, "file:///srv/rootfs.tar",
    { "/srv/rootfs.tar", NULL, NULL, NULL } },
  { "file:///srv//x/../rootfs.tar.zst", KP_REF_FILE, "file:///srv/rootfs.tar.zst",
    { "/srv/rootfs.tar.zst", NULL, NULL, NULL } },
  { "file:///srv/rootfs.tar.gz#sha256=" H64, KP_REF_FILE, "file:///srv/rootfs.tar.gz#sha256=" H64,
    { "/srv/rootfs.tar.gz", NULL, "sha256:" H64, NULL } },
  { "./images/rootfs.tar.xz", KP_REF_FILE, "file:///project/images/rootfs.tar.xz",
    { "/project/images/rootfs.tar.xz", NULL, NULL, NULL } },
  { "../shared/rootfs.tar", KP_REF_FILE, "file:///shared/rootfs.tar",
    { "/shared/rootfs.tar", NULL, NULL, NULL } },
  { "/abs/rootfs.tar#blake3=" H64, KP_REF_FILE, "file:///abs/rootfs.tar#blake3=" H64,
    { "/abs/rootfs.tar", NULL, "blake3:" H64, NULL } },
  { "./rootfs", KP_REF_DIR, "dir:///project/rootfs", { "/project/rootfs", NULL, NULL, NULL } },
  { "/var/lib/tree/", KP_REF_DIR, "dir:///var/lib/tree", { "/var/lib/tree", NULL, NULL, NULL } },
  { "dir:///var/lib/tree", KP_REF_DIR, "dir:///var/lib/tree",
    { "/var/lib/tree", NULL, NULL, NULL } },
  { "oci-layout:///srv/layout", KP_REF_OCI_LAYOUT, "oci-layout:///srv/layout",
    { "/srv/layout", NULL, NULL, NULL } },
  { "oci-layout:///srv/./layout:v1", KP_REF_OCI_LAYOUT, "oci-layout:///srv/layout:v1",
    { "/srv/layout", "v1", NULL, NULL } },
  /* URLs */
  { "https://example.org/images/rootfs.tar.zst", KP_REF_URL,
    "https://example.org/images/rootfs.tar.zst",
    { "https://example.org/images/rootfs.tar.zst", NULL, NULL, NULL } },
  { "http://10.0.0.1:8080/r.tar#sha256=" H64, KP_REF_URL, "http://10.0.0.1:8080/r.tar#sha256=" H64,
    { "http://10.0.0.1:8080/r.tar", NULL, "sha256:" H64, NULL } },
  { "https://example.org/r.tar?x=1#blake3=" H64, KP_REF_URL,
    "https://example.org/r.tar?x=1#blake3=" H64,
    { "https://example.org/r.tar?x=1", NULL, "blake3:" H64, NULL } },
  /* Debian and Ubuntu mirrors */
  { "debian+http://deb.debian.org/debian#bookworm", KP_REF_DEBIAN,
    "debian+http://deb.debian.org/debian#bookworm",
    { "debian", "bookworm", "http://deb.debian.org/debian", "minbase" } },
  { "debian+https://deb.debian.org/debian/#trixie", KP_REF_DEBIAN,
    "debian+https://deb.debian.org/debian#trixie",
    { "debian", "trixie", "https://deb.debian.org/debian", "minbase" } },
  { "debian+http://127.0.0.1:8080/debian#sid/minbase", KP_REF_DEBIAN,
    "debian+http://127.0.0.1:8080/debian#sid",
    { "debian", "sid", "http://127.0.0.1:8080/debian", "minbase" } },
  { "ubuntu+http://archive.ubuntu.com/ubuntu#noble/standard", KP_REF_DEBIAN,
    "ubuntu+http://archive.ubuntu.com/ubuntu#noble/standard",
    { "ubuntu", "noble", "http://archive.ubuntu.com/ubuntu", "standard" } },
  { "debian:bookworm", KP_REF_DEBIAN, "debian:bookworm",
    { "debian", "bookworm", NULL, "minbase" } },
  { "debian:trixie/standard", KP_REF_DEBIAN, "debian:trixie/standard",
    { "debian", "trixie", NULL, "standard" } },
  { "ubuntu:noble/minbase", KP_REF_DEBIAN, "ubuntu:noble",
    { "ubuntu", "noble", NULL, "minbase" } },
  /* Aliases */
  { "debian/bookworm", KP_REF_DEBIAN, "debian:bookworm",
    { "debian", "bookworm", NULL, "minbase" }, "debian/bookworm" },
  { "debian", KP_REF_DEBIAN, "debian:bookworm",
    { "debian", "bookworm", NULL, "minbase" }, "debian" },
  { "ubuntu", KP_REF_DEBIAN, "ubuntu:noble",
    { "ubuntu", "noble", NULL, "minbase" }, "ubuntu" },
  { "rolling", KP_REF_OCI, "docker://registry.opensuse.org/opensuse/tumbleweed:latest",
    { "registry.opensuse.org", "opensuse/tumbleweed", "latest", NULL }, "rolling" },
  { "opensuse/tumbleweed", KP_REF_OCI, "docker://registry.opensuse.org/opensuse/tumbleweed:latest",
    { "registry.opensuse.org", "opensuse/tumbleweed", "latest", NULL }, "opensuse/tumbleweed" },
  { "opensuse/leap", KP_REF_OCI, "docker://registry.opensuse.org/opensuse/leap:latest",
    { "registry.opensuse.org", "opensuse/leap", "latest", NULL }, "opensuse/leap" },
  { "arch", KP_REF_OCI, "docker://docker.io/library/archlinux:latest",
    { "docker.io", "library/archlinux", "latest", NULL }, "arch" },
  { "archlinux", KP_REF_OCI, "docker://docker.io/library/archlinux:latest",
    { "docker.io", "library/archlinux", "latest", NULL }, "archlinux" },
  { "fedora/41", KP_REF_OCI, "docker://registry.fedoraproject.org/fedora:41",
    { "registry.fedoraproject.org", "fedora", "41", NULL }, "fedora/41" },
  { "alpine/3.20", KP_REF_OCI, "docker://docker.io/library/alpine:3.20",
    { "docker.io", "library/alpine", "3.20", NULL }, "alpine/3.20" },
  { "ubuntu/22.04", KP_REF_DEBIAN, "ubuntu:jammy",
    { "ubuntu", "jammy", NULL, "minbase" }, "ubuntu/22.04" },
  /* An alias family word with a tag is an ordinary repository. */
  { "alpine/git:latest", KP_REF_OCI, "docker://docker.io/alpine/git:latest",
    { "docker.io", "alpine/git", "latest", NULL } },
};

/* The rows' aliases column says whether an alias was used; the "debian" and "ubuntu" rows
 * appear twice because without aliases they are Docker Hub names. */
static const valid_case no_alias_cases[] = {
  { "debian", KP_REF_OCI, "docker://docker.io/library/debian:latest",
    { "docker.io", "library/debian", "latest", NULL } },
  { "debian/bookworm", KP_REF_OCI, "docker://docker.io/debian/bookworm:latest",
    { "docker.io", "debian/bookworm", "latest", NULL } },
  { "debain/bookworm", KP_REF_OCI, "docker://docker.io/debain/bookworm:latest",
    { "docker.io", "debain/bookworm", "latest", NULL } },
};

static void
kind_fields (const kp_image_ref *r, const char *out[4])
{
  switch (r->kind)
    {
    case KP_REF_OCI:
      out[0] = r->registry, out[1] = r->repository, out[2] = r->tag, out[3] = r->digest;
      break;
    case KP_REF_LXC:
      out[0] = r->server, out[1] = r->distro, out[2] = r->release, out[3] = r->variant;
      break;
    case KP_REF_DEBIAN:
      out[0] = r->distribution, out[1] = r->suite, out[2] = r->mirror, out[3] = r->variant;
      break;
    default:
      out[0] = r->path_or_url, out[1] = r->layout_tag, out[2] = r->expect_digest, out[3] = NULL;
      break;
    }
}

static void
check_valid (const valid_case *c, const kp_image_aliases *aliases)
{
  kp_cleanup_error kp_error *err = NULL;
  kp_cleanup_image_ref kp_image_ref r = { 0 };
  if (kp_image_ref_parse (c->input, "/project", aliases, &r, &err) < 0)
    fail_msg ("'%s': %s", c->input, err->message);
  const char *got[4];
  kind_fields (&r, got);
  if (r.kind != c->kind)
    fail_msg ("'%s': kind %s, want %s", c->input, kp_ref_kind_name (r.kind),
              kp_ref_kind_name (c->kind));
  if (strcmp (r.canonical, c->canonical) != 0)
    fail_msg ("'%s': canonical '%s', want '%s'", c->input, r.canonical, c->canonical);
  assert_string_equal (r.input, c->input);
  for (int i = 0; i < 4; i++)
    if (!kp_str_equal0 (got[i], c->f[i]))
      fail_msg ("'%s': field %d is '%s', want '%s'", c->input, i, got[i] ? got[i] : "(null)",
                c->f[i] ? c->f[i] : "(null)");
  if (!kp_str_equal0 (r.alias, c->alias))
    fail_msg ("'%s': alias '%s', want '%s'", c->input, r.alias ? r.alias : "(null)",
              c->alias ? c->alias : "(null)");
  /* Fields not of this kind stay empty. */
  if (r.kind != KP_REF_OCI)
    assert_true (r.registry == NULL && r.repository == NULL && r.tag == NULL);
  if (r.kind != KP_REF_LXC)
    assert_true (r.server == NULL && r.distro == NULL);
  if (r.kind != KP_REF_DEBIAN)
    assert_true (r.suite == NULL && r.mirror == NULL);
}

static void
test_valid (void **state)
{
  kp_cleanup_image_aliases kp_image_aliases *aliases = kp_image_aliases_new_default ();
  assert_true (KP_N_ELEMENTS (valid_cases) >= 40);
  for (size_t i = 0; i < KP_N_ELEMENTS (valid_cases); i++)
    check_valid (&valid_cases[i], aliases);
}

static void
test_valid_without_aliases (void **state)
{
  for (size_t i = 0; i < KP_N_ELEMENTS (no_alias_cases); i++)
    check_valid (&no_alias_cases[i], NULL);
}

/* Parsing a canonical reference gives it back, with and without aliases in play. */
static void
test_round_trip (void **state)
{
  kp_cleanup_image_aliases kp_image_aliases *aliases = kp_image_aliases_new_default ();
  for (size_t i = 0; i < KP_N_ELEMENTS (valid_cases); i++)
    {
      const char *canonical = valid_cases[i].canonical;
      for (int with = 0; with < 2; with++)
        {
          kp_cleanup_error kp_error *err = NULL;
          kp_cleanup_image_ref kp_image_ref r = { 0 };
          if (kp_image_ref_parse (canonical, NULL, with ? aliases : NULL, &r, &err) < 0)
            fail_msg ("'%s': %s", canonical, err->message);
          if (strcmp (r.canonical, canonical) != 0)
            fail_msg ("'%s' reads back as '%s'", canonical, r.canonical);
          assert_int_equal (r.kind, valid_cases[i].kind);
          assert_null (r.alias);
        }
    }
  /* Every default alias target is canonical already. */
  for (size_t i = 0; i < aliases->n; i++)
    {
      kp_cleanup_error kp_error *err = NULL;
      kp_cleanup_image_ref kp_image_ref r = { 0 };
      assert_int_equal (kp_image_ref_parse (aliases->targets[i], NULL, NULL, &r, &err), 0);
      assert_string_equal (r.canonical, aliases->targets[i]);
    }
}

typedef struct invalid_case
{
  const char *input;
  const char *message; /* a fragment of the message */
  const char *hint;    /* a fragment of the hint, or NULL */
} invalid_case;

static const invalid_case invalid_cases[] = {
  { "", "empty reference", "for example" },
  { "Debian:bookworm", "uppercase letter 'D' in the repository at character 1", "lowercase" },
  { "docker.io/library/Debian", "uppercase letter 'D' in the repository at character 19", NULL },
  { "docker://", "missing repository at character 10", "docker://docker.io" },
  { "alpine:", "empty tag at character 8", "up to 128" },
  { "alpine:-x", "invalid character '-' in the tag at character 8", NULL },
  { "alpine:" H64 H64 "x", "tag longer than 128", NULL },
  { "debian:", "missing suite (bookworm, trixie, noble, ...) at character 8", "debian:bookworm" },
  { "debian:-x", "invalid character '-' in the suite at character 8", NULL },
  { "ubuntu:noble/big", "unknown variant 'big' at character 14", "minbase" },
  { "debian+http://m/debian#Bookworm", "invalid character 'B' in the suite", NULL },
  { "debian@sha256:abc", "digest has 3 hexadecimal digits, not 64", "sha256:" },
  { "debian@sha256:" H64 "0", "digest has 65 hexadecimal digits, not 64", NULL },
  { "debian@sha256:" "0123456789ABCDEF" H16 H16 H16, "invalid character 'A' in the digest", NULL },
  { "debian@md5:" H16 H16, "unsupported digest algorithm 'md5'", NULL },
  { "debian@", "empty digest", NULL },
  { "a..b/c", "misplaced '.' in the registry", NULL },
  { "a//b", "empty repository component at character 3", NULL },
  { "foo_-bar", "misplaced separator '_' in the repository", NULL },
  { "foo___bar", "misplaced separator '_'", NULL },
  { "foo-", "misplaced separator '-'", NULL },
  { "localhost:0/x", "missing or zero port", NULL },
  { "localhost:70000/x", "above 65535", NULL },
  { "[::1/x", "unterminated '['", "brackets" },
  { "[::g]/x", "invalid character 'g' in IPv6 address", NULL },
  { "debian bookworm", "space or control character at character 7", NULL },
  { "lxc://images.linuxcontainers.org/ubuntu", "missing release", "lxc://SERVER" },
  { "lxc://", "the server is empty at character 7", NULL },
  { "lxc:ubuntu", "missing release", NULL },
  { "lxc://images.linuxcontainers.org", "missing distribution and release", NULL },
  { "lxc:ubuntu/", "missing release at character 12", NULL },
  { "lxc:a/b/c/d", "too many components", NULL },
  { "file://relative/rootfs.tar", "file:// needs an absolute path at character 8", "file:///" },
  { "file:///srv/rootfs", "file:// names a root filesystem tarball", "dir://" },
  { "file:///r.tar#sha256=abc", "expected digest has 3 hexadecimal digits, not 64", NULL },
  { "file:///r.tar#md5=abc", "malformed expected digest '#md5=abc'", "#sha256=HEX" },
  { "dir://rel", "dir:// needs an absolute path", NULL },
  { "oci-layout://rel", "oci-layout:// needs an absolute path", NULL },
  { "oci-layout:///srv/l:", "empty tag", NULL },
  { "./rootfs#sha256=" H64, "only for tarballs", NULL },
  { "https://example.org/r.tar#sha256=xyz", "invalid character 'x' in the expected digest "
    "at character 34", "lowercase" },
  { "https://example.org/r.tar#sha256", "malformed expected digest '#sha256'", NULL },
  { "https://example.org/r.tar#sha256=" H64 "ff", "expected digest has 66", NULL },
  { "https:///r.tar", "the URL host is empty at character 9", NULL },
  { "https://user:pw@example.org/r.tar", "user information in a URL at character 16", NULL },
  { "debian+http://deb.debian.org/debian", "missing '#SUITE'", "debian+http://" },
  { "debian+ftp://x/debian#sid", "a debian mirror is an http:// or https:// URL", NULL },
  { "ubuntu+https://archive.ubuntu.com/ubuntu#Noble", "invalid character 'N' in the suite",
    NULL },
  { "ftp://example.org/r.tar", "unknown scheme 'ftp://'", "docker://" },
  { "debain/bookworm", "unknown alias 'debain/bookworm'", "did you mean 'debian/bookworm'?" },
  { "debian/buster", "unknown alias 'debian/buster'", "known aliases: rolling, " },
  { "fedora/39", "unknown alias 'fedora/39'", "did you mean 'fedora/" },
  { "alpine/3.22", "unknown alias 'alpine/3.22'", "docker://alpine/3.22" },
};

static void
test_invalid (void **state)
{
  kp_cleanup_image_aliases kp_image_aliases *aliases = kp_image_aliases_new_default ();
  for (size_t i = 0; i < KP_N_ELEMENTS (invalid_cases); i++)
    {
      const invalid_case *c = &invalid_cases[i];
      kp_cleanup_error kp_error *err = NULL;
      kp_image_ref r = { 0 };
      if (kp_image_ref_parse (c->input, "/project", aliases, &r, &err) == 0)
        fail_msg ("'%s' was accepted as '%s'", c->input, r.canonical);
      assert_non_null (err);
      assert_int_equal (err->status, KP_EXIT_FAILURE);
      assert_null (r.canonical);
      assert_null (r.input);
      if (strstr (err->message, c->message) == NULL)
        fail_msg ("'%s': message '%s' lacks '%s'", c->input, err->message, c->message);
      if (c->hint != NULL && (err->hint == NULL || strstr (err->hint, c->hint) == NULL))
        fail_msg ("'%s': hint '%s' lacks '%s'", c->input, err->hint ? err->hint : "(none)",
                  c->hint);
    }
}

/* Relative paths need a manifest directory. */
static void
test_relative_without_manifest (void **state)
{
  kp_cleanup_error kp_error *err = NULL;
  kp_image_ref r = { 0 };
  assert_int_equal (kp_image_ref_parse ("./rootfs.tar", NULL, NULL, &r, &err), -1);
  assert_non_null (strstr (err->message, "relative path without a manifest directory"));
}

static void
test_alias_override (void **state)
{
  kp_cleanup_image_aliases kp_image_aliases *aliases = kp_image_aliases_new_default ();
  size_t n = aliases->n;
  kp_cleanup_error kp_error *err = NULL;

  /* Replace a default: the stored target is canonical. */
  assert_int_equal (kp_image_aliases_set (aliases, "debian/bookworm",
                                          "lxc:debian/bookworm", &err), 0);
  assert_int_equal (aliases->n, n);
  assert_string_equal (kp_image_aliases_lookup (aliases, "debian/bookworm"),
                       "lxc://images.linuxcontainers.org/debian/bookworm/default");
  {
    kp_cleanup_image_ref kp_image_ref r = { 0 };
    assert_int_equal (kp_image_ref_parse ("debian/bookworm", NULL, aliases, &r, &err), 0);
    assert_int_equal (r.kind, KP_REF_LXC);
    assert_string_equal (r.alias, "debian/bookworm");
    assert_string_equal (r.input, "debian/bookworm");
  }

  /* Add a new one: its first word becomes an alias family. */
  assert_int_equal (kp_image_aliases_set (aliases, "work/base",
                                          "debian+https://deb.example.org/debian/#bookworm",
                                          &err), 0);
  assert_int_equal (aliases->n, n + 1);
  {
    kp_cleanup_image_ref kp_image_ref r = { 0 };
    assert_int_equal (kp_image_ref_parse ("work/base", NULL, aliases, &r, &err), 0);
    assert_string_equal (r.canonical, "debian+https://deb.example.org/debian#bookworm");
    kp_image_ref_clear (&r);
    assert_int_equal (kp_image_ref_parse ("work/other", NULL, aliases, &r, &err), -1);
    assert_non_null (strstr (err->message, "unknown alias 'work/other'"));
    kp_error_free (kp_steal_pointer (&err));
  }

  /* Bad names and targets are refused, and the table is unchanged. */
  assert_int_equal (kp_image_aliases_set (aliases, "Bad", "debian", &err), -1);
  assert_non_null (strstr (err->message, "image alias 'Bad'"));
  kp_error_free (kp_steal_pointer (&err));
  assert_int_equal (kp_image_aliases_set (aliases, "x", "Debian", &err), -1);
  assert_non_null (strstr (err->message, "image alias 'x': image reference 'Debian': uppercase"));
  kp_error_free (kp_steal_pointer (&err));
  assert_int_equal (kp_image_aliases_set (aliases, "y", "./rootfs.tar", &err), -1);
  kp_error_free (kp_steal_pointer (&err));
  assert_int_equal (aliases->n, n + 1);

  /* An empty table resolves nothing and rejects nothing. */
  kp_cleanup_image_aliases kp_image_aliases *empty = kp_image_aliases_new ();
  kp_cleanup_image_ref kp_image_ref r = { 0 };
  assert_int_equal (kp_image_ref_parse ("debian/bookworm", NULL, empty, &r, &err), 0);
  assert_string_equal (r.canonical, "docker://docker.io/debian/bookworm:latest");
  assert_null (r.alias);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_valid),
    cmocka_unit_test (test_valid_without_aliases),
    cmocka_unit_test (test_round_trip),
    cmocka_unit_test (test_invalid),
    cmocka_unit_test (test_relative_without_manifest),
    cmocka_unit_test (test_alias_override),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
