//! `twofoldd --check-config`: the TOML file parsed and every value and relation checked.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = twofold_config::Config::parse(text, "fuzz.toml");
    }
});
