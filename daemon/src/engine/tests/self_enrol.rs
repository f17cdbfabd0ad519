//! Enrolment at login: offered within a grace period only, stored and active only after a
//! right first code, with recovery codes shown; Enter declines.

use super::*;

fn offering() -> Fixture {
    // Ten days of grace from T0.
    fixture_with("version = 1\n[enrolment]\ndeadline = \"2027-01-25T08:00:00Z\"\n")
}

/// A login whose pam.d line says a `requisite` first factor came before the module.
fn after_password(user: &str) -> LoginContext {
    LoginContext {
        offer_enrolment: true,
        ..ctx(user)
    }
}

/// The key the offer shows, without its spaces.
fn offered_secret(step: &Step) -> String {
    let text = &step.messages[0].text;
    text.lines()
        .find_map(|l| {
            l.split_once("(time-based): ")
                .map(|(_, k)| k.replace(' ', ""))
        })
        .unwrap_or_else(|| panic!("no key in {text}"))
}

#[test]
fn an_app_offered_at_login_is_active_only_after_a_right_first_code() {
    let f = offering();
    let (id, offer) = f.engine.begin(&root(), after_password("alice")).unwrap();
    assert_eq!(offer.action, Action::PromptVisible);
    assert!(
        offer.prompt.ends_with("Press Enter to continue: "),
        "{offer:?}"
    );
    assert!(
        offer.prompt.contains("mandatory"),
        "the reminder comes first: {offer:?}"
    );
    let text = &offer.messages[0].text;
    assert!(
        text.contains('█') && text.contains("Issuer: host, account: alice@host"),
        "{text}"
    );
    let secret = offered_secret(&offer);
    assert_eq!(f.engine.status(&root(), "alice").unwrap().state, "none");

    let wrong = if f.code(&secret, 0) == "000000" {
        "111111"
    } else {
        "000000"
    };
    let again = f.engine.answer(&root(), &id, wrong).unwrap();
    assert_eq!(again.action, Action::PromptVisible);
    assert_eq!(
        f.engine.status(&root(), "alice").unwrap().state,
        "none",
        "a wrong code enrolled"
    );

    let code = f.code(&secret, 0);
    let shown = f.engine.answer(&root(), &id, &code).unwrap();
    assert_eq!(shown.action, Action::PromptVisible, "{shown:?}");
    let codes = &shown.messages[1].text;
    assert_eq!(
        codes.matches('-').count(),
        30,
        "ten codes of four groups: {codes}"
    );
    let status = f.engine.status(&root(), "alice").unwrap();
    assert_eq!(
        (
            status.state.as_str(),
            status.factor.as_str(),
            status.recovery_codes
        ),
        ("active", "totp", 10)
    );
    assert_eq!(
        f.engine.answer(&root(), &id, "").unwrap().action,
        Action::Success
    );
    assert!(
        f.reasons()
            .iter()
            .any(|r| r == "self-enrolled at login; factor activated")
    );
    assert!(
        f.reasons()
            .iter()
            .all(|r| !r.contains(&secret) && !r.contains(&code))
    );

    // From now on the login asks for the app's code, and the first one is spent.
    let steps = f.login("alice", &[&code]);
    assert_eq!(steps[0].action, Action::PromptSecret);
    assert_eq!(
        last_action(&steps),
        Action::PromptSecret,
        "the enrolling code was replayed"
    );
    f.clock.advance(30);
    let steps = f.login("alice", &[&f.code(&secret, 0)]);
    assert_eq!(last_action(&steps), Action::Success, "{steps:?}");
}

#[test]
fn enter_declines_the_grace_rules_apply_and_the_next_login_offers_again() {
    let f = offering();
    let steps = f.login_as(&root(), after_password("alice"), &[""]);
    assert_eq!(last_action(&steps), Action::Success, "{steps:?}");
    assert_eq!(f.engine.status(&root(), "alice").unwrap().state, "none");
    let (_, offer) = f.engine.begin(&root(), after_password("alice")).unwrap();
    assert_eq!(offer.action, Action::PromptVisible);
    // Three codes that do not match end like Enter: the grace rules let the login on.
    let steps = f.login_as(
        &root(),
        after_password("bob"),
        &["000000", "000001", "000002"],
    );
    let last = steps.last().unwrap();
    assert_eq!(last.action, Action::Success, "{steps:?}");
    assert!(
        last.messages.iter().any(|m| m.text.contains("not set up")),
        "{last:?}"
    );
    assert_eq!(f.engine.status(&root(), "bob").unwrap().state, "none");
}

#[test]
fn no_offer_outside_a_grace_period() {
    // After the deadline: refused, nothing offered (the password alone would guard it).
    let f = offering();
    f.clock.set(T0 + 11 * DAY);
    let (_, step) = f.engine.begin(&root(), after_password("alice")).unwrap();
    assert_eq!(step.action, Action::Denied, "{step:?}");
    // No deadline at all, unenrolled = deny: asked for a code like everyone.
    let f = fixture();
    let (_, step) = f.engine.begin(&root(), after_password("alice")).unwrap();
    assert_eq!(step.action, Action::PromptSecret, "{step:?}");
    assert!(step.messages.is_empty());
}

#[test]
fn a_deferral_cleared_while_the_offer_is_shown_refuses_a_decline_but_not_an_enrolment() {
    let f = fixture_with("version = 1\n");
    f.engine.grace_set(&root(), "alice", T0 + DAY, "").unwrap();
    let (id, offer) = f.engine.begin(&root(), after_password("alice")).unwrap();
    let (id2, _) = f.engine.begin(&root(), after_password("alice")).unwrap();
    f.engine.grace_clear(&root(), "alice").unwrap();
    assert_eq!(
        f.engine.answer(&root(), &id, "").unwrap().action,
        Action::Denied
    );
    let secret = offered_secret(&offer);
    // The other offer's key is a different one: only it can finish that login.
    let step = f.engine.answer(&root(), &id2, &f.code(&secret, 0)).unwrap();
    assert_eq!(step.action, Action::PromptVisible, "{step:?}");
    assert!(
        step.messages
            .iter()
            .any(|m| m.text.contains("does not match")),
        "{step:?}"
    );
}

#[test]
fn only_a_login_known_to_have_passed_a_first_factor_is_offered() {
    let f = offering();
    let offered = |caller: &Caller, c: LoginContext| {
        let (id, step) = f.engine.begin(caller, c).unwrap();
        f.engine.cancel(caller, &id);
        step.messages
            .iter()
            .any(|m| m.text.contains("Set up your authenticator app"))
    };
    // Root's login without the pam.d word: a wrong password might not have stopped it.
    assert!(
        !offered(&root(), ctx("alice")),
        "offered behind a password that may have failed"
    );
    assert!(offered(&root(), after_password("alice")));
    // sshd after a public key.
    assert!(offered(&root(), ssh_key("alice", KEY_A, "192.0.2.7")));
    // The user's own process (a screen locker): the user is logged in already.
    let locker = LoginContext {
        service: "xscreensaver".into(),
        rhost: String::new(),
        ..ctx("alice")
    };
    assert!(offered(&as_uid(1000, ":1.9"), locker));
}

#[test]
fn of_two_offers_taken_at_once_the_first_wins_and_the_second_is_refused() {
    let f = offering();
    let (first, offer1) = f.engine.begin(&root(), after_password("alice")).unwrap();
    let (second, offer2) = f.engine.begin(&root(), after_password("alice")).unwrap();
    let (key1, key2) = (offered_secret(&offer1), offered_secret(&offer2));
    let step = f.engine.answer(&root(), &first, &f.code(&key1, 0)).unwrap();
    assert_eq!(step.action, Action::PromptVisible, "{step:?}");
    let step = f
        .engine
        .answer(&root(), &second, &f.code(&key2, 0))
        .unwrap();
    assert_eq!(
        step.action,
        Action::Denied,
        "the second offer replaced the first: {step:?}"
    );
    // The app that was set up is the first one's.
    f.clock.advance(30);
    let steps = f.login("alice", &[&f.code(&key1, 0)]);
    assert_eq!(last_action(&steps), Action::Success, "{steps:?}");
}
