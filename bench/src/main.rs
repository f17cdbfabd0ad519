//! pam-bench: measures what a twofold login costs next to pam_google_authenticator and
//! pam_oath, and how many logins twofoldd serves. `bench/run.sh` drives it:
//!
//! 1. `pam-bench setup --dir DIR`: one random secret per user, handed to all three
//!    modules (twofold's SQLite store, google-authenticator's files, pam_oath's users
//!    file), the PAM service files, the bus and daemon configurations.
//! 2. run.sh starts dbus-daemon and twofoldd on DIR.
//! 3. `pam-bench measure --dir DIR --out FILE` (under pam_wrapper): logins in this process
//!    through libpam, module by module, then twofoldd over D-Bus; writes the report.

mod dbus;
mod stats;

use clap::{Parser, Subcommand};
use stats::{Summary, ms, ms_signed};
use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use twofold_daemon::otp::{Algorithm, OtpParams, code_at, generate_secret};
use twofold_pamtest::{Outcome, Transaction};

#[derive(Parser)]
#[command(
    name = "pam-bench",
    about = "twofold's benchmark (see bench/README.md)"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Creates users, secrets and configuration in DIR.
    Setup {
        #[arg(long)]
        dir: PathBuf,
        /// Measured logins per module (one user each).
        #[arg(long, default_value_t = 200)]
        users: usize,
        /// Unmeasured logins per module first (loads caches, the daemon, the disk).
        #[arg(long, default_value_t = 5)]
        warmup: usize,
        /// Concurrent D-Bus clients for the throughput figure.
        #[arg(long, default_value_t = 16)]
        clients: usize,
        /// Logins per client.
        #[arg(long, default_value_t = 100)]
        per_client: usize,
        /// Logins of one client alone, for twofoldd's latency without contention.
        #[arg(long, default_value_t = 200)]
        sequential: usize,
    },
    /// A syslog sink: receives datagrams on SOCKET and drops them, as a syslog daemon
    /// would (these machines run none). Runs until killed.
    Sink {
        #[arg(long)]
        socket: PathBuf,
    },
    /// Runs the measurements against DIR and writes the Markdown report to OUT.
    Measure {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// Concurrent D-Bus clients: the same number as given to `setup`.
        #[arg(long, default_value_t = 16)]
        clients: usize,
    },
}

/// The PAM services compared; each is one line in its own file next to one shared `other`.
struct Module {
    /// The PAM service (file name under pam.d/).
    service: &'static str,
    label: &'static str,
}

const MODULES: [Module; 5] = [
    Module {
        service: "permit",
        label: "pam_permit (baseline)",
    },
    Module {
        service: "twofold",
        label: "pam_twofold → twofoldd",
    },
    Module {
        service: "google_authenticator",
        label: "pam_google_authenticator",
    },
    Module {
        service: "google_authenticator_reuse",
        label: "pam_google_authenticator, DISALLOW_REUSE",
    },
    Module {
        service: "oath",
        label: "pam_oath",
    },
];

/// Every module loads this too (libpam always reads `other`): the same fixed cost for all.
const OTHER: &str = "auth required pam_deny.so\n";

/// The TOTP every module uses here: RFC 6238 defaults, one step either side accepted.
const PARAMS: OtpParams = OtpParams {
    algorithm: Algorithm::SHA1,
    digits: 6,
    step: 30,
    window: 1,
};

#[derive(Debug, Clone)]
pub struct User {
    /// `warmup` or `pam` (PAM logins), `sequential` or `concurrent` (twofoldd only).
    kind: String,
    pub name: String,
    /// Base32, unpadded.
    secret: String,
}

impl User {
    /// The code for now. Computed right before it is used: with one step of tolerance
    /// either side, a login that straddles a step boundary still passes.
    pub fn code_now(&self) -> Result<String, String> {
        code_at(&PARAMS, &self.secret, unix_now())
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn main() {
    let result = match Args::parse().command {
        Command::Setup {
            dir,
            users,
            warmup,
            clients,
            per_client,
            sequential,
        } => setup(&dir, users, warmup, clients * per_client, sequential),
        Command::Sink { socket } => sink(&socket),
        Command::Measure { dir, out, clients } => measure(&dir, &out, clients),
    };
    if let Err(e) = result {
        eprintln!("pam-bench: {e}");
        std::process::exit(1);
    }
}

fn sink(socket: &Path) -> Result<(), String> {
    let sock = std::os::unix::net::UnixDatagram::bind(socket)
        .map_err(|e| format!("{}: {e}", socket.display()))?;
    let mut buf = [0u8; 8192];
    loop {
        sock.recv(&mut buf).map_err(|e| e.to_string())?;
    }
}

fn write(path: &Path, text: &str, mode: u32) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("chmod {}: {e}", path.display()))
}

fn mkdir(path: &Path) -> Result<(), String> {
    std::fs::create_dir_all(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn bus_address(dir: &Path) -> String {
    format!("unix:path={}", dir.join("bus").display())
}

fn setup(
    dir: &Path,
    users: usize,
    warmup: usize,
    concurrent: usize,
    sequential: usize,
) -> Result<(), String> {
    let random = twofold_daemon::random::OsRandom;
    let mut all = Vec::new();
    // Warm-up and measured PAM users share one numbering: bench000, bench001, ...
    for i in 0..warmup + users {
        all.push(User {
            kind: if i < warmup { "warmup" } else { "pam" }.into(),
            name: format!("bench{i:03}"),
            secret: generate_secret(&random)?,
        });
    }
    // Users for the D-Bus figures: twofoldd only.
    // "trusted": one user for the trusted path (a session window, then no prompt).
    for (kind, count) in [
        ("concurrent", concurrent),
        ("sequential", sequential),
        ("trusted", 1),
    ] {
        for i in 0..count {
            all.push(User {
                kind: kind.into(),
                name: format!("{kind}{i:04}"),
                secret: generate_secret(&random)?,
            });
        }
    }
    let table: String = all
        .iter()
        .map(|u| format!("{}\t{}\t{}\n", u.kind, u.name, u.secret))
        .collect();
    write(&dir.join("users.tsv"), &table, 0o600)?;

    // google-authenticator: one file per user, owned by the `user=` account (root),
    // not readable by others. Plain TOTP has no replay protection; DISALLOW_REUSE adds it
    // (the module then rewrites the file on every login).
    let pam_users: Vec<&User> = all
        .iter()
        .filter(|u| u.kind == "warmup" || u.kind == "pam")
        .collect();
    for (sub, options) in [
        ("ga", "\" TOTP_AUTH\n"),
        ("ga-reuse", "\" DISALLOW_REUSE\n\" TOTP_AUTH\n"),
    ] {
        mkdir(&dir.join(sub))?;
        for u in &pam_users {
            write(
                &dir.join(sub).join(&u.name),
                &format!("{}\n{options}", u.secret),
                0o400,
            )?;
        }
    }

    // pam_oath: one line per user, the secret in hex; `-` means no PIN.
    let mut oath = String::new();
    for u in &pam_users {
        let raw = data_encoding::BASE32_NOPAD
            .decode(u.secret.as_bytes())
            .map_err(|e| format!("secret of {}: {e}", u.name))?;
        writeln!(
            oath,
            "HOTP/T30 {} - {}",
            u.name,
            data_encoding::HEXLOWER.encode(&raw)
        )
        .map_err(|e| e.to_string())?;
    }
    write(&dir.join("users.oath"), &oath, 0o600)?;

    // twofoldd's store, seeded directly: pending factors, which the first right code at
    // login verifies and activates (the path of `twofoldctl enrol --no-verify`).
    let mut store = twofold_daemon::store::Store::open(&dir.join("state/twofold.db"))
        .map_err(|e| e.to_string())?;
    let now = unix_now() as i64;
    for u in &all {
        store
            .put_pending(&u.name, &u.secret, now, false, true)
            .map_err(|e| e.to_string())?;
    }
    drop(store);

    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let module = exe
        .parent()
        .map(|d| d.join("libpam_twofold.so"))
        .filter(|p| p.exists())
        .ok_or("libpam_twofold.so is not next to pam-bench: build -p pam_twofold too")?;
    let d = dir.display();
    let pam_d = dir.join("pam.d");
    mkdir(&pam_d)?;
    write(&pam_d.join("other"), OTHER, 0o644)?;
    for m in &MODULES {
        let line = match m.service {
            "permit" => "auth required pam_permit.so".to_string(),
            "twofold" => format!(
                "auth required {} bus={}",
                module.display(),
                bus_address(dir)
            ),
            "google_authenticator" => {
                format!(
                    "auth required pam_google_authenticator.so secret={d}/ga/${{USER}} user=root"
                )
            }
            "google_authenticator_reuse" => format!(
                "auth required pam_google_authenticator.so secret={d}/ga-reuse/${{USER}} user=root"
            ),
            "oath" => format!("auth required pam_oath.so usersfile={d}/users.oath window=1"),
            other => return Err(format!("no service line for {other}")),
        };
        write(&pam_d.join(m.service), &format!("{line}\n"), 0o644)?;
    }

    write(&dir.join("bus.conf"), &bus_config(dir), 0o644)?;
    // Lockout far away: a benchmark must never lock a user out halfway.
    let config = format!(
        "version = 1\n[daemon]\nbus = \"{}\"\nsocket = \"{d}/run/socket\"\ndatabase = \"{d}/state/twofold.db\"\nsyslog_socket = \"{d}/log\"\n[lockout]\nmax_failures = 100\n",
        bus_address(dir)
    );
    write(&dir.join("twofold.toml"), &config, 0o600)?;
    println!(
        "pam-bench: {users} PAM users (+{warmup} warm-up), {} twofoldd-only users in {d}",
        concurrent + sequential
    );
    Ok(())
}

/// The private bus's configuration, shared with demo.sh and the tests.
fn bus_config(dir: &Path) -> String {
    let policy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dbus/org.twofold.Twofold1.conf");
    include_str!("../../dbus/private-bus.conf.in")
        .replace("@SOCKET@", &dir.join("bus").display().to_string())
        .replace("@POLICY@", &policy.display().to_string())
        .replace("@EXTRA@", "")
}

fn read_users(dir: &Path) -> Result<Vec<User>, String> {
    let path = dir.join("users.tsv");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .map(|line| match line.split('\t').collect::<Vec<_>>()[..] {
            [kind, name, secret] => Ok(User {
                kind: kind.into(),
                name: name.into(),
                secret: secret.into(),
            }),
            _ => Err(format!("{}: bad line {line:?}", path.display())),
        })
        .collect()
}

/// Per module: every login's timings and how many succeeded.
#[derive(Default)]
struct ModuleRun {
    totals: Vec<Duration>,
    authenticates: Vec<Duration>,
    successes: usize,
    /// The first few failures, for the error message.
    failures: Vec<String>,
}

fn measure(dir: &Path, out: &Path, clients: usize) -> Result<(), String> {
    if std::env::var_os("PAM_WRAPPER_SERVICE_DIR").is_none() {
        return Err(
            "run under pam_wrapper (bench/run.sh sets LD_PRELOAD and PAM_WRAPPER_*)".into(),
        );
    }
    let users = read_users(dir)?;
    let of =
        |kind: &str| -> Vec<User> { users.iter().filter(|u| u.kind == kind).cloned().collect() };
    let (warmup, measured) = (of("warmup"), of("pam"));

    let module_login = |m: &Module, u: &User| -> Result<Outcome, String> {
        Ok(login(m.service, &u.name, &[u.code_now()?], &[], None))
    };
    for u in &warmup {
        for m in &MODULES {
            let l = module_login(m, u)?;
            if l.rc != PAM_SUCCESS {
                return Err(format!(
                    "warm-up: {} for {} returned PAM code {}",
                    m.service, u.name, l.rc
                ));
            }
        }
    }
    // Modules take turns login by login, each turn starting with a different module, so
    // a slow moment of the machine (another build, the VM's neighbours) hits them alike.
    let mut runs: Vec<ModuleRun> = MODULES.iter().map(|_| ModuleRun::default()).collect();
    for (i, u) in measured.iter().enumerate() {
        for k in 0..MODULES.len() {
            let index = (i + k) % MODULES.len();
            let l = module_login(&MODULES[index], u)?;
            let run = &mut runs[index];
            if l.rc == PAM_SUCCESS {
                run.successes += 1;
                run.totals.push(l.total);
                run.authenticates.push(l.authenticate);
            } else if run.failures.len() < 3 {
                run.failures.push(format!("{}: PAM code {}", u.name, l.rc));
            }
        }
    }
    // A benchmark of failed logins measures nothing: stop here.
    for (m, run) in MODULES.iter().zip(&runs) {
        if run.successes != measured.len() {
            return Err(format!(
                "{}: only {} of {} logins succeeded ({})",
                m.service,
                run.successes,
                measured.len(),
                run.failures.join(", ")
            ));
        }
    }

    let trusted = trusted_path(&of("trusted"), measured.len())?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let bus = bus_address(dir);
    let (alone, together, fresh, open) = runtime.block_on(async {
        let alone = dbus::throughput(&bus, &of("sequential"), 1).await?;
        let together = dbus::throughput(&bus, &of("concurrent"), clients).await?;
        let fresh = dbus::fresh_connections(&bus, 200).await?;
        let open = dbus::calls_on_open_connection(&bus, 1000).await?;
        Ok::<_, String>((alone, together, fresh, open))
    })?;

    let report = report(
        &trusted,
        &runs,
        measured.len(),
        warmup.len(),
        &[alone, together],
        &fresh,
        &open,
    );
    std::fs::write(out, &report).map_err(|e| format!("{}: {e}", out.display()))?;
    print!("{report}");
    Ok(())
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cpus} CPUs ({cpu}), Linux {}", kernel.trim())
}

const PAM_SUCCESS: i32 = 0;

/// One login through libpam in this process.
fn login(
    service: &str,
    user: &str,
    answers: &[String],
    env: &[String],
    rhost: Option<&str>,
) -> Outcome {
    twofold_pamtest::run(&Transaction {
        service: service.into(),
        user: user.into(),
        answers: answers.to_vec(),
        rhost: rhost.map(str::to_string),
        tty: None,
        env: env.to_vec(),
        pause: None,
    })
}

/// The trusted path: an SSH key login (SSH_AUTH_INFO_0 and an address, as sshd sets
/// them) that verified a code once, then `logins` logins that pass on the session window
/// without a prompt, taking turns with pam_permit logins as their baseline.
fn trusted_path(users: &[User], logins: usize) -> Result<(ModuleRun, ModuleRun), String> {
    let user = users.first().ok_or("no trusted-path user in users.tsv")?;
    let env = [format!(
        "SSH_AUTH_INFO_0=publickey ssh-ed25519 {TRUSTED_KEY}"
    )];
    let rhost = Some("192.0.2.7");
    // The first login answers the code, then "n" to "Trust this device?".
    let first = login(
        "twofold",
        &user.name,
        &[user.code_now()?, "n".into()],
        &env,
        rhost,
    );
    if first.rc != PAM_SUCCESS {
        return Err(format!(
            "trusted path: the first login returned PAM code {}",
            first.rc
        ));
    }
    let (mut permit, mut trusted) = (ModuleRun::default(), ModuleRun::default());
    for _ in 0..logins {
        for (run, login) in [
            (&mut permit, login("permit", &user.name, &[], &[], None)),
            // No answers: any prompt fails the login, so a pass means no prompt.
            (&mut trusted, login("twofold", &user.name, &[], &env, rhost)),
        ] {
            if login.rc == PAM_SUCCESS {
                run.successes += 1;
                run.totals.push(login.total);
                run.authenticates.push(login.authenticate);
            } else {
                return Err(format!(
                    "trusted path: a login returned PAM code {}",
                    login.rc
                ));
            }
        }
    }
    Ok((permit, trusted))
}

/// An ed25519 public key blob: the "key that passed" in the trusted-path logins.
const TRUSTED_KEY: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIPBt/BNd5lA1dnF//n6CHzH8KvAg/yKN0naK8HbRXq9f";

fn report(
    trusted: &(ModuleRun, ModuleRun),
    runs: &[ModuleRun],
    logins: usize,
    warmup: usize,
    daemon: &[dbus::Throughput],
    fresh: &[Duration],
    open: &[Duration],
) -> String {
    let summary: Vec<(Summary, Summary)> = runs
        .iter()
        .map(|r| (Summary::of(&r.totals), Summary::of(&r.authenticates)))
        .collect();
    let baseline = summary[0].0.median;
    let own = |service: &str| -> f64 {
        let i = MODULES
            .iter()
            .position(|m| m.service == service)
            .unwrap_or(0);
        summary[i].0.median.as_secs_f64() - baseline.as_secs_f64()
    };
    let (twofold, oath) = (own("twofold"), own("oath"));

    let mut s = String::new();
    let _ = writeln!(s, "# Performance\n");
    let _ = writeln!(
        s,
        "Written by `bash bench/run.sh` on {} ({}); release builds. \
         How it measures: [bench/README.md](../bench/README.md).\n",
        humantime::format_rfc3339_seconds(SystemTime::now()),
        machine()
    );
    let _ = writeln!(s, "## One login, in the application's process\n");
    let _ = writeln!(
        s,
        "{logins} logins per module (after {warmup} unmeasured), one per user, each user with \
         its own random 160-bit secret (the same secret in all three modules) and its \
         current code. Each login is `pam_start` + `pam_authenticate` + `pam_end` through \
         the real libpam under pam_wrapper, in one process; every service is one `auth \
         required` line, and all share one `other` file (`pam_deny.so`), which libpam \
         loads on every `pam_start`. Modules take turns login by login. syslog(3) records \
         go to a sink standing in for syslogd. *Own cost* is the module's median minus \
         pam_permit's.\n"
    );
    let _ = writeln!(
        s,
        "| module | logins passed | median | p95 | `pam_authenticate` median | own cost |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|");
    for ((m, r), (total, auth)) in MODULES.iter().zip(runs).zip(&summary) {
        let own_cost = total.median.as_secs_f64() - baseline.as_secs_f64();
        let _ = writeln!(
            s,
            "| {} | {}/{logins} | {} | {} | {} | {} |",
            m.label,
            r.successes,
            ms(total.median),
            ms(total.p95),
            ms(auth.median),
            if m.service == "permit" {
                "—".to_string()
            } else {
                ms_signed(own_cost)
            },
        );
    }
    let _ = writeln!(
        s,
        "\nReplay protection: twofoldd refuses a code's step once used (SQLite WAL, \
         `synchronous=NORMAL`: durable across a crash of the daemon, not of the machine; \
         see docs/security.md); pam_oath records the last code in its users file and fsyncs \
         it; pam_google_authenticator has none unless the user's file has \
         `DISALLOW_REUSE` (then it rewrites the file on every login).\n"
    );
    let _ = writeln!(
        s,
        "**Target** (pam_twofold's own cost at or below pam_oath's): {} — pam_twofold {}, \
         pam_oath {}.\n",
        if twofold <= oath { "met" } else { "not met" },
        ms_signed(twofold),
        ms_signed(oath)
    );

    let fresh_median = Summary::of(fresh).median;
    let open_median = Summary::of(open).median;
    let _ = writeln!(
        s,
        "Where pam_twofold's time goes: every login opens a fresh bus connection ({} here, \
         see the reference figures below) and makes four calls — `Begin`, the check of who \
         answered (`GetConnectionUnixUser`), `Answer`, and the daemon's own lookup of the \
         caller (`GetConnectionCredentials`) — at about {} each on an open connection; \
         then twofoldd's work (SQLite transaction, TOTP, audit record). pam_oath and \
         google-authenticator do their work inside the calling process.\n",
        ms(fresh_median),
        ms(open_median)
    );

    let (permit, trusted_run) = trusted;
    let (p, t) = (
        Summary::of(&permit.totals),
        Summary::of(&trusted_run.totals),
    );
    let own = t.median.as_secs_f64() - p.median.as_secs_f64();
    let limit = 2.0 * fresh_median.as_secs_f64();
    let _ = writeln!(s, "## Trusted path (no prompt)\n");
    let _ = writeln!(
        s,
        "One user logs in with an SSH key context (`SSH_AUTH_INFO_0` and a remote address in \
         the PAM transaction, as sshd sets them), verifies a code once, then logs in {} \
         more times within the session window: twofoldd answers `Begin` with success and \
         nothing is asked. Each trusted login takes turns with a pam_permit login, the \
         baseline.\n",
        trusted_run.successes
    );
    let _ = writeln!(s, "| path | logins passed | median | p95 | own cost |");
    let _ = writeln!(s, "|---|---|---|---|---|");
    let _ = writeln!(
        s,
        "| pam_permit (baseline) | {} | {} | {} | — |",
        permit.successes,
        ms(p.median),
        ms(p.p95)
    );
    let _ = writeln!(
        s,
        "| pam_twofold, trusted session window | {} | {} | {} | {} |",
        trusted_run.successes,
        ms(t.median),
        ms(t.p95),
        ms_signed(own)
    );
    let _ = writeln!(
        s,
        "\n**Target** (trusted path's own cost within 2x a bare D-Bus round trip on a fresh \
         connection, 2 x {} = {}): {} — {}.\n",
        ms(fresh_median),
        ms_signed(limit),
        if own <= limit { "met" } else { "not met" },
        ms_signed(own)
    );

    let _ = writeln!(s, "## twofoldd throughput\n");
    let _ = writeln!(
        s,
        "D-Bus clients without PAM, one connection each (opened beforehand), each logging in \
         its own users one after the other: `Begin`, then `Answer` with the right code, as \
         pam_twofold does. Each user logs in once. The clients, dbus-daemon and twofoldd \
         share the machine's CPUs.\n"
    );
    let _ = writeln!(
        s,
        "| clients | logins | time | logins/s | latency median | latency p95 |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|");
    for t in daemon {
        let lat = Summary::of(&t.latencies);
        let _ = writeln!(
            s,
            "| {} | {} | {:.2} s | {:.0} | {} | {} |",
            t.clients,
            t.latencies.len(),
            t.elapsed.as_secs_f64(),
            t.latencies.len() as f64 / t.elapsed.as_secs_f64(),
            ms(lat.median),
            ms(lat.p95)
        );
    }
    let _ = writeln!(s);
    let (f, o) = (Summary::of(fresh), Summary::of(open));
    let _ = writeln!(
        s,
        "## D-Bus reference figures (zbus client, same private bus)\n"
    );
    let _ = writeln!(s, "| what | runs | median | p95 |");
    let _ = writeln!(s, "|---|---|---|---|");
    let _ = writeln!(
        s,
        "| fresh connection: connect + auth + `Hello` + `GetNameOwner` + close | {} | {} | {} |",
        fresh.len(),
        ms(f.median),
        ms(f.p95)
    );
    let _ = writeln!(
        s,
        "| one `GetNameOwner` on an open connection | {} | {} | {} |",
        open.len(),
        ms(o.median),
        ms(o.p95)
    );
    let _ = writeln!(
        s,
        "\nAll processes float over the CPUs (no `taskset`). On these VMs the figures vary \
         from run to run by tens of percent, and now and then a whole run is 2-3x slower \
         (fsync and wake-ups): compare the rows of one run, not figures across runs."
    );
    s
}
