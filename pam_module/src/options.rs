//! The words after the module path in the pam.d line. Only root can write those files, so
//! they are the one place (with compiled defaults) the module takes settings from: never
//! the environment, which belongs to the user inside sudo or su.

use std::time::Duration;
use twofold_protocol::SOCKET_PATH;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailMode {
    /// Daemon unreachable: the login fails (PAM_AUTHINFO_UNAVAIL).
    Secure,
    /// Daemon unreachable: the login passes this module, with a warning in the log.
    Safe,
}

/// How the module reaches twofoldd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// twofoldd's own socket (`socket=PATH`, the default): peer-to-peer, no bus daemon.
    Socket(String),
    /// A D-Bus bus (`bus=ADDRESS`), for hosts that keep logins on the bus.
    Bus(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub transport: Transport,
    pub timeout: Duration,
    pub failmode: FailMode,
    /// The account the daemon runs as, when it is not root.
    pub daemon_user: Option<String>,
    pub debug: bool,
    /// The stack checked a first factor before this module, with `requisite`: the
    /// daemon may offer to set up an app at login (see docs/integration.md).
    pub offer_enrolment: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            transport: Transport::Socket(SOCKET_PATH.to_string()),
            timeout: Duration::from_secs(10),
            failmode: FailMode::Secure,
            daemon_user: None,
            debug: false,
            offer_enrolment: false,
        }
    }
}

/// Parses the module arguments. An unknown or malformed one is an error: a typo must not
/// silently change how the module behaves.
pub fn parse<'a>(args: impl IntoIterator<Item = &'a str>) -> Result<Options, String> {
    let mut o = Options::default();
    for arg in args {
        match arg.split_once('=') {
            None if arg == "debug" => o.debug = true,
            None if arg == "offer_enrolment" => o.offer_enrolment = true,
            Some(("bus", v)) if v.starts_with("unix:") && v.len() > 5 => {
                o.transport = Transport::Bus(v.to_string())
            }
            Some(("socket", v)) if v.starts_with('/') && v.len() > 1 => {
                o.transport = Transport::Socket(v.to_string())
            }
            Some(("timeout", v)) => match v.parse::<u64>() {
                Ok(s) if (1..=300).contains(&s) => o.timeout = Duration::from_secs(s),
                _ => return Err(format!("timeout={v}: expected whole seconds from 1 to 300")),
            },
            Some(("failmode", "secure")) => o.failmode = FailMode::Secure,
            Some(("failmode", "safe")) => o.failmode = FailMode::Safe,
            Some(("daemon_user", v)) if !v.is_empty() => o.daemon_user = Some(v.to_string()),
            _ => return Err(format!("unknown or malformed option {arg:?}")),
        }
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_secure() {
        let o = parse([]).unwrap();
        assert_eq!(o.transport, Transport::Socket("/run/twofold/socket".into()));
        assert_eq!(o.failmode, FailMode::Secure);
        assert_eq!(o.timeout, Duration::from_secs(10));
    }

    #[test]
    fn every_option_is_read() {
        let o = parse([
            "bus=unix:path=/tmp/b",
            "timeout=3",
            "failmode=safe",
            "daemon_user=twofold",
            "debug",
            "offer_enrolment",
        ])
        .unwrap();
        assert_eq!(o.transport, Transport::Bus("unix:path=/tmp/b".into()));
        let socket = parse(["socket=/tmp/s"]).unwrap();
        assert_eq!(socket.transport, Transport::Socket("/tmp/s".into()));
        assert_eq!(o.timeout, Duration::from_secs(3));
        assert_eq!(o.failmode, FailMode::Safe);
        assert_eq!(o.daemon_user.as_deref(), Some("twofold"));
        assert!(o.debug);
        assert!(o.offer_enrolment);
        assert!(
            !parse([]).unwrap().offer_enrolment,
            "off unless the line says so"
        );
    }

    #[test]
    fn typos_and_bad_values_are_errors() {
        for bad in [
            "failmod=safe",
            "failmode=open",
            "timeout=0",
            "timeout=x",
            "bus=tcp:host=a",
            "bus=",
            "socket=relative/path",
            "socket=",
            "nodebug",
            "offer_enrolment=yes",
        ] {
            assert!(parse([bad]).is_err(), "{bad}");
        }
    }
}
