//! `[sms.http]`: a template for the HTTP interfaces of commercial SMS gateways (Twilio,
//! MessageBird, a company's own relay): one request per text to a fixed URL, the number
//! and the text only in the body (form or JSON fields filled from templates), the
//! credential from a file (HTTP basic, or one header), and a pattern the answer must
//! match. TLS is always verified; a CA file may replace the system's CAs.

use crate::sms::HttpUrl;
use crate::{AbsolutePath, Bounded};
use serde::Deserialize;
use std::collections::BTreeMap;

/// What a field's template may name.
pub const HTTP_PLACEHOLDERS: [&str; 2] = ["phone", "text"];

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HttpGatewayConfig {
    /// Where each text is sent, e.g. `https://api.example.com/v1/messages`. Plain `http`
    /// only to this machine; no `{phone}` or `{text}` in it: gateways and proxies log
    /// URLs, the number and the text go in `fields`.
    pub url: HttpUrl,
    #[serde(default)]
    pub method: HttpMethod,
    /// How `fields` are sent: `form` (`application/x-www-form-urlencoded`) or `json`
    /// (one object, every value a string).
    #[serde(default)]
    pub body: HttpBody,
    /// The body's fields: name -> template, e.g. `{ To = "{phone}", Body = "{text}" }`.
    pub fields: BTreeMap<String, FieldTemplate>,
    /// HTTP basic authentication: the user name, and the file its password is read from.
    pub username: Option<String>,
    pub password_file: Option<AbsolutePath>,
    /// Or one header (e.g. `Authorization`) whose whole value (`Bearer …`) is the first
    /// line of `header_file`.
    pub header_name: Option<String>,
    pub header_file: Option<AbsolutePath>,
    /// A regular expression a 2xx answer's body must match for the text to count as
    /// sent; unset: any 2xx answer is a sent text.
    pub success: Option<SuccessPattern>,
    /// How long one request may take, connection and answer included.
    #[serde(default = "default_timeout")]
    pub timeout_seconds: Bounded<1, 30>,
    /// PEM certificates to trust instead of the system's, for an `https` URL.
    pub ca_file: Option<AbsolutePath>,
    /// The account that must hold the port of a plain `http` url on this machine (as
    /// `[sms.kannel] local_user`).
    pub local_user: Option<String>,
}

fn default_timeout() -> Bounded<1, 30> {
    Bounded(10)
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum HttpMethod {
    #[default]
    Post,
    Put,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum HttpBody {
    #[default]
    Form,
    Json,
}

/// How the gateway is told who is sending.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HttpAuth<'a> {
    None,
    Basic {
        username: &'a str,
        password_file: &'a AbsolutePath,
    },
    Header {
        name: &'a str,
        file: &'a AbsolutePath,
    },
}

/// The most fields a body may have, and the longest name and template.
const MAX_FIELDS: usize = 32;
const MAX_NAME: usize = 64;
const MAX_TEMPLATE: usize = 512;

impl HttpGatewayConfig {
    /// The credential the settings name (`check` made sure it is whole and single).
    pub fn auth(&self) -> HttpAuth<'_> {
        match (
            &self.username,
            &self.password_file,
            &self.header_name,
            &self.header_file,
        ) {
            (Some(username), Some(password_file), _, _) => HttpAuth::Basic {
                username,
                password_file,
            },
            (_, _, Some(name), Some(file)) => HttpAuth::Header { name, file },
            _ => HttpAuth::None,
        }
    }

    /// What the types cannot say.
    pub(crate) fn check(&self) -> Result<(), String> {
        let url = &self.url;
        if url.scheme() == "http" && !url.is_local() {
            return Err(format!(
                "[sms.http] url {:?}: plain http is for a gateway on this machine only (localhost): use https",
                url.0
            ));
        }
        crate::sms::check_local_user("[sms.http]", self.local_user.as_deref(), url)?;
        let lower = url.0.to_ascii_lowercase();
        if ["{", "}", "%7b", "%7d"].iter().any(|b| lower.contains(b)) {
            return Err(
                "[sms.http] url: no placeholders in the URL (gateways and proxies log URLs): put {phone} and {text} in fields".into(),
            );
        }
        if self.fields.len() > MAX_FIELDS {
            return Err(format!("[sms.http] fields: at most {MAX_FIELDS}"));
        }
        for name in self.fields.keys() {
            if name.is_empty() || name.len() > MAX_NAME || name.chars().any(char::is_control) {
                return Err(format!(
                    "[sms.http] fields: a field name is 1 to {MAX_NAME} printable characters, got {name:?}"
                ));
            }
        }
        for p in HTTP_PLACEHOLDERS {
            if !self.fields.values().any(|t| t.uses(p)) {
                return Err(format!(
                    "[sms.http] fields: one field must hold {{{p}}}, e.g. fields = {{ To = \"{{phone}}\", Body = \"{{text}}\" }}"
                ));
            }
        }
        let basic = self.username.is_some() || self.password_file.is_some();
        let header = self.header_name.is_some() || self.header_file.is_some();
        if basic && header {
            return Err(
                "[sms.http] either username and password_file (HTTP basic) or header_name and header_file, not both".into(),
            );
        }
        if basic {
            let Some(username) = &self.username else {
                return Err("[sms.http] password_file needs its username".into());
            };
            if self.password_file.is_none() {
                return Err(
                    "[sms.http] username needs password_file, the file its password is read from"
                        .into(),
                );
            }
            if username.is_empty()
                || username.len() > MAX_NAME
                || username.chars().any(|c| c.is_control() || c == ':')
            {
                return Err(format!(
                    "[sms.http] username: 1 to {MAX_NAME} printable characters without ':'"
                ));
            }
        }
        if header {
            let Some(name) = &self.header_name else {
                return Err("[sms.http] header_file needs its header_name".into());
            };
            if self.header_file.is_none() {
                return Err(
                    "[sms.http] header_name needs header_file, the file its value is read from"
                        .into(),
                );
            }
            check_header_name(name)?;
        }
        Ok(())
    }
}

/// An HTTP token (RFC 9110 section 5.6.2), not one of the headers the request itself sets.
fn check_header_name(name: &str) -> Result<(), String> {
    let token = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !token {
        return Err(format!(
            "[sms.http] header_name {name:?}: a header name is 1 to {MAX_NAME} letters, digits or !#$%&'*+-.^_`|~"
        ));
    }
    let own = [
        "host",
        "content-type",
        "content-length",
        "transfer-encoding",
        "connection",
    ];
    if own.contains(&name.to_ascii_lowercase().as_str()) {
        return Err(format!(
            "[sms.http] header_name {name:?}: the request sets that header itself"
        ));
    }
    Ok(())
}

/// A field's value with `{phone}` and `{text}`, checked when read.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(try_from = "String")]
pub struct FieldTemplate(String);

impl TryFrom<String> for FieldTemplate {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s.len() > MAX_TEMPLATE || s.chars().any(char::is_control) {
            return Err(format!(
                "a field is at most {MAX_TEMPLATE} characters, without control characters"
            ));
        }
        let mut rest = s.as_str();
        while let Some(open) = rest.find(['{', '}']) {
            let after = &rest[open + 1..];
            let name = after.find('}').map(|close| &after[..close]);
            match name {
                Some(name)
                    if rest[open..].starts_with('{') && HTTP_PLACEHOLDERS.contains(&name) =>
                {
                    rest = &after[name.len() + 1..];
                }
                _ => {
                    return Err(format!(
                        "{s:?}: the only placeholders are {{phone}} and {{text}} (and no other braces)"
                    ));
                }
            }
        }
        Ok(FieldTemplate(s))
    }
}

impl FieldTemplate {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn uses(&self, placeholder: &str) -> bool {
        self.0.contains(&format!("{{{placeholder}}}"))
    }

    /// The value for one text: the placeholders replaced in one pass (a text holding
    /// `{phone}` stays as it is).
    pub fn fill(&self, phone: &str, text: &str) -> String {
        let mut out = String::with_capacity(self.0.len() + text.len());
        let mut rest = self.0.as_str();
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            if let Some(tail) = after.strip_prefix("phone}") {
                out.push_str(phone);
                rest = tail;
            } else if let Some(tail) = after.strip_prefix("text}") {
                out.push_str(text);
                rest = tail;
            } else {
                // Not reached: the template was checked.
                out.push('{');
                rest = after;
            }
        }
        out.push_str(rest);
        out
    }
}

/// A regular expression (Rust's `regex` syntax, matched in linear time), checked when read.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct SuccessPattern(String);

/// Bounds the memory a pattern may compile to.
pub const SUCCESS_SIZE_LIMIT: usize = 1 << 20;

impl SuccessPattern {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The compiled pattern.
    pub fn regex(&self) -> Result<regex::Regex, String> {
        regex::RegexBuilder::new(&self.0)
            .size_limit(SUCCESS_SIZE_LIMIT)
            .build()
            .map_err(|e| format!("success {:?}: {e}", self.0))
    }
}

impl PartialEq for SuccessPattern {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl TryFrom<String> for SuccessPattern {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s.is_empty() || s.len() > 512 {
            return Err("success: a regular expression of 1 to 512 characters".into());
        }
        let p = SuccessPattern(s);
        p.regex()?;
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use crate::Config;

    const BASE: &str =
        "version = 1\n[sms]\nenabled = true\nallowed_prefixes = [\"+1\"]\n[sms.http]\n";

    fn parse(section: &str) -> Result<Config, String> {
        Config::parse(&format!("{BASE}{section}"), "t.toml").map_err(|e| e.to_string())
    }

    fn error_of(section: &str) -> String {
        parse(section).expect_err("must be refused")
    }

    const TWILIO: &str = r#"url = "https://api.twilio.com/2010-04-01/Accounts/AC0123/Messages.json"
fields = { To = "{phone}", From = "+15005550006", Body = "{text}" }
username = "AC0123"
password_file = "/etc/twofold/sms-token"
success = '"status": ?"(accepted|queued|sending|sent)"'
"#;

    #[test]
    fn a_twilio_like_gateway_is_read_with_its_defaults() {
        let c = parse(TWILIO).unwrap();
        assert!(c.sms_on());
        let h = c.sms.http.as_ref().unwrap();
        assert_eq!(h.method, super::HttpMethod::Post);
        assert_eq!(h.body, super::HttpBody::Form);
        assert_eq!(h.timeout_seconds.get(), 10);
        assert_eq!(h.fields["To"].fill("+15551234567", "x"), "+15551234567");
        assert_eq!(
            h.fields["Body"].fill("+1", "a {phone} b {text}"),
            "a {phone} b {text}",
            "a text is not filled again"
        );
        assert!(matches!(
            h.auth(),
            super::HttpAuth::Basic {
                username: "AC0123",
                ..
            }
        ));
        assert!(
            h.success
                .as_ref()
                .unwrap()
                .regex()
                .unwrap()
                .is_match(r#""status": "queued""#)
        );
        let j = parse("url = \"https://sms.example/v1\"\nmethod = \"put\"\nbody = \"json\"\nfields = { to = \"{phone}\", text = \"Code: {text}\" }\nheader_name = \"Authorization\"\nheader_file = \"/etc/twofold/sms-bearer\"\n").unwrap();
        let h = j.sms.http.unwrap();
        assert_eq!(h.method, super::HttpMethod::Put);
        assert_eq!(h.body, super::HttpBody::Json);
        assert!(matches!(
            h.auth(),
            super::HttpAuth::Header {
                name: "Authorization",
                ..
            }
        ));
        let local = parse(
            "url = \"http://127.0.0.1:8080/send\"\nfields = { p = \"{phone}\", t = \"{text}\" }\n",
        )
        .unwrap();
        assert_eq!(local.sms.http.unwrap().auth(), super::HttpAuth::None);
    }

    #[test]
    fn the_documented_http_gateways_are_read() {
        let doc = include_str!("../../docs/configuration.md");
        let mut examples = 0;
        for block in doc.split("```toml\n").skip(2) {
            let block = block.split("```\n").next().unwrap();
            if !block.contains("[sms.http]") {
                continue;
            }
            let text = if block.contains("[sms]") {
                format!("version = 1\n{block}")
            } else {
                format!("{BASE}{}", block.replacen("[sms.http]\n", "", 1))
            };
            let c = Config::parse(&text, "docs").unwrap_or_else(|e| panic!("{e}\n{text}"));
            assert!(c.sms_on() && c.sms.http.is_some());
            examples += 1;
        }
        assert_eq!(examples, 2);
        // The keys of the big example, commented out there: one credential kind at a time.
        let start = doc.find("# [sms.http]").unwrap();
        let keys: String = doc[start..]
            .lines()
            .skip(1)
            .take_while(|l| l.starts_with("# "))
            .filter(|l| !l.starts_with("# header_"))
            .map(|l| format!("{}\n", &l[2..]))
            .collect();
        let c = parse(&keys).unwrap_or_else(|e| panic!("{e}\n{keys}"));
        assert_eq!(
            c.sms.http.unwrap().timeout_seconds.get(),
            10,
            "the default shown"
        );
    }

    #[test]
    fn unusable_http_gateway_settings_are_refused_with_the_reason() {
        let fields = "fields = { To = \"{phone}\", Body = \"{text}\" }\n";
        let e = error_of(&format!("url = \"http://sms.example/send\"\n{fields}"));
        assert!(e.contains("plain http") && e.contains("use https"), "{e}");
        let e = error_of(&format!(
            "url = \"https://sms.example/send?to={{phone}}\"\n{fields}"
        ));
        assert!(e.contains("no placeholders in the URL"), "{e}");
        let e = error_of(&format!(
            "url = \"https://sms.example/send?to=%7Bphone%7D\"\n{fields}"
        ));
        assert!(e.contains("no placeholders in the URL"), "{e}");
        let e = error_of("url = \"https://sms.example/\"\nfields = { To = \"{phone}\" }\n");
        assert!(e.contains("one field must hold {text}"), "{e}");
        let e = error_of("url = \"https://sms.example/\"\nfields = { Body = \"{text}\" }\n");
        assert!(e.contains("one field must hold {phone}"), "{e}");
        let e = error_of(
            "url = \"https://sms.example/\"\nfields = { To = \"{number}\", Body = \"{text}\" }\n",
        );
        assert!(
            e.contains("only placeholders are {phone} and {text}") && e.contains("line 7"),
            "{e}"
        );
        let e = error_of(
            "url = \"https://sms.example/\"\nfields = { To = \"{phone\", Body = \"{text}\" }\n",
        );
        assert!(e.contains("only placeholders"), "{e}");
        let e = error_of(
            "url = \"https://sms.example/\"\nfields = { To = \"}{phone}\", Body = \"{text}\" }\n",
        );
        assert!(e.contains("only placeholders"), "{e}");
        let u = "url = \"https://sms.example/\"\n";
        let e = error_of(&format!(
            "{u}{fields}username = \"a\"\npassword_file = \"/p\"\nheader_name = \"X-Key\"\nheader_file = \"/h\"\n"
        ));
        assert!(e.contains("not both"), "{e}");
        let e = error_of(&format!("{u}{fields}username = \"a\"\n"));
        assert!(e.contains("username needs password_file"), "{e}");
        let e = error_of(&format!("{u}{fields}header_file = \"/h\"\n"));
        assert!(e.contains("needs its header_name"), "{e}");
        let e = error_of(&format!(
            "{u}{fields}username = \"a:b\"\npassword_file = \"/p\"\n"
        ));
        assert!(e.contains("without ':'"), "{e}");
        let e = error_of(&format!(
            "{u}{fields}header_name = \"Bad Name\"\nheader_file = \"/h\"\n"
        ));
        assert!(e.contains("header_name"), "{e}");
        let e = error_of(&format!(
            "{u}{fields}header_name = \"content-type\"\nheader_file = \"/h\"\n"
        ));
        assert!(e.contains("sets that header itself"), "{e}");
        let e = error_of(&format!("{u}{fields}success = \"(unclosed\"\n"));
        assert!(e.contains("success") && e.contains("line 8"), "{e}");
        let e = error_of(&format!("{u}{fields}method = \"get\"\n"));
        assert!(e.contains("method"), "{e}");
        let e = error_of(&format!("{u}{fields}timeout_seconds = 31\n"));
        assert!(e.contains("between 1 and 30"), "{e}");
        let e = error_of(&format!("{u}{fields}verify = false\n"));
        assert!(
            e.contains("unknown field"),
            "TLS verification has no switch: {e}"
        );
        let two = format!(
            "{BASE}{u}{fields}[sms.kannel]\nurl = \"http://127.0.0.1:13013/cgi-bin/sendsms\"\nusername = \"t\"\npassword_file = \"/p\"\n"
        );
        let e = Config::parse(&two, "t").unwrap_err().to_string();
        assert!(e.contains("more than one gateway"), "{e}");
    }
}
