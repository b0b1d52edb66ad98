/* toml-private.h — what the parts of the TOML parser share (toml.c, toml-scalar.c).
 *
 * Not an interface: only the parser's own files include it. toml.c owns the document
 * structure (keys, tables, arrays, redefinition rules) and positions; toml-scalar.c reads
 * strings, numbers, booleans and dates. */
#ifndef KP_SCHEMA_TOML_PRIVATE_H
#define KP_SCHEMA_TOML_PRIVATE_H

#include "toml.h"

#include <locale.h>

/* Arrays and tables nest at most this deep, counting the root table as level 0. Deeper
 * documents are refused so that neither the parser nor any consumer walking the tree
 * recursively can be driven out of stack. */
#define TOML_MAX_DEPTH 128

/* TOML's rules against redefinition depend on how a table came to be: a [header] may
 * define a table that an earlier header only implied, dotted keys may only extend
 * tables they created themselves under the same header, and inline tables and arrays
 * written as values are closed once their closing bracket is read. */
enum node_kind
{
  NODE_SCALAR,
  NODE_ARRAY,           /* [ ... ] written as a value */
  NODE_ARRAY_OF_TABLES, /* grown by [[header]] */
  NODE_TABLE_IMPLICIT,  /* parent named by a [header], not defined itself (yet) */
  NODE_TABLE_HEADER,    /* the root, a [header] table, or an element of [[header]] */
  NODE_TABLE_DOTTED,    /* created by a dotted key */
  NODE_TABLE_INLINE,    /* { ... } */
};

/* Every value is allocated as a node: the public part first, so that a kp_toml_value
 * pointer is the node pointer and kp_toml_free() can release either with free(). */
typedef struct toml_node
{
  kp_toml_value value;
  unsigned char kind;
  unsigned short depth;
  unsigned int section; /* dotted tables: the header (or inline table) they belong to */
  size_t capacity;      /* of value.u.array.items or value.u.table.items */
} toml_node;

/* (table, key) -> position in the table's items, so that tables with many keys stay
 * linear to build. One map for the whole document. */
typedef struct index_slot
{
  const toml_node *table; /* NULL: empty slot */
  size_t item;
  uint64_t hash;
} index_slot;

typedef struct key_index
{
  index_slot *slots;
  size_t capacity; /* power of two */
  size_t used;
} key_index;

/* The state of one parse. Sections number the headers and inline tables in document
 * order; dotted keys compare them to know which tables they may still extend. */
typedef struct toml_parser
{
  const char *text;
  size_t len;
  size_t i;
  size_t start; /* 3 when the document begins with a byte order mark */
  const char *filename;
  kp_error **err;

  int line; /* line of text[i] */
  size_t line_start;
  size_t col_index; /* column cache: text[col_index] is at column col */
  int col;

  unsigned int sections; /* last section number handed out */
  toml_node *root;
  toml_node *current; /* table receiving the key/value pairs of the current section */
  key_index index;
  locale_t c_locale; /* for strtod_l; created on the first float */
  kp_buf scratch;
} toml_parser;

static inline bool
is_char_start (unsigned char c)
{
  return (c & 0xC0) != 0x80;
}

static inline int
peek_at (const toml_parser *p, size_t k)
{
  return p->i + k < p->len ? (unsigned char) p->text[p->i + k] : -1;
}

static inline int
peek (const toml_parser *p)
{
  return peek_at (p, 0);
}

static inline bool
is_digit (int c)
{
  return c >= '0' && c <= '9';
}

static inline bool
is_bare_key_char (int c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit (c) || c == '_' || c == '-';
}

static inline int
hex_value (int c)
{
  if (is_digit (c))
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* Carriage returns were checked up front: each one starts a CRLF. */
static inline bool
at_newline (const toml_parser *p)
{
  int c = peek (p);
  return c == '\n' || c == '\r';
}

/* How a character reads in a message: 'x', a newline, end of file, U+0007. */
typedef struct char_name
{
  char text[48];
} char_name;

/* Position of a byte of the input; fast for the current line. */
kp_toml_pos toml_pos_at (toml_parser *p, size_t idx);
int toml_fail_at (toml_parser *p, kp_toml_pos pos, const char *fmt, ...) KP_PRINTF (3, 4);
char_name toml_describe_at (const toml_parser *p, size_t idx);
/* At "\n" or "\r\n": step over it and start the next line. */
void toml_skip_newline (toml_parser *p);
toml_node *toml_node_new (kp_toml_type type, enum node_kind kind, kp_toml_pos pos, unsigned depth);

static inline kp_toml_pos
here (toml_parser *p)
{
  return toml_pos_at (p, p->i);
}

static inline char_name
describe_here (const toml_parser *p)
{
  return toml_describe_at (p, p->i);
}

/* toml-scalar.c: a string, number, boolean or date-time starting at p->i. */
toml_node *toml_parse_scalar (toml_parser *p, unsigned depth);
/* Single-line basic ("...") and literal ('...') strings, for quoted keys. */
int toml_parse_basic_string (toml_parser *p, kp_buf *out);
int toml_parse_literal_string (toml_parser *p, kp_buf *out);

#endif
