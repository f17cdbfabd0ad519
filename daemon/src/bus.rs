//! twofoldd on a D-Bus bus, for as long as it runs. Logins and twofoldctl use the socket,
//! which needs no bus daemon; the bus serves other programs and bus activation. When the
//! bus goes away (dbus-daemon restarted or killed), twofoldd says so, keeps serving the
//! socket, and connects again with pauses from 1 s up to 30 s, taking its name back.

use crate::service::{AuthService, ManageService, Shared};
use futures_util::StreamExt;
use std::time::Duration;
use twofold_protocol::{BUS_NAME, OBJECT_PATH};

/// Every call the daemon makes on the bus (to the bus driver) gives up after this.
const BUS_CALL_TIMEOUT: Duration = Duration::from_secs(5);
const FIRST_PAUSE: Duration = Duration::from_secs(1);
const LONGEST_PAUSE: Duration = Duration::from_secs(30);

/// Connects to the bus at `address`, serves both interfaces there and takes the name:
/// the `generation`th connection of this daemon to a bus.
pub async fn join(
    address: &str,
    shared: &Shared,
    generation: u64,
) -> Result<zbus::Connection, String> {
    let conn = zbus::connection::Builder::address(address)
        .method_timeout(BUS_CALL_TIMEOUT)
        .build()
        .await
        .map_err(|e| format!("cannot connect to the bus at {address}: {e}"))?;
    let dbus = zbus::fdo::DBusProxy::new(&conn)
        .await
        .map_err(|e| format!("cannot reach the bus driver at {address}: {e}"))?;
    let on_bus = shared.on_bus(dbus, generation);
    // Serve the interfaces before taking the name, so no call finds the name but no object.
    let server = conn.object_server();
    server
        .at(OBJECT_PATH, AuthService(on_bus.clone(), None))
        .await
        .map_err(|e| e.to_string())?;
    server
        .at(OBJECT_PATH, ManageService(on_bus, None))
        .await
        .map_err(|e| e.to_string())?;
    conn.request_name(BUS_NAME)
        .await
        .map_err(|e| format!("cannot own {BUS_NAME} on {address}: {e}"))?;
    Ok(conn)
}

/// Stays on the bus: waits for `conn` (if any) to close, then joins again, for ever.
pub async fn stay_on(address: String, shared: Shared, mut conn: Option<zbus::Connection>) {
    let mut generation = 1;
    loop {
        if let Some(c) = conn.take() {
            closed(&c).await;
            eprintln!(
                "twofoldd: the bus at {address} went away; logins go on over the socket; connecting again"
            );
        }
        let mut pause = FIRST_PAUSE;
        let mut said = String::new();
        conn = loop {
            tokio::time::sleep(pause).await;
            generation += 1;
            match join(&address, &shared, generation).await {
                Ok(c) => {
                    eprintln!("twofoldd: serving {BUS_NAME} on {address} again");
                    break Some(c);
                }
                Err(e) => {
                    // Said once, not at every try.
                    if e != said {
                        eprintln!(
                            "twofoldd: {e}; trying again every {} s at most",
                            LONGEST_PAUSE.as_secs()
                        );
                        said = e;
                    }
                    pause = (pause * 2).min(LONGEST_PAUSE);
                }
            }
        };
    }
}

/// Returns once the connection is closed: its message stream ends (zbus copies every
/// message into each stream, and the object server answers the calls meanwhile).
async fn closed(conn: &zbus::Connection) {
    let mut messages = zbus::MessageStream::from(conn);
    while let Some(Ok(_)) = messages.next().await {}
}
