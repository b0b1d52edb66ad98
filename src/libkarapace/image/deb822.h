/* deb822.h — Debian control data: the paragraphs of Release and Packages files, and
 * Debian version ordering (the first pieces of the mirror bootstrap, docs/images.md).
 *
 * A file is a sequence of paragraphs separated by blank lines; a paragraph is fields
 * "Name: value", a value continuing on lines that start with a space or a tab. Field names
 * compare case-insensitively. Comment lines ('#') are skipped. Pure parsing: the callers
 * check signatures and hashes first. */
#ifndef KP_IMAGE_DEB822_H
#define KP_IMAGE_DEB822_H

#include "base/error.h"

#include <stddef.h>
#include <stdint.h>

typedef struct kp_deb822_field
{
  char *name;
  char *value; /* continuation lines joined with '\n', the leading space of each removed */
} kp_deb822_field;

typedef struct kp_deb822_paragraph
{
  kp_deb822_field *fields;
  size_t n_fields;
  int line; /* 1-based line of its first field */
} kp_deb822_paragraph;

typedef struct kp_deb822
{
  kp_deb822_paragraph *paragraphs;
  size_t n;
} kp_deb822;

/* Parse `text`. `what` names it in errors ("Packages of bookworm/main"), which give the
 * line: a line that is neither a field, a continuation nor blank; a continuation with no
 * field before it; a field given twice in one paragraph. */
int kp_deb822_parse (const char *text, size_t len, const char *what, kp_deb822 *out,
                     kp_error **err);
void kp_deb822_clear (kp_deb822 *d);

/* The value of a field, or NULL. */
const char *kp_deb822_get (const kp_deb822_paragraph *p, const char *name);

/* A file listed in a Release file's SHA256 field. */
typedef struct kp_release_file
{
  char *path;   /* "main/binary-amd64/Packages.xz" */
  char sha256[65];
  uint64_t size;
} kp_release_file;

typedef struct kp_release
{
  char *suite, *codename, *date; /* as written */
  int64_t date_epoch;            /* Date as seconds since the epoch, or -1 */
  char **architectures;          /* NULL-terminated */
  char **components;
  kp_release_file *files;
  size_t n_files;
} kp_release;

/* Parse a (verified) Release text: its one paragraph, the SHA256 list (a Release without
 * one is refused: MD5 and SHA1 alone are not trusted), the date. */
int kp_release_parse (const char *text, size_t len, kp_release *out, kp_error **err);
const kp_release_file *kp_release_find (const kp_release *r, const char *path);
void kp_release_clear (kp_release *r);

/* Compare two Debian versions as dpkg does ([epoch:]upstream[-revision], '~' sorting
 * before everything, even the end). < 0, 0, > 0. */
int kp_deb_version_compare (const char *a, const char *b);

#endif
