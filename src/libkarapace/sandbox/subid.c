/* subid.c — the reader of subuid(5)/subgid(5) files (see subid.h).
 *
 * Strict on purpose: a line we do not fully understand is skipped and counted rather than
 * half-parsed, because a wrong range handed to newuidmap fails the whole mapping. */
#include "subid.h"

#include "base/fs.h"

#include <stdlib.h>
#include <string.h>

/* /etc/subuid on a large site is big, but not this big. */
#define KP_SUBID_FILE_MAX (16u << 20)

/* A decimal number of at most 32 bits, digits only. */
static bool
parse_u32 (const char *s, size_t len, uint32_t *out)
{
  if (len == 0 || len > 10)
    return false;
  uint64_t v = 0;
  for (size_t i = 0; i < len; i++)
    {
      if (s[i] < '0' || s[i] > '9')
        return false;
      v = v * 10 + (uint64_t) (s[i] - '0');
    }
  if (v > UINT32_MAX)
    return false;
  *out = (uint32_t) v;
  return true;
}

static bool
is_blank (char ch)
{
  return ch == ' ' || ch == '\t' || ch == '\r';
}

/* One line without its newline. Returns 1 for an entry (name, start, count filled), 0 for
 * a blank line or comment, -1 for a malformed line. */
static int
parse_subid_line (const char *line, size_t len, const char **name, size_t *name_len,
                  uint32_t *start, uint32_t *count)
{
  while (len > 0 && is_blank (line[0]))
    line++, len--;
  while (len > 0 && is_blank (line[len - 1]))
    len--;
  if (len == 0 || line[0] == '#')
    return 0;
  if (memchr (line, '\0', len) != NULL)
    return -1;
  const char *c1 = memchr (line, ':', len);
  if (c1 == NULL || c1 == line)
    return -1;
  const char *rest = c1 + 1;
  size_t rest_len = len - (size_t) (rest - line);
  const char *c2 = memchr (rest, ':', rest_len);
  if (c2 == NULL)
    return -1;
  const char *third = c2 + 1;
  size_t third_len = len - (size_t) (third - line);
  if (!parse_u32 (rest, (size_t) (c2 - rest), start) || !parse_u32 (third, third_len, count))
    return -1; /* also rejects a fourth field: ':' is not a digit */
  /* uid_t (u32)-1 is "no id": a range may end at 4294967294 at most. */
  if (*count == 0 || (uint64_t) *start + *count > UINT32_MAX)
    return -1;
  *name = line;
  *name_len = (size_t) (c1 - line);
  return 1;
}

static bool
subid_name_matches (const char *name, size_t name_len, const char *user, uid_t uid)
{
  if (user != NULL && strlen (user) == name_len && memcmp (name, user, name_len) == 0)
    return true;
  uint32_t numeric;
  return parse_u32 (name, name_len, &numeric) && numeric == (uint32_t) uid;
}

int
kp_subid_read (const char *path, const char *user, uid_t uid, kp_subid_ranges *out,
               kp_error **err)
{
  memset (out, 0, sizeof *out);
  size_t len;
  kp_cleanup_free char *text = kp_file_read (path, KP_SUBID_FILE_MAX, &len, err);
  if (text == NULL)
    return -1;
  size_t cap = 0;
  for (size_t pos = 0; pos < len;)
    {
      const char *line = text + pos;
      const char *nl = memchr (line, '\n', len - pos);
      size_t line_len = nl ? (size_t) (nl - line) : len - pos;
      pos += line_len + 1;

      const char *name;
      size_t name_len;
      uint32_t start, count;
      int r = parse_subid_line (line, line_len, &name, &name_len, &start, &count);
      if (r < 0)
        out->malformed++;
      if (r <= 0 || !subid_name_matches (name, name_len, user, uid))
        continue;
      if (out->len == cap)
        {
          cap = cap ? cap * 2 : 4;
          out->ranges = xreallocarray (out->ranges, cap, sizeof *out->ranges);
        }
      out->ranges[out->len++] = (kp_subid_range) { start, count };
      out->total += count;
    }
  return 0;
}

void
kp_subid_ranges_clear (kp_subid_ranges *r)
{
  free (r->ranges);
  memset (r, 0, sizeof *r);
}
