//! A configuration file, as `twofoldd --check-config` reads it: see `twofold_fuzz_bodies::config`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| twofold_fuzz_bodies::config(data));
