//! `/etc/twofold/twofold.toml`: versioned, strict (unknown keys are refused), and every
//! value checked on load so that a bad file names the line and the key at start-up
//! instead of failing a login later. A missing file means the built-in defaults.

mod bounded;
mod email_codes;
mod file;
mod policy;
mod sms;
mod sms_command;
mod sms_http;
mod sms_text;
mod smtp;
mod store;
mod when;

pub use bounded::Bounded;
pub use email_codes::{EmailCodesConfig, PLACEHOLDERS, TEXT_FILE, Template, text_template};
pub use policy::{Profile, ServiceClass, ServicePolicy, ServicePolicyConfig, service_class};
use serde::Deserialize;
pub use sms::{HttpUrl, KannelConfig, NumberPrefix, SmsConfig};
pub use sms_command::CommandGatewayConfig;
pub use sms_http::{
    FieldTemplate, HttpAuth, HttpBody, HttpGatewayConfig, HttpMethod, SuccessPattern,
};
pub use sms_text::{DEFAULT_SMS_TEXT, SMS_MAX_HOST, SMS_MAX_SERVICE, SMS_TEXT_FILE, sms_text};
pub use smtp::{HostName, MailAddress, SmtpConfig, SmtpSecurity};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
pub use store::{Backend, FleetConfig, PostgresUrl, StoreConfig};
pub use when::{Instant, parse_instant};

pub const DEFAULT_PATH: &str = "/etc/twofold/twofold.toml";
pub const CURRENT_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    #[error("{path}: cannot read: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: refused: {why}")]
    Unsafe { path: String, why: String },
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Format version of this file; only 1 exists.
    pub version: Version,
    /// `default`, or `strict` (NIST SP 800-63B rev 4 AAL2: no remembered devices,
    /// sessions of at most 24 h and 1 h idle).
    #[serde(default)]
    pub profile: Profile,
    #[serde(default)]
    pub daemon: DaemonConfig,
    #[serde(default)]
    pub totp: TotpConfig,
    #[serde(default)]
    pub login: LoginConfig,
    #[serde(default)]
    pub lockout: LockoutConfig,
    #[serde(default)]
    pub scope: ScopeConfig,
    #[serde(default)]
    pub enrolment: EnrolmentConfig,
    /// The mail server; `None`: no mail is sent.
    #[serde(default)]
    pub smtp: Option<SmtpConfig>,
    #[serde(default)]
    pub email_codes: EmailCodesConfig,
    /// Codes by SMS, and the gateway they go through.
    #[serde(default)]
    pub sms: SmsConfig,
    /// Where the state is kept: SQLite (the default) or a fleet's PostgreSQL.
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub fleet: FleetConfig,
    /// Trust policy per PAM service name; `other` applies to services not listed.
    #[serde(default)]
    pub policy: BTreeMap<String, ServicePolicyConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            version: Version(CURRENT_VERSION),
            profile: Profile::Default,
            daemon: DaemonConfig::default(),
            totp: TotpConfig::default(),
            login: LoginConfig::default(),
            lockout: LockoutConfig::default(),
            scope: ScopeConfig::default(),
            enrolment: EnrolmentConfig::default(),
            smtp: None,
            email_codes: EmailCodesConfig::default(),
            sms: SmsConfig::default(),
            store: StoreConfig::default(),
            fleet: FleetConfig::default(),
            policy: BTreeMap::new(),
        }
    }
}

/// Who must use a second factor. Users out of scope get PAM_IGNORE.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ScopeConfig {
    /// Only members of these groups need a second factor; empty means everyone.
    pub groups: Vec<Name>,
    pub exempt_users: Vec<Name>,
    pub exempt_groups: Vec<Name>,
}

/// Grace periods for users who have not enrolled yet.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EnrolmentConfig {
    /// Until this instant (a date `2027-01-31` means its 00:00 UTC) unenrolled users log
    /// in with a reminder; after it they are refused. Unset: `[login] unenrolled` decides.
    pub deadline: Option<Instant>,
    /// The furthest a deferral (`twofoldctl grace set`) may reach, in days from now.
    pub max_deferral_days: Bounded<1, 3650>,
    /// Offer an unenrolled user within a grace period to set up an app at login (QR code,
    /// key as text, first code). Never offered outside a grace period: there the password
    /// alone would guard the enrolment.
    pub self_service: bool,
    /// The background of the terminals logins show the QR code on: a symbol must be
    /// dark on light, so it is drawn for this one.
    pub qr_background: Background,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Background {
    /// Most terminals and the Linux console.
    #[default]
    Dark,
    Light,
}

impl Default for EnrolmentConfig {
    fn default() -> Self {
        EnrolmentConfig {
            deadline: None,
            max_deferral_days: Bounded(90),
            self_service: true,
            qr_background: Background::Dark,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(try_from = "u32")]
pub struct Version(pub u32);

impl TryFrom<u32> for Version {
    type Error = String;
    fn try_from(v: u32) -> Result<Self, String> {
        if v == CURRENT_VERSION {
            Ok(Version(v))
        } else {
            Err(format!(
                "unsupported version {v}: this twofold reads version {CURRENT_VERSION}"
            ))
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonConfig {
    /// `system`, or a D-Bus address such as `unix:path=/run/twofold-test/bus`.
    pub bus: BusAddress,
    /// The SQLite store; its directory is created 0700.
    pub database: AbsolutePath,
    /// Members of this group may call the admin methods (root always may).
    pub admin_group: Option<Name>,
    /// Where audit records go (syslog, facility authpriv).
    pub syslog_socket: AbsolutePath,
    /// twofoldd's own socket for logins and twofoldctl (D-Bus peer-to-peer): in a
    /// directory only root (or the daemon's account) may write; the socket itself is open
    /// to every user, since screen lockers authenticate as the user.
    pub socket: AbsolutePath,
    /// Connections one non-root user may hold open to the socket at once (root: no bound
    /// but the total, which keeps room for root).
    pub max_connections_per_user: Bounded<1, 960>,
    /// Logins one non-root user's processes (screen lockers, say) may have waiting for an
    /// answer at once, over all connections; root's logins are not bound by it.
    pub max_conversations_per_user: Bounded<1, 3072>,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            bus: BusAddress("system".into()),
            database: AbsolutePath(PathBuf::from("/var/lib/twofold/twofold.db")),
            admin_group: None,
            syslog_socket: AbsolutePath(PathBuf::from("/dev/log")),
            socket: AbsolutePath(PathBuf::from(twofold_protocol::SOCKET_PATH)),
            max_connections_per_user: Bounded(32),
            max_conversations_per_user: Bounded(64),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
pub enum Algorithm {
    SHA1,
    SHA256,
    SHA512,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TotpConfig {
    /// Shown by authenticator apps next to the account. Unset: the host's name (as
    /// google-authenticator does), so each host is told apart in the app; set one name
    /// for a fleet that shares its secrets.
    pub issuer: Option<Name>,
    pub algorithm: Algorithm,
    pub digits: Bounded<6, 8>,
    pub step_seconds: Bounded<10, 300>,
    /// Steps accepted on each side of the current one (RFC 6238 section 5.2).
    pub window: Bounded<0, 10>,
}

impl Default for TotpConfig {
    fn default() -> Self {
        TotpConfig {
            issuer: None,
            algorithm: Algorithm::SHA1,
            digits: Bounded(6),
            step_seconds: Bounded(30),
            window: Bounded(1),
        }
    }
}

/// What a login of a user with no second factor does.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Unenrolled {
    /// Refused, with the same prompt and message as a wrong code (no user enumeration).
    Deny,
    /// Out of scope: the module returns PAM_IGNORE and the rest of the stack decides.
    Ignore,
}

/// The default `[login] timing_floor_us`: above what a Begin costs in twofoldd's release
/// build on a 2-core machine, NSS miss included (docs/reliability.md, "Enumeration").
pub const TIMING_FLOOR_US: u32 = 250;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LoginConfig {
    /// Codes a user may try within one PAM transaction.
    pub max_tries: Bounded<1, 10>,
    pub unenrolled: Unenrolled,
    /// Seconds an unanswered conversation is kept.
    pub conversation_timeout_seconds: Bounded<10, 3600>,
    /// Microseconds a reply that asks for a code or refuses one takes at least (then the
    /// next doubling), so the time does not tell unknown, unenrolled and enrolled names
    /// apart (daemon/src/pacing.rs).
    pub timing_floor_us: Bounded<50, 100000>,
    /// PAM services that are sshd: only for these, and only when root runs them, is the
    /// SSH key that passed (and the remote address) taken as the device.
    pub ssh_services: Vec<ServicePattern>,
}

impl Default for LoginConfig {
    fn default() -> Self {
        LoginConfig {
            max_tries: Bounded(3),
            unenrolled: Unenrolled::Deny,
            conversation_timeout_seconds: Bounded(300),
            timing_floor_us: Bounded(TIMING_FLOOR_US),
            ssh_services: vec![
                ServicePattern("sshd".into()),
                ServicePattern("sshd-*".into()),
            ],
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LockoutConfig {
    /// Consecutive wrong codes, across all services, before the account is locked.
    /// NIST SP 800-63B caps this at 100.
    pub max_failures: Bounded<1, 100>,
    /// First lock length; each further lock doubles it.
    pub base_seconds: Bounded<1, 86400>,
    /// Longest lock (and longest wait for one source).
    pub max_seconds: Bounded<1, 604800>,
    /// Wrong codes for one user from one source (remote address; a local caller) before
    /// that source must wait; set it below `max_failures`, so that one source cannot
    /// lock the account while the user logs in elsewhere.
    pub source_failures: Bounded<1, 100>,
    /// The first wait of a source; each further wrong code from it doubles it.
    pub source_backoff_seconds: Bounded<1, 86400>,
}

impl Default for LockoutConfig {
    fn default() -> Self {
        LockoutConfig {
            // Ten in all, five from any one source: a user who mistypes is not held up,
            // and one source alone needs hours of waits to lock the account.
            max_failures: Bounded(10),
            base_seconds: Bounded(300),
            max_seconds: Bounded(86400),
            source_failures: Bounded(5),
            source_backoff_seconds: Bounded(300),
        }
    }
}

/// `system` or a `unix:` D-Bus address.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(try_from = "String")]
pub struct BusAddress(pub String);

impl TryFrom<String> for BusAddress {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s == "system" || (s.starts_with("unix:") && s.len() > 5 && !s.contains('\n')) {
            Ok(BusAddress(s))
        } else {
            Err(format!(
                "expected \"system\" or a unix: D-Bus address, got {s:?}"
            ))
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(try_from = "String")]
pub struct AbsolutePath(pub PathBuf);

impl TryFrom<String> for AbsolutePath {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let p = PathBuf::from(&s);
        if p.is_absolute() && !s.contains('\0') {
            Ok(AbsolutePath(p))
        } else {
            Err(format!("expected an absolute path, got {s:?}"))
        }
    }
}

/// A short printable name (issuer, group): no control characters, no `:`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(try_from = "String")]
pub struct Name(pub String);

impl TryFrom<String> for Name {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s.is_empty() || s.len() > 64 || s.chars().any(|c| c.is_control() || c == ':') {
            Err(format!(
                "expected 1 to 64 printable characters without ':', got {s:?}"
            ))
        } else {
            Ok(Name(s))
        }
    }
}

/// A PAM service name, or a prefix ending in `*` (`sshd-*`): letters, digits, `.`, `_`,
/// `-`, at most 64.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(try_from = "String")]
pub struct ServicePattern(pub String);

impl TryFrom<String> for ServicePattern {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let name = s.strip_suffix('*').unwrap_or(&s);
        let ok = !name.is_empty()
            && s.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        if ok {
            Ok(ServicePattern(s))
        } else {
            Err(format!(
                "expected a PAM service name, or a prefix ending in '*' (letters, digits, '.', '_', '-'), got {s:?}"
            ))
        }
    }
}

impl ServicePattern {
    pub fn matches(&self, service: &str) -> bool {
        match self.0.strip_suffix('*') {
            Some(prefix) => service.starts_with(prefix),
            None => service == self.0,
        }
    }
}

impl Config {
    /// Parses a configuration text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Invalid {
            path: origin.into(),
            message: e.to_string(),
        })?;
        config.check_relations(origin)?;
        Ok(config)
    }

    /// Loads `path`; a missing file gives the defaults. A file or directory that anyone
    /// but root may write, a file owned by someone else, or a symlink is refused:
    /// whoever can edit it can turn the second factor off (see `file`).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let mut config = match file::read_checked(path)? {
            Some(text) => Config::parse(&text, &path.display().to_string())?,
            None => Config::default(),
        };
        let text_path = path.with_file_name(TEXT_FILE);
        if let Some(text) = file::read_checked(&text_path)? {
            config.email_codes.text =
                email_codes::text_template(&text).map_err(|message| ConfigError::Invalid {
                    path: text_path.display().to_string(),
                    message,
                })?;
        }
        let sms_path = path.with_file_name(SMS_TEXT_FILE);
        if let Some(text) = file::read_checked(&sms_path)? {
            config.sms.text = sms_text(&text).map_err(|message| ConfigError::Invalid {
                path: sms_path.display().to_string(),
                message,
            })?;
        }
        Ok(config)
    }

    /// Whether logins may ask for codes by e-mail: `[smtp]` is set, and so is
    /// `[email_codes] enabled` (never in the strict profile).
    pub fn email_codes_on(&self) -> bool {
        self.smtp.is_some() && self.email_codes.enabled && self.profile != Profile::Strict
    }

    /// Whether logins may ask for codes by SMS: `[sms] enabled` with its gateway (never
    /// in the strict profile).
    pub fn sms_on(&self) -> bool {
        self.sms.enabled && self.sms.gateways() == 1 && self.profile != Profile::Strict
    }

    /// The trust policy for PAM service `service`.
    pub fn service_policy(&self, service: &str) -> ServicePolicy {
        let ssh = self.login.ssh_services.iter().any(|s| s.matches(service));
        policy::resolve(self.profile, &self.policy, service, ssh)
    }

    fn check_relations(&self, origin: &str) -> Result<(), ConfigError> {
        policy::check_profile(self.profile, &self.policy).map_err(|message| {
            ConfigError::Invalid {
                path: origin.into(),
                message,
            }
        })?;
        if let Some(smtp) = &self.smtp {
            smtp.check().map_err(|message| ConfigError::Invalid {
                path: origin.into(),
                message,
            })?;
        }
        self.store.check().map_err(|message| ConfigError::Invalid {
            path: origin.into(),
            message,
        })?;
        if self.profile == Profile::Strict && self.email_codes.enabled {
            return Err(ConfigError::Invalid {
                path: origin.into(),
                message: "[email_codes] enabled = true is not allowed with profile = \"strict\" (NIST SP 800-63B does not accept e-mail as an out-of-band channel)".into(),
            });
        }
        if self.profile == Profile::Strict && self.sms.enabled {
            return Err(ConfigError::Invalid {
                path: origin.into(),
                message: "[sms] enabled = true is not allowed with profile = \"strict\" (NIST SP 800-63B restricts SMS: SIM swaps and number porting hand the codes to someone else)".into(),
            });
        }
        self.sms.check().map_err(|message| ConfigError::Invalid {
            path: origin.into(),
            message,
        })?;
        if self.lockout.max_seconds.0 < self.lockout.base_seconds.0 {
            return Err(ConfigError::Invalid {
                path: origin.into(),
                message: "[lockout] max_seconds must be at least base_seconds".into(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
