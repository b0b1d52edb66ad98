/* output.c — errors, messages, colours, JSON and tables for the command line. */
#include "cli.h"

#include "base/buf.h"
#include "base/fs.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *
kp_cli_style (bool enabled, kp_style style)
{
  if (!enabled)
    return "";
  switch (style)
    {
    case KP_STYLE_BOLD:
      return "\033[1m";
    case KP_STYLE_DIM:
      return "\033[2m";
    case KP_STYLE_RED:
      return "\033[1;31m";
    case KP_STYLE_GREEN:
      return "\033[32m";
    case KP_STYLE_YELLOW:
      return "\033[33m";
    case KP_STYLE_BLUE:
      return "\033[34m";
    case KP_STYLE_RESET:
      return "\033[0m";
    }
  return "";
}

size_t
kp_cli_text_width (const char *s)
{
  size_t n = 0;
  for (const unsigned char *p = (const unsigned char *) s; *p; p++)
    if ((*p & 0xC0) != 0x80)
      n++;
  return n;
}

void
kp_cli_info (const kp_cli *cli, const char *fmt, ...)
{
  if (cli->quiet)
    return;
  va_list ap;
  va_start (ap, fmt);
  vfprintf (stderr, fmt, ap);
  va_end (ap);
  fputc ('\n', stderr);
}

void
kp_cli_warn (const kp_cli *cli, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  fprintf (stderr, "%s: %swarning:%s ", cli->prog, kp_cli_style (cli->color_err, KP_STYLE_YELLOW),
           kp_cli_style (cli->color_err, KP_STYLE_RESET));
  vfprintf (stderr, fmt, ap);
  va_end (ap);
  fputc ('\n', stderr);
}

void
kp_cli_print_json (const kp_cli *cli, const json_t *value)
{
  kp_cleanup_free char *text = isatty (STDOUT_FILENO) ? kp_json_pretty (value) : NULL;
  if (text == NULL)
    {
      char *compact = kp_json_canonical (value);
      text = xasprintf ("%s\n", compact);
      free (compact);
    }
  fputs (text, stdout);
}

/* Line `line` of a file, for showing where a manifest error is. */
static char *
source_line (const char *path, int line)
{
  size_t len;
  kp_cleanup_free char *text = kp_file_read (path, 16 * 1024 * 1024, &len, NULL);
  if (text == NULL || line < 1)
    return NULL;
  const char *p = text;
  for (int i = 1; i < line; i++)
    {
      p = memchr (p, '\n', len - (size_t) (p - text));
      if (p == NULL)
        return NULL;
      p++;
    }
  const char *end = memchr (p, '\n', len - (size_t) (p - text));
  size_t n = end ? (size_t) (end - p) : len - (size_t) (p - text);
  if (n > 0 && p[n - 1] == '\r')
    n--;
  /* Shown on a terminal: tabs become spaces, bytes that are not UTF-8 become U+FFFD. */
  kp_cleanup_buf kp_buf out = KP_BUF_INIT;
  for (size_t i = 0; i < n;)
    {
      unsigned char c = (unsigned char) p[i];
      size_t clen = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
      bool ok = clen > 0 && i + clen <= n;
      for (size_t k = 1; ok && k < clen; k++)
        ok = ((unsigned char) p[i + k] >> 6) == 2;
      if (!ok)
        {
          kp_buf_puts (&out, "\xEF\xBF\xBD");
          i++;
          continue;
        }
      if (c == '\t')
        kp_buf_putc (&out, ' ');
      else if (c < 0x20 || c == 0x7f)
        kp_buf_putc (&out, '?');
      else
        kp_buf_append (&out, p + i, clen);
      i += clen;
    }
  return kp_buf_steal (&out);
}

int
kp_cli_fail (const kp_cli *cli, kp_error *err)
{
  int status = err->status ? err->status : KP_EXIT_FAILURE;
  if (cli->json)
    {
      kp_cleanup_json json_t *j = json_pack ("{s:s,s:i}", "message", err->message, "status", status);
      if (err->file)
        json_object_set_new (j, "file", json_string (err->file));
      if (err->line > 0)
        {
          json_object_set_new (j, "line", json_integer (err->line));
          json_object_set_new (j, "column", json_integer (err->column));
        }
      if (err->hint)
        json_object_set_new (j, "hint", json_string (err->hint));
      if (err->errno_value)
        json_object_set_new (j, "errno", json_integer (err->errno_value));
      kp_cleanup_json json_t *wrapped = json_pack ("{s:O}", "error", j);
      kp_cleanup_free char *text = kp_json_canonical (wrapped);
      fprintf (stderr, "%s\n", text);
      kp_error_free (err);
      return status;
    }
  bool c = cli->color_err;
  kp_cleanup_free char *desc = kp_error_describe (err);
  fprintf (stderr, "%s: %serror:%s %s%s%s\n", cli->prog, kp_cli_style (c, KP_STYLE_RED),
           kp_cli_style (c, KP_STYLE_RESET), kp_cli_style (c, KP_STYLE_BOLD), desc,
           kp_cli_style (c, KP_STYLE_RESET));
  if (err->file && err->line > 0)
    {
      kp_cleanup_free char *text = source_line (err->file, err->line);
      if (text)
        {
          /* Column counts characters: turn it into a display offset. */
          int col = err->column > 0 ? err->column : 1;
          fprintf (stderr, "%s%5d |%s %s\n", kp_cli_style (c, KP_STYLE_BLUE), err->line,
                   kp_cli_style (c, KP_STYLE_RESET), text);
          fprintf (stderr, "%s      |%s %*s%s^%s\n", kp_cli_style (c, KP_STYLE_BLUE),
                   kp_cli_style (c, KP_STYLE_RESET), col - 1, "",
                   kp_cli_style (c, KP_STYLE_RED), kp_cli_style (c, KP_STYLE_RESET));
        }
    }
  if (err->hint)
    fprintf (stderr, "  %shint:%s %s\n", kp_cli_style (c, KP_STYLE_GREEN),
             kp_cli_style (c, KP_STYLE_RESET), err->hint);
  kp_error_free (err);
  return status;
}

/* ---- tables -------------------------------------------------------------------------- */

struct kp_table
{
  size_t n_columns;
  char **headers;
  char **cells; /* row-major */
  kp_style *styles;
  size_t n_rows;
};

kp_table *
kp_table_new (size_t n_columns, const char *const *headers)
{
  kp_table *t = xcalloc (1, sizeof *t);
  t->n_columns = n_columns;
  t->headers = xcalloc (n_columns, sizeof (char *));
  for (size_t i = 0; i < n_columns; i++)
    t->headers[i] = xstrdup (headers[i]);
  return t;
}

void
kp_table_add_row (kp_table *t, const char *const *cells, const kp_style *styles)
{
  size_t base = t->n_rows * t->n_columns;
  t->cells = xreallocarray (t->cells, base + t->n_columns, sizeof (char *));
  t->styles = xreallocarray (t->styles, base + t->n_columns, sizeof (kp_style));
  for (size_t i = 0; i < t->n_columns; i++)
    {
      t->cells[base + i] = xstrdup (cells[i] ? cells[i] : "");
      t->styles[base + i] = styles ? styles[i] : KP_STYLE_RESET;
    }
  t->n_rows++;
}

void
kp_table_print (const kp_table *t, FILE *out, bool color)
{
  kp_cleanup_free size_t *width = xcalloc (t->n_columns, sizeof (size_t));
  for (size_t i = 0; i < t->n_columns; i++)
    width[i] = kp_cli_text_width (t->headers[i]);
  for (size_t r = 0; r < t->n_rows; r++)
    for (size_t i = 0; i < t->n_columns; i++)
      {
        size_t w = kp_cli_text_width (t->cells[r * t->n_columns + i]);
        if (w > width[i])
          width[i] = w;
      }
  for (size_t i = 0; i < t->n_columns; i++)
    {
      bool last = i + 1 == t->n_columns;
      fprintf (out, "%s%s%s", kp_cli_style (color, KP_STYLE_BOLD), t->headers[i],
               kp_cli_style (color, KP_STYLE_RESET));
      if (!last)
        fprintf (out, "%*s", (int) (width[i] - kp_cli_text_width (t->headers[i]) + 2), "");
    }
  fputc ('\n', out);
  for (size_t r = 0; r < t->n_rows; r++)
    {
      for (size_t i = 0; i < t->n_columns; i++)
        {
          const char *cell = t->cells[r * t->n_columns + i];
          kp_style st = t->styles[r * t->n_columns + i];
          bool last = i + 1 == t->n_columns;
          fprintf (out, "%s%s%s", st == KP_STYLE_RESET ? "" : kp_cli_style (color, st), cell,
                   st == KP_STYLE_RESET ? "" : kp_cli_style (color, KP_STYLE_RESET));
          if (!last)
            fprintf (out, "%*s", (int) (width[i] - kp_cli_text_width (cell) + 2), "");
        }
      fputc ('\n', out);
    }
}

void
kp_table_free (kp_table *t)
{
  if (t == NULL)
    return;
  for (size_t i = 0; i < t->n_columns; i++)
    free (t->headers[i]);
  for (size_t i = 0; i < t->n_rows * t->n_columns; i++)
    free (t->cells[i]);
  free (t->headers);
  free (t->cells);
  free (t->styles);
  free (t);
}

char *
kp_cli_human_bytes (uint64_t n)
{
  static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
  double v = (double) n;
  size_t u = 0;
  while (v >= 1024 && u + 1 < KP_N_ELEMENTS (units))
    v /= 1024, u++;
  return u == 0 ? xasprintf ("%llu B", (unsigned long long) n) : xasprintf ("%.1f %s", v, units[u]);
}

void
kp_cli_store_wait (const char *message, void *user_data)
{
  kp_cli_info (user_data, "%s", message);
}
