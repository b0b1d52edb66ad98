/* pkgdriver.h — the package managers a build can drive (docs/build.md, "Package managers").
 *
 * One interface for apt/dpkg, dnf/rpm, zypper/rpm, pacman and apk: which one a base tree
 * has, the shell command that installs packages in it (run as root of the user namespace
 * in the build sandbox), the command that lists every installed package, the parser of
 * that list, and the paths a package layer must not keep (caches, logs, lists). apt is the
 * one exercised end to end; the others' command lines were run against local repositories
 * and their parsers are unit-tested on the listings captured there (tests/data/pkg/README.md;
 * apk's listing is written by hand). */
#ifndef KP_ENGINE_PKGDRIVER_H
#define KP_ENGINE_PKGDRIVER_H

#include "base/error.h"
#include "schema/lock.h"

#include <stdbool.h>
#include <stddef.h>

typedef enum kp_pkg_manager
{
  KP_PKG_APT,
  KP_PKG_DNF,
  KP_PKG_ZYPPER,
  KP_PKG_PACMAN,
  KP_PKG_APK,
  KP_PKG__COUNT,
} kp_pkg_manager;

typedef struct kp_pkg_driver
{
  kp_pkg_manager id;
  const char *name;                 /* "apt", "dnf", … */
  const char *const *probes;        /* paths (relative to the root) that reveal it */
  const char *list_command;         /* prints the installed closure on stdout */
  const char *const *clean_paths;   /* directories emptied / files removed from a layer */
} kp_pkg_driver;

/* The driver of a root filesystem (the first whose probe exists below `root`, checked
 * without following links out of it), or NULL. */
const kp_pkg_driver *kp_pkg_detect (const char *root);
const kp_pkg_driver *kp_pkg_driver_get (kp_pkg_manager id);

/* The shell command installing `packages` (names checked by the manifest schema) without
 * questions; refresh: update the package lists first (apt-get update, pacman -Sy, apk
 * update, dnf --refresh, zypper refresh: dnf and zypper would otherwise keep metadata they
 * do not hold as expired). A refresh chained to the install is one subshell, so that a
 * script under `set -e` stops when either fails. */
char *kp_pkg_install_command (const kp_pkg_driver *d, char *const *packages, bool refresh);

/* Parse the output of list_command into packages (name, version, architecture, archive
 * hash "" when the manager does not keep one), sorted by name then architecture. A line
 * that does not parse is an error naming it. */
int kp_pkg_parse_list (const kp_pkg_driver *d, const char *text, kp_lock_package **out,
                       size_t *n, kp_error **err);
void kp_pkg_list_free (kp_lock_package *pkgs, size_t n);

#endif
