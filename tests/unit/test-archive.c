/* test-archive.c — deterministic packing, faithful round trips and hostile archives.
 *
 * Round trips are judged by the tree digest (docs/identity.md) and by the archive's bytes:
 * pack, unpack, pack again must give the same bytes and the same digest as the original.
 * The hostile corpus is written here byte by byte as ustar headers (so nothing between us
 * and the unpacker tidies a name up), each case is unpacked into a fresh directory inside a
 * sandbox, and each asserts its outcome and that the sandbox around the target is exactly
 * as it was. Every case runs with openat2 and again with KARAPACE_NO_OPENAT2=1.
 *
 * Flattening (apply_whiteouts) unpacks layers one over the other into one target and checks
 * what an overlay of them would show.
 *
 * Runs as root (owners, devices, trusted attributes included) and as an ordinary user (the
 * caller owns everything); what cannot be checked as the caller is skipped with a reason. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "tree-fixture.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "archive/archive.h"
#include "base/buf.h"
#include "base/fs.h"
#include "hash/blake3.h"
#include "hash/treedigest.h"

/* ---- Scratch directories ---- */

static int
unlock_entry (const char *path, const struct stat *st, int type, struct FTW *ftw)
{
  if (type == FTW_D || type == FTW_DNR)
    chmod (path, 0700);
  return 0;
}

static int
remove_entry (const char *path, const struct stat *st, int type, struct FTW *ftw)
{
  if (type == FTW_DP || type == FTW_D || type == FTW_DNR)
    return rmdir (path) < 0 ? -1 : 0;
  return unlink (path) < 0 ? -1 : 0;
}

static void
remove_tree (const char *path)
{
  nftw (path, unlock_entry, 64, FTW_PHYS);
  nftw (path, remove_entry, 64, FTW_DEPTH | FTW_PHYS);
}

static char *
make_temp_dir (const char *what)
{
  const char *tmp = getenv ("TMPDIR");
  char *dir = xasprintf ("%s/test-archive-%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", what);
  assert_non_null (mkdtemp (dir));
  return dir;
}

static void
chmod_in (const char *dir, const char *rel, mode_t mode)
{
  kp_cleanup_free char *p = path_in (dir, rel);
  assert_int_equal (chmod (p, mode), 0);
}

static void
lchown_in (const char *dir, const char *rel, uid_t uid, gid_t gid)
{
  kp_cleanup_free char *p = path_in (dir, rel);
  assert_int_equal (lchown (p, uid, gid), 0);
}

static struct stat
must_lstat (const char *target, const char *rel)
{
  kp_cleanup_free char *p = path_in (target, rel);
  struct stat st;
  if (lstat (p, &st) < 0)
    fail_msg ("lstat %s: %s", p, strerror (errno));
  return st;
}

static void
set_mtime (const char *dir, const char *rel, time_t t)
{
  kp_cleanup_free char *p = path_in (dir, rel);
  struct timespec ts[2] = { { t, 0 }, { t, 0 } };
  assert_int_equal (utimensat (AT_FDCWD, p, ts, AT_SYMLINK_NOFOLLOW), 0);
}

static char *
read_text (const char *dir, const char *rel)
{
  kp_cleanup_free char *p = path_in (dir, rel);
  return kp_file_read (p, 1 << 20, NULL, NULL);
}

static void
tree_digest (const char *dir, uint8_t out[KP_BLAKE3_OUT_LEN])
{
  kp_cleanup_error kp_error *err = NULL;
  if (kp_tree_digest (AT_FDCWD, dir, out, NULL, NULL, &err) < 0)
    fail_msg ("tree digest of %s: %s", dir, err->message);
}

/* ---- Packing into memory ---- */

typedef struct packed
{
  uint8_t *data;
  size_t len;
  uint8_t digest[KP_BLAKE3_OUT_LEN];
} packed;

static void
packed_clear (packed *p)
{
  free (p->data);
  p->data = NULL;
}

static int
memfd (void)
{
  int fd = memfd_create ("test-archive", MFD_CLOEXEC);
  assert_true (fd >= 0);
  return fd;
}

static void
pack_dir (const char *dir, int64_t clamp, packed *out)
{
  kp_cleanup_close int fd = memfd ();
  kp_pack_options opts = { .mtime_clamp = clamp };
  kp_cleanup_error kp_error *err = NULL;
  if (kp_archive_pack (AT_FDCWD, dir, fd, &opts, out->digest, &err) < 0)
    fail_msg ("pack %s: %s", dir, err->message);
  assert_int_equal (lseek (fd, 0, SEEK_SET), 0);
  out->data = (uint8_t *) kp_fd_read_all (fd, 1 << 28, &out->len, NULL);
  assert_non_null (out->data);
}

static int
fd_with (const void *data, size_t len)
{
  int fd = memfd ();
  assert_int_equal (kp_write_all (fd, data, len), 0);
  assert_int_equal (lseek (fd, 0, SEEK_SET), 0);
  return fd;
}

static int
unpack_bytes (const void *data, size_t len, const char *dir, const kp_unpack_options *opts,
              kp_unpack_stats *stats, kp_error **err)
{
  kp_cleanup_close int in = fd_with (data, len);
  kp_cleanup_close int target = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  assert_true (target >= 0);
  return kp_archive_unpack (in, target, opts, stats, err);
}

/* ---- A tree with something of everything ---- */

static bool
user_xattrs_work (const char *dir)
{
  kp_cleanup_free char *p = path_in (dir, "probe");
  put_file (dir, "probe", "", 0644);
  int r = setxattr (p, "user.probe", "1", 1, 0);
  int e = errno;
  unlink (p);
  if (r < 0)
    print_message ("[ SKIP     ] user xattr sub-case: setxattr on %s: %s\n", dir, strerror (e));
  return r == 0;
}

static void
build_tree (const char *dir, bool with_xattrs)
{
  assert_int_equal (chmod (dir, 0751), 0);
  put_file (dir, "hello.txt", "hello, world\n", 0644);
  put_file (dir, "empty", "", 0600);
  put_file (dir, "run.sh", "#!/bin/sh\necho hi\n", 0755);
  put_file (dir, "my notes%é.txt", "odd name\n", 0640);
  put_file (dir, "not-utf8-\xff\xfe", "latin-1 bytes\n", 0644);
  put_dir (dir, "sub", 0755);
  put_dir (dir, "sub/deeper", 0700);
  put_file (dir, "sub/deeper/data.bin", "\x01\x02\x03\x00\xff", 0444);
  put_dir (dir, "ro", 0755);
  put_file (dir, "ro/inside", "inside a read-only directory\n", 0644);
  chmod_in (dir, "ro", 0555);
  put_file (dir, "setuid", "s\n", 04755);
  put_file (dir, "linked", "one inode, two names\n", 0644);
  {
    kp_cleanup_free char *a = path_in (dir, "linked");
    kp_cleanup_free char *b = path_in (dir, "sub/linked-too");
    assert_int_equal (link (a, b), 0);
  }
  {
    kp_cleanup_free char *p = path_in (dir, "link-to-hello");
    assert_int_equal (symlink ("hello.txt", p), 0);
    kp_cleanup_free char *q = path_in (dir, "dangling");
    assert_int_equal (symlink ("/nowhere/at/all", q), 0);
    kp_cleanup_free char *f = path_in (dir, "fifo");
    assert_int_equal (mkfifo (f, 0620), 0);
  }
  /* A bigger file, to cross libarchive's buffers. */
  {
    kp_cleanup_free char *p = path_in (dir, "big");
    kp_cleanup_close int fd = open (p, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    assert_true (fd >= 0);
    kp_cleanup_free uint8_t *buf = xmalloc (1 << 20);
    for (size_t i = 0; i < (1 << 20); i++)
      buf[i] = (uint8_t) (i * 7 + (i >> 9));
    for (int i = 0; i < 3; i++)
      assert_int_equal (kp_write_all (fd, buf, 1 << 20), 0);
  }
  if (with_xattrs)
    {
      kp_cleanup_free char *f = path_in (dir, "hello.txt");
      assert_int_equal (setxattr (f, "user.b", "second", 6, 0), 0);
      assert_int_equal (setxattr (f, "user.a", "first\0bin", 9, 0), 0);
      kp_cleanup_free char *d = path_in (dir, "sub");
      assert_int_equal (setxattr (d, "user.dir", "", 0, 0), 0);
    }
  if (geteuid () == 0)
    {
      kp_cleanup_free char *f = path_in (dir, "sub/deeper/data.bin");
      assert_int_equal (lchown (f, 1234, 5678), 0);
      kp_cleanup_free char *l = path_in (dir, "link-to-hello");
      assert_int_equal (lchown (l, 4321, 8765), 0);
      kp_cleanup_free char *d = path_in (dir, "sub/deeper");
      assert_int_equal (chown (d, 99, 98), 0);
      kp_cleanup_free char *n = path_in (dir, "null");
      assert_int_equal (mknod (n, S_IFCHR | 0666, makedev (1, 3)), 0);
      chmod_in (dir, "setuid", 04755);
    }
  /* Times: some in the future (clamped), some in the past (kept). */
  set_mtime (dir, "hello.txt", 4000000000);
  set_mtime (dir, "empty", 500);
  set_mtime (dir, "sub/deeper", 3000000000);
}

/* ---- Pack: determinism ---- */

static void
test_pack_deterministic (void **state)
{
  kp_cleanup_free char *dir = make_temp_dir ("det");
  build_tree (dir, user_xattrs_work (dir));

  packed a = { 0 }, b = { 0 };
  pack_dir (dir, 1700000000, &a);
  /* Reading every file changes access times; the archive must not care. */
  sleep (1);
  pack_dir (dir, 1700000000, &b);
  assert_int_equal (a.len, b.len);
  assert_memory_equal (a.data, b.data, a.len);
  assert_memory_equal (a.digest, b.digest, KP_BLAKE3_OUT_LEN);
  uint8_t check[KP_BLAKE3_OUT_LEN];
  kp_blake3_hash (a.data, a.len, check);
  assert_memory_equal (check, a.digest, KP_BLAKE3_OUT_LEN);
  assert_int_equal (a.len % 512, 0);

  /* What is in it: the walk order, clamped times, no names, hard links as links. */
  struct archive *ar = archive_read_new ();
  archive_read_support_format_tar (ar);
  assert_int_equal (archive_read_open_memory (ar, a.data, a.len), ARCHIVE_OK);
  struct archive_entry *e;
  kp_cleanup_free char *prev = NULL;
  size_t n = 0;
  bool saw_link = false;
  while (archive_read_next_header (ar, &e) == ARCHIVE_OK)
    {
      const char *name = archive_entry_pathname (e);
      assert_true (archive_entry_mtime (e) <= 1700000000);
      assert_false (archive_entry_atime_is_set (e));
      assert_false (archive_entry_ctime_is_set (e));
      assert_true (archive_entry_uname (e) == NULL || *archive_entry_uname (e) == '\0');
      assert_true (archive_entry_gname (e) == NULL || *archive_entry_gname (e) == '\0');
      if (strcmp (name, "empty") == 0)
        assert_int_equal (archive_entry_mtime (e), 500);
      if (strcmp (name, "hello.txt") == 0)
        assert_int_equal (archive_entry_mtime (e), 1700000000);
      if (archive_entry_hardlink (e))
        {
          assert_string_equal (name, "sub/linked-too");
          assert_string_equal (archive_entry_hardlink (e), "linked");
          saw_link = true;
        }
      if (n == 0)
        assert_string_equal (name, "./");
      n++;
      free (prev);
      prev = xstrdup (name);
    }
  assert_true (saw_link);
  assert_true (n > 10);
  archive_read_free (ar);

  /* Without a clamp, times are kept. */
  packed c = { 0 };
  pack_dir (dir, -1, &c);
  assert_memory_not_equal (c.digest, a.digest, KP_BLAKE3_OUT_LEN);
  packed_clear (&a);
  packed_clear (&b);
  packed_clear (&c);
  remove_tree (dir);
}

/* ---- Round trip ---- */

static void
roundtrip_options (kp_unpack_options *o)
{
  memset (o, 0, sizeof *o);
  o->preserve_owner = geteuid () == 0;
  o->allow_devices = geteuid () == 0;
  o->keep_setid = true;
}

static void
test_roundtrip (void **state)
{
  kp_cleanup_free char *src = make_temp_dir ("src");
  kp_cleanup_free char *dst = make_temp_dir ("dst");
  bool xattrs = user_xattrs_work (src);
  build_tree (src, xattrs);

  packed first = { 0 }, second = { 0 };
  pack_dir (src, 1700000000, &first);

  kp_unpack_options o;
  roundtrip_options (&o);
  kp_unpack_stats stats = { 0 };
  kp_cleanup_error kp_error *err = NULL;
  if (unpack_bytes (first.data, first.len, dst, &o, &stats, &err) < 0)
    fail_msg ("unpack: %s", err->message);
  assert_true (stats.entries > 10);
  assert_int_equal (stats.whiteouts, 0);
  assert_true (stats.bytes >= 3 << 20);

  uint8_t d1[KP_BLAKE3_OUT_LEN], d2[KP_BLAKE3_OUT_LEN];
  tree_digest (src, d1);
  tree_digest (dst, d2);
  assert_memory_equal (d1, d2, KP_BLAKE3_OUT_LEN);

  pack_dir (dst, 1700000000, &second);
  assert_int_equal (first.len, second.len);
  assert_memory_equal (first.data, second.data, first.len);
  assert_memory_equal (first.digest, second.digest, KP_BLAKE3_OUT_LEN);

  /* Hard links survive as one inode. */
  struct stat a, b;
  kp_cleanup_free char *pa = path_in (dst, "linked");
  kp_cleanup_free char *pb = path_in (dst, "sub/linked-too");
  assert_int_equal (lstat (pa, &a), 0);
  assert_int_equal (lstat (pb, &b), 0);
  assert_int_equal (a.st_ino, b.st_ino);
  assert_int_equal (a.st_nlink, 2);

  /* Times: clamped, or kept when older; directories too. */
  kp_cleanup_free char *ph = path_in (dst, "hello.txt");
  assert_int_equal (lstat (ph, &a), 0);
  assert_int_equal (a.st_mtim.tv_sec, 1700000000);
  kp_cleanup_free char *pe = path_in (dst, "empty");
  assert_int_equal (lstat (pe, &a), 0);
  assert_int_equal (a.st_mtim.tv_sec, 500);
  kp_cleanup_free char *pd = path_in (dst, "sub/deeper");
  assert_int_equal (lstat (pd, &a), 0);
  assert_int_equal (a.st_mtim.tv_sec, 1700000000);
  kp_cleanup_free char *pr = path_in (dst, "ro");
  assert_int_equal (lstat (pr, &a), 0);
  assert_int_equal (a.st_mode & 07777, 0555);

  if (xattrs)
    {
      char v[32];
      assert_int_equal (getxattr (ph, "user.a", v, sizeof v), 9);
      assert_memory_equal (v, "first\0bin", 9);
      assert_int_equal (getxattr (ph, "user.b", v, sizeof v), 6);
      kp_cleanup_free char *psub = path_in (dst, "sub");
      assert_int_equal (getxattr (psub, "user.dir", v, sizeof v), 0);
    }
  if (geteuid () == 0)
    {
      kp_cleanup_free char *pl = path_in (dst, "link-to-hello");
      assert_int_equal (lstat (pl, &a), 0);
      assert_int_equal (a.st_uid, 4321);
      assert_int_equal (a.st_gid, 8765);
      kp_cleanup_free char *pn = path_in (dst, "null");
      assert_int_equal (lstat (pn, &a), 0);
      assert_true (S_ISCHR (a.st_mode));
      assert_int_equal (a.st_rdev, makedev (1, 3));
    }
  else
    print_message ("[ SKIP     ] owners and devices: not root, the caller owns everything\n");

  packed_clear (&first);
  packed_clear (&second);
  remove_tree (src);
  remove_tree (dst);
}

/* Without keep_setid the bits go; without preserve_owner the caller owns all. */
static void
test_unpack_policy (void **state)
{
  kp_cleanup_free char *src = make_temp_dir ("pol");
  kp_cleanup_free char *dst = make_temp_dir ("pold");
  put_file (src, "setuid", "s\n", 0755);
  chmod_in (src, "setuid", 06755);
  put_dir (src, "shared", 0755);
  chmod_in (src, "shared", 02775);
  if (geteuid () == 0)
    lchown_in (src, "setuid", 1234, 1234);
  packed p = { 0 };
  pack_dir (src, 0, &p);
  kp_unpack_options o = { 0 };
  kp_cleanup_error kp_error *err = NULL;
  if (unpack_bytes (p.data, p.len, dst, &o, NULL, &err) < 0)
    fail_msg ("unpack: %s", err->message);
  struct stat st = must_lstat (dst, "setuid");
  assert_int_equal (st.st_mode & 07777, 0755);
  assert_int_equal (st.st_uid, geteuid ());
  st = must_lstat (dst, "shared");
  assert_int_equal (st.st_mode & 07777, 02775);
  assert_int_equal (st.st_mtim.tv_sec, 0);
  packed_clear (&p);
  remove_tree (src);
  remove_tree (dst);
}

/* Deeper than the walk keeps descriptors for, and a socket, which tar cannot hold. */
static void
test_deep_and_socket (void **state)
{
  kp_cleanup_free char *src = make_temp_dir ("deep");
  kp_cleanup_free char *dst = make_temp_dir ("deepd");
  kp_buf rel = KP_BUF_INIT;
  for (int i = 0; i < 150; i++)
    {
      if (i)
        kp_buf_putc (&rel, '/');
      kp_buf_printf (&rel, "%c", 'a' + i % 26);
      put_dir (src, kp_buf_str (&rel), 0755);
      if (i % 50 == 0)
        {
          kp_cleanup_free char *f = xasprintf ("%s/file", kp_buf_str (&rel));
          put_file (src, f, "deep\n", 0644);
        }
    }
  put_file (src, "z-after", "after the climb back\n", 0644);

  packed p = { 0 };
  pack_dir (src, 0, &p);
  kp_cleanup_error kp_error *err = NULL;
  if (unpack_bytes (p.data, p.len, dst, NULL, NULL, &err) < 0)
    fail_msg ("unpack: %s", err->message);
  uint8_t d1[KP_BLAKE3_OUT_LEN], d2[KP_BLAKE3_OUT_LEN];
  tree_digest (src, d1);
  tree_digest (dst, d2);
  assert_memory_equal (d1, d2, KP_BLAKE3_OUT_LEN);

  /* Now a socket next to the files: packing skips it and changes nothing else. */
  kp_cleanup_free char *sock_path = path_in (src, "sock");
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  if (strlen (sock_path) < sizeof addr.sun_path)
    {
      strcpy (addr.sun_path, sock_path);
      kp_cleanup_close int sock = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      assert_true (sock >= 0);
      assert_int_equal (bind (sock, (struct sockaddr *) &addr, sizeof addr), 0);
      packed q = { 0 };
      pack_dir (src, 0, &q);
      assert_int_equal (q.len, p.len);
      assert_memory_equal (q.data, p.data, p.len);
      packed_clear (&q);
    }
  else
    print_message ("[ SKIP     ] socket sub-case: %s is too long for a socket address\n",
                   sock_path);
  kp_buf_clear (&rel);
  packed_clear (&p);
  remove_tree (src);
  remove_tree (dst);
}

/* An overlay upper directory packed as an OCI layer, and back. */
static void
test_oci_whiteouts (void **state)
{
  kp_cleanup_free char *src = make_temp_dir ("upper");
  kp_cleanup_free char *dst = make_temp_dir ("upperd");
  if (!user_xattrs_work (src))
    {
      remove_tree (src);
      remove_tree (dst);
      return;
    }
  put_file (src, "kept", "k\n", 0644);
  {
    kp_cleanup_free char *wh = path_in (src, "gone");
    /* Mode 0, as overlayfs makes them. */
    assert_int_equal (mknod (wh, S_IFCHR | 0000, makedev (0, 0)), 0);
  }
  put_dir (src, "opq", 0755);
  put_file (src, "opq/inner", "i\n", 0644);
  {
    kp_cleanup_free char *d = path_in (src, "opq");
    assert_int_equal (setxattr (d, "user.overlay.opaque", "y", 1, 0), 0);
    assert_int_equal (setxattr (d, "user.overlay.origin", "zz", 2, 0), 0);
    assert_int_equal (setxattr (d, "user.other", "o", 1, 0), 0);
  }

  kp_pack_options po = { .mtime_clamp = 0, .oci_whiteouts = true };
  packed p = { 0 }, q = { 0 };
  {
    kp_cleanup_close int fd = memfd ();
    kp_cleanup_error kp_error *err = NULL;
    if (kp_archive_pack (AT_FDCWD, src, fd, &po, p.digest, &err) < 0)
      fail_msg ("pack: %s", err->message);
    assert_int_equal (lseek (fd, 0, SEEK_SET), 0);
    p.data = (uint8_t *) kp_fd_read_all (fd, 1 << 24, &p.len, NULL);
  }
  /* The markers are there, the overlay's attributes are not, the others are. */
  struct archive *ar = archive_read_new ();
  archive_read_support_format_tar (ar);
  assert_int_equal (archive_read_open_memory (ar, p.data, p.len), ARCHIVE_OK);
  struct archive_entry *e;
  int seen = 0;
  while (archive_read_next_header (ar, &e) == ARCHIVE_OK)
    {
      const char *name = archive_entry_pathname (e);
      if (strcmp (name, ".wh.gone") == 0 || strcmp (name, "opq/.wh..wh..opq") == 0)
        {
          assert_int_equal (archive_entry_filetype (e), AE_IFREG);
          assert_int_equal (archive_entry_size (e), 0);
          seen++;
        }
      assert_string_not_equal (name, "gone");
      const char *xname;
      const void *value;
      size_t size;
      archive_entry_xattr_reset (e);
      while (archive_entry_xattr_next (e, &xname, &value, &size) == ARCHIVE_OK)
        {
          assert_null (strstr (xname, ".overlay."));
          if (strcmp (name, "opq/") == 0 || strcmp (name, "opq") == 0)
            assert_string_equal (xname, "user.other");
        }
    }
  archive_read_free (ar);
  assert_int_equal (seen, 2);

  /* Unpacking with whiteouts gives the upper directory back, less the overlay's other
   * attributes; packing that again gives the same layer. */
  kp_unpack_options uo = { .oci_whiteouts = true };
  kp_unpack_stats st = { 0 };
  kp_cleanup_error kp_error *err = NULL;
  if (unpack_bytes (p.data, p.len, dst, &uo, &st, &err) < 0)
    fail_msg ("unpack: %s", err->message);
  assert_int_equal (st.whiteouts, 2);
  {
    kp_cleanup_free char *d = path_in (src, "opq");
    assert_int_equal (removexattr (d, "user.overlay.origin"), 0);
  }
  uint8_t d1[KP_BLAKE3_OUT_LEN], d2[KP_BLAKE3_OUT_LEN];
  tree_digest (src, d1);
  tree_digest (dst, d2);
  assert_memory_equal (d1, d2, KP_BLAKE3_OUT_LEN);
  {
    kp_cleanup_close int fd = memfd ();
    kp_cleanup_error kp_error *err2 = NULL;
    if (kp_archive_pack (AT_FDCWD, dst, fd, &po, q.digest, &err2) < 0)
      fail_msg ("pack: %s", err2->message);
    assert_int_equal (lseek (fd, 0, SEEK_SET), 0);
    q.data = (uint8_t *) kp_fd_read_all (fd, 1 << 24, &q.len, NULL);
  }
  assert_int_equal (p.len, q.len);
  assert_memory_equal (p.data, q.data, p.len);
  packed_clear (&p);
  packed_clear (&q);
  remove_tree (src);
  remove_tree (dst);
}

/* ---- Hostile archives, written header by header ---- */

typedef struct tarw
{
  kp_buf b;
} tarw;

static void
octal (char *field, size_t width, uint64_t v)
{
  /* width - 1 digits and a NUL, as ustar wants. */
  field[width - 1] = '\0';
  for (size_t i = width - 1; i-- > 0;)
    {
      field[i] = (char) ('0' + (v & 7));
      v >>= 3;
    }
}

static void
tar_header (tarw *t, const char *name, char type, mode_t mode, uint64_t size,
            const char *linkname, unsigned major, unsigned minor)
{
  char h[512];
  memset (h, 0, sizeof h);
  memcpy (h, name, strnlen (name, 100));
  octal (h + 100, 8, mode & 07777);
  octal (h + 108, 8, 0);
  octal (h + 116, 8, 0);
  octal (h + 124, 12, size);
  octal (h + 136, 12, 1000);
  memset (h + 148, ' ', 8);
  h[156] = type;
  if (linkname)
    memcpy (h + 157, linkname, strnlen (linkname, 100));
  memcpy (h + 257, "ustar", 6);
  memcpy (h + 263, "00", 2);
  octal (h + 329, 8, major);
  octal (h + 337, 8, minor);
  unsigned sum = 0;
  for (size_t i = 0; i < sizeof h; i++)
    sum += (unsigned char) h[i];
  snprintf (h + 148, 8, "%06o", sum);
  kp_buf_append (&t->b, h, sizeof h);
}

static void
tar_file (tarw *t, const char *name, const char *content, mode_t mode)
{
  size_t len = strlen (content);
  tar_header (t, name, '0', mode, len, NULL, 0, 0);
  kp_buf_append (&t->b, content, len);
  static const char zeros[512];
  if (len % 512)
    kp_buf_append (&t->b, zeros, 512 - len % 512);
}

static void
tar_dir (tarw *t, const char *name, mode_t mode)
{
  tar_header (t, name, '5', mode, 0, NULL, 0, 0);
}

static void
tar_symlink (tarw *t, const char *name, const char *target)
{
  tar_header (t, name, '2', 0777, 0, target, 0, 0);
}

static void
tar_hardlink (tarw *t, const char *name, const char *target)
{
  tar_header (t, name, '1', 0644, 0, target, 0, 0);
}

static void
tar_end (tarw *t)
{
  static const char zeros[1024];
  kp_buf_append (&t->b, zeros, sizeof zeros);
}

/* The sandbox: OUTSIDE (with a canary) next to the targets; nothing else may change. */
typedef struct sandbox
{
  char *root;
  char *outside;
  char *canary;
  uint8_t outside_digest[KP_BLAKE3_OUT_LEN];
} sandbox;

static void
sandbox_open (sandbox *s)
{
  s->root = make_temp_dir ("sandbox");
  s->outside = path_in (s->root, "outside");
  put_dir (s->root, "outside", 0755);
  put_file (s->outside, "canary", "canary\n", 0644);
  s->canary = path_in (s->outside, "canary");
  tree_digest (s->outside, s->outside_digest);
}

static void
sandbox_check (const sandbox *s)
{
  uint8_t now[KP_BLAKE3_OUT_LEN];
  tree_digest (s->outside, now);
  assert_memory_equal (now, s->outside_digest, KP_BLAKE3_OUT_LEN);
  kp_cleanup_free char *c = kp_file_read (s->canary, 1024, NULL, NULL);
  assert_non_null (c);
  assert_string_equal (c, "canary\n");
  /* Only "outside" and "target" live in the sandbox root. */
  kp_cleanup_dir DIR *d = opendir (s->root);
  assert_non_null (d);
  struct dirent *de;
  while ((de = readdir (d)))
    if (strcmp (de->d_name, ".") && strcmp (de->d_name, "..") && strcmp (de->d_name, "outside")
        && strcmp (de->d_name, "target"))
      fail_msg ("unexpected %s/%s after unpacking", s->root, de->d_name);
  assert_int_not_equal (access ("/etc/x", F_OK), 0);
  assert_int_not_equal (access ("/evil", F_OK), 0);
}

static void
sandbox_close (sandbox *s)
{
  remove_tree (s->root);
  free (s->root);
  free (s->outside);
  free (s->canary);
}

typedef void (*check_fn) (const sandbox *s, const char *target);

typedef struct hostile
{
  const char *what;
  void (*build) (tarw *t, const sandbox *s);
  const char *refused; /* NULL: must succeed; else a substring of the error */
  check_fn check;      /* after success */
  bool whiteouts;
  uint64_t max_bytes, max_entries;
} hostile;

static void
must_not_exist (const char *target, const char *rel)
{
  kp_cleanup_free char *p = path_in (target, rel);
  struct stat st;
  if (lstat (p, &st) == 0)
    fail_msg ("%s exists", p);
}

static void
b_dotdot (tarw *t, const sandbox *s)
{
  tar_file (t, "../evil", "x", 0644);
}

static void
b_dotdot_inner (tarw *t, const sandbox *s)
{
  tar_dir (t, "a/", 0755);
  tar_file (t, "a/../../outside/evil", "x", 0644);
}

static void
b_absolute (tarw *t, const sandbox *s)
{
  tar_file (t, "/etc/x", "absolute\n", 0644);
  tar_file (t, "./././rel", "dotted\n", 0644);
}

static void
c_absolute (const sandbox *s, const char *target)
{
  kp_cleanup_free char *x = read_text (target, "etc/x");
  assert_non_null (x);
  assert_string_equal (x, "absolute\n");
  kp_cleanup_free char *r = read_text (target, "rel");
  assert_string_equal (r, "dotted\n");
}

static void
b_symlink_parent (tarw *t, const sandbox *s)
{
  tar_symlink (t, "link", s->outside);
  tar_file (t, "link/file", "through a link\n", 0644);
}

static void
b_symlink_etc (tarw *t, const sandbox *s)
{
  tar_symlink (t, "etc", "/etc");
  tar_file (t, "etc/x", "through a link\n", 0644);
}

static void
b_symlink_chain (tarw *t, const sandbox *s)
{
  tar_symlink (t, "l1", "..");
  tar_symlink (t, "l2", "l1/..");
  tar_file (t, "l2/outside/evil", "x", 0644);
}

static void
b_hardlink_abs (tarw *t, const sandbox *s)
{
  tar_hardlink (t, "passwd", "/etc/passwd");
}

static void
b_hardlink_up (tarw *t, const sandbox *s)
{
  tar_hardlink (t, "canary", "../outside/canary");
}

static void
b_hardlink_via_symlink (tarw *t, const sandbox *s)
{
  tar_symlink (t, "out", s->outside);
  tar_hardlink (t, "stolen", "out/canary");
}

static void
b_hardlink_to_symlink (tarw *t, const sandbox *s)
{
  tar_symlink (t, "s", s->canary);
  tar_hardlink (t, "h", "s");
  tar_file (t, "h", "replaced, not written through\n", 0644);
}

static void
c_hardlink_to_symlink (const sandbox *s, const char *target)
{
  struct stat st = must_lstat (target, "s");
  assert_true (S_ISLNK (st.st_mode));
  st = must_lstat (target, "h");
  assert_true (S_ISREG (st.st_mode));
}

static void
b_file_symlink_file (tarw *t, const sandbox *s)
{
  tar_file (t, "f", "first\n", 0644);
  tar_symlink (t, "f", s->canary);
  tar_file (t, "f", "pwned\n", 0644);
}

static void
c_file_symlink_file (const sandbox *s, const char *target)
{
  struct stat st = must_lstat (target, "f");
  assert_true (S_ISREG (st.st_mode));
  kp_cleanup_free char *f = read_text (target, "f");
  assert_string_equal (f, "pwned\n");
}

static void
b_symlink_then_dir (tarw *t, const sandbox *s)
{
  tar_symlink (t, "d", s->outside);
  tar_dir (t, "d/", 0777);
  tar_file (t, "d/x", "x\n", 0644);
}

static void
c_symlink_then_dir (const sandbox *s, const char *target)
{
  struct stat st = must_lstat (target, "d");
  assert_true (S_ISDIR (st.st_mode));
  assert_int_equal (st.st_mode & 07777, 0777);
}

static void
b_dir_replaced_by_symlink (tarw *t, const sandbox *s)
{
  tar_dir (t, "r/", 0755);
  tar_file (t, "r/before", "b\n", 0644);
  tar_symlink (t, "r", s->outside);
  tar_file (t, "r/x", "x\n", 0644);
}

static void
b_not_a_dir (tarw *t, const sandbox *s)
{
  tar_file (t, "plain", "p\n", 0644);
  tar_file (t, "plain/child", "c\n", 0644);
}

static void
b_hardlink_dir (tarw *t, const sandbox *s)
{
  tar_dir (t, "dir/", 0755);
  tar_hardlink (t, "hl", "dir");
}

static void
b_device (tarw *t, const sandbox *s)
{
  tar_header (t, "dev/null", '3', 0666, 0, NULL, 1, 3);
}

static void
b_whiteout_device (tarw *t, const sandbox *s)
{
  tar_header (t, "wh", '3', 0, 0, NULL, 0, 0);
  tar_header (t, "pipe", '6', 0600, 0, NULL, 0, 0);
}

static void
c_whiteout_device (const sandbox *s, const char *target)
{
  struct stat st = must_lstat (target, "wh");
  assert_true (S_ISCHR (st.st_mode));
  assert_int_equal (st.st_rdev, makedev (0, 0));
  st = must_lstat (target, "pipe");
  assert_true (S_ISFIFO (st.st_mode));
}

static void
b_setuid (tarw *t, const sandbox *s)
{
  tar_file (t, "su", "#!/bin/sh\n", 06755);
}

static void
c_setuid (const sandbox *s, const char *target)
{
  struct stat st = must_lstat (target, "su");
  assert_int_equal (st.st_mode & 07777, 0755);
}

static void
b_huge (tarw *t, const sandbox *s)
{
  tar_header (t, "bomb", '0', 0644, 1ull << 32, NULL, 0, 0);
  tar_end (t);
}

static void
b_many (tarw *t, const sandbox *s)
{
  for (int i = 0; i < 150; i++)
    {
      char name[32];
      snprintf (name, sizeof name, "f%03d", i);
      tar_file (t, name, "", 0644);
    }
}

static void
b_bytes (tarw *t, const sandbox *s)
{
  kp_cleanup_free char *chunk = xmalloc (3000);
  memset (chunk, 'a', 2999);
  chunk[2999] = '\0';
  tar_file (t, "one", chunk, 0644);
  tar_file (t, "two", chunk, 0644);
}

static void
b_duplicates (tarw *t, const sandbox *s)
{
  tar_file (t, "dup", "A\n", 0644);
  tar_file (t, "dup", "B\n", 0600);
  tar_dir (t, "dd/", 0755);
  tar_file (t, "dd/a", "a\n", 0644);
  tar_dir (t, "dd/", 0700);
  tar_dir (t, "ro/", 0555);
  tar_file (t, "ro/inner", "i\n", 0644);
  tar_dir (t, "gone/", 0755);
  tar_file (t, "gone", "now a file\n", 0644);
}

static void
c_duplicates (const sandbox *s, const char *target)
{
  kp_cleanup_free char *dup = read_text (target, "dup");
  assert_string_equal (dup, "B\n");
  assert_int_equal (must_lstat (target, "dup").st_mode & 07777, 0600);
  kp_cleanup_free char *a = read_text (target, "dd/a");
  assert_string_equal (a, "a\n");
  assert_int_equal (must_lstat (target, "dd").st_mode & 07777, 0700);
  assert_int_equal (must_lstat (target, "ro").st_mode & 07777, 0555);
  kp_cleanup_free char *i = read_text (target, "ro/inner");
  assert_string_equal (i, "i\n");
  assert_true (S_ISREG (must_lstat (target, "gone").st_mode));
}

static void
b_empty_name (tarw *t, const sandbox *s)
{
  tar_file (t, "", "nameless\n", 0644);
}

static void
b_root_as_file (tarw *t, const sandbox *s)
{
  tar_file (t, ".", "x\n", 0644);
}

static void
b_root_symlink (tarw *t, const sandbox *s)
{
  tar_symlink (t, ".", s->outside);
  tar_file (t, "x", "x\n", 0644);
}

static void
b_wh_dotdot (tarw *t, const sandbox *s)
{
  tar_file (t, ".wh...", "", 0644);
}

static void
b_wh_parent (tarw *t, const sandbox *s)
{
  /* ".wh.../x": not a whiteout at all, a directory with an odd name. */
  tar_file (t, ".wh.../x", "x\n", 0644);
}

static void
c_wh_parent (const sandbox *s, const char *target)
{
  assert_true (S_ISDIR (must_lstat (target, ".wh...").st_mode));
  assert_true (S_ISREG (must_lstat (target, ".wh.../x").st_mode));
}

static void
b_wh_dot (tarw *t, const sandbox *s)
{
  tar_file (t, "sub/.wh..", "", 0644);
}

static void
b_wh_up (tarw *t, const sandbox *s)
{
  tar_file (t, "../.wh.outside", "", 0644);
}

static void
b_wh_reserved (tarw *t, const sandbox *s)
{
  tar_file (t, ".wh..wh.plnk", "", 0644);
}

static void
b_wh_through_symlink (tarw *t, const sandbox *s)
{
  tar_symlink (t, "out", s->outside);
  tar_file (t, "out/.wh.canary", "", 0644);
}

static void
b_wh_symlink_name (tarw *t, const sandbox *s)
{
  tar_symlink (t, "x", s->outside);
  tar_file (t, ".wh.x", "", 0644);
  tar_dir (t, "d/", 0755);
  tar_file (t, "d/y", "y\n", 0644);
  tar_file (t, "d/.wh.y", "", 0644);
  tar_file (t, "opq/.wh..wh..opq", "", 0644);
  tar_file (t, "opq/kept", "k\n", 0644);
}

static void
c_wh_symlink_name (const sandbox *s, const char *target)
{
  struct stat st = must_lstat (target, "x");
  assert_true (S_ISCHR (st.st_mode));
  assert_int_equal (st.st_rdev, makedev (0, 0));
  st = must_lstat (target, "d/y");
  assert_true (S_ISCHR (st.st_mode));
  must_not_exist (target, ".wh.x");
  must_not_exist (target, "opq/.wh..wh..opq");
  kp_cleanup_free char *opq = path_in (target, "opq");
  char v[4];
  ssize_t n = getxattr (opq, "user.overlay.opaque", v, sizeof v);
  assert_int_equal (n, 1);
  assert_int_equal (v[0], 'y');
  kp_cleanup_free char *k = read_text (target, "opq/kept");
  assert_string_equal (k, "k\n");
}

static void
b_wh_plain (tarw *t, const sandbox *s)
{
  tar_file (t, ".wh.x", "just a file\n", 0644);
}

static void
c_wh_plain (const sandbox *s, const char *target)
{
  kp_cleanup_free char *f = read_text (target, ".wh.x");
  assert_string_equal (f, "just a file\n");
}

static void
b_overlay_xattr (tarw *t, const sandbox *s)
{
  /* A pax header giving a directory overlay attributes of its own. */
  static const char rec[] = "41 SCHILY.xattr.user.overlay.opaque=y\n";
  char recs[128];
  snprintf (recs, sizeof recs, "%s", rec);
  size_t len = strlen (recs);
  tar_header (t, "PaxHeader/d", 'x', 0644, len, NULL, 0, 0);
  kp_buf_append (&t->b, recs, len);
  static const char zeros[512];
  kp_buf_append (&t->b, zeros, 512 - len);
  tar_dir (t, "d/", 0755);
}

static void
c_overlay_xattr (const sandbox *s, const char *target)
{
  kp_cleanup_free char *d = path_in (target, "d");
  char v[4];
  assert_true (getxattr (d, "user.overlay.opaque", v, sizeof v) < 0);
}

static const hostile corpus[] = {
  { "../ traversal", b_dotdot, "\"../evil\": path leaves the target directory", NULL, false, 0, 0 },
  { "inner ..", b_dotdot_inner, "path leaves the target directory", NULL, false, 0, 0 },
  { "absolute and ./ names", b_absolute, NULL, c_absolute, false, 0, 0 },
  { "symlink parent to outside", b_symlink_parent, "\"link/file\": \"link\" is a symbolic link",
    NULL, false, 0, 0 },
  { "symlink parent to /etc", b_symlink_etc, "\"etc/x\": \"etc\" is a symbolic link", NULL, false,
    0, 0 },
  { "symlink .. chain", b_symlink_chain, "\"l2/outside/evil\"", NULL, false, 0, 0 },
  { "hardlink to /etc/passwd", b_hardlink_abs, "entry \"passwd\": hard link to \"/etc/passwd\"",
    NULL, false, 0, 0 },
  { "hardlink to ../", b_hardlink_up, "\"canary\": hard link to \"../outside/canary\": path leaves",
    NULL, false, 0, 0 },
  { "hardlink through a symlink", b_hardlink_via_symlink, "\"out\" is a symbolic link", NULL,
    false, 0, 0 },
  { "hardlink to a symlink", b_hardlink_to_symlink, NULL, c_hardlink_to_symlink, false, 0, 0 },
  { "file, symlink, file", b_file_symlink_file, NULL, c_file_symlink_file, false, 0, 0 },
  { "symlink then directory", b_symlink_then_dir, NULL, c_symlink_then_dir, false, 0, 0 },
  { "directory replaced by symlink", b_dir_replaced_by_symlink, "\"r/x\": \"r\" is a symbolic link",
    NULL, false, 0, 0 },
  { "file as a parent", b_not_a_dir, "\"plain/child\": \"plain\" is not a directory", NULL, false,
    0, 0 },
  { "hardlink to a directory", b_hardlink_dir, "\"hl\": hard link to the directory", NULL, false,
    0, 0 },
  { "device node", b_device, "\"dev/null\": device nodes are not allowed", NULL, false, 0, 0 },
  { "whiteout device and fifo", b_whiteout_device, NULL, c_whiteout_device, false, 0, 0 },
  { "setuid", b_setuid, NULL, c_setuid, false, 0, 0 },
  { "huge declared size", b_huge, "\"bomb\": archive exceeds the limit of 1048576 bytes", NULL,
    false, 1 << 20, 0 },
  { "too many entries", b_many, "archive exceeds the limit of 100 entries", NULL, false, 0, 100 },
  { "too many bytes", b_bytes, "\"two\": archive exceeds the limit of 5000 bytes", NULL, false,
    5000, 0 },
  { "duplicates", b_duplicates, NULL, c_duplicates, false, 0, 0 },
  { "empty name", b_empty_name, "empty name", NULL, false, 0, 0 },
  { "root as a file", b_root_as_file, "\".\": would replace the target directory", NULL, false, 0,
    0 },
  { "root as a symlink", b_root_symlink, "would replace the target directory", NULL, false, 0, 0 },
  { "whiteout of ..", b_wh_dotdot, "\".wh...\": path leaves the target directory", NULL, true, 0,
    0 },
  { "whiteout-looking parent", b_wh_parent, NULL, c_wh_parent, true, 0, 0 },
  { "whiteout of .", b_wh_dot, "\"sub/.wh..\": whiteout names no entry", NULL, true, 0, 0 },
  { "whiteout above the target", b_wh_up, "\"../.wh.outside\": path leaves", NULL, true, 0, 0 },
  { "reserved whiteout", b_wh_reserved, "\".wh..wh.plnk\": unknown whiteout", NULL, true, 0, 0 },
  { "whiteout through a symlink", b_wh_through_symlink, "\"out\" is a symbolic link", NULL, true,
    0, 0 },
  { "whiteouts", b_wh_symlink_name, NULL, c_wh_symlink_name, true, 0, 0 },
  { "whiteout names when off", b_wh_plain, NULL, c_wh_plain, false, 0, 0 },
  { "overlay attributes in the archive", b_overlay_xattr, NULL, c_overlay_xattr, true, 0, 0 },
};

static void
run_corpus (void)
{
  sandbox s = { 0 };
  sandbox_open (&s);
  for (size_t i = 0; i < KP_N_ELEMENTS (corpus); i++)
    {
      const hostile *h = &corpus[i];
      kp_cleanup_free char *target = path_in (s.root, "target");
      put_dir (s.root, "target", 0755);
      tarw t = { KP_BUF_INIT };
      h->build (&t, &s);
      tar_end (&t);

      kp_unpack_options o = { 0 };
      o.oci_whiteouts = h->whiteouts;
      o.max_bytes = h->max_bytes;
      o.max_entries = h->max_entries;
      kp_cleanup_error kp_error *err = NULL;
      int r = unpack_bytes (t.b.data, t.b.len, target, &o, NULL, &err);
      if (h->refused)
        {
          if (r == 0)
            fail_msg ("%s: unpacked, expected a refusal", h->what);
          if (strstr (err->message, h->refused) == NULL)
            fail_msg ("%s: message \"%s\" lacks \"%s\"", h->what, err->message, h->refused);
        }
      else
        {
          if (r < 0)
            fail_msg ("%s: %s", h->what, err->message);
          if (h->check)
            h->check (&s, target);
        }
      sandbox_check (&s);
      kp_buf_clear (&t.b);
      remove_tree (target);
    }
  sandbox_close (&s);
}

static void
test_hostile_openat2 (void **state)
{
  unsetenv ("KARAPACE_NO_OPENAT2");
  run_corpus ();
}

static void
test_hostile_fallback (void **state)
{
  setenv ("KARAPACE_NO_OPENAT2", "1", 1);
  run_corpus ();
  unsetenv ("KARAPACE_NO_OPENAT2");
}

/* A kernel without openat2, for real: the corpus again in a child whose seccomp filter
 * answers ENOSYS to openat2 (re-executed, so cmocka runs only that test there). */
#define ENOSYS_ENV "KP_TEST_ARCHIVE_OPENAT2_ENOSYS"
#define OPENAT2_NR 437 /* the same number on every architecture */

static int
block_openat2 (void)
{
  struct sock_filter filter[] = {
    BPF_STMT (BPF_LD | BPF_W | BPF_ABS, offsetof (struct seccomp_data, nr)),
    BPF_JUMP (BPF_JMP | BPF_JEQ | BPF_K, OPENAT2_NR, 0, 1),
    BPF_STMT (BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)),
    BPF_STMT (BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = { .len = KP_N_ELEMENTS (filter), .filter = filter };
  if (prctl (PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0
      || prctl (PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) < 0)
    return -1;
  /* Check that it took. */
  errno = 0;
  long r = syscall (OPENAT2_NR, AT_FDCWD, ".", NULL, 0);
  return r == -1 && errno == ENOSYS ? 0 : -1;
}

static void
test_hostile_enosys (void **state)
{
  pid_t pid = fork ();
  assert_true (pid >= 0);
  if (pid == 0)
    {
      setenv (ENOSYS_ENV, "1", 1);
      char *argv[] = { (char *) "test-archive", NULL };
      execv ("/proc/self/exe", argv);
      _exit (127);
    }
  int status;
  assert_int_equal (waitpid (pid, &status, 0), pid);
  assert_true (WIFEXITED (status));
  if (WEXITSTATUS (status) == 77)
    {
      print_message ("[ SKIP     ] openat2 ENOSYS: could not install a seccomp filter\n");
      return;
    }
  assert_int_equal (WEXITSTATUS (status), 0);
}

/* ---- Flattening image layers (apply_whiteouts) ----
 *
 * Layers are unpacked one over the other into one target, as a store makes a base image,
 * and the result is what an overlay of the layers shows: whiteouts and opaque markers
 * remove what the layers below put there, never what the same layer adds, never anything
 * outside the target, and never leave a marker behind. */

static void
must_read (const char *target, const char *rel, const char *want)
{
  kp_cleanup_free char *text = read_text (target, rel);
  if (text == NULL)
    fail_msg ("%s/%s is missing", target, rel);
  assert_string_equal (text, want);
}

/* Unpack one layer over target in flatten mode; 0 or -1 with err. */
static int
flatten_layer (tarw *t, const char *target, kp_unpack_stats *stats, kp_error **err)
{
  tar_end (t);
  kp_unpack_options o = { .apply_whiteouts = true };
  int r = unpack_bytes (t->b.data, t->b.len, target, &o, stats, err);
  kp_buf_clear (&t->b);
  return r;
}

static void
flatten_ok (tarw *t, const char *target, uint64_t whiteouts)
{
  kp_unpack_stats st = { 0 };
  kp_cleanup_error kp_error *err = NULL;
  if (flatten_layer (t, target, &st, &err) < 0)
    fail_msg ("flatten: %s", err->message);
  assert_int_equal (st.whiteouts, whiteouts);
}

static void
flatten_cases (void)
{
  sandbox s = { 0 };
  sandbox_open (&s);
  kp_cleanup_free char *target = path_in (s.root, "target");
  put_dir (s.root, "target", 0755);

  /* The layer below. */
  tarw t = { KP_BUF_INIT };
  tar_dir (&t, "etc/", 0755);
  tar_file (&t, "etc/keep", "keep\n", 0644);
  tar_file (&t, "etc/gone", "gone\n", 0644);
  tar_dir (&t, "doc/", 0755);
  tar_dir (&t, "doc/tree/", 0755);
  tar_dir (&t, "doc/tree/deep/", 0555);
  tar_file (&t, "doc/tree/deep/file", "deep\n", 0444);
  tar_file (&t, "doc/stays", "stays\n", 0644);
  tar_dir (&t, "opq/", 0755);
  tar_file (&t, "opq/old", "old\n", 0644);
  tar_dir (&t, "opq/olddir/", 0755);
  tar_file (&t, "opq/olddir/f", "f\n", 0644);
  tar_dir (&t, "re/", 0755);
  tar_dir (&t, "re/sub/", 0755);
  tar_file (&t, "re/sub/lower", "lower\n", 0644);
  tar_dir (&t, "re/sub/lowerdir/", 0755);
  tar_file (&t, "re/sub/lowerdir/x", "x\n", 0644);
  tar_file (&t, "re/lower2", "lower2\n", 0644);
  tar_dir (&t, "data/", 0755);
  tar_file (&t, "data/file", "shared inode\n", 0644);
  tar_dir (&t, "own/", 0755);
  tar_file (&t, "own/lower", "lower\n", 0644);
  tar_symlink (&t, "out", s.outside);
  tar_symlink (&t, "self", ".");
  flatten_ok (&t, target, 0);

  /* The layer above. */
  tar_file (&t, "etc/.wh.gone", "", 0644);               /* a file */
  tar_file (&t, "doc/.wh.tree", "", 0644);               /* a whole tree, 0555 inside */
  tar_dir (&t, "opq/", 0755);
  tar_file (&t, "opq/before", "before\n", 0644);         /* before the marker */
  tar_file (&t, "opq/.wh..wh..opq", "", 0644);
  tar_file (&t, "opq/after", "after\n", 0644);           /* after the marker */
  tar_dir (&t, "re/sub/", 0755);                         /* re-added below an opaque dir */
  tar_file (&t, "re/sub/upper", "upper\n", 0644);
  tar_file (&t, "re/.wh..wh..opq", "", 0644);            /* marker after its children */
  tar_file (&t, "etc/.wh.absent", "", 0644);             /* nothing to delete */
  tar_file (&t, "nowhere/at/.wh.all", "", 0644);         /* nor a parent for it */
  tar_file (&t, "out/.wh.canary", "", 0644);             /* through a link: outside */
  tar_file (&t, "out/.wh..wh..opq", "", 0644);
  tar_file (&t, "self/etc/.wh.keep", "", 0644);          /* through a link: inside */
  tar_hardlink (&t, "bin-link", "data/file");            /* to a file of the layer below */
  tar_file (&t, "own/mine", "mine\n", 0644);             /* a layer's own entries stay */
  tar_file (&t, "own/.wh.mine", "", 0644);
  tar_file (&t, "own/.wh.lower", "", 0644);
  flatten_ok (&t, target, 11);

  must_read (target, "etc/keep", "keep\n");
  must_not_exist (target, "etc/gone");
  must_not_exist (target, "etc/.wh.gone");
  must_not_exist (target, "etc/absent");
  must_not_exist (target, "doc/tree");
  must_read (target, "doc/stays", "stays\n");
  must_read (target, "opq/before", "before\n");
  must_read (target, "opq/after", "after\n");
  must_not_exist (target, "opq/old");
  must_not_exist (target, "opq/olddir");
  must_not_exist (target, "opq/.wh..wh..opq");
  must_read (target, "re/sub/upper", "upper\n");
  must_not_exist (target, "re/sub/lower");
  must_not_exist (target, "re/sub/lowerdir");
  must_not_exist (target, "re/lower2");
  must_not_exist (target, "re/.wh..wh..opq");
  must_not_exist (target, "nowhere");
  must_read (target, "etc/keep", "keep\n"); /* "self/" was not followed */
  must_read (target, "own/mine", "mine\n");
  must_not_exist (target, "own/lower");
  must_not_exist (target, "own/.wh.mine");
  struct stat a = must_lstat (target, "bin-link"), b = must_lstat (target, "data/file");
  assert_int_equal (a.st_ino, b.st_ino);
  assert_int_equal (a.st_nlink, 2);
  must_read (target, "bin-link", "shared inode\n");
  assert_true (S_ISLNK (must_lstat (target, "out").st_mode));
  sandbox_check (&s);

  /* A third layer: the whole image made opaque at its root keeps only what it adds, and
     the root itself. */
  tar_dir (&t, "./", 0750);
  tar_file (&t, "./.wh..wh..opq", "", 0644);
  tar_dir (&t, "etc/", 0755);
  tar_file (&t, "etc/only", "only\n", 0644);
  flatten_ok (&t, target, 1);
  kp_cleanup_dir DIR *d = opendir (target);
  assert_non_null (d);
  struct dirent *de;
  while ((de = readdir (d)) != NULL)
    if (strcmp (de->d_name, ".") && strcmp (de->d_name, "..") && strcmp (de->d_name, "etc"))
      fail_msg ("left at the root after an opaque root: %s", de->d_name);
  must_read (target, "etc/only", "only\n");
  must_not_exist (target, "etc/keep");
  assert_int_equal (must_lstat (target, ".").st_mode & 07777, 0750);
  sandbox_check (&s);

  /* Whiteouts that name their way out are refused like any member. */
  static const struct
  {
    const char *name, *why;
  } refused[] = {
    { "../.wh.outside", "path leaves the target directory" },
    { "etc/../../.wh.outside", "path leaves the target directory" },
    { "etc/.wh...", "path leaves the target directory" },
    { "etc/.wh..", "whiteout names no entry" },
    { "etc/.wh.", "whiteout names no entry" },
    { "etc/.wh..wh.plnk", "unknown whiteout name" },
  };
  for (size_t i = 0; i < KP_N_ELEMENTS (refused); i++)
    {
      tar_file (&t, refused[i].name, "", 0644);
      kp_cleanup_error kp_error *err = NULL;
      if (flatten_layer (&t, target, NULL, &err) == 0)
        fail_msg ("%s: unpacked, expected a refusal", refused[i].name);
      if (strstr (err->message, refused[i].why) == NULL)
        fail_msg ("%s: message \"%s\" lacks \"%s\"", refused[i].name, err->message,
                  refused[i].why);
      must_read (target, "etc/only", "only\n");
      sandbox_check (&s);
    }
  sandbox_close (&s);
}

static void
test_flatten (void **state)
{
  unsetenv ("KARAPACE_NO_OPENAT2");
  flatten_cases ();
  setenv ("KARAPACE_NO_OPENAT2", "1", 1);
  flatten_cases ();
  unsetenv ("KARAPACE_NO_OPENAT2");
}

/* Devices when allowed (root only), and the refusal of a whiteout into a symlinked dir. */
static void
test_devices_allowed (void **state)
{
  if (geteuid () != 0)
    {
      print_message ("[ SKIP     ] devices allowed: mknod needs CAP_MKNOD, not root\n");
      return;
    }
  kp_cleanup_free char *dst = make_temp_dir ("dev");
  tarw t = { KP_BUF_INIT };
  tar_header (&t, "dev/null", '3', 0666, 0, NULL, 1, 3);
  tar_header (&t, "dev/loop", '4', 0660, 0, NULL, 7, 0);
  tar_end (&t);
  kp_unpack_options o = { .allow_devices = true };
  kp_cleanup_error kp_error *err = NULL;
  if (unpack_bytes (t.b.data, t.b.len, dst, &o, NULL, &err) < 0)
    fail_msg ("unpack: %s", err->message);
  struct stat st = must_lstat (dst, "dev/null");
  assert_true (S_ISCHR (st.st_mode));
  assert_int_equal (st.st_mode & 07777, 0666);
  st = must_lstat (dst, "dev/loop");
  assert_true (S_ISBLK (st.st_mode));
  kp_buf_clear (&t.b);
  remove_tree (dst);
}

/* Compressed input: gzip and zstd, written with libarchive's own writer. */
static void
compressed (int (*add_filter) (struct archive *), const char *name)
{
  kp_cleanup_free char *dst = make_temp_dir ("z");
  kp_cleanup_close int fd = memfd ();
  struct archive *w = archive_write_new ();
  archive_write_set_format_pax_restricted (w);
  if (add_filter (w) != ARCHIVE_OK)
    {
      print_message ("[ SKIP     ] %s: %s\n", name, archive_error_string (w));
      archive_write_free (w);
      remove_tree (dst);
      return;
    }
  assert_int_equal (archive_write_open_fd (w, fd), ARCHIVE_OK);
  struct archive_entry *e = archive_entry_new ();
  archive_entry_set_pathname (e, "z/compressed.txt");
  archive_entry_set_filetype (e, AE_IFREG);
  archive_entry_set_perm (e, 0644);
  archive_entry_set_size (e, 5);
  assert_int_equal (archive_write_header (w, e), ARCHIVE_OK);
  assert_int_equal (archive_write_data (w, "zzzz\n", 5), 5);
  archive_entry_free (e);
  assert_int_equal (archive_write_close (w), ARCHIVE_OK);
  archive_write_free (w);
  assert_int_equal (lseek (fd, 0, SEEK_SET), 0);
  kp_cleanup_close int target = open (dst, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  kp_cleanup_error kp_error *err = NULL;
  if (kp_archive_unpack (fd, target, NULL, NULL, &err) < 0)
    fail_msg ("%s: %s", name, err->message);
  kp_cleanup_free char *text = read_text (dst, "z/compressed.txt");
  assert_string_equal (text, "zzzz\n");
  remove_tree (dst);
}

static void
test_compressed (void **state)
{
  compressed (archive_write_add_filter_gzip, "gzip");
  compressed (archive_write_add_filter_zstd, "zstd");
  compressed (archive_write_add_filter_xz, "xz");
  compressed (archive_write_add_filter_bzip2, "bzip2");
}

static void
test_garbage (void **state)
{
  kp_cleanup_free char *dst = make_temp_dir ("garbage");
  static const char junk[] = "this is not a tar archive at all, not even close..........";
  kp_cleanup_error kp_error *err = NULL;
  assert_int_equal (unpack_bytes (junk, sizeof junk, dst, NULL, NULL, &err), -1);
  assert_non_null (strstr (err->message, "unpack: read the archive"));
  /* An empty input is an empty layer. */
  kp_cleanup_error kp_error *err2 = NULL;
  kp_unpack_stats st = { 0 };
  assert_int_equal (unpack_bytes ("", 0, dst, NULL, &st, &err2), 0);
  assert_int_equal (st.entries, 0);
  remove_tree (dst);
}

/* Merged /usr: members below bin/, lib/, … land below usr/, through no link. */
static void
test_merged_usr (void **state)
{
  sandbox s = { 0 };
  sandbox_open (&s);
  kp_cleanup_free char *target = path_in (s.root, "target");
  put_dir (s.root, "target", 0755);
  put_dir (target, "usr", 0755);
  put_dir (target, "usr/bin", 0755);
  kp_cleanup_free char *bin = path_in (target, "bin");
  assert_int_equal (symlink ("usr/bin", bin), 0);

  tarw t = { KP_BUF_INIT };
  tar_dir (&t, "./", 0755);
  tar_dir (&t, "./bin/", 0755);
  tar_file (&t, "./bin/sh", "shell\n", 0755);
  tar_dir (&t, "./lib/", 0755);
  tar_file (&t, "./lib/libc.so", "libc\n", 0644);
  tar_hardlink (&t, "./lib/libc.so.6", "./lib/libc.so");
  tar_dir (&t, "./binaries/", 0755);
  tar_file (&t, "./binaries/x", "x\n", 0644);
  tar_end (&t);
  kp_unpack_options o = { .merged_usr = true };
  kp_cleanup_error kp_error *err = NULL;
  if (unpack_bytes (t.b.data, t.b.len, target, &o, NULL, &err) < 0)
    fail_msg ("unpack: %s", err->message);
  kp_buf_clear (&t.b);
  must_read (target, "usr/bin/sh", "shell\n");
  must_read (target, "usr/lib/libc.so", "libc\n");
  must_read (target, "usr/lib/libc.so.6", "libc\n");
  must_read (target, "binaries/x", "x\n"); /* only the exact names move */
  struct stat st;
  assert_int_equal (lstat (bin, &st), 0);
  assert_true (S_ISLNK (st.st_mode)); /* the link stays a link */
  kp_cleanup_free char *lib = path_in (target, "lib");
  assert_int_equal (lstat (lib, &st), -1); /* no top-level lib/ was made */
  sandbox_close (&s);
}

int
main (void)
{
  if (getenv (ENOSYS_ENV))
    {
      if (block_openat2 () < 0)
        return 77;
      print_message ("[ INFO     ] openat2 answers ENOSYS in this process\n");
      cmocka_set_test_filter ("test_hostile_openat2");
    }
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_pack_deterministic),
    cmocka_unit_test (test_roundtrip),
    cmocka_unit_test (test_unpack_policy),
    cmocka_unit_test (test_deep_and_socket),
    cmocka_unit_test (test_oci_whiteouts),
    cmocka_unit_test (test_hostile_openat2),
    cmocka_unit_test (test_hostile_fallback),
    cmocka_unit_test (test_hostile_enosys),
    cmocka_unit_test (test_flatten),
    cmocka_unit_test (test_devices_allowed),
    cmocka_unit_test (test_compressed),
    cmocka_unit_test (test_garbage),
    cmocka_unit_test (test_merged_usr),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
