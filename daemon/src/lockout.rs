//! The lockout rules, pure: from an account's counters, a source's backoff, the step a
//! code matched (if any) and `now`, what the attempt comes to and what must be saved.
//! No SQL and no clock here: a store loads, asks these rules, and saves in one
//! transaction, so every store applies the same rules.
//!
//! The rules: while locked, or while the source must wait, no code is looked at; a code
//! passes once per step and never for a step at or below the last accepted one (replay,
//! also after the clock went back); a wrong or replayed code counts on the account
//! (locking it at `max_failures`, for base * 2^n, at most max) and on its source (which
//! waits base * 2^k after `source_failures`); a pass clears both; a lock ends all trust and
//! every open conversation; so does a new secret, which never ends a lock.

use crate::model::{Attempt, FactorState};

/// What a right answer matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// A time step of the stored factor: passes once, and never at or below the last one.
    Step(i64),
    /// A single-use code the daemon handed out (e-mailed, recovery): it cannot be
    /// replayed because it is gone once used, and it neither activates a pending factor
    /// nor moves the factor's last step.
    Once,
    /// The recovery code of this name: single use like [`Match::Once`]; the store passes
    /// it on only while the code is still there, and removes it with the pass.
    Recovery(String),
}

/// How failures turn into waits for one source and into locks of the account.
#[derive(Debug, Clone, Copy)]
pub struct LockoutPolicy {
    pub max_failures: u32,
    pub base_seconds: i64,
    pub max_seconds: i64,
    /// Wrong codes from one source before it must wait.
    pub source_failures: u32,
    pub source_base_seconds: i64,
}

impl LockoutPolicy {
    /// The n-th lock (0-based) lasts base * 2^n, at most max.
    fn lock_length(&self, lock_count: u32) -> i64 {
        doubled(self.base_seconds, lock_count, self.max_seconds)
    }

    /// After its n-th wrong code a source waits 0 below the limit, then base * 2^k.
    fn source_wait(&self, failures: u32) -> i64 {
        match failures.checked_sub(self.source_failures) {
            Some(k) => doubled(self.source_base_seconds, k, self.max_seconds),
            None => 0,
        }
    }
}

fn doubled(base: i64, times: u32, max: i64) -> i64 {
    base.saturating_mul(1i64 << times.min(20)).min(max)
}

/// An account's failure state: a factor's, or that of a name with no factor (a phantom,
/// counted alike so that the lockout does not tell who is enrolled).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub failures: u32,
    pub lock_count: u32,
    /// Locked while now < locked_until; 0 = not locked.
    pub locked_until: i64,
}

/// One source's wrong codes against one account, and until when it must wait.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backoff {
    pub failures: u32,
    pub until: i64,
}

/// The account being tried, as the rules need it.
#[derive(Debug, Clone, Copy)]
pub struct Account {
    pub counters: Counters,
    /// The last accepted step; a phantom's never accepts.
    pub last_step: i64,
    pub state: FactorState,
    pub generation: i64,
    /// A name with no factor: no code ever passes for it.
    pub phantom: bool,
}

impl Account {
    /// `record` as the rules see it; `phantom` for a name with no factor.
    pub fn of(record: &crate::model::UserRecord, phantom: bool) -> Account {
        Account {
            counters: Counters {
                failures: record.failures,
                lock_count: record.lock_count,
                locked_until: record.locked_until,
            },
            last_step: record.last_step,
            state: record.state,
            generation: record.generation,
            phantom,
        }
    }
}

/// Whether the code is to be looked at at all: `Some` refuses without looking.
pub fn refused_before_checking(account: &Account, backoff: &Backoff, now: i64) -> Option<Attempt> {
    if account.counters.locked_until > now {
        return Some(Attempt::Locked {
            until: account.counters.locked_until,
        });
    }
    if backoff.until > now {
        return Some(Attempt::Throttled {
            until: backoff.until,
        });
    }
    None
}

/// What an attempt comes to, and what to save.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub attempt: Attempt,
    /// The account's counters from now on.
    pub counters: Counters,
    /// On a pass: the step to record as the last accepted one (`None`: keep it), and
    /// whether the pass activates a pending factor.
    pub accepted: Option<Pass>,
    /// The source's backoff from now on; `None` forgets it (a pass).
    pub backoff: Option<Backoff>,
    /// End every trust record and open conversation of the user (the attempt locked it).
    pub ends_trust: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    pub step: Option<i64>,
    pub activate: bool,
}

/// Decides an attempt that [`refused_before_checking`] let through, given what the code
/// matches (`None`: nothing).
pub fn decide(
    account: &Account,
    backoff: &Backoff,
    matched: Option<Match>,
    policy: &LockoutPolicy,
    now: i64,
) -> Decision {
    let matched = matched.filter(|_| !account.phantom);
    let pass = match &matched {
        Some(Match::Step(step)) if *step > account.last_step => Some(Pass {
            step: Some(*step),
            activate: account.state == FactorState::Pending,
        }),
        Some(Match::Once | Match::Recovery(_)) => Some(Pass {
            step: None,
            activate: false,
        }),
        _ => None,
    };
    match pass {
        Some(pass) => Decision {
            attempt: Attempt::Accepted {
                activated: pass.activate,
                generation: account.generation,
            },
            counters: Counters::default(),
            accepted: Some(pass),
            backoff: None,
            ends_trust: false,
        },
        None => {
            let c = account.counters;
            let failures = c.failures + 1;
            let (counters, locked_until) = if failures >= policy.max_failures {
                let until = now + policy.lock_length(c.lock_count);
                (
                    Counters {
                        failures: 0,
                        lock_count: c.lock_count + 1,
                        locked_until: until,
                    },
                    Some(until),
                )
            } else {
                (
                    Counters {
                        failures,
                        lock_count: c.lock_count,
                        locked_until: 0,
                    },
                    None,
                )
            };
            let source_failures = backoff.failures + 1;
            let until = match policy.source_wait(source_failures) {
                0 => 0,
                wait => now + wait,
            };
            Decision {
                attempt: Attempt::Rejected {
                    replay: matched.is_some(),
                    failures,
                    locked_until,
                },
                counters,
                accepted: None,
                backoff: Some(Backoff {
                    failures: source_failures,
                    until,
                }),
                ends_trust: locked_until.is_some(),
            }
        }
    }
}

/// Whether a new pending secret may be stored over what the user has (`existing`: the
/// state of their factor, and whether an administrator issued it). Storing one keeps the
/// counters (issuing a secret is no way out of a lockout: `unlock` is) and ends all trust
/// and every open conversation.
pub fn may_issue(
    existing: Option<(FactorState, bool)>,
    replace: bool,
    by_admin: bool,
) -> Result<(), crate::model::Issued> {
    use crate::model::Issued;
    match existing {
        Some((FactorState::Active, _)) if !replace => Err(Issued::ActiveExists),
        Some((FactorState::Pending, true)) if !by_admin => Err(Issued::AdminPending),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Issued;

    const POLICY: LockoutPolicy = LockoutPolicy {
        max_failures: 3,
        base_seconds: 60,
        max_seconds: 3600,
        source_failures: 2,
        source_base_seconds: 10,
    };
    const NOW: i64 = 1_000_000;

    fn account(failures: u32, lock_count: u32) -> Account {
        Account {
            counters: Counters {
                failures,
                lock_count,
                locked_until: 0,
            },
            last_step: 100,
            state: FactorState::Active,
            generation: 7,
            phantom: false,
        }
    }

    #[test]
    fn a_lock_or_a_waiting_source_refuses_before_the_code_is_looked_at() {
        let mut a = account(0, 0);
        a.counters.locked_until = NOW + 1;
        assert_eq!(
            refused_before_checking(&a, &Backoff::default(), NOW),
            Some(Attempt::Locked { until: NOW + 1 })
        );
        a.counters.locked_until = NOW; // ends at NOW: no longer locked
        assert_eq!(refused_before_checking(&a, &Backoff::default(), NOW), None);
        let waiting = Backoff {
            failures: 5,
            until: NOW + 9,
        };
        assert_eq!(
            refused_before_checking(&a, &waiting, NOW),
            Some(Attempt::Throttled { until: NOW + 9 })
        );
    }

    #[test]
    fn a_new_step_passes_and_clears_everything() {
        let mut a = account(2, 1);
        a.state = FactorState::Pending;
        let d = decide(
            &a,
            &Backoff {
                failures: 1,
                until: 0,
            },
            Some(Match::Step(101)),
            &POLICY,
            NOW,
        );
        assert_eq!(
            d.attempt,
            Attempt::Accepted {
                activated: true,
                generation: 7
            }
        );
        assert_eq!(d.counters, Counters::default());
        assert_eq!(
            (d.accepted, d.backoff, d.ends_trust),
            (
                Some(Pass {
                    step: Some(101),
                    activate: true
                }),
                None,
                false
            )
        );
    }

    #[test]
    fn the_last_step_or_an_older_one_is_a_replay_and_counts() {
        for step in [100, 99, 0] {
            let d = decide(
                &account(0, 0),
                &Backoff::default(),
                Some(Match::Step(step)),
                &POLICY,
                NOW,
            );
            assert_eq!(
                d.attempt,
                Attempt::Rejected {
                    replay: true,
                    failures: 1,
                    locked_until: None
                }
            );
            assert_eq!(d.counters.failures, 1);
            assert_eq!(d.accepted, None);
        }
    }

    #[test]
    fn the_limit_locks_for_doubling_lengths_and_a_lock_ends_trust() {
        let d = decide(&account(2, 0), &Backoff::default(), None, &POLICY, NOW);
        assert_eq!(
            d.attempt,
            Attempt::Rejected {
                replay: false,
                failures: 3,
                locked_until: Some(NOW + 60)
            }
        );
        assert_eq!(
            d.counters,
            Counters {
                failures: 0,
                lock_count: 1,
                locked_until: NOW + 60
            }
        );
        assert!(d.ends_trust);
        let lengths: Vec<i64> = (0..10)
            .map(|n| decide(&account(2, n), &Backoff::default(), None, &POLICY, NOW))
            .map(|d| d.counters.locked_until - NOW)
            .collect();
        assert_eq!(
            lengths,
            [60, 120, 240, 480, 960, 1920, 3600, 3600, 3600, 3600]
        );
        // Below the limit: counted, nothing ends.
        let d = decide(&account(1, 4), &Backoff::default(), None, &POLICY, NOW);
        assert_eq!(d.counters.failures, 2);
        assert!(!d.ends_trust);
    }

    #[test]
    fn a_source_waits_only_past_its_own_limit_and_doubles() {
        let waits: Vec<i64> = (0..5)
            .map(|f| Backoff {
                failures: f,
                until: 0,
            })
            .map(|b| decide(&account(0, 0), &b, None, &POLICY, NOW))
            .map(|d| {
                d.backoff
                    .map_or(-1, |b| if b.until == 0 { 0 } else { b.until - NOW })
            })
            .collect();
        assert_eq!(waits, [0, 10, 20, 40, 80]);
    }

    #[test]
    fn no_code_ever_passes_for_a_phantom_and_it_locks_alike() {
        let mut a = account(2, 0);
        a.phantom = true;
        a.last_step = i64::MIN;
        for matched in [Match::Step(200), Match::Once] {
            let d = decide(&a, &Backoff::default(), Some(matched), &POLICY, NOW);
            assert_eq!(
                d.attempt,
                Attempt::Rejected {
                    replay: false,
                    failures: 3,
                    locked_until: Some(NOW + 60)
                }
            );
        }
        let d = decide(&a, &Backoff::default(), None, &POLICY, NOW);
        assert_eq!(
            d.attempt,
            Attempt::Rejected {
                replay: false,
                failures: 3,
                locked_until: Some(NOW + 60)
            }
        );
    }

    #[test]
    fn a_single_use_code_passes_without_activating_or_moving_the_step() {
        let mut a = account(2, 1);
        a.state = FactorState::Pending;
        let d = decide(&a, &Backoff::default(), Some(Match::Once), &POLICY, NOW);
        assert_eq!(
            d.attempt,
            Attempt::Accepted {
                activated: false,
                generation: 7
            }
        );
        assert_eq!(d.counters, Counters::default());
        assert_eq!(
            d.accepted,
            Some(Pass {
                step: None,
                activate: false
            })
        );
    }

    #[test]
    fn a_secret_replaces_an_active_one_only_when_asked_and_an_admins_only_by_an_admin() {
        use FactorState::{Active, Pending};
        assert_eq!(may_issue(None, false, false), Ok(()));
        assert_eq!(
            may_issue(Some((Active, false)), false, true),
            Err(Issued::ActiveExists)
        );
        assert_eq!(may_issue(Some((Active, false)), true, false), Ok(()));
        assert_eq!(
            may_issue(Some((Pending, true)), false, false),
            Err(Issued::AdminPending)
        );
        assert_eq!(may_issue(Some((Pending, true)), false, true), Ok(()));
        assert_eq!(may_issue(Some((Pending, false)), false, false), Ok(()));
    }
}
