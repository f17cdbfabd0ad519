//! The records the decisions work on, as the engine and the rules see them: no SQL here
//! (the store maps them to its tables), so a rule or a new store needs nothing else.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactorState {
    /// Issued but no code verified yet: logins must verify it, and the first right code
    /// activates it.
    Pending,
    Active,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub name: String,
    pub secret: String,
    pub state: FactorState,
    pub enrolled_at: i64,
    pub last_step: i64,
    pub last_success: i64,
    pub failures: u32,
    pub lock_count: u32,
    pub locked_until: i64,
    /// Changes whenever something that must end an open conversation happens to the
    /// user's factor (a new secret, a lock, a trust revocation); never repeats, also
    /// across a reset and a new enrolment.
    pub generation: i64,
    /// Which [`Factor`](crate::factor::Factor) checks `secret`.
    pub kind: crate::factor::FactorKind,
}

/// What `put_pending` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Issued {
    Stored,
    /// An active factor exists and `replace` was not set.
    ActiveExists,
    /// An administrator's pending secret exists and the caller is not one.
    AdminPending,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// Refused without looking at the code.
    Locked { until: i64 },
    /// This source sent too many wrong codes and must wait: refused without looking at
    /// the code, and not counted on the account.
    Throttled { until: i64 },
    Accepted {
        activated: bool,
        /// The factor's generation the code was checked against (see `UserRecord`).
        generation: i64,
    },
    /// Wrong or replayed code; `locked_until` is set when this failure locked the account.
    Rejected {
        replay: bool,
        failures: u32,
        locked_until: Option<i64>,
    },
}

/// A trusted session window or a remembered device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustRecord {
    /// Hex SHA-256 of a random 128-bit token; the token itself is never stored.
    pub id: String,
    pub user: String,
    pub kind: TrustKind,
    pub identity_hash: String,
    pub description: String,
    pub service: String,
    pub created_at: i64,
    pub last_used: i64,
    /// Valid while now < expires_at.
    pub expires_at: i64,
    /// 0 = no idle limit.
    pub idle_seconds: i64,
    /// Fingerprint of the password hash when the device was remembered.
    pub password_stamp: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrustKind {
    Session,
    Device,
}

impl TrustKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TrustKind::Session => "session",
            TrustKind::Device => "device",
        }
    }

    /// The stored `kind` column (the schemas allow these two only).
    pub fn from_column(column: &str) -> TrustKind {
        if column == "device" {
            TrustKind::Device
        } else {
            TrustKind::Session
        }
    }
}

impl FactorState {
    /// The stored `state` column (the schemas allow 'pending' and 'active' only).
    pub fn from_column(column: &str) -> FactorState {
        if column == "active" {
            FactorState::Active
        } else {
            FactorState::Pending
        }
    }
}

/// The secret a name without a factor is "checked" against: the same work as a real
/// check, so the answer takes as long; its result is never used.
const PHANTOM_SECRET: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

impl UserRecord {
    /// The counting state of a name without a factor, as a record no code can match
    /// (every store keeps these counts apart from the factors).
    pub fn phantom(name: &str, failures: u32, lock_count: u32, locked_until: i64) -> UserRecord {
        UserRecord {
            name: name.to_owned(),
            secret: PHANTOM_SECRET.to_owned(),
            state: FactorState::Active,
            enrolled_at: 0,
            last_step: i64::MAX,
            last_success: 0,
            failures,
            lock_count,
            locked_until,
            generation: 0,
            // Checked like a TOTP factor: the same work, so the answer takes as long.
            kind: crate::factor::FactorKind::Totp,
        }
    }
}

/// An enrolment deferral for a user (`alice`) or a group (`@staff`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deferral {
    pub subject: String,
    pub until: i64,
    pub reason: String,
    pub created_at: i64,
    pub created_by: u32,
}

/// How often one user may be texted a code (`[sms]`): texts cost money and a flood of
/// them is a nuisance, so each user's are paced and counted by the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmsLimits {
    /// The least time, in seconds, between two texts.
    pub min_interval: i64,
    /// Texts in any 900 seconds.
    pub per_15_minutes: u32,
    /// Texts in any 86,400 seconds.
    pub per_day: u32,
}

/// What `take_sms_turn` decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmsTurn {
    /// A text may go now; it is counted already.
    Granted,
    /// None may go for this many seconds (at least 1).
    Wait(i64),
}

impl SmsLimits {
    /// Seconds from `now` until one more text is allowed after those `sent` (newest
    /// first, none later than `now`, none a day old): 0 when one is allowed now. Each
    /// limit, once met, stays met while nothing is sent, so the longest wait is the wait.
    /// A limit of 0 texts allows none: the answer is then its whole window.
    pub fn wait(&self, sent: &[i64], now: i64) -> i64 {
        let interval = sent.first().map_or(0, |last| {
            last.saturating_add(self.min_interval)
                .saturating_sub(now)
                .max(0)
        });
        interval
            .max(full_until(sent, now, self.per_15_minutes, 900))
            .max(full_until(sent, now, self.per_day, 86_400))
    }
}

/// Seconds until fewer than `limit` of `sent` (newest first) lie in the last `window`
/// seconds; a limit of 0 is the whole window.
fn full_until(sent: &[i64], now: i64, limit: u32, window: i64) -> i64 {
    if limit == 0 {
        return window;
    }
    // The limit-th newest leaves the window last of those that fill it.
    match sent.get(limit as usize - 1) {
        Some(t) => t.saturating_add(window).saturating_sub(now).max(0),
        None => 0,
    }
}

/// How often one user may be sent a push (issue 17: push fatigue): counted by the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushLimits {
    /// Pushes in any 600 seconds.
    pub per_10_minutes: u32,
    /// Pushes in any 86,400 seconds.
    pub per_day: u32,
    /// Pushes since the user's last successful login.
    pub since_success: u32,
}

impl PushLimits {
    /// Seconds until one more push is allowed after those `sent` (newest first).
    pub fn wait(&self, sent: &[i64], now: i64) -> i64 {
        full_until(sent, now, self.per_10_minutes, 600).max(full_until(
            sent,
            now,
            self.per_day,
            86_400,
        ))
    }
}

/// What `take_push_turn` decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushTurn {
    /// A push may go now; it is counted already.
    Granted,
    /// None may go for this many seconds (at least 1).
    Wait(i64),
    /// None until the user logs in another way (`since_success` pushes went unanswered).
    UntilSuccess,
    /// Push is suspended for this many seconds (a decline or a wrong number).
    Suspended(i64),
}

/// A user's phone for push approval (push.rs): its serial; until the phone registered,
/// the enrolment credential's hash and expiry; then the phone's key; and twofoldd's
/// signing key for this phone. One per user.
#[derive(Clone, PartialEq, Eq)]
pub struct PushDevice {
    pub serial: String,
    pub user: String,
    /// The phone registered its key (enrolment's second step).
    pub enrolled: bool,
    /// SHA-256 (hex) of the single-use enrolment credential; empty once used.
    pub credential_hash: String,
    /// The credential works while now < this.
    pub credential_expires: i64,
    /// The phone's public key, base64 of its PKCS#1 DER; empty until enrolled.
    pub phone_key: String,
    /// twofoldd's signing key for this phone, base64 of its PKCS#1 DER. Secret.
    pub server_key: String,
    pub created_at: i64,
    /// Pushes are refused while now < this (after a decline or a wrong number).
    pub suspended_until: i64,
}

impl std::fmt::Debug for PushDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushDevice")
            .field("serial", &self.serial)
            .field("user", &self.user)
            .field("enrolled", &self.enrolled)
            .field("credential_expires", &self.credential_expires)
            .field("created_at", &self.created_at)
            .field("suspended_until", &self.suspended_until)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_of_the_waits_is_the_wait() {
        let l = SmsLimits {
            min_interval: 60,
            per_15_minutes: 2,
            per_day: 3,
        };
        assert_eq!(l.wait(&[], 0), 0);
        assert_eq!(l.wait(&[100], 130), 30);
        assert_eq!(l.wait(&[100, 50], 130), 50 + 900 - 130);
        assert_eq!(l.wait(&[2000, 1000, 0], 2100), 86_400 - 2100);
        assert_eq!(l.wait(&[100], 1000), 0);
        // No text at all is allowed by a limit of 0.
        let none = SmsLimits { per_day: 0, ..l };
        assert_eq!(none.wait(&[], 0), 86_400);
    }

    #[test]
    fn pushes_are_counted_in_ten_minutes_and_a_day() {
        let l = PushLimits {
            per_10_minutes: 2,
            per_day: 3,
            since_success: 5,
        };
        assert_eq!(l.wait(&[], 0), 0);
        assert_eq!(l.wait(&[100], 101), 0, "no least interval");
        assert_eq!(l.wait(&[100, 50], 130), 50 + 600 - 130);
        assert_eq!(l.wait(&[2000, 1000, 0], 2100), 86_400 - 2100);
    }

    #[test]
    fn a_push_device_s_debug_output_shows_no_key() {
        let d = PushDevice {
            serial: "TFPU1".into(),
            user: "alice".into(),
            enrolled: true,
            credential_hash: "HASH".into(),
            credential_expires: 0,
            phone_key: "PHONE".into(),
            server_key: "SECRET".into(),
            created_at: 0,
            suspended_until: 0,
        };
        let shown = format!("{d:?}");
        assert!(
            !shown.contains("SECRET") && !shown.contains("HASH"),
            "{shown}"
        );
    }
}
