/* test-userns.c — the store's user namespace: the id map read from subuid/subgid files,
 * and that a function or command run inside sees what the contract promises (root, the
 * mapping, private mounts) and that its errors, crashes and exit statuses come back intact.
 *
 * Runs as root (CI: no user namespace, a private mount namespace only) and as an
 * unprivileged user (with or without subordinate ranges); every test states which case it
 * covers and skips the others with a reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "base/fs.h"
#include "sandbox/subid.h"
#include "sandbox/sync.h"
#include "sandbox/userns-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- helpers ------------------------------------------------------------------------ */

static char *
make_temp_dir (void)
{
  const char *base = getenv ("TMPDIR");
  char *dir = xasprintf ("%s/kp-test-userns-XXXXXX", base && base[0] == '/' ? base : "/tmp");
  assert_non_null (mkdtemp (dir));
  return dir;
}

static void
write_text (const char *path, const char *text)
{
  int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  assert_true (fd >= 0);
  assert_int_equal (kp_write_all (fd, text, strlen (text)), 0);
  close (fd);
}

static void
assert_range (const kp_idmap_range *r, uint32_t inside, uint32_t outside, uint32_t count)
{
  assert_int_equal (r->inside, inside);
  assert_int_equal (r->outside, outside);
  assert_int_equal (r->count, count);
}

static size_t
count_open_fds (void)
{
  kp_cleanup_dir DIR *d = opendir ("/proc/self/fd");
  assert_non_null (d);
  size_t n = 0;
  struct dirent *de;
  while ((de = readdir (d)) != NULL)
    if (de->d_name[0] != '.')
      n++;
  return n;
}

/* Can this user run kp_userns_run at all? (Unprivileged user namespaces may be off.) */
static bool
userns_available (void)
{
  if (geteuid () == 0)
    return true;
  pid_t pid = fork ();
  assert_true (pid >= 0);
  if (pid == 0)
    _exit (unshare (CLONE_NEWUSER) == 0 ? 0 : 1);
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

/* ---- the id map --------------------------------------------------------------------- */

static void
test_idmap_from_files (void **state)
{
  kp_cleanup_free char *dir = make_temp_dir ();
  kp_cleanup_free char *subuid = xasprintf ("%s/subuid", dir);
  kp_cleanup_free char *subgid = xasprintf ("%s/subgid", dir);
  write_text (subuid, "# ranges\n"
                      "other:200000:65536\n"
                      "kpuser:100000:65536\n"
                      "1234:300000:1000\n"        /* by numeric uid */
                      "kpuser:100500:10\n"        /* overlaps the first: skipped */
                      "kpuser:1200:100\n"         /* holds the caller's own uid: skipped */
                      "kpuser:bad:line\n"
                      "kpuser:500000:5\n");
  write_text (subgid, "kpuser:600000:65536\n");

  kp_cleanup_error kp_error *err = NULL;
  kp_idmap map;
  assert_int_equal (kp_idmap_build (&map, 1234, 2345, "kpuser", subuid, subgid, &err), 0);
  assert_null (err);
  assert_true (map.full);
  assert_int_equal (map.n_uid, 4);
  assert_range (&map.uid[0], 0, 1234, 1);
  assert_range (&map.uid[1], 1, 100000, 65536); /* a 65536 range gives inside 1..65536 */
  assert_range (&map.uid[2], 65537, 300000, 1000);
  assert_range (&map.uid[3], 66537, 500000, 5);
  assert_int_equal (map.n_gid, 2);
  assert_range (&map.gid[0], 0, 2345, 1);
  assert_range (&map.gid[1], 1, 600000, 65536);

  /* Matched by uid alone when the user has no name. */
  assert_int_equal (kp_idmap_build (&map, 1234, 2345, NULL, subuid, subuid, &err), 0);
  assert_true (map.full);
  assert_int_equal (map.n_uid, 2);
  assert_range (&map.uid[1], 1, 300000, 1000);

  /* Somebody else's ranges never leak in. */
  assert_int_equal (kp_idmap_build (&map, 77, 77, "nobody-here", subuid, subgid, &err), 0);
  assert_false (map.full);
  assert_int_equal (map.n_uid, 1);
  assert_int_equal (map.n_gid, 1);
  assert_range (&map.uid[0], 0, 77, 1);

  assert_int_equal (remove (subuid), 0);
  assert_int_equal (remove (subgid), 0);
  assert_int_equal (rmdir (dir), 0);
}

static void
test_idmap_limits (void **state)
{
  kp_cleanup_free char *dir = make_temp_dir ();
  kp_cleanup_free char *subuid = xasprintf ("%s/subuid", dir);
  kp_cleanup_free char *subgid = xasprintf ("%s/subgid", dir);
  kp_cleanup_free char *missing = xasprintf ("%s/absent", dir);

  /* Ten ranges: the first seven fit beside 0 → caller. */
  kp_cleanup_buf kp_buf text = KP_BUF_INIT;
  for (unsigned i = 0; i < 10; i++)
    kp_buf_printf (&text, "u:%u:100\n", 100000 + i * 1000);
  write_text (subuid, kp_buf_str (&text));
  /* One range nearly as large as the id space; a later one inside it is skipped. */
  write_text (subgid, "u:10:4294967200\nu:4000000000:4\n");

  kp_cleanup_error kp_error *err = NULL;
  kp_idmap map;
  assert_int_equal (kp_idmap_build (&map, 1, 1, "u", subuid, subgid, &err), 0);
  assert_true (map.full);
  assert_int_equal (map.n_uid, KP_IDMAP_MAX_RANGES);
  for (size_t i = 1; i < map.n_uid; i++)
    assert_range (&map.uid[i], 1 + (uint32_t) (i - 1) * 100, 100000 + (uint32_t) (i - 1) * 1000,
                  100);
  assert_int_equal (map.n_gid, 2);
  assert_range (&map.gid[1], 1, 10, 4294967200u);

  /* A missing subgid file: only uid ranges, so neither is used. */
  assert_int_equal (kp_idmap_build (&map, 1, 1, "u", subuid, missing, &err), 0);
  assert_false (map.full);
  assert_int_equal (map.n_uid, 1);
  assert_int_equal (map.n_gid, 1);

  /* Missing files are "no ranges"; a file that cannot be read is an error. */
  assert_int_equal (kp_idmap_build (&map, 1, 1, "u", missing, missing, &err), 0);
  assert_false (map.full);
  assert_int_equal (kp_idmap_build (&map, 1, 1, "u", dir, subgid, &err), -1);
  assert_non_null (err);
  assert_non_null (strstr (err->message, "is a directory"));
  assert_non_null (err->hint);

  assert_int_equal (remove (subuid), 0);
  assert_int_equal (remove (subgid), 0);
  assert_int_equal (rmdir (dir), 0);
}

static void
test_idmap_for_caller (void **state)
{
  kp_cleanup_error kp_error *err = NULL;
  kp_idmap map;
  assert_int_equal (kp_idmap_for_caller (&map, &err), 0);
  assert_range (&map.uid[0], 0, getuid (), 1);
  assert_range (&map.gid[0], 0, getgid (), 1);
  assert_true (map.full ? map.n_uid > 1 && map.n_gid > 1 : map.n_uid == 1 && map.n_gid == 1);
}

/* ---- frames ------------------------------------------------------------------------- */

static void
test_sync_frames (void **state)
{
  int fds[2];
  kp_cleanup_error kp_error *err = NULL;
  assert_int_equal (kp_sync_pair (fds, &err), 0);
  assert_true (fcntl (fds[0], F_GETFD) & FD_CLOEXEC);

  kp_error e = { .status = 2, .errno_value = ENOSPC, .line = 3, .column = 4 };
  e.message = xmalloc (20001);
  memset (e.message, 'm', 20000);
  e.message[20000] = '\0';
  e.hint = "do this";
  e.file = "karapace.toml";
  assert_int_equal (kp_sync_send (fds[0], KP_SYNC_RESULT, -1, &e), 0);
  assert_int_equal (kp_sync_send (fds[0], KP_SYNC_GO, 0, NULL), 0);
  free (e.message);

  kp_sync_kind kind;
  int value;
  kp_cleanup_error kp_error *carried = NULL;
  assert_int_equal (kp_sync_recv (fds[1], &kind, &value, &carried, &err), 1);
  assert_int_equal (kind, KP_SYNC_RESULT);
  assert_int_equal (value, -1);
  assert_non_null (carried);
  assert_int_equal (carried->status, 2);
  assert_int_equal (carried->errno_value, ENOSPC);
  assert_int_equal (carried->line, 3);
  assert_int_equal (carried->column, 4);
  assert_string_equal (carried->hint, "do this"); /* kept although the message was cut */
  assert_string_equal (carried->file, "karapace.toml");
  assert_true (strlen (carried->message) > 4000 && strlen (carried->message) < 20000);

  kp_error *none = NULL;
  assert_int_equal (kp_sync_recv (fds[1], &kind, &value, &none, &err), 1);
  assert_int_equal (kind, KP_SYNC_GO);
  assert_null (none);

  /* Garbage is an error, a closed peer is end-of-file. */
  assert_int_equal (send (fds[0], "hello", 5, 0), 5);
  assert_int_equal (kp_sync_recv (fds[1], &kind, &value, &none, &err), -1);
  assert_non_null (err);
  assert_null (none);
  close (fds[0]);
  assert_int_equal (kp_sync_recv (fds[1], &kind, &value, &none, &err), 0);
  close (fds[1]);
}

/* ---- kp_userns_run ------------------------------------------------------------------ */

static int
fn_check_root (void *data, kp_error **err)
{
  if (getuid () != 0 || geteuid () != 0 || getgid () != 0 || getegid () != 0)
    return kp_error_set (err, 1, "inside: uid %u euid %u gid %u egid %u", (unsigned) getuid (),
                         (unsigned) geteuid (), (unsigned) getgid (), (unsigned) getegid ());
  *(int *) data = 1; /* a write the parent must not see: the child has its own memory */
  return 0;
}

static void
test_run_is_root (void **state)
{
  SKIP_WITHOUT_USERNS ();
  size_t fds_before = count_open_fds ();
  int touched = 0;
  kp_cleanup_error kp_error *err = NULL;
  int r = kp_userns_run (fn_check_root, &touched, &err);
  if (r < 0)
    fail_msg ("%s", err->message);
  assert_null (err);
  assert_int_equal (touched, 0);
  assert_int_equal (count_open_fds (), fds_before); /* no socket or pipe left behind */
  int status;
  assert_int_equal (waitpid (-1, &status, WNOHANG), -1); /* every child reaped */
  assert_int_equal (errno, ECHILD);
}

static int
fn_fail (void *data, kp_error **err)
{
  kp_error_errno (err, EXDEV, "inside: link '%s'", (const char *) data);
  kp_error_set_status (err, KP_EXIT_STORE);
  kp_error_prefix (err, "unpack");
  kp_error_hint (err, "run 'karapace verify-store'");
  return -1;
}

static int
fn_fail_at (void *data, kp_error **err)
{
  return kp_error_at (err, "karapace.toml", 7, 9, "bad key");
}

static int
fn_fail_silently (void *data, kp_error **err)
{
  return -1;
}

static void
test_run_carries_errors (void **state)
{
  SKIP_WITHOUT_USERNS ();
  kp_cleanup_error kp_error *err = NULL;
  assert_int_equal (kp_userns_run (fn_fail, "a/b", &err), -1);
  assert_non_null (err);
  kp_cleanup_free char *want = xasprintf ("unpack: inside: link 'a/b': %s", strerror (EXDEV));
  assert_string_equal (err->message, want);
  assert_string_equal (err->hint, "run 'karapace verify-store'");
  assert_int_equal (err->status, KP_EXIT_STORE);
  assert_int_equal (err->errno_value, EXDEV);
  assert_null (err->file);
  kp_error_freep (&err);

  assert_int_equal (kp_userns_run (fn_fail_at, NULL, &err), -1);
  assert_string_equal (err->message, "bad key");
  assert_string_equal (err->file, "karapace.toml");
  assert_int_equal (err->line, 7);
  assert_int_equal (err->column, 9);
  assert_int_equal (err->status, KP_EXIT_MANIFEST);
  assert_null (err->hint);
  kp_error_freep (&err);

  assert_int_equal (kp_userns_run (fn_fail_silently, NULL, &err), -1);
  assert_non_null (err);
  assert_non_null (strstr (err->message, "without saying why"));
  kp_error_freep (&err);

  /* A NULL err is allowed. */
  assert_int_equal (kp_userns_run (fn_fail, "x", NULL), -1);
}

static int
fn_abort (void *data, kp_error **err)
{
  /* No core file from a crash we asked for. */
  struct rlimit none = { 0, 0 };
  setrlimit (RLIMIT_CORE, &none);
  signal (SIGABRT, SIG_DFL);
  abort ();
}

static int
fn_exit (void *data, kp_error **err)
{
  _exit (3);
}

static void
test_run_crash (void **state)
{
  SKIP_WITHOUT_USERNS ();
  kp_cleanup_error kp_error *err = NULL;
  assert_int_equal (kp_userns_run (fn_abort, NULL, &err), -1);
  assert_non_null (err);
  if (strstr (err->message, "SIGABRT") == NULL)
    fail_msg ("no SIGABRT in '%s'", err->message);
  assert_int_equal (err->status, KP_EXIT_RUNTIME);
  kp_error_freep (&err);

  assert_int_equal (kp_userns_run (fn_exit, NULL, &err), -1);
  assert_non_null (strstr (err->message, "exited with status 3"));
}

typedef struct chown_probe
{
  const char *path;
  uid_t uid;
  gid_t gid;
} chown_probe;

static int
fn_chown (void *data, kp_error **err)
{
  chown_probe *p = data;
  int fd = open (p->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0)
    return kp_error_errno (err, errno, "create %s", p->path);
  close (fd);
  if (chown (p->path, p->uid, p->gid) < 0)
    return kp_error_errno (err, errno, "chown %s", p->path);
  return 0;
}

static int
fn_remove (void *data, kp_error **err)
{
  if (unlink (((chown_probe *) data)->path) < 0)
    return kp_error_errno (err, errno, "unlink");
  return 0;
}

static void
test_run_chown_subordinate (void **state)
{
  SKIP_WITHOUT_USERNS ();
  kp_cleanup_error kp_error *err = NULL;
  kp_idmap map;
  assert_int_equal (kp_idmap_for_caller (&map, &err), 0);
  if (geteuid () != 0 && !map.full)
    {
      fprintf (stderr, "skip: no subordinate ranges for this user in /etc/subuid and "
                       "/etc/subgid\n");
      skip ();
    }
  kp_cleanup_free char *dir = make_temp_dir ();
  kp_cleanup_free char *path = xasprintf ("%s/owned", dir);
  chown_probe probe = { path, 1, 1 };
  int r = kp_userns_run (fn_chown, &probe, &err);
  if (r < 0)
    fail_msg ("%s", err->message);
  struct stat st;
  assert_int_equal (stat (path, &st), 0);
  uid_t want_uid = geteuid () == 0 ? 1 : map.uid[1].outside;
  gid_t want_gid = geteuid () == 0 ? 1 : map.gid[1].outside;
  assert_int_equal (st.st_uid, want_uid);
  assert_int_equal (st.st_gid, want_gid);
  /* Inside, the file's owner is id 1 and root of the namespace can remove it. */
  assert_int_equal (kp_userns_run (fn_remove, &probe, &err), 0);
  assert_int_equal (rmdir (dir), 0);
}

static int
fn_mount_tmpfs (void *data, kp_error **err)
{
  const char *dir = data;
  if (mount ("kp-test", dir, "tmpfs", 0, "size=64k") < 0)
    return kp_error_errno (err, errno, "mount tmpfs on %s", dir);
  kp_cleanup_free char *file = xasprintf ("%s/inside", dir);
  int fd = open (file, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0)
    return kp_error_errno (err, errno, "create %s", file);
  close (fd);
  return 0;
}

static void
test_run_private_mounts (void **state)
{
  SKIP_WITHOUT_USERNS ();
  kp_cleanup_free char *dir = make_temp_dir ();
  struct stat before, after;
  assert_int_equal (stat (dir, &before), 0);
  kp_cleanup_error kp_error *err = NULL;
  int r = kp_userns_run (fn_mount_tmpfs, dir, &err);
  if (r < 0)
    fail_msg ("%s", err->message);
  /* The tmpfs and its file stayed in the child's mount namespace. */
  assert_int_equal (stat (dir, &after), 0);
  assert_int_equal (after.st_dev, before.st_dev);
  kp_cleanup_free char *file = xasprintf ("%s/inside", dir);
  assert_int_equal (access (file, F_OK), -1);
  assert_int_equal (errno, ENOENT);
  assert_int_equal (rmdir (dir), 0);
}

/* A newuidmap that refuses, found first on $PATH: its words reach the error. */
static void
test_run_helper_failure (void **state)
{
  SKIP_WITHOUT_USERNS ();
  kp_cleanup_error kp_error *err = NULL;
  kp_idmap map;
  assert_int_equal (kp_idmap_for_caller (&map, &err), 0);
  if (geteuid () == 0 || !map.full)
    {
      fprintf (stderr, "skip: newuidmap is only used by a user with subordinate ranges\n");
      skip ();
    }
  kp_cleanup_free char *dir = make_temp_dir ();
  kp_cleanup_free char *fake = xasprintf ("%s/newuidmap", dir);
  write_text (fake, "#!/bin/sh\necho \"newuidmap: write to uid_map failed: refused\" >&2\nexit 1\n");
  assert_int_equal (chmod (fake, 0755), 0);
  kp_cleanup_free char *old_path = xstrdup (getenv ("PATH") ? getenv ("PATH") : "/usr/bin:/bin");
  kp_cleanup_free char *new_path = xasprintf ("%s:%s", dir, old_path);
  setenv ("PATH", new_path, 1);
  int touched = 0;
  int r = kp_userns_run (fn_check_root, &touched, &err);
  setenv ("PATH", old_path, 1);
  assert_int_equal (r, -1);
  assert_non_null (err);
  if (strstr (err->message, "exited with status 1: newuidmap: write to uid_map failed: refused")
      == NULL)
    fail_msg ("unexpected message '%s'", err->message);
  assert_non_null (strstr (err->message, "map subordinate ids"));
  assert_int_equal (err->status, KP_EXIT_RUNTIME);
  assert_non_null (err->hint);
  int status;
  assert_int_equal (waitpid (-1, &status, WNOHANG), -1); /* the child was stopped and reaped */
  assert_int_equal (remove (fake), 0);
  assert_int_equal (rmdir (dir), 0);
}

/* ---- commands ----------------------------------------------------------------------- */

static void
test_spawn_status (void **state)
{
  SKIP_WITHOUT_USERNS ();
  kp_cleanup_error kp_error *err = NULL;
  int status = -1;
  char *exit7[] = { "sh", "-c", "test \"$(id -u)\" = 0 && exit 7", NULL };
  assert_int_equal (kp_userns_spawn (exit7, &status, &err), 0);
  assert_int_equal (status, 7);

  char *killed[] = { "sh", "-c", "kill -TERM $$", NULL };
  assert_int_equal (kp_userns_spawn (killed, &status, &err), 0);
  assert_int_equal (status, 128 + SIGTERM);

  char *missing[] = { "/nonexistent/kp-no-such-command", NULL };
  assert_int_equal (kp_userns_spawn (missing, &status, &err), -1);
  assert_non_null (err);
  assert_int_equal (err->status, 127);
  assert_int_equal (err->errno_value, ENOENT);
  assert_non_null (strstr (err->message, "kp-no-such-command"));
  kp_error_freep (&err);

  char *empty[] = { NULL };
  assert_int_equal (kp_userns_spawn (empty, &status, &err), -1);
  assert_int_equal (err->status, KP_EXIT_USAGE);

  int wstatus;
  assert_int_equal (waitpid (-1, &wstatus, WNOHANG), -1);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_idmap_from_files),
    cmocka_unit_test (test_idmap_limits),
    cmocka_unit_test (test_idmap_for_caller),
    cmocka_unit_test (test_sync_frames),
    cmocka_unit_test (test_run_is_root),
    cmocka_unit_test (test_run_carries_errors),
    cmocka_unit_test (test_run_crash),
    cmocka_unit_test (test_run_chown_subordinate),
    cmocka_unit_test (test_run_private_mounts),
    cmocka_unit_test (test_run_helper_failure),
    cmocka_unit_test (test_spawn_status),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
