//! Pages of the administrative listings, and their time limit. Each page is a few index
//! searches whose cost grows with the page, never with the store: users by name, trust
//! rows by rowid, and per page one grouped count of the page's trust rows and one read of
//! the deferrals that can apply to its users.

use super::{SqliteStore, row_to_deferral, row_to_trust, row_to_user};
use crate::model::{Deferral, TrustRecord, UserRecord};
use crate::store::{Listings, Result};
use std::collections::HashMap;

/// SQLite checks the time limit every this many virtual-machine steps (about 10-50 µs).
const STEPS_PER_CHECK: i32 = 1000;

impl Listings for SqliteStore {
    fn set_time_limit(&mut self, deadline: std::time::Instant) -> Result<()> {
        self.conn.progress_handler(
            STEPS_PER_CHECK,
            Some(move || crate::clock::monotonic() > deadline),
        )?;
        Ok(())
    }

    fn clear_time_limit(&mut self) {
        // Removing a handler cannot fail; the Result is rusqlite's signature.
        let _ = self.conn.progress_handler(0, None::<fn() -> bool>);
    }

    fn users_after(&self, after: &str, limit: u32) -> Result<Vec<UserRecord>> {
        let rows = self
            .conn
            .prepare_cached(SELECT_USERS_AFTER)?
            .query_map(rusqlite::params![after, limit], row_to_user)?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn valid_trust_counts(
        &self,
        first: &str,
        last: &str,
        now: i64,
    ) -> Result<HashMap<String, u32>> {
        let rows = self
            .conn
            .prepare_cached(COUNT_TRUST_OF_USERS)?
            .query_map(rusqlite::params![first, last, now], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect::<std::result::Result<_, _>>()?;
        Ok(rows)
    }

    fn shared_addresses(&self, first: &str, last: &str) -> Result<Vec<String>> {
        let rows = self
            .conn
            .prepare_cached(
                "SELECT c.user FROM contacts c WHERE c.user >= ?1 AND c.user <= ?2 AND EXISTS
                     (SELECT 1 FROM contacts d WHERE d.email = c.email COLLATE NOCASE
                      AND d.user != c.user)",
            )?
            .query_map(rusqlite::params![first, last], |r| r.get(0))?
            .collect::<std::result::Result<_, _>>()?;
        Ok(rows)
    }

    fn phones_between(&self, first: &str, last: &str) -> Result<HashMap<String, (String, bool)>> {
        let rows = self
            .conn
            .prepare_cached(SELECT_PHONES_BETWEEN)?
            .query_map(rusqlite::params![first, last], |r| {
                Ok((r.get(0)?, (r.get(1)?, r.get(2)?)))
            })?
            .collect::<std::result::Result<_, _>>()?;
        Ok(rows)
    }

    fn recovery_counts(&self, first: &str, last: &str) -> Result<HashMap<String, u32>> {
        let rows = self
            .conn
            .prepare_cached(
                "SELECT user, COUNT(*) FROM recovery_codes WHERE user >= ?1 AND user <= ?2
                 GROUP BY user",
            )?
            .query_map(rusqlite::params![first, last], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect::<std::result::Result<_, _>>()?;
        Ok(rows)
    }

    fn trust_after(
        &self,
        user: Option<&str>,
        after: i64,
        limit: u32,
        now: i64,
    ) -> Result<Vec<(i64, TrustRecord)>> {
        // Two statements: one shape for both would read the whole table for one user.
        let (sql, params): (&str, Vec<&dyn rusqlite::ToSql>) = match &user {
            Some(user) => (SELECT_TRUST_OF_USER_AFTER, vec![user, &after, &now, &limit]),
            None => (SELECT_TRUST_AFTER, vec![&after, &now, &limit]),
        };
        let rows = self
            .conn
            .prepare_cached(sql)?
            .query_map(params.as_slice(), |r| Ok((r.get(11)?, row_to_trust(r)?)))?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn deferrals_after(&self, after: &str, limit: u32) -> Result<Vec<Deferral>> {
        let rows = self
            .conn
            .prepare_cached(SELECT_DEFERRALS_AFTER)?
            .query_map(rusqlite::params![after, limit], row_to_deferral)?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn deferrals_for_users(&self, first: &str, last: &str) -> Result<Vec<Deferral>> {
        let rows = self
            .conn
            .prepare_cached(SELECT_DEFERRALS_FOR_USERS)?
            .query_map([first, last], row_to_deferral)?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}

pub(super) const SELECT_USERS_AFTER: &str =
    concat!(select_user!(), " WHERE name > ?1 ORDER BY name LIMIT ?2");
// INDEXED BY: `expires_at > ?3` holds for almost every row, so the user range is the
// search to make; the expiry index would read the whole table.
pub(super) const COUNT_TRUST_OF_USERS: &str = "SELECT user, count(*) FROM trust INDEXED BY trust_by_identity \
     WHERE user >= ?1 AND user <= ?2 AND expires_at > ?3 GROUP BY user";
pub(super) const SELECT_TRUST_AFTER: &str = concat!(
    "SELECT ",
    trust_columns!(),
    ", rowid FROM trust WHERE rowid > ?1 AND expires_at > ?2 ORDER BY rowid LIMIT ?3"
);
pub(super) const SELECT_TRUST_OF_USER_AFTER: &str = concat!(
    "SELECT ",
    trust_columns!(),
    ", rowid FROM trust INDEXED BY trust_by_identity \
     WHERE user = ?1 AND rowid > ?2 AND expires_at > ?3 ORDER BY rowid LIMIT ?4"
);
pub(super) const SELECT_DEFERRALS_AFTER: &str = concat!(
    select_deferral!(),
    " WHERE subject > ?1 ORDER BY subject LIMIT ?2"
);
// Group subjects are those from `@` up to (not including) `A`, the next character; user
// names never start with `@` (`check_user_name`).
pub(super) const SELECT_DEFERRALS_FOR_USERS: &str = concat!(
    select_deferral!(),
    " WHERE (subject >= ?1 AND subject <= ?2) OR (subject >= '@' AND subject < 'A')"
);
/// A page's numbers, each with whether another user has it (by the number's index).
pub(super) const SELECT_PHONES_BETWEEN: &str = "SELECT p.user, p.phone, EXISTS (SELECT 1 FROM phones q \
     WHERE q.phone = p.phone AND q.user != p.user) FROM phones p WHERE p.user >= ?1 AND p.user <= ?2";
