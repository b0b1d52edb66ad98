/* error.c — construction, wrapping and description of kp_error. */
#include "error.h"

#include <stdlib.h>
#include <string.h>

static kp_error *
error_new (kp_error **err, int status, int errnum, char *message)
{
  if (err == NULL)
    {
      free (message);
      return NULL;
    }
  /* Overwriting an error would lose the first cause; keep the first one. */
  if (*err != NULL)
    {
      free (message);
      return NULL;
    }
  kp_error *e = xcalloc (1, sizeof *e);
  e->status = status;
  e->errno_value = errnum;
  e->message = message;
  *err = e;
  return e;
}

int
kp_error_set (kp_error **err, int status, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  char *msg = xvasprintf (fmt, ap);
  va_end (ap);
  error_new (err, status, 0, msg);
  return -1;
}

int
kp_error_errno (kp_error **err, int errnum, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  kp_cleanup_free char *msg = xvasprintf (fmt, ap);
  va_end (ap);
  error_new (err, KP_EXIT_FAILURE, errnum, xasprintf ("%s: %s", msg, strerror (errnum)));
  return -1;
}

int
kp_error_at (kp_error **err, const char *file, int line, int column, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  char *msg = xvasprintf (fmt, ap);
  va_end (ap);
  kp_error *e = error_new (err, KP_EXIT_MANIFEST, 0, msg);
  if (e)
    {
      e->file = file ? xstrdup (file) : NULL;
      e->line = line;
      e->column = column;
    }
  return -1;
}

int
kp_error_prefix (kp_error **err, const char *fmt, ...)
{
  if (err == NULL || *err == NULL)
    return -1;
  va_list ap;
  va_start (ap, fmt);
  kp_cleanup_free char *prefix = xvasprintf (fmt, ap);
  va_end (ap);
  char *msg = xasprintf ("%s: %s", prefix, (*err)->message);
  free ((*err)->message);
  (*err)->message = msg;
  return -1;
}

void
kp_error_hint (kp_error **err, const char *fmt, ...)
{
  if (err == NULL || *err == NULL)
    return;
  va_list ap;
  va_start (ap, fmt);
  char *hint = xvasprintf (fmt, ap);
  va_end (ap);
  free ((*err)->hint);
  (*err)->hint = hint;
}

void
kp_error_set_status (kp_error **err, int status)
{
  if (err && *err)
    (*err)->status = status;
}

void
kp_error_free (kp_error *e)
{
  if (e == NULL)
    return;
  free (e->message);
  free (e->hint);
  free (e->file);
  free (e);
}

void
kp_error_freep (kp_error **e)
{
  kp_error_free (*e);
  *e = NULL;
}

char *
kp_error_describe (const kp_error *e)
{
  if (e->file && e->line > 0)
    return xasprintf ("%s:%d:%d: %s", e->file, e->line, e->column > 0 ? e->column : 1,
                      e->message);
  if (e->file)
    return xasprintf ("%s: %s", e->file, e->message);
  return xstrdup (e->message);
}
