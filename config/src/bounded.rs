use serde::Deserialize;

/// An integer that must lie in `MIN..=MAX`; checked while parsing, so the error carries
/// the line and the key of the offending value.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(try_from = "i64")]
pub struct Bounded<const MIN: u32, const MAX: u32>(pub u32);

impl<const MIN: u32, const MAX: u32> TryFrom<i64> for Bounded<MIN, MAX> {
    type Error = String;
    fn try_from(v: i64) -> Result<Self, String> {
        if v >= i64::from(MIN) && v <= i64::from(MAX) {
            Ok(Bounded(v as u32))
        } else {
            Err(format!("must be between {MIN} and {MAX}, got {v}"))
        }
    }
}

impl<const MIN: u32, const MAX: u32> Bounded<MIN, MAX> {
    pub fn get(self) -> u32 {
        self.0
    }
}
