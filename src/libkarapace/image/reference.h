/* reference.h — image references: what a manifest's `image = "…"` names (docs/images.md).
 *
 * A reference is parsed lexically, without touching the network or the filesystem, into
 * one of seven kinds and a canonical text. The canonical text is stable (the identity of an
 * environment may depend on it) and round-trips: parsing a canonical reference gives the
 * same canonical reference back. Aliases (`debian/bookworm`, `rolling`, …) come from a
 * table the caller owns, built with kp_image_aliases_new_default() and adjusted with
 * kp_image_aliases_set(), so that a configuration file can override them. */
#ifndef KP_IMAGE_REFERENCE_H
#define KP_IMAGE_REFERENCE_H

#include "base/error.h"

typedef enum kp_ref_kind
{
  KP_REF_OCI,        /* docker://REGISTRY/REPOSITORY[:TAG][@DIGEST], or the bare form */
  KP_REF_LXC,        /* lxc://SERVER/DISTRO/RELEASE[/VARIANT], lxc:DISTRO/RELEASE[/VARIANT] */
  KP_REF_FILE,       /* file:///ABS/rootfs.tar[.gz|.xz|.zst][#sha256=HEX], ./rel.tar, /abs.tar */
  KP_REF_DIR,        /* dir:///ABS, or a plain path without a tarball suffix */
  KP_REF_OCI_LAYOUT, /* oci-layout:///ABS[:TAG] */
  KP_REF_URL,        /* http(s)://HOST/PATH[#sha256=HEX|#blake3=HEX] */
  KP_REF_DEBIAN,     /* debian+http(s)://MIRROR/PATH#SUITE[/VARIANT], ubuntu+…, and
                        debian:SUITE[/VARIANT], ubuntu:SUITE[/VARIANT] */
} kp_ref_kind;

typedef struct kp_image_ref
{
  kp_ref_kind kind;
  char *input;     /* as the user wrote it */
  char *canonical; /* the normal form, e.g. docker://docker.io/library/debian:bookworm */

  /* KP_REF_OCI */
  char *registry;   /* host[:port], "docker.io" by default */
  char *repository; /* "library/debian" */
  char *tag;        /* NULL only when a digest is given without a tag */
  char *digest;     /* "sha256:<64 hex>" or "sha512:<128 hex>", or NULL */

  /* KP_REF_LXC */
  char *server;  /* "images.linuxcontainers.org" by default */
  char *distro;  /* "ubuntu" */
  char *release; /* "noble" */
  char *variant; /* LXC: "default" by default; Debian: "minbase" (default) or "standard" */

  /* KP_REF_FILE, KP_REF_DIR, KP_REF_OCI_LAYOUT, KP_REF_URL */
  char *path_or_url;   /* absolute, normalised path; or the URL without its fragment */
  char *layout_tag;    /* KP_REF_OCI_LAYOUT: the tag after the path, or NULL */
  char *expect_digest; /* KP_REF_FILE, KP_REF_URL: "sha256:HEX" or "blake3:HEX", or NULL */

  /* KP_REF_DEBIAN */
  char *distribution; /* "debian" or "ubuntu" */
  char *suite;        /* "bookworm" */
  char *mirror;       /* "http://deb.debian.org/debian" (no trailing slash); NULL for
                         debian:SUITE (the configured mirror, else the default) */

  char *alias; /* the alias the reference came from, or NULL */
} kp_image_ref;

/* A table of aliases: name -> canonical reference. Owned by the caller; the library keeps
 * no global table. */
typedef struct kp_image_aliases
{
  size_t n;
  char **names;   /* n entries, in insertion order */
  char **targets; /* n canonical references */
} kp_image_aliases;

/* The built-in aliases of docs/images.md. */
kp_image_aliases *kp_image_aliases_new_default (void);
/* An empty table. */
kp_image_aliases *kp_image_aliases_new (void);
/* Add an alias or replace its target. The name is lowercase letters, digits and "./-_"; the
 * target must parse as a reference without aliases (aliases do not chain) and without a
 * manifest directory; its canonical form is stored. */
int kp_image_aliases_set (kp_image_aliases *a, const char *name, const char *target,
                          kp_error **err);
/* The canonical target of an alias, or NULL. */
const char *kp_image_aliases_lookup (const kp_image_aliases *a, const char *name);
void kp_image_aliases_free (kp_image_aliases *a);
void kp_image_aliases_freep (kp_image_aliases **a);
#define kp_cleanup_image_aliases __attribute__ ((cleanup (kp_image_aliases_freep)))

/* Parse `text` into *out (which is overwritten; clear it with kp_image_ref_clear()).
 * `manifest_dir` (absolute) resolves plain relative paths ("./rootfs.tar"); with NULL they
 * are an error. `aliases` may be NULL: then no alias is resolved and no name is rejected as
 * an unknown alias. On failure *out is left cleared and *err says which character is wrong,
 * with a hint; status KP_EXIT_FAILURE. */
int kp_image_ref_parse (const char *text, const char *manifest_dir,
                        const kp_image_aliases *aliases, kp_image_ref *out, kp_error **err);
void kp_image_ref_clear (kp_image_ref *r);
#define kp_cleanup_image_ref __attribute__ ((cleanup (kp_image_ref_clear)))

/* "oci", "lxc", "file", "dir", "oci-layout", "url", "debian". */
const char *kp_ref_kind_name (kp_ref_kind kind);

#endif
