//! Medians and percentiles of timings, and how the report prints them.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub median: Duration,
    pub p95: Duration,
}

impl Summary {
    pub fn of(times: &[Duration]) -> Summary {
        let mut sorted = times.to_vec();
        sorted.sort();
        Summary {
            median: percentile(&sorted, 50.0),
            p95: percentile(&sorted, 95.0),
        }
    }
}

/// Nearest-rank percentile of sorted values: the smallest value with at least `p`% of
/// the values at or below it. Zero for no values.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

/// Seconds as signed milliseconds: an own cost can come out just below zero.
pub fn ms_signed(seconds: f64) -> String {
    format!("{:+.3} ms", seconds * 1e3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let times: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        let s = Summary::of(&times);
        assert_eq!(s.median, Duration::from_millis(50));
        assert_eq!(s.p95, Duration::from_millis(95));
        let one = Summary::of(&[Duration::from_millis(7)]);
        assert_eq!(
            (one.median, one.p95),
            (Duration::from_millis(7), Duration::from_millis(7))
        );
        assert_eq!(Summary::of(&[]).median, Duration::ZERO);
    }
}
