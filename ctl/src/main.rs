//! twofoldctl: the administrator's and user's command line over D-Bus. It holds no state
//! and decides nothing: the daemon checks who is asking.

mod code;
mod output;

use clap::{Parser, Subcommand, ValueEnum};
use std::process::ExitCode;
use twofold_protocol::{ManageProxy, SOCKET_PATH, SYSTEM_BUS_ADDRESS, errors};
use zbus::proxy::CacheProperties;

const EXIT_CODES: &str = "\
Exit codes:
  0  done
  1  failed (the message says why)
  2  bad command line or input
  3  twofoldd or its bus cannot be reached
  4  permission denied (administrators only, or another user's account)
  5  wrong code";

#[derive(Parser)]
#[command(
    name = "twofoldctl",
    version,
    about = "Manage twofold second factors (TOTP codes from an authenticator app)",
    after_help = EXIT_CODES
)]
struct Cli {
    /// twofoldd's own socket (works while dbus-daemon is down).
    #[arg(long, global = true, default_value = SOCKET_PATH, value_name = "PATH")]
    socket: String,
    /// The account twofoldd runs as, when not root: only its socket is trusted with codes.
    #[arg(long, global = true, value_name = "USER")]
    daemon_user: Option<String>,
    /// Talk to twofoldd over this D-Bus bus instead of its socket (`system` for the system bus).
    #[arg(long, global = true, value_name = "ADDRESS")]
    bus: Option<String>,
    /// Machine-readable output (JSON) instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

/// How `enrol` draws the QR code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum QrStyle {
    /// `color` on a terminal, `text` otherwise.
    Auto,
    /// Black on white set with ANSI colours: scans whatever the terminal's theme.
    Color,
    /// No escape codes; dark modules drawn as block characters (right on a light
    /// background, e.g. printed or pasted into a document).
    Text,
    /// No QR code: the URI and the secret only.
    None,
}

#[derive(Subcommand)]
enum Command {
    /// Issue a new TOTP secret: QR code, otpauth:// URI and secret as text; asks for a code.
    ///
    /// Shows a QR code to scan with an authenticator app, the otpauth:// URI and the secret
    /// as text for typing by hand, then asks for a first code from the app to verify it.
    #[command(visible_alias = "enroll", after_help = EXIT_CODES)]
    Enrol {
        /// The account to enrol (yourself, or anyone as an administrator).
        user: String,
        /// Do not ask for a first code: the user's first login (or `twofoldctl confirm`)
        /// verifies it.
        #[arg(long)]
        no_verify: bool,
        /// Replace an active factor; the old app stops working (administrators only).
        #[arg(long)]
        replace: bool,
        /// How to draw the QR code.
        #[arg(long, value_enum, default_value_t = QrStyle::Auto, value_name = "STYLE")]
        qr: QrStyle,
    },
    /// Verify a first code for a pending enrolment (asks for the code).
    ///
    /// The code is read from a prompt with echo off, or from one line of standard input
    /// when it is not a terminal (`echo 123456 | twofoldctl confirm alice`); never from the
    /// command line, where every local user could read it in /proc and the shell keeps it.
    #[command(after_help = EXIT_CODES)]
    Confirm {
        /// The account whose pending secret the code comes from.
        user: String,
        /// Refused: a code on the command line is visible to every local user.
        #[arg(hide = true)]
        code: Option<String>,
    },
    /// Show a user's state (default: yourself).
    #[command(after_help = EXIT_CODES)]
    Status {
        /// The account to show (administrators may name anyone).
        user: Option<String>,
    },
    /// List every user with a factor (administrators only).
    #[command(after_help = EXIT_CODES)]
    List,
    /// Remove a user's factor, e.g. after a lost phone (administrators only).
    ///
    /// Their trusted sessions and devices end too. Their next login is then that of a user
    /// who never enrolled:
    /// with `[login] unenrolled = "deny"` (the default) it is refused until they enrol
    /// again, unless a grace period (`twofoldctl grace set`) lets them in with a reminder;
    /// with `unenrolled = "ignore"` the password alone decides.
    ///
    /// `--factor sms` removes only the number codes are texted to (a lost or stolen
    /// phone whose app is elsewhere), and ends the codes texted to it.
    #[command(after_help = EXIT_CODES)]
    Reset {
        /// The account whose factor is removed.
        user: String,
        /// Which: `all` (the default: the factor, its trust and recovery codes) or `sms`
        /// (the number only).
        #[arg(long, value_enum, default_value = "all")]
        factor: ResetWhat,
    },
    /// End a lockout after too many wrong codes (administrators only).
    #[command(after_help = EXIT_CODES)]
    Unlock {
        /// The locked account.
        user: String,
    },
    /// Trusted sessions and remembered devices.
    #[command(subcommand)]
    Trust(TrustCommand),
    /// Enrolment deferrals: let users log in without a factor until a date (administrators only).
    #[command(subcommand)]
    Grace(GraceCommand),
    /// A user's contact details (administrators only).
    #[command(subcommand)]
    User(UserCommand),
    /// The store twofoldd keeps its state in: SQLite, or a fleet's PostgreSQL
    /// (administrators only; docs/fleet.md).
    #[command(subcommand)]
    Store(StoreCommand),
    /// Recovery codes: single-use codes for a lost phone (administrators only).
    ///
    /// Ten come with every enrolment; `status` shows how many are left. With
    /// --regenerate, ten new ones replace them and are shown this once.
    #[command(after_help = EXIT_CODES)]
    Recovery {
        /// The account.
        user: String,
        /// Issue new codes (the old ones stop working).
        #[arg(long, required = true)]
        regenerate: bool,
    },
    /// Print a completion script for a shell (the packages install them).
    #[command(hide = true)]
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ResetWhat {
    All,
    Sms,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Set where USER's codes and notices are e-mailed (--email, --no-email), the number
    /// codes are texted to (--phone, --no-phone), or the security keys that may stand in
    /// for a code over SSH (--security-key, --no-security-keys).
    ///
    /// Only an administrator sets them, never taken from anything the user can edit
    /// (GECOS, a file in their home). The old address and the new are both told. A user
    /// without a factor gets the e-mail factor with an address. A new number ends the
    /// codes texted before, and the user is told by e-mail.
    #[command(after_help = EXIT_CODES)]
    #[command(group(clap::ArgGroup::new("what").required(true).multiple(true)
        .args(["email", "no_email", "phone", "no_phone", "security_key", "no_security_keys"])))]
    Set {
        /// The account.
        user: String,
        /// A plain address: alice@example.org.
        #[arg(long, value_name = "ADDRESS")]
        email: Option<String>,
        /// Remove the address.
        #[arg(long, conflicts_with = "email")]
        no_email: bool,
        /// The number codes are texted to, in E.164 form: +4915112345678.
        #[arg(long, value_name = "+NUMBER", conflicts_with_all = ["email", "no_email"])]
        phone: Option<String>,
        /// Remove the number (a lost phone: `reset USER --factor sms` does the same).
        #[arg(long, conflicts_with_all = ["phone", "email", "no_email"])]
        no_phone: bool,
        /// The fingerprint of a FIDO2 key (`ssh-keygen -lf key.pub`: SHA256:…) whose SSH
        /// logins pass without a code where `accept_security_keys` is on; repeat for more.
        /// Replaces the keys registered before.
        #[arg(long, value_name = "SHA256:…", conflicts_with_all = ["email", "no_email", "phone", "no_phone"])]
        security_key: Vec<String>,
        /// Remove every registered security key.
        #[arg(long, conflicts_with_all = ["security_key", "email", "no_email", "phone", "no_phone"])]
        no_security_keys: bool,
    },
}

#[derive(Subcommand)]
enum TrustCommand {
    /// List valid trust (default: yourself; administrators may name anyone, or --all).
    #[command(after_help = EXIT_CODES)]
    List {
        /// The account whose trust to list.
        user: Option<String>,
        /// Every user's (administrators only).
        #[arg(long, conflicts_with = "user")]
        all: bool,
    },
    /// Revoke one trusted session or device by its id, or all of the user's with --all.
    #[command(after_help = EXIT_CODES)]
    Revoke {
        /// The account the trust belongs to (yourself, or anyone as an administrator).
        user: String,
        /// The ID column of `twofoldctl trust list` (at least its first 8 hex digits).
        #[arg(required_unless_present = "all")]
        id: Option<String>,
        /// Revoke every trusted session and device of the user.
        #[arg(long, conflicts_with = "id")]
        all: bool,
    },
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Whether the store answers, its schema version, and how much it holds.
    #[command(after_help = EXIT_CODES)]
    Check,
    /// Bring the store's schema up to this twofoldd's version (twofoldd also does at
    /// start, under a lock, so that hosts starting together do not race).
    #[command(after_help = EXIT_CODES)]
    Migrate,
    /// Copy a host's SQLite file into the fleet's PostgreSQL database, once, while that
    /// holds no factor yet (root only). Trust records become this host's.
    #[command(after_help = EXIT_CODES)]
    Import {
        /// The SQLite file (absolute path), e.g. /var/lib/twofold/twofold.db.
        file: std::path::PathBuf,
    },
}

#[derive(Subcommand)]
enum GraceCommand {
    /// Defer enrolment for USER or @GROUP until a date: until then they log in without a
    /// second factor and are reminded at every login.
    #[command(after_help = EXIT_CODES)]
    Set {
        /// A user name, or @GROUP for every member of a group.
        subject: String,
        /// The end of the deferral: a date (2027-01-31, meaning 00:00 UTC) or an RFC 3339
        /// time; at most `[enrolment] max_deferral_days` ahead.
        #[arg(long, value_name = "DATE")]
        until: String,
        /// Why, for the audit log and `grace list` (at most 200 characters).
        #[arg(long, default_value = "", value_name = "TEXT")]
        reason: String,
    },
    /// List deferrals.
    #[command(after_help = EXIT_CODES)]
    List,
    /// Remove the deferral of USER or @GROUP.
    #[command(after_help = EXIT_CODES)]
    Clear {
        /// A user name, or @GROUP.
        subject: String,
    },
}

/// A failure with its exit code.
struct Failure {
    code: u8,
    message: String,
}

fn explain(e: zbus::Error, bus: &str) -> Failure {
    let fail = |code, message: String| Failure { code, message };
    match e {
        zbus::Error::MethodError(name, text, _) => {
            let text = text.unwrap_or_default();
            match name.as_str() {
                errors::PERMISSION_DENIED => fail(4, format!("permission denied: {text}")),
                errors::WRONG_CODE => fail(5, text),
                "org.freedesktop.DBus.Error.ServiceUnknown"
                | "org.freedesktop.DBus.Error.NameHasNoOwner" => fail(
                    3,
                    format!("twofoldd is not running (no owner of its name on {bus})"),
                ),
                _ => fail(1, text),
            }
        }
        zbus::Error::FDO(e)
            if matches!(
                *e,
                zbus::fdo::Error::ServiceUnknown(_) | zbus::fdo::Error::NameHasNoOwner(_)
            ) =>
        {
            fail(
                3,
                format!("twofoldd is not running (no owner of its name on {bus})"),
            )
        }
        zbus::Error::InputOutput(_) | zbus::Error::Address(_) | zbus::Error::Handshake(_) => fail(
            3,
            format!("cannot reach twofoldd at {bus}: is it running? ({e})"),
        ),
        other => fail(1, other.to_string()),
    }
}

fn main() -> ExitCode {
    // A closed pipe (`twofoldctl list | head -n 1`) ends the program quietly, as it ends
    // ls: Rust ignores SIGPIPE by default and println! would then panic.
    // SAFETY: restoring the default disposition, before any other thread exists.
    let _ = unsafe {
        nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigDfl,
        )
    };
    let cli = Cli::parse();
    // Needs no daemon: printed before anything connects.
    if let Command::Completions { shell } = &cli.command {
        use clap::CommandFactory;
        clap_complete::generate(
            *shell,
            &mut Cli::command(),
            "twofoldctl",
            &mut std::io::stdout(),
        );
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("twofoldctl: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("twofoldctl: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

/// A connection to twofoldd: its socket, or a bus with `--bus`. Returns it and a name
/// for it in messages.
async fn connect(cli: &Cli) -> Result<(zbus::Connection, String), Failure> {
    let unreachable = |place: &str, e: &dyn std::fmt::Display| Failure {
        code: 3,
        message: format!("cannot reach twofoldd at {place}: is it running? ({e})"),
    };
    let timeout = std::time::Duration::from_secs(15);
    if let Some(bus) = &cli.bus {
        let address = if bus == "system" {
            SYSTEM_BUS_ADDRESS
        } else {
            bus.as_str()
        };
        let place = format!("the bus {address}");
        let conn = zbus::connection::Builder::address(address)
            .method_timeout(timeout)
            .build()
            .await
            .map_err(|e| unreachable(&place, &e))?;
        return Ok((conn, place));
    }
    // Root uses the root-only socket beside it when there is one: no user's flood of
    // connections to the public socket can hold it up.
    let root_socket = twofold_protocol::root_socket_path(std::path::Path::new(&cli.socket));
    let private = nix::unistd::geteuid()
        .is_root()
        .then(|| std::os::unix::net::UnixStream::connect(&root_socket).ok())
        .flatten();
    let place = format!("the socket {}", cli.socket);
    let stream = match private {
        Some(stream) => stream,
        None => std::os::unix::net::UnixStream::connect(&cli.socket)
            .map_err(|e| unreachable(&place, &e))?,
    };
    // A code typed here must only reach twofoldd: root, or (a private test daemon) ourselves.
    let peer = nix::sys::socket::getsockopt(&stream, nix::sys::socket::sockopt::PeerCredentials)
        .map_err(|e| unreachable(&place, &e))?;
    let daemon_uid = match &cli.daemon_user {
        None => 0,
        Some(name) => match nix::unistd::User::from_name(name) {
            Ok(Some(u)) => u.uid.as_raw(),
            _ => {
                return Err(Failure {
                    code: 2,
                    message: format!("--daemon-user {name}: no such user"),
                });
            }
        },
    };
    let me = nix::unistd::geteuid().as_raw();
    if ![0, daemon_uid, me].contains(&peer.uid()) {
        return Err(Failure {
            code: 4,
            message: format!(
                "{place} belongs to uid {}, not to twofoldd's account: refusing to talk to it",
                peer.uid()
            ),
        });
    }
    let conn = zbus::connection::Builder::unix_stream(stream)
        .p2p()
        .method_timeout(timeout)
        .build()
        .await
        .map_err(|e| unreachable(&place, &e))?;
    Ok((conn, place))
}

/// Entries asked for per page of a listing (the daemon serves at most
/// `twofold_protocol::MAX_PAGE`).
const PAGE: u32 = 500;

/// Fetches a listing page by page (`fetch` takes the cursor, "" first) and prints each
/// page as it arrives.
async fn print_pages<T: output::Entry, F, Fut>(json: bool, mut fetch: F) -> Result<(), Failure>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = Result<(Vec<T>, String), Failure>>,
{
    let mut out = output::Listing::new(json);
    let mut after = String::new();
    loop {
        let (page, next) = fetch(after).await?;
        out.page(&page).map_err(written)?;
        if next.is_empty() {
            return out.finish().map_err(written);
        }
        after = next;
    }
}

fn written(e: std::io::Error) -> Failure {
    Failure {
        code: 1,
        message: format!("cannot write the output: {e}"),
    }
}

async fn run(cli: &Cli) -> Result<(), Failure> {
    let (conn, place) = connect(cli).await?;
    let bus = place.as_str();
    let manage = ManageProxy::builder(&conn)
        .cache_properties(CacheProperties::No)
        .build()
        .await
        .map_err(|e| explain(e, bus))?;
    let z = |e| explain(e, bus);
    match &cli.command {
        Command::Enrol {
            user,
            no_verify,
            replace,
            qr,
        } => {
            let offer = manage.enrol(user, *replace).await.map_err(z)?;
            output::offer(&offer, *qr, cli.json);
            if *no_verify {
                if !cli.json {
                    println!(
                        "Not verified yet: {user}'s first login (or `twofoldctl confirm`) verifies the code."
                    );
                }
                return Ok(());
            }
            let code = read_code(user)?;
            manage.confirm_enrolment(user, &code).await.map_err(z)?;
            output::confirmed(user, cli.json);
        }
        Command::Confirm { user, code } => {
            if code.is_some() {
                return Err(Failure {
                    code: 2,
                    message: format!(
                        "the code is not taken on the command line (every local user can read it there); \
                         run `twofoldctl confirm {user}` and type it, or pipe it on standard input"
                    ),
                });
            }
            let code = read_code(user)?;
            manage.confirm_enrolment(user, &code).await.map_err(z)?;
            output::confirmed(user, cli.json);
        }
        Command::Status { user } => {
            let user = match user {
                Some(u) => u.clone(),
                None => current_user()?,
            };
            let mut out = output::Listing::new(cli.json);
            out.page(&[manage.status(&user).await.map_err(z)?])
                .map_err(written)?;
            out.finish().map_err(written)?;
        }
        Command::List => {
            let m = &manage;
            print_pages(cli.json, move |after| async move {
                m.list(&after, PAGE).await.map_err(z)
            })
            .await?;
        }
        Command::Reset {
            user,
            factor: ResetWhat::Sms,
        } => {
            manage.user_set_phone(user, "").await.map_err(z)?;
            output::done(user, "phone number removed", true, cli.json);
        }
        Command::Reset { user, .. } => {
            let removed = manage.reset(user).await.map_err(z)?;
            output::done(
                user,
                if removed {
                    "factor removed"
                } else {
                    "had no factor"
                },
                removed,
                cli.json,
            );
        }
        Command::Unlock { user } => {
            manage.unlock(user).await.map_err(z)?;
            output::done(user, "unlocked", true, cli.json);
        }
        Command::Trust(TrustCommand::List { user, all }) => {
            let user = match (user, all) {
                (_, true) => String::new(),
                (Some(u), false) => u.clone(),
                (None, false) => current_user()?,
            };
            let (m, user) = (&manage, &user);
            print_pages(cli.json, move |after| async move {
                m.trust_list(user, &after, PAGE).await.map_err(z)
            })
            .await?;
        }
        Command::Trust(TrustCommand::Revoke { user, id, .. }) => {
            let n = manage
                .trust_revoke(user, id.as_deref().unwrap_or(""))
                .await
                .map_err(z)?;
            output::done(
                user,
                &format!("{n} trusted device(s) or session(s) revoked"),
                n > 0,
                cli.json,
            );
        }
        Command::Grace(GraceCommand::Set {
            subject,
            until,
            reason,
        }) => {
            let instant = twofold_config::parse_instant(until).map_err(|m| Failure {
                code: 2,
                message: m,
            })?;
            manage
                .grace_set(subject, instant, reason)
                .await
                .map_err(z)?;
            output::done(
                subject,
                &format!("may log in without a second factor until {until}"),
                true,
                cli.json,
            );
        }
        Command::Grace(GraceCommand::List) => {
            let m = &manage;
            print_pages(cli.json, move |after| async move {
                m.grace_list(&after, PAGE).await.map_err(z)
            })
            .await?;
        }
        Command::Completions { .. } => {}
        Command::Store(StoreCommand::Check) => {
            let lines = manage.store_check().await.map_err(z)?;
            output::facts(&lines, cli.json);
        }
        Command::Store(StoreCommand::Migrate) => {
            let (found, now) = manage.store_migrate().await.map_err(z)?;
            output::facts(
                &[
                    ("schema found".into(), found.to_string()),
                    ("schema now".into(), now.to_string()),
                ],
                cli.json,
            );
        }
        Command::Store(StoreCommand::Import { file }) => {
            let path = std::path::absolute(file).map_err(|e| Failure {
                code: 2,
                message: format!("{}: {e}", file.display()),
            })?;
            let copied = manage
                .store_import(&path.to_string_lossy())
                .await
                .map_err(z)?;
            output::facts(&copied, cli.json);
        }
        Command::Recovery { user, .. } => {
            let codes = manage.recovery_regenerate(user).await.map_err(z)?;
            output::recovery_codes(user, &codes, cli.json);
        }
        Command::User(UserCommand::Set {
            user,
            security_key,
            no_security_keys,
            ..
        }) if !security_key.is_empty() || *no_security_keys => {
            let keys: Vec<&str> = security_key.iter().map(String::as_str).collect();
            manage
                .user_set_security_keys(user, &keys)
                .await
                .map_err(z)?;
            output::done(
                user,
                &format!("{} security key(s) registered", keys.len()),
                true,
                cli.json,
            );
        }
        Command::User(UserCommand::Set {
            user,
            phone,
            no_phone,
            ..
        }) if phone.is_some() || *no_phone => {
            let number = phone.as_deref().unwrap_or("");
            let sharing = manage.user_set_phone(user, number).await.map_err(z)?;
            if !sharing.is_empty() {
                // A shared phone lets each of its holders pass as the others.
                eprintln!(
                    "twofoldctl: warning: {} also use{} this number; whoever holds that phone gets each of their texted codes",
                    sharing.join(", "),
                    if sharing.len() == 1 { "s" } else { "" }
                );
            }
            output::done(
                user,
                if number.is_empty() {
                    "phone number removed"
                } else {
                    "phone number set"
                },
                true,
                cli.json,
            );
        }
        Command::User(UserCommand::Set { user, email, .. }) => {
            let address = email.as_deref().unwrap_or("");
            let sharing = manage.user_set_email(user, address).await.map_err(z)?;
            if !sharing.is_empty() {
                // A shared mailbox lets each of its readers pass as the others.
                eprintln!(
                    "twofoldctl: warning: {} also use{} {address}; whoever reads that mailbox gets each of their e-mailed codes",
                    sharing.join(", "),
                    if sharing.len() == 1 { "s" } else { "" }
                );
            }
            output::done(
                user,
                &if address.is_empty() {
                    "e-mail address removed".to_string()
                } else {
                    format!("e-mail address set to {address}")
                },
                true,
                cli.json,
            );
        }
        Command::Grace(GraceCommand::Clear { subject }) => {
            let removed = manage.grace_clear(subject).await.map_err(z)?;
            output::done(
                subject,
                if removed {
                    "deferral removed"
                } else {
                    "had no deferral"
                },
                removed,
                cli.json,
            );
        }
    }
    Ok(())
}

fn read_code(user: &str) -> Result<String, Failure> {
    code::read("Code from the app: ").map_err(|e| Failure {
        code: 2,
        message: match e {
            code::NoCode::Cancelled => {
                format!("no code given; confirm later with `twofoldctl confirm {user}`")
            }
            code::NoCode::TooLong => "that is not a code (too long)".into(),
            code::NoCode::Io(e) => format!("cannot read the code: {e}"),
        },
    })
}

fn current_user() -> Result<String, Failure> {
    match nix::unistd::User::from_uid(nix::unistd::getuid()) {
        Ok(Some(u)) => Ok(u.name),
        _ => Err(Failure {
            code: 1,
            message: "cannot tell who you are; name the user".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn check(cmd: &clap::Command, path: &str) {
        for a in cmd.get_arguments() {
            let id = a.get_id().as_str();
            if a.is_hide_set() || id == "help" || id == "version" {
                continue;
            }
            assert!(a.get_help().is_some(), "{path}: <{id}> has no help text");
        }
        for sub in cmd.get_subcommands() {
            let name = format!("{path} {}", sub.get_name());
            assert!(sub.get_about().is_some(), "{name} has no help text");
            check(sub, &name);
        }
    }

    #[test]
    fn every_command_argument_and_option_explains_itself() {
        Cli::command().debug_assert();
        check(&Cli::command(), "twofoldctl");
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("Exit codes:"), "{help}");
    }
}
