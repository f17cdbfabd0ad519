//! What pam_twofold.so leaves in the process that loaded it (sshd, sudo): nothing.

use twofold_integration::*;
use twofold_pamtest::Transaction;

#[test]
#[cfg_attr(
    not(as_root),
    ignore = "needs root: logs in as a second account (only root may act for another user)"
)]
fn no_threads_descriptors_or_signal_handlers_are_left_and_fork_is_safe() {
    let w = World::start("");
    w.write_service("twofold", &w.module_line(""));
    let root_secret = w.enrol(me());
    let nobody_secret = w.enrol("nobody");
    let (code, child_code) = (fresh_code(&root_secret), fresh_code(&nobody_secret));
    let tx = |user: &str, code: &str| Transaction {
        service: "twofold".into(),
        user: user.into(),
        answers: vec![code.into()],
        ..Default::default()
    };
    let report = w.pam_inprocess(&[tx(me(), &code)], &[tx("nobody", &child_code)]);
    assert_eq!(report["results"][0]["rc"], 0, "{report}");
    assert_eq!(
        report["threads_before"], report["threads_after"],
        "{report}"
    );
    assert_eq!(report["fds_before"], report["fds_after"], "{report}");
    assert_eq!(report["handlers_unchanged"], true, "{report}");
    assert_eq!(
        report["child_rcs"][0], 0,
        "login in a forked child failed: {report}"
    );
    println!(
        "proved: after pam_end the host has {} thread(s) as before, the same descriptors and signal handlers; a forked child authenticates on its own connection",
        report["threads_after"]
    );
}

#[test]
fn careless_conversations_fail_the_login_and_harm_neither_host_nor_daemon() {
    use twofold_pamtest::Quirk;
    let w = World::start("[lockout]\nmax_failures = 50\nsource_failures = 50");
    w.write_service("twofold", &w.module_line(""));
    let secret = w.enrol(me());
    wait_for_step_margin(15);
    let right = fresh_code(&secret);
    let digits = "7".repeat(10 * 1024);
    let cases: [(&str, Quirk, &str); 7] = [
        (
            "no conversation function",
            Quirk::NoFunction,
            right.as_str(),
        ),
        ("no replies (NULL)", Quirk::NullReplies, right.as_str()),
        ("a NULL answer", Quirk::NullAnswer, right.as_str()),
        (
            "the right code behind bytes that are not UTF-8",
            Quirk::NotUtf8,
            right.as_str(),
        ),
        ("an empty answer", Quirk::None, ""),
        ("10 KB of digits", Quirk::None, digits.as_str()),
        ("letters", Quirk::None, "abcdef"),
    ];
    for (what, quirk, answer) in cases {
        let t = Transaction {
            service: "twofold".into(),
            user: me().into(),
            answers: vec![answer.into(); 3],
            quirk,
            ..Default::default()
        };
        // A host that crashed would leave no report: pam_inprocess_as panics then.
        let (rc, conv) = first_outcome(&w.pam_inprocess(&[t], &[]));
        assert_ne!(rc, 0, "{what}: the login passed: {conv:?}");
        let pid = w.daemon_pid().expect("pid");
        assert!(!process_stopped(pid), "{what}: twofoldd died");
        println!("proved: {what}: PAM code {rc}, the host process reported, twofoldd up");
    }
    let t = Transaction {
        service: "twofold".into(),
        user: me().into(),
        answers: vec![right.clone()],
        ..Default::default()
    };
    let (rc, conv) = first_outcome(&w.pam_inprocess(&[t], &[]));
    assert_eq!(rc, 0, "the right code afterwards: {conv:?}");
    println!("proved: after those, the right code (never accepted by any of them) passes");
}
