/* image-config.h — what ~/.config/karapace/config.toml says about images (docs/config.md).
 *
 *     [images]
 *     lxc_server = "images.linuxcontainers.org"   # HOST[:PORT], https://…, or http://LOOPBACK
 *     [images.aliases]
 *     "debian/bookworm" = "docker://mirror.example/library/debian:bookworm"
 *     [registries."registry.local:5000"]
 *     insecure = true                             # plain HTTP / unverified TLS allowed
 *     mirrors = ["mirror.example:5000/hub"]       # tried first, in order
 *     [mirrors]
 *     debian = "http://deb.debian.org/debian"
 *     ubuntu = "http://archive.ubuntu.com/ubuntu"
 *     keyring_dir = "/usr/share/keyrings"
 *
 * The same file holds [policy], which policy.h reads and this reader skips; the policy
 * reader in turn skips the tables above, so both agree on the set of tables. Reading is
 * strict, like a manifest: an unknown table or key, a value of the wrong type or a value
 * that does not validate is an error at its file, line and column (status
 * KP_EXIT_MANIFEST), with a "did you mean" hint for misspelt keys.
 *
 * (The name is image-config.h, not config.h: a config.h here would shadow the build's.) */
#ifndef KP_IMAGE_IMAGE_CONFIG_H
#define KP_IMAGE_IMAGE_CONFIG_H

#include "base/error.h"
#include "image/reference.h"

/* One [registries."HOST"] table. */
typedef struct kp_registry_config
{
  char *host;     /* "registry.local:5000": lowercase host name or IP address, optional port */
  bool insecure;  /* plain HTTP and unverified TLS allowed for this host */
  char **mirrors; /* NULL-terminated HOST[:PORT][/PREFIX] list, tried in order; NULL: none */
} kp_registry_config;

typedef struct kp_image_config
{
  char *path;                /* the file read, or NULL when there was none */
  kp_image_aliases *aliases; /* the built-in table with the file's additions and overrides */
  char *lxc_server;          /* never NULL: "images.linuxcontainers.org" by default; either a
                                HOST[:PORT] (HTTPS; plain HTTP when the host is loopback) or a
                                base URL without a trailing '/' ("https://h/lxc",
                                "http://127.0.0.1:8080"; http:// only for loopback hosts) */
  char *debian_mirror;       /* never NULL: "http://deb.debian.org/debian" by default */
  char *ubuntu_mirror;       /* never NULL: "http://archive.ubuntu.com/ubuntu" by default */
  char *keyring_dir;         /* never NULL: "/usr/share/keyrings" by default */
  size_t n_registries;
  kp_registry_config *registries; /* in file order */
} kp_image_config;

#define KP_DEFAULT_LXC_SERVER "images.linuxcontainers.org"

/* Read the configuration into *out (overwritten; release it with kp_image_config_clear()).
 *
 * `path` names the file explicitly; a missing explicit file is an error. With NULL the file
 * is $KARAPACE_CONFIG when set and non-empty, else $XDG_CONFIG_HOME/karapace/config.toml,
 * else ~/.config/karapace/config.toml; when that file does not exist the defaults hold and
 * out->path is NULL. (A missing $KARAPACE_CONFIG is not an error either: tests and scripts
 * point it at a file they may or may not write, and the policy reader treats it the same.)
 * On failure *out is left cleared. */
int kp_image_config_load (const char *path, kp_image_config *out, kp_error **err);

/* The [registries."HOST"] entry for `host` (compared exactly: hosts are lowercase, and the
 * port is part of the name), or NULL. `c` may be NULL. */
const kp_registry_config *kp_image_config_registry (const kp_image_config *c,
                                                    const char *host);

/* Free everything *c owns and zero it; safe on a zeroed or already cleared value. */
void kp_image_config_clear (kp_image_config *c);
#define kp_cleanup_image_config __attribute__ ((cleanup (kp_image_config_clear)))

#endif
