//! A bound on refusal records per caller: a local user who makes refused calls in a loop
//! would otherwise write records as fast as the daemon answers (62,624 in 20 s from four
//! processes), pushing real records out of journald's rate limit. Beyond
//! [`REFUSALS_PER_WINDOW`] refusals of one non-root uid in a window, records are counted
//! instead of written, and one summary record says how many were left out.

use crate::audit::{AuditEvent, AuditSink};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Refusal records written per caller uid and window.
pub const REFUSALS_PER_WINDOW: u32 = 20;
pub const WINDOW: Duration = Duration::from_secs(60);
/// Callers tracked at once; beyond it the table starts over (it then writes more, never
/// fewer, records than the bound).
const MAX_TRACKED: usize = 4096;

struct Count {
    since: Instant,
    written: u32,
    suppressed: u64,
}

pub struct ThrottledAudit<S> {
    inner: S,
    now: fn() -> Instant,
    counts: Mutex<HashMap<u32, Count>>,
}

impl<S: AuditSink> ThrottledAudit<S> {
    pub fn new(inner: S) -> ThrottledAudit<S> {
        ThrottledAudit::with_clock(inner, crate::clock::monotonic)
    }

    fn with_clock(inner: S, now: fn() -> Instant) -> ThrottledAudit<S> {
        ThrottledAudit {
            inner,
            now,
            counts: Mutex::default(),
        }
    }

    fn summary(&self, uid: u32, suppressed: u64) {
        self.inner.record(&AuditEvent {
            action: "audit",
            outcome: "suppressed",
            caller_uid: Some(uid),
            reason: format!(
                "{suppressed} more refused call(s) of this caller in {} s were not recorded",
                WINDOW.as_secs()
            ),
            ..Default::default()
        });
    }
}

impl<S: AuditSink> AuditSink for ThrottledAudit<S> {
    fn record(&self, event: &AuditEvent) {
        let uid = match event.caller_uid {
            Some(uid) if uid != 0 && event.outcome == "denied" => uid,
            _ => return self.inner.record(event),
        };
        let now = (self.now)();
        let (write, ended, limit_reached) = {
            let Ok(mut counts) = self.counts.lock() else {
                return self.inner.record(event);
            };
            if counts.len() >= MAX_TRACKED && !counts.contains_key(&uid) {
                counts.clear();
            }
            let c = counts.entry(uid).or_insert(Count {
                since: now,
                written: 0,
                suppressed: 0,
            });
            let mut ended = 0;
            if now.duration_since(c.since) >= WINDOW {
                ended = c.suppressed;
                *c = Count {
                    since: now,
                    written: 0,
                    suppressed: 0,
                };
            }
            let write = c.written < REFUSALS_PER_WINDOW;
            if write {
                c.written += 1;
            } else {
                c.suppressed += 1;
            }
            (write, ended, c.written == REFUSALS_PER_WINDOW && write)
        };
        if ended > 0 {
            self.summary(uid, ended);
        }
        if write {
            self.inner.record(event);
        }
        if limit_reached {
            self.inner.record(&AuditEvent {
                action: "audit",
                outcome: "throttled",
                caller_uid: Some(uid),
                reason: format!(
                    "{REFUSALS_PER_WINDOW} refused calls of this caller in {} s: further ones are counted, not recorded",
                    WINDOW.as_secs()
                ),
                ..Default::default()
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::MemoryAudit;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    static OFFSET: AtomicU64 = AtomicU64::new(0);
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

    fn test_now() -> Instant {
        *START.get_or_init(crate::clock::monotonic)
            + Duration::from_secs(OFFSET.load(Ordering::SeqCst))
    }

    impl AuditSink for Arc<MemoryAudit> {
        fn record(&self, event: &AuditEvent) {
            self.as_ref().record(event)
        }
    }

    fn refusal(uid: u32) -> AuditEvent {
        AuditEvent {
            action: "status",
            outcome: "denied",
            caller_uid: Some(uid),
            ..Default::default()
        }
    }

    #[test]
    fn refusals_of_one_uid_are_bounded_and_summarised_others_untouched() {
        let memory = Arc::new(MemoryAudit::default());
        let audit = ThrottledAudit::with_clock(memory.clone(), test_now);
        for _ in 0..1000 {
            audit.record(&refusal(1000));
            audit.record(&refusal(0));
        }
        audit.record(&AuditEvent {
            action: "login",
            outcome: "failure",
            caller_uid: Some(1000),
            ..Default::default()
        });
        let written = |uid: u32, outcome: &str| {
            memory
                .0
                .lock()
                .unwrap()
                .iter()
                .filter(|e| e.caller_uid == Some(uid) && e.outcome == outcome)
                .count()
        };
        assert_eq!(written(1000, "denied"), REFUSALS_PER_WINDOW as usize);
        assert_eq!(written(0, "denied"), 1000, "root is never throttled");
        assert_eq!(written(1000, "failure"), 1, "only refusals are throttled");
        assert_eq!(written(1000, "throttled"), 1, "the limit is announced once");
        OFFSET.fetch_add(WINDOW.as_secs(), Ordering::SeqCst);
        audit.record(&refusal(1000));
        let events = memory.0.lock().unwrap();
        let summary = events
            .iter()
            .find(|e| e.outcome == "suppressed")
            .expect("a summary record");
        assert!(
            summary.reason.starts_with("980 more refused"),
            "{summary:?}"
        );
        assert_eq!(events.last().map(|e| e.outcome), Some("denied"));
    }
}
