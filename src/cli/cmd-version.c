/* cmd-version.c — `karapace version`. */
#include "commands.h"

#include "config.h"
#include "hash/blake3.h"
#include "schema/identity.h"
#include "schema/lock.h"

int
kp_cmd_version (kp_cli *cli, const kp_cli_command *cmd, int argc, char **argv)
{
  int parsed = kp_cli_parse_common (cli, cmd, argc, argv, false);
  if (parsed != KP_CLI_CONTINUE)
    return parsed;
  if (optind < argc)
    return kp_cli_usage_error (cli, cmd, "unexpected argument '%s'", argv[optind]);
  if (cli->json)
    {
      kp_cleanup_json json_t *j = json_pack (
          "{s:s,s:i,s:i,s:s,s:s}", "version", KP_VERSION, "manifest_version", 1, "lock_version",
          KP_LOCK_VERSION, "identity", KP_IDENTITY_HEADER, "blake3_backend", kp_blake3_backend ());
      kp_cli_print_json (cli, j);
      return 0;
    }
  printf ("karapace %s\n", KP_VERSION);
  if (!cli->quiet)
    printf ("manifest version 1, lock version %d, identity \"%s\", BLAKE3 backend %s\n",
            KP_LOCK_VERSION, KP_IDENTITY_HEADER, kp_blake3_backend ());
  return 0;
}
