/* userns-internal.h — parts of the user namespace setup exposed to the unit tests.
 *
 * The id map is computed from file paths given as parameters, so that tests can use their
 * own subuid/subgid files instead of the host's. */
#ifndef KP_SANDBOX_USERNS_INTERNAL_H
#define KP_SANDBOX_USERNS_INTERNAL_H

#include "userns.h"

#include <sys/types.h>

/* The mapping for the user `uid`/`gid` (named `user`, or NULL when it has no name). Let S
 * be the user's subordinate ids from the file, concatenated in file order: inside id i is
 * S[i] for every i except uid, and inside uid is uid itself (S[uid] is left unused); the
 * gid map likewise with gid. self_uid/self_gid are uid/gid and full is true. Ranges that
 * would overlap the caller's own id or an earlier range are skipped (the kernel refuses
 * overlapping maps), S stops before inside id 2^32-1, and at most KP_IDMAP_MAX_RANGES
 * lines are used per map, the caller's own line always among them. When either file
 * gives no ranges (a missing file means "no ranges"; any other read failure is an error),
 * the map is 0 → uid/gid only, full is false and self_uid/self_gid are 0. */
int kp_idmap_build (kp_idmap *map, uid_t uid, gid_t gid, const char *user,
                    const char *subuid_path, const char *subgid_path, kp_error **err);

#endif
