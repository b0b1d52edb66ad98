/* debian.c — InRelease verification with gpgv, the Packages index and the package set. */
#include "image/debian.h"

#include "base/buf.h"
#include "base/fs.h"
#include "image/deb822.h"

#include <archive.h>
#include <archive_entry.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- gpgv ---- */

static int
read_fd_all (int fd, kp_buf *out)
{
  char buf[65536];
  for (;;)
    {
      ssize_t n = read (fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return -1;
      if (n == 0)
        return 0;
      kp_buf_append (out, buf, (size_t) n);
    }
}

int
kp_debian_verify_inrelease (const char *inrelease, size_t inrelease_len, const char *keyring,
                            char **release, size_t *len, kp_error **err)
{
  kp_cleanup_free char *gpgv = kp_find_program ("gpgv");
  if (gpgv == NULL)
    {
      kp_error_set (err, KP_EXIT_FAILURE, "gpgv is not installed: the mirror's signature "
                    "cannot be checked");
      kp_error_hint (err, "install it: apt-get install gpgv");
      return -1;
    }
  if (access (keyring, R_OK) != 0)
    {
      kp_error_errno (err, errno, "the keyring %s", keyring);
      kp_error_hint (err, "install the distribution's keyring (debian-archive-keyring, "
                          "ubuntu-keyring) or set [mirrors] keyring_dir in config.toml");
      return -1;
    }
  /* The InRelease goes in through a memfd (gpgv reads it as /dev/fd/3), the signed text
     comes out on a pipe, gpgv's messages on another. */
  kp_cleanup_close int mfd = memfd_create ("InRelease", 0);
  if (mfd < 0 || kp_write_all (mfd, inrelease, inrelease_len) < 0 || lseek (mfd, 0, SEEK_SET) < 0)
    return kp_error_errno (err, errno, "prepare the InRelease file for gpgv");
  int outp[2], errp[2];
  if (pipe2 (outp, O_CLOEXEC) < 0)
    return kp_error_errno (err, errno, "pipe");
  if (pipe2 (errp, O_CLOEXEC) < 0)
    {
      close (outp[0]);
      close (outp[1]);
      return kp_error_errno (err, errno, "pipe");
    }
  pid_t pid = fork ();
  if (pid < 0)
    return kp_error_errno (err, errno, "fork");
  if (pid == 0)
    {
      dup2 (mfd, 3);
      dup2 (outp[1], 1);
      dup2 (errp[1], 2);
      int null = open ("/dev/null", O_RDONLY);
      if (null >= 0)
        dup2 (null, 0);
      execl (gpgv, "gpgv", "--quiet", "--keyring", keyring, "--output", "-", "/dev/fd/3",
             (char *) NULL);
      _exit (127);
    }
  close (outp[1]);
  close (errp[1]);
  kp_buf text = KP_BUF_INIT, msgs = KP_BUF_INIT;
  /* The signed text is small next to a pipe's buffer only for tiny files: read both
     streams without blocking on either by reading stdout fully first and then stderr,
     which gpgv keeps short. */
  int rr = read_fd_all (outp[0], &text);
  read_fd_all (errp[0], &msgs);
  close (outp[0]);
  close (errp[0]);
  int status = kp_wait_child (pid, 0);
  kp_buf_append (&msgs, "", 1);
  if (rr < 0 || status != 0 || text.len == 0)
    {
      char *m = msgs.data ? msgs.data : (char *) "";
      size_t ml = strlen (m);
      while (ml > 0 && m[ml - 1] == '\n')
        m[--ml] = '\0';
      kp_error_set (err, KP_EXIT_FAILURE, "the mirror's InRelease is not signed by a key of "
                    "%s: gpgv says: %s", keyring, *m ? m : "nothing");
      kp_error_hint (err, "nothing was used or kept; check the mirror (a proxy may alter "
                          "files) and the keyring");
      kp_buf_clear (&text);
      kp_buf_clear (&msgs);
      return -1;
    }
  kp_buf_clear (&msgs);
  *len = text.len;
  kp_buf_append (&text, "", 1);
  *release = kp_buf_steal (&text);
  return 0;
}

/* ---- Packages ---- */

static void
package_clear (kp_deb_package *p)
{
  free (p->name);
  free (p->version);
  free (p->arch);
  free (p->filename);
  free (p->depends);
  free (p->pre_depends);
  free (p->provides);
  free (p->priority);
}

void
kp_deb_index_clear (kp_deb_index *idx)
{
  for (size_t i = 0; i < idx->n; i++)
    package_clear (&idx->pkgs[i]);
  free (idx->pkgs);
  memset (idx, 0, sizeof *idx);
}

static int
compare_packages (const void *a, const void *b)
{
  const kp_deb_package *x = a, *y = b;
  int c = strcmp (x->name, y->name);
  if (c)
    return c;
  return -kp_deb_version_compare (x->version, y->version);
}

static char *
dup_or_null (const char *s)
{
  return s ? xstrdup (s) : NULL;
}

int
kp_deb_index_parse (const char *text, size_t len, kp_deb_index *out, kp_error **err)
{
  memset (out, 0, sizeof *out);
  kp_deb822 d;
  if (kp_deb822_parse (text, len, "the Packages index", &d, err) < 0)
    return -1;
  out->pkgs = xcalloc (d.n + 1, sizeof *out->pkgs);
  for (size_t i = 0; i < d.n; i++)
    {
      const kp_deb822_paragraph *p = &d.paragraphs[i];
      static const char *const required[] = { "Package", "Version", "Architecture",
                                              "Filename", "SHA256", "Size" };
      for (size_t k = 0; k < KP_N_ELEMENTS (required); k++)
        if (kp_deb822_get (p, required[k]) == NULL)
          {
            kp_error_set (err, KP_EXIT_FAILURE, "the Packages index, line %d: the stanza has "
                          "no %s", p->line, required[k]);
            goto fail;
          }
      const char *filename = kp_deb822_get (p, "Filename");
      const char *sha = kp_deb822_get (p, "SHA256");
      bool sha_ok = strlen (sha) == 64;
      for (size_t k = 0; sha_ok && k < 64; k++)
        sha_ok = isxdigit ((unsigned char) sha[k]) && !isupper ((unsigned char) sha[k]);
      if (filename[0] == '/' || strstr (filename, "..") || !sha_ok)
        {
          kp_error_set (err, KP_EXIT_FAILURE, "the Packages index, line %d: %s", p->line,
                        sha_ok ? "unsafe Filename" : "malformed SHA256");
          goto fail;
        }
      kp_deb_package *pkg = &out->pkgs[out->n++];
      pkg->name = xstrdup (kp_deb822_get (p, "Package"));
      pkg->version = xstrdup (kp_deb822_get (p, "Version"));
      pkg->arch = xstrdup (kp_deb822_get (p, "Architecture"));
      pkg->filename = xstrdup (filename);
      memcpy (pkg->sha256, sha, 65);
      pkg->size = strtoull (kp_deb822_get (p, "Size"), NULL, 10);
      pkg->depends = dup_or_null (kp_deb822_get (p, "Depends"));
      pkg->pre_depends = dup_or_null (kp_deb822_get (p, "Pre-Depends"));
      pkg->provides = dup_or_null (kp_deb822_get (p, "Provides"));
      pkg->priority = dup_or_null (kp_deb822_get (p, "Priority"));
      const char *ess = kp_deb822_get (p, "Essential");
      pkg->essential = ess && strcasecmp (ess, "yes") == 0;
    }
  kp_deb822_clear (&d);
  if (out->n > 1)
    qsort (out->pkgs, out->n, sizeof *out->pkgs, compare_packages);
  return 0;
fail:
  kp_deb822_clear (&d);
  kp_deb_index_clear (out);
  return -1;
}

const kp_deb_package *
kp_deb_index_find (const kp_deb_index *idx, const char *name)
{
  size_t lo = 0, hi = idx->n;
  while (lo < hi)
    {
      size_t mid = lo + (hi - lo) / 2;
      if (strcmp (idx->pkgs[mid].name, name) < 0)
        lo = mid + 1;
      else
        hi = mid;
    }
  return lo < idx->n && strcmp (idx->pkgs[lo].name, name) == 0 ? &idx->pkgs[lo] : NULL;
}

/* ---- resolving ---- */

typedef struct relation
{
  char *name;
  char *op;      /* "<<", "<=", "=", ">=", ">>", or NULL */
  char *version;
} relation;

static void
relation_clear (relation *r)
{
  free (r->name);
  free (r->op);
  free (r->version);
}

/* "name[:arch] [(op version)]" */
static int
parse_relation (const char *s, size_t n, relation *out)
{
  memset (out, 0, sizeof *out);
  while (n > 0 && isspace ((unsigned char) *s))
    s++, n--;
  size_t w = 0;
  while (w < n && !isspace ((unsigned char) s[w]) && s[w] != '(' && s[w] != ':')
    w++;
  if (w == 0)
    return -1;
  out->name = xstrndup (s, w);
  const char *paren = memchr (s, '(', n);
  if (paren)
    {
      const char *close = memchr (paren, ')', n - (size_t) (paren - s));
      if (close == NULL)
        return -1;
      kp_cleanup_free char *inner = xstrndup (paren + 1, (size_t) (close - paren - 1));
      char op[3] = "", ver[256] = "";
      const char *p = inner;
      while (isspace ((unsigned char) *p))
        p++;
      size_t k = 0;
      while (k < 2 && (p[k] == '<' || p[k] == '>' || p[k] == '='))
        op[k] = p[k], k++;
      if (k == 0 || sscanf (p + k, " %255s", ver) != 1)
        return -1;
      /* The old "<" and ">" mean "<=" and ">=". */
      out->op = xstrdup (strcmp (op, "<") == 0 ? "<=" : strcmp (op, ">") == 0 ? ">=" : op);
      out->version = xstrdup (ver);
    }
  return 0;
}

static bool
version_satisfies (const char *have, const relation *r)
{
  if (r->op == NULL)
    return true;
  int c = kp_deb_version_compare (have, r->version);
  if (strcmp (r->op, "<<") == 0)
    return c < 0;
  if (strcmp (r->op, "<=") == 0)
    return c <= 0;
  if (strcmp (r->op, "=") == 0)
    return c == 0;
  if (strcmp (r->op, ">=") == 0)
    return c >= 0;
  if (strcmp (r->op, ">>") == 0)
    return c > 0;
  return false;
}

typedef struct resolver
{
  const kp_deb_index *idx;
  bool *chosen;    /* by index into idx->pkgs */
  size_t *queue;
  size_t n_queue;
} resolver;

/* Does package p provide `name` (with a version that satisfies r)? */
static bool
provides (const kp_deb_package *p, const relation *r)
{
  if (p->provides == NULL)
    return false;
  const char *s = p->provides;
  while (*s)
    {
      size_t n = strcspn (s, ",");
      relation pr;
      if (parse_relation (s, n, &pr) == 0 && strcmp (pr.name, r->name) == 0
          && (r->op == NULL || (pr.version && version_satisfies (pr.version, r))))
        {
          relation_clear (&pr);
          return true;
        }
      relation_clear (&pr);
      s += n + (s[n] == ',');
    }
  return false;
}

/* The package (index) that satisfies r: a chosen one first, else the newest real
 * package, else the first provider by name. -1 when none. */
static ssize_t
satisfier (resolver *rs, const relation *r, bool only_chosen)
{
  const kp_deb_index *idx = rs->idx;
  const kp_deb_package *first = kp_deb_index_find (idx, r->name);
  if (first)
    for (size_t i = (size_t) (first - idx->pkgs); i < idx->n && strcmp (idx->pkgs[i].name, r->name) == 0; i++)
      if (version_satisfies (idx->pkgs[i].version, r) && (!only_chosen || rs->chosen[i]))
        return (ssize_t) i;
  for (size_t i = 0; i < idx->n; i++)
    if ((!only_chosen || rs->chosen[i]) && provides (&idx->pkgs[i], r))
      return (ssize_t) i;
  return -1;
}

static void
choose (resolver *rs, size_t i)
{
  if (rs->chosen[i])
    return;
  rs->chosen[i] = true;
  rs->queue[rs->n_queue++] = i;
}

static int
resolve_field (resolver *rs, const kp_deb_package *pkg, const char *field, kp_error **err)
{
  const char *s = field;
  while (s && *s)
    {
      size_t clause_len = strcspn (s, ",");
      kp_cleanup_free char *clause = xstrndup (s, clause_len);
      s += clause_len + (s[clause_len] == ',');
      /* Alternatives: one already chosen wins, else the first satisfiable. */
      ssize_t pick = -1;
      for (int pass = 0; pass < 2 && pick < 0; pass++)
        {
          const char *a = clause;
          while (*a && pick < 0)
            {
              size_t alen = strcspn (a, "|");
              relation r;
              if (parse_relation (a, alen, &r) == 0)
                pick = satisfier (rs, &r, pass == 0);
              relation_clear (&r);
              a += alen + (a[alen] == '|');
            }
        }
      if (pick < 0)
        {
          char *c = clause;
          while (isspace ((unsigned char) *c))
            c++;
          if (*c == '\0')
            continue;
          kp_error_set (err, KP_EXIT_FAILURE, "%s %s depends on %s, which no package in the "
                        "index satisfies", pkg->name, pkg->version, c);
          kp_error_hint (err, "the mirror may be incomplete or mid-update; try again later "
                              "or another mirror");
          return -1;
        }
      choose (rs, (size_t) pick);
    }
  return 0;
}

static int
compare_chosen (const void *a, const void *b)
{
  const kp_deb_package *const *x = a, *const *y = b;
  return strcmp ((*x)->name, (*y)->name);
}

int
kp_deb_resolve (const kp_deb_index *idx, bool base, const char *const *extra,
                const kp_deb_package ***chosen, size_t *n, kp_error **err)
{
  resolver rs = { .idx = idx, .chosen = xcalloc (idx->n + 1, sizeof (bool)),
                  .queue = xcalloc (idx->n + 1, sizeof (size_t)) };
  int rc = -1;
  /* Seeds: the newest version of each base package. */
  for (size_t i = 0; base && i < idx->n; i++)
    {
      const kp_deb_package *p = &idx->pkgs[i];
      bool newest = i == 0 || strcmp (idx->pkgs[i - 1].name, p->name) != 0;
      if (newest && (p->essential || (p->priority && strcmp (p->priority, "required") == 0)))
        choose (&rs, i);
    }
  for (const char *const *e = extra; e && *e; e++)
    {
      const kp_deb_package *p = kp_deb_index_find (idx, *e);
      if (p == NULL)
        {
          kp_error_set (err, KP_EXIT_FAILURE, "no package '%s' in the index", *e);
          goto out;
        }
      choose (&rs, (size_t) (p - idx->pkgs));
    }
  for (size_t q = 0; q < rs.n_queue; q++)
    {
      const kp_deb_package *p = &idx->pkgs[rs.queue[q]];
      if (resolve_field (&rs, p, p->pre_depends, err) < 0
          || resolve_field (&rs, p, p->depends, err) < 0)
        goto out;
    }
  const kp_deb_package **list = xcalloc (rs.n_queue + 1, sizeof *list);
  for (size_t q = 0; q < rs.n_queue; q++)
    list[q] = &idx->pkgs[rs.queue[q]];
  if (rs.n_queue > 1)
    qsort (list, rs.n_queue, sizeof *list, compare_chosen);
  *chosen = list;
  *n = rs.n_queue;
  rc = 0;
out:
  free (rs.chosen);
  free (rs.queue);
  return rc;
}

/* ---- a package's control paragraph ---- */

static int
read_member (struct archive *a, size_t max, kp_buf *b, kp_error **err)
{
  char buf[8192];
  for (;;)
    {
      la_ssize_t n = archive_read_data (a, buf, sizeof buf);
      if (n < 0)
        return kp_error_set (err, KP_EXIT_FAILURE, "%s", archive_error_string (a));
      if (n == 0)
        return 0;
      if (b->len + (size_t) n > max)
        return kp_error_set (err, KP_EXIT_FAILURE, "larger than %zu bytes", max);
      kp_buf_append (b, buf, (size_t) n);
    }
}

char *
kp_deb_read_control (const char *path, kp_error **err)
{
  struct archive *ar = archive_read_new ();
  archive_read_support_format_ar (ar);
  struct archive_entry *e;
  kp_buf tar = KP_BUF_INIT, control = KP_BUF_INIT;
  bool found = false;
  int r = -1;
  if (archive_read_open_filename (ar, path, 1 << 16) != ARCHIVE_OK)
    {
      kp_error_set (err, KP_EXIT_FAILURE, "read %s: %s", path,
                    archive_error_string (ar) ? archive_error_string (ar) : "not a .deb");
      goto out;
    }
  while (!found && archive_read_next_header (ar, &e) == ARCHIVE_OK)
    {
      const char *name = archive_entry_pathname (e);
      if (name && kp_str_has_prefix (name, "control.tar"))
        {
          if (read_member (ar, 16 << 20, &tar, err) < 0)
            goto out;
          found = true;
        }
    }
  if (!found)
    {
      kp_error_set (err, KP_EXIT_FAILURE, "%s has no control.tar member", path);
      goto out;
    }
  archive_read_free (ar);
  ar = archive_read_new ();
  archive_read_support_filter_all (ar);
  archive_read_support_format_tar (ar);
  found = false;
  if (archive_read_open_memory (ar, tar.data, tar.len) != ARCHIVE_OK)
    {
      kp_error_set (err, KP_EXIT_FAILURE, "%s: control.tar: %s", path, archive_error_string (ar));
      goto out;
    }
  while (!found && archive_read_next_header (ar, &e) == ARCHIVE_OK)
    {
      const char *name = archive_entry_pathname (e);
      if (name && (strcmp (name, "./control") == 0 || strcmp (name, "control") == 0))
        {
          if (read_member (ar, 1 << 20, &control, err) < 0)
            goto out;
          found = true;
        }
    }
  if (!found || control.len == 0 || memchr (control.data, '\0', control.len))
    {
      kp_error_set (err, KP_EXIT_FAILURE, "%s has no readable control file", path);
      goto out;
    }
  while (control.len > 0 && control.data[control.len - 1] == '\n')
    control.len--;
  kp_buf_truncate (&control, control.len);
  kp_buf_putc (&control, '\n');
  r = 0;
out:
  archive_read_free (ar);
  kp_buf_clear (&tar);
  if (r < 0)
    {
      kp_buf_clear (&control);
      return NULL;
    }
  return kp_buf_steal (&control);
}
