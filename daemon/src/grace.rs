//! Who must use a second factor (scope), and until when a user without one may still log
//! in (the enrolment deadline and deferrals).

use crate::authz::{LookupError, UserDb};
use crate::model::Deferral;
use std::cell::OnceCell;
use twofold_config::ScopeConfig;

/// A user's group names, looked up (NSS, often many file opens) only when a rule needs
/// them: in the default configuration no login looks them up. A failed lookup stays an
/// error for every rule that asks.
pub struct Groups<'a> {
    user: &'a str,
    users: Option<&'a dyn UserDb>,
    names: OnceCell<Result<Vec<String>, LookupError>>,
}

impl<'a> Groups<'a> {
    pub fn of(users: &'a dyn UserDb, user: &'a str) -> Groups<'a> {
        Groups {
            user,
            users: Some(users),
            names: OnceCell::new(),
        }
    }

    /// Already known names (tests).
    pub fn known(user: &'a str, names: Vec<String>) -> Groups<'a> {
        Groups {
            user,
            users: None,
            names: OnceCell::from(Ok(names)),
        }
    }

    pub fn get(&self) -> Result<&[String], LookupError> {
        self.names
            .get_or_init(|| {
                self.users
                    .map_or_else(|| Ok(Vec::new()), |u| u.groups_of(self.user))
            })
            .as_deref()
            .map_err(Clone::clone)
    }

    fn contains_any(&self, names: &[twofold_config::Name]) -> Result<bool, LookupError> {
        let groups = self.get()?;
        Ok(names.iter().any(|n| groups.contains(&n.0)))
    }
}

/// Whether `user` must use a second factor. Decided only on groups actually looked up.
pub fn in_scope(scope: &ScopeConfig, user: &str, groups: &Groups<'_>) -> Result<bool, LookupError> {
    if scope.exempt_users.iter().any(|n| n.0 == user) {
        return Ok(false);
    }
    if scope.groups.is_empty() && scope.exempt_groups.is_empty() {
        return Ok(true);
    }
    if groups.contains_any(&scope.exempt_groups)? {
        return Ok(false);
    }
    Ok(scope.groups.is_empty() || groups.contains_any(&scope.groups)?)
}

/// When enrolment becomes mandatory for `user`: the latest of the global deadline and the
/// deferrals of the user and their groups. None when none applies.
pub fn deadline_for(
    global: Option<i64>,
    deferrals: &[Deferral],
    user: &str,
    groups: &Groups<'_>,
) -> Result<Option<i64>, LookupError> {
    let mut latest = global;
    for d in deferrals {
        let applies = match d.subject.strip_prefix('@') {
            Some(g) => groups.get()?.iter().any(|x| x == g),
            None => d.subject == user,
        };
        if applies {
            latest = latest.max(Some(d.until));
        }
    }
    Ok(latest)
}

/// The last second humantime can print (9999-12-31T23:59:59Z); beyond it it panics.
pub const LAST_PRINTABLE: i64 = 253_402_300_799;

/// `2027-01-31` (UTC); instants outside 1970..=9999 print as the nearest end.
pub fn date_of(t: i64) -> String {
    let t =
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.clamp(0, LAST_PRINTABLE) as u64);
    humantime::format_rfc3339_seconds(t).to_string()[..10].to_string()
}

pub fn reminder(user: &str, deadline: i64, now: i64) -> String {
    let days = (deadline - now + 86399) / 86400;
    format!(
        "Two-factor authentication becomes mandatory on {} (UTC); {days} day(s) left. Enrol now with `twofoldctl enrol {user}` or ask your administrator.",
        date_of(deadline)
    )
}

pub fn overdue(user: &str, deadline: i64) -> String {
    format!(
        "Two-factor authentication has been mandatory since {} and {user} has not enrolled. Ask your administrator to enrol you (twofoldctl enrol {user}).",
        date_of(deadline)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use twofold_config::Name;

    fn names(v: &[&str]) -> Vec<Name> {
        v.iter().map(|s| Name(s.to_string())).collect()
    }

    fn g<'a>(user: &'a str, names: &[&str]) -> Groups<'a> {
        Groups::known(user, names.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn scope_follows_groups_and_exemptions() {
        let everyone = ScopeConfig::default();
        assert!(in_scope(&everyone, "alice", &g("alice", &[])).unwrap());
        let staff = ScopeConfig {
            groups: names(&["staff"]),
            exempt_users: names(&["svc"]),
            exempt_groups: names(&["robots"]),
        };
        assert!(in_scope(&staff, "alice", &g("alice", &["staff"])).unwrap());
        assert!(!in_scope(&staff, "bob", &g("bob", &["users"])).unwrap());
        assert!(!in_scope(&staff, "svc", &g("svc", &["staff"])).unwrap());
        assert!(!in_scope(&staff, "carol", &g("carol", &["staff", "robots"])).unwrap());
    }

    #[test]
    fn groups_are_looked_up_only_when_a_rule_needs_them() {
        let lazy = Groups {
            user: "alice",
            users: None,
            names: OnceCell::new(),
        };
        assert!(in_scope(&ScopeConfig::default(), "alice", &lazy).unwrap());
        assert_eq!(deadline_for(Some(5), &[], "alice", &lazy), Ok(Some(5)));
        assert!(
            lazy.names.get().is_none(),
            "groups were looked up needlessly"
        );
    }

    #[test]
    fn the_latest_applicable_deadline_wins() {
        let d = |s: &str, until| Deferral {
            subject: s.into(),
            until,
            reason: String::new(),
            created_at: 0,
            created_by: 0,
        };
        let list = [d("alice", 300), d("@staff", 500), d("bob", 900)];
        assert_eq!(
            deadline_for(Some(100), &list, "alice", &g("alice", &[])),
            Ok(Some(300))
        );
        assert_eq!(
            deadline_for(Some(100), &list, "alice", &g("alice", &["staff"])),
            Ok(Some(500))
        );
        assert_eq!(
            deadline_for(None, &list, "carol", &g("carol", &[])),
            Ok(None)
        );
        assert_eq!(
            deadline_for(Some(100), &[], "carol", &g("carol", &[])),
            Ok(Some(100))
        );
    }

    #[test]
    fn messages_name_the_date_and_days_left() {
        let deadline = 1_801_353_600; // 2027-01-31
        let text = reminder("alice", deadline, deadline - 86400 * 3 - 5);
        assert!(
            text.contains("2027-01-31") && text.contains("4 day(s) left"),
            "{text}"
        );
        assert!(reminder("alice", deadline, deadline - 10).contains("1 day(s) left"));
        assert!(overdue("alice", deadline).contains("since 2027-01-31"));
    }

    #[test]
    fn any_instant_prints_without_panicking() {
        assert_eq!(date_of(i64::MAX), "9999-12-31");
        assert_eq!(date_of(i64::MIN), "1970-01-01");
    }
}
