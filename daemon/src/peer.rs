//! A caller on twofoldd's socket: who the kernel says connected (`SO_PEERCRED`), and, on
//! Linux 6.5 and later, a pidfd of that process (`SO_PEERPIDFD`). The pid is used only to
//! find the caller's login session; once the process has exited its number may be given
//! to another one, so from then on the caller has no pid (and so no session identity).

use crate::authz::Caller;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

#[derive(Clone)]
pub struct SocketPeer {
    caller: Caller,
    /// None on kernels without SO_PEERPIDFD: the pid is then taken as the kernel gave it.
    process: Option<Arc<OwnedFd>>,
}

impl SocketPeer {
    /// The peer of a connected `stream`, as `caller` describes it.
    pub fn of(stream: &impl AsFd, caller: Caller) -> SocketPeer {
        let process =
            nix::sys::socket::getsockopt(stream, nix::sys::socket::sockopt::PeerPidfd).ok();
        SocketPeer {
            caller,
            process: process.map(Arc::new),
        }
    }

    /// As it connected (its conversations are bound to its name).
    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    /// As of now: without its pid once the process that connected has exited (a child
    /// that inherited the connection keeps talking, but under no one's pid).
    pub fn current(&self) -> Caller {
        let mut caller = self.caller.clone();
        if let Some(pidfd) = &self.process {
            if has_exited(pidfd) {
                caller.pid = None;
            }
        }
        caller
    }
}

/// A pidfd is readable once its process has exited; an error counts as exited.
fn has_exited(pidfd: &OwnedFd) -> bool {
    let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
    !matches!(poll(&mut fds, PollTimeout::ZERO), Ok(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;
    use std::process::Command;

    fn caller(pid: u32) -> Caller {
        Caller {
            uid: 0,
            pid: Some(pid),
            bus_name: "socket:1".into(),
        }
    }

    #[test]
    fn a_peer_loses_its_pid_when_the_process_that_connected_exits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let listener = UnixListener::bind(&path).unwrap();
        // The child connects, hands the connection to a grandchild that keeps it open,
        // waits for a line, and exits.
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(
                "import os,socket,sys,time\n\
                 s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])\n\
                 if os.fork()==0:\n    time.sleep(5); os._exit(0)\n\
                 sys.stdin.readline()",
            )
            .arg(&path)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("python3");
        let (stream, _) = listener.accept().unwrap();
        let cred =
            nix::sys::socket::getsockopt(&stream, nix::sys::socket::sockopt::PeerCredentials)
                .unwrap();
        let pid = u32::try_from(cred.pid()).unwrap();
        assert_eq!(pid, child.id());
        let peer = SocketPeer::of(&stream, caller(pid));
        assert_eq!(peer.current().pid, Some(pid), "alive: the pid is used");
        if peer.process.is_none() {
            // A kernel before 6.5: the pid is all there is, and it is kept.
            drop(child.stdin.take());
            child.wait().unwrap();
            assert_eq!(peer.current().pid, Some(pid));
            println!(
                "NOTE: this kernel has no SO_PEERPIDFD; the pid is used as the kernel gave it"
            );
            return;
        }
        drop(child.stdin.take());
        child.wait().unwrap();
        assert_eq!(peer.current().pid, None, "exited: its pid may be reused");
        assert_eq!(peer.caller().pid, Some(pid));
    }
}
