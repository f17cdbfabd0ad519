//! Instants written by people: a date (`2027-01-31`, meaning 00:00 UTC that day) or an
//! RFC 3339 time (`2027-01-31T12:00:00Z`). Stored as Unix seconds.

use serde::Deserialize;
use std::time::UNIX_EPOCH;

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(try_from = "String")]
pub struct Instant(pub i64);

impl TryFrom<String> for Instant {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        parse_instant(&s).map(Instant)
    }
}

/// Unix seconds of a date (00:00 UTC) or an RFC 3339 time.
pub fn parse_instant(text: &str) -> Result<i64, String> {
    let full = if text.len() == 10 {
        format!("{text}T00:00:00Z")
    } else {
        text.to_string()
    };
    let t = humantime::parse_rfc3339_weak(&full)
        .or_else(|_| humantime::parse_rfc3339(&full))
        .map_err(|_| {
            format!(
                "expected a date like 2027-01-31 or a time like 2027-01-31T12:00:00Z, got {text:?}"
            )
        })?;
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .map_err(|_| format!("{text:?} is before 1970"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_times_parse_to_utc_seconds() {
        assert_eq!(parse_instant("2027-01-31"), Ok(1_801_353_600));
        assert_eq!(
            parse_instant("2027-01-31T12:00:00Z"),
            Ok(1_801_353_600 + 43_200)
        );
        assert!(parse_instant("31/01/2027").is_err());
        assert!(parse_instant("2027-02-30").is_err());
        assert!(parse_instant("").is_err());
    }
}
