/* manifest.h — karapace.toml: loading, validation against the option schema, normal form.
 *
 * Loading is strict: a TOML error, an unknown key or table (with a "did you mean" hint), a
 * value of the wrong type or outside its range, or a malformed package, mount, device or
 * variable is an error with file, line and column. A loaded manifest is already in normal
 * form: lists sorted and without duplicates, defaults filled in, network_isolation and
 * network reconciled, mount specifications rewritten canonically. The security policy's
 * checks (allowed mount prefixes, devices, ceilings, deny-lists) live one layer up, in
 * policy/, and run on the loaded manifest. */
#ifndef KP_SCHEMA_MANIFEST_H
#define KP_SCHEMA_MANIFEST_H

#include "base/error.h"
#include "options.h"
#include "toml.h"

#include <jansson.h>

typedef struct kp_list_item
{
  char *value;
  kp_toml_pos pos;
} kp_list_item;

typedef struct kp_map_entry
{
  char *key;
  char *value;
  kp_toml_pos key_pos;
  kp_toml_pos value_pos;
} kp_map_entry;

/* One option's value: defaults are filled in, `present` says whether the file set it. */
typedef struct kp_setting
{
  bool present;
  kp_toml_pos pos; /* of the value (or its table) when present */
  bool boolean;
  int64_t integer;
  char *string;       /* KP_OPT_STRING, KP_OPT_ENUM */
  kp_list_item *list; /* KP_OPT_STRING_LIST, normalised */
  size_t list_len;
  kp_map_entry *map;  /* KP_OPT_STRING_MAP, sorted by key */
  size_t map_len;
} kp_setting;

/* A bind mount of [mounts], parsed from "HOST:CONTAINER[:ro|:rw]". */
typedef struct kp_mount_spec
{
  char *label;
  char *host;      /* normalised: "~/x", "./x" (relative to the manifest) or "/abs" */
  char *container; /* normalised absolute path */
  bool read_only;
} kp_mount_spec;

typedef struct kp_manifest
{
  char *path; /* as given to the loader (used in messages) */
  char *dir;  /* absolute directory holding the manifest: base of relative mounts */
  kp_setting settings[KP_OPT__COUNT];
} kp_manifest;

/* Load and validate a manifest file. */
kp_manifest *kp_manifest_load (const char *path, kp_error **err);
/* Same from text; `path` names it in messages and locates relative mounts. */
kp_manifest *kp_manifest_load_text (const char *text, size_t len, const char *path,
                                    kp_error **err);
/* Load the settings of a lock ([settings] table): only identity options are accepted and
 * none is required. The result has the manifest's types, defaults and normal form. */
kp_manifest *kp_manifest_load_settings (const kp_toml_value *table, const char *path,
                                        kp_error **err);
void kp_manifest_free (kp_manifest *m);
void kp_manifest_freep (kp_manifest **m);
#define kp_cleanup_manifest __attribute__ ((cleanup (kp_manifest_freep)))

/* Typed accessors (the option's type must match; a mismatch is a programming error). */
bool kp_manifest_bool (const kp_manifest *m, kp_option_id id);
int64_t kp_manifest_int (const kp_manifest *m, kp_option_id id);
const char *kp_manifest_string (const kp_manifest *m, kp_option_id id);
const kp_setting *kp_manifest_setting (const kp_manifest *m, kp_option_id id);

/* Parse "HOST:CONTAINER[:ro|:rw]" into *out (normalised). Returns -1 with a message in
 * *err (no position: callers add it). */
int kp_mount_spec_parse (const char *label, const char *text, kp_mount_spec *out, kp_error **err);
void kp_mount_spec_clear (kp_mount_spec *spec);
/* The canonical text of a mount ("./src:/workspace:ro"). */
char *kp_mount_spec_format (const kp_mount_spec *spec);

/* One setting's normalised value as JSON (new reference). */
json_t *kp_setting_to_json (const kp_option *opt, const kp_setting *s);
/* The normalised manifest as nested JSON ({"base":{"image":…},…}), every option present.
 * With identity_only, only KP_OPTF_IDENTITY options. */
json_t *kp_manifest_to_json (const kp_manifest *m, bool identity_only);
/* The normalised manifest as TOML text, every option written out. With `table_prefix`
 * (e.g. "settings"), tables are nested under it and only identity options are written:
 * this is the [settings] part of the lock. */
void kp_manifest_write_toml (const kp_manifest *m, const char *table_prefix, kp_buf *out);

/* Checks on single values, shared with the lock reader and the CLI. */
bool kp_package_name_valid (const char *s);
bool kp_env_name_valid (const char *s);      /* [A-Za-z_][A-Za-z0-9_]* */
bool kp_environment_name_valid (const char *s); /* [a-zA-Z0-9_-]{1,64} */

#endif
