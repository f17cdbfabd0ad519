//! The SMTP adapter (`mail::SmtpMailer`) against a real SMTP server: aiosmtpd (Debian's
//! python3-aiosmtpd), which keeps every message it accepts as a file. In clear to a
//! server on this machine; over STARTTLS with the server's certificate trusted through
//! `ca_file`, and refused without it; bounded by the timeout against a server that never
//! answers; and no password file that everyone can read.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;
use twofold_config::{Config, SmtpConfig};
use twofold_daemon::mail::{Mail, MailError, Mailer, SmtpMailer};
use twofold_integration::smtp::{certificates, start};

fn smtp(section: &str) -> SmtpConfig {
    Config::parse(&format!("version = 1\n[smtp]\n{section}"), "test")
        .unwrap()
        .smtp
        .unwrap()
}

fn mail() -> Mail {
    Mail {
        to: "Alice <alice@example.org>".into(),
        subject: "twofold: a test".into(),
        body: "Hello from twofold.\n".into(),
    }
}

fn send(mailer: &SmtpMailer, m: &Mail) -> Result<(), MailError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(mailer.send(m))
}

#[test]
fn a_message_is_delivered_in_clear_to_a_server_on_this_machine() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), None);
    let c = smtp(&format!(
        "host = \"127.0.0.1\"\nport = {}\nsecurity = \"none\"\nfrom = \"twofold <twofold@host.example>\"\n",
        server.port
    ));
    let mailer = SmtpMailer::new(&c).unwrap();
    send(&mailer, &mail()).unwrap();
    let got = server.delivered();
    assert_eq!(got.len(), 1, "{got:?}");
    let m = &got[0];
    for part in [
        "Subject: twofold: a test",
        "To: Alice <alice@example.org>",
        "From: twofold <twofold@host.example>",
        "Content-Type: text/plain",
        "Hello from twofold.",
    ] {
        assert!(m.contains(part), "{part:?} missing in:\n{m}");
    }
}

#[test]
fn starttls_delivers_with_the_certificate_trusted_and_refuses_without() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates(dir.path());
    let server = start(dir.path(), Some((&cert, &key)));
    let base = format!(
        "host = \"localhost\"\nport = {}\nfrom = \"twofold@host.example\"\ntimeout_seconds = 5\n",
        server.port
    );
    let untrusted = SmtpMailer::new(&smtp(&base)).unwrap();
    let err = send(&untrusted, &mail()).unwrap_err();
    assert!(matches!(err, MailError::Delivery(_)), "{err}");
    assert!(server.delivered().is_empty(), "sent to an untrusted server");
    let trusted =
        SmtpMailer::new(&smtp(&format!("{base}ca_file = \"{}\"\n", ca.display()))).unwrap();
    send(&trusted, &mail()).unwrap();
    assert_eq!(server.delivered().len(), 1);
}

#[test]
fn a_server_that_never_answers_is_given_up_on_within_the_timeout() {
    // Accepts connections and says nothing (no greeting).
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        std::thread::sleep(Duration::from_secs(5));
        drop(stream);
    });
    let c = smtp(&format!(
        "host = \"127.0.0.1\"\nport = {port}\nsecurity = \"none\"\nfrom = \"a@b.example\"\ntimeout_seconds = 1\n"
    ));
    let started = twofold_daemon::clock::monotonic();
    let err = send(&SmtpMailer::new(&c).unwrap(), &mail()).unwrap_err();
    assert!(matches!(err, MailError::Delivery(_)), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    held.join().unwrap();
}

#[test]
fn a_password_file_everyone_can_read_is_refused_and_no_password_is_shown() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("smtp-password");
    std::fs::write(&file, "s3cret-pass\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let c = smtp(&format!(
        "host = \"mail.example.org\"\nfrom = \"a@b.example\"\nusername = \"tf\"\npassword_file = \"{}\"\n",
        file.display()
    ));
    let err = SmtpMailer::new(&c).err().expect("refused");
    assert!(err.to_string().contains("readable by everyone"), "{err}");
    assert!(!err.to_string().contains("s3cret"), "{err}");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(SmtpMailer::new(&c).is_ok());
}

#[test]
fn a_bad_recipient_is_refused_before_anything_is_sent() {
    let c = smtp("host = \"127.0.0.1\"\nport = 9\nsecurity = \"none\"\nfrom = \"a@b.example\"\n");
    let bad = Mail {
        to: "alice@example.org\r\nBcc: eve@example.org".into(),
        ..mail()
    };
    let err = send(&SmtpMailer::new(&c).unwrap(), &bad).unwrap_err();
    assert!(matches!(err, MailError::Message(_)), "{err}");
}
