use super::*;
use crate::audit::MemoryAudit;
use crate::clock::ManualClock;
use crate::random::OsRandom;

struct Users;
impl UserDb for Users {
    fn uid_of(&self, name: &str) -> Option<u32> {
        match name {
            "alice" => Some(1000),
            "bob" => Some(1001),
            "carol" => Some(1002),
            _ => None,
        }
    }
    fn name_of(&self, _: u32) -> Option<String> {
        None
    }
    fn in_group(&self, uid: u32, group: &str) -> bool {
        group == "twofold-admin" && uid == 1002
    }
}

struct Fixture {
    engine: Engine,
    clock: Arc<ManualClock>,
    audit: Arc<MemoryAudit>,
}

const T0: i64 = 1_800_000_000; // a step boundary: 1_800_000_000 / 30 = 60_000_000

fn fixture_with(config_text: &str) -> Fixture {
    let config = Config::parse(config_text, "test").unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let audit = Arc::new(MemoryAudit::default());
    let engine = Engine::new(Parts {
        config,
        store: Store::open_in_memory().unwrap(),
        clock: clock.clone(),
        random: Arc::new(OsRandom),
        users: Arc::new(Users),
        audit: audit.clone(),
        hostname: "host".into(),
    });
    Fixture {
        engine,
        clock,
        audit,
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
            if steps.last().unwrap().action() != Some(Action::PromptSecret) {
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

fn last_action(steps: &[Step]) -> Option<Action> {
    steps.last().and_then(Step::action)
}

#[test]
fn right_code_passes_and_its_replay_fails() {
    let f = fixture();
    let secret = f.enrol("alice");
    f.clock.advance(30);
    let code = f.code(&secret, 0);
    let steps = f.login("alice", &[&code]);
    assert_eq!(steps[0].prompt, CODE_PROMPT);
    assert_eq!(last_action(&steps), Some(Action::Success));
    let steps = f.login("alice", &[&code, &code, &code]);
    assert_eq!(last_action(&steps), Some(Action::MaxTries));
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
    assert_eq!(last_action(&steps), Some(Action::MaxTries));
    // A right code on the second try passes.
    let good = f.code(&secret, 0);
    assert_eq!(
        last_action(&f.login("alice", &["999999", &good])),
        Some(Action::Success)
    );
}

#[test]
fn codes_from_neighbouring_steps_pass_and_two_steps_away_fail() {
    let f = fixture();
    let secret = f.enrol("alice");
    f.clock.advance(300);
    assert_eq!(
        last_action(&f.login("alice", &[&f.code(&secret, -2)])),
        Some(Action::PromptSecret)
    );
    assert_eq!(
        last_action(&f.login("alice", &[&f.code(&secret, -1)])),
        Some(Action::Success)
    );
    f.clock.advance(30);
    assert_eq!(
        last_action(&f.login("alice", &[&f.code(&secret, 1)])),
        Some(Action::Success)
    );
    assert_eq!(
        last_action(&f.login("alice", &[&f.code(&secret, 2)])),
        Some(Action::PromptSecret)
    );
}

#[test]
fn lockout_counts_across_services_and_holds_against_the_right_code() {
    let f = fixture();
    let secret = f.enrol("alice");
    f.clock.advance(30);
    f.login("alice", &["000001", "000002", "000003"]);
    let (id, _) = f
        .engine
        .begin(
            &root(),
            LoginContext {
                service: "sudo".into(),
                ..ctx("alice")
            },
        )
        .unwrap();
    f.engine.answer(&root(), &id, "000004").unwrap();
    let locked = f.engine.answer(&root(), &id, "000005").unwrap();
    assert_eq!(locked.action(), Some(Action::Denied));
    assert!(
        locked.messages[0].text.contains("locked for 5 more minute"),
        "{:?}",
        locked.messages
    );
    // The right code does not open a locked account; begin refuses at once.
    let (id, first) = f.engine.begin(&root(), ctx("alice")).unwrap();
    assert_eq!((id.as_str(), first.action()), ("", Some(Action::Denied)));
    f.engine.unlock(&root(), "alice").unwrap();
    f.clock.advance(30);
    assert_eq!(
        last_action(&f.login("alice", &[&f.code(&secret, 0)])),
        Some(Action::Success)
    );
    assert!(f.outcomes().contains(&"locked"));
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
    assert_eq!(last_action(&wrong), Some(Action::MaxTries));
}

#[test]
fn unenrolled_users_are_out_of_scope_when_configured() {
    let f = fixture_with("version = 1\n[login]\nunenrolled = \"ignore\"\n");
    let (id, step) = f.engine.begin(&root(), ctx("bob")).unwrap();
    assert_eq!((id.as_str(), step.action()), ("", Some(Action::OutOfScope)));
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
            .action(),
        Some(Action::Success)
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
    assert_eq!(last_action(&steps), Some(Action::MaxTries));
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
    assert_eq!(last_action(&steps), Some(Action::Success));
    assert_eq!(
        steps.last().unwrap().messages[0].text,
        "Your authenticator app is now confirmed."
    );
    assert_eq!(f.engine.status(&root(), "alice").unwrap().state, "active");
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
fn admin_methods_refuse_ordinary_users() {
    let f = fixture();
    f.enrol("alice");
    let bob = as_uid(1001, ":1.3");
    assert!(matches!(
        f.engine.list(&bob),
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
    assert_eq!(f.engine.list(&root()).unwrap().len(), 1);
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
    lock(&f.engine.store)
        .conn_for_tests()
        .execute_batch("PRAGMA query_only = ON")
        .unwrap();
    let step = f.engine.answer(&root(), &id, &f.code(&secret, 0)).unwrap();
    assert_eq!(step.action(), Some(Action::Error));
    assert_eq!(f.outcomes().last(), Some(&"error"));
}
