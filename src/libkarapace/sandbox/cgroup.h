/* cgroup.h — resource limits (cpu, memory, pids) through cgroups, rootless where possible.
 *
 * A run asks for limits; kp_cgroup_create() finds a cgroup the caller may create children
 * in, makes one for the run and writes the limits; the runtime attaches the environment's
 * first process and destroys the cgroup when the run ends. Where the cgroup goes, in order
 * (docs/cgroups.md):
 *
 *   cgroup v2  the caller's own cgroup when it is delegated (writable, with the controllers);
 *              else a transient scope the systemd user manager makes for the caller with
 *              Delegate=yes (systemd-scope.h), below which the same code goes on
 *   cgroup v1  in each needed hierarchy, the caller's own cgroup when writable, else a
 *              `karapace-USER` directory an administrator delegated
 *              (scripts/delegate-cgroup-v1)
 *
 * Limits that were asked for and cannot be enforced are an error (KP_EXIT_RUNTIME) that
 * says why and what to do, never a silent run without them. With no limits asked for,
 * nothing is created.
 *
 * The parsers of /proc/PID/cgroup and /proc/PID/mountinfo live here too: `karapace doctor`
 * (engine/doctor-cgroup.c) reports through the same code the runtime uses. */
#ifndef KP_SANDBOX_CGROUP_H
#define KP_SANDBOX_CGROUP_H

#include "base/error.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- /proc/PID/cgroup and mountinfo --------------------------------------------------- */

typedef struct kp_cgroup_entry
{
  unsigned hierarchy; /* 0 is the unified (v2) hierarchy */
  char *controllers;  /* as written: "cpu,cpuacct", "name=systemd", "" for v2 */
  char *path;         /* the process's cgroup inside that hierarchy, absolute */
} kp_cgroup_entry;

typedef struct kp_cgroup_entries
{
  kp_cgroup_entry *entries;
  size_t len;
  size_t malformed; /* lines that were not "ID:CONTROLLERS:/PATH"; ignored */
} kp_cgroup_entries;

/* Parse the text of /proc/PID/cgroup. The path is everything after the second ':' (it may
 * itself contain ':'). */
void kp_cgroup_parse_proc (const char *text, kp_cgroup_entries *out);
void kp_cgroup_entries_clear (kp_cgroup_entries *e);
/* The entry of a v1 controller ("memory", "name=systemd"), or with controller NULL the
 * unified v2 entry (hierarchy 0, empty controller list). NULL when absent. */
const kp_cgroup_entry *kp_cgroup_entries_find (const kp_cgroup_entries *e,
                                               const char *controller);

/* Where a cgroup lives on the host, from the text of /proc/self/mountinfo: the mount point
 * of the cgroup2 hierarchy (controller NULL) or of the v1 hierarchy carrying `controller`,
 * joined with cgroup_path taken relative to that mount's root. Newly allocated, or NULL
 * when no such hierarchy is mounted or the path lies outside what is mounted. */
char *kp_cgroup_mount_dir (const char *mountinfo, const char *controller,
                           const char *cgroup_path);
/* The mount point of that hierarchy itself (its top as the caller sees it), or NULL. */
char *kp_cgroup_mount_point (const char *mountinfo, const char *controller);

/* Is `word` one of the sep-separated items of list? ("cpu,cpuacct", "memory pids") */
bool kp_cgroup_list_contains (const char *list, char sep, const char *word);

/* ---- limits ----------------------------------------------------------------------------- */

typedef struct kp_cgroup_limits
{
  uint64_t cpu_shares;      /* v1 cpu.shares (2–262144, 1024 = normal); v2: cpu.weight */
  uint64_t memory_limit_mb; /* memory and swap together, MiB */
  uint64_t pids_max;        /* tasks (processes and threads) */
} kp_cgroup_limits; /* 0 = no limit of that kind */

#define KP_CGROUP_SHARES_MIN 2u
#define KP_CGROUP_SHARES_MAX 262144u

/* cgroup v2 cpu.weight (1–10000) for v1 cpu.shares, the mapping the OCI runtimes use:
 * 1 + (shares - 2) * 9999 / 262142, so 2 → 1, 1024 → 39, 262144 → 10000. Shares out of
 * range are clamped. */
uint64_t kp_cgroup_shares_to_weight (uint64_t shares);

/* Where to look; every field may be NULL, meaning the host's. Tests point `root` at a
 * fake tree: hierarchies are then the directories of root (v2 when root holds
 * cgroup.controllers, else one directory per v1 hierarchy named after its controllers,
 * "cpu,cpuacct"), and mountinfo is not read. */
typedef struct kp_cgroup_host
{
  const char *root;        /* default: the hierarchies of /proc/self/mountinfo */
  const char *proc_cgroup; /* text of /proc/self/cgroup */
  const char *user;        /* name in `karapace-USER`; default: the caller's login name */
  const char *proc_cgroup_path; /* read this file instead of /proc/self/cgroup (tests);
                                   proc_cgroup wins when both are set */
  const char *bus_address;      /* the systemd user manager's bus; default:
                                   kp_systemd_user_bus(); "" for none */
} kp_cgroup_host;

typedef struct kp_cgroup kp_cgroup;

typedef enum kp_cgroup_version
{
  KP_CGROUP_V1 = 1,
  KP_CGROUP_V2 = 2,
} kp_cgroup_version;

/* Create the cgroup `name` (one path component: letters, digits, '.', '_', '-') for a run
 * with these limits. Returns NULL with *err NULL when no limit is asked for; NULL with *err
 * set (status KP_EXIT_RUNTIME, with a hint) when the limits cannot be enforced or the
 * cgroup exists already. host may be NULL. */
kp_cgroup *kp_cgroup_create (const kp_cgroup_limits *limits, const char *name,
                             const kp_cgroup_host *host, kp_error **err);

/* Move process pid (all its threads) into the cgroup, in every hierarchy. */
int kp_cgroup_attach (kp_cgroup *cg, pid_t pid, kp_error **err);

typedef struct kp_cgroup_memory_events
{
  uint64_t oom_kills;  /* processes the OOM killer killed inside the cgroup */
  uint64_t limit_hits; /* times usage hit the limit (v2 memory.events max, v1 failcnt);
                          informative only: v1 kernels with memory+swap set to the same
                          value count neither failcnt */
} kp_cgroup_memory_events;

/* What the memory controller saw. Kernels before 4.13 do not count OOM kills on v1: then
 * oom_kills is 1 when the cgroup was under OOM at all (memory.oom_control under_oom) and
 * 0 otherwise. All zero when no memory limit was set. */
int kp_cgroup_memory_events_read (const kp_cgroup *cg, kp_cgroup_memory_events *ev,
                                  kp_error **err);

kp_cgroup_version kp_cgroup_get_version (const kp_cgroup *cg);
/* The cgroup's directories (one on v2, one per hierarchy on v1), NULL-terminated. */
char *const *kp_cgroup_get_dirs (const kp_cgroup *cg);

/* Kill what is left inside (cgroup.kill on v2 when the kernel has it, else SIGKILL to
 * every listed process until none remains), remove the directories, and free cg. Freed
 * also on failure; the error then names the directory left behind. NULL is a no-op. */
/* The cgroup a run made that process pid lives in (a persistent holder's, found again by
 * a later session): in each hierarchy, its cgroup when named like one kp_cgroup_create()
 * makes for a run (karapace-NAME-PID). NULL without an error when there is none. */
kp_cgroup *kp_cgroup_of_process (pid_t pid, const kp_cgroup_host *host, kp_error **err);
bool kp_cgroup_is_run_name (const char *name);
/* Let go of cg without removing anything (a persistent holder's cgroup outlives us; it is
 * removed once empty by a later run's sweep, or by systemd with its scope). */
void kp_cgroup_forget (kp_cgroup *cg);
int kp_cgroup_destroy (kp_cgroup *cg, kp_error **err);
/* Destroy, ignoring errors: for cleanup attributes. */
void kp_cgroup_destroyp (kp_cgroup **cg);
#define kp_cleanup_cgroup __attribute__ ((cleanup (kp_cgroup_destroyp)))

#endif
