/* json.h — canonical JSON on top of jansson.
 *
 * Canonical form (docs/identity.md): object keys sorted by byte value, no insignificant
 * whitespace, strings as UTF-8 with only '"', '\\' and control characters escaped, integers
 * in decimal; no floats. The same value always gives the same bytes. */
#ifndef KP_BASE_JSON_H
#define KP_BASE_JSON_H

#include "util.h"

#include <jansson.h>

/* Canonical text of any JSON value; never NULL. */
char *kp_json_canonical (const json_t *value);
/* Pretty text for people (sorted keys, two-space indent), newline-terminated. */
char *kp_json_pretty (const json_t *value);

json_t *kp_json_strv (char *const *v); /* array of strings; NULL v gives [] */

void kp_json_decrefp (json_t **j);
#define kp_cleanup_json __attribute__ ((cleanup (kp_json_decrefp)))

#endif
