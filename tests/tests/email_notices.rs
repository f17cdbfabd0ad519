//! Notices by e-mail, end to end: twofoldd with `[smtp]` pointing at a real SMTP server
//! (aiosmtpd), an administrator setting a user's address with `twofoldctl user set`, and
//! the user told by mail when the address is set, a secret issued and the factor reset;
//! no secret in any message. Only an administrator may set an address.

use twofold_integration::smtp::start;
use twofold_integration::*;

#[test]
fn a_users_factor_changes_reach_their_mailbox_and_no_secret_does() {
    let mail_dir = tempfile::tempdir().unwrap();
    let server = start(mail_dir.path(), None);
    let w = World::start(&format!(
        "[smtp]\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"none\"\nfrom = \"twofold <twofold@test.example>\"\n",
        server.port
    ));
    let user = me();
    let address = "person@example.org";
    let out = w.ctl(&["user", "set", user, "--email", address], "");
    assert!(out.status.success(), "{}", combined(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("e-mail address set"));
    let secret = w.enrol(user);
    let out = w.ctl(&["reset", user], "");
    assert!(out.status.success(), "{}", combined(&out));

    let got = server.wait_for(3);
    assert_eq!(got.len(), 3, "{got:#?}");
    for what in [
        "notice address changed",
        "new secret issued",
        "second factor removed",
    ] {
        let subject = format!("{what} for {user}");
        assert!(
            got.iter().any(|m| m.contains(&subject)),
            "no mail with {subject:?}: {got:#?}"
        );
    }
    for m in &got {
        assert!(m.contains(&format!("To: {address}")), "{m}");
        assert!(!m.contains(&secret), "a secret went out by mail: {m}");
    }
    // Removing the address tells it once more, then nothing goes out.
    let out = w.ctl(&["user", "set", user, "--no-email"], "");
    assert!(out.status.success(), "{}", combined(&out));
    w.enrol(user);
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(server.wait_for(4).len(), 4);
}

#[test]
#[cfg_attr(not(as_root), ignore = "needs root: runs twofoldctl as another user")]
fn only_an_administrator_sets_an_address() {
    ensure_test_users();
    let w = World::start("");
    let out = w.ctl_as(
        Some(USER_A),
        &["user", "set", USER_A, "--email", "a@example.org"],
        "",
    );
    assert_eq!(out.status.code(), Some(4), "{}", combined(&out));
    assert!(
        combined(&out).contains("permission denied"),
        "{}",
        combined(&out)
    );
    let out = w.ctl(
        &["user", "set", USER_A, "--email", "Someone <a@example.org>"],
        "",
    );
    assert!(!out.status.success());
    assert!(
        combined(&out).contains("plain e-mail address"),
        "{}",
        combined(&out)
    );
}
