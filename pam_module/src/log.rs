//! Logging to syslog (authpriv) as `pam_twofold`, with a logger per call: a PAM module
//! must not install a process-wide logger or change the host's openlog() ident, and must
//! not write to stderr (that is the user's terminal).

use syslog::{Facility, Formatter3164};

pub struct Log {
    logger: Option<syslog::Logger<syslog::LoggerBackend, Formatter3164>>,
    pub debug: bool,
}

impl Log {
    pub fn new(debug: bool) -> Log {
        let formatter = Formatter3164 {
            facility: Facility::LOG_AUTHPRIV,
            hostname: None,
            process: "pam_twofold".into(),
            pid: std::process::id(),
        };
        Log {
            logger: syslog::unix(formatter).ok(),
            debug,
        }
    }

    pub fn warning(&mut self, msg: &str) {
        if let Some(l) = self.logger.as_mut() {
            let _ = l.warning(msg);
        }
    }

    pub fn error(&mut self, msg: &str) {
        if let Some(l) = self.logger.as_mut() {
            let _ = l.err(msg);
        }
    }

    pub fn debug(&mut self, msg: &str) {
        if self.debug {
            if let Some(l) = self.logger.as_mut() {
                let _ = l.debug(msg);
            }
        }
    }
}
