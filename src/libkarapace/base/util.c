/* util.c — allocators, cleanup helpers and small string utilities. */
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

void
kp_oom (void)
{
  static const char msg[] = "karapace: out of memory\n";
  ssize_t r KP_UNUSED = write (STDERR_FILENO, msg, sizeof msg - 1);
  abort ();
}

void *
xmalloc (size_t size)
{
  void *p = malloc (size ? size : 1);
  if (p == NULL)
    kp_oom ();
  return p;
}

void *
xcalloc (size_t count, size_t size)
{
  void *p = calloc (count ? count : 1, size ? size : 1);
  if (p == NULL)
    kp_oom ();
  return p;
}

void *
xrealloc (void *ptr, size_t size)
{
  void *p = realloc (ptr, size ? size : 1);
  if (p == NULL)
    kp_oom ();
  return p;
}

void *
xreallocarray (void *ptr, size_t count, size_t size)
{
  size_t total;
  if (__builtin_mul_overflow (count, size, &total))
    kp_oom ();
  return xrealloc (ptr, total);
}

char *
xstrdup (const char *s)
{
  return xmemdup (s, strlen (s) + 1);
}

char *
xstrndup (const char *s, size_t n)
{
  size_t len = strnlen (s, n);
  char *p = xmalloc (len + 1);
  memcpy (p, s, len);
  p[len] = '\0';
  return p;
}

void *
xmemdup (const void *p, size_t n)
{
  void *r = xmalloc (n);
  if (n)
    memcpy (r, p, n);
  return r;
}

char *
xvasprintf (const char *fmt, va_list ap)
{
  char *s = NULL;
  if (vasprintf (&s, fmt, ap) < 0)
    kp_oom ();
  return s;
}

char *
xasprintf (const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  char *s = xvasprintf (fmt, ap);
  va_end (ap);
  return s;
}

void
kp_freep (void *p)
{
  void **pp = (void **) p;
  free (*pp);
  *pp = NULL;
}

void
kp_closep (int *fd)
{
  if (*fd >= 0)
    {
      int saved = errno;
      close (*fd);
      errno = saved;
      *fd = -1;
    }
}

void
kp_fclosep (FILE **f)
{
  if (*f)
    {
      int saved = errno;
      fclose (*f);
      errno = saved;
      *f = NULL;
    }
}

void
kp_closedirp (DIR **d)
{
  if (*d)
    {
      int saved = errno;
      closedir (*d);
      errno = saved;
      *d = NULL;
    }
}

size_t
kp_strv_length (char *const *v)
{
  size_t n = 0;
  while (v && v[n])
    n++;
  return n;
}

void
kp_strv_free (char **v)
{
  for (size_t i = 0; v && v[i]; i++)
    free (v[i]);
  free (v);
}

void
kp_strvfreep (char ***v)
{
  kp_strv_free (*v);
  *v = NULL;
}

char **
kp_strv_dup (char *const *v)
{
  size_t n = kp_strv_length (v);
  char **r = xcalloc (n + 1, sizeof (char *));
  for (size_t i = 0; i < n; i++)
    r[i] = xstrdup (v[i]);
  return r;
}

bool
kp_strv_contains (char *const *v, const char *s)
{
  for (size_t i = 0; v && v[i]; i++)
    if (strcmp (v[i], s) == 0)
      return true;
  return false;
}

bool
kp_str_has_prefix (const char *s, const char *prefix)
{
  return strncmp (s, prefix, strlen (prefix)) == 0;
}

bool
kp_str_has_suffix (const char *s, const char *suffix)
{
  size_t ls = strlen (s), lx = strlen (suffix);
  return ls >= lx && memcmp (s + ls - lx, suffix, lx) == 0;
}

bool
kp_str_equal0 (const char *a, const char *b)
{
  if (a == NULL || b == NULL)
    return a == b;
  return strcmp (a, b) == 0;
}

size_t
kp_levenshtein (const char *a, const char *b)
{
  size_t la = strlen (a), lb = strlen (b);
  kp_cleanup_free size_t *row = xcalloc (lb + 1, sizeof (size_t));
  for (size_t j = 0; j <= lb; j++)
    row[j] = j;
  for (size_t i = 1; i <= la; i++)
    {
      size_t diag = row[0];
      row[0] = i;
      for (size_t j = 1; j <= lb; j++)
        {
          size_t up = row[j];
          size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
          size_t best = diag + cost;
          if (up + 1 < best)
            best = up + 1;
          if (row[j - 1] + 1 < best)
            best = row[j - 1] + 1;
          row[j] = best;
          diag = up;
        }
    }
  return row[lb];
}

int
kp_wait_child (pid_t pid, int options)
{
  int status;
  pid_t r;
  while ((r = waitpid (pid, &status, options)) < 0)
    if (errno != EINTR)
      return -1;
  return r == 0 ? -2 : status;
}
