/* userns.c — run a function or a command inside the store's user namespace.
 *
 * The handshake (sync.h): fork; the child unshares a user and a mount namespace and says
 * READY; the parent, still in the initial namespace, writes the child's id maps (through
 * the setuid newuidmap/newgidmap for subordinate ranges, itself for the single-id
 * fallback) and says GO; the child becomes root of its namespace, makes every mount
 * private so nothing it mounts reaches the host, and runs the work. A function's result
 * and kp_error come back in a RESULT frame; a command's exec failure in an ERROR frame,
 * its success as end-of-file (the socket is close-on-exec).
 *
 * The child allocates (fn does, and errors are built there): glibc makes malloc safe
 * after fork, and the child never returns into the caller's code — it ends in _exit. */
#include "userns-internal.h"

#include "base/fs.h"
#include "sync.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct userns_setup
{
  bool root; /* real root: a mount namespace only, no id mapping */
  kp_idmap map;
  pid_t parent;
} userns_setup;

static void
userns_setup_clear (userns_setup *s)
{
  memset (s, 0, sizeof *s);
}

/* ---- small helpers ------------------------------------------------------------------ */

/* Describe how a child ended when it should have reported and did not. */
static int
child_end_error (int status, const char *what, kp_error **err)
{
  if (status < 0)
    return kp_error_set (err, KP_EXIT_RUNTIME, "%s: lost track of the child process", what);
  if (WIFSIGNALED (status))
    {
      int sig = WTERMSIG (status);
      const char *abbrev = sigabbrev_np (sig);
      if (abbrev != NULL)
        return kp_error_set (err, KP_EXIT_RUNTIME, "%s: killed by signal SIG%s (%s)%s", what,
                             abbrev, strsignal (sig), WCOREDUMP (status) ? ", core dumped" : "");
      return kp_error_set (err, KP_EXIT_RUNTIME, "%s: killed by signal %d", what, sig);
    }
  return kp_error_set (err, KP_EXIT_RUNTIME, "%s: exited with status %d without a result", what,
                       WIFEXITED (status) ? WEXITSTATUS (status) : -1);
}

/* ---- the child's side --------------------------------------------------------------- */

/* Outcome of child_enter when the parent gave up: exit without a word, it knows why. */
#define KP_CHILD_PARENT_FAILED (-2)

static int
child_enter (const userns_setup *s, int sock, kp_error **err)
{
  int flags = CLONE_NEWNS | (s->root ? 0 : CLONE_NEWUSER);
  if (unshare (flags) < 0)
    {
      int e = errno;
      kp_error_errno (err, e, "unshare the %s namespace", s->root ? "mount" : "user and mount");
      kp_error_set_status (err, KP_EXIT_RUNTIME);
      if (!s->root && (e == EPERM || e == ENOSPC || e == EACCES))
        kp_error_hint (err, "unprivileged user namespaces are disabled here: see "
                            "'karapace doctor' (user.max_user_namespaces, "
                            "kernel.unprivileged_userns_clone, AppArmor's "
                            "apparmor_restrict_unprivileged_userns)");
      return -1;
    }
  if (kp_sync_send_or_fail (sock, KP_SYNC_READY, 0, NULL, err) < 0)
    return -1;
  kp_sync_kind kind;
  int value;
  kp_cleanup_error kp_error *carried = NULL;
  int r = kp_sync_recv (sock, &kind, &value, &carried, err);
  if (r < 0)
    return -1;
  if (r == 0 || kind != KP_SYNC_GO)
    return KP_CHILD_PARENT_FAILED;
  if (!s->root && (setresgid (0, 0, 0) < 0 || setresuid (0, 0, 0) < 0))
    {
      kp_error_errno (err, errno, "become root in the user namespace");
      kp_error_set_status (err, KP_EXIT_RUNTIME);
      return -1;
    }
  /* Die with the parent (set after the id change, which may clear it), unless it is
   * already gone. */
  if (prctl (PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid () != s->parent)
    return KP_CHILD_PARENT_FAILED;
  if (mount (NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
    {
      kp_error_errno (err, errno, "make the mounts private");
      kp_error_set_status (err, KP_EXIT_RUNTIME);
      return -1;
    }
  return 0;
}

/* ---- both sides --------------------------------------------------------------------- */

static int
setup_prepare (userns_setup *s, kp_error **err)
{
  memset (s, 0, sizeof *s);
  s->parent = getpid ();
  s->root = geteuid () == 0;
  if (s->root)
    return 0;
  if (kp_idmap_for_caller (&s->map, err) < 0)
    return kp_error_prefix (err, "user namespace");
  return 0;
}

/* Adopt an error that came from the child, keeping any error already in *err. */
static void
adopt_error (kp_error **err, kp_error *carried)
{
  if (err != NULL && *err == NULL)
    *err = carried;
  else
    kp_error_free (carried);
}

/* The parent's half of the handshake: wait for READY, map ids, say GO. Returns 0 when the
 * child may go on, 1 when it ended before saying READY (the caller reaps it to say how),
 * -1 with err filled when the setup failed (the child is told to stop). */
static int
parent_handshake (const userns_setup *s, pid_t pid, int sock, kp_error **err)
{
  kp_sync_kind kind;
  int value;
  kp_error *carried = NULL;
  int r = kp_sync_recv (sock, &kind, &value, &carried, err);
  if (r <= 0)
    return r == 0 ? 1 : -1;
  if (kind == KP_SYNC_ERROR)
    {
      if (carried == NULL)
        return kp_error_set (err, KP_EXIT_RUNTIME, "user namespace setup failed");
      adopt_error (err, carried);
      return -1;
    }
  kp_error_free (carried);
  if (kind != KP_SYNC_READY)
    return kp_error_set (err, KP_EXIT_RUNTIME, "user namespace setup: unexpected frame");
  if (!s->root && kp_idmap_apply (&s->map, pid, err) < 0)
    {
      kp_sync_send (sock, KP_SYNC_ERROR, 0, NULL);
      return -1;
    }
  return kp_sync_send_or_fail (sock, KP_SYNC_GO, 0, NULL, err);
}

/* The parent has given up on a child still running: stop it and collect it. */
static void
kill_and_reap (pid_t pid)
{
  kill (pid, SIGKILL);
  kp_wait_child (pid, 0);
}

/* What the child does once it is set up; it never returns. */
typedef void (*child_main_fn) (int sock, void *arg);

/* Fork a child that enters the namespace and then runs child_main, and do the parent's
 * half of the handshake. Returns the child's pid with *sock_out the parent's socket end,
 * or -1 with err filled (status KP_EXIT_RUNTIME) and no child left behind. */
static pid_t
start_child (child_main_fn child_main, void *arg, int *sock_out, kp_error **err)
{
  userns_setup s;
  if (setup_prepare (&s, err) < 0)
    {
      userns_setup_clear (&s);
      kp_error_set_status (err, KP_EXIT_RUNTIME);
      return -1;
    }
  int fds[2];
  if (kp_sync_pair (fds, err) < 0)
    {
      userns_setup_clear (&s);
      kp_error_set_status (err, KP_EXIT_RUNTIME);
      return -1;
    }
  kp_cleanup_close int parent_sock = fds[0];
  kp_cleanup_close int child_sock = fds[1];
  fflush (NULL); /* or the child's output would repeat what the caller had buffered */
  pid_t pid = fork ();
  if (pid < 0)
    {
      int e = errno;
      userns_setup_clear (&s);
      kp_error_errno (err, e, "fork");
      kp_error_set_status (err, KP_EXIT_RUNTIME);
      return -1;
    }
  if (pid == 0)
    {
      kp_closep (&parent_sock);
      kp_error *e = NULL;
      int r = child_enter (&s, child_sock, &e);
      if (r == KP_CHILD_PARENT_FAILED)
        _exit (1);
      if (r < 0)
        {
          kp_sync_send (child_sock, KP_SYNC_ERROR, 0, e);
          _exit (1);
        }
      child_main (child_sock, arg);
      _exit (1); /* not reached */
    }
  kp_closep (&child_sock);
  int r = parent_handshake (&s, pid, parent_sock, err);
  userns_setup_clear (&s);
  if (r > 0)
    child_end_error (kp_wait_child (pid, 0), "user namespace setup", err);
  else if (r < 0)
    kill_and_reap (pid);
  if (r != 0)
    {
      kp_error_set_status (err, KP_EXIT_RUNTIME);
      return -1;
    }
  *sock_out = kp_steal_fd (&parent_sock);
  return pid;
}

/* ---- kp_userns_run ------------------------------------------------------------------ */

typedef struct run_call
{
  kp_userns_fn fn;
  void *data;
} run_call;

KP_NORETURN static void
run_child_main (int sock, void *arg)
{
  run_call *call = arg;
  kp_error *e = NULL;
  int ret = call->fn (call->data, &e);
  if (ret < 0 && e == NULL)
    kp_error_set (&e, KP_EXIT_FAILURE, "failed without saying why");
  fflush (NULL);
  kp_sync_send (sock, KP_SYNC_RESULT, ret < 0 ? ret : 0, ret < 0 ? e : NULL);
  _exit (0);
}

int
kp_userns_run (kp_userns_fn fn, void *data, kp_error **err)
{
  run_call call = { fn, data };
  kp_cleanup_close int sock = -1;
  pid_t pid = start_child (run_child_main, &call, &sock, err);
  if (pid < 0)
    return -1;
  kp_sync_kind kind = 0;
  int value = 0;
  kp_error *carried = NULL;
  int r = kp_sync_recv (sock, &kind, &value, &carried, err);
  if (r < 0)
    {
      kill_and_reap (pid);
      return -1;
    }
  int status = kp_wait_child (pid, 0);
  if (r == 0)
    return child_end_error (status, "user namespace child", err);
  if (kind == KP_SYNC_RESULT && value >= 0)
    {
      kp_error_free (carried);
      return 0;
    }
  if (carried == NULL)
    return kp_error_set (err, KP_EXIT_RUNTIME, "user namespace child failed without saying why");
  adopt_error (err, carried);
  return -1;
}

/* ---- kp_userns_exec ----------------------------------------------------------------- */

KP_NORETURN static void
exec_child_main (int sock, void *arg)
{
  char *const *argv = arg;
  execvp (argv[0], argv);
  int errnum = errno;
  kp_error *e = NULL;
  kp_error_errno (&e, errnum, "run '%s'", argv[0]);
  /* The shell's conventions: 127 not found, 126 found but not runnable. */
  int status = errnum == ENOENT ? 127 : 126;
  kp_error_set_status (&e, status);
  kp_sync_send (sock, KP_SYNC_ERROR, 0, e);
  _exit (status);
}

int
kp_userns_spawn (char *const argv[], int *exit_status, kp_error **err)
{
  if (argv == NULL || argv[0] == NULL)
    return kp_error_set (err, KP_EXIT_USAGE, "no command to run");
  kp_cleanup_close int sock = -1;
  pid_t pid = start_child (exec_child_main, (void *) argv, &sock, err);
  if (pid < 0)
    return -1;

  /* The command shares our terminal: ^C and ^\ go to it, and we wait for its verdict, as
   * system(3) does. */
  struct sigaction ignore = { .sa_handler = SIG_IGN }, old_int, old_quit;
  sigemptyset (&ignore.sa_mask);
  sigaction (SIGINT, &ignore, &old_int);
  sigaction (SIGQUIT, &ignore, &old_quit);

  kp_sync_kind kind = 0;
  int value = 0;
  kp_error *carried = NULL;
  int r = kp_sync_recv (sock, &kind, &value, &carried, err);
  if (r < 0)
    kill (pid, SIGKILL);
  int status = kp_wait_child (pid, 0);
  sigaction (SIGINT, &old_int, NULL);
  sigaction (SIGQUIT, &old_quit, NULL);
  if (r < 0)
    return -1;
  if (r > 0)
    {
      if (carried == NULL)
        return kp_error_set (err, KP_EXIT_RUNTIME, "'%s' could not be started", argv[0]);
      adopt_error (err, carried);
      return -1;
    }
  /* End-of-file: the exec closed the socket and the command ran. */
  if (status < 0)
    return child_end_error (status, argv[0], err);
  *exit_status = WIFSIGNALED (status) ? 128 + WTERMSIG (status) : WEXITSTATUS (status);
  return 0;
}

int
kp_userns_exec (char *const argv[], kp_error **err)
{
  int status;
  if (kp_userns_spawn (argv, &status, err) < 0)
    return -1;
  fflush (NULL);
  exit (status);
}
