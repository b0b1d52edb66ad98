/* policy.h — the security model (docs/security.md) as code.
 *
 * One policy object holds the mount allow-list, the device allow-list, the resource
 * ceilings and the environment variable allow- and deny-lists. It starts from built-in
 * defaults and may be tightened or widened by the [policy] table of the user's
 * configuration file (~/.config/karapace/config.toml, or $KARAPACE_CONFIG). The same
 * checks run when a manifest is validated or built and again, on resolved paths, when an
 * environment starts. Exceeding a ceiling is an error, never a silent cap. */
#ifndef KP_POLICY_POLICY_H
#define KP_POLICY_POLICY_H

#include "schema/manifest.h"

typedef struct kp_policy
{
  char **mount_prefixes;  /* absolute, normalised */
  char **device_patterns; /* fnmatch(3) patterns over absolute device paths */
  int64_t max_cpu_shares;
  int64_t max_memory_limit_mb;
  int64_t max_pids;
  char **env_allow; /* always passed when set on the host */
  char **env_deny;  /* never passed, never set; wins over everything */
  char *source;     /* configuration file the policy was read from, or NULL */
} kp_policy;

/* The built-in policy. */
kp_policy *kp_policy_new_default (void);
/* The built-in policy adjusted by a configuration file. With path NULL: $KARAPACE_CONFIG,
 * else $XDG_CONFIG_HOME/karapace/config.toml; a missing default file is not an error. */
kp_policy *kp_policy_load (const char *path, kp_error **err);
void kp_policy_free (kp_policy *p);
void kp_policy_freep (kp_policy **p);
#define kp_cleanup_policy __attribute__ ((cleanup (kp_policy_freep)))

/* The default configuration file path (newly allocated). */
char *kp_policy_default_config_path (void);

/* Check a loaded manifest: mounts, custom mounts, devices, ceilings, variables. Errors
 * point at the manifest's line and column. */
int kp_policy_check_manifest (const kp_policy *p, const kp_manifest *m, kp_error **err);

/* The host path of a mount or custom mount as an absolute, normalised path: "~" is the
 * caller's home, relative paths are relative to the manifest's directory. */
char *kp_policy_resolve_host_path (const kp_manifest *m, const char *host);
/* Is this absolute, normalised host path one the policy lets an environment mount? */
bool kp_policy_mount_allowed (const kp_policy *p, const kp_manifest *m, const char *abs_path);
bool kp_policy_device_allowed (const kp_policy *p, const char *device);
/* Is the variable denied? SSH_AUTH_SOCK is let through when ssh_agent is true. */
bool kp_policy_env_denied (const kp_policy *p, const char *name, bool ssh_agent);

#endif
