//! A real SMS gateway for the tests: Kannel from Debian (`kannel`: bearerbox and smsbox
//! with its `sendsms` HTTP interface), with `fakesmsc` from `kannel-extras` playing the
//! operator's SMS centre and printing every message it receives. Each [`Kannel`] writes its
//! own `kannel.conf` into a temporary directory, runs the three programs on free loopback
//! ports as the test's own account (root or not: nothing here needs privileges, no pid
//! file is written and no account is switched to), and stops them when dropped.
//!
//! # What a sender sees (Kannel 1.4.5 on Debian 12, measured)
//! - `GET /cgi-bin/sendsms?username=..&password=..&to=..&text=..` answers `202` with
//!   `0: Accepted for delivery`, or `202` `3: Queued for later delivery` while the link
//!   to the SMS centre is down ([`Kannel::disconnect_smsc`]; the message goes out once
//!   it is back).
//! - A wrong username or password: `403` `Authorization failed for sendsms`.
//! - No route at all (the SMSC stopped through the admin interface): `403`
//!   `Not routable. Do not try again.`.
//! - A full queue: `503` `Temporal failure, try again later.`. Kannel answers 503 only when
//!   bearerbox refuses a message for `sms-outgoing-queue-limit`: start with
//!   [`Kannel::start_with_queue_limit`]`(0)` and take the link down
//!   ([`Kannel::disconnect_smsc`]) and every send gets 503. (With limit 0 Kannel also
//!   counts the fake driver's own queue, so concurrent sends may get 503 while the link is
//!   up; [`Kannel::start`] keeps Kannel's default, no limit.)
//! - smsbox not running ([`Kannel::stop_smsbox`]): the connection is refused. smsbox also
//!   exits by itself when bearerbox goes away.
//! - Kannel has no switch to make sendsms hang: its admin `/suspend` still lets the next
//!   message through. [`Kannel::freeze`] stops bearerbox (SIGSTOP): smsbox accepts the
//!   connection and the request and never answers. After [`Kannel::resume`] bearerbox
//!   takes the request and the message IS delivered, late: a client that gave up on a
//!   timeout cannot conclude that nothing was sent.
//!
//! # What fakesmsc prints
//! One line per message, `Got message N: <FROM TO TYPE DATA>` (N counts from 1 for each
//! fakesmsc process). TYPE is `text` (DATA as is: Kannel's text in UTF-8), `data` (8-bit,
//! DATA URL-encoded with `+` for space), `ucs-2` (URL-encoded UTF-16BE) or, for one part of
//! a concatenated message, `udh UDH data DATA`. [`Kannel::messages`] decodes all of them
//! into [`Sms`]. What a sender must know:
//! - The default coding is GSM 7-bit: `äöüßé€` arrive intact, a character GSM lacks (a tab,
//!   a Cyrillic letter) arrives as `?`, an emoji as `????`. For those send `coding=2&charset=UTF-8` (UCS-2;
//!   without `charset`, smsbox does not convert the text and it arrives garbled).
//! - The fake protocol is line based: a text with a newline reaches fakesmsc as several
//!   lines; [`Kannel::messages`] joins a line that is not a message (`FROM TO TYPE ...`
//!   with a known TYPE) to the one before it. A carriage return is lost.
//! - `to` must be percent-encoded: a raw `+` in the query is a space, so `to=+49…` goes
//!   to `49…`; and a space in `to` separates receivers (`to=1%202` sends two messages).
//! - A text longer than one SMS is split into parts (`max-messages = 10`,
//!   `concatenation = true`), each a separate [`Sms`] with its [`Sms::udh`].
//!
//! # Delivery reports
//! Add `dlr-mask` and `dlr-url` to the sendsms request. smsbox then calls the URL
//! (a GET, from 127.0.0.1), filling in Kannel's escapes: `%d` the report type, `%p` the
//! receiver, `%P` the sender, `%T` a Unix time, `%A` the reply text, `%I` Kannel's id of
//! that callback, `%F` the SMSC's message id. With fakesmsc (measured): mask 8 gives type
//! `8` (`%A` = `ACK/`: the SMSC took it), mask 1 gives type `1` (delivered: the fake
//! driver reports every message it handed to fakesmsc as delivered), mask 31 gives both,
//! 8 first. While the link is down nothing is reported until the message goes out
//! (no type `4`, "buffered"). A message refused as not routable (403) still gets type `16`
//! (`%A` = `NACK/no SMSC`). `%I` differs between the two reports of one message, so put
//! your own reference into the URL (`dlr-url=http://…/dlr?ref=ID&type=%d`). Reports are
//! kept in bearerbox's memory (`dlr-storage = internal`); fakesmsc never produces a
//! failure report (type 2) itself.
//!
//! Kannel takes about 0.6 s to start here (bearerbox, fakesmsc and smsbox about 0.2 s
//! each).

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const BEARERBOX: &str = "/usr/sbin/bearerbox";
pub const SMSBOX: &str = "/usr/sbin/smsbox";
pub const FAKESMSC: &str = "/usr/lib/kannel/test/fakesmsc";

/// `local_user = "<this process's account>"` for a gateway section: the gateways the
/// tests start (Kannel, stand-ins) run as the test's own account, which twofoldd must
/// find holding their port (twofoldd's sms/local_port.rs).
pub fn local_user_line() -> String {
    let me = nix::unistd::User::from_uid(nix::unistd::geteuid())
        .ok()
        .flatten()
        .map_or("root".to_owned(), |u| u.name);
    format!("local_user = \"{me}\"\n")
}

/// The sender of a message sent without `from` (smsbox's `global-sender`).
pub const SENDER: &str = "4242";

/// The sendsms account's name (its password is random, [`Kannel::password`]).
pub const USERNAME: &str = "twofold";

/// How long each program may take to come up before the test fails.
const START_LIMIT: Duration = Duration::from_secs(20);

/// How long a stopped program may take to exit before it is killed.
const STOP_LIMIT: Duration = Duration::from_secs(5);

/// Whether Kannel's programs (Debian's `kannel` and `kannel-extras`) are installed.
pub fn installed() -> bool {
    [BEARERBOX, SMSBOX, FAKESMSC]
        .iter()
        .all(|p| Path::new(p).exists())
}

/// True when Kannel is installed. Otherwise, as another user, says that `test` is skipped
/// and returns false; as root (CI, tests/run.sh, which install the `tests` packages
/// first) fails the test.
pub fn installed_or_skip(test: &str) -> bool {
    if installed() {
        return true;
    }
    let how = "Debian's kannel and kannel-extras (scripts/packages.txt: tests; \
               tests/run.sh installs them as root, or: sudo apt-get install kannel kannel-extras)";
    assert!(
        !crate::is_root(),
        "{BEARERBOX}, {SMSBOX} or {FAKESMSC} is missing: {test} needs {how}"
    );
    println!("SKIPPED: {test}: Kannel is not installed; it needs {how}");
    false
}

/// How a message's text was coded, as fakesmsc labels it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    /// GSM 7-bit (`text`).
    Text,
    /// 8-bit (`data`), also every part of a concatenated message.
    Data,
    /// UCS-2 (`ucs-2`).
    Ucs2,
}

/// One message fakesmsc received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sms {
    pub from: String,
    /// The receiver, as Kannel passed it on (e.g. `+4915112345678`).
    pub to: String,
    pub coding: Coding,
    /// The text, decoded (UTF-16 for UCS-2, lossy UTF-8 otherwise).
    pub text: String,
    /// The user data header of one part of a concatenated message.
    pub udh: Option<Vec<u8>>,
}

/// bearerbox, fakesmsc and smsbox on 127.0.0.1, configured in a temporary directory.
pub struct Kannel {
    dir: tempfile::TempDir,
    admin_port: u16,
    smsbox_port: u16,
    smsc_port: u16,
    sendsms_port: u16,
    password: String,
    admin_password: String,
    bearerbox: Option<Child>,
    fakesmsc: Option<Child>,
    smsbox: Option<Child>,
    /// How many messages [`Kannel::wait_for_message`] handed out.
    seen: AtomicUsize,
}

impl Kannel {
    /// Kannel with its default queues (no limit): with the link down, messages are queued.
    pub fn start() -> Kannel {
        Kannel::start_inner(None)
    }

    /// Kannel with `sms-outgoing-queue-limit = limit`: with the link down the first `limit`
    /// messages are queued and the next are refused with 503 (with 0, all of them).
    pub fn start_with_queue_limit(limit: u32) -> Kannel {
        Kannel::start_inner(Some(limit))
    }

    fn start_inner(queue_limit: Option<u32>) -> Kannel {
        for p in [BEARERBOX, SMSBOX, FAKESMSC] {
            assert!(
                Path::new(p).exists(),
                "{p} is missing: install Debian's kannel and kannel-extras \
                 (scripts/packages.txt: tests)"
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("twofold-kannel-")
            .tempdir()
            .expect("tempdir for Kannel");
        // Built before anything starts, so a failure below still stops what did.
        let mut kannel = Kannel {
            dir,
            admin_port: crate::free_port(),
            smsbox_port: crate::free_port(),
            smsc_port: crate::free_port(),
            sendsms_port: crate::free_port(),
            password: crate::random_hex(),
            admin_password: crate::random_hex(),
            bearerbox: None,
            fakesmsc: None,
            smsbox: None,
            seen: AtomicUsize::new(0),
        };
        std::fs::write(kannel.conf(), kannel.config(queue_limit)).expect("write kannel.conf");

        kannel.bearerbox = Some(kannel.spawn(BEARERBOX, &[], "bearerbox.out", false));
        let fake = format!("FAKE:{} (", kannel.smsc_port);
        kannel.wait_until("bearerbox to listen for fakesmsc", |k| {
            k.status().is_some_and(|s| s.contains(&fake))
        });
        kannel.connect_fakesmsc();
        kannel.start_smsbox();
        kannel
    }

    /// The configuration: everything on 127.0.0.1, the logs in the directory, no store
    /// (queued messages live in bearerbox's memory), no pid file, no account switch.
    fn config(&self, queue_limit: Option<u32>) -> String {
        let p = |name: &str| self.path(name).display().to_string();
        let mut c = String::new();
        let _ = write!(
            c,
            "group = core\n\
             admin-port = {admin}\n\
             admin-interface = \"127.0.0.1\"\n\
             admin-password = \"{admin_password}\"\n\
             admin-allow-ip = \"127.0.0.1\"\n\
             smsbox-port = {smsbox}\n\
             smsbox-interface = \"127.0.0.1\"\n\
             box-allow-ip = \"127.0.0.1\"\n\
             log-file = \"{bb_log}\"\n\
             log-level = 0\n\
             access-log = \"{bb_access}\"\n\
             dlr-storage = internal\n",
            admin = self.admin_port,
            admin_password = self.admin_password,
            smsbox = self.smsbox_port,
            bb_log = p("bearerbox.log"),
            bb_access = p("bearerbox-access.log"),
        );
        if let Some(limit) = queue_limit {
            let _ = writeln!(c, "sms-outgoing-queue-limit = {limit}");
        }
        let _ = write!(
            c,
            "\ngroup = smsc\n\
             smsc = fake\n\
             smsc-id = fake\n\
             host = \"127.0.0.1\"\n\
             port = {smsc}\n\
             connect-allow-ip = \"127.0.0.1\"\n\
             \n\
             group = smsbox\n\
             bearerbox-host = \"127.0.0.1\"\n\
             bearerbox-port = {smsbox}\n\
             sendsms-port = {sendsms}\n\
             sendsms-interface = \"127.0.0.1\"\n\
             global-sender = \"{SENDER}\"\n\
             log-file = \"{sb_log}\"\n\
             log-level = 0\n\
             access-log = \"{sb_access}\"\n\
             \n\
             group = sendsms-user\n\
             username = \"{USERNAME}\"\n\
             password = \"{password}\"\n\
             user-allow-ip = \"127.0.0.1\"\n\
             max-messages = 10\n\
             concatenation = true\n",
            smsc = self.smsc_port,
            smsbox = self.smsbox_port,
            sendsms = self.sendsms_port,
            sb_log = p("smsbox.log"),
            sb_access = p("smsbox-access.log"),
            password = self.password,
        );
        c
    }

    /// `http://127.0.0.1:PORT/cgi-bin/sendsms`.
    pub fn sendsms_url(&self) -> String {
        format!("http://127.0.0.1:{}/cgi-bin/sendsms", self.sendsms_port)
    }

    pub fn sendsms_port(&self) -> u16 {
        self.sendsms_port
    }

    pub fn username(&self) -> &str {
        USERNAME
    }

    /// The sendsms account's password (random hex, nothing to quote or encode).
    pub fn password(&self) -> &str {
        &self.password
    }

    /// Writes the password, one line, to `path` with mode 0600 (a credentials file).
    pub fn write_password_file(&self, path: &Path) {
        crate::write_secret_file(path, &self.password);
    }

    /// The directory with kannel.conf and the logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A GET of sendsms as the fixture's account with `params` (values URL-encoded here):
    /// the HTTP status and body, or the connection's error (refused, timed out).
    pub fn sendsms(&self, params: &[(&str, &str)], timeout: Duration) -> io::Result<(u16, String)> {
        let mut all = vec![("username", USERNAME), ("password", self.password.as_str())];
        all.extend_from_slice(params);
        http_get(&format!("{}?{}", self.sendsms_url(), query(&all)), timeout)
    }

    /// The file fakesmsc prints the messages it receives to, one `Got message N: <…>`
    /// line each.
    pub fn messages_file(&self) -> PathBuf {
        self.path("fakesmsc.out")
    }

    /// Every message fakesmsc received so far, oldest first.
    pub fn messages(&self) -> Vec<Sms> {
        let bytes = std::fs::read(self.path("fakesmsc.out")).unwrap_or_default();
        parse_fakesmsc(&String::from_utf8_lossy(&bytes))
    }

    /// The next message that no earlier call returned, waiting up to `timeout` for it;
    /// None if none came (e.g. to show that nothing was sent).
    pub fn wait_for_message(&self, timeout: Duration) -> Option<Sms> {
        let next = self.seen.load(Ordering::SeqCst);
        let got = self.wait_for_messages(next + 1, timeout);
        let sms = got.get(next).cloned()?;
        self.seen.store(next + 1, Ordering::SeqCst);
        Some(sms)
    }

    /// Waits up to `timeout` until fakesmsc received `n` messages in all; returns all it
    /// received (fewer on timeout).
    pub fn wait_for_messages(&self, n: usize, timeout: Duration) -> Vec<Sms> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.messages();
            if got.len() >= n {
                // The rest of a text with newlines follows as further lines: let them come.
                std::thread::sleep(Duration::from_millis(100));
                return self.messages();
            }
            if Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops smsbox (SIGTERM): sendsms then refuses connections.
    pub fn stop_smsbox(&mut self) {
        if let Some(child) = self.smsbox.take() {
            stop(child);
        }
        let port = self.sendsms_port;
        self.wait_until("smsbox to leave bearerbox", |k| {
            k.status().is_some_and(|s| !s.contains("smsbox:"))
                && TcpStream::connect(("127.0.0.1", port)).is_err()
        });
    }

    /// Starts smsbox (again); returns once sendsms answers.
    pub fn start_smsbox(&mut self) {
        assert!(self.smsbox.is_none(), "start_smsbox: smsbox is running");
        self.smsbox = Some(self.spawn(SMSBOX, &[], "smsbox.out", false));
        let url = self.sendsms_url();
        self.wait_until("smsbox to connect and sendsms to answer", |k| {
            k.status().is_some_and(|s| s.contains("smsbox:"))
                && http_get(&url, Duration::from_secs(2)).is_ok()
        });
    }

    /// Stops bearerbox (SIGSTOP): sendsms accepts requests and never answers, until
    /// [`Kannel::resume`]; then the requests are processed and the messages delivered.
    /// SIGSTOP to bearerbox. Not a reliable "gateway that hangs": smsbox may still answer
    /// 202 at once, and a message was seen delivered while bearerbox was stopped.
    pub fn freeze(&self) {
        self.signal_bearerbox(nix::sys::signal::Signal::SIGSTOP);
    }

    pub fn resume(&self) {
        self.signal_bearerbox(nix::sys::signal::Signal::SIGCONT);
    }

    fn signal_bearerbox(&self, signal: nix::sys::signal::Signal) {
        if let Some(child) = &self.bearerbox {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal);
        }
    }

    /// Takes the link to the SMS centre down (fakesmsc ends): sendsms then answers
    /// `3: Queued for later delivery`, or 503 beyond the queue limit.
    pub fn disconnect_smsc(&mut self) {
        if let Some(mut child) = self.fakesmsc.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let state = format!("FAKE:{} (re-connecting", self.smsc_port);
        self.wait_until("bearerbox to see fakesmsc gone", |k| {
            k.status().is_some_and(|s| s.contains(&state))
        });
    }

    /// Brings the link back (a new fakesmsc); queued messages then go out.
    pub fn reconnect_smsc(&mut self) {
        assert!(
            self.fakesmsc.is_none(),
            "reconnect_smsc: fakesmsc is running"
        );
        self.connect_fakesmsc();
    }

    /// Starts fakesmsc, sending nothing of its own (`-m 0`), and waits until bearerbox
    /// has it online. Its output is appended to fakesmsc.out, kept across restarts.
    fn connect_fakesmsc(&mut self) {
        let port = self.smsc_port.to_string();
        let args = [
            "-H",
            "127.0.0.1",
            "-r",
            &port,
            "-i",
            "100",
            "-m",
            "0",
            &format!("{SENDER} 1000 text nop"),
        ];
        self.fakesmsc = Some(self.spawn(FAKESMSC, &args, "fakesmsc.out", true));
        let online = format!("FAKE:{} (online", self.smsc_port);
        self.wait_until("fakesmsc to connect to bearerbox", |k| {
            k.status().is_some_and(|s| s.contains(&online))
        });
    }

    /// bearerbox's `status.txt` (admin interface); None while it does not answer.
    pub fn status(&self) -> Option<String> {
        let url = format!(
            "http://127.0.0.1:{}/status.txt?password={}",
            self.admin_port, self.admin_password
        );
        match http_get(&url, Duration::from_secs(2)) {
            Ok((200, body)) => Some(body),
            _ => None,
        }
    }

    /// The last lines of every log, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for name in [
            "bearerbox.log",
            "bearerbox.out",
            "fakesmsc.out",
            "smsbox.log",
            "smsbox.out",
        ] {
            let path = self.path(name);
            let text = std::fs::read(&path)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_else(|e| format!("({e})"));
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(15)..];
            let _ = writeln!(out, "==> {} <==\n{}", path.display(), tail.join("\n"));
        }
        out
    }

    fn spawn(&self, program: &str, args: &[&str], output: &str, append: bool) -> Child {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(append)
            .write(true)
            .truncate(!append)
            .open(self.path(output))
            .expect("Kannel output file");
        let err = out.try_clone().expect("dup the output file");
        let mut cmd = Command::new(program);
        cmd.args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        if program != FAKESMSC {
            cmd.arg(self.conf());
        }
        cmd.spawn().unwrap_or_else(|e| panic!("{program}: {e}"))
    }

    /// Waits (at most [`START_LIMIT`]) for `ready`; fails the test with the logs when it
    /// does not come or one of the programs ended.
    fn wait_until(&mut self, what: &str, mut ready: impl FnMut(&Kannel) -> bool) {
        let deadline = Instant::now() + START_LIMIT;
        loop {
            if ready(self) {
                return;
            }
            let mut ended = None;
            for (name, child) in [
                ("bearerbox", &mut self.bearerbox),
                ("fakesmsc", &mut self.fakesmsc),
                ("smsbox", &mut self.smsbox),
            ] {
                if let Some(Ok(Some(status))) = child.as_mut().map(Child::try_wait) {
                    *child = None;
                    ended = Some((name, status));
                }
            }
            if let Some((name, status)) = ended {
                panic!(
                    "Kannel: {name} ended ({status}) while waiting for {what}; logs in {}:\n{}",
                    self.dir.path().display(),
                    self.logs()
                );
            }
            assert!(
                Instant::now() < deadline,
                "Kannel: timed out after {START_LIMIT:?} waiting for {what}; logs in {}:\n{}",
                self.dir.path().display(),
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn conf(&self) -> PathBuf {
        self.path("kannel.conf")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for Kannel {
    fn drop(&mut self) {
        // A bearerbox a failed test left frozen could not act on the stop.
        self.resume();
        // A failed test's logs (named in its message) stay for a look.
        if std::thread::panicking() {
            self.dir.disable_cleanup(true);
        }
        for child in [
            self.smsbox.take(),
            self.fakesmsc.take(),
            self.bearerbox.take(),
        ]
        .into_iter()
        .flatten()
        {
            stop(child);
        }
    }
}

/// SIGTERM, then SIGKILL if it has not ended within [`STOP_LIMIT`].
fn stop(mut child: Child) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let deadline = Instant::now() + STOP_LIMIT;
    while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The messages in fakesmsc's output (see the module's documentation for the format).
pub fn parse_fakesmsc(output: &str) -> Vec<Sms> {
    let mut messages: Vec<Sms> = Vec::new();
    // Only complete lines: fakesmsc may be writing the last one.
    let complete = output.rfind('\n').map_or("", |end| &output[..end]);
    for line in complete.lines() {
        let Some(at) = line.find("Got message ") else {
            continue;
        };
        let rest = &line[at..];
        let Some(open) = rest.find(": <") else {
            continue;
        };
        let payload = &rest[open + 3..];
        let payload = payload.strip_suffix('>').unwrap_or(payload);
        match parse_message(payload) {
            Some(sms) => messages.push(sms),
            // The rest of a text with a newline.
            None => {
                if let Some(last) = messages.last_mut() {
                    last.text.push('\n');
                    last.text.push_str(payload);
                }
            }
        }
    }
    messages
}

fn parse_message(payload: &str) -> Option<Sms> {
    let mut fields = payload.splitn(4, ' ');
    let from = fields.next()?;
    let to = fields.next()?;
    let kind = fields.next()?;
    let data = fields.next().unwrap_or("");
    if from.is_empty() || to.is_empty() || !to.bytes().all(|b| b.is_ascii_digit() || b == b'+') {
        return None;
    }
    let (coding, text, udh) = match kind {
        "text" => (Coding::Text, data.to_string(), None),
        "data" => (Coding::Data, lossy(&url_decode(data)), None),
        "ucs-2" | "ucs2" => (Coding::Ucs2, utf16be(&url_decode(data)), None),
        "udh" => {
            let (udh, body) = data.split_once(' ')?;
            let (label, body) = body.split_once(' ').unwrap_or((body, ""));
            let body = url_decode(body);
            let text = if label == "ucs-2" {
                utf16be(&body)
            } else {
                lossy(&body)
            };
            (Coding::Data, text, Some(url_decode(udh)))
        }
        _ => return None,
    };
    Some(Sms {
        from: from.to_string(),
        to: to.to_string(),
        coding,
        text,
        udh,
    })
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn utf16be(bytes: &[u8]) -> String {
    let units: Vec<u16> = bytes
        .chunks(2)
        .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))
        .collect();
    String::from_utf16_lossy(&units)
}

/// Kannel's URL decoding: `+` is a space, `%XX` a byte.
pub fn url_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    out
}

/// Percent-encodes everything but RFC 3986's unreserved characters (so `+` is `%2B`).
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// `name=value&…`, the values URL-encoded.
pub fn query(params: &[(&str, &str)]) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{}={}", url_encode(k), url_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// A GET of `url` (`http://HOST:PORT/PATH?QUERY`, sent as is) over HTTP/1.0: the status
/// and the body, or the connection's error (refused; `TimedOut`/`WouldBlock` when no
/// complete answer came within `timeout`).
pub fn http_get(url: &str, timeout: Duration) -> io::Result<(u16, String)> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not an http:// URL"))?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let addr = authority
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address"))?;
    let deadline = Instant::now() + timeout;
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(done) = complete_answer(&answer) {
            return done;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no complete answer",
            ));
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(&mut buf) {
            Ok(0) => {
                return complete_answer(&answer).unwrap_or_else(|| {
                    Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("connection closed after {:?}", lossy(&answer)),
                    ))
                });
            }
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The status and body once `answer` holds its headers and Content-Length bytes of body.
fn complete_answer(answer: &[u8]) -> Option<io::Result<(u16, String)>> {
    let end = answer.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = lossy(&answer[..end]);
    let body = &answer[end + 4..];
    let length = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())?;
    if body.len() < length {
        return None;
    }
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok());
    Some(match status {
        Some(s) => Ok((s, lossy(&body[..length]))),
        None => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("not an HTTP answer: {head:?}"),
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fakesmsc_lines_are_decoded_and_continuations_joined() {
        let out = "2026-12-03 15:46:22 [5935] [0] INFO: fakesmsc starting\n\
            2026-12-03 15:46:24 [5935] [0] DEBUG: Got message 1: <4242 +4915 text a b>c>\n\
            2026-12-03 15:46:31 [5935] [0] DEBUG: Got message 2: <not you? tell IT>\n\
            2026-12-03 15:47:07 [5935] [0] DEBUG: Got message 3: <4242 1234 ucs-2 %04%1F%00+%D8%3D%DE%00>\n\
            2026-12-03 15:47:07 [5935] [0] DEBUG: Got message 4: <4242 1234 data ab%01c+d>\n\
            2026-12-03 15:50:55 [5159] [0] DEBUG: Got message 5: <4242 1 udh %05%00%03%00%02%01 data AA+B>\n\
            2026-12-03 15:50:55 [5159] [0] DEBUG: Got message 6: <4242 1 text partial";
        let m = parse_fakesmsc(out);
        assert_eq!(m.len(), 4, "{m:?}");
        assert_eq!(m[0].to, "+4915");
        assert_eq!(m[0].text, "a b>c\nnot you? tell IT");
        assert_eq!(m[1].coding, Coding::Ucs2);
        assert_eq!(m[1].text, "П 😀");
        assert_eq!(m[2].text, "ab\u{1}c d");
        assert_eq!(m[3].udh.as_deref(), Some(&[5, 0, 3, 0, 2, 1][..]));
        assert_eq!(m[3].text, "AA B");
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(
            query(&[("to", "+49 1"), ("text", "ä&=")]),
            "to=%2B49%201&text=%C3%A4%26%3D"
        );
        assert_eq!(url_decode("a+%2B%zz%4"), b"a +%zz%4");
    }
}
