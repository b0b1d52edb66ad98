/* cmd-completions.c — `karapace completions bash|zsh|fish`, generated from the command
 * table so that a new command is completed without touching this file. Per-command
 * options are read from `karapace CMD --help` at completion time. */
#include "commands.h"

#include "base/buf.h"
#include "schema/templates.h"

#include <string.h>

static void
command_names (kp_buf *out, const char *sep)
{
  for (const kp_cli_command *c = kp_cli_commands; c->name; c++)
    kp_buf_printf (out, "%s%s", c == kp_cli_commands ? "" : sep, c->name);
}

static void
print_bash (void)
{
  kp_cleanup_buf kp_buf cmds = KP_BUF_INIT;
  command_names (&cmds, " ");
  kp_cleanup_free char *templates = kp_template_names ();
  for (char *p = templates; *p; p++)
    if (*p == ',')
      *p = ' ';
  printf ("# bash completion for karapace\n"
          "_karapace() {\n"
          "  local cur prev cmd i\n"
          "  cur=\"${COMP_WORDS[COMP_CWORD]}\"; prev=\"${COMP_WORDS[COMP_CWORD-1]}\"\n"
          "  for ((i = 1; i < COMP_CWORD; i++)); do\n"
          "    case \"${COMP_WORDS[i]}\" in -*) ;; *) cmd=\"${COMP_WORDS[i]}\"; break ;; esac\n"
          "  done\n"
          "  case \"$prev\" in\n"
          "    --template|-t) COMPREPLY=($(compgen -W \"%s\" -- \"$cur\")); return ;;\n"
          "    --color) COMPREPLY=($(compgen -W \"auto always never\" -- \"$cur\")); return ;;\n"
          "    --store|--output|-o|--lock|--policy) COMPREPLY=($(compgen -f -- \"$cur\")); return ;;\n"
          "  esac\n"
          "  if [[ -z \"$cmd\" ]]; then\n"
          "    COMPREPLY=($(compgen -W \"%s --help --version --json --store --verbose --quiet\" -- \"$cur\"))\n"
          "  elif [[ \"$cmd\" == completions ]]; then\n"
          "    COMPREPLY=($(compgen -W \"bash zsh fish\" -- \"$cur\"))\n"
          "  elif [[ \"$cur\" == -* ]]; then\n"
          "    COMPREPLY=($(compgen -W \"$(karapace \"$cmd\" --help 2>/dev/null | grep -oE -- '--[a-z][a-z-]*' | sort -u)\" -- \"$cur\"))\n"
          "  else\n"
          "    COMPREPLY=($(compgen -f -- \"$cur\"))\n"
          "  fi\n"
          "}\n"
          "complete -F _karapace karapace\n",
          templates, kp_buf_str (&cmds));
}

static void
print_zsh (void)
{
  printf ("#compdef karapace\n_karapace() {\n  local -a commands\n  commands=(\n");
  for (const kp_cli_command *c = kp_cli_commands; c->name; c++)
    printf ("    '%s:%s'\n", c->name, c->summary);
  printf ("  )\n  if (( CURRENT == 2 )); then\n    _describe 'command' commands\n"
          "  else\n    _arguments '*:file:_files' $(karapace ${words[2]} --help 2>/dev/null "
          "| grep -oE -- '--[a-z][a-z-]*' | sort -u)\n  fi\n}\n_karapace \"$@\"\n");
}

static void
print_fish (void)
{
  for (const kp_cli_command *c = kp_cli_commands; c->name; c++)
    printf ("complete -c karapace -f -n '__fish_use_subcommand' -a %s -d '%s'\n", c->name,
            c->summary);
  printf ("complete -c karapace -l json -d 'print data as JSON'\n"
          "complete -c karapace -l store -r -d 'store path'\n"
          "complete -c karapace -s v -l verbose -d 'say more'\n"
          "complete -c karapace -s q -l quiet -d 'print only errors and data'\n");
  for (const kp_template *t = kp_templates (); t->name; t++)
    printf ("complete -c karapace -n '__fish_seen_subcommand_from new' -l template -x -a %s "
            "-d '%s'\n",
            t->name, t->summary);
}

int
kp_cmd_completions (kp_cli *cli, const kp_cli_command *cmd, int argc, char **argv)
{
  int parsed = kp_cli_parse_common (cli, cmd, argc, argv, false);
  if (parsed != KP_CLI_CONTINUE)
    return parsed;
  if (optind + 1 != argc)
    return kp_cli_usage_error (cli, cmd, "name one shell: bash, zsh or fish");
  const char *shell = argv[optind];
  if (strcmp (shell, "bash") == 0)
    print_bash ();
  else if (strcmp (shell, "zsh") == 0)
    print_zsh ();
  else if (strcmp (shell, "fish") == 0)
    print_fish ();
  else
    return kp_cli_usage_error (cli, cmd, "unknown shell '%s'; choose bash, zsh or fish", shell);
  return 0;
}
