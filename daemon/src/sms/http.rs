//! `[sms.http]`: a commercial gateway's HTTP interface (Twilio, MessageBird, a company's
//! relay), described by a template, as an [`SmsTransport`]. One `POST` (or `PUT`) per
//! text to a fixed URL; the number and the text only in the body, a form or a JSON object
//! filled from `fields`; the credential from a file, as HTTP basic or one header. A 2xx
//! answer whose body matches `success` is a sent text; another 2xx, a redirect or a 4xx
//! (but 429) is a refusal; a 429, a 5xx or no connection is tried once more within 2 s.
//! A timeout is not tried again: the gateway may have the text already, and a second
//! request would send (and bill) it twice.
//!
//! Errors name the status and, for a refusal or a failure, at most 80 characters of the
//! answer with the number, the text, the credential and any run of 6 or more digits
//! taken out (gateways echo what they were sent, and a code is 6 digits). A 2xx answer
//! that does not match `success` is not quoted at all: such an answer describes the
//! message, number and text included (Twilio's does).

use super::{Accepted, Sms, SmsError, SmsTransport, Texting, quote};
use reqwest::header::{HeaderName, HeaderValue};
use std::collections::BTreeMap;
use std::time::Duration;
use twofold_config::{FieldTemplate, HttpAuth, HttpBody, HttpGatewayConfig, HttpMethod};

/// The pause before the one retry, and the time the first try may take for a second one
/// to be started (as for Kannel).
const RETRY_AFTER: Duration = Duration::from_millis(500);
const RETRY_WITHIN: Duration = Duration::from_secs(2);
/// The most of an answer that is read (to match `success` and to quote from).
const MAX_ANSWER: usize = 64 * 1024;

enum Auth {
    None,
    Basic {
        username: String,
        password: String,
    },
    Header {
        name: HeaderName,
        value: HeaderValue,
    },
}

pub struct HttpTransport {
    client: reqwest::Client,
    url: String,
    method: reqwest::Method,
    body: HttpBody,
    fields: Vec<(String, FieldTemplate)>,
    auth: Auth,
    /// What the gateway might echo and an error must not repeat.
    secret: Option<String>,
    success: Option<regex::Regex>,
    /// Who must hold a plain-http gateway's port on this machine.
    port_owner: Option<super::local_port::PortOwner>,
}

/// One try's end: done (sent, or failed for a reason a second try would not change), or
/// worth one more try.
#[derive(Debug, PartialEq)]
enum Try {
    Done(Result<Accepted, SmsError>),
    Again(String),
}

impl HttpTransport {
    /// Reads the credential file and the CA file once, at start-up.
    pub fn new(c: &HttpGatewayConfig) -> Result<HttpTransport, SmsError> {
        let settings = |e: String| SmsError::Settings(format!("[sms.http] {e}"));
        let (auth, secret) = match c.auth() {
            HttpAuth::None => (Auth::None, None),
            HttpAuth::Basic {
                username,
                password_file,
            } => {
                let password =
                    crate::credentials::read_password_file(&password_file.0).map_err(settings)?;
                let auth = Auth::Basic {
                    username: username.to_owned(),
                    password: password.clone(),
                };
                (auth, Some(password))
            }
            HttpAuth::Header { name, file } => {
                let text = crate::credentials::read_password_file(&file.0).map_err(settings)?;
                let name = HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| settings(format!("header_name {name:?} is not a header name")))?;
                let mut value = HeaderValue::from_str(&text).map_err(|_| {
                    settings(format!(
                        "{}: its first line is not a usable header value",
                        file.0.display()
                    ))
                })?;
                value.set_sensitive(true);
                (Auth::Header { name, value }, Some(text))
            }
        };
        let success = c
            .success
            .as_ref()
            .map(|p| p.regex())
            .transpose()
            .map_err(settings)?;
        let client = super::http_client(
            c.ca_file.as_ref().map(|p| p.0.as_path()),
            c.timeout_seconds.get(),
        )
        .map_err(settings)?;
        let port_owner = super::local_port::PortOwner::for_url(&c.url, c.local_user.as_deref())
            .map_err(settings)?;
        Ok(HttpTransport {
            port_owner,
            client,
            url: c.url.0.clone(),
            method: match c.method {
                HttpMethod::Post => reqwest::Method::POST,
                HttpMethod::Put => reqwest::Method::PUT,
            },
            body: c.body,
            fields: c
                .fields
                .iter()
                .map(|(n, t)| (n.clone(), t.clone()))
                .collect(),
            auth,
            secret,
            success,
        })
    }

    /// The request for one text.
    fn request(&self, sms: &Sms) -> reqwest::RequestBuilder {
        let values: Vec<(&str, String)> = self
            .fields
            .iter()
            .map(|(name, t)| (name.as_str(), t.fill(&sms.to, &sms.text)))
            .collect();
        let request = self.client.request(self.method.clone(), &self.url);
        let request = match self.body {
            HttpBody::Form => request.form(&values),
            HttpBody::Json => request.json(&values.into_iter().collect::<BTreeMap<_, _>>()),
        };
        match &self.auth {
            Auth::None => request,
            Auth::Basic { username, password } => request.basic_auth(username, Some(password)),
            Auth::Header { name, value } => request.header(name.clone(), value.clone()),
        }
    }

    async fn try_once(&self, sms: &Sms) -> Try {
        if let Some(Err(e)) = self.port_owner.as_ref().map(|o| o.check()) {
            // Nothing went out: worth one more look.
            return Try::Again(format!("the gateway on this machine: {e}"));
        }
        let mut response = match self.request(sms).send().await {
            Ok(r) => r,
            Err(e) => return failed(&e),
        };
        let status = response.status().as_u16();
        if (200..=299).contains(&status) && self.success.is_none() {
            return Try::Done(Ok(Accepted::Sent));
        }
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = MAX_ANSWER - body.len();
                    body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    if body.len() >= MAX_ANSWER {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    return Try::Done(Err(SmsError::Unavailable(format!(
                        "HTTP {status}, then {}",
                        kind_of(&e)
                    ))));
                }
            }
        }
        let body = String::from_utf8_lossy(&body);
        let mut hidden = vec![sms.to.as_str(), sms.to.trim_start_matches('+'), &sms.text];
        if let Some(secret) = &self.secret {
            hidden.push(secret);
            hidden.extend(secret.split_whitespace().filter(|w| w.len() >= 8));
        }
        judge(status, &body, self.success.as_ref(), &hidden)
    }
}

impl SmsTransport for HttpTransport {
    fn send<'a>(&'a self, sms: &'a Sms) -> Texting<'a> {
        Box::pin(async move {
            let started = tokio::time::Instant::now();
            match self.try_once(sms).await {
                Try::Done(result) => result,
                Try::Again(why) if started.elapsed() < RETRY_WITHIN => {
                    tokio::time::sleep(RETRY_AFTER).await;
                    match self.try_once(sms).await {
                        Try::Done(Err(SmsError::Unavailable(again))) | Try::Again(again) => Err(
                            SmsError::Unavailable(format!("{why}; tried again: {again}")),
                        ),
                        Try::Done(result) => result,
                    }
                }
                Try::Again(why) => Err(SmsError::Unavailable(why)),
            }
        })
    }
}

/// What the gateway's answer means. `hidden`: what the quote must not show.
fn judge(status: u16, body: &str, success: Option<&regex::Regex>, hidden: &[&str]) -> Try {
    let quoted = || {
        let q = quote(body, hidden);
        if q.is_empty() {
            format!("HTTP {status}")
        } else {
            format!("HTTP {status} {q:?}")
        }
    };
    match status {
        200..=299 => match success {
            Some(pattern) if !pattern.is_match(body) => Try::Done(Err(SmsError::Refused(format!(
                "HTTP {status}: the answer did not match `success`"
            )))),
            _ => Try::Done(Ok(Accepted::Sent)),
        },
        429 | 500..=599 => Try::Again(quoted()),
        300..=399 => Try::Done(Err(SmsError::Refused(format!(
            "HTTP {status}: the gateway redirects elsewhere; set url to where it points"
        )))),
        _ => Try::Done(Err(SmsError::Refused(quoted()))),
    }
}

/// A request that got no answer.
fn failed(e: &reqwest::Error) -> Try {
    if let Some(tls) = tls_failure(e) {
        // A certificate that is not trusted stays so: no second try.
        return Try::Done(Err(SmsError::Unavailable(tls)));
    }
    if e.is_connect() {
        return Try::Again("cannot connect".into());
    }
    Try::Done(Err(SmsError::Unavailable(kind_of(e))))
}

fn kind_of(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "no answer within the timeout".into()
    } else if e.is_body() || e.is_decode() {
        "the answer was cut short".into()
    } else {
        "the request failed".into()
    }
}

/// The TLS failure under `e`, by kind only (no names or certificate contents).
fn tls_failure(e: &reqwest::Error) -> Option<String> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cause {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(describe_tls(tls));
        }
        // An `io::Error`'s `source()` skips the error it wraps (hyper-rustls wraps
        // tokio-rustls's, which wraps rustls's): look into it instead.
        cause = match err.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    None
}

fn describe_tls(e: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    let why = match e {
        rustls::Error::InvalidCertificate(c) => match c {
            // BadSignature: a trusted CA has the issuer's name, but did not sign it.
            C::UnknownIssuer | C::BadSignature => {
                "not signed by a trusted CA (ca_file, or the system's CAs)"
            }
            C::NotValidForName | C::NotValidForNameContext { .. } => "not for the URL's host",
            C::Expired | C::ExpiredContext { .. } => "expired",
            C::NotValidYet | C::NotValidYetContext { .. } => "not valid yet",
            C::Revoked => "revoked",
            C::InvalidPurpose | C::InvalidPurposeContext { .. } => "not for a server",
            _ => "invalid",
        },
        _ => return "TLS: the handshake with the gateway failed".into(),
    };
    format!("TLS: the gateway's certificate was refused: {why}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const NUMBER: &str = "+4915112345678";

    fn transport(section: &str) -> HttpTransport {
        let owner = if section.contains("url = \"http://") {
            crate::sms::local_port::local_user_line()
        } else {
            String::new()
        };
        let text = format!(
            "version = 1\n[sms]\nenabled = true\nallowed_prefixes = [\"+49\"]\n[sms.http]\n{section}{owner}"
        );
        let config = twofold_config::Config::parse(&text, "t").unwrap();
        HttpTransport::new(config.sms.http.as_ref().unwrap()).unwrap()
    }

    fn secret_file(dir: &tempfile::TempDir, text: &str) -> String {
        let path = dir.path().join("secret");
        std::fs::write(&path, format!("{text}\n")).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        path.display().to_string()
    }

    fn sms(text: &str) -> Sms {
        Sms {
            to: NUMBER.into(),
            text: text.into(),
            valid_minutes: 5,
            report_url: None,
        }
    }

    fn built(t: &HttpTransport, s: &Sms) -> reqwest::Request {
        t.request(s).build().unwrap()
    }

    fn body_of(r: &reqwest::Request) -> String {
        String::from_utf8(r.body().unwrap().as_bytes().unwrap().to_vec()).unwrap()
    }

    #[tokio::test]
    async fn a_json_body_escapes_the_text_and_the_header_comes_from_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = secret_file(&dir, "Bearer tok-0123456789");
        let t = transport(&format!(
            "url = \"https://sms.example/v1/messages?account=7\"\nmethod = \"put\"\nbody = \"json\"\nfields = {{ to = \"{{phone}}\", text = \"{{text}}\", from = \"twofold\", note = \"for {{phone}}: {{text}}\" }}\nheader_name = \"Authorization\"\nheader_file = \"{file}\"\n"
        ));
        let r = built(&t, &sms("He said \"hi\"\\\nnext {phone}"));
        assert_eq!(r.method(), reqwest::Method::PUT);
        assert_eq!(
            r.url().as_str(),
            "https://sms.example/v1/messages?account=7",
            "nothing of the text in the URL"
        );
        assert_eq!(r.headers()["content-type"], "application/json");
        let auth = &r.headers()["authorization"];
        assert_eq!(auth, "Bearer tok-0123456789");
        assert!(auth.is_sensitive());
        assert_eq!(
            body_of(&r),
            r#"{"from":"twofold","note":"for +4915112345678: He said \"hi\"\\\nnext {phone}","text":"He said \"hi\"\\\nnext {phone}","to":"+4915112345678"}"#
        );
    }

    #[tokio::test]
    async fn a_form_body_encodes_the_plus_of_the_number_and_basic_auth_is_set() {
        let dir = tempfile::tempdir().unwrap();
        let file = secret_file(&dir, "s3cret:pass");
        let t = transport(&format!(
            "url = \"https://api.twilio.example/2010-04-01/Accounts/AC1/Messages.json\"\nfields = {{ To = \"{{phone}}\", From = \"+15005550006\", Body = \"{{text}}\" }}\nusername = \"AC1\"\npassword_file = \"{file}\"\n"
        ));
        let r = built(&t, &sms("123456 is your code & more=yes ü"));
        assert_eq!(r.method(), reqwest::Method::POST);
        assert_eq!(
            r.headers()["content-type"],
            "application/x-www-form-urlencoded"
        );
        assert_eq!(
            body_of(&r),
            "Body=123456+is+your+code+%26+more%3Dyes+%C3%BC&From=%2B15005550006&To=%2B4915112345678"
        );
        let basic = format!("Basic {}", data_encoding::BASE64.encode(b"AC1:s3cret:pass"));
        assert_eq!(r.headers()["authorization"], basic.as_str());
        assert!(r.headers()["authorization"].is_sensitive());
    }

    #[test]
    fn a_world_readable_credential_or_a_bad_header_value_stops_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let file = secret_file(&dir, "Bearer x\u{7}y");
        let text = format!(
            "version = 1\n[sms]\nenabled = true\nallowed_prefixes = [\"+49\"]\n[sms.http]\nurl = \"https://sms.example/\"\nfields = {{ to = \"{{phone}}\", text = \"{{text}}\" }}\nheader_name = \"Authorization\"\nheader_file = \"{file}\"\n"
        );
        let config = twofold_config::Config::parse(&text, "t").unwrap();
        let Err(e) = HttpTransport::new(config.sms.http.as_ref().unwrap()) else {
            panic!("accepted")
        };
        let said = e.to_string();
        assert!(
            said.contains("not a usable header value") && !said.contains("Bearer"),
            "the file is named, its contents are not: {said}"
        );
        std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .unwrap();
        let Err(e) = HttpTransport::new(config.sms.http.as_ref().unwrap()) else {
            panic!("accepted")
        };
        assert!(e.to_string().contains("readable by everyone"), "{e}");
    }

    #[test]
    fn answers_are_read_as_sent_refused_or_worth_one_more_try() {
        let re = regex::Regex::new(r#""status": ?"(queued|sent)""#).unwrap();
        let ok = Some(&re);
        let sent = Try::Done(Ok(Accepted::Sent));
        assert_eq!(judge(201, r#"{"status": "queued"}"#, ok, &[]), sent);
        assert_eq!(judge(200, "anything", None, &[]), sent);
        assert_eq!(judge(204, "", None, &[]), sent);
        let echo =
            format!(r#"{{"to": "{NUMBER}", "body": "123456 is your code", "status": "failed"}}"#);
        let Try::Done(Err(SmsError::Refused(e))) = judge(200, &echo, ok, &[]) else {
            panic!("a 2xx without the match is a refusal")
        };
        assert_eq!(
            e, "HTTP 200: the answer did not match `success`",
            "no quote"
        );
        for (status, retried) in [(429, true), (500, true), (502, true), (503, true)] {
            assert_eq!(
                matches!(judge(status, "busy", ok, &[]), Try::Again(_)),
                retried,
                "{status}"
            );
        }
        for status in [400, 401, 403, 404, 422] {
            let Try::Done(Err(SmsError::Refused(e))) = judge(status, "no", ok, &[]) else {
                panic!("{status} is a refusal")
            };
            assert_eq!(e, format!("HTTP {status} \"no\""));
        }
        assert!(matches!(
            judge(301, "", ok, &[]),
            Try::Done(Err(SmsError::Refused(_)))
        ));
        let Try::Done(Err(SmsError::Refused(e))) = judge(401, "", ok, &[]) else {
            panic!()
        };
        assert_eq!(e, "HTTP 401");
    }

    #[test]
    fn a_quoted_answer_shows_neither_number_text_code_credential_nor_control_characters() {
        let text = "123456 is your twofold login code for sshd on web1";
        let body = format!(
            "{{\"message\": \"The 'To' number {NUMBER} (4915112345678) is invalid\",\n\"code\": 21211, \"echo\": \"{text}\", \"key\": \"tok-0123456789\", \"c\": \"code 654321\"}}\u{1b}[2J"
        );
        let q = quote(
            &body,
            &[
                NUMBER,
                "4915112345678",
                text,
                "Bearer tok-0123456789",
                "tok-0123456789",
            ],
        );
        assert!(q.chars().count() <= 80, "{q}");
        assert!(
            q.starts_with(
                "{\"message\": \"The 'To' number […] ([…]) is invalid\", \"code\": 21211"
            ),
            "{q}"
        );
        let long = quote(&body.repeat(3), &[]);
        assert!(long.chars().count() <= 80);
        for bad in ["4915112345678", "123456", "654321", "tok-", "\n", "\u{1b}"] {
            assert!(
                !q.contains(bad) && !long.contains(bad),
                "{bad} in {q} / {long}"
            );
        }
        assert_eq!(quote("x\u{1b}[2J y\r\nz", &[]), "x [2J y z");
    }

    use crate::sms::test_gateway::gateway;

    const FIELDS: &str = "fields = { to = \"{phone}\", text = \"{text}\" }\n";

    #[tokio::test]
    async fn a_503_is_tried_once_more_and_a_401_is_not() {
        let (url, count) = gateway(
            "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbusy",
        );
        let t = transport(&format!("url = \"{url}\"\n{FIELDS}"));
        let e = t.send(&sms("123456 is your code")).await.unwrap_err();
        assert_eq!(
            e,
            SmsError::Unavailable("HTTP 503 \"busy\"; tried again: HTTP 503 \"busy\"".into())
        );
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 2);

        let (url, count) = gateway(
            "HTTP/1.1 401 Unauthorized\r\nContent-Length: 12\r\nConnection: close\r\n\r\nbad password",
        );
        let t = transport(&format!("url = \"{url}\"\n{FIELDS}"));
        let e = t.send(&sms("123456 is your code")).await.unwrap_err();
        assert_eq!(e, SmsError::Refused("HTTP 401 \"bad password\"".into()));
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 1);

        // Nobody listening: refused connections, twice.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let t = transport(&format!("url = \"http://127.0.0.1:{port}/\"\n{FIELDS}"));
        let e = t.send(&sms("x")).await.unwrap_err();
        // The port is looked at first: nothing is sent to it.
        assert_eq!(
            e,
            SmsError::Unavailable(format!(
                "the gateway on this machine: nothing listens on port {port}; tried again: the gateway on this machine: nothing listens on port {port}"
            ))
        );
    }
}
