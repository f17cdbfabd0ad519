//! `Auth.Begin`'s body as any client may send it: arbitrary bytes decoded as the method's
//! signature (a `LoginContext`), then the daemon's validation, and for a valid context
//! what the engine reads from it first (SSH or not, the key's fingerprint, the address).
#![no_main]
use libfuzzer_sys::fuzz_target;
use twofold_protocol::LoginContext;
use zbus::wire::LE;
use zbus::wire::serialized::{Context, Data};

fuzz_target!(|data: &[u8]| {
    let body = Data::new(data, Context::new(LE, 0));
    if let Ok((ctx, _)) = body.deserialize::<LoginContext>()
        && twofold_daemon::engine::validate_context(&ctx).is_ok()
    {
        let _ = twofold_daemon::identity::is_ssh(&ctx);
        let _ = twofold_daemon::identity::ssh_key_fingerprint(&ctx.ssh_auth_info);
        let _ = ctx.rhost.parse::<std::net::IpAddr>();
    }
});
