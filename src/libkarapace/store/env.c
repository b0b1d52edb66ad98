/* env.c — environment records: envs/<env_id>/env.json, checksummed, found by name or id.
 *
 * The record is JSON with a "checksum" field: the BLAKE3 of the canonical JSON of all the
 * other fields, checked on every read. A new environment's directory is journaled (so a
 * crash between creating it and writing its record leaves nothing behind); replacing the
 * record of an existing one is a single atomic rename. Names are unique: checked under the
 * exclusive lock every writer holds. */
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

#define ENV_FORMAT 1
#define ENV_MAX_SIZE (4 * 1024 * 1024)
#define ENV_MIN_PREFIX 4

static const char *const state_names[] = { "defined", "built", "running", "frozen",
                                           "archived" };

const char *
kp_env_state_name (kp_env_state state)
{
  return (size_t) state < KP_N_ELEMENTS (state_names) ? state_names[state] : "unknown";
}

int
kp_env_state_from_name (const char *name, kp_env_state *state)
{
  for (size_t i = 0; name && i < KP_N_ELEMENTS (state_names); i++)
    if (strcmp (name, state_names[i]) == 0)
      {
        *state = (kp_env_state) i;
        return 0;
      }
  return -1;
}

void
kp_env_record_free (kp_env_record *rec)
{
  if (rec == NULL)
    return;
  free (rec->name);
  kp_strv_free (rec->layers);
  kp_strv_free (rec->objects);
  free (rec->lock);
  json_decref (rec->extra);
  free (rec);
}

void
kp_env_record_freep (kp_env_record **rec)
{
  kp_env_record_free (*rec);
  *rec = NULL;
}

static bool
all_hex (const char *s)
{
  for (; *s; s++)
    if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
      return false;
  return true;
}

bool
kp_store_is_env_name (const char *name)
{
  if (name == NULL)
    return false;
  size_t n = strlen (name);
  if (n == 0 || n > 64)
    return false;
  for (const char *c = name; *c; c++)
    if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9')
          || *c == '_' || *c == '-'))
      return false;
  /* "cafe" or "0123abcd" would read as an id prefix. */
  return !(n >= ENV_MIN_PREFIX && all_hex (name));
}

static json_t *
strv_or_empty (char **v)
{
  return kp_json_strv (v);
}

static json_t *
record_to_json (const kp_env_record *rec)
{
  json_t *doc = json_pack ("{s:i,s:s,s:s,s:I,s:I,s:o,s:o}", "format", ENV_FORMAT, "env_id",
                           rec->env_id, "state", kp_env_state_name (rec->state), "created",
                           (json_int_t) rec->created, "updated", (json_int_t) rec->updated,
                           "layers", strv_or_empty (rec->layers), "objects",
                           strv_or_empty (rec->objects));
  json_object_set_new (doc, "name", rec->name ? json_string (rec->name) : json_null ());
  json_object_set_new (doc, "lock", rec->lock ? json_string (rec->lock) : json_null ());
  json_object_set_new (doc, "extra", rec->extra ? json_deep_copy (rec->extra) : json_object ());
  return doc;
}

static char **
strv_from_json (json_t *arr, bool *ok)
{
  if (!json_is_array (arr))
    {
      *ok = false;
      return NULL;
    }
  char **v = xcalloc (json_array_size (arr) + 1, sizeof (char *));
  size_t i;
  json_t *item;
  json_array_foreach (arr, i, item)
    {
      if (!kp_store_is_object_id (json_string_value (item)))
        *ok = false;
      v[i] = xstrdup (json_string_value (item) ? json_string_value (item) : "");
    }
  return v;
}

static int
validate_record (const kp_env_record *rec, kp_error **err)
{
  if (!kp_store_is_object_id (rec->env_id))
    return kp_store_fail (err, NULL, "'%s' is not an env_id", rec->env_id);
  if (rec->name && !kp_store_is_env_name (rec->name))
    return kp_store_fail (err, "names are 1 to 64 letters, digits, '_' or '-', and not 4 or "
                          "more hexadecimal digits only (those read as ids)",
                          "'%s' cannot be an environment name", rec->name);
  for (char **l = rec->layers; l && *l; l++)
    if (!kp_store_is_object_id (*l))
      return kp_store_fail (err, NULL, "'%s' is not a layer digest", *l);
  for (char **o = rec->objects; o && *o; o++)
    if (!kp_store_is_object_id (*o))
      return kp_store_fail (err, NULL, "'%s' is not an object id", *o);
  if (rec->lock && !kp_store_is_object_id (rec->lock))
    return kp_store_fail (err, NULL, "'%s' is not an object id", rec->lock);
  if (rec->extra && !json_is_object (rec->extra))
    return kp_store_fail (err, NULL, "the extra fields must be a JSON object");
  if ((size_t) rec->state >= KP_N_ELEMENTS (state_names))
    return kp_store_fail (err, NULL, "unknown environment state %d", (int) rec->state);
  return 0;
}

kp_env_record *
kp_store_env_parse (const char *text, size_t len, const char *env_id, kp_error **err)
{
  kp_cleanup_json json_t *doc = kp_store_json_load_checked (text, len, err);
  if (doc == NULL)
    return NULL;
  kp_cleanup_env_record kp_env_record *rec = xcalloc (1, sizeof *rec);
  const char *id = json_string_value (json_object_get (doc, "env_id"));
  const char *state = json_string_value (json_object_get (doc, "state"));
  json_t *name = json_object_get (doc, "name");
  json_t *lock = json_object_get (doc, "lock");
  json_t *extra = json_object_get (doc, "extra");
  bool ok = json_integer_value (json_object_get (doc, "format")) == ENV_FORMAT && id
            && strlen (id) == KP_BLAKE3_HEX_LEN && kp_env_state_from_name (state, &rec->state) == 0
            && json_is_integer (json_object_get (doc, "created"))
            && json_is_integer (json_object_get (doc, "updated"))
            && (json_is_null (name) || json_is_string (name))
            && (json_is_null (lock) || json_is_string (lock)) && json_is_object (extra);
  if (!ok)
    {
      kp_store_fail (err, NULL, "a field is missing or has the wrong type");
      return NULL;
    }
  memcpy (rec->env_id, id, sizeof rec->env_id);
  if (env_id && strcmp (env_id, id) != 0)
    {
      kp_store_fail (err, NULL, "the record is for environment %s", id);
      return NULL;
    }
  rec->created = json_integer_value (json_object_get (doc, "created"));
  rec->updated = json_integer_value (json_object_get (doc, "updated"));
  rec->name = json_is_string (name) ? xstrdup (json_string_value (name)) : NULL;
  rec->lock = json_is_string (lock) ? xstrdup (json_string_value (lock)) : NULL;
  rec->extra = json_incref (extra);
  rec->layers = strv_from_json (json_object_get (doc, "layers"), &ok);
  rec->objects = strv_from_json (json_object_get (doc, "objects"), &ok);
  if (!ok || validate_record (rec, err) < 0)
    {
      kp_store_fail (err, NULL, "a reference is malformed");
      return NULL;
    }
  return kp_steal_pointer (&rec);
}

kp_env_record *
kp_store_env_read (kp_store *store, const char *env_id, kp_error **err)
{
  if (!kp_store_is_object_id (env_id))
    {
      kp_store_fail (err, NULL, "'%s' is not an env_id", env_id ? env_id : "(null)");
      return NULL;
    }
  kp_cleanup_free char *rel = xasprintf ("%s/env.json", env_id);
  kp_cleanup_close int fd = openat (store->envs_fd, rel, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    {
      if (errno == ENOENT)
        kp_store_fail (err, "'karapace list' shows the environments there are",
                       "no environment %s in the store", env_id);
      else
        kp_store_fail_errno (err, errno, "cannot open '%s/envs/%s'", store->path, rel);
      return NULL;
    }
  size_t len;
  kp_cleanup_free char *text = kp_fd_read_all (fd, ENV_MAX_SIZE, &len, err);
  if (text == NULL)
    {
      kp_error_prefix (err, "'%s/envs/%s'", store->path, rel);
      kp_store_wrap (err, NULL);
      return NULL;
    }
  kp_env_record *rec = kp_store_env_parse (text, len, env_id, err);
  if (rec == NULL)
    {
      kp_error_prefix (err, "environment record '%s/envs/%s' is corrupt", store->path, rel);
      kp_error_hint (err, "the record was changed outside karapace; restore it from a backup "
                          "or destroy and rebuild the environment (" KP_STORE_HINT_VERIFY ")");
    }
  return rec;
}

static int
compare_strings (const void *a, const void *b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

char **
kp_store_env_list (kp_store *store, kp_error **err)
{
  kp_cleanup_dir DIR *d = kp_dir_open_at (store->envs_fd, NULL);
  if (d == NULL)
    {
      kp_store_fail_errno (err, errno, "cannot list '%s/envs'", store->path);
      return NULL;
    }
  size_t n = 0;
  char **ids = xcalloc (1, sizeof (char *));
  struct dirent *de;
  while ((de = readdir (d)) != NULL)
    {
      if (!kp_store_is_object_id (de->d_name))
        continue;
      ids = xreallocarray (ids, n + 2, sizeof (char *));
      ids[n++] = xstrdup (de->d_name);
      ids[n] = NULL;
    }
  qsort (ids, n, sizeof (char *), compare_strings);
  return ids;
}

static int
check_name_free (kp_store *store, const kp_env_record *rec, kp_error **err)
{
  if (rec->name == NULL)
    return 0;
  kp_cleanup_strv char **ids = kp_store_env_list (store, err);
  if (ids == NULL)
    return -1;
  for (char **id = ids; *id; id++)
    {
      if (strcmp (*id, rec->env_id) == 0)
        continue;
      kp_cleanup_env_record kp_env_record *other = kp_store_env_read (store, *id, err);
      if (other == NULL)
        return kp_error_prefix (err, "check that the name '%s' is free", rec->name);
      if (kp_str_equal0 (other->name, rec->name))
        return kp_store_fail (err, "choose another name, or rename or destroy the other one",
                              "the name '%s' is taken by environment %.12s", rec->name,
                              other->env_id);
    }
  return 0;
}

int
kp_store_env_write (kp_store *store, kp_env_record *rec, kp_error **err)
{
  if (kp_store_require_writable (store, "write an environment record", err) < 0
      || validate_record (rec, err) < 0 || check_name_free (store, rec, err) < 0)
    return -1;
  rec->updated = (int64_t) time (NULL);
  if (rec->created == 0)
    rec->created = rec->updated;
  kp_cleanup_json json_t *doc = record_to_json (rec);
  kp_cleanup_free char *text = kp_store_json_dump_checked (doc);

  kp_cleanup_store_txn kp_store_txn *txn = NULL;
  struct stat st;
  if (fstatat (store->envs_fd, rec->env_id, &st, AT_SYMLINK_NOFOLLOW) < 0)
    {
      if (errno != ENOENT)
        return kp_store_fail_errno (err, errno, "cannot look at '%s/envs/%s'", store->path,
                                    rec->env_id);
      /* New: the rollback step is on disk before the directory exists, so a crash before
         the record lands leaves nothing behind (we hold the exclusive lock: nobody else
         creates it meanwhile). */
      kp_cleanup_free char *rel = xasprintf ("envs/%s", rec->env_id);
      txn = kp_store_txn_begin (store, "create environment", err);
      if (txn == NULL || kp_store_txn_undo_remove (txn, rel, err) < 0)
        return -1;
      if (mkdirat (store->envs_fd, rec->env_id, 0700) < 0)
        return kp_store_fail_errno (err, errno, "cannot create '%s/envs/%s'", store->path,
                                    rec->env_id);
      if (kp_store_fsync_dir (store->envs_fd, "envs", err) < 0)
        return -1;
    }
  else if (!S_ISDIR (st.st_mode))
    return kp_store_fail (err, NULL, "'%s/envs/%s' is not a directory", store->path,
                          rec->env_id);
  kp_cleanup_close int dfd = openat (store->envs_fd, rec->env_id,
                                     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dfd < 0)
    return kp_store_fail_errno (err, errno, "cannot open '%s/envs/%s'", store->path,
                                rec->env_id);
  if (kp_store_write_file (store, dfd, "env.json", text, strlen (text), err) < 0)
    return kp_error_prefix (err, "write the record of environment %.12s", rec->env_id);
  if (txn)
    return kp_store_txn_commit (kp_steal_pointer (&txn), err);
  return 0;
}

int
kp_store_env_remove (kp_store *store, const char *env_id, kp_error **err)
{
  if (kp_store_require_writable (store, "remove an environment", err) < 0)
    return -1;
  if (!kp_store_is_object_id (env_id))
    return kp_store_fail (err, NULL, "'%s' is not an env_id", env_id);
  return kp_store_remove_path (store, store->envs_fd, env_id, err);
}

kp_env_record *
kp_store_env_lookup (kp_store *store, const char *ref, kp_error **err)
{
  if (ref == NULL || ref[0] == '\0')
    {
      kp_store_fail (err, "give a name, a short id or a full id", "no environment named");
      return NULL;
    }
  if (kp_store_is_object_id (ref))
    return kp_store_env_read (store, ref, err);
  bool by_name = kp_store_is_env_name (ref);
  size_t len = strlen (ref);
  bool by_prefix = len >= ENV_MIN_PREFIX && len < KP_BLAKE3_HEX_LEN && all_hex (ref);
  if (!by_name && !by_prefix)
    {
      kp_store_fail (err, "refer to an environment by its name, its 12-digit short id, a "
                          "unique prefix of at least 4 hex digits, or its full id",
                     "'%s' is neither an environment name nor an id", ref);
      return NULL;
    }
  kp_cleanup_strv char **ids = kp_store_env_list (store, err);
  if (ids == NULL)
    return NULL;
  kp_cleanup_env_record kp_env_record *found = NULL;
  kp_cleanup_buf kp_buf candidates = KP_BUF_INIT;
  size_t matches = 0;
  for (char **id = ids; *id; id++)
    {
      if (by_prefix && !kp_str_has_prefix (*id, ref))
        continue;
      kp_cleanup_env_record kp_env_record *rec = kp_store_env_read (store, *id, err);
      if (rec == NULL)
        return NULL;
      if (by_name && !kp_str_equal0 (rec->name, ref))
        continue;
      matches++;
      kp_buf_printf (&candidates, "\n  %.12s  %s", rec->env_id, rec->name ? rec->name : "-");
      if (found == NULL)
        found = kp_steal_pointer (&rec);
    }
  if (matches == 0)
    {
      kp_store_fail (err, "'karapace list' shows the environments there are",
                     "no environment %s '%s' in the store", by_name ? "named" : "with id", ref);
      return NULL;
    }
  if (matches > 1)
    {
      kp_store_fail (err, "give more digits of the id, or the full id",
                     "'%s' is ambiguous: %zu environments match:%s", ref, matches,
                     kp_buf_str (&candidates));
      return NULL;
    }
  return kp_steal_pointer (&found);
}
