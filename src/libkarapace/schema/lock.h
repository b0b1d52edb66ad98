/* lock.h — karapace.lock: what a manifest resolved to (docs/lockfile.md).
 *
 * The lock pins the base (resolved reference, content digest, tree digest), the full
 * installed package closure (name, version, architecture, archive hash) and every setting
 * that shapes the environment. Its env_id is the BLAKE3 of its canonical form
 * (identity.h). Two checks guard it: integrity (the recorded env_id is what the content
 * hashes to) and intent (the manifest still asks for what was locked). */
#ifndef KP_SCHEMA_LOCK_H
#define KP_SCHEMA_LOCK_H

#include "manifest.h"

#define KP_LOCK_VERSION 1
#define KP_LOCK_FILENAME "karapace.lock"

typedef struct kp_lock_package
{
  char *name;
  char *version;
  char *arch;
  char *sha256; /* archive hash, lowercase hex; "" when the package manager cannot tell */
} kp_lock_package;

typedef struct kp_lock_base
{
  char *reference;   /* the resolved source, e.g. "docker://docker.io/library/debian@sha256:…" */
  char *digest;      /* content digest of what was fetched: "sha256:HEX" or "blake3:HEX" */
  char *tree_digest; /* BLAKE3 tree digest of the base layer, hex */
} kp_lock_base;

typedef struct kp_lock
{
  int64_t version;
  char *env_id;            /* as recorded in the file (or computed, for a new lock) */
  kp_lock_base base;
  kp_lock_package *packages; /* sorted by name, then architecture, then version */
  size_t n_packages;
  kp_manifest *settings;   /* identity options only, normal form */
} kp_lock;

/* A new lock from a manifest and what it resolved to; env_id is computed. */
kp_lock *kp_lock_new (const kp_manifest *m, const kp_lock_base *base,
                      const kp_lock_package *packages, size_t n_packages, kp_error **err);
/* Read a lock file strictly (unknown keys are errors). Integrity is NOT checked here. */
kp_lock *kp_lock_load (const char *path, kp_error **err);
kp_lock *kp_lock_load_text (const char *text, size_t len, const char *path, kp_error **err);
/* The lock as TOML text, exactly as `karapace build` writes it. */
char *kp_lock_to_toml (const kp_lock *lock);
/* Write atomically. */
int kp_lock_save (const kp_lock *lock, const char *path, kp_error **err);
json_t *kp_lock_to_json (const kp_lock *lock);
void kp_lock_free (kp_lock *lock);
void kp_lock_freep (kp_lock **lock);
#define kp_cleanup_lock __attribute__ ((cleanup (kp_lock_freep)))

/* Integrity: the recorded env_id matches the content. Status KP_EXIT_MANIFEST on mismatch. */
int kp_lock_check_integrity (const kp_lock *lock, const char *path, kp_error **err);
/* Intent: the differences between what the lock records and what the manifest asks for,
 * one readable line each ("hardware.gpu: locked false, manifest says true"); an empty
 * vector when they agree. */
char **kp_lock_diff_manifest (const kp_lock *lock, const kp_manifest *m);

#endif
