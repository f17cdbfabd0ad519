//! sshd's `SSH_AUTH_INFO_0` (the methods and keys that passed) and the key fingerprint
//! twofoldd derives from it.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = twofold_daemon::identity::ssh_key_fingerprint(&text);
});
