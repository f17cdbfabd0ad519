//! The floor of a login over twofoldd's socket: a trivial D-Bus peer-to-peer server
//! (`pam-bench p2p-server`, its own process like twofoldd, one thread, served the way
//! twofoldd serves its socket) and a client that does what pam_twofold does per login —
//! a fresh current-thread runtime, connect, the listener's credentials, the handshake,
//! one call, close — and nothing else.

use futures_util::StreamExt;
use std::path::Path;
use std::time::{Duration, Instant};

const PATH: &str = "/org/twofold/Bench";
const INTERFACE: &str = "org.twofold.Bench1";

struct Trivial;

#[zbus::interface(name = "org.twofold.Bench1")]
impl Trivial {
    /// Answers at once: the call's cost is the round trip and the (de)serialisation.
    fn ping(&self, text: String) -> String {
        text
    }
}

/// Serves the trivial object on `socket` until killed.
pub fn serve(socket: &Path) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let listener = tokio::net::UnixListener::bind(socket)
            .map_err(|e| format!("{}: {e}", socket.display()))?;
        loop {
            let (stream, _) = listener.accept().await.map_err(|e| e.to_string())?;
            tokio::spawn(async move {
                let Ok(stream) = stream.into_std() else {
                    return;
                };
                let Ok(conn) = zbus::connection::Builder::unix_stream(stream)
                    .server(zbus::Guid::generate())
                    .p2p()
                    .serve_at(PATH, Trivial)
                    .build()
                    .await
                else {
                    return;
                };
                let mut messages = zbus::MessageStream::from(&conn);
                while let Some(Ok(_)) = messages.next().await {}
            });
        }
    })
}

/// One call on `conn`.
async fn ping(conn: &zbus::Connection) -> Result<(), String> {
    conn.call_method(None::<&str>, PATH, Some(INTERFACE), "Ping", &("bench",))
        .await
        .map_err(|e| format!("Ping: {e}"))?;
    Ok(())
}

/// `n` times, each timed alone: a fresh runtime and connection, one call, all dropped.
pub fn fresh(socket: &Path, n: usize) -> Result<Vec<Duration>, String> {
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime.block_on(async {
            let conn = crate::dbus::connect_p2p(socket).await?;
            ping(&conn).await
        })?;
        drop(runtime);
        times.push(t.elapsed());
    }
    Ok(times)
}

/// `n` calls on one open connection.
pub async fn open(socket: &Path, n: usize) -> Result<Vec<Duration>, String> {
    let conn = crate::dbus::connect_p2p(socket).await?;
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        ping(&conn).await?;
        times.push(t.elapsed());
    }
    Ok(times)
}
