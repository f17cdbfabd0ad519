//! A fleet: three twofoldd instances, each with its own bus, socket and state directory as
//! three hosts would have, sharing one real PostgreSQL 15 database (started by the test,
//! see tests/src/postgres.rs). Logins go through the real pam_twofold.so and libpam.

use std::time::{Duration, Instant};
use twofold_integration::postgres::Postgres;
use twofold_integration::*;

/// 2027-01-15T08:00:00Z, the start of a TOTP step.
const T0: i64 = 1_800_000_000;
const KEY: &str =
    "publickey ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPBt/BNd5lA1dnF//n6CHzH8KvAg/yKN0naK8HbRXq9f";

/// The date 30 days from now (UTC), for a deferral within `max_deferral_days`.
fn in_30_days() -> String {
    let out = std::process::Command::new("date")
        .args(["-u", "-d", "+30 days", "+%F"])
        .output()
        .expect("date");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

struct Fleet {
    hosts: Vec<World>,
    // Dropped last: the daemons stop before their database does.
    pg: Postgres,
}

/// The `[store]` section of a host on `pg`, its password in the host's directory.
fn store_section(w: &World, pg: &Postgres, url: &str, ca: Option<&std::path::Path>) -> String {
    let password = w.path("db-password");
    pg.write_password_file(&password);
    twofold_integration::postgres::store_section(url, &password, ca)
}

/// Three hosts (`host1`..`host3`) on one database; `extra` goes into each configuration.
/// With `clock`, the daemons read the time from their clock files, all set to it.
fn fleet(extra: &str, clock: Option<i64>) -> Fleet {
    fleet_with("", extra, clock)
}

/// [`fleet`], with `store_keys` added to each host's `[store]` section.
fn fleet_with(store_keys: &str, extra: &str, clock: Option<i64>) -> Fleet {
    let pg = Postgres::start();
    let hosts = (1..=3)
        .map(|i| {
            let mut w = World::bus_only();
            if let Some(now) = clock {
                w.use_test_clock(now);
            }
            let store = store_section(&w, &pg, &pg.url(), None);
            w.start_daemon(&format!(
                "{store}{store_keys}[fleet]\nhost = \"host{i}\"\n{extra}"
            ));
            w.write_service("twofold", &w.module_line(""));
            w.write_service("sshd", &w.module_line(""));
            w
        })
        .collect();
    Fleet { hosts, pg }
}

impl Fleet {
    fn set_clock(&self, now: i64) {
        for w in &self.hosts {
            w.set_clock(now);
        }
    }

    /// How many wrong codes the database counted for `user`, and how many locks.
    fn counts(&self, user: &str) -> (i64, i64) {
        let row = self.pg.psql(
            "twofold",
            &format!("SELECT failures, lock_count FROM users WHERE name = '{user}'"),
        );
        let (f, l) = row.split_once('|').expect("failures|lock_count");
        (f.parse().expect("failures"), l.parse().expect("lock_count"))
    }
}

/// Runs `login(host, k)` for `per_host` logins on every host at once; returns them all.
fn on_every_host_at_once(
    f: &Fleet,
    per_host: usize,
    login: impl Fn(&World, usize) -> PamRun + Sync,
) -> Vec<PamRun> {
    std::thread::scope(|s| {
        let login = &login;
        let handles: Vec<_> = (0..per_host)
            .flat_map(|k| f.hosts.iter().map(move |w| (w, k)))
            .enumerate()
            .map(|(n, (w, k))| {
                s.spawn(move || {
                    // pam_wrapper's per-process directories collide on simultaneous starts.
                    std::thread::sleep(Duration::from_millis(10 * n as u64));
                    login(w, k)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("login thread"))
            .collect()
    })
}

#[test]
fn the_same_code_on_three_hosts_at_once_lets_exactly_one_in() {
    let f = fleet("", None);
    let secret = f.hosts[0].enrol(me());
    wait_for_step_margin(10);
    let code = fresh_code(&secret);
    let results = on_every_host_at_once(&f, 3, |w, _| w.pam("twofold", me(), &format!("{code}\n")));
    let passed = results.iter().filter(|r| r.passed()).count();
    assert_eq!(passed, 1, "{results:#?}");
    println!("proved: one code typed 9 times on three hosts at once: exactly one login passed");
}

#[test]
fn wrong_codes_from_three_hosts_count_toward_one_lockout_exactly() {
    let f = fleet("[lockout]\nmax_failures = 5\nsource_failures = 100", None);
    let secret = f.hosts[0].enrol(me());
    let now = unix_now() as i64;
    // A code of an hour ahead, checked against the window around now: never right.
    let wrong = code_at_time(&secret, now + 3600);
    for t in [now - 60, now - 30, now, now + 30, now + 60] {
        assert_ne!(wrong, code_at_time(&secret, t), "pick another wrong code");
    }
    let results =
        on_every_host_at_once(&f, 30, |w, _| w.pam("twofold", me(), &format!("{wrong}\n")));
    assert_eq!(results.len(), 90);
    assert!(results.iter().all(|r| !r.passed()), "a wrong code passed");
    // The fifth wrong code locked the account (failures back to 0, one lock): a sixth
    // counted anywhere would show as a failure of the next round, or a second lock.
    assert_eq!(f.counts(me()), (0, 1), "counted past the lock");
    let counted: usize = f
        .hosts
        .iter()
        .map(|w| {
            w.daemon_log()
                .lines()
                .filter(|l| l.contains("action=login") && l.contains("wrong code"))
                .count()
        })
        .sum();
    assert_eq!(counted, 5, "wrong codes evaluated over the three hosts");
    for w in &f.hosts {
        let code = fresh_code(&secret);
        let r = w.pam("twofold", me(), &format!("{code}\n"));
        assert!(!r.passed(), "the right code passed while locked: {r:?}");
    }
    println!(
        "proved: 3 x 30 parallel wrong codes: exactly 5 (max_failures) evaluated, one lock, and the right code then fails on every host"
    );
}

#[test]
fn an_unlock_a_reset_and_a_deferral_on_host_1_hold_at_host_3s_next_login() {
    let f = fleet("[lockout]\nmax_failures = 3\nsource_failures = 100", None);
    let (one, three) = (&f.hosts[0], &f.hosts[2]);
    let secret = one.enrol(me());
    let r = three.pam("twofold", me(), "000000\n000001\n000002\n");
    assert!(!r.passed());
    assert!(combined(&one.ctl(&["status", me()], "")).contains("locked until"));
    let out = one.ctl(&["unlock", me()], "");
    assert!(out.status.success(), "{}", combined(&out));
    wait_for_next_step();
    let r = three.pam("twofold", me(), &format!("{}\n", fresh_code(&secret)));
    assert!(r.passed(), "host 3 after the unlock on host 1: {r:?}");
    println!(
        "proved: a lock made through host 3 is seen on host 1; host 1's unlock lets host 3 in"
    );

    let out = one.ctl(&["reset", me()], "");
    assert!(out.status.success(), "{}", combined(&out));
    wait_for_next_step();
    let r = three.pam("twofold", me(), &format!("{}\n", fresh_code(&secret)));
    assert!(!r.passed(), "the reset secret still works on host 3: {r:?}");
    println!("proved: a reset on host 1 ends the factor on host 3 at its next login");

    let r = three.pam("twofold", "nobody", "");
    assert!(!r.passed(), "an unenrolled user without a deferral: {r:?}");
    let until = in_30_days();
    let out = one.ctl(&["grace", "set", "nobody", "--until", &until], "");
    assert!(out.status.success(), "{}", combined(&out));
    let r = three.pam("twofold", "nobody", "");
    assert!(r.passed(), "host 3 did not see host 1's deferral: {r:?}");
    let out = one.ctl(&["grace", "clear", "nobody"], "");
    assert!(out.status.success(), "{}", combined(&out));
    let r = three.pam("twofold", "nobody", "");
    assert!(
        !r.passed(),
        "host 3 still honours the cleared deferral: {r:?}"
    );
    println!("proved: a deferral set and cleared on host 1 holds at host 3's next login");
}

#[test]
#[cfg_attr(
    not(as_root),
    ignore = "needs root: only root-run sshd may present an SSH key"
)]
fn trust_stays_with_its_host_unless_a_group_shares_it_and_a_revocation_reaches_all() {
    for (group, shared) in [("", false), ("group = \"web\"\n", true)] {
        // Lines right after `host = …` go into each host's `[fleet]`.
        let f = fleet(group, Some(T0));
        let (one, two) = (&f.hosts[0], &f.hosts[1]);
        one.open_session_window("sshd", me(), KEY, T0);
        f.set_clock(T0 + 60);
        let login = ssh_transaction("sshd", me(), KEY, &[]);
        let (rc, conv) = first_outcome(&one.pam_inprocess(std::slice::from_ref(&login), &[]));
        assert_eq!(rc, 0, "host 1 honours its own window: {conv:?}");
        let (rc, conv) = first_outcome(&two.pam_inprocess(std::slice::from_ref(&login), &[]));
        assert_eq!(
            rc == 0,
            shared,
            "host 2 and host 1's window (shared: {shared}): {conv:?}"
        );
        let out = f.hosts[2].ctl(&["trust", "revoke", me(), "--all"], "");
        assert!(out.status.success(), "{}", combined(&out));
        let (rc, conv) = first_outcome(&one.pam_inprocess(&[login], &[]));
        assert!(rc != 0, "host 1 honours a window host 3 revoked: {conv:?}");
        println!(
            "proved: a session window from host 1 {} on host 2; host 3's revocation ends it on host 1",
            if shared {
                "is honoured (same [fleet] group)"
            } else {
                "is not honoured (no group)"
            }
        );
    }
}

#[test]
fn with_the_database_away_logins_fail_closed_and_work_again_when_it_is_back() {
    let f = fleet("", None);
    let secret = f.hosts[0].enrol(me());
    wait_for_next_step();
    let accepted = fresh_code(&secret);
    assert!(
        f.hosts[1]
            .pam("twofold", me(), &format!("{accepted}\n"))
            .passed()
    );
    f.pg.stop();
    for (i, w) in f.hosts.iter().enumerate() {
        wait_for_step_margin(10);
        let start = Instant::now();
        let r = w.pam("twofold", me(), &format!("{}\n", fresh_code(&secret)));
        let took = start.elapsed();
        assert!(
            !r.passed(),
            "host {}: a login passed without the database: {r:?}",
            i + 1
        );
        assert!(
            took < Duration::from_secs(10),
            "host {}: the refusal took {took:?}",
            i + 1
        );
        let pid = w.daemon_pid().expect("pid");
        assert!(!process_stopped(pid), "host {}'s twofoldd died", i + 1);
        let status = combined(&w.ctl(&["store", "check"], ""));
        assert!(
            status.contains("database is unavailable"),
            "host {}: {status}",
            i + 1
        );
        println!(
            "proved: host {}: with PostgreSQL stopped the right code is refused in {took:?}; twofoldd stays up; store check says: {}",
            i + 1,
            status.trim()
        );
    }
    f.pg.start_again();
    wait_for_next_step();
    let r = f.hosts[2].pam("twofold", me(), &format!("{}\n", fresh_code(&secret)));
    assert!(r.passed(), "host 3 after PostgreSQL came back: {r:?}");
    // What was recorded before the stop is still there: the accepted code is a replay.
    let r = f.hosts[0].pam("twofold", me(), &format!("{accepted}\n"));
    assert!(
        !r.passed(),
        "a code accepted before the outage passed again: {r:?}"
    );
    println!(
        "proved: after PostgreSQL restarted, logins work on every host without restarting twofoldd, and a code accepted before the outage is still refused"
    );
}

#[test]
fn tls_to_the_database_is_verified_against_the_ca_file() {
    let pg = Postgres::start_with_tls();
    let url = format!("postgresql://twofold@localhost:{}/twofold", pg.port());
    let mut w = World::bus_only();
    let store = store_section(&w, &pg, &url, Some(&pg.ca_file()));
    w.start_daemon(&store);
    w.write_service("twofold", &w.module_line(""));
    let check = combined(&w.ctl(&["store", "check"], ""));
    assert!(check.contains("TLS"), "{check}");
    let secret = w.enrol(me());
    let r = w.pam("twofold", me(), &format!("{}\n", fresh_code(&secret)));
    assert!(r.passed(), "{r:?}");
    w.stop_daemon();
    // A CA that did not sign the server's certificate: nothing is sent to that server.
    let other = w.path("other-ca");
    std::fs::create_dir_all(&other).expect("dir");
    let (ca, _, _) = smtp::certificates(&other);
    let store = store_section(&w, &pg, &url, Some(&ca));
    w.start_daemon(&store);
    let check = combined(&w.ctl(&["store", "check"], ""));
    assert!(
        check.contains("database is unavailable") && check.contains("invalid peer certificate"),
        "{check}"
    );
    let r = w.pam("twofold", me(), &format!("{}\n", fresh_code(&secret)));
    assert!(!r.passed(), "{r:?}");
    println!(
        "proved: over TLS with the right CA file the login works and store check says TLS; with another CA the connection is refused and the login fails closed"
    );
}

#[test]
fn a_database_that_stops_answering_fails_the_login_within_the_timeouts() {
    // One call waits at most connect + statement timeout: 2 s here (4 s by default), so
    // a loaded machine still has room inside the module's timeout= (10 s).
    let f = fleet_with(
        "statement_timeout_ms = 1000\nconnect_timeout_ms = 1000\n",
        "",
        None,
    );
    let secret = f.hosts[0].enrol(me());
    wait_for_step_margin(15);
    let r = f.hosts[0].pam("twofold", me(), &format!("{}\n", fresh_code(&secret)));
    assert!(r.passed(), "before the freeze: {r:?}");
    // The server and its sessions stop answering; connections are still accepted.
    f.pg.freeze();
    for (i, w) in f.hosts.iter().enumerate() {
        let start = Instant::now();
        let r = w.pam("twofold", me(), &format!("{}\n", fresh_code(&secret)));
        let took = start.elapsed();
        assert!(
            !r.passed(),
            "host {}: passed with a frozen database: {r:?}",
            i + 1
        );
        // The 2 s a call may wait and 3 s more for a loaded host process: inside the
        // module's timeout= (10 s), whatever calls the login makes.
        assert!(
            took < Duration::from_secs(5),
            "host {}: the refusal took {took:?}: {r:?}",
            i + 1
        );
        assert!(!process_stopped(w.daemon_pid().expect("pid")));
        println!(
            "proved: host {}: with PostgreSQL frozen (SIGSTOP) the login failed closed in {took:?}",
            i + 1
        );
    }
    f.pg.resume();
    wait_for_next_step();
    let r = f.hosts[1].pam("twofold", me(), &format!("{}\n", fresh_code(&secret)));
    assert!(r.passed(), "after the database answered again: {r:?}");
    println!("proved: once PostgreSQL answers again the next login passes; no daemon restarted");
}

#[test]
fn three_daemons_starting_together_on_an_empty_database_make_the_schema_once() {
    let pg = Postgres::start();
    let mut hosts: Vec<World> = (0..3).map(|_| World::bus_only()).collect();
    let sections: Vec<String> = hosts
        .iter()
        .map(|w| store_section(w, &pg, &pg.url(), None))
        .collect();
    std::thread::scope(|s| {
        for (w, section) in hosts.iter_mut().zip(&sections) {
            s.spawn(move || w.start_daemon(section));
        }
    });
    assert_eq!(
        pg.psql(
            "twofold",
            "SELECT count(*), max(version) FROM schema_version"
        ),
        format!("1|{}", twofold_daemon::store::schema::SCHEMA_VERSION)
    );
    let secret = hosts[0].enrol(me());
    for w in &hosts {
        let check = combined(&w.ctl(&["store", "check"], ""));
        assert!(check.contains("users           1"), "{check}");
    }
    hosts[2].write_service("twofold", &hosts[2].module_line(""));
    let r = hosts[2].pam("twofold", me(), &format!("{}\n", fresh_code(&secret)));
    assert!(r.passed(), "{r:?}");
    println!(
        "proved: three twofoldd started at once on an empty database: one schema (version {}), all three serve it",
        twofold_daemon::store::schema::SCHEMA_VERSION
    );
}

#[test]
fn a_hosts_sqlite_file_is_imported_once_into_an_empty_fleet_database() {
    // This host's own store, as before the fleet.
    let mut local = World::start("[store]\nbackend = \"sqlite\"\n");
    local.write_service("twofold", &local.module_line(""));
    let secret = local.enrol(me());
    wait_for_step_margin(10);
    let used = fresh_code(&secret);
    assert!(local.pam("twofold", me(), &format!("{used}\n")).passed());
    let until = in_30_days();
    let out = local.ctl(&["grace", "set", "nobody", "--until", &until], "");
    assert!(out.status.success(), "{}", combined(&out));
    local.stop_daemon();
    let file = local.path("state/twofold.db");

    let pg = Postgres::start();
    let mut host = World::bus_only();
    let section = store_section(&host, &pg, &pg.url(), None);
    host.start_daemon(&section);
    host.write_service("twofold", &host.module_line(""));
    if is_root() && ensure_test_users() {
        let denied = host.ctl_as(
            Some(USER_A),
            &["store", "import", &file.to_string_lossy()],
            "",
        );
        assert!(
            !denied.status.success() && combined(&denied).contains("only root"),
            "{}",
            combined(&denied)
        );
        println!("proved: store import is refused to another user than root");
    }
    let out = host.ctl(&["store", "import", &file.to_string_lossy()], "");
    let text = combined(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("users") && text.contains("recovery_codes"),
        "{text}"
    );
    let r = host.pam("twofold", me(), &format!("{used}\n"));
    assert!(
        !r.passed(),
        "a code used before the import passed again: {r:?}"
    );
    wait_for_next_step();
    let r = host.pam("twofold", me(), &format!("{}\n", fresh_code(&secret)));
    assert!(r.passed(), "the imported factor: {r:?}");
    let grace = combined(&host.ctl(&["grace", "list"], ""));
    assert!(grace.contains("nobody"), "{grace}");
    let again = host.ctl(&["store", "import", &file.to_string_lossy()], "");
    assert!(
        !again.status.success() && combined(&again).contains("already"),
        "{}",
        combined(&again)
    );
    println!(
        "proved: store import copied a host's SQLite state (factor, replay step, deferral, recovery codes) into PostgreSQL: the used code stays used, the next one passes; a second import is refused"
    );
}

#[test]
fn both_back_ends_end_with_the_same_tables_and_columns() {
    use twofold_daemon::store::schema::{POSTGRES_ONLY, SQLITE_ONLY_TABLES};
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("state/twofold.db");
    twofold_daemon::store::SqliteStore::open(&file).expect("SQLite store");
    let sqlite = rusqlite::Connection::open(&file).expect("open");
    let mut ours: Vec<String> = Vec::new();
    let tables: Vec<String> = sqlite
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .expect("tables")
        .query_map([], |r| r.get(0))
        .expect("tables")
        .collect::<Result<_, _>>()
        .expect("tables");
    for table in tables
        .iter()
        .filter(|t| !SQLITE_ONLY_TABLES.contains(&t.as_str()))
    {
        let columns: Vec<String> = sqlite
            .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))
            .expect("columns")
            .query_map([], |r| r.get(0))
            .expect("columns")
            .collect::<Result<_, _>>()
            .expect("columns");
        ours.extend(columns.into_iter().map(|c| format!("{table}.{c}")));
    }
    ours.sort();

    let pg = Postgres::start();
    let stores = twofold_daemon::store::postgres::PostgresStores::new(
        twofold_daemon::store::postgres::PostgresOptions {
            url: pg.url(),
            password: Some(pg.password().to_string()),
            ca_file: None,
            pool_size: 1,
            statement_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            trust_scope: "host:t".into(),
            application_name: "schema-test".into(),
        },
    )
    .expect("PostgreSQL store");
    assert_eq!(stores.migrate().expect("migrate"), 0, "a new database");
    let listed = pg.psql(
        "twofold",
        "SELECT table_name || '.' || column_name FROM information_schema.columns
         WHERE table_schema = 'public' ORDER BY 1",
    );
    let mut theirs: Vec<String> = listed
        .lines()
        .filter(|c| {
            !POSTGRES_ONLY
                .iter()
                .any(|(t, col)| *c == format!("{t}.{col}"))
        })
        .map(str::to_string)
        .collect();
    theirs.sort();
    assert_eq!(ours, theirs, "SQLite's and PostgreSQL's schemas differ");
    println!(
        "proved: SQLite and PostgreSQL end with the same {} columns in the same tables (beside {:?})",
        ours.len(),
        POSTGRES_ONLY
    );
}
