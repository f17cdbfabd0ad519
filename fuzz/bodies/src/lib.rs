//! What each fuzz target feeds to twofold's real code, as a plain function of the input
//! bytes. The libFuzzer binaries (fuzz/fuzz_targets/, `cargo +nightly fuzz`, AddressSanitizer)
//! are one line each around these, and the main workspace's smoke test
//! ([`fuzz_smoke`](crate)) runs every one over its seeds (fuzz/seeds/TARGET/) and 5,000
//! mutations of them on the stable toolchain. A panic, in any of them, is a finding.

use zbus::wire::LE;
use zbus::wire::serialized::{Context, Data};

pub mod manage_body;
pub use manage_body::manage_body;

#[cfg(test)]
mod fuzz_smoke;

/// A target's body: any bytes in, a panic on a finding.
pub type Body = fn(&[u8]);

/// Every target: its name (its binary in fuzz/Cargo.toml, its seeds under fuzz/seeds/)
/// and its body.
pub const TARGETS: &[(&str, Body)] = &[
    ("pam_options", pam_options),
    ("config", config),
    ("email_template", email_template),
    ("ssh_auth_info", ssh_auth_info),
    ("begin_body", begin_body),
    ("answer_body", answer_body),
    ("manage_body", manage_body),
];

/// The module's pam.d options (`socket=`, `timeout=`, `failmode=`, ...), as libpam hands
/// them over: words of the service file line.
pub fn pam_options(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = pam_twofold::options::parse(text.split_ascii_whitespace());
}

/// `twofoldd --check-config`: the TOML file parsed and every value and relation checked.
pub fn config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = twofold_config::Config::parse(text, "fuzz.toml");
    }
}

/// The e-mail code template (`email-code.txt`): parsed, and rendered with every
/// placeholder filled.
pub fn email_template(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(template) = twofold_config::text_template(text)
    {
        let values: Vec<(&str, &str)> = twofold_config::PLACEHOLDERS
            .iter()
            .map(|p| (*p, "{code}\u{0}x"))
            .collect();
        let _ = template.render(&values);
    }
}

/// sshd's `SSH_AUTH_INFO_0` (the methods and keys that passed) and the key fingerprint
/// twofoldd derives from it.
pub fn ssh_auth_info(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = twofold_daemon::identity::ssh_key_fingerprint(&text);
}

/// `Auth.Begin`'s body as any client may send it: arbitrary bytes decoded as the method's
/// signature (a `LoginContext`), then the daemon's validation, and for a valid context
/// what the engine reads from it first (SSH or not, the key's fingerprint, the address).
pub fn begin_body(data: &[u8]) {
    let body = Data::new(data, Context::new(LE, 0));
    if let Ok((ctx, _)) = body.deserialize::<twofold_protocol::LoginContext>()
        && twofold_daemon::engine::validate_context(&ctx).is_ok()
    {
        let _ = twofold_daemon::identity::is_ssh(&ctx);
        let _ = twofold_daemon::identity::ssh_key_fingerprint(&ctx.ssh_auth_info);
        let _ = ctx.rhost.parse::<std::net::IpAddr>();
    }
}

/// `Auth.Answer`'s body (conversation id, answer) decoded from arbitrary bytes, and the
/// answer read as a recovery code.
pub fn answer_body(data: &[u8]) {
    let body = Data::new(data, Context::new(LE, 0));
    if let Ok(((_id, answer), _)) = body.deserialize::<(String, String)>() {
        let _ = twofold_daemon::recovery::parse(&answer);
    }
}
