/* test-image-config.c — the image part of config.toml: every key and its normal form, the
 * defaults when there is no file, where the file is looked for, alias overrides seen
 * through the alias table, registry lookup, and each error at its line and column. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "image/image-config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[] = "/tmp/kp-test-image-config-XXXXXX";

static int
setup (void **state)
{
  (void) state;
  if (mkdtemp (tmpdir) == NULL)
    return -1;
  /* Nothing from the environment of the person running the tests. */
  unsetenv ("KARAPACE_CONFIG");
  setenv ("XDG_CONFIG_HOME", tmpdir, 1);
  return 0;
}

static int
teardown (void **state)
{
  (void) state;
  char cmd[256];
  snprintf (cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  return system (cmd) == 0 ? 0 : -1;
}

static char *
write_file (const char *name, const char *text)
{
  char *path = NULL;
  assert_true (asprintf (&path, "%s/%s", tmpdir, name) > 0);
  FILE *f = fopen (path, "w");
  assert_non_null (f);
  assert_int_equal (fputs (text, f) >= 0, 1);
  assert_int_equal (fclose (f), 0);
  return path;
}

static void
assert_defaults (const kp_image_config *c)
{
  assert_string_equal (c->lxc_server, "images.linuxcontainers.org");
  assert_string_equal (c->debian_mirror, "http://deb.debian.org/debian");
  assert_string_equal (c->ubuntu_mirror, "http://archive.ubuntu.com/ubuntu");
  assert_string_equal (c->keyring_dir, "/usr/share/keyrings");
  assert_int_equal (c->n_registries, 0);
  assert_null (kp_image_config_registry (c, "docker.io"));
  assert_non_null (c->aliases);
  assert_string_equal (kp_image_aliases_lookup (c->aliases, "debian/bookworm"),
                       "debian:bookworm");
}

static void
test_every_key (void **state)
{
  (void) state;
  char *file = write_file ("every.toml",
                           "[policy]\n"
                           "allowed_mount_prefixes = [\"/tmp\"]\n"
                           "\n"
                           "[images]\n"
                           "lxc_server = \"http://127.0.0.1:8080/\"\n"
                           "\n"
                           "[images.aliases]\n"
                           "\"debian/bookworm\" = "
                           "\"docker://mirror.example/library/debian:bookworm\"\n"
                           "\"team/base\" = \"lxc:debian/trixie\"\n"
                           "\n"
                           "[registries.\"docker.io\"]\n"
                           "mirrors = [\"mirror.gcr.io\", \"mirror.example:5000/hub/cache\"]\n"
                           "\n"
                           "[registries.\"registry.local:5000\"]\n"
                           "insecure = true\n"
                           "\n"
                           "[registries.\"[::1]:5000\"]\n"
                           "insecure = false\n"
                           "mirrors = []\n"
                           "\n"
                           "[mirrors]\n"
                           "debian = \"https://deb.example.org/debian/\"\n"
                           "ubuntu = \"http://ubuntu.example.org:8080/ubuntu\"\n"
                           "keyring_dir = \"/srv//keyrings/\"\n");
  kp_image_config c;
  kp_error *err = NULL;
  if (kp_image_config_load (file, &c, &err) < 0)
    fail_msg ("%s", err->message);
  assert_string_equal (c.path, file);
  /* Trailing slashes go: the value is a base URL that paths are appended to. */
  assert_string_equal (c.lxc_server, "http://127.0.0.1:8080");

  /* The override replaces the built-in alias; the others stay; the new one is added. */
  assert_string_equal (kp_image_aliases_lookup (c.aliases, "debian/bookworm"),
                       "docker://mirror.example/library/debian:bookworm");
  assert_string_equal (kp_image_aliases_lookup (c.aliases, "team/base"),
                       "lxc://images.linuxcontainers.org/debian/trixie/default");
  kp_cleanup_image_aliases kp_image_aliases *defaults = kp_image_aliases_new_default ();
  for (size_t i = 0; i < defaults->n; i++)
    assert_non_null (kp_image_aliases_lookup (c.aliases, defaults->names[i]));
  /* Resolution through the table sees the override. */
  kp_image_ref ref;
  assert_int_equal (kp_image_ref_parse ("debian/bookworm", NULL, c.aliases, &ref, NULL), 0);
  assert_string_equal (ref.canonical, "docker://mirror.example/library/debian:bookworm");
  assert_string_equal (ref.alias, "debian/bookworm");
  kp_image_ref_clear (&ref);

  assert_int_equal (c.n_registries, 3);
  const kp_registry_config *hub = kp_image_config_registry (&c, "docker.io");
  assert_non_null (hub);
  assert_false (hub->insecure);
  assert_non_null (hub->mirrors);
  assert_string_equal (hub->mirrors[0], "mirror.gcr.io");
  assert_string_equal (hub->mirrors[1], "mirror.example:5000/hub/cache");
  assert_null (hub->mirrors[2]);
  const kp_registry_config *local = kp_image_config_registry (&c, "registry.local:5000");
  assert_non_null (local);
  assert_string_equal (local->host, "registry.local:5000");
  assert_true (local->insecure);
  assert_null (local->mirrors);
  const kp_registry_config *v6 = kp_image_config_registry (&c, "[::1]:5000");
  assert_non_null (v6);
  assert_non_null (v6->mirrors);
  assert_null (v6->mirrors[0]);
  /* Hosts are compared exactly: the port is part of the name. */
  assert_null (kp_image_config_registry (&c, "registry.local"));
  assert_null (kp_image_config_registry (&c, "registry.local:5001"));
  assert_null (kp_image_config_registry (NULL, "docker.io"));

  assert_string_equal (c.debian_mirror, "https://deb.example.org/debian");
  assert_string_equal (c.ubuntu_mirror, "http://ubuntu.example.org:8080/ubuntu");
  assert_string_equal (c.keyring_dir, "/srv/keyrings");
  kp_image_config_clear (&c);
  assert_null (c.path);
  assert_null (c.aliases);
  kp_image_config_clear (&c); /* twice is harmless */
  free (file);
}

static void
test_lxc_server_forms (void **state)
{
  (void) state;
  static const struct
  {
    const char *value, *stored;
  } cases[] = {
    { "images.example.org", "images.example.org" },
    { "images.example.org:8443/", "images.example.org:8443" },
    { "https://images.example.org/lxc/", "https://images.example.org/lxc" },
    { "http://localhost:8080", "http://localhost:8080" },
    { "http://[::1]:8080", "http://[::1]:8080" },
    { "127.0.0.1:8080", "127.0.0.1:8080" },
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
    {
      char text[256];
      snprintf (text, sizeof text, "[images]\nlxc_server = \"%s\"\n", cases[i].value);
      char *file = write_file ("lxc.toml", text);
      kp_image_config c;
      kp_error *err = NULL;
      if (kp_image_config_load (file, &c, &err) < 0)
        fail_msg ("case %zu: %s", i, err->message);
      assert_string_equal (c.lxc_server, cases[i].stored);
      kp_image_config_clear (&c);
      free (file);
    }
}

static void
test_defaults_without_file (void **state)
{
  (void) state;
  /* XDG_CONFIG_HOME is the empty temporary directory: no karapace/config.toml. */
  kp_image_config c;
  kp_error *err = NULL;
  assert_int_equal (kp_image_config_load (NULL, &c, &err), 0);
  assert_null (err);
  assert_null (c.path);
  assert_defaults (&c);
  kp_image_config_clear (&c);

  /* $KARAPACE_CONFIG naming a file that does not exist: the defaults as well. */
  setenv ("KARAPACE_CONFIG", "/nonexistent/karapace/config.toml", 1);
  assert_int_equal (kp_image_config_load (NULL, &c, &err), 0);
  assert_null (c.path);
  assert_defaults (&c);
  kp_image_config_clear (&c);
  unsetenv ("KARAPACE_CONFIG");

  /* A missing file named explicitly is an error. */
  assert_int_equal (kp_image_config_load ("/nonexistent/config.toml", &c, &err), -1);
  assert_non_null (err);
  assert_non_null (strstr (err->message, "/nonexistent/config.toml"));
  assert_int_equal (err->errno_value, ENOENT);
  assert_null (c.aliases);
  assert_null (c.lxc_server);
  kp_error_free (err);

  /* An empty file is the defaults too, but it was read. */
  char *file = write_file ("empty.toml", "");
  assert_int_equal (kp_image_config_load (file, &c, NULL), 0);
  assert_string_equal (c.path, file);
  assert_defaults (&c);
  kp_image_config_clear (&c);
  free (file);
}

static void
test_search_path (void **state)
{
  (void) state;
  char dir[512];
  snprintf (dir, sizeof dir, "%s/karapace", tmpdir);
  assert_int_equal (mkdir (dir, 0700), 0);
  char *xdg = write_file ("karapace/config.toml", "[images]\nlxc_server = \"xdg.example\"\n");
  char *env = write_file ("env.toml", "[images]\nlxc_server = \"env.example\"\n");

  kp_image_config c;
  assert_int_equal (kp_image_config_load (NULL, &c, NULL), 0);
  assert_string_equal (c.path, xdg);
  assert_string_equal (c.lxc_server, "xdg.example");
  kp_image_config_clear (&c);

  /* $KARAPACE_CONFIG comes first. */
  setenv ("KARAPACE_CONFIG", env, 1);
  assert_int_equal (kp_image_config_load (NULL, &c, NULL), 0);
  assert_string_equal (c.path, env);
  assert_string_equal (c.lxc_server, "env.example");
  kp_image_config_clear (&c);
  /* An empty $KARAPACE_CONFIG is as good as unset. */
  setenv ("KARAPACE_CONFIG", "", 1);
  assert_int_equal (kp_image_config_load (NULL, &c, NULL), 0);
  assert_string_equal (c.path, xdg);
  kp_image_config_clear (&c);
  unsetenv ("KARAPACE_CONFIG");

  /* An explicit path wins over both. */
  char *explicit = write_file ("explicit.toml", "");
  assert_int_equal (kp_image_config_load (explicit, &c, NULL), 0);
  assert_string_equal (c.path, explicit);
  assert_string_equal (c.lxc_server, "images.linuxcontainers.org");
  kp_image_config_clear (&c);

  unlink (xdg);
  rmdir (dir);
  free (xdg);
  free (env);
  free (explicit);
}

typedef struct bad_case
{
  const char *text;
  int line, column;
  const char *message; /* a part of the message */
  const char *hint;    /* a part of the hint, or NULL */
} bad_case;

static void
test_errors (void **state)
{
  (void) state;
  static const bad_case cases[] = {
    /* Unknown keys and tables, with a "did you mean". */
    { "[imagse]\n", 1, 2, "unknown table \"imagse\" in the configuration file",
      "did you mean \"images\"?" },
    { "[other]\n", 1, 2, "unknown table \"other\"", "policy, images, registries, mirrors" },
    { "debug = true\n", 1, 1, "unknown key \"debug\" in the configuration file", NULL },
    { "[images]\nlxc_servr = \"x\"\n", 2, 1, "unknown key \"lxc_servr\" in [images]",
      "did you mean \"lxc_server\"?" },
    { "[registries.\"h\"]\nmirror = []\n", 2, 1, "unknown key \"mirror\" in [registries.\"h\"]",
      "did you mean \"mirrors\"?" },
    { "[mirrors]\nubunt = \"http://x\"\n", 2, 1, "unknown key \"ubunt\" in [mirrors]",
      "did you mean \"ubuntu\"?" },
    /* Wrong types, at the value. */
    { "[images]\nlxc_server = 5\n", 2, 14, "images.lxc_server must be a string, not integer",
      NULL },
    { "images = [1]\n", 1, 10, "images must be a table, not array", NULL },
    { "[images]\naliases = \"x\"\n", 2, 11, "images.aliases must be a table", NULL },
    { "[images.aliases]\n\"x\" = 3\n", 2, 7, "images.aliases.\"x\" must be a string", NULL },
    { "registries = 1\n", 1, 14, "registries must be a table", NULL },
    { "[registries]\n\"h\" = 1\n", 2, 7, "registries.\"h\" must be a table, not integer", NULL },
    { "[registries.\"h\"]\ninsecure = \"yes\"\n", 2, 12,
      "registries.\"h\".insecure must be true or false, not string", NULL },
    { "[registries.\"h\"]\nmirrors = \"m.example\"\n", 2, 11,
      "registries.\"h\".mirrors must be an array", NULL },
    { "[mirrors]\nkeyring_dir = []\n", 2, 15, "mirrors.keyring_dir must be a string", NULL },
    { "[images]\nlxc_server = \"\"\n", 2, 14, "must be a non-empty string", NULL },
    { "policy = 1\n", 1, 10, "policy must be a table", NULL },
    /* Values that do not validate. */
    { "[images]\nlxc_server = \"http://images.example.org\"\n", 2, 14,
      "plain HTTP is only allowed for a loopback host", "https://images.example.org" },
    { "[images]\nlxc_server = \"Images.Example.org\"\n", 2, 14, "is not HOST[:PORT]", NULL },
    { "[images]\nlxc_server = \"images.example.org/lxc\"\n", 2, 14, "is not HOST[:PORT]",
      NULL },
    { "[images]\nlxc_server = \"ftp://images.example.org\"\n", 2, 14,
      "is not an https://HOST[:PORT][/PATH] URL", NULL },
    { "[images]\nlxc_server = \"https://images.example.org/../x\"\n", 2, 14,
      "is not an https://", NULL },
    { "[images]\nlxc_server = \"https://user@images.example.org\"\n", 2, 14,
      "is not an https://", NULL },
    { "[images]\nlxc_server = \"images.example.org:0\"\n", 2, 14, "is not HOST[:PORT]", NULL },
    /* Aliases: a bad target at the value, a bad name at the key; the reason is the
       reference parser's. */
    { "[images.aliases]\n\"x/y\" = \"ftp://nope\"\n", 2, 9, "image alias 'x/y'", NULL },
    { "[images.aliases]\n\"x\" = \"./rootfs.tar\"\n", 2, 7, "image alias 'x'", NULL },
    { "[images.aliases]\n\"Bad\" = \"docker://a.example/b:c\"\n", 2, 1,
      "image alias 'Bad': must start with a lowercase letter", NULL },
    { "[images.aliases]\n\"a b\" = \"docker://a.example/b:c\"\n", 2, 1, "invalid character ' '",
      NULL },
    /* Registry hosts, at the key. */
    { "[registries.\"UPPER.example\"]\n", 1, 13, "\"UPPER.example\" is not a registry host",
      "HOST[:PORT] in lowercase" },
    { "[registries.\"h.example:99999\"]\n", 1, 13, "is not a registry host", NULL },
    { "[registries.\"https://h.example\"]\n", 1, 13, "is not a registry host", NULL },
    { "[registries]\n\"h..example\" = {}\n", 2, 1, "is not a registry host", NULL },
    /* Registry mirrors, at the element. */
    { "[registries.\"h\"]\nmirrors = [\"ok.example\", \"https://bad.example\"]\n", 2, 26,
      "'https://bad.example' is not HOST[:PORT][/PREFIX]", "no scheme" },
    { "[registries.\"h\"]\nmirrors = [\"m.example/Hub\"]\n", 2, 12, "is not HOST[:PORT][/PREFIX]",
      NULL },
    { "[registries.\"h\"]\nmirrors = [\"m.example/a/../b\"]\n", 2, 12, "is not HOST", NULL },
    { "[registries.\"h\"]\nmirrors = [\"m.example/\"]\n", 2, 12, "is not HOST", NULL },
    { "[registries.\"h\"]\nmirrors = [1]\n", 2, 12, "every mirror must be a string, not integer",
      NULL },
    /* Debian and Ubuntu mirrors, the keyring directory. */
    { "[mirrors]\ndebian = \"ftp://x\"\n", 2, 10, "mirrors.debian: 'ftp://x' is not an http(s)://",
      NULL },
    { "[mirrors]\nubuntu = \"deb.example.org/ubuntu\"\n", 2, 10, "mirrors.ubuntu", NULL },
    { "[mirrors]\ndebian = \"http://deb.example.org/debian?x\"\n", 2, 10, "mirrors.debian", NULL },
    { "[mirrors]\nkeyring_dir = \"keys\"\n", 2, 15, "mirrors.keyring_dir must be an absolute path",
      NULL },
    /* Not TOML at all: the parser's error, at its place. */
    { "[images]\nlxc_server = \"x\n", 2, 0, "", NULL },
    { "[images]\n[images]\n", 2, 0, "", NULL },
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
    {
      const bad_case *b = &cases[i];
      char *file = write_file ("bad.toml", b->text);
      kp_image_config c;
      kp_error *err = NULL;
      memset (&c, 0xaa, sizeof c);
      if (kp_image_config_load (file, &c, &err) != -1)
        fail_msg ("case %zu: accepted:\n%s", i, b->text);
      /* Nothing is left half-filled. */
      assert_null (c.path);
      assert_null (c.aliases);
      assert_null (c.registries);
      assert_int_equal (c.n_registries, 0);
      assert_non_null (err);
      assert_int_equal (err->status, KP_EXIT_MANIFEST);
      assert_string_equal (err->file, file);
      if (err->line != b->line || (b->column && err->column != b->column))
        fail_msg ("case %zu: error at %d:%d, expected %d:%d (%s)", i, err->line, err->column,
                  b->line, b->column, err->message);
      if (strstr (err->message, b->message) == NULL)
        fail_msg ("case %zu: message '%s' lacks '%s'", i, err->message, b->message);
      if (b->hint && (err->hint == NULL || strstr (err->hint, b->hint) == NULL))
        fail_msg ("case %zu: hint '%s' lacks '%s'", i, err->hint ? err->hint : "(none)",
                  b->hint);
      /* What the user reads starts with FILE:LINE:COLUMN. */
      char *described = kp_error_describe (err);
      char prefix[600];
      snprintf (prefix, sizeof prefix, "%s:%d:", file, b->line);
      if (strncmp (described, prefix, strlen (prefix)) != 0)
        fail_msg ("case %zu: '%s' does not start with '%s'", i, described, prefix);
      free (described);
      kp_error_free (err);
      unlink (file);
      free (file);
    }
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_every_key),
    cmocka_unit_test (test_lxc_server_forms),
    cmocka_unit_test (test_defaults_without_file),
    cmocka_unit_test (test_search_path),
    cmocka_unit_test (test_errors),
  };
  return cmocka_run_group_tests (tests, setup, teardown);
}
