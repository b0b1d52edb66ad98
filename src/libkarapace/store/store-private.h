/* store-private.h — what the store's files share: the handle and the write helpers. */
#ifndef KP_STORE_PRIVATE_H
#define KP_STORE_PRIVATE_H

#include "store.h"

#include "base/buf.h"

struct kp_store
{
  char *path;
  bool writable;
  int dirfd;  /* the store root */
  int lockfd; /* holds the flock */
  int objects_fd, layers_fd, envs_fd, tmp_fd, journal_fd;
  kp_store_recovery recovery;
  /* kp_store_layer_check(): a layer built again is compared with the one of its name */
  bool check_layers, repair_layers;
  kp_layer_check_result damage;
};

#define KP_STORE_HINT_VERIFY "run 'karapace verify-store' to see what else is affected"

/* Errors of this module: status KP_EXIT_STORE, a hint fitting the errno. */
int kp_store_fail_errno (kp_error **err, int errnum, const char *fmt, ...) KP_PRINTF (3, 4);
int kp_store_fail (kp_error **err, const char *hint, const char *fmt, ...) KP_PRINTF (3, 4);
/* Make an error from a lower module a store error (status 3, default hint). */
int kp_store_wrap (kp_error **err, const char *hint);

int kp_store_require_writable (kp_store *store, const char *what, kp_error **err);

/* A new file in tmp/: returns its fd and its name in tmp/ (to be renamed or linked). */
int kp_store_tmp_create (kp_store *store, char **name, kp_error **err);
/* A new directory in tmp/. */
int kp_store_tmp_mkdir (kp_store *store, char **name, kp_error **err);
/* fsync a directory fd; -1 with an error on failure. */
int kp_store_fsync_dir (int dirfd, const char *what, kp_error **err);
/* Write `data` into a new file in tmp/, fsync, rename it to dirfd/name (replacing). */
int kp_store_write_file (kp_store *store, int dirfd, const char *name, const void *data,
                         size_t len, kp_error **err);
/* Remove dirfd/name whatever it is: a directory is renamed into tmp/ first (one atomic
 * step), then emptied. Missing is fine. */
int kp_store_remove_path (kp_store *store, int dirfd, const char *name, kp_error **err);
/* Recursively delete dirfd/name (no atomicity). */
int kp_store_rm_rf_at (int dirfd, const char *name, kp_error **err);
/* Total size of regular files below dirfd/name. *complete (when not NULL) is set to false
 * when some part of the tree could not be read. */
uint64_t kp_store_du_at (int dirfd, const char *name);
uint64_t kp_store_du_at_checked (int dirfd, const char *name, bool *complete);

/* Remove a tree that may hold files of subordinate ids: tried as the caller first, then
 * inside the store's user namespace. */
int kp_store_rm_rf_any (int dirfd, const char *name, kp_error **err);
/* kp_store_du_at of a tree that may hold files of subordinate ids (directories only they
 * may read): tried as the caller first, then inside the store's user namespace. */
uint64_t kp_store_du_any (int dirfd, const char *name);
/* The tree digest of dirfd/name, computed inside the store's user namespace. */
int kp_store_tree_digest (kp_store *store, int dirfd, const char *name,
                          char out[KP_BLAKE3_HEX_LEN + 1], kp_error **err);
/* A layer's record, checksum verified and fields checked. */
json_t *kp_store_layer_record (kp_store *store, const char *digest, kp_error **err);

/* Objects: the fan-out path "ab/cdef…" of an id (validated). */
void kp_store_object_relpath (const char *id, char out[KP_STORE_OBJECT_ID_LEN + 2]);

/* gc: call keep_layer / keep_object for what every image record names (image.c). */
int kp_store_image_mark (kp_store *store, void (*keep_layer) (const char *, void *),
                         void (*keep_object) (const char *, void *), void *user_data,
                         uint64_t *count, kp_error **err);
/* verify: every image record (checksum, its layer and objects present), every tag (intact,
 * naming a record that exists) and anything else in images/ (image.c). */
void kp_store_image_verify (kp_store *store, kp_store_verify_report *report);

/* verify: every file in cache/ is an intact record stored under its key's hash (cache.c). */
void kp_store_cache_verify (kp_store *store, kp_store_verify_report *report);

/* Journal replay (store.c calls it on an exclusive open). */
int kp_store_journal_recover (kp_store *store, kp_error **err);
/* Count entries, for verify; corrupt ones are added as problems. */
int kp_store_journal_check (kp_store *store, kp_store_verify_report *report, kp_error **err);

/* Env records: parse + verify a record's JSON text. */
kp_env_record *kp_store_env_parse (const char *text, size_t len, const char *env_id,
                                   kp_error **err);
/* Checksummed JSON documents (env.json, journal entries): verify and strip "checksum". */
json_t *kp_store_json_load_checked (const char *text, size_t len, kp_error **err);
/* Add "checksum" to a copy of `doc` and return its pretty text. */
char *kp_store_json_dump_checked (json_t *doc);

/* A layer directory name is a tree digest: 64 lowercase hex. */
void kp_store_verify_problem (kp_store_verify_report *r, const char *kind, const char *id,
                              const char *fmt, ...) KP_PRINTF (4, 5);

#endif
