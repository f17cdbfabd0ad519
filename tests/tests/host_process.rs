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
