/* auth.h — registry authentication: challenges and the credentials podman and docker keep. */
#ifndef KP_IMAGE_AUTH_H
#define KP_IMAGE_AUTH_H

#include "base/error.h"

typedef struct kp_auth_challenge
{
  char *scheme;  /* "bearer" or "basic" (lowercase) */
  char *realm;
  char *service;
  char *scope;
} kp_auth_challenge;

/* Parse a WWW-Authenticate value (RFC 7235): the first challenge, its scheme lowercased,
 * its realm, service and scope parameters (tokens or quoted strings with backslash
 * escapes; other parameters are skipped). -1 when it is not a challenge: empty, no
 * scheme, an unterminated quoted string, a parameter without a value. *out is cleared
 * either way. */
int kp_auth_parse_challenge (const char *header, kp_auth_challenge *out);
void kp_auth_challenge_clear (kp_auth_challenge *c);

/* Credentials for `registry` (host[:port]) and `repository`: from `auth_file` only when
 * set, else $REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json,
 * $XDG_CONFIG_HOME/containers/auth.json (~/.config), ~/.docker/config.json; the first file
 * with an entry for the registry wins. Keys may be "host", "host/namespace…" (the longest
 * prefix of host/repository wins), "https://host[/…]" (the host counts), and for docker.io
 * "https://index.docker.io/v1/". Returns 1 with *user and *password, 0 when none, -1 when
 * a file is unreadable or malformed (the error names it). *source names the file.
 *
 * Entries karapace cannot use — an "identitytoken" (an OAuth refresh token) without
 * "auth", or a registry handed to a credential helper (credHelpers, credsStore), which we
 * do not run — give 0 and, when `note` is not NULL, a sentence for the error a later 401
 * shows (NULL when there is nothing to say). */
int kp_auth_lookup (const char *auth_file, const char *registry, const char *repository,
                    char **user, char **password, char **source, char **note, kp_error **err);

/* base64 of bytes (for "Authorization: Basic"), and its inverse (-1 when malformed). */
char *kp_base64_encode (const void *data, size_t len);
int kp_base64_decode (const char *text, char **out, size_t *len);

#endif
