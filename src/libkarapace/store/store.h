/* store.h — the content-addressed store (docs/store.md).
 *
 * A store is a directory:
 *
 *     version  lock  objects/ab/cdef…  layers/  envs/<env_id>/env.json  images/  cache/
 *     tmp/  journal/
 *
 * Its promise: whatever happens (crash, kill -9, full disk, two commands at once, a flipped
 * bit) nothing is lost silently, corruption is detected, and the store opens again in a
 * consistent state. Every new file is written in tmp/, hashed while it is written, synced,
 * then linked or renamed into place without replacing anything it should not, and its
 * directory synced. Objects are verified against their BLAKE3 on every read. Multi-step
 * mutations are journaled: their rollback steps are on disk before their side effects, and
 * an exclusive open rolls back whatever a crash left unfinished.
 *
 * Locking: flock() on `lock`, shared for readers and exclusive for every mutation (a handle
 * opened for reading refuses to mutate). A handle holds one lock for its whole life and
 * never upgrades it, so two karapace processes cannot deadlock on the store.
 *
 * Every error from this module has status KP_EXIT_STORE (3) and a hint. */
#ifndef KP_STORE_STORE_H
#define KP_STORE_STORE_H

#include "base/error.h"
#include "hash/blake3.h"

#include <jansson.h>
#include <signal.h>
#include <sys/types.h>

#define KP_STORE_VERSION 1
#define KP_STORE_OBJECT_ID_LEN KP_BLAKE3_HEX_LEN

typedef struct kp_store kp_store;

enum kp_store_flags
{
  KP_STORE_READ = 0,          /* shared lock: readers */
  KP_STORE_WRITE = 1 << 0,    /* exclusive lock: mutations; recovers unfinished work */
  KP_STORE_NO_CREATE = 1 << 1, /* fail instead of creating a missing store */
  KP_STORE_NO_WAIT = 1 << 2,  /* fail at once when the lock is busy */
};

typedef struct kp_store_open_options
{
  unsigned flags;          /* enum kp_store_flags */
  int lock_timeout_ms;     /* > 0: give up after this long; 0: wait as long as it takes */
  const char *purpose;     /* what this process is, recorded while it holds the lock
                              exclusively ("karapace gc"); NULL: "karapace" */
  /* Called once when the lock is busy, with a sentence saying what we wait for. NULL
     prints "karapace: MESSAGE" on stderr. */
  void (*on_wait) (const char *message, void *user_data);
  void *user_data;
} kp_store_open_options;

/* The default location: $KARAPACE_STORE, else $XDG_DATA_HOME/karapace. */
char *kp_store_default_path (void);

/* Open (creating on demand) the store at `path` (NULL: the default). */
kp_store *kp_store_open (const char *path, unsigned flags, kp_error **err);
kp_store *kp_store_open_with (const char *path, const kp_store_open_options *opts,
                              kp_error **err);
void kp_store_close (kp_store *store);
void kp_store_closep (kp_store **store);
#define kp_cleanup_store __attribute__ ((cleanup (kp_store_closep)))

const char *kp_store_path (const kp_store *store);
bool kp_store_is_writable (const kp_store *store);

/* What the exclusive open recovered: journal entries rolled back, entries quarantined,
 * temporary files removed. */
typedef struct kp_store_recovery
{
  unsigned rolled_back;
  unsigned quarantined;
  unsigned tmp_removed;
} kp_store_recovery;
const kp_store_recovery *kp_store_last_recovery (const kp_store *store);

/* Read the format version of the store at `path` without opening it for use (migrate). 0
 * when there is no store there yet. */
int kp_store_read_version (const char *path, kp_error **err);
/* Bring the store at `path` to KP_STORE_VERSION. Fills *from with the version found.
 * Only version 1 exists, so this creates a missing store and refuses anything else. */
int kp_store_migrate (const char *path, int *from, kp_error **err);

/* ---- Objects: immutable blobs named by the BLAKE3 of their bytes ---- */

/* 64 lowercase hex characters? */
bool kp_store_is_object_id (const char *id);

/* Store `len` bytes; `id` receives the object id (64 hex + NUL). Idempotent. */
int kp_store_put (kp_store *store, const void *data, size_t len,
                  char id[KP_STORE_OBJECT_ID_LEN + 1], kp_error **err);
/* Store everything readable from fd, hashing while copying (no whole-file buffering). */
int kp_store_put_fd (kp_store *store, int fd, char id[KP_STORE_OBJECT_ID_LEN + 1],
                     kp_error **err);
/* 1 when present, 0 when not, -1 on error. Does not verify the bytes. */
int kp_store_has (kp_store *store, const char *id, kp_error **err);
/* Read a whole object (up to max_size bytes), verified. NUL-terminated. */
void *kp_store_get (kp_store *store, const char *id, size_t max_size, size_t *len,
                    kp_error **err);
/* Copy an object to out_fd, verified; the copy is only trustworthy when this returns 0. */
int kp_store_get_to_fd (kp_store *store, const char *id, int out_fd, kp_error **err);
/* Re-hash an object through the read path. */
int kp_store_verify_object (kp_store *store, const char *id, uint64_t *size, kp_error **err);
/* Remove an object (needs a writable store). Removing a missing object is not an error. */
int kp_store_remove_object (kp_store *store, const char *id, kp_error **err);

/* A streaming writer: a new object written in pieces (a download), hashed as it goes.
 * Nothing is visible in objects/ until commit; abort (or a crash: tmp/ is emptied on the
 * next exclusive open) leaves no trace. One writer may be used from one thread at a time;
 * different writers from different threads. */
typedef struct kp_store_writer kp_store_writer;
kp_store_writer *kp_store_writer_new (kp_store *store, kp_error **err);
int kp_store_writer_write (kp_store_writer *w, const void *data, size_t len, kp_error **err);
uint64_t kp_store_writer_size (const kp_store_writer *w);
/* Sync and link the bytes into objects/ (idempotent when the object exists); frees w. */
int kp_store_writer_commit (kp_store_writer *w, char id[KP_STORE_OBJECT_ID_LEN + 1],
                            kp_error **err);
/* Forget the bytes; frees w. NULL is fine. */
void kp_store_writer_abort (kp_store_writer *w);

/* A streaming reader. Each read returns bytes, 0 at the end — only once the whole object
 * has been hashed and found intact — or -1 on an error or a mismatch. Bytes handed out
 * before the end are provisional: a caller that keeps them must wait for the 0. */
typedef struct kp_store_reader kp_store_reader;
kp_store_reader *kp_store_reader_open (kp_store *store, const char *id, kp_error **err);
ssize_t kp_store_reader_read (kp_store_reader *r, void *buf, size_t len, kp_error **err);
uint64_t kp_store_reader_size (const kp_store_reader *r);
void kp_store_reader_close (kp_store_reader *r);

/* Call fn for each object id present; stops when fn returns < 0. */
int kp_store_foreach_object (kp_store *store,
                             int (*fn) (const char *id, void *user_data, kp_error **err),
                             void *user_data, kp_error **err);

/* ---- Environment metadata: envs/<env_id>/env.json with a checksum ---- */

typedef enum kp_env_state
{
  KP_ENV_DEFINED,
  KP_ENV_BUILT,
  KP_ENV_RUNNING,
  KP_ENV_FROZEN,
  KP_ENV_ARCHIVED,
} kp_env_state;

const char *kp_env_state_name (kp_env_state state);
int kp_env_state_from_name (const char *name, kp_env_state *state);

typedef struct kp_env_record
{
  char env_id[KP_BLAKE3_HEX_LEN + 1];
  char *name;      /* NULL when unnamed */
  kp_env_state state;
  int64_t created; /* seconds since the epoch */
  int64_t updated;
  char **layers;   /* tree digests, base first; NULL-terminated, may be NULL */
  char **objects;  /* other objects the environment keeps alive; may be NULL */
  char *lock;      /* object id of the lock text, or NULL */
  json_t *extra;   /* further fields owned by the engine (an object), or NULL */
} kp_env_record;

void kp_env_record_free (kp_env_record *rec);
void kp_env_record_freep (kp_env_record **rec);
#define kp_cleanup_env_record __attribute__ ((cleanup (kp_env_record_freep)))

/* [a-zA-Z0-9_-]{1,64}, and not 4 or more hex digits only (those read as ids). */
bool kp_store_is_env_name (const char *name);

/* Create or replace an environment's record (atomic; journaled on creation). A name
 * another environment carries is refused. `updated` is set to now; `created` too when 0. */
int kp_store_env_write (kp_store *store, kp_env_record *rec, kp_error **err);
/* Read and verify one record by full env_id. */
kp_env_record *kp_store_env_read (kp_store *store, const char *env_id, kp_error **err);
/* Find by name, full id, short id or any unique id prefix of 4+ hex digits. */
kp_env_record *kp_store_env_lookup (kp_store *store, const char *ref, kp_error **err);
/* All env ids (sorted), NULL-terminated. */
char **kp_store_env_list (kp_store *store, kp_error **err);
/* Remove an environment's directory (atomic: renamed into tmp/ first). */
int kp_store_env_remove (kp_store *store, const char *env_id, kp_error **err);

/* ---- Layers: layers/<tree_digest>/{tree/,layer.json} ---- */

typedef enum kp_layer_kind
{
  KP_LAYER_BASE,
  KP_LAYER_PACKAGES,
  KP_LAYER_SNAPSHOT,
} kp_layer_kind;

typedef struct kp_layer_info
{
  char tree_digest[KP_BLAKE3_HEX_LEN + 1];
  kp_layer_kind kind;
  char parent[KP_BLAKE3_HEX_LEN + 1]; /* "" for none */
  char tar[KP_BLAKE3_HEX_LEN + 1];    /* the object it was unpacked from; "" for none */
  uint64_t size;                       /* bytes of regular files */
} kp_layer_info;

const char *kp_layer_kind_name (kp_layer_kind kind);
/* Unpack the tar object `tar_id` (verified first) in the store's user namespace, keeping
 * owners, into a new layer named by its tree digest (written to `digest`). Journaled;
 * an existing layer with the same digest is kept. `parent` may be NULL. */
int kp_store_layer_from_tar (kp_store *store, const char *tar_id, kp_layer_kind kind,
                             const char *parent, char digest[KP_BLAKE3_HEX_LEN + 1],
                             kp_error **err);
/* Apply the tar objects `tar_ids` (n of them, base first; each verified first) one over
 * the other into one new layer, as a container runtime flattens an image: OCI whiteouts
 * delete what they name in the layers below (".wh.NAME"), an opaque marker
 * (".wh..wh..opq") empties its directory of everything the layers below put there, and
 * later entries replace earlier ones. The result carries no whiteouts. Unpacked in the
 * store's user namespace, keeping owners, named by its tree digest; journaled; an existing
 * layer with the same digest is kept. `tar_ids[i]` may be compressed (gzip, zstd, xz). */
int kp_store_layer_from_tars (kp_store *store, const char *const *tar_ids, size_t n,
                              kp_layer_kind kind, const char *parent,
                              char digest[KP_BLAKE3_HEX_LEN + 1], kp_error **err);
/* Build a layer in place: fn fills `tree`, an empty directory in the store's tmp/ owned by
 * root of the store's user namespace, however it needs to (in that namespace, in a
 * sandbox whose root it is); then the tree is digested and synced in the namespace and
 * becomes a layer as kp_store_layer_from_tar's do (journaled; an existing layer with the
 * same digest is kept). Its record names no archive. When fn fails, nothing stays. */
typedef int (*kp_layer_build_fn) (const char *tree, void *data, kp_error **err);
int kp_store_layer_build (kp_store *store, kp_layer_kind kind, kp_layer_build_fn fn,
                          void *data, char digest[KP_BLAKE3_HEX_LEN + 1], kp_error **err);
/* What differs between the trees of layers a and b: "+ PATH" (only in b), "- PATH" (only
 * in a), "~ PATH" (type, mode, owner, content, link target or xattrs differ); at most max
 * lines (NULL-terminated), *total the count of all. Walked in the store's namespace. */
char **kp_store_layer_diff (kp_store *store, const char *a, const char *b, size_t max,
                            size_t *total, kp_error **err);
/* The tree digest of layer `digest`'s tree as it is now (equal to its name unless it was
 * changed), computed in the store's namespace. */
int kp_store_layer_digest_now (kp_store *store, const char *digest,
                               char out[KP_BLAKE3_HEX_LEN + 1], kp_error **err);
/* A layer built again (kp_store_layer_build, e.g. by verify) normally finds its name taken
 * and is discarded: the same digest names the same tree. With checking on, the existing
 * layer's tree is digested first; when it no longer matches its name (changed on disk
 * since), the differences between it and the new tree are kept for
 * kp_store_layer_check_result(), and with repair the new tree replaces the damaged one
 * (one atomic exchange; the damaged tree goes to tmp/ and is removed). */
typedef struct kp_layer_check_result
{
  bool damaged;                         /* an existing layer did not match its name */
  bool repaired;                        /* ... and was replaced by the new tree */
  char layer[KP_BLAKE3_HEX_LEN + 1];    /* its name */
  char digest_now[KP_BLAKE3_HEX_LEN + 1]; /* what its tree digested to */
  char **changes;                       /* "+ PATH" / "- PATH" / "~ PATH", the new tree
                                           against the damaged one, at most 50 */
  size_t total;                         /* the count of all changes */
} kp_layer_check_result;
void kp_store_layer_check (kp_store *store, bool check, bool repair);
/* Owned by the store, valid until it is closed or the next check. */
const kp_layer_check_result *kp_store_layer_check_result (const kp_store *store);
/* Does layer `digest` exist? 1 yes, 0 no, -1 error. */
int kp_store_layer_exists (kp_store *store, const char *digest, kp_error **err);
/* Read and verify a layer's record. */
int kp_store_layer_read (kp_store *store, const char *digest, kp_layer_info *info,
                         kp_error **err);

/* ---- Images: images/<algo>-<hex>.json, and tags in images/tags/ ----
 *
 * A resolved base image is kept once per content digest: the registry's manifest digest
 * ("sha256:…") or the hash of an archive ("sha256:…", "blake3:…"). Its record names the
 * base layer it became and the objects it came from (blobs, manifest, config), which gc
 * keeps alive as long as the record exists. A tag maps a canonical reference
 * ("docker://host/repo:tag", "lxc://…") to the digest it resolved to, and when. */

typedef struct kp_image_record
{
  char *digest;     /* "ALGO:HEX": the identity */
  char *reference;  /* canonical reference it was last resolved from */
  char tree_digest[KP_BLAKE3_HEX_LEN + 1]; /* the base layer */
  char **objects;   /* store objects it keeps alive (NULL-terminated, may be NULL) */
  int64_t created;  /* seconds since the epoch; set on first write when 0 */
  uint64_t size;    /* bytes downloaded or read (compressed layers) */
  json_t *extra;    /* source-specific facts (platform, media types, layer digests, config
                       summary, LXC version…), an object, or NULL */
} kp_image_record;

void kp_image_record_free (kp_image_record *rec);
void kp_image_record_freep (kp_image_record **rec);
#define kp_cleanup_image_record __attribute__ ((cleanup (kp_image_record_freep)))

/* Write (create or replace) a record; its layer and objects must exist. Atomic. */
int kp_store_image_write (kp_store *store, const kp_image_record *rec, kp_error **err);
/* Read and verify one record; NULL with *err when missing (status 3, hint to pull). */
kp_image_record *kp_store_image_read (kp_store *store, const char *digest, kp_error **err);
/* 1 when a record exists, 0 when not, -1 on error. */
int kp_store_image_has (kp_store *store, const char *digest, kp_error **err);
/* Every record's digest, sorted, NULL-terminated. */
char **kp_store_image_list (kp_store *store, kp_error **err);
/* Remove a record and every tag naming it (the layer and objects go at the next gc when
 * nothing else keeps them). Missing: not an error. */
int kp_store_image_remove (kp_store *store, const char *digest, kp_error **err);

/* Tags. */
int kp_store_image_tag_set (kp_store *store, const char *reference, const char *digest,
                            int64_t resolved_at, kp_error **err);
/* 1 and *digest (caller frees) and *resolved_at when the tag exists, 0 when not, -1 error. */
int kp_store_image_tag_get (kp_store *store, const char *reference, char **digest,
                            int64_t *resolved_at, kp_error **err);
int kp_store_image_tag_remove (kp_store *store, const char *reference, kp_error **err);
/* All tags: an array of {"reference","digest","resolved"} sorted by reference. */
json_t *kp_store_image_tags (kp_store *store, kp_error **err);

/* ---- Cache index: cache/<blake3 of a key> names an object ----
 *
 * Finds an object by what its source calls it ("sha256:HEX" for a downloaded package or
 * index, "inrelease:MIRROR#SUITE"). gc keeps what the index names (a package cache that
 * outlives the images made from it, for later builds and --offline) unless asked to drop
 * it (drop_cache); then it sweeps the records naming what went. A record whose object is
 * missing or which is damaged is a miss. */
int kp_store_cache_set (kp_store *store, const char *key, const char *object_id,
                        kp_error **err);
/* 1 and id when the key names an object present, 0 when not, -1 on error. */
int kp_store_cache_get (kp_store *store, const char *key, char id[KP_STORE_OBJECT_ID_LEN + 1],
                        kp_error **err);
/* Call keep(id) for each object a record names (gc). */
int kp_store_cache_mark (kp_store *store, void (*keep) (const char *, void *), void *data,
                         kp_error **err);
/* Remove records whose object is gone (gc calls it after its sweep). */
int kp_store_cache_sweep (kp_store *store, bool dry_run, uint64_t *removed, kp_error **err);

/* ---- Journal: rollback steps written before the side effects ---- */

typedef struct kp_store_txn kp_store_txn;
/* Start a journaled mutation; nothing is written until the first step is added. */
kp_store_txn *kp_store_txn_begin (kp_store *store, const char *operation, kp_error **err);
/* Record, durably, that `relpath` (relative to the store) must be removed if this
 * mutation does not finish. Call before creating it. */
int kp_store_txn_undo_remove (kp_store_txn *txn, const char *relpath, kp_error **err);
/* Done: forget the rollback steps. */
int kp_store_txn_commit (kp_store_txn *txn, kp_error **err);
/* Not done: run the rollback steps now (also what a crash leads to on the next open). */
void kp_store_txn_abort (kp_store_txn *txn);
void kp_store_txn_abortp (kp_store_txn **txn);
#define kp_cleanup_store_txn __attribute__ ((cleanup (kp_store_txn_abortp)))

/* ---- gc and verify ---- */

typedef struct kp_store_gc_options
{
  bool dry_run;
  bool drop_cache; /* also free what only the cache index names (the package cache) */
  /* When set and non-zero, gc stops between two deletions; the store stays consistent. */
  volatile sig_atomic_t *cancel;
} kp_store_gc_options;

typedef struct kp_store_gc_report
{
  uint64_t live_envs, kept_objects, kept_layers;
  uint64_t freed_objects, freed_object_bytes, freed_layers, freed_layer_bytes;
  uint64_t removed_tmp;
  bool interrupted;
  json_t *freed; /* array of {"kind","id","bytes"} */
} kp_store_gc_report;

void kp_store_gc_report_clear (kp_store_gc_report *r);
/* Mark from every environment record (running and archived ones included: they keep
 * everything they reference) and every image record (its layer and objects), sweep what
 * neither keeps. Needs a writable store. An unreadable environment or image record stops gc
 * before anything is deleted. */
int kp_store_gc (kp_store *store, const kp_store_gc_options *opts, kp_store_gc_report *report,
                 kp_error **err);

typedef struct kp_store_verify_report
{
  uint64_t objects, object_bytes, envs, layers, journal_entries;
  uint64_t problems;
  json_t *problem_list; /* array of {"kind","id","message"} */
} kp_store_verify_report;

void kp_store_verify_report_clear (kp_store_verify_report *r);
/* Re-hash every object, check every record's checksum, every layer record, references
 * and leftovers. Returns 0 when it could look at everything (problems are counted in the
 * report, not returned), -1 when it could not run. */
int kp_store_verify (kp_store *store, kp_store_verify_report *report, kp_error **err);

#endif
