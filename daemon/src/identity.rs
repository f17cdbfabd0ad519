//! Which device a login comes from, decided from what the daemon can check — never from a
//! name the client picks:
//! - SSH after a public key: the key's SHA-256 fingerprint (from SSH_AUTH_INFO_0) plus
//!   the remote address;
//! - SSH without a key: the remote address alone, and only where policy allows it;
//! - anything else (sudo, su, screen lockers): the kernel's login session of the calling
//!   process (/proc/PID/sessionid, PID from the bus) plus the tty.
//!
//! No identity means no trust: the user is asked for a code.

use crate::authz::Caller;
use sha2::{Digest, Sha256};
use std::net::IpAddr;
use twofold_config::ServicePolicy;
use twofold_protocol::LoginContext;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceIdentity {
    /// Canonical text; only its hash is stored.
    pub key: String,
    /// What `twofoldctl trust list` shows.
    pub description: String,
    /// Strong enough for "remember this device" (only a verified SSH key is).
    pub rememberable: bool,
}

impl DeviceIdentity {
    /// Bound to the user: the same device of another user hashes differently.
    pub fn hash_for(&self, user: &str) -> String {
        hex(&Sha256::new()
            .chain_update(user.as_bytes())
            .chain_update([0u8])
            .chain_update(self.key.as_bytes())
            .finalize())
    }
}

/// The login session of a process, as the kernel's audit subsystem numbers it.
pub trait SessionLookup: Send + Sync {
    fn session_of(&self, pid: u32) -> Option<u32>;
}

pub struct ProcSessions;

impl SessionLookup for ProcSessions {
    fn session_of(&self, pid: u32) -> Option<u32> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/sessionid")).ok()?;
        // (u32)-1 means "no session" (no pam_loginuid in the process's ancestry).
        text.trim().parse::<u32>().ok().filter(|&id| id != u32::MAX)
    }
}

/// Which device a login comes from. Only a root caller running sshd can present an SSH
/// identity (the key that passed, the remote address): a process of the user could
/// claim anything in those fields, so a non-root caller is always its own kernel login
/// session. And root's other services are never taken for sshd because the user's
/// environment, copied into PAM, carries an `SSH_AUTH_INFO_0`.
pub fn identify(
    ctx: &LoginContext,
    caller: &Caller,
    sessions: &dyn SessionLookup,
    policy: &ServicePolicy,
) -> Option<DeviceIdentity> {
    let sshd = caller.uid == 0 && policy.ssh;
    if !sshd {
        return session_identity(ctx, caller.pid, sessions);
    }
    if let Some(fingerprint) = ssh_key_fingerprint(&ctx.ssh_auth_info) {
        let address = ctx.rhost.parse::<IpAddr>().ok()?;
        return Some(DeviceIdentity {
            key: format!("ssh-key {fingerprint} {address}"),
            description: format!("SSH key {fingerprint} from {address}"),
            rememberable: true,
        });
    }
    let address = ctx
        .rhost
        .parse::<IpAddr>()
        .ok()
        .filter(|_| policy.trust_address)?;
    Some(DeviceIdentity {
        key: format!("ssh-address {address}"),
        description: format!("SSH from {address} (address only)"),
        rememberable: false,
    })
}

/// The caller's kernel login session and tty.
fn session_identity(
    ctx: &LoginContext,
    caller_pid: Option<u32>,
    sessions: &dyn SessionLookup,
) -> Option<DeviceIdentity> {
    let session = sessions.session_of(caller_pid?)?;
    Some(DeviceIdentity {
        key: format!("session {session} {}", ctx.tty),
        description: format!(
            "login session {session} on {}",
            if ctx.tty.is_empty() {
                "no tty"
            } else {
                &ctx.tty
            }
        ),
        rememberable: false,
    })
}

/// A login through sshd (the rule is shared with the module: `LoginContext::is_ssh`).
pub fn is_ssh(ctx: &LoginContext) -> bool {
    ctx.is_ssh()
}

/// `SHA256:...` of the last public key in SSH_AUTH_INFO_0 (`publickey TYPE BASE64` lines).
pub fn ssh_key_fingerprint(auth_info: &str) -> Option<String> {
    let blob = auth_info.lines().rev().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next() == Some("publickey"))
            .then(|| words.nth(1))
            .flatten()
    })?;
    let bytes = data_encoding::BASE64.decode(blob.as_bytes()).ok()?;
    if bytes.len() < 16 {
        return None;
    }
    Some(fingerprint(&bytes))
}

/// Key types of FIDO2 security keys (and their certificates), whose signature sshd checks
/// with the key's flags: user presence always, user verification (PIN or biometric) when
/// `verify-required` is set.
const SECURITY_KEY_TYPES: [&str; 4] = [
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
    "sk-ssh-ed25519-cert-v01@openssh.com",
    "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com",
];

/// The fingerprint of the security key that passed sshd's public key authentication, if
/// the last key in SSH_AUTH_INFO_0 is one: only for root's sshd (as [`identify`]), and
/// only when the key blob itself names the type the line does.
pub fn security_key(ctx: &LoginContext, caller: &Caller, policy: &ServicePolicy) -> Option<String> {
    if caller.uid != 0 || !policy.ssh {
        return None;
    }
    let (kind, blob) = ctx.ssh_auth_info.lines().rev().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next() == Some("publickey")).then(|| Some((words.next()?, words.next()?)))?
    })?;
    if !SECURITY_KEY_TYPES.contains(&kind) {
        return None;
    }
    // The blob starts with its type as an SSH string: a 4-byte length, then the name.
    let bytes = data_encoding::BASE64.decode(blob.as_bytes()).ok()?;
    let len = u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    if bytes.get(4..4 + len)? != kind.as_bytes() {
        return None;
    }
    Some(fingerprint(&bytes))
}

/// `SHA256:…` of a public key blob, as `ssh-keygen -l` prints it.
fn fingerprint(blob: &[u8]) -> String {
    format!(
        "SHA256:{}",
        data_encoding::BASE64_NOPAD.encode(&Sha256::digest(blob))
    )
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Sessions;
    impl SessionLookup for Sessions {
        fn session_of(&self, pid: u32) -> Option<u32> {
            (pid == 4242).then_some(7)
        }
    }

    // An ed25519 public key blob; `ssh-keygen -lf` gives the fingerprint below.
    const KEY: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIPBt/BNd5lA1dnF//n6CHzH8KvAg/yKN0naK8HbRXq9f";

    fn policy(trust_address: bool) -> ServicePolicy {
        ServicePolicy {
            session_seconds: 3600,
            idle_seconds: 600,
            remember_device: true,
            remember_seconds: 86400,
            trust_address,
            accept_security_keys: false,
            ssh: false,
        }
    }

    /// [`super::identify`] with the policy's `ssh` set as the default configuration
    /// resolves it for the context's service (`sshd`, `sshd-*`).
    fn identify(
        ctx: &LoginContext,
        caller: &Caller,
        sessions: &dyn SessionLookup,
        policy: &ServicePolicy,
    ) -> Option<DeviceIdentity> {
        let ssh = twofold_config::Config::default()
            .service_policy(&ctx.service)
            .ssh;
        super::identify(ctx, caller, sessions, &ServicePolicy { ssh, ..*policy })
    }

    fn by_root(pid: Option<u32>) -> Caller {
        Caller {
            uid: 0,
            pid,
            bus_name: ":1.1".into(),
        }
    }

    fn ssh(info: &str, rhost: &str) -> LoginContext {
        LoginContext {
            user: "alice".into(),
            service: "sshd".into(),
            rhost: rhost.into(),
            tty: "ssh".into(),
            ssh_auth_info: info.into(),
            ..Default::default()
        }
    }

    #[test]
    fn ssh_key_fingerprint_matches_openssh() {
        let fp = ssh_key_fingerprint(&format!("publickey ssh-ed25519 {KEY}")).unwrap();
        assert_eq!(fp, "SHA256:AL3yRe+UsG8huS/PWJWLy5jlvqZVfuQi6lknuItswGU");
        // Several methods: the public key line counts, whatever its position.
        let two = format!("password\npublickey ssh-ed25519 {KEY}\n");
        assert_eq!(ssh_key_fingerprint(&two).unwrap(), fp);
        assert_eq!(ssh_key_fingerprint(""), None);
        assert_eq!(
            ssh_key_fingerprint("publickey ssh-ed25519 !!notbase64"),
            None
        );
        assert_eq!(ssh_key_fingerprint("keyboard-interactive"), None);
    }

    #[test]
    fn key_and_address_make_a_rememberable_identity() {
        let id = identify(
            &ssh(&format!("publickey ssh-ed25519 {KEY}"), "192.0.2.7"),
            &by_root(None),
            &Sessions,
            &policy(false),
        )
        .unwrap();
        assert!(id.rememberable);
        assert!(id.description.contains("192.0.2.7"));
        let other_host = identify(
            &ssh(&format!("publickey ssh-ed25519 {KEY}"), "192.0.2.8"),
            &by_root(None),
            &Sessions,
            &policy(false),
        );
        assert_ne!(Some(id.clone()), other_host);
        // Unparsable or missing address: never trusted.
        assert_eq!(
            identify(
                &ssh(&format!("publickey ssh-ed25519 {KEY}"), "evil.example"),
                &by_root(None),
                &Sessions,
                &policy(true)
            ),
            None
        );
        assert_eq!(
            identify(
                &ssh(&format!("publickey ssh-ed25519 {KEY}"), ""),
                &by_root(None),
                &Sessions,
                &policy(true)
            ),
            None
        );
    }

    #[test]
    fn ssh_without_a_key_is_trusted_by_address_only_where_policy_allows() {
        assert_eq!(
            identify(
                &ssh("", "192.0.2.7"),
                &by_root(None),
                &Sessions,
                &policy(false)
            ),
            None
        );
        let id = identify(
            &ssh("", "192.0.2.7"),
            &by_root(None),
            &Sessions,
            &policy(true),
        )
        .unwrap();
        assert!(!id.rememberable);
        assert_eq!(
            identify(
                &ssh("", "not-an-ip"),
                &by_root(None),
                &Sessions,
                &policy(true)
            ),
            None
        );
    }

    #[test]
    fn local_services_use_the_callers_login_session_and_tty() {
        let sudo = |tty: &str| LoginContext {
            user: "alice".into(),
            service: "sudo".into(),
            tty: tty.into(),
            ..Default::default()
        };
        let id = identify(
            &sudo("/dev/pts/3"),
            &by_root(Some(4242)),
            &Sessions,
            &policy(false),
        )
        .unwrap();
        assert!(!id.rememberable && id.description.contains("session 7"));
        assert_ne!(
            Some(id),
            identify(
                &sudo("/dev/pts/4"),
                &by_root(Some(4242)),
                &Sessions,
                &policy(false)
            )
        );
        assert_eq!(
            identify(
                &sudo("/dev/pts/3"),
                &by_root(Some(1)),
                &Sessions,
                &policy(false)
            ),
            None
        );
        assert_eq!(
            identify(
                &sudo("/dev/pts/3"),
                &by_root(None),
                &Sessions,
                &policy(false)
            ),
            None
        );
    }

    #[test]
    fn identity_hashes_are_bound_to_the_user() {
        let id = DeviceIdentity {
            key: "k".into(),
            description: String::new(),
            rememberable: true,
        };
        assert_ne!(id.hash_for("alice"), id.hash_for("bob"));
        assert_eq!(id.hash_for("alice").len(), 64);
    }

    fn caller(uid: u32) -> Caller {
        Caller {
            uid,
            pid: Some(4242),
            bus_name: ":1.9".into(),
        }
    }

    /// An sshd-style context for `service` carrying an accepted key.
    fn claim(service: &str) -> LoginContext {
        LoginContext {
            service: service.into(),
            ..ssh(&format!("publickey ssh-ed25519 {KEY}"), "192.0.2.7")
        }
    }

    #[test]
    fn only_root_running_sshd_presents_an_ssh_identity() {
        let root_sshd = identify(&claim("sshd"), &caller(0), &Sessions, &policy(true)).unwrap();
        assert!(root_sshd.rememberable && root_sshd.key.starts_with("ssh-key"));
        assert!(
            identify(&claim("sshd-test"), &caller(0), &Sessions, &policy(true))
                .unwrap()
                .key
                .starts_with("ssh-key")
        );
        // A user's own process claiming to be sshd: its own login session, nothing more.
        let user = identify(&claim("sshd"), &caller(1000), &Sessions, &policy(true)).unwrap();
        assert!(
            !user.rememberable && user.key.starts_with("session 7"),
            "{user:?}"
        );
        // Root's other services are not sshd because SSH_AUTH_INFO_0 is set.
        let login = identify(&claim("login"), &caller(0), &Sessions, &policy(true)).unwrap();
        assert!(login.key.starts_with("session 7"), "{login:?}");
    }
}
