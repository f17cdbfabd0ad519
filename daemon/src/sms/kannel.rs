//! Kannel's smsbox `sendsms` HTTP interface as an [`SmsTransport`]. Kannel speaks
//! SMPP, EMI or a modem to the operator; twofoldd only makes one HTTP request per text.
//! What Kannel answers (measured with Kannel 1.4.5, see tests/src/kannel.rs): `202` with
//! `0: Accepted…` or `3: Queued…` (its link to the operator is down); `403` for a wrong
//! password or no route (for good); `503` when its queue is full. A refused connection
//! or a `503` is tried once more within 2 s: Kannel took nothing then. Anything else
//! (a timeout, an answer cut short) is not, since Kannel may have the text already and
//! a second request would send it twice.

use super::{Accepted, Sms, SmsError, SmsTransport, Texting};
use std::time::Duration;
use twofold_config::KannelConfig;

/// The pause before the one retry, and the time both tries may take before a second
/// one is not started.
const RETRY_AFTER: Duration = Duration::from_millis(500);
const RETRY_WITHIN: Duration = Duration::from_secs(2);
/// Kannel's answers are a line; more is not read (a gateway must not fill our memory).
const MAX_ANSWER: usize = 4096;

pub struct KannelTransport {
    client: reqwest::Client,
    url: String,
    username: String,
    password: String,
    /// Who must hold smsbox's port, for a plain-http url.
    port_owner: Option<super::local_port::PortOwner>,
}

impl KannelTransport {
    /// Reads the password file and the CA file once, at start-up.
    pub fn new(c: &KannelConfig) -> Result<KannelTransport, SmsError> {
        let settings = |e: String| SmsError::Settings(format!("[sms.kannel] {e}"));
        let password =
            crate::credentials::read_password_file(&c.password_file.0).map_err(settings)?;
        let client = super::http_client(
            c.ca_file.as_ref().map(|p| p.0.as_path()),
            c.timeout_seconds.get(),
        )
        .map_err(settings)?;
        let port_owner = super::local_port::PortOwner::for_url(&c.url, c.local_user.as_deref())
            .map_err(settings)?;
        Ok(KannelTransport {
            port_owner,
            client,
            url: c.url.0.clone(),
            username: c.username.clone(),
            password,
        })
    }

    /// One request; the error says whether Kannel surely took nothing (worth a retry).
    async fn try_once(&self, sms: &Sms) -> Result<Accepted, (SmsError, bool)> {
        if let Some(Err(e)) = self.port_owner.as_ref().map(|o| o.check()) {
            // Nothing went out (neither password nor text): worth one more look.
            return Err((SmsError::Unavailable(format!("smsbox's port: {e}")), true));
        }
        let validity = sms.valid_minutes.to_string();
        let mut query = vec![
            ("username", self.username.as_str()),
            ("password", self.password.as_str()),
            ("to", sms.to.as_str()),
            ("text", sms.text.as_str()),
            ("validity", validity.as_str()),
        ];
        if !sms.text.is_ascii() {
            // Without these, smsbox sends characters GSM 7-bit lacks as '?'.
            query.extend([("coding", "2"), ("charset", "UTF-8")]);
        }
        if let Some(url) = &sms.report_url {
            // 31: every report Kannel has (delivered, not delivered, buffered, taken or
            // refused by the SMS centre).
            query.extend([("dlr-mask", "31"), ("dlr-url", url.as_str())]);
        }
        let mut response = self
            .client
            .get(&self.url)
            .query(&query)
            .send()
            .await
            // reqwest's errors name the URL with its query: say only what kind it was.
            .map_err(|e| (SmsError::Unavailable(kind_of(&e)), e.is_connect()))?;
        let status = response.status().as_u16();
        let mut body = Vec::new();
        while body.len() < MAX_ANSWER {
            match response.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) => break,
                Err(e) => return Err((SmsError::Unavailable(kind_of(&e)), false)),
            }
        }
        body.truncate(MAX_ANSWER);
        judge(status, &String::from_utf8_lossy(&body)).map_err(|e| {
            let retry = status == 503;
            (e, retry)
        })
    }
}

impl SmsTransport for KannelTransport {
    fn send<'a>(&'a self, sms: &'a Sms) -> Texting<'a> {
        Box::pin(async move {
            let started = tokio::time::Instant::now();
            match self.try_once(sms).await {
                Err((SmsError::Unavailable(why), true)) if started.elapsed() < RETRY_WITHIN => {
                    tokio::time::sleep(RETRY_AFTER).await;
                    self.try_once(sms).await.map_err(|(e, _)| match e {
                        SmsError::Unavailable(again) => {
                            SmsError::Unavailable(format!("{why}; tried again: {again}"))
                        }
                        other => other,
                    })
                }
                other => other.map_err(|(e, _)| e),
            }
        })
    }
}

/// What Kannel's answer means. Quoted in errors, it loses control characters and runs of
/// six or more digits (a gateway that echoes the request would show number and code).
fn judge(status: u16, body: &str) -> Result<Accepted, SmsError> {
    let said = super::quote(body, &[]);
    match status {
        200..=299 if body.starts_with("0:") => Ok(Accepted::Sent),
        200..=299 if body.starts_with("3:") => Ok(Accepted::Queued),
        503 => Err(SmsError::Unavailable(format!("HTTP 503 {said:?}"))),
        400..=499 => Err(SmsError::Refused(format!("HTTP {status} {said:?}"))),
        _ => Err(SmsError::Unavailable(format!("HTTP {status} {said:?}"))),
    }
}

fn kind_of(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "no answer within the timeout".into()
    } else if e.is_connect() {
        "cannot connect".into()
    } else if e.is_body() || e.is_decode() {
        "the answer was cut short".into()
    } else {
        "the request failed".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kannels_answers_are_read_as_sent_queued_for_good_or_for_now() {
        assert_eq!(judge(202, "0: Accepted for delivery"), Ok(Accepted::Sent));
        assert_eq!(
            judge(202, "3: Queued for later delivery"),
            Ok(Accepted::Queued)
        );
        assert!(matches!(
            judge(403, "Authorization failed for sendsms"),
            Err(SmsError::Refused(_))
        ));
        assert!(matches!(
            judge(503, "Temporal failure, try again later."),
            Err(SmsError::Unavailable(_))
        ));
        assert!(matches!(
            judge(202, "something else"),
            Err(SmsError::Unavailable(_))
        ));
        assert!(matches!(judge(500, ""), Err(SmsError::Unavailable(_))));
        let Err(e) = judge(403, "a\nforged\nline") else {
            panic!("accepted")
        };
        assert!(!e.to_string().contains('\n'), "{e}");
        let Err(e) = judge(400, "to=+4915112345678&text=123456 is your code, 12345") else {
            panic!("accepted")
        };
        let said = e.to_string();
        assert!(
            !said.contains("4915112345678") && !said.contains("123456") && said.contains("12345"),
            "{said}"
        );
    }

    /// A transport to `url` with a password file in `dir`.
    fn transport(dir: &std::path::Path, url: &str, timeout: u32) -> KannelTransport {
        use std::os::unix::fs::PermissionsExt;
        let file = dir.join("password");
        std::fs::write(&file, "secret\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let config = format!(
            "version = 1\n[sms]\nenabled = true\nallowed_prefixes = [\"+49\"]\n[sms.kannel]\nurl = \"{url}\"\nusername = \"twofold\"\npassword_file = \"{}\"\ntimeout_seconds = {timeout}\n{}",
            file.display(),
            crate::sms::local_port::local_user_line()
        );
        let config = twofold_config::Config::parse(&config, "test").unwrap();
        KannelTransport::new(config.sms.kannel.as_ref().unwrap()).unwrap()
    }

    fn sms() -> Sms {
        Sms {
            to: "+4915112345678".into(),
            text: "123456 is your code".into(),
            valid_minutes: 5,
            report_url: None,
        }
    }

    #[tokio::test]
    async fn a_503_is_tried_once_more_a_timeout_is_not_and_a_long_answer_is_cut() {
        use crate::sms::test_gateway::gateway;
        use std::sync::atomic::Ordering::SeqCst;
        let dir = tempfile::tempdir().unwrap();
        let (url, count) = gateway(
            "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 36\r\nConnection: close\r\n\r\nTemporal failure, try again later.\r\n",
        );
        let e = transport(dir.path(), &url, 5)
            .send(&sms())
            .await
            .unwrap_err();
        assert!(matches!(e, SmsError::Unavailable(_)), "{e}");
        assert_eq!(count.load(SeqCst), 2, "tried once more");

        // Accepted and never answered: Kannel may have the text; one request only.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/cgi-bin/sendsms", silent.local_addr().unwrap());
        let started = crate::clock::monotonic();
        let e = transport(dir.path(), &url, 1)
            .send(&sms())
            .await
            .unwrap_err();
        assert_eq!(
            e,
            SmsError::Unavailable("no answer within the timeout".into())
        );
        assert!(
            started.elapsed() < std::time::Duration::from_millis(1900),
            "retried"
        );
        drop(silent);

        // A gateway that goes on and on: read up to MAX_ANSWER, no more.
        let huge: &'static str = Box::leak(
            format!(
                "HTTP/1.1 202 Accepted\r\nContent-Length: 50000000\r\n\r\n0: Accepted{}",
                "x".repeat(1 << 20)
            )
            .into_boxed_str(),
        );
        let (url, _) = gateway(huge);
        let started = crate::clock::monotonic();
        let sent = transport(dir.path(), &url, 5).send(&sms()).await;
        assert_eq!(sent, Ok(Accepted::Sent));
        assert!(started.elapsed() < std::time::Duration::from_secs(3));
    }
}
