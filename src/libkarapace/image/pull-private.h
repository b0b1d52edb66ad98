/* pull-private.h — what pull.c and source.c share. */
#ifndef KP_IMAGE_PULL_PRIVATE_H
#define KP_IMAGE_PULL_PRIVATE_H

#include "image/pull.h"

#include <jansson.h>

typedef struct kp_pull_progress kp_pull_progress;

typedef struct kp_pull_ctx
{
  kp_store *store;
  const kp_image_ref *ref;
  const kp_pull_options *opts;
  kp_http *http;
  kp_pull_progress *progress; /* NULL: quiet */
} kp_pull_ctx;

/* Progress lines on stderr (a kp_http_progress_fn); NULL when not enabled. */
kp_pull_progress *kp_pull_progress_new (bool enabled);
void kp_pull_progress_free (kp_pull_progress *p);
void kp_pull_progress_report (const char *label, uint64_t now, uint64_t total, bool done,
                              void *user_data);
/* Print text (ending in a newline) on stderr below the progress lines drawn so far, which
 * stay; later lines are drawn below it. Without progress, just prints it. */
void kp_pull_progress_print (void *user_data, const char *text);
/* A stage of work on its own line: "LABEL  DETAIL  12s", then "done in 3.4s". */
void kp_pull_progress_step (const char *label, const char *detail, bool done,
                            void *user_data);

/* Layer from `objects` (n_layers tars, base first), then the image record under `digest`
 * and, when tag_key is set, the tag. Fills out->tree_digest and out->digest. */
int kp_pull_finish (kp_pull_ctx *ctx, const char *digest, char **objects, size_t n_layers,
                    const char *tag_key, json_t *extra, kp_pull_result *out, kp_error **err);
/* Use the existing record `digest` (its layer must exist); refresh the tag when given. */
int kp_pull_use_record (kp_pull_ctx *ctx, const char *digest, const char *tag_key,
                        kp_pull_result *out, kp_error **err);
/* The digest a tag names when its record and layer are complete, else NULL. */
char *kp_pull_cached_digest (kp_pull_ctx *ctx, const char *tag_key);
/* Open dirfd/rel read-only without leaving dirfd (openat2 RESOLVE_BENEATH, or component
 * by component with O_NOFOLLOW); -1 with errno. */
int kp_pull_open_beneath (int dirfd, const char *rel);
/* Whether plain HTTP / unverified TLS may be used for `host` (loopback hosts always). */
bool kp_pull_insecure_for (const kp_pull_options *opts, const char *host);

/* source.c */
int kp_pull_file (kp_pull_ctx *ctx, kp_pull_result *out, kp_error **err);
int kp_pull_url (kp_pull_ctx *ctx, kp_pull_result *out, kp_error **err);
int kp_pull_dir (kp_pull_ctx *ctx, kp_pull_result *out, kp_error **err);
int kp_pull_lxc (kp_pull_ctx *ctx, kp_pull_result *out, kp_error **err);

/* bootstrap.c */
int kp_pull_debian (kp_pull_ctx *ctx, kp_pull_result *out, kp_error **err);

#endif
