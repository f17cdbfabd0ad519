//! The module's pam.d options (`socket=`, `timeout=`, `failmode=`, ...), as libpam hands
//! them over: words of the service file line.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = pam_twofold::options::parse(text.split_ascii_whitespace());
});
