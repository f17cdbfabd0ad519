//! The Kannel fixture itself (tests/src/kannel.rs), before any daemon relies on it: a real
//! bearerbox and smsbox with fakesmsc as the SMS centre, started by the test. A GET of
//! sendsms is accepted and the message arrives at fakesmsc with its number and text as a
//! phone would get them; delivery reports reach a dlr-url; a wrong password is refused
//! with 403; a stopped smsbox refuses connections, a frozen bearerbox leaves the request
//! unanswered (and delivers it later), a link down queues, and a full queue answers 503.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use twofold_integration::kannel::{self, Coding, Kannel, SENDER, http_get, installed_or_skip};

const WAIT: Duration = Duration::from_secs(10);

fn accepted(k: &Kannel, to: &str, text: &str) {
    let answer = k.sendsms(&[("to", to), ("text", text)], WAIT);
    assert_eq!(
        answer.as_ref().ok(),
        Some(&(202, "0: Accepted for delivery".to_string())),
        "sendsms to {to}: {answer:?}\n{}",
        k.logs()
    );
}

/// The request paths an HTTP listener on 127.0.0.1 received (each answered 200).
struct Callbacks {
    port: u16,
    paths: Arc<Mutex<Vec<String>>>,
}

fn callbacks() -> Callbacks {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let paths = Arc::new(Mutex::new(Vec::new()));
    let keep = paths.clone();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let text = String::from_utf8_lossy(&request).into_owned();
            if let Some(path) = text.split_whitespace().nth(1) {
                keep.lock().unwrap().push(path.to_string());
            }
            let _ = stream.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n");
        }
    });
    Callbacks { port, paths }
}

impl Callbacks {
    fn wait_for(&self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + WAIT;
        loop {
            let got = self.paths.lock().unwrap().clone();
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn sendsms_accepts_and_fakesmsc_gets_the_number_and_text_a_phone_would_with_delivery_reports() {
    if !installed_or_skip("kannel_fixture") {
        return;
    }
    let started = Instant::now();
    let k = Kannel::start();
    println!("Kannel::start took {:?}", started.elapsed());
    assert_eq!(
        k.sendsms_url(),
        format!("http://127.0.0.1:{}/cgi-bin/sendsms", k.sendsms_port())
    );

    // An E.164 number with its '+', a text with spaces, letters GSM 7-bit has (äöüß€),
    // and a newline: all as sent.
    let texts = [
        ("+4915112345678", "Your twofold code is 123456"),
        (
            "+4915112345678",
            "Grüße aus Köln: 654321, gültig 5 min, 2 €",
        ),
        ("+3312345678", "twofold code 777888\nnot you? tell IT"),
    ];
    for (to, text) in texts {
        accepted(&k, to, text);
        let sms = k.wait_for_message(WAIT).unwrap_or_else(|| {
            panic!("no message for {to} at fakesmsc:\n{}", k.logs());
        });
        assert_eq!(
            (
                sms.from.as_str(),
                sms.to.as_str(),
                sms.coding,
                sms.text.as_str()
            ),
            (SENDER, to, Coding::Text, text)
        );
    }

    // Characters GSM lacks: '?' in the default coding, intact as UCS-2 with the charset.
    let cyrillic = "Код 424242 😀";
    accepted(&k, "+79001234567", cyrillic);
    let sms = k
        .wait_for_message(WAIT)
        .expect("the Cyrillic text in 7-bit");
    // Each Cyrillic letter is one `?`, the emoji (four bytes of UTF-8) four.
    assert_eq!(sms.text, "??? 424242 ????", "{sms:?}");
    let answer = k.sendsms(
        &[
            ("to", "+79001234567"),
            ("text", cyrillic),
            ("coding", "2"),
            ("charset", "UTF-8"),
            ("from", "twofold"),
        ],
        WAIT,
    );
    assert_eq!(answer.unwrap().0, 202);
    let sms = k
        .wait_for_message(WAIT)
        .expect("the Cyrillic text as UCS-2");
    assert_eq!(
        (sms.from.as_str(), sms.coding, sms.text.as_str()),
        ("twofold", Coding::Ucs2, cyrillic)
    );

    // The '+' of a number the sender forgot to encode is a space: the message goes to
    // the number without it.
    let raw = format!(
        "{}?username={}&password={}&to=+4915100000001&text=raw",
        k.sendsms_url(),
        k.username(),
        k.password()
    );
    assert_eq!(http_get(&raw, WAIT).unwrap().0, 202);
    assert_eq!(k.wait_for_message(WAIT).expect("raw +").to, "4915100000001");
    println!(
        "proved: sendsms answers 202 '0: Accepted for delivery'; fakesmsc gets +E.164 numbers, \
         spaces, äöüß€ and newlines as sent, non-GSM letters as '?' unless coding=2&charset=UTF-8, \
         and an unencoded '+' is lost"
    );

    // Delivery reports: mask 31 (all) to a listener here; fakesmsc's driver reports 8
    // (the SMSC took it) and then 1 (delivered).
    let dlr = callbacks();
    let url = format!(
        "http://127.0.0.1:{}/dlr?ref=login-7&type=%d&to=%p&reply=%A",
        dlr.port
    );
    let answer = k.sendsms(
        &[
            ("to", "+4915112345678"),
            ("text", "with a report"),
            ("dlr-mask", "31"),
            ("dlr-url", &url),
        ],
        WAIT,
    );
    assert_eq!(answer.unwrap().0, 202);
    assert!(k.wait_for_message(WAIT).is_some());
    let reports = dlr.wait_for(2);
    assert_eq!(
        reports,
        [
            "/dlr?ref=login-7&type=8&to=%2B4915112345678&reply=ACK%2F",
            "/dlr?ref=login-7&type=1&to=%2B4915112345678&reply=",
        ],
        "{}",
        k.logs()
    );

    // The password file: one line, readable by its owner only.
    let file = k.dir().join("sms-password");
    k.write_password_file(&file);
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        format!("{}\n", k.password())
    );
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    println!("proved: dlr-mask=31 + dlr-url bring type 8 (ACK/) then type 1 (delivered) reports");
}

#[test]
fn a_wrong_password_gets_403_a_stopped_smsbox_refuses_and_a_link_down_queues() {
    if !installed_or_skip("kannel_fixture") {
        return;
    }
    let mut k = Kannel::start();
    let wrong = format!(
        "{}?{}",
        k.sendsms_url(),
        kannel::query(&[
            ("username", k.username()),
            ("password", "not-the-password"),
            ("to", "+4915112345678"),
            ("text", "never sent"),
        ])
    );
    let answer = http_get(&wrong, WAIT).unwrap();
    assert_eq!(
        answer,
        (403, "Authorization failed for sendsms".to_string())
    );

    // smsbox stopped: nothing listens; started again, it sends.
    k.stop_smsbox();
    let refused = k.sendsms(&[("to", "+4915112345678"), ("text", "refused")], WAIT);
    assert_eq!(
        refused.as_ref().map_err(|e| e.kind()).err(),
        Some(ErrorKind::ConnectionRefused),
        "{refused:?}"
    );
    k.start_smsbox();
    accepted(&k, "+4915112345678", "after the restart");
    let sms = k.wait_for_message(WAIT).expect("after the restart");
    assert_eq!(sms.text, "after the restart");
    println!("proved: a wrong password gets 403; a stopped smsbox refuses connections");

    // The link to the SMS centre down: queued (202 "3:"), delivered when it is back.
    k.disconnect_smsc();
    let queued = k.sendsms(&[("to", "+4915112345678"), ("text", "queued")], WAIT);
    assert_eq!(
        queued.unwrap(),
        (202, "3: Queued for later delivery".to_string())
    );
    assert!(k.wait_for_message(Duration::from_millis(300)).is_none());
    k.reconnect_smsc();
    let sms = k.wait_for_message(WAIT).expect("the queued message");
    assert_eq!(sms.text, "queued");
    assert_eq!(k.messages().len(), 2, "{:?}", k.messages());
    println!("proved: with the SMSC link down sendsms answers '3: Queued', delivered on reconnect");
}

#[test]
fn with_a_queue_limit_of_zero_and_the_link_down_sendsms_answers_503_and_keeps_nothing() {
    if !installed_or_skip("kannel_fixture") {
        return;
    }
    let mut k = Kannel::start_with_queue_limit(0);
    accepted(&k, "+4915112345678", "link up");
    assert!(k.wait_for_message(WAIT).is_some());
    k.disconnect_smsc();
    let answer = k.sendsms(&[("to", "+4915112345678"), ("text", "refused")], WAIT);
    assert_eq!(
        answer.unwrap(),
        (503, "Temporal failure, try again later.".to_string())
    );
    k.reconnect_smsc();
    assert!(k.wait_for_message(Duration::from_secs(1)).is_none());
    accepted(&k, "+4915112345678", "link back");
    assert_eq!(
        k.wait_for_message(WAIT).expect("link back").text,
        "link back"
    );
    println!("proved: a full queue (limit 0, link down) answers 503 and the message is not kept");
}
