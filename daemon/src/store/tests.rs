use super::*;
use crate::factor::FactorKind;
use crate::lockout::Match;
use std::os::unix::fs::PermissionsExt;

/// No per-source waits here (see `a_source_waits_after_its_wrong_codes`).
const POLICY: LockoutPolicy = LockoutPolicy {
    max_failures: 3,
    base_seconds: 60,
    max_seconds: 300,
    source_failures: 100,
    source_base_seconds: 60,
};

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().mode() & 0o777
}

fn accept(step: i64) -> impl Fn(&UserRecord) -> std::result::Result<Option<Match>, String> {
    move |_| Ok(Some(Match::Step(step)))
}

fn wrong(_: &UserRecord) -> std::result::Result<Option<Match>, String> {
    Ok(None)
}

#[test]
fn files_are_private_and_schema_is_versioned() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state/twofold.db");
    let mut s = SqliteStore::open(&db).unwrap();
    s.put_pending("alice", FactorKind::Totp, "SECRET", 1, false, true, &[])
        .unwrap();
    assert_eq!(mode(db.parent().unwrap()), 0o700);
    drop(s);
    let s = SqliteStore::open(&db).unwrap(); // reopening runs no migration twice
    assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
    for f in ["twofold.db", "twofold.db-wal", "twofold.db-shm"] {
        let p = db.parent().unwrap().join(f);
        if p.exists() {
            assert_eq!(mode(&p), 0o600, "{f}");
        }
    }
}

#[test]
fn a_directory_others_can_read_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let e = SqliteStore::open(&dir.path().join("db"))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("not private"), "{e}");
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state/db");
    drop(SqliteStore::open(&db).unwrap());
    Connection::open(&db)
        .unwrap()
        .execute("UPDATE schema_version SET version = 99", [])
        .unwrap();
    assert!(
        SqliteStore::open(&db)
            .err()
            .unwrap()
            .to_string()
            .contains("newer")
    );
}

#[test]
fn a_single_use_code_passes_but_leaves_a_pending_factor_pending_and_its_step_alone() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    let once = |_: &UserRecord| Ok(Some(Match::Once));
    s.put_pending("alice", FactorKind::Totp, "S", 100, false, true, &[])
        .unwrap();
    s.attempt("alice", "host a", 100, &POLICY, &wrong).unwrap();
    assert!(matches!(
        s.attempt("alice", "host a", 100, &POLICY, &once).unwrap(),
        Attempt::Accepted {
            activated: false,
            ..
        }
    ));
    let u = s.user("alice").unwrap().unwrap();
    assert_eq!(
        (u.state, u.last_step, u.failures),
        (FactorState::Pending, -1, 0)
    );
    assert_eq!(u.last_success, 100);
}

#[test]
fn pending_secret_is_activated_by_the_first_right_code() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    // Without a factor no code passes (the attempt is counted like a wrong one).
    assert!(matches!(
        s.attempt("alice", "host a", 100, &POLICY, &accept(1))
            .unwrap(),
        Attempt::Rejected { .. }
    ));
    assert_eq!(
        s.put_pending("alice", FactorKind::Totp, "S", 100, false, true, &[])
            .unwrap(),
        Issued::Stored
    );
    assert_eq!(
        s.user("alice").unwrap().unwrap().state,
        FactorState::Pending
    );
    assert!(matches!(
        s.attempt("alice", "host a", 100, &POLICY, &accept(5))
            .unwrap(),
        Attempt::Accepted {
            activated: true,
            ..
        }
    ));
    assert_eq!(s.user("alice").unwrap().unwrap().state, FactorState::Active);
    assert!(matches!(
        s.attempt("alice", "host a", 130, &POLICY, &accept(6))
            .unwrap(),
        Attempt::Accepted {
            activated: false,
            ..
        }
    ));
    // An active factor is only replaced on request.
    assert_eq!(
        s.put_pending("alice", FactorKind::Totp, "T", 200, false, true, &[])
            .unwrap(),
        Issued::ActiveExists
    );
    assert_eq!(
        s.put_pending("alice", FactorKind::Totp, "T", 200, true, true, &[])
            .unwrap(),
        Issued::Stored
    );
    assert_eq!(s.user("alice").unwrap().unwrap().secret, "T");
}

#[test]
fn replayed_or_older_steps_are_refused_even_after_the_clock_goes_back() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    s.put_pending("alice", FactorKind::Totp, "S", 0, false, true, &[])
        .unwrap();
    assert!(matches!(
        s.attempt("alice", "host a", 100, &POLICY, &accept(10))
            .unwrap(),
        Attempt::Accepted { .. }
    ));
    let r = s
        .attempt("alice", "host a", 100, &POLICY, &accept(10))
        .unwrap();
    assert_eq!(
        r,
        Attempt::Rejected {
            replay: true,
            failures: 1,
            locked_until: None
        }
    );
    // Clock set back: an older step is still refused.
    let r = s
        .attempt("alice", "host a", 10, &POLICY, &accept(9))
        .unwrap();
    assert!(matches!(r, Attempt::Rejected { replay: true, .. }));
    assert!(matches!(
        s.attempt("alice", "host a", 100, &POLICY, &accept(11))
            .unwrap(),
        Attempt::Accepted { .. }
    ));
}

#[test]
fn lockout_holds_against_a_right_code_grows_and_unlock_ends_it() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    s.put_pending("alice", FactorKind::Totp, "S", 0, false, true, &[])
        .unwrap();
    s.attempt("alice", "host a", 1000, &POLICY, &wrong).unwrap();
    s.attempt("alice", "host a", 1000, &POLICY, &wrong).unwrap();
    let r = s.attempt("alice", "host a", 1000, &POLICY, &wrong).unwrap();
    assert_eq!(
        r,
        Attempt::Rejected {
            replay: false,
            failures: 3,
            locked_until: Some(1060)
        }
    );
    assert_eq!(
        s.attempt("alice", "host a", 1059, &POLICY, &accept(50))
            .unwrap(),
        Attempt::Locked { until: 1060 }
    );
    // After the lock: three more failures lock for twice as long.
    for _ in 0..3 {
        s.attempt("alice", "host a", 1060, &POLICY, &wrong).unwrap();
    }
    assert_eq!(s.user("alice").unwrap().unwrap().locked_until, 1060 + 120);
    assert!(s.unlock("alice").unwrap());
    assert!(matches!(
        s.attempt("alice", "host a", 1061, &POLICY, &accept(50))
            .unwrap(),
        Attempt::Accepted { .. }
    ));
}

#[test]
fn a_success_resets_the_failure_count() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    s.put_pending("alice", FactorKind::Totp, "S", 0, false, true, &[])
        .unwrap();
    s.attempt("alice", "host a", 1, &POLICY, &wrong).unwrap();
    s.attempt("alice", "host a", 1, &POLICY, &wrong).unwrap();
    s.attempt("alice", "host a", 1, &POLICY, &accept(1))
        .unwrap();
    assert_eq!(s.user("alice").unwrap().unwrap().failures, 0);
}

#[test]
fn parallel_wrong_guesses_from_separate_connections_count_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state/db");
    SqliteStore::open(&db)
        .unwrap()
        .put_pending("alice", FactorKind::Totp, "S", 0, false, true, &[])
        .unwrap();
    let policy = LockoutPolicy {
        max_failures: 100,
        base_seconds: 60,
        max_seconds: 60,
        ..POLICY
    };
    let threads: Vec<_> = (0..10)
        .map(|_| {
            let db = db.clone();
            std::thread::spawn(move || {
                let mut s = SqliteStore::open(&db).unwrap();
                for _ in 0..5 {
                    s.attempt("alice", "host a", 1, &policy, &wrong).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(
        SqliteStore::open(&db)
            .unwrap()
            .user("alice")
            .unwrap()
            .unwrap()
            .failures,
        50
    );
}

#[test]
fn parallel_logins_with_the_same_code_let_exactly_one_through() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state/db");
    SqliteStore::open(&db)
        .unwrap()
        .put_pending("alice", FactorKind::Totp, "S", 0, false, true, &[])
        .unwrap();
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let db = db.clone();
            std::thread::spawn(move || {
                let mut s = SqliteStore::open(&db).unwrap();
                s.attempt("alice", "host a", 1, &POLICY, &accept(42))
                    .unwrap()
            })
        })
        .collect();
    let results: Vec<Attempt> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(
        results
            .iter()
            .filter(|r| matches!(r, Attempt::Accepted { .. }))
            .count(),
        1,
        "{results:?}"
    );
}

#[test]
fn a_locked_database_fails_the_attempt_instead_of_passing_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state/db");
    let mut s = SqliteStore::open(&db).unwrap();
    s.put_pending("alice", FactorKind::Totp, "S", 0, false, true, &[])
        .unwrap();
    s.conn.busy_timeout(Duration::from_millis(100)).unwrap();
    let blocker = Connection::open(&db).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let e = s
        .attempt("alice", "host a", 1, &POLICY, &accept(1))
        .unwrap_err();
    assert!(e.to_string().contains("unavailable"), "{e}");
    blocker.execute_batch("ROLLBACK").unwrap();
    assert!(matches!(
        s.attempt("alice", "host a", 1, &POLICY, &accept(1))
            .unwrap(),
        Attempt::Accepted { .. }
    ));
}

#[test]
fn a_read_only_database_fails_the_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state/db");
    SqliteStore::open(&db)
        .unwrap()
        .put_pending("alice", FactorKind::Totp, "S", 0, false, true, &[])
        .unwrap();
    let conn = Connection::open_with_flags(&db, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let mut s = SqliteStore {
        conn,
        path: db.clone(),
        file: None,
    };
    assert!(
        s.attempt("alice", "host a", 1, &POLICY, &accept(1))
            .is_err()
    );
    assert_eq!(
        SqliteStore::open(&db)
            .unwrap()
            .user("alice")
            .unwrap()
            .unwrap()
            .last_step,
        -1
    );
}

#[test]
fn a_factor_of_a_kind_this_version_does_not_know_fails_closed() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    s.put_pending("alice", FactorKind::Totp, "S", 0, false, true, &[])
        .unwrap();
    // As a newer twofoldd might have written it (its schema would allow the kind).
    s.conn
        .execute_batch(
            "PRAGMA ignore_check_constraints = ON;
             UPDATE users SET kind = 'carrier-pigeon' WHERE name = 'alice';",
        )
        .unwrap();
    let err = s.user("alice").unwrap_err().to_string();
    assert!(err.contains("unavailable"), "{err}");
    let attempt = s.attempt("alice", "host a", 100, &POLICY, &accept(10));
    assert!(attempt.is_err(), "{attempt:?}");
}

#[test]
fn store_errors_carry_no_data() {
    let e: StoreError = rusqlite::Error::QueryReturnedNoRows.into();
    assert!(!e.to_string().contains("SELECT"));
}

#[test]
fn migrations_keep_existing_rows() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state/db");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    std::fs::set_permissions(db.parent().unwrap(), std::fs::Permissions::from_mode(0o700)).unwrap();
    // A version-2 database, as twofoldd wrote it before.
    let old = Connection::open(&db).unwrap();
    old.execute_batch(&MIGRATIONS[..2].concat()).unwrap();
    old.execute_batch(
        "CREATE TABLE schema_version (version INTEGER NOT NULL);
         INSERT INTO schema_version VALUES (2);
         INSERT INTO users (name, secret, state, enrolled_at) VALUES ('alice', 'S', 'pending', 5);",
    )
    .unwrap();
    drop(old);
    let mut s = SqliteStore::open(&db).unwrap();
    assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(s.user("alice").unwrap().unwrap().secret, "S");
    // Every factor from before kinds were stored is TOTP.
    assert_eq!(s.user("alice").unwrap().unwrap().kind, FactorKind::Totp);
    // Whoever issued it then, only an administrator may replace it now.
    assert_eq!(
        s.put_pending("alice", FactorKind::Totp, "T", 6, false, false, &[])
            .unwrap(),
        Issued::AdminPending
    );
}

#[test]
fn a_source_waits_after_its_wrong_codes_and_others_do_not() {
    let policy = LockoutPolicy {
        max_failures: 5,
        source_failures: 2,
        ..POLICY
    };
    let mut s = SqliteStore::open_in_memory().unwrap();
    s.put_pending("alice", FactorKind::Totp, "S", 0, false, true, &[])
        .unwrap();
    for t in [10, 11] {
        assert!(matches!(
            s.attempt("alice", "host a", t, &policy, &wrong).unwrap(),
            Attempt::Rejected {
                locked_until: None,
                ..
            }
        ));
    }
    // Two wrong codes: host a waits 60 s, unchecked and uncounted meanwhile.
    assert_eq!(
        s.attempt("alice", "host a", 12, &policy, &accept(1))
            .unwrap(),
        Attempt::Throttled { until: 71 }
    );
    assert_eq!(s.user("alice").unwrap().unwrap().failures, 2);
    // Another source is not held up, and its success clears only its own count.
    assert!(matches!(
        s.attempt("alice", "host b", 12, &policy, &accept(1))
            .unwrap(),
        Attempt::Accepted { .. }
    ));
    assert_eq!(
        s.attempt("alice", "host a", 70, &policy, &accept(2))
            .unwrap(),
        Attempt::Throttled { until: 71 }
    );
    // After the wait one try; wrong again, the wait doubles.
    s.attempt("alice", "host a", 71, &policy, &wrong).unwrap();
    assert_eq!(
        s.attempt("alice", "host a", 72, &policy, &accept(2))
            .unwrap(),
        Attempt::Throttled { until: 191 }
    );
    assert!(s.unlock("alice").unwrap());
    assert!(matches!(
        s.attempt("alice", "host a", 72, &policy, &accept(2))
            .unwrap(),
        Attempt::Accepted { .. }
    ));
}

#[test]
fn names_without_a_factor_are_counted_locked_and_keep_their_lock_into_an_enrolment() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    for t in 0..3 {
        let r = s
            .attempt("ghost", "host a", 100 + t, &POLICY, &accept(99))
            .unwrap();
        assert!(
            matches!(r, Attempt::Rejected { .. }),
            "a code passed for no factor: {r:?}"
        );
    }
    let until = s.phantom_locked_until("ghost").unwrap();
    assert_eq!(until, 102 + 60, "locked like an account after max_failures");
    assert_eq!(
        s.attempt("ghost", "host a", 110, &POLICY, &wrong).unwrap(),
        Attempt::Locked { until }
    );
    // Enrolling the name does not lift the lock its wrong codes earned.
    s.put_pending("ghost", FactorKind::Totp, "S", 120, false, false, &[])
        .unwrap();
    assert_eq!(s.user("ghost").unwrap().unwrap().locked_until, until);
    assert_eq!(s.phantom_locked_until("ghost").unwrap(), 0);
}

#[test]
fn the_phantom_table_stays_bounded() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    for i in 0..MAX_PHANTOMS + 50 {
        s.attempt(&format!("n{i}"), "h", i, &POLICY, &wrong)
            .unwrap();
    }
    let rows: i64 = s
        .conn_for_tests()
        .query_row("SELECT COUNT(*) FROM phantoms", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, MAX_PHANTOMS);
    // The least recently tried went first.
    let oldest_kept: i64 = s
        .conn_for_tests()
        .query_row("SELECT MIN(updated_at) FROM phantoms", [], |r| r.get(0))
        .unwrap();
    assert_eq!(oldest_kept, 50);
}

fn private_dir(parent: &Path, name: &str) -> PathBuf {
    let d = parent.join(name);
    std::fs::DirBuilder::new().mode(0o700).create(&d).unwrap();
    d
}

/// An empty file, mode 0644: what a link would make root write to and chmod.
fn victim_file(parent: &Path) -> PathBuf {
    let v = parent.join("victim");
    std::fs::write(&v, "").unwrap();
    std::fs::set_permissions(&v, std::fs::Permissions::from_mode(0o644)).unwrap();
    v
}

/// Issue 15 (checklist 22): a state directory at 0700 is private only if root or the
/// daemon's own uid owns it.
#[test]
fn a_state_directory_owned_by_another_uid_is_refused_even_at_0700() {
    let dir = tempfile::tempdir().unwrap();
    let state = private_dir(dir.path(), "state");
    let me = nix::unistd::geteuid().as_raw();
    // Here the test's own uid plays "another user": the store trusts only `others`.
    let others = [me.wrapping_add(1)];
    let e = SqliteStore::open_owned_by(&state.join("db"), &others)
        .err()
        .expect("a directory owned by another uid was used")
        .to_string();
    assert!(
        e.contains(&format!("owned by uid {me}")) && e.contains(&state.display().to_string()),
        "{e}"
    );
    assert!(!state.join("db").exists(), "a database was created in it");
}

/// A database path that is a symbolic link: root would write to and chmod its target.
#[test]
fn a_symlinked_database_file_is_refused_and_its_target_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let state = private_dir(dir.path(), "state");
    let victim = victim_file(dir.path());
    std::os::unix::fs::symlink(&victim, state.join("db")).unwrap();
    let e = SqliteStore::open(&state.join("db"))
        .err()
        .expect("a symlinked database was opened")
        .to_string();
    assert!(e.contains("symbolic link") && e.contains("db"), "{e}");
    assert_eq!(mode(&victim), 0o644, "the target was chmodded");
    assert_eq!(
        std::fs::read(&victim).unwrap(),
        b"",
        "the target was written"
    );
    // A dangling link: the target must not be created.
    let absent = dir.path().join("absent");
    std::os::unix::fs::symlink(&absent, state.join("db2")).unwrap();
    assert!(SqliteStore::open(&state.join("db2")).is_err());
    assert!(
        std::fs::symlink_metadata(&absent).is_err(),
        "the target was created"
    );
}

/// The -wal and -shm files beside the database: never written or chmodded through a link.
#[test]
fn a_symlinked_wal_or_shm_file_is_refused_and_not_followed() {
    for suffix in ["-wal", "-shm"] {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state/db");
        drop(SqliteStore::open(&db).unwrap());
        let side = db.with_file_name(format!("db{suffix}"));
        let _ = std::fs::remove_file(&side);
        let victim = victim_file(dir.path());
        std::os::unix::fs::symlink(&victim, &side).unwrap();
        let opened = SqliteStore::open(&db).and_then(|mut s| {
            s.put_pending("alice", FactorKind::Totp, "S", 0, false, true, &[])?;
            Ok(s)
        });
        assert_eq!(mode(&victim), 0o644, "{suffix}: the target was chmodded");
        assert_eq!(
            std::fs::read(&victim).unwrap(),
            b"",
            "{suffix}: the target was written"
        );
        let e = opened
            .err()
            .unwrap_or_else(|| panic!("{suffix}: a symlinked {suffix} file was accepted"))
            .to_string();
        assert!(e.contains("symbolic link") && e.contains(suffix), "{e}");
    }
}

#[test]
fn a_symlinked_state_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let real = private_dir(dir.path(), "real");
    std::os::unix::fs::symlink(&real, dir.path().join("state")).unwrap();
    let e = SqliteStore::open(&dir.path().join("state/db"))
        .err()
        .expect("a symlinked state directory was used")
        .to_string();
    assert!(e.contains("symbolic link") && e.contains("state"), "{e}");
    assert!(!real.join("db").exists());
}

/// The plan SQLite picks for `sql`, one line per step ("SEARCH trust USING INDEX ...").
fn plan(s: &SqliteStore, sql: &str, params: &[&dyn rusqlite::ToSql]) -> String {
    let mut stmt = s
        .conn_for_tests()
        .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
        .unwrap();
    stmt.query_map(params, |r| r.get::<_, String>(3))
        .unwrap()
        .map(|l| l.unwrap())
        .collect::<Vec<_>>()
        .join("; ")
}

#[test]
fn per_user_and_login_statements_search_an_index_in_a_large_store() {
    // 200,000 trust rows of 20,000 users: a scan would show in the plan, as it did for
    // one user's list (`?1 IS NULL OR user = ?1`) and the expiry sweep (issue 18).
    let mut s = SqliteStore::open_in_memory().unwrap();
    s.conn_for_tests()
        .execute_batch(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 199999)
             INSERT INTO trust (id, user, kind, identity_hash, description, service,
                                created_at, last_used, expires_at, idle_seconds, password_stamp)
             SELECT printf('%032x', i), printf('user%05d', i % 20000), 'device',
                    printf('%064x', i), 'bench', 'sshd', i, i, i + 1000, 0, NULL FROM n;
             WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 19999)
             INSERT INTO users (name, secret, state, enrolled_at)
             SELECT printf('user%05d', i), 'AAAA', 'active', 0 FROM n;
             WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 1999)
             INSERT INTO deferrals (subject, until, reason, created_at, created_by)
             SELECT printf('user%05d', i * 10), 10, '', 0, 0 FROM n;
             INSERT INTO deferrals VALUES ('@staff', 10, '', 0, 0);
             ANALYZE;",
        )
        .unwrap();
    let user: &dyn rusqlite::ToSql = &"user00042";
    let hash: &dyn rusqlite::ToSql = &"00";
    let now: &dyn rusqlite::ToSql = &5_i64;
    let last: &dyn rusqlite::ToSql = &"user00542";
    let limit: &dyn rusqlite::ToSql = &500_u32;
    let row: &dyn rusqlite::ToSql = &1000_i64;
    for (what, sql, params) in [
        (
            "a login's trust look-up",
            SELECT_TRUST_BY_IDENTITY,
            vec![user, hash],
        ),
        ("one user's trust list", SELECT_TRUST_OF_USER, vec![user]),
        ("a login's user look-up", SELECT_USER_BY_NAME, vec![user]),
        (
            "revoking by id prefix",
            "SELECT id FROM trust WHERE user = ?1",
            vec![user],
        ),
        (
            "revoking all of a user's",
            "DELETE FROM trust WHERE user = ?1",
            vec![user],
        ),
        ("the expiry sweep", PURGE_EXPIRED_TRUST, vec![now, limit]),
        (
            "the deferrals of a login",
            listing::SELECT_DEFERRALS_FOR_USERS,
            vec![user, user],
        ),
        (
            "a page of users",
            listing::SELECT_USERS_AFTER,
            vec![user, limit],
        ),
        (
            "a page's trust counts",
            listing::COUNT_TRUST_OF_USERS,
            vec![user, last, now],
        ),
        (
            "a page's deferrals",
            listing::SELECT_DEFERRALS_FOR_USERS,
            vec![user, last],
        ),
        (
            "a page of all trust",
            listing::SELECT_TRUST_AFTER,
            vec![row, now, limit],
        ),
        (
            "a page of one user's trust",
            listing::SELECT_TRUST_OF_USER_AFTER,
            vec![user, row, now, limit],
        ),
        (
            "a page of deferrals",
            listing::SELECT_DEFERRALS_AFTER,
            vec![user, limit],
        ),
        ("a user's number", SELECT_PHONE_OF_USER, vec![user]),
        (
            "a page's numbers",
            listing::SELECT_PHONES_BETWEEN,
            vec![user, last],
        ),
        (
            "the users of a number",
            SELECT_USERS_WITH_PHONE,
            vec![hash, limit],
        ),
        (
            "a user's texts",
            &select_sends_of_user("sms_sends"),
            vec![user],
        ),
        (
            "a user's texts beyond the limit",
            &trim_sends("sms_sends"),
            vec![user, limit],
        ),
        (
            "a user's pushes",
            &select_sends_of_user("push_sends"),
            vec![user],
        ),
        (
            "a user's pushes beyond the limit",
            &trim_sends("push_sends"),
            vec![user, limit],
        ),
    ] {
        let plan = plan(&s, sql, &params);
        assert!(
            !plan.contains("SCAN") && plan.contains("SEARCH"),
            "{what}: {plan}"
        );
    }
    // And the statements behave: one user's ten rows, the sweep's few.
    assert_eq!(s.trust_of("user00042").unwrap().len(), 10);
    assert_eq!(s.purge_expired_trust(1005, 4).unwrap(), 4);
    assert_eq!(s.purge_expired_trust(1005, 4).unwrap(), 2);
    assert_eq!(s.purge_expired_trust(1005, 4).unwrap(), 0);
}

#[test]
fn listings_page_through_every_row_once_and_a_slow_read_is_stopped() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    s.conn_for_tests()
        .execute_batch(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 2499)
             INSERT INTO trust (id, user, kind, identity_hash, description, service,
                                created_at, last_used, expires_at, idle_seconds, password_stamp)
             SELECT printf('%032x', i), printf('user%03d', i % 250), 'device',
                    printf('%064x', i), 'bench', 'sshd', i, i, 100 + i % 2, 0, NULL FROM n;
             WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 249)
             INSERT INTO users (name, secret, state, enrolled_at)
             SELECT printf('user%03d', i), 'AAAA', 'active', 0 FROM n;",
        )
        .unwrap();
    // At 100, half the rows (expires_at 100) have lapsed.
    let (mut seen, mut after) = (Vec::new(), 0);
    loop {
        let page = s.trust_after(None, after, 300, 100).unwrap();
        assert!(page.len() <= 300);
        seen.extend(page.iter().map(|(_, r)| r.id.clone()));
        match page.last() {
            Some((rowid, _)) => after = *rowid,
            None => break,
        }
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((seen.len(), unique.len()), (1250, 1250));
    let users = s.users_after("user099", 3).unwrap();
    let names: Vec<_> = users.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, ["user100", "user101", "user102"]);
    let counts = s.valid_trust_counts("user100", "user102", 100).unwrap();
    // Each user's rows all have one parity: user101's are valid, the others' lapsed.
    assert_eq!(counts, [("user101".to_string(), 10)].into());
    let stopped = crate::store::with_time_limit(&mut s, std::time::Duration::ZERO, |s| {
        s.trust_after(None, 0, 1000, 0)
    })
    .unwrap_err()
    .to_string();
    assert!(stopped.contains("was stopped"), "{stopped}");
    // The limit ends with the read.
    assert_eq!(s.users_after("", 1000).unwrap().len(), 250);
}

#[test]
fn an_address_survives_a_reset_and_follows_a_rename() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    s.put_pending("Alice", FactorKind::Totp, "S", 0, false, true, &[])
        .unwrap();
    assert_eq!(s.email_of("Alice").unwrap(), None);
    s.set_email("Alice", Some("alice@example.org"), 0).unwrap();
    s.set_email("Alice", Some("a@example.org"), 0).unwrap();
    assert!(s.rename_user("Alice", "alice").unwrap());
    assert_eq!(s.email_of("Alice").unwrap(), None);
    assert_eq!(
        s.email_of("alice").unwrap().as_deref(),
        Some("a@example.org")
    );
    // A lost phone is no reason to forget where the user is told about it.
    assert!(s.reset("alice", 0).unwrap());
    assert_eq!(
        s.email_of("alice").unwrap().as_deref(),
        Some("a@example.org")
    );
    s.set_email("alice", None, 0).unwrap();
    assert_eq!(s.email_of("alice").unwrap(), None);
}

#[test]
fn an_address_is_the_factor_of_a_user_without_one_until_it_goes() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    // Wrong codes counted while the name had no factor stay with it.
    s.attempt("alice", "host a", 100, &POLICY, &wrong).unwrap();
    s.set_email("alice", Some("alice@example.org"), 100)
        .unwrap();
    let u = s.user("alice").unwrap().unwrap();
    assert_eq!(
        (u.kind, u.state, u.secret.as_str(), u.failures),
        (FactorKind::Email, FactorState::Active, "", 1)
    );
    // The user's own app does not replace an active e-mail factor (as any active one);
    // an administrator's takes its place without `replace`, keeping the counts.
    assert_eq!(
        s.put_pending("alice", FactorKind::Totp, "S", 200, false, false, &[])
            .unwrap(),
        Issued::ActiveExists
    );
    assert_eq!(
        s.put_pending("alice", FactorKind::Totp, "S", 200, false, true, &[])
            .unwrap(),
        Issued::Stored
    );
    let u = s.user("alice").unwrap().unwrap();
    assert_eq!(
        (u.kind, u.state, u.failures),
        (FactorKind::Totp, FactorState::Pending, 1)
    );
    // A reset removes the app; the address stays, and with it the e-mail factor.
    let before = u.generation;
    assert!(s.reset("alice", 300).unwrap());
    let u = s.user("alice").unwrap().unwrap();
    assert_eq!((u.kind, u.failures), (FactorKind::Email, 0));
    assert!(
        u.generation > before,
        "a reset is a new factor for open logins"
    );
    // Without the address the e-mail factor goes; its wrong codes stay with the name.
    s.attempt("alice", "host a", 400, &POLICY, &wrong).unwrap();
    s.set_email("alice", None, 400).unwrap();
    assert_eq!(s.user("alice").unwrap(), None);
    for _ in 0..2 {
        s.attempt("alice", "host a", 400, &POLICY, &wrong).unwrap();
    }
    assert!(
        s.phantom_locked_until("alice").unwrap() > 400,
        "the count was lost"
    );
    // An address for a user with an app is not a factor of its own.
    s.put_pending("bob", FactorKind::Totp, "S", 0, false, true, &[])
        .unwrap();
    s.set_email("bob", Some("bob@example.org"), 0).unwrap();
    assert_eq!(s.user("bob").unwrap().unwrap().kind, FactorKind::Totp);
    s.set_email("bob", None, 0).unwrap();
    assert_eq!(s.user("bob").unwrap().unwrap().kind, FactorKind::Totp);
}

#[test]
fn shared_addresses_are_found_whatever_their_case() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    s.set_email("alice", Some("Team@Example.org"), 0).unwrap();
    s.set_email("bob", Some("team@example.org"), 0).unwrap();
    s.set_email("carol", Some("carol@example.org"), 0).unwrap();
    assert_eq!(
        s.users_with_email("TEAM@example.org", 10).unwrap(),
        ["alice", "bob"]
    );
    assert_eq!(
        s.users_with_email("team@example.org", 1).unwrap(),
        ["alice"]
    );
}

#[test]
fn mail_turns_are_counted_per_source_and_per_user_per_hour() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    let mut turn =
        |user: &str, source: &str, now: i64| s.take_mail_turn(user, source, now, 2, 3).unwrap();
    assert!(turn("alice", "host a", 1000));
    assert!(turn("alice", "host a", 1500));
    assert!(
        !turn("alice", "host a", 4599),
        "a third from one source within the hour"
    );
    assert!(turn("alice", "host b", 1600), "another source has its own");
    assert!(
        !turn("alice", "host c", 1700),
        "but the user's own ceiling holds"
    );
    assert!(turn("bob", "host a", 1500), "bob has his own");
    assert!(turn("alice", "host a", 4600), "a new hour");
    // A clock that went back neither gives the mails back nor stretches the hour
    // forever: the hour starts again at the new "now", with what was sent.
    assert!(turn("carol", "host a", 10_000));
    assert!(turn("carol", "host a", 10_001));
    assert!(!turn("carol", "host a", 9_999), "one second back");
    assert!(!turn("carol", "host a", 5_000), "an hour and more back");
    assert!(!turn("carol", "host a", 8_599));
    assert!(turn("carol", "host a", 8_600), "an hour after the jump");
    s.purge_stale_counts(100_000).unwrap();
    assert!(s.take_mail_turn("alice", "host a", 100_000, 1, 1).unwrap());
    // An unlock gives the mails back.
    assert!(!s.take_mail_turn("alice", "host a", 100_001, 1, 1).unwrap());
    s.unlock("alice").unwrap();
    assert!(s.take_mail_turn("alice", "host a", 100_002, 1, 1).unwrap());
}

#[test]
fn a_database_file_removed_or_replaced_under_the_daemon_is_written_no_more() {
    for replace in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state/twofold.db");
        let mut s = SqliteStore::open(&db).unwrap();
        s.put_pending("alice", FactorKind::Totp, "SECRET", 1, false, true, &[])
            .unwrap();
        std::fs::remove_file(&db).unwrap();
        if replace {
            std::fs::write(&db, b"garbage, not a database").unwrap();
        }
        let e = s
            .attempt("alice", "src", 100, &POLICY, &accept(5))
            .unwrap_err()
            .to_string();
        assert!(e.contains("removed or replaced"), "{e}");
        // Reads of what was open still work; no write reaches the unlinked file.
        assert_eq!(s.user("alice").unwrap().unwrap().last_step, -1);
    }
}

/// The POSIX locks this process holds on `files` (/proc/locks names them by inode).
fn posix_locks_on(files: &[PathBuf]) -> usize {
    use std::os::unix::fs::MetadataExt;
    let inodes: Vec<u64> = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.ino())
        .collect();
    let me = std::process::id().to_string();
    std::fs::read_to_string("/proc/locks")
        .unwrap()
        .lines()
        .filter(|l| l.contains("POSIX"))
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // "1: POSIX ADVISORY READ PID MAJ:MIN:INODE START END"
            f.get(4) == Some(&me.as_str())
                && f.get(5)
                    .and_then(|dev_ino| dev_ino.rsplit(':').next())
                    .and_then(|i| i.parse::<u64>().ok())
                    .is_some_and(|i| inodes.contains(&i))
        })
        .count()
}

#[test]
fn opening_a_store_keeps_sqlites_locks_so_no_other_process_deletes_its_wal() {
    // Closing any descriptor of a file drops all of this process's POSIX locks on it, the
    // ones SQLite holds too; another process's connection then thinks it is the last one
    // and deletes the WAL that this store still writes (lost at the next start).
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state/twofold.db");
    // Once on a new file, once on the existing one.
    for user in ["alice", "bob"] {
        let mut s = SqliteStore::open(&db).unwrap();
        s.put_pending(user, FactorKind::Totp, "SECRET", 1, false, true, &[])
            .unwrap();
        let files = database_files(&db);
        assert!(
            posix_locks_on(&files) > 0,
            "the store holds no lock on {}",
            db.display()
        );
        drop(s);
    }
}

/// Numbers as an administrator would set them (E.164).
const ALICE_PHONE: &str = "+4915112345678";
const OTHER_PHONE: &str = "+33612345678";

/// `[sms]`'s defaults: a minute apart, 3 in 15 minutes, 10 a day.
const SMS: SmsLimits = SmsLimits {
    min_interval: 60,
    per_15_minutes: 3,
    per_day: 10,
};

/// How many texts the store keeps for `user`, and the latest one's time.
fn sms_rows(s: &SqliteStore, user: &str) -> (i64, Option<i64>) {
    s.conn_for_tests()
        .query_row(
            "SELECT count(*), max(sent_at) FROM sms_sends WHERE user = ?1",
            [user],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
}

/// A session window of `user`'s, made at `now`.
fn session_of(user: &str, now: i64) -> TrustRecord {
    TrustRecord {
        id: format!("{user}-window"),
        user: user.into(),
        kind: TrustKind::Session,
        identity_hash: "device".into(),
        description: "ssh key".into(),
        service: "sshd".into(),
        created_at: now,
        last_used: now,
        expires_at: now + 3600,
        idle_seconds: 0,
        password_stamp: None,
    }
}

#[test]
fn a_number_is_set_changed_removed_and_found_exactly() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    assert_eq!(s.phone_of("alice").unwrap(), None);
    s.set_phone("alice", Some(ALICE_PHONE), 0, false).unwrap();
    s.set_phone("bob", Some(ALICE_PHONE), 0, false).unwrap();
    s.set_phone("carol", Some(OTHER_PHONE), 0, false).unwrap();
    assert_eq!(s.phone_of("alice").unwrap().as_deref(), Some(ALICE_PHONE));
    assert_eq!(
        s.users_with_phone(ALICE_PHONE, 10).unwrap(),
        ["alice", "bob"]
    );
    assert_eq!(s.users_with_phone(ALICE_PHONE, 1).unwrap(), ["alice"]);
    assert!(
        s.users_with_phone("+491511234567", 10).unwrap().is_empty(),
        "a prefix is not the number"
    );
    s.set_phone("alice", Some(OTHER_PHONE), 0, false).unwrap();
    assert_eq!(s.phone_of("alice").unwrap().as_deref(), Some(OTHER_PHONE));
    assert_eq!(s.users_with_phone(ALICE_PHONE, 10).unwrap(), ["bob"]);
    assert_eq!(
        s.users_with_phone(OTHER_PHONE, 10).unwrap(),
        ["alice", "carol"]
    );
    s.set_phone("alice", None, 0, false).unwrap();
    assert_eq!(s.phone_of("alice").unwrap(), None);
    assert_eq!(s.users_with_phone(OTHER_PHONE, 10).unwrap(), ["carol"]);
    // A number is no factor of its own, unlike an address.
    assert!(s.user_names().unwrap().is_empty());
}

#[test]
fn a_changed_number_ends_open_conversations_and_trust() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    s.put_pending("alice", FactorKind::Totp, "S", 0, false, true, &[])
        .unwrap();
    let generation = |s: &SqliteStore| s.user("alice").unwrap().unwrap().generation;
    let before = generation(&s);
    s.set_phone("alice", Some(ALICE_PHONE), 10, false).unwrap();
    let set = generation(&s);
    assert!(set > before, "setting a number keeps open codes");
    assert!(!s.still("alice", before, 10).unwrap());
    s.put_trust(&session_of("alice", 20)).unwrap();
    // The same number again changes nothing.
    s.set_phone("alice", Some(ALICE_PHONE), 30, false).unwrap();
    assert_eq!(generation(&s), set);
    assert_eq!(s.trust_of("alice").unwrap().len(), 1);
    s.set_phone("alice", Some(OTHER_PHONE), 40, false).unwrap();
    let changed = generation(&s);
    assert!(
        changed > set,
        "a code texted to the old number would still pass"
    );
    assert!(!s.still("alice", set, 40).unwrap());
    assert!(s.still("alice", changed, 40).unwrap());
    assert!(
        s.trust_of("alice").unwrap().is_empty(),
        "trust earned through the old number stayed"
    );
    s.set_phone("alice", None, 50, false).unwrap();
    let removed = generation(&s);
    assert!(removed > changed, "removing the number keeps open codes");
    s.set_phone("alice", None, 60, false).unwrap();
    assert_eq!(generation(&s), removed);
    // Without a factor there is no generation to change, and no factor is made.
    s.set_phone("bob", Some(ALICE_PHONE), 70, false).unwrap();
    s.set_phone("bob", Some(OTHER_PHONE), 70, false).unwrap();
    assert_eq!(s.user("bob").unwrap(), None);
}

#[test]
fn sms_turns_keep_the_least_interval_between_texts() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    let mut turn = |now: i64| s.take_sms_turn("alice", now, &SMS).unwrap();
    assert_eq!(turn(1000), SmsTurn::Granted);
    assert_eq!(turn(1030), SmsTurn::Wait(30));
    assert_eq!(turn(1059), SmsTurn::Wait(1));
    assert_eq!(turn(1060), SmsTurn::Granted);
    assert_eq!(
        s.take_sms_turn("bob", 1060, &SMS).unwrap(),
        SmsTurn::Granted,
        "bob has his own"
    );
}

#[test]
fn sms_turns_allow_three_in_any_15_minutes_and_refusals_count_for_nothing() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    let mut turn = |now: i64| s.take_sms_turn("alice", now, &SMS).unwrap();
    for now in [1000, 1060, 1120] {
        assert_eq!(turn(now), SmsTurn::Granted, "at {now}");
    }
    // The first of the three leaves the window at 1900.
    assert_eq!(turn(1180), SmsTurn::Wait(720));
    assert_eq!(turn(1899), SmsTurn::Wait(1));
    assert_eq!(turn(1900), SmsTurn::Granted);
    assert_eq!(sms_rows(&s, "alice"), (4, Some(1900)));
}

#[test]
fn sms_turns_allow_per_day_and_keep_at_most_that_many_rows() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    let day = SmsLimits {
        min_interval: 10,
        per_15_minutes: 10,
        per_day: 4,
    };
    for now in [1000, 1010, 1020, 1030] {
        assert_eq!(
            s.take_sms_turn("alice", now, &day).unwrap(),
            SmsTurn::Granted
        );
    }
    assert_eq!(
        s.take_sms_turn("alice", 1040, &day).unwrap(),
        SmsTurn::Wait(86_360)
    );
    assert_eq!(
        s.take_sms_turn("alice", 87_399, &day).unwrap(),
        SmsTurn::Wait(1)
    );
    assert_eq!(
        s.take_sms_turn("bob", 1000, &day).unwrap(),
        SmsTurn::Granted
    );
    assert_eq!(
        s.take_sms_turn("alice", 87_400, &day).unwrap(),
        SmsTurn::Granted
    );
    // The text a day old went with the call; bob's stays until the sweep.
    assert_eq!(sms_rows(&s, "alice"), (4, Some(87_400)));
    assert_eq!(sms_rows(&s, "bob"), (1, Some(1000)));
    // A lower limit leaves the newest texts only, which decide the same.
    let lower = SmsLimits { per_day: 2, ..day };
    assert_eq!(
        s.take_sms_turn("alice", 87_410, &lower).unwrap(),
        SmsTurn::Wait(1030 + 86_400 - 87_410)
    );
    assert_eq!(sms_rows(&s, "alice"), (2, Some(87_400)));
    s.purge_stale_counts(87_400).unwrap();
    assert_eq!(sms_rows(&s, "bob"), (0, None));
    assert_eq!(sms_rows(&s, "alice"), (2, Some(87_400)));
    s.purge_stale_counts(87_400 + 86_400).unwrap();
    assert_eq!(sms_rows(&s, "alice"), (0, None));
}

#[test]
fn a_clock_set_back_gives_no_texts_back_and_stretches_no_window() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    let mut turn = |now: i64| s.take_sms_turn("alice", now, &SMS).unwrap();
    for now in [10_000, 10_060, 10_120] {
        assert_eq!(turn(now), SmsTurn::Granted, "at {now}");
    }
    // One second back: the last text counts as sent at 10 119; the window still ends
    // when the first text leaves it.
    assert_eq!(turn(10_119), SmsTurn::Wait(10_000 + 900 - 10_119));
    // An hour back: all three were sent "now"; a wait of 15 minutes, not 15 minutes
    // and the hour.
    assert_eq!(turn(6_519), SmsTurn::Wait(900));
    assert_eq!(turn(7_418), SmsTurn::Wait(1));
    assert_eq!(turn(7_419), SmsTurn::Granted);
    assert_eq!(sms_rows(&s, "alice"), (4, Some(7_419)));
    // A refused turn keeps what it rewrote.
    let mut s = SqliteStore::open_in_memory().unwrap();
    s.take_sms_turn("bob", 5_000, &SMS).unwrap();
    assert_eq!(
        s.take_sms_turn("bob", 4_000, &SMS).unwrap(),
        SmsTurn::Wait(60)
    );
    assert_eq!(sms_rows(&s, "bob"), (1, Some(4_000)));
}

#[test]
fn an_unlock_gives_the_texts_back() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    s.put_pending("alice", FactorKind::Totp, "S", 0, false, true, &[])
        .unwrap();
    for now in [1000, 1060, 1120] {
        assert_eq!(
            s.take_sms_turn("alice", now, &SMS).unwrap(),
            SmsTurn::Granted
        );
    }
    assert_eq!(
        s.take_sms_turn("alice", 1130, &SMS).unwrap(),
        SmsTurn::Wait(770)
    );
    assert!(s.unlock("alice").unwrap());
    assert_eq!(sms_rows(&s, "alice"), (0, None));
    assert_eq!(
        s.take_sms_turn("alice", 1130, &SMS).unwrap(),
        SmsTurn::Granted
    );
}

#[test]
fn a_rename_carries_the_number_and_the_texts() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    s.put_pending("Alice", FactorKind::Totp, "S", 0, false, true, &[])
        .unwrap();
    s.set_phone("Alice", Some(ALICE_PHONE), 0, false).unwrap();
    for now in [1000, 1060, 1120] {
        s.take_sms_turn("Alice", now, &SMS).unwrap();
    }
    assert!(s.rename_user("Alice", "alice").unwrap());
    assert_eq!(s.phone_of("Alice").unwrap(), None);
    assert_eq!(s.phone_of("alice").unwrap().as_deref(), Some(ALICE_PHONE));
    assert_eq!(s.users_with_phone(ALICE_PHONE, 10).unwrap(), ["alice"]);
    assert_eq!(
        s.take_sms_turn("alice", 1180, &SMS).unwrap(),
        SmsTurn::Wait(720),
        "a rename gave the texts back"
    );
    assert_eq!(sms_rows(&s, "Alice"), (0, None));
    // The new name's own number wins; its own texts and the old name's all count.
    s.put_pending("bob", FactorKind::Totp, "S", 0, false, true, &[])
        .unwrap();
    s.set_phone("bob", Some(ALICE_PHONE), 0, false).unwrap();
    s.set_phone("robert", Some(OTHER_PHONE), 0, false).unwrap();
    s.take_sms_turn("robert", 1000, &SMS).unwrap();
    s.take_sms_turn("bob", 1060, &SMS).unwrap();
    s.take_sms_turn("bob", 1120, &SMS).unwrap();
    assert!(s.rename_user("bob", "robert").unwrap());
    assert_eq!(s.phone_of("robert").unwrap().as_deref(), Some(OTHER_PHONE));
    assert_eq!(s.phone_of("bob").unwrap(), None);
    assert_eq!(
        s.take_sms_turn("robert", 1180, &SMS).unwrap(),
        SmsTurn::Wait(720)
    );
}

#[test]
fn a_reset_removes_the_number_and_keeps_the_texts() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    s.put_pending("alice", FactorKind::Totp, "S", 0, false, true, &[])
        .unwrap();
    s.set_phone("alice", Some(ALICE_PHONE), 0, false).unwrap();
    assert_eq!(
        s.take_sms_turn("alice", 1000, &SMS).unwrap(),
        SmsTurn::Granted
    );
    // A lost phone often holds the SIM: its number gets no more codes. The texts sent
    // still count: a reset is no way out of the limits.
    assert!(s.reset("alice", 1010).unwrap());
    assert_eq!(s.phone_of("alice").unwrap(), None);
    assert_eq!(
        s.take_sms_turn("alice", 1030, &SMS).unwrap(),
        SmsTurn::Wait(30)
    );
}

#[test]
fn a_version_12_database_gets_the_sms_tables_and_keeps_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state/db");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    std::fs::set_permissions(db.parent().unwrap(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let old = Connection::open(&db).unwrap();
    old.execute_batch(&MIGRATIONS[..12].concat()).unwrap();
    old.execute_batch(
        "CREATE TABLE schema_version (version INTEGER NOT NULL);
         INSERT INTO schema_version VALUES (12);
         INSERT INTO users (name, secret, state, enrolled_at) VALUES ('alice', 'S', 'active', 5);
         INSERT INTO contacts (user, email) VALUES ('alice', 'alice@example.org');",
    )
    .unwrap();
    drop(old);
    let mut s = SqliteStore::open(&db).unwrap();
    assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(s.user("alice").unwrap().unwrap().secret, "S");
    assert_eq!(
        s.email_of("alice").unwrap().as_deref(),
        Some("alice@example.org")
    );
    assert_eq!(s.phone_of("alice").unwrap(), None);
    s.set_phone("alice", Some(ALICE_PHONE), 10, false).unwrap();
    assert_eq!(
        s.take_sms_turn("alice", 10, &SMS).unwrap(),
        SmsTurn::Granted
    );
}

#[test]
fn a_number_as_sole_factor_is_made_and_removed_with_the_number_and_keeps_the_wrong_codes() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    // A phantom's counted wrong codes carry over into the factor.
    s.attempt("alice", "src", 5, &POLICY, &|_: &UserRecord| Ok(None))
        .unwrap();
    s.set_phone("alice", Some(ALICE_PHONE), 10, true).unwrap();
    let record = s.user("alice").unwrap().expect("an SMS factor");
    assert_eq!((record.kind, record.failures), (FactorKind::Sms, 1));
    // Already there: nothing made twice; an app enrolled later takes its place.
    s.set_phone("alice", Some(OTHER_PHONE), 20, true).unwrap();
    assert_eq!(s.user("alice").unwrap().unwrap().kind, FactorKind::Sms);
    assert_eq!(
        s.put_pending("alice", FactorKind::Totp, "S", 30, false, true, &[])
            .unwrap(),
        Issued::Stored,
        "an administrator's app replaces it without --replace"
    );
    assert_eq!(s.user("alice").unwrap().unwrap().kind, FactorKind::Totp);
    s.set_phone("alice", None, 40, true).unwrap();
    assert_eq!(
        s.user("alice").unwrap().unwrap().kind,
        FactorKind::Totp,
        "an app stays when the number goes"
    );
    // The policy turned on after the number was set: setting it again makes the factor.
    s.set_phone("bob", Some(ALICE_PHONE), 50, false).unwrap();
    assert!(s.user("bob").unwrap().is_none());
    s.set_phone("bob", Some(ALICE_PHONE), 60, true).unwrap();
    assert_eq!(s.user("bob").unwrap().unwrap().kind, FactorKind::Sms);
    s.attempt("bob", "src", 61, &POLICY, &|_: &UserRecord| Ok(None))
        .unwrap();
    s.set_phone("bob", None, 70, true).unwrap();
    assert!(s.user("bob").unwrap().is_none(), "no number, no SMS factor");
    assert_eq!(s.phone_of("bob").unwrap(), None);
    // Its wrong code stays with the name.
    s.set_phone("bob", Some(ALICE_PHONE), 80, true).unwrap();
    assert_eq!(s.user("bob").unwrap().unwrap().failures, 1);
}

fn push_device(user: &str, serial: &str, expires: i64) -> PushDevice {
    PushDevice {
        serial: serial.into(),
        user: user.into(),
        enrolled: false,
        credential_hash: format!("hash-{serial}"),
        credential_expires: expires,
        phone_key: String::new(),
        server_key: "server-key".into(),
        created_at: 0,
        suspended_until: 0,
    }
}

#[test]
fn a_push_device_is_enrolled_once_with_a_valid_credential_and_one_per_user() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    s.put_push_device(&push_device("alice", "TFPU1", 100))
        .unwrap();
    assert!(!s.push_device("TFPU1").unwrap().unwrap().enrolled);
    // A wrong credential, or the right one too late: nothing.
    assert!(
        !s.activate_push_device("TFPU1", "hash-x", "KEY", 10)
            .unwrap()
    );
    assert!(
        !s.activate_push_device("TFPU1", "hash-TFPU1", "KEY", 100)
            .unwrap()
    );
    assert!(
        s.activate_push_device("TFPU1", "hash-TFPU1", "KEY", 99)
            .unwrap()
    );
    let d = s.push_device_of("alice").unwrap().unwrap();
    assert!(d.enrolled && d.phone_key == "KEY" && d.credential_hash.is_empty());
    // Once: the used credential is gone, an empty one never matches.
    assert!(
        !s.activate_push_device("TFPU1", "hash-TFPU1", "OTHER", 50)
            .unwrap()
    );
    assert!(!s.activate_push_device("TFPU1", "", "OTHER", 50).unwrap());
    // A new enrolment takes the old phone's place.
    s.put_push_device(&push_device("alice", "TFPU2", 200))
        .unwrap();
    assert!(s.push_device("TFPU1").unwrap().is_none());
    assert_eq!(s.push_device_of("alice").unwrap().unwrap().serial, "TFPU2");
    // A reset (lost phone) removes it, as does removing it.
    s.reset("alice", 300).unwrap();
    assert!(s.push_device_of("alice").unwrap().is_none());
    s.put_push_device(&push_device("bob", "TFPU3", 400))
        .unwrap();
    assert!(s.remove_push_device("bob").unwrap());
    assert!(!s.remove_push_device("bob").unwrap());
    // Enrolments whose phone never came go with the housekeeping.
    s.put_push_device(&push_device("carol", "TFPU4", 500))
        .unwrap();
    s.purge_stale_counts(500).unwrap();
    assert!(s.push_device("TFPU4").unwrap().is_none());
}

#[test]
fn pushes_are_limited_suspended_and_counted_since_the_last_success() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    s.put_pending("alice", FactorKind::Totp, "S", 0, false, true, &[])
        .unwrap();
    s.put_push_device(&push_device("alice", "TFPU1", 100))
        .unwrap();
    let limits = PushLimits {
        per_10_minutes: 3,
        per_day: 10,
        since_success: 5,
    };
    // Pushes granted one after another, 10 s apart; returns the time after them.
    let granted = |s: &mut SqliteStore, mut now: i64, n: usize| {
        for _ in 0..n {
            assert_eq!(
                s.take_push_turn("alice", now, &limits).unwrap(),
                PushTurn::Granted
            );
            now += 10;
        }
        now
    };
    let mut now = granted(&mut s, 1000, 3);
    assert_eq!(
        s.take_push_turn("alice", now, &limits).unwrap(),
        PushTurn::Wait(1000 + 600 - now)
    );
    // The clock set back gives nothing back.
    assert!(matches!(
        s.take_push_turn("alice", 500, &limits).unwrap(),
        PushTurn::Wait(_)
    ));
    // Two more after ten minutes, then none until a login passes another way.
    now = granted(&mut s, 2000, 2);
    assert_eq!(
        s.take_push_turn("alice", now, &limits).unwrap(),
        PushTurn::UntilSuccess
    );
    // Suspended: said first, with the time left.
    s.suspend_push("alice", now + 1800).unwrap();
    assert_eq!(
        s.take_push_turn("alice", now, &limits).unwrap(),
        PushTurn::Suspended(1800)
    );
    // An administrator's unlock clears the counts and the suspension.
    s.unlock("alice").unwrap();
    assert_eq!(
        s.take_push_turn("alice", now, &limits).unwrap(),
        PushTurn::Granted
    );
}
