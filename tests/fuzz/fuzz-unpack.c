/* Fuzz target for safe unpacking.
 *
 * Each input is unpacked (whiteouts on, small limits) into a fresh directory under a
 * per-process sandbox that also holds a canary file and an "outside" directory. Beyond "does
 * not crash", every run checks what the user relies on: the canary and the outside tree are
 * unchanged, nothing new appeared next to the target, a refusal comes with an "unpack: "
 * message, and the target can be removed again. Run it as an unprivileged user: a bug here
 * would otherwise be a root process writing where the archive told it to. */
#include "archive/archive.h"
#include "archive/archive-private.h"
#include "base/fs.h"
#include "hash/treedigest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

#define CANARY_TEXT "canary: must never change\n"

static char *sandbox_root;
static char *work_dir;
static char *canary_path;
static char *outside_dir;
static uint8_t outside_digest[KP_BLAKE3_OUT_LEN];
static int input_fd = -1;

static void
die (const char *what)
{
  fprintf (stderr, "fuzz-unpack: %s (errno %d: %s)\n", what, errno, strerror (errno));
  abort ();
}

/* The sandbox goes when the fuzzer exits normally; after a crash it stays for inspection. */
static void
remove_sandbox (void)
{
  kp_cleanup_free char *parent = kp_path_dirname (sandbox_root);
  kp_cleanup_close int parent_fd = open (parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (parent_fd >= 0)
    kp_remove_tree_at (parent_fd, strrchr (sandbox_root, '/') + 1);
}

static void
setup (void)
{
  const char *tmp = getenv ("TMPDIR");
  sandbox_root = xasprintf ("%s/fuzz-unpack-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (mkdtemp (sandbox_root) == NULL)
    die ("mkdtemp");
  work_dir = xasprintf ("%s/work", sandbox_root);
  outside_dir = xasprintf ("%s/outside", sandbox_root);
  canary_path = xasprintf ("%s/canary", sandbox_root);
  if (mkdir (work_dir, 0755) < 0 || mkdir (outside_dir, 0755) < 0)
    die ("mkdir");
  kp_cleanup_free char *inner = xasprintf ("%s/file", outside_dir);
  if (kp_file_write_atomic (canary_path, CANARY_TEXT, strlen (CANARY_TEXT), 0644, false, NULL) < 0
      || kp_file_write_atomic (inner, CANARY_TEXT, strlen (CANARY_TEXT), 0644, false, NULL) < 0)
    die ("write canary");
  if (kp_tree_digest (AT_FDCWD, outside_dir, outside_digest, NULL, NULL, NULL) < 0)
    die ("tree digest");
  input_fd = memfd_create ("fuzz-unpack", MFD_CLOEXEC);
  if (input_fd < 0)
    die ("memfd_create");
  atexit (remove_sandbox);
}

/* Only the expected names in dir. */
static void
check_listing (const char *dir, const char *const *allowed)
{
  kp_cleanup_dir DIR *d = opendir (dir);
  if (d == NULL)
    die ("opendir");
  struct dirent *de;
  while ((de = readdir (d)))
    {
      if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
        continue;
      bool ok = false;
      for (size_t i = 0; allowed[i]; i++)
        ok |= strcmp (de->d_name, allowed[i]) == 0;
      if (!ok)
        {
          fprintf (stderr, "fuzz-unpack: %s/%s appeared outside the target\n", dir, de->d_name);
          abort ();
        }
    }
}

static void
check_sandbox (const char *target_name)
{
  kp_cleanup_free char *text = kp_file_read (canary_path, 4096, NULL, NULL);
  if (text == NULL || strcmp (text, CANARY_TEXT) != 0)
    {
      fprintf (stderr, "fuzz-unpack: the canary changed\n");
      abort ();
    }
  uint8_t now[KP_BLAKE3_OUT_LEN];
  if (kp_tree_digest (AT_FDCWD, outside_dir, now, NULL, NULL, NULL) < 0
      || memcmp (now, outside_digest, sizeof now) != 0)
    {
      fprintf (stderr, "fuzz-unpack: the outside directory changed\n");
      abort ();
    }
  const char *root_names[] = { "work", "outside", "canary", NULL };
  check_listing (sandbox_root, root_names);
  const char *work_names[] = { target_name, NULL };
  check_listing (work_dir, work_names);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  if (sandbox_root == NULL)
    setup ();
  if (lseek (input_fd, 0, SEEK_SET) != 0 || ftruncate (input_fd, 0) < 0
      || kp_write_all (input_fd, data, size) < 0
      || lseek (input_fd, 0, SEEK_SET) != 0)
    die ("write input");

  kp_cleanup_free char *target = xasprintf ("%s/t-XXXXXX", work_dir);
  if (mkdtemp (target) == NULL)
    die ("mkdtemp target");
  const char *target_name = strrchr (target, '/') + 1;
  kp_cleanup_close int target_fd = open (target, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (target_fd < 0)
    die ("open target");

  kp_unpack_options opts = {
    .oci_whiteouts = size > 0 && (data[0] & 1),
    .max_bytes = 4 << 20,
    .max_entries = 4096,
  };
  kp_unpack_stats stats = { 0 };
  kp_error *err = NULL;
  if (kp_archive_unpack (input_fd, target_fd, &opts, &stats, &err) < 0)
    {
      if (err == NULL || err->message == NULL || strncmp (err->message, "unpack", 6) != 0)
        {
          fprintf (stderr, "fuzz-unpack: refusal without an unpack message: %s\n",
                   err && err->message ? err->message : "(none)");
          abort ();
        }
      if (getenv ("FUZZ_UNPACK_VERBOSE"))
        fprintf (stderr, "fuzz-unpack: %s\n", err->message);
      kp_error_free (err);
    }
  else if (stats.bytes > opts.max_bytes || stats.entries > opts.max_entries)
    {
      fprintf (stderr, "fuzz-unpack: limits not enforced\n");
      abort ();
    }

  check_sandbox (target_name);
  kp_cleanup_close int work_fd = open (work_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (work_fd < 0 || kp_remove_tree_at (work_fd, target_name) < 0)
    die ("remove target");
  return 0;
}
