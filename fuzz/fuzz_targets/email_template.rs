//! The e-mail code template (`email-code.txt`): parsed, and rendered with every
//! placeholder filled.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(template) = twofold_config::text_template(text)
    {
        let values: Vec<(&str, &str)> = twofold_config::PLACEHOLDERS
            .iter()
            .map(|p| (*p, "{code}\u{0}x"))
            .collect();
        let _ = template.render(&values);
    }
});
