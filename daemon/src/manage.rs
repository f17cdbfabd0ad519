//! Enrolment and administration: issue and confirm secrets, report state, reset, unlock,
//! list and revoke trusted devices, and manage enrolment deferrals. Every method checks
//! the caller first and audits what it changed.

use crate::authz::{Caller, LookupError, UserDb};
use crate::engine::{ApiError, Engine, check_user_name, store_error};
use crate::factor::{Enrolment, FactorKind};
use crate::grace;
use crate::model::{Attempt, Deferral, FactorState, Issued, UserRecord};
use crate::notify::Change;
use twofold_protocol::{self as protocol, EnrolmentOffer, TrustInfo, UserStatus};

fn lookup_error(e: LookupError) -> ApiError {
    ApiError::Store(e.to_string())
}

/// A listing's page size: at least one entry, at most [`protocol::MAX_PAGE`].
fn page_size(limit: u32) -> Result<u32, ApiError> {
    match limit {
        0 => Err(ApiError::InvalidInput(
            "a page holds at least one entry".into(),
        )),
        n => Ok(n.min(protocol::MAX_PAGE)),
    }
}

fn not_a_cursor() -> ApiError {
    ApiError::InvalidInput("not a cursor this listing returned; start again with \"\"".into())
}

/// The cursor of the name-ordered listings: the last name of the previous page.
fn name_cursor(after: &str) -> Result<&str, ApiError> {
    if after.len() > protocol::MAX_FIELD_LEN || after.chars().any(char::is_control) {
        return Err(not_a_cursor());
    }
    Ok(after)
}

/// The cursor of the trust listing: the last row number of the previous page.
fn row_cursor(after: &str) -> Result<i64, ApiError> {
    match after {
        "" => Ok(0),
        n => n
            .parse::<i64>()
            .ok()
            .filter(|n| *n > 0 && !after.starts_with('+'))
            .ok_or_else(not_a_cursor),
    }
}

/// The cursor of the page after a full one; "" after a short page, the last.
fn next_cursor<T>(page: &[T], limit: u32, cursor: impl Fn(&T) -> String) -> String {
    match page.last() {
        Some(last) if page.len() >= limit as usize => cursor(last),
        _ => String::new(),
    }
}

/// Longer than any code (8 digits at most) with room for stray spaces.
const MAX_CODE_LEN: usize = 16;

/// What a status counts beside the record.
#[derive(Debug, Clone, Default)]
struct Counts {
    trusted: u32,
    recovery: u32,
    email_shared: bool,
    /// The number on record and whether another user has it.
    phone: Option<(String, bool)>,
}

impl Engine {
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
        let is_admin = policy.is_admin(caller);
        if !is_admin {
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
        let user = &self.canonical(user, true)?;
        let factor = self.factor(FactorKind::Totp);
        let Enrolment { secret, uri } = self.new_app_secret(user)?;
        let recovery = crate::recovery::issue(self.random.as_ref()).map_err(ApiError::Store)?;
        let issued = self
            .with_store(|s| {
                s.put_pending(
                    user,
                    factor.kind(),
                    &secret,
                    self.clock.now(),
                    replace,
                    is_admin,
                    &recovery.stored,
                )
            })
            .map_err(store_error)?;
        match issued {
            Issued::Stored => {}
            Issued::ActiveExists => {
                return Err(ApiError::AlreadyEnrolled(format!(
                    "{user} already has an active factor; reset it first or replace it as an administrator"
                )));
            }
            Issued::AdminPending => {
                return Err(self.refuse(
                    "enrol",
                    caller,
                    user,
                    "an administrator issued the pending secret; confirm it, or ask an administrator for a new one".into(),
                ));
            }
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
        self.notify(
            user,
            Change::SecretIssued,
            by_whom(self.users.as_ref(), caller, user),
        );
        Ok(EnrolmentOffer {
            user: user.into(),
            secret,
            otpauth_uri: uri,
            algorithm: format!("{:?}", self.totp.0.algorithm),
            digits: self.totp.0.digits as u32,
            period: self.totp.0.step as u32,
            recovery_codes: recovery.shown,
        })
    }

    /// What an authenticator app shows as the issuer: `[totp] issuer`, or this host.
    pub(crate) fn issuer(&self) -> &str {
        self.config
            .totp
            .issuer
            .as_ref()
            .map_or(self.hostname.as_str(), |n| n.0.as_str())
    }

    /// A new TOTP secret for `user`, shown in the app as `user@host` from [`Self::issuer`].
    pub(crate) fn new_app_secret(&self, user: &str) -> Result<Enrolment, ApiError> {
        let account = format!("{user}@{}", self.hostname);
        self.factor(FactorKind::Totp)
            .enrol(self.random.as_ref(), self.issuer(), &account)
            .map_err(ApiError::Store)
    }

    /// New recovery codes for `user` in place of the old ones (administrators only: a
    /// set of codes is a way in). Shown once, here.
    pub fn regenerate_recovery_codes(
        &self,
        caller: &Caller,
        user: &str,
    ) -> Result<Vec<String>, ApiError> {
        let user = &self.admin_target(caller, user, "recovery", false)?;
        let codes = crate::recovery::issue(self.random.as_ref()).map_err(ApiError::Store)?;
        let now = self.clock.now();
        let stored = self
            .with_store(|s| s.put_recovery_codes(user, &codes.stored, now))
            .map_err(store_error)?;
        if !stored {
            return Err(ApiError::NotEnrolled(format!(
                "{user} has no second factor; recovery codes come with one"
            )));
        }
        self.audit_manage(
            "recovery",
            "success",
            caller,
            user,
            "new recovery codes issued",
        );
        self.notify(
            user,
            Change::RecoveryCodesIssued,
            by_whom(self.users.as_ref(), caller, user),
        );
        Ok(codes.shown)
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
        let user = &self.canonical(user, false)?;
        if code.len() > MAX_CODE_LEN {
            return Err(ApiError::InvalidInput(format!(
                "a code has at most {MAX_CODE_LEN} characters"
            )));
        }
        let now = self.clock.now();
        let mut store = self.store().map_err(store_error)?;
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
        let result = store
            .attempt(
                user,
                &format!("uid {}", caller.uid),
                now,
                &self.lockout,
                &|u: &UserRecord| self.factor(u.kind).verify(&u.secret, code, now),
            )
            .map_err(store_error)?;
        drop(store);
        match result {
            Attempt::Accepted { .. } => {
                self.audit_manage("confirm", "success", caller, user, "factor activated");
                self.notify(
                    user,
                    Change::FactorActivated,
                    by_whom(self.users.as_ref(), caller, user),
                );
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
            Attempt::Throttled { until } => {
                self.audit_manage("confirm", "throttled", caller, user, "code not checked");
                Err(ApiError::WrongCode(format!(
                    "too many wrong codes: try again in {} second(s)",
                    until - now
                )))
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
        let user = &self.canonical(user, false)?;
        let record = self.with_store(|s| s.user(user)).map_err(store_error)?;
        if record.is_none() && self.users.uid_of(user).is_none() {
            return Err(ApiError::UnknownUser(format!("unknown user {user:?}")));
        }
        let now = self.clock.now();
        let (deferrals, counts) = {
            let store = self.store().map_err(store_error)?;
            (
                store.deferrals_of(user).map_err(store_error)?,
                Counts {
                    trusted: store
                        .valid_trust_counts(user, user, now)
                        .map_err(store_error)?
                        .get(user.as_str())
                        .copied()
                        .unwrap_or(0),
                    recovery: store.recovery_codes_left(user).map_err(store_error)?,
                    email_shared: match store.email_of(user).map_err(store_error)? {
                        Some(address) => {
                            store
                                .users_with_email(&address, 2)
                                .map_err(store_error)?
                                .len()
                                > 1
                        }
                        None => false,
                    },
                    phone: store
                        .phones_between(user, user)
                        .map_err(store_error)?
                        .remove(user.as_str()),
                },
            )
        };
        self.status_of(user, record.as_ref(), &deferrals, counts)
    }

    /// One page of the users with a factor (see `Manage.List`). Its cost grows with the
    /// page, not the store: one search for the users, one grouped count of their trust
    /// records, one read of the deferrals that can apply to them.
    pub fn list(
        &self,
        caller: &Caller,
        after: &str,
        limit: u32,
    ) -> Result<(Vec<UserStatus>, String), ApiError> {
        self.policy()
            .require_admin(caller)
            .map_err(|d| self.refuse("list", caller, "", d.0))?;
        let (after, limit) = (name_cursor(after)?, page_size(limit)?);
        let now = self.clock.now();
        let (records, deferrals, counts, recovery, shared, phones) = self
            .read_for_listing(|s| {
                let records = s.users_after(after, limit)?;
                let (Some(first), Some(last)) = (records.first(), records.last()) else {
                    return Ok((
                        records,
                        Vec::new(),
                        Default::default(),
                        Default::default(),
                        Vec::new(),
                        Default::default(),
                    ));
                };
                let deferrals = s.deferrals_for_users(&first.name, &last.name)?;
                let counts = s.valid_trust_counts(&first.name, &last.name, now)?;
                let recovery = s.recovery_counts(&first.name, &last.name)?;
                let shared = s.shared_addresses(&first.name, &last.name)?;
                let phones = s.phones_between(&first.name, &last.name)?;
                Ok((records, deferrals, counts, recovery, shared, phones))
            })
            .map_err(store_error)?;
        let next = next_cursor(&records, limit, |r| r.name.clone());
        let page = records
            .iter()
            .map(|r| {
                let counted = Counts {
                    trusted: counts.get(&r.name).copied().unwrap_or(0),
                    recovery: recovery.get(&r.name).copied().unwrap_or(0),
                    email_shared: shared.contains(&r.name),
                    phone: phones.get(&r.name).cloned(),
                };
                self.status_of(&r.name, Some(r), &deferrals, counted)
            })
            .collect::<Result<_, _>>()?;
        Ok((page, next))
    }

    /// `deferrals` may hold other users' too; only `user`'s and their groups' count.
    fn status_of(
        &self,
        user: &str,
        r: Option<&UserRecord>,
        deferrals: &[Deferral],
        counts: Counts,
    ) -> Result<UserStatus, ApiError> {
        let now = self.clock.now();
        let groups = grace::Groups::of(self.users.as_ref(), user);
        let grace_until = match r {
            Some(r) if r.state == FactorState::Active => 0,
            _ => grace::deadline_for(
                self.config.enrolment.deadline.map(|d| d.0),
                deferrals,
                user,
                &groups,
            )
            .map_err(lookup_error)?
            .unwrap_or(0),
        };
        Ok(UserStatus {
            user: user.into(),
            state: match r.map(|r| r.state) {
                None => "none".into(),
                Some(FactorState::Pending) => "pending".into(),
                Some(FactorState::Active) => "active".into(),
            },
            factor: r.map_or(String::new(), |r| r.kind.as_str().into()),
            enrolled_at: r.map_or(0, |r| r.enrolled_at),
            last_success: r.map_or(0, |r| r.last_success),
            failures: r.map_or(0, |r| r.failures),
            locked_until: r.map_or(0, |r| {
                if r.locked_until > now {
                    r.locked_until
                } else {
                    0
                }
            }),
            in_scope: grace::in_scope(&self.config.scope, user, &groups).map_err(lookup_error)?,
            grace_until,
            trusted: counts.trusted,
            recovery_codes: counts.recovery,
            email_shared: counts.email_shared,
            phone: counts
                .phone
                .as_ref()
                .map_or(String::new(), |(n, _)| crate::sms::masked(n)),
            phone_shared: counts.phone.as_ref().is_some_and(|(_, shared)| *shared),
        })
    }

    /// Removes a user's factor (lost phone). Returns whether there was one.
    pub fn reset(&self, caller: &Caller, user: &str) -> Result<bool, ApiError> {
        let user = &self.admin_target(caller, user, "reset", false)?;
        let now = self.clock.now();
        let (removed, number) = self
            .with_store(|s| {
                let number = s.phone_of(user)?;
                Ok((s.reset(user, now)?, number))
            })
            .map_err(store_error)?;
        if removed {
            self.notify(
                user,
                Change::FactorRemoved,
                by_whom(self.users.as_ref(), caller, user),
            );
        }
        if let Some(number) = number {
            self.text_old_number(user, number);
        }
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
        let user = &self.admin_target(caller, user, "unlock", false)?;
        if !self.with_store(|s| s.unlock(user)).map_err(store_error)? {
            return Err(ApiError::NotEnrolled(format!("{user} has no factor")));
        }
        self.audit_manage(
            "unlock",
            "success",
            caller,
            user,
            "lock and failure count cleared",
        );
        self.notify(
            user,
            Change::Unlocked,
            by_whom(self.users.as_ref(), caller, user),
        );
        Ok(())
    }

    /// One page of the trusted sessions and remembered devices still valid, oldest first:
    /// one user's (admins, or the user), or everyone's with an empty `user` (admins).
    pub fn trust_list(
        &self,
        caller: &Caller,
        user: &str,
        after: &str,
        limit: u32,
    ) -> Result<(Vec<TrustInfo>, String), ApiError> {
        let who = if user.is_empty() {
            self.policy()
                .require_admin(caller)
                .map_err(|d| self.refuse("trust-list", caller, "", d.0))?;
            None
        } else {
            check_user_name(user)?;
            self.policy()
                .require_admin_or_self(caller, user)
                .map_err(|d| self.refuse("trust-list", caller, user, d.0))?;
            Some(self.canonical(user, false)?)
        };
        let (after, limit) = (row_cursor(after)?, page_size(limit)?);
        let now = self.clock.now();
        let records = self
            .read_for_listing(|s| s.trust_after(who.as_deref(), after, limit, now))
            .map_err(store_error)?;
        let next = next_cursor(&records, limit, |(rowid, _)| rowid.to_string());
        let page = records
            .into_iter()
            .map(|(_, r)| TrustInfo {
                id: r.id[..12].to_string(),
                user: r.user,
                kind: r.kind.as_str().into(),
                device: r.description,
                service: r.service,
                created_at: r.created_at,
                last_used: r.last_used,
                expires_at: r.expires_at,
            })
            .collect();
        Ok((page, next))
    }

    /// Revokes one record (by the id `trust list` shows) or, with an empty id, all of
    /// the user's. Users may revoke their own.
    pub fn trust_revoke(&self, caller: &Caller, user: &str, id: &str) -> Result<u32, ApiError> {
        check_user_name(user)?;
        self.policy()
            .require_admin_or_self(caller, user)
            .map_err(|d| self.refuse("trust-revoke", caller, user, d.0))?;
        let user = &self.canonical(user, false)?;
        let target = (!id.is_empty()).then_some(id);
        if target.is_some_and(|i| i.len() < 8 || !i.bytes().all(|b| b.is_ascii_hexdigit())) {
            return Err(ApiError::InvalidInput(
                "a trust id is at least 8 hex digits, as `trust list` shows".into(),
            ));
        }
        let removed = self
            .with_store(|s| s.revoke_trust(user, target))
            .map_err(store_error)?;
        if target.is_some() && removed == 0 {
            return Err(ApiError::InvalidInput(format!(
                "{user} has no trusted device with id {id}"
            )));
        }
        let what = if target.is_some() {
            format!("trusted device {id} revoked")
        } else {
            format!("{removed} trust record(s) revoked")
        };
        self.audit_manage("trust-revoke", "success", caller, user, &what);
        if removed > 0 {
            self.notify(
                user,
                Change::TrustRevoked,
                format!("{what} {}", by_whom(self.users.as_ref(), caller, user)),
            );
        }
        Ok(removed as u32)
    }

    /// Sets where `user`'s codes and notices are e-mailed (administrators only; never
    /// taken from anything the user can edit); an empty `address` removes it. The old
    /// address and the new are both told. Returns the other users (at most ten) who have
    /// the same address: a shared mailbox lets each of them read the others' codes.
    pub fn set_email(
        &self,
        caller: &Caller,
        user: &str,
        address: &str,
    ) -> Result<Vec<String>, ApiError> {
        let user = &self.admin_target(caller, user, "user-set", true)?;
        let address = address.trim();
        if !address.is_empty() && twofold_config::MailAddress::plain(address).is_err() {
            return Err(ApiError::InvalidInput(
                "expected a plain e-mail address such as alice@example.org".into(),
            ));
        }
        let detail = by_whom(self.users.as_ref(), caller, user);
        self.notify(user, Change::EmailChanged, detail.clone());
        let new = (!address.is_empty()).then_some(address);
        let now = self.clock.now();
        let sharing = self
            .with_store(|s| {
                s.set_email(user, new, now)?;
                match new {
                    Some(address) => s.users_with_email(address, 11),
                    None => Ok(Vec::new()),
                }
            })
            .map_err(store_error)?;
        let sharing = others_than(sharing, user);
        if new.is_some() {
            self.notify(user, Change::EmailChanged, detail);
        }
        self.audit_manage(
            "user-set",
            "success",
            caller,
            user,
            if new.is_some() {
                "e-mail address set"
            } else {
                "e-mail address removed"
            },
        );
        Ok(sharing)
    }

    /// Sets the number `user`'s codes are texted to (E.164; administrators only: a number
    /// is a way in); an empty `number` removes it. A changed number ends the codes texted
    /// before (a new number is a new authenticator), and the user is told by e-mail where
    /// an address is on record. Returns the other users (at most ten) with that number.
    pub fn set_phone(
        &self,
        caller: &Caller,
        user: &str,
        number: &str,
    ) -> Result<Vec<String>, ApiError> {
        let user = &self.admin_target(caller, user, "user-set", true)?;
        let number = number.trim();
        if !number.is_empty() && !crate::sms::valid_number(number) {
            return Err(ApiError::InvalidInput(
                "expected a phone number in E.164 form: + and the country code, no spaces (e.g. +4915112345678)".into(),
            ));
        }
        let new = (!number.is_empty()).then_some(number);
        let now = self.clock.now();
        let mut old = None;
        let as_factor = self.config.sms_on() && self.config.sms.sole_factor;
        let sharing = self
            .with_store(|s| {
                old = s.phone_of(user)?;
                s.set_phone(user, new, now, as_factor)?;
                match new {
                    Some(number) => s.users_with_phone(number, 11),
                    None => Ok(Vec::new()),
                }
            })
            .map_err(store_error)?;
        let sharing = others_than(sharing, user);
        if old.as_deref() == new {
            // Nothing changed: no alarm that would teach users to ignore real ones.
            return Ok(sharing);
        }
        self.notify(
            user,
            Change::PhoneChanged,
            by_whom(self.users.as_ref(), caller, user),
        );
        if let Some(old) = old {
            self.text_old_number(user, old);
        }
        let what = match new {
            Some(n) => format!("phone number set to {}", crate::sms::masked(n)),
            None => "phone number removed".into(),
        };
        self.audit_manage("user-set", "success", caller, user, &what);
        Ok(sharing)
    }

    /// Tells the phone that no longer gets `user`'s codes (a SIM swap starts with a number
    /// changed on someone's behalf), if SMS is on and the number may be texted. Nothing
    /// waits for the gateway; a failure is in twofoldd's log.
    fn text_old_number(&self, user: &str, old: String) {
        if !self.config.sms_on() || !self.config.sms.may_text(&old) {
            return;
        }
        let text = crate::sms::changed_notice(&self.hostname);
        let _ = self.texter.dispatch(
            user,
            crate::sms::Sms {
                to: old,
                text,
                valid_minutes: 60,
                report_url: None,
            },
        );
    }

    /// Registers `fingerprints` (`SHA256:…`, as `ssh-keygen -lf` prints them) as the
    /// security keys that may stand in for a code over SSH under `accept_security_keys`,
    /// in place of the user's earlier ones; an empty list removes them (administrators
    /// only: a registered key is a way in).
    pub fn set_security_keys(
        &self,
        caller: &Caller,
        user: &str,
        fingerprints: &[String],
    ) -> Result<(), ApiError> {
        let user = &self.admin_target(caller, user, "user-set", true)?;
        if fingerprints.len() > MAX_SECURITY_KEYS {
            return Err(ApiError::InvalidInput(format!(
                "at most {MAX_SECURITY_KEYS} security keys per user"
            )));
        }
        for f in fingerprints {
            if !valid_fingerprint(f) {
                return Err(ApiError::InvalidInput(
                    "expected a key fingerprint as ssh-keygen -lf prints it: SHA256: and 43 base64 characters".into(),
                ));
            }
        }
        let now = self.clock.now();
        self.with_store(|s| s.set_security_keys(user, fingerprints, now))
            .map_err(store_error)?;
        self.audit_manage(
            "user-set",
            "success",
            caller,
            user,
            &format!("{} security key(s) registered", fingerprints.len()),
        );
        self.notify(
            user,
            Change::SecurityKeysChanged,
            by_whom(self.users.as_ref(), caller, user),
        );
        Ok(())
    }

    /// Lets `subject` (a user, or `@group`) log in without a factor until `until`.
    pub fn grace_set(
        &self,
        caller: &Caller,
        subject: &str,
        until: i64,
        reason: &str,
    ) -> Result<(), ApiError> {
        self.policy()
            .require_admin(caller)
            .map_err(|d| self.refuse("grace-set", caller, subject, d.0))?;
        let subject = &self.check_subject(subject, true)?;
        let now = self.clock.now();
        let max_days = i64::from(self.config.enrolment.max_deferral_days.get());
        if until <= now {
            return Err(ApiError::InvalidInput(format!(
                "{} is in the past",
                grace::date_of(until)
            )));
        }
        if until > now.saturating_add(max_days * 86400) {
            // No date in the message: `until` may be any i64 the caller sent.
            return Err(ApiError::InvalidInput(format!(
                "the date is more than {max_days} days ahead ([enrolment] max_deferral_days)"
            )));
        }
        if reason.len() > 200 || reason.chars().any(char::is_control) {
            return Err(ApiError::InvalidInput(
                "the reason must be at most 200 printable characters".into(),
            ));
        }
        let deferral = Deferral {
            subject: subject.into(),
            until,
            reason: reason.into(),
            created_at: now,
            created_by: caller.uid,
        };
        self.with_store(|s| s.set_deferral(&deferral))
            .map_err(store_error)?;
        self.audit_manage(
            "grace-set",
            "success",
            caller,
            subject,
            &format!("deferred until {}: {reason}", grace::date_of(until)),
        );
        // A group's members are not told one by one: a group can be large.
        if !subject.starts_with('@') {
            self.notify(
                subject,
                Change::GraceChanged,
                format!(
                    "deferred until {} {}",
                    grace::date_of(until),
                    by_whom(self.users.as_ref(), caller, subject)
                ),
            );
        }
        Ok(())
    }

    /// One page of the deferrals, in subject order.
    pub fn grace_list(
        &self,
        caller: &Caller,
        after: &str,
        limit: u32,
    ) -> Result<(Vec<protocol::Deferral>, String), ApiError> {
        self.policy()
            .require_admin(caller)
            .map_err(|d| self.refuse("grace-list", caller, "", d.0))?;
        let (after, limit) = (name_cursor(after)?, page_size(limit)?);
        let list = self
            .read_for_listing(|s| s.deferrals_after(after, limit))
            .map_err(store_error)?;
        let next = next_cursor(&list, limit, |d| d.subject.clone());
        let page = list
            .into_iter()
            .map(|d| protocol::Deferral {
                subject: d.subject,
                until: d.until,
                reason: d.reason,
                created_at: d.created_at,
            })
            .collect();
        Ok((page, next))
    }

    pub fn grace_clear(&self, caller: &Caller, subject: &str) -> Result<bool, ApiError> {
        self.policy()
            .require_admin(caller)
            .map_err(|d| self.refuse("grace-clear", caller, subject, d.0))?;
        let subject = &self.check_subject(subject, false)?;
        let removed = self
            .with_store(|s| s.clear_deferral(subject))
            .map_err(store_error)?;
        self.audit_manage(
            "grace-clear",
            "success",
            caller,
            subject,
            if removed {
                "deferral removed"
            } else {
                "no deferral"
            },
        );
        if removed && !subject.starts_with('@') {
            self.notify(
                subject,
                Change::GraceChanged,
                format!(
                    "deferral removed {}",
                    by_whom(self.users.as_ref(), caller, subject)
                ),
            );
        }
        Ok(removed)
    }

    /// A deferral's subject as stored: `@group`, or the user's canonical name.
    fn check_subject(&self, subject: &str, must_exist: bool) -> Result<String, ApiError> {
        match subject.strip_prefix('@') {
            Some(group) => {
                check_user_name(group)?;
                if must_exist && !self.users.group_exists(group) {
                    return Err(ApiError::UnknownUser(format!("unknown group {group:?}")));
                }
                Ok(subject.into())
            }
            None => self.canonical(subject, must_exist),
        }
    }

    /// `user`'s canonical name (see `authz::Account`). A name NSS does not know is an
    /// error with `must_exist`, else kept as given, so an administrator can still clear a
    /// deleted account's records. A failed lookup is an error either way.
    /// The account an administrator's `action` is on: a valid name, called by an
    /// administrator (refused and audited otherwise), under its canonical name
    /// ([`Engine::canonical`]).
    fn admin_target(
        &self,
        caller: &Caller,
        user: &str,
        action: &'static str,
        must_exist: bool,
    ) -> Result<String, ApiError> {
        check_user_name(user)?;
        self.policy()
            .require_admin(caller)
            .map_err(|d| self.refuse(action, caller, user, d.0))?;
        self.canonical(user, must_exist)
    }

    fn canonical(&self, user: &str, must_exist: bool) -> Result<String, ApiError> {
        check_user_name(user)?;
        match self.users.account(user) {
            Ok(Some(account)) => Ok(account.name),
            Ok(None) if !must_exist => Ok(user.into()),
            Ok(None) => Err(ApiError::UnknownUser(format!("unknown user {user:?}"))),
            Err(e) => Err(lookup_error(e)),
        }
    }

    pub(crate) fn refuse(
        &self,
        action: &'static str,
        caller: &Caller,
        user: &str,
        why: String,
    ) -> ApiError {
        self.audit_manage(action, "denied", caller, user, &why);
        ApiError::PermissionDenied(why)
    }
}

/// Who made a change, in words for the user's notice.
/// Security keys one user may have registered.
const MAX_SECURITY_KEYS: usize = 10;

/// `SHA256:` and the 43 unpadded base64 characters of a SHA-256.
fn valid_fingerprint(f: &str) -> bool {
    f.strip_prefix("SHA256:").is_some_and(|b64| {
        b64.len() == 43
            && b64
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/')
    })
}

fn by_whom(users: &dyn UserDb, caller: &Caller, user: &str) -> String {
    if users.uid_of(user) == Some(caller.uid) {
        "by you".into()
    } else {
        format!("by an administrator (uid {})", caller.uid)
    }
}

/// The users of `with` other than `user`, at most ten: those who share an address or a
/// number with `user`.
fn others_than(with: Vec<String>, user: &str) -> Vec<String> {
    with.into_iter().filter(|u| u != user).take(10).collect()
}
