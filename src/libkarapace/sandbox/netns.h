/* netns.h — the sandbox's network: the three modes, loopback, user-mode networking and the
 * container's /etc/resolv.conf and /etc/hosts (docs/network.md).
 *
 *   host   the sandbox shares the host's network namespace (no CLONE_NEWNET)
 *   none   a fresh network namespace with only `lo`
 *   user   a fresh network namespace with `lo` and a tap interface `tap0` that a helper on
 *          the host (pasta, else slirp4netns) connects to the outside through ordinary
 *          sockets; no privilege is needed
 *
 * Who calls what: the runtime's parent, on the host, writes the child's id maps and then
 * calls kp_usernet_start() for the user mode; the child, root of its user namespace, calls
 * kp_net_loopback_up() (modes none and user) and writes the texts of kp_net_resolv_conf()
 * and kp_net_hosts() into the container.
 *
 * The user network looks the same whichever helper runs it (both are given the same
 * addresses): the container is 10.0.2.100/24 with the gateway 10.0.2.2 and a DNS forwarder
 * at 10.0.2.3, IPv4 only. The host's loopback is not reachable from the container; the
 * host itself is, on its own non-loopback addresses. */
#ifndef KP_SANDBOX_NETNS_H
#define KP_SANDBOX_NETNS_H

#include "base/error.h"

#include <sys/types.h>

typedef enum kp_net_mode
{
  KP_NET_HOST = 0,
  KP_NET_NONE,
  KP_NET_USER,
} kp_net_mode;

/* "host", "none", "user"; "?" for a value outside the enum. */
const char *kp_net_mode_name (kp_net_mode mode);
/* The mode of a name above; -1 (and *mode untouched) when the name is unknown. */
int kp_net_mode_from_name (const char *name, kp_net_mode *mode);

/* The user network's addresses, the same for pasta and slirp4netns. */
#define KP_USERNET_IFNAME "tap0"
#define KP_USERNET_ADDRESS "10.0.2.100"
#define KP_USERNET_PREFIX 24
#define KP_USERNET_GATEWAY "10.0.2.2"
#define KP_USERNET_DNS "10.0.2.3"

/* Bring `lo` up (SIOCSIFFLAGS) in the calling process's network namespace; the kernel then
 * gives it 127.0.0.1/8 and ::1. Needs CAP_NET_ADMIN there, which the root of a fresh user
 * namespace owning the network namespace has. Status KP_EXIT_RUNTIME on failure. */
int kp_net_loopback_up (kp_error **err);

/* A running user-mode network helper. */
typedef struct kp_usernet kp_usernet;

/* Give the network namespace of pid user-mode networking, from the host side, once pid's
 * id maps are written (the helper joins pid's user namespace to configure it). The tool is
 * $KARAPACE_USERNET ("pasta" or "slirp4netns") when set, else pasta when installed, else
 * slirp4netns. Returns once tap0 inside has its address and default route and is up.
 *
 * The helper is our child: it runs with stdin on /dev/null and its output kept for error
 * messages, and gets SIGKILL when the calling thread dies (PR_SET_PDEATHSIG; slirp4netns
 * also watches an --exit-fd), so it never outlives the caller. It does not stop by itself
 * when the namespace's processes exit: call kp_usernet_stop().
 *
 * Fails (status KP_EXIT_RUNTIME, with a hint) when no tool is installed, the forced one is
 * missing or unknown, or the tool fails or is not ready within 30 seconds; the message
 * names the tool and quotes what it said. */
kp_usernet *kp_usernet_start (pid_t pid, kp_error **err);

/* "pasta" or "slirp4netns". */
const char *kp_usernet_tool (const kp_usernet *n);
/* The helper's process id (for diagnostics and tests). */
pid_t kp_usernet_pid (const kp_usernet *n);
/* The nameserver the container should use (the tool's DNS forwarder, KP_USERNET_DNS), or
 * NULL when n is NULL. */
const char *kp_usernet_dns (const kp_usernet *n);

/* Stop the helper (SIGTERM, SIGKILL after two seconds), reap it and free n. NULL is a
 * no-op. */
void kp_usernet_stop (kp_usernet *n);
void kp_usernet_stopp (kp_usernet **n);
#define kp_cleanup_usernet __attribute__ ((cleanup (kp_usernet_stopp)))

/* The text of the container's /etc/resolv.conf. host_text is the host's /etc/resolv.conf
 * (may be NULL when it has none).
 *
 *   host  host_text as is (an explanatory comment when NULL)
 *   none  a comment saying there is no network, and no nameserver
 *   user  host_text with each nameserver the container cannot reach replaced, once, by
 *         kp_usernet_dns(n): loopback ones (127.0.0.0/8, ::1 — the host's local resolver,
 *         as with systemd-resolved or dnsmasq) and IPv6 ones (the user network is IPv4
 *         only). Reachable nameservers, search, options and comments are kept.
 *
 * Newly allocated; never NULL. */
char *kp_net_resolv_conf (kp_net_mode mode, const kp_usernet *n, const char *host_text);

/* The text of the container's /etc/hosts: localhost for 127.0.0.1 and ::1, and hostname
 * (with its first label too when it is dotted) on 127.0.1.1. A NULL, empty or invalid
 * hostname (anything but letters, digits, '-' and '.') gets no 127.0.1.1 line. Newly
 * allocated. */
char *kp_net_hosts (const char *hostname);

#endif
