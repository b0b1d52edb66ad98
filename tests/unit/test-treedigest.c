/* test-treedigest.c — tree digests against an independent reading of docs/identity.md.
 *
 * The expected digest is rebuilt here without the library's walker: a plain recursive
 * walk over full paths with lstat, readdir and l*xattr, its own percent-encoding and
 * record formatting, and only kp_blake3_hash() from the library. Both must agree record
 * for record. One record is also checked against a literal string, so that the two
 * readings cannot share a misreading of the format. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "tree-fixture.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/fs.h"
#include "hash/blake3.h"
#include "hash/treedigest.h"

/* ---- Scratch trees ---- */

static int
remove_entry (const char *path, const struct stat *st, int type, struct FTW *ftw)
{
  if (type == FTW_DP || type == FTW_D || type == FTW_DNR)
    return rmdir (path) < 0 ? -1 : 0;
  return unlink (path) < 0 ? -1 : 0;
}

static int
unlock_entry (const char *path, const struct stat *st, int type, struct FTW *ftw)
{
  if (type != FTW_SL)
    chmod (path, 0700);
  return 0;
}

/* Scratch directories of one test, removed by the teardown whether the test passed or
 * not. Some tests lock parts away, so everything is made accessible first. */
typedef struct scratch
{
  char *dirs[4];
  size_t n;
} scratch;

static int
scratch_setup (void **state)
{
  *state = xcalloc (1, sizeof (scratch));
  return 0;
}

static int
scratch_teardown (void **state)
{
  scratch *s = *state;
  int r = 0;
  for (size_t i = 0; i < s->n; i++)
    {
      nftw (s->dirs[i], unlock_entry, 64, FTW_PHYS);
      if (nftw (s->dirs[i], remove_entry, 64, FTW_DEPTH | FTW_PHYS) < 0)
        r = -1;
      free (s->dirs[i]);
    }
  free (s);
  *state = NULL;
  return r;
}

static const char *
make_temp_dir (void **state)
{
  scratch *s = *state;
  assert_true (s->n < KP_N_ELEMENTS (s->dirs));
  const char *tmp = getenv ("TMPDIR");
  char *dir = xasprintf ("%s/test-treedigest-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  assert_non_null (mkdtemp (dir));
  s->dirs[s->n++] = dir;
  return dir;
}

static void
put_symlink (const char *dir, const char *rel, const char *target)
{
  kp_cleanup_free char *p = path_in (dir, rel);
  assert_int_equal (symlink (target, p), 0);
}

/* ---- The independent reading of the specification ---- */

static void
ref_encode (kp_buf *b, const char *data, size_t len)
{
  for (size_t i = 0; i < len; i++)
    {
      unsigned char c = (unsigned char) data[i];
      if (c < 0x21 || c > 0x7e || c == '%' || c == ',' || c == '=')
        kp_buf_printf (b, "%%%02X", c);
      else
        kp_buf_putc (b, (char) c);
    }
}

static int
ref_strcmp (const void *a, const void *b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

static void
ref_xattrs (kp_buf *rec, const char *full)
{
  char list[4096];
  ssize_t n = llistxattr (full, list, sizeof list);
  if (n < 0 && errno == ENOTSUP)
    n = 0;
  assert_true (n >= 0);
  char *names[64];
  size_t count = 0;
  for (ssize_t off = 0; off < n; off += (ssize_t) strlen (list + off) + 1)
    if (strcmp (list + off, "security.selinux") != 0)
      names[count++] = list + off;
  if (count == 0)
    {
      kp_buf_putc (rec, '-');
      return;
    }
  qsort (names, count, sizeof (char *), ref_strcmp);
  for (size_t i = 0; i < count; i++)
    {
      unsigned char value[4096];
      ssize_t len = lgetxattr (full, names[i], value, sizeof value);
      assert_true (len >= 0);
      if (i > 0)
        kp_buf_putc (rec, ',');
      ref_encode (rec, names[i], strlen (names[i]));
      kp_buf_putc (rec, '=');
      for (ssize_t j = 0; j < len; j++)
        kp_buf_printf (rec, "%02x", value[j]);
    }
}

/* Append the records of `rel` (relative to root; "." for the root) and below to `out`. */
static void
ref_walk (kp_buf *out, const char *root, const char *rel)
{
  bool is_root = strcmp (rel, ".") == 0;
  kp_cleanup_free char *full = is_root ? xstrdup (root) : path_in (root, rel);
  struct stat st;
  assert_int_equal (lstat (full, &st), 0);

  char type;
  kp_buf payload = KP_BUF_INIT;
  if (S_ISDIR (st.st_mode))
    type = 'd', kp_buf_puts (&payload, "-");
  else if (S_ISREG (st.st_mode))
    {
      type = 'f';
      size_t len;
      kp_cleanup_error kp_error *err = NULL;
      kp_cleanup_free char *data = kp_file_read (full, 1 << 26, &len, &err);
      assert_non_null (data);
      uint8_t digest[KP_BLAKE3_OUT_LEN];
      kp_blake3_hash (data, len, digest);
      for (size_t i = 0; i < sizeof digest; i++)
        kp_buf_printf (&payload, "%02x", digest[i]);
    }
  else if (S_ISLNK (st.st_mode))
    {
      type = 'l';
      char target[PATH_MAX];
      ssize_t n = readlink (full, target, sizeof target);
      assert_true (n >= 0);
      ref_encode (&payload, target, (size_t) n);
    }
  else if (S_ISCHR (st.st_mode) || S_ISBLK (st.st_mode))
    {
      type = S_ISCHR (st.st_mode) ? 'c' : 'b';
      kp_buf_printf (&payload, "%u,%u", major (st.st_rdev), minor (st.st_rdev));
    }
  else
    type = S_ISFIFO (st.st_mode) ? 'p' : 's', kp_buf_puts (&payload, "-");

  kp_buf_printf (out, "%c %04o %u %u %s ", type,
                 type == 'l' ? 0777u : (unsigned) (st.st_mode & 07777), (unsigned) st.st_uid,
                 (unsigned) st.st_gid, kp_buf_str (&payload));
  kp_buf_clear (&payload);
  ref_xattrs (out, full);
  kp_buf_putc (out, ' ');
  if (is_root)
    kp_buf_putc (out, '.');
  else
    ref_encode (out, rel, strlen (rel));
  kp_buf_putc (out, '\n');

  if (type != 'd')
    return;
  DIR *d = opendir (full);
  assert_non_null (d);
  char **names = NULL;
  size_t n = 0;
  struct dirent *de;
  while ((de = readdir (d)))
    if (strcmp (de->d_name, ".") != 0 && strcmp (de->d_name, "..") != 0)
      {
        names = xreallocarray (names, n + 1, sizeof (char *));
        names[n++] = xstrdup (de->d_name);
      }
  closedir (d);
  if (n)
    qsort (names, n, sizeof (char *), ref_strcmp);
  for (size_t i = 0; i < n; i++)
    {
      kp_cleanup_free char *child = is_root ? xstrdup (names[i]) : path_in (rel, names[i]);
      ref_walk (out, root, child);
      free (names[i]);
    }
  free (names);
}

static int
collect_record (const char *record, size_t len, void *user_data, kp_error **err)
{
  assert_int_equal (strlen (record), len);
  assert_true (len > 0 && record[len - 1] == '\n');
  kp_buf_append (user_data, record, len);
  return 0;
}

/* Digest `dir` with the library, check it against the reference, return it. */
static void
check_tree (const char *dir, uint8_t digest[KP_BLAKE3_OUT_LEN])
{
  kp_cleanup_buf kp_buf want = KP_BUF_INIT;
  ref_walk (&want, dir, ".");
  uint8_t want_digest[KP_BLAKE3_OUT_LEN];
  kp_blake3_hash (want.data, want.len, want_digest);

  kp_cleanup_buf kp_buf got = KP_BUF_INIT;
  kp_cleanup_error kp_error *err = NULL;
  if (kp_tree_digest (AT_FDCWD, dir, digest, collect_record, &got, &err) < 0)
    fail_msg ("tree digest of %s: %s", dir, err->message);
  assert_string_equal (kp_buf_str (&got), kp_buf_str (&want));
  assert_memory_equal (digest, want_digest, KP_BLAKE3_OUT_LEN);

  /* Without a callback, the same digest. */
  uint8_t again[KP_BLAKE3_OUT_LEN];
  assert_int_equal (kp_tree_digest (AT_FDCWD, dir, again, NULL, NULL, &err), 0);
  assert_memory_equal (again, digest, sizeof again);
}

static bool
try_user_xattr (const char *path, const char *value)
{
  if (setxattr (path, "user.test", value, strlen (value), 0) == 0)
    return true;
  print_message ("[ SKIP     ] xattr sub-case: setxattr user.test on %s: %s\n", path,
                 strerror (errno));
  return false;
}

/* A tree with one of everything the walk handles. */
static void
populate (const char *dir)
{
  put_file (dir, "plain", "hello\n", 0644);
  put_file (dir, "empty", "", 0600);
  put_file (dir, "run me", "#!/bin/sh\necho hi\n", 04755);
  put_file (dir, "100%", "percent\n", 0640);
  put_file (dir, "a,b=c", "separators\n", 0644);
  put_file (dir, "new\nline", "newline in the name\n", 0644);
  put_file (dir, "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac", "UTF-8 name\n", 0644);
  put_dir (dir, "usr", 0755);
  put_dir (dir, "usr/bin", 0755);
  put_dir (dir, "usr/share", 02775);
  put_dir (dir, "usr/share/empty dir", 0700);
  put_file (dir, "usr/bin/env", "not really env\n", 0755);
  put_symlink (dir, "usr/bin/link", "../../target with space%");
  put_symlink (dir, "dangling", "/nonexistent/\xff");
  kp_cleanup_free char *fifo = path_in (dir, "usr/fifo");
  assert_int_equal (mkfifo (fifo, 0620), 0);
  assert_int_equal (chmod (fifo, 0620), 0);

  /* A larger file, spanning many chunks. */
  kp_cleanup_free char *big = path_in (dir, "usr/share/big");
  kp_cleanup_close int fd = open (big, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  assert_true (fd >= 0);
  kp_cleanup_free char *data = xmalloc (1 << 20);
  for (size_t i = 0; i < (1 << 20); i++)
    data[i] = (char) (i * 7 + (i >> 10));
  assert_int_equal (kp_write_all (fd, data, 1 << 20), 0);
}

/* ---- Tests ---- */

static void
test_encode (void **state)
{
  char all[256];
  for (int i = 0; i < 256; i++)
    all[i] = (char) i;
  kp_cleanup_buf kp_buf got = KP_BUF_INIT;
  kp_cleanup_buf kp_buf want = KP_BUF_INIT;
  kp_tree_digest_encode (&got, all, sizeof all);
  ref_encode (&want, all, sizeof all);
  assert_string_equal (kp_buf_str (&got), kp_buf_str (&want));

  kp_buf_truncate (&got, 0);
  kp_tree_digest_encode (&got, "a b%c,d=e\n\xc3\xa9~!/", 15);
  assert_string_equal (kp_buf_str (&got), "a%20b%25c%2Cd%3De%0A%C3%A9~!/");
}

/* One record spelled out literally, from docs/identity.md. */
static void
test_literal_record (void **state)
{
  const char *dir = make_temp_dir (state);
  put_file (dir, "hello", "hello\n", 0644);
  kp_cleanup_free char *file = path_in (dir, "hello");
  bool xattr = setxattr (file, "user.test", "v=1", 3, 0) == 0;
  assert_int_equal (chmod (dir, 0755), 0);

  struct stat st;
  assert_int_equal (lstat (dir, &st), 0);
  kp_cleanup_free char *want = xasprintf (
      "d 0755 %u %u - - .\n"
      "f 0644 %u %u 8e4c7c1b99dbfd50e7a95185fead5ee1448fa904a2fdd778eaf5f2dbfd629a99 %s hello\n",
      (unsigned) st.st_uid, (unsigned) st.st_gid, (unsigned) getuid (), (unsigned) getgid (),
      xattr ? "user.test=763d31" : "-");
  kp_cleanup_buf kp_buf got = KP_BUF_INIT;
  kp_cleanup_error kp_error *err = NULL;
  uint8_t digest[KP_BLAKE3_OUT_LEN], want_digest[KP_BLAKE3_OUT_LEN];
  assert_int_equal (kp_tree_digest (AT_FDCWD, dir, digest, collect_record, &got, &err), 0);
  assert_string_equal (kp_buf_str (&got), want);
  kp_blake3_hash (want, strlen (want), want_digest);
  assert_memory_equal (digest, want_digest, sizeof digest);
}

static void
test_full_tree (void **state)
{
  const char *dir = make_temp_dir (state);
  populate (dir);
  kp_cleanup_free char *plain = path_in (dir, "plain");
  kp_cleanup_free char *sub = path_in (dir, "usr/share");
  if (try_user_xattr (plain, "some value"))
    {
      assert_int_equal (setxattr (plain, "user.a=b,c", "\x00\xff", 2, 0), 0);
      assert_int_equal (setxattr (plain, "user.empty", "", 0, 0), 0);
      assert_int_equal (setxattr (sub, "user.test", "dir", 3, 0), 0);
    }

  /* A socket too, when the path fits in sun_path. */
  kp_cleanup_free char *sock_path = path_in (dir, "usr/sock");
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  int sock = -1;
  if (strlen (sock_path) < sizeof addr.sun_path)
    {
      strcpy (addr.sun_path, sock_path);
      sock = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      assert_true (sock >= 0);
      assert_int_equal (bind (sock, (struct sockaddr *) &addr, sizeof addr), 0);
    }
  else
    print_message ("[ SKIP     ] socket sub-case: %s is too long for a socket address\n",
                   sock_path);

  uint8_t digest[KP_BLAKE3_OUT_LEN];
  check_tree (dir, digest);

  /* The records appear in byte-wise order of names, and each type once. */
  kp_cleanup_buf kp_buf records = KP_BUF_INIT;
  kp_cleanup_error kp_error *err = NULL;
  assert_int_equal (kp_tree_digest (AT_FDCWD, dir, digest, collect_record, &records, &err), 0);
  const char *text = kp_buf_str (&records);
  const char *order[] = { " 100%25\n", " a%2Cb%3Dc\n", " caf%C3%A9%20%E6%97%A5%E6%9C%AC\n",
                          " dangling\n", " empty\n", " new%0Aline\n", " plain\n", " run%20me\n",
                          " usr\n", " usr/bin\n", " usr/bin/env\n", " usr/bin/link\n",
                          " usr/fifo\n", " usr/share\n", " usr/share/big\n",
                          " usr/share/empty%20dir\n" };
  const char *pos = text;
  for (size_t i = 0; i < KP_N_ELEMENTS (order); i++)
    {
      const char *at = strstr (pos, order[i]);
      if (at == NULL)
        fail_msg ("record for%s missing or out of order in:\n%s", order[i], text);
      pos = at;
    }
  assert_non_null (strstr (text, "l 0777 "));
  assert_non_null (strstr (text, " ../../target%20with%20space%25 - usr/bin/link\n"));
  assert_non_null (strstr (text, " /nonexistent/%FF - dangling\n"));
  assert_non_null (strstr (text, "p 0620 "));
  assert_non_null (strstr (text, "f 4755 "));
  assert_non_null (strstr (text, "d 2775 "));
  if (sock >= 0)
    {
      assert_non_null (strstr (text, " usr/sock\n"));
      assert_non_null (strstr (text, "\ns 0"));
      close (sock);
    }
}

static void
test_device_nodes (void **state)
{
  const char *dir = make_temp_dir (state);
  kp_cleanup_free char *chr = path_in (dir, "null");
  kp_cleanup_free char *blk = path_in (dir, "loop");
  if (mknod (chr, S_IFCHR | 0666, makedev (1, 3)) < 0)
    {
      print_message ("[ SKIP     ] device nodes: mknod: %s (needs CAP_MKNOD)\n", strerror (errno));
      return;
    }
  assert_int_equal (mknod (blk, S_IFBLK | 0660, makedev (7, 300)), 0);
  assert_int_equal (chmod (chr, 0666), 0);
  uint8_t digest[KP_BLAKE3_OUT_LEN];
  check_tree (dir, digest);
  kp_cleanup_buf kp_buf records = KP_BUF_INIT;
  kp_cleanup_error kp_error *err = NULL;
  assert_int_equal (kp_tree_digest (AT_FDCWD, dir, digest, collect_record, &records, &err), 0);
  assert_non_null (strstr (kp_buf_str (&records), "c 0666 "));
  assert_non_null (strstr (kp_buf_str (&records), " 1,3 - null\n"));
  assert_non_null (strstr (kp_buf_str (&records), " 7,300 - loop\n"));
}

static void
digest_of (const char *dir, uint8_t out[KP_BLAKE3_OUT_LEN])
{
  kp_cleanup_error kp_error *err = NULL;
  if (kp_tree_digest (AT_FDCWD, dir, out, NULL, NULL, &err) < 0)
    fail_msg ("%s", err->message);
}

static void
test_creation_order (void **state)
{
  const char *names[] = { "b", "a", "B", "_", "a b", "\xc3\xa9", "0", "~", "aa", "a.b" };
  const char *one = make_temp_dir (state);
  const char *two = make_temp_dir (state);
  for (size_t i = 0; i < KP_N_ELEMENTS (names); i++)
    {
      put_file (one, names[i], names[i], 0644);
      put_file (two, names[KP_N_ELEMENTS (names) - 1 - i],
                names[KP_N_ELEMENTS (names) - 1 - i], 0644);
    }
  assert_int_equal (chmod (one, 0700), 0);
  assert_int_equal (chmod (two, 0700), 0);
  uint8_t a[KP_BLAKE3_OUT_LEN], b[KP_BLAKE3_OUT_LEN];
  check_tree (one, a);
  check_tree (two, b);
  assert_memory_equal (a, b, sizeof a);

  /* Byte-wise order: "0" "B" "_" "a" "a b" "a.b" "aa" "b" "~" "\xc3\xa9". */
  kp_cleanup_buf kp_buf records = KP_BUF_INIT;
  kp_cleanup_error kp_error *err = NULL;
  assert_int_equal (kp_tree_digest (AT_FDCWD, one, a, collect_record, &records, &err), 0);
  const char *expect[] = { " 0\n", " B\n", " _\n", " a\n", " a%20b\n", " a.b\n",
                           " aa\n", " b\n", " ~\n", " %C3%A9\n" };
  const char *pos = kp_buf_str (&records);
  for (size_t i = 0; i < KP_N_ELEMENTS (expect); i++)
    {
      pos = strstr (pos, expect[i]);
      if (pos == NULL)
        fail_msg ("%s out of order in\n%s", expect[i], kp_buf_str (&records));
    }
}

static void
test_changes_change_digest (void **state)
{
  const char *dir = make_temp_dir (state);
  populate (dir);
  uint8_t base[KP_BLAKE3_OUT_LEN], now[KP_BLAKE3_OUT_LEN];
  check_tree (dir, base);

  kp_cleanup_free char *plain = path_in (dir, "plain");
  kp_cleanup_free char *renamed = path_in (dir, "plain2");
  kp_cleanup_free char *link_path = path_in (dir, "usr/bin/link");

  /* Mode bit. */
  assert_int_equal (chmod (plain, 0645), 0);
  check_tree (dir, now);
  assert_memory_not_equal (now, base, sizeof now);
  assert_int_equal (chmod (plain, 0644), 0);
  digest_of (dir, now);
  assert_memory_equal (now, base, sizeof now);

  /* Content, same length. */
  put_file (dir, "plain", "hellO\n", 0644);
  check_tree (dir, now);
  assert_memory_not_equal (now, base, sizeof now);
  put_file (dir, "plain", "hello\n", 0644);
  digest_of (dir, now);
  assert_memory_equal (now, base, sizeof now);

  /* Symlink target. */
  assert_int_equal (unlink (link_path), 0);
  put_symlink (dir, "usr/bin/link", "../../target with space%%");
  check_tree (dir, now);
  assert_memory_not_equal (now, base, sizeof now);
  assert_int_equal (unlink (link_path), 0);
  put_symlink (dir, "usr/bin/link", "../../target with space%");
  digest_of (dir, now);
  assert_memory_equal (now, base, sizeof now);

  /* Name. */
  assert_int_equal (rename (plain, renamed), 0);
  check_tree (dir, now);
  assert_memory_not_equal (now, base, sizeof now);
  assert_int_equal (rename (renamed, plain), 0);

  /* A new empty file. */
  put_file (dir, "usr/share/empty dir/x", "", 0644);
  check_tree (dir, now);
  assert_memory_not_equal (now, base, sizeof now);
  kp_cleanup_free char *x = path_in (dir, "usr/share/empty dir/x");
  assert_int_equal (unlink (x), 0);

  /* Times and hard links are not part of the digest. */
  struct timespec times[2] = { { 12345, 0 }, { 67890, 0 } };
  assert_int_equal (utimensat (AT_FDCWD, plain, times, AT_SYMLINK_NOFOLLOW), 0);
  kp_cleanup_free char *hard = path_in (dir, "usr/share/empty dir/hard");
  assert_int_equal (link (plain, hard), 0);
  uint8_t with_link[KP_BLAKE3_OUT_LEN], with_copy[KP_BLAKE3_OUT_LEN];
  check_tree (dir, with_link);
  assert_int_equal (unlink (hard), 0);
  put_file (dir, "usr/share/empty dir/hard", "hello\n", 0644);
  check_tree (dir, with_copy);
  assert_memory_equal (with_link, with_copy, sizeof with_link);
  assert_int_equal (unlink (hard), 0);

  /* An extended attribute. */
  digest_of (dir, now);
  assert_memory_equal (now, base, sizeof now);
  if (try_user_xattr (plain, "x"))
    {
      check_tree (dir, now);
      assert_memory_not_equal (now, base, sizeof now);
      assert_int_equal (removexattr (plain, "user.test"), 0);
      digest_of (dir, now);
      assert_memory_equal (now, base, sizeof now);
    }
}

/* Links and special files carry attributes too (only in the trusted and security
 * namespaces, which need privileges to set), and security.selinux is left out. */
static void
test_privileged_xattrs (void **state)
{
  const char *dir = make_temp_dir (state);
  populate (dir);
  kp_cleanup_free char *link_path = path_in (dir, "usr/bin/link");
  kp_cleanup_free char *fifo = path_in (dir, "usr/fifo");
  kp_cleanup_free char *plain = path_in (dir, "plain");
  uint8_t base[KP_BLAKE3_OUT_LEN], now[KP_BLAKE3_OUT_LEN];
  check_tree (dir, base);

  if (lsetxattr (link_path, "trusted.test", "on link", 7, 0) < 0)
    print_message ("[ SKIP     ] attributes on links: lsetxattr trusted.test: %s "
                   "(needs CAP_SYS_ADMIN)\n", strerror (errno));
  else
    {
      assert_int_equal (lsetxattr (fifo, "trusted.test", "on fifo", 7, 0), 0);
      kp_cleanup_buf kp_buf records = KP_BUF_INIT;
      kp_cleanup_error kp_error *err = NULL;
      check_tree (dir, now);
      assert_memory_not_equal (now, base, sizeof now);
      assert_int_equal (kp_tree_digest (AT_FDCWD, dir, now, collect_record, &records, &err), 0);
      const char *text = kp_buf_str (&records);
      assert_non_null (strstr (text, " trusted.test=6f6e206c696e6b usr/bin/link\n"));
      assert_non_null (strstr (text, " trusted.test=6f6e206669666f usr/fifo\n"));
      assert_int_equal (lremovexattr (link_path, "trusted.test"), 0);
      assert_int_equal (lremovexattr (fifo, "trusted.test"), 0);
      digest_of (dir, now);
      assert_memory_equal (now, base, sizeof now);
    }

  const char label[] = "system_u:object_r:some_t:s0";
  if (setxattr (plain, "security.selinux", label, sizeof label, 0) < 0)
    print_message ("[ SKIP     ] security.selinux exclusion: setxattr: %s\n", strerror (errno));
  else
    {
      digest_of (dir, now);
      assert_memory_equal (now, base, sizeof now);
    }
}

/* Entries replaced between the listing of their directory and their visit: the walk
 * trusts readdir's type only as a hint and records what it finds when it gets there. */
typedef struct swap_state
{
  const char *dir;
  bool done;
} swap_state;

static int
swap_types (const char *record, size_t len, void *user_data, kp_error **err)
{
  swap_state *s = user_data;
  /* "a" is the root's first child: the root has been listed, its other children are
   * still to be visited. */
  if (s->done || len < 3 || strcmp (record + len - 3, " a\n") != 0)
    return 0;
  s->done = true;
  kp_cleanup_free char *to_link = path_in (s->dir, "b-file-to-link");
  kp_cleanup_free char *to_fifo = path_in (s->dir, "c-file-to-fifo");
  kp_cleanup_free char *to_dir = path_in (s->dir, "d-file-to-dir");
  kp_cleanup_free char *to_file = path_in (s->dir, "e-dir-to-file");
  kp_cleanup_free char *to_file_child = path_in (s->dir, "e-dir-to-file/x");
  assert_int_equal (unlink (to_link), 0);
  assert_int_equal (symlink ("a", to_link), 0);
  assert_int_equal (unlink (to_fifo), 0);
  assert_int_equal (mkfifo (to_fifo, 0600), 0);
  assert_int_equal (unlink (to_dir), 0);
  assert_int_equal (mkdir (to_dir, 0755), 0);
  assert_int_equal (unlink (to_file_child), 0);
  assert_int_equal (rmdir (to_file), 0);
  put_file (s->dir, "e-dir-to-file", "now a file\n", 0644);
  return 0;
}

static void
test_types_change_during_walk (void **state)
{
  const char *dir = make_temp_dir (state);
  put_file (dir, "a", "a\n", 0644);
  put_file (dir, "b-file-to-link", "b\n", 0644);
  put_file (dir, "c-file-to-fifo", "c\n", 0644);
  put_file (dir, "d-file-to-dir", "d\n", 0644);
  put_dir (dir, "e-dir-to-file", 0755);
  put_file (dir, "e-dir-to-file/x", "x\n", 0644);

  swap_state swap = { .dir = dir };
  uint8_t digest[KP_BLAKE3_OUT_LEN], want_digest[KP_BLAKE3_OUT_LEN];
  kp_cleanup_error kp_error *err = NULL;
  if (kp_tree_digest (AT_FDCWD, dir, digest, swap_types, &swap, &err) < 0)
    fail_msg ("%s", err->message);
  assert_true (swap.done);

  kp_cleanup_buf kp_buf want = KP_BUF_INIT;
  ref_walk (&want, dir, ".");
  kp_blake3_hash (want.data, want.len, want_digest);
  assert_memory_equal (digest, want_digest, sizeof digest);
  assert_non_null (strstr (kp_buf_str (&want), "l 0777 "));
  assert_non_null (strstr (kp_buf_str (&want), "\np 0600 "));
  assert_non_null (strstr (kp_buf_str (&want), " - - d-file-to-dir\n"));
}

/* Run `fn` as an unprivileged user when we are root: permission checks are the point. */
static void
run_unprivileged (void (*fn) (const char *), const char *dir)
{
  if (geteuid () != 0)
    {
      fn (dir);
      return;
    }
  pid_t pid = fork ();
  assert_true (pid >= 0);
  if (pid == 0)
    {
      if (setgroups (0, NULL) < 0 || setresgid (65534, 65534, 65534) < 0
          || setresuid (65534, 65534, 65534) < 0)
        _exit (3);
      fn (dir);
      _exit (0);
    }
  int status;
  assert_int_equal (waitpid (pid, &status, 0), pid);
  if (!WIFEXITED (status) || WEXITSTATUS (status) != 0)
    fail_msg ("unprivileged check failed (status %#x)", status);
}

static void
expect_unreadable_file (const char *dir)
{
  kp_cleanup_error kp_error *err = NULL;
  uint8_t digest[KP_BLAKE3_OUT_LEN];
  if (kp_tree_digest (AT_FDCWD, dir, digest, NULL, NULL, &err) != -1 || err == NULL)
    _exit (10);
  if (err->errno_value != EACCES || strstr (err->message, "/sub/secret") == NULL)
    {
      fprintf (stderr, "unexpected error: %s\n", err->message);
      _exit (11);
    }
}

static void
expect_unlistable_dir (const char *dir)
{
  kp_cleanup_error kp_error *err = NULL;
  uint8_t digest[KP_BLAKE3_OUT_LEN];
  if (kp_tree_digest (AT_FDCWD, dir, digest, NULL, NULL, &err) != -1 || err == NULL)
    _exit (12);
  if (err->errno_value != EACCES || strstr (err->message, "/sub") == NULL)
    {
      fprintf (stderr, "unexpected error: %s\n", err->message);
      _exit (13);
    }
}

static void
test_unreadable (void **state)
{
  const char *dir = make_temp_dir (state);
  put_dir (dir, "sub", 0755);
  put_file (dir, "sub/secret", "s3cret\n", 0000);
  put_file (dir, "sub/public", "hi\n", 0644);
  assert_int_equal (chmod (dir, 0755), 0);
  run_unprivileged (expect_unreadable_file, dir);

  kp_cleanup_free char *secret = path_in (dir, "sub/secret");
  kp_cleanup_free char *sub = path_in (dir, "sub");
  assert_int_equal (chmod (secret, 0644), 0);
  assert_int_equal (chmod (sub, 0311), 0); /* searchable, not listable */
  run_unprivileged (expect_unlistable_dir, dir);
}

static int
count_fds (void)
{
  DIR *d = opendir ("/proc/self/fd");
  assert_non_null (d);
  int n = 0;
  while (readdir (d))
    n++;
  closedir (d);
  return n;
}

/* Deeper than the walk keeps descriptors for, with siblings at several levels so that
 * parents reopened through ".." are used again. */
static void
test_deep_tree (void **state)
{
  const char *dir = make_temp_dir (state);
  kp_buf rel = KP_BUF_INIT;
  for (int depth = 0; depth < 400; depth++)
    {
      if (depth)
        kp_buf_putc (&rel, '/');
      kp_buf_puts (&rel, "d");
      put_dir (dir, kp_buf_str (&rel), 0755);
      if (depth % 50 == 7)
        {
          kp_cleanup_free char *f = xasprintf ("%s/zz-file", kp_buf_str (&rel));
          put_file (dir, f, "deep\n", 0644);
          kp_cleanup_free char *s = xasprintf ("%s/zz-dir", kp_buf_str (&rel));
          put_dir (dir, s, 0755);
        }
    }
  kp_buf_clear (&rel);

  int before = count_fds ();
  uint8_t digest[KP_BLAKE3_OUT_LEN];
  check_tree (dir, digest);
  assert_int_equal (count_fds (), before);

  /* With a low descriptor limit the walk still succeeds. */
  struct rlimit old, low;
  assert_int_equal (getrlimit (RLIMIT_NOFILE, &old), 0);
  low = old;
  low.rlim_cur = 100;
  assert_int_equal (setrlimit (RLIMIT_NOFILE, &low), 0);
  uint8_t again[KP_BLAKE3_OUT_LEN];
  digest_of (dir, again);
  assert_int_equal (setrlimit (RLIMIT_NOFILE, &old), 0);
  assert_memory_equal (again, digest, sizeof digest);
}

static void
test_roots_and_paths (void **state)
{
  const char *dir = make_temp_dir (state);
  populate (dir);
  kp_cleanup_free char *link_path = path_in (dir, "usr/bin/link");
  kp_cleanup_free char *plain = path_in (dir, "plain");
  kp_cleanup_free char *usr = path_in (dir, "usr");
  kp_cleanup_free char *to_usr = path_in (dir, "to-usr");
  kp_cleanup_free char *fifo = path_in (dir, "usr/fifo");
  assert_int_equal (symlink ("usr", to_usr), 0);

  kp_cleanup_error kp_error *err = NULL;
  uint8_t digest[KP_BLAKE3_OUT_LEN], other[KP_BLAKE3_OUT_LEN];

  /* The root may not be a symlink, even to a directory, nor a file. */
  assert_int_equal (kp_tree_digest (AT_FDCWD, to_usr, digest, NULL, NULL, &err), -1);
  assert_non_null (strstr (err->message, "symbolic link"));
  kp_error_free (kp_steal_pointer (&err));
  assert_int_equal (kp_tree_digest (AT_FDCWD, plain, digest, NULL, NULL, &err), -1);
  assert_int_equal (err->errno_value, ENOTDIR);
  kp_error_free (kp_steal_pointer (&err));

  /* Relative to a directory descriptor gives the same as the full path. */
  kp_cleanup_close int dfd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  assert_true (dfd >= 0);
  check_tree (usr, digest);
  assert_int_equal (kp_tree_digest (dfd, "usr", other, NULL, NULL, &err), 0);
  assert_memory_equal (digest, other, sizeof digest);

  /* kp_digest_path: files, directories, and the rest refused. */
  kp_digest_kind kind = -1;
  assert_int_equal (kp_digest_path (dfd, "usr", other, &kind, NULL, NULL, &err), 0);
  assert_int_equal (kind, KP_DIGEST_TREE);
  assert_memory_equal (digest, other, sizeof digest);
  assert_int_equal (kp_digest_path (AT_FDCWD, plain, other, &kind, NULL, NULL, &err), 0);
  assert_int_equal (kind, KP_DIGEST_FILE);
  assert_int_equal (kp_blake3_file (plain, digest, &err), 0);
  assert_memory_equal (digest, other, sizeof digest);
  char hex[KP_BLAKE3_HEX_LEN + 1];
  kp_blake3_to_hex (other, hex);
  assert_string_equal (hex, "8e4c7c1b99dbfd50e7a95185fead5ee1448fa904a2fdd778eaf5f2dbfd629a99");

  const char *refused[] = { link_path, fifo, to_usr };
  for (size_t i = 0; i < KP_N_ELEMENTS (refused); i++)
    {
      assert_int_equal (kp_digest_path (AT_FDCWD, refused[i], other, &kind, NULL, NULL, &err), -1);
      assert_non_null (strstr (err->message, refused[i]));
      kp_error_free (kp_steal_pointer (&err));
    }
  assert_int_equal (kp_digest_path (AT_FDCWD, "/nonexistent/x", other, &kind, NULL, NULL, &err),
                    -1);
  assert_int_equal (err->errno_value, ENOENT);
}

static int
stop_after_three (const char *record, size_t len, void *user_data, kp_error **err)
{
  int *count = user_data;
  if (++*count < 3)
    return 0;
  return kp_error_set (err, KP_EXIT_FAILURE, "write records: No space left on device");
}

static int
stop_silently (const char *record, size_t len, void *user_data, kp_error **err)
{
  return -1;
}

static void
test_callback_stops (void **state)
{
  const char *dir = make_temp_dir (state);
  populate (dir);
  int before = count_fds ();
  int count = 0;
  kp_cleanup_error kp_error *err = NULL;
  uint8_t digest[KP_BLAKE3_OUT_LEN];
  memset (digest, 0x77, sizeof digest);
  assert_int_equal (kp_tree_digest (AT_FDCWD, dir, digest, stop_after_three, &count, &err), -1);
  assert_int_equal (count, 3);
  assert_string_equal (err->message, "write records: No space left on device");
  for (size_t i = 0; i < sizeof digest; i++)
    assert_int_equal (digest[i], 0x77);
  kp_error_free (kp_steal_pointer (&err));

  assert_int_equal (kp_tree_digest (AT_FDCWD, dir, digest, stop_silently, NULL, &err), -1);
  assert_non_null (err);
  assert_int_equal (count_fds (), before);
}

#define SCRATCH_TEST(test) cmocka_unit_test_setup_teardown (test, scratch_setup, scratch_teardown)

int
main (void)
{
  umask (022);
  const struct CMUnitTest tests[] = {
    SCRATCH_TEST (test_encode),
    SCRATCH_TEST (test_literal_record),
    SCRATCH_TEST (test_full_tree),
    SCRATCH_TEST (test_device_nodes),
    SCRATCH_TEST (test_creation_order),
    SCRATCH_TEST (test_changes_change_digest),
    SCRATCH_TEST (test_types_change_during_walk),
    SCRATCH_TEST (test_privileged_xattrs),
    SCRATCH_TEST (test_unreadable),
    SCRATCH_TEST (test_deep_tree),
    SCRATCH_TEST (test_roots_and_paths),
    SCRATCH_TEST (test_callback_stops),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
