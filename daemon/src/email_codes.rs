//! E-mailed one-time codes: the e-mail [`Factor`], the code a login holds while it waits
//! for the user (only its salted hash; one code per login, single use, expiring), the
//! message, and the [`Courier`] port that hands a message to the mail server without the
//! login (or any other) waiting for it.

use crate::factor::{Enrolment, Factor, FactorKind};
use crate::lockout::Match;
use crate::mail::{Mail, Mailer};
use crate::otp::constant_time_eq;
use crate::random::Random;
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex};
use twofold_config::EmailCodesConfig;

/// A user whose only factor is the address on record. Nothing secret is stored: the
/// code lives in the login that asked for it ([`MailedCode`]).
pub struct EmailFactor;

impl Factor for EmailFactor {
    fn kind(&self) -> FactorKind {
        FactorKind::Email
    }

    fn enrol(&self, _: &dyn Random, _: &str, _: &str) -> Result<Enrolment, String> {
        Err("an e-mail factor is set with `twofoldctl user set USER --email ADDRESS`".into())
    }

    fn verify(&self, _: &str, _: &str, _: i64) -> Result<Option<Match>, String> {
        Ok(None)
    }
}

/// A code e-mailed for one login, as that login keeps it.
#[derive(Debug)]
pub struct MailedCode {
    salt: [u8; 16],
    hash: [u8; 32],
    /// Valid while now < expires_at.
    pub expires_at: i64,
    /// The factor's generation when the code went out: a new address, a reset or a lock
    /// since then ends it.
    pub generation: i64,
    pub delivery: Delivery,
}

impl MailedCode {
    /// A new code from the CSPRNG, valid for `valid_seconds`; returns the code once, for
    /// the mail.
    pub fn new(
        random: &dyn Random,
        now: i64,
        valid_seconds: i64,
        generation: i64,
    ) -> Result<(MailedCode, String), String> {
        let code = six_digits(random)?;
        let mut salt = [0u8; 16];
        random.fill(&mut salt)?;
        let mailed = MailedCode {
            hash: digest(&salt, &code),
            salt,
            expires_at: now + valid_seconds,
            generation,
            delivery: Delivery::default(),
        };
        Ok((mailed, code))
    }

    /// A code that was never sent and that no answer matches, for a login with nothing to
    /// send to: it then goes on exactly like one whose mail went out.
    pub fn decoy(random: &dyn Random, now: i64, valid_seconds: i64) -> Result<MailedCode, String> {
        let (mut decoy, _forgotten) = MailedCode::new(random, now, valid_seconds, i64::MIN)?;
        random.fill(&mut decoy.hash)?;
        decoy.delivery.set(DeliveryState::Sent);
        Ok(decoy)
    }

    /// Whether `answer` (spaces ignored) is this code, still valid, for the factor of
    /// `generation`.
    pub fn matches(&self, answer: &str, now: i64, generation: i64) -> bool {
        let answer: String = answer.chars().filter(|c| !c.is_whitespace()).collect();
        let right = constant_time_eq(&digest(&self.salt, &answer), &self.hash);
        right && now < self.expires_at && generation == self.generation
    }
}

/// A code as a login keeps it: SHA-256 of a random salt and the code (texted codes too).
pub(crate) fn digest(salt: &[u8; 16], code: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(code.as_bytes());
    h.finalize().into()
}

/// Six decimal digits, uniform (rejection sampling: no digit is likelier than another).
pub(crate) fn six_digits(random: &dyn Random) -> Result<String, String> {
    const LIMIT: u32 = u32::MAX - (u32::MAX % 1_000_000) - 1;
    loop {
        let mut b = [0u8; 4];
        random.fill(&mut b)?;
        let n = u32::from_le_bytes(b);
        if n <= LIMIT {
            return Ok(format!("{:06}", n % 1_000_000));
        }
    }
}

/// How the delivery of one message stands.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum DeliveryState {
    #[default]
    Sending,
    Sent,
    /// Why, in words without the message or any credential.
    Failed(String),
}

/// Shared between the login that waits and the task that delivers.
#[derive(Debug, Clone, Default)]
pub struct Delivery(Arc<Mutex<DeliveryState>>);

impl Delivery {
    pub fn state(&self) -> DeliveryState {
        self.0
            .lock()
            .map(|s| s.clone())
            .unwrap_or(DeliveryState::Failed("unknown".into()))
    }

    pub fn set(&self, state: DeliveryState) {
        if let Ok(mut s) = self.0.lock() {
            *s = state;
        }
    }
}

/// Hands a code's message to the mail server and returns at once; the outcome lands in
/// `delivery`.
pub trait Courier: Send + Sync {
    fn dispatch(&self, user: &str, mail: Mail, delivery: Delivery);
}

/// Messages in delivery at once, at most: beyond, a request fails at once (said so to
/// the user) instead of queueing behind a stalled server.
const IN_FLIGHT: usize = 32;

/// Delivers through a [`Mailer`] on a tokio runtime, each message in a task of its own
/// (bounded by the mailer's timeout), so a slow server stalls no login.
pub struct MailCourier {
    mailer: Arc<dyn Mailer>,
    runtime: tokio::runtime::Handle,
    in_flight: Arc<tokio::sync::Semaphore>,
}

impl MailCourier {
    /// On the current runtime.
    pub fn start(mailer: Arc<dyn Mailer>) -> MailCourier {
        MailCourier {
            mailer,
            runtime: tokio::runtime::Handle::current(),
            in_flight: Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT)),
        }
    }
}

impl Courier for MailCourier {
    fn dispatch(&self, user: &str, mail: Mail, delivery: Delivery) {
        let Ok(turn) = self.in_flight.clone().try_acquire_owned() else {
            delivery.set(DeliveryState::Failed(
                "too many messages are waiting for the mail server".into(),
            ));
            return;
        };
        let mailer = self.mailer.clone();
        let user = user.to_owned();
        self.runtime.spawn(async move {
            let _turn = turn;
            match mailer.send(&mail).await {
                Ok(()) => delivery.set(DeliveryState::Sent),
                Err(e) => {
                    eprintln!("twofoldd: the code for user {user:?} was not sent: {e}");
                    delivery.set(DeliveryState::Failed(e.to_string()));
                }
            }
        });
    }
}

/// Sends nothing: no `[smtp]`, or e-mailed codes are off.
pub struct NoCourier;

impl Courier for NoCourier {
    fn dispatch(&self, _: &str, _: Mail, delivery: Delivery) {
        delivery.set(DeliveryState::Failed("no mail server is set up".into()));
    }
}

/// What the message says about the login, as the template's placeholders.
pub struct About<'a> {
    pub user: &'a str,
    pub host: &'a str,
    pub service: &'a str,
    pub source: &'a str,
    /// Already in words (UTC).
    pub time: &'a str,
}

/// The message with `code` for the login described by `about`.
pub fn message(config: &EmailCodesConfig, to: &str, about: &About<'_>, code: &str) -> Mail {
    let minutes = config.valid_minutes.get().to_string();
    let values = [
        ("user", about.user),
        ("host", about.host),
        ("service", about.service),
        ("source", about.source),
        ("time", about.time),
        ("minutes", minutes.as_str()),
        ("code", code),
    ];
    Mail {
        to: to.to_owned(),
        // The subject's template cannot hold {code}; values hold no line breaks.
        subject: config.subject.render(&values[..6]),
        body: config.text.render(&values),
    }
}

/// Holds every message, delivered or failed as told; for tests.
#[cfg(test)]
#[derive(Default)]
pub struct MemoryCourier {
    pub sent: Mutex<Vec<(String, Mail)>>,
    pub fail: std::sync::atomic::AtomicBool,
}

#[cfg(test)]
impl Courier for MemoryCourier {
    fn dispatch(&self, user: &str, mail: Mail, delivery: Delivery) {
        if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            delivery.set(DeliveryState::Failed("the server said no".into()));
            return;
        }
        if let Ok(mut sent) = self.sent.lock() {
            sent.push((user.to_owned(), mail));
        }
        delivery.set(DeliveryState::Sent);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::OsRandom;

    #[test]
    fn a_code_is_six_digits_matches_once_spaced_or_not_and_expires() {
        let (m, code) = MailedCode::new(&OsRandom, 100, 600, 7).unwrap();
        assert!(
            code.len() == 6 && code.chars().all(|c| c.is_ascii_digit()),
            "{code}"
        );
        assert!(m.matches(&code, 100, 7));
        assert!(m.matches(&format!(" {} {} ", &code[..3], &code[3..]), 699, 7));
        assert!(!m.matches(&code, 700, 7), "expired");
        assert!(
            !m.matches(&code, 100, 8),
            "the factor changed since it was sent"
        );
        let other = format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000);
        assert!(!m.matches(&other, 100, 7));
        assert!(!m.matches("", 100, 7));
        let (again, _) = MailedCode::new(&OsRandom, 100, 600, 7).unwrap();
        assert_ne!(again.salt, m.salt, "each code its own salt");
        let decoy = MailedCode::decoy(&OsRandom, 100, 600).unwrap();
        assert_eq!(decoy.delivery.state(), DeliveryState::Sent);
        assert!(!decoy.matches(&code, 100, i64::MIN));
    }

    #[test]
    fn codes_are_uniform_over_the_first_digit() {
        let mut counts = [0u32; 10];
        for _ in 0..5000 {
            let c = six_digits(&OsRandom).unwrap();
            counts[(c.as_bytes()[0] - b'0') as usize] += 1;
        }
        // 500 expected each; 5 standard deviations is about +-106.
        assert!(
            counts.iter().all(|&n| (380..=620).contains(&n)),
            "{counts:?}"
        );
    }

    #[test]
    fn the_message_names_the_login_and_shows_the_code_only_in_the_body() {
        let c = EmailCodesConfig::default();
        let about = About {
            user: "alice",
            host: "ws1",
            service: "sshd",
            source: "10.0.0.7",
            time: "2026-12-03 09:00 UTC",
        };
        let m = message(&c, "alice@example.org", &about, "123456");
        assert_eq!(m.to, "alice@example.org");
        assert_eq!(m.subject, "Your login code for ws1");
        for part in [
            "alice",
            "sshd",
            "ws1",
            "10.0.0.7",
            "2026-12-03 09:00 UTC",
            "123456",
            "10 minutes",
        ] {
            assert!(m.body.contains(part), "{part} missing in {}", m.body);
        }
    }
}
