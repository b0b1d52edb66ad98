/* identity.h — env_id: the BLAKE3 of a lock's canonical serialisation (docs/identity.md).
 *
 * The serialisation is text, one field per line, in a fixed order: a version line, the
 * base image as written, the resolved base (reference, digest, tree digest), every locked
 * package, then every other identity option of the option schema in table order. Each
 * line is "KEY VALUE" with VALUE in canonical JSON. Anyone can rebuild it from a lock and
 * hash it with b3sum. */
#ifndef KP_SCHEMA_IDENTITY_H
#define KP_SCHEMA_IDENTITY_H

#include "lock.h"

#define KP_IDENTITY_HEADER "karapace-env-id v1"
#define KP_ENV_ID_LEN 64
#define KP_SHORT_ID_LEN 12

/* The canonical text hashed into env_id. */
char *kp_identity_serialize (const kp_lock *lock);
/* env_id as 64 lowercase hex characters plus NUL. */
void kp_identity_env_id (const kp_lock *lock, char out[KP_ENV_ID_LEN + 1]);
/* The first 12 characters of an env_id. */
void kp_identity_short_id (const char *env_id, char out[KP_SHORT_ID_LEN + 1]);
/* 64 lowercase hex characters? */
bool kp_identity_is_env_id (const char *s);

#endif
