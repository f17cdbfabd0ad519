//! The e-mail code template: see `twofold_fuzz_bodies::email_template`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| twofold_fuzz_bodies::email_template(data));
