/* doctor-internal.h — shared between the doctor-*.c files and the unit tests.
 *
 * The file parsers live here, apart from the probes, so that tests can feed them hostile
 * input without touching the host's /etc or /proc. */
#ifndef KP_ENGINE_DOCTOR_INTERNAL_H
#define KP_ENGINE_DOCTOR_INTERNAL_H

#include "base/error.h"
#include "doctor.h"
#include "sandbox/cgroup.h"
#include "sandbox/subid.h"

#include <sys/types.h>

/* ---- the run ------------------------------------------------------------------------ */

typedef struct kp_doctor_ctx
{
  const kp_doctor_options *opts;
  uid_t uid; /* real ids: the user the runtime maps into the environment */
  gid_t gid;
  char *user; /* name from the password database, or NULL */
  bool root;
  unsigned timeout_ms;
  uint64_t subuid_count; /* subordinate ids found by the subids check (0 as root) */
  uint64_t subgid_count;
  kp_doctor_report *report; /* checks already run, for checks that depend on others */
} kp_doctor_ctx;

/* Fill a check's outcome. fix is copied (NULL for ok/skip); detail is formatted. Returns 0
 * so that a check ends with `return kp_check_set (…)`. */
int kp_check_set (kp_check *c, kp_check_status status, const char *fix, const char *fmt, ...)
    KP_PRINTF (4, 5);
/* Status of an earlier check of this run, or KP_CHECK_SKIP when it has not run. */
kp_check_status kp_doctor_ctx_status (const kp_doctor_ctx *ctx, const char *id);

/* Look a program up as execvp(3) would ($PATH, else a default path), then in /usr/bin,
 * /usr/sbin, /bin and /sbin. Returns a newly allocated absolute path or NULL. */

/* The directory for short-lived probe directories: $XDG_RUNTIME_DIR when it is a
 * directory we own, else $TMPDIR when absolute, else /tmp. */
const char *kp_doctor_scratch_dir (uid_t uid);

/* Remove a directory tree made by a probe (files of the caller only). 0 or -errno. */
int kp_doctor_remove_tree (const char *path);

/* A name for a statfs f_type ("ext4", "overlay", …); "unknown" for types not listed. */
const char *kp_doctor_fs_name (long f_type);

/* Can the fuse-overlayfs fallback work for the caller: binary found and /dev/fuse
 * openable read-write? When not, *why (newly allocated) says what is missing. */
bool kp_doctor_fuse_usable (char **why);

/* The checks, one function each; they always return 0 (doctor.c, doctor-ids.c, doctor-probe.c, doctor-cgroup.c). */
int kp_doctor_check_kernel (kp_doctor_ctx *ctx, kp_check *c);
int kp_doctor_check_userns (kp_doctor_ctx *ctx, kp_check *c);
int kp_doctor_check_subids (kp_doctor_ctx *ctx, kp_check *c);
int kp_doctor_check_newuidmap (kp_doctor_ctx *ctx, kp_check *c);
int kp_doctor_check_overlay (kp_doctor_ctx *ctx, kp_check *c);
int kp_doctor_check_fuse_overlayfs (kp_doctor_ctx *ctx, kp_check *c);
int kp_doctor_check_cgroup (kp_doctor_ctx *ctx, kp_check *c);
int kp_doctor_check_gpgv (kp_doctor_ctx *ctx, kp_check *c);
int kp_doctor_check_keyrings (kp_doctor_ctx *ctx, kp_check *c);
int kp_doctor_check_runtime_dir (kp_doctor_ctx *ctx, kp_check *c);
int kp_doctor_check_store (kp_doctor_ctx *ctx, kp_check *c);
int kp_doctor_check_network (kp_doctor_ctx *ctx, kp_check *c);
int kp_doctor_check_crun (kp_doctor_ctx *ctx, kp_check *c);

/* ---- forked probes (doctor-probe.c) ------------------------------------------------- */

/* What a probe child reports back: one frame on a SOCK_SEQPACKET socket. */
typedef struct kp_probe_result
{
  int ok;            /* 1: everything worked */
  int errnum;        /* errno of the step that failed, 0 if none */
  char message[384]; /* the failing step ("mount overlay"), or a note on success */
} kp_probe_result;

/* The child's work. Runs in a forked child: no allocation, only system calls and
 * snprintf. Fills res and returns 0 on success, -1 on failure; the runner sends the
 * frame. */
typedef int (*kp_probe_fn) (void *data, kp_probe_result *res);

/* Fork, run fn in the child, wait at most timeout_ms for its frame, reap it (killing it
 * on timeout). Always fills *res: a child that dies, hangs or cannot be started is
 * reported as a failure with a message saying so. Returns 0 when res->ok, else -1. */
int kp_doctor_probe (kp_probe_fn fn, void *data, unsigned timeout_ms, kp_probe_result *res);

#endif
