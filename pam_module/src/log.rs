//! Logging to syslog (authpriv) as `pam_twofold`, with a logger per call: a PAM module
//! must not install a process-wide logger or change the host's openlog() ident, and must
//! not write to stderr (that is the user's terminal). The socket is opened only when
//! there is something to say, so a quiet login costs nothing here.

use syslog::{Facility, Formatter3164, Logger, LoggerBackend};

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
