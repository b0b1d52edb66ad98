/* error.h — the one error type of libkarapace, and its contract (docs/errors.md).
 *
 * A fallible function takes `kp_error **err` as its last argument and returns a negative
 * int (or NULL) on failure after filling *err. The constructors return -1 so a failure
 * site reads as one line:
 *
 *     if (fd < 0)
 *       return kp_error_errno (err, errno, "open '%s'", path);
 *
 * Context is added on the way out with kp_error_prefix(), so the user reads
 * "build: install packages: apt-get exited 100" rather than a bare "exited 100".
 * errno is kept apart from the message; `status` is the exit code class of DESIGN §6. */
#ifndef KP_BASE_ERROR_H
#define KP_BASE_ERROR_H

#include "util.h"

enum kp_exit_status
{
  KP_EXIT_OK = 0,
  KP_EXIT_FAILURE = 1,  /* anything not below */
  KP_EXIT_MANIFEST = 2, /* manifest, lock or configuration file is wrong */
  KP_EXIT_STORE = 3,    /* store missing, locked, corrupt or inconsistent */
  KP_EXIT_RUNTIME = 4,  /* sandbox or runtime could not be set up */
  KP_EXIT_USAGE = 64,   /* command line misuse (EX_USAGE) */
};

typedef struct kp_error
{
  int status;      /* enum kp_exit_status */
  int errno_value; /* 0 when no system call failed */
  char *message;   /* what failed, with context prefixes */
  char *hint;      /* what to do next, or NULL */
  char *file;      /* file the error is about, or NULL */
  int line;        /* 1-based; 0 when unknown */
  int column;      /* 1-based, in characters; 0 when unknown */
} kp_error;

/* A failure with an explicit status; returns -1. */
int kp_error_set (kp_error **err, int status, const char *fmt, ...) KP_PRINTF (3, 4);
/* A failed system call: the message gets ": strerror(errnum)"; status KP_EXIT_FAILURE. */
int kp_error_errno (kp_error **err, int errnum, const char *fmt, ...) KP_PRINTF (3, 4);
/* A problem at a place in a file (manifests, locks, configuration): status KP_EXIT_MANIFEST. */
int kp_error_at (kp_error **err, const char *file, int line, int column, const char *fmt, ...)
    KP_PRINTF (5, 6);

/* Prepend "context: " to an existing error's message; returns -1. */
int kp_error_prefix (kp_error **err, const char *fmt, ...) KP_PRINTF (2, 3);
/* Attach (or replace) the "what to do next" hint. Does nothing when err or *err is NULL. */
void kp_error_hint (kp_error **err, const char *fmt, ...) KP_PRINTF (2, 3);
/* Change the exit status class of an existing error. */
void kp_error_set_status (kp_error **err, int status);

void kp_error_free (kp_error *e);
void kp_error_freep (kp_error **e);
#define kp_cleanup_error __attribute__ ((cleanup (kp_error_freep)))

/* "FILE:LINE:COL: message" (or just the message), without the hint. */
char *kp_error_describe (const kp_error *e);

#endif
