/* environ.h — the environment a sandboxed command starts with.
 *
 * Never the host's environment: the result starts empty and receives, in this order,
 *   1. the policy's allow-list (TERM LANG HOME USER PATH SHELL XDG_RUNTIME_DIR, plus what
 *      the configuration file adds) from the host;
 *   2. SSH_AUTH_SOCK from the host when the manifest sets host.ssh_agent;
 *   3. the manifest's env.pass names from the host;
 *   4. the manifest's env.set values;
 *   5. the caller's overrides (HOME, USER, SHELL, PATH for the user inside, and the
 *      agent socket's path inside).
 * A later step replaces an earlier one's value. The policy's deny-list wins over all of
 * them (kp_policy_env_denied, so SSH_AUTH_SOCK only with ssh_agent, and never from
 * env.set); host entries that are not NAME=VALUE with a valid name are ignored. The
 * result is sorted by name, so the same inputs always give the same bytes. */
#ifndef KP_SANDBOX_ENVIRON_H
#define KP_SANDBOX_ENVIRON_H

#include "policy/policy.h"

typedef struct kp_environ_overrides
{
  const char *home; /* each NULL: keep what the steps above gave */
  const char *user;
  const char *shell;
  const char *path;
  const char *ssh_auth_sock; /* the agent socket's path inside, used with ssh_agent only */
} kp_environ_overrides;

/* Build the environment as a NULL-terminated, sorted "NAME=VALUE" vector (free with
 * kp_strv_free). m may be NULL (no manifest: steps 2-4 are skipped), host_env may be NULL
 * (empty), overrides may be NULL. Fails only on an invalid variable name in the
 * manifest, which the manifest loader already refuses. */
char **kp_environ_build (const kp_policy *p, const kp_manifest *m, char *const host_env[],
                         const kp_environ_overrides *overrides, kp_error **err);

#endif
