/* templates.h — the manifests `karapace new` writes. Each renders to a valid, commented
 * karapace.toml; examples/NAME.toml in the source tree is the rendering for "example". */
#ifndef KP_SCHEMA_TEMPLATES_H
#define KP_SCHEMA_TEMPLATES_H

#include "base/util.h"

typedef struct kp_template
{
  const char *name;
  const char *summary;
  const char *body; /* TOML with @NAME@ where the environment's name goes */
} kp_template;

/* All templates, terminated by an entry whose name is NULL. */
const kp_template *kp_templates (void);
const kp_template *kp_template_find (const char *name);
/* The manifest text for an environment called `env_name`. */
char *kp_template_render (const kp_template *t, const char *env_name);
/* "minimal, debian, dev, ..." */
char *kp_template_names (void);

#endif
