/* lock.c — reading, writing and checking karapace.lock. See lock.h and docs/lockfile.md. */
#include "lock.h"

#include "base/buf.h"
#include "base/fs.h"
#include "base/json.h"
#include "identity.h"

#include <stdlib.h>
#include <string.h>

#define KP_LOCK_MAX_SIZE (64 * 1024 * 1024)

static char *
dup0 (const char *s)
{
  return xstrdup (s ? s : "");
}

static int
compare_packages (const void *a, const void *b)
{
  const kp_lock_package *x = a, *y = b;
  int r = strcmp (x->name, y->name);
  if (r == 0)
    r = strcmp (x->arch, y->arch);
  if (r == 0)
    r = strcmp (x->version, y->version);
  return r;
}

/* A copy of the identity settings of a manifest. Going through the TOML writer and the
 * settings loader keeps one definition of what a lock holds. */
static kp_manifest *
settings_from_manifest (const kp_manifest *m, kp_error **err)
{
  kp_cleanup_buf kp_buf text = KP_BUF_INIT;
  kp_manifest_write_toml (m, "settings", &text);
  kp_cleanup_toml kp_toml_value *root = kp_toml_parse (text.data, text.len, m->path, err);
  if (root == NULL)
    return NULL;
  const kp_toml_value *settings = kp_toml_table_get (root, "settings");
  return kp_manifest_load_settings (settings, m->path, err);
}

kp_lock *
kp_lock_new (const kp_manifest *m, const kp_lock_base *base, const kp_lock_package *packages,
             size_t n_packages, kp_error **err)
{
  kp_cleanup_lock kp_lock *lock = xcalloc (1, sizeof *lock);
  lock->version = KP_LOCK_VERSION;
  lock->base.reference = dup0 (base ? base->reference : NULL);
  lock->base.digest = dup0 (base ? base->digest : NULL);
  lock->base.tree_digest = dup0 (base ? base->tree_digest : NULL);
  lock->packages = xcalloc (n_packages + 1, sizeof *lock->packages);
  for (size_t i = 0; i < n_packages; i++)
    {
      lock->packages[i].name = dup0 (packages[i].name);
      lock->packages[i].version = dup0 (packages[i].version);
      lock->packages[i].arch = dup0 (packages[i].arch);
      lock->packages[i].sha256 = dup0 (packages[i].sha256);
    }
  lock->n_packages = n_packages;
  qsort (lock->packages, n_packages, sizeof *lock->packages, compare_packages);
  lock->settings = settings_from_manifest (m, err);
  if (lock->settings == NULL)
    return NULL;
  char id[KP_ENV_ID_LEN + 1];
  kp_identity_env_id (lock, id);
  lock->env_id = xstrdup (id);
  return kp_steal_pointer (&lock);
}

void
kp_lock_free (kp_lock *lock)
{
  if (lock == NULL)
    return;
  free (lock->env_id);
  free (lock->base.reference);
  free (lock->base.digest);
  free (lock->base.tree_digest);
  for (size_t i = 0; i < lock->n_packages; i++)
    {
      free (lock->packages[i].name);
      free (lock->packages[i].version);
      free (lock->packages[i].arch);
      free (lock->packages[i].sha256);
    }
  free (lock->packages);
  kp_manifest_free (lock->settings);
  free (lock);
}

void
kp_lock_freep (kp_lock **lock)
{
  kp_lock_free (*lock);
  *lock = NULL;
}

/* ---- reading ------------------------------------------------------------------------- */

typedef struct lock_reader
{
  const char *path;
  kp_error **err;
} lock_reader;

static int
unknown_key (lock_reader *r, const kp_toml_keyval *kv, const char *where, const char *valid)
{
  kp_error_at (r->err, r->path, kv->key_pos.line, kv->key_pos.column, "unknown key \"%s\" in %s",
               kv->key, where);
  kp_error_hint (r->err, "valid keys: %s; the lock is written by `karapace build`, do not edit it",
                 valid);
  return -1;
}

static int
read_string (lock_reader *r, const kp_toml_keyval *kv, const char *where, char **out)
{
  const kp_toml_value *v = kv->value;
  if (v->type != KP_TOML_STRING || memchr (v->u.string.ptr, 0, v->u.string.len))
    return kp_error_at (r->err, r->path, v->pos.line, v->pos.column, "%s.%s must be a string",
                        where, kv->key);
  free (*out);
  *out = xstrdup (v->u.string.ptr);
  return 0;
}

static bool
is_hex (const char *s, size_t len)
{
  if (strlen (s) != len)
    return false;
  for (size_t i = 0; i < len; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
      return false;
  return true;
}

static int
read_base (lock_reader *r, kp_lock *lock, const kp_toml_value *table)
{
  if (table->type != KP_TOML_TABLE)
    return kp_error_at (r->err, r->path, table->pos.line, table->pos.column,
                        "base must be a table");
  for (size_t i = 0; i < table->u.table.len; i++)
    {
      const kp_toml_keyval *kv = &table->u.table.items[i];
      char **target = strcmp (kv->key, "reference") == 0     ? &lock->base.reference
                      : strcmp (kv->key, "digest") == 0      ? &lock->base.digest
                      : strcmp (kv->key, "tree_digest") == 0 ? &lock->base.tree_digest
                                                             : NULL;
      if (target == NULL)
        return unknown_key (r, kv, "[base]", "reference, digest, tree_digest");
      if (read_string (r, kv, "base", target) < 0)
        return -1;
    }
  return 0;
}

static int
read_packages (lock_reader *r, kp_lock *lock, const kp_toml_value *array)
{
  if (array->type != KP_TOML_ARRAY)
    return kp_error_at (r->err, r->path, array->pos.line, array->pos.column,
                        "package must be an array of tables ([[package]])");
  lock->packages = xcalloc (array->u.array.len + 1, sizeof *lock->packages);
  for (size_t i = 0; i < array->u.array.len; i++)
    {
      const kp_toml_value *t = array->u.array.items[i];
      if (t->type != KP_TOML_TABLE)
        return kp_error_at (r->err, r->path, t->pos.line, t->pos.column,
                            "package must be an array of tables ([[package]])");
      kp_lock_package *pkg = &lock->packages[lock->n_packages++];
      for (size_t k = 0; k < t->u.table.len; k++)
        {
          const kp_toml_keyval *kv = &t->u.table.items[k];
          char **target = strcmp (kv->key, "name") == 0      ? &pkg->name
                          : strcmp (kv->key, "version") == 0 ? &pkg->version
                          : strcmp (kv->key, "arch") == 0    ? &pkg->arch
                          : strcmp (kv->key, "sha256") == 0  ? &pkg->sha256
                                                             : NULL;
          if (target == NULL)
            return unknown_key (r, kv, "[[package]]", "name, version, arch, sha256");
          if (read_string (r, kv, "package", target) < 0)
            return -1;
        }
      const char *missing = !pkg->name      ? "name"
                            : !pkg->version ? "version"
                            : !pkg->arch    ? "arch"
                                            : NULL;
      if (missing)
        return kp_error_at (r->err, r->path, t->pos.line, t->pos.column,
                            "[[package]] entry %zu has no %s", i + 1, missing);
      if (!kp_package_name_valid (pkg->name) || strchr (pkg->name, '='))
        return kp_error_at (r->err, r->path, t->pos.line, t->pos.column,
                            "[[package]] entry %zu: \"%s\" is not a valid package name", i + 1,
                            pkg->name);
      if (pkg->sha256 == NULL)
        pkg->sha256 = xstrdup ("");
      if (pkg->sha256[0] && !is_hex (pkg->sha256, 64))
        return kp_error_at (r->err, r->path, t->pos.line, t->pos.column,
                            "[[package]] %s: sha256 must be 64 lowercase hex characters",
                            pkg->name);
    }
  qsort (lock->packages, lock->n_packages, sizeof *lock->packages, compare_packages);
  return 0;
}

kp_lock *
kp_lock_load_text (const char *text, size_t len, const char *path, kp_error **err)
{
  kp_cleanup_toml kp_toml_value *root = kp_toml_parse (text, len, path, err);
  if (root == NULL)
    return NULL;
  kp_cleanup_lock kp_lock *lock = xcalloc (1, sizeof *lock);
  lock_reader r = { path, err };
  const kp_toml_value *settings = NULL;
  for (size_t i = 0; i < root->u.table.len; i++)
    {
      const kp_toml_keyval *kv = &root->u.table.items[i];
      const kp_toml_value *v = kv->value;
      if (strcmp (kv->key, "lock_version") == 0)
        {
          if (v->type != KP_TOML_INTEGER)
            {
              kp_error_at (err, path, v->pos.line, v->pos.column, "lock_version must be an integer");
              return NULL;
            }
          if (v->u.integer != KP_LOCK_VERSION)
            {
              kp_error_at (err, path, v->pos.line, v->pos.column,
                           "lock_version %lld is not supported (this karapace reads %d)",
                           (long long) v->u.integer, KP_LOCK_VERSION);
              kp_error_hint (err, "use the karapace that wrote it, or rebuild with `karapace build`");
              return NULL;
            }
          lock->version = v->u.integer;
        }
      else if (strcmp (kv->key, "env_id") == 0)
        {
          if (read_string (&r, kv, "lock", &lock->env_id) < 0)
            return NULL;
          if (!kp_identity_is_env_id (lock->env_id))
            {
              kp_error_at (err, path, v->pos.line, v->pos.column,
                           "env_id must be 64 lowercase hex characters");
              return NULL;
            }
        }
      else if (strcmp (kv->key, "base") == 0)
        {
          if (read_base (&r, lock, v) < 0)
            return NULL;
        }
      else if (strcmp (kv->key, "package") == 0)
        {
          if (read_packages (&r, lock, v) < 0)
            return NULL;
        }
      else if (strcmp (kv->key, "settings") == 0 && v->type == KP_TOML_TABLE)
        settings = v;
      else
        {
          unknown_key (&r, kv, "the lock", "lock_version, env_id, [base], [[package]], [settings]");
          return NULL;
        }
    }
  const char *missing = lock->version == 0 ? "lock_version"
                        : !lock->env_id     ? "env_id"
                        : !settings         ? "[settings]"
                                            : NULL;
  if (missing)
    {
      kp_error_at (err, path, 1, 1, "the lock has no %s", missing);
      kp_error_hint (err, "the file is incomplete; rebuild with `karapace build`");
      return NULL;
    }
  lock->settings = kp_manifest_load_settings (settings, path, err);
  if (lock->settings == NULL)
    return NULL;
  if (lock->base.reference == NULL)
    lock->base.reference = xstrdup ("");
  if (lock->base.digest == NULL)
    lock->base.digest = xstrdup ("");
  if (lock->base.tree_digest == NULL)
    lock->base.tree_digest = xstrdup ("");
  if (lock->packages == NULL)
    lock->packages = xcalloc (1, sizeof *lock->packages);
  return kp_steal_pointer (&lock);
}

kp_lock *
kp_lock_load (const char *path, kp_error **err)
{
  size_t len;
  kp_cleanup_free char *text = kp_file_read (path, KP_LOCK_MAX_SIZE, &len, err);
  if (text == NULL)
    return NULL;
  return kp_lock_load_text (text, len, path, err);
}

/* ---- writing ------------------------------------------------------------------------- */

static void
put_kv (kp_buf *out, const char *key, const char *value)
{
  kp_buf_printf (out, "%s = ", key);
  kp_toml_write_string (out, value, strlen (value));
  kp_buf_putc (out, '\n');
}

char *
kp_lock_to_toml (const kp_lock *lock)
{
  kp_cleanup_buf kp_buf out = KP_BUF_INIT;
  kp_buf_puts (&out,
               "# karapace.lock: what karapace.toml resolved to. Written by `karapace build`;\n"
               "# do not edit. env_id is the BLAKE3 of this lock's canonical form\n"
               "# (docs/identity.md); `karapace build --locked` installs exactly this.\n");
  kp_buf_printf (&out, "lock_version = %lld\n", (long long) lock->version);
  put_kv (&out, "env_id", lock->env_id);
  kp_buf_puts (&out, "\n[base]\n");
  put_kv (&out, "reference", lock->base.reference);
  put_kv (&out, "digest", lock->base.digest);
  put_kv (&out, "tree_digest", lock->base.tree_digest);
  for (size_t i = 0; i < lock->n_packages; i++)
    {
      const kp_lock_package *p = &lock->packages[i];
      kp_buf_puts (&out, "\n[[package]]\n");
      put_kv (&out, "name", p->name);
      put_kv (&out, "version", p->version);
      put_kv (&out, "arch", p->arch);
      put_kv (&out, "sha256", p->sha256);
    }
  kp_manifest_write_toml (lock->settings, "settings", &out);
  return kp_buf_steal (&out);
}

int
kp_lock_save (const kp_lock *lock, const char *path, kp_error **err)
{
  kp_cleanup_free char *text = kp_lock_to_toml (lock);
  if (kp_file_write_atomic (path, text, strlen (text), 0644, false, err) < 0)
    return kp_error_prefix (err, "write lock");
  return 0;
}

json_t *
kp_lock_to_json (const kp_lock *lock)
{
  json_t *packages = json_array ();
  for (size_t i = 0; i < lock->n_packages; i++)
    {
      const kp_lock_package *p = &lock->packages[i];
      json_array_append_new (packages, json_pack ("{s:s,s:s,s:s,s:s}", "name", p->name,
                                                  "version", p->version, "arch", p->arch,
                                                  "sha256", p->sha256));
    }
  return json_pack ("{s:I,s:s,s:{s:s,s:s,s:s},s:o,s:o}", "lock_version",
                    (json_int_t) lock->version, "env_id", lock->env_id, "base", "reference",
                    lock->base.reference, "digest", lock->base.digest, "tree_digest",
                    lock->base.tree_digest, "packages", packages, "settings",
                    kp_manifest_to_json (lock->settings, true));
}

/* ---- checks -------------------------------------------------------------------------- */

int
kp_lock_check_integrity (const kp_lock *lock, const char *path, kp_error **err)
{
  char id[KP_ENV_ID_LEN + 1];
  kp_identity_env_id (lock, id);
  if (strcmp (id, lock->env_id) == 0)
    return 0;
  kp_error_set (err, KP_EXIT_MANIFEST,
                "%s: env_id %s does not match the lock's content, which hashes to %s", path,
                lock->env_id, id);
  kp_error_hint (err, "the lock was edited or damaged; restore it from version control, or "
                      "write a new one with `karapace build`");
  return -1;
}

/* Both lists are in normal form (sorted, unique), so one merge finds what the manifest
 * adds and what it removes. */
static void
diff_list (kp_buf *line, const kp_setting *locked, const kp_setting *wanted)
{
  kp_cleanup_buf kp_buf added = KP_BUF_INIT;
  kp_cleanup_buf kp_buf removed = KP_BUF_INIT;
  size_t i = 0, j = 0;
  while (i < wanted->list_len || j < locked->list_len)
    {
      int c = i == wanted->list_len   ? 1
              : j == locked->list_len ? -1
                                      : strcmp (wanted->list[i].value, locked->list[j].value);
      if (c < 0)
        kp_buf_printf (&added, "%s\"%s\"", added.len ? ", " : "", wanted->list[i++].value);
      else if (c > 0)
        kp_buf_printf (&removed, "%s\"%s\"", removed.len ? ", " : "", locked->list[j++].value);
      else
        i++, j++;
    }
  if (added.len)
    kp_buf_printf (line, ": manifest adds %s", added.data);
  if (removed.len)
    kp_buf_printf (line, "%s removes %s", added.len ? ";" : ": manifest", removed.data);
}

char **
kp_lock_diff_manifest (const kp_lock *lock, const kp_manifest *m)
{
  size_t n = 0;
  char **out = xcalloc (KP_OPT__COUNT + 1, sizeof (char *));
  for (size_t i = 0; i < KP_OPT__COUNT; i++)
    {
      const kp_option *opt = kp_option_get ((kp_option_id) i);
      if (!(opt->flags & KP_OPTF_IDENTITY))
        continue;
      const kp_setting *locked = kp_manifest_setting (lock->settings, opt->id);
      const kp_setting *wanted = kp_manifest_setting (m, opt->id);
      kp_cleanup_json json_t *a = kp_setting_to_json (opt, locked);
      kp_cleanup_json json_t *b = kp_setting_to_json (opt, wanted);
      if (json_equal (a, b))
        continue;
      kp_cleanup_buf kp_buf line = KP_BUF_INIT;
      kp_buf_puts (&line, opt->key);
      if (opt->type == KP_OPT_STRING_LIST)
        diff_list (&line, locked, wanted);
      else
        {
          kp_cleanup_free char *ta = kp_json_canonical (a);
          kp_cleanup_free char *tb = kp_json_canonical (b);
          kp_buf_printf (&line, ": locked %s, manifest says %s", ta, tb);
        }
      out[n++] = kp_buf_steal (&line);
    }
  return out;
}
