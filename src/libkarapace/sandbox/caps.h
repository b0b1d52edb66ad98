/* caps.h — capabilities, and the fixed order in which a sandboxed process gives up its
 * privileges before it runs the user's command.
 *
 * Capabilities are set with the capget/capset system calls and prctl(2) directly: the
 * sandbox needs five operations, not a library (and not libcap's text format).
 *
 * kp_lockdown_apply() is the last thing the sandbox's child does before exec, always in
 * this order, because each step needs a privilege the next one takes away:
 *
 *   1. capability bounding set   (dropping needs CAP_SETPCAP)
 *   2. setresgid, setgroups, setresuid   (need CAP_SETGID/CAP_SETUID)
 *   3. effective, permitted, inheritable and ambient capabilities
 *   4. no_new_privs   (no setuid bit or file capability can give anything back)
 *   5. the seccomp filter   (loaded last so the steps above are not themselves filtered,
 *                            and legal without CAP_SYS_ADMIN thanks to step 4)
 *   6. close every descriptor from 3 up except the one the caller keeps
 *      (close_range(2); /proc/self/fd, then a plain loop, where it is missing)
 *
 * Sessions as a normal user keep no capability at all. `--user root` sessions keep
 * KP_CAPS_ROOT_DEFAULT, the set podman gives a container by default (docs/seccomp.md):
 * enough for package managers and chown/chmod on the environment's own files, without
 * CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_NET_RAW, CAP_MKNOD or CAP_AUDIT_WRITE. All of these
 * capabilities are those of the sandbox's user namespace, never of the host. */
#ifndef KP_SANDBOX_CAPS_H
#define KP_SANDBOX_CAPS_H

#include "base/error.h"
#include "seccomp.h"

#include <linux/capability.h>
#include <sys/types.h>

#define KP_CAP_BIT(cap) (UINT64_C (1) << (cap))

#define KP_CAPS_ROOT_DEFAULT                                                                 \
  (KP_CAP_BIT (CAP_CHOWN) | KP_CAP_BIT (CAP_DAC_OVERRIDE) | KP_CAP_BIT (CAP_FOWNER)         \
   | KP_CAP_BIT (CAP_FSETID) | KP_CAP_BIT (CAP_KILL) | KP_CAP_BIT (CAP_NET_BIND_SERVICE)    \
   | KP_CAP_BIT (CAP_SETFCAP) | KP_CAP_BIT (CAP_SETGID) | KP_CAP_BIT (CAP_SETPCAP)          \
   | KP_CAP_BIT (CAP_SETUID) | KP_CAP_BIT (CAP_SYS_CHROOT))

typedef struct kp_caps
{
  uint64_t effective, permitted, inheritable, ambient;
} kp_caps;

/* The highest capability number the running kernel knows (/proc/sys/kernel/cap_last_cap,
 * else probed with PR_CAPBSET_READ). All capabilities as a mask: kp_caps_all(). */
int kp_caps_last (void);
uint64_t kp_caps_all (void);

/* Drop every capability not in keep from the bounding set. Needs CAP_SETPCAP unless
 * nothing is to be dropped. */
int kp_caps_drop_bounding (uint64_t keep, kp_error **err);

/* Set the four sets of the calling thread: capset for the first three, then the ambient
 * set is cleared and each of its capabilities raised (each must be permitted and
 * inheritable, as the kernel requires). */
int kp_caps_set (const kp_caps *caps, kp_error **err);

/* Read the calling thread's four sets, and its bounding set when bounding is not NULL. */
int kp_caps_get (kp_caps *caps, uint64_t *bounding, kp_error **err);

/* Close every descriptor >= first except keep (-1: none). Uses close_range(2) and falls
 * back to reading /proc/self/fd, then to a loop up to RLIMIT_NOFILE. With
 * try_close_range false the fallback is used directly (for tests). */
int kp_fds_close_from (int first, int keep, bool try_close_range, kp_error **err);

typedef struct kp_lockdown
{
  uid_t uid; /* the user the command runs as (inside the sandbox's namespace) */
  gid_t gid;
  bool set_groups; /* call setgroups(n_groups, groups); false where setgroups is denied
                      (a single-id user namespace mapping) */
  const gid_t *groups;
  size_t n_groups;
  uint64_t caps; /* kept in the bounding, effective, permitted and inheritable sets; also
                    ambient when uid is not 0, so they survive exec */
  kp_seccomp_profile seccomp;
  int keep_fd; /* a descriptor above 2 left open (e.g. an exec-error pipe), or -1 */
  const kp_seccomp_program *seccomp_program; /* the profile compiled in advance, or NULL to
                                                compile it here */
} kp_lockdown;

/* Apply spec in the fixed order above. On failure the process is half locked down and
 * must not run the command: the caller reports the error and exits. */
int kp_lockdown_apply (const kp_lockdown *spec, kp_error **err);

#endif
