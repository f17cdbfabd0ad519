//! Every method body `org.twofold.Twofold1.Manage` accepts, and `Auth.Cancel`'s, decoded
//! from arbitrary bytes as D-Bus decodes them (daemon/src/service.rs: the method's
//! argument tuple, read with zbus from a little-endian body), then handed to the real
//! engine method, as the given caller, on a real engine: SQLite in memory, a clock that
//! stands still, a small user database, audit lines formatted and dropped, notices
//! rendered and dropped.
//!
//! The input: the first byte `b` picks the method, `METHODS[b % 18]`, and the caller,
//! `CALLERS[(b / 18) % 3]`: root (uid 0), alice (uid 1000, an ordinary user with an
//! active factor) or carol (uid 1002, in `admin_group`). The rest is the body.
//!
//! Besides panics, it checks what an ordinary caller gets: alice never passes an
//! administrator's method, and what she does pass is about her own account.
//!
//! The engine is built once and kept across inputs (state grows: enrolments, deferrals,
//! locks), then built again every [`REBUILD_EVERY`] inputs to bound it. Two costs are
//! kept out of most inputs: `store_import` needs no guard, as the SQLite store refuses
//! an import without opening the file (only PostgreSQL imports); recovery codes, issued
//! by `enrol` and `recovery_regenerate`, are ten Argon2id hashes (19 MiB each, about
//! 200 ms a set, more under ASan), so randomness for them is given to one input in 256
//! (by a hash of the input, so an input always takes the same path). The others fail
//! where the codes are made, as a failing random source would make them fail.

use std::hint::black_box;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use twofold_config::Config;
use twofold_daemon::audit::{AuditEvent, AuditSink};
use twofold_daemon::authz::{Account, Caller, LookupError, UserDb};
use twofold_daemon::clock::ManualClock;
use twofold_daemon::email_codes::NoCourier;
use twofold_daemon::engine::{ApiError, Engine, Parts};
use twofold_daemon::factor::FactorKind;
use twofold_daemon::identity::SessionLookup;
use twofold_daemon::lockout::{LockoutPolicy, Match};
use twofold_daemon::model::{Attempt, Issued, TrustKind, TrustRecord, UserRecord};
use twofold_daemon::notify::{Notice, Notifier};
use twofold_daemon::random::Random;
use twofold_daemon::recovery::StoredCode;
use twofold_daemon::store::{SqliteStore, Store, StorePool};
use twofold_protocol::LoginContext;
use zbus::wire::LE;
use zbus::wire::serialized::{Context, Data};

/// The methods, in the order the first byte picks them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Enrol,
    ConfirmEnrolment,
    Status,
    List,
    Reset,
    Unlock,
    TrustList,
    TrustRevoke,
    GraceSet,
    GraceList,
    GraceClear,
    UserSetEmail,
    UserSetSecurityKeys,
    StoreCheck,
    StoreMigrate,
    StoreImport,
    RecoveryRegenerate,
    /// `Auth.Cancel(conversation)`.
    Cancel,
    /// Last, so that the seeds' method numbers stay as they were.
    UserSetPhone,
}

pub const METHODS: [Method; 19] = [
    Method::Enrol,
    Method::ConfirmEnrolment,
    Method::Status,
    Method::List,
    Method::Reset,
    Method::Unlock,
    Method::TrustList,
    Method::TrustRevoke,
    Method::GraceSet,
    Method::GraceList,
    Method::GraceClear,
    Method::UserSetEmail,
    Method::UserSetSecurityKeys,
    Method::StoreCheck,
    Method::StoreMigrate,
    Method::StoreImport,
    Method::RecoveryRegenerate,
    Method::Cancel,
    Method::UserSetPhone,
];

/// Who calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    Root,
    /// uid 1000: an ordinary user (not in `admin_group`) with an active factor.
    Alice,
    /// uid 1002: in `admin_group`, so an administrator, but not root.
    Carol,
}

pub const CALLERS: [Who; 3] = [Who::Root, Who::Alice, Who::Carol];

impl Who {
    pub fn caller(self) -> Caller {
        let (uid, pid, bus_name) = match self {
            Who::Root => (0, 1, ":1.1"),
            Who::Alice => (1000, 2, ":1.2"),
            Who::Carol => (1002, 3, ":1.3"),
        };
        Caller {
            uid,
            pid: Some(pid),
            bus_name: bus_name.into(),
        }
    }
}

/// The first byte of an input that calls `method` as `who`.
pub fn selector(method: Method, who: Who) -> u8 {
    let m = METHODS.iter().position(|m| *m == method).unwrap_or(0);
    let w = CALLERS.iter().position(|w| *w == who).unwrap_or(0);
    (w * METHODS.len() + m) as u8
}

/// Inputs one engine serves before it is built again.
pub const REBUILD_EVERY: u64 = 100_000;

/// Where the clock stands: 2027-01-15, a TOTP step boundary.
pub const T0: i64 = 1_800_000_000;

const CONFIG: &str = "version = 1\n\
    [daemon]\nadmin_group = \"twofold-admin\"\n\
    [enrolment]\ndeadline = \"2027-06-30\"\n";

const ALICE_SECRET: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
const BOB_SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

/// What is there when the engine is built: alice has an active factor, recovery codes,
/// an address, a security key, a trusted session and a remembered device; bob a pending
/// secret an administrator issued; carol an address and a deferral, `@staff` a
/// deferral; two logins wait for alice's code (one begun by root over sshd, one by alice
/// with sudo) — their ids are in [`Harness::conversations`].
pub struct Harness {
    pub engine: Engine,
    random: Arc<FuzzRandom>,
    pub conversations: Vec<String>,
    inputs: u64,
}

static HARNESS: Mutex<Option<Harness>> = Mutex::new(None);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // After a panic (a finding) the smoke test goes on to report it.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The target's body.
pub fn manage_body(data: &[u8]) {
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    let method = METHODS[first as usize % METHODS.len()];
    let who = CALLERS[(first as usize / METHODS.len()) % CALLERS.len()];
    let mut harness = lock(&HARNESS);
    if harness.as_ref().is_none_or(|h| h.inputs >= REBUILD_EVERY) {
        *harness = None; // the old engine goes first: one in memory at a time
        *harness = Some(Harness::build());
    }
    let Some(h) = harness.as_mut() else {
        return;
    };
    h.inputs += 1;
    h.random.allow(if recovery_codes_allowed(data) {
        u32::MAX
    } else {
        RANDOM_CALLS_WITHOUT_RECOVERY_CODES
    });
    h.call(method, who, body);
}

/// Random fills an input gets unless it may make recovery codes: enough for the TOTP
/// secret of an enrolment; a set of recovery codes asks for two fills (a code, its salt)
/// before its first hash, so it fails there.
const RANDOM_CALLS_WITHOUT_RECOVERY_CODES: u32 = 1;

/// One input in 256 (by its FNV-1a hash) may have recovery codes made.
fn recovery_codes_allowed(data: &[u8]) -> bool {
    fnv1a(data) % 256 == 0
}

pub fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl Harness {
    pub fn build() -> Harness {
        let config = Config::parse(CONFIG, "manage_body.toml").expect("the target's config");
        let random = Arc::new(FuzzRandom::new());
        let engine = Engine::new(Parts {
            config,
            store: Box::new(StorePool::from(seeded_store())),
            clock: Arc::new(ManualClock::new(T0)),
            random: random.clone(),
            users: Arc::new(Users),
            audit: Arc::new(NullAudit),
            notifier: Arc::new(DroppedNotices),
            courier: Arc::new(NoCourier),
            texter: Arc::new(twofold_daemon::sms::NoTexter),
            hostname: "fuzz".into(),
            sessions: Arc::new(Sessions),
        });
        let root = Who::Root.caller();
        let steps = [
            engine
                .set_email(&root, "carol", "carol@example.org")
                .map(drop),
            engine.set_security_keys(&root, "alice", &[format!("SHA256:{}", "A".repeat(43))]),
            engine.grace_set(&root, "@staff", T0 + 7 * 86400, "rollout"),
            engine.grace_set(&root, "carol", T0 + 86400, "new phone"),
        ];
        for step in steps {
            step.expect("the target's fixture");
        }
        let mut conversations = Vec::new();
        for (who, ctx) in [(Who::Root, sshd("alice")), (Who::Alice, sudo("alice"))] {
            let (id, _) = engine.begin(&who.caller(), ctx).expect("a login for alice");
            conversations.push(id);
        }
        Harness {
            engine,
            random,
            conversations,
            inputs: 0,
        }
    }

    /// Decodes `body` as `method`'s arguments, as zbus does for the interface (a method
    /// of one argument reads it alone, of none `()`), and calls the engine.
    pub fn call(&self, method: Method, who: Who, body: &[u8]) {
        let e = &self.engine;
        let c = &who.caller();
        let data = Data::new(body, Context::new(LE, 0));
        match method {
            Method::Enrol => {
                if let Ok(((user, replace), _)) = data.deserialize::<(String, bool)>() {
                    let r = e.enrol(c, &user, replace);
                    if who == Who::Alice
                        && let Ok(offer) = &r
                    {
                        assert!(!replace, "uid 1000 replaced a factor ({user:?})");
                        own(method, &offer.user);
                    }
                }
            }
            Method::ConfirmEnrolment => {
                if let Ok(((user, code), _)) = data.deserialize::<(String, String)>() {
                    let _ = e.confirm_enrolment(c, &user, &code);
                }
            }
            Method::Status => {
                if let Ok((user, _)) = data.deserialize::<String>()
                    && let Ok(status) = e.status(c, &user)
                    && who == Who::Alice
                {
                    own(method, &status.user);
                }
            }
            Method::List => {
                if let Ok(((after, limit), _)) = data.deserialize::<(String, u32)>() {
                    admin_only(method, who, &e.list(c, &after, limit));
                }
            }
            Method::Reset => {
                if let Ok((user, _)) = data.deserialize::<String>() {
                    admin_only(method, who, &e.reset(c, &user));
                }
            }
            Method::Unlock => {
                if let Ok((user, _)) = data.deserialize::<String>() {
                    admin_only(method, who, &e.unlock(c, &user));
                }
            }
            Method::TrustList => {
                if let Ok(((user, after, limit), _)) = data.deserialize::<(String, String, u32)>()
                    && let Ok((page, _next)) = e.trust_list(c, &user, &after, limit)
                    && who == Who::Alice
                {
                    for t in &page {
                        own(method, &t.user);
                    }
                }
            }
            Method::TrustRevoke => {
                if let Ok(((user, id), _)) = data.deserialize::<(String, String)>() {
                    let _ = e.trust_revoke(c, &user, &id);
                }
            }
            Method::GraceSet => {
                if let Ok(((subject, until, reason), _)) =
                    data.deserialize::<(String, i64, String)>()
                {
                    admin_only(method, who, &e.grace_set(c, &subject, until, &reason));
                }
            }
            Method::GraceList => {
                if let Ok(((after, limit), _)) = data.deserialize::<(String, u32)>() {
                    admin_only(method, who, &e.grace_list(c, &after, limit));
                }
            }
            Method::GraceClear => {
                if let Ok((subject, _)) = data.deserialize::<String>() {
                    admin_only(method, who, &e.grace_clear(c, &subject));
                }
            }
            Method::UserSetEmail => {
                if let Ok(((user, address), _)) = data.deserialize::<(String, String)>() {
                    admin_only(method, who, &e.set_email(c, &user, &address));
                }
            }
            Method::UserSetPhone => {
                if let Ok(((user, number), _)) = data.deserialize::<(String, String)>() {
                    admin_only(method, who, &e.set_phone(c, &user, &number));
                }
            }
            Method::UserSetSecurityKeys => {
                if let Ok(((user, keys), _)) = data.deserialize::<(String, Vec<String>)>() {
                    admin_only(method, who, &e.set_security_keys(c, &user, &keys));
                }
            }
            Method::StoreCheck => {
                if data.deserialize::<()>().is_ok() {
                    admin_only(method, who, &e.store_check(c));
                }
            }
            Method::StoreMigrate => {
                if data.deserialize::<()>().is_ok() {
                    admin_only(method, who, &e.store_migrate(c));
                }
            }
            Method::StoreImport => {
                if let Ok((path, _)) = data.deserialize::<String>() {
                    let r = e.store_import(c, &path);
                    assert!(
                        who == Who::Root || r.is_err(),
                        "uid {} imported {path:?}: {r:?}",
                        c.uid
                    );
                }
            }
            Method::RecoveryRegenerate => {
                if let Ok((user, _)) = data.deserialize::<String>() {
                    admin_only(method, who, &e.regenerate_recovery_codes(c, &user));
                }
            }
            Method::Cancel => {
                if let Ok((conversation, _)) = data.deserialize::<String>() {
                    e.cancel(c, &conversation);
                }
            }
        }
    }
}

/// An administrator's method: alice (uid 1000) never gets it through.
fn admin_only<T: std::fmt::Debug>(method: Method, who: Who, r: &Result<T, ApiError>) {
    assert!(
        who != Who::Alice || r.is_err(),
        "uid 1000, not an administrator, got {method:?} through: {r:?}"
    );
}

/// What alice (uid 1000) was given is about her own account.
fn own(method: Method, user: &str) {
    assert_eq!(user, "alice", "uid 1000 got {method:?} for another user");
}

fn sshd(user: &str) -> LoginContext {
    LoginContext {
        user: user.into(),
        service: "sshd".into(),
        rhost: "192.0.2.7".into(),
        tty: "ssh".into(),
        ..Default::default()
    }
}

fn sudo(user: &str) -> LoginContext {
    LoginContext {
        user: user.into(),
        service: "sudo".into(),
        tty: "/dev/pts/1".into(),
        ruser: user.into(),
        ..Default::default()
    }
}

/// The store as the engine finds it: written directly, so building it hashes no
/// recovery code (their hashes are never checked by a Manage method) and alice's
/// factor is active with the trust she earned.
fn seeded_store() -> SqliteStore {
    let mut s = SqliteStore::open_in_memory().expect("an in-memory SQLite store");
    let codes: Vec<StoredCode> = (0..10)
        .map(|i| StoredCode {
            id: format!("K7Q{i}"),
            salt: format!("{i:032x}"),
            hash: format!("{i:064x}"),
        })
        .collect();
    for (user, secret, enrolled) in [
        ("alice", ALICE_SECRET, T0 - 86400),
        ("bob", BOB_SECRET, T0 - 3600),
    ] {
        let issued = s
            .put_pending(
                user,
                FactorKind::Totp,
                secret,
                enrolled,
                false,
                true,
                &codes,
            )
            .expect("a pending secret");
        assert_eq!(issued, Issued::Stored);
    }
    // alice's first code, as `confirm_enrolment` checks it (which would also end trust
    // given before it: so before the trust below).
    let lockout = LockoutPolicy {
        max_failures: 10,
        base_seconds: 300,
        max_seconds: 86400,
        source_failures: 5,
        source_base_seconds: 300,
    };
    let right_code = |_: &UserRecord| Ok(Some(Match::Step(T0 / 30)));
    let first = s
        .attempt("alice", "uid 0", T0, &lockout, &right_code)
        .expect("alice's first code");
    assert!(matches!(
        first,
        Attempt::Accepted {
            activated: true,
            ..
        }
    ));
    // An address set later would end her trust (codes went to the old one).
    s.set_email("alice", Some("alice@example.org"), T0 - 700)
        .expect("alice's address");
    for (n, kind) in [(1u8, TrustKind::Session), (2, TrustKind::Device)] {
        s.put_trust(&TrustRecord {
            id: format!("{n:x}").repeat(64),
            user: "alice".into(),
            kind,
            identity_hash: format!("{:x}", n + 2).repeat(64),
            description: "ssh key SHA256:AAAA from 192.0.2.7".into(),
            service: "sshd".into(),
            created_at: T0 - 600,
            last_used: T0 - 60,
            expires_at: T0 + 86400,
            idle_seconds: 0,
            password_stamp: Some("alice-0".into()),
        })
        .expect("a trust record");
    }
    s
}

/// root; alice (also `Alice` and `alice@example.org`), bob, carol (`twofold-admin`),
/// dave (no factor), erin (groups unreadable: LDAP down); `nss-down` makes the lookup
/// fail; any `tf-…` name is an account of its own, under its lower-case spelling, so
/// names the fuzzer makes up reach the store too.
struct Users;

impl UserDb for Users {
    fn account(&self, name: &str) -> Result<Option<Account>, LookupError> {
        let (uid, canonical) = match name {
            "root" => (0, "root".to_string()),
            "alice" | "Alice" | "alice@example.org" => (1000, "alice".into()),
            "bob" => (1001, "bob".into()),
            "carol" => (1002, "carol".into()),
            "dave" => (1003, "dave".into()),
            "erin" => (1004, "erin".into()),
            "nss-down" => return Err(LookupError("SSSD is not answering".into())),
            other if other.len() > 3 && other.as_bytes()[..3].eq_ignore_ascii_case(b"tf-") => {
                let canonical = other.to_ascii_lowercase();
                (
                    2000 + (fnv1a(canonical.as_bytes()) % 1000) as u32,
                    canonical,
                )
            }
            _ => return Ok(None),
        };
        Ok(Some(Account {
            uid,
            name: canonical,
        }))
    }
    fn in_group(&self, uid: u32, group: &str) -> bool {
        matches!((uid, group), (1002, "twofold-admin") | (1000, "staff"))
    }
    fn groups_of(&self, user: &str) -> Result<Vec<String>, LookupError> {
        Ok(match user {
            "alice" => vec!["alice".into(), "staff".into()],
            "carol" => vec!["carol".into(), "twofold-admin".into()],
            "erin" => return Err(LookupError("LDAP server unreachable".into())),
            other => vec![other.into()],
        })
    }
    fn group_exists(&self, group: &str) -> bool {
        ["staff", "twofold-admin", "tf-group"].contains(&group)
    }
    fn password_stamp(&self, user: &str) -> Option<String> {
        (user != "bob").then(|| format!("{user}-0"))
    }
}

/// Login session 7 for alice's pid (2), none for the others.
struct Sessions;

impl SessionLookup for Sessions {
    fn session_of(&self, pid: u32) -> Option<u32> {
        (pid == 2).then_some(7)
    }
}

/// Formats each record as the syslog sink would, and drops it.
struct NullAudit;

impl AuditSink for NullAudit {
    fn record(&self, event: &AuditEvent) {
        black_box(event.to_line());
    }
}

/// Renders each notice as the e-mail notifier would, and drops it: active, so the
/// engine looks up the address as it does with notices configured.
struct DroppedNotices;

impl Notifier for DroppedNotices {
    fn notify(&self, notice: Notice) {
        black_box(twofold_daemon::email_notices::message(&notice));
    }
}

/// Predictable randomness (SplitMix64 from a fixed seed, so the fixture's conversation
/// ids are the same at every build and the seeds can name them), with a number of fills
/// allowed per input.
struct FuzzRandom {
    state: AtomicU64,
    calls_left: AtomicU32,
}

impl FuzzRandom {
    fn new() -> FuzzRandom {
        FuzzRandom {
            state: AtomicU64::new(0x7457_6f66_6f6c_6421),
            calls_left: AtomicU32::new(u32::MAX),
        }
    }

    fn allow(&self, calls: u32) {
        self.calls_left.store(calls, Ordering::SeqCst);
    }
}

impl Random for FuzzRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), String> {
        self.calls_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .map_err(|_| "the fuzz target's random source is spent for this input".to_string())?;
        for chunk in buf.chunks_mut(8) {
            let mut z = self
                .state
                .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::SeqCst)
                .wrapping_add(0x9e37_79b9_7f4a_7c15);
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
        }
        Ok(())
    }
}

/// A few valid bodies of every method, each as an input of this target (selector byte
/// and body): fuzz/seeds/manage_body/ holds these (the smoke test says when they differ).
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let conversations = Harness::build().conversations;
    let key = format!("SHA256:{}", "A".repeat(43));
    let other_key = format!("SHA256:{}", "b/+9".repeat(10) + "xyz");
    let mut out = Vec::new();
    let mut add = |name: &str, method: Method, who: Who, body: Vec<u8>| {
        let mut input = vec![selector(method, who)];
        input.extend_from_slice(&body);
        out.push((format!("{name}.bin"), input));
    };
    use Method::*;
    use Who::*;
    add("enrol-root-replace", Enrol, Root, bytes(&("alice", true)));
    add("enrol-self", Enrol, Alice, bytes(&("alice", false)));
    add("enrol-new-name", Enrol, Root, bytes(&("tf-new", false)));
    add("enrol-other-denied", Enrol, Alice, bytes(&("bob", false)));
    add("enrol-admin", Enrol, Carol, bytes(&("dave", false)));
    add(
        "confirm-pending",
        ConfirmEnrolment,
        Root,
        bytes(&("bob", "123456")),
    );
    add(
        "confirm-active",
        ConfirmEnrolment,
        Alice,
        bytes(&("alice", "000000")),
    );
    add(
        "confirm-spaces",
        ConfirmEnrolment,
        Carol,
        bytes(&("bob", " 12 34 56 ")),
    );
    add("status-root", Status, Root, bytes("alice"));
    add("status-self-alias", Status, Alice, bytes("Alice"));
    add("status-other-denied", Status, Alice, bytes("bob"));
    add("status-unknown", Status, Carol, bytes("nobody-here"));
    add("status-lookup-fails", Status, Root, bytes("erin"));
    add("list-first-page", List, Root, bytes(&("", 10u32)));
    add("list-after", List, Carol, bytes(&("alice", 1000u32)));
    add("list-denied", List, Alice, bytes(&("", 5u32)));
    add("reset-unknown", Reset, Root, bytes("tf-gone"));
    add("reset-pending", Reset, Carol, bytes("bob"));
    add("reset-denied", Reset, Alice, bytes("alice"));
    add("unlock", Unlock, Root, bytes("alice"));
    add("unlock-denied", Unlock, Alice, bytes("alice"));
    add("trust-list-all", TrustList, Root, bytes(&("", "", 10u32)));
    add(
        "trust-list-self",
        TrustList,
        Alice,
        bytes(&("alice", "1", 2u32)),
    );
    add(
        "trust-list-empty-page",
        TrustList,
        Carol,
        bytes(&("bob", "", 0u32)),
    );
    add("trust-revoke-all", TrustRevoke, Root, bytes(&("alice", "")));
    add(
        "trust-revoke-id",
        TrustRevoke,
        Alice,
        bytes(&("alice", "11111111")),
    );
    add(
        "trust-revoke-bad-id",
        TrustRevoke,
        Carol,
        bytes(&("alice", "zz")),
    );
    let (week, hour) = (T0 + 7 * 86400, T0 + 3600);
    add(
        "grace-set-group",
        GraceSet,
        Root,
        bytes(&("@staff", week, "laptops")),
    );
    add(
        "grace-set-user",
        GraceSet,
        Carol,
        bytes(&("bob", hour, "travel")),
    );
    add(
        "grace-set-past",
        GraceSet,
        Root,
        bytes(&("alice", T0 - 1, "")),
    );
    add(
        "grace-set-denied",
        GraceSet,
        Alice,
        bytes(&("alice", hour, "me")),
    );
    add("grace-list", GraceList, Root, bytes(&("", 10u32)));
    add(
        "grace-list-after",
        GraceList,
        Carol,
        bytes(&("@staff", 1u32)),
    );
    add("grace-clear-group", GraceClear, Root, bytes("@staff"));
    add("grace-clear-user", GraceClear, Carol, bytes("carol"));
    add(
        "email-set",
        UserSetEmail,
        Root,
        bytes(&("alice", "alice@example.org")),
    );
    add(
        "email-shared",
        UserSetEmail,
        Carol,
        bytes(&("bob", "alice@example.org")),
    );
    add("email-remove", UserSetEmail, Root, bytes(&("carol", "")));
    add(
        "email-denied",
        UserSetEmail,
        Alice,
        bytes(&("alice", "a@b.example")),
    );
    add(
        "phone-set",
        UserSetPhone,
        Root,
        bytes(&("alice", "+4915112345678")),
    );
    add("phone-remove", UserSetPhone, Carol, bytes(&("bob", "")));
    add(
        "phone-denied",
        UserSetPhone,
        Alice,
        bytes(&("alice", "+4915112345678")),
    );
    add(
        "keys-set",
        UserSetSecurityKeys,
        Root,
        bytes(&("alice", vec![key.clone(), other_key])),
    );
    add(
        "keys-remove",
        UserSetSecurityKeys,
        Carol,
        bytes(&("bob", Vec::<String>::new())),
    );
    add(
        "keys-denied",
        UserSetSecurityKeys,
        Alice,
        bytes(&("alice", vec![key])),
    );
    add("store-check", StoreCheck, Root, Vec::new());
    add("store-check-denied", StoreCheck, Alice, Vec::new());
    add("store-migrate", StoreMigrate, Carol, Vec::new());
    add(
        "store-import",
        StoreImport,
        Root,
        bytes("/nonexistent/twofold.db"),
    );
    add(
        "store-import-not-root",
        StoreImport,
        Carol,
        bytes("/tmp/twofold.db"),
    );
    add(
        "store-import-relative",
        StoreImport,
        Root,
        bytes("twofold.db"),
    );
    add(
        "recovery-regenerate",
        RecoveryRegenerate,
        Root,
        bytes("alice"),
    );
    add(
        "recovery-regenerate-admin",
        RecoveryRegenerate,
        Carol,
        bytes("bob"),
    );
    add(
        "recovery-regenerate-denied",
        RecoveryRegenerate,
        Alice,
        bytes("alice"),
    );
    add(
        "cancel-root",
        Cancel,
        Root,
        bytes(conversations[0].as_str()),
    );
    add(
        "cancel-self",
        Cancel,
        Alice,
        bytes(conversations[1].as_str()),
    );
    add(
        "cancel-not-mine",
        Cancel,
        Alice,
        bytes(conversations[0].as_str()),
    );
    add("cancel-unknown", Cancel, Carol, bytes("0123456789abcdef"));
    out
}

/// `value` as a D-Bus body (little-endian), as a client's zbus would send it.
pub fn bytes<T: serde::Serialize + zbus::wire::DynamicType + ?Sized>(value: &T) -> Vec<u8> {
    zbus::wire::to_bytes(Context::new(LE, 0), value)
        .expect("a D-Bus body")
        .bytes()
        .to_vec()
}
