#!/usr/bin/env bash
# The Debian packages, as a packager and a sysadmin meet them: build them from the tree
# (dpkg-buildpackage), check them with lintian (no error, no warning), check that the
# packaged twofoldd has no test-only code, then install them into a clean Debian 12 root
# and use them there: files, owners and modes; pam-auth-update --enable twofold, then a
# login with password and code through the real common-auth (pamtester), refused with a
# wrong code; --disable and purge give common-auth back byte for byte.
#
# Root only (it makes a chroot). The base root is debootstrapped once and kept in
# $TWOFOLD_CHROOT_CACHE (default /var/cache/twofold-ci/bookworm); every run copies it.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/packages.sh
if [ "$(id -u)" != 0 ]; then
  echo "SKIPPED: the package checks need root (a chroot)" >&2
  exit 0
fi
need_packages build package chroot

work=$(mktemp -d /tmp/twofold-packaging.XXXXXX)
root="$work/root"
cleanup() {
  for m in dev/pts dev proc; do umount "$root/$m" 2>/dev/null || true; done
  [ -n "${daemon_pid:-}" ] && kill "$daemon_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAILED: $*" >&2; exit 1; }
proved() { echo "proved: $*"; }

echo "== building the packages (dpkg-buildpackage -us -uc -b)"
version=$(dpkg-parsechangelog -S Version)
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
mkdir -p "$work/debs"
if [ -n "${TWOFOLD_BUILT_PACKAGES:-}" ]; then
  # While working on these checks: packages built before, kept in that directory.
  cp "$TWOFOLD_BUILT_PACKAGES"/* "$work/debs/"
else
  dpkg-buildpackage -us -uc -b >"$work/build.log" 2>&1 || { tail -40 "$work/build.log"; fail "dpkg-buildpackage"; }
  for f in twofold libpam-twofold twofold-dbgsym libpam-twofold-dbgsym; do
    mv "../${f}_${version}_${arch}.deb" "$work/debs/"
  done
  mv "../twofold_${version}_${arch}.changes" "../twofold_${version}_${arch}.buildinfo" "$work/debs/"
  proved "dpkg-buildpackage builds twofold and libpam-twofold $version"
fi

echo "== lintian"
lintian --fail-on error,warning \
  "$work/debs/twofold_${version}_${arch}.changes" || fail "lintian reported errors or warnings"
proved "lintian: no error, no warning"

dpkg-deb -x "$work/debs/twofold_${version}_${arch}.deb" "$work/unpacked"
if "$work/unpacked/usr/sbin/twofoldd" --help | grep -q -- --test-clock; then
  fail "the packaged twofoldd has the tests' --test-clock"
fi
proved "the packaged twofoldd has no --test-clock"

echo "== a clean Debian 12 root"
cache=${TWOFOLD_CHROOT_CACHE:-/var/cache/twofold-ci/bookworm}
if [ ! -x "$cache/usr/bin/apt-get" ]; then
  rm -rf "$cache.new"
  mkdir -p "$(dirname "$cache")"
  debootstrap --variant=minbase bookworm "$cache.new" http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log"; fail "debootstrap"; }
  mv "$cache.new" "$cache"
fi
cp -a "$cache" "$root"
cp /etc/resolv.conf "$root/etc/resolv.conf"
mount -t proc proc "$root/proc"
mount --bind /dev "$root/dev"
mount --bind /dev/pts "$root/dev/pts"
in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"; }
cp "$work/debs/"*.deb "$root/tmp/"
in_root apt-get -qq update
# systemd for the units' verification (not running: a chroot has no init).
in_root sh -c 'DEBIAN_FRONTEND=noninteractive apt-get -qq install -y --no-install-recommends pamtester oathtool systemd' >/dev/null
cp "$root/etc/pam.d/common-auth" "$work/common-auth.before"
in_root sh -c "DEBIAN_FRONTEND=noninteractive apt-get -qq install -y --no-install-recommends /tmp/twofold_${version}_${arch}.deb /tmp/libpam-twofold_${version}_${arch}.deb" >/dev/null
proved "apt installs both packages into a clean Debian 12 root"

echo "== files, owners and modes"
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
check_mode() { # path mode owner
  local got
  got=$(stat -c '%a %U' "$root$1" 2>/dev/null) || fail "$1 is missing"
  [ "$got" = "$2 $3" ] || fail "$1 is $got, not $2 $3"
}
check_mode /usr/sbin/twofoldd 755 root
check_mode /usr/bin/twofoldctl 755 root
check_mode "/lib/$multiarch/security/pam_twofold.so" 644 root
check_mode /etc/twofold/twofold.toml 644 root
check_mode /var/lib/twofold 700 root
check_mode /usr/share/pam-configs/twofold 644 root
check_mode /lib/systemd/system/twofoldd.socket 644 root
check_mode /usr/share/dbus-1/system.d/org.twofold.Twofold1.conf 644 root
check_mode /usr/share/man/man8/pam_twofold.8.gz 644 root
grep -qx /etc/twofold/twofold.toml "$root/var/lib/dpkg/info/twofold.conffiles" || fail "twofold.toml is not a conffile"
in_root twofoldd --check-config >/dev/null || fail "the shipped configuration does not load"
cmp -s "$work/common-auth.before" "$root/etc/pam.d/common-auth" || fail "installing changed common-auth (the profile is Default: no)"
proved "files, owners and modes as packaged; the conffile loads; installing leaves common-auth alone"

units="/lib/systemd/system/twofoldd.service /lib/systemd/system/twofoldd.socket /lib/systemd/system/twofoldd-root.socket"
# shellcheck disable=SC2086
verified=$(systemd-analyze verify --root="$root" $units 2>&1) || fail "systemd-analyze verify: $verified"
[ -z "$verified" ] || fail "systemd-analyze verify complained: $verified"
proved "systemd-analyze verify finds nothing to say about the installed units"

echo "== pam-auth-update --enable twofold, then logins through common-auth"
user=tfpkg
password='Tf-pkg-pass-1'
in_root useradd --create-home "$user"
echo "$user:$password" | in_root chpasswd
# No systemd in a chroot: twofoldd binds its sockets itself (no bus there; logins do not
# need one).
chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin /usr/sbin/twofoldd >"$work/twofoldd.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 100); do [ -S "$root/run/twofold/socket" ] && break; sleep 0.1; done
[ -S "$root/run/twofold/socket" ] || { cat "$work/twofoldd.log"; fail "twofoldd did not start"; }
secret=$(in_root twofoldctl --json enrol "$user" --no-verify | sed -n 's/.*"secret":"\([A-Z2-7]*\)".*/\1/p')
[ -n "$secret" ] || fail "twofoldctl enrol gave no secret"
in_root pam-auth-update --enable twofold
grep -q 'pam_twofold.so' "$root/etc/pam.d/common-auth" || fail "--enable did not add the module to common-auth"
# A service that is common-auth and nothing else (login's own lines wait 3 s per failure).
echo '@include common-auth' >"$root/etc/pam.d/twofold-check"
login() { # input: what the user types
  printf '%s' "$1" | in_root pamtester twofold-check "$user" authenticate >"$work/pam.out" 2>&1
}
code=$(in_root oathtool --totp -b "$secret")
login "$password"$'\n'"$code"$'\n' || { cat "$work/pam.out"; fail "password + code did not log in"; }
grep -q 'Verification code' "$work/pam.out" || fail "no code was asked: $(cat "$work/pam.out")"
proved "with the profile on, login (pamtester, common-auth) asks password then code and lets the right pair in"
wrong=000000; [ "$code" = 000000 ] && wrong=111111
if login "$password"$'\n'"$wrong"$'\n'"$wrong"$'\n'"$wrong"$'\n'; then fail "a wrong code logged in"; fi
if login "wrong-password"$'\n'"$code"$'\n'; then fail "a wrong password logged in"; fi
proved "a wrong code, or a wrong password with a right code, is refused"

in_root pam-auth-update --disable twofold
cmp "$work/common-auth.before" "$root/etc/pam.d/common-auth" || fail "--disable did not give common-auth back byte for byte"
login "$password"$'\n' || { cat "$work/pam.out"; fail "the password alone no longer logs in after --disable"; }
proved "--disable gives common-auth back byte for byte; the password alone works again"

echo "== an upgrade keeps the database and an edited conffile"
# The next version is this build repacked with a higher version: dpkg runs the same
# maintainer scripts an upgrade from the previous release would.
next="${version}+next"
for p in twofold libpam-twofold; do
  dpkg-deb -R "$work/debs/${p}_${version}_${arch}.deb" "$work/repack-$p"
  sed -i "s/^Version: .*/Version: $next/; s/(= $version)/(= $next)/" "$work/repack-$p/DEBIAN/control"
  dpkg-deb -b "$work/repack-$p" "$root/tmp/${p}_${next}_${arch}.deb" >/dev/null
done
printf '\n[lockout]\nmax_failures = 7\n' >>"$root/etc/twofold/twofold.toml"
in_root twofoldd --check-config >/dev/null || fail "the edited configuration does not load"
kill "$daemon_pid"; wait "$daemon_pid" 2>/dev/null || true; daemon_pid=
in_root apt-get -qq install -y --no-install-recommends \
  "/tmp/twofold_${next}_${arch}.deb" "/tmp/libpam-twofold_${next}_${arch}.deb" >/dev/null
grep -qx 'max_failures = 7' "$root/etc/twofold/twofold.toml" || fail "the upgrade lost the edited conffile"
chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin /usr/sbin/twofoldd >>"$work/twofoldd.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 100); do [ -S "$root/run/twofold/socket" ] && in_root twofoldctl status "$user" >/dev/null 2>&1 && break; sleep 0.1; done
in_root twofoldctl status "$user" | grep -q "active authenticator app" || fail "the upgrade lost $user's factor: $(in_root twofoldctl status "$user" 2>&1)"
[ "$(in_root dpkg-query -W -f '${Version}' twofold)" = "$next" ] || fail "twofold was not upgraded"
proved "an upgrade ($version to $next) keeps the database ($user still enrolled) and the edited conffile"

echo "== removing and purging"
in_root pam-auth-update --enable twofold
in_root sh -c 'DEBIAN_FRONTEND=noninteractive apt-get -qq remove -y libpam-twofold' >/dev/null
cmp "$work/common-auth.before" "$root/etc/pam.d/common-auth" || fail "removing the module left it in common-auth"
login "$password"$'\n' || { cat "$work/pam.out"; fail "the password alone does not log in after removing the module"; }
proved "removing libpam-twofold while enabled takes it out of common-auth first; the password alone works"
kill "$daemon_pid"; wait "$daemon_pid" 2>/dev/null || true; daemon_pid=
[ -f "$root/var/lib/twofold/twofold.db" ] || fail "the database was not where it belongs"
in_root sh -c 'DEBIAN_FRONTEND=noninteractive apt-get -qq purge -y twofold' >/dev/null
[ ! -e "$root/var/lib/twofold" ] || fail "purge left /var/lib/twofold"
[ ! -e "$root/etc/twofold" ] || fail "purge left /etc/twofold"
cmp "$work/common-auth.before" "$root/etc/pam.d/common-auth" || fail "purge changed common-auth"
proved "purge removes the state and the configuration; common-auth is as before"
echo "== package checks passed"
