#!/usr/bin/env bash
# Runs a command (a test run) with TWOFOLD_TEST_STORE=postgres and a PostgreSQL cluster
# of its own (tests/src/bin/pg_cluster.rs), which is stopped and removed afterwards.
# Needs `cargo build --workspace --all-targets` first.
set -euo pipefail
cd "$(dirname "$0")/.."
coproc CLUSTER { exec target/debug/pg_cluster; }
cluster=$CLUSTER_PID
# However this script ends, the cluster is stopped (pg_cluster stops it on SIGTERM).
trap 'kill "$cluster" 2>/dev/null || true; wait "$cluster" 2>/dev/null || true' EXIT
while read -r line <&"${CLUSTER[0]}"; do
  [ "$line" = ready ] && break
  export "${line?}"
done
[ -n "${TWOFOLD_TEST_PG_PORT:-}" ] || { echo "pg_cluster did not start" >&2; exit 1; }
export TWOFOLD_TEST_STORE=postgres
status=0
"$@" || status=$?
exit $status
