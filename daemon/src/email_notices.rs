//! The e-mail adapter of the [`Notifier`] port: each notice becomes a short plain-text
//! message to the address an administrator set, sent by a task of its own through a
//! [`Mailer`], so that no login waits for a mail server. The queue is bounded, and so is
//! what one user can be sent in an hour (anyone who knows a name can lock it).

use crate::mail::{Mail, Mailer};
use crate::notify::{Change, Notice, Notifier};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Notices waiting for the mail server, at most.
const QUEUE: usize = 256;
/// Notices one user is sent per hour, at most; further ones are dropped (and said so).
pub const PER_USER_PER_HOUR: u32 = 10;
/// Users whose hourly counts are kept, at most (the table is cleared when full).
const COUNTED_USERS: usize = 10_000;

pub struct EmailNotifier {
    queue: tokio::sync::mpsc::Sender<Notice>,
    sent: Mutex<HashMap<String, (Instant, u32)>>,
}

impl EmailNotifier {
    /// Starts the sending task on the current tokio runtime.
    pub fn start(mailer: Arc<dyn Mailer>) -> EmailNotifier {
        let (queue, mut waiting) = tokio::sync::mpsc::channel::<Notice>(QUEUE);
        tokio::spawn(async move {
            while let Some(notice) = waiting.recv().await {
                let mail = message(&notice);
                if let Err(e) = mailer.send(&mail).await {
                    eprintln!(
                        "twofoldd: a notice to user {:?} was not sent: {e}",
                        notice.user
                    );
                }
            }
        });
        EmailNotifier {
            queue,
            sent: Mutex::default(),
        }
    }

    /// Counts a notice for `user`; false beyond [`PER_USER_PER_HOUR`].
    fn allowed(&self, user: &str) -> bool {
        let now = crate::clock::monotonic();
        let Ok(mut sent) = self.sent.lock() else {
            return false;
        };
        if sent.len() >= COUNTED_USERS && !sent.contains_key(user) {
            sent.clear();
        }
        let entry = sent.entry(user.to_owned()).or_insert((now, 0));
        if now.duration_since(entry.0) >= Duration::from_secs(3600) {
            *entry = (now, 0);
        }
        entry.1 += 1;
        entry.1 <= PER_USER_PER_HOUR
    }
}

impl Notifier for EmailNotifier {
    fn notify(&self, notice: Notice) {
        if !self.allowed(&notice.user) {
            eprintln!(
                "twofoldd: more than {PER_USER_PER_HOUR} notices for user {:?} this hour; this one is dropped",
                notice.user
            );
            return;
        }
        if self.queue.try_send(notice).is_err() {
            eprintln!("twofoldd: the notice queue is full; a notice was dropped");
        }
    }
}

/// What the user reads.
pub fn message(n: &Notice) -> Mail {
    let (what, sentence) = match n.change {
        Change::SecretIssued => (
            "new secret issued",
            "A new authenticator secret was issued for your account.",
        ),
        Change::FactorActivated => (
            "authenticator confirmed",
            "Your authenticator app was confirmed and is now your second factor.",
        ),
        Change::FactorRemoved => (
            "second factor removed",
            "Your second factor was removed: your next login asks you to enrol again.",
        ),
        Change::Locked => (
            "account locked",
            "Your account was locked after too many wrong codes.",
        ),
        Change::Unlocked => ("account unlocked", "The lock on your account was lifted."),
        Change::TrustRevoked => (
            "trust revoked",
            "Trusted sessions or remembered devices of your account were revoked.",
        ),
        Change::DeviceRemembered => (
            "device remembered",
            "A device was remembered for your account: it is not asked for a code for a while.",
        ),
        Change::EmailChanged => (
            "notice address changed",
            "The e-mail address for your two-factor notices was changed.",
        ),
        Change::PhoneChanged => (
            "phone number changed",
            "The phone number your login codes are texted to was changed or removed.",
        ),
        Change::RecoveryCodeUsed => (
            "recovery code used",
            "One of your recovery codes was used to log in; it no longer works.",
        ),
        Change::RecoveryCodesIssued => (
            "new recovery codes",
            "New recovery codes were issued for your account; the old ones no longer work.",
        ),
        Change::SecurityKeysChanged => (
            "security keys changed",
            "The security keys that may stand in for a code over SSH were changed.",
        ),
        Change::GraceChanged => (
            "enrolment deadline changed",
            "The date by which you must set up your second factor was changed.",
        ),
    };
    let when = std::time::UNIX_EPOCH + Duration::from_secs(u64::try_from(n.at).unwrap_or(0));
    Mail {
        to: n.to.clone(),
        subject: format!("{}: {what} for {}", n.host, n.user),
        body: format!(
            "Hello {user},\n\n{sentence}\n\nWhen:  {when} (UTC)\nHost:  {host}\nHow:   {detail}\n\n\
             If this was not you, tell your administrator at once.\n\n-- twofold on {host}\n",
            user = n.user,
            when = humantime::format_rfc3339_seconds(when),
            host = n.host,
            detail = n.detail,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::{MailError, Sending};

    /// Keeps what it was asked to send.
    #[derive(Default)]
    struct Outbox(Mutex<Vec<Mail>>);

    impl Mailer for Outbox {
        fn send<'a>(&'a self, mail: &'a Mail) -> Sending<'a> {
            self.0.lock().unwrap().push(mail.clone());
            Box::pin(async { Ok::<(), MailError>(()) })
        }
    }

    fn notice(user: &str, change: Change) -> Notice {
        Notice {
            user: user.into(),
            to: format!("{user}@example.org"),
            change,
            at: 1_800_000_000,
            host: "host1".into(),
            detail: "sshd login from 192.0.2.7".into(),
        }
    }

    #[test]
    fn a_notice_says_what_when_where_and_what_to_do() {
        let m = message(&notice("alice", Change::Locked));
        assert_eq!(m.to, "alice@example.org");
        assert_eq!(m.subject, "host1: account locked for alice");
        for part in [
            "Hello alice,",
            "locked after too many wrong codes",
            "2027-01-15T08:00:00Z",
            "sshd login from 192.0.2.7",
            "tell your administrator",
        ] {
            assert!(m.body.contains(part), "{part:?} in {}", m.body);
        }
    }

    #[tokio::test]
    async fn one_user_is_sent_at_most_ten_an_hour_and_others_still_get_theirs() {
        let outbox = Arc::new(Outbox::default());
        let n = EmailNotifier::start(outbox.clone());
        for _ in 0..25 {
            n.notify(notice("eve", Change::Locked));
        }
        n.notify(notice("bob", Change::Unlocked));
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        let sent = outbox.0.lock().unwrap();
        let to_eve = sent.iter().filter(|m| m.to == "eve@example.org").count();
        assert_eq!(to_eve, PER_USER_PER_HOUR as usize);
        assert!(sent.iter().any(|m| m.to == "bob@example.org"));
    }
}
