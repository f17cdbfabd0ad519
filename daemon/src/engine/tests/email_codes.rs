//! E-mailed one-time codes through the engine, with the courier that keeps its mails.

use super::*;

const WITH_SMTP: &str = "version = 1\n[daemon]\nadmin_group = \"twofold-admin\"\n[lockout]\nmax_failures = 3\nsource_failures = 100\n[smtp]\nhost = \"localhost\"\nsecurity = \"none\"\nfrom = \"twofold@example.org\"\n[email_codes]\nenabled = true\n";

/// `extra` holds more `[email_codes]` keys (the section is open at the end).
fn with_smtp(extra: &str) -> Fixture {
    fixture_with(&format!("{WITH_SMTP}{extra}"))
}

impl Fixture {
    fn mails(&self) -> Vec<(String, crate::mail::Mail)> {
        self.courier.sent.lock().unwrap().clone()
    }

    /// The code in the last mail.
    pub(super) fn mailed_code(&self) -> String {
        let (_, mail) = self.mails().pop().expect("a mail was sent");
        mail.body
            .lines()
            .map(str::trim)
            .find(|l| l.len() == 6 && l.chars().all(|c| c.is_ascii_digit()))
            .expect("the mail shows a code")
            .to_owned()
    }

    fn set_address(&self, user: &str, address: &str) {
        self.engine.set_email(&root(), user, address).unwrap();
    }
}

fn texts(step: &Step) -> Vec<&str> {
    step.messages.iter().map(|m| m.text.as_str()).collect()
}

#[test]
fn an_emailed_code_logs_in_once_and_only_the_login_that_asked_for_it() {
    let f = with_smtp("");
    f.set_address("alice", "alice@example.org");
    let (id, first) = f.engine.begin(&root(), ctx("alice")).unwrap();
    assert_eq!(first.prompt, CODE_OR_EMAIL_PROMPT);
    let asked = f.engine.answer(&root(), &id, "").unwrap();
    assert_eq!(
        (asked.action, asked.prompt.as_str()),
        (Action::PromptSecret, EMAILED_PROMPT)
    );
    assert_eq!(texts(&asked), [MAYBE_SENT]);
    let mails = f.mails();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].1.to, "alice@example.org");
    for part in [
        "alice",
        "sshd",
        "host",
        "192.0.2.7",
        "2027-01-15 08:00:00 UTC",
    ] {
        assert!(
            mails[0].1.body.contains(part),
            "{part}: {}",
            mails[0].1.body
        );
    }
    let code = f.mailed_code();
    // Another login of the same user cannot use this login's code.
    let (other, _) = f.engine.begin(&root(), ctx("alice")).unwrap();
    assert_eq!(
        f.engine.answer(&root(), &other, &code).unwrap().action,
        Action::PromptSecret,
        "another login's code passed"
    );
    f.engine.cancel(&root(), &other);
    assert_eq!(
        f.engine.answer(&root(), &id, &code).unwrap().action,
        Action::Success
    );
    assert!(f.reasons().iter().any(|r| r == "e-mailed code verified"));
    // Used once: a replay in a new login fails.
    let steps = f.login("alice", &[&code]);
    assert_eq!(last_action(&steps), Action::PromptSecret, "{steps:?}");
    // No code reached the audit trail.
    assert!(f.reasons().iter().all(|r| !r.contains(&code)));
}

#[test]
fn a_new_code_replaces_the_earlier_one_and_a_code_expires() {
    let f = with_smtp("valid_minutes = 2\n");
    f.set_address("alice", "alice@example.org");
    let (id, _) = f.engine.begin(&root(), ctx("alice")).unwrap();
    f.engine.answer(&root(), &id, "").unwrap();
    let first = f.mailed_code();
    f.engine.answer(&root(), &id, "").unwrap();
    let second = f.mailed_code();
    if first != second {
        let step = f.engine.answer(&root(), &id, &first).unwrap();
        assert_eq!(
            step.action,
            Action::PromptSecret,
            "a superseded code passed"
        );
    }
    f.clock.advance(120);
    let step = f.engine.answer(&root(), &id, &second).unwrap();
    assert_ne!(step.action, Action::Success, "an expired code passed");
}

#[test]
fn the_hourly_cap_holds_and_asking_neither_counts_nor_clears_wrong_codes() {
    let f = with_smtp("per_hour = 2\n");
    f.set_address("alice", "alice@example.org");
    for _ in 0..2 {
        let steps = f.login("alice", &[""]);
        assert_eq!(texts(steps.last().unwrap()), [MAYBE_SENT]);
    }
    let steps = f.login("alice", &[""]);
    assert_eq!(texts(steps.last().unwrap()), [NO_MORE_MAILS]);
    assert_eq!(f.mails().len(), 2);
    f.clock.advance(3600);
    // Two wrong codes, a request (not a try), then a third wrong one: locked.
    let steps = f.login("alice", &["000000", "000001", "", "000002"]);
    assert_eq!(steps.len(), 5, "{steps:?}");
    assert_eq!(last_action(&steps), Action::Denied, "{steps:?}");
    assert_eq!(f.mails().len(), 3);
    // Locked: no more mails either.
    let (id, first) = f.engine.begin(&root(), ctx("alice")).unwrap();
    assert_eq!(first.action, Action::Denied);
    assert!(id.is_empty());
}

#[test]
fn a_login_asks_for_at_most_three_mails() {
    let f = with_smtp("per_hour = 100\n");
    f.set_address("alice", "alice@example.org");
    let steps = f.login("alice", &["", "", "", ""]);
    assert_eq!(texts(steps.last().unwrap()), [NO_MORE_MAILS]);
    assert_eq!(f.mails().len(), 3);
}

#[test]
fn without_an_address_for_codes_every_step_is_the_same_and_nothing_is_sent() {
    let f = with_smtp("");
    f.set_address("alice", "alice@example.org");
    f.enrol("bob");
    // carol has an app and an address for notices: app users get no codes by default.
    f.set_address("carol", "carol@example.org");
    f.enrol("carol");
    let alice = f.login("alice", &["", "000000"]);
    for name in ["bob", "carol", "nobody-here"] {
        let steps = f.login(name, &["", "000000"]);
        for (n, (theirs, hers)) in steps.iter().zip(&alice).enumerate() {
            assert_eq!(theirs.prompt, hers.prompt, "{name}, step {n}");
            assert_eq!(texts(theirs), texts(hers), "{name}, step {n}");
        }
        assert_eq!(steps.len(), alice.len(), "{name}");
    }
    assert_eq!(f.mails().len(), 1, "only alice's factor is her address");
}

#[test]
fn an_app_user_gets_codes_only_where_app_users_is_set() {
    let f = with_smtp("app_users = true\n");
    f.set_address("carol", "carol@example.org");
    f.enrol("carol");
    f.login("carol", &[""]);
    assert_eq!(f.mails().len(), 1);
}

#[test]
fn a_code_already_sent_dies_with_a_change_of_address_or_a_reset() {
    let f = with_smtp("");
    f.set_address("alice", "alice@example.org");
    for change in ["new address", "reset"] {
        let (id, _) = f.engine.begin(&root(), ctx("alice")).unwrap();
        f.engine.answer(&root(), &id, "").unwrap();
        let code = f.mailed_code();
        match change {
            "new address" => f.set_address("alice", "other@example.org"),
            _ => {
                f.engine.reset(&root(), "alice").unwrap();
            }
        }
        let step = f.engine.answer(&root(), &id, &code).unwrap();
        assert_ne!(step.action, Action::Success, "the code outlived a {change}");
    }
}

#[test]
fn a_failed_delivery_is_told_and_audited_and_counts_no_wrong_code() {
    let f = with_smtp("");
    f.set_address("alice", "alice@example.org");
    f.courier.fail.store(true, Ordering::SeqCst);
    let steps = f.login("alice", &["", ""]);
    assert!(texts(&steps[2]).contains(&NOT_SENT), "{steps:?}");
    assert!(
        f.reasons()
            .iter()
            .any(|r| r.starts_with("e-mailed code not delivered: ")),
        "{:?}",
        f.reasons()
    );
    let status = f.engine.status(&root(), "alice").unwrap();
    assert_eq!(status.failures, 0);
}

#[test]
fn an_emailed_code_passes_a_pending_app_without_confirming_it() {
    let f = with_smtp("app_users = true\n");
    f.set_address("alice", "alice@example.org");
    f.engine.enrol(&root(), "alice", false).unwrap();
    let (id, _) = f.engine.begin(&root(), ctx("alice")).unwrap();
    f.engine.answer(&root(), &id, "").unwrap();
    let code = f.mailed_code();
    assert_eq!(
        f.engine.answer(&root(), &id, &code).unwrap().action,
        Action::Success
    );
    assert_eq!(f.engine.status(&root(), "alice").unwrap().state, "pending");
}

#[test]
fn without_mail_an_address_is_no_factor_and_grace_rules_apply() {
    // No [smtp]: the e-mail factor cannot be used, so alice is unenrolled.
    let f = fixture_with("version = 1\n[enrolment]\ndeadline = \"2030-01-01\"\n");
    f.set_address("alice", "alice@example.org");
    let (_, first) = f.engine.begin(&root(), ctx("alice")).unwrap();
    assert_eq!(first.action, Action::PromptVisible, "{first:?}");
    assert!(
        first.prompt.ends_with("Press Enter to continue: "),
        "{first:?}"
    );
    // And an empty answer is an ordinary wrong code where codes are not e-mailed.
    let f = fixture();
    f.enrol("bob");
    let steps = f.login("bob", &[""]);
    assert_eq!(steps[0].prompt, CODE_PROMPT);
    assert_eq!(texts(&steps[1]), [WRONG_CODE]);
    assert!(f.mails().is_empty());
}

#[test]
fn an_administrator_is_told_who_else_has_the_address() {
    let f = with_smtp("");
    assert!(
        f.engine
            .set_email(&root(), "alice", "team@example.org")
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        f.engine
            .set_email(&root(), "bob", "Team@example.org")
            .unwrap(),
        ["alice"]
    );
    f.set_address("carol", "carol@example.org");
    // status and list flag a shared mailbox.
    assert!(f.engine.status(&root(), "alice").unwrap().email_shared);
    assert!(!f.engine.status(&root(), "carol").unwrap().email_shared);
    let (page, _) = f.engine.list(&root(), "", 10).unwrap();
    let flagged: Vec<(&str, bool)> = page
        .iter()
        .map(|s| (s.user.as_str(), s.email_shared))
        .collect();
    assert_eq!(flagged, [("alice", true), ("bob", true), ("carol", false)]);
}
