#!/bin/sh
# capture.sh — build the test packages in sources/, serve them from local repositories, run
# the package drivers' install and list commands (engine/pkgdriver.c) on scratch roots with
# the real dnf, zypper, rpm and pacman, and write the listings as fixtures (README.md).
#
# Debian 12, as root (the scratch roots are owned by root), after
#   apt-get install rpm dnf zypper createrepo-c pacman-package-manager makepkg \
#                   libarchive-tools fakeroot zstd gnupg
# usage: capture.sh MAKEPKG_USER [WORKDIR [OUTDIR]]
#   MAKEPKG_USER  an unprivileged user that runs makepkg (it refuses to run as root)
#   WORKDIR       scratch directory, emptied first (default /tmp/kp-pkg-capture)
#   OUTDIR        where the fixtures go (default: the directory above this script)
set -eu

user=$1
W=${2:-/tmp/kp-pkg-capture}
SRC=$(cd "$(dirname "$0")" && pwd)
OUT=${3:-$(dirname "$SRC")}

# The command lines exactly as kp_pkg_install_command (refresh = true, as the build asks)
# and list_command produce them; test-pkgdriver.c asserts the same strings.
DNF_INSTALL='dnf install -y --refresh --setopt=install_weak_deps=False --setopt=tsflags=nodocs kp-hello'
DNF_INSTALL_LATE='dnf install -y --refresh --setopt=install_weak_deps=False --setopt=tsflags=nodocs kp-late'
ZYPPER_INSTALL='(zypper --non-interactive refresh && zypper --non-interactive install --no-recommends --auto-agree-with-licenses kp-hello kp-eula)'
ZYPPER_INSTALL_LATE='(zypper --non-interactive refresh && zypper --non-interactive install --no-recommends --auto-agree-with-licenses kp-late)'
PACMAN_INSTALL='pacman -Sy --noconfirm --needed kp-tool'
RPM_LIST="rpm -qa --qf '%{NAME}\\t%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\\t%{ARCH}\\n'"
PACMAN_LIST='LC_ALL=C pacman -Qi'

rm -rf "$W"
mkdir -p "$W/home" "$W/rpm-repo" "$W/pacman-repo"
W=$(cd "$W" && pwd)
# Debian's rpm keeps its database in ~/.rpmdb; the roots use Fedora's and openSUSE's place.
export HOME="$W/home"
printf '%%_dbpath /usr/lib/sysimage/rpm\n' > "$HOME/.rpmmacros"
export GNUPGHOME="$W/gnupg"
mkdir -m 700 "$GNUPGHOME"
gpg --batch --passphrase '' --quick-gen-key 'kp fixtures <kp-fixtures@example.invalid>' \
    rsa2048 sign never
gpg --armor --export kp-fixtures@example.invalid > "$W/key.asc"

# Run a driver's command line as the build sandbox runs it (a shell string under set -e)
# with the tool pointed at root $1: the functions add only the options that select it.
in_root ()
{
  R=$1 sh -c 'set -e
dnf () { command dnf --installroot="$R" --releasever=kp "$@"; }
zypper () { command zypper --root "$R" "$@"; }
rpm () { command rpm --root "$R" "$@"; }
pacman () { command pacman -r "$R" --config "$R/etc/pacman.conf" --dbpath "$R/var/lib/pacman" --cachedir "$R/var/cache/pacman/pkg" --gpgdir "$R/etc/pacman.d/gnupg" --logfile "$R/var/log/pacman.log" "$@"; }
'"$2" </dev/null
}

# ---- rpm-md repository: signed packages, signed metadata, a license for kp-eula ----
publish_rpm ()
{
  for spec in "$@"; do
    rpmbuild --define "_topdir $W/rpmbuild" -bb "$SRC/rpm/$spec.spec"
  done
  cp "$W"/rpmbuild/RPMS/*/*.rpm "$W/rpm-repo/"
  rpmsign --define '__gpg /usr/bin/gpg' --define '_gpg_name kp-fixtures@example.invalid' \
          --addsign "$W"/rpm-repo/*.rpm </dev/null
  rm -rf "$W/rpm-repo/repodata"
  createrepo_c "$W/rpm-repo"
  pkgid=$(sha256sum "$W"/rpm-repo/kp-eula-*.rpm | cut -d' ' -f1)
  cat > "$W/susedata.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<susedata xmlns="http://linux.duke.edu/metadata/susedata" packages="1">
  <package pkgid="$pkgid" name="kp-eula" arch="noarch">
    <version epoch="0" ver="0.9" rel="1"/>
    <eula>Test license: accept it to install kp-eula.</eula>
  </package>
</susedata>
EOF
  modifyrepo_c --mdtype=susedata "$W/susedata.xml" "$W/rpm-repo/repodata"
  gpg --batch --yes --detach-sign --armor "$W/rpm-repo/repodata/repomd.xml"
  cp "$W/key.asc" "$W/rpm-repo/repodata/repomd.xml.key"
}
publish_rpm kp-hello kp-data kp-extra kp-eula

# dnf: the repository file in the root, the key named by it (dnf -y imports it).
R=$W/dnf-root
mkdir -p "$R/etc/yum.repos.d"
cat > "$R/etc/yum.repos.d/kp-local.repo" <<EOF
[kp-local]
name=kp local
baseurl=file://$W/rpm-repo
gpgcheck=1
repo_gpgcheck=1
gpgkey=file://$W/key.asc
EOF
in_root "$R" "$DNF_INSTALL"
test ! -e "$R/usr/share/kp-extra"               # a weak dependency
test ! -e "$R/usr/share/doc/kp-hello/README"    # documentation
in_root "$R" "$RPM_LIST" > "$OUT/rpm-qa-captured-dnf414-rpm418.txt"

# zypper: the key already in the root's rpm database, as an openSUSE base ships it; the
# repository added the way zypper adds one by default (autorefresh off).
R=$W/zypper-root
mkdir -p "$R"
rpm --root "$R" --import "$W/key.asc"
zypper --root "$R" --non-interactive addrepo "file://$W/rpm-repo" kp-local
in_root "$R" "$ZYPPER_INSTALL"
test ! -e "$R/usr/share/kp-extra"
in_root "$R" "$RPM_LIST" > "$OUT/rpm-qa-captured-zypper1142-rpm418.txt"

# Both again after a package was published: their caches are fresh, so only the refresh
# in the command line lets them see it.
publish_rpm kp-late
in_root "$W/dnf-root" "$DNF_INSTALL_LATE"
in_root "$W/zypper-root" "$ZYPPER_INSTALL_LATE"
rpm --root "$W/dnf-root" -q kp-late
rpm --root "$W/zypper-root" -q kp-late

# ---- pacman repository: signed packages, the key locally signed in the root's keyring ----
cp -r "$SRC/pacman" "$W/pacman-src"
chown -R "$user" "$W/pacman-src"
for p in kp-lib kp-extra kp-tool; do
  su "$user" -s /bin/sh -c "cd '$W/pacman-src/$p' && PKGEXT=.pkg.tar.zst makepkg --nodeps --noconfirm"
  for f in "$W/pacman-src/$p"/*.pkg.tar.zst; do
    cp "$f" "$W/pacman-repo/"
    gpg --batch --detach-sign --no-armor -u kp-fixtures@example.invalid \
        "$W/pacman-repo/$(basename "$f")"
  done
done
repo-add "$W/pacman-repo/kp-local.db.tar.gz" "$W"/pacman-repo/*.pkg.tar.zst

R=$W/pacman-root
mkdir -p "$R/etc/pacman.d" "$R/var/lib/pacman" "$R/var/cache/pacman/pkg" "$R/var/log"
(unset GNUPGHOME
 pacman-key --gpgdir "$R/etc/pacman.d/gnupg" --init
 pacman-key --gpgdir "$R/etc/pacman.d/gnupg" --add "$W/key.asc"
 pacman-key --gpgdir "$R/etc/pacman.d/gnupg" --lsign-key kp-fixtures@example.invalid)
cat > "$R/etc/pacman.conf" <<EOF
[options]
Architecture = auto
SigLevel = Required DatabaseOptional
LocalFileSigLevel = Optional

[kp-local]
Server = file://$W/pacman-repo
EOF
in_root "$R" "$PACMAN_INSTALL"
in_root "$R" "$PACMAN_LIST" > "$OUT/pacman-Qi-captured-pacman602.txt"
# pacman wraps long values at $COLUMNS when it is set (and at the terminal's width).
(export COLUMNS=50; in_root "$R" "$PACMAN_LIST") > "$OUT/pacman-Qi-captured-pacman602-columns50.txt"
