//! Who may do what. The caller's uid comes from the bus daemon
//! (GetConnectionCredentials), never from the message: uid 0 may act on anyone, a user
//! only on their own account, and admin methods need uid 0 or the admin group.

use nix::unistd::{Group, Uid, User};

/// The process on the other end of a method call, as the bus daemon reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub uid: u32,
    pub pid: Option<u32>,
    /// The caller's unique bus name (":1.42"); conversations are bound to it.
    pub bus_name: String,
}

/// An account as NSS knows it: its uid and the name NSS gives that uid. Everything the
/// daemon keeps about a user is keyed on this name, so every spelling PAM may pass
/// (`ALICE` under case-insensitive NSS, `alice@domain`, `toor` for uid 0) is one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub uid: u32,
    pub name: String,
}

/// NSS could not answer (an LDAP or SSSD outage): never read as "no such user".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("user database lookup failed: {0}")]
pub struct LookupError(pub String);

/// Account lookups, injected so tests need no real users.
pub trait UserDb: Send + Sync {
    /// The account `name` denotes, under its canonical name; None if NSS knows no such
    /// name.
    fn account(&self, name: &str) -> Result<Option<Account>, LookupError>;
    fn uid_of(&self, name: &str) -> Option<u32> {
        self.account(name).ok().flatten().map(|a| a.uid)
    }
    fn in_group(&self, uid: u32, group: &str) -> bool;
    /// Names of every group `user` belongs to (primary and supplementary). An error is
    /// an error, never an empty list: scope must not be decided on a failed lookup.
    fn groups_of(&self, user: &str) -> Result<Vec<String>, LookupError>;
    fn group_exists(&self, group: &str) -> bool;
    /// A fingerprint of the user's password hash (shadow), to notice a password change;
    /// None when there is no shadow entry.
    fn password_stamp(&self, user: &str) -> Option<String>;
}

/// The system's passwd and group databases (NSS).
pub struct SystemUsers {
    /// Why shadow entries cannot be trusted for password fingerprints, if so.
    shadow_problem: Option<String>,
}

impl UserDb for SystemUsers {
    fn account(&self, name: &str) -> Result<Option<Account>, LookupError> {
        let failed = |e: nix::Error| LookupError(e.desc().to_string());
        let Some(user) = User::from_name(name).map_err(failed)? else {
            return Ok(None);
        };
        // getpwuid gives the first entry of the uid: `root`, not `toor`.
        let canonical = User::from_uid(user.uid).map_err(failed)?;
        Ok(Some(Account {
            uid: user.uid.as_raw(),
            name: canonical.map_or(user.name, |c| c.name),
        }))
    }

    fn in_group(&self, uid: u32, group: &str) -> bool {
        let Some(user) = User::from_uid(Uid::from_raw(uid)).ok().flatten() else {
            return false;
        };
        let Some(group) = Group::from_name(group).ok().flatten() else {
            return false;
        };
        user.gid == group.gid || group.mem.iter().any(|m| m == &user.name)
    }

    fn groups_of(&self, user: &str) -> Result<Vec<String>, LookupError> {
        let failed = |e: nix::Error| LookupError(e.desc().to_string());
        let u = User::from_name(user)
            .map_err(failed)?
            .ok_or_else(|| LookupError(format!("no passwd entry for {user:?}")))?;
        let name = std::ffi::CString::new(user)
            .map_err(|_| LookupError("a user name with a NUL byte".into()))?;
        let mut names = Vec::new();
        for gid in nix::unistd::getgrouplist(&name, u.gid).map_err(failed)? {
            // A gid without a group entry has no name a rule could list.
            if let Some(g) = Group::from_gid(gid).map_err(failed)? {
                names.push(g.name);
            }
        }
        Ok(names)
    }

    fn group_exists(&self, group: &str) -> bool {
        Group::from_name(group).ok().flatten().is_some()
    }

    fn password_stamp(&self, user: &str) -> Option<String> {
        if self.shadow_problem.is_some() {
            return None;
        }
        shadow_hash(user).map(|hash| {
            use sha2::Digest;
            crate::identity::hex(&sha2::Sha256::digest(hash.as_bytes()))
        })
    }
}

impl SystemUsers {
    /// Checks once whether the local shadow file is readable. When it is not (mode 0000
    /// as on Fedora, a unit without the capability), NSS may still answer from elsewhere:
    /// nss-systemd makes up `root:!*` — a fingerprint that never changes — so no
    /// fingerprint is taken at all.
    pub fn new() -> SystemUsers {
        let shadow_problem = match std::fs::File::open("/etc/shadow") {
            Ok(_) => None,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => Some(format!(
                "cannot read /etc/shadow ({e}): without a password fingerprint a password \
                 change could not end a remembered device, so \"remember this device\" is \
                 not offered"
            )),
        };
        SystemUsers { shadow_problem }
    }

    /// Said once at start-up.
    pub fn shadow_problem(&self) -> Option<&str> {
        self.shadow_problem.as_deref()
    }
}

impl Default for SystemUsers {
    fn default() -> Self {
        SystemUsers::new()
    }
}

/// The crypt(3) hash from the shadow database (getspnam_r); needs root.
fn shadow_hash(user: &str) -> Option<String> {
    use nix::libc;
    let name = std::ffi::CString::new(user).ok()?;
    let mut entry: libc::spwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut result: *mut libc::spwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; getspnam_r writes only into entry and
    // buf (whose length we pass) and sets result to &entry or NULL.
    let rc = unsafe {
        libc::getspnam_r(
            name.as_ptr(),
            &mut entry,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() || entry.sp_pwdp.is_null() {
        return None;
    }
    // SAFETY: sp_pwdp points into buf, NUL-terminated by getspnam_r.
    Some(
        unsafe { std::ffi::CStr::from_ptr(entry.sp_pwdp) }
            .to_string_lossy()
            .into_owned(),
    )
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Denied(pub String);

pub struct Policy<'a> {
    pub users: &'a dyn UserDb,
    pub admin_group: Option<&'a str>,
}

impl Policy<'_> {
    pub fn is_admin(&self, caller: &Caller) -> bool {
        caller.uid == 0
            || self
                .admin_group
                .is_some_and(|g| self.users.in_group(caller.uid, g))
    }

    /// Root (or an admin) may act on any user; anyone else only on their own account.
    pub fn may_act_for(&self, caller: &Caller, user: &str) -> Result<(), Denied> {
        if caller.uid == 0 || self.users.uid_of(user) == Some(caller.uid) {
            Ok(())
        } else {
            Err(Denied(format!(
                "uid {} may not act for another user",
                caller.uid
            )))
        }
    }

    pub fn require_admin(&self, caller: &Caller) -> Result<(), Denied> {
        if self.is_admin(caller) {
            Ok(())
        } else {
            Err(Denied(format!(
                "uid {} is not a twofold administrator",
                caller.uid
            )))
        }
    }

    /// Admins, and the user themself.
    pub fn require_admin_or_self(&self, caller: &Caller, user: &str) -> Result<(), Denied> {
        if self.is_admin(caller) || self.users.uid_of(user) == Some(caller.uid) {
            Ok(())
        } else {
            Err(Denied(format!(
                "uid {} may not manage another user",
                caller.uid
            )))
        }
    }
}

/// A user name as PAM or a client may send it: 1-256 bytes, printable, no '/' or ':'.
pub fn valid_user_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 256
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| !c.is_control() && !c.is_whitespace() && c != '/' && c != ':')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    pub struct FakeUsers {
        pub uids: HashMap<String, u32>,
        pub admins: Vec<u32>,
    }

    impl UserDb for FakeUsers {
        fn account(&self, name: &str) -> Result<Option<Account>, LookupError> {
            Ok(self.uids.get(name).map(|&uid| Account {
                uid,
                name: name.into(),
            }))
        }
        fn in_group(&self, uid: u32, group: &str) -> bool {
            group == "twofold-admin" && self.admins.contains(&uid)
        }
        fn groups_of(&self, _: &str) -> Result<Vec<String>, LookupError> {
            Ok(Vec::new())
        }
        fn group_exists(&self, _: &str) -> bool {
            false
        }
        fn password_stamp(&self, _: &str) -> Option<String> {
            None
        }
    }

    fn caller(uid: u32) -> Caller {
        Caller {
            uid,
            pid: None,
            bus_name: ":1.1".into(),
        }
    }

    #[test]
    fn root_any_user_self_only_admin_group() {
        let users = FakeUsers {
            uids: [("alice".into(), 1000), ("bob".into(), 1001)].into(),
            admins: vec![1001],
        };
        let p = Policy {
            users: &users,
            admin_group: Some("twofold-admin"),
        };
        assert!(p.may_act_for(&caller(0), "alice").is_ok());
        assert!(p.may_act_for(&caller(1000), "alice").is_ok());
        assert!(p.may_act_for(&caller(1000), "bob").is_err());
        assert!(p.may_act_for(&caller(1000), "nobody-here").is_err());
        assert!(p.require_admin(&caller(1000)).is_err());
        assert!(p.require_admin(&caller(1001)).is_ok());
        assert!(p.require_admin_or_self(&caller(1000), "alice").is_ok());
        assert!(p.require_admin_or_self(&caller(1000), "bob").is_err());
        let no_group = Policy {
            users: &users,
            admin_group: None,
        };
        assert!(no_group.require_admin(&caller(1001)).is_err());
    }

    #[test]
    fn user_names_are_validated() {
        assert!(valid_user_name("alice"));
        assert!(valid_user_name("first.last@example.org"));
        for bad in ["", "-rf", "a b", "a/b", "a:b", "a\nb", &"x".repeat(257)] {
            assert!(!valid_user_name(bad), "{bad:?}");
        }
    }
}
