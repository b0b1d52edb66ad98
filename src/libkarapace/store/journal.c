/* journal.c — the write-ahead log of multi-step mutations.
 *
 * A mutation that creates several things records, before creating each one, how to undo
 * it: journal/<seq>.json lists the rollback steps and is rewritten atomically (tmp/,
 * fsync, rename, fsync journal/) every time a step is added. When the mutation finishes
 * the entry is removed. An exclusive open that finds entries left behind by a crash runs
 * their steps (newest entry first, steps in reverse) and removes them. An entry that does
 * not parse or whose checksum fails is never run and never dropped: it is moved to
 * journal/quarantine/ and reported, by the open and by verify-store. */
#include "store-private.h"

#include "base/fs.h"
#include "base/json.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define JOURNAL_FORMAT 1
#define JOURNAL_MAX_SIZE (1024 * 1024)

struct kp_store_txn
{
  kp_store *store;
  char *operation;
  unsigned long long seq;
  json_t *steps;
  bool written;
};

/* ---- checksummed JSON documents (shared with env.c) ---- */

static void
checksum_of (json_t *doc, char hex[KP_BLAKE3_HEX_LEN + 1])
{
  kp_cleanup_free char *canon = kp_json_canonical (doc);
  uint8_t d[KP_BLAKE3_OUT_LEN];
  kp_blake3_hash (canon, strlen (canon), d);
  kp_blake3_to_hex (d, hex);
}

char *
kp_store_json_dump_checked (json_t *doc)
{
  kp_cleanup_json json_t *copy = json_deep_copy (doc);
  json_object_del (copy, "checksum");
  char hex[KP_BLAKE3_HEX_LEN + 1];
  checksum_of (copy, hex);
  json_object_set_new (copy, "checksum", json_string (hex));
  return kp_json_pretty (copy);
}

json_t *
kp_store_json_load_checked (const char *text, size_t len, kp_error **err)
{
  json_error_t jerr;
  json_t *doc = json_loadb (text, len, JSON_REJECT_DUPLICATES, &jerr);
  if (doc == NULL)
    {
      kp_store_fail (err, NULL, "not valid JSON (line %d: %s)", jerr.line, jerr.text);
      return NULL;
    }
  kp_cleanup_json json_t *owned = doc;
  const char *sum = json_is_object (doc) ? json_string_value (json_object_get (doc, "checksum"))
                                         : NULL;
  if (sum == NULL)
    {
      kp_store_fail (err, NULL, "no checksum field");
      return NULL;
    }
  kp_cleanup_free char *expected = xstrdup (sum);
  json_object_del (doc, "checksum");
  char hex[KP_BLAKE3_HEX_LEN + 1];
  checksum_of (doc, hex);
  if (strcmp (hex, expected) != 0)
    {
      kp_store_fail (err, NULL, "checksum mismatch: the content hashes to %s, the file says %s",
                     hex, expected);
      return NULL;
    }
  return kp_steal_pointer (&owned);
}

/* ---- rollback steps ---- */

static const char *const undo_roots[] = { "objects", "layers", "envs", "images", "cache" };

/* "envs/<id>"-like paths: 2 or 3 plain components under one of undo_roots. */
static bool
valid_undo_path (const char *path)
{
  if (path == NULL || path[0] == '/' || strlen (path) > 512)
    return false;
  size_t parts = 0;
  const char *p = path;
  while (*p)
    {
      const char *end = strchrnul (p, '/');
      size_t n = (size_t) (end - p);
      if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
        return false;
      for (const char *c = p; c < end; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9')
              || *c == '-' || *c == '_' || *c == '.'))
          return false;
      if (parts == 0)
        {
          bool known = false;
          for (size_t i = 0; i < KP_N_ELEMENTS (undo_roots); i++)
            known |= strlen (undo_roots[i]) == n && memcmp (undo_roots[i], p, n) == 0;
          if (!known)
            return false;
        }
      parts++;
      p = *end ? end + 1 : end;
      if (*end && !*p)
        return false;
    }
  return parts >= 2 && parts <= 3;
}

static int
undo_remove (kp_store *store, const char *path, kp_error **err)
{
  kp_cleanup_free char *copy = xstrdup (path);
  char *slash = strrchr (copy, '/');
  *slash = '\0';
  const char *leaf = slash + 1;
  /* Walk the parents without following symbolic links. */
  kp_cleanup_close int fd = dup (store->dirfd);
  char *save = NULL;
  for (char *part = strtok_r (copy, "/", &save); part; part = strtok_r (NULL, "/", &save))
    {
      int next = openat (fd, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (next < 0)
        {
          if (errno == ENOENT)
            return 0;
          return kp_store_fail_errno (err, errno, "cannot open '%s'", path);
        }
      close (fd);
      fd = next;
    }
  return kp_store_remove_path (store, fd, leaf, err);
}

static int
run_steps (kp_store *store, json_t *steps, kp_error **err)
{
  for (size_t i = json_array_size (steps); i-- > 0;)
    {
      json_t *step = json_array_get (steps, i);
      const char *op = json_string_value (json_object_get (step, "op"));
      const char *path = json_string_value (json_object_get (step, "path"));
      if (op == NULL || strcmp (op, "remove") != 0 || !valid_undo_path (path))
        return kp_store_fail (err, NULL, "unknown rollback step %zu", i);
      if (undo_remove (store, path, err) < 0)
        return kp_error_prefix (err, "roll back: remove '%s'", path);
    }
  return 0;
}

/* ---- transactions ---- */

static unsigned long long
next_seq (kp_store *store)
{
  unsigned long long max = 0;
  kp_cleanup_dir DIR *d = kp_dir_open_at (store->journal_fd, NULL);
  if (d == NULL)
    return 1;
  struct dirent *de;
  while ((de = readdir (d)) != NULL)
    {
      unsigned long long v = strtoull (de->d_name, NULL, 10);
      if (v > max)
        max = v;
    }
  return max + 1;
}

static char *
entry_name (unsigned long long seq)
{
  return xasprintf ("%016llu.json", seq);
}

kp_store_txn *
kp_store_txn_begin (kp_store *store, const char *operation, kp_error **err)
{
  if (kp_store_require_writable (store, operation, err) < 0)
    return NULL;
  kp_store_txn *txn = xcalloc (1, sizeof *txn);
  txn->store = store;
  txn->operation = xstrdup (operation);
  txn->seq = next_seq (store);
  txn->steps = json_array ();
  return txn;
}

static int
write_entry (kp_store_txn *txn, kp_error **err)
{
  kp_cleanup_json json_t *doc = json_pack ("{s:i,s:I,s:s,s:I,s:I,s:O}", "format",
                                           JOURNAL_FORMAT, "seq", (json_int_t) txn->seq,
                                           "operation", txn->operation, "pid",
                                           (json_int_t) getpid (), "created",
                                           (json_int_t) time (NULL), "rollback", txn->steps);
  kp_cleanup_free char *text = kp_store_json_dump_checked (doc);
  kp_cleanup_free char *name = entry_name (txn->seq);
  if (kp_store_write_file (txn->store, txn->store->journal_fd, name, text, strlen (text), err)
      < 0)
    return kp_error_prefix (err, "write the journal entry for %s", txn->operation);
  txn->written = true;
  return 0;
}

int
kp_store_txn_undo_remove (kp_store_txn *txn, const char *relpath, kp_error **err)
{
  if (!valid_undo_path (relpath))
    return kp_store_fail (err, NULL, "'%s' cannot be a rollback step", relpath);
  json_array_append_new (txn->steps, json_pack ("{s:s,s:s}", "op", "remove", "path", relpath));
  if (write_entry (txn, err) < 0)
    {
      json_array_remove (txn->steps, json_array_size (txn->steps) - 1);
      return -1;
    }
  return 0;
}

static void
txn_free (kp_store_txn *txn)
{
  free (txn->operation);
  json_decref (txn->steps);
  free (txn);
}

static int
remove_entry (kp_store_txn *txn, kp_error **err)
{
  if (!txn->written)
    return 0;
  kp_cleanup_free char *name = entry_name (txn->seq);
  if (unlinkat (txn->store->journal_fd, name, 0) < 0 && errno != ENOENT)
    return kp_store_fail_errno (err, errno, "cannot remove journal entry %s", name);
  return kp_store_fsync_dir (txn->store->journal_fd, "journal", err);
}

int
kp_store_txn_commit (kp_store_txn *txn, kp_error **err)
{
  int r = remove_entry (txn, err);
  txn_free (txn);
  return r;
}

void
kp_store_txn_abort (kp_store_txn *txn)
{
  if (txn == NULL)
    return;
  kp_cleanup_error kp_error *err = NULL;
  /* When the rollback itself fails the entry stays, and the next open tries again. */
  if (run_steps (txn->store, txn->steps, &err) == 0)
    remove_entry (txn, &err);
  txn_free (txn);
}

void
kp_store_txn_abortp (kp_store_txn **txn)
{
  kp_store_txn_abort (*txn);
  *txn = NULL;
}

/* ---- recovery ---- */

static int
compare_names (const void *a, const void *b)
{
  return strcmp (*(char *const *) b, *(char *const *) a); /* newest first */
}

static bool
is_entry_name (const char *name)
{
  size_t n = strlen (name);
  if (n != 16 + 5 || strcmp (name + 16, ".json") != 0)
    return false;
  for (size_t i = 0; i < 16; i++)
    if (name[i] < '0' || name[i] > '9')
      return false;
  return true;
}

static char **
list_entries (kp_store *store, bool *has_quarantine, kp_error **err)
{
  kp_cleanup_dir DIR *d = kp_dir_open_at (store->journal_fd, NULL);
  if (d == NULL)
    {
      kp_store_fail_errno (err, errno, "cannot list '%s/journal'", store->path);
      return NULL;
    }
  size_t n = 0;
  char **names = xcalloc (1, sizeof (char *));
  struct dirent *de;
  while ((de = readdir (d)) != NULL)
    {
      if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
        continue;
      if (strcmp (de->d_name, "quarantine") == 0)
        {
          if (has_quarantine)
            *has_quarantine = true;
          continue;
        }
      names = xreallocarray (names, n + 2, sizeof (char *));
      names[n++] = xstrdup (de->d_name);
      names[n] = NULL;
    }
  qsort (names, n, sizeof (char *), compare_names);
  return names;
}

static json_t *
load_entry (kp_store *store, const char *name, kp_error **err)
{
  if (!is_entry_name (name))
    {
      kp_store_fail (err, NULL, "unexpected file name");
      return NULL;
    }
  kp_cleanup_close int fd = openat (store->journal_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    {
      kp_store_fail_errno (err, errno, "cannot open");
      return NULL;
    }
  size_t len;
  kp_cleanup_free char *text = kp_fd_read_all (fd, JOURNAL_MAX_SIZE, &len, err);
  if (text == NULL)
    {
      kp_store_wrap (err, NULL);
      return NULL;
    }
  json_t *doc = kp_store_json_load_checked (text, len, err);
  if (doc == NULL)
    return NULL;
  json_t *steps = json_object_get (doc, "rollback");
  if (json_integer_value (json_object_get (doc, "format")) != JOURNAL_FORMAT
      || !json_is_array (steps))
    {
      json_decref (doc);
      kp_store_fail (err, NULL, "unknown journal format");
      return NULL;
    }
  return doc;
}

static int
quarantine (kp_store *store, const char *name, kp_error **err)
{
  if (mkdirat (store->journal_fd, "quarantine", 0700) < 0 && errno != EEXIST)
    return kp_store_fail_errno (err, errno, "cannot create '%s/journal/quarantine'",
                                store->path);
  kp_cleanup_close int qfd = openat (store->journal_fd, "quarantine",
                                     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (qfd < 0)
    return kp_store_fail_errno (err, errno, "cannot open '%s/journal/quarantine'",
                                store->path);
  kp_cleanup_free char *target = xasprintf ("%s.%lld", name, (long long) time (NULL));
  if (renameat (store->journal_fd, name, qfd, target) < 0)
    return kp_store_fail_errno (err, errno, "cannot quarantine journal entry '%s'", name);
  if (kp_store_fsync_dir (qfd, "journal/quarantine", err) < 0)
    return -1;
  return kp_store_fsync_dir (store->journal_fd, "journal", err);
}

int
kp_store_journal_recover (kp_store *store, kp_error **err)
{
  kp_cleanup_strv char **names = list_entries (store, NULL, err);
  if (names == NULL)
    return -1;
  for (char **n = names; *n; n++)
    {
      kp_cleanup_error kp_error *bad = NULL;
      kp_cleanup_json json_t *doc = load_entry (store, *n, &bad);
      if (doc == NULL)
        {
          fprintf (stderr, "karapace: warning: journal entry '%s/journal/%s' is unreadable (%s); "
                           "moved to journal/quarantine/ without running it\n",
                   store->path, *n, bad ? bad->message : "?");
          if (quarantine (store, *n, err) < 0)
            return -1;
          store->recovery.quarantined++;
          continue;
        }
      if (run_steps (store, json_object_get (doc, "rollback"), err) < 0)
        return kp_error_prefix (err, "journal entry '%s'", *n);
      if (unlinkat (store->journal_fd, *n, 0) < 0 && errno != ENOENT)
        return kp_store_fail_errno (err, errno, "cannot remove journal entry '%s'", *n);
      if (kp_store_fsync_dir (store->journal_fd, "journal", err) < 0)
        return -1;
      store->recovery.rolled_back++;
    }
  return 0;
}

int
kp_store_journal_check (kp_store *store, kp_store_verify_report *report, kp_error **err)
{
  bool has_quarantine = false;
  kp_cleanup_strv char **names = list_entries (store, &has_quarantine, err);
  if (names == NULL)
    return -1;
  for (char **n = names; *n; n++)
    {
      report->journal_entries++;
      kp_cleanup_error kp_error *bad = NULL;
      kp_cleanup_json json_t *doc = load_entry (store, *n, &bad);
      if (doc == NULL)
        kp_store_verify_problem (report, "journal", *n, "corrupt journal entry: %s",
                                 bad ? bad->message : "?");
      else if (!store->writable)
        kp_store_verify_problem (report, "journal", *n,
                                 "unfinished mutation '%s' (rolled back by the next command "
                                 "that writes to the store)",
                                 json_string_value (json_object_get (doc, "operation")));
    }
  if (has_quarantine)
    {
      kp_cleanup_dir DIR *d = kp_dir_open_at (store->journal_fd, "quarantine");
      struct dirent *de;
      while (d && (de = readdir (d)) != NULL)
        if (strcmp (de->d_name, ".") && strcmp (de->d_name, ".."))
          kp_store_verify_problem (report, "journal", de->d_name,
                                   "quarantined journal entry in journal/quarantine/: its "
                                   "mutation was not rolled back; check what it lists, then "
                                   "delete it");
    }
  return 0;
}
