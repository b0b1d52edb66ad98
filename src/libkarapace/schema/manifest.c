/* manifest.c — loading karapace.toml against the option schema, and its normal form.
 *
 * The loader walks the TOML tree once: every key must name an option or a table of the
 * schema, every value must have the option's type. Per-option checks (package names,
 * mount specifications, devices, variable names) run while loading so their errors can
 * point at the offending array element or table entry. Normalisation happens last. */
#include "manifest.h"

#include "base/buf.h"
#include "base/fs.h"
#include "base/json.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define KP_MANIFEST_MAX_SIZE (1024 * 1024)

/* ---- value checks -------------------------------------------------------------------- */

static bool
is_alnum (char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool
kp_package_name_valid (const char *s)
{
  /* Names of every supported manager (Debian, RPM, pacman, apk), an optional "=version"
   * pin, and dnf groups ("@development-tools"). No spaces, quotes or shell syntax. */
  if (!(is_alnum (s[0]) || s[0] == '@' || s[0] == '_'))
    return false;
  const char *eq = strchr (s, '=');
  for (const char *p = s + 1; *p && p != eq; p++)
    if (!(is_alnum (*p) || strchr ("+-._:@/~", *p)))
      return false;
  if (eq)
    {
      if (eq[1] == '\0' || strchr (eq + 1, '='))
        return false;
      for (const char *p = eq + 1; *p; p++)
        if (!(is_alnum (*p) || strchr ("+-._:~", *p)))
          return false;
    }
  return strlen (s) <= 255;
}

bool
kp_env_name_valid (const char *s)
{
  if (!(s[0] == '_' || (s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
    return false;
  for (const char *p = s + 1; *p; p++)
    if (!(is_alnum (*p) || *p == '_'))
      return false;
  return strlen (s) <= 255;
}

bool
kp_environment_name_valid (const char *s)
{
  size_t n = strlen (s);
  if (n < 1 || n > 64)
    return false;
  for (const char *p = s; *p; p++)
    if (!(is_alnum (*p) || *p == '_' || *p == '-'))
      return false;
  return true;
}

static bool
app_name_valid (const char *s)
{
  if (!is_alnum (s[0]))
    return false;
  for (const char *p = s; *p; p++)
    if (!(is_alnum (*p) || strchr ("+-._", *p)))
      return false;
  return strlen (s) <= 255;
}

static bool
has_control_or_space (const char *s, size_t len)
{
  for (size_t i = 0; i < len; i++)
    {
      unsigned char c = (unsigned char) s[i];
      if (c <= 0x20 || c == 0x7f)
        return true;
    }
  return false;
}

static bool
has_control (const char *s, size_t len)
{
  for (size_t i = 0; i < len; i++)
    {
      unsigned char c = (unsigned char) s[i];
      if (c < 0x20 || c == 0x7f)
        return true;
    }
  return false;
}

/* "~", "~/x" stay as written (normalised after the tilde); "./x", "x" become "./x";
 * absolute paths are normalised. Returns NULL for "~user" forms, which we do not expand. */
static char *
normalize_host_path (const char *p)
{
  if (p[0] == '~')
    {
      if (p[1] != '\0' && p[1] != '/')
        return NULL;
      kp_cleanup_free char *rest = kp_path_normalize (p[1] ? p + 2 : ".");
      if (strcmp (rest, ".") == 0)
        return xstrdup ("~");
      return xasprintf ("~/%s", rest);
    }
  kp_cleanup_free char *n = kp_path_normalize (p);
  if (n[0] == '/')
    return kp_steal_pointer (&n);
  if (strcmp (n, ".") == 0)
    return xstrdup (".");
  if (kp_str_has_prefix (n, ".."))
    return kp_steal_pointer (&n);
  return xasprintf ("./%s", n);
}

static const char *const reserved_container_paths[] = { "/", "/proc", "/sys", "/dev", NULL };

void
kp_mount_spec_clear (kp_mount_spec *spec)
{
  free (spec->label);
  free (spec->host);
  free (spec->container);
  memset (spec, 0, sizeof *spec);
}

int
kp_mount_spec_parse (const char *label, const char *text, kp_mount_spec *out, kp_error **err)
{
  memset (out, 0, sizeof *out);
  kp_cleanup_free char *copy = xstrdup (text);
  bool read_only = false;
  size_t len = strlen (copy);
  if (len > 3 && strcmp (copy + len - 3, ":ro") == 0)
    {
      read_only = true;
      copy[len - 3] = '\0';
    }
  else if (len > 3 && strcmp (copy + len - 3, ":rw") == 0)
    copy[len - 3] = '\0';
  char *colon = strchr (copy, ':');
  if (colon == NULL || colon == copy || colon[1] == '\0')
    {
      kp_error_set (err, KP_EXIT_MANIFEST,
                    "mount \"%s\" must be \"HOST:CONTAINER\" or \"HOST:CONTAINER:ro\", found \"%s\"",
                    label, text);
      kp_error_hint (err, "for example: %s = \"./:/workspace\"", label);
      return -1;
    }
  *colon = '\0';
  const char *host = copy, *container = colon + 1;
  if (strchr (container, ':'))
    {
      const char *opt = strrchr (container, ':') + 1;
      kp_error_set (err, KP_EXIT_MANIFEST, "mount \"%s\": unknown option \"%s\"", label, opt);
      kp_error_hint (err, "the only options are \":ro\" (read-only) and \":rw\" (the default)");
      return -1;
    }
  if (has_control (text, strlen (text)))
    {
      kp_error_set (err, KP_EXIT_MANIFEST, "mount \"%s\": control characters in the path",
                    label);
      return -1;
    }
  if (container[0] != '/')
    {
      kp_error_set (err, KP_EXIT_MANIFEST,
                    "mount \"%s\": the container path \"%s\" must be absolute", label,
                    container);
      kp_error_hint (err, "write it from the environment's root, e.g. \"/%s\"", container);
      return -1;
    }
  kp_cleanup_free char *cont = kp_path_normalize (container);
  for (size_t i = 0; reserved_container_paths[i]; i++)
    if (kp_path_is_under (cont, reserved_container_paths[i])
        && (strcmp (reserved_container_paths[i], "/") != 0 || strcmp (cont, "/") == 0))
      {
        kp_error_set (err, KP_EXIT_MANIFEST,
                      "mount \"%s\": cannot mount over \"%s\", which the runtime manages",
                      label, cont);
        kp_error_hint (err, "choose a path such as /workspace or /mnt/%s", label);
        return -1;
      }
  char *h = normalize_host_path (host);
  if (h == NULL)
    {
      kp_error_set (err, KP_EXIT_MANIFEST, "mount \"%s\": \"%s\" is not supported", label, host);
      kp_error_hint (err, "write the path in full, or as ~/… for your own home");
      return -1;
    }
  out->label = xstrdup (label);
  out->host = h;
  out->container = kp_steal_pointer (&cont);
  out->read_only = read_only;
  return 0;
}

char *
kp_mount_spec_format (const kp_mount_spec *spec)
{
  return xasprintf ("%s:%s%s", spec->host, spec->container, spec->read_only ? ":ro" : "");
}

/* ---- loading ------------------------------------------------------------------------- */

typedef struct loader
{
  kp_manifest *m;
  kp_error **err;
  bool lock_settings; /* reading a lock's [settings]: identity options only */
  const char *prefix; /* table the document's root stands for ("settings" in a lock) */
} loader;

static int
fail_at (loader *l, kp_toml_pos pos, const char *fmt, ...) KP_PRINTF (3, 4);

static int
fail_at (loader *l, kp_toml_pos pos, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  kp_cleanup_free char *msg = xvasprintf (fmt, ap);
  va_end (ap);
  return kp_error_at (l->err, l->m->path, pos.line, pos.column, "%s", msg);
}

static const char *
leaf_name (const kp_option *opt)
{
  const char *dot = strrchr (opt->key, '.');
  return dot ? dot + 1 : opt->key;
}

static const char *
toml_type_phrase (const kp_toml_value *v)
{
  switch (v->type)
    {
    case KP_TOML_STRING:
      return "a string";
    case KP_TOML_INTEGER:
      return "an integer";
    case KP_TOML_FLOAT:
      return "a float";
    case KP_TOML_BOOL:
      return "a boolean";
    case KP_TOML_ARRAY:
      return "an array";
    case KP_TOML_TABLE:
      return "a table";
    default:
      return "a date or time";
    }
}

static int
type_error (loader *l, const kp_option *opt, const kp_toml_value *v)
{
  fail_at (l, v->pos, "%s must be %s, found %s", opt->key,
           opt->type == KP_OPT_INT ? "an integer"
           : opt->type == KP_OPT_BOOL ? "a boolean (true or false)"
           : opt->type == KP_OPT_STRING_LIST ? "an array of strings"
           : opt->type == KP_OPT_STRING_MAP ? "a table of strings"
                                             : "a string",
           toml_type_phrase (v));
  kp_error_hint (l->err, "for example: %s = %s", leaf_name (opt), opt->example);
  return -1;
}

static char *
toml_string_dup (loader *l, const kp_option *opt, const kp_toml_value *v)
{
  if (memchr (v->u.string.ptr, '\0', v->u.string.len))
    {
      fail_at (l, v->pos, "%s must not contain a NUL character", opt->key);
      return NULL;
    }
  return xstrdup (v->u.string.ptr);
}

/* Checks one element of a list option; returns the normalised element or NULL. */
static char *
check_list_item (loader *l, const kp_option *opt, const kp_toml_value *v)
{
  kp_cleanup_free char *s = toml_string_dup (l, opt, v);
  if (s == NULL)
    return NULL;
  switch (opt->id)
    {
    case KP_OPT_SYSTEM_PACKAGES:
      if (!kp_package_name_valid (s))
        {
          fail_at (l, v->pos, "\"%s\" is not a valid package name", s);
          kp_error_hint (l->err, "write one package per string, as \"name\" or "
                                 "\"name=version\" (letters, digits and + - . _ : @ / ~)");
          return NULL;
        }
      break;
    case KP_OPT_GUI_APPS:
      if (!app_name_valid (s))
        {
          fail_at (l, v->pos, "\"%s\" is not a valid application name", s);
          kp_error_hint (l->err, "use the desktop file's name without .desktop, e.g. \"firefox\"");
          return NULL;
        }
      break;
    case KP_OPT_HARDWARE_DEVICES:
      {
        kp_cleanup_free char *n = kp_path_normalize (s);
        if (s[0] != '/' || !kp_path_is_under (n, "/dev") || strcmp (n, "/dev") == 0)
          {
            fail_at (l, v->pos, "device \"%s\" is not a path under /dev", s);
            kp_error_hint (l->err, "name the device node, e.g. \"/dev/kvm\"");
            return NULL;
          }
        return kp_steal_pointer (&n);
      }
    case KP_OPT_HOST_CUSTOM_MOUNTS:
      {
        if (s[0] != '/' && s[0] != '~')
          {
            fail_at (l, v->pos, "custom mount \"%s\" must be absolute or start with ~", s);
            kp_error_hint (l->err, "custom mounts appear at the same path inside; use [mounts] "
                                   "for paths relative to the manifest");
            return NULL;
          }
        char *n = has_control (s, strlen (s)) ? NULL : normalize_host_path (s);
        if (n == NULL)
          {
            fail_at (l, v->pos, "custom mount \"%s\" is not a usable path", s);
            kp_error_hint (l->err, "write the path in full, or as ~/… for your own home");
          }
        return n;
      }
    case KP_OPT_ENV_PASS:
      if (!kp_env_name_valid (s))
        {
          fail_at (l, v->pos, "\"%s\" is not a valid environment variable name", s);
          kp_error_hint (l->err, "names use letters, digits and _, and do not start with a digit");
          return NULL;
        }
      break;
    default:
      break;
    }
  return kp_steal_pointer (&s);
}

static int
check_map_entry (loader *l, const kp_option *opt, const kp_toml_keyval *kv, char **value)
{
  const kp_toml_value *v = kv->value;
  if (v->type != KP_TOML_STRING)
    {
      fail_at (l, v->pos, "%s.%s must be a string, found %s", opt->key, kv->key,
               toml_type_phrase (v));
      kp_error_hint (l->err, "for example: %s", opt->id == KP_OPT_MOUNTS
                                                    ? "workspace = \"./:/workspace\""
                                                    : "EDITOR = \"vim\"");
      return -1;
    }
  kp_cleanup_free char *s = toml_string_dup (l, opt, v);
  if (s == NULL)
    return -1;
  if (opt->id == KP_OPT_MOUNTS)
    {
      if (!kp_environment_name_valid (kv->key))
        {
          fail_at (l, kv->key_pos, "mount label \"%s\" must use only letters, digits, _ and -",
                   kv->key);
          return -1;
        }
      kp_mount_spec spec;
      kp_cleanup_error kp_error *local = NULL;
      if (kp_mount_spec_parse (kv->key, s, &spec, &local) < 0)
        {
          fail_at (l, v->pos, "%s", local->message);
          if (local->hint)
            kp_error_hint (l->err, "%s", local->hint);
          return -1;
        }
      *value = kp_mount_spec_format (&spec);
      kp_mount_spec_clear (&spec);
      return 0;
    }
  /* env.set */
  if (!kp_env_name_valid (kv->key))
    {
      fail_at (l, kv->key_pos, "\"%s\" is not a valid environment variable name", kv->key);
      kp_error_hint (l->err, "names use letters, digits and _, and do not start with a digit");
      return -1;
    }
  *value = kp_steal_pointer (&s);
  return 0;
}

static int
load_option (loader *l, const kp_option *opt, const kp_toml_keyval *kv)
{
  kp_setting *s = &l->m->settings[opt->id];
  const kp_toml_value *v = kv->value;
  s->present = true;
  s->pos = v->pos;
  switch (opt->type)
    {
    case KP_OPT_BOOL:
      if (v->type != KP_TOML_BOOL)
        return type_error (l, opt, v);
      s->boolean = v->u.boolean;
      return 0;

    case KP_OPT_INT:
      if (v->type != KP_TOML_INTEGER)
        return type_error (l, opt, v);
      if (v->u.integer < opt->min || v->u.integer > opt->max)
        {
          if (opt->id == KP_OPT_MANIFEST_VERSION)
            {
              fail_at (l, v->pos, "manifest_version %lld is not supported by this version",
                       (long long) v->u.integer);
              kp_error_hint (l->err, "this karapace reads manifest_version = 1");
              return -1;
            }
          fail_at (l, v->pos, "%s = %lld is out of range (%lld to %lld)", opt->key,
                   (long long) v->u.integer, (long long) opt->min, (long long) opt->max);
          return -1;
        }
      s->integer = v->u.integer;
      return 0;

    case KP_OPT_STRING:
    case KP_OPT_ENUM:
      {
        if (v->type != KP_TOML_STRING)
          return type_error (l, opt, v);
        char *str = toml_string_dup (l, opt, v);
        if (str == NULL)
          return -1;
        free (s->string);
        s->string = str;
        if (opt->type == KP_OPT_ENUM)
          {
            for (size_t i = 0; opt->choices[i]; i++)
              if (strcmp (opt->choices[i], str) == 0)
                return 0;
            kp_cleanup_buf kp_buf choices = KP_BUF_INIT;
            for (size_t i = 0; opt->choices[i]; i++)
              kp_buf_printf (&choices, "%s\"%s\"", i ? ", " : "", opt->choices[i]);
            fail_at (l, v->pos, "%s = \"%s\" is not allowed", opt->key, str);
            kp_error_hint (l->err, "choose one of %s", kp_buf_str (&choices));
            return -1;
          }
        if (opt->id == KP_OPT_BASE_IMAGE && (str[0] == '\0' || has_control_or_space (str, strlen (str))))
          {
            fail_at (l, v->pos, "base.image %s", str[0] ? "must not contain spaces or control characters" : "is empty");
            kp_error_hint (l->err, "for example: image = \"debian/bookworm\"");
            return -1;
          }
        if (opt->id == KP_OPT_NAME && str[0] && !kp_environment_name_valid (str))
          {
            fail_at (l, v->pos, "name \"%s\" must be 1 to 64 letters, digits, _ or -", str);
            return -1;
          }
        return 0;
      }

    case KP_OPT_STRING_LIST:
      {
        if (v->type != KP_TOML_ARRAY)
          return type_error (l, opt, v);
        free (s->list); /* the empty default */
        s->list = xcalloc (v->u.array.len + 1, sizeof *s->list);
        for (size_t i = 0; i < v->u.array.len; i++)
          {
            const kp_toml_value *item = v->u.array.items[i];
            if (item->type != KP_TOML_STRING)
              {
                fail_at (l, item->pos, "every element of %s must be a string, found %s",
                         opt->key, toml_type_phrase (item));
                kp_error_hint (l->err, "for example: %s = %s", leaf_name (opt), opt->example);
                return -1;
              }
            char *value = check_list_item (l, opt, item);
            if (value == NULL)
              return -1;
            s->list[s->list_len].value = value;
            s->list[s->list_len].pos = item->pos;
            s->list_len++;
          }
        return 0;
      }

    case KP_OPT_STRING_MAP:
      {
        if (v->type != KP_TOML_TABLE)
          return type_error (l, opt, v);
        free (s->map); /* the empty default */
        s->map = xcalloc (v->u.table.len + 1, sizeof *s->map);
        for (size_t i = 0; i < v->u.table.len; i++)
          {
            const kp_toml_keyval *e = &v->u.table.items[i];
            char *value = NULL;
            if (check_map_entry (l, opt, e, &value) < 0)
              return -1;
            kp_map_entry *out = &s->map[s->map_len++];
            out->key = xstrdup (e->key);
            out->value = value;
            out->key_pos = e->key_pos;
            out->value_pos = e->value->pos;
          }
        return 0;
      }
    }
  return 0;
}

static int
load_table (loader *l, const kp_toml_value *table, const char *prefix)
{
  for (size_t i = 0; i < table->u.table.len; i++)
    {
      const kp_toml_keyval *kv = &table->u.table.items[i];
      kp_cleanup_free char *full = prefix[0] ? xasprintf ("%s.%s", prefix, kv->key)
                                             : xstrdup (kv->key);
      const kp_option *opt = strchr (kv->key, '.') ? NULL : kp_option_find (full);
      if (opt && l->lock_settings && !(opt->flags & KP_OPTF_IDENTITY))
        {
          fail_at (l, kv->key_pos, "%s does not belong in a lock's settings", opt->key);
          kp_error_hint (l->err, "the lock records only settings that shape the environment; "
                                 "run `karapace build` to write a new lock");
          return -1;
        }
      if (opt)
        {
          if (load_option (l, opt, kv) < 0)
            return -1;
          continue;
        }
      if (!strchr (kv->key, '.') && kp_option_is_table (full))
        {
          if (kv->value->type != KP_TOML_TABLE)
            {
              fail_at (l, kv->value->pos, "\"%s\" must be a table ([%s]), found %s", full, full,
                       toml_type_phrase (kv->value));
              kp_error_hint (l->err, "write it as a section:  [%s]", full);
              return -1;
            }
          if (load_table (l, kv->value, full) < 0)
            return -1;
          continue;
        }
      bool is_table = kv->value->type == KP_TOML_TABLE;
      kp_cleanup_free char *shown = l->prefix && prefix[0] ? xasprintf ("%s.%s", l->prefix, prefix)
                                    : xstrdup (l->prefix ? l->prefix : prefix);
      if (shown[0])
        fail_at (l, kv->key_pos, "unknown %s \"%s\" in [%s]", is_table ? "table" : "key",
                 kv->key, shown);
      else
        fail_at (l, kv->key_pos, "unknown %s \"%s\"", is_table ? "table" : "key", kv->key);
      kp_cleanup_free char *suggestion = kp_option_suggest (prefix, kv->key);
      kp_cleanup_free char *names = kp_option_list_names (prefix);
      if (suggestion)
        kp_error_hint (l->err, "did you mean \"%s\"? (valid here: %s)", suggestion, names);
      else
        kp_error_hint (l->err, "valid %s: %s", prefix[0] ? "keys here" : "top-level names",
                       names);
      return -1;
    }
  return 0;
}

static void
set_defaults (kp_manifest *m)
{
  for (size_t i = 0; i < KP_OPT__COUNT; i++)
    {
      const kp_option *opt = kp_option_get ((kp_option_id) i);
      kp_setting *s = &m->settings[i];
      if (opt->default_text == NULL)
        continue;
      switch (opt->type)
        {
        case KP_OPT_BOOL:
          s->boolean = strcmp (opt->default_text, "true") == 0;
          break;
        case KP_OPT_INT:
          s->integer = strtoll (opt->default_text, NULL, 10);
          break;
        case KP_OPT_STRING:
        case KP_OPT_ENUM:
          /* Defaults are written as TOML strings: "\"host\"". */
          s->string = xstrndup (opt->default_text + 1, strlen (opt->default_text) - 2);
          break;
        case KP_OPT_STRING_LIST:
          s->list = xcalloc (1, sizeof *s->list);
          break;
        case KP_OPT_STRING_MAP:
          s->map = xcalloc (1, sizeof *s->map);
          break;
        }
    }
}

static int
compare_items (const void *a, const void *b)
{
  const kp_list_item *x = a, *y = b;
  int r = strcmp (x->value, y->value);
  if (r == 0)
    r = x->pos.line != y->pos.line ? (x->pos.line < y->pos.line ? -1 : 1)
                                   : (x->pos.column > y->pos.column) - (x->pos.column < y->pos.column);
  return r;
}

static int
compare_entries (const void *a, const void *b)
{
  return strcmp (((const kp_map_entry *) a)->key, ((const kp_map_entry *) b)->key);
}

static int
normalize (loader *l)
{
  kp_manifest *m = l->m;
  for (size_t i = 0; i < KP_OPT__COUNT; i++)
    {
      const kp_option *opt = kp_option_get ((kp_option_id) i);
      kp_setting *s = &m->settings[i];
      if (opt->type == KP_OPT_STRING_LIST && !(opt->flags & KP_OPTF_ORDERED) && s->list_len)
        {
          /* Equal values are ordered by position so the first occurrence is kept. */
          qsort (s->list, s->list_len, sizeof *s->list, compare_items);
          size_t out = 1;
          for (size_t a = 1; a < s->list_len; a++)
            {
              if (strcmp (s->list[a].value, s->list[out - 1].value) == 0)
                free (s->list[a].value);
              else
                s->list[out++] = s->list[a];
            }
          s->list_len = out;
          s->list[out].value = NULL;
        }
      if (opt->type == KP_OPT_STRING_MAP && s->map_len > 1)
        qsort (s->map, s->map_len, sizeof *s->map, compare_entries);
    }

  /* The original key and ours describe one thing; they must agree. */
  kp_setting *iso = &m->settings[KP_OPT_RUNTIME_NETWORK_ISOLATION];
  kp_setting *net = &m->settings[KP_OPT_RUNTIME_NETWORK];
  if (iso->present && net->present)
    {
      bool none = strcmp (net->string, "none") == 0;
      if (iso->boolean != none)
        {
          fail_at (l, net->pos,
                   "runtime.network = \"%s\" contradicts runtime.network_isolation = %s "
                   "(line %d)",
                   net->string, iso->boolean ? "true" : "false", iso->pos.line);
          kp_error_hint (l->err, "keep one of the two: network_isolation = true is the same "
                                 "as network = \"none\"");
          return -1;
        }
    }
  else if (iso->present && iso->boolean)
    {
      free (net->string);
      net->string = xstrdup ("none");
    }
  iso->boolean = strcmp (net->string, "none") == 0;

  kp_setting *nvidia = &m->settings[KP_OPT_HARDWARE_NVIDIA];
  if (nvidia->boolean && !m->settings[KP_OPT_HARDWARE_GPU].boolean)
    {
      fail_at (l, nvidia->pos, "hardware.nvidia = true needs hardware.gpu = true");
      kp_error_hint (l->err, "add gpu = true to [hardware]");
      return -1;
    }
  return 0;
}

static int
check_required (loader *l, const kp_toml_value *root)
{
  for (size_t i = 0; i < KP_OPT__COUNT; i++)
    {
      const kp_option *opt = kp_option_get ((kp_option_id) i);
      if (!(opt->flags & KP_OPTF_REQUIRED) || l->m->settings[i].present)
        continue;
      const char *dot = strrchr (opt->key, '.');
      kp_toml_pos pos = { 1, 1 };
      if (dot)
        {
          kp_cleanup_free char *table = xstrndup (opt->key, (size_t) (dot - opt->key));
          const kp_toml_keyval *kv = kp_toml_table_get_keyval (root, table);
          if (kv)
            pos = kv->key_pos;
          fail_at (l, pos, "%s is missing", opt->key);
          kp_error_hint (l->err, "add to [%s]:  %s = %s", table, dot + 1, opt->example);
        }
      else
        {
          fail_at (l, pos, "%s is missing", opt->key);
          kp_error_hint (l->err, "add at the top of the file:  %s = %s", opt->key, opt->example);
        }
      return -1;
    }
  return 0;
}

kp_manifest *
kp_manifest_load_text (const char *text, size_t len, const char *path, kp_error **err)
{
  kp_cleanup_toml kp_toml_value *root = kp_toml_parse (text, len, path, err);
  if (root == NULL)
    return NULL;
  kp_cleanup_manifest kp_manifest *m = xcalloc (1, sizeof *m);
  m->path = xstrdup (path);
  kp_cleanup_free char *abs = kp_path_absolute (path, NULL);
  m->dir = abs ? kp_path_dirname (abs) : xstrdup (".");
  set_defaults (m);
  loader l = { m, err, false, NULL };
  if (load_table (&l, root, "") < 0 || check_required (&l, root) < 0 || normalize (&l) < 0)
    return NULL;
  return kp_steal_pointer (&m);
}

kp_manifest *
kp_manifest_load_settings (const kp_toml_value *table, const char *path, kp_error **err)
{
  kp_cleanup_manifest kp_manifest *m = xcalloc (1, sizeof *m);
  m->path = xstrdup (path);
  m->dir = xstrdup ("/");
  set_defaults (m);
  loader l = { m, err, true, "settings" };
  if (load_table (&l, table, "") < 0 || normalize (&l) < 0)
    return NULL;
  return kp_steal_pointer (&m);
}

kp_manifest *
kp_manifest_load (const char *path, kp_error **err)
{
  size_t len;
  kp_cleanup_free char *text = kp_file_read (path, KP_MANIFEST_MAX_SIZE, &len, err);
  if (text == NULL)
    {
      if (err && *err && (*err)->errno_value == 0 && strstr ((*err)->message, "larger"))
        kp_error_set_status (err, KP_EXIT_MANIFEST);
      bool missing = err && *err && (*err)->errno_value == ENOENT;
      kp_error_hint (err, missing ? "create one with `karapace new NAME`, or name the "
                                            "manifest: karapace validate PATH"
                                          : "check the path and its permissions");
      return NULL;
    }
  return kp_manifest_load_text (text, len, path, err);
}

void
kp_manifest_free (kp_manifest *m)
{
  if (m == NULL)
    return;
  for (size_t i = 0; i < KP_OPT__COUNT; i++)
    {
      kp_setting *s = &m->settings[i];
      free (s->string);
      for (size_t j = 0; s->list && j < s->list_len; j++)
        free (s->list[j].value);
      free (s->list);
      for (size_t j = 0; s->map && j < s->map_len; j++)
        {
          free (s->map[j].key);
          free (s->map[j].value);
        }
      free (s->map);
    }
  free (m->path);
  free (m->dir);
  free (m);
}

void
kp_manifest_freep (kp_manifest **m)
{
  kp_manifest_free (*m);
  *m = NULL;
}

const kp_setting *
kp_manifest_setting (const kp_manifest *m, kp_option_id id)
{
  return &m->settings[id];
}

bool
kp_manifest_bool (const kp_manifest *m, kp_option_id id)
{
  return m->settings[id].boolean;
}

int64_t
kp_manifest_int (const kp_manifest *m, kp_option_id id)
{
  return m->settings[id].integer;
}

const char *
kp_manifest_string (const kp_manifest *m, kp_option_id id)
{
  return m->settings[id].string;
}

/* ---- output -------------------------------------------------------------------------- */

json_t *
kp_setting_to_json (const kp_option *opt, const kp_setting *s)
{
  switch (opt->type)
    {
    case KP_OPT_BOOL:
      return json_boolean (s->boolean);
    case KP_OPT_INT:
      return json_integer (s->integer);
    case KP_OPT_STRING:
    case KP_OPT_ENUM:
      return json_string (s->string ? s->string : "");
    case KP_OPT_STRING_LIST:
      {
        json_t *a = json_array ();
        for (size_t i = 0; i < s->list_len; i++)
          json_array_append_new (a, json_string (s->list[i].value));
        return a;
      }
    case KP_OPT_STRING_MAP:
      {
        json_t *o = json_object ();
        for (size_t i = 0; i < s->map_len; i++)
          json_object_set_new (o, s->map[i].key, json_string (s->map[i].value));
        return o;
      }
    }
  return json_null ();
}

json_t *
kp_manifest_to_json (const kp_manifest *m, bool identity_only)
{
  json_t *root = json_object ();
  for (size_t i = 0; i < KP_OPT__COUNT; i++)
    {
      const kp_option *opt = kp_option_get ((kp_option_id) i);
      if (identity_only && !(opt->flags & KP_OPTF_IDENTITY))
        continue;
      json_t *obj = root;
      const char *p = opt->key;
      const char *dot;
      while ((dot = strchr (p, '.')))
        {
          kp_cleanup_free char *part = xstrndup (p, (size_t) (dot - p));
          json_t *next = json_object_get (obj, part);
          if (next == NULL)
            {
              next = json_object ();
              json_object_set_new (obj, part, next);
            }
          obj = next;
          p = dot + 1;
        }
      json_object_set_new (obj, p, kp_setting_to_json (opt, &m->settings[i]));
    }
  return root;
}

static void
write_toml_value (kp_buf *out, const kp_option *opt, const kp_setting *s)
{
  switch (opt->type)
    {
    case KP_OPT_BOOL:
      kp_buf_puts (out, s->boolean ? "true" : "false");
      break;
    case KP_OPT_INT:
      kp_buf_printf (out, "%lld", (long long) s->integer);
      break;
    case KP_OPT_STRING:
    case KP_OPT_ENUM:
      kp_toml_write_string (out, s->string ? s->string : "", s->string ? strlen (s->string) : 0);
      break;
    case KP_OPT_STRING_LIST:
      kp_buf_putc (out, '[');
      for (size_t i = 0; i < s->list_len; i++)
        {
          if (i)
            kp_buf_puts (out, ", ");
          kp_toml_write_string (out, s->list[i].value, strlen (s->list[i].value));
        }
      kp_buf_putc (out, ']');
      break;
    case KP_OPT_STRING_MAP:
      break; /* written as a table by the caller */
    }
}

void
kp_manifest_write_toml (const kp_manifest *m, const char *table_prefix, kp_buf *out)
{
  bool identity_only = table_prefix && table_prefix[0];
  kp_cleanup_free char *current = NULL; /* the table whose header was written last */
  for (size_t i = 0; i < KP_OPT__COUNT; i++)
    {
      const kp_option *opt = kp_option_get ((kp_option_id) i);
      const kp_setting *s = &m->settings[i];
      if (identity_only && !(opt->flags & KP_OPTF_IDENTITY))
        continue;
      const char *dot = strrchr (opt->key, '.');
      kp_cleanup_free char *table = opt->type == KP_OPT_STRING_MAP
                                        ? xstrdup (opt->key)
                                        : (dot ? xstrndup (opt->key, (size_t) (dot - opt->key))
                                               : xstrdup (""));
      const char *leaf = opt->type == KP_OPT_STRING_MAP ? NULL : (dot ? dot + 1 : opt->key);
      if (current == NULL || strcmp (current, table) != 0)
        {
          if (table[0] || identity_only)
            {
              kp_buf_printf (out, "\n[%s%s%s]\n", identity_only ? table_prefix : "",
                             identity_only && table[0] ? "." : "", table);
            }
          free (current);
          current = xstrdup (table);
        }
      if (opt->type == KP_OPT_STRING_MAP)
        {
          for (size_t j = 0; j < s->map_len; j++)
            {
              kp_toml_write_key (out, s->map[j].key);
              kp_buf_puts (out, " = ");
              kp_toml_write_string (out, s->map[j].value, strlen (s->map[j].value));
              kp_buf_putc (out, '\n');
            }
          continue;
        }
      kp_buf_printf (out, "%s = ", leaf);
      write_toml_value (out, opt, s);
      kp_buf_putc (out, '\n');
    }
}
