/* bench-pack — pack a directory with kp_archive_pack() and print the archive's BLAKE3.
 *
 *     bench-pack DIR [OUT]
 *
 * Writes the tar to OUT (default /dev/null) and prints "DIGEST  BYTES". Times are clamped to
 * $SOURCE_DATE_EPOCH when it is set, as a build would. Until the CLI grows a command that
 * packs, this is what bench/bench-pack.sh measures. */
#include "archive/archive.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int
main (int argc, char **argv)
{
  if (argc < 2 || argc > 3)
    {
      fprintf (stderr, "usage: bench-pack DIR [OUT]\n");
      return 64;
    }
  const char *out = argc == 3 ? argv[2] : "/dev/null";
  int fd = open (out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    {
      fprintf (stderr, "bench-pack: open %s: %s\n", out, strerror (errno));
      return 1;
    }
  kp_pack_options opts = { .mtime_clamp = -1 };
  const char *epoch = getenv ("SOURCE_DATE_EPOCH");
  if (epoch && *epoch)
    opts.mtime_clamp = strtoll (epoch, NULL, 10);

  uint8_t digest[KP_BLAKE3_OUT_LEN];
  kp_error *err = NULL;
  if (kp_archive_pack (AT_FDCWD, argv[1], fd, &opts, digest, &err) < 0)
    {
      fprintf (stderr, "bench-pack: %s\n", err->message);
      kp_error_free (err);
      return 1;
    }
  struct stat st;
  long long bytes = fstat (fd, &st) == 0 && S_ISREG (st.st_mode) ? (long long) st.st_size : -1;
  close (fd);
  char hex[KP_BLAKE3_HEX_LEN + 1];
  kp_blake3_to_hex (digest, hex);
  if (bytes >= 0)
    printf ("%s  %lld\n", hex, bytes);
  else
    printf ("%s\n", hex);
  return 0;
}
