//! Per-service trust policy: how long a verified session lasts, whether a device may be
//! remembered. Built-in defaults, then `[policy.other]`, then the service's own defaults
//! (sudo and su are stricter), then `[policy.<service>]`.

use crate::Bounded;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    #[default]
    Default,
    /// NIST SP 800-63B rev 4 AAL2 reauthentication limits.
    Strict,
}

/// `[policy.<service>]` as written; unset keys fall through to the next layer.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServicePolicyConfig {
    /// After a right code, the same device passes without one for this long; 0 = never.
    pub session_hours: Option<Bounded<0, 720>>,
    /// ... unless it was not used for this long; 0 = no idle limit.
    pub idle_minutes: Option<Bounded<0, 10080>>,
    /// Offer "Trust this device?" after a right code (strong identities only).
    pub remember_device: Option<bool>,
    pub remember_days: Option<Bounded<1, 400>>,
    /// Let an SSH login without a key be trusted by its remote address alone.
    pub trust_address: Option<bool>,
    /// Let an SSH login whose key was a FIDO2 security key (`sk-…@openssh.com`) pass
    /// without a code; sshd must require user verification (`verify-required`).
    pub accept_security_keys: Option<bool>,
}

/// The resolved policy, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServicePolicy {
    pub session_seconds: i64,
    pub idle_seconds: i64,
    pub remember_device: bool,
    pub remember_seconds: i64,
    pub trust_address: bool,
    pub accept_security_keys: bool,
    /// The service is sshd (`[login] ssh_services`): a root caller's SSH key is the device.
    pub ssh: bool,
}

const STRICT_MAX_SESSION_HOURS: u32 = 24;
const STRICT_MAX_IDLE_MINUTES: u32 = 60;

fn builtin_other(profile: Profile) -> ServicePolicyConfig {
    ServicePolicyConfig {
        session_hours: Some(Bounded(12)),
        idle_minutes: Some(Bounded(30)),
        remember_device: Some(profile == Profile::Default),
        remember_days: Some(Bounded(90)),
        trust_address: Some(false),
        accept_security_keys: Some(false),
    }
}

/// What a PAM service is for. A session window serves only logins of the class that
/// opened it: unlocking a screen never grants sudo, sudo never unlocks a screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceClass {
    /// Getting into the machine: sshd (and copies named `sshd-…`), console login,
    /// display managers.
    Login,
    /// Becoming someone else, usually root: sudo, su, doas, run0, pkexec, polkit.
    Escalation,
    /// Unlocking a screen of a session already open.
    Unlock,
    /// Any other service: its windows serve that service alone.
    Own(String),
}

const ESCALATION: &[&str] = &[
    "sudo", "sudo-i", "su", "su-l", "polkit-1", "pkexec", "doas", "run0",
];
const UNLOCK: &[&str] = &[
    "xscreensaver",
    "i3lock",
    "swaylock",
    "hyprlock",
    "gtklock",
    "waylock",
    "kde",
    "kscreenlocker",
    "gnome-screensaver",
    "cinnamon-screensaver",
    "mate-screensaver",
    "xfce4-screensaver",
    "light-locker",
    "xsecurelock",
    "xlock",
    "physlock",
    "vlock",
];
const LOGIN: &[&str] = &["login", "sshd", "gdm-password", "lightdm", "sddm", "greetd"];

pub fn service_class(service: &str) -> ServiceClass {
    if ESCALATION.contains(&service) {
        ServiceClass::Escalation
    } else if UNLOCK.contains(&service) {
        ServiceClass::Unlock
    } else if LOGIN.contains(&service) || service.starts_with("sshd-") {
        ServiceClass::Login
    } else {
        ServiceClass::Own(service.to_string())
    }
}

/// Services whose built-in policy differs from `other`.
fn builtin_special(service: &str) -> Option<ServicePolicyConfig> {
    match service_class(service) {
        // Privilege escalation guards root: a short window, nothing remembered.
        ServiceClass::Escalation => Some(ServicePolicyConfig {
            session_hours: Some(Bounded(1)),
            idle_minutes: Some(Bounded(15)),
            remember_device: Some(false),
            remember_days: None,
            trust_address: None,
            accept_security_keys: None,
        }),
        _ => None,
    }
}

fn overlay(base: &mut ServicePolicyConfig, top: &ServicePolicyConfig) {
    base.session_hours = top.session_hours.or(base.session_hours);
    base.idle_minutes = top.idle_minutes.or(base.idle_minutes);
    base.remember_device = top.remember_device.or(base.remember_device);
    base.remember_days = top.remember_days.or(base.remember_days);
    base.trust_address = top.trust_address.or(base.trust_address);
    base.accept_security_keys = top.accept_security_keys.or(base.accept_security_keys);
}

pub fn resolve(
    profile: Profile,
    configured: &BTreeMap<String, ServicePolicyConfig>,
    service: &str,
    ssh: bool,
) -> ServicePolicy {
    let mut p = builtin_other(profile);
    if let Some(other) = configured.get("other") {
        overlay(&mut p, other);
    }
    if let Some(special) = builtin_special(service) {
        overlay(&mut p, &special);
    }
    if let Some(own) = configured.get(service) {
        overlay(&mut p, own);
    }
    let hours = p.session_hours.map_or(0, Bounded::get);
    let idle = p.idle_minutes.map_or(0, Bounded::get);
    let mut resolved = ServicePolicy {
        session_seconds: i64::from(hours) * 3600,
        idle_seconds: i64::from(idle) * 60,
        remember_device: p.remember_device.unwrap_or(false),
        remember_seconds: i64::from(p.remember_days.map_or(90, Bounded::get)) * 86400,
        trust_address: p.trust_address.unwrap_or(false),
        accept_security_keys: p.accept_security_keys.unwrap_or(false),
        ssh,
    };
    if profile == Profile::Strict {
        // check_profile refused explicit violations; this only guards the built-ins.
        resolved.remember_device = false;
        resolved.session_seconds = resolved
            .session_seconds
            .min(i64::from(STRICT_MAX_SESSION_HOURS) * 3600);
        if resolved.idle_seconds == 0
            || resolved.idle_seconds > i64::from(STRICT_MAX_IDLE_MINUTES) * 60
        {
            resolved.idle_seconds = i64::from(STRICT_MAX_IDLE_MINUTES) * 60;
        }
    }
    resolved
}

/// Under `profile = "strict"`, settings that break its limits are refused by name.
pub fn check_profile(
    profile: Profile,
    configured: &BTreeMap<String, ServicePolicyConfig>,
) -> Result<(), String> {
    if profile != Profile::Strict {
        return Ok(());
    }
    for (service, p) in configured {
        if p.remember_device == Some(true) {
            return Err(format!(
                "[policy.{service}] remember_device = true is not allowed with profile = \"strict\""
            ));
        }
        if p.session_hours
            .is_some_and(|h| h.get() > STRICT_MAX_SESSION_HOURS)
        {
            return Err(format!(
                "[policy.{service}] session_hours above {STRICT_MAX_SESSION_HOURS} is not allowed with profile = \"strict\""
            ));
        }
        if p.idle_minutes
            .is_some_and(|m| m.get() == 0 || m.get() > STRICT_MAX_IDLE_MINUTES)
        {
            return Err(format!(
                "[policy.{service}] idle_minutes must be 1 to {STRICT_MAX_IDLE_MINUTES} with profile = \"strict\""
            ));
        }
    }
    Ok(())
}
