//! What the SMS tests share, whatever the gateway: the number on record, asking for a
//! text at the prompt, and reading the code out of a text.

use crate::{Typing, World, me};
use std::time::{Duration, Instant};

/// The test user's number, and how the prompts show it.
pub const NUMBER: &str = "+4915112345678";
pub const MASKED: &str = "+49********678";

/// A login through service `twofold` that answers `sms` to the offer and has been told
/// the code is on its way (5 minutes, the default); returns it, waiting for the code.
pub fn ask_for_a_text(w: &World) -> Typing {
    let mut login = w.pam_typing("twofold", me());
    login.wait_for(&format!("'sms' to text a code to {MASKED}"));
    login.line("sms");
    let shown = login.wait_for("valid 5 min: ");
    assert!(
        shown.contains(&format!("Code sent by SMS to {MASKED} at ")),
        "{shown}\n{}",
        w.daemon_log()
    );
    login
}

/// A login that answers `sms` and is told at once (within `limit`) that the text could
/// not be sent because the gateway is unavailable; returns it, asking for a code again,
/// and how long the answer took.
pub fn ask_and_hear_unavailable(w: &World, limit: Duration) -> (Typing, Duration) {
    let started = Instant::now();
    let mut login = w.pam_typing("twofold", me());
    login.line("sms");
    let shown = login.wait_for("Use your authenticator app, or try again later.");
    let took = started.elapsed();
    assert!(
        shown.contains("The text could not be sent (the SMS gateway is unavailable)"),
        "{shown}\n{}",
        w.daemon_log()
    );
    assert!(took < limit, "told after {took:?}");
    (login, took)
}

/// The six digits a text starts with.
pub fn code_in(text: &str) -> String {
    let code: String = text.chars().take(6).collect();
    assert!(code.chars().all(|c| c.is_ascii_digit()), "{text}");
    code
}

/// The configuration for texts to +49 numbers: `[sms]` with `extra` keys, then
/// `gateway`, a gateway's section with its header (`[sms.kannel]\n…`).
pub fn sms_config(extra: &str, gateway: &str) -> String {
    format!("[sms]\nenabled = true\nallowed_prefixes = [\"+49\"]\n{extra}\n{gateway}")
}

/// Service `twofold` whose pam.d line says a password came first (`offer_enrolment`,
/// so SMS is offered), the test user enrolled with an app and [`NUMBER`] on record.
/// Returns the app's secret.
pub fn ready_to_text(w: &World) -> String {
    w.write_service("twofold", &w.module_line("offer_enrolment"));
    let secret = w.enrol(me());
    let out = w.ctl(&["user", "set", me(), "--phone", NUMBER], "");
    assert!(out.status.success(), "{}", crate::combined(&out));
    secret
}
