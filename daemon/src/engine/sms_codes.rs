//! Codes by SMS at login: offered only where a first factor is known to have passed
//! (a text costs money, and a stranger who knows a name must not be able to send one),
//! to an enrolled user with a number on record in an allowed country; `sms` at the
//! prompt texts a code, within the per-user and global limits, which throttle sending
//! and never lock the account.

use super::{Conversation, Engine, lock, utc_time};
use crate::audit::AuditEvent;
use crate::model::{SmsLimits, SmsTurn};
use crate::sms::reports::Report;
use crate::sms::{self, Accepted, Sms, SmsError};
use std::time::Duration;
use twofold_protocol::{Action, Step};

/// What a login answers to have a code texted.
pub(super) const KEYWORD: &str = "sms";
/// Texts one login may ask for.
const TEXTS_PER_LOGIN: u32 = 3;
/// How long a login waits for the gateway's answer, so that a refused or failed text is
/// said at once; a text still on its way after that is taken as sent. The wait holds
/// one of the engine's turns, so it is short (and texts are few: the limits come first).
const GATEWAY_WAIT: Duration = Duration::from_millis(1500);

/// The prompt after a code was texted, as the delivery reports have it.
const TEXTED_PROMPT: &str = "Code from the text (or 'sms' for a new one): ";
const NOT_YET_PROMPT: &str = "Code from the text (not delivered yet; or 'sms' for a new one): ";
const DELIVERED_PROMPT: &str = "Code from the text (delivered; or 'sms' for a new one): ";
const NOT_DELIVERED_PROMPT: &str =
    "The text was not delivered: 'sms' to send another, or your app's code: ";

/// The number a login may text, decided when it began.
#[derive(Debug, Clone)]
pub(super) struct SmsOffer {
    /// Shown in the prompt; the text goes to the number on record when it is asked for.
    masked: String,
}

impl SmsOffer {
    /// The code prompt with the offer in it: sshd shows messages only with a prompt, so
    /// everything the user must read is in the prompt.
    pub(super) fn prompt(&self, email_too: bool) -> String {
        if email_too {
            format!(
                "Verification code (Enter: one by e-mail; 'sms': one texted to {}): ",
                self.masked
            )
        } else {
            format!(
                "Verification code (or 'sms' to text a code to {}): ",
                self.masked
            )
        }
    }
}

impl Engine {
    /// The offer for a login by the enrolled `user`, if SMS is on, a first factor passed,
    /// and the user has a number the configuration lets us text. A store error offers
    /// nothing (the app still works).
    pub(super) fn sms_offer(&self, user: &str, first_factor_passed: bool) -> Option<SmsOffer> {
        if !self.sms_on || !first_factor_passed {
            return None;
        }
        let number = self.with_store(|s| s.phone_of(user)).ok().flatten()?;
        self.config.sms.may_text(&number).then(|| SmsOffer {
            masked: sms::masked(&number),
        })
    }

    /// `sms` at the code prompt of a login that was offered it.
    pub(super) fn text_code(&self, id: &str, mut conv: Conversation, now: i64) -> Step {
        let (caller_uid, ctx) = (conv.caller_uid, conv.context.clone());
        let keep = |conv: Conversation, step: Step| {
            lock(&self.conversations).insert(id.to_owned(), conv);
            step
        };
        let again = |conv: &Conversation, why: String| {
            Step::prompt(Action::PromptSecret, &self.prompt_of(conv)).error(why)
        };
        conv.texts_asked += 1;
        if conv.texts_asked > TEXTS_PER_LOGIN {
            let step = again(
                &conv,
                "No more texts for this login. Use your authenticator app, or log in again.".into(),
            );
            return keep(conv, step);
        }
        let user = ctx.user.clone();
        // The number and the factor as they are now: either may have changed meanwhile.
        let looked_up = self.with_store(|s| Ok((s.user(&user)?, s.phone_of(&user)?)));
        let (record, number) = match looked_up {
            Ok((Some(record), Some(number))) => (record, number),
            Ok(_) => {
                self.audit_login(
                    "sms-code",
                    caller_uid,
                    &ctx,
                    "no number or factor on record any more; nothing texted",
                );
                conv.sms = None;
                let step = again(
                    &conv,
                    "No number is on record for texts any more. Use your authenticator app.".into(),
                );
                return keep(conv, step);
            }
            Err(e) => return self.store_failed(caller_uid, &ctx, &e),
        };
        if record.locked_until > now {
            self.audit_login("locked", caller_uid, &ctx, "account locked; nothing texted");
            return super::locked_step(record.locked_until - now);
        }
        if !self.config.sms.may_text(&number) {
            self.audit_login(
                "sms-code",
                caller_uid,
                &ctx,
                "the number is not in [sms] allowed_prefixes; nothing texted",
            );
            conv.sms = None;
            let step = again(&conv, "Texts cannot go to this number. Use your authenticator app, or ask your administrator.".into());
            return keep(conv, step);
        }
        let masked = sms::masked(&number);
        let limits = SmsLimits {
            min_interval: i64::from(self.config.sms.min_interval_seconds.get()),
            per_15_minutes: self.config.sms.per_15_minutes.get(),
            per_day: self.config.sms.per_day.get(),
        };
        // A full minute refuses before the user's own limits count the text; the turn
        // is taken only once they grant it (a refused ask must not use up everyone's).
        if !self.global_sms_turn(now, false) {
            self.audit_login(
                "sms-code",
                caller_uid,
                &ctx,
                "refused: [sms] global_per_minute is reached",
            );
            let step = again(&conv, "Too many texts are being sent right now; try again in a minute, or use your authenticator app.".into());
            return keep(conv, step);
        }
        match self.with_store(|s| s.take_sms_turn(&user, now, &limits)) {
            Ok(SmsTurn::Granted) => {}
            Ok(SmsTurn::Wait(seconds)) => {
                self.audit_login(
                    "sms-code",
                    caller_uid,
                    &ctx,
                    &format!("refused: the SMS limit is reached for {seconds} s"),
                );
                let step = again(
                    &conv,
                    format!(
                        "SMS limit reached; try again in {seconds} s, or use your authenticator app."
                    ),
                );
                return keep(conv, step);
            }
            Err(e) => return self.store_failed(caller_uid, &ctx, &e),
        }
        if !self.global_sms_turn(now, true) {
            let step = again(&conv, "Too many texts are being sent right now; try again in a minute, or use your authenticator app.".into());
            return keep(conv, step);
        }
        let minutes = self.config.sms.valid_minutes.get();
        let expires_at = now + i64::from(minutes) * 60;
        let tracking = self.reports.as_ref().and_then(|r| {
            r.track(self.random.as_ref(), &user, &masked, now, expires_at)
                .ok()
        });
        let code = match conv.texted.add(
            self.random.as_ref(),
            now,
            expires_at - now,
            record.generation,
        ) {
            Ok(code) => code,
            Err(e) => {
                return self.store_failed(
                    caller_uid,
                    &ctx,
                    &crate::store::StoreError::Unavailable(e),
                );
            }
        };
        let text = sms::message(
            &self.config.sms.text,
            &code,
            &self.hostname,
            &ctx.service,
            minutes,
        );
        let outcome = self.texter.dispatch(
            &user,
            Sms {
                to: number,
                text,
                valid_minutes: minutes,
                report_url: tracking.as_ref().map(|t| t.url.clone()),
            },
        );
        let said = match outcome.wait(GATEWAY_WAIT) {
            Some(Ok(Accepted::Sent)) => "the gateway took it",
            Some(Ok(Accepted::Queued)) => {
                "the gateway queued it (its link to the operator is down)"
            }
            None => "no answer from the gateway yet",
            Some(Err(e)) => {
                conv.texted.forget_latest();
                if let (Some(reports), Some(t)) = (&self.reports, &tracking) {
                    reports.forget(&t.reference);
                }
                self.audit_login(
                    "error",
                    caller_uid,
                    &ctx,
                    &format!("code not texted to {masked}: {e}"),
                );
                let why = match e {
                    SmsError::Refused(_) | SmsError::Settings(_) => "the SMS gateway refused it",
                    SmsError::Unavailable(_) => "the SMS gateway is unavailable",
                };
                let step = again(
                    &conv,
                    format!(
                        "The text could not be sent ({why}). Use your authenticator app, or try again later."
                    ),
                );
                return keep(conv, step);
            }
        };
        let numbered = tracking
            .as_ref()
            .map_or(String::new(), |t| format!(" (text {})", t.number));
        self.audit_login(
            "sms-code",
            caller_uid,
            &ctx,
            &format!("code texted to {masked}: {said}{numbered}"),
        );
        conv.report = tracking.map(|t| t.reference);
        let at = utc_time(now);
        // `2026-12-03 09:00:00 UTC` -> `09:00 UTC`.
        let at = at.get(11..16).map_or(at.clone(), |hm| format!("{hm} UTC"));
        let prompt = format!("Code sent by SMS to {masked} at {at}, valid {minutes} min: ");
        keep(conv, Step::prompt(Action::PromptSecret, &prompt))
    }

    /// The prompt once a code was texted: with what the delivery reports said, where
    /// Kannel reports.
    pub(super) fn texted_prompt(&self, conv: &Conversation) -> String {
        let report = match (&self.reports, &conv.report) {
            (Some(reports), Some(reference)) => reports.report(reference),
            _ => None,
        };
        match report {
            None => TEXTED_PROMPT,
            Some(Report::Waiting | Report::AtOperator) => NOT_YET_PROMPT,
            Some(Report::Delivered) => DELIVERED_PROMPT,
            Some(Report::NotDelivered) => NOT_DELIVERED_PROMPT,
        }
        .into()
    }

    /// A delivery report from Kannel (reports.rs) for the text of `reference`: audited
    /// if the text is one this daemon follows, ignored otherwise.
    pub fn delivery_report(&self, reference: &str, kind: u32) {
        let Some(reports) = &self.reports else { return };
        let Some(said) = reports.record(reference, kind, self.clock.now()) else {
            return;
        };
        self.audit.record(&AuditEvent {
            action: "sms-report",
            outcome: match said.report {
                Report::Delivered => "delivered",
                Report::NotDelivered => "failure",
                Report::AtOperator | Report::Waiting => "accepted",
            },
            user: said.user,
            reason: format!(
                "text {} to {}: {} (Kannel report type {kind})",
                said.number,
                said.masked,
                said.report.words()
            ),
            ..AuditEvent::default()
        });
    }

    /// Whether one of `[sms] global_per_minute` texts in the last 60 s, for everyone
    /// together, is left (a flood of logins must not run up the bill); `take` takes it.
    fn global_sms_turn(&self, now: i64, take: bool) -> bool {
        let mut sent = lock(&self.texts_sent);
        // A clock gone back keeps what was sent (as now), like the per-user limits.
        for t in sent.iter_mut() {
            *t = (*t).min(now);
        }
        sent.retain(|t| *t > now - 60);
        if sent.len() >= self.config.sms.global_per_minute.get() as usize {
            return false;
        }
        if take {
            sent.push_back(now);
        }
        true
    }
}
