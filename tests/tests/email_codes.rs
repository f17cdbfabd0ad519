//! E-mailed one-time codes, end to end: the real `.so` through libpam (pamtester), real
//! sshd and sudo, twofoldd sending through a real SMTP server (aiosmtpd), and a server
//! that accepts connections and never answers. The code is read from the delivered mail
//! and typed back, as a user would.

use std::time::{Duration, Instant};
use twofold_integration::smtp::{self, code_in, plain_section};
use twofold_integration::*;

/// E-mailed codes on; `codes` holds more `[email_codes]` keys.
fn world_with_mail(server_port: u16, codes: &str) -> World {
    let w = World::start(&format!(
        "{}[email_codes]\nenabled = true\n{codes}",
        plain_section(server_port, 10)
    ));
    w.write_service("twofold", &w.module_line(""));
    w
}

/// Sets this test user's address; returns the mails delivered once its notice arrived.
fn set_my_address(w: &World, server: &smtp::Server) -> usize {
    let out = w.ctl(&["user", "set", me(), "--email", "person@example.org"], "");
    assert!(out.status.success(), "{}", combined(&out));
    server.wait_for(1).len()
}

/// Waits for the `n`-th mail and returns the code in it: the one no earlier call
/// returned (a maildir lists its files in no particular order).
fn code_of_mail(server: &smtp::Server, n: usize) -> String {
    thread_local! {
        static SEEN: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let got = server.wait_for(n);
    assert_eq!(got.len(), n, "mail {n} did not arrive: {got:#?}");
    SEEN.with(|seen| {
        let mut seen = seen.borrow_mut();
        let fresh = got
            .iter()
            .filter_map(|m| code_in(m))
            .find(|c| !seen.contains(c))
            .unwrap_or_else(|| panic!("no mail with a new code: {got:#?}"));
        seen.push(fresh.clone());
        fresh
    })
}

#[test]
fn a_mailed_code_logs_in_once_and_the_mail_says_where_the_login_comes_from() {
    let dir = tempfile::tempdir().unwrap();
    let server = smtp::start(dir.path(), None);
    let w = world_with_mail(server.port, "");
    let user = me();
    let notices = set_my_address(&w, &server);

    let mut login = w.pam_typing("twofold", user);
    login.line("");
    let code = code_of_mail(&server, notices + 1);
    login.line(&code);
    let run = login.finish();
    assert!(run.passed(), "{run:?}");
    assert!(
        run.has("Verification code (or press Enter for one by e-mail): ")
            && run.has("a code is on its way")
            && run.has("Code from the e-mail: "),
        "{run:?}"
    );
    let mail = server
        .delivered()
        .into_iter()
        .find(|m| m.contains(&code))
        .unwrap();
    for part in [
        "To: person@example.org",
        "Subject: Your login code for",
        &format!("Hello {user},"),
        "the twofold login",
        "192.0.2.10",
        "UTC",
        "10 minutes",
    ] {
        assert!(mail.contains(part), "{part:?} missing in {mail}");
    }
    println!(
        "proved: the mailed code passes the real module; the mail names user, service, source, time"
    );

    // Used once: typed again into a new login it is a wrong code.
    let replay = w.pam("twofold", user, &format!("{code}\n{code}\n{code}\n"));
    assert!(!replay.passed() && replay.has("Wrong code"), "{replay:?}");
    assert!(!w.daemon_log().contains(&code), "the code reached the log");
    println!("proved: a mailed code works once");
}

#[test]
fn a_superseded_or_other_logins_code_fails_and_the_hourly_cap_holds() {
    let dir = tempfile::tempdir().unwrap();
    let server = smtp::start(dir.path(), None);
    let w = world_with_mail(server.port, "per_hour = 3\n");
    let user = me();
    let mut n = set_my_address(&w, &server);

    // Login A asks twice; the first code no longer works, the second does.
    let mut a = w.pam_typing("twofold", user);
    a.line("");
    n += 1;
    let first = code_of_mail(&server, n);
    a.line("");
    n += 1;
    let second = code_of_mail(&server, n);
    // Login B asks for none and tries A's current code.
    let other = w.pam("twofold", user, &format!("{second}\n"));
    assert!(!other.passed(), "another login's code passed: {other:?}");
    if first != second {
        a.line(&first);
    }
    a.line(&second);
    let run = a.finish();
    assert!(run.passed(), "{run:?}");
    if first != second {
        assert!(run.has("Wrong code"), "{run:?}");
    }
    println!("proved: a new code replaces the earlier one; a code is bound to its login");

    // The third mail this hour is the last.
    let run = w.pam("twofold", user, "\n\n");
    assert!(run.has("a code is on its way"), "{run:?}");
    let run = w.pam("twofold", user, "\n");
    assert!(
        run.has("No more codes by e-mail for now"),
        "{run:?}\n{}",
        w.daemon_log()
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        server.delivered().len(),
        n + 1,
        "the cap let a mail through"
    );
    println!("proved: at most per_hour mails with codes per user");
}

#[test]
fn the_hourly_cap_holds_when_the_clock_jumps_back() {
    let dir = tempfile::tempdir().unwrap();
    let server = smtp::start(dir.path(), None);
    const T0: i64 = 1_800_000_000;
    let w = World::start_at(
        &format!(
            "{}[email_codes]\nenabled = true\nper_hour = 2\n",
            plain_section(server.port, 10)
        ),
        T0,
    );
    w.write_service("twofold", &w.module_line(""));
    let user = me();
    let n = set_my_address(&w, &server);
    let run = w.pam("twofold", user, "\n\n");
    assert!(run.has("a code is on its way"), "{run:?}");
    server.wait_for(n + 2);
    for (back, label) in [(1, "a second"), (3600, "an hour")] {
        w.set_clock(T0 - back);
        let run = w.pam("twofold", user, "\n");
        assert!(
            run.has("No more codes by e-mail for now"),
            "the clock set back {label} gave the mails back: {run:?}\n{}",
            w.daemon_log()
        );
    }
    // The hour runs from the jump: it neither ends early nor lasts up to the old hour.
    w.set_clock(T0 - 3600 + 3599);
    let run = w.pam("twofold", user, "\n");
    assert!(run.has("No more codes by e-mail for now"), "{run:?}");
    w.set_clock(T0 - 3600 + 3600);
    let run = w.pam("twofold", user, "\n");
    assert!(run.has("a code is on its way"), "{run:?}");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(server.delivered().len(), n + 3, "mails sent");
    println!(
        "proved: with 2 mails an hour sent, setting the clock back a second or an hour sends none, and the hour runs from the jump"
    );
}

#[test]
fn a_mail_server_that_never_answers_is_told_and_stalls_no_other_login() {
    let silent = smtp::silent();
    // The user has an app too (app_users): its codes must pass while the mail hangs.
    let w = World::start(&format!(
        "{}[email_codes]\nenabled = true\napp_users = true\n",
        plain_section(silent.port, 2)
    ));
    w.write_service("twofold", &w.module_line(""));
    let user = me();
    let secret = w.enrol(user);
    let out = w.ctl(&["user", "set", user, "--email", "person@example.org"], "");
    assert!(out.status.success(), "{}", combined(&out));

    // (A fresh code may mean waiting for the next step: before the clock starts.)
    let code = fresh_code(&secret);
    let mut waiting = w.pam_typing("twofold", user);
    waiting.line("");
    std::thread::sleep(Duration::from_millis(300));
    // While the mail hangs, an app code passes at once.
    let start = Instant::now();
    let ok = w.pam("twofold", user, &format!("{code}\n"));
    assert!(ok.passed(), "{ok:?}");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "a login waited for the mail server: {:?}",
        start.elapsed()
    );
    assert!(silent.accepted() >= 1, "twofoldd never tried the server");
    std::thread::sleep(Duration::from_secs(3));
    waiting.line("");
    let run = waiting.finish();
    assert!(!run.passed());
    assert!(
        run.has("The e-mail with your code could not be sent"),
        "{run:?}"
    );
    let status = w.ctl(&["status", user], "");
    let text = String::from_utf8_lossy(&status.stdout).to_string();
    assert!(
        text.contains("0 recent failure(s), not locked"),
        "asking for mail counted or locked: {text}"
    );
    println!("proved: a silent mail server gives a clear message, no lock, and other logins go on");
}

#[test]
fn a_mailed_code_past_its_minutes_fails() {
    let dir = tempfile::tempdir().unwrap();
    let server = smtp::start(dir.path(), None);
    // 2027-01-15T08:00:00Z on the daemon's test clock; codes valid 2 minutes.
    const T0: i64 = 1_800_000_000;
    let w = World::start_at(
        &format!(
            "{}[email_codes]\nenabled = true\nvalid_minutes = 2\n",
            plain_section(server.port, 10)
        ),
        T0,
    );
    w.write_service("twofold", &w.module_line(""));
    let user = me();
    let notices = set_my_address(&w, &server);
    let mut login = w.pam_typing("twofold", user);
    login.line("");
    let code = code_of_mail(&server, notices + 1);
    w.set_clock(T0 + 120);
    login.line(&code);
    login.wait_for("Wrong code");
    let run = login.finish();
    assert!(
        !run.passed() && run.has("Wrong code"),
        "an expired code passed: {run:?}"
    );
    println!("proved: a mailed code fails once its minutes are over");
}
