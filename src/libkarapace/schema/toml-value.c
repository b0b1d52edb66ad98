/* toml-value.c — reading a parsed TOML tree and writing TOML text.
 *
 * Everything here works on the public kp_toml_value tree and needs nothing from the
 * parser: lookups, type names, date formatting, and the quoting used by emitters such as
 * the manifest's normal form. What the writers produce parses back to the same value. */
#include "toml.h"

#include <string.h>

const kp_toml_keyval *
kp_toml_table_get_keyval (const kp_toml_value *table, const char *key)
{
  if (table == NULL || table->type != KP_TOML_TABLE || key == NULL)
    return NULL;
  for (size_t k = 0; k < table->u.table.len; k++)
    if (strcmp (table->u.table.items[k].key, key) == 0)
      return &table->u.table.items[k];
  return NULL;
}

const kp_toml_value *
kp_toml_table_get (const kp_toml_value *table, const char *key)
{
  const kp_toml_keyval *kv = kp_toml_table_get_keyval (table, key);
  return kv ? kv->value : NULL;
}

const char *
kp_toml_type_name (kp_toml_type type)
{
  switch (type)
    {
    case KP_TOML_STRING:
      return "string";
    case KP_TOML_INTEGER:
      return "integer";
    case KP_TOML_FLOAT:
      return "float";
    case KP_TOML_BOOL:
      return "boolean";
    case KP_TOML_DATETIME:
      return "datetime";
    case KP_TOML_DATETIME_LOCAL:
      return "datetime-local";
    case KP_TOML_DATE_LOCAL:
      return "date-local";
    case KP_TOML_TIME_LOCAL:
      return "time-local";
    case KP_TOML_ARRAY:
      return "array";
    case KP_TOML_TABLE:
      return "table";
    }
  return "unknown";
}

static void
format_time (kp_buf *out, const kp_toml_datetime *dt)
{
  kp_buf_printf (out, "%02d:%02d:%02d", dt->hour, dt->minute, dt->second);
  int digits = dt->frac_digits;
  if (digits > 9)
    digits = 9;
  if (digits > 0)
    {
      int frac = dt->nanosecond;
      for (int k = digits; k < 9; k++)
        frac /= 10;
      kp_buf_printf (out, ".%0*d", digits, frac);
    }
}

char *
kp_toml_datetime_format (const kp_toml_value *v)
{
  kp_cleanup_buf kp_buf out = KP_BUF_INIT;
  const kp_toml_datetime *dt = &v->u.datetime;
  switch (v->type)
    {
    case KP_TOML_DATETIME:
    case KP_TOML_DATETIME_LOCAL:
    case KP_TOML_DATE_LOCAL:
      kp_buf_printf (&out, "%04d-%02d-%02d", dt->year, dt->month, dt->day);
      if (v->type == KP_TOML_DATE_LOCAL)
        break;
      kp_buf_putc (&out, 'T');
      format_time (&out, dt);
      if (v->type == KP_TOML_DATETIME_LOCAL)
        break;
      if (dt->offset_z)
        kp_buf_putc (&out, 'Z');
      else
        {
          int off = dt->offset_minutes;
          kp_buf_printf (&out, "%c%02d:%02d", off < 0 ? '-' : '+', (off < 0 ? -off : off) / 60,
                         (off < 0 ? -off : off) % 60);
        }
      break;
    case KP_TOML_TIME_LOCAL:
      format_time (&out, dt);
      break;
    default:
      break;
    }
  return kp_buf_steal (&out);
}

/* Length of the valid UTF-8 sequence at s (of at most n bytes), or 0 when invalid. */
static size_t
utf8_sequence (const unsigned char *s, size_t n)
{
  size_t need;
  uint32_t cp, min;
  if (s[0] >= 0xC2 && s[0] <= 0xDF)
    need = 1, cp = s[0] & 0x1Fu, min = 0x80;
  else if (s[0] >= 0xE0 && s[0] <= 0xEF)
    need = 2, cp = s[0] & 0x0Fu, min = 0x800;
  else if (s[0] >= 0xF0 && s[0] <= 0xF4)
    need = 3, cp = s[0] & 0x07u, min = 0x10000;
  else
    return 0;
  if (need >= n)
    return 0;
  for (size_t k = 1; k <= need; k++)
    {
      if ((s[k] & 0xC0) != 0x80)
        return 0;
      cp = (cp << 6) | (s[k] & 0x3Fu);
    }
  if (cp < min || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
    return 0;
  return need + 1;
}

/* Control characters become escapes and bytes that are not UTF-8 become U+FFFD, so the
 * result is always a valid TOML basic string. */
void
kp_toml_write_string (kp_buf *out, const char *s, size_t len)
{
  const unsigned char *u = (const unsigned char *) s;
  kp_buf_putc (out, '"');
  size_t run = 0; /* start of the pending run of characters copied as they are */
  for (size_t k = 0; k < len;)
    {
      unsigned char c = u[k];
      const char *escape = NULL;
      char hex[8];
      size_t step = 1;
      if (c >= 0x80)
        {
          step = utf8_sequence (u + k, len - k);
          if (step == 0)
            {
              escape = "\\uFFFD";
              step = 1;
            }
        }
      else if (c == '"')
        escape = "\\\"";
      else if (c == '\\')
        escape = "\\\\";
      else if (c == '\b')
        escape = "\\b";
      else if (c == '\t')
        escape = "\\t";
      else if (c == '\n')
        escape = "\\n";
      else if (c == '\f')
        escape = "\\f";
      else if (c == '\r')
        escape = "\\r";
      else if (c < 0x20 || c == 0x7F)
        {
          snprintf (hex, sizeof hex, "\\u%04X", c);
          escape = hex;
        }
      if (escape)
        {
          kp_buf_append (out, s + run, k - run);
          kp_buf_puts (out, escape);
          run = k + step;
        }
      k += step;
    }
  kp_buf_append (out, s + run, len - run);
  kp_buf_putc (out, '"');
}

void
kp_toml_write_key (kp_buf *out, const char *key)
{
  size_t len = strlen (key);
  bool bare = len > 0;
  for (size_t k = 0; k < len && bare; k++)
    {
      char c = key[k];
      bare = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'
             || c == '-';
    }
  if (bare)
    kp_buf_append (out, key, len);
  else
    kp_toml_write_string (out, key, len);
}
