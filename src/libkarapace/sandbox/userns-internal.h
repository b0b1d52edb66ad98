/* userns-internal.h — parts of the user namespace setup exposed to the unit tests.
 *
 * The id map is computed from file paths given as parameters, so that tests can use their
 * own subuid/subgid files instead of the host's. */
#ifndef KP_SANDBOX_USERNS_INTERNAL_H
#define KP_SANDBOX_USERNS_INTERNAL_H

#include "userns.h"

#include <sys/types.h>

/* The mapping for the user `uid`/`gid` (named `user`, or NULL when it has no name):
 * 0 → uid/gid, then the user's ranges from the two files mapped contiguously from inside
 * id 1. A missing file means "no ranges"; any other read failure is an error. Ranges that
 * would overlap the caller's own id or an earlier range are skipped (the kernel refuses
 * overlapping maps), and at most KP_IDMAP_MAX_RANGES lines are used per map. */
int kp_idmap_build (kp_idmap *map, uid_t uid, gid_t gid, const char *user,
                    const char *subuid_path, const char *subgid_path, kp_error **err);

#endif
