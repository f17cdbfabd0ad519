//! Runs PAM transactions inside this process (under pam_wrapper) with the real libpam,
//! the way sshd, sudo or a screen locker does, and prints one JSON report: each
//! transaction's code and conversation, and what pam_twofold.so left behind (threads,
//! descriptors, signal handlers). Optional `child` transactions run in a forked child
//! (a bus connection must never be reused across fork).
//!
//! Usage: pam_inprocess '{"transactions": [{"service": ..., "user": ..., "answers": [...],
//!        "rhost": ..., "tty": ..., "env": ["SSH_AUTH_INFO_0=publickey ..."]}], "child": [...]}'

use serde::Deserialize;
use twofold_pamtest::{Outcome, Transaction, process_state, run};

#[derive(Deserialize)]
struct Spec {
    transactions: Vec<Transaction>,
    #[serde(default)]
    child: Vec<Transaction>,
}

fn main() {
    let spec: Spec = match std::env::args().nth(1).map(|a| serde_json::from_str(&a)) {
        Some(Ok(s)) => s,
        _ => {
            eprintln!("usage: pam_inprocess SPEC_JSON");
            std::process::exit(2);
        }
    };
    let before = process_state();
    let results: Vec<Outcome> = spec.transactions.iter().map(run).collect();
    let after = process_state();
    let child = if spec.child.is_empty() {
        None
    } else {
        Some(fork_and_run(&spec.child))
    };
    println!(
        "{}",
        serde_json::json!({
            "results": results,
            "threads_before": before.threads,
            "threads_after": after.threads,
            "fds_before": before.fds,
            "fds_after": after.fds,
            "handlers_unchanged": before.handlers == after.handlers,
            "child_rcs": child,
        })
    );
}

/// Runs `transactions` in a forked child; returns their codes (the child's exit status
/// carries them, one bit per failure, which is enough for a pass/fail check).
fn fork_and_run(transactions: &[Transaction]) -> Vec<i32> {
    use nix::sys::wait::{WaitStatus, waitpid};
    use nix::unistd::{ForkResult, fork};
    // SAFETY: the process is single-threaded here (the report checks the thread count).
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            let failed = transactions.iter().map(run).filter(|o| o.rc != 0).count();
            std::process::exit(failed.min(100) as i32);
        }
        Ok(ForkResult::Parent { child }) => match waitpid(child, None) {
            Ok(WaitStatus::Exited(_, failed)) => vec![failed],
            _ => vec![-1],
        },
        Err(_) => vec![-2],
    }
}
