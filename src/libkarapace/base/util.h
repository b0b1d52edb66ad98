/* util.h — allocation that aborts on exhaustion, scoped cleanup and ownership transfer.
 *
 * Every resource a function holds is declared with a kp_cleanup_* attribute so that each
 * early return releases it; ownership leaves a scope only through kp_steal_pointer() or
 * kp_steal_fd(), which makes the transfer visible at the call site. */
#ifndef KP_BASE_UTIL_H
#define KP_BASE_UTIL_H

#include <dirent.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#define KP_API __attribute__ ((visibility ("default")))
#define KP_PRINTF(fmt, args) __attribute__ ((format (printf, fmt, args)))
#define KP_NORETURN __attribute__ ((noreturn))
#define KP_UNUSED __attribute__ ((unused))
#define KP_N_ELEMENTS(a) (sizeof (a) / sizeof ((a)[0]))

/* Allocators: out-of-memory is not an error a caller can handle well, so we abort. */
void *xmalloc (size_t size);
void *xcalloc (size_t count, size_t size);
void *xrealloc (void *ptr, size_t size);
void *xreallocarray (void *ptr, size_t count, size_t size);
char *xstrdup (const char *s);
char *xstrndup (const char *s, size_t n);
void *xmemdup (const void *p, size_t n);
char *xasprintf (const char *fmt, ...) KP_PRINTF (1, 2);
char *xvasprintf (const char *fmt, va_list ap) KP_PRINTF (1, 0);
KP_NORETURN void kp_oom (void);

/* Cleanup helpers used through the attributes below. */
void kp_freep (void *p);
void kp_closep (int *fd);
void kp_fclosep (FILE **f);
void kp_closedirp (DIR **d);
void kp_strvfreep (char ***v);

#define kp_cleanup_free __attribute__ ((cleanup (kp_freep)))
#define kp_cleanup_close __attribute__ ((cleanup (kp_closep)))
#define kp_cleanup_file __attribute__ ((cleanup (kp_fclosep)))
#define kp_cleanup_dir __attribute__ ((cleanup (kp_closedirp)))
#define kp_cleanup_strv __attribute__ ((cleanup (kp_strvfreep)))

static inline void *
kp_steal_pointer_impl (void *pp)
{
  void **p = (void **) pp;
  void *v = *p;
  *p = NULL;
  return v;
}
#define kp_steal_pointer(pp) ((__typeof__ (*(pp))) kp_steal_pointer_impl (pp))

static inline int
kp_steal_fd (int *fd)
{
  int v = *fd;
  *fd = -1;
  return v;
}

/* NULL-terminated string vectors. */
size_t kp_strv_length (char *const *v);
void kp_strv_free (char **v);
char **kp_strv_dup (char *const *v);
bool kp_strv_contains (char *const *v, const char *s);

bool kp_str_has_prefix (const char *s, const char *prefix);

/* waitpid(2) for one child, retrying on EINTR: its wait status, -1 when pid is not a child
 * of ours, and with WNOHANG -2 when it has not changed state. */
int kp_wait_child (pid_t pid, int options);
bool kp_str_has_suffix (const char *s, const char *suffix);
bool kp_str_equal0 (const char *a, const char *b); /* NULL-safe strcmp == 0 */

/* Edit distance, used for "did you mean" hints. */
size_t kp_levenshtein (const char *a, const char *b);

#endif
