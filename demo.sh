#!/usr/bin/env bash
# twofold's main job, locally, changing no system file: builds everything, starts twofoldd
# on a private D-Bus bus with a throw-away database, enrols you (QR code in the terminal),
# then runs a real PAM login through pam_twofold.so that asks for your code.
#   ./demo.sh          interactive: scan the QR code, type codes from your app
#   ./demo.sh --auto   computes the codes itself (what CI runs)
set -euo pipefail
cd "$(dirname "$0")"
AUTO=0
[ "${1:-}" = "--auto" ] && AUTO=1

# Installs what it lacks when run as root (scripts/packages.txt); otherwise says how.
source scripts/packages.sh
need_packages build demo || exit 1

echo "== building"
cargo build -q --workspace
cargo build -q -p twofold-daemon --example totp_code
T=$PWD/target/debug
ME=$(id -un)

WORK=$(mktemp -d /tmp/twofold-demo-XXXXXX)
chmod 755 "$WORK"
cleanup() {
  kill "${DAEMON_PID:-}" "${BUS_PID:-}" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# A private system-type bus with the stock default policy and twofold's own policy file.
# (When you are not root, the demo's bus also lets you own the daemon's name.)
OWNER_POLICY=""
[ "$(id -u)" = 0 ] || OWNER_POLICY="<policy user=\"$ME\"><allow own=\"org.twofold.Twofold1\"/></policy>"
sed -e "s|@SOCKET@|$WORK/bus|" -e "s|@POLICY@|$PWD/dbus/org.twofold.Twofold1.conf|" \
    -e "s|@EXTRA@|$OWNER_POLICY|" dbus/private-bus.conf.in > "$WORK/bus.conf"
dbus-daemon --config-file="$WORK/bus.conf" --nofork --nopidfile 2>/dev/null &
BUS_PID=$!
for _ in $(seq 100); do [ -S "$WORK/bus" ] && break; sleep 0.05; done
BUS="unix:path=$WORK/bus"

# Built-in defaults, except where the demo must not touch the system: bus and database.
mkdir -m 755 "$WORK/run"
SOCKET="$WORK/run/socket"
cat > "$WORK/twofold.toml" <<EOC
version = 1
[daemon]
bus = "$BUS"
socket = "$SOCKET"
database = "$WORK/state/twofold.db"
EOC
echo "== starting twofoldd: its own socket ($SOCKET) and a private bus ($BUS)"
"$T/twofoldd" --config "$WORK/twofold.toml" 2>"$WORK/twofoldd.log" &
DAEMON_PID=$!
for _ in $(seq 200); do grep -q serving "$WORK/twofoldd.log" 2>/dev/null && break; sleep 0.05; done
grep -q serving "$WORK/twofoldd.log" || { cat "$WORK/twofoldd.log"; exit 1; }

code_now() { "$T/examples/totp_code" "$1"; }
wait_next_step() { local s=$(( 30 - $(date +%s) % 30 )); echo "   (waiting ${s}s for the next code)"; sleep $(( s + 1 )); }

echo "== enrolling $ME"
if [ $AUTO = 1 ]; then
  "$T/twofoldctl" --socket "$SOCKET" enrol "$ME" --no-verify | tee "$WORK/enrol.txt"
  # What a person would scan: the secret inside the otpauth:// URI.
  SECRET=$(sed -n 's/^otpauth URI: .*secret=\([A-Z2-7]*\).*/\1/p' "$WORK/enrol.txt")
  CODE=$(code_now "$SECRET")
  echo "   confirming with the app's code (computed: $CODE)"
  echo "$CODE" | "$T/twofoldctl" --socket "$SOCKET" confirm "$ME"
else
  "$T/twofoldctl" --socket "$SOCKET" enrol "$ME"
fi
"$T/twofoldctl" --socket "$SOCKET" status "$ME"

echo "== PAM login through pam_twofold.so (service 'twofold-demo')"
mkdir -p "$WORK/pam.d"
DAEMON_ARG=""
[ "$(id -u)" = 0 ] || DAEMON_ARG="daemon_user=$ME"
echo "auth required $T/libpam_twofold.so socket=$SOCKET $DAEMON_ARG" > "$WORK/pam.d/twofold-demo"
echo "auth required pam_deny.so" > "$WORK/pam.d/other"
pam() { LD_PRELOAD=libpam_wrapper.so PAM_WRAPPER=1 PAM_WRAPPER_SERVICE_DIR="$WORK/pam.d" pamtester twofold-demo "$ME" authenticate; }
wait_next_step   # the enrolment used the current code; a login needs a fresh one
if [ $AUTO = 1 ]; then
  CODE=$(code_now "$SECRET")
  echo "   typing $CODE"
  echo "$CODE" | pam
  echo "== the same code again must fail (replay):"
  if echo "$CODE" | pam; then echo "replayed code was accepted!" >&2; exit 1; fi
else
  echo "   type the code your app shows now:"
  pam
fi
echo "== demo finished: twofold asked for the code and let the right one in"
