/* systemd-scope.h — a delegated cgroup v2 scope from the user's systemd manager.
 *
 * On a systemd host the caller's own cgroup (its terminal's scope) is usually not
 * delegated, so no limit can be set below it. The user manager can make a transient scope
 * for the caller with Delegate=yes (StartTransientUnit over D-Bus, as `systemd-run --user
 * --scope -p Delegate=yes` does): the caller then owns that cgroup, and cgroup.c creates
 * the run's cgroup below it the way it does in any delegated subtree. */
#ifndef KP_SANDBOX_SYSTEMD_SCOPE_H
#define KP_SANDBOX_SYSTEMD_SCOPE_H

#include "base/error.h"

/* The user bus address: $DBUS_SESSION_BUS_ADDRESS, else unix:path=$XDG_RUNTIME_DIR/bus
 * when that socket exists; NULL when neither. Newly allocated. */
char *kp_systemd_user_bus (void);

/* Ask the manager on bus_address to start the transient scope `unit` (ending in ".scope")
 * holding the calling process, delegated to it, and wait (up to 15 s) for the job to
 * finish. Fails (KP_EXIT_RUNTIME) with the manager's answer or the job's result. */
int kp_systemd_delegated_scope (const char *bus_address, const char *unit, kp_error **err);

#endif
