//! Several connections to one database, lent one call at a time: a call that waits for
//! SQLite (another writer's lock, a slow disk) holds only its own connection, and the
//! others keep serving. In WAL mode readers never wait for a writer, and writers wait
//! for each other inside SQLite (`busy_timeout`).

use super::SqliteStore;
use crate::store::{Lease, Listings, Store, StoreError, Stores};
use std::ops::{Deref, DerefMut};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// How long a call waits for a free connection before it fails closed.
const WAIT_FOR_CONNECTION: Duration = Duration::from_secs(5);

/// Connections of one kind, lent one at a time.
struct Lender {
    free: Mutex<Vec<SqliteStore>>,
    returned: Condvar,
    size: usize,
}

impl Lender {
    fn of(stores: Vec<SqliteStore>) -> Lender {
        Lender {
            size: stores.len(),
            free: Mutex::new(stores),
            returned: Condvar::new(),
        }
    }

    fn get(&self) -> Result<StoreGuard<'_>, StoreError> {
        let deadline = crate::clock::monotonic() + WAIT_FOR_CONNECTION;
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(store) = free.pop() {
                return Ok(StoreGuard {
                    lender: self,
                    store: Some(store),
                });
            }
            let left = deadline.saturating_duration_since(crate::clock::monotonic());
            if left.is_zero() {
                return Err(StoreError::Unavailable(
                    "every database connection is busy".into(),
                ));
            }
            free = self
                .returned
                .wait_timeout(free, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

/// The read-write connections that serve logins and changes, and one read-only
/// connection for the administrative listings, so that a listing never takes a
/// connection a login could use.
pub struct StorePool {
    writers: Lender,
    /// None for an in-memory store: listings then share the writers.
    readers: Option<Lender>,
}

impl StorePool {
    /// `first` plus `more` connections to the same file, and a read-only one. An
    /// in-memory store cannot be shared between connections, so it stays a pool of one.
    pub fn new(first: SqliteStore, more: usize) -> Result<StorePool, StoreError> {
        if first.path.as_os_str().is_empty() {
            return Ok(first.into());
        }
        let mut writers = Vec::with_capacity(1 + more);
        for _ in 0..more {
            writers.push(first.another_connection()?);
        }
        let reader = first.read_only_connection()?;
        writers.push(first);
        Ok(StorePool {
            writers: Lender::of(writers),
            readers: Some(Lender::of(vec![reader])),
        })
    }

    /// How many read-write connections there are.
    pub fn size(&self) -> usize {
        self.writers.size
    }

    /// A connection for one call; given back when the guard drops.
    pub fn get(&self) -> Result<StoreGuard<'_>, StoreError> {
        self.writers.get()
    }

    /// The read-only connection for a listing (a read-write one for in-memory stores).
    pub fn reader(&self) -> Result<StoreGuard<'_>, StoreError> {
        self.readers.as_ref().unwrap_or(&self.writers).get()
    }
}

impl From<SqliteStore> for StorePool {
    /// A pool of one connection (unit tests, in-memory stores).
    fn from(store: SqliteStore) -> StorePool {
        StorePool {
            writers: Lender::of(vec![store]),
            readers: None,
        }
    }
}

pub struct StoreGuard<'a> {
    lender: &'a Lender,
    store: Option<SqliteStore>,
}

impl Deref for StoreGuard<'_> {
    type Target = SqliteStore;
    fn deref(&self) -> &SqliteStore {
        // Always Some until drop.
        self.store.as_ref().unwrap_or_else(|| unreachable!())
    }
}

impl DerefMut for StoreGuard<'_> {
    fn deref_mut(&mut self) -> &mut SqliteStore {
        self.store.as_mut().unwrap_or_else(|| unreachable!())
    }
}

impl Drop for StoreGuard<'_> {
    fn drop(&mut self) {
        if let Some(mut store) = self.store.take() {
            // A transaction left open by a panic must not reach the next call.
            if !store.conn.is_autocommit() {
                let _ = store.conn.execute_batch("ROLLBACK");
            }
            // Nor a time limit (`store::with_time_limit`) a panic kept from being removed.
            store.clear_time_limit();
            self.lender
                .free
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(store);
            self.lender.returned.notify_one();
        }
    }
}

impl Stores for StorePool {
    fn get(&self) -> Result<Lease<'_>, StoreError> {
        Ok(Box::new(AsStore(StorePool::get(self)?)))
    }

    fn reader(&self) -> Result<Lease<'_>, StoreError> {
        Ok(Box::new(AsStore(StorePool::reader(self)?)))
    }

    fn size(&self) -> usize {
        StorePool::size(self)
    }

    fn check(&self) -> Result<Vec<(String, String)>, StoreError> {
        let store = StorePool::reader(self)?;
        let mut out = vec![
            ("backend".to_string(), "sqlite".to_string()),
            ("file".to_string(), store.path.display().to_string()),
            ("schema".to_string(), store.schema_version()?.to_string()),
        ];
        let verdict: String = store
            .conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))?;
        out.push(("integrity".to_string(), verdict));
        for table in ["users", "trust", "deferrals", "recovery_codes"] {
            let n: i64 =
                store
                    .conn
                    .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?;
            out.push((table.to_string(), n.to_string()));
        }
        Ok(out)
    }

    fn migrate(&self) -> Result<i64, StoreError> {
        // Opening the file migrated it already.
        StorePool::get(self)?.schema_version()
    }
}

/// A lent connection as the engine sees it: a store, whatever its kind.
struct AsStore<'a>(StoreGuard<'a>);

impl Deref for AsStore<'_> {
    type Target = dyn Store;
    fn deref(&self) -> &(dyn Store + 'static) {
        &*self.0
    }
}

impl DerefMut for AsStore<'_> {
    fn deref_mut(&mut self) -> &mut (dyn Store + 'static) {
        &mut *self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_store(dir: &std::path::Path) -> SqliteStore {
        let db = dir.join("state/twofold.db");
        SqliteStore::open(&db).unwrap()
    }

    #[test]
    fn each_call_gets_its_own_connection_and_gives_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let pool = StorePool::new(file_store(dir.path()), 2).unwrap();
        assert_eq!(pool.size(), 3);
        let a = pool.get().unwrap();
        let b = pool.get().unwrap();
        let c = pool.get().unwrap();
        assert!(!std::ptr::eq(&*a, &*b) && !std::ptr::eq(&*b, &*c));
        drop(b);
        let again = pool.get().unwrap();
        assert_eq!(again.schema_version().unwrap(), a.schema_version().unwrap());
        drop((a, c, again));
        assert_eq!(pool.writers.free.lock().unwrap().len(), 3);
    }

    #[test]
    fn listings_read_on_their_own_connection_that_cannot_write() {
        let dir = tempfile::tempdir().unwrap();
        let pool = StorePool::new(file_store(dir.path()), 1).unwrap();
        let (_a, _b) = (pool.get().unwrap(), pool.get().unwrap());
        let reader = pool.reader().unwrap();
        assert_eq!(
            reader.schema_version().unwrap(),
            crate::store::sqlite::SCHEMA_VERSION
        );
        let write = reader
            .conn
            .execute("DELETE FROM users", [])
            .unwrap_err()
            .to_string();
        assert!(write.contains("readonly"), "{write}");
    }

    #[test]
    fn an_in_memory_store_stays_one_connection() {
        let pool = StorePool::new(SqliteStore::open_in_memory().unwrap(), 4).unwrap();
        assert_eq!(pool.size(), 1);
    }

    #[test]
    fn a_time_limit_cut_short_by_a_panic_does_not_stay_on_the_connection() {
        let dir = tempfile::tempdir().unwrap();
        let pool = StorePool::new(file_store(dir.path()), 1).unwrap();
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            crate::store::with_time_limit(
                &mut *Stores::reader(&pool).unwrap(),
                Duration::from_millis(1),
                |_| -> crate::store::Result<()> { panic!("a bug in a listing") },
            )
        }));
        assert!(panicked.is_err());
        std::thread::sleep(Duration::from_millis(5));
        // Long enough to reach the progress handler: a stale one would interrupt it.
        let counted: rusqlite::Result<i64> = pool.reader().unwrap().conn.query_row(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000)
             SELECT count(*) FROM n",
            [],
            |r| r.get(0),
        );
        assert_eq!(counted.unwrap(), 100000);
    }
}
