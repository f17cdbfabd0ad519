//! `[sms]`: one-time codes texted to the number an administrator set, through an SMS
//! gateway (`[sms.kannel]`: Kannel's smsbox). SMS is a restricted authenticator (NIST SP
//! 800-63B: SIM swaps, number porting), so it is off unless set, refused by the strict
//! profile, and sent only to the country prefixes listed (toll fraud).

use crate::{AbsolutePath, Bounded, CommandGatewayConfig, HttpGatewayConfig, Template};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SmsConfig {
    /// Whether logins may ask for a code by SMS (needs a gateway section).
    pub enabled: bool,
    /// Whether a number may be a user's only factor: `twofoldctl user set --phone` then
    /// gives a user without a factor an SMS factor. Off (the default, NIST SP 800-63B's
    /// restricted authenticator): SMS is only an alternative to a user's app or e-mail,
    /// and a user whose only factor is SMS counts as not enrolled.
    pub sole_factor: bool,
    /// How long a code is valid.
    pub valid_minutes: Bounded<1, 10>,
    /// The least time between two texts to one user.
    pub min_interval_seconds: Bounded<10, 3600>,
    /// Texts one user may be sent in 15 minutes, and in a day.
    pub per_15_minutes: Bounded<1, 10>,
    pub per_day: Bounded<1, 50>,
    /// Texts this daemon sends in a minute to everyone together.
    pub global_per_minute: Bounded<1, 10000>,
    /// The number prefixes texts may go to, e.g. `["+49", "+33"]`; required when SMS is
    /// on: a number elsewhere is never texted.
    pub allowed_prefixes: Vec<NumberPrefix>,
    /// The gateway: exactly one of these sections is set when SMS is on.
    /// `[sms.kannel]`: Kannel's smsbox.
    pub kannel: Option<KannelConfig>,
    /// The text (`sms-code.txt`), set by [`crate::Config::load`].
    #[serde(skip)]
    pub text: Template,
    /// `[sms.http]`: a commercial gateway's HTTP interface, from a template.
    pub http: Option<HttpGatewayConfig>,
    /// `[sms.command]`: a program on this machine (gammu-smsd-inject, a site script).
    pub command: Option<CommandGatewayConfig>,
}

impl Default for SmsConfig {
    fn default() -> Self {
        SmsConfig {
            enabled: false,
            sole_factor: false,
            valid_minutes: Bounded(5),
            min_interval_seconds: Bounded(60),
            per_15_minutes: Bounded(3),
            per_day: Bounded(10),
            global_per_minute: Bounded(60),
            allowed_prefixes: Vec::new(),
            kannel: None,
            text: Template(crate::DEFAULT_SMS_TEXT.into()),
            http: None,
            command: None,
        }
    }
}

impl SmsConfig {
    /// How many gateway sections are set (one is needed).
    pub fn gateways(&self) -> usize {
        usize::from(self.kannel.is_some())
            + usize::from(self.http.is_some())
            + usize::from(self.command.is_some())
    }

    /// Whether `number` (E.164) may be texted.
    pub fn may_text(&self, number: &str) -> bool {
        self.allowed_prefixes
            .iter()
            .any(|p| number.starts_with(&p.0))
    }

    /// What the types cannot say.
    pub(crate) fn check(&self) -> Result<(), String> {
        if !self.enabled {
            return Ok(());
        }
        match self.gateways() {
            0 => {
                return Err(
                    "[sms] enabled = true needs a gateway: an [sms.kannel], [sms.http] or [sms.command] section"
                        .into(),
                );
            }
            1 => {}
            _ => return Err("[sms] has more than one gateway section: keep one".into()),
        }
        if self.allowed_prefixes.is_empty() {
            return Err(
                "[sms] enabled = true needs allowed_prefixes, the number prefixes texts may go to (e.g. [\"+49\"])".into(),
            );
        }
        if let Some(kannel) = &self.kannel {
            kannel.check()?;
        }
        if let Some(http) = &self.http {
            http.check()?;
        }
        if let Some(command) = &self.command {
            command.check()?;
        }
        Ok(())
    }
}

/// `[sms.kannel]`: smsbox's sendsms HTTP interface.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KannelConfig {
    /// The sendsms URL, e.g. `http://127.0.0.1:13013/cgi-bin/sendsms`. Plain `http` only
    /// to this machine: the password and the code must not cross a network in clear.
    pub url: HttpUrl,
    /// A `sendsms-user` of smsbox, and the file its password is read from (never the
    /// password itself in this file).
    pub username: String,
    pub password_file: AbsolutePath,
    /// How long one request may take, connection included.
    #[serde(default = "default_timeout")]
    pub timeout_seconds: Bounded<1, 30>,
    /// PEM certificates trusted instead of the system's, for an `https` URL.
    pub ca_file: Option<AbsolutePath>,
    /// The account that must hold the port of a plain `http` url (smsbox's, e.g.
    /// `kannel`); unset: root or a system account. A port held by anyone else gets
    /// nothing (a local user may bind it while Kannel is down).
    pub local_user: Option<String>,
    /// Where twofoldd listens for Kannel's delivery reports (`127.0.0.1:13080`): a
    /// loopback address, as smsbox calls it on this machine. Unset: none are asked for.
    pub reports_address: Option<std::net::SocketAddr>,
}

fn default_timeout() -> Bounded<1, 30> {
    Bounded(5)
}

impl KannelConfig {
    fn check(&self) -> Result<(), String> {
        if self.username.is_empty()
            || self.username.len() > 64
            || self.username.chars().any(|c| c.is_control())
        {
            return Err("[sms.kannel] username: 1 to 64 printable characters".into());
        }
        if self.url.scheme() == "http" && !self.url.is_local() {
            return Err(format!(
                "[sms.kannel] url {:?}: plain http is for a gateway on this machine only (localhost): use https",
                self.url.0
            ));
        }
        crate::sms::check_local_user("[sms.kannel]", self.local_user.as_deref(), &self.url)?;
        if let Some(address) = self.reports_address {
            if !address.ip().is_loopback() || address.port() == 0 {
                return Err(format!(
                    "[sms.kannel] reports_address {address}: a loopback address with a port, e.g. \"127.0.0.1:13080\" (smsbox reports on this machine)"
                ));
            }
            if self.url.scheme() != "http" {
                return Err("[sms.kannel] reports_address: delivery reports need Kannel on this machine (a plain http://localhost url)".into());
            }
        }
        Ok(())
    }
}

/// `local_user`, where set: an account name, and only for a plain `http` url.
pub(crate) fn check_local_user(
    section: &str,
    local_user: Option<&str>,
    url: &HttpUrl,
) -> Result<(), String> {
    let Some(name) = local_user else {
        return Ok(());
    };
    let valid = !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        && !name.starts_with('-');
    if !valid {
        return Err(format!(
            "{section} local_user {name:?}: an account name (letters, digits, . _ -)"
        ));
    }
    if url.scheme() != "http" {
        return Err(format!(
            "{section} local_user is for a plain http url on this machine; an https gateway is known by its certificate"
        ));
    }
    Ok(())
}

/// An `http://` or `https://` URL with a host, without user info or fragment.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(try_from = "String")]
pub struct HttpUrl(pub String);

impl HttpUrl {
    pub fn scheme(&self) -> &str {
        self.0.split_once("://").map_or("", |(s, _)| s)
    }

    /// The host, without port or brackets.
    pub fn host(&self) -> &str {
        let rest = self.0.split_once("://").map_or("", |(_, r)| r);
        let authority = rest.split(['/', '?']).next().unwrap_or("");
        match authority.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(""),
            None => authority.split(':').next().unwrap_or(""),
        }
    }

    /// The port, given or the scheme's.
    pub fn port(&self) -> u16 {
        let rest = self.0.split_once("://").map_or("", |(_, r)| r);
        let authority = rest.split(['/', '?']).next().unwrap_or("");
        let after_host = match authority.strip_prefix('[') {
            Some(v6) => v6.split_once(']').map_or("", |(_, r)| r),
            None => authority.split_once(':').map_or("", |(_, p)| p),
        };
        let given = after_host.strip_prefix(':').unwrap_or(after_host);
        given
            .parse()
            .unwrap_or(if self.scheme() == "https" { 443 } else { 80 })
    }

    pub(crate) fn is_local(&self) -> bool {
        ["localhost", "127.0.0.1", "::1"].contains(&self.host())
    }
}

impl TryFrom<String> for HttpUrl {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let url = HttpUrl(s);
        let bad = |why: &str| Err(format!("{:?} is not a usable URL: {why}", url.0));
        if !["http", "https"].contains(&url.scheme()) {
            return bad("it must start with http:// or https://");
        }
        if url.0.len() > 512 || url.0.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return bad("at most 512 characters, no spaces or control characters");
        }
        let authority = url.0.split_once("://").map_or("", |(_, r)| r);
        let authority = authority.split(['/', '?']).next().unwrap_or("");
        if authority.contains('@') || url.0.contains('#') {
            return bad("no user name, password or fragment in it");
        }
        if url.host().is_empty() {
            return bad("no host");
        }
        Ok(url)
    }
}

/// The start of an E.164 number: `+` and 1 to 6 digits, the first not 0.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(try_from = "String")]
pub struct NumberPrefix(pub String);

impl TryFrom<String> for NumberPrefix {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let digits = s.strip_prefix('+').unwrap_or("");
        let ok = (1..=6).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        if ok {
            Ok(NumberPrefix(s))
        } else {
            Err(format!(
                "expected a number prefix such as \"+49\" (+ and 1 to 6 digits), got {s:?}"
            ))
        }
    }
}
