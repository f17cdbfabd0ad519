//! twofoldd's own socket: the same D-Bus interfaces as on the bus, peer-to-peer, so a
//! login costs one connection and no bus daemon, and works while dbus-daemon is down. The
//! caller is whoever the kernel says is on the other end (SO_PEERCRED), and each
//! connection's conversations end with it.

use crate::authz::Caller;
use crate::peer::SocketPeer;
use crate::service::{AuthService, ManageService, Shared};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::os::fd::FromRawFd;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{UnixListener, UnixStream};
use twofold_protocol::OBJECT_PATH;

/// A client must finish the D-Bus handshake within this, or its connection is closed.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection silent for this long is closed (a login waits for a person at most
/// `conversation_timeout_seconds`, 300 by default; this is longer than any of them may be).
const IDLE_TIMEOUT: Duration = Duration::from_secs(3600);
/// Open connections in all; root is never turned away by the per-uid bound
/// (`max_connections_per_user`), and the total keeps room for it (see [`ROOT_RESERVE`]).
const MAX_CONNECTIONS: usize = 1024;
/// Connections only root may use once the others have taken the rest.
const ROOT_RESERVE: usize = 64;

/// The listening sockets: those systemd passed (socket activation, `LISTEN_FDS`), or new
/// ones: the public socket at `path` (mode 0666) and the root-only one beside it (0600;
/// see [`twofold_protocol::ROOT_SOCKET_NAME`]). Both serve the same interfaces; the
/// kernel's file mode is what keeps other users off the second one.
pub fn listeners(path: &Path) -> Result<Vec<Listener>, String> {
    let passed = passed_by_systemd()?;
    if !passed.is_empty() {
        return passed
            .into_iter()
            .map(|l| {
                l.set_nonblocking(true)
                    .and_then(|()| UnixListener::from_std(l))
                    .map(|socket| Listener {
                        socket,
                        // systemd owns the file (`systemctl restart twofoldd.socket`).
                        bound_at: None,
                        rebind_failed: false,
                    })
                    .map_err(|e| format!("a socket systemd passed: {e}"))
            })
            .collect();
    }
    let dir = path
        .parent()
        .ok_or_else(|| format!("{} has no directory", path.display()))?;
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        // The daemon's umask (077) applies to mkdir: users must reach the socket inside.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| format!("cannot chmod {}: {e}", dir.display()))?;
    }
    // Whoever can write the directory could put their own socket in its place.
    let meta = std::fs::symlink_metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let me = nix::unistd::geteuid().as_raw();
    if !meta.is_dir() || (meta.uid() != 0 && meta.uid() != me) || meta.mode() & 0o022 != 0 {
        return Err(format!(
            "{} must be a directory owned by root (or twofoldd's account) that no one else can write",
            dir.display()
        ));
    }
    // Everyone may connect to the public socket: the daemon decides by the peer's uid.
    let public = path.to_owned();
    let root_only = twofold_protocol::root_socket_path(path);
    Ok(vec![
        Listener::bound(public, 0o666)?,
        Listener::bound(root_only, 0o600)?,
    ])
}

/// A listening socket, and where twofoldd bound it itself: a file removed under it (an
/// administrator's `rm`, a clean-up of /run) is bound again within [`REBIND_CHECK`],
/// or every login would fail (and pass, under `failmode=safe`) until a restart.
pub struct Listener {
    socket: UnixListener,
    bound_at: Option<(PathBuf, u32)>,
    /// Whether the last try to bind it again failed (said once, not every second).
    rebind_failed: bool,
}

/// How often a socket twofoldd bound itself is looked for at its path.
const REBIND_CHECK: Duration = Duration::from_secs(1);

impl Listener {
    fn bound(path: PathBuf, mode: u32) -> Result<Listener, String> {
        Ok(Listener {
            socket: bind(&path, mode)?,
            bound_at: Some((path, mode)),
            rebind_failed: false,
        })
    }

    /// The next connection; binds the socket again first if its file is gone.
    async fn accept(&mut self) -> std::io::Result<UnixStream> {
        let Some((path, mode)) = self.bound_at.clone() else {
            return self.socket.accept().await.map(|(s, _)| s);
        };
        loop {
            tokio::select! {
                accepted = self.socket.accept() => return accepted.map(|(s, _)| s),
                () = tokio::time::sleep(REBIND_CHECK) => {}
            }
            // Only a missing file: anything else at the path (another daemon's socket) is
            // not ours to replace.
            if std::fs::symlink_metadata(&path)
                .is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
            {
                match bind(&path, mode) {
                    Ok(socket) => {
                        eprintln!(
                            "twofoldd: {} was removed; listening there again",
                            path.display()
                        );
                        self.socket = socket;
                        self.rebind_failed = false;
                    }
                    Err(e) if !self.rebind_failed => {
                        eprintln!(
                            "twofoldd: {} was removed and {e}; trying every second",
                            path.display()
                        );
                        self.rebind_failed = true;
                    }
                    Err(_) => {}
                }
            }
        }
    }
}

/// Binds a socket at `path` (replacing a stale socket, nothing else) with `mode`. The
/// daemon's umask (077) keeps it private until the chmod.
fn bind(path: &Path, mode: u32) -> Result<UnixListener, String> {
    let shown = path.display();
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            let _ = std::fs::remove_file(path);
        }
        Ok(_) => return Err(format!("{shown} exists and is not a socket")),
        Err(_) => {}
    }
    let listener =
        UnixListener::bind(path).map_err(|e| format!("cannot listen on {shown}: {e}"))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("cannot chmod {shown}: {e}"))?;
    Ok(listener)
}

/// Listening sockets systemd (or systemd-socket-activate) passed to us from fd 3 on: the
/// public and the root-only socket, or one of them.
fn passed_by_systemd() -> Result<Vec<std::os::unix::net::UnixListener>, String> {
    let for_us = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        == Some(std::process::id());
    let count = match std::env::var("LISTEN_FDS").ok() {
        _ if !for_us => return Ok(Vec::new()),
        None => return Ok(Vec::new()),
        Some(n) => match n.parse::<i32>() {
            Ok(n @ 1..=2) => n,
            _ => return Err(format!("LISTEN_FDS={n}: expected one or two sockets")),
        },
    };
    Ok((3..3 + count)
        // SAFETY: systemd's protocol hands us fds 3.. as many as LISTEN_FDS, open and ours alone.
        .map(|fd| unsafe { std::os::unix::net::UnixListener::from_raw_fd(fd) })
        .collect())
}

/// Open connections per uid.
struct Open {
    by_uid: HashMap<u32, usize>,
    total: usize,
    per_user: usize,
}

/// Accepts connections on every listener until the process ends; the bounds on open
/// connections are shared by all of them.
pub async fn serve(listeners: Vec<Listener>, shared: Shared, per_user: usize) {
    let open = Arc::new(Mutex::new(Open {
        by_uid: HashMap::new(),
        total: 0,
        per_user,
    }));
    let next = Arc::new(AtomicU64::new(0));
    let loops: Vec<_> = listeners
        .into_iter()
        .map(|l| tokio::spawn(accept_loop(l, shared.clone(), open.clone(), next.clone())))
        .collect();
    for l in loops {
        let _ = l.await;
    }
}

async fn accept_loop(
    mut listener: Listener,
    shared: Shared,
    open: Arc<Mutex<Open>>,
    next: Arc<AtomicU64>,
) {
    loop {
        let stream = match listener.accept().await {
            Ok(stream) => stream,
            Err(e) => {
                // Out of descriptors, say: wait a little rather than spin.
                eprintln!("twofoldd: accept on the socket failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(cred) = stream.peer_cred() else {
            continue;
        };
        let uid = cred.uid();
        if !admit(&open, uid) {
            // Dropped unanswered: the client sees the connection close.
            continue;
        }
        let caller = Caller {
            uid,
            pid: cred.pid().and_then(|p| u32::try_from(p).ok()),
            bus_name: format!("socket:{}", next.fetch_add(1, Ordering::Relaxed)),
        };
        let peer = SocketPeer::of(&stream, caller);
        let (shared, open) = (shared.clone(), open.clone());
        tokio::spawn(async move {
            serve_one(stream, peer.clone(), &shared).await;
            shared.disconnected(peer.caller());
            leave(&open, uid);
        });
    }
}

fn admit(open: &Mutex<Open>, uid: u32) -> bool {
    let Ok(mut o) = open.lock() else {
        return false;
    };
    let mine = o.by_uid.get(&uid).copied().unwrap_or(0);
    let room = if uid == 0 {
        o.total < MAX_CONNECTIONS
    } else {
        mine < o.per_user && o.total < MAX_CONNECTIONS - ROOT_RESERVE
    };
    if room {
        o.by_uid.insert(uid, mine + 1);
        o.total += 1;
    }
    room
}

fn leave(open: &Mutex<Open>, uid: u32) {
    if let Ok(mut o) = open.lock() {
        o.total = o.total.saturating_sub(1);
        match o.by_uid.get_mut(&uid) {
            Some(n) if *n > 1 => *n -= 1,
            _ => {
                o.by_uid.remove(&uid);
            }
        }
    }
}

/// Serves one connection until the client closes it.
async fn serve_one(stream: UnixStream, peer: SocketPeer, shared: &Shared) {
    let Ok(stream) = stream.into_std() else {
        return;
    };
    let build = zbus::connection::Builder::unix_stream(stream)
        .server(zbus::Guid::generate())
        .p2p()
        .serve_at(OBJECT_PATH, AuthService(shared.clone(), Some(peer.clone())))
        .serve_at(OBJECT_PATH, ManageService(shared.clone(), Some(peer)))
        .build();
    let conn = match tokio::time::timeout(HANDSHAKE_TIMEOUT, build).await {
        Ok(Ok(conn)) => conn,
        // Silent, slow or not speaking D-Bus: closed.
        _ => return,
    };
    // The stream ends when the client goes away.
    let mut messages = zbus::MessageStream::from(&conn);
    while let Ok(Some(_)) = tokio::time::timeout(IDLE_TIMEOUT, messages.next()).await {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_users_connections_are_bounded_as_configured_and_root_still_gets_in() {
        let open = Mutex::new(Open {
            by_uid: HashMap::new(),
            total: 0,
            per_user: 4,
        });
        let admitted = (0..10).filter(|_| admit(&open, 1000)).count();
        assert_eq!(admitted, 4);
        assert!(admit(&open, 1001), "another user has a bound of their own");
        assert!(
            (0..100).all(|_| admit(&open, 0)),
            "root is not bound per uid"
        );
        leave(&open, 1000);
        assert!(admit(&open, 1000), "a closed connection frees a place");
        assert!(!admit(&open, 1000));
    }

    #[test]
    fn the_total_keeps_room_for_root() {
        let open = Mutex::new(Open {
            by_uid: HashMap::new(),
            total: 0,
            per_user: 960,
        });
        let users = (0..MAX_CONNECTIONS as u32)
            .filter(|uid| admit(&open, 1000 + uid))
            .count();
        assert_eq!(users, MAX_CONNECTIONS - ROOT_RESERVE);
        let root = (0..ROOT_RESERVE * 2).filter(|_| admit(&open, 0)).count();
        assert_eq!(root, ROOT_RESERVE);
    }
}
