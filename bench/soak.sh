#!/usr/bin/env bash
# Soak (issue 12): SOAK_SECONDS (3600) of mixed logins from SOAK_CLIENTS (32) clients at
# once through the real pam_twofold.so against a real twofoldd, with faults at random
# intervals (SIGTERM and restart, SIGKILL and restart, the database write-locked for a
# few seconds, the SMTP server down), and twofoldd's VmRSS and open descriptors sampled
# per incarnation. Runs the ignored test in tests/tests/soak.rs (the test harness, debug
# builds) and writes the figures to the "Soak" part of docs/reliability.md; exits
# non-zero when a criterion fails (no crash, VmRSS and descriptors flat, every login
# answered in time, an audit record for every verdict, the answers right).
# Run as root: `nice -n 10 bash bench/soak.sh`; SOAK_SECONDS=300 makes a short run.
# Also: SOAK_QUIET_SECONDS (the undisturbed end: a quarter of the run, at least 150 s),
# SOAK_FAULT_GAP (seconds between faults, 20-60), SOAK_PAUSE_MS (a client's pause between
# logins, 0 to this, 400), SOAK_SAMPLE_SECONDS (2), SOAK_SEED (the random choices),
# SOAK_KEEP=1 (keep the output directory; it is kept anyway when the run fails).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${SOAK_SECONDS:-3600}
out=$(mktemp -d /tmp/twofold-soak.XXXXXX)
status=1
finish() {
  if [ "$status" = 0 ] && [ -z "${SOAK_KEEP:-}" ]; then
    rm -rf "$out"
  else
    echo "bench/soak.sh: the run's output is in $out" >&2
  fi
}
trap finish EXIT
vars=(TWOFOLD_TEST_UID="$(id -u)" TWOFOLD_SOAK_OUT="$out" TWOFOLD_SOAK_SECONDS="$seconds")
for v in CLIENTS QUIET_SECONDS FAULT_GAP PAUSE_MS SAMPLE_SECONDS SEED; do
  name=SOAK_$v
  if [ -n "${!name:-}" ]; then vars+=("TWOFOLD_SOAK_$v=${!name}"); fi
done
# twofoldd, twofoldctl, pam_inprocess and the module; the test itself is built by cargo test.
cargo build -q --workspace
started=$(date +%s)
run=0
env "${vars[@]}" cargo test -q -p twofold-integration --test soak -- --ignored --exact \
  soak_mixed_logins_under_faults --nocapture 2>&1 | tee "$out/test.log" || run=$?
took=$(( $(date +%s) - started ))
if [ ! -s "$out/summary.json" ]; then
  echo "bench/soak.sh: the soak ended without figures (exit $run); see $out/test.log" >&2
  exit 1
fi
section=$out/section.md
python3 - "$out/summary.json" "$section" "$took" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'PY'
import datetime, json, sys
summary, section, took, cpus, load = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
s = json.load(open(summary))
st = s["settings"]
def mib(kb):
    return "?" if kb is None else f"{kb / 1024:.1f} MiB"
def secs(x):
    return f"{x:.0f} s" if x < 120 else f"{x / 60:.1f} min"
L = []
L.append("<!-- soak:begin (bench/soak.sh) -->")
L.append("## Soak")
L.append("")
L.append(
    f"Written by `bash bench/soak.sh` on {datetime.date.today().isoformat()} ({cpus} CPUs; load average {load} at the end; "
    f"the whole script took {took} s). **{secs(s['ran_s'])} of logins** (`SOAK_SECONDS={st['seconds']}`) from {st['clients']} clients at once, "
    f"each pausing 0-{st['pause_ms']} ms between logins, through the real pam_twofold.so in the real libpam "
    f"(`pam_inprocess`, one process per login, `timeout={st['timeout_s']}`) against a real twofoldd: the test harness's "
    f"**{st['build']} builds**, a private bus, the login socket, SQLite. Faults came every {st['fault_gap_s'][0]}-{st['fault_gap_s'][1]} s, "
    f"none in the last {st['quiet_seconds']} s. twofoldd's VmRSS and open descriptors were read from /proc every "
    f"{st['sample_seconds']} s, per incarnation (each restart is a new pid). Seed {st['seed']} (`SOAK_SEED` repeats the choices, not the timing)."
)
L.append("")
u = st["users"]
L.append(
    f"The logins: right codes (each user's code used once per 30 s step: {len(u['right_accounts'])} of the host's accounts, then "
    f"{u['right_names']} seeded names that are no account, which twofoldd asks and checks like an unknown name, against the factor "
    f"on record); wrong codes for the other {len(u['wrong_accounts'])} accounts; names that are no account and have no factor "
    "(`tf-soak-nobody-N`); root through `sshd` with an SSH key inside the session window one code login opened before the soak "
    "(no prompt expected); the same accounts as the wrong codes, with an address on record, pressing Enter for a code by e-mail "
    "(`[email_codes] app_users = true`, aiosmtpd) and then typing a wrong code; and after each restart up to three right codes "
    "accepted before it, typed again inside their window (a replay: must be refused). The accounts' factors and addresses live in "
    "the soak's store only. `max_tries = 1`, so a login is one decision; wrong codes lock their account for 1-30 s. Each login's tty "
    "is a tag of its own, which twofoldd's audit record repeats (`twofoldd audit: ...` on its stderr here), so every attempt is "
    "matched with its records."
)
L.append("")
L.append("| criterion | result | figures |")
L.append("|---|---|---|")
for c in s["criteria"]:
    L.append(f"| {c['name']} | {'pass' if c['ok'] else '**FAIL**'} | {c['detail']} |")
L.append("")
L.append("| login | attempts | passed | refused by twofoldd (why) | no verdict | asked for a code | hung or no report |")
L.append("|---|---|---|---|---|---|---|")
tot = {"attempts": 0, "passed": 0, "refused": 0, "unavailable": 0, "asked": 0, "hung": 0}
for k in s["kinds"]:
    refused = sum(k["refused"].values())
    why = ", ".join(f"{n} {r}" for r, n in sorted(k["refused"].items(), key=lambda x: -x[1])) or "-"
    hung = k["hung"] + k["broken"]
    L.append(f"| {k['kind']} | {k['attempts']} | {k['passed']} | {refused} ({why}) | {k['unavailable']} | {k['asked']} | {hung} |")
    for key, v in (("attempts", k["attempts"]), ("passed", k["passed"]), ("refused", refused),
                   ("unavailable", k["unavailable"]), ("asked", k["asked"]), ("hung", hung)):
        tot[key] += v
L.append(f"| all | {tot['attempts']} | {tot['passed']} | {tot['refused']} | {tot['unavailable']} | {tot['asked']} | {tot['hung']} |")
L.append("")
v = s["verdict_ms"]
L.append(
    f"pam_authenticate of a login with a verdict: median {v['p50']:.1f} ms, p99 {v['p99']:.1f} ms, slowest {(v['max'] or 0):.0f} ms "
    f"({s['logins'] / max(s['ran_s'], 1):.1f} logins/s in all); a login without one (twofoldd away) took at most {s['unavailable_max_ms']:.0f} ms. "
    "\"No verdict\" is the module's \"not available\" (PAM_AUTHINFO_UNAVAIL or PAM_SYSTEM_ERR): only logins that overlapped a restart may end so."
)
L.append("")
faults = {}
for f in s["faults"]:
    faults.setdefault(f["kind"], []).append(f)
L.append("| fault | times | lasted | logins refused \"cannot check codes\" during each |")
L.append("|---|---|---|---|")
for kind, fs in sorted(faults.items()):
    d = [f["end_s"] - f["start_s"] for f in fs]
    refused = ", ".join(str(f["refused"]) for f in fs) if kind == "database locked" else "-"
    L.append(f"| {kind} | {len(d)} | {min(d):.1f}-{max(d):.1f} s | {refused} |")
if not faults:
    L.append("| none | 0 | - | - |")
L.append("")
L.append("A restart's time runs from the signal to the new daemon's \"serving\" (it waits 0-1.5 s in between); a lock is "
         "`BEGIN IMMEDIATE` held by another connection; the SMTP server is killed and started again on its port.")
L.append("")
incs = s["incarnations"]
L.append("| incarnation | served | samples | VmRSS first / last / max | descriptors first / last / max | flatness after 30 s (VmRSS: median of first tenth -> last tenth; descriptors: fewest) | end |")
L.append("|---|---|---|---|---|---|---|")
short = []
for i in incs:
    f = i["flat"]
    if i["samples"] == 0 and i is not incs[-1]:
        continue  # incarnation 0 made the schema before the users were seeded
    if f is None and i is not incs[-1] and i["deleted"] is None:
        short.append(i)
        continue
    flat = "-" if f is None else (
        f"VmRSS {mib(f['rss_first_kb'])} -> {mib(f['rss_last_kb'])} (limit {mib(f['rss_limit_kb'])}), "
        f"fds {f['fds_first']:g} -> {f['fds_last']:g} (limit {f['fds_limit']:g}): {'flat' if f['ok'] else '**grew**'}")
    end = i["end"]
    if i["deleted"]:
        end += f"; **from {i['deleted']['at_s']:.0f} s on it held its WAL and shm unlinked**"
    L.append(f"| {i['index']} (pid {i['pid']}) | {secs(i['served_s'])} | {i['samples']} | {mib(i['rss_first_kb'])} / {mib(i['rss_last_kb'])} / {mib(i['rss_max_kb'])} "
             f"| {i['fds_first']} / {i['fds_last']} / {i['fds_max']} | {flat} | {end} |")
if short:
    rss = [i["rss_last_kb"] for i in short if i["rss_last_kb"] is not None]
    fds = [i["fds_last"] for i in short if i["fds_last"] is not None]
    served = [i["served_s"] for i in short]
    ends = {}
    for i in short:
        e = i["end"].split(":")[0] if i["ok"] else i["end"]
        ends[e] = ends.get(e, 0) + 1
    L.append(f"| {len(short)} more | {min(served):.0f}-{max(served):.0f} s each | | last VmRSS {mib(min(rss) if rss else None)}-{mib(max(rss) if rss else None)} "
             f"| last {min(fds) if fds else '?'}-{max(fds) if fds else '?'} | too short | {', '.join(f'{n} {e}' for e, n in ends.items())} |")
L.append("")
a, m = s["audit"], s["mail"]
L.append(
    f"Audit: {a['records']} records ({', '.join(f'{n} {o}' for o, n in a['by_outcome'].items())}); {a['recorded']} of the "
    f"{a['with_verdict']} logins with a verdict have one, and {a['without_verdict_recorded']} without a verdict have one too "
    f"(twofoldd decided, its answer was cut off). Mail: {m['codes_mailed']} codes handed to the mailer, {m['codes_delivered']} delivered, "
    f"{m['not_sent_lines']} \"not sent\" (the server down), {m['notices_delivered']} other mails delivered (notices: an account locked). "
    f"The database grew from {s['db_bytes']['before'] / 1e6:.1f} MB to {s['db_bytes']['after'] / 1e6:.1f} MB (with its WAL)."
)
routine = ("twofoldd: listening on", "twofoldd: serving", "twofoldd: stopping")
other = sorted((x for x in s["log_lines"] if not x[0].startswith(routine)), key=lambda x: -x[1])[:6]
L.append("")
if other:
    L.append("twofoldd's other log lines, besides starting and stopping (digits as N, quoted values as \"…\"): " + "; ".join(f"`{l}` x{n}" for l, n in other) + ".")
else:
    L.append("twofoldd logged nothing else than its audit records, its starts and its stops (and the codes it could not mail, counted above).")
if any(i["deleted"] for i in incs):
    L.append("")
    L.append(
        "**What \"database intact\" found:** after another process's connection to the database closed (the lock above), "
        "twofoldd's WAL and shm were gone from its directory while twofoldd kept them open and went on writing to them. "
        "SQLite removes both when the last connection closes, and judges that from the POSIX locks each connection holds; "
        "the connection that closed saw none of twofoldd's, so took itself for the last. What twofoldd wrote from then on is in "
        "an unlinked file, read by nobody else and gone at its next start: the replays after the next restart show it, as codes "
        "accepted before it passed again.")
if s["problems"]:
    L.append("")
    L.append("Problems: " + "; ".join(p.splitlines()[0] for p in s["problems"][:5]))
L.append("<!-- soak:end -->")
open(section, "w").write("\n".join(L) + "\n")
PY
python3 bench/write_section.py soak "$section" docs/reliability.md
cat "$section"
if [ "$run" != 0 ]; then
  echo "bench/soak.sh: a criterion failed (see the table above and $out/summary.json)" >&2
  exit 1
fi
status=0
echo "bench/soak.sh: wrote the soak part of docs/reliability.md"
