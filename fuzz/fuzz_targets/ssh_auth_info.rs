//! sshd's `SSH_AUTH_INFO_0`: see `twofold_fuzz_bodies::ssh_auth_info`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| twofold_fuzz_bodies::ssh_auth_info(data));
