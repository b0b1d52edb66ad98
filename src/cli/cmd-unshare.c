/* cmd-unshare.c — `karapace unshare [-- CMD [ARGS...]]`: a command in the store's user
 * namespace, where files owned by subordinate ids can be read, changed and removed (as
 * `podman unshare` does). */
#include "commands.h"

#include "sandbox/userns.h"

#include <stdlib.h>

int
kp_cmd_unshare (kp_cli *cli, const kp_cli_command *cmd, int argc, char **argv)
{
  /* Options end at the command, so `karapace unshare id -u` passes -u to id. */
  int parsed = kp_cli_parse_common (cli, cmd, argc, argv, true);
  if (parsed != KP_CLI_CONTINUE)
    return parsed;
  char *shell_argv[2] = { NULL, NULL };
  char **command = argv + optind;
  if (optind >= argc)
    {
      const char *shell = getenv ("SHELL");
      shell_argv[0] = (char *) (shell && shell[0] ? shell : "/bin/sh");
      command = shell_argv;
    }
  kp_error *err = NULL;
  kp_userns_exec (command, &err);
  return kp_cli_fail (cli, err);
}
