//! `Auth.Answer`'s body (conversation id, answer) decoded from arbitrary bytes, and the
//! answer read as a recovery code.
#![no_main]
use libfuzzer_sys::fuzz_target;
use zbus::wire::LE;
use zbus::wire::serialized::{Context, Data};

fuzz_target!(|data: &[u8]| {
    let body = Data::new(data, Context::new(LE, 0));
    if let Ok(((_id, answer), _)) = body.deserialize::<(String, String)>() {
        let _ = twofold_daemon::recovery::parse(&answer);
    }
});
