/* simplestreams.h — the index format of LXC image servers (images.linuxcontainers.org).
 *
 * A server publishes streams/v1/index.json, whose "index" object names product files; the
 * one with "datatype": "image-downloads" (streams/v1/images.json on the public servers)
 * lists the products:
 *
 *     "products": { "debian:bookworm:amd64:default": {
 *         "aliases": "debian/bookworm,debian/12,debian/bookworm/default,debian/12/default",
 *         "arch": "amd64", "os": "Debian", "release": "bookworm", "variant": "default",
 *         "versions": { "20241120_05:24": { "items": {
 *             "root.tar.xz": { "ftype": "root.tar.xz", "path": "images/…/rootfs.tar.xz",
 *                              "sha256": "…", "size": 91234567 },
 *             "lxd.tar.xz": …, "incus.tar.xz": …, "root.squashfs": … } } } } }
 *
 * The newest version that has a root.tar.xz with a sha256 wins; versions are build
 * timestamps (YYYYMMDD_HH:MM) and compare as text. Everything here is pure parsing: no
 * network, no filesystem. The documents are trusted as far as HTTPS makes them so (the
 * public servers sign neither file, docs/images.md); what they name is still checked: paths
 * must stay below the server's base URL and digests must be well formed, or the answer is
 * refused rather than used. Errors have status KP_EXIT_FAILURE. */
#ifndef KP_IMAGE_SIMPLESTREAMS_H
#define KP_IMAGE_SIMPLESTREAMS_H

#include "base/error.h"

#include <stddef.h>
#include <stdint.h>

/* The root filesystem tarball chosen for one product. */
typedef struct kp_lxc_image
{
  char *product; /* the product key: "debian:bookworm:amd64:default" */
  char *version; /* "20241120_05:24" */
  char *path;    /* relative to the server's base URL: "images/debian/…/rootfs.tar.xz";
                    never absolute, never containing "..", '?', '#', '\\' or blanks */
  char *sha256;  /* "sha256:" and 64 lowercase hexadecimal digits */
  uint64_t size; /* bytes, as the index says; 0 when the index does not say */
} kp_lxc_image;

/* The path of the image-downloads product file that index.json names, relative to the
 * server's base URL (a new string in *path). An index without one, a path that is absolute
 * or contains "..", or text that is not a JSON object is an error. */
int kp_simplestreams_products_path (const char *index_json, size_t len, char **path,
                                    kp_error **err);

/* Choose the newest root.tar.xz of DISTRO/RELEASE built for ARCH in VARIANT from a product
 * file. DISTRO matches the product key's first part or the "os" field, ignoring case
 * ("debian", "Debian"); RELEASE matches the key's second part or the "release" field,
 * ignoring case, or an alias of the product ("12" through "debian/12"). ARCH (LXC names:
 * amd64, arm64, …) and VARIANT match exactly.
 *
 * When nothing matches, the error says which part failed and its hint lists what the server
 * offers instead, in the server's order: the distributions; the releases of DISTRO; the
 * architectures of DISTRO/RELEASE; the variants for ARCH. A chosen build whose path is
 * unsafe or whose sha256 is malformed is refused (not skipped: an older build is not
 * silently used instead).
 * On success *out owns its strings (kp_lxc_image_clear()); on failure it is left cleared. */
int kp_simplestreams_find (const char *products_json, size_t len, const char *distro,
                           const char *release, const char *arch, const char *variant,
                           kp_lxc_image *out, kp_error **err);

/* This machine's architecture in LXC's names: amd64, arm64, armhf, i386, ppc64el, s390x,
 * riscv64; "unknown" on anything else (no server builds for it). Decided at compile time:
 * a 32-bit build on a 64-bit kernel wants 32-bit images. */
const char *kp_lxc_arch_host (void);

/* Free the strings of *img and zero it; safe on a zeroed or already cleared value. */
void kp_lxc_image_clear (kp_lxc_image *img);
#define kp_cleanup_lxc_image __attribute__ ((cleanup (kp_lxc_image_clear)))

#endif
