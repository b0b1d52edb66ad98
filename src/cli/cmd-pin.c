/* cmd-pin.c — `karapace pin [MANIFEST] [--check]`: write the base image's content digest
 * into the manifest, so that the manifest names fixed content. */
#include "commands.h"

#include "base/fs.h"
#include "image/image-config.h"
#include "image/pull.h"
#include "schema/manifest.h"
#include "store/store.h"

#include <string.h>
#include <unistd.h>

/* Byte offset of 1-based (line, column in characters) in text, or -1. */
static ssize_t
offset_of (const char *text, size_t len, int line, int column)
{
  size_t i = 0;
  for (int l = 1; l < line; l++)
    {
      const char *nl = memchr (text + i, '\n', len - i);
      if (nl == NULL)
        return -1;
      i = (size_t) (nl - text) + 1;
    }
  for (int c = 1; c < column && i < len; c++)
    {
      /* Skip one UTF-8 character. */
      i++;
      while (i < len && ((unsigned char) text[i] & 0xC0) == 0x80)
        i++;
    }
  return i < len ? (ssize_t) i : -1;
}

/* The end (one past the closing quote) of the TOML string starting at text[start]. */
static ssize_t
string_end (const char *text, size_t len, size_t start)
{
  char q = text[start];
  if (q != '"' && q != '\'')
    return -1;
  if (start + 2 < len && text[start + 1] == q && text[start + 2] == q)
    return -1; /* multi-line strings are not rewritten */
  for (size_t i = start + 1; i < len && text[i] != '\n'; i++)
    {
      if (q == '"' && text[i] == '\\')
        {
          i++;
          continue;
        }
      if (text[i] == q)
        return (ssize_t) i + 1;
    }
  return -1;
}

int
kp_cmd_pin (kp_cli *cli, const kp_cli_command *cmd, int argc, char **argv)
{
  static const struct option options[] = {
    KP_CLI_COMMON_LONG_OPTIONS,
    { "check", no_argument, NULL, 'c' },
    { "offline", no_argument, NULL, 'o' },
    { "tls-verify", required_argument, NULL, 't' },
    { NULL, 0, NULL, 0 },
  };
  bool check = false;
  kp_pull_options po = { .tls_verify = -1 };
  int c;
  while ((c = getopt_long (argc, argv, KP_CLI_COMMON_SHORT_OPTIONS, options, NULL)) != -1)
    {
      if (c == 'c')
        {
          check = true;
          continue;
        }
      if (c == 'o')
        {
          po.offline = true;
          continue;
        }
      if (c == 't')
        {
          if (strcmp (optarg, "false") == 0)
            po.tls_verify = 0;
          else if (strcmp (optarg, "true") == 0)
            po.tls_verify = 1;
          else
            return kp_cli_usage_error (cli, cmd, "--tls-verify takes true or false");
          continue;
        }
      int r = kp_cli_common_option (cli, cmd, c, optarg);
      if (r != KP_CLI_CONTINUE)
        return r;
    }
  if (optind + 1 < argc)
    return kp_cli_usage_error (cli, cmd, "pin takes at most one manifest");
  const char *path = optind < argc ? argv[optind] : "karapace.toml";

  kp_error *err = NULL;
  kp_cleanup_manifest kp_manifest *m = kp_manifest_load (path, &err);
  if (m == NULL)
    return kp_cli_fail (cli, err);
  const kp_setting *s = kp_manifest_setting (m, KP_OPT_BASE_IMAGE);
  kp_image_config config = { 0 };
  if (kp_image_config_load (NULL, &config, &err) < 0)
    return kp_cli_fail (cli, err);
  po.config = &config;
  po.progress = !cli->quiet && !cli->json && isatty (STDERR_FILENO);
  int rc = 1;
  kp_cleanup_image_ref kp_image_ref ref = { 0 };
  kp_cleanup_pull_result kp_pull_result res = { 0 };
  kp_cleanup_free char *text = NULL;
  if (kp_image_ref_parse (s->string, m->dir, config.aliases, &ref, &err) < 0)
    {
      kp_error_prefix (&err, "%s:%d:%d: [base] image", path, s->pos.line, s->pos.column);
      goto fail;
    }
  bool pinned = kp_image_ref_is_pinned (&ref);
  if (check)
    {
      if (cli->json)
        {
          kp_cleanup_json json_t *j = json_pack ("{s:s,s:s,s:b}", "manifest", path, "image",
                                                 s->string, "pinned", pinned);
          kp_cli_print_json (cli, j);
        }
      else if (pinned)
        printf ("%s: the base image is pinned: %s\n", path, s->string);
      else
        printf ("%s: the base image is not pinned: %s (run 'karapace pin %s')\n", path,
                s->string, path);
      kp_image_config_clear (&config);
      return pinned ? 0 : 1;
    }
  if (!s->present)
    {
      kp_error_set (&err, KP_EXIT_MANIFEST, "%s has no [base] image to pin", path);
      goto fail;
    }
  if (ref.kind == KP_REF_DEBIAN)
    {
      kp_error_set (&err, KP_EXIT_FAILURE, "%s is bootstrapped from a mirror: it has no "
                    "single digest to write into the manifest", s->string);
      kp_error_hint (&err, "the lock pins it: the mirror, the signed Release's hash and every "
                           "package's SHA256 ('karapace images inspect %s' shows them)",
                     s->string);
      goto fail;
    }
  {
    kp_store_open_options o = { .flags = KP_STORE_WRITE, .purpose = "karapace pin" };
    kp_cleanup_store kp_store *store = kp_store_open_with (cli->store, &o, &err);
    if (store == NULL || kp_image_pull (store, &ref, &po, &res, &err) < 0)
      goto fail;
  }
  if (res.pinned == NULL)
    {
      kp_error_set (&err, KP_EXIT_FAILURE, "a %s image cannot be pinned by digest",
                    kp_ref_kind_name (ref.kind));
      kp_error_hint (&err, "pack it as a tarball (file://…#sha256=…) or push it to a registry "
                           "to name fixed content");
      goto fail;
    }
  size_t len = 0;
  text = kp_file_read (path, 16 << 20, &len, &err);
  if (text == NULL)
    goto fail;
  ssize_t start = offset_of (text, len, s->pos.line, s->pos.column);
  ssize_t end = start >= 0 ? string_end (text, len, (size_t) start) : -1;
  if (end < 0)
    {
      kp_error_at (&err, path, s->pos.line, s->pos.column, "cannot rewrite this value: pin "
                   "rewrites a one-line string");
      goto fail;
    }
  bool changed = strcmp (s->string, res.pinned) != 0;
  if (changed)
    {
      kp_buf b = KP_BUF_INIT;
      kp_buf_append (&b, text, (size_t) start);
      kp_buf_printf (&b, "\"%s\"", res.pinned);
      kp_buf_append (&b, text + end, len - (size_t) end);
      int w = kp_file_write_atomic (path, b.data, b.len, 0644, false, &err);
      kp_buf_clear (&b);
      if (w < 0)
        goto fail;
    }
  if (cli->json)
    {
      kp_cleanup_json json_t *j = json_pack ("{s:s,s:s,s:s,s:s,s:s,s:b}", "manifest", path,
                                             "was", s->string, "image", res.pinned, "digest",
                                             res.digest, "tree_digest", res.tree_digest,
                                             "changed", changed);
      kp_cli_print_json (cli, j);
    }
  else if (changed)
    printf ("%s: [base] image = \"%s\"\n", path, res.pinned);
  else
    printf ("%s: already pinned: %s\n", path, res.pinned);
  kp_image_config_clear (&config);
  return 0;
fail:
  kp_image_config_clear (&config);
  rc = kp_cli_fail (cli, err);
  return rc;
}
