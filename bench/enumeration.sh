#!/usr/bin/env bash
# Can a caller tell an unknown name, a name with no factor and an enrolled name apart by
# how long a wrong code takes? Runs the ignored measurement in tests/tests/enumeration.rs
# (TRIES logins of each kind, interleaved, in one process, through the real module and
# daemon of the test harness, debug builds) and writes the statistics to the
# "Enumeration" part of docs/reliability.md. Run as root (the tests' harness), after
# `cargo build --workspace --all-targets`. ENUMERATION_TRIES: 1000.
set -euo pipefail
cd "$(dirname "$0")/.."
tries=${ENUMERATION_TRIES:-1000}
times=$(mktemp)
trap 'rm -f "$times"' EXIT
TWOFOLD_TEST_UID=$(id -u) TWOFOLD_ENUMERATION_OUT=$times TWOFOLD_ENUMERATION_TRIES=$tries \
  cargo test -q -p twofold-integration --test enumeration -- --ignored --exact \
  measure_response_times_of_unknown_unenrolled_and_enrolled_names >/dev/null
python3 - "$times" "$tries" docs/reliability.md <<'PY'
import math, random, re, sys, statistics
path, tries, doc = sys.argv[1], int(sys.argv[2]), sys.argv[3]
kinds = {}
for line in open(path):
    k, v = line.split()
    kinds.setdefault(k, []).append(int(v))
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
    verdicts.append((a, b, d, lo, hi, auc, p))
text = ["<!-- enumeration:begin (bench/enumeration.sh) -->", "## Enumeration by timing (checklist item 20)", "",
        f"A wrong code for an unknown name (`tf-no-such-user`), a name with no factor (`nobody`) and an enrolled, active name, {tries} tries each, interleaved (unknown, unenrolled, enrolled, ...) in one process through the real pam_twofold.so and twofoldd (the test harness: debug builds, a private bus, the login socket; `max_tries = 1`, every name unlocked every 90 tries). The time is pam_start + pam_authenticate + pam_end. The conversation and the PAM code are the same for all three (`enumeration::unknown_unenrolled_and_enrolled_names_see_the_same_and_get_the_same_result`).", ""]
text += rows + [""] + pairs + [""]
worst = max(verdicts, key=lambda v: abs(v[5] - 0.5))
text.append(f"Reading: a Mann-Whitney probability of 0.5 means a try of one kind is as likely to be the slower as not; the largest departure here is {worst[5]:.3f} ({worst[0]} against {worst[1]}), a median difference of {worst[2]/1000:+.3f} ms against medians of about {statistics.median(kinds['enrolled'])/1000:.2f} ms.")
text.append("<!-- enumeration:end -->")
section = "\n".join(text) + "\n"
try:
    old = open(doc).read()
except FileNotFoundError:
    old = "# Reliability\n"
pattern = re.compile(r"<!-- enumeration:begin.*?<!-- enumeration:end -->\n", re.S)
new = pattern.sub(lambda _: section, old) if pattern.search(old) else old.rstrip("\n") + "\n\n" + section
open(doc, "w").write(new)
print(section)
PY
