/* cmd-doctor.c — `karapace doctor`: a table of checks with the fix for each problem. */
#include "commands.h"

#include "base/fs.h"
#include "engine/doctor.h"

#include <stdlib.h>

static kp_style
status_style (kp_check_status s)
{
  switch (s)
    {
    case KP_CHECK_OK:
      return KP_STYLE_GREEN;
    case KP_CHECK_WARN:
      return KP_STYLE_YELLOW;
    case KP_CHECK_FAIL:
      return KP_STYLE_RED;
    case KP_CHECK_SKIP:
      return KP_STYLE_DIM;
    }
  return KP_STYLE_RESET;
}

int
kp_cmd_doctor (kp_cli *cli, const kp_cli_command *cmd, int argc, char **argv)
{
  static const struct option options[] = {
    KP_CLI_COMMON_LONG_OPTIONS,
    { "quick", no_argument, NULL, 'Q' },
    { NULL, 0, NULL, 0 },
  };
  bool quick = false;
  int c;
  while ((c = getopt_long (argc, argv, KP_CLI_COMMON_SHORT_OPTIONS, options, NULL)) != -1)
    {
      if (c == 'Q')
        {
          quick = true;
          continue;
        }
      int r = kp_cli_common_option (cli, cmd, c, optarg);
      if (r != KP_CLI_CONTINUE)
        return r;
    }
  if (optind < argc)
    return kp_cli_usage_error (cli, cmd, "unexpected argument '%s'", argv[optind]);

  kp_cleanup_free char *data = kp_xdg_data_home ();
  kp_cleanup_free char *store = cli->store ? xstrdup (cli->store) : kp_path_join (data, "karapace");
  kp_doctor_options opts = { .store_path = store, .quick = quick };
  kp_cleanup_doctor_report kp_doctor_report *report = kp_doctor_run (&opts);
  kp_check_status worst = kp_doctor_worst (report);

  if (cli->json)
    {
      kp_cleanup_json json_t *checks = json_array ();
      for (size_t i = 0; i < report->len; i++)
        {
          const kp_check *k = &report->checks[i];
          json_t *j = json_pack ("{s:s,s:s,s:s,s:s}", "id", k->id, "title", k->title, "status",
                                 kp_check_status_name (k->status), "detail", k->detail);
          json_object_set_new (j, "fix", k->fix ? json_string (k->fix) : json_null ());
          json_array_append_new (checks, j);
        }
      kp_cleanup_json json_t *j = json_pack ("{s:s,s:O}", "status", kp_check_status_name (worst),
                                             "checks", checks);
      kp_cli_print_json (cli, j);
    }
  else
    {
      static const char *const headers[] = { "CHECK", "STATUS", "DETAIL" };
      kp_table *t = kp_table_new (3, headers);
      for (size_t i = 0; i < report->len; i++)
        {
          const kp_check *k = &report->checks[i];
          const char *cells[] = { k->title, kp_check_status_name (k->status), k->detail };
          kp_style styles[] = { KP_STYLE_RESET, status_style (k->status), KP_STYLE_RESET };
          kp_table_add_row (t, cells, styles);
        }
      kp_table_print (t, stdout, cli->color_out);
      kp_table_free (t);
      bool any_fix = false;
      int title_width = 0;
      for (size_t i = 0; i < report->len; i++)
        if (report->checks[i].fix && (int) kp_cli_text_width (report->checks[i].title) > title_width)
          title_width = (int) kp_cli_text_width (report->checks[i].title);
      for (size_t i = 0; i < report->len; i++)
        {
          const kp_check *k = &report->checks[i];
          if (!k->fix || (k->status != KP_CHECK_WARN && k->status != KP_CHECK_FAIL))
            continue;
          if (!any_fix)
            printf ("\nTo fix:\n");
          any_fix = true;
          printf ("  %s%-*s%s  %s\n", kp_cli_style (cli->color_out, status_style (k->status)),
                  title_width, k->title, kp_cli_style (cli->color_out, KP_STYLE_RESET), k->fix);
        }
      if (!cli->quiet)
        printf ("\n%s\n", worst == KP_CHECK_FAIL ? "Some checks failed: environments will not run "
                                                   "until they are fixed."
                          : worst == KP_CHECK_WARN ? "Environments can run; the warnings above "
                                                     "limit some features."
                                                   : "All checks passed.");
    }
  return worst == KP_CHECK_FAIL ? KP_EXIT_FAILURE : 0;
}
