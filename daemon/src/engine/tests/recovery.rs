//! Recovery codes through the engine: given at enrolment, single use at the code prompt,
//! counted toward the lockout, replaced by an administrator.

use super::*;

const LOCKING: &str = "version = 1\n[daemon]\nadmin_group = \"twofold-admin\"\n[lockout]\nmax_failures = 3\nsource_failures = 100\n";

impl Fixture {
    /// Enrols and confirms `user`; returns the recovery codes.
    fn enrol_with_codes(&self, user: &str) -> Vec<String> {
        let offer = self.engine.enrol(&root(), user, false).unwrap();
        let code = self.code(&offer.secret, 0);
        self.engine.confirm_enrolment(&root(), user, &code).unwrap();
        offer.recovery_codes
    }
}

#[test]
fn a_recovery_code_logs_in_once_and_is_counted_told_and_audited() {
    let f = fixture_with(LOCKING);
    f.engine
        .set_email(&root(), "alice", "alice@example.org")
        .unwrap();
    let codes = f.enrol_with_codes("alice");
    assert_eq!(codes.len(), 10);
    assert_eq!(
        f.engine.status(&root(), "alice").unwrap().recovery_codes,
        10
    );
    let steps = f.login("alice", &[&codes[3].to_lowercase()]);
    let last = steps.last().unwrap();
    assert_eq!(last.action, Action::Success, "{steps:?}");
    assert!(
        last.messages.iter().any(|m| m.text.contains("9 left")),
        "{last:?}"
    );
    assert_eq!(f.engine.status(&root(), "alice").unwrap().recovery_codes, 9);
    assert!(f.reasons().iter().any(|r| r == "recovery code used"));
    assert!(f.reasons().iter().all(|r| !r.contains(&codes[3])));
    assert!(
        f.notices
            .0
            .lock()
            .unwrap()
            .iter()
            .any(|n| n.change == Change::RecoveryCodeUsed)
    );
    // Used: the same code again is a wrong code.
    let steps = f.login("alice", &[&codes[3]]);
    assert_eq!(last_action(&steps), Action::PromptSecret, "{steps:?}");
    assert_eq!(f.engine.status(&root(), "alice").unwrap().failures, 1);
}

#[test]
fn another_users_code_or_a_wrong_secret_part_fails_and_counts_and_a_lock_holds() {
    let f = fixture_with(LOCKING);
    let alice = f.enrol_with_codes("alice");
    let bob = f.enrol_with_codes("bob");
    let steps = f.login("alice", &[&bob[0]]);
    assert_eq!(
        last_action(&steps),
        Action::PromptSecret,
        "bob's code let alice in"
    );
    // The right name with a wrong secret part.
    let forged = format!("{}-0000-0000-0000", &alice[0][..4]);
    let steps = f.login("alice", &[&forged]);
    assert_eq!(last_action(&steps), Action::PromptSecret, "{steps:?}");
    let steps = f.login("alice", &["000000"]);
    assert_eq!(
        last_action(&steps),
        Action::Denied,
        "three failures lock: {steps:?}"
    );
    // Locked: a right recovery code is not even looked at.
    let (_, first) = f.engine.begin(&root(), ctx("alice")).unwrap();
    assert_eq!(first.action, Action::Denied);
    assert_eq!(
        f.engine.status(&root(), "alice").unwrap().recovery_codes,
        10
    );
}

#[test]
fn only_an_administrator_regenerates_and_the_old_codes_stop_working() {
    let f = fixture();
    let old = f.enrol_with_codes("alice");
    let alice = as_uid(1000, ":1.9");
    assert!(matches!(
        f.engine.regenerate_recovery_codes(&alice, "alice"),
        Err(ApiError::PermissionDenied(_))
    ));
    assert!(matches!(
        f.engine.regenerate_recovery_codes(&root(), "bob"),
        Err(ApiError::NotEnrolled(_))
    ));
    let new = f
        .engine
        .regenerate_recovery_codes(&root(), "alice")
        .unwrap();
    assert_eq!(new.len(), 10);
    assert!(new.iter().all(|c| !old.contains(c)));
    let steps = f.login("alice", &[&old[0]]);
    assert_eq!(
        last_action(&steps),
        Action::PromptSecret,
        "an old code still worked"
    );
    let steps = f.login("alice", &[&new[0]]);
    assert_eq!(last_action(&steps), Action::Success, "{steps:?}");
}

#[test]
fn a_reset_or_a_new_enrolment_ends_the_old_codes() {
    let f = fixture();
    let codes = f.enrol_with_codes("alice");
    f.engine.reset(&root(), "alice").unwrap();
    assert_eq!(f.engine.status(&root(), "alice").unwrap().recovery_codes, 0);
    let again = f.enrol_with_codes("alice");
    assert!(again.iter().all(|c| !codes.contains(c)));
    let replaced = f.engine.enrol(&root(), "alice", true).unwrap();
    let steps = f.login("alice", &[&again[0]]);
    assert_eq!(last_action(&steps), Action::PromptSecret, "{steps:?}");
    let steps = f.login("alice", &[&replaced.recovery_codes[0]]);
    assert_eq!(last_action(&steps), Action::Success, "{steps:?}");
}

#[test]
fn a_users_deferral_set_or_removed_is_told_but_a_groups_is_not() {
    let f = fixture();
    f.engine
        .set_email(&root(), "alice", "alice@example.org")
        .unwrap();
    let until = f.clock.now() + 7 * 86400;
    f.engine
        .grace_set(&root(), "alice", until, "new phone")
        .unwrap();
    f.engine
        .grace_set(&root(), "@staff", until, "rollout")
        .unwrap();
    f.engine.grace_clear(&root(), "alice").unwrap();
    let notices = f.notices.0.lock().unwrap();
    let grace: Vec<&Notice> = notices
        .iter()
        .filter(|n| n.change == Change::GraceChanged)
        .collect();
    assert_eq!(grace.len(), 2, "{notices:?}");
    assert!(
        grace[0].detail.starts_with("deferred until "),
        "{:?}",
        grace[0]
    );
    assert!(
        grace[1].detail.starts_with("deferral removed"),
        "{:?}",
        grace[1]
    );
}
