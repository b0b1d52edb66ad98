/* sync.h — the parent/child protocol of the sandbox setup.
 *
 * One frame per SOCK_SEQPACKET message, so a frame is never split or merged and a closed
 * peer reads as end-of-file. Frames: the child says READY once it has unshared; the
 * parent answers GO once the id maps are written, or ERROR; the child ends with RESULT
 * (fn's return value and its kp_error) or ERROR (the setup failed). Errors cross the
 * socket whole: status, errno, message, hint, file, line and column. */
#ifndef KP_SANDBOX_SYNC_H
#define KP_SANDBOX_SYNC_H

#include "base/error.h"

typedef enum kp_sync_kind
{
  KP_SYNC_READY = 1,
  KP_SYNC_GO,
  KP_SYNC_ERROR,  /* value unused; the error is attached */
  KP_SYNC_RESULT, /* value is fn's return value; an error is attached when it is < 0 */
  /* The runtime's (runtime.h) frames. */
  KP_SYNC_TEXT,     /* a string, carried as the attached error's message */
  KP_SYNC_PID,      /* value is a process id as the receiver sees it */
  KP_SYNC_SIGNAL,   /* value is a signal to pass on to the command */
  KP_SYNC_STOPPED,  /* the command stopped (job control); value is the signal */
  KP_SYNC_CONTINUE, /* the command may continue */
  KP_SYNC_EXIT,     /* value is the command's wait status */
} kp_sync_kind;
#define KP_SYNC_KIND_LAST KP_SYNC_EXIT

/* A connected SOCK_SEQPACKET pair, both ends close-on-exec. */
int kp_sync_pair (int fds[2], kp_error **err);

/* Send one frame; e may be NULL. Strings longer than fit in a frame are truncated. Does
 * not allocate, so a forked child may call it. Returns 0 or -errno. */
int kp_sync_send (int fd, kp_sync_kind kind, int value, const kp_error *e);

/* Receive one frame, retrying on EINTR. Returns 1 with *kind, *value and, when the frame
 * carries one, *carried (newly allocated) filled; 0 at end-of-file (the peer closed or
 * died); -1 with err filled when the socket failed or the frame is malformed. */
int kp_sync_recv (int fd, kp_sync_kind *kind, int *value, kp_error **carried, kp_error **err);

/* Send a string in a KP_SYNC_TEXT frame (at most 8191 bytes arrive). */
int kp_sync_send_text (int fd, const char *text);

/* Send a frame and report a failure through err ("what: strerror"). */
int kp_sync_send_or_fail (int fd, kp_sync_kind kind, int value, const kp_error *e,
                          kp_error **err);

#endif
