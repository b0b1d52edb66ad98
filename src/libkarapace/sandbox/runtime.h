/* runtime.h — the sandbox runtime: a root filesystem, namespaces and a locked-down command
 * (docs/runtime.md).
 *
 * Two objects. A *holder* owns an environment's namespaces: it is pid 1 of a new pid
 * namespace, in new user, mount, uts, ipc, cgroup and (unless the network is the host's)
 * network namespaces; it has assembled the root filesystem (overlay over the layers,
 * /proc, /sys, /dev, binds, hostname, hosts, resolv.conf) and pivoted into it, and from
 * then on it only reaps orphans and waits for its sessions to end. A *session* is one
 * command run in a holder: a child of the caller joins the holder's namespaces with setns,
 * forks the command into its pid namespace, locks it down (ids, capabilities,
 * no_new_privs, seccomp, descriptors) and reports how it ended.
 *
 *   caller (host)                        holder, pid 1 inside
 *     kp_holder_start ── clone(NEW*) ──▶  waits for its id maps, cgroup and network
 *       id maps, cgroup, user network ──▶  mounts, pivot_root, hostname; says READY
 *     kp_holder_join ── fork ─▶ joiner: setns(holder) ─ fork ─▶ command (pid ≥ 2)
 *     kp_holder_release ───────────────▶  last session gone: exits; the kernel kills what
 *                                         is left in its pid namespace, and its mounts go
 *                                         with the mount namespace
 *
 * Nothing here writes outside the namespaces except the cgroup (removed when the holder
 * ends) and, for persistent holders, their state directory. A holder ends when the last
 * connection to it closes, so killing every karapace process — even with SIGKILL — ends
 * it, and with it every process and mount of the environment. */
#ifndef KP_SANDBOX_RUNTIME_H
#define KP_SANDBOX_RUNTIME_H

#include "cgroup.h"
#include "netns.h"
#include "seccomp.h"

#include <sys/types.h>

typedef struct kp_bind
{
  const char *source; /* absolute host path, already checked against the policy */
  const char *target; /* absolute path inside */
  bool readonly;
} kp_bind;

typedef enum kp_overlay_driver
{
  KP_OVERLAY_AUTO = 0, /* the kernel's overlayfs; fuse-overlayfs when the kernel refuses */
  KP_OVERLAY_KERNEL,
  KP_OVERLAY_FUSE,
} kp_overlay_driver;

/* Parse "auto", "kernel", "fuse"; -1 when unknown. */
int kp_overlay_driver_from_name (const char *name, kp_overlay_driver *driver);
const char *kp_overlay_driver_name (kp_overlay_driver driver);

typedef struct kp_sandbox_spec
{
  const char *const *layers; /* lower directories, topmost first, NULL-terminated; never
                                written; NULL with rootfs */
  const char *rootfs;        /* instead of layers: this directory itself is the root,
                                read-write, with no overlay (building a base tree) */
  const char *upper;         /* persistent upper directory, or NULL for a throw-away one on
                                tmpfs */
  const char *work;          /* overlay work directory beside upper (same filesystem) */
  const kp_bind *binds;
  size_t n_binds;
  const char *const *devices; /* host device nodes or directories of them (/dev/dri), already
                                 allowed by the policy; NULL-terminated or NULL */
  const char *hostname;       /* NULL: "karapace" */
  kp_net_mode network;
  kp_cgroup_limits limits; /* all 0: no cgroup */
  const char *name;        /* names the cgroup and messages; NULL: "run" */
  kp_overlay_driver overlay;
  kp_seccomp_profile seccomp; /* the profile sessions will ask for: compiled in advance,
                                 while the id maps are written */
  const char *state_dir;      /* persistent holder: its private state directory (created
                                 0700), where later sessions find it (kp_holder_connect);
                                 NULL for a holder only this caller uses */
  bool discard_syncs;       /* sessions' fsync() and the like return at once, for a build
                               whose upper layer is synced as a whole before it is used
                               (KP_SECCOMP_DISCARD_SYNCS; needs a seccomp profile) */
  bool single_id;           /* map only the caller's id even when subordinate ids exist */
  bool readonly_root;       /* the root filesystem is mounted read-only once everything is
                               in place (a frozen environment): writes fail with EROFS;
                               bind mounts keep their own mode */
  bool single_id_as_root;   /* with a single-id map: the caller is root inside (else
                               keeps its own ids) */
} kp_sandbox_spec;

typedef struct kp_session_spec
{
  char *const *argv;  /* looked up on the environment's PATH (from envp) inside */
  char *const *envp;  /* the whole environment (environ.h builds it) */
  const char *cwd;    /* inside; NULL: "/" */
  bool as_root;       /* uid/gid 0 inside with the default root capabilities; else the
                         caller's own uid/gid with no capability */
  kp_seccomp_profile seccomp;
  bool no_tty_control; /* never make the command the terminal's foreground job */
} kp_session_spec;

typedef struct kp_holder kp_holder;

/* Start a holder for spec. Fails (status KP_EXIT_RUNTIME) with what failed and what to do
 * when the namespaces, the id maps, the cgroup, the network or a mount cannot be set up;
 * nothing is left behind then. */
kp_holder *kp_holder_start (const kp_sandbox_spec *spec, kp_error **err);

/* Connect to the persistent holder whose state directory is state_dir: the connection is
 * a hold of its own, so the holder stays while it is open. Fails (KP_EXIT_RUNTIME) when no
 * holder answers there. */
kp_holder *kp_holder_connect (const char *state_dir, kp_error **err);

/* Stop the holder: every process inside gets SIGTERM, then SIGKILL after 10 s, and the
 * holder ends whoever still holds it. */
int kp_holder_stop (kp_holder *h, kp_error **err);

/* The holder's pid as the caller sees it. */
pid_t kp_holder_pid (const kp_holder *h);
/* Which overlay driver the holder mounted with ("kernel" or "fuse"), and why the kernel's
 * was not used (NULL when it was). */
const char *kp_holder_overlay (const kp_holder *h);
const char *kp_holder_overlay_fallback_reason (const kp_holder *h);
/* The warnings the setup gave (single-id mapping, ...), NULL-terminated; may be empty. */
char *const *kp_holder_warnings (const kp_holder *h);

/* Run one session in the holder and wait for it. *exit_status is the command's exit
 * status, 128+N when signal N killed it. Signals the caller receives (INT, TERM, HUP, QUIT,
 * USR1, USR2, WINCH) go to the command; on a terminal the command becomes the foreground
 * job and ^Z stops the caller with it (job control). Fails when the session cannot start;
 * a command that cannot be run fails with status 127 (not found) or 126. */
int kp_holder_join (kp_holder *h, const kp_session_spec *s, int *exit_status,
                    kp_error **err);

/* Release the caller's hold: when it was the last, the holder ends and takes every process
 * and mount inside with it; then the cgroup is removed and user-mode networking stopped.
 * Frees h; NULL is a no-op. */
void kp_holder_release (kp_holder *h);

/* kp_holder_start, one kp_holder_join, kp_holder_release. */
int kp_sandbox_run (const kp_sandbox_spec *spec, const kp_session_spec *s, int *exit_status,
                    kp_error **err);

#endif
