/* cmd-unshare.c — `karapace unshare [-- CMD [ARGS...]]`: a command in the store's user
 * namespace, where files owned by subordinate ids can be read, changed and removed (as
 * `podman unshare` does). */
#include "commands.h"

#include "sandbox/userns.h"

#include <stdlib.h>

int
kp_cmd_unshare (kp_cli *cli, const kp_cli_command *cmd, int argc, char **argv)
{
  static const struct option options[] = { KP_CLI_COMMON_LONG_OPTIONS, { NULL, 0, NULL, 0 } };
  int c;
  /* "+": options end at the command, so `karapace unshare id -u` passes -u to id. */
  while ((c = getopt_long (argc, argv, "+" KP_CLI_COMMON_SHORT_OPTIONS, options, NULL)) != -1)
    {
      int r = kp_cli_common_option (cli, cmd, c, optarg);
      if (r != KP_CLI_CONTINUE)
        return r;
    }
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
