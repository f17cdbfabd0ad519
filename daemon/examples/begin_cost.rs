//! What the engine alone spends on a trusted `Begin` (no D-Bus, no hand-off between
//! threads, audit kept in memory): root logs in with an SSH key once with a code, then
//! 2,000 times within the session window, with the real NSS users, /proc sessions and a
//! SQLite store in DIR. Prints the median and p95, to set against the bench's `Begin` on
//! an open connection (docs/performance.md). Usage, as root:
//! `cargo run --release -p twofold-daemon --example begin_cost -- DIR`
// A tool outside the daemon: it reads the system's clocks itself.
#![allow(clippy::disallowed_methods)]

use std::sync::Arc;
use std::time::{Duration, Instant};
use twofold_config::Config;
use twofold_daemon::audit::MemoryAudit;
use twofold_daemon::authz::{Caller, SystemUsers};
use twofold_daemon::clock::SystemClock;
use twofold_daemon::engine::{Engine, Parts};
use twofold_daemon::identity::ProcSessions;
use twofold_daemon::otp::{OtpParams, code_at};
use twofold_daemon::random::OsRandom;
use twofold_daemon::store::{SqliteStore, StorePool};
use twofold_protocol::LoginContext;

const KEY: &str =
    "publickey ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPBt/BNd5lA1dnF//n6CHzH8KvAg/yKN0naK8HbRXq9f";

fn main() -> Result<(), String> {
    let dir = std::env::args()
        .nth(1)
        .ok_or("usage: begin_cost DIR (a new directory for the store)")?;
    let db = std::path::Path::new(&dir).join("state/twofold.db");
    let store = StorePool::new(SqliteStore::open(&db).map_err(|e| e.to_string())?, 3)
        .map_err(|e| e.to_string())?;
    let config = Config::parse("version = 1\n", "built-in").map_err(|e| e.to_string())?;
    let params = OtpParams::from_config(&config.totp);
    let engine = Engine::new(Parts {
        config,
        store: Box::new(store),
        clock: Arc::new(SystemClock),
        random: Arc::new(OsRandom),
        users: Arc::new(SystemUsers::new()),
        audit: Arc::new(MemoryAudit::default()),
        notifier: Arc::new(twofold_daemon::notify::NoNotifier),
        courier: Arc::new(twofold_daemon::email_codes::NoCourier),
        texter: Arc::new(twofold_daemon::sms::NoTexter),
        hostname: "bench".into(),
        sessions: Arc::new(ProcSessions),
    });
    let root = Caller {
        uid: 0,
        pid: None,
        bus_name: ":1.1".into(),
    };
    let ctx = LoginContext {
        user: "root".into(),
        service: "sshd".into(),
        rhost: "192.0.2.7".into(),
        tty: "ssh".into(),
        ruser: String::new(),
        ssh_auth_info: KEY.into(),
        offer_enrolment: false,
    };
    let offer = engine
        .enrol(&root, "root", true)
        .map_err(|e| e.to_string())?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs();
    let code = code_at(&params, &offer.secret, now)?;
    let (id, _) = engine
        .begin(&root, ctx.clone())
        .map_err(|e| e.to_string())?;
    engine
        .answer(&root, &id, &code)
        .map_err(|e| e.to_string())?;
    let _ = engine.answer(&root, &id, "n");
    let mut times: Vec<Duration> = Vec::new();
    for _ in 0..2000 {
        let started = Instant::now();
        let (id, step) = engine
            .begin(&root, ctx.clone())
            .map_err(|e| e.to_string())?;
        times.push(started.elapsed());
        if !id.is_empty() {
            return Err(format!("not trusted: {step:?}"));
        }
    }
    times.sort();
    println!(
        "engine, trusted Begin: median {:?}, p95 {:?} (2000 runs)",
        times[1000], times[1900]
    );
    Ok(())
}
