//! One authentication: check who owns the daemon's name, then relay the daemon's steps
//! to the PAM conversation until it gives a verdict. Runs on a current-thread runtime
//! built and dropped inside the call, so no thread or connection outlives it (and none
//! is reused across a fork).

use crate::context;
use crate::log::{Log, quoted};
use crate::options::{self, Options};
use crate::verdict::{self, Failure};
use pam::constants::{
    PAM_ERROR_MSG, PAM_PROMPT_ECHO_OFF, PAM_PROMPT_ECHO_ON, PAM_SILENT, PAM_TEXT_INFO, PamFlag,
    PamResultCode,
};
use pam::conv::Conv;
use pam::module::PamHandle;
use std::ffi::CStr;
use twofold_protocol::{
    AUTH_INTERFACE, Action, AuthProxy, BUS_NAME, LoginContext, MSG_ERROR, OBJECT_PATH, Step,
};
use zbus::proxy::CacheProperties;

/// A daemon that keeps asking forever is treated as broken.
const MAX_STEPS: usize = 32;

/// Shown when twofoldd gives no verdict (down, hung, impostor, broken reply), so the
/// person sees more than "Login incorrect". It says nothing about the account.
pub const UNAVAILABLE: &str =
    "The two-factor service is not available right now; try again or contact your administrator.";

/// Where the daemon's messages and prompts go: the PAM conversation, or a test script.
pub trait Ui {
    fn show(&mut self, style: u32, text: &str);
    /// `None` when the application gave no answer.
    fn prompt(&mut self, secret: bool, text: &str) -> Option<String>;
}

struct PamUi<'a> {
    conv: Conv<'a>,
    silent: bool,
}

impl Ui for PamUi<'_> {
    fn show(&mut self, style: u32, text: &str) {
        if self.silent {
            return;
        }
        let style = if style == MSG_ERROR {
            PAM_ERROR_MSG
        } else {
            PAM_TEXT_INFO
        };
        // Some applications return no reply to messages; that is not a failure.
        let _ = self.conv.send(style, text);
    }

    fn prompt(&mut self, secret: bool, text: &str) -> Option<String> {
        let style = if secret {
            PAM_PROMPT_ECHO_OFF
        } else {
            PAM_PROMPT_ECHO_ON
        };
        let reply = self.conv.send(style, text).ok()??;
        reply.as_str().ok().map(str::to_owned)
    }
}

pub fn authenticate(pamh: &mut PamHandle, args: &[&CStr], flags: PamFlag) -> PamResultCode {
    let words: Option<Vec<&str>> = args.iter().map(|a| a.to_str().ok()).collect();
    let opts = match words
        .ok_or_else(|| "module option is not UTF-8".to_string())
        .and_then(options::parse)
    {
        Ok(o) => o,
        Err(e) => {
            Log::new(false).error(&format!("bad configuration in the PAM stack: {e}"));
            return PamResultCode::PAM_SERVICE_ERR;
        }
    };
    let mut log = Log::new(opts.debug);
    let ctx = match context::gather(pamh) {
        Ok(c) => c,
        Err(code) => {
            log.error("cannot read the PAM user");
            return code;
        }
    };
    let conv = match pamh.get_item::<Conv>() {
        Ok(Some(c)) => c,
        _ => {
            log.error("the application has no PAM conversation");
            return PamResultCode::PAM_CONV_ERR;
        }
    };
    let mut ui = PamUi {
        conv,
        silent: flags & PAM_SILENT != 0,
    };
    let result = run(&opts, &ctx, &mut ui);
    let code = verdict::to_pam(&result, opts.failmode);
    if code != PamResultCode::PAM_SUCCESS && verdict::no_verdict(&result) {
        if ctx.is_ssh() || ui.silent {
            // sshd drops a message that no prompt follows when the module fails, and sudo
            // asks for silence (PAM_SILENT, its default): a prompt still reaches the person.
            let _ = ui.prompt(false, &format!("{UNAVAILABLE}\nPress Enter to continue: "));
        } else {
            ui.show(MSG_ERROR, UNAVAILABLE);
        }
    }
    match &result {
        Err(Failure::Unreachable(why)) if code == PamResultCode::PAM_SUCCESS => {
            log.warning(&format!(
                "failmode=safe: letting {} in without a second factor: twofoldd unreachable: {why}",
                quoted(&ctx.user)
            ))
        }
        Err(failure) => log.error(&format!(
            "user {} service {}: {failure:?}",
            quoted(&ctx.user),
            quoted(&ctx.service)
        )),
        Ok(action) => log.debug(&format!(
            "user {} service {}: {action:?}",
            quoted(&ctx.user),
            quoted(&ctx.service)
        )),
    }
    code
}

/// Runs the whole exchange with the daemon.
pub fn run(opts: &Options, ctx: &LoginContext, ui: &mut dyn Ui) -> Result<Action, Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Local(format!("cannot start a runtime: {e}")))?;
    let result = runtime.block_on(exchange(opts, ctx, ui));
    drop(runtime);
    result
}

fn protocol(e: zbus::Error) -> Failure {
    match e {
        zbus::Error::MethodError(name, text, _)
            if name.as_str() == twofold_protocol::errors::PERMISSION_DENIED =>
        {
            Failure::PermissionDenied(text.unwrap_or_default())
        }
        zbus::Error::MethodError(name, text, _) => {
            Failure::Protocol(format!("{name}: {}", text.unwrap_or_default()))
        }
        other => Failure::Protocol(other.to_string()),
    }
}

/// Connects to the bus within `timeout`. Only a definite absence — no socket (`ENOENT`)
/// or nobody listening (`ECONNREFUSED`) — counts as unreachable. Anything else (a reset,
/// a timeout, `EAGAIN`) is what a local user can cause, e.g. with a flood of bare
/// connections that makes dbus-daemon drop the oldest incomplete ones: one retry within
/// the time left, then it fails closed.
async fn connect(opts: &Options) -> Result<zbus::Connection, Failure> {
    let deadline = tokio::time::Instant::now() + opts.timeout;
    let mut last = String::new();
    for _ in 0..2 {
        let build = zbus::connection::Builder::address(opts.bus.as_str())
            .method_timeout(opts.timeout)
            .build();
        match tokio::time::timeout_at(deadline, build).await {
            Ok(Ok(conn)) => return Ok(conn),
            Ok(Err(e)) if definitely_absent(&e) => return Err(Failure::Unreachable(e.to_string())),
            Ok(Err(e)) => last = e.to_string(),
            Err(_) => return Err(Failure::Disturbed("timed out connecting to the bus".into())),
        }
    }
    Err(Failure::Disturbed(format!(
        "the bus dropped the connection twice: {last}"
    )))
}

fn definitely_absent(e: &zbus::Error) -> bool {
    use std::io::ErrorKind::{ConnectionRefused, NotFound};
    match e {
        zbus::Error::Connection(io, _) | zbus::Error::InputOutput(io) => {
            matches!(io.kind(), NotFound | ConnectionRefused)
        }
        _ => false,
    }
}

async fn exchange(opts: &Options, ctx: &LoginContext, ui: &mut dyn Ui) -> Result<Action, Failure> {
    let conn = connect(opts).await?;
    let dbus = zbus::fdo::DBusProxy::builder(&conn)
        .cache_properties(CacheProperties::No)
        .build()
        .await
        .map_err(|e| Failure::Disturbed(e.to_string()))?;
    let (owner, (id, mut step)) = begin(&conn, &dbus, ctx, opts).await?;
    // Talk to the unique name we checked: if the owner changes mid-way, calls fail.
    let auth = AuthProxy::builder(&conn)
        .destination(owner)
        .cache_properties(CacheProperties::No)
        .build()
        .await
        .map_err(protocol)?;
    for _ in 0..MAX_STEPS {
        show_messages(ui, &step);
        let secret = match step.action() {
            Some(Action::PromptSecret) => true,
            Some(Action::PromptVisible) => false,
            Some(done) => return Ok(done),
            None => return Err(Failure::Protocol(format!("unknown action {}", step.action))),
        };
        let Some(answer) = ui.prompt(secret, &step.prompt) else {
            let _ = auth.cancel(&id).await;
            return Err(Failure::Conversation);
        };
        step = auth.answer(&id, &answer).await.map_err(protocol)?;
    }
    let _ = auth.cancel(&id).await;
    Err(Failure::Protocol(
        "the daemon asked too many questions".into(),
    ))
}

/// Finds who owns the daemon's name — the bus itself answers, so no impostor can — and
/// sends `Begin` to that unique name while asking the bus for its uid; the reply is used
/// only once the owner is known to be root (or `daemon_user=`). (`Begin` carries only the
/// login context, nothing secret; the code goes out in `Answer`, after the check.)
/// Only "nobody owns the name" (after activation had its chance) counts as an
/// unreachable daemon (`failmode=safe`): whatever goes wrong after that fails closed. Returns the checked unique name and the
/// daemon's first step.
async fn begin(
    conn: &zbus::Connection,
    dbus: &zbus::fdo::DBusProxy<'_>,
    ctx: &LoginContext,
    opts: &Options,
) -> Result<(zbus::names::UniqueName<'static>, (String, Step)), Failure> {
    let name =
        zbus::names::BusName::try_from(BUS_NAME).map_err(|e| Failure::Local(e.to_string()))?;
    let owner = owner_of(dbus, name).await?;
    let body = (ctx,);
    let (owner_uid, reply) = tokio::join!(
        dbus.get_connection_unix_user(owner.clone().into()),
        conn.call_method(
            Some(owner.as_ref()),
            OBJECT_PATH,
            Some(AUTH_INTERFACE),
            "Begin",
            &body
        ),
    );
    let owner_uid = owner_uid.map_err(|e| Failure::Disturbed(e.to_string()))?;
    check_owner(owner_uid, opts.daemon_user.as_deref())?;
    let first = reply
        .map_err(protocol)?
        .body()
        .deserialize::<(String, Step)>()
        .map_err(protocol)?;
    Ok((owner, first))
}

/// The unique name owning `name`, asking the bus to activate the daemon if nobody does.
/// Unreachable only when the bus itself says nobody owns it and nothing can be
/// activated, or activation ran and still nobody owns it; any other error fails closed.
async fn owner_of(
    dbus: &zbus::fdo::DBusProxy<'_>,
    name: zbus::names::BusName<'_>,
) -> Result<zbus::names::UniqueName<'static>, Failure> {
    use zbus::fdo::Error::{NameHasNoOwner, ServiceUnknown};
    let disturbed = |e: zbus::fdo::Error| Failure::Disturbed(e.to_string());
    match dbus.get_name_owner(name.clone()).await {
        Ok(owner) => return Ok(owner.into_inner()),
        Err(NameHasNoOwner(_)) => {}
        Err(e) => return Err(disturbed(e)),
    }
    let well_known = zbus::names::WellKnownName::try_from(BUS_NAME)
        .map_err(|e| Failure::Local(e.to_string()))?;
    match dbus.start_service_by_name(well_known, 0).await {
        Ok(_) => {}
        Err(ServiceUnknown(why)) => {
            return Err(Failure::Unreachable(format!(
                "no owner of {BUS_NAME} and nothing to activate: {why}"
            )));
        }
        Err(e) => return Err(disturbed(e)),
    }
    match dbus.get_name_owner(name).await {
        Ok(owner) => Ok(owner.into_inner()),
        Err(NameHasNoOwner(why)) => Err(Failure::Unreachable(format!(
            "activated, but nobody owns {BUS_NAME}: {why}"
        ))),
        Err(e) => Err(disturbed(e)),
    }
}

fn show_messages(ui: &mut dyn Ui, step: &Step) {
    for m in &step.messages {
        ui.show(m.style, &m.text);
    }
}

/// The daemon's name must belong to root, or to the account named by `daemon_user=`.
fn check_owner(owner_uid: u32, daemon_user: Option<&str>) -> Result<(), Failure> {
    let expected = match daemon_user {
        None => 0,
        Some(name) => match nix::unistd::User::from_name(name) {
            Ok(Some(u)) => u.uid.as_raw(),
            _ => return Err(Failure::Local(format!("daemon_user={name}: no such user"))),
        },
    };
    if owner_uid == expected || owner_uid == 0 {
        Ok(())
    } else {
        Err(Failure::Impostor(format!(
            "{BUS_NAME} is owned by uid {owner_uid}, expected uid {expected}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_root_or_the_named_daemon_user_may_own_the_name() {
        assert!(check_owner(0, None).is_ok());
        assert!(matches!(check_owner(1000, None), Err(Failure::Impostor(_))));
        assert!(check_owner(0, Some("root")).is_ok());
        assert!(matches!(
            check_owner(65534, Some("root")),
            Err(Failure::Impostor(_))
        ));
        assert!(matches!(
            check_owner(0, Some("no-such-user-here")),
            Err(Failure::Local(_))
        ));
    }
}
