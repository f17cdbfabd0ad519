//! twofoldd without PAM, over its socket (D-Bus peer-to-peer, as pam_twofold does by
//! default) or over the bus (`bus=`): logins from concurrent clients (Begin, then Answer
//! with the right code), and bare round trips as reference figures.

use crate::User;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use twofold_protocol::{Action, AuthProxy, BUS_NAME, LoginContext};
use zbus::fdo::DBusProxy;
use zbus::proxy::CacheProperties;

/// How a client reaches twofoldd.
#[derive(Clone, Debug)]
pub enum Target {
    /// twofoldd's own socket, D-Bus peer-to-peer.
    Socket(PathBuf),
    /// A bus address; calls go to twofoldd's well-known name.
    Bus(String),
}

impl Target {
    pub fn label(&self) -> &'static str {
        match self {
            Target::Socket(_) => "socket",
            Target::Bus(_) => "bus",
        }
    }
}

/// What the concurrent clients did.
pub struct Throughput {
    pub target: &'static str,
    pub clients: usize,
    pub elapsed: Duration,
    /// One Begin + Answer each.
    pub latencies: Vec<Duration>,
    /// The Begin and the Answer of each login, apart.
    pub begins: Vec<Duration>,
    pub answers: Vec<Duration>,
}

impl Throughput {
    pub fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    /// The table cells every throughput report shares: clients, logins, time, logins/s,
    /// latency median and p95, `Begin` and `Answer` medians.
    pub fn cells(&self) -> String {
        use crate::stats::{Summary, ms};
        let lat = Summary::of(&self.latencies);
        format!(
            "{} | {} | {:.2} s | {:.0} | {} | {} | {} | {}",
            self.clients,
            self.latencies.len(),
            self.elapsed.as_secs_f64(),
            self.rate(),
            ms(lat.median),
            ms(lat.p95),
            ms(Summary::of(&self.begins).median),
            ms(Summary::of(&self.answers).median),
        )
    }
}

/// Each of `clients` connections logs in its own share of `users` one after the other;
/// the clients run concurrently. Fails on the first login that does not succeed.
pub async fn throughput(
    target: &Target,
    users: &[User],
    clients: usize,
) -> Result<Throughput, String> {
    let mut runs = together(&[(target.clone(), users.to_vec())], clients).await?;
    runs.pop().ok_or_else(|| "no run".to_string())
}

/// Like [`throughput`] for several daemons at once: `clients` connections to each
/// target, all opened beforehand, all started together. Each target's `elapsed` runs from
/// the common start to the end of its last client. Fails on the first failed login.
pub async fn together(
    runs: &[(Target, Vec<User>)],
    clients: usize,
) -> Result<Vec<Throughput>, String> {
    // Connecting is not part of the figure: a client here is a long-lived caller.
    let mut proxies = Vec::new();
    for (target, _) in runs {
        let mut mine = Vec::new();
        for _ in 0..clients {
            let conn = connect(target).await?;
            mine.push(auth_proxy(conn).await?);
        }
        proxies.push(mine);
    }
    let start = Instant::now();
    let mut tasks = Vec::new();
    for ((_, users), auths) in runs.iter().zip(proxies) {
        let per_client = users.len().div_ceil(clients.max(1)).max(1);
        let mine: Vec<_> = auths
            .into_iter()
            .zip(users.chunks(per_client))
            .map(|(auth, mine)| {
                let mine = mine.to_vec();
                tokio::spawn(async move {
                    let mut times = Vec::with_capacity(mine.len());
                    for user in &mine {
                        times.push(login(&auth, user).await?);
                    }
                    Ok::<_, String>((times, Instant::now()))
                })
            })
            .collect();
        tasks.push(mine);
    }
    let mut out = Vec::new();
    for ((target, _), tasks) in runs.iter().zip(tasks) {
        let mut run = Throughput {
            target: target.label(),
            clients,
            elapsed: Duration::ZERO,
            latencies: Vec::new(),
            begins: Vec::new(),
            answers: Vec::new(),
        };
        for task in tasks {
            let (times, done) = task.await.map_err(|e| format!("client task: {e}"))??;
            run.elapsed = run.elapsed.max(done - start);
            for (begin, answer) in times {
                run.latencies.push(begin + answer);
                run.begins.push(begin);
                run.answers.push(answer);
            }
        }
        out.push(run);
    }
    Ok(out)
}

async fn auth_proxy(conn: zbus::Connection) -> Result<AuthProxy<'static>, String> {
    AuthProxy::builder(&conn)
        .cache_properties(CacheProperties::No)
        .build()
        .await
        .map_err(|e| format!("Auth proxy: {e}"))
}

/// One login as pam_twofold.so drives it, minus PAM: Begin, then the code, then success.
/// Returns how long Begin and Answer took.
async fn login(auth: &AuthProxy<'_>, user: &User) -> Result<(Duration, Duration), String> {
    let ctx = LoginContext {
        user: user.name.clone(),
        service: "bench".into(),
        ..Default::default()
    };
    let t = Instant::now();
    let (id, step) = auth
        .begin(&ctx)
        .await
        .map_err(|e| format!("Begin for {}: {e}", user.name))?;
    let begin = t.elapsed();
    if step.action != Action::PromptSecret {
        return Err(format!("Begin for {}: got {step:?}", user.name));
    }
    let code = user.code_now()?;
    let t = Instant::now();
    let step = auth
        .answer(&id, &code)
        .await
        .map_err(|e| format!("Answer for {}: {e}", user.name))?;
    let answer = t.elapsed();
    if step.action != Action::Success {
        return Err(format!("Answer for {}: got {step:?}", user.name));
    }
    Ok((begin, answer))
}

/// `n` trusted `Begin` calls on one open socket connection: the daemon's share of a
/// trusted login (session window found, success, no prompt).
pub async fn trusted_begins(
    target: &Target,
    ctx: &LoginContext,
    n: usize,
) -> Result<Vec<Duration>, String> {
    let auth = auth_proxy(connect(target).await?).await?;
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let (_, step) = auth
            .begin(ctx)
            .await
            .map_err(|e| format!("trusted Begin: {e}"))?;
        times.push(t.elapsed());
        if step.action != Action::Success {
            return Err(format!("trusted Begin: got {step:?}"));
        }
    }
    Ok(times)
}

pub async fn connect(target: &Target) -> Result<zbus::Connection, String> {
    match target {
        Target::Bus(bus) => zbus::connection::Builder::address(bus.as_str())
            .build()
            .await
            .map_err(|e| format!("cannot connect to {bus}: {e}")),
        Target::Socket(path) => connect_p2p(path).await,
    }
}

/// A peer-to-peer connection made the way pam_twofold makes it: connect, read the
/// listener's credentials (the module checks its uid), then the D-Bus handshake.
pub async fn connect_p2p(path: &Path) -> Result<zbus::Connection, String> {
    let shown = path.display();
    let stream = tokio::net::UnixStream::connect(path)
        .await
        .map_err(|e| format!("{shown}: {e}"))?;
    let peer = stream.peer_cred().map_err(|e| format!("{shown}: {e}"))?;
    if peer.uid() != 0 {
        return Err(format!("{shown}: listener is uid {}, not root", peer.uid()));
    }
    let stream = stream.into_std().map_err(|e| e.to_string())?;
    zbus::connection::Builder::unix_stream(stream)
        .p2p()
        .build()
        .await
        .map_err(|e| format!("{shown}: {e}"))
}

/// The bus driver's proxy; building it sends nothing (no property cache, no match rule).
async fn bus_driver(conn: &zbus::Connection) -> Result<DBusProxy<'_>, String> {
    DBusProxy::builder(conn)
        .cache_properties(CacheProperties::No)
        .build()
        .await
        .map_err(|e| format!("DBus proxy: {e}"))
}

async fn name_owner(dbus: &DBusProxy<'_>) -> Result<(), String> {
    let name = zbus::names::BusName::try_from(BUS_NAME).map_err(|e| e.to_string())?;
    dbus.get_name_owner(name)
        .await
        .map_err(|e| format!("GetNameOwner: {e}"))?;
    Ok(())
}

/// `n` times: a fresh connection (socket, auth, Hello), one GetNameOwner, close. This is
/// the least any login over the bus pays.
pub async fn fresh_connections(bus: &str, n: usize) -> Result<Vec<Duration>, String> {
    let target = Target::Bus(bus.into());
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let conn = connect(&target).await?;
        name_owner(&bus_driver(&conn).await?).await?;
        drop(conn);
        times.push(t.elapsed());
    }
    Ok(times)
}

/// `n` GetNameOwner calls on one open connection.
pub async fn calls_on_open_connection(bus: &str, n: usize) -> Result<Vec<Duration>, String> {
    let conn = connect(&Target::Bus(bus.into())).await?;
    let dbus = bus_driver(&conn).await?;
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        name_owner(&dbus).await?;
        times.push(t.elapsed());
    }
    Ok(times)
}
