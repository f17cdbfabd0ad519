//! Several connections to one database, lent one call at a time: a call that waits for
//! SQLite (another writer's lock, a slow disk) holds only its own connection, and the
//! others keep serving. In WAL mode readers never wait for a writer, and writers wait
//! for each other inside SQLite (`busy_timeout`).

use super::{Store, StoreError};
use std::ops::{Deref, DerefMut};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long a call waits for a free connection before it fails closed.
const WAIT_FOR_CONNECTION: Duration = Duration::from_secs(5);

pub struct StorePool {
    free: Mutex<Vec<Store>>,
    returned: Condvar,
    size: usize,
}

impl StorePool {
    /// `first` plus `more` connections to the same file. An in-memory store cannot be
    /// shared between connections, so it stays a pool of one.
    pub fn new(first: Store, more: usize) -> Result<StorePool, StoreError> {
        let mut free = Vec::with_capacity(1 + more);
        if !first.path.as_os_str().is_empty() {
            for _ in 0..more {
                free.push(first.another_connection()?);
            }
        }
        free.push(first);
        Ok(StorePool {
            size: free.len(),
            free: Mutex::new(free),
            returned: Condvar::new(),
        })
    }

    pub fn size(&self) -> usize {
        self.size
    }

    /// A connection for one call; given back when the guard drops.
    pub fn get(&self) -> Result<StoreGuard<'_>, StoreError> {
        let deadline = Instant::now() + WAIT_FOR_CONNECTION;
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(store) = free.pop() {
                return Ok(StoreGuard {
                    pool: self,
                    store: Some(store),
                });
            }
            let left = deadline.saturating_duration_since(Instant::now());
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

impl From<Store> for StorePool {
    /// A pool of one connection (unit tests, in-memory stores).
    fn from(store: Store) -> StorePool {
        StorePool {
            free: Mutex::new(vec![store]),
            returned: Condvar::new(),
            size: 1,
        }
    }
}

pub struct StoreGuard<'a> {
    pool: &'a StorePool,
    store: Option<Store>,
}

impl Deref for StoreGuard<'_> {
    type Target = Store;
    fn deref(&self) -> &Store {
        // Always Some until drop.
        self.store.as_ref().unwrap_or_else(|| unreachable!())
    }
}

impl DerefMut for StoreGuard<'_> {
    fn deref_mut(&mut self) -> &mut Store {
        self.store.as_mut().unwrap_or_else(|| unreachable!())
    }
}

impl Drop for StoreGuard<'_> {
    fn drop(&mut self) {
        if let Some(store) = self.store.take() {
            // A transaction left open by a panic must not reach the next call.
            if !store.conn.is_autocommit() {
                let _ = store.conn.execute_batch("ROLLBACK");
            }
            self.pool
                .free
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(store);
            self.pool.returned.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_store(dir: &std::path::Path) -> Store {
        let db = dir.join("state/twofold.db");
        Store::open(&db).unwrap()
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
        assert_eq!(pool.free.lock().unwrap().len(), 3);
    }

    #[test]
    fn an_in_memory_store_stays_one_connection() {
        let pool = StorePool::new(Store::open_in_memory().unwrap(), 4).unwrap();
        assert_eq!(pool.size(), 1);
    }
}
