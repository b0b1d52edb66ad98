/* sync.c — frames of the parent/child setup protocol (see sync.h).
 *
 * A frame is a fixed header followed by the error's strings, each NUL-terminated, in a
 * single message of at most KP_SYNC_FRAME_MAX bytes. The receiver checks every length
 * against what actually arrived, so a short or truncated frame is an error, never a read
 * past the buffer. */
#include "sync.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define KP_SYNC_MAGIC 0x6b707331u /* "kps1" */
#define KP_SYNC_FRAME_MAX 16384

/* Longest strings a frame carries; together with the header they fit in a frame. */
#define KP_SYNC_MESSAGE_MAX 8192
#define KP_SYNC_HINT_MAX 4096
#define KP_SYNC_FILE_MAX 2048

_Static_assert (KP_SYNC_MESSAGE_MAX + KP_SYNC_HINT_MAX + KP_SYNC_FILE_MAX + 3 + 64
                    <= KP_SYNC_FRAME_MAX,
                "a full error fits in a frame");

typedef struct kp_sync_header
{
  uint32_t magic;
  uint32_t kind;
  int32_t value;
  uint32_t has_error;
  int32_t status;
  int32_t errno_value;
  int32_t line;
  int32_t column;
  uint32_t message_len; /* bytes, each string followed by its NUL */
  uint32_t hint_len;
  uint32_t file_len;
} kp_sync_header;

int
kp_sync_pair (int fds[2], kp_error **err)
{
  if (socketpair (AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) < 0)
    return kp_error_errno (err, errno, "create the setup socket pair");
  return 0;
}

/* Append s (or "" when NULL) with its NUL, cut to max bytes; returns its length. */
static uint32_t
put_string (char *frame, size_t *used, const char *s, size_t max)
{
  size_t len = s ? strnlen (s, max) : 0;
  if (len > 0)
    memcpy (frame + *used, s, len);
  frame[*used + len] = '\0';
  *used += len + 1;
  return (uint32_t) len;
}

int
kp_sync_send (int fd, kp_sync_kind kind, int value, const kp_error *e)
{
  /* Static size, no allocation: this runs in forked children. */
  char frame[KP_SYNC_FRAME_MAX];
  kp_sync_header h = { .magic = KP_SYNC_MAGIC, .kind = (uint32_t) kind, .value = value };
  size_t used = sizeof h;
  if (e != NULL)
    {
      h.has_error = 1;
      h.status = e->status;
      h.errno_value = e->errno_value;
      h.line = e->line;
      h.column = e->column;
      h.message_len = put_string (frame, &used, e->message, KP_SYNC_MESSAGE_MAX);
      h.hint_len = put_string (frame, &used, e->hint, KP_SYNC_HINT_MAX);
      h.file_len = put_string (frame, &used, e->file, KP_SYNC_FILE_MAX);
    }
  memcpy (frame, &h, sizeof h);
  for (;;)
    {
      ssize_t n = send (fd, frame, used, MSG_NOSIGNAL);
      if (n == (ssize_t) used)
        return 0;
      if (n >= 0)
        return -EMSGSIZE;
      if (errno != EINTR)
        return -errno;
    }
}

int
kp_sync_send_text (int fd, const char *text)
{
  kp_error e = { .status = 0, .message = (char *) text };
  return kp_sync_send (fd, KP_SYNC_TEXT, 0, &e);
}

int
kp_sync_send_or_fail (int fd, kp_sync_kind kind, int value, const kp_error *e, kp_error **err)
{
  int r = kp_sync_send (fd, kind, value, e);
  if (r < 0)
    return kp_error_errno (err, -r, "send to the setup socket");
  return 0;
}

/* The string of `len` bytes at *pos, checked to lie within the frame and end in NUL. */
static const char *
take_string (const char *frame, size_t size, size_t *pos, uint32_t len)
{
  if (*pos > size || (size_t) len >= size - *pos || frame[*pos + len] != '\0'
      || memchr (frame + *pos, '\0', len) != NULL)
    return NULL;
  const char *s = frame + *pos;
  *pos += (size_t) len + 1;
  return s;
}

int
kp_sync_recv (int fd, kp_sync_kind *kind, int *value, kp_error **carried, kp_error **err)
{
  kp_cleanup_free char *frame = xmalloc (KP_SYNC_FRAME_MAX);
  ssize_t n;
  do
    n = recv (fd, frame, KP_SYNC_FRAME_MAX, MSG_TRUNC);
  while (n < 0 && errno == EINTR);
  if (n < 0)
    {
      /* A peer that died with unread data in its queue resets the connection. */
      if (errno == ECONNRESET)
        return 0;
      return kp_error_errno (err, errno, "read from the setup socket");
    }
  if (n == 0)
    return 0;
  kp_sync_header h;
  if ((size_t) n > KP_SYNC_FRAME_MAX || (size_t) n < sizeof h)
    return kp_error_set (err, KP_EXIT_RUNTIME, "setup socket: malformed frame of %zd bytes", n);
  memcpy (&h, frame, sizeof h);
  if (h.magic != KP_SYNC_MAGIC || h.kind < KP_SYNC_READY || h.kind > KP_SYNC_KIND_LAST)
    return kp_error_set (err, KP_EXIT_RUNTIME, "setup socket: unknown frame");
  *kind = (kp_sync_kind) h.kind;
  *value = h.value;
  if (!h.has_error)
    return 1;
  size_t pos = sizeof h;
  const char *message = take_string (frame, (size_t) n, &pos, h.message_len);
  const char *hint = take_string (frame, (size_t) n, &pos, h.hint_len);
  const char *file = take_string (frame, (size_t) n, &pos, h.file_len);
  if (message == NULL || hint == NULL || file == NULL)
    return kp_error_set (err, KP_EXIT_RUNTIME, "setup socket: malformed error frame");
  kp_error *e = xcalloc (1, sizeof *e);
  e->status = h.status;
  e->errno_value = h.errno_value;
  e->message = xstrdup (message);
  e->hint = h.hint_len > 0 ? xstrdup (hint) : NULL;
  e->file = h.file_len > 0 ? xstrdup (file) : NULL;
  e->line = h.line;
  e->column = h.column;
  *carried = e;
  return 1;
}
