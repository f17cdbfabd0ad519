//! pam-bench: measures what a twofold login costs next to pam_google_authenticator and
//! pam_oath, and how many logins twofoldd serves. `bench/run.sh` drives it:
//!
//! 1. `pam-bench setup --dir DIR`: one random secret per user, handed to all three
//!    modules (twofold's SQLite store, google-authenticator's files, pam_oath's users
//!    file), the PAM service files, the bus and daemon configurations.
//!    `pam-bench scale-setup --dir DIR` adds the stores of the scale figures (by default
//!    100, 10,000 and 100,000 users, each without and with 1,000,000 trust rows).
//! 2. run.sh starts dbus-daemon, twofoldd (socket and bus), the trivial peer-to-peer
//!    server (`p2p-server`, the floor) and, with the scale figures, one twofoldd per store.
//! 3. `pam-bench measure --dir DIR --out FILE` (under pam_wrapper): logins in this process
//!    through libpam, module by module, then twofoldd without PAM over its socket and the
//!    bus; writes the report.
//! 4. `pam-bench fleet ...` (src/fleet.rs): the main daemon on SQLite, then three twofoldd
//!    on one PostgreSQL (started by run.sh) at once, and where their time goes; run.sh
//!    appends that section to the report.

mod dbus;
mod exchange;
mod fleet;
mod p2p;
mod scale;
mod stats;

use clap::{Parser, Subcommand};
use stats::{Summary, ms, ms_signed};
use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use twofold_daemon::otp::{Algorithm, OtpParams, code_at, generate_secret};
use twofold_pamtest::{Outcome, Transaction};
use twofold_protocol::LoginContext;

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
        #[arg(long, default_value_t = 32)]
        clients: usize,
        /// Logins per client.
        #[arg(long, default_value_t = 100)]
        per_client: usize,
        /// Logins of one client alone, for twofoldd's latency without contention.
        #[arg(long, default_value_t = 200)]
        sequential: usize,
        /// The fleet figures' clients per daemon.
        #[arg(long, default_value_t = 16)]
        fleet_clients: usize,
        /// The fleet figures' logins per client.
        #[arg(long, default_value_t = 100)]
        fleet_per_client: usize,
        /// The fleet figures' PostgreSQL daemons.
        #[arg(long, default_value_t = 3)]
        fleet_daemons: usize,
    },
    /// The stores and PAM services of the scale figures, in DIR/scale.
    ScaleSetup {
        #[arg(long)]
        dir: PathBuf,
        /// Users who log in (on every store).
        #[arg(long, default_value_t = 100)]
        measured: usize,
        /// The stores' numbers of users, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "100,10000,100000")]
        sizes: Vec<usize>,
        /// Trust rows in a second store of each size (0: no such stores).
        #[arg(long, default_value_t = 1_000_000)]
        trust: usize,
    },
    /// A trivial D-Bus peer-to-peer server on SOCKET (the floor of a socket login). Runs
    /// until killed.
    P2pServer {
        #[arg(long)]
        socket: PathBuf,
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
        #[arg(long, default_value_t = 32)]
        clients: usize,
        /// Also the scale figures (after `scale-setup`; run.sh writes the daemons' pids
        /// to DIR/scale/{small,large}/pid).
        #[arg(long)]
        scale: bool,
    },
    /// The fleet figures (run.sh starts PostgreSQL and the daemons): one SQLite twofoldd,
    /// then several on one PostgreSQL at once; writes that section of the report to OUT.
    Fleet(fleet::Args),
}

/// The PAM services compared; each is one line in its own file next to one shared `other`.
struct Module {
    /// The PAM service (file name under pam.d/).
    service: &'static str,
    label: &'static str,
}

const MODULES: [Module; 6] = [
    Module {
        service: "permit",
        label: "pam_permit (baseline)",
    },
    Module {
        service: "twofold",
        label: "pam_twofold → twofoldd, socket (default)",
    },
    Module {
        service: "twofold_bus",
        label: "pam_twofold → twofoldd, bus (`bus=`)",
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
            fleet_clients,
            fleet_per_client,
            fleet_daemons,
        } => setup(
            &dir,
            users,
            warmup,
            clients * per_client,
            sequential,
            (fleet_clients, fleet_per_client, fleet_daemons),
        ),
        Command::ScaleSetup {
            dir,
            measured,
            sizes,
            trust,
        } => module_path().and_then(|m| scale::setup(&dir, measured, &sizes, trust, &m)),
        Command::P2pServer { socket } => p2p::serve(&socket),
        Command::Sink { socket } => sink(&socket),
        Command::Measure {
            dir,
            out,
            clients,
            scale,
        } => measure(&dir, &out, clients, scale),
        Command::Fleet(args) => fleet::run(&args),
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

fn socket_path(dir: &Path) -> PathBuf {
    dir.join("run/socket")
}

/// The trivial peer-to-peer server's socket (the floor).
fn p2p_socket(dir: &Path) -> PathBuf {
    dir.join("p2p")
}

/// pam_twofold.so of the same build, next to this binary.
fn module_path() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    exe.parent()
        .map(|d| d.join("libpam_twofold.so"))
        .filter(|p| p.exists())
        .ok_or_else(|| {
            "libpam_twofold.so is not next to pam-bench: build -p pam_twofold too".into()
        })
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
    (fleet_clients, fleet_per_client, daemons): (usize, usize, usize),
) -> Result<(), String> {
    // The SQLite baseline logs in as many users as the whole fleet, so that both phases
    // run long enough to measure.
    let per_daemon = fleet_clients * fleet_per_client;
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
    // pam_twofold over the bus logs in other users than over the socket: the same daemon
    // refuses a code's step once used.
    for i in 0..warmup + users {
        all.push(User {
            kind: if i < warmup { "warmup-bus" } else { "pam-bus" }.into(),
            name: format!("busbench{i:03}"),
            secret: generate_secret(&random)?,
        });
    }
    // The module's exchange without libpam logs in users of its own, as many as PAM.
    for i in 0..users {
        all.push(User {
            kind: "exchange".into(),
            name: format!("exbench{i:03}"),
            secret: generate_secret(&random)?,
        });
    }
    // Users for the D-Bus figures, twofoldd only, apart for the socket and the bus.
    // "trusted": one user per transport for the trusted path (a session window, then no
    // prompt). The fleet figures: "fleet-sqlite" log in on the main (SQLite) twofoldd,
    // "fleet" on the PostgreSQL daemons (run.sh imports this store into PostgreSQL),
    // after "fleet-warmup" (unmeasured: the daemons' pools open their connections).
    for (kind, count) in [
        ("fleet-sqlite", per_daemon * daemons),
        (
            "fleet-warmup",
            daemons * fleet_clients * fleet::WARMUP_PER_CLIENT,
        ),
        ("fleet", per_daemon * daemons),
        ("concurrent-socket", concurrent),
        ("sequential-socket", sequential),
        ("concurrent-bus", concurrent),
        ("sequential-bus", sequential),
        ("trusted-socket", 1),
        ("trusted-bus", 1),
    ] {
        for i in 0..count {
            all.push(User {
                kind: kind.into(),
                // twofoldd looks up the trust of accounts NSS knows only (an unknown
                // name is asked for a code and refused like any): the trusted path needs
                // real accounts. Their factors live in the bench's store only.
                name: match kind {
                    "trusted-socket" => "root".into(),
                    "trusted-bus" => "daemon".into(),
                    _ => format!("{}{i:04}", kind.replace('-', "_")),
                },
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

    // The PAM users are accounts, as a login's user is on a real host: copies of the
    // system's passwd, shadow and group files with them added, which bench/run.sh mounts
    // over /etc in twofoldd's private mount namespace (the system's files stay as they are).
    // The socket's PAM users and the exchange's take turns in the files, so that their
    // look-ups scan as far (files are read line by line).
    let of_kind = |kinds: &[&str]| -> Vec<&User> {
        all.iter()
            .filter(|u| kinds.contains(&u.kind.as_str()))
            .collect()
    };
    let (socket_users, exchange_users) = (of_kind(&["warmup", "pam"]), of_kind(&["exchange"]));
    let mut accounts = Vec::new();
    for i in 0..socket_users.len().max(exchange_users.len()) {
        accounts.extend(socket_users.get(i));
        accounts.extend(exchange_users.get(i));
    }
    accounts.extend(of_kind(&["warmup-bus", "pam-bus"]));
    write_accounts(&dir.join("nss"), &accounts)?;

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
    use twofold_daemon::store::Store as _;
    let mut store = twofold_daemon::store::SqliteStore::open(&dir.join("state/twofold.db"))
        .map_err(|e| e.to_string())?;
    let now = unix_now() as i64;
    for u in &all {
        store
            .put_pending(
                &u.name,
                twofold_daemon::factor::FactorKind::Totp,
                &u.secret,
                now,
                false,
                true,
                &[],
            )
            .map_err(|e| e.to_string())?;
    }
    drop(store);

    let module = module_path()?;
    let d = dir.display();
    // twofoldd's socket directory: reachable by everyone, writable by root only.
    let run = dir.join("run");
    mkdir(&run)?;
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("chmod {}: {e}", run.display()))?;
    let pam_d = dir.join("pam.d");
    mkdir(&pam_d)?;
    write(&pam_d.join("other"), OTHER, 0o644)?;
    for m in &MODULES {
        let line = match m.service {
            "permit" => "auth required pam_permit.so".to_string(),
            "twofold" => format!(
                "auth required {} socket={}",
                module.display(),
                socket_path(dir).display()
            ),
            "twofold_bus" => format!(
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
    // Lockout far away: a benchmark must never lock a user out halfway. The twofold
    // services stand in for sshd (the trusted path presents an SSH key).
    let config = format!(
        "version = 1\n[daemon]\nbus = \"{}\"\nsocket = \"{d}/run/socket\"\ndatabase = \"{d}/state/twofold.db\"\nsyslog_socket = \"{d}/log\"\n[lockout]\nmax_failures = 100\n[login]\nssh_services = [\"twofold\", \"twofold_bus\"]\n",
        bus_address(dir)
    );
    write(&dir.join("twofold.toml"), &config, 0o600)?;
    println!(
        "pam-bench: {users} PAM users (+{warmup} warm-up), {} twofoldd-only users in {d}",
        all.len() - pam_users.len()
    );
    Ok(())
}

/// For each user, the look-ups twofoldd makes at `Begin` (`getpwnam`, then `getpwuid`
/// for the canonical name), timed in this process, which sees the same files.
fn nss_lookups(users: &[User]) -> Result<Vec<Duration>, String> {
    use nix::unistd::User as Account;
    users
        .iter()
        .map(|u| {
            let t = std::time::Instant::now();
            let account = Account::from_name(&u.name)
                .map_err(|e| format!("getpwnam {}: {e}", u.name))?
                .ok_or_else(|| {
                    format!("{} is not an account here (DIR/nss not mounted?)", u.name)
                })?;
            Account::from_uid(account.uid).map_err(|e| format!("getpwuid {}: {e}", u.name))?;
            Ok(t.elapsed())
        })
        .collect()
}

/// DIR/{passwd,shadow,group}: the system's entries, then one account per user (no
/// password, no shell; uids from 200000, group nogroup).
fn write_accounts(dir: &Path, users: &[&User]) -> Result<(), String> {
    mkdir(dir)?;
    let system = |name: &str| {
        std::fs::read_to_string(Path::new("/etc").join(name))
            .map_err(|e| format!("/etc/{name}: {e}"))
    };
    let mut passwd = system("passwd")?;
    let mut shadow = system("shadow")?;
    for (i, u) in users.iter().enumerate() {
        let uid = 200_000 + i;
        writeln!(
            passwd,
            "{}:x:{uid}:65534::/nonexistent:/usr/sbin/nologin",
            u.name
        )
        .map_err(|e| e.to_string())?;
        writeln!(shadow, "{}:!:20000:0:99999:7:::", u.name).map_err(|e| e.to_string())?;
    }
    write(&dir.join("passwd"), &passwd, 0o644)?;
    write(&dir.join("shadow"), &shadow, 0o640)?;
    write(&dir.join("group"), &system("group")?, 0o644)
}

/// The private bus's configuration, shared with demo.sh and the tests.
fn bus_config(dir: &Path) -> String {
    let policy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dbus/org.twofold.Twofold1.conf");
    include_str!("../../dbus/private-bus.conf.in")
        .replace("@SOCKET@", &dir.join("bus").display().to_string())
        .replace("@POLICY@", &policy.display().to_string())
        .replace("@EXTRA@", "")
}

fn read_users(path: &Path) -> Result<Vec<User>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
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

/// Everything one run measured, for the report.
struct Results {
    runs: Vec<ModuleRun>,
    logins: usize,
    warmup: usize,
    trusted: Trusted,
    /// Socket 1 and N clients, then bus 1 and N clients.
    daemon: Vec<dbus::Throughput>,
    /// Trusted `Begin` on an open socket connection.
    trusted_begins: Vec<Duration>,
    /// The socket floor: fresh runtime + p2p connection + one call to a trivial server.
    p2p_fresh: Vec<Duration>,
    /// pam_twofold's exchange with twofoldd in this process, without libpam.
    exchange: exchange::Figures,
    /// What twofoldd's `Begin` asks NSS about a PAM user (by name, then by uid).
    nss: Vec<Duration>,
    /// One call to the trivial server on an open connection.
    p2p_open: Vec<Duration>,
    bus_fresh: Vec<Duration>,
    bus_open: Vec<Duration>,
    scale: Option<scale::Figures>,
}

/// The trusted-path logins, taking turns: pam_permit, over the socket, over the bus.
struct Trusted {
    permit: ModuleRun,
    socket: ModuleRun,
    bus: ModuleRun,
    /// pam_twofold's exchange without libpam, in the socket user's window.
    exchange: Vec<Duration>,
}

fn measure(dir: &Path, out: &Path, clients: usize, with_scale: bool) -> Result<(), String> {
    if std::env::var_os("PAM_WRAPPER_SERVICE_DIR").is_none() {
        return Err(
            "run under pam_wrapper (bench/run.sh sets LD_PRELOAD and PAM_WRAPPER_*)".into(),
        );
    }
    let users = read_users(&dir.join("users.tsv"))?;
    let of =
        |kind: &str| -> Vec<User> { users.iter().filter(|u| u.kind == kind).cloned().collect() };
    let (warmup, measured) = (of("warmup"), of("pam"));
    let (warmup_bus, measured_bus) = (of("warmup-bus"), of("pam-bus"));

    // The i-th login of a module: the i-th user, over the bus its counterpart.
    let module_login = |service: &str, i: usize, users: &[User], bus: &[User]| {
        let u = if service == "twofold_bus" {
            bus.get(i).ok_or("too few bus users in users.tsv")?
        } else {
            &users[i]
        };
        Ok::<_, String>((
            login(service, &u.name, &[u.code_now()?], &[], None),
            u.name.clone(),
        ))
    };
    for i in 0..warmup.len() {
        for m in &MODULES {
            let (l, name) = module_login(m.service, i, &warmup, &warmup_bus)?;
            if l.rc != PAM_SUCCESS {
                return Err(format!(
                    "warm-up: {} for {name} returned PAM code {}",
                    m.service, l.rc
                ));
            }
        }
    }
    // Modules take turns login by login, each turn starting with a different module, so
    // a slow moment of the machine (another build, the VM's neighbours) hits them alike.
    // pam_twofold's exchange without libpam takes its turn with them (the modules that
    // write and fsync files slow whatever writes next, so all share those moments).
    let mut runs: Vec<ModuleRun> = MODULES.iter().map(|_| ModuleRun::default()).collect();
    let exchange_users = of("exchange");
    let mut exchange_code = Vec::with_capacity(measured.len());
    for i in 0..measured.len() {
        for k in 0..=MODULES.len() {
            let index = (i + k) % (MODULES.len() + 1);
            if index == MODULES.len() {
                let user = exchange_users.get(i).ok_or("too few exchange users")?;
                exchange_code.push(exchange::code_login(&socket_path(dir), user)?);
                continue;
            }
            let (l, name) = module_login(MODULES[index].service, i, &measured, &measured_bus)?;
            runs[index].record(&l, &name);
        }
    }
    // A benchmark of failed logins measures nothing: stop here.
    for (m, run) in MODULES.iter().zip(&runs) {
        run.all_passed(m.service, measured.len())?;
    }

    let mut trusted = trusted_path(
        &socket_path(dir),
        &of("trusted-socket"),
        &of("trusted-bus"),
        measured.len(),
    )?;
    let p2p_fresh = p2p::fresh(&p2p_socket(dir), 200)?;
    let nss = nss_lookups(&measured)?;
    let exchange = exchange::Figures {
        code: exchange_code,
        trusted: std::mem::take(&mut trusted.exchange),
    };

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let bus = bus_address(dir);
    let socket = dbus::Target::Socket(socket_path(dir));
    let on_bus = dbus::Target::Bus(bus.clone());
    let trusted_ctx = trusted_context(&of("trusted-socket"))?;
    let results = runtime.block_on(async {
        // Socket, bus, bus, socket: neither gets only the quiet or the busy moments.
        let socket_alone = dbus::throughput(&socket, &of("sequential-socket"), 1).await?;
        let bus_alone = dbus::throughput(&on_bus, &of("sequential-bus"), 1).await?;
        let bus_together = dbus::throughput(&on_bus, &of("concurrent-bus"), clients).await?;
        let socket_together = dbus::throughput(&socket, &of("concurrent-socket"), clients).await?;
        let daemon = vec![socket_alone, socket_together, bus_alone, bus_together];
        Ok::<_, String>(Results {
            runs,
            logins: measured.len(),
            warmup: warmup.len(),
            trusted,
            daemon,
            trusted_begins: dbus::trusted_begins(&socket, &trusted_ctx, 200).await?,
            p2p_fresh,
            exchange,
            nss,
            p2p_open: p2p::open(&p2p_socket(dir), 1000).await?,
            bus_fresh: dbus::fresh_connections(&bus, 200).await?,
            bus_open: dbus::calls_on_open_connection(&bus, 1000).await?,
            scale: None,
        })
    });
    let mut results = results?;
    if with_scale {
        results.scale = Some(scale::measure(dir)?);
    }

    let report = report(&results);
    std::fs::write(out, &report).map_err(|e| format!("{}: {e}", out.display()))?;
    print!("{report}");
    Ok(())
}

impl ModuleRun {
    fn record(&mut self, l: &Outcome, user: &str) {
        if l.rc == PAM_SUCCESS {
            self.successes += 1;
            self.totals.push(l.total);
            self.authenticates.push(l.authenticate);
        } else if self.failures.len() < 3 {
            self.failures.push(format!(
                "{user}: PAM code {} after {:?}",
                l.rc,
                l.conversation.last()
            ));
        }
    }

    fn all_passed(&self, what: &str, expected: usize) -> Result<(), String> {
        if self.successes == expected {
            return Ok(());
        }
        Err(format!(
            "{what}: only {} of {expected} logins succeeded ({})",
            self.successes,
            self.failures.join(", ")
        ))
    }
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
        quirk: Default::default(),
    })
}

/// What sshd puts into the PAM transaction of a public-key login (the trusted path).
fn trusted_env() -> [String; 1] {
    [format!(
        "SSH_AUTH_INFO_0=publickey ssh-ed25519 {TRUSTED_KEY}"
    )]
}
const TRUSTED_RHOST: &str = "192.0.2.7";

/// The context pam_twofold sends for a trusted-path login of the socket's user.
fn trusted_context(users: &[User]) -> Result<LoginContext, String> {
    let user = users.first().ok_or("no trusted-path user in users.tsv")?;
    Ok(LoginContext {
        user: user.name.clone(),
        service: "twofold".into(),
        rhost: TRUSTED_RHOST.into(),
        ssh_auth_info: format!("publickey ssh-ed25519 {TRUSTED_KEY}"),
        ..Default::default()
    })
}

/// The trusted path: an SSH key login (SSH_AUTH_INFO_0 and an address, as sshd sets
/// them) that verified a code once, then `logins` logins that pass on the session window
/// without a prompt — over the socket and over the bus, each with its own user — taking
/// turns with pam_permit logins as their baseline.
fn trusted_path(
    socket_file: &Path,
    socket: &[User],
    bus: &[User],
    logins: usize,
) -> Result<Trusted, String> {
    let env = trusted_env();
    let rhost = Some(TRUSTED_RHOST);
    let mut pairs = Vec::new();
    for (service, users) in [("twofold", socket), ("twofold_bus", bus)] {
        let user = users.first().ok_or("no trusted-path user in users.tsv")?;
        // The first login answers the code, then "n" to "Trust this device?".
        let first = login(
            service,
            &user.name,
            &[user.code_now()?, "n".into()],
            &env,
            rhost,
        );
        if first.rc != PAM_SUCCESS {
            return Err(format!(
                "trusted path ({service}): the first login returned PAM code {}",
                first.rc
            ));
        }
        pairs.push((service, user.name.clone()));
    }
    let mut t = Trusted {
        permit: ModuleRun::default(),
        socket: ModuleRun::default(),
        bus: ModuleRun::default(),
        exchange: Vec::with_capacity(logins),
    };
    let exchange_ctx = trusted_context(socket)?;
    for i in 0..logins {
        for k in 0..4 {
            if (i + k) % 4 == 3 {
                t.exchange
                    .push(exchange::once(socket_file, &exchange_ctx, Vec::new())?);
                continue;
            }
            let (run, l) = match (i + k) % 4 {
                0 => (&mut t.permit, login("permit", &pairs[0].1, &[], &[], None)),
                // No answers: any prompt fails the login, so a pass means no prompt.
                1 => (
                    &mut t.socket,
                    login(pairs[0].0, &pairs[0].1, &[], &env, rhost),
                ),
                _ => (&mut t.bus, login(pairs[1].0, &pairs[1].1, &[], &env, rhost)),
            };
            if l.rc != PAM_SUCCESS {
                return Err(format!(
                    "trusted path: login {i} (turn {k}) returned PAM code {}: {:?}",
                    l.rc, l.conversation
                ));
            }
            run.record(&l, "trusted");
        }
    }
    Ok(t)
}

/// An ed25519 public key blob: the "key that passed" in the trusted-path logins.
const TRUSTED_KEY: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIPBt/BNd5lA1dnF//n6CHzH8KvAg/yKN0naK8HbRXq9f";

/// `a / b`, or infinity when `b` is not positive (an own cost can come out at zero).
fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { f64::INFINITY }
}

fn verdict(met: bool) -> &'static str {
    if met { "**met**" } else { "**not met**" }
}

fn median_s(times: &[Duration]) -> f64 {
    Summary::of(times).median.as_secs_f64()
}

fn report(r: &Results) -> String {
    let (logins, warmup) = (r.logins, r.warmup);
    let summary: Vec<(Summary, Summary)> = r
        .runs
        .iter()
        .map(|r| (Summary::of(&r.totals), Summary::of(&r.authenticates)))
        .collect();
    let baseline = summary[0].0.median.as_secs_f64();
    let own = |service: &str| -> f64 {
        let i = MODULES
            .iter()
            .position(|m| m.service == service)
            .unwrap_or(0);
        summary[i].0.median.as_secs_f64() - baseline
    };
    let (socket, bus, oath, ga_reuse) = (
        own("twofold"),
        own("twofold_bus"),
        own("oath"),
        own("google_authenticator_reuse"),
    );

    let mut s = String::new();
    let _ = writeln!(s, "# Performance\n");
    let _ = writeln!(
        s,
        "Written by `bash bench/run.sh` on {} ({}); release builds. \
         How it measures: [bench/README.md](../bench/README.md).\n",
        humantime::format_rfc3339_seconds(SystemTime::now()),
        machine()
    );
    let _ = writeln!(s, "{}\n", load());
    let _ = writeln!(s, "## One login, in the application's process\n");
    let _ = writeln!(
        s,
        "{logins} logins per module (after {warmup} unmeasured), one per user, each user with \
         its own random 160-bit secret (the same secret in all three modules) and its \
         current code. Each login is `pam_start` + `pam_authenticate` + `pam_end` through \
         the real libpam under pam_wrapper, in one process; every service is one `auth \
         required` line, and all share one `other` file (`pam_deny.so`), which libpam \
         loads on every `pam_start`. Modules take turns login by login, and with them \
         pam_twofold's exchange without libpam (see the breakdown below). syslog(3) records \
         go to a sink standing in for syslogd. *Own cost* is the module's median minus \
         pam_permit's. pam_twofold runs twice: over twofoldd's socket (`socket=`, the \
         default) and over the bus (`bus=`), the same daemon and store.\n"
    );
    let _ = writeln!(
        s,
        "| module | logins passed | median | p95 | `pam_authenticate` median | own cost |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|");
    for ((m, run), (total, auth)) in MODULES.iter().zip(&r.runs).zip(&summary) {
        let _ = writeln!(
            s,
            "| {} | {}/{logins} | {} | {} | {} | {} |",
            m.label,
            run.successes,
            ms(total.median),
            ms(total.p95),
            ms(auth.median),
            if m.service == "permit" {
                "—".to_string()
            } else {
                ms_signed(total.median.as_secs_f64() - baseline)
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
    let half_oath = socket <= oath / 2.0;
    let below_ga = socket < ga_reuse;
    let _ = writeln!(
        s,
        "**Target** (pam_twofold's own cost over the socket at most half of pam_oath's, and \
         below pam_google_authenticator's with `DISALLOW_REUSE`):\n\n\
         - at most half of pam_oath's ({} / 2 = {}): {} — pam_twofold {} ({:.2}x pam_oath's){}\n\
         - below pam_google_authenticator, DISALLOW_REUSE ({}): {} — {}{}\n\
         - for comparison, over the bus: {} ({:.2}x the socket's)\n",
        ms_signed(oath),
        ms_signed(oath / 2.0),
        verdict(half_oath),
        ms_signed(socket),
        ratio(socket, oath),
        if half_oath {
            String::new()
        } else {
            format!(", {} over", ms_signed(socket - oath / 2.0))
        },
        ms_signed(ga_reuse),
        verdict(below_ga),
        ms_signed(socket),
        if below_ga {
            String::new()
        } else {
            format!(", {} over", ms_signed(socket - ga_reuse))
        },
        ms_signed(bus),
        ratio(bus, socket),
    );

    // Where a socket login's time goes: the parts measured apart in this run.
    let alone = &r.daemon[0];
    let (floor, call) = (median_s(&r.p2p_fresh), median_s(&r.p2p_open));
    let connection = floor - call;
    let exchange = median_s(&r.exchange.code);
    let _ = writeln!(
        s,
        "Where a code login over the socket goes (medians measured apart in this run; they \
         do not add up exactly, a median of a sum is not the sum of medians):\n"
    );
    let _ = writeln!(s, "| part | time | of the own cost |");
    let _ = writeln!(s, "|---|---|---|");
    for (part, t) in [
        (
            "pam_twofold's exchange with twofoldd alone: `client::run` called in this process without libpam, with a scripted conversation (a fresh runtime, connect, the peer check, the handshake, `Begin`, `Answer`, teardown), for users of its own who are accounts like the PAM users",
            exchange,
        ),
        (
            "— of it, a fresh runtime + connection + D-Bus handshake, no call (the floor below minus one trivial call on an open connection)",
            connection,
        ),
        (
            "— of it, the rest: two calls and twofoldd's work for them (NSS look-ups of the user, the store's read and the IMMEDIATE SQLite transaction writing the step, TOTP, the audit record) and for a new connection beyond what the trivial server does",
            exchange - connection,
        ),
        (
            "— of that, twofoldd's NSS look-ups of the user at `Begin` (`getpwnam`, then `getpwuid` for the canonical name; the files module reads the passwd file line by line, here the system's lines plus the bench's accounts), timed in the measuring process, which sees the same files",
            median_s(&r.nss),
        ),
        (
            "being a PAM module: the own cost minus the exchange (`pam_start`'s and `pam_end`'s share, options, PAM items, the conversation); near zero or below means it is lost in the noise of the medians",
            socket - exchange,
        ),
    ] {
        let _ = writeln!(
            s,
            "| {part} | {} | {:.0}% |",
            ms_signed(t),
            100.0 * ratio(t, socket)
        );
    }
    let _ = writeln!(
        s,
        "\nOf `Begin`, up to {} µs is the timing floor by design: a reply that asks for a \
         code leaves twofoldd no sooner than `[login] timing_floor_us` after its engine \
         call began, so the time to the prompt does not tell an unknown name from an \
         enrolled one (docs/security.md, issue 12); a right code's `Answer` is not held.",
        twofold_config::TIMING_FLOOR_US
    );
    let _ = writeln!(
        s,
        "\nFor comparison, on an open connection (the throughput table's single client, \
         whose users are not accounts: NSS is asked and says no): `Begin` {}, `Answer` {}; \
         one trivial call {}.",
        ms(Summary::of(&alone.begins).median),
        ms(Summary::of(&alone.answers).median),
        ms(Summary::of(&r.p2p_open).median),
    );
    let _ = writeln!(
        s,
        "\nOver the bus a login pays a bus connection with `Hello` ({} fresh, see the \
         reference figures), the owner check (`GetNameOwner`, `GetConnectionUnixUser`) and \
         the daemon's `GetConnectionCredentials`, at about {} per bus call on an open \
         connection, and each message goes through dbus-daemon. pam_oath and \
         google-authenticator do their work inside the calling process.\n",
        ms(Summary::of(&r.bus_fresh).median),
        ms(Summary::of(&r.bus_open).median),
    );

    // The trusted path.
    let t = &r.trusted;
    let p = Summary::of(&t.permit.totals).median.as_secs_f64();
    let own_socket = median_s(&t.socket.totals) - p;
    let own_bus = median_s(&t.bus.totals) - p;
    let limit = 1.3 * floor;
    let _ = writeln!(s, "## Trusted path (no prompt)\n");
    let _ = writeln!(
        s,
        "A user logs in with an SSH key context (`SSH_AUTH_INFO_0` and a remote address in \
         the PAM transaction, as sshd sets them), verifies a code once, then logs in {} \
         more times within the session window: twofoldd answers `Begin` with success and \
         nothing is asked. One user over the socket, another over the bus; the logins take \
         turns with pam_permit logins, the baseline, and with pam_twofold's exchange without libpam.\n",
        t.socket.successes
    );
    let _ = writeln!(s, "| path | logins passed | median | p95 | own cost |");
    let _ = writeln!(s, "|---|---|---|---|---|");
    for (label, run) in [
        ("pam_permit (baseline)", &t.permit),
        ("pam_twofold, trusted session window, socket", &t.socket),
        ("pam_twofold, trusted session window, bus", &t.bus),
    ] {
        let sum = Summary::of(&run.totals);
        let _ = writeln!(
            s,
            "| {label} | {} | {} | {} | {} |",
            run.successes,
            ms(sum.median),
            ms(sum.p95),
            if std::ptr::eq(run, &t.permit) {
                "—".into()
            } else {
                ms_signed(sum.median.as_secs_f64() - p)
            }
        );
    }
    let p2p_fresh = Summary::of(&r.p2p_fresh);
    let _ = writeln!(
        s,
        "\nThe floor, measured in this run: what pam_twofold must do at least per login over \
         the socket — a fresh current-thread runtime, connect, the listener's credentials, \
         the D-Bus peer-to-peer handshake, one call to a trivial zbus server (its own \
         process, one thread, on a socket in the bench directory), close: median {}, p95 {} \
         ({} runs).\n",
        ms(p2p_fresh.median),
        ms(p2p_fresh.p95),
        r.p2p_fresh.len()
    );
    let trusted_begin = median_s(&r.trusted_begins);
    let _ = writeln!(
        s,
        "**Target** (trusted path's own cost over the socket within 1.3x the floor, 1.3 x {} \
         = {}): {} — {} ({:.2}x the floor){}. Of it: the floor {}, of which one trivial call \
         {}; twofoldd's trusted `Begin` on an open connection {} (so {} more than a trivial \
         call: twofoldd's D-Bus serving of a larger call, handing its runtime to a spare \
         thread for the engine call, the engine itself (root's NSS entries, the store's \
         reads of the user and its trust rows; `last_used` is written at most once a \
         minute, so not in these logins; about 25 µs alone, see bench/README.md) and the \
         audit record). The exchange alone, without libpam (as in the code path's table): {}, \
         so being a PAM module costs {} of it. Over the bus: {}.\n",
        ms(Summary::of(&r.p2p_fresh).median),
        ms_signed(limit),
        verdict(own_socket <= limit),
        ms_signed(own_socket),
        ratio(own_socket, floor),
        if own_socket <= limit {
            String::new()
        } else {
            format!(", {} over", ms_signed(own_socket - limit))
        },
        ms(Summary::of(&r.p2p_fresh).median),
        ms(Summary::of(&r.p2p_open).median),
        ms(Summary::of(&r.trusted_begins).median),
        ms_signed(trusted_begin - call),
        ms(Summary::of(&r.exchange.trusted).median),
        ms_signed(own_socket - median_s(&r.exchange.trusted)),
        ms_signed(own_bus),
    );

    let _ = writeln!(s, "## twofoldd throughput\n");
    let _ = writeln!(
        s,
        "Clients without PAM, one connection each (opened beforehand), each logging in \
         its own users one after the other: `Begin`, then `Answer` with the right code, as \
         pam_twofold does. Each user logs in once. Over the socket (peer-to-peer) and over \
         the bus (through dbus-daemon), run in the order socket 1, bus 1, bus N, socket N. \
         The clients, dbus-daemon and twofoldd share the machine's CPUs.\n"
    );
    let _ = writeln!(
        s,
        "| path | clients | logins | time | logins/s | latency median | latency p95 | `Begin` median | `Answer` median |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|");
    for t in &r.daemon {
        let _ = writeln!(s, "| {} | {} |", t.target, t.cells());
    }
    let (sock_n, bus_n) = (r.daemon[1].rate(), r.daemon[3].rate());
    let _ = writeln!(
        s,
        "\n**Target** ({} clients over the socket at least 2x the bus's logins/s, 2 x {:.0} = \
         {:.0}): {} — {:.0} logins/s, {:.2}x the bus{}. The bus rows go through the same \
         twofoldd (one worker thread, and up to 4 engine calls at once, each with a \
         database connection), so the ratio is what dbus-daemon's routing costs; with every \
         client busy, the 32 clients, dbus-daemon and twofoldd share the 2 CPUs, and a \
         login's latency is mostly waiting for a CPU. One client alone: `Begin` + \
         `Answer` take {} + {} over the socket.\n",
        r.daemon[1].clients,
        bus_n,
        2.0 * bus_n,
        verdict(sock_n >= 2.0 * bus_n),
        sock_n,
        ratio(sock_n, bus_n),
        if sock_n >= 2.0 * bus_n {
            String::new()
        } else {
            format!(", {:.0} logins/s short", 2.0 * bus_n - sock_n)
        },
        ms(Summary::of(&alone.begins).median),
        ms(Summary::of(&alone.answers).median),
    );

    match &r.scale {
        Some(sc) => {
            let oath = MODULES
                .iter()
                .position(|m| m.service == "oath")
                .unwrap_or(0);
            scale::report(&mut s, sc, summary[oath].0.median, r.logins + r.warmup)
        }
        None => {
            let _ = writeln!(
                s,
                "## Scale\n\nNot measured in this run: `BENCH_SCALE=1 bash bench/run.sh` \
                 seeds stores of 100, 10,000 and 100,000 users, each without and with \
                 1,000,000 trust rows, and measures logins and listings on each.\n"
            );
        }
    }

    let (f, o) = (Summary::of(&r.bus_fresh), Summary::of(&r.bus_open));
    let (pf, po) = (Summary::of(&r.p2p_fresh), Summary::of(&r.p2p_open));
    let _ = writeln!(s, "## Reference figures (zbus client)\n");
    let _ = writeln!(s, "| what | runs | median | p95 |");
    let _ = writeln!(s, "|---|---|---|---|");
    for (what, n, sum) in [
        (
            "bus: fresh connection: connect + auth + `Hello` + `GetNameOwner` + close",
            r.bus_fresh.len(),
            f,
        ),
        (
            "bus: one `GetNameOwner` on an open connection",
            r.bus_open.len(),
            o,
        ),
        (
            "peer-to-peer, trivial server: fresh runtime + connect + credentials + handshake + one call + close (the floor)",
            r.p2p_fresh.len(),
            pf,
        ),
        (
            "peer-to-peer, trivial server: one call on an open connection",
            r.p2p_open.len(),
            po,
        ),
        (
            "twofoldd's socket: trusted `Begin` on an open connection",
            r.trusted_begins.len(),
            Summary::of(&r.trusted_begins),
        ),
    ] {
        let _ = writeln!(s, "| {what} | {n} | {} | {} |", ms(sum.median), ms(sum.p95));
    }
    let _ = writeln!(
        s,
        "\nAll processes float over the CPUs (no `taskset`). On these VMs the figures vary \
         from run to run by tens of percent, and now and then a whole run is 2-3x slower \
         (fsync and wake-ups): compare the rows of one run, not figures across runs."
    );
    s
}

/// The machine's load when the report was written: other builds make every figure slower.
fn load() -> String {
    let avg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let parts: Vec<&str> = avg.split_whitespace().take(3).collect();
    format!(
        "Load average when the report was written (1, 5, 15 min): {} — on 2 CPUs anything \
         near or above 1 means other work (a build) ran during the measurement.",
        parts.join(", ")
    )
}
