/* cmd-digest.c — `karapace digest PATH... [--list]`: file and tree digests. */
#include "commands.h"

#include "hash/treedigest.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

static int
print_record (const char *record, size_t len, void *user_data, kp_error **err)
{
  json_t *records = user_data;
  if (records)
    json_array_append_new (records, json_stringn (record, len - 1));
  else
    fwrite (record, 1, len, stdout);
  return 0;
}

int
kp_cmd_digest (kp_cli *cli, const kp_cli_command *cmd, int argc, char **argv)
{
  static const struct option options[] = {
    KP_CLI_COMMON_LONG_OPTIONS,
    { "list", no_argument, NULL, 'l' },
    { NULL, 0, NULL, 0 },
  };
  bool list = false;
  int c;
  while ((c = getopt_long (argc, argv, KP_CLI_COMMON_SHORT_OPTIONS, options, NULL)) != -1)
    {
      if (c == 'l')
        {
          list = true;
          continue;
        }
      int r = kp_cli_common_option (cli, cmd, c, optarg);
      if (r != KP_CLI_CONTINUE)
        return r;
    }
  if (optind >= argc)
    return kp_cli_usage_error (cli, cmd, "name at least one file or directory");

  kp_cleanup_json json_t *results = json_array ();
  for (int i = optind; i < argc; i++)
    {
      const char *path = argv[i];
      uint8_t digest[KP_BLAKE3_OUT_LEN];
      char hex[KP_BLAKE3_HEX_LEN + 1];
      kp_digest_kind kind;
      kp_error *err = NULL;
      kp_cleanup_json json_t *records = cli->json && list ? json_array () : NULL;
      if (list && !cli->json)
        fflush (stdout);
      if (kp_digest_path (AT_FDCWD, path, digest, &kind, list ? print_record : NULL, records,
                          &err)
          < 0)
        return kp_cli_fail (cli, err);
      kp_blake3_to_hex (digest, hex);
      if (cli->json)
        {
          json_t *j = json_pack ("{s:s,s:s,s:s}", "path", path, "kind",
                                 kind == KP_DIGEST_TREE ? "tree" : "file", "blake3", hex);
          if (records)
            json_object_set (j, "records", records);
          json_array_append_new (results, j);
        }
      else
        printf ("%s  %s\n", hex, path);
    }
  if (cli->json)
    kp_cli_print_json (cli, results);
  return 0;
}
