//! Authorisation by the caller's uid as the bus reports it, with real unprivileged users.
//! Needs root (to create the users and switch to them): as another user these tests are
//! reported as ignored (tests/build.rs).

use twofold_integration::*;

#[test]
#[cfg_attr(not(as_root), ignore = "needs root: runs clients as other users")]
fn a_user_may_verify_themself_but_not_another_user() {
    ensure_test_users();
    let w = World::start("");
    w.write_service("twofold", &w.module_line(""));
    let secret = w.enrol(USER_A);
    w.enrol(USER_B);
    let code = fresh_code(&secret);
    // A screen locker runs PAM as the user, for the user.
    let own = w.pam_as(Some(USER_A), "twofold", USER_A, &format!("{code}\n"), &[]);
    assert!(own.passed(), "{own:?}");
    let other = w.pam_as(Some(USER_A), "twofold", USER_B, "123456\n", &[]);
    assert!(!other.passed(), "{other:?}");
    assert!(
        other.has("Permission denied"),
        "PAM_PERM_DENIED expected: {other:?}"
    );
    println!(
        "proved: PAM as {USER_A} passes for {USER_A} and is refused by the daemon for {USER_B}"
    );
}

#[test]
#[cfg_attr(not(as_root), ignore = "needs root: runs clients as other users")]
fn admin_methods_refuse_ordinary_users() {
    ensure_test_users();
    let w = World::start("");
    w.enrol(USER_B);
    for args in [
        vec!["list"],
        vec!["reset", USER_B],
        vec!["unlock", USER_B],
        vec!["enrol", USER_B, "--no-verify"],
        vec!["status", USER_B],
    ] {
        let out = w.ctl_as(Some(USER_A), &args, "");
        assert_eq!(out.status.code(), Some(4), "{args:?}: {}", combined(&out));
        assert!(
            combined(&out).contains("permission denied"),
            "{args:?}: {}",
            combined(&out)
        );
    }
    // Their own status is theirs to see.
    let own = w.ctl_as(Some(USER_A), &["status"], "");
    assert!(
        own.status.success() && combined(&own).contains("not enrolled"),
        "{}",
        combined(&own)
    );
    println!(
        "proved: {USER_A} cannot list, reset, unlock, enrol or inspect {USER_B}; may see own status"
    );
}

#[test]
#[cfg_attr(not(as_root), ignore = "needs root: runs clients as other users")]
fn an_admin_group_member_may_administer() {
    ensure_test_users();
    let group = "tf-admins";
    let _ = std::process::Command::new("groupadd")
        .arg("-f")
        .arg(group)
        .status();
    let _ = std::process::Command::new("gpasswd")
        .args(["-a", USER_A, group])
        .output();
    // Lines right after the test config still belong to its [daemon] table.
    let w = World::start(&format!("admin_group = \"{group}\""));
    w.enrol(USER_B);
    let out = w.ctl_as(Some(USER_A), &["list"], "");
    assert!(
        out.status.success() && combined(&out).contains(USER_B),
        "{}",
        combined(&out)
    );
    println!("proved: a member of admin_group may call admin methods");
}

#[test]
#[cfg_attr(not(as_root), ignore = "needs root: runs clients as other users")]
fn a_name_owner_that_is_not_root_is_not_trusted() {
    ensure_test_users();
    // A bus whose policy (wrongly) lets an ordinary user own the daemon's name.
    let mut w = World::bus_with_policy(&format!(
        r#"<policy user="{USER_A}"><allow own="org.twofold.Twofold1"/></policy>"#
    ));
    // The "daemon" runs as an ordinary user: whatever it says, the module must refuse.
    w.start_daemon_unprivileged("", USER_A);
    w.write_service("twofold", &w.module_line("failmode=safe"));
    let r = w.pam("twofold", "root", "123456\n");
    assert!(!r.passed() && !r.has("Verification code"), "{r:?}");
    // Naming that account as the daemon's makes it trusted again.
    w.write_service("twofold", &w.module_line(&format!("daemon_user={USER_A}")));
    let r = w.pam("twofold", "root", "123456\n");
    assert!(r.has("Verification code"), "{r:?}");
    println!("proved: a bus name owned by uid != 0 is refused even with failmode=safe");
}

#[test]
#[cfg_attr(not(as_root), ignore = "needs root: runs clients as other users")]
fn an_impostor_claiming_the_service_is_unknown_does_not_trigger_failmode_safe() {
    ensure_test_users();
    let w = World::bus_with_policy(&format!(
        r#"<policy user="{USER_A}"><allow own="org.twofold.Twofold1"/></policy>"#
    ));
    use std::os::unix::process::CommandExt;
    let alice = nix::unistd::User::from_name(USER_A)
        .ok()
        .flatten()
        .expect("test user");
    let mut impostor = std::process::Command::new(target_dir().join("fake_daemon"))
        .uid(alice.uid.as_raw())
        .gid(alice.gid.as_raw())
        .arg(&w.bus_address)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("fake_daemon");
    let mut line = String::new();
    let stderr = impostor.stderr.take().expect("stderr");
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stderr), &mut line).expect("read");
    assert_eq!(line.trim(), "serving");
    w.write_service("twofold", &w.bus_module_line("failmode=safe timeout=3"));
    let r = w.pam("twofold", "root", "123456\n");
    let _ = impostor.kill();
    let _ = impostor.wait();
    assert!(
        !r.passed(),
        "a fake ServiceUnknown from the name owner let the login through: {r:?}"
    );
    println!(
        "proved: an impostor's fake 'ServiceUnknown' error fails closed even under failmode=safe"
    );
}

#[test]
#[cfg_attr(not(as_root), ignore = "needs root: runs clients as other users")]
fn users_list_and_revoke_only_their_own_trust() {
    ensure_test_users();
    let w = World::start("");
    w.enrol(USER_A);
    let own = w.ctl_as(Some(USER_A), &["trust", "list"], "");
    assert!(
        own.status.success() && combined(&own).contains("No trusted"),
        "{}",
        combined(&own)
    );
    let own = w.ctl_as(Some(USER_A), &["trust", "revoke", USER_A, "--all"], "");
    assert!(own.status.success(), "{}", combined(&own));
    for args in [
        vec!["trust", "list", USER_B],
        vec!["trust", "revoke", USER_B, "--all"],
        vec!["trust", "list", "--all"],
        vec!["grace", "list"],
    ] {
        let out = w.ctl_as(Some(USER_A), &args, "");
        assert_eq!(out.status.code(), Some(4), "{args:?}: {}", combined(&out));
    }
    println!(
        "proved: {USER_A} lists and revokes own trust; others' trust and grace are for administrators"
    );
}

#[test]
#[cfg_attr(not(as_root), ignore = "needs root: runs clients as other users")]
fn self_enrolment_neither_clears_a_lockout_nor_replaces_an_admins_secret() {
    // Issue 7 item 5.
    ensure_test_users();
    let w = World::start("[lockout]\nmax_failures = 3");
    w.write_service("twofold", &w.module_line(""));
    let self_enrol =
        |user: &str| w.ctl_as(Some(user), &["--json", "enrol", user, "--no-verify"], "");
    // An administrator's pending secret: the user may not swap it for one of their own.
    let admins = w.enrol(USER_A);
    let out = self_enrol(USER_A);
    assert!(!out.status.success(), "{}", combined(&out));
    let r = w.pam("twofold", USER_A, &format!("{}\n", fresh_code(&admins)));
    assert!(
        r.passed(),
        "the administrator's secret no longer works: {r:?}"
    );
    // A user who locked their account does not unlock it by enrolling again.
    assert!(self_enrol(USER_B).status.success());
    let r = w.pam("twofold", USER_B, "000000\n000001\n000002\n");
    assert!(r.has("locked"), "{r:?}");
    let out = self_enrol(USER_B);
    assert!(out.status.success(), "{}", combined(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let secret = v["secret"].as_str().expect("secret");
    let r = w.pam("twofold", USER_B, &format!("{}\n", fresh_code(secret)));
    assert!(
        !r.passed() && r.has("locked"),
        "re-enrolment cleared the lock: {r:?}"
    );
    println!(
        "proved: self-enrolment keeps a lockout and cannot replace an administrator's pending secret"
    );
}
