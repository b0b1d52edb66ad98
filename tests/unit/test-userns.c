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

/* Build the map for uid/gid `self` from one subuid text (used for both files). */
static void
build_from_text (kp_idmap *map, uint32_t self, const char *text)
{
  kp_cleanup_free char *dir = make_temp_dir ();
  kp_cleanup_free char *path = xasprintf ("%s/subid", dir);
  write_text (path, text);
  kp_cleanup_error kp_error *err = NULL;
  assert_int_equal (kp_idmap_build (map, self, self, "u", path, path, &err), 0);
  assert_null (err);
  assert_int_equal (remove (path), 0);
  assert_int_equal (rmdir (dir), 0);
}

/* Check the uid map against the definition: every inside id below len(S) except self maps
 * to S[i], self maps to itself, nothing else is mapped, and no two lines overlap inside or
 * outside. S is given as ranges (start, count) pairs. */
static void
assert_keep_id (const kp_idmap *map, uint32_t self, const kp_subid_range *s, size_t n_s)
{
  assert_true (map->full);
  assert_int_equal (map->self_uid, self);
  assert_true (map->n_uid <= KP_IDMAP_MAX_RANGES);
  uint64_t total = 0;
  for (size_t i = 0; i < n_s; i++)
    total += s[i].count;
  uint64_t mapped = 0;
  bool self_seen = false;
  for (size_t i = 0; i < map->n_uid; i++)
    {
      const kp_idmap_range *r = &map->uid[i];
      assert_true (r->count > 0);
      assert_true ((uint64_t) r->inside + r->count <= UINT32_MAX);
      if (i > 0) /* sorted by inside id, so no inside overlap */
        assert_true ((uint64_t) map->uid[i - 1].inside + map->uid[i - 1].count <= r->inside);
      for (size_t j = 0; j < i; j++)
        {
          const kp_idmap_range *o = &map->uid[j];
          assert_false (r->outside < (uint64_t) o->outside + o->count
                        && o->outside < (uint64_t) r->outside + r->count);
        }
      mapped += r->count;
      if (r->inside == self)
        {
          assert_range (r, self, self, 1);
          self_seen = true;
          continue;
        }
      /* Each inside id i of the line is S[i]: find S[i] for the line's first id and
       * check that the line stays within that range. */
      assert_true (r->inside + (uint64_t) r->count <= total);
      uint64_t base = 0;
      size_t k = 0;
      while (base + s[k].count <= r->inside)
        base += s[k++].count;
      assert_int_equal (r->outside, s[k].start + (r->inside - base));
      assert_true (r->inside + (uint64_t) r->count <= base + s[k].count);
      assert_false (self >= r->inside && self < (uint64_t) r->inside + r->count);
    }
  assert_true (self_seen);
  assert_int_equal (mapped, self < total ? total : total + 1);
}

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
  assert_int_equal (map.self_uid, 1234);
  assert_int_equal (map.self_gid, 2345);
  /* S = 100000..165535, 300000..300999, 500000..500004; 1234 is kept, S[1234] unused. */
  assert_int_equal (map.n_uid, 5);
  assert_range (&map.uid[0], 0, 100000, 1234);
  assert_range (&map.uid[1], 1234, 1234, 1);
  assert_range (&map.uid[2], 1235, 101235, 65536 - 1235);
  assert_range (&map.uid[3], 65536, 300000, 1000);
  assert_range (&map.uid[4], 66536, 500000, 5);
  assert_int_equal (map.n_gid, 3);
  assert_range (&map.gid[0], 0, 600000, 2345);
  assert_range (&map.gid[1], 2345, 2345, 1);
  assert_range (&map.gid[2], 2346, 602346, 65536 - 2346);

  /* Matched by uid alone when the user has no name; 1234 lies above len(S). */
  assert_int_equal (kp_idmap_build (&map, 1234, 2345, NULL, subuid, subuid, &err), 0);
  assert_true (map.full);
  assert_int_equal (map.n_uid, 2);
  assert_range (&map.uid[0], 0, 300000, 1000);
  assert_range (&map.uid[1], 1234, 1234, 1);
  assert_int_equal (map.n_gid, 2);
  assert_range (&map.gid[0], 0, 300000, 1000);
  assert_range (&map.gid[1], 2345, 2345, 1);

  /* Somebody else's ranges never leak in; without ranges only 0 → caller. */
  assert_int_equal (kp_idmap_build (&map, 77, 78, "nobody-here", subuid, subgid, &err), 0);
  assert_false (map.full);
  assert_int_equal (map.n_uid, 1);
  assert_int_equal (map.n_gid, 1);
  assert_range (&map.uid[0], 0, 77, 1);
  assert_range (&map.gid[0], 0, 78, 1);
  assert_int_equal (map.self_uid, 0);
  assert_int_equal (map.self_gid, 0);

  assert_int_equal (remove (subuid), 0);
  assert_int_equal (remove (subgid), 0);
  assert_int_equal (rmdir (dir), 0);
}

/* The worked example of docs/userns.md, and kptest's two ranges. */
static void
test_idmap_keep_id_layout (void **state)
{
  kp_idmap map;
  build_from_text (&map, 1002, "u:300000:65536\n");
  assert_int_equal (map.n_uid, 3);
  assert_range (&map.uid[0], 0, 300000, 1002);
  assert_range (&map.uid[1], 1002, 1002, 1);
  assert_range (&map.uid[2], 1003, 301003, 64533);
  assert_range (&map.gid[1], 1002, 1002, 1);
  kp_subid_range one[] = { { 300000, 65536 } };
  assert_keep_id (&map, 1002, one, 1);

  /* Two ranges, the caller's id in the first. */
  build_from_text (&map, 1002, "u:265536:65536\nu:400000:65536\n");
  assert_int_equal (map.n_uid, 4);
  assert_range (&map.uid[0], 0, 265536, 1002);
  assert_range (&map.uid[1], 1002, 1002, 1);
  assert_range (&map.uid[2], 1003, 266539, 64533);
  assert_range (&map.uid[3], 65536, 400000, 65536);
  kp_subid_range two[] = { { 265536, 65536 }, { 400000, 65536 } };
  assert_keep_id (&map, 1002, two, 2);

  /* kptest's ranges on the test machines: the second overlaps the first on the host and
   * is skipped. */
  build_from_text (&map, 1002, "u:265536:65536\nu:300000:65536\n");
  assert_int_equal (map.n_uid, 3);
  assert_range (&map.uid[0], 0, 265536, 1002);
  assert_range (&map.uid[1], 1002, 1002, 1);
  assert_range (&map.uid[2], 1003, 266539, 64533);
  assert_keep_id (&map, 1002, two, 1);

  /* The caller's id in the second range: that one is split. */
  build_from_text (&map, 70000, "u:265536:65536\nu:400000:65536\n");
  assert_int_equal (map.n_uid, 4);
  assert_range (&map.uid[0], 0, 265536, 65536);
  assert_range (&map.uid[1], 65536, 400000, 70000 - 65536);
  assert_range (&map.uid[2], 70000, 70000, 1);
  assert_range (&map.uid[3], 70001, 400000 + 70001 - 65536, 131072 - 70001);
  kp_subid_range second[] = { { 265536, 65536 }, { 400000, 65536 } };
  assert_keep_id (&map, 70000, second, 2);

  /* The caller's id is 0, the first id of S, the last one, and just past S. */
  kp_subid_range small[] = { { 500000, 10 } };
  uint32_t selves[] = { 0, 9, 10, 4000000 };
  for (size_t i = 0; i < KP_N_ELEMENTS (selves); i++)
    {
      build_from_text (&map, selves[i], "u:500000:10\n");
      assert_keep_id (&map, selves[i], small, 1);
    }
  build_from_text (&map, 0, "u:500000:10\n");
  assert_int_equal (map.n_uid, 2);
  assert_range (&map.uid[0], 0, 0, 1);
  assert_range (&map.uid[1], 1, 500001, 9);
  build_from_text (&map, 9, "u:500000:10\n");
  assert_int_equal (map.n_uid, 2);
  assert_range (&map.uid[0], 0, 500000, 9);
  assert_range (&map.uid[1], 9, 9, 1);
  build_from_text (&map, 10, "u:500000:10\n");
  assert_int_equal (map.n_uid, 2);
  assert_range (&map.uid[0], 0, 500000, 10);
  assert_range (&map.uid[1], 10, 10, 1);

  /* A range of one id that is exactly S[self]: it vanishes, self stays. */
  build_from_text (&map, 5, "u:600000:5\nu:700000:1\nu:800000:3\n");
  assert_int_equal (map.n_uid, 3);
  assert_range (&map.uid[0], 0, 600000, 5);
  assert_range (&map.uid[1], 5, 5, 1);
  assert_range (&map.uid[2], 6, 800000, 3);

  /* Overlaps: with the caller's own id (which sits inside the second range's span on the
   * host) and with an earlier range; both are skipped and the rest laid out in order. */
  build_from_text (&map, 1500, "u:100000:1000\nu:1000:1000\nu:100500:10\nu:200000:1000\n");
  assert_int_equal (map.n_uid, 4);
  assert_range (&map.uid[0], 0, 100000, 1000);
  assert_range (&map.uid[1], 1000, 200000, 500);
  assert_range (&map.uid[2], 1500, 1500, 1);
  assert_range (&map.uid[3], 1501, 200501, 499);
  kp_subid_range kept[] = { { 100000, 1000 }, { 200000, 1000 } };
  assert_keep_id (&map, 1500, kept, 2);
}

static void
test_idmap_limits (void **state)
{
  kp_cleanup_free char *dir = make_temp_dir ();
  kp_cleanup_free char *subuid = xasprintf ("%s/subuid", dir);
  kp_cleanup_free char *subgid = xasprintf ("%s/subgid", dir);
  kp_cleanup_free char *missing = xasprintf ("%s/absent", dir);

  /* Twelve ranges of 100: nine fit beside the caller's own line. */
  kp_cleanup_buf kp_buf text = KP_BUF_INIT;
  for (unsigned i = 0; i < 12; i++)
    kp_buf_printf (&text, "u:%u:100\n", 100000 + i * 1000);
  write_text (subuid, kp_buf_str (&text));
  /* One range nearly as large as the id space; a later one inside it is skipped. */
  write_text (subgid, "u:10:4294967200\nu:4000000000:4\n");

  kp_cleanup_error kp_error *err = NULL;
  kp_idmap map;
  /* The caller above everything laid out: its line comes last. */
  assert_int_equal (kp_idmap_build (&map, 5000, 1, "u", subuid, subgid, &err), 0);
  assert_true (map.full);
  assert_int_equal (map.n_uid, KP_IDMAP_MAX_RANGES);
  for (size_t i = 0; i + 1 < map.n_uid; i++)
    assert_range (&map.uid[i], (uint32_t) i * 100, 100000 + (uint32_t) i * 1000, 100);
  assert_range (&map.uid[KP_IDMAP_MAX_RANGES - 1], 5000, 5000, 1);
  /* gid 1 splits the huge range: inside 2.. stay below 2^32-1. */
  assert_int_equal (map.n_gid, 3);
  assert_range (&map.gid[0], 0, 10, 1);
  assert_range (&map.gid[1], 1, 1, 1);
  assert_range (&map.gid[2], 2, 12, 4294967200u - 2);

  /* The caller inside S, so splitting costs a line: the caller's line is still there and
   * the map still ends at KP_IDMAP_MAX_RANGES. */
  assert_int_equal (kp_idmap_build (&map, 250, 1, "u", subuid, subgid, &err), 0);
  assert_int_equal (map.n_uid, KP_IDMAP_MAX_RANGES);
  assert_range (&map.uid[0], 0, 100000, 100);
  assert_range (&map.uid[1], 100, 101000, 100);
  assert_range (&map.uid[2], 200, 102000, 50);
  assert_range (&map.uid[3], 250, 250, 1);
  assert_range (&map.uid[4], 251, 102051, 49);
  assert_range (&map.uid[KP_IDMAP_MAX_RANGES - 1], 700, 107000, 100);
  kp_subid_range eight[8];
  for (unsigned i = 0; i < 8; i++)
    eight[i] = (kp_subid_range) { 100000 + i * 1000, 100 };
  assert_keep_id (&map, 250, eight, 8);

  /* The caller in a range that no longer fits after the split: its own line is there
   * anyway, after the ranges that fit. */
  assert_int_equal (kp_idmap_build (&map, 1150, 1, "u", subuid, subgid, &err), 0);
  assert_int_equal (map.n_uid, KP_IDMAP_MAX_RANGES);
  assert_range (&map.uid[KP_IDMAP_MAX_RANGES - 1], 1150, 1150, 1);
  kp_subid_range nine[9];
  for (unsigned i = 0; i < 9; i++)
    nine[i] = (kp_subid_range) { 100000 + i * 1000, 100 };
  assert_keep_id (&map, 1150, nine, 9);

  /* Every outside id but the caller's own in use: inside ids still end below 2^32-1. */
  write_text (subuid, "u:2:4294967293\nu:0:1\n");
  assert_int_equal (kp_idmap_build (&map, 1, 1, "u", subuid, subgid, &err), 0);
  assert_int_equal (map.n_uid, 4);
  assert_range (&map.uid[0], 0, 2, 1);
  assert_range (&map.uid[1], 1, 1, 1);
  assert_range (&map.uid[2], 2, 4, 4294967291u);
  assert_range (&map.uid[3], 4294967293u, 0, 1);
  kp_subid_range whole[] = { { 2, 4294967293u }, { 0, 1 } };
  assert_keep_id (&map, 1, whole, 2);

  /* A missing subgid file: only uid ranges, so neither is used. */
  assert_int_equal (kp_idmap_build (&map, 1, 1, "u", subuid, missing, &err), 0);
  assert_false (map.full);
  assert_int_equal (map.n_uid, 1);
  assert_int_equal (map.n_gid, 1);
  assert_range (&map.uid[0], 0, 1, 1);

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
  if (!map.full)
    {
      assert_int_equal (map.n_uid, 1);
      assert_int_equal (map.n_gid, 1);
      assert_range (&map.uid[0], 0, getuid (), 1);
      assert_range (&map.gid[0], 0, getgid (), 1);
      assert_int_equal (map.self_uid, 0);
      assert_int_equal (map.self_gid, 0);
      return;
    }
  assert_int_equal (map.self_uid, getuid ());
  assert_int_equal (map.self_gid, getgid ());
  bool uid_seen = false, gid_seen = false;
  for (size_t i = 0; i < map.n_uid; i++)
    if (map.uid[i].inside == getuid ())
      {
        assert_range (&map.uid[i], getuid (), getuid (), 1);
        uid_seen = true;
      }
  for (size_t i = 0; i < map.n_gid; i++)
    if (map.gid[i].inside == getgid ())
      {
        assert_range (&map.gid[i], getgid (), getgid (), 1);
        gid_seen = true;
      }
  assert_true (uid_seen && gid_seen);
  assert_true (map.n_uid > 1 && map.n_gid > 1);
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

/* The host id that inside id `inside` maps to, or (u32)-1 when it is not mapped. */
static uint32_t
outside_of (const kp_idmap_range *lines, size_t n, uint32_t inside)
{
  for (size_t i = 0; i < n; i++)
    if (inside >= lines[i].inside && inside - lines[i].inside < lines[i].count)
      return lines[i].outside + (inside - lines[i].inside);
  return UINT32_MAX;
}

typedef struct stat_probe
{
  const char *path;
  uid_t uid; /* what the namespace sees */
  gid_t gid;
} stat_probe;

static int
fn_stat (void *data, kp_error **err)
{
  stat_probe *p = data;
  struct stat st;
  if (stat (p->path, &st) < 0)
    return kp_error_errno (err, errno, "stat %s", p->path);
  if (st.st_uid != p->uid || st.st_gid != p->gid)
    return kp_error_set (err, 1, "inside, %s is owned by %u:%u, not %u:%u", p->path,
                         (unsigned) st.st_uid, (unsigned) st.st_gid, (unsigned) p->uid,
                         (unsigned) p->gid);
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
  bool root = geteuid () == 0;
  kp_cleanup_free char *dir = make_temp_dir ();
  kp_cleanup_free char *path = xasprintf ("%s/owned", dir);

  /* Image ids: 0 and 1 inside are the first subordinate ids on the host. */
  uint32_t ids[] = { 0, 1 };
  for (size_t i = 0; i < KP_N_ELEMENTS (ids); i++)
    {
      chown_probe probe = { path, ids[i], ids[i] };
      int r = kp_userns_run (fn_chown, &probe, &err);
      if (r < 0)
        fail_msg ("%s", err->message);
      struct stat st;
      assert_int_equal (stat (path, &st), 0);
      uid_t want_uid = root ? ids[i] : outside_of (map.uid, map.n_uid, ids[i]);
      gid_t want_gid = root ? ids[i] : outside_of (map.gid, map.n_gid, ids[i]);
      assert_int_equal (st.st_uid, want_uid);
      assert_int_equal (st.st_gid, want_gid);
      if (!root)
        {
          assert_int_not_equal (st.st_uid, getuid ());
          assert_int_not_equal (st.st_gid, getgid ());
        }
      /* Inside, the file's owner is that id and root of the namespace can remove it. */
      stat_probe seen = { path, ids[i], ids[i] };
      if (kp_userns_run (fn_stat, &seen, &err) < 0)
        fail_msg ("%s", err->message);
      assert_int_equal (kp_userns_run (fn_remove, &probe, &err), 0);
    }

  /* The caller's own file: the caller's ids inside too, and chowning it to them inside
   * leaves it the caller's on the host. */
  write_text (path, "mine\n");
  stat_probe own = { path, getuid (), getgid () };
  if (kp_userns_run (fn_stat, &own, &err) < 0)
    fail_msg ("%s", err->message);
  assert_int_equal (remove (path), 0);
  if (!root)
    {
      chown_probe probe = { path, map.self_uid, map.self_gid };
      if (kp_userns_run (fn_chown, &probe, &err) < 0)
        fail_msg ("%s", err->message);
      struct stat st;
      assert_int_equal (stat (path, &st), 0);
      assert_int_equal (st.st_uid, getuid ());
      assert_int_equal (st.st_gid, getgid ());
      assert_int_equal (remove (path), 0);
    }
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
    cmocka_unit_test (test_idmap_keep_id_layout),
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
