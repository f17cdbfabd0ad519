#!/usr/bin/env bash
# twofold's benchmark in one run: builds (release), seeds users and secrets in a temporary
# directory, starts a private dbus-daemon and twofoldd, measures in-process PAM logins
# (pam_permit, pam_twofold over its socket and over the bus, pam_google_authenticator,
# pam_oath), the trusted path against a peer-to-peer floor, twofoldd's throughput and,
# with BENCH_SCALE=1, logins on a store of 100,000 users; writes docs/performance.md.
# See bench/README.md.
#
# Needs root and overlayfs; installs the Debian packages it lacks (scripts/packages.txt:
# build, demo, bench). Changes no system file.
# Environment: BENCH_USERS (200: the main store's users, each logging in once per module),
# BENCH_CLIENTS (32), BENCH_PER_CLIENT (100), BENCH_SCALE (0; 1 adds the scale figures:
# a few minutes more), and for those BENCH_SCALE_SIZES (users per store, "100,10000,100000"),
# BENCH_TRUST (trust rows in a second store of each size, 1000000) and
# BENCH_SCALE_LOGINS (the users who log in on every store, 100).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

if [ "$(id -u)" -ne 0 ]; then
  echo "bench/run.sh: run as root (twofoldd must own its bus name as root)" >&2
  exit 1
fi
source scripts/packages.sh
need_packages build demo bench

started=$(date +%s)
cargo build --release -p pam_twofold -p twofold-daemon -p twofold-ctl -p twofold-bench
bin=$root/target/release

dir=$(mktemp -d /tmp/twofold-bench.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT

# Waits up to 10 s (or $tries tenths) for a command to succeed.
wait_for() {
  for _ in $(seq "${tries:-100}"); do "$@" && return 0; sleep 0.1; done
  return 1
}
clients=${BENCH_CLIENTS:-32}
scale=${BENCH_SCALE:-0}

"$bin/pam-bench" setup --dir "$dir" --users "${BENCH_USERS:-200}" \
  --clients "$clients" --per-client "${BENCH_PER_CLIENT:-100}"
if [ "$scale" = 1 ]; then
  "$bin/pam-bench" scale-setup --dir "$dir" --sizes "${BENCH_SCALE_SIZES:-100,10000,100000}" \
    --trust "${BENCH_TRUST:-1000000}" --measured "${BENCH_SCALE_LOGINS:-100}"
fi

# These machines run no syslog daemon, and glibc's syslog() then writes each record to
# /dev/console, a slow serial console here: pam_google_authenticator logs every login that
# way. So stand in for syslogd: a sink that drops datagrams. twofoldd's audit records go to
# it by configuration; the measuring process reaches it as /dev/log (below).
"$bin/pam-bench" sink --socket "$dir/log" &
pids+=($!)
wait_for test -S "$dir/log" || { echo "bench/run.sh: the syslog sink did not start" >&2; exit 1; }

dbus-daemon --config-file="$dir/bus.conf" --nofork --nopidfile >/dev/null 2>&1 &
pids+=($!)
wait_for test -S "$dir/bus" || { echo "bench/run.sh: dbus-daemon did not start" >&2; exit 1; }

# twofoldd sees the bench's PAM users as accounts (DIR/nss, mounted over the system's
# files in its own mount namespace only).
unshare --mount --propagation private sh -c '
  for f in passwd shadow group; do mount --bind "$1/nss/$f" "/etc/$f"; done
  shift; exec "$@"' _ "$dir" "$bin/twofoldd" --config "$dir/twofold.toml" \
  >/dev/null 2>"$dir/twofoldd.log" &
pids+=($!)
if ! wait_for grep -q serving "$dir/twofoldd.log"; then
  echo "bench/run.sh: twofoldd did not start:" >&2
  cat "$dir/twofoldd.log" >&2
  exit 1
fi

# The floor of a socket login: a trivial peer-to-peer server.
"$bin/pam-bench" p2p-server --socket "$dir/p2p" &
pids+=($!)
wait_for test -S "$dir/p2p" || { echo "bench/run.sh: the p2p server did not start" >&2; exit 1; }

# The scale figures: one more twofoldd per store (DIR/scale/stores.tsv), on its socket
# only. Each runs in a private mount namespace with an empty /run/dbus, so
# `bus = "system"` finds no system bus and they own no name anywhere.
if [ "$scale" = 1 ]; then
  stores=$(cut -f1 "$dir/scale/stores.tsv")
  for store in $stores; do
    unshare --mount --propagation private sh -c '
      if [ -d /run/dbus ]; then mount -t tmpfs -o mode=0755 tmpfs /run/dbus; fi
      exec "$@"' _ "$bin/twofoldd" --config "$dir/scale/$store/twofold.toml" \
      >/dev/null 2>"$dir/scale/$store/twofoldd.log" &
    pids+=($!)
    echo $! >"$dir/scale/$store/pid"
  done
  for store in $stores; do
    if ! tries=1200 wait_for grep -q serving "$dir/scale/$store/twofoldd.log"; then
      echo "bench/run.sh: twofoldd ($store store) did not start:" >&2
      cat "$dir/scale/$store/twofoldd.log" >&2
      exit 1
    fi
  done
fi

# The measurement runs in a private mount namespace whose /dev is an overlay of the real
# one plus a /dev/log symlink to the sink, and which sees the bench's accounts as
# twofoldd does: the real /dev and /etc are left alone. Under pam_wrapper,
# libpam reads the service files from $dir/pam.d. The report goes to $dir first, so a
# failed run leaves docs/performance.md as it was.
mkdir "$dir/dev-upper" "$dir/dev-work"
unshare --mount --propagation private bash -c '
  set -e
  dir=$1; shift
  mount -t overlay overlay -o "lowerdir=/dev,upperdir=$dir/dev-upper,workdir=$dir/dev-work" /dev
  ln -sfn "$dir/log" /dev/log
  for f in passwd shadow group; do mount --bind "$dir/nss/$f" "/etc/$f"; done
  exec env LD_PRELOAD=libpam_wrapper.so PAM_WRAPPER=1 PAM_WRAPPER_SERVICE_DIR="$dir/pam.d" "$@"
' _ "$dir" "$bin/pam-bench" measure --dir "$dir" --out "$dir/performance.md" \
  --clients "$clients" $([ "$scale" = 1 ] && echo --scale)
took=$(( $(date +%s) - started ))
if [ "$scale" = 1 ]; then
  verdict="met"; [ "$took" -lt 600 ] || verdict="not met"
  printf '\n**Target** (the whole run, with the scale figures, under 10 minutes): **%s** — %d s from the release build on (a build already made takes under a second).\n' \
    "$verdict" "$took" >>"$dir/performance.md"
fi
cp "$dir/performance.md" "$root/docs/performance.md"
echo "bench/run.sh: wrote docs/performance.md in $(( $(date +%s) - started )) s"
