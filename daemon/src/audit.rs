//! The audit trail: one syslog record (facility authpriv) per decision. Records carry who,
//! where, what and why, never a code or a secret.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use syslog::{Facility, Formatter3164, Logger, LoggerBackend};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditEvent {
    /// What was asked: `login`, `enrol`, `reset`, `unlock`, ...
    pub action: &'static str,
    /// `success`, `failure`, `denied`, `locked`, `throttled` (a source waits), `ignored`,
    /// `grace`, `trusted`, `revoked`, `alias` (the PAM name is another account's name),
    /// `error`.
    pub outcome: &'static str,
    pub user: String,
    pub service: String,
    pub rhost: String,
    pub tty: String,
    /// The uid of the process that called the daemon.
    pub caller_uid: Option<u32>,
    pub reason: String,
}

impl AuditEvent {
    /// `key="value"` pairs; values are quoted and escaped (see `quote`) so a user name or
    /// host cannot forge another record.
    pub fn to_line(&self) -> String {
        let mut line = format!("action={} outcome={}", self.action, self.outcome);
        for (key, value) in [
            ("user", &self.user),
            ("service", &self.service),
            ("rhost", &self.rhost),
            ("tty", &self.tty),
        ] {
            if !value.is_empty() {
                line.push_str(&format!(" {key}={}", quote(value)));
            }
        }
        if let Some(uid) = self.caller_uid {
            line.push_str(&format!(" caller_uid={uid}"));
        }
        if !self.reason.is_empty() {
            line.push_str(&format!(" reason={}", quote(&self.reason)));
        }
        line
    }
}

/// Quoted, with `\` and `"` escaped and everything outside printable ASCII written as
/// `\u{..}`: no newline can start a forged record, and no format character (U+202E)
/// can make a reader see the line in another order.
fn quote(value: &str) -> String {
    let mut out = String::from("\"");
    for c in value.chars().take(256) {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            ' '..='~' => out.push(c),
            other => out.push_str(&format!("\\u{{{:x}}}", other as u32)),
        }
    }
    out.push('"');
    out
}

pub trait AuditSink: Send + Sync {
    fn record(&self, event: &AuditEvent);
}

/// How long one record may wait for the syslog socket (a stalled syslog daemon, a full
/// queue) before it goes to stderr instead.
const WRITE_TIMEOUT: Duration = Duration::from_millis(100);
/// After a record could not be written, records go to stderr for this long before the
/// socket is tried again: a stalled syslog costs one timeout per pause, not one per login.
const RETRY_PAUSE: Duration = Duration::from_secs(10);

/// Writes to a syslog socket (normally /dev/log) as `twofoldd[pid]`, facility authpriv.
/// When no syslog listens, or it does not take a record within [`WRITE_TIMEOUT`],
/// records go to stderr (the journal, under systemd) and the socket is tried again after
/// [`RETRY_PAUSE`].
pub struct SyslogAudit {
    socket: PathBuf,
    state: Mutex<SyslogState>,
}

#[derive(Default)]
struct SyslogState {
    logger: Option<Logger<LoggerBackend, Formatter3164>>,
    /// No socket until then.
    paused_until: Option<Instant>,
}

impl SyslogAudit {
    pub fn new(socket: PathBuf) -> SyslogAudit {
        SyslogAudit {
            socket,
            state: Mutex::default(),
        }
    }

    fn connect(&self) -> Option<Logger<LoggerBackend, Formatter3164>> {
        let formatter = Formatter3164 {
            facility: Facility::LOG_AUTHPRIV,
            hostname: None,
            process: "twofoldd".into(),
            pid: std::process::id(),
        };
        let logger = syslog::unix_custom(formatter, &self.socket).ok()?;
        let bounded = match &logger.backend {
            LoggerBackend::Unix(socket) => socket.set_write_timeout(Some(WRITE_TIMEOUT)),
            LoggerBackend::UnixStream(socket) => {
                socket.get_ref().set_write_timeout(Some(WRITE_TIMEOUT))
            }
            _ => Ok(()),
        };
        // A socket whose writes cannot be bounded is not used.
        bounded.ok().map(|()| logger)
    }
}

impl AuditSink for SyslogAudit {
    fn record(&self, event: &AuditEvent) {
        let line = event.to_line();
        let Ok(mut state) = self.state.lock() else {
            eprintln!("twofoldd audit: {line}");
            return;
        };
        let paused = state
            .paused_until
            .is_some_and(|t| crate::clock::monotonic() < t);
        if state.logger.is_none() && !paused {
            state.logger = self.connect();
        }
        let sent = match state.logger.as_mut() {
            Some(logger) if event.outcome == "success" || event.outcome == "ignored" => {
                logger.info(&line).is_ok()
            }
            Some(logger) => logger.notice(&line).is_ok(),
            None => false,
        };
        if !sent {
            if !paused {
                state.paused_until = Some(crate::clock::monotonic() + RETRY_PAUSE);
            }
            state.logger = None;
            eprintln!("twofoldd audit: {line}");
        }
    }
}

/// Keeps records in memory, for tests.
#[derive(Default)]
pub struct MemoryAudit(pub Mutex<Vec<AuditEvent>>);

impl AuditSink for MemoryAudit {
    fn record(&self, event: &AuditEvent) {
        if let Ok(mut v) = self.0.lock() {
            v.push(event.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixDatagram;

    #[test]
    fn lines_are_quoted_and_cannot_be_forged() {
        let e = AuditEvent {
            action: "login",
            outcome: "failure",
            user: "eve\" outcome=success\nx".into(),
            service: "sshd".into(),
            caller_uid: Some(0),
            reason: "wrong code".into(),
            ..Default::default()
        };
        let line = e.to_line();
        assert_eq!(
            line,
            r#"action=login outcome=failure user="eve\" outcome=success\u{a}x" service="sshd" caller_uid=0 reason="wrong code""#
        );
    }

    #[test]
    fn non_ascii_is_escaped_so_format_characters_cannot_reorder_a_line() {
        // Issue 7 item 9: U+202E (right-to-left override) passed through.
        let e = AuditEvent {
            action: "login",
            outcome: "failure",
            user: "j\u{f6}rg\u{202e}sseccus".into(),
            reason: "tab\there".into(),
            ..Default::default()
        };
        let line = e.to_line();
        assert!(line.is_ascii(), "{line}");
        assert_eq!(
            line,
            r#"action=login outcome=failure user="j\u{f6}rg\u{202e}sseccus" reason="tab\u{9}here""#
        );
    }

    #[test]
    fn records_reach_a_syslog_socket_with_facility_authpriv() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let audit = SyslogAudit::new(path);
        audit.record(&AuditEvent {
            action: "login",
            outcome: "success",
            user: "alice".into(),
            ..Default::default()
        });
        let mut buf = [0u8; 1024];
        let n = sock.recv(&mut buf).unwrap();
        let text = String::from_utf8_lossy(&buf[..n]);
        // authpriv (10) * 8 + info (6) = 86
        assert!(text.starts_with("<86>"), "{text}");
        assert!(
            text.contains("twofoldd[") && text.contains(r#"user="alice""#),
            "{text}"
        );
    }

    #[test]
    fn a_syslog_that_stops_reading_holds_up_no_record_for_long() {
        // A stalled syslog daemon: its socket exists and is never read, so its queue
        // fills and a blocking write waits for ever, holding the login that writes.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let _stalled = UnixDatagram::bind(&path).unwrap();
        let audit = std::sync::Arc::new(SyslogAudit::new(path));
        let (done, finished) = std::sync::mpsc::channel();
        let writer = audit.clone();
        std::thread::spawn(move || {
            let started = crate::clock::monotonic();
            let event = AuditEvent {
                action: "login",
                outcome: "failure",
                user: "alice".into(),
                reason: "x".repeat(200),
                ..Default::default()
            };
            for _ in 0..3000 {
                writer.record(&event);
            }
            let _ = done.send(started.elapsed());
        });
        let took = finished
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("3,000 records to a stalled syslog did not finish in 20 s");
        assert!(
            took < std::time::Duration::from_secs(3),
            "3,000 records took {took:?}"
        );
    }
}
