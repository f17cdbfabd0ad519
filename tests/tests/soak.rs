//! The soak (issue 12): for `TWOFOLD_SOAK_SECONDS` (3600), `TWOFOLD_SOAK_CLIENTS` (32)
//! clients log in at once through the real pam_twofold.so in the real libpam (the
//! `pam_inprocess` binary, one process per login as sshd forks one per connection)
//! against a real twofoldd (the harness's debug build, serving its socket and a private
//! bus), while faults come at random intervals: SIGTERM and a restart, now and then
//! SIGKILL and a restart, the database write-locked by another process for a few seconds,
//! and the SMTP server (aiosmtpd) down. The last part of the run
//! (`TWOFOLD_SOAK_QUIET_SECONDS`) has no faults, so the daemon running then is measured
//! undisturbed. twofoldd's VmRSS and open descriptors are sampled every few seconds, per
//! incarnation. `bash bench/soak.sh` runs this ignored test; it writes
//! `$TWOFOLD_SOAK_OUT/summary.json`, which the script puts into docs/reliability.md, and
//! fails when a criterion (listed in `criteria` below) fails.
//!
//! Every login carries a tag of its own as its tty (`soak<client>-<n>`), which twofoldd
//! copies into its audit record (`twofoldd audit: ... tty="..."` on its stderr here, as
//! no syslog listens), so each attempt is matched with its records.

use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use twofold_integration::*;
use twofold_pamtest::{CONFDIR_VARIABLE, Transaction};

/// The secret of every user `World::seed_database` adds.
const SECRET: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
/// An ed25519 public key as sshd reports it in SSH_AUTH_INFO_0.
const KEY: &str =
    "publickey ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPBt/BNd5lA1dnF//n6CHzH8KvAg/yKN0naK8HbRXq9f";
/// The module's `timeout=` (its default), for the connection and for each call.
const TIMEOUT: u64 = 10;
/// Seeded names that are no account (twofoldd checks their codes as it does an
/// unknown name's, against the factor on record), given right codes only, each once per
/// 30 s step.
const RIGHT_NAMES: u32 = 4000;
/// What the module shows when twofoldd gave no verdict (pam_module/src/client.rs).
const MODULE_UNAVAILABLE: &str = "The two-factor service is not available right now";
/// An incarnation's samples from its first 30 s are its warm-up; the flatness check
/// applies to incarnations that served at least 120 s.
const WARM_UP: f64 = 30.0;
const FLAT_MIN_LIFE: f64 = 120.0;
/// Flat: the last tenth's median VmRSS at most 10% + 1 MiB above the first tenth's, and
/// its fewest open descriptors at most 4 above the first tenth's fewest. (The count
/// includes the login connections in flight, 0 to 64 at any moment, so its median over
/// a few samples follows the load; a leak raises the floor.)
const RSS_GROWTH: f64 = 0.10;
const RSS_SLACK_KB: f64 = 1024.0;
const FD_SLACK: f64 = 4.0;
/// SIGTERM must stop the daemon within this (docs/reliability.md says a second).
const STOP_LIMIT: Duration = Duration::from_secs(5);
/// A login overlapping a fault's window by this much either side counts as during it.
const SLACK: f64 = 0.5;

struct Settings {
    out: PathBuf,
    seconds: u64,
    clients: usize,
    quiet: u64,
    gap: (u64, u64),
    pause_ms: u64,
    sample: u64,
    seed: u64,
}

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v}: expected a whole number")),
        Err(_) => default,
    }
}

impl Settings {
    fn from_env() -> Settings {
        let out = PathBuf::from(std::env::var("TWOFOLD_SOAK_OUT").expect("TWOFOLD_SOAK_OUT"));
        let seconds = env_u64("TWOFOLD_SOAK_SECONDS", 3600);
        let quiet = env_u64(
            "TWOFOLD_SOAK_QUIET_SECONDS",
            (seconds / 4).max(150).min(seconds / 2),
        );
        let gap = match std::env::var("TWOFOLD_SOAK_FAULT_GAP") {
            Ok(v) => {
                let (lo, hi) = v
                    .split_once('-')
                    .and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?)))
                    .unwrap_or_else(|| panic!("TWOFOLD_SOAK_FAULT_GAP={v}: expected MIN-MAX"));
                assert!(lo <= hi && lo > 0, "TWOFOLD_SOAK_FAULT_GAP={v}");
                (lo, hi)
            }
            Err(_) => (20, 60),
        };
        let seed = env_u64(
            "TWOFOLD_SOAK_SEED",
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
                ^ u64::from(std::process::id()),
        );
        Settings {
            out,
            seconds,
            clients: env_u64("TWOFOLD_SOAK_CLIENTS", 32) as usize,
            quiet,
            gap,
            pause_ms: env_u64("TWOFOLD_SOAK_PAUSE_MS", 400),
            sample: env_u64("TWOFOLD_SOAK_SAMPLE_SECONDS", 2).max(1),
            seed,
        }
    }
}

/// SplitMix64: the soak's choices, reproducible from `TWOFOLD_SOAK_SEED`.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            v.swap(i, self.below(i as u64 + 1) as usize);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Right,
    Wrong,
    Unknown,
    Trusted,
    Mail,
    /// A right code accepted before a restart, typed again after it (within its window):
    /// the step it used must still be refused.
    Replay,
}

const KINDS: [Kind; 6] = [
    Kind::Right,
    Kind::Wrong,
    Kind::Unknown,
    Kind::Trusted,
    Kind::Mail,
    Kind::Replay,
];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Right => "right code",
            Kind::Wrong => "wrong code",
            Kind::Unknown => "unknown name",
            Kind::Trusted => "session window (sshd, key)",
            Kind::Mail => "code by e-mail asked, then a wrong code",
            Kind::Replay => "right code again after a restart",
        }
    }
    /// Whether it must pass when no fault is in the way (the others must never pass).
    fn should_pass(self) -> bool {
        matches!(self, Kind::Right | Kind::Trusted)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Passed,
    /// twofoldd's verdict, not a pass.
    Refused,
    /// No verdict from twofoldd: the module said the service is not available.
    Unavailable,
    /// A login in the session window was asked for a code.
    Asked,
    /// pam_inprocess did not end in time and was killed.
    Hung,
    /// No report from pam_inprocess (it crashed, say).
    Broken,
}

impl Outcome {
    fn name(self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::Refused => "refused",
            Outcome::Unavailable => "unavailable",
            Outcome::Asked => "asked for a code",
            Outcome::Hung => "hung",
            Outcome::Broken => "broken",
        }
    }
    fn verdict(self) -> bool {
        matches!(self, Outcome::Passed | Outcome::Refused)
    }
}

struct Attempt {
    tag: String,
    kind: Kind,
    start: f64,
    end: f64,
    rc: i64,
    outcome: Outcome,
    /// Why it was refused, in a word or two.
    reason: &'static str,
    /// pam_authenticate alone, in ms.
    auth_ms: f64,
    /// The conversation, kept only for the attempts a criterion may name.
    conversation: Option<String>,
}

/// What the clients share.
struct Clients {
    t0: Instant,
    end: Instant,
    pause_ms: u64,
    pam_dir: PathBuf,
    pam_inprocess: PathBuf,
    /// Right-code users, least recently used first, with the last step used: accounts
    /// first (each once per step), then the names that are no account.
    right_accounts: Mutex<VecDeque<(String, u64)>>,
    right_names: Mutex<VecDeque<(String, u64)>>,
    /// Accounts with an address on record, for wrong codes and codes by e-mail.
    wrong_accounts: Vec<String>,
    /// Running pam_inprocess processes: deadline, and whether the watchdog killed it.
    running: Mutex<HashMap<u32, (Instant, bool)>>,
    /// Clients still running.
    active: AtomicUsize,
    attempts: AtomicUsize,
    unavailable: AtomicUsize,
    /// Right codes accepted lately: when (soak seconds), the time the code is for, the
    /// user, the code.
    accepted: Mutex<VecDeque<(f64, u64, String, String)>>,
}

/// The host's accounts but root (the session window's) and nobody: factors and addresses
/// for them go into this soak's store only, nothing of the system changes. twofoldd
/// treats an account's login in full (its canonical name, scope, lockout, notices, codes
/// by e-mail); a name that is no account it asks and checks like an unknown one.
fn accounts() -> Vec<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").expect("/etc/passwd");
    let names: Vec<String> = passwd
        .lines()
        .filter_map(|l| l.split(':').next())
        .filter(|n| !n.is_empty() && *n != "root" && *n != "nobody")
        .filter(|n| nix::unistd::User::from_name(n).ok().flatten().is_some())
        .map(String::from)
        .collect();
    assert!(names.len() >= 6, "too few accounts for the soak: {names:?}");
    names
}

fn seed_name(i: u32) -> String {
    format!("seed{i:06}")
}

/// A code that is wrong now for the seeded secret (an hour ahead).
fn wrong_code(now: u64) -> String {
    for ahead in [3600, 7200, 10800] {
        let wrong = code_at_time(SECRET, (now + ahead) as i64);
        let near: Vec<String> = [-60i64, -30, 0, 30, 60]
            .iter()
            .map(|d| code_at_time(SECRET, now as i64 + d))
            .collect();
        if !near.contains(&wrong) {
            return wrong;
        }
    }
    "000000".into()
}

impl Clients {
    fn secs(&self) -> f64 {
        self.t0.elapsed().as_secs_f64()
    }

    fn transaction(&self, rng: &mut Rng, client: usize, tag: &str) -> (Kind, Transaction, u64) {
        let kind = match rng.below(100) {
            0..35 => Kind::Right,
            35..55 => Kind::Wrong,
            55..70 => Kind::Unknown,
            70..95 => Kind::Trusted,
            _ => Kind::Mail,
        };
        self.build(kind, rng, client, tag)
    }

    /// A login of `kind`; a right code becomes a wrong one when every right-code user
    /// had its code of this step already.
    fn build(
        &self,
        mut kind: Kind,
        rng: &mut Rng,
        client: usize,
        tag: &str,
    ) -> (Kind, Transaction, u64) {
        let now = unix_now();
        let mut user = String::new();
        let mut answers = vec![wrong_code(now)];
        if kind == Kind::Right {
            let step = now / 30;
            let free = |pool: &Mutex<VecDeque<(String, u64)>>| {
                let mut pool = pool.lock().unwrap();
                let (name, last) = pool.pop_front()?;
                if last < step {
                    pool.push_back((name.clone(), step));
                    Some(name)
                } else {
                    pool.push_front((name, last));
                    None
                }
            };
            match free(&self.right_accounts).or_else(|| free(&self.right_names)) {
                Some(name) => {
                    user = name;
                    answers = vec![code_at_time(SECRET, now as i64)];
                }
                None => kind = Kind::Wrong,
            }
        }
        let rhost = format!("192.0.2.{}", 10 + client % 200);
        let mut t = Transaction {
            service: "twofold".into(),
            rhost: Some(rhost),
            tty: Some(tag.into()),
            ..Default::default()
        };
        match kind {
            Kind::Right => {}
            Kind::Wrong => {
                let n = self.wrong_accounts.len() as u64;
                user = self.wrong_accounts[rng.below(n) as usize].clone();
            }
            Kind::Unknown => user = format!("tf-soak-nobody-{}", rng.below(50_000)),
            Kind::Mail => {
                let n = self.wrong_accounts.len() as u64;
                user = self.wrong_accounts[rng.below(n) as usize].clone();
                answers.insert(0, String::new());
            }
            Kind::Replay => unreachable!("replays are the supervisor's"),
            Kind::Trusted => {
                // sshd as root, the key and address that opened root's session window:
                // no prompt (none is answered).
                user = me().into();
                answers.clear();
                t.service = "sshd".into();
                t.rhost = Some("192.0.2.7".into());
                t.env = vec![format!("SSH_AUTH_INFO_0={KEY}")];
            }
        }
        t.user = user;
        t.answers = answers;
        (kind, t, now)
    }

    /// One login in a pam_inprocess process of its own: its report, and whether the
    /// watchdog had to kill it.
    fn login(&self, t: &Transaction) -> (Option<Value>, bool) {
        let spec = json!({"transactions": [t], "child": []});
        let mut child = Command::new(&self.pam_inprocess)
            .env(CONFDIR_VARIABLE, &self.pam_dir)
            .arg(spec.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("pam_inprocess (cargo build --workspace --all-targets)");
        let pid = child.id();
        // Three calls (connect, Begin, Answer) of TIMEOUT each, and more.
        let limit = Duration::from_secs(3 * TIMEOUT + 10);
        self.running
            .lock()
            .unwrap()
            .insert(pid, (Instant::now() + limit, false));
        let mut text = Vec::new();
        if let Some(mut out) = child.stdout.take() {
            let _ = out.read_to_end(&mut text);
        }
        // Not reaped yet, so the watchdog cannot have killed another process by this pid.
        let killed = self
            .running
            .lock()
            .unwrap()
            .remove(&pid)
            .is_some_and(|(_, k)| k);
        let _ = child.wait();
        (serde_json::from_slice(&text).ok(), killed)
    }

    fn run(&self, client: usize, seed: u64) -> Vec<Attempt> {
        let mut rng = Rng(seed);
        let mut done = Vec::new();
        let mut n = 0u64;
        while Instant::now() < self.end {
            n += 1;
            let tag = format!("soak{client}-{n}");
            let (kind, t, code_time) = self.transaction(&mut rng, client, &tag);
            let start = self.secs();
            let (report, killed) = self.login(&t);
            let end = self.secs();
            let a = classify(tag, kind, start, end, report, killed);
            self.attempts.fetch_add(1, Ordering::Relaxed);
            if kind == Kind::Right && a.outcome == Outcome::Passed {
                let mut accepted = self.accepted.lock().unwrap();
                accepted.push_back((end, code_time, t.user.clone(), t.answers[0].clone()));
                if accepted.len() > 256 {
                    accepted.pop_front();
                }
            }
            if a.outcome == Outcome::Unavailable {
                self.unavailable.fetch_add(1, Ordering::Relaxed);
            }
            done.push(a);
            std::thread::sleep(Duration::from_millis(rng.below(self.pause_ms + 1)));
        }
        self.active.fetch_sub(1, Ordering::SeqCst);
        done
    }

    /// Kills the logins that outlived their limit.
    fn watchdog(&self) {
        while self.active.load(Ordering::SeqCst) > 0 {
            std::thread::sleep(Duration::from_millis(250));
            let now = Instant::now();
            for (pid, (deadline, killed)) in self.running.lock().unwrap().iter_mut() {
                if now > *deadline && !*killed {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(*pid as i32),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                    *killed = true;
                }
            }
        }
    }
}

fn classify(
    tag: String,
    kind: Kind,
    start: f64,
    end: f64,
    report: Option<Value>,
    killed: bool,
) -> Attempt {
    let mut a = Attempt {
        tag,
        kind,
        start,
        end,
        rc: -1,
        outcome: Outcome::Broken,
        reason: "",
        auth_ms: (end - start) * 1000.0,
        conversation: None,
    };
    if killed {
        a.outcome = Outcome::Hung;
        return a;
    }
    let Some(r) = report
        .as_ref()
        .map(|v| &v["results"][0])
        .filter(|r| r.is_object())
    else {
        return a;
    };
    a.rc = r["rc"].as_i64().unwrap_or(-1);
    let conversation = r["conversation"]
        .as_array()
        .map(|lines| {
            lines
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" | ")
        })
        .unwrap_or_default();
    if let (Some(s), Some(n)) = (
        r["authenticate"]["secs"].as_u64(),
        r["authenticate"]["nanos"].as_u64(),
    ) {
        a.auth_ms = s as f64 * 1000.0 + n as f64 / 1e6;
    }
    a.outcome = if conversation.contains(MODULE_UNAVAILABLE) {
        Outcome::Unavailable
    } else if a.rc == 0 {
        Outcome::Passed
    } else if kind == Kind::Trusted && conversation.contains("prompt:") {
        Outcome::Asked
    } else {
        Outcome::Refused
    };
    if a.outcome == Outcome::Refused {
        a.reason = if conversation.contains("locked") {
            "locked"
        } else if conversation.contains("from here") {
            "source waits"
        } else if conversation.contains("cannot check codes") {
            "store unavailable"
        } else if conversation.contains("Wrong code") {
            "wrong code"
        } else if conversation.contains("No more codes by e-mail") {
            "no more mails"
        } else {
            "other"
        };
    }
    let expected = match a.outcome {
        Outcome::Passed => kind.should_pass(),
        Outcome::Refused => !kind.should_pass() && a.reason != "other",
        _ => false,
    };
    if !expected {
        a.conversation = Some(conversation);
    }
    a
}

#[derive(Default)]
struct Incarnation {
    pid: u32,
    started: f64,
    /// When its log said "serving" (its start when it never did).
    serving: f64,
    ended: Option<f64>,
    end: String,
    /// The exit was one the soak caused, as it expected it.
    ok: bool,
    stop_ms: Option<u128>,
    /// (seconds since serving, VmRSS kB, open descriptors)
    samples: Vec<(f64, u64, usize)>,
    log: PathBuf,
    /// When a sample first found it holding a database file that is no longer there (its
    /// WAL or shm unlinked by another process), and which.
    deleted: Option<(f64, Vec<String>)>,
}

struct FaultRecord {
    kind: &'static str,
    start: f64,
    end: f64,
    detail: String,
    /// Logins refused with "cannot check codes" while it lasted (set at the end).
    refused: usize,
}

impl FaultRecord {
    fn restart(&self) -> bool {
        self.kind.contains("restart")
    }
}

#[derive(Clone, Copy, Debug)]
enum FaultKind {
    Term,
    Kill,
    Lock,
    SmtpDown,
}

enum Active {
    Lock {
        conn: rusqlite::Connection,
        until: Instant,
        start: f64,
    },
    SmtpDown {
        until: Instant,
        start: f64,
    },
}

struct Supervisor<'a> {
    w: &'a World,
    config: PathBuf,
    t0: Instant,
    daemon: Option<Child>,
    incarnations: Vec<Incarnation>,
    faults: Vec<FaultRecord>,
    problems: Vec<String>,
    smtp: Option<Child>,
    smtp_port: u16,
    rng: Rng,
    /// The replays after restarts.
    replays: Vec<Attempt>,
}

/// A soak that fails half-way leaves no daemon or mail server behind.
impl Drop for Supervisor<'_> {
    fn drop(&mut self) {
        for child in [self.daemon.take(), self.smtp.take()].into_iter().flatten() {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn describe(status: &ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit {c}"),
        (_, Some(s)) => format!(
            "killed by {}{}",
            nix::sys::signal::Signal::try_from(s)
                .map(|s| s.as_str().to_string())
                .unwrap_or_else(|_| format!("signal {s}")),
            if status.core_dumped() {
                " (core dumped)"
            } else {
                ""
            }
        ),
        _ => format!("{status}"),
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// aiosmtpd on 127.0.0.1:`port`, storing into `maildir` (as tests/src/smtp.rs starts it,
/// but on a port of our choosing, so it can come back where twofoldd looks for it).
fn start_smtp(maildir: &Path, port: u16) -> Child {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let mut child = Command::new("/usr/bin/python3")
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("/usr/bin/python3 with python3-aiosmtpd (scripts/packages.txt: tests)");
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return child;
            }
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        assert!(
            Instant::now() < deadline,
            "aiosmtpd did not come back on port {port}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The database files (`twofold.db*`) process `pid` holds open that are no longer in
/// their directory. SQLite unlinks the WAL and shm when the last connection closes, and
/// decides it is the last from its POSIX locks: a process that holds none (twofoldd, when
/// something closed another descriptor of those files after SQLite locked them) has them
/// unlinked by the next outside connection that closes, and writes on where nobody reads.
fn deleted_database_files(pid: u32) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    let mut found: Vec<String> = entries
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .filter(|n| n.starts_with("twofold.db") && n.ends_with(" (deleted)"))
        .collect();
    found.sort();
    found.dedup();
    found
}

fn vm_rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

fn open_fds(pid: u32) -> Option<usize> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()
        .map(|d| d.count())
}

impl Supervisor<'_> {
    fn secs(&self) -> f64 {
        self.t0.elapsed().as_secs_f64()
    }

    fn start_daemon(&mut self) -> bool {
        let index = self.incarnations.len();
        let log = self.w.path(&format!("twofoldd-{index}.log"));
        let file = std::fs::File::create(&log).expect("log");
        let started = self.secs();
        let mut child = Command::new(binary("twofoldd"))
            .arg("--config")
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("twofoldd");
        let pid = child.id();
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut serving = None;
        while Instant::now() < deadline {
            if std::fs::read_to_string(&log).is_ok_and(|s| s.contains("serving")) {
                serving = Some(self.secs());
                break;
            }
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if serving.is_none() {
            self.problems.push(format!(
                "incarnation {index} (pid {pid}) did not start within 15 s; its log ends:\n{}",
                tail(&log, 10)
            ));
        }
        self.incarnations.push(Incarnation {
            pid,
            started,
            serving: serving.unwrap_or(started),
            log,
            ..Default::default()
        });
        self.daemon = Some(child);
        serving.is_some()
    }

    /// Stops the daemon with `signal` and checks it ended as that signal should end it.
    fn stop_daemon(&mut self, signal: nix::sys::signal::Signal) {
        use nix::sys::signal::Signal;
        let Some(mut child) = self.daemon.take() else {
            return;
        };
        let pid = child.id();
        let sent = Instant::now();
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal);
        let status = loop {
            if let Ok(Some(status)) = child.try_wait() {
                break Some(status);
            }
            if sent.elapsed() > Duration::from_secs(10) {
                break None;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let took = sent.elapsed();
        let at = self.secs();
        let index = self.incarnations.len() - 1;
        let (end, ok) = match &status {
            None => {
                let _ = child.kill();
                let _ = child.wait();
                (
                    format!("{}: still running after 10 s", signal.as_str()),
                    false,
                )
            }
            Some(st) => {
                let ok = match signal {
                    Signal::SIGKILL => st.signal() == Some(9),
                    _ => st.code() == Some(0) && took <= STOP_LIMIT,
                };
                (
                    format!(
                        "{}: {} after {} ms",
                        signal.as_str(),
                        describe(st),
                        took.as_millis()
                    ),
                    ok,
                )
            }
        };
        if !ok {
            let inc = &self.incarnations[index];
            self.problems.push(format!(
                "incarnation {index} (pid {pid}): {end}; its log ends:\n{}",
                tail(&inc.log, 10)
            ));
        }
        let inc = &mut self.incarnations[index];
        inc.ended = Some(at);
        inc.end = end;
        inc.ok = ok;
        inc.stop_ms = Some(took.as_millis());
    }

    fn restart(&mut self, signal: nix::sys::signal::Signal, clients: &Clients) {
        let start = self.secs();
        self.stop_daemon(signal);
        // Down a moment: the logins meanwhile find nobody listening.
        std::thread::sleep(Duration::from_millis(self.rng.below(1500)));
        let served = self.start_daemon();
        let end = self.secs();
        self.faults.push(FaultRecord {
            kind: if signal == nix::sys::signal::Signal::SIGKILL {
                "SIGKILL, restart"
            } else {
                "SIGTERM, restart"
            },
            start,
            end,
            detail: if served {
                format!("no daemon for {:.1} s", end - start)
            } else {
                "the new daemon did not start".into()
            },
            refused: 0,
        });
        if served {
            self.replay(clients, start);
        }
    }

    /// A daemon that ended without being told to is a crash: say so, start another.
    fn check_alive(&mut self) {
        let Some(child) = self.daemon.as_mut() else {
            return;
        };
        let Ok(Some(status)) = child.try_wait() else {
            return;
        };
        let at = self.secs();
        let index = self.incarnations.len() - 1;
        let inc = &mut self.incarnations[index];
        inc.ended = Some(at);
        inc.end = format!("ended by itself: {}", describe(&status));
        inc.ok = false;
        let problem = format!(
            "incarnation {index} (pid {}) ended by itself at {at:.1} s ({}); its log ends:\n{}",
            inc.pid,
            describe(&status),
            tail(&inc.log, 20)
        );
        self.problems.push(problem);
        self.daemon = None;
        std::thread::sleep(Duration::from_secs(1));
        self.start_daemon();
        let end = self.secs();
        self.faults.push(FaultRecord {
            kind: "crash (not injected), restart",
            start: at - 0.2,
            end,
            detail: describe(&status),
            refused: 0,
        });
    }

    fn sample(&mut self) {
        let Some(pid) = self.daemon.as_ref().map(Child::id) else {
            return;
        };
        let (Some(rss), Some(fds)) = (vm_rss_kb(pid), open_fds(pid)) else {
            return;
        };
        let deleted = deleted_database_files(pid);
        let now = self.secs();
        let inc = self.incarnations.last_mut().expect("an incarnation");
        inc.samples.push((now - inc.serving, rss, fds));
        if inc.deleted.is_none() && !deleted.is_empty() {
            inc.deleted = Some((now, deleted));
        }
    }

    /// Right codes accepted before `before` (the restart's signal) and still inside their
    /// window, typed again: twofoldd must refuse each, as the step it used is recorded.
    fn replay(&mut self, clients: &Clients, before: f64) {
        let now = unix_now();
        let picks: Vec<(String, String)> = clients
            .accepted
            .lock()
            .unwrap()
            .iter()
            .rev()
            .filter(|(at, code_time, _, _)| *at < before && now + 3 < (code_time / 30 + 2) * 30)
            .take(3)
            .map(|(_, _, user, code)| (user.clone(), code.clone()))
            .collect();
        for (i, (user, code)) in picks.into_iter().enumerate() {
            let tag = format!("soakreplay{}-{i}", self.incarnations.len() - 1);
            let t = Transaction {
                service: "twofold".into(),
                user,
                answers: vec![code],
                rhost: Some("192.0.2.9".into()),
                tty: Some(tag.clone()),
                ..Default::default()
            };
            let start = self.secs();
            let (report, killed) = clients.login(&t);
            let end = self.secs();
            self.replays
                .push(classify(tag, Kind::Replay, start, end, report, killed));
        }
    }

    /// Another writer holds the database's write lock (`BEGIN IMMEDIATE`), as
    /// `World::lock_database` does, but waiting its turn: under load twofoldd writes
    /// all the time, and a lock without a busy timeout would fail at once.
    fn lock_database(&mut self, hold: Duration) -> Active {
        let conn = rusqlite::Connection::open(self.w.path("state/twofold.db")).expect("open");
        conn.busy_timeout(Duration::from_secs(10))
            .expect("busy timeout");
        conn.execute_batch("BEGIN IMMEDIATE")
            .expect("the database's write lock");
        Active::Lock {
            conn,
            until: Instant::now() + hold,
            start: self.secs(),
        }
    }

    fn end_fault(&mut self, active: Active) {
        match active {
            Active::Lock { conn, start, .. } => {
                let _ = conn.execute_batch("ROLLBACK");
                drop(conn);
                let end = self.secs();
                self.faults.push(FaultRecord {
                    kind: "database locked",
                    start,
                    end,
                    detail: format!("held {:.1} s", end - start),
                    refused: 0,
                });
            }
            Active::SmtpDown { start, .. } => {
                let maildir = self.w.path("mail");
                self.smtp = Some(start_smtp(&maildir, self.smtp_port));
                let end = self.secs();
                self.faults.push(FaultRecord {
                    kind: "SMTP server down",
                    start,
                    end,
                    detail: format!("down {:.1} s", end - start),
                    refused: 0,
                });
            }
        }
    }

    fn start_fault(&mut self, kind: FaultKind, clients: &Clients) -> Option<Active> {
        use nix::sys::signal::Signal;
        match kind {
            FaultKind::Term => {
                self.restart(Signal::SIGTERM, clients);
                None
            }
            FaultKind::Kill => {
                self.restart(Signal::SIGKILL, clients);
                None
            }
            FaultKind::Lock => {
                let hold = Duration::from_millis(self.rng.between(2000, 6000));
                Some(self.lock_database(hold))
            }
            FaultKind::SmtpDown => {
                if let Some(mut smtp) = self.smtp.take() {
                    let _ = smtp.kill();
                    let _ = smtp.wait();
                }
                Some(Active::SmtpDown {
                    until: Instant::now() + Duration::from_millis(self.rng.between(5000, 20000)),
                    start: self.secs(),
                })
            }
        }
    }

    fn next_fault_kind(&mut self, bag: &mut Vec<FaultKind>, first: &mut bool) -> FaultKind {
        if bag.is_empty() {
            // The first round has each fault once; later ones restarts and locks twice as
            // often as SIGKILL, and the mail server down as often.
            *bag = if *first {
                vec![
                    FaultKind::Term,
                    FaultKind::Kill,
                    FaultKind::Lock,
                    FaultKind::SmtpDown,
                ]
            } else {
                vec![
                    FaultKind::Term,
                    FaultKind::Term,
                    FaultKind::Kill,
                    FaultKind::Lock,
                    FaultKind::Lock,
                    FaultKind::SmtpDown,
                    FaultKind::SmtpDown,
                ]
            };
            *first = false;
            self.rng.shuffle(bag);
        }
        bag.pop().expect("a fault")
    }

    /// Injects faults until `quiet_from`, samples until the clients are done.
    fn run(&mut self, s: &Settings, clients: &Clients, quiet_from: Instant) {
        let gap = |rng: &mut Rng| Duration::from_secs(rng.between(s.gap.0, s.gap.1));
        let interval = Duration::from_secs(s.sample);
        let progress_every = Duration::from_secs((s.seconds / 10).clamp(10, 60));
        let mut next_sample = Instant::now();
        let mut next_progress = Instant::now() + progress_every;
        let mut next_fault = Instant::now() + gap(&mut self.rng);
        let mut active: Option<Active> = None;
        let (mut bag, mut first) = (Vec::new(), true);
        while clients.active.load(Ordering::SeqCst) > 0 {
            self.check_alive();
            let now = Instant::now();
            if now >= next_sample {
                self.sample();
                next_sample = (next_sample + interval).max(now);
            }
            let due = match &active {
                Some(Active::Lock { until, .. } | Active::SmtpDown { until, .. }) => now >= *until,
                None => false,
            };
            if due {
                if let Some(a) = active.take() {
                    self.end_fault(a);
                }
                next_fault = Instant::now() + gap(&mut self.rng);
            }
            // No fault starts within 25 s of the quiet part (a lock or a mail outage is
            // over within 20 s).
            if active.is_none() && now >= next_fault && now + Duration::from_secs(25) < quiet_from {
                let kind = self.next_fault_kind(&mut bag, &mut first);
                active = self.start_fault(kind, clients);
                next_fault = Instant::now() + gap(&mut self.rng);
            }
            if now >= next_progress {
                next_progress += progress_every;
                let last = self.incarnations.last().and_then(|i| i.samples.last());
                eprintln!(
                    "soak: {:.0}/{} s: {} logins ({} without a verdict), {} faults, incarnation {}: {}",
                    self.secs(),
                    s.seconds,
                    clients.attempts.load(Ordering::Relaxed),
                    clients.unavailable.load(Ordering::Relaxed),
                    self.faults.len(),
                    self.incarnations.len() - 1,
                    last.map(|(_, rss, fds)| format!("VmRSS {rss} kB, {fds} fds"))
                        .unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if let Some(a) = active.take() {
            self.end_fault(a);
        }
        self.check_alive();
        self.sample();
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Nearest-rank percentile.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// The flatness of one incarnation's samples after its warm-up: VmRSS's medians of the
/// first and last tenth, the descriptors' floors.
fn flatness(samples: &[(f64, u64, usize)]) -> Option<Value> {
    let after: Vec<&(f64, u64, usize)> = samples.iter().filter(|s| s.0 >= WARM_UP).collect();
    if after.len() < 20 {
        return None;
    }
    let tenth = (after.len() / 10).max(2);
    let (first, last) = (&after[..tenth], &after[after.len() - tenth..]);
    let rss = |part: &[&(f64, u64, usize)]| median(part.iter().map(|s| s.1 as f64).collect());
    let fds = |part: &[&(f64, u64, usize)]| {
        part.iter()
            .map(|s| s.2 as f64)
            .fold(f64::INFINITY, f64::min)
    };
    let (rss_first, rss_last) = (rss(first), rss(last));
    let (fds_first, fds_last) = (fds(first), fds(last));
    let rss_limit = rss_first * (1.0 + RSS_GROWTH) + RSS_SLACK_KB;
    let fds_limit = fds_first + FD_SLACK;
    Some(json!({
        "samples": after.len(),
        "tenth": tenth,
        "from_s": after[0].0,
        "to_s": after[after.len() - 1].0,
        "rss_first_kb": rss_first,
        "rss_last_kb": rss_last,
        "rss_limit_kb": rss_limit,
        "fds_first": fds_first,
        "fds_last": fds_last,
        "fds_limit": fds_limit,
        "ok": rss_last <= rss_limit && fds_last <= fds_limit,
    }))
}

/// What twofoldd's logs say: audit records per attempt tag, and the lines worth a look.
#[derive(Default)]
struct Logs {
    records: usize,
    by_outcome: BTreeMap<String, usize>,
    tags: HashMap<String, u32>,
    mails_sent: usize,
    panics: Vec<String>,
    not_sent: usize,
    /// Other lines, digits and quoted values blanked, with a count.
    other: BTreeMap<String, usize>,
}

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let at = line.find(&format!(" {key}="))? + key.len() + 2;
    let rest = &line[at..];
    if let Some(quoted) = rest.strip_prefix('"') {
        quoted.split('"').next()
    } else {
        rest.split(' ').next()
    }
}

fn shape(line: &str) -> String {
    let mut out = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                if quoted {
                    out.push_str("\"…\"");
                }
            }
            _ if quoted => {}
            '0'..='9' => {
                if !out.ends_with('N') {
                    out.push('N');
                }
            }
            _ => out.push(c),
        }
    }
    out.chars().take(140).collect()
}

fn read_logs(incarnations: &[Incarnation]) -> Logs {
    let mut logs = Logs::default();
    for inc in incarnations {
        let Ok(file) = std::fs::File::open(&inc.log) else {
            continue;
        };
        for line in BufReader::new(file).lines().map_while(Result::ok) {
            if let Some(record) = line.strip_prefix("twofoldd audit: ") {
                logs.records += 1;
                let record = format!(" {record}");
                let outcome = field(&record, "outcome").unwrap_or("?").to_string();
                *logs.by_outcome.entry(outcome).or_default() += 1;
                if field(&record, "reason") == Some("code e-mailed") {
                    logs.mails_sent += 1;
                }
                if let Some(tag) = field(&record, "tty").filter(|t| t.starts_with("soak")) {
                    *logs.tags.entry(tag.to_string()).or_default() += 1;
                }
            } else if line.contains("panicked") {
                logs.panics.push(line);
            } else if line.contains("was not sent") {
                logs.not_sent += 1;
            } else {
                *logs.other.entry(shape(&line)).or_default() += 1;
            }
        }
    }
    logs
}

fn delivered(maildir: &Path) -> (usize, usize) {
    let (mut codes, mut notices) = (0, 0);
    for dir in ["new", "cur"] {
        let Ok(entries) = std::fs::read_dir(maildir.join(dir)) else {
            continue;
        };
        for e in entries.flatten() {
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            if text.contains("Subject: Your login code") {
                codes += 1;
            } else {
                notices += 1;
            }
        }
    }
    (codes, notices)
}

fn overlaps(a: &Attempt, windows: &[(f64, f64)]) -> bool {
    windows
        .iter()
        .any(|&(s, e)| a.start < e + SLACK && a.end > s - SLACK)
}

fn example(a: &Attempt) -> Value {
    json!({
        "tag": a.tag,
        "kind": a.kind.name(),
        "start_s": (a.start * 10.0).round() / 10.0,
        "took_ms": a.auth_ms.round(),
        "rc": a.rc,
        "outcome": a.outcome.name(),
        "conversation": a.conversation,
    })
}

fn examples<'a>(v: impl Iterator<Item = &'a Attempt>) -> Value {
    Value::Array(v.take(10).map(example).collect())
}

fn db_bytes(w: &World) -> u64 {
    ["state/twofold.db", "state/twofold.db-wal"]
        .iter()
        .filter_map(|p| std::fs::metadata(w.path(p)).ok())
        .map(|m| m.len())
        .sum()
}

#[test]
#[ignore = "a measurement of an hour: bash bench/soak.sh runs it"]
fn soak_mixed_logins_under_faults() {
    require_root("twofoldd must run as root for root's logins and its socket");
    let s = Settings::from_env();
    std::fs::create_dir_all(&s.out).expect("TWOFOLD_SOAK_OUT");
    eprintln!(
        "soak: {} s ({} s quiet at the end), {} clients, a fault every {}-{} s, seed {}",
        s.seconds, s.quiet, s.clients, s.gap.0, s.gap.1, s.seed
    );
    let mut rng = Rng(s.seed);
    let w = World::bus_only();
    let smtp_port = free_port();
    let maildir = w.path("mail");
    let smtp = start_smtp(&maildir, smtp_port);
    // One try per login, so every attempt ends in one decision; wrong codes lock their
    // users for seconds, not minutes, so the wrong-code users go on being answered.
    let config = w.write_config(&format!(
        "[login]\nmax_tries = 1\n\
         [lockout]\nmax_failures = 100\nsource_failures = 100\nbase_seconds = 1\nmax_seconds = 30\nsource_backoff_seconds = 1\n\
         {}\
         [email_codes]\nenabled = true\napp_users = true\nper_hour = 100\n",
        smtp::plain_section(smtp_port, 5)
    ));
    let line = w.module_line(&format!("timeout={TIMEOUT}"));
    w.write_service("twofold", &line);
    w.write_service("sshd", &line);

    let t0 = Instant::now();
    let mut sup = Supervisor {
        w: &w,
        config,
        t0,
        daemon: None,
        incarnations: Vec::new(),
        faults: Vec::new(),
        problems: Vec::new(),
        smtp: Some(smtp),
        smtp_port,
        rng: Rng(rng.next()),
        replays: Vec::new(),
    };
    // The first daemon makes the schema; the users go in while no daemon runs (an outside
    // connection beside a running twofoldd unlinks its WAL: see `deleted_database_files`).
    assert!(sup.start_daemon(), "{:?}", sup.problems);
    sup.stop_daemon(nix::sys::signal::Signal::SIGTERM);
    // The users: seeded names (active, one secret), the accounts' factors and the
    // addresses of those for wrong codes and mails, and (below) root's session window for
    // sshd with KEY from 192.0.2.7 (its code, then "n" to "Trust this device?").
    w.seed_database(RIGHT_NAMES, 0, 0);
    let accounts = accounts();
    let (right_accounts, wrong_accounts) = accounts.split_at(accounts.len() / 3);
    {
        let conn = rusqlite::Connection::open(w.path("state/twofold.db")).expect("open");
        conn.execute_batch("BEGIN IMMEDIATE").expect("begin");
        for name in &accounts {
            conn.execute(
                "INSERT INTO users (name, secret, state, enrolled_at) VALUES (?1, ?2, 'active', 0)",
                (name, SECRET),
            )
            .expect("a factor");
        }
        for name in wrong_accounts {
            conn.execute(
                "INSERT INTO contacts (user, email) VALUES (?1, ?2)",
                (name, format!("{name}@example.org")),
            )
            .expect("an address");
        }
        conn.execute_batch("COMMIT").expect("commit");
    }
    assert!(sup.start_daemon(), "{:?}", sup.problems);
    let root_secret = w.enrol(me());
    let opened = w.pam_inprocess(
        &[ssh_transaction(
            "sshd",
            me(),
            KEY,
            &[&fresh_code(&root_secret), "n"],
        )],
        &[],
    );
    let (rc, conv) = first_outcome(&opened);
    assert_eq!(rc, 0, "root's session window: {conv:?}");

    let start = Instant::now();
    let end = start + Duration::from_secs(s.seconds);
    let quiet_from = end - Duration::from_secs(s.quiet);
    let clients = Clients {
        t0,
        end,
        pause_ms: s.pause_ms,
        pam_dir: w.path("pam.d"),
        pam_inprocess: target_dir().join("pam_inprocess"),
        right_accounts: Mutex::new(right_accounts.iter().map(|n| (n.clone(), 0)).collect()),
        right_names: Mutex::new((0..RIGHT_NAMES).map(|i| (seed_name(i), 0)).collect()),
        wrong_accounts: wrong_accounts.to_vec(),
        running: Mutex::new(HashMap::new()),
        active: AtomicUsize::new(s.clients),
        attempts: AtomicUsize::new(0),
        unavailable: AtomicUsize::new(0),
        accepted: Mutex::new(VecDeque::new()),
    };
    // Before the hour: a right code and a login in the window pass (their tags are not
    // the soak's).
    for (i, kind) in [Kind::Right, Kind::Trusted].into_iter().enumerate() {
        let (built, t, _) = clients.build(kind, &mut rng, 0, &format!("preflight-{i}"));
        assert_eq!(built, kind);
        let (report, killed) = clients.login(&t);
        let a = classify(String::new(), kind, 0.0, 0.0, report, killed);
        assert_eq!(
            a.outcome,
            Outcome::Passed,
            "{}: rc {}, {:?}",
            kind.name(),
            a.rc,
            a.conversation
        );
    }
    let soak_start = t0.elapsed().as_secs_f64();
    let db_before = db_bytes(&w);
    let seeds: Vec<u64> = (0..s.clients).map(|_| rng.next()).collect();
    let mut attempts: Vec<Attempt> = std::thread::scope(|scope| {
        let handles: Vec<_> = seeds
            .iter()
            .enumerate()
            .map(|(c, &seed)| {
                let clients = &clients;
                scope.spawn(move || clients.run(c, seed))
            })
            .collect();
        scope.spawn(|| clients.watchdog());
        sup.run(&s, &clients, quiet_from);
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a client"))
            .collect()
    });
    let soak_end = t0.elapsed().as_secs_f64();
    sup.stop_daemon(nix::sys::signal::Signal::SIGTERM);
    if let Some(mut smtp) = sup.smtp.take() {
        let _ = smtp.kill();
        let _ = smtp.wait();
    }
    let db_after = db_bytes(&w);
    attempts.append(&mut sup.replays);
    let integrity: String = rusqlite::Connection::open(w.path("state/twofold.db"))
        .and_then(|c| c.query_row("PRAGMA integrity_check", [], |r| r.get(0)))
        .unwrap_or_else(|e| e.to_string());
    for f in sup
        .faults
        .iter_mut()
        .filter(|f| f.kind == "database locked")
    {
        f.refused = attempts
            .iter()
            .filter(|a| a.reason == "store unavailable")
            .filter(|a| a.start < f.end + SLACK && a.end > f.start - SLACK)
            .count();
    }

    // What happened.
    let logs = read_logs(&sup.incarnations);
    let (codes_delivered, notices_delivered) = delivered(&maildir);
    let restarts: Vec<(f64, f64)> = sup
        .faults
        .iter()
        .filter(|f| f.restart())
        .map(|f| (f.start, f.end))
        .collect();
    let disturbing: Vec<(f64, f64)> = sup
        .faults
        .iter()
        .filter(|f| f.restart() || f.kind == "database locked")
        .map(|f| (f.start, f.end))
        .collect();

    let mut kinds = Vec::new();
    for kind in KINDS {
        let of: Vec<&Attempt> = attempts.iter().filter(|a| a.kind == kind).collect();
        let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
        for a in of.iter().filter(|a| a.outcome == Outcome::Refused) {
            *reasons.entry(a.reason).or_default() += 1;
        }
        let count = |o: Outcome| of.iter().filter(|a| a.outcome == o).count();
        kinds.push(json!({
            "kind": kind.name(),
            "attempts": of.len(),
            "passed": count(Outcome::Passed),
            "refused": reasons,
            "unavailable": count(Outcome::Unavailable),
            "asked": count(Outcome::Asked),
            "hung": count(Outcome::Hung),
            "broken": count(Outcome::Broken),
        }));
    }

    // 1. No crash: every end was one the soak caused, as it expected it; no panic.
    let exits_ok = sup.incarnations.iter().all(|i| i.ok) && sup.problems.is_empty();
    let max_stop = sup
        .incarnations
        .iter()
        .filter(|i| i.end.starts_with("SIGTERM"))
        .filter_map(|i| i.stop_ms)
        .max()
        .unwrap_or(0);
    let no_crash = exits_ok && logs.panics.is_empty();

    // 1b. The database: no daemon left writing to files another process unlinked, and
    // the file sound at the end.
    let deleted: Vec<String> = sup
        .incarnations
        .iter()
        .enumerate()
        .filter_map(|(i, inc)| {
            let (at, files) = inc.deleted.as_ref()?;
            let after = sup
                .faults
                .iter()
                .rfind(|f| f.start <= *at)
                .map(|f| format!(", after the {} at {:.0} s", f.kind, f.start))
                .unwrap_or_default();
            Some(format!(
                "incarnation {i} at {at:.0} s{after}: {}",
                files.join(", ")
            ))
        })
        .collect();
    let intact = deleted.is_empty() && integrity == "ok";

    // 2. Flat memory and descriptors.
    let mut incarnations = Vec::new();
    let mut flat_checked = 0;
    let mut flat_ok = true;
    for (index, inc) in sup.incarnations.iter().enumerate() {
        let lived = inc.ended.unwrap_or(soak_end) - inc.serving;
        let flat = if lived >= FLAT_MIN_LIFE {
            flatness(&inc.samples)
        } else {
            None
        };
        if let Some(f) = &flat {
            flat_checked += 1;
            flat_ok &= f["ok"].as_bool().unwrap_or(false);
        }
        let rss: Vec<u64> = inc.samples.iter().map(|s| s.1).collect();
        let fds: Vec<usize> = inc.samples.iter().map(|s| s.2).collect();
        incarnations.push(json!({
            "index": index,
            "pid": inc.pid,
            "started_s": (inc.started * 10.0).round() / 10.0,
            "served_s": (lived * 10.0).round() / 10.0,
            "end": inc.end,
            "ok": inc.ok,
            "samples": inc.samples.len(),
            "rss_first_kb": rss.first(),
            "rss_last_kb": rss.last(),
            "rss_max_kb": rss.iter().max(),
            "fds_first": fds.first(),
            "fds_last": fds.last(),
            "fds_max": fds.iter().max(),
            "flat": flat,
            "deleted": inc.deleted.as_ref().map(|(at, files)| json!({"at_s": at, "files": files})),
        }));
    }
    let final_flat = incarnations.last().is_some_and(|i| i["flat"].is_object());
    let flat = flat_ok && flat_checked > 0 && final_flat;

    // 3. Every login answered: a verdict from twofoldd unless it overlapped a restart,
    // and then a quick refusal; none hung or lost its report.
    let hung: Vec<&Attempt> = attempts
        .iter()
        .filter(|a| matches!(a.outcome, Outcome::Hung | Outcome::Broken))
        .collect();
    let unexcused: Vec<&Attempt> = attempts
        .iter()
        .filter(|a| !a.outcome.verdict() && a.outcome != Outcome::Asked)
        .filter(|a| !overlaps(a, &restarts))
        .collect();
    let slow_refusals: Vec<&Attempt> = attempts
        .iter()
        .filter(|a| a.outcome == Outcome::Unavailable && a.auth_ms >= (TIMEOUT * 1000) as f64)
        .collect();
    let mut verdict_ms: Vec<f64> = attempts
        .iter()
        .filter(|a| a.outcome.verdict())
        .map(|a| a.auth_ms)
        .collect();
    verdict_ms.sort_by(f64::total_cmp);
    let unavailable_max = attempts
        .iter()
        .filter(|a| a.outcome == Outcome::Unavailable)
        .map(|a| a.auth_ms)
        .fold(0.0, f64::max);
    let answered = hung.is_empty() && unexcused.is_empty() && slow_refusals.is_empty();

    // 4. The audit trail: a record for every attempt twofoldd gave a verdict on.
    let with_verdict: Vec<&Attempt> = attempts.iter().filter(|a| a.outcome.verdict()).collect();
    let missing: Vec<&Attempt> = with_verdict
        .iter()
        .copied()
        .filter(|a| !logs.tags.contains_key(&a.tag))
        .collect();
    let known: std::collections::HashSet<&str> = attempts.iter().map(|a| a.tag.as_str()).collect();
    let orphans = logs
        .tags
        .keys()
        .filter(|t| !known.contains(t.as_str()))
        .count();
    let without_verdict_recorded = attempts
        .iter()
        .filter(|a| !a.outcome.verdict() && logs.tags.contains_key(&a.tag))
        .count();
    let audit = missing.is_empty() && orphans == 0;

    // 5. The answers were right: nothing passed that must not; what must pass passed
    // unless a restart or a locked database was in its way.
    let wrongly_passed: Vec<&Attempt> = attempts
        .iter()
        .filter(|a| a.outcome == Outcome::Passed && !a.kind.should_pass())
        .collect();
    let wrongly_refused: Vec<&Attempt> = attempts
        .iter()
        .filter(|a| a.kind.should_pass() && a.outcome != Outcome::Passed)
        .filter(|a| !overlaps(a, &disturbing))
        .collect();
    let odd_refusals: Vec<&Attempt> = attempts
        .iter()
        .filter(|a| a.outcome == Outcome::Refused && a.reason == "other")
        .filter(|a| !overlaps(a, &disturbing))
        .collect();
    let right = wrongly_passed.is_empty() && wrongly_refused.is_empty() && odd_refusals.is_empty();

    let criteria = json!([
        {"name": "no crash", "ok": no_crash, "detail": format!(
            "{} incarnations; every end was the one the soak caused (SIGTERM: exit 0 within {} s, slowest {} ms; SIGKILL: killed); {} panics in the logs; {} problems",
            sup.incarnations.len(), STOP_LIMIT.as_secs(), max_stop, logs.panics.len(), sup.problems.len())},
        {"name": "database intact", "ok": intact, "detail": format!(
            "{} of {} incarnations wrote on to database files another process had unlinked{}; integrity_check after the run: {integrity}",
            deleted.len(), sup.incarnations.len(),
            deleted.first().map(|d| format!(" (first: {d})")).unwrap_or_default())},
        {"name": "VmRSS and descriptors flat", "ok": flat, "detail": format!(
            "{flat_checked} incarnations served {FLAT_MIN_LIFE} s or more (the last one among them: {final_flat}); per incarnation, after its first {WARM_UP} s: median of the last tenth of samples <= median of the first tenth + {:.0}% + {} kB (VmRSS); fewest descriptors of the last tenth <= fewest of the first tenth + {} (the count includes login connections in flight)",
            RSS_GROWTH * 100.0, RSS_SLACK_KB, FD_SLACK)},
        {"name": "every login answered in time", "ok": answered, "detail": format!(
            "{} hung or without a report; {} without a verdict outside a restart; {} refusals without a verdict took timeout={TIMEOUT} s or more; the slowest verdict {:.0} ms, the slowest refusal without one {:.0} ms",
            hung.len(), unexcused.len(), slow_refusals.len(), verdict_ms.last().copied().unwrap_or(0.0), unavailable_max)},
        {"name": "audit trail complete", "ok": audit, "detail": format!(
            "{} of {} logins with a verdict have an audit record; {} records name no login of the soak",
            with_verdict.len() - missing.len(), with_verdict.len(), orphans)},
        {"name": "answers right", "ok": right, "detail": format!(
            "{} wrong codes, unknown names, e-mail logins or replays after a restart passed; {} right codes or session-window logins refused outside a restart or lock; {} refused for another reason",
            wrongly_passed.len(), wrongly_refused.len(), odd_refusals.len())},
    ]);
    let mut fault_counts: BTreeMap<&str, usize> = BTreeMap::new();
    for f in &sup.faults {
        *fault_counts.entry(f.kind).or_default() += 1;
    }
    let summary = json!({
        "settings": {
            "seconds": s.seconds, "quiet_seconds": s.quiet, "clients": s.clients,
            "fault_gap_s": [s.gap.0, s.gap.1], "pause_ms": s.pause_ms,
            "sample_seconds": s.sample, "seed": s.seed, "timeout_s": TIMEOUT,
            "build": target_dir().file_name().map(|n| n.to_string_lossy().into_owned()),
            "users": {"right_names": RIGHT_NAMES, "right_accounts": right_accounts, "wrong_accounts": wrong_accounts},
        },
        "ran_s": soak_end - soak_start,
        "logins": attempts.len(),
        "kinds": kinds,
        "verdict_ms": {
            "count": verdict_ms.len(),
            "p50": percentile(&verdict_ms, 0.5),
            "p99": percentile(&verdict_ms, 0.99),
            "max": verdict_ms.last(),
        },
        "unavailable_max_ms": unavailable_max,
        "faults": sup.faults.iter().map(|f| json!({
            "kind": f.kind, "start_s": (f.start * 10.0).round() / 10.0,
            "end_s": (f.end * 10.0).round() / 10.0, "detail": f.detail, "refused": f.refused,
        })).collect::<Vec<_>>(),
        "fault_counts": fault_counts,
        "incarnations": incarnations,
        "audit": {
            "records": logs.records,
            "by_outcome": logs.by_outcome,
            "with_verdict": with_verdict.len(),
            "recorded": with_verdict.len() - missing.len(),
            "without_verdict_recorded": without_verdict_recorded,
            "orphans": orphans,
        },
        "mail": {
            "codes_mailed": logs.mails_sent,
            "codes_delivered": codes_delivered,
            "notices_delivered": notices_delivered,
            "not_sent_lines": logs.not_sent,
        },
        "db_bytes": {"before": db_before, "after": db_after},
        "log_lines": logs.other.iter().filter(|(_, n)| **n > 0).map(|(l, n)| json!([l, n])).collect::<Vec<_>>(),
        "panics": logs.panics.iter().take(5).collect::<Vec<_>>(),
        "problems": sup.problems,
        "criteria": criteria,
        "examples": {
            "hung": examples(hung.iter().copied()),
            "unexcused": examples(unexcused.iter().copied()),
            "slow_refusals": examples(slow_refusals.iter().copied()),
            "missing_audit": examples(missing.iter().copied()),
            "wrongly_passed": examples(wrongly_passed.iter().copied()),
            "wrongly_refused": examples(wrongly_refused.iter().copied()),
            "odd_refusals": examples(odd_refusals.iter().copied()),
        },
    });
    let mut tsv = String::from("incarnation\tpid\tseconds_serving\tvmrss_kb\tfds\n");
    for (index, inc) in sup.incarnations.iter().enumerate() {
        for (t, rss, fds) in &inc.samples {
            tsv.push_str(&format!("{index}\t{}\t{t:.1}\t{rss}\t{fds}\n", inc.pid));
        }
    }
    std::fs::write(s.out.join("samples.tsv"), tsv).expect("samples.tsv");
    std::fs::write(
        s.out.join("summary.json"),
        serde_json::to_string_pretty(&summary).expect("JSON"),
    )
    .expect("summary.json");
    let failed: Vec<&Value> = criteria
        .as_array()
        .expect("criteria")
        .iter()
        .filter(|c| c["ok"] != true)
        .collect();
    if !failed.is_empty() {
        // The logs are the evidence; the world's directory goes when it drops.
        let logs_dir = s.out.join("logs");
        let _ = std::fs::create_dir_all(&logs_dir);
        for inc in &sup.incarnations {
            if let Some(name) = inc.log.file_name() {
                let _ = std::fs::copy(&inc.log, logs_dir.join(name));
            }
        }
    }
    assert!(
        failed.is_empty(),
        "soak criteria failed: {failed:#?}\nproblems: {:#?}",
        sup.problems
    );
    println!(
        "proved: {} logins over {:.0} s with {} faults: no crash, VmRSS and descriptors flat, every login answered, every verdict audited",
        attempts.len(),
        soak_end - soak_start,
        sup.faults.len()
    );
}
