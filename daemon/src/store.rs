//! The store port: everything the engine keeps (factors, replay state, failure counts,
//! trust, deferrals) behind one trait, so that a store is a new file, not edits all over
//! the engine. Each method that decides is one transaction in the store: load, ask the
//! pure rules (`lockout`), save. SQLite (`sqlite.rs`) is the first implementation.

use crate::factor::FactorKind;
use crate::lockout::{LockoutPolicy, Match};
use crate::model::{
    Attempt, Deferral, Issued, PushDevice, PushLimits, PushTurn, SmsLimits, SmsTurn, TrustRecord,
    UserRecord,
};
use std::collections::HashMap;
use std::ops::DerefMut;
use std::time::Duration;

pub mod postgres;
#[cfg(test)]
mod properties;
pub mod schema;
pub mod sqlite;
pub use sqlite::{MAX_PHANTOMS, SqliteStore, StoreGuard, StorePool};

/// Failures never carry SQL text or row data: they are shown to clients and logs.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the twofold database is unavailable: {0}")]
    Unavailable(String),
    #[error("the twofold database at {0} is not private: {1}")]
    NotPrivate(String, String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// The store `config` names, with `connections` for logins and changes (and the
/// listings' apart). A PostgreSQL store is returned before it is reached: the database
/// may be away when twofoldd starts, and every call tries again (failing closed).
pub fn open(
    config: &twofold_config::Config,
    connections: usize,
    hostname: &str,
) -> Result<Box<dyn Stores>> {
    use twofold_config::Backend;
    match config.store.backend {
        Backend::Sqlite => {
            let first = SqliteStore::open(&config.daemon.database.0)?;
            Ok(Box::new(StorePool::new(
                first,
                connections.saturating_sub(1),
            )?))
        }
        Backend::Postgres => Ok(Box::new(open_postgres(config, hostname)?)),
    }
}

/// The fleet store `[store]` describes, as this host (`[fleet]`) sees it.
pub fn open_postgres(
    config: &twofold_config::Config,
    hostname: &str,
) -> Result<postgres::PostgresStores> {
    let s = &config.store;
    let url = s
        .url
        .as_ref()
        .ok_or_else(|| StoreError::Unavailable("[store] url is not set".into()))?;
    let password = match &s.password_file {
        Some(f) => Some(
            crate::credentials::read_password_file(&f.0)
                .map_err(|e| StoreError::Unavailable(format!("[store] password_file: {e}")))?,
        ),
        None => None,
    };
    let host = config
        .fleet
        .host
        .as_ref()
        .map_or(hostname, |h| h.0.as_str());
    postgres::PostgresStores::new(postgres::PostgresOptions {
        url: url.0.clone(),
        password,
        ca_file: s.ca_file.as_ref().map(|f| f.0.clone()),
        pool_size: s.pool_size.get() as usize,
        statement_timeout: Duration::from_millis(u64::from(s.statement_timeout_ms.get())),
        connect_timeout: Duration::from_millis(u64::from(s.connect_timeout_ms.get())),
        trust_scope: match &config.fleet.group {
            Some(g) => format!("group:{}", g.0),
            None => format!("host:{host}"),
        },
        application_name: format!("twofoldd@{host}"),
    })
}

/// One connection to the store, used by one call at a time.
pub trait Store: Listings + Send {
    /// Runs raw statements, for tests that break the store on purpose or fill it fast.
    #[cfg(test)]
    fn sql_for_tests(&self, sql: &str) -> Result<()>;

    /// The version of the stored schema (migrations run when the store opens).
    fn schema_version(&self) -> Result<i64>;

    /// The user's factor and its counters, if the user has a factor.
    fn user(&self, name: &str) -> Result<Option<UserRecord>>;

    /// The names of every stored factor, and nothing else (a start-up check reads them
    /// all; the whole records of 100,000 users would cost tens of MiB).
    fn user_names(&self) -> Result<Vec<String>>;

    /// Stores a new pending secret of `kind` issued by an administrator (`by_admin`) or
    /// the user, in place of the user's factor if there is one.
    /// An active factor is replaced only with `replace`, an administrator's pending one
    /// only by an administrator. The failure count and any lock stay: issuing a secret is
    /// no way out of a lockout (`unlock` is). `recovery` replaces the recovery codes.
    #[allow(clippy::too_many_arguments)]
    fn put_pending(
        &mut self,
        name: &str,
        kind: FactorKind,
        secret: &str,
        now: i64,
        replace: bool,
        by_admin: bool,
        recovery: &[crate::recovery::StoredCode],
    ) -> Result<Issued>;

    /// Stores a factor the user set up at login and confirmed with a code of `step`
    /// (checked by the caller against `secret`), in one transaction: only while the user
    /// has no factor but an e-mail or SMS one (which the app replaces) and is not locked at
    /// `now`; the step is recorded as used, the name's wrong codes carried, any trust
    /// ended, `recovery` put in place. Returns false, storing nothing, otherwise.
    #[allow(clippy::too_many_arguments)]
    fn put_confirmed(
        &mut self,
        name: &str,
        kind: FactorKind,
        secret: &str,
        step: i64,
        now: i64,
        recovery: &[crate::recovery::StoredCode],
    ) -> Result<bool>;
    /// Records one attempt atomically: loads the account (or the name's phantom) and the
    /// source's backoff, lets [`lockout`] decide (asking `check` what the code
    /// matches only when nothing refuses it first) and saves what it decided, all in one
    /// transaction.
    fn attempt(
        &mut self,
        name: &str,
        source: &str,
        now: i64,
        policy: &LockoutPolicy,
        check: &dyn Fn(&UserRecord) -> std::result::Result<Option<Match>, String>,
    ) -> Result<Attempt>;

    /// Removes the user's factor (lost phone) and, in the same transaction, every trust
    /// it earned; a user with an address on record is left with the e-mail factor.
    /// Returns whether there was a factor.
    fn reset(&mut self, name: &str, now: i64) -> Result<bool>;

    /// Moves `old`'s factor, lockout state and deferral to `new` (its canonical name),
    /// unless `new` already has a factor. Trust records go: their identity hashes name
    /// the old spelling. Returns whether `old` was moved.
    fn rename_user(&mut self, old: &str, new: &str) -> Result<bool>;

    /// Ends a lock, clears the failure count and every source's wait. Returns whether the
    /// user has a factor.
    fn unlock(&mut self, name: &str) -> Result<bool>;

    /// Every trust record of `user` for one device identity, valid or not.
    fn trust_for(&self, user: &str, identity_hash: &str) -> Result<Vec<TrustRecord>>;

    /// Every trust record of one user, valid or not.
    fn trust_of(&self, user: &str) -> Result<Vec<TrustRecord>>;

    /// Stores a record; it replaces the previous one of its kind for the same device and
    /// service (other services' windows stay: they serve other classes).
    fn put_trust(&mut self, r: &TrustRecord) -> Result<()>;

    /// Stores `r` only if the user is still as the conversation found it: the factor of
    /// `generation`, not locked at `r.created_at`. Checked and written in one
    /// transaction. Returns false (and writes nothing) when anything changed.
    fn put_trust_if(&mut self, r: &TrustRecord, generation: i64) -> Result<bool>;

    /// Until when a name without a factor is locked (0: not locked).
    fn phantom_locked_until(&mut self, name: &str) -> Result<i64>;

    /// Whether `user` still has the factor of `generation` and is not locked at `now`.
    fn still(&mut self, user: &str, generation: i64, now: i64) -> Result<bool>;

    fn touch_trust(&mut self, id: &str, now: i64) -> Result<()>;

    /// Removes one of `user`'s records by id (or a unique prefix of at least 8 hex
    /// digits), or all of them with `None`, and ends the user's open conversations (a
    /// "Trust this device?" still open must not bring a revoked device back). Returns how
    /// many went.
    fn revoke_trust(&mut self, user: &str, id: Option<&str>) -> Result<usize>;

    /// Drops up to `limit` trust records that can no longer be honoured; returns how
    /// many went. The sweep deletes in such batches, each its own short transaction, so
    /// logins wait for none for long.
    fn purge_expired_trust(&mut self, now: i64, limit: u32) -> Result<usize>;

    /// Forgets sources' waits and names' locks that ended a day ago with no wrong code
    /// since (a day without them forgets a count).
    fn purge_stale_counts(&mut self, now: i64) -> Result<()>;

    fn set_deferral(&mut self, d: &Deferral) -> Result<()>;

    fn clear_deferral(&mut self, subject: &str) -> Result<bool>;

    /// Every deferral, in subject order (start-up checks; listings go page by page).
    fn deferrals(&self) -> Result<Vec<Deferral>>;

    /// The deferrals that can apply to `user`: the user's own and every group's.
    fn deferrals_of(&self, user: &str) -> Result<Vec<Deferral>>;

    /// Sets (or with `None` removes) the address `user`'s codes and notices go to, in
    /// one transaction with what follows from it: an address is a factor of a user who
    /// has none (an e-mail factor, keeping the name's wrong codes); without the address
    /// that factor goes (its wrong codes stay with the name); any change of address ends
    /// the user's trust and open conversations.
    fn set_email(&mut self, user: &str, email: Option<&str>, now: i64) -> Result<()>;

    /// Counts one mail with a code to `user` asked for from `source`: at most `per_hour`
    /// per source and `user_per_hour` from all sources in an hour (which starts at a
    /// source's first mail); false, and nothing counted, when none is left. So one
    /// source cannot use up the user's mails, and many cannot flood the mailbox. Only
    /// users with an address are counted, each in at most `user_per_hour` rows.
    fn take_mail_turn(
        &mut self,
        user: &str,
        source: &str,
        now: i64,
        per_hour: u32,
        user_per_hour: u32,
    ) -> Result<bool>;
    /// Puts `codes` in place of every recovery code `user` had; false (and nothing
    /// stored) when the user has no factor.
    fn put_recovery_codes(
        &mut self,
        user: &str,
        codes: &[crate::recovery::StoredCode],
        now: i64,
    ) -> Result<bool>;
    /// `user`'s recovery code named `id`, if it is still there.
    fn recovery_code(&self, user: &str, id: &str) -> Result<Option<crate::recovery::StoredCode>>;
    fn recovery_codes_left(&self, user: &str) -> Result<u32>;
    /// Puts `fingerprints` (`SHA256:…`) in place of the security keys registered for
    /// `user`.
    fn set_security_keys(&mut self, user: &str, fingerprints: &[String], now: i64) -> Result<()>;
    /// Whether an administrator registered the security key `fingerprint` for `user`.
    fn security_key_registered(&self, user: &str, fingerprint: &str) -> Result<bool>;
    /// Up to `limit` users, in name order, whose address is `email` (case ignored).
    fn users_with_email(&self, email: &str, limit: u32) -> Result<Vec<String>>;
    /// The address an administrator set for `user`, if any.
    fn email_of(&self, user: &str) -> Result<Option<String>>;
    /// Sets (Some) or removes (None) the number (E.164, validated by the caller) that
    /// `user`'s SMS codes go to. Codes texted to the old one must not count: any change
    /// of number ends the user's trust and, when the user has a factor, its open
    /// conversations (a new generation), in one transaction. The same number again
    /// changes nothing. With `as_factor` (`[sms] sole_factor`) a user without a factor
    /// gets an SMS factor (kind `sms`, nothing secret stored), also when the number is
    /// the same; removing the number removes an SMS factor, its wrong codes staying with
    /// the name, as for the e-mail factor.
    fn set_phone(
        &mut self,
        user: &str,
        phone: Option<&str>,
        now: i64,
        as_factor: bool,
    ) -> Result<()>;
    /// The number an administrator set for `user`, if any.
    fn phone_of(&self, user: &str) -> Result<Option<String>>;
    /// Up to `limit` users, in name order, whose number is `phone` (exact match).
    fn users_with_phone(&self, phone: &str, limit: u32) -> Result<Vec<String>>;
    /// One text to `user` at `now` if `limits` allow it (and then counted), else how many
    /// seconds until one would be (at least 1). A text recorded later than `now` (the
    /// clock went back) counts as sent at `now`, and is kept so even when the turn is
    /// refused: a clock set back neither gives texts back nor stretches a window by the
    /// jump. Texts a day old go; the user keeps at most `per_day` rows.
    fn take_sms_turn(&mut self, user: &str, now: i64, limits: &SmsLimits) -> Result<SmsTurn>;
    /// The push device (issue 17) of `user`, or of `serial`; one per user.
    fn push_device_of(&self, user: &str) -> Result<Option<PushDevice>>;
    fn push_device(&self, serial: &str) -> Result<Option<PushDevice>>;
    /// Puts `device` in place of its user's device, if any (a new enrolment: the old
    /// phone stops working), in one transaction.
    fn put_push_device(&mut self, device: &PushDevice) -> Result<()>;
    /// The enrolment's second step: the phone's key (base64 PKCS#1) for the device of
    /// `serial`, if it is still waiting for one with the credential `credential_hash`
    /// valid at `now`; the credential is used up. Whether it was.
    fn activate_push_device(
        &mut self,
        serial: &str,
        credential_hash: &str,
        phone_key: &str,
        now: i64,
    ) -> Result<bool>;
    /// Removes `user`'s push device; whether there was one.
    fn remove_push_device(&mut self, user: &str) -> Result<bool>;
    /// Refuses pushes to `user` until `until` (a decline or a wrong number).
    fn suspend_push(&mut self, user: &str, until: i64) -> Result<()>;
    /// One push to `user` at `now` if the suspension and `limits` allow it (and then
    /// counted), else why not. Kept as for texts (`take_sms_turn`): a clock set back
    /// gives nothing back; pushes a day old go.
    fn take_push_turn(&mut self, user: &str, now: i64, limits: &PushLimits) -> Result<PushTurn>;
}

/// The administrative listings, page by page, and the time limit that stops a page that
/// takes too long.
pub trait Listings {
    /// Interrupts whatever statement is still running after `deadline`.
    fn set_time_limit(&mut self, deadline: std::time::Instant) -> Result<()>;

    /// Removes the limit, if any.
    fn clear_time_limit(&mut self);

    /// Up to `limit` users whose name sorts after `after`, in name order.
    fn users_after(&self, after: &str, limit: u32) -> Result<Vec<UserRecord>>;

    /// How many trust records valid at `now` each user from `first` to `last` (in name
    /// order) holds; users with none are absent.
    fn valid_trust_counts(&self, first: &str, last: &str, now: i64)
    -> Result<HashMap<String, u32>>;

    /// The users from `first` to `last` whose address another user has too.
    fn shared_addresses(&self, first: &str, last: &str) -> Result<Vec<String>>;
    /// The numbers of the users from `first` to `last` who have one, and whether another
    /// user has it too.
    fn phones_between(&self, first: &str, last: &str) -> Result<HashMap<String, (String, bool)>>;
    /// How many recovery codes each user from `first` to `last` has left; users with
    /// none are absent.
    fn recovery_counts(&self, first: &str, last: &str) -> Result<HashMap<String, u32>>;
    /// Up to `limit` trust records valid at `now` that come after rowid `after`, in rowid
    /// (creation) order, each with its rowid: one user's, or everyone's with `None`.
    fn trust_after(
        &self,
        user: Option<&str>,
        after: i64,
        limit: u32,
        now: i64,
    ) -> Result<Vec<(i64, TrustRecord)>>;

    /// Up to `limit` deferrals whose subject sorts after `after`, in subject order.
    fn deferrals_after(&self, after: &str, limit: u32) -> Result<Vec<Deferral>>;

    /// The deferrals that can apply to users from `first` to `last`: theirs and every
    /// group's.
    fn deferrals_for_users(&self, first: &str, last: &str) -> Result<Vec<Deferral>>;
}

/// A store connection lent for one call; it goes back when dropped.
pub type Lease<'a> = Box<dyn DerefMut<Target = dyn Store> + 'a>;

/// Where the engine gets its connections: for logins and changes, and apart for the
/// listings, so that a listing never takes a connection a login could use.
pub trait Stores: Send + Sync {
    fn get(&self) -> Result<Lease<'_>>;
    fn reader(&self) -> Result<Lease<'_>>;
    /// How many calls can hold a connection at once.
    fn size(&self) -> usize;
    /// `twofoldctl store check`: what the store is and holds, as (what, value) lines.
    fn check(&self) -> Result<Vec<(String, String)>>;
    /// `twofoldctl store migrate`: brings the schema to this version; returns the
    /// version found before.
    fn migrate(&self) -> Result<i64>;
    /// `twofoldctl store import FILE`: copies a host's SQLite file into this store, which
    /// must hold no factor yet. Returns how many rows each table received.
    fn import_sqlite(&self, path: &std::path::Path) -> Result<Vec<(String, String)>> {
        let _ = path;
        Err(StoreError::Unavailable(
            "only a PostgreSQL store ([store] backend = \"postgres\") imports a SQLite file".into(),
        ))
    }
}

/// Runs `f` on `store` and stops any statement still running after `limit`: an
/// administrative read gives up instead of holding its connection and a thread.
pub fn with_time_limit<T>(
    store: &mut (dyn Store + 'static),
    limit: Duration,
    f: impl FnOnce(&dyn Store) -> Result<T>,
) -> Result<T> {
    let deadline = crate::clock::monotonic() + limit;
    store.set_time_limit(deadline)?;
    let result = f(store);
    store.clear_time_limit();
    result.map_err(|e| {
        if crate::clock::monotonic() > deadline {
            StoreError::Unavailable(format!(
                "the read took longer than {} s and was stopped",
                limit.as_secs()
            ))
        } else {
            e
        }
    })
}
