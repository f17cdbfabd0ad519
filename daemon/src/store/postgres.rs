//! The PostgreSQL store: one database a fleet of hosts shares (docs/fleet.md).
//!
//! The engine's store port is synchronous (each call runs on a thread of its own); each
//! call here drives its statements on a small runtime of this store's, with
//! tokio-postgres pooled by deadpool, and never waits longer than the statement timeout.
//! Every change that decides a login is one transaction that first takes the user's lock
//! in the database (`pg_advisory_xact_lock`): the count is read, decided on and written
//! under a lock PostgreSQL holds, so no two hosts decide on the same count, and the lock
//! goes when the transaction ends or its connection drops. A connection that timed out
//! or broke is closed, never lent again; the pool opens a new one for the next call.

use super::schema::{POSTGRES, POSTGRES_BASELINE, POSTGRES_FIRST, SCHEMA_VERSION};
use super::{Lease, Listings, Result, Store, StoreError, Stores};
use crate::factor::FactorKind;
use crate::lockout::{self, Backoff, LockoutPolicy, Match};
use crate::model::{
    Attempt, Deferral, FactorState, Issued, PushDevice, PushLimits, PushTurn, SmsLimits, SmsTurn,
    TrustKind, TrustRecord, UserRecord,
};
use crate::recovery::StoredCode;
use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use std::cell::Cell;
use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_postgres::Row;
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::types::ToSql;

/// What `[store]` and `[fleet]` say, resolved: the password read, the host named.
pub struct PostgresOptions {
    pub url: String,
    pub password: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub pool_size: usize,
    pub statement_timeout: Duration,
    pub connect_timeout: Duration,
    /// Which hosts honour the trust this host creates: `host:NAME` or `group:NAME`.
    pub trust_scope: String,
    /// Shown in `pg_stat_activity`, so a database administrator sees which host it is.
    pub application_name: String,
}

/// The advisory-lock class of twofold's per-user locks (the other key is the name's hash;
/// two names with one hash only wait for each other).
const USER_LOCK: i32 = 0x7466;
/// The advisory lock two daemons starting together take around the migrations.
const MIGRATION_LOCK: i64 = 0x7466_6d69_6772;
/// A transaction left open by a host that froze holds its locks at most this long.
const IDLE_IN_TRANSACTION_MS: u64 = 5000;

#[path = "import.rs"]
mod import;

/// The pools of one database: connections for logins and changes, and one read-only
/// connection apart for the listings.
pub struct PostgresStores {
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
    writers: Pool,
    readers: Pool,
    size: usize,
    scope: Arc<str>,
    /// The longest one call waits for the database: the statement timeout, and a little
    /// for the network.
    call_limit: Duration,
    /// Whether this daemon has seen the schema at [`SCHEMA_VERSION`]; until then every
    /// call tries the migrations first (the database may be away when twofoldd starts).
    ready: AtomicBool,
    migrating: Mutex<()>,
    /// After a call found the server away, calls fail at once for as long as that call
    /// waited: a login makes several calls, and each must not wait the full limit again.
    quiet: Arc<Quiet>,
}

/// Until when calls do not wait for a server that just failed to answer, and why it
/// failed (repeated to those calls: the cause is what an administrator needs).
#[derive(Default)]
struct Quiet(Mutex<Option<(Instant, String)>>);

impl Quiet {
    fn failed(&self, waited: Duration, why: &str) {
        let until = crate::clock::monotonic() + waited;
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some((until, why.to_owned()));
    }

    fn check(&self) -> Result<()> {
        let quiet = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match &*quiet {
            Some((t, why)) if *t > crate::clock::monotonic() => Err(StoreError::Unavailable(
                format!("{why} (a moment ago; not waiting for the server again yet)"),
            )),
            _ => Ok(()),
        }
    }
}

impl PostgresStores {
    /// The pools; nothing is connected yet (see [`PostgresStores::migrate`]).
    pub fn new(o: PostgresOptions) -> Result<PostgresStores> {
        let mut config = tokio_postgres::Config::from_str(&o.url)
            .map_err(|e| StoreError::Unavailable(format!("[store] url: {e}")))?;
        require_tls_off_this_host(&mut config)?;
        if let Some(p) = &o.password {
            config.password(p.trim_end_matches(['\n', '\r']));
        }
        config
            .application_name(&o.application_name)
            .connect_timeout(o.connect_timeout)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30))
            // A server that stops answering mid-statement is given up on by the kernel too.
            .tcp_user_timeout(o.statement_timeout + o.connect_timeout);
        let limits = format!(
            "-c statement_timeout={} -c lock_timeout={} -c idle_in_transaction_session_timeout={}",
            o.statement_timeout.as_millis(),
            o.statement_timeout.as_millis(),
            IDLE_IN_TRANSACTION_MS
        );
        let tls = tls_connector(o.ca_file.as_deref())?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("twofold-postgres")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Unavailable(format!("cannot start a runtime: {e}")))?;
        let pool = |options: String, size: usize| -> Result<Pool> {
            let mut c = config.clone();
            c.options(&options);
            let manager = Manager::from_config(
                c,
                tls.clone(),
                ManagerConfig {
                    // A connection the server closed is noticed at once; a new one is
                    // opened in its place.
                    recycling_method: RecyclingMethod::Fast,
                },
            );
            Pool::builder(manager)
                .max_size(size)
                .runtime(deadpool_postgres::Runtime::Tokio1)
                .wait_timeout(Some(o.statement_timeout))
                .create_timeout(Some(o.connect_timeout))
                .recycle_timeout(Some(o.connect_timeout))
                .build()
                .map_err(|e| StoreError::Unavailable(format!("cannot make the pool: {e}")))
        };
        let writers = pool(limits.clone(), o.pool_size)?;
        let readers = pool(format!("{limits} -c default_transaction_read_only=on"), 1)?;
        Ok(PostgresStores {
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
            writers,
            readers,
            size: o.pool_size,
            scope: o.trust_scope.into(),
            call_limit: o.statement_timeout + o.connect_timeout,
            ready: AtomicBool::new(false),
            migrating: Mutex::new(()),
            quiet: Arc::default(),
        })
    }

    /// Brings the schema to [`SCHEMA_VERSION`], under a lock that makes a second daemon
    /// starting at the same moment wait and then find the work done. Returns the
    /// version found before.
    pub fn migrate(&self) -> Result<i64> {
        let _one = self.migrating.lock().unwrap_or_else(|p| p.into_inner());
        let mut store = self.lease(&self.writers)?;
        let found = store.migrate()?;
        self.ready.store(true, Ordering::Release);
        Ok(found)
    }

    /// What `twofoldctl store check` reports: the server, the schema, how much is kept.
    fn server_facts(&self) -> Result<Vec<(String, String)>> {
        self.lease(&self.readers)?.server_facts()
    }

    fn lease(&self, pool: &Pool) -> Result<PostgresStore> {
        self.quiet.check()?;
        let started = crate::clock::monotonic();
        let client = run_to_end(&self.handle, pool.get()).map_err(|e| {
            let why = pool_failure(e);
            self.quiet.failed(crate::clock::monotonic() - started, &why);
            StoreError::Unavailable(why)
        })?;
        Ok(PostgresStore {
            client,
            link: Link {
                handle: self.handle.clone(),
                limit: self.call_limit,
                deadline: None,
                broken: Cell::new(false),
                scope: self.scope.clone(),
                quiet: self.quiet.clone(),
            },
        })
    }

    /// A lease on a database whose schema this daemon has seen up to date.
    fn ready_lease(&self, pool: &Pool) -> Result<Leased> {
        if !self.ready.load(Ordering::Acquire) {
            self.migrate()?;
        }
        Ok(Leased(Some(self.lease(pool)?)))
    }
}

impl Drop for PostgresStores {
    fn drop(&mut self) {
        // Dropping a runtime waits for its threads, which is not allowed inside the
        // daemon's own runtime; let them go instead.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Stores for PostgresStores {
    fn get(&self) -> Result<Lease<'_>> {
        Ok(Box::new(self.ready_lease(&self.writers)?))
    }

    fn reader(&self) -> Result<Lease<'_>> {
        Ok(Box::new(self.ready_lease(&self.readers)?))
    }

    fn size(&self) -> usize {
        self.size
    }

    fn check(&self) -> Result<Vec<(String, String)>> {
        let mut out = vec![("backend".to_string(), "postgres".to_string())];
        out.push(("trust scope".to_string(), self.scope.to_string()));
        out.extend(self.server_facts()?);
        Ok(out)
    }

    fn migrate(&self) -> Result<i64> {
        PostgresStores::migrate(self)
    }

    fn import_sqlite(&self, path: &std::path::Path) -> Result<Vec<(String, String)>> {
        let mut lease = self.ready_lease(&self.writers)?;
        import::copy(lease.store(), path)
    }
}

fn pool_failure(e: deadpool_postgres::PoolError) -> String {
    use deadpool_postgres::PoolError;
    match e {
        PoolError::Timeout(_) => {
            "no PostgreSQL connection in time (the server is away, or every connection is busy)"
                .into()
        }
        PoolError::Backend(e) => describe(&e),
        other => other.to_string(),
    }
}

/// A server on another host is reached over TLS only: `sslmode=prefer` (the default)
/// would send codes and secrets in clear to whoever answers first without TLS.
fn require_tls_off_this_host(config: &mut tokio_postgres::Config) -> Result<()> {
    let local = config.get_hosts().iter().all(|h| match h {
        Host::Unix(_) => true,
        Host::Tcp(name) => ["localhost", "127.0.0.1", "::1"].contains(&name.as_str()),
    }) && !config.get_hosts().is_empty();
    if local {
        return Ok(());
    }
    match config.get_ssl_mode() {
        SslMode::Disable => Err(StoreError::Unavailable(
            "[store] url: sslmode=disable is for a server on this host only; use TLS (ca_file)"
                .into(),
        )),
        _ => {
            config.ssl_mode(SslMode::Require);
            Ok(())
        }
    }
}

/// rustls with the CA in `ca_file` (or the system's): the certificate and the server's
/// name are always verified; there is no switch to turn that off.
fn tls_connector(
    ca_file: Option<&std::path::Path>,
) -> Result<tokio_postgres_rustls::MakeRustlsConnect> {
    let config = crate::tls::client_config(ca_file)
        .map_err(|e| StoreError::Unavailable(format!("[store] {e}")))?;
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// A failure inside a call: PostgreSQL's (which may mean the connection is gone) or the
/// store's own.
enum Fail {
    Pg(tokio_postgres::Error),
    Store(StoreError),
}

impl From<tokio_postgres::Error> for Fail {
    fn from(e: tokio_postgres::Error) -> Self {
        Fail::Pg(e)
    }
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Fail::Store(e)
    }
}

type Pg<T> = std::result::Result<T, Fail>;

/// PostgreSQL's error without the data it may quote (a row's key in `detail`).
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) if db.code() == &tokio_postgres::error::SqlState::QUERY_CANCELED => {
            "a statement took longer than the statement timeout and was stopped".into()
        }
        Some(db) if db.code() == &tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE => {
            "a lock was held longer than the statement timeout".into()
        }
        Some(db) => format!(
            "PostgreSQL: {} (SQLSTATE {})",
            db.message(),
            db.code().code()
        ),
        None => {
            // The cause says what to fix ("certificate verify failed", "connection refused").
            let mut text = format!("PostgreSQL: {e}");
            let mut cause = std::error::Error::source(e);
            while let Some(c) = cause {
                text.push_str(&format!(": {c}"));
                cause = c.source();
            }
            text
        }
    }
}

/// Drives `work` on this store's runtime from the calling thread. Start-up checks run on
/// the daemon's runtime: they step out of it to block.
fn run_to_end<T>(handle: &tokio::runtime::Handle, work: impl std::future::Future<Output = T>) -> T {
    if tokio::runtime::Handle::try_current().is_ok() {
        tokio::task::block_in_place(|| handle.block_on(work))
    } else {
        handle.block_on(work)
    }
}

/// What each call needs besides its connection.
struct Link {
    handle: tokio::runtime::Handle,
    limit: Duration,
    deadline: Option<Instant>,
    /// Set when the connection may be in any state (a timeout, a lost server): it is then
    /// closed when the lease ends instead of going back to the pool.
    broken: Cell<bool>,
    scope: Arc<str>,
    quiet: Arc<Quiet>,
}

impl Link {
    /// Runs one call's statements to their end, or gives up after the limit.
    fn block<T>(&self, work: impl std::future::Future<Output = Pg<T>>) -> Result<T> {
        let limit = match self.deadline {
            Some(d) => d
                .saturating_duration_since(crate::clock::monotonic())
                .min(self.limit),
            None => self.limit,
        };
        let started = crate::clock::monotonic();
        // The timer is made inside this store's runtime (the caller may have none).
        match run_to_end(&self.handle, async {
            tokio::time::timeout(limit, work).await
        }) {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(Fail::Store(e))) => Err(e),
            Ok(Err(Fail::Pg(e))) => {
                let why = describe(&e);
                if e.as_db_error().is_none() || e.is_closed() {
                    self.broken.set(true);
                    self.quiet.failed(crate::clock::monotonic() - started, &why);
                }
                Err(StoreError::Unavailable(why))
            }
            Err(_) => {
                let why = format!("PostgreSQL did not answer within {} ms", limit.as_millis());
                self.broken.set(true);
                self.quiet.failed(crate::clock::monotonic() - started, &why);
                Err(StoreError::Unavailable(why))
            }
        }
    }
}

/// One pooled connection, lent for one call.
pub struct PostgresStore {
    client: Object,
    link: Link,
}

/// A lease as the engine sees it; a broken connection is closed when it ends.
struct Leased(Option<PostgresStore>);

impl Leased {
    fn store(&mut self) -> &mut PostgresStore {
        self.0.as_mut().unwrap_or_else(|| unreachable!())
    }
}

impl Deref for Leased {
    type Target = dyn Store;
    fn deref(&self) -> &(dyn Store + 'static) {
        self.0.as_ref().unwrap_or_else(|| unreachable!())
    }
}

impl DerefMut for Leased {
    fn deref_mut(&mut self) -> &mut (dyn Store + 'static) {
        self.store()
    }
}

impl Drop for Leased {
    fn drop(&mut self) {
        if let Some(store) = self.0.take()
            && store.link.broken.get()
        {
            drop(Object::take(store.client));
        }
    }
}

async fn exec(c: &impl GenericClient, sql: &str, p: &[&(dyn ToSql + Sync)]) -> Pg<u64> {
    let s = c.prepare_cached(sql).await?;
    Ok(c.execute(&s, p).await?)
}

async fn opt(c: &impl GenericClient, sql: &str, p: &[&(dyn ToSql + Sync)]) -> Pg<Option<Row>> {
    let s = c.prepare_cached(sql).await?;
    Ok(c.query_opt(&s, p).await?)
}

async fn one(c: &impl GenericClient, sql: &str, p: &[&(dyn ToSql + Sync)]) -> Pg<Row> {
    let s = c.prepare_cached(sql).await?;
    Ok(c.query_one(&s, p).await?)
}

async fn rows(c: &impl GenericClient, sql: &str, p: &[&(dyn ToSql + Sync)]) -> Pg<Vec<Row>> {
    let s = c.prepare_cached(sql).await?;
    Ok(c.query(&s, p).await?)
}

/// Takes `name`'s lock for the rest of the transaction: every decision about one user,
/// from any host, happens one at a time.
async fn lock_user(tx: &impl GenericClient, name: &str) -> Pg<()> {
    exec(
        tx,
        "SELECT pg_advisory_xact_lock($1, hashtext($2))::text",
        &[&USER_LOCK, &name],
    )
    .await?;
    Ok(())
}

/// The columns that `row_to_user` and `row_to_trust` read, in their order; statements
/// are made from them at compile time (the hot path formats nothing).
macro_rules! select_push_device {
    () => {
        "SELECT serial, \"user\", enrolled, credential_hash, credential_expires, phone_key, \
         server_key, created_at, suspended_until FROM push_devices"
    };
}
macro_rules! user_columns {
    () => {
        "name, secret, state, enrolled_at, last_step, last_success, failures, lock_count, \
         locked_until, generation, kind"
    };
}
macro_rules! trust_columns {
    () => {
        "id, \"user\", kind, identity_hash, description, service, created_at, last_used, \
         expires_at, idle_seconds, password_stamp"
    };
}
const SELECT_USER: &str = concat!("SELECT ", user_columns!(), " FROM users WHERE name = $1");

fn count(v: i64) -> u32 {
    u32::try_from(v.max(0)).unwrap_or(u32::MAX)
}

/// `user`'s rows of `table` (`sms_sends`, `push_sends`) that still count, newest first,
/// as in the SQLite store: those ahead of the clock were sent now, those a day old go,
/// and so do those beyond the newest `keep`.
async fn sends_of_the_day(
    tx: &impl GenericClient,
    table: &str,
    user: &str,
    now: i64,
    keep: u32,
) -> Pg<Vec<i64>> {
    exec(
        tx,
        &format!("UPDATE {table} SET sent_at = $2 WHERE \"user\" = $1 AND sent_at > $2"),
        &[&user, &now],
    )
    .await?;
    exec(
        tx,
        &format!("DELETE FROM {table} WHERE \"user\" = $1 AND sent_at <= $2::BIGINT - 86400"),
        &[&user, &now],
    )
    .await?;
    exec(
        tx,
        &format!(
            "DELETE FROM {table} WHERE ctid IN (SELECT ctid FROM {table}
                 WHERE \"user\" = $1 ORDER BY sent_at DESC OFFSET $2)"
        ),
        &[&user, &i64::from(keep)],
    )
    .await?;
    rows(
        tx,
        &format!("SELECT sent_at FROM {table} WHERE \"user\" = $1 ORDER BY sent_at DESC"),
        &[&user],
    )
    .await?
    .iter()
    .map(|r| Ok(r.try_get(0)?))
    .collect()
}

fn row_to_push_device(r: &Row) -> Pg<PushDevice> {
    Ok(PushDevice {
        serial: r.try_get(0)?,
        user: r.try_get(1)?,
        enrolled: r.try_get(2)?,
        credential_hash: r.try_get(3)?,
        credential_expires: r.try_get(4)?,
        phone_key: r.try_get(5)?,
        server_key: r.try_get(6)?,
        created_at: r.try_get(7)?,
        suspended_until: r.try_get(8)?,
    })
}

fn row_to_user(r: &Row) -> Pg<UserRecord> {
    let stored: String = r.try_get(10)?;
    let kind = FactorKind::parse(&stored).ok_or_else(|| {
        StoreError::Unavailable(format!("unknown factor kind {stored:?} in the database"))
    })?;
    Ok(UserRecord {
        name: r.try_get(0)?,
        secret: r.try_get(1)?,
        state: FactorState::from_column(&r.try_get::<_, String>(2)?),
        enrolled_at: r.try_get(3)?,
        last_step: r.try_get(4)?,
        last_success: r.try_get(5)?,
        failures: count(r.try_get(6)?),
        lock_count: count(r.try_get(7)?),
        locked_until: r.try_get(8)?,
        generation: r.try_get(9)?,
        kind,
    })
}

fn row_to_trust(r: &Row) -> Pg<TrustRecord> {
    let kind: String = r.try_get(2)?;
    Ok(TrustRecord {
        id: r.try_get(0)?,
        user: r.try_get(1)?,
        kind: TrustKind::from_column(&kind),
        identity_hash: r.try_get(3)?,
        description: r.try_get(4)?,
        service: r.try_get(5)?,
        created_at: r.try_get(6)?,
        last_used: r.try_get(7)?,
        expires_at: r.try_get(8)?,
        idle_seconds: r.try_get(9)?,
        password_stamp: r.try_get(10)?,
    })
}

fn row_to_deferral(r: &Row) -> Pg<Deferral> {
    Ok(Deferral {
        subject: r.try_get(0)?,
        until: r.try_get(1)?,
        reason: r.try_get(2)?,
        created_at: r.try_get(3)?,
        created_by: count(r.try_get(4)?),
    })
}

macro_rules! select_deferral {
    () => {
        "SELECT subject, until, reason, created_at, created_by FROM deferrals"
    };
}

async fn phantom_record(tx: &impl GenericClient, name: &str) -> Pg<UserRecord> {
    let counters = opt(
        tx,
        "SELECT failures, lock_count, locked_until FROM phantoms WHERE name = $1",
        &[&name],
    )
    .await?;
    let (failures, lock_count, locked_until) = match counters {
        Some(r) => (count(r.try_get(0)?), count(r.try_get(1)?), r.try_get(2)?),
        None => (0, 0, 0),
    };
    Ok(UserRecord::phantom(
        name,
        failures,
        lock_count,
        locked_until,
    ))
}

async fn put_phantom(
    tx: &impl GenericClient,
    name: &str,
    failures: u32,
    lock_count: u32,
    locked_until: i64,
    now: i64,
) -> Pg<()> {
    exec(
        tx,
        "INSERT INTO phantoms (name, failures, lock_count, locked_until, updated_at)
             VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (name) DO UPDATE SET failures = $2, lock_count = $3, locked_until = $4,
             updated_at = $5",
        &[
            &name,
            &i64::from(failures),
            &i64::from(lock_count),
            &locked_until,
            &now,
        ],
    )
    .await?;
    evict_phantoms(tx).await
}

/// Keeps `phantoms` within its bound; run for an enrolled name's wrong code too (see
/// sqlite.rs: the same work for both).
async fn evict_phantoms(tx: &impl GenericClient) -> Pg<()> {
    exec(
        tx,
        "DELETE FROM phantoms WHERE name IN (SELECT name FROM phantoms ORDER BY updated_at
             LIMIT GREATEST(0, (SELECT count(*) FROM phantoms) - $1))",
        &[&super::MAX_PHANTOMS],
    )
    .await?;
    Ok(())
}

/// Gives `name` a generation no conversation has seen (see sqlite.rs).
async fn new_generation(tx: &impl GenericClient, name: &str) -> Pg<()> {
    exec(
        tx,
        "UPDATE users SET generation = nextval('generation_counter') WHERE name = $1",
        &[&name],
    )
    .await?;
    Ok(())
}

async fn has_factor(tx: &impl GenericClient, name: &str) -> Pg<bool> {
    Ok(one(
        tx,
        "SELECT EXISTS (SELECT 1 FROM users WHERE name = $1)",
        &[&name],
    )
    .await?
    .try_get(0)?)
}

async fn replace_recovery_codes(
    tx: &impl GenericClient,
    user: &str,
    codes: &[StoredCode],
    now: i64,
) -> Pg<()> {
    exec(
        tx,
        "DELETE FROM recovery_codes WHERE \"user\" = $1",
        &[&user],
    )
    .await?;
    for c in codes {
        exec(
            tx,
            "INSERT INTO recovery_codes (\"user\", id, salt, hash, created_at)
                 VALUES ($1, $2, $3, $4, $5)",
            &[&user, &c.id, &c.salt, &c.hash, &now],
        )
        .await?;
    }
    Ok(())
}

async fn end_trust(tx: &impl GenericClient, user: &str) -> Pg<u64> {
    exec(tx, "DELETE FROM trust WHERE \"user\" = $1", &[&user]).await
}

/// A factor whose codes are sent to an address or number on record (as in the SQLite
/// store).
async fn insert_code_factor(
    tx: &impl GenericClient,
    name: &str,
    now: i64,
    kind: FactorKind,
) -> Pg<()> {
    let carried = phantom_record(tx, name).await?;
    exec(tx, "DELETE FROM phantoms WHERE name = $1", &[&name]).await?;
    exec(
        tx,
        "INSERT INTO users (name, secret, state, enrolled_at, failures, lock_count,
                 locked_until, kind)
             VALUES ($1, '', 'active', $2, $3, $4, $5, $6)",
        &[
            &name,
            &now,
            &i64::from(carried.failures),
            &i64::from(carried.lock_count),
            &carried.locked_until,
            &kind.as_str(),
        ],
    )
    .await?;
    new_generation(tx, name).await
}

/// Removes `name`'s factor if it is of `kind` (as in the SQLite store); whether there was
/// one.
async fn remove_code_factor(
    tx: &impl GenericClient,
    name: &str,
    kind: FactorKind,
    now: i64,
) -> Pg<bool> {
    let counters = opt(
        tx,
        "SELECT failures, lock_count, locked_until FROM users WHERE name = $1 AND kind = $2",
        &[&name, &kind.as_str()],
    )
    .await?;
    let Some(r) = counters else {
        return Ok(false);
    };
    exec(tx, "DELETE FROM users WHERE name = $1", &[&name]).await?;
    end_trust(tx, name).await?;
    exec(
        tx,
        "DELETE FROM recovery_codes WHERE \"user\" = $1",
        &[&name],
    )
    .await?;
    put_phantom(
        tx,
        name,
        count(r.try_get(0)?),
        count(r.try_get(1)?),
        r.try_get(2)?,
        now,
    )
    .await?;
    Ok(true)
}

/// Replaces the previous record of `r`'s kind for the same device and service in this
/// host's scope, then adds `r` there.
async fn insert_trust(tx: &impl GenericClient, r: &TrustRecord, scope: &str) -> Pg<()> {
    exec(
        tx,
        "DELETE FROM trust WHERE \"user\" = $1 AND identity_hash = $2 AND kind = $3
             AND service = $4 AND scope = $5",
        &[
            &r.user,
            &r.identity_hash,
            &r.kind.as_str(),
            &r.service,
            &scope,
        ],
    )
    .await?;
    exec(
        tx,
        "INSERT INTO trust (id, \"user\", kind, identity_hash, description, service,
                 created_at, last_used, expires_at, idle_seconds, password_stamp, scope)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        &[
            &r.id,
            &r.user,
            &r.kind.as_str(),
            &r.identity_hash,
            &r.description,
            &r.service,
            &r.created_at,
            &r.last_used,
            &r.expires_at,
            &r.idle_seconds,
            &r.password_stamp,
            &scope,
        ],
    )
    .await?;
    Ok(())
}

async fn unchanged(tx: &impl GenericClient, user: &str, generation: i64, now: i64) -> Pg<bool> {
    let row = opt(
        tx,
        "SELECT generation, locked_until FROM users WHERE name = $1",
        &[&user],
    )
    .await?;
    Ok(match row {
        Some(r) => r.try_get::<_, i64>(0)? == generation && r.try_get::<_, i64>(1)? <= now,
        None => false,
    })
}

async fn email_in(tx: &impl GenericClient, user: &str) -> Pg<Option<String>> {
    Ok(
        match opt(
            tx,
            "SELECT email FROM contacts WHERE \"user\" = $1",
            &[&user],
        )
        .await?
        {
            Some(r) => Some(r.try_get(0)?),
            None => None,
        },
    )
}

async fn phone_in(tx: &impl GenericClient, user: &str) -> Pg<Option<String>> {
    Ok(
        match opt(tx, "SELECT phone FROM phones WHERE \"user\" = $1", &[&user]).await? {
            Some(r) => Some(r.try_get(0)?),
            None => None,
        },
    )
}

impl PostgresStore {
    /// Every row `sql` returns, each made into a `T` by `f`.
    fn all<T>(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        f: impl Fn(&Row) -> Pg<T>,
    ) -> Result<Vec<T>> {
        let c = &self.client;
        self.link
            .block(async move { rows(c, sql, params).await?.iter().map(f).collect() })
    }

    fn migrate(&mut self) -> Result<i64> {
        let Self { client, link } = self;
        link.block(async move {
            let tx = client.transaction().await?;
            exec(
                &tx,
                "SELECT pg_advisory_xact_lock($1)::text",
                &[&MIGRATION_LOCK],
            )
            .await?;
            tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
                .await?;
            let found: i64 = match opt(&tx, "SELECT version FROM schema_version", &[]).await? {
                Some(r) => r.try_get(0)?,
                None => 0,
            };
            if found > SCHEMA_VERSION {
                return Err(StoreError::Unavailable(format!(
                    "schema version {found} is newer than this twofoldd ({SCHEMA_VERSION})"
                ))
                .into());
            }
            if found != 0 && found < POSTGRES_FIRST {
                return Err(StoreError::Unavailable(format!(
                    "schema version {found} was never a PostgreSQL schema of twofold"
                ))
                .into());
            }
            if found == 0 {
                tx.batch_execute(POSTGRES_BASELINE).await?;
            }
            if found == SCHEMA_VERSION {
                // Up to date: every host's start finds it so, and writes nothing.
                return Ok(found);
            }
            let from = found.max(POSTGRES_FIRST) - POSTGRES_FIRST;
            for sql in &POSTGRES[from as usize..] {
                tx.batch_execute(sql).await?;
            }
            exec(&tx, "DELETE FROM schema_version", &[]).await?;
            exec(
                &tx,
                "INSERT INTO schema_version (version) VALUES ($1)",
                &[&SCHEMA_VERSION],
            )
            .await?;
            tx.commit().await?;
            Ok(found)
        })
    }

    fn server_facts(&self) -> Result<Vec<(String, String)>> {
        let c = &self.client;
        self.link.block(async move {
            let mut out = Vec::new();
            let server: String = one(c, "SHOW server_version", &[]).await?.try_get(0)?;
            out.push(("server".to_string(), format!("PostgreSQL {server}")));
            let version: i64 = one(c, "SELECT version FROM schema_version", &[])
                .await?
                .try_get(0)?;
            out.push(("schema".to_string(), version.to_string()));
            let tls: bool = one(
                c,
                "SELECT COALESCE((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false)",
                &[],
            )
            .await?
            .try_get(0)?;
            out.push((
                "connection".to_string(),
                if tls { "TLS" } else { "not encrypted (this host only)" }.to_string(),
            ));
            for table in ["users", "trust", "deferrals", "recovery_codes"] {
                let n: i64 = one(c, &format!("SELECT count(*) FROM {table}"), &[])
                    .await?
                    .try_get(0)?;
                out.push((table.to_string(), n.to_string()));
            }
            Ok(out)
        })
    }
}

impl Store for PostgresStore {
    #[cfg(test)]
    fn sql_for_tests(&self, sql: &str) -> Result<()> {
        let c = &self.client;
        self.link
            .block(async move { Ok(c.batch_execute(sql).await?) })
    }

    fn schema_version(&self) -> Result<i64> {
        let c = &self.client;
        self.link.block(async move {
            Ok(one(c, "SELECT version FROM schema_version", &[])
                .await?
                .try_get(0)?)
        })
    }

    fn user(&self, name: &str) -> Result<Option<UserRecord>> {
        let c = &self.client;
        self.link.block(async move {
            match opt(c, SELECT_USER, &[&name]).await? {
                Some(r) => Ok(Some(row_to_user(&r)?)),
                None => Ok(None),
            }
        })
    }

    fn user_names(&self) -> Result<Vec<String>> {
        self.all("SELECT name FROM users", &[], |r| Ok(r.try_get(0)?))
    }

    fn put_pending(
        &mut self,
        name: &str,
        kind: FactorKind,
        secret: &str,
        now: i64,
        replace: bool,
        by_admin: bool,
        recovery: &[StoredCode],
    ) -> Result<Issued> {
        let Self { client, link } = self;
        link.block(async move {
            let tx = client.transaction().await?;
            lock_user(&tx, name).await?;
            let existing = match opt(
                &tx,
                "SELECT state, issued_by_admin FROM users WHERE name = $1
                     AND (kind NOT IN ('email', 'sms') OR NOT $2)",
                &[&name, &by_admin],
            )
            .await?
            {
                Some(r) => Some((
                    FactorState::from_column(&r.try_get::<_, String>(0)?),
                    r.try_get(1)?,
                )),
                None => None,
            };
            if let Err(refused) = lockout::may_issue(existing, replace, by_admin) {
                return Ok(refused);
            }
            let carried = phantom_record(&tx, name).await?;
            exec(&tx, "DELETE FROM phantoms WHERE name = $1", &[&name]).await?;
            exec(
                &tx,
                "INSERT INTO users (name, secret, state, enrolled_at, issued_by_admin, failures,
                         lock_count, locked_until, kind)
                     VALUES ($1, $2, 'pending', $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (name) DO UPDATE SET secret = $2, state = 'pending',
                     enrolled_at = $3, last_step = -1, last_success = 0, issued_by_admin = $4,
                     kind = $8",
                &[
                    &name,
                    &secret,
                    &now,
                    &by_admin,
                    &i64::from(carried.failures),
                    &i64::from(carried.lock_count),
                    &carried.locked_until,
                    &kind.as_str(),
                ],
            )
            .await?;
            end_trust(&tx, name).await?;
            new_generation(&tx, name).await?;
            replace_recovery_codes(&tx, name, recovery, now).await?;
            tx.commit().await?;
            Ok(Issued::Stored)
        })
    }

    fn put_confirmed(
        &mut self,
        name: &str,
        kind: FactorKind,
        secret: &str,
        step: i64,
        now: i64,
        recovery: &[StoredCode],
    ) -> Result<bool> {
        let Self { client, link } = self;
        link.block(async move {
            let tx = client.transaction().await?;
            lock_user(&tx, name).await?;
            let counters = match opt(&tx, SELECT_USER, &[&name]).await? {
                None => phantom_record(&tx, name).await?,
                Some(r) => {
                    let r = row_to_user(&r)?;
                    if !r.kind.is_sent_code() {
                        return Ok(false);
                    }
                    r
                }
            };
            if counters.locked_until > now {
                return Ok(false);
            }
            exec(&tx, "DELETE FROM phantoms WHERE name = $1", &[&name]).await?;
            exec(
                &tx,
                "INSERT INTO users (name, secret, state, enrolled_at, last_step, last_success,
                         issued_by_admin, failures, lock_count, locked_until, kind)
                     VALUES ($1, $2, 'active', $3, $4, $3, false, 0, $5, 0, $6)
                 ON CONFLICT (name) DO UPDATE SET secret = $2, state = 'active',
                     enrolled_at = $3, last_step = $4, last_success = $3,
                     issued_by_admin = false, failures = 0, locked_until = 0, kind = $6",
                &[
                    &name,
                    &secret,
                    &now,
                    &step,
                    &i64::from(counters.lock_count),
                    &kind.as_str(),
                ],
            )
            .await?;
            end_trust(&tx, name).await?;
            new_generation(&tx, name).await?;
            replace_recovery_codes(&tx, name, recovery, now).await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    fn attempt(
        &mut self,
        name: &str,
        source: &str,
        now: i64,
        policy: &LockoutPolicy,
        check: &dyn Fn(&UserRecord) -> std::result::Result<Option<Match>, String>,
    ) -> Result<Attempt> {
        let Self { client, link } = self;
        link.block(async move {
            let tx = client.transaction().await?;
            // The check and the count happen under this lock, which every host takes.
            lock_user(&tx, name).await?;
            let enrolled = match opt(&tx, SELECT_USER, &[&name]).await? {
                Some(r) => Some(row_to_user(&r)?),
                None => None,
            };
            let phantom = enrolled.is_none();
            // Read either way, as in sqlite.rs: the same statements for both.
            let counted = phantom_record(&tx, name).await?;
            let user = match enrolled {
                Some(user) => user,
                None => counted,
            };
            let backoff = match opt(
                &tx,
                "SELECT failures, until FROM backoff WHERE \"user\" = $1 AND source = $2",
                &[&name, &source],
            )
            .await?
            {
                Some(r) => Backoff {
                    failures: count(r.try_get(0)?),
                    until: r.try_get(1)?,
                },
                None => Backoff::default(),
            };
            let account = lockout::Account::of(&user, phantom);
            if let Some(refused) = lockout::refused_before_checking(&account, &backoff, now) {
                return Ok(refused);
            }
            let mut matched = check(&user).map_err(StoreError::Unavailable)?;
            if let Some(Match::Recovery(id)) = &matched {
                let there: bool = one(
                    &tx,
                    "SELECT EXISTS (SELECT 1 FROM recovery_codes WHERE \"user\" = $1 AND id = $2)",
                    &[&name, id],
                )
                .await?
                .try_get(0)?;
                if !there || phantom {
                    matched = None;
                }
            }
            let d = lockout::decide(&account, &backoff, matched.clone(), policy, now);
            if let (Some(_), Some(Match::Recovery(id))) = (&d.accepted, &matched) {
                exec(
                    &tx,
                    "DELETE FROM recovery_codes WHERE \"user\" = $1 AND id = $2",
                    &[&name, id],
                )
                .await?;
            }
            let c = d.counters;
            if let Some(pass) = d.accepted {
                exec(
                    &tx,
                    "UPDATE users SET last_step = COALESCE($2, last_step), last_success = $3,
                         failures = $4, lock_count = $5, locked_until = $6,
                         state = CASE WHEN $7 THEN 'active' ELSE state END WHERE name = $1",
                    &[
                        &name,
                        &pass.step,
                        &now,
                        &i64::from(c.failures),
                        &i64::from(c.lock_count),
                        &c.locked_until,
                        &pass.activate,
                    ],
                )
                .await?;
            } else if phantom {
                put_phantom(&tx, name, c.failures, c.lock_count, c.locked_until, now).await?;
            } else {
                exec(
                    &tx,
                    "UPDATE users SET failures = $2, lock_count = $3, locked_until = $4
                     WHERE name = $1",
                    &[
                        &name,
                        &i64::from(c.failures),
                        &i64::from(c.lock_count),
                        &c.locked_until,
                    ],
                )
                .await?;
                evict_phantoms(&tx).await?;
            }
            match d.backoff {
                None => {
                    exec(
                        &tx,
                        "DELETE FROM backoff WHERE \"user\" = $1 AND source = $2",
                        &[&name, &source],
                    )
                    .await?;
                }
                Some(b) => {
                    exec(
                        &tx,
                        "INSERT INTO backoff (\"user\", source, failures, until, updated_at)
                             VALUES ($1, $2, $3, $4, $5)
                         ON CONFLICT (\"user\", source) DO UPDATE SET failures = $3, until = $4,
                             updated_at = $5",
                        &[&name, &source, &i64::from(b.failures), &b.until, &now],
                    )
                    .await?;
                }
            }
            if d.ends_trust {
                end_trust(&tx, name).await?;
                new_generation(&tx, name).await?;
            }
            let outcome = d.attempt;
            tx.commit().await?;
            Ok(outcome)
        })
    }

    fn reset(&mut self, name: &str, now: i64) -> Result<bool> {
        let Self { client, link } = self;
        link.block(async move {
            let tx = client.transaction().await?;
            lock_user(&tx, name).await?;
            let removed = exec(&tx, "DELETE FROM users WHERE name = $1", &[&name]).await? > 0;
            end_trust(&tx, name).await?;
            exec(&tx, "DELETE FROM backoff WHERE \"user\" = $1", &[&name]).await?;
            exec(
                &tx,
                "DELETE FROM recovery_codes WHERE \"user\" = $1",
                &[&name],
            )
            .await?;
            exec(&tx, "DELETE FROM phones WHERE \"user\" = $1", &[&name]).await?;
            exec(
                &tx,
                "DELETE FROM push_devices WHERE \"user\" = $1",
                &[&name],
            )
            .await?;
            if email_in(&tx, name).await?.is_some() {
                insert_code_factor(&tx, name, now, FactorKind::Email).await?;
            }
            tx.commit().await?;
            Ok(removed)
        })
    }

    fn rename_user(&mut self, old: &str, new: &str) -> Result<bool> {
        let Self { client, link } = self;
        link.block(async move {
            let tx = client.transaction().await?;
            // Both names, always in the same order: two renames cannot wait for each other.
            let (first, second) = if old < new { (old, new) } else { (new, old) };
            lock_user(&tx, first).await?;
            lock_user(&tx, second).await?;
            if has_factor(&tx, new).await? {
                return Ok(false);
            }
            let moved = exec(
                &tx,
                "UPDATE users SET name = $2 WHERE name = $1",
                &[&old, &new],
            )
            .await?
                > 0;
            end_trust(&tx, old).await?;
            exec(&tx, "DELETE FROM backoff WHERE \"user\" = $1", &[&old]).await?;
            // `new`'s own rows win; `old`'s that would clash go.
            for (table, column, key) in [
                ("deferrals", "subject", None),
                ("contacts", "\"user\"", None),
                ("recovery_codes", "\"user\"", Some("id")),
                ("security_keys", "\"user\"", Some("fingerprint")),
                ("phones", "\"user\"", None),
                ("push_devices", "\"user\"", None),
            ] {
                let same_key = key
                    .map(|k| format!(" AND o.{k} = t.{k}"))
                    .unwrap_or_default();
                exec(
                    &tx,
                    &format!(
                        "UPDATE {table} t SET {column} = $2 WHERE t.{column} = $1 AND NOT EXISTS
                             (SELECT 1 FROM {table} o WHERE o.{column} = $2{same_key})"
                    ),
                    &[&old, &new],
                )
                .await?;
                exec(
                    &tx,
                    &format!("DELETE FROM {table} WHERE {column} = $1"),
                    &[&old],
                )
                .await?;
            }
            // No key: `new`'s texts and pushes and `old`'s all count, none is given back.
            for table in ["sms_sends", "push_sends"] {
                exec(
                    &tx,
                    &format!("UPDATE {table} SET \"user\" = $2 WHERE \"user\" = $1"),
                    &[&old, &new],
                )
                .await?;
            }
            tx.commit().await?;
            Ok(moved)
        })
    }

    fn unlock(&mut self, name: &str) -> Result<bool> {
        let Self { client, link } = self;
        link.block(async move {
            let tx = client.transaction().await?;
            lock_user(&tx, name).await?;
            let known = exec(
                &tx,
                "UPDATE users SET failures = 0, lock_count = 0, locked_until = 0 WHERE name = $1",
                &[&name],
            )
            .await?
                > 0;
            exec(&tx, "DELETE FROM backoff WHERE \"user\" = $1", &[&name]).await?;
            exec(&tx, "DELETE FROM phantoms WHERE name = $1", &[&name]).await?;
            exec(&tx, "DELETE FROM mail_quota WHERE \"user\" = $1", &[&name]).await?;
            exec(&tx, "DELETE FROM sms_sends WHERE \"user\" = $1", &[&name]).await?;
            exec(&tx, "DELETE FROM push_sends WHERE \"user\" = $1", &[&name]).await?;
            exec(
                &tx,
                "UPDATE push_devices SET suspended_until = 0 WHERE \"user\" = $1",
                &[&name],
            )
            .await?;
            tx.commit().await?;
            Ok(known)
        })
    }

    fn trust_for(&self, user: &str, identity_hash: &str) -> Result<Vec<TrustRecord>> {
        let scope = &*self.link.scope;
        self.all(
            concat!(
                "SELECT ",
                trust_columns!(),
                " FROM trust WHERE \"user\" = $1 AND identity_hash = $2 AND scope = $3"
            ),
            &[&user, &identity_hash, &scope],
            row_to_trust,
        )
    }

    fn trust_of(&self, user: &str) -> Result<Vec<TrustRecord>> {
        self.all(
            concat!(
                "SELECT ",
                trust_columns!(),
                " FROM trust WHERE \"user\" = $1 ORDER BY created_at"
            ),
            &[&user],
            row_to_trust,
        )
    }

    fn put_trust(&mut self, r: &TrustRecord) -> Result<()> {
        let Self { client, link } = self;
        let scope = link.scope.clone();
        link.block(async move {
            let tx = client.transaction().await?;
            lock_user(&tx, &r.user).await?;
            insert_trust(&tx, r, &scope).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn put_trust_if(&mut self, r: &TrustRecord, generation: i64) -> Result<bool> {
        let Self { client, link } = self;
        let scope = link.scope.clone();
        link.block(async move {
            let tx = client.transaction().await?;
            lock_user(&tx, &r.user).await?;
            if !unchanged(&tx, &r.user, generation, r.created_at).await? {
                return Ok(false);
            }
            insert_trust(&tx, r, &scope).await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    fn phantom_locked_until(&mut self, name: &str) -> Result<i64> {
        let c = &self.client;
        self.link
            .block(async move { Ok(phantom_record(c, name).await?.locked_until) })
    }

    fn still(&mut self, user: &str, generation: i64, now: i64) -> Result<bool> {
        let c = &self.client;
        self.link
            .block(async move { unchanged(c, user, generation, now).await })
    }

    fn touch_trust(&mut self, id: &str, now: i64) -> Result<()> {
        let c = &self.client;
        self.link.block(async move {
            exec(
                c,
                "UPDATE trust SET last_used = $2 WHERE id = $1",
                &[&id, &now],
            )
            .await?;
            Ok(())
        })
    }

    fn revoke_trust(&mut self, user: &str, id: Option<&str>) -> Result<usize> {
        let Self { client, link } = self;
        link.block(async move {
            let tx = client.transaction().await?;
            lock_user(&tx, user).await?;
            let removed = match id {
                None => end_trust(&tx, user).await?,
                Some(prefix) if prefix.len() < 8 => 0,
                Some(prefix) => {
                    let ids: Vec<String> =
                        rows(&tx, "SELECT id FROM trust WHERE \"user\" = $1", &[&user])
                            .await?
                            .iter()
                            .map(|r| r.try_get::<_, String>(0))
                            .collect::<std::result::Result<_, _>>()?;
                    let matching: Vec<&String> =
                        ids.iter().filter(|id| id.starts_with(prefix)).collect();
                    match matching.as_slice() {
                        [one_id] => exec(&tx, "DELETE FROM trust WHERE id = $1", &[one_id]).await?,
                        _ => 0,
                    }
                }
            };
            new_generation(&tx, user).await?;
            tx.commit().await?;
            Ok(removed as usize)
        })
    }

    fn purge_expired_trust(&mut self, now: i64, limit: u32) -> Result<usize> {
        let c = &self.client;
        self.link.block(async move {
            Ok(exec(
                c,
                "DELETE FROM trust WHERE seq IN
                     (SELECT seq FROM trust WHERE expires_at <= $1 LIMIT $2)",
                &[&now, &i64::from(limit)],
            )
            .await? as usize)
        })
    }

    fn purge_stale_counts(&mut self, now: i64) -> Result<()> {
        let c = &self.client;
        self.link.block(async move {
            exec(
                c,
                "DELETE FROM backoff WHERE until <= $1 AND updated_at <= $1::BIGINT - 86400",
                &[&now],
            )
            .await?;
            exec(
                c,
                "DELETE FROM phantoms WHERE locked_until <= $1 AND updated_at <= $1::BIGINT - 86400",
                &[&now],
            )
            .await?;
            exec(
                c,
                "DELETE FROM mail_quota WHERE window_start <= $1::BIGINT - 3600",
                &[&now],
            )
            .await?;
            exec(
                c,
                "DELETE FROM sms_sends WHERE sent_at <= $1::BIGINT - 86400",
                &[&now],
            )
            .await?;
            exec(
                c,
                "DELETE FROM push_sends WHERE sent_at <= $1::BIGINT - 86400",
                &[&now],
            )
            .await?;
            exec(
                c,
                "DELETE FROM push_devices WHERE NOT enrolled AND credential_expires <= $1",
                &[&now],
            )
            .await?;
            Ok(())
        })
    }

    fn set_deferral(&mut self, d: &Deferral) -> Result<()> {
        let c = &self.client;
        self.link.block(async move {
            exec(
                c,
                "INSERT INTO deferrals (subject, until, reason, created_at, created_by)
                     VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (subject) DO UPDATE SET until = $2, reason = $3, created_at = $4,
                     created_by = $5",
                &[
                    &d.subject,
                    &d.until,
                    &d.reason,
                    &d.created_at,
                    &i64::from(d.created_by),
                ],
            )
            .await?;
            Ok(())
        })
    }

    fn clear_deferral(&mut self, subject: &str) -> Result<bool> {
        let c = &self.client;
        self.link.block(async move {
            Ok(exec(c, "DELETE FROM deferrals WHERE subject = $1", &[&subject]).await? > 0)
        })
    }

    fn deferrals(&self) -> Result<Vec<Deferral>> {
        self.all(
            concat!(select_deferral!(), " ORDER BY subject"),
            &[],
            row_to_deferral,
        )
    }

    fn deferrals_of(&self, user: &str) -> Result<Vec<Deferral>> {
        self.deferrals_for_users(user, user)
    }

    fn set_email(&mut self, user: &str, email: Option<&str>, now: i64) -> Result<()> {
        let Self { client, link } = self;
        link.block(async move {
            let tx = client.transaction().await?;
            lock_user(&tx, user).await?;
            match email {
                Some(email) => {
                    exec(
                        &tx,
                        "INSERT INTO contacts (\"user\", email) VALUES ($1, $2)
                         ON CONFLICT (\"user\") DO UPDATE SET email = $2",
                        &[&user, &email],
                    )
                    .await?;
                    if !has_factor(&tx, user).await? {
                        insert_code_factor(&tx, user, now, FactorKind::Email).await?;
                    } else {
                        end_trust(&tx, user).await?;
                        new_generation(&tx, user).await?;
                    }
                }
                None => {
                    exec(&tx, "DELETE FROM contacts WHERE \"user\" = $1", &[&user]).await?;
                    if !remove_code_factor(&tx, user, FactorKind::Email, now).await? {
                        end_trust(&tx, user).await?;
                        new_generation(&tx, user).await?;
                    }
                }
            }
            tx.commit().await?;
            Ok(())
        })
    }

    fn take_mail_turn(
        &mut self,
        user: &str,
        source: &str,
        now: i64,
        per_hour: u32,
        user_per_hour: u32,
    ) -> Result<bool> {
        let Self { client, link } = self;
        link.block(async move {
            let tx = client.transaction().await?;
            lock_user(&tx, user).await?;
            // As in the SQLite store: a window ahead of the clock starts again now.
            exec(
                &tx,
                "DELETE FROM mail_quota WHERE \"user\" = $1 AND window_start <= $2::BIGINT - 3600",
                &[&user, &now],
            )
            .await?;
            exec(
                &tx,
                "UPDATE mail_quota SET window_start = $2 WHERE \"user\" = $1 AND window_start > $2",
                &[&user, &now],
            )
            .await?;
            let user_sent: i64 = one(
                &tx,
                "SELECT COALESCE(SUM(sent), 0)::BIGINT FROM mail_quota WHERE \"user\" = $1",
                &[&user],
            )
            .await?
            .try_get(0)?;
            let (start, sent): (i64, i64) = match opt(
                &tx,
                "SELECT window_start, sent FROM mail_quota WHERE \"user\" = $1 AND source = $2",
                &[&user, &source],
            )
            .await?
            {
                Some(r) => (r.try_get(0)?, r.try_get(1)?),
                None => (now, 0),
            };
            if sent >= i64::from(per_hour) || user_sent >= i64::from(user_per_hour) {
                tx.commit().await?;
                return Ok(false);
            }
            exec(
                &tx,
                "INSERT INTO mail_quota (\"user\", source, window_start, sent)
                     VALUES ($1, $2, $3, $4)
                 ON CONFLICT (\"user\", source) DO UPDATE SET window_start = $3, sent = $4",
                &[&user, &source, &start, &(sent + 1)],
            )
            .await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    fn put_recovery_codes(&mut self, user: &str, codes: &[StoredCode], now: i64) -> Result<bool> {
        let Self { client, link } = self;
        link.block(async move {
            let tx = client.transaction().await?;
            lock_user(&tx, user).await?;
            if !has_factor(&tx, user).await? {
                return Ok(false);
            }
            replace_recovery_codes(&tx, user, codes, now).await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    fn recovery_code(&self, user: &str, id: &str) -> Result<Option<StoredCode>> {
        let c = &self.client;
        self.link.block(async move {
            match opt(
                c,
                "SELECT id, salt, hash FROM recovery_codes WHERE \"user\" = $1 AND id = $2",
                &[&user, &id],
            )
            .await?
            {
                Some(r) => Ok(Some(StoredCode {
                    id: r.try_get(0)?,
                    salt: r.try_get(1)?,
                    hash: r.try_get(2)?,
                })),
                None => Ok(None),
            }
        })
    }

    fn recovery_codes_left(&self, user: &str) -> Result<u32> {
        let c = &self.client;
        self.link.block(async move {
            Ok(count(
                one(
                    c,
                    "SELECT count(*) FROM recovery_codes WHERE \"user\" = $1",
                    &[&user],
                )
                .await?
                .try_get(0)?,
            ))
        })
    }

    fn set_security_keys(&mut self, user: &str, fingerprints: &[String], now: i64) -> Result<()> {
        let Self { client, link } = self;
        link.block(async move {
            let tx = client.transaction().await?;
            lock_user(&tx, user).await?;
            exec(
                &tx,
                "DELETE FROM security_keys WHERE \"user\" = $1",
                &[&user],
            )
            .await?;
            for f in fingerprints {
                exec(
                    &tx,
                    "INSERT INTO security_keys (\"user\", fingerprint, added_at)
                         VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                    &[&user, f, &now],
                )
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    fn security_key_registered(&self, user: &str, fingerprint: &str) -> Result<bool> {
        let c = &self.client;
        self.link.block(async move {
            Ok(one(
                c,
                "SELECT EXISTS (SELECT 1 FROM security_keys
                     WHERE \"user\" = $1 AND fingerprint = $2)",
                &[&user, &fingerprint],
            )
            .await?
            .try_get(0)?)
        })
    }

    fn users_with_email(&self, email: &str, limit: u32) -> Result<Vec<String>> {
        self.all(
            "SELECT \"user\" FROM contacts WHERE lower(email) = lower($1)
                 ORDER BY \"user\" LIMIT $2",
            &[&email, &i64::from(limit)],
            |r| Ok(r.try_get(0)?),
        )
    }

    fn email_of(&self, user: &str) -> Result<Option<String>> {
        let c = &self.client;
        self.link.block(async move { email_in(c, user).await })
    }

    fn set_phone(
        &mut self,
        user: &str,
        phone: Option<&str>,
        now: i64,
        as_factor: bool,
    ) -> Result<()> {
        let Self { client, link } = self;
        link.block(async move {
            let tx = client.transaction().await?;
            lock_user(&tx, user).await?;
            let new_factor = as_factor && phone.is_some() && !has_factor(&tx, user).await?;
            if phone_in(&tx, user).await?.as_deref() == phone && !new_factor {
                return Ok(());
            }
            match phone {
                Some(phone) => {
                    exec(
                        &tx,
                        "INSERT INTO phones (\"user\", phone) VALUES ($1, $2)
                         ON CONFLICT (\"user\") DO UPDATE SET phone = $2",
                        &[&user, &phone],
                    )
                    .await?;
                }
                None => {
                    exec(&tx, "DELETE FROM phones WHERE \"user\" = $1", &[&user]).await?;
                    remove_code_factor(&tx, user, FactorKind::Sms, now).await?;
                }
            }
            // As in the SQLite store: codes texted to the old number end with it.
            end_trust(&tx, user).await?;
            if new_factor {
                insert_code_factor(&tx, user, now, FactorKind::Sms).await?;
            } else if has_factor(&tx, user).await? {
                new_generation(&tx, user).await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    fn phone_of(&self, user: &str) -> Result<Option<String>> {
        let c = &self.client;
        self.link.block(async move { phone_in(c, user).await })
    }

    fn users_with_phone(&self, phone: &str, limit: u32) -> Result<Vec<String>> {
        self.all(
            "SELECT \"user\" FROM phones WHERE phone = $1 ORDER BY \"user\" LIMIT $2",
            &[&phone, &i64::from(limit)],
            |r| Ok(r.try_get(0)?),
        )
    }

    fn take_sms_turn(&mut self, user: &str, now: i64, limits: &SmsLimits) -> Result<SmsTurn> {
        let Self { client, link } = self;
        link.block(async move {
            let tx = client.transaction().await?;
            lock_user(&tx, user).await?;
            let sent = sends_of_the_day(&tx, "sms_sends", user, now, limits.per_day).await?;
            let wait = limits.wait(&sent, now);
            if wait > 0 {
                tx.commit().await?;
                return Ok(SmsTurn::Wait(wait));
            }
            exec(
                &tx,
                "INSERT INTO sms_sends (\"user\", sent_at) VALUES ($1, $2)",
                &[&user, &now],
            )
            .await?;
            tx.commit().await?;
            Ok(SmsTurn::Granted)
        })
    }

    fn push_device_of(&self, user: &str) -> Result<Option<PushDevice>> {
        let c = &self.client;
        self.link.block(async move {
            opt(
                c,
                concat!(select_push_device!(), " WHERE \"user\" = $1"),
                &[&user],
            )
            .await?
            .map(|r| row_to_push_device(&r))
            .transpose()
        })
    }

    fn push_device(&self, serial: &str) -> Result<Option<PushDevice>> {
        let c = &self.client;
        self.link.block(async move {
            opt(
                c,
                concat!(select_push_device!(), " WHERE serial = $1"),
                &[&serial],
            )
            .await?
            .map(|r| row_to_push_device(&r))
            .transpose()
        })
    }

    fn put_push_device(&mut self, d: &PushDevice) -> Result<()> {
        let Self { client, link } = self;
        link.block(async move {
            let tx = client.transaction().await?;
            lock_user(&tx, &d.user).await?;
            exec(
                &tx,
                "DELETE FROM push_devices WHERE \"user\" = $1",
                &[&d.user],
            )
            .await?;
            exec(
                &tx,
                "INSERT INTO push_devices (serial, \"user\", enrolled, credential_hash,
                     credential_expires, phone_key, server_key, created_at, suspended_until)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                &[
                    &d.serial,
                    &d.user,
                    &d.enrolled,
                    &d.credential_hash,
                    &d.credential_expires,
                    &d.phone_key,
                    &d.server_key,
                    &d.created_at,
                    &d.suspended_until,
                ],
            )
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn activate_push_device(
        &mut self,
        serial: &str,
        credential_hash: &str,
        phone_key: &str,
        now: i64,
    ) -> Result<bool> {
        let c = &self.client;
        self.link.block(async move {
            Ok(exec(
                c,
                "UPDATE push_devices SET enrolled = TRUE, phone_key = $3, credential_hash = ''
                 WHERE serial = $1 AND NOT enrolled AND credential_hash = $2
                     AND credential_hash <> '' AND credential_expires > $4",
                &[&serial, &credential_hash, &phone_key, &now],
            )
            .await?
                == 1)
        })
    }

    fn remove_push_device(&mut self, user: &str) -> Result<bool> {
        let c = &self.client;
        self.link.block(async move {
            Ok(exec(c, "DELETE FROM push_devices WHERE \"user\" = $1", &[&user]).await? > 0)
        })
    }

    fn suspend_push(&mut self, user: &str, until: i64) -> Result<()> {
        let c = &self.client;
        self.link.block(async move {
            exec(
                c,
                "UPDATE push_devices SET suspended_until = GREATEST(suspended_until, $2)
                 WHERE \"user\" = $1",
                &[&user, &until],
            )
            .await?;
            Ok(())
        })
    }

    fn take_push_turn(&mut self, user: &str, now: i64, limits: &PushLimits) -> Result<PushTurn> {
        let Self { client, link } = self;
        link.block(async move {
            let tx = client.transaction().await?;
            lock_user(&tx, user).await?;
            let suspended: i64 = match opt(
                &tx,
                "SELECT suspended_until FROM push_devices WHERE \"user\" = $1",
                &[&user],
            )
            .await?
            {
                Some(r) => r.try_get(0)?,
                None => 0,
            };
            if suspended > now {
                return Ok(PushTurn::Suspended(suspended - now));
            }
            let sent = sends_of_the_day(&tx, "push_sends", user, now, limits.per_day).await?;
            let wait = limits.wait(&sent, now);
            if wait > 0 {
                tx.commit().await?;
                return Ok(PushTurn::Wait(wait));
            }
            let last_success: i64 = match opt(
                &tx,
                "SELECT last_success FROM users WHERE name = $1",
                &[&user],
            )
            .await?
            {
                Some(r) => r.try_get(0)?,
                None => 0,
            };
            let unanswered = sent.iter().filter(|t| **t > last_success).count();
            if unanswered >= limits.since_success as usize {
                tx.commit().await?;
                return Ok(PushTurn::UntilSuccess);
            }
            exec(
                &tx,
                "INSERT INTO push_sends (\"user\", sent_at) VALUES ($1, $2)",
                &[&user, &now],
            )
            .await?;
            tx.commit().await?;
            Ok(PushTurn::Granted)
        })
    }
}

impl Listings for PostgresStore {
    fn set_time_limit(&mut self, deadline: Instant) -> Result<()> {
        self.link.deadline = Some(deadline);
        Ok(())
    }

    fn clear_time_limit(&mut self) {
        self.link.deadline = None;
    }

    fn users_after(&self, after: &str, limit: u32) -> Result<Vec<UserRecord>> {
        self.all(
            concat!(
                "SELECT ",
                user_columns!(),
                " FROM users WHERE name > $1 ORDER BY name LIMIT $2"
            ),
            &[&after, &i64::from(limit)],
            row_to_user,
        )
    }

    fn valid_trust_counts(
        &self,
        first: &str,
        last: &str,
        now: i64,
    ) -> Result<HashMap<String, u32>> {
        self.all(
            "SELECT \"user\", count(*) FROM trust
                 WHERE \"user\" >= $1 AND \"user\" <= $2 AND expires_at > $3 GROUP BY \"user\"",
            &[&first, &last, &now],
            |r| Ok((r.try_get(0)?, count(r.try_get(1)?))),
        )
        .map(|pairs| pairs.into_iter().collect())
    }

    fn shared_addresses(&self, first: &str, last: &str) -> Result<Vec<String>> {
        self.all(
            "SELECT c.\"user\" FROM contacts c WHERE c.\"user\" >= $1 AND c.\"user\" <= $2
                     AND EXISTS (SELECT 1 FROM contacts d WHERE lower(d.email) = lower(c.email)
                         AND d.\"user\" <> c.\"user\")",
            &[&first, &last],
            |r| Ok(r.try_get(0)?),
        )
    }

    fn phones_between(&self, first: &str, last: &str) -> Result<HashMap<String, (String, bool)>> {
        self.all(
            "SELECT p.\"user\", p.phone, EXISTS (SELECT 1 FROM phones q
                 WHERE q.phone = p.phone AND q.\"user\" <> p.\"user\")
             FROM phones p WHERE p.\"user\" >= $1 AND p.\"user\" <= $2",
            &[&first, &last],
            |r| Ok((r.try_get(0)?, (r.try_get(1)?, r.try_get(2)?))),
        )
        .map(|rows| rows.into_iter().collect())
    }

    fn recovery_counts(&self, first: &str, last: &str) -> Result<HashMap<String, u32>> {
        self.all(
            "SELECT \"user\", count(*) FROM recovery_codes
                 WHERE \"user\" >= $1 AND \"user\" <= $2 GROUP BY \"user\"",
            &[&first, &last],
            |r| Ok((r.try_get(0)?, count(r.try_get(1)?))),
        )
        .map(|pairs| pairs.into_iter().collect())
    }

    fn trust_after(
        &self,
        user: Option<&str>,
        after: i64,
        limit: u32,
        now: i64,
    ) -> Result<Vec<(i64, TrustRecord)>> {
        let c = &self.client;
        self.link.block(async move {
            let limit = i64::from(limit);
            let found = match user {
                Some(user) => {
                    rows(
                        c,
                        concat!(
                            "SELECT ",
                            trust_columns!(),
                            ", seq FROM trust WHERE \"user\" = $1 AND seq > $2 AND expires_at > $3 \
                             ORDER BY seq LIMIT $4"
                        ),
                        &[&user, &after, &now, &limit],
                    )
                    .await?
                }
                None => rows(
                    c,
                    concat!(
                        "SELECT ",
                        trust_columns!(),
                        ", seq FROM trust WHERE seq > $1 AND expires_at > $2 ORDER BY seq LIMIT $3"
                    ),
                    &[&after, &now, &limit],
                )
                .await?,
            };
            found
                .iter()
                .map(|r| Ok((r.try_get(11)?, row_to_trust(r)?)))
                .collect()
        })
    }

    fn deferrals_after(&self, after: &str, limit: u32) -> Result<Vec<Deferral>> {
        self.all(
            concat!(
                select_deferral!(),
                " WHERE subject > $1 ORDER BY subject LIMIT $2"
            ),
            &[&after, &i64::from(limit)],
            row_to_deferral,
        )
    }

    fn deferrals_for_users(&self, first: &str, last: &str) -> Result<Vec<Deferral>> {
        // Group subjects run from `@` up to `A` (see sqlite's listing.rs); text sorts as
        // bytes here too (COLLATE "C").
        self.all(
            concat!(
                select_deferral!(),
                " WHERE (subject >= $1 AND subject <= $2) OR (subject >= '@' AND subject < 'A')"
            ),
            &[&first, &last],
            row_to_deferral,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str) -> tokio_postgres::Config {
        tokio_postgres::Config::from_str(url).unwrap()
    }

    #[test]
    fn a_server_on_another_host_is_reached_over_tls_only() {
        let mut remote = config("postgresql://twofold@db.example.org/twofold");
        assert_eq!(remote.get_ssl_mode(), SslMode::Prefer);
        require_tls_off_this_host(&mut remote).unwrap();
        assert_eq!(
            remote.get_ssl_mode(),
            SslMode::Require,
            "prefer falls back to clear text"
        );
        let mut clear = config("postgresql://twofold@db.example.org/twofold?sslmode=disable");
        let e = require_tls_off_this_host(&mut clear)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("sslmode=disable") && e.contains("this host only"),
            "{e}"
        );
        let mut mixed =
            config("postgresql://twofold@localhost,db.example.org/twofold?sslmode=disable");
        assert!(
            require_tls_off_this_host(&mut mixed).is_err(),
            "one remote host is enough"
        );
    }

    #[test]
    fn a_server_on_this_host_may_go_without_tls() {
        for url in [
            "postgresql://twofold@127.0.0.1/twofold?sslmode=disable",
            "postgresql://twofold@localhost:5433/twofold",
            "postgresql://twofold@%2Frun%2Fpostgresql/twofold",
        ] {
            let mut c = config(url);
            let before = c.get_ssl_mode();
            require_tls_off_this_host(&mut c).unwrap();
            assert_eq!(c.get_ssl_mode(), before, "{url}");
        }
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("ca.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = tls_connector(Some(&empty)).err().unwrap().to_string();
        assert!(
            e.contains("[store] ca_file") && e.contains("no PEM certificate"),
            "{e}"
        );
        let missing = dir.path().join("missing.pem");
        let e = tls_connector(Some(&missing)).err().unwrap().to_string();
        assert!(e.contains("missing.pem"), "{e}");
    }

    #[test]
    fn a_broken_url_stops_the_start_naming_the_key() {
        let options = |url: &str| PostgresOptions {
            url: url.into(),
            password: None,
            ca_file: None,
            pool_size: 1,
            statement_timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            trust_scope: "host:t".into(),
            application_name: "t".into(),
        };
        let e = PostgresStores::new(options("postgresql://twofold@db/twofold?sslmode=sometimes"))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("[store] url"), "{e}");
    }
}
