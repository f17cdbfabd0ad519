//! Logging to syslog (authpriv) as `pam_twofold`, with a logger per call: a PAM module
//! must not install a process-wide logger or change the host's openlog() ident, and must
//! not write to stderr (that is the user's terminal). The socket is opened only when
//! there is something to say, so a quiet login costs nothing here.

use syslog::{Facility, Formatter3164, Logger, LoggerBackend};

/// Longest piece of client-supplied text (user, service) put into a log line.
const MAX_SHOWN: usize = 64;

/// `value` quoted for a log line: everything outside printable ASCII escaped (so a
/// newline cannot forge a second record, nor U+202E reorder one), at most 64 characters.
pub fn quoted(value: &str) -> String {
    let mut out = String::from("\"");
    for (i, c) in value.chars().enumerate() {
        if i == MAX_SHOWN {
            out.push_str("...");
            break;
        }
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            c => out.push_str(&c.escape_unicode().to_string()),
        }
    }
    out.push('"');
    out
}

pub struct Log {
    logger: Option<Logger<LoggerBackend, Formatter3164>>,
    pub debug: bool,
}

impl Log {
    pub fn new(debug: bool) -> Log {
        Log {
            logger: None,
            debug,
        }
    }

    fn logger(&mut self) -> Option<&mut Logger<LoggerBackend, Formatter3164>> {
        if self.logger.is_none() {
            let formatter = Formatter3164 {
                facility: Facility::LOG_AUTHPRIV,
                hostname: None,
                process: "pam_twofold".into(),
                pid: std::process::id(),
            };
            self.logger = syslog::unix(formatter).ok();
        }
        self.logger.as_mut()
    }

    pub fn warning(&mut self, msg: &str) {
        if let Some(l) = self.logger() {
            let _ = l.warning(msg);
        }
    }

    pub fn error(&mut self, msg: &str) {
        if let Some(l) = self.logger() {
            let _ = l.err(msg);
        }
    }

    pub fn debug(&mut self, msg: &str) {
        if self.debug {
            if let Some(l) = self.logger() {
                let _ = l.debug(msg);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_text_cannot_forge_lines_or_flood_the_log() {
        assert_eq!(quoted("alice"), r#""alice""#);
        assert_eq!(
            quoted("eve\nJan  1 pam_twofold: ok"),
            r#""eve\u{a}Jan  1 pam_twofold: ok""#
        );
        assert_eq!(quoted("a\u{202e}b\"c"), r#""a\u{202e}b\"c""#);
        let long = quoted(&"x".repeat(10_000));
        assert!(long.len() < 80 && long.ends_with("...\""), "{long}");
    }
}
