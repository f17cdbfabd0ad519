//! A gateway on this machine spoken to over plain `http` is known only by its port, and
//! any local user may bind that port while the gateway is down (13013 is not a
//! privileged port): they would then receive the gateway's password, the numbers and
//! the codes. So before each request the port's listening sockets are looked up in the
//! kernel's tables (`/proc/self/net/tcp`, `tcp6`): each one a connection to this
//! machine could reach (bound to loopback, or to every address) must belong to the
//! account `local_user` names, or, where none is named, to root or a system account
//! (uid below [`FIRST_USER_UID`]). Otherwise nothing is sent.
//!
//! The look-up and the connection are not one step; a user would have to bind the port
//! in the moment between, which needs the gateway gone in that moment too (no one else
//! can bind a port the gateway holds: SO_REUSEPORT needs the same uid).

use std::net::{Ipv4Addr, Ipv6Addr};

/// Debian's first uid for people (login.defs `UID_MIN`): below are system accounts.
pub const FIRST_USER_UID: u32 = 1000;

/// Through /proc/self: the unit's `ProcSubset=pid` hides /proc/net, not a task's own
/// view of its network namespace (checked with a procfs mounted `subset=pid`).
const TABLES: [&str; 2] = ["/proc/self/net/tcp", "/proc/self/net/tcp6"];
/// `st` of a listening socket.
const LISTEN: &str = "0A";

/// Who must hold a gateway's port on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortOwner {
    port: u16,
    /// None: root or a system account.
    uid: Option<u32>,
    /// Named in errors.
    expected: String,
}

impl PortOwner {
    /// For a plain-http `url` to this machine (None for https, which is verified by its
    /// certificate instead); `local_user` as configured.
    pub fn for_url(
        url: &twofold_config::HttpUrl,
        local_user: Option<&str>,
    ) -> Result<Option<PortOwner>, String> {
        if url.scheme() != "http" {
            return Ok(None);
        }
        let port = url.port();
        match local_user {
            None => Ok(Some(PortOwner {
                port,
                uid: None,
                expected: format!("root or a system account (uid below {FIRST_USER_UID})"),
            })),
            Some(name) => {
                let user = nix::unistd::User::from_name(name)
                    .map_err(|e| format!("local_user {name:?}: {e}"))?
                    .ok_or_else(|| format!("local_user {name:?}: no such account"))?;
                Ok(Some(PortOwner {
                    port,
                    uid: Some(user.uid.as_raw()),
                    expected: format!("{name} (uid {})", user.uid),
                }))
            }
        }
    }

    fn allows(&self, uid: u32) -> bool {
        match self.uid {
            Some(expected) => uid == expected,
            None => uid < FIRST_USER_UID,
        }
    }

    /// Whether the port is held, and only by the expected account; the reason if not.
    pub fn check(&self) -> Result<(), String> {
        let mut owners = Vec::new();
        for table in TABLES {
            match std::fs::read_to_string(table) {
                Ok(text) => owners.extend(reachable_listeners(&text, self.port)),
                // No IPv6 on this host: no table, no listener there.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("cannot read {table}: {e}")),
            }
        }
        if owners.is_empty() {
            return Err(format!("nothing listens on port {}", self.port));
        }
        match owners.iter().find(|uid| !self.allows(**uid)) {
            Some(uid) => Err(format!(
                "port {} is held by uid {uid}, not by {}: nothing sent",
                self.port, self.expected
            )),
            None => Ok(()),
        }
    }
}

/// The uids of the listening sockets on `port` in one of the kernel's tables that a
/// connection to 127.0.0.1 or ::1 could reach.
fn reachable_listeners(table: &str, port: u16) -> Vec<u32> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (local, state, uid) = (fields.get(1)?, fields.get(3)?, fields.get(7)?);
            let (address, at) = local.split_once(':')?;
            let reachable = u16::from_str_radix(at, 16).ok()? == port
                && *state == LISTEN
                && reaches_loopback(address)?;
            reachable.then(|| uid.parse().ok()).flatten()
        })
        .collect()
}

/// Whether a table's address (hex, each 32-bit word in the host's byte order) is
/// loopback or every address; None if it is not one.
fn reaches_loopback(hex: &str) -> Option<bool> {
    let words: Vec<u32> = (0..hex.len() / 8)
        .map(|i| u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16).ok())
        .collect::<Option<_>>()?;
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
    match bytes.len() {
        4 => {
            let v4 = Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]);
            Some(v4.is_loopback() || v4.is_unspecified())
        }
        16 => {
            let octets: [u8; 16] = bytes.try_into().ok()?;
            let v6 = Ipv6Addr::from(octets);
            let mapped = v6
                .to_ipv4_mapped()
                .is_some_and(|v4| v4.is_loopback() || v4.is_unspecified());
            Some(v6.is_loopback() || v6.is_unspecified() || mapped)
        }
        _ => None,
    }
}

/// `local_user = "<this process's account>"`, for the adapters' tests: their stand-in
/// gateways are this process's sockets.
#[cfg(test)]
pub(crate) fn local_user_line() -> String {
    let me = nix::unistd::User::from_uid(nix::unistd::geteuid())
        .ok()
        .flatten()
        .map_or("root".to_owned(), |u| u.name);
    format!("local_user = \"{me}\"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(port: u16, uid: Option<u32>) -> PortOwner {
        PortOwner {
            port,
            uid,
            expected: "someone".into(),
        }
    }

    fn hex4(a: Ipv4Addr) -> String {
        format!("{:08X}", u32::from_ne_bytes(a.octets()))
    }

    #[test]
    fn the_kernel_s_table_is_read_for_listeners_a_loopback_connection_reaches() {
        let header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";
        let row = |address: Ipv4Addr, port: u16, state: &str, uid: u32| {
            format!(
                "   0: {}:{port:04X} 00000000:0000 {state} 00000000:00000000 00:00000000 00000000 {uid:>5}        0 1234 1 0 100 0 0 10 0\n",
                hex4(address)
            )
        };
        let table = [
            header.to_owned(),
            row(Ipv4Addr::LOCALHOST, 13013, "0A", 110),
            row(Ipv4Addr::UNSPECIFIED, 13013, "0A", 1001),
            row(Ipv4Addr::new(192, 0, 2, 1), 13013, "0A", 1002),
            row(Ipv4Addr::LOCALHOST, 13013, "01", 1003),
            row(Ipv4Addr::LOCALHOST, 13014, "0A", 1004),
        ]
        .concat();
        assert_eq!(reachable_listeners(&table, 13013), vec![110, 1001]);
        assert_eq!(
            reachable_listeners("garbage\n1 2 3\n", 13013),
            Vec::<u32>::new()
        );
        // IPv6: ::1, ::, and ::ffff:127.0.0.1 reach; 2001:db8::1 does not.
        let hex6 = |a: Ipv6Addr| -> String {
            a.octets()
                .chunks(4)
                .map(|c| format!("{:08X}", u32::from_ne_bytes([c[0], c[1], c[2], c[3]])))
                .collect()
        };
        for (a, reaches) in [
            (Ipv6Addr::LOCALHOST, true),
            (Ipv6Addr::UNSPECIFIED, true),
            (Ipv4Addr::LOCALHOST.to_ipv6_mapped(), true),
            ("2001:db8::1".parse().unwrap(), false),
        ] {
            assert_eq!(reaches_loopback(&hex6(a)), Some(reaches), "{a}");
        }
    }

    #[test]
    fn a_port_held_by_this_process_is_told_apart_by_its_uid() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let me = nix::unistd::geteuid().as_raw();
        assert_eq!(owner(port, Some(me)).check(), Ok(()));
        let e = owner(port, Some(me + 1)).check().unwrap_err();
        assert!(
            e.contains(&format!("port {port} is held by uid {me}, not by someone")),
            "{e}"
        );
        assert_eq!(
            owner(port, None).check().is_ok(),
            me < FIRST_USER_UID,
            "root and system accounts only, by default"
        );
        drop(listener);
        let e = owner(port, Some(me)).check().unwrap_err();
        assert_eq!(e, format!("nothing listens on port {port}"));
    }
}
