//! `Auth.Begin`'s body: see `twofold_fuzz_bodies::begin_body`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| twofold_fuzz_bodies::begin_body(data));
