/* seccomp.h — the system call filters of the sandbox (docs/seccomp.md).
 *
 * Two profiles, both deny-lists over a default of "allow": a development environment runs
 * compilers, debuggers, language runtimes and package managers whose system call needs we
 * cannot enumerate, and an allow-list that misses one breaks them in ways users cannot
 * diagnose. What is denied is what a process inside never needs and what has a history of
 * letting a sandboxed process reach the host kernel's shared state: modules, kexec, the
 * keyrings, reboot, swap, file handles, eBPF, perf events and terminal input injection.
 *
 *   KP_SECCOMP_DEFAULT  also refuses new namespaces, setns and the mount system calls, so
 *                       a process inside cannot build itself the privileges (a fresh user
 *                       namespace) that most kernel exploits start from.
 *   KP_SECCOMP_NESTING  lets namespaces and mounts through so podman, buildah or another
 *                       karapace can run inside; keyring calls answer ENOSYS there, which
 *                       container runtimes treat as "no keyrings" and carry on.
 *
 * On a 64-bit kernel that also runs 32-bit code (x86_64: i386 and x32; aarch64: arm) the
 * same rules are installed for those ABIs, so a 32-bit system call cannot bypass them; a
 * system call from any other ABI kills the process. */
#ifndef KP_SANDBOX_SECCOMP_H
#define KP_SANDBOX_SECCOMP_H

#include "base/error.h"

typedef enum kp_seccomp_profile
{
  KP_SECCOMP_NONE = 0, /* no filter (loading it does nothing) */
  KP_SECCOMP_DEFAULT,
  KP_SECCOMP_NESTING,
} kp_seccomp_profile;

/* "none", "default", "nesting". */
const char *kp_seccomp_profile_name (kp_seccomp_profile profile);
/* Parse a profile name; -1 when unknown. */
int kp_seccomp_profile_from_name (const char *name, kp_seccomp_profile *profile);

/* Install the profile's filter on every thread of the process (and so on all its future
 * children). Sets no_new_privs first, as the kernel requires of a process without
 * CAP_SYS_ADMIN. KP_SECCOMP_NONE installs nothing. */
int kp_seccomp_load (kp_seccomp_profile profile, kp_error **err);

/* A profile's filter compiled once to raw BPF, to be loaded later (in a forked child, say)
 * without compiling it again: compiling costs far more than loading. */
typedef struct kp_seccomp_program
{
  kp_seccomp_profile profile;
  void *filter; /* struct sock_filter[len] */
  size_t len;
} kp_seccomp_program;

int kp_seccomp_compile (kp_seccomp_profile profile, kp_seccomp_program *out, kp_error **err);
/* With KP_SECCOMP_DISCARD_SYNCS, fsync, fdatasync, sync_file_range, syncfs and sync return
 * 0 without doing anything: for a build whose whole upper layer is synced once (syncfs)
 * before it is used, where dpkg's hundreds of fsyncs would only wait for the disk. */
#define KP_SECCOMP_DISCARD_SYNCS 1u
int kp_seccomp_compile_with (kp_seccomp_profile profile, unsigned flags,
                             kp_seccomp_program *out, kp_error **err);
/* Load a compiled program on every thread (no_new_privs must be set, as
 * kp_seccomp_load does it). Does not allocate unless it fails. */
int kp_seccomp_load_program (const kp_seccomp_program *program, kp_error **err);
void kp_seccomp_program_clear (kp_seccomp_program *program);
/* Keep a compiled program in a file (replaced atomically, mode 0600), and read it back for
 * the given profile: a persistent holder keeps its filter in its state directory so that
 * later sessions, and the next holder of the same state directory, load it without
 * compiling. The file starts with one line naming what made it (kp_seccomp_maker(): this
 * executable and the libseccomp that compiled it); kp_seccomp_program_read() with a maker
 * refuses a file another one made, with NULL it takes any. A missing, short or oversized
 * file is an error (the caller compiles instead); the kernel checks the program when it
 * is loaded. */
int kp_seccomp_program_save (const kp_seccomp_program *program, const char *path,
                             const char *maker, kp_error **err);
int kp_seccomp_program_read (const char *path, kp_seccomp_profile profile, const char *maker,
                             kp_seccomp_program *out, kp_error **err);
/* "DEV:INO:SIZE:MTIME libseccomp-X.Y.Z" of the running executable, newly allocated. */
char *kp_seccomp_maker (void);

/* Write the profile's filter as raw BPF (struct sock_filter[]) to fd, for inspection with
 * a BPF disassembler; nothing is loaded. */
int kp_seccomp_export_bpf (kp_seccomp_profile profile, int fd, kp_error **err);

/* What the profile denies, as the Markdown table docs/seccomp.md shows (a test checks
 * that the document carries exactly this text). Newly allocated. */
char *kp_seccomp_describe (kp_seccomp_profile profile);

#endif
