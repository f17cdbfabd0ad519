//! Texted one-time codes: the [`SmsTransport`] port a gateway adapter implements (Kannel
//! in `sms/kannel.rs`), the [`Texter`] that sends without holding up the engine for
//! long, the codes a login holds while it waits (salted hashes; the two latest count,
//! because texts arrive late), the message, and the masked number logins show.

pub mod command;
pub mod http;
pub mod kannel;
pub mod local_port;
pub mod reports;

use crate::email_codes::{digest, six_digits};
use crate::otp::constant_time_eq;
use crate::random::Random;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, mpsc};
use std::time::Duration;
use twofold_config::{SMS_MAX_HOST, SMS_MAX_SERVICE, Template};

/// One text to one number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sms {
    /// E.164, `+` and digits.
    pub to: String,
    pub text: String,
    /// How long the gateway should keep trying (the code's lifetime).
    pub valid_minutes: u32,
    /// Where a gateway that reports delivery calls back ([`reports`]); None: no reports.
    pub report_url: Option<String>,
}

/// What the gateway said about a text it took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// Passed on towards the operator.
    Sent,
    /// Kept to send once the gateway's link to the operator is back.
    Queued,
}

/// Failures name what went wrong, never the text, the number or a password.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SmsError {
    #[error("the [sms] settings cannot be used: {0}")]
    Settings(String),
    /// The gateway said no for good (a wrong password, no route): trying again will not help.
    #[error("the SMS gateway refused the text: {0}")]
    Refused(String),
    /// Down, full or silent: later may work.
    #[error("the SMS gateway is unavailable: {0}")]
    Unavailable(String),
}

pub type Texting<'a> = Pin<Box<dyn Future<Output = Result<Accepted, SmsError>> + Send + 'a>>;

/// A gateway: hands one text over, within its own timeout and retries.
pub trait SmsTransport: Send + Sync {
    fn send<'a>(&'a self, sms: &'a Sms) -> Texting<'a>;
}

/// The HTTP client of the gateways that speak HTTP: TLS as [`crate::tls`] sets it up
/// (always verified), the gateway's timeout for each request, no redirect (a gateway that
/// redirects is not the one configured), no proxy from the environment.
pub(crate) fn http_client(
    ca_file: Option<&std::path::Path>,
    timeout_seconds: u32,
) -> Result<reqwest::Client, String> {
    let tls = crate::tls::client_config(ca_file)?;
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(Duration::from_secs(u64::from(timeout_seconds)))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .user_agent(concat!("twofoldd/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))
}

/// The gateway `[sms]` names, its settings read (password and CA files): a setting that
/// cannot be used stops the start with its reason. None: SMS is off.
pub fn gateway(config: &twofold_config::Config) -> Result<Option<Arc<dyn SmsTransport>>, SmsError> {
    if !config.sms_on() {
        return Ok(None);
    }
    let c = &config.sms;
    if let Some(k) = &c.kannel {
        return Ok(Some(Arc::new(kannel::KannelTransport::new(k)?)));
    }
    if let Some(h) = &c.http {
        return Ok(Some(Arc::new(http::HttpTransport::new(h)?)));
    }
    if let Some(c) = &c.command {
        return Ok(Some(Arc::new(command::CommandTransport::new(c)?)));
    }
    Err(SmsError::Settings("no gateway section".into()))
}

/// How a text handed to a [`Texter`] fares: the gateway's answer, once it came.
pub struct Outcome(mpsc::Receiver<Result<Accepted, SmsError>>);

impl Outcome {
    /// An outcome that is already known.
    pub fn known(result: Result<Accepted, SmsError>) -> Outcome {
        let (tx, rx) = mpsc::channel();
        let _ = tx.send(result);
        Outcome(rx)
    }

    /// Waits at most `limit` for the gateway's answer; None if it has not come.
    pub fn wait(&self, limit: Duration) -> Option<Result<Accepted, SmsError>> {
        match self.0.recv_timeout(limit) {
            Ok(r) => Some(r),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => Some(Err(SmsError::Unavailable(
                "the sending task ended without an answer".into(),
            ))),
        }
    }
}

/// Hands texts to a gateway in tasks of their own, so that a login waits for the
/// gateway's answer only as long as it chooses to ([`Outcome::wait`]).
pub trait Texter: Send + Sync {
    fn dispatch(&self, user: &str, sms: Sms) -> Outcome;
}

/// Texts in delivery at once, at most: beyond, a request fails at once.
const IN_FLIGHT: usize = 16;

/// Sends through an [`SmsTransport`] on a tokio runtime.
pub struct GatewayTexter {
    transport: Arc<dyn SmsTransport>,
    runtime: tokio::runtime::Handle,
    in_flight: Arc<tokio::sync::Semaphore>,
}

impl GatewayTexter {
    /// On the current runtime.
    pub fn start(transport: Arc<dyn SmsTransport>) -> GatewayTexter {
        GatewayTexter {
            transport,
            runtime: tokio::runtime::Handle::current(),
            in_flight: Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT)),
        }
    }
}

impl Texter for GatewayTexter {
    fn dispatch(&self, user: &str, sms: Sms) -> Outcome {
        let Ok(turn) = self.in_flight.clone().try_acquire_owned() else {
            return Outcome::known(Err(SmsError::Unavailable(
                "too many texts are waiting for the gateway".into(),
            )));
        };
        let (tx, rx) = mpsc::channel();
        let transport = self.transport.clone();
        let user = user.to_owned();
        self.runtime.spawn(async move {
            let _turn = turn;
            let result = transport.send(&sms).await;
            if let Err(e) = &result {
                eprintln!("twofoldd: the text for user {user:?} was not sent: {e}");
            }
            let _ = tx.send(result);
        });
        Outcome(rx)
    }
}

/// Sends nothing: SMS is off.
pub struct NoTexter;

impl Texter for NoTexter {
    fn dispatch(&self, _: &str, _: Sms) -> Outcome {
        Outcome::known(Err(SmsError::Settings("no SMS gateway is set up".into())))
    }
}

/// Keeps every text and answers as told; for tests.
#[cfg(test)]
#[derive(Default)]
pub struct MemoryTexter {
    pub sent: std::sync::Mutex<Vec<(String, Sms)>>,
    /// The answer to give instead of `Sent`.
    pub answer: std::sync::Mutex<Option<Result<Accepted, SmsError>>>,
}

#[cfg(test)]
impl Texter for MemoryTexter {
    fn dispatch(&self, user: &str, sms: Sms) -> Outcome {
        let answer = self
            .answer
            .lock()
            .map(|a| a.clone())
            .unwrap_or(None)
            .unwrap_or(Ok(Accepted::Sent));
        if answer.is_ok() {
            if let Ok(mut sent) = self.sent.lock() {
                sent.push((user.to_owned(), sms));
            }
        }
        Outcome::known(answer)
    }
}

/// A texted code as the login keeps it.
#[derive(Debug, Clone)]
struct Sent {
    salt: [u8; 16],
    hash: [u8; 32],
    expires_at: i64,
}

/// The codes texted for one login: the latest two count (a text may arrive after the
/// user asked again), each once, while valid and while the user's factor is the one of
/// `generation` (a new number, a reset or a lock ends them).
#[derive(Debug, Default)]
pub struct TextedCodes {
    latest: Vec<Sent>,
    generation: i64,
}

impl TextedCodes {
    /// A new code from the CSPRNG, valid for `valid_seconds`; returns it once, for the text.
    pub fn add(
        &mut self,
        random: &dyn Random,
        now: i64,
        valid_seconds: i64,
        generation: i64,
    ) -> Result<String, String> {
        let code = six_digits(random)?;
        let mut salt = [0u8; 16];
        random.fill(&mut salt)?;
        if generation != self.generation {
            self.latest.clear();
            self.generation = generation;
        }
        self.latest.push(Sent {
            hash: digest(&salt, &code),
            salt,
            expires_at: now + valid_seconds,
        });
        if self.latest.len() > 2 {
            self.latest.remove(0);
        }
        Ok(code)
    }

    /// Forgets the latest code (its text was not sent).
    pub fn forget_latest(&mut self) {
        self.latest.pop();
    }

    pub fn is_empty(&self) -> bool {
        self.latest.is_empty()
    }

    /// Whether `answer` (spaces ignored) is one of the codes, still valid, for the factor
    /// of `generation`. Both are compared, in constant time, whichever matches.
    pub fn matches(&self, answer: &str, now: i64, generation: i64) -> bool {
        let answer: String = answer.chars().filter(|c| !c.is_whitespace()).collect();
        let mut right = false;
        for sent in &self.latest {
            let same = constant_time_eq(&digest(&sent.salt, &answer), &sent.hash);
            right |= same && now < sent.expires_at;
        }
        right && generation == self.generation
    }

    /// Forgets the codes (one passed: the login is over).
    pub fn clear(&mut self) {
        self.latest.clear();
    }
}

/// A user whose only factor is the number on record (`[sms] sole_factor`). Nothing
/// secret is stored: the code lives in the login that asked for it ([`TextedCodes`]).
pub struct SmsFactor;

impl crate::factor::Factor for SmsFactor {
    fn kind(&self) -> crate::factor::FactorKind {
        crate::factor::FactorKind::Sms
    }

    fn enrol(&self, _: &dyn Random, _: &str, _: &str) -> Result<crate::factor::Enrolment, String> {
        Err("an SMS factor is set with `twofoldctl user set USER --phone NUMBER`, where [sms] sole_factor = true".into())
    }

    fn verify(&self, _: &str, _: &str, _: i64) -> Result<Option<crate::lockout::Match>, String> {
        Ok(None)
    }
}

/// Whether `s` is an E.164 number: `+`, a first digit 1-9, 8 to 15 digits in all.
pub fn valid_number(s: &str) -> bool {
    let Some(digits) = s.strip_prefix('+') else {
        return false;
    };
    (8..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

/// `+49*******678`: the first three characters and the last three digits, enough for the
/// user to recognise their phone and for no one to dial it.
pub fn masked(number: &str) -> String {
    let n = number.len();
    if n < 7 || !number.is_ascii() {
        return "*".repeat(n.max(1));
    }
    format!("{}{}{}", &number[..3], "*".repeat(n - 6), &number[n - 3..])
}

/// The text from `[sms]`'s template (`sms-code.txt`, checked to fit one GSM SMS with the
/// longest names): host and service names are cut to those lengths, and only printable
/// ASCII of them is kept, so nothing in a name can make the text longer or odd.
pub fn message(template: &Template, code: &str, host: &str, service: &str, minutes: u32) -> String {
    let shorten = |s: &str, max: usize| -> String {
        s.chars()
            .filter(|c| c.is_ascii_graphic())
            .take(max)
            .collect()
    };
    template.render(&[
        ("code", code),
        ("host", &shorten(host, SMS_MAX_HOST)),
        ("service", &shorten(service, SMS_MAX_SERVICE)),
        ("minutes", &minutes.to_string()),
    ])
}

/// The text to a number that no longer gets a user's codes.
pub fn changed_notice(host: &str) -> String {
    let host: String = host
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(60)
        .collect();
    format!(
        "This phone no longer gets twofold login codes for {host}. Did not ask for that? Tell IT at once."
    )
}

/// How much of a gateway's answer an error quotes.
const QUOTED: usize = 80;

/// At most [`QUOTED`] characters of `body`, printable, without `hidden` nor any run of
/// 6 or more digits (a code, a number in another format).
pub(crate) fn quote(body: &str, hidden: &[&str]) -> String {
    let mut text = body.to_owned();
    for h in hidden.iter().filter(|h| h.len() >= 4) {
        text = text.replace(h, "[…]");
    }
    let mut out = String::new();
    let mut digits = String::new();
    let flush = |digits: &mut String, out: &mut String| {
        if digits.len() >= 6 {
            out.push_str("[digits]");
        } else {
            out.push_str(digits);
        }
        digits.clear();
    };
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        flush(&mut digits, &mut out);
        if c.is_control() {
            out.push(' ');
        } else {
            out.push(c);
        }
    }
    flush(&mut digits, &mut out);
    let squeezed = out.split_whitespace().collect::<Vec<_>>().join(" ");
    squeezed.chars().take(QUOTED).collect()
}

/// A stand-in gateway for the adapters' tests.
#[cfg(test)]
pub(crate) mod test_gateway {
    use std::io::{Read, Write};

    /// A plain-HTTP gateway on 127.0.0.1 answering every request with `answer`; counts
    /// the requests.
    pub fn gateway(
        answer: &'static str,
    ) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/send", listener.local_addr().unwrap());
        let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = count.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut buf = [0u8; 8192];
                let _ = stream.read(&mut buf);
                seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let _ = stream.write_all(answer.as_bytes());
            }
        });
        (url, count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::OsRandom;

    #[test]
    fn the_two_latest_codes_count_each_while_valid_and_only_for_their_generation() {
        let r = OsRandom;
        let mut codes = TextedCodes::default();
        let first = codes.add(&r, 1000, 300, 7).unwrap();
        let second = codes.add(&r, 1010, 300, 7).unwrap();
        let third = codes.add(&r, 1020, 300, 7).unwrap();
        assert_eq!(first.len(), 6);
        assert!(
            !codes.matches(&first, 1030, 7),
            "the third code pushed the first out"
        );
        assert!(codes.matches(&second, 1030, 7));
        assert!(codes.matches(&format!("{} {}", &third[..3], &third[3..]), 1030, 7));
        assert!(!codes.matches(&second, 1310, 7), "expired at 1010 + 300");
        assert!(codes.matches(&third, 1319, 7));
        assert!(
            !codes.matches(&third, 1030, 8),
            "a new number or a lock ends them"
        );
        assert!(!codes.matches("", 1030, 7) && !codes.matches("000000x", 1030, 7));
        codes.clear();
        assert!(codes.is_empty() && !codes.matches(&third, 1030, 7));
        // A code for a new generation drops the old ones.
        let old = codes.add(&r, 2000, 300, 7).unwrap();
        let new = codes.add(&r, 2001, 300, 8).unwrap();
        assert!(!codes.matches(&old, 2002, 8) && codes.matches(&new, 2002, 8));
    }

    #[test]
    fn numbers_are_e164_and_shown_masked() {
        for good in ["+4915112345678", "+12025550123", "+33612345678"] {
            assert!(valid_number(good), "{good}");
        }
        for bad in [
            "",
            "4915112345678",
            "+0915112345678",
            "+49 151 12345678",
            "+1234567",
            "+1234567890123456",
            "+49151-1234567",
            "++4915112345678",
        ] {
            assert!(!valid_number(bad), "{bad}");
        }
        assert_eq!(masked("+4915112345678"), "+49********678");
        assert_eq!(masked("+12025550123"), "+12******123");
    }

    #[test]
    fn the_text_fits_one_sms_and_starts_with_the_code() {
        let long = "h".repeat(300);
        let built_in = twofold_config::SmsConfig::default().text;
        let text = message(&built_in, "123456", &long, &long, 10);
        assert!(text.starts_with("123456 is your twofold login code"));
        assert!(text.len() <= 160, "{} characters: {text}", text.len());
        assert!(text.contains("valid 10 min") && text.contains("Not you?"));
        let odd = message(&built_in, "123456", "host\nname", "sshd\u{1b}[2J", 5);
        assert!(!odd.contains('\n') && !odd.contains('\u{1b}'), "{odd}");
    }
}
