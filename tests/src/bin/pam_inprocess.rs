//! Runs PAM transactions inside this process (under pam_wrapper) and reports, as one JSON
//! line, what pam_twofold.so left behind: threads, descriptors, signal handlers; then
//! forks and authenticates again in the child (a connection must never be reused
//! across fork). Usage: pam_inprocess SERVICE USER CODE [CHILD_USER CHILD_CODE]

use twofold_integration::pam_ffi::{authenticate, process_state};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() != 3 && args.len() != 5 {
        eprintln!("usage: pam_inprocess SERVICE USER CODE [CHILD_USER CHILD_CODE]");
        std::process::exit(2);
    }
    let before = process_state();
    let rc = authenticate(&args[0], &args[1], &args[2]);
    let after = process_state();
    let child_rc = if args.len() == 5 {
        fork_and_authenticate(&args[0], &args[3], &args[4])
    } else {
        -1
    };
    println!(
        "{}",
        serde_json::json!({
            "rc": rc,
            "threads_before": before.threads,
            "threads_after": after.threads,
            "fds_before": before.fds,
            "fds_after": after.fds,
            "handlers_unchanged": before.handlers == after.handlers,
            "child_rc": child_rc,
        })
    );
}

fn fork_and_authenticate(service: &str, user: &str, code: &str) -> i32 {
    use nix::sys::wait::{WaitStatus, waitpid};
    use nix::unistd::{ForkResult, fork};
    // SAFETY: this process is single-threaded here (checked by the caller's report).
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            let rc = authenticate(service, user, code);
            std::process::exit(rc);
        }
        Ok(ForkResult::Parent { child }) => match waitpid(child, None) {
            Ok(WaitStatus::Exited(_, rc)) => rc,
            _ => -2,
        },
        Err(_) => -3,
    }
}
