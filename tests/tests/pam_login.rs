//! The real pam_twofold.so through libpam (pamtester under pam_wrapper), against a real
//! twofoldd on a private dbus-daemon.

use twofold_integration::*;

fn login_world(extra: &str, module_args: &str) -> World {
    let w = World::start(extra);
    w.write_service("twofold", &w.module_line(module_args));
    w
}

#[test]
fn right_code_passes_wrong_code_fails_and_replay_fails() {
    // Room for the six failures below without reaching the lockout.
    let w = login_world("[lockout]\nmax_failures = 10\nsource_failures = 10", "");
    let secret = w.enrol(me());
    wait_for_next_step();
    let code = fresh_code(&secret);
    let ok = w.pam("twofold", me(), &format!("{code}\n"));
    assert!(ok.passed(), "{ok:?}");
    assert!(ok.has("Verification code: "), "{ok:?}");
    println!("proved: a right, fresh code passes");

    let replay = w.pam("twofold", me(), &format!("{code}\n{code}\n{code}\n"));
    assert!(!replay.passed() && replay.has("Wrong code"), "{replay:?}");
    println!("proved: the same code is refused the second time");

    let wrong = w.pam("twofold", me(), "000000\n111111\n222222\n");
    assert!(!wrong.passed(), "{wrong:?}");
    assert!(
        wrong.has("Have exhausted maximum number of retries"),
        "PAM_MAXTRIES expected: {wrong:?}"
    );
    println!("proved: three wrong codes end in PAM_MAXTRIES");
}

#[test]
fn lockout_holds_against_a_right_code_until_unlocked() {
    let w = login_world("[lockout]\nmax_failures = 3\n", "");
    let secret = w.enrol(me());
    let r = w.pam("twofold", me(), "000000\n000001\n000002\n");
    assert!(r.has("locked"), "{r:?}");
    let code = fresh_code(&secret);
    let locked = w.pam("twofold", me(), &format!("{code}\n"));
    assert!(!locked.passed() && locked.has("locked"), "{locked:?}");
    let out = w.ctl(&["unlock", me()], "");
    assert!(out.status.success(), "{}", combined(&out));
    let ok = w.pam("twofold", me(), &format!("{code}\n"));
    assert!(ok.passed(), "{ok:?}");
    println!("proved: lockout after 3 failures refuses the right code; unlock ends it");
}

#[test]
fn daemon_down_fails_closed_and_failmode_safe_passes() {
    let w = World::bus_only();
    w.write_service("twofold", &w.module_line("timeout=2"));
    let r = w.pam("twofold", me(), "123456\n");
    assert!(!r.passed(), "{r:?}");
    assert!(
        r.has("Authentication service cannot retrieve authentication info"),
        "PAM_AUTHINFO_UNAVAIL expected: {r:?}"
    );
    w.write_service("twofold", &w.module_line("timeout=2 failmode=safe"));
    let r = w.pam("twofold", me(), "");
    assert!(r.passed(), "{r:?}");
    // No bus at all: also fails closed.
    w.write_service(
        "twofold",
        &format!(
            "auth required {} bus=unix:path=/nonexistent/bus\n",
            module_path().display()
        ),
    );
    let r = w.pam("twofold", me(), "123456\n");
    assert!(
        !r.passed() && r.has("Authentication service cannot retrieve authentication info"),
        "{r:?}"
    );
    // No socket is a definite absence: failmode=safe lets it through.
    w.write_service(
        "twofold",
        &format!(
            "auth required {} bus=unix:path=/nonexistent/bus failmode=safe\n",
            module_path().display()
        ),
    );
    assert!(w.pam("twofold", me(), "").passed());
    println!("proved: daemon down -> PAM_AUTHINFO_UNAVAIL; failmode=safe lets the login through");
}

/// What the person is told when twofoldd gives no verdict (pam_twofold's UNAVAILABLE).
const NOT_AVAILABLE: &str =
    "The two-factor service is not available right now; try again or contact your administrator.";

#[test]
fn a_stopped_or_hung_daemon_is_explained_in_one_line_that_names_no_account() {
    let mut w = World::start("");
    let me = me();
    w.write_service("twofold", &w.module_line("timeout=2"));
    // Hung: the name is still owned, but twofoldd answers nothing (SIGSTOP).
    let pid = nix::unistd::Pid::from_raw(w.daemon_pid().expect("daemon") as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).expect("SIGSTOP");
    let started = std::time::Instant::now();
    let hung = w.pam("twofold", me, "123456\n");
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).expect("SIGCONT");
    assert!(!hung.passed() && hung.has(NOT_AVAILABLE), "{hung:?}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(8),
        "timeout= not honoured"
    );
    // Stopped: nobody owns the name.
    w.stop_daemon();
    let seen: Vec<String> = [me, "no-such-user-here"]
        .iter()
        .map(|user| {
            let down = w.pam("twofold", user, "123456\n");
            assert!(!down.passed() && down.has(NOT_AVAILABLE), "{down:?}");
            down.output.replace(user, "USER")
        })
        .collect();
    // An existing and an unknown account see exactly the same thing.
    assert_eq!(seen[0], seen[1]);
    println!(
        "proved: a hung (SIGSTOP) or stopped daemon gives the user one clear line and fails closed"
    );
}

#[test]
fn the_bus_address_is_never_taken_from_the_environment() {
    let w = World::start("");
    let secret = w.enrol(me());
    // No bus= on the PAM line: the module must use the compiled system bus address, not
    // DBUS_SYSTEM_BUS_ADDRESS (which a user controls inside sudo).
    w.write_service(
        "twofold",
        &format!("auth required {} timeout=2\n", module_path().display()),
    );
    let code = fresh_code(&secret);
    let r = w.pam_as(
        None,
        "twofold",
        me(),
        &format!("{code}\n"),
        &[("DBUS_SYSTEM_BUS_ADDRESS", &w.bus_address)],
    );
    assert!(
        !r.passed(),
        "the module followed DBUS_SYSTEM_BUS_ADDRESS: {r:?}"
    );
    println!("proved: DBUS_SYSTEM_BUS_ADDRESS is ignored");
}

#[test]
#[cfg_attr(
    not(as_root),
    ignore = "needs root: logs in as a second account (only root may act for another user)"
)]
fn unenrolled_user_is_denied_by_default_and_ignored_when_configured() {
    let w = login_world("", "");
    let r = w.pam("twofold", "nobody", "123456\n123456\n123456\n");
    assert!(!r.passed() && r.has("Verification code: "), "{r:?}");
    println!(
        "proved: an unenrolled user is asked and refused like a wrong code (unenrolled = deny)"
    );

    let w = World::start("[login]\nunenrolled = \"ignore\"");
    // PAM_IGNORE leaves the decision to the rest of the stack.
    let line = w.module_line("");
    w.write_service("twofold", &format!("{line}auth required pam_permit.so\n"));
    let r = w.pam("twofold", "nobody", "");
    assert!(r.passed() && !r.has("Verification code"), "{r:?}");
    w.write_service("twofold", &format!("{line}auth required pam_deny.so\n"));
    assert!(!w.pam("twofold", "nobody", "").passed());
    println!("proved: unenrolled = ignore gives PAM_IGNORE (the stack decides)");
}

#[test]
fn concurrent_logins_with_the_same_code_let_exactly_one_through() {
    let w = login_world("", "");
    let secret = w.enrol(me());
    wait_for_next_step();
    let code = fresh_code(&secret);
    let results: Vec<PamRun> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let (w, code) = (&w, code.clone());
                s.spawn(move || {
                    // pam_wrapper's per-process directories collide on simultaneous starts.
                    std::thread::sleep(std::time::Duration::from_millis(15 * i));
                    w.pam("twofold", me(), &format!("{code}\n"))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let passed = results.iter().filter(|r| r.passed()).count();
    assert_eq!(passed, 1, "{results:#?}");
    println!("proved: 4 parallel logins with one code: exactly 1 passed");
}

#[test]
fn audit_records_reach_syslog_with_no_code() {
    let w = World::bus_only();
    let log = std::os::unix::net::UnixDatagram::bind(w.path("syslog")).expect("bind syslog");
    log.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .expect("timeout");
    let mut w = w;
    w.start_daemon("");
    w.write_service("twofold", &w.module_line(""));
    let secret = w.enrol(me());
    let code = fresh_code(&secret);
    assert!(w.pam("twofold", me(), &format!("{code}\n")).passed());
    let mut lines = Vec::new();
    let mut buf = [0u8; 2048];
    while let Ok(n) = log.recv(&mut buf) {
        lines.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        if lines.iter().any(|l| l.contains("action=login")) {
            break;
        }
    }
    let login = lines
        .iter()
        .find(|l| l.contains("action=login"))
        .expect("a login record");
    assert!(login.starts_with("<86>"), "authpriv.info expected: {login}");
    assert!(
        login.contains("outcome=success") && login.contains(r#"service="twofold""#),
        "{login}"
    );
    assert!(login.contains(r#"rhost="192.0.2.10""#), "{login}");
    for l in &lines {
        assert!(
            !l.contains(&code) && !l.contains(&secret),
            "secret material in {l}"
        );
    }
    println!("proved: decisions are audited to syslog authpriv without codes or secrets");
}

#[test]
#[cfg_attr(
    not(as_root),
    ignore = "needs root: creates a second name for a test user"
)]
fn a_second_name_of_an_enrolled_uid_is_asked_for_that_accounts_code() {
    // Issue 7 item 1: under `unenrolled = "ignore"` another name of the same uid got
    // PAM_IGNORE, and the rest of the stack (here pam_permit) let it in.
    let _alias = alias_of_user_a().expect("needs root to create the alias");
    let w = World::start("[login]\nunenrolled = \"ignore\"\n[lockout]\nmax_failures = 3");
    let line = w.module_line("");
    w.write_service("twofold", &format!("{line}auth required pam_permit.so\n"));
    let secret = w.enrol(USER_A);
    let r = w.pam("twofold", USER_A_ALIAS, "");
    assert!(
        !r.passed() && r.has("Verification code"),
        "{USER_A_ALIAS} skipped {USER_A}'s factor: {r:?}"
    );
    let r = w.pam(
        "twofold",
        USER_A_ALIAS,
        &format!("{}\n", fresh_code(&secret)),
    );
    assert!(r.passed(), "{r:?}");
    // One lockout for both names.
    w.pam("twofold", USER_A_ALIAS, "000000\n000001\n000002\n");
    let r = w.pam("twofold", USER_A, "123456\n");
    assert!(!r.passed() && r.has("locked"), "{r:?}");
    println!(
        "proved: {USER_A_ALIAS} (same uid as {USER_A}) is asked for {USER_A}'s code and shares its lockout"
    );
}

#[test]
#[cfg_attr(
    not(as_root),
    ignore = "needs root: only a root caller's remote address is a source"
)]
fn wrong_codes_after_a_failed_password_cannot_lock_out_the_user_elsewhere() {
    // Issue 7 item 11: with a `required` (not `requisite`) first factor the module runs
    // after a wrong password, so anyone could lock the account with wrong codes.
    let w = World::start("[lockout]\nmax_failures = 5\nsource_failures = 3");
    let module = w.module_line("");
    w.write_service("attacked", &format!("auth required pam_deny.so\n{module}"));
    w.write_service("twofold", &module);
    let secret = w.enrol("root");
    for codes in ["000000\n000001\n000002\n", "000003\n000004\n000005\n"] {
        assert!(!w.pam("attacked", "root", codes).passed());
    }
    let legit = twofold_pamtest::Transaction {
        service: "twofold".into(),
        user: "root".into(),
        answers: vec![fresh_code(&secret)],
        rhost: Some("198.51.100.5".into()),
        tty: Some("ssh".into()),
        env: vec![],
        pause: None,
        quirk: Default::default(),
    };
    let report = w.pam_inprocess(&[legit], &[]);
    let r = &report["results"][0];
    assert_eq!(r["rc"], 0, "the user was locked out from elsewhere: {r}");
    println!(
        "proved: six wrong codes from one address after a failed password do not lock the user out from another"
    );
}
