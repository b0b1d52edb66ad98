/* commands.h — one function per command, each in cmd-NAME.c. */
#ifndef KP_CLI_COMMANDS_H
#define KP_CLI_COMMANDS_H

#include "cli.h"

#define KP_CMD_DECLARE(name)                                                                 \
  int kp_cmd_##name (kp_cli *cli, const kp_cli_command *cmd, int argc, char **argv)

KP_CMD_DECLARE (new);
KP_CMD_DECLARE (validate);
KP_CMD_DECLARE (digest);
KP_CMD_DECLARE (doctor);
KP_CMD_DECLARE (unshare);
KP_CMD_DECLARE (run);
KP_CMD_DECLARE (gc);
KP_CMD_DECLARE (verify_store);
KP_CMD_DECLARE (migrate);
KP_CMD_DECLARE (completions);
KP_CMD_DECLARE (version);
KP_CMD_DECLARE (images);
KP_CMD_DECLARE (pin);
KP_CMD_DECLARE (build);
KP_CMD_DECLARE (exec);
KP_CMD_DECLARE (list);
KP_CMD_DECLARE (destroy);
KP_CMD_DECLARE (enter);
KP_CMD_DECLARE (start);
KP_CMD_DECLARE (stop);
KP_CMD_DECLARE (freeze);
KP_CMD_DECLARE (unfreeze);
KP_CMD_DECLARE (archive);
KP_CMD_DECLARE (unarchive);
KP_CMD_DECLARE (rename);
KP_CMD_DECLARE (inspect);
KP_CMD_DECLARE (rebuild);
KP_CMD_DECLARE (verify);

/* What a manifest asks of the sandbox an environment runs in, shared by exec/enter
 * (cmd-env.c) and run MANIFEST (cmd-run.c). */
#include "policy/policy.h"
#include "sandbox/runtime.h"
#include "schema/manifest.h"
kp_net_mode kp_cli_manifest_network (const kp_manifest *m);
kp_cgroup_limits kp_cli_manifest_limits (const kp_manifest *m);
/* [mounts] as binds: host paths resolved beside the manifest and checked against the
 * policy's allow-list again. */
int kp_cli_manifest_binds (const kp_policy *policy, const kp_manifest *m, kp_bind **out,
                           size_t *n, kp_error **err);
void kp_cli_binds_free (kp_bind *binds, size_t n);

#define KP_CMD_NEW_HELP                                                                       \
  "Writes ./karapace.toml (or PATH) for an environment called NAME. Without --template,\n"   \
  "asks which template to use when run on a terminal.\n\n"                                   \
  "Options:\n"                                                                                \
  "  -t, --template T    minimal, debian, dev, gui-dev, rust-dev or ubuntu-dev\n"            \
  "  -o, --output PATH   write to PATH instead of ./karapace.toml ('-' for stdout)\n"        \
  "  -f, --force         replace an existing file\n"                                         \
  "      --list          list the templates and exit\n"

#define KP_CMD_VALIDATE_HELP                                                                  \
  "Checks MANIFEST (default ./karapace.toml) against the manifest schema and the security\n" \
  "policy, then prints its normal form: every option with its value, lists sorted. When\n"   \
  "karapace.lock sits beside the manifest, also checks that the lock is intact and still\n"  \
  "matches the manifest.\n\n"                                                                 \
  "Options:\n"                                                                                \
  "      --locked        fail when the lock is missing or differs from the manifest\n"       \
  "      --lock PATH     check this lock instead of the one beside the manifest\n"           \
  "      --no-lock       do not look at a lock\n"                                             \
  "      --policy PATH   read the policy from PATH (default $KARAPACE_CONFIG, else\n"        \
  "                      ~/.config/karapace/config.toml)\n"                                   \
  "      --schema        print the option schema (Markdown, or JSON with --json)\n"        \
  "  -v, --verbose       say which policy applies; twice: print the lock's identity\n"     \
  "                      serialisation (docs/identity.md)\n"

#define KP_CMD_DIGEST_HELP                                                                    \
  "Prints BLAKE3-256 digests in b3sum's format ('HEX  PATH'): the content digest of a file,\n"\
  "the tree digest of a directory (docs/identity.md). Symbolic links are not followed.\n\n"  \
  "Options:\n"                                                                                \
  "      --list          also print the records a tree digest is computed over\n"

#define KP_CMD_DOCTOR_HELP                                                                    \
  "Checks the kernel and host tools the runtime needs: user namespaces, subordinate ids,\n"  \
  "newuidmap, overlayfs in a user namespace (actually tried), fuse-overlayfs, cgroups,\n"    \
  "gpgv and keyrings, XDG_RUNTIME_DIR, the store. Exits 1 when a check fails.\n"

#define KP_CMD_RUN_HELP                                                                       \
  "Runs CMD in a throw-away sandbox over the root filesystem DIR (or a base image of the\n"  \
  "store, --image; or the environment MANIFEST describes, built first when needed, which\n" \
  "is what `karapace run -- CMD` does in a directory with a karapace.toml), which is never\n"\
  "changed:\n"                                                                                 \
  "writes go to a temporary layer that disappears with the run. The sandbox has its own\n"   \
  "user, mount, pid, uts, ipc and cgroup namespaces (and network, unless --network host);\n" \
  "you keep your own uid and gid inside, and ids 0-65535 exist when you have subordinate\n"  \
  "ranges. /proc, /sys (read-only) and a minimal /dev are its own; no host device is\n"      \
  "visible unless allowed. The environment is rebuilt from the policy's allow-list.\n"       \
  "Exits with CMD's status (128+N when signal N killed it, 127 when it is not found).\n\n"    \
  "Options:\n"                                                                                \
  "      --rootfs DIR          the root filesystem\n"                                         \
  "      --image REF           or the layer of a pulled base image (debian/bookworm, a\n"     \
  "                            digest; see 'karapace images')\n"                               \
  "      --mount HOST:PATH[:ro]  bind HOST (within the mount allow-list) at PATH\n"          \
  "      --device PATH         expose a host device node allowed by the policy\n"            \
  "      --gpu, --audio        expose /dev/dri, /dev/snd (when the policy allows them)\n"    \
  "      --network MODE        host (default), none (only lo) or user (pasta/slirp4netns)\n" \
  "      --user WHO            self (default: your uid and gid) or root (uid 0 inside)\n"    \
  "      --hostname NAME       the host name inside (default karapace)\n"                    \
  "  -w, --workdir DIR         where CMD starts (default /)\n"                               \
  "  -e, --env NAME=VALUE      set a variable (deny-listed names are refused)\n"             \
  "      --memory MIB          memory limit (with swap), enforced by a cgroup\n"             \
  "      --cpu-shares N        relative cpu weight (2-262144, 1024 normal)\n"                \
  "      --pids N              most processes and threads\n"                                 \
  "      --seccomp PROFILE     default or nesting (lets podman run inside)\n"                \
  "      --overlay DRIVER      auto (default), kernel or fuse ($KARAPACE_OVERLAY)\n"         \
  "      --policy PATH         read the policy from PATH\n"                                  \
  "      --session NAME        keep the sandbox while sessions of NAME run: the first run\n" \
  "                            starts it (needs --rootfs), later runs join it\n"            \
  "      --stop                with --session: stop that sandbox and all its commands\n"   \
  "Limits that cannot be enforced make the run fail; they are never silently dropped.\n"

#define KP_CMD_UNSHARE_HELP                                                                   \
  "Runs CMD (default $SHELL, else /bin/sh) in the user namespace the store's files live\n"    \
  "in: you are root there, your own uid and gid stay themselves, and every other id is\n"     \
  "one of your subordinate ids from /etc/subuid and /etc/subgid (uid 0 is the first), so\n"   \
  "files of other owners in the store can be read and removed. Mounts made inside stay\n"     \
  "inside. Exits with CMD's status (128+N when signal N killed it; 127 when CMD is not\n"     \
  "found).\n"

#define KP_CMD_GC_HELP                                                                        \
  "Deletes the objects and layers no environment references. Every environment keeps what\n"\
  "it uses, whatever its state (running, frozen and archived ones included). Interrupting\n" \
  "it (Ctrl-C) stops between two deletions and leaves the store consistent.\n\n"             \
  "Options:\n"                                                                                \
  "  -n, --dry-run       only report what would be freed\n"

#define KP_CMD_VERIFY_STORE_HELP                                                              \
  "Rolls back unfinished work, then re-hashes every object, checks every environment\n"     \
  "record's checksum and references, every layer's record and tree digest, the journal and\n"\
  "leftovers. Prints a report; exits 3 when anything is wrong.\n"

#define KP_CMD_MIGRATE_HELP                                                                   \
  "Reports the store's format version and upgrades it to the current one (version 1 is the\n"\
  "only format so far). A store written by a newer karapace is refused, never downgraded.\n"

#define KP_CMD_IMAGES_HELP                                                                    \
  "Base images are fetched once, checked against their digests, unpacked into a layer of\n" \
  "the store and kept by content digest; references (tags) remember what they resolved\n"  \
  "to and when (docs/images.md). Without a subcommand, lists them.\n\n"                      \
  "Subcommands:\n"                                                                             \
  "  list                      the images kept: reference, digest, tree digest, size\n"     \
  "  pull [OPTIONS] REF        fetch REF (see 'karapace images pull --help')\n"             \
  "  inspect REF|DIGEST...     everything recorded about an image (JSON)\n"                 \
  "  rm [--force] REF|DIGEST...  remove images (refused for an environment's base\n"        \
  "                            without --force); space is freed at once\n"                  \
  "  prune [--all]             remove images no reference names (--all: every image no\n"   \
  "                            environment uses)\n"

#define KP_CMD_IMAGES_PULL_HELP                                                               \
  "Fetches REF, checks every byte against the digest its source names, and unpacks it\n"    \
  "into a base layer. REF is any image reference (docs/images.md): an alias\n"             \
  "(debian/bookworm), docker://REGISTRY/REPO[:TAG][@DIGEST] or REGISTRY/REPO[:TAG],\n"     \
  "lxc://SERVER/DISTRO/RELEASE[/VARIANT], file://PATH.tar[.gz|.xz|.zst][#sha256=HEX],\n"   \
  "dir://PATH, oci-layout://PATH[:TAG], https://URL[#sha256=HEX|#blake3=HEX].\n"           \
  "A tag pulled before costs one manifest request; a digest pulled before, none.\n"       \
  "Prints the reference pinned to what was fetched.\n\n"                                    \
  "Options:\n"                                                                                \
  "      --platform OS/ARCH[/VARIANT]  choose from a multi-platform image (default: this\n"\
  "                            machine's)\n"                                                 \
  "      --creds USER:PASSWORD registry credentials (default: auth.json of podman or\n"     \
  "                            docker, see docs/images.md)\n"                               \
  "      --authfile PATH       read credentials only from PATH\n"                           \
  "      --tls-verify=false    allow plain HTTP and unverified TLS for this pull (loopback\n"\
  "                            registries never need it)\n"                                 \
  "      --offline             use only the cache; fail rather than touch the network\n"

#define KP_CMD_IMAGES_PRUNE_HELP                                                              \
  "Removes the images no reference names any more (a tag that moved leaves its old image\n" \
  "behind), or with --all every image no environment is built on, then frees their\n"      \
  "layers and blobs. --all also empties the package cache (the .deb files and indexes a\n"\
  "Debian or Ubuntu bootstrap downloaded, kept for later bootstraps and --offline).\n"

#define KP_CMD_BUILD_HELP                                                                     \
  "Builds the environment MANIFEST (default ./karapace.toml) describes: resolves its base\n" \
  "image, installs its [system] packages in a sandbox over it (apt bases), locks the base,\n"\
  "the whole installed package closure and every setting in karapace.lock beside the\n"    \
  "manifest, and prints the env_id, the BLAKE3 of that lock. A build of an identity that\n" \
  "exists already changes nothing. Downloaded packages are kept in the store's package\n"  \
  "cache and offered to later builds.\n\n"                                                     \
  "Options:\n"                                                                                \
  "      --name NAME     name the environment (default: the manifest's name)\n"            \
  "      --locked        install exactly what karapace.lock records (same base tree, the\n" \
  "                      same closure to the version); any difference is an error\n"      \
  "      --offline       no network: the base from the store's cache, the packages from\n" \
  "                      the lock and the package cache\n"

#define KP_CMD_VERIFY_HELP                                                                    \
  "Builds ENV (a name, a short id or an id) again from the lock it was built with, in a\n"  \
  "scratch area, and compares the packages layer's tree digest with the recorded one:\n"   \
  "prints \"reproducible\", or the paths that differ. A recorded layer whose tree changed\n" \
  "on disk since it was built is reported with the paths that differ from the rebuilt\n"  \
  "tree. Exits 0 when reproducible and intact, 1 otherwise.\n\n"                           \
  "Options:\n"                                                                              \
  "      --repair        put the rebuilt tree in the place of a recorded layer that\n"      \
  "                      changed on disk (when the rebuild gives the recorded digest)\n"

#define KP_CMD_EXEC_HELP                                                                      \
  "Runs CMD in the environment ENV (a name, a short id or an id) over its layers, with the\n"\
  "manifest's mounts, network and resource limits; what CMD changes stays in the\n"        \
  "environment's own layer (until destroy or rebuild). CMD starts where you are when the\n" \
  "environment shows it (under your home, or a [mounts] directory), else at /. Exits with\n" \
  "CMD's status.\n\n"                                                                        \
  "Options:\n"                                                                                \
  "      --user WHO      self (default: your uid and gid) or root (uid 0 inside)\n"

#define KP_CMD_ENTER_HELP                                                                     \
  "Opens a login shell (or runs CMD) in the environment ENV as you: your uid and gid, an\n"  \
  "account entry for you in its /etc/passwd and /etc/group, your home directory at its\n"  \
  "own path, starting where you are when it is visible inside (else in your home). Joins\n" \
  "the environment's sandbox when one runs. --user root opens a root shell instead (root\n" \
  "of the user namespace, e.g. to install a package by hand).\n"

#define KP_CMD_LIFECYCLE_HELP                                                                 \
  "An environment is built, frozen (read-only: writes fail) or archived (nothing runs in\n"\
  "it; kept by gc); running is a sandbox that serves its commands. start keeps one running\n"\
  "until stop; freeze, archive and destroy are refused while it runs.\n"

#define KP_CMD_PIN_HELP                                                                       \
  "Resolves the base image of MANIFEST (default ./karapace.toml) and rewrites its\n"        \
  "[base] image to a reference that names fixed content: a registry image gets its\n"      \
  "digest (docker://…:TAG@sha256:…), a tarball or LXC image its #sha256=. The rest of the\n"\
  "file is left as it is. Directories and OCI layouts cannot be pinned.\n\n"                \
  "Options:\n"                                                                                \
  "      --check             only say whether the image is pinned (exit 0) or not (1);\n"  \
  "                          no network\n"                                                    \
  "      --offline           resolve from the image cache only\n"                            \
  "      --tls-verify=false  allow plain HTTP and unverified TLS\n"

#endif
