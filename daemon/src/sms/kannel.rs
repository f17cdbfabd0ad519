//! Kannel's smsbox `sendsms` HTTP interface as an [`SmsTransport`]. Kannel speaks
//! SMPP, EMI or a modem to the operator; twofoldd only makes one HTTP request per text.
//! What Kannel answers (measured with Kannel 1.4.5, see tests/src/kannel.rs): `202` with
//! `0: Accepted…` or `3: Queued…` (its link to the operator is down); `403` for a wrong
//! password or no route (for good); `503` when its queue is full. A refused connection
//! or a `503` is tried once more within 2 s.

use super::{Accepted, Sms, SmsError, SmsTransport, Texting};
use std::time::Duration;
use twofold_config::KannelConfig;

/// The pause before the one retry, and the time both tries may take before a second
/// one is not started.
const RETRY_AFTER: Duration = Duration::from_millis(500);
const RETRY_WITHIN: Duration = Duration::from_secs(2);

pub struct KannelTransport {
    client: reqwest::Client,
    url: String,
    username: String,
    password: String,
}

impl KannelTransport {
    /// Reads the password file and the CA file once, at start-up.
    pub fn new(c: &KannelConfig) -> Result<KannelTransport, SmsError> {
        let settings = |e: String| SmsError::Settings(format!("[sms.kannel] {e}"));
        let password =
            crate::credentials::read_password_file(&c.password_file.0).map_err(settings)?;
        let tls = crate::tls::client_config(c.ca_file.as_ref().map(|p| p.0.as_path()))
            .map_err(settings)?;
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(Duration::from_secs(u64::from(c.timeout_seconds.get())))
            // A gateway that redirects is not the one configured.
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .map_err(|e| settings(format!("HTTP client: {e}")))?;
        Ok(KannelTransport {
            client,
            url: c.url.0.clone(),
            username: c.username.clone(),
            password,
        })
    }

    async fn try_once(&self, sms: &Sms) -> Result<Accepted, SmsError> {
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
        let response = self
            .client
            .get(&self.url)
            .query(&query)
            .send()
            .await
            // reqwest's errors name the URL with its query: say only what kind it was.
            .map_err(|e| SmsError::Unavailable(kind_of(&e)))?;
        let status = response.status().as_u16();
        let body = response
            .text()
            .await
            .map_err(|e| SmsError::Unavailable(kind_of(&e)))?;
        judge(status, &body)
    }
}

impl SmsTransport for KannelTransport {
    fn send<'a>(&'a self, sms: &'a Sms) -> Texting<'a> {
        Box::pin(async move {
            let started = tokio::time::Instant::now();
            match self.try_once(sms).await {
                Err(SmsError::Unavailable(why)) if started.elapsed() < RETRY_WITHIN => {
                    tokio::time::sleep(RETRY_AFTER).await;
                    self.try_once(sms).await.map_err(|e| match e {
                        SmsError::Unavailable(again) => {
                            SmsError::Unavailable(format!("{why}; tried again: {again}"))
                        }
                        other => other,
                    })
                }
                other => other,
            }
        })
    }
}

/// What Kannel's answer means.
fn judge(status: u16, body: &str) -> Result<Accepted, SmsError> {
    let said: String = body.chars().filter(|c| !c.is_control()).take(80).collect();
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
    }
}
