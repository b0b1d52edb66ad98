/* options.h — the option schema: every manifest option described once.
 *
 * One table gives each option its key, type, default, allowed values, range, help text and
 * flags. The manifest loader validates against it, the normaliser and the lock walk it in
 * order, env_id hashes the options marked KP_OPTF_IDENTITY in table order, and
 * docs/manifest.md is generated from it (`karapace validate --schema`); the CLI flags and
 * the D-Bus a{sv} validation will read the same table. Adding an option means adding a row
 * here and a line to the identity version notes, nothing else. */
#ifndef KP_SCHEMA_OPTIONS_H
#define KP_SCHEMA_OPTIONS_H

#include "base/util.h"

typedef enum kp_option_type
{
  KP_OPT_BOOL,
  KP_OPT_INT,
  KP_OPT_STRING,
  KP_OPT_ENUM,        /* a string from `choices` */
  KP_OPT_STRING_LIST, /* array of strings; normalised sorted and without duplicates */
  KP_OPT_STRING_MAP,  /* table of string values; normalised sorted by key */
} kp_option_type;

enum kp_option_flags
{
  KP_OPTF_ORIGINAL = 1 << 0, /* defined by the original Karapace manifest: must parse unchanged */
  KP_OPTF_REQUIRED = 1 << 1, /* must be present */
  KP_OPTF_IDENTITY = 1 << 2, /* part of the lock settings and env_id */
  KP_OPTF_ORDERED = 1 << 3,  /* list whose order matters (not sorted when normalised) */
};

/* Stable ids: the order of this enum is the order of the table, of the normalised
 * output, of the lock's settings and of the env_id serialisation. Never reorder; append. */
typedef enum kp_option_id
{
  KP_OPT_MANIFEST_VERSION,
  KP_OPT_NAME,
  KP_OPT_BASE_IMAGE,
  KP_OPT_SYSTEM_PACKAGES,
  KP_OPT_GUI_APPS,
  KP_OPT_HARDWARE_GPU,
  KP_OPT_HARDWARE_AUDIO,
  KP_OPT_HARDWARE_NVIDIA,
  KP_OPT_HARDWARE_DEVICES,
  KP_OPT_MOUNTS,
  KP_OPT_RUNTIME_BACKEND,
  KP_OPT_RUNTIME_NETWORK_ISOLATION,
  KP_OPT_RUNTIME_NETWORK,
  KP_OPT_LIMITS_CPU_SHARES,
  KP_OPT_LIMITS_MEMORY_LIMIT_MB,
  KP_OPT_LIMITS_PIDS_MAX,
  KP_OPT_HOST_HOME,
  KP_OPT_HOST_CUSTOM_MOUNTS,
  KP_OPT_HOST_ROOTFS,
  KP_OPT_HOST_DISPLAY,
  KP_OPT_HOST_SOUND,
  KP_OPT_HOST_DBUS,
  KP_OPT_HOST_SSH_AGENT,
  KP_OPT_ENV_PASS,
  KP_OPT_ENV_SET,
  KP_OPT__COUNT
} kp_option_id;

typedef struct kp_option
{
  kp_option_id id;
  const char *key;     /* dotted path in the manifest: "runtime.resource_limits.pids_max" */
  kp_option_type type;
  const char *default_text; /* the default as TOML text: "false", "1024", "\"host\"", "[]" */
  const char *const *choices; /* KP_OPT_ENUM: NULL-terminated */
  int64_t min, max;           /* KP_OPT_INT: hard range (the policy may lower max) */
  unsigned flags;
  const char *help;     /* one sentence for --help, docs and completions */
  const char *example;  /* TOML value text used in docs and templates */
} kp_option;

const kp_option *kp_option_get (kp_option_id id);
/* Look an option up by its full dotted key; NULL when unknown. */
const kp_option *kp_option_find (const char *key);
/* Is `table` ("", "hardware", "runtime.resource_limits") a table the schema defines? */
bool kp_option_is_table (const char *table);
/* NULL-terminated list of the schema's tables, in order ("" is not listed). */
const char *const *kp_option_tables (void);
/* The closest valid name to `name` among the keys and subtables of `table` (newly
 * allocated), or NULL when nothing is close enough to be a plausible typo. */
char *kp_option_suggest (const char *table, const char *name);
/* Names valid directly in `table`, comma-separated, for error hints. */
char *kp_option_list_names (const char *table);
const char *kp_option_type_name (kp_option_type type);

#endif
