//! Codes by SMS through the `[sms.http]` gateway template and the real parts: pamtester
//! and the real pam_twofold.so, a real twofoldd, and an HTTPS server with a test CA
//! standing in for a commercial gateway (tests/src/https.rs). `sms` at the prompt sends
//! one request whose body holds the number and the text, with the credential from its
//! file; the code typed in passes. A 401, a 503, an answer that does not match `success`
//! and a certificate the configured CA did not sign each fail as they should.

use std::time::{Duration, Instant};
use twofold_integration::https::{Gateway, Request};
use twofold_integration::sms::{NUMBER, ask_for_a_text, code_in, ready_to_text, sms_config};
use twofold_integration::*;

const WAIT: Duration = Duration::from_secs(10);
const QUEUED: &str = r#"{"sid": "SM0123", "status": "queued", "to": "+4915112345678"}"#;

/// A daemon texting through `[sms.http]` with `section`, the user enrolled with an app
/// and `NUMBER` on record, and the service `twofold` whose pam.d line says a password
/// came first (`offer_enrolment`). Returns the world and the app's secret.
fn world_with(section: &str, extra: &str) -> (World, String) {
    let w = World::start(&sms_config(extra, &format!("[sms.http]\n{section}")));
    let secret = ready_to_text(&w);
    (w, secret)
}

/// `[sms.http]` for `gateway` as a JSON API with a bearer token in `Authorization`;
/// returns the section and the token.
fn json_section(gateway: &Gateway, success: &str) -> (String, String) {
    let token = format!("Bearer {}", random_hex());
    let file = gateway.dir().join("sms-bearer");
    write_secret_file(&file, &token);
    let section = format!(
        "url = \"{}\"\nbody = \"json\"\nfields = {{ to = \"{{phone}}\", text = \"{{text}}\", from = \"twofold\" }}\nheader_name = \"Authorization\"\nheader_file = \"{}\"\nsuccess = '{success}'\nca_file = \"{}\"\n",
        gateway.url("/v1/messages"),
        file.display(),
        gateway.ca_file().display()
    );
    (section, token)
}

/// The one request `gateway` got (after `before` earlier ones).
fn the_request(gateway: &Gateway, before: usize, w: &World) -> Request {
    let seen = gateway.wait_for_requests(before + 1, WAIT);
    assert_eq!(seen.len(), before + 1, "{seen:?}\n{}", w.daemon_log());
    seen[before].clone()
}

#[test]
fn sms_at_the_prompt_posts_json_with_the_header_from_its_file_and_the_code_logs_in() {
    let gateway = Gateway::start(201, QUEUED);
    let (section, token) = json_section(&gateway, r#""status": ?"queued""#);
    let (w, _) = world_with(&section, "");
    let mut login = ask_for_a_text(&w);
    let r = the_request(&gateway, 0, &w);
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("POST", "/v1/messages")
    );
    assert_eq!(r.headers["content-type"], "application/json");
    assert_eq!(r.headers["authorization"], token);
    let body: serde_json::Value = serde_json::from_str(&r.body).expect("a JSON body");
    assert_eq!(body["to"], NUMBER, "{}", r.body);
    assert_eq!(body["from"], "twofold", "{}", r.body);
    let text = body["text"].as_str().expect("the text").to_owned();
    assert!(
        text.contains("is your twofold login code for twofold on")
            && text.contains("valid 5 min. Not you? Tell IT"),
        "{text}"
    );
    let code = code_in(&text);
    login.line(&code);
    let run = login.finish();
    assert!(run.passed(), "{run:?}\n{}", w.daemon_log());
    println!(
        "proved: 'sms' at the prompt -> one HTTPS POST /v1/messages, JSON {{to: {NUMBER}, text: <code…>, from}}, Authorization from header_file, verified against ca_file; the code typed in passed"
    );
    let log = w.daemon_log();
    assert!(
        !log.contains(&code) && !log.contains(NUMBER) && !log.contains(&token[7..]),
        "{log}"
    );
    assert_eq!(gateway.requests().len(), 1, "one request, no retry");
    println!("proved: neither the code, the number nor the token is in twofoldd's log");
}

#[test]
fn a_put_form_with_basic_auth_carries_the_number_encoded_and_the_code_logs_in() {
    let gateway = Gateway::start(200, "OK");
    let password = random_hex();
    let file = gateway.dir().join("sms-password");
    write_secret_file(&file, &password);
    let (w, _) = world_with(
        &format!(
            "url = \"{}\"\nmethod = \"put\"\nfields = {{ To = \"{{phone}}\", Body = \"{{text}}\", From = \"+15005550006\" }}\nusername = \"AC0123\"\npassword_file = \"{}\"\nca_file = \"{}\"\n",
            gateway.url("/2010-04-01/Accounts/AC0123/Messages.json"),
            file.display(),
            gateway.ca_file().display()
        ),
        "",
    );
    let mut login = w.pam_typing("twofold", me());
    login.line("sms");
    let shown = login.wait_for("valid 5 min: ");
    assert!(
        shown.contains("Code sent by SMS"),
        "{shown}\n{}",
        w.daemon_log()
    );
    let r = the_request(&gateway, 0, &w);
    assert_eq!(r.method, "PUT");
    assert_eq!(
        r.path, "/2010-04-01/Accounts/AC0123/Messages.json",
        "nothing in the URL"
    );
    assert_eq!(
        r.headers["content-type"],
        "application/x-www-form-urlencoded"
    );
    let basic = data_encoding::BASE64.encode(format!("AC0123:{password}").as_bytes());
    assert_eq!(r.headers["authorization"], format!("Basic {basic}"));
    let fields: Vec<(&str, &str)> = r
        .body
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .collect();
    assert!(fields.contains(&("To", "%2B4915112345678")), "{}", r.body);
    assert!(fields.contains(&("From", "%2B15005550006")), "{}", r.body);
    let (_, text) = fields.iter().find(|(k, _)| *k == "Body").expect("Body");
    assert!(
        text.contains("+is+your+twofold+login+code+for+twofold+on+"),
        "{text}"
    );
    login.line(&code_in(text));
    let run = login.finish();
    assert!(run.passed(), "{run:?}\n{}", w.daemon_log());
    println!(
        "proved: method = \"put\" with a form body: To=%2B4915112345678 (the + encoded), Basic auth from password_file; any 2xx without `success` is sent; the code passed"
    );
}

/// `sms` at the prompt once more (the limits reset first); returns the run and how long
/// the answer took.
fn ask(w: &World) -> (PamRun, Duration) {
    let out = w.ctl(&["unlock", me()], "");
    assert!(out.status.success(), "{}", combined(&out));
    let started = Instant::now();
    let run = w.pam("twofold", me(), "sms\n");
    (run, started.elapsed())
}

#[test]
fn a_401_a_503_and_an_answer_not_matching_success_are_told_at_once() {
    let gateway = Gateway::start(401, r#"{"code": 20003, "message": "Authenticate"}"#);
    let (section, token) = json_section(&gateway, r#""status": ?"queued""#);
    let (w, _) = world_with(&section, "");

    let (run, took) = ask(&w);
    assert!(
        run.has("The text could not be sent (the SMS gateway refused it)"),
        "{run:?}\n{}",
        w.daemon_log()
    );
    assert!(took < Duration::from_secs(5), "told after {took:?}");
    assert_eq!(gateway.requests().len(), 1, "a 401 is not tried again");
    let log = w.daemon_log();
    assert!(
        log.contains(r#"HTTP 401 "{\"code\": 20003, \"message\": \"Authenticate\"}""#),
        "{log}"
    );
    println!(
        "proved: a 401 is a refusal, told in {took:?}, sent once, logged with its status and the answer's start"
    );

    gateway.answer(503, "Service Unavailable");
    let (run, took) = ask(&w);
    assert!(
        run.has("The text could not be sent (the SMS gateway is unavailable)"),
        "{run:?}\n{}",
        w.daemon_log()
    );
    assert!(took < Duration::from_secs(5), "told after {took:?}");
    assert_eq!(gateway.requests().len(), 3, "a 503 is tried once more");
    assert!(
        w.daemon_log()
            .contains(r#"HTTP 503 "Service Unavailable"; tried again: HTTP 503"#),
        "{}",
        w.daemon_log()
    );
    println!("proved: a 503 is 'unavailable', tried once more, told in {took:?}");

    // A 2xx that says the message failed, echoing number and text: a refusal, and the
    // echo is not repeated.
    let echo = format!(
        r#"{{"status": "failed", "to": "{NUMBER}", "body": "123456 is your twofold login code"}}"#
    );
    gateway.answer(200, &echo);
    let (run, _) = ask(&w);
    assert!(
        run.has("The text could not be sent (the SMS gateway refused it)"),
        "{run:?}\n{}",
        w.daemon_log()
    );
    let seen = gateway.requests();
    assert_eq!(seen.len(), 4, "a mismatch is not tried again");
    let sent: serde_json::Value = serde_json::from_str(&seen[3].body).unwrap();
    let code = code_in(sent["text"].as_str().unwrap());
    let log = w.daemon_log();
    assert!(
        log.contains("HTTP 200: the answer did not match `success`"),
        "{log}"
    );
    assert!(
        !log.contains(NUMBER)
            && !log.contains("\"failed\"")
            && !log.contains(&code)
            && !log.contains(&token[7..]),
        "{log}"
    );
    println!(
        "proved: a 200 whose body does not match `success` is a refusal; the log names the status only, not the echoed number, text or code"
    );
}

#[test]
fn a_certificate_the_ca_file_did_not_sign_gets_no_text() {
    let gateway = Gateway::start(201, QUEUED);
    let other = tempfile::tempdir().unwrap();
    let (other_ca, _, _) = smtp::certificates(other.path());
    let (section, _) = json_section(&gateway, r#""status": ?"queued""#);
    let section = section.replace(
        &gateway.ca_file().display().to_string(),
        &other_ca.display().to_string(),
    );
    assert!(section.contains(&other_ca.display().to_string()));
    let (w, secret) = world_with(&section, "");
    let mut login = w.pam_typing("twofold", me());
    login.line("sms");
    let shown = login.wait_for("Use your authenticator app, or try again later.");
    assert!(
        shown.contains("The text could not be sent (the SMS gateway is unavailable)"),
        "{shown}\n{}",
        w.daemon_log()
    );
    login.line(&fresh_code(&secret));
    let run = login.finish();
    assert!(run.passed(), "{run:?}");
    assert!(gateway.requests().is_empty(), "{:?}", gateway.requests());
    let log = w.daemon_log();
    assert!(
        log.contains("TLS: the gateway's certificate was refused: not signed by a trusted CA"),
        "{log}"
    );
    assert!(
        !log.contains("tried again"),
        "a certificate is not tried twice: {log}"
    );
    println!(
        "proved: a server certificate not signed by ca_file: no request reached it, the log says 'TLS: the gateway's certificate was refused: not signed by a trusted CA'; the app's code still passed"
    );
    drop(w);

    // Without ca_file the system's CAs decide: the test CA is not one of them.
    let section = section
        .lines()
        .filter(|l| !l.starts_with("ca_file"))
        .collect::<Vec<_>>()
        .join("\n");
    let (w, _) = world_with(&format!("{section}\n"), "");
    let run = w.pam("twofold", me(), "sms\n");
    assert!(
        run.has("(the SMS gateway is unavailable)"),
        "{run:?}\n{}",
        w.daemon_log()
    );
    assert!(gateway.requests().is_empty());
    assert!(
        w.daemon_log()
            .contains("TLS: the gateway's certificate was refused: not signed by a trusted CA"),
        "{}",
        w.daemon_log()
    );
    println!(
        "proved: without ca_file the system's CAs are used and the test CA is refused too; there is no key to turn verification off"
    );
}
