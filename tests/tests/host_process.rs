//! What pam_twofold.so leaves in the process that loaded it (sshd, sudo): nothing.

use std::process::Command;
use twofold_integration::*;

#[test]
fn no_threads_descriptors_or_signal_handlers_are_left_and_fork_is_safe() {
    let w = World::start("");
    w.write_service("twofold", &w.module_line(""));
    let root_secret = w.enrol("root");
    let nobody_secret = w.enrol("nobody");
    let (code, child_code) = (fresh_code(&root_secret), fresh_code(&nobody_secret));
    let out = Command::new(env!("CARGO_BIN_EXE_pam_inprocess"))
        .env("LD_PRELOAD", "libpam_wrapper.so")
        .env("PAM_WRAPPER", "1")
        .env("PAM_WRAPPER_SERVICE_DIR", w.path("pam.d"))
        .args(["twofold", "root", &code, "nobody", &child_code])
        .output()
        .expect("pam_inprocess");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("no report: {}", combined(&out)));
    assert_eq!(report["rc"], 0, "{report}");
    assert_eq!(
        report["threads_before"], report["threads_after"],
        "{report}"
    );
    assert_eq!(report["fds_before"], report["fds_after"], "{report}");
    assert_eq!(report["handlers_unchanged"], true, "{report}");
    assert_eq!(
        report["child_rc"], 0,
        "login in a forked child failed: {report}"
    );
    println!(
        "proved: after pam_end the host has {} thread(s) as before, the same descriptors and signal handlers; a forked child authenticates on its own connection",
        report["threads_after"]
    );
}
