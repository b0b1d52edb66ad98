/* test-doctor.c — the doctor's report contract, its parsers, and that its probes tell the
 * truth: the overlay and user namespace checks are compared with independent probes made
 * with unshare(1), and failure paths are forced with strace fault injection.
 *
 * Runs as root (CI) and as an unprivileged user; every assertion holds in both cases. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "base/fs.h"
#include "engine/doctor-internal.h"
#include "engine/doctor.h"

#include <errno.h>
#include <pwd.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/magic.h>

static const char *const expected_ids[] = {
  "kernel", "userns", "subids", "newuidmap", "overlay", "fuse-overlayfs", "cgroup",
  "gpgv", "keyrings", "runtime-dir", "store", "network", "crun",
};

static char self_exe[4096];

/* ---- helpers ------------------------------------------------------------------------ */

static char *
make_temp_dir (void)
{
  const char *base = getenv ("TMPDIR");
  char *dir = xasprintf ("%s/kp-test-doctor-XXXXXX", base && base[0] == '/' ? base : "/tmp");
  assert_non_null (mkdtemp (dir));
  return dir;
}

static void
write_text (const char *path, const char *text, size_t len)
{
  int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  assert_true (fd >= 0);
  assert_int_equal (kp_write_all (fd, text, len), 0);
  close (fd);
}

static size_t
count_entries (const char *dir)
{
  kp_cleanup_dir DIR *d = opendir (dir);
  assert_non_null (d);
  size_t n = 0;
  struct dirent *de;
  while ((de = readdir (d)) != NULL)
    if (strcmp (de->d_name, ".") != 0 && strcmp (de->d_name, "..") != 0)
      n++;
  return n;
}

static bool
program_exists (const char *name)
{
  kp_cleanup_free char *p = kp_find_program (name);
  return p != NULL;
}

static kp_check_status
status_of (const kp_doctor_report *r, const char *id)
{
  const kp_check *c = kp_doctor_report_find (r, id);
  assert_non_null (c);
  return c->status;
}

static void
assert_contract (const kp_doctor_report *r)
{
  assert_int_equal (r->len, KP_N_ELEMENTS (expected_ids));
  const char *const *ids = kp_doctor_check_ids ();
  kp_check_status worst = KP_CHECK_OK;
  for (size_t i = 0; i < KP_N_ELEMENTS (expected_ids); i++)
    {
      size_t seen = 0;
      for (size_t j = 0; j < r->len; j++)
        if (strcmp (r->checks[j].id, expected_ids[i]) == 0)
          seen++;
      assert_int_equal (seen, 1);
      assert_string_equal (ids[i], r->checks[i].id);
    }
  assert_null (ids[KP_N_ELEMENTS (expected_ids)]);
  for (size_t i = 0; i < r->len; i++)
    {
      const kp_check *c = &r->checks[i];
      assert_true (c->status == KP_CHECK_OK || c->status == KP_CHECK_WARN
                   || c->status == KP_CHECK_FAIL || c->status == KP_CHECK_SKIP);
      assert_non_null (c->title);
      assert_true (c->title[0] != '\0');
      assert_non_null (c->detail);
      assert_true (c->detail[0] != '\0');
      assert_null (strchr (c->detail, '\n'));
      if (c->status == KP_CHECK_WARN || c->status == KP_CHECK_FAIL)
        {
          assert_non_null (c->fix);
          assert_true (c->fix[0] != '\0');
          assert_null (strchr (c->fix, '\n'));
        }
      else
        assert_null (c->fix);
      if (c->status == KP_CHECK_FAIL)
        worst = KP_CHECK_FAIL;
      else if (c->status == KP_CHECK_WARN && worst != KP_CHECK_FAIL)
        worst = KP_CHECK_WARN;
    }
  assert_int_equal (kp_doctor_worst (r), worst);
}

/* Run a shell command; its exit status, or -1 when it did not exit normally. */
static int
run_shell (const char *cmd)
{
  int st = system (cmd);
  if (st == -1 || !WIFEXITED (st))
    return -1;
  return WEXITSTATUS (st);
}

/* ---- the report --------------------------------------------------------------------- */

static void
test_report_contract (void **state)
{
  kp_cleanup_free char *store = make_temp_dir ();
  kp_doctor_options opts = { .store_path = store };
  kp_cleanup_doctor_report kp_doctor_report *r = kp_doctor_run (&opts);
  assert_contract (r);
  if (getuid () == 0)
    assert_int_equal (status_of (r, "subids"), KP_CHECK_OK);
  assert_int_equal (kp_doctor_remove_tree (store), 0);

  kp_cleanup_doctor_report kp_doctor_report *none = kp_doctor_run (NULL);
  assert_contract (none);
  assert_int_equal (status_of (none, "store"), KP_CHECK_SKIP);
}

static void
test_quick_skips_forked_probes (void **state)
{
  kp_doctor_options opts = { .quick = true };
  kp_cleanup_doctor_report kp_doctor_report *r = kp_doctor_run (&opts);
  assert_contract (r);
  assert_int_equal (status_of (r, "overlay"), KP_CHECK_SKIP);
  const kp_check *userns = kp_doctor_report_find (r, "userns");
  assert_true (userns->status == KP_CHECK_FAIL || strstr (userns->detail, "quick") != NULL);
}

static void
test_status_names_and_worst (void **state)
{
  assert_string_equal (kp_check_status_name (KP_CHECK_OK), "ok");
  assert_string_equal (kp_check_status_name (KP_CHECK_WARN), "warn");
  assert_string_equal (kp_check_status_name (KP_CHECK_FAIL), "fail");
  assert_string_equal (kp_check_status_name (KP_CHECK_SKIP), "skip");

  kp_check checks[3] = { { .status = KP_CHECK_SKIP }, { .status = KP_CHECK_SKIP },
                         { .status = KP_CHECK_SKIP } };
  kp_doctor_report r = { checks, 3 };
  assert_int_equal (kp_doctor_worst (&r), KP_CHECK_OK);
  checks[1].status = KP_CHECK_WARN;
  assert_int_equal (kp_doctor_worst (&r), KP_CHECK_WARN);
  checks[2].status = KP_CHECK_OK;
  checks[0].status = KP_CHECK_FAIL;
  assert_int_equal (kp_doctor_worst (&r), KP_CHECK_FAIL);
  assert_null (kp_doctor_report_find (&r, "kernel"));
  kp_doctor_report empty = { NULL, 0 };
  assert_int_equal (kp_doctor_worst (&empty), KP_CHECK_OK);
}

/* ---- subordinate id files ----------------------------------------------------------- */

static void
test_subid_parser (void **state)
{
  kp_cleanup_free char *dir = make_temp_dir ();
  kp_cleanup_free char *path = xasprintf ("%s/subuid", dir);
  static const char text[] = "# comment\n"
                             "   # indented comment\n"
                             "\n"
                             "   \t \n"
                             "kpuser:100000:65536\n"
                             "other:200000:65536\n"
                             "kpuserx:250000:10\n"
                             "  kpuser:300000:1000   \n"
                             "1234:400000:10\n"
                             "12345:500000:7\r\n"
                             "kpuser:bad:10\n"
                             "kpuser:1:2:3\n"
                             "kpuser::5\n"
                             ":1:2\n"
                             "kpuser:10:0\n"
                             "kpuser:4294967290:10\n"
                             "kpuser: 5:6\n"
                             "kpuser:4294967295:1\n"
                             "kpuser:99999999999:1\n"
                             "kpuser:+5:6\n"
                             "kpuser 700000 10\n"
                             "kpuser:4294967285:10"; /* the last line has no newline */
  write_text (path, text, sizeof text - 1);

  kp_cleanup_error kp_error *err = NULL;
  kp_subid_ranges r;
  assert_int_equal (kp_subid_read (path, "kpuser", 1234, &r, &err), 0);
  assert_int_equal (r.len, 4);
  assert_int_equal (r.ranges[0].start, 100000);
  assert_int_equal (r.ranges[0].count, 65536);
  assert_int_equal (r.ranges[1].start, 300000);
  assert_int_equal (r.ranges[1].count, 1000);
  assert_int_equal (r.ranges[2].start, 400000); /* matched by numeric uid */
  assert_int_equal (r.ranges[2].count, 10);
  assert_int_equal (r.ranges[3].start, 4294967285u); /* ends at 4294967294: allowed */
  assert_int_equal (r.ranges[3].count, 10);
  assert_int_equal (r.total, 65536 + 1000 + 10 + 10);
  assert_int_equal (r.malformed, 11);
  kp_subid_ranges_clear (&r);

  /* No user name (no passwd entry): the numeric uid still matches. */
  assert_int_equal (kp_subid_read (path, NULL, 12345, &r, &err), 0);
  assert_int_equal (r.len, 1);
  assert_int_equal (r.ranges[0].start, 500000);
  assert_int_equal (r.total, 7);
  kp_subid_ranges_clear (&r);

  /* Nobody else's ranges leak in. */
  assert_int_equal (kp_subid_read (path, "nobody-here", 99, &r, &err), 0);
  assert_int_equal (r.len, 0);
  assert_int_equal (r.total, 0);
  kp_subid_ranges_clear (&r);

  write_text (path, "", 0);
  assert_int_equal (kp_subid_read (path, "kpuser", 1234, &r, &err), 0);
  assert_int_equal (r.len, 0);
  assert_int_equal (r.malformed, 0);
  kp_subid_ranges_clear (&r);

  kp_cleanup_free char *missing = xasprintf ("%s/absent", dir);
  assert_int_equal (kp_subid_read (missing, "kpuser", 1234, &r, &err), -1);
  assert_non_null (err);
  assert_int_equal (err->errno_value, ENOENT);
  assert_int_equal (r.len, 0);
  assert_int_equal (kp_doctor_remove_tree (dir), 0);
}

/* ---- cgroups ------------------------------------------------------------------------ */

static void
test_cgroup_parser (void **state)
{
  kp_cgroup_entries e;
  kp_cgroup_parse_proc ("12:pids:/user.slice\n"
                               "4:memory:/process_api/abc\n"
                               "1:name=systemd:/init.scope\n"
                               "2:cpu,cpuacct:/a:b\n"
                               "garbage\n"
                               "x:cpuset:/\n"
                               "3::/no-controllers-on-v1\n"
                               "5:blkio:relative\n"
                               "0:memory:/v2-with-controllers\n"
                               "6:devices:\n"
                               "\n"
                               "0::/user.slice/user-1000.slice/session-1.scope",
                               &e);
  assert_int_equal (e.len, 5);
  assert_int_equal (e.malformed, 6);
  const kp_cgroup_entry *en = kp_cgroup_entries_find (&e, "cpu");
  assert_non_null (en);
  assert_int_equal (en->hierarchy, 2);
  assert_string_equal (en->path, "/a:b"); /* a path may contain ':' */
  assert_ptr_equal (kp_cgroup_entries_find (&e, "cpuacct"), en);
  en = kp_cgroup_entries_find (&e, "memory");
  assert_non_null (en);
  assert_string_equal (en->path, "/process_api/abc");
  en = kp_cgroup_entries_find (&e, "name=systemd");
  assert_non_null (en);
  assert_string_equal (en->path, "/init.scope");
  en = kp_cgroup_entries_find (&e, NULL);
  assert_non_null (en);
  assert_int_equal (en->hierarchy, 0);
  assert_string_equal (en->path, "/user.slice/user-1000.slice/session-1.scope");
  assert_null (kp_cgroup_entries_find (&e, "cpuset"));
  assert_null (kp_cgroup_entries_find (&e, "systemd"));
  assert_null (kp_cgroup_entries_find (&e, "cpu,cpuacct"));
  kp_cgroup_entries_clear (&e);

  kp_cgroup_parse_proc ("", &e);
  assert_int_equal (e.len, 0);
  assert_null (kp_cgroup_entries_find (&e, NULL));
  kp_cgroup_entries_clear (&e);

  kp_cgroup_parse_proc ("0::/\n", &e);
  assert_int_equal (e.len, 1);
  assert_string_equal (kp_cgroup_entries_find (&e, NULL)->path, "/");
  kp_cgroup_entries_clear (&e);
}

static void
test_cgroup_dir_from_mountinfo (void **state)
{
  static const char mi[]
      = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
        "35 31 0:32 /process_api /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
        "34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset\n"
        "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:7 master:2 - cgroup cgroup "
        "rw,cpu,cpuacct\n"
        "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate\n"
        "50 31 0:40 / /mnt/with\\040space rw - cgroup cgroup rw,pids\n"
        "broken line\n"
        "60 31 0:41 / /x rw - cgroup\n";
  kp_cleanup_free char *a = kp_cgroup_mount_dir (mi, "memory", "/process_api/abc");
  assert_string_equal (a, "/sys/fs/cgroup/memory/abc");
  kp_cleanup_free char *b = kp_cgroup_mount_dir (mi, "memory", "/process_api");
  assert_string_equal (b, "/sys/fs/cgroup/memory");
  assert_null (kp_cgroup_mount_dir (mi, "memory", "/process_apix/abc"));
  assert_null (kp_cgroup_mount_dir (mi, "memory", "/elsewhere"));
  kp_cleanup_free char *c = kp_cgroup_mount_dir (mi, "cpu", "/");
  assert_string_equal (c, "/sys/fs/cgroup/cpu,cpuacct");
  kp_cleanup_free char *d = kp_cgroup_mount_dir (mi, "cpuacct", "/x/y");
  assert_string_equal (d, "/sys/fs/cgroup/cpu,cpuacct/x/y");
  kp_cleanup_free char *e = kp_cgroup_mount_dir (mi, NULL, "/user.slice");
  assert_string_equal (e, "/sys/fs/cgroup/unified/user.slice");
  kp_cleanup_free char *f = kp_cgroup_mount_dir (mi, "pids", "/a");
  assert_string_equal (f, "/mnt/with space/a");
  kp_cleanup_free char *g = kp_cgroup_mount_dir (mi, "cpuset", "/");
  assert_string_equal (g, "/sys/fs/cgroup/cpuset");
  assert_null (kp_cgroup_mount_dir (mi, "blkio", "/"));
  assert_null (kp_cgroup_mount_dir ("", NULL, "/"));
}

/* The version in the report is the one statfs(2) sees, and a writable cgroup is claimed
 * only when the caller can really write it. */
static void
test_cgroup_check_matches_host (void **state)
{
  struct statfs sfs;
  if (statfs ("/sys/fs/cgroup", &sfs) < 0)
    skip ();
  kp_doctor_options opts = { .quick = true };
  kp_cleanup_doctor_report kp_doctor_report *r = kp_doctor_run (&opts);
  const kp_check *c = kp_doctor_report_find (r, "cgroup");
  if ((unsigned long) sfs.f_type == CGROUP2_SUPER_MAGIC)
    assert_true (kp_str_has_prefix (c->detail, "cgroup v2"));
  else if ((unsigned long) sfs.f_type == TMPFS_MAGIC)
    {
      assert_true (kp_str_has_prefix (c->detail, "cgroup v1"));
      struct statfs ufs;
      bool hybrid = statfs ("/sys/fs/cgroup/unified", &ufs) == 0
                    && (unsigned long) ufs.f_type == CGROUP2_SUPER_MAGIC;
      assert_int_equal (strstr (c->detail, "hybrid") != NULL, hybrid);
    }
  assert_true (c->status == KP_CHECK_OK || c->status == KP_CHECK_WARN);
  if (c->status == KP_CHECK_OK && access ("/sys/fs/cgroup", F_OK) == 0
      && (unsigned long) sfs.f_type == TMPFS_MAGIC)
    {
      /* ok on v1 means our memory cgroup, or the karapace-USER one an administrator
       * delegated, is writable: check it independently */
      kp_cleanup_error kp_error *err = NULL;
      kp_cleanup_free char *self = kp_file_read ("/proc/self/cgroup", 1 << 20, NULL, &err);
      kp_cleanup_free char *mi = kp_file_read ("/proc/self/mountinfo", 16 << 20, NULL, &err);
      assert_non_null (self);
      assert_non_null (mi);
      kp_cgroup_entries e;
      kp_cgroup_parse_proc (self, &e);
      const kp_cgroup_entry *m = kp_cgroup_entries_find (&e, "memory");
      assert_non_null (m);
      kp_cleanup_free char *dir = kp_cgroup_mount_dir (mi, "memory", m->path);
      assert_non_null (dir);
      kp_cleanup_free char *top = kp_cgroup_mount_point (mi, "memory");
      struct passwd *pw = getpwuid (getuid ());
      kp_cleanup_free char *delegated
          = top && pw ? xasprintf ("%s/karapace-%s", top, pw->pw_name) : NULL;
      assert_true (access (dir, W_OK) == 0 || (delegated && access (delegated, W_OK) == 0));
      kp_cgroup_entries_clear (&e);
    }
}

/* ---- probes tell the truth ---------------------------------------------------------- */

/* The same thing the overlay probe does, done by unshare(1) and the shell. */
static const char independent_overlay_probe[]
    = "d=$(mktemp -d) || exit 99; "
      "unshare --user --map-root-user --mount sh -c '"
      "mount -t tmpfs none \"$1\" && mkdir \"$1/l\" \"$1/u\" \"$1/w\" \"$1/m\" && "
      ": > \"$1/l/old\" && "
      "mount -t overlay overlay -o lowerdir=\"$1/l\",upperdir=\"$1/u\",workdir=\"$1/w\","
      "userxattr \"$1/m\" && "
      "echo probe > \"$1/m/new\" && test -f \"$1/u/new\" && "
      "rm \"$1/m/old\" && test -c \"$1/u/old\"' sh \"$d\" >/dev/null 2>&1; "
      "rc=$?; rmdir \"$d\"; exit $rc";

static void
test_overlay_check_tells_the_truth (void **state)
{
  if (!program_exists ("unshare"))
    {
      print_message ("skipped: unshare(1) is not installed, no independent probe\n");
      skip ();
    }
  int independent = run_shell (independent_overlay_probe);
  int userns_independent = run_shell ("unshare --user --map-root-user --mount true "
                                      ">/dev/null 2>&1");
  assert_true (independent >= 0 && independent != 99);

  kp_doctor_options opts = { 0 };
  kp_cleanup_doctor_report kp_doctor_report *r = kp_doctor_run (&opts);
  const kp_check *overlay = kp_doctor_report_find (r, "overlay");
  const kp_check *userns = kp_doctor_report_find (r, "userns");
  print_message ("independent overlay probe: %d; doctor: %s (%s)\n", independent,
                 kp_check_status_name (overlay->status), overlay->detail);
  if (independent == 0)
    assert_int_equal (overlay->status, KP_CHECK_OK);
  else
    assert_true (overlay->status == KP_CHECK_WARN || overlay->status == KP_CHECK_FAIL);
  if (userns_independent == 0)
    assert_int_equal (userns->status, KP_CHECK_OK);
  else
    assert_int_equal (userns->status, KP_CHECK_FAIL);
}

/* Probes leave nothing behind: not in the scratch directory, not in the store. */
static void
test_probes_leave_nothing_behind (void **state)
{
  kp_cleanup_free char *scratch = make_temp_dir ();
  kp_cleanup_free char *store = make_temp_dir ();
  kp_cleanup_free char *store_tmp = xasprintf ("%s/tmp", store);
  assert_int_equal (mkdir (store_tmp, 0700), 0);

  kp_cleanup_free char *old_tmpdir = getenv ("TMPDIR") ? xstrdup (getenv ("TMPDIR")) : NULL;
  kp_cleanup_free char *old_xdg
      = getenv ("XDG_RUNTIME_DIR") ? xstrdup (getenv ("XDG_RUNTIME_DIR")) : NULL;
  setenv ("TMPDIR", scratch, 1);
  unsetenv ("XDG_RUNTIME_DIR");

  kp_doctor_options opts = { .store_path = store };
  kp_doctor_report *r = kp_doctor_run (&opts);
  assert_contract (r);
  const kp_check *overlay = kp_doctor_report_find (r, "overlay");
  if (overlay->status == KP_CHECK_OK)
    assert_non_null (strstr (overlay->detail, "store"));
  kp_doctor_report_free (r);

  assert_int_equal (count_entries (scratch), 0);
  assert_int_equal (count_entries (store_tmp), 0);
  assert_int_equal (count_entries (store), 1);

  if (old_tmpdir)
    setenv ("TMPDIR", old_tmpdir, 1);
  else
    unsetenv ("TMPDIR");
  if (old_xdg)
    setenv ("XDG_RUNTIME_DIR", old_xdg, 1);
  assert_int_equal (kp_doctor_remove_tree (scratch), 0);
  assert_int_equal (kp_doctor_remove_tree (store), 0);
}

static int
probe_sleeps (void *data, kp_probe_result *res)
{
  sleep (30);
  res->ok = 1;
  return 0;
}

static int
probe_exits (void *data, kp_probe_result *res)
{
  _exit (3);
}

static int
probe_killed (void *data, kp_probe_result *res)
{
  kill (getpid (), SIGKILL);
  return 0;
}

static int
probe_reports (void *data, kp_probe_result *res)
{
  snprintf (res->message, sizeof res->message, "%s", (const char *) data);
  res->ok = 1;
  return 0;
}

static void
test_probe_runner (void **state)
{
  kp_probe_result res;
  struct timespec t0, t1;
  clock_gettime (CLOCK_MONOTONIC, &t0);
  assert_int_equal (kp_doctor_probe (probe_sleeps, NULL, 200, &res), -1);
  clock_gettime (CLOCK_MONOTONIC, &t1);
  assert_int_equal (res.ok, 0);
  assert_int_equal (res.errnum, ETIMEDOUT);
  assert_non_null (strstr (res.message, "200 ms"));
  assert_true (t1.tv_sec - t0.tv_sec < 5);
  /* the child was reaped, not left as a zombie */
  assert_int_equal (waitpid (-1, NULL, WNOHANG), -1);
  assert_int_equal (errno, ECHILD);

  assert_int_equal (kp_doctor_probe (probe_exits, NULL, 2000, &res), -1);
  assert_non_null (strstr (res.message, "status 3"));
  assert_int_equal (kp_doctor_probe (probe_killed, NULL, 2000, &res), -1);
  assert_non_null (strstr (res.message, "signal 9"));
  assert_int_equal (kp_doctor_probe (probe_reports, (void *) "hello", 2000, &res), 0);
  assert_int_equal (res.ok, 1);
  assert_string_equal (res.message, "hello");
}

/* Force the failure paths with strace fault injection: the report must say so. */
static void
report_under_strace (const char *inject, const char *timeout, char *out, size_t size)
{
  kp_cleanup_free char *cmd
      = xasprintf ("ASAN_OPTIONS=detect_leaks=0 strace -f -o /dev/null -e inject=%s '%s' "
                   "--report %s",
                   inject, self_exe, timeout);
  FILE *p = popen (cmd, "r");
  assert_non_null (p);
  size_t n = fread (out, 1, size - 1, p);
  out[n] = '\0';
  assert_int_equal (pclose (p), 0);
}

static void
test_failures_are_reported (void **state)
{
  if (!program_exists ("strace") || run_shell ("strace -o /dev/null true 2>/dev/null") != 0)
    {
      print_message ("skipped: strace is missing or cannot trace here\n");
      skip ();
    }
  char out[16384];
  report_under_strace ("unshare:error=EPERM", "5000", out, sizeof out);
  assert_non_null (strstr (out, "userns fail unshare(CLONE_NEWUSER): Operation not permitted"));
  assert_non_null (strstr (out, "overlay fail "));

  /* The third mount is the overlay (after "/ private" and the tmpfs); that the failure is
   * the injected one can only be seen where user namespaces work at all. */
  kp_cleanup_doctor_report kp_doctor_report *clean = kp_doctor_run (NULL);
  if (status_of (clean, "userns") != KP_CHECK_OK)
    return;
  report_under_strace ("mount:error=EINVAL:when=3", "5000", out, sizeof out);
  assert_non_null (strstr (out, "userns ok"));
  assert_null (strstr (out, "overlay ok"));
  assert_non_null (strstr (out, "mount -t overlay -o userxattr: Invalid argument"));
  /* A probe that hangs is covered by test_probe_runner: delaying a traced child with
   * strace holds it in ptrace stops that SIGKILL cannot cut short. */
}

/* ---- the runtime directory and the store -------------------------------------------- */

static void
test_runtime_dir (void **state)
{
  kp_cleanup_free char *old_xdg
      = getenv ("XDG_RUNTIME_DIR") ? xstrdup (getenv ("XDG_RUNTIME_DIR")) : NULL;
  kp_cleanup_free char *dir = make_temp_dir ();
  kp_doctor_options opts = { .quick = true };

  setenv ("XDG_RUNTIME_DIR", dir, 1);
  assert_int_equal (chmod (dir, 0700), 0);
  kp_doctor_report *r = kp_doctor_run (&opts);
  assert_int_equal (status_of (r, "runtime-dir"), KP_CHECK_OK);
  kp_doctor_report_free (r);

  assert_int_equal (chmod (dir, 0755), 0);
  r = kp_doctor_run (&opts);
  assert_int_not_equal (status_of (r, "runtime-dir"), KP_CHECK_OK);
  assert_non_null (strstr (kp_doctor_report_find (r, "runtime-dir")->detail, "mode 0755"));
  kp_doctor_report_free (r);

  setenv ("XDG_RUNTIME_DIR", "relative/dir", 1);
  r = kp_doctor_run (&opts);
  assert_int_not_equal (status_of (r, "runtime-dir"), KP_CHECK_OK);
  kp_doctor_report_free (r);

  unsetenv ("XDG_RUNTIME_DIR");
  r = kp_doctor_run (&opts);
  const kp_check *c = kp_doctor_report_find (r, "runtime-dir");
  assert_true (c->status == KP_CHECK_WARN || c->status == KP_CHECK_FAIL);
  kp_cleanup_free char *fallback = xasprintf ("/tmp/karapace-%u", (unsigned) getuid ());
  assert_non_null (strstr (c->detail, fallback));
  kp_doctor_report_free (r);

  if (old_xdg)
    setenv ("XDG_RUNTIME_DIR", old_xdg, 1);
  assert_int_equal (kp_doctor_remove_tree (dir), 0);
}

static void
test_store (void **state)
{
  kp_cleanup_free char *dir = make_temp_dir ();
  kp_cleanup_free char *absent = xasprintf ("%s/a/b/store", dir);
  kp_cleanup_free char *file = xasprintf ("%s/file", dir);
  write_text (file, "x", 1);

  kp_doctor_options opts = { .store_path = absent, .quick = true };
  kp_doctor_report *r = kp_doctor_run (&opts);
  const kp_check *c = kp_doctor_report_find (r, "store");
  assert_true (c->status == KP_CHECK_OK || c->status == KP_CHECK_WARN);
  assert_non_null (strstr (c->detail, "does not exist yet"));
  assert_non_null (strstr (c->detail, " free"));
  kp_doctor_report_free (r);

  opts.store_path = file;
  r = kp_doctor_run (&opts);
  assert_int_equal (status_of (r, "store"), KP_CHECK_FAIL);
  kp_doctor_report_free (r);

  kp_cleanup_free char *below_file = xasprintf ("%s/sub", file);
  opts.store_path = below_file;
  r = kp_doctor_run (&opts);
  assert_int_equal (status_of (r, "store"), KP_CHECK_FAIL);
  kp_doctor_report_free (r);

  if (getuid () != 0) /* root writes anywhere */
    {
      assert_int_equal (chmod (dir, 0500), 0);
      opts.store_path = dir;
      r = kp_doctor_run (&opts);
      assert_int_equal (status_of (r, "store"), KP_CHECK_FAIL);
      kp_doctor_report_free (r);
      assert_int_equal (chmod (dir, 0700), 0);
    }
  assert_int_equal (kp_doctor_remove_tree (dir), 0);
}

static void
test_remove_tree (void **state)
{
  kp_cleanup_free char *dir = make_temp_dir ();
  kp_cleanup_free char *sub = xasprintf ("%s/work", dir);
  kp_cleanup_free char *locked = xasprintf ("%s/work/work", dir);
  kp_cleanup_free char *f = xasprintf ("%s/work/file", dir);
  assert_int_equal (mkdir (sub, 0700), 0);
  assert_int_equal (mkdir (locked, 0), 0); /* as overlayfs leaves its work directory */
  write_text (f, "x", 1);
  assert_int_equal (chmod (sub, 0700), 0);
  assert_int_equal (kp_doctor_remove_tree (dir), 0);
  assert_int_equal (access (dir, F_OK), -1);
  assert_int_equal (kp_doctor_remove_tree (dir), 0); /* already gone is fine */
}

/* ---- entry point -------------------------------------------------------------------- */

/* `test-doctor --report [TIMEOUT_MS]` prints "ID STATUS DETAIL" lines: the strace tests
 * run this binary in that mode under fault injection. */
static int
print_report (const char *timeout)
{
  kp_doctor_options opts = { .timeout_ms = timeout ? (unsigned) atoi (timeout) : 0 };
  kp_cleanup_doctor_report kp_doctor_report *r = kp_doctor_run (&opts);
  for (size_t i = 0; i < r->len; i++)
    printf ("%s %s %s\n", r->checks[i].id, kp_check_status_name (r->checks[i].status),
            r->checks[i].detail);
  return 0;
}

int
main (int argc, char **argv)
{
  if (argc >= 2 && strcmp (argv[1], "--report") == 0)
    return print_report (argc >= 3 ? argv[2] : NULL);
  ssize_t n = readlink ("/proc/self/exe", self_exe, sizeof self_exe - 1);
  if (n > 0)
    self_exe[n] = '\0';

  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_report_contract),
    cmocka_unit_test (test_quick_skips_forked_probes),
    cmocka_unit_test (test_status_names_and_worst),
    cmocka_unit_test (test_subid_parser),
    cmocka_unit_test (test_cgroup_parser),
    cmocka_unit_test (test_cgroup_dir_from_mountinfo),
    cmocka_unit_test (test_cgroup_check_matches_host),
    cmocka_unit_test (test_overlay_check_tells_the_truth),
    cmocka_unit_test (test_probes_leave_nothing_behind),
    cmocka_unit_test (test_probe_runner),
    cmocka_unit_test (test_failures_are_reported),
    cmocka_unit_test (test_runtime_dir),
    cmocka_unit_test (test_store),
    cmocka_unit_test (test_remove_tree),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
