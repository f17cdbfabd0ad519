//! The lockout and replay rules, as a store applies them, against a simple model: for any
//! sequence of right codes (new steps and replays), wrong codes from a few sources, time
//! moving on, unlocks, resets (a new factor), session windows kept and revoked, the
//! store's answers, counters and trust records are the model's.

use super::Store;
use super::sqlite::SqliteStore;
use crate::factor::FactorKind;
use crate::lockout::{LockoutPolicy, Match};
use crate::model::Attempt;
use proptest::prelude::*;
use std::collections::HashMap;

const POLICY: LockoutPolicy = LockoutPolicy {
    max_failures: 4,
    base_seconds: 60,
    max_seconds: 900,
    source_failures: 2,
    source_base_seconds: 30,
};

#[derive(Debug, Clone)]
enum Op {
    /// A right code of the step `ahead` steps past the last accepted one.
    Right {
        ahead: i64,
        source: u8,
    },
    /// A right code of a step at or below the last accepted one.
    Replay {
        back: i64,
        source: u8,
    },
    Wrong {
        source: u8,
    },
    Wait(i64),
    Unlock,
    /// The administrator's reset (lost phone) and a new enrolment.
    Reset,
    /// A session window kept after a right code (`put_trust_if`, as the engine does).
    KeepWindow,
    Revoke,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (1i64..3, 0u8..3).prop_map(|(ahead, source)| Op::Right { ahead, source }),
        2 => (0i64..3, 0u8..3).prop_map(|(back, source)| Op::Replay { back, source }),
        4 => (0u8..3).prop_map(|source| Op::Wrong { source }),
        2 => (1i64..1200).prop_map(Op::Wait),
        1 => Just(Op::Unlock),
        1 => Just(Op::Reset),
        2 => Just(Op::KeepWindow),
        1 => Just(Op::Revoke),
    ]
}

/// What the rules say, written out plainly.
#[derive(Default)]
struct Model {
    failures: u32,
    lock_count: u32,
    locked_until: i64,
    last_step: i64,
    /// Per source: wrong codes and until when it waits.
    sources: HashMap<u8, (u32, i64)>,
    /// Trust records kept (one device, one service: at most one).
    windows: usize,
}

/// The answer, as far as the model predicts it.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Locked,
    Throttled,
    Accepted,
    Rejected { replay: bool, locked: bool },
}

impl Model {
    fn attempt(&mut self, source: u8, step: Option<i64>, now: i64) -> Outcome {
        if self.locked_until > now {
            return Outcome::Locked;
        }
        let (source_failures, until) = self.sources.get(&source).copied().unwrap_or((0, 0));
        if until > now {
            return Outcome::Throttled;
        }
        if let Some(step) = step
            && step > self.last_step
        {
            self.last_step = step;
            self.failures = 0;
            self.lock_count = 0;
            self.locked_until = 0;
            self.sources.remove(&source);
            return Outcome::Accepted;
        }
        self.failures += 1;
        let locked = self.failures >= POLICY.max_failures;
        if locked {
            let length = (POLICY.base_seconds << self.lock_count.min(20)).min(POLICY.max_seconds);
            self.locked_until = now + length;
            self.lock_count += 1;
            self.failures = 0;
            // A lock ends all trust.
            self.windows = 0;
        } else {
            // A lock that ended is forgotten (0: not locked); its count stays.
            self.locked_until = 0;
        }
        let source_failures = source_failures + 1;
        let wait = if source_failures >= POLICY.source_failures {
            (POLICY.source_base_seconds << (source_failures - POLICY.source_failures).min(20))
                .min(POLICY.max_seconds)
        } else {
            0
        };
        let until = if wait == 0 { 0 } else { now + wait };
        self.sources.insert(source, (source_failures, until));
        Outcome::Rejected {
            replay: step.is_some(),
            locked,
        }
    }
}

fn outcome(a: &Attempt) -> Outcome {
    match a {
        Attempt::Locked { .. } => Outcome::Locked,
        Attempt::Throttled { .. } => Outcome::Throttled,
        Attempt::Accepted { .. } => Outcome::Accepted,
        Attempt::Rejected {
            replay,
            locked_until,
            ..
        } => Outcome::Rejected {
            replay: *replay,
            locked: locked_until.is_some(),
        },
    }
}

/// A session window of alice's one device, made at `now`.
fn window(now: i64) -> crate::model::TrustRecord {
    crate::model::TrustRecord {
        id: "window".into(),
        user: "alice".into(),
        kind: crate::model::TrustKind::Session,
        identity_hash: "device".into(),
        description: "ssh key".into(),
        service: "sshd".into(),
        created_at: now,
        last_used: now,
        expires_at: now + 3600,
        idle_seconds: 0,
        password_stamp: None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn the_store_counts_locks_and_refuses_replays_as_the_model_does(ops in proptest::collection::vec(op(), 1..60)) {
        let mut store = SqliteStore::open_in_memory().unwrap();
        store.put_pending("alice", FactorKind::Totp, "SECRET", 0, false, true, &[]).unwrap();
        let mut model = Model { last_step: -1, ..Model::default() };
        let mut now = 1_800_000_000i64;
        for op in &ops {
            let (source, step) = match op {
                Op::Right { ahead, source } => (*source, Some(model.last_step.max(0) + ahead)),
                Op::Replay { back, source } if model.last_step >= 0 => {
                    (*source, Some(model.last_step - back))
                }
                Op::Replay { source, .. } | Op::Wrong { source } => (*source, None),
                Op::Wait(seconds) => {
                    now += seconds;
                    continue;
                }
                Op::Unlock => {
                    store.unlock("alice").unwrap();
                    model.failures = 0;
                    model.lock_count = 0;
                    model.locked_until = 0;
                    model.sources.clear();
                    continue;
                }
                Op::Reset => {
                    prop_assert!(store.reset("alice", now).unwrap());
                    store.put_pending("alice", FactorKind::Totp, "SECRET", now, false, true, &[]).unwrap();
                    model = Model { last_step: -1, ..Model::default() };
                    prop_assert_eq!(store.trust_of("alice").unwrap().len(), 0, "after a reset");
                    continue;
                }
                Op::KeepWindow => {
                    let generation = store.user("alice").unwrap().unwrap().generation;
                    let kept = store.put_trust_if(&window(now), generation).unwrap();
                    // Not for a locked account.
                    prop_assert_eq!(kept, model.locked_until <= now, "a window kept at {}", now);
                    if kept {
                        model.windows = 1;
                    }
                    prop_assert_eq!(store.trust_of("alice").unwrap().len(), model.windows);
                    continue;
                }
                Op::Revoke => {
                    store.revoke_trust("alice", None).unwrap();
                    model.windows = 0;
                    prop_assert_eq!(store.trust_of("alice").unwrap().len(), 0, "after a revocation");
                    continue;
                }
            };
            let from = format!("192.0.2.{source}");
            let check = move |_: &crate::model::UserRecord| Ok(step.map(Match::Step));
            let got = store.attempt("alice", &from, now, &POLICY, &check).unwrap();
            let expected = model.attempt(source, step, now);
            prop_assert_eq!(outcome(&got), expected, "after {:?} at {}", op, now);
            let r = store.user("alice").unwrap().unwrap();
            prop_assert_eq!(
                (r.failures, r.lock_count, r.locked_until),
                (model.failures, model.lock_count, model.locked_until),
                "counters after {:?}", op
            );
            if model.last_step >= 0 {
                prop_assert_eq!(r.last_step, model.last_step);
            }
            prop_assert_eq!(
                store.trust_of("alice").unwrap().len(),
                model.windows,
                "trust records after {:?}", op
            );
        }
    }
}
