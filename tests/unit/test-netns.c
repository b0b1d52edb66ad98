/* test-netns.c — the sandbox's network: mode names, the texts of /etc/resolv.conf and
 * /etc/hosts, loopback in a fresh network namespace, and user-mode networking through
 * each installed tool: the container reaches a socket on the host, does not reach the
 * host's loopback, and no helper is left running after kp_usernet_stop() or after the
 * caller is killed.
 *
 * The namespaces are made by a forked child that unshares a user and a network namespace
 * and waits while the test writes its single-id map, as the runtime's parent does. Runs as
 * root and as an unprivileged user; a tool that is not installed is skipped with a reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "base/fs.h"
#include "sandbox/netns.h"
#include "sandbox/userns.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *const tools[] = { "pasta", "slirp4netns" };

/* ---- helpers ------------------------------------------------------------------------ */

static bool
userns_available (void)
{
  pid_t pid = fork ();
  assert_true (pid >= 0);
  if (pid == 0)
    _exit (unshare (CLONE_NEWUSER | CLONE_NEWNET) == 0 ? 0 : 1);
  int status;
  assert_int_equal (waitpid (pid, &status, 0), pid);
  return WIFEXITED (status) && WEXITSTATUS (status) == 0;
}

#define SKIP_WITHOUT_USERNS()                                                               \
  do                                                                                         \
    {                                                                                        \
      if (!userns_available ())                                                              \
        {                                                                                    \
          fprintf (stderr, "skip: unprivileged user namespaces are disabled here\n");        \
          skip ();                                                                           \
        }                                                                                    \
    }                                                                                        \
  while (0)

static size_t
count_lines_starting (const char *text, const char *prefix)
{
  size_t n = 0;
  for (const char *line = text; line && *line;)
    {
      if (strncmp (line, prefix, strlen (prefix)) == 0)
        n++;
      line = strchr (line, '\n');
      if (line)
        line++;
    }
  return n;
}

/* Wait for pid for up to timeout_ms; its status, or -1 when it did not end. */
static int
wait_for (pid_t pid, int timeout_ms)
{
  for (int waited = 0; waited <= timeout_ms; waited += 10)
    {
      int status;
      pid_t r = waitpid (pid, &status, WNOHANG);
      if (r == pid)
        return status;
      if (r < 0 && errno != EINTR)
        return -1;
      struct timespec pause = { 0, 10 * 1000 * 1000 };
      nanosleep (&pause, NULL);
    }
  return -1;
}

/* Processes that run a helper for the namespace of target: their command line names
 * pasta, passt or slirp4netns and has target's pid as an argument. */
static int
helpers_for (pid_t target)
{
  kp_cleanup_free char *want = xasprintf ("%d", (int) target);
  kp_cleanup_dir DIR *proc = opendir ("/proc");
  assert_non_null (proc);
  int found = 0;
  struct dirent *de;
  while ((de = readdir (proc)) != NULL)
    {
      if (de->d_name[0] < '0' || de->d_name[0] > '9')
        continue;
      kp_cleanup_free char *path = xasprintf ("/proc/%s/cmdline", de->d_name);
      kp_cleanup_error kp_error *ignored = NULL;
      size_t len = 0;
      kp_cleanup_free char *cmdline = kp_file_read (path, 1 << 16, &len, &ignored);
      if (cmdline == NULL || len == 0)
        continue;
      const char *base = strrchr (cmdline, '/') ? strrchr (cmdline, '/') + 1 : cmdline;
      if (strncmp (base, "pasta", 5) != 0 && strncmp (base, "passt", 5) != 0
          && strcmp (base, "slirp4netns") != 0)
        continue;
      for (size_t i = 0; i < len; i += strlen (cmdline + i) + 1)
        if (strcmp (cmdline + i, want) == 0)
          found++;
    }
  return found;
}

/* A child in a fresh user and network namespace, mapped to us, waiting for "go". */
typedef struct ns_child
{
  pid_t pid;
  int ctl; /* our end of a socketpair */
} ns_child;

typedef int (*ns_fn) (void *data);

/* Fork the child, which unshares and waits; write its map. With fn the child runs fn once
 * told to go and exits with its return value; a closed socket makes it exit 99. */
static void
ns_child_start (ns_child *c, ns_fn fn, void *data)
{
  int sv[2];
  assert_int_equal (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  pid_t pid = fork ();
  assert_true (pid >= 0);
  if (pid == 0)
    {
      close (sv[0]);
      char byte = unshare (CLONE_NEWUSER | CLONE_NEWNET) == 0 ? 'u' : 'x';
      if (write (sv[1], &byte, 1) != 1 || byte != 'u')
        _exit (98);
      if (read (sv[1], &byte, 1) != 1 || byte != 'g')
        _exit (99);
      _exit (fn != NULL ? fn (data) : 0);
    }
  close (sv[1]);
  char byte = 0;
  assert_int_equal (read (sv[0], &byte, 1), 1);
  assert_int_equal (byte, 'u');
  kp_idmap map;
  kp_idmap_single (&map, getuid (), getgid (), 0, 0);
  kp_cleanup_error kp_error *err = NULL;
  int r = kp_idmap_apply (&map, pid, &err);
  if (r < 0)
    fprintf (stderr, "map: %s\n", err->message);
  assert_int_equal (r, 0);
  c->pid = pid;
  c->ctl = sv[0];
}

/* Tell the child to go and return its exit status (asserting it exited). */
static int
ns_child_finish (ns_child *c)
{
  char go = 'g';
  assert_int_equal (write (c->ctl, &go, 1), 1);
  close (c->ctl);
  int status = wait_for (c->pid, 60000);
  assert_true (status >= 0);
  assert_true (WIFEXITED (status));
  return WEXITSTATUS (status);
}

static bool
interface_up (int fd, const char *name)
{
  struct ifreq ifr;
  memset (&ifr, 0, sizeof ifr);
  snprintf (ifr.ifr_name, sizeof ifr.ifr_name, "%s", name);
  return ioctl (fd, SIOCGIFFLAGS, &ifr) == 0 && (ifr.ifr_flags & IFF_UP) != 0;
}

/* Connect within timeout_ms; the socket, or -1 with errno set. */
static int
connect_within (const struct sockaddr_in *addr, int timeout_ms)
{
  int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0)
    return -1;
  if (connect (fd, (const struct sockaddr *) addr, sizeof *addr) < 0 && errno != EINPROGRESS)
    goto fail;
  struct pollfd p = { .fd = fd, .events = POLLOUT };
  int r = poll (&p, 1, timeout_ms);
  if (r == 0)
    errno = ETIMEDOUT;
  if (r <= 0)
    goto fail;
  int so_error = 0;
  socklen_t len = sizeof so_error;
  if (getsockopt (fd, SOL_SOCKET, SO_ERROR, &so_error, &len) < 0)
    goto fail;
  if (so_error != 0)
    {
      errno = so_error;
      goto fail;
    }
  int flags = fcntl (fd, F_GETFL);
  fcntl (fd, F_SETFL, flags & ~O_NONBLOCK);
  struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
  setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
fail:;
  int e = errno;
  close (fd);
  errno = e;
  return -1;
}

/* A TCP listener on addr (port 0: any), its address filled in. */
static int
listen_on (struct sockaddr_in *addr)
{
  int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true (fd >= 0);
  assert_int_equal (bind (fd, (struct sockaddr *) addr, sizeof *addr), 0);
  assert_int_equal (listen (fd, 4), 0);
  socklen_t len = sizeof *addr;
  assert_int_equal (getsockname (fd, (struct sockaddr *) addr, &len), 0);
  return fd;
}

/* What a failed assertion leaves behind in a user-mode test; the teardown cleans it up so
 * that one failure does not cascade into the next test. */
static struct
{
  kp_usernet *usernet;
  pid_t child;
} leftover;

static int
teardown_usernet (void **state KP_UNUSED)
{
  kp_usernet_stop (leftover.usernet);
  leftover.usernet = NULL;
  if (leftover.child > 0)
    {
      kill (leftover.child, SIGKILL);
      waitpid (leftover.child, NULL, 0);
      leftover.child = 0;
    }
  unsetenv ("KARAPACE_USERNET");
  prctl (PR_SET_CHILD_SUBREAPER, 0);
  while (waitpid (-1, NULL, WNOHANG) > 0)
    ;
  return 0;
}

/* ---- mode names ---------------------------------------------------------------------- */

static void
test_mode_names (void **state KP_UNUSED)
{
  assert_string_equal (kp_net_mode_name (KP_NET_HOST), "host");
  assert_string_equal (kp_net_mode_name (KP_NET_NONE), "none");
  assert_string_equal (kp_net_mode_name (KP_NET_USER), "user");
  assert_string_equal (kp_net_mode_name ((kp_net_mode) 17), "?");
  const kp_net_mode modes[] = { KP_NET_HOST, KP_NET_NONE, KP_NET_USER };
  for (size_t i = 0; i < KP_N_ELEMENTS (modes); i++)
    {
      kp_net_mode m = (kp_net_mode) 42;
      assert_int_equal (kp_net_mode_from_name (kp_net_mode_name (modes[i]), &m), 0);
      assert_int_equal (m, modes[i]);
    }
  kp_net_mode m = KP_NET_USER;
  assert_int_equal (kp_net_mode_from_name ("slirp", &m), -1);
  assert_int_equal (kp_net_mode_from_name ("Host", &m), -1);
  assert_int_equal (kp_net_mode_from_name ("", &m), -1);
  assert_int_equal (kp_net_mode_from_name (NULL, &m), -1);
  assert_int_equal (m, KP_NET_USER); /* untouched on failure */
}

/* ---- /etc/resolv.conf and /etc/hosts -------------------------------------------------- */

#define RESOLVED_HOST                                                                        \
  "# This is /run/systemd/resolve/stub-resolv.conf\n"                                        \
  "nameserver 127.0.0.53\n"                                                                  \
  "options edns0 trust-ad\n"                                                                 \
  "search example.org\n"

static void
test_resolv_conf_host_and_none (void **state KP_UNUSED)
{
  kp_cleanup_free char *host = kp_net_resolv_conf (KP_NET_HOST, NULL, RESOLVED_HOST);
  assert_string_equal (host, RESOLVED_HOST);
  kp_cleanup_free char *host_missing = kp_net_resolv_conf (KP_NET_HOST, NULL, NULL);
  assert_int_equal (count_lines_starting (host_missing, "nameserver"), 0);
  assert_true (host_missing[0] == '#');

  kp_cleanup_free char *none = kp_net_resolv_conf (KP_NET_NONE, NULL, RESOLVED_HOST);
  assert_int_equal (count_lines_starting (none, "nameserver"), 0);
  assert_non_null (strstr (none, "\"none\""));
  assert_int_equal (count_lines_starting (none, "#"), 1);
}

static void
test_resolv_conf_user_text (void **state KP_UNUSED)
{
  /* Without a helper there is no forwarder: loopback nameservers go, nothing replaces
     them, the rest is kept. */
  kp_cleanup_free char *user = kp_net_resolv_conf (KP_NET_USER, NULL, RESOLVED_HOST);
  assert_int_equal (count_lines_starting (user, "nameserver"), 0);
  assert_int_equal (count_lines_starting (user, "options edns0 trust-ad"), 1);
  assert_int_equal (count_lines_starting (user, "search example.org"), 1);
  assert_non_null (strstr (user, "# nameserver 127.0.0.53:"));

  /* Reachable nameservers are the host's, unchanged and in order. */
  const char *remote = "nameserver 192.0.2.53\nnameserver\t198.51.100.1 # backup\n";
  kp_cleanup_free char *kept = kp_net_resolv_conf (KP_NET_USER, NULL, remote);
  assert_non_null (strstr (kept, remote));
  assert_int_equal (count_lines_starting (kept, "nameserver"), 2);

  /* IPv6 ones (loopback or not, with a zone) cannot be reached either; a last line
     without newline is still a line. */
  const char *mixed = "nameserver ::1\nnameserver fe80::1%eth0\nnameserver 127.1.2.3";
  kp_cleanup_free char *none_left = kp_net_resolv_conf (KP_NET_USER, NULL, mixed);
  assert_int_equal (count_lines_starting (none_left, "nameserver"), 0);
  assert_int_equal (count_lines_starting (none_left, "# nameserver"), 3);

  /* "nameservers" is not the keyword; not-an-address is kept as written. */
  const char *odd = "nameservers 127.0.0.1\nnameserver localhost\n";
  kp_cleanup_free char *odd_out = kp_net_resolv_conf (KP_NET_USER, NULL, odd);
  assert_non_null (strstr (odd_out, odd));

  kp_cleanup_free char *empty = kp_net_resolv_conf (KP_NET_USER, NULL, NULL);
  assert_int_equal (count_lines_starting (empty, "nameserver"), 0);
  assert_int_equal (empty[strlen (empty) - 1], '\n');
}

/* With a helper: the forwarder replaces the unreachable nameservers, once. */
static void
check_resolv_conf_with_helper (const kp_usernet *n)
{
  assert_string_equal (kp_usernet_dns (n), KP_USERNET_DNS);
  kp_cleanup_free char *user = kp_net_resolv_conf (KP_NET_USER, n, RESOLVED_HOST);
  assert_int_equal (count_lines_starting (user, "nameserver"), 1);
  assert_int_equal (count_lines_starting (user, "nameserver " KP_USERNET_DNS "\n"), 1);
  assert_int_equal (count_lines_starting (user, "options edns0 trust-ad\n"), 1);
  assert_int_equal (count_lines_starting (user, "search example.org\n"), 1);
  assert_non_null (strstr (user, kp_usernet_tool (n)));

  const char *mixed = "nameserver 127.0.0.1\nnameserver 192.0.2.53\nnameserver ::1\n";
  kp_cleanup_free char *out = kp_net_resolv_conf (KP_NET_USER, n, mixed);
  assert_int_equal (count_lines_starting (out, "nameserver"), 2);
  assert_non_null (strstr (out, "nameserver " KP_USERNET_DNS "\nnameserver 192.0.2.53\n"));

  const char *remote = "nameserver 192.0.2.53\n";
  kp_cleanup_free char *kept = kp_net_resolv_conf (KP_NET_USER, n, remote);
  assert_int_equal (count_lines_starting (kept, "nameserver"), 1);
  assert_null (strstr (kept, KP_USERNET_DNS));

  kp_cleanup_free char *none = kp_net_resolv_conf (KP_NET_USER, n, NULL);
  assert_int_equal (count_lines_starting (none, "nameserver " KP_USERNET_DNS "\n"), 1);
}

static void
test_hosts_text (void **state KP_UNUSED)
{
  kp_cleanup_free char *plain = kp_net_hosts ("devbox");
  assert_int_equal (count_lines_starting (plain, "127.0.0.1\tlocalhost\n"), 1);
  assert_int_equal (count_lines_starting (plain, "::1\tlocalhost"), 1);
  assert_int_equal (count_lines_starting (plain, "127.0.1.1\tdevbox\n"), 1);

  kp_cleanup_free char *dotted = kp_net_hosts ("dev.example.org");
  assert_int_equal (count_lines_starting (dotted, "127.0.1.1\tdev.example.org dev\n"), 1);

  const char *bad[] = { NULL, "", "two words", "evil\n127.0.0.1 bank.example", "-x" };
  for (size_t i = 0; i < KP_N_ELEMENTS (bad); i++)
    {
      kp_cleanup_free char *text = kp_net_hosts (bad[i]);
      assert_int_equal (count_lines_starting (text, "127.0.1.1"), 0);
      assert_int_equal (count_lines_starting (text, "127.0.0.1\tlocalhost\n"), 1);
      assert_null (strstr (text, "bank"));
    }
}

/* ---- loopback ------------------------------------------------------------------------- */

static int
loopback_child (void *data KP_UNUSED)
{
  int fd = socket (AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return 10;
  if (interface_up (fd, "lo"))
    return 11; /* a fresh namespace starts with lo down */
  kp_cleanup_error kp_error *err = NULL;
  if (kp_net_loopback_up (&err) < 0)
    {
      fprintf (stderr, "loopback: %s\n", err->message);
      return 12;
    }
  if (!interface_up (fd, "lo"))
    return 13;
  if (kp_net_loopback_up (&err) < 0) /* again: nothing to do */
    return 14;

  struct sockaddr_in addr = { .sin_family = AF_INET };
  addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  int lfd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  socklen_t len = sizeof addr;
  if (lfd < 0 || bind (lfd, (struct sockaddr *) &addr, sizeof addr) < 0 || listen (lfd, 1) < 0
      || getsockname (lfd, (struct sockaddr *) &addr, &len) < 0)
    return 15;
  int c = connect_within (&addr, 5000);
  if (c < 0)
    return 16;
  int a = accept (lfd, NULL, NULL);
  char buf[4] = { 0 };
  if (a < 0 || write (c, "ping", 4) != 4 || read (a, buf, 4) != 4 || memcmp (buf, "ping", 4))
    return 17;
  return 0;
}

static void
test_loopback_up (void **state KP_UNUSED)
{
  SKIP_WITHOUT_USERNS ();
  ns_child c;
  ns_child_start (&c, loopback_child, NULL);
  assert_int_equal (ns_child_finish (&c), 0);
}

/* ---- user-mode networking ------------------------------------------------------------- */

typedef struct reach_ctx
{
  struct sockaddr_in host;     /* a listener on the host's non-loopback address */
  struct sockaddr_in loopback; /* a listener on the host's 127.0.0.1 */
} reach_ctx;

static int
reach_child (void *data)
{
  const reach_ctx *ctx = data;
  int fd = socket (AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return 20;
  struct ifreq ifr;
  memset (&ifr, 0, sizeof ifr);
  snprintf (ifr.ifr_name, sizeof ifr.ifr_name, "%s", KP_USERNET_IFNAME);
  if (!interface_up (fd, KP_USERNET_IFNAME))
    return 21;
  if (ioctl (fd, SIOCGIFADDR, &ifr) < 0)
    return 22;
  char text[INET_ADDRSTRLEN];
  inet_ntop (AF_INET, &((struct sockaddr_in *) &ifr.ifr_addr)->sin_addr, text, sizeof text);
  if (strcmp (text, KP_USERNET_ADDRESS) != 0)
    {
      fprintf (stderr, "tap0 has %s\n", text);
      return 23;
    }

  int c = connect_within (&ctx->host, 10000);
  if (c < 0)
    {
      fprintf (stderr, "connect to the host: %s\n", strerror (errno));
      return 24;
    }
  char buf[4] = { 0 };
  if (write (c, "ping", 4) != 4 || read (c, buf, 4) != 4 || memcmp (buf, "pong", 4) != 0)
    return 25;
  close (c);

  /* The gateway does not lead to the host's loopback: the caller checks that its
     listener there saw no connection. (The connection itself may succeed: with the
     gateway not mapped to the host, pasta takes the address for a remote one, and a
     network in front of this machine may answer for it.) */
  struct sockaddr_in gw = ctx->loopback;
  inet_pton (AF_INET, KP_USERNET_GATEWAY, &gw.sin_addr);
  c = connect_within (&gw, 2000);
  if (c >= 0)
    close (c);
  return 0;
}

/* The host's first non-loopback IPv4 address that is up, or false. */
static bool
host_address (struct in_addr *out)
{
  struct ifaddrs *list;
  if (getifaddrs (&list) < 0)
    return false;
  bool found = false;
  for (struct ifaddrs *i = list; i != NULL && !found; i = i->ifa_next)
    if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET && (i->ifa_flags & IFF_UP)
        && !(i->ifa_flags & IFF_LOOPBACK))
      {
        *out = ((struct sockaddr_in *) i->ifa_addr)->sin_addr;
        found = true;
      }
  freeifaddrs (list);
  return found;
}

static bool
use_tool (const char *tool)
{
  kp_cleanup_free char *path = kp_find_program (tool);
  if (path == NULL)
    {
      fprintf (stderr, "skip %s: not installed (package %s)\n", tool,
               strcmp (tool, "pasta") == 0 ? "passt" : tool);
      return false;
    }
  setenv ("KARAPACE_USERNET", tool, 1);
  return true;
}

static void
usernet_reach (const char *tool)
{
  SKIP_WITHOUT_USERNS ();
  if (!use_tool (tool))
    skip ();
  reach_ctx ctx = { .host = { .sin_family = AF_INET }, .loopback = { .sin_family = AF_INET } };
  if (!host_address (&ctx.host.sin_addr))
    {
      fprintf (stderr, "skip: the host has no non-loopback IPv4 address to connect to\n");
      skip ();
    }
  kp_cleanup_close int host_fd = listen_on (&ctx.host);
  ctx.loopback.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  kp_cleanup_close int loop_fd = listen_on (&ctx.loopback);

  ns_child c;
  ns_child_start (&c, reach_child, &ctx);
  leftover.child = c.pid;
  kp_cleanup_error kp_error *err = NULL;
  kp_usernet *n = kp_usernet_start (c.pid, &err);
  if (n == NULL)
    fprintf (stderr, "%s: %s\n", tool, err->message);
  assert_non_null (n);
  leftover.usernet = n;
  assert_string_equal (kp_usernet_tool (n), tool);
  pid_t helper = kp_usernet_pid (n);
  assert_true (helper > 0);
  assert_int_equal (helpers_for (c.pid), 1);
  check_resolv_conf_with_helper (n);

  char go = 'g';
  assert_int_equal (write (c.ctl, &go, 1), 1);
  struct pollfd p = { .fd = host_fd, .events = POLLIN };
  assert_int_equal (poll (&p, 1, 15000), 1);
  kp_cleanup_close int a = accept4 (host_fd, NULL, NULL, SOCK_CLOEXEC);
  assert_true (a >= 0);
  char buf[4] = { 0 };
  assert_int_equal (read (a, buf, 4), 4);
  assert_memory_equal (buf, "ping", 4);
  assert_int_equal (write (a, "pong", 4), 4);

  close (c.ctl);
  int status = wait_for (c.pid, 30000);
  assert_true (WIFEXITED (status));
  assert_int_equal (WEXITSTATUS (status), 0);
  leftover.child = 0;
  /* Nothing reached the host's loopback listener. */
  struct pollfd lp = { .fd = loop_fd, .events = POLLIN };
  assert_int_equal (poll (&lp, 1, 0), 0);

  kp_usernet_stop (n);
  leftover.usernet = NULL;
  assert_int_equal (kill (helper, 0), -1);
  assert_int_equal (errno, ESRCH);
  assert_int_equal (helpers_for (c.pid), 0);
  assert_int_equal (waitpid (-1, NULL, WNOHANG), -1); /* no child of ours is left */
  unsetenv ("KARAPACE_USERNET");
}

static void
test_usernet_pasta (void **state KP_UNUSED)
{
  usernet_reach ("pasta");
}

static void
test_usernet_slirp4netns (void **state KP_UNUSED)
{
  usernet_reach ("slirp4netns");
}

/* The caller is killed with SIGKILL while the helper runs: the helper goes too. The test
 * is a subreaper, so the orphaned helper comes to it and can be waited for. */
static void
caller_killed (const char *tool)
{
  int report[2];
  assert_int_equal (pipe2 (report, O_CLOEXEC), 0);
  assert_int_equal (prctl (PR_SET_CHILD_SUBREAPER, 1), 0);
  pid_t caller = fork ();
  assert_true (caller >= 0);
  if (caller == 0)
    {
      close (report[0]);
      ns_child c;
      ns_child_start (&c, NULL, NULL); /* never told to go: exits when c.ctl closes */
      kp_cleanup_error kp_error *err = NULL;
      kp_usernet *n = kp_usernet_start (c.pid, &err);
      pid_t pids[2] = { c.pid, n != NULL ? kp_usernet_pid (n) : -1 };
      if (write (report[1], pids, sizeof pids) != sizeof pids)
        _exit (1);
      pause ();
      _exit (0);
    }
  close (report[1]);
  leftover.child = caller;
  pid_t pids[2];
  assert_int_equal (read (report[0], pids, sizeof pids), sizeof pids);
  close (report[0]);
  assert_true (pids[1] > 0);
  assert_int_equal (helpers_for (pids[0]), 1);

  assert_int_equal (kill (caller, SIGKILL), 0);
  assert_int_equal (waitpid (caller, NULL, 0), caller);
  leftover.child = 0;
  int status = wait_for (pids[1], 5000);
  if (status < 0)
    fprintf (stderr, "%s outlived its caller\n", tool);
  assert_true (status >= 0);
  assert_true (wait_for (pids[0], 5000) >= 0);
  assert_int_equal (helpers_for (pids[0]), 0);
  assert_int_equal (prctl (PR_SET_CHILD_SUBREAPER, 0), 0);
}

static void
test_usernet_dies_with_caller (void **state KP_UNUSED)
{
  SKIP_WITHOUT_USERNS ();
  int ran = 0;
  for (size_t i = 0; i < KP_N_ELEMENTS (tools); i++)
    if (use_tool (tools[i]))
      {
        caller_killed (tools[i]);
        ran++;
      }
  unsetenv ("KARAPACE_USERNET");
  if (ran == 0)
    skip ();
}

/* A helper that fails says which tool, how, and what to do; nothing is left running. */
static void
test_usernet_failure (void **state KP_UNUSED)
{
  /* A process that no longer exists: its namespaces cannot be joined. */
  pid_t gone = fork ();
  assert_true (gone >= 0);
  if (gone == 0)
    _exit (0);
  assert_int_equal (waitpid (gone, NULL, 0), gone);

  int ran = 0;
  for (size_t i = 0; i < KP_N_ELEMENTS (tools); i++)
    {
      if (!use_tool (tools[i]))
        continue;
      ran++;
      kp_cleanup_error kp_error *err = NULL;
      assert_null (kp_usernet_start (gone, &err));
      assert_non_null (err);
      if (getenv ("KP_TEST_VERBOSE"))
        fprintf (stderr, "%s\n  hint: %s\n", err->message, err->hint);
      assert_int_equal (err->status, KP_EXIT_RUNTIME);
      assert_non_null (strstr (err->message, tools[i]));
      assert_non_null (strstr (err->message, "exited with status"));
      assert_non_null (err->hint);
      assert_int_equal (waitpid (-1, NULL, WNOHANG), -1);
    }

  setenv ("KARAPACE_USERNET", "vde", 1);
  kp_cleanup_error kp_error *err = NULL;
  assert_null (kp_usernet_start (gone, &err));
  assert_int_equal (err->status, KP_EXIT_RUNTIME);
  assert_non_null (strstr (err->message, "'vde'"));
  assert_non_null (err->hint);

  unsetenv ("KARAPACE_USERNET");
  if (ran == 0)
    {
      fprintf (stderr, "skip: neither pasta nor slirp4netns is installed\n");
      skip ();
    }
}

int
main (void)
{
  /* A helper killed under us must not take the test down with SIGPIPE. */
  signal (SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_mode_names),
    cmocka_unit_test (test_resolv_conf_host_and_none),
    cmocka_unit_test (test_resolv_conf_user_text),
    cmocka_unit_test (test_hosts_text),
    cmocka_unit_test (test_loopback_up),
    cmocka_unit_test_teardown (test_usernet_pasta, teardown_usernet),
    cmocka_unit_test_teardown (test_usernet_slirp4netns, teardown_usernet),
    cmocka_unit_test_teardown (test_usernet_dies_with_caller, teardown_usernet),
    cmocka_unit_test_teardown (test_usernet_failure, teardown_usernet),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
