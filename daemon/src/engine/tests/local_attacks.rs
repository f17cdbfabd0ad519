//! The new conversation stages (codes by e-mail, the offer at login, recovery codes)
//! attacked as a local user would: huge answers, names with newlines, a lock or reset
//! while a prompt is open, a flood of logins asking for mail.

use super::*;

const MAIL: &str = "version = 1\n[lockout]\nmax_failures = 3\nsource_failures = 100\n[smtp]\nhost = \"localhost\"\nsecurity = \"none\"\nfrom = \"twofold@example.org\"\n[email_codes]\nenabled = true\n";

fn locker() -> LoginContext {
    LoginContext {
        service: "xscreensaver".into(),
        rhost: String::new(),
        tty: ":0".into(),
        ..ctx("alice")
    }
}

#[test]
fn huge_answers_enrol_nothing_and_are_wrong_codes_not_mails() {
    let f = fixture_with(&format!("{MAIL}[enrolment]\ndeadline = \"2027-01-25\"\n"));
    let alice = as_uid(1000, ":1.9");
    // The offer at login (the user's own process is offered it): 100 KB of digits.
    let (id, offer) = f.engine.begin(&alice, locker()).unwrap();
    assert_eq!(offer.action, Action::PromptVisible, "{offer:?}");
    let step = f.engine.answer(&alice, &id, &"1".repeat(100_000)).unwrap();
    assert_ne!(step.action, Action::PromptVisible, "{step:?}");
    assert_eq!(f.engine.status(&root(), "alice").unwrap().state, "none");
    // At the code prompt: 100 KB of digits is a wrong code, 100 KB of blanks one request.
    f.engine
        .set_email(&root(), "bob", "bob@example.org")
        .unwrap();
    let steps = f.login("bob", &[&"7".repeat(100_000), &" ".repeat(100_000)]);
    assert_eq!(
        f.engine.status(&root(), "bob").unwrap().failures,
        1,
        "{steps:?}"
    );
    assert_eq!(f.courier.sent.lock().unwrap().len(), 1);
}

#[test]
fn names_with_newlines_or_nul_are_refused_by_every_new_method() {
    let f = fixture_with(MAIL);
    for name in ["alice\nroot", "alice\0", "", "a b"] {
        assert!(
            matches!(
                f.engine.set_security_keys(&root(), name, &[]),
                Err(ApiError::InvalidInput(_))
            ),
            "{name:?}"
        );
        assert!(
            matches!(
                f.engine.regenerate_recovery_codes(&root(), name),
                Err(ApiError::InvalidInput(_))
            ),
            "{name:?}"
        );
        assert!(
            matches!(
                f.engine.set_phone(&root(), name, "+4915112345678"),
                Err(ApiError::InvalidInput(_))
            ),
            "{name:?}"
        );
    }
    // Nor does a number with a newline, a NUL or an ANSI escape get in (blanks around it
    // are trimmed, as for an address).
    for number in [
        "+49151\n12345678",
        "+49151\u{0}12345678",
        "+49\u{1b}[2J15112345678",
    ] {
        assert!(
            matches!(
                f.engine.set_phone(&root(), "alice", number),
                Err(ApiError::InvalidInput(_))
            ),
            "{number:?}"
        );
    }
    f.engine
        .set_phone(&root(), "alice", " +4915112345678\n")
        .unwrap();
    assert_eq!(
        f.engine.status(&root(), "alice").unwrap().phone,
        "+49********678"
    );
}

#[test]
fn a_lock_while_a_mailed_code_waits_ends_the_code() {
    let f = fixture_with(MAIL);
    f.engine
        .set_email(&root(), "alice", "alice@example.org")
        .unwrap();
    let (id, _) = f.engine.begin(&root(), ctx("alice")).unwrap();
    f.engine.answer(&root(), &id, "").unwrap();
    let code = f.mailed_code();
    // Someone else locks the account meanwhile, and an administrator unlocks it.
    f.login("alice", &["000000", "000001", "000002"]);
    f.engine.unlock(&root(), "alice").unwrap();
    let step = f.engine.answer(&root(), &id, &code).unwrap();
    assert_ne!(
        step.action,
        Action::Success,
        "a code sent before the lock still passed"
    );
}

#[test]
fn a_users_flood_of_logins_asking_for_mail_sends_at_most_the_hourly_limit() {
    let f = fixture_with(&format!("{MAIL}per_hour = 3\n"));
    f.engine
        .set_email(&root(), "alice", "alice@example.org")
        .unwrap();
    let alice = as_uid(1000, ":1.9");
    for _ in 0..20 {
        let (id, _) = f.engine.begin(&alice, locker()).unwrap();
        f.engine.answer(&alice, &id, "").unwrap();
        f.engine.cancel(&alice, &id);
    }
    assert_eq!(f.courier.sent.lock().unwrap().len(), 3);
    // The limit was the user's own process's: sshd's logins from elsewhere still get mail.
    f.login("alice", &[""]);
    assert_eq!(f.courier.sent.lock().unwrap().len(), 4);
}
