/* test-cgroup.c — resource limits: the parsers of /proc/PID/cgroup and mountinfo on captured
 * samples, the v2 cpu weight mapping, the refusals on fake cgroup trees, and on the host
 * the limits really biting: a process over its memory limit is killed by the OOM killer
 * and the kill is reported; a fork bomb gets EAGAIN at its pids limit; nothing is left
 * behind.
 *
 * The host tests need a cgroup the caller may write: root has one; an unprivileged user
 * has one on cgroup v2 with delegation, or on cgroup v1 when an administrator ran
 * scripts/delegate-cgroup-v1 for it (as this project's CI does for its test user). Without
 * one they skip and say why. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "base/fs.h"
#include "sandbox/cgroup.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- helpers ------------------------------------------------------------------------ */

static char *
make_temp_dir (void)
{
  const char *base = getenv ("TMPDIR");
  char *dir = xasprintf ("%s/kp-test-cgroup-XXXXXX", base && base[0] == '/' ? base : "/tmp");
  assert_non_null (mkdtemp (dir));
  return dir;
}

static void
write_text (const char *dir, const char *rel, const char *text)
{
  kp_cleanup_free char *path = xasprintf ("%s/%s", dir, rel);
  FILE *f = fopen (path, "w");
  assert_non_null (f);
  fputs (text, f);
  assert_int_equal (fclose (f), 0);
}

static void
make_dir (const char *dir, const char *rel)
{
  kp_cleanup_free char *path = xasprintf ("%s/%s", dir, rel);
  assert_int_equal (mkdir (path, 0755), 0);
}

static void
remove_tree (const char *path)
{
  kp_cleanup_free char *cmd = xasprintf ("rm -rf '%s'", path);
  assert_int_equal (system (cmd), 0);
}

static char *
unique_name (void)
{
  static unsigned counter;
  return xasprintf ("kp-test-%d-%u", (int) getpid (), counter++);
}

static bool
exists (const char *path)
{
  struct stat st;
  return lstat (path, &st) == 0;
}

static uint64_t
read_u64 (const char *dir, const char *file)
{
  kp_cleanup_free char *path = xasprintf ("%s/%s", dir, file);
  kp_cleanup_error kp_error *err = NULL;
  kp_cleanup_free char *text = kp_file_read (path, 4096, NULL, &err);
  assert_non_null (text);
  return strtoull (text, NULL, 10);
}

/* ---- parsers ------------------------------------------------------------------------ */

/* This machine's /proc/self/cgroup: v1 hierarchies and a controller-less unified one. */
static const char hybrid_cgroup[] = "9:name=systemd:/\n"
                                    "8:pids:/\n"
                                    "7:blkio:/\n"
                                    "4:memory:/process_api/6fbae89bf25c8fba5e68de7c76b42f3b\n"
                                    "3:cpuset:/\n"
                                    "2:cpuacct:/\n"
                                    "1:cpu:/\n"
                                    "0::/\n";

static void
test_parse_proc_hybrid (void **state)
{
  kp_cgroup_entries e;
  kp_cgroup_parse_proc (hybrid_cgroup, &e);
  assert_int_equal (e.len, 8);
  assert_int_equal (e.malformed, 0);
  assert_string_equal (kp_cgroup_entries_find (&e, "memory")->path,
                       "/process_api/6fbae89bf25c8fba5e68de7c76b42f3b");
  assert_int_equal (kp_cgroup_entries_find (&e, "memory")->hierarchy, 4);
  assert_string_equal (kp_cgroup_entries_find (&e, "pids")->path, "/");
  assert_string_equal (kp_cgroup_entries_find (&e, "cpu")->controllers, "cpu");
  assert_string_equal (kp_cgroup_entries_find (&e, NULL)->path, "/");
  assert_null (kp_cgroup_entries_find (&e, "devices"));
  kp_cgroup_entries_clear (&e);
}

static void
test_parse_proc_v1 (void **state)
{
  kp_cgroup_entries e;
  /* A classic v1 host (Debian 10 style): co-mounted controllers, a path with ':'. */
  kp_cgroup_parse_proc ("12:cpu,cpuacct:/user.slice\n"
                        "11:memory:/user.slice/user-1000.slice/session-2.scope\n"
                        "10:pids:/user.slice/user-1000.slice/session-2.scope\n"
                        "1:name=systemd:/user.slice/user-1000.slice/a:b.scope\n"
                        "garbage\n"
                        "x:memory:/nope\n"
                        "5::/v2-line-with-nonzero-id\n",
                        &e);
  assert_int_equal (e.len, 4);
  assert_int_equal (e.malformed, 3);
  assert_string_equal (kp_cgroup_entries_find (&e, "cpuacct")->path, "/user.slice");
  assert_ptr_equal (kp_cgroup_entries_find (&e, "cpu"), kp_cgroup_entries_find (&e, "cpuacct"));
  assert_string_equal (kp_cgroup_entries_find (&e, "name=systemd")->path,
                       "/user.slice/user-1000.slice/a:b.scope");
  assert_null (kp_cgroup_entries_find (&e, NULL));
  kp_cgroup_entries_clear (&e);
}

static void
test_parse_proc_v2 (void **state)
{
  kp_cgroup_entries e;
  kp_cgroup_parse_proc ("0::/user.slice/user-1000.slice/user@1000.service/app.slice/x.scope\n",
                        &e);
  assert_int_equal (e.len, 1);
  assert_string_equal (kp_cgroup_entries_find (&e, NULL)->path,
                       "/user.slice/user-1000.slice/user@1000.service/app.slice/x.scope");
  assert_null (kp_cgroup_entries_find (&e, "memory"));
  kp_cgroup_entries_clear (&e);
  /* no trailing newline, empty input */
  kp_cgroup_parse_proc ("0::/", &e);
  assert_int_equal (e.len, 1);
  kp_cgroup_entries_clear (&e);
  kp_cgroup_parse_proc ("", &e);
  assert_int_equal (e.len, 0);
  kp_cgroup_entries_clear (&e);
}

/* This machine's mountinfo, plus a container's (mount root is a cgroup) and a v2 host. */
static const char hybrid_mountinfo[]
    = "23 1 0:21 / /sys rw,nosuid - sysfs sysfs rw\n"
      "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
      "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
      "33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct\n"
      "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
      "39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n"
      "40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n"
      "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";

static void
test_mountinfo (void **state)
{
  kp_cleanup_free char *m
      = kp_cgroup_mount_dir (hybrid_mountinfo, "memory", "/process_api/6fbae89bf25c8fba5e68");
  assert_string_equal (m, "/sys/fs/cgroup/memory/process_api/6fbae89bf25c8fba5e68");
  kp_cleanup_free char *p = kp_cgroup_mount_dir (hybrid_mountinfo, "pids", "/");
  assert_string_equal (p, "/sys/fs/cgroup/pids");
  kp_cleanup_free char *u = kp_cgroup_mount_dir (hybrid_mountinfo, NULL, "/");
  assert_string_equal (u, "/sys/fs/cgroup/unified");
  kp_cleanup_free char *top = kp_cgroup_mount_point (hybrid_mountinfo, "cpu");
  assert_string_equal (top, "/sys/fs/cgroup/cpu");
  kp_cleanup_free char *sys = kp_cgroup_mount_point (hybrid_mountinfo, "name=systemd");
  assert_string_equal (sys, "/sys/fs/cgroup/systemd");
  assert_null (kp_cgroup_mount_point (hybrid_mountinfo, "blkio"));
  assert_null (kp_cgroup_mount_point (hybrid_mountinfo, "sysfs"));

  /* A container: the hierarchy's mount root is the container's own cgroup. */
  static const char container[]
      = "100 99 0:40 /docker/abc /sys/fs/cgroup ro,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
  kp_cleanup_free char *c = kp_cgroup_mount_dir (container, NULL, "/docker/abc/run");
  assert_string_equal (c, "/sys/fs/cgroup/run");
  assert_null (kp_cgroup_mount_dir (container, NULL, "/docker/abcd"));
  assert_null (kp_cgroup_mount_dir (container, "memory", "/docker/abc"));
  kp_cleanup_free char *ct = kp_cgroup_mount_point (container, NULL);
  assert_string_equal (ct, "/sys/fs/cgroup");

  /* Truncated lines and a missing separator are skipped, not misread. */
  assert_null (kp_cgroup_mount_point ("1 2 3\n41 31 0:38 / /x rw - cgroup2\n", NULL));
  assert_null (kp_cgroup_mount_point ("", NULL));
}

static void
test_weight (void **state)
{
  assert_int_equal (kp_cgroup_shares_to_weight (2), 1);
  assert_int_equal (kp_cgroup_shares_to_weight (1024), 39);
  assert_int_equal (kp_cgroup_shares_to_weight (262144), 10000);
  assert_int_equal (kp_cgroup_shares_to_weight (512), 1 + (510 * 9999) / 262142);
  /* clamped */
  assert_int_equal (kp_cgroup_shares_to_weight (1), 1);
  assert_int_equal (kp_cgroup_shares_to_weight (UINT64_MAX), 10000);
  /* monotonic */
  for (uint64_t s = 2; s < 262144; s += 97)
    assert_true (kp_cgroup_shares_to_weight (s) <= kp_cgroup_shares_to_weight (s + 97));
}

/* ---- refusals, on fake trees -------------------------------------------------------- */

static void
test_no_limits_creates_nothing (void **state)
{
  kp_cleanup_free char *root = make_temp_dir ();
  make_dir (root, "memory");
  kp_cgroup_host host = { .root = root, .proc_cgroup = "4:memory:/\n", .user = "u" };
  kp_cgroup_limits none = { 0 };
  kp_error *err = NULL;
  assert_null (kp_cgroup_create (&none, "run", &host, &err));
  assert_null (err);
  assert_null (kp_cgroup_create (NULL, "run", &host, &err));
  assert_null (err);
  kp_cleanup_free char *run = xasprintf ("%s/memory/run", root);
  assert_false (exists (run));
  remove_tree (root);
}

static void
test_empty_root_refused (void **state)
{
  kp_cleanup_free char *root = make_temp_dir ();
  kp_cgroup_host host = { .root = root, .proc_cgroup = hybrid_cgroup, .user = "u" };
  kp_cgroup_limits l = { .memory_limit_mb = 64 };
  kp_cleanup_error kp_error *err = NULL;
  assert_null (kp_cgroup_create (&l, "run", &host, &err));
  assert_non_null (err);
  assert_int_equal (err->status, KP_EXIT_RUNTIME);
  assert_string_equal (err->message, "memory limit requested, but no cgroup v1 hierarchy with "
                                     "the memory controller is mounted");
  assert_non_null (err->hint);
  remove_tree (root);
}

/* A v1 hierarchy whose cgroups are not usable: neither our own nor karapace-USER. */
static void
test_v1_no_writable_place (void **state)
{
  kp_cleanup_free char *root = make_temp_dir ();
  make_dir (root, "pids");
  make_dir (root, "pids/mine"); /* exists, but is not a cgroup */
  kp_cgroup_host host = { .root = root, .proc_cgroup = "3:pids:/mine\n", .user = "alice" };
  kp_cgroup_limits l = { .pids_max = 32 };
  kp_cleanup_error kp_error *err = NULL;
  assert_null (kp_cgroup_create (&l, "run", &host, &err));
  assert_int_equal (err->status, KP_EXIT_RUNTIME);
  kp_cleanup_free char *want
      = xasprintf ("pids limit requested, but no writable cgroup v1 pids hierarchy: %s/pids/mine "
                   "is not a cgroup (no cgroup.procs); %s/pids/karapace-alice: %s",
                   root, root, strerror (ENOENT));
  assert_string_equal (err->message, want);
  assert_non_null (strstr (err->hint, "scripts/delegate-cgroup-v1 alice"));
  remove_tree (root);
}

/* The delegated directory is found; a limit file that cannot be written fails the create
 * and the half-made cgroup is removed. */
static void
test_v1_delegated_found_and_cleaned (void **state)
{
  kp_cleanup_free char *root = make_temp_dir ();
  make_dir (root, "cpu,cpuacct");
  make_dir (root, "cpu,cpuacct/karapace-alice");
  write_text (root, "cpu,cpuacct/karapace-alice/cgroup.procs", "");
  kp_cgroup_host host = { .root = root, .proc_cgroup = "2:cpu,cpuacct:/\n", .user = "alice" };
  kp_cgroup_limits l = { .cpu_shares = 512 };
  kp_cleanup_error kp_error *err = NULL;
  assert_null (kp_cgroup_create (&l, "run", &host, &err));
  assert_int_equal (err->status, KP_EXIT_RUNTIME);
  kp_cleanup_free char *want = xasprintf ("set the cpu limit: write '512' to "
                                          "'%s/cpu,cpuacct/karapace-alice/run/cpu.shares': %s",
                                          root, strerror (ENOENT));
  assert_string_equal (err->message, want);
  kp_cleanup_free char *run = xasprintf ("%s/cpu,cpuacct/karapace-alice/run", root);
  assert_false (exists (run));
  remove_tree (root);
}

static void
test_v2_missing_controller (void **state)
{
  kp_cleanup_free char *root = make_temp_dir ();
  write_text (root, "cgroup.controllers", "cpu memory pids\n");
  make_dir (root, "me");
  write_text (root, "me/cgroup.procs", "");
  write_text (root, "me/cgroup.subtree_control", "");
  write_text (root, "me/cgroup.controllers", "cpu pids\n");
  kp_cgroup_host host = { .root = root, .proc_cgroup = "0::/me\n", .user = "u" };
  kp_cgroup_limits l = { .memory_limit_mb = 64, .pids_max = 10 };
  kp_cleanup_error kp_error *err = NULL;
  assert_null (kp_cgroup_create (&l, "run", &host, &err));
  assert_int_equal (err->status, KP_EXIT_RUNTIME);
  kp_cleanup_free char *want = xasprintf (
      "resource limits requested, but your cgroup %s/me does not offer: memory", root);
  assert_string_equal (err->message, want);
  assert_non_null (strstr (err->hint, "Delegate=yes"));
  remove_tree (root);
}

/* v2: the controllers are enabled for the children before the run's cgroup is made. */
static void
test_v2_enables_controllers (void **state)
{
  kp_cleanup_free char *root = make_temp_dir ();
  write_text (root, "cgroup.controllers", "cpu memory pids\n");
  make_dir (root, "me");
  write_text (root, "me/cgroup.procs", "");
  write_text (root, "me/cgroup.subtree_control", "pids\n");
  write_text (root, "me/cgroup.controllers", "cpu memory pids\n");
  kp_cgroup_host host = { .root = root, .proc_cgroup = "0::/me\n", .user = "u" };
  kp_cgroup_limits l = { .memory_limit_mb = 64, .pids_max = 10, .cpu_shares = 100 };
  kp_cleanup_error kp_error *err = NULL;
  assert_null (kp_cgroup_create (&l, "run", &host, &err));
  kp_cleanup_free char *want = xasprintf (
      "set resource limits: write '67108864' to '%s/me/run/memory.max': %s", root,
      strerror (ENOENT));
  assert_string_equal (err->message, want);
  kp_cleanup_free char *sc = xasprintf ("%s/me/cgroup.subtree_control", root);
  kp_cleanup_error kp_error *rerr = NULL;
  kp_cleanup_free char *text = kp_file_read (sc, 4096, NULL, &rerr);
  assert_string_equal (text, "+memory +cpu");
  kp_cleanup_free char *run = xasprintf ("%s/me/run", root);
  assert_false (exists (run));
  remove_tree (root);
}

/* A process already in karapace-self (an earlier run moved it) makes runs beside it, not
 * below the leaf. */
static void
test_v2_from_self_leaf (void **state)
{
  kp_cleanup_free char *root = make_temp_dir ();
  write_text (root, "cgroup.controllers", "pids\n");
  make_dir (root, "me");
  write_text (root, "me/cgroup.procs", "");
  write_text (root, "me/cgroup.subtree_control", "");
  write_text (root, "me/cgroup.controllers", "pids\n");
  make_dir (root, "me/karapace-self");
  kp_cgroup_host host = { .root = root, .proc_cgroup = "0::/me/karapace-self\n", .user = "u" };
  kp_cgroup_limits l = { .pids_max = 10 };
  kp_cleanup_error kp_error *err = NULL;
  assert_null (kp_cgroup_create (&l, "run", &host, &err));
  kp_cleanup_free char *want = xasprintf (
      "set resource limits: write '10' to '%s/me/run/pids.max': %s", root, strerror (ENOENT));
  assert_string_equal (err->message, want);
  remove_tree (root);
}

static void
test_bad_name (void **state)
{
  kp_cgroup_limits l = { .pids_max = 1 };
  const char *bad[] = { "", "..", ".hidden", "a/b", "a b", NULL };
  for (size_t i = 0; bad[i] != NULL; i++)
    {
      kp_cleanup_error kp_error *err = NULL;
      assert_null (kp_cgroup_create (&l, bad[i], NULL, &err));
      assert_int_equal (err->status, KP_EXIT_RUNTIME);
      assert_true (kp_str_has_prefix (err->message, "invalid cgroup name"));
    }
}

/* ---- on the host -------------------------------------------------------------------- */

/* Create a cgroup on the host, or skip saying why when the caller has no place for one. */
static kp_cgroup *
host_cgroup (void **state, const kp_cgroup_limits *l)
{
  kp_cleanup_free char *name = unique_name ();
  kp_cleanup_error kp_error *err = NULL;
  kp_cgroup *cg = kp_cgroup_create (l, name, NULL, &err);
  if (cg == NULL)
    {
      assert_non_null (err);
      assert_int_equal (err->status, KP_EXIT_RUNTIME);
      if (geteuid () == 0)
        fail_msg ("root cannot create a cgroup: %s", err->message);
      fprintf (stderr, "skip: no cgroup for this user: %s (%s)\n", err->message,
               err->hint ? err->hint : "");
      skip ();
    }
  *state = cg; /* a failing test leaves it to the teardown */
  for (char *const *d = kp_cgroup_get_dirs (cg); *d; d++)
    assert_true (exists (*d));
  return cg;
}

/* Remove a host cgroup that a failed test left, and reap what it leaves to us. */
static int
teardown_host (void **state)
{
  kp_cgroup_destroy (*state, NULL);
  *state = NULL;
  while (waitpid (-1, NULL, WNOHANG) > 0)
    ;
  prctl (PR_SET_CHILD_SUBREAPER, 0);
  return 0;
}

/* A child that waits for its parent to place it, then runs fn. */
static pid_t
start_child (int (*fn) (int), int *go_fd, int *report_fd)
{
  int go[2], report[2];
  assert_int_equal (pipe2 (go, O_CLOEXEC), 0);
  assert_int_equal (pipe2 (report, O_CLOEXEC), 0);
  pid_t pid = fork ();
  assert_true (pid >= 0);
  if (pid == 0)
    {
      close (go[1]);
      close (report[0]);
      char c;
      if (read (go[0], &c, 1) != 1)
        _exit (120);
      _exit (fn (report[1]));
    }
  close (go[0]);
  close (report[1]);
  *go_fd = go[1];
  *report_fd = report[0];
  return pid;
}

static int
allocate_256_mib (int report)
{
  size_t size = (size_t) 256 << 20;
  char *p = mmap (NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED)
    return 121;
  for (size_t i = 0; i < size; i += 4096)
    p[i] = 1;
  return 0; /* survived: the limit did not bite */
}

static void
test_host_memory_oom (void **state)
{
  kp_cgroup_limits l = { .memory_limit_mb = 64, .pids_max = 32 };
  kp_cgroup *cg = host_cgroup (state, &l);
  char **dirs = kp_strv_dup (kp_cgroup_get_dirs (cg));
  bool seen_memory = false;
  for (char **d = dirs; *d; d++)
    {
      const char *file = kp_cgroup_get_version (cg) == KP_CGROUP_V1 ? "memory.limit_in_bytes"
                                                                     : "memory.max";
      kp_cleanup_free char *path = xasprintf ("%s/%s", *d, file);
      if (exists (path))
        {
          assert_int_equal (read_u64 (*d, file), 64u << 20);
          seen_memory = true;
        }
    }
  assert_true (seen_memory);

  int go, report;
  pid_t pid = start_child (allocate_256_mib, &go, &report);
  kp_error *err = NULL;
  assert_int_equal (kp_cgroup_attach (cg, pid, &err), 0);
  assert_int_equal (write (go, "x", 1), 1);
  int status;
  assert_int_equal (waitpid (pid, &status, 0), pid);
  close (go);
  close (report);
  assert_true (WIFSIGNALED (status));
  assert_int_equal (WTERMSIG (status), SIGKILL);

  kp_cgroup_memory_events ev;
  assert_int_equal (kp_cgroup_memory_events_read (cg, &ev, &err), 0);
  fprintf (stderr, "memory events: oom_kills %llu, limit hits %llu\n",
           (unsigned long long) ev.oom_kills, (unsigned long long) ev.limit_hits);
  assert_true (ev.oom_kills >= 1);

  *state = NULL;
  assert_int_equal (kp_cgroup_destroy (cg, &err), 0);
  assert_null (err);
  for (char **d = dirs; *d; d++)
    assert_false (exists (*d));
  kp_strv_free (dirs);
}

static int
fork_bomb (int report)
{
  int forks = 0;
  for (;;)
    {
      pid_t p = fork ();
      if (p == 0)
        {
          pause ();
          _exit (0);
        }
      if (p < 0)
        {
          int e = errno;
          if (write (report, &forks, sizeof forks) != sizeof forks)
            return 122;
          return e == EAGAIN ? 0 : 123;
        }
      if (++forks > 10000)
        return 124; /* no limit */
    }
}

static void
test_host_pids_fork_bomb (void **state)
{
  kp_cgroup_limits l = { .pids_max = 32 };
  kp_cgroup *cg = host_cgroup (state, &l);
  char **dirs = kp_strv_dup (kp_cgroup_get_dirs (cg));
  assert_int_equal (read_u64 (dirs[0], "pids.max"), 32);

  /* Orphaned bomb children come back to us to be reaped. */
  assert_int_equal (prctl (PR_SET_CHILD_SUBREAPER, 1), 0);
  int go, report;
  pid_t pid = start_child (fork_bomb, &go, &report);
  kp_error *err = NULL;
  assert_int_equal (kp_cgroup_attach (cg, pid, &err), 0);
  assert_int_equal (write (go, "x", 1), 1);
  int forks = -1;
  assert_int_equal (read (report, &forks, sizeof forks), sizeof forks);
  int status;
  assert_int_equal (waitpid (pid, &status, 0), pid);
  assert_true (WIFEXITED (status));
  assert_int_equal (WEXITSTATUS (status), 0); /* fork failed with EAGAIN */
  fprintf (stderr, "fork bomb: %d forks before EAGAIN\n", forks);
  assert_int_equal (forks, 31); /* 32 tasks: the bomb and 31 children */

  /* Destroy kills the children still sleeping in the cgroup and removes it. */
  *state = NULL;
  assert_int_equal (kp_cgroup_destroy (cg, &err), 0);
  assert_null (err);
  while (waitpid (-1, NULL, 0) > 0)
    ;
  assert_int_equal (prctl (PR_SET_CHILD_SUBREAPER, 0), 0);
  for (char **d = dirs; *d; d++)
    assert_false (exists (*d));
  close (go);
  close (report);
  kp_strv_free (dirs);
}

/* A second cgroup of the same name is refused, not shared. */
static void
test_host_name_taken (void **state)
{
  kp_cgroup_limits l = { .pids_max = 8 };
  kp_cleanup_free char *name = unique_name ();
  kp_cleanup_error kp_error *err = NULL;
  kp_cgroup *cg = kp_cgroup_create (&l, name, NULL, &err);
  if (cg == NULL)
    {
      if (geteuid () == 0)
        fail_msg ("root cannot create a cgroup: %s", err->message);
      fprintf (stderr, "skip: no cgroup for this user: %s\n", err->message);
      skip ();
    }
  *state = cg;
  assert_null (kp_cgroup_create (&l, name, NULL, &err));
  assert_int_equal (err->status, KP_EXIT_RUNTIME);
  assert_int_equal (err->errno_value, EEXIST);
  *state = NULL;
  assert_int_equal (kp_cgroup_destroy (cg, NULL), 0);
}

/* ---- the systemd user manager: a MOCK of it (tests/mock/mock-systemd1.py) -------------- */

/* No systemd runs where the tests run, so a private dbus-daemon carries a mock of the
 * user manager's interface, which also does to a fake cgroup tree what systemd does to the
 * real one. */
typedef struct mock_bus
{
  char *dir;
  char *address;
  pid_t daemon, mock;
} mock_bus;

static pid_t
spawn_quiet (char *const argv[], int out_fd)
{
  pid_t pid = fork ();
  assert_true (pid >= 0);
  if (pid == 0)
    {
      int null = open ("/dev/null", O_RDWR);
      dup2 (null, STDIN_FILENO);
      dup2 (out_fd >= 0 ? out_fd : null, STDOUT_FILENO);
      dup2 (null, STDERR_FILENO);
      execvp (argv[0], argv);
      _exit (127);
    }
  return pid;
}

static void
mock_stop (mock_bus *m)
{
  if (m->mock > 0)
    kill (m->mock, SIGKILL), waitpid (m->mock, NULL, 0);
  if (m->daemon > 0)
    kill (m->daemon, SIGKILL), waitpid (m->daemon, NULL, 0);
  if (m->dir)
    remove_tree (m->dir);
  free (m->dir);
  free (m->address);
  memset (m, 0, sizeof *m);
}

/* Start the bus and the mock; false (the test skips) when either cannot run here. */
static bool
mock_start (mock_bus *m, const char *behavior)
{
  memset (m, 0, sizeof *m);
  const char *src = getenv ("KP_TEST_SOURCE_ROOT");
  kp_cleanup_free char *daemon_path = kp_find_program ("dbus-daemon");
  if (src == NULL || daemon_path == NULL || access ("/usr/bin/python3", X_OK) < 0)
    return false;
  m->dir = make_temp_dir ();
  make_dir (m->dir, "tree");
  if (behavior)
    write_text (m->dir, "behavior", behavior);
  m->address = xasprintf ("unix:path=%s/bus", m->dir);
  kp_cleanup_free char *listen = xasprintf ("--address=%s", m->address);
  char *daemon_argv[] = { "dbus-daemon", "--session", "--nofork", "--nopidfile", listen, NULL };
  m->daemon = spawn_quiet (daemon_argv, -1);
  kp_cleanup_free char *socket = xasprintf ("%s/bus", m->dir);
  for (int i = 0; i < 500 && !exists (socket); i++)
    usleep (10000);
  kp_cleanup_free char *script = xasprintf ("%s/tests/mock/mock-systemd1.py", src);
  int fds[2];
  assert_int_equal (pipe (fds), 0);
  char *mock_argv[] = { "/usr/bin/python3", script, m->address, m->dir, NULL };
  m->mock = spawn_quiet (mock_argv, fds[1]);
  close (fds[1]);
  char line[16] = "";
  struct pollfd p = { fds[0], POLLIN, 0 };
  ssize_t n = poll (&p, 1, 15000) > 0 ? read (fds[0], line, sizeof line - 1) : 0;
  close (fds[0]);
  if (!exists (socket) || n <= 0 || strncmp (line, "ready", 5) != 0)
    {
      mock_stop (m);
      return false;
    }
  return true;
}

#define START_MOCK_OR_SKIP(m, behavior)                                                     \
  do                                                                                         \
    {                                                                                        \
      if (!mock_start ((m), (behavior)))                                                     \
        {                                                                                    \
          print_message ("skipped: needs dbus-daemon and python3-dbus with python3-gi\n");   \
          skip ();                                                                           \
        }                                                                                    \
    }                                                                                        \
  while (0)

/* A fake v2 tree where our cgroup (a terminal's scope) is not delegated to us. */
static kp_cgroup_host
undelegated_host (const mock_bus *m, char **tree, char **proc)
{
  *tree = xasprintf ("%s/tree", m->dir);
  write_text (*tree, "cgroup.controllers", "cpu memory pids\n");
  make_dir (*tree, "user.slice");
  make_dir (*tree, "user.slice/term.scope");
  write_text (*tree, "user.slice/term.scope/cgroup.procs", "");
  *proc = xasprintf ("%s/proc_cgroup", m->dir);
  write_text (m->dir, "proc_cgroup", "0::/user.slice/term.scope\n");
  return (kp_cgroup_host) { .root = *tree, .proc_cgroup_path = *proc, .user = "u",
                            .bus_address = m->address };
}

static void
test_v2_systemd_scope (void **state)
{
  mock_bus m;
  START_MOCK_OR_SKIP (&m, NULL);
  kp_cleanup_free char *tree = NULL, *proc = NULL;
  kp_cgroup_host host = undelegated_host (&m, &tree, &proc);
  kp_cgroup_limits l = { .memory_limit_mb = 64, .pids_max = 10 };
  kp_cleanup_error kp_error *err = NULL;
  /* The fake tree has no memory.max for the run to write (the kernel makes it): getting
   * that far below the new scope is what this proves. */
  assert_null (kp_cgroup_create (&l, "run-1", &host, &err));
  kp_cleanup_free char *want = xasprintf (
      "set resource limits: write '67108864' to '%s/user.slice/run-1.scope/run-1/memory.max': "
      "%s",
      tree, strerror (ENOENT));
  assert_string_equal (err->message, want);
  /* The controllers were enabled in the delegated scope, for the runs below it. */
  kp_cleanup_free char *scope = xasprintf ("%s/user.slice/run-1.scope", tree);
  kp_cleanup_free char *sc = xasprintf ("%s/cgroup.subtree_control", scope);
  kp_cleanup_error kp_error *rerr = NULL;
  kp_cleanup_free char *text = kp_file_read (sc, 4096, NULL, &rerr);
  assert_string_equal (text, "+memory +pids");
  /* What was asked of systemd: a delegated scope holding us, failing if it exists. */
  kp_cleanup_free char *calls_path = xasprintf ("%s/calls.json", m.dir);
  kp_cleanup_free char *calls = kp_file_read (calls_path, 1 << 16, NULL, &rerr);
  assert_non_null (calls);
  kp_cleanup_free char *pids = xasprintf ("\"PIDs\": [%d]", (int) getpid ());
  assert_non_null (strstr (calls, "\"name\": \"run-1.scope\""));
  assert_non_null (strstr (calls, "\"mode\": \"fail\""));
  assert_non_null (strstr (calls, "\"Delegate\": true"));
  assert_non_null (strstr (calls, pids));
  mock_stop (&m);
}

static void
test_v2_systemd_scope_job_failed (void **state)
{
  mock_bus m;
  START_MOCK_OR_SKIP (&m, "failed");
  kp_cleanup_free char *tree = NULL, *proc = NULL;
  kp_cgroup_host host = undelegated_host (&m, &tree, &proc);
  kp_cgroup_limits l = { .pids_max = 10 };
  kp_cleanup_error kp_error *err = NULL;
  assert_null (kp_cgroup_create (&l, "run-2", &host, &err));
  assert_int_equal (err->status, KP_EXIT_RUNTIME);
  assert_string_equal (err->message,
                       "resource limits: your systemd user manager could not start "
                       "run-2.scope: failed");
  assert_non_null (err->hint);
  mock_stop (&m);
}

static void
test_v2_systemd_scope_refused (void **state)
{
  mock_bus m;
  START_MOCK_OR_SKIP (&m, "refuse");
  kp_cleanup_free char *tree = NULL, *proc = NULL;
  kp_cgroup_host host = undelegated_host (&m, &tree, &proc);
  kp_cgroup_limits l = { .memory_limit_mb = 32 };
  kp_cleanup_error kp_error *err = NULL;
  assert_null (kp_cgroup_create (&l, "run-3", &host, &err));
  assert_int_equal (err->status, KP_EXIT_RUNTIME);
  assert_non_null (strstr (err->message, "refused the scope run-3.scope: Unit run-3.scope already exists."));
  mock_stop (&m);
}

static void
test_v2_without_a_manager (void **state)
{
  kp_cleanup_free char *root = make_temp_dir ();
  write_text (root, "cgroup.controllers", "cpu memory pids\n");
  make_dir (root, "term.scope");
  write_text (root, "term.scope/cgroup.procs", "");
  kp_cgroup_host host = { .root = root, .proc_cgroup = "0::/term.scope\n", .user = "u",
                          .bus_address = "" };
  kp_cgroup_limits l = { .pids_max = 10 };
  kp_cleanup_error kp_error *err = NULL;
  assert_null (kp_cgroup_create (&l, "run-4", &host, &err));
  assert_non_null (strstr (err->message, "your cgroup is not delegated to you"));
  assert_non_null (strstr (err->hint, "Delegate=yes"));
  remove_tree (root);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_parse_proc_hybrid),
    cmocka_unit_test (test_parse_proc_v1),
    cmocka_unit_test (test_parse_proc_v2),
    cmocka_unit_test (test_mountinfo),
    cmocka_unit_test (test_weight),
    cmocka_unit_test (test_no_limits_creates_nothing),
    cmocka_unit_test (test_empty_root_refused),
    cmocka_unit_test (test_v1_no_writable_place),
    cmocka_unit_test (test_v1_delegated_found_and_cleaned),
    cmocka_unit_test (test_v2_missing_controller),
    cmocka_unit_test (test_v2_enables_controllers),
    cmocka_unit_test (test_v2_from_self_leaf),
    cmocka_unit_test (test_bad_name),
    cmocka_unit_test (test_v2_systemd_scope),
    cmocka_unit_test (test_v2_systemd_scope_job_failed),
    cmocka_unit_test (test_v2_systemd_scope_refused),
    cmocka_unit_test (test_v2_without_a_manager),
    cmocka_unit_test_teardown (test_host_memory_oom, teardown_host),
    cmocka_unit_test_teardown (test_host_pids_fork_bomb, teardown_host),
    cmocka_unit_test_teardown (test_host_name_taken, teardown_host),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
