//! Texted one-time codes through the engine, with the texter that keeps its texts.

use super::*;
use crate::sms::{Accepted, SmsError};

const WITH_SMS: &str = "version = 1\n[daemon]\nadmin_group = \"twofold-admin\"\n[lockout]\nmax_failures = 5\nsource_failures = 100\n[sms]\nenabled = true\nallowed_prefixes = [\"+49\", \"+33\"]\n";
const KANNEL: &str = "[sms.kannel]\nurl = \"http://127.0.0.1:13013/cgi-bin/sendsms\"\nusername = \"twofold\"\npassword_file = \"/etc/twofold/kannel.password\"\n";
const ALICE: &str = "+4915112345678";

/// `extra` holds more `[sms]` keys (the section is open at the end).
fn with_sms(extra: &str) -> Fixture {
    fixture_with(&format!("{WITH_SMS}{extra}\n{KANNEL}"))
}

/// [`with_sms`], with alice enrolled and `ALICE` her number.
fn alice_with_a_number(extra: &str) -> Fixture {
    let f = with_sms(extra);
    f.enrol("alice");
    f.set_phone("alice", ALICE);
    f
}

/// A login whose stack checked the password first (`offer_enrolment` in pam.d).
fn after_password(user: &str) -> LoginContext {
    LoginContext {
        offer_enrolment: true,
        ..ctx(user)
    }
}

impl Fixture {
    fn texts(&self) -> Vec<(String, crate::sms::Sms)> {
        self.texter.sent.lock().unwrap().clone()
    }

    /// The code in the last text.
    fn texted_code(&self) -> String {
        let (_, sms) = self.texts().pop().expect("a text was sent");
        sms.text[..6].to_owned()
    }

    /// Who was told by e-mail that their number changed, at which address.
    fn phone_alarms(&self) -> Vec<(String, String)> {
        self.notices
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|n| n.change == Change::PhoneChanged)
            .map(|n| (n.user.clone(), n.to.clone()))
            .collect()
    }

    fn set_phone(&self, user: &str, number: &str) {
        self.engine.set_phone(&root(), user, number).unwrap();
    }

    fn begin_after_password(&self, user: &str) -> (String, Step) {
        self.engine.begin(&root(), after_password(user)).unwrap()
    }

    fn failures(&self, user: &str) -> u32 {
        self.engine
            .with_store(|s| s.user(user))
            .unwrap()
            .map_or(0, |r| r.failures)
    }
}

fn errors(step: &Step) -> Vec<&str> {
    step.messages.iter().map(|m| m.text.as_str()).collect()
}

#[test]
fn a_texted_code_logs_in_once_and_the_prompt_shows_only_the_masked_number() {
    let f = alice_with_a_number("");
    let (id, first) = f.begin_after_password("alice");
    assert_eq!(
        first.prompt,
        "Verification code (or 'sms' to text a code to +49********678): "
    );
    let sent = f.engine.answer(&root(), &id, " SMS ").unwrap();
    assert_eq!(sent.action, Action::PromptSecret);
    assert!(
        sent.prompt
            .starts_with("Code sent by SMS to +49********678 at ")
            && sent.prompt.ends_with(", valid 5 min: "),
        "{:?}",
        sent.prompt
    );
    let texts = f.texts();
    assert_eq!(texts.len(), 1);
    assert_eq!(texts[0].1.to, ALICE);
    assert_eq!(texts[0].1.valid_minutes, 5);
    let code = f.texted_code();
    assert!(
        texts[0].1.text.contains("sshd on host"),
        "{}",
        texts[0].1.text
    );
    let done = f.engine.answer(&root(), &id, &code).unwrap();
    assert_eq!(done.action, Action::Success);
    // Once: the same code in a new login is a wrong code.
    let steps = f.login("alice", &[&code]);
    assert_eq!(steps[1].action, Action::PromptSecret);
    assert!(errors(&steps[1]).contains(&"Wrong code, try again."));
    let log = f.reasons().join("\n");
    assert!(log.contains("code texted to +49********678"), "{log}");
    assert!(log.contains("texted code verified"), "{log}");
    assert!(!log.contains(&code) && !log.contains(ALICE), "{log}");
}

#[test]
fn no_offer_without_a_first_factor_a_number_or_an_allowed_prefix() {
    let f = alice_with_a_number("");
    // The stack says nothing of a first factor: a stranger who knows the name must not
    // be able to send texts, so "sms" is just a wrong code.
    let steps = f.login("alice", &["sms"]);
    assert_eq!(steps[0].prompt, CODE_PROMPT);
    assert!(errors(&steps[1]).contains(&"Wrong code, try again."));
    assert_eq!(f.failures("alice"), 1, "counted like any wrong code");
    f.enrol("bob");
    let (_, first) = f.begin_after_password("bob");
    assert_eq!(first.prompt, CODE_PROMPT, "bob has no number");
    f.enrol("carol");
    f.set_phone("carol", "+12025550123");
    let (_, first) = f.begin_after_password("carol");
    assert_eq!(first.prompt, CODE_PROMPT, "+1 is not an allowed prefix");
    // Nor with SMS off.
    let off = fixture();
    off.enrol("alice");
    off.set_phone("alice", ALICE);
    let (_, first) = off.begin_after_password("alice");
    assert_eq!(first.prompt, CODE_PROMPT);
    assert!(f.texts().is_empty() && off.texts().is_empty());
}

#[test]
fn the_two_latest_codes_pass_an_older_one_and_another_logins_do_not() {
    let f = alice_with_a_number("min_interval_seconds = 10");
    let (other, _) = f.begin_after_password("alice");
    let (id, _) = f.begin_after_password("alice");
    let mut codes = Vec::new();
    for _ in 0..3 {
        let step = f.engine.answer(&root(), &id, "sms").unwrap();
        assert!(step.prompt.starts_with("Code sent by SMS"), "{step:?}");
        codes.push(f.texted_code());
        f.clock.advance(10);
    }
    let wrong = f.engine.answer(&root(), &other, &codes[2]).unwrap();
    assert!(
        errors(&wrong).contains(&"Wrong code, try again."),
        "another login's code passed: {wrong:?}"
    );
    if codes[0] != codes[1] && codes[0] != codes[2] {
        let old = f.engine.answer(&root(), &id, &codes[0]).unwrap();
        assert!(errors(&old).contains(&"Wrong code, try again."), "{old:?}");
        assert_eq!(old.prompt, "Code from the text (or 'sms' for a new one): ");
    }
    let late = f.engine.answer(&root(), &id, &codes[1]).unwrap();
    assert_eq!(late.action, Action::Success, "the one before the latest");
}

#[test]
fn limits_say_when_to_try_again_and_never_lock() {
    let f = alice_with_a_number("");
    let (id, _) = f.begin_after_password("alice");
    f.engine.answer(&root(), &id, "sms").unwrap();
    f.clock.advance(20);
    let soon = f.engine.answer(&root(), &id, "sms").unwrap();
    assert_eq!(soon.action, Action::PromptSecret);
    assert!(
        errors(&soon)
            .contains(&"SMS limit reached; try again in 40 s, or use your authenticator app."),
        "{soon:?}"
    );
    // 3 in 15 minutes: the next logins, a minute apart.
    for _ in 0..2 {
        f.clock.advance(60);
        let (id, _) = f.begin_after_password("alice");
        let step = f.engine.answer(&root(), &id, "sms").unwrap();
        assert!(step.prompt.starts_with("Code sent by SMS"), "{step:?}");
    }
    f.clock.advance(60);
    let (id, _) = f.begin_after_password("alice");
    let capped = f.engine.answer(&root(), &id, "sms").unwrap();
    let said = errors(&capped).join(" ");
    assert!(said.contains("SMS limit reached; try again in "), "{said}");
    assert_eq!(f.texts().len(), 3);
    assert_eq!(f.failures("alice"), 0, "asking is not a wrong code");
    let record = f.engine.with_store(|s| s.user("alice")).unwrap().unwrap();
    assert_eq!(record.locked_until, 0, "limits never lock");
    // A login may ask three times at most, whatever the limits allow.
    let g = alice_with_a_number("min_interval_seconds = 10\nper_15_minutes = 10");
    let (id, _) = g.begin_after_password("alice");
    for _ in 0..3 {
        g.engine.answer(&root(), &id, "sms").unwrap();
        g.clock.advance(10);
    }
    let fourth = g.engine.answer(&root(), &id, "sms").unwrap();
    assert!(
        errors(&fourth)
            .join(" ")
            .contains("No more texts for this login"),
        "{fourth:?}"
    );
    assert_eq!(g.texts().len(), 3);
}

#[test]
fn the_global_cap_holds_for_everyone_together() {
    let f = with_sms("global_per_minute = 2");
    for user in ["alice", "bob", "carol"] {
        f.enrol(user);
        f.set_phone(user, ALICE);
    }
    let asked: Vec<Step> = ["alice", "bob", "carol"]
        .iter()
        .map(|u| {
            let (id, _) = f.begin_after_password(u);
            f.engine.answer(&root(), &id, "sms").unwrap()
        })
        .collect();
    assert!(asked[0].prompt.starts_with("Code sent") && asked[1].prompt.starts_with("Code sent"));
    assert!(
        errors(&asked[2])
            .join(" ")
            .contains("Too many texts are being sent right now"),
        "{:?}",
        asked[2]
    );
    f.clock.advance(60);
    let (id, _) = f.begin_after_password("carol");
    let later = f.engine.answer(&root(), &id, "sms").unwrap();
    assert!(later.prompt.starts_with("Code sent"), "{later:?}");
}

#[test]
fn asks_the_users_own_limits_refuse_use_up_no_one_elses_texts() {
    let f = with_sms("global_per_minute = 2");
    for user in ["alice", "bob"] {
        f.enrol(user);
        f.set_phone(user, ALICE);
    }
    let (id, _) = f.begin_after_password("alice");
    for _ in 0..3 {
        f.engine.answer(&root(), &id, "sms").unwrap();
    }
    assert_eq!(
        f.texts().len(),
        1,
        "alice's interval refused her second and third"
    );
    let (id, _) = f.begin_after_password("bob");
    let step = f.engine.answer(&root(), &id, "sms").unwrap();
    assert!(step.prompt.starts_with("Code sent"), "{step:?}");
}

#[test]
fn setting_the_same_number_again_alarms_no_one() {
    let f = with_sms("");
    f.enrol("alice");
    f.engine
        .set_email(&root(), "alice", "alice@example.org")
        .unwrap();
    f.set_phone("alice", ALICE);
    f.set_phone("alice", ALICE);
    assert_eq!(f.phone_alarms().len(), 1);
    assert!(f.texts().is_empty());
}

#[test]
fn a_gateway_that_fails_is_said_at_once_counts_nothing_and_its_code_is_void() {
    let f = alice_with_a_number("");
    for (answer, said) in [
        (
            SmsError::Unavailable("cannot connect".into()),
            "the SMS gateway is unavailable",
        ),
        (
            SmsError::Refused("HTTP 403".into()),
            "the SMS gateway refused it",
        ),
    ] {
        *f.texter.answer.lock().unwrap() = Some(Err(answer));
        let (id, _) = f.begin_after_password("alice");
        let step = f.engine.answer(&root(), &id, "sms").unwrap();
        assert_eq!(step.action, Action::PromptSecret);
        assert!(
            step.prompt.starts_with("Verification code (or 'sms'"),
            "{step:?}"
        );
        assert!(
            errors(&step).join(" ").contains(&format!(
                "The text could not be sent ({said}). Use your authenticator app"
            )),
            "{step:?}"
        );
        f.clock.advance(60);
    }
    assert_eq!(f.failures("alice"), 0);
    assert!(
        f.reasons()
            .iter()
            .any(|r| r.contains("code not texted to +49********678"))
    );
    // A queued text is a sent one for the login.
    *f.texter.answer.lock().unwrap() = Some(Ok(Accepted::Queued));
    let (id, _) = f.begin_after_password("alice");
    let step = f.engine.answer(&root(), &id, "sms").unwrap();
    assert!(step.prompt.starts_with("Code sent by SMS"), "{step:?}");
}

#[test]
fn a_new_number_ends_the_codes_texted_before_and_is_told_by_mail() {
    let f = with_sms("");
    f.enrol("alice");
    // (Before the login: a new address ends open conversations by itself.)
    f.engine
        .set_email(&root(), "alice", "alice@example.org")
        .unwrap();
    f.set_phone("alice", ALICE);
    let (id, _) = f.begin_after_password("alice");
    f.engine.answer(&root(), &id, "sms").unwrap();
    let code = f.texted_code();
    f.set_phone("alice", "+33612345678");
    let told = f.phone_alarms();
    // Told when the number was set, and again when it changed.
    let alice = ("alice".to_string(), "alice@example.org".to_string());
    assert_eq!(told, [alice.clone(), alice]);
    let after = f.engine.answer(&root(), &id, &code);
    assert!(
        !matches!(&after, Ok(step) if step.action == Action::Success),
        "a code texted to the old number passed: {after:?}"
    );
    let removed = alice_with_a_number("");
    let (id, _) = removed.begin_after_password("alice");
    removed.set_phone("alice", "");
    let step = removed.engine.answer(&root(), &id, "sms").unwrap();
    assert!(
        errors(&step).join(" ").contains("No number is on record"),
        "{step:?}"
    );
    // Only the notice to the number that was removed, no code.
    let sent: Vec<String> = removed.texts().into_iter().map(|(_, s)| s.text).collect();
    assert!(
        sent.len() == 1 && sent[0].starts_with("This phone no longer gets"),
        "{sent:?}"
    );
}

#[test]
fn the_number_that_loses_the_codes_is_told_by_text() {
    let f = alice_with_a_number("");
    assert!(f.texts().is_empty(), "a first number is not texted");
    f.set_phone("alice", "+33612345678");
    f.set_phone("alice", "+33612345678");
    f.set_phone("alice", "");
    let told: Vec<(String, String)> = f
        .texts()
        .into_iter()
        .map(|(_, sms)| (sms.to, sms.text))
        .collect();
    let notice = "This phone no longer gets twofold login codes for host. Did not ask for that? Tell IT at once.";
    assert_eq!(
        told,
        [
            (ALICE.to_string(), notice.to_string()),
            ("+33612345678".to_string(), notice.to_string())
        ],
        "the old number when it changed and when it was removed; nothing for the same number again"
    );
}

#[test]
fn a_reset_for_a_lost_phone_removes_the_number_too() {
    let f = alice_with_a_number("");
    // A login waiting at "Code sent by SMS" when the administrator resets.
    let (id, _) = f.begin_after_password("alice");
    f.engine.answer(&root(), &id, "sms").unwrap();
    let code = f.texted_code();
    assert!(f.engine.reset(&root(), "alice").unwrap());
    let after = f.engine.answer(&root(), &id, &code);
    assert!(
        !matches!(&after, Ok(step) if step.action == Action::Success),
        "a code texted before the reset passed: {after:?}"
    );
    assert_eq!(f.engine.status(&root(), "alice").unwrap().phone, "");
    let told: Vec<String> = f.texts().into_iter().map(|(_, s)| s.to).collect();
    assert_eq!(
        told,
        [ALICE, ALICE],
        "the code, then the notice that the number lost the codes"
    );
    // Enrolled again, the user is not offered texts to the old number.
    f.enrol("alice");
    let (_, first) = f.begin_after_password("alice");
    assert_eq!(first.prompt, CODE_PROMPT);
}

#[test]
fn only_administrators_set_numbers_and_only_e164_ones() {
    let f = with_sms("");
    f.enrol("alice");
    let alice = as_uid(1000, ":1.9");
    assert!(matches!(
        f.engine.set_phone(&alice, "alice", ALICE),
        Err(ApiError::PermissionDenied(_))
    ));
    for bad in ["015112345678", "+49 151 12345678", "+49151x", "+0123456789"] {
        assert!(
            matches!(
                f.engine.set_phone(&root(), "alice", bad),
                Err(ApiError::InvalidInput(_))
            ),
            "{bad}"
        );
    }
    f.enrol("bob");
    f.enrol("carol");
    f.set_phone("alice", ALICE);
    let shared = f.engine.set_phone(&root(), "bob", ALICE).unwrap();
    assert_eq!(shared, ["alice"], "a shared number is reported");
    f.set_phone("carol", "+33612345678");
    // status and list show the number masked, and flag a shared one.
    let status = f.engine.status(&root(), "alice").unwrap();
    assert_eq!(
        (status.phone.as_str(), status.phone_shared),
        ("+49********678", true)
    );
    let (page, _) = f.engine.list(&root(), "", 10).unwrap();
    let shown: Vec<(&str, &str, bool)> = page
        .iter()
        .map(|s| (s.user.as_str(), s.phone.as_str(), s.phone_shared))
        .collect();
    assert_eq!(
        shown,
        [
            ("alice", "+49********678", true),
            ("bob", "+49********678", true),
            ("carol", "+33******678", false)
        ]
    );
}

#[test]
fn the_strict_profile_refuses_sms_and_sms_needs_its_gateway_and_prefixes() {
    let strict = format!(
        "version = 1\nprofile = \"strict\"\n[sms]\nenabled = true\nallowed_prefixes = [\"+49\"]\n{KANNEL}"
    );
    let e = Config::parse(&strict, "test").unwrap_err().to_string();
    assert!(e.contains("not allowed with profile = \"strict\""), "{e}");
    let e = Config::parse(
        "version = 1\n[sms]\nenabled = true\nallowed_prefixes = [\"+49\"]\n",
        "test",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("needs a gateway"), "{e}");
    let e = Config::parse(
        &format!("version = 1\n[sms]\nenabled = true\n{KANNEL}"),
        "test",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("needs allowed_prefixes"), "{e}");
    let remote = KANNEL.replace("127.0.0.1", "sms.example.org");
    let e = Config::parse(&format!("{WITH_SMS}{remote}"), "test")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("plain http is for a gateway on this machine only"),
        "{e}"
    );
    assert!(
        Config::parse(
            &format!("{WITH_SMS}{}", remote.replace("http://", "https://")),
            "test"
        )
        .is_ok()
    );
}

#[test]
fn a_huge_answer_is_a_wrong_code_and_a_padded_sms_one_request() {
    let f = alice_with_a_number("");
    let (id, _) = f.begin_after_password("alice");
    // 64 KiB of digits: a wrong code, counted, nothing texted.
    let step = f
        .engine
        .answer(&root(), &id, &"7".repeat(64 * 1024))
        .unwrap();
    assert!(
        errors(&step).contains(&"Wrong code, try again."),
        "{step:?}"
    );
    assert!(f.texts().is_empty());
    assert_eq!(f.failures("alice"), 1);
    // `sms` in 64 KiB of blanks is `sms`, as blanks are a request for a mail
    // (local_attacks::huge_answers_…): one text, within the limits like any other.
    let padded = format!("{}sms{}", " ".repeat(32 * 1024), " ".repeat(32 * 1024));
    let step = f.engine.answer(&root(), &id, &padded).unwrap();
    assert!(step.prompt.starts_with("Code sent by SMS"), "{step:?}");
    let step = f.engine.answer(&root(), &id, &padded).unwrap();
    assert!(
        errors(&step).join(" ").contains("SMS limit reached"),
        "{step:?}"
    );
    assert_eq!(f.texts().len(), 1);
}

/// The reference in the callback URL of the last text.
fn report_reference(f: &Fixture) -> String {
    let (_, sms) = f.texts().pop().expect("a text was sent");
    let url = sms.report_url.expect("reports are asked for");
    let reference = url
        .strip_prefix("http://127.0.0.1:13080/dlr/")
        .and_then(|r| r.strip_suffix("?type=%d"))
        .expect("the callback URL");
    reference.to_owned()
}

/// alice with her number, reports asked for (`extra`: more `[sms]` keys), and her login
/// after a password that has had a code texted.
fn texted_with_reports(extra: &str) -> (Fixture, String) {
    let f = fixture_with(&format!(
        "{WITH_SMS}{extra}\n{KANNEL}reports_address = \"127.0.0.1:13080\"\n"
    ));
    f.enrol("alice");
    f.set_phone("alice", ALICE);
    let (id, _) = f.begin_after_password("alice");
    f.engine.answer(&root(), &id, "sms").unwrap();
    (f, id)
}

#[test]
fn delivery_reports_reach_the_audit_and_the_next_prompt() {
    let (f, id) = texted_with_reports("");
    let reference = report_reference(&f);
    let log = f.reasons().join("\n");
    assert!(log.contains("the gateway took it (text 1)"), "{log}");
    assert!(
        !log.contains(&reference),
        "the reference stays secret: {log}"
    );
    // No report yet: the next prompt says so.
    let step = f.engine.answer(&root(), &id, "000000").unwrap();
    assert_eq!(
        step.prompt,
        "Code from the text (not delivered yet; or 'sms' for a new one): "
    );
    // The SMS centre took it: still not on the phone.
    f.engine.delivery_report(&reference, 8);
    let step = f.engine.answer(&root(), &id, "000000").unwrap();
    assert!(
        step.prompt.contains("not delivered yet"),
        "{:?}",
        step.prompt
    );
    f.engine.delivery_report(&reference, 1);
    // (Asking for another text within the minute is refused, and shows the prompt again.)
    let step = f.engine.answer(&root(), &id, "sms").unwrap();
    assert!(
        errors(&step)[0].starts_with("SMS limit reached"),
        "{step:?}"
    );
    assert_eq!(
        step.prompt,
        "Code from the text (delivered; or 'sms' for a new one): "
    );
    let reports: Vec<_> = f
        .audit
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.action == "sms-report")
        .map(|e| (e.outcome, e.user.clone(), e.reason.clone()))
        .collect();
    assert_eq!(
        reports,
        vec![
            (
                "accepted",
                "alice".to_owned(),
                "text 1 to +49********678: the operator took it (Kannel report type 8)".to_owned()
            ),
            (
                "delivered",
                "alice".to_owned(),
                "text 1 to +49********678: delivered to the phone (Kannel report type 1)"
                    .to_owned()
            ),
        ]
    );
    // A guessed reference or an unknown type is ignored, unaudited.
    f.engine.delivery_report(&"0".repeat(32), 2);
    f.engine.delivery_report(&reference, 3);
    let count = f.audit.0.lock().unwrap().len();
    f.engine.delivery_report(&"f".repeat(32), 16);
    assert_eq!(f.audit.0.lock().unwrap().len(), count);
    // The code still works once.
    let code = f.texted_code();
    let done = f.engine.answer(&root(), &id, &code).unwrap();
    assert_eq!(done.action, Action::Success);
}

#[test]
fn a_text_the_operator_gave_up_on_says_so_and_one_not_sent_is_not_followed() {
    let (f, id) = texted_with_reports("min_interval_seconds = 10");
    f.engine.delivery_report(&report_reference(&f), 16);
    let step = f.engine.answer(&root(), &id, "000000").unwrap();
    assert_eq!(
        step.prompt,
        "The text was not delivered: 'sms' to send another, or your app's code: "
    );
    assert!(
        f.audit
            .0
            .lock()
            .unwrap()
            .iter()
            .any(|e| e.action == "sms-report" && e.outcome == "failure")
    );
    // A text the gateway refused is not followed: no "text N" in the audit.
    *f.texter.answer.lock().unwrap() = Some(Err(SmsError::Unavailable("down".into())));
    f.clock.advance(11);
    f.engine.answer(&root(), &id, "sms").unwrap();
    let reports = f.engine.reports.as_ref().unwrap();
    assert_eq!(reports.record(&"0".repeat(32), 1, f.clock.now()), None);
    assert!(!f.reasons().join("\n").contains("(text 2)"));
}

#[test]
fn reports_are_asked_for_only_where_set_and_only_on_loopback() {
    let f = alice_with_a_number("");
    let (id, _) = f.begin_after_password("alice");
    f.engine.answer(&root(), &id, "sms").unwrap();
    assert_eq!(f.texts()[0].1.report_url, None);
    let step = f.engine.answer(&root(), &id, "000000").unwrap();
    assert_eq!(step.prompt, "Code from the text (or 'sms' for a new one): ");
    for (address, why) in [
        ("192.0.2.1:13080", "a loopback address"),
        ("127.0.0.1:0", "a loopback address"),
    ] {
        let e = Config::parse(
            &format!("{WITH_SMS}\n{KANNEL}reports_address = \"{address}\"\n"),
            "test",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains(why), "{e}");
    }
    let e = Config::parse(
        &format!("{WITH_SMS}\n{KANNEL}reports_address = \"localhost:13080\"\n"),
        "test",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("reports_address"), "{e}");
}

#[test]
fn a_number_is_a_sole_factor_only_where_policy_says_so() {
    // Off (the default): a number alone enrols no one.
    let f = with_sms("");
    f.set_phone("bob", ALICE);
    assert!(f.engine.with_store(|s| s.user("bob")).unwrap().is_none());
    let (_, first) = f.begin_after_password("bob");
    assert!(!first.prompt.contains("'sms'"), "{first:?}");

    let f = with_sms("sole_factor = true");
    f.set_phone("bob", ALICE);
    let record = f.engine.with_store(|s| s.user("bob")).unwrap().unwrap();
    assert_eq!(record.kind, FactorKind::Sms);
    // Without a known first factor nothing is offered, and nothing passes: `sms` and
    // every code are wrong codes.
    let steps = f.login("bob", &["sms"]);
    assert_eq!(steps[0].prompt, CODE_PROMPT);
    assert!(errors(&steps[1]).contains(&"Wrong code, try again."));
    assert!(f.texts().is_empty());
    let (id, first) = f.begin_after_password("bob");
    assert_eq!(
        first.prompt,
        "Verification code (or 'sms' to text a code to +49********678): "
    );
    f.engine.answer(&root(), &id, "sms").unwrap();
    let done = f.engine.answer(&root(), &id, &f.texted_code()).unwrap();
    assert_eq!(done.action, Action::Success, "{done:?}");
    // The number gone, the factor is gone: bob is not enrolled any more.
    f.engine.set_phone(&root(), "bob", "").unwrap();
    assert!(f.engine.with_store(|s| s.user("bob")).unwrap().is_none());
}
