/* build.h — from a manifest to a locked, content-identified environment (docs/build.md).
 *
 * The build is a pipeline of named, numbered steps (numbered with gaps, so a step can be
 * inserted without renumbering the others):
 *
 *   10 manifest   load, validate against the option schema and the policy
 *   20 base       resolve the base image to a base layer (image/pull.h)
 *   30 packages   install [system] packages in a sandbox over the base: a new layer
 *   40 closure    query every installed package (name, version, architecture, hash)
 *   50 normalize  drop logs, caches and package lists; the layer gets its tree digest
 *   60 lock       the lock: base, full closure, settings; env_id is its BLAKE3
 *   70 record     the environment's record in the store (journaled)
 *   80 write      karapace.lock beside the manifest
 *
 * Every mutating step goes through the store's crash-safe paths (a layer is built in tmp/
 * and moved into place, a record is written atomically): a failure, a signal or a crash at
 * any point leaves no half environment, and a build of an identity that exists is
 * instant. */
#ifndef KP_ENGINE_BUILD_H
#define KP_ENGINE_BUILD_H

#include "base/error.h"
#include "image/image-config.h"
#include "policy/policy.h"
#include "store/store.h"

typedef struct kp_build_options
{
  const char *manifest;          /* path of karapace.toml */
  const char *name;              /* name the environment, or NULL (the manifest's name) */
  const kp_image_config *config; /* NULL: defaults */
  const kp_policy *policy;       /* NULL: the default policy */
  bool offline;                  /* no network: caches only (packages: from the lock) */
  bool locked;                   /* install exactly the closure karapace.lock records; any
                                    difference is an error that lists it */
  bool progress;                 /* progress lines on stderr */
  bool fresh;                    /* never take an existing environment for this build */
  bool no_record;                /* stop after the lock (step 60): no record, no lock file
                                    (verify); the layers stay in the store for gc */
  bool unnamed;                  /* the record gets no name (rebuild names it after) */
  const char *lock_file;         /* --locked from this lock file instead of the one beside
                                    the manifest */
} kp_build_options;

typedef struct kp_build_result
{
  char env_id[KP_BLAKE3_HEX_LEN + 1];
  char *lock_path;
  bool existed;       /* the identity was built before: nothing was done */
  size_t n_packages;  /* the locked closure */
  char base_tree[KP_BLAKE3_HEX_LEN + 1];
  char packages_tree[KP_BLAKE3_HEX_LEN + 1]; /* "" without [system] packages */
} kp_build_result;

void kp_build_result_clear (kp_build_result *r);

int kp_build (kp_store *store, const kp_build_options *opts, kp_build_result *out,
              kp_error **err);

#endif
