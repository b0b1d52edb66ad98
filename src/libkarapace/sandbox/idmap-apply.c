/* idmap-apply.c — writing a user namespace's id maps from outside it.
 *
 * With subordinate ranges the maps go through the setuid newuidmap and newgidmap (the
 * kernel lets an unprivileged writer map only its own id); the two run side by side, as
 * they touch different files. Without ranges we write the one line ourselves, after
 * denying setgroups(2) in the namespace as the kernel requires for the gid map. */
#include "userns.h"

#include "base/fs.h"
#include "base/util.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* What newuidmap/newgidmap may print; more is cut. */
#define KP_HELPER_OUTPUT_MAX 4096

static char *
trim_output (char *text)
{
  size_t len = strlen (text);
  while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' ' || text[len - 1] == '\r'))
    text[--len] = '\0';
  for (char *p = text; *p; p++)
    if (*p == '\n')
      *p = ' ';
  if (len > KP_HELPER_OUTPUT_MAX)
    text[KP_HELPER_OUTPUT_MAX] = '\0';
  return text;
}

/* One helper run: its name ("newuidmap"), pid and output pipe. */
typedef __typeof__ (((kp_idmap_pending *) 0)->helper[0]) id_helper;

/* Start `helper PID INSIDE OUTSIDE COUNT ...`, never through a shell, its output captured
 * for the error message. */
static int
id_helper_start (id_helper *h, const char *name, pid_t target, const kp_idmap_range *ranges,
                 size_t n, kp_error **err)
{
  h->name = name;
  h->pid = -1;
  h->out = -1;
  kp_cleanup_free char *path = kp_find_program (name);
  if (path == NULL)
    {
      kp_error_set (err, KP_EXIT_RUNTIME,
                    "%s not found, but it is needed to map your subordinate ids", name);
      kp_error_hint (err, "install it: apt-get install uidmap");
      return -1;
    }
  char *argv[2 + 3 * KP_IDMAP_MAX_RANGES + 1];
  size_t argc = 0;
  argv[argc++] = xstrdup (path);
  argv[argc++] = xasprintf ("%d", (int) target);
  for (size_t i = 0; i < n && i < KP_IDMAP_MAX_RANGES; i++)
    {
      argv[argc++] = xasprintf ("%u", ranges[i].inside);
      argv[argc++] = xasprintf ("%u", ranges[i].outside);
      argv[argc++] = xasprintf ("%u", ranges[i].count);
    }
  argv[argc] = NULL;

  int pipe_fds[2];
  if (pipe2 (pipe_fds, O_CLOEXEC) < 0)
    {
      int e = errno;
      for (size_t i = 0; i < argc; i++)
        free (argv[i]);
      return kp_error_errno (err, e, "create a pipe for %s", name);
    }
  /* posix_spawn: a vfork-like start that copies no page tables, which a fork of this
   * process (and the copy-on-write faults after it) would cost on every sandbox start. */
  pid_t child = -1;
  posix_spawn_file_actions_t fa;
  int e = posix_spawn_file_actions_init (&fa);
  if (e == 0)
    {
      e = posix_spawn_file_actions_addopen (&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
      if (e == 0)
        e = posix_spawn_file_actions_adddup2 (&fa, pipe_fds[1], STDOUT_FILENO);
      if (e == 0)
        e = posix_spawn_file_actions_adddup2 (&fa, pipe_fds[1], STDERR_FILENO);
      if (e == 0)
        e = posix_spawn (&child, argv[0], &fa, NULL, argv, environ);
      posix_spawn_file_actions_destroy (&fa);
    }
  for (size_t i = 0; i < argc; i++)
    free (argv[i]);
  close (pipe_fds[1]);
  if (e != 0)
    {
      close (pipe_fds[0]);
      return kp_error_errno (err, e, "run %s", name);
    }
  h->pid = child;
  h->out = pipe_fds[0];
  return 0;
}

/* Wait for a started helper; reports its failure with what it said. */
static int
id_helper_finish (id_helper *h, kp_error **err)
{
  if (h->pid < 0)
    return 0;
  kp_cleanup_error kp_error *read_err = NULL;
  kp_cleanup_free char *output = kp_fd_read_all (h->out, 1 << 20, NULL, &read_err);
  kp_closep (&h->out);
  int status = kp_wait_child (h->pid, 0);
  h->pid = -1;
  if (status >= 0 && WIFEXITED (status) && WEXITSTATUS (status) == 0)
    return 0;
  if (err == NULL || *err != NULL)
    return -1; /* the other helper's failure is reported already */
  const char *said = output ? trim_output (output) : "";
  if (status >= 0 && WIFEXITED (status))
    kp_error_set (err, KP_EXIT_RUNTIME, "%s exited with status %d%s%s", h->name,
                  WEXITSTATUS (status), said[0] ? ": " : "", said);
  else if (status >= 0 && WIFSIGNALED (status))
    kp_error_set (err, KP_EXIT_RUNTIME, "%s was killed by signal %d", h->name,
                  WTERMSIG (status));
  else
    kp_error_set (err, KP_EXIT_RUNTIME, "%s: lost track of the helper process", h->name);
  kp_error_hint (err,
                 "check that /etc/subuid and /etc/subgid give you ranges no other user has "
                 "and that %s is setuid root ('karapace doctor' checks both)",
                 h->name);
  return -1;
}

static int
write_proc_file (pid_t pid, const char *name, const char *text, kp_error **err)
{
  kp_cleanup_free char *path = xasprintf ("/proc/%d/%s", (int) pid, name);
  kp_cleanup_close int fd = open (path, O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return kp_error_errno (err, errno, "open %s", path);
  int r = kp_write_all (fd, text, strlen (text));
  if (r < 0)
    {
      kp_cleanup_free char *shown = trim_output (xstrdup (text));
      return kp_error_errno (err, -r, "write '%s' to %s", shown, path);
    }
  return 0;
}

void
kp_idmap_single (kp_idmap *map, uid_t uid, gid_t gid, uint32_t inside_uid, uint32_t inside_gid)
{
  memset (map, 0, sizeof *map);
  map->uid[0] = (kp_idmap_range) { inside_uid, (uint32_t) uid, 1 };
  map->gid[0] = (kp_idmap_range) { inside_gid, (uint32_t) gid, 1 };
  map->n_uid = map->n_gid = 1;
  map->self_uid = inside_uid;
  map->self_gid = inside_gid;
}

int
kp_idmap_apply_start (const kp_idmap *map, pid_t pid, kp_idmap_pending *pending,
                      kp_error **err)
{
  for (size_t i = 0; i < 2; i++)
    pending->helper[i] = (id_helper) { NULL, -1, -1 };
  if (map->full)
    {
      if (id_helper_start (&pending->helper[0], "newuidmap", pid, map->uid, map->n_uid, err) < 0)
        return kp_error_prefix (err, "map subordinate ids");
      if (id_helper_start (&pending->helper[1], "newgidmap", pid, map->gid, map->n_gid, err) < 0)
        {
          kp_idmap_apply_finish (pending, NULL);
          return kp_error_prefix (err, "map subordinate ids");
        }
      return 0;
    }
  kp_cleanup_free char *uid_line
      = xasprintf ("%u %u 1\n", map->uid[0].inside, map->uid[0].outside);
  kp_cleanup_free char *gid_line
      = xasprintf ("%u %u 1\n", map->gid[0].inside, map->gid[0].outside);
  if (write_proc_file (pid, "setgroups", "deny", err) < 0
      || write_proc_file (pid, "uid_map", uid_line, err) < 0
      || write_proc_file (pid, "gid_map", gid_line, err) < 0)
    return kp_error_prefix (err, "map your own id");
  return 0;
}

int
kp_idmap_apply_finish (kp_idmap_pending *pending, kp_error **err)
{
  int r = 0;
  for (size_t i = 0; i < 2; i++)
    if (id_helper_finish (&pending->helper[i], err) < 0)
      r = -1;
  if (r < 0 && err && *err)
    kp_error_prefix (err, "map subordinate ids");
  return r;
}

int
kp_idmap_apply (const kp_idmap *map, pid_t pid, kp_error **err)
{
  kp_idmap_pending pending;
  if (kp_idmap_apply_start (map, pid, &pending, err) < 0)
    return -1;
  return kp_idmap_apply_finish (&pending, err);
}
