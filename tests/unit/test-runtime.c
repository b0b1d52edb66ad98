/* test-runtime.c — the runtime through its library API (runtime.h), so that the holder,
 * the root filesystem setup and sessions also run under AddressSanitizer: exit statuses,
 * pid 1, the throw-away layer, the lockdown a session gets, persistent holders joined and
 * stopped, and a command that cannot be run. The system tests (tests/system/test_run.py,
 * test_sessions.py) prove the same through the CLI and much more.
 *
 * The root filesystem is Debian's static busybox copied into a temporary directory; the
 * tests skip, saying why, when it or user namespaces are missing. Runs as root and as an
 * unprivileged user. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "base/fs.h"
#include "sandbox/runtime.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define BUSYBOX "/bin/busybox"

typedef struct fixture
{
  char dir[64];      /* the temporary directory */
  char rootfs[128];  /* dir/rootfs */
  char state[128];   /* dir/state, for persistent holders */
  const char *layers[2];
} fixture;

static bool
usable (void)
{
  if (access (BUSYBOX, X_OK) < 0)
    return false;
  pid_t pid = fork ();
  if (pid == 0)
    _exit (unshare (CLONE_NEWUSER) == 0 ? 0 : 1);
  int status;
  return pid > 0 && waitpid (pid, &status, 0) == pid && WIFEXITED (status)
         && WEXITSTATUS (status) == 0;
}

static void
copy_file (const char *from, const char *to, mode_t mode)
{
  kp_error *err = NULL;
  size_t len;
  char *data = kp_file_read (from, 64 << 20, &len, &err);
  assert_non_null (data);
  int fd = open (to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  assert_true (fd >= 0);
  assert_int_equal (kp_write_all (fd, data, len), 0);
  close (fd);
  free (data);
}

static int
setup (void **state)
{
  if (!usable ())
    return 0;
  fixture *f = calloc (1, sizeof *f);
  snprintf (f->dir, sizeof f->dir, "/tmp/kp-test-runtime-XXXXXX");
  assert_non_null (mkdtemp (f->dir));
  chmod (f->dir, 0755);
  snprintf (f->rootfs, sizeof f->rootfs, "%s/rootfs", f->dir);
  snprintf (f->state, sizeof f->state, "%s/state", f->dir);
  static const char *const dirs[] = { "", "/bin", "/etc", "/tmp", "/proc", "/sys", "/dev" };
  for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++)
    {
      char path[256];
      snprintf (path, sizeof path, "%s%s", f->rootfs, dirs[i]);
      assert_int_equal (mkdir (path, strcmp (dirs[i], "/tmp") == 0 ? 01777 : 0755), 0);
    }
  char path[256];
  snprintf (path, sizeof path, "%s/bin/busybox", f->rootfs);
  copy_file (BUSYBOX, path, 0755);
  static const char *const applets[] = { "sh", "cat", "echo", "ps", "touch", "ls", "sleep", "id" };
  for (size_t i = 0; i < sizeof applets / sizeof applets[0]; i++)
    {
      snprintf (path, sizeof path, "%s/bin/%s", f->rootfs, applets[i]);
      assert_int_equal (symlink ("busybox", path), 0);
    }
  f->layers[0] = f->rootfs;
  *state = f;
  return 0;
}

static int
teardown (void **state)
{
  fixture *f = *state;
  if (f == NULL)
    return 0;
  kp_remove_tree_at (AT_FDCWD, f->dir);
  free (f);
  return 0;
}

#define SKIP_UNLESS_USABLE(f)                                                               \
  do                                                                                         \
    {                                                                                        \
      if ((f) == NULL)                                                                       \
        {                                                                                    \
          print_message ("skipped: needs " BUSYBOX " (busybox-static) and user namespaces\n"); \
          skip ();                                                                           \
        }                                                                                    \
    }                                                                                        \
  while (0)

static char *default_env[] = { "PATH=/bin", NULL };

/* kp_sandbox_run with our stdout captured into out (NUL-terminated). */
static int
run_captured (const kp_sandbox_spec *spec, const kp_session_spec *s, char *out,
              size_t out_size, int *status, kp_error **err)
{
  int pipe_fds[2];
  assert_int_equal (pipe2 (pipe_fds, O_CLOEXEC), 0);
  fflush (stdout);
  int saved = dup (STDOUT_FILENO);
  dup2 (pipe_fds[1], STDOUT_FILENO);
  close (pipe_fds[1]);
  int r = kp_sandbox_run (spec, s, status, err);
  dup2 (saved, STDOUT_FILENO);
  close (saved);
  ssize_t n = read (pipe_fds[0], out, out_size - 1);
  out[n > 0 ? n : 0] = '\0';
  close (pipe_fds[0]);
  return r;
}

/* Run sh -c SCRIPT in a throw-away sandbox; stdout captured into out. */
static int
run_script (fixture *f, const char *script, bool as_root, char *out, size_t out_size,
            int *status, kp_error **err)
{
  kp_sandbox_spec spec = { .layers = f->layers, .network = KP_NET_NONE,
                           .seccomp = KP_SECCOMP_DEFAULT };
  char *argv[] = { "sh", "-c", (char *) script, NULL };
  kp_session_spec s = { .argv = argv, .envp = default_env, .as_root = as_root,
                        .seccomp = KP_SECCOMP_DEFAULT, .no_tty_control = true };
  return run_captured (&spec, &s, out, out_size, status, err);
}

static void
test_exit_status (void **state)
{
  fixture *f = *state;
  SKIP_UNLESS_USABLE (f);
  char out[4096];
  int status = -1;
  kp_error *err = NULL;
  assert_int_equal (run_script (f, "exit 7", false, out, sizeof out, &status, &err), 0);
  assert_int_equal (status, 7);
  assert_int_equal (run_script (f, "kill -TERM $$", false, out, sizeof out, &status, &err), 0);
  assert_int_equal (status, 128 + SIGTERM);
}

static void
test_pid_one_and_ids (void **state)
{
  fixture *f = *state;
  SKIP_UNLESS_USABLE (f);
  char out[4096];
  int status = -1;
  kp_error *err = NULL;
  assert_int_equal (run_script (f, "cat /proc/1/comm; echo $$; id -u; cat /proc/net/dev | tail -n +3",
                                false, out, sizeof out, &status, &err),
                    0);
  assert_int_equal (status, 0);
  char comm[64];
  int self = 0;
  unsigned uid = 0;
  char iface[32];
  assert_int_equal (sscanf (out, "%63s %d %u %31s", comm, &self, &uid, iface), 4);
  assert_string_equal (comm, "karapace-holder");
  assert_true (self >= 2);
  /* Your own uid inside, unless you are real root (then 0 is yours). */
  assert_int_equal (uid, getuid ());
  /* --network none: lo only. */
  assert_string_equal (iface, "lo:");
  assert_null (strstr (out + strlen (comm), "eth"));
}

static void
test_rootfs_untouched (void **state)
{
  fixture *f = *state;
  SKIP_UNLESS_USABLE (f);
  char out[4096];
  int status = -1;
  kp_error *err = NULL;
  assert_int_equal (run_script (f, "touch /new /bin/new /etc/new && rm /bin/cat && echo done",
                                true, out, sizeof out, &status, &err),
                    0);
  assert_int_equal (status, 0);
  assert_string_equal (out, "done\n");
  char path[256];
  snprintf (path, sizeof path, "%s/new", f->rootfs);
  assert_int_equal (access (path, F_OK), -1);
  snprintf (path, sizeof path, "%s/bin/cat", f->rootfs);
  struct stat st;
  assert_int_equal (lstat (path, &st), 0);
}

static void
test_lockdown_applied (void **state)
{
  fixture *f = *state;
  SKIP_UNLESS_USABLE (f);
  char out[4096];
  int status = -1;
  kp_error *err = NULL;
  assert_int_equal (run_script (f, "cat /proc/self/status", false, out, sizeof out, &status, &err),
                    0);
  assert_int_equal (status, 0);
  assert_non_null (strstr (out, "NoNewPrivs:\t1"));
  assert_non_null (strstr (out, "Seccomp:\t2"));
  assert_non_null (strstr (out, "CapEff:\t0000000000000000"));
}

/* Without subordinate ids (here: asked for), only the caller's own id is mapped: to itself,
 * or to 0 when the sandbox is for root. */
static void
test_single_id_map (void **state)
{
  fixture *f = *state;
  SKIP_UNLESS_USABLE (f);
  if (geteuid () == 0)
    {
      print_message ("skipped: as root every id maps to itself\n");
      skip ();
    }
  for (int as_root = 0; as_root <= 1; as_root++)
    {
      kp_sandbox_spec spec = { .layers = f->layers, .network = KP_NET_NONE, .single_id = true,
                               .single_id_as_root = as_root };
      char *argv[] = { "sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map; id -u; id -g", NULL };
      kp_session_spec s = { .argv = argv, .envp = default_env, .as_root = as_root,
                            .no_tty_control = true };
      int status = -1;
      kp_error *err = NULL;
      char out[1024];
      int r = run_captured (&spec, &s, out, sizeof out, &status, &err);
      assert_int_equal (r, 0);
      assert_int_equal (status, 0);
      unsigned in_u, out_u, count_u, in_g, out_g, count_g, uid, gid;
      assert_int_equal (sscanf (out, "%u %u %u %u %u %u %u %u", &in_u, &out_u, &count_u, &in_g,
                                &out_g, &count_g, &uid, &gid),
                        8);
      assert_int_equal (count_u, 1);
      assert_int_equal (count_g, 1);
      assert_int_equal (out_u, getuid ());
      assert_int_equal (out_g, getgid ());
      assert_int_equal (in_u, as_root ? 0 : getuid ());
      assert_int_equal (uid, in_u);
      assert_int_equal (gid, in_g);
    }
}

static void
test_command_not_found (void **state)
{
  fixture *f = *state;
  SKIP_UNLESS_USABLE (f);
  kp_sandbox_spec spec = { .layers = f->layers, .network = KP_NET_NONE };
  char *argv[] = { "no-such-command", NULL };
  kp_session_spec s = { .argv = argv, .envp = default_env, .no_tty_control = true };
  int status = -1;
  kp_error *err = NULL;
  assert_int_equal (kp_sandbox_run (&spec, &s, &status, &err), -1);
  assert_non_null (err);
  assert_int_equal (err->status, 127);
  kp_error_free (err);
}

static void
test_bad_rootfs_is_refused (void **state)
{
  fixture *f = *state;
  SKIP_UNLESS_USABLE (f);
  const char *layers[] = { "/nonexistent/karapace-rootfs", NULL };
  kp_sandbox_spec spec = { .layers = layers, .network = KP_NET_NONE };
  kp_error *err = NULL;
  assert_null (kp_holder_start (&spec, &err));
  assert_non_null (err);
  assert_int_equal (err->status, KP_EXIT_RUNTIME);
  assert_non_null (strstr (err->message, "/nonexistent/karapace-rootfs"));
  kp_error_free (err);
}

static void
test_persistent_holder (void **state)
{
  fixture *f = *state;
  SKIP_UNLESS_USABLE (f);
  kp_sandbox_spec spec = { .layers = f->layers, .network = KP_NET_NONE, .state_dir = f->state };
  kp_error *err = NULL;
  kp_holder *first = kp_holder_start (&spec, &err);
  assert_non_null (first);
  struct stat st;
  assert_int_equal (stat (f->state, &st), 0);
  assert_int_equal (st.st_mode & 0777, 0700);
  /* A second start on the same state directory finds it running. */
  assert_null (kp_holder_start (&spec, &err));
  assert_non_null (strstr (err->message, "already runs"));
  kp_error_free (err);
  err = NULL;

  kp_holder *second = kp_holder_connect (f->state, &err);
  assert_non_null (second);
  assert_int_equal (kp_holder_pid (second), kp_holder_pid (first));
  char *argv[] = { "sh", "-c", "echo x > /tmp/shared", NULL };
  kp_session_spec s = { .argv = argv, .envp = default_env, .no_tty_control = true };
  int status = -1;
  assert_int_equal (kp_holder_join (second, &s, &status, &err), 0);
  assert_int_equal (status, 0);
  char *check[] = { "sh", "-c", "test -f /tmp/shared", NULL };
  s.argv = check;
  assert_int_equal (kp_holder_join (first, &s, &status, &err), 0);
  assert_int_equal (status, 0);

  /* The first hold goes; the second keeps the holder. */
  pid_t pid = kp_holder_pid (first);
  kp_holder_release (first);
  assert_int_equal (kill (pid, 0) == 0 || errno == EPERM, true);
  kp_holder *third = kp_holder_connect (f->state, &err);
  assert_non_null (third);
  /* Stop: the holder ends whoever holds it. */
  assert_int_equal (kp_holder_stop (third, &err), 0);
  kp_holder_release (third);
  kp_holder_release (second);
  for (int i = 0; i < 200; i++)
    {
      kp_holder *h = kp_holder_connect (f->state, NULL);
      if (h == NULL)
        break;
      kp_holder_release (h);
      usleep (10000);
    }
  assert_null (kp_holder_connect (f->state, &err));
  kp_error_free (err);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_exit_status, setup, teardown),
    cmocka_unit_test_setup_teardown (test_pid_one_and_ids, setup, teardown),
    cmocka_unit_test_setup_teardown (test_rootfs_untouched, setup, teardown),
    cmocka_unit_test_setup_teardown (test_lockdown_applied, setup, teardown),
    cmocka_unit_test_setup_teardown (test_single_id_map, setup, teardown),
    cmocka_unit_test_setup_teardown (test_command_not_found, setup, teardown),
    cmocka_unit_test_setup_teardown (test_bad_rootfs_is_refused, setup, teardown),
    cmocka_unit_test_setup_teardown (test_persistent_holder, setup, teardown),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
