//! Attacks by a local user on a running twofoldd, through the real module and raw bus
//! traffic (issue 15). Each test failed before its fix.

use std::process::{Command, Stdio};
use twofold_integration::*;

/// Runs `bus_flood` against the world's bus for `seconds`, as an unprivileged user
/// (tf-bob as root; otherwise the test's own account).
fn flood(w: &World, seconds: u32) -> std::process::Child {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(target_dir().join("bus_flood"));
    cmd.arg(w.path("bus")).arg(seconds.to_string());
    if is_root() {
        ensure_test_users();
        let bob = nix::unistd::User::from_name(USER_B)
            .ok()
            .flatten()
            .expect("test user");
        cmd.uid(bob.uid.as_raw()).gid(bob.gid.as_raw());
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bus_flood");
    let mut line = String::new();
    let stderr = child.stderr.take().expect("stderr");
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stderr), &mut line).expect("read");
    assert_eq!(line.trim(), "flooding");
    child
}

#[test]
fn a_connection_flood_never_lets_failmode_safe_logins_in_without_the_code() {
    let w = World::start("");
    let me = me();
    w.enrol(&me);
    w.write_service("twofold", &w.module_line("failmode=safe timeout=3"));
    let flooder = flood(&w, 25);
    let mut passed = 0;
    let mut runs = 0;
    let start = std::time::Instant::now();
    while start.elapsed() < std::time::Duration::from_secs(20) {
        // A wrong code: only a fail-open could let this in.
        let r = w.pam("twofold", &me, "000000\n000000\n000000\n");
        runs += 1;
        if r.passed() {
            passed += 1;
            eprintln!("passed without the code: {r:?}");
        }
    }
    let out = flooder.wait_with_output().expect("flood");
    let opened = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(
        passed, 0,
        "{passed} of {runs} failmode=safe logins passed during a flood of {opened} connections"
    );
    assert!(runs >= 3, "only {runs} logins ran");
    println!(
        "proved: {runs} failmode=safe logins with a wrong code during a flood of {opened} bare connections: none passed"
    );
}
