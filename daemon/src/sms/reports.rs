//! Delivery reports: where `[sms.kannel] reports_address` is set, each text asks Kannel
//! (`dlr-mask`, `dlr-url`) to call back when the operator took it and when the phone got
//! it. The callback URL holds a random reference of that text alone, so only Kannel can
//! report on it; what it says goes to the audit and into the login's next prompt ("not
//! delivered yet"). A report is only ever information: it never lets a login in.
//!
//! The listener speaks just enough HTTP/1 for smsbox's GET: one request per connection,
//! at most [`MAX_REQUEST`] bytes read within [`READ_LIMIT`], [`CONNECTIONS`] at once.

use crate::random::Random;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Texts followed at once, for all users together; a text beyond takes the place of the
/// one that ends first (texts are few: the send limits come before).
const TRACKED: usize = 4096;
/// How long after a code ends a late report is still recorded.
const AFTER_EXPIRY: i64 = 600;
const MAX_REQUEST: usize = 2048;
const READ_LIMIT: Duration = Duration::from_secs(2);
const CONNECTIONS: usize = 16;

/// What the last report said about a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    /// No report yet.
    Waiting,
    /// The operator's SMS centre has it (Kannel's types 4 and 8).
    AtOperator,
    /// On the phone (type 1).
    Delivered,
    /// The operator or the phone's network gave up on it (types 2 and 16).
    NotDelivered,
}

impl Report {
    /// Kannel's report type (`%d`): 1 delivered, 2 not delivered to the phone, 4 buffered
    /// at the SMSC, 8 taken by the SMSC, 16 refused by the SMSC.
    pub fn from_kannel(kind: u32) -> Option<Report> {
        match kind {
            1 => Some(Report::Delivered),
            2 | 16 => Some(Report::NotDelivered),
            4 | 8 => Some(Report::AtOperator),
            _ => None,
        }
    }

    /// For the audit.
    pub fn words(self) -> &'static str {
        match self {
            Report::Waiting => "no report yet",
            Report::AtOperator => "the operator took it",
            Report::Delivered => "delivered to the phone",
            Report::NotDelivered => "not delivered: the operator gave up on it",
        }
    }

    fn is_final(self) -> bool {
        matches!(self, Report::Delivered | Report::NotDelivered)
    }
}

/// One text followed: the reference its callback URL holds, and the plain number the
/// audit names it by (the reference itself is never logged).
#[derive(Debug, Clone)]
pub struct Tracking {
    pub reference: String,
    pub number: u64,
    pub url: String,
}

/// What the audit says of a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reported {
    pub user: String,
    pub masked: String,
    pub number: u64,
    pub report: Report,
}

#[derive(Debug)]
struct Entry {
    number: u64,
    user: String,
    masked: String,
    keep_until: i64,
    report: Report,
}

#[derive(Debug, Default)]
struct Tracked {
    by_reference: HashMap<String, Entry>,
    numbered: u64,
}

/// The texts whose reports are awaited.
#[derive(Debug)]
pub struct Reports {
    address: SocketAddr,
    tracked: Mutex<Tracked>,
}

impl Reports {
    /// Reports called back to `address` (where [`serve`] listens).
    pub fn new(address: SocketAddr) -> Reports {
        Reports {
            address,
            tracked: Mutex::new(Tracked::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tracked> {
        self.tracked.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Follows a text to `user`'s `masked` number whose code ends at `expires_at`.
    pub fn track(
        &self,
        random: &dyn Random,
        user: &str,
        masked: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<Tracking, String> {
        let mut bytes = [0u8; 16];
        random.fill(&mut bytes)?;
        let reference: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let mut t = self.lock();
        t.by_reference.retain(|_, e| e.keep_until > now);
        if t.by_reference.len() >= TRACKED {
            let first = t
                .by_reference
                .iter()
                .min_by_key(|(_, e)| e.keep_until)
                .map(|(r, _)| r.clone());
            if let Some(r) = first {
                t.by_reference.remove(&r);
            }
        }
        t.numbered += 1;
        let number = t.numbered;
        t.by_reference.insert(
            reference.clone(),
            Entry {
                number,
                user: user.to_owned(),
                masked: masked.to_owned(),
                keep_until: expires_at + AFTER_EXPIRY,
                report: Report::Waiting,
            },
        );
        // Kannel fills in `%d`, the report's type.
        let url = format!("http://{}/dlr/{reference}?type=%d", self.address);
        Ok(Tracking {
            reference,
            number,
            url,
        })
    }

    /// Stops following a text (it was not sent).
    pub fn forget(&self, reference: &str) {
        self.lock().by_reference.remove(reference);
    }

    /// The last report on the text of `reference`; None if it is not followed (any more).
    pub fn report(&self, reference: &str) -> Option<Report> {
        self.lock().by_reference.get(reference).map(|e| e.report)
    }

    /// Records a report of Kannel's `kind` for `reference`; what to audit, if the
    /// reference is one followed and the kind known. A final report stays final: one that
    /// the operator "took" a text arriving after "delivered" changes nothing.
    pub fn record(&self, reference: &str, kind: u32, now: i64) -> Option<Reported> {
        let report = Report::from_kannel(kind)?;
        let mut t = self.lock();
        let entry = t.by_reference.get_mut(reference)?;
        if entry.keep_until <= now {
            return None;
        }
        if !entry.report.is_final() {
            entry.report = report;
        }
        Some(Reported {
            user: entry.user.clone(),
            masked: entry.masked.clone(),
            number: entry.number,
            report,
        })
    }
}

/// The reference and the report type of smsbox's `GET /dlr/<reference>?type=<n>`.
fn parse(request: &[u8]) -> Option<(String, u32)> {
    let head = std::str::from_utf8(request).ok()?;
    let line = head.split("\r\n").next()?;
    let mut words = line.split(' ');
    let (method, target, version) = (words.next()?, words.next()?, words.next()?);
    if method != "GET" || !version.starts_with("HTTP/1.") || words.next().is_some() {
        return None;
    }
    let (path, query) = target.split_once('?')?;
    let reference = path.strip_prefix("/dlr/")?;
    if reference.len() != 32 || !reference.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let kind = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("type="))?
        .parse()
        .ok()?;
    Some((reference.to_owned(), kind))
}

/// Answers smsbox's callbacks on `listener`, handing each well-formed one to `on_report`
/// (reference, type) on a blocking thread (it audits; syslog may be slow), one per
/// connection, so at most [`CONNECTIONS`] at once. Every well-formed request gets the same answer, known reference or
/// not: a guess learns nothing.
pub async fn serve(
    listener: tokio::net::TcpListener,
    on_report: Arc<dyn Fn(String, u32) + Send + Sync>,
) {
    let turns = Arc::new(tokio::sync::Semaphore::new(CONNECTIONS));
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            // Out of descriptors, for instance: wait rather than spin.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let Ok(turn) = turns.clone().try_acquire_owned() else {
            continue; // dropped: smsbox tries a report again later
        };
        let on_report = on_report.clone();
        tokio::spawn(async move {
            let _turn = turn;
            let mut request = Vec::new();
            let read = tokio::time::timeout(READ_LIMIT, async {
                let mut buf = [0u8; 512];
                while request.len() < MAX_REQUEST && !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return false,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                true
            })
            .await;
            let answer: &[u8] = match (read, parse(&request)) {
                (Ok(true), Some((reference, kind))) => {
                    let _ = tokio::task::spawn_blocking(move || on_report(reference, kind)).await;
                    b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n"
                }
                _ => b"HTTP/1.0 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            };
            let _ = tokio::time::timeout(READ_LIMIT, stream.write_all(answer)).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::OsRandom;

    fn reports() -> Reports {
        Reports::new("127.0.0.1:13080".parse().unwrap())
    }

    #[test]
    fn a_text_is_followed_by_a_reference_only_its_url_holds() {
        let r = reports();
        let a = r
            .track(&OsRandom, "alice", "+49***678", 1000, 1300)
            .unwrap();
        let b = r.track(&OsRandom, "bob", "+33***678", 1000, 1300).unwrap();
        assert_ne!(a.reference, b.reference);
        assert_eq!((a.number, b.number), (1, 2));
        assert_eq!(
            a.url,
            format!("http://127.0.0.1:13080/dlr/{}?type=%d", a.reference)
        );
        assert_eq!(r.report(&a.reference), Some(Report::Waiting));
        assert_eq!(r.record(&"0".repeat(32), 1, 1001), None, "a guess");
        assert_eq!(r.record(&a.reference, 3, 1001), None, "no such type");
        let said = r.record(&a.reference, 8, 1001).unwrap();
        assert_eq!(
            (said.user.as_str(), said.number, said.report),
            ("alice", 1, Report::AtOperator)
        );
        assert_eq!(r.report(&a.reference), Some(Report::AtOperator));
        r.record(&a.reference, 1, 1002).unwrap();
        r.record(&a.reference, 8, 1003).unwrap();
        assert_eq!(
            r.report(&a.reference),
            Some(Report::Delivered),
            "final stays final"
        );
        assert_eq!(r.report(&b.reference), Some(Report::Waiting));
        r.forget(&b.reference);
        assert_eq!(r.report(&b.reference), None);
        assert_eq!(
            r.record(&a.reference, 1, 1300 + AFTER_EXPIRY),
            None,
            "too late"
        );
    }

    #[test]
    fn the_table_is_bounded_and_gives_up_the_text_that_ends_first() {
        let r = reports();
        let first = r.track(&OsRandom, "u", "*", 0, 100).unwrap();
        for i in 0..TRACKED {
            r.track(&OsRandom, "u", "*", 0, 200 + i as i64).unwrap();
        }
        assert_eq!(r.lock().by_reference.len(), TRACKED);
        assert_eq!(r.report(&first.reference), None);
        // Ended ones go first.
        r.track(&OsRandom, "u", "*", 10_000, 10_300).unwrap();
        assert_eq!(r.lock().by_reference.len(), 1);
    }

    #[test]
    fn only_smsbox_s_get_is_understood() {
        let reference = "0123456789abcdef0123456789abcdef";
        let ok = format!("GET /dlr/{reference}?type=8 HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(parse(ok.as_bytes()), Some((reference.into(), 8)));
        for bad in [
            format!("POST /dlr/{reference}?type=8 HTTP/1.1\r\n\r\n"),
            format!("GET /dlr/{reference} HTTP/1.1\r\n\r\n"),
            format!("GET /dlr/{reference}?type=x HTTP/1.1\r\n\r\n"),
            format!("GET /dlr/{reference}/..?type=1 HTTP/1.1\r\n\r\n"),
            "GET /dlr/abc?type=1 HTTP/1.1\r\n\r\n".into(),
            format!("GET /dlr/{reference}?type=1 HTTP/1.1 x\r\n\r\n"),
            format!("GET /dlr/{reference}?type=1\r\n\r\n"),
        ] {
            assert_eq!(parse(bad.as_bytes()), None, "{bad:?}");
        }
    }

    #[tokio::test]
    async fn the_listener_answers_every_well_formed_request_alike_and_bounds_the_rest() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let kept = seen.clone();
        tokio::spawn(serve(
            listener,
            Arc::new(move |r, k| kept.lock().unwrap().push((r, k))),
        ));
        let ask = |request: Vec<u8>| async move {
            let mut s = tokio::net::TcpStream::connect(address).await.unwrap();
            let _ = s.write_all(&request).await;
            let mut answer = String::new();
            let _ = s.read_to_string(&mut answer).await;
            answer
        };
        let reference = "0123456789abcdef0123456789abcdef";
        let answer =
            ask(format!("GET /dlr/{reference}?type=1 HTTP/1.1\r\n\r\n").into_bytes()).await;
        assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
        let answer = ask(b"GET / HTTP/1.1\r\n\r\n".to_vec()).await;
        assert!(answer.starts_with("HTTP/1.0 400"), "{answer}");
        // Endless headers: read up to the bound, then refused.
        let answer = ask(vec![b'a'; 64 * 1024]).await;
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.0 400"),
            "{answer}"
        );
        assert_eq!(*seen.lock().unwrap(), vec![(reference.to_owned(), 1)]);
    }
}
