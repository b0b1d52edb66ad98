/* deb822.c — control-file paragraphs, Release files and Debian version ordering. */
#include "image/deb822.h"

#include "base/buf.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

void
kp_deb822_clear (kp_deb822 *d)
{
  for (size_t i = 0; i < d->n; i++)
    {
      for (size_t j = 0; j < d->paragraphs[i].n_fields; j++)
        {
          free (d->paragraphs[i].fields[j].name);
          free (d->paragraphs[i].fields[j].value);
        }
      free (d->paragraphs[i].fields);
    }
  free (d->paragraphs);
  memset (d, 0, sizeof *d);
}

const char *
kp_deb822_get (const kp_deb822_paragraph *p, const char *name)
{
  for (size_t i = 0; i < p->n_fields; i++)
    if (strcasecmp (p->fields[i].name, name) == 0)
      return p->fields[i].value;
  return NULL;
}

static kp_deb822_paragraph *
new_paragraph (kp_deb822 *d, int line)
{
  d->paragraphs = xreallocarray (d->paragraphs, d->n + 1, sizeof *d->paragraphs);
  kp_deb822_paragraph *p = &d->paragraphs[d->n++];
  memset (p, 0, sizeof *p);
  p->line = line;
  return p;
}

int
kp_deb822_parse (const char *text, size_t len, const char *what, kp_deb822 *out,
                 kp_error **err)
{
  memset (out, 0, sizeof *out);
  kp_deb822_paragraph *cur = NULL;
  kp_buf value = KP_BUF_INIT;
  int line = 0;
  size_t i = 0;
  while (i < len)
    {
      line++;
      const char *start = text + i;
      const char *nl = memchr (start, '\n', len - i);
      size_t n = nl ? (size_t) (nl - start) : len - i;
      i += n + (nl ? 1 : 0);
      if (n > 0 && start[n - 1] == '\r')
        n--;
      bool blank = true;
      for (size_t k = 0; k < n; k++)
        if (start[k] != ' ' && start[k] != '\t')
          blank = false;
      if (blank)
        {
          cur = NULL;
          continue;
        }
      if (start[0] == '#')
        continue;
      if (start[0] == ' ' || start[0] == '\t')
        {
          if (cur == NULL || cur->n_fields == 0)
            {
              kp_buf_clear (&value);
              kp_deb822_clear (out);
              return kp_error_set (err, KP_EXIT_FAILURE, "%s, line %d: a continuation line "
                                   "with no field before it", what, line);
            }
          kp_deb822_field *f = &cur->fields[cur->n_fields - 1];
          /* " ." stands for an empty line in long descriptions. */
          const char *v = start + 1;
          size_t vn = n - 1;
          kp_cleanup_free char *joined = xasprintf ("%s%s%.*s", f->value, *f->value ? "\n" : "",
                                                    (int) vn, v);
          free (f->value);
          f->value = kp_steal_pointer (&joined);
          continue;
        }
      const char *colon = memchr (start, ':', n);
      if (colon == NULL || colon == start)
        {
          kp_deb822_clear (out);
          return kp_error_set (err, KP_EXIT_FAILURE, "%s, line %d: not a field (\"Name: "
                               "value\")", what, line);
        }
      if (cur == NULL)
        cur = new_paragraph (out, line);
      kp_cleanup_free char *name = xstrndup (start, (size_t) (colon - start));
      if (kp_deb822_get (cur, name) != NULL)
        {
          kp_deb822_clear (out);
          return kp_error_set (err, KP_EXIT_FAILURE, "%s, line %d: field %s given twice in "
                               "one paragraph", what, line, name);
        }
      const char *v = colon + 1;
      size_t vn = n - (size_t) (v - start);
      while (vn > 0 && (*v == ' ' || *v == '\t'))
        v++, vn--;
      while (vn > 0 && (v[vn - 1] == ' ' || v[vn - 1] == '\t'))
        vn--;
      cur->fields = xreallocarray (cur->fields, cur->n_fields + 1, sizeof *cur->fields);
      cur->fields[cur->n_fields].name = kp_steal_pointer (&name);
      cur->fields[cur->n_fields].value = xstrndup (v, vn);
      cur->n_fields++;
    }
  kp_buf_clear (&value);
  return 0;
}

/* ---- Release ---- */

void
kp_release_clear (kp_release *r)
{
  free (r->suite);
  free (r->codename);
  free (r->date);
  kp_strv_free (r->architectures);
  kp_strv_free (r->components);
  for (size_t i = 0; i < r->n_files; i++)
    free (r->files[i].path);
  free (r->files);
  memset (r, 0, sizeof *r);
}

static char **
split_words (const char *s)
{
  size_t n = 0;
  char **v = xcalloc (1, sizeof (char *));
  while (s && *s)
    {
      while (*s == ' ' || *s == '\t' || *s == '\n')
        s++;
      size_t w = strcspn (s, " \t\n");
      if (w == 0)
        break;
      v = xreallocarray (v, n + 2, sizeof (char *));
      v[n++] = xstrndup (s, w);
      v[n] = NULL;
      s += w;
    }
  return v;
}

/* "Sat, 09 Nov 2024 10:33:47 UTC" → seconds since the epoch, or -1. */
static int64_t
parse_release_date (const char *s)
{
  static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
  char mon[4] = "";
  int day, year, h, m, sec;
  const char *comma = strchr (s, ',');
  if (sscanf (comma ? comma + 1 : s, "%d %3s %d %d:%d:%d", &day, mon, &year, &h, &m, &sec) != 6)
    return -1;
  int month = -1;
  for (int k = 0; k < 12; k++)
    if (strcmp (mon, months[k]) == 0)
      month = k;
  if (month < 0)
    return -1;
  struct tm tm = { .tm_year = year - 1900, .tm_mon = month, .tm_mday = day, .tm_hour = h,
                   .tm_min = m, .tm_sec = sec };
  return (int64_t) timegm (&tm);
}

int
kp_release_parse (const char *text, size_t len, kp_release *out, kp_error **err)
{
  memset (out, 0, sizeof *out);
  kp_deb822 d;
  if (kp_deb822_parse (text, len, "the Release file", &d, err) < 0)
    return -1;
  int rc = -1;
  if (d.n == 0)
    {
      kp_error_set (err, KP_EXIT_FAILURE, "the Release file is empty");
      goto out;
    }
  const kp_deb822_paragraph *p = &d.paragraphs[0];
  const char *suite = kp_deb822_get (p, "Suite");
  const char *codename = kp_deb822_get (p, "Codename");
  const char *date = kp_deb822_get (p, "Date");
  const char *sha = kp_deb822_get (p, "SHA256");
  if (sha == NULL)
    {
      kp_error_set (err, KP_EXIT_FAILURE, "the Release file has no SHA256 list");
      kp_error_hint (err, "MD5 and SHA1 sums alone are not trusted; use a mirror that "
                          "publishes SHA256");
      goto out;
    }
  out->suite = suite ? xstrdup (suite) : NULL;
  out->codename = codename ? xstrdup (codename) : NULL;
  out->date = date ? xstrdup (date) : NULL;
  out->date_epoch = date ? parse_release_date (date) : -1;
  out->architectures = split_words (kp_deb822_get (p, "Architectures"));
  out->components = split_words (kp_deb822_get (p, "Components"));
  const char *s = sha;
  while (*s)
    {
      const char *nl = strchr (s, '\n');
      size_t n = nl ? (size_t) (nl - s) : strlen (s);
      kp_cleanup_free char *entry = xstrndup (s, n);
      s += n + (nl ? 1 : 0);
      char hex[129] = "", path[1024] = "";
      unsigned long long size = 0;
      if (sscanf (entry, " %128s %llu %1023s", hex, &size, path) != 3)
        continue;
      bool ok = strlen (hex) == 64;
      for (size_t k = 0; ok && k < 64; k++)
        ok = isxdigit ((unsigned char) hex[k]) && !isupper ((unsigned char) hex[k]);
      if (!ok || path[0] == '/' || strstr (path, ".."))
        {
          kp_error_set (err, KP_EXIT_FAILURE, "the Release file's SHA256 list has a malformed "
                        "entry: %s", entry);
          goto out;
        }
      out->files = xreallocarray (out->files, out->n_files + 1, sizeof *out->files);
      kp_release_file *f = &out->files[out->n_files++];
      f->path = xstrdup (path);
      memcpy (f->sha256, hex, 65);
      f->size = size;
    }
  rc = 0;
out:
  kp_deb822_clear (&d);
  if (rc < 0)
    kp_release_clear (out);
  return rc;
}

const kp_release_file *
kp_release_find (const kp_release *r, const char *path)
{
  for (size_t i = 0; i < r->n_files; i++)
    if (strcmp (r->files[i].path, path) == 0)
      return &r->files[i];
  return NULL;
}

/* ---- versions (deb-version(7)) ---- */

/* The order of one character in the non-digit parts: '~' first (even before the end of
 * the part), then the end, then letters, then everything else by its code. */
static int
char_order (int c)
{
  if (c == '~')
    return -1;
  if (isalpha (c))
    return c;
  return c + 256;
}

static int
compare_part (const char *a, const char *b)
{
  while (*a || *b)
    {
      int diff = 0;
      while ((*a && !isdigit ((unsigned char) *a)) || (*b && !isdigit ((unsigned char) *b)))
        {
          bool an = *a && !isdigit ((unsigned char) *a);
          bool bn = *b && !isdigit ((unsigned char) *b);
          int ac = an ? char_order ((unsigned char) *a) : 0;
          int bc = bn ? char_order ((unsigned char) *b) : 0;
          if (ac != bc)
            return ac - bc;
          a += an;
          b += bn;
        }
      while (*a == '0')
        a++;
      while (*b == '0')
        b++;
      while (isdigit ((unsigned char) *a) && isdigit ((unsigned char) *b))
        {
          if (diff == 0)
            diff = *a - *b;
          a++, b++;
        }
      if (isdigit ((unsigned char) *a))
        return 1;
      if (isdigit ((unsigned char) *b))
        return -1;
      if (diff)
        return diff;
    }
  return 0;
}

static void
split_version (const char *v, long *epoch, char **upstream, char **revision)
{
  const char *colon = strchr (v, ':');
  *epoch = colon ? strtol (v, NULL, 10) : 0;
  const char *rest = colon ? colon + 1 : v;
  const char *dash = strrchr (rest, '-');
  *upstream = dash ? xstrndup (rest, (size_t) (dash - rest)) : xstrdup (rest);
  *revision = xstrdup (dash ? dash + 1 : "");
}

int
kp_deb_version_compare (const char *a, const char *b)
{
  long ea, eb;
  kp_cleanup_free char *ua = NULL, *ra = NULL, *ub = NULL, *rb = NULL;
  split_version (a, &ea, &ua, &ra);
  split_version (b, &eb, &ub, &rb);
  if (ea != eb)
    return ea < eb ? -1 : 1;
  int c = compare_part (ua, ub);
  if (c)
    return c < 0 ? -1 : 1;
  c = compare_part (ra, rb);
  return c < 0 ? -1 : c > 0;
}
