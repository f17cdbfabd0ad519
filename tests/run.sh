#!/usr/bin/env bash
# All of twofold's tests: unit tests of every crate, then the end-to-end suites (a real
# dbus-daemon, the real twofoldd, the real pam_twofold.so through libpam via pamtester
# and pam_wrapper). Needs: dbus-daemon pamtester libpam-wrapper libpam0g-dev.
# As root it also creates two test users (tf-alice, tf-bob) for the access-control tests.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --workspace --all-targets
# pam_wrapper gives each process a /tmp/pam.X directory; keep parallelism low.
cargo test --workspace -- --test-threads=4 --show-output
