//! An HTTPS server standing in for a commercial SMS gateway (`[sms.http]`): Python's
//! `http.server` behind `ssl`, with a certificate for `localhost` and `127.0.0.1` from a
//! throwaway CA of its own ([`crate::smtp::certificates`]). It answers every request
//! with the status and body last set ([`Gateway::answer`]) and records each request —
//! method, path, headers, body — before answering, so a client that got its answer finds
//! its request in [`Gateway::requests`]. A client that refuses the certificate sends
//! nothing: no request is recorded.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SERVER: &str = r#"
import http.server, json, os, ssl, sys

here, cert, key = sys.argv[1], sys.argv[2], sys.argv[3]

class Gateway(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n).decode("utf-8", "replace")
        seen = {
            "method": self.command,
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body,
        }
        with open(os.path.join(here, "requests.jsonl"), "a") as f:
            f.write(json.dumps(seen) + "\n")
        with open(os.path.join(here, "answer.json")) as f:
            a = json.load(f)
        out = a["body"].encode()
        self.send_response(a["status"])
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = do_PUT = answer

    def log_message(self, *args):
        pass

tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
tls.load_cert_chain(cert, key)
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Gateway)
server.socket = tls.wrap_socket(server.socket, server_side=True)
with open(os.path.join(here, "port.tmp"), "w") as f:
    f.write(str(server.server_address[1]))
os.rename(os.path.join(here, "port.tmp"), os.path.join(here, "port"))
server.serve_forever()
"#;

/// One request as the server saw it; header names in lower case.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

pub struct Gateway {
    dir: tempfile::TempDir,
    child: Child,
    port: u16,
}

impl Gateway {
    /// On a free port of 127.0.0.1, answering `status` with `body`.
    pub fn start(status: u16, body: &str) -> Gateway {
        let dir = tempfile::tempdir().expect("temporary directory");
        let (_ca, cert, key) = crate::smtp::certificates(dir.path());
        let script = dir.path().join("gateway.py");
        std::fs::write(&script, SERVER).expect("gateway.py");
        let gateway_dir = dir.path().to_path_buf();
        write_answer(&gateway_dir, status, body);
        let child = Command::new("/usr/bin/python3")
            .arg(&script)
            .arg(&gateway_dir)
            .arg(&cert)
            .arg(&key)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("/usr/bin/python3");
        let port_file = gateway_dir.join("port");
        let deadline = Instant::now() + Duration::from_secs(10);
        let port = loop {
            if let Some(port) = std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|p| p.trim().parse().ok())
            {
                break port;
            }
            assert!(Instant::now() < deadline, "the HTTPS gateway did not start");
            std::thread::sleep(Duration::from_millis(20));
        };
        Gateway { dir, child, port }
    }

    /// `https://127.0.0.1:PORT` and `path`.
    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    /// The CA that signed the server's certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A directory for the test's own files (credentials) beside the server's.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What the next requests are answered.
    pub fn answer(&self, status: u16, body: &str) {
        write_answer(self.dir.path(), status, body);
    }

    /// The requests so far, oldest first.
    pub fn requests(&self) -> Vec<Request> {
        std::fs::read_to_string(self.dir.path().join("requests.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("a recorded request"))
            .collect()
    }

    /// Waits (at most `limit`) until `n` requests came; returns them all.
    pub fn wait_for_requests(&self, n: usize, limit: Duration) -> Vec<Request> {
        let deadline = Instant::now() + limit;
        loop {
            let seen = self.requests();
            if seen.len() >= n || Instant::now() > deadline {
                return seen;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn write_answer(dir: &Path, status: u16, body: &str) {
    let answer = serde_json::json!({ "status": status, "body": body });
    let tmp = dir.join("answer.tmp");
    std::fs::write(&tmp, answer.to_string()).expect("answer.json");
    std::fs::rename(&tmp, dir.join("answer.json")).expect("answer.json");
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
