/* cmd-images.c — `karapace images [list|pull|inspect|rm|prune]`: the base-image cache. */
#include "commands.h"

#include "image/image-config.h"
#include "image/pull.h"
#include "image/registry.h"
#include "store/store.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static kp_store *
open_store (kp_cli *cli, bool write, const char *purpose, kp_error **err)
{
  kp_store_open_options o = { .flags = write ? KP_STORE_WRITE : KP_STORE_READ,
                              .purpose = purpose, .on_wait = kp_cli_store_wait, .user_data = cli };
  return kp_store_open_with (cli->store, &o, err);
}

static char *
format_time (int64_t t)
{
  char buf[32];
  time_t tt = (time_t) t;
  struct tm tm;
  gmtime_r (&tt, &tm);
  strftime (buf, sizeof buf, "%Y-%m-%d %H:%M:%SZ", &tm);
  return xstrdup (buf);
}

/* "docker://h/r:t|linux/amd64" → reference and platform. */
static void
split_tag (const char *key, char **reference, char **platform)
{
  const char *bar = strchr (key, '|');
  *reference = bar ? xstrndup (key, (size_t) (bar - key)) : xstrdup (key);
  *platform = bar ? xstrdup (bar + 1) : NULL;
}

/* Layers environments use: an image in use is not removed without --force. */
static char **
layers_in_use (kp_store *store, kp_error **err)
{
  kp_cleanup_strv char **envs = kp_store_env_list (store, err);
  if (envs == NULL)
    return NULL;
  size_t n = 0;
  char **used = xcalloc (1, sizeof *used);
  for (char **e = envs; *e; e++)
    {
      kp_cleanup_env_record kp_env_record *rec = kp_store_env_read (store, *e, NULL);
      for (char **l = rec ? rec->layers : NULL; l && *l; l++)
        {
          used = xreallocarray (used, n + 2, sizeof *used);
          used[n++] = xstrdup (*l);
          used[n] = NULL;
        }
    }
  return used;
}

/* ---- images pull ---- */

enum
{
  OPT_TLS_VERIFY = 1,
  OPT_PLATFORM,
  OPT_CREDS,
  OPT_AUTHFILE,
  OPT_OFFLINE,
  OPT_FORCE,
  OPT_ALL,
};

static int
parse_bool (const char *s, int *out)
{
  if (s == NULL || strcmp (s, "true") == 0 || strcmp (s, "1") == 0 || strcmp (s, "yes") == 0)
    *out = 1;
  else if (strcmp (s, "false") == 0 || strcmp (s, "0") == 0 || strcmp (s, "no") == 0)
    *out = 0;
  else
    return -1;
  return 0;
}

static json_t *
pull_result_json (const kp_pull_result *r)
{
  json_t *j = json_pack ("{s:s,s:s,s:s,s:b,s:I,s:i}", "reference", r->reference, "digest",
                         r->digest, "tree_digest", r->tree_digest, "cached", r->cached, "bytes",
                         (json_int_t) r->bytes, "requests", (int) r->requests);
  json_object_set_new (j, "pinned", r->pinned ? json_string (r->pinned) : json_null ());
  return j;
}

static int
images_pull (kp_cli *cli, const kp_cli_command *cmd, int argc, char **argv)
{
  static const struct option options[] = {
    KP_CLI_COMMON_LONG_OPTIONS,
    { "tls-verify", optional_argument, NULL, OPT_TLS_VERIFY },
    { "platform", required_argument, NULL, OPT_PLATFORM },
    { "creds", required_argument, NULL, OPT_CREDS },
    { "authfile", required_argument, NULL, OPT_AUTHFILE },
    { "offline", no_argument, NULL, OPT_OFFLINE },
    { NULL, 0, NULL, 0 },
  };
  kp_pull_options po = { .tls_verify = -1 };
  kp_cleanup_free char *user = NULL;
  int c;
  while ((c = getopt_long (argc, argv, KP_CLI_COMMON_SHORT_OPTIONS, options, NULL)) != -1)
    {
      switch (c)
        {
        case OPT_TLS_VERIFY:
          if (parse_bool (optarg, &po.tls_verify) < 0)
            return kp_cli_usage_error (cli, cmd, "--tls-verify takes true or false, not '%s'",
                                       optarg);
          continue;
        case OPT_PLATFORM:
          po.platform = optarg;
          continue;
        case OPT_CREDS:
          {
            const char *colon = strchr (optarg, ':');
            if (colon == NULL || colon == optarg)
              return kp_cli_usage_error (cli, cmd, "--creds takes USER:PASSWORD");
            free (user);
            user = xstrndup (optarg, (size_t) (colon - optarg));
            po.username = user;
            po.password = colon + 1;
            continue;
          }
        case OPT_AUTHFILE:
          po.auth_file = optarg;
          continue;
        case OPT_OFFLINE:
          po.offline = true;
          continue;
        default:
          break;
        }
      int r = kp_cli_common_option (cli, cmd, c, optarg);
      if (r != KP_CLI_CONTINUE)
        return r;
    }
  if (optind + 1 != argc)
    return kp_cli_usage_error (cli, cmd, "images pull takes one image reference");
  const char *text = argv[optind];

  kp_error *err = NULL;
  kp_image_config config = { 0 };
  if (kp_image_config_load (NULL, &config, &err) < 0)
    return kp_cli_fail (cli, err);
  po.config = &config;
  po.progress = !cli->quiet && !cli->json && isatty (STDERR_FILENO);
  kp_cleanup_free char *cwd = getcwd (NULL, 0);
  kp_cleanup_image_ref kp_image_ref ref = { 0 };
  int rc;
  if (kp_image_ref_parse (text, cwd, config.aliases, &ref, &err) < 0)
    {
      rc = kp_cli_fail (cli, err);
      goto out;
    }
  {
    kp_cleanup_store kp_store *store = open_store (cli, true, "karapace images pull", &err);
    if (store == NULL)
      {
        rc = kp_cli_fail (cli, err);
        goto out;
      }
    if (!cli->quiet && !cli->json)
      kp_cli_info (cli, "pulling %s", ref.canonical);
    kp_cleanup_pull_result kp_pull_result res = { 0 };
    if (kp_image_pull (store, &ref, &po, &res, &err) < 0)
      {
        rc = kp_cli_fail (cli, err);
        goto out;
      }
    if (cli->json)
      {
        kp_cleanup_json json_t *j = pull_result_json (&res);
        kp_cli_print_json (cli, j);
      }
    else
      {
        kp_cleanup_free char *size = kp_cli_human_bytes (res.bytes);
        printf ("%s\n", res.pinned ? res.pinned : res.reference);
        if (!cli->quiet)
          {
            printf ("  digest       %s\n", res.digest);
            printf ("  tree digest  %s\n", res.tree_digest);
            if (res.cached)
              printf ("  cached       yes (%u request%s)\n", res.requests,
                      res.requests == 1 ? "" : "s");
            else
              printf ("  fetched      %s\n", size);
          }
      }
    rc = 0;
  }
out:
  kp_image_config_clear (&config);
  return rc;
}

/* ---- images list ---- */

static int
images_list (kp_cli *cli, const kp_cli_command *cmd, int argc, char **argv)
{
  int parsed = kp_cli_parse_common (cli, cmd, argc, argv, false);
  if (parsed != KP_CLI_CONTINUE)
    return parsed;
  if (optind < argc)
    return kp_cli_usage_error (cli, cmd, "images list takes no arguments");
  kp_error *err = NULL;
  kp_cleanup_store kp_store *store = open_store (cli, false, NULL, &err);
  if (store == NULL)
    return kp_cli_fail (cli, err);
  kp_cleanup_strv char **digests = kp_store_image_list (store, &err);
  if (digests == NULL)
    return kp_cli_fail (cli, err);
  kp_cleanup_json json_t *tags = kp_store_image_tags (store, &err);
  if (tags == NULL)
    return kp_cli_fail (cli, err);

  kp_platform host = { 0 };
  kp_platform_host (&host);
  kp_cleanup_free char *host_platform = kp_platform_format (&host);
  kp_platform_clear (&host);

  kp_cleanup_json json_t *out = json_array ();
  static const char *const headers[] = { "REFERENCE", "DIGEST", "TREE", "SIZE", "PULLED" };
  kp_table *table = kp_table_new (5, headers);
  for (char **d = digests; *d; d++)
    {
      kp_cleanup_image_record kp_image_record *rec = kp_store_image_read (store, *d, &err);
      if (rec == NULL)
        {
          kp_table_free (table);
          return kp_cli_fail (cli, err);
        }
      json_t *refs = json_array ();
      size_t i;
      json_t *t;
      json_array_foreach (tags, i, t)
        {
          if (strcmp (json_string_value (json_object_get (t, "digest")), *d) != 0)
            continue;
          kp_cleanup_free char *reference = NULL;
          kp_cleanup_free char *platform = NULL;
          split_tag (json_string_value (json_object_get (t, "reference")), &reference,
                     &platform);
          json_t *r = json_pack ("{s:s,s:I}", "reference", reference, "resolved",
                                 json_integer_value (json_object_get (t, "resolved")));
          json_object_set_new (r, "platform", platform ? json_string (platform) : json_null ());
          json_array_append_new (refs, r);
        }
      kp_cleanup_free char *size = kp_cli_human_bytes (rec->size);
      kp_cleanup_free char *when = format_time (rec->created);
      const char *colon = strchr (*d, ':');
      kp_cleanup_free char *short_digest = xasprintf ("%.*s:%.12s", (int) (colon - *d), *d,
                                                      colon + 1);
      kp_cleanup_free char *short_tree = xasprintf ("%.12s", rec->tree_digest);
      if (json_array_size (refs) == 0)
        {
          const char *cells[] = { "<none>", short_digest, short_tree, size, when };
          kp_table_add_row (table, cells, NULL);
        }
      json_array_foreach (refs, i, t)
        {
          const char *platform = json_string_value (json_object_get (t, "platform"));
          kp_cleanup_free char *shown = platform && strcmp (platform, host_platform) != 0
                                            ? xasprintf ("%s (%s)", json_string_value (
                                                             json_object_get (t, "reference")),
                                                         platform)
                                            : xstrdup (json_string_value (
                                                json_object_get (t, "reference")));
          const char *cells[] = { shown, short_digest, short_tree, size, when };
          kp_table_add_row (table, cells, NULL);
        }
      json_t *j = json_pack ("{s:s,s:s,s:I,s:I,s:o}", "digest", *d, "tree_digest",
                             rec->tree_digest, "size", (json_int_t) rec->size, "created",
                             (json_int_t) rec->created, "references", refs);
      json_t *source = rec->extra ? json_object_get (rec->extra, "source") : NULL;
      json_t *plat = rec->extra ? json_object_get (rec->extra, "platform") : NULL;
      json_object_set (j, "source", source ? source : json_null ());
      json_object_set (j, "platform", plat ? plat : json_null ());
      json_array_append_new (out, j);
    }
  if (cli->json)
    kp_cli_print_json (cli, out);
  else if (json_array_size (out) == 0)
    kp_cli_info (cli, "no images yet: 'karapace images pull REF' fetches one");
  else
    kp_table_print (table, stdout, cli->color_out);
  kp_table_free (table);
  return 0;
}

/* ---- images inspect ---- */

static json_t *
record_json (const kp_image_record *rec, json_t *tags)
{
  json_t *refs = json_array ();
  size_t i;
  json_t *t;
  json_array_foreach (tags, i, t)
    if (strcmp (json_string_value (json_object_get (t, "digest")), rec->digest) == 0)
      json_array_append (refs, t);
  json_t *j = json_pack ("{s:s,s:s,s:s,s:I,s:I,s:o,s:o}", "digest", rec->digest, "reference",
                         rec->reference ? rec->reference : "", "tree_digest", rec->tree_digest,
                         "size", (json_int_t) rec->size, "created", (json_int_t) rec->created,
                         "objects", kp_json_strv (rec->objects), "tags", refs);
  if (rec->extra)
    json_object_update (j, rec->extra);
  return j;
}

static int
images_inspect (kp_cli *cli, const kp_cli_command *cmd, int argc, char **argv)
{
  int parsed = kp_cli_parse_common (cli, cmd, argc, argv, false);
  if (parsed != KP_CLI_CONTINUE)
    return parsed;
  if (optind >= argc)
    return kp_cli_usage_error (cli, cmd, "name an image: a reference or a digest");
  kp_error *err = NULL;
  kp_image_config config = { 0 };
  if (kp_image_config_load (NULL, &config, &err) < 0)
    return kp_cli_fail (cli, err);
  int rc = 0;
  kp_cleanup_store kp_store *store = open_store (cli, false, NULL, &err);
  kp_cleanup_json json_t *tags = store ? kp_store_image_tags (store, &err) : NULL;
  kp_cleanup_json json_t *all = json_array ();
  for (int i = optind; tags && i < argc; i++)
    {
      kp_cleanup_free char *digest = kp_image_find (store, argv[i], config.aliases, &err);
      kp_cleanup_image_record kp_image_record *rec = digest ? kp_store_image_read (store,
                                                                                  digest, &err)
                                                            : NULL;
      if (rec == NULL)
        break;
      json_array_append_new (all, record_json (rec, tags));
    }
  if (err)
    rc = kp_cli_fail (cli, err);
  else if (cli->json)
    kp_cli_print_json (cli, all);
  else
    {
      kp_cleanup_free char *text = kp_json_pretty (json_array_size (all) == 1
                                                       ? json_array_get (all, 0) : all);
      fputs (text, stdout);
    }
  kp_image_config_clear (&config);
  return rc;
}

/* ---- images rm / prune ---- */

static int
free_unused (kp_cli *cli, kp_store *store, bool drop_cache, json_t *report, kp_error **err)
{
  kp_store_gc_options go = { .drop_cache = drop_cache };
  kp_store_gc_report rep;
  if (kp_store_gc (store, &go, &rep, err) < 0)
    {
      kp_store_gc_report_clear (&rep);
      return -1;
    }
  json_object_set_new (report, "freed_bytes",
                       json_integer ((json_int_t) (rep.freed_object_bytes
                                                   + rep.freed_layer_bytes)));
  json_object_set_new (report, "freed_layers", json_integer ((json_int_t) rep.freed_layers));
  json_object_set_new (report, "freed_objects", json_integer ((json_int_t) rep.freed_objects));
  kp_store_gc_report_clear (&rep);
  return 0;
}

static void
print_removal (kp_cli *cli, json_t *report)
{
  if (cli->json)
    {
      kp_cli_print_json (cli, report);
      return;
    }
  size_t i;
  json_t *d;
  json_array_foreach (json_object_get (report, "removed"), i, d)
    printf ("removed %s\n", json_string_value (d));
  json_array_foreach (json_object_get (report, "untagged"), i, d)
    printf ("untagged %s\n", json_string_value (d));
  kp_cleanup_free char *freed = kp_cli_human_bytes ((uint64_t) json_integer_value (
      json_object_get (report, "freed_bytes")));
  if (!cli->quiet)
    printf ("freed %s\n", freed);
}

static int
images_rm (kp_cli *cli, const kp_cli_command *cmd, int argc, char **argv)
{
  static const struct option options[] = {
    KP_CLI_COMMON_LONG_OPTIONS,
    { "force", no_argument, NULL, 'f' },
    { NULL, 0, NULL, 0 },
  };
  bool force = false;
  int c;
  while ((c = getopt_long (argc, argv, KP_CLI_COMMON_SHORT_OPTIONS "f", options, NULL)) != -1)
    {
      if (c == 'f')
        {
          force = true;
          continue;
        }
      int r = kp_cli_common_option (cli, cmd, c, optarg);
      if (r != KP_CLI_CONTINUE)
        return r;
    }
  if (optind >= argc)
    return kp_cli_usage_error (cli, cmd, "name the images to remove (references or digests)");
  kp_error *err = NULL;
  kp_image_config config = { 0 };
  if (kp_image_config_load (NULL, &config, &err) < 0)
    return kp_cli_fail (cli, err);
  kp_cleanup_json json_t *report = json_pack ("{s:[],s:[]}", "removed", "untagged");
  kp_cleanup_store kp_store *store = open_store (cli, true, "karapace images rm", &err);
  kp_cleanup_strv char **used = store ? layers_in_use (store, &err) : NULL;
  for (int i = optind; used && i < argc && err == NULL; i++)
    {
      kp_cleanup_free char *digest = kp_image_find (store, argv[i], config.aliases, &err);
      if (digest == NULL)
        break;
      kp_cleanup_image_record kp_image_record *rec = kp_store_image_read (store, digest, &err);
      if (rec == NULL)
        break;
      if (!force && kp_strv_contains (used, rec->tree_digest))
        {
          kp_error_set (&err, KP_EXIT_FAILURE, "image %s is the base of an environment", digest);
          kp_error_hint (&err, "destroy the environment first, or use --force (the layer stays "
                               "while the environment uses it)");
          break;
        }
      if (kp_store_image_remove (store, digest, &err) < 0)
        break;
      json_array_append_new (json_object_get (report, "removed"), json_string (digest));
    }
  kp_image_config_clear (&config);
  if (err || (store && free_unused (cli, store, false, report, &err) < 0))
    return kp_cli_fail (cli, err);
  print_removal (cli, report);
  return 0;
}

static int
images_prune (kp_cli *cli, const kp_cli_command *cmd, int argc, char **argv)
{
  static const struct option options[] = {
    KP_CLI_COMMON_LONG_OPTIONS,
    { "all", no_argument, NULL, 'a' },
    { NULL, 0, NULL, 0 },
  };
  bool all = false;
  int c;
  while ((c = getopt_long (argc, argv, KP_CLI_COMMON_SHORT_OPTIONS "a", options, NULL)) != -1)
    {
      if (c == 'a')
        {
          all = true;
          continue;
        }
      int r = kp_cli_common_option (cli, cmd, c, optarg);
      if (r != KP_CLI_CONTINUE)
        return r;
    }
  if (optind < argc)
    return kp_cli_usage_error (cli, cmd, "images prune takes no arguments");
  kp_error *err = NULL;
  kp_cleanup_json json_t *report = json_pack ("{s:[],s:[]}", "removed", "untagged");
  kp_cleanup_store kp_store *store = open_store (cli, true, "karapace images prune", &err);
  if (store == NULL)
    return kp_cli_fail (cli, err);
  kp_cleanup_strv char **used = layers_in_use (store, &err);
  kp_cleanup_strv char **digests = used ? kp_store_image_list (store, &err) : NULL;
  kp_cleanup_json json_t *tags = digests ? kp_store_image_tags (store, &err) : NULL;
  for (char **d = digests; tags && d && *d; d++)
    {
      kp_cleanup_image_record kp_image_record *rec = kp_store_image_read (store, *d, &err);
      if (rec == NULL)
        break;
      bool tagged = false;
      size_t i;
      json_t *t;
      json_array_foreach (tags, i, t)
        if (strcmp (json_string_value (json_object_get (t, "digest")), *d) == 0)
          tagged = true;
      if (kp_strv_contains (used, rec->tree_digest) || (tagged && !all))
        continue;
      if (kp_store_image_remove (store, *d, &err) < 0)
        break;
      json_array_append_new (json_object_get (report, "removed"), json_string (*d));
    }
  if (err || free_unused (cli, store, all, report, &err) < 0)
    return kp_cli_fail (cli, err);
  print_removal (cli, report);
  return 0;
}

/* ---- dispatch ---- */

static const kp_cli_command subcommands[] = {
  { "images list", "", "list the cached base images", KP_CMD_IMAGES_HELP, NULL },
  { "images pull", "[OPTIONS] REF", "fetch, verify and unpack a base image",
    KP_CMD_IMAGES_PULL_HELP, NULL },
  { "images inspect", "REF|DIGEST...", "show what is known of cached images", NULL, NULL },
  { "images rm", "[--force] REF|DIGEST...", "remove cached images", NULL, NULL },
  { "images prune", "[--all]", "remove images nothing uses", KP_CMD_IMAGES_PRUNE_HELP, NULL },
};

int
kp_cmd_images (kp_cli *cli, const kp_cli_command *cmd, int argc, char **argv)
{
  const char *sub = argc > 1 && argv[1][0] != '-' ? argv[1] : NULL;
  if (sub == NULL)
    {
      /* `karapace images [--json]` lists; `karapace images --help` explains. */
      for (int i = 1; i < argc; i++)
        if (strcmp (argv[i], "--help") == 0 || strcmp (argv[i], "-h") == 0)
          {
            kp_cli_print_command_help (cli, cmd, stdout);
            return 0;
          }
      return images_list (cli, &subcommands[0], argc, argv);
    }
  int (*fns[]) (kp_cli *, const kp_cli_command *, int, char **) = {
    images_list, images_pull, images_inspect, images_rm, images_prune,
  };
  for (size_t i = 0; i < KP_N_ELEMENTS (subcommands); i++)
    if (strcmp (subcommands[i].name + strlen ("images "), sub) == 0)
      return fns[i] (cli, &subcommands[i], argc - 1, argv + 1);
  return kp_cli_usage_error (cli, cmd, "unknown images command '%s' (list, pull, inspect, rm, "
                                       "prune)", sub);
}
