/* doctor-paths.c — the places the runtime writes: the runtime directory
 * ($XDG_RUNTIME_DIR/karapace) and the store.
 *
 * The runtime directory holds sockets and pid files of running environments; one that
 * another user can write or own would let that user hijack them, which is why ownership
 * and mode matter and why a fallback directory owned by someone else is a failure. */
#include "doctor-internal.h"

#include "base/buf.h"
#include "base/fs.h"

#include <errno.h>
#include <stdlib.h>
#include <linux/magic.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define KP_STORE_MIN_FREE (2ull << 30)

/* Magic numbers not in every <linux/magic.h>. */
#define KP_XFS_MAGIC 0x58465342L
#define KP_FUSE_MAGIC 0x65735546L
#define KP_ZFS_MAGIC 0x2fc12fc1L
#define KP_CIFS_MAGIC 0xff534d42L
#define KP_SMB2_MAGIC 0xfe534d42L
#define KP_CEPH_MAGIC 0x00c36400L
#define KP_BCACHEFS_MAGIC 0xca451a4eL
#define KP_9P_MAGIC 0x01021997L

static const struct
{
  long magic;
  const char *name;
} fs_names[] = {
  { EXT4_SUPER_MAGIC, "ext4" },
  { KP_XFS_MAGIC, "xfs" },
  { BTRFS_SUPER_MAGIC, "btrfs" },
  { TMPFS_MAGIC, "tmpfs" },
  { OVERLAYFS_SUPER_MAGIC, "overlay" },
  { NFS_SUPER_MAGIC, "nfs" },
  { KP_FUSE_MAGIC, "fuse" },
  { KP_ZFS_MAGIC, "zfs" },
  { F2FS_SUPER_MAGIC, "f2fs" },
  { KP_CIFS_MAGIC, "cifs" },
  { KP_SMB2_MAGIC, "smb2" },
  { ECRYPTFS_SUPER_MAGIC, "ecryptfs" },
  { KP_9P_MAGIC, "9p" },
  { KP_CEPH_MAGIC, "ceph" },
  { KP_BCACHEFS_MAGIC, "bcachefs" },
  { RAMFS_MAGIC, "ramfs" },
  { SQUASHFS_MAGIC, "squashfs" },
  { MSDOS_SUPER_MAGIC, "vfat" },
  { REISERFS_SUPER_MAGIC, "reiserfs" },
  { CGROUP2_SUPER_MAGIC, "cgroup2" },
  { SYSFS_MAGIC, "sysfs" },
  { PROC_SUPER_MAGIC, "proc" },
};

const char *
kp_doctor_fs_name (long f_type)
{
  for (size_t i = 0; i < KP_N_ELEMENTS (fs_names); i++)
    if ((uint32_t) fs_names[i].magic == (uint32_t) f_type) /* f_type is signed on some ABIs */
      return fs_names[i].name;
  return "unknown";
}

/* ---- runtime directory -------------------------------------------------------------- */

/* Why a runtime directory is unusable, or NULL when it is a private directory of ours. */
static char *
runtime_dir_problem (const char *path, uid_t uid, bool must_exist)
{
  struct stat st;
  if (lstat (path, &st) < 0)
    return errno == ENOENT && !must_exist ? NULL : xasprintf ("%s: %s", path, strerror (errno));
  if (!S_ISDIR (st.st_mode))
    return xasprintf ("%s is not a directory", path);
  if (st.st_uid != uid)
    return xasprintf ("%s belongs to uid %u, not to you", path, (unsigned) st.st_uid);
  if ((st.st_mode & 07777) != 0700)
    return xasprintf ("%s has mode %04o, not 0700", path, (unsigned) (st.st_mode & 07777));
  if (access (path, W_OK | X_OK) < 0)
    return xasprintf ("%s is not writable: %s", path, strerror (errno));
  return NULL;
}

int
kp_doctor_check_runtime_dir (kp_doctor_ctx *ctx, kp_check *c)
{
  const char *xdg = getenv ("XDG_RUNTIME_DIR");
  kp_cleanup_free char *problem = NULL;
  if (xdg == NULL || xdg[0] == '\0')
    problem = xstrdup ("XDG_RUNTIME_DIR is not set");
  else if (xdg[0] != '/')
    problem = xasprintf ("XDG_RUNTIME_DIR=%s is not an absolute path", xdg);
  else
    problem = runtime_dir_problem (xdg, ctx->uid, true);
  if (problem == NULL)
    return kp_check_set (c, KP_CHECK_OK, NULL,
                         "XDG_RUNTIME_DIR=%s (yours, mode 0700); state goes to %s/karapace", xdg,
                         xdg);

  /* The fallback the runtime uses; it must be ours, or absent so we can create it. */
  kp_cleanup_free char *fallback = xasprintf ("/tmp/karapace-%u", (unsigned) ctx->uid);
  kp_cleanup_free char *fallback_problem = runtime_dir_problem (fallback, ctx->uid, false);
  if (fallback_problem != NULL)
    {
      kp_cleanup_free char *fix = xasprintf (
          "remove %s (it is not a private directory of yours) or set XDG_RUNTIME_DIR to a "
          "directory you own with mode 0700",
          fallback);
      return kp_check_set (c, KP_CHECK_FAIL, fix, "%s, and the fallback is unusable: %s",
                           problem, fallback_problem);
    }
  kp_cleanup_free char *fix = xasprintf (
      "log in through a PAM session with pam_systemd (it provides /run/user/%u), or export "
      "XDG_RUNTIME_DIR to a directory you own with mode 0700",
      (unsigned) ctx->uid);
  return kp_check_set (c, KP_CHECK_WARN, fix, "%s; runtime state goes to %s instead", problem,
                       fallback);
}

/* ---- store -------------------------------------------------------------------------- */

static const char *
fs_warning (long f_type)
{
  switch ((unsigned long) (uint32_t) f_type)
    {
    case OVERLAYFS_SUPER_MAGIC:
      return "an overlay cannot hold overlay upper layers: kernel overlayfs will refuse it";
    case NFS_SUPER_MAGIC:
    case (uint32_t) KP_CIFS_MAGIC:
    case (uint32_t) KP_SMB2_MAGIC:
    case KP_9P_MAGIC:
      return "a network filesystem lacks the xattrs, whiteouts and locking the store needs";
    case ECRYPTFS_SUPER_MAGIC:
      return "ecryptfs cannot hold overlay upper layers";
    case KP_FUSE_MAGIC:
      return "a FUSE filesystem usually cannot hold overlay upper layers";
    default:
      return NULL;
    }
}

static void
human_size (char *buf, size_t size, unsigned long long bytes)
{
  if (bytes >= (1ull << 30))
    snprintf (buf, size, "%.1f GiB", (double) bytes / (double) (1ull << 30));
  else
    snprintf (buf, size, "%.0f MiB", (double) bytes / (double) (1ull << 20));
}

int
kp_doctor_check_store (kp_doctor_ctx *ctx, kp_check *c)
{
  const char *fix_move = "choose another store with --store or KARAPACE_STORE";
  if (ctx->opts->store_path == NULL)
    return kp_check_set (c, KP_CHECK_SKIP, NULL, "no store path given");

  kp_cleanup_error kp_error *err = NULL;
  kp_cleanup_free char *store = kp_path_absolute (ctx->opts->store_path, &err);
  if (store == NULL)
    {
      kp_cleanup_free char *msg = kp_error_describe (err);
      return kp_check_set (c, KP_CHECK_FAIL, fix_move, "%s", msg);
    }

  /* A store that does not exist yet is created below its nearest existing ancestor. */
  kp_cleanup_free char *existing = xstrdup (store);
  bool exists = true;
  struct stat st;
  while (stat (existing, &st) < 0)
    {
      int saved = errno;
      if ((saved != ENOENT && saved != ENOTDIR) || strcmp (existing, "/") == 0)
        return kp_check_set (c, KP_CHECK_FAIL, fix_move, "%s: %s", existing, strerror (saved));
      exists = false;
      char *parent = kp_path_dirname (existing);
      free (existing);
      existing = parent;
    }
  if (!S_ISDIR (st.st_mode))
    return kp_check_set (c, KP_CHECK_FAIL, fix_move, "%s is not a directory", existing);
  if (exists && st.st_uid != ctx->uid)
    return kp_check_set (c, KP_CHECK_FAIL, fix_move, "%s belongs to uid %u, not to you", store,
                         (unsigned) st.st_uid);
  if (access (existing, W_OK | X_OK) < 0)
    {
      int saved = errno;
      if (exists)
        return kp_check_set (c, KP_CHECK_FAIL, fix_move, "%s is not writable: %s", store,
                             strerror (saved));
      return kp_check_set (c, KP_CHECK_FAIL, fix_move,
                           "%s does not exist and cannot be created: %s is not writable (%s)",
                           store, existing, strerror (saved));
    }

  struct statfs sfs;
  struct statvfs vfs;
  if (statfs (existing, &sfs) < 0 || statvfs (existing, &vfs) < 0)
    return kp_check_set (c, KP_CHECK_WARN, fix_move, "statfs %s: %s", existing,
                         strerror (errno));
  const char *fs = kp_doctor_fs_name ((long) sfs.f_type);
  unsigned long long avail = (unsigned long long) vfs.f_bavail * vfs.f_frsize;
  char free_text[32];
  human_size (free_text, sizeof free_text, avail);

  kp_cleanup_buf kp_buf detail = KP_BUF_INIT;
  if (exists)
    kp_buf_printf (&detail, "%s: writable", store);
  else
    kp_buf_printf (&detail, "%s: does not exist yet, will be created in %s", store, existing);
  kp_buf_printf (&detail, "; %s", fs);
  if (strcmp (fs, "unknown") == 0)
    kp_buf_printf (&detail, " (0x%lx)", (unsigned long) (uint32_t) sfs.f_type);
  if ((unsigned long) (uint32_t) sfs.f_type == TMPFS_MAGIC)
    kp_buf_puts (&detail, " (emptied at reboot)");
  kp_buf_printf (&detail, "; %s free", free_text);

  if (vfs.f_flag & ST_RDONLY)
    return kp_check_set (c, KP_CHECK_FAIL, fix_move, "%s; mounted read-only",
                         kp_buf_str (&detail));
  const char *warning = fs_warning ((long) sfs.f_type);
  if (warning != NULL)
    return kp_check_set (c, KP_CHECK_WARN, "put the store on a local filesystem such as ext4, "
                         "xfs or btrfs (--store or KARAPACE_STORE)",
                         "%s: %s", kp_buf_str (&detail), warning);
  if (avail < KP_STORE_MIN_FREE)
    return kp_check_set (c, KP_CHECK_WARN,
                         "free space (karapace gc removes unused layers), or choose another "
                         "store with --store",
                         "%s: less than 2 GiB, builds may run out of space",
                         kp_buf_str (&detail));
  return kp_check_set (c, KP_CHECK_OK, NULL, "%s", kp_buf_str (&detail));
}
