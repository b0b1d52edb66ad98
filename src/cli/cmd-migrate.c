/* cmd-migrate.c — `karapace migrate`: report the store's format version, upgrade it. */
#include "commands.h"

#include "store/store.h"

int
kp_cmd_migrate (kp_cli *cli, const kp_cli_command *cmd, int argc, char **argv)
{
  int parsed = kp_cli_parse_common (cli, cmd, argc, argv, false);
  if (parsed != KP_CLI_CONTINUE)
    return parsed;
  if (optind < argc)
    return kp_cli_usage_error (cli, cmd, "migrate takes no arguments");
  kp_error *err = NULL;
  kp_cleanup_free char *path = cli->store ? xstrdup (cli->store) : kp_store_default_path ();
  int from = 0;
  if (kp_store_migrate (path, &from, &err) < 0)
    return kp_cli_fail (cli, err);
  const char *action = from == 0 ? "created" : from == KP_STORE_VERSION ? "up to date"
                                                                         : "upgraded";
  if (cli->json)
    {
      kp_cleanup_json json_t *j = json_pack ("{s:s,s:i,s:i,s:s}", "store", path, "from", from,
                                             "version", KP_STORE_VERSION, "action", action);
      kp_cli_print_json (cli, j);
    }
  else if (from == 0)
    printf ("%s: no store yet; created one with format version %d\n", path, KP_STORE_VERSION);
  else
    printf ("%s: format version %d, %s (the current format is %d; it is the only one so "
            "far)\n", path, from, action, KP_STORE_VERSION);
  return 0;
}
