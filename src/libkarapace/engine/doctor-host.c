/* doctor-host.c — the kernel release and the host programs and devices the runtime uses:
 * fuse-overlayfs and /dev/fuse, gpgv and the archive keyrings, pasta/slirp4netns and
 * /dev/net/tun, crun. Devices are opened for real (the only test of permission that
 * counts), and closed at once: opening /dev/fuse or /dev/net/tun alone changes nothing. */
#include "doctor-internal.h"

#include "base/fs.h"

#include "base/buf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

/* ---- kernel ------------------------------------------------------------------------- */

int
kp_doctor_check_kernel (kp_doctor_ctx *ctx, kp_check *c)
{
  struct utsname u;
  if (uname (&u) < 0)
    return kp_check_set (c, KP_CHECK_WARN, "see the overlay check for what actually works",
                         "uname: %s", strerror (errno));
  unsigned major = 0, minor = 0;
  if (sscanf (u.release, "%u.%u", &major, &minor) != 2)
    return kp_check_set (c, KP_CHECK_WARN, "see the overlay check for what actually works",
                         "Linux %s (%s): cannot read the version number", u.release, u.machine);
  if (major > 5 || (major == 5 && minor >= 11))
    return kp_check_set (c, KP_CHECK_OK, NULL,
                         "Linux %s (%s): new enough for overlayfs in user namespaces (5.11+)",
                         u.release, u.machine);
  return kp_check_set (c, KP_CHECK_WARN,
                       "upgrade to Linux 5.11 or later, or install the fallback: apt-get install "
                       "fuse-overlayfs",
                       "Linux %s (%s) is older than 5.11: kernel overlayfs usually cannot be "
                       "mounted in a user namespace (the overlay check tells)",
                       u.release, u.machine);
}

/* ---- fuse-overlayfs ----------------------------------------------------------------- */

static int
open_device (const char *path)
{
  int fd = open (path, O_RDWR | O_CLOEXEC | O_NOCTTY);
  if (fd < 0)
    return -errno;
  close (fd);
  return 0;
}

bool
kp_doctor_fuse_usable (char **why)
{
  kp_cleanup_free char *path = kp_find_program ("fuse-overlayfs");
  int dev = open_device ("/dev/fuse");
  if (path != NULL && dev == 0)
    {
      *why = xasprintf ("%s; /dev/fuse opens read-write", path);
      return true;
    }
  if (path == NULL && dev < 0)
    *why = xasprintf ("fuse-overlayfs is not installed and /dev/fuse cannot be opened: %s",
                      strerror (-dev));
  else if (path == NULL)
    *why = xstrdup ("fuse-overlayfs is not installed");
  else
    *why = xasprintf ("%s found, but /dev/fuse cannot be opened: %s", path, strerror (-dev));
  return false;
}

int
kp_doctor_check_fuse_overlayfs (kp_doctor_ctx *ctx, kp_check *c)
{
  kp_cleanup_free char *why = NULL;
  if (kp_doctor_fuse_usable (&why))
    return kp_check_set (c, KP_CHECK_OK, NULL, "%s", why);

  kp_cleanup_free char *program = kp_find_program ("fuse-overlayfs");
  int dev = open_device ("/dev/fuse");
  kp_cleanup_buf kp_buf fix = KP_BUF_INIT;
  if (program == NULL)
    kp_buf_puts (&fix, "apt-get install fuse-overlayfs");
  if (dev == -ENOENT || dev == -ENODEV || dev == -ENXIO)
    kp_buf_printf (&fix, "%sload the fuse module: modprobe fuse", fix.len ? "; " : "");
  else if (dev < 0)
    kp_buf_printf (&fix, "%slet users open /dev/fuse: chmod 0666 /dev/fuse (the usual mode; a "
                         "udev rule keeps it)",
                   fix.len ? "; " : "");

  kp_check_status overlay = kp_doctor_ctx_status (ctx, "overlay");
  if (overlay == KP_CHECK_FAIL || overlay == KP_CHECK_WARN)
    return kp_check_set (c, KP_CHECK_FAIL, kp_buf_str (&fix),
                         "%s, and kernel overlayfs does not work either", why);
  return kp_check_set (c, KP_CHECK_WARN, kp_buf_str (&fix), "%s (only needed when kernel "
                       "overlayfs cannot be used)", why);
}

/* ---- gpgv and keyrings -------------------------------------------------------------- */

int
kp_doctor_check_gpgv (kp_doctor_ctx *ctx, kp_check *c)
{
  kp_cleanup_free char *path = kp_find_program ("gpgv");
  if (path == NULL)
    return kp_check_set (c, KP_CHECK_WARN, "apt-get install gpgv debian-archive-keyring",
                         "gpgv not found: Debian and Ubuntu bases cannot be verified (OCI "
                         "images still can)");
  return kp_check_set (c, KP_CHECK_OK, NULL, "%s", path);
}

/* NULL when the file is a usable binary OpenPGP keyring, else what is wrong. */
static char *
keyring_problem (const char *path, off_t *size)
{
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return errno == ENOENT ? xstrdup ("missing") : xasprintf ("%s", strerror (errno));
  struct stat st;
  unsigned char head[16] = { 0 };
  ssize_t n = fstat (fd, &st) == 0 ? read (fd, head, sizeof head) : -1;
  int saved = errno;
  close (fd);
  if (n < 0)
    return xasprintf ("%s", strerror (saved));
  *size = st.st_size;
  if (n == 0)
    return xstrdup ("empty");
  if (n >= 5 && memcmp (head, "-----", 5) == 0)
    return xstrdup ("ASCII-armored (gpgv needs a binary keyring: gpg --dearmor)");
  if (!(head[0] & 0x80)) /* every OpenPGP packet header has the top bit set */
    return xstrdup ("not an OpenPGP keyring");
  return NULL;
}

int
kp_doctor_check_keyrings (kp_doctor_ctx *ctx, kp_check *c)
{
  static const char debian[] = "/usr/share/keyrings/debian-archive-keyring.gpg";
  static const char ubuntu[] = "/usr/share/keyrings/ubuntu-archive-keyring.gpg";
  off_t debian_size = 0, ubuntu_size = 0;
  kp_cleanup_free char *debian_bad = keyring_problem (debian, &debian_size);
  kp_cleanup_free char *ubuntu_bad = keyring_problem (ubuntu, &ubuntu_size);

  kp_cleanup_buf kp_buf detail = KP_BUF_INIT;
  if (debian_bad)
    kp_buf_printf (&detail, "%s: %s (Debian bases cannot be verified)", debian, debian_bad);
  else
    kp_buf_printf (&detail, "%s (%lld bytes)", debian, (long long) debian_size);
  if (ubuntu_bad)
    kp_buf_printf (&detail, "; %s: %s (needed only for Ubuntu bases)", ubuntu, ubuntu_bad);
  else
    kp_buf_printf (&detail, "; %s (%lld bytes)", ubuntu, (long long) ubuntu_size);

  kp_cleanup_buf kp_buf fix = KP_BUF_INIT;
  if (debian_bad)
    kp_buf_puts (&fix, "apt-get install gpgv debian-archive-keyring");
  if (ubuntu_bad)
    kp_buf_printf (&fix, "%sfor Ubuntu bases, install Ubuntu's archive keyring as %s (package "
                         "ubuntu-keyring on Ubuntu)",
                   fix.len ? "; " : "", ubuntu);
  return kp_check_set (c, debian_bad || ubuntu_bad ? KP_CHECK_WARN : KP_CHECK_OK,
                       kp_buf_str (&fix), "%s", kp_buf_str (&detail));
}

/* ---- user-mode networking ----------------------------------------------------------- */

int
kp_doctor_check_network (kp_doctor_ctx *ctx, kp_check *c)
{
  kp_cleanup_free char *pasta = kp_find_program ("pasta");
  kp_cleanup_free char *slirp = kp_find_program ("slirp4netns");
  int tun = open_device ("/dev/net/tun");

  kp_cleanup_buf kp_buf detail = KP_BUF_INIT;
  if (pasta || slirp)
    kp_buf_printf (&detail, "%s%s%s", pasta ? pasta : "", pasta && slirp ? ", " : "",
                   slirp ? slirp : "");
  else
    kp_buf_puts (&detail, "neither pasta nor slirp4netns is installed");
  if (tun == 0)
    kp_buf_puts (&detail, "; /dev/net/tun opens read-write");
  else
    kp_buf_printf (&detail, "; /dev/net/tun cannot be opened: %s", strerror (-tun));

  if ((pasta || slirp) && tun == 0)
    return kp_check_set (c, KP_CHECK_OK, NULL, "%s", kp_buf_str (&detail));

  kp_cleanup_buf kp_buf fix = KP_BUF_INIT;
  if (!pasta && !slirp)
    kp_buf_puts (&fix, "apt-get install passt (or slirp4netns)");
  if (tun == -ENOENT || tun == -ENODEV || tun == -ENXIO)
    kp_buf_printf (&fix, "%sload the tun module: modprobe tun", fix.len ? "; " : "");
  else if (tun < 0)
    kp_buf_printf (&fix, "%slet users open /dev/net/tun: chmod 0666 /dev/net/tun (the usual "
                         "mode)",
                   fix.len ? "; " : "");
  return kp_check_set (c, KP_CHECK_WARN, kp_buf_str (&fix), "%s: --network user is unavailable",
                       kp_buf_str (&detail));
}

/* ---- crun --------------------------------------------------------------------------- */

int
kp_doctor_check_crun (kp_doctor_ctx *ctx, kp_check *c)
{
  kp_cleanup_free char *path = kp_find_program ("crun");
  if (path == NULL)
    return kp_check_set (c, KP_CHECK_WARN, "apt-get install crun",
                         "crun not found: the oci backend is unavailable (the namespace "
                         "backend does not need it)");
  return kp_check_set (c, KP_CHECK_OK, NULL, "%s", path);
}
