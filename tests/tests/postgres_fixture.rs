//! The PostgreSQL fixture itself (tests/src/postgres.rs), before any daemon relies on it:
//! a real PostgreSQL 15 started by the test; the `twofold` role signs in over TCP with
//! its password and not with a wrong one; the server can be taken away and brought back
//! with its data; with TLS a client that checks the certificate against the fixture's CA
//! gets in and one without TLS is refused.

use std::os::unix::fs::PermissionsExt;
use std::time::Instant;
use twofold_integration::postgres::{Postgres, connect};

fn conninfo(pg: &Postgres, extra: &str) -> String {
    format!(
        "host=127.0.0.1 port={} dbname=twofold user=twofold {extra}",
        pg.port()
    )
}

#[test]
fn the_twofold_role_signs_in_over_tcp_with_its_password_and_the_data_outlives_a_restart() {
    let started = Instant::now();
    let pg = Postgres::start();
    println!("Postgres::start took {:?}", started.elapsed());
    assert!(pg.is_running());
    assert_eq!(pg.psql("postgres", "SELECT 1"), "1");
    assert_eq!(
        pg.url(),
        format!("postgresql://twofold@127.0.0.1:{}/twofold", pg.port())
    );

    // Over TCP with the password (SCRAM), as a daemon would connect.
    let plain = conninfo(&pg, "sslmode=disable");
    let who = connect(&plain, Some(pg.password()), "SELECT current_user")
        .expect("twofold signs in with its password");
    assert_eq!(who, "twofold");
    let method = pg.psql(
        "postgres",
        "SELECT auth_method FROM pg_hba_file_rules WHERE type = 'host'",
    );
    assert_eq!(method, "scram-sha-256");
    let wrong = connect(&plain, Some("not-the-password"), "SELECT 1").unwrap_err();
    assert!(wrong.contains("password authentication failed"), "{wrong}");
    let none = connect(&plain, None, "SELECT 1").unwrap_err();
    assert!(none.contains("password"), "{none}");

    // The URL's database belongs to twofold, and so does another one made for a group.
    connect(
        &plain,
        Some(pg.password()),
        "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('before the stop')",
    )
    .expect("twofold creates a table in its database");
    let url = pg.create_database("group_a");
    assert_eq!(
        url,
        format!("postgresql://twofold@127.0.0.1:{}/group_a", pg.port())
    );
    let owner = pg.psql(
        "postgres",
        "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'group_a'",
    );
    assert_eq!(owner, "twofold");

    // The password file: one line, readable by its owner only.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("db-password");
    pg.write_password_file(&file);
    assert_eq!(
        std::fs::read_to_string(&file).expect("read"),
        format!("{}\n", pg.password())
    );
    let mode = std::fs::metadata(&file).expect("stat").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    // Taken away: nothing answers, neither the socket nor TCP.
    pg.stop();
    assert!(!pg.is_running());
    assert!(pg.try_psql("postgres", "SELECT 1").is_err());
    assert!(connect(&plain, Some(pg.password()), "SELECT 1").is_err());

    // Back on the same port with the same data.
    pg.start_again();
    assert!(pg.is_running());
    let kept =
        connect(&plain, Some(pg.password()), "SELECT v FROM kept").expect("twofold signs in again");
    assert_eq!(kept, "before the stop");
    println!(
        "proved: SCRAM over TCP for twofold, wrong password refused, data kept across stop/start_again"
    );
}

#[test]
fn with_tls_a_client_that_checks_the_certificate_gets_in_and_one_without_tls_is_refused() {
    let started = Instant::now();
    let pg = Postgres::start_with_tls();
    println!("Postgres::start_with_tls took {:?}", started.elapsed());
    let ca = pg.ca_file();
    for host in ["127.0.0.1", "localhost"] {
        let verified = format!(
            "host={host} port={} dbname=twofold user=twofold sslmode=verify-full sslrootcert={}",
            pg.port(),
            ca.display()
        );
        let ssl = connect(
            &verified,
            Some(pg.password()),
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        )
        .unwrap_or_else(|e| panic!("verify-full to {host}: {e}"));
        assert_eq!(ssl, "t", "the session to {host} is encrypted");
    }

    // Without TLS, even with the right password, pg_hba has no line for it.
    let clear = connect(
        &conninfo(&pg, "sslmode=disable"),
        Some(pg.password()),
        "SELECT 1",
    )
    .unwrap_err();
    assert!(clear.contains("no encryption"), "{clear}");

    // A CA that did not sign the server's certificate is refused by the client.
    let other = tempfile::tempdir().expect("tempdir");
    let (other_ca, _, _) = twofold_integration::smtp::certificates(other.path());
    let untrusted = connect(
        &conninfo(
            &pg,
            &format!("sslmode=verify-full sslrootcert={}", other_ca.display()),
        ),
        Some(pg.password()),
        "SELECT 1",
    )
    .unwrap_err();
    assert!(
        untrusted.contains("certificate verify failed"),
        "{untrusted}"
    );
    println!("proved: verify-full against the fixture's CA, clear TCP and a foreign CA refused");
}
