/* environ.c — build a sandbox's environment from the policy, the manifest and the host
 * (environ.h). A small list of NAME → VALUE pairs, replaced in place when a later step
 * sets a name again, sorted at the end. */
#include "environ.h"

#include <stdlib.h>
#include <string.h>

typedef struct env_list
{
  char **names;
  char **values;
  size_t len, cap;
} env_list;

static void
env_list_clear (env_list *l)
{
  for (size_t i = 0; i < l->len; i++)
    {
      free (l->names[i]);
      free (l->values[i]);
    }
  free (l->names);
  free (l->values);
  memset (l, 0, sizeof *l);
}

static void
env_list_put (env_list *l, const char *name, const char *value)
{
  for (size_t i = 0; i < l->len; i++)
    if (strcmp (l->names[i], name) == 0)
      {
        free (l->values[i]);
        l->values[i] = xstrdup (value);
        return;
      }
  if (l->len == l->cap)
    {
      l->cap = l->cap ? l->cap * 2 : 16;
      l->names = xreallocarray (l->names, l->cap, sizeof *l->names);
      l->values = xreallocarray (l->values, l->cap, sizeof *l->values);
    }
  l->names[l->len] = xstrdup (name);
  l->values[l->len] = xstrdup (value);
  l->len++;
}

/* The host's value of name (the first entry, as getenv(3) finds it), or NULL. */
static const char *
host_lookup (char *const host_env[], const char *name)
{
  if (host_env == NULL)
    return NULL;
  size_t n = strlen (name);
  for (size_t i = 0; host_env[i]; i++)
    if (strncmp (host_env[i], name, n) == 0 && host_env[i][n] == '=')
      return host_env[i] + n + 1;
  return NULL;
}

typedef struct build_ctx
{
  const kp_policy *policy;
  bool ssh_agent;
  env_list list;
} build_ctx;

/* Set name to value unless the deny-list says no. from_host: the value comes from the
 * host (the ssh_agent exception applies); otherwise it is one the manifest sets. */
static void
put_checked (build_ctx *c, const char *name, const char *value, bool from_host)
{
  if (value == NULL || !kp_env_name_valid (name))
    return;
  if (kp_policy_env_denied (c->policy, name, from_host && c->ssh_agent))
    return;
  env_list_put (&c->list, name, value);
}

/* Order "NAME=VALUE" entries by NAME alone: comparing whole entries would put "A1=" before
 * "A=", since digits sort below '='. */
static int
compare_names (const void *a, const void *b)
{
  const char *x = *(char *const *) a, *y = *(char *const *) b;
  size_t nx = strcspn (x, "="), ny = strcspn (y, "=");
  int c = memcmp (x, y, nx < ny ? nx : ny);
  if (c != 0)
    return c;
  return nx < ny ? -1 : nx > ny ? 1 : 0;
}

char **
kp_environ_build (const kp_policy *p, const kp_manifest *m, char *const host_env[],
                  const kp_environ_overrides *overrides, kp_error **err)
{
  build_ctx c = { p, m != NULL && kp_manifest_bool (m, KP_OPT_HOST_SSH_AGENT), { 0 } };

  for (size_t i = 0; p->env_allow && p->env_allow[i]; i++)
    put_checked (&c, p->env_allow[i], host_lookup (host_env, p->env_allow[i]), true);

  if (m != NULL)
    {
      if (c.ssh_agent)
        put_checked (&c, "SSH_AUTH_SOCK", host_lookup (host_env, "SSH_AUTH_SOCK"), true);

      const kp_setting *pass = kp_manifest_setting (m, KP_OPT_ENV_PASS);
      for (size_t i = 0; i < pass->list_len; i++)
        {
          const char *name = pass->list[i].value;
          if (!kp_env_name_valid (name))
            {
              env_list_clear (&c.list);
              kp_error_set (err, KP_EXIT_MANIFEST, "env.pass: \"%s\" is not a valid name", name);
              return NULL;
            }
          put_checked (&c, name, host_lookup (host_env, name), true);
        }

      const kp_setting *set = kp_manifest_setting (m, KP_OPT_ENV_SET);
      for (size_t i = 0; i < set->map_len; i++)
        {
          if (!kp_env_name_valid (set->map[i].key))
            {
              env_list_clear (&c.list);
              kp_error_set (err, KP_EXIT_MANIFEST, "env.set: \"%s\" is not a valid name",
                            set->map[i].key);
              return NULL;
            }
          put_checked (&c, set->map[i].key, set->map[i].value, false);
        }
    }

  if (overrides != NULL)
    {
      put_checked (&c, "HOME", overrides->home, false);
      put_checked (&c, "USER", overrides->user, false);
      put_checked (&c, "SHELL", overrides->shell, false);
      put_checked (&c, "PATH", overrides->path, false);
      if (c.ssh_agent)
        put_checked (&c, "SSH_AUTH_SOCK", overrides->ssh_auth_sock, true);
    }

  char **env = xcalloc (c.list.len + 1, sizeof *env);
  for (size_t i = 0; i < c.list.len; i++)
    env[i] = xasprintf ("%s=%s", c.list.names[i], c.list.values[i]);
  qsort (env, c.list.len, sizeof *env, compare_names);
  env_list_clear (&c.list);
  return env;
}
