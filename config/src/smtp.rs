//! `[smtp]`: the mail server that e-mailed codes and notices go through. Without the
//! section no mail is sent.

use crate::{AbsolutePath, Bounded};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    /// The server's host name (checked against its certificate) or address.
    pub host: HostName,
    /// `starttls` (the default), `tls` (implicit TLS), or `none`, which only a server on
    /// this machine may use (codes and credentials must not cross a network in clear).
    #[serde(default)]
    pub security: SmtpSecurity,
    /// Default: 587 with `starttls`, 465 with `tls`, 25 with `none`.
    pub port: Option<Bounded<1, 65535>>,
    /// Sign in with this user name and the password read from `password_file` (under
    /// systemd, a `LoadCredential=` path); never the password itself in this file.
    pub username: Option<String>,
    pub password_file: Option<AbsolutePath>,
    /// The sender, `twofold <twofold@example.org>` or `twofold@example.org`.
    pub from: MailAddress,
    /// How long one delivery may take, connection included.
    #[serde(default = "default_timeout")]
    pub timeout_seconds: Bounded<1, 120>,
    /// PEM certificates trusted beside the system's (a company CA).
    pub ca_file: Option<AbsolutePath>,
}

fn default_timeout() -> Bounded<1, 120> {
    Bounded(10)
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    #[default]
    Starttls,
    Tls,
    None,
}

impl SmtpConfig {
    pub fn port(&self) -> u16 {
        match (self.port, self.security) {
            (Some(p), _) => p.get() as u16,
            (None, SmtpSecurity::Starttls) => 587,
            (None, SmtpSecurity::Tls) => 465,
            (None, SmtpSecurity::None) => 25,
        }
    }

    /// What the types cannot say: credentials come in pairs, and no clear text leaves
    /// the machine.
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.username.is_some() != self.password_file.is_some() {
            return Err("[smtp] username and password_file go together".into());
        }
        let local = ["localhost", "127.0.0.1", "::1"].contains(&self.host.0.as_str());
        if self.security == SmtpSecurity::None && !local {
            return Err(format!(
                "[smtp] security = \"none\" is for a server on this machine only (localhost), not {:?}: use starttls or tls",
                self.host.0
            ));
        }
        Ok(())
    }
}

/// A DNS name or an IP address: letters, digits, `.`, `-`, `:` (IPv6), at most 253.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(try_from = "String")]
pub struct HostName(pub String);

impl TryFrom<String> for HostName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let ok = !s.is_empty()
            && s.len() <= 253
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-:".contains(c));
        if ok {
            Ok(HostName(s))
        } else {
            Err(format!("expected a host name or an IP address, got {s:?}"))
        }
    }
}

/// `local@domain`, optionally as `Name <local@domain>`: printable, no line breaks, at
/// most 254 characters (the daemon parses it again when it builds a message).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(try_from = "String")]
pub struct MailAddress(pub String);

impl TryFrom<String> for MailAddress {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let address = match (s.rfind('<'), s.strip_suffix('>')) {
            (Some(i), Some(_)) => &s[i + 1..s.len() - 1],
            _ => s.as_str(),
        };
        if s.len() <= 254 && !s.chars().any(char::is_control) && bare_address(address) {
            Ok(MailAddress(s))
        } else {
            Err(format!(
                "expected an e-mail address such as twofold@example.org, got {s:?}"
            ))
        }
    }
}

impl MailAddress {
    /// A user's address as an administrator gives it: `local@domain.tld` and nothing
    /// else (no display name, no list, nothing a header could be split on).
    pub fn plain(s: &str) -> Result<MailAddress, String> {
        let ok = s.len() <= 254
            && !s.contains(|c: char| c.is_control() || "<>,;\"".contains(c))
            && bare_address(s)
            && s.split_once('@').is_some_and(|(_, d)| d.contains('.'));
        if ok {
            Ok(MailAddress(s.to_owned()))
        } else {
            Err(format!(
                "expected a plain e-mail address such as alice@example.org, got {s:?}"
            ))
        }
    }
}

/// `local@domain`: both parts present, one `@`, no white space.
fn bare_address(a: &str) -> bool {
    !a.contains(char::is_whitespace)
        && a.split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && !d.is_empty() && !d.contains('@'))
}
