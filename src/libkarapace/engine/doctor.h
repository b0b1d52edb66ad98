/* doctor.h — probe the host for what the runtime needs (`karapace doctor`).
 *
 * kp_doctor_run() performs every check in a fixed order and returns a report; it never
 * fails as a whole, because a probe that cannot run is itself a finding. Each check
 * actually tries what the runtime will do (create a user namespace, mount overlayfs in one,
 * open /dev/fuse, …) rather than guessing from versions, always along the rootless path
 * even when the caller is root. Probes that fork a child wait a bounded time and leave no
 * mounts or temporary directories behind. docs/doctor.md describes every check.
 *
 * A front end only iterates:
 *
 *     kp_doctor_options opts = { .store_path = store };
 *     kp_cleanup_doctor_report kp_doctor_report *r = kp_doctor_run (&opts);
 *     for (size_t i = 0; i < r->len; i++)
 *       print (r->checks[i].id, kp_check_status_name (r->checks[i].status),
 *              r->checks[i].detail, r->checks[i].fix);
 *     return kp_doctor_worst (r) == KP_CHECK_FAIL ? 1 : 0;
 */
#ifndef KP_ENGINE_DOCTOR_H
#define KP_ENGINE_DOCTOR_H

#include "base/util.h"

typedef enum kp_check_status
{
  KP_CHECK_OK,   /* what the runtime needs is there */
  KP_CHECK_WARN, /* works with a fallback or without an optional feature */
  KP_CHECK_FAIL, /* the runtime will not work (or a feature it needs will not) */
  KP_CHECK_SKIP, /* not checked: not applicable, or left out by `quick` */
} kp_check_status;

typedef struct kp_check
{
  char *id;               /* stable machine name: "userns", "overlay", … (docs/doctor.md) */
  char *title;            /* short human name: "User namespaces" */
  kp_check_status status;
  char *detail;           /* one line: what was found; never NULL or empty */
  char *fix;              /* one line: what to do; non-empty for warn and fail, else NULL */
} kp_check;

typedef struct kp_doctor_report
{
  kp_check *checks; /* in the order of docs/doctor.md; every id exactly once */
  size_t len;
} kp_doctor_report;

typedef struct kp_doctor_options
{
  const char *store_path; /* the store to examine; NULL skips the store check */
  bool quick;             /* skip the probes that fork and mount (userns try, overlay) */
  unsigned timeout_ms;    /* limit for each forked probe; 0 means 5000 */
} kp_doctor_options;

/* Run every check. opts may be NULL (no store, full probes). Never returns NULL. */
kp_doctor_report *kp_doctor_run (const kp_doctor_options *opts);
void kp_doctor_report_free (kp_doctor_report *r);
void kp_doctor_report_freep (kp_doctor_report **r);
#define kp_cleanup_doctor_report __attribute__ ((cleanup (kp_doctor_report_freep)))

/* The check with this id, or NULL. */
const kp_check *kp_doctor_report_find (const kp_doctor_report *r, const char *id);

/* "ok", "warn", "fail", "skip" (the words of the JSON output). */
const char *kp_check_status_name (kp_check_status s);

/* The most serious status in the report: FAIL over WARN over OK; skipped checks count as
 * OK, so a report of only skipped checks is OK. */
kp_check_status kp_doctor_worst (const kp_doctor_report *r);

/* The ids of all checks, in report order, NULL-terminated (for --check completion and
 * documentation). */
const char *const *kp_doctor_check_ids (void);

#endif
