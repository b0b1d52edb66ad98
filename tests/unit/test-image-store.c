/* test-image-store.c — what the store keeps for base images: the streaming object writer,
 * layers flattened from several OCI layer archives, image records, tags, and how gc and
 * verify-store treat them.
 *
 * Every test works on a fresh store in a temporary directory. Layers are made in the
 * store's user namespace: as root that always works; as an ordinary user without
 * subordinate ids the layer tests skip and say so. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fs.h"
#include "base/json.h"
#include "hash/blake3.h"
#include "store/store.h"

typedef char object_id[KP_STORE_OBJECT_ID_LEN + 1];

/* ---- Scratch stores ---- */

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
  const char *tmp = getenv ("TMPDIR");
  char *dir = xasprintf ("%s/test-image-store-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  assert_non_null (mkdtemp (dir));
  *state = dir;
  return 0;
}

static int
teardown (void **state)
{
  char *dir = *state;
  /* Layer trees may hold files of subordinate ids: gc empties the store's layers first
     (from inside the namespace) when the test left any. */
  kp_cleanup_free char *path = xasprintf ("%s/store", dir);
  kp_error *err = NULL;
  /* A failed assertion leaves the test's handle (and its lock) open: do not wait for it. */
  kp_store *s = kp_store_open (path, KP_STORE_WRITE | KP_STORE_NO_CREATE | KP_STORE_NO_WAIT,
                               &err);
  if (s)
    {
      kp_cleanup_strv char **images = kp_store_image_list (s, NULL);
      for (char **d = images; d && *d; d++)
        kp_store_image_remove (s, *d, NULL);
      kp_store_gc_report rep;
      kp_store_gc (s, NULL, &rep, NULL);
      kp_store_gc_report_clear (&rep);
      kp_store_close (s);
    }
  kp_error_free (err);
  nftw (dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
  free (dir);
  return 0;
}

static char *
in_store (void **state, const char *rel)
{
  return xasprintf ("%s/store/%s", (char *) *state, rel);
}

static kp_store *
open_store (void **state, unsigned flags)
{
  kp_cleanup_free char *path = xasprintf ("%s/store", (char *) *state);
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
  int fd = open (path, O_RDWR | O_CLOEXEC);
  assert_true (fd >= 0);
  unsigned char c;
  assert_int_equal (pread (fd, &c, 1, offset), 1);
  c ^= 0x20;
  assert_int_equal (pwrite (fd, &c, 1, offset), 1);
  close (fd);
}

/* The problems verify-store finds; each one's "kind" and "id" go to stderr to help a
 * failing assertion. */
static uint64_t
verify_problems (kp_store *s)
{
  kp_store_verify_report rep;
  kp_error *err = NULL;
  if (kp_store_verify (s, &rep, &err) < 0)
    fail_msg ("verify: %s", err->message);
  size_t i;
  json_t *p;
  json_array_foreach (rep.problem_list, i, p)
    fprintf (stderr, "# verify: %s %s: %s\n", json_string_value (json_object_get (p, "kind")),
             json_string_value (json_object_get (p, "id")),
             json_string_value (json_object_get (p, "message")));
  uint64_t n = rep.problems;
  kp_store_verify_report_clear (&rep);
  return n;
}

/* Entries of a store directory other than "." and "..". */
static size_t
count_entries (void **state, const char *rel)
{
  kp_cleanup_free char *path = in_store (state, rel);
  kp_cleanup_dir DIR *d = opendir (path);
  if (d == NULL)
    return 0;
  size_t n = 0;
  struct dirent *de;
  while ((de = readdir (d)) != NULL)
    if (strcmp (de->d_name, ".") && strcmp (de->d_name, ".."))
      n++;
  return n;
}

/* Objects in objects/ (fan-out directories are not objects). */
static int
count_one (const char *id, void *user_data, kp_error **err)
{
  (*(size_t *) user_data)++;
  return 0;
}

static size_t
count_objects (kp_store *s)
{
  size_t n = 0;
  kp_error *err = NULL;
  assert_int_equal (kp_store_foreach_object (s, count_one, &n, &err), 0);
  return n;
}

/* ---- Archives ---- */

typedef struct tar_member
{
  const char *path;
  mode_t type; /* AE_IFREG, AE_IFDIR, AE_IFLNK; 0: a hard link to `link` */
  mode_t perm;
  const char *text; /* file contents */
  const char *link; /* symbolic or hard link target */
} tar_member;

/* A pax tar with these members (owned by root), optionally gzipped, put in the store. */
static void
put_tar (kp_store *s, const tar_member *m, size_t n, bool gzip, object_id id)
{
  kp_cleanup_close int fd = memfd_create ("tar", MFD_CLOEXEC);
  assert_true (fd >= 0);
  struct archive *w = archive_write_new ();
  archive_write_set_format_pax_restricted (w);
  if (gzip)
    assert_int_equal (archive_write_add_filter_gzip (w), ARCHIVE_OK);
  assert_int_equal (archive_write_open_fd (w, fd), ARCHIVE_OK);
  for (size_t i = 0; i < n; i++)
    {
      struct archive_entry *e = archive_entry_new ();
      archive_entry_set_pathname (e, m[i].path);
      archive_entry_set_perm (e, m[i].perm);
      archive_entry_set_uid (e, 0);
      archive_entry_set_gid (e, 0);
      archive_entry_set_mtime (e, 1700000000, 0);
      size_t len = m[i].text ? strlen (m[i].text) : 0;
      if (m[i].type == 0)
        {
          archive_entry_set_filetype (e, AE_IFREG);
          archive_entry_set_hardlink (e, m[i].link);
          len = 0;
        }
      else
        {
          archive_entry_set_filetype (e, m[i].type);
          if (m[i].type == AE_IFLNK)
            archive_entry_set_symlink (e, m[i].link);
        }
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
  if (kp_store_put_fd (s, fd, id, &err) < 0)
    fail_msg ("put: %s", err->message);
}

/* Make a layer from tars; false (after saying why) when this host cannot run the store's
 * user namespace. */
static bool
make_layer (kp_store *s, const char *const *ids, size_t n, char digest[KP_BLAKE3_HEX_LEN + 1])
{
  kp_error *err = NULL;
  if (kp_store_layer_from_tars (s, ids, n, KP_LAYER_BASE, NULL, digest, &err) == 0)
    return true;
  if (err->status == KP_EXIT_RUNTIME)
    {
      fprintf (stderr, "skip: no user namespace for the store here: %s\n", err->message);
      kp_error_free (err);
      return false;
    }
  fail_msg ("layer: %s", err->message);
  return false;
}

/* A small layer of one file, for the record tests. */
static bool
small_layer (kp_store *s, const char *text, object_id tar, char digest[KP_BLAKE3_HEX_LEN + 1])
{
  const tar_member m[] = { { "etc/", AE_IFDIR, 0755, NULL, NULL },
                           { "etc/os-release", AE_IFREG, 0644, text, NULL } };
  put_tar (s, m, KP_N_ELEMENTS (m), false, tar);
  const char *ids[] = { tar };
  return make_layer (s, ids, 1, digest);
}

static bool
exists_in (const char *tree, const char *rel)
{
  kp_cleanup_free char *p = xasprintf ("%s/%s", tree, rel);
  struct stat st;
  return lstat (p, &st) == 0;
}

static char *
text_in (const char *tree, const char *rel)
{
  kp_cleanup_free char *p = xasprintf ("%s/%s", tree, rel);
  return kp_file_read (p, 1 << 20, NULL, NULL);
}

static json_t *
load_json (const char *path)
{
  json_error_t jerr;
  json_t *doc = json_load_file (path, 0, &jerr);
  if (doc == NULL)
    fail_msg ("%s: %s", path, jerr.text);
  return doc;
}

#define SHA_A "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define SHA_B "sha256:1123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define B3_C "blake3:2123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define SHA512_D                                                                              \
  "sha512:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"                   \
  "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* ---- The streaming writer ---- */

static void
test_writer (void **state)
{
  kp_cleanup_store kp_store *s = open_store (state, KP_STORE_WRITE);
  kp_error *err = NULL;

  /* Written in pieces: the id kp_store_put gives the same bytes. */
  kp_store_writer *w = kp_store_writer_new (s, &err);
  assert_non_null (w);
  assert_int_equal (kp_store_writer_write (w, "a manifest, ", 12, &err), 0);
  assert_int_equal (kp_store_writer_write (w, "", 0, &err), 0);
  assert_int_equal (kp_store_writer_write (w, "in pieces", 9, &err), 0);
  assert_int_equal (kp_store_writer_size (w), 21);
  assert_int_equal (count_objects (s), 0); /* nothing visible before the commit */
  object_id wid, pid;
  assert_int_equal (kp_store_writer_commit (w, wid, &err), 0);
  assert_int_equal (kp_store_put (s, "a manifest, in pieces", 21, pid, &err), 0);
  assert_string_equal (wid, pid);
  size_t len = 0;
  kp_cleanup_free char *back = kp_store_get (s, wid, 1024, &len, &err);
  assert_non_null (back);
  assert_int_equal (len, 21);
  assert_string_equal (back, "a manifest, in pieces");

  /* Committing bytes already present is fine and changes nothing. */
  w = kp_store_writer_new (s, &err);
  assert_int_equal (kp_store_writer_write (w, "a manifest, in pieces", 21, &err), 0);
  assert_int_equal (kp_store_writer_commit (w, wid, &err), 0);
  assert_string_equal (wid, pid);
  assert_int_equal (count_objects (s), 1);

  /* Big pieces cross every buffer: the id is the BLAKE3 of all the bytes. */
  size_t big = 3 << 20;
  kp_cleanup_free uint8_t *buf = xmalloc (big);
  for (size_t i = 0; i < big; i++)
    buf[i] = (uint8_t) (i * 131 + (i >> 11));
  w = kp_store_writer_new (s, &err);
  for (size_t off = 0; off < big; off += 700001)
    assert_int_equal (kp_store_writer_write (w, buf + off, off + 700001 > big ? big - off : 700001,
                                             &err), 0);
  assert_int_equal (kp_store_writer_size (w), big);
  object_id bid;
  assert_int_equal (kp_store_writer_commit (w, bid, &err), 0);
  uint8_t digest[KP_BLAKE3_OUT_LEN];
  char hex[KP_BLAKE3_HEX_LEN + 1];
  kp_blake3_hash (buf, big, digest);
  kp_blake3_to_hex (digest, hex);
  assert_string_equal (bid, hex);
  uint64_t size = 0;
  assert_int_equal (kp_store_verify_object (s, bid, &size, &err), 0);
  assert_int_equal (size, big);

  /* Abort leaves nothing, neither in objects/ nor in tmp/. */
  size_t before = count_objects (s);
  w = kp_store_writer_new (s, &err);
  assert_int_equal (kp_store_writer_write (w, "half a download", 15, &err), 0);
  assert_int_equal (count_entries (state, "tmp"), 1);
  kp_store_writer_abort (w);
  kp_store_writer_abort (NULL);
  assert_int_equal (count_objects (s), before);
  assert_int_equal (count_entries (state, "tmp"), 0);
  /* Nor after commits. */
  assert_int_equal (count_entries (state, "tmp"), 0);
  assert_int_equal (verify_problems (s), 0);
}

static void
test_writer_read_only (void **state)
{
  {
    kp_cleanup_store kp_store *s = open_store (state, KP_STORE_WRITE);
    assert_non_null (s);
  }
  kp_cleanup_store kp_store *s = open_store (state, KP_STORE_READ);
  kp_error *err = NULL;
  assert_null (kp_store_writer_new (s, &err));
  assert_int_equal (err->status, KP_EXIT_STORE);
  kp_error_free (err);
}

/* Different writers from different threads, as parallel blob downloads use them. */
typedef struct writer_job
{
  kp_store *store;
  unsigned seed;
  object_id id;
  char want[KP_BLAKE3_HEX_LEN + 1];
  int result;
} writer_job;

static void *
writer_thread (void *data)
{
  writer_job *j = data;
  kp_blake3 h;
  kp_blake3_init (&h);
  kp_store_writer *w = kp_store_writer_new (j->store, NULL);
  j->result = w ? 0 : -1;
  uint8_t chunk[4096];
  for (unsigned round = 0; w && round < 64; round++)
    {
      for (size_t i = 0; i < sizeof chunk; i++)
        chunk[i] = (uint8_t) (j->seed * 7 + round * 13 + i);
      kp_blake3_update (&h, chunk, sizeof chunk);
      if (kp_store_writer_write (w, chunk, sizeof chunk, NULL) < 0)
        j->result = -1;
    }
  uint8_t d[KP_BLAKE3_OUT_LEN];
  kp_blake3_final (&h, d, sizeof d);
  kp_blake3_to_hex (d, j->want);
  if (w && kp_store_writer_commit (w, j->id, NULL) < 0)
    j->result = -1;
  return NULL;
}

static void
test_writer_threads (void **state)
{
  kp_cleanup_store kp_store *s = open_store (state, KP_STORE_WRITE);
  enum { N = 8 };
  writer_job jobs[N];
  pthread_t threads[N];
  for (unsigned i = 0; i < N; i++)
    {
      /* Two threads per content: the same object committed twice at once. */
      jobs[i] = (writer_job){ .store = s, .seed = i / 2 };
      assert_int_equal (pthread_create (&threads[i], NULL, writer_thread, &jobs[i]), 0);
    }
  for (unsigned i = 0; i < N; i++)
    {
      assert_int_equal (pthread_join (threads[i], NULL), 0);
      assert_int_equal (jobs[i].result, 0);
      assert_string_equal (jobs[i].id, jobs[i].want);
    }
  assert_int_equal (count_objects (s), N / 2);
  assert_int_equal (count_entries (state, "tmp"), 0);
  assert_int_equal (verify_problems (s), 0);
}

/* ---- Flattened layers ---- */

static void
test_flatten_layers (void **state)
{
  kp_cleanup_store kp_store *s = open_store (state, KP_STORE_WRITE);
  kp_error *err = NULL;
  const tar_member l1[] = {
    { "etc/", AE_IFDIR, 0755, NULL, NULL },
    { "etc/keep", AE_IFREG, 0644, "keep", NULL },
    { "etc/gone", AE_IFREG, 0644, "gone", NULL },
    { "doc/", AE_IFDIR, 0755, NULL, NULL },
    { "doc/b/", AE_IFDIR, 0755, NULL, NULL },
    { "doc/b/readme", AE_IFREG, 0644, "b", NULL },
    { "opq/", AE_IFDIR, 0755, NULL, NULL },
    { "opq/old", AE_IFREG, 0644, "old", NULL },
    { "opq/sub/", AE_IFDIR, 0755, NULL, NULL },
    { "opq/sub/old2", AE_IFREG, 0644, "old2", NULL },
    { "usr/", AE_IFDIR, 0755, NULL, NULL },
    { "usr/bin/", AE_IFDIR, 0755, NULL, NULL },
    { "usr/bin/tool", AE_IFREG, 0755, "#!/bin/sh\n", NULL },
    { "lib", AE_IFLNK, 0777, NULL, "usr/lib" },
  };
  const tar_member l2[] = {
    { "etc/.wh.gone", AE_IFREG, 0644, NULL, NULL },
    { "doc/.wh.b", AE_IFREG, 0644, NULL, NULL },
    { "opq/", AE_IFDIR, 0755, NULL, NULL },
    { "opq/new", AE_IFREG, 0644, "new", NULL },
    { "opq/.wh..wh..opq", AE_IFREG, 0644, NULL, NULL },
    { "opq/sub/", AE_IFDIR, 0755, NULL, NULL },
    { "opq/sub/new2", AE_IFREG, 0644, "new2", NULL },
    { "etc/.wh.absent", AE_IFREG, 0644, NULL, NULL },
    { "lib/.wh.x", AE_IFREG, 0644, NULL, NULL }, /* below a link: nothing to do */
    { "usr/bin/tool2", 0, 0755, NULL, "usr/bin/tool" }, /* hard link to the layer below */
  };
  const tar_member l3[] = {
    { "doc/", AE_IFDIR, 0755, NULL, NULL },
    { "doc/b/", AE_IFDIR, 0755, NULL, NULL },
    { "doc/b/again", AE_IFREG, 0644, "again", NULL },
    { "usr/bin/.wh.tool", AE_IFREG, 0644, NULL, NULL }, /* its other name stays */
  };
  object_id t1, t2, t3;
  put_tar (s, l1, KP_N_ELEMENTS (l1), false, t1);
  put_tar (s, l2, KP_N_ELEMENTS (l2), true, t2); /* layers come compressed too */
  put_tar (s, l3, KP_N_ELEMENTS (l3), false, t3);
  const char *ids[] = { t1, t2, t3 };
  char digest[KP_BLAKE3_HEX_LEN + 1];
  if (!make_layer (s, ids, 3, digest))
    skip ();
  kp_cleanup_free char *rel = xasprintf ("layers/%s/tree", digest);
  kp_cleanup_free char *tree = in_store (state, rel);
  assert_true (exists_in (tree, "etc/keep"));
  assert_false (exists_in (tree, "etc/gone"));
  assert_false (exists_in (tree, "etc/.wh.gone"));
  assert_false (exists_in (tree, "etc/absent"));
  assert_false (exists_in (tree, "doc/b/readme"));
  assert_true (exists_in (tree, "doc/b/again"));
  assert_true (exists_in (tree, "opq/new")); /* before the marker, same layer */
  assert_false (exists_in (tree, "opq/old"));
  assert_true (exists_in (tree, "opq/sub/new2")); /* re-created below the opaque dir */
  assert_false (exists_in (tree, "opq/sub/old2"));
  assert_false (exists_in (tree, "opq/.wh..wh..opq"));
  assert_false (exists_in (tree, "usr/bin/tool"));
  kp_cleanup_free char *tool2 = text_in (tree, "usr/bin/tool2");
  assert_non_null (tool2);
  assert_string_equal (tool2, "#!/bin/sh\n");

  /* The same tree from one archive has the same digest. */
  const tar_member flat[] = {
    { "etc/", AE_IFDIR, 0755, NULL, NULL },
    { "etc/keep", AE_IFREG, 0644, "keep", NULL },
    { "doc/", AE_IFDIR, 0755, NULL, NULL },
    { "doc/b/", AE_IFDIR, 0755, NULL, NULL },
    { "doc/b/again", AE_IFREG, 0644, "again", NULL },
    { "opq/", AE_IFDIR, 0755, NULL, NULL },
    { "opq/new", AE_IFREG, 0644, "new", NULL },
    { "opq/sub/", AE_IFDIR, 0755, NULL, NULL },
    { "opq/sub/new2", AE_IFREG, 0644, "new2", NULL },
    { "usr/", AE_IFDIR, 0755, NULL, NULL },
    { "usr/bin/", AE_IFDIR, 0755, NULL, NULL },
    { "usr/bin/tool2", AE_IFREG, 0755, "#!/bin/sh\n", NULL },
    { "lib", AE_IFLNK, 0777, NULL, "usr/lib" },
  };
  object_id tf;
  char dflat[KP_BLAKE3_HEX_LEN + 1];
  put_tar (s, flat, KP_N_ELEMENTS (flat), false, tf);
  const char *fids[] = { tf };
  assert_true (make_layer (s, fids, 1, dflat));
  assert_string_equal (dflat, digest);
  /* And through kp_store_layer_from_tar, the one-archive path. */
  assert_int_equal (kp_store_layer_from_tar (s, tf, KP_LAYER_BASE, NULL, dflat, &err), 0);
  assert_string_equal (dflat, digest);

  /* The record: the first archive in "tar", all of them in "tars". */
  kp_layer_info info;
  assert_int_equal (kp_store_layer_read (s, digest, &info, &err), 0);
  assert_string_equal (info.tar, t1);
  assert_int_equal (info.size, 4 + 5 + 3 + 4 + 10);
  kp_cleanup_free char *rec_rel = xasprintf ("layers/%s/layer.json", digest);
  kp_cleanup_free char *rec_path = in_store (state, rec_rel);
  {
    kp_cleanup_json json_t *doc = load_json (rec_path);
    json_t *tars = json_object_get (doc, "tars");
    assert_int_equal (json_array_size (tars), 3);
    assert_string_equal (json_string_value (json_array_get (tars, 0)), t1);
    assert_string_equal (json_string_value (json_array_get (tars, 2)), t3);
  }
  assert_int_equal (kp_store_layer_exists (s, digest, &err), 1);
  assert_int_equal (kp_store_layer_exists (s, t1, &err), 0);
  assert_int_equal (kp_store_layer_exists (s, "../../etc", &err), -1);
  assert_int_equal (err->status, KP_EXIT_STORE);
  kp_error_free (err);
  err = NULL;
  assert_int_equal (verify_problems (s), 0);

  /* Referenced by an environment, the layer keeps all three archives alive. */
  kp_env_record env = { .state = KP_ENV_BUILT };
  memset (env.env_id, 'e', KP_BLAKE3_HEX_LEN);
  char *layers[] = { digest, NULL };
  env.layers = layers;
  assert_int_equal (kp_store_env_write (s, &env, &err), 0);
  kp_store_gc_report rep;
  assert_int_equal (kp_store_gc (s, NULL, &rep, &err), 0);
  assert_int_equal (rep.freed_objects, 1); /* the flat tar: its layer is the same tree */
  assert_int_equal (rep.freed_layers, 0);
  kp_store_gc_report_clear (&rep);
  for (size_t i = 0; i < 3; i++)
    assert_int_equal (kp_store_has (s, ids[i], &err), 1);

  /* An archive the record names gone missing is a problem verify-store reports. */
  assert_int_equal (kp_store_remove_object (s, t2, &err), 0);
  assert_int_equal (verify_problems (s), 1);
  put_tar (s, l2, KP_N_ELEMENTS (l2), true, t2);

  /* A "tars" that is not a list of ids makes the record malformed. */
  {
    kp_cleanup_free char *saved = kp_file_read (rec_path, 1 << 20, NULL, &err);
    assert_non_null (saved);
    kp_cleanup_json json_t *doc = load_json (rec_path);
    json_object_set_new (doc, "tars", json_pack ("[s,s]", t1, "../../x"));
    /* Re-checksummed the way the store does it, so only the field is wrong. */
    json_object_del (doc, "checksum");
    kp_cleanup_free char *text = kp_json_canonical (doc);
    uint8_t d[KP_BLAKE3_OUT_LEN];
    char sum[KP_BLAKE3_HEX_LEN + 1];
    kp_blake3_hash (text, strlen (text), d);
    kp_blake3_to_hex (d, sum);
    json_object_set_new (doc, "checksum", json_string (sum));
    chmod (rec_path, 0644);
    assert_int_equal (json_dump_file (doc, rec_path, JSON_SORT_KEYS), 0);
    assert_int_equal (kp_store_layer_read (s, digest, &info, &err), -1);
    assert_int_equal (err->status, KP_EXIT_STORE);
    assert_non_null (strstr (err->message, "malformed"));
    kp_error_free (err);
    err = NULL;
    assert_int_equal (kp_file_write_atomic (rec_path, saved, strlen (saved), 0644, false,
                                            &err), 0);
    assert_int_equal (kp_store_layer_read (s, digest, &info, &err), 0);
  }

  /* Released: gc frees the layer and the three archives. */
  assert_int_equal (kp_store_env_remove (s, env.env_id, &err), 0);
  assert_int_equal (kp_store_gc (s, NULL, &rep, &err), 0);
  assert_int_equal (rep.freed_layers, 1);
  assert_int_equal (rep.freed_objects, 3);
  kp_store_gc_report_clear (&rep);
  assert_int_equal (count_entries (state, "layers"), 0);
  assert_int_equal (verify_problems (s), 0);
}

/* A refused archive, a damaged object, an empty list: no layer, nothing left behind. */
static void
test_flatten_failures (void **state)
{
  kp_cleanup_store kp_store *s = open_store (state, KP_STORE_WRITE);
  kp_error *err = NULL;
  const tar_member good[] = { { "etc/", AE_IFDIR, 0755, NULL, NULL },
                              { "etc/a", AE_IFREG, 0644, "a", NULL } };
  const tar_member hostile[] = { { "etc/", AE_IFDIR, 0755, NULL, NULL },
                                 { "../.wh.etc", AE_IFREG, 0644, NULL, NULL } };
  object_id tg, th;
  put_tar (s, good, KP_N_ELEMENTS (good), false, tg);
  put_tar (s, hostile, KP_N_ELEMENTS (hostile), false, th);
  char digest[KP_BLAKE3_HEX_LEN + 1];
  const char *ids[] = { tg, th };
  if (kp_store_layer_from_tars (s, ids, 2, KP_LAYER_BASE, NULL, digest, &err) == 0)
    fail_msg ("a whiteout above the target was accepted");
  if (err->status == KP_EXIT_RUNTIME)
    {
      fprintf (stderr, "skip: no user namespace for the store here: %s\n", err->message);
      kp_error_free (err);
      skip ();
    }
  assert_int_equal (err->status, KP_EXIT_STORE);
  assert_non_null (strstr (err->message, "layer 2 of 2"));
  assert_non_null (strstr (err->message, "path leaves the target directory"));
  kp_error_free (err);
  err = NULL;
  assert_int_equal (count_entries (state, "layers"), 0);
  assert_int_equal (count_entries (state, "tmp"), 0);

  /* A damaged archive is found before anything is unpacked. */
  char fan[3] = { tg[0], tg[1], '\0' };
  kp_cleanup_free char *obj_rel = xasprintf ("objects/%s/%s", fan, tg + 2);
  kp_cleanup_free char *obj = in_store (state, obj_rel);
  flip_byte (obj, 600);
  const char *one[] = { tg, tg };
  assert_int_equal (kp_store_layer_from_tars (s, one, 2, KP_LAYER_BASE, NULL, digest, &err), -1);
  assert_int_equal (err->status, KP_EXIT_STORE);
  kp_error_free (err);
  err = NULL;
  assert_int_equal (count_entries (state, "layers"), 0);
  assert_int_equal (count_entries (state, "tmp"), 0);

  assert_int_equal (kp_store_layer_from_tars (s, ids, 0, KP_LAYER_BASE, NULL, digest, &err), -1);
  kp_error_free (err);
  err = NULL;

  /* Read-only handles do not make layers. */
  kp_store_close (kp_steal_pointer (&s));
  s = open_store (state, KP_STORE_READ);
  assert_int_equal (kp_store_layer_from_tars (s, ids, 1, KP_LAYER_BASE, NULL, digest, &err), -1);
  assert_int_equal (err->status, KP_EXIT_STORE);
  kp_error_free (err);
}

/* ---- Image records ---- */

static void
test_image_records (void **state)
{
  kp_cleanup_store kp_store *s = open_store (state, KP_STORE_WRITE);
  kp_error *err = NULL;
  object_id tar, blob;
  char layer[KP_BLAKE3_HEX_LEN + 1];
  if (!small_layer (s, "ID=test\n", tar, layer))
    skip ();
  assert_int_equal (kp_store_put (s, "{\"config\":1}", 12, blob, &err), 0);

  /* Nothing yet. */
  assert_int_equal (kp_store_image_has (s, SHA_A, &err), 0);
  assert_null (kp_store_image_read (s, SHA_A, &err));
  assert_int_equal (err->status, KP_EXIT_STORE);
  assert_non_null (err->hint);
  kp_error_free (err);
  err = NULL;
  kp_cleanup_strv char **none = kp_store_image_list (s, &err);
  assert_non_null (none);
  assert_null (none[0]);

  /* A round trip keeps every field. */
  char *objects[] = { tar, blob, NULL };
  kp_image_record rec = { .digest = (char *) SHA_A, .reference = (char *) "docker://r.example/x:1",
                          .objects = objects, .size = 4242 };
  memcpy (rec.tree_digest, layer, sizeof rec.tree_digest);
  rec.extra = json_pack ("{s:s,s:[s]}", "platform", "linux/amd64", "layers", "sha256:ab");
  assert_int_equal (kp_store_image_write (s, &rec, &err), 0);
  json_decref (rec.extra);
  rec.extra = NULL;
  {
    kp_cleanup_image_record kp_image_record *back = kp_store_image_read (s, SHA_A, &err);
    assert_non_null (back);
    assert_string_equal (back->digest, SHA_A);
    assert_string_equal (back->reference, "docker://r.example/x:1");
    assert_string_equal (back->tree_digest, layer);
    assert_int_equal (kp_strv_length (back->objects), 2);
    assert_string_equal (back->objects[0], tar);
    assert_string_equal (back->objects[1], blob);
    assert_int_equal (back->size, 4242);
    assert_true (back->created > 0);
    assert_string_equal (json_string_value (json_object_get (back->extra, "platform")),
                         "linux/amd64");
  }
  kp_cleanup_free char *path = in_store (state, "images/sha256-0123456789abcdef0123456789abcdef"
                                                "0123456789abcdef0123456789abcdef.json");
  struct stat st;
  assert_int_equal (stat (path, &st), 0);
  assert_int_equal (kp_store_image_has (s, SHA_A, &err), 1);

  /* Rewritten with created 0, the first creation time stays; an explicit one wins. */
  {
    kp_cleanup_image_record kp_image_record *first = kp_store_image_read (s, SHA_A, &err);
    rec.reference = NULL;
    rec.objects = NULL;
    assert_int_equal (kp_store_image_write (s, &rec, &err), 0);
    kp_cleanup_image_record kp_image_record *back = kp_store_image_read (s, SHA_A, &err);
    assert_int_equal (back->created, first->created);
    assert_null (back->reference);
    assert_non_null (back->objects);
    assert_null (back->objects[0]);
    rec.created = 12345;
    rec.objects = objects;
    assert_int_equal (kp_store_image_write (s, &rec, &err), 0);
    kp_cleanup_image_record kp_image_record *again = kp_store_image_read (s, SHA_A, &err);
    assert_int_equal (again->created, 12345);
  }

  /* More digests of each kind: the list is sorted. */
  const char *const more[] = { SHA512_D, B3_C, SHA_B };
  for (size_t i = 0; i < KP_N_ELEMENTS (more); i++)
    {
      kp_image_record r = rec;
      r.digest = (char *) more[i];
      assert_int_equal (kp_store_image_write (s, &r, &err), 0);
    }
  kp_cleanup_strv char **list = kp_store_image_list (s, &err);
  assert_int_equal (kp_strv_length (list), 4);
  assert_string_equal (list[0], B3_C);
  assert_string_equal (list[1], SHA_A);
  assert_string_equal (list[2], SHA_B);
  assert_string_equal (list[3], SHA512_D);

  /* Digests are strict: no other algorithm, length, case or character. */
  static const char *const bad[] = {
    "sha256:0123", "sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
    "md5:0123456789abcdef0123456789abcdef",
    "sha512:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "sha256:../../../../etc/passwd/0123456789abcdef0123456789abcdef0123456789",
    "sha256-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0",
    "", NULL,
  };
  for (size_t i = 0; i < KP_N_ELEMENTS (bad); i++)
    {
      kp_image_record r = rec;
      r.digest = (char *) bad[i];
      assert_int_equal (kp_store_image_write (s, &r, &err), -1);
      assert_int_equal (err->status, KP_EXIT_STORE);
      kp_error_free (err);
      err = NULL;
      if (bad[i] == NULL)
        continue;
      assert_int_equal (kp_store_image_has (s, bad[i], &err), -1);
      kp_error_free (err);
      err = NULL;
      assert_null (kp_store_image_read (s, bad[i], &err));
      kp_error_free (err);
      err = NULL;
    }

  /* The layer and the objects must be there. */
  {
    kp_image_record r = rec;
    memset (r.tree_digest, 'a', KP_BLAKE3_HEX_LEN);
    assert_int_equal (kp_store_image_write (s, &r, &err), -1);
    assert_non_null (strstr (err->message, "layer"));
    kp_error_free (err);
    err = NULL;
    char missing[KP_STORE_OBJECT_ID_LEN + 1];
    memset (missing, 'b', KP_STORE_OBJECT_ID_LEN);
    missing[KP_STORE_OBJECT_ID_LEN] = '\0';
    char *objs[] = { tar, missing, NULL };
    r = rec;
    r.objects = objs;
    assert_int_equal (kp_store_image_write (s, &r, &err), -1);
    assert_non_null (strstr (err->message, "object"));
    kp_error_free (err);
    err = NULL;
  }
  assert_int_equal (verify_problems (s), 0);

  /* Read-only handles read, and refuse to write or remove. */
  kp_store_close (kp_steal_pointer (&s));
  s = open_store (state, KP_STORE_READ);
  kp_cleanup_image_record kp_image_record *ro = kp_store_image_read (s, SHA_B, &err);
  assert_non_null (ro);
  assert_int_equal (kp_store_image_write (s, &rec, &err), -1);
  assert_int_equal (err->status, KP_EXIT_STORE);
  kp_error_free (err);
  err = NULL;
  assert_int_equal (kp_store_image_remove (s, SHA_B, &err), -1);
  kp_error_free (err);
  err = NULL;
  assert_int_equal (kp_store_image_tag_set (s, "docker://r/x:1", SHA_B, 1, &err), -1);
  kp_error_free (err);
  err = NULL;

  /* Removing is for writers; a missing record is no error. */
  kp_store_close (kp_steal_pointer (&s));
  s = open_store (state, KP_STORE_WRITE);
  assert_int_equal (kp_store_image_remove (s, SHA_B, &err), 0);
  assert_int_equal (kp_store_image_remove (s, SHA_B, &err), 0);
  assert_int_equal (kp_store_image_has (s, SHA_B, &err), 0);
}

/* ---- Tags ---- */

static void
test_tags (void **state)
{
  kp_cleanup_store kp_store *s = open_store (state, KP_STORE_WRITE);
  kp_error *err = NULL;

  /* Before the first tag there is no tags/ directory, and that is no error. */
  char *digest = NULL;
  int64_t when = 0;
  assert_int_equal (kp_store_image_tag_get (s, "docker://r/x:1", &digest, &when, &err), 0);
  assert_int_equal (kp_store_image_tag_remove (s, "docker://r/x:1", &err), 0);
  {
    kp_cleanup_json json_t *tags = kp_store_image_tags (s, &err);
    assert_non_null (tags);
    assert_int_equal (json_array_size (tags), 0);
  }

  /* Any reference text maps to a file name; set, get, replace. */
  static const char *const refs[] = {
    "docker://registry.example:5000/ns/app:v1",
    "lxc://images.example/debian/bookworm/amd64",
    "docker://r/x@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "file:///home/me/odd name/../x.tar \xc3\xa9",
  };
  for (size_t i = 0; i < KP_N_ELEMENTS (refs); i++)
    assert_int_equal (kp_store_image_tag_set (s, refs[i], i % 2 ? SHA_B : SHA_A, (int64_t) i + 10,
                                              &err), 0);
  assert_int_equal (count_entries (state, "images/tags"), KP_N_ELEMENTS (refs));
  assert_int_equal (kp_store_image_tag_get (s, refs[0], &digest, &when, &err), 1);
  assert_string_equal (digest, SHA_A);
  assert_int_equal (when, 10);
  free (digest);
  digest = NULL;
  assert_int_equal (kp_store_image_tag_set (s, refs[0], B3_C, 99, &err), 0);
  assert_int_equal (kp_store_image_tag_get (s, refs[0], &digest, &when, &err), 1);
  assert_string_equal (digest, B3_C);
  assert_int_equal (when, 99);
  free (digest);
  digest = NULL;
  assert_int_equal (kp_store_image_tag_get (s, refs[0], NULL, NULL, &err), 1);
  assert_int_equal (count_entries (state, "images/tags"), KP_N_ELEMENTS (refs));

  /* Listed sorted by reference. */
  {
    kp_cleanup_json json_t *tags = kp_store_image_tags (s, &err);
    assert_int_equal (json_array_size (tags), KP_N_ELEMENTS (refs));
    const char *prev = "";
    size_t i;
    json_t *t;
    json_array_foreach (tags, i, t)
      {
        const char *ref = json_string_value (json_object_get (t, "reference"));
        assert_true (strcmp (prev, ref) < 0);
        prev = ref;
        assert_non_null (json_string_value (json_object_get (t, "digest")));
        assert_true (json_is_integer (json_object_get (t, "resolved")));
      }
    assert_string_equal (json_string_value (json_object_get (json_array_get (tags, 0),
                                                             "reference")), refs[2]);
  }

  /* Refused: a bad digest, an empty reference. */
  assert_int_equal (kp_store_image_tag_set (s, "docker://r/x:2", "sha256:xyz", 1, &err), -1);
  kp_error_free (err);
  err = NULL;
  assert_int_equal (kp_store_image_tag_set (s, "", SHA_A, 1, &err), -1);
  kp_error_free (err);
  err = NULL;

  /* Removing one tag leaves the others. */
  assert_int_equal (kp_store_image_tag_remove (s, refs[2], &err), 0);
  assert_int_equal (kp_store_image_tag_get (s, refs[2], NULL, NULL, &err), 0);
  assert_int_equal (kp_store_image_tag_get (s, refs[3], NULL, NULL, &err), 1);

  /* Removing an image removes every tag naming it, and only those. */
  assert_int_equal (kp_store_image_remove (s, SHA_B, &err), 0);
  assert_int_equal (kp_store_image_tag_get (s, refs[1], NULL, NULL, &err), 0);
  assert_int_equal (kp_store_image_tag_get (s, refs[3], NULL, NULL, &err), 0);
  assert_int_equal (kp_store_image_tag_get (s, refs[0], NULL, NULL, &err), 1);

  /* A tag file moved under another reference's name answers for neither. */
  char name0[KP_BLAKE3_HEX_LEN + 1], name9[KP_BLAKE3_HEX_LEN + 1];
  uint8_t d[KP_BLAKE3_OUT_LEN];
  kp_blake3_hash (refs[0], strlen (refs[0]), d);
  kp_blake3_to_hex (d, name0);
  kp_blake3_hash ("docker://r/other:1", 18, d);
  kp_blake3_to_hex (d, name9);
  kp_cleanup_free char *from_rel = xasprintf ("images/tags/%s.json", name0);
  kp_cleanup_free char *to_rel = xasprintf ("images/tags/%s.json", name9);
  kp_cleanup_free char *from = in_store (state, from_rel);
  kp_cleanup_free char *to = in_store (state, to_rel);
  assert_int_equal (rename (from, to), 0);
  assert_int_equal (kp_store_image_tag_get (s, "docker://r/other:1", NULL, NULL, &err), -1);
  assert_int_equal (err->status, KP_EXIT_STORE);
  kp_error_free (err);
  err = NULL;
  assert_int_equal (kp_store_image_tag_get (s, refs[0], NULL, NULL, &err), 0);
}

/* ---- gc ---- */

static void
test_image_gc (void **state)
{
  kp_cleanup_store kp_store *s = open_store (state, KP_STORE_WRITE);
  kp_error *err = NULL;
  object_id tar, blob, loose;
  char layer[KP_BLAKE3_HEX_LEN + 1];
  if (!small_layer (s, "ID=gc\n", tar, layer))
    skip ();
  assert_int_equal (kp_store_put (s, "manifest", 8, blob, &err), 0);
  assert_int_equal (kp_store_put (s, "nobody's", 8, loose, &err), 0);
  char *objects[] = { blob, NULL };
  kp_image_record rec = { .digest = (char *) SHA_A, .objects = objects };
  memcpy (rec.tree_digest, layer, sizeof rec.tree_digest);
  assert_int_equal (kp_store_image_write (s, &rec, &err), 0);
  assert_int_equal (kp_store_image_tag_set (s, "docker://r/x:1", SHA_A, 1, &err), 0);

  /* The record keeps its layer (and, through it, the layer's archive) and its objects. */
  kp_store_gc_report rep;
  assert_int_equal (kp_store_gc (s, NULL, &rep, &err), 0);
  assert_int_equal (rep.freed_layers, 0);
  assert_int_equal (rep.freed_objects, 1);
  assert_int_equal (rep.kept_layers, 1);
  kp_store_gc_report_clear (&rep);
  assert_int_equal (kp_store_has (s, tar, &err), 1);
  assert_int_equal (kp_store_has (s, blob, &err), 1);
  assert_int_equal (kp_store_has (s, loose, &err), 0);
  assert_int_equal (kp_store_layer_exists (s, layer, &err), 1);

  /* An unreadable record stops gc before anything is deleted. */
  assert_int_equal (kp_store_put (s, "nobody's", 8, loose, &err), 0);
  kp_cleanup_free char *path = in_store (state, "images/sha256-0123456789abcdef0123456789abcdef"
                                                "0123456789abcdef0123456789abcdef.json");
  kp_cleanup_free char *saved = kp_file_read (path, 1 << 20, NULL, &err);
  assert_non_null (saved);
  flip_byte (path, 20);
  assert_int_equal (kp_store_gc (s, NULL, &rep, &err), -1);
  assert_int_equal (err->status, KP_EXIT_STORE);
  assert_non_null (strstr (err->message, "nothing was deleted"));
  kp_error_free (err);
  err = NULL;
  kp_store_gc_report_clear (&rep);
  assert_int_equal (kp_store_has (s, loose, &err), 1);
  assert_int_equal (kp_file_write_atomic (path, saved, strlen (saved), 0644, false, &err), 0);

  /* Removed: the next gc frees the layer, its archive and the record's objects. */
  assert_int_equal (kp_store_image_remove (s, SHA_A, &err), 0);
  assert_int_equal (kp_store_image_tag_get (s, "docker://r/x:1", NULL, NULL, &err), 0);
  assert_int_equal (kp_store_gc (s, NULL, &rep, &err), 0);
  assert_int_equal (rep.freed_layers, 1);
  assert_int_equal (rep.freed_objects, 3);
  kp_store_gc_report_clear (&rep);
  assert_int_equal (count_objects (s), 0);
  assert_int_equal (kp_store_layer_exists (s, layer, &err), 0);
  assert_int_equal (verify_problems (s), 0);
}

/* ---- verify-store ---- */

static void
test_image_verify (void **state)
{
  kp_cleanup_store kp_store *s = open_store (state, KP_STORE_WRITE);
  kp_error *err = NULL;
  object_id tar, blob;
  char layer[KP_BLAKE3_HEX_LEN + 1];
  if (!small_layer (s, "ID=verify\n", tar, layer))
    skip ();
  assert_int_equal (kp_store_put (s, "config", 6, blob, &err), 0);
  char *objects[] = { blob, NULL };
  kp_image_record rec = { .digest = (char *) SHA_A, .objects = objects };
  memcpy (rec.tree_digest, layer, sizeof rec.tree_digest);
  assert_int_equal (kp_store_image_write (s, &rec, &err), 0);
  assert_int_equal (kp_store_image_tag_set (s, "docker://r/x:1", SHA_A, 1, &err), 0);
  assert_int_equal (verify_problems (s), 0);

  /* A corrupted record. */
  kp_cleanup_free char *path = in_store (state, "images/sha256-0123456789abcdef0123456789abcdef"
                                                "0123456789abcdef0123456789abcdef.json");
  kp_cleanup_free char *saved = kp_file_read (path, 1 << 20, NULL, &err);
  flip_byte (path, 30);
  assert_int_equal (verify_problems (s), 1);
  assert_null (kp_store_image_read (s, SHA_A, &err));
  assert_int_equal (err->status, KP_EXIT_STORE);
  kp_error_free (err);
  err = NULL;
  assert_int_equal (kp_file_write_atomic (path, saved, strlen (saved), 0644, false, &err), 0);
  assert_int_equal (verify_problems (s), 0);

  /* A tag naming no record. */
  assert_int_equal (kp_store_image_tag_set (s, "docker://r/y:1", SHA_B, 1, &err), 0);
  assert_int_equal (verify_problems (s), 1);
  assert_int_equal (kp_store_image_tag_remove (s, "docker://r/y:1", &err), 0);

  /* A corrupted tag: reported on its own, and the other tags still list for verify. */
  uint8_t d[KP_BLAKE3_OUT_LEN];
  char name[KP_BLAKE3_HEX_LEN + 1];
  kp_blake3_hash ("docker://r/x:1", 14, d);
  kp_blake3_to_hex (d, name);
  kp_cleanup_free char *tag_rel = xasprintf ("images/tags/%s.json", name);
  kp_cleanup_free char *tag = in_store (state, tag_rel);
  kp_cleanup_free char *tag_saved = kp_file_read (tag, 1 << 20, NULL, &err);
  flip_byte (tag, 25);
  assert_int_equal (verify_problems (s), 1);
  assert_int_equal (kp_store_image_tag_get (s, "docker://r/x:1", NULL, NULL, &err), -1);
  kp_error_free (err);
  err = NULL;
  assert_int_equal (kp_file_write_atomic (tag, tag_saved, strlen (tag_saved), 0644, false,
                                          &err), 0);

  /* Leftovers in images/ and images/tags/. */
  kp_cleanup_free char *stray = in_store (state, "images/notes.txt");
  kp_cleanup_free char *stray_tag = in_store (state, "images/tags/README");
  assert_int_equal (kp_file_write_atomic (stray, "x", 1, 0644, false, &err), 0);
  assert_int_equal (kp_file_write_atomic (stray_tag, "x", 1, 0644, false, &err), 0);
  assert_int_equal (verify_problems (s), 2);
  unlink (stray);
  unlink (stray_tag);

  /* What the record names gone missing. */
  assert_int_equal (kp_store_remove_object (s, blob, &err), 0);
  assert_int_equal (verify_problems (s), 1);
  assert_int_equal (kp_store_put (s, "config", 6, blob, &err), 0);
  assert_int_equal (verify_problems (s), 0);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_writer, setup, teardown),
    cmocka_unit_test_setup_teardown (test_writer_read_only, setup, teardown),
    cmocka_unit_test_setup_teardown (test_writer_threads, setup, teardown),
    cmocka_unit_test_setup_teardown (test_flatten_layers, setup, teardown),
    cmocka_unit_test_setup_teardown (test_flatten_failures, setup, teardown),
    cmocka_unit_test_setup_teardown (test_image_records, setup, teardown),
    cmocka_unit_test_setup_teardown (test_tags, setup, teardown),
    cmocka_unit_test_setup_teardown (test_image_gc, setup, teardown),
    cmocka_unit_test_setup_teardown (test_image_verify, setup, teardown),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
