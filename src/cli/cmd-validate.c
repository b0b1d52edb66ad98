/* cmd-validate.c — `karapace validate [MANIFEST]`: schema, policy and lock checks. */
#include "commands.h"

#include "base/buf.h"
#include "base/fs.h"
#include "policy/policy.h"
#include "schema/identity.h"
#include "schema/lock.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static json_t *
schema_json (void)
{
  json_t *a = json_array ();
  for (size_t i = 0; i < KP_OPT__COUNT; i++)
    {
      const kp_option *o = kp_option_get ((kp_option_id) i);
      json_t *j = json_pack ("{s:s,s:s,s:s,s:b,s:b,s:b,s:s}", "key", o->key, "type",
                             kp_option_type_name (o->type), "help", o->help, "required",
                             (o->flags & KP_OPTF_REQUIRED) != 0, "identity",
                             (o->flags & KP_OPTF_IDENTITY) != 0, "original",
                             (o->flags & KP_OPTF_ORIGINAL) != 0, "example", o->example);
      if (o->default_text)
        json_object_set_new (j, "default", json_string (o->default_text));
      if (o->choices)
        json_object_set_new (j, "choices", kp_json_strv ((char *const *) o->choices));
      if (o->type == KP_OPT_INT)
        json_object_set_new (j, "range", json_pack ("[I,I]", (json_int_t) o->min,
                                                    (json_int_t) o->max));
      json_array_append_new (a, j);
    }
  return a;
}

/* The Markdown table of docs/manifest.md, generated from the option schema. */
static void
print_schema_markdown (void)
{
  printf ("| Key | Type | Default | Description |\n|---|---|---|---|\n");
  for (size_t i = 0; i < KP_OPT__COUNT; i++)
    {
      const kp_option *o = kp_option_get ((kp_option_id) i);
      kp_cleanup_buf kp_buf type = KP_BUF_INIT;
      kp_buf_puts (&type, kp_option_type_name (o->type));
      if (o->choices)
        {
          kp_buf_puts (&type, ": ");
          for (size_t c = 0; o->choices[c]; c++)
            kp_buf_printf (&type, "%s`\"%s\"`", c ? " \\| " : "", o->choices[c]);
        }
      if (o->type == KP_OPT_INT)
        kp_buf_printf (&type, ", %lld–%lld", (long long) o->min, (long long) o->max);
      const char *marks = (o->flags & KP_OPTF_ORIGINAL) ? "" : " *(ours)*";
      printf ("| `%s` | %s | %s%s%s | %s%s%s%s |\n", o->key, kp_buf_str (&type),
              o->default_text ? "`" : "", o->default_text ? o->default_text : "—",
              o->default_text ? "`" : "", o->help, marks,
              (o->flags & KP_OPTF_IDENTITY) ? "" : " Not part of env_id.",
              (o->flags & KP_OPTF_REQUIRED) ? " Required." : "");
    }
}

int
kp_cmd_validate (kp_cli *cli, const kp_cli_command *cmd, int argc, char **argv)
{
  enum
  {
    OPT_LOCKED = 1,
    OPT_LOCK,
    OPT_NO_LOCK,
    OPT_POLICY,
    OPT_SCHEMA
  };
  static const struct option options[] = {
    KP_CLI_COMMON_LONG_OPTIONS,
    { "locked", no_argument, NULL, OPT_LOCKED },
    { "lock", required_argument, NULL, OPT_LOCK },
    { "no-lock", no_argument, NULL, OPT_NO_LOCK },
    { "policy", required_argument, NULL, OPT_POLICY },
    { "schema", no_argument, NULL, OPT_SCHEMA },
    { NULL, 0, NULL, 0 },
  };
  bool locked = false, no_lock = false, schema = false;
  const char *lock_path_arg = NULL, *policy_path = NULL;
  int c;
  while ((c = getopt_long (argc, argv, KP_CLI_COMMON_SHORT_OPTIONS, options, NULL)) != -1)
    {
      switch (c)
        {
        case OPT_LOCKED:
          locked = true;
          break;
        case OPT_LOCK:
          lock_path_arg = optarg;
          break;
        case OPT_NO_LOCK:
          no_lock = true;
          break;
        case OPT_POLICY:
          policy_path = optarg;
          break;
        case OPT_SCHEMA:
          schema = true;
          break;
        default:
          {
            int r = kp_cli_common_option (cli, cmd, c, optarg);
            if (r != KP_CLI_CONTINUE)
              return r;
          }
        }
    }
  if (schema)
    {
      if (cli->json)
        {
          kp_cleanup_json json_t *j = schema_json ();
          kp_cli_print_json (cli, j);
        }
      else
        print_schema_markdown ();
      return 0;
    }
  if (argc - optind > 1)
    return kp_cli_usage_error (cli, cmd, "validate takes one manifest, got %d", argc - optind);
  if (locked && no_lock)
    return kp_cli_usage_error (cli, cmd, "--locked and --no-lock contradict each other");
  const char *path = optind < argc ? argv[optind] : "karapace.toml";

  kp_error *err = NULL;
  kp_cleanup_policy kp_policy *policy = kp_policy_load (policy_path, &err);
  if (policy == NULL)
    return kp_cli_fail (cli, err);
  if (cli->verbose)
    kp_cli_info (cli, "policy: %s", policy->source ? policy->source : "built-in defaults");
  kp_cleanup_manifest kp_manifest *m = kp_manifest_load (path, &err);
  if (m == NULL)
    return kp_cli_fail (cli, err);
  if (kp_policy_check_manifest (policy, m, &err) < 0)
    return kp_cli_fail (cli, err);

  /* The lock beside the manifest, when there is one. */
  kp_cleanup_free char *lock_path = NULL;
  if (!no_lock)
    {
      kp_cleanup_free char *dir = kp_path_dirname (path);
      lock_path = lock_path_arg ? xstrdup (lock_path_arg) : kp_path_join (dir, KP_LOCK_FILENAME);
      if (!lock_path_arg && !locked && access (lock_path, F_OK) != 0)
        {
          free (lock_path);
          lock_path = NULL;
        }
    }
  kp_cleanup_lock kp_lock *lock = NULL;
  kp_cleanup_strv char **diff = NULL;
  if (lock_path)
    {
      lock = kp_lock_load (lock_path, &err);
      if (lock == NULL)
        {
          if (locked && err->errno_value)
            kp_error_hint (&err, "--locked needs a lock: write one with `karapace build`");
          return kp_cli_fail (cli, err);
        }
      if (kp_lock_check_integrity (lock, lock_path, &err) < 0)
        return kp_cli_fail (cli, err);
      diff = kp_lock_diff_manifest (lock, m);
      if (cli->verbose > 1)
        {
          /* What env_id hashes, for anyone checking it by hand (docs/identity.md). */
          kp_cleanup_free char *text = kp_identity_serialize (lock);
          fprintf (stderr, "identity serialisation of %s:\n%s", lock_path, text);
        }
    }
  bool drift = diff && diff[0];

  if (cli->json)
    {
      kp_cleanup_json json_t *j = json_pack ("{s:s,s:b,s:o}", "manifest", path, "valid", 1,
                                             "normalized", kp_manifest_to_json (m, false));
      if (lock)
        {
          char short_id[KP_SHORT_ID_LEN + 1];
          kp_identity_short_id (lock->env_id, short_id);
          json_object_set_new (j, "lock",
                               json_pack ("{s:s,s:s,s:s,s:b,s:b,s:o}", "path", lock_path,
                                          "env_id", lock->env_id, "short_id", short_id,
                                          "intact", 1, "matches_manifest", !drift,
                                          "differences", kp_json_strv (diff)));
        }
      kp_cli_print_json (cli, j);
    }
  else
    {
      if (!cli->quiet)
        {
          kp_cleanup_buf kp_buf text = KP_BUF_INIT;
          kp_buf_printf (&text, "# %s, normalised\n", path);
          kp_manifest_write_toml (m, NULL, &text);
          fputs (kp_buf_str (&text), stdout);
        }
      bool ce = cli->color_err;
      kp_cli_info (cli, "%s%s: valid%s", kp_cli_style (ce, KP_STYLE_GREEN), path,
                   kp_cli_style (ce, KP_STYLE_RESET));
      if (lock && !drift)
        kp_cli_info (cli, "%s: intact and up to date, env_id %s", lock_path, lock->env_id);
      else if (lock)
        {
          fprintf (stderr, "%s: %s%s is out of date:%s\n", cli->prog,
                   kp_cli_style (ce, locked ? KP_STYLE_RED : KP_STYLE_YELLOW), lock_path,
                   kp_cli_style (ce, KP_STYLE_RESET));
          for (size_t i = 0; diff[i]; i++)
            fprintf (stderr, "  %s\n", diff[i]);
          fprintf (stderr, "  hint: run `karapace build` to resolve the manifest again\n");
        }
    }
  if (drift && locked)
    {
      if (!cli->json)
        return KP_EXIT_MANIFEST;
      kp_error_set (&err, KP_EXIT_MANIFEST, "%s differs from %s", lock_path, path);
      kp_error_hint (&err, "run `karapace build` to resolve the manifest again");
      return kp_cli_fail (cli, err);
    }
  return 0;
}
