//! Attacks by a local user on a running twofoldd, through the real module and raw bus
//! traffic (issue 15). Each test failed before its fix.

use std::process::{Command, Stdio};
use twofold_integration::*;
use twofold_pamtest::{Pause, Transaction};

/// One of the test binaries, to run as an unprivileged user: tf-bob as root, otherwise
/// the test's own account.
fn unprivileged(binary: &str) -> Command {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(target_dir().join(binary));
    if is_root() {
        ensure_test_users();
        let bob = nix::unistd::User::from_name(USER_B)
            .ok()
            .flatten()
            .expect("test user");
        cmd.uid(bob.uid.as_raw()).gid(bob.gid.as_raw());
    }
    cmd
}

/// Runs `bus_flood` against the world's bus for `seconds`, as an unprivileged user
/// (tf-bob as root; otherwise the test's own account).
fn flood(w: &World, seconds: u32) -> std::process::Child {
    let mut cmd = unprivileged("bus_flood");
    cmd.arg(w.path("bus")).arg(seconds.to_string());
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
    w.enrol(me);
    w.write_service("twofold", &w.bus_module_line("failmode=safe timeout=3"));
    let flooder = flood(&w, 25);
    let mut passed = 0;
    let mut runs = 0;
    let start = std::time::Instant::now();
    while start.elapsed() < std::time::Duration::from_secs(20) {
        // A wrong code: only a fail-open could let this in.
        let r = w.pam("twofold", me, "000000\n000000\n000000\n");
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

/// twofoldd's resident memory in MiB.
fn rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| kb / 1024)
        .expect("VmRSS")
}

#[test]
fn oversized_calls_from_a_user_leave_the_daemon_small_and_logins_working() {
    // The daemon's clock is a file: each round's login gets a code of its own step.
    const T0: i64 = 1_800_000_000;
    let w = World::start_at("", T0);
    let me = me();
    let secret = w.enrol(me);
    w.write_service("twofold", &w.module_line("timeout=10"));
    let pid = w.daemon_pid().expect("daemon");
    let before = rss_mib(pid);
    let mut after = Vec::new();
    for round in 0..3 {
        let mut cmd = unprivileged("big_calls");
        cmd.args([&w.bus_address, "30", "12"]);
        let flood = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("big_calls");
        // A login while the calls are in flight.
        std::thread::sleep(std::time::Duration::from_millis(300));
        let now = T0 + 30 * (round as i64 + 1);
        w.set_clock(now);
        let code = code_at_time(&secret, now);
        let login = w.pam("twofold", me, &format!("{code}\n"));
        let out = flood.wait_with_output().expect("big_calls");
        assert!(
            login.passed(),
            "round {round}: a login failed during the flood: {login:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
        after.push(rss_mib(pid));
        eprintln!(
            "round {round}: {} RSS {} MiB",
            String::from_utf8_lossy(&out.stdout).trim(),
            after[round]
        );
    }
    assert!(
        after.iter().all(|&m| m < 64),
        "twofoldd's RSS went from {before} MiB to {after:?} MiB"
    );
    println!(
        "proved: 3 rounds of 12 calls of 30 MiB from an unprivileged user: twofoldd RSS {before} -> {after:?} MiB, logins passed"
    );
}

#[test]
#[cfg_attr(
    not(as_root),
    ignore = "needs root: makes refused calls as another user"
)]
fn refused_calls_of_one_user_are_recorded_up_to_a_bound_and_the_rest_counted() {
    ensure_test_users();
    let w = World::bus_only();
    let log = std::os::unix::net::UnixDatagram::bind(w.path("syslog")).expect("bind syslog");
    log.set_read_timeout(Some(std::time::Duration::from_secs(2)))
        .expect("timeout");
    // Read while the calls run: a full socket would make the daemon's sends wait.
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        let mut buf = [0u8; 2048];
        while let Ok(n) = log.recv(&mut buf) {
            lines.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        lines
    });
    let mut w = w;
    w.start_daemon("");
    let bob = nix::unistd::User::from_name(USER_B)
        .ok()
        .flatten()
        .expect("test user")
        .uid
        .as_raw();
    for _ in 0..60 {
        let out = w.ctl_as(Some(USER_B), &["status", "root"], "");
        assert_eq!(out.status.code(), Some(4), "{}", combined(&out));
    }
    let lines = reader.join().expect("reader");
    let mine = |outcome: &str| {
        lines
            .iter()
            .filter(|l| {
                l.contains(&format!("outcome={outcome} "))
                    && l.contains(&format!("caller_uid={bob}"))
            })
            .count()
    };
    assert_eq!(mine("denied"), 20, "{lines:#?}");
    assert_eq!(mine("throttled"), 1, "{lines:#?}");
    println!(
        "proved: 60 refused calls of uid {bob}: 20 records and one saying the rest are counted"
    );
}

const T0: i64 = 1_800_000_000;
const KEY: &str =
    "publickey ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPBt/BNd5lA1dnF//n6CHzH8KvAg/yKN0naK8HbRXq9f";
const CHANGED: &str = "error: Your second factor or its trust changed while this login waited";

/// An sshd-style login of the test account with KEY from 192.0.2.7, held open at prompt
/// `at_prompt` until the test lets it go.
fn held_ssh(answers: &[&str], at_prompt: usize, dir: &std::path::Path) -> Transaction {
    Transaction {
        service: "sshd".into(),
        user: me().into(),
        answers: answers.iter().map(|a| a.to_string()).collect(),
        rhost: Some("192.0.2.7".into()),
        tty: Some("ssh".into()),
        env: vec![format!("SSH_AUTH_INFO_0={KEY}")],
        pause: Some(Pause {
            at_prompt,
            dir: dir.display().to_string(),
        }),
        ..Default::default()
    }
}

/// Runs `t` and, while it waits at its pause, `meanwhile`; returns rc and conversation.
fn while_held(w: &World, t: Transaction, meanwhile: impl FnOnce()) -> (i64, Vec<String>) {
    let dir = std::path::PathBuf::from(&t.pause.as_ref().expect("a pause").dir);
    std::fs::create_dir_all(&dir).expect("pause dir");
    let _ = std::fs::remove_file(dir.join("go"));
    let _ = std::fs::remove_file(dir.join("open"));
    std::thread::scope(|s| {
        let login = s.spawn(|| w.pam_inprocess(&[t], &[]));
        let start = std::time::Instant::now();
        while !dir.join("open").exists() {
            assert!(start.elapsed().as_secs() < 20, "the prompt never opened");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        meanwhile();
        std::fs::write(dir.join("go"), "").expect("go");
        first_outcome(&login.join().expect("login thread"))
    })
}

#[test]
#[cfg_attr(
    not(as_root),
    ignore = "needs root: only root-run sshd may present an SSH key"
)]
fn a_revocation_while_trust_this_device_is_open_is_obeyed() {
    type Revocation = (&'static str, fn(&World));
    let revocations: [Revocation; 3] = [
        ("enrol --replace", |w| {
            let out = w.ctl(
                &["enrol", me(), "--replace", "--no-verify", "--qr", "none"],
                "",
            );
            assert!(out.status.success(), "{}", combined(&out));
        }),
        ("trust revoke --all", |w| {
            let out = w.ctl(&["trust", "revoke", me(), "--all"], "");
            assert!(out.status.success(), "{}", combined(&out));
        }),
        ("a lockout by parallel logins", |w| {
            let other = Transaction {
                service: "sshd".into(),
                user: me().into(),
                answers: vec!["000000".into(), "000001".into(), "000002".into()],
                rhost: Some("198.51.100.9".into()),
                tty: Some("ssh".into()),
                ..Default::default()
            };
            w.pam_inprocess(&[other], &[]);
            let status = combined(&w.ctl(&["status", me()], ""));
            assert!(status.contains("locked until"), "{status}");
        }),
    ];
    for (what, revoke) in revocations {
        let w = World::start_at("[lockout]\nmax_failures = 3", T0);
        w.write_service("sshd", &w.module_line(""));
        let secret = w.enrol_confirmed(me(), T0);
        w.set_clock(T0 + 30);
        let code = code_at_time(&secret, T0 + 30);
        let (rc, conv) = while_held(&w, held_ssh(&[&code, "y"], 1, &w.path("held")), || {
            revoke(&w)
        });
        assert!(
            conv.iter()
                .any(|c| c == "prompt: Trust this device for 90 days? [y/N] "),
            "{what}: {conv:?}"
        );
        assert!(
            rc != 0 && conv.iter().any(|c| c.starts_with(CHANGED)),
            "{what}: the login passed after the revocation: {conv:?}"
        );
        let list = combined(&w.ctl(&["--json", "trust", "list", me()], ""));
        assert!(
            !list.contains("\"device\""),
            "{what}: a device was remembered: {list}"
        );
        println!("proved: {what} while 'Trust this device?' was open: refused, nothing remembered");
    }
}

#[test]
fn a_deferral_cleared_while_the_grace_notice_is_shown_refuses_the_login() {
    let w = World::start_at("", T0);
    w.write_service("sshd", &w.module_line(""));
    let out = w.ctl(&["grace", "set", me(), "--until", "2027-02-01"], "");
    assert!(out.status.success(), "{}", combined(&out));
    let (rc, conv) = while_held(&w, held_ssh(&[""], 0, &w.path("held")), || {
        let out = w.ctl(&["grace", "clear", me()], "");
        assert!(out.status.success(), "{}", combined(&out));
    });
    // The notice (with the offer to set up an app) asked for Enter, the deferral went.
    assert!(
        conv.iter()
            .any(|c| c.starts_with("prompt:") && c.contains("Press Enter")),
        "{conv:?}"
    );
    assert!(
        rc != 0 && conv.iter().any(|c| c.starts_with(CHANGED)),
        "{conv:?}"
    );
    println!("proved: a deferral cleared while the grace notice was shown refuses the login");
}

/// What someone outside sees of 12 wrong codes for `user` (4 logins of 3 tries, then a
/// 5th): each login's PAM code and conversation, with the name blanked out.
fn what_an_attacker_sees(w: &World, user: &str) -> Vec<(i64, Vec<String>)> {
    (0..5)
        .map(|_| {
            let t = Transaction {
                service: "sshd".into(),
                user: user.into(),
                answers: vec!["000000".into(), "111111".into(), "222222".into()],
                rhost: Some("203.0.113.5".into()),
                tty: Some("ssh".into()),
                ..Default::default()
            };
            let (rc, conv) = first_outcome(&w.pam_inprocess(&[t], &[]));
            (rc, conv.iter().map(|c| c.replace(user, "USER")).collect())
        })
        .collect()
}

#[test]
#[cfg_attr(not(as_root), ignore = "needs root: logs in as other accounts")]
fn lockout_does_not_tell_enrolled_unenrolled_and_unknown_names_apart() {
    ensure_test_users();
    // The defaults (waits per source after 5), and a plain account lock after 5.
    for lockout in ["", "[lockout]\nmax_failures = 5\nsource_failures = 100"] {
        let w = World::start_at(lockout, T0);
        w.write_service("sshd", &w.module_line(""));
        w.enrol_confirmed(USER_A, T0);
        w.set_clock(T0 + 30);
        let enrolled = what_an_attacker_sees(&w, USER_A);
        let unenrolled = what_an_attacker_sees(&w, USER_B);
        let unknown = what_an_attacker_sees(&w, "tf-no-such-user");
        assert_eq!(
            enrolled, unenrolled,
            "enrolled and unenrolled differ ({lockout:?})"
        );
        assert_eq!(
            enrolled, unknown,
            "enrolled and unknown differ ({lockout:?})"
        );
        // By the fifth login the account is locked or the source waits, for all three.
        let held_off = enrolled.last().is_some_and(|(rc, conv)| {
            *rc != 0
                && conv
                    .iter()
                    .any(|c| c.starts_with("error: Too many wrong codes"))
        });
        assert!(
            held_off,
            "no lock or wait after 12 wrong codes: {enrolled:?}"
        );
        println!(
            "proved ({}): 12 wrong codes give the same prompts, messages and lock for enrolled, unenrolled and unknown names: {:?}",
            if lockout.is_empty() {
                "defaults"
            } else {
                "account lock after 5"
            },
            enrolled.last()
        );
    }
}
