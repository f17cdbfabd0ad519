#!/usr/bin/env bash
# All of twofold's tests: unit tests of every crate, then the end-to-end suites (a real
# dbus-daemon, the real twofoldd, the real pam_twofold.so through libpam via pamtester,
# pam_wrapper and an in-process PAM application; as root also sshd, sudo and login).
# Needs: dbus-daemon pamtester libpam-wrapper libpam0g-dev; as root also openssh-server
# openssh-client sudo expect (see .ci/run). As root the tests create the users tf-alice
# and tf-bob and the group tf-admins; this script removes them again at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

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

cargo build --workspace --all-targets
# pam_wrapper gives each process a /tmp/pam.X directory; keep parallelism low.
# --show-output: every end-to-end test prints what it proved.
cargo test --workspace -- --test-threads=4 --show-output
