//! Notices to a user about changes to their own factors and trust, beside the audit
//! trail (which is for administrators). The engine says what happened; a [`Notifier`]
//! delivers it, or not: today none is configured ([`NoNotifier`]); e-mail and SMS
//! notifiers are adapters behind this trait. A notice never holds a code or a secret.

use std::sync::Mutex;

/// What changed for the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A new secret was issued (enrolment, or a replacement).
    SecretIssued,
    /// A first right code activated the pending secret.
    FactorActivated,
    /// An administrator removed the factor (lost phone).
    FactorRemoved,
    /// Too many wrong codes locked the account.
    Locked,
    /// An administrator ended a lock.
    Unlocked,
    /// An administrator changed where the user's codes and notices go (told to the old
    /// address and to the new).
    EmailChanged,
    /// An administrator set, changed or removed the number codes are texted to (a new
    /// number is a new authenticator: a SIM swap looks like this).
    PhoneChanged,
    /// Trusted sessions or remembered devices were revoked.
    TrustRevoked,
    /// A login was told to remember its device.
    DeviceRemembered,
    /// A login used one of the recovery codes.
    RecoveryCodeUsed,
    /// An administrator issued new recovery codes (the old ones no longer work).
    RecoveryCodesIssued,
    /// A deferral of the enrolment deadline was set or removed for the user.
    GraceChanged,
    /// An administrator changed the security keys registered for the user.
    SecurityKeysChanged,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub user: String,
    /// The address an administrator set for the user (only users with one are told).
    pub to: String,
    pub change: Change,
    /// Unix time, from the engine's clock.
    pub at: i64,
    pub host: String,
    /// Who or what did it, in words for the user (a service and where the login came
    /// from, or "an administrator"); never a code or a secret.
    pub detail: String,
}

/// Delivers notices. Called on the decision path, so it must not wait for the delivery:
/// an adapter queues the notice and returns, and bounds what it sends per user (a lock
/// can be caused by anyone who knows the name).
pub trait Notifier: Send + Sync {
    fn notify(&self, notice: Notice);

    /// Whether notices go anywhere at all (when not, the engine does not look up the
    /// user's address).
    fn active(&self) -> bool {
        true
    }
}

/// Sends nothing: no channel is configured.
pub struct NoNotifier;

impl Notifier for NoNotifier {
    fn notify(&self, _notice: Notice) {}

    fn active(&self) -> bool {
        false
    }
}

/// Keeps notices in memory, for tests.
#[derive(Default)]
pub struct MemoryNotifier(pub Mutex<Vec<Notice>>);

impl Notifier for MemoryNotifier {
    fn notify(&self, notice: Notice) {
        if let Ok(mut v) = self.0.lock() {
            v.push(notice);
        }
    }
}
