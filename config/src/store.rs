//! `[store]`: where twofoldd keeps its state (SQLite on this host, or a PostgreSQL
//! database that a fleet of hosts shares), and `[fleet]`: this host's name and group
//! among them.

use crate::{AbsolutePath, Bounded, Name};
use serde::Deserialize;

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// One file on this host, `[daemon] database`.
    #[default]
    Sqlite,
    /// One database for many hosts, `[store] url`.
    Postgres,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    pub backend: Backend,
    /// `postgresql://USER@HOST:PORT/DATABASE`, without a password (see `password_file`).
    pub url: Option<PostgresUrl>,
    /// The database password, read at start; under systemd a `LoadCredential=` path
    /// (`/run/credentials/twofoldd.service/NAME`). Never the password itself in this file.
    pub password_file: Option<AbsolutePath>,
    /// PEM certificates of the CA that signed the server's certificate; unset: the
    /// system's. The server's name is always checked against its certificate.
    pub ca_file: Option<AbsolutePath>,
    /// Connections to the database. A login holds one for the few statements it makes;
    /// twofoldd runs at most 4 calls at once, so more than 4 (and the listings' own) are
    /// not used today.
    pub pool_size: Bounded<1, 64>,
    /// The longest one statement may run (or wait for a lock) before the server stops it
    /// and the login fails closed.
    pub statement_timeout_ms: Bounded<100, 60000>,
    /// How long connecting to the server may take.
    pub connect_timeout_ms: Bounded<100, 60000>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            backend: Backend::Sqlite,
            url: None,
            password_file: None,
            ca_file: None,
            pool_size: Bounded(4),
            statement_timeout_ms: Bounded(2000),
            connect_timeout_ms: Bounded(2000),
        }
    }
}

impl StoreConfig {
    /// What the types cannot say: a PostgreSQL store needs its URL, and the settings of
    /// one back end are not given to the other.
    pub(crate) fn check(&self) -> Result<(), String> {
        match (self.backend, &self.url) {
            (Backend::Postgres, None) => {
                Err("[store] backend = \"postgres\" needs url = \"postgresql://…\"".into())
            }
            (Backend::Sqlite, Some(_)) => Err(
                "[store] url is for backend = \"postgres\"; the SQLite file is [daemon] database"
                    .into(),
            ),
            (Backend::Sqlite, None) if self.password_file.is_some() || self.ca_file.is_some() => {
                Err("[store] password_file and ca_file are for backend = \"postgres\"".into())
            }
            (Backend::Postgres, Some(url)) if url.has_password() => {
                Err("[store] url holds a password: put it in [store] password_file instead".into())
            }
            _ => Ok(()),
        }
    }
}

impl PostgresUrl {
    /// A password in the URL is refused (checked after parsing, so that the error does
    /// not quote the line): the configuration file is readable by more than the daemon,
    /// and a password there would end up in backups and bug reports.
    fn has_password(&self) -> bool {
        let rest = self.0.split_once("://").map(|(_, r)| r).unwrap_or("");
        let authority = rest.split(['/', '?']).next().unwrap_or("");
        let in_authority = authority
            .rsplit_once('@')
            .is_some_and(|(user, _)| user.contains(':'));
        let query = rest.split_once('?').map(|(_, q)| q).unwrap_or("");
        in_authority
            || query
                .split('&')
                .any(|kv| kv.split('=').next() == Some("password"))
    }
}

/// A `postgresql://` (or `postgres://`) URL. twofoldd parses the rest (and names what is
/// wrong) at start.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(try_from = "String")]
pub struct PostgresUrl(pub String);

impl TryFrom<String> for PostgresUrl {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.strip_prefix("postgresql://")
            .or_else(|| s.strip_prefix("postgres://"))
            .ok_or_else(|| {
                "expected a URL such as postgresql://twofold@db.example.org/twofold".to_string()
            })?;
        if s.len() > 1024 || s.chars().any(char::is_control) {
            return Err("expected a URL of at most 1024 printable characters".into());
        }
        Ok(PostgresUrl(s))
    }
}

/// This host among the hosts that share one PostgreSQL store.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FleetConfig {
    /// This host's name in the shared store (trust records, audit); unset: its host name.
    pub host: Option<Name>,
    /// Hosts with the same group share their trust: a session window or remembered
    /// device one of them created lets the user in on all of them. Unset: trust stays
    /// with the host that created it. Enrolments, lockouts and replay are always shared.
    pub group: Option<Name>,
}
