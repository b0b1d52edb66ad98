/* toml.h — a strict TOML 1.0.0 parser producing a tree with source positions.
 *
 * The whole of TOML 1.0.0 is accepted and nothing else: every value type, dotted keys,
 * tables, inline tables, arrays of tables, and every rule against redefinition. Every key
 * and value remembers its line and column so that manifest errors can point at them.
 * Errors are kp_error with status KP_EXIT_MANIFEST, the file name given to the parser,
 * a 1-based line and a 1-based column counted in Unicode characters. */
#ifndef KP_SCHEMA_TOML_H
#define KP_SCHEMA_TOML_H

#include "base/buf.h"
#include "base/error.h"

typedef enum kp_toml_type
{
  KP_TOML_STRING,
  KP_TOML_INTEGER,
  KP_TOML_FLOAT,
  KP_TOML_BOOL,
  KP_TOML_DATETIME,       /* offset date-time: 1979-05-27T07:32:00Z */
  KP_TOML_DATETIME_LOCAL, /* 1979-05-27T07:32:00 */
  KP_TOML_DATE_LOCAL,     /* 1979-05-27 */
  KP_TOML_TIME_LOCAL,     /* 07:32:00 */
  KP_TOML_ARRAY,
  KP_TOML_TABLE,
} kp_toml_type;

typedef struct kp_toml_pos
{
  int line;   /* 1-based */
  int column; /* 1-based, Unicode characters */
} kp_toml_pos;

typedef struct kp_toml_value kp_toml_value;

typedef struct kp_toml_keyval
{
  char *key; /* UTF-8, NUL-terminated (keys cannot contain NUL: \u0000 in a key is refused) */
  kp_toml_pos key_pos;
  kp_toml_value *value;
} kp_toml_keyval;

/* Date and time parts; which fields are meaningful depends on the type. */
typedef struct kp_toml_datetime
{
  int year, month, day;
  int hour, minute, second;
  int nanosecond;     /* fractional seconds, truncated to nanoseconds */
  int frac_digits;    /* digits of fraction as written (0 = none), for faithful output */
  int offset_minutes; /* KP_TOML_DATETIME only; 0 for Z */
  bool offset_z;      /* written as 'Z' or 'z' */
} kp_toml_datetime;

struct kp_toml_value
{
  kp_toml_type type;
  kp_toml_pos pos; /* first character of the value (tables: of their header or first key) */
  union
  {
    struct
    {
      char *ptr; /* UTF-8, NUL-terminated; may contain NUL from \u0000, hence len */
      size_t len;
    } string;
    int64_t integer;
    double floating;
    bool boolean;
    kp_toml_datetime datetime;
    struct
    {
      kp_toml_value **items;
      size_t len;
    } array;
    struct
    {
      kp_toml_keyval *items; /* in document order */
      size_t len;
    } table;
  } u;
};

/* Parse a whole document. `filename` is used only in error messages (may be NULL).
 * Returns the root table or NULL with *err set. The input need not be NUL-terminated. */
kp_toml_value *kp_toml_parse (const char *text, size_t len, const char *filename, kp_error **err);
/* Read and parse a file. */
kp_toml_value *kp_toml_parse_file (const char *path, kp_error **err);

void kp_toml_free (kp_toml_value *v);
void kp_toml_freep (kp_toml_value **v);
#define kp_cleanup_toml __attribute__ ((cleanup (kp_toml_freep)))

/* Lookup in a table by key; NULL when absent or `table` is not a table. */
const kp_toml_value *kp_toml_table_get (const kp_toml_value *table, const char *key);
const kp_toml_keyval *kp_toml_table_get_keyval (const kp_toml_value *table, const char *key);

/* "string", "integer", "float", "boolean", "datetime", "datetime-local", "date-local",
 * "time-local", "array", "table" — the names used by the TOML conformance suites. */
const char *kp_toml_type_name (kp_toml_type type);

/* Format a date/time value the way TOML writes it (RFC 3339 with 'T'). */
char *kp_toml_datetime_format (const kp_toml_value *v);

/* Write a string as a TOML basic string with escapes ("..."), for emitters. */
void kp_toml_write_string (kp_buf *out, const char *s, size_t len);
/* Write a key: bare when it is [A-Za-z0-9_-]+, quoted otherwise. */
void kp_toml_write_key (kp_buf *out, const char *key);

#endif
