//! A real SMTP server for the tests: aiosmtpd (Debian's python3-aiosmtpd), which keeps
//! every message it accepts as a file, optionally with STARTTLS; and a test CA.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Server {
    child: Child,
    pub port: u16,
    pub maildir: PathBuf,
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
pub fn start(dir: &Path, tls: Option<(&Path, &Path)>) -> Server {
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

/// A company CA and a certificate it signed for `localhost` and `127.0.0.1` (the SMTP
/// tests name the host, the PostgreSQL ones its address): (CA cert, cert, key).
pub fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
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
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
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

impl Server {
    /// The messages the server stored so far.
    pub fn delivered(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.maildir.join("new")) else {
            return Vec::new();
        };
        entries
            .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
            .collect()
    }

    /// Waits up to 10 s for `n` messages.
    pub fn wait_for(&self, n: usize) -> Vec<String> {
        let deadline = twofold_daemon::clock::monotonic() + Duration::from_secs(10);
        loop {
            let got = self.delivered();
            if got.len() >= n || twofold_daemon::clock::monotonic() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The code an e-mailed-code message shows (its line of six digits).
pub fn code_in(mail: &str) -> Option<String> {
    mail.lines()
        .map(str::trim)
        .find(|l| l.len() == 6 && l.bytes().all(|b| b.is_ascii_digit()))
        .map(String::from)
}

/// The `[smtp]` section for a server on 127.0.0.1:`port` without TLS.
pub fn plain_section(port: u16, timeout_seconds: u32) -> String {
    format!(
        "[smtp]\nhost = \"127.0.0.1\"\nport = {port}\nsecurity = \"none\"\nfrom = \"twofold <twofold@test.example>\"\ntimeout_seconds = {timeout_seconds}\n"
    )
}

/// A mail server that accepts connections and never says a word; dropped, it closes.
pub struct Silent {
    pub port: u16,
    _listener: TcpListener,
    held: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

pub fn silent() -> Silent {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let accepting = listener.try_clone().unwrap();
    let keep = held.clone();
    std::thread::spawn(move || {
        for stream in accepting.incoming().flatten() {
            keep.lock().unwrap().push(stream);
        }
    });
    Silent {
        port,
        _listener: listener,
        held,
    }
}

impl Silent {
    /// Connections it accepted (and holds).
    pub fn accepted(&self) -> usize {
        self.held.lock().unwrap().len()
    }
}
