//! `[email_codes]`: one-time codes sent to the address an administrator set, and the
//! message they go out in. The text comes from `email-code.txt` beside the configuration
//! file (checked like it), or a built-in one; its placeholders are checked on load.

use crate::Bounded;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EmailCodesConfig {
    /// Whether logins may ask for a code by e-mail (needs `[smtp]`). Off unless set: an
    /// address on record then becomes a way in, and e-mail is weaker than an app.
    /// `profile = "strict"` refuses it (NIST SP 800-63B does not accept e-mail as an
    /// out-of-band channel).
    pub enabled: bool,
    /// Whether users who have an app may also ask for an e-mailed code (a fallback for
    /// a forgotten phone, and a way in for whoever reads their mailbox). Off: only users
    /// whose one factor is the address get codes by e-mail.
    pub app_users: bool,
    /// How long a code is valid.
    pub valid_minutes: Bounded<1, 60>,
    /// Mails with codes one user may be sent in an hour.
    pub per_hour: Bounded<1, 100>,
    /// The subject; the same placeholders as the text except `{code}`.
    pub subject: Template,
    /// The message text (`email-code.txt`), set by [`crate::Config::load`].
    #[serde(skip)]
    pub text: Template,
}

impl Default for EmailCodesConfig {
    fn default() -> Self {
        EmailCodesConfig {
            enabled: false,
            app_users: false,
            valid_minutes: Bounded(10),
            per_hour: Bounded(5),
            subject: Template(DEFAULT_SUBJECT.into()),
            text: Template(DEFAULT_TEXT.into()),
        }
    }
}

/// The file beside the configuration that holds the message text.
pub const TEXT_FILE: &str = "email-code.txt";

const DEFAULT_SUBJECT: &str = "Your login code for {host}";
/// The built-in text, also shipped as an example to copy into the config directory.
const DEFAULT_TEXT: &str = include_str!("../email-code.txt");

/// What a template may name.
pub const PLACEHOLDERS: [&str; 7] = [
    "user", "host", "service", "source", "time", "minutes", "code",
];

/// A text with `{placeholder}`s, checked when read.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(try_from = "String")]
pub struct Template(pub String);

impl TryFrom<String> for Template {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s.contains(['\n', '\r']) {
            return Err("a subject is one line".into());
        }
        if s.contains("{code}") {
            return Err(
                "the subject must not show the code (mail clients show it unopened)".into(),
            );
        }
        check_template(&s).map_err(|(_, e)| e)?;
        Ok(Template(s))
    }
}

impl Template {
    /// Fills the placeholders; `values` pairs each with its text.
    pub fn render(&self, values: &[(&str, &str)]) -> String {
        let mut out = String::with_capacity(self.0.len() + 64);
        let mut rest = self.0.as_str();
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            match after.find('}').map(|close| (&after[..close], close)) {
                Some((name, close)) if PLACEHOLDERS.contains(&name) => {
                    let value = values.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
                    out.push_str(value.unwrap_or(""));
                    rest = &after[close + 1..];
                }
                _ => {
                    out.push('{');
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        out
    }
}

/// Every `{...}` must be a known placeholder; returns the 1-based line of the first that
/// is not.
fn check_template(text: &str) -> Result<(), (usize, String)> {
    for (n, line) in text.lines().enumerate() {
        let mut rest = line;
        while let Some(open) = rest.find('{') {
            let after = &rest[open + 1..];
            let Some(close) = after.find('}') else {
                return Err((n + 1, "a '{' without its '}'".into()));
            };
            let name = &after[..close];
            if !PLACEHOLDERS.contains(&name) {
                return Err((
                    n + 1,
                    format!(
                        "unknown placeholder {{{name}}}; known: {}",
                        PLACEHOLDERS.map(|p| format!("{{{p}}}")).join(" ")
                    ),
                ));
            }
            rest = &after[close + 1..];
        }
    }
    Ok(())
}

/// Checks the text of `email-code.txt`: known placeholders, and `{code}` in it.
pub fn text_template(text: &str) -> Result<Template, String> {
    check_template(text).map_err(|(line, e)| format!("line {line}: {e}"))?;
    if !text.contains("{code}") {
        return Err("the text must contain {code}".into());
    }
    if text.len() > 16 * 1024 {
        return Err("longer than 16 KiB".into());
    }
    Ok(Template(text.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_text_fills_every_placeholder() {
        let c = EmailCodesConfig::default();
        let values = PLACEHOLDERS.map(|p| (p, "X"));
        let text = c.text.render(&values);
        assert!(!text.contains('{'), "{text}");
        assert!(text.contains("    X\n"));
        assert_eq!(c.subject.render(&values), "Your login code for X");
    }

    #[test]
    fn unknown_placeholders_name_their_line_and_the_code_must_be_in_the_text() {
        assert_eq!(
            text_template("Hi {user}\n{cod}\n").unwrap_err(),
            "line 2: unknown placeholder {cod}; known: {user} {host} {service} {source} {time} {minutes} {code}"
        );
        assert_eq!(
            text_template("Hi {user}").unwrap_err(),
            "the text must contain {code}"
        );
        assert!(
            text_template("line 1\n{oops")
                .unwrap_err()
                .starts_with("line 2:")
        );
        assert!(Template::try_from("Code {code}".to_string()).is_err());
        assert!(Template::try_from("Two\nlines".to_string()).is_err());
        assert!(Template::try_from("For {host}".to_string()).is_ok());
    }

    #[test]
    fn a_value_is_put_in_as_it_is_and_never_expanded_again() {
        let t = text_template("{user}: {code}").unwrap();
        assert_eq!(
            t.render(&[("user", "{code}"), ("code", "123456")]),
            "{code}: 123456"
        );
    }
}
