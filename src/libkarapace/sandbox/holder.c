/* holder.c — starting, running and releasing a holder (runtime.h, docs/runtime.md).
 *
 * The caller clones the holder straight into its new namespaces (the user namespace is
 * created first by the kernel and owns the others), then, while the holder waits on the
 * setup socket: writes its id maps, moves it into the run's cgroup, starts user-mode
 * networking for its network namespace, and says GO with the text of resolv.conf. The
 * holder becomes root of its namespace, leaves the caller's terminal session, takes a
 * cgroup namespace of its own, makes every mount private, assembles the root filesystem
 * (rootfs.c) and answers READY, or ERROR with the reason.
 *
 * From then on the holder is pid 1: it reaps every orphan, and it ends when the last
 * connection to it closes (each holder of a kp_holder handle keeps one) or on SIGTERM —
 * then it asks every process inside to stop, waits a moment, and exits; the kernel kills
 * whatever is left in its pid namespace, and the mount namespace dies with the last
 * process in it. */
#include "runtime-private.h"

#include "base/fs.h"
#include "base/util.h"
#include "sync.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <grp.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <dirent.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* How long a stopping holder waits for the processes inside after SIGTERM. */
#define KP_HOLDER_STOP_TIMEOUT_MS 10000

int
kp_overlay_driver_from_name (const char *name, kp_overlay_driver *driver)
{
  static const char *const names[] = { "auto", "kernel", "fuse" };
  for (size_t i = 0; i < 3; i++)
    if (strcmp (name, names[i]) == 0)
      {
        *driver = (kp_overlay_driver) i;
        return 0;
      }
  return -1;
}

const char *
kp_overlay_driver_name (kp_overlay_driver driver)
{
  switch (driver)
    {
    case KP_OVERLAY_KERNEL:
      return "kernel";
    case KP_OVERLAY_FUSE:
      return "fuse";
    case KP_OVERLAY_AUTO:
    default:
      return "auto";
    }
}

/* ---- the holder's side ------------------------------------------------------------------ */

static void
holder_fail (int sock, kp_error *e)
{
  if (e == NULL)
    kp_error_set (&e, KP_EXIT_RUNTIME, "the sandbox setup failed without saying why");
  kp_sync_send (sock, KP_SYNC_ERROR, 0, e);
  _exit (1);
}

static void
on_signal (int sig)
{
  (void) sig; /* only there so that pid 1 receives the signal (signalfd reads it) */
}

static void
reap_all (void)
{
  while (waitpid (-1, NULL, WNOHANG) > 0)
    ;
}

static long long
now_ms (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* SIGTERM to everything inside, a bounded wait, then leave: the kernel SIGKILLs the rest
 * when pid 1 exits. */
/* The persistent holder's listening socket, removed when the holder ends. */
static int holder_state_dir = -1;

KP_NORETURN static void
holder_exit (int status)
{
  if (holder_state_dir >= 0)
    unlinkat (holder_state_dir, KP_HOLDER_SOCKET, 0);
  _exit (status);
}

KP_NORETURN static void
holder_stop (int sigfd)
{
  kill (-1, SIGTERM);
  long long deadline = now_ms () + KP_HOLDER_STOP_TIMEOUT_MS;
  for (;;)
    {
      reap_all ();
      if (kill (-1, 0) < 0 && errno == ESRCH)
        break;
      long long left = deadline - now_ms ();
      if (left <= 0)
        break;
      struct pollfd p = { sigfd, POLLIN, 0 };
      if (poll (&p, 1, (int) (left < 100 ? left : 100)) > 0)
        {
          struct signalfd_siginfo si;
          while (read (sigfd, &si, sizeof si) == sizeof si)
            ;
        }
    }
  holder_exit (0);
}

/* Tell a new connection what a session needs to know: the flags (KP_HOLDER_HELLO_*) and
 * where the caller's ids sit inside. */
static void
send_hello (int conn, int flags, const kp_idmap *map, const char *overlay)
{
  char text[128];
  snprintf (text, sizeof text, "%u %u %.15s", map->self_uid, map->self_gid, overlay);
  kp_sync_send_text (conn, text);
  kp_sync_send (conn, KP_SYNC_READY, flags, NULL);
}

/* The holder's life after setup: pid 1 of the environment. Each connection is a hold: the
 * caller's setup socket, and for persistent holders every accepted connection. A SIGNAL
 * frame with SIGTERM, or SIGTERM itself, stops the holder; it also ends when the last hold
 * is gone. */
#define KP_HOLDER_MAX_HOLDS 1024

KP_NORETURN static void
holder_loop (int sock, int listen_fd, int hello_flags, const kp_idmap *map,
             const char *overlay)
{
  sigset_t set;
  sigemptyset (&set);
  sigaddset (&set, SIGCHLD);
  sigaddset (&set, SIGTERM);
  struct sigaction sa = { .sa_handler = on_signal };
  sigemptyset (&sa.sa_mask);
  sigaction (SIGCHLD, &sa, NULL);
  sigaction (SIGTERM, &sa, NULL);
  sigprocmask (SIG_BLOCK, &set, NULL);
  int sigfd = signalfd (-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sigfd < 0)
    holder_exit (1);
  reap_all ();
  static struct pollfd p[2 + KP_HOLDER_MAX_HOLDS];
  size_t n_holds = 1;
  p[0] = (struct pollfd) { sigfd, POLLIN, 0 };
  p[1] = (struct pollfd) { listen_fd, listen_fd >= 0 ? POLLIN : 0, 0 };
  p[2] = (struct pollfd) { sock, POLLIN, 0 };
  for (;;)
    {
      if (poll (p, 2 + n_holds, -1) < 0)
        {
          if (errno == EINTR)
            continue;
          holder_exit (1);
        }
      if (p[0].revents & POLLIN)
        {
          struct signalfd_siginfo si;
          bool stop = false;
          while (read (sigfd, &si, sizeof si) == sizeof si)
            if (si.ssi_signo == SIGTERM)
              stop = true;
          reap_all ();
          if (stop)
            holder_stop (sigfd);
        }
      if (p[1].revents & POLLIN)
        {
          int conn = accept4 (listen_fd, NULL, NULL, SOCK_CLOEXEC);
          if (conn >= 0 && n_holds < KP_HOLDER_MAX_HOLDS)
            {
              send_hello (conn, hello_flags, map, overlay);
              p[2 + n_holds++] = (struct pollfd) { conn, POLLIN, 0 };
            }
          else if (conn >= 0)
            close (conn);
        }
      for (size_t i = 0; i < n_holds; i++)
        {
          struct pollfd *c = &p[2 + i];
          if (!(c->revents & (POLLIN | POLLHUP | POLLERR)))
            continue;
          kp_sync_kind kind;
          int value;
          kp_error *carried = NULL, *e = NULL;
          int r = kp_sync_recv (c->fd, &kind, &value, &carried, &e);
          kp_error_free (carried);
          kp_error_free (e);
          if (r > 0 && kind == KP_SYNC_SIGNAL && value == SIGTERM)
            holder_stop (sigfd);
          if (r > 0)
            continue;
          /* A hold is gone. */
          close (c->fd);
          p[2 + i] = p[2 + --n_holds];
          i--;
          if (n_holds == 0)
            holder_exit (0);
        }
    }
}

typedef struct holder_args
{
  kp_rootfs_setup *setup;
  int sock;
  int other_sock;
  int listen_fd;  /* persistent holders: their listening socket, else -1 */
  int state_dir;  /* and their state directory, else -1 */
  bool zero_mapped;
} holder_args;

KP_NORETURN static void
holder_main (holder_args *a)
{
  close (a->other_sock);
  int sock = a->sock;
  kp_error *e = NULL;
  kp_sync_kind kind;
  int value;
  kp_error *carried = NULL;
  /* GO, then resolv.conf. End-of-file or anything else: the caller gave up. */
  if (kp_sync_recv (sock, &kind, &value, &carried, &e) <= 0 || kind != KP_SYNC_GO)
    _exit (1);
  kp_error_free (carried);
  carried = NULL;
  if (kp_sync_recv (sock, &kind, &value, &carried, &e) <= 0 || kind != KP_SYNC_TEXT
      || carried == NULL)
    _exit (1);
  a->setup->resolv = carried->message;
  /* The caller's standard descriptors are not ours to keep: a holder that outlives its
   * first session would hold that session's output open (a pipe to `tee` would never see
   * its end while another session runs). Sessions get their own from their joiner; what
   * the holder has to say goes over its socket. */
  int null = open ("/dev/null", O_RDWR | O_CLOEXEC);
  if (null >= 0)
    {
      for (int fd = 0; fd <= 2; fd++)
        if (fd != null && fd != sock && fd != a->listen_fd && fd != a->state_dir)
          dup2 (null, fd);
      if (null > 2)
        close (null);
    }

  /* Root of the namespace where 0 is mapped; with a single-id map of the caller's own id
   * we keep it: the capabilities of the namespace's creator are ours either way. */
  if (a->zero_mapped && (setresgid (0, 0, 0) < 0 || setresuid (0, 0, 0) < 0))
    {
      kp_error_errno (&e, errno, "become root in the user namespace");
      holder_fail (sock, e);
    }
  if (a->setup->map->full)
    setgroups (0, NULL);
  /* Until setup is over the holder dies with the caller even when it cannot read its
   * socket (a mount blocked in a file system server); a persistent holder outlives the
   * caller after. Set after the id change, which clears it. (The caller just said GO, and
   * getppid() is 0 in our own pid namespace, so there is nothing to check.) */
  prctl (PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  /* The id change made us undumpable, which would keep the caller's later sessions from
   * joining us (setns on our pidfd needs ptrace-read access). Nothing inside may trace us
   * all the same: no session has CAP_SYS_PTRACE or our ids. */
  prctl (PR_SET_DUMPABLE, 1, 0, 0, 0);
  /* Out of the caller's terminal session: ^C and hang-ups are for the command, not for
   * pid 1. */
  setsid ();
  /* The cgroup namespace is taken once the caller has moved us into the run's cgroup, so
   * that cgroup is the root inside. Kernels without cgroup namespaces simply lack it. */
  if (unshare (CLONE_NEWCGROUP) < 0 && errno != EINVAL)
    {
      kp_error_errno (&e, errno, "unshare the cgroup namespace");
      holder_fail (sock, e);
    }
  if (mount (NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
    {
      kp_error_errno (&e, errno, "make the mounts private");
      holder_fail (sock, e);
    }
  if (kp_rootfs_setup_run (a->setup, &e) < 0)
    holder_fail (sock, e);
  prctl (PR_SET_NAME, "karapace-holder", 0, 0, 0);
  /* Listen before saying READY: once the caller returns, a second start on the same
   * state directory must find this holder answering, not a bound socket that refuses
   * connections (which it would take for a stale one and replace). */
  holder_state_dir = a->state_dir;
  if (a->listen_fd >= 0 && listen (a->listen_fd, 64) < 0)
    holder_exit (1);
  if (kp_sync_send_text (sock, a->setup->overlay_used) < 0
      || kp_sync_send_text (sock, a->setup->fallback_reason) < 0
      || kp_sync_send (sock, KP_SYNC_READY, 0, NULL) < 0)
    _exit (1);
  if (a->listen_fd >= 0)
    prctl (PR_SET_PDEATHSIG, 0, 0, 0, 0);
  int flags = (a->setup->own_netns ? KP_HOLDER_HELLO_NETNS : 0)
              | (a->setup->map->full ? KP_HOLDER_HELLO_FULL_MAP : 0);
  holder_loop (sock, a->listen_fd, flags, a->setup->map, a->setup->overlay_used);
}

/* ---- the caller's side ------------------------------------------------------------------ */

static void
holder_free (kp_holder *h)
{
  if (h == NULL)
    return;
  if (h->pidfd >= 0)
    close (h->pidfd);
  if (h->sock >= 0)
    close (h->sock);
  kp_cgroup_destroyp (&h->cg);
  kp_usernet_stop (h->net);
  kp_seccomp_program_clear (&h->seccomp);
  free (h->state_dir);
  free (h->overlay);
  free (h->fallback_reason);
  kp_strv_free (h->warnings);
  free (h);
}

static void
add_warning (kp_holder *h, char *text)
{
  size_t n = 0;
  while (h->warnings && h->warnings[n])
    n++;
  h->warnings = xreallocarray (h->warnings, n + 2, sizeof *h->warnings);
  h->warnings[n] = text;
  h->warnings[n + 1] = NULL;
}

/* The id map of the holder. Real root maps every id to itself. */
static int
choose_map (kp_holder *h, const kp_sandbox_spec *spec, bool *root_caller, kp_error **err)
{
  uid_t uid = getuid ();
  gid_t gid = getgid ();
  *root_caller = geteuid () == 0;
  if (*root_caller)
    {
      memset (&h->map, 0, sizeof h->map);
      h->map.uid[0] = (kp_idmap_range) { 0, 0, UINT32_MAX };
      h->map.gid[0] = (kp_idmap_range) { 0, 0, UINT32_MAX };
      h->map.n_uid = h->map.n_gid = 1;
      h->map.full = true;
      return 0;
    }
  if (!spec->single_id)
    {
      if (kp_idmap_for_caller (&h->map, err) < 0)
        return -1;
      if (h->map.full)
        return 0;
      add_warning (h, xstrdup ("you have no subordinate ids in /etc/subuid and /etc/subgid: "
                               "only your own id is mapped, so files of other owners show as "
                               "nobody and changing owners fails; ask for ranges with "
                               "'usermod --add-subuids 100000-165535 --add-subgids "
                               "100000-165535 USER'"));
    }
  uint32_t inside_uid = spec->single_id_as_root ? 0 : (uint32_t) uid;
  uint32_t inside_gid = spec->single_id_as_root ? 0 : (uint32_t) gid;
  kp_idmap_single (&h->map, uid, gid, inside_uid, inside_gid);
  return 0;
}

static int
write_root_maps (pid_t pid, kp_error **err)
{
  static const char *const files[] = { "uid_map", "gid_map" };
  for (size_t i = 0; i < 2; i++)
    {
      kp_cleanup_free char *path = xasprintf ("/proc/%d/%s", (int) pid, files[i]);
      kp_cleanup_close int fd = open (path, O_WRONLY | O_CLOEXEC);
      const char *line = "0 0 4294967295\n";
      if (fd < 0 || kp_write_all (fd, line, strlen (line)) < 0)
        return kp_error_errno (err, errno, "write %s", path);
    }
  return 0;
}

/* Does a holder listen on this socket? */
static bool
socket_answers (const struct sockaddr_un *addr)
{
  kp_cleanup_close int probe = socket (AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  return probe >= 0 && connect (probe, (const struct sockaddr *) addr, sizeof *addr) == 0;
}

/* Which process a state directory's holder is: its pid as the host sees it and the start
 * time /proc gives it (field 22 of /proc/PID/stat), so that a reused pid is not taken for
 * it. */
#define KP_HOLDER_PIDFILE "holder.pid"
/* How long a new holder waits for the previous one of its state directory to end. */
#define KP_HOLDER_PREVIOUS_WAIT_MS 10000

static unsigned long long
proc_start_time (pid_t pid)
{
  char path[64];
  snprintf (path, sizeof path, "/proc/%d/stat", (int) pid);
  kp_cleanup_free char *stat = kp_file_read (path, 4096, NULL, NULL);
  const char *p = stat ? strrchr (stat, ')') : NULL;
  if (p == NULL)
    return 0;
  /* After "pid (comm)": state is field 3, starttime field 22. */
  for (int field = 2; field < 22 && p; field++)
    p = strchr (p + 1, ' ');
  return p ? strtoull (p + 1, NULL, 10) : 0;
}

static void
record_holder (const char *state_dir, pid_t pid)
{
  kp_cleanup_free char *path = xasprintf ("%s/" KP_HOLDER_PIDFILE, state_dir);
  kp_cleanup_free char *text = xasprintf ("%d %llu\n", (int) pid, proc_start_time (pid));
  kp_cleanup_error kp_error *ignored = NULL;
  kp_file_write_volatile (path, text, strlen (text), 0600, &ignored);
}

/* The previous holder of this state directory may still be ending when a new one starts
 * (its last session just closed; it no longer answers): its overlay is mounted until it
 * has exited, and two overlays must never share an upper directory. Wait for it to be
 * gone (its pidfd becomes readable once it has exited and its mounts are released). */
static int
wait_previous_holder (const char *state_dir, kp_error **err)
{
  kp_cleanup_free char *path = xasprintf ("%s/" KP_HOLDER_PIDFILE, state_dir);
  kp_cleanup_free char *text = kp_file_read (path, 256, NULL, NULL);
  int pid = 0;
  unsigned long long started = 0;
  if (text == NULL || sscanf (text, "%d %llu", &pid, &started) != 2 || pid <= 0
      || started == 0)
    return 0;
  kp_cleanup_close int pidfd = (int) syscall (SYS_pidfd_open, (pid_t) pid, 0);
  if (pidfd < 0 || proc_start_time (pid) != started)
    return 0; /* gone, or the pid is another process's now */
  /* Still answering: then it is not ending, and open_state() says that it runs. */
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  if ((size_t) snprintf (addr.sun_path, sizeof addr.sun_path, "%s/%s", state_dir,
                         KP_HOLDER_SOCKET)
          < sizeof addr.sun_path
      && socket_answers (&addr))
    return 0;
  struct pollfd p = { pidfd, POLLIN, 0 };
  int r;
  while ((r = poll (&p, 1, KP_HOLDER_PREVIOUS_WAIT_MS)) < 0 && errno == EINTR)
    ;
  if (r > 0)
    return 0;
  kp_error_set (err, KP_EXIT_RUNTIME,
                "the previous holder of %s (pid %d) has not ended after %d s, and it no longer "
                "answers on its socket",
                state_dir, pid, KP_HOLDER_PREVIOUS_WAIT_MS / 1000);
  kp_error_hint (err, "end it with 'kill %d', then try again", pid);
  return -1;
}

/* A persistent holder's state: the directory (created 0700 when missing, and refused when
 * someone else owns it) and the listening socket in it, made by the caller so that it is
 * the caller's. An existing socket nobody answers on is stale and replaced; one that
 * answers means the holder runs already. */
static int
open_state (const char *dir, int *listen_fd, int *dir_fd, kp_error **err)
{
  if (mkdir (dir, 0700) < 0 && errno != EEXIST)
    return kp_error_errno (err, errno, "create the state directory %s", dir);
  kp_cleanup_close int dfd = open (dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  struct stat st;
  if (dfd < 0 || fstat (dfd, &st) < 0)
    return kp_error_errno (err, errno, "open the state directory %s", dir);
  if (st.st_uid != geteuid () || (st.st_mode & 0077) != 0)
    {
      kp_error_set (err, KP_EXIT_RUNTIME,
                    "the state directory %s is not private to you (owner %u, mode %04o)", dir,
                    (unsigned) st.st_uid, (unsigned) (st.st_mode & 07777));
      kp_error_hint (err, "remove it, or fix it with: chmod 0700 %s", dir);
      return -1;
    }
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  if ((size_t) snprintf (addr.sun_path, sizeof addr.sun_path, "%s/%s", dir, KP_HOLDER_SOCKET)
      >= sizeof addr.sun_path)
    return kp_error_set (err, KP_EXIT_RUNTIME, "the state directory path %s is too long", dir);
  kp_cleanup_close int fd = socket (AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return kp_error_errno (err, errno, "create the holder's socket");
  int r = bind (fd, (struct sockaddr *) &addr, sizeof addr);
  if (r < 0 && errno == EADDRINUSE)
    {
      if (socket_answers (&addr))
        {
          kp_error_set (err, KP_EXIT_RUNTIME, "a holder already runs for %s", dir);
          return -1;
        }
      unlinkat (dfd, KP_HOLDER_SOCKET, 0);
      r = bind (fd, (struct sockaddr *) &addr, sizeof addr);
    }
  if (r < 0)
    return kp_error_errno (err, errno, "bind %s", addr.sun_path);
  /* The holder calls listen(2): the kernel records the listener's credentials then, and
   * SO_PEERCRED must name the holder, not us. */
  *listen_fd = kp_steal_fd (&fd);
  *dir_fd = kp_steal_fd (&dfd);
  return 0;
}

/* Remove the empty cgroups of runs whose front end was killed before it could (named
 * karapace-NAME-PID, the PID no longer running). Best effort: a cgroup still in use
 * cannot be removed, and rmdir says so. */
static void
sweep_stale_cgroups (const kp_cgroup *cg)
{
  for (char *const *d = kp_cgroup_get_dirs (cg); d && *d; d++)
    {
      kp_cleanup_free char *parent = xstrdup (*d);
      char *slash = strrchr (parent, '/');
      if (slash == NULL || slash == parent)
        continue;
      *slash = '\0';
      kp_cleanup_dir DIR *dir = opendir (parent);
      if (dir == NULL)
        continue;
      struct dirent *de;
      while ((de = readdir (dir)) != NULL)
        {
          if (!kp_cgroup_is_run_name (de->d_name))
            continue;
          long pid = strtol (strrchr (de->d_name, '-') + 1, NULL, 10);
          if (pid <= 0 || pid == getpid () || kill ((pid_t) pid, 0) == 0 || errno != ESRCH)
            continue;
          unlinkat (dirfd (dir), de->d_name, AT_REMOVEDIR);
        }
    }
}

static bool
limits_asked (const kp_cgroup_limits *l)
{
  return l->cpu_shares || l->memory_limit_mb || l->pids_max;
}

char *
kp_holder_seccomp_path (const char *state_dir, kp_seccomp_profile profile)
{
  return xasprintf ("%s/seccomp-%s.bpf", state_dir, kp_seccomp_profile_name (profile));
}

/* The filter an earlier holder of this state directory kept, when this same build made it:
 * a cold start then loads it instead of compiling. */
static bool
reuse_seccomp (const char *state_dir, kp_seccomp_profile profile, const char *maker,
               kp_seccomp_program *out)
{
  if (profile == KP_SECCOMP_NONE)
    return false;
  kp_cleanup_free char *path = kp_holder_seccomp_path (state_dir, profile);
  kp_cleanup_error kp_error *ignored = NULL;
  return kp_seccomp_program_read (path, profile, maker, out, &ignored) == 0;
}

/* A new holder's filter replaces what an earlier one of the same state directory kept;
 * any other profile's file goes, so that no joiner loads a filter this holder did not
 * make. Failing to keep it only costs joiners a compile. */
static void
keep_seccomp (const char *state_dir, const kp_seccomp_program *program, const char *maker,
              bool reused)
{
  for (kp_seccomp_profile p = KP_SECCOMP_DEFAULT; p <= KP_SECCOMP_NESTING; p++)
    {
      kp_cleanup_free char *path = kp_holder_seccomp_path (state_dir, p);
      if (p == program->profile)
        {
          kp_cleanup_error kp_error *ignored = NULL;
          if (reused || kp_seccomp_program_save (program, path, maker, &ignored) == 0)
            continue;
        }
      unlink (path);
    }
}

kp_holder *
kp_holder_start (const kp_sandbox_spec *spec, kp_error **err)
{
  if ((spec->layers == NULL || spec->layers[0] == NULL) == (spec->rootfs == NULL))
    {
      kp_error_set (err, KP_EXIT_USAGE, "no root filesystem to run");
      return NULL;
    }
  kp_cleanup_free char *hosts = NULL;
  kp_cleanup_free char *host_resolv = NULL;
  kp_cleanup_free char *resolv = NULL;
  kp_cleanup_error kp_error *host_read_err = NULL;
  kp_cleanup_free char *maker = NULL;
  bool reused = false;
  const unsigned seccomp_flags = spec->discard_syncs ? KP_SECCOMP_DISCARD_SYNCS : 0;
  kp_holder *h = xcalloc (1, sizeof *h);
  h->pid = -1;
  h->pidfd = -1;
  h->sock = -1;
  h->network = spec->network;
  bool root_caller;
  if (choose_map (h, spec, &root_caller, err) < 0)
    goto fail;

  h->persistent = spec->state_dir != NULL;
  if (limits_asked (&spec->limits))
    {
      char *cg_name = xasprintf ("karapace-%s-%d", spec->name ? spec->name : "run",
                                 (int) getpid ());
      h->cg = kp_cgroup_create (&spec->limits, cg_name, NULL, err);
      free (cg_name);
      if (h->cg == NULL)
        goto fail;
      sweep_stale_cgroups (h->cg);
    }

  const char *hostname = spec->hostname ? spec->hostname : "karapace";
  hosts = kp_net_hosts (hostname);
  kp_rootfs_setup setup = { .spec = spec, .map = &h->map, .hosts = hosts,
                            .own_netns = spec->network != KP_NET_HOST };
  int fds[2];
  if (kp_sync_pair (fds, err) < 0)
    goto fail;
  h->sock = fds[0];
  holder_args args = { &setup, fds[1], fds[0], -1, -1, false };
  if (spec->state_dir
      && (wait_previous_holder (spec->state_dir, err) < 0
          || open_state (spec->state_dir, &args.listen_fd, &args.state_dir, err) < 0))
    goto fail;
  for (size_t i = 0; i < h->map.n_uid; i++)
    if (h->map.uid[i].inside == 0)
      args.zero_mapped = true;

  int flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC
              | (setup.own_netns ? CLONE_NEWNET : 0);
  fflush (NULL);
  pid_t pid = (pid_t) syscall (SYS_clone, (unsigned long) (flags | SIGCHLD), NULL, NULL, NULL, 0);
  if (pid == 0)
    holder_main (&args);
  int clone_errno = errno;
  close (fds[1]);
  if (args.listen_fd >= 0)
    close (args.listen_fd);
  if (args.state_dir >= 0)
    close (args.state_dir);
  if (pid < 0)
    {
      kp_error_errno (err, clone_errno, "create the sandbox's namespaces");
      if (clone_errno == EPERM || clone_errno == ENOSPC || clone_errno == EACCES)
        kp_error_hint (err, "unprivileged user namespaces are disabled here: see 'karapace "
                            "doctor'");
      goto fail;
    }
  h->pid = pid;
  h->pidfd = (int) syscall (SYS_pidfd_open, pid, 0);
  if (spec->state_dir)
    {
      record_holder (spec->state_dir, pid);
      maker = kp_seccomp_maker ();
      reused = seccomp_flags == 0
               && reuse_seccomp (spec->state_dir, spec->seccomp, maker, &h->seccomp);
    }

  /* While it waits: ids (the helpers run while we compile the seccomp filter), cgroup,
   * network. */
  if (root_caller)
    {
      if (write_root_maps (pid, err) < 0)
        goto fail;
    }
  else
    {
      kp_idmap_pending pending;
      if (kp_idmap_apply_start (&h->map, pid, &pending, err) < 0)
        goto fail;
      int compiled = reused ? 0 : kp_seccomp_compile_with (spec->seccomp, seccomp_flags,
                                                           &h->seccomp, err);
      if (kp_idmap_apply_finish (&pending, compiled < 0 ? NULL : err) < 0 || compiled < 0)
        goto fail;
    }
  if (root_caller && !reused
      && kp_seccomp_compile_with (spec->seccomp, seccomp_flags, &h->seccomp, err) < 0)
    goto fail;
  if (spec->state_dir && seccomp_flags == 0)
    keep_seccomp (spec->state_dir, &h->seccomp, maker, reused);
  if (h->cg && kp_cgroup_attach (h->cg, pid, err) < 0)
    goto fail;
  if (spec->network == KP_NET_USER && (h->net = kp_usernet_start (pid, err)) == NULL)
    goto fail;
  host_resolv = kp_file_read ("/etc/resolv.conf", 1 << 20, NULL, &host_read_err);
  resolv = kp_net_resolv_conf (spec->network, h->net, host_resolv);
  if (kp_sync_send_or_fail (h->sock, KP_SYNC_GO, 0, NULL, err) < 0
      || kp_sync_send_or_fail (h->sock, KP_SYNC_TEXT, 0, &(kp_error) { .message = resolv },
                               err) < 0)
    goto fail;

  /* The overlay driver, why the kernel's was not used, then READY; or ERROR. */
  for (int texts = 0;;)
    {
      kp_sync_kind kind;
      int value;
      kp_error *carried = NULL;
      int r = kp_sync_recv (h->sock, &kind, &value, &carried, err);
      if (r < 0)
        goto fail;
      if (r == 0)
        {
          int status = kp_wait_child (h->pid, 0);
          h->pid = -1;
          kp_error_set (err, KP_EXIT_RUNTIME, "the sandbox setup ended without a word%s",
                        status >= 0 && WIFSIGNALED (status) ? " (killed by a signal)" : "");
          goto fail;
        }
      if (kind == KP_SYNC_ERROR)
        {
          if (err && *err == NULL)
            *err = carried;
          else
            kp_error_free (carried);
          goto fail;
        }
      if (kind == KP_SYNC_TEXT && carried)
        {
          if (texts++ == 0)
            h->overlay = xstrdup (carried->message);
          else if (carried->message[0])
            h->fallback_reason = xstrdup (carried->message);
          kp_error_free (carried);
          continue;
        }
      kp_error_free (carried);
      if (kind == KP_SYNC_READY)
        break;
      kp_error_set (err, KP_EXIT_RUNTIME, "sandbox setup: unexpected frame %d", (int) kind);
      goto fail;
    }
  return h;

fail:
  kp_error_set_status (err, KP_EXIT_RUNTIME);
  if (err && *err && !kp_str_has_prefix ((*err)->message, "sandbox"))
    kp_error_prefix (err, "sandbox");
  if (h->pid > 0)
    {
      kill (h->pid, SIGKILL);
      kp_wait_child (h->pid, 0);
    }
  holder_free (h);
  return NULL;
}

pid_t
kp_holder_pid (const kp_holder *h)
{
  return h->pid;
}

const char *
kp_holder_overlay (const kp_holder *h)
{
  return h->overlay ? h->overlay : "kernel";
}

const char *
kp_holder_overlay_fallback_reason (const kp_holder *h)
{
  return h->fallback_reason;
}

char *const *
kp_holder_warnings (const kp_holder *h)
{
  static char *const none[] = { NULL };
  return h->warnings ? h->warnings : none;
}

kp_holder *
kp_holder_connect (const char *state_dir, kp_error **err)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  if ((size_t) snprintf (addr.sun_path, sizeof addr.sun_path, "%s/%s", state_dir,
                         KP_HOLDER_SOCKET)
      >= sizeof addr.sun_path)
    {
      kp_error_set (err, KP_EXIT_RUNTIME, "the state directory path %s is too long", state_dir);
      return NULL;
    }
  kp_holder *h = xcalloc (1, sizeof *h);
  h->pid = -1;
  h->pidfd = -1;
  h->state_dir = xstrdup (state_dir);
  h->sock = socket (AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (h->sock < 0 || connect (h->sock, (struct sockaddr *) &addr, sizeof addr) < 0)
    {
      int e = errno;
      holder_free (h);
      kp_error_errno (err, e, "no holder answers at %s", addr.sun_path);
      kp_error_set_status (err, KP_EXIT_RUNTIME);
      return NULL;
    }
  /* The kernel says who listens, as a pid of our namespace. */
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt (h->sock, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || cred.pid <= 0)
    {
      kp_error_errno (err, errno, "identify the holder at %s", addr.sun_path);
      goto fail;
    }
  h->pid = cred.pid;
  h->pidfd = (int) syscall (SYS_pidfd_open, h->pid, 0);
  for (;;)
    {
      kp_sync_kind kind;
      int value;
      kp_error *carried = NULL;
      int r = kp_sync_recv (h->sock, &kind, &value, &carried, err);
      if (r <= 0)
        {
          if (r == 0)
            kp_error_set (err, KP_EXIT_RUNTIME, "the holder at %s hung up", addr.sun_path);
          kp_error_free (carried);
          goto fail;
        }
      if (kind == KP_SYNC_TEXT && carried)
        {
          unsigned uid = 0, gid = 0;
          char overlay[16] = "";
          if (sscanf (carried->message, "%u %u %15s", &uid, &gid, overlay) >= 2)
            {
              h->map.self_uid = uid;
              h->map.self_gid = gid;
              h->overlay = xstrdup (overlay);
            }
        }
      kp_error_free (carried);
      if (kind == KP_SYNC_READY)
        {
          /* Sessions join the holder's cgroup too, so that its limits hold for them. */
          kp_cleanup_error kp_error *no_cgroup = NULL;
          h->cg = kp_cgroup_of_process (h->pid, NULL, &no_cgroup);
          h->network = (value & KP_HOLDER_HELLO_NETNS) ? KP_NET_NONE : KP_NET_HOST;
          h->map.full = (value & KP_HOLDER_HELLO_FULL_MAP) != 0;
          h->joined = true;
          return h;
        }
    }
fail:
  kp_error_set_status (err, KP_EXIT_RUNTIME);
  holder_free (h);
  return NULL;
}

int
kp_holder_stop (kp_holder *h, kp_error **err)
{
  return kp_sync_send_or_fail (h->sock, KP_SYNC_SIGNAL, SIGTERM, NULL, err);
}

void
kp_holder_release (kp_holder *h)
{
  if (h == NULL)
    return;
  kp_closep (&h->sock);
  /* A holder only we held ends now: wait for it, so that nothing of it is left when we
   * return. A persistent one may live on; it is collected when it ends, or by init. */
  if (h->pid > 0 && !h->joined && !h->persistent)
    kp_wait_child (h->pid, 0);
  else if (h->pid > 0 && !h->joined)
    waitpid (h->pid, NULL, WNOHANG);
  h->pid = -1;
  /* A persistent holder's cgroup lives as long as the holder: removing it would kill
   * every session. It goes once empty (sweep_stale_cgroups, or systemd with its scope). */
  if (h->persistent || h->joined)
    kp_cgroup_forget (kp_steal_pointer (&h->cg));
  holder_free (h);
}

int
kp_sandbox_run (const kp_sandbox_spec *spec, const kp_session_spec *s, int *exit_status,
                kp_error **err)
{
  kp_holder *h = kp_holder_start (spec, err);
  if (h == NULL)
    return -1;
  int r = kp_holder_join (h, s, exit_status, err);
  kp_holder_release (h);
  return r;
}
