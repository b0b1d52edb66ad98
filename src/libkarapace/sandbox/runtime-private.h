/* runtime-private.h — what the runtime's files share (runtime.h is the public side).
 *
 *   holder.c   the caller's side of a holder (clone, id maps, cgroup, network, release)
 *              and the holder's own life after setup (pid 1: reaping, sessions, stop)
 *   rootfs.c   the holder's setup of the root filesystem, run between GO and READY
 *   session.c  joining a holder: the joiner, the command, signals and job control */
#ifndef KP_SANDBOX_RUNTIME_PRIVATE_H
#define KP_SANDBOX_RUNTIME_PRIVATE_H

#include "runtime.h"
#include "userns.h"

/* What the holder's setup needs, filled by the caller before the clone. */
typedef struct kp_rootfs_setup
{
  const kp_sandbox_spec *spec;
  const kp_idmap *map;    /* the holder's id map */
  const char *resolv;     /* text of /etc/resolv.conf */
  const char *hosts;      /* text of /etc/hosts */
  bool own_netns;         /* a new network namespace was made */
  /* Out: which overlay driver was used, and why the kernel's was not. */
  char overlay_used[16];
  char fallback_reason[512];
} kp_rootfs_setup;

/* Assemble the root filesystem and pivot into it. Runs in the holder, root of its user
 * namespace, in its private mount namespace, as pid 1 of its pid namespace. */
int kp_rootfs_setup_run (kp_rootfs_setup *setup, kp_error **err);

/* A persistent holder's listening socket, in its state directory. */
#define KP_HOLDER_SOCKET "holder.sock"
/* The compiled seccomp filter its starter keeps beside it, seccomp-PROFILE.bpf, so that
 * joiners load it without compiling (kp_holder_join). */
char *kp_holder_seccomp_path (const char *state_dir, kp_seccomp_profile profile);
/* Flags of the hello a holder sends on a new connection. */
#define KP_HOLDER_HELLO_NETNS 1    /* the holder has its own network namespace */
#define KP_HOLDER_HELLO_FULL_MAP 2 /* subordinate ids are mapped (setgroups allowed) */

struct kp_holder
{
  bool joined;     /* connected to a holder another process started (not our child) */
  bool persistent; /* started with a state directory: may outlive our hold */
  pid_t pid;       /* as the caller sees it */
  int pidfd;       /* pidfd_open(pid), or -1 on kernels without it */
  int sock;        /* the caller's connection; closing it releases the hold */
  kp_net_mode network;
  kp_idmap map;
  kp_cgroup *cg;   /* NULL without limits */
  kp_usernet *net; /* NULL unless network is user */
  kp_seccomp_program seccomp; /* spec->seccomp, compiled (started), or as the starter
                               * kept it (joined, read on the first session) */
  char *state_dir;            /* a joined holder's state directory */
  char *overlay;
  char *fallback_reason;
  char **warnings;
};

/* Signals a session passes on to the command. */
extern const int kp_runtime_forwarded_signals[];

#endif
