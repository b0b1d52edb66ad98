/* store-torture.c — fault injection against the store.
 *
 *   store-torture crash [N] [STORE]        N times: run store mutations (puts, streaming
 *                                           puts, layers, record writes and removals, gc) in a
 *                                           child, SIGKILL it at a random moment, reopen,
 *                                           check that verify is clean and nothing is left
 *                                           in tmp/ or journal/.
 *   store-torture concurrency [P] [R] [STORE]  P processes, R rounds each: put, write,
 *                                           read back verified, gc, all at once; then
 *                                           verify. A deadlock trips an alarm.
 *   store-torture bench PATH...            put every file below PATH into a new store, then
 *                                           verify them all; prints throughput (compare with
 *                                           b3sum --num-threads 1 over the same files).
 *   store-torture full-disk [DIR]          in a new user+mount namespace, a 1 MiB tmpfs on
 *                                           DIR holding the store: fill it; every ENOSPC must be a
 *                                           store error naming the cause, and the store
 *                                           must verify clean after each.
 *
 * Without STORE a temporary directory is used and removed. Exit 0 on success, 1 on a
 * failure (printed), 77 when the environment cannot run the test (said why). */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/fs.h"
#include "archive/archive.h"
#include "base/json.h"
#include "store/store.h"

#define SKIP 77

static unsigned long long rng_state = 88172645463325252ULL;

static unsigned long long
rnd (void)
{
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

static void
make_env_id (const char *seed, char out[KP_BLAKE3_HEX_LEN + 1])
{
  uint8_t d[KP_BLAKE3_OUT_LEN];
  kp_blake3_hash (seed, strlen (seed), d);
  kp_blake3_to_hex (d, out);
}

static int
rm_entry (const char *path, const struct stat *st, int type, struct FTW *ftw)
{
  if (type == FTW_DP || type == FTW_D || type == FTW_DNR)
    return rmdir (path);
  return unlink (path);
}

static void
die_err (const char *what, kp_error *err)
{
  fprintf (stderr, "store-torture: %s: %s\n", what, err ? err->message : "?");
  exit (1);
}

/* Open exclusively (recovering), verify, and require a clean store. */
static void
check_clean (const char *path, const char *when)
{
  kp_error *err = NULL;
  kp_store_open_options o = { .flags = KP_STORE_WRITE, .lock_timeout_ms = 60000 };
  kp_store *s = kp_store_open_with (path, &o, &err);
  if (s == NULL)
    die_err (when, err);
  kp_store_verify_report rep;
  if (kp_store_verify (s, &rep, &err) < 0)
    die_err (when, err);
  if (rep.problems || rep.journal_entries)
    {
      kp_cleanup_free char *text = kp_json_pretty (rep.problem_list);
      fprintf (stderr, "store-torture: %s: %llu problems, %llu journal entries left\n%s",
               when, (unsigned long long) rep.problems,
               (unsigned long long) rep.journal_entries, text);
      exit (1);
    }
  kp_store_verify_report_clear (&rep);
  kp_store_close (s);
}

/* ---- crash ---- */

static char layer_ids[16][KP_STORE_OBJECT_ID_LEN + 1];
static size_t n_layers;

/* A small random tree, packed, put and unpacked into a layer. */
static void
make_random_layer (kp_store *s, const char *store_path)
{
  kp_cleanup_free char *src = xasprintf ("%s.src-%d", store_path, (int) getpid ());
  kp_cleanup_free char *file = xasprintf ("%s/file", src);
  mkdir (src, 0755);
  char text[64];
  int len = snprintf (text, sizeof text, "layer content %llu\n", rnd () % 50);
  kp_error *err = NULL;
  if (kp_file_write_atomic (file, text, (size_t) len, 0644, false, &err) < 0)
    die_err ("layer source", err);
  int mfd = memfd_create ("tar", MFD_CLOEXEC);
  kp_pack_options po = { .mtime_clamp = 0 };
  if (kp_archive_pack (AT_FDCWD, src, mfd, &po, NULL, &err) < 0)
    die_err ("pack", err);
  lseek (mfd, 0, SEEK_SET);
  char tar[KP_STORE_OBJECT_ID_LEN + 1];
  if (kp_store_put_fd (s, mfd, tar, &err) < 0)
    die_err ("put tar", err);
  close (mfd);
  const char *parent = n_layers && rnd () % 2 ? layer_ids[rnd () % n_layers] : NULL;
  if (kp_store_layer_from_tar (s, tar, parent ? KP_LAYER_PACKAGES : KP_LAYER_BASE, parent,
                               layer_ids[n_layers % 16], &err) < 0)
    die_err ("layer", err);
  n_layers = n_layers < 16 ? n_layers + 1 : 16;
}

static void
write_random_env (kp_store *s, char ids[][KP_STORE_OBJECT_ID_LEN + 1], size_t n_ids)
{
  int k = (int) (rnd () % 6);
  char seed[32];
  snprintf (seed, sizeof seed, "crash-env-%d", k);
  kp_env_record rec = { .state = (kp_env_state) (rnd () % 5) };
  make_env_id (seed, rec.env_id);
  char name[32];
  snprintf (name, sizeof name, "env-%d", k);
  rec.name = rnd () % 2 ? name : NULL;
  char *objs[4] = { NULL };
  for (size_t i = 0; i < 3 && n_ids; i++)
    objs[i] = ids[rnd () % n_ids];
  rec.objects = objs;
  char *layers[2] = { n_layers ? layer_ids[rnd () % n_layers] : NULL, NULL };
  rec.layers = layers;
  kp_error *err = NULL;
  if (kp_store_env_write (s, &rec, &err) < 0)
    die_err ("env write", err);
}

static void
crash_child (const char *path, unsigned long long seed)
{
  rng_state ^= seed * 0x9e3779b97f4a7c15ULL;
  kp_cleanup_free uint8_t *buf = xmalloc (1 << 20);
  for (;;)
    {
      kp_error *err = NULL;
      kp_store *s = kp_store_open (path, KP_STORE_WRITE, &err);
      if (s == NULL)
        die_err ("open", err);
      char ids[64][KP_STORE_OBJECT_ID_LEN + 1];
      size_t n_ids = 0;
      n_layers = 0;
      for (int op = 0; op < 20; op++)
        {
          unsigned r = (unsigned) (rnd () % 11);
          if (r == 10)
            {
              make_random_layer (s, path);
              continue;
            }
          if (r <= 4)
            {
              size_t len = (size_t) (rnd () % (r == 4 ? (1 << 20) : 65536));
              for (size_t i = 0; i < len; i += 8)
                {
                  unsigned long long v = rnd ();
                  memcpy (buf + i, &v, len - i < 8 ? len - i : 8);
                }
              if (r == 4)
                {
                  int fd = memfd_create ("obj", MFD_CLOEXEC);
                  if (kp_write_all (fd, buf, len) < 0 || lseek (fd, 0, SEEK_SET) < 0)
                    exit (1);
                  if (kp_store_put_fd (s, fd, ids[n_ids % 64], &err) < 0)
                    die_err ("put_fd", err);
                  close (fd);
                }
              else if (kp_store_put (s, buf, len, ids[n_ids % 64], &err) < 0)
                die_err ("put", err);
              n_ids = n_ids < 64 ? n_ids + 1 : 64;
            }
          else if (r <= 7)
            write_random_env (s, ids, n_ids);
          else if (r == 8)
            {
              char id[KP_BLAKE3_HEX_LEN + 1], seed_name[32];
              snprintf (seed_name, sizeof seed_name, "crash-env-%d", (int) (rnd () % 6));
              make_env_id (seed_name, id);
              if (kp_store_env_remove (s, id, &err) < 0)
                die_err ("env remove", err);
            }
          else
            {
              kp_store_gc_report rep;
              if (kp_store_gc (s, NULL, &rep, &err) < 0)
                die_err ("gc", err);
              kp_store_gc_report_clear (&rep);
              n_ids = 0; /* unreferenced puts are gone: never reference them later */
              n_layers = 0;
            }
        }
      kp_store_close (s);
    }
}

static int
run_crash (int n, const char *path)
{
  int killed_mid = 0;
  for (int i = 0; i < n; i++)
    {
      pid_t pid = fork ();
      if (pid < 0)
        return perror ("fork"), 1;
      if (pid == 0)
        crash_child (path, (unsigned long long) i + 1);
      struct timespec ts = { 0, (long) (rnd () % 40000) * 1000 };
      nanosleep (&ts, NULL);
      kill (pid, SIGKILL);
      int status;
      waitpid (pid, &status, 0);
      if (!(WIFSIGNALED (status) && WTERMSIG (status) == SIGKILL))
        {
          fprintf (stderr, "store-torture: crash %d: the child failed by itself (status %d)\n",
                   i, status);
          return 1;
        }
      char when[64];
      snprintf (when, sizeof when, "after kill %d", i);
      {
        kp_error *err = NULL;
        kp_store *s = kp_store_open (path, KP_STORE_WRITE, &err);
        if (s == NULL)
          die_err (when, err);
        const kp_store_recovery *rec = kp_store_last_recovery (s);
        if (rec->rolled_back || rec->tmp_removed)
          killed_mid++;
        if (rec->quarantined)
          {
            fprintf (stderr, "store-torture: %s: a journal entry was quarantined\n", when);
            return 1;
          }
        kp_store_close (s);
      }
      check_clean (path, when);
    }
  kp_cleanup_free char *src_glob = xasprintf ("%s.src-", path);
  (void) src_glob;
  printf ("crash: %d kills, %d of them left work to recover; every reopen verified clean\n",
          n, killed_mid);
  return 0;
}

/* ---- concurrency ---- */

static void
quiet_wait (const char *message, void *user_data)
{
}

static void
concurrency_child (const char *path, int child, int rounds)
{
  rng_state ^= (unsigned long long) (child + 1) * 0x2545f4914f6cdd1dULL;
  for (int round = 0; round < rounds; round++)
    {
      kp_error *err = NULL;
      kp_store_open_options o = { .flags = KP_STORE_WRITE, .lock_timeout_ms = 120000,
                                  .on_wait = quiet_wait };
      kp_store *s = kp_store_open_with (path, &o, &err);
      if (s == NULL)
        die_err ("open", err);
      char ids[5][KP_STORE_OBJECT_ID_LEN + 1];
      char data[5][64];
      for (int i = 0; i < 5; i++)
        {
          int len = snprintf (data[i], sizeof data[i], "child %d round %d object %d", child,
                              round, i % 3);
          if (kp_store_put (s, data[i], (size_t) len, ids[i], &err) < 0)
            die_err ("put", err);
        }
      char seed[32], name[32];
      snprintf (seed, sizeof seed, "conc-%d-%d", child, round % 3);
      snprintf (name, sizeof name, "c%d-%d", child, round % 3);
      kp_env_record rec = { .state = KP_ENV_BUILT, .name = name };
      make_env_id (seed, rec.env_id);
      char *objs[] = { ids[0], ids[1], ids[2], ids[3], ids[4], NULL };
      rec.objects = objs;
      if (kp_store_env_write (s, &rec, &err) < 0)
        die_err ("env write", err);
      if (rnd () % 3 == 0)
        {
          kp_store_gc_report rep;
          if (kp_store_gc (s, NULL, &rep, &err) < 0)
            die_err ("gc", err);
          kp_store_gc_report_clear (&rep);
        }
      kp_store_close (s);

      /* Read back under the shared lock: our record and every object, verified. */
      kp_store_open_options ro = { .flags = KP_STORE_READ, .lock_timeout_ms = 120000,
                                  .on_wait = quiet_wait };
      s = kp_store_open_with (path, &ro, &err);
      if (s == NULL)
        die_err ("open for reading", err);
      kp_env_record *got = kp_store_env_lookup (s, name, &err);
      if (got == NULL)
        die_err ("lookup", err);
      for (int i = 0; i < 5; i++)
        {
          size_t len;
          char *back = kp_store_get (s, got->objects[i], 1024, &len, &err);
          if (back == NULL)
            die_err ("get", err);
          if (len != strlen (data[i]) || memcmp (back, data[i], len) != 0)
            {
              fprintf (stderr, "store-torture: child %d read different bytes\n", child);
              exit (1);
            }
          free (back);
        }
      kp_env_record_free (got);
      kp_store_close (s);
      if (round % 4 == 3)
        {
          s = kp_store_open_with (path, &o, &err);
          if (s == NULL)
            die_err ("open", err);
          if (kp_store_env_remove (s, rec.env_id, &err) < 0)
            die_err ("remove", err);
          kp_store_close (s);
        }
    }
  exit (0);
}

static void
on_alarm (int sig)
{
  static const char msg[] = "store-torture: concurrency: no progress for 600 s (deadlock?)\n";
  if (write (2, msg, sizeof msg - 1) < 0)
    _exit (1);
  kill (0, SIGKILL);
  _exit (1);
}

static int
run_concurrency (int procs, int rounds, const char *path)
{
  signal (SIGALRM, on_alarm);
  alarm (600);
  pid_t pids[64];
  for (int c = 0; c < procs && c < 64; c++)
    {
      pids[c] = fork ();
      if (pids[c] == 0)
        concurrency_child (path, c, rounds);
    }
  int failed = 0;
  for (int c = 0; c < procs && c < 64; c++)
    {
      int status;
      waitpid (pids[c], &status, 0);
      if (!WIFEXITED (status) || WEXITSTATUS (status) != 0)
        failed++;
    }
  alarm (0);
  if (failed)
    {
      fprintf (stderr, "store-torture: concurrency: %d processes failed\n", failed);
      return 1;
    }
  check_clean (path, "after the concurrent rounds");
  printf ("concurrency: %d processes x %d rounds, no corruption, no deadlock\n", procs, rounds);
  return 0;
}

/* ---- full disk ---- */

static int
write_file (const char *path, const char *text)
{
  int fd = open (path, O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  int r = kp_write_all (fd, text, strlen (text));
  close (fd);
  return r;
}

static int
enter_namespace_with_tmpfs (const char *dir)
{
  uid_t uid = getuid ();
  gid_t gid = getgid ();
  if (unshare (CLONE_NEWUSER | CLONE_NEWNS) < 0)
    {
      fprintf (stderr, "store-torture: full-disk: skipped: cannot create a user and mount "
                       "namespace: %s\n", strerror (errno));
      return SKIP;
    }
  char map[64];
  snprintf (map, sizeof map, "0 %u 1\n", (unsigned) uid);
  write_file ("/proc/self/setgroups", "deny");
  if (write_file ("/proc/self/uid_map", map) < 0)
    return perror ("uid_map"), 1;
  snprintf (map, sizeof map, "0 %u 1\n", (unsigned) gid);
  if (write_file ("/proc/self/gid_map", map) < 0)
    return perror ("gid_map"), 1;
  if (mount (NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
    return perror ("make / private"), 1;
  if (mount ("tmpfs", dir, "tmpfs", 0, "size=1m,mode=0700") < 0)
    {
      fprintf (stderr, "store-torture: full-disk: skipped: cannot mount a tmpfs: %s\n",
               strerror (errno));
      return SKIP;
    }
  return 0;
}

static void
expect_enospc (kp_error *err, const char *what)
{
  if (err == NULL || err->status != KP_EXIT_STORE || err->hint == NULL
      || (err->errno_value != ENOSPC && strstr (err->message, "No space left") == NULL))
    {
      fprintf (stderr, "store-torture: full-disk: %s: expected a store error for ENOSPC, got: "
                       "%s (errno %d, status %d)\n",
               what, err ? err->message : "success", err ? err->errno_value : 0,
               err ? err->status : 0);
      exit (1);
    }
}

static int
run_full_disk (const char *dir)
{
  int r = enter_namespace_with_tmpfs (dir);
  if (r)
    return r;
  kp_cleanup_free char *path = xasprintf ("%s/store", dir);
  check_clean (path, "new store on tmpfs");
  kp_cleanup_free uint8_t *buf = xmalloc (200 * 1024);
  int enospc_put = 0, enospc_env = 0, puts = 0;
  char kept[KP_STORE_OBJECT_ID_LEN + 1] = "";
  for (int i = 0; i < 100 && enospc_put < 3; i++)
    {
      kp_error *err = NULL;
      kp_store *s = kp_store_open (path, KP_STORE_WRITE, &err);
      if (s == NULL)
        {
          /* Opening needs no space: recovery only removes things. */
          die_err ("open on a full disk", err);
        }
      for (size_t k = 0; k < 200 * 1024; k += 8)
        {
          unsigned long long v = rnd ();
          memcpy (buf + k, &v, 8);
        }
      char id[KP_STORE_OBJECT_ID_LEN + 1];
      if (kp_store_put (s, buf, 150 * 1024, id, &err) < 0)
        {
          expect_enospc (err, "put");
          kp_error_free (err);
          enospc_put++;
        }
      else
        {
          puts++;
          memcpy (kept, id, sizeof kept);
          /* Keep everything alive through a record, so gc cannot make room. */
          char seed[32];
          snprintf (seed, sizeof seed, "full-%d", i);
          kp_env_record rec = { .state = KP_ENV_BUILT };
          make_env_id (seed, rec.env_id);
          char *objs[] = { id, NULL };
          rec.objects = objs;
          if (kp_store_env_write (s, &rec, &err) < 0)
            {
              expect_enospc (err, "env write");
              kp_error_free (err);
              enospc_env++;
            }
        }
      kp_store_close (s);
      char when[64];
      snprintf (when, sizeof when, "full disk, step %d", i);
      check_clean (path, when);
    }
  if (enospc_put == 0)
    {
      fprintf (stderr, "store-torture: full-disk: the tmpfs never filled up\n");
      return 1;
    }
  /* Fill what is left with small objects, then new records and a layer must fail cleanly. */
  int small = 0;
  for (int i = 0; i < 10000; i++)
    {
      kp_error *err = NULL;
      kp_store *s = kp_store_open (path, KP_STORE_WRITE, &err);
      if (s == NULL)
        die_err ("open on a full disk", err);
      char id[KP_STORE_OBJECT_ID_LEN + 1];
      char data[64];
      int len = snprintf (data, sizeof data, "small %d %llu", i, rnd ());
      int pr = kp_store_put (s, data, (size_t) len, id, &err);
      if (pr == 0)
        {
          small++;
          char seed[32];
          snprintf (seed, sizeof seed, "small-%d", i);
          kp_env_record rec = { .state = KP_ENV_DEFINED };
          make_env_id (seed, rec.env_id);
          char *objs[] = { id, NULL };
          rec.objects = objs;
          pr = kp_store_env_write (s, &rec, &err);
          if (pr < 0)
            {
              expect_enospc (err, "env write");
              enospc_env++;
            }
        }
      else
        expect_enospc (err, "small put");
      kp_error_free (err);
      kp_store_close (s);
      if (pr < 0)
        {
          check_clean (path, "after ENOSPC on a small write");
          if (enospc_env)
            break;
        }
    }
  {
    /* A layer needs a tar object: the last record's object stands in (not a tar: the
       unpack or the space fails first, and either way nothing is left behind). */
    kp_error *err = NULL;
    kp_store *s = kp_store_open (path, KP_STORE_WRITE, &err);
    if (s == NULL)
      die_err ("open", err);
    char digest[KP_BLAKE3_HEX_LEN + 1];
    if (kept[0] && kp_store_layer_from_tar (s, kept, KP_LAYER_BASE, NULL, digest, &err) == 0)
      {
        fprintf (stderr, "store-torture: full-disk: a layer from random bytes succeeded\n");
        exit (1);
      }
    if (err && err->status != KP_EXIT_STORE && err->status != KP_EXIT_RUNTIME)
      die_err ("layer on a full disk: unexpected status", err);
    kp_error_free (err);
    kp_store_close (s);
    check_clean (path, "after a failed layer on a full disk");
  }
  if (enospc_env == 0)
    {
      fprintf (stderr, "store-torture: full-disk: record writes never hit ENOSPC\n");
      return 1;
    }
  /* Reads keep verifying. */
  kp_error *err = NULL;
  kp_store *s = kp_store_open (path, KP_STORE_READ, &err);
  if (s == NULL)
    die_err ("open", err);
  if (kept[0] && kp_store_verify_object (s, kept, NULL, &err) < 0)
    die_err ("verify a kept object", err);
  kp_store_close (s);
  printf ("full-disk: %d large and %d small puts fitted; %d puts and %d record writes hit "
          "ENOSPC with a store error; the store verified clean after each\n",
          puts, small, enospc_put, enospc_env);
  return 0;
}

/* ---- bench: put + verify throughput over real files ---- */

static kp_store *bench_store;
static uint64_t bench_bytes, bench_files;
static char (*bench_ids)[KP_STORE_OBJECT_ID_LEN + 1];
static size_t bench_cap;

static int
bench_put (const char *path, const struct stat *st, int type, struct FTW *ftw)
{
  if (type != FTW_F || !S_ISREG (st->st_mode))
    return 0;
  int fd = open (path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0)
    return 0;
  if (bench_files == bench_cap)
    {
      bench_cap = bench_cap ? bench_cap * 2 : 1024;
      bench_ids = xreallocarray (bench_ids, bench_cap, sizeof *bench_ids);
    }
  kp_error *err = NULL;
  if (kp_store_put_fd (bench_store, fd, bench_ids[bench_files], &err) < 0)
    die_err (path, err);
  close (fd);
  bench_files++;
  bench_bytes += (uint64_t) st->st_size;
  return 0;
}

static double
now_seconds (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static int
run_bench (int n, char **paths, const char *store)
{
  kp_error *err = NULL;
  bench_store = kp_store_open (store, KP_STORE_WRITE, &err);
  if (bench_store == NULL)
    die_err ("open", err);
  double t0 = now_seconds ();
  for (int i = 0; i < n; i++)
    nftw (paths[i], bench_put, 64, FTW_PHYS);
  double t1 = now_seconds ();
  uint64_t verified = 0;
  for (uint64_t i = 0; i < bench_files; i++)
    {
      uint64_t size = 0;
      if (kp_store_verify_object (bench_store, bench_ids[i], &size, &err) < 0)
        die_err ("verify", err);
      verified += size;
    }
  double t2 = now_seconds ();
  double mib = (double) bench_bytes / (1024.0 * 1024.0);
  printf ("bench: %llu files, %.1f MiB (backend %s)\n", (unsigned long long) bench_files, mib,
          kp_blake3_backend ());
  printf ("  put (copy+hash+fsync+link): %.2f s, %.0f MiB/s\n", t1 - t0, mib / (t1 - t0));
  printf ("  verify (read+hash):         %.2f s, %.0f MiB/s\n", t2 - t1,
          (double) verified / (1024.0 * 1024.0) / (t2 - t1));
  kp_store_close (bench_store);
  free (bench_ids);
  return 0;
}

int
main (int argc, char **argv)
{
  if (argc < 2)
    {
      fprintf (stderr, "usage: store-torture crash [N] [STORE] | concurrency [P] [R] [STORE] "
                       "| full-disk [DIR] | bench PATH...\n");
      return 64;
    }
  const char *mode = argv[1];
  const char *tmp = getenv ("TMPDIR");
  kp_cleanup_free char *scratch = xasprintf ("%s/store-torture-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (mkdtemp (scratch) == NULL)
    return perror ("mkdtemp"), 1;
  kp_cleanup_free char *default_store = xasprintf ("%s/store", scratch);
  rng_state ^= (unsigned long long) time (NULL) ^ ((unsigned long long) getpid () << 20);
  int r;
  if (strcmp (mode, "crash") == 0)
    r = run_crash (argc > 2 ? atoi (argv[2]) : 200, argc > 3 ? argv[3] : default_store);
  else if (strcmp (mode, "concurrency") == 0)
    r = run_concurrency (argc > 2 ? atoi (argv[2]) : 8, argc > 3 ? atoi (argv[3]) : 20,
                         argc > 4 ? argv[4] : default_store);
  else if (strcmp (mode, "bench") == 0)
    r = run_bench (argc - 2, argv + 2, default_store);
  else if (strcmp (mode, "full-disk") == 0)
    {
      pid_t pid = fork ();
      if (pid == 0)
        {
          int code = run_full_disk (argc > 2 ? argv[2] : scratch);
          fflush (NULL);
          _exit (code);
        }
      int status;
      waitpid (pid, &status, 0);
      r = WIFEXITED (status) ? WEXITSTATUS (status) : 1;
    }
  else
    {
      fprintf (stderr, "store-torture: unknown mode '%s'\n", mode);
      r = 64;
    }
  nftw (scratch, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  return r;
}
