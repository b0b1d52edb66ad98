/* rootfs.c — the holder assembles the environment's root filesystem (docs/runtime.md).
 *
 * Order matters, and so do descriptors:
 *   1. Everything needed from the host is opened first, as O_PATH descriptors in the
 *      holder's own mount namespace (a bind source must live in the namespace doing the
 *      bind): layers, upper and work, bind sources, device nodes, /sys.
 *   2. A scratch tmpfs is mounted over the top layer's path (only in this namespace). It
 *      holds the throw-away upper and work directories, the generated hosts and resolv.conf
 *      and the mount point of the overlay. Every path handed to the kernel from here on is
 *      /proc/self/fd/N, so no host path needs quoting and none can be swapped under us.
 *   3. The overlay is mounted (the kernel's, with userxattr; fuse-overlayfs when the kernel
 *      refuses), then pivot_root(".", ".") makes it the root and the old root is detached:
 *      from then on nothing of the host is reachable by path.
 *   4. Inside the new root, where symbolic links resolve inside it: /proc (a new instance,
 *      sensitive paths masked), /dev (a tmpfs with the six basic nodes bound from the host,
 *      a new devpts, shm, mqueue), /sys read-only, the binds, hosts and resolv.conf, the
 *      hostname, loopback. Bind targets are resolved with openat2(RESOLVE_IN_ROOT |
 *      RESOLVE_NO_MAGICLINKS) and refused when they land in /proc or /sys.
 *   5. The host descriptors are closed. */
#include "runtime-private.h"

#include "base/fs.h"
#include "base/util.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define FD_PATH_MAX 32

typedef struct held
{
  int *fds;
  size_t len, cap;
} held;

static int
hold (held *h, int fd)
{
  if (fd < 0)
    return fd;
  if (h->len == h->cap)
    {
      h->cap = h->cap ? 2 * h->cap : 16;
      h->fds = xreallocarray (h->fds, h->cap, sizeof *h->fds);
    }
  h->fds[h->len++] = fd;
  return fd;
}

static void
held_close (held *h)
{
  for (size_t i = 0; i < h->len; i++)
    close (h->fds[i]);
  free (h->fds);
  memset (h, 0, sizeof *h);
}

static void
fd_path (char buf[FD_PATH_MAX], int fd)
{
  snprintf (buf, FD_PATH_MAX, "/proc/self/fd/%d", fd);
}

static int
mount_error (kp_error **err, int errnum, const char *what, const char *where)
{
  kp_error_errno (err, errnum, "mount %s on %s", what, where);
  kp_error_set_status (err, KP_EXIT_RUNTIME);
  return -1;
}

/* ---- step 1: host descriptors ---------------------------------------------------------- */

#ifndef OPEN_TREE_CLOEXEC
#define OPEN_TREE_CLOEXEC O_CLOEXEC
#endif

static int
open_host_path (held *h, const char *path, const char *what, kp_error **err)
{
  int fd = open (path, O_PATH | O_CLOEXEC);
  if (fd < 0)
    {
      kp_error_errno (err, errno, "%s %s", what, path);
      kp_error_set_status (err, KP_EXIT_RUNTIME);
      return -1;
    }
  return hold (h, fd);
}

/* A detached copy of the mount tree at path (open_tree(2), Linux 5.2): it stays usable
 * after the old root is gone, when it is attached in the new root with move_mount. */
static int
clone_host_tree (held *h, const char *path, const char *what, kp_error **err)
{
  int fd = (int) syscall (SYS_open_tree, AT_FDCWD, path,
                          OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
  if (fd < 0)
    {
      kp_error_errno (err, errno, "%s %s", what, path);
      kp_error_set_status (err, KP_EXIT_RUNTIME);
      if (errno == ENOSYS)
        kp_error_hint (err, "the runtime needs Linux 5.2 or newer (open_tree, move_mount)");
      return -1;
    }
  return hold (h, fd);
}

/* ---- step 3: the overlay ---------------------------------------------------------------- */

static char *
overlay_lowerdir (const int *layer_fds, size_t n)
{
  kp_cleanup_buf kp_buf b = KP_BUF_INIT;
  for (size_t i = 0; i < n; i++)
    kp_buf_printf (&b, "%s/proc/self/fd/%d", i ? ":" : "", layer_fds[i]);
  return kp_buf_steal (&b);
}

static int
mount_kernel_overlay (const char *lowerdir, int upper_fd, int work_fd, const char *target,
                      int *errnum)
{
  kp_cleanup_free char *data
      = xasprintf ("lowerdir=%s,upperdir=/proc/self/fd/%d,workdir=/proc/self/fd/%d,userxattr",
                   lowerdir, upper_fd, work_fd);
  if (mount ("overlay", target, "overlay", MS_NODEV, data) == 0)
    return 0;
  *errnum = errno;
  return -1;
}

/* fuse-overlayfs, run in the holder's user namespace: it sees the same ids the kernel's
 * overlay would, so no id remapping is needed. It daemonizes once the mount is up; its daemon
 * lives in the pid namespace and dies with the holder.
 *
 * The daemon gets a mount namespace of its own: pivot_root moves the root of every process
 * of the namespace it runs in, and a daemon whose root became its own mount would deadlock
 * on its first path lookup. Its mount reaches ours because the scratch tmpfs is shared
 * between the two namespaces while it mounts, and private again before we pivot. */
static int
mount_fuse_overlay (const char *lowerdir, int upper_fd, int work_fd, const int *layer_fds,
                    size_t n_layers, const char *scratch, const char *target, kp_error **err)
{
  kp_cleanup_free char *program = kp_find_program ("fuse-overlayfs");
  if (program == NULL)
    {
      kp_error_set (err, KP_EXIT_RUNTIME, "fuse-overlayfs is not installed");
      kp_error_hint (err, "install it: apt-get install fuse-overlayfs");
      return -1;
    }
  if (access ("/dev/fuse", R_OK | W_OK) < 0)
    {
      kp_error_errno (err, errno, "fuse-overlayfs needs /dev/fuse");
      kp_error_set_status (err, KP_EXIT_RUNTIME);
      kp_error_hint (err, "make /dev/fuse usable by users (mode 0666, as udev does)");
      return -1;
    }
  kp_cleanup_free char *options
      = xasprintf ("lowerdir=%s,upperdir=/proc/self/fd/%d,workdir=/proc/self/fd/%d", lowerdir,
                   upper_fd, work_fd);
  int out[2];
  if (pipe2 (out, O_CLOEXEC) < 0)
    return kp_error_errno (err, errno, "pipe for fuse-overlayfs");
  if (mount (NULL, scratch, NULL, MS_SHARED, NULL) < 0)
    {
      close (out[0]);
      close (out[1]);
      return mount_error (err, errno, "shared propagation", scratch);
    }
  pid_t pid = fork ();
  if (pid == 0)
    {
      if (unshare (CLONE_NEWNS) < 0)
        {
          dprintf (out[1], "cannot unshare a mount namespace: %s", strerror (errno));
          _exit (127);
        }
      /* The daemon resolves /proc/self/fd/N in its own table: keep those open across exec. */
      for (size_t i = 0; i < n_layers; i++)
        fcntl (layer_fds[i], F_SETFD, 0);
      fcntl (upper_fd, F_SETFD, 0);
      fcntl (work_fd, F_SETFD, 0);
      int devnull = open ("/dev/null", O_RDWR | O_CLOEXEC);
      if (devnull >= 0)
        dup2 (devnull, STDIN_FILENO);
      dup2 (out[1], STDOUT_FILENO);
      dup2 (out[1], STDERR_FILENO);
      execl (program, "fuse-overlayfs", "-o", options, target, (char *) NULL);
      dprintf (STDERR_FILENO, "cannot run %s: %s", program, strerror (errno));
      _exit (127);
    }
  close (out[1]);
  if (pid < 0)
    {
      close (out[0]);
      return kp_error_errno (err, errno, "fork for fuse-overlayfs");
    }
  kp_cleanup_error kp_error *read_err = NULL;
  /* The foreground process exits once the mount is up; the daemon keeps the pipe open
   * only if it inherited it, which it does not (stdout is re-pointed). Read with a bound. */
  int status = 0;
  while (waitpid (pid, &status, 0) < 0 && errno == EINTR)
    ;
  kp_cleanup_free char *said = kp_fd_read_all (out[0], 1 << 16, NULL, &read_err);
  close (out[0]);
  if (mount (NULL, scratch, NULL, MS_REC | MS_PRIVATE, NULL) < 0)
    return mount_error (err, errno, "private propagation", scratch);
  if (WIFEXITED (status) && WEXITSTATUS (status) == 0)
    return 0;
  kp_error_set (err, KP_EXIT_RUNTIME, "fuse-overlayfs failed (status %d)%s%s",
                WIFEXITED (status) ? WEXITSTATUS (status) : 128 + WTERMSIG (status),
                said && said[0] ? ": " : "", said ? said : "");
  return -1;
}

/* ---- step 4: inside the new root ---------------------------------------------------------- */

/* mkdir -p inside the new root. */
static int
make_dirs (const char *path, mode_t mode)
{
  kp_cleanup_free char *copy = xstrdup (path);
  for (char *p = copy + 1; *p; p++)
    if (*p == '/')
      {
        *p = '\0';
        if (mkdir (copy, mode) < 0 && errno != EEXIST)
          return -1;
        *p = '/';
      }
  if (mkdir (copy, mode) < 0 && errno != EEXIST)
    return -1;
  return 0;
}

static int
make_file (const char *path)
{
  int fd = open (path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0)
    return errno == EEXIST || errno == ELOOP ? 0 : -1;
  close (fd);
  return 0;
}

/* Attach the detached tree `tree` (clone_host_tree) at target, which exists. */
static int
attach_tree (int tree, const char *target, kp_error **err)
{
  struct open_how how = { .flags = O_PATH | O_CLOEXEC, .resolve = RESOLVE_NO_MAGICLINKS };
  int t = (int) syscall (SYS_openat2, AT_FDCWD, target, &how, sizeof how);
  if (t < 0 && (errno == ENOSYS || errno == E2BIG))
    t = open (target, O_PATH | O_CLOEXEC);
  if (t < 0)
    return kp_error_errno (err, errno, "open the mount point %s", target);
  struct statfs st;
  if (fstatfs (t, &st) == 0 && (st.f_type == PROC_SUPER_MAGIC || st.f_type == SYSFS_MAGIC)
      && !kp_str_has_prefix (target, "/proc/") && strcmp (target, "/sys") != 0)
    {
      close (t);
      return kp_error_set (err, KP_EXIT_RUNTIME, "mount point %s leads into /proc or /sys",
                           target);
    }
  int r = (int) syscall (SYS_move_mount, tree, "", t, "",
                         MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH);
  int e = errno;
  close (t);
  if (r < 0)
    return mount_error (err, e, "a bind", target);
  return 0;
}

/* Make a mount and, where the kernel allows, everything below it read-only. */
static int
make_readonly (const char *target, bool recursive, kp_error **err)
{
#ifdef SYS_mount_setattr
  struct mount_attr attr = { .attr_set = MOUNT_ATTR_RDONLY };
  if (syscall (SYS_mount_setattr, AT_FDCWD, target, recursive ? AT_RECURSIVE : 0, &attr,
               sizeof attr)
      == 0)
    return 0;
  if (errno != ENOSYS)
    {
      kp_error_errno (err, errno, "make %s read-only", target);
      kp_error_set_status (err, KP_EXIT_RUNTIME);
      return -1;
    }
#else
  (void) recursive;
#endif
  /* Older kernels: the top mount only. Keep the flags the kernel locked on it. */
  struct statfs st;
  unsigned long flags = MS_REMOUNT | MS_BIND | MS_RDONLY;
  if (statfs (target, &st) == 0)
    flags |= st.f_flags & (MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | MS_NODIRATIME
                           | MS_RELATIME);
  if (mount (NULL, target, NULL, flags, NULL) < 0)
    return mount_error (err, errno, "a read-only remount", target);
  return 0;
}

/* /proc: a new instance for the new pid namespace, with the paths podman and the OCI
 * runtimes hide masked and the kernel-wide knobs read-only. */
static const char *const proc_masked_files[]
    = { "/proc/kcore",      "/proc/keys",      "/proc/latency_stats", "/proc/timer_list",
        "/proc/timer_stats", "/proc/sched_debug", NULL };
static const char *const proc_masked_dirs[] = { "/proc/acpi", "/proc/scsi", NULL };
static const char *const proc_readonly[]
    = { "/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
        NULL };

/* The directory `name` directly below the new root (created when missing), opened without
 * following a symbolic link out of it: the new root is not our root yet. */
static int
open_root_dir (int root_fd, const char *name, kp_error **err)
{
  if (mkdirat (root_fd, name, 0555) < 0 && errno != EEXIST)
    return kp_error_errno (err, errno, "create /%s", name);
  struct open_how how = { .flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
                          .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS };
  int fd = (int) syscall (SYS_openat2, root_fd, name, &how, sizeof how);
  if (fd < 0 && (errno == ENOSYS || errno == E2BIG))
    fd = openat (root_fd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return kp_error_errno (err, errno, "open /%s of the new root", name);
  return fd;
}

/* /proc and, with a network namespace of our own, a new sysfs are mounted before the old
 * root goes: the kernel lets a user namespace mount them only while a fully visible
 * instance exists in the mount namespace. Returns 1 when sysfs was mounted. */
static int
mount_kernel_filesystems (int root_fd, bool own_netns, kp_error **err)
{
  int proc_fd = open_root_dir (root_fd, "proc", err);
  if (proc_fd < 0)
    return -1;
  char where[FD_PATH_MAX];
  fd_path (where, proc_fd);
  int r = mount ("proc", where, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  int e = errno;
  close (proc_fd);
  if (r < 0)
    {
      mount_error (err, e, "proc", "/proc");
      kp_error_hint (err, "the kernel lets a user namespace mount /proc only when the host's "
                          "/proc is fully visible; a host /proc with masked paths (as inside "
                          "some containers) prevents it");
      return -1;
    }
  if (!own_netns)
    return 0;
  int sys_fd = open_root_dir (root_fd, "sys", err);
  if (sys_fd < 0)
    return -1;
  fd_path (where, sys_fd);
  r = mount ("sysfs", where, "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  close (sys_fd);
  return r == 0 ? 1 : 0;
}

/* null_clones: one detached copy of the host's /dev/null per masked file. */
static int
mask_proc (const int *null_clones, kp_error **err)
{
  for (size_t i = 0; proc_masked_files[i]; i++)
    if (access (proc_masked_files[i], F_OK) == 0
        && (attach_tree (null_clones[i], proc_masked_files[i], err) < 0
            || make_readonly (proc_masked_files[i], false, err) < 0))
      return -1;
  for (size_t i = 0; proc_masked_dirs[i]; i++)
    if (access (proc_masked_dirs[i], F_OK) == 0
        && mount ("tmpfs", proc_masked_dirs[i], "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV
                                                             | MS_NOEXEC,
                  "size=0,mode=0555")
               < 0)
      return mount_error (err, errno, "tmpfs", proc_masked_dirs[i]);
  for (size_t i = 0; proc_readonly[i]; i++)
    {
      if (access (proc_readonly[i], F_OK) < 0)
        continue;
      if (mount (proc_readonly[i], proc_readonly[i], NULL, MS_BIND | MS_REC, NULL) < 0)
        return mount_error (err, errno, "a bind", proc_readonly[i]);
      if (make_readonly (proc_readonly[i], true, err) < 0)
        return -1;
    }
  return 0;
}

/* The device nodes every environment gets, bound from the host (a user namespace cannot
 * create device nodes). */
static const char *const basic_devices[] = { "null", "zero", "full", "random", "urandom", "tty",
                                             NULL };
#define N_BASIC_DEVICES 6

static int
setup_dev (const int *basic_fds, const char *const *devices, const int *device_fds,
           bool tty_group, kp_error **err)
{
  if (make_dirs ("/dev", 0755) < 0)
    {
      kp_error_errno (err, errno, "create /dev");
      kp_error_set_status (err, KP_EXIT_RUNTIME);
      return -1;
    }
  if (mount ("tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=0755,size=65536k") < 0)
    return mount_error (err, errno, "tmpfs", "/dev");
  for (size_t i = 0; basic_devices[i]; i++)
    {
      kp_cleanup_free char *path = xasprintf ("/dev/%s", basic_devices[i]);
      if (make_file (path) < 0)
        return kp_error_errno (err, errno, "create %s", path);
      if (attach_tree (basic_fds[i], path, err) < 0)
        return -1;
    }
  if (mkdir ("/dev/pts", 0755) < 0 || mkdir ("/dev/shm", 01777) < 0
      || mkdir ("/dev/mqueue", 0755) < 0)
    return kp_error_errno (err, errno, "create the directories of /dev");
  const char *pts_options = tty_group ? "newinstance,ptmxmode=0666,mode=0620,gid=5"
                                      : "newinstance,ptmxmode=0666,mode=0620";
  if (mount ("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, pts_options) < 0)
    return mount_error (err, errno, "devpts", "/dev/pts");
  if (mount ("shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777") < 0)
    return mount_error (err, errno, "tmpfs", "/dev/shm");
  /* mqueue needs the new ipc namespace, which we have; an old kernel may still refuse. */
  if (mount ("mqueue", "/dev/mqueue", "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
    rmdir ("/dev/mqueue");
  static const char *const links[][2]
      = { { "pts/ptmx", "/dev/ptmx" },        { "/proc/self/fd", "/dev/fd" },
          { "/proc/self/fd/0", "/dev/stdin" }, { "/proc/self/fd/1", "/dev/stdout" },
          { "/proc/self/fd/2", "/dev/stderr" } };
  for (size_t i = 0; i < sizeof links / sizeof links[0]; i++)
    if (symlink (links[i][0], links[i][1]) < 0)
      return kp_error_errno (err, errno, "create %s", links[i][1]);
  for (size_t i = 0; devices && devices[i]; i++)
    {
      struct stat st;
      if (fstatat (device_fds[i], "", &st, AT_EMPTY_PATH) < 0)
        return kp_error_errno (err, errno, "device %s", devices[i]);
      int r = S_ISDIR (st.st_mode) ? make_dirs (devices[i], 0755) : 0;
      if (r == 0 && !S_ISDIR (st.st_mode))
        {
          kp_cleanup_free char *parent = xstrdup (devices[i]);
          *strrchr (parent, '/') = '\0';
          r = make_dirs (parent, 0755);
          if (r == 0)
            r = make_file (devices[i]);
        }
      if (r < 0)
        return kp_error_errno (err, errno, "create %s", devices[i]);
      if (attach_tree (device_fds[i], devices[i], err) < 0)
        return -1;
    }
  return 0;
}

static int
setup_sys (bool sysfs_mounted, int host_sys_fd, kp_error **err)
{
  if (make_dirs ("/sys", 0555) < 0)
    return kp_error_errno (err, errno, "create /sys");
  /* Without a sysfs of our own (it needs our own network namespace): the host's, bound
   * read-only. */
  if (sysfs_mounted)
    goto mask;
  if (attach_tree (host_sys_fd, "/sys", err) < 0 || make_readonly ("/sys", true, err) < 0)
    return -1;
mask:
  if (access ("/sys/firmware", F_OK) == 0
      && mount ("tmpfs", "/sys/firmware", "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                "size=0,mode=0555")
             < 0)
    return mount_error (err, errno, "tmpfs", "/sys/firmware");
  return 0;
}

/* Open the bind target `path` inside the new root, creating it (a directory, or an empty
 * file when the source is not one) and its parents; never through a magic link, and never
 * into /proc or /sys. */
static int
open_bind_target (const char *path, bool dir, kp_error **err)
{
  kp_cleanup_free char *parent = xstrdup (path);
  char *slash = strrchr (parent, '/');
  if (slash != parent)
    *slash = '\0';
  else
    parent[1] = '\0';
  if (make_dirs (parent, 0755) < 0)
    return kp_error_errno (err, errno, "create %s", parent);
  if (dir)
    {
      if (mkdir (path, 0755) < 0 && errno != EEXIST)
        return kp_error_errno (err, errno, "create %s", path);
    }
  else if (make_file (path) < 0)
    return kp_error_errno (err, errno, "create %s", path);
  struct open_how how = { .flags = O_PATH | O_CLOEXEC,
                          .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS };
  int fd = (int) syscall (SYS_openat2, AT_FDCWD, path, &how, sizeof how);
  if (fd < 0 && (errno == ENOSYS || errno == E2BIG))
    fd = open (path, O_PATH | O_CLOEXEC);
  if (fd < 0)
    return kp_error_errno (err, errno, "open the mount point %s", path);
  struct statfs st;
  if (fstatfs (fd, &st) == 0 && (st.f_type == PROC_SUPER_MAGIC || st.f_type == SYSFS_MAGIC))
    {
      close (fd);
      return kp_error_set (err, KP_EXIT_RUNTIME, "mount point %s leads into /proc or /sys",
                           path);
    }
  return fd;
}

static int
setup_binds (const kp_sandbox_spec *spec, const int *bind_fds, kp_error **err)
{
  for (size_t i = 0; i < spec->n_binds; i++)
    {
      const kp_bind *b = &spec->binds[i];
      struct stat st;
      if (fstatat (bind_fds[i], "", &st, AT_EMPTY_PATH) < 0)
        return kp_error_errno (err, errno, "bind source %s", b->source);
      int target = open_bind_target (b->target, S_ISDIR (st.st_mode), err);
      if (target < 0)
        return kp_error_prefix (err, "bind %s", b->source);
      close (target);
      if (attach_tree (bind_fds[i], b->target, err) < 0)
        return kp_error_prefix (err, "bind %s", b->source);
      if (b->readonly && make_readonly (b->target, true, err) < 0)
        return -1;
    }
  return 0;
}

/* Bind a generated file (held in the scratch tmpfs) over /etc/NAME. */
static int
bind_generated (int fd, const char *target, kp_error **err)
{
  if (make_dirs ("/etc", 0755) < 0)
    return kp_error_errno (err, errno, "create /etc");
  struct open_how how = { .flags = O_PATH | O_CLOEXEC,
                          .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS };
  int t = (int) syscall (SYS_openat2, AT_FDCWD, target, &how, sizeof how);
  if (t < 0 && errno == ENOENT)
    {
      /* Missing, or a dangling symbolic link (resolv.conf → a resolver's runtime file):
       * put a plain file in its place. */
      unlink (target);
      if (make_file (target) < 0)
        return kp_error_errno (err, errno, "create %s", target);
      t = (int) syscall (SYS_openat2, AT_FDCWD, target, &how, sizeof how);
    }
  if (t < 0 && (errno == ENOSYS || errno == E2BIG))
    t = open (target, O_PATH | O_CLOEXEC);
  if (t < 0)
    return kp_error_errno (err, errno, "open %s", target);
  close (t);
  return attach_tree (fd, target, err);
}

static int
write_scratch_file (int dir_fd, const char *name, const char *text, kp_error **err)
{
  int fd = openat (dir_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0)
    return kp_error_errno (err, errno, "create %s", name);
  int r = kp_write_all (fd, text, strlen (text));
  close (fd);
  if (r < 0)
    return kp_error_errno (err, -r, "write %s", name);
  fd = (int) syscall (SYS_open_tree, dir_fd, name, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
  if (fd < 0)
    return kp_error_errno (err, errno, "clone %s", name);
  return fd;
}

/* ---- the whole setup -------------------------------------------------------------------- */

int
kp_rootfs_setup_run (kp_rootfs_setup *setup, kp_error **err)
{
  const kp_sandbox_spec *spec = setup->spec;
  held h = { 0 };
  int ret = -1;
  size_t n_layers = 0;
  while (spec->layers && spec->layers[n_layers])
    n_layers++;
  /* A directory used as the root itself: no overlay, no upper directory. */
  bool direct = spec->rootfs != NULL;
  int direct_fd = -1;
  size_t n_devices = 0;
  while (spec->devices && spec->devices[n_devices])
    n_devices++;
  kp_cleanup_free int *layer_fds = xcalloc (n_layers + 1, sizeof *layer_fds);
  kp_cleanup_free int *bind_fds = xcalloc (spec->n_binds + 1, sizeof *bind_fds);
  kp_cleanup_free int *device_fds = xcalloc (n_devices + 1, sizeof *device_fds);
  int basic_fds[N_BASIC_DEVICES];
  int null_clones[sizeof proc_masked_files / sizeof proc_masked_files[0]];
  int sys_fd = -1, upper_fd = -1, work_fd = -1, scratch_fd = -1, root_fd = -1, new_root_fd = -1;
  int hosts_fd = -1, resolv_fd = -1;
  kp_cleanup_free char *lowerdir = NULL;

  /* 1. Host descriptors. */
  for (size_t i = 0; i < n_layers; i++)
    if ((layer_fds[i] = open_host_path (&h, spec->layers[i], "layer", err)) < 0)
      goto out;
  if (direct && (direct_fd = clone_host_tree (&h, spec->rootfs, "root filesystem", err)) < 0)
    goto out;
  for (size_t i = 0; i < spec->n_binds; i++)
    if ((bind_fds[i] = clone_host_tree (&h, spec->binds[i].source, "bind source", err)) < 0)
      goto out;
  for (size_t i = 0; i < n_devices; i++)
    if ((device_fds[i] = clone_host_tree (&h, spec->devices[i], "device", err)) < 0)
      goto out;
  for (size_t i = 0; i < N_BASIC_DEVICES; i++)
    {
      kp_cleanup_free char *path = xasprintf ("/dev/%s", basic_devices[i]);
      if ((basic_fds[i] = clone_host_tree (&h, path, "device", err)) < 0)
        goto out;
    }
  for (size_t i = 0; proc_masked_files[i]; i++)
    if ((null_clones[i] = clone_host_tree (&h, "/dev/null", "device", err)) < 0)
      goto out;
  if ((sys_fd = clone_host_tree (&h, "/sys", "host", err)) < 0)
    goto out;
  if (spec->upper)
    {
      if ((upper_fd = open_host_path (&h, spec->upper, "upper directory", err)) < 0
          || (work_fd = open_host_path (&h, spec->work, "work directory", err)) < 0)
        goto out;
    }

  /* 2. The scratch tmpfs, over the top layer's path in this namespace only. */
  const char *scratch = direct ? spec->rootfs : spec->layers[0];
  if (mount ("karapace", scratch, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") < 0)
    {
      mount_error (err, errno, "the scratch tmpfs", scratch);
      goto out;
    }
  if ((scratch_fd = hold (&h, open (scratch, O_PATH | O_DIRECTORY | O_CLOEXEC))) < 0)
    {
      kp_error_errno (err, errno, "open %s", scratch);
      goto out;
    }
  if (mkdirat (scratch_fd, "root", 0755) < 0
      || (!spec->upper && !direct && (mkdirat (scratch_fd, "upper", 0755) < 0
                           || mkdirat (scratch_fd, "work", 0755) < 0)))
    {
      kp_error_errno (err, errno, "create the scratch directories");
      goto out;
    }
  if (!spec->upper && !direct)
    {
      /* The overlay's root takes its owner and mode from the upper directory: give it the
       * top layer's, or a rootfs your own user may write in would turn root's. */
      struct stat top;
      /* An owner outside the map cannot be given (EINVAL): root it stays. */
      if (fstat (layer_fds[0], &top) < 0
          || (fchownat (scratch_fd, "upper", top.st_uid, top.st_gid, AT_SYMLINK_NOFOLLOW) < 0
              && errno != EINVAL && errno != EOVERFLOW)
          || fchmodat (scratch_fd, "upper", top.st_mode & 07777, 0) < 0)
        {
          kp_error_errno (err, errno, "give the throw-away layer the owner of %s",
                          spec->layers[0]);
          goto out;
        }
      upper_fd = hold (&h, openat (scratch_fd, "upper", O_PATH | O_CLOEXEC));
      work_fd = hold (&h, openat (scratch_fd, "work", O_PATH | O_CLOEXEC));
    }
  root_fd = hold (&h, openat (scratch_fd, "root", O_PATH | O_CLOEXEC));
  if ((hosts_fd = hold (&h, write_scratch_file (scratch_fd, "hosts", setup->hosts, err))) < 0
      || (resolv_fd
          = hold (&h, write_scratch_file (scratch_fd, "resolv.conf", setup->resolv, err)))
             < 0)
    goto out;
  if ((!direct && (upper_fd < 0 || work_fd < 0)) || root_fd < 0)
    {
      kp_error_errno (err, errno, "open the scratch directories");
      goto out;
    }

  /* 3. The overlay (or the root directory itself), then pivot into it. */
  char root_path[FD_PATH_MAX];
  fd_path (root_path, root_fd);
  int kernel_errno = 0;
  if (direct)
    {
      kp_cleanup_free char *mount_point = xasprintf ("%s/root", scratch);
      if (attach_tree (direct_fd, mount_point, err) < 0)
        goto out;
      snprintf (setup->overlay_used, sizeof setup->overlay_used, "none");
      goto mounted;
    }
  lowerdir = overlay_lowerdir (layer_fds, n_layers);
  bool kernel_ok = spec->overlay != KP_OVERLAY_FUSE
                   && mount_kernel_overlay (lowerdir, upper_fd, work_fd, root_path, &kernel_errno)
                          == 0;
  if (kernel_ok)
    snprintf (setup->overlay_used, sizeof setup->overlay_used, "kernel");
  else
    {
      if (spec->overlay == KP_OVERLAY_FUSE)
        snprintf (setup->fallback_reason, sizeof setup->fallback_reason,
                  "fuse-overlayfs was asked for");
      else
        snprintf (setup->fallback_reason, sizeof setup->fallback_reason,
                  "the kernel refused an overlay mount in the user namespace: %s",
                  strerror (kernel_errno));
      if (spec->overlay == KP_OVERLAY_KERNEL)
        {
          mount_error (err, kernel_errno, "the kernel's overlayfs", "the new root");
          kp_error_hint (err, "run 'karapace doctor'; without KARAPACE_OVERLAY=kernel, "
                              "fuse-overlayfs is tried when installed");
          goto out;
        }
      /* By path: the daemon cannot see our descriptor of the mount point. */
      kp_cleanup_free char *mount_point = xasprintf ("%s/root", scratch);
      if (mount_fuse_overlay (lowerdir, upper_fd, work_fd, layer_fds, n_layers, scratch,
                              mount_point, err)
          < 0)
        {
          kp_error_prefix (err, "%s; and the fallback failed", setup->fallback_reason);
          goto out;
        }
      snprintf (setup->overlay_used, sizeof setup->overlay_used, "fuse");
    }
mounted:
  /* The overlay mounted over the descriptor's directory: enter the mount on top of it. */
  /* By name, so that the lookup crosses into the overlay mounted there (a descriptor's
   * magic link would land on the directory under it). */
  new_root_fd = hold (&h, openat (scratch_fd, "root", O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (new_root_fd < 0)
    {
      kp_error_errno (err, errno, "open the new root");
      goto out;
    }
  int sysfs_mounted = mount_kernel_filesystems (new_root_fd, setup->own_netns, err);
  if (sysfs_mounted < 0)
    goto out;
  if (chdir (scratch) < 0 || chdir ("root") < 0)
    {
      kp_error_errno (err, errno, "enter the new root");
      goto out;
    }
  if (syscall (SYS_pivot_root, ".", ".") < 0)
    {
      kp_error_errno (err, errno, "pivot_root into the new root");
      goto out;
    }
  if (umount2 (".", MNT_DETACH) < 0 || chdir ("/") < 0)
    {
      kp_error_errno (err, errno, "detach the old root");
      goto out;
    }

  /* 4. Inside. */
  if (mask_proc (null_clones, err) < 0)
    goto out;
  if (setup_dev (basic_fds, spec->devices, device_fds, setup->map->full, err) < 0
      || setup_sys (sysfs_mounted == 1, sys_fd, err) < 0 || setup_binds (spec, bind_fds, err) < 0
      || bind_generated (hosts_fd, "/etc/hosts", err) < 0
      || bind_generated (resolv_fd, "/etc/resolv.conf", err) < 0)
    goto out;
  const char *hostname = spec->hostname ? spec->hostname : "karapace";
  if (sethostname (hostname, strlen (hostname)) < 0)
    {
      kp_error_errno (err, errno, "set the host name");
      goto out;
    }
  if (setup->own_netns && kp_net_loopback_up (err) < 0)
    goto out;
  if (spec->readonly_root && mount (NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) < 0)
    {
      mount_error (err, errno, "the root read-only", "/");
      goto out;
    }
  ret = 0;
out:
  /* 5. Nothing of the host stays open. */
  held_close (&h);
  if (ret < 0)
    kp_error_set_status (err, KP_EXIT_RUNTIME);
  return ret;
}
