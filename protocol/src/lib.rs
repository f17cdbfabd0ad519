//! The D-Bus contract between `pam_twofold.so`, `twofoldd` and `twofoldctl`.
//!
//! One versioned bus name and object; two interfaces: `Auth` (the login conversation,
//! driven by the daemon) and `Manage` (enrolment and administration). Every error the
//! daemon returns is named under [`ERROR_PREFIX`].

use serde::{Deserialize, Serialize};
use zbus::Type;

/// Well-known bus name owned by `twofoldd`. The trailing 1 is the API version.
pub const BUS_NAME: &str = "org.twofold.Twofold1";
/// The one object the daemon serves.
pub const OBJECT_PATH: &str = "/org/twofold/Twofold1";
/// Interface of the login conversation.
pub const AUTH_INTERFACE: &str = "org.twofold.Twofold1.Auth";
/// Interface of enrolment and administration.
pub const MANAGE_INTERFACE: &str = "org.twofold.Twofold1.Manage";
/// Every daemon error is named `ERROR_PREFIX.<Kind>`.
pub const ERROR_PREFIX: &str = "org.twofold.Twofold1.Error";
/// twofoldd's own socket (D-Bus peer-to-peer), for logins and twofoldctl. Never read from
/// the environment by the module.
pub const SOCKET_PATH: &str = "/run/twofold/socket";
/// The socket beside [`SOCKET_PATH`] (same directory) that only root may connect to
/// (mode 0600): logins run by root (sshd, sudo, login) use it, so no local user can fill
/// its queue with a flood of connections to the public one.
pub const ROOT_SOCKET_NAME: &str = "root-socket";

/// The root-only socket that sits beside the public socket `socket`.
pub fn root_socket_path(socket: &std::path::Path) -> std::path::PathBuf {
    socket.with_file_name(ROOT_SOCKET_NAME)
}
/// Default address of the system bus. Never read from the environment by the module.
pub const SYSTEM_BUS_ADDRESS: &str = "unix:path=/run/dbus/system_bus_socket";

/// Longest user name, service, host, tty or SSH key string the daemon accepts.
pub const MAX_FIELD_LEN: usize = 1024;

/// A secret in groups of four, as apps show it and people type it (`twofoldctl enrol`
/// and the offer at login print it alike).
pub fn grouped(secret: &str) -> String {
    secret
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}
/// Longest SSH_AUTH_INFO_0 value the daemon accepts (it can list several keys).
pub const MAX_AUTH_INFO_LEN: usize = 16 * 1024;
/// Longest answer to a prompt the daemon accepts.
pub const MAX_RESPONSE_LEN: usize = 256;

/// What the PAM module knows about the login. Empty strings mean "not set".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct LoginContext {
    pub user: String,
    pub service: String,
    pub rhost: String,
    pub tty: String,
    pub ruser: String,
    /// `SSH_AUTH_INFO_0` from the PAM environment: the methods that already passed.
    pub ssh_auth_info: String,
    /// The pam.d line says (`offer_enrolment`) that the stack checked a first factor
    /// before the module, with `requisite`: only then may a root caller's login set up a
    /// factor at login (`twofoldd` trusts a user's own process anyway).
    pub offer_enrolment: bool,
}

impl LoginContext {
    /// A login through sshd: its PAM service (`sshd`, or a copy named `sshd-…`), or a
    /// context carrying sshd's SSH_AUTH_INFO_0. sshd shows messages only in front of a
    /// prompt (OpenSSH bug 2876), so what the user must read goes into a prompt there.
    pub fn is_ssh(&self) -> bool {
        self.service.starts_with("sshd") || !self.ssh_auth_info.is_empty()
    }
}

/// A message shown to the user before the step's action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct Message {
    pub style: Style,
    pub text: String,
}

/// How a message is shown. On the wire a `u`: 1 info, 2 error; a message with any
/// other code fails to decode, and so does the step that carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Info,
    Error,
}

/// One turn of the conversation: messages to show, then what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct Step {
    pub messages: Vec<Message>,
    pub action: Action,
    /// The prompt text for the two prompt actions; empty otherwise.
    pub prompt: String,
}

/// What the client does after a step's messages. On the wire a `u` (the codes in
/// [`Action::code`]); an unknown code fails to decode, so a client fails closed on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Ask for an answer without echo (codes), then call `Answer`.
    PromptSecret,
    /// Ask for an answer with echo (yes/no questions), then call `Answer`.
    PromptVisible,
    /// The second factor passed.
    Success,
    /// Refused (wrong code, locked, not enrolled).
    Denied,
    /// Refused: this transaction used up its tries.
    MaxTries,
    /// The user is outside twofold's scope by policy: the module returns PAM_IGNORE.
    OutOfScope,
    /// The daemon could not decide (store error): the login fails.
    Error,
}

/// A unit enum that travels as a D-Bus `u` with fixed codes.
trait WireCode: Sized + Copy + 'static {
    const ALL: &'static [Self];
    const WHAT: &'static str;
    fn code(self) -> u32;
    fn from_code(code: u32) -> Option<Self> {
        Self::ALL.iter().copied().find(|v| v.code() == code)
    }
}

impl WireCode for Action {
    const ALL: &'static [Action] = &[
        Action::PromptSecret,
        Action::PromptVisible,
        Action::Success,
        Action::Denied,
        Action::MaxTries,
        Action::OutOfScope,
        Action::Error,
    ];
    const WHAT: &'static str = "action";
    fn code(self) -> u32 {
        match self {
            Action::PromptSecret => 1,
            Action::PromptVisible => 2,
            Action::Success => 10,
            Action::Denied => 11,
            Action::MaxTries => 12,
            Action::OutOfScope => 13,
            Action::Error => 14,
        }
    }
}

impl WireCode for Style {
    const ALL: &'static [Style] = &[Style::Info, Style::Error];
    const WHAT: &'static str = "message style";
    fn code(self) -> u32 {
        match self {
            Style::Info => 1,
            Style::Error => 2,
        }
    }
}

macro_rules! wire_code {
    ($t:ty) => {
        impl $t {
            /// The code on the wire.
            pub fn code(self) -> u32 {
                WireCode::code(self)
            }
            /// `None` for a code this version does not know.
            pub fn from_code(code: u32) -> Option<$t> {
                <$t as WireCode>::from_code(code)
            }
        }
        impl Type for $t {
            const SIGNATURE: &'static zbus::Signature = &zbus::Signature::U32;
        }
        impl Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_u32(self.code())
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<$t, D::Error> {
                let code = u32::deserialize(d)?;
                <$t>::from_code(code).ok_or_else(|| {
                    serde::de::Error::custom(format!("unknown {} {code}", <$t as WireCode>::WHAT))
                })
            }
        }
    };
}
wire_code!(Action);
wire_code!(Style);

impl Step {
    pub fn new(action: Action) -> Step {
        Step {
            messages: Vec::new(),
            action,
            prompt: String::new(),
        }
    }

    pub fn prompt(action: Action, prompt: &str) -> Step {
        Step {
            messages: Vec::new(),
            action,
            prompt: prompt.to_owned(),
        }
    }

    pub fn info(mut self, text: impl Into<String>) -> Step {
        self.messages.push(Message {
            style: Style::Info,
            text: text.into(),
        });
        self
    }

    pub fn error(mut self, text: impl Into<String>) -> Step {
        self.messages.push(Message {
            style: Style::Error,
            text: text.into(),
        });
        self
    }
}

/// A new secret, returned once by `Enrol` so the user can add it to an app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct EnrolmentOffer {
    pub user: String,
    /// Base32 (RFC 4648, unpadded): what authenticator apps accept as text.
    pub secret: String,
    pub otpauth_uri: String,
    /// What someone typing the secret by hand must also set in the app.
    /// `SHA1`, `SHA256` or `SHA512`.
    pub algorithm: String,
    pub digits: u32,
    /// Seconds per code.
    pub period: u32,
    /// Ten single-use recovery codes, shown this once (they replace any earlier ones).
    pub recovery_codes: Vec<String>,
}

/// A user's second-factor state as `Status` and `List` report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct UserStatus {
    pub user: String,
    /// `none`, `pending` (secret issued, no code verified yet) or `active`.
    pub state: String,
    /// `totp` (an authenticator app), `email` (codes to the address on record), or ""
    /// with no factor.
    pub factor: String,
    /// Unix seconds; 0 when unknown.
    pub enrolled_at: i64,
    pub last_success: i64,
    pub failures: u32,
    /// Unix seconds until which logins are refused; 0 when not locked.
    pub locked_until: i64,
    /// Whether policy requires a second factor of this user.
    pub in_scope: bool,
    /// For a user without an active factor: when enrolment becomes mandatory (the
    /// latest of the global deadline and the user's and groups' deferrals); 0 = none.
    pub grace_until: i64,
    /// Trusted sessions and remembered devices currently valid.
    pub trusted: u32,
    /// Recovery codes not used yet.
    pub recovery_codes: u32,
    /// Another user has the same e-mail address: whoever reads that mailbox gets the
    /// codes of each.
    pub email_shared: bool,
    /// The number codes are texted to, masked (`+49********678`), or "".
    pub phone: String,
    /// Another user has the same number: whoever holds that phone gets the codes of each.
    pub phone_shared: bool,
}

/// A trusted session window or remembered device, as `TrustList` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct TrustInfo {
    /// The first 12 hex digits of the record's id; enough for `TrustRevoke`.
    pub id: String,
    pub user: String,
    /// `session` (verified session window) or `device` (remembered device).
    pub kind: String,
    pub device: String,
    pub service: String,
    pub created_at: i64,
    pub last_used: i64,
    pub expires_at: i64,
}

/// An enrolment deferral for a user (`alice`) or a group (`@staff`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct Deferral {
    pub subject: String,
    pub until: i64,
    pub reason: String,
    pub created_at: i64,
}

/// Most entries one page of a listing holds (`List`, `TrustList`, `GraceList`); a
/// larger `limit` is served as this. A page of the largest entries stays near 3 MiB, far
/// below what a D-Bus message may carry.
pub const MAX_PAGE: u32 = 1000;

/// Names of the errors under [`ERROR_PREFIX`].
pub mod errors {
    pub const PERMISSION_DENIED: &str = "org.twofold.Twofold1.Error.PermissionDenied";
    pub const NOT_ENROLLED: &str = "org.twofold.Twofold1.Error.NotEnrolled";
    pub const ALREADY_ENROLLED: &str = "org.twofold.Twofold1.Error.AlreadyEnrolled";
    pub const UNKNOWN_USER: &str = "org.twofold.Twofold1.Error.UnknownUser";
    pub const INVALID_INPUT: &str = "org.twofold.Twofold1.Error.InvalidInput";
    pub const WRONG_CODE: &str = "org.twofold.Twofold1.Error.WrongCode";
    pub const NO_CONVERSATION: &str = "org.twofold.Twofold1.Error.NoConversation";
    pub const STORE: &str = "org.twofold.Twofold1.Error.Store";
}

/// Client side of the login conversation.
#[zbus::proxy(
    interface = "org.twofold.Twofold1.Auth",
    default_service = "org.twofold.Twofold1",
    default_path = "/org/twofold/Twofold1"
)]
pub trait Auth {
    /// Start a conversation; returns its id and the first step.
    fn begin(&self, context: &LoginContext) -> zbus::Result<(String, Step)>;
    /// Answer the last prompt; returns the next step.
    fn answer(&self, conversation: &str, response: &str) -> zbus::Result<Step>;
    /// Drop a conversation early (the PAM application went away).
    fn cancel(&self, conversation: &str) -> zbus::Result<()>;
}

/// Client side of enrolment and administration.
#[zbus::proxy(
    interface = "org.twofold.Twofold1.Manage",
    default_service = "org.twofold.Twofold1",
    default_path = "/org/twofold/Twofold1"
)]
pub trait Manage {
    fn enrol(&self, user: &str, replace: bool) -> zbus::Result<EnrolmentOffer>;
    fn confirm_enrolment(&self, user: &str, code: &str) -> zbus::Result<()>;
    fn status(&self, user: &str) -> zbus::Result<UserStatus>;
    /// The users with a factor, in name order, one page at a time: up to `limit` entries
    /// after the cursor `after` ("" for the first page). Returns the page and the cursor
    /// of the next page, "" when this was the last. The same holds for `TrustList` and
    /// `GraceList`.
    fn list(&self, after: &str, limit: u32) -> zbus::Result<(Vec<UserStatus>, String)>;
    fn reset(&self, user: &str) -> zbus::Result<bool>;
    fn unlock(&self, user: &str) -> zbus::Result<()>;
    /// Valid trust records, oldest first; `user` empty: every user's (administrators only).
    fn trust_list(
        &self,
        user: &str,
        after: &str,
        limit: u32,
    ) -> zbus::Result<(Vec<TrustInfo>, String)>;
    /// Revokes one record by id, or all of the user's with `id` empty. Returns how many.
    fn trust_revoke(&self, user: &str, id: &str) -> zbus::Result<u32>;
    fn grace_set(&self, subject: &str, until: i64, reason: &str) -> zbus::Result<()>;
    fn grace_list(&self, after: &str, limit: u32) -> zbus::Result<(Vec<Deferral>, String)>;
    fn grace_clear(&self, subject: &str) -> zbus::Result<bool>;
    /// Where the user's codes and notices are e-mailed (administrators only); an empty
    /// address removes it. A user without a factor gets the e-mail factor. Returns the
    /// other users (at most ten) with the same address.
    fn user_set_email(&self, user: &str, address: &str) -> zbus::Result<Vec<String>>;
    /// The number (E.164) the user's codes are texted to (administrators only); empty
    /// removes it. Codes texted before end. Returns the other users (at most ten) with
    /// the same number.
    fn user_set_phone(&self, user: &str, number: &str) -> zbus::Result<Vec<String>>;
    /// New recovery codes for the user in place of the old ones (administrators only);
    /// returned this once.
    fn recovery_regenerate(&self, user: &str) -> zbus::Result<Vec<String>>;
    /// The security keys (`SHA256:…` fingerprints) that may stand in for a code over SSH
    /// under `accept_security_keys`, in place of the user's earlier ones; empty removes
    /// them (administrators only).
    fn user_set_security_keys(&self, user: &str, fingerprints: &[&str]) -> zbus::Result<()>;
    /// What the store is and holds, as (what, value) lines (administrators only).
    fn store_check(&self) -> zbus::Result<Vec<(String, String)>>;
    /// Brings the store's schema up to date; returns the version found and the one now.
    fn store_migrate(&self) -> zbus::Result<(i64, i64)>;
    /// Copies the SQLite file at `path` (absolute, read by twofoldd) into a PostgreSQL
    /// store that holds no factor yet (root only). Returns the rows each table received.
    fn store_import(&self, path: &str) -> zbus::Result<Vec<(String, String)>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_unknown_codes_are_rejected() {
        for a in Action::ALL {
            assert_eq!(Action::from_code(a.code()), Some(*a));
        }
        for st in Style::ALL {
            assert_eq!(Style::from_code(st.code()), Some(*st));
        }
        assert_eq!(Action::from_code(0), None);
        assert_eq!(Action::from_code(99), None);
        assert_eq!(Style::from_code(3), None);
    }

    #[test]
    fn a_step_travels_as_before_and_an_unknown_code_does_not_decode() {
        use zbus::wire::serialized::Context;
        let ctxt = Context::new(zbus::wire::LE, 0);
        let step = Step::prompt(Action::PromptSecret, "Code: ").info("hi");
        assert_eq!(Step::SIGNATURE.to_string(), "(a(us)us)");
        let bytes = zbus::wire::to_bytes(ctxt, &step).unwrap();
        let (back, _): (Step, _) = bytes.deserialize().unwrap();
        assert_eq!(back, step);
        // The same layout with action 99: refused, not guessed.
        let raw = (Vec::<(u32, String)>::new(), 99u32, String::new());
        let bytes = zbus::wire::to_bytes(ctxt, &raw).unwrap();
        let err = bytes.deserialize::<Step>().unwrap_err();
        assert!(err.to_string().contains("unknown action 99"), "{err}");
        let raw = (vec![(7u32, "x".to_string())], 10u32, String::new());
        let bytes = zbus::wire::to_bytes(ctxt, &raw).unwrap();
        assert!(bytes.deserialize::<Step>().is_err());
    }

    #[test]
    fn error_names_share_the_prefix() {
        for name in [
            errors::PERMISSION_DENIED,
            errors::NOT_ENROLLED,
            errors::STORE,
        ] {
            assert!(name.starts_with(ERROR_PREFIX));
        }
    }
}
