//! twofoldctl: the administrator's and user's command line over D-Bus. It holds no state
//! and decides nothing: the daemon checks who is asking.

mod output;

use clap::{Parser, Subcommand};
use std::io::{BufRead, Write};
use std::process::ExitCode;
use twofold_protocol::{ManageProxy, SYSTEM_BUS_ADDRESS, errors};
use zbus::proxy::CacheProperties;

#[derive(Parser)]
#[command(name = "twofoldctl", version, about = "Manage twofold second factors")]
struct Cli {
    /// D-Bus address of the bus twofoldd is on.
    #[arg(long, global = true, default_value = SYSTEM_BUS_ADDRESS)]
    bus: String,
    /// Machine-readable output (JSON).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Issue a new TOTP secret: shows a QR code, the otpauth:// URI and the secret as text,
    /// then asks for a first code from the app.
    Enrol {
        user: String,
        /// Do not ask for a first code: the user's first login verifies it.
        #[arg(long)]
        no_verify: bool,
        /// Replace an active factor (administrators only).
        #[arg(long)]
        replace: bool,
    },
    /// Verify a first code for a pending enrolment.
    Confirm { user: String, code: String },
    /// Show a user's state (default: yourself).
    Status { user: Option<String> },
    /// List every user with a factor (administrators only).
    List,
    /// Remove a user's factor, e.g. after a lost phone (administrators only).
    Reset { user: String },
    /// End a lockout after too many wrong codes (administrators only).
    Unlock { user: String },
    /// Trusted sessions and remembered devices.
    #[command(subcommand)]
    Trust(TrustCommand),
    /// Enrolment deferrals: let users log in without a factor until a date (administrators only).
    #[command(subcommand)]
    Grace(GraceCommand),
}

#[derive(Subcommand)]
enum TrustCommand {
    /// List valid trust (default: yourself; administrators may name anyone, or --all).
    List {
        user: Option<String>,
        /// Every user's (administrators only).
        #[arg(long, conflicts_with = "user")]
        all: bool,
    },
    /// Revoke one trusted device by its id, or all of the user's with --all.
    Revoke {
        user: String,
        #[arg(required_unless_present = "all")]
        id: Option<String>,
        #[arg(long, conflicts_with = "id")]
        all: bool,
    },
}

#[derive(Subcommand)]
enum GraceCommand {
    /// Defer enrolment for USER or @GROUP until DATE (2027-01-31, meaning 00:00 UTC, or an RFC 3339 time).
    Set {
        subject: String,
        #[arg(long)]
        until: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// List deferrals.
    List,
    /// Remove the deferral of USER or @GROUP.
    Clear { subject: String },
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
            format!("cannot reach the bus at {bus}: is twofoldd running? ({e})"),
        ),
        other => fail(1, other.to_string()),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
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

async fn run(cli: &Cli) -> Result<(), Failure> {
    let bus = cli.bus.as_str();
    let conn = zbus::connection::Builder::address(bus)
        .method_timeout(std::time::Duration::from_secs(15))
        .build()
        .await
        .map_err(|e| Failure {
            code: 3,
            message: format!("cannot reach the bus at {bus}: is twofoldd running? ({e})"),
        })?;
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
        } => {
            let offer = manage.enrol(user, *replace).await.map_err(z)?;
            output::offer(&offer, cli.json);
            if *no_verify {
                if !cli.json {
                    println!(
                        "Not verified yet: {user}'s first login (or `twofoldctl confirm`) verifies the code."
                    );
                }
                return Ok(());
            }
            let code = read_code()?;
            manage.confirm_enrolment(user, &code).await.map_err(z)?;
            output::confirmed(user, cli.json);
        }
        Command::Confirm { user, code } => {
            manage.confirm_enrolment(user, code).await.map_err(z)?;
            output::confirmed(user, cli.json);
        }
        Command::Status { user } => {
            let user = match user {
                Some(u) => u.clone(),
                None => current_user()?,
            };
            output::statuses(&[manage.status(&user).await.map_err(z)?], cli.json);
        }
        Command::List => output::statuses(&manage.list().await.map_err(z)?, cli.json),
        Command::Reset { user } => {
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
            output::trust(&manage.trust_list(&user).await.map_err(z)?, cli.json);
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
            output::deferrals(&manage.grace_list().await.map_err(z)?, cli.json)
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

fn read_code() -> Result<String, Failure> {
    eprint!("Code from the app: ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    match std::io::stdin().lock().read_line(&mut line) {
        Ok(n) if n > 0 => Ok(line.trim().to_string()),
        _ => Err(Failure {
            code: 1,
            message: "no code given; confirm later with `twofoldctl confirm USER CODE`".into(),
        }),
    }
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
