/* json.c — canonical and human JSON output. */
#include "json.h"

#include <stdlib.h>

char *
kp_json_canonical (const json_t *value)
{
  char *s = json_dumps (value, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
  if (s == NULL)
    kp_oom ();
  return s;
}

char *
kp_json_pretty (const json_t *value)
{
  char *s = json_dumps (value, JSON_INDENT (2) | JSON_SORT_KEYS | JSON_ENCODE_ANY);
  if (s == NULL)
    kp_oom ();
  char *r = xasprintf ("%s\n", s);
  free (s);
  return r;
}

json_t *
kp_json_strv (char *const *v)
{
  json_t *a = json_array ();
  for (size_t i = 0; v && v[i]; i++)
    json_array_append_new (a, json_string (v[i]));
  return a;
}

void
kp_json_decrefp (json_t **j)
{
  if (*j)
    json_decref (*j);
  *j = NULL;
}
