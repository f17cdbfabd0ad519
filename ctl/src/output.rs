//! What twofoldctl prints: text for people, JSON for scripts.

use crate::QrStyle;
use qrcode::render::unicode::Dense1x2;
use qrcode::{EcLevel, QrCode};
use serde_json::json;
use std::io::{IsTerminal, Write};
use std::time::{Duration, UNIX_EPOCH};
use twofold_protocol::{Deferral, EnrolmentOffer, TrustInfo, UserStatus, grouped};

fn when(t: i64) -> String {
    if t <= 0 {
        return "never".into();
    }
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(t as u64)).to_string()
}

/// Sets black on white (bright white where the terminal has it) whatever the theme;
/// the quiet zone is drawn in the same colours, so the symbol always has its light margin.
const BLACK_ON_WHITE: &str = "\x1b[0;30;47;107m";
const RESET: &str = "\x1b[0m";

/// The QR code as text: dark modules drawn dark, in a quiet zone of 4 light modules.
/// `None` when the text does not fit in a QR code or no code is wanted.
pub fn qr(text: &str, style: QrStyle) -> Option<String> {
    let style = match style {
        QrStyle::Auto if std::io::stdout().is_terminal() => QrStyle::Color,
        QrStyle::Auto => QrStyle::Text,
        other => other,
    };
    if style == QrStyle::None {
        return None;
    }
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::L).ok()?;
    let plain = code
        .render::<Dense1x2>()
        .dark_color(Dense1x2::Dark)
        .light_color(Dense1x2::Light)
        .quiet_zone(true)
        .build();
    if style == QrStyle::Text {
        return Some(plain);
    }
    // Colours are set again on every line: some terminals reset them at a newline.
    Some(
        plain
            .lines()
            .map(|line| format!("{BLACK_ON_WHITE}{line}{RESET}"))
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

/// What someone typing the secret by hand must set beyond it, when it differs from what
/// apps assume (30 s, 6 digits, SHA1).
fn settings(o: &EnrolmentOffer) -> Option<String> {
    let mut differ = Vec::new();
    if o.period != 30 {
        differ.push(format!("a period of {} seconds", o.period));
    }
    if o.digits != 6 {
        differ.push(format!("{} digits", o.digits));
    }
    if o.algorithm != "SHA1" {
        differ.push(format!("algorithm {}", o.algorithm));
    }
    (!differ.is_empty()).then(|| differ.join(", "))
}

pub fn offer(o: &EnrolmentOffer, style: QrStyle, as_json: bool) {
    if as_json {
        println!(
            "{}",
            json!({"user": o.user, "secret": o.secret, "otpauth_uri": o.otpauth_uri, "state": "pending",
                   "algorithm": o.algorithm, "digits": o.digits, "period": o.period,
                   "recovery_codes": o.recovery_codes})
        );
        return;
    }
    if let Some(q) = qr(&o.otpauth_uri, style) {
        println!(
            "Scan this QR code with an authenticator app for {}:",
            o.user
        );
        println!("{q}");
    }
    match settings(o) {
        None => println!(
            "Or enter this secret by hand (time-based): {}",
            grouped(&o.secret)
        ),
        Some(extra) => println!(
            "Or enter this secret by hand (time-based; also set {extra}): {}",
            grouped(&o.secret)
        ),
    }
    println!("otpauth URI: {}", o.otpauth_uri);
    recovery_codes(&o.user, &o.recovery_codes, false);
}

/// Recovery codes, shown once: where to keep them and how they work.
pub fn recovery_codes(user: &str, codes: &[String], as_json: bool) {
    if as_json {
        println!("{}", json!({"user": user, "recovery_codes": codes}));
        return;
    }
    if codes.is_empty() {
        return;
    }
    println!(
        "\nRecovery codes for {user}: each works once in place of a code, if the phone is lost."
    );
    println!("Keep them somewhere safe, away from the phone; they are not shown again.");
    for pair in codes.chunks(2) {
        println!("  {}", pair.join("    "));
    }
}

pub fn confirmed(user: &str, as_json: bool) {
    if as_json {
        println!(
            "{}",
            json!({"user": user, "state": "active", "confirmed": true})
        );
    } else {
        println!("Code verified: {user}'s second factor is active.");
    }
}

/// An entry of a listing.
pub trait Entry {
    fn json(&self) -> serde_json::Value;
    /// The entry as text, one or more lines without the last newline.
    fn text(&self) -> String;
    /// The column heading above the entries, if the text has columns.
    fn heading() -> Option<String> {
        None
    }
    /// What the text says when there is no entry.
    const NONE: &'static str;
}

/// Prints a listing page by page as the pages arrive, holding no more than one: JSON as
/// one array, text as lines. A listing cut short by an error leaves the JSON array
/// unclosed, so a script cannot mistake it for a whole one.
pub struct Listing<T: Entry> {
    json: bool,
    shown: usize,
    out: std::io::BufWriter<std::io::Stdout>,
    entries: std::marker::PhantomData<T>,
}

impl<T: Entry> Listing<T> {
    pub fn new(json: bool) -> Self {
        Listing {
            json,
            shown: 0,
            out: std::io::BufWriter::new(std::io::stdout()),
            entries: std::marker::PhantomData,
        }
    }

    pub fn page(&mut self, entries: &[T]) -> std::io::Result<()> {
        for e in entries {
            if self.json {
                let lead = if self.shown == 0 { "[" } else { "," };
                write!(self.out, "{lead}{}", e.json())?;
            } else {
                if self.shown == 0
                    && let Some(heading) = T::heading()
                {
                    writeln!(self.out, "{heading}")?;
                }
                writeln!(self.out, "{}", e.text())?;
            }
            self.shown += 1;
        }
        self.out.flush()
    }

    pub fn finish(mut self) -> std::io::Result<()> {
        match (self.json, self.shown) {
            (true, 0) => writeln!(self.out, "[]")?,
            (true, _) => writeln!(self.out, "]")?,
            (false, 0) => writeln!(self.out, "{}", T::NONE)?,
            (false, _) => {}
        }
        self.out.flush()
    }
}

impl Entry for UserStatus {
    const NONE: &'static str = "No user has a second factor.";

    fn json(&self) -> serde_json::Value {
        json!({"user": self.user, "state": self.state, "factor": self.factor,
               "enrolled_at": self.enrolled_at,
               "last_success": self.last_success, "failures": self.failures,
               "locked_until": self.locked_until, "in_scope": self.in_scope,
               "grace_until": self.grace_until, "trusted": self.trusted,
               "recovery_codes": self.recovery_codes, "email_shared": self.email_shared,
               "phone": self.phone, "phone_shared": self.phone_shared})
    }

    fn text(&self) -> String {
        let s = self;
        let lock = if s.locked_until > 0 {
            format!("locked until {}", when(s.locked_until))
        } else {
            "not locked".into()
        };
        let grace = if s.grace_until > 0 {
            format!("; enrolment mandatory from {}", when(s.grace_until))
        } else {
            String::new()
        };
        let mut recovery = match s.recovery_codes {
            0 => String::new(),
            n => format!(", {n} recovery code(s) left"),
        };
        if !s.phone.is_empty() {
            recovery.push_str(&format!(", codes by SMS to {}", s.phone));
        }
        if s.email_shared {
            recovery.push_str("\n  warning: another user has the same e-mail address");
        }
        if s.phone_shared {
            recovery.push_str("\n  warning: another user has the same phone number");
        }
        if !s.in_scope {
            format!(
                "{}: outside twofold's scope (no second factor required)",
                s.user
            )
        } else if s.state == "none" {
            format!("{}: not enrolled{grace}", s.user)
        } else {
            let factor = match s.factor.as_str() {
                "totp" => "authenticator app",
                "email" => "codes by e-mail",
                "sms" => "codes by SMS",
                other => other,
            };
            format!(
                "{}: {} {factor} (enrolled {}), last success {}, {} recent failure(s), {}\n  {} trusted session(s)/device(s){recovery}{grace}",
                s.user,
                s.state,
                when(s.enrolled_at),
                when(s.last_success),
                s.failures,
                lock,
                s.trusted
            )
        }
    }
}

impl Entry for TrustInfo {
    const NONE: &'static str = "No trusted sessions or devices.";

    fn heading() -> Option<String> {
        Some(format!(
            "{:<12}  {:<10}  {:<8}  {:<20}  {:<20}  {:<20}  device",
            "ID", "USER", "KIND", "CREATED", "LAST USED", "EXPIRES"
        ))
    }

    fn json(&self) -> serde_json::Value {
        let t = self;
        json!({"id": t.id, "user": t.user, "kind": t.kind, "device": t.device, "service": t.service,
               "created_at": t.created_at, "last_used": t.last_used, "expires_at": t.expires_at})
    }

    fn text(&self) -> String {
        let t = self;
        format!(
            "{:<12}  {:<10}  {:<8}  {:<20}  {:<20}  {:<20}  {} ({})",
            t.id,
            t.user,
            t.kind,
            when(t.created_at),
            when(t.last_used),
            when(t.expires_at),
            t.device,
            t.service
        )
    }
}

impl Entry for Deferral {
    const NONE: &'static str = "No deferrals.";

    fn json(&self) -> serde_json::Value {
        let d = self;
        json!({"subject": d.subject, "until": d.until, "reason": d.reason, "created_at": d.created_at})
    }

    fn text(&self) -> String {
        let reason = if self.reason.is_empty() {
            String::new()
        } else {
            format!(" — {}", self.reason)
        };
        format!("{}: until {}{reason}", self.subject, when(self.until))
    }
}

/// (what, value) lines, aligned; or one JSON object.
pub fn facts(lines: &[(String, String)], as_json: bool) {
    if as_json {
        let object: serde_json::Map<String, serde_json::Value> = lines
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        println!("{}", serde_json::Value::Object(object));
        return;
    }
    let width = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (what, value) in lines {
        println!("{what:<width$}  {value}");
    }
}

pub fn done(user: &str, what: &str, changed: bool, as_json: bool) {
    if as_json {
        println!(
            "{}",
            json!({"user": user, "result": what, "changed": changed})
        );
    } else {
        println!("{user}: {what}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_grouped_for_typing() {
        assert_eq!(grouped("ABCDEFGHIJ"), "ABCD EFGH IJ");
    }

    const URI: &str =
        "otpauth://totp/host:alice%40host?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=host";

    #[test]
    fn text_qr_codes_draw_dark_modules_inside_a_light_quiet_zone() {
        let q = qr(URI, QrStyle::Text).unwrap();
        let lines: Vec<&str> = q.lines().collect();
        assert!(lines.len() > 10);
        assert!(q.chars().all(|c| matches!(c, ' ' | '▀' | '▄' | '█' | '\n')));
        // 4 light modules: two text rows above and below, four columns either side.
        for row in [0, 1, lines.len() - 2, lines.len() - 1] {
            assert!(
                lines[row].chars().all(|c| c == ' '),
                "row {row} is not blank"
            );
        }
        for line in &lines {
            let chars: Vec<char> = line.chars().collect();
            assert!(
                chars[..4]
                    .iter()
                    .chain(&chars[chars.len() - 4..])
                    .all(|&c| c == ' ')
            );
        }
        // The finder pattern's dark border starts right after the quiet zone.
        assert_eq!(lines[2].chars().nth(4), Some('█'));
    }

    #[test]
    fn colour_qr_codes_set_black_on_white_on_every_line() {
        let q = qr(URI, QrStyle::Color).unwrap();
        for line in q.lines() {
            assert!(
                line.starts_with(BLACK_ON_WHITE) && line.ends_with(RESET),
                "{line:?}"
            );
        }
        assert_eq!(qr(URI, QrStyle::None), None);
    }

    #[test]
    fn unusual_settings_are_named_for_manual_entry() {
        let mut o = EnrolmentOffer {
            user: "alice".into(),
            secret: "GEZDGNBV".into(),
            otpauth_uri: URI.into(),
            algorithm: "SHA1".into(),
            digits: 6,
            period: 30,
            recovery_codes: Vec::new(),
        };
        assert_eq!(settings(&o), None);
        o.period = 60;
        o.digits = 8;
        o.algorithm = "SHA256".into();
        assert_eq!(
            settings(&o).as_deref(),
            Some("a period of 60 seconds, 8 digits, algorithm SHA256")
        );
    }

    #[test]
    fn times_are_readable() {
        assert_eq!(when(0), "never");
        assert_eq!(when(1_800_000_000), "2027-01-15T08:00:00Z");
    }
}
