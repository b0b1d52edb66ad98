/* session.c — one command run in a holder (runtime.h, docs/runtime.md).
 *
 * Three processes:
 *   caller   stays on the host; passes its signals on as SIGNAL frames, and does job
 *            control: when the command stops it takes the terminal back and stops itself,
 *            and when it is continued it gives the terminal back and sends CONTINUE.
 *   joiner   a child of the caller that joins the holder's cgroup and namespaces (setns on
 *            the holder's pidfd, or its /proc/PID/ns files on older kernels) and forks the
 *            command; it stays outside the pid namespace, so it sees the command's pid as
 *            the host does, and it has the namespace's capabilities to signal it whatever
 *            its uid. It reports STOPPED and EXIT frames and dies with the caller.
 *   command  pid ≥ 2 inside, in its own process group (the terminal's foreground group
 *            when the caller had the terminal), locked down (caps.h) and exec'd; an exec
 *            failure comes back as an ERROR frame with status 127 or 126. It dies with the
 *            joiner.
 * If the caller is killed, the joiner and the command are killed with it (parent-death
 * signals), and the holder sees its connection close. */
#include "runtime-private.h"

#include "base/util.h"
#include "caps.h"
#include "sync.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

const int kp_runtime_forwarded_signals[]
    = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, 0 };

#define KP_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* ---- the command ----------------------------------------------------------------------- */

static const char *
env_get (char *const *envp, const char *name)
{
  size_t len = strlen (name);
  for (size_t i = 0; envp && envp[i]; i++)
    if (strncmp (envp[i], name, len) == 0 && envp[i][len] == '=')
      return envp[i] + len + 1;
  return NULL;
}

/* execve with a $PATH search over the command's own environment (execvpe would search the
 * caller's). Returns the errno that explains the failure best: EACCES over ENOENT. */
static int
exec_command (char *const argv[], char *const envp[])
{
  if (strchr (argv[0], '/'))
    {
      execve (argv[0], argv, envp);
      return errno;
    }
  const char *path = env_get (envp, "PATH");
  if (path == NULL || path[0] == '\0')
    path = KP_DEFAULT_PATH;
  int best = ENOENT;
  size_t name_len = strlen (argv[0]);
  for (const char *p = path;;)
    {
      const char *end = strchrnul (p, ':');
      size_t dir_len = (size_t) (end - p);
      char candidate[4096];
      if (dir_len + name_len + 2 <= sizeof candidate)
        {
          memcpy (candidate, dir_len ? p : ".", dir_len ? dir_len : 1);
          size_t at = dir_len ? dir_len : 1;
          candidate[at++] = '/';
          memcpy (candidate + at, argv[0], name_len + 1);
          execve (candidate, argv, envp);
          if (errno == EACCES)
            best = EACCES;
          else if (errno != ENOENT && errno != ENOTDIR && best != EACCES)
            best = errno;
        }
      if (*end == '\0')
        break;
      p = end + 1;
    }
  return best;
}

typedef struct command_args
{
  const kp_holder *h;
  const kp_session_spec *s;
  int sock;
  bool tty_control;
  const sigset_t *caller_mask;
} command_args;

KP_NORETURN static void
command_fail (int sock, kp_error *e, int status)
{
  kp_error_set_status (&e, status);
  kp_sync_send (sock, KP_SYNC_ERROR, 0, e);
  _exit (status);
}

KP_NORETURN static void
command_main (const command_args *a)
{
  const kp_session_spec *s = a->s;
  kp_error *e = NULL;
  /* The defaults the command expects: no handler and the caller's signal mask. */
  for (int sig = 1; sig < NSIG; sig++)
    if (sig != SIGKILL && sig != SIGSTOP)
      signal (sig, SIG_DFL);
  setpgid (0, 0);
  if (a->tty_control)
    {
      sigset_t ttou, old;
      sigemptyset (&ttou);
      sigaddset (&ttou, SIGTTOU);
      sigprocmask (SIG_BLOCK, &ttou, &old);
      tcsetpgrp (STDIN_FILENO, getpgrp ());
      sigprocmask (SIG_SETMASK, &old, NULL);
    }
  sigprocmask (SIG_SETMASK, a->caller_mask, NULL);
  const char *cwd = s->cwd ? s->cwd : "/";
  if (chdir (cwd) < 0)
    {
      kp_error_errno (&e, errno, "working directory %s inside the environment", cwd);
      command_fail (a->sock, e, KP_EXIT_RUNTIME);
    }
  kp_lockdown lock = {
    .uid = s->as_root ? 0 : a->h->map.self_uid,
    .gid = s->as_root ? 0 : a->h->map.self_gid,
    .set_groups = a->h->map.full,
    .groups = NULL,
    .n_groups = 0,
    .caps = s->as_root ? KP_CAPS_ROOT_DEFAULT : 0,
    .seccomp = s->seccomp,
    .keep_fd = a->sock,
    .seccomp_program = &a->h->seccomp,
  };
  if (kp_lockdown_apply (&lock, &e) < 0)
    command_fail (a->sock, e, KP_EXIT_RUNTIME);
  /* After the id change, which clears it. */
  prctl (PR_SET_PDEATHSIG, SIGKILL);
  int errnum = exec_command (s->argv, s->envp);
  kp_error_errno (&e, errnum, "run '%s'", s->argv[0]);
  if (errnum == ENOENT)
    kp_error_hint (&e, "no such command in the environment's PATH");
  command_fail (a->sock, e, errnum == ENOENT ? 127 : 126);
}

/* ---- the joiner ------------------------------------------------------------------------- */

static int
join_namespaces (const kp_holder *h, kp_error **err)
{
  int flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC
              | CLONE_NEWCGROUP | (h->network != KP_NET_HOST ? CLONE_NEWNET : 0);
  if (h->pidfd >= 0 && setns (h->pidfd, flags) == 0)
    return 0;
  /* Kernels before 5.8 take one namespace file at a time; the user namespace first, for
   * the capabilities the others need. */
  static const struct
  {
    const char *name;
    int flag;
  } order[] = { { "user", CLONE_NEWUSER }, { "ipc", CLONE_NEWIPC }, { "uts", CLONE_NEWUTS },
                { "net", CLONE_NEWNET },   { "cgroup", CLONE_NEWCGROUP },
                { "pid", CLONE_NEWPID },   { "mnt", CLONE_NEWNS } };
  int fds[7];
  for (size_t i = 0; i < 7; i++)
    {
      fds[i] = -1;
      if (!(flags & order[i].flag))
        continue;
      char path[64];
      snprintf (path, sizeof path, "/proc/%d/ns/%s", (int) h->pid, order[i].name);
      fds[i] = open (path, O_RDONLY | O_CLOEXEC);
      if (fds[i] < 0 && order[i].flag != CLONE_NEWCGROUP)
        return kp_error_errno (err, errno, "open %s", path);
    }
  for (size_t i = 0; i < 7; i++)
    if (fds[i] >= 0 && setns (fds[i], order[i].flag) < 0)
      return kp_error_errno (err, errno, "join the environment's %s namespace", order[i].name);
  return 0;
}

KP_NORETURN static void
joiner_main (command_args *a, pid_t caller)
{
  int sock = a->sock;
  kp_error *e = NULL;
  if (prctl (PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid () != caller)
    _exit (1);
  if (a->h->cg && kp_cgroup_attach (a->h->cg, getpid (), &e) < 0)
    command_fail (sock, e, KP_EXIT_RUNTIME);
  if (join_namespaces (a->h, &e) < 0)
    command_fail (sock, e, KP_EXIT_RUNTIME);
  /* The signals stay blocked here (the caller blocked them); SIGCHLD comes through a
   * signalfd. */
  sigset_t chld;
  sigemptyset (&chld);
  sigaddset (&chld, SIGCHLD);
  sigprocmask (SIG_BLOCK, &chld, NULL);
  int sigfd = signalfd (-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sigfd < 0)
    {
      kp_error_errno (&e, errno, "signalfd");
      command_fail (sock, e, KP_EXIT_RUNTIME);
    }
  pid_t pid = fork ();
  if (pid < 0)
    {
      kp_error_errno (&e, errno, "fork the command");
      command_fail (sock, e, KP_EXIT_RUNTIME);
    }
  if (pid == 0)
    {
      close (sigfd);
      command_main (a);
    }
  /* Its own group from the start, whoever runs first. */
  setpgid (pid, pid);
  kp_sync_send (sock, KP_SYNC_PID, (int) pid, NULL);
  for (;;)
    {
      struct pollfd p[2] = { { sigfd, POLLIN, 0 }, { sock, POLLIN, 0 } };
      if (poll (p, 2, -1) < 0)
        {
          if (errno == EINTR)
            continue;
          kill (pid, SIGKILL);
          _exit (1);
        }
      if (p[0].revents & POLLIN)
        {
          struct signalfd_siginfo si;
          while (read (sigfd, &si, sizeof si) == sizeof si)
            ;
          int status = kp_wait_child (pid, WNOHANG | WUNTRACED);
          if (status >= 0 && WIFSTOPPED (status))
            kp_sync_send (sock, KP_SYNC_STOPPED, WSTOPSIG (status), NULL);
          else if (status >= 0)
            {
              kp_sync_send (sock, KP_SYNC_EXIT, status, NULL);
              _exit (0);
            }
          else if (status == -1)
            _exit (1);
        }
      if (p[1].revents & (POLLIN | POLLHUP | POLLERR))
        {
          kp_sync_kind kind;
          int value;
          kp_error *carried = NULL;
          kp_error *recv_err = NULL;
          int r = kp_sync_recv (sock, &kind, &value, &carried, &recv_err);
          kp_error_free (carried);
          kp_error_free (recv_err);
          if (r <= 0)
            {
              kill (pid, SIGKILL);
              _exit (1);
            }
          if (kind == KP_SYNC_SIGNAL)
            kill (pid, value);
          else if (kind == KP_SYNC_CONTINUE)
            kill (-pid, SIGCONT);
        }
    }
}

/* ---- the caller ------------------------------------------------------------------------- */

static void
take_terminal (pid_t pgrp)
{
  sigset_t ttou, old;
  sigemptyset (&ttou);
  sigaddset (&ttou, SIGTTOU);
  sigprocmask (SIG_BLOCK, &ttou, &old);
  tcsetpgrp (STDIN_FILENO, pgrp);
  sigprocmask (SIG_SETMASK, &old, NULL);
}

int
kp_holder_join (kp_holder *h, const kp_session_spec *s, int *exit_status, kp_error **err)
{
  if (s->argv == NULL || s->argv[0] == NULL)
    return kp_error_set (err, KP_EXIT_USAGE, "no command to run");
  bool tty_control = !s->no_tty_control && isatty (STDIN_FILENO)
                     && tcgetpgrp (STDIN_FILENO) == getpgrp ();
  int fds[2];
  if (kp_sync_pair (fds, err) < 0)
    return -1;
  kp_cleanup_close int sock = fds[0];

  sigset_t handled, old_mask;
  sigemptyset (&handled);
  for (size_t i = 0; kp_runtime_forwarded_signals[i]; i++)
    sigaddset (&handled, kp_runtime_forwarded_signals[i]);
  sigaddset (&handled, SIGCHLD);
  sigprocmask (SIG_BLOCK, &handled, &old_mask);
  kp_cleanup_close int sigfd = signalfd (-1, &handled, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sigfd < 0)
    {
      int e = errno;
      sigprocmask (SIG_SETMASK, &old_mask, NULL);
      close (fds[1]);
      return kp_error_errno (err, e, "signalfd");
    }

  /* The filter the holder's starter compiled, once per connection: loading it in the
   * command's process costs far less than compiling it there. Without it, the command's
   * process compiles. */
  if (h->joined && h->state_dir && s->seccomp != KP_SECCOMP_NONE
      && (h->seccomp.profile != s->seccomp || h->seccomp.filter == NULL))
    {
      kp_seccomp_program_clear (&h->seccomp);
      kp_cleanup_free char *path = kp_holder_seccomp_path (h->state_dir, s->seccomp);
      kp_cleanup_error kp_error *ignored = NULL;
      kp_seccomp_program_read (path, s->seccomp, NULL, &h->seccomp, &ignored);
    }

  command_args args = { h, s, fds[1], tty_control, &old_mask };
  pid_t caller = getpid ();
  fflush (NULL);
  pid_t joiner = fork ();
  if (joiner == 0)
    {
      close (sock);
      close (sigfd);
      joiner_main (&args, caller);
    }
  int fork_errno = errno;
  close (fds[1]);
  if (joiner < 0)
    {
      sigprocmask (SIG_SETMASK, &old_mask, NULL);
      return kp_error_errno (err, fork_errno, "fork");
    }

  int ret = -1;
  int wait_status = -1;
  pid_t command = -1;
  kp_error *failure = NULL;
  for (bool done = false; !done;)
    {
      struct pollfd p[2] = { { sigfd, POLLIN, 0 }, { sock, POLLIN, 0 } };
      if (poll (p, 2, -1) < 0)
        {
          if (errno == EINTR)
            continue;
          kp_error_errno (&failure, errno, "wait for the command");
          break;
        }
      if (p[0].revents & POLLIN)
        {
          struct signalfd_siginfo si;
          while (read (sigfd, &si, sizeof si) == sizeof si)
            if (si.ssi_signo != SIGCHLD)
              kp_sync_send (sock, KP_SYNC_SIGNAL, (int) si.ssi_signo, NULL);
        }
      if (!(p[1].revents & (POLLIN | POLLHUP | POLLERR)))
        continue;
      kp_sync_kind kind;
      int value;
      kp_error *carried = NULL;
      int r = kp_sync_recv (sock, &kind, &value, &carried, &failure);
      if (r <= 0)
        break;
      switch (kind)
        {
        case KP_SYNC_PID:
          command = (pid_t) value;
          break;
        case KP_SYNC_ERROR:
          if (failure == NULL)
            failure = kp_steal_pointer (&carried);
          break;
        case KP_SYNC_STOPPED:
          /* ^Z inside: the caller's shell must see this job stop, and get the terminal. */
          if (tty_control)
            take_terminal (getpgrp ());
          raise (SIGTSTP);
          /* Continued (fg or bg): the command's group gets the terminal back when we have
           * it, then continues. */
          if (tty_control && command > 0 && tcgetpgrp (STDIN_FILENO) == getpgrp ())
            take_terminal (command);
          kp_sync_send (sock, KP_SYNC_CONTINUE, 0, NULL);
          break;
        case KP_SYNC_EXIT:
          wait_status = value;
          done = true;
          break;
        default:
          break;
        }
      kp_error_free (carried);
    }
  int joiner_status = kp_wait_child (joiner, 0);
  if (tty_control)
    take_terminal (getpgrp ());
  sigprocmask (SIG_SETMASK, &old_mask, NULL);

  if (failure != NULL)
    {
      if (err && *err == NULL)
        *err = failure;
      else
        kp_error_free (failure);
      return -1;
    }
  if (wait_status < 0)
    {
      kp_error_set (err, KP_EXIT_RUNTIME, "the session ended without the command's status%s",
                    joiner_status >= 0 && WIFSIGNALED (joiner_status)
                        ? " (its process was killed)"
                        : "");
      return -1;
    }
  *exit_status = WIFSIGNALED (wait_status) ? 128 + WTERMSIG (wait_status)
                                           : WEXITSTATUS (wait_status);
  ret = 0;
  return ret;
}
