/* doctor-probe.c — checks that try the real thing in a forked child: creating a user
 * namespace, and mounting overlayfs inside one.
 *
 * The child reports one fixed-size frame over a SOCK_SEQPACKET socketpair, so a partial
 * or missing frame is distinguishable from a result. The parent waits a bounded time and
 * kills the child on timeout; every mount the child makes lives in its own mount
 * namespace and disappears with it, and the parent removes the temporary directories.
 * The child does not allocate: after fork() in a possibly threaded caller only system
 * calls and snprintf are safe. */
#include "doctor-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- the probe runner --------------------------------------------------------------- */

static int
probe_fail (kp_probe_result *res, int errnum, const char *fmt, ...) KP_PRINTF (3, 4);

/* Fill a failure frame; returns -1 so that a step reads `return probe_fail (…)`. */
static int
probe_fail (kp_probe_result *res, int errnum, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (res->message, sizeof res->message, fmt, ap);
  va_end (ap);
  res->ok = 0;
  res->errnum = errnum;
  return -1;
}

static int64_t
monotonic_ms (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reap the child; give it a moment to exit on its own, then kill it. Returns the wait
 * status, or -1 when it could not be reaped. */
static int
reap_child (pid_t pid, unsigned grace_ms)
{
  int status;
  int64_t deadline = monotonic_ms () + grace_ms;
  for (;;)
    {
      pid_t r = waitpid (pid, &status, WNOHANG);
      if (r == pid)
        return status;
      if (r < 0 && errno != EINTR)
        return -1;
      if (monotonic_ms () >= deadline)
        break;
      struct timespec pause = { 0, 5 * 1000 * 1000 };
      nanosleep (&pause, NULL);
    }
  kill (pid, SIGKILL);
  while (waitpid (pid, &status, 0) < 0)
    if (errno != EINTR)
      return -1;
  return status;
}

static int
describe_exit (kp_probe_result *res, int status)
{
  if (status == -1)
    return probe_fail (res, 0, "the probe ended without reporting a result");
  if (WIFSIGNALED (status))
    return probe_fail (res, 0, "the probe was killed by signal %d before reporting",
                       WTERMSIG (status));
  return probe_fail (res, 0, "the probe exited with status %d without reporting",
                     WEXITSTATUS (status));
}

int
kp_doctor_probe (kp_probe_fn fn, void *data, unsigned timeout_ms, kp_probe_result *res)
{
  memset (res, 0, sizeof *res);
  int sv[2];
  if (socketpair (AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
    return probe_fail (res, errno, "socketpair");
  kp_cleanup_close int parent_fd = sv[0];
  kp_cleanup_close int child_fd = sv[1];

  pid_t parent = getpid ();
  pid_t pid = fork ();
  if (pid < 0)
    return probe_fail (res, errno, "fork");
  if (pid == 0)
    {
      /* Die with the parent: a probe must never outlive the doctor. */
      prctl (PR_SET_PDEATHSIG, SIGKILL);
      if (getppid () != parent)
        _exit (1);
      kp_probe_result r;
      memset (&r, 0, sizeof r);
      fn (data, &r);
      r.message[sizeof r.message - 1] = '\0';
      ssize_t n KP_UNUSED = send (child_fd, &r, sizeof r, MSG_NOSIGNAL);
      _exit (0);
    }
  kp_closep (&child_fd); /* so that the child's death reads as end-of-file */

  int64_t deadline = monotonic_ms () + timeout_ms;
  for (;;)
    {
      int64_t left = deadline - monotonic_ms ();
      if (left <= 0)
        {
          kill (pid, SIGKILL);
          reap_child (pid, 0);
          return probe_fail (res, ETIMEDOUT, "the probe did not finish within %u ms",
                             timeout_ms);
        }
      struct pollfd pfd = { .fd = parent_fd, .events = POLLIN };
      int r = poll (&pfd, 1, (int) left);
      if (r < 0 && errno == EINTR)
        continue;
      if (r < 0)
        {
          int saved = errno;
          kill (pid, SIGKILL);
          reap_child (pid, 0);
          return probe_fail (res, saved, "poll");
        }
      if (r > 0)
        break;
    }

  kp_probe_result frame;
  ssize_t n;
  do
    n = recv (parent_fd, &frame, sizeof frame, 0);
  while (n < 0 && errno == EINTR);
  int status = reap_child (pid, 1000);
  if (n != (ssize_t) sizeof frame)
    return describe_exit (res, status);
  *res = frame;
  res->message[sizeof res->message - 1] = '\0';
  return res->ok ? 0 : -1;
}

/* ---- steps run inside the child ----------------------------------------------------- */

static int
child_write_file (const char *path, const char *text, kp_probe_result *res)
{
  int fd = open (path, O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    {
      probe_fail (res, errno, "open %s", path);
      return -1;
    }
  size_t len = strlen (text);
  ssize_t n = write (fd, text, len);
  int saved = errno;
  close (fd);
  if (n != (ssize_t) len)
    {
      probe_fail (res, n < 0 ? saved : EIO, "write %s", path);
      return -1;
    }
  return 0;
}

/* Map the caller's own ids to root of the new namespace, as an unprivileged process may:
 * one id each, after denying setgroups. This is the single-id path; the full-range path
 * adds newuidmap on top, which the newuidmap check covers. */
static int
child_write_id_maps (uid_t uid, gid_t gid, kp_probe_result *res)
{
  char line[64];
  int fd = open ("/proc/self/setgroups", O_WRONLY | O_CLOEXEC);
  if (fd >= 0) /* absent before Linux 3.19: nothing to deny */
    {
      ssize_t n = write (fd, "deny", 4);
      int saved = errno;
      close (fd);
      if (n != 4)
        {
          probe_fail (res, n < 0 ? saved : EIO, "write /proc/self/setgroups");
          return -1;
        }
    }
  snprintf (line, sizeof line, "0 %u 1\n", (unsigned) uid);
  if (child_write_file ("/proc/self/uid_map", line, res) < 0)
    return -1;
  snprintf (line, sizeof line, "0 %u 1\n", (unsigned) gid);
  if (child_write_file ("/proc/self/gid_map", line, res) < 0)
    return -1;
  return 0;
}

typedef struct userns_probe
{
  uid_t uid;
  gid_t gid;
} userns_probe;

/* A user namespace is only useful when we hold capabilities in it: Ubuntu's AppArmor
 * restriction lets unshare() succeed and then denies every capability, so the probe goes
 * on to write the id maps and create a mount namespace. */
static int
probe_userns (void *data, kp_probe_result *res)
{
  const userns_probe *p = data;
  if (unshare (CLONE_NEWUSER) < 0)
    return probe_fail (res, errno, "unshare(CLONE_NEWUSER)");
  if (child_write_id_maps (p->uid, p->gid, res) < 0)
    return -1;
  if (unshare (CLONE_NEWNS) < 0)
    return probe_fail (res, errno, "unshare(CLONE_NEWNS) inside the user namespace");
  res->ok = 1;
  return 0;
}

typedef struct overlay_probe
{
  uid_t uid;
  gid_t gid;
  const char *dir; /* an empty directory of ours; made a tmpfs first when tmpfs is set */
  bool tmpfs;
} overlay_probe;

#define PROBE_CONTENT "karapace overlay probe\n"

static int
child_path (char *buf, size_t size, const char *dir, const char *name, kp_probe_result *res)
{
  int n = snprintf (buf, size, "%s/%s", dir, name);
  if (n < 0 || (size_t) n >= size)
    {
      probe_fail (res, ENAMETOOLONG, "path below %s", dir);
      return -1;
    }
  return 0;
}

static int
probe_overlay (void *data, kp_probe_result *res)
{
  const overlay_probe *p = data;
  char lower[PATH_MAX], upper[PATH_MAX], work[PATH_MAX], merged[PATH_MAX];
  char file[PATH_MAX], opts[4 * PATH_MAX];

  if (unshare (CLONE_NEWUSER | CLONE_NEWNS) < 0)
    return probe_fail (res, errno, "unshare(CLONE_NEWUSER|CLONE_NEWNS)");
  if (child_write_id_maps (p->uid, p->gid, res) < 0)
    return -1;
  /* Nothing we mount may propagate back to the host. */
  if (mount (NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
    return probe_fail (res, errno, "make / private");
  if (p->tmpfs && mount ("tmpfs", p->dir, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0700,size=1m") < 0)
    return probe_fail (res, errno, "mount tmpfs on %s", p->dir);

  if (child_path (lower, sizeof lower, p->dir, "lower", res) < 0
      || child_path (upper, sizeof upper, p->dir, "upper", res) < 0
      || child_path (work, sizeof work, p->dir, "work", res) < 0
      || child_path (merged, sizeof merged, p->dir, "merged", res) < 0)
    return -1;
  const char *dirs[] = { lower, upper, work, merged };
  for (size_t i = 0; i < KP_N_ELEMENTS (dirs); i++)
    if (mkdir (dirs[i], 0700) < 0)
      return probe_fail (res, errno, "mkdir %s", dirs[i]);
  /* A lower file to delete through the overlay: that needs a whiteout in upper. */
  if (child_path (file, sizeof file, lower, "old", res) < 0)
    return -1;
  int fd = open (file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0)
    return probe_fail (res, errno, "create %s", file);
  close (fd);

  int n = snprintf (opts, sizeof opts, "lowerdir=%s,upperdir=%s,workdir=%s,userxattr", lower,
                    upper, work);
  if (n < 0 || (size_t) n >= sizeof opts)
    return probe_fail (res, ENAMETOOLONG, "overlay options");
  if (mount ("overlay", merged, "overlay", 0, opts) < 0)
    return probe_fail (res, errno, "mount -t overlay -o userxattr");

  if (child_path (file, sizeof file, merged, "new", res) < 0)
    return -1;
  fd = open (file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0)
    return probe_fail (res, errno, "create a file through the overlay");
  ssize_t w = write (fd, PROBE_CONTENT, strlen (PROBE_CONTENT));
  int saved = errno;
  close (fd);
  if (w != (ssize_t) strlen (PROBE_CONTENT))
    return probe_fail (res, w < 0 ? saved : EIO, "write a file through the overlay");

  if (child_path (file, sizeof file, upper, "new", res) < 0)
    return -1;
  char back[64] = { 0 };
  fd = open (file, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return probe_fail (res, errno, "a file written through the overlay is not in upperdir");
  ssize_t r = read (fd, back, sizeof back - 1);
  close (fd);
  if (r != (ssize_t) strlen (PROBE_CONTENT) || strcmp (back, PROBE_CONTENT) != 0)
    return probe_fail (res, EIO, "upperdir holds different content than was written");

  if (child_path (file, sizeof file, merged, "old", res) < 0)
    return -1;
  if (unlink (file) < 0)
    return probe_fail (res, errno, "delete a lower file through the overlay (whiteout)");
  if (child_path (file, sizeof file, upper, "old", res) < 0)
    return -1;
  struct stat st;
  if (lstat (file, &st) < 0)
    return probe_fail (res, errno, "no whiteout in upperdir after deleting a lower file");
  if (!S_ISCHR (st.st_mode) || st.st_rdev != makedev (0, 0))
    return probe_fail (res, EIO, "upperdir holds no 0:0 whiteout after deleting a file");

  umount2 (merged, MNT_DETACH);
  res->ok = 1;
  return 0;
}

/* ---- the checks --------------------------------------------------------------------- */

static const char *
read_sysctl (const char *path, char *buf, size_t size)
{
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return NULL;
  ssize_t n = read (fd, buf, size - 1);
  close (fd);
  if (n <= 0)
    return NULL;
  buf[n] = '\0';
  buf[strcspn (buf, "\n")] = '\0';
  return buf;
}

#define FIX_MAX_USERNS                                                                        \
  "sysctl -w user.max_user_namespaces=28633 (persist it in /etc/sysctl.d/)"
#define FIX_USERNS_CLONE                                                                      \
  "sysctl -w kernel.unprivileged_userns_clone=1 (persist it in /etc/sysctl.d/)"
#define FIX_APPARMOR                                                                          \
  "allow user namespaces for karapace with an AppArmor profile (/etc/apparmor.d/karapace: "  \
  "'abi <abi/4.0>, include <tunables/global> profile karapace /usr/bin/karapace "            \
  "flags=(unconfined) { userns, }', then apparmor_parser -r /etc/apparmor.d/karapace), "    \
  "or sysctl -w kernel.apparmor_restrict_unprivileged_userns=0"

int
kp_doctor_check_userns (kp_doctor_ctx *ctx, kp_check *c)
{
  char max_buf[32], clone_buf[32], aa_buf[32];
  const char *max = read_sysctl ("/proc/sys/user/max_user_namespaces", max_buf, sizeof max_buf);
  const char *clone
      = read_sysctl ("/proc/sys/kernel/unprivileged_userns_clone", clone_buf, sizeof clone_buf);
  const char *aa = read_sysctl ("/proc/sys/kernel/apparmor_restrict_unprivileged_userns", aa_buf,
                                sizeof aa_buf);

  /* What the sysctls say, the reason a try fails (root is exempt from the last two). */
  const char *blocker = NULL, *fix = NULL;
  if (max == NULL)
    blocker = "the kernel has no user namespaces (no /proc/sys/user/max_user_namespaces)",
    fix = "use a kernel built with CONFIG_USER_NS=y";
  else if (strcmp (max, "0") == 0)
    blocker = "user.max_user_namespaces is 0", fix = FIX_MAX_USERNS;
  else if (clone != NULL && strcmp (clone, "0") == 0 && !ctx->root)
    blocker = "kernel.unprivileged_userns_clone is 0", fix = FIX_USERNS_CLONE;
  else if (aa != NULL && strcmp (aa, "1") == 0 && !ctx->root)
    blocker = "AppArmor restricts unprivileged user namespaces "
              "(kernel.apparmor_restrict_unprivileged_userns=1)",
    fix = FIX_APPARMOR;

  if (ctx->opts->quick)
    {
      if (blocker != NULL)
        return kp_check_set (c, KP_CHECK_FAIL, fix, "%s", blocker);
      return kp_check_set (c, KP_CHECK_OK, NULL,
                           "allowed by the sysctls (max_user_namespaces=%s); not tried (quick)",
                           max);
    }

  userns_probe p = { ctx->uid, ctx->gid };
  kp_probe_result res;
  kp_doctor_probe (probe_userns, &p, ctx->timeout_ms, &res);
  if (res.ok)
    {
      if (blocker != NULL) /* e.g. a profile already lets this program through */
        return kp_check_set (c, KP_CHECK_OK, NULL,
                             "a user namespace was created and mapped, although %s", blocker);
      return kp_check_set (c, KP_CHECK_OK, NULL,
                           "a user namespace was created and mapped (max_user_namespaces=%s)",
                           max);
    }
  if (blocker == NULL)
    fix = "check the kernel log and any security module (SELinux, AppArmor, seccomp filter of "
          "a surrounding container) that refuses user namespaces";
  return kp_check_set (c, KP_CHECK_FAIL, fix, "%s%s%s%s%s", res.message,
                       res.errnum ? ": " : "", res.errnum ? strerror (res.errnum) : "",
                       blocker ? "; " : "", blocker ? blocker : "");
}

/* Try the overlay in a fresh directory below base; removes everything afterwards. */
static int
try_overlay (kp_doctor_ctx *ctx, const char *base, bool tmpfs, kp_probe_result *res)
{
  kp_cleanup_free char *dir = xasprintf ("%s/karapace-doctor-XXXXXX", base);
  if (mkdtemp (dir) == NULL)
    {
      memset (res, 0, sizeof *res);
      return probe_fail (res, errno, "create a temporary directory in %s", base);
    }
  overlay_probe p = { ctx->uid, ctx->gid, dir, tmpfs };
  int r = kp_doctor_probe (probe_overlay, &p, ctx->timeout_ms, res);
  /* The child's mounts died with its namespace; what it wrote outside a tmpfs stays. */
  kp_doctor_remove_tree (dir);
  return r;
}

static char *
describe_result (const kp_probe_result *res)
{
  if (res->errnum)
    return xasprintf ("%s: %s", res->message, strerror (res->errnum));
  return xstrdup (res->message);
}

/* The store's own filesystem is where upper layers live, and some (overlay, NFS,
 * ecryptfs) cannot be an upper layer: try it there too when there is a writable store. */
static const char *
store_probe_base (const char *store, char **owned)
{
  struct stat st;
  if (store == NULL || stat (store, &st) < 0 || !S_ISDIR (st.st_mode)
      || access (store, W_OK | X_OK) < 0)
    return NULL;
  *owned = xasprintf ("%s/tmp", store);
  if (stat (*owned, &st) == 0 && S_ISDIR (st.st_mode) && access (*owned, W_OK | X_OK) == 0)
    return *owned;
  return store;
}

int
kp_doctor_check_overlay (kp_doctor_ctx *ctx, kp_check *c)
{
  if (ctx->opts->quick)
    return kp_check_set (c, KP_CHECK_SKIP, NULL, "not tried (quick)");

  kp_probe_result res;
  try_overlay (ctx, kp_doctor_scratch_dir (ctx->uid), true, &res);
  kp_cleanup_free char *tmpfs_what = res.ok ? NULL : describe_result (&res);

  kp_cleanup_free char *store_tmp = NULL;
  kp_cleanup_free char *store_what = NULL;
  kp_cleanup_free char *store_fs = NULL;
  const char *store_base = store_probe_base (ctx->opts->store_path, &store_tmp);
  if (store_base != NULL)
    {
      struct statfs sfs;
      store_fs = xstrdup (statfs (store_base, &sfs) == 0 ? kp_doctor_fs_name (sfs.f_type)
                                                         : "unknown filesystem");
      try_overlay (ctx, store_base, false, &res);
      if (!res.ok)
        store_what = describe_result (&res);
    }

  /* fuse-overlayfs is a fallback for the mount only: it needs a user namespace too. */
  kp_cleanup_free char *fuse_why = NULL;
  bool userns = kp_doctor_ctx_status (ctx, "userns") != KP_CHECK_FAIL;
  bool fuse = userns && kp_doctor_fuse_usable (&fuse_why);
  kp_check_status bad = fuse ? KP_CHECK_WARN : KP_CHECK_FAIL;
  const char *fallback = fuse ? "; fuse-overlayfs (slower) will be used instead" : "";
  const char *fix_fuse = fuse ? "until then fuse-overlayfs is used"
                              : "or make the fuse-overlayfs fallback work (see that check)";

  if (tmpfs_what != NULL)
    {
      kp_cleanup_free char *fix = NULL;
      if (!userns)
        fix = xstrdup ("enable user namespaces first (see the userns check)");
      else if (kp_doctor_ctx_status (ctx, "kernel") != KP_CHECK_OK)
        fix = xasprintf ("upgrade to Linux 5.11 or later for overlayfs in user namespaces; %s",
                         fix_fuse);
      else
        fix = xasprintf ("look for overlayfs messages in dmesg (a module blocklist, a security "
                         "module); %s",
                         fix_fuse);
      return kp_check_set (c, bad, fix, "kernel overlayfs failed: %s%s", tmpfs_what, fallback);
    }
  if (store_what != NULL)
    return kp_check_set (c, bad,
                         "put the store on a local filesystem such as ext4, xfs or btrfs "
                         "(--store or KARAPACE_STORE), or rely on fuse-overlayfs",
                         "works on tmpfs, but not with upper layers on the store's %s: %s%s",
                         store_fs, store_what, fallback);
  if (store_base != NULL)
    return kp_check_set (c, KP_CHECK_OK, NULL,
                         "mounted with userxattr in a user namespace, wrote and deleted through "
                         "it (upper on tmpfs and on the store's %s)",
                         store_fs);
  return kp_check_set (c, KP_CHECK_OK, NULL,
                       "mounted with userxattr in a user namespace, wrote and deleted through it "
                       "(upper on tmpfs)");
}
