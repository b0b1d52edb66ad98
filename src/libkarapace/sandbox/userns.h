/* userns.h — run a function inside the store's user namespace.
 *
 * Layer trees hold files owned by subordinate ids, which the user cannot touch from the
 * host. Every operation on them runs in a child process inside a user namespace (with a
 * private mount namespace) whose map keeps the caller's own id: inside uid u (the
 * caller's) is u on the host, and every other inside id i is the i-th of the caller's
 * subordinate ids (via newuidmap/newgidmap), as `podman --userns=keep-id` does; likewise
 * for gids. The same map serves the sandbox runtime, so files created in bind-mounted host
 * directories stay the caller's. Without subordinate ranges, only 0 → caller is mapped
 * (and files of other owners cannot be created: a documented limitation). As real root no
 * mapping is needed: the function runs in a child with a private mount namespace only. */
#ifndef KP_SANDBOX_USERNS_H
#define KP_SANDBOX_USERNS_H

#include "base/error.h"

#include <sys/types.h>

/* Lines per map: the caller's own line plus subordinate ranges, one of which may be split
 * around the caller's id. */
#define KP_IDMAP_MAX_RANGES 10

typedef struct kp_idmap_range
{
  uint32_t inside, outside, count;
} kp_idmap_range;

typedef struct kp_idmap
{
  kp_idmap_range uid[KP_IDMAP_MAX_RANGES], gid[KP_IDMAP_MAX_RANGES];
  size_t n_uid, n_gid;
  bool full;         /* subordinate ranges were found and used */
  uint32_t self_uid; /* where the caller's own uid and gid sit inside */
  uint32_t self_gid;
} kp_idmap;

/* The mapping for the caller: its own uid/gid kept, every other inside id taken from its
 * subordinate ranges in /etc/subuid and /etc/subgid (by name or numeric id); see
 * kp_idmap_build. */
int kp_idmap_for_caller (kp_idmap *map, kp_error **err);

/* A single-id map: inside_uid/inside_gid → uid/gid, nothing else (full is false). */
void kp_idmap_single (kp_idmap *map, uid_t uid, gid_t gid, uint32_t inside_uid,
                      uint32_t inside_gid);

/* Write map for process pid, which has unshared its user namespace and waits: through the
 * setuid newuidmap/newgidmap (run side by side) when map->full, else directly (after
 * denying setgroups, as the kernel requires of an unprivileged writer). */
int kp_idmap_apply (const kp_idmap *map, pid_t pid, kp_error **err);

/* The same in two halves, so the caller can work while the helpers run: start writes the
 * single-id map at once or starts newuidmap and newgidmap; finish waits for them. finish
 * must follow a successful start, and reports the helpers' failures. */
typedef struct kp_idmap_pending
{
  struct
  {
    const char *name;
    pid_t pid;
    int out;
  } helper[2];
} kp_idmap_pending;
int kp_idmap_apply_start (const kp_idmap *map, pid_t pid, kp_idmap_pending *pending,
                          kp_error **err);
int kp_idmap_apply_finish (kp_idmap_pending *pending, kp_error **err);

/* Run fn(data, err) in a child inside the store user namespace and wait for it. The
 * child's kp_error (message, hint, status, errno) is carried back to the parent. Returns
 * fn's return value (0 or -1). */
typedef int (*kp_userns_fn) (void *data, kp_error **err);
int kp_userns_run (kp_userns_fn fn, void *data, kp_error **err);

/* Run argv (looked up on $PATH) in a child inside the store user namespace, sharing our
 * stdio and terminal, and wait for it. *exit_status is its exit status, or 128+N when
 * signal N killed it. Fails when the namespace cannot be set up or the command cannot be
 * started (then the error's status is 127 for a command not found, 126 otherwise). SIGINT
 * and SIGQUIT are ignored by the caller while the command runs, as system(3) does. */
int kp_userns_spawn (char *const argv[], int *exit_status, kp_error **err);

/* Replace the current process by argv run inside the store user namespace (for
 * `karapace unshare -- CMD`); returns only on error. The command runs in a
 * child (kp_userns_spawn) and this process exits with its status. */
int kp_userns_exec (char *const argv[], kp_error **err);

#endif
