/* simplestreams.h — the index format of LXC image servers (images.linuxcontainers.org).
 *
 * streams/v1/index.json lists product files; the one with "datatype": "image-downloads"
 * (streams/v1/images.json) has "products": { "DISTRO:RELEASE:ARCH:VARIANT": { "versions":
 * { "20241120_05:24": { "items": { "root.tar.xz": { "path", "sha256", "size" } } } } } }.
 * The newest version that has a root.tar.xz wins (versions are timestamps that sort as
 * text). Pure parsing: no network. */
#ifndef KP_IMAGE_SIMPLESTREAMS_H
#define KP_IMAGE_SIMPLESTREAMS_H

#include "base/error.h"

#include <stddef.h>
#include <stdint.h>

typedef struct kp_lxc_image
{
  char *product; /* "debian:bookworm:amd64:default" */
  char *version; /* "20241120_05:24" */
  char *path;    /* relative to the server: "images/debian/bookworm/…/rootfs.tar.xz" */
  char *sha256;  /* "sha256:HEX" */
  uint64_t size;
} kp_lxc_image;

/* The path of the image-downloads product file named by index.json. */
int kp_simplestreams_products_path (const char *index_json, size_t len, char **path,
                                    kp_error **err);
/* Choose the newest root.tar.xz of DISTRO/RELEASE for ARCH and VARIANT. The errors list
 * what the server offers instead (distributions, releases, architectures, variants). */
int kp_simplestreams_find (const char *products_json, size_t len, const char *distro,
                           const char *release, const char *arch, const char *variant,
                           kp_lxc_image *out, kp_error **err);
/* This machine's architecture in LXC's names: amd64, arm64, armhf, i386, ppc64el, s390x,
 * riscv64. */
const char *kp_lxc_arch_host (void);
void kp_lxc_image_clear (kp_lxc_image *img);

#endif
