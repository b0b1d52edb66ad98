/* seccomp.c — the deny-list filters, built with libseccomp from one table.
 *
 * The table is the profile: the filter, kp_seccomp_describe() and so docs/seccomp.md all
 * come from it, so the document cannot drift from what is enforced. A rule names a system
 * call, the profiles it belongs to, the errno each answers with, and what part of the
 * arguments must match (everything, a namespace flag, or one ioctl request). */
#include "seccomp.h"

#include "base/buf.h"
#include "base/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

enum
{
  IN_DEFAULT = 1 << 0,
  IN_NESTING = 1 << 1,
  IN_BOTH = IN_DEFAULT | IN_NESTING,
};

typedef enum rule_match
{
  MATCH_ALL,       /* every call */
  MATCH_NS_FLAGS,  /* the flags argument asks for any new namespace */
  MATCH_IOCTL_REQ, /* ioctl with this request number */
} rule_match;

typedef struct deny_rule
{
  const char *syscall;
  unsigned profiles;
  int default_errno; /* answer in KP_SECCOMP_DEFAULT */
  int nesting_errno; /* answer in KP_SECCOMP_NESTING */
  rule_match match;
  unsigned long request; /* MATCH_IOCTL_REQ */
  const char *request_name;
  const char *why;
} deny_rule;

#define WHY_MODULES "loads or unloads kernel code"
#define WHY_KEXEC "replaces the running kernel"
#define WHY_SWAP "changes the host's swap"
#define WHY_KEYS                                                                             \
  "kernel keyrings are not namespaced: the user's host keys would be reachable"
#define WHY_NS                                                                               \
  "a new namespace, above all a user namespace, hands out the capabilities most kernel "  \
  "exploits start from"
#define WHY_MOUNT "the sandbox's mounts are final when the command starts"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

/* Namespace flags refused in the flags of unshare and clone. CLONE_NEWTIME, last, shares
 * its bit with the exit signal of clone, so it is checked for unshare only. */
static const unsigned long ns_flags[] = {
  CLONE_NEWNS,  CLONE_NEWUTS, CLONE_NEWIPC,    CLONE_NEWUSER,
  CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWCGROUP, CLONE_NEWTIME,
};

static const deny_rule rules[] = {
  { "init_module", IN_BOTH, EPERM, EPERM, MATCH_ALL, 0, NULL, WHY_MODULES },
  { "finit_module", IN_BOTH, EPERM, EPERM, MATCH_ALL, 0, NULL, WHY_MODULES },
  { "delete_module", IN_BOTH, EPERM, EPERM, MATCH_ALL, 0, NULL, WHY_MODULES },
  { "kexec_load", IN_BOTH, EPERM, EPERM, MATCH_ALL, 0, NULL, WHY_KEXEC },
  { "kexec_file_load", IN_BOTH, EPERM, EPERM, MATCH_ALL, 0, NULL, WHY_KEXEC },
  { "reboot", IN_BOTH, EPERM, EPERM, MATCH_ALL, 0, NULL,
    "reboots the machine, or ends the sandbox's pid namespace under its holder" },
  { "swapon", IN_BOTH, EPERM, EPERM, MATCH_ALL, 0, NULL, WHY_SWAP },
  { "swapoff", IN_BOTH, EPERM, EPERM, MATCH_ALL, 0, NULL, WHY_SWAP },
  { "open_by_handle_at", IN_BOTH, EPERM, EPERM, MATCH_ALL, 0, NULL,
    "opens any file of a filesystem by handle, bypassing the sandbox's root" },
  { "bpf", IN_BOTH, EPERM, EPERM, MATCH_ALL, 0, NULL,
    "eBPF programs and maps: a large kernel surface with a long exploit history" },
  { "perf_event_open", IN_BOTH, EPERM, EPERM, MATCH_ALL, 0, NULL,
    "performance counters: frequent kernel exploits, and a view of other processes" },
  { "add_key", IN_BOTH, EPERM, ENOSYS, MATCH_ALL, 0, NULL, WHY_KEYS },
  { "request_key", IN_BOTH, EPERM, ENOSYS, MATCH_ALL, 0, NULL, WHY_KEYS },
  { "keyctl", IN_BOTH, EPERM, ENOSYS, MATCH_ALL, 0, NULL, WHY_KEYS },
  { "ioctl", IN_BOTH, EPERM, EPERM, MATCH_IOCTL_REQ, TIOCSTI, "TIOCSTI",
    "pushes characters into a terminal's input: commands typed into the user's shell" },
  { "ioctl", IN_BOTH, EPERM, EPERM, MATCH_IOCTL_REQ, TIOCLINUX, "TIOCLINUX",
    "on a virtual console, pastes the selection into its input (the same injection)" },
  { "unshare", IN_DEFAULT, EPERM, 0, MATCH_NS_FLAGS, 0, NULL, WHY_NS },
  { "clone", IN_DEFAULT, EPERM, 0, MATCH_NS_FLAGS, 0, NULL, WHY_NS },
  { "clone3", IN_DEFAULT, ENOSYS, 0, MATCH_ALL, 0, NULL,
    "its flags sit in memory a filter cannot read; ENOSYS makes the C library fall back to "
    "clone, which is checked" },
  { "setns", IN_DEFAULT, EPERM, 0, MATCH_ALL, 0, NULL, "joins another namespace" },
  { "mount", IN_DEFAULT, EPERM, 0, MATCH_ALL, 0, NULL, WHY_MOUNT },
  { "umount", IN_DEFAULT, EPERM, 0, MATCH_ALL, 0, NULL, WHY_MOUNT },
  { "umount2", IN_DEFAULT, EPERM, 0, MATCH_ALL, 0, NULL, WHY_MOUNT },
  { "pivot_root", IN_DEFAULT, EPERM, 0, MATCH_ALL, 0, NULL, WHY_MOUNT },
  { "move_mount", IN_DEFAULT, EPERM, 0, MATCH_ALL, 0, NULL, WHY_MOUNT },
  { "open_tree", IN_DEFAULT, EPERM, 0, MATCH_ALL, 0, NULL, WHY_MOUNT },
  { "fsopen", IN_DEFAULT, EPERM, 0, MATCH_ALL, 0, NULL, WHY_MOUNT },
  { "fsconfig", IN_DEFAULT, EPERM, 0, MATCH_ALL, 0, NULL, WHY_MOUNT },
  { "fsmount", IN_DEFAULT, EPERM, 0, MATCH_ALL, 0, NULL, WHY_MOUNT },
  { "fspick", IN_DEFAULT, EPERM, 0, MATCH_ALL, 0, NULL, WHY_MOUNT },
  { "mount_setattr", IN_DEFAULT, EPERM, 0, MATCH_ALL, 0, NULL, WHY_MOUNT },
};

/* The argument holding clone's flags: s390 swaps the first two. */
#if defined(__s390__) || defined(__s390x__)
#define CLONE_FLAGS_ARG 1
#else
#define CLONE_FLAGS_ARG 0
#endif

const char *
kp_seccomp_profile_name (kp_seccomp_profile profile)
{
  switch (profile)
    {
    case KP_SECCOMP_NONE:
      return "none";
    case KP_SECCOMP_DEFAULT:
      return "default";
    case KP_SECCOMP_NESTING:
      return "nesting";
    }
  return "unknown";
}

int
kp_seccomp_profile_from_name (const char *name, kp_seccomp_profile *profile)
{
  static const kp_seccomp_profile all[] = { KP_SECCOMP_NONE, KP_SECCOMP_DEFAULT,
                                            KP_SECCOMP_NESTING };
  for (size_t i = 0; i < KP_N_ELEMENTS (all); i++)
    if (strcmp (name, kp_seccomp_profile_name (all[i])) == 0)
      {
        *profile = all[i];
        return 0;
      }
  return -1;
}

static unsigned
profile_bit (kp_seccomp_profile profile)
{
  if (profile == KP_SECCOMP_DEFAULT)
    return IN_DEFAULT;
  return profile == KP_SECCOMP_NESTING ? IN_NESTING : 0;
}

static int
rule_errno (const deny_rule *r, kp_seccomp_profile profile)
{
  return profile == KP_SECCOMP_NESTING ? r->nesting_errno : r->default_errno;
}

static void
seccomp_releasep (scmp_filter_ctx *ctx)
{
  if (*ctx)
    seccomp_release (*ctx);
}
#define kp_cleanup_seccomp __attribute__ ((cleanup (seccomp_releasep)))

/* The 32-bit ABIs a 64-bit kernel runs beside the native one; they get the same rules. */
static const uint32_t secondary_arches[] = {
#if defined(__x86_64__) && !defined(__ILP32__)
  SCMP_ARCH_X86,
  SCMP_ARCH_X32,
#elif defined(__aarch64__)
  SCMP_ARCH_ARM,
#endif
  0,
};

static int
add_rule (scmp_filter_ctx ctx, const deny_rule *r, kp_seccomp_profile profile, kp_error **err)
{
  int nr = seccomp_syscall_resolve_name (r->syscall);
  if (nr == __NR_SCMP_ERROR)
    return 0; /* a libseccomp older than the call cannot filter it: the dropped
                 capabilities still stand in the way */
  uint32_t action = SCMP_ACT_ERRNO ((uint32_t) rule_errno (r, profile));
  int rc = 0;
  switch (r->match)
    {
    case MATCH_ALL:
      rc = seccomp_rule_add (ctx, action, nr, 0);
      break;
    case MATCH_IOCTL_REQ:
      /* The kernel reads the request as a 32-bit int: compare only those bits, so a value
       * with garbage above them cannot slip past. */
      rc = seccomp_rule_add (ctx, action, nr, 1,
                             SCMP_A1 (SCMP_CMP_MASKED_EQ, 0xffffffffu, r->request));
      break;
    case MATCH_NS_FLAGS:
      {
        bool is_clone = strcmp (r->syscall, "clone") == 0;
        unsigned arg = is_clone ? CLONE_FLAGS_ARG : 0;
        size_t n = KP_N_ELEMENTS (ns_flags) - (is_clone ? 1 : 0);
        /* One rule per flag: "any of these bits" is not a single comparison. */
        for (size_t i = 0; i < n && rc == 0; i++)
          {
            struct scmp_arg_cmp cmp = { arg, SCMP_CMP_MASKED_EQ, ns_flags[i], ns_flags[i] };
            rc = seccomp_rule_add_array (ctx, action, nr, 1, &cmp);
          }
        break;
      }
    }
  if (rc < 0)
    return kp_error_errno (err, -rc, "seccomp: add the rule for %s", r->syscall);
  return 0;
}

/* The calls that ask for data to reach the disk: with KP_SECCOMP_DISCARD_SYNCS they return
 * 0 at once. */
static const char *const sync_calls[] = { "fsync", "fdatasync", "sync_file_range",
                                          "sync_file_range2", "syncfs", "sync" };

static scmp_filter_ctx
build_filter (kp_seccomp_profile profile, unsigned flags, kp_error **err)
{
  kp_cleanup_seccomp scmp_filter_ctx ctx = seccomp_init (SCMP_ACT_ALLOW);
  if (ctx == NULL)
    {
      kp_error_set (err, KP_EXIT_RUNTIME, "seccomp: cannot create a filter");
      return NULL;
    }
  /* A call from an ABI the filter does not know must not run unfiltered. */
  int rc = seccomp_attr_set (ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
  if (rc < 0)
    {
      kp_error_errno (err, -rc, "seccomp: set the action for foreign architectures");
      return NULL;
    }
  /* Every thread, not just the caller: a library cannot know who else runs. */
  rc = seccomp_attr_set (ctx, SCMP_FLTATR_CTL_TSYNC, 1);
  if (rc < 0)
    {
      kp_error_errno (err, -rc, "seccomp: ask for all threads");
      return NULL;
    }
  for (size_t i = 0; secondary_arches[i] != 0; i++)
    {
      rc = seccomp_arch_add (ctx, secondary_arches[i]);
      if (rc < 0 && rc != -EEXIST)
        {
          kp_error_errno (err, -rc, "seccomp: add architecture 0x%x", secondary_arches[i]);
          return NULL;
        }
    }
  unsigned bit = profile_bit (profile);
  for (size_t i = 0; i < KP_N_ELEMENTS (rules); i++)
    if ((rules[i].profiles & bit) && add_rule (ctx, &rules[i], profile, err) < 0)
      return NULL;
  for (size_t i = 0; (flags & KP_SECCOMP_DISCARD_SYNCS) && i < KP_N_ELEMENTS (sync_calls); i++)
    {
      int nr = seccomp_syscall_resolve_name (sync_calls[i]);
      if (nr == __NR_SCMP_ERROR)
        continue; /* not a call of this architecture (sync_file_range2) */
      rc = seccomp_rule_add (ctx, SCMP_ACT_ERRNO (0), nr, 0);
      if (rc < 0)
        {
          kp_error_errno (err, -rc, "seccomp: add the rule for %s", sync_calls[i]);
          return NULL;
        }
    }
  return kp_steal_pointer (&ctx);
}

static int
check_profile (kp_seccomp_profile profile, kp_error **err)
{
  if (profile != KP_SECCOMP_DEFAULT && profile != KP_SECCOMP_NESTING
      && profile != KP_SECCOMP_NONE)
    return kp_error_set (err, KP_EXIT_RUNTIME, "seccomp: unknown profile %d", (int) profile);
  return 0;
}

int
kp_seccomp_load (kp_seccomp_profile profile, kp_error **err)
{
  if (check_profile (profile, err) < 0)
    return -1;
  if (profile == KP_SECCOMP_NONE)
    return 0;
  kp_cleanup_seccomp scmp_filter_ctx ctx = build_filter (profile, 0, err);
  if (ctx == NULL)
    return kp_error_prefix (err, "seccomp profile %s", kp_seccomp_profile_name (profile));
  int rc = seccomp_load (ctx);
  if (rc < 0)
    return kp_error_errno (err, -rc, "seccomp: load the %s profile",
                           kp_seccomp_profile_name (profile));
  return 0;
}

static int
export_bpf (kp_seccomp_profile profile, unsigned flags, int fd, kp_error **err)
{
  if (check_profile (profile, err) < 0)
    return -1;
  if (profile == KP_SECCOMP_NONE)
    return kp_error_set (err, KP_EXIT_RUNTIME, "seccomp: the profile none has no filter");
  kp_cleanup_seccomp scmp_filter_ctx ctx = build_filter (profile, flags, err);
  if (ctx == NULL)
    return -1;
  int rc = seccomp_export_bpf (ctx, fd);
  if (rc < 0)
    return kp_error_errno (err, -rc, "seccomp: export the %s profile",
                           kp_seccomp_profile_name (profile));
  return 0;
}

int
kp_seccomp_export_bpf (kp_seccomp_profile profile, int fd, kp_error **err)
{
  return export_bpf (profile, 0, fd, err);
}

int
kp_seccomp_compile (kp_seccomp_profile profile, kp_seccomp_program *out, kp_error **err)
{
  return kp_seccomp_compile_with (profile, 0, out, err);
}

int
kp_seccomp_compile_with (kp_seccomp_profile profile, unsigned flags, kp_seccomp_program *out,
                         kp_error **err)
{
  memset (out, 0, sizeof *out);
  out->profile = profile;
  if (profile == KP_SECCOMP_NONE)
    return check_profile (profile, err);
  /* libseccomp 2.5 exports only to a descriptor. */
  kp_cleanup_close int fd = memfd_create ("karapace-seccomp", MFD_CLOEXEC);
  if (fd < 0)
    return kp_error_errno (err, errno, "seccomp: memfd_create");
  if (export_bpf (profile, flags, fd, err) < 0)
    return -1;
  off_t size = lseek (fd, 0, SEEK_END);
  if (size <= 0 || size % (off_t) sizeof (struct sock_filter) != 0
      || lseek (fd, 0, SEEK_SET) < 0)
    return kp_error_set (err, KP_EXIT_RUNTIME, "seccomp: the compiled %s profile is malformed",
                         kp_seccomp_profile_name (profile));
  kp_cleanup_free char *data = kp_fd_read_all (fd, (size_t) size, NULL, err);
  if (data == NULL)
    return kp_error_prefix (err, "seccomp: read the compiled filter");
  out->len = (size_t) size / sizeof (struct sock_filter);
  out->filter = kp_steal_pointer (&data);
  return 0;
}

int
kp_seccomp_load_program (const kp_seccomp_program *program, kp_error **err)
{
  if (program->profile == KP_SECCOMP_NONE)
    return 0;
  struct sock_fprog prog = { .len = (unsigned short) program->len,
                             .filter = (struct sock_filter *) program->filter };
  if (syscall (SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog) == 0)
    return 0;
  if (errno == EINVAL || errno == ENOSYS)
    {
      if (prctl (PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) == 0)
        return 0;
    }
  return kp_error_errno (err, errno, "seccomp: load the %s profile",
                         kp_seccomp_profile_name (program->profile));
}

#define KP_SECCOMP_FILE_MAGIC "karapace-seccomp-1 "

char *
kp_seccomp_maker (void)
{
  struct stat st;
  const struct scmp_version *v = seccomp_version ();
  if (stat ("/proc/self/exe", &st) < 0)
    return xstrdup ("unknown");
  return xasprintf ("%llx:%llu:%lld:%lld.%09ld libseccomp-%u.%u.%u",
                    (unsigned long long) st.st_dev, (unsigned long long) st.st_ino,
                    (long long) st.st_size, (long long) st.st_mtim.tv_sec,
                    st.st_mtim.tv_nsec, v ? v->major : 0, v ? v->minor : 0,
                    v ? v->micro : 0);
}

int
kp_seccomp_program_save (const kp_seccomp_program *program, const char *path,
                         const char *maker, kp_error **err)
{
  if (program->profile == KP_SECCOMP_NONE || program->filter == NULL || program->len == 0)
    return kp_error_set (err, KP_EXIT_RUNTIME, "seccomp: no compiled filter to keep");
  kp_cleanup_free char *header = xasprintf (KP_SECCOMP_FILE_MAGIC "%s %s\n",
                                            kp_seccomp_profile_name (program->profile),
                                            maker);
  /* Replaced atomically, but not synced: it is a cache in a runtime directory, and a
   * file lost in a crash is compiled again; a sync would put a disk flush in every cold
   * start. */
  kp_cleanup_buf kp_buf text = KP_BUF_INIT;
  kp_buf_puts (&text, header);
  kp_buf_append (&text, program->filter, program->len * sizeof (struct sock_filter));
  return kp_file_write_volatile (path, text.data, text.len, 0600, err);
}

int
kp_seccomp_program_read (const char *path, kp_seccomp_profile profile, const char *maker,
                         kp_seccomp_program *out, kp_error **err)
{
  memset (out, 0, sizeof *out);
  if (check_profile (profile, err) < 0)
    return -1;
  size_t size = 0;
  /* A header line and BPF_MAXINSNS instructions at most, as the kernel takes. */
  kp_cleanup_free char *data
      = kp_file_read (path, 4096 + BPF_MAXINSNS * sizeof (struct sock_filter), &size, err);
  if (data == NULL)
    return -1;
  kp_cleanup_free char *want = xasprintf (KP_SECCOMP_FILE_MAGIC "%s ",
                                          kp_seccomp_profile_name (profile));
  char *nl = memchr (data, '\n', size);
  if (nl == NULL || !kp_str_has_prefix (data, want))
    return kp_error_set (err, KP_EXIT_RUNTIME, "seccomp: %s is not a kept %s filter", path,
                         kp_seccomp_profile_name (profile));
  *nl = '\0';
  if (maker && strcmp (data + strlen (want), maker) != 0)
    return kp_error_set (err, KP_EXIT_RUNTIME, "seccomp: %s was made by another build", path);
  size_t body = size - (size_t) (nl + 1 - data);
  if (body == 0 || body % sizeof (struct sock_filter) != 0)
    return kp_error_set (err, KP_EXIT_RUNTIME, "seccomp: %s is not a compiled filter", path);
  out->profile = profile;
  out->filter = xmalloc (body);
  memcpy (out->filter, nl + 1, body);
  out->len = body / sizeof (struct sock_filter);
  return 0;
}

void
kp_seccomp_program_clear (kp_seccomp_program *program)
{
  free (program->filter);
  memset (program, 0, sizeof *program);
}

char *
kp_seccomp_describe (kp_seccomp_profile profile)
{
  kp_buf b = KP_BUF_INIT;
  unsigned bit = profile_bit (profile);
  if (bit == 0)
    {
      kp_buf_puts (&b, "No filter: every system call is allowed.\n");
      return kp_buf_steal (&b);
    }
  kp_buf_puts (&b, "| System call | Refused when | Answer | Why |\n");
  kp_buf_puts (&b, "|---|---|---|---|\n");
  for (size_t i = 0; i < KP_N_ELEMENTS (rules); i++)
    {
      const deny_rule *r = &rules[i];
      if (!(r->profiles & bit))
        continue;
      kp_buf_printf (&b, "| `%s` | ", r->syscall);
      switch (r->match)
        {
        case MATCH_ALL:
          kp_buf_puts (&b, "always");
          break;
        case MATCH_IOCTL_REQ:
          kp_buf_printf (&b, "request `%s`", r->request_name);
          break;
        case MATCH_NS_FLAGS:
          kp_buf_printf (&b, "flags hold any `CLONE_NEW*`%s",
                         strcmp (r->syscall, "unshare") == 0 ? "" : ", except `CLONE_NEWTIME`");
          break;
        }
      int e = rule_errno (r, profile);
      kp_buf_printf (&b, " | `%s` | %s |\n", strerrorname_np (e), r->why);
    }
  return kp_buf_steal (&b);
}
