/* doctor.c — the report: which checks run, in which order, and the helpers they share.
 *
 * The checks themselves live by concern in doctor-host.c (kernel and host tools),
 * doctor-ids.c (subordinate ids), doctor-probe.c (forked namespace probes),
 * doctor-cgroup.c and doctor-paths.c (runtime directory, store). Order matters: a check
 * may read the outcome of an earlier one (fuse-overlayfs is only a failure when kernel
 * overlayfs failed too; newuidmap only matters when subordinate ranges exist). */
#include "doctor-internal.h"

#include "base/fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KP_DOCTOR_DEFAULT_TIMEOUT_MS 5000u

typedef struct kp_doctor_check_def
{
  const char *id;
  const char *title;
  int (*run) (kp_doctor_ctx *ctx, kp_check *c);
} kp_doctor_check_def;

static const kp_doctor_check_def check_defs[] = {
  { "kernel", "Kernel", kp_doctor_check_kernel },
  { "userns", "User namespaces", kp_doctor_check_userns },
  { "subids", "Subordinate ids", kp_doctor_check_subids },
  { "newuidmap", "newuidmap/newgidmap", kp_doctor_check_newuidmap },
  { "overlay", "Overlayfs in a user namespace", kp_doctor_check_overlay },
  { "fuse-overlayfs", "fuse-overlayfs fallback", kp_doctor_check_fuse_overlayfs },
  { "cgroup", "Cgroups (resource limits)", kp_doctor_check_cgroup },
  { "gpgv", "gpgv", kp_doctor_check_gpgv },
  { "keyrings", "Archive keyrings", kp_doctor_check_keyrings },
  { "runtime-dir", "Runtime directory", kp_doctor_check_runtime_dir },
  { "store", "Store", kp_doctor_check_store },
  { "network", "User-mode networking", kp_doctor_check_network },
  { "crun", "crun (oci backend)", kp_doctor_check_crun },
};

static const char *const check_ids[] = {
  "kernel", "userns", "subids", "newuidmap", "overlay", "fuse-overlayfs", "cgroup",
  "gpgv", "keyrings", "runtime-dir", "store", "network", "crun", NULL,
};

_Static_assert (KP_N_ELEMENTS (check_ids) == KP_N_ELEMENTS (check_defs) + 1,
                "check_ids lists every check");

const char *const *
kp_doctor_check_ids (void)
{
  return check_ids;
}

const char *
kp_check_status_name (kp_check_status s)
{
  switch (s)
    {
    case KP_CHECK_OK:
      return "ok";
    case KP_CHECK_WARN:
      return "warn";
    case KP_CHECK_FAIL:
      return "fail";
    case KP_CHECK_SKIP:
      return "skip";
    }
  return "unknown";
}

int
kp_check_set (kp_check *c, kp_check_status status, const char *fix, const char *fmt, ...)
{
  /* Build the new strings first: fix or an argument may point into the old ones. */
  va_list ap;
  va_start (ap, fmt);
  char *detail = xvasprintf (fmt, ap);
  va_end (ap);
  char *new_fix = fix != NULL && fix[0] != '\0' ? xstrdup (fix) : NULL;
  free (c->detail);
  free (c->fix);
  c->detail = detail;
  c->fix = new_fix;
  c->status = status;
  return 0;
}

kp_check_status
kp_doctor_ctx_status (const kp_doctor_ctx *ctx, const char *id)
{
  const kp_check *c = kp_doctor_report_find (ctx->report, id);
  return c != NULL ? c->status : KP_CHECK_SKIP;
}

const kp_check *
kp_doctor_report_find (const kp_doctor_report *r, const char *id)
{
  if (r == NULL || id == NULL)
    return NULL;
  for (size_t i = 0; i < r->len; i++)
    if (r->checks[i].id != NULL && strcmp (r->checks[i].id, id) == 0)
      return &r->checks[i];
  return NULL;
}

kp_check_status
kp_doctor_worst (const kp_doctor_report *r)
{
  kp_check_status worst = KP_CHECK_OK;
  for (size_t i = 0; r != NULL && i < r->len; i++)
    {
      if (r->checks[i].status == KP_CHECK_FAIL)
        return KP_CHECK_FAIL;
      if (r->checks[i].status == KP_CHECK_WARN)
        worst = KP_CHECK_WARN;
    }
  return worst;
}

kp_doctor_report *
kp_doctor_run (const kp_doctor_options *opts)
{
  static const kp_doctor_options defaults = { 0 };
  if (opts == NULL)
    opts = &defaults;

  kp_doctor_report *r = xcalloc (1, sizeof *r);
  r->checks = xcalloc (KP_N_ELEMENTS (check_defs), sizeof *r->checks);

  kp_doctor_ctx ctx = {
    .opts = opts,
    .uid = getuid (),
    .gid = getgid (),
    .timeout_ms = opts->timeout_ms ? opts->timeout_ms : KP_DOCTOR_DEFAULT_TIMEOUT_MS,
    .report = r,
  };
  ctx.root = ctx.uid == 0;
  struct passwd pwbuf, *pw = NULL;
  char pwstore[4096];
  if (getpwuid_r (ctx.uid, &pwbuf, pwstore, sizeof pwstore, &pw) == 0 && pw != NULL)
    ctx.user = xstrdup (pw->pw_name);

  for (size_t i = 0; i < KP_N_ELEMENTS (check_defs); i++)
    {
      kp_check *c = &r->checks[i];
      c->id = xstrdup (check_defs[i].id);
      c->title = xstrdup (check_defs[i].title);
      r->len = i + 1; /* visible to later checks through kp_doctor_ctx_status */
      check_defs[i].run (&ctx, c);
      /* The contract of kp_check, kept here rather than trusted in thirteen places. */
      if (c->detail == NULL || c->detail[0] == '\0')
        kp_check_set (c, c->status, c->fix, "no detail");
      if ((c->status == KP_CHECK_WARN || c->status == KP_CHECK_FAIL) && c->fix == NULL)
        c->fix = xstrdup ("see docs/doctor.md");
      if (c->status == KP_CHECK_OK || c->status == KP_CHECK_SKIP)
        {
          free (c->fix);
          c->fix = NULL;
        }
    }
  free (ctx.user);
  return r;
}

void
kp_doctor_report_free (kp_doctor_report *r)
{
  if (r == NULL)
    return;
  for (size_t i = 0; i < r->len; i++)
    {
      free (r->checks[i].id);
      free (r->checks[i].title);
      free (r->checks[i].detail);
      free (r->checks[i].fix);
    }
  free (r->checks);
  free (r);
}

void
kp_doctor_report_freep (kp_doctor_report **r)
{
  kp_doctor_report_free (*r);
  *r = NULL;
}

/* ---- helpers ------------------------------------------------------------------------ */

const char *
kp_doctor_scratch_dir (uid_t uid)
{
  const char *xdg = getenv ("XDG_RUNTIME_DIR");
  struct stat st;
  if (xdg != NULL && xdg[0] == '/' && lstat (xdg, &st) == 0 && S_ISDIR (st.st_mode)
      && st.st_uid == uid && access (xdg, W_OK | X_OK) == 0)
    return xdg;
  const char *tmp = getenv ("TMPDIR");
  if (tmp != NULL && tmp[0] == '/' && stat (tmp, &st) == 0 && S_ISDIR (st.st_mode))
    return tmp;
  return "/tmp";
}

int
kp_doctor_remove_tree (const char *path)
{
  return kp_remove_tree_at (AT_FDCWD, path);
}
