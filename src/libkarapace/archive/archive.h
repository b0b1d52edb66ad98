/* archive.h — deterministic tar packing and safe unpacking (docs/archive.md).
 *
 * Packing walks a tree in the tree digest's order and writes a POSIX (pax) tar that is a
 * pure function of the tree: entries sorted, times clamped to a given epoch, numeric ids
 * only, no user or group names, hard links kept as hard links, xattrs kept.
 *
 * Unpacking never creates anything outside the target directory: every name is resolved
 * beneath the target (openat2 RESOLVE_BENEATH|RESOLVE_NO_MAGICLINKS|RESOLVE_NO_SYMLINKS for
 * parents, with a component-by-component fallback), links may not point a later entry
 * outside, OCI whiteouts become overlay whiteouts, devices and set-id bits follow the
 * options, and size and entry limits stop archive bombs. */
#ifndef KP_ARCHIVE_ARCHIVE_H
#define KP_ARCHIVE_ARCHIVE_H

#include "base/error.h"
#include "hash/blake3.h"

typedef struct kp_pack_options
{
  int64_t mtime_clamp; /* entries newer than this get this mtime; < 0: keep mtimes */
  bool oci_whiteouts;  /* pack an overlay upper directory as an OCI layer: a character
                          device 0:0 becomes ".wh.NAME", a directory marked opaque
                          (user. or trusted.overlay.opaque = "y") gets ".wh..wh..opq", and
                          the overlay's own attributes are left out */
} kp_pack_options;

/* Pack the directory `path` (relative to dirfd) as an uncompressed pax tar to out_fd.
 * When digest is not NULL it receives the BLAKE3 of the bytes written. */
int kp_archive_pack (int dirfd, const char *path, int out_fd, const kp_pack_options *opts,
                     uint8_t digest[KP_BLAKE3_OUT_LEN], kp_error **err);

typedef struct kp_unpack_options
{
  bool preserve_owner;  /* chown entries to the archive's numeric ids (root, or root in the
                           store's user namespace); otherwise files belong to the caller */
  bool allow_devices;   /* create character and block devices; otherwise refuse them */
  bool keep_setid;      /* keep set-uid/set-gid bits; otherwise clear them */
  bool oci_whiteouts;   /* turn .wh.NAME / .wh..wh..opq into overlay whiteouts */
  bool apply_whiteouts; /* flatten mode (one OCI layer over the ones already in the
                           target): .wh.NAME deletes NAME, .wh..wh..opq deletes what the
                           directory held before this archive (entries of this archive
                           stay, in whatever order they come); no whiteout is created.
                           Excludes oci_whiteouts. */
  bool merged_usr;      /* the target has merged /usr (bin, sbin, lib, lib32, lib64, libx32
                           and libo32 are links into usr/): a member below one of those
                           names goes below usr/ instead, and a directory member of that
                           name itself is skipped (what dpkg does through the links) */
  uint64_t max_bytes;   /* total regular-file bytes; 0 = default (64 GiB) */
  uint64_t max_entries; /* 0 = default (4 million) */
} kp_unpack_options;

typedef struct kp_unpack_stats
{
  uint64_t entries;
  uint64_t bytes;
  uint64_t whiteouts;
  uint64_t refused; /* entries refused by policy but tolerated (never outside the target) */
} kp_unpack_stats;

/* Unpack a tar (any compression libarchive reads: gzip, zstd, xz, none) from in_fd into
 * the directory target_dirfd. Refuses (error, KP_EXIT_FAILURE, naming the entry) any entry
 * that would escape the target. Later entries replace earlier ones as tar does. */
int kp_archive_unpack (int in_fd, int target_dirfd, const kp_unpack_options *opts,
                       kp_unpack_stats *stats, kp_error **err);

#endif
