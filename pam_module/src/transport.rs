//! Reaching twofoldd and checking that it is twofoldd, before anything is sent that
//! matters: over its own socket (the default; the kernel says who listens) or over a
//! D-Bus bus (the bus says who owns the name). Only a definite absence counts as
//! "unreachable" (the one case `failmode=safe` lets through); anything a local user can
//! cause — a dropped or timed-out connection, an I/O error — fails closed.

use crate::client::protocol;
use crate::options::{Options, Transport};
use crate::verdict::Failure;
use twofold_protocol::{AUTH_INTERFACE, AuthProxy, BUS_NAME, LoginContext, OBJECT_PATH, Step};
use zbus::proxy::CacheProperties;

/// Connects, checks the peer, and sends `Begin`: the proxy for the rest of the
/// conversation, its id and the first step.
pub async fn begin(
    opts: &Options,
    ctx: &LoginContext,
) -> Result<(AuthProxy<'static>, String, Step), Failure> {
    match &opts.transport {
        Transport::Socket(path) => {
            let conn = connect_socket_as_me(path, opts).await?;
            let auth = AuthProxy::builder(&conn)
                .cache_properties(CacheProperties::No)
                .build()
                .await
                .map_err(protocol)?;
            let (id, step) = auth.begin(ctx).await.map_err(protocol)?;
            Ok((auth, id, step))
        }
        Transport::Bus(address) => {
            let conn = connect_bus(address, opts).await?;
            let dbus = zbus::fdo::DBusProxy::builder(&conn)
                .cache_properties(CacheProperties::No)
                .build()
                .await
                .map_err(|e| Failure::Disturbed(e.to_string()))?;
            let (owner, (id, step)) = begin_on_bus(&conn, &dbus, ctx, opts).await?;
            // Talk to the unique name we checked: if the owner changes mid-way, calls fail.
            let auth = AuthProxy::builder(&conn)
                .destination(owner)
                .cache_properties(CacheProperties::No)
                .build()
                .await
                .map_err(protocol)?;
            Ok((auth, id, step))
        }
    }
}

/// Root (sshd, sudo, login) connects to the root-only socket beside `path`, whose queue
/// no local user can fill; others, and root when that socket is missing (a daemon from
/// before it), connect to `path`.
async fn connect_socket_as_me(path: &str, opts: &Options) -> Result<zbus::Connection, Failure> {
    if nix::unistd::geteuid().is_root() {
        let private = twofold_protocol::root_socket_path(std::path::Path::new(path));
        if let Some(private) = private.to_str() {
            match connect_socket(private, opts).await {
                Err(Failure::Unreachable(_)) => {}
                done => return done,
            }
        }
    }
    connect_socket(path, opts).await
}

/// Connects to twofoldd's socket and checks, from the kernel (SO_PEERCRED), that root
/// (or `daemon_user=`) listens there before a byte is sent. No socket or nobody
/// listening is unreachable; a full queue (`EAGAIN`) is retried once; the rest fails
/// closed. With socket activation the socket is always there and a connect waits for the
/// daemon to start.
async fn connect_socket(path: &str, opts: &Options) -> Result<zbus::Connection, Failure> {
    use std::io::ErrorKind::{ConnectionRefused, NotFound};
    let deadline = tokio::time::Instant::now() + opts.timeout;
    let mut tries = 0;
    let stream = loop {
        tries += 1;
        match tokio::time::timeout_at(deadline, tokio::net::UnixStream::connect(path)).await {
            Ok(Ok(stream)) => break stream,
            Ok(Err(e)) if matches!(e.kind(), NotFound | ConnectionRefused) => {
                return Err(Failure::Unreachable(format!("{path}: {e}")));
            }
            Ok(Err(_)) if tries < 2 => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Ok(Err(e)) => return Err(Failure::Disturbed(format!("{path}: {e}"))),
            Err(_) => {
                return Err(Failure::Disturbed(format!(
                    "timed out connecting to {path}"
                )));
            }
        }
    };
    let peer = stream
        .peer_cred()
        .map_err(|e| Failure::Disturbed(format!("{path}: no peer credentials: {e}")))?;
    check_owner(peer.uid(), opts.daemon_user.as_deref())?;
    let stream = stream
        .into_std()
        .map_err(|e| Failure::Disturbed(e.to_string()))?;
    let build = zbus::connection::Builder::unix_stream(stream)
        .p2p()
        .method_timeout(opts.timeout)
        .build();
    match tokio::time::timeout_at(deadline, build).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(Failure::Disturbed(format!("{path}: {e}"))),
        Err(_) => Err(Failure::Disturbed(format!("timed out talking to {path}"))),
    }
}

/// Connects to the bus within `timeout`. Only a definite absence — no socket (`ENOENT`)
/// or nobody listening (`ECONNREFUSED`) — counts as unreachable. Anything else (a reset,
/// a timeout, `EAGAIN`) is what a local user can cause, e.g. with a flood of bare
/// connections that makes dbus-daemon drop the oldest incomplete ones: one retry within
/// the time left, then it fails closed.
async fn connect_bus(address: &str, opts: &Options) -> Result<zbus::Connection, Failure> {
    let deadline = tokio::time::Instant::now() + opts.timeout;
    let mut last = String::new();
    for _ in 0..2 {
        let build = zbus::connection::Builder::address(address)
            .method_timeout(opts.timeout)
            .build();
        match tokio::time::timeout_at(deadline, build).await {
            Ok(Ok(conn)) => return Ok(conn),
            Ok(Err(e)) if definitely_absent(&e) => return Err(Failure::Unreachable(e.to_string())),
            Ok(Err(e)) => last = e.to_string(),
            Err(_) => return Err(Failure::Disturbed("timed out connecting to the bus".into())),
        }
    }
    Err(Failure::Disturbed(format!(
        "the bus dropped the connection twice: {last}"
    )))
}

fn definitely_absent(e: &zbus::Error) -> bool {
    use std::io::ErrorKind::{ConnectionRefused, NotFound};
    match e {
        zbus::Error::Connection(io, _) | zbus::Error::InputOutput(io) => {
            matches!(io.kind(), NotFound | ConnectionRefused)
        }
        _ => false,
    }
}

/// Finds who owns the daemon's name — the bus itself answers, so no impostor can — and
/// sends `Begin` to that unique name while asking the bus for its uid; the reply is used
/// only once the owner is known to be root (or `daemon_user=`). (`Begin` carries only the
/// login context, nothing secret; the code goes out in `Answer`, after the check.)
/// Only "nobody owns the name" (after activation had its chance) counts as an
/// unreachable daemon (`failmode=safe`): whatever goes wrong after that fails closed. Returns the checked unique name and the
/// daemon's first step.
async fn begin_on_bus(
    conn: &zbus::Connection,
    dbus: &zbus::fdo::DBusProxy<'_>,
    ctx: &LoginContext,
    opts: &Options,
) -> Result<(zbus::names::UniqueName<'static>, (String, Step)), Failure> {
    let name =
        zbus::names::BusName::try_from(BUS_NAME).map_err(|e| Failure::Local(e.to_string()))?;
    let owner = owner_of(dbus, name).await?;
    let body = (ctx,);
    let (owner_uid, reply) = tokio::join!(
        dbus.get_connection_unix_user(owner.clone().into()),
        conn.call_method(
            Some(owner.as_ref()),
            OBJECT_PATH,
            Some(AUTH_INTERFACE),
            "Begin",
            &body
        ),
    );
    let owner_uid = owner_uid.map_err(|e| Failure::Disturbed(e.to_string()))?;
    check_owner(owner_uid, opts.daemon_user.as_deref())?;
    let first = reply
        .map_err(protocol)?
        .body()
        .deserialize::<(String, Step)>()
        .map_err(protocol)?;
    Ok((owner, first))
}

/// The unique name owning `name`, asking the bus to activate the daemon if nobody does.
/// Unreachable only when the bus itself says nobody owns it and nothing can be
/// activated, or activation ran and still nobody owns it; any other error fails closed.
async fn owner_of(
    dbus: &zbus::fdo::DBusProxy<'_>,
    name: zbus::names::BusName<'_>,
) -> Result<zbus::names::UniqueName<'static>, Failure> {
    use zbus::fdo::Error::{NameHasNoOwner, ServiceUnknown};
    let disturbed = |e: zbus::fdo::Error| Failure::Disturbed(e.to_string());
    match dbus.get_name_owner(name.clone()).await {
        Ok(owner) => return Ok(owner.into_inner()),
        Err(NameHasNoOwner(_)) => {}
        Err(e) => return Err(disturbed(e)),
    }
    let well_known = zbus::names::WellKnownName::try_from(BUS_NAME)
        .map_err(|e| Failure::Local(e.to_string()))?;
    match dbus.start_service_by_name(well_known, 0).await {
        Ok(_) => {}
        Err(ServiceUnknown(why)) => {
            return Err(Failure::Unreachable(format!(
                "no owner of {BUS_NAME} and nothing to activate: {why}"
            )));
        }
        Err(e) => return Err(disturbed(e)),
    }
    match dbus.get_name_owner(name).await {
        Ok(owner) => Ok(owner.into_inner()),
        Err(NameHasNoOwner(why)) => Err(Failure::Unreachable(format!(
            "activated, but nobody owns {BUS_NAME}: {why}"
        ))),
        Err(e) => Err(disturbed(e)),
    }
}

/// The daemon's name must belong to root, or to the account named by `daemon_user=`.
pub(crate) fn check_owner(owner_uid: u32, daemon_user: Option<&str>) -> Result<(), Failure> {
    let expected = match daemon_user {
        None => 0,
        Some(name) => match nix::unistd::User::from_name(name) {
            Ok(Some(u)) => u.uid.as_raw(),
            _ => return Err(Failure::Local(format!("daemon_user={name}: no such user"))),
        },
    };
    if owner_uid == expected || owner_uid == 0 {
        Ok(())
    } else {
        Err(Failure::Impostor(format!(
            "{BUS_NAME} is owned by uid {owner_uid}, expected uid {expected}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_root_or_the_named_daemon_user_may_own_the_name() {
        assert!(check_owner(0, None).is_ok());
        assert!(matches!(check_owner(1000, None), Err(Failure::Impostor(_))));
        assert!(check_owner(0, Some("root")).is_ok());
        assert!(matches!(
            check_owner(65534, Some("root")),
            Err(Failure::Impostor(_))
        ));
        assert!(matches!(
            check_owner(0, Some("no-such-user-here")),
            Err(Failure::Local(_))
        ));
    }
}
