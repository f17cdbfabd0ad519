//! What twofoldctl prints: text for people, JSON (one object per line) for scripts.

use qrcode::render::unicode::Dense1x2;
use qrcode::{EcLevel, QrCode};
use serde_json::json;
use std::time::{Duration, UNIX_EPOCH};
use twofold_protocol::{Deferral, EnrolmentOffer, TrustInfo, UserStatus};

fn when(t: i64) -> String {
    if t <= 0 {
        return "never".into();
    }
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(t as u64)).to_string()
}

/// The secret in groups of four, easier to type into an app.
fn grouped(secret: &str) -> String {
    secret
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn qr(text: &str) -> Option<String> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::L).ok()?;
    // Light modules drawn dark: reads well on the dark terminals most admins use.
    Some(
        code.render::<Dense1x2>()
            .dark_color(Dense1x2::Light)
            .light_color(Dense1x2::Dark)
            .quiet_zone(true)
            .build(),
    )
}

pub fn offer(o: &EnrolmentOffer, as_json: bool) {
    if as_json {
        println!(
            "{}",
            json!({"user": o.user, "secret": o.secret, "otpauth_uri": o.otpauth_uri, "state": "pending"})
        );
        return;
    }
    println!(
        "Scan this QR code with an authenticator app for {}:",
        o.user
    );
    if let Some(q) = qr(&o.otpauth_uri) {
        println!("{q}");
    }
    println!(
        "Or enter this secret by hand (time-based, 30 s): {}",
        grouped(&o.secret)
    );
    println!("otpauth URI: {}", o.otpauth_uri);
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

pub fn statuses(list: &[UserStatus], as_json: bool) {
    if as_json {
        let v: Vec<_> = list
            .iter()
            .map(|s| {
                json!({"user": s.user, "state": s.state, "enrolled_at": s.enrolled_at,
                       "last_success": s.last_success, "failures": s.failures, "locked_until": s.locked_until,
                       "in_scope": s.in_scope, "grace_until": s.grace_until, "trusted": s.trusted})
            })
            .collect();
        println!("{}", serde_json::Value::Array(v));
        return;
    }
    if list.is_empty() {
        println!("No user has a second factor.");
    }
    for s in list {
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
        if !s.in_scope {
            println!(
                "{}: outside twofold's scope (no second factor required)",
                s.user
            );
        } else if s.state == "none" {
            println!("{}: not enrolled{grace}", s.user);
        } else {
            println!(
                "{}: {} (enrolled {}), last success {}, {} recent failure(s), {}",
                s.user,
                s.state,
                when(s.enrolled_at),
                when(s.last_success),
                s.failures,
                lock
            );
            println!("  {} trusted session(s)/device(s){grace}", s.trusted);
        }
    }
}

pub fn trust(list: &[TrustInfo], as_json: bool) {
    if as_json {
        let v: Vec<_> = list
            .iter()
            .map(|t| {
                json!({"id": t.id, "user": t.user, "kind": t.kind, "device": t.device, "service": t.service,
                       "created_at": t.created_at, "last_used": t.last_used, "expires_at": t.expires_at})
            })
            .collect();
        println!("{}", serde_json::Value::Array(v));
        return;
    }
    if list.is_empty() {
        println!("No trusted sessions or devices.");
        return;
    }
    println!(
        "{:<12}  {:<10}  {:<8}  {:<20}  {:<20}  {:<20}  device",
        "ID", "USER", "KIND", "CREATED", "LAST USED", "EXPIRES"
    );
    for t in list {
        println!(
            "{:<12}  {:<10}  {:<8}  {:<20}  {:<20}  {:<20}  {} ({})",
            t.id,
            t.user,
            t.kind,
            when(t.created_at),
            when(t.last_used),
            when(t.expires_at),
            t.device,
            t.service
        );
    }
}

pub fn deferrals(list: &[Deferral], as_json: bool) {
    if as_json {
        let v: Vec<_> = list
            .iter()
            .map(|d| json!({"subject": d.subject, "until": d.until, "reason": d.reason, "created_at": d.created_at}))
            .collect();
        println!("{}", serde_json::Value::Array(v));
        return;
    }
    if list.is_empty() {
        println!("No deferrals.");
    }
    for d in list {
        let reason = if d.reason.is_empty() {
            String::new()
        } else {
            format!(" — {}", d.reason)
        };
        println!("{}: until {}{reason}", d.subject, when(d.until));
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

    #[test]
    fn qr_codes_render_as_block_characters() {
        let q = qr("otpauth://totp/twofold:alice%40host?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=twofold").unwrap();
        assert!(q.lines().count() > 10);
        assert!(q.chars().all(|c| matches!(c, ' ' | '▀' | '▄' | '█' | '\n')));
    }

    #[test]
    fn times_are_readable() {
        assert_eq!(when(0), "never");
        assert_eq!(when(1_800_000_000), "2027-01-15T08:00:00Z");
    }
}
