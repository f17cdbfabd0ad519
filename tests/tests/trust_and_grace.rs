//! Trusted devices, session windows, grace periods and scope through the real
//! pam_twofold.so and libpam, with the daemon's clock under the test's control.
//! sshd-style logins run in-process (pam_inprocess) so the PAM environment can carry
//! SSH_AUTH_INFO_0 as sshd sets it; sudo-style ones run pamtester inside a kernel login
//! session of the test's own.

use serde_json::Value;
use twofold_integration::system::set_password;
use twofold_integration::*;
use twofold_pamtest::Transaction;

/// 2027-01-15T08:00:00Z, the start of a TOTP step.
const T0: i64 = 1_800_000_000;
const HOUR: i64 = 3600;
const DAY: i64 = 86400;
const KEY_A: &str =
    "publickey ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPBt/BNd5lA1dnF//n6CHzH8KvAg/yKN0naK8HbRXq9f";
const KEY_B: &str =
    "publickey ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ6Ys3dQ6f2cm0qUq4aUu0PZ1k0WQ0mX+0Dr7zKd6oVt";

/// An sshd-style transaction: the key that passed, from 192.0.2.7.
fn ssh(user: &str, key: &str, answers: &[&str]) -> Transaction {
    ssh_transaction("sshd", user, key, answers)
}

/// Tests that change a test user's password, and tests whose windows would end if one
/// changed (windows record the password fingerprint), run one at a time.
fn stable_passwords() -> std::sync::MutexGuard<'static, ()> {
    static PASSWORDS: std::sync::Mutex<()> = std::sync::Mutex::new(());
    PASSWORDS.lock().unwrap_or_else(|p| p.into_inner())
}

fn one(w: &World, t: Transaction) -> (i64, Vec<String>) {
    first_outcome(&w.pam_inprocess(&[t], &[]))
}

/// The login was asked for a code (and, given none, failed): no trust applied.
fn assert_asked(w: &World, t: Transaction, why: &str) {
    let (rc, conv) = one(w, t);
    assert!(
        rc != 0 && conv == ["prompt: Verification code: "],
        "{why}: {conv:?}"
    );
}

/// Enrols `user` at the current test time and confirms the factor with its code.
fn enrol_at(w: &World, user: &str, now: i64) -> String {
    w.enrol_confirmed(user, now)
}

fn ssh_world() -> World {
    let w = World::start_at("", T0);
    w.write_service("sshd", &w.module_line(""));
    w
}

#[test]
#[cfg_attr(
    not(as_root),
    ignore = "needs root: only root-run sshd may present an SSH key"
)]
fn sshd_key_session_window_passes_within_its_hours_and_fails_one_second_after() {
    let w = ssh_world();
    let secret = enrol_at(&w, me(), T0);
    let t1 = T0 + 30;
    w.set_clock(t1);
    let (rc, conv) = one(&w, ssh(me(), KEY_A, &[&code_at_time(&secret, t1), "n"]));
    assert_eq!(rc, 0, "{conv:?}");
    assert!(
        conv.contains(&"prompt: Trust this device for 90 days? [y/N] ".to_string()),
        "{conv:?}"
    );
    // Used every 25 minutes (idle limit 30) the window holds to its last second.
    let mut t = t1;
    while t + 25 * 60 < t1 + 12 * HOUR {
        t += 25 * 60;
        w.set_clock(t);
        let (rc, conv) = one(&w, ssh(me(), KEY_A, &[]));
        assert!(
            rc == 0 && conv.is_empty(),
            "asked at +{}s: {conv:?}",
            t - t1
        );
    }
    w.set_clock(t1 + 12 * HOUR - 1);
    assert_eq!(one(&w, ssh(me(), KEY_A, &[])).0, 0);
    w.set_clock(t1 + 12 * HOUR);
    assert_asked(&w, ssh(me(), KEY_A, &[]), "still trusted at exactly 12 h");
    println!("proved: sshd + key: no prompt within 12 h of use, asked at exactly 12 h");
}

#[test]
#[cfg_attr(
    not(as_root),
    ignore = "needs root: only root-run sshd may present an SSH key"
)]
fn sshd_window_lapses_when_idle_and_another_key_is_asked() {
    let w = ssh_world();
    let secret = enrol_at(&w, me(), T0);
    w.set_clock(T0 + 30);
    assert_eq!(
        one(
            &w,
            ssh(me(), KEY_A, &[&code_at_time(&secret, T0 + 30), "n"])
        )
        .0,
        0
    );
    assert_asked(&w, ssh(me(), KEY_B, &[]), "another key passed");
    w.set_clock(T0 + 30 + 30 * 60 - 1);
    assert_eq!(one(&w, ssh(me(), KEY_A, &[])).0, 0);
    w.set_clock(T0 + 30 + 60 * 60 - 1);
    assert_ne!(
        one(&w, ssh(me(), KEY_A, &[])).0,
        0,
        "an idle window still passed"
    );
    println!("proved: another key is asked; 30 idle minutes end the window");
}

#[test]
#[cfg_attr(
    not(as_root),
    ignore = "needs root: only root-run sshd may present an SSH key"
)]
fn a_remembered_device_is_honoured_for_90_days_and_revoke_ends_it() {
    let w = ssh_world();
    let secret = enrol_at(&w, me(), T0);
    let t1 = T0 + 30;
    w.set_clock(t1);
    let (rc, conv) = one(&w, ssh(me(), KEY_A, &[&code_at_time(&secret, t1), "y"]));
    assert!(
        rc == 0 && conv.contains(&"info: This device is now trusted.".to_string()),
        "{conv:?}"
    );
    w.set_clock(t1 + 89 * DAY);
    assert_eq!(
        one(&w, ssh(me(), KEY_A, &[])).0,
        0,
        "remembered device not honoured on day 89"
    );
    let list = w.ctl(&["--json", "trust", "list", me()], "");
    let v: Value = serde_json::from_slice(&list.stdout).expect("json");
    assert!(
        v.as_array()
            .is_some_and(|a| a.iter().any(|t| t["kind"] == "device")),
        "{v}"
    );
    w.set_clock(t1 + 90 * DAY);
    assert_ne!(
        one(&w, ssh(me(), KEY_A, &[])).0,
        0,
        "still trusted after 90 days"
    );

    // Remember again, then revoke with twofoldctl: asked at once.
    let t2 = t1 + 90 * DAY + 30;
    w.set_clock(t2);
    assert_eq!(
        one(&w, ssh(me(), KEY_A, &[&code_at_time(&secret, t2), "y"])).0,
        0
    );
    let out = w.ctl(&["trust", "revoke", me(), "--all"], "");
    assert!(out.status.success(), "{}", combined(&out));
    assert_ne!(
        one(&w, ssh(me(), KEY_A, &[])).0,
        0,
        "revoked trust still passed"
    );
    println!(
        "proved: 'Trust this device' answered yes is honoured to day 90, ends at 90 days and on revoke"
    );
}

#[test]
#[cfg_attr(
    not(as_root),
    ignore = "needs root: logs in as a second account (only root may act for another user)"
)]
fn trust_of_one_user_never_serves_another_and_reset_ends_it() {
    let w = ssh_world();
    let root_secret = enrol_at(&w, me(), T0);
    enrol_at(&w, "nobody", T0);
    w.set_clock(T0 + 30);
    assert_eq!(
        one(
            &w,
            ssh(me(), KEY_A, &[&code_at_time(&root_secret, T0 + 30), "y"])
        )
        .0,
        0
    );
    assert_asked(&w, ssh("nobody", KEY_A, &[]), "root's trust served nobody");
    assert!(w.ctl(&["reset", me()], "").status.success());
    let list = w.ctl(&["--json", "trust", "list", me()], "");
    let v: Value = serde_json::from_slice(&list.stdout).expect("json");
    assert_eq!(v, serde_json::json!([]), "reset left trust records behind");
    enrol_at(&w, me(), T0 + 30);
    assert_asked(&w, ssh(me(), KEY_A, &[]), "trust survived a reset");
    println!("proved: one user's remembered device never serves another; reset ends trust");
}

#[test]
#[cfg_attr(not(as_root), ignore = "needs root: changes a test user's password")]
fn a_password_change_ends_a_remembered_device() {
    let _passwords = stable_passwords();
    ensure_test_users();
    let w = ssh_world();
    let secret = enrol_at(&w, USER_A, T0);
    set_password(USER_A, "first-password-1");
    w.set_clock(T0 + 30);
    assert_eq!(
        one(
            &w,
            ssh(USER_A, KEY_A, &[&code_at_time(&secret, T0 + 30), "y"])
        )
        .0,
        0
    );
    w.set_clock(T0 + 2 * DAY);
    assert_eq!(one(&w, ssh(USER_A, KEY_A, &[])).0, 0);
    set_password(USER_A, "second-password-2");
    assert_asked(
        &w,
        ssh(USER_A, KEY_A, &[]),
        "trusted after a password change",
    );
    assert!(w.daemon_log().is_empty() || !w.daemon_log().contains("panicked"));
    println!("proved: changing the password (chpasswd) ends a remembered device at once");
}

#[test]
#[cfg_attr(not(as_root), ignore = "needs root: changes a test user's password")]
fn a_password_change_ends_a_session_window() {
    let _passwords = stable_passwords();
    // Issue 15 item 5c (checklist 11): only remembered devices compared the fingerprint.
    // tf-bob: a_password_change_ends_a_remembered_device changes tf-alice's password
    // in parallel.
    ensure_test_users();
    let w = ssh_world();
    let secret = enrol_at(&w, USER_B, T0);
    set_password(USER_B, "first-password-1");
    w.set_clock(T0 + 30);
    let (rc, conv) = one(
        &w,
        ssh(USER_B, KEY_A, &[&code_at_time(&secret, T0 + 30), "n"]),
    );
    assert_eq!(rc, 0, "{conv:?}");
    w.set_clock(T0 + 90);
    assert_eq!(one(&w, ssh(USER_B, KEY_A, &[])).0, 0, "no window");
    set_password(USER_B, "second-password-2");
    w.set_clock(T0 + 150);
    assert_asked(
        &w,
        ssh(USER_B, KEY_A, &[]),
        "session window served after a password change",
    );
    let list = w.ctl(&["--json", "trust", "list", USER_B], "");
    let v: Value = serde_json::from_slice(&list.stdout).expect("json");
    assert_eq!(v, serde_json::json!([]), "the window was not revoked");
    println!("proved: changing the password (chpasswd) ends a session window at once");
}

#[test]
#[cfg_attr(not(as_root), ignore = "needs root: runs the daemon as a test user")]
fn without_a_password_fingerprint_no_device_is_remembered() {
    let _passwords = stable_passwords();
    // Issue 7 item 4: a daemon that cannot read the shadow entry (here: not root) had
    // no fingerprint, and None == None counted as "password unchanged" for ever.
    ensure_test_users();
    let mut w = World::bus_with_policy(&format!(
        r#"<policy user="{USER_A}"><allow own="org.twofold.Twofold1"/></policy>"#
    ));
    w.use_test_clock(T0);
    w.start_daemon_unprivileged("", USER_A);
    w.write_service("sshd", &w.module_line(&format!("daemon_user={USER_A}")));
    let secret = enrol_at(&w, "root", T0);
    w.set_clock(T0 + 30);
    let (rc, conv) = one(
        &w,
        ssh("root", KEY_A, &[&code_at_time(&secret, T0 + 30), "y"]),
    );
    assert_eq!(rc, 0, "{conv:?}");
    assert!(
        !conv.iter().any(|c| c.contains("Trust this device")),
        "offered to remember without a password fingerprint: {conv:?}"
    );
    // Issue 15 item 5c: a session window is still kept without fingerprints (it lasts
    // hours, and nothing could see a password change anyway).
    w.set_clock(T0 + 90);
    let (rc, conv) = one(&w, ssh("root", KEY_A, &[]));
    assert!(rc == 0 && conv.is_empty(), "no session window: {conv:?}");
    assert!(
        w.daemon_log().contains("shadow"),
        "no word at start-up: {}",
        w.daemon_log()
    );
    println!(
        "proved: without a readable shadow entry the daemon never offers to remember a device"
    );
}

#[test]
#[cfg_attr(not(as_root), ignore = "needs root: starts kernel login sessions")]
fn sudo_style_session_window_skips_the_prompt_only_in_the_same_login_session() {
    require_root("it starts kernel login sessions");
    let w = World::start_at("", T0);
    w.write_service("sudo", &w.module_line(""));
    let secret = enrol_at(&w, me(), T0);
    let first = new_login_session();
    w.set_clock(T0 + 30);
    let r = w.pam(
        "sudo",
        me(),
        &format!("{}\n", code_at_time(&secret, T0 + 30)),
    );
    assert!(r.passed() && !r.has("Trust this device"), "{r:?}");
    let again = w.pam("sudo", me(), "");
    assert!(
        again.passed() && !again.has("Verification code"),
        "same session was asked: {again:?}"
    );
    let second = new_login_session();
    assert_ne!(first, second);
    let other = w.pam("sudo", me(), "");
    assert!(
        !other.passed() && other.has("Verification code"),
        "another session passed: {other:?}"
    );
    println!(
        "proved: sudo in login session {first} passes without a code after one; session {second} is asked"
    );
}

#[test]
#[cfg_attr(not(as_root), ignore = "needs root: starts kernel login sessions")]
fn a_screen_lockers_window_does_not_serve_sudo_in_the_same_session() {
    // Issue 7 item 3: trust lookups ignored the service.
    require_root("it starts kernel login sessions");
    let w = World::start_at("", T0);
    for service in ["xscreensaver", "sudo", "pkexec"] {
        w.write_service(service, &w.module_line(""));
    }
    let secret = enrol_at(&w, "root", T0);
    let session = new_login_session();
    w.set_clock(T0 + 30);
    let code = code_at_time(&secret, T0 + 30);
    assert!(w.pam("xscreensaver", "root", &format!("{code}\n")).passed());
    let again = w.pam("xscreensaver", "root", "");
    assert!(again.passed(), "the locker's own window: {again:?}");
    for service in ["sudo", "pkexec"] {
        let r = w.pam(service, "root", "");
        assert!(
            !r.passed() && r.has("Verification code"),
            "the screen locker's window served {service}: {r:?}"
        );
    }
    println!(
        "proved: in login session {session} an unlock window serves unlocking only, not sudo or pkexec"
    );
}

#[test]
#[cfg_attr(
    not(as_root),
    ignore = "needs root: starts kernel login sessions, runs as a test user"
)]
fn a_users_own_lookups_do_not_keep_its_window_alive() {
    let _passwords = stable_passwords();
    // Issue 7 item 10: a screen locker (or any process of the user) asking for itself
    // refreshed the idle limit, keeping the window open for ever.
    ensure_test_users();
    let w = World::start_at("", T0);
    w.write_service("xscreensaver", &w.module_line(""));
    let secret = enrol_at(&w, USER_A, T0);
    new_login_session();
    let unlock = |input: &str| w.pam_as(Some(USER_A), "xscreensaver", USER_A, input, &[]);
    w.set_clock(T0 + 30);
    let r = unlock(&format!("{}\n", code_at_time(&secret, T0 + 30)));
    assert!(r.passed(), "{r:?}");
    w.set_clock(T0 + 30 + 20 * 60);
    let r = unlock("");
    assert!(r.passed(), "within the idle limit: {r:?}");
    w.set_clock(T0 + 30 + 40 * 60);
    let r = unlock("");
    assert!(
        !r.passed() && r.has("Verification code"),
        "40 minutes after the code, kept alive by the user's own unlock: {r:?}"
    );
    println!("proved: {USER_A}'s own unlock calls do not refresh its window's idle limit");
}

#[test]
#[cfg_attr(
    not(as_root),
    ignore = "needs root: logs in as a second account (only root may act for another user)"
)]
fn grace_reminder_before_the_deadline_and_refusal_after() {
    // Deadline 2027-01-25 00:00 UTC: T0 is 9 days 16 hours before it.
    let w = World::start_at("[enrolment]\ndeadline = \"2027-01-25\"", T0);
    w.write_service("login", &w.module_line(""));
    w.write_service("sshd", &w.module_line(""));
    // The reminder comes with the offer to set up an app now; Enter declines it.
    let r = w.pam("login", "nobody", "\n");
    assert!(
        r.passed() && r.has("mandatory on 2027-01-25") && r.has("10 day(s) left"),
        "{r:?}"
    );
    // sshd shows messages only in front of a prompt: there the reminder asks for Enter.
    let r = w.pam("sshd", "nobody", "\n");
    assert!(r.passed() && r.has("Press Enter to continue"), "{r:?}");
    w.set_clock(1_800_835_200);
    let r = w.pam("login", "nobody", "");
    assert!(
        !r.passed() && r.has("mandatory since 2027-01-25") && r.has("twofoldctl enrol nobody"),
        "{r:?}"
    );
    // An administrator defers nobody's enrolment: the reminder is back.
    let out = w.ctl(
        &[
            "grace",
            "set",
            "nobody",
            "--until",
            "2027-02-01",
            "--reason",
            "phone on order",
        ],
        "",
    );
    assert!(out.status.success(), "{}", combined(&out));
    let r = w.pam("login", "nobody", "\n");
    assert!(r.passed() && r.has("mandatory on 2027-02-01"), "{r:?}");
    let out = w.ctl(&["grace", "set", "nobody", "--until", "2026-01-01"], "");
    assert!(
        !out.status.success() && combined(&out).contains("in the past"),
        "{}",
        combined(&out)
    );
    let out = w.ctl(&["grace", "set", "nobody", "--until", "2028-01-01"], "");
    assert!(
        !out.status.success() && combined(&out).contains("max_deferral_days"),
        "{}",
        combined(&out)
    );
    let list = combined(&w.ctl(&["grace", "list"], ""));
    assert!(
        list.contains("nobody: until 2027-02-01") && list.contains("phone on order"),
        "{list}"
    );
    println!(
        "proved: reminder with days left before the deadline (Enter prompt under sshd), refusal after, deferral restores grace"
    );
}

#[test]
#[cfg_attr(
    not(as_root),
    ignore = "needs root: logs in as a second account (only root may act for another user)"
)]
fn exempt_users_are_out_of_scope() {
    let w = World::start("[scope]\nexempt_users = [\"nobody\"]");
    let line = w.module_line("");
    w.write_service("twofold", &format!("{line}auth required pam_permit.so\n"));
    let r = w.pam("twofold", "nobody", "");
    assert!(r.passed() && !r.has("Verification code"), "{r:?}");
    w.write_service("twofold", &format!("{line}auth required pam_deny.so\n"));
    assert!(
        !w.pam("twofold", "nobody", "").passed(),
        "PAM_IGNORE must leave the decision to the stack"
    );
    let r = w.pam("twofold", me(), "");
    assert!(r.has("Verification code"), "{r:?}");
    println!("proved: an exempt user gets PAM_IGNORE; others are asked");
}
