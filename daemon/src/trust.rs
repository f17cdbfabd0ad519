//! Whether a stored session window or remembered device still lets a login pass without
//! a code. Pure: the record, the service's current policy, the clock, and the user's
//! password fingerprint now.

use crate::identity::{DeviceIdentity, hex};
use crate::model::{TrustKind, TrustRecord};
use crate::random::Random;
use sha2::{Digest, Sha256};
use twofold_config::ServicePolicy;
use twofold_protocol::LoginContext;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judgement {
    Valid,
    Lapsed,
    /// A window or remembered device whose user changed password since: revoke it.
    PasswordChanged,
}

/// Valid while now is before every limit: the record's own expiry, the checking service's
/// current window (so tightening the policy takes effect at once) and the idle limit; and
/// while the password is the one it was recorded with. A record made or used later than
/// now means the clock went back: it has lapsed, or every limit would stretch by the jump.
pub fn judge(
    r: &TrustRecord,
    policy: &ServicePolicy,
    now: i64,
    password_stamp: Option<&str>,
) -> Judgement {
    if r.created_at > now || r.last_used > now {
        return Judgement::Lapsed;
    }
    let within = |limit: i64| now < limit;
    let then = r.password_stamp.as_deref();
    let valid = match r.kind {
        TrustKind::Session => {
            let idle = match (r.idle_seconds, policy.idle_seconds) {
                (0, p) => p,
                (s, 0) => s,
                (s, p) => s.min(p),
            };
            let open = policy.session_seconds > 0
                && within(r.expires_at)
                && within(r.created_at + policy.session_seconds)
                && (idle == 0 || within(r.last_used + idle));
            // A window lasts hours, so one is still kept where no fingerprint can be
            // taken at all (a daemon without the shadow file); but a fingerprint that
            // differs, has gone, or has appeared since ends it.
            let unchanged = match (then, password_stamp) {
                (Some(then), Some(now)) => then == now,
                (None, None) => true,
                _ => false,
            };
            if open && !unchanged {
                return Judgement::PasswordChanged;
            }
            open
        }
        TrustKind::Device => {
            // No fingerprint on either side means a password change could not be seen:
            // treated as changed, never as "both unknown, so equal".
            let unchanged = matches!(
                (then, password_stamp),
                (Some(then), Some(now)) if then == now
            );
            if policy.remember_device && within(r.expires_at) && !unchanged {
                return Judgement::PasswordChanged;
            }
            policy.remember_device
                && within(r.expires_at)
                && within(r.created_at + policy.remember_seconds)
        }
    };
    if valid {
        Judgement::Valid
    } else {
        Judgement::Lapsed
    }
}

/// A new record for `identity`, its id the hash of 128 fresh random bits.
pub fn new_record(
    random: &dyn Random,
    kind: TrustKind,
    login: &LoginContext,
    identity: &DeviceIdentity,
    policy: &ServicePolicy,
    now: i64,
    password_stamp: Option<String>,
) -> Result<TrustRecord, String> {
    let mut token = [0u8; 16];
    random.fill(&mut token)?;
    let (lifetime, idle) = match kind {
        TrustKind::Session => (policy.session_seconds, policy.idle_seconds),
        TrustKind::Device => (policy.remember_seconds, 0),
    };
    Ok(TrustRecord {
        id: hex(&Sha256::digest(token)),
        user: login.user.clone(),
        kind,
        identity_hash: identity.hash_for(&login.user),
        description: identity.description.clone(),
        service: login.service.clone(),
        created_at: now,
        last_used: now,
        expires_at: now + lifetime,
        idle_seconds: idle,
        password_stamp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: ServicePolicy = ServicePolicy {
        session_seconds: 12 * 3600,
        idle_seconds: 1800,
        remember_device: true,
        remember_seconds: 90 * 86400,
        trust_address: false,
        accept_security_keys: false,
        ssh: false,
    };

    fn record(kind: TrustKind) -> TrustRecord {
        let identity = DeviceIdentity {
            key: "k".into(),
            description: "d".into(),
            rememberable: true,
        };
        new_record(
            &crate::random::OsRandom,
            kind,
            &LoginContext {
                user: "alice".into(),
                service: "sshd".into(),
                ..Default::default()
            },
            &identity,
            &POLICY,
            1000,
            Some("stamp".into()),
        )
        .unwrap()
    }

    #[test]
    fn a_record_made_or_used_after_now_has_lapsed_as_the_clock_went_back() {
        for kind in [TrustKind::Session, TrustKind::Device] {
            let mut r = record(kind);
            assert_eq!(judge(&r, &POLICY, 1000, Some("stamp")), Judgement::Valid);
            assert_eq!(judge(&r, &POLICY, 999, Some("stamp")), Judgement::Lapsed);
            r.last_used = 5000;
            assert_eq!(judge(&r, &POLICY, 4999, Some("stamp")), Judgement::Lapsed);
            assert_eq!(judge(&r, &POLICY, 5000, Some("stamp")), Judgement::Valid);
        }
    }

    #[test]
    fn a_session_window_ends_at_its_instant_and_after_idling() {
        let mut r = record(TrustKind::Session);
        r.password_stamp = None;
        r.last_used = 1000 + 12 * 3600 - 10;
        assert_eq!(
            judge(&r, &POLICY, 1000 + 12 * 3600 - 1, None),
            Judgement::Valid
        );
        assert_eq!(
            judge(&r, &POLICY, 1000 + 12 * 3600, None),
            Judgement::Lapsed
        );
        r.last_used = 1000;
        assert_eq!(judge(&r, &POLICY, 1000 + 1799, None), Judgement::Valid);
        assert_eq!(judge(&r, &POLICY, 1000 + 1800, None), Judgement::Lapsed);
    }

    #[test]
    fn a_session_window_ends_when_the_password_changes_or_its_fingerprint_goes() {
        // Issue 15 item 5c (checklist 11).
        let r = record(TrustKind::Session);
        assert_eq!(r.password_stamp.as_deref(), Some("stamp"));
        use Judgement::*;
        // (fingerprint recorded, fingerprint now, judgement). A window opened without one
        // (no readable shadow) still serves while there is none; once there is one,
        // nobody can tell what happened in between.
        let cases = [
            (Some("stamp"), Some("stamp"), Valid),
            (Some("stamp"), Some("other"), PasswordChanged),
            (Some("stamp"), None, PasswordChanged),
            (None, None, Valid),
            (None, Some("stamp"), PasswordChanged),
        ];
        for (then, now, expected) in cases {
            let r = TrustRecord {
                password_stamp: then.map(String::from),
                ..r.clone()
            };
            assert_eq!(judge(&r, &POLICY, 2000, now), expected, "{then:?} {now:?}");
        }
        // A window that has lapsed anyway is just lapsed.
        assert_eq!(judge(&r, &POLICY, 1000 + 12 * 3600, Some("other")), Lapsed);
    }

    #[test]
    fn a_tighter_policy_applies_to_existing_windows_at_once() {
        let r = record(TrustKind::Session);
        let short = ServicePolicy {
            session_seconds: 600,
            ..POLICY
        };
        assert_eq!(
            judge(&r, &short, 1000 + 599, Some("stamp")),
            Judgement::Valid
        );
        assert_eq!(
            judge(&r, &short, 1000 + 600, Some("stamp")),
            Judgement::Lapsed
        );
        let off = ServicePolicy {
            session_seconds: 0,
            ..POLICY
        };
        assert_eq!(judge(&r, &off, 1001, Some("stamp")), Judgement::Lapsed);
    }

    #[test]
    fn a_remembered_device_lasts_its_days_unless_the_password_changes() {
        let r = record(TrustKind::Device);
        let end = 1000 + 90 * 86400;
        assert_eq!(judge(&r, &POLICY, end - 1, Some("stamp")), Judgement::Valid);
        assert_eq!(judge(&r, &POLICY, end, Some("stamp")), Judgement::Lapsed);
        assert_eq!(
            judge(&r, &POLICY, 2000, Some("other")),
            Judgement::PasswordChanged
        );
        assert_eq!(judge(&r, &POLICY, 2000, None), Judgement::PasswordChanged);
        let unstamped = TrustRecord {
            password_stamp: None,
            ..r.clone()
        };
        assert_eq!(
            judge(&unstamped, &POLICY, 2000, None),
            Judgement::PasswordChanged
        );
        let no_remember = ServicePolicy {
            remember_device: false,
            ..POLICY
        };
        assert_eq!(
            judge(&r, &no_remember, 2000, Some("stamp")),
            Judgement::Lapsed
        );
    }

    #[test]
    fn record_ids_are_fresh_hashes() {
        let (a, b) = (record(TrustKind::Device), record(TrustKind::Device));
        assert_ne!(a.id, b.id);
        assert_eq!(a.id.len(), 64);
    }
}

/// For any record, policy and time: a valid record is within every one of its limits, so
/// no window or remembered device outlives its hours, its idle limit or its own expiry
/// by even one second, and none is valid before it was made or last used.
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    fn policy() -> impl Strategy<Value = ServicePolicy> {
        (0i64..50_000, 0i64..5_000, any::<bool>(), 1i64..100_000).prop_map(
            |(session_seconds, idle_seconds, remember_device, remember_seconds)| ServicePolicy {
                session_seconds,
                idle_seconds,
                remember_device,
                remember_seconds,
                trust_address: false,
                accept_security_keys: false,
                ssh: true,
            },
        )
    }

    fn record() -> impl Strategy<Value = TrustRecord> {
        (
            prop_oneof![Just(TrustKind::Session), Just(TrustKind::Device)],
            0i64..100_000,
            0i64..50_000,
            0i64..200_000,
            0i64..5_000,
        )
            .prop_map(
                |(kind, created_at, used_after, lasts, idle_seconds)| TrustRecord {
                    id: "id".into(),
                    user: "alice".into(),
                    kind,
                    identity_hash: "h".into(),
                    description: "d".into(),
                    service: "sshd".into(),
                    created_at,
                    last_used: created_at + used_after,
                    expires_at: created_at + lasts,
                    idle_seconds,
                    password_stamp: Some("stamp".into()),
                },
            )
    }

    /// A time at or next to one of a record's limits (where an off-by-one would show),
    /// or anywhere.
    #[derive(Debug, Clone)]
    enum Instant {
        Near(u8, i64),
        Anywhere(i64),
    }

    impl Instant {
        fn of(&self, r: &TrustRecord, p: &ServicePolicy) -> i64 {
            match *self {
                Instant::Near(limit, offset) => {
                    let limits = [
                        r.created_at,
                        r.last_used,
                        r.expires_at,
                        r.created_at + p.session_seconds,
                        r.last_used + r.idle_seconds,
                        r.last_used + p.idle_seconds,
                        r.created_at + p.remember_seconds,
                    ];
                    limits[usize::from(limit) % limits.len()] + offset
                }
                Instant::Anywhere(t) => t,
            }
        }
    }

    fn instant() -> impl Strategy<Value = Instant> {
        prop_oneof![
            3 => (any::<u8>(), -2i64..=2).prop_map(|(l, o)| Instant::Near(l, o)),
            1 => (0i64..400_000).prop_map(Instant::Anywhere),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn a_valid_record_is_within_every_limit(r in record(), p in policy(), at in instant()) {
            let now = at.of(&r, &p);
            if judge(&r, &p, now, Some("stamp")) != Judgement::Valid {
                return Ok(());
            }
            prop_assert!(r.created_at <= now && r.last_used <= now);
            prop_assert!(now < r.expires_at);
            match r.kind {
                TrustKind::Session => {
                    prop_assert!(now < r.created_at + p.session_seconds);
                    for idle in [r.idle_seconds, p.idle_seconds] {
                        prop_assert!(idle == 0 || now < r.last_used + idle);
                    }
                }
                TrustKind::Device => {
                    prop_assert!(p.remember_device && now < r.created_at + p.remember_seconds);
                }
            }
            // Another password, or none where there was one: never valid.
            prop_assert_ne!(judge(&r, &p, now, Some("other")), Judgement::Valid);
            prop_assert_ne!(judge(&r, &p, now, None), Judgement::Valid);
        }

        #[test]
        fn once_lapsed_by_time_a_record_unused_since_stays_lapsed(r in record(), p in policy(), at in instant(), later in 1i64..400_000) {
            let now = at.of(&r, &p);
            // Lapsed at `now` though made and used before it: no later time revives it.
            if r.last_used <= now && judge(&r, &p, now, Some("stamp")) == Judgement::Lapsed {
                prop_assert_eq!(judge(&r, &p, now + later, Some("stamp")), Judgement::Lapsed);
            }
        }
    }
}
