/* idmap.c — the id mapping of the store's user namespace ("keep-id").
 *
 * The caller's subordinate ids, concatenated in file order, form a list S; inside id i is
 * S[i], except that the caller's own id u is itself inside (S[u] stays unused). The
 * caller's files therefore keep their owner inside, so whatever is created in a
 * bind-mounted host directory stays the caller's, while an image's root is S[0] on the
 * host and its uid 1000 is S[1000] (unless the caller is 1000). With one range of 65536
 * ids starting at 100000 and a caller of uid 1000, the lines are `0 100000 1000`,
 * `1000 1000 1` and `1001 101001 64535`. */
#include "userns-internal.h"

#include "base/util.h"
#include "subid.h"

#include <errno.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Does [start, start+count) overlap self or any range in list? */
static bool
overlaps (const kp_subid_range *list, size_t n, uint32_t self, uint32_t start, uint32_t count)
{
  uint64_t end = (uint64_t) start + count;
  if (start <= self && self < end)
    return true;
  for (size_t i = 0; i < n; i++)
    if (start < (uint64_t) list[i].start + list[i].count && list[i].start < end)
      return true;
  return false;
}

/* Append a line unless the map is full (the last slot is kept for the caller's own line).
 * Returns false when it did not fit. */
static bool
add_line (kp_idmap_range *lines, size_t *n, uint64_t inside, uint64_t outside, uint64_t count)
{
  if (count == 0)
    return true;
  if (*n >= KP_IDMAP_MAX_RANGES - 1)
    return false;
  lines[(*n)++] = (kp_idmap_range) { (uint32_t) inside, (uint32_t) outside, (uint32_t) count };
  return true;
}

/* Fill one map (uid or gid) from the ranges of `path`: S laid out from inside 0 with the
 * caller's id `self` kept as itself. *n stays 0 when there are no usable ranges. */
static int
build_one (kp_idmap_range *lines, size_t *n, uint32_t self, const char *user, uid_t uid,
           const char *path, kp_error **err)
{
  *n = 0;
  kp_cleanup_error kp_error *read_err = NULL;
  kp_subid_ranges sub;
  if (kp_subid_read (path, user, uid, &sub, &read_err) < 0)
    {
      if (read_err->errno_value == ENOENT)
        return 0;
      *err = kp_steal_pointer (&read_err);
      kp_error_hint (err, "make %s readable (mode 0644), or remove it to map only your own id",
                     path);
      return -1;
    }

  /* The ranges used, in file order: the kernel refuses a map whose lines overlap. */
  kp_subid_range *used = xmalloc ((sub.len + 1) * sizeof *used);
  size_t n_used = 0;
  uint64_t total = 0;
  for (size_t i = 0; i < sub.len; i++)
    {
      const kp_subid_range *r = &sub.ranges[i];
      /* (u32)-1 is not a valid id inside either. */
      if (total + r->count > UINT32_MAX)
        break;
      if (overlaps (used, n_used, self, r->start, r->count))
        continue;
      used[n_used++] = *r;
      total += r->count;
    }

  /* Lay S out from inside 0, cutting S[self] out of the range that holds it. */
  bool fits = true;
  uint64_t inside = 0;
  for (size_t i = 0; i < n_used && fits; i++)
    {
      uint64_t start = used[i].start, count = used[i].count;
      if (self >= inside && self < inside + count)
        {
          uint64_t before = self - inside;
          fits = add_line (lines, n, inside, start, before)
                 && add_line (lines, n, self + 1, start + before + 1, count - before - 1);
        }
      else
        fits = add_line (lines, n, inside, start, count);
      inside += count;
    }
  free (used);
  kp_subid_ranges_clear (&sub);
  if (*n == 0)
    return 0;

  /* The caller's own line, always present, in its place by inside id. */
  size_t at = 0;
  while (at < *n && lines[at].inside < self)
    at++;
  memmove (&lines[at + 1], &lines[at], (*n - at) * sizeof *lines);
  lines[at] = (kp_idmap_range) { self, self, 1 };
  (*n)++;
  return 0;
}

int
kp_idmap_build (kp_idmap *map, uid_t uid, gid_t gid, const char *user, const char *subuid_path,
                const char *subgid_path, kp_error **err)
{
  memset (map, 0, sizeof *map);
  if (build_one (map->uid, &map->n_uid, (uint32_t) uid, user, uid, subuid_path, err) < 0
      || build_one (map->gid, &map->n_gid, (uint32_t) gid, user, uid, subgid_path, err) < 0)
    {
      memset (map, 0, sizeof *map);
      return -1;
    }
  /* Both or neither: newuidmap without newgidmap would leave files of other groups that
   * cannot be created, which is the single-id case anyway. */
  if (map->n_uid > 0 && map->n_gid > 0)
    {
      map->full = true;
      map->self_uid = (uint32_t) uid;
      map->self_gid = (uint32_t) gid;
      return 0;
    }
  kp_idmap_single (map, uid, gid, 0, 0);
  return 0;
}

int
kp_idmap_for_caller (kp_idmap *map, kp_error **err)
{
  uid_t uid = getuid ();
  gid_t gid = getgid ();
  struct passwd pw, *found = NULL;
  char buf[4096];
  const char *user = NULL;
  if (getpwuid_r (uid, &pw, buf, sizeof buf, &found) == 0 && found != NULL)
    user = found->pw_name;
  return kp_idmap_build (map, uid, gid, user, KP_SUBUID_PATH, KP_SUBGID_PATH, err);
}
