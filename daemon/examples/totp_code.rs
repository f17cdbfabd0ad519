//! Prints the current TOTP code for a base32 secret with twofold's defaults (SHA1, 6
//! digits, 30 s): what an authenticator app would show. Used by `demo.sh --auto` and the
//! benchmark. Usage: `cargo run -q -p twofold-daemon --example totp_code -- SECRET [UNIX_TIME]`
// A tool outside the daemon: it reads the system's clocks itself.
#![allow(clippy::disallowed_methods)]

use twofold_daemon::otp::{Algorithm, OtpParams, code_at};

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(secret) = args.next() else {
        eprintln!("usage: totp_code SECRET [UNIX_TIME]");
        std::process::exit(2);
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let time = args.next().and_then(|t| t.parse().ok()).unwrap_or(now);
    let params = OtpParams {
        algorithm: Algorithm::SHA1,
        digits: 6,
        step: 30,
        window: 1,
    };
    match code_at(&params, &secret, time) {
        Ok(code) => println!("{code}"),
        Err(e) => {
            eprintln!("totp_code: {e}");
            std::process::exit(1);
        }
    }
}
