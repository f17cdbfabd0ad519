//! The login conversation: is this user in scope, enrolled, within a grace period, on a
//! trusted device; if not, ask for a code and check it. Synchronous and free of D-Bus,
//! with clock, randomness, users, sessions, store and audit injected; `service` calls it
//! for each D-Bus method. The management calls are in `manage`.

use crate::audit::{AuditEvent, AuditSink};
use crate::authz::{Account, Caller, LookupError, Policy, UserDb, valid_user_name};
use crate::clock::Clock;
use crate::email_codes::{self, Courier, DeliveryState, EmailFactor, MailedCode};
use crate::factor::{Factor, FactorKind, Totp};
use crate::grace;
use crate::identity::{self, DeviceIdentity, SessionLookup};
use crate::lockout::{LockoutPolicy, Match};
use crate::model::{Attempt, TrustKind, UserRecord};
use crate::notify::{Change, Notice, Notifier};
use crate::otp::OtpParams;
use crate::random::{Random, random_hex};
use crate::sms::{TextedCodes, Texter};
use crate::store::{self, Lease, Store, StoreError, Stores};
use crate::trust::{self, Judgement};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use twofold_config::{Config, ServicePolicy, Unenrolled, service_class};
use twofold_protocol::{
    Action, LoginContext, MAX_AUTH_INFO_LEN, MAX_FIELD_LEN, MAX_RESPONSE_LEN, Step,
};

pub use crate::factor::CODE_PROMPT;
/// The code prompt when e-mailed codes are on: shown to every name alike, so it tells
/// no one who has an address on record.
pub const CODE_OR_EMAIL_PROMPT: &str = "Verification code (or press Enter for one by e-mail): ";
const EMAILED_PROMPT: &str = "Code from the e-mail: ";
/// The same words whether or not an address is on record (and a mail went out).
const MAYBE_SENT: &str = "If an e-mail address is on record for you, a code is on its way to it.";
const NOT_SENT: &str = "The e-mail with your code could not be sent. Use your authenticator app, or ask your administrator.";
const NO_MORE_MAILS: &str =
    "No more codes by e-mail for now. Use your authenticator app, or try again later.";
/// Codes one login may ask to be e-mailed.
const MAIL_REQUESTS_PER_LOGIN: u32 = 3;
const WRONG_CODE: &str = "Wrong code, try again.";
const TOO_MANY: &str = "Wrong code. Too many tries.";
const CHANGED: &str =
    "Your second factor or its trust changed while this login waited; log in again.";
const UNAVAILABLE: &str = "twofold cannot check codes right now. Contact your administrator.";
const NO_DIRECTORY: &str = "twofold cannot look up this account right now (user directory unavailable). Contact your administrator.";
/// How stale a trust record's `last_used` may get before a login writes it again.
const LAST_USED_PRECISION_SECONDS: i64 = 60;
/// Open conversations one bus connection may hold, and in all.
const MAX_CONVERSATIONS_PER_CLIENT: usize = 8;
const MAX_CONVERSATIONS: usize = 4096;
/// Room in the table kept for root's logins (sshd, sudo, login) whatever the users hold;
/// one non-root uid's share over all its connections is `max_conversations_per_user`.
const ROOT_RESERVE: usize = 1024;

/// Errors returned to D-Bus clients. Their text names no code or secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    InvalidInput(String),
    #[error("{0}")]
    UnknownUser(String),
    #[error("{0}")]
    NotEnrolled(String),
    #[error("{0}")]
    AlreadyEnrolled(String),
    #[error("{0}")]
    WrongCode(String),
    #[error("no such conversation (finished, expired or not yours)")]
    NoConversation,
    #[error("{0}")]
    Store(String),
}

/// What the conversation waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Code,
    /// "Trust this device?" after a right code.
    Remember,
    /// An SSH user acknowledging the grace reminder (sshd drops messages without a prompt).
    GraceNotice,
    /// The grace reminder with an offer to set up an app now (`self_enrol`).
    SelfEnrol,
    /// The recovery codes of an app just set up, shown until acknowledged.
    RecoveryShown,
}

struct Conversation {
    owner: String,
    stage: Stage,
    identity: Option<DeviceIdentity>,
    caller_uid: u32,
    context: LoginContext,
    /// False for names with no factor under `unenrolled = "deny"` (and unknown names):
    /// they are asked, counted and locked like everyone else, so nothing tells who is
    /// enrolled; only the audit trail says "no factor".
    enrolled: bool,
    tries_left: u32,
    expires_at: i64,
    /// The secret offered at `Stage::SelfEnrol`, stored only once its first code verifies.
    enrolling: Option<String>,
    /// The code e-mailed for this login, if one was asked for (a new one replaces it).
    mailed: Option<MailedCode>,
    mail_requests: u32,
    /// The number this login may have a code texted to (`sms_codes`), the codes texted,
    /// and how many it asked for.
    sms: Option<sms_codes::SmsOffer>,
    texted: TextedCodes,
    texts_asked: u32,
    /// The delivery-report reference of the latest text (`[sms.kannel] reports_address`).
    report: Option<String>,
    /// What admitted the conversation past its code, checked again at every later step:
    /// the factor's generation (a new secret, a lock or a revocation changes it) and the
    /// password fingerprint read when the code was right.
    admitted: Option<Admitted>,
}

#[derive(Debug, Clone)]
struct Admitted {
    generation: i64,
    password_stamp: Option<String>,
}

pub struct Engine {
    pub(crate) config: Config,
    /// The factor kinds this daemon checks.
    pub(crate) totp: Totp,
    email: EmailFactor,
    /// Whether logins may ask for a code by e-mail (`Config::email_codes_on`).
    email_codes_on: bool,
    courier: Arc<dyn Courier>,
    /// Whether logins may ask for a code by SMS (`Config::sms_on`), and who texts it.
    sms_on: bool,
    pub(crate) texter: Arc<dyn Texter>,
    /// When this daemon sent its texts of the last minute (`[sms] global_per_minute`).
    texts_sent: Mutex<std::collections::VecDeque<i64>>,
    /// The texts whose delivery reports are awaited, where Kannel reports.
    pub(crate) reports: Option<crate::sms::reports::Reports>,
    pub(crate) lockout: LockoutPolicy,
    stores: Box<dyn Stores>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) random: Arc<dyn Random>,
    pub(crate) users: Arc<dyn UserDb>,
    pub(crate) audit: Arc<dyn AuditSink>,
    notifier: Arc<dyn Notifier>,
    sessions: Arc<dyn SessionLookup>,
    /// Shown in authenticator apps as `user@hostname`.
    pub(crate) hostname: String,
    conversations: Mutex<HashMap<String, Conversation>>,
    /// `[login] timing_floor_us`.
    timing_floor: std::time::Duration,
}

/// How long one page of a listing may take to read before it is stopped. A page of
/// `MAX_PAGE` entries takes milliseconds; this bounds a disk that stalls.
pub const LISTING_TIME_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Trust records the expiry sweep deletes per transaction (a few milliseconds each).
const SWEEP_BATCH: u32 = 1000;

/// A reply and how long to hold it before it is sent.
pub struct Paced<T> {
    pub reply: T,
    pub hold: std::time::Duration,
}

/// Outcomes that only a real account gets, and errors: holding them hides nothing.
fn shows_an_account(action: Action) -> bool {
    matches!(action, Action::Success | Action::OutOfScope | Action::Error)
}

pub struct Parts {
    pub config: Config,
    pub store: Box<dyn Stores>,
    pub clock: Arc<dyn Clock>,
    pub random: Arc<dyn Random>,
    pub users: Arc<dyn UserDb>,
    pub audit: Arc<dyn AuditSink>,
    /// Tells users about changes to their factors ([`NoNotifier`] sends nothing).
    pub notifier: Arc<dyn Notifier>,
    /// Delivers e-mailed codes ([`email_codes::NoCourier`] sends nothing).
    pub courier: Arc<dyn Courier>,
    /// Sends texted codes ([`crate::sms::NoTexter`] sends nothing).
    pub texter: Arc<dyn Texter>,
    pub hostname: String,
    pub sessions: Arc<dyn SessionLookup>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves data that is still consistent (every store
    // change is one transaction), so keep serving rather than failing every login.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Engine {
    pub fn new(p: Parts) -> Engine {
        let l = &p.config.lockout;
        Engine {
            totp: Totp(OtpParams::from_config(&p.config.totp)),
            lockout: LockoutPolicy {
                max_failures: l.max_failures.get(),
                base_seconds: i64::from(l.base_seconds.get()),
                max_seconds: i64::from(l.max_seconds.get()),
                source_failures: l.source_failures.get(),
                source_base_seconds: i64::from(l.source_backoff_seconds.get()),
            },
            email: EmailFactor,
            email_codes_on: p.config.email_codes_on(),
            timing_floor: std::time::Duration::from_micros(u64::from(
                p.config.login.timing_floor_us.get(),
            )),
            courier: p.courier,
            sms_on: p.config.sms_on(),
            texter: p.texter,
            texts_sent: Mutex::new(std::collections::VecDeque::new()),
            reports: p
                .config
                .sms
                .kannel
                .as_ref()
                .and_then(|k| k.reports_address)
                .filter(|_| p.config.sms_on())
                .map(crate::sms::reports::Reports::new),
            config: p.config,
            stores: p.store,
            clock: p.clock,
            random: p.random,
            users: p.users,
            audit: p.audit,
            notifier: p.notifier,
            hostname: p.hostname,
            sessions: p.sessions,
            conversations: Mutex::new(HashMap::new()),
        }
    }

    /// The implementation that checks factors of `kind`.
    pub(crate) fn factor(&self, kind: FactorKind) -> &dyn Factor {
        match kind {
            FactorKind::Totp => &self.totp,
            FactorKind::Email => &self.email,
            FactorKind::Sms => &crate::sms::SmsFactor,
        }
    }

    /// What a login asks with: the same for every name.
    fn code_prompt(&self) -> &'static str {
        if self.email_codes_on {
            CODE_OR_EMAIL_PROMPT
        } else {
            CODE_PROMPT
        }
    }

    /// What a conversation at its code asks with now: for the code just sent, or with
    /// what the login may ask for instead of an app's code.
    fn prompt_of(&self, conv: &Conversation) -> String {
        if conv.mailed.is_some() {
            EMAILED_PROMPT.into()
        } else if !conv.texted.is_empty() && conv.sms.is_some() {
            self.texted_prompt(conv)
        } else if let Some(offer) = &conv.sms {
            offer.prompt(self.email_codes_on)
        } else {
            self.code_prompt().into()
        }
    }

    /// `record` if it is a factor this daemon can check now: an e-mail factor is none
    /// while e-mailed codes are off, an SMS factor none unless `[sms] sole_factor` (the
    /// user is then unenrolled, under the grace rules).
    fn usable(&self, record: Option<UserRecord>) -> Option<UserRecord> {
        record.filter(|r| match r.kind {
            FactorKind::Totp => true,
            FactorKind::Email => self.email_codes_on,
            FactorKind::Sms => self.sms_on && self.config.sms.sole_factor,
        })
    }

    /// A store connection for one call.
    pub(crate) fn store(&self) -> Result<Lease<'_>, StoreError> {
        self.stores.get()
    }

    /// Runs one store operation on a connection of the pool.
    pub(crate) fn with_store<T>(
        &self,
        f: impl FnOnce(&mut (dyn Store + 'static)) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        f(&mut *self.stores.get()?)
    }

    /// Runs one administrative read on the listings' read-only connection, stopped after
    /// [`LISTING_TIME_LIMIT`]: it takes no connection a login could use.
    pub(crate) fn read_for_listing<T>(
        &self,
        f: impl FnOnce(&dyn Store) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        store::with_time_limit(&mut *self.stores.reader()?, LISTING_TIME_LIMIT, f)
    }

    /// How many calls can hold a database connection at once.
    pub fn store_connections(&self) -> usize {
        self.stores.size()
    }

    pub(crate) fn policy(&self) -> Policy<'_> {
        Policy {
            users: self.users.as_ref(),
            admin_group: self
                .config
                .daemon
                .admin_group
                .as_ref()
                .map(|n| n.0.as_str()),
        }
    }

    fn audit_login(
        &self,
        outcome: &'static str,
        caller_uid: u32,
        ctx: &LoginContext,
        reason: &str,
    ) {
        self.audit.record(&AuditEvent {
            action: "login",
            outcome,
            user: ctx.user.clone(),
            service: ctx.service.clone(),
            rhost: ctx.rhost.clone(),
            tty: ctx.tty.clone(),
            caller_uid: Some(caller_uid),
            reason: reason.into(),
        });
    }

    /// Tells `user` what changed, at the address an administrator set (queued by the
    /// notifier; never waits for delivery). A user without one is not told; a store
    /// error here loses the notice, never the decision.
    pub(crate) fn notify(&self, user: &str, change: Change, detail: String) {
        if !self.notifier.active() {
            return;
        }
        let Ok(Some(to)) = self.with_store(|s| s.email_of(user)) else {
            return;
        };
        self.notifier.notify(Notice {
            user: user.to_owned(),
            to,
            change,
            at: self.clock.now(),
            host: self.hostname.clone(),
            detail,
        });
    }

    pub(crate) fn audit_manage(
        &self,
        action: &'static str,
        outcome: &'static str,
        caller: &Caller,
        user: &str,
        reason: &str,
    ) {
        self.audit.record(&AuditEvent {
            action,
            outcome,
            user: user.into(),
            caller_uid: Some(caller.uid),
            reason: reason.into(),
            ..Default::default()
        });
    }

    /// [`Engine::begin`], with how long its reply must be held (see [`crate::pacing`]):
    /// a reply that asks for a code or refuses the login is, whoever the name is.
    pub fn begin_paced(
        &self,
        caller: &Caller,
        ctx: LoginContext,
    ) -> Paced<Result<(String, Step), ApiError>> {
        let started = crate::clock::monotonic();
        let reply = self.begin(caller, ctx);
        let held = matches!(&reply, Ok((_, step)) if !shows_an_account(step.action));
        self.paced(reply, held, started)
    }

    /// [`Engine::answer`], with how long its reply must be held: a refused code's is.
    pub fn answer_paced(
        &self,
        caller: &Caller,
        id: &str,
        response: &str,
    ) -> Paced<Result<Step, ApiError>> {
        let started = crate::clock::monotonic();
        let at_code = lock(&self.conversations)
            .get(id)
            .is_some_and(|c| c.stage == Stage::Code);
        let reply = self.answer(caller, id, response);
        // A right code leads to a pass or the "remember this device?" question.
        let held = at_code
            && matches!(&reply, Ok(step) if !shows_an_account(step.action)
                && step.action != Action::PromptVisible);
        self.paced(reply, held, started)
    }

    fn paced<T>(&self, reply: T, held: bool, started: std::time::Instant) -> Paced<T> {
        let hold = if held {
            crate::pacing::hold(self.timing_floor, crate::clock::monotonic() - started)
        } else {
            std::time::Duration::ZERO
        };
        Paced { reply, hold }
    }

    /// Starts a login: returns the conversation id ("" when the first step is final) and
    /// the first step.
    pub fn begin(
        &self,
        caller: &Caller,
        mut ctx: LoginContext,
    ) -> Result<(String, Step), ApiError> {
        validate_context(&ctx)?;
        if let Err(denied) = self.policy().may_act_for(caller, &ctx.user) {
            self.audit_login("denied", caller.uid, &ctx, &denied.0);
            return Err(ApiError::PermissionDenied(denied.0));
        }
        let now = self.clock.now();
        let account = match self.users.account(&ctx.user) {
            Ok(Some(account)) => account,
            // Not a user at all: asked and refused like a wrong code, never ignored.
            Ok(None) => return self.ask_without_factor(caller, ctx, now),
            Err(e) => return Ok((String::new(), self.lookup_failed(caller.uid, &ctx, &e))),
        };
        self.canonicalise(caller.uid, &mut ctx, account);
        let user = ctx.user.clone();
        let groups = grace::Groups::of(self.users.as_ref(), &user);
        match grace::in_scope(&self.config.scope, &ctx.user, &groups) {
            Ok(true) => {}
            Ok(false) => {
                self.audit_login("ignored", caller.uid, &ctx, "out of scope");
                return Ok((String::new(), Step::new(Action::OutOfScope)));
            }
            Err(e) => return Ok((String::new(), self.lookup_failed(caller.uid, &ctx, &e))),
        }
        let record = match self.with_store(|s| s.user(&ctx.user)) {
            Ok(r) => r,
            Err(e) => return Ok((String::new(), self.store_failed(caller.uid, &ctx, &e))),
        };
        let policy = self.config.service_policy(&ctx.service);
        let record = self.usable(record);
        if let Some(UserRecord { locked_until, .. }) = &record {
            if *locked_until > now {
                self.audit_login("locked", caller.uid, &ctx, "account locked");
                return Ok((String::new(), locked_step(locked_until - now)));
            }
        }
        if record.is_none() {
            return self.begin_unenrolled(caller, ctx, &groups, now);
        }
        // A FIDO2 key sshd checked, which an administrator registered for this user, is a
        // second factor of its own where policy says (a key made in software would pass
        // sshd's check alike: only a registered one counts).
        if let Some(key) = policy
            .accept_security_keys
            .then(|| identity::security_key(&ctx, caller, &policy))
            .flatten()
        {
            match self.with_store(|s| s.security_key_registered(&ctx.user, &key)) {
                Ok(true) => {
                    self.audit_login(
                        "success",
                        caller.uid,
                        &ctx,
                        &format!("registered security key {key} accepted by policy"),
                    );
                    return Ok((String::new(), Step::new(Action::Success)));
                }
                Ok(false) => self.audit_login(
                    "info",
                    caller.uid,
                    &ctx,
                    &format!("security key {key} is not registered for the user; code asked"),
                ),
                Err(e) => return Ok((String::new(), self.store_failed(caller.uid, &ctx, &e))),
            }
        }
        let identity = identity::identify(&ctx, caller, self.sessions.as_ref(), &policy);
        if let Some(device) = &identity {
            match self.trusted(caller.uid, &ctx, device, &policy, now) {
                Ok(Some(reason)) => {
                    self.audit_login("success", caller.uid, &ctx, reason);
                    return Ok((String::new(), Step::new(Action::Success)));
                }
                Ok(None) => {}
                Err(e) => return Ok((String::new(), self.store_failed(caller.uid, &ctx, &e))),
            }
        }
        let offer = self.sms_offer(
            &user,
            self_enrol::first_factor_passed(&ctx, caller, &self.config),
        );
        let step = match &offer {
            Some(offer) => Step::prompt(Action::PromptSecret, &offer.prompt(self.email_codes_on)),
            None => Step::prompt(Action::PromptSecret, self.code_prompt()),
        };
        let (id, step) = self.open(caller, ctx, Stage::Code, true, identity, now, step)?;
        if let Some(conv) = lock(&self.conversations).get_mut(&id) {
            conv.sms = offer;
        }
        Ok((id, step))
    }

    /// A user with no factor: a grace period, a refusal after the deadline, or (with no
    /// deadline at all) what `[login] unenrolled` says.
    fn begin_unenrolled(
        &self,
        caller: &Caller,
        ctx: LoginContext,
        groups: &grace::Groups<'_>,
        now: i64,
    ) -> Result<(String, Step), ApiError> {
        let deferrals = match self.with_store(|s| s.deferrals_of(&ctx.user)) {
            Ok(d) => d,
            Err(e) => return Ok((String::new(), self.store_failed(caller.uid, &ctx, &e))),
        };
        let global = self.config.enrolment.deadline.map(|d| d.0);
        let deadline = match grace::deadline_for(global, &deferrals, &ctx.user, groups) {
            Ok(d) => d,
            Err(e) => return Ok((String::new(), self.lookup_failed(caller.uid, &ctx, &e))),
        };
        match deadline {
            Some(deadline) if now < deadline => {
                let text = grace::reminder(&ctx.user, deadline, now);
                self.audit_login(
                    "grace",
                    caller.uid,
                    &ctx,
                    &format!("not enrolled; grace until {}", grace::date_of(deadline)),
                );
                let ctx = match self.offer_enrolment(caller, ctx.clone(), &text, now)? {
                    Some(offered) => return Ok(offered),
                    None => ctx,
                };
                if identity::is_ssh(&ctx) {
                    let step = Step::prompt(
                        Action::PromptVisible,
                        &format!("{text}\nPress Enter to continue: "),
                    );
                    return self.open(caller, ctx, Stage::GraceNotice, false, None, now, step);
                }
                Ok((String::new(), Step::new(Action::Success).info(text)))
            }
            Some(deadline) => {
                self.audit_login(
                    "denied",
                    caller.uid,
                    &ctx,
                    "not enrolled; enrolment deadline passed",
                );
                Ok((
                    String::new(),
                    Step::new(Action::Denied).error(grace::overdue(&ctx.user, deadline)),
                ))
            }
            None if self.config.login.unenrolled == Unenrolled::Ignore => {
                self.audit_login("ignored", caller.uid, &ctx, "not enrolled; policy: ignore");
                Ok((String::new(), Step::new(Action::OutOfScope)))
            }
            None => self.ask_without_factor(caller, ctx, now),
        }
    }

    /// A name with no factor under `unenrolled = "deny"`, or no account at all: asked
    /// for a code like an enrolled user, and refused before any prompt while its counted
    /// wrong codes keep it locked — exactly as an enrolled account would be.
    fn ask_without_factor(
        &self,
        caller: &Caller,
        ctx: LoginContext,
        now: i64,
    ) -> Result<(String, Step), ApiError> {
        match self.with_store(|s| s.phantom_locked_until(&ctx.user)) {
            Ok(until) if until > now => {
                self.audit_login("locked", caller.uid, &ctx, "no factor; locked");
                Ok((String::new(), locked_step(until - now)))
            }
            Ok(_) => {
                let step = Step::prompt(Action::PromptSecret, self.code_prompt());
                self.open(caller, ctx, Stage::Code, false, None, now, step)
            }
            Err(e) => Ok((String::new(), self.store_failed(caller.uid, &ctx, &e))),
        }
    }

    /// Whether a session window or remembered device of this identity lets the login
    /// pass; a pass for a root caller counts as use. A window or remembered device whose
    /// user changed password since is revoked on the spot.
    fn trusted(
        &self,
        caller_uid: u32,
        ctx: &LoginContext,
        device: &DeviceIdentity,
        policy: &ServicePolicy,
        now: i64,
    ) -> Result<Option<&'static str>, StoreError> {
        let mut store = self.store()?;
        let records = store.trust_for(&ctx.user, &device.hash_for(&ctx.user))?;
        let class = service_class(&ctx.service);
        let mut stamp: Option<Option<String>> = None;
        // A window or device serves only the class of service that earned it.
        for r in records
            .into_iter()
            .filter(|r| service_class(&r.service) == class)
        {
            let current = stamp
                .get_or_insert_with(|| self.users.password_stamp(&ctx.user))
                .clone();
            match trust::judge(&r, policy, now, current.as_deref()) {
                Judgement::Valid => {
                    // Only a login run by root (sshd, sudo, login) is use: a user's own
                    // process could otherwise ask every minute and never idle out. Use is
                    // written at most once a minute, so a login in a window is read-only
                    // (it passes while another writer holds the database) and idle
                    // expiry comes at most a minute early, never late.
                    if caller_uid == 0 && now - r.last_used >= LAST_USED_PRECISION_SECONDS {
                        store.touch_trust(&r.id, now)?;
                    }
                    return Ok(Some(match r.kind {
                        TrustKind::Session => "trusted session window",
                        TrustKind::Device => "remembered device",
                    }));
                }
                Judgement::PasswordChanged => {
                    store.revoke_trust(&ctx.user, Some(&r.id))?;
                    self.audit_login(
                        "revoked",
                        caller_uid,
                        ctx,
                        match r.kind {
                            TrustKind::Session => "session window ended: password changed",
                            TrustKind::Device => "remembered device ended: password changed",
                        },
                    );
                }
                Judgement::Lapsed => {}
            }
        }
        Ok(None)
    }

    #[allow(clippy::too_many_arguments)]
    fn open(
        &self,
        caller: &Caller,
        context: LoginContext,
        stage: Stage,
        enrolled: bool,
        identity: Option<DeviceIdentity>,
        now: i64,
        step: Step,
    ) -> Result<(String, Step), ApiError> {
        let id = random_hex(self.random.as_ref(), 16).map_err(ApiError::Store)?;
        let mut conversations = lock(&self.conversations);
        conversations.retain(|_, c| c.expires_at > now);
        let mine = conversations
            .values()
            .filter(|c| c.owner == caller.bus_name)
            .count();
        let full = if caller.uid == 0 {
            conversations.len() >= MAX_CONVERSATIONS
        } else {
            conversations.len() >= MAX_CONVERSATIONS - ROOT_RESERVE
                || conversations
                    .values()
                    .filter(|c| c.caller_uid == caller.uid)
                    .count()
                    >= self.config.daemon.max_conversations_per_user.0 as usize
        };
        if mine >= MAX_CONVERSATIONS_PER_CLIENT || full {
            return Err(ApiError::PermissionDenied(
                "too many open conversations".into(),
            ));
        }
        conversations.insert(
            id.clone(),
            Conversation {
                owner: caller.bus_name.clone(),
                stage,
                identity,
                caller_uid: caller.uid,
                context,
                enrolled,
                tries_left: self.config.login.max_tries.get(),
                enrolling: None,
                mailed: None,
                mail_requests: 0,
                sms: None,
                texted: TextedCodes::default(),
                report: None,
                texts_asked: 0,
                admitted: None,
                expires_at: now + i64::from(self.config.login.conversation_timeout_seconds.get()),
            },
        );
        Ok((id, step))
    }

    /// From here on the login is the account's: its canonical name keys the factor,
    /// the lockout, trust and grace. A different PAM name is audited once.
    fn canonicalise(&self, caller_uid: u32, ctx: &mut LoginContext, account: Account) {
        if account.name != ctx.user {
            self.audit_login(
                "alias",
                caller_uid,
                ctx,
                &format!("is account {:?} (uid {})", account.name, account.uid),
            );
            ctx.user = account.name;
        }
    }

    fn lookup_failed(&self, caller_uid: u32, ctx: &LoginContext, e: &LookupError) -> Step {
        self.audit_login("error", caller_uid, ctx, &e.to_string());
        Step::new(Action::Error).error(NO_DIRECTORY)
    }

    fn store_failed(&self, caller_uid: u32, ctx: &LoginContext, e: &StoreError) -> Step {
        self.audit_login("error", caller_uid, ctx, &e.to_string());
        Step::new(Action::Error).error(UNAVAILABLE)
    }

    /// Takes the answer to the last prompt of conversation `id` and returns the next step.
    pub fn answer(&self, caller: &Caller, id: &str, response: &str) -> Result<Step, ApiError> {
        let now = self.clock.now();
        let conv = {
            let mut conversations = lock(&self.conversations);
            match conversations.remove(id) {
                Some(c) if c.owner == caller.bus_name && c.expires_at > now => c,
                Some(c) if c.owner != caller.bus_name => {
                    // Someone else's id: leave it where it was.
                    conversations.insert(id.to_owned(), c);
                    return Err(ApiError::NoConversation);
                }
                _ => return Err(ApiError::NoConversation),
            }
        };
        match conv.stage {
            Stage::GraceNotice => Ok(self.grace_acknowledged(&conv, now)),
            Stage::SelfEnrol => Ok(self.self_enrol(id, conv, response, now)),
            Stage::RecoveryShown => Ok(Step::new(Action::Success)),
            Stage::Remember => Ok(self.remember(conv, response, now)),
            Stage::Code => self.check_code(id, conv, response, now),
        }
    }

    fn check_code(
        &self,
        id: &str,
        mut conv: Conversation,
        response: &str,
        now: i64,
    ) -> Result<Step, ApiError> {
        if conv.sms.is_some() && response.trim().eq_ignore_ascii_case(sms_codes::KEYWORD) {
            return Ok(self.text_code(id, conv, now));
        }
        if self.email_codes_on && response.trim().is_empty() {
            return Ok(self.mail_code(id, conv, now));
        }
        // Overlong input is simply not a code; it is counted like any wrong one.
        let response = if response.len() > MAX_RESPONSE_LEN {
            ""
        } else {
            response
        };
        // Names without a factor go through the same attempt: counted, made to wait and
        // locked alike (the store keeps them as phantoms), so nothing tells them apart.
        let source = source_of(&conv.context, conv.caller_uid);
        let recovery = match self.recovery_code_matching(&conv, response, now) {
            Ok(r) => r,
            Err(e) => return Ok(self.store_failed(conv.caller_uid, &conv.context, &e)),
        };
        let mailed_code_used = std::cell::Cell::new(false);
        let texted_code_used = std::cell::Cell::new(false);
        let attempt = self.with_store(|s| {
            s.attempt(
                &conv.context.user,
                &source,
                now,
                &self.lockout,
                &|user: &UserRecord| match (&recovery, &conv.mailed) {
                    (Some(id), _) => Ok(Some(Match::Recovery(id.clone()))),
                    (_, Some(m)) if m.matches(response, now, user.generation) => {
                        mailed_code_used.set(true);
                        Ok(Some(Match::Once))
                    }
                    _ if conv.texted.matches(response, now, user.generation) => {
                        texted_code_used.set(true);
                        Ok(Some(Match::Once))
                    }
                    _ => self.factor(user.kind).verify(&user.secret, response, now),
                },
            )
        });
        let (mailed_code_used, texted_code_used) = (mailed_code_used.get(), texted_code_used.get());
        let (caller_uid, ctx) = (conv.caller_uid, &conv.context);
        let failed = match attempt {
            Ok(Attempt::Accepted {
                activated,
                generation,
            }) => {
                self.audit_login(
                    "success",
                    caller_uid,
                    ctx,
                    if activated {
                        "code verified; factor activated"
                    } else if recovery.is_some() {
                        "recovery code used"
                    } else if mailed_code_used {
                        "e-mailed code verified"
                    } else if texted_code_used {
                        "texted code verified"
                    } else {
                        "code verified"
                    },
                );
                conv.mailed = None;
                conv.texted.clear();
                // Only a login with a device identity can leave trust behind, and only
                // trust needs the password fingerprint: the others skip the shadow look-up.
                conv.admitted = conv.identity.is_some().then(|| Admitted {
                    generation,
                    password_stamp: self.users.password_stamp(&conv.context.user),
                });
                if activated {
                    self.notify(&ctx.user, Change::FactorActivated, login_detail(ctx));
                }
                if recovery.is_some() {
                    self.notify(&ctx.user, Change::RecoveryCodeUsed, login_detail(ctx));
                    let left = self
                        .with_store(|s| s.recovery_codes_left(&conv.context.user))
                        .unwrap_or(0);
                    let step = self.after_success(id, conv, activated, now);
                    return Ok(step.info(format!(
                        "Recovery code accepted; it no longer works. {left} left: ask your administrator for new ones if you lost your phone."
                    )));
                }
                return Ok(self.after_success(id, conv, activated, now));
            }
            Ok(Attempt::Locked { until }) => {
                self.audit_login("locked", caller_uid, ctx, "account locked");
                return Ok(locked_step(until - now));
            }
            Ok(Attempt::Throttled { until }) => {
                self.audit_login(
                    "throttled",
                    caller_uid,
                    ctx,
                    "too many wrong codes from this source; code not checked",
                );
                return Ok(throttled_step(until - now));
            }
            Ok(Attempt::Rejected {
                locked_until: Some(until),
                ..
            }) => {
                self.audit_login(
                    "locked",
                    caller_uid,
                    ctx,
                    "wrong code; failure limit reached, account locked, trust revoked",
                );
                if conv.enrolled {
                    self.notify(&ctx.user, Change::Locked, login_detail(ctx));
                }
                return Ok(locked_step(until - now));
            }
            Ok(Attempt::Rejected { .. }) if !conv.enrolled => "no factor",
            Ok(Attempt::Rejected { replay: true, .. }) => "code already used",
            Ok(Attempt::Rejected { replay: false, .. }) => "wrong code",
            Err(e) => return Ok(self.store_failed(caller_uid, ctx, &e)),
        };
        self.audit_login("failure", caller_uid, ctx, failed);
        conv.tries_left = conv.tries_left.saturating_sub(1);
        if conv.tries_left == 0 {
            return Ok(Step::new(Action::MaxTries).error(TOO_MANY));
        }
        let undelivered = conv
            .mailed
            .as_ref()
            .is_some_and(|m| matches!(m.delivery.state(), DeliveryState::Failed(_)));
        let prompt = self.prompt_of(&conv);
        lock(&self.conversations).insert(id.to_owned(), conv);
        let step = Step::prompt(Action::PromptSecret, &prompt).error(WRONG_CODE);
        Ok(if undelivered {
            step.error(NOT_SENT)
        } else {
            step
        })
    }

    /// The name of the recovery code `response` is, if it is one of this user's and its
    /// secret part matches (Argon2id, checked here and not in the store's transaction,
    /// which would hold the write lock for its ~20 ms). A locked account's is not looked at.
    fn recovery_code_matching(
        &self,
        conv: &Conversation,
        response: &str,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        let Some((id, secret)) = crate::recovery::parse(response).filter(|_| conv.enrolled) else {
            return Ok(None);
        };
        let user = &conv.context.user;
        let stored = self.with_store(|s| match s.user(user)? {
            Some(r) if r.locked_until <= now => s.recovery_code(user, &id),
            _ => Ok(None),
        })?;
        match stored {
            Some(code) => Ok(crate::recovery::verify(&code, &secret)
                .map_err(StoreError::Unavailable)?
                .then_some(id)),
            None => Ok(None),
        }
    }

    /// An empty answer with e-mailed codes on: a new code for this login (replacing any
    /// earlier one) to the address on record, if there is one, the user's factor is the
    /// address (or `[email_codes] app_users` lets app users have codes too), and mails
    /// are left this hour. Whatever of that holds, the login goes on the same way (a
    /// decoy code stands in for one that was not sent), so nothing tells who has an
    /// address. Asking is not a try and never clears a wrong code's count.
    fn mail_code(&self, id: &str, mut conv: Conversation, now: i64) -> Step {
        let (caller_uid, ctx) = (conv.caller_uid, conv.context.clone());
        let keep = |conv: Conversation, step: Step| {
            lock(&self.conversations).insert(id.to_owned(), conv);
            step
        };
        if let Some(DeliveryState::Failed(why)) = conv.mailed.as_ref().map(|m| m.delivery.state()) {
            self.audit_login(
                "error",
                caller_uid,
                &ctx,
                &format!("e-mailed code not delivered: {why}"),
            );
            conv.mailed = None;
            return keep(
                conv,
                Step::prompt(Action::PromptSecret, self.code_prompt()).error(NOT_SENT),
            );
        }
        let refused = |conv: &Conversation| {
            let prompt = if conv.mailed.is_some() {
                EMAILED_PROMPT
            } else {
                self.code_prompt()
            };
            Step::prompt(Action::PromptSecret, prompt).error(NO_MORE_MAILS)
        };
        conv.mail_requests += 1;
        if conv.mail_requests > MAIL_REQUESTS_PER_LOGIN {
            let step = refused(&conv);
            return keep(conv, step);
        }
        let sent = Step::prompt(Action::PromptSecret, EMAILED_PROMPT).info(MAYBE_SENT);
        let valid = i64::from(self.config.email_codes.valid_minutes.get()) * 60;
        let user = ctx.user.clone();
        let looked_up = self.with_store(|s| {
            if !conv.enrolled {
                return Ok((s.phantom_locked_until(&user)?, None));
            }
            let Some(r) = s.user(&user)? else {
                return Ok((0, None));
            };
            let mailable = r.kind == FactorKind::Email || self.config.email_codes.app_users;
            let to = if mailable { s.email_of(&user)? } else { None };
            Ok((r.locked_until, to.map(|to| (to, r.generation))))
        });
        let (to, generation) = match looked_up {
            Ok((until, _)) if until > now => {
                self.audit_login(
                    "locked",
                    caller_uid,
                    &ctx,
                    "account locked; no code e-mailed",
                );
                return locked_step(until - now);
            }
            Ok((_, Some(found))) => found,
            Ok((_, None)) => {
                self.audit_login(
                    "email-code",
                    caller_uid,
                    &ctx,
                    "no address for codes on record; nothing sent",
                );
                return match MailedCode::decoy(self.random.as_ref(), now, valid) {
                    Ok(decoy) => {
                        conv.mailed = Some(decoy);
                        keep(conv, sent)
                    }
                    Err(e) => self.store_failed(caller_uid, &ctx, &StoreError::Unavailable(e)),
                };
            }
            Err(e) => return self.store_failed(caller_uid, &ctx, &e),
        };
        let per_hour = self.config.email_codes.per_hour.get();
        let source = source_of(&ctx, caller_uid);
        let per_user = per_hour.saturating_mul(4);
        match self.with_store(|s| s.take_mail_turn(&user, &source, now, per_hour, per_user)) {
            Ok(true) => {}
            Ok(false) => {
                self.audit_login(
                    "email-code",
                    caller_uid,
                    &ctx,
                    "refused: the hourly limit of e-mailed codes is reached",
                );
                let step = refused(&conv);
                return keep(conv, step);
            }
            Err(e) => return self.store_failed(caller_uid, &ctx, &e),
        }
        let (mailed, code) = match MailedCode::new(self.random.as_ref(), now, valid, generation) {
            Ok(m) => m,
            Err(e) => return self.store_failed(caller_uid, &ctx, &StoreError::Unavailable(e)),
        };
        let time = utc_time(now);
        let source = mail_source(&ctx, caller_uid);
        let about = email_codes::About {
            user: &user,
            host: &self.hostname,
            service: &ctx.service,
            source: &source,
            time: &time,
        };
        let mail = email_codes::message(&self.config.email_codes, &to, &about, &code);
        self.courier.dispatch(&user, mail, mailed.delivery.clone());
        // A new code replaces the one before: only the latest works.
        conv.mailed = Some(mailed);
        self.audit_login("email-code", caller_uid, &ctx, "code e-mailed");
        keep(conv, sent)
    }

    /// After a right code: open a session window for this device, and offer to remember
    /// it where policy allows and the identity is strong enough.
    fn after_success(&self, id: &str, mut conv: Conversation, activated: bool, now: i64) -> Step {
        let ctx = &conv.context;
        let policy = self.config.service_policy(&ctx.service);
        let confirmed = |step: Step| {
            if activated {
                step.info("Your authenticator app is now confirmed.")
            } else {
                step
            }
        };
        let (Some(device), Some(admitted)) = (conv.identity.clone(), conv.admitted.clone()) else {
            return confirmed(Step::new(Action::Success));
        };
        if policy.session_seconds > 0 {
            let stored = trust::new_record(
                self.random.as_ref(),
                TrustKind::Session,
                ctx,
                &device,
                &policy,
                now,
                // Read once, when the code was checked.
                admitted.password_stamp.clone(),
            )
            .map_err(StoreError::Unavailable)
            .and_then(|r| self.with_store(|s| s.put_trust_if(&r, admitted.generation)));
            match stored {
                Ok(true) => {}
                Ok(false) => return self.changed_meanwhile(&conv),
                Err(e) => {
                    // The code was right; only the convenience is lost.
                    self.audit_login(
                        "error",
                        conv.caller_uid,
                        ctx,
                        &format!("session window not recorded: {e}"),
                    );
                }
            }
        }
        // Without a password fingerprint a password change could not end the trust.
        if !(device.rememberable && policy.remember_device) || admitted.password_stamp.is_none() {
            return confirmed(Step::new(Action::Success));
        }
        let days = policy.remember_seconds / 86400;
        conv.stage = Stage::Remember;
        lock(&self.conversations).insert(id.to_owned(), conv);
        confirmed(Step::prompt(
            Action::PromptVisible,
            &format!("Trust this device for {days} days? [y/N] "),
        ))
    }

    /// The answer to "Trust this device?". Whatever it is, the state that admitted the
    /// login must still hold (checklist 28): a new factor, a lock, a revocation or a
    /// password change while the question was open ends the login with a refusal.
    fn remember(&self, conv: Conversation, response: &str, now: i64) -> Step {
        let ctx = &conv.context;
        let (Some(device), Some(admitted)) = (conv.identity.as_ref(), conv.admitted.as_ref())
        else {
            return Step::new(Action::Error).error(UNAVAILABLE);
        };
        if self.users.password_stamp(&ctx.user) != admitted.password_stamp {
            return self.changed_meanwhile(&conv);
        }
        let yes = matches!(response.trim().to_ascii_lowercase().as_str(), "y" | "yes");
        if !yes {
            return match self.with_store(|s| s.still(&ctx.user, admitted.generation, now)) {
                Ok(true) => Step::new(Action::Success),
                Ok(false) => self.changed_meanwhile(&conv),
                Err(e) => self.store_failed(conv.caller_uid, ctx, &e),
            };
        }
        let policy = self.config.service_policy(&ctx.service);
        let stored = admitted
            .password_stamp
            .clone()
            .ok_or_else(|| StoreError::Unavailable("no password fingerprint".into()))
            .and_then(|stamp| {
                trust::new_record(
                    self.random.as_ref(),
                    TrustKind::Device,
                    ctx,
                    device,
                    &policy,
                    now,
                    Some(stamp),
                )
                .map_err(StoreError::Unavailable)
            })
            .and_then(|r| self.with_store(|s| s.put_trust_if(&r, admitted.generation)));
        let stored = match stored {
            Ok(false) => return self.changed_meanwhile(&conv),
            Ok(true) => Ok(()),
            Err(e) => Err(e),
        };
        match stored {
            Ok(()) => {
                let reason = format!(
                    "device remembered for {} days: {}",
                    policy.remember_seconds / 86400,
                    device.description
                );
                self.audit_login("trusted", conv.caller_uid, ctx, &reason);
                self.notify(
                    &ctx.user,
                    Change::DeviceRemembered,
                    format!("{}: {}", login_detail(ctx), device.description),
                );
                Step::new(Action::Success).info("This device is now trusted.")
            }
            Err(e) => {
                self.audit_login(
                    "error",
                    conv.caller_uid,
                    ctx,
                    &format!("device not remembered: {e}"),
                );
                Step::new(Action::Success)
                    .error("This device could not be remembered; you will be asked next time.")
            }
        }
    }

    /// Ends a conversation whose admitting state changed while it waited.
    fn changed_meanwhile(&self, conv: &Conversation) -> Step {
        self.audit_login(
            "denied",
            conv.caller_uid,
            &conv.context,
            "the factor, lock, trust or password changed while the login waited; refused",
        );
        Step::new(Action::Denied).error(CHANGED)
    }

    /// The answer to the grace reminder: passes only if the user is still within a grace
    /// period now (a deferral cleared, or a factor issued, while it was shown, refuses).
    fn grace_acknowledged(&self, conv: &Conversation, now: i64) -> Step {
        let ctx = &conv.context;
        let (record, deferrals) = {
            let store = match self.store() {
                Ok(s) => s,
                Err(e) => return self.store_failed(conv.caller_uid, ctx, &e),
            };
            match (store.user(&ctx.user), store.deferrals_of(&ctx.user)) {
                (Ok(r), Ok(d)) => (r, d),
                (Err(e), _) | (_, Err(e)) => return self.store_failed(conv.caller_uid, ctx, &e),
            }
        };
        let groups = grace::Groups::of(self.users.as_ref(), &ctx.user);
        let global = self.config.enrolment.deadline.map(|d| d.0);
        match grace::deadline_for(global, &deferrals, &ctx.user, &groups) {
            Ok(Some(deadline)) if self.usable(record).is_none() && now < deadline => {
                Step::new(Action::Success)
            }
            Ok(_) => self.changed_meanwhile(conv),
            Err(e) => self.lookup_failed(conv.caller_uid, ctx, &e),
        }
    }

    /// Forgets what can no longer be used: lapsed trust records, expired conversations.
    /// Run now and then; the store's queries already ignore lapsed rows.
    pub fn housekeeping(&self) -> Result<usize, StoreError> {
        let now = self.clock.now();
        lock(&self.conversations).retain(|_, c| c.expires_at > now);
        let mut purged = 0;
        loop {
            let batch = self.with_store(|s| s.purge_expired_trust(now, SWEEP_BATCH))?;
            purged += batch;
            if batch < SWEEP_BATCH as usize {
                break;
            }
        }
        self.with_store(|s| s.purge_stale_counts(now))?;
        Ok(purged)
    }

    /// Re-keys records stored under a name that is not its account's canonical name
    /// (written before names were canonical), so that a variant spelling's factor is not
    /// lost — a lost factor would read as "not enrolled". Run once at start-up; returns
    /// what it did, for the log.
    pub fn canonicalise_stored_names(&self) -> Result<Vec<String>, StoreError> {
        let mut store = self.store()?;
        let mut names = store.user_names()?;
        names.extend(
            store
                .deferrals()?
                .into_iter()
                .map(|d| d.subject)
                .filter(|s| !s.starts_with('@')),
        );
        names.sort();
        names.dedup();
        let mut done = Vec::new();
        for name in names {
            match self.users.account(&name) {
                Ok(Some(account)) if account.name != name => {
                    let moved = store.rename_user(&name, &account.name)?;
                    done.push(if moved {
                        format!("records of {name:?} moved to account {:?}", account.name)
                    } else {
                        format!(
                            "records of {name:?} left alone: account {:?} has its own",
                            account.name
                        )
                    });
                }
                Ok(_) => {}
                Err(e) => done.push(format!("{name:?} not checked: {e}")),
            }
        }
        Ok(done)
    }

    /// Ends every conversation of one connection (it closed): a conversation never
    /// outlives the connection that began it.
    pub fn end_conversations_of(&self, owner: &str) {
        lock(&self.conversations).retain(|_, c| c.owner != owner);
    }

    /// Drops a conversation the caller owns.
    pub fn cancel(&self, caller: &Caller, id: &str) {
        let mut conversations = lock(&self.conversations);
        if conversations
            .get(id)
            .is_some_and(|c| c.owner == caller.bus_name)
        {
            conversations.remove(id);
        }
    }
}

pub(crate) fn locked_step(seconds_left: i64) -> Step {
    Step::new(Action::Denied).error(format!(
        "Too many wrong codes: this account is locked for {} more minute(s). An administrator can unlock it.",
        minutes(seconds_left)
    ))
}

fn minutes(seconds_left: i64) -> i64 {
    (seconds_left.max(1) + 59) / 60
}

pub(crate) fn throttled_step(seconds_left: i64) -> Step {
    Step::new(Action::Denied).error(format!(
        "Too many wrong codes from here: try again in {} minute(s).",
        minutes(seconds_left)
    ))
}

/// A login in words for a notice: the service and where it came from.
fn login_detail(ctx: &LoginContext) -> String {
    let mut d = format!("{} login", ctx.service);
    if !ctx.rhost.is_empty() {
        d.push_str(&format!(" from {}", ctx.rhost));
    } else if !ctx.tty.is_empty() {
        d.push_str(&format!(" on {}", ctx.tty));
    }
    d
}

/// Where a login comes from, for the e-mail with its code: the remote address (and the
/// SSH key that passed, which only root's sshd can vouch for), else the terminal.
fn mail_source(ctx: &LoginContext, caller_uid: u32) -> String {
    let key = identity::ssh_key_fingerprint(&ctx.ssh_auth_info)
        .filter(|_| caller_uid == 0 && identity::is_ssh(ctx));
    match (ctx.rhost.as_str(), key) {
        ("", _) if !ctx.tty.is_empty() => format!("terminal {}", ctx.tty),
        ("", _) => "this machine".into(),
        (host, Some(key)) => format!("{host} with SSH key {key}"),
        (host, None) => host.to_owned(),
    }
}

/// `2026-12-03 09:00:00 UTC`.
fn utc_time(unix: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix.max(0) as u64);
    humantime::format_rfc3339_seconds(t)
        .to_string()
        .replace('T', " ")
        .replace('Z', " UTC")
}

/// Where wrong codes come from, for the per-source wait: a user's own process by its
/// uid (it could name any address), a root caller (sshd, sudo) by the remote address it
/// reports, else by the requesting user PAM names (su, sudo).
pub(crate) fn source_of(ctx: &LoginContext, caller_uid: u32) -> String {
    if caller_uid != 0 {
        format!("uid {caller_uid}")
    } else if !ctx.rhost.is_empty() {
        format!("host {}", ctx.rhost)
    } else {
        format!("local {}", ctx.ruser)
    }
}

pub(crate) fn store_error(e: crate::store::StoreError) -> ApiError {
    ApiError::Store(e.to_string())
}

pub(crate) fn check_user_name(user: &str) -> Result<(), ApiError> {
    if valid_user_name(user) {
        Ok(())
    } else {
        Err(ApiError::InvalidInput("invalid user name".into()))
    }
}

fn printable(field: &str, value: &str, max: usize, allow_newlines: bool) -> Result<(), ApiError> {
    if value.len() > max {
        return Err(ApiError::InvalidInput(format!(
            "{field} is longer than {max} bytes"
        )));
    }
    if value
        .chars()
        .any(|c| c.is_control() && !(allow_newlines && c == '\n'))
    {
        return Err(ApiError::InvalidInput(format!(
            "{field} contains control characters"
        )));
    }
    Ok(())
}

/// Every field of the context is checked before anything else looks at it.
pub fn validate_context(ctx: &LoginContext) -> Result<(), ApiError> {
    check_user_name(&ctx.user)?;
    if ctx.service.is_empty() {
        return Err(ApiError::InvalidInput("service is empty".into()));
    }
    printable("service", &ctx.service, 64, false)?;
    printable("rhost", &ctx.rhost, MAX_FIELD_LEN, false)?;
    printable("tty", &ctx.tty, MAX_FIELD_LEN, false)?;
    printable("ruser", &ctx.ruser, MAX_FIELD_LEN, false)?;
    printable("ssh_auth_info", &ctx.ssh_auth_info, MAX_AUTH_INFO_LEN, true)?;
    Ok(())
}

mod self_enrol;
mod sms_codes;
mod store_admin;

#[cfg(test)]
mod tests;
