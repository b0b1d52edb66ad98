/* Unit tests for the TOML 1.0.0 parser (schema/toml.h): every value type and its edge
 * cases, source positions, the redefinition rules, error positions and messages, the
 * writers' round trip, UTF-8 validation, the nesting limit and large documents.
 *
 * Documents are parsed from a heap copy of exactly their length, never NUL-terminated, so
 * that a read past the end shows up under AddressSanitizer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "base/buf.h"
#include "base/error.h"
#include "schema/toml.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- helpers --------------------------------------------------------------------------- */

static kp_toml_value *
parse_n (const char *text, size_t len, kp_error **err)
{
  char *copy = xmalloc (len ? len : 1);
  memcpy (copy, text, len);
  kp_toml_value *v = kp_toml_parse (copy, len, "test.toml", err);
  /* The tree must not point into the input. */
  memset (copy, 'X', len);
  free (copy);
  return v;
}

static kp_toml_value *
parse_ok_n (const char *text, size_t len)
{
  kp_cleanup_error kp_error *err = NULL;
  kp_toml_value *v = parse_n (text, len, &err);
  if (v == NULL)
    fail_msg ("unexpected error %d:%d: %s\n--- document:\n%.*s", err->line, err->column,
              err->message, (int) len, text);
  assert_null (err);
  return v;
}

static kp_toml_value *
parse_ok (const char *text)
{
  return parse_ok_n (text, strlen (text));
}

/* The document must be refused at line:column (0:0: anywhere) with `needle` in the
 * message. */
static void
check_error_n (const char *text, size_t len, int line, int column, const char *needle)
{
  kp_cleanup_error kp_error *err = NULL;
  kp_cleanup_toml kp_toml_value *v = parse_n (text, len, &err);
  if (v != NULL)
    fail_msg ("accepted an invalid document:\n%.*s", (int) len, text);
  assert_non_null (err);
  assert_int_equal (err->status, KP_EXIT_MANIFEST);
  assert_string_equal (err->file, "test.toml");
  assert_true (err->line >= 1 && err->column >= 1);
  if ((line && (err->line != line || err->column != column))
      || strstr (err->message, needle) == NULL)
    fail_msg ("document:\n%.*s\nexpected %d:%d: ...%s...\n     got %d:%d: %s", (int) len, text,
              line, column, needle, err->line, err->column, err->message);
}

static void
check_error (const char *text, int line, int column, const char *needle)
{
  check_error_n (text, strlen (text), line, column, needle);
}

typedef struct bad_doc
{
  const char *text;
  int line, column;
  const char *needle;
} bad_doc;

static void
check_errors (const bad_doc *docs, size_t n)
{
  for (size_t k = 0; k < n; k++)
    check_error (docs[k].text, docs[k].line, docs[k].column, docs[k].needle);
}

/* Follow a dotted path of bare keys from a table; array elements as "name[2]" are not
 * needed: callers index arrays themselves. */
static const kp_toml_value *
get (const kp_toml_value *table, const char *path)
{
  kp_cleanup_free char *copy = xstrdup (path);
  char *save = NULL;
  const kp_toml_value *v = table;
  for (char *part = strtok_r (copy, ".", &save); part; part = strtok_r (NULL, ".", &save))
    {
      v = kp_toml_table_get (v, part);
      if (v == NULL)
        fail_msg ("no key \"%s\" in path \"%s\"", part, path);
    }
  return v;
}

static const char *
get_string (const kp_toml_value *table, const char *path)
{
  const kp_toml_value *v = get (table, path);
  assert_int_equal (v->type, KP_TOML_STRING);
  assert_int_equal (strlen (v->u.string.ptr), v->u.string.len);
  return v->u.string.ptr;
}

static int64_t
get_int (const kp_toml_value *table, const char *path)
{
  const kp_toml_value *v = get (table, path);
  assert_int_equal (v->type, KP_TOML_INTEGER);
  return v->u.integer;
}

static double
get_float (const kp_toml_value *table, const char *path)
{
  const kp_toml_value *v = get (table, path);
  assert_int_equal (v->type, KP_TOML_FLOAT);
  return v->u.floating;
}

static void
assert_pos (kp_toml_pos pos, int line, int column)
{
  if (pos.line != line || pos.column != column)
    fail_msg ("expected position %d:%d, got %d:%d", line, column, pos.line, pos.column);
}

static void
assert_datetime (const kp_toml_value *table, const char *key, kp_toml_type type,
                 const char *formatted)
{
  const kp_toml_value *v = get (table, key);
  assert_int_equal (v->type, type);
  kp_cleanup_free char *text = kp_toml_datetime_format (v);
  assert_string_equal (text, formatted);
}

/* ---- strings ----------------------------------------------------------------------------- */

static void
test_strings (void **state)
{
  kp_cleanup_toml kp_toml_value *root
      = parse_ok ("basic = \"tab\\there \\\"q\\\" back\\\\slash \\b\\f\\n\\r\"\n"
                  "uni = \"\\u00E9\\U0001F600\\u0000end\"\n"
                  "literal = 'C:\\Users\\nodejs\\'\n"
                  "ml = \"\"\"\nRoses\nViolets\"\"\"\n"
                  "fold = \"\"\"\\\n   The quick \\\n\n   fox\\  \n   \"\"\"\n"
                  "quotes = \"\"\"\"\"x\"\"\"\"\"\n"
                  "escaped = \"\"\"a\"\"\\\"b\"\"\"\n"
                  "mll = '''\nline 'one'\n''two'''''\n"
                  "crlf = \"\"\"a\r\nb\"\"\"\n"
                  "crlf_literal = '''\r\na\r\nb'''\n"
                  "tab = \"a\tb\"\n"
                  "empty = \"\"\n"
                  "empty_ml = \"\"\"\"\"\"\n"
                  "hash = \"# not a comment\" # a comment\n"
                  "unicode = \"日本語 ʎǝʞ 😀\"\n");
  assert_string_equal (get_string (root, "basic"), "tab\there \"q\" back\\slash \b\f\n\r");
  const kp_toml_value *uni = get (root, "uni");
  assert_int_equal (uni->u.string.len, 10);
  assert_memory_equal (uni->u.string.ptr, "\xC3\xA9\xF0\x9F\x98\x80\0end", 11);
  assert_string_equal (get_string (root, "literal"), "C:\\Users\\nodejs\\");
  assert_string_equal (get_string (root, "ml"), "Roses\nViolets");
  assert_string_equal (get_string (root, "fold"), "The quick fox");
  assert_string_equal (get_string (root, "quotes"), "\"\"x\"\"");
  assert_string_equal (get_string (root, "escaped"), "a\"\"\"b");
  assert_string_equal (get_string (root, "mll"), "line 'one'\n''two''");
  assert_string_equal (get_string (root, "crlf"), "a\nb");
  assert_string_equal (get_string (root, "crlf_literal"), "a\nb");
  assert_string_equal (get_string (root, "tab"), "a\tb");
  assert_string_equal (get_string (root, "empty"), "");
  assert_string_equal (get_string (root, "empty_ml"), "");
  assert_string_equal (get_string (root, "hash"), "# not a comment");
  assert_string_equal (get_string (root, "unicode"), "日本語 ʎǝʞ 😀");
}

static void
test_string_errors (void **state)
{
  static const bad_doc docs[] = {
    { "a = \"\\x41\"", 1, 6, "invalid escape sequence '\\x'" },
    { "a = \"\\e\"", 1, 6, "invalid escape sequence '\\e'" },
    { "a = \"\\ \"", 1, 6, "backslash followed by ' '" },
    { "a = \"\\uD800\"", 1, 6, "\\uD800 is not a Unicode scalar value" },
    { "a = \"\\uDFFF\"", 1, 6, "not a Unicode scalar value" },
    { "a = \"\\U00110000\"", 1, 6, "\\U00110000 is not a Unicode scalar value" },
    { "a = \"\\u12\"", 1, 6, "\\u needs 4 hexadecimal digits, found '\"'" },
    { "a = \"\\U0001F60\"", 1, 6, "\\U needs 8 hexadecimal digits" },
    { "a = \"\\u12G4\"", 1, 6, "found 'G'" },
    { "a = \"abc", 1, 9, "expected '\"' to close the string, found end of file" },
    { "a = \"abc\nb = 1", 1, 9, "found end of line" },
    { "a = 'abc\nb = 1", 1, 9, "expected \"'\" to close the literal string, found end of line" },
    { "a = \"\x01\"", 1, 6, "control character U+0001 is not allowed in a string" },
    { "a = \"\x7f\"", 1, 6, "control character U+007F" },
    { "a = \"é\x1f\"", 1, 7, "control character U+001F" },
    { "a = '\x08'", 1, 6, "control character U+0008 is not allowed in a literal string" },
    { "a = \"\"\"\x0b\"\"\"", 1, 8, "U+000B is not allowed in a multi-line string" },
    { "a = '''\x7f'''", 1, 8, "not allowed in a literal string" },
    { "a = \"\"\"abc", 1, 11, "multi-line string opened at line 1, column 5" },
    { "a = '''abc\n\n", 3, 1, "multi-line string opened at line 1, column 5" },
    { "a = \"\"\"ab\"\"\"\"\"\"", 1, 15, "too many quotes" },
    { "a = '''ab''''''", 1, 15, "too many quotes" },
    { "a = \"\"\"\\ x\"\"\"", 1, 8, "backslash followed by ' '" },
    { "a = \"\"\"\\q\"\"\"", 1, 8, "invalid escape sequence '\\q'" },
    { "a = \"a\" \"b\"", 1, 9, "expected end of line after value, found '\"'" },
    { "\"\"\"k\"\"\" = 1", 1, 1, "a multi-line string cannot be used as a key" },
    { "'''k''' = 1", 1, 1, "a multi-line string cannot be used as a key" },
    { "\"a\\u0000b\" = 1", 1, 1, "keys cannot contain the NUL character" },
    { "[\"a\\u0000\"]", 1, 2, "keys cannot contain the NUL character" },
  };
  check_errors (docs, KP_N_ELEMENTS (docs));
}

/* ---- numbers ----------------------------------------------------------------------------- */

static void
test_integers (void **state)
{
  kp_cleanup_toml kp_toml_value *root = parse_ok ("a = 42\n"
                                                  "b = +99\n"
                                                  "c = -17\n"
                                                  "d = 0\n"
                                                  "e = -0\n"
                                                  "f = +0\n"
                                                  "g = 1_000_000\n"
                                                  "h = 0xDEAD_beef\n"
                                                  "i = 0o755\n"
                                                  "j = 0b1101_0110\n"
                                                  "k = 9223372036854775807\n"
                                                  "l = -9223372036854775808\n"
                                                  "m = 0x7FFFFFFFFFFFFFFF\n"
                                                  "n = 0o0\n"
                                                  "o = 0x00ff\n"
                                                  "p = 0b0\n"
                                                  "q = 53_49_221\n");
  assert_int_equal (get_int (root, "a"), 42);
  assert_int_equal (get_int (root, "b"), 99);
  assert_int_equal (get_int (root, "c"), -17);
  assert_int_equal (get_int (root, "d"), 0);
  assert_int_equal (get_int (root, "e"), 0);
  assert_int_equal (get_int (root, "f"), 0);
  assert_int_equal (get_int (root, "g"), 1000000);
  assert_int_equal (get_int (root, "h"), 0xDEADBEEF);
  assert_int_equal (get_int (root, "i"), 0755);
  assert_int_equal (get_int (root, "j"), 0xD6);
  assert_true (get_int (root, "k") == INT64_MAX);
  assert_true (get_int (root, "l") == INT64_MIN);
  assert_true (get_int (root, "m") == INT64_MAX);
  assert_int_equal (get_int (root, "n"), 0);
  assert_int_equal (get_int (root, "o"), 255);
  assert_int_equal (get_int (root, "p"), 0);
  assert_int_equal (get_int (root, "q"), 5349221);
}

static void
test_integer_errors (void **state)
{
  static const bad_doc docs[] = {
    { "a = 9223372036854775808", 1, 5, "integer out of range" },
    { "a = -9223372036854775809", 1, 5, "integer out of range" },
    { "a = 99999999999999999999999", 1, 5, "integer out of range" },
    { "a = 0x8000000000000000", 1, 5, "integer out of range" },
    { "a = 0b1111111111111111111111111111111111111111111111111111111111111111", 1, 5,
      "integer out of range" },
    { "a = 012", 1, 5, "leading zeros are not allowed" },
    { "a = -012", 1, 6, "leading zeros are not allowed" },
    { "a = 0_1", 1, 5, "leading zeros are not allowed" },
    { "a = 00", 1, 5, "leading zeros are not allowed" },
    { "a = +0x1", 1, 5, "a hexadecimal integer cannot have a sign" },
    { "a = -0o7", 1, 5, "octal integer cannot have a sign" },
    { "a = -0b1", 1, 5, "binary integer cannot have a sign" },
    { "a = 0X1", 1, 5, "number prefixes are lowercase: '0x', not '0X'" },
    { "a = 0B1", 1, 5, "'0b', not '0B'" },
    { "a = 0x", 1, 7, "expected a digit after '0x', found end of file" },
    { "a = 0x_1", 1, 7, "expected a digit after '0x', found '_'" },
    { "a = 0x\t1", 1, 7, "expected a digit after '0x', found a tab" },
    { "a = 0o8", 1, 7, "expected a digit after '0o', found '8'" },
    { "a = 0b102", 1, 9, "unexpected '2' in binary integer" },
    { "a = 0o778", 1, 9, "unexpected '8' in octal integer" },
    { "a = 0xaafz", 1, 10, "unexpected 'z' in hexadecimal integer" },
    { "a = 0x1_", 1, 8, "'_' in hexadecimal integer must be followed by a digit" },
    { "a = 1__2", 1, 6, "'_' in number must be followed by a digit, found '_'" },
    { "a = 1_", 1, 6, "'_' in number must be followed by a digit, found end of file" },
    { "a = _1", 1, 5, "expected a value, found \"_1\"" },
    { "a = 12a", 1, 7, "unexpected 'a' in integer" },
    { "a = ++1", 1, 6, "expected a digit after '+', found '+'" },
    { "a = -", 1, 6, "expected a digit after '-', found end of file" },
    { "a = 1 2", 1, 7, "expected end of line after value, found '2'" },
    { "a = 1,", 1, 6, "expected end of line after value, found ','" },
  };
  check_errors (docs, KP_N_ELEMENTS (docs));
}

static void
test_floats (void **state)
{
  kp_cleanup_toml kp_toml_value *root = parse_ok ("a = 1.0\n"
                                                  "b = +1.5\n"
                                                  "c = -0.01\n"
                                                  "d = 5e+22\n"
                                                  "e = 1e06\n"
                                                  "f = -2E-2\n"
                                                  "g = 6.626e-34\n"
                                                  "h = 224_617.445_991_228\n"
                                                  "i = -0.0\n"
                                                  "j = +0.0\n"
                                                  "k = inf\n"
                                                  "l = +inf\n"
                                                  "m = -inf\n"
                                                  "n = nan\n"
                                                  "o = -nan\n"
                                                  "p = +nan\n"
                                                  "q = 0e0\n"
                                                  "r = 1.7976931348623157e308\n"
                                                  "s = 4.9e-324\n"
                                                  "t = 1e-400\n"
                                                  "u = 1_0.0_1e1_0\n"
                                                  "v = 3.141592653589793238462643383279\n");
  assert_true (get_float (root, "a") == 1.0);
  assert_true (get_float (root, "b") == 1.5);
  assert_true (get_float (root, "c") == -0.01);
  assert_true (get_float (root, "d") == 5e22);
  assert_true (get_float (root, "e") == 1e6);
  assert_true (get_float (root, "f") == -2e-2);
  assert_true (get_float (root, "g") == 6.626e-34);
  assert_true (get_float (root, "h") == 224617.445991228);
  assert_true (get_float (root, "i") == 0.0 && signbit (get_float (root, "i")));
  assert_true (get_float (root, "j") == 0.0 && !signbit (get_float (root, "j")));
  assert_true (isinf (get_float (root, "k")) && get_float (root, "k") > 0);
  assert_true (isinf (get_float (root, "l")) && get_float (root, "l") > 0);
  assert_true (isinf (get_float (root, "m")) && get_float (root, "m") < 0);
  assert_true (isnan (get_float (root, "n")));
  assert_true (isnan (get_float (root, "o")));
  assert_true (isnan (get_float (root, "p")));
  assert_true (get_float (root, "q") == 0.0);
  assert_true (get_float (root, "r") == 1.7976931348623157e308);
  assert_true (get_float (root, "s") == 4.9e-324);
  assert_true (get_float (root, "t") == 0.0);
  assert_true (get_float (root, "u") == 10.01e10);
  assert_true (get_float (root, "v") == 3.141592653589793);
}

static void
test_float_errors (void **state)
{
  static const bad_doc docs[] = {
    { "a = .5", 1, 5, "expected a value, found '.'" },
    { "a = +.5", 1, 6, "expected a digit after '+', found '.'" },
    { "a = 5.", 1, 7, "expected a digit after the decimal point, found end of file" },
    { "a = 5.e2", 1, 7, "expected a digit after the decimal point, found 'e'" },
    { "a = 1._2", 1, 7, "expected a digit after the decimal point, found '_'" },
    { "a = 1e", 1, 7, "expected a digit in the exponent, found end of file" },
    { "a = 1e+", 1, 8, "expected a digit in the exponent" },
    { "a = 1e_2", 1, 7, "expected a digit in the exponent, found '_'" },
    { "a = 1e2_", 1, 8, "'_' in exponent must be followed by a digit" },
    { "a = 1.2_", 1, 8, "'_' in float must be followed by a digit" },
    { "a = 1_.2", 1, 6, "'_' in number must be followed by a digit, found '.'" },
    { "a = 03.14", 1, 5, "leading zeros are not allowed" },
    { "a = -03.14", 1, 6, "leading zeros are not allowed" },
    { "a = 1.2.3", 1, 8, "unexpected '.' in float" },
    { "a = 1e2.3", 1, 8, "unexpected '.' in float" },
    { "a = 1e2e3", 1, 8, "unexpected 'e' in float" },
    { "a = 1ee2", 1, 7, "expected a digit in the exponent, found 'e'" },
    { "a = 1e400", 1, 5, "float 1e400 is out of range" },
    { "a = -1.5e999", 1, 5, "out of range" },
    { "a = infinity", 1, 5, "expected a value, found \"infinity\"" },
    { "a = +in", 1, 5, "expected a value, found \"+in\"" },
    { "a = -nanx", 1, 9, "unexpected 'x' in float" },
    { "a = nan_", 1, 5, "expected a value, found \"nan_\"" },
    { "a = Inf", 1, 5, "expected a value, found \"Inf\"" },
    { "a = NaN", 1, 5, "inf and nan are lowercase" },
  };
  check_errors (docs, KP_N_ELEMENTS (docs));
}

static void
test_booleans (void **state)
{
  kp_cleanup_toml kp_toml_value *root = parse_ok ("t = true\nf = false\na = [true,false]\n");
  assert_int_equal (get (root, "t")->type, KP_TOML_BOOL);
  assert_true (get (root, "t")->u.boolean);
  assert_false (get (root, "f")->u.boolean);
  assert_int_equal (get (root, "a")->u.array.len, 2);
  static const bad_doc docs[] = {
    { "a = True", 1, 5, "expected a value, found \"True\"" },
    { "a = FALSE", 1, 5, "found \"FALSE\"" },
    { "a = truex", 1, 5, "found \"truex\"" },
    { "a = t", 1, 5, "found \"t\"" },
    { "a = fals", 1, 5, "found \"fals\"" },
    { "a = true.x", 1, 9, "unexpected '.' in boolean" },
    { "a = true false", 1, 10, "expected end of line after value, found 'f'" },
    { "a = value", 1, 5, "strings must be quoted" },
  };
  check_errors (docs, KP_N_ELEMENTS (docs));
}

/* ---- dates and times ---------------------------------------------------------------------- */

static void
test_datetimes (void **state)
{
  kp_cleanup_toml kp_toml_value *root = parse_ok ("odt1 = 1979-05-27T07:32:00Z\n"
                                                  "odt2 = 1979-05-27T00:32:00-07:00\n"
                                                  "odt3 = 1979-05-27T00:32:00.999999+05:30\n"
                                                  "odt4 = 1979-05-27 07:32:00z\n"
                                                  "odt5 = 1979-05-27t07:32:00.1234567891Z\n"
                                                  "odt6 = 1979-05-27T07:32:00-00:00\n"
                                                  "ldt1 = 1979-05-27T07:32:00\n"
                                                  "ldt2 = 1979-05-27 00:32:00.5\n"
                                                  "ld = 1979-05-27\n"
                                                  "ld_comment = 1979-05-27 # a comment\n"
                                                  "lt1 = 07:32:00\n"
                                                  "lt2 = 00:32:00.999999\n"
                                                  "leap1 = 2000-02-29\n"
                                                  "leap2 = 2024-02-29\n"
                                                  "leapsec = 2016-12-31T23:59:60Z\n"
                                                  "zero = 0000-01-01\n"
                                                  "max = 9999-12-31T23:59:59.999999999+23:59\n"
                                                  "arr = [1979-05-27, 07:32:00]\n");
  assert_datetime (root, "odt1", KP_TOML_DATETIME, "1979-05-27T07:32:00Z");
  assert_datetime (root, "odt2", KP_TOML_DATETIME, "1979-05-27T00:32:00-07:00");
  assert_datetime (root, "odt3", KP_TOML_DATETIME, "1979-05-27T00:32:00.999999+05:30");
  assert_datetime (root, "odt4", KP_TOML_DATETIME, "1979-05-27T07:32:00Z");
  assert_datetime (root, "odt5", KP_TOML_DATETIME, "1979-05-27T07:32:00.123456789Z");
  assert_datetime (root, "odt6", KP_TOML_DATETIME, "1979-05-27T07:32:00+00:00");
  assert_datetime (root, "ldt1", KP_TOML_DATETIME_LOCAL, "1979-05-27T07:32:00");
  assert_datetime (root, "ldt2", KP_TOML_DATETIME_LOCAL, "1979-05-27T00:32:00.5");
  assert_datetime (root, "ld", KP_TOML_DATE_LOCAL, "1979-05-27");
  assert_datetime (root, "ld_comment", KP_TOML_DATE_LOCAL, "1979-05-27");
  assert_datetime (root, "lt1", KP_TOML_TIME_LOCAL, "07:32:00");
  assert_datetime (root, "lt2", KP_TOML_TIME_LOCAL, "00:32:00.999999");
  assert_datetime (root, "leap1", KP_TOML_DATE_LOCAL, "2000-02-29");
  assert_datetime (root, "leap2", KP_TOML_DATE_LOCAL, "2024-02-29");
  assert_datetime (root, "leapsec", KP_TOML_DATETIME, "2016-12-31T23:59:60Z");
  assert_datetime (root, "zero", KP_TOML_DATE_LOCAL, "0000-01-01");
  assert_datetime (root, "max", KP_TOML_DATETIME, "9999-12-31T23:59:59.999999999+23:59");

  const kp_toml_datetime *dt = &get (root, "odt2")->u.datetime;
  assert_int_equal (dt->year, 1979);
  assert_int_equal (dt->month, 5);
  assert_int_equal (dt->day, 27);
  assert_int_equal (dt->hour, 0);
  assert_int_equal (dt->minute, 32);
  assert_int_equal (dt->second, 0);
  assert_int_equal (dt->offset_minutes, -420);
  assert_false (dt->offset_z);
  assert_int_equal (dt->frac_digits, 0);
  dt = &get (root, "odt3")->u.datetime;
  assert_int_equal (dt->nanosecond, 999999000);
  assert_int_equal (dt->frac_digits, 6);
  assert_int_equal (dt->offset_minutes, 330);
  dt = &get (root, "odt4")->u.datetime;
  assert_true (dt->offset_z);
  assert_int_equal (dt->offset_minutes, 0);
  /* Extra precision is truncated, not rounded. */
  dt = &get (root, "odt5")->u.datetime;
  assert_int_equal (dt->nanosecond, 123456789);
  assert_int_equal (dt->frac_digits, 9);
  dt = &get (root, "ldt2")->u.datetime;
  assert_int_equal (dt->nanosecond, 500000000);
  assert_int_equal (dt->frac_digits, 1);
  const kp_toml_value *arr = get (root, "arr");
  assert_int_equal (arr->u.array.items[0]->type, KP_TOML_DATE_LOCAL);
  assert_int_equal (arr->u.array.items[1]->type, KP_TOML_TIME_LOCAL);
}

static void
test_datetime_errors (void **state)
{
  static const bad_doc docs[] = {
    { "a = 1979-13-01", 1, 10, "month 13 is out of range (01-12)" },
    { "a = 1979-00-01", 1, 10, "month 00 is out of range" },
    { "a = 1979-04-31", 1, 13, "day 31 is out of range: 1979-04 has 30 days" },
    { "a = 1979-01-32", 1, 13, "day 32 is out of range: 1979-01 has 31 days" },
    { "a = 1900-02-29", 1, 13, "day 29 is out of range: 1900-02 has 28 days" },
    { "a = 2023-02-29", 1, 13, "2023-02 has 28 days" },
    { "a = 2024-02-30", 1, 13, "2024-02 has 29 days" },
    { "a = 1979-05-00", 1, 13, "day 00 is out of range" },
    { "a = 1979-05-27T24:00:00", 1, 16, "hour 24 is out of range (00-23)" },
    { "a = 1979-05-27T23:60:00", 1, 19, "minute 60 is out of range (00-59)" },
    { "a = 1979-05-27T23:59:61", 1, 22, "second 61 is out of range (00-60)" },
    { "a = 25:00:00", 1, 5, "hour 25 is out of range" },
    { "a = 07:32", 1, 10, "expected ':' and seconds after the minutes, found end of file" },
    { "a = 1979-05-27 07:32", 1, 21, "seconds are required" },
    { "a = 1979-05-27T07:32:00+24:00", 1, 24, "time zone offset +24:00 is out of range" },
    { "a = 1979-05-27T07:32:00-00:60", 1, 24, "time zone offset -00:60 is out of range" },
    { "a = 1979-05-27T07:32:00+05", 1, 27,
      "expected ':' after the offset hour, found end of file" },
    { "a = 1979-05-27T07:32:00+5:00", 1, 26, "expected 2-digit offset hour, found ':'" },
    { "a = 1979-5-27", 1, 11, "expected 2-digit month, found '-'" },
    { "a = 1979-05-7", 1, 14, "expected 2-digit day, found end of file" },
    { "a = 79-05-27", 1, 5, "invalid date or time: expected a 4-digit year" },
    { "a = 7:32:00", 1, 5, "invalid date or time: expected a 2-digit hour" },
    { "a = 1979-05-27T", 1, 16, "expected 2-digit hour, found end of file" },
    { "a = 1979-05-27T7:32:00", 1, 17, "expected 2-digit hour, found ':'" },
    { "a = 1979-05-27T07:32:00.", 1, 25, "expected a digit after the decimal point" },
    { "a = 1979-05-27T07:32:00.Z", 1, 25, "found 'Z'" },
    { "a = 1979-05-27T07:32:00Zx", 1, 25, "unexpected 'x' in date-time" },
    { "a = 1979-05-27T07:32:00x", 1, 24, "unexpected 'x' in local date-time" },
    { "a = 1979-05-27x", 1, 15, "unexpected 'x' in date" },
    { "a = 1979-05-27 x", 1, 16, "expected end of line after value, found 'x'" },
    { "a = 07:32:00Z", 1, 13, "unexpected 'Z' in local time" },
    { "a = 07:32:00+01:00", 1, 13, "unexpected '+' in local time" },
    { "a = 10000-01-01", 1, 5, "invalid date or time" },
  };
  check_errors (docs, KP_N_ELEMENTS (docs));
}

/* ---- arrays and inline tables -------------------------------------------------------------- */

static void
test_arrays (void **state)
{
  kp_cleanup_toml kp_toml_value *root
      = parse_ok ("a = [ 1, 2, 3 ]\n"
                  "b = [ \"red\", 'yellow', \"\"\"green\"\"\" ]\n"
                  "c = [ [ 1, 2 ], [\"a\", \"b\"] ]\n"
                  "d = [ 0.1, 1, \"x\", true, 1979-05-27, { x = 1 }, [] ]\n"
                  "e = [\n"
                  "  1,  # one\n"
                  "  # alone\n"
                  "\n"
                  "  2, # two\n"
                  "]\n"
                  "f = []\n"
                  "g = [[]]\n"
                  "h = [\t1\t,\t2\t]\n"
                  "i = [\r\n1,\r\n]\r\n");
  const kp_toml_value *a = get (root, "a");
  assert_int_equal (a->type, KP_TOML_ARRAY);
  assert_int_equal (a->u.array.len, 3);
  assert_int_equal (a->u.array.items[2]->u.integer, 3);
  const kp_toml_value *b = get (root, "b");
  assert_string_equal (b->u.array.items[2]->u.string.ptr, "green");
  const kp_toml_value *c = get (root, "c");
  assert_string_equal (c->u.array.items[1]->u.array.items[1]->u.string.ptr, "b");
  const kp_toml_value *d = get (root, "d");
  assert_int_equal (d->u.array.len, 7);
  static const kp_toml_type types[]
      = { KP_TOML_FLOAT,      KP_TOML_INTEGER, KP_TOML_STRING, KP_TOML_BOOL,
          KP_TOML_DATE_LOCAL, KP_TOML_TABLE,   KP_TOML_ARRAY };
  for (size_t k = 0; k < KP_N_ELEMENTS (types); k++)
    assert_int_equal (d->u.array.items[k]->type, types[k]);
  assert_int_equal (kp_toml_table_get (d->u.array.items[5], "x")->u.integer, 1);
  assert_int_equal (get (root, "e")->u.array.len, 2);
  assert_int_equal (get (root, "f")->u.array.len, 0);
  assert_int_equal (get (root, "g")->u.array.items[0]->u.array.len, 0);
  assert_int_equal (get (root, "h")->u.array.len, 2);
  assert_int_equal (get (root, "i")->u.array.len, 1);

  static const bad_doc docs[] = {
    { "a = [1,,2]", 1, 8, "expected a value or ']', found ','" },
    { "a = [,]", 1, 6, "expected a value or ']', found ','" },
    { "a = [1 2]", 1, 8, "expected ',' or ']' after an array element, found '2'" },
    { "a = [1,2", 1, 9, "close the array opened at line 1, column 5, found end of file" },
    { "a = [1,\n2,\n", 3, 1, "close the array opened at line 1, column 5" },
    { "a = [\n", 2, 1, "close the array opened at line 1, column 5" },
    { "a = [ # \x01\n]", 1, 9, "control character U+0001 is not allowed in a comment" },
    { "a = [ 1 }", 1, 9, "expected ',' or ']' after an array element, found '}'" },
    { "a = [ 1 ] ]", 1, 11, "expected end of line after value, found ']'" },
    { "a = [ a ]", 1, 7, "expected a value, found \"a\"" },
  };
  check_errors (docs, KP_N_ELEMENTS (docs));
}

static void
test_inline_tables (void **state)
{
  kp_cleanup_toml kp_toml_value *root
      = parse_ok ("name = { first = \"Tom\", last = \"Preston-Werner\" }\n"
                  "point = {x=1,y=2}\n"
                  "animal = { type.name = \"pug\" }\n"
                  "empty = {}\n"
                  "empty_ws = {   }\n"
                  "nested = { a = { b = { c = 1 } }, d.e.f = [1], d.g = 2 }\n"
                  "in_array = [ { x = 1 }, { x = 2 } ]\n");
  assert_string_equal (get_string (root, "name.first"), "Tom");
  assert_string_equal (get_string (root, "name.last"), "Preston-Werner");
  const kp_toml_value *name = get (root, "name");
  assert_string_equal (name->u.table.items[0].key, "first");
  assert_string_equal (name->u.table.items[1].key, "last");
  assert_int_equal (get_int (root, "point.y"), 2);
  assert_string_equal (get_string (root, "animal.type.name"), "pug");
  assert_int_equal (get (root, "empty")->u.table.len, 0);
  assert_int_equal (get (root, "empty_ws")->u.table.len, 0);
  assert_int_equal (get_int (root, "nested.a.b.c"), 1);
  assert_int_equal (get_int (root, "nested.d.g"), 2);
  assert_int_equal (get (root, "nested.d.e.f")->u.array.len, 1);
  assert_int_equal (get (root, "in_array")->u.array.items[1]->u.table.items[0].value->u.integer, 2);

  static const bad_doc docs[] = {
    { "a = { b = 1, }", 1, 14, "a trailing comma is not allowed in an inline table" },
    { "a = { b = 1\n}", 1, 12,
      "expected ',' or '}', found end of line (inline tables must be on one line)" },
    { "a = {\nb = 1}", 1, 6,
      "expected a key, found end of line (inline tables must be on one line)" },
    { "a = { b = 1,\nc = 2 }", 1, 13, "expected a key, found end of line" },
    { "a = { b = 1, b = 2 }", 1, 14, "duplicate key \"b\" (first defined at line 1)" },
    { "a = { b.c = 1, b.c = 2 }", 1, 18, "duplicate key \"b.c\"" },
    { "a = { b = 1 c = 2 }", 1, 13, "expected ',' or '}' in inline table, found 'c'" },
    { "a = { b = 1 ", 1, 13,
      "close the inline table opened at line 1, column 5, found end of file" },
    { "a = {,}", 1, 6, "expected a key, found ','" },
    { "a = { b = 1,, c = 2 }", 1, 13, "expected a key, found ','" },
    { "a = { b }", 1, 9, "expected '=' after key \"b\", found '}'" },
    { "a = { b = 1 # c }", 1, 13, "expected ',' or '}' in inline table, found '#'" },
    { "a = { [b] = 1 }", 1, 7, "expected a key, found '['" },
    /* Inline tables are complete as written. */
    { "a = { b = 1 }\na.c = 2", 2, 1, "cannot add to inline table \"a\" (defined at line 1)" },
    { "a = {}\n[a]", 2, 2,
      "cannot define table [a]: \"a\" is already an inline table (defined at line 1)" },
    { "a = {}\n[a.b]", 2, 2, "cannot add to inline table \"a\" (defined at line 1)" },
    { "a = {}\n[[a]]", 2, 3,
      "[[a]] conflicts with \"a\", already an inline table (defined at line 1)" },
    { "a = { b = {} }\n[a.b]", 2, 2, "cannot add to inline table \"a\"" },
    { "a = { b = { c = 1 }, b.d = 2 }", 1, 22, "cannot add to inline table \"b\"" },
    { "a = { b.c = 1, b = 2 }", 1, 16, "duplicate key \"b\"" },
    { "a = { b = [{}], b.c = 1 }", 1, 17, "cannot use \"b\" as a table: it is already an array" },
    { "[a.b]\nc = { d = 1 }\n[a.b.c.e]", 3, 6, "cannot add to inline table \"a.b.c\"" },
    /* And cannot extend tables that exist. */
    { "a.b = 0\na = {}", 2, 1, "duplicate key \"a\" (first defined at line 1)" },
    { "[product]\ntype.name = \"Nail\"\ntype = { edible = false }", 3, 1,
      "duplicate key \"type\"" },
  };
  check_errors (docs, KP_N_ELEMENTS (docs));
}

/* ---- tables -------------------------------------------------------------------------------- */

static void
test_tables (void **state)
{
  kp_cleanup_toml kp_toml_value *root = parse_ok ("top = 1\n"
                                                  "[server]\n"
                                                  "host = \"h\"\n"
                                                  "[server.tls]\n"
                                                  "cert = \"c\"\n"
                                                  "[[peer]]\n"
                                                  "name = \"a\"\n"
                                                  "[[peer]]\n"
                                                  "name = \"b\"\n"
                                                  "[peer.meta]\n"
                                                  "x = 1\n"
                                                  "[[peer.sub]]\n"
                                                  "[[peer.sub]]\n"
                                                  "[x.y.z.w]\n"
                                                  "[x]\n"
                                                  "k = 1\n"
                                                  "[fruit]\n"
                                                  "apple.color = \"red\"\n"
                                                  "apple.taste.sweet = true\n"
                                                  "[fruit.apple.texture]\n"
                                                  "smooth = true\n"
                                                  "[[fruit.apple.seeds]]\n"
                                                  "size = 2\n"
                                                  "[ spaced . \"quoted.key\" . 'lit' ]\n"
                                                  "[\"\"]\n"
                                                  "[a.b.c]\n"
                                                  "[a]\n"
                                                  "d.e = 1\n"
                                                  "[[t.u]]\n"
                                                  "[t]\n"
                                                  "v = 2\n");
  static const char *const order[]
      = { "top", "server", "peer", "x", "fruit", "spaced", "", "a", "t" };
  assert_int_equal (root->u.table.len, KP_N_ELEMENTS (order));
  for (size_t k = 0; k < KP_N_ELEMENTS (order); k++)
    assert_string_equal (root->u.table.items[k].key, order[k]);
  assert_string_equal (get_string (root, "server.tls.cert"), "c");
  const kp_toml_value *peer = get (root, "peer");
  assert_int_equal (peer->type, KP_TOML_ARRAY);
  assert_int_equal (peer->u.array.len, 2);
  assert_string_equal (get_string (peer->u.array.items[0], "name"), "a");
  assert_null (kp_toml_table_get (peer->u.array.items[0], "meta"));
  assert_int_equal (get_int (peer->u.array.items[1], "meta.x"), 1);
  assert_int_equal (get (peer->u.array.items[1], "sub")->u.array.len, 2);
  assert_int_equal (get_int (root, "x.k"), 1);
  assert_int_equal (get (root, "x.y.z.w")->type, KP_TOML_TABLE);
  assert_string_equal (root->u.table.items[3].value->u.table.items[0].key, "y");
  assert_string_equal (get_string (root, "fruit.apple.color"), "red");
  assert_true (get (root, "fruit.apple.taste.sweet")->u.boolean);
  assert_true (get (root, "fruit.apple.texture.smooth")->u.boolean);
  assert_int_equal (get_int (get (root, "fruit.apple.seeds")->u.array.items[0], "size"), 2);
  const kp_toml_value *spaced = get (root, "spaced");
  assert_non_null (kp_toml_table_get (kp_toml_table_get (spaced, "quoted.key"), "lit"));
  assert_non_null (kp_toml_table_get (root, ""));
  assert_int_equal (get_int (root, "a.d.e"), 1);
  assert_non_null (get (root, "a.b.c"));
  assert_int_equal (get_int (root, "t.v"), 2);
  assert_int_equal (get (root, "t.u")->u.array.len, 1);
}

static void
test_redefinitions (void **state)
{
  static const bad_doc docs[] = {
    { "a = 1\na = 2", 2, 1, "duplicate key \"a\" (first defined at line 1)" },
    { "spelling = \"a\"\n\"spelling\" = \"b\"", 2, 1, "duplicate key \"spelling\"" },
    { "'k' = 1\n\"k\" = 2", 2, 1, "duplicate key \"k\"" },
    { "\n\n[s]\ngpu = true\n\ngpu = false", 6, 1,
      "duplicate key \"gpu\" (first defined at line 4)" },
    { "\"a.b\" = 1\n'a.b' = 2", 2, 1, "duplicate key \"\"a.b\"\"" },
    { "a.b.c = 1\na.b = 2", 2, 3, "duplicate key \"a.b\" (first defined at line 1)" },
    { "a = 1\na.b = 2", 2, 1,
      "cannot use \"a\" as a table: it is already an integer (defined at line 1)" },
    { "fruit.apple = 1\nfruit.apple.smooth = true", 2, 7,
      "cannot use \"fruit.apple\" as a table: it is already an integer" },
    { "a = [1]\na.b = 2", 2, 1, "it is already an array" },
    { "[fruit]\napple = \"red\"\n[fruit]", 3, 1,
      "table [fruit] is defined twice (first at line 1)" },
    { "[fruit]\napple = \"red\"\n[fruit.apple]", 3, 8,
      "cannot define table [fruit.apple]: \"fruit.apple\" is already a string (defined at line 2)" },
    { "[fruit]\napple.color = \"red\"\n[fruit.apple]", 3, 1,
      "table [fruit.apple] was already defined with dotted keys at line 2" },
    { "[fruit]\napple.taste.sweet = true\n[fruit.apple.taste]", 3, 1,
      "table [fruit.apple.taste] was already defined with dotted keys" },
    { "a.b = 1\n[a]", 2, 1, "table [a] was already defined with dotted keys at line 1" },
    { "[product]\ntype = { name = \"Nail\" }\ntype.edible = false", 3, 1,
      "cannot add to inline table \"type\"" },
    { "[fruit.physical]\ncolor = \"red\"\n[[fruit]]", 3, 3,
      "[[fruit]] conflicts with \"fruit\", already a table (defined at line 1)" },
    { "fruits = []\n[[fruits]]", 2, 3,
      "cannot append to array \"fruits\" with [[fruits]]: it was written as a value at line 1" },
    { "[[fruits]]\n[[fruits.varieties]]\n[fruits.varieties]", 3, 1,
      "table [fruits.varieties] conflicts with the array of tables [[fruits.varieties]] at line 2" },
    { "[[fruits]]\n[fruits.physical]\n[[fruits.physical]]", 3, 10,
      "[[fruits.physical]] conflicts with \"fruits.physical\", already a table (defined at line 2)" },
    { "[a.b.c]\nz = 9\n[a]\nb.c.t = 1", 4, 1,
      "cannot add to table \"b\" with dotted keys: it was created by the table header at line 1" },
    { "[a.b.c.d]\n[a]\nb.c.d.k.t = 1", 3, 1, "cannot add to table \"b\" with dotted keys" },
    { "[a.b]\n[a]\nb.x = 1", 3, 1,
      "cannot add to table \"b\" with dotted keys: it is defined by a table header at line 1" },
    { "[[a.b]]\n[a]\nb.y = 2", 3, 1,
      "cannot use \"b\" as a table: it is already an array of tables" },
    { "[[a.b]]\n[a]\nb = 2", 3, 1, "duplicate key \"b\"" },
    { "a = [{ b = 1 }]\n[a.c]", 2, 2,
      "cannot use \"a\" as a table: it is already an array (defined at line 1)" },
    { "a = 1\n[a.b]", 2, 2, "cannot use \"a\" as a table: it is already an integer" },
    { "a = 1\n[a]", 2, 2, "cannot define table [a]: \"a\" is already an integer" },
    { "a = 1\n[[a]]", 2, 3, "[[a]] conflicts with \"a\", already an integer" },
    { "[a]\n[a.b]\n[a.b]", 3, 1, "table [a.b] is defined twice (first at line 2)" },
    { "[a.b]\n[a]\n[a]", 3, 1, "table [a] is defined twice (first at line 2)" },
    { "[[a]]\n[a]", 2, 1, "table [a] conflicts with the array of tables [[a]] at line 1" },
    { "[a]\n[[a]]", 2, 3, "[[a]] conflicts with \"a\", already a table (defined at line 1)" },
    { "[a]\nb = 1\n[a.b.c]", 3, 4,
      "cannot use \"a.b\" as a table: it is already an integer (defined at line 2)" },
    { "[a]\nb = {}\n[a.b]", 3, 4, "cannot define table [a.b]" },
    { "[[a]]\nb = [1]\n[[a.b]]", 3, 5, "cannot append to array \"a.b\"" },
    { "a = 1.5\na.b = 1", 2, 1, "it is already a float (defined at line 1)" },
    { "a = true\n[a]", 2, 2, "\"a\" is already a boolean" },
    { "a = 1979-05-27\n[[a]]", 2, 3, "already a date/time" },
    { "a = 'x'\n[a.b]", 2, 2, "it is already a string" },
  };
  check_errors (docs, KP_N_ELEMENTS (docs));

  /* What the rules allow. */
  static const char *const allowed[] = {
    "[x.y.z.w]\n[x]",
    "[x.y.z.w]\n[x.y]\n[x.y.z]\n[x]",
    "[fruit]\napple.color = \"red\"\n[fruit.apple.texture]\nsmooth = true",
    "[fruit]\napple.color = \"red\"\n[[fruit.apple.seeds]]",
    "[[a.b]]\nx = 1\n[a]\ny = 2",
    "a.b.c = 1\na.d = 2\na.b.e = 3",
    "[a]\nb.c = 1\nb.d = 2",
    "[[a]]\nb.c = 1\n[[a]]\nb.c = 2",
    "a = [{ b = 1 }]\nc = { d = [] }",
    "[a]\n[a.b]\n[a.c]",
    "a.b = 1\n[a.c]\nd = 1",
  };
  for (size_t k = 0; k < KP_N_ELEMENTS (allowed); k++)
    {
      kp_cleanup_toml kp_toml_value *root = parse_ok (allowed[k]);
      assert_non_null (root);
    }
}

/* ---- positions and errors ------------------------------------------------------------------- */

static void
test_positions (void **state)
{
  kp_cleanup_toml kp_toml_value *root = parse_ok ("# comment\n"
                                                  "name = \"karapace\"\n"
                                                  "[sandbox]\n"
                                                  "  gpu = true    \n"
                                                  "\"é\" = { x = 1, \"ü\" = [1, 2] }\n"
                                                  "[[mounts]]\n"
                                                  "path.host = \"/srv\"\n"
                                                  "lines = \"\"\"\n"
                                                  "one\n"
                                                  "\"\"\"\n"
                                                  "after = [\n"
                                                  "  1,\n"
                                                  "  2]\n"
                                                  "last = 'x'\n");
  const kp_toml_keyval *kv = kp_toml_table_get_keyval (root, "name");
  assert_pos (kv->key_pos, 2, 1);
  assert_pos (kv->value->pos, 2, 8);
  kv = kp_toml_table_get_keyval (root, "sandbox");
  assert_pos (kv->key_pos, 3, 2);
  assert_pos (kv->value->pos, 3, 1);
  const kp_toml_value *sandbox = kv->value;
  kv = kp_toml_table_get_keyval (sandbox, "gpu");
  assert_pos (kv->key_pos, 4, 3);
  assert_pos (kv->value->pos, 4, 9);
  kv = kp_toml_table_get_keyval (sandbox, "é");
  assert_pos (kv->key_pos, 5, 1);
  assert_pos (kv->value->pos, 5, 7);
  const kp_toml_value *inl = kv->value;
  kv = kp_toml_table_get_keyval (inl, "x");
  assert_pos (kv->key_pos, 5, 9);
  assert_pos (kv->value->pos, 5, 13);
  kv = kp_toml_table_get_keyval (inl, "ü");
  assert_pos (kv->key_pos, 5, 16);
  assert_pos (kv->value->pos, 5, 22);
  assert_pos (kv->value->u.array.items[1]->pos, 5, 26);
  kv = kp_toml_table_get_keyval (root, "mounts");
  assert_pos (kv->key_pos, 6, 3);
  assert_pos (kv->value->pos, 6, 1);
  const kp_toml_value *mount = kv->value->u.array.items[0];
  assert_pos (mount->pos, 6, 1);
  kv = kp_toml_table_get_keyval (mount, "path");
  assert_pos (kv->key_pos, 7, 1);
  assert_pos (kv->value->pos, 7, 6);
  kv = kp_toml_table_get_keyval (kv->value, "host");
  assert_pos (kv->key_pos, 7, 6);
  assert_pos (kv->value->pos, 7, 13);
  kv = kp_toml_table_get_keyval (mount, "lines");
  assert_pos (kv->value->pos, 8, 9);
  kv = kp_toml_table_get_keyval (mount, "after");
  assert_pos (kv->key_pos, 11, 1);
  assert_pos (kv->value->u.array.items[1]->pos, 13, 3);
  kv = kp_toml_table_get_keyval (mount, "last");
  assert_pos (kv->key_pos, 14, 1);
  assert_pos (kv->value->pos, 14, 8);

  /* A table named first as a parent takes the position of the header defining it. */
  kp_cleanup_toml kp_toml_value *implicit = parse_ok ("[a.b]\n\n[a]\n");
  kv = kp_toml_table_get_keyval (implicit, "a");
  assert_pos (kv->key_pos, 3, 2);
  assert_pos (kv->value->pos, 3, 1);

  /* CRLF is one line end; a byte order mark is not a column. */
  kp_cleanup_toml kp_toml_value *crlf = parse_ok ("a = 1\r\n\r\nb = \"ü\" # c\r\nc = 3");
  assert_pos (kp_toml_table_get_keyval (crlf, "b")->key_pos, 3, 1);
  assert_pos (kp_toml_table_get_keyval (crlf, "c")->value->pos, 4, 5);
  kp_cleanup_toml kp_toml_value *bom = parse_ok ("\xEF\xBB\xBF"
                                                 "a = 1\nb = 2");
  assert_pos (kp_toml_table_get_keyval (bom, "a")->key_pos, 1, 1);
  assert_pos (kp_toml_table_get_keyval (bom, "a")->value->pos, 1, 5);
  assert_pos (kp_toml_table_get_keyval (bom, "b")->value->pos, 2, 5);

  kp_cleanup_toml kp_toml_value *empty = parse_ok ("");
  assert_int_equal (empty->type, KP_TOML_TABLE);
  assert_int_equal (empty->u.table.len, 0);
}

static void
test_error_positions (void **state)
{
  static const bad_doc docs[] = {
    { "name \"x\"", 1, 6, "expected '=' after key \"name\", found '\"'" },
    { "first = \"Tom\" last = \"Preston-Werner\"", 1, 15,
      "expected end of line after value, found 'l'" },
    { "key = # INVALID", 1, 7, "expected a value after \"key =\", found '#'" },
    { "key =", 1, 6, "expected a value after \"key =\", found end of file" },
    { "key =\nx = 1", 1, 6, "found end of line" },
    { "= \"no key name\"", 1, 1, "expected a key before '='" },
    { "a.b.= 1", 1, 5, "expected a key before '='" },
    { ".a = 1", 1, 1, "expected a key, found '.'" },
    { "a..b = 1", 1, 3, "expected a key, found '.'" },
    { "bare key = 1", 1, 6, "expected '=' after key \"bare\", found 'k'" },
    { "ke$y = 1", 1, 3, "expected '=' after key \"ke\", found '$'" },
    { "$ = 1", 1, 1, "bare keys may contain only A-Z, a-z, 0-9, '_' and '-'" },
    { "ʎǝʞ = 1", 1, 1, "expected a key, found 'ʎ'" },
    { "a = 1\n  b c = 1", 2, 5, "expected '=' after key \"b\", found 'c'" },
    { "a\n= 1", 1, 2, "expected '=' after key \"a\", found end of line" },
    { "a = 1 # ok\nb = 2 # \x01", 2, 9, "control character U+0001 is not allowed in a comment" },
    { "a = 1 # \x7f", 1, 9, "control character U+007F is not allowed in a comment" },
    { "[table", 1, 7, "expected ']' to close the table header, found end of file" },
    { "[[table]\n", 1, 9, "expected ']]' to close the table header, found end of line" },
    { "[[table] ]", 1, 9, "expected ']]' to close the table header, found ' '" },
    { "[a]b]", 1, 4, "expected end of line after table header, found 'b'" },
    { "[a] x = 1", 1, 5, "expected end of line after table header, found 'x'" },
    { "[]", 1, 2, "expected a key, found ']'" },
    { "[[]]", 1, 3, "expected a key, found ']'" },
    { "[a.]", 1, 4, "expected a key, found ']'" },
    { "[ [table]]", 1, 3, "expected a key, found '['" },
    { "[a b]", 1, 4, "expected ']' to close the table header, found 'b'" },
    { "[a\n]", 1, 3, "expected ']' to close the table header, found end of line" },
    { "[\"a\nb\"]", 1, 4, "expected '\"' to close the string, found end of line" },
    { "a = \"x\"\n\n\n   [x] = 1", 4, 8, "expected end of line after table header, found '='" },
    { "a = 1\nb = \"é\\q\"", 2, 7, "invalid escape sequence '\\q'" },
    { "\tb = \"\\u00\"", 1, 7, "\\u needs 4 hexadecimal digits, found '\"'" },
  };
  check_errors (docs, KP_N_ELEMENTS (docs));
}

static void
test_error_format (void **state)
{
  kp_cleanup_error kp_error *err = NULL;
  kp_cleanup_toml kp_toml_value *v = kp_toml_parse ("a = 1\na = 2\n", 12, "karapace.toml", &err);
  assert_null (v);
  kp_cleanup_free char *text = kp_error_describe (err);
  assert_string_equal (text, "karapace.toml:2:1: duplicate key \"a\" (first defined at line 1)");

  /* Without a file name the position is still kept. */
  kp_cleanup_error kp_error *err2 = NULL;
  v = kp_toml_parse ("x", 1, NULL, &err2);
  assert_null (v);
  assert_null (err2->file);
  assert_int_equal (err2->line, 1);
  assert_int_equal (err2->column, 2);

  /* A NULL text is an empty document. */
  kp_cleanup_toml kp_toml_value *empty = kp_toml_parse (NULL, 0, NULL, NULL);
  assert_non_null (empty);
  assert_int_equal (empty->u.table.len, 0);
  /* Errors without an error pointer are still failures. */
  assert_null (kp_toml_parse ("a =", 3, NULL, NULL));
}

/* ---- encoding ---------------------------------------------------------------------------- */

static void
test_utf8 (void **state)
{
  static const bad_doc docs[] = {
    { "a = \"\xC0\x80\"", 1, 6, "invalid UTF-8: unexpected byte 0xC0" },
    { "a = \"\xC1\xBF\"", 1, 6, "unexpected byte 0xC1" },
    { "a = \"\xE0\x80\xAF\"", 1, 6, "invalid UTF-8: overlong encoding" },
    { "a = \"\xF0\x80\x80\xAF\"", 1, 6, "overlong encoding" },
    { "a = \"\xED\xA0\x80\"", 1, 6, "invalid UTF-8: not a Unicode scalar value" },
    { "a = \"\xED\xBF\xBF\"", 1, 6, "not a Unicode scalar value" },
    { "a = \"\xF4\x90\x80\x80\"", 1, 6, "not a Unicode scalar value" },
    { "a = \"\xF5\x80\x80\x80\"", 1, 6, "unexpected byte 0xF5" },
    { "a = \"\xE2\x82\"", 1, 6, "invalid UTF-8: incomplete sequence" },
    { "a = \"\xE2\x82", 1, 6, "incomplete sequence" },
    { "a = \"\x80\"", 1, 6, "unexpected byte 0x80" },
    { "# \x80\na = 1", 1, 3, "unexpected byte 0x80" },
    { "\xFF\xFE"
      "a\0 \0=\0 \0"
      "1\0",
      1, 1, "unexpected byte 0xFF" },
    { "a = 1 # \xF8", 1, 9, "unexpected byte 0xF8" },
    { "a = 'ü'\nb = \"x\xFFy\"", 2, 7, "unexpected byte 0xFF" },
    { "k\xC3\xA9 = 1", 1, 2, "expected '=' after key \"k\", found 'é'" },
    { "a = 1\n\xEF\xBB\xBF"
      "b = 2",
      2, 1, "expected a key, found '\xEF\xBB\xBF'" },
    { "a = 1\rb = 2", 1, 6, "carriage return (U+000D) not followed by a line feed" },
    { "a = 1 # \r\n# \rb = 2", 2, 3, "carriage return" },
    { "a = \"\"\"x\ry\"\"\"", 1, 9, "carriage return" },
    { "a = \"x\r\"", 1, 7, "carriage return" },
    { "a = 1\r", 1, 6, "carriage return" },
    { "a = \x0c", 1, 5, "expected a value, found control character U+000C" },
    { "a = 1\x0b", 1, 6, "unexpected control character U+000B in integer" },
  };
  check_errors (docs, KP_N_ELEMENTS (docs));
  /* NUL bytes in the document, which C strings cannot show. */
  check_error_n ("a = 1\0", 6, 1, 6, "unexpected control character U+0000 in integer");
  check_error_n ("a = \"x\0\"", 8, 1, 7, "control character U+0000 is not allowed in a string");
  check_error_n ("# \0\n", 4, 1, 3, "control character U+0000 is not allowed in a comment");
  check_error_n ("\0", 1, 1, 1, "expected a key, found control character U+0000");

  kp_cleanup_toml kp_toml_value *root
      = parse_ok ("\xEF\xBB\xBF# a BOM at the start is allowed\n"
                  "a = \"\xF0\x9F\x98\x80 \xF4\x8F\xBF\xBF \xEE\x80\x80 \xED\x9F\xBF \xC2\x80\"\n"
                  "b = '\xEF\xBB\xBF'\n"
                  "c = 1 # comment with \xE2\x82\xAC and tab\t\n");
  assert_string_equal (get_string (root, "a"),
                       "\xF0\x9F\x98\x80 \xF4\x8F\xBF\xBF \xEE\x80\x80 \xED\x9F\xBF \xC2\x80");
  assert_string_equal (get_string (root, "b"), "\xEF\xBB\xBF");
}

/* ---- writers ------------------------------------------------------------------------------ */

/* Write `s` as a value, parse it back and compare the bytes. */
static void
round_trip_string (const char *s, size_t len)
{
  kp_cleanup_buf kp_buf doc = KP_BUF_INIT;
  kp_buf_puts (&doc, "v = ");
  kp_toml_write_string (&doc, s, len);
  kp_buf_puts (&doc, "\n");
  kp_cleanup_toml kp_toml_value *root = parse_ok_n (doc.data, doc.len);
  const kp_toml_value *v = kp_toml_table_get (root, "v");
  assert_int_equal (v->type, KP_TOML_STRING);
  assert_int_equal (v->u.string.len, len);
  assert_memory_equal (v->u.string.ptr, s, len);
}

static void
round_trip_key (const char *key)
{
  kp_cleanup_buf kp_buf doc = KP_BUF_INIT;
  kp_toml_write_key (&doc, key);
  kp_buf_puts (&doc, " = 1\n[table.");
  kp_toml_write_key (&doc, key);
  kp_buf_puts (&doc, "]\n");
  kp_toml_write_key (&doc, key);
  kp_buf_puts (&doc, " = 2\n");
  kp_cleanup_toml kp_toml_value *root = parse_ok_n (doc.data, doc.len);
  assert_int_equal (root->u.table.len, 2);
  assert_string_equal (root->u.table.items[0].key, key);
  const kp_toml_value *sub = root->u.table.items[1].value->u.table.items[0].value;
  assert_string_equal (root->u.table.items[1].value->u.table.items[0].key, key);
  assert_string_equal (sub->u.table.items[0].key, key);
  assert_int_equal (sub->u.table.items[0].value->u.integer, 2);
}

static void
test_write_string (void **state)
{
  kp_cleanup_buf kp_buf out = KP_BUF_INIT;
  kp_toml_write_string (&out, "a\"b\\c\n\t\x01\x7f\x1b\b\f\r é", 16);
  assert_string_equal (out.data, "\"a\\\"b\\\\c\\n\\t\\u0001\\u007F\\u001B\\b\\f\\r é\"");
  kp_buf_truncate (&out, 0);
  kp_toml_write_string (&out, "nul\0here", 8);
  assert_string_equal (out.data, "\"nul\\u0000here\"");
  kp_buf_truncate (&out, 0);
  /* Bytes that are not UTF-8 cannot be written in TOML; they become U+FFFD. */
  kp_toml_write_string (&out, "x\xFFy\xC3", 4);
  assert_string_equal (out.data, "\"x\\uFFFDy\\uFFFD\"");
  kp_buf_truncate (&out, 0);
  kp_toml_write_string (&out, "", 0);
  assert_string_equal (out.data, "\"\"");

  char all[128];
  for (int c = 0; c < 128; c++)
    all[c] = (char) c;
  round_trip_string (all, sizeof all);
  for (int c = 0; c < 128; c++)
    round_trip_string (&all[c], 1);
  static const char *const samples[] = {
    "",        "plain",   "\"quoted\"",        "'single'",
    "\"\"\"",  "'''",     "back\\slash",       "#",
    "a = b",   "日本語",  "😀\xF4\x8F\xBF\xBF", "line\nbreak\r\n",
    "\\u0041", "[table]", "{ x = 1 }",
  };
  for (size_t k = 0; k < KP_N_ELEMENTS (samples); k++)
    round_trip_string (samples[k], strlen (samples[k]));

  kp_buf_truncate (&out, 0);
  kp_toml_write_key (&out, "bare_Key-1");
  assert_string_equal (out.data, "bare_Key-1");
  kp_buf_truncate (&out, 0);
  kp_toml_write_key (&out, "a.b");
  assert_string_equal (out.data, "\"a.b\"");
  kp_buf_truncate (&out, 0);
  kp_toml_write_key (&out, "");
  assert_string_equal (out.data, "\"\"");
  static const char *const keys[]
      = { "bare_Key-1", "1234", "a.b",       "",  " ", "é",   "with space",
          "\"",         "'",    "tab\there", "=", "#", "[x]", "\x01" };
  for (size_t k = 0; k < KP_N_ELEMENTS (keys); k++)
    round_trip_key (keys[k]);
}

static void
test_lookup_and_names (void **state)
{
  kp_cleanup_toml kp_toml_value *root = parse_ok ("a = 1\n[t]\nb = 'x'\n");
  assert_null (kp_toml_table_get (root, "missing"));
  assert_null (kp_toml_table_get (kp_toml_table_get (root, "a"), "b"));
  assert_null (kp_toml_table_get (NULL, "a"));
  assert_null (kp_toml_table_get_keyval (root, NULL));
  assert_string_equal (kp_toml_table_get_keyval (root, "t")->key, "t");
  assert_string_equal (kp_toml_type_name (KP_TOML_STRING), "string");
  assert_string_equal (kp_toml_type_name (KP_TOML_INTEGER), "integer");
  assert_string_equal (kp_toml_type_name (KP_TOML_FLOAT), "float");
  assert_string_equal (kp_toml_type_name (KP_TOML_BOOL), "boolean");
  assert_string_equal (kp_toml_type_name (KP_TOML_DATETIME), "datetime");
  assert_string_equal (kp_toml_type_name (KP_TOML_DATETIME_LOCAL), "datetime-local");
  assert_string_equal (kp_toml_type_name (KP_TOML_DATE_LOCAL), "date-local");
  assert_string_equal (kp_toml_type_name (KP_TOML_TIME_LOCAL), "time-local");
  assert_string_equal (kp_toml_type_name (KP_TOML_ARRAY), "array");
  assert_string_equal (kp_toml_type_name (KP_TOML_TABLE), "table");
  kp_toml_free (NULL);
}

/* ---- limits and hostile input --------------------------------------------------------------- */

static char *
repeat (const char *prefix, const char *unit, int n, const char *middle, const char *close_unit,
        const char *suffix)
{
  kp_buf b = KP_BUF_INIT;
  kp_buf_puts (&b, prefix);
  for (int k = 0; k < n; k++)
    kp_buf_puts (&b, unit);
  kp_buf_puts (&b, middle);
  for (int k = 0; k < n; k++)
    kp_buf_puts (&b, close_unit);
  kp_buf_puts (&b, suffix);
  return kp_buf_steal (&b);
}

static void
test_depth_limit (void **state)
{
  /* The root is level 0: a value may sit 128 levels deep, not 129. */
  kp_cleanup_free char *arrays = repeat ("a = ", "[", 128, "", "]", "\n");
  kp_cleanup_toml kp_toml_value *root = parse_ok (arrays);
  const kp_toml_value *v = get (root, "a");
  for (int k = 1; k < 128; k++)
    v = v->u.array.items[0];
  assert_int_equal (v->type, KP_TOML_ARRAY);
  assert_int_equal (v->u.array.len, 0);
  kp_cleanup_free char *too_deep = repeat ("a = ", "[", 129, "", "]", "\n");
  check_error (too_deep, 1, 133, "tables and arrays are nested more than 128 levels deep");

  kp_cleanup_free char *tables = repeat ("a = ", "{ b = ", 127, "1", " }", "\n");
  kp_cleanup_toml kp_toml_value *root2 = parse_ok (tables);
  v = get (root2, "a");
  for (int k = 1; k < 127; k++)
    v = kp_toml_table_get (v, "b");
  assert_int_equal (kp_toml_table_get (v, "b")->u.integer, 1);
  kp_cleanup_free char *tables_deep = repeat ("a = ", "{ b = ", 128, "1", " }", "\n");
  check_error (tables_deep, 0, 0, "nested more than 128 levels");

  kp_cleanup_free char *header = repeat ("[a", ".a", 127, "]\n", "", "");
  kp_cleanup_toml kp_toml_value *root3 = parse_ok (header);
  assert_int_equal (root3->u.table.len, 1);
  kp_cleanup_free char *header_value = repeat ("[a", ".a", 127, "]\nb = 1\n", "", "");
  check_error (header_value, 2, 5, "nested more than 128 levels");
  kp_cleanup_free char *header_long = repeat ("[a", ".a", 128, "]\n", "", "");
  check_error (header_long, 1, 258, "key has more than 128 parts");
  kp_cleanup_free char *dotted_ok = repeat ("a", ".a", 127, " = 1\n", "", "");
  kp_cleanup_toml kp_toml_value *root4 = parse_ok (dotted_ok);
  assert_int_equal (root4->u.table.len, 1);
  kp_cleanup_free char *dotted_long = repeat ("a", ".a", 128, " = 1\n", "", "");
  check_error (dotted_long, 1, 257, "key has more than 128 parts");
  /* Depth counts from the root, through headers and dotted keys alike. */
  kp_cleanup_free char *section = repeat ("[a", ".a", 63, "]\n", "", "");
  kp_cleanup_free char *dotted_deep = repeat (section, "b.", 64, "b = 1\n", "", "");
  check_error (dotted_deep, 2, 133, "nested more than 128 levels");

  /* Hostile nesting fails fast instead of exhausting the stack. */
  kp_cleanup_free char *hostile = repeat ("a = ", "[", 1000000, "", "", "");
  check_error (hostile, 1, 133, "nested more than 128 levels");
  kp_cleanup_free char *hostile2 = repeat ("a = ", "{a=", 1000000, "", "", "");
  check_error (hostile2, 0, 0, "nested more than 128 levels");
  kp_cleanup_free char *hostile3 = repeat ("", "[", 1000000, "", "", "");
  check_error (hostile3, 1, 3, "expected a key, found '['");
}

static void
test_large_documents (void **state)
{
  /* Many keys in one table: the duplicate check must not be quadratic. */
  kp_cleanup_buf kp_buf doc = KP_BUF_INIT;
  for (int k = 0; k < 200000; k++)
    kp_buf_printf (&doc, "key%d = %d\n", k, k);
  kp_cleanup_toml kp_toml_value *root = parse_ok_n (doc.data, doc.len);
  assert_int_equal (root->u.table.len, 200000);
  assert_string_equal (root->u.table.items[199999].key, "key199999");
  assert_pos (root->u.table.items[199999].key_pos, 200000, 1);
  kp_buf_puts (&doc, "key123456 = 0\n");
  check_error_n (doc.data, doc.len, 200001, 1,
                 "duplicate key \"key123456\" (first defined at line 123457)");

  /* A million values on one line: columns are counted incrementally. */
  kp_buf_truncate (&doc, 0);
  kp_buf_puts (&doc, "a = [");
  for (int k = 0; k < 1000000; k++)
    kp_buf_puts (&doc, "1,");
  kp_buf_puts (&doc, "]\nb = \"é");
  kp_cleanup_toml kp_toml_value *root2 = parse_ok_n (doc.data, doc.len - 8);
  const kp_toml_value *a = kp_toml_table_get (root2, "a");
  assert_int_equal (a->u.array.len, 1000000);
  assert_pos (a->u.array.items[999999]->pos, 1, 6 + 2 * 999999);
  check_error_n (doc.data, doc.len, 2, 7, "expected '\"' to close the string, found end of file");

  /* Many arrays of tables, and a long string. */
  kp_buf_truncate (&doc, 0);
  for (int k = 0; k < 50000; k++)
    kp_buf_printf (&doc, "[[p]]\nn = %d\n[p.q]\n", k);
  kp_cleanup_toml kp_toml_value *root3 = parse_ok_n (doc.data, doc.len);
  assert_int_equal (kp_toml_table_get (root3, "p")->u.array.len, 50000);
  kp_buf_truncate (&doc, 0);
  kp_buf_puts (&doc, "s = '''");
  for (int k = 0; k < 4 * 1024 * 1024 / 8; k++)
    kp_buf_puts (&doc, "abcdéfg\n");
  kp_buf_puts (&doc, "'''");
  kp_cleanup_toml kp_toml_value *root4 = parse_ok_n (doc.data, doc.len);
  assert_int_equal (kp_toml_table_get (root4, "s")->u.string.len, 4 * 1024 * 1024 / 8 * 9);
}

/* Every prefix of a document, and every byte replaced by a few troublesome ones, must be
 * parsed or refused with a position: never read out of bounds, never crash. */
static void
test_truncations_and_mutations (void **state)
{
  static const char doc[] = "# Karapace\n"
                            "name = \"dév\" # c\n"
                            "n = [1, 0x1F, -0.5e3, inf, 1979-05-27T07:32:00.5-01:00, 07:32:00]\n"
                            "s = \"\"\"\\\n  a\"\"b\\u00e9\\U0001F600\"\"\"\n"
                            "l = '''x''y'''\n"
                            "[t.\"q k\"]\n"
                            "d.e = { f = [ { g = true } ], h = 'x' }\n"
                            "[[arr]]\r\n"
                            "x = 1_000\n";
  static const char replacements[] = { '\0', '"',  '\'', '[', ']', '{',         '\\',
                                       '\n', '\r', '.',  '=', '#', (char) 0xC3, (char) 0xFF };
  size_t len = sizeof doc - 1;
  kp_cleanup_toml kp_toml_value *whole = parse_ok_n (doc, len);
  assert_int_equal (whole->u.table.len, 6);
  for (size_t n = 0; n <= len; n++)
    {
      kp_cleanup_error kp_error *err = NULL;
      kp_cleanup_toml kp_toml_value *v = parse_n (doc, n, &err);
      assert_true ((v != NULL) != (err != NULL));
      if (err)
        assert_true (err->line >= 1 && err->column >= 1);
    }
  char copy[sizeof doc];
  for (size_t at = 0; at < len; at++)
    for (size_t r = 0; r < sizeof replacements; r++)
      {
        memcpy (copy, doc, len);
        copy[at] = replacements[r];
        kp_cleanup_error kp_error *err = NULL;
        kp_cleanup_toml kp_toml_value *v = parse_n (copy, len, &err);
        assert_true ((v != NULL) != (err != NULL));
        if (err)
          assert_true (err->line >= 1 && err->line <= 12 && err->column >= 1);
      }
}

static void
test_parse_file (void **state)
{
  char dir[] = "/tmp/kp-test-toml-XXXXXX";
  assert_non_null (mkdtemp (dir));
  kp_cleanup_free char *path = xasprintf ("%s/karapace.toml", dir);
  FILE *f = fopen (path, "w");
  assert_non_null (f);
  fputs ("name = \"x\"\n[sandbox]\ngpu = 1\ngpu = 2\n", f);
  fclose (f);
  kp_cleanup_error kp_error *err = NULL;
  kp_cleanup_toml kp_toml_value *v = kp_toml_parse_file (path, &err);
  assert_null (v);
  assert_string_equal (err->file, path);
  assert_int_equal (err->line, 4);
  assert_int_equal (err->column, 1);

  f = fopen (path, "w");
  fputs ("name = \"x\"\n", f);
  fclose (f);
  kp_cleanup_error kp_error *err2 = NULL;
  kp_cleanup_toml kp_toml_value *ok = kp_toml_parse_file (path, &err2);
  assert_non_null (ok);
  assert_string_equal (get_string (ok, "name"), "x");

  /* Over the size limit: refused before reading, with the limit in the message. */
  assert_int_equal (truncate (path, 17 * 1024 * 1024), 0);
  kp_cleanup_error kp_error *err3 = NULL;
  assert_null (kp_toml_parse_file (path, &err3));
  assert_int_equal (err3->status, KP_EXIT_MANIFEST);
  assert_non_null (strstr (err3->message, "larger than the 16 MiB limit"));
  unlink (path);

  kp_cleanup_error kp_error *err4 = NULL;
  assert_null (kp_toml_parse_file (path, &err4));
  assert_int_equal (err4->errno_value, ENOENT);
  rmdir (dir);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_strings),
    cmocka_unit_test (test_string_errors),
    cmocka_unit_test (test_integers),
    cmocka_unit_test (test_integer_errors),
    cmocka_unit_test (test_floats),
    cmocka_unit_test (test_float_errors),
    cmocka_unit_test (test_booleans),
    cmocka_unit_test (test_datetimes),
    cmocka_unit_test (test_datetime_errors),
    cmocka_unit_test (test_arrays),
    cmocka_unit_test (test_inline_tables),
    cmocka_unit_test (test_tables),
    cmocka_unit_test (test_redefinitions),
    cmocka_unit_test (test_positions),
    cmocka_unit_test (test_error_positions),
    cmocka_unit_test (test_error_format),
    cmocka_unit_test (test_utf8),
    cmocka_unit_test (test_write_string),
    cmocka_unit_test (test_lookup_and_names),
    cmocka_unit_test (test_depth_limit),
    cmocka_unit_test (test_large_documents),
    cmocka_unit_test (test_truncations_and_mutations),
    cmocka_unit_test (test_parse_file),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
