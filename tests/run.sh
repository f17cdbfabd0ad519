#!/usr/bin/env bash
# All of twofold's tests: unit tests of every crate, then the end-to-end suites (a real
# dbus-daemon, the real twofoldd, the real pam_twofold.so through libpam via pamtester,
# pam_wrapper and an in-process PAM application, a real QR decoder; as root also sshd,
# sudo and login, and the Debian packages installed into a clean root).
#
# As root it installs the Debian packages it lacks (scripts/packages.txt: build, demo,
# tests, real-clients), creates the users tf-alice and tf-bob and the group tf-admins,
# and removes them again at the end. As another user it prints the one command that
# installs what is missing and runs what it can; the tests that need root are then
# reported as ignored, each with its reason, never as passed.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/packages.sh

unit_only=0
if [ "$(id -u)" = 0 ]; then
  need_packages build demo tests real-clients
else
  if ! need_packages build demo tests; then
    unit_only=1
    echo "SKIPPED: the end-to-end suites (they need the packages above); running the unit tests only" >&2
  fi
  echo "NOTE: not root: the tests that need root (real sshd, sudo and login; other users;" \
       "kernel login sessions) are reported as ignored" >&2
fi

created=()
if [ "$(id -u)" = 0 ]; then
  for u in tf-alice tf-bob; do id "$u" >/dev/null 2>&1 || created+=("user:$u"); done
  getent group tf-admins >/dev/null || created+=("group:tf-admins")
fi
cleanup() {
  for item in "${created[@]}"; do
    case "$item" in
      user:*) userdel "${item#user:}" 2>/dev/null || true ;;
      group:*) groupdel "${item#group:}" 2>/dev/null || true ;;
    esac
  done
}
trap cleanup EXIT

# The tests crate marks root-only tests as ignored unless this uid is 0 (tests/build.rs).
export TWOFOLD_TEST_UID
TWOFOLD_TEST_UID=$(id -u)
if [ $unit_only = 1 ]; then
  cargo test --workspace --lib --bins
  exit 0
fi
cargo build --workspace --all-targets
# pam_wrapper gives each process a /tmp/pam.X directory; keep parallelism low.
# --show-output: every end-to-end test prints what it proved.
cargo test --workspace --no-fail-fast -- --test-threads=4 --show-output
# The end-to-end suites again on the PostgreSQL store (docs/fleet.md): one cluster for the
# pass, a database of its own for every test world; SQLite-only tests say so and pass.
bash tests/on-postgres.sh cargo test -p twofold-integration --no-fail-fast -- --test-threads=4 --show-output
# The Debian packages: built, lintian-clean, installed into a clean Debian 12 root and
# used there (root only: it makes a chroot; as another user it says so and skips).
bash tests/packaging/run.sh
