//! A second factor: how it is enrolled and how an answer is checked (what a login asks
//! is the engine's, the same for every name). TOTP (an authenticator app) is the first,
//! e-mailed codes the second (`email_codes.rs`); texted codes and push approval are
//! further implementations of [`Factor`]. Each stored factor names its
//! [`FactorKind`], and the engine asks the matching implementation.

use crate::lockout::Match;
use crate::otp::{self, OtpParams};
use crate::random::Random;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactorKind {
    /// An authenticator app's time-based codes (RFC 6238).
    Totp,
    /// One-time codes e-mailed to the address an administrator set (`email_codes.rs`);
    /// nothing secret is stored with it.
    Email,
    /// One-time codes texted to the number an administrator set, where `[sms]
    /// sole_factor` lets SMS be a user's only factor (`sms.rs`); nothing secret stored.
    Sms,
}

impl FactorKind {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            FactorKind::Totp => "totp",
            FactorKind::Email => "email",
            FactorKind::Sms => "sms",
        }
    }

    /// Whether its codes are sent to an address or number on record (nothing secret is
    /// stored): an app enrolled later takes its place.
    pub fn is_sent_code(self) -> bool {
        matches!(self, FactorKind::Email | FactorKind::Sms)
    }

    /// `None` for a kind this version does not know: such a factor is refused, never
    /// checked as another kind.
    pub fn parse(stored: &str) -> Option<FactorKind> {
        match stored {
            "totp" => Some(FactorKind::Totp),
            "email" => Some(FactorKind::Email),
            "sms" => Some(FactorKind::Sms),
            _ => None,
        }
    }
}

/// A new factor's secret, and what the user is given to set it up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrolment {
    /// Stored; never logged.
    pub secret: String,
    /// For the QR code (an `otpauth://` URI for TOTP).
    pub uri: String,
}

pub trait Factor: Send + Sync {
    fn kind(&self) -> FactorKind;

    /// A new secret for `account` (`user@host`), shown as issued by `issuer`.
    fn enrol(&self, random: &dyn Random, issuer: &str, account: &str) -> Result<Enrolment, String>;

    /// What `answer` matches for `secret` at `now`, if anything; every candidate is
    /// compared in constant time. The store refuses a step at or below the last accepted
    /// one (replay).
    fn verify(&self, secret: &str, answer: &str, now: i64) -> Result<Option<Match>, String>;
}

/// TOTP with the configured algorithm, digits, step and window.
pub struct Totp(pub OtpParams);

/// The code prompt, the same for every name and factor (so nothing tells them apart;
/// the engine adds the e-mail choice where that is on).
pub const CODE_PROMPT: &str = "Verification code: ";

impl Factor for Totp {
    fn kind(&self) -> FactorKind {
        FactorKind::Totp
    }

    fn enrol(&self, random: &dyn Random, issuer: &str, account: &str) -> Result<Enrolment, String> {
        let secret = otp::generate_secret(random)?;
        let uri = otp::provisioning_uri(&self.0, &secret, issuer, account)?;
        Ok(Enrolment { secret, uri })
    }

    fn verify(&self, secret: &str, answer: &str, now: i64) -> Result<Option<Match>, String> {
        Ok(otp::matching_step(&self.0, secret, answer, now)?.map(|step| Match::Step(step as i64)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::OsRandom;

    fn totp() -> Totp {
        Totp(OtpParams::from_config(
            &twofold_config::TotpConfig::default(),
        ))
    }

    #[test]
    fn kinds_round_trip_and_an_unknown_kind_is_none() {
        for kind in [FactorKind::Totp, FactorKind::Email, FactorKind::Sms] {
            assert_eq!(FactorKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(FactorKind::parse("push"), None);
        assert_eq!(FactorKind::parse(""), None);
    }

    #[test]
    fn a_totp_enrolment_verifies_its_own_codes_and_no_others() {
        let f = totp();
        let e = f.enrol(&OsRandom, "host", "alice@host").unwrap();
        assert!(e.uri.starts_with("otpauth://totp/"), "{}", e.uri);
        assert!(!e.uri.is_empty() && e.uri.contains(&e.secret));
        let now = 1_800_000_000;
        let code = otp::code_at(&f.0, &e.secret, now as u64).unwrap();
        assert_eq!(
            f.verify(&e.secret, &code, now).unwrap(),
            Some(Match::Step(now / 30))
        );
        let other = f.enrol(&OsRandom, "host", "alice@host").unwrap();
        assert_ne!(other.secret, e.secret);
        assert_eq!(f.verify(&other.secret, &code, now).unwrap(), None);
    }
}
