//! twofoldd over D-Bus without PAM: logins from concurrent clients (Begin, then Answer with
//! the right code), and bare bus round trips as reference figures.

use crate::User;
use std::time::{Duration, Instant};
use twofold_protocol::{Action, AuthProxy, BUS_NAME, LoginContext};
use zbus::fdo::DBusProxy;
use zbus::proxy::CacheProperties;

/// What the concurrent clients did.
pub struct Throughput {
    pub clients: usize,
    pub elapsed: Duration,
    /// One Begin + Answer each.
    pub latencies: Vec<Duration>,
}

/// Each of `clients` connections logs in its own share of `users` one after the other;
/// the clients run concurrently. Fails on the first login that does not succeed.
pub async fn throughput(bus: &str, users: &[User], clients: usize) -> Result<Throughput, String> {
    // Connecting is not part of the figure: a client here is a long-lived caller.
    let mut proxies = Vec::new();
    for _ in 0..clients {
        let conn = connect(bus).await?;
        let auth = AuthProxy::builder(&conn)
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .map_err(|e| format!("Auth proxy: {e}"))?;
        proxies.push(auth);
    }
    let per_client = users.len().div_ceil(clients.max(1)).max(1);
    let start = Instant::now();
    let tasks: Vec<_> = proxies
        .into_iter()
        .zip(users.chunks(per_client))
        .map(|(auth, mine)| {
            let mine = mine.to_vec();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(mine.len());
                for user in &mine {
                    let t = Instant::now();
                    login(&auth, user).await?;
                    latencies.push(t.elapsed());
                }
                Ok::<_, String>(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.map_err(|e| format!("client task: {e}"))??);
    }
    Ok(Throughput {
        clients,
        elapsed: start.elapsed(),
        latencies,
    })
}

/// One login as pam_twofold.so drives it, minus PAM: Begin, then the code, then success.
async fn login(auth: &AuthProxy<'_>, user: &User) -> Result<(), String> {
    let ctx = LoginContext {
        user: user.name.clone(),
        service: "bench".into(),
        ..Default::default()
    };
    let (id, step) = auth
        .begin(&ctx)
        .await
        .map_err(|e| format!("Begin for {}: {e}", user.name))?;
    if step.action() != Some(Action::PromptSecret) {
        return Err(format!("Begin for {}: got {step:?}", user.name));
    }
    let step = auth
        .answer(&id, &user.code_now()?)
        .await
        .map_err(|e| format!("Answer for {}: {e}", user.name))?;
    if step.action() != Some(Action::Success) {
        return Err(format!("Answer for {}: got {step:?}", user.name));
    }
    Ok(())
}

async fn connect(bus: &str) -> Result<zbus::Connection, String> {
    zbus::connection::Builder::address(bus)
        .build()
        .await
        .map_err(|e| format!("cannot connect to {bus}: {e}"))
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
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let conn = connect(bus).await?;
        name_owner(&bus_driver(&conn).await?).await?;
        drop(conn);
        times.push(t.elapsed());
    }
    Ok(times)
}

/// `n` GetNameOwner calls on one open connection.
pub async fn calls_on_open_connection(bus: &str, n: usize) -> Result<Vec<Duration>, String> {
    let conn = connect(bus).await?;
    let dbus = bus_driver(&conn).await?;
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        name_owner(&dbus).await?;
        times.push(t.elapsed());
    }
    Ok(times)
}
