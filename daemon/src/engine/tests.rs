use super::*;
use crate::audit::MemoryAudit;
use crate::clock::ManualClock;
use crate::email_codes::MemoryCourier;
use crate::factor::FactorKind;
use crate::notify::{Change, MemoryNotifier};
use crate::otp;
use crate::random::OsRandom;
use crate::sms::MemoryTexter;
use crate::store::{SqliteStore, StorePool};
use std::sync::atomic::{AtomicU32, Ordering};
use twofold_protocol::{TrustInfo, UserStatus};

/// alice, bob, carol (admin group); alice is in `staff`; passwords can change.
struct Users {
    password_generation: AtomicU32,
    /// How often a password fingerprint was read.
    stamp_reads: AtomicU32,
}
impl UserDb for Users {
    /// alice is also `Alice` and `alice@example.org` (case-insensitive NSS, domains).
    fn account(&self, name: &str) -> Result<Option<Account>, LookupError> {
        let (uid, canonical) = match name {
            "alice" | "Alice" | "alice@example.org" => (1000, "alice"),
            "bob" => (1001, "bob"),
            "carol" => (1002, "carol"),
            "erin" => (1003, "erin"),
            "root" => (0, "root"),
            "nss-down" => return Err(LookupError("SSSD is not answering".into())),
            _ => return Ok(None),
        };
        Ok(Some(Account {
            uid,
            name: canonical.into(),
        }))
    }
    fn in_group(&self, uid: u32, group: &str) -> bool {
        group == "twofold-admin" && uid == 1002
    }
    fn groups_of(&self, user: &str) -> Result<Vec<String>, LookupError> {
        Ok(match user {
            "alice" => vec!["alice".into(), "staff".into()],
            "carol" => vec!["carol".into(), "twofold-admin".into()],
            // erin's groups are in LDAP, which is down.
            "erin" => return Err(LookupError("LDAP server unreachable".into())),
            other => vec![other.into()],
        })
    }
    fn group_exists(&self, group: &str) -> bool {
        ["staff", "twofold-admin"].contains(&group)
    }
    /// bob has no readable shadow entry (SSSD user, or a daemon without the right).
    fn password_stamp(&self, user: &str) -> Option<String> {
        self.stamp_reads.fetch_add(1, Ordering::SeqCst);
        if user == "bob" {
            return None;
        }
        Some(format!(
            "{user}-{}",
            self.password_generation.load(Ordering::SeqCst)
        ))
    }
}

/// Login session 7 for pid 700, session 8 for pid 800.
struct Sessions;
impl SessionLookup for Sessions {
    fn session_of(&self, pid: u32) -> Option<u32> {
        match pid {
            700 => Some(7),
            800 => Some(8),
            _ => None,
        }
    }
}

struct Fixture {
    engine: Engine,
    clock: Arc<ManualClock>,
    audit: Arc<MemoryAudit>,
    notices: Arc<MemoryNotifier>,
    courier: Arc<MemoryCourier>,
    texter: Arc<MemoryTexter>,
    users: Arc<Users>,
}

const T0: i64 = 1_800_000_000; // a step boundary: 1_800_000_000 / 30 = 60_000_000

fn fixture_with(config_text: &str) -> Fixture {
    let config = Config::parse(config_text, "test").unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let audit = Arc::new(MemoryAudit::default());
    let notices = Arc::new(MemoryNotifier::default());
    let courier = Arc::new(MemoryCourier::default());
    let texter = Arc::new(MemoryTexter::default());
    let users = Arc::new(Users {
        password_generation: AtomicU32::new(0),
        stamp_reads: AtomicU32::new(0),
    });
    let engine = Engine::new(Parts {
        config,
        store: Box::new(StorePool::from(SqliteStore::open_in_memory().unwrap())),
        clock: clock.clone(),
        random: Arc::new(OsRandom),
        users: users.clone(),
        audit: audit.clone(),
        notifier: notices.clone(),
        courier: courier.clone(),
        texter: texter.clone(),
        hostname: "host".into(),
        sessions: Arc::new(Sessions),
    });
    Fixture {
        engine,
        clock,
        audit,
        notices,
        courier,
        texter,
        users,
    }
}

fn fixture() -> Fixture {
    fixture_with("version = 1\n[daemon]\nadmin_group = \"twofold-admin\"\n")
}

fn root() -> Caller {
    Caller {
        uid: 0,
        pid: Some(1),
        bus_name: ":1.1".into(),
    }
}

fn as_uid(uid: u32, bus: &str) -> Caller {
    Caller {
        uid,
        pid: Some(2),
        bus_name: bus.into(),
    }
}

fn ctx(user: &str) -> LoginContext {
    LoginContext {
        user: user.into(),
        service: "sshd".into(),
        rhost: "192.0.2.7".into(),
        tty: "ssh".into(),
        ..Default::default()
    }
}

impl Fixture {
    /// Enrols and confirms `user`; returns the secret.
    fn enrol(&self, user: &str) -> String {
        let offer = self.engine.enrol(&root(), user, false).unwrap();
        let code = self.code(&offer.secret, 0);
        self.engine.confirm_enrolment(&root(), user, &code).unwrap();
        offer.secret
    }

    fn code(&self, secret: &str, steps_from_now: i64) -> String {
        let t = self.clock.now() + steps_from_now * 30;
        otp::code_at(
            &OtpParams::from_config(&twofold_config::TotpConfig::default()),
            secret,
            t as u64,
        )
        .unwrap()
    }

    fn login(&self, user: &str, answers: &[&str]) -> Vec<Step> {
        let (id, first) = self.engine.begin(&root(), ctx(user)).unwrap();
        let mut steps = vec![first];
        for a in answers {
            if steps.last().unwrap().action != Action::PromptSecret {
                break;
            }
            steps.push(self.engine.answer(&root(), &id, a).unwrap());
        }
        steps
    }

    fn outcomes(&self) -> Vec<&'static str> {
        self.audit
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.outcome)
            .collect()
    }
}

fn last_action(steps: &[Step]) -> Action {
    steps.last().expect("a login has a first step").action
}

#[test]
fn right_code_passes_and_its_replay_fails() {
    let f = fixture();
    let secret = f.enrol("alice");
    f.clock.advance(30);
    let code = f.code(&secret, 0);
    let steps = f.login("alice", &[&code]);
    assert_eq!(steps[0].prompt, CODE_PROMPT);
    assert_eq!(last_action(&steps), Action::Success);
    let steps = f.login("alice", &[&code, &code, &code]);
    assert_eq!(last_action(&steps), Action::MaxTries);
    let audit = f.audit.0.lock().unwrap();
    assert!(audit.iter().any(|e| e.reason == "code already used"));
}

#[test]
fn wrong_code_is_retried_then_refused_with_max_tries() {
    let f = fixture();
    let secret = f.enrol("alice");
    f.clock.advance(60);
    let steps = f.login("alice", &["000000", "111111", "222222"]);
    assert_eq!(steps.len(), 4);
    assert_eq!(steps[1].messages[0].text, "Wrong code, try again.");
    assert_eq!(last_action(&steps), Action::MaxTries);
    // A right code on the second try passes (from another address: this one has used
    // its three tries and waits).
    let good = f.code(&secret, 0);
    let elsewhere = LoginContext {
        rhost: "192.0.2.8".into(),
        ..ctx("alice")
    };
    assert_eq!(
        last_action(&f.login_as(&root(), elsewhere, &["999999", &good])),
        Action::Success
    );
}

#[test]
fn codes_from_neighbouring_steps_pass_and_two_steps_away_fail() {
    let f = fixture();
    let secret = f.enrol("alice");
    f.clock.advance(300);
    assert_eq!(
        last_action(&f.login("alice", &[&f.code(&secret, -2)])),
        Action::PromptSecret
    );
    assert_eq!(
        last_action(&f.login("alice", &[&f.code(&secret, -1)])),
        Action::Success
    );
    f.clock.advance(30);
    assert_eq!(
        last_action(&f.login("alice", &[&f.code(&secret, 1)])),
        Action::Success
    );
    assert_eq!(
        last_action(&f.login("alice", &[&f.code(&secret, 2)])),
        Action::PromptSecret
    );
}

#[test]
fn lockout_counts_across_services_and_holds_against_the_right_code() {
    let f = fixture_with("version = 1\n[lockout]\nmax_failures = 5\n");
    let secret = f.enrol("alice");
    f.clock.advance(30);
    f.login("alice", &["000001", "000002", "000003"]);
    let (id, _) = f
        .engine
        .begin(
            &root(),
            LoginContext {
                service: "sudo".into(),
                rhost: String::new(),
                ..ctx("alice")
            },
        )
        .unwrap();
    f.engine.answer(&root(), &id, "000004").unwrap();
    let locked = f.engine.answer(&root(), &id, "000005").unwrap();
    assert_eq!(locked.action, Action::Denied);
    assert!(
        locked.messages[0].text.contains("locked for 5 more minute"),
        "{:?}",
        locked.messages
    );
    // The right code does not open a locked account; begin refuses at once.
    let (id, first) = f.engine.begin(&root(), ctx("alice")).unwrap();
    assert_eq!((id.as_str(), first.action), ("", Action::Denied));
    f.engine.unlock(&root(), "alice").unwrap();
    f.clock.advance(30);
    assert_eq!(
        last_action(&f.login("alice", &[&f.code(&secret, 0)])),
        Action::Success
    );
    assert!(f.outcomes().contains(&"locked"));
}

#[test]
fn wrong_codes_from_one_address_cannot_lock_out_the_user_elsewhere() {
    // Issue 7 item 11: on a stack that goes on after a failed password, anyone could
    // send wrong codes until the account locked (and its trust was wiped).
    let f = fixture_with("version = 1\n[lockout]\nmax_failures = 5\nsource_failures = 3\n");
    let secret = f.enrol("alice");
    f.clock.advance(30);
    let from = |rhost: &str| LoginContext {
        rhost: rhost.into(),
        ..ctx("alice")
    };
    let attacker = f.login_as(
        &root(),
        from("203.0.113.9"),
        &["000000", "000001", "000002"],
    );
    assert_eq!(last_action(&attacker), Action::MaxTries);
    let throttled = f.login_as(
        &root(),
        from("203.0.113.9"),
        &["000003", "000004", "000005"],
    );
    assert_eq!(last_action(&throttled), Action::Denied, "{throttled:?}");
    assert!(
        throttled.last().unwrap().messages[0]
            .text
            .contains("from here"),
        "{throttled:?}"
    );
    assert_eq!(
        f.engine.status(&root(), "alice").unwrap().failures,
        3,
        "throttled tries were counted on the account"
    );
    let steps = f.login_as(&root(), from("198.51.100.5"), &[&f.code(&secret, 0)]);
    assert_eq!(last_action(&steps), Action::Success, "{steps:?}");
    // The address waits 5 minutes, then gets one more try before waiting longer.
    f.clock.advance(5 * 60);
    f.login_as(&root(), from("203.0.113.9"), &["000006"]);
    let again = f.login_as(&root(), from("203.0.113.9"), &["000007"]);
    assert_eq!(last_action(&again), Action::Denied);
    assert!(f.outcomes().contains(&"throttled"));
}

#[test]
fn unenrolled_users_are_asked_like_everyone_and_refused_alike() {
    let f = fixture();
    f.enrol("alice");
    let unenrolled = f.login("bob", &["123456", "123456", "123456"]);
    let unknown = f.login("nobody", &["123456", "123456", "123456"]);
    let wrong = f.login("alice", &["123456", "123456", "123456"]);
    assert_eq!(unenrolled, wrong);
    assert_eq!(unknown, wrong);
    assert_eq!(last_action(&wrong), Action::MaxTries);
}

#[test]
fn another_name_of_an_enrolled_account_is_that_account() {
    // Issue 7 item 1: under `unenrolled = "ignore"` a variant spelling got PAM_IGNORE.
    let f = fixture_with(
        "version = 1\n[login]\nunenrolled = \"ignore\"\n[lockout]\nmax_failures = 3\n",
    );
    let secret = f.enrol("alice");
    for alias in ["Alice", "alice@example.org"] {
        let (id, step) = f.engine.begin(&root(), ctx(alias)).unwrap();
        assert_eq!(
            step.action,
            Action::PromptSecret,
            "{alias} skipped alice's factor"
        );
        f.engine.cancel(&root(), &id);
    }
    f.clock.advance(30);
    let code = f.code(&secret, 0);
    assert_eq!(last_action(&f.login("Alice", &[&code])), Action::Success);
    // One lockout: failures under either name count on the one account.
    f.login("Alice", &["000000", "000001"]);
    f.login("alice@example.org", &["000002"]);
    assert_eq!(f.login("alice", &[])[0].action, Action::Denied);
    assert_eq!(listed(&f, &root()).unwrap().len(), 1);
}

#[test]
fn names_of_one_account_share_one_factor_and_one_trust_list() {
    let f = fixture();
    let secret = f.enrol("alice");
    assert!(matches!(
        f.engine.enrol(&root(), "Alice", false),
        Err(ApiError::AlreadyEnrolled(_))
    ));
    f.verify(&root(), ssh_key("Alice", KEY_A, "192.0.2.7"), &secret, "y");
    assert!(f.passes_without_code(&root(), ssh_key("alice", KEY_A, "192.0.2.7")));
    assert_eq!(
        trust_listed(&f, &root(), "alice@example.org")
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn records_stored_under_another_name_move_to_the_canonical_account() {
    let f = fixture_with("version = 1\n[login]\nunenrolled = \"ignore\"\n");
    // Written by an older twofoldd under the name PAM passed.
    f.engine
        .store()
        .unwrap()
        .put_pending(
            "Alice",
            FactorKind::Totp,
            "JBSWY3DPEHPK3PXP",
            T0,
            false,
            true,
            &[],
        )
        .unwrap();
    let done = f.engine.canonicalise_stored_names().unwrap();
    assert_eq!(done.len(), 1, "{done:?}");
    assert_eq!(f.login("alice", &[])[0].action, Action::PromptSecret);
    assert_eq!(listed(&f, &root()).unwrap()[0].user, "alice");
    assert!(f.engine.canonicalise_stored_names().unwrap().is_empty());
}

#[test]
fn in_a_grace_period_another_name_of_an_enrolled_account_is_still_asked() {
    // Issue 7 item 1: a variant spelling found no factor and got the grace reminder.
    let f = grace_fixture();
    f.enrol("alice");
    let steps = f.login_as(&root(), sudo("Alice", ""), &[]);
    assert_eq!(steps[0].action, Action::PromptSecret, "{steps:?}");
    // A deferral written under a variant spelling follows the account too.
    f.engine
        .store()
        .unwrap()
        .set_deferral(&crate::model::Deferral {
            subject: "Alice".into(),
            until: T0 + 20 * DAY,
            reason: String::new(),
            created_at: T0,
            created_by: 0,
        })
        .unwrap();
    f.engine.reset(&root(), "alice").unwrap();
    f.engine.canonicalise_stored_names().unwrap();
    f.clock.advance(15 * DAY); // past the global deadline, within the deferral
    let steps = f.login_as(&root(), sudo("alice@example.org", ""), &[]);
    assert_eq!(last_action(&steps), Action::Success, "{steps:?}");
}

#[test]
fn a_name_nss_does_not_know_is_refused_like_a_wrong_code_even_under_ignore() {
    let f = fixture_with("version = 1\n[login]\nunenrolled = \"ignore\"\n");
    let steps = f.login("nobody-here", &["123456", "123456", "123456"]);
    assert_eq!(steps[0].action, Action::PromptSecret, "{steps:?}");
    assert_eq!(last_action(&steps), Action::MaxTries);
}

#[test]
fn unenrolled_users_are_out_of_scope_when_configured() {
    let f = fixture_with("version = 1\n[login]\nunenrolled = \"ignore\"\n");
    let (id, step) = f.engine.begin(&root(), ctx("bob")).unwrap();
    assert_eq!((id.as_str(), step.action), ("", Action::OutOfScope));
    assert_eq!(f.outcomes(), ["ignored"]);
}

#[test]
fn a_user_may_authenticate_only_themself() {
    let f = fixture();
    f.enrol("alice");
    assert!(f.engine.begin(&as_uid(1000, ":1.5"), ctx("alice")).is_ok());
    let e = f
        .engine
        .begin(&as_uid(1000, ":1.5"), ctx("bob"))
        .unwrap_err();
    assert!(matches!(e, ApiError::PermissionDenied(_)));
    assert_eq!(f.outcomes().last(), Some(&"denied"));
}

#[test]
fn a_conversation_belongs_to_the_connection_that_began_it() {
    let f = fixture();
    let secret = f.enrol("alice");
    f.clock.advance(30);
    let (id, _) = f.engine.begin(&as_uid(1000, ":1.5"), ctx("alice")).unwrap();
    let code = f.code(&secret, 0);
    assert_eq!(
        f.engine.answer(&as_uid(1000, ":1.6"), &id, &code),
        Err(ApiError::NoConversation)
    );
    assert_eq!(
        f.engine
            .answer(&as_uid(1000, ":1.5"), &id, &code)
            .unwrap()
            .action,
        Action::Success
    );
    // Finished conversations are gone.
    assert_eq!(
        f.engine.answer(&as_uid(1000, ":1.5"), &id, &code),
        Err(ApiError::NoConversation)
    );
}

#[test]
fn conversations_expire_and_are_capped_per_client() {
    let f = fixture();
    f.enrol("alice");
    let (id, _) = f.engine.begin(&root(), ctx("alice")).unwrap();
    f.clock.advance(301);
    assert_eq!(
        f.engine.answer(&root(), &id, "123456"),
        Err(ApiError::NoConversation)
    );
    for _ in 0..MAX_CONVERSATIONS_PER_CLIENT {
        f.engine.begin(&root(), ctx("alice")).unwrap();
    }
    assert!(matches!(
        f.engine.begin(&root(), ctx("alice")),
        Err(ApiError::PermissionDenied(_))
    ));
}

#[test]
fn bad_context_is_refused_with_a_clear_error() {
    let f = fixture();
    let cases = [
        (
            LoginContext {
                user: "".into(),
                ..ctx("x")
            },
            "invalid user name",
        ),
        (
            LoginContext {
                user: "a\nb".into(),
                ..ctx("x")
            },
            "invalid user name",
        ),
        (
            LoginContext {
                service: "".into(),
                ..ctx("alice")
            },
            "service is empty",
        ),
        (
            LoginContext {
                rhost: "x".repeat(2000),
                ..ctx("alice")
            },
            "rhost is longer",
        ),
        (
            LoginContext {
                tty: "pts/1\u{1b}[2J".into(),
                ..ctx("alice")
            },
            "tty contains control",
        ),
    ];
    for (c, expected) in cases {
        let e = f.engine.begin(&root(), c).unwrap_err().to_string();
        assert!(e.contains(expected), "{e} / {expected}");
    }
}

#[test]
fn overlong_and_junk_answers_count_as_wrong_codes() {
    let f = fixture();
    f.enrol("alice");
    let steps = f.login("alice", &[&"9".repeat(100_000), "12 34 5x", ""]);
    assert_eq!(last_action(&steps), Action::MaxTries);
    assert_eq!(f.engine.status(&root(), "alice").unwrap().failures, 3);
}

#[test]
fn enrolment_is_pending_until_a_code_is_verified_and_first_login_may_verify_it() {
    let f = fixture();
    let offer = f.engine.enrol(&root(), "alice", false).unwrap();
    assert!(
        offer.otpauth_uri.contains("alice%40host"),
        "{}",
        offer.otpauth_uri
    );
    assert_eq!(f.engine.status(&root(), "alice").unwrap().state, "pending");
    // A pending factor still demands a code at login; the first right code activates it.
    let steps = f.login("alice", &[&f.code(&offer.secret, 0)]);
    assert_eq!(last_action(&steps), Action::Success);
    assert_eq!(
        steps.last().unwrap().messages[0].text,
        "Your authenticator app is now confirmed."
    );
    assert_eq!(f.engine.status(&root(), "alice").unwrap().state, "active");
}

#[test]
fn confirm_refuses_an_overlong_code_without_counting_it() {
    // Issue 7 item 9.
    let f = fixture();
    f.engine.enrol(&root(), "alice", false).unwrap();
    let r = f
        .engine
        .confirm_enrolment(&root(), "alice", &"1".repeat(100_000));
    assert!(matches!(r, Err(ApiError::InvalidInput(_))), "{r:?}");
    assert_eq!(f.engine.status(&root(), "alice").unwrap().failures, 0);
}

#[test]
fn confirm_refuses_wrong_codes_and_counts_them() {
    let f = fixture();
    f.engine.enrol(&root(), "alice", false).unwrap();
    assert_eq!(
        f.engine.confirm_enrolment(&root(), "alice", "000000"),
        Err(ApiError::WrongCode("wrong code".into()))
    );
    assert_eq!(f.engine.status(&root(), "alice").unwrap().failures, 1);
    assert!(matches!(
        f.engine.confirm_enrolment(&root(), "bob", "000000"),
        Err(ApiError::NotEnrolled(_))
    ));
}

#[test]
fn enrolment_rules_for_admins_and_users() {
    let f = fixture();
    let alice = as_uid(1000, ":1.9");
    // A user may enrol themself once; replacing an active factor is for admins.
    let offer = f.engine.enrol(&alice, "alice", false).unwrap();
    f.engine
        .confirm_enrolment(&alice, "alice", &f.code(&offer.secret, 0))
        .unwrap();
    assert!(matches!(
        f.engine.enrol(&alice, "alice", false),
        Err(ApiError::AlreadyEnrolled(_))
    ));
    assert!(matches!(
        f.engine.enrol(&alice, "alice", true),
        Err(ApiError::PermissionDenied(_))
    ));
    assert!(matches!(
        f.engine.enrol(&alice, "bob", false),
        Err(ApiError::PermissionDenied(_))
    ));
    // The admin group member (carol) may.
    let carol = as_uid(1002, ":1.10");
    assert!(f.engine.enrol(&carol, "alice", true).is_ok());
    assert!(matches!(
        f.engine.enrol(&root(), "ghost", false),
        Err(ApiError::UnknownUser(_))
    ));
    assert!(matches!(
        f.engine.enrol(&root(), "../etc", false),
        Err(ApiError::InvalidInput(_))
    ));
}

#[test]
fn self_enrolment_keeps_a_lockout_and_never_replaces_an_admins_pending_secret() {
    // Issue 7 item 5.
    let f = fixture_with(
        "version = 1\n[daemon]\nadmin_group = \"twofold-admin\"\n[lockout]\nmax_failures = 3\n",
    );
    let alice = as_uid(1000, ":1.9");
    f.engine.enrol(&alice, "alice", false).unwrap();
    f.login("alice", &["000000", "000001", "000002"]);
    let offer = f.engine.enrol(&alice, "alice", false).unwrap();
    f.clock.advance(30);
    let steps = f.login("alice", &[&f.code(&offer.secret, 0)]);
    assert_eq!(
        last_action(&steps),
        Action::Denied,
        "a self-issued secret cleared the lockout: {steps:?}"
    );
    // An administrator's pending secret stays until an administrator replaces it.
    let admins = f.engine.enrol(&root(), "bob", false).unwrap();
    let bob = as_uid(1001, ":1.8");
    assert!(
        matches!(
            f.engine.enrol(&bob, "bob", false),
            Err(ApiError::PermissionDenied(_))
        ),
        "bob replaced the secret an administrator issued"
    );
    f.engine
        .confirm_enrolment(&bob, "bob", &f.code(&admins.secret, 0))
        .unwrap();
    let carol = as_uid(1002, ":1.10");
    f.engine.enrol(&root(), "carol", false).unwrap();
    assert!(f.engine.enrol(&carol, "carol", false).is_ok(), "admins may");
}

#[test]
fn admin_methods_refuse_ordinary_users() {
    let f = fixture();
    f.enrol("alice");
    let bob = as_uid(1001, ":1.3");
    assert!(matches!(
        listed(&f, &bob),
        Err(ApiError::PermissionDenied(_))
    ));
    assert!(matches!(
        f.engine.reset(&bob, "alice"),
        Err(ApiError::PermissionDenied(_))
    ));
    assert!(matches!(
        f.engine.unlock(&bob, "alice"),
        Err(ApiError::PermissionDenied(_))
    ));
    assert!(matches!(
        f.engine.status(&bob, "alice"),
        Err(ApiError::PermissionDenied(_))
    ));
    assert_eq!(f.engine.status(&bob, "bob").unwrap().state, "none");
    assert_eq!(listed(&f, &root()).unwrap().len(), 1);
}

#[test]
fn reset_removes_the_users_trust_records_too() {
    // Issue 7 item 6: reset left trust rows behind, which a re-enrolment could revive.
    let f = fixture();
    let secret = f.enrol("alice");
    f.verify(&root(), ssh_key("alice", KEY_A, "192.0.2.7"), &secret, "y");
    assert_eq!(trust_listed(&f, &root(), "alice").unwrap().len(), 2);
    assert!(f.engine.reset(&root(), "alice").unwrap());
    assert_eq!(
        trust_listed(&f, &root(), "alice").unwrap(),
        vec![],
        "reset left trust records behind"
    );
}

#[test]
fn reset_removes_the_factor() {
    let f = fixture();
    f.enrol("alice");
    assert!(f.engine.reset(&root(), "alice").unwrap());
    assert!(!f.engine.reset(&root(), "alice").unwrap());
    assert_eq!(f.engine.status(&root(), "alice").unwrap().state, "none");
    assert!(f.outcomes().contains(&"success"));
}

#[test]
fn no_code_or_secret_reaches_the_audit_trail() {
    let f = fixture();
    let secret = f.enrol("alice");
    f.clock.advance(30);
    let code = f.code(&secret, 0);
    f.login("alice", &["654321", &code]);
    for e in f.audit.0.lock().unwrap().iter() {
        let line = e.to_line();
        assert!(
            !line.contains(&secret) && !line.contains(&code) && !line.contains("654321"),
            "{line}"
        );
    }
}

#[test]
fn a_store_failure_fails_the_login() {
    let f = fixture();
    let secret = f.enrol("alice");
    f.clock.advance(30);
    let (id, _) = f.engine.begin(&root(), ctx("alice")).unwrap();
    // Make every write fail: the answer must be an error step, never success.
    f.engine
        .store()
        .unwrap()
        .sql_for_tests("PRAGMA query_only = ON")
        .unwrap();
    let step = f.engine.answer(&root(), &id, &f.code(&secret, 0)).unwrap();
    assert_eq!(step.action, Action::Error);
    assert_eq!(f.outcomes().last(), Some(&"error"));
}

// ---- trusted devices, session windows, grace periods, scope ----

const KEY_A: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIPBt/BNd5lA1dnF//n6CHzH8KvAg/yKN0naK8HbRXq9f";
const KEY_B: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIJ6Ys3dQ6f2cm0qUq4aUu0PZ1k0WQ0mX+0Dr7zKd6oVt";

fn ssh_key(user: &str, key: &str, rhost: &str) -> LoginContext {
    LoginContext {
        ssh_auth_info: format!("publickey ssh-ed25519 {key}"),
        rhost: rhost.into(),
        ..ctx(user)
    }
}

fn sudo(user: &str, tty: &str) -> LoginContext {
    LoginContext {
        user: user.into(),
        service: "sudo".into(),
        tty: tty.into(),
        ..Default::default()
    }
}

impl Fixture {
    /// Runs a login as `caller`, answering prompts in order; returns every step.
    fn login_as(&self, caller: &Caller, c: LoginContext, answers: &[&str]) -> Vec<Step> {
        let (id, first) = self.engine.begin(caller, c).unwrap();
        let mut steps = vec![first];
        for a in answers {
            if !matches!(
                steps.last().unwrap().action,
                Action::PromptSecret | Action::PromptVisible
            ) {
                break;
            }
            steps.push(self.engine.answer(caller, &id, a).unwrap());
        }
        steps
    }

    /// A login that gives the right code (and `remember` to the trust question).
    fn verify(&self, caller: &Caller, c: LoginContext, secret: &str, remember: &str) -> Vec<Step> {
        self.clock.advance(30); // a fresh step: the previous code is spent
        let code = self.code(secret, 0);
        self.login_as(caller, c, &[&code, remember])
    }

    fn passes_without_code(&self, caller: &Caller, c: LoginContext) -> bool {
        let (id, step) = self.engine.begin(caller, c).unwrap();
        if step.action == Action::PromptSecret {
            self.engine.cancel(caller, &id);
        }
        step.action == Action::Success
    }

    fn reasons(&self) -> Vec<String> {
        self.audit
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.reason.clone())
            .collect()
    }
}

fn sudo_caller(pid: u32) -> Caller {
    Caller {
        uid: 0,
        pid: Some(pid),
        bus_name: format!(":1.{pid}"),
    }
}

#[test]
fn only_a_login_that_can_leave_trust_reads_the_password_fingerprint() {
    let f = fixture();
    let secret = f.enrol("alice");
    // sudo from a process in no login session: no device identity, nothing to trust.
    let code = {
        f.clock.advance(30);
        f.code(&secret, 0)
    };
    let steps = f.login_as(&sudo_caller(999), sudo("alice", "pts/1"), &[&code]);
    assert_eq!(last_action(&steps), Action::Success);
    assert_eq!(f.users.stamp_reads.load(Ordering::SeqCst), 0);
    // An SSH key login opens a session window, which keeps the fingerprint.
    let steps = f.verify(&root(), ssh_key("alice", KEY_A, "192.0.2.7"), &secret, "n");
    assert_eq!(last_action(&steps), Action::Success);
    assert!(f.users.stamp_reads.load(Ordering::SeqCst) >= 1);
}

#[test]
fn an_ssh_key_session_window_lasts_its_hours_and_fails_one_second_after() {
    let f = fixture();
    let secret = f.enrol("alice");
    let steps = f.verify(&root(), ssh_key("alice", KEY_A, "192.0.2.7"), &secret, "n");
    assert_eq!(steps[1].prompt, "Trust this device for 90 days? [y/N] ");
    assert_eq!(last_action(&steps), Action::Success);
    let start = f.clock.now();
    // Keep it busy (idle limit 30 min) up to one second before the 12 hours end.
    while f.clock.now() + 1799 < start + 12 * 3600 - 1 {
        f.clock.advance(1799);
        assert!(
            f.passes_without_code(&root(), ssh_key("alice", KEY_A, "192.0.2.7")),
            "at +{}",
            f.clock.now() - start
        );
    }
    f.clock.set(start + 12 * 3600 - 1);
    assert!(f.passes_without_code(&root(), ssh_key("alice", KEY_A, "192.0.2.7")));
    f.clock.set(start + 12 * 3600);
    assert!(!f.passes_without_code(&root(), ssh_key("alice", KEY_A, "192.0.2.7")));
    assert!(f.reasons().iter().any(|r| r == "trusted session window"));
}

#[test]
fn a_session_window_lapses_after_idling() {
    let f = fixture();
    let secret = f.enrol("alice");
    f.verify(&root(), ssh_key("alice", KEY_A, "192.0.2.7"), &secret, "n");
    f.clock.advance(30 * 60 - 1);
    assert!(f.passes_without_code(&root(), ssh_key("alice", KEY_A, "192.0.2.7")));
    f.clock.advance(30 * 60);
    assert!(!f.passes_without_code(&root(), ssh_key("alice", KEY_A, "192.0.2.7")));
}

#[test]
fn use_of_a_window_is_written_once_a_minute_and_idling_ends_it_at_most_a_minute_early() {
    let f = fixture();
    let secret = f.enrol("alice");
    f.verify(&root(), ssh_key("alice", KEY_A, "192.0.2.7"), &secret, "n");
    let last_used = || f.engine.store().unwrap().trust_of("alice").unwrap()[0].last_used;
    let start = f.clock.now();
    f.clock.advance(59);
    assert!(f.passes_without_code(&root(), ssh_key("alice", KEY_A, "192.0.2.7")));
    assert_eq!(
        last_used(),
        start,
        "a login within a minute of the last write wrote"
    );
    f.clock.advance(1);
    assert!(f.passes_without_code(&root(), ssh_key("alice", KEY_A, "192.0.2.7")));
    assert_eq!(last_used(), start + 60);
    // Used at +60 (written) and +119 (not): the 30 min idle limit counts from +60.
    f.clock.advance(59);
    assert!(f.passes_without_code(&root(), ssh_key("alice", KEY_A, "192.0.2.7")));
    f.clock.set(start + 60 + 30 * 60 - 1);
    assert!(f.passes_without_code(&root(), ssh_key("alice", KEY_A, "192.0.2.7")));
    f.clock.set(start + 60 + 30 * 60 - 1 + 30 * 60);
    assert!(!f.passes_without_code(&root(), ssh_key("alice", KEY_A, "192.0.2.7")));
}

#[test]
fn trust_needs_the_same_user_key_and_address() {
    let f = fixture();
    let secret = f.enrol("alice");
    f.enrol("bob");
    f.verify(&root(), ssh_key("alice", KEY_A, "192.0.2.7"), &secret, "y");
    assert!(f.passes_without_code(&root(), ssh_key("alice", KEY_A, "192.0.2.7")));
    assert!(
        !f.passes_without_code(&root(), ssh_key("bob", KEY_A, "192.0.2.7")),
        "A's trust served B"
    );
    assert!(
        !f.passes_without_code(&root(), ssh_key("alice", KEY_B, "192.0.2.7")),
        "another key was trusted"
    );
    assert!(
        !f.passes_without_code(&root(), ssh_key("alice", KEY_A, "192.0.2.8")),
        "another address was trusted"
    );
    assert!(
        !f.passes_without_code(&root(), ssh_key("alice", KEY_A, "host.example")),
        "an unparsable address was trusted"
    );
    assert!(
        !f.passes_without_code(&root(), ctx("alice")),
        "keyboard-interactive alone was trusted"
    );
}

#[test]
fn a_remembered_device_is_asked_accepted_honoured_and_expires() {
    let f = fixture();
    let secret = f.enrol("alice");
    let steps = f.verify(
        &root(),
        ssh_key("alice", KEY_A, "192.0.2.7"),
        &secret,
        "yes",
    );
    assert_eq!(
        steps.last().unwrap().messages[0].text,
        "This device is now trusted."
    );
    let start = f.clock.now();
    assert!(
        f.reasons()
            .iter()
            .any(|r| r.starts_with("device remembered for 90 days: SSH key SHA256:"))
    );
    // Long after the session window and its idle limit: still trusted.
    f.clock.advance(40 * 86400);
    assert!(f.passes_without_code(&root(), ssh_key("alice", KEY_A, "192.0.2.7")));
    assert_eq!(f.reasons().last().unwrap(), "remembered device");
    f.clock.set(start + 90 * 86400 - 1);
    assert!(f.passes_without_code(&root(), ssh_key("alice", KEY_A, "192.0.2.7")));
    f.clock.set(start + 90 * 86400);
    assert!(!f.passes_without_code(&root(), ssh_key("alice", KEY_A, "192.0.2.7")));
}

#[test]
fn factor_and_trust_changes_are_told_to_the_user_without_codes_or_secrets() {
    let f = fixture_with(
        "version = 1\n[daemon]\nadmin_group = \"twofold-admin\"\n[lockout]\nmax_failures = 3\nsource_failures = 100\n",
    );
    // bob has no address: nothing about him goes anywhere.
    f.enrol("bob");
    f.engine
        .set_email(&root(), "alice", "alice@example.org")
        .unwrap();
    let secret = f.enrol("alice");
    f.verify(
        &root(),
        ssh_key("alice", KEY_A, "192.0.2.7"),
        &secret,
        "yes",
    );
    f.engine.trust_revoke(&root(), "alice", "").unwrap();
    f.clock.advance(30);
    let right = f.code(&secret, 0);
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    let steps = f.login("alice", &[wrong, wrong, wrong]);
    assert_eq!(last_action(&steps), Action::Denied, "{steps:?}");
    f.engine.unlock(&root(), "alice").unwrap();
    f.engine.reset(&root(), "alice").unwrap();
    // A name with no factor locks alike, but there is nobody to tell.
    f.login("nobody-here", &[wrong, wrong, wrong]);

    let notices = f.notices.0.lock().unwrap();
    let changes: Vec<Change> = notices.iter().map(|n| n.change).collect();
    assert_eq!(
        changes,
        [
            Change::EmailChanged,
            Change::SecretIssued,
            Change::FactorActivated,
            Change::DeviceRemembered,
            Change::TrustRevoked,
            Change::Locked,
            Change::Unlocked,
            Change::FactorRemoved,
        ]
    );
    for n in notices.iter() {
        assert_eq!(
            (n.user.as_str(), n.to.as_str(), n.host.as_str()),
            ("alice", "alice@example.org", "host")
        );
        assert!(
            !n.detail.contains(&secret) && !n.detail.contains(&right),
            "{n:?}"
        );
        assert!(!n.detail.contains(wrong), "{n:?}");
    }
    assert_eq!(notices[1].detail, "by an administrator (uid 0)");
    assert_eq!(notices[5].detail, "sshd login from 192.0.2.7");
    assert!(
        notices[3]
            .detail
            .starts_with("sshd login from 192.0.2.7: SSH key SHA256:")
    );
}

#[test]
fn only_an_administrator_sets_an_address_and_both_old_and_new_are_told() {
    let f = fixture();
    let alice = as_uid(1000, ":1.9");
    assert!(matches!(
        f.engine.set_email(&alice, "alice", "eve@example.org"),
        Err(ApiError::PermissionDenied(_))
    ));
    for bad in [
        "Alice <a@example.org>",
        "a@example",
        "a b@example.org",
        "a@example.org\nBcc: e@x.org",
    ] {
        assert!(
            matches!(
                f.engine.set_email(&root(), "alice", bad),
                Err(ApiError::InvalidInput(_))
            ),
            "{bad:?}"
        );
    }
    // A forged name or a huge address is refused, as every other input.
    let huge = "a".repeat(10_000);
    for (user, address) in [
        ("alice\nroot", "a@example.org"),
        ("", "a@example.org"),
        ("alice", huge.as_str()),
        ("alice", "a@example.org\u{0}"),
    ] {
        assert!(
            matches!(
                f.engine.set_email(&root(), user, address),
                Err(ApiError::InvalidInput(_))
            ),
            "{user:?} {}",
            address.len()
        );
    }
    f.engine
        .set_email(&root(), "alice", "old@example.org")
        .unwrap();
    f.engine
        .set_email(&root(), "alice", "new@example.org")
        .unwrap();
    f.engine.set_email(&root(), "alice", "").unwrap();
    let to: Vec<String> = f
        .notices
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|n| n.to.clone())
        .collect();
    assert_eq!(
        to,
        [
            "old@example.org",
            "old@example.org",
            "new@example.org",
            "new@example.org"
        ]
    );
    // Removed: nothing more goes out.
    f.enrol("alice");
    assert_eq!(f.notices.0.lock().unwrap().len(), 4);
}

#[test]
fn a_password_change_ends_a_remembered_device_at_once() {
    let f = fixture();
    let secret = f.enrol("alice");
    f.verify(&root(), ssh_key("alice", KEY_A, "192.0.2.7"), &secret, "y");
    f.clock.advance(86400); // past the session window
    assert!(f.passes_without_code(&root(), ssh_key("alice", KEY_A, "192.0.2.7")));
    f.users.password_generation.fetch_add(1, Ordering::SeqCst);
    assert!(!f.passes_without_code(&root(), ssh_key("alice", KEY_A, "192.0.2.7")));
    assert!(f.reasons().iter().any(|r| r.contains("password changed")));
    assert!(
        trust_listed(&f, &root(), "alice")
            .unwrap()
            .iter()
            .all(|t| t.kind != "device")
    );
}

#[test]
fn a_password_change_ends_a_session_window_at_once() {
    // Issue 15 item 5c (checklist 11): only remembered devices compared the fingerprint.
    let f = fixture();
    let secret = f.enrol("alice");
    f.verify(&root(), ssh_key("alice", KEY_A, "192.0.2.7"), &secret, "n");
    f.clock.advance(60);
    assert!(f.passes_without_code(&root(), ssh_key("alice", KEY_A, "192.0.2.7")));
    f.users.password_generation.fetch_add(1, Ordering::SeqCst);
    f.clock.advance(60);
    assert!(
        !f.passes_without_code(&root(), ssh_key("alice", KEY_A, "192.0.2.7")),
        "the session window outlived a password change"
    );
    assert!(
        f.reasons()
            .iter()
            .any(|r| r == "session window ended: password changed"),
        "{:?}",
        f.reasons()
    );
    assert!(
        trust_listed(&f, &root(), "alice").unwrap().is_empty(),
        "the window was not revoked"
    );
}

#[test]
fn without_a_password_fingerprint_a_session_window_still_serves() {
    // bob has no fingerprint (a daemon that cannot read shadow): a short window is
    // still worth having, and nothing could tell a password change anyway.
    let f = fixture();
    let secret = f.enrol("bob");
    f.verify(&root(), ssh_key("bob", KEY_A, "192.0.2.7"), &secret, "n");
    f.clock.advance(60);
    assert!(f.passes_without_code(&root(), ssh_key("bob", KEY_A, "192.0.2.7")));
}

#[test]
fn without_a_password_fingerprint_no_device_is_remembered_or_honoured() {
    // Issue 7 item 4: None == None counted as "password unchanged".
    let f = fixture();
    let secret = f.enrol("bob");
    let steps = f.verify(&root(), ssh_key("bob", KEY_A, "192.0.2.7"), &secret, "y");
    assert_eq!(steps.len(), 2, "offered to remember: {steps:?}");
    assert_eq!(last_action(&steps), Action::Success);
    // A record written without a fingerprint (by an older twofoldd) is not honoured.
    let device = identity::identify(
        &ssh_key("bob", KEY_A, "192.0.2.7"),
        &root(),
        &Sessions,
        &f.engine.config.service_policy("sshd"),
    )
    .unwrap();
    let policy = f.engine.config.service_policy("sshd");
    let old = trust::new_record(
        &OsRandom,
        TrustKind::Device,
        &ssh_key("bob", KEY_A, "192.0.2.7"),
        &device,
        &policy,
        f.clock.now(),
        None,
    )
    .unwrap();
    f.engine.store().unwrap().put_trust(&old).unwrap();
    f.clock.advance(DAY);
    assert!(!f.passes_without_code(&root(), ssh_key("bob", KEY_A, "192.0.2.7")));
}

#[test]
fn revoke_reset_re_enrolment_and_lockout_end_trust_at_once() {
    let f = fixture_with("version = 1\n[lockout]\nmax_failures = 3\n");
    let trusted = || f.passes_without_code(&root(), ssh_key("alice", KEY_A, "192.0.2.7"));
    let mut secret = f.enrol("alice");
    f.verify(&root(), ssh_key("alice", KEY_A, "192.0.2.7"), &secret, "y");
    assert!(trusted());
    // Revoke one device by the id `trust list` shows: the session window remains.
    let list = trust_listed(&f, &as_uid(1000, ":1.9"), "alice").unwrap();
    assert_eq!(list.len(), 2, "{list:?}");
    let device = list.iter().find(|t| t.kind == "device").unwrap();
    assert_eq!(
        f.engine
            .trust_revoke(&as_uid(1000, ":1.9"), "alice", &device.id)
            .unwrap(),
        1
    );
    assert!(
        f.engine
            .trust_revoke(&as_uid(1001, ":1.8"), "alice", "")
            .is_err(),
        "bob revoked alice's trust"
    );
    assert_eq!(f.engine.trust_revoke(&root(), "alice", "").unwrap(), 1);
    assert!(!trusted());

    f.verify(&root(), ssh_key("alice", KEY_A, "192.0.2.7"), &secret, "y");
    assert!(f.engine.reset(&root(), "alice").unwrap());
    secret = f.enrol("alice");
    assert!(!trusted(), "reset left trust behind");

    f.verify(&root(), ssh_key("alice", KEY_A, "192.0.2.7"), &secret, "y");
    secret = f.engine.enrol(&root(), "alice", true).unwrap().secret;
    assert!(!trusted(), "re-enrolment left trust behind");

    f.verify(&root(), ssh_key("alice", KEY_A, "192.0.2.7"), &secret, "y");
    f.login("alice", &["000000", "000001", "000002"]);
    f.engine.unlock(&root(), "alice").unwrap();
    assert!(!trusted(), "a lockout left trust behind");
}

#[test]
fn sudo_trusts_the_same_login_session_briefly_and_never_remembers() {
    let f = fixture();
    let secret = f.enrol("alice");
    let steps = f.verify(&sudo_caller(700), sudo("alice", "/dev/pts/1"), &secret, "");
    assert_eq!(steps.len(), 2, "sudo asked to remember: {steps:?}");
    assert_eq!(last_action(&steps), Action::Success);
    assert!(f.passes_without_code(&sudo_caller(700), sudo("alice", "/dev/pts/1")));
    assert!(
        !f.passes_without_code(&sudo_caller(800), sudo("alice", "/dev/pts/1")),
        "another session was trusted"
    );
    assert!(
        !f.passes_without_code(&sudo_caller(700), sudo("alice", "/dev/pts/2")),
        "another tty was trusted"
    );
    assert!(
        !f.passes_without_code(&sudo_caller(900), sudo("alice", "/dev/pts/1")),
        "no session id was trusted"
    );
    // sudo's window: 1 hour, 15 minutes idle.
    f.clock.advance(15 * 60);
    assert!(!f.passes_without_code(&sudo_caller(700), sudo("alice", "/dev/pts/1")));
}

#[test]
fn a_window_serves_only_its_own_service_class() {
    // Issue 7 item 3: a screen locker's window (same session and tty) served sudo.
    let f = fixture();
    let secret = f.enrol("alice");
    let locker = |service: &str| LoginContext {
        service: service.into(),
        ..sudo("alice", "/dev/pts/1")
    };
    let steps = f.verify(&sudo_caller(700), locker("xscreensaver"), &secret, "");
    assert_eq!(last_action(&steps), Action::Success);
    assert!(f.passes_without_code(&sudo_caller(700), locker("xscreensaver")));
    assert!(f.passes_without_code(&sudo_caller(700), locker("swaylock")));
    for other in ["sudo", "pkexec", "polkit-1", "login", "my-app"] {
        assert!(
            !f.passes_without_code(&sudo_caller(700), locker(other)),
            "the screen locker's window served {other}"
        );
    }
    // And the other way round: sudo's window opens no screen.
    f.verify(&sudo_caller(700), locker("sudo"), &secret, "");
    assert!(f.passes_without_code(&sudo_caller(700), locker("doas")));
    assert!(!f.passes_without_code(&sudo_caller(700), locker("login")));
}

#[test]
fn a_users_own_lookups_do_not_keep_its_window_alive() {
    // Issue 7 item 10: any process of the user could refresh the idle limit for ever.
    let f = fixture();
    let secret = f.enrol("alice");
    let alice = Caller {
        uid: 1000,
        pid: Some(700),
        bus_name: ":1.70".into(),
    };
    let locker = LoginContext {
        service: "xscreensaver".into(),
        ..sudo("alice", "")
    };
    f.verify(&alice, locker.clone(), &secret, "");
    f.clock.advance(20 * 60);
    assert!(f.passes_without_code(&alice, locker.clone()));
    f.clock.advance(20 * 60);
    assert!(
        !f.passes_without_code(&alice, locker.clone()),
        "40 minutes after the code, kept alive by the user's own calls"
    );
}

#[test]
fn the_strict_profile_never_offers_to_remember() {
    let f = fixture_with("version = 1\nprofile = \"strict\"\n");
    let secret = f.enrol("alice");
    let steps = f.verify(&root(), ssh_key("alice", KEY_A, "192.0.2.7"), &secret, "y");
    assert_eq!(steps.len(), 2, "{steps:?}");
    assert_eq!(last_action(&steps), Action::Success);
    assert!(f.passes_without_code(&root(), ssh_key("alice", KEY_A, "192.0.2.7")));
    f.clock.advance(3600);
    assert!(!f.passes_without_code(&root(), ssh_key("alice", KEY_A, "192.0.2.7")));
}

const DAY: i64 = 86400;

fn grace_fixture() -> Fixture {
    // The deadline is ten days after T0 (1_800_000_000 = 2027-01-15T08:00:00Z).
    fixture_with(
        // Without the offer to enrol at login (engine/tests/self_enrol.rs has it).
        "version = 1\n[enrolment]\ndeadline = \"2027-01-25T08:00:00Z\"\nmax_deferral_days = 30\nself_service = false\n",
    )
}

#[test]
fn before_the_deadline_unenrolled_users_pass_with_a_reminder_and_after_it_are_refused() {
    let f = grace_fixture();
    let steps = f.login_as(&sudo_caller(700), sudo("bob", "/dev/pts/1"), &[]);
    assert_eq!(last_action(&steps), Action::Success);
    let text = &steps[0].messages[0].text;
    assert!(
        text.contains("mandatory on 2027-01-25") && text.contains("10 day(s) left"),
        "{text}"
    );
    // sshd drops messages without a prompt: there the reminder waits for Enter.
    let steps = f.login_as(&root(), ctx("bob"), &[""]);
    assert_eq!(steps[0].action, Action::PromptVisible);
    assert!(
        steps[0].prompt.contains("10 day(s) left")
            && steps[0].prompt.ends_with("Press Enter to continue: ")
    );
    assert_eq!(last_action(&steps), Action::Success);
    f.clock.advance(10 * DAY - 1);
    assert!(
        f.login_as(&root(), sudo("bob", ""), &[])[0].messages[0]
            .text
            .contains("1 day(s) left")
    );
    f.clock.advance(1);
    let steps = f.login_as(&root(), sudo("bob", ""), &[]);
    assert_eq!(last_action(&steps), Action::Denied);
    assert!(
        steps[0].messages[0]
            .text
            .contains("mandatory since 2027-01-25")
            && steps[0].messages[0].text.contains("twofoldctl enrol bob")
    );
    assert!(f.outcomes().contains(&"grace"));
}

#[test]
fn deferrals_extend_grace_for_a_user_or_a_group_within_limits() {
    let f = grace_fixture();
    f.clock.advance(11 * DAY); // the global deadline has passed
    assert_eq!(
        last_action(&f.login_as(&root(), sudo("bob", ""), &[])),
        Action::Denied
    );
    let now = f.clock.now();
    f.engine
        .grace_set(&root(), "bob", now + 5 * DAY, "new phone on order")
        .unwrap();
    assert_eq!(
        last_action(&f.login_as(&root(), sudo("bob", ""), &[])),
        Action::Success
    );
    f.engine
        .grace_set(&root(), "@staff", now + 3 * DAY, "")
        .unwrap();
    assert_eq!(
        last_action(&f.login_as(&root(), sudo("alice", ""), &[])),
        Action::Success
    );
    assert_eq!(
        f.engine.status(&root(), "alice").unwrap().grace_until,
        now + 3 * DAY
    );
    // Limits: not in the past, not beyond max_deferral_days, only known subjects, admins only.
    let invalid = |r: Result<(), ApiError>| matches!(r, Err(ApiError::InvalidInput(_)));
    assert!(invalid(f.engine.grace_set(&root(), "bob", now - 1, "")));
    assert!(invalid(f.engine.grace_set(
        &root(),
        "bob",
        now + 31 * DAY,
        ""
    )));
    assert!(matches!(
        f.engine.grace_set(&root(), "@nogroup", now + DAY, ""),
        Err(ApiError::UnknownUser(_))
    ));
    assert!(matches!(
        f.engine.grace_set(&root(), "ghost", now + DAY, ""),
        Err(ApiError::UnknownUser(_))
    ));
    assert!(matches!(
        f.engine
            .grace_set(&as_uid(1000, ":1.4"), "alice", now + DAY, ""),
        Err(ApiError::PermissionDenied(_))
    ));
    assert_eq!(
        f.engine
            .grace_list(&root(), "", 100)
            .map(|p| p.0)
            .unwrap()
            .len(),
        2
    );
    // A deferral ends at exactly its instant.
    f.clock.set(now + 5 * DAY - 1);
    assert_eq!(
        last_action(&f.login_as(&root(), sudo("bob", ""), &[])),
        Action::Success
    );
    f.clock.set(now + 5 * DAY);
    assert_eq!(
        last_action(&f.login_as(&root(), sudo("bob", ""), &[])),
        Action::Denied
    );
    assert!(f.engine.grace_clear(&root(), "@staff").unwrap());
}

#[test]
fn grace_dates_from_the_bus_are_bounded_and_never_panic() {
    // Issue 7 item 8: a date in year 10000 or later panicked while being formatted.
    let f = grace_fixture();
    for until in [253_402_300_800, i64::MAX, i64::MIN, -1] {
        let r = f.engine.grace_set(&root(), "bob", until, "");
        assert!(
            matches!(r, Err(ApiError::InvalidInput(_))),
            "{until}: {r:?}"
        );
    }
}

#[test]
fn a_failed_group_lookup_fails_the_login_instead_of_deciding_scope() {
    // Issue 7 item 2: the error became an empty group list: out of scope, 2FA off.
    let f = fixture_with("version = 1\n[scope]\ngroups = [\"staff\"]\n");
    f.enrol("erin");
    let (id, step) = f.engine.begin(&root(), ctx("erin")).unwrap();
    assert_eq!((id.as_str(), step.action), ("", Action::Error), "{step:?}");
    assert!(step.messages[0].text.contains("cannot"), "{step:?}");
    let audit = f.audit.0.lock().unwrap();
    let last = audit.last().unwrap();
    assert_eq!(last.outcome, "error");
    assert!(last.reason.contains("lookup failed"), "{}", last.reason);
}

#[test]
fn users_outside_the_scope_are_ignored() {
    let f =
        fixture_with("version = 1\n[scope]\ngroups = [\"staff\"]\nexempt_users = [\"carol\"]\n");
    f.enrol("alice");
    f.enrol("carol");
    assert_eq!(f.login("alice", &[])[0].action, Action::PromptSecret);
    assert_eq!(f.login("bob", &[])[0].action, Action::OutOfScope);
    assert_eq!(
        f.login("carol", &[])[0].action,
        Action::OutOfScope,
        "an exempt user was asked"
    );
    assert!(!f.engine.status(&root(), "bob").unwrap().in_scope);
}

/// Brings a login of alice with KEY_A to the open "Trust this device?" question.
fn at_the_trust_question(f: &Fixture, secret: &str) -> String {
    f.clock.advance(30);
    let (id, first) = f
        .engine
        .begin(&root(), ssh_key("alice", KEY_A, "192.0.2.7"))
        .unwrap();
    assert_eq!(first.action, Action::PromptSecret);
    let code = f.code(secret, 0);
    let step = f.engine.answer(&root(), &id, &code).unwrap();
    assert_eq!(step.prompt, "Trust this device for 90 days? [y/N] ");
    id
}

/// The first page (100 entries) of `Manage.List`.
fn listed(f: &Fixture, caller: &Caller) -> Result<Vec<UserStatus>, ApiError> {
    f.engine.list(caller, "", 100).map(|(page, _)| page)
}

/// The first page (100 entries) of `user`'s trust list.
fn trust_listed(f: &Fixture, caller: &Caller, user: &str) -> Result<Vec<TrustInfo>, ApiError> {
    f.engine
        .trust_list(caller, user, "", 100)
        .map(|(page, _)| page)
}

fn devices_of(f: &Fixture, user: &str) -> usize {
    trust_listed(f, &root(), user)
        .unwrap()
        .iter()
        .filter(|t| t.kind == "device")
        .count()
}

#[test]
fn an_open_trust_question_obeys_every_revocation_made_while_it_waits() {
    type Revocation = (&'static str, fn(&Fixture));
    let revocations: [Revocation; 4] = [
        ("the factor replaced", |f| {
            f.engine.enrol(&root(), "alice", true).unwrap();
        }),
        ("trust revoke --all", |f| {
            f.engine.trust_revoke(&root(), "alice", "").unwrap();
        }),
        ("a lockout by parallel logins", |f| {
            let wrong = ["000000", "000001", "000002"];
            f.login_as(&root(), ssh_key("alice", KEY_B, "198.51.100.9"), &wrong);
        }),
        ("a password change", |f| {
            f.users.password_generation.fetch_add(1, Ordering::SeqCst);
        }),
    ];
    for (what, revoke) in revocations {
        for answer in ["y", "n"] {
            let f = fixture_with(
                "version = 1\n[daemon]\nadmin_group = \"twofold-admin\"\n[lockout]\nmax_failures = 3\n",
            );
            let secret = f.enrol("alice");
            let id = at_the_trust_question(&f, &secret);
            revoke(&f);
            let step = f.engine.answer(&root(), &id, answer).unwrap();
            assert_eq!(
                step.action,
                Action::Denied,
                "{what}, answered {answer}: {step:?}"
            );
            assert_eq!(
                devices_of(&f, "alice"),
                0,
                "{what}: a device was remembered"
            );
        }
    }
}

#[test]
fn a_grace_notice_obeys_a_deferral_cleared_while_it_is_shown() {
    let f = fixture();
    f.engine
        .grace_set(&root(), "bob", T0 + 86400, "new phone")
        .unwrap();
    let (id, step) = f.engine.begin(&root(), ctx("bob")).unwrap();
    assert_eq!(step.action, Action::PromptVisible, "{step:?}");
    f.engine.grace_clear(&root(), "bob").unwrap();
    let step = f.engine.answer(&root(), &id, "").unwrap();
    assert_eq!(step.action, Action::Denied, "{step:?}");
    // Unchanged, the notice still passes.
    f.engine
        .grace_set(&root(), "bob", T0 + 86400, "new phone")
        .unwrap();
    let (id, _) = f.engine.begin(&root(), ctx("bob")).unwrap();
    let step = f.engine.answer(&root(), &id, "").unwrap();
    assert_eq!(step.action, Action::Success, "{step:?}");
}

#[test]
fn one_user_cannot_fill_the_conversation_table_and_root_is_still_served() {
    for (config, bound) in [
        ("version = 1\n", 64),
        (
            "version = 1\n[daemon]\nmax_conversations_per_user = 10\n",
            10,
        ),
    ] {
        one_uid_opens_at_most(config, bound);
    }
}

fn one_uid_opens_at_most(config: &str, bound: usize) {
    let f = fixture_with(config);
    f.enrol("alice");
    let mut opened = 0;
    // Many connections (bus names) of uid 1000, 8 conversations each at most.
    for conn in 0..20 {
        for _ in 0..8 {
            let caller = as_uid(1000, &format!(":1.{}", 100 + conn));
            if f.engine.begin(&caller, ctx("alice")).is_ok() {
                opened += 1;
            }
        }
    }
    assert_eq!(opened, bound, "one uid's conversations with {config:?}");
    let (_, step) = f.engine.begin(&root(), ctx("alice")).unwrap();
    assert_eq!(step.action, Action::PromptSecret, "root refused: {step:?}");
}

#[test]
fn listings_come_in_pages_that_join_up_and_refuse_a_bad_cursor() {
    let f = fixture();
    f.engine
        .store()
        .unwrap()
        .sql_for_tests(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 24)
             INSERT INTO users (name, secret, state, enrolled_at)
             SELECT printf('user%02d', i), 'AAAA', 'active', 0 FROM n;
             WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 49)
             INSERT INTO trust (id, user, kind, identity_hash, description, service,
                                created_at, last_used, expires_at, idle_seconds, password_stamp)
             SELECT printf('%032x', i), printf('user%02d', i % 25), 'device',
                    printf('%064x', i), 'test', 'sshd', 0, 0, 9999999999, 0, NULL FROM n;",
        )
        .unwrap();
    let (mut users, mut after) = (Vec::new(), String::new());
    let mut pages = 0;
    loop {
        let (page, next) = f.engine.list(&root(), &after, 10).unwrap();
        pages += 1;
        assert!(page.len() <= 10);
        users.extend(page);
        if next.is_empty() {
            break;
        }
        after = next;
    }
    assert_eq!((pages, users.len()), (3, 25));
    assert!(users.iter().all(|u| u.trusted == 2), "two rows each");
    assert!(users.windows(2).all(|w| w[0].user < w[1].user));

    let (first, next) = f.engine.trust_list(&root(), "", "", 30).unwrap();
    let (rest, end) = f.engine.trust_list(&root(), "", &next, 30).unwrap();
    assert_eq!((first.len(), rest.len(), end.as_str()), (30, 20, ""));
    let (one_user, _) = f.engine.trust_list(&root(), "user07", "", 1000).unwrap();
    assert_eq!(one_user.len(), 2);

    for (cursor, limit) in [("-1", 10), ("abc", 10), ("+5", 10), ("", 0)] {
        assert!(
            matches!(
                f.engine.trust_list(&root(), "", cursor, limit),
                Err(ApiError::InvalidInput(_))
            ),
            "{cursor:?} {limit}"
        );
    }
    assert!(matches!(
        f.engine.list(&root(), "a\nb", 10),
        Err(ApiError::InvalidInput(_))
    ));
    // A larger page than the daemon serves is served as the largest.
    let (all, next) = f.engine.list(&root(), "", u32::MAX).unwrap();
    assert_eq!((all.len(), next.as_str()), (25, ""));
}

#[test]
fn housekeeping_sweeps_every_lapsed_record_in_batches_and_keeps_the_valid_ones() {
    let f = fixture();
    // 2,500 lapsed rows (more than two batches) and 10 valid ones.
    f.engine
        .store()
        .unwrap()
        .sql_for_tests(&format!(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 2509)
             INSERT INTO trust (id, user, kind, identity_hash, description, service,
                                created_at, last_used, expires_at, idle_seconds, password_stamp)
             SELECT printf('%032x', i), 'alice', 'device', printf('%064x', i), 'test', 'sshd',
                    0, 0, CASE WHEN i < 2500 THEN {T0} - 1 ELSE {T0} + 3600 END, 0, NULL FROM n;"
        ))
        .unwrap();
    assert_eq!(f.engine.housekeeping().unwrap(), 2500);
    let left = f.engine.store().unwrap().trust_of("alice").unwrap();
    assert_eq!(left.len(), 10);
    assert!(left.iter().all(|r| r.expires_at > T0));
}

mod email_codes;
mod local_attacks;
mod recovery;
mod security_keys;
mod self_enrol;
mod sms_codes;

#[test]
fn replies_that_ask_for_or_refuse_a_code_are_held_to_the_floor_and_passes_are_not() {
    // A floor far above what these calls take, so every held reply is held.
    let f = fixture_with("version = 1\n[login]\ntiming_floor_us = 100000\n");
    let secret = f.enrol("alice");
    f.clock.advance(30);
    let floor = std::time::Duration::from_millis(100);
    let held = |p: &std::time::Duration| !p.is_zero() && *p <= floor;
    for name in ["alice", "bob", "nobody-here"] {
        let begun = f.engine.begin_paced(&root(), ctx(name));
        assert!(held(&begun.hold), "{name}: {:?}", begun.hold);
        let (id, step) = begun.reply.unwrap();
        assert_eq!(step.action, Action::PromptSecret, "{name}");
        let refused = f.engine.answer_paced(&root(), &id, "000000");
        assert!(held(&refused.hold), "{name}: {:?}", refused.hold);
        assert_eq!(refused.reply.unwrap().action, Action::PromptSecret);
    }
    let (id, _) = f.engine.begin(&root(), ctx("alice")).unwrap();
    let passed = f.engine.answer_paced(&root(), &id, &f.code(&secret, 0));
    assert_eq!(passed.reply.unwrap().action, Action::Success);
    assert!(passed.hold.is_zero(), "{:?}", passed.hold);
    // Errors and calls that name no conversation are not held either.
    let unknown = f.engine.answer_paced(&root(), "no-such-id", "000000");
    assert!(unknown.reply.is_err() && unknown.hold.is_zero());
    let out_of_scope = fixture_with("version = 1\n[login]\nunenrolled = \"ignore\"\n")
        .engine
        .begin_paced(&root(), ctx("bob"));
    assert!(out_of_scope.hold.is_zero());
}
