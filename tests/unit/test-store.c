/* test-store.c — the store: layout, objects, records, journal, gc and verify.
 *
 * Every test works on a fresh store in a temporary directory and checks what a user relies
 * on: bytes back as written, the same id for the same bytes, corruption refused on read and
 * reported by verify, rollback of an interrupted mutation, quarantine of a bad entry. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/fs.h"
#include "base/json.h"
#include "archive/archive.h"
#include "hash/treedigest.h"
#include "sandbox/userns.h"
#include "store/store.h"

#include <archive.h>
#include <archive_entry.h>
#include <sys/mman.h>

static char *
make_temp_dir (void)
{
  const char *tmp = getenv ("TMPDIR");
  char *dir = xasprintf ("%s/test-store-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  assert_non_null (mkdtemp (dir));
  return dir;
}

static int
remove_entry (const char *path, const struct stat *st, int type, struct FTW *ftw)
{
  if (type == FTW_DP || type == FTW_D || type == FTW_DNR)
    return rmdir (path);
  return unlink (path);
}

static int
setup (void **state)
{
  char *dir = make_temp_dir ();
  *state = dir;
  return 0;
}

static int
teardown (void **state)
{
  char *dir = *state;
  nftw (dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
  free (dir);
  return 0;
}

static char *
store_path (void **state)
{
  return xasprintf ("%s/store", (char *) *state);
}

static kp_store *
open_store (void **state, unsigned flags)
{
  kp_cleanup_free char *path = store_path (state);
  kp_error *err = NULL;
  kp_store *s = kp_store_open (path, flags, &err);
  if (s == NULL)
    fail_msg ("open: %s", err->message);
  return s;
}

static void
flip_byte (const char *path, off_t offset)
{
  chmod (path, 0600);
  int fd = open (path, O_RDWR);
  assert_true (fd >= 0);
  unsigned char c;
  assert_int_equal (pread (fd, &c, 1, offset), 1);
  c ^= 0x20;
  assert_int_equal (pwrite (fd, &c, 1, offset), 1);
  close (fd);
}

static uint64_t
verify_problems (kp_store *s)
{
  kp_store_verify_report rep;
  kp_error *err = NULL;
  assert_int_equal (kp_store_verify (s, &rep, &err), 0);
  uint64_t n = rep.problems;
  kp_store_verify_report_clear (&rep);
  return n;
}

/* ---- layout ---- */

static void
test_layout_and_version (void **state)
{
  kp_cleanup_store kp_store *s = open_store (state, KP_STORE_WRITE);
  kp_cleanup_free char *path = store_path (state);
  static const char *const dirs[] = { "objects", "layers", "envs", "images",
                                      "cache",   "tmp",    "journal" };
  for (size_t i = 0; i < KP_N_ELEMENTS (dirs); i++)
    {
      kp_cleanup_free char *p = xasprintf ("%s/%s", path, dirs[i]);
      struct stat st;
      assert_int_equal (stat (p, &st), 0);
      assert_true (S_ISDIR (st.st_mode));
      assert_int_equal (st.st_mode & 07777, 0700);
    }
  kp_cleanup_free char *vpath = xasprintf ("%s/version", path);
  kp_cleanup_free char *v = kp_file_read (vpath, 100, NULL, NULL);
  assert_string_equal (v, "1\n");
  kp_store_close (kp_steal_pointer (&s));

  /* A newer format is refused with status 3 and a hint to migrate. */
  assert_int_equal (kp_file_write_atomic (vpath, "7\n", 2, 0600, false, NULL), 0);
  kp_error *err = NULL;
  assert_null (kp_store_open (path, KP_STORE_READ, &err));
  assert_int_equal (err->status, KP_EXIT_STORE);
  assert_non_null (strstr (err->hint, "karapace migrate"));
  kp_error_free (err);
}

static void
test_refuses_foreign_directory (void **state)
{
  kp_cleanup_free char *path = store_path (state);
  assert_int_equal (mkdir (path, 0700), 0);
  kp_cleanup_free char *f = xasprintf ("%s/precious.txt", path);
  assert_int_equal (kp_file_write_atomic (f, "x", 1, 0600, false, NULL), 0);
  kp_error *err = NULL;
  assert_null (kp_store_open (path, KP_STORE_WRITE, &err));
  assert_int_equal (err->status, KP_EXIT_STORE);
  assert_non_null (strstr (err->message, "not a karapace store"));
  kp_error_free (err);
}

/* A creation killed after writing version.tmp but before renaming it: the next open
 * finishes the job instead of calling the directory foreign. */
static void
test_interrupted_creation (void **state)
{
  kp_cleanup_free char *path = store_path (state);
  assert_int_equal (mkdir (path, 0700), 0);
  kp_cleanup_free char *lock = xasprintf ("%s/lock", path);
  kp_cleanup_free char *objects = xasprintf ("%s/objects", path);
  kp_cleanup_free char *tmp = xasprintf ("%s/version.tmp", path);
  assert_int_equal (kp_file_write_atomic (lock, "", 0, 0600, false, NULL), 0);
  assert_int_equal (mkdir (objects, 0700), 0);
  assert_int_equal (kp_file_write_atomic (tmp, "1", 1, 0600, false, NULL), 0);
  kp_error *err = NULL;
  kp_store *s = kp_store_open (path, KP_STORE_WRITE, &err);
  if (s == NULL)
    fail_msg ("%s", err->message);
  kp_store_close (s);
  assert_int_equal (access (tmp, F_OK), -1);
  assert_int_equal (kp_store_read_version (path, &err), KP_STORE_VERSION);
}

static void
test_lock_busy (void **state)
{
  kp_cleanup_store kp_store *s = open_store (state, KP_STORE_WRITE);
  assert_non_null (s);
  kp_cleanup_free char *path = store_path (state);
  /* flock locks belong to the open file: a second open in this process is a competitor. */
  kp_store_open_options o = { .flags = KP_STORE_READ | KP_STORE_NO_WAIT };
  kp_error *err = NULL;
  assert_null (kp_store_open_with (path, &o, &err));
  assert_int_equal (err->status, KP_EXIT_STORE);
  assert_non_null (strstr (err->message, "pid"));
  kp_error_free (err);
  err = NULL;
  kp_store_open_options t = { .flags = KP_STORE_WRITE, .lock_timeout_ms = 100,
                              .on_wait = NULL };
  int saved = dup (2);
  int devnull = open ("/dev/null", O_WRONLY);
  dup2 (devnull, 2);
  kp_store *other = kp_store_open_with (path, &t, &err);
  dup2 (saved, 2);
  close (saved);
  close (devnull);
  assert_null (other);
  assert_non_null (strstr (err->message, "gave up"));
  kp_error_free (err);
}

static void
test_readers_create_together (void **state)
{
  /* Several readers finding no store create it at once: none may wait for another. */
  kp_cleanup_free char *path = store_path (state);
  pid_t pids[8];
  for (int i = 0; i < 8; i++)
    {
      pids[i] = fork ();
      assert_true (pids[i] >= 0);
      if (pids[i] == 0)
        {
          kp_store_open_options o = { .flags = KP_STORE_READ, .lock_timeout_ms = 20000 };
          int fd = open ("/dev/null", O_WRONLY);
          dup2 (fd, 2);
          kp_store *s = kp_store_open_with (path, &o, NULL);
          if (s == NULL)
            _exit (1);
          usleep (20000); /* hold the shared lock while the others arrive */
          kp_store_close (s);
          _exit (0);
        }
    }
  for (int i = 0; i < 8; i++)
    {
      int status;
      assert_int_equal (waitpid (pids[i], &status, 0), pids[i]);
      assert_true (WIFEXITED (status) && WEXITSTATUS (status) == 0);
    }
  kp_cleanup_store kp_store *s = open_store (state, KP_STORE_READ);
  assert_int_equal (verify_problems (s), 0);
}

/* ---- objects ---- */

static void
test_object_round_trip (void **state)
{
  kp_cleanup_store kp_store *s = open_store (state, KP_STORE_WRITE);
  char id[KP_STORE_OBJECT_ID_LEN + 1], id2[KP_STORE_OBJECT_ID_LEN + 1];
  kp_error *err = NULL;
  assert_int_equal (kp_store_put (s, "hello", 5, id, &err), 0);
  /* b3sum of "hello" */
  assert_string_equal (id, "ea8f163db38682925e4491c5e58d4bb3506ef8c14eb78a86e908c5624a67200f");
  assert_int_equal (kp_store_put (s, "hello", 5, id2, &err), 0);
  assert_string_equal (id, id2);
  assert_int_equal (kp_store_has (s, id, &err), 1);
  size_t len;
  kp_cleanup_free char *data = kp_store_get (s, id, 100, &len, &err);
  assert_non_null (data);
  assert_int_equal (len, 5);
  assert_memory_equal (data, "hello", 5);

  /* Streaming put of a regular file larger than the copy buffer (copied in the kernel). */
  size_t big = 3 * 1024 * 1024 + 17;
  kp_cleanup_free uint8_t *bytes = xmalloc (big);
  for (size_t i = 0; i < big; i++)
    bytes[i] = (uint8_t) (i * 131 + (i >> 11));
  kp_cleanup_free char *file = xasprintf ("%s/big", (char *) *state);
  assert_int_equal (kp_file_write_atomic (file, bytes, big, 0600, false, NULL), 0);
  int fd = open (file, O_RDONLY);
  assert_int_equal (kp_store_put_fd (s, fd, id2, &err), 0);
  close (fd);
  uint8_t d[KP_BLAKE3_OUT_LEN];
  char hex[KP_BLAKE3_HEX_LEN + 1];
  kp_blake3_hash (bytes, big, d);
  kp_blake3_to_hex (d, hex);
  assert_string_equal (id2, hex);
  /* The same bytes through a pipe take the read/write path and give the same object. */
  int pfd[2];
  assert_int_equal (pipe (pfd), 0);
  pid_t writer = fork ();
  assert_true (writer >= 0);
  if (writer == 0)
    {
      close (pfd[0]);
      _exit (kp_write_all (pfd[1], bytes, big) == 0 ? 0 : 1);
    }
  close (pfd[1]);
  char id3[KP_STORE_OBJECT_ID_LEN + 1];
  assert_int_equal (kp_store_put_fd (s, pfd[0], id3, &err), 0);
  close (pfd[0]);
  int wstatus;
  assert_int_equal (waitpid (writer, &wstatus, 0), writer);
  assert_string_equal (id3, id2);
  uint64_t size = 0;
  assert_int_equal (kp_store_verify_object (s, id2, &size, &err), 0);
  assert_int_equal (size, big);
  kp_cleanup_free char *out = xasprintf ("%s/out", (char *) *state);
  fd = open (out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  assert_int_equal (kp_store_get_to_fd (s, id2, fd, &err), 0);
  close (fd);
  kp_cleanup_free char *copy = kp_file_read (out, big + 1, &len, &err);
  assert_int_equal (len, big);
  assert_memory_equal (copy, bytes, big);

  /* Nothing left in tmp/, and read-only handles refuse to write. */
  assert_int_equal (verify_problems (s), 0);
  kp_store_close (kp_steal_pointer (&s));
  kp_cleanup_store kp_store *ro = open_store (state, KP_STORE_READ);
  assert_int_equal (kp_store_put (ro, "x", 1, id, &err), -1);
  assert_int_equal (err->status, KP_EXIT_STORE);
  kp_error_free (err);
  err = NULL;
  assert_int_equal (kp_store_has (ro, "../../etc/passwd", &err), -1);
  kp_error_free (err);
}

static void
test_object_corruption (void **state)
{
  kp_cleanup_store kp_store *s = open_store (state, KP_STORE_WRITE);
  char id[KP_STORE_OBJECT_ID_LEN + 1];
  kp_error *err = NULL;
  assert_int_equal (kp_store_put (s, "some precious bytes", 19, id, &err), 0);
  kp_cleanup_free char *path = xasprintf ("%s/store/objects/%.2s/%s", (char *) *state, id,
                                          id + 2);
  flip_byte (path, 3);
  assert_null (kp_store_get (s, id, 100, NULL, &err));
  assert_int_equal (err->status, KP_EXIT_STORE);
  assert_non_null (strstr (err->message, id));
  assert_non_null (strstr (err->message, "corrupt"));
  kp_error_free (err);
  err = NULL;
  assert_int_equal (verify_problems (s), 1);
  /* A truncated copy is replaced by the next put of the right bytes. */
  assert_int_equal (truncate (path, 5), 0);
  assert_int_equal (kp_store_put (s, "some precious bytes", 19, id, &err), 0);
  assert_int_equal (verify_problems (s), 0);
  flip_byte (path, 3);
  /* Same-size damage is left to reads and verify; removal and a new put repair it. */
  assert_int_equal (kp_store_put (s, "some precious bytes", 19, id, &err), 0);
  assert_int_equal (verify_problems (s), 1);
  assert_int_equal (kp_store_remove_object (s, id, &err), 0);
  assert_int_equal (kp_store_put (s, "some precious bytes", 19, id, &err), 0);
  assert_int_equal (verify_problems (s), 0);
}

/* ---- records ---- */

static void
make_id (const char *seed, char out[KP_BLAKE3_HEX_LEN + 1])
{
  uint8_t d[KP_BLAKE3_OUT_LEN];
  kp_blake3_hash (seed, strlen (seed), d);
  kp_blake3_to_hex (d, out);
}

static void
write_env (kp_store *s, const char *seed, const char *name, kp_env_state state,
           const char *object)
{
  kp_env_record rec = { .state = state };
  make_id (seed, rec.env_id);
  rec.name = (char *) name;
  char *objs[] = { (char *) object, NULL };
  rec.objects = object ? objs : NULL;
  kp_error *err = NULL;
  if (kp_store_env_write (s, &rec, &err) < 0)
    fail_msg ("env write: %s", err->message);
}

static void
test_env_records (void **state)
{
  kp_cleanup_store kp_store *s = open_store (state, KP_STORE_WRITE);
  char lockobj[KP_STORE_OBJECT_ID_LEN + 1];
  kp_error *err = NULL;
  assert_int_equal (kp_store_put (s, "lock text", 9, lockobj, &err), 0);
  write_env (s, "one", "web", KP_ENV_BUILT, lockobj);
  write_env (s, "two", "db", KP_ENV_RUNNING, NULL);
  write_env (s, "three", NULL, KP_ENV_ARCHIVED, NULL);
  char one[65], two[65];
  make_id ("one", one);
  make_id ("two", two);

  kp_cleanup_env_record kp_env_record *r = kp_store_env_lookup (s, "web", &err);
  assert_non_null (r);
  assert_string_equal (r->env_id, one);
  assert_int_equal (r->state, KP_ENV_BUILT);
  assert_string_equal (r->objects[0], lockobj);
  kp_env_record_free (kp_steal_pointer (&r));
  char shortid[13];
  memcpy (shortid, two, 12);
  shortid[12] = '\0';
  r = kp_store_env_lookup (s, shortid, &err);
  assert_non_null (r);
  assert_string_equal (r->name, "db");
  kp_env_record_free (kp_steal_pointer (&r));
  r = kp_store_env_lookup (s, one, &err);
  assert_non_null (r);
  kp_env_record_free (kp_steal_pointer (&r));

  /* Names are unique, and must not look like ids. */
  kp_env_record dup = { .state = KP_ENV_DEFINED, .name = (char *) "web" };
  make_id ("four", dup.env_id);
  assert_int_equal (kp_store_env_write (s, &dup, &err), -1);
  assert_non_null (strstr (err->message, "taken"));
  kp_error_free (err);
  err = NULL;
  assert_false (kp_store_is_env_name ("cafe"));
  assert_false (kp_store_is_env_name ("a/b"));
  assert_false (kp_store_is_env_name (""));
  assert_true (kp_store_is_env_name ("my-env_2"));
  assert_null (kp_store_env_lookup (s, "nosuch", &err));
  assert_int_equal (err->status, KP_EXIT_STORE);
  kp_error_free (err);
  err = NULL;

  /* Ambiguity: find two ids sharing a 4-digit prefix, and list both. */
  char a[65], b[65];
  char seed[32];
  bool found = false;
  for (int i = 0; i < 2000000 && !found; i++)
    {
      snprintf (seed, sizeof seed, "amb-%d", i);
      make_id (seed, b);
      if (strncmp (b, one, 4) == 0)
        found = true;
    }
  assert_true (found);
  memcpy (a, one, sizeof a);
  write_env (s, seed, NULL, KP_ENV_DEFINED, NULL);
  char prefix[5];
  memcpy (prefix, a, 4);
  prefix[4] = '\0';
  assert_null (kp_store_env_lookup (s, prefix, &err));
  assert_non_null (strstr (err->message, "ambiguous"));
  char sa[13], sb[13];
  snprintf (sa, sizeof sa, "%.12s", a);
  snprintf (sb, sizeof sb, "%.12s", b);
  assert_non_null (strstr (err->message, sa));
  assert_non_null (strstr (err->message, sb));
  kp_error_free (err);
  err = NULL;

  /* A flipped byte in a record: refused on read, reported by verify. */
  kp_cleanup_free char *path = xasprintf ("%s/store/envs/%s/env.json", (char *) *state, two);
  kp_cleanup_free char *text = kp_file_read (path, 1 << 20, NULL, NULL);
  char *pos = strstr (text, "running");
  assert_non_null (pos);
  flip_byte (path, pos - text);
  assert_null (kp_store_env_read (s, two, &err));
  assert_int_equal (err->status, KP_EXIT_STORE);
  assert_non_null (strstr (err->message, "checksum"));
  kp_error_free (err);
  err = NULL;
  assert_int_equal (verify_problems (s), 1);
  assert_int_equal (kp_store_env_remove (s, two, &err), 0);
  assert_int_equal (verify_problems (s), 0);
}

/* ---- journal ---- */

static void
test_journal_rollback (void **state)
{
  kp_cleanup_free char *path = store_path (state);
  pid_t pid = fork ();
  assert_true (pid >= 0);
  if (pid == 0)
    {
      /* An interrupted mutation: a step recorded, its directory created, then death. */
      kp_store *s = kp_store_open (path, KP_STORE_WRITE, NULL);
      if (s == NULL)
        _exit (2);
      kp_store_txn *txn = kp_store_txn_begin (s, "test mutation", NULL);
      char id[65];
      make_id ("half", id);
      kp_cleanup_free char *rel = xasprintf ("envs/%s", id);
      if (kp_store_txn_undo_remove (txn, rel, NULL) < 0)
        _exit (3);
      kp_cleanup_free char *dir = xasprintf ("%s/%s", path, rel);
      mkdir (dir, 0700);
      kp_cleanup_free char *f = xasprintf ("%s/partial", dir);
      kp_file_write_atomic (f, "x", 1, 0600, false, NULL);
      _exit (0); /* no commit */
    }
  int status;
  waitpid (pid, &status, 0);
  assert_true (WIFEXITED (status) && WEXITSTATUS (status) == 0);
  char id[65];
  make_id ("half", id);
  kp_cleanup_free char *dir = xasprintf ("%s/envs/%s", path, id);
  struct stat st;
  assert_int_equal (stat (dir, &st), 0);

  /* A reader does not recover, and verify says why the store is not clean. */
  {
    kp_cleanup_store kp_store *ro = open_store (state, KP_STORE_READ);
    assert_true (verify_problems (ro) >= 1);
  }
  kp_cleanup_store kp_store *s = open_store (state, KP_STORE_WRITE);
  assert_int_equal (kp_store_last_recovery (s)->rolled_back, 1);
  assert_int_equal (stat (dir, &st), -1);
  assert_int_equal (verify_problems (s), 0);

  /* Abort runs the same steps at once; commit forgets them. */
  kp_error *err = NULL;
  kp_store_txn *txn = kp_store_txn_begin (s, "aborted", &err);
  kp_cleanup_free char *rel = xasprintf ("envs/%s", id);
  assert_int_equal (kp_store_txn_undo_remove (txn, rel, &err), 0);
  assert_int_equal (mkdir (dir, 0700), 0);
  kp_store_txn_abort (txn);
  assert_int_equal (stat (dir, &st), -1);
  txn = kp_store_txn_begin (s, "kept", &err);
  assert_int_equal (kp_store_txn_undo_remove (txn, rel, &err), 0);
  assert_int_equal (mkdir (dir, 0700), 0);
  assert_int_equal (kp_store_txn_commit (txn, &err), 0);
  assert_int_equal (stat (dir, &st), 0);
  /* Steps outside the store are refused. */
  txn = kp_store_txn_begin (s, "hostile", &err);
  assert_int_equal (kp_store_txn_undo_remove (txn, "envs/../../x", &err), -1);
  kp_error_free (err);
  err = NULL;
  assert_int_equal (kp_store_txn_undo_remove (txn, "/etc/passwd", &err), -1);
  kp_error_free (err);
  err = NULL;
  kp_store_txn_abort (txn);
}

static void
test_journal_quarantine (void **state)
{
  kp_cleanup_free char *path = store_path (state);
  {
    kp_cleanup_store kp_store *s = open_store (state, KP_STORE_WRITE);
    assert_non_null (s);
  }
  /* A hand-written entry with a wrong checksum: never run, never dropped. */
  kp_cleanup_free char *victim = xasprintf ("%s/envs/keepme", path);
  assert_int_equal (mkdir (victim, 0700), 0);
  kp_cleanup_free char *entry = xasprintf ("%s/journal/0000000000000007.json", path);
  const char *text = "{\"format\":1,\"seq\":7,\"operation\":\"x\",\"rollback\":[{\"op\":"
                     "\"remove\",\"path\":\"envs/keepme\"}],\"checksum\":\"00\"}";
  assert_int_equal (kp_file_write_atomic (entry, text, strlen (text), 0600, false, NULL), 0);
  int saved = dup (2);
  int devnull = open ("/dev/null", O_WRONLY);
  dup2 (devnull, 2);
  kp_cleanup_store kp_store *s = open_store (state, KP_STORE_WRITE);
  dup2 (saved, 2);
  close (saved);
  close (devnull);
  assert_int_equal (kp_store_last_recovery (s)->quarantined, 1);
  struct stat st;
  assert_int_equal (stat (victim, &st), 0);
  assert_int_equal (stat (entry, &st), -1);
  kp_cleanup_free char *q = xasprintf ("%s/journal/quarantine", path);
  assert_int_equal (stat (q, &st), 0);
  /* verify reports the quarantined entry (and the stray envs/keepme). */
  kp_store_verify_report rep;
  kp_error *err = NULL;
  assert_int_equal (kp_store_verify (s, &rep, &err), 0);
  kp_cleanup_free char *dump = kp_json_canonical (rep.problem_list);
  assert_non_null (strstr (dump, "quarantine"));
  kp_store_verify_report_clear (&rep);
}

/* ---- gc ---- */

static void
test_gc (void **state)
{
  kp_cleanup_store kp_store *s = open_store (state, KP_STORE_WRITE);
  kp_error *err = NULL;
  char live[65], archived[65], dead[65];
  assert_int_equal (kp_store_put (s, "live", 4, live, &err), 0);
  assert_int_equal (kp_store_put (s, "archived", 8, archived, &err), 0);
  assert_int_equal (kp_store_put (s, "dead bytes", 10, dead, &err), 0);
  write_env (s, "e1", "live", KP_ENV_RUNNING, live);
  write_env (s, "e2", "old", KP_ENV_ARCHIVED, archived);

  kp_store_gc_report rep;
  kp_store_gc_options dry = { .dry_run = true };
  assert_int_equal (kp_store_gc (s, &dry, &rep, &err), 0);
  assert_int_equal (rep.freed_objects, 1);
  assert_int_equal (rep.freed_object_bytes, 10);
  kp_store_gc_report_clear (&rep);
  assert_int_equal (kp_store_has (s, dead, &err), 1);

  assert_int_equal (kp_store_gc (s, NULL, &rep, &err), 0);
  assert_int_equal (rep.freed_objects, 1);
  assert_int_equal (rep.live_envs, 2);
  kp_store_gc_report_clear (&rep);
  assert_int_equal (kp_store_has (s, dead, &err), 0);
  assert_int_equal (kp_store_has (s, live, &err), 1);
  assert_int_equal (kp_store_has (s, archived, &err), 1);

  /* A cancelled gc stops before its first deletion. */
  assert_int_equal (kp_store_put (s, "dead bytes", 10, dead, &err), 0);
  volatile sig_atomic_t stop = 1;
  kp_store_gc_options cancel = { .cancel = &stop };
  assert_int_equal (kp_store_gc (s, &cancel, &rep, &err), 0);
  assert_true (rep.interrupted);
  kp_store_gc_report_clear (&rep);
  assert_int_equal (kp_store_has (s, dead, &err), 1);

  /* An unreadable record stops gc before anything is deleted. */
  char e1[65];
  make_id ("e1", e1);
  kp_cleanup_free char *path = xasprintf ("%s/store/envs/%s/env.json", (char *) *state, e1);
  flip_byte (path, 10);
  assert_int_equal (kp_store_gc (s, NULL, &rep, &err), -1);
  assert_int_equal (err->status, KP_EXIT_STORE);
  kp_error_free (err);
  err = NULL;
  kp_store_gc_report_clear (&rep);
  assert_int_equal (kp_store_has (s, live, &err), 1);
  assert_int_equal (kp_store_has (s, dead, &err), 1);
}

/* ---- layers ---- */

static void
test_layers (void **state)
{
  kp_cleanup_free char *src = xasprintf ("%s/src", (char *) *state);
  assert_int_equal (mkdir (src, 0755), 0);
  kp_cleanup_free char *sub = xasprintf ("%s/etc", src);
  assert_int_equal (mkdir (sub, 0755), 0);
  kp_cleanup_free char *f = xasprintf ("%s/etc/hostname", src);
  assert_int_equal (kp_file_write_atomic (f, "layered\n", 8, 0644, false, NULL), 0);
  kp_cleanup_free char *l = xasprintf ("%s/link", src);
  assert_int_equal (symlink ("etc/hostname", l), 0);
  uint8_t want[KP_BLAKE3_OUT_LEN];
  char want_hex[KP_BLAKE3_HEX_LEN + 1];
  kp_error *err = NULL;
  assert_int_equal (kp_tree_digest (AT_FDCWD, src, want, NULL, NULL, &err), 0);
  kp_blake3_to_hex (want, want_hex);

  int mfd = memfd_create ("tar", MFD_CLOEXEC);
  kp_pack_options po = { .mtime_clamp = 0 };
  assert_int_equal (kp_archive_pack (AT_FDCWD, src, mfd, &po, NULL, &err), 0);
  lseek (mfd, 0, SEEK_SET);
  kp_cleanup_store kp_store *s = open_store (state, KP_STORE_WRITE);
  char tar[KP_STORE_OBJECT_ID_LEN + 1];
  assert_int_equal (kp_store_put_fd (s, mfd, tar, &err), 0);
  close (mfd);

  char digest[KP_BLAKE3_HEX_LEN + 1];
  if (kp_store_layer_from_tar (s, tar, KP_LAYER_BASE, NULL, digest, &err) < 0)
    {
      if (err->status == KP_EXIT_RUNTIME)
        skip ();
      fail_msg ("layer: %s", err->message);
    }
  assert_string_equal (digest, want_hex);
  kp_layer_info info;
  assert_int_equal (kp_store_layer_read (s, digest, &info, &err), 0);
  assert_string_equal (info.tar, tar);
  assert_int_equal (info.kind, KP_LAYER_BASE);
  assert_int_equal (info.size, 8);
  /* Idempotent. */
  char again[KP_BLAKE3_HEX_LEN + 1];
  assert_int_equal (kp_store_layer_from_tar (s, tar, KP_LAYER_BASE, NULL, again, &err), 0);
  assert_string_equal (again, digest);
  assert_int_equal (verify_problems (s), 0);

  /* Referenced by an environment: gc keeps the layer and its tar object. */
  kp_env_record rec = { .state = KP_ENV_BUILT };
  make_id ("layered", rec.env_id);
  char *layers[] = { digest, NULL };
  rec.layers = layers;
  assert_int_equal (kp_store_env_write (s, &rec, &err), 0);
  kp_store_gc_report rep;
  assert_int_equal (kp_store_gc (s, NULL, &rep, &err), 0);
  assert_int_equal (rep.freed_objects + rep.freed_layers, 0);
  kp_store_gc_report_clear (&rep);
  assert_int_equal (kp_store_has (s, tar, &err), 1);

  /* A changed file in the tree is reported (where we may write to it). */
  kp_cleanup_free char *inside = xasprintf ("%s/store/layers/%s/tree/etc/hostname",
                                            (char *) *state, digest);
  if (access (inside, W_OK) == 0)
    {
      flip_byte (inside, 0);
      assert_int_equal (verify_problems (s), 1);
      flip_byte (inside, 0);
    }

  /* Unreferenced: gc removes layer and tar. */
  assert_int_equal (kp_store_env_remove (s, rec.env_id, &err), 0);
  assert_int_equal (kp_store_gc (s, NULL, &rep, &err), 0);
  assert_int_equal (rep.freed_layers, 1);
  assert_int_equal (rep.freed_objects, 1);
  kp_store_gc_report_clear (&rep);
  kp_cleanup_free char *ldir = xasprintf ("%s/store/layers/%s", (char *) *state, digest);
  struct stat st;
  assert_int_equal (stat (ldir, &st), -1);
  assert_int_equal (verify_problems (s), 0);
}

/* ---- ownership of layer trees ---- */

typedef struct tar_member
{
  const char *path;
  mode_t type, perm;
  uint32_t uid, gid;
  const char *text;
} tar_member;

/* A tar with these members (and no "./" entry), put into the store. */
static void
put_tar (kp_store *s, const tar_member *m, size_t n, char id[KP_STORE_OBJECT_ID_LEN + 1])
{
  kp_cleanup_close int fd = memfd_create ("tar", MFD_CLOEXEC);
  assert_true (fd >= 0);
  struct archive *w = archive_write_new ();
  archive_write_set_format_pax_restricted (w);
  assert_int_equal (archive_write_open_fd (w, fd), ARCHIVE_OK);
  for (size_t i = 0; i < n; i++)
    {
      struct archive_entry *e = archive_entry_new ();
      archive_entry_set_pathname (e, m[i].path);
      archive_entry_set_filetype (e, m[i].type);
      archive_entry_set_perm (e, m[i].perm);
      archive_entry_set_uid (e, m[i].uid);
      archive_entry_set_gid (e, m[i].gid);
      size_t len = m[i].text ? strlen (m[i].text) : 0;
      archive_entry_set_size (e, (la_int64_t) len);
      assert_int_equal (archive_write_header (w, e), ARCHIVE_OK);
      if (len)
        assert_int_equal (archive_write_data (w, m[i].text, len), (la_ssize_t) len);
      archive_entry_free (e);
    }
  assert_int_equal (archive_write_close (w), ARCHIVE_OK);
  archive_write_free (w);
  assert_int_equal (lseek (fd, 0, SEEK_SET), 0);
  kp_error *err = NULL;
  assert_int_equal (kp_store_put_fd (s, fd, id, &err), 0);
}

/* The host id of inside id `inside`: itself as root, else through the caller's map. */
static uint32_t
host_id (const kp_idmap_range *lines, size_t n, uint32_t inside)
{
  if (geteuid () == 0)
    return inside;
  for (size_t i = 0; i < n; i++)
    if (inside >= lines[i].inside && inside - lines[i].inside < lines[i].count)
      return lines[i].outside + (inside - lines[i].inside);
  fail_msg ("inside id %u is not mapped", inside);
  return 0;
}

static void
assert_host_owner (const char *dir, const char *rel, uid_t uid, gid_t gid)
{
  kp_cleanup_free char *path = xasprintf ("%s/%s", dir, rel);
  struct stat st;
  if (lstat (path, &st) < 0)
    fail_msg ("lstat %s: %s", path, strerror (errno));
  if (st.st_uid != uid || st.st_gid != gid)
    fail_msg ("%s is owned by %u:%u on the host, expected %u:%u", rel, (unsigned) st.st_uid,
              (unsigned) st.st_gid, (unsigned) uid, (unsigned) gid);
}

/* Image ids land on the host where the id map says: image root and other users on
 * subordinate ids, the caller's own id on the caller. Files the caller cannot read from
 * the host are still digested, counted by gc and removed. */
static void
test_layer_owners (void **state)
{
  kp_error *err = NULL;
  kp_idmap map;
  assert_int_equal (kp_idmap_for_caller (&map, &err), 0);
  if (geteuid () != 0 && !map.full)
    {
      fprintf (stderr, "skip: no subordinate ranges for this user, so a layer cannot hold "
                       "files of other owners\n");
      skip ();
    }
  uint32_t me = geteuid () == 0 ? 1234 : map.self_uid;
  uint32_t my_gid = geteuid () == 0 ? 1234 : map.self_gid;
  const tar_member members[] = {
    { "root/", AE_IFDIR, 0700, 0, 0, NULL },
    { "root/secret", AE_IFREG, 0600, 0, 0, "12345" },
    { "home/", AE_IFDIR, 0755, 0, 0, NULL },
    { "home/user/", AE_IFDIR, 0755, 1000, 1000, NULL },
    { "home/user/notes", AE_IFREG, 0644, 1000, 1000, "abc" },
    { "mine", AE_IFREG, 0644, me, my_gid, "caller\n" },
  };
  kp_cleanup_store kp_store *s = open_store (state, KP_STORE_WRITE);
  char tar[KP_STORE_OBJECT_ID_LEN + 1];
  put_tar (s, members, KP_N_ELEMENTS (members), tar);
  char digest[KP_BLAKE3_HEX_LEN + 1];
  if (kp_store_layer_from_tar (s, tar, KP_LAYER_BASE, NULL, digest, &err) < 0)
    {
      if (err->status == KP_EXIT_RUNTIME)
        {
          fprintf (stderr, "skip: no user namespace here: %s\n", err->message);
          skip ();
        }
      fail_msg ("layer: %s", err->message);
    }
  kp_layer_info info;
  assert_int_equal (kp_store_layer_read (s, digest, &info, &err), 0);
  assert_int_equal (info.size, 5 + 3 + 7);

  kp_cleanup_free char *tree = xasprintf ("%s/store/layers/%s/tree", (char *) *state, digest);
  uint32_t root_uid = host_id (map.uid, map.n_uid, 0);
  uint32_t root_gid = host_id (map.gid, map.n_gid, 0);
  /* The tree's root had no member: it is root's, like the rest of root's files. */
  assert_host_owner (tree, ".", root_uid, root_gid);
  assert_host_owner (tree, "root", root_uid, root_gid);
  assert_host_owner (tree, "home/user/notes", host_id (map.uid, map.n_uid, 1000),
                     host_id (map.gid, map.n_gid, 1000));
  assert_host_owner (tree, "mine", geteuid () == 0 ? me : getuid (),
                     geteuid () == 0 ? my_gid : getgid ());
  if (geteuid () != 0)
    {
      assert_int_not_equal (root_uid, getuid ());
      /* Image root is not the caller: its 0700 directory is closed to us on the host. */
      kp_cleanup_free char *secret = xasprintf ("%s/root/secret", tree);
      assert_int_equal (access (secret, R_OK), -1);
      assert_int_equal (errno, EACCES);
    }
  assert_int_equal (verify_problems (s), 0);

  /* gc counts what only the namespace can see, and removes it all. */
  kp_cleanup_free char *record = xasprintf ("%s/../layer.json", tree);
  struct stat st;
  assert_int_equal (stat (record, &st), 0);
  uint64_t want_bytes = 5 + 3 + 7 + (uint64_t) st.st_size;
  kp_store_gc_options dry = { .dry_run = true };
  kp_store_gc_report rep;
  assert_int_equal (kp_store_gc (s, &dry, &rep, &err), 0);
  assert_int_equal (rep.freed_layers, 1);
  assert_int_equal (rep.freed_layer_bytes, want_bytes);
  kp_store_gc_report_clear (&rep);
  assert_int_equal (stat (tree, &st), 0);

  assert_int_equal (kp_store_gc (s, NULL, &rep, &err), 0);
  assert_int_equal (rep.freed_layers, 1);
  assert_int_equal (rep.freed_layer_bytes, want_bytes);
  kp_store_gc_report_clear (&rep);
  assert_int_equal (lstat (tree, &st), -1);
  assert_int_equal (errno, ENOENT);
  /* Nothing left behind in tmp/ either. */
  kp_cleanup_free char *tmp = xasprintf ("%s/store/tmp", (char *) *state);
  kp_cleanup_dir DIR *d = opendir (tmp);
  assert_non_null (d);
  struct dirent *de;
  while ((de = readdir (d)) != NULL)
    if (strcmp (de->d_name, ".") && strcmp (de->d_name, ".."))
      fail_msg ("left in tmp/: %s", de->d_name);
  assert_int_equal (verify_problems (s), 0);
}

/* ---- the cache index ---- */

static void
test_cache_index (void **state)
{
  kp_cleanup_store kp_store *s = open_store (state, KP_STORE_WRITE);
  kp_error *err = NULL;
  char obj[65], got[65];
  assert_int_equal (kp_store_put (s, "a package", 9, obj, &err), 0);
  assert_int_equal (kp_store_cache_get (s, "sha256:1234", got, &err), 0);
  assert_int_equal (kp_store_cache_set (s, "sha256:1234", obj, &err), 0);
  assert_int_equal (kp_store_cache_get (s, "sha256:1234", got, &err), 1);
  assert_string_equal (got, obj);
  assert_int_equal (kp_store_cache_get (s, "sha256:12345", got, &err), 0);
  assert_int_equal (kp_store_cache_set (s, "sha256:1234", "not an id", &err), -1);
  kp_error_free (err);
  err = NULL;

  /* gc keeps what the index names... */
  kp_store_gc_report rep;
  assert_int_equal (kp_store_gc (s, NULL, &rep, &err), 0);
  assert_int_equal (rep.freed_objects, 0);
  kp_store_gc_report_clear (&rep);
  assert_int_equal (kp_store_has (s, obj, &err), 1);
  /* ...until told to drop the cache: then the object and its record go. */
  kp_store_gc_options drop = { .drop_cache = true };
  assert_int_equal (kp_store_gc (s, &drop, &rep, &err), 0);
  assert_int_equal (rep.freed_objects, 1);
  kp_store_gc_report_clear (&rep);
  assert_int_equal (kp_store_has (s, obj, &err), 0);
  assert_int_equal (kp_store_cache_get (s, "sha256:1234", got, &err), 0);
  uint8_t d[KP_BLAKE3_OUT_LEN];
  char name[KP_BLAKE3_HEX_LEN + 1];
  kp_blake3_hash ("sha256:1234", 11, d);
  kp_blake3_to_hex (d, name);
  kp_cleanup_free char *record = xasprintf ("%s/store/cache/%s", (char *) *state, name);
  assert_int_equal (access (record, F_OK), -1);

  /* A damaged record is a miss, not an error. */
  assert_int_equal (kp_store_put (s, "a package", 9, obj, &err), 0);
  assert_int_equal (kp_store_cache_set (s, "sha256:1234", obj, &err), 0);
  flip_byte (record, 20);
  assert_int_equal (kp_store_cache_get (s, "sha256:1234", got, &err), 0);
  assert_null (err);
  /* verify-store points at it. */
  assert_int_equal (verify_problems (s), 1);
}

/* ---- layers built in place ---- */

typedef struct fill_call
{
  const char *tree, *text;
} fill_call;

static int
fill_in_namespace (void *data, kp_error **err)
{
  fill_call *c = data;
  kp_cleanup_free char *path = xasprintf ("%s/hello", c->tree);
  return kp_file_write_atomic (path, c->text, strlen (c->text), 0644, true, err);
}

/* The tree is root's of the store's namespace: written from inside it. */
static int
fill_tree (const char *tree, void *data, kp_error **err)
{
  fill_call c = { tree, data };
  return kp_userns_run (fill_in_namespace, &c, err);
}

static int
fail_tree (const char *tree, void *data, kp_error **err)
{
  fill_tree (tree, data, NULL);
  return kp_error_set (err, KP_EXIT_FAILURE, "the build failed");
}

static void
test_layer_build (void **state)
{
  kp_cleanup_store kp_store *s = open_store (state, KP_STORE_WRITE);
  kp_error *err = NULL;
  char digest[KP_BLAKE3_HEX_LEN + 1];
  if (kp_store_layer_build (s, KP_LAYER_BASE, fill_tree, (void *) "world\n", digest, &err) < 0)
    fail_msg ("build: %s", err->message);
  assert_int_equal (kp_store_layer_exists (s, digest, &err), 1);
  kp_layer_info info;
  assert_int_equal (kp_store_layer_read (s, digest, &info, &err), 0);
  assert_string_equal (info.tar, "");
  assert_int_equal (info.size, 6);
  kp_cleanup_free char *file = xasprintf ("%s/store/layers/%s/tree/hello", (char *) *state,
                                          digest);
  size_t len;
  kp_cleanup_free char *text = kp_file_read (file, 100, &len, &err);
  assert_non_null (text);
  assert_string_equal (text, "world\n");
  /* The same tree again: the same digest, the layer kept. */
  char again[KP_BLAKE3_HEX_LEN + 1];
  assert_int_equal (kp_store_layer_build (s, KP_LAYER_BASE, fill_tree, (void *) "world\n",
                                          again, &err), 0);
  assert_string_equal (again, digest);

  /* A failed build leaves nothing. */
  assert_int_equal (kp_store_layer_build (s, KP_LAYER_BASE, fail_tree, (void *) "other\n",
                                          again, &err), -1);
  assert_non_null (strstr (err->message, "the build failed"));
  kp_error_free (err);
  err = NULL;
  kp_cleanup_free char *tmp = xasprintf ("%s/store/tmp", (char *) *state);
  kp_cleanup_dir DIR *d = opendir (tmp);
  assert_non_null (d);
  struct dirent *de;
  while ((de = readdir (d)) != NULL)
    if (strcmp (de->d_name, ".") && strcmp (de->d_name, ".."))
      fail_msg ("left in tmp/: %s", de->d_name);
  assert_int_equal (verify_problems (s), 0);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_layout_and_version, setup, teardown),
    cmocka_unit_test_setup_teardown (test_refuses_foreign_directory, setup, teardown),
    cmocka_unit_test_setup_teardown (test_interrupted_creation, setup, teardown),
    cmocka_unit_test_setup_teardown (test_lock_busy, setup, teardown),
    cmocka_unit_test_setup_teardown (test_readers_create_together, setup, teardown),
    cmocka_unit_test_setup_teardown (test_object_round_trip, setup, teardown),
    cmocka_unit_test_setup_teardown (test_object_corruption, setup, teardown),
    cmocka_unit_test_setup_teardown (test_env_records, setup, teardown),
    cmocka_unit_test_setup_teardown (test_journal_rollback, setup, teardown),
    cmocka_unit_test_setup_teardown (test_journal_quarantine, setup, teardown),
    cmocka_unit_test_setup_teardown (test_gc, setup, teardown),
    cmocka_unit_test_setup_teardown (test_layers, setup, teardown),
    cmocka_unit_test_setup_teardown (test_layer_owners, setup, teardown),
    cmocka_unit_test_setup_teardown (test_cache_index, setup, teardown),
    cmocka_unit_test_setup_teardown (test_layer_build, setup, teardown),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
