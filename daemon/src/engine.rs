//! Every decision twofoldd makes: the login conversation (begin/answer) and the
//! management calls. Synchronous and free of D-Bus, with clock, randomness, users, store
//! and audit injected; `service` runs it off the async executor.

use crate::audit::{AuditEvent, AuditSink};
use crate::authz::{Caller, Policy, UserDb, valid_user_name};
use crate::clock::Clock;
use crate::otp::{self, OtpParams};
use crate::random::{Random, random_hex};
use crate::store::{Attempt, FactorState, LockoutPolicy, Store, UserRecord};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use twofold_config::{Config, Unenrolled};
use twofold_protocol::{
    Action, EnrolmentOffer, LoginContext, MAX_AUTH_INFO_LEN, MAX_FIELD_LEN, MAX_RESPONSE_LEN, Step,
    UserStatus,
};

pub const CODE_PROMPT: &str = "Verification code: ";
const WRONG_CODE: &str = "Wrong code, try again.";
const TOO_MANY: &str = "Wrong code. Too many tries.";
const UNAVAILABLE: &str = "twofold cannot check codes right now. Contact your administrator.";
/// Open conversations one bus connection may hold, and in all.
const MAX_CONVERSATIONS_PER_CLIENT: usize = 8;
const MAX_CONVERSATIONS: usize = 4096;

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

struct Conversation {
    owner: String,
    caller_uid: u32,
    context: LoginContext,
    /// False for users with no factor under `unenrolled = "deny"`: they are asked for a
    /// code like everyone else, so the prompts do not tell who is enrolled.
    enrolled: bool,
    tries_left: u32,
    expires_at: i64,
}

pub struct Engine {
    config: Config,
    params: OtpParams,
    lockout: LockoutPolicy,
    store: Mutex<Store>,
    clock: Arc<dyn Clock>,
    random: Arc<dyn Random>,
    users: Arc<dyn UserDb>,
    audit: Arc<dyn AuditSink>,
    /// Shown in authenticator apps as `user@hostname`.
    hostname: String,
    conversations: Mutex<HashMap<String, Conversation>>,
}

pub struct Parts {
    pub config: Config,
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub random: Arc<dyn Random>,
    pub users: Arc<dyn UserDb>,
    pub audit: Arc<dyn AuditSink>,
    pub hostname: String,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves data that is still consistent (every store
    // change is one transaction), so keep serving rather than failing every login.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Engine {
    pub fn new(p: Parts) -> Engine {
        let l = &p.config.lockout;
        Engine {
            params: OtpParams::from_config(&p.config.totp),
            lockout: LockoutPolicy {
                max_failures: l.max_failures.get(),
                base_seconds: i64::from(l.base_seconds.get()),
                max_seconds: i64::from(l.max_seconds.get()),
            },
            config: p.config,
            store: Mutex::new(p.store),
            clock: p.clock,
            random: p.random,
            users: p.users,
            audit: p.audit,
            hostname: p.hostname,
            conversations: Mutex::new(HashMap::new()),
        }
    }

    fn policy(&self) -> Policy<'_> {
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

    fn audit_manage(
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

    /// Starts a login: returns the conversation id ("" when the first step is final) and
    /// the first step.
    pub fn begin(&self, caller: &Caller, ctx: LoginContext) -> Result<(String, Step), ApiError> {
        validate_context(&ctx)?;
        if let Err(denied) = self.policy().may_act_for(caller, &ctx.user) {
            self.audit_login("denied", caller.uid, &ctx, &denied.0);
            return Err(ApiError::PermissionDenied(denied.0));
        }
        let now = self.clock.now();
        let record = match lock(&self.store).user(&ctx.user) {
            Ok(r) => r,
            Err(e) => {
                self.audit_login("error", caller.uid, &ctx, &e.to_string());
                return Ok((String::new(), Step::new(Action::Error).error(UNAVAILABLE)));
            }
        };
        let enrolled = match record {
            None if self.config.login.unenrolled == Unenrolled::Ignore => {
                self.audit_login("ignored", caller.uid, &ctx, "not enrolled; policy: ignore");
                return Ok((String::new(), Step::new(Action::OutOfScope)));
            }
            None => false,
            Some(UserRecord { locked_until, .. }) if locked_until > now => {
                self.audit_login("locked", caller.uid, &ctx, "account locked");
                return Ok((String::new(), locked_step(locked_until - now)));
            }
            Some(_) => true,
        };
        let id = random_hex(self.random.as_ref(), 16).map_err(ApiError::Store)?;
        let mut conversations = lock(&self.conversations);
        conversations.retain(|_, c| c.expires_at > now);
        let mine = conversations
            .values()
            .filter(|c| c.owner == caller.bus_name)
            .count();
        if mine >= MAX_CONVERSATIONS_PER_CLIENT || conversations.len() >= MAX_CONVERSATIONS {
            return Err(ApiError::PermissionDenied(
                "too many open conversations".into(),
            ));
        }
        conversations.insert(
            id.clone(),
            Conversation {
                owner: caller.bus_name.clone(),
                caller_uid: caller.uid,
                context: ctx,
                enrolled,
                tries_left: self.config.login.max_tries.get(),
                expires_at: now + i64::from(self.config.login.conversation_timeout_seconds.get()),
            },
        );
        Ok((id, Step::prompt(Action::PromptSecret, CODE_PROMPT)))
    }

    /// Takes the answer to the last prompt of conversation `id` and returns the next step.
    pub fn answer(&self, caller: &Caller, id: &str, response: &str) -> Result<Step, ApiError> {
        let now = self.clock.now();
        let mut conv = {
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
        // Overlong input is simply not a code; it is counted like any wrong one.
        let response = if response.len() > MAX_RESPONSE_LEN {
            ""
        } else {
            response
        };
        let attempt = if conv.enrolled {
            let params = self.params;
            lock(&self.store).attempt(&conv.context.user, now, &self.lockout, |user| {
                otp::matching_step(&params, &user.secret, response, now)
            })
        } else {
            Ok(Attempt::NotEnrolled)
        };
        let (caller_uid, ctx) = (conv.caller_uid, &conv.context);
        let failed = match attempt {
            Ok(Attempt::Accepted { activated }) => {
                self.audit_login(
                    "success",
                    caller_uid,
                    ctx,
                    if activated {
                        "code verified; factor activated"
                    } else {
                        "code verified"
                    },
                );
                let step = Step::new(Action::Success);
                return Ok(if activated {
                    step.info("Your authenticator app is now confirmed.")
                } else {
                    step
                });
            }
            Ok(Attempt::Locked { until }) => {
                self.audit_login("locked", caller_uid, ctx, "account locked");
                return Ok(locked_step(until - now));
            }
            Ok(Attempt::Rejected {
                locked_until: Some(until),
                ..
            }) => {
                self.audit_login(
                    "locked",
                    caller_uid,
                    ctx,
                    "wrong code; failure limit reached, account locked",
                );
                return Ok(locked_step(until - now));
            }
            Ok(Attempt::Rejected { replay: true, .. }) => "code already used",
            Ok(Attempt::Rejected { replay: false, .. }) => "wrong code",
            Ok(Attempt::NotEnrolled) => "not enrolled",
            Err(e) => {
                self.audit_login("error", caller_uid, ctx, &e.to_string());
                return Ok(Step::new(Action::Error).error(UNAVAILABLE));
            }
        };
        self.audit_login("failure", caller_uid, ctx, failed);
        conv.tries_left = conv.tries_left.saturating_sub(1);
        if conv.tries_left == 0 {
            return Ok(Step::new(Action::MaxTries).error(TOO_MANY));
        }
        lock(&self.conversations).insert(id.to_owned(), conv);
        Ok(Step::prompt(Action::PromptSecret, CODE_PROMPT).error(WRONG_CODE))
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

    /// Issues a new pending secret. Admins may enrol anyone (and replace an active
    /// factor with `replace`); a user may enrol themself while they have no active factor.
    pub fn enrol(
        &self,
        caller: &Caller,
        user: &str,
        replace: bool,
    ) -> Result<EnrolmentOffer, ApiError> {
        check_user_name(user)?;
        let policy = self.policy();
        if !policy.is_admin(caller) {
            policy
                .require_admin_or_self(caller, user)
                .map_err(|d| self.refuse("enrol", caller, user, d.0))?;
            if replace {
                return Err(self.refuse(
                    "enrol",
                    caller,
                    user,
                    "only an administrator may replace a factor".into(),
                ));
            }
        }
        if self.users.uid_of(user).is_none() {
            return Err(ApiError::UnknownUser(format!("unknown user {user:?}")));
        }
        let secret = otp::generate_secret(self.random.as_ref()).map_err(ApiError::Store)?;
        let account = format!("{user}@{}", self.hostname);
        let uri =
            otp::provisioning_uri(&self.params, &secret, &self.config.totp.issuer.0, &account)
                .map_err(ApiError::InvalidInput)?;
        let stored = lock(&self.store)
            .put_pending(user, &secret, self.clock.now(), replace)
            .map_err(store_error)?;
        if !stored {
            return Err(ApiError::AlreadyEnrolled(format!(
                "{user} already has an active factor; reset it first or replace it as an administrator"
            )));
        }
        self.audit_manage(
            "enrol",
            "success",
            caller,
            user,
            if replace {
                "new secret issued, replacing"
            } else {
                "new secret issued"
            },
        );
        Ok(EnrolmentOffer {
            user: user.into(),
            secret,
            otpauth_uri: uri,
        })
    }

    /// Verifies a first code from a pending secret and activates it. Wrong codes count
    /// towards the lockout like login failures.
    pub fn confirm_enrolment(
        &self,
        caller: &Caller,
        user: &str,
        code: &str,
    ) -> Result<(), ApiError> {
        check_user_name(user)?;
        self.policy()
            .require_admin_or_self(caller, user)
            .map_err(|d| self.refuse("confirm", caller, user, d.0))?;
        let now = self.clock.now();
        let mut store = lock(&self.store);
        match store.user(user).map_err(store_error)? {
            None => {
                return Err(ApiError::NotEnrolled(format!(
                    "{user} has no factor to confirm"
                )));
            }
            Some(r) if r.state == FactorState::Active => {
                return Err(ApiError::AlreadyEnrolled(format!(
                    "{user}'s factor is already confirmed"
                )));
            }
            Some(_) => {}
        }
        let params = self.params;
        let result = store
            .attempt(user, now, &self.lockout, |u| {
                otp::matching_step(&params, &u.secret, code, now)
            })
            .map_err(store_error)?;
        drop(store);
        match result {
            Attempt::Accepted { .. } => {
                self.audit_manage("confirm", "success", caller, user, "factor activated");
                Ok(())
            }
            Attempt::Locked { .. }
            | Attempt::Rejected {
                locked_until: Some(_),
                ..
            } => {
                self.audit_manage("confirm", "locked", caller, user, "account locked");
                Err(ApiError::WrongCode(
                    "too many wrong codes: the account is locked".into(),
                ))
            }
            _ => {
                self.audit_manage("confirm", "failure", caller, user, "wrong code");
                Err(ApiError::WrongCode("wrong code".into()))
            }
        }
    }

    pub fn status(&self, caller: &Caller, user: &str) -> Result<UserStatus, ApiError> {
        check_user_name(user)?;
        self.policy()
            .require_admin_or_self(caller, user)
            .map_err(|d| self.refuse("status", caller, user, d.0))?;
        match lock(&self.store).user(user).map_err(store_error)? {
            Some(r) => Ok(status_of(&r, self.clock.now())),
            None if self.users.uid_of(user).is_none() => {
                Err(ApiError::UnknownUser(format!("unknown user {user:?}")))
            }
            None => Ok(UserStatus {
                user: user.into(),
                state: "none".into(),
                enrolled_at: 0,
                last_success: 0,
                failures: 0,
                locked_until: 0,
            }),
        }
    }

    pub fn list(&self, caller: &Caller) -> Result<Vec<UserStatus>, ApiError> {
        self.policy()
            .require_admin(caller)
            .map_err(|d| self.refuse("list", caller, "", d.0))?;
        let now = self.clock.now();
        Ok(lock(&self.store)
            .users()
            .map_err(store_error)?
            .iter()
            .map(|r| status_of(r, now))
            .collect())
    }

    /// Removes a user's factor (lost phone). Returns whether there was one.
    pub fn reset(&self, caller: &Caller, user: &str) -> Result<bool, ApiError> {
        check_user_name(user)?;
        self.policy()
            .require_admin(caller)
            .map_err(|d| self.refuse("reset", caller, user, d.0))?;
        let removed = lock(&self.store).reset(user).map_err(store_error)?;
        self.audit_manage(
            "reset",
            "success",
            caller,
            user,
            if removed {
                "factor removed"
            } else {
                "no factor"
            },
        );
        Ok(removed)
    }

    pub fn unlock(&self, caller: &Caller, user: &str) -> Result<(), ApiError> {
        check_user_name(user)?;
        self.policy()
            .require_admin(caller)
            .map_err(|d| self.refuse("unlock", caller, user, d.0))?;
        if !lock(&self.store).unlock(user).map_err(store_error)? {
            return Err(ApiError::NotEnrolled(format!("{user} has no factor")));
        }
        self.audit_manage(
            "unlock",
            "success",
            caller,
            user,
            "lock and failure count cleared",
        );
        Ok(())
    }

    fn refuse(&self, action: &'static str, caller: &Caller, user: &str, why: String) -> ApiError {
        self.audit_manage(action, "denied", caller, user, &why);
        ApiError::PermissionDenied(why)
    }
}

fn status_of(r: &UserRecord, now: i64) -> UserStatus {
    UserStatus {
        user: r.name.clone(),
        state: match r.state {
            FactorState::Pending => "pending".into(),
            FactorState::Active => "active".into(),
        },
        enrolled_at: r.enrolled_at,
        last_success: r.last_success,
        failures: r.failures,
        locked_until: if r.locked_until > now {
            r.locked_until
        } else {
            0
        },
    }
}

fn locked_step(seconds_left: i64) -> Step {
    let minutes = (seconds_left.max(1) + 59) / 60;
    Step::new(Action::Denied).error(format!(
        "Too many wrong codes: this account is locked for {minutes} more minute(s). An administrator can unlock it."
    ))
}

fn store_error(e: crate::store::StoreError) -> ApiError {
    ApiError::Store(e.to_string())
}

fn check_user_name(user: &str) -> Result<(), ApiError> {
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

#[cfg(test)]
mod tests;
