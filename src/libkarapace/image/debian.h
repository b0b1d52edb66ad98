/* debian.h — pieces of the Debian/Ubuntu mirror bootstrap: the signed index, the package
 * index and the package set (docs/images.md, "Debian and Ubuntu mirrors").
 *
 * Trust flows from the distribution's keyring: InRelease is checked with gpgv, and only
 * the text gpgv vouches for is used; that Release names the Packages index by SHA256;
 * Packages names every .deb by SHA256. */
#ifndef KP_IMAGE_DEBIAN_H
#define KP_IMAGE_DEBIAN_H

#include "base/error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Verify an InRelease file with gpgv against `keyring` (a .gpg keyring file). On success
 * *release (NUL-terminated, *len bytes) is the signed text alone. Any failure — a bad or
 * missing signature, a key not in the keyring, gpgv missing — is an error that quotes
 * gpgv; nothing is returned then. */
int kp_debian_verify_inrelease (const char *inrelease, size_t inrelease_len,
                                const char *keyring, char **release, size_t *len,
                                kp_error **err);

typedef struct kp_deb_package
{
  char *name, *version, *arch;
  char *filename; /* "pool/main/a/apt/apt_2.6.1_amd64.deb" */
  char sha256[65];
  uint64_t size;
  char *depends, *pre_depends, *provides; /* as written, or NULL */
  char *priority;                          /* "required", "important", …, or NULL */
  bool essential;
} kp_deb_package;

typedef struct kp_deb_index
{
  kp_deb_package *pkgs; /* sorted by name, then newest version first */
  size_t n;
} kp_deb_index;

/* Parse a (verified) Packages file. Stanzas without Package, Version, Architecture,
 * Filename, SHA256 and Size are errors naming their line; a Filename with ".." or a
 * leading '/' is refused. */
int kp_deb_index_parse (const char *text, size_t len, kp_deb_index *out, kp_error **err);
/* The newest version of `name`, or NULL. */
const kp_deb_package *kp_deb_index_find (const kp_deb_index *idx, const char *name);
void kp_deb_index_clear (kp_deb_index *idx);

/* The package set of a bootstrap: every package with Priority: required or Essential: yes
 * (when `base` is true), the `extra` names (e.g. "apt"), closed over Pre-Depends and
 * Depends. Alternatives ("a | b") take a package already chosen, else the first that can
 * be satisfied; virtual names are satisfied by their providers (Provides); version
 * constraints (<<, <=, =, >=, >>) are checked. *chosen receives the packages, sorted by
 * name (pointers into idx, NULL-terminated; free the array only). An unsatisfiable
 * dependency is an error naming the package and the clause. */
int kp_deb_resolve (const kp_deb_index *idx, bool base, const char *const *extra,
                    const kp_deb_package ***chosen, size_t *n, kp_error **err);

/* The control paragraph of the .deb at `path` (its control.tar's ./control), as text
 * ending in one newline. */
char *kp_deb_read_control (const char *path, kp_error **err);

#endif
