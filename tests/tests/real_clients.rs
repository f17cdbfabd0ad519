//! twofold through the programs people use: OpenSSH's sshd and client, sudo, and
//! util-linux login on a pty. Root only (CI runs as root): as another user these tests are
//! reported as ignored (tests/build.rs). The daemon runs on a private bus with a test clock,
//! so codes are computed for a known time and windows can be crossed without waiting.

use twofold_integration::system::*;
use twofold_integration::*;

/// 2027-01-15T08:00:00Z, the start of a TOTP step.
const T0: i64 = 1_800_000_000;

fn root_with_users() {
    ensure_test_users();
    // Once per run: parallel chpasswd calls would fight over /etc/shadow's lock.
    static PREPARED: std::sync::Once = std::sync::Once::new();
    PREPARED.call_once(|| {
        prepare_user(USER_A);
        prepare_user(USER_B);
    });
}

/// A world whose daemon starts at T0, with USER_A enrolled and confirmed; returns the secret.
fn world_with_alice(extra: &str) -> (World, String) {
    let w = World::start_at(extra, T0);
    let secret = w.enrol_confirmed(USER_A, T0);
    (w, secret)
}

/// The recommended stack for password logins: the password, `requisite` (a wrong one
/// ends the stack before any code is asked), then twofold.
fn password_stack(w: &World) -> String {
    format!(
        "auth requisite pam_unix.so
{}",
        w.module_line("")
    )
}

/// sshd asking for the password and then the code (keyboard-interactive alone).
fn password_sshd(w: &World) -> Sshd {
    Sshd::start(w, "keyboard-interactive", &password_stack(w))
}

/// sshd asking for a public key and then the code.
fn key_sshd(w: &World) -> Sshd {
    Sshd::start(w, "publickey,keyboard-interactive", &w.module_line(""))
}

#[test]
#[cfg_attr(
    not(as_root),
    ignore = "needs root: real sshd, sudo and login, test users"
)]
fn sshd_keyboard_interactive_password_then_code() {
    root_with_users();
    let (w, secret) = world_with_alice("[lockout]\nmax_failures = 10");
    let sshd = password_sshd(&w);
    w.set_clock(T0 + 30);
    let code = code_at_time(&secret, T0 + 30);
    let s = ssh(&sshd, USER_A, None, &Answers::password(&[&code]));
    assert!(
        s.ran() && s.prompts("Verification code: ") == 1,
        "{s:?}\n{}",
        sshd.log()
    );
    println!("proved: ssh (keyboard-interactive): password, then the code, then the command ran");

    let replay = ssh(&sshd, USER_A, None, &Answers::password(&[code.as_str(); 3]));
    assert!(!replay.ran() && replay.has("Wrong code"), "{replay:?}");
    println!("proved: the same code over ssh again is refused");

    let wrong = ssh(&sshd, USER_A, None, &Answers::password(&["000000"; 3]));
    assert!(!wrong.ran() && wrong.has("Wrong code"), "{wrong:?}");
    println!("proved: wrong codes over ssh are refused");
}

#[test]
#[cfg_attr(
    not(as_root),
    ignore = "needs root: real sshd, sudo and login, test users"
)]
fn sshd_publickey_then_code_trusts_the_key_and_asks_another() {
    root_with_users();
    let (w, secret) = world_with_alice("");
    let sshd = key_sshd(&w);
    let key = sshd.add_key(USER_A, "laptop");
    let other = sshd.add_key(USER_A, "desktop");
    w.set_clock(T0 + 30);
    let first = ssh(
        &sshd,
        USER_A,
        Some(&key),
        &Answers::code(&code_at_time(&secret, T0 + 30)),
    );
    assert!(
        first.ran() && first.has("Trust this device for 90 days?"),
        "{first:?}\n{}",
        sshd.log()
    );
    w.set_clock(T0 + 600);
    let again = ssh(&sshd, USER_A, Some(&key), &Answers::none());
    assert!(
        again.ran() && again.prompts("Verification code") == 0,
        "{again:?}"
    );
    println!("proved: ssh with the same key within the window: no prompt");
    let asked = ssh(
        &sshd,
        USER_A,
        Some(&other),
        &Answers::code(&code_at_time(&secret, T0 + 600)),
    );
    assert!(
        asked.ran() && asked.prompts("Verification code: ") == 1,
        "{asked:?}"
    );
    println!("proved: another key is asked for a code");
}

#[test]
#[cfg_attr(
    not(as_root),
    ignore = "needs root: real sshd, sudo and login, test users"
)]
fn sshd_trust_this_device_yes_is_honoured_after_the_window() {
    root_with_users();
    let (w, secret) = world_with_alice("");
    let sshd = key_sshd(&w);
    let key = sshd.add_key(USER_A, "laptop");
    w.set_clock(T0 + 30);
    let answers = Answers {
        trust: Some("y".into()),
        ..Answers::code(&code_at_time(&secret, T0 + 30))
    };
    let first = ssh(&sshd, USER_A, Some(&key), &answers);
    assert!(first.ran(), "{first:?}");
    w.set_clock(T0 + 30 * 86400);
    let later = ssh(&sshd, USER_A, Some(&key), &Answers::none());
    assert!(
        later.ran() && later.prompts("Verification code") == 0,
        "{later:?}"
    );
    println!(
        "proved: 'Trust this device' answered yes: 30 days later the key passes without a prompt"
    );
}

#[test]
#[cfg_attr(
    not(as_root),
    ignore = "needs root: real sshd, sudo and login, test users"
)]
fn sshd_grace_reminder_before_the_deadline_and_refusal_after() {
    root_with_users();
    let w = World::start_at("[enrolment]\ndeadline = \"2027-01-25\"", T0);
    let sshd = password_sshd(&w);
    let before = ssh(&sshd, USER_B, None, &Answers::password(&[]));
    assert!(
        before.ran() && before.has("becomes mandatory on 2027-01-25"),
        "{before:?}\n{}",
        sshd.log()
    );
    println!(
        "proved: an unenrolled user sees the reminder over ssh and logs in before the deadline"
    );
    w.set_clock(1_800_835_200);
    let after = ssh(&sshd, USER_B, None, &Answers::password(&[]));
    assert!(!after.ran(), "{after:?}");
    println!("proved: after the deadline the unenrolled user is refused");
}

#[test]
#[cfg_attr(
    not(as_root),
    ignore = "needs root: real sshd, sudo and login, test users"
)]
fn sshd_lockout_after_n_failures_holds_against_the_right_code() {
    root_with_users();
    let (w, secret) = world_with_alice("[lockout]\nmax_failures = 3");
    let sshd = password_sshd(&w);
    w.set_clock(T0 + 30);
    let wrong = Answers::password(&["111111", "222222", "333333"]);
    let s = ssh(&sshd, USER_A, None, &wrong);
    assert!(!s.ran(), "{s:?}");
    let right = ssh(
        &sshd,
        USER_A,
        None,
        &Answers::password(&[&code_at_time(&secret, T0 + 30)]),
    );
    assert!(
        !right.ran(),
        "a locked account got in with the right code: {right:?}"
    );
    let status = combined(&w.ctl(&["status", USER_A], ""));
    assert!(status.contains("locked until"), "{status}");
    println!("proved: 3 wrong codes over ssh lock the account; the right code is then refused");
}

#[test]
#[cfg_attr(
    not(as_root),
    ignore = "needs root: real sshd, sudo and login, test users"
)]
fn sudo_asks_for_the_code_and_trusts_only_the_same_login_session() {
    root_with_users();
    let service = unique("sudo-twofold");
    // The same policy as the built-in one for "sudo": 1 hour, 15 idle minutes, nothing remembered.
    let policy = format!(
        "[policy.\"{service}\"]\nsession_hours = 1\nidle_minutes = 15\nremember_device = false"
    );
    let (w, secret) = world_with_alice(&policy);
    let _sudo = sudo_service(USER_A, &service, &password_stack(&w));
    let session = new_login_session();
    w.set_clock(T0 + 30);
    let wrong = sudo(USER_A, &Answers::password(&["000000"; 3]));
    assert!(!wrong.ran(), "{wrong:?}");
    println!("proved: sudo with wrong codes is refused");
    let ok = sudo(
        USER_A,
        &Answers::password(&[&code_at_time(&secret, T0 + 30)]),
    );
    assert!(
        ok.ran() && ok.has("uid=0") && ok.prompts("Verification code: ") == 1,
        "{ok:?}"
    );
    println!("proved: sudo with the password and the right code runs the command as uid 0");
    w.set_clock(T0 + 600);
    let again = sudo(USER_A, &Answers::password(&[]));
    assert!(
        again.ran() && again.prompts("Verification code") == 0,
        "{again:?}"
    );
    println!(
        "proved: a second sudo in login session {session} needs no code (sudo's own cache off)"
    );
    let other = new_login_session();
    let asked = sudo(USER_A, &Answers::password(&[]));
    assert!(!asked.ran() && asked.has("Verification code"), "{asked:?}");
    println!("proved: sudo from another login session ({other}) is asked for the code");
}

#[test]
#[cfg_attr(
    not(as_root),
    ignore = "needs root: real sshd, sudo and login, test users"
)]
fn console_login_asks_for_password_then_code() {
    root_with_users();
    let (w, secret) = world_with_alice("");
    // The stack docs/integration.md recommends for login, under pam_wrapper.
    let stack = format!(
        "{}account required pam_unix.so\nsession required pam_unix.so\n",
        password_stack(&w)
    );
    w.write_service("login", &stack);
    w.set_clock(T0 + 30);
    let s = console_login(
        &w.path("pam.d"),
        USER_A,
        &Answers::password(&[&code_at_time(&secret, T0 + 30)]),
    );
    assert!(s.ran() && s.prompts("Verification code: ") == 1, "{s:?}");
    println!("proved: util-linux login on a pty: password, then code, then a shell");
    let wrong = console_login(&w.path("pam.d"), USER_A, &Answers::password(&["000000"]));
    assert!(!wrong.ran(), "{wrong:?}");
    println!("proved: util-linux login with a wrong code gives no shell");
}

#[test]
#[cfg_attr(
    not(as_root),
    ignore = "needs root: real sshd, sudo and login, test users"
)]
fn screen_locker_style_pam_as_the_user() {
    root_with_users();
    let (w, secret) = world_with_alice("");
    w.enrol(USER_B);
    w.write_service("xscreensaver", &w.module_line(""));
    w.set_clock(T0 + 30);
    let own = w.pam_as(
        Some(USER_A),
        "xscreensaver",
        USER_A,
        &format!("{}\n", code_at_time(&secret, T0 + 30)),
        &[],
    );
    assert!(own.passed(), "{own:?}");
    let other = w.pam_as(Some(USER_A), "xscreensaver", USER_B, "123456\n", &[]);
    assert!(
        !other.passed() && other.has("Permission denied"),
        "{other:?}"
    );
    println!("proved: PAM run as {USER_A} unlocks {USER_A}; for {USER_B} the daemon refuses");
}

/// What pam_twofold tells the person when twofoldd gives no verdict.
const NOT_AVAILABLE: &str = "The two-factor service is not available right now";

#[test]
#[cfg_attr(
    not(as_root),
    ignore = "needs root: real sshd, sudo and login, test users"
)]
fn sshd_sudo_and_login_explain_a_daemon_that_is_down() {
    root_with_users();
    let service = unique("sudo-twofold");
    let (mut w, _secret) = world_with_alice("");
    let sshd = password_sshd(&w);
    // USER_B: the sudo test running beside this one routes USER_A's sudo to its own stack.
    let _sudo = sudo_service(USER_B, &service, &password_stack(&w));
    let stack = format!(
        "{}account required pam_unix.so\nsession required pam_unix.so\n",
        password_stack(&w)
    );
    w.write_service("login", &stack);
    w.stop_daemon();
    let s = ssh(&sshd, USER_A, None, &Answers::password(&[]));
    assert!(!s.ran() && s.has(NOT_AVAILABLE), "{s:?}\n{}", sshd.log());
    println!("proved: ssh shows the 'not available' line when twofoldd is down");
    let s = sudo(USER_B, &Answers::password(&[]));
    assert!(!s.ran() && s.has(NOT_AVAILABLE), "{s:?}");
    println!("proved: sudo shows the 'not available' line when twofoldd is down");
    let s = console_login(&w.path("pam.d"), USER_A, &Answers::password(&[]));
    assert!(!s.ran() && s.has(NOT_AVAILABLE), "{s:?}");
    println!("proved: login shows the 'not available' line when twofoldd is down");
}

/// Removes the messages the server stored, so the next code read is the next one sent.
fn empty_mailbox(server: &twofold_integration::smtp::Server) {
    if let Ok(entries) = std::fs::read_dir(server.maildir.join("new")) {
        for e in entries.flatten() {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

#[test]
#[cfg_attr(
    not(as_root),
    ignore = "needs root: real sshd, sudo and login, test users"
)]
fn sshd_sudo_and_console_login_take_a_code_by_email() {
    use twofold_integration::smtp;
    root_with_users();
    let dir = tempfile::tempdir().unwrap();
    let server = smtp::start(dir.path(), None);
    let w = World::start_at(
        &format!(
            "{}[email_codes]\nenabled = true\n",
            smtp::plain_section(server.port, 10)
        ),
        T0,
    );
    let out = w.ctl(&["user", "set", USER_A, "--email", "alice@example.org"], "");
    assert!(out.status.success(), "{}", combined(&out));
    server.wait_for(1);
    let new_mail = server.maildir.join("new");

    empty_mailbox(&server);
    let sshd = password_sshd(&w);
    let s = ssh(&sshd, USER_A, None, &Answers::password_then_mail(&new_mail));
    assert!(
        s.ran() && s.prompts("Code from the e-mail: ") == 1,
        "{s:?}\n{}",
        sshd.log()
    );
    println!(
        "proved: ssh (keyboard-interactive): password, Enter, the mailed code, the command ran"
    );

    empty_mailbox(&server);
    let service = unique("sudo-twofold");
    let _sudo = sudo_service(USER_A, &service, &password_stack(&w));
    let s = sudo_on_a_terminal(USER_A, &Answers::password_then_mail(&new_mail));
    assert!(
        s.ran() && s.has("uid=0") && s.prompts("Code from the e-mail: ") == 1,
        "{s:?}"
    );
    println!("proved: sudo: password, Enter, the mailed code, the command ran as uid 0");

    empty_mailbox(&server);
    let stack = format!(
        "{}account required pam_unix.so\nsession required pam_unix.so\n",
        password_stack(&w)
    );
    w.write_service("login", &stack);
    let s = console_login(
        &w.path("pam.d"),
        USER_A,
        &Answers::password_then_mail(&new_mail),
    );
    assert!(s.ran() && s.prompts("Code from the e-mail: ") == 1, "{s:?}");
    println!("proved: util-linux login: password, Enter, the mailed code, a shell");
}

#[test]
#[cfg_attr(
    not(as_root),
    ignore = "needs root: real sshd, sudo and login, test users"
)]
fn sshd_and_sudo_take_a_code_by_sms_through_kannel() {
    use twofold_integration::kannel::{self, Kannel};
    if !kannel::installed_or_skip("sshd_and_sudo_take_a_code_by_sms_through_kannel") {
        return;
    }
    root_with_users();
    let k = Kannel::start();
    let password = k.dir().join("sms.password");
    k.write_password_file(&password);
    let (w, _) = world_with_alice(&format!(
        "[sms]\nenabled = true\nallowed_prefixes = [\"+49\"]\n[sms.kannel]\nurl = \"{}\"\nusername = \"{}\"\npassword_file = \"{}\"\n{}",
        k.sendsms_url(),
        k.username(),
        password.display(),
        twofold_integration::kannel::local_user_line()
    ));
    let out = w.ctl(&["user", "set", USER_A, "--phone", "+4915112345678"], "");
    assert!(out.status.success(), "{}", combined(&out));
    // The password is requisite before twofold, and the pam.d line says so: only then is
    // SMS offered.
    let stack = format!(
        "auth requisite pam_unix.so\n{}",
        w.module_line("offer_enrolment")
    );
    w.set_clock(T0 + 30);
    let sshd = Sshd::start(&w, "keyboard-interactive", &stack);
    let s = ssh(
        &sshd,
        USER_A,
        None,
        &Answers::password_then_text(&k.messages_file(), k.messages().len()),
    );
    assert!(
        s.ran() && s.prompts("Code sent by SMS to +49********678 at ") == 1,
        "{s:?}\n{}\n{}",
        sshd.log(),
        w.daemon_log()
    );
    println!(
        "proved: ssh (keyboard-interactive): password, 'sms', the code from the text Kannel delivered, the command ran"
    );

    // The next text after the least interval (60 s, on the daemon's clock).
    w.set_clock(T0 + 120);
    let service = unique("sudo-twofold");
    let _sudo = sudo_service(USER_A, &service, &stack);
    let s = sudo_on_a_terminal(
        USER_A,
        &Answers::password_then_text(&k.messages_file(), k.messages().len()),
    );
    assert!(
        s.ran() && s.has("uid=0") && s.prompts("Code sent by SMS to ") == 1,
        "{s:?}\n{}",
        w.daemon_log()
    );
    assert_eq!(k.messages().len(), 2, "one text per login");
    println!(
        "proved: sudo on a terminal: password, 'sms', the texted code, the command ran as uid 0"
    );
}

#[test]
#[cfg_attr(
    not(as_root),
    ignore = "needs root: real sshd, sudo and login, test users"
)]
fn sshd_offers_an_app_at_the_first_login_and_it_is_active_after_the_first_code() {
    root_with_users();
    let w = World::start_at("[enrolment]\ndeadline = \"2099-01-01\"\n", T0);
    // A requisite password before the module, and the pam.d word that says so.
    let stack = format!(
        "auth requisite pam_unix.so\n{}",
        w.module_line("offer_enrolment")
    );
    let sshd = Sshd::start(&w, "keyboard-interactive", &stack);
    let declined = ssh(&sshd, USER_A, None, &Answers::password(&[]));
    assert!(
        declined.ran() && declined.has("Set up your authenticator app now"),
        "{declined:?}"
    );
    assert!(
        declined.has("█"),
        "no QR code in the ssh client's output: {declined:?}"
    );
    println!(
        "proved: over ssh the grace login shows the QR code and the key; Enter declines and the command runs"
    );

    let s = ssh(
        &sshd,
        USER_A,
        None,
        &Answers {
            enrol_at: Some(T0),
            ..Answers::password(&[])
        },
    );
    assert!(s.ran() && s.has("Recovery codes"), "{s:?}\n{}", sshd.log());
    let status = combined(&w.ctl(&["status", USER_A], ""));
    assert!(status.contains("active authenticator app"), "{status}");
    println!("proved: over ssh the app's first code sets it up; status says active");

    // The next login asks for the app's code, and without it there is no way in.
    w.set_clock(T0 + 30);
    let refused = ssh(&sshd, USER_A, None, &Answers::password(&["000000"; 3]));
    assert!(!refused.ran(), "{refused:?}");
    println!("proved: after self-enrolment ssh asks for the code and refuses a wrong one");
}
