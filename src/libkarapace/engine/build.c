/* build.c — the build pipeline (build.h, docs/build.md). */
#include "engine/build.h"

#include "base/buf.h"
#include "base/fs.h"
#include "base/json.h"
#include "base/util.h"
#include "hash/digest.h"
#include "engine/pkgdriver.h"
#include "image/debian.h"
#include "image/pull.h"
#include "image/reference.h"
#include "sandbox/runtime.h"
#include "sandbox/userns.h"
#include "schema/identity.h"
#include "schema/lock.h"
#include "schema/manifest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#define DEBS_DIR "/var/cache/karapace-debs"
#define LOG_FILE "/tmp/karapace-build.log"
/* The package lists are dropped from the layer (step 50): the translated descriptions
   (Translation-*, 6 MB for bookworm's main) would only be downloaded and parsed for
   nothing. */
#define APT_UPDATE_OPTIONS "-o Acquire::Languages=none"
#define CLOSURE_FILE "/tmp/karapace-closure"
#define URIS_FILE "/tmp/karapace-uris"

void
kp_build_result_clear (kp_build_result *r)
{
  free (r->lock_path);
  memset (r, 0, sizeof *r);
}

typedef struct build
{
  const kp_build_options *opts;
  kp_store *store;
  kp_manifest *m;
  char *base_tree_path;
  json_t *base_extra; /* the base image record's facts (a bootstrap's packages) */
  /* the packages step */
  char *tree, *work, *debs;
  char **packages; /* asked for */
  char *closure;   /* dpkg-query's output */
  char *uris;      /* apt-get --print-uris' output */
  kp_buf hashes;   /* " FILENAME SHA256\n" of every .deb this build installed */
  kp_lock *locked; /* --locked: the closure to install exactly */
  kp_buf locked_names; /* " name:arch" of what --locked installs */
  kp_buf offered;      /* " FILENAME\n" of the archives the store gave apt */
  const kp_pkg_driver *driver; /* the base's package manager */
  int64_t epoch;
} build;

static void
step (const build *b, int number, const char *what)
{
  if (b->opts->progress)
    fprintf (stderr, "[%d] %s\n", number, what);
}

/* ---- 30: packages, in a sandbox over the base ---- */

static int
run_script (build *b, kp_holder *h, const char *script, kp_error **err)
{
  char *const argv[] = { (char *) "/bin/sh", (char *) "-c", (char *) script, NULL };
  kp_cleanup_free char *epoch = xasprintf ("SOURCE_DATE_EPOCH=%lld", (long long) b->epoch);
  char *const envp[] = { (char *) "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
                         (char *) "DEBIAN_FRONTEND=noninteractive",
                         (char *) "DEBCONF_NONINTERACTIVE_SEEN=true", (char *) "LC_ALL=C",
                         (char *) "HOME=/root", (char *) "TZ=UTC", epoch, NULL };
  kp_session_spec s = { .argv = argv, .envp = envp, .as_root = true,
                        .seccomp = KP_SECCOMP_DEFAULT, .no_tty_control = true };
  int status = 0;
  if (kp_holder_join (h, &s, &status, err) < 0)
    return -1;
  if (status == 0)
    return 0;
  kp_cleanup_free char *log_path = xasprintf ("%s%s", b->tree, LOG_FILE);
  size_t len = 0;
  kp_cleanup_free char *log = kp_file_read (log_path, 1 << 20, &len, NULL);
  const char *text = log ? log : "";
  const char *tail = text;
  size_t lines = 0;
  for (const char *c = text + strlen (text); c > text; c--)
    if (c[-1] == '\n' && ++lines > 15)
      {
        tail = c;
        break;
      }
  kp_error_set (err, KP_EXIT_FAILURE, "installing the packages failed (status %d):\n%s",
                status, tail);
  kp_error_hint (err, "check the package names ([system] packages) and the network; nothing "
                      "of this build was kept");
  return -1;
}

/* The packages the store already has, by the file name apt gives them: linked where the
 * sandbox sees them and copied into apt's archive directory, so apt downloads only the
 * others (it checks the hashes of what it finds there against its index). */
static int
offer_cached_debs (build *b, kp_error **err)
{
  if (b->uris == NULL)
    return 0;
  kp_cleanup_free char *copy = xstrdup (b->uris);
  for (char *save = NULL, *line = strtok_r (copy, "\n", &save); line;
       line = strtok_r (NULL, "\n", &save))
    {
      /* 'URL' FILENAME SIZE HASHTYPE:HEX */
      char url[4096], file[1024], hash[200];
      unsigned long long size;
      if (sscanf (line, "%4095s %1023s %llu %199s", url, file, &size, hash) != 4
          || strchr (file, '/') || !kp_str_has_suffix (file, ".deb"))
        continue;
      kp_cleanup_free char *key = xasprintf ("debfile:%s:%llu", file, size);
      char id[KP_STORE_OBJECT_ID_LEN + 1];
      if (kp_store_cache_get (b->store, key, id, err) != 1)
        continue;
      kp_cleanup_free char *from = xasprintf ("%s/objects/%.2s/%s", kp_store_path (b->store),
                                              id, id + 2);
      kp_cleanup_free char *to = xasprintf ("%s/%s", b->debs, file);
      if (link (from, to) < 0 && errno != EEXIST)
        return kp_error_errno (err, errno, "offer %s to apt", file);
      kp_buf_printf (&b->offered, " %s\n", file);
    }
  return 0;
}

/* New .debs apt downloaded go into the store's package cache. */
static int
keep_downloaded_debs (build *b, kp_error **err)
{
  kp_cleanup_free char *dir = xasprintf ("%s/var/cache/apt/archives", b->tree);
  kp_cleanup_dir DIR *d = opendir (dir);
  if (d == NULL)
    return 0;
  struct dirent *de;
  while ((de = readdir (d)) != NULL)
    {
      if (!kp_str_has_suffix (de->d_name, ".deb"))
        continue;
      kp_cleanup_free char *path = xasprintf ("%s/%s", dir, de->d_name);
      kp_cleanup_close int fd = open (path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0)
        continue;
      char sha[KP_DIGEST_STRING_MAX];
      if (kp_digest_fd (KP_DIGEST_SHA256, fd, sha, err) < 0 || lseek (fd, 0, SEEK_SET) < 0)
        return -1;
      /* What the store gave apt is in the store already: only its hash is needed. */
      kp_cleanup_free char *mark = xasprintf (" %s\n", de->d_name);
      if (strstr (kp_buf_str (&b->offered), mark))
        {
          kp_buf_printf (&b->hashes, " %s %s\n", de->d_name, sha + 7);
          continue;
        }
      struct stat st;
      if (fstat (fd, &st) < 0)
        return kp_error_errno (err, errno, "stat %s", de->d_name);
      char id[KP_STORE_OBJECT_ID_LEN + 1];
      kp_cleanup_free char *key = xasprintf ("debfile:%s:%llu", de->d_name,
                                             (unsigned long long) st.st_size);
      if (kp_store_put_fd (b->store, fd, id, err) < 0
          || kp_store_cache_set (b->store, sha, id, err) < 0
          || kp_store_cache_set (b->store, key, id, err) < 0)
        return -1;
      kp_buf_printf (&b->hashes, " %s %s\n", de->d_name, sha + 7);
    }
  return 0;
}

/* ---- 50: normalize the new layer (in the store's user namespace) ---- */

static int
strip_overlay_xattrs (int dirfd, const char *name, int depth)
{
  if (depth > 4096)
    return -ELOOP;
  kp_cleanup_close int fd = openat (dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  struct stat st;
  if (fstat (fd, &st) < 0)
    return -errno;
  if (S_ISREG (st.st_mode) || S_ISDIR (st.st_mode))
    {
      /* Only what describes the overlay's own bookkeeping (origin file handles, impure
         markers) goes; the opaque marker is what the layer means. */
      kp_cleanup_free char *proc = xasprintf ("/proc/self/fd/%d", fd);
      char list[4096];
      ssize_t n = listxattr (proc, list, sizeof list);
      for (ssize_t i = 0; n > 0 && i < n; i += (ssize_t) strlen (list + i) + 1)
        {
          const char *x = list + i;
          if ((kp_str_has_prefix (x, "user.overlay.") || kp_str_has_prefix (x, "trusted.overlay."))
              && strcmp (x + strlen (x) - 6, "opaque") != 0)
            removexattr (proc, x);
        }
    }
  if (!S_ISDIR (st.st_mode))
    return 0;
  kp_cleanup_dir DIR *d = kp_dir_open_at (dirfd, name);
  if (d == NULL)
    return -errno;
  kp_cleanup_close int sub = openat (dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (sub < 0)
    return -errno;
  struct dirent *de;
  while ((de = readdir (d)) != NULL)
    {
      if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
        continue;
      int r = strip_overlay_xattrs (sub, de->d_name, depth + 1);
      if (r < 0)
        return r;
    }
  return 0;
}

static int
empty_dir (int root, const char *rel, const char *suffix, kp_error **err)
{
  kp_cleanup_close int fd = openat (root, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return 0;
  kp_cleanup_dir DIR *d = kp_dir_open_at (fd, NULL);
  if (d == NULL)
    return kp_error_errno (err, errno, "list /%s", rel);
  struct dirent *de;
  while ((de = readdir (d)) != NULL)
    {
      if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0
          || strcmp (de->d_name, "partial") == 0 || strcmp (de->d_name, "lock") == 0)
        continue;
      if (suffix && !kp_str_has_suffix (de->d_name, suffix))
        continue;
      int r = kp_remove_tree_at (fd, de->d_name);
      if (r < 0 && r != -ENOENT)
        return kp_error_errno (err, -r, "remove /%s/%s", rel, de->d_name);
    }
  return 0;
}

static int
compare_strings (const void *a, const void *b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

/* apt's record of what was installed automatically, in a canonical order (apt writes it in
 * the order of its cache, which depends on the package lists it read). */
static int
sort_extended_states (int root, kp_error **err)
{
  const char *rel = "var/lib/apt/extended_states";
  kp_cleanup_close int fd = openat (root, rel, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return errno == ENOENT ? 0 : kp_error_errno (err, errno, "open /%s", rel);
  size_t len = 0;
  kp_cleanup_free char *text = kp_fd_read_all (fd, 64 << 20, &len, err);
  if (text == NULL)
    return -1;
  kp_cleanup_strv char **paras = xcalloc (1, sizeof (char *));
  size_t n = 0;
  for (char *start = text; *start;)
    {
      char *end = strstr (start, "\n\n");
      size_t l = end ? (size_t) (end - start) + 1 : strlen (start);
      while (l > 0 && start[l - 1] == '\n')
        l--;
      if (l > 0)
        {
          paras = xreallocarray (paras, n + 2, sizeof (char *));
          paras[n++] = xstrndup (start, l);
          paras[n] = NULL;
        }
      if (end == NULL)
        break;
      start = end + 2;
      while (*start == '\n')
        start++;
    }
  qsort (paras, n, sizeof (char *), compare_strings);
  kp_buf out = KP_BUF_INIT;
  for (size_t i = 0; i < n; i++)
    kp_buf_printf (&out, "%s\n\n", paras[i]);
  kp_cleanup_free char *path = xasprintf ("/proc/self/fd/%d", root);
  kp_cleanup_free char *full = xasprintf ("%s/%s", path, rel);
  int r = kp_file_write_atomic (full, out.data ? out.data : "", out.len, 0644, false, err);
  kp_buf_clear (&out);
  return r;
}

static int
normalize (void *data, kp_error **err)
{
  build *b = data;
  kp_cleanup_close int root = open (b->tree, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (root < 0)
    return kp_error_errno (err, errno, "open the new layer");
  static const char *const files[] = {
    "var/log/dpkg.log", "var/log/alternatives.log", "var/cache/ldconfig/aux-cache",
    "var/cache/apt/pkgcache.bin", "var/cache/apt/srcpkgcache.bin", "var/lib/dpkg/status-old",
    "var/lib/dpkg/available-old", "var/lib/dpkg/diversions-old",
    "var/cache/debconf/config.dat-old", "var/cache/debconf/templates.dat-old",
    "var/cache/debconf/passwords.dat-old", "etc/passwd-", "etc/group-", "etc/shadow-",
    "etc/gshadow-", "etc/machine-id", NULL };
  for (size_t i = 0; files[i]; i++)
    if (unlinkat (root, files[i], 0) < 0 && errno != ENOENT)
      return kp_error_errno (err, errno, "remove /%s", files[i]);
  /* What the sandbox made to mount over, and the run's scratch space. */
  static const char *const trees[] = { "dev", "run", "tmp", &DEBS_DIR[1], "etc/hosts",
                                       "etc/resolv.conf", NULL };
  for (size_t i = 0; trees[i]; i++)
    {
      int r = kp_remove_tree_at (root, trees[i]);
      if (r < 0 && r != -ENOENT)
        return kp_error_errno (err, -r, "remove /%s", trees[i]);
    }
  if (empty_dir (root, "var/lib/apt/lists", NULL, err) < 0
      || empty_dir (root, "var/cache/apt/archives", ".deb", err) < 0
      || empty_dir (root, "var/log/apt", NULL, err) < 0)
    return -1;
  if (sort_extended_states (root, err) < 0)
    return -1;
  int r = strip_overlay_xattrs (AT_FDCWD, b->tree, 0);
  if (r < 0)
    return kp_error_errno (err, -r, "clean the layer's overlay attributes");
  return 0;
}

static int
cleanup_work (void *data, kp_error **err)
{
  build *b = data;
  int r = kp_remove_tree_at (AT_FDCWD, b->work);
  if (r < 0 && r != -ENOENT)
    return kp_error_errno (err, -r, "remove the overlay's work directory");
  return 0;
}

/* ---- --locked: exactly the recorded closure ---- */

static bool
closure_has (const char *closure, const kp_lock_package *p)
{
  kp_cleanup_free char *line = xasprintf ("%s\t%s\t%s\n", p->name, p->version, p->arch);
  if (kp_str_has_prefix (closure, line))
    return true;
  kp_cleanup_free char *nl = xasprintf ("\n%s", line);
  return strstr (closure, nl) != NULL;
}

/* The locked packages the base does not have, offered from the package cache by their
 * SHA256; *args receives "name=version ..." (online) and what is missing offline is an
 * error. */
static int
plan_locked (build *b, const char *base_closure, kp_buf *args, kp_error **err)
{
  size_t missing = 0;
  kp_buf index = KP_BUF_INIT; /* a Packages index of what is offered: a local repository */
  kp_buf missing_list = KP_BUF_INIT;
  for (size_t i = 0; i < b->locked->n_packages; i++)
    {
      const kp_lock_package *p = &b->locked->packages[i];
      if (closure_has (base_closure, p))
        continue;
      kp_buf_printf (args, " %s:%s=%s", p->name, p->arch, p->version);
      kp_buf_printf (&b->locked_names, " %s:%s", p->name, p->arch);
      char id[KP_STORE_OBJECT_ID_LEN + 1];
      kp_cleanup_free char *key = xasprintf ("sha256:%s", p->sha256);
      int r = p->sha256[0] ? kp_store_cache_get (b->store, key, id, err) : 0;
      if (r < 0)
        return -1;
      if (r == 1)
        {
          kp_cleanup_free char *from = xasprintf ("%s/objects/%.2s/%s", kp_store_path (b->store),
                                                  id, id + 2);
          /* A plain name: apt stumbles over some characters of versions in local paths. */
          kp_cleanup_free char *file = xasprintf ("%s-%.16s.deb", p->name, p->sha256);
          kp_cleanup_free char *to = xasprintf ("%s/%s", b->debs, file);
          if (link (from, to) < 0 && errno != EEXIST)
            return kp_error_errno (err, errno, "offer %s", file);
          kp_cleanup_free char *control = kp_deb_read_control (to, err);
          struct stat st;
          if (control == NULL || stat (to, &st) < 0)
            {
              kp_buf_clear (&index);
              return kp_error_prefix (err, "the package cache's %s", p->name);
            }
          kp_buf_printf (&index, "%sFilename: ./%s\nSize: %llu\nSHA256: %s\n\n", control,
                         file, (unsigned long long) st.st_size, p->sha256);
          continue;
        }
      if (missing++ < 5)
        kp_buf_printf (&missing_list, "%s%s %s", missing > 1 ? ", " : "", p->name, p->version);
    }
  kp_cleanup_free char *packages = xasprintf ("%s/Packages", b->debs);
  int w = kp_file_write_atomic (packages, index.data ? index.data : "", index.len, 0644, false,
                                err);
  kp_buf_clear (&index);
  if (w < 0)
    return -1;
  if (missing && b->opts->offline)
    {
      kp_error_set (err, KP_EXIT_FAILURE, "offline, and %zu locked package%s not in the "
                    "package cache: %s%s", missing, missing == 1 ? " is" : "s are",
                    kp_buf_str (&missing_list), missing > 5 ? ", ..." : "");
      kp_error_hint (err, "build once with the network (the packages are kept), or drop "
                          "--offline");
      kp_buf_clear (&missing_list);
      return -1;
    }
  kp_buf_clear (&missing_list);
  return 0;
}

/* Every difference between the installed closure and the lock, one line each. */
static char *
locked_diff_as (const kp_lock *lock, const kp_lock_package *got, size_t n_got, const char *a,
                const char *b)
{
  kp_buf d = KP_BUF_INIT;
  for (size_t i = 0; i < lock->n_packages; i++)
    {
      const kp_lock_package *l = &lock->packages[i];
      const kp_lock_package *g = NULL;
      for (size_t j = 0; j < n_got && g == NULL; j++)
        if (strcmp (got[j].name, l->name) == 0 && strcmp (got[j].arch, l->arch) == 0)
          g = &got[j];
      if (g == NULL)
        kp_buf_printf (&d, "  - %s %s %s: %s, not %s\n", l->name, l->version, l->arch, a, b);
      else if (strcmp (g->version, l->version) != 0)
        kp_buf_printf (&d, "  ~ %s: %s %s, %s %s\n", l->name, a, l->version, b, g->version);
      else if (l->sha256[0] && g->sha256[0] && strcmp (g->sha256, l->sha256) != 0)
        kp_buf_printf (&d, "  ~ %s %s: %s archive %.12s…, %s %.12s…\n", l->name, l->version,
                       a, l->sha256, b, g->sha256);
    }
  for (size_t j = 0; j < n_got; j++)
    {
      bool found = false;
      for (size_t i = 0; i < lock->n_packages && !found; i++)
        found = strcmp (got[j].name, lock->packages[i].name) == 0
                && strcmp (got[j].arch, lock->packages[i].arch) == 0;
      if (!found)
        kp_buf_printf (&d, "  + %s %s %s: %s, not %s\n", got[j].name, got[j].version,
                       got[j].arch, b, a);
    }
  if (d.len == 0)
    {
      kp_buf_clear (&d);
      return NULL;
    }
  return kp_buf_steal (&d);
}

static char *
locked_diff (const kp_lock *lock, const kp_lock_package *got, size_t n_got)
{
  return locked_diff_as (lock, got, n_got, "locked", "installed");
}

/* An edited lock: what changed, against the lock the store kept for its env_id. */
static void
explain_edited_lock (kp_store *store, const kp_lock *edited, kp_error **err)
{
  kp_cleanup_env_record kp_env_record *rec = kp_store_env_read (store, edited->env_id, NULL);
  size_t len = 0;
  kp_cleanup_free char *text = rec && rec->lock ? kp_store_get (store, rec->lock, 16 << 20,
                                                                &len, NULL)
                                                : NULL;
  kp_cleanup_lock kp_lock *kept = text ? kp_lock_load_text (text, len, "the store", NULL) : NULL;
  if (kept == NULL || err == NULL || *err == NULL)
    return;
  kp_cleanup_free char *diff = locked_diff_as (kept, edited->packages, edited->n_packages,
                                               "built with", "the file says");
  if (diff == NULL)
    return;
  kp_error *old = kp_steal_pointer (err);
  kp_error_set (err, old->status, "%s; against the lock environment %.12s was built with, it "
                "says:\n%s", old->message, edited->env_id, diff);
  kp_error_hint (err, "restore the lock from version control, or build without --locked to "
                      "write a new one");
  kp_error_free (old);
}

static int
install_packages (const char *tree, void *data, kp_error **err)
{
  build *b = data;
  b->tree = xstrdup (tree);
  b->work = xasprintf ("%s.work", tree);
  b->debs = xasprintf ("%s.debs", tree);
  if (mkdir (b->work, 0700) < 0 || mkdir (b->debs, 0755) < 0)
    return kp_error_errno (err, errno, "prepare the package layer");
  kp_buf pkgs = KP_BUF_INIT;
  for (char **p = b->packages; *p; p++)
    kp_buf_printf (&pkgs, " %s", *p); /* names are checked by the manifest schema */
  const char *layers[] = { b->base_tree_path, NULL };
  kp_bind bind = { .source = b->debs, .target = DEBS_DIR, .readonly = true };
  kp_sandbox_spec spec = { .layers = layers,
                           .upper = tree,
                           .work = b->work,
                           .binds = &bind,
                           .n_binds = 1,
                           .network = b->opts->offline ? KP_NET_NONE : KP_NET_HOST,
                           .name = "build",
                           .seccomp = KP_SECCOMP_DEFAULT,
                           /* The layer is synced as a whole (syncfs) before it gets its
                              name: dpkg's own fsyncs would only wait for the disk. */
                           .discard_syncs = true };
  int r = -1;
  kp_cleanup_free char *first = NULL, *second = NULL, *uris_path = NULL, *closure_path = NULL;
  kp_buf wanted = KP_BUF_INIT;
  size_t len = 0;
  kp_holder *h = kp_holder_start (&spec, err);
  if (h == NULL)
    {
      kp_error_prefix (err, "start the build sandbox");
      goto out;
    }
  if (b->locked)
    {
      /* What the base has; the lock says the rest, to the version. */
      first = xasprintf ("exec >%s 2>&1; set -e; %sdpkg-query -W -f "
                         "'${Package}\\t${Version}\\t${Architecture}\\n' >%s",
                         LOG_FILE,
                         b->opts->offline ? "" : "apt-get " APT_UPDATE_OPTIONS " update; ",
                         URIS_FILE);
      if (run_script (b, h, first, err) < 0)
        goto out;
      uris_path = xasprintf ("%s%s", tree, URIS_FILE);
      kp_cleanup_free char *base_closure = kp_file_read (uris_path, 16 << 20, &len, err);
      /* What the manifest asks for is marked as asked for, the rest as pulled in, as a
         plain install marks them (apt's extended_states is part of the layer). */
      kp_buf_clear (&wanted);
      kp_buf_append (&wanted, pkgs.data, pkgs.len);
      kp_buf_clear (&pkgs);
      if (base_closure == NULL || plan_locked (b, base_closure, &pkgs, err) < 0)
        goto out;
      if (b->opts->offline)
        /* The cache as a local repository (a Packages index this build wrote of the files
           it offers, checked by apt against their SHA256): apt resolves the order. */
        second = xasprintf (
            "exec >>%s 2>&1; set -e; echo 'deb [trusted=yes] file:" DEBS_DIR " ./' "
            ">/tmp/karapace.list; o='-o Dir::Etc::SourceList=/tmp/karapace.list "
            "-o Dir::Etc::SourceParts=/nonexistent'; apt-get $o update; "
            "if [ -n '%s' ]; then apt-get $o install -y --no-install-recommends "
            "-o Dpkg::Options::=--force-unsafe-io%s; apt-mark auto%s >/dev/null; "
            "apt-mark manual%s >/dev/null; fi; "
            "dpkg-query -W -f '${Package}\\t${Version}\\t${Architecture}\\n' >%s",
            LOG_FILE, pkgs.len ? "x" : "", kp_buf_str (&pkgs), kp_buf_str (&b->locked_names),
            kp_buf_str (&wanted), CLOSURE_FILE);
      else
        second = xasprintf (
            "exec >>%s 2>&1; set -e; cp " DEBS_DIR "/*.deb /var/cache/apt/archives/ 2>/dev/null "
            "|| true; if [ -n '%s' ]; then apt-get install -y --no-install-recommends "
            "--allow-downgrades -o Dpkg::Options::=--force-unsafe-io%s; apt-mark auto%s "
            ">/dev/null; apt-mark manual%s >/dev/null; fi; "
            "dpkg-query -W -f '${Package}\\t${Version}\\t${Architecture}\\n' >%s",
            LOG_FILE, pkgs.len ? "x" : "", kp_buf_str (&pkgs), kp_buf_str (&b->locked_names),
            kp_buf_str (&wanted), CLOSURE_FILE);
    }
  else
    {
      first = xasprintf (
          "exec >%s 2>&1; set -e; apt-get " APT_UPDATE_OPTIONS " update; "
          "apt-get install --print-uris -qq -y "
          "--no-install-recommends%s >%s",
          LOG_FILE, kp_buf_str (&pkgs), URIS_FILE);
      if (run_script (b, h, first, err) < 0)
        goto out;
      uris_path = xasprintf ("%s%s", tree, URIS_FILE);
      b->uris = kp_file_read (uris_path, 16 << 20, &len, NULL);
      if (offer_cached_debs (b, err) < 0)
        goto out;
      second = xasprintf (
          "exec >>%s 2>&1; set -e; cp " DEBS_DIR "/*.deb /var/cache/apt/archives/ 2>/dev/null "
          "|| true; apt-get install -y --no-install-recommends -o Dpkg::Options::=--force-unsafe-io%s; "
          "dpkg-query -W -f '${Package}\\t${Version}\\t${Architecture}\\n' >%s",
          LOG_FILE, kp_buf_str (&pkgs), CLOSURE_FILE);
    }
  if (run_script (b, h, second, err) < 0)
    goto out;
  closure_path = xasprintf ("%s%s", tree, CLOSURE_FILE);
  b->closure = kp_file_read (closure_path, 16 << 20, &len, err);
  if (b->closure == NULL || keep_downloaded_debs (b, err) < 0)
    goto out;
  r = 0;
out:
  kp_holder_release (h);
  kp_buf_clear (&pkgs);
  kp_buf_clear (&wanted);
  kp_remove_tree_at (AT_FDCWD, b->debs);
  kp_cleanup_error kp_error *ignored = NULL;
  kp_userns_run (cleanup_work, b, r == 0 ? err : &ignored);
  if (r == 0 && kp_userns_run (normalize, b, err) < 0)
    r = -1;
  return r;
}

/* The other package managers: one session installs and lists (docs/build.md). */
static int
clean_driver_paths (void *data, kp_error **err)
{
  build *b = data;
  kp_cleanup_close int root = open (b->tree, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (root < 0)
    return kp_error_errno (err, errno, "open the new layer");
  for (const char *const *p = b->driver->clean_paths; *p; p++)
    {
      int r = kp_remove_tree_at (root, *p);
      if (r < 0 && r != -ENOENT)
        return kp_error_errno (err, -r, "remove /%s", *p);
    }
  return 0;
}

static int
install_other (const char *tree, void *data, kp_error **err)
{
  build *b = data;
  b->tree = xstrdup (tree);
  b->work = xasprintf ("%s.work", tree);
  if (mkdir (b->work, 0700) < 0)
    return kp_error_errno (err, errno, "prepare the package layer");
  const char *layers[] = { b->base_tree_path, NULL };
  kp_sandbox_spec spec = { .layers = layers,
                           .upper = tree,
                           .work = b->work,
                           .network = KP_NET_HOST,
                           .name = "build",
                           .seccomp = KP_SECCOMP_DEFAULT,
                           .discard_syncs = true };
  int r = -1;
  kp_cleanup_free char *install = kp_pkg_install_command (b->driver, b->packages, true);
  kp_cleanup_free char *script = xasprintf ("exec >%s 2>&1; set -e; %s; %s >%s", LOG_FILE,
                                            install, b->driver->list_command, CLOSURE_FILE);
  kp_cleanup_free char *closure_path = xasprintf ("%s%s", tree, CLOSURE_FILE);
  size_t len = 0;
  kp_holder *h = kp_holder_start (&spec, err);
  if (h == NULL)
    {
      kp_error_prefix (err, "start the build sandbox");
      goto out;
    }
  if (run_script (b, h, script, err) < 0)
    goto out;
  b->closure = kp_file_read (closure_path, 16 << 20, &len, err);
  if (b->closure == NULL)
    goto out;
  r = 0;
out:
  kp_holder_release (h);
  kp_cleanup_error kp_error *ignored = NULL;
  kp_userns_run (cleanup_work, b, r == 0 ? err : &ignored);
  if (r == 0 && (kp_userns_run (clean_driver_paths, b, err) < 0
                 || kp_userns_run (normalize, b, err) < 0))
    r = -1;
  return r;
}

/* ---- 40: the closure, with the hashes this build knows ---- */

static const char *
known_sha256 (const build *b, const char *name, const char *version, const char *arch)
{
  /* What apt installed in this build: FILENAME is NAME_VERSION_ARCH.deb (':' as %3a). */
  if (b->hashes.len)
    {
      kp_buf v = KP_BUF_INIT;
      for (const char *c = version; *c; c++)
        if (*c == ':')
          kp_buf_puts (&v, "%3a");
        else
          kp_buf_putc (&v, *c);
      kp_cleanup_free char *file = xasprintf (" %s_%s_%s.deb ", name, kp_buf_str (&v), arch);
      kp_buf_clear (&v);
      const char *hit = strstr (kp_buf_str (&b->hashes), file);
      if (hit)
        return hit + strlen (file);
    }
  /* --locked: what the lock says of the package installed to its version. */
  for (size_t k = 0; b->locked && k < b->locked->n_packages; k++)
    {
      const kp_lock_package *l = &b->locked->packages[k];
      if (strcmp (l->name, name) == 0 && strcmp (l->version, version) == 0
          && strcmp (l->arch, arch) == 0 && l->sha256[0])
        return l->sha256;
    }
  /* The base's own packages, when it was bootstrapped from a mirror. */
  size_t i;
  json_t *p;
  json_array_foreach (json_object_get (b->base_extra, "packages"), i, p)
    if (kp_str_equal0 (json_string_value (json_object_get (p, "name")), name)
        && kp_str_equal0 (json_string_value (json_object_get (p, "version")), version))
      return json_string_value (json_object_get (p, "sha256"));
  return "";
}

static kp_lock_package *
parse_closure (const build *b, size_t *n)
{
  kp_lock_package *pkgs = NULL;
  *n = 0;
  if (b->closure == NULL)
    return NULL;
  kp_cleanup_free char *copy = xstrdup (b->closure);
  for (char *save = NULL, *line = strtok_r (copy, "\n", &save); line;
       line = strtok_r (NULL, "\n", &save))
    {
      char *f[3] = { line, NULL, NULL };
      f[1] = strchr (f[0], '\t');
      if (f[1] == NULL)
        continue;
      *f[1]++ = '\0';
      f[2] = strchr (f[1], '\t');
      if (f[2] == NULL)
        continue;
      *f[2]++ = '\0';
      if (*f[1] == '\0')
        continue; /* known to dpkg but not installed */
      const char *sha = known_sha256 (b, f[0], f[1], f[2]);
      char hex[65] = "";
      if (sha && strlen (sha) >= 64)
        snprintf (hex, sizeof hex, "%.64s", sha);
      pkgs = xreallocarray (pkgs, *n + 1, sizeof *pkgs);
      pkgs[*n] = (kp_lock_package){ xstrdup (f[0]), xstrdup (f[1]), xstrdup (f[2]),
                                    xstrdup (hex) };
      (*n)++;
    }
  return pkgs;
}

static const char *
kp_path_basename_of (const char *path)
{
  const char *slash = strrchr (path, '/');
  return slash ? slash + 1 : path;
}

/* ---- 70: the environment's own writable layer ---- */

typedef struct upper_call
{
  const char *dir; /* envs/<env_id> */
} upper_call;

static int
make_upper (void *data, kp_error **err)
{
  upper_call *c = data;
  kp_cleanup_close int dirfd = open (c->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dirfd < 0)
    return kp_error_errno (err, errno, "open %s", c->dir);
  /* The root of the environment is root's, as the layers' roots are. */
  if ((mkdirat (dirfd, "upper", 0755) < 0 && errno != EEXIST)
      || fchownat (dirfd, "upper", 0, 0, AT_SYMLINK_NOFOLLOW) < 0
      || (mkdirat (dirfd, "work", 0700) < 0 && errno != EEXIST))
    return kp_error_errno (err, errno, "create the writable layer of %s", c->dir);
  return 0;
}

/* ---- the pipeline ---- */

static void
build_clear (build *b)
{
  kp_manifest_free (b->m);
  free (b->base_tree_path);
  json_decref (b->base_extra);
  free (b->tree);
  free (b->work);
  free (b->debs);
  kp_strv_free (b->packages);
  free (b->closure);
  free (b->uris);
  kp_buf_clear (&b->hashes);
  kp_buf_clear (&b->locked_names);
  kp_buf_clear (&b->offered);
}

int
kp_build (kp_store *store, const kp_build_options *opts, kp_build_result *out, kp_error **err)
{
  memset (out, 0, sizeof *out);
  build b = { .opts = opts, .store = store, .hashes = KP_BUF_INIT, .locked_names = KP_BUF_INIT,
              .offered = KP_BUF_INIT };
  int rc = -1;
  kp_lock_package *closure = NULL;
  size_t n_closure = 0;
  kp_lock *lock = NULL;
  kp_cleanup_policy kp_policy *own_policy = NULL;

  /* 10 */
  step (&b, 10, "manifest");
  b.m = kp_manifest_load (opts->manifest, err);
  if (b.m == NULL)
    goto out;
  const kp_policy *policy = opts->policy;
  if (policy == NULL)
    policy = own_policy = kp_policy_new_default ();
  if (kp_policy_check_manifest (policy, b.m, err) < 0)
    goto out;
  /* A lock that still says what the manifest asks for names the identity already: when
     that environment exists, there is nothing to do. */
  if (!opts->fresh)
  {
    kp_cleanup_free char *lock_path = kp_path_join (b.m->dir, KP_LOCK_FILENAME);
    kp_cleanup_lock kp_lock *old = access (lock_path, F_OK) == 0 ? kp_lock_load (lock_path, NULL)
                                                                 : NULL;
    kp_cleanup_strv char **diff = old && kp_lock_check_integrity (old, lock_path, NULL) == 0
                                      ? kp_lock_diff_manifest (old, b.m)
                                      : NULL;
    kp_cleanup_env_record kp_env_record *rec
        = diff && diff[0] == NULL ? kp_store_env_read (store, old->env_id, NULL) : NULL;
    bool complete = rec != NULL && rec->layers != NULL;
    for (char **l = rec ? rec->layers : NULL; complete && l && *l; l++)
      complete = kp_store_layer_exists (store, *l, NULL) == 1;
    kp_cleanup_free char *upper = complete ? xasprintf ("%s/envs/%s/upper", kp_store_path (store),
                                                        old->env_id)
                                           : NULL;
    complete = complete && access (upper, F_OK) == 0;
    if (complete)
      {
        memcpy (out->env_id, old->env_id, sizeof out->env_id);
        out->existed = true;
        out->n_packages = old->n_packages;
        out->lock_path = kp_steal_pointer (&lock_path);
        snprintf (out->base_tree, sizeof out->base_tree, "%s", rec->layers[0]);
        snprintf (out->packages_tree, sizeof out->packages_tree, "%s",
                  rec->layers[1] ? rec->layers[1] : "");
        rc = 0;
        goto out;
      }
  }

  /* --locked, or packages --offline: the lock beside the manifest is the plan. */
  const kp_setting *wanted = kp_manifest_setting (b.m, KP_OPT_SYSTEM_PACKAGES);
  if (opts->locked || (opts->offline && wanted->list_len > 0))
    {
      kp_cleanup_free char *lock_path = opts->lock_file ? xstrdup (opts->lock_file)
                                                        : kp_path_join (b.m->dir, KP_LOCK_FILENAME);
      if (access (lock_path, F_OK) < 0)
        {
          kp_error_set (err, KP_EXIT_MANIFEST, "%s: no %s beside it to install from%s",
                        opts->manifest, KP_LOCK_FILENAME,
                        opts->locked ? "" : " (an offline build installs packages from the lock)");
          kp_error_hint (err, "build once without --locked/--offline: it writes the lock");
          goto out;
        }
      b.locked = kp_lock_load (lock_path, err);
      if (b.locked == NULL)
        goto out;
      if (kp_lock_check_integrity (b.locked, lock_path, err) < 0)
        {
          explain_edited_lock (store, b.locked, err);
          goto out;
        }
      kp_cleanup_strv char **diff = kp_lock_diff_manifest (b.locked, b.m);
      if (diff && diff[0])
        {
          kp_buf d = KP_BUF_INIT;
          for (char **l = diff; *l; l++)
            kp_buf_printf (&d, "\n  %s", *l);
          kp_error_set (err, KP_EXIT_MANIFEST, "%s no longer asks for what %s records:%s",
                        opts->manifest, lock_path, kp_buf_str (&d));
          kp_error_hint (err, "build without --locked to lock the manifest as it is now");
          kp_buf_clear (&d);
          goto out;
        }
    }

  /* 20 */
  step (&b, 20, "base");
  const kp_setting *image = kp_manifest_setting (b.m, KP_OPT_BASE_IMAGE);
  {
    kp_cleanup_image_ref kp_image_ref ref = { 0 };
    if (kp_image_ref_parse (image->string, b.m->dir, opts->config ? opts->config->aliases : NULL,
                            &ref, err) < 0)
      {
        kp_error_prefix (err, "%s:%d:%d: [base] image", opts->manifest, image->pos.line,
                         image->pos.column);
        kp_error_set_status (err, KP_EXIT_MANIFEST);
        goto out;
      }
    kp_pull_options po = { .config = opts->config, .tls_verify = -1, .offline = opts->offline,
                           .progress = opts->progress };
    kp_cleanup_pull_result kp_pull_result pr = { 0 };
    if (kp_image_pull (store, &ref, &po, &pr, err) < 0)
      goto out;
    kp_cleanup_image_record kp_image_record *rec = kp_store_image_read (store, pr.digest, err);
    if (rec == NULL)
      goto out;
    b.base_extra = json_incref (rec->extra);
    memcpy (out->base_tree, pr.tree_digest, sizeof out->base_tree);
    b.base_tree_path = xasprintf ("%s/layers/%s/tree", kp_store_path (store), pr.tree_digest);
    json_t *sde = json_object_get (rec->extra, "source_date_epoch");
    b.epoch = json_is_integer (sde) ? json_integer_value (sde) : 0;
    kp_lock_base base = { .reference = pr.pinned ? pr.pinned : pr.reference,
                          .digest = pr.digest, .tree_digest = pr.tree_digest };
    if (b.locked && !kp_str_equal0 (b.locked->base.tree_digest, pr.tree_digest))
      {
        kp_error_set (err, KP_EXIT_FAILURE, "the base resolved to another tree than the lock "
                      "records:\n  locked   %s (%s)\n  resolved %s (%s)",
                      b.locked->base.tree_digest, b.locked->base.digest, pr.tree_digest,
                      pr.digest);
        kp_error_hint (err, "the image moved (a new Release, a new tag): build without "
                            "--locked to lock it anew");
        goto out;
      }

    /* 30-50 */
    const kp_setting *pk = kp_manifest_setting (b.m, KP_OPT_SYSTEM_PACKAGES);
    b.packages = xcalloc (pk->list_len + 1, sizeof (char *));
    for (size_t i = 0; i < pk->list_len; i++)
      b.packages[i] = xstrdup (pk->list[i].value);
    if (pk->list_len > 0)
      {
        b.driver = kp_pkg_detect (b.base_tree_path);
        if (b.driver == NULL)
          {
            kp_error_set (err, KP_EXIT_FAILURE, "the base %s has no package manager karapace "
                          "knows (apt, dnf, zypper, pacman, apk)", image->string);
            kp_error_hint (err, "choose a base with one, or leave [system] packages empty");
            goto out;
          }
        if (b.driver->id != KP_PKG_APT && (b.locked || opts->offline))
          {
            kp_error_set (err, KP_EXIT_FAILURE, "--locked and --offline installs need an apt "
                          "base for now; %s uses %s", image->string, b.driver->name);
            goto out;
          }
        step (&b, 30, "packages");
        if (kp_store_layer_build (store, KP_LAYER_PACKAGES,
                                  b.driver->id == KP_PKG_APT ? install_packages : install_other,
                                  &b, out->packages_tree, err) < 0)
          goto out;
        step (&b, 40, "closure");
        if (b.driver->id == KP_PKG_APT)
          closure = parse_closure (&b, &n_closure);
        else if (kp_pkg_parse_list (b.driver, b.closure ? b.closure : "", &closure, &n_closure,
                                    err) < 0)
          goto out;
      }
    else if (json_is_array (json_object_get (b.base_extra, "packages")))
      {
        /* A bootstrapped base without packages: its own set is the closure. */
        size_t i;
        json_t *p;
        json_array_foreach (json_object_get (b.base_extra, "packages"), i, p)
          {
            closure = xreallocarray (closure, n_closure + 1, sizeof *closure);
            closure[n_closure++] = (kp_lock_package){
              xstrdup (json_string_value (json_object_get (p, "name"))),
              xstrdup (json_string_value (json_object_get (p, "version"))),
              xstrdup (json_string_value (json_object_get (p, "architecture"))),
              xstrdup (json_string_value (json_object_get (p, "sha256"))),
            };
          }
      }

    if (b.locked)
      {
        kp_cleanup_free char *diff = locked_diff (b.locked, closure, n_closure);
        if (diff)
          {
            kp_error_set (err, KP_EXIT_FAILURE, "the installed packages differ from %s:\n%s",
                          KP_LOCK_FILENAME, diff);
            kp_error_hint (err, "the mirror no longer has the locked versions, or the lock was "
                                "edited: build without --locked to lock what installs now");
            goto out;
          }
      }

    /* 60 */
    step (&b, 60, "lock");
    lock = kp_lock_new (b.m, &base, closure, n_closure, err);
    if (lock == NULL)
      goto out;
  }
  memcpy (out->env_id, lock->env_id, sizeof out->env_id);
  out->n_packages = lock->n_packages;
  if (opts->no_record)
    {
      rc = 0;
      goto out;
    }

  /* 70 */
  step (&b, 70, "record");
  {
    kp_cleanup_free char *text = kp_lock_to_toml (lock);
    char lock_id[KP_STORE_OBJECT_ID_LEN + 1];
    if (kp_store_put (store, text, strlen (text), lock_id, err) < 0)
      goto out;
    const char *name = opts->unnamed ? NULL
                       : opts->name ? opts->name
                                    : kp_manifest_string (b.m, KP_OPT_NAME);
    kp_cleanup_env_record kp_env_record *old = kp_store_env_read (store, lock->env_id, NULL);
    if (old)
      out->existed = true;
    kp_env_record rec = { .state = old ? old->state : KP_ENV_BUILT,
                          .name = (char *) (name && *name ? name
                                            : old                   ? old->name
                                                                    : NULL),
                          .created = old ? old->created : 0,
                          .lock = lock_id };
    memcpy (rec.env_id, lock->env_id, sizeof rec.env_id);
    char *layers[3] = { out->base_tree, out->packages_tree[0] ? out->packages_tree : NULL,
                        NULL };
    rec.layers = layers;
    kp_cleanup_free char *manifest_abs = kp_path_join (b.m->dir, kp_path_basename_of (b.m->path));
    /* The identity settings beside the lock's id: exec reads them from here on every
       start instead of parsing the whole lock (docs/build.md). */
    kp_cleanup_buf kp_buf settings = KP_BUF_INIT;
    kp_manifest_write_toml (lock->settings, "settings", &settings);
    kp_cleanup_json json_t *extra = json_pack ("{s:s,s:I,s:s}", "manifest", manifest_abs,
                                               "packages", (json_int_t) lock->n_packages,
                                               "settings", kp_buf_str (&settings));
    rec.extra = extra;
    if (kp_store_env_write (store, &rec, err) < 0)
      goto out;
    /* What is changed inside the environment stays in its own upper layer. */
    kp_cleanup_free char *dir = xasprintf ("%s/envs/%s", kp_store_path (store), lock->env_id);
    upper_call uc = { dir };
    if (kp_userns_run (make_upper, &uc, err) < 0)
      goto out;
  }

  /* 80 */
  step (&b, 80, "write karapace.lock");
  out->lock_path = kp_path_join (b.m->dir, KP_LOCK_FILENAME);
  if (kp_lock_save (lock, out->lock_path, err) < 0)
    goto out;
  rc = 0;
out:
  for (size_t i = 0; i < n_closure; i++)
    {
      free (closure[i].name);
      free (closure[i].version);
      free (closure[i].arch);
      free (closure[i].sha256);
    }
  free (closure);
  kp_lock_free (lock);
  kp_lock_free (b.locked);
  build_clear (&b);
  return rc;
}
