/* systemd-scope.c — a delegated scope from the user's systemd manager (systemd-scope.h),
 * through sd-bus.
 *
 * libsystemd is opened with dlopen(3) when a scope is needed, not linked: it brings
 * libgcrypt, libcap and libgpg-error along, whose loading every start of karapace would
 * pay for a path few runs take. Without libsystemd's headers at build time, or without
 * the library at run time, the request fails and says so. */
#include "systemd-scope.h"

#include "base/util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef KP_HAVE_SYSTEMD
#include <dlfcn.h>
#include <systemd/sd-bus.h>
#endif

#define KP_SCOPE_TIMEOUT_USEC (15u * 1000000u)

char *
kp_systemd_user_bus (void)
{
  const char *address = getenv ("DBUS_SESSION_BUS_ADDRESS");
  if (address && address[0])
    return xstrdup (address);
  const char *runtime = getenv ("XDG_RUNTIME_DIR");
  if (runtime == NULL || runtime[0] != '/')
    return NULL;
  kp_cleanup_free char *socket = xasprintf ("%s/bus", runtime);
  if (access (socket, F_OK) < 0)
    return NULL;
  return xasprintf ("unix:path=%s", socket);
}

#ifdef KP_HAVE_SYSTEMD

/* The sd-bus functions we call, resolved from libsystemd.so.0. */
#define SD_FUNCTIONS(X)                                                                      \
  X (sd_bus_new)                                                                              \
  X (sd_bus_set_address)                                                                      \
  X (sd_bus_set_bus_client)                                                                   \
  X (sd_bus_start)                                                                            \
  X (sd_bus_match_signal)                                                                     \
  X (sd_bus_call_method)                                                                      \
  X (sd_bus_message_new_method_call)                                                          \
  X (sd_bus_message_append)                                                                   \
  X (sd_bus_message_open_container)                                                           \
  X (sd_bus_message_close_container)                                                          \
  X (sd_bus_message_read)                                                                     \
  X (sd_bus_call)                                                                             \
  X (sd_bus_process)                                                                          \
  X (sd_bus_wait)                                                                             \
  X (sd_bus_error_is_set)                                                                     \
  X (sd_bus_error_free)                                                                       \
  X (sd_bus_message_unref)                                                                    \
  X (sd_bus_slot_unref)                                                                       \
  X (sd_bus_flush_close_unref)

static struct
{
#define SD_FIELD(name) __typeof__ (name) *name;
  SD_FUNCTIONS (SD_FIELD)
#undef SD_FIELD
} sd;

static int
sd_load (kp_error **err)
{
  static void *lib;
  if (lib != NULL)
    return 0;
  void *handle = dlopen ("libsystemd.so.0", RTLD_NOW | RTLD_LOCAL);
  if (handle == NULL)
    {
      kp_error_set (err, KP_EXIT_RUNTIME, "cannot load libsystemd to talk to systemd: %s",
                    dlerror ());
      kp_error_hint (err, "install libsystemd0");
      return -1;
    }
#define SD_RESOLVE(name)                                                                     \
  if ((sd.name = (__typeof__ (name) *) dlsym (handle, #name)) == NULL)                        \
    {                                                                                         \
      kp_error_set (err, KP_EXIT_RUNTIME, "libsystemd lacks %s", #name);                    \
      dlclose (handle);                                                                       \
      return -1;                                                                              \
    }
  SD_FUNCTIONS (SD_RESOLVE)
#undef SD_RESOLVE
  lib = handle;
  return 0;
}

typedef struct job_wait
{
  const char *unit;
  bool done;
  char *result; /* "done", "failed", "timeout", ... */
} job_wait;

static int
on_job_removed (sd_bus_message *m, void *userdata, sd_bus_error *error)
{
  (void) error;
  job_wait *w = userdata;
  uint32_t id;
  const char *path, *unit, *result;
  if (sd.sd_bus_message_read (m, "uoss", &id, &path, &unit, &result) < 0)
    return 0;
  if (strcmp (unit, w->unit) == 0 && !w->done)
    {
      w->done = true;
      w->result = xstrdup (result);
    }
  return 0;
}

static int
scope_error (kp_error **err, int r, const sd_bus_error *e, const char *what, const char *unit)
{
  if (e && sd.sd_bus_error_is_set (e))
    kp_error_set (err, KP_EXIT_RUNTIME, "%s %s: %s", what, unit, e->message ? e->message : e->name);
  else
    kp_error_errno (err, -r, "%s %s", what, unit);
  kp_error_set_status (err, KP_EXIT_RUNTIME);
  return -1;
}

int
kp_systemd_delegated_scope (const char *bus_address, const char *unit, kp_error **err)
{
  sd_bus *bus = NULL;
  sd_bus_slot *slot = NULL;
  sd_bus_message *m = NULL, *reply = NULL;
  sd_bus_error e = SD_BUS_ERROR_NULL;
  job_wait w = { .unit = unit };
  int ret = -1;
  if (sd_load (err) < 0)
    return -1;
  int r = sd.sd_bus_new (&bus);
  if (r >= 0)
    r = sd.sd_bus_set_address (bus, bus_address);
  if (r >= 0)
    r = sd.sd_bus_set_bus_client (bus, 1);
  if (r >= 0)
    r = sd.sd_bus_start (bus);
  if (r < 0)
    {
      kp_error_errno (err, -r, "connect to your systemd user manager at %s", bus_address);
      kp_error_set_status (err, KP_EXIT_RUNTIME);
      goto out;
    }
  r = sd.sd_bus_match_signal (bus, &slot, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                           "org.freedesktop.systemd1.Manager", "JobRemoved", on_job_removed, &w);
  if (r < 0)
    {
      scope_error (err, r, NULL, "watch the job of", unit);
      goto out;
    }
  /* The manager sends job signals to subscribers only; an error here is not fatal (a
   * manager that always sends them refuses nothing). */
  sd.sd_bus_call_method (bus, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                      "org.freedesktop.systemd1.Manager", "Subscribe", NULL, NULL, "");

  r = sd.sd_bus_message_new_method_call (bus, &m, "org.freedesktop.systemd1",
                                      "/org/freedesktop/systemd1",
                                      "org.freedesktop.systemd1.Manager", "StartTransientUnit");
  if (r >= 0)
    r = sd.sd_bus_message_append (m, "ss", unit, "fail");
  if (r >= 0)
    r = sd.sd_bus_message_open_container (m, 'a', "(sv)");
  if (r >= 0)
    r = sd.sd_bus_message_append (m, "(sv)(sv)(sv)(sv)", "Description", "s",
                               "karapace sandbox (its runs' cgroups live below)", "PIDs", "au",
                               1, (uint32_t) getpid (), "Delegate", "b", 1, "CollectMode",
                               "s", "inactive-or-failed");
  if (r >= 0)
    r = sd.sd_bus_message_close_container (m);
  if (r >= 0)
    r = sd.sd_bus_message_append (m, "a(sa(sv))", 0);
  if (r < 0)
    {
      scope_error (err, r, NULL, "build the request for", unit);
      goto out;
    }
  r = sd.sd_bus_call (bus, m, KP_SCOPE_TIMEOUT_USEC, &e, &reply);
  if (r < 0)
    {
      scope_error (err, r, &e, "your systemd user manager refused the scope", unit);
      goto out;
    }
  struct timespec start;
  clock_gettime (CLOCK_MONOTONIC, &start);
  while (!w.done)
    {
      r = sd.sd_bus_process (bus, NULL);
      if (r < 0)
        {
          scope_error (err, r, NULL, "wait for the scope", unit);
          goto out;
        }
      if (r > 0)
        continue;
      struct timespec now;
      clock_gettime (CLOCK_MONOTONIC, &now);
      uint64_t spent = (uint64_t) (now.tv_sec - start.tv_sec) * 1000000u
                       + (uint64_t) ((now.tv_nsec - start.tv_nsec) / 1000);
      if (spent >= KP_SCOPE_TIMEOUT_USEC)
        {
          kp_error_set (err, KP_EXIT_RUNTIME,
                        "your systemd user manager did not finish starting %s within 15 s",
                        unit);
          goto out;
        }
      r = sd.sd_bus_wait (bus, KP_SCOPE_TIMEOUT_USEC - spent);
      if (r < 0 && r != -EINTR)
        {
          scope_error (err, r, NULL, "wait for the scope", unit);
          goto out;
        }
    }
  if (strcmp (w.result, "done") != 0)
    {
      kp_error_set (err, KP_EXIT_RUNTIME, "your systemd user manager could not start %s: %s",
                    unit, w.result);
      goto out;
    }
  ret = 0;
out:
  free (w.result);
  sd.sd_bus_error_free (&e);
  sd.sd_bus_message_unref (reply);
  sd.sd_bus_message_unref (m);
  sd.sd_bus_slot_unref (slot);
  sd.sd_bus_flush_close_unref (bus);
  return ret;
}

#else

int
kp_systemd_delegated_scope (const char *bus_address, const char *unit, kp_error **err)
{
  (void) bus_address;
  kp_error_set (err, KP_EXIT_RUNTIME,
                "cannot ask systemd for the scope %s: karapace was built without libsystemd",
                unit);
  kp_error_hint (err, "rebuild with libsystemd-dev installed");
  return -1;
}

#endif
