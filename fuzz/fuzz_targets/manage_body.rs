//! Every Manage method's body and `Auth.Cancel`'s, to the real engine: see
//! `twofold_fuzz_bodies::manage_body`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| twofold_fuzz_bodies::manage_body(data));
