//! Faults injected into the real parts (issue 12, "Proof under attack and failure"):
//! twofoldd killed with SIGKILL in the middle of 200 concurrent logins, the clock jumping
//! back an hour, a read-only state directory, and the login socket going away and coming
//! back. Logins run through the real pam_twofold.so in real libpam host processes
//! (`pam_inprocess`), against a real twofoldd on its SQLite store.

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use twofold_integration::*;
use twofold_pamtest::{Pause, Transaction};

/// A step boundary, for the tests on the test clock.
const T0: i64 = 1_800_000_000;
const HOUR: i64 = 3600;
/// An ed25519 public key as sshd reports it in SSH_AUTH_INFO_0.
const KEY: &str =
    "publickey ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPBt/BNd5lA1dnF//n6CHzH8KvAg/yKN0naK8HbRXq9f";

/// libpam's codes the tests meet.
const PAM_SUCCESS: i64 = 0;
const PAM_AUTH_ERR: i64 = 7;
const PAM_AUTHINFO_UNAVAIL: i64 = 9;
const PAM_MAXTRIES: i64 = 11;

fn pam_name(rc: i64) -> &'static str {
    match rc {
        PAM_SUCCESS => "PAM_SUCCESS",
        4 => "PAM_SYSTEM_ERR",
        PAM_AUTH_ERR => "PAM_AUTH_ERR",
        PAM_AUTHINFO_UNAVAIL => "PAM_AUTHINFO_UNAVAIL",
        PAM_MAXTRIES => "PAM_MAXTRIES",
        19 => "PAM_CONV_ERR",
        _ => "other",
    }
}

/// What the module shows when twofoldd gives no verdict (pam_module/src/client.rs).
const MODULE_UNAVAILABLE: &str = "The two-factor service is not available right now";
/// What twofoldd says when its store cannot decide (daemon/src/engine.rs).
const STORE_UNAVAILABLE: &str = "twofold cannot check codes right now";

/// One code per login, so every refusal ends its login (PAM_MAXTRIES); wrong codes never
/// lock or slow anyone down within a test.
const ONE_TRY: &str =
    "[lockout]\nmax_failures = 100\nsource_failures = 100\n[login]\nmax_tries = 1";

/// A console login by `user` on tty3 (service `login`), typing `answers`.
fn console(user: &str, answers: &[&str]) -> Transaction {
    Transaction {
        service: "login".into(),
        user: user.into(),
        answers: answers.iter().map(|a| a.to_string()).collect(),
        tty: Some("tty3".into()),
        ..Default::default()
    }
}

fn one(w: &World, t: Transaction) -> (i64, Vec<String>) {
    first_outcome(&w.pam_inprocess(&[t], &[]))
}

/// A libpam host process (`pam_inprocess`) running `transactions`, not waited for.
fn spawn_host(w: &World, transactions: &[Transaction]) -> Child {
    let spec = serde_json::json!({"transactions": transactions, "child": []});
    Command::new(target_dir().join("pam_inprocess"))
        .env(twofold_pamtest::CONFDIR_VARIABLE, w.path("pam.d"))
        .arg(spec.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("pam_inprocess (cargo build --workspace --all-targets)")
}

/// How a host process ended.
struct HostEnd {
    /// Its report; None when it hung (and was killed) or printed none.
    report: Option<Value>,
    /// When its end was seen (polled every 10 ms).
    ended: Instant,
    hung: bool,
    output: String,
}

impl HostEnd {
    /// The PAM code of its `n`-th transaction (-1 when there is none).
    fn rc(&self, n: usize) -> i64 {
        self.report
            .as_ref()
            .and_then(|r| r["results"][n]["rc"].as_i64())
            .unwrap_or(-1)
    }

    fn conversation(&self, n: usize) -> Vec<String> {
        self.report
            .as_ref()
            .and_then(|r| r["results"][n]["conversation"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect()
    }
}

/// Waits for `child` at most `limit`, and kills it if it is still running then.
fn wait_host(mut child: Child, limit: Duration) -> HostEnd {
    let start = Instant::now();
    let mut hung = false;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if start.elapsed() > limit => {
                hung = true;
                let _ = child.kill();
                break;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("waiting for pam_inprocess: {e}"),
        }
    }
    let ended = Instant::now();
    let out = child.wait_with_output().expect("pam_inprocess output");
    HostEnd {
        report: serde_json::from_slice(&out.stdout).ok(),
        ended,
        hung,
        output: combined(&out),
    }
}

fn sigkill(pid: u32) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("SIGKILL twofoldd");
}

/// The TOTP step a time falls in.
fn step_of(t: i64) -> i64 {
    t / 30
}

/// What the SQLite store holds for `user`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Row {
    failures: i64,
    lock_count: i64,
    locked_until: i64,
    last_step: i64,
}

fn database(w: &World) -> rusqlite::Connection {
    rusqlite::Connection::open_with_flags(
        w.path("state/twofold.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open the database read-only")
}

fn row(w: &World, user: &str) -> Row {
    database(w)
        .query_row(
            "SELECT failures, lock_count, locked_until, last_step FROM users WHERE name = ?1",
            [user],
            |r| {
                Ok(Row {
                    failures: r.get(0)?,
                    lock_count: r.get(1)?,
                    locked_until: r.get(2)?,
                    last_step: r.get(3)?,
                })
            },
        )
        .unwrap_or_else(|e| panic!("{user}'s row: {e}"))
}

fn integrity(w: &World) -> String {
    database(w)
        .query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0))
        .expect("PRAGMA integrity_check")
}

/// The audit records of logins twofoldd wrote to its log (no syslog listens in the tests,
/// so they go to stderr), in order.
fn login_audits(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("audit: action=login "))
        .map(String::from)
        .collect()
}

fn audits_of(log: &str, user: &str, outcome: &str) -> usize {
    login_audits(log)
        .iter()
        .filter(|l| l.contains(&format!("outcome={outcome} user=\"{user}\"")))
        .count()
}

/// The newest login record in twofoldd's log.
fn last_login_audit(w: &World) -> String {
    login_audits(&w.daemon_log())
        .pop()
        .unwrap_or_else(|| panic!("no login record in the log:\n{}", w.daemon_log()))
}

/// `user`'s status as twofoldctl reports it.
fn status(w: &World, user: &str) -> Value {
    let out = w.ctl(&["--json", "status", user], "");
    assert!(out.status.success(), "status {user}: {}", combined(&out));
    let v: Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    v[0].clone()
}

// ---------------------------------------------------------------------------------------
// 1. SIGKILL in the middle of 200 concurrent logins.

const LOGINS: usize = 200;
/// The daemon is killed once this many of the logins that do not pause have ended.
const KILL_AFTER: usize = 40;
/// The module's `timeout=` in the storm.
const TIMEOUT: u64 = 5;

/// One login of the storm.
struct Planned {
    user: usize,
    code: String,
    /// The step the code is for; None for a wrong code.
    step: Option<i64>,
    /// Held at its prompt (a conversation open in twofoldd) until after the kill.
    paused: bool,
}

#[test]
#[cfg_attr(
    not(as_root),
    ignore = "needs root: logs in as three accounts, as login or sshd does"
)]
fn sigkill_in_the_middle_of_200_concurrent_logins_lets_nobody_in_and_forgets_no_used_code() {
    if sqlite_only("the database file a killed daemon leaves") {
        return;
    }
    ensure_test_users();
    let mut w = World::start_at(ONE_TRY, T0);
    w.write_service("login", &w.module_line(&format!("timeout={TIMEOUT}")));
    let users = ["root", USER_A, USER_B];
    let secrets: Vec<String> = users.iter().map(|u| w.enrol_confirmed(u, T0)).collect();
    // At T0 + 60 the codes of T0 + 30, T0 + 60 and T0 + 90 are in the window: each user
    // has three codes that can pass, each once, and never after a later one.
    let now = T0 + 60;
    w.set_clock(now);
    let right: Vec<Vec<(i64, String)>> = secrets
        .iter()
        .map(|s| {
            (1..=3)
                .map(|k| (T0 + 30 * k, code_at_time(s, T0 + 30 * k)))
                .collect()
        })
        .collect();
    let plan: Vec<Planned> = (0..LOGINS)
        .map(|i| {
            let user = i % users.len();
            let (code, step) = match i % 4 {
                k @ 0..=2 => {
                    let (t, code) = &right[user][k];
                    (code.clone(), Some(step_of(*t)))
                }
                _ => {
                    let mut n = (i * 7919 + 13) % 1_000_000;
                    while right[user].iter().any(|(_, c)| *c == format!("{n:06}")) {
                        n = (n + 1) % 1_000_000;
                    }
                    (format!("{n:06}"), None)
                }
            };
            Planned {
                user,
                code,
                step,
                paused: i % 5 == 4,
            }
        })
        .collect();
    let pauses = w.path("pauses");
    let pause_dir = |i: usize| pauses.join(i.to_string());
    for (i, p) in plan.iter().enumerate() {
        if p.paused {
            std::fs::create_dir_all(pause_dir(i)).expect("pause directory");
        }
    }
    let pid = w.daemon_pid().expect("twofoldd's pid");
    let free_ended = AtomicUsize::new(0);
    let started = Instant::now();
    let (ends, killed_at, open_at_kill) = std::thread::scope(|s| {
        let handles: Vec<_> = plan
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let (w, free_ended) = (&w, &free_ended);
                let dir = pause_dir(i);
                s.spawn(move || {
                    let mut t = console(users[p.user], &[&p.code]);
                    if p.paused {
                        t.pause = Some(Pause {
                            at_prompt: 0,
                            dir: dir.display().to_string(),
                        });
                    }
                    let end = wait_host(spawn_host(w, &[t]), Duration::from_secs(60));
                    if !p.paused {
                        free_ended.fetch_add(1, Ordering::SeqCst);
                    }
                    end
                })
            })
            .collect();
        while free_ended.load(Ordering::SeqCst) < KILL_AFTER {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "only {} logins ended in 60 s",
                free_ended.load(Ordering::SeqCst)
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        sigkill(pid);
        let killed_at = Instant::now();
        let open_at_kill = (0..LOGINS)
            .filter(|&i| plan[i].paused && pause_dir(i).join("open").exists())
            .count();
        // The held logins answer now, to a daemon that is gone.
        for (i, p) in plan.iter().enumerate() {
            if p.paused {
                std::fs::write(pause_dir(i).join("go"), "").expect("go");
            }
        }
        let ends: Vec<HostEnd> = handles
            .into_iter()
            .map(|h| h.join().expect("login thread"))
            .collect();
        (ends, killed_at, open_at_kill)
    });
    let killed_log = w.daemon_log();
    let hung: Vec<String> = ends
        .iter()
        .filter(|e| e.hung || e.report.is_none())
        .map(|e| e.output.clone())
        .collect();
    assert!(
        hung.is_empty(),
        "{} host process(es) hung or gave no report: {hung:#?}",
        hung.len()
    );
    let ended_before = ends.iter().filter(|e| e.ended < killed_at).count();
    let slowest_after = ends
        .iter()
        .filter(|e| e.ended >= killed_at)
        .map(|e| e.ended - killed_at)
        .max()
        .unwrap_or_default();
    assert!(
        slowest_after < Duration::from_secs(TIMEOUT + 3),
        "a host process returned {slowest_after:?} after the kill (timeout={TIMEOUT})"
    );
    // Who passed: only on twofoldd's word, each step once, and none of the held logins.
    let mut passed: Vec<(usize, i64, String)> = Vec::new();
    let mut after_kill = 0;
    for (p, e) in plan.iter().zip(&ends) {
        if e.rc(0) != PAM_SUCCESS {
            continue;
        }
        assert!(
            !p.paused,
            "a login held at its prompt until after the kill passed: {:?}",
            e.conversation(0)
        );
        let step = p.step.unwrap_or_else(|| {
            panic!(
                "a wrong code passed for {}: {:?}",
                users[p.user],
                e.conversation(0)
            )
        });
        if e.ended >= killed_at {
            after_kill += 1;
        }
        passed.push((p.user, step, p.code.clone()));
    }
    assert!(
        !passed.is_empty(),
        "no login passed before the kill: nothing to find again after the restart"
    );
    for (u, user) in users.iter().enumerate() {
        let mut steps: Vec<i64> = passed.iter().filter(|p| p.0 == u).map(|p| p.1).collect();
        let n = steps.len();
        steps.sort();
        steps.dedup();
        assert_eq!(steps.len(), n, "a step of {user} passed twice: {passed:?}");
        // Every pass was decided before the kill: the killed daemon recorded it.
        let audited = audits_of(&killed_log, user, "success");
        assert!(
            audited >= n,
            "{n} logins of {user} passed, the killed daemon recorded {audited} passes"
        );
    }
    // A login cut off by the kill is told the service is unavailable; only twofoldd's own
    // refusals (PAM_MAXTRIES, before the kill) say otherwise.
    for e in &ends {
        let rc = e.rc(0);
        if rc != PAM_SUCCESS && rc != PAM_MAXTRIES {
            assert!(
                e.conversation(0)
                    .iter()
                    .any(|c| c.contains(MODULE_UNAVAILABLE)),
                "a login cut off by the kill ({}) was not told why: {:?}",
                pam_name(rc),
                e.conversation(0)
            );
        }
    }
    let rcs: BTreeMap<&str, usize> = ends.iter().fold(BTreeMap::new(), |mut m, e| {
        *m.entry(pam_name(e.rc(0))).or_default() += 1;
        m
    });

    // The same state directory, a new daemon.
    w.stop_daemon();
    w.start_daemon(ONE_TRY);
    let check = integrity(&w);
    assert_eq!(check, "ok", "PRAGMA integrity_check after SIGKILL");
    let mut rows = Vec::new();
    for (u, user) in users.iter().enumerate() {
        let r = row(&w, user);
        let highest = passed.iter().filter(|p| p.0 == u).map(|p| p.1).max();
        if let Some(highest) = highest {
            assert!(
                r.last_step >= highest,
                "{user}: step {highest} passed before the kill, the database's last step is {}",
                r.last_step
            );
        }
        let refused = plan
            .iter()
            .zip(&ends)
            .filter(|(p, e)| p.user == u && e.rc(0) != PAM_SUCCESS)
            .count() as i64;
        // Each refusal is audited after its commit; at most one per store connection (4)
        // can have been committed and not yet audited when the process died.
        let audited = audits_of(&killed_log, user, "failure") as i64;
        assert!(
            r.failures <= refused && r.failures <= audited + 4,
            "{user}: {} failures counted, {refused} logins refused, {audited} refusals audited",
            r.failures
        );
        assert_eq!(
            (r.lock_count, r.locked_until),
            (0, 0),
            "{user} was locked by {} refusals (max_failures 100)",
            r.failures
        );
        rows.push((user, r.failures, refused));
    }
    // Every code that passed before the kill is refused as used.
    let replays: Vec<Transaction> = passed
        .iter()
        .map(|(u, _, code)| console(users[*u], &[code]))
        .collect();
    let report = w.pam_inprocess(&replays, &[]);
    for (n, (u, step, _)) in passed.iter().enumerate() {
        let rc = report["results"][n]["rc"].as_i64().unwrap_or(-1);
        assert_eq!(
            rc, PAM_MAXTRIES,
            "the code of step {step} that passed for {} before the kill, again after the restart: {}",
            users[*u], report["results"][n]
        );
    }
    let used = login_audits(&w.daemon_log())
        .iter()
        .filter(|l| l.contains("reason=\"code already used\""))
        .count();
    assert_eq!(
        used,
        passed.len(),
        "replays refused as used after the restart:\n{}",
        w.daemon_log()
    );
    // And the restarted daemon lets each user in with the next code.
    w.set_clock(T0 + 120);
    for (user, secret) in users.iter().zip(&secrets) {
        let (rc, conv) = one(&w, console(user, &[&code_at_time(secret, T0 + 120)]));
        assert_eq!(rc, PAM_SUCCESS, "{user} after the restart: {conv:?}");
    }
    println!(
        "proved: {LOGINS} concurrent logins (3 users, {} held at their prompt, {open_at_kill} of them with a conversation open), SIGKILL after {:?}: {ended_before} had ended before it; {} passed, each step at most once, {after_kill} of them seen ending after the kill and all recorded by the daemon before it; none of the held logins passed; every host process returned, the last {slowest_after:?} after the kill (timeout={TIMEOUT}); PAM codes {rcs:?}",
        plan.iter().filter(|p| p.paused).count(),
        killed_at - started,
        passed.len()
    );
    println!(
        "proved: after the restart on the same state: integrity_check {check}; every step that passed is the user's last step or below; the {} codes that passed are refused as used; failures (counted, refused) {rows:?}, no lock; each user passes with the next code",
        passed.len()
    );
}

// ---------------------------------------------------------------------------------------
// 2. The clock jumps back an hour.

#[test]
fn a_used_code_stays_used_and_no_earlier_code_opens_when_the_clock_jumps_back_an_hour() {
    let t = T0 + HOUR;
    let w = World::start_at(ONE_TRY, T0);
    w.write_service("login", &w.module_line(""));
    let secret = w.enrol_confirmed(me(), T0);
    let login = |at: i64, code_time: i64| {
        w.set_clock(at);
        let (rc, conv) = one(&w, console(me(), &[&code_at_time(&secret, code_time)]));
        (rc, conv, last_login_audit(&w))
    };
    // A code accepted an hour before T, and one accepted at T.
    let (rc, conv, _) = login(T0 + 30, T0 + 30);
    assert_eq!(rc, PAM_SUCCESS, "at T-3570: {conv:?}");
    let (rc, conv, _) = login(t, t);
    assert_eq!(rc, PAM_SUCCESS, "at T: {conv:?}");
    // The clock goes back to T - 3600; the hour comes round again up to T.
    let refused = [
        ("T's code at T-3600", t - HOUR, t, "wrong code"),
        (
            "the code accepted at T-3570, at T-3600",
            t - HOUR,
            T0 + 30,
            "code already used",
        ),
        (
            "a code of T-3630 never used, at T-3600",
            t - HOUR,
            T0 - 30,
            "code already used",
        ),
        (
            "the code of T-1800 never used, at T-1800",
            t - 1800,
            t - 1800,
            "code already used",
        ),
        (
            "the code accepted at T, when T comes round again",
            t,
            t,
            "code already used",
        ),
        (
            "the code of T-30, at T again",
            t,
            t - 30,
            "code already used",
        ),
    ];
    for (what, at, code_time, reason) in refused {
        let (rc, conv, audit) = login(at, code_time);
        assert_eq!(rc, PAM_MAXTRIES, "{what}: {conv:?}");
        assert!(
            audit.contains("outcome=failure") && audit.contains(&format!("reason=\"{reason}\"")),
            "{what}: {audit}"
        );
    }
    let s = status(&w, me());
    assert_eq!(
        s["failures"].as_i64(),
        Some(refused.len() as i64),
        "failures after {} refusals: {s}",
        refused.len()
    );
    if !on_postgres() {
        assert_eq!(
            row(&w, me()).last_step,
            step_of(t),
            "the last step moved back"
        );
    }
    let (rc, conv, _) = login(t + 30, t + 30);
    assert_eq!(rc, PAM_SUCCESS, "the next step after T: {conv:?}");
    assert_eq!(status(&w, me())["failures"].as_i64(), Some(0));
    println!(
        "proved: with the clock set back from T to T-3600, a code accepted at T is refused when T comes round again, and no code of the hour before T opens (used or not: each is refused as used, {} refusals counted); T+30's code passes",
        refused.len()
    );
}

#[test]
fn a_lock_neither_ends_early_nor_lasts_forever_when_the_clock_jumps_back_an_hour() {
    let w = World::start_at(
        "[lockout]\nmax_failures = 3\nbase_seconds = 60\nsource_failures = 100\n[login]\nmax_tries = 1",
        T0,
    );
    w.write_service("login", &w.module_line(""));
    let secret = w.enrol_confirmed(me(), T0);
    let t = T0 + 300;
    w.set_clock(t);
    for n in 1..=3 {
        let (rc, conv) = one(&w, console(me(), &["000000"]));
        assert_ne!(rc, PAM_SUCCESS, "wrong code {n}: {conv:?}");
    }
    let locked_until = status(&w, me())["locked_until"].as_i64();
    assert_eq!(locked_until, Some(t + 60), "the third wrong code locks");
    let locked = |at: i64| {
        w.set_clock(at);
        let (rc, conv) = one(&w, console(me(), &[&code_at_time(&secret, at)]));
        (
            rc == PAM_AUTH_ERR && conv.iter().any(|c| c.contains("locked for")),
            conv,
        )
    };
    let (yes, back) = locked(t - HOUR);
    assert!(
        yes,
        "right after the clock went back an hour, the right code: {back:?}"
    );
    let (yes, conv) = locked(t - HOUR / 2);
    assert!(yes, "half an hour after the jump: {conv:?}");
    let (yes, conv) = locked(t + 59);
    assert!(yes, "a second before the lock's end: {conv:?}");
    assert_eq!(
        status(&w, me())["locked_until"].as_i64(),
        Some(t + 60),
        "the lock's end moved"
    );
    w.set_clock(t + 60);
    let (rc, conv) = one(&w, console(me(), &[&code_at_time(&secret, t + 60)]));
    assert_eq!(rc, PAM_SUCCESS, "at the lock's end: {conv:?}");
    println!(
        "proved: a 60 s lock taken at T holds after the clock goes back an hour (it said {:?}) and up to T+59, and ends at T+60 on the clock: the jump lengthens it by the hour (fails closed) and never shortens it",
        back.last().map(String::as_str).unwrap_or("")
    );
}

#[test]
#[cfg_attr(
    not(as_root),
    ignore = "needs root: only root-run sshd may present an SSH key"
)]
fn a_session_window_is_not_extended_by_the_clock_jumping_back_an_hour() {
    let w = World::start_at("", T0);
    w.write_service("sshd", &w.module_line(""));
    w.open_session_window("sshd", me(), KEY, T0);
    let opened = T0 + 30;
    let window = ssh_transaction("sshd", me(), KEY, &[]);
    w.set_clock(opened + 30);
    let (rc, conv) = one(&w, window.clone());
    assert!(
        rc == PAM_SUCCESS && conv.is_empty(),
        "in the window: {conv:?}"
    );
    // The window idles out after 30 minutes (sshd's default). The clock goes back an hour
    // right after its last use; 31 minutes later, by the clock run on from there, it has
    // been idle longer than that.
    w.set_clock(opened + 30 - HOUR + 31 * 60);
    let (rc, conv) = one(&w, window);
    assert!(
        rc != PAM_SUCCESS && conv == ["prompt: Verification code: "],
        "31 minutes idle, the clock having gone back an hour after the window's last use (at T), \
         the window still let the login in without a code (rc {rc}, conversation {conv:?}): \
         a record used or made later than now is judged as if the clock had not moved"
    );
    println!(
        "proved: a session window used at T is not honoured 31 idle minutes after the clock went back an hour (idle limit 30 min)"
    );
}

// ---------------------------------------------------------------------------------------
// 3. A read-only state directory.

/// Undoes a mount of a test when it ends, however it ends (lazily: also while busy).
struct Mounted(Option<PathBuf>);

impl Mounted {
    fn at(path: &Path) -> Mounted {
        Mounted(Some(path.to_path_buf()))
    }

    /// Unmounts now, and fails the test if it cannot.
    fn unmount(mut self) {
        if let Some(path) = self.0.take() {
            run(Command::new("umount").arg(&path));
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = Command::new("umount")
                .arg("-l")
                .arg(&path)
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A loop device of a test, detached when it ends.
struct Loop(String);

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup")
            .args(["-d", &self.0])
            .stderr(Stdio::null())
            .status();
    }
}

fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}", combined(&out));
    out
}

/// Whether `dir` takes a new file.
fn writable(dir: &Path) -> bool {
    let probe = dir.join("probe");
    let ok = std::fs::write(&probe, "").is_ok();
    let _ = std::fs::remove_file(&probe);
    ok
}

/// Runs twofoldd on `w`'s configuration and test clock; returns what it said when it
/// refused to start, or None if it was still running after 10 s (then stopped).
fn start_refused(w: &World) -> Option<String> {
    let mut child = Command::new(binary("twofoldd"))
        .arg("--config")
        .arg(w.path("twofold.toml"))
        .arg("--test-clock")
        .arg(w.path("clock"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("twofoldd");
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    Some(format!("{} ({})", combined(&out).trim(), out.status))
}

#[test]
#[cfg_attr(
    not(as_root),
    ignore = "needs root: mounts a tmpfs and binds it read-only"
)]
fn a_read_only_mount_over_the_state_directory_never_loses_an_accepted_code() {
    if sqlite_only("the database's directory") {
        return;
    }
    let mut w = World::bus_only();
    w.use_test_clock(T0);
    let state = w.path("state");
    std::fs::create_dir(&state).expect("mkdir");
    run(Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs"])
        .arg(&state));
    let _tmpfs = Mounted::at(&state);
    w.start_daemon(ONE_TRY);
    w.write_service("login", &w.module_line("timeout=5"));
    let secret = w.enrol_confirmed(me(), T0);
    let pid = w.daemon_pid().expect("pid");
    let login = |w: &World, at: i64| {
        w.set_clock(at);
        one(w, console(me(), &[&code_at_time(&secret, at)]))
    };
    // A read-only bind mount over the directory: whatever opens it from then on cannot write.
    let bind_read_only = || {
        run(Command::new("mount").arg("--bind").arg(&state).arg(&state));
        let bind = Mounted::at(&state);
        run(Command::new("mount")
            .args(["-o", "remount,bind,ro"])
            .arg(&state));
        bind
    };

    // First as an administrator would: remount the filesystem read-only.
    let remount = Command::new("mount")
        .args(["-o", "remount,ro"])
        .arg(&state)
        .output()
        .expect("mount");
    let remount_said = combined(&remount);
    let refused_remount = !remount.status.success();
    let bind = refused_remount.then(bind_read_only);
    assert!(!writable(&state), "the state directory is still writable");
    let (rc, conv) = login(&w, T0 + 30);
    assert!(
        !process_stopped(pid),
        "twofoldd died on a read-only directory"
    );
    let accepted = rc == PAM_SUCCESS;
    if accepted {
        // It wrote through the descriptors it had open: then the step must be on record.
        let (rc, conv) = login(&w, T0 + 30);
        assert_eq!(
            rc, PAM_MAXTRIES,
            "a code accepted on the read-only directory, again: {conv:?}"
        );
        assert!(
            last_login_audit(&w).contains("code already used"),
            "{}",
            last_login_audit(&w)
        );
    } else {
        assert!(
            conv.iter().any(|c| c.contains(STORE_UNAVAILABLE)),
            "refused without saying why: rc {rc}, {conv:?}"
        );
    }
    // Writable again, without a restart: the next code passes.
    match bind {
        Some(bind) => bind.unmount(),
        None => {
            run(Command::new("mount").args(["-o", "remount,rw"]).arg(&state));
        }
    }
    assert!(writable(&state), "the state directory is still read-only");
    let (rc, conv) = login(&w, T0 + 60);
    assert_eq!(
        rc,
        PAM_SUCCESS,
        "writable again, no restart: {conv:?}\n{}",
        w.daemon_log()
    );

    // A daemon (re)started on the read-only directory.
    w.stop_daemon();
    let bind = bind_read_only();
    let start_said = start_refused(&w);
    let (rc, conv) = login(&w, T0 + 90);
    assert_eq!(rc, PAM_AUTHINFO_UNAVAIL, "with no daemon serving: {conv:?}");
    bind.unmount();
    assert!(writable(&state), "the state directory is still read-only");
    let start_said = start_said.unwrap_or_else(|| {
        panic!("twofoldd started on a read-only state directory and served for 10 s")
    });
    // What it says beside the test clock's warning.
    let start_said: String = start_said
        .lines()
        .filter(|l| !l.contains("test clock"))
        .collect::<Vec<_>>()
        .join(" / ");
    let lower = start_said.to_lowercase();
    assert!(
        lower.contains("twofold.db") && lower.contains("read-only file system"),
        "twofoldd's refusal does not name the file and say it is read-only: {start_said}"
    );
    w.start_daemon(ONE_TRY);
    assert_eq!(integrity(&w), "ok");
    assert_eq!(
        row(&w, me()).last_step,
        step_of(T0 + 60),
        "the steps accepted before the restart"
    );
    let (rc, conv) = login(&w, T0 + 120);
    assert_eq!(rc, PAM_SUCCESS, "after the restart: {conv:?}");
    w.stop_daemon();
    println!(
        "proved: `mount -o remount,ro` of the state filesystem under twofoldd {}",
        if refused_remount {
            format!(
                "is refused by the kernel ({:?}): twofoldd has its database open for writing",
                remount_said.lines().next().unwrap_or("").trim()
            )
        } else {
            "succeeded".to_string()
        }
    );
    println!(
        "proved: with the state directory read-only ({}), the right code was {}; twofoldd stayed up; writable again, the next code passed with no restart",
        if refused_remount {
            "a read-only bind mount over it"
        } else {
            "remounted"
        },
        if accepted {
            "accepted through the descriptors twofoldd had open, and recorded (refused as used the second time)"
        } else {
            "refused with \"twofold cannot check codes right now\""
        }
    );
    println!(
        "proved: twofoldd started on the read-only directory refuses to serve ({start_said:?}); logins then fail closed (PAM_AUTHINFO_UNAVAIL); started on it writable again: integrity ok, the steps accepted before are on record, the next code passes"
    );
}

#[test]
#[cfg_attr(
    not(as_root),
    ignore = "needs root: makes an ext4 filesystem on a loop device"
)]
fn a_state_filesystem_the_kernel_turns_read_only_fails_logins_closed_and_loses_nothing() {
    if sqlite_only("the database's filesystem") {
        return;
    }
    let mut w = World::bus_only();
    w.use_test_clock(T0);
    let image = w.path("state.img");
    let state = w.path("state");
    std::fs::create_dir(&state).expect("mkdir");
    run(Command::new("truncate").arg("-s").arg("32M").arg(&image));
    run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&image));
    let device = run(Command::new("losetup")
        .args(["--find", "--show"])
        .arg(&image));
    let device = String::from_utf8_lossy(&device.stdout).trim().to_string();
    let _loop = Loop(device.clone());
    let mount = |state: &Path| {
        run(Command::new("mount")
            .args(["-o", "errors=remount-ro", &device])
            .arg(state));
        std::fs::set_permissions(state, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .expect("chmod");
        Mounted::at(state)
    };
    let mounted = mount(&state);
    w.start_daemon(ONE_TRY);
    w.write_service("login", &w.module_line("timeout=5"));
    let secret = w.enrol_confirmed(me(), T0);
    let pid = w.daemon_pid().expect("pid");
    w.set_clock(T0 + 30);
    let code = code_at_time(&secret, T0 + 30);

    // What twofoldd wrote so far is on the disk (the fault is a read-only filesystem, not
    // a lost write). Then an error the filesystem cannot go on from: the kernel remounts
    // it read-only (errors=remount-ro), under the running daemon and its open files.
    run(Command::new("sync").arg("-f").arg(&state));
    let name = Path::new(&device)
        .file_name()
        .expect("device name")
        .to_string_lossy()
        .into_owned();
    std::fs::write(
        format!("/sys/fs/ext4/{name}/trigger_fs_error"),
        "twofold fault test\n",
    )
    .expect("trigger an ext4 error");
    assert!(!writable(&state), "the filesystem is still writable");
    let started = Instant::now();
    let (rc, conv) = one(&w, console(me(), &[&code]));
    let took = started.elapsed();
    assert_ne!(
        rc, PAM_SUCCESS,
        "a code was accepted on a read-only filesystem"
    );
    assert!(
        conv.iter().any(|c| c.contains(STORE_UNAVAILABLE)),
        "refused without saying why: rc {rc}, {conv:?}"
    );
    let audit = last_login_audit(&w);
    assert!(audit.contains("outcome=error"), "{audit}");
    assert!(
        !process_stopped(pid),
        "twofoldd died on a read-only filesystem"
    );
    let again = one(&w, console(me(), &[&code]));
    assert_ne!(again.0, PAM_SUCCESS, "the second try: {:?}", again.1);
    let status_read = w.ctl(&["status", me()], "").status.success();

    // The kernel keeps the filesystem read-only until it is unmounted: a restart is needed.
    w.stop_daemon();
    mounted.unmount();
    let fsck = Command::new("e2fsck")
        .args(["-f", "-y", &device])
        .output()
        .expect("e2fsck");
    assert!(
        matches!(fsck.status.code(), Some(0 | 1)),
        "e2fsck: {}",
        combined(&fsck)
    );
    let _mounted = mount(&state);
    assert!(
        writable(&state),
        "the filesystem is read-only after a new mount"
    );
    w.start_daemon(ONE_TRY);
    assert_eq!(integrity(&w), "ok");
    assert_eq!(
        row(&w, me()).last_step,
        step_of(T0),
        "a refused code's step was recorded"
    );
    let (rc, conv) = one(&w, console(me(), &[&code]));
    assert_eq!(
        rc, PAM_SUCCESS,
        "the code refused on the read-only filesystem, now: {conv:?}"
    );
    let (rc, conv) = one(&w, console(me(), &[&code]));
    assert_eq!(rc, PAM_MAXTRIES, "the same code again: {conv:?}");
    w.stop_daemon();
    println!(
        "proved: with the state's ext4 turned read-only by the kernel under twofoldd, the right code is refused in {took:?} with \"twofold cannot check codes right now\" (twice; audited as {:?}); twofoldd stays up{}; after unmount, e2fsck and a restart: integrity ok, nothing was recorded (the refused code passes, once)",
        audit.split("reason=").nth(1).unwrap_or(""),
        if status_read {
            " and twofoldctl status still answers"
        } else {
            ""
        }
    );
}

// ---------------------------------------------------------------------------------------
// 4. The login socket goes away and comes back.

#[test]
fn with_the_daemon_stopped_logins_fail_closed_and_the_same_host_process_passes_once_it_is_back() {
    let mut w = World::start_at("", T0);
    w.write_service("login", &w.module_line("timeout=5"));
    w.write_service("sshd", &w.module_line("timeout=5"));
    w.write_service("safe", &w.module_line("timeout=5 failmode=safe"));
    let secret = w.enrol_confirmed(me(), T0);
    w.stop_daemon();
    assert!(
        w.socket_path().exists(),
        "the stopped daemon's socket file is gone"
    );
    let code = code_at_time(&secret, T0 + 30);
    let started = Instant::now();
    let (rc, conv) = one(&w, console(me(), &[&code]));
    let took = started.elapsed();
    assert_eq!(rc, PAM_AUTHINFO_UNAVAIL, "with no daemon: {conv:?}");
    assert!(
        conv.iter().any(|c| c.contains(MODULE_UNAVAILABLE)),
        "the person is not told: {conv:?}"
    );
    assert!(took < Duration::from_secs(2), "took {took:?}");
    // failmode=safe lets the login through when the daemon is certainly absent.
    let mut safe = console(me(), &[]);
    safe.service = "safe".into();
    let (safe_rc, safe_conv) = one(&w, safe.clone());
    assert_eq!(
        safe_rc, PAM_SUCCESS,
        "failmode=safe with the daemon stopped: {safe_conv:?}"
    );

    // One host process (a screen locker, a long-lived sshd child): a login while the
    // daemon is down, held at its prompt while the daemon starts, then the next login.
    let pause = w.path("pause");
    std::fs::create_dir(&pause).expect("pause dir");
    let mut down = ssh_transaction("sshd", me(), KEY, &[""]);
    down.pause = Some(Pause {
        at_prompt: 0,
        dir: pause.display().to_string(),
    });
    let host = spawn_host(&w, &[down, console(me(), &[&code])]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !pause.join("open").exists() {
        assert!(Instant::now() < deadline, "the first login never prompted");
        std::thread::sleep(Duration::from_millis(10));
    }
    w.set_clock(T0 + 30);
    w.start_daemon("");
    std::fs::write(pause.join("go"), "").expect("go");
    let end = wait_host(host, Duration::from_secs(20));
    assert!(!end.hung, "the host process hung: {}", end.output);
    assert_eq!(
        end.rc(0),
        PAM_AUTHINFO_UNAVAIL,
        "the login begun with the daemon down: {:?}",
        end.conversation(0)
    );
    assert!(
        end.conversation(0)
            .iter()
            .any(|c| c.contains(MODULE_UNAVAILABLE)),
        "{:?}",
        end.conversation(0)
    );
    assert_eq!(
        end.rc(1),
        PAM_SUCCESS,
        "the next login in the same process, the daemon back: {:?}\n{}",
        end.conversation(1),
        w.daemon_log()
    );
    // Back up, failmode=safe asks for the code again.
    let (rc, conv) = one(&w, safe);
    assert!(
        rc != PAM_SUCCESS && conv == ["prompt: Verification code: "],
        "failmode=safe with the daemon back: {conv:?}"
    );
    println!(
        "proved: with twofoldd stopped (its socket file left, nobody listening) a login fails closed in {took:?} (PAM_AUTHINFO_UNAVAIL, \"{MODULE_UNAVAILABLE}…\"); failmode=safe lets it through without a code, as documented"
    );
    println!(
        "proved: in one host process, a login begun while twofoldd was down fails (sshd: the notice as a prompt), and the next login after twofoldd started passes"
    );
}

#[test]
#[cfg_attr(
    not(as_root),
    ignore = "needs root: root's logins use the root-only socket"
)]
fn a_socket_file_removed_under_the_running_daemon_is_bound_again_and_logins_fail_closed_meanwhile()
{
    let w = World::start_at("", T0);
    w.write_service("login", &w.module_line("timeout=5"));
    w.write_service("safe", &w.module_line("timeout=5 failmode=safe"));
    let secret = w.enrol_confirmed(me(), T0);
    let pid = w.daemon_pid().expect("pid");
    let public = w.socket_path();
    let root_only = twofold_protocol::root_socket_path(&public);
    let login = |w: &World, service: &str, at: i64| {
        w.set_clock(at);
        let mut t = console(me(), &[&code_at_time(&secret, at)]);
        t.service = service.into();
        one(w, t)
    };
    // Held still (SIGSTOP) while the files are gone, so that the logins below meet the
    // missing files and not the ones twofoldd binds again within a second.
    let signal = |sig: nix::sys::signal::Signal| {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig).expect("signal");
    };
    signal(nix::sys::signal::Signal::SIGSTOP);
    std::fs::remove_file(&root_only).expect("remove the root-only socket");
    std::fs::remove_file(&public).expect("remove the socket");
    let started = Instant::now();
    let (rc, conv) = login(&w, "login", T0 + 30);
    let took = started.elapsed();
    let mut safe = console(me(), &[]);
    safe.service = "safe".into();
    let (safe_rc, safe_conv) = one(&w, safe);
    let ctl = w.ctl(&["status", me()], "");
    signal(nix::sys::signal::Signal::SIGCONT);
    assert_eq!(
        rc, PAM_AUTHINFO_UNAVAIL,
        "with both sockets removed: {conv:?}"
    );
    assert!(
        conv.iter().any(|c| c.contains(MODULE_UNAVAILABLE)),
        "{conv:?}"
    );
    assert_eq!(
        safe_rc, PAM_SUCCESS,
        "failmode=safe with the socket removed: {safe_conv:?}"
    );
    assert_eq!(ctl.status.code(), Some(3), "{}", combined(&ctl));
    // Running again, twofoldd finds the files gone and binds both again, without a restart.
    // It says so once each socket has its mode (a file seen before is still 0700 from the
    // umask, private until the chmod).
    let resumed = Instant::now();
    let rebound = |w: &World| {
        w.daemon_log()
            .matches("was removed; listening there again")
            .count()
    };
    while !(public.exists() && root_only.exists() && rebound(&w) == 2) {
        assert!(
            resumed.elapsed() < Duration::from_secs(5),
            "the sockets were not bound again: {}",
            w.daemon_log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let back = resumed.elapsed();
    let mode = |p: &Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).expect("socket").permissions().mode() & 0o777
    };
    assert_eq!((mode(&public), mode(&root_only)), (0o666, 0o600));
    let (rc, conv) = login(&w, "login", T0 + 60);
    assert_eq!(rc, PAM_SUCCESS, "root's login once bound again: {conv:?}");
    assert_eq!(w.daemon_pid(), Some(pid), "twofoldd was restarted");
    println!(
        "proved: with both socket files removed the right code fails closed in {took:?} (PAM_AUTHINFO_UNAVAIL), twofoldctl exits 3, failmode=safe lets the login through without a code; twofoldd bound both again {back:?} after it ran again (modes 0666 and 0600), the next login passed, no restart"
    );
}

#[test]
fn another_program_reading_the_database_while_twofoldd_runs_loses_nothing_twofoldd_writes() {
    if sqlite_only("the database file another program opens") {
        return;
    }
    let mut w = World::start("");
    w.write_service("twofold", &w.module_line(""));
    let secret = w.enrol(me());
    let wal = w.path("state/twofold.db-wal");
    // An administrator's `sqlite3 twofold.db 'select ...'`: a read-write connection,
    // closed again. SQLite deletes the WAL at the last connection's close unless another
    // process holds its locks, which twofoldd lost when it opened its own files to
    // chmod them (a close drops every POSIX lock of the process on the file).
    {
        let other = rusqlite::Connection::open(w.path("state/twofold.db")).expect("open");
        let users: i64 = other
            .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
            .expect("count");
        assert_eq!(users, 1);
    }
    assert!(wal.exists(), "the WAL twofoldd writes was deleted under it");
    wait_for_step_margin(10);
    let code = fresh_code(&secret);
    let r = w.pam("twofold", me(), &format!("{code}\n"));
    assert!(r.passed(), "{r:?}");
    w.stop_daemon();
    w.start_daemon("");
    let again = w.pam("twofold", me(), &format!("{code}\n"));
    assert!(
        !again.passed(),
        "a code accepted after another program read the database passed again after a restart: {again:?}"
    );
    println!(
        "proved: after another program opened and closed the database read-write, twofoldd's WAL was still there, and a code accepted afterwards was still refused as used after a restart"
    );
}
