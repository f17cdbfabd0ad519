#!/usr/bin/env bash
# twofold's benchmark in one run: builds (release), seeds users and secrets in a temporary
# directory, starts a private dbus-daemon and twofoldd, measures in-process PAM logins
# (pam_permit, pam_twofold over its socket and over the bus, pam_google_authenticator,
# pam_oath), the trusted path against a peer-to-peer floor, twofoldd's throughput, the
# fleet figures (a PostgreSQL 15 cluster of its own in the temporary directory, the main
# SQLite store imported into it, three more twofoldd on it logging in together, against
# the main daemon on SQLite) and, with BENCH_SCALE=1, logins on a store of 100,000 users;
# writes docs/performance.md. See bench/README.md.
#
# Needs root and overlayfs; installs the Debian packages it lacks (scripts/packages.txt:
# build, demo, bench). Changes no system file.
# Environment: BENCH_USERS (200: the main store's users, each logging in once per module),
# BENCH_CLIENTS (32), BENCH_PER_CLIENT (100), BENCH_FLEET_CLIENTS (16 per daemon),
# BENCH_FLEET_PER_CLIENT (100 logins per fleet client; the SQLite phase logs in as many
# users as the three daemons), BENCH_SCALE (0; 1 adds the scale figures: a few minutes
# more), and for those BENCH_SCALE_SIZES (users per store, "100,10000,100000"),
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
pgbin=/usr/lib/postgresql/15/bin

dir=$(mktemp -d /tmp/twofold-bench.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ -f "$dir/pg/data/postmaster.pid" ]; then
    (cd "$dir/pg" && runuser -u postgres -- "$pgbin/pg_ctl" -D "$dir/pg/data" \
      -m immediate -w -t 30 stop >/dev/null 2>&1) || true
  fi
  rm -rf "$dir"
}
trap cleanup EXIT

# Waits up to 10 s (or $tries tenths) for a command to succeed.
wait_for() {
  for _ in $(seq "${tries:-100}"); do "$@" && return 0; sleep 0.1; done
  return 1
}
fail() {
  echo "bench/run.sh: $*" >&2
  exit 1
}
clients=${BENCH_CLIENTS:-32}
scale=${BENCH_SCALE:-0}
fleet_clients=${BENCH_FLEET_CLIENTS:-16}
fleet_hosts=3

"$bin/pam-bench" setup --dir "$dir" --users "${BENCH_USERS:-200}" \
  --clients "$clients" --per-client "${BENCH_PER_CLIENT:-100}" \
  --fleet-clients "$fleet_clients" --fleet-per-client "${BENCH_FLEET_PER_CLIENT:-100}" \
  --fleet-daemons "$fleet_hosts"
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
main_pid=$!
if ! wait_for grep -q serving "$dir/twofoldd.log"; then
  echo "bench/run.sh: twofoldd did not start:" >&2
  cat "$dir/twofoldd.log" >&2
  exit 1
fi

# The fleet figures: a PostgreSQL 15 cluster in DIR/pg, run by the postgres account
# (PostgreSQL refuses root), which must be able to pass through DIR (0711: its files keep
# their own modes). The socket is trusted (the bench's psql signs in as postgres); over
# 127.0.0.1 the twofold role signs in with its password (SCRAM), as a fleet's daemons do.
# PostgreSQL's defaults otherwise (fsync on, synchronous_commit on), plus
# pg_stat_statements and I/O timing for the figures of where the time goes.
pg=$dir/pg
as_postgres() { (cd "$pg" && runuser -u postgres -- "$@"); }
psql_() { "$pgbin/psql" -X -q -w -v ON_ERROR_STOP=1 -h "$pg" -p "$port" -U postgres "$@"; }
[ -x "$pgbin/pg_ctl" ] || fail "$pgbin/pg_ctl is missing (Debian's postgresql-15)"
chmod 711 "$dir"
mkdir -m 700 "$pg"
chown postgres: "$pg"
as_postgres "$pgbin/initdb" -D "$pg/data" -U postgres -A trust -E UTF8 --locale=C \
  --no-sync --no-instructions >"$pg/initdb.log" 2>&1 ||
  { cat "$pg/initdb.log" >&2; fail "initdb failed"; }
port=
for _ in $(seq 100); do
  p=$(( 20000 + RANDOM % 30000 ))
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then port=$p; break; fi
done
[ -n "$port" ] || fail "no free port for PostgreSQL"
printf 'local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n' >"$pg/data/pg_hba.conf"
cat >>"$pg/data/postgresql.conf" <<CONF

# bench/run.sh
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$pg'
shared_preload_libraries = 'pg_stat_statements'
track_io_timing = on
track_wal_io_timing = on
CONF
as_postgres "$pgbin/pg_ctl" -D "$pg/data" -l "$pg/log" -w -t 30 start >/dev/null ||
  { cat "$pg/log" >&2; fail "PostgreSQL did not start"; }
password=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
(umask 077; printf '%s\n' "$password" >"$dir/pg-password")
psql_ -d postgres -c "CREATE ROLE twofold LOGIN PASSWORD '$password'" \
  -c "CREATE DATABASE twofold OWNER twofold" -c "CREATE EXTENSION pg_stat_statements" ||
  fail "could not create the twofold role and database"

# One twofoldd per fleet host on that database: its own configuration, socket, state
# directory (unused: the store is PostgreSQL) and [fleet] host. Like the scale daemons,
# each runs in a private mount namespace with an empty /run/dbus (no bus, no name) and,
# like the main daemon, sees the bench's accounts. The first one starts alone and imports
# the main daemon's SQLite store (WAL; read-only while the main daemon runs); then the
# others start.
fleet_sockets=()
fleet_pids=()
start_fleet_host() {
  local h=$dir/fleet/host$1
  mkdir -p "$h/run"
  chmod 755 "$h/run"
  cat >"$h/twofold.toml" <<CONF
version = 1
[daemon]
bus = "system"
socket = "$h/run/socket"
database = "$h/state/twofold.db"
syslog_socket = "$dir/log"
[lockout]
max_failures = 100
[store]
backend = "postgres"
url = "postgresql://twofold@127.0.0.1:$port/twofold"
password_file = "$dir/pg-password"
[fleet]
host = "host$1"
CONF
  chmod 600 "$h/twofold.toml"
  unshare --mount --propagation private sh -c '
    if [ -d /run/dbus ]; then mount -t tmpfs -o mode=0755 tmpfs /run/dbus; fi
    for f in passwd shadow group; do mount --bind "$1/nss/$f" "/etc/$f"; done
    shift; exec "$@"' _ "$dir" "$bin/twofoldd" --config "$h/twofold.toml" \
    >/dev/null 2>"$h/twofoldd.log" &
  pids+=($!)
  fleet_pids+=($!)
  fleet_sockets+=("$h/run/socket")
}
wait_fleet_host() {
  local h=$dir/fleet/host$1
  if ! tries=300 wait_for grep -q serving "$h/twofoldd.log"; then
    cat "$h/twofoldd.log" >&2
    fail "twofoldd (fleet host$1, PostgreSQL) did not start"
  fi
}
start_fleet_host 1
wait_fleet_host 1
"$bin/twofoldctl" --socket "$dir/fleet/host1/run/socket" store import "$dir/state/twofold.db" \
  >"$dir/fleet/import.log" 2>&1 || { cat "$dir/fleet/import.log" >&2; fail "store import failed"; }
imported=$(awk '$1 == "users" { print $2 }' "$dir/fleet/import.log")
seeded=$(wc -l <"$dir/users.tsv")
[ "$imported" = "$seeded" ] ||
  { cat "$dir/fleet/import.log" >&2; fail "store import copied ${imported:-no} users of $seeded"; }
for i in $(seq 2 "$fleet_hosts"); do start_fleet_host "$i"; done
for i in $(seq 2 "$fleet_hosts"); do wait_fleet_host "$i"; done
fleet_args=(--dir "$dir" --clients "$fleet_clients" --baseline "$dir/run/socket"
  --baseline-pid "$main_pid" --sockets "$(IFS=,; echo "${fleet_sockets[*]}")"
  --pids "$(IFS=,; echo "${fleet_pids[*]}")" --pg-data "$pg/data")
# Unmeasured logins on each (their pools connect) now: PostgreSQL's statistics views
# have their counts by the time the fleet figures start, after `measure`.
"$bin/pam-bench" fleet "${fleet_args[@]}" --warmup-only

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
# The fleet figures: the main (SQLite) twofoldd, then the PostgreSQL ones all at once.
"$bin/pam-bench" fleet "${fleet_args[@]}" --out "$dir/fleet.md"
cat "$dir/fleet.md" >>"$dir/performance.md"
took=$(( $(date +%s) - started ))
if [ "$scale" = 1 ]; then
  verdict="met"; [ "$took" -lt 600 ] || verdict="not met"
  printf '\n**Target** (the whole run, with the scale figures, under 10 minutes): **%s** — %d s from the release build on (a build already made takes under a second).\n' \
    "$verdict" "$took" >>"$dir/performance.md"
fi
cp "$dir/performance.md" "$root/docs/performance.md"
echo "bench/run.sh: wrote docs/performance.md in $(( $(date +%s) - started )) s"
