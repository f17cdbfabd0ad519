//! The SMTP adapter (`mail::SmtpMailer`) against a real SMTP server: aiosmtpd (Debian's
//! python3-aiosmtpd), which keeps every message it accepts as a file. In clear to a
//! server on this machine; over STARTTLS with the server's certificate trusted through
//! `ca_file`, and refused without it; bounded by the timeout against a server that never
//! answers; and no password file that everyone can read.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use twofold_config::{Config, SmtpConfig};
use twofold_daemon::mail::{Mail, MailError, Mailer, SmtpMailer};

struct Server {
    child: Child,
    port: u16,
    maildir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// aiosmtpd on 127.0.0.1, storing into DIR/mail (which must not exist yet); with a
/// certificate it offers STARTTLS.
fn start(dir: &Path, tls: Option<(&Path, &Path)>) -> Server {
    let port = free_port();
    let maildir = dir.join("mail");
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
        .args(["-c", "aiosmtpd.handlers.Mailbox"])
        .arg(&maildir)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some((cert, key)) = tls {
        cmd.arg("--tlscert").arg(cert).arg("--tlskey").arg(key);
    }
    let child = cmd
        .spawn()
        .expect("/usr/bin/python3 with python3-aiosmtpd (scripts/packages.txt: tests)");
    let server = Server {
        child,
        port,
        maildir,
    };
    let deadline = twofold_daemon::clock::monotonic() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            twofold_daemon::clock::monotonic() < deadline,
            "aiosmtpd did not start on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

/// A company CA and a certificate it signed for `localhost`: (CA cert, cert, key).
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let p = |name: &str| dir.join(name);
    let openssl = |args: &[&str]| {
        let ok = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl")
            .success();
        assert!(ok, "openssl {args:?}");
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=Test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "key.pem",
        "-out",
        "req.pem",
    ]);
    std::fs::write(
        p("ext.cnf"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "req.pem",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "ext.cnf",
        "-out",
        "cert.pem",
    ]);
    (p("ca.pem"), p("cert.pem"), p("key.pem"))
}

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

/// The messages the server stored.
fn delivered(server: &Server) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(server.maildir.join("new")) else {
        return Vec::new();
    };
    entries
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect()
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
    let got = delivered(&server);
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
    assert!(delivered(&server).is_empty(), "sent to an untrusted server");
    let trusted =
        SmtpMailer::new(&smtp(&format!("{base}ca_file = \"{}\"\n", ca.display()))).unwrap();
    send(&trusted, &mail()).unwrap();
    assert_eq!(delivered(&server).len(), 1);
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
