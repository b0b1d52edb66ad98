/* image-config.h — what ~/.config/karapace/config.toml says about images (docs/config.md).
 *
 *     [images]
 *     lxc_server = "images.linuxcontainers.org"   # host[:port], or http(s)://… for loopback
 *     [images.aliases]
 *     "debian/bookworm" = "docker://mirror.example/library/debian:bookworm"
 *     [registries."registry.local:5000"]
 *     insecure = true                             # plain HTTP / unverified TLS allowed
 *     mirrors = ["mirror.example:5000"]           # tried first, in order
 *     [mirrors]
 *     debian = "http://deb.debian.org/debian"
 *     ubuntu = "http://archive.ubuntu.com/ubuntu"
 *     keyring_dir = "/usr/share/keyrings"
 *
 * The same file holds [policy] (policy.h), which this reader skips. Unknown keys and
 * wrong types are errors with file, line and column (status KP_EXIT_MANIFEST). */
#ifndef KP_IMAGE_IMAGE_CONFIG_H
#define KP_IMAGE_IMAGE_CONFIG_H

#include "base/error.h"
#include "image/reference.h"

typedef struct kp_registry_config
{
  char *host;
  bool insecure;
  char **mirrors; /* NULL-terminated, may be NULL */
} kp_registry_config;

typedef struct kp_image_config
{
  char *path;                 /* the file read, or NULL when there was none */
  kp_image_aliases *aliases;  /* the built-in table with the file's overrides */
  char *lxc_server;           /* NULL: images.linuxcontainers.org */
  char *debian_mirror;        /* default http://deb.debian.org/debian */
  char *ubuntu_mirror;        /* default http://archive.ubuntu.com/ubuntu */
  char *keyring_dir;          /* default /usr/share/keyrings */
  size_t n_registries;
  kp_registry_config *registries;
} kp_image_config;

/* Read `path`, or with NULL $KARAPACE_CONFIG, else $XDG_CONFIG_HOME/karapace/config.toml
 * (a missing default file gives the defaults; a missing explicit one is an error). On
 * failure *out is cleared. */
int kp_image_config_load (const char *path, kp_image_config *out, kp_error **err);
/* The [registries."HOST"] entry for host, or NULL. */
const kp_registry_config *kp_image_config_registry (const kp_image_config *c,
                                                    const char *host);
void kp_image_config_clear (kp_image_config *c);

#endif
