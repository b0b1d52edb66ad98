/* pkgdriver.c — apt, dnf, zypper, pacman and apk behind one interface (pkgdriver.h). */
#include "engine/pkgdriver.h"

#include "base/buf.h"
#include "base/util.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const apt_probes[] = { "usr/bin/apt-get", NULL };
/* Not microdnf: its options differ from dnf's, and a base with only microdnf (a UBI
   "minimal" image) is better refused as having no manager we drive than failing inside. */
static const char *const dnf_probes[] = { "usr/bin/dnf", "usr/bin/dnf5", NULL };
static const char *const zypper_probes[] = { "usr/bin/zypper", NULL };
static const char *const pacman_probes[] = { "usr/bin/pacman", NULL };
static const char *const apk_probes[] = { "sbin/apk", "usr/sbin/apk", "usr/bin/apk", NULL };

static const char *const apt_clean[] = { "var/lib/apt/lists", "var/cache/apt/archives",
                                         "var/log/apt", "var/log/dpkg.log",
                                         "var/log/alternatives.log", NULL };
static const char *const dnf_clean[] = { "var/cache/dnf", "var/cache/libdnf5", "var/log/dnf.log",
                                         "var/log/dnf.librepo.log", "var/log/dnf.rpm.log",
                                         "var/log/hawkey.log", "var/lib/dnf/history.sqlite",
                                         "var/lib/dnf/history.sqlite-shm",
                                         "var/lib/dnf/history.sqlite-wal", NULL };
/* zypper leaves its empty lock file in /run, which the sandbox does not mount over. */
static const char *const zypper_clean[] = { "var/cache/zypp", "var/log/zypper.log",
                                            "var/log/zypp", "run/zypp.pid", NULL };
static const char *const pacman_clean[] = { "var/cache/pacman/pkg", "var/lib/pacman/sync",
                                            "var/log/pacman.log", NULL };
static const char *const apk_clean[] = { "var/cache/apk", NULL };

#define RPM_QUERY                                                                          \
  "rpm -qa --qf '%{NAME}\\t%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\\t%{ARCH}\\n'"

static const kp_pkg_driver drivers[KP_PKG__COUNT] = {
  [KP_PKG_APT] = { KP_PKG_APT, "apt", apt_probes,
                   "dpkg-query -W -f '${Package}\\t${Version}\\t${Architecture}\\n'", apt_clean },
  [KP_PKG_DNF] = { KP_PKG_DNF, "dnf", dnf_probes, RPM_QUERY, dnf_clean },
  [KP_PKG_ZYPPER] = { KP_PKG_ZYPPER, "zypper", zypper_probes, RPM_QUERY, zypper_clean },
  [KP_PKG_PACMAN] = { KP_PKG_PACMAN, "pacman", pacman_probes, "LC_ALL=C pacman -Qi",
                      pacman_clean },
  [KP_PKG_APK] = { KP_PKG_APK, "apk", apk_probes, "cat /lib/apk/db/installed", apk_clean },
};

const kp_pkg_driver *
kp_pkg_driver_get (kp_pkg_manager id)
{
  return id < KP_PKG__COUNT ? &drivers[id] : NULL;
}

const kp_pkg_driver *
kp_pkg_detect (const char *root)
{
  int rootfd = open (root, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0)
    return NULL;
  const kp_pkg_driver *found = NULL;
  for (size_t i = 0; i < KP_PKG__COUNT && found == NULL; i++)
    for (const char *const *p = drivers[i].probes; *p && found == NULL; p++)
      {
        /* bin, sbin and lib may be links into usr/: look at both spellings. */
        struct stat st;
        if (fstatat (rootfd, *p, &st, AT_SYMLINK_NOFOLLOW) == 0)
          found = &drivers[i];
        else if (!kp_str_has_prefix (*p, "usr/"))
          {
            kp_cleanup_free char *usr = xasprintf ("usr/%s", *p);
            if (fstatat (rootfd, usr, &st, AT_SYMLINK_NOFOLLOW) == 0)
              found = &drivers[i];
          }
      }
  close (rootfd);
  return found;
}

char *
kp_pkg_install_command (const kp_pkg_driver *d, char *const *packages, bool refresh)
{
  kp_buf b = KP_BUF_INIT;
  /* A refresh and the install run as one subshell: a script under `set -e` (the build's)
     ignores a failure left of &&, and would go on to list what was not installed; it stops
     on the failure of a subshell. */
  bool chained = false;
  switch (d->id)
    {
    case KP_PKG_APT:
      if (refresh)
        {
          kp_buf_puts (&b, "(apt-get update && ");
          chained = true;
        }
      kp_buf_puts (&b, "apt-get install -y --no-install-recommends "
                       "-o Dpkg::Options::=--force-unsafe-io");
      break;
    case KP_PKG_DNF:
      /* dnf only fetches metadata it holds as expired (metadata_expire: hours to days): a
         base that kept its cache would not see packages published since. */
      kp_buf_puts (&b, "dnf install -y");
      if (refresh)
        kp_buf_puts (&b, " --refresh");
      kp_buf_puts (&b, " --setopt=install_weak_deps=False --setopt=tsflags=nodocs");
      break;
    case KP_PKG_ZYPPER:
      /* zypper install refreshes only the repositories marked autorefresh, and under
         --non-interactive answers "no" to a license it must have accepted. */
      if (refresh)
        {
          kp_buf_puts (&b, "(zypper --non-interactive refresh && ");
          chained = true;
        }
      kp_buf_puts (&b, "zypper --non-interactive install --no-recommends "
                       "--auto-agree-with-licenses");
      break;
    case KP_PKG_PACMAN:
      kp_buf_puts (&b, refresh ? "pacman -Sy --noconfirm --needed" : "pacman -S --noconfirm --needed");
      break;
    case KP_PKG_APK:
      if (refresh)
        {
          kp_buf_puts (&b, "(apk update && ");
          chained = true;
        }
      kp_buf_puts (&b, "apk add");
      break;
    default:
      break;
    }
  for (char *const *p = packages; p && *p; p++)
    kp_buf_printf (&b, " %s", *p);
  if (chained)
    kp_buf_putc (&b, ')');
  return kp_buf_steal (&b);
}

/* ---- parsing what the managers print ---- */

static void
push (kp_lock_package **out, size_t *n, const char *name, size_t nl, const char *version,
      size_t vl, const char *arch, size_t al)
{
  *out = xreallocarray (*out, *n + 1, sizeof **out);
  (*out)[*n] = (kp_lock_package){ xstrndup (name, nl), xstrndup (version, vl),
                                  xstrndup (arch, al), xstrdup ("") };
  (*n)++;
}

static int
compare_packages (const void *a, const void *b)
{
  const kp_lock_package *x = a, *y = b;
  int c = strcmp (x->name, y->name);
  return c ? c : strcmp (x->arch, y->arch);
}

void
kp_pkg_list_free (kp_lock_package *pkgs, size_t n)
{
  for (size_t i = 0; i < n; i++)
    {
      free (pkgs[i].name);
      free (pkgs[i].version);
      free (pkgs[i].arch);
      free (pkgs[i].sha256);
    }
  free (pkgs);
}

static int
bad_line (kp_error **err, const kp_pkg_driver *d, size_t line, const char *text, size_t len)
{
  return kp_error_set (err, KP_EXIT_FAILURE, "line %zu of %s's package list does not parse: "
                       "'%.*s'", line, d->name, (int) (len > 120 ? 120 : len), text);
}

/* NAME\tVERSION\tARCH per line (dpkg-query, rpm -qa --qf). */
static int
parse_tabbed (const kp_pkg_driver *d, const char *text, kp_lock_package **out, size_t *n,
              kp_error **err)
{
  size_t lineno = 0;
  for (const char *p = text; *p;)
    {
      const char *eol = strchr (p, '\n');
      size_t len = eol ? (size_t) (eol - p) : strlen (p);
      lineno++;
      if (len > 0)
        {
          const char *t1 = memchr (p, '\t', len);
          const char *t2 = t1 ? memchr (t1 + 1, '\t', len - (size_t) (t1 + 1 - p)) : NULL;
          if (t1 == NULL || t2 == NULL || t1 == p || memchr (t2 + 1, '\t', len - (size_t) (t2 + 1 - p)))
            return bad_line (err, d, lineno, p, len);
          size_t vl = (size_t) (t2 - t1 - 1), al = len - (size_t) (t2 + 1 - p);
          /* dpkg lists packages it only remembers with an empty version; rpm lists its
             keys as gpg-pubkey of architecture (none). */
          bool skip = vl == 0 || (al == 6 && memcmp (t2 + 1, "(none)", 6) == 0);
          if (!skip)
            push (out, n, p, (size_t) (t1 - p), t1 + 1, vl, t2 + 1, al);
        }
      p += len + (eol ? 1 : 0);
    }
  return 0;
}

/* Paragraphs of "Key : value" (pacman -Qi) or "K:value" (apk's installed database). */
static int
parse_paragraphs (const kp_pkg_driver *d, const char *text, const char *name_key,
                  const char *version_key, const char *arch_key, bool spaced,
                  kp_lock_package **out, size_t *n, kp_error **err)
{
  const char *name = NULL, *version = NULL, *arch = NULL;
  size_t nl = 0, vl = 0, al = 0, lineno = 0, start_line = 1;
  for (const char *p = text;; )
    {
      const char *eol = strchr (p, '\n');
      size_t len = eol ? (size_t) (eol - p) : strlen (p);
      lineno++;
      if (len == 0)
        {
          if (name || version || arch)
            {
              if (!name || !version)
                return kp_error_set (err, KP_EXIT_FAILURE, "the %s package list has an entry "
                                     "without a name or version (from line %zu)", d->name,
                                     start_line);
              push (out, n, name, nl, version, vl, arch ? arch : "", arch ? al : 0);
            }
          name = version = arch = NULL;
          start_line = lineno + 1;
          if (eol == NULL)
            break;
          p = eol + 1;
          continue;
        }
      const char *colon = memchr (p, ':', len);
      if (colon == NULL)
        {
          /* pacman continues long values on indented lines. */
          if (spaced && (*p == ' ' || *p == '\t'))
            {
              p += len + (eol ? 1 : 0);
              continue;
            }
          return bad_line (err, d, lineno, p, len);
        }
      size_t kl = (size_t) (colon - p);
      while (spaced && kl > 0 && p[kl - 1] == ' ')
        kl--;
      const char *v = colon + 1;
      while (spaced && v < p + len && *v == ' ')
        v++;
      size_t vlen = (size_t) (p + len - v);
      if (kl == strlen (name_key) && memcmp (p, name_key, kl) == 0)
        name = v, nl = vlen;
      else if (kl == strlen (version_key) && memcmp (p, version_key, kl) == 0)
        version = v, vl = vlen;
      else if (kl == strlen (arch_key) && memcmp (p, arch_key, kl) == 0)
        arch = v, al = vlen;
      if (eol == NULL)
        {
          /* The last paragraph without a trailing blank line. */
          p += len;
          continue;
        }
      p = eol + 1;
    }
  return 0;
}

int
kp_pkg_parse_list (const kp_pkg_driver *d, const char *text, kp_lock_package **out, size_t *n,
                   kp_error **err)
{
  *out = NULL;
  *n = 0;
  int r;
  switch (d->id)
    {
    case KP_PKG_APT:
    case KP_PKG_DNF:
    case KP_PKG_ZYPPER:
      r = parse_tabbed (d, text, out, n, err);
      break;
    case KP_PKG_PACMAN:
      r = parse_paragraphs (d, text, "Name", "Version", "Architecture", true, out, n, err);
      break;
    case KP_PKG_APK:
      r = parse_paragraphs (d, text, "P", "V", "A", false, out, n, err);
      break;
    default:
      r = kp_error_set (err, KP_EXIT_FAILURE, "unknown package manager");
      break;
    }
  if (r < 0)
    {
      kp_pkg_list_free (*out, *n);
      *out = NULL;
      *n = 0;
      return -1;
    }
  if (*n > 1)
    qsort (*out, *n, sizeof **out, compare_packages);
  return 0;
}
