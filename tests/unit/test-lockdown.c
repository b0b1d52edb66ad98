/* test-lockdown.c — the sandbox's last steps before exec: the seccomp profiles, the
 * capability sets, the privilege-drop sequence, descriptor cleanup and the environment.
 *
 * Every check that changes the process (a filter, dropped capabilities, closed
 * descriptors) runs in a forked child, so the test runner itself is never locked down.
 * A child reports through its exit status: 0 passed, 77 skipped (with the reason printed
 * on stderr), anything else failed (with the failed check printed). Runs as root (CI) and
 * as an unprivileged user; a check that needs the other case skips and says why. Where a
 * call would fail with EPERM even without a filter (an unprivileged caller), a control
 * child runs it unfiltered first and the test says which calls prove the filter. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "base/fs.h"
#include "policy/policy.h"
#include "sandbox/caps.h"
#include "sandbox/environ.h"
#include "sandbox/seccomp.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/keyctl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

extern char **environ;

#define CHILD_SKIP 77

/* A failed check inside a child: say what and where, then end the child. */
#define CHECK(cond)                                                                          \
  do                                                                                         \
    {                                                                                        \
      if (!(cond))                                                                           \
        {                                                                                    \
          int saved_ = errno;                                                                \
          fprintf (stderr, "%s:%d: check failed: %s (errno %s)\n", __FILE__, __LINE__,      \
                   #cond, strerrorname_np (saved_) ? strerrorname_np (saved_) : "0");       \
          _exit (1);                                                                         \
        }                                                                                    \
    }                                                                                        \
  while (0)

/* The call fails with exactly this errno. */
#define CHECK_FAILS(expr, e)                                                                 \
  do                                                                                         \
    {                                                                                        \
      errno = 0;                                                                             \
      long rc_ = (long) (expr);                                                              \
      if (rc_ != -1 || errno != (e))                                                         \
        {                                                                                    \
          fprintf (stderr, "%s:%d: %s returned %ld (errno %s), expected -1/%s\n", __FILE__,  \
                   __LINE__, #expr, rc_, strerrorname_np (errno) ? strerrorname_np (errno) : "0", \
                   strerrorname_np (e));                                                     \
          _exit (1);                                                                         \
        }                                                                                    \
    }                                                                                        \
  while (0)

static void
child_skip (const char *why)
{
  fprintf (stderr, "skip: %s\n", why);
  _exit (CHILD_SKIP);
}

static void
child_load (kp_seccomp_profile profile)
{
  kp_error *err = NULL;
  if (kp_seccomp_load (profile, &err) < 0)
    {
      fprintf (stderr, "kp_seccomp_load: %s\n", err->message);
      _exit (1);
    }
}

static void
child_lockdown (const kp_lockdown *spec)
{
  kp_error *err = NULL;
  if (kp_lockdown_apply (spec, &err) < 0)
    {
      fprintf (stderr, "kp_lockdown_apply: %s\n", err->message);
      _exit (1);
    }
}

/* Run fn in a forked child and turn its exit into pass, skip or fail. */
static void
in_child (void (*fn) (void *), void *data)
{
  fflush (NULL);
  pid_t pid = fork ();
  assert_true (pid >= 0);
  if (pid == 0)
    {
      fn (data);
      _exit (0);
    }
  int status;
  while (waitpid (pid, &status, 0) < 0)
    assert_int_equal (errno, EINTR);
  if (WIFSIGNALED (status))
    fail_msg ("child killed by signal %d", WTERMSIG (status));
  if (WEXITSTATUS (status) == CHILD_SKIP)
    skip ();
  assert_int_equal (WEXITSTATUS (status), 0);
}

/* Run fn in a forked child and return its raw wait status (for the x86 32-bit checks,
 * where being killed is an acceptable answer). */
static int
child_status (void (*fn) (void *), void *data)
{
  fflush (NULL);
  pid_t pid = fork ();
  assert_true (pid >= 0);
  if (pid == 0)
    {
      fn (data);
      _exit (0);
    }
  int status;
  while (waitpid (pid, &status, 0) < 0)
    assert_int_equal (errno, EINTR);
  return status;
}

/* The value of "Field:" in /proc/self/status, as text. */
static void
status_field (const char *field, char *out, size_t size)
{
  FILE *f = fopen ("/proc/self/status", "re");
  CHECK (f != NULL);
  char line[256];
  size_t n = strlen (field);
  out[0] = '\0';
  while (fgets (line, sizeof line, f))
    if (strncmp (line, field, n) == 0 && line[n] == ':')
      {
        const char *v = line + n + 1;
        while (*v == ' ' || *v == '\t')
          v++;
        snprintf (out, size, "%.*s", (int) strcspn (v, "\n"), v);
        break;
      }
  fclose (f);
  CHECK (out[0] != '\0');
}

static uint64_t
status_hex (const char *field)
{
  char v[64];
  status_field (field, v, sizeof v);
  return strtoull (v, NULL, 16);
}

static long
status_long (const char *field)
{
  char v[64];
  status_field (field, v, sizeof v);
  return strtol (v, NULL, 10);
}

/* ---- the denied calls, each harmless if it ever got through --------------------------- */

typedef struct denied_call
{
  const char *name;
  long (*call) (void);
} denied_call;

static long
call_init_module (void)
{
  return syscall (SYS_init_module, NULL, 0, "");
}
static long
call_finit_module (void)
{
  return syscall (SYS_finit_module, -1, "", 0);
}
static long
call_delete_module (void)
{
  return syscall (SYS_delete_module, "kp_no_such_module", O_NONBLOCK);
}
static long
call_kexec_load (void)
{
  return syscall (SYS_kexec_load, 0, 0, NULL, 0xffff0000ul); /* invalid flags */
}
static long
call_kexec_file_load (void)
{
  return syscall (SYS_kexec_file_load, -1, -1, 0, "", 0xffff0000ul);
}
static long
call_keyctl (void)
{
  return syscall (SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0);
}
static long
call_add_key (void)
{
  return syscall (SYS_add_key, "user", "kp-test", "x", 1, KEY_SPEC_PROCESS_KEYRING);
}
static long
call_request_key (void)
{
  return syscall (SYS_request_key, "user", "kp-no-such-key", NULL, 0);
}
static long
call_reboot (void)
{
  return syscall (SYS_reboot, 0, 0, 0, NULL); /* wrong magic numbers */
}
static long
call_swapon (void)
{
  return syscall (SYS_swapon, "/kp-no-such-swap", 0);
}
static long
call_swapoff (void)
{
  return syscall (SYS_swapoff, "/kp-no-such-swap");
}
static long
call_open_by_handle_at (void)
{
  return syscall (SYS_open_by_handle_at, -1, NULL, 0);
}
static long
call_bpf (void)
{
  return syscall (SYS_bpf, -1, NULL, 0);
}
static long
call_perf_event_open (void)
{
  return syscall (SYS_perf_event_open, NULL, 0, -1, -1, 0);
}
static long
call_unshare_user (void)
{
  return syscall (SYS_unshare, CLONE_NEWUSER);
}
static long
call_setns (void)
{
  return syscall (SYS_setns, -1, 0);
}
static long
call_mount (void)
{
  return syscall (SYS_mount, "none", "/kp-no-such-dir", "tmpfs", 0, NULL);
}

static const denied_call always_denied[] = {
  { "init_module", call_init_module },
  { "finit_module", call_finit_module },
  { "delete_module", call_delete_module },
  { "kexec_load", call_kexec_load },
  { "kexec_file_load", call_kexec_file_load },
  { "reboot", call_reboot },
  { "swapon", call_swapon },
  { "swapoff", call_swapoff },
  { "open_by_handle_at", call_open_by_handle_at },
  { "bpf", call_bpf },
  { "perf_event_open", call_perf_event_open },
};
static const denied_call keyring_calls[] = {
  { "keyctl", call_keyctl },
  { "add_key", call_add_key },
  { "request_key", call_request_key },
};
static const denied_call default_only[] = {
  { "unshare(CLONE_NEWUSER)", call_unshare_user },
  { "setns", call_setns },
  { "mount", call_mount },
};

static void
check_denied (const denied_call *calls, size_t n, int expected)
{
  for (size_t i = 0; i < n; i++)
    {
      errno = 0;
      long rc = calls[i].call ();
      if (rc != -1 || errno != expected)
        {
          fprintf (stderr, "%s returned %ld (errno %s), expected -1/%s\n", calls[i].name, rc,
                   errno ? strerrorname_np (errno) : "0", strerrorname_np (expected));
          _exit (1);
        }
    }
}

/* How many of the calls already fail with EPERM without any filter (then EPERM under the
 * filter proves nothing about it). Runs them in a child: some change that child. */
typedef struct control_data
{
  const denied_call *calls;
  size_t n;
  int pipe_fd;
} control_data;

static void
control_child (void *data)
{
  control_data *c = data;
  char out[64] = { 0 };
  for (size_t i = 0; i < c->n && i < sizeof out; i++)
    {
      errno = 0;
      long rc = c->calls[i].call ();
      out[i] = (rc == -1 && errno == EPERM) ? 'P' : '-';
    }
  CHECK (write (c->pipe_fd, out, c->n) == (ssize_t) c->n);
}

static size_t
count_unfiltered_eperm (const denied_call *calls, size_t n, kp_buf *names)
{
  int p[2];
  assert_int_equal (pipe2 (p, O_CLOEXEC), 0);
  control_data c = { calls, n, p[1] };
  assert_int_equal (child_status (control_child, &c), 0);
  close (p[1]);
  char out[64] = { 0 };
  assert_int_equal (read (p[0], out, sizeof out), (ssize_t) n);
  close (p[0]);
  size_t count = 0;
  for (size_t i = 0; i < n; i++)
    if (out[i] == 'P')
      {
        count++;
        kp_buf_printf (names, "%s%s", names->len ? " " : "", calls[i].name);
      }
  return count;
}

/* ---- seccomp ------------------------------------------------------------------------- */

static void
test_profile_names (void **state)
{
  kp_seccomp_profile p;
  assert_int_equal (kp_seccomp_profile_from_name ("default", &p), 0);
  assert_int_equal (p, KP_SECCOMP_DEFAULT);
  assert_int_equal (kp_seccomp_profile_from_name ("nesting", &p), 0);
  assert_int_equal (p, KP_SECCOMP_NESTING);
  assert_int_equal (kp_seccomp_profile_from_name ("none", &p), 0);
  assert_int_equal (p, KP_SECCOMP_NONE);
  assert_int_equal (kp_seccomp_profile_from_name ("strict", &p), -1);
  assert_string_equal (kp_seccomp_profile_name (KP_SECCOMP_NESTING), "nesting");

  kp_error *err = NULL;
  assert_int_equal (kp_seccomp_load ((kp_seccomp_profile) 42, &err), -1);
  assert_non_null (strstr (err->message, "unknown profile"));
  kp_error_free (err);
}

static void *
thread_main (void *arg)
{
  return arg;
}

static void
default_denies_child (void *data)
{
  child_load (KP_SECCOMP_DEFAULT);
  char v[32];
  status_field ("Seccomp", v, sizeof v);
  CHECK (strcmp (v, "2") == 0);
  check_denied (always_denied, KP_N_ELEMENTS (always_denied), EPERM);
  check_denied (keyring_calls, KP_N_ELEMENTS (keyring_calls), EPERM);
  check_denied (default_only, KP_N_ELEMENTS (default_only), EPERM);
  /* clone3 answers ENOSYS so the C library falls back to clone, which is checked. */
  CHECK_FAILS (syscall (SYS_clone3, NULL, 0), ENOSYS);
  /* A namespace flag hidden among ordinary clone flags is still found. */
  CHECK_FAILS (syscall (SYS_unshare, CLONE_FILES | CLONE_NEWNET), EPERM);

  /* Ordinary work goes on: files, fork, threads, spawning a program. */
  int fd = open ("/dev/null", O_WRONLY | O_CLOEXEC);
  CHECK (fd >= 0);
  CHECK (write (fd, "x", 1) == 1);
  close (fd);
  CHECK (syscall (SYS_unshare, CLONE_FILES) == 0);
  pid_t pid = fork ();
  CHECK (pid >= 0);
  if (pid == 0)
    _exit (7);
  int status;
  CHECK (waitpid (pid, &status, 0) == pid && WIFEXITED (status) && WEXITSTATUS (status) == 7);
  pthread_t t;
  void *ret = NULL;
  CHECK (pthread_create (&t, NULL, thread_main, (void *) 0x5) == 0);
  CHECK (pthread_join (t, &ret) == 0 && ret == (void *) 0x5);
  char *argv[] = { (char *) "true", NULL };
  CHECK (posix_spawnp (&pid, "true", NULL, NULL, argv, environ) == 0);
  CHECK (waitpid (pid, &status, 0) == pid && WIFEXITED (status) && WEXITSTATUS (status) == 0);
}

static void
test_default_denies (void **state)
{
  kp_cleanup_buf kp_buf names = KP_BUF_INIT;
  size_t n = count_unfiltered_eperm (always_denied, KP_N_ELEMENTS (always_denied), &names);
  if (n > 0)
    printf ("note: without a filter %zu of %zu calls already fail with EPERM here (%s); the "
            "keyring and namespace calls below prove the filter\n",
            n, KP_N_ELEMENTS (always_denied), kp_buf_str (&names));
  kp_buf_clear (&names);
  /* The keyring is open to every user and unshare(CLONE_NEWUSER) works rootless here, so
   * their EPERM must come from the filter. */
  size_t k = count_unfiltered_eperm (keyring_calls, KP_N_ELEMENTS (keyring_calls), &names);
  assert_int_equal (k, 0);
  in_child (default_denies_child, NULL);
}

static void
nesting_child (void *data)
{
  child_load (KP_SECCOMP_NESTING);
  check_denied (always_denied, KP_N_ELEMENTS (always_denied), EPERM);
  /* Keyrings answer "not implemented", which container runtimes treat as optional. */
  check_denied (keyring_calls, KP_N_ELEMENTS (keyring_calls), ENOSYS);
  bool *userns_ok = data;
  if (!*userns_ok)
    child_skip ("this kernel or user cannot create user namespaces even without a filter");
  CHECK (unshare (CLONE_NEWUSER) == 0);
  CHECK (unshare (CLONE_NEWNS) == 0); /* root of the new user namespace */
  CHECK (mount ("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0);
}

static void
userns_probe_child (void *data)
{
  if (unshare (CLONE_NEWUSER) < 0)
    _exit (1);
}

static void
test_nesting_allows_namespaces (void **state)
{
  bool userns_ok = child_status (userns_probe_child, NULL) == 0;
  in_child (nesting_child, &userns_ok);
}

/* A terminal of our own: the pty's secondary side as this child's controlling terminal,
 * where TIOCSTI works without a filter (unless the kernel disabled it for everyone). */
static int
open_controlling_pty (void)
{
  int master = posix_openpt (O_RDWR | O_NOCTTY | O_CLOEXEC);
  CHECK (master >= 0);
  CHECK (grantpt (master) == 0 && unlockpt (master) == 0);
  CHECK (setsid () >= 0);
  const char *name = ptsname (master);
  CHECK (name != NULL);
  int tty = open (name, O_RDWR | O_CLOEXEC); /* no O_NOCTTY: becomes ours */
  CHECK (tty >= 0);
  return tty;
}

static void
tiocsti_control_child (void *data)
{
  int tty = open_controlling_pty ();
  char c = 'x';
  errno = 0;
  int rc = ioctl (tty, TIOCSTI, &c);
  /* 0: injected; EIO: dev.tty.legacy_tiocsti=0. Either way not EPERM. */
  _exit (rc == 0 ? 0 : errno == EIO ? 2 : errno == EPERM ? 3 : 4);
}

static void
tiocsti_child (void *data)
{
  int tty = open_controlling_pty ();
  child_load (KP_SECCOMP_DEFAULT);
  char c = 'x';
  CHECK_FAILS (ioctl (tty, TIOCSTI, &c), EPERM);
  /* The kernel reads the request as 32 bits; garbage above them changes nothing. */
  CHECK_FAILS (syscall (SYS_ioctl, tty, (1ul << 32) | TIOCSTI, &c), EPERM);
  char sel = 2; /* TIOCL_SETSEL-style subcode: refused before it is read */
  CHECK_FAILS (ioctl (tty, TIOCLINUX, &sel), EPERM);
  /* Other terminal requests still work. */
  struct termios t;
  CHECK (tcgetattr (tty, &t) == 0);
  struct winsize ws;
  CHECK (ioctl (tty, TIOCGWINSZ, &ws) == 0);
}

static void
test_tiocsti_blocked (void **state)
{
  int status = child_status (tiocsti_control_child, NULL);
  assert_true (WIFEXITED (status));
  if (WEXITSTATUS (status) == 3)
    printf ("note: TIOCSTI fails with EPERM here even without a filter\n");
  else
    assert_true (WEXITSTATUS (status) == 0 || WEXITSTATUS (status) == 2);
  in_child (tiocsti_child, NULL);
}

#if defined(__x86_64__) && !defined(__ILP32__)
/* A system call through the i386 entry point, with i386 numbers. */
static long
int80 (long nr, long a, long b, long c)
{
  long ret;
  __asm__ volatile ("int $0x80" : "=a"(ret) : "a"(nr), "b"(a), "c"(b), "d"(c) : "memory");
  return ret;
}

#define I386_GETPID 20
#define I386_KEYCTL 288
#define I386_UNSHARE 310
#define X32_BIT 0x40000000l

static void
int80_probe_child (void *data)
{
  _exit (int80 (I386_GETPID, 0, 0, 0) == getpid () ? 0 : 1);
}

static void
compat_child (void *data)
{
  child_load (KP_SECCOMP_DEFAULT);
  bool *ia32 = data;
  if (*ia32)
    {
      CHECK (int80 (I386_GETPID, 0, 0, 0) == getpid ());
      CHECK (int80 (I386_KEYCTL, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0) == -EPERM);
      CHECK (int80 (I386_UNSHARE, CLONE_NEWUSER, 0, 0) == -EPERM);
    }
  /* x32 numbers (the x86_64 ones with bit 30): filtered whether or not the kernel runs
   * x32 code at all. */
  CHECK_FAILS (syscall (X32_BIT | SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0),
               EPERM);
  CHECK_FAILS (syscall (X32_BIT | SYS_unshare, CLONE_NEWUSER), EPERM);
  if (!*ia32)
    child_skip ("the kernel runs no i386 code (ia32 emulation off): only x32 was checked");
}

static void
test_compat_abis (void **state)
{
  int status = child_status (int80_probe_child, NULL);
  bool ia32 = WIFEXITED (status) && WEXITSTATUS (status) == 0;
  /* The same rules are installed for the 32-bit ABIs, so their calls are refused (EPERM,
   * checked in the child) while ordinary ones still run: the child is not killed. */
  in_child (compat_child, &ia32);
}
#else
static void
test_compat_abis (void **state)
{
  printf ("skip: the 32-bit entry point checks are for x86_64\n");
  skip ();
}
#endif

static void
test_export_bpf (void **state)
{
  char path[] = "/tmp/kp-test-lockdown-bpf-XXXXXX";
  int fd = mkstemp (path);
  assert_true (fd >= 0);
  unlink (path);
  kp_error *err = NULL;
  assert_int_equal (kp_seccomp_export_bpf (KP_SECCOMP_DEFAULT, fd, &err), 0);
  struct stat st;
  assert_int_equal (fstat (fd, &st), 0);
  /* struct sock_filter is 8 bytes; a filter with these rules has dozens of them. */
  assert_int_equal (st.st_size % 8, 0);
  assert_true (st.st_size > 8 * 20);
  off_t default_size = st.st_size;
  assert_int_equal (ftruncate (fd, 0), 0);
  assert_int_equal (lseek (fd, 0, SEEK_SET), 0);
  assert_int_equal (kp_seccomp_export_bpf (KP_SECCOMP_NESTING, fd, &err), 0);
  assert_int_equal (fstat (fd, &st), 0);
  assert_true (st.st_size > 0 && st.st_size < default_size);
  assert_int_equal (kp_seccomp_export_bpf (KP_SECCOMP_NONE, fd, &err), -1);
  kp_error_free (err);
  close (fd);
}

/* KP_SECCOMP_DISCARD_SYNCS: the sync calls return 0 without running (fsync of a
 * descriptor that is not open would say EBADF), the profile's denials stand, and without
 * the flag nothing changes. */
static void
discard_syncs_child (void *data)
{
  unsigned flags = *(unsigned *) data;
  kp_error *err = NULL;
  kp_seccomp_program prog;
  if (prctl (PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0
      || kp_seccomp_compile_with (KP_SECCOMP_DEFAULT, flags, &prog, &err) < 0
      || kp_seccomp_load_program (&prog, &err) < 0)
    {
      fprintf (stderr, "load: %s\n", err ? err->message : strerror (errno));
      _exit (1);
    }
  int closed = 1000;
  errno = 0;
  int fs = fsync (closed);
  int fs_errno = errno;
  errno = 0;
  int fds = fdatasync (closed);
  int fds_errno = errno;
  errno = 0;
  int sfs = syncfs (closed);
  int sfs_errno = errno;
  errno = 0;
  int sfr = sync_file_range (closed, 0, 0, SYNC_FILE_RANGE_WRITE);
  int sfr_errno = errno;
  /* A call the default profile refuses is still refused. */
  errno = 0;
  long keys = syscall (SYS_keyctl, 0, 0, 0, 0, 0);
  int keys_errno = errno;
  if (flags & KP_SECCOMP_DISCARD_SYNCS)
    {
      if (fs != 0 || fds != 0 || sfs != 0 || sfr != 0)
        {
          fprintf (stderr, "a sync call ran: %d %d %d %d\n", fs, fds, sfs, sfr);
          _exit (1);
        }
    }
  else if (fs != -1 || fs_errno != EBADF || fds != -1 || fds_errno != EBADF || sfs != -1
           || sfs_errno != EBADF || sfr != -1 || sfr_errno != EBADF)
    {
      fprintf (stderr, "without the flag: %d/%d %d/%d %d/%d %d/%d\n", fs, fs_errno, fds,
               fds_errno, sfs, sfs_errno, sfr, sfr_errno);
      _exit (1);
    }
  if (keys != -1 || keys_errno != EPERM)
    {
      fprintf (stderr, "keyctl: %ld errno %d\n", keys, keys_errno);
      _exit (1);
    }
  kp_seccomp_program_clear (&prog);
}

static void
test_discard_syncs (void **state)
{
  unsigned with = KP_SECCOMP_DISCARD_SYNCS, without = 0;
  in_child (discard_syncs_child, &with);
  in_child (discard_syncs_child, &without);
}

/* docs/seccomp.md carries the table of each profile exactly as the code describes it. */
static void
test_docs_match (void **state)
{
  const char *root = getenv ("KP_TEST_SOURCE_ROOT");
  if (root == NULL)
    {
      printf ("skip: KP_TEST_SOURCE_ROOT is not set (run through meson test)\n");
      skip ();
    }
  kp_cleanup_free char *path = kp_path_join (root, "docs/seccomp.md");
  kp_error *err = NULL;
  kp_cleanup_free char *doc = kp_file_read (path, 1 << 20, NULL, &err);
  assert_non_null (doc);
  static const kp_seccomp_profile profiles[] = { KP_SECCOMP_DEFAULT, KP_SECCOMP_NESTING };
  for (size_t i = 0; i < KP_N_ELEMENTS (profiles); i++)
    {
      kp_cleanup_free char *table = kp_seccomp_describe (profiles[i]);
      kp_cleanup_free char *marker
          = xasprintf ("<!-- profile %s -->\n", kp_seccomp_profile_name (profiles[i]));
      const char *at = strstr (doc, marker);
      if (at == NULL)
        fail_msg ("docs/seccomp.md has no \"%s\"", marker);
      if (strncmp (at + strlen (marker), table, strlen (table)) != 0)
        fail_msg ("docs/seccomp.md is out of date for the %s profile; it should read:\n%s",
                  kp_seccomp_profile_name (profiles[i]), table);
    }
}

/* ---- capabilities and the lockdown sequence ------------------------------------------ */

static void
test_caps_last (void **state)
{
  int last = kp_caps_last ();
  assert_true (last >= CAP_AUDIT_READ && last < 64);
  assert_int_equal (__builtin_popcountll (kp_caps_all ()), last + 1);
  assert_int_equal (__builtin_popcountll (KP_CAPS_ROOT_DEFAULT), 11);

  /* Requests the kernel would refuse are refused before it is asked. */
  kp_error *err = NULL;
  kp_caps ambient_only = { 0, 0, 0, KP_CAP_BIT (CAP_KILL) };
  assert_int_equal (kp_caps_set (&ambient_only, &err), -1);
  assert_non_null (strstr (err->message, "permitted and inheritable"));
  kp_error_free (err);
  err = NULL;
  if (last < 63)
    {
      kp_caps unknown = { KP_CAP_BIT (last + 1), KP_CAP_BIT (last + 1), 0, 0 };
      assert_int_equal (kp_caps_set (&unknown, &err), -1);
      assert_non_null (strstr (err->message, "unknown to this kernel"));
      kp_error_free (err);
    }
}

static void
assert_fd_closed (int fd)
{
  errno = 0;
  CHECK (fcntl (fd, F_GETFD) == -1 && errno == EBADF);
}

static void
make_stray_fd (int fd)
{
  int null = open ("/dev/null", O_RDONLY); /* deliberately without O_CLOEXEC */
  CHECK (null >= 0);
  CHECK (dup2 (null, fd) == fd);
  close (null);
}

/* What every lockdown without capabilities guarantees. */
static void
check_locked_down (void)
{
  CHECK (status_hex ("CapEff") == 0);
  CHECK (status_hex ("CapPrm") == 0);
  CHECK (status_hex ("CapInh") == 0);
  CHECK (status_hex ("CapAmb") == 0);
  CHECK (status_hex ("CapBnd") == 0);
  CHECK (status_long ("NoNewPrivs") == 1);
  CHECK (status_long ("Seccomp") == 2);
  assert_fd_closed (50);
  kp_caps now;
  uint64_t bounding = 1;
  CHECK (kp_caps_get (&now, &bounding, NULL) == 0);
  CHECK (now.effective == 0 && now.permitted == 0 && now.inheritable == 0 && now.ambient == 0);
  CHECK (bounding == 0);
  /* Nothing comes back: not the capabilities, not a namespace that would grant them. */
  kp_caps all = { kp_caps_all (), kp_caps_all (), 0, 0 };
  kp_error *err = NULL;
  CHECK (kp_caps_set (&all, &err) == -1 && err->errno_value == EPERM);
  CHECK_FAILS (prctl (PR_SET_NO_NEW_PRIVS, 0, 0, 0, 0), EINVAL);
  CHECK_FAILS (unshare (CLONE_NEWUSER), EPERM);
}

static void
lockdown_root_user_child (void *data)
{
  if (geteuid () != 0)
    child_skip ("dropping to another uid needs root (see the user namespace case)");
  make_stray_fd (50);
  kp_lockdown spec = { 65534, 65534, true, NULL, 0, 0, KP_SECCOMP_DEFAULT, -1 };
  child_lockdown (&spec);
  check_locked_down ();
  CHECK (getuid () == 65534 && geteuid () == 65534 && getgid () == 65534);
  CHECK (getgroups (0, NULL) == 0);
  CHECK_FAILS (setuid (0), EPERM);
  CHECK_FAILS (setresuid (0, 0, 0), EPERM);
  CHECK_FAILS (setgroups (0, NULL), EPERM);
}

static void
test_lockdown_as_root_to_user (void **state)
{
  in_child (lockdown_root_user_child, NULL);
}

static void
write_file (const char *path, const char *text)
{
  int fd = open (path, O_WRONLY | O_CLOEXEC);
  CHECK (fd >= 0);
  CHECK (kp_write_all (fd, text, strlen (text)) == 0);
  close (fd);
}

/* Become root of a fresh user namespace that maps only ourselves, as the runtime's
 * sandbox child is when there are no subordinate ids. */
static void
enter_single_id_userns (void)
{
  uid_t uid = getuid ();
  gid_t gid = getgid ();
  if (unshare (CLONE_NEWUSER) < 0)
    child_skip ("this kernel or user cannot create user namespaces");
  char map[64];
  write_file ("/proc/self/setgroups", "deny");
  snprintf (map, sizeof map, "0 %u 1\n", (unsigned) uid);
  write_file ("/proc/self/uid_map", map);
  snprintf (map, sizeof map, "0 %u 1\n", (unsigned) gid);
  write_file ("/proc/self/gid_map", map);
  CHECK (status_hex ("CapEff") == kp_caps_all ());
}

static void
lockdown_root_keeps_child (void *data)
{
  /* As root this is a real root session; otherwise root of a user namespace, as a
   * rootless `--user root` session is. */
  bool real_root = geteuid () == 0;
  if (!real_root)
    enter_single_id_userns ();
  make_stray_fd (50);
  make_stray_fd (51);
  char locked[] = "/tmp/kp-test-lockdown-mode0-XXXXXX";
  int locked_fd = mkstemp (locked);
  CHECK (locked_fd >= 0);
  CHECK (fchmod (locked_fd, 0) == 0);
  close (locked_fd);
  kp_lockdown spec = { 0, 0, real_root, NULL, 0, KP_CAPS_ROOT_DEFAULT, KP_SECCOMP_DEFAULT, 50 };
  child_lockdown (&spec);
  CHECK (status_hex ("CapEff") == KP_CAPS_ROOT_DEFAULT);
  CHECK (status_hex ("CapPrm") == KP_CAPS_ROOT_DEFAULT);
  kp_caps now;
  uint64_t bounding = 0;
  CHECK (kp_caps_get (&now, &bounding, NULL) == 0);
  CHECK (now.effective == KP_CAPS_ROOT_DEFAULT && now.inheritable == KP_CAPS_ROOT_DEFAULT);
  CHECK (bounding == KP_CAPS_ROOT_DEFAULT);
  CHECK (status_hex ("CapBnd") == KP_CAPS_ROOT_DEFAULT);
  CHECK (status_hex ("CapAmb") == 0);
  CHECK (status_long ("NoNewPrivs") == 1);
  CHECK (status_long ("Seccomp") == 2);
  CHECK (fcntl (50, F_GETFD) >= 0); /* the kept one */
  assert_fd_closed (51);
  /* A kept capability works (CAP_DAC_OVERRIDE reads a mode 000 file); a dropped one does
   * not (CAP_SYS_ADMIN for sethostname). */
  int fd = open (locked, O_RDONLY | O_CLOEXEC);
  unlink (locked);
  CHECK (fd >= 0);
  close (fd);
  CHECK_FAILS (sethostname ("kp", 2), EPERM);
}

static void
test_lockdown_root_session_keeps_default_set (void **state)
{
  in_child (lockdown_root_keeps_child, NULL);
}

static void
lockdown_ambient_child (void *data)
{
  if (geteuid () != 0)
    child_skip ("giving a capability to another uid needs root");
  uint64_t keep = KP_CAP_BIT (CAP_NET_BIND_SERVICE);
  kp_lockdown spec = { 65534, 65534, true, NULL, 0, keep, KP_SECCOMP_DEFAULT, -1 };
  child_lockdown (&spec);
  CHECK (status_hex ("CapEff") == keep);
  CHECK (status_hex ("CapAmb") == keep);
  CHECK (status_hex ("CapBnd") == keep);
  /* Ambient capabilities survive exec for a non-root user. */
  char *argv[] = { (char *) "grep", (char *) "-qx", (char *) "CapEff:[[:space:]]*0000000000000400",
                   (char *) "/proc/self/status", NULL };
  pid_t pid;
  int status;
  CHECK (posix_spawnp (&pid, "grep", NULL, NULL, argv, environ) == 0);
  CHECK (waitpid (pid, &status, 0) == pid && WIFEXITED (status) && WEXITSTATUS (status) == 0);
}

static void
test_lockdown_ambient (void **state)
{
  in_child (lockdown_ambient_child, NULL);
}

/* The rootless case: root of a fresh user namespace mapping only ourselves, as the
 * runtime's sandbox child is, locks itself down with no capabilities. */
static void
lockdown_userns_child (void *data)
{
  enter_single_id_userns ();
  make_stray_fd (50);
  kp_lockdown spec = { 0, 0, false, NULL, 0, 0, KP_SECCOMP_DEFAULT, -1 };
  child_lockdown (&spec);
  check_locked_down ();
  CHECK (getuid () == 0);
  CHECK_FAILS (sethostname ("kp", 2), EPERM);
}

static void
test_lockdown_in_user_namespace (void **state)
{
  in_child (lockdown_userns_child, NULL);
}

static void
lockdown_error_child (void *data)
{
  /* Without CAP_SETPCAP the bounding set cannot shrink: the error says so. */
  if (geteuid () == 0)
    {
      kp_caps none = { 0, 0, 0, 0 };
      CHECK (prctl (PR_CAPBSET_DROP, CAP_SETPCAP, 0, 0, 0) == 0);
      kp_error *err = NULL;
      CHECK (kp_caps_set (&none, &err) == 0);
    }
  if (prctl (PR_CAPBSET_READ, CAP_SYS_ADMIN, 0, 0, 0) != 1)
    child_skip ("the bounding set already lacks CAP_SYS_ADMIN");
  kp_lockdown spec = { getuid (), getgid (), false, NULL, 0, 0, KP_SECCOMP_DEFAULT, -1 };
  kp_error *err = NULL;
  CHECK (kp_lockdown_apply (&spec, &err) == -1);
  CHECK (err->errno_value == EPERM);
  CHECK (strstr (err->message, "lockdown: drop capability") == err->message);
  CHECK (err->hint != NULL && strstr (err->hint, "CAP_SETPCAP") != NULL);
  CHECK (status_long ("Seccomp") == 0); /* stopped at the first step */
}

static void
test_lockdown_reports_missing_privilege (void **state)
{
  in_child (lockdown_error_child, NULL);
}

static void
close_fds_child (void *data)
{
  bool use_close_range = *(bool *) data;
  for (int fd = 20; fd <= 24; fd++)
    make_stray_fd (fd);
  make_stray_fd (300);
  kp_error *err = NULL;
  CHECK (kp_fds_close_from (21, 23, use_close_range, &err) == 0);
  CHECK (fcntl (20, F_GETFD) >= 0);
  assert_fd_closed (21);
  assert_fd_closed (22);
  CHECK (fcntl (23, F_GETFD) >= 0);
  assert_fd_closed (24);
  assert_fd_closed (300);
  CHECK (fcntl (0, F_GETFD) >= 0 && fcntl (2, F_GETFD) >= 0);
}

static void
test_close_fds (void **state)
{
  bool with = true, without = false;
  in_child (close_fds_child, &with);
  in_child (close_fds_child, &without); /* the /proc/self/fd fallback */
}

/* ---- environment --------------------------------------------------------------------- */

static kp_manifest *
manifest (const char *extra)
{
  kp_cleanup_free char *text = xasprintf ("manifest_version = 1\n[base]\nimage = \"x\"\n%s", extra);
  kp_error *err = NULL;
  kp_manifest *m = kp_manifest_load_text (text, strlen (text), "/proj/karapace.toml", &err);
  if (m == NULL)
    fail_msg ("%s", err->message);
  return m;
}

static char *const host_env[] = {
  "TERM=xterm-256color",
  "HOME=/home/host",
  "USER=host",
  "PATH=/usr/bin:/bin",
  "LANG=C.UTF-8",
  "SSH_AUTH_SOCK=/run/user/1000/ssh",
  "AWS_SECRET_ACCESS_KEY=secret",
  "GITHUB_TOKEN=ghp_secret",
  "DOCKER_HOST=tcp://x",
  "EDITOR=vim",
  "PAGER=less",
  "LD_PRELOAD=/tmp/evil.so",
  "NOT A NAME=x",
  "NOEQUALS",
  "9LIVES=x",
  "TERM=second-term-ignored",
  NULL,
};

static char *
joined (char **env)
{
  kp_buf b = KP_BUF_INIT;
  for (size_t i = 0; env[i]; i++)
    kp_buf_printf (&b, "%s\n", env[i]);
  return kp_buf_steal (&b);
}

static void
test_environ_allow_list_only (void **state)
{
  kp_cleanup_policy kp_policy *p = kp_policy_new_default ();
  kp_error *err = NULL;
  kp_cleanup_strv char **env = kp_environ_build (p, NULL, host_env, NULL, &err);
  assert_non_null (env);
  kp_cleanup_free char *text = joined (env);
  assert_string_equal (text, "HOME=/home/host\n"
                             "LANG=C.UTF-8\n"
                             "PATH=/usr/bin:/bin\n"
                             "TERM=xterm-256color\n"
                             "USER=host\n");
  kp_cleanup_strv char **empty = kp_environ_build (p, NULL, NULL, NULL, &err);
  assert_non_null (empty);
  assert_null (empty[0]);
}

static void
test_environ_manifest_and_deny (void **state)
{
  kp_cleanup_policy kp_policy *p = kp_policy_new_default ();
  /* The manifest asks for denied names through both doors; the policy check would refuse
   * it at validation, and the builder drops them anyway. */
  kp_cleanup_manifest kp_manifest *m = manifest (
      "[env]\npass = [\"EDITOR\", \"GITHUB_TOKEN\", \"SSH_AUTH_SOCK\", \"NOT_ON_HOST\"]\n"
      "set = { AWS_SECRET_ACCESS_KEY = \"x\", A1 = \"digit\", A = \"plain\", EDITOR = \"nano\","
      " DOCKER_HOST = \"unix:///x\" }\n");
  kp_environ_overrides o = { "/home/dev", "dev", "/bin/bash", "/usr/local/bin:/usr/bin", NULL };
  kp_error *err = NULL;
  kp_cleanup_strv char **env = kp_environ_build (p, m, host_env, &o, &err);
  assert_non_null (env);
  kp_cleanup_free char *text = joined (env);
  assert_string_equal (text, "A=plain\n"
                             "A1=digit\n"
                             "EDITOR=nano\n"
                             "HOME=/home/dev\n"
                             "LANG=C.UTF-8\n"
                             "PATH=/usr/local/bin:/usr/bin\n"
                             "SHELL=/bin/bash\n"
                             "TERM=xterm-256color\n"
                             "USER=dev\n");
  for (size_t i = 0; env[i]; i++)
    {
      char name[64];
      snprintf (name, sizeof name, "%.*s", (int) strcspn (env[i], "="), env[i]);
      assert_false (kp_policy_env_denied (p, name, false));
    }

  /* A deny-list extended by the configuration beats the allow-list too. */
  kp_strv_free (p->env_deny);
  p->env_deny = kp_strv_dup ((char *const[]){ "TERM", "EDITOR", NULL });
  kp_cleanup_strv char **env2 = kp_environ_build (p, m, host_env, NULL, &err);
  kp_cleanup_free char *text2 = joined (env2);
  assert_null (strstr (text2, "TERM="));
  assert_null (strstr (text2, "EDITOR="));
  assert_non_null (strstr (text2, "A1=digit\n"));
}

static void
test_environ_ssh_agent (void **state)
{
  kp_cleanup_policy kp_policy *p = kp_policy_new_default ();
  kp_cleanup_manifest kp_manifest *m
      = manifest ("[host]\nssh_agent = true\n[env]\nset = { SSH_AUTH_SOCK = \"/evil\" }\n");
  kp_error *err = NULL;
  kp_cleanup_strv char **env = kp_environ_build (p, m, host_env, NULL, &err);
  kp_cleanup_free char *text = joined (env);
  /* Passed from the host; env.set cannot choose where it points. */
  assert_non_null (strstr (text, "\nSSH_AUTH_SOCK=/run/user/1000/ssh\n"));
  kp_environ_overrides o = { NULL, NULL, NULL, NULL, "/run/karapace/ssh-agent" };
  kp_cleanup_strv char **env2 = kp_environ_build (p, m, host_env, &o, &err);
  kp_cleanup_free char *text2 = joined (env2);
  assert_non_null (strstr (text2, "\nSSH_AUTH_SOCK=/run/karapace/ssh-agent\n"));
  assert_null (strstr (text2, "AWS_SECRET_ACCESS_KEY"));

  /* Without ssh_agent, not even the override brings it in. */
  kp_cleanup_manifest kp_manifest *plain = manifest ("");
  kp_cleanup_strv char **env3 = kp_environ_build (p, plain, host_env, &o, &err);
  kp_cleanup_free char *text3 = joined (env3);
  assert_null (strstr (text3, "SSH_AUTH_SOCK"));
}

int
main (void)
{
  /* Children report on stderr; keep the runner's output in order with theirs. */
  setvbuf (stdout, NULL, _IONBF, 0);
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_profile_names),
    cmocka_unit_test (test_default_denies),
    cmocka_unit_test (test_nesting_allows_namespaces),
    cmocka_unit_test (test_tiocsti_blocked),
    cmocka_unit_test (test_compat_abis),
    cmocka_unit_test (test_export_bpf),
    cmocka_unit_test (test_discard_syncs),
    cmocka_unit_test (test_docs_match),
    cmocka_unit_test (test_caps_last),
    cmocka_unit_test (test_lockdown_as_root_to_user),
    cmocka_unit_test (test_lockdown_root_session_keeps_default_set),
    cmocka_unit_test (test_lockdown_ambient),
    cmocka_unit_test (test_lockdown_in_user_namespace),
    cmocka_unit_test (test_lockdown_reports_missing_privilege),
    cmocka_unit_test (test_close_fds),
    cmocka_unit_test (test_environ_allow_list_only),
    cmocka_unit_test (test_environ_manifest_and_deny),
    cmocka_unit_test (test_environ_ssh_agent),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
