//! One authentication: check who owns the daemon's name, then relay the daemon's steps
//! to the PAM conversation until it gives a verdict. Runs on a current-thread runtime
//! built and dropped inside the call, so no thread or connection outlives it (and none
//! is reused across a fork).

use crate::context;
use crate::log::{Log, quoted};
use crate::options::{self, Options};
use crate::transport;
use crate::verdict::{self, Failure};
use pam::constants::{
    PAM_ERROR_MSG, PAM_PROMPT_ECHO_OFF, PAM_PROMPT_ECHO_ON, PAM_SILENT, PAM_TEXT_INFO, PamFlag,
    PamResultCode,
};
use pam::conv::Conv;
use pam::module::PamHandle;
use std::ffi::CStr;
use twofold_protocol::{Action, LoginContext, Step, Style};

/// A daemon that keeps asking forever is treated as broken.
const MAX_STEPS: usize = 32;

/// Shown when twofoldd gives no verdict (down, hung, impostor, broken reply), so the
/// person sees more than "Login incorrect". It says nothing about the account.
pub const UNAVAILABLE: &str =
    "The two-factor service is not available right now; try again or contact your administrator.";

/// Where the daemon's messages and prompts go: the PAM conversation, or a test script.
pub trait Ui {
    fn show(&mut self, style: Style, text: &str);
    /// `None` when the application gave no answer.
    fn prompt(&mut self, secret: bool, text: &str) -> Option<String>;
}

struct PamUi<'a> {
    conv: Conv<'a>,
    silent: bool,
}

impl Ui for PamUi<'_> {
    fn show(&mut self, style: Style, text: &str) {
        if self.silent {
            return;
        }
        let style = match style {
            Style::Error => PAM_ERROR_MSG,
            Style::Info => PAM_TEXT_INFO,
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
    let ctx = match context::gather(pamh, opts.offer_enrolment) {
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
            ui.show(Style::Error, UNAVAILABLE);
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

pub(crate) fn protocol(e: zbus::Error) -> Failure {
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

async fn exchange(opts: &Options, ctx: &LoginContext, ui: &mut dyn Ui) -> Result<Action, Failure> {
    let (auth, id, mut step) = transport::begin(opts, ctx).await?;
    for _ in 0..MAX_STEPS {
        show_messages(ui, &step);
        // An unknown action or style never gets here: the step fails to decode.
        let secret = match step.action {
            Action::PromptSecret => true,
            Action::PromptVisible => false,
            done => return Ok(done),
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

fn show_messages(ui: &mut dyn Ui, step: &Step) {
    for m in &step.messages {
        ui.show(m.style, &m.text);
    }
}
