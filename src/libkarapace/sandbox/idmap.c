/* idmap.c — the id mapping of the store's user namespace.
 *
 * Inside id 0 is the caller; inside ids 1..N are the caller's subordinate ranges laid end
 * to end, so a single 65536-id range gives inside 1..65536 and files chowned inside to
 * 1000 are owned on the host by the range's start + 999. */
#include "userns-internal.h"

#include "subid.h"

#include <errno.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Does [start, start+count) overlap any outside range already in the map? */
static bool
overlaps_outside (const kp_idmap_range *ranges, size_t n, uint32_t start, uint32_t count)
{
  uint64_t end = (uint64_t) start + count;
  for (size_t i = 0; i < n; i++)
    {
      uint64_t other_end = (uint64_t) ranges[i].outside + ranges[i].count;
      if (start < other_end && ranges[i].outside < end)
        return true;
    }
  return false;
}

/* Fill one map (uid or gid): 0 → self, then the ranges of `path`. */
static int
build_one (kp_idmap_range *ranges, size_t *n, uint32_t self, const char *user, uid_t uid,
           const char *path, kp_error **err)
{
  ranges[0] = (kp_idmap_range) { 0, self, 1 };
  *n = 1;
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
  uint64_t next_inside = 1;
  for (size_t i = 0; i < sub.len && *n < KP_IDMAP_MAX_RANGES; i++)
    {
      const kp_subid_range *r = &sub.ranges[i];
      /* (u32)-1 is not a valid id inside either. */
      if (next_inside + r->count > UINT32_MAX)
        break;
      if (overlaps_outside (ranges, *n, r->start, r->count))
        continue;
      ranges[(*n)++] = (kp_idmap_range) { (uint32_t) next_inside, r->start, r->count };
      next_inside += r->count;
    }
  kp_subid_ranges_clear (&sub);
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
  /* Both or neither: newuidmap without newgidmap would leave files of inside gid 1.. that
   * cannot be created, which is the single-id case anyway. */
  map->full = map->n_uid > 1 && map->n_gid > 1;
  if (!map->full)
    map->n_uid = map->n_gid = 1;
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
