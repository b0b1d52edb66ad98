/* cmd-verify-store.c — `karapace verify-store`: re-hash and cross-check the whole store. */
#include "commands.h"

#include "store/store.h"

int
kp_cmd_verify_store (kp_cli *cli, const kp_cli_command *cmd, int argc, char **argv)
{
  int parsed = kp_cli_parse_common (cli, cmd, argc, argv, false);
  if (parsed != KP_CLI_CONTINUE)
    return parsed;
  if (optind < argc)
    return kp_cli_usage_error (cli, cmd, "verify-store takes no arguments");

  /* The exclusive lock: unfinished work is rolled back first, and nothing changes while
     we look. */
  kp_error *err = NULL;
  kp_store_open_options o = { .flags = KP_STORE_WRITE, .purpose = "karapace verify-store",
                              .on_wait = kp_cli_store_wait, .user_data = cli };
  kp_cleanup_store kp_store *store = kp_store_open_with (cli->store, &o, &err);
  if (store == NULL)
    return kp_cli_fail (cli, err);
  const kp_store_recovery *rec = kp_store_last_recovery (store);
  kp_store_verify_report rep;
  if (kp_store_verify (store, &rep, &err) < 0)
    {
      kp_store_verify_report_clear (&rep);
      return kp_cli_fail (cli, err);
    }
  if (cli->json)
    {
      kp_cleanup_json json_t *j = json_pack (
          "{s:s,s:b,s:I,s:I,s:I,s:I,s:I,s:{s:i,s:i,s:i},s:O}", "store", kp_store_path (store),
          "ok", rep.problems == 0, "objects", (json_int_t) rep.objects, "object_bytes",
          (json_int_t) rep.object_bytes, "envs", (json_int_t) rep.envs, "layers",
          (json_int_t) rep.layers, "problem_count", (json_int_t) rep.problems, "recovered",
          "rolled_back", (int) rec->rolled_back, "quarantined", (int) rec->quarantined,
          "tmp_removed", (int) rec->tmp_removed, "problems", rep.problem_list);
      kp_cli_print_json (cli, j);
    }
  else
    {
      if (rec->rolled_back || rec->quarantined || rec->tmp_removed)
        kp_cli_info (cli, "recovered first: %u unfinished mutations rolled back, %u journal "
                          "entries quarantined, %u temporary files removed",
                     rec->rolled_back, rec->quarantined, rec->tmp_removed);
      size_t i;
      json_t *p;
      json_array_foreach (rep.problem_list, i, p)
        printf ("problem: %s %s: %s\n", json_string_value (json_object_get (p, "kind")),
                json_string_value (json_object_get (p, "id")),
                json_string_value (json_object_get (p, "message")));
      printf ("%s: %llu objects (%llu bytes), %llu environments, %llu layers checked; "
              "%llu problems\n",
              kp_store_path (store), (unsigned long long) rep.objects,
              (unsigned long long) rep.object_bytes, (unsigned long long) rep.envs,
              (unsigned long long) rep.layers, (unsigned long long) rep.problems);
    }
  bool bad = rep.problems > 0;
  kp_store_verify_report_clear (&rep);
  if (bad && !cli->json)
    fprintf (stderr, "karapace: error: the store has problems (listed above)\n"
                     "hint: corrupt objects and records must be restored or rebuilt; leftover "
                     "entries can be deleted\n");
  return bad ? KP_EXIT_STORE : 0;
}
