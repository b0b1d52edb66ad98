/* caps.c — capability sets, descriptor cleanup and the lockdown sequence (caps.h).
 *
 * The capability calls go straight to the kernel: capget/capset with the version 3 header
 * (two 32-bit words per set), prctl for the bounding and ambient sets. Kernel features that
 * may be missing (cap_last_cap, ambient capabilities, close_range) are probed here, each
 * with its fallback next to it. */
#include "caps.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_close_range
#define SYS_close_range 436
#endif

/* ---- capability numbers -------------------------------------------------------------- */

int
kp_caps_last (void)
{
  kp_cleanup_close int fd = open ("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
  if (fd >= 0)
    {
      char text[16];
      ssize_t n = read (fd, text, sizeof text - 1);
      if (n > 0)
        {
          text[n] = '\0';
          char *end;
          long v = strtol (text, &end, 10);
          if (end != text && v >= 0 && v < 64)
            return (int) v;
        }
    }
  /* No /proc (or a masked one): the bounding set answers EINVAL past the last one. */
  int last = 0;
  while (last < 63 && prctl (PR_CAPBSET_READ, (unsigned long) last + 1, 0, 0, 0) >= 0)
    last++;
  return last;
}

uint64_t
kp_caps_all (void)
{
  int last = kp_caps_last ();
  return last >= 63 ? UINT64_MAX : (KP_CAP_BIT (last + 1) - 1);
}

/* ---- the sets ------------------------------------------------------------------------ */

int
kp_caps_drop_bounding (uint64_t keep, kp_error **err)
{
  int last = kp_caps_last ();
  for (int cap = 0; cap <= last; cap++)
    {
      if (keep & KP_CAP_BIT (cap))
        continue;
      int present = prctl (PR_CAPBSET_READ, (unsigned long) cap, 0, 0, 0);
      if (present < 0)
        {
          if (errno == EINVAL)
            break; /* the kernel knows fewer capabilities than cap_last_cap said */
          return kp_error_errno (err, errno, "read capability %d of the bounding set", cap);
        }
      if (present == 0)
        continue;
      if (prctl (PR_CAPBSET_DROP, (unsigned long) cap, 0, 0, 0) < 0)
        {
          kp_error_errno (err, errno, "drop capability %d from the bounding set", cap);
          if (errno == EPERM)
            kp_error_hint (err, "dropping from the bounding set needs CAP_SETPCAP");
          return -1;
        }
    }
  return 0;
}

int
kp_caps_get (kp_caps *caps, uint64_t *bounding, kp_error **err)
{
  struct __user_cap_header_struct header = { _LINUX_CAPABILITY_VERSION_3, 0 };
  struct __user_cap_data_struct data[2];
  memset (data, 0, sizeof data);
  if (syscall (SYS_capget, &header, data) < 0)
    return kp_error_errno (err, errno, "capget");
  memset (caps, 0, sizeof *caps);
  caps->effective = data[0].effective | ((uint64_t) data[1].effective << 32);
  caps->permitted = data[0].permitted | ((uint64_t) data[1].permitted << 32);
  caps->inheritable = data[0].inheritable | ((uint64_t) data[1].inheritable << 32);
  int last = kp_caps_last ();
  for (int cap = 0; cap <= last; cap++)
    {
      int rc = prctl (PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, (unsigned long) cap, 0, 0);
      if (rc > 0)
        caps->ambient |= KP_CAP_BIT (cap);
    }
  if (bounding != NULL)
    {
      *bounding = 0;
      for (int cap = 0; cap <= last; cap++)
        if (prctl (PR_CAPBSET_READ, (unsigned long) cap, 0, 0, 0) > 0)
          *bounding |= KP_CAP_BIT (cap);
    }
  return 0;
}

int
kp_caps_set (const kp_caps *caps, kp_error **err)
{
  uint64_t all = kp_caps_all ();
  uint64_t unknown = (caps->effective | caps->permitted | caps->inheritable | caps->ambient) & ~all;
  if (unknown != 0)
    return kp_error_set (err, KP_EXIT_RUNTIME,
                         "capabilities 0x%llx are unknown to this kernel (last is %d)",
                         (unsigned long long) unknown, kp_caps_last ());
  if ((caps->ambient & ~(caps->permitted & caps->inheritable)) != 0)
    return kp_error_set (err, KP_EXIT_RUNTIME,
                         "ambient capabilities must also be permitted and inheritable");

  /* Ambient first: capset clears ambient capabilities that leave permitted or inheritable,
   * and clearing them explicitly works the same on every kernel. */
  if (prctl (PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
    return kp_error_errno (err, errno, "clear the ambient capabilities");

  struct __user_cap_header_struct header = { _LINUX_CAPABILITY_VERSION_3, 0 };
  struct __user_cap_data_struct data[2];
  data[0].effective = (uint32_t) caps->effective;
  data[1].effective = (uint32_t) (caps->effective >> 32);
  data[0].permitted = (uint32_t) caps->permitted;
  data[1].permitted = (uint32_t) (caps->permitted >> 32);
  data[0].inheritable = (uint32_t) caps->inheritable;
  data[1].inheritable = (uint32_t) (caps->inheritable >> 32);
  if (syscall (SYS_capset, &header, data) < 0)
    {
      kp_error_errno (err, errno, "capset");
      if (errno == EPERM)
        kp_error_hint (err, "a capability can only be kept, never gained back");
      return -1;
    }

  for (int cap = 0; cap < 64; cap++)
    {
      if (!(caps->ambient & KP_CAP_BIT (cap)))
        continue;
      if (prctl (PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, (unsigned long) cap, 0, 0) < 0)
        {
          kp_error_errno (err, errno, "raise ambient capability %d", cap);
          if (errno == EINVAL)
            kp_error_hint (err, "this kernel has no ambient capabilities (Linux < 4.3)");
          return -1;
        }
    }
  return 0;
}

/* ---- descriptors --------------------------------------------------------------------- */

static int
close_from_proc (int first, int keep)
{
  /* Collect first, close after: closing while iterating would also close the directory's
   * own descriptor under readdir. */
  kp_cleanup_dir DIR *d = opendir ("/proc/self/fd");
  if (d == NULL)
    return -1;
  int dir_fd = dirfd (d);
  struct dirent *de;
  while ((de = readdir (d)) != NULL)
    {
      if (de->d_name[0] < '0' || de->d_name[0] > '9')
        continue;
      long fd = strtol (de->d_name, NULL, 10);
      if (fd >= first && fd != keep && fd != dir_fd && fd <= INT32_MAX)
        close ((int) fd);
    }
  return 0;
}

static void
close_by_loop (int first, int keep)
{
  struct rlimit rl;
  long max = 65536;
  if (getrlimit (RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
    max = rl.rlim_cur > (rlim_t) (1 << 20) ? (1 << 20) : (long) rl.rlim_cur;
  for (long fd = first; fd < max; fd++)
    if (fd != keep)
      close ((int) fd);
}

static int
close_range_syscall (unsigned lo, unsigned hi)
{
  return (int) syscall (SYS_close_range, lo, hi, 0u);
}

int
kp_fds_close_from (int first, int keep, bool try_close_range, kp_error **err)
{
  if (first < 0)
    return kp_error_set (err, KP_EXIT_RUNTIME, "close descriptors: bad start %d", first);
  if (keep < first)
    keep = -1;
  if (try_close_range)
    {
      int rc;
      if (keep < 0)
        rc = close_range_syscall ((unsigned) first, ~0u);
      else
        {
          rc = keep > first ? close_range_syscall ((unsigned) first, (unsigned) keep - 1) : 0;
          if (rc == 0 && keep < INT32_MAX)
            rc = close_range_syscall ((unsigned) keep + 1, ~0u);
        }
      if (rc == 0)
        return 0;
      /* ENOSYS: Linux < 5.9; EPERM: a filter that refuses it. */
      if (errno != ENOSYS && errno != EPERM)
        return kp_error_errno (err, errno, "close_range");
    }
  if (close_from_proc (first, keep) < 0)
    close_by_loop (first, keep);
  return 0;
}

/* ---- the sequence -------------------------------------------------------------------- */

int
kp_lockdown_apply (const kp_lockdown *spec, kp_error **err)
{
  if ((spec->caps & ~kp_caps_all ()) != 0)
    return kp_error_set (err, KP_EXIT_RUNTIME,
                         "lockdown: capabilities 0x%llx are unknown to this kernel",
                         (unsigned long long) (spec->caps & ~kp_caps_all ()));

  if (kp_caps_drop_bounding (spec->caps, err) < 0)
    return kp_error_prefix (err, "lockdown");

  /* Keep the permitted set across setresuid away from 0; step 3 trims it exactly. */
  if (prctl (PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
    return kp_error_errno (err, errno, "lockdown: PR_SET_KEEPCAPS");
  if (setresgid (spec->gid, spec->gid, spec->gid) < 0)
    return kp_error_errno (err, errno, "lockdown: setresgid %u", (unsigned) spec->gid);
  if (spec->set_groups && setgroups (spec->n_groups, spec->groups) < 0)
    return kp_error_errno (err, errno, "lockdown: setgroups");
  if (setresuid (spec->uid, spec->uid, spec->uid) < 0)
    return kp_error_errno (err, errno, "lockdown: setresuid %u", (unsigned) spec->uid);
  if (prctl (PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
    return kp_error_errno (err, errno, "lockdown: PR_SET_KEEPCAPS");

  kp_caps caps = { spec->caps, spec->caps, spec->caps, spec->uid != 0 ? spec->caps : 0 };
  if (kp_caps_set (&caps, err) < 0)
    return kp_error_prefix (err, "lockdown");

  if (prctl (PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
    return kp_error_errno (err, errno, "lockdown: PR_SET_NO_NEW_PRIVS");

  /* A program compiled in advance; if the kernel refuses it (one a holder's starter kept
   * in its state directory, damaged since), the profile is compiled here instead. */
  bool loaded = false;
  if (spec->seccomp_program && spec->seccomp_program->profile == spec->seccomp
      && spec->seccomp_program->filter != NULL)
    {
      kp_error *refused = NULL;
      loaded = kp_seccomp_load_program (spec->seccomp_program, &refused) == 0;
      kp_error_free (refused);
    }
  if (!loaded && kp_seccomp_load (spec->seccomp, err) < 0)
    return kp_error_prefix (err, "lockdown");

  if (kp_fds_close_from (3, spec->keep_fd, true, err) < 0)
    return kp_error_prefix (err, "lockdown");
  return 0;
}
