/* buf.h — a growable byte buffer, always NUL-terminated, for building text. */
#ifndef KP_BASE_BUF_H
#define KP_BASE_BUF_H

#include "util.h"

typedef struct kp_buf
{
  char *data; /* NUL-terminated; NULL until the first append */
  size_t len;
  size_t cap;
} kp_buf;

#define KP_BUF_INIT { NULL, 0, 0 }

void kp_buf_append (kp_buf *b, const void *data, size_t len);
void kp_buf_puts (kp_buf *b, const char *s);
void kp_buf_putc (kp_buf *b, char c);
void kp_buf_printf (kp_buf *b, const char *fmt, ...) KP_PRINTF (2, 3);
void kp_buf_vprintf (kp_buf *b, const char *fmt, va_list ap) KP_PRINTF (2, 0);
/* Append UTF-8 for a Unicode scalar value (caller checks validity). */
void kp_buf_put_utf8 (kp_buf *b, uint32_t cp);
void kp_buf_truncate (kp_buf *b, size_t len);
/* Lengthen the buffer by n bytes and return where they start, for the caller to fill
 * (their content is unspecified until then; the text stays NUL-terminated). */
char *kp_buf_extend (kp_buf *b, size_t n);
/* Give the text away; the buffer is empty afterwards. Never returns NULL. */
char *kp_buf_steal (kp_buf *b);
void kp_buf_clear (kp_buf *b);
const char *kp_buf_str (const kp_buf *b); /* "" when empty */

#define kp_cleanup_buf __attribute__ ((cleanup (kp_buf_clear)))

#endif
