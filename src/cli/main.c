/* main.c — `karapace COMMAND [OPTIONS]`: global options, dispatch, help. */
#include "cli.h"

#include "commands.h"
#include "config.h"

#include <locale.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const kp_cli_command kp_cli_commands[] = {
  { "new", "NAME [--template T] [--force] [-o PATH]",
    "write a new karapace.toml from a template", KP_CMD_NEW_HELP, kp_cmd_new },
  { "validate", "[MANIFEST] [--locked] [--schema]",
    "check a manifest (and its lock) and print its normal form", KP_CMD_VALIDATE_HELP,
    kp_cmd_validate },
  { "digest", "PATH... [--list]", "print the BLAKE3 digest of files or the tree digest of directories",
    KP_CMD_DIGEST_HELP, kp_cmd_digest },
  { "doctor", "", "check that this machine can run environments", KP_CMD_DOCTOR_HELP,
    kp_cmd_doctor },
  { "run", "--rootfs DIR|--image REF|[MANIFEST] [OPTIONS] -- CMD [ARGS...]",
    "run a command in a throw-away sandbox over a root filesystem", KP_CMD_RUN_HELP,
    kp_cmd_run },
  { "images", "[list|pull|inspect|rm|prune] [ARGS...]",
    "list, fetch and remove cached base images", KP_CMD_IMAGES_HELP, kp_cmd_images },
  { "pin", "[MANIFEST] [--check]", "pin the manifest's base image to its content digest",
    KP_CMD_PIN_HELP, kp_cmd_pin },
  { "build", "[MANIFEST] [--name NAME] [--locked] [--offline]",
    "build the environment a manifest describes and write karapace.lock", KP_CMD_BUILD_HELP,
    kp_cmd_build },
  { "rebuild", "[MANIFEST]",
    "resolve and build anew, then replace the environment the old lock named", NULL,
    kp_cmd_rebuild },
  { "verify", "ENV [--repair]", "rebuild an environment from its lock and compare the trees",
    KP_CMD_VERIFY_HELP, kp_cmd_verify },
  { "exec", "ENV [--user root] -- CMD [ARGS...]", "run a command in a built environment",
    KP_CMD_EXEC_HELP, kp_cmd_exec },
  { "enter", "ENV [--user root] [-- CMD [ARGS...]]",
    "open a shell in an environment as you, with your home", KP_CMD_ENTER_HELP, kp_cmd_enter },
  { "start", "ENV", "keep an environment's sandbox running", KP_CMD_LIFECYCLE_HELP,
    kp_cmd_start },
  { "stop", "ENV", "stop an environment's sandbox and everything in it", KP_CMD_LIFECYCLE_HELP,
    kp_cmd_stop },
  { "freeze", "ENV...", "make environments read-only", KP_CMD_LIFECYCLE_HELP, kp_cmd_freeze },
  { "unfreeze", "ENV...", "make frozen environments writable again", KP_CMD_LIFECYCLE_HELP,
    kp_cmd_unfreeze },
  { "archive", "ENV...", "keep environments without running them", KP_CMD_LIFECYCLE_HELP,
    kp_cmd_archive },
  { "unarchive", "ENV...", "make archived environments usable again", KP_CMD_LIFECYCLE_HELP,
    kp_cmd_unarchive },
  { "rename", "ENV NEW_NAME", "give an environment another name", NULL, kp_cmd_rename },
  { "inspect", "ENV", "show an environment's record and lock", NULL, kp_cmd_inspect },
  { "list", "", "list the environments", NULL, kp_cmd_list },
  { "destroy", "ENV...", "remove environments (their layers go at the next gc)", NULL,
    kp_cmd_destroy },
  { "unshare", "[-- CMD [ARGS...]]", "run a command in the store's user namespace",
    KP_CMD_UNSHARE_HELP, kp_cmd_unshare },
  { "gc", "[--dry-run]", "delete objects and layers no environment uses", KP_CMD_GC_HELP,
    kp_cmd_gc },
  { "verify-store", "", "re-hash and cross-check the whole store", KP_CMD_VERIFY_STORE_HELP,
    kp_cmd_verify_store },
  { "migrate", "", "report the store's format version and upgrade it", KP_CMD_MIGRATE_HELP,
    kp_cmd_migrate },
  { "completions", "bash|zsh|fish", "print a shell completion script", NULL, kp_cmd_completions },
  { "version", "", "print the version and build details", NULL, kp_cmd_version },
  { NULL, NULL, NULL, NULL, NULL },
};

static const kp_cli_command *
find_command (const char *name)
{
  for (const kp_cli_command *c = kp_cli_commands; c->name; c++)
    if (strcmp (c->name, name) == 0)
      return c;
  return NULL;
}

static void
print_main_help (const kp_cli *cli, FILE *out)
{
  bool c = out == stdout ? cli->color_out : cli->color_err;
  fprintf (out,
           "%sUsage:%s karapace [OPTIONS] COMMAND [ARGS]\n\n"
           "Reproducible, rootless development environments named by their content.\n\n"
           "%sCommands:%s\n",
           kp_cli_style (c, KP_STYLE_BOLD), kp_cli_style (c, KP_STYLE_RESET),
           kp_cli_style (c, KP_STYLE_BOLD), kp_cli_style (c, KP_STYLE_RESET));
  for (const kp_cli_command *cmd = kp_cli_commands; cmd->name; cmd++)
    fprintf (out, "  %-12s %s\n", cmd->name, cmd->summary);
  fprintf (out, "\n%s\nRun 'karapace COMMAND --help' for a command's options.\n"
                "Exit status: 0 ok, 1 failure, 2 manifest or lock error, 3 store error,\n"
                "4 runtime error, 64 usage error.\n",
           KP_CLI_COMMON_HELP "      --version       print the version\n");
}

void
kp_cli_print_command_help (const kp_cli *cli, const kp_cli_command *cmd, FILE *out)
{
  bool c = out == stdout ? cli->color_out : cli->color_err;
  fprintf (out, "%sUsage:%s karapace %s%s%s [OPTIONS]\n\n%c%s.\n\n",
           kp_cli_style (c, KP_STYLE_BOLD), kp_cli_style (c, KP_STYLE_RESET), cmd->name,
           cmd->args[0] ? " " : "", cmd->args, cmd->summary[0] - 32, cmd->summary + 1);
  if (cmd->help)
    fprintf (out, "%s\n", cmd->help);
  fputs (KP_CLI_COMMON_HELP, out);
}

int
kp_cli_usage_error (const kp_cli *cli, const kp_cli_command *cmd, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  fprintf (stderr, "%s: %serror:%s ", cli->prog, kp_cli_style (cli->color_err, KP_STYLE_RED),
           kp_cli_style (cli->color_err, KP_STYLE_RESET));
  vfprintf (stderr, fmt, ap);
  va_end (ap);
  if (cmd)
    fprintf (stderr, "\nTry 'karapace %s --help'.\n", cmd->name);
  else
    fprintf (stderr, "\nTry 'karapace --help'.\n");
  return KP_EXIT_USAGE;
}

static bool
color_wanted (const char *when, int fd)
{
  if (strcmp (when, "always") == 0)
    return true;
  if (strcmp (when, "never") == 0)
    return false;
  const char *no_color = getenv ("NO_COLOR");
  if (no_color && no_color[0])
    return false;
  const char *term = getenv ("TERM");
  if (term && strcmp (term, "dumb") == 0)
    return false;
  return isatty (fd);
}

int
kp_cli_common_option (kp_cli *cli, const kp_cli_command *cmd, int c, const char *arg)
{
  switch (c)
    {
    case 'h':
      if (cmd)
        kp_cli_print_command_help (cli, cmd, stdout);
      else
        print_main_help (cli, stdout);
      return 0;
    case 'v':
      cli->verbose++;
      return KP_CLI_CONTINUE;
    case 'q':
      cli->quiet = true;
      return KP_CLI_CONTINUE;
    case KP_CLI_OPT_JSON:
      cli->json = true;
      return KP_CLI_CONTINUE;
    case KP_CLI_OPT_STORE:
      if (arg[0] == '\0')
        return kp_cli_usage_error (cli, cmd, "--store needs a path");
      cli->store = arg;
      return KP_CLI_CONTINUE;
    case KP_CLI_OPT_COLOR:
      if (strcmp (arg, "auto") && strcmp (arg, "always") && strcmp (arg, "never"))
        return kp_cli_usage_error (cli, cmd, "--color must be auto, always or never, not '%s'",
                                   arg);
      cli->color_out = color_wanted (arg, STDOUT_FILENO);
      cli->color_err = color_wanted (arg, STDERR_FILENO);
      return KP_CLI_CONTINUE;
    case KP_CLI_OPT_NO_COLOR:
      cli->color_out = cli->color_err = false;
      return KP_CLI_CONTINUE;
    case '?':
      /* getopt has printed what was wrong. */
      if (cmd)
        fprintf (stderr, "Try 'karapace %s --help'.\n", cmd->name);
      return KP_EXIT_USAGE;
    default:
      return kp_cli_usage_error (cli, cmd, "unhandled option");
    }
}

int
kp_cli_parse_common (kp_cli *cli, const kp_cli_command *cmd, int argc, char **argv,
                     bool stop_at_operand)
{
  static const struct option options[] = { KP_CLI_COMMON_LONG_OPTIONS, { NULL, 0, NULL, 0 } };
  const char *shortopts = stop_at_operand ? "+" KP_CLI_COMMON_SHORT_OPTIONS
                                          : KP_CLI_COMMON_SHORT_OPTIONS;
  int c;
  while ((c = getopt_long (argc, argv, shortopts, options, NULL)) != -1)
    {
      int r = kp_cli_common_option (cli, cmd, c, optarg);
      if (r != KP_CLI_CONTINUE)
        return r;
    }
  return KP_CLI_CONTINUE;
}

static const char *
suggest_command (const char *name)
{
  const char *best = NULL;
  size_t best_d = 3;
  for (const kp_cli_command *c = kp_cli_commands; c->name; c++)
    {
      size_t d = kp_levenshtein (name, c->name);
      if (d < best_d)
        best_d = d, best = c->name;
    }
  return best;
}

int
main (int argc, char **argv)
{
  /* The user's character set (for what a terminal shows) and the language of system
     error messages; numbers and dates stay in the C locale, so that what we print reads
     the same everywhere and scripts can parse it. Loading two categories instead of all
     thirteen also saves a dozen file opens on every start. */
  setlocale (LC_CTYPE, "");
  setlocale (LC_MESSAGES, "");
  kp_cli cli = { .prog = "karapace" };
  cli.color_out = color_wanted ("auto", STDOUT_FILENO);
  cli.color_err = color_wanted ("auto", STDERR_FILENO);
  const char *env_store = getenv ("KARAPACE_STORE");
  if (env_store && env_store[0])
    cli.store = env_store;

  /* Global options before the command; "+" stops at the first non-option. */
  static const struct option options[] = {
    KP_CLI_COMMON_LONG_OPTIONS,
    { "version", no_argument, NULL, 'V' },
    { NULL, 0, NULL, 0 },
  };
  int c;
  opterr = 1;
  while ((c = getopt_long (argc, argv, "+" KP_CLI_COMMON_SHORT_OPTIONS, options, NULL)) != -1)
    {
      if (c == 'V')
        {
          printf ("karapace %s\n", KP_VERSION);
          return 0;
        }
      int r = kp_cli_common_option (&cli, NULL, c, optarg);
      if (r != KP_CLI_CONTINUE)
        return r;
    }
  if (optind >= argc)
    {
      print_main_help (&cli, stderr);
      return KP_EXIT_USAGE;
    }
  const char *name = argv[optind];
  if (strcmp (name, "help") == 0)
    {
      if (optind + 1 < argc && find_command (argv[optind + 1]))
        kp_cli_print_command_help (&cli, find_command (argv[optind + 1]), stdout);
      else
        print_main_help (&cli, stdout);
      return 0;
    }
  const kp_cli_command *cmd = find_command (name);
  if (cmd == NULL)
    {
      const char *s = suggest_command (name);
      if (s)
        return kp_cli_usage_error (&cli, NULL, "unknown command '%s'; did you mean '%s'?", name, s);
      return kp_cli_usage_error (&cli, NULL, "unknown command '%s'", name);
    }
  /* The command parses its own argv from its name on; reset getopt for it. */
  int sub_argc = argc - optind;
  char **sub_argv = argv + optind;
  optind = 0;
  return cmd->run (&cli, cmd, sub_argc, sub_argv);
}
