#!/usr/bin/env bash
# Can a caller tell an unknown name, a name with no factor and an enrolled name apart by
# how long a wrong code takes? Runs the ignored measurement in tests/tests/enumeration.rs
# (TRIES logins of each kind, interleaved, in one process, through the real module and
# daemon of the test harness, release builds as shipped) twice: with `[login] timing_floor_us` at its
# least (50, about no floor) and at the default; writes the statistics of both to the
# "Enumeration" part of docs/reliability.md. Run as root (the tests' harness).
# ENUMERATION_TRIES: 1000. Debug builds take several times longer per call, and need a
# floor of about 1,000 µs for the same result.
set -euo pipefail
cd "$(dirname "$0")/.."
tries=${ENUMERATION_TRIES:-1000}
least=$(mktemp)
default=$(mktemp)
trap 'rm -f "$least" "$default"' EXIT
cargo build -q --release --workspace
measure() { # OUT [FLOOR_US]
  TWOFOLD_TEST_UID=$(id -u) TWOFOLD_ENUMERATION_OUT=$1 TWOFOLD_ENUMERATION_TRIES=$tries \
    TWOFOLD_ENUMERATION_FLOOR_US=${2:-} \
    cargo test -q --release -p twofold-integration --test enumeration -- --ignored --exact \
    measure_response_times_of_unknown_unenrolled_and_enrolled_names >/dev/null
}
measure "$least" 50
measure "$default"
section=$(mktemp)
trap 'rm -f "$least" "$default" "$section"' EXIT
python3 - "$least" "$default" "$tries" "$section" <<'PY'
import math, random, re, sys, statistics
least, default, tries, doc = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
def read(path):
    kinds = {}
    for line in open(path):
        k, v = line.split()
        kinds.setdefault(k, []).append(int(v))
    return kinds
def pct(xs, q):
    s = sorted(xs); return s[min(len(s) - 1, int(q * len(s)))]
def mann_whitney(a, b):
    # U with average ranks for ties; two-sided p from the normal approximation.
    both = sorted([(x, 0) for x in a] + [(x, 1) for x in b])
    ranks, i = [0.0] * len(both), 0
    while i < len(both):
        j = i
        while j + 1 < len(both) and both[j + 1][0] == both[i][0]: j += 1
        for k in range(i, j + 1): ranks[k] = (i + j) / 2 + 1
        i = j + 1
    ra = sum(r for r, (_, g) in zip(ranks, both) if g == 0)
    n1, n2 = len(a), len(b)
    u = ra - n1 * (n1 + 1) / 2
    mu, sigma = n1 * n2 / 2, math.sqrt(n1 * n2 * (n1 + n2 + 1) / 12)
    z = (u - mu) / sigma
    p = math.erfc(abs(z) / math.sqrt(2))
    return u / (n1 * n2), p
def median_diff_ci(a, b, rounds=2000):
    random.seed(1)
    d = sorted(statistics.median(random.choices(a, k=len(a))) - statistics.median(random.choices(b, k=len(b))) for _ in range(rounds))
    return d[int(0.025 * rounds)], d[int(0.975 * rounds)]
order = ["unknown", "unenrolled", "enrolled"]
def tables(kinds):
    rows = ["| kind | tries | median | mean | p95 |", "|---|---|---|---|---|"]
    for k in order:
        xs = kinds[k]
        rows.append(f"| {k} | {len(xs)} | {statistics.median(xs)/1000:.3f} ms | {statistics.mean(xs)/1000:.3f} ms | {pct(xs, 0.95)/1000:.3f} ms |")
    pairs = ["| pair | median difference (95% bootstrap interval) | P(first slower), Mann-Whitney | p (two-sided) |", "|---|---|---|---|"]
    verdicts = []
    for a, b in [("unknown", "enrolled"), ("unenrolled", "enrolled"), ("unknown", "unenrolled")]:
        lo, hi = median_diff_ci(kinds[a], kinds[b])
        d = statistics.median(kinds[a]) - statistics.median(kinds[b])
        auc, p = mann_whitney(kinds[a], kinds[b])
        pairs.append(f"| {a} - {b} | {d/1000:+.3f} ms ({lo/1000:+.3f} to {hi/1000:+.3f}) | {auc:.3f} | {p:.3g} |")
        verdicts.append((a, b, d, auc, p))
    worst = max(verdicts, key=lambda v: abs(v[3] - 0.5))
    reading = f"the largest departure from 0.5 is {worst[3]:.3f} ({worst[0]} against {worst[1]}, p = {worst[4]:.2g}), a median difference of {worst[2]/1000:+.3f} ms against medians of about {statistics.median(kinds['enrolled'])/1000:.2f} ms."
    return rows + [""] + pairs, reading
text = ["<!-- enumeration:begin (bench/enumeration.sh) -->", "## Enumeration by timing (checklist item 20)", "",
        f"A wrong code for an unknown name (`tf-no-such-user`), a name with no factor (`nobody`) and an enrolled, active name, {tries} tries each, interleaved (unknown, unenrolled, enrolled, ...) in one process through the real pam_twofold.so and twofoldd (the test harness with release builds, a private bus, the login socket; `max_tries = 1`, every name unlocked every 90 tries). The time is pam_start + pam_authenticate + pam_end. The conversation and the PAM code are the same for all three (`enumeration::unknown_unenrolled_and_enrolled_names_see_the_same_and_get_the_same_result`).", "",
        "NSS answers a name it does not know more slowly than one it knows (here nss-systemd asks systemd after the files miss), and before the floor that showed. Since then twofoldd holds every reply that asks for a code or refuses one until `[login] timing_floor_us` (250 µs by default) or the next doubling of it (daemon/src/pacing.rs). Both runs below are of the same build, one after the other: the first with the floor at its least (50 µs, below what a call takes, so about no floor), the second with the default.", ""]
for title, path in [("Floor at its least (50 µs)", least), ("Default floor (250 µs)", default)]:
    t, reading = tables(read(path))
    text += [f"### {title}", ""] + t + ["", "Reading: " + reading, ""]
text.append("A Mann-Whitney probability of 0.5 means a try of one kind is as likely to be the slower as not.")
text.append("<!-- enumeration:end -->")
open(doc, "w").write("\n".join(text) + "\n")
PY
python3 bench/write_section.py enumeration "$section" docs/reliability.md
cat "$section"
