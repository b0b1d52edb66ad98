/* netns.c — network modes, loopback, the user-mode network helper and the texts of
 * /etc/resolv.conf and /etc/hosts (netns.h, docs/network.md).
 *
 * The helper (pasta or slirp4netns) is started with fork/exec as our direct child so we can
 * reap it, tie its life to ours with PR_SET_PDEATHSIG, and read its exit status when it
 * fails. Both tools tell us when the namespace is configured through a descriptor we pass
 * as fd 3: slirp4netns writes "1" to its --ready-fd, pasta in foreground mode writes its
 * pid to its --pid file (we name the pipe as /proc/self/fd/3) only after it has set up the
 * addresses and routes. Their output goes to a memfd, read back only for error messages:
 * a pipe would fill up, or kill a long-running helper with SIGPIPE once we stop reading. */
#include "netns.h"

#include "base/buf.h"
#include "base/fs.h"
#include "caps.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KP_USERNET_READY_TIMEOUT_MS 30000
#define KP_USERNET_STOP_GRACE_MS 2000
#define KP_USERNET_MTU "65520"
#define KP_USERNET_CIDR "10.0.2.0/24" /* holds the addresses of netns.h */
#define KP_USERNET_OUTPUT_MAX (64u << 10)
/* How many lines of the helper's output an error message quotes (the last ones). */
#define KP_USERNET_OUTPUT_LINES 4

/* Descriptor numbers in the helper. */
#define HELPER_READY_FD 3
#define HELPER_EXIT_FD 4

#define HINT_INSTALL "install passt (apt-get install passt, dnf install passt) or slirp4netns"

static const char *const mode_names[] = {
  [KP_NET_HOST] = "host",
  [KP_NET_NONE] = "none",
  [KP_NET_USER] = "user",
};

const char *
kp_net_mode_name (kp_net_mode mode)
{
  if ((unsigned) mode >= KP_N_ELEMENTS (mode_names))
    return "?";
  return mode_names[mode];
}

int
kp_net_mode_from_name (const char *name, kp_net_mode *mode)
{
  for (size_t i = 0; name != NULL && i < KP_N_ELEMENTS (mode_names); i++)
    if (strcmp (name, mode_names[i]) == 0)
      {
        *mode = (kp_net_mode) i;
        return 0;
      }
  return -1;
}

/* ---- loopback ------------------------------------------------------------------------ */

int
kp_net_loopback_up (kp_error **err)
{
  kp_cleanup_close int fd = socket (AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    goto fail;
  struct ifreq ifr;
  memset (&ifr, 0, sizeof ifr);
  strcpy (ifr.ifr_name, "lo");
  if (ioctl (fd, SIOCGIFFLAGS, &ifr) < 0)
    goto fail;
  if (ifr.ifr_flags & IFF_UP)
    return 0;
  ifr.ifr_flags |= IFF_UP;
  if (ioctl (fd, SIOCSIFFLAGS, &ifr) < 0)
    goto fail;
  return 0;

fail:
  kp_error_errno (err, errno, "bring up the loopback interface");
  kp_error_set_status (err, KP_EXIT_RUNTIME);
  return -1;
}

/* ---- the helper ---------------------------------------------------------------------- */

struct kp_usernet
{
  const char *tool; /* "pasta" or "slirp4netns" */
  pid_t pid;        /* the helper, our child; -1 once reaped */
  int exit_fd;      /* our end of slirp4netns's --exit-fd pipe, or -1 */
  int output_fd;    /* memfd holding the helper's stdout and stderr */
};

const char *
kp_usernet_tool (const kp_usernet *n)
{
  return n->tool;
}

pid_t
kp_usernet_pid (const kp_usernet *n)
{
  return n->pid;
}

const char *
kp_usernet_dns (const kp_usernet *n)
{
  return n != NULL ? KP_USERNET_DNS : NULL;
}

static int64_t
now_ms (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#define REAP_RUNNING (-1)
#define REAP_NOT_OURS (-2)

/* Reap pid within timeout_ms: its wait status, REAP_RUNNING when it did not end in time,
 * or REAP_NOT_OURS when it is not (or no longer) our child — reaped by someone else, so
 * the number may already name another process and must not be signalled. */
static int
reap_within (pid_t pid, int timeout_ms)
{
  int64_t deadline = now_ms () + timeout_ms;
  for (;;)
    {
      int status;
      pid_t r = waitpid (pid, &status, WNOHANG);
      if (r == pid)
        return status;
      if (r < 0 && errno != EINTR)
        return REAP_NOT_OURS;
      if (now_ms () >= deadline)
        return REAP_RUNNING;
      struct timespec pause = { 0, 10 * 1000 * 1000 };
      nanosleep (&pause, NULL);
    }
}

/* SIGTERM, then SIGKILL after the grace period; returns the wait status or -1. */
static int
terminate (pid_t pid, int grace_ms)
{
  int status = reap_within (pid, 0);
  if (status != REAP_RUNNING)
    return status >= 0 ? status : -1;
  kill (pid, SIGTERM);
  status = reap_within (pid, grace_ms);
  if (status != REAP_RUNNING)
    return status >= 0 ? status : -1;
  kill (pid, SIGKILL);
  while (waitpid (pid, &status, 0) < 0)
    if (errno != EINTR)
      return -1;
  return status;
}

static void
usernet_free (kp_usernet *n)
{
  if (n->exit_fd >= 0)
    close (n->exit_fd);
  if (n->output_fd >= 0)
    close (n->output_fd);
  free (n);
}

void
kp_usernet_stop (kp_usernet *n)
{
  if (n == NULL)
    return;
  /* slirp4netns quits by itself when its exit fd hangs up; pasta needs the signal. */
  if (n->exit_fd >= 0)
    {
      close (n->exit_fd);
      n->exit_fd = -1;
    }
  if (n->pid > 0)
    terminate (n->pid, KP_USERNET_STOP_GRACE_MS);
  usernet_free (n);
}

void
kp_usernet_stopp (kp_usernet **n)
{
  kp_usernet_stop (*n);
  *n = NULL;
}

/* Lines the tools print that say nothing about a failure. */
static bool
noise_line (const char *line, size_t len)
{
  static const char *const prefixes[] = { "Failed to send ", "sent tapfd=", "received tapfd=",
                                          "starting slirp" };
  for (size_t i = 0; i < KP_N_ELEMENTS (prefixes); i++)
    if (len >= strlen (prefixes[i]) && strncmp (line, prefixes[i], strlen (prefixes[i])) == 0)
      return true;
  return false;
}

/* The last meaningful lines of the helper's output, joined with "; ", or "". */
static char *
helper_said (const kp_usernet *n)
{
  /* The end of the output: that is where the failure is. */
  struct stat st;
  off_t from = 0;
  if (fstat (n->output_fd, &st) == 0 && st.st_size > (off_t) KP_USERNET_OUTPUT_MAX)
    from = st.st_size - (off_t) KP_USERNET_OUTPUT_MAX;
  kp_cleanup_free char *text = xmalloc (KP_USERNET_OUTPUT_MAX + 1);
  ssize_t len = pread (n->output_fd, text, KP_USERNET_OUTPUT_MAX, from);
  if (len < 0)
    len = 0;
  text[len] = '\0';

  const char *lines[KP_USERNET_OUTPUT_LINES];
  size_t lens[KP_USERNET_OUTPUT_LINES];
  size_t count = 0;
  for (char *line = text; *line != '\0';)
    {
      size_t l = strcspn (line, "\n");
      size_t trimmed = l;
      while (trimmed > 0 && (line[trimmed - 1] == ' ' || line[trimmed - 1] == '\r'))
        trimmed--;
      if (trimmed > 0 && !noise_line (line, trimmed))
        {
          if (count == KP_USERNET_OUTPUT_LINES)
            {
              memmove (lines, lines + 1, sizeof lines[0] * (count - 1));
              memmove (lens, lens + 1, sizeof lens[0] * (count - 1));
              count--;
            }
          lines[count] = line;
          lens[count++] = trimmed;
        }
      line += l;
      if (*line == '\n')
        line++;
    }
  kp_buf out = KP_BUF_INIT;
  for (size_t i = 0; i < count; i++)
    {
      if (i > 0)
        kp_buf_puts (&out, "; ");
      kp_buf_append (&out, lines[i], lens[i]);
    }
  return kp_buf_steal (&out);
}

/* Which tool to run, and where it is. */
static int
choose_tool (const char **tool, char **path, kp_error **err)
{
  const char *forced = getenv ("KARAPACE_USERNET");
  if (forced != NULL && forced[0] != '\0')
    {
      if (strcmp (forced, "pasta") != 0 && strcmp (forced, "slirp4netns") != 0)
        {
          kp_error_set (err, KP_EXIT_RUNTIME,
                        "user-mode network: KARAPACE_USERNET is '%s', which is not a "
                        "user-mode network tool",
                        forced);
          kp_error_hint (err, "set KARAPACE_USERNET to pasta or slirp4netns, or unset it");
          return -1;
        }
      *tool = strcmp (forced, "pasta") == 0 ? "pasta" : "slirp4netns";
      *path = kp_find_program (*tool);
      if (*path == NULL)
        {
          kp_error_set (err, KP_EXIT_RUNTIME,
                        "user-mode network: %s (forced by KARAPACE_USERNET) is not installed",
                        *tool);
          kp_error_hint (err, "install %s, or unset KARAPACE_USERNET to use whichever is "
                              "installed",
                         strcmp (*tool, "pasta") == 0 ? "passt (it provides pasta)"
                                                      : "slirp4netns");
          return -1;
        }
      return 0;
    }
  static const char *const tools[] = { "pasta", "slirp4netns" };
  for (size_t i = 0; i < KP_N_ELEMENTS (tools); i++)
    {
      *path = kp_find_program (tools[i]);
      if (*path != NULL)
        {
          *tool = tools[i];
          return 0;
        }
    }
  kp_error_set (err, KP_EXIT_RUNTIME,
                "user-mode network: neither pasta nor slirp4netns is installed");
  kp_error_hint (err, HINT_INSTALL ", or use the network mode \"none\" or \"host\"");
  return -1;
}

/* The command line; its strings are newly allocated. */
static char **
helper_argv (const char *tool, const char *path, pid_t pid)
{
  char **argv = xcalloc (40, sizeof (char *));
  size_t argc = 0;
#define ARG(s) (argv[argc++] = xstrdup (s))
  ARG (path);
  if (strcmp (tool, "pasta") == 0)
    {
      /* In the foreground pasta stays our child; --pid is written once it has configured
         the namespace. Fixed addresses make it look like slirp4netns rather than copy the
         host's; no port is forwarded either way and the gateway does not lead to the
         host's loopback (docs/network.md). */
      ARG ("--foreground");
      ARG ("--quiet");
      ARG ("--config-net");
      ARG ("--ipv4-only");
      ARG ("--ns-ifname");
      ARG (KP_USERNET_IFNAME);
      ARG ("--address");
      ARG (KP_USERNET_ADDRESS);
      ARG ("--netmask");
      argv[argc++] = xasprintf ("%d", KP_USERNET_PREFIX);
      ARG ("--gateway");
      ARG (KP_USERNET_GATEWAY);
      ARG ("--dns-forward");
      ARG (KP_USERNET_DNS);
      ARG ("--no-map-gw");
      ARG ("--tcp-ports");
      ARG ("none");
      ARG ("--udp-ports");
      ARG ("none");
      ARG ("--tcp-ns");
      ARG ("none");
      ARG ("--udp-ns");
      ARG ("none");
      if (geteuid () == 0)
        {
          /* As root pasta would switch to nobody, who may not enter a user namespace that
             root owns. */
          ARG ("--runas");
          argv[argc++] = xasprintf ("%u:%u", (unsigned) geteuid (), (unsigned) getegid ());
        }
      ARG ("--pid");
      argv[argc++] = xasprintf ("/proc/self/fd/%d", HELPER_READY_FD);
      argv[argc++] = xasprintf ("%d", (int) pid);
    }
  else
    {
      ARG ("--configure");
      ARG ("--mtu=" KP_USERNET_MTU);
      ARG ("--disable-host-loopback");
      ARG ("--cidr=" KP_USERNET_CIDR);
      argv[argc++] = xasprintf ("--ready-fd=%d", HELPER_READY_FD);
      argv[argc++] = xasprintf ("--exit-fd=%d", HELPER_EXIT_FD);
      argv[argc++] = xasprintf ("%d", (int) pid);
      ARG (KP_USERNET_IFNAME);
    }
#undef ARG
  argv[argc] = NULL;
  return argv;
}

/* In the forked child: set up descriptors and signals, exec. Async-signal-safe calls only
 * (the caller may have threads), but for kp_fds_close_from's fallback on kernels without
 * close_range(2). */
KP_NORETURN static void
helper_exec (char *const argv[], int output_fd, int ready_fd, int exit_fd, pid_t parent)
{
  /* Die with the caller; if it died already, the signal was missed: leave now. */
  if (prctl (PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid () != parent)
    _exit (127);
  /* Our own process group: a ^C meant for the terminal's foreground job must not take the
     container's network down. */
  setpgid (0, 0);
  sigset_t all;
  sigemptyset (&all);
  sigprocmask (SIG_SETMASK, &all, NULL);
  static const int reset[] = { SIGPIPE, SIGINT, SIGQUIT, SIGTERM, SIGHUP, SIGCHLD };
  for (size_t i = 0; i < KP_N_ELEMENTS (reset); i++)
    signal (reset[i], SIG_DFL);

  /* Move everything above the numbers we want first, so no dup2 clobbers another. */
  int devnull = open ("/dev/null", O_RDONLY | O_CLOEXEC);
  int out = fcntl (output_fd, F_DUPFD_CLOEXEC, 10);
  int ready = fcntl (ready_fd, F_DUPFD_CLOEXEC, 10);
  int ex = exit_fd >= 0 ? fcntl (exit_fd, F_DUPFD_CLOEXEC, 10) : -1;
  if (devnull < 0 || out < 0 || ready < 0 || (exit_fd >= 0 && ex < 0))
    _exit (127);
  if (dup2 (devnull, STDIN_FILENO) < 0 || dup2 (out, STDOUT_FILENO) < 0
      || dup2 (out, STDERR_FILENO) < 0 || dup2 (ready, HELPER_READY_FD) < 0
      || (ex >= 0 && dup2 (ex, HELPER_EXIT_FD) < 0))
    _exit (127);
  /* Nothing else of the caller's (the runtime's sync socket, terminals) may leak in. */
  kp_fds_close_from (ex >= 0 ? HELPER_EXIT_FD + 1 : HELPER_READY_FD + 1, -1, true, NULL);
  execv (argv[0], argv);
  dprintf (STDERR_FILENO, "cannot run %s: %s\n", argv[0], strerror (errno));
  _exit (127);
}

/* The failure of a started helper: stop it and describe why, with what it said. */
static int
helper_failed (kp_usernet *n, const char *what, kp_error **err)
{
  int status = terminate (n->pid, KP_USERNET_STOP_GRACE_MS);
  n->pid = -1;
  kp_cleanup_free char *said = helper_said (n);
  kp_cleanup_free char *how = NULL;
  if (what != NULL)
    how = xstrdup (what);
  else if (status >= 0 && WIFEXITED (status))
    how = xasprintf ("exited with status %d", WEXITSTATUS (status));
  else if (status >= 0 && WIFSIGNALED (status))
    how = xasprintf ("was killed by signal %d", WTERMSIG (status));
  else
    how = xstrdup ("stopped");
  kp_error_set (err, KP_EXIT_RUNTIME, "user-mode network: %s %s before it was ready%s%s",
                n->tool, how, said[0] ? ": " : "", said);
  /* slirp4netns: open("/dev/net/tun"): Permission denied; pasta: Failed to open tun
     socket in namespace */
  if (strstr (said, "/dev/net/tun") != NULL || strstr (said, "tun socket") != NULL)
    kp_error_hint (err, "%s needs /dev/net/tun readable and writable by you (udev normally "
                        "makes it 0666; as root: chmod 0666 /dev/net/tun), or use the "
                        "network mode \"none\" or \"host\"",
                   n->tool);
  else
    {
      const char *other = strcmp (n->tool, "pasta") == 0 ? "slirp4netns" : "pasta";
      kp_cleanup_free char *other_path = kp_find_program (other);
      if (other_path != NULL)
        kp_error_hint (err, "try %s instead (KARAPACE_USERNET=%s), or use the network mode "
                            "\"none\" or \"host\"",
                       other, other);
      else
        kp_error_hint (err, "install %s to try %s instead (KARAPACE_USERNET=%s), or use the "
                            "network mode \"none\" or \"host\"",
                       strcmp (other, "pasta") == 0 ? "passt" : other, other, other);
    }
  return -1;
}

/* Wait until the helper writes to its ready descriptor. */
static int
wait_ready (kp_usernet *n, int ready_fd, kp_error **err)
{
  int64_t deadline = now_ms () + KP_USERNET_READY_TIMEOUT_MS;
  for (;;)
    {
      int64_t left = deadline - now_ms ();
      if (left <= 0)
        return helper_failed (n, "did not configure the network within 30 seconds", err);
      struct pollfd p = { .fd = ready_fd, .events = POLLIN };
      int r = poll (&p, 1, (int) left);
      if (r < 0 && errno != EINTR)
        return helper_failed (n, "could not be waited for", err);
      if (r <= 0)
        continue;
      char buf[64];
      ssize_t len = read (ready_fd, buf, sizeof buf);
      if (len > 0)
        return 0;
      if (len < 0 && (errno == EINTR || errno == EAGAIN))
        continue;
      /* End of file: the helper exited (or closed the descriptor) without saying ready. */
      return helper_failed (n, NULL, err);
    }
}

/* Fork and exec the helper; *ready_fd is our end of its ready pipe. */
static int
helper_spawn (kp_usernet *n, const char *path, pid_t pid, int *ready_fd, kp_error **err)
{
  n->output_fd = memfd_create ("karapace-usernet-output", MFD_CLOEXEC);
  if (n->output_fd < 0)
    return kp_error_errno (err, errno, "memfd_create");
  int ready[2], exit_pipe[2] = { -1, -1 };
  if (pipe2 (ready, O_CLOEXEC) < 0)
    return kp_error_errno (err, errno, "pipe");
  bool slirp = strcmp (n->tool, "slirp4netns") == 0;
  if (slirp && pipe2 (exit_pipe, O_CLOEXEC) < 0)
    {
      int e = errno;
      close (ready[0]);
      close (ready[1]);
      return kp_error_errno (err, e, "pipe");
    }

  char **argv = helper_argv (n->tool, path, pid);
  pid_t parent = getpid ();
  pid_t child = fork ();
  if (child == 0)
    helper_exec (argv, n->output_fd, ready[1], exit_pipe[0], parent);
  int fork_errno = errno;
  kp_strv_free (argv);
  close (ready[1]);
  if (slirp)
    {
      close (exit_pipe[0]);
      n->exit_fd = exit_pipe[1];
    }
  if (child < 0)
    {
      close (ready[0]);
      return kp_error_errno (err, fork_errno, "fork to run %s", n->tool);
    }
  n->pid = child;
  *ready_fd = ready[0];
  return 0;
}

kp_usernet *
kp_usernet_start (pid_t pid, kp_error **err)
{
  const char *tool = NULL;
  kp_cleanup_free char *path = NULL;
  if (choose_tool (&tool, &path, err) < 0)
    return NULL;

  kp_usernet *n = xcalloc (1, sizeof *n);
  n->tool = tool;
  n->pid = -1;
  n->exit_fd = -1;
  n->output_fd = -1;
  kp_cleanup_close int ready_fd = -1;
  if (helper_spawn (n, path, pid, &ready_fd, err) < 0)
    {
      kp_error_prefix (err, "user-mode network");
      kp_error_set_status (err, KP_EXIT_RUNTIME);
      usernet_free (n);
      return NULL;
    }
  if (wait_ready (n, ready_fd, err) < 0)
    {
      usernet_free (n); /* helper_failed stopped and reaped the helper */
      return NULL;
    }
  return n;
}

/* ---- /etc/resolv.conf and /etc/hosts --------------------------------------------------- */

/* Can the container reach this nameserver through the user network? Not the host's
 * loopback, and not IPv6 (the user network carries IPv4 only). Unparsable: keep it. */
static bool
nameserver_reachable (const char *addr)
{
  char text[INET6_ADDRSTRLEN + 1];
  size_t len = strcspn (addr, "%");
  if (len >= sizeof text)
    return true;
  memcpy (text, addr, len);
  text[len] = '\0';
  struct in_addr v4;
  struct in6_addr v6;
  if (inet_pton (AF_INET, text, &v4) == 1)
    return (ntohl (v4.s_addr) >> 24) != 127;
  if (inet_pton (AF_INET6, text, &v6) == 1)
    return false;
  return true;
}

/* "nameserver ADDR": the address, newly allocated, or NULL for any other line. */
static char *
nameserver_of (const char *line, size_t len)
{
  size_t i = 0;
  while (i < len && (line[i] == ' ' || line[i] == '\t'))
    i++;
  static const char keyword[] = "nameserver";
  if (len - i <= strlen (keyword) || strncmp (line + i, keyword, strlen (keyword)) != 0)
    return NULL;
  i += strlen (keyword);
  if (line[i] != ' ' && line[i] != '\t')
    return NULL;
  while (i < len && (line[i] == ' ' || line[i] == '\t'))
    i++;
  size_t start = i;
  while (i < len && line[i] != ' ' && line[i] != '\t' && line[i] != '#' && line[i] != ';'
         && line[i] != '\r')
    i++;
  return i > start ? xstrndup (line + start, i - start) : NULL;
}

char *
kp_net_resolv_conf (kp_net_mode mode, const kp_usernet *n, const char *host_text)
{
  kp_buf out = KP_BUF_INIT;
  if (mode == KP_NET_HOST)
    {
      if (host_text == NULL)
        return xstrdup ("# Generated by karapace: the host has no /etc/resolv.conf.\n");
      return xstrdup (host_text);
    }
  if (mode != KP_NET_USER)
    return xstrdup ("# Generated by karapace: the network mode \"none\" has no network, so "
                    "there is no nameserver.\n");

  const char *dns = kp_usernet_dns (n);
  kp_buf_printf (&out, "# Generated by karapace for the network mode \"user\"%s%s%s from the "
                       "host's /etc/resolv.conf.\n",
                 n != NULL ? " (" : "", n != NULL ? kp_usernet_tool (n) : "",
                 n != NULL ? ")" : "");
  bool have_nameserver = false, replaced = false;
  for (const char *line = host_text; line != NULL && *line != '\0';)
    {
      size_t len = strcspn (line, "\n");
      kp_cleanup_free char *addr = nameserver_of (line, len);
      if (addr != NULL && !nameserver_reachable (addr))
        {
          kp_buf_printf (&out, "# nameserver %s: the host's, not reachable from here%s\n",
                         addr, dns != NULL && !replaced ? "; the forwarder instead:" : "");
          if (dns != NULL && !replaced)
            {
              kp_buf_printf (&out, "nameserver %s\n", dns);
              replaced = have_nameserver = true;
            }
        }
      else
        {
          have_nameserver |= addr != NULL;
          kp_buf_append (&out, line, len);
          kp_buf_putc (&out, '\n');
        }
      line += len;
      if (*line == '\n')
        line++;
    }
  if (!have_nameserver && dns != NULL)
    kp_buf_printf (&out, "nameserver %s\n", dns);
  return kp_buf_steal (&out);
}

static bool
valid_hostname (const char *name)
{
  if (name == NULL || name[0] == '\0' || name[0] == '-' || name[0] == '.'
      || strlen (name) > 253)
    return false;
  for (const char *p = name; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')
          || *p == '-' || *p == '.'))
      return false;
  return true;
}

char *
kp_net_hosts (const char *hostname)
{
  kp_buf out = KP_BUF_INIT;
  kp_buf_puts (&out, "# Generated by karapace.\n"
                     "127.0.0.1\tlocalhost\n"
                     "::1\tlocalhost ip6-localhost ip6-loopback\n");
  if (valid_hostname (hostname))
    {
      kp_buf_printf (&out, "127.0.1.1\t%s", hostname);
      size_t label = strcspn (hostname, ".");
      if (hostname[label] == '.' && label > 0)
        {
          kp_buf_putc (&out, ' ');
          kp_buf_append (&out, hostname, label);
        }
      kp_buf_putc (&out, '\n');
    }
  return kp_buf_steal (&out);
}
