/* cmd-new.c — `karapace new NAME [--template T] [--force] [-o PATH]`. */
#include "commands.h"

#include "base/fs.h"
#include "schema/manifest.h"
#include "schema/templates.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void
list_templates (FILE *out)
{
  for (const kp_template *t = kp_templates (); t->name; t++)
    fprintf (out, "  %-11s %s\n", t->name, t->summary);
}

/* Ask on the terminal; NULL when the answer is not a template. */
static const kp_template *
ask_template (void)
{
  fprintf (stderr, "Which template?\n");
  size_t i = 1;
  for (const kp_template *t = kp_templates (); t->name; t++, i++)
    fprintf (stderr, "  %zu) %-11s %s\n", i, t->name, t->summary);
  fprintf (stderr, "Number or name [debian]: ");
  fflush (stderr);
  char line[128];
  if (fgets (line, sizeof line, stdin) == NULL)
    return NULL;
  line[strcspn (line, "\r\n")] = '\0';
  if (line[0] == '\0')
    return kp_template_find ("debian");
  char *end;
  long n = strtol (line, &end, 10);
  if (*end == '\0' && n >= 1)
    {
      const kp_template *t = kp_templates ();
      for (long k = 1; t->name && k < n; k++)
        t++;
      return t->name ? t : NULL;
    }
  return kp_template_find (line);
}

int
kp_cmd_new (kp_cli *cli, const kp_cli_command *cmd, int argc, char **argv)
{
  static const struct option options[] = {
    KP_CLI_COMMON_LONG_OPTIONS,
    { "template", required_argument, NULL, 't' },
    { "output", required_argument, NULL, 'o' },
    { "force", no_argument, NULL, 'f' },
    { "list", no_argument, NULL, 'l' },
    { NULL, 0, NULL, 0 },
  };
  const char *template_name = NULL, *output = "karapace.toml";
  bool force = false, list = false;
  int c;
  while ((c = getopt_long (argc, argv, KP_CLI_COMMON_SHORT_OPTIONS "t:o:f", options, NULL)) != -1)
    {
      switch (c)
        {
        case 't':
          template_name = optarg;
          break;
        case 'o':
          output = optarg;
          break;
        case 'f':
          force = true;
          break;
        case 'l':
          list = true;
          break;
        default:
          {
            int r = kp_cli_common_option (cli, cmd, c, optarg);
            if (r != KP_CLI_CONTINUE)
              return r;
          }
        }
    }
  if (list)
    {
      if (cli->json)
        {
          kp_cleanup_json json_t *a = json_array ();
          for (const kp_template *t = kp_templates (); t->name; t++)
            json_array_append_new (a, json_pack ("{s:s,s:s}", "name", t->name, "summary",
                                                 t->summary));
          kp_cli_print_json (cli, a);
        }
      else
        list_templates (stdout);
      return 0;
    }
  if (optind >= argc)
    return kp_cli_usage_error (cli, cmd, "name the environment: karapace new NAME");
  if (optind + 1 < argc)
    return kp_cli_usage_error (cli, cmd, "unexpected argument '%s'", argv[optind + 1]);
  const char *name = argv[optind];
  if (!kp_environment_name_valid (name))
    return kp_cli_usage_error (cli, cmd,
                               "'%s' is not a valid name: use 1 to 64 letters, digits, _ or -",
                               name);

  const kp_template *t = NULL;
  if (template_name)
    {
      t = kp_template_find (template_name);
      if (t == NULL)
        {
          kp_cleanup_free char *names = kp_template_names ();
          return kp_cli_usage_error (cli, cmd, "unknown template '%s'; choose one of: %s",
                                     template_name, names);
        }
    }
  else if (isatty (STDIN_FILENO) && isatty (STDERR_FILENO))
    {
      t = ask_template ();
      if (t == NULL)
        return kp_cli_usage_error (cli, cmd, "no such template");
    }
  else
    {
      kp_cleanup_free char *names = kp_template_names ();
      return kp_cli_usage_error (cli, cmd,
                                 "choose a template with --template (%s); there is no terminal "
                                 "to ask on",
                                 names);
    }

  kp_cleanup_free char *text = kp_template_render (t, name);
  if (strcmp (output, "-") == 0)
    {
      fputs (text, stdout);
      return 0;
    }
  kp_error *err = NULL;
  if (kp_file_write_atomic (output, text, strlen (text), 0644, !force, &err) < 0)
    {
      if (err->errno_value == EEXIST)
        kp_error_hint (&err, "use --force to replace it, or -o PATH to write elsewhere");
      return kp_cli_fail (cli, err);
    }
  if (cli->json)
    {
      kp_cleanup_json json_t *j = json_pack ("{s:s,s:s,s:s}", "path", output, "name", name,
                                             "template", t->name);
      kp_cli_print_json (cli, j);
    }
  else
    kp_cli_info (cli, "wrote %s (template %s); next: karapace validate %s", output, t->name,
                 output);
  return 0;
}
