/* treedigest.h — content digests of files and directory trees.
 *
 * docs/identity.md is the specification: a file digest is BLAKE3-256 of the file's bytes
 * (what `b3sum` prints); a tree digest is BLAKE3-256 of one text record per entry of a
 * depth-first walk with byte-wise sorted children:
 *
 *     TYPE MODE UID GID PAYLOAD XATTRS PATH\n
 *
 * The walk never follows symbolic links, not even for the root's last path component, and
 * it reads every regular file: an entry the caller cannot read or list is an error naming
 * its path, never skipped. Modification times and hard links are not part of a digest. */
#ifndef KP_HASH_TREEDIGEST_H
#define KP_HASH_TREEDIGEST_H

#include "base/buf.h"
#include "base/error.h"
#include "hash/blake3.h"

/* Receives each record of a tree walk, in digest order: `record` is `len` bytes of
 * printable ASCII ending with '\n' (and NUL-terminated after it). Returning a negative
 * value stops the walk; the callback may fill `err` to say why. */
typedef int (*kp_tree_digest_cb) (const char *record, size_t len, void *user_data,
                                  kp_error **err);

/* Tree digest of the directory at `path`, resolved relative to `dirfd` (AT_FDCWD for the
 * current directory; an absolute path ignores it). `path` itself must be a directory, not a
 * symbolic link to one. `on_record` may be NULL. Returns 0, or -1 with `err` set; `out` is
 * written only on success. */
int kp_tree_digest (int dirfd, const char *path, uint8_t out[KP_BLAKE3_OUT_LEN],
                    kp_tree_digest_cb on_record, void *user_data, kp_error **err);

typedef enum kp_digest_kind
{
  KP_DIGEST_FILE, /* file digest of a regular file */
  KP_DIGEST_TREE, /* tree digest of a directory */
} kp_digest_kind;

/* Digest whatever `path` names (its last component is not followed): a regular file gives
 * its file digest, a directory its tree digest (records go to `on_record`, which may be
 * NULL). Other types are an error. `kind`, when not NULL, says which digest was made. */
int kp_digest_path (int dirfd, const char *path, uint8_t out[KP_BLAKE3_OUT_LEN],
                    kp_digest_kind *kind, kp_tree_digest_cb on_record, void *user_data,
                    kp_error **err);

/* Append `len` bytes to `b` percent-encoded as the records require: every byte outside
 * 0x21..0x7E, and '%', ',' and '=', becomes "%XX" with upper-case hex digits. */
void kp_tree_digest_encode (kp_buf *b, const void *data, size_t len);

#endif
