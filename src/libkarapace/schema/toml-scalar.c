/* toml-scalar.c — strings, numbers, booleans and dates of TOML 1.0.0.
 *
 * Each reader starts at the first character of its value and stops after the last; a
 * character glued to the end of a value (1.2.3, truex, 1979-05-27Tx) is reported here,
 * where the message can say what was being read. */
#include "toml-private.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- strings ---------------------------------------------------------------------------- */

/* At a backslash inside a basic string: append the escaped character. */
static int
parse_escape (toml_parser *p, kp_buf *out)
{
  kp_toml_pos pos = here (p);
  int c = peek_at (p, 1);
  const char *simple = NULL;
  switch (c)
    {
    case 'b':
      simple = "\b";
      break;
    case 't':
      simple = "\t";
      break;
    case 'n':
      simple = "\n";
      break;
    case 'f':
      simple = "\f";
      break;
    case 'r':
      simple = "\r";
      break;
    case '"':
      simple = "\"";
      break;
    case '\\':
      simple = "\\";
      break;
    case 'u':
    case 'U':
      {
        int digits = c == 'u' ? 4 : 8;
        uint32_t cp = 0;
        for (int k = 0; k < digits; k++)
          {
            int h = hex_value (peek_at (p, 2 + (size_t) k));
            if (h < 0)
              return toml_fail_at (p, pos,
                                   "invalid escape: \\%c needs %d hexadecimal digits, found %s", c,
                                   digits, toml_describe_at (p, p->i + 2 + (size_t) k).text);
            cp = (cp << 4) | (uint32_t) h;
          }
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
          return toml_fail_at (p, pos, "invalid escape: \\%c%.*s is not a Unicode scalar value", c,
                               digits, p->text + p->i + 2);
        kp_buf_put_utf8 (out, cp);
        p->i += 2 + (size_t) digits;
        return 0;
      }
    default:
      break;
    }
  if (simple == NULL)
    {
      if (c > 0x20 && c < 0x7F)
        return toml_fail_at (p, pos, "invalid escape sequence '\\%c'", c);
      return toml_fail_at (p, pos, "invalid escape: backslash followed by %s",
                           toml_describe_at (p, p->i + 1).text);
    }
  kp_buf_putc (out, simple[0]);
  p->i += 2;
  return 0;
}

static int
bad_string_char (toml_parser *p, const char *kind)
{
  return toml_fail_at (p, here (p), "%s is not allowed in a %s; write it as an escape",
                       describe_here (p).text, kind);
}

/* "..." on one line. */
int
toml_parse_basic_string (toml_parser *p, kp_buf *out)
{
  p->i++;
  for (;;)
    {
      int c = peek (p);
      if (c == '"')
        {
          p->i++;
          return 0;
        }
      if (c < 0 || c == '\n' || c == '\r')
        return toml_fail_at (p, here (p), "expected '\"' to close the string, found %s",
                             describe_here (p).text);
      if (c == '\\')
        {
          if (parse_escape (p, out) < 0)
            return -1;
          continue;
        }
      if ((c < 0x20 && c != '\t') || c == 0x7F)
        return bad_string_char (p, "string");
      kp_buf_putc (out, (char) c);
      p->i++;
    }
}

/* '...' on one line, no escapes. */
int
toml_parse_literal_string (toml_parser *p, kp_buf *out)
{
  p->i++;
  size_t from = p->i;
  for (;;)
    {
      int c = peek (p);
      if (c == '\'')
        break;
      if (c < 0 || c == '\n' || c == '\r')
        return toml_fail_at (p, here (p), "expected \"'\" to close the literal string, found %s",
                             describe_here (p).text);
      if ((c < 0x20 && c != '\t') || c == 0x7F)
        return toml_fail_at (p, here (p), "%s is not allowed in a literal string",
                             describe_here (p).text);
      p->i++;
    }
  kp_buf_append (out, p->text + from, p->i - from);
  p->i++;
  return 0;
}

/* Multi-line strings: `quote` is '"' or '\''. Up to two quotes may stand anywhere,
 * including just before the closing delimiter; newlines are normalised to LF. */
static int
parse_multiline_string (toml_parser *p, kp_buf *out, char quote)
{
  bool basic = quote == '"';
  kp_toml_pos open = here (p);
  p->i += 3;
  if (at_newline (p))
    toml_skip_newline (p);
  for (;;)
    {
      int c = peek (p);
      if (c < 0)
        return toml_fail_at (
            p, here (p),
            "expected %s to close the multi-line string opened at line %d, column %d, found end of file",
            basic ? "'\"\"\"'" : "\"'''\"", open.line, open.column);
      if (c == quote)
        {
          size_t run = 0;
          while (peek_at (p, run) == quote)
            run++;
          if (run < 3)
            {
              kp_buf_append (out, p->text + p->i, run);
              p->i += run;
              continue;
            }
          if (run > 5)
            return toml_fail_at (p, toml_pos_at (p, p->i + 5),
                                 "too many quotes: at most two may precede the closing %s",
                                 basic ? "'\"\"\"'" : "\"'''\"");
          kp_buf_append (out, p->text + p->i, run - 3);
          p->i += run;
          return 0;
        }
      if (c == '\n' || c == '\r')
        {
          kp_buf_putc (out, '\n');
          toml_skip_newline (p);
          continue;
        }
      if (basic && c == '\\')
        {
          /* A backslash ending a line eats all whitespace and newlines that follow. */
          size_t k = 1;
          while (peek_at (p, k) == ' ' || peek_at (p, k) == '\t')
            k++;
          if (peek_at (p, k) == '\n' || peek_at (p, k) == '\r')
            {
              p->i += k;
              while (p->i < p->len)
                {
                  if (at_newline (p))
                    toml_skip_newline (p);
                  else if (peek (p) == ' ' || peek (p) == '\t')
                    p->i++;
                  else
                    break;
                }
              continue;
            }
          if (parse_escape (p, out) < 0)
            return -1;
          continue;
        }
      if ((c < 0x20 && c != '\t') || c == 0x7F)
        {
          if (basic)
            return bad_string_char (p, "multi-line string");
          return toml_fail_at (p, here (p), "%s is not allowed in a literal string",
                               describe_here (p).text);
        }
      kp_buf_putc (out, (char) c);
      p->i++;
    }
}

/* ---- scalars ------------------------------------------------------------------------------ */

static bool
is_value_end (int c)
{
  return c < 0 || c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '#' || c == ','
         || c == ']' || c == '}';
}

/* Anything glued to the end of a number, date or keyword is an error here, where the
 * message can say what was being read. */
static int
check_value_end (toml_parser *p, const char *what)
{
  if (is_value_end (peek (p)))
    return 0;
  return toml_fail_at (p, here (p), "unexpected %s in %s", describe_here (p).text, what);
}

static toml_node *
parse_keyword (toml_parser *p, unsigned depth)
{
  kp_toml_pos pos = here (p);
  size_t rest = p->len - p->i;
  const char *s = p->text + p->i;
  toml_node *n = NULL;
  if (rest >= 4 && memcmp (s, "true", 4) == 0 && (rest == 4 || !is_bare_key_char (s[4])))
    {
      n = toml_node_new (KP_TOML_BOOL, NODE_SCALAR, pos, depth);
      n->value.u.boolean = true;
      p->i += 4;
    }
  else if (rest >= 5 && memcmp (s, "false", 5) == 0 && (rest == 5 || !is_bare_key_char (s[5])))
    {
      n = toml_node_new (KP_TOML_BOOL, NODE_SCALAR, pos, depth);
      n->value.u.boolean = false;
      p->i += 5;
    }
  else
    {
      size_t k = 0;
      while (k < rest && k < 64 && (is_bare_key_char (s[k]) || s[k] == '.'))
        k++;
      toml_fail_at (
          p, pos,
          "expected a value, found \"%.*s\" (strings must be quoted; true, false, inf and nan are lowercase)",
          (int) k, s);
      return NULL;
    }
  if (check_value_end (p, "boolean") < 0)
    {
      kp_toml_free (&n->value);
      return NULL;
    }
  return n;
}

/* Digits of `base` with single underscores between them; p->i is at the first digit. */
static int
scan_digits (toml_parser *p, int base, const char *what)
{
  for (;;)
    {
      int c = peek (p);
      int d = base == 16 ? hex_value (c) : is_digit (c) ? c - '0' : -1;
      if (d >= 0 && d < base)
        {
          p->i++;
          continue;
        }
      if (c != '_')
        return 0;
      int next = peek_at (p, 1);
      int nd = base == 16 ? hex_value (next) : is_digit (next) ? next - '0' : -1;
      if (nd < 0 || nd >= base)
        return toml_fail_at (p, here (p), "'_' in %s must be followed by a digit, found %s", what,
                             toml_describe_at (p, p->i + 1).text);
      p->i++;
    }
}

static toml_node *
integer_node (toml_parser *p, kp_toml_pos pos, size_t from, size_t to, int base, bool negative,
              unsigned depth)
{
  uint64_t limit = negative ? (uint64_t) INT64_MAX + 1 : (uint64_t) INT64_MAX;
  uint64_t v = 0;
  for (size_t k = from; k < to; k++)
    {
      if (p->text[k] == '_')
        continue;
      uint64_t d = (uint64_t) hex_value ((unsigned char) p->text[k]);
      if (__builtin_mul_overflow (v, (uint64_t) base, &v) || __builtin_add_overflow (v, d, &v)
          || v > limit)
        {
          toml_fail_at (p, pos,
                        "integer out of range: it must fit in 64 bits "
                        "(-9223372036854775808 to 9223372036854775807)");
          return NULL;
        }
    }
  toml_node *n = toml_node_new (KP_TOML_INTEGER, NODE_SCALAR, pos, depth);
  n->value.u.integer = negative ? (int64_t) (0 - v) : (int64_t) v;
  return n;
}

static toml_node *
float_node (toml_parser *p, kp_toml_pos pos, size_t from, size_t to, unsigned depth)
{
  kp_buf *b = &p->scratch;
  kp_buf_truncate (b, 0);
  for (size_t k = from; k < to; k++)
    if (p->text[k] != '_')
      kp_buf_putc (b, p->text[k]);
  if (p->c_locale == (locale_t) 0)
    {
      p->c_locale = newlocale (LC_ALL_MASK, "C", (locale_t) 0);
      if (p->c_locale == (locale_t) 0)
        {
          kp_error_errno (p->err, errno, "cannot create the C locale");
          return NULL;
        }
    }
  errno = 0;
  double d = strtod_l (kp_buf_str (b), NULL, p->c_locale);
  if (errno == ERANGE && isinf (d))
    {
      toml_fail_at (p, pos, "float %.*s is out of range", (int) (to - from), p->text + from);
      return NULL;
    }
  toml_node *n = toml_node_new (KP_TOML_FLOAT, NODE_SCALAR, pos, depth);
  n->value.u.floating = d;
  return n;
}

/* Integers in all four bases, floats, inf and nan; p->i at the sign or first digit. */
static toml_node *
parse_number (toml_parser *p, unsigned depth)
{
  kp_toml_pos pos = here (p);
  size_t from = p->i;
  bool negative = false, sign = false;
  if (peek (p) == '+' || peek (p) == '-')
    {
      sign = true;
      negative = peek (p) == '-';
      p->i++;
    }
  int c = peek (p);
  if (c == 'i' || c == 'n')
    {
      const char *word = c == 'i' ? "inf" : "nan";
      if (p->len - p->i < 3 || memcmp (p->text + p->i, word, 3) != 0)
        {
          size_t k = p->i;
          while (k < p->len && k - from < 64 && is_bare_key_char ((unsigned char) p->text[k]))
            k++;
          toml_fail_at (p, pos, "expected a value, found \"%.*s\"", (int) (k - from),
                        p->text + from);
          return NULL;
        }
      p->i += 3;
      if (check_value_end (p, "float") < 0)
        return NULL;
      toml_node *n = toml_node_new (KP_TOML_FLOAT, NODE_SCALAR, pos, depth);
      n->value.u.floating = c == 'i' ? (negative ? -INFINITY : INFINITY) : (negative ? -NAN : NAN);
      return n;
    }
  if (!is_digit (c))
    {
      toml_fail_at (p, here (p), "expected a digit after '%c', found %s", p->text[from],
                    describe_here (p).text);
      return NULL;
    }
  if (c == '0' && (peek_at (p, 1) == 'x' || peek_at (p, 1) == 'o' || peek_at (p, 1) == 'b'))
    {
      int prefix = peek_at (p, 1);
      int base = prefix == 'x' ? 16 : prefix == 'o' ? 8 : 2;
      const char *what = base == 16  ? "hexadecimal integer"
                         : base == 8 ? "octal integer"
                                     : "binary integer";
      if (sign)
        {
          toml_fail_at (p, pos, "a %s cannot have a sign", what);
          return NULL;
        }
      p->i += 2;
      int d = base == 16 ? hex_value (peek (p)) : is_digit (peek (p)) ? peek (p) - '0' : -1;
      if (d < 0 || d >= base)
        {
          toml_fail_at (p, here (p), "expected a digit after '0%c', found %s", prefix,
                        describe_here (p).text);
          return NULL;
        }
      size_t digits = p->i;
      if (scan_digits (p, base, what) < 0 || check_value_end (p, what) < 0)
        return NULL;
      return integer_node (p, pos, digits, p->i, base, false, depth);
    }
  if (c == '0' && (peek_at (p, 1) == 'X' || peek_at (p, 1) == 'O' || peek_at (p, 1) == 'B'))
    {
      toml_fail_at (p, pos, "number prefixes are lowercase: '0%c', not '0%c'", peek_at (p, 1) + 32,
                    peek_at (p, 1));
      return NULL;
    }
  size_t int_from = p->i;
  if (scan_digits (p, 10, "number") < 0)
    return NULL;
  if (p->text[int_from] == '0' && p->i - int_from > 1)
    {
      toml_fail_at (p, toml_pos_at (p, int_from), "leading zeros are not allowed in numbers");
      return NULL;
    }
  bool is_float = false;
  if (peek (p) == '.')
    {
      is_float = true;
      p->i++;
      if (!is_digit (peek (p)))
        {
          toml_fail_at (p, here (p), "expected a digit after the decimal point, found %s",
                        describe_here (p).text);
          return NULL;
        }
      if (scan_digits (p, 10, "float") < 0)
        return NULL;
    }
  if (peek (p) == 'e' || peek (p) == 'E')
    {
      is_float = true;
      p->i++;
      if (peek (p) == '+' || peek (p) == '-')
        p->i++;
      if (!is_digit (peek (p)))
        {
          toml_fail_at (p, here (p), "expected a digit in the exponent, found %s",
                        describe_here (p).text);
          return NULL;
        }
      if (scan_digits (p, 10, "exponent") < 0)
        return NULL;
    }
  if (check_value_end (p, is_float ? "float" : "integer") < 0)
    return NULL;
  if (is_float)
    return float_node (p, pos, from, p->i, depth);
  return integer_node (p, pos, int_from, p->i, 10, negative, depth);
}

/* Exactly `count` digits at text[at]; their value, or -1. */
static int
fixed_digits (const toml_parser *p, size_t at, int count)
{
  int v = 0;
  for (int k = 0; k < count; k++)
    {
      size_t idx = at + (size_t) k;
      if (idx >= p->len || !is_digit ((unsigned char) p->text[idx]))
        return -1;
      v = v * 10 + (p->text[idx] - '0');
    }
  return v;
}

/* One field of a date or time: `count` digits then the separator `sep` (0: none). */
static int
datetime_field (toml_parser *p, int count, char sep, const char *what, int *out)
{
  int v = fixed_digits (p, p->i, count);
  if (v < 0)
    {
      size_t k = 0;
      while (k < (size_t) count && is_digit (peek_at (p, k)))
        k++;
      return toml_fail_at (p, toml_pos_at (p, p->i + k), "expected %d-digit %s, found %s", count,
                           what, toml_describe_at (p, p->i + k).text);
    }
  p->i += (size_t) count;
  if (sep)
    {
      if (peek (p) != sep)
        return toml_fail_at (p, here (p), "expected '%c' after the %s, found %s", sep, what,
                             describe_here (p).text);
      p->i++;
    }
  *out = v;
  return 0;
}

static bool
is_leap_year (int y)
{
  return y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
}

static int
days_in_month (int year, int month)
{
  static const int days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
  return month == 2 && is_leap_year (year) ? 29 : days[month - 1];
}

/* HH:MM:SS[.fraction] */
static int
parse_time (toml_parser *p, kp_toml_datetime *dt)
{
  kp_toml_pos pos = here (p);
  if (datetime_field (p, 2, ':', "hour", &dt->hour) < 0)
    return -1;
  kp_toml_pos minute_pos = here (p);
  if (datetime_field (p, 2, 0, "minute", &dt->minute) < 0)
    return -1;
  if (peek (p) != ':')
    return toml_fail_at (
        p, here (p), "expected ':' and seconds after the minutes, found %s (seconds are required)",
        describe_here (p).text);
  p->i++;
  kp_toml_pos second_pos = here (p);
  if (datetime_field (p, 2, 0, "second", &dt->second) < 0)
    return -1;
  if (dt->hour > 23)
    return toml_fail_at (p, pos, "hour %02d is out of range (00-23)", dt->hour);
  if (dt->minute > 59)
    return toml_fail_at (p, minute_pos, "minute %02d is out of range (00-59)", dt->minute);
  /* 60 is a leap second; which days have one is not knowable here, so it is accepted. */
  if (dt->second > 60)
    return toml_fail_at (p, second_pos, "second %02d is out of range (00-60)", dt->second);
  if (peek (p) == '.')
    {
      p->i++;
      if (!is_digit (peek (p)))
        return toml_fail_at (p, here (p), "expected a digit after the decimal point, found %s",
                             describe_here (p).text);
      /* Precision past nanoseconds is truncated, as TOML requires (never rounded). */
      int digits = 0, ns = 0;
      while (is_digit (peek (p)))
        {
          if (digits < 9)
            {
              ns = ns * 10 + (peek (p) - '0');
              digits++;
            }
          p->i++;
        }
      dt->frac_digits = digits;
      for (int k = digits; k < 9; k++)
        ns *= 10;
      dt->nanosecond = ns;
    }
  return 0;
}

/* Offset date-time, local date-time, local date; p->i at the year. */
static toml_node *
parse_date (toml_parser *p, unsigned depth)
{
  kp_toml_pos pos = here (p);
  kp_toml_datetime dt = { 0 };
  kp_toml_pos month_pos, day_pos;
  if (datetime_field (p, 4, '-', "year", &dt.year) < 0)
    return NULL;
  month_pos = here (p);
  if (datetime_field (p, 2, '-', "month", &dt.month) < 0)
    return NULL;
  day_pos = here (p);
  if (datetime_field (p, 2, 0, "day", &dt.day) < 0)
    return NULL;
  if (dt.month < 1 || dt.month > 12)
    {
      toml_fail_at (p, month_pos, "month %02d is out of range (01-12)", dt.month);
      return NULL;
    }
  if (dt.day < 1 || dt.day > days_in_month (dt.year, dt.month))
    {
      toml_fail_at (p, day_pos, "day %02d is out of range: %04d-%02d has %d days", dt.day, dt.year,
                    dt.month, days_in_month (dt.year, dt.month));
      return NULL;
    }
  kp_toml_type type = KP_TOML_DATE_LOCAL;
  int c = peek (p);
  if (c == 'T' || c == 't' || (c == ' ' && is_digit (peek_at (p, 1))))
    {
      p->i++;
      if (parse_time (p, &dt) < 0)
        return NULL;
      type = KP_TOML_DATETIME_LOCAL;
      c = peek (p);
      if (c == 'Z' || c == 'z')
        {
          p->i++;
          dt.offset_z = true;
          type = KP_TOML_DATETIME;
        }
      else if (c == '+' || c == '-')
        {
          kp_toml_pos offset_pos = here (p);
          int hours, minutes;
          p->i++;
          if (datetime_field (p, 2, ':', "offset hour", &hours) < 0
              || datetime_field (p, 2, 0, "offset minute", &minutes) < 0)
            return NULL;
          if (hours > 23 || minutes > 59)
            {
              toml_fail_at (p, offset_pos, "time zone offset %c%02d:%02d is out of range", c, hours,
                            minutes);
              return NULL;
            }
          dt.offset_minutes = (c == '-' ? -1 : 1) * (hours * 60 + minutes);
          type = KP_TOML_DATETIME;
        }
    }
  const char *what = type == KP_TOML_DATE_LOCAL       ? "date"
                     : type == KP_TOML_DATETIME_LOCAL ? "local date-time"
                                                      : "date-time";
  if (check_value_end (p, what) < 0)
    return NULL;
  toml_node *n = toml_node_new (type, NODE_SCALAR, pos, depth);
  n->value.u.datetime = dt;
  return n;
}

static toml_node *
parse_local_time (toml_parser *p, unsigned depth)
{
  kp_toml_pos pos = here (p);
  kp_toml_datetime dt = { 0 };
  if (parse_time (p, &dt) < 0 || check_value_end (p, "local time") < 0)
    return NULL;
  toml_node *n = toml_node_new (KP_TOML_TIME_LOCAL, NODE_SCALAR, pos, depth);
  n->value.u.datetime = dt;
  return n;
}

static toml_node *
parse_string_value (toml_parser *p, unsigned depth)
{
  kp_toml_pos pos = here (p);
  char quote = p->text[p->i];
  kp_buf *out = &p->scratch;
  kp_buf_truncate (out, 0);
  int r;
  if (peek_at (p, 1) == quote && peek_at (p, 2) == quote)
    r = parse_multiline_string (p, out, quote);
  else if (quote == '"')
    r = toml_parse_basic_string (p, out);
  else
    r = toml_parse_literal_string (p, out);
  if (r < 0)
    return NULL;
  toml_node *n = toml_node_new (KP_TOML_STRING, NODE_SCALAR, pos, depth);
  n->value.u.string.ptr = xmemdup (kp_buf_str (out), out->len + 1);
  n->value.u.string.len = out->len;
  return n;
}

/* Which kind of scalar is decided by the first characters: quotes, a sign, inf/nan,
 * four digits and '-' for a date, two digits and ':' for a time, else a number. */
toml_node *
toml_parse_scalar (toml_parser *p, unsigned depth)
{
  int c = peek (p);
  switch (c)
    {
    case '"':
    case '\'':
      return parse_string_value (p, depth);
    case '+':
    case '-':
      return parse_number (p, depth);
    case 'i':
    case 'n':
      if (p->len - p->i >= 3 && memcmp (p->text + p->i, c == 'i' ? "inf" : "nan", 3) == 0
          && (p->len - p->i == 3 || !is_bare_key_char ((unsigned char) p->text[p->i + 3])))
        return parse_number (p, depth);
      return parse_keyword (p, depth);
    default:
      break;
    }
  if (is_digit (c))
    {
      size_t k = 0;
      while (is_digit (peek_at (p, k)))
        k++;
      if (k == 4 && peek_at (p, k) == '-')
        return parse_date (p, depth);
      if (k == 2 && peek_at (p, k) == ':')
        return parse_local_time (p, depth);
      if (peek_at (p, k) == '-' || peek_at (p, k) == ':')
        {
          toml_fail_at (p, here (p), "invalid date or time: expected %s",
                        peek_at (p, k) == '-' ? "a 4-digit year (YYYY-MM-DD)"
                                              : "a 2-digit hour (HH:MM:SS)");
          return NULL;
        }
      return parse_number (p, depth);
    }
  if (is_bare_key_char (c))
    return parse_keyword (p, depth);
  toml_fail_at (p, here (p), "expected a value, found %s", describe_here (p).text);
  return NULL;
}
