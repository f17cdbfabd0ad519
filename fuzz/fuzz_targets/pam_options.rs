//! The module's pam.d options (`socket=`, `timeout=`, ...): see `twofold_fuzz_bodies::pam_options`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| twofold_fuzz_bodies::pam_options(data));
