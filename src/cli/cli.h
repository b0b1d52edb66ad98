/* cli.h — the command-line front end: shared state, option parsing and output.
 *
 * Each command lives in its own cmd-NAME.c: it parses its options with kp_cli_parse()
 * (which also handles the options every command accepts) and calls one library function.
 * Output rules: data on stdout (text, or JSON with --json), messages and errors on
 * stderr; colour only on a terminal and never with NO_COLOR; --quiet silences all but
 * errors and requested data. */
#ifndef KP_CLI_H
#define KP_CLI_H

#include "base/error.h"
#include "base/json.h"

#include <getopt.h>

typedef struct kp_cli
{
  const char *prog;
  const char *store; /* --store or $KARAPACE_STORE; NULL for the default location */
  bool json;
  int verbose;
  bool quiet;
  bool color_out; /* colour on stdout */
  bool color_err; /* colour on stderr */
} kp_cli;

typedef struct kp_cli_command
{
  const char *name;
  const char *args;    /* synopsis after the name: "[MANIFEST]" */
  const char *summary; /* one line */
  const char *help;    /* the command's own options and notes, or NULL */
  int (*run) (kp_cli *cli, const struct kp_cli_command *cmd, int argc, char **argv);
} kp_cli_command;

extern const kp_cli_command kp_cli_commands[];

/* Options every command accepts; spliced into each command's getopt table. */
#define KP_CLI_OPT_BASE 0x1000
enum
{
  KP_CLI_OPT_STORE = KP_CLI_OPT_BASE,
  KP_CLI_OPT_JSON,
  KP_CLI_OPT_COLOR,
  KP_CLI_OPT_NO_COLOR,
};
#define KP_CLI_COMMON_LONG_OPTIONS                                                            \
  { "help", no_argument, NULL, 'h' }, { "verbose", no_argument, NULL, 'v' },                \
      { "quiet", no_argument, NULL, 'q' }, { "json", no_argument, NULL, KP_CLI_OPT_JSON },    \
      { "store", required_argument, NULL, KP_CLI_OPT_STORE },                               \
      { "color", required_argument, NULL, KP_CLI_OPT_COLOR },                               \
      { "no-color", no_argument, NULL, KP_CLI_OPT_NO_COLOR }
#define KP_CLI_COMMON_SHORT_OPTIONS "hvq"
#define KP_CLI_COMMON_HELP                                                                    \
  "Common options:\n"                                                                         \
  "  -h, --help          show this help\n"                                                   \
  "      --json          print data as JSON\n"                                               \
  "  -v, --verbose       say more (repeat for more)\n"                                       \
  "  -q, --quiet         print only errors and requested data\n"                             \
  "      --store PATH    use the store at PATH (default $KARAPACE_STORE, else\n"             \
  "                      $XDG_DATA_HOME/karapace)\n"                                         \
  "      --color WHEN    auto, always or never (NO_COLOR=1 means never)\n"

/* Result of kp_cli_common_option() and kp_cli_parse(). */
enum
{
  KP_CLI_CONTINUE = -1000, /* keep going */
};

/* Handle an option of the common set. Returns KP_CLI_CONTINUE when handled, or an exit
 * status (0 after --help, KP_EXIT_USAGE for a bad value or an unknown option). */
int kp_cli_common_option (kp_cli *cli, const kp_cli_command *cmd, int c, const char *arg);
/* Parse argv for a command that has only the common options. `stop_at_operand` makes
 * options end at the first operand (for commands that run another command). Returns
 * KP_CLI_CONTINUE with optind at the first operand, or an exit status. */
int kp_cli_parse_common (kp_cli *cli, const kp_cli_command *cmd, int argc, char **argv,
                         bool stop_at_operand);
void kp_cli_print_command_help (const kp_cli *cli, const kp_cli_command *cmd, FILE *out);
/* A usage error: message, then "Try 'karapace CMD --help'". Returns KP_EXIT_USAGE. */
int kp_cli_usage_error (const kp_cli *cli, const kp_cli_command *cmd, const char *fmt, ...)
    KP_PRINTF (3, 4);
/* Print an error (with a source excerpt for file positions, and the hint) and free it;
 * returns its exit status. With --json the error is a JSON object on stderr. */
int kp_cli_fail (const kp_cli *cli, kp_error *err);
/* A message on stderr unless --quiet. */
void kp_cli_info (const kp_cli *cli, const char *fmt, ...) KP_PRINTF (2, 3);
void kp_cli_warn (const kp_cli *cli, const char *fmt, ...) KP_PRINTF (2, 3);
/* Print a JSON value on stdout (pretty on a terminal, compact otherwise). */
void kp_cli_print_json (const kp_cli *cli, const json_t *value);

/* ANSI styles, empty when colour is off for that stream. */
typedef enum
{
  KP_STYLE_BOLD,
  KP_STYLE_DIM,
  KP_STYLE_RED,
  KP_STYLE_GREEN,
  KP_STYLE_YELLOW,
  KP_STYLE_BLUE,
  KP_STYLE_RESET,
} kp_style;
const char *kp_cli_style (bool enabled, kp_style style);

/* A text table with aligned columns; cells may carry a style. */
typedef struct kp_table kp_table;
kp_table *kp_table_new (size_t n_columns, const char *const *headers);
void kp_table_add_row (kp_table *t, const char *const *cells, const kp_style *styles);
void kp_table_print (const kp_table *t, FILE *out, bool color);
void kp_table_free (kp_table *t);

/* "1.5 MiB": a byte count for people (caller frees). */
char *kp_cli_human_bytes (uint64_t n);
/* An on_wait callback for kp_store_open_options: says, unless --quiet, what the store's
 * lock waits for. user_data is the kp_cli. */
void kp_cli_store_wait (const char *message, void *user_data);

/* Display width of UTF-8 text (code points; no wide-character tables yet). */
size_t kp_cli_text_width (const char *s);

#endif
