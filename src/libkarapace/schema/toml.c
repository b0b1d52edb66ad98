/* toml.c — a strict TOML 1.0.0 parser (docs/toml.md).
 *
 * One pass over the bytes, recursive descent for values, a tree of kp_toml_value as the
 * result. The whole input is checked for UTF-8 and bare carriage returns first, so the
 * grammar code can take multi-byte characters for granted and only has to decide where
 * control characters are allowed. Recursion is bounded by the nesting limit, and every
 * read is checked against the input length: the input is untrusted and not NUL-terminated.
 *
 * Strings, numbers and dates are read in toml-scalar.c; lookups and emitters that do not
 * need the parser live in toml-value.c. */
#include "toml-private.h"

#include "base/fs.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define TOML_MAX_FILE_SIZE (16 * 1024 * 1024)

typedef struct key_part
{
  char *name; /* NUL-terminated; never contains NUL */
  size_t len;
  kp_toml_pos pos;
} key_part;

typedef struct key_path
{
  key_part *parts;
  size_t len;
  size_t capacity;
} key_path;

/* ---- positions and errors -------------------------------------------------------------- */

/* Position of an arbitrary byte; used on error paths only. */
static kp_toml_pos
pos_slow (const toml_parser *p, size_t idx)
{
  kp_toml_pos pos = { 1, 1 };
  for (size_t k = p->start; k < idx && k < p->len; k++)
    {
      unsigned char c = (unsigned char) p->text[k];
      if (c == '\n')
        {
          pos.line++;
          pos.column = 1;
        }
      else if (is_char_start (c))
        pos.column++;
    }
  return pos;
}

/* Position of a byte on the current line, counted incrementally so that a document
 * written as one long line does not cost quadratic time. */
kp_toml_pos
toml_pos_at (toml_parser *p, size_t idx)
{
  if (idx < p->line_start)
    return pos_slow (p, idx);
  if (idx < p->col_index)
    {
      p->col_index = p->line_start;
      p->col = 1;
    }
  while (p->col_index < idx && p->col_index < p->len)
    {
      if (is_char_start ((unsigned char) p->text[p->col_index]))
        p->col++;
      p->col_index++;
    }
  return (kp_toml_pos){ p->line, p->col };
}

int
toml_fail_at (toml_parser *p, kp_toml_pos pos, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  kp_cleanup_free char *msg = xvasprintf (fmt, ap);
  va_end (ap);
  return kp_error_at (p->err, p->filename, pos.line, pos.column, "%s", msg);
}

char_name
toml_describe_at (const toml_parser *p, size_t idx)
{
  char_name n;
  if (idx >= p->len)
    {
      snprintf (n.text, sizeof n.text, "end of file");
      return n;
    }
  unsigned char c = (unsigned char) p->text[idx];
  if (c == '\n' || c == '\r')
    snprintf (n.text, sizeof n.text, "end of line");
  else if (c == '\t')
    snprintf (n.text, sizeof n.text, "a tab");
  else if (c < 0x20 || c == 0x7F)
    snprintf (n.text, sizeof n.text, "control character U+%04X", c);
  else if (c < 0x80)
    snprintf (n.text, sizeof n.text, "'%c'", c);
  else
    {
      /* The encoding was checked up front: this is a whole, valid sequence. */
      size_t k = 1;
      while (idx + k < p->len && k < 4 && !is_char_start ((unsigned char) p->text[idx + k]))
        k++;
      snprintf (n.text, sizeof n.text, "'%.*s'", (int) k, p->text + idx);
    }
  return n;
}

/* A key path as a person would write it, for messages: a.b."c d" */
static char *
path_describe (const key_path *key, size_t count)
{
  kp_cleanup_buf kp_buf out = KP_BUF_INIT;
  for (size_t k = 0; k < count && k < key->len; k++)
    {
      if (k > 0)
        kp_buf_putc (&out, '.');
      kp_toml_write_key (&out, key->parts[k].name);
    }
  return kp_buf_steal (&out);
}

/* ---- nodes ------------------------------------------------------------------------------ */

toml_node *
toml_node_new (kp_toml_type type, enum node_kind kind, kp_toml_pos pos, unsigned depth)
{
  toml_node *n = xcalloc (1, sizeof *n);
  n->value.type = type;
  n->value.pos = pos;
  n->kind = (unsigned char) kind;
  n->depth = (unsigned short) depth;
  return n;
}

static toml_node *
node_of (kp_toml_value *v)
{
  return (toml_node *) v;
}

static void
node_freep (toml_node **n)
{
  if (*n)
    kp_toml_free (&(*n)->value);
  *n = NULL;
}
#define cleanup_node __attribute__ ((cleanup (node_freep)))

void
kp_toml_free (kp_toml_value *v)
{
  if (v == NULL)
    return;
  switch (v->type)
    {
    case KP_TOML_STRING:
      free (v->u.string.ptr);
      break;
    case KP_TOML_ARRAY:
      for (size_t k = 0; k < v->u.array.len; k++)
        kp_toml_free (v->u.array.items[k]);
      free (v->u.array.items);
      break;
    case KP_TOML_TABLE:
      for (size_t k = 0; k < v->u.table.len; k++)
        {
          free (v->u.table.items[k].key);
          kp_toml_free (v->u.table.items[k].value);
        }
      free (v->u.table.items);
      break;
    default:
      break;
    }
  free (v);
}

void
kp_toml_freep (kp_toml_value **v)
{
  kp_toml_free (*v);
  *v = NULL;
}

static void
array_append (toml_node *array, toml_node *item)
{
  kp_toml_value *a = &array->value;
  if (a->u.array.len == array->capacity)
    {
      array->capacity = array->capacity ? array->capacity * 2 : 4;
      a->u.array.items
          = xreallocarray (a->u.array.items, array->capacity, sizeof *a->u.array.items);
    }
  a->u.array.items[a->u.array.len++] = &item->value;
}

/* ---- the key index ---------------------------------------------------------------------- */

static uint64_t
key_hash (const toml_node *table, const char *key, size_t len)
{
  uint64_t h = 0xcbf29ce484222325ULL;
  for (size_t k = 0; k < len; k++)
    {
      h ^= (unsigned char) key[k];
      h *= 0x100000001b3ULL;
    }
  h ^= (uint64_t) (uintptr_t) table * 0x9E3779B97F4A7C15ULL;
  h ^= h >> 31;
  h *= 0xBF58476D1CE4E5B9ULL;
  h ^= h >> 29;
  return h;
}

static void
index_put (key_index *ix, const toml_node *table, size_t item, uint64_t hash)
{
  if ((ix->used + 1) * 2 > ix->capacity)
    {
      size_t capacity = ix->capacity ? ix->capacity * 2 : 64;
      index_slot *slots = xcalloc (capacity, sizeof *slots);
      for (size_t k = 0; k < ix->capacity; k++)
        if (ix->slots[k].table)
          {
            size_t s = ix->slots[k].hash & (capacity - 1);
            while (slots[s].table)
              s = (s + 1) & (capacity - 1);
            slots[s] = ix->slots[k];
          }
      free (ix->slots);
      ix->slots = slots;
      ix->capacity = capacity;
    }
  size_t s = hash & (ix->capacity - 1);
  while (ix->slots[s].table)
    s = (s + 1) & (ix->capacity - 1);
  ix->slots[s] = (index_slot){ table, item, hash };
  ix->used++;
}

static kp_toml_keyval *
table_find (const toml_parser *p, toml_node *table, const char *key, size_t len)
{
  const key_index *ix = &p->index;
  if (ix->capacity == 0)
    return NULL;
  uint64_t hash = key_hash (table, key, len);
  for (size_t s = hash & (ix->capacity - 1); ix->slots[s].table; s = (s + 1) & (ix->capacity - 1))
    {
      const index_slot *slot = &ix->slots[s];
      if (slot->table != table || slot->hash != hash)
        continue;
      kp_toml_keyval *kv = &table->value.u.table.items[slot->item];
      if (memcmp (kv->key, key, len) == 0 && kv->key[len] == '\0')
        return kv;
    }
  return NULL;
}

static kp_toml_keyval *
table_append (toml_parser *p, toml_node *table, char *key, size_t len, kp_toml_pos key_pos,
              toml_node *value)
{
  kp_toml_value *t = &table->value;
  if (t->u.table.len == table->capacity)
    {
      table->capacity = table->capacity ? table->capacity * 2 : 4;
      t->u.table.items
          = xreallocarray (t->u.table.items, table->capacity, sizeof *t->u.table.items);
    }
  size_t item = t->u.table.len++;
  t->u.table.items[item] = (kp_toml_keyval){ key, key_pos, &value->value };
  index_put (&p->index, table, item, key_hash (table, key, len));
  return &t->u.table.items[item];
}

/* ---- characters -------------------------------------------------------------------------- */

void
toml_skip_newline (toml_parser *p)
{
  if (peek (p) == '\r')
    p->i++;
  p->i++;
  p->line++;
  p->line_start = p->col_index = p->i;
  p->col = 1;
}

static void
skip_ws (toml_parser *p)
{
  while (p->i < p->len && (p->text[p->i] == ' ' || p->text[p->i] == '\t'))
    p->i++;
}

/* At '#': the comment up to (not including) the end of the line. */
static int
skip_comment (toml_parser *p)
{
  p->i++;
  while (p->i < p->len && !at_newline (p))
    {
      unsigned char c = (unsigned char) p->text[p->i];
      if ((c < 0x20 && c != '\t') || c == 0x7F)
        return toml_fail_at (p, here (p), "%s is not allowed in a comment", describe_here (p).text);
      p->i++;
    }
  return 0;
}

/* Whitespace, comments and newlines, as allowed between array elements. */
static int
skip_ws_comments_newlines (toml_parser *p)
{
  for (;;)
    {
      skip_ws (p);
      if (peek (p) == '#' && skip_comment (p) < 0)
        return -1;
      if (!at_newline (p))
        return 0;
      toml_skip_newline (p);
    }
}

/* After a key/value pair or a header: optional whitespace and comment, then a newline. */
static int
expect_end_of_line (toml_parser *p, const char *after)
{
  skip_ws (p);
  if (peek (p) == '#' && skip_comment (p) < 0)
    return -1;
  if (p->i >= p->len)
    return 0;
  if (!at_newline (p))
    return toml_fail_at (p, here (p), "expected end of line after %s, found %s", after,
                         describe_here (p).text);
  toml_skip_newline (p);
  return 0;
}

/* The whole document must be UTF-8 (no overlong forms, surrogates or code points past
 * U+10FFFF), and carriage returns may only end lines as part of CRLF. */
static int
check_encoding (toml_parser *p)
{
  const unsigned char *s = (const unsigned char *) p->text;
  size_t n = p->len;
  for (size_t i = p->start; i < n;)
    {
      unsigned c = s[i];
      if (c < 0x80)
        {
          if (c == '\r' && (i + 1 >= n || s[i + 1] != '\n'))
            return toml_fail_at (p, pos_slow (p, i),
                                 "carriage return (U+000D) not followed by a line feed");
          i++;
          continue;
        }
      size_t need;
      uint32_t cp, min;
      if (c >= 0xC2 && c <= 0xDF)
        need = 1, cp = c & 0x1F, min = 0x80;
      else if (c >= 0xE0 && c <= 0xEF)
        need = 2, cp = c & 0x0F, min = 0x800;
      else if (c >= 0xF0 && c <= 0xF4)
        need = 3, cp = c & 0x07, min = 0x10000;
      else
        return toml_fail_at (p, pos_slow (p, i), "invalid UTF-8: unexpected byte 0x%02X", c);
      for (size_t k = 1; k <= need; k++)
        {
          if (i + k >= n || is_char_start (s[i + k]))
            return toml_fail_at (p, pos_slow (p, i), "invalid UTF-8: incomplete sequence");
          cp = (cp << 6) | (s[i + k] & 0x3F);
        }
      if (cp < min || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
        return toml_fail_at (p, pos_slow (p, i), "invalid UTF-8: %s",
                             cp < min ? "overlong encoding" : "not a Unicode scalar value");
      i += need + 1;
    }
  return 0;
}

/* ---- keys ------------------------------------------------------------------------------- */

static void
key_path_clear (key_path *key)
{
  for (size_t k = 0; k < key->len; k++)
    free (key->parts[k].name);
  free (key->parts);
  key->parts = NULL;
  key->len = key->capacity = 0;
}
#define cleanup_key_path __attribute__ ((cleanup (key_path_clear)))

static int
parse_simple_key (toml_parser *p, key_part *part)
{
  part->pos = here (p);
  int c = peek (p);
  kp_buf *out = &p->scratch;
  kp_buf_truncate (out, 0);
  if (is_bare_key_char (c))
    {
      size_t from = p->i;
      while (is_bare_key_char (peek (p)))
        p->i++;
      kp_buf_append (out, p->text + from, p->i - from);
    }
  else if (c == '"' || c == '\'')
    {
      if (peek_at (p, 1) == c && peek_at (p, 2) == c)
        return toml_fail_at (p, part->pos, "a multi-line string cannot be used as a key");
      if ((c == '"' ? toml_parse_basic_string (p, out) : toml_parse_literal_string (p, out)) < 0)
        return -1;
      if (memchr (kp_buf_str (out), '\0', out->len))
        return toml_fail_at (p, part->pos, "keys cannot contain the NUL character (U+0000)");
    }
  else if (c == '=')
    return toml_fail_at (p, part->pos, "expected a key before '='");
  else if (c >= 0x80 || (c > 0x20 && c < 0x7F && c != '[' && c != ']' && c != '{' && c != '}'))
    return toml_fail_at (
        p, part->pos,
        "expected a key, found %s (bare keys may contain only A-Z, a-z, 0-9, '_' and '-'; quote other keys)",
        describe_here (p).text);
  else
    return toml_fail_at (p, part->pos, "expected a key, found %s", describe_here (p).text);
  part->len = out->len;
  part->name = xmemdup (kp_buf_str (out), out->len + 1);
  return 0;
}

/* A simple or dotted key; stops before whatever follows the last part. */
static int
parse_key (toml_parser *p, key_path *key)
{
  for (;;)
    {
      if (key->len == key->capacity)
        {
          key->capacity = key->capacity ? key->capacity * 2 : 4;
          key->parts = xreallocarray (key->parts, key->capacity, sizeof *key->parts);
        }
      key_part *part = &key->parts[key->len];
      *part = (key_part){ NULL, 0, { 0, 0 } };
      if (parse_simple_key (p, part) < 0)
        return -1;
      key->len++;
      if (key->len > TOML_MAX_DEPTH)
        return toml_fail_at (p, part->pos, "key has more than %d parts", TOML_MAX_DEPTH);
      size_t save = p->i;
      skip_ws (p);
      if (peek (p) != '.')
        {
          p->i = save;
          return 0;
        }
      p->i++;
      skip_ws (p);
    }
}

/* ---- tables and arrays -------------------------------------------------------------------- */

static toml_node *parse_value (toml_parser *p, unsigned depth);
static int parse_keyval (toml_parser *p, toml_node *table, unsigned section);

static const char *
kind_phrase (const toml_node *n)
{
  switch (n->kind)
    {
    case NODE_ARRAY:
      return "an array";
    case NODE_ARRAY_OF_TABLES:
      return "an array of tables";
    case NODE_TABLE_INLINE:
      return "an inline table";
    case NODE_TABLE_IMPLICIT:
    case NODE_TABLE_HEADER:
    case NODE_TABLE_DOTTED:
      return "a table";
    default:
      break;
    }
  switch (n->value.type)
    {
    case KP_TOML_STRING:
      return "a string";
    case KP_TOML_INTEGER:
      return "an integer";
    case KP_TOML_FLOAT:
      return "a float";
    case KP_TOML_BOOL:
      return "a boolean";
    default:
      return "a date/time";
    }
}

static int
check_depth (toml_parser *p, unsigned depth, kp_toml_pos pos)
{
  if (depth > TOML_MAX_DEPTH)
    return toml_fail_at (p, pos, "tables and arrays are nested more than %d levels deep",
                         TOML_MAX_DEPTH);
  return 0;
}

/* [ value, value, ... ] with newlines and comments anywhere between. */
static toml_node *
parse_array (toml_parser *p, unsigned depth)
{
  kp_toml_pos open = here (p);
  cleanup_node toml_node *array = toml_node_new (KP_TOML_ARRAY, NODE_ARRAY, open, depth);
  p->i++;
  for (;;)
    {
      if (skip_ws_comments_newlines (p) < 0)
        return NULL;
      int c = peek (p);
      if (c == ']')
        break;
      if (c == ',')
        {
          toml_fail_at (p, here (p), "expected a value or ']', found ','");
          return NULL;
        }
      if (c < 0)
        {
          toml_fail_at (
              p, here (p),
              "expected a value or ']' to close the array opened at line %d, column %d, found end of file",
              open.line, open.column);
          return NULL;
        }
      toml_node *item = parse_value (p, depth + 1);
      if (item == NULL)
        return NULL;
      array_append (array, item);
      if (skip_ws_comments_newlines (p) < 0)
        return NULL;
      c = peek (p);
      if (c == ',')
        {
          p->i++;
          continue;
        }
      if (c == ']')
        break;
      if (c < 0)
        toml_fail_at (
            p, here (p),
            "expected ',' or ']' to close the array opened at line %d, column %d, found end of file",
            open.line, open.column);
      else
        toml_fail_at (p, here (p), "expected ',' or ']' after an array element, found %s",
                      describe_here (p).text);
      return NULL;
    }
  p->i++;
  return kp_steal_pointer (&array);
}

/* { key = value, ... } on one line, without a trailing comma. */
static toml_node *
parse_inline_table (toml_parser *p, unsigned depth)
{
  kp_toml_pos open = here (p);
  cleanup_node toml_node *table = toml_node_new (KP_TOML_TABLE, NODE_TABLE_INLINE, open, depth);
  table->section = ++p->sections;
  p->i++;
  skip_ws (p);
  if (peek (p) == '}')
    {
      p->i++;
      return kp_steal_pointer (&table);
    }
  for (;;)
    {
      skip_ws (p);
      if (at_newline (p))
        {
          toml_fail_at (p, here (p),
                        "expected a key, found end of line (inline tables must be on one line)");
          return NULL;
        }
      if (parse_keyval (p, table, table->section) < 0)
        return NULL;
      skip_ws (p);
      int c = peek (p);
      if (c == '}')
        break;
      if (c == ',')
        {
          p->i++;
          skip_ws (p);
          if (peek (p) == '}')
            {
              toml_fail_at (p, here (p), "a trailing comma is not allowed in an inline table");
              return NULL;
            }
          continue;
        }
      if (c == '\n' || c == '\r')
        toml_fail_at (p, here (p),
                      "expected ',' or '}', found end of line (inline tables must be on one line)");
      else if (c < 0)
        toml_fail_at (
            p, here (p),
            "expected ',' or '}' to close the inline table opened at line %d, column %d, found end of file",
            open.line, open.column);
      else
        toml_fail_at (p, here (p), "expected ',' or '}' in inline table, found %s",
                      describe_here (p).text);
      return NULL;
    }
  p->i++;
  return kp_steal_pointer (&table);
}

static toml_node *
parse_value (toml_parser *p, unsigned depth)
{
  if (check_depth (p, depth, here (p)) < 0)
    return NULL;
  if (peek (p) == '[')
    return parse_array (p, depth);
  if (peek (p) == '{')
    return parse_inline_table (p, depth);
  return toml_parse_scalar (p, depth);
}

/* The table a dotted key's intermediate part names, created if absent. Dotted keys may
 * only extend tables that dotted keys created in the same section; everything else
 * (headers' tables, inline tables, arrays, values) is closed to them. */
static toml_node *
dotted_child (toml_parser *p, toml_node *table, unsigned section, key_path *key, size_t k)
{
  key_part *part = &key->parts[k];
  kp_toml_keyval *kv = table_find (p, table, part->name, part->len);
  if (kv == NULL)
    {
      if (check_depth (p, table->depth + 1u, part->pos) < 0)
        return NULL;
      toml_node *child = toml_node_new (KP_TOML_TABLE, NODE_TABLE_DOTTED, key->parts[k + 1].pos,
                                        table->depth + 1u);
      child->section = section;
      table_append (p, table, xmemdup (part->name, part->len + 1), part->len, part->pos, child);
      return child;
    }
  toml_node *child = node_of (kv->value);
  if (child->kind == NODE_TABLE_DOTTED && child->section == section)
    return child;
  kp_cleanup_free char *path = path_describe (key, k + 1);
  switch (child->kind)
    {
    case NODE_TABLE_DOTTED:
      toml_fail_at (
          p, part->pos,
          "cannot add to table \"%s\" with dotted keys here: it was created by dotted keys at line %d, under another table header",
          path, kv->key_pos.line);
      break;
    case NODE_TABLE_HEADER:
      toml_fail_at (
          p, part->pos,
          "cannot add to table \"%s\" with dotted keys: it is defined by a table header at line %d",
          path, kv->key_pos.line);
      break;
    case NODE_TABLE_IMPLICIT:
      toml_fail_at (
          p, part->pos,
          "cannot add to table \"%s\" with dotted keys: it was created by the table header at line %d",
          path, kv->key_pos.line);
      break;
    case NODE_TABLE_INLINE:
      toml_fail_at (
          p, part->pos,
          "cannot add to inline table \"%s\" (defined at line %d): inline tables are complete as written",
          path, kv->key_pos.line);
      break;
    default:
      toml_fail_at (p, part->pos,
                    "cannot use \"%s\" as a table: it is already %s (defined at line %d)", path,
                    kind_phrase (child), kv->key_pos.line);
      break;
    }
  return NULL;
}

/* key = value, into `table`; `section` decides which dotted tables may be extended. */
static int
parse_keyval (toml_parser *p, toml_node *table, unsigned section)
{
  cleanup_key_path key_path key = { NULL, 0, 0 };
  if (parse_key (p, &key) < 0)
    return -1;
  skip_ws (p);
  if (peek (p) != '=')
    {
      kp_cleanup_free char *path = path_describe (&key, key.len);
      return toml_fail_at (p, here (p), "expected '=' after key \"%s\", found %s", path,
                           describe_here (p).text);
    }
  p->i++;
  skip_ws (p);
  toml_node *target = table;
  for (size_t k = 0; k + 1 < key.len; k++)
    {
      target = dotted_child (p, target, section, &key, k);
      if (target == NULL)
        return -1;
    }
  key_part *last = &key.parts[key.len - 1];
  kp_toml_keyval *previous = table_find (p, target, last->name, last->len);
  if (previous)
    {
      kp_cleanup_free char *path = path_describe (&key, key.len);
      return toml_fail_at (p, last->pos, "duplicate key \"%s\" (first defined at line %d)", path,
                           previous->key_pos.line);
    }
  if (p->i >= p->len || at_newline (p) || peek (p) == '#')
    {
      kp_cleanup_free char *path = path_describe (&key, key.len);
      return toml_fail_at (p, here (p), "expected a value after \"%s =\", found %s", path,
                           describe_here (p).text);
    }
  toml_node *value = parse_value (p, target->depth + 1u);
  if (value == NULL)
    return -1;
  table_append (p, target, xmemdup (last->name, last->len + 1), last->len, last->pos, value);
  return 0;
}

/* [a.b.c] or [[a.b.c]]: find or create the table and make it the current section. */
static int
parse_header (toml_parser *p)
{
  kp_toml_pos pos = here (p);
  bool array = peek_at (p, 1) == '[';
  p->i += array ? 2 : 1;
  skip_ws (p);
  cleanup_key_path key_path key = { NULL, 0, 0 };
  if (parse_key (p, &key) < 0)
    return -1;
  skip_ws (p);
  if (peek (p) != ']' || (array && peek_at (p, 1) != ']'))
    {
      if (peek (p) == ']')
        p->i++;
      return toml_fail_at (p, here (p), "expected '%s' to close the table header, found %s",
                           array ? "]]" : "]", describe_here (p).text);
    }
  p->i += array ? 2 : 1;
  if (expect_end_of_line (p, "table header") < 0)
    return -1;

  /* Every part but the last names a table to walk through: existing tables of any
   * origin except inline ones, the last element of an array of tables, or a table
   * created here as implicit (a later header may still define it). */
  toml_node *table = p->root;
  for (size_t k = 0; k + 1 < key.len; k++)
    {
      key_part *part = &key.parts[k];
      kp_toml_keyval *kv = table_find (p, table, part->name, part->len);
      if (kv == NULL)
        {
          if (check_depth (p, table->depth + 1u, part->pos) < 0)
            return -1;
          toml_node *child
              = toml_node_new (KP_TOML_TABLE, NODE_TABLE_IMPLICIT, pos, table->depth + 1u);
          table_append (p, table, xmemdup (part->name, part->len + 1), part->len, part->pos, child);
          table = child;
          continue;
        }
      toml_node *child = node_of (kv->value);
      if (child->kind == NODE_ARRAY_OF_TABLES)
        table = node_of (child->value.u.array.items[child->value.u.array.len - 1]);
      else if (child->kind == NODE_TABLE_IMPLICIT || child->kind == NODE_TABLE_HEADER
               || child->kind == NODE_TABLE_DOTTED)
        table = child;
      else
        {
          kp_cleanup_free char *path = path_describe (&key, k + 1);
          if (child->kind == NODE_TABLE_INLINE)
            return toml_fail_at (
                p, part->pos,
                "cannot add to inline table \"%s\" (defined at line %d): inline tables are complete as written",
                path, kv->key_pos.line);
          return toml_fail_at (
              p, part->pos, "cannot use \"%s\" as a table: it is already %s (defined at line %d)",
              path, kind_phrase (child), kv->key_pos.line);
        }
    }

  key_part *last = &key.parts[key.len - 1];
  kp_toml_keyval *kv = table_find (p, table, last->name, last->len);
  toml_node *defined = NULL;
  if (kv == NULL)
    {
      if (check_depth (p, table->depth + 1u, last->pos) < 0)
        return -1;
      if (array)
        {
          toml_node *list
              = toml_node_new (KP_TOML_ARRAY, NODE_ARRAY_OF_TABLES, pos, table->depth + 1u);
          table_append (p, table, xmemdup (last->name, last->len + 1), last->len, last->pos, list);
          table = list;
        }
      else
        {
          defined = toml_node_new (KP_TOML_TABLE, NODE_TABLE_HEADER, pos, table->depth + 1u);
          table_append (p, table, xmemdup (last->name, last->len + 1), last->len, last->pos,
                        defined);
        }
    }
  else
    {
      toml_node *existing = node_of (kv->value);
      kp_cleanup_free char *path = path_describe (&key, key.len);
      if (array && existing->kind != NODE_ARRAY_OF_TABLES)
        {
          if (existing->kind == NODE_ARRAY)
            return toml_fail_at (
                p, last->pos,
                "cannot append to array \"%s\" with [[%s]]: it was written as a value at line %d",
                path, path, kv->key_pos.line);
          return toml_fail_at (p, last->pos,
                               "[[%s]] conflicts with \"%s\", already %s (defined at line %d)",
                               path, path, kind_phrase (existing), kv->key_pos.line);
        }
      if (array)
        table = existing;
      else if (existing->kind == NODE_TABLE_IMPLICIT)
        {
          /* Named before as the parent of another header: this header defines it. */
          existing->kind = NODE_TABLE_HEADER;
          existing->value.pos = pos;
          kv->key_pos = last->pos;
          defined = existing;
        }
      else if (existing->kind == NODE_TABLE_HEADER)
        return toml_fail_at (p, pos, "table [%s] is defined twice (first at line %d)", path,
                             kv->key_pos.line);
      else if (existing->kind == NODE_TABLE_DOTTED)
        return toml_fail_at (p, pos, "table [%s] was already defined with dotted keys at line %d",
                             path, kv->key_pos.line);
      else if (existing->kind == NODE_ARRAY_OF_TABLES)
        return toml_fail_at (p, pos,
                             "table [%s] conflicts with the array of tables [[%s]] at line %d",
                             path, path, kv->key_pos.line);
      else
        return toml_fail_at (p, last->pos,
                             "cannot define table [%s]: \"%s\" is already %s (defined at line %d)",
                             path, path, kind_phrase (existing), kv->key_pos.line);
    }
  if (array)
    {
      if (check_depth (p, table->depth + 1u, pos) < 0)
        return -1;
      defined = toml_node_new (KP_TOML_TABLE, NODE_TABLE_HEADER, pos, table->depth + 1u);
      array_append (table, defined);
    }
  p->current = defined;
  defined->section = ++p->sections;
  return 0;
}

static int
parse_document (toml_parser *p)
{
  for (;;)
    {
      skip_ws (p);
      int c = peek (p);
      if (c < 0)
        return 0;
      if (c == '#')
        {
          if (skip_comment (p) < 0)
            return -1;
          continue;
        }
      if (c == '\n' || c == '\r')
        {
          toml_skip_newline (p);
          continue;
        }
      if (c == '[')
        {
          if (parse_header (p) < 0)
            return -1;
          continue;
        }
      if (parse_keyval (p, p->current, p->current->section) < 0
          || expect_end_of_line (p, "value") < 0)
        return -1;
    }
}

kp_toml_value *
kp_toml_parse (const char *text, size_t len, const char *filename, kp_error **err)
{
  toml_parser p = { 0 };
  p.text = text ? text : "";
  p.len = text ? len : 0;
  p.filename = filename;
  p.err = err;
  if (p.len >= 3 && memcmp (p.text, "\xEF\xBB\xBF", 3) == 0)
    p.start = 3;
  p.i = p.line_start = p.col_index = p.start;
  p.line = p.col = 1;
  cleanup_node toml_node *root
      = toml_node_new (KP_TOML_TABLE, NODE_TABLE_HEADER, (kp_toml_pos){ 1, 1 }, 0);
  p.root = p.current = root;
  int r = check_encoding (&p);
  if (r == 0)
    r = parse_document (&p);
  free (p.index.slots);
  kp_buf_clear (&p.scratch);
  if (p.c_locale != (locale_t) 0)
    freelocale (p.c_locale);
  if (r < 0)
    return NULL;
  return &kp_steal_pointer (&root)->value;
}

kp_toml_value *
kp_toml_parse_file (const char *path, kp_error **err)
{
  struct stat st;
  if (stat (path, &st) == 0 && S_ISREG (st.st_mode) && st.st_size > TOML_MAX_FILE_SIZE)
    {
      kp_error_set (err, KP_EXIT_MANIFEST,
                    "%s: file is %lld bytes, larger than the %d MiB limit for TOML documents", path,
                    (long long) st.st_size, TOML_MAX_FILE_SIZE / (1024 * 1024));
      return NULL;
    }
  size_t len;
  kp_cleanup_free char *text = kp_file_read (path, TOML_MAX_FILE_SIZE, &len, err);
  if (text == NULL)
    return NULL;
  return kp_toml_parse (text, len, path, err);
}
