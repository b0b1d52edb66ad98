/* buf.c — growable text buffer. */
#include "buf.h"

#include <stdlib.h>
#include <string.h>

static void
buf_reserve (kp_buf *b, size_t extra)
{
  size_t need;
  if (__builtin_add_overflow (b->len, extra, &need) || __builtin_add_overflow (need, 1, &need))
    kp_oom ();
  if (need <= b->cap)
    return;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < need)
    if (__builtin_mul_overflow (cap, 2, &cap))
      kp_oom ();
  b->data = xrealloc (b->data, cap);
  b->cap = cap;
}

void
kp_buf_append (kp_buf *b, const void *data, size_t len)
{
  buf_reserve (b, len);
  if (len)
    memcpy (b->data + b->len, data, len);
  b->len += len;
  b->data[b->len] = '\0';
}

void
kp_buf_puts (kp_buf *b, const char *s)
{
  kp_buf_append (b, s, strlen (s));
}

void
kp_buf_putc (kp_buf *b, char c)
{
  kp_buf_append (b, &c, 1);
}

void
kp_buf_vprintf (kp_buf *b, const char *fmt, va_list ap)
{
  /* Format into a stack buffer first: most pieces are short, and this needs one pass. */
  char small[256];
  va_list ap2;
  va_copy (ap2, ap);
  int n = vsnprintf (small, sizeof small, fmt, ap2);
  va_end (ap2);
  if (n < 0)
    kp_oom ();
  if ((size_t) n < sizeof small)
    {
      kp_buf_append (b, small, (size_t) n);
      return;
    }
  buf_reserve (b, (size_t) n);
  vsnprintf (b->data + b->len, (size_t) n + 1, fmt, ap);
  b->len += (size_t) n;
}

void
kp_buf_printf (kp_buf *b, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  kp_buf_vprintf (b, fmt, ap);
  va_end (ap);
}

void
kp_buf_put_utf8 (kp_buf *b, uint32_t cp)
{
  char out[4];
  size_t n;
  if (cp < 0x80)
    {
      out[0] = (char) cp;
      n = 1;
    }
  else if (cp < 0x800)
    {
      out[0] = (char) (0xC0 | (cp >> 6));
      out[1] = (char) (0x80 | (cp & 0x3F));
      n = 2;
    }
  else if (cp < 0x10000)
    {
      out[0] = (char) (0xE0 | (cp >> 12));
      out[1] = (char) (0x80 | ((cp >> 6) & 0x3F));
      out[2] = (char) (0x80 | (cp & 0x3F));
      n = 3;
    }
  else
    {
      out[0] = (char) (0xF0 | (cp >> 18));
      out[1] = (char) (0x80 | ((cp >> 12) & 0x3F));
      out[2] = (char) (0x80 | ((cp >> 6) & 0x3F));
      out[3] = (char) (0x80 | (cp & 0x3F));
      n = 4;
    }
  kp_buf_append (b, out, n);
}

char *
kp_buf_extend (kp_buf *b, size_t n)
{
  buf_reserve (b, n);
  char *at = b->data + b->len;
  b->len += n;
  b->data[b->len] = '\0';
  return at;
}

void
kp_buf_truncate (kp_buf *b, size_t len)
{
  if (len < b->len)
    {
      b->len = len;
      b->data[len] = '\0';
    }
}

char *
kp_buf_steal (kp_buf *b)
{
  char *s = b->data ? b->data : xstrdup ("");
  b->data = NULL;
  b->len = b->cap = 0;
  return s;
}

void
kp_buf_clear (kp_buf *b)
{
  free (b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

const char *
kp_buf_str (const kp_buf *b)
{
  return b->data ? b->data : "";
}
