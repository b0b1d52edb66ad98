/* fs.h — file reading, atomic replacement and lexical path handling.
 *
 * Atomic replacement follows the store's rule (DESIGN §5): write a temporary file in the
 * target's directory, fsync it, rename it over the target, fsync the directory. A reader
 * sees the old content or the new one, never a mix, even after a crash. */
#ifndef KP_BASE_FS_H
#define KP_BASE_FS_H

#include "buf.h"
#include "error.h"

#include <sys/types.h>

/* Read a whole file; fails when it is larger than max_size bytes. The result is
 * NUL-terminated (the terminator is not counted in *len). */
char *kp_file_read (const char *path, size_t max_size, size_t *len, kp_error **err);
/* Read everything from a file descriptor (e.g. stdin), with the same limit. */
char *kp_fd_read_all (int fd, size_t max_size, size_t *len, kp_error **err);

/* Replace `path` atomically with `data`. With exclusive=true, fail with EEXIST instead of
 * replacing an existing file. */
int kp_file_write_atomic (const char *path, const void *data, size_t len, mode_t mode,
                          bool exclusive, kp_error **err);

/* The same without syncing the file or its directory: for runtime state (in
 * $XDG_RUNTIME_DIR) that a crash may lose, where a sync would only wait for the disk. */
int kp_file_write_volatile (const char *path, const void *data, size_t len, mode_t mode,
                            kp_error **err);

/* Write all bytes, retrying on EINTR and short writes; returns 0 or -errno. */
int kp_write_all (int fd, const void *data, size_t len);

/* Lexical normalisation: collapses "//", "." and "..", keeps the path relative or absolute
 * as it was. ".." above the root of an absolute path stays at "/". A relative path that
 * climbs above its start keeps its leading "../" parts. Never touches the filesystem. */
char *kp_path_normalize (const char *path);
/* Join two paths; an absolute `rel` is returned as is. */
char *kp_path_join (const char *base, const char *rel);
/* True when `path` is `prefix` or lies below it, component-wise ("/home" covers
 * "/home/a" but not "/homes"). Both must be normalised. */
bool kp_path_is_under (const char *path, const char *prefix);
/* Directory part of a path ("." when there is none). */
char *kp_path_dirname (const char *path);
/* Make an absolute, normalised path from `path` against the current directory. */
char *kp_path_absolute (const char *path, kp_error **err);

/* Remove `name` in dirfd and, when it is a directory, everything below it, never
 * following a symbolic link. Directories whose mode keeps their owner out (0000, or the
 * mode-0 work/work overlayfs leaves) are opened up first. Names are listed before any is
 * removed. A missing entry is not an error. Returns 0 or -errno. */
int kp_remove_tree_at (int dirfd, const char *name);

/* A directory stream for `name` in dirfd (NULL: dirfd itself), opened afresh with
 * O_NOFOLLOW, so its position is its own (a dup() would share dirfd's). NULL with errno set
 * on failure; nothing is left open then. */
DIR *kp_dir_open_at (int dirfd, const char *name);

/* An executable program: the first match on $PATH (absolute entries only: relative ones
 * are not trusted), else in /usr/bin, /usr/sbin, /bin or /sbin. NULL when not found. */
char *kp_find_program (const char *name);

/* The caller's home directory: $HOME, else the password database. */
const char *kp_home_dir (void);
/* XDG base directories with their fallbacks. Returned strings are newly allocated. */
char *kp_xdg_config_home (void);
char *kp_xdg_data_home (void);
/* Karapace's runtime state directory: $XDG_RUNTIME_DIR/karapace, else /tmp/karapace-UID;
 * created (0700) when missing, refused when someone else owns it or others may enter it. */
char *kp_runtime_state_dir (kp_error **err);

#endif
