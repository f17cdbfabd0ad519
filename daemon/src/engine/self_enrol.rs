//! Enrolment at login: an unenrolled user within a grace period is shown a new app
//! secret (QR code, the key as text, issuer and account) and asked for the app's first
//! code; the factor is stored, already confirmed, only once that code verifies, and its
//! recovery codes are shown before the login ends. Pressing Enter declines: the login goes
//! on under the grace rules, and the next one offers again.

use super::*;
use crate::factor::Enrolment;

const OFFER_PROMPT: &str =
    "Type the app's first code to set it up now, or\nPress Enter to continue: ";
const NO_MATCH: &str = "That code does not match the key above; try again.";
const RECOVERY_PROMPT: &str = "Press Enter when you have written them down: ";

impl Engine {
    /// The grace reminder with the offer; `Ok(None)` when none can be made (self-service
    /// off), so the caller shows the plain reminder.
    pub(super) fn offer_enrolment(
        &self,
        caller: &Caller,
        ctx: LoginContext,
        reminder: &str,
        now: i64,
    ) -> Result<Option<(String, Step)>, ApiError> {
        if !self.config.enrolment.self_service || !first_factor_passed(&ctx, caller, &self.config) {
            return Ok(None);
        }
        let Enrolment { secret, uri } = self.new_app_secret(&ctx.user)?;
        let account = format!("{}@{}", ctx.user, self.hostname);
        let mut offer = String::from("Set up your authenticator app now: scan this QR code,\n");
        if let Some(qr) = crate::qr::render(&uri, self.config.enrolment.qr_background) {
            offer.push_str(&qr);
            offer.push('\n');
        }
        offer.push_str(&format!(
            "or type this key into the app (time-based): {}\nIssuer: {}, account: {account}",
            twofold_protocol::grouped(&secret),
            self.issuer()
        ));
        let step = Step::prompt(
            Action::PromptVisible,
            &format!("{reminder}\n{OFFER_PROMPT}"),
        )
        .info(offer);
        let (id, step) = self.open(caller, ctx, Stage::SelfEnrol, false, None, now, step)?;
        if let Some(c) = lock(&self.conversations).get_mut(&id) {
            c.enrolling = Some(secret);
        }
        Ok(Some((id, step)))
    }

    /// The answer to the offer: Enter declines, a right code enrols.
    pub(super) fn self_enrol(
        &self,
        id: &str,
        mut conv: Conversation,
        response: &str,
        now: i64,
    ) -> Step {
        let response = response.trim();
        if response.is_empty() || response.len() > MAX_RESPONSE_LEN {
            return self.grace_acknowledged(&conv, now);
        }
        let Some(secret) = conv.enrolling.clone() else {
            return Step::new(Action::Error).error(UNAVAILABLE);
        };
        let (caller_uid, ctx) = (conv.caller_uid, conv.context.clone());
        let step = match self.totp.verify(&secret, response, now) {
            Ok(Some(Match::Step(step))) => step,
            Ok(Some(_)) => return Step::new(Action::Error).error(UNAVAILABLE),
            Ok(None) => {
                self.audit_login(
                    "failure",
                    caller_uid,
                    &ctx,
                    "self-enrolment: code does not match",
                );
                conv.tries_left = conv.tries_left.saturating_sub(1);
                if conv.tries_left == 0 {
                    // Declined in effect: the grace rules decide, as for Enter.
                    return self
                        .grace_acknowledged(&conv, now)
                        .error("The app was not set up; you can try again at your next login.");
                }
                let again = Step::prompt(Action::PromptVisible, OFFER_PROMPT).error(NO_MATCH);
                lock(&self.conversations).insert(id.to_owned(), conv);
                return again;
            }
            Err(e) => return self.store_failed(caller_uid, &ctx, &StoreError::Unavailable(e)),
        };
        let recovery = match crate::recovery::issue(self.random.as_ref()) {
            Ok(r) => r,
            Err(e) => return self.store_failed(caller_uid, &ctx, &StoreError::Unavailable(e)),
        };
        let user = ctx.user.clone();
        // Stored and confirmed in one transaction, the code's step spent, only if nothing
        // came first (another offer taken, an administrator's enrolment, a lock).
        let stored = self.with_store(|s| {
            s.put_confirmed(
                &user,
                FactorKind::Totp,
                &secret,
                step,
                now,
                &recovery.stored,
            )
        });
        match stored {
            Ok(true) => {}
            Ok(false) => return self.changed_meanwhile(&conv),
            Err(e) => return self.store_failed(caller_uid, &ctx, &e),
        }
        self.audit_login(
            "enrolled",
            caller_uid,
            &ctx,
            "self-enrolled at login; factor activated",
        );
        self.notify(&user, Change::FactorActivated, login_detail(&ctx));
        conv.enrolling = None;
        conv.stage = Stage::RecoveryShown;
        lock(&self.conversations).insert(id.to_owned(), conv);
        let mut codes = String::from(
            "Recovery codes: each works once in place of a code if you lose the phone.\nKeep them somewhere safe, away from the phone; they are not shown again.",
        );
        for pair in recovery.shown.chunks(2) {
            codes.push_str(&format!("\n  {}", pair.join("    ")));
        }
        Step::prompt(Action::PromptVisible, RECOVERY_PROMPT)
            .info("Your authenticator app is set up: from now on logins ask for its code.")
            .info(codes)
    }
}

/// Whether this login is known to have passed a first factor, so that the new factor is
/// not guarded by nothing: a user's own process (a screen locker: the user is logged in,
/// and could enrol with `twofoldctl` anyway); root's sshd after a public key; or a stack
/// whose pam.d line says so (`offer_enrolment`: a `requisite` password before it). With
/// a `required` password a wrong one would not stop the stack, and whoever knew only the
/// name could set up their own app on the account.
pub(super) fn first_factor_passed(
    ctx: &LoginContext,
    caller: &Caller,
    config: &twofold_config::Config,
) -> bool {
    let key_passed = caller.uid == 0
        && config.service_policy(&ctx.service).ssh
        && identity::ssh_key_fingerprint(&ctx.ssh_auth_info).is_some();
    caller.uid != 0 || ctx.offer_enrolment || key_passed
}
