//! twofoldd: loads the configuration, opens the store, takes its name on the bus and
//! serves until SIGTERM.

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use twofold_config::Config;
use twofold_daemon::audit::SyslogAudit;
use twofold_daemon::audit_throttle::ThrottledAudit;
use twofold_daemon::authz::SystemUsers;
use twofold_daemon::bus;
use twofold_daemon::clock::{Clock, SystemClock};
use twofold_daemon::email_codes::{Courier, MailCourier, NoCourier};
use twofold_daemon::email_notices::EmailNotifier;
use twofold_daemon::engine::{Engine, Parts};
use twofold_daemon::identity::ProcSessions;
use twofold_daemon::mail::{Mailer, SmtpMailer};
use twofold_daemon::notify::{NoNotifier, Notifier};
use twofold_daemon::random::OsRandom;
use twofold_daemon::service::Shared;
use twofold_daemon::sms::{self, GatewayTexter, NoTexter, Texter};
use twofold_protocol::{BUS_NAME, SYSTEM_BUS_ADDRESS};

#[derive(Parser)]
#[command(name = "twofoldd", version, about = "twofold's second-factor daemon")]
struct Args {
    /// Configuration file; a missing file means the built-in defaults.
    #[arg(long, default_value = twofold_config::DEFAULT_PATH)]
    config: PathBuf,
    /// Validate the configuration and exit.
    #[arg(long)]
    check_config: bool,
    /// Tests only: read the current time from this file.
    #[cfg(feature = "test-clock")]
    #[arg(long)]
    test_clock: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match Config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("twofoldd: {e}");
            return ExitCode::from(2);
        }
    };
    if args.check_config {
        println!("{}: configuration is valid", args.config.display());
        return ExitCode::SUCCESS;
    }
    // Everything the daemon creates (database, WAL, SHM) is private to it.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    return_large_buffers_to_the_system();
    let shutdown = match shutdown_signals() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("twofoldd: cannot block SIGTERM/SIGINT: {e}");
            return ExitCode::FAILURE;
        }
    };
    // One worker thread serves the connections; an engine call hands it to another
    // thread while it runs (see service.rs): up to ENGINE_CALLS calls and one listing,
    // one thread each, the worker, housekeeping, and room for the hand-offs.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .max_blocking_threads(ENGINE_CALLS + 5)
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("twofoldd: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let served = runtime.block_on(serve(config, clock(&args), shutdown));
    if let Err(e) = served {
        runtime.shutdown_timeout(std::time::Duration::from_millis(500));
        eprintln!("twofoldd: {e}");
        return ExitCode::FAILURE;
    }
    // Stopped by a signal: the process ends here, without tearing the runtime down. A
    // call may still wait for the database (3 s busy timeout), and zbus panicked when the
    // runtime went away under its blocking work (seen in the soak). Every store change is
    // one transaction, so what is cut short is rolled back, and that login fails closed,
    // as after SIGKILL (faults::sigkill_…).
    std::process::exit(0)
}

/// Engine calls that may run at once, each on its own thread with its own database
/// connection. A call that waits for the database holds one; beyond this many such
/// calls, the next ones wait for a turn (at most 5 s, then they fail closed).
const ENGINE_CALLS: usize = 4;

fn clock(args: &Args) -> Arc<dyn Clock> {
    #[cfg(feature = "test-clock")]
    if let Some(file) = &args.test_clock {
        eprintln!(
            "twofoldd: WARNING: time is read from {} (test clock)",
            file.display()
        );
        return Arc::new(twofold_daemon::clock::FileClock(file.clone()));
    }
    let _ = args;
    Arc::new(SystemClock)
}

async fn serve(
    mut config: Config,
    clock: Arc<dyn Clock>,
    shutdown: tokio::sync::oneshot::Receiver<()>,
) -> Result<(), String> {
    // The system bus may be missing (a minimal host, dbus-daemon restarting): then only the
    // socket is served. A bus named in the configuration must be there.
    let bus_optional = config.daemon.bus.0 == "system";
    let address = match config.daemon.bus.0.as_str() {
        "system" => SYSTEM_BUS_ADDRESS.to_string(),
        other => other.to_string(),
    };
    let socket_path = config.daemon.socket.0.clone();
    let connections_per_user = config.daemon.max_connections_per_user.0 as usize;
    let hostname = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into());
    // One connection per engine call: the service runs as many calls at once as there are.
    let store =
        twofold_daemon::store::open(&config, ENGINE_CALLS, &hostname).map_err(|e| e.to_string())?;
    let shared_store = config.store.backend == twofold_config::Backend::Postgres;
    let users = SystemUsers::new();
    if let Some(problem) = users.shadow_problem() {
        eprintln!("twofoldd: {problem}");
    }
    // Notices to users go out by mail when [smtp] is set; a setting that cannot be used
    // (an unreadable password file, a bad certificate) stops the start with its reason.
    let (notifier, courier): (Arc<dyn Notifier>, Arc<dyn Courier>) = match &config.smtp {
        Some(smtp) => {
            let mailer: Arc<dyn Mailer> =
                Arc::new(SmtpMailer::new(smtp).map_err(|e| e.to_string())?);
            let courier: Arc<dyn Courier> = if config.email_codes_on() {
                Arc::new(MailCourier::start(mailer.clone()))
            } else {
                Arc::new(NoCourier)
            };
            (Arc::new(EmailNotifier::start(mailer)), courier)
        }
        None => (Arc::new(NoNotifier), Arc::new(NoCourier)),
    };
    // Texts go through the gateway [sms] names; settings that cannot be used stop the start.
    let texter: Arc<dyn Texter> = match sms::gateway(&config).map_err(|e| e.to_string())? {
        Some(gateway) => Arc::new(GatewayTexter::start(gateway)),
        None => Arc::new(NoTexter),
    };
    let reports = delivery_reports(&mut config).await;
    let engine = Arc::new(Engine::new(Parts {
        store,
        clock,
        random: Arc::new(OsRandom),
        users: Arc::new(users),
        // Refusals are bounded per caller uid (audit_throttle.rs).
        audit: Arc::new(ThrottledAudit::new(SyslogAudit::new(
            config.daemon.syslog_socket.0.clone(),
        ))),
        notifier,
        courier,
        texter,
        hostname,
        sessions: Arc::new(ProcSessions),
        config,
    }));
    match engine.canonicalise_stored_names() {
        Ok(lines) => lines.iter().for_each(|l| eprintln!("twofoldd: {l}")),
        // A fleet's database may be away while this host starts: logins fail closed
        // until it is back, and the schema is brought up to date then.
        Err(e) if shared_store => {
            eprintln!("twofoldd: {e}; serving anyway, logins fail until the database answers")
        }
        Err(e) => return Err(e.to_string()),
    }
    give_back_start_up_memory();
    let housekeeping = engine.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(3600));
        loop {
            every.tick().await;
            let engine = housekeeping.clone();
            if let Ok(Err(e)) = tokio::task::spawn_blocking(move || engine.housekeeping()).await {
                eprintln!("twofoldd: housekeeping failed: {e}");
            }
        }
    });
    // Logins and twofoldctl come over the socket, which needs no bus daemon; the bus
    // serves other programs, and bus activation.
    let sockets = twofold_daemon::socket::listeners(&socket_path)?;
    if let Some(listener) = reports {
        let engine = engine.clone();
        tokio::spawn(sms::reports::serve(
            listener,
            Arc::new(move |reference, kind| engine.delivery_report(&reference, kind)),
        ));
    }
    let shared = Shared::new(engine).map_err(|e| format!("cannot start a thread: {e}"))?;
    let bus = match bus::join(&address, &shared, 1).await {
        Ok(bus) => {
            eprintln!("twofoldd: serving {BUS_NAME} on {address}");
            Some(bus)
        }
        Err(e) if bus_optional => {
            eprintln!("twofoldd: {e}; serving logins on the socket only until the bus is there");
            None
        }
        Err(e) => return Err(e),
    };
    tokio::spawn(twofold_daemon::socket::serve(
        sockets,
        shared.clone(),
        connections_per_user,
    ));
    eprintln!(
        "twofoldd: listening on {} and, for root only, {}",
        socket_path.display(),
        twofold_protocol::root_socket_path(&socket_path).display()
    );
    tokio::spawn(bus::stay_on(address, shared, bus));
    let _ = shutdown.await;
    eprintln!("twofoldd: stopping");
    Ok(())
}

/// The listener for Kannel's delivery reports, where `[sms.kannel] reports_address` asks
/// for them. One that cannot be bound (the port taken, perhaps by another local user) costs
/// only the reports: texts go out without asking for them, and the start goes on.
async fn delivery_reports(config: &mut Config) -> Option<tokio::net::TcpListener> {
    let kannel = config.sms.kannel.as_mut().filter(|_| config.sms.enabled)?;
    let address = kannel.reports_address?;
    match tokio::net::TcpListener::bind(address).await {
        Ok(listener) => {
            eprintln!("twofoldd: listening for SMS delivery reports on {address}");
            Some(listener)
        }
        Err(e) => {
            eprintln!(
                "twofoldd: cannot listen for SMS delivery reports on {address} ({e}); texts go out without them"
            );
            kannel.reports_address = None;
            None
        }
    }
}

/// glibc raises its mmap threshold to the size of each large block freed, so after a
/// flood of big calls (refused, but read first) their buffers come from the heap and
/// stay resident. A fixed threshold keeps large buffers mmapped: freed, they go back.
fn return_large_buffers_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; called before other threads exist.
    unsafe {
        nix::libc::mallopt(nix::libc::M_MMAP_THRESHOLD, 128 * 1024);
        // The engine calls' threads (ENGINE_CALLS) would each get an arena of
        // their own, and each keeps what it once held; two are enough for short calls.
        nix::libc::mallopt(nix::libc::M_ARENA_MAX, 2);
    }
}

/// The start-up check of stored names freed what it read, but glibc keeps freed heap
/// pages; hand them back, so the daemon's resident size does not grow with the store.
fn give_back_start_up_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory of the allocator.
    unsafe {
        nix::libc::malloc_trim(0);
    }
}

/// Blocks SIGTERM and SIGINT in every thread (call before the runtime starts its
/// threads) and waits for them on a thread of its own. This keeps tokio's signal feature
/// out of the workspace: with it, every process that loads pam_twofold.so would keep a
/// socket pair of tokio's signal driver open.
fn shutdown_signals() -> nix::Result<tokio::sync::oneshot::Receiver<()>> {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    set.thread_block()?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = set.wait();
        let _ = tx.send(());
    });
    Ok(rx)
}
