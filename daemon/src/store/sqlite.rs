//! The SQLite store: secrets, replay state and failure counters. One file, WAL, 0600 in a
//! 0700 directory. Every change that decides a login happens inside one IMMEDIATE
//! transaction, so concurrent logins (even from several daemons) see a consistent count.

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Listings, Result, Store, StoreError};

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        // Said in words an administrator can act on; SQLite's own detail messages may
        // quote a statement's values, so only the error's kind is told.
        use rusqlite::ErrorCode as C;
        StoreError::Unavailable(match e {
            rusqlite::Error::SqliteFailure(f, _) => match f.code {
                C::ReadOnly => {
                    "the database cannot be written (a read-only file system or file)".into()
                }
                C::DiskFull => "the disk is full".into(),
                C::SystemIoFailure => "a disk I/O error".into(),
                C::DatabaseBusy | C::DatabaseLocked => {
                    "the database is locked by another program".into()
                }
                C::DatabaseCorrupt | C::NotADatabase => {
                    "the file is not an intact twofold database".into()
                }
                C::CannotOpen => "the database file cannot be opened".into(),
                C::PermissionDenied => "permission denied".into(),
                code => format!("{code:?}"),
            },
            other => other.to_string(),
        })
    }
}

use crate::factor::FactorKind;
use crate::lockout::{self, Backoff, LockoutPolicy, Match};
use crate::model::{
    Attempt, Deferral, FactorState, Issued, PushDevice, PushLimits, PushTurn, SmsLimits, SmsTurn,
    TrustKind, TrustRecord, UserRecord,
};
use crate::recovery::StoredCode;

/// The columns that `row_to_user` and `row_to_trust` read, in their order.
macro_rules! select_user {
    () => {
        "SELECT name, secret, state, enrolled_at, last_step, last_success, failures, lock_count, locked_until, \
         generation, kind FROM users"
    };
}
macro_rules! select_push_device {
    () => {
        "SELECT serial, user, enrolled, credential_hash, credential_expires, phone_key, server_key, \
         created_at, suspended_until FROM push_devices"
    };
}
macro_rules! trust_columns {
    () => {
        "id, user, kind, identity_hash, description, service, created_at, last_used, expires_at, \
         idle_seconds, password_stamp"
    };
}
macro_rules! select_trust {
    () => {
        concat!("SELECT ", trust_columns!(), " FROM trust")
    };
}
macro_rules! select_deferral {
    () => {
        "SELECT subject, until, reason, created_at, created_by FROM deferrals"
    };
}
// After the macros: the listings' statements are made from them.
#[path = "listing.rs"]
mod listing;
#[path = "pool.rs"]
mod pool;
pub use pool::{StoreGuard, StorePool};

pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
    /// The device and inode of the file opened (None: in memory). A file removed or
    /// replaced under the running daemon is written to no more: a code accepted into an
    /// unlinked file would be forgotten at the next start, and could be replayed then.
    file: Option<(u64, u64)>,
}

pub(crate) use super::schema::{SCHEMA_VERSION, SQLITE as MIGRATIONS};

/// Names without a factor whose wrong codes are counted (see `phantoms`) at most; beyond
/// it the least recently tried go first.
pub const MAX_PHANTOMS: i64 = 10_000;

/// Opens the database file, never through a symbolic link.
fn connect(path: &Path) -> rusqlite::Result<Connection> {
    Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_NOFOLLOW,
    )
}

/// Gives `name` a generation no conversation has seen: whatever was open for the user
/// ends at its next step.
fn new_generation(tx: &rusqlite::Transaction<'_>, name: &str) -> rusqlite::Result<()> {
    tx.prepare_cached("UPDATE generation_counter SET n = n + 1")?
        .execute([])?;
    tx.prepare_cached(
        "UPDATE users SET generation = (SELECT n FROM generation_counter) WHERE name = ?1",
    )?
    .execute([name])?;
    Ok(())
}

impl SqliteStore {
    /// A write transaction that takes the database's write lock at once: what it reads
    /// stays so until it commits, also against another daemon on the same file.
    fn immediate(&mut self) -> Result<rusqlite::Transaction<'_>> {
        self.still_the_file()?;
        Ok(self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?)
    }

    /// Whether `path` still names the file this connection has open.
    fn still_the_file(&self) -> Result<()> {
        let Some(opened) = self.file else {
            return Ok(());
        };
        let now = std::fs::symlink_metadata(&self.path)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        if now == Some(opened) {
            return Ok(());
        }
        Err(StoreError::Unavailable(format!(
            "{}: the database file was removed or replaced while twofoldd ran; nothing more is written to it: restore it and restart twofoldd",
            self.path.display()
        )))
    }

    /// Opens (creating if needed) the database at `path`. Its directory is created 0700.
    /// The directory and the database files must be owned by root or by the daemon's own
    /// uid, be no symbolic links, and the directory must be private (0700): root would
    /// otherwise write to, and chmod, whatever a link points at (docs/security.md,
    /// issue 15 item 5b).
    pub fn open(path: &Path) -> Result<SqliteStore> {
        SqliteStore::open_owned_by(path, &[0, nix::unistd::geteuid().as_raw()])
    }

    /// [`SqliteStore::open`], with the uids that may own the directory and files.
    fn open_owned_by(path: &Path, owners: &[u32]) -> Result<SqliteStore> {
        let shown = path.display().to_string();
        let dir = path
            .parent()
            .ok_or_else(|| StoreError::Unavailable(format!("{shown} has no directory")))?;
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        let refused = |p: &Path, why: String| StoreError::NotPrivate(p.display().to_string(), why);
        let meta = match std::fs::symlink_metadata(dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .map_err(|e| {
                        StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
                    })?;
                std::fs::symlink_metadata(dir)
            }
            other => other,
        }
        .map_err(|e| StoreError::Unavailable(format!("{}: {e}", dir.display())))?;
        if meta.file_type().is_symlink() {
            return Err(refused(
                dir,
                "it is a symbolic link; name the real directory in `database`".into(),
            ));
        }
        if !meta.is_dir() {
            return Err(refused(dir, "not a directory".into()));
        }
        if !owners.contains(&meta.uid()) {
            return Err(refused(dir, owner_problem(meta.uid(), owners)));
        }
        if meta.mode() & 0o077 != 0 {
            return Err(refused(
                dir,
                format!("mode {:o}, expected 0700", meta.mode() & 0o777),
            ));
        }
        // Nobody but the owners can add entries to the directory now, so what lstat sees
        // here stays so; SQLite opens every file with O_NOFOLLOW on top.
        for p in database_files(path) {
            match std::fs::symlink_metadata(&p) {
                Ok(m) => check_file(&p, &m, owners)?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(StoreError::Unavailable(format!("{}: {e}", p.display())));
                }
            }
        }
        let conn = connect(path).map_err(|e| match e {
            rusqlite::Error::SqliteFailure(f, _)
                if f.extended_code == rusqlite::ffi::SQLITE_CANTOPEN_SYMLINK =>
            {
                refused(
                    path,
                    "a directory on its path is a symbolic link; name the real path in `database`"
                        .into(),
                )
            }
            other => other.into(),
        })?;
        let mut store = SqliteStore {
            conn,
            path: path.to_owned(),
            file: None,
        };
        // At start, which file is as important as what went wrong with it.
        let at_file = |e: StoreError| match e {
            StoreError::Unavailable(why) => StoreError::Unavailable(format!("{shown}: {why}")),
            other => other,
        };
        store.configure().map_err(at_file)?;
        store.migrate().map_err(at_file)?;
        tighten_file_modes(path, owners)?;
        // The file exists now (the migration wrote it): this is the one to keep writing.
        let opened = std::fs::symlink_metadata(path)
            .map_err(|e| StoreError::Unavailable(format!("{shown}: {e}")))?;
        store.file = Some((opened.dev(), opened.ino()));
        Ok(store)
    }

    /// One more connection to the file this store has open (checked, migrated and
    /// tightened already), for [`StorePool`].
    fn another_connection(&self) -> Result<SqliteStore> {
        let mut store = SqliteStore {
            conn: connect(&self.path)?,
            path: self.path.clone(),
            file: self.file,
        };
        store.configure()?;
        Ok(store)
    }

    /// A connection to the same file that cannot write (the listings'): SQLite opens it
    /// read-only, and `query_only` refuses every change on top.
    fn read_only_connection(&self) -> Result<SqliteStore> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_NOFOLLOW,
        )?;
        conn.busy_timeout(Duration::from_secs(3))?;
        conn.pragma_update(None, "query_only", true)?;
        conn.pragma_update(None, "cache_size", -512)?;
        Ok(SqliteStore {
            conn,
            path: self.path.clone(),
            file: self.file,
        })
    }

    /// An in-memory store for unit tests.
    pub fn open_in_memory() -> Result<SqliteStore> {
        let mut store = SqliteStore {
            conn: Connection::open_in_memory()?,
            path: PathBuf::new(),
            file: None,
        };
        store.configure()?;
        store.migrate()?;
        Ok(store)
    }

    fn configure(&mut self) -> Result<()> {
        // Logins wait at most this long for another writer; then they fail closed.
        self.conn.busy_timeout(Duration::from_secs(3))?;
        self.conn.pragma_update(None, "journal_mode", "WAL")?;
        // NORMAL (WAL): a commit is durable across a crash of twofoldd, and reaches the
        // disk at the next checkpoint; a power cut may lose the last commits. A step lost
        // that way could be replayed only until its code expires (90 s), which is less than
        // a reboot takes; in exchange a login costs no fsync (docs/security.md).
        self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        // Each pooled connection has its own page cache; the kernel's keeps the file
        // anyway. 512 KiB each (SQLite's default is 2 MiB) holds the B-tree's upper pages.
        self.conn.pragma_update(None, "cache_size", -512)?;
        Ok(())
    }

    fn migrate(&mut self) -> Result<()> {
        let tx = self.immediate()?;
        tx.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")?;
        let current: i64 = tx
            .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
            .optional()?
            .unwrap_or(0);
        if current > SCHEMA_VERSION {
            return Err(StoreError::Unavailable(format!(
                "schema version {current} is newer than this twofoldd ({SCHEMA_VERSION})"
            )));
        }
        for sql in &MIGRATIONS[current as usize..] {
            tx.execute_batch(sql)?;
        }
        tx.execute("DELETE FROM schema_version", [])?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES (?1)",
            [SCHEMA_VERSION],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The raw connection, for tests that break it on purpose.
    #[cfg(test)]
    pub fn conn_for_tests(&self) -> &Connection {
        &self.conn
    }
}

impl Store for SqliteStore {
    #[cfg(test)]
    fn sql_for_tests(&self, sql: &str) -> Result<()> {
        Ok(self.conn.execute_batch(sql)?)
    }

    fn schema_version(&self) -> Result<i64> {
        Ok(self
            .conn
            .query_row("SELECT version FROM schema_version", [], |r| r.get(0))?)
    }

    fn user(&self, name: &str) -> Result<Option<UserRecord>> {
        // Cached statements: the hot path parses no SQL after the first login.
        Ok(self
            .conn
            .prepare_cached(SELECT_USER_BY_NAME)?
            .query_row([name], row_to_user)
            .optional()?)
    }

    fn user_names(&self) -> Result<Vec<String>> {
        let mut stmt = self.conn.prepare("SELECT name FROM users")?;
        let rows = stmt
            .query_map([], |r| r.get(0))?
            .collect::<std::result::Result<Vec<String>, _>>()?;
        Ok(rows)
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
        let tx = self.immediate()?;
        // An e-mail or SMS factor gives way to an administrator's app without `replace` (it is
        // the weaker one); to the user's own only as any active factor does (never).
        let existing: Option<(FactorState, bool)> = tx
            .query_row(
                "SELECT state, issued_by_admin FROM users WHERE name = ?1
                     AND (kind NOT IN ('email', 'sms') OR NOT ?2)",
                params![name, by_admin],
                |r| Ok((FactorState::from_column(&r.get::<_, String>(0)?), r.get(1)?)),
            )
            .optional()?;
        if let Err(refused) = lockout::may_issue(existing, replace, by_admin) {
            return Ok(refused);
        }
        // Wrong codes counted before the name had a factor stay with it.
        let carried = phantom_record(&tx, name)?;
        tx.execute("DELETE FROM phantoms WHERE name = ?1", [name])?;
        tx.execute(
            "INSERT INTO users (name, secret, state, enrolled_at, issued_by_admin, failures,
                     lock_count, locked_until, kind)
                 VALUES (?1, ?2, 'pending', ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT(name) DO UPDATE SET secret = ?2, state = 'pending', enrolled_at = ?3,
                 last_step = -1, last_success = 0, issued_by_admin = ?4, kind = ?8",
            params![
                name,
                secret,
                now,
                by_admin,
                carried.failures,
                carried.lock_count,
                carried.locked_until,
                kind.as_str()
            ],
        )?;
        // A new secret ends every trust the old one earned, and every open conversation;
        // it comes with new recovery codes.
        tx.execute("DELETE FROM trust WHERE user = ?1", [name])?;
        new_generation(&tx, name)?;
        replace_recovery_codes(&tx, name, recovery, now)?;
        tx.commit()?;
        Ok(Issued::Stored)
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
        let tx = self.immediate()?;
        let existing = tx
            .prepare_cached(SELECT_USER_BY_NAME)?
            .query_row([name], row_to_user)
            .optional()?;
        let counters = match existing {
            None => phantom_record(&tx, name)?,
            Some(r) if r.kind.is_sent_code() => r,
            Some(_) => return Ok(false),
        };
        if counters.locked_until > now {
            return Ok(false);
        }
        tx.execute("DELETE FROM phantoms WHERE name = ?1", [name])?;
        tx.execute(
            "INSERT INTO users (name, secret, state, enrolled_at, last_step, last_success,
                     issued_by_admin, failures, lock_count, locked_until, kind)
                 VALUES (?1, ?2, 'active', ?3, ?4, ?3, 0, 0, ?5, 0, ?6)
             ON CONFLICT(name) DO UPDATE SET secret = ?2, state = 'active', enrolled_at = ?3,
                 last_step = ?4, last_success = ?3, issued_by_admin = 0, failures = 0,
                 locked_until = 0, kind = ?6",
            params![name, secret, now, step, counters.lock_count, kind.as_str()],
        )?;
        tx.execute("DELETE FROM trust WHERE user = ?1", [name])?;
        new_generation(&tx, name)?;
        replace_recovery_codes(&tx, name, recovery, now)?;
        tx.commit()?;
        Ok(true)
    }

    fn attempt(
        &mut self,
        name: &str,
        source: &str,
        now: i64,
        policy: &LockoutPolicy,
        check: &dyn Fn(&UserRecord) -> std::result::Result<Option<Match>, String>,
    ) -> Result<Attempt> {
        let tx = self.immediate()?;
        let enrolled = tx
            .prepare_cached(SELECT_USER_BY_NAME)?
            .query_row([name], row_to_user)
            .optional()?;
        // A name without a factor goes through the same counting, waits and locks, kept
        // in `phantoms`, and no code ever passes for it.
        let phantom = enrolled.is_none();
        // The name's phantom row is read either way (an enrolled name has none): the same
        // statements for both, so the time does not tell them apart.
        let counted = phantom_record(&tx, name)?;
        let user = match enrolled {
            Some(user) => user,
            None => counted,
        };
        let backoff = tx
            .prepare_cached("SELECT failures, until FROM backoff WHERE user = ?1 AND source = ?2")?
            .query_row([name, source], |r| {
                Ok(Backoff {
                    failures: r.get(0)?,
                    until: r.get(1)?,
                })
            })
            .optional()?
            .unwrap_or_default();
        let account = lockout::Account::of(&user, phantom);
        if let Some(refused) = lockout::refused_before_checking(&account, &backoff, now) {
            return Ok(refused);
        }
        let mut matched = check(&user).map_err(StoreError::Unavailable)?;
        // A recovery code passes only while it is still there (another login may have
        // used it since it was checked), and goes with the pass.
        if let Some(Match::Recovery(id)) = &matched {
            let there: bool = tx
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM recovery_codes WHERE user = ?1 AND id = ?2)",
                )?
                .query_row([name, id], |r| r.get(0))?;
            if !there || phantom {
                matched = None;
            }
        }
        let d = lockout::decide(&account, &backoff, matched.clone(), policy, now);
        if let (Some(_), Some(Match::Recovery(id))) = (&d.accepted, &matched) {
            tx.prepare_cached("DELETE FROM recovery_codes WHERE user = ?1 AND id = ?2")?
                .execute([name, id])?;
        }
        let c = d.counters;
        if let Some(pass) = d.accepted {
            tx.prepare_cached(
                "UPDATE users SET last_step = COALESCE(?2, last_step), last_success = ?3,
                     failures = ?4, lock_count = ?5, locked_until = ?6,
                     state = CASE WHEN ?7 THEN 'active' ELSE state END WHERE name = ?1",
            )?
            .execute(params![
                name,
                pass.step,
                now,
                c.failures,
                c.lock_count,
                c.locked_until,
                pass.activate
            ])?;
        } else if phantom {
            put_phantom(&tx, name, c.failures, c.lock_count, c.locked_until, now)?;
        } else {
            tx.prepare_cached(
                "UPDATE users SET failures = ?2, lock_count = ?3, locked_until = ?4 WHERE name = ?1",
            )?
            .execute(params![name, c.failures, c.lock_count, c.locked_until])?;
            evict_phantoms(&tx)?;
        }
        match d.backoff {
            None => {
                tx.prepare_cached("DELETE FROM backoff WHERE user = ?1 AND source = ?2")?
                    .execute([name, source])?;
            }
            Some(b) => {
                tx.prepare_cached(
                    "INSERT INTO backoff (user, source, failures, until, updated_at)
                         VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT(user, source) DO UPDATE SET failures = ?3, until = ?4, updated_at = ?5",
                )?
                .execute(params![name, source, b.failures, b.until, now])?;
            }
        }
        if d.ends_trust {
            tx.execute("DELETE FROM trust WHERE user = ?1", [name])?;
            new_generation(&tx, name)?;
        }
        let outcome = d.attempt;
        tx.commit()?;
        Ok(outcome)
    }

    fn reset(&mut self, name: &str, now: i64) -> Result<bool> {
        let tx = self.immediate()?;
        let removed = tx.execute("DELETE FROM users WHERE name = ?1", [name])? > 0;
        tx.execute("DELETE FROM trust WHERE user = ?1", [name])?;
        tx.execute("DELETE FROM backoff WHERE user = ?1", [name])?;
        tx.execute("DELETE FROM recovery_codes WHERE user = ?1", [name])?;
        // A lost phone often holds the SIM too: its number gets no more codes, and its
        // push app no more pushes.
        tx.execute("DELETE FROM phones WHERE user = ?1", [name])?;
        tx.execute("DELETE FROM push_devices WHERE user = ?1", [name])?;
        // The address an administrator set is not the lost device: it stays a factor.
        if email_in(&tx, name)?.is_some() {
            insert_code_factor(&tx, name, now, FactorKind::Email)?;
        }
        tx.commit()?;
        Ok(removed)
    }

    fn rename_user(&mut self, old: &str, new: &str) -> Result<bool> {
        let tx = self.immediate()?;
        let taken = has_factor(&tx, new)?;
        if taken {
            return Ok(false);
        }
        let moved = tx.execute("UPDATE users SET name = ?2 WHERE name = ?1", [old, new])? > 0;
        tx.execute("DELETE FROM trust WHERE user = ?1", [old])?;
        tx.execute("DELETE FROM backoff WHERE user = ?1", [old])?;
        for (table, column) in [
            ("deferrals", "subject"),
            ("contacts", "user"),
            ("recovery_codes", "user"),
            ("security_keys", "user"),
            ("phones", "user"),
            // No key: `new`'s texts and `old`'s all count, none is given back.
            ("sms_sends", "user"),
            ("push_devices", "user"),
            ("push_sends", "user"),
        ] {
            move_rows(&tx, table, column, old, new)?;
        }
        tx.commit()?;
        Ok(moved)
    }

    fn unlock(&mut self, name: &str) -> Result<bool> {
        let tx = self.immediate()?;
        let known = tx.execute(
            "UPDATE users SET failures = 0, lock_count = 0, locked_until = 0 WHERE name = ?1",
            [name],
        )? > 0;
        tx.execute("DELETE FROM backoff WHERE user = ?1", [name])?;
        tx.execute("DELETE FROM phantoms WHERE name = ?1", [name])?;
        tx.execute("DELETE FROM mail_quota WHERE user = ?1", [name])?;
        tx.execute("DELETE FROM sms_sends WHERE user = ?1", [name])?;
        tx.execute("DELETE FROM push_sends WHERE user = ?1", [name])?;
        tx.execute(
            "UPDATE push_devices SET suspended_until = 0 WHERE user = ?1",
            [name],
        )?;
        tx.commit()?;
        Ok(known)
    }

    fn trust_for(&self, user: &str, identity_hash: &str) -> Result<Vec<TrustRecord>> {
        let mut stmt = self.conn.prepare_cached(SELECT_TRUST_BY_IDENTITY)?;
        let rows = stmt
            .query_map([user, identity_hash], row_to_trust)?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn trust_of(&self, user: &str) -> Result<Vec<TrustRecord>> {
        let rows = self
            .conn
            .prepare_cached(SELECT_TRUST_OF_USER)?
            .query_map([user], row_to_trust)?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn put_trust(&mut self, r: &TrustRecord) -> Result<()> {
        let tx = self.immediate()?;
        insert_trust(&tx, r)?;
        tx.commit()?;
        Ok(())
    }

    fn put_trust_if(&mut self, r: &TrustRecord, generation: i64) -> Result<bool> {
        let tx = self.immediate()?;
        if !unchanged(&tx, &r.user, generation, r.created_at)? {
            return Ok(false);
        }
        insert_trust(&tx, r)?;
        tx.commit()?;
        Ok(true)
    }

    fn phantom_locked_until(&mut self, name: &str) -> Result<i64> {
        let tx = self.conn.transaction()?;
        Ok(phantom_record(&tx, name)?.locked_until)
    }

    fn still(&mut self, user: &str, generation: i64, now: i64) -> Result<bool> {
        let tx = self.conn.transaction()?;
        unchanged(&tx, user, generation, now)
    }

    fn touch_trust(&mut self, id: &str, now: i64) -> Result<()> {
        self.conn
            .prepare_cached("UPDATE trust SET last_used = ?2 WHERE id = ?1")?
            .execute(params![id, now])?;
        Ok(())
    }

    fn revoke_trust(&mut self, user: &str, id: Option<&str>) -> Result<usize> {
        let tx = self.immediate()?;
        let removed = revoke_in(&tx, user, id)?;
        new_generation(&tx, user)?;
        tx.commit()?;
        Ok(removed)
    }

    fn purge_expired_trust(&mut self, now: i64, limit: u32) -> Result<usize> {
        Ok(self
            .conn
            .prepare_cached(PURGE_EXPIRED_TRUST)?
            .execute(params![now, limit])?)
    }

    fn purge_stale_counts(&mut self, now: i64) -> Result<()> {
        self.conn.execute(
            "DELETE FROM backoff WHERE until <= ?1 AND updated_at <= ?1 - 86400",
            [now],
        )?;
        self.conn.execute(
            "DELETE FROM phantoms WHERE locked_until <= ?1 AND updated_at <= ?1 - 86400",
            [now],
        )?;
        self.conn.execute(
            "DELETE FROM mail_quota WHERE window_start <= ?1 - 3600",
            [now],
        )?;
        self.conn
            .execute("DELETE FROM sms_sends WHERE sent_at <= ?1 - 86400", [now])?;
        self.conn
            .execute("DELETE FROM push_sends WHERE sent_at <= ?1 - 86400", [now])?;
        // Enrolments whose phone never came: their keys are of no use to anyone.
        self.conn.execute(
            "DELETE FROM push_devices WHERE enrolled = 0 AND credential_expires <= ?1",
            [now],
        )?;
        Ok(())
    }

    fn set_deferral(&mut self, d: &Deferral) -> Result<()> {
        self.conn.execute(
            "INSERT INTO deferrals (subject, until, reason, created_at, created_by) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(subject) DO UPDATE SET until = ?2, reason = ?3, created_at = ?4, created_by = ?5",
            params![d.subject, d.until, d.reason, d.created_at, d.created_by],
        )?;
        Ok(())
    }

    fn clear_deferral(&mut self, subject: &str) -> Result<bool> {
        Ok(self
            .conn
            .execute("DELETE FROM deferrals WHERE subject = ?1", [subject])?
            > 0)
    }

    fn deferrals(&self) -> Result<Vec<Deferral>> {
        let rows = self
            .conn
            .prepare(concat!(select_deferral!(), " ORDER BY subject"))?
            .query_map([], row_to_deferral)?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn deferrals_of(&self, user: &str) -> Result<Vec<Deferral>> {
        self.deferrals_for_users(user, user)
    }

    fn set_email(&mut self, user: &str, email: Option<&str>, now: i64) -> Result<()> {
        let tx = self.immediate()?;
        match email {
            Some(email) => {
                tx.execute(
                    "INSERT INTO contacts (user, email) VALUES (?1, ?2)
                     ON CONFLICT(user) DO UPDATE SET email = ?2",
                    [user, email],
                )?;
                if !has_factor(&tx, user)? {
                    insert_code_factor(&tx, user, now, FactorKind::Email)?;
                } else {
                    // Codes already sent went to the old address: nothing it earned stays.
                    tx.execute("DELETE FROM trust WHERE user = ?1", [user])?;
                    new_generation(&tx, user)?;
                }
            }
            None => {
                tx.execute("DELETE FROM contacts WHERE user = ?1", [user])?;
                if !remove_code_factor(&tx, user, FactorKind::Email, now)? {
                    tx.execute("DELETE FROM trust WHERE user = ?1", [user])?;
                    new_generation(&tx, user)?;
                }
            }
        };
        tx.commit()?;
        Ok(())
    }

    fn take_mail_turn(
        &mut self,
        user: &str,
        source: &str,
        now: i64,
        per_hour: u32,
        user_per_hour: u32,
    ) -> Result<bool> {
        let tx = self.immediate()?;
        // Windows that ended count for nothing. One that lies ahead (the clock went back)
        // starts again now with what it holds: the jump neither gives mails back nor
        // stretches the hour by its length.
        tx.prepare_cached("DELETE FROM mail_quota WHERE user = ?1 AND window_start <= ?2 - 3600")?
            .execute(params![user, now])?;
        tx.prepare_cached(
            "UPDATE mail_quota SET window_start = ?2 WHERE user = ?1 AND window_start > ?2",
        )?
        .execute(params![user, now])?;
        let user_sent: u32 = tx
            .prepare_cached("SELECT COALESCE(SUM(sent), 0) FROM mail_quota WHERE user = ?1")?
            .query_row([user], |r| r.get(0))?;
        let (start, sent): (i64, u32) = tx
            .prepare_cached(
                "SELECT window_start, sent FROM mail_quota WHERE user = ?1 AND source = ?2",
            )?
            .query_row([user, source], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?
            .unwrap_or((now, 0));
        if sent >= per_hour || user_sent >= user_per_hour {
            tx.commit()?;
            return Ok(false);
        }
        tx.prepare_cached(
            "INSERT INTO mail_quota (user, source, window_start, sent) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(user, source) DO UPDATE SET window_start = ?3, sent = ?4",
        )?
        .execute(params![user, source, start, sent + 1])?;
        tx.commit()?;
        Ok(true)
    }

    fn put_recovery_codes(&mut self, user: &str, codes: &[StoredCode], now: i64) -> Result<bool> {
        let tx = self.immediate()?;
        if !has_factor(&tx, user)? {
            return Ok(false);
        }
        replace_recovery_codes(&tx, user, codes, now)?;
        tx.commit()?;
        Ok(true)
    }

    fn recovery_code(&self, user: &str, id: &str) -> Result<Option<StoredCode>> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT id, salt, hash FROM recovery_codes WHERE user = ?1 AND id = ?2",
            )?
            .query_row([user, id], |r| {
                Ok(StoredCode {
                    id: r.get(0)?,
                    salt: r.get(1)?,
                    hash: r.get(2)?,
                })
            })
            .optional()?)
    }

    fn recovery_codes_left(&self, user: &str) -> Result<u32> {
        Ok(self
            .conn
            .prepare_cached("SELECT COUNT(*) FROM recovery_codes WHERE user = ?1")?
            .query_row([user], |r| r.get(0))?)
    }

    fn set_security_keys(&mut self, user: &str, fingerprints: &[String], now: i64) -> Result<()> {
        let tx = self.immediate()?;
        tx.execute("DELETE FROM security_keys WHERE user = ?1", [user])?;
        for f in fingerprints {
            tx.execute(
                "INSERT OR IGNORE INTO security_keys (user, fingerprint, added_at) VALUES (?1, ?2, ?3)",
                params![user, f, now],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    fn security_key_registered(&self, user: &str, fingerprint: &str) -> Result<bool> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM security_keys WHERE user = ?1 AND fingerprint = ?2)",
            )?
            .query_row([user, fingerprint], |r| r.get(0))?)
    }

    fn users_with_email(&self, email: &str, limit: u32) -> Result<Vec<String>> {
        let mut q = self.conn.prepare_cached(
            "SELECT user FROM contacts WHERE email = ?1 COLLATE NOCASE ORDER BY user LIMIT ?2",
        )?;
        let names = q.query_map(params![email, limit], |r| r.get(0))?;
        Ok(names.collect::<rusqlite::Result<Vec<String>>>()?)
    }

    fn email_of(&self, user: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .prepare_cached("SELECT email FROM contacts WHERE user = ?1")?
            .query_row([user], |r| r.get(0))
            .optional()?)
    }

    fn set_phone(
        &mut self,
        user: &str,
        phone: Option<&str>,
        now: i64,
        as_factor: bool,
    ) -> Result<()> {
        let tx = self.immediate()?;
        let before: Option<String> = tx
            .prepare_cached(SELECT_PHONE_OF_USER)?
            .query_row([user], |r| r.get(0))
            .optional()?;
        let new_factor = as_factor && phone.is_some() && !has_factor(&tx, user)?;
        if before.as_deref() == phone && !new_factor {
            return Ok(());
        }
        match phone {
            Some(phone) => {
                tx.execute(
                    "INSERT INTO phones (user, phone) VALUES (?1, ?2)
                     ON CONFLICT(user) DO UPDATE SET phone = ?2",
                    [user, phone],
                )?;
            }
            None => {
                tx.execute("DELETE FROM phones WHERE user = ?1", [user])?;
                remove_code_factor(&tx, user, FactorKind::Sms, now)?;
            }
        }
        // Codes already texted went to the old number: nothing they earned stays, and
        // none still open passes.
        tx.execute("DELETE FROM trust WHERE user = ?1", [user])?;
        if new_factor {
            insert_code_factor(&tx, user, now, FactorKind::Sms)?;
        } else if has_factor(&tx, user)? {
            new_generation(&tx, user)?;
        }
        tx.commit()?;
        Ok(())
    }

    fn phone_of(&self, user: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .prepare_cached(SELECT_PHONE_OF_USER)?
            .query_row([user], |r| r.get(0))
            .optional()?)
    }

    fn users_with_phone(&self, phone: &str, limit: u32) -> Result<Vec<String>> {
        let mut q = self.conn.prepare_cached(SELECT_USERS_WITH_PHONE)?;
        let names = q.query_map(params![phone, limit], |r| r.get(0))?;
        Ok(names.collect::<rusqlite::Result<Vec<String>>>()?)
    }

    fn take_sms_turn(&mut self, user: &str, now: i64, limits: &SmsLimits) -> Result<SmsTurn> {
        let tx = self.immediate()?;
        let sent = sends_of_the_day(&tx, "sms_sends", user, now, limits.per_day)?;
        let wait = limits.wait(&sent, now);
        if wait > 0 {
            tx.commit()?;
            return Ok(SmsTurn::Wait(wait));
        }
        tx.prepare_cached("INSERT INTO sms_sends (user, sent_at) VALUES (?1, ?2)")?
            .execute(params![user, now])?;
        tx.commit()?;
        Ok(SmsTurn::Granted)
    }

    fn push_device_of(&self, user: &str) -> Result<Option<PushDevice>> {
        Ok(self
            .conn
            .prepare_cached(concat!(select_push_device!(), " WHERE user = ?1"))?
            .query_row([user], row_to_push_device)
            .optional()?)
    }

    fn push_device(&self, serial: &str) -> Result<Option<PushDevice>> {
        Ok(self
            .conn
            .prepare_cached(concat!(select_push_device!(), " WHERE serial = ?1"))?
            .query_row([serial], row_to_push_device)
            .optional()?)
    }

    fn put_push_device(&mut self, d: &PushDevice) -> Result<()> {
        let tx = self.immediate()?;
        tx.execute("DELETE FROM push_devices WHERE user = ?1", [&d.user])?;
        tx.execute(
            "INSERT INTO push_devices (serial, user, enrolled, credential_hash, credential_expires,
                 phone_key, server_key, created_at, suspended_until)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                d.serial,
                d.user,
                d.enrolled,
                d.credential_hash,
                d.credential_expires,
                d.phone_key,
                d.server_key,
                d.created_at,
                d.suspended_until
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn activate_push_device(
        &mut self,
        serial: &str,
        credential_hash: &str,
        phone_key: &str,
        now: i64,
    ) -> Result<bool> {
        // The caller compared the credential in constant time; this makes the step
        // happen once, and only while the credential is valid.
        let changed = self.conn.execute(
            "UPDATE push_devices SET enrolled = 1, phone_key = ?3, credential_hash = ''
             WHERE serial = ?1 AND enrolled = 0 AND credential_hash = ?2 AND credential_hash != ''
                 AND credential_expires > ?4",
            params![serial, credential_hash, phone_key, now],
        )?;
        Ok(changed == 1)
    }

    fn remove_push_device(&mut self, user: &str) -> Result<bool> {
        Ok(self
            .conn
            .execute("DELETE FROM push_devices WHERE user = ?1", [user])?
            > 0)
    }

    fn suspend_push(&mut self, user: &str, until: i64) -> Result<()> {
        self.conn.execute(
            "UPDATE push_devices SET suspended_until = max(suspended_until, ?2) WHERE user = ?1",
            params![user, until],
        )?;
        Ok(())
    }

    fn take_push_turn(&mut self, user: &str, now: i64, limits: &PushLimits) -> Result<PushTurn> {
        let tx = self.immediate()?;
        let suspended: i64 = tx
            .prepare_cached("SELECT suspended_until FROM push_devices WHERE user = ?1")?
            .query_row([user], |r| r.get(0))
            .optional()?
            .unwrap_or(0);
        if suspended > now {
            return Ok(PushTurn::Suspended(suspended - now));
        }
        let sent = sends_of_the_day(&tx, "push_sends", user, now, limits.per_day)?;
        let wait = limits.wait(&sent, now);
        if wait > 0 {
            tx.commit()?;
            return Ok(PushTurn::Wait(wait));
        }
        let last_success: i64 = tx
            .prepare_cached("SELECT last_success FROM users WHERE name = ?1")?
            .query_row([user], |r| r.get(0))
            .optional()?
            .unwrap_or(0);
        let unanswered = sent.iter().filter(|t| **t > last_success).count();
        if unanswered >= limits.since_success as usize {
            tx.commit()?;
            return Ok(PushTurn::UntilSuccess);
        }
        tx.prepare_cached("INSERT INTO push_sends (user, sent_at) VALUES (?1, ?2)")?
            .execute(params![user, now])?;
        tx.commit()?;
        Ok(PushTurn::Granted)
    }
}

const SELECT_USER_BY_NAME: &str = concat!(select_user!(), " WHERE name = ?1");
const SELECT_TRUST_OF_USER: &str = concat!(select_trust!(), " WHERE user = ?1 ORDER BY created_at");
const PURGE_EXPIRED_TRUST: &str =
    "DELETE FROM trust WHERE rowid IN (SELECT rowid FROM trust WHERE expires_at <= ?1 LIMIT ?2)";
const SELECT_TRUST_BY_IDENTITY: &str =
    concat!(select_trust!(), " WHERE user = ?1 AND identity_hash = ?2");
const SELECT_PHONE_OF_USER: &str = "SELECT phone FROM phones WHERE user = ?1";
const SELECT_USERS_WITH_PHONE: &str =
    "SELECT user FROM phones WHERE phone = ?1 ORDER BY user LIMIT ?2";
/// The database file and the -wal and -shm files SQLite keeps beside it.
fn database_files(path: &Path) -> [PathBuf; 3] {
    ["", "-wal", "-shm"].map(|suffix| {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        PathBuf::from(p)
    })
}

/// No link, a regular file, owned by one of `owners`.
fn check_file(p: &Path, meta: &std::fs::Metadata, owners: &[u32]) -> Result<()> {
    let refused = |why: String| StoreError::NotPrivate(p.display().to_string(), why);
    if meta.file_type().is_symlink() {
        return Err(refused("it is a symbolic link".into()));
    }
    if !meta.is_file() {
        return Err(refused("not a regular file".into()));
    }
    if !owners.contains(&meta.uid()) {
        return Err(refused(owner_problem(meta.uid(), owners)));
    }
    Ok(())
}

fn owner_problem(uid: u32, owners: &[u32]) -> String {
    let mut owners = owners.to_vec();
    owners.sort_unstable();
    owners.dedup();
    let allowed: Vec<String> = owners.iter().map(u32::to_string).collect();
    format!(
        "owned by uid {uid}; only root or the daemon's own user may own it (uid {})",
        allowed.join(" or ")
    )
}

/// Makes the database's files (those that exist) 0600, by path. Never by opening them:
/// closing any descriptor of a file drops every POSIX lock this process holds on it,
/// SQLite's too, and another process's connection would then take itself for the last
/// one and delete the WAL this daemon still writes. The directory is the owners' alone
/// (checked before), so nobody else can put a link in a file's place meanwhile.
fn tighten_file_modes(path: &Path, owners: &[u32]) -> Result<()> {
    for p in database_files(path) {
        let meta = match std::fs::symlink_metadata(&p) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(StoreError::Unavailable(format!("{}: {e}", p.display()))),
        };
        check_file(&p, &meta, owners)?;
        if meta.mode() & 0o777 != 0o600 {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).map_err(|e| {
                StoreError::Unavailable(format!("cannot chmod {}: {e}", p.display()))
            })?;
        }
    }
    Ok(())
}

fn row_to_trust(r: &rusqlite::Row<'_>) -> rusqlite::Result<TrustRecord> {
    let kind: String = r.get(2)?;
    Ok(TrustRecord {
        id: r.get(0)?,
        user: r.get(1)?,
        kind: TrustKind::from_column(&kind),
        identity_hash: r.get(3)?,
        description: r.get(4)?,
        service: r.get(5)?,
        created_at: r.get(6)?,
        last_used: r.get(7)?,
        expires_at: r.get(8)?,
        idle_seconds: r.get(9)?,
        password_stamp: r.get(10)?,
    })
}

fn row_to_deferral(r: &rusqlite::Row<'_>) -> rusqlite::Result<Deferral> {
    Ok(Deferral {
        subject: r.get(0)?,
        until: r.get(1)?,
        reason: r.get(2)?,
        created_at: r.get(3)?,
        created_by: r.get(4)?,
    })
}

/// `user`'s rows of `table` (`sms_sends`, `push_sends`) that still count, newest first:
/// those "sent" after now (the clock went back) were sent now, those a day old count for
/// nothing, and beyond the newest `keep` none decides anything.
fn sends_of_the_day(
    tx: &rusqlite::Transaction<'_>,
    table: &str,
    user: &str,
    now: i64,
    keep: u32,
) -> Result<Vec<i64>> {
    tx.prepare_cached(&format!(
        "UPDATE {table} SET sent_at = ?2 WHERE user = ?1 AND sent_at > ?2"
    ))?
    .execute(params![user, now])?;
    tx.prepare_cached(&format!(
        "DELETE FROM {table} WHERE user = ?1 AND sent_at <= ?2 - 86400"
    ))?
    .execute(params![user, now])?;
    tx.prepare_cached(&trim_sends(table))?
        .execute(params![user, keep])?;
    Ok(tx
        .prepare_cached(&select_sends_of_user(table))?
        .query_map([user], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<i64>>>()?)
}

/// A user's rows of `table` (`sms_sends`, `push_sends`), newest first.
fn select_sends_of_user(table: &str) -> String {
    format!("SELECT sent_at FROM {table} WHERE user = ?1 ORDER BY sent_at DESC")
}

/// All but the user's newest ?2 rows of `table`.
fn trim_sends(table: &str) -> String {
    format!(
        "DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} \
         WHERE user = ?1 ORDER BY sent_at DESC LIMIT -1 OFFSET ?2)"
    )
}

fn row_to_push_device(r: &rusqlite::Row<'_>) -> rusqlite::Result<PushDevice> {
    Ok(PushDevice {
        serial: r.get(0)?,
        user: r.get(1)?,
        enrolled: r.get(2)?,
        credential_hash: r.get(3)?,
        credential_expires: r.get(4)?,
        phone_key: r.get(5)?,
        server_key: r.get(6)?,
        created_at: r.get(7)?,
        suspended_until: r.get(8)?,
    })
}

fn row_to_user(r: &rusqlite::Row<'_>) -> rusqlite::Result<UserRecord> {
    Ok(UserRecord {
        name: r.get(0)?,
        secret: r.get(1)?,
        state: FactorState::from_column(&r.get::<_, String>(2)?),
        enrolled_at: r.get(3)?,
        last_step: r.get(4)?,
        last_success: r.get(5)?,
        failures: r.get(6)?,
        lock_count: r.get(7)?,
        locked_until: r.get(8)?,
        generation: r.get(9)?,
        kind: kind_of(r, 10)?,
    })
}

/// The `kind` column; a kind this version does not know fails the read (closed).
fn kind_of(r: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<FactorKind> {
    let stored: String = r.get(index)?;
    FactorKind::parse(&stored).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            index,
            rusqlite::types::Type::Text,
            format!("unknown factor kind {stored:?}").into(),
        )
    })
}

/// The counting state of a name without a factor, as a record no code can match.
fn phantom_record(tx: &rusqlite::Transaction<'_>, name: &str) -> Result<UserRecord> {
    let (failures, lock_count, locked_until) = tx
        .prepare_cached("SELECT failures, lock_count, locked_until FROM phantoms WHERE name = ?1")?
        .query_row([name], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?
        .unwrap_or((0, 0, 0));
    Ok(UserRecord::phantom(
        name,
        failures,
        lock_count,
        locked_until,
    ))
}

/// Gives `old`'s rows of `table` to `new`, where `new` has none of its own (those win), and
/// drops what is left of `old`'s; a table without a unique key (`sms_sends`) gets both's.
/// `table` and `column` are this file's constants.
fn move_rows(
    tx: &rusqlite::Transaction<'_>,
    table: &str,
    column: &str,
    old: &str,
    new: &str,
) -> Result<()> {
    tx.execute(
        &format!("UPDATE OR IGNORE {table} SET {column} = ?2 WHERE {column} = ?1"),
        [old, new],
    )?;
    tx.execute(&format!("DELETE FROM {table} WHERE {column} = ?1"), [old])?;
    Ok(())
}

/// Whether `name` has a factor (a row in `users`).
fn has_factor(tx: &rusqlite::Transaction<'_>, name: &str) -> Result<bool> {
    Ok(tx
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM users WHERE name = ?1)")?
        .query_row([name], |r| r.get(0))?)
}

/// Puts `codes` in place of every recovery code `user` had.
fn replace_recovery_codes(
    tx: &rusqlite::Transaction<'_>,
    user: &str,
    codes: &[StoredCode],
    now: i64,
) -> Result<()> {
    tx.execute("DELETE FROM recovery_codes WHERE user = ?1", [user])?;
    let mut insert = tx.prepare_cached(
        "INSERT INTO recovery_codes (user, id, salt, hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for c in codes {
        insert.execute(params![user, c.id, c.salt, c.hash, now])?;
    }
    Ok(())
}

/// The address on record for `name`, inside a transaction.
fn email_in(tx: &rusqlite::Transaction<'_>, name: &str) -> Result<Option<String>> {
    Ok(tx
        .prepare_cached("SELECT email FROM contacts WHERE user = ?1")?
        .query_row([name], |r| r.get(0))
        .optional()?)
}

/// Makes the address on record `name`'s factor: an active e-mail factor, with the wrong
/// codes the name collected before, and a generation of its own.
/// A factor whose codes are sent to an address or number on record (`kind` e-mail or
/// SMS): nothing secret is stored, and the name's counted wrong codes carry over.
fn insert_code_factor(
    tx: &rusqlite::Transaction<'_>,
    name: &str,
    now: i64,
    kind: FactorKind,
) -> Result<()> {
    let carried = phantom_record(tx, name)?;
    tx.execute("DELETE FROM phantoms WHERE name = ?1", [name])?;
    tx.execute(
        "INSERT INTO users (name, secret, state, enrolled_at, failures, lock_count, locked_until,
                 kind)
             VALUES (?1, '', 'active', ?2, ?3, ?4, ?5, ?6)",
        params![
            name,
            now,
            carried.failures,
            carried.lock_count,
            carried.locked_until,
            kind.as_str()
        ],
    )?;
    new_generation(tx, name)?;
    Ok(())
}

/// Removes `name`'s factor if it is of `kind` (its address or number went), with its
/// trust and recovery codes; its wrong codes stay with the name. Whether there was one.
fn remove_code_factor(
    tx: &rusqlite::Transaction<'_>,
    name: &str,
    kind: FactorKind,
    now: i64,
) -> Result<bool> {
    let counters = tx
        .query_row(
            "SELECT failures, lock_count, locked_until FROM users WHERE name = ?1 AND kind = ?2",
            [name, kind.as_str()],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let Some((failures, lock_count, locked_until)) = counters else {
        return Ok(false);
    };
    tx.execute("DELETE FROM users WHERE name = ?1", [name])?;
    tx.execute("DELETE FROM trust WHERE user = ?1", [name])?;
    tx.execute("DELETE FROM recovery_codes WHERE user = ?1", [name])?;
    put_phantom(tx, name, failures, lock_count, locked_until, now)?;
    Ok(true)
}

/// Records a name's wrong codes; the table stays within [`MAX_PHANTOMS`] rows.
fn put_phantom(
    tx: &rusqlite::Transaction<'_>,
    name: &str,
    failures: u32,
    lock_count: u32,
    locked_until: i64,
    now: i64,
) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO phantoms (name, failures, lock_count, locked_until, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT(name) DO UPDATE SET failures = ?2, lock_count = ?3, locked_until = ?4,
             updated_at = ?5",
    )?
    .execute(params![name, failures, lock_count, locked_until, now])?;
    evict_phantoms(tx)
}

/// Keeps `phantoms` within [`MAX_PHANTOMS`] rows, the least recently tried going first.
/// A wrong code for an enrolled name runs it too: the same work for both, so the time a
/// wrong code takes does not tell who is enrolled (docs/reliability.md, "Enumeration").
fn evict_phantoms(tx: &rusqlite::Transaction<'_>) -> Result<()> {
    tx.prepare_cached(
        "DELETE FROM phantoms WHERE name IN (SELECT name FROM phantoms ORDER BY updated_at
             LIMIT MAX(0, (SELECT COUNT(*) FROM phantoms) - ?1))",
    )?
    .execute([MAX_PHANTOMS])?;
    Ok(())
}

/// Deletes the previous record of `r`'s kind for the same device and service, then adds `r`.
fn insert_trust(tx: &rusqlite::Transaction<'_>, r: &TrustRecord) -> Result<()> {
    tx.prepare_cached(
        "DELETE FROM trust WHERE user = ?1 AND identity_hash = ?2 AND kind = ?3 AND service = ?4",
    )?
    .execute(params![r.user, r.identity_hash, r.kind.as_str(), r.service])?;
    tx.prepare_cached(
        "INSERT INTO trust (id, user, kind, identity_hash, description, service, created_at, last_used,
             expires_at, idle_seconds, password_stamp) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        r.id,
        r.user,
        r.kind.as_str(),
        r.identity_hash,
        r.description,
        r.service,
        r.created_at,
        r.last_used,
        r.expires_at,
        r.idle_seconds,
        r.password_stamp
    ])?;
    Ok(())
}

/// Whether `user` still has the factor of `generation` and is not locked at `now`.
fn unchanged(
    tx: &rusqlite::Transaction<'_>,
    user: &str,
    generation: i64,
    now: i64,
) -> Result<bool> {
    Ok(tx
        .prepare_cached("SELECT generation, locked_until FROM users WHERE name = ?1")?
        .query_row([user], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))
        .optional()?
        .is_some_and(|(g, locked_until)| g == generation && locked_until <= now))
}

/// Removes one of `user`'s trust records by id prefix, or all of them with `None`.
fn revoke_in(tx: &rusqlite::Transaction<'_>, user: &str, id: Option<&str>) -> Result<usize> {
    Ok(match id {
        None => tx.execute("DELETE FROM trust WHERE user = ?1", [user])?,
        Some(prefix) if prefix.len() < 8 => 0,
        Some(prefix) => {
            let matching: Vec<String> = tx
                .prepare_cached("SELECT id FROM trust WHERE user = ?1")?
                .query_map([user], |r| r.get::<_, String>(0))?
                .collect::<std::result::Result<Vec<_>, _>>()?
                .into_iter()
                .filter(|id| id.starts_with(prefix))
                .collect();
            match matching.as_slice() {
                [one] => tx.execute("DELETE FROM trust WHERE id = ?1", [one])?,
                _ => 0,
            }
        }
    })
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
