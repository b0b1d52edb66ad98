/* toml-decoder.c — TOML on stdin, the conformance suites' tagged JSON on stdout.
 *
 * Every scalar becomes {"type": "...", "value": "..."} with the value as a string; tables
 * become objects and arrays become arrays. Invalid input exits 1 with
 * "<stdin>:LINE:COL: message" on stderr. This is the interface toml-test expects from a
 * decoder, and what tests/system/test_toml_conformance.py drives. */
#include "base/error.h"
#include "base/fs.h"
#include "schema/toml.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The shortest decimal text that reads back as the same double. */
static json_t *
float_text (double d)
{
  if (isnan (d))
    return json_string ("nan");
  if (isinf (d))
    return json_string (d < 0 ? "-inf" : "inf");
  char text[64];
  for (int precision = 1; precision <= 17; precision++)
    {
      snprintf (text, sizeof text, "%.*g", precision, d);
      if (strtod (text, NULL) == d)
        break;
    }
  return json_string (text);
}

static json_t *
tagged (const char *type, json_t *value)
{
  return json_pack ("{s:s, s:o}", "type", type, "value", value);
}

static json_t *
to_json (const kp_toml_value *v)
{
  switch (v->type)
    {
    case KP_TOML_STRING:
      return tagged ("string", json_stringn (v->u.string.ptr, v->u.string.len));
    case KP_TOML_INTEGER:
      {
        char text[32];
        snprintf (text, sizeof text, "%lld", (long long) v->u.integer);
        return tagged ("integer", json_string (text));
      }
    case KP_TOML_FLOAT:
      return tagged ("float", float_text (v->u.floating));
    case KP_TOML_BOOL:
      return tagged ("bool", json_string (v->u.boolean ? "true" : "false"));
    case KP_TOML_DATETIME:
    case KP_TOML_DATETIME_LOCAL:
    case KP_TOML_DATE_LOCAL:
    case KP_TOML_TIME_LOCAL:
      {
        kp_cleanup_free char *text = kp_toml_datetime_format (v);
        return tagged (kp_toml_type_name (v->type), json_string (text));
      }
    case KP_TOML_ARRAY:
      {
        json_t *array = json_array ();
        for (size_t k = 0; k < v->u.array.len; k++)
          json_array_append_new (array, to_json (v->u.array.items[k]));
        return array;
      }
    case KP_TOML_TABLE:
      {
        json_t *object = json_object ();
        for (size_t k = 0; k < v->u.table.len; k++)
          json_object_set_new (object, v->u.table.items[k].key,
                               to_json (v->u.table.items[k].value));
        return object;
      }
    }
  abort ();
}

int
main (void)
{
  kp_cleanup_error kp_error *err = NULL;
  size_t len;
  kp_cleanup_free char *text = kp_fd_read_all (STDIN_FILENO, 64 * 1024 * 1024, &len, &err);
  if (text == NULL)
    {
      fprintf (stderr, "toml-decoder: %s\n", err->message);
      return 1;
    }
  kp_cleanup_toml kp_toml_value *root = kp_toml_parse (text, len, "<stdin>", &err);
  if (root == NULL)
    {
      kp_cleanup_free char *message = kp_error_describe (err);
      fprintf (stderr, "%s\n", message);
      return 1;
    }
  json_t *json = to_json (root);
  char *out = json_dumps (json, JSON_INDENT (2));
  json_decref (json);
  if (out == NULL)
    {
      fprintf (stderr, "toml-decoder: cannot encode JSON\n");
      return 1;
    }
  puts (out);
  free (out);
  return 0;
}
