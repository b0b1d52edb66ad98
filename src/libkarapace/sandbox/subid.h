/* subid.h — subordinate id ranges from subuid(5)/subgid(5) files.
 *
 * The one reader of /etc/subuid and /etc/subgid: the user namespace setup maps these
 * ranges (userns.c), and `karapace doctor` reports on them (engine/doctor-ids.c). The
 * path is a parameter so that tests can feed hostile files without touching /etc. */
#ifndef KP_SANDBOX_SUBID_H
#define KP_SANDBOX_SUBID_H

#include "base/error.h"

#include <sys/types.h>

#define KP_SUBUID_PATH "/etc/subuid"
#define KP_SUBGID_PATH "/etc/subgid"

typedef struct kp_subid_range
{
  uint32_t start;
  uint32_t count;
} kp_subid_range;

typedef struct kp_subid_ranges
{
  kp_subid_range *ranges;
  size_t len;
  uint64_t total;   /* sum of counts */
  size_t malformed; /* lines that were neither entries, comments nor blank; ignored */
} kp_subid_ranges;

/* Read the ranges of one user from a subuid(5)/subgid(5) file, in file order. A line
 * "NAME:START:COUNT" belongs to the user when NAME is `user` or the decimal `uid` (user
 * may be NULL when the id has no name). Blank lines and lines starting with '#' are
 * skipped; malformed lines (wrong field count, non-decimal or out-of-range numbers, a
 * count of 0, a range past 2^32-2) are counted and skipped. Fails only when the file
 * cannot be read (err carries errno, ENOENT when missing); *out is then empty. */
int kp_subid_read (const char *path, const char *user, uid_t uid, kp_subid_ranges *out,
                   kp_error **err);
void kp_subid_ranges_clear (kp_subid_ranges *r);

#endif
