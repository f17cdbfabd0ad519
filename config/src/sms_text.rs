//! The text an SMS with a code says: `sms-code.txt` beside the configuration file
//! (checked like it), or the built-in one. One SMS holds 160 characters of the GSM 7-bit
//! alphabet; a text that could grow past that with the longest names, or that needs a
//! character outside the alphabet (which would make it a 70-character UCS-2 text), is
//! refused when read, naming what is wrong.

use crate::Template;

/// The file beside the configuration that holds the text.
pub const SMS_TEXT_FILE: &str = "sms-code.txt";

/// What the text may name.
pub const SMS_PLACEHOLDERS: [&str; 4] = ["code", "host", "service", "minutes"];

/// The longest host and service names put into a text; the daemon cuts longer ones.
pub const SMS_MAX_HOST: usize = 44;
pub const SMS_MAX_SERVICE: usize = 32;

/// One SMS in the GSM 7-bit alphabet.
const SMS_LENGTH: usize = 160;

/// The built-in text, code first (phones show the start of a text in their
/// notification), also shipped as an example to copy into the config directory.
pub const DEFAULT_SMS_TEXT: &str = include_str!("../sms-code.txt").trim_ascii_end();

/// The GSM 03.38 basic alphabet (without the escape to its extension table, whose
/// characters count twice and include the braces of the placeholders).
const GSM_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";

/// Checks the text of `sms-code.txt` (one trailing newline is dropped).
pub fn sms_text(text: &str) -> Result<Template, String> {
    let text = text.strip_suffix('\n').unwrap_or(text);
    let mut rest = text;
    let mut plain = String::new();
    while let Some(open) = rest.find('{') {
        plain.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            return Err("a '{' without its '}'".into());
        };
        let name = &after[..close];
        if !SMS_PLACEHOLDERS.contains(&name) {
            return Err(format!(
                "unknown placeholder {{{name}}}; known: {}",
                SMS_PLACEHOLDERS.map(|p| format!("{{{p}}}")).join(" ")
            ));
        }
        rest = &after[close + 1..];
    }
    plain.push_str(rest);
    if let Some(c) = plain.chars().find(|c| !GSM_BASIC.contains(*c)) {
        return Err(format!(
            "{c:?} is not in the GSM 7-bit alphabet: the text would go out as UCS-2, 70 characters per SMS"
        ));
    }
    if !text.contains("{code}") {
        return Err("the text must contain {code}".into());
    }
    let longest = Template(text.into()).render(&[
        ("code", "123456"),
        ("host", &"h".repeat(SMS_MAX_HOST)),
        ("service", &"s".repeat(SMS_MAX_SERVICE)),
        ("minutes", "10"),
    ]);
    let length = longest.chars().count();
    if length > SMS_LENGTH {
        return Err(format!(
            "with a host name of {SMS_MAX_HOST} and a service of {SMS_MAX_SERVICE} characters it is {length} characters long: one SMS holds {SMS_LENGTH}"
        ));
    }
    Ok(Template(text.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_text_fits_one_sms() {
        let t = sms_text(DEFAULT_SMS_TEXT).unwrap();
        let filled = t.render(&[
            ("code", "123456"),
            ("host", "web1"),
            ("service", "sshd"),
            ("minutes", "5"),
        ]);
        assert_eq!(
            filled,
            "123456 is your twofold login code for sshd on web1, valid 5 min. Not you? Tell IT at once."
        );
    }

    #[test]
    fn a_text_that_could_not_go_as_one_gsm_sms_is_refused_with_the_reason() {
        assert_eq!(
            sms_text("Code: {code} for {user}").unwrap_err(),
            "unknown placeholder {user}; known: {code} {host} {service} {minutes}"
        );
        assert_eq!(
            sms_text("Hello from {host}").unwrap_err(),
            "the text must contain {code}"
        );
        assert!(sms_text("Код {code}").unwrap_err().contains("GSM 7-bit"));
        assert!(sms_text("{code} [login]").unwrap_err().contains("'['"));
        let long = format!("{{code}} {}", "x".repeat(160));
        assert!(sms_text(&long).unwrap_err().contains("one SMS holds 160"));
        assert!(sms_text("{code} für {host}: gültig {minutes} Min.\n").is_ok());
        assert!(sms_text("{code").is_err());
    }
}
