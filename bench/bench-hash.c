/* bench-hash.c — the hashing paths of libkarapace, alone, for bench/bench-hash.sh.
 *
 *     bench-hash file PATH    file digest (as `b3sum` prints it)
 *     bench-hash tree DIR     tree digest
 *     bench-hash list DIR     the tree digest's records, then the digest
 *     bench-hash backend      the BLAKE3 backend in use
 *
 * It measures the library without the CLI's start-up, and lets the benchmark run before
 * `karapace digest` exists. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

#include "hash/blake3.h"
#include "hash/treedigest.h"

static int
print_record (const char *record, size_t len, void *user_data, kp_error **err)
{
  if (fwrite (record, 1, len, stdout) != len)
    return kp_error_set (err, KP_EXIT_FAILURE, "write records: short write");
  return 0;
}

static int
usage (void)
{
  fprintf (stderr, "usage: bench-hash file PATH | tree DIR | list DIR | backend\n");
  return 64;
}

int
main (int argc, char **argv)
{
  if (argc == 2 && strcmp (argv[1], "backend") == 0)
    {
      printf ("%s\n", kp_blake3_backend ());
      return 0;
    }
  if (argc != 3)
    return usage ();

  const char *mode = argv[1];
  const char *path = argv[2];
  kp_cleanup_error kp_error *err = NULL;
  uint8_t digest[KP_BLAKE3_OUT_LEN];
  int r;
  if (strcmp (mode, "file") == 0)
    r = kp_blake3_file (path, digest, &err);
  else if (strcmp (mode, "tree") == 0)
    r = kp_tree_digest (AT_FDCWD, path, digest, NULL, NULL, &err);
  else if (strcmp (mode, "list") == 0)
    r = kp_tree_digest (AT_FDCWD, path, digest, print_record, NULL, &err);
  else
    return usage ();
  if (r < 0)
    {
      fprintf (stderr, "bench-hash: %s\n", err->message);
      return 1;
    }
  char hex[KP_BLAKE3_HEX_LEN + 1];
  kp_blake3_to_hex (digest, hex);
  printf ("%s  %s\n", hex, path);
  return 0;
}
