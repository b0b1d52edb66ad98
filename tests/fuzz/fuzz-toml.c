/* fuzz-toml.c — libFuzzer target for the TOML parser.
 *
 * Any bytes: the parser must either build a tree or report an error with a position.
 * When it builds a tree, the tree is written back as TOML — every key through
 * kp_toml_write_key, every string through kp_toml_write_string, tables as inline tables —
 * and parsed again; both trees must be equal. This checks the writers against the parser
 * and the parser's values against their own text. */
#include "base/buf.h"
#include "base/error.h"
#include "schema/toml.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static void
write_value (kp_buf *out, const kp_toml_value *v)
{
  switch (v->type)
    {
    case KP_TOML_STRING:
      kp_toml_write_string (out, v->u.string.ptr, v->u.string.len);
      break;
    case KP_TOML_INTEGER:
      kp_buf_printf (out, "%lld", (long long) v->u.integer);
      break;
    case KP_TOML_FLOAT:
      if (isnan (v->u.floating))
        kp_buf_puts (out, "nan");
      else if (isinf (v->u.floating))
        kp_buf_puts (out, v->u.floating < 0 ? "-inf" : "inf");
      else
        {
          char text[64];
          snprintf (text, sizeof text, "%.17g", v->u.floating);
          kp_buf_puts (out, text);
          if (strpbrk (text, ".e") == NULL)
            kp_buf_puts (out, ".0");
        }
      break;
    case KP_TOML_BOOL:
      kp_buf_puts (out, v->u.boolean ? "true" : "false");
      break;
    case KP_TOML_DATETIME:
    case KP_TOML_DATETIME_LOCAL:
    case KP_TOML_DATE_LOCAL:
    case KP_TOML_TIME_LOCAL:
      {
        char *text = kp_toml_datetime_format (v);
        kp_buf_puts (out, text);
        free (text);
        break;
      }
    case KP_TOML_ARRAY:
      kp_buf_putc (out, '[');
      for (size_t k = 0; k < v->u.array.len; k++)
        {
          write_value (out, v->u.array.items[k]);
          kp_buf_puts (out, ",\n");
        }
      kp_buf_putc (out, ']');
      break;
    case KP_TOML_TABLE:
      kp_buf_putc (out, '{');
      for (size_t k = 0; k < v->u.table.len; k++)
        {
          kp_buf_puts (out, k ? ", " : " ");
          kp_toml_write_key (out, v->u.table.items[k].key);
          kp_buf_puts (out, " = ");
          write_value (out, v->u.table.items[k].value);
        }
      kp_buf_puts (out, " }");
      break;
    }
}

static bool
same_value (const kp_toml_value *a, const kp_toml_value *b)
{
  if (a->type != b->type)
    return false;
  switch (a->type)
    {
    case KP_TOML_STRING:
      return a->u.string.len == b->u.string.len
             && memcmp (a->u.string.ptr, b->u.string.ptr, a->u.string.len) == 0;
    case KP_TOML_INTEGER:
      return a->u.integer == b->u.integer;
    case KP_TOML_FLOAT:
      if (isnan (a->u.floating))
        return isnan (b->u.floating);
      return memcmp (&a->u.floating, &b->u.floating, sizeof a->u.floating) == 0;
    case KP_TOML_BOOL:
      return a->u.boolean == b->u.boolean;
    case KP_TOML_DATETIME:
    case KP_TOML_DATETIME_LOCAL:
    case KP_TOML_DATE_LOCAL:
    case KP_TOML_TIME_LOCAL:
      {
        const kp_toml_datetime *x = &a->u.datetime, *y = &b->u.datetime;
        return x->year == y->year && x->month == y->month && x->day == y->day
               && x->hour == y->hour && x->minute == y->minute && x->second == y->second
               && x->nanosecond == y->nanosecond && x->frac_digits == y->frac_digits
               && x->offset_minutes == y->offset_minutes && x->offset_z == y->offset_z;
      }
    case KP_TOML_ARRAY:
      if (a->u.array.len != b->u.array.len)
        return false;
      for (size_t k = 0; k < a->u.array.len; k++)
        if (!same_value (a->u.array.items[k], b->u.array.items[k]))
          return false;
      return true;
    case KP_TOML_TABLE:
      if (a->u.table.len != b->u.table.len)
        return false;
      for (size_t k = 0; k < a->u.table.len; k++)
        if (strcmp (a->u.table.items[k].key, b->u.table.items[k].key) != 0
            || !same_value (a->u.table.items[k].value, b->u.table.items[k].value))
          return false;
      return true;
    }
  return false;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  kp_cleanup_error kp_error *err = NULL;
  kp_cleanup_toml kp_toml_value *root = kp_toml_parse ((const char *) data, size, "fuzz.toml", &err);
  if (root == NULL)
    {
      if (err == NULL || err->line < 1 || err->column < 1 || err->message[0] == '\0')
        abort ();
      return 0;
    }
  if (err != NULL || root->type != KP_TOML_TABLE)
    abort ();

  /* The root's pairs as lines, everything below as inline values. */
  kp_cleanup_buf kp_buf text = KP_BUF_INIT;
  for (size_t k = 0; k < root->u.table.len; k++)
    {
      kp_toml_write_key (&text, root->u.table.items[k].key);
      kp_buf_puts (&text, " = ");
      write_value (&text, root->u.table.items[k].value);
      kp_buf_putc (&text, '\n');
    }
  kp_cleanup_error kp_error *err2 = NULL;
  kp_cleanup_toml kp_toml_value *again = kp_toml_parse (text.data, text.len, "again.toml", &err2);
  if (again == NULL)
    {
      fprintf (stderr, "rewritten document refused: %d:%d: %s\n%s\n", err2->line, err2->column,
               err2->message, kp_buf_str (&text));
      abort ();
    }
  if (!same_value (root, again))
    {
      fprintf (stderr, "rewritten document differs:\n%s\n", kp_buf_str (&text));
      abort ();
    }
  return 0;
}
