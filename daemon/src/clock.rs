//! Time as the daemon sees it. Everything that depends on "now" takes a [`Clock`], so
//! tests can stand on a step boundary or jump past an expiry.

use std::sync::atomic::{AtomicI64, Ordering};

pub trait Clock: Send + Sync {
    /// Unix time in seconds.
    fn now(&self) -> i64;
}

pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one wall-clock read
    fn now(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    }
}

/// The monotonic time that timeouts and pauses are measured on (never a decision's "now",
/// which is the [`Clock`]'s).
#[allow(clippy::disallowed_methods)] // the one monotonic read
pub fn monotonic() -> std::time::Instant {
    std::time::Instant::now()
}

/// A clock that only moves when told to.
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(now: i64) -> ManualClock {
        ManualClock(AtomicI64::new(now))
    }
    pub fn set(&self, now: i64) {
        self.0.store(now, Ordering::SeqCst)
    }
    pub fn advance(&self, seconds: i64) {
        self.0.fetch_add(seconds, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Reads the time (Unix seconds) from a file at every call; for end-to-end tests only.
/// An unreadable file gives 0, which fails every code: a broken test clock never passes.
#[cfg(feature = "test-clock")]
pub struct FileClock(pub std::path::PathBuf);

#[cfg(feature = "test-clock")]
impl Clock for FileClock {
    fn now(&self) -> i64 {
        std::fs::read_to_string(&self.0)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }
}
