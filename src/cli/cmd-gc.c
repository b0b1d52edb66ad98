/* cmd-gc.c — `karapace gc [--dry-run]`: delete what no environment references. */
#include "commands.h"

#include "store/store.h"

#include <signal.h>
#include <string.h>

static volatile sig_atomic_t gc_cancel;

static void
on_signal (int sig)
{
  gc_cancel = 1;
}

int
kp_cmd_gc (kp_cli *cli, const kp_cli_command *cmd, int argc, char **argv)
{
  static const struct option options[] = {
    KP_CLI_COMMON_LONG_OPTIONS,
    { "dry-run", no_argument, NULL, 'n' },
    { NULL, 0, NULL, 0 },
  };
  bool dry_run = false;
  int c;
  while ((c = getopt_long (argc, argv, KP_CLI_COMMON_SHORT_OPTIONS "n", options, NULL)) != -1)
    {
      if (c == 'n')
        {
          dry_run = true;
          continue;
        }
      int r = kp_cli_common_option (cli, cmd, c, optarg);
      if (r != KP_CLI_CONTINUE)
        return r;
    }
  if (optind < argc)
    return kp_cli_usage_error (cli, cmd, "gc takes no arguments");

  kp_error *err = NULL;
  kp_store_open_options o = { .flags = KP_STORE_WRITE, .purpose = "karapace gc",
                              .on_wait = kp_cli_store_wait, .user_data = cli };
  kp_cleanup_store kp_store *store = kp_store_open_with (cli->store, &o, &err);
  if (store == NULL)
    return kp_cli_fail (cli, err);

  struct sigaction sa = { .sa_handler = on_signal };
  sigemptyset (&sa.sa_mask);
  sigaction (SIGINT, &sa, NULL);
  sigaction (SIGTERM, &sa, NULL);
  kp_store_gc_options go = { .dry_run = dry_run, .cancel = &gc_cancel };
  kp_store_gc_report rep;
  int r = kp_store_gc (store, &go, &rep, &err);
  signal (SIGINT, SIG_DFL);
  signal (SIGTERM, SIG_DFL);
  if (r < 0)
    {
      kp_store_gc_report_clear (&rep);
      return kp_cli_fail (cli, err);
    }
  if (cli->json)
    {
      kp_cleanup_json json_t *j = json_pack (
          "{s:s,s:b,s:b,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:O}", "store", kp_store_path (store),
          "dry_run", dry_run, "interrupted", rep.interrupted, "live_envs",
          (json_int_t) rep.live_envs, "kept_objects", (json_int_t) rep.kept_objects,
          "kept_layers", (json_int_t) rep.kept_layers, "freed_objects",
          (json_int_t) rep.freed_objects, "freed_object_bytes",
          (json_int_t) rep.freed_object_bytes, "freed_layers", (json_int_t) rep.freed_layers,
          "freed_layer_bytes", (json_int_t) rep.freed_layer_bytes, "removed_tmp",
          (json_int_t) rep.removed_tmp, "freed", rep.freed);
      kp_cli_print_json (cli, j);
    }
  else
    {
      kp_cleanup_free char *ob = kp_cli_human_bytes (rep.freed_object_bytes);
      kp_cleanup_free char *lb = kp_cli_human_bytes (rep.freed_layer_bytes);
      const char *verb = dry_run ? "would free" : "freed";
      if (cli->verbose)
        {
          size_t i;
          json_t *item;
          json_array_foreach (rep.freed, i, item)
            printf ("%s %s %s\n", dry_run ? "would remove" : "removed",
                    json_string_value (json_object_get (item, "kind")),
                    json_string_value (json_object_get (item, "id")));
        }
      printf ("%s %llu objects (%s) and %llu layers (%s); kept what %llu environments use\n",
              verb, (unsigned long long) rep.freed_objects, ob,
              (unsigned long long) rep.freed_layers, lb, (unsigned long long) rep.live_envs);
    }
  bool interrupted = rep.interrupted;
  kp_store_gc_report_clear (&rep);
  if (interrupted)
    {
      kp_cli_warn (cli, "interrupted: stopped between two deletions; the store is consistent "
                        "and 'karapace gc' can be run again");
      return 130;
    }
  return 0;
}
