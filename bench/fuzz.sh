#!/usr/bin/env bash
# Fuzzes twofold's parsers and validators (fuzz/, cargo-fuzz on the nightly toolchain,
# libFuzzer with AddressSanitizer and LeakSanitizer) and writes the figures to
# docs/reliability.md. Each target runs FUZZ_RUNS executions (10,000,000), starting from
# fuzz/seeds/TARGET (inputs taken from the tests) and the corpus of earlier runs.
# FUZZ_RUNS=20000 makes a smoke run of a minute or two once the targets are built.
# Needs: rustup's nightly toolchain and cargo-fuzz (`cargo +nightly install cargo-fuzz
# --locked`, about 30 s). A crash stops the run with the input saved under
# fuzz/artifacts/TARGET/; it becomes a regression input under fuzz/regressions/TARGET/,
# which later runs and the smoke test (fuzz/bodies/src/fuzz_smoke.rs) replay.
# FUZZ_TARGETS="manage_body" runs only those targets; it prints their rows and leaves
# docs/reliability.md as it is (its table is of one run of every target).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${FUZZ_RUNS:-10000000}
all_targets=(pam_options config email_template ssh_auth_info begin_body answer_body manage_body)
read -ra targets <<<"${FUZZ_TARGETS:-${all_targets[*]}}"
command -v cargo-fuzz >/dev/null || cargo +nightly install cargo-fuzz --locked
cd fuzz
started=$(date +%s)
cargo +nightly fuzz build -O
built=$(( $(date +%s) - started ))
rows=()
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  log=$(mktemp)
  t0=$(date +%s)
  status=0
  inputs=("corpus/$t" "seeds/$t")
  if [ -d "regressions/$t" ]; then inputs+=("regressions/$t"); fi
  cargo +nightly fuzz run -O "$t" "${inputs[@]}" -- \
    -runs="$runs" -max_len=4096 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    >"$log" 2>&1 || status=$?
  took=$(( $(date +%s) - t0 ))
  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 || true)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  peak=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$done_line")
  corpus=$(find "corpus/$t" -type f | wc -l)
  crashes=$(find "artifacts/$t" -type f 2>/dev/null | wc -l)
  if [ "$status" != 0 ] || [ "$crashes" != 0 ]; then
    echo "bench/fuzz.sh: $t failed (exit $status); libFuzzer said:" >&2
    tail -40 "$log" >&2
    exit 1
  fi
  rows+=("| \`$t\` | ${execs:-?} | $took s | ${cov:-?} | $corpus | ${peak:-?} MB | 0 | 0 | 0 |")
  echo "bench/fuzz.sh: $t: ${execs:-?} executions in $took s, no crash"
  rm -f "$log"
done
cd ..
if [ "${targets[*]}" != "${all_targets[*]}" ]; then
  echo "bench/fuzz.sh: FUZZ_TARGETS is not every target: docs/reliability.md left as it is; the rows:"
  printf '%s\n' "${rows[@]}"
  exit 0
fi
section=$(mktemp)
{
  echo "<!-- fuzz:begin (bench/fuzz.sh) -->"
  echo "## Fuzzing"
  echo
  echo "Written by \`bash bench/fuzz.sh\` on $(date -u +%Y-%m-%d) ($(nproc) CPUs, $(rustc +nightly --version)); building the targets took $built s."
  echo "Each target is the real parsing, validation or engine code (fuzz/bodies/src/, one line each in fuzz/fuzz_targets/), run by libFuzzer with"
  echo "AddressSanitizer and LeakSanitizer from the seeds in fuzz/seeds/ (inputs of the tests) for $runs executions;"
  echo "a crash, a hang (10 s for one input) or a leak would have stopped the run."
  echo
  echo "| target | executions | time | coverage (edges) | corpus | peak RSS | crashes | hangs | leaks |"
  echo "|---|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "What each target feeds:"
  echo
  echo "- \`pam_options\`: the words of a pam.d line, to the module's option parser (\`pam_twofold::options::parse\`)."
  echo "- \`config\`: a configuration file, to \`Config::parse\` (what \`twofoldd --check-config\` runs: TOML, every value and relation)."
  echo "- \`email_template\`: \`email-code.txt\`, parsed and rendered with every placeholder."
  echo "- \`ssh_auth_info\`: sshd's \`SSH_AUTH_INFO_0\`, to the key fingerprint twofoldd derives from it."
  echo "- \`begin_body\`: arbitrary bytes decoded as \`Auth.Begin\`'s body (a \`LoginContext\`), the daemon's validation of it, and what the engine reads first (SSH or not, the key's fingerprint, the remote address)."
  echo "- \`answer_body\`: arbitrary bytes decoded as \`Auth.Answer\`'s body, the answer read as a recovery code."
  echo "- \`manage_body\`: the first byte picks one of the 17 \`Manage\` methods or \`Auth.Cancel\` and the caller (root, an ordinary user, a member of \`admin_group\`); the rest is decoded as that method's body and handed to the real engine (SQLite in memory, kept across inputs, rebuilt every 100,000). An ordinary user who gets an administrator's method through, or another user's status, enrolment or trust, fails it like a panic. Recovery codes (ten Argon2id hashes, ~200 ms) are made for one input in 256; \`store_import\` opens no file (the SQLite store refuses before)."
  echo "<!-- fuzz:end -->"
} >"$section"
python3 bench/write_section.py fuzz "$section" docs/reliability.md
rm -f "$section"
echo "bench/fuzz.sh: wrote the fuzzing part of docs/reliability.md"
