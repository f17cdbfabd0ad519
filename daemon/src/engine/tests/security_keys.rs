//! `[policy.sshd] accept_security_keys`: an SSH login whose key was a FIDO2 security key
//! passes without a code, only with the policy on, only for root's sshd, and only when
//! the key really is of a security key's type.

use super::*;

/// An SSH public key blob: its type as an SSH string, then `rest` as strings.
fn blob(kind: &str, rest: &[&[u8]]) -> String {
    let mut b = Vec::new();
    for part in std::iter::once(kind.as_bytes()).chain(rest.iter().copied()) {
        b.extend_from_slice(&(part.len() as u32).to_be_bytes());
        b.extend_from_slice(part);
    }
    data_encoding::BASE64.encode(&b)
}

fn sk_login(user: &str, line_kind: &str, blob_kind: &str) -> LoginContext {
    LoginContext {
        ssh_auth_info: format!(
            "publickey {line_kind} {}",
            blob(blob_kind, &[&[7u8; 32], b"ssh:"])
        ),
        ..ctx(user)
    }
}

const SK: &str = "sk-ssh-ed25519@openssh.com";

/// The fingerprint of the key in `sk_login(_, _, kind)`.
fn fingerprint(kind: &str) -> String {
    identity::ssh_key_fingerprint(&sk_login("x", kind, kind).ssh_auth_info).unwrap()
}

fn register(f: &Fixture, user: &str, kinds: &[&str]) {
    let prints: Vec<String> = kinds.iter().map(|k| fingerprint(k)).collect();
    f.engine.set_security_keys(&root(), user, &prints).unwrap();
}

#[test]
fn a_registered_security_key_passes_sshd_without_a_code_only_with_the_policy_on() {
    let on = fixture_with("version = 1\n[policy.sshd]\naccept_security_keys = true\n");
    on.enrol("alice");
    // Not registered: a key made in software passes sshd's check just as well.
    assert!(!on.passes_without_code(&root(), sk_login("alice", SK, SK)));
    let ecdsa = "sk-ecdsa-sha2-nistp256@openssh.com";
    register(&on, "alice", &[SK, ecdsa]);
    assert!(on.passes_without_code(&root(), sk_login("alice", SK, SK)));
    assert!(
        on.reasons()
            .iter()
            .any(|r| r.starts_with("registered security key SHA256:")),
        "{:?}",
        on.reasons()
    );
    assert!(on.passes_without_code(&root(), sk_login("alice", ecdsa, ecdsa)));
    // bob's login with alice's key.
    on.enrol("bob");
    assert!(!on.passes_without_code(&root(), sk_login("bob", SK, SK)));
    // Removed: asked again.
    on.engine.set_security_keys(&root(), "alice", &[]).unwrap();
    assert!(!on.passes_without_code(&root(), sk_login("alice", SK, SK)));

    // Off by default, registered or not.
    let off = fixture();
    off.enrol("alice");
    register(&off, "alice", &[SK]);
    assert!(!off.passes_without_code(&root(), sk_login("alice", SK, SK)));
}

#[test]
fn only_an_administrator_registers_keys_and_only_fingerprints() {
    let f = fixture();
    let alice = as_uid(1000, ":1.9");
    assert!(matches!(
        f.engine
            .set_security_keys(&alice, "alice", &[fingerprint(SK)]),
        Err(ApiError::PermissionDenied(_))
    ));
    for bad in [
        "SHA256:short",
        "MD5:aa:bb",
        "SHA256:AL3yRe+UsG8huS/PWJWLy5jlvqZVfuQi6lknuItswG\n",
    ] {
        assert!(
            matches!(
                f.engine
                    .set_security_keys(&root(), "alice", &[bad.to_string()]),
                Err(ApiError::InvalidInput(_))
            ),
            "{bad:?}"
        );
    }
    let many = vec![fingerprint(SK); 11];
    assert!(matches!(
        f.engine.set_security_keys(&root(), "alice", &many),
        Err(ApiError::InvalidInput(_))
    ));
}

#[test]
fn an_ordinary_key_a_forged_line_or_a_non_root_caller_is_asked_for_the_code() {
    let f = fixture_with(
        "version = 1\n[lockout]\nmax_failures = 3\nsource_failures = 100\n[policy.sshd]\naccept_security_keys = true\n",
    );
    f.enrol("alice");
    register(&f, "alice", &[SK, "ssh-ed25519"]);
    // An unenrolled name with a registered key is not let in by it either.
    register(&f, "bob", &[SK]);
    assert!(!f.passes_without_code(&root(), sk_login("bob", SK, SK)));
    // An ordinary key.
    assert!(!f.passes_without_code(&root(), sk_login("alice", "ssh-ed25519", "ssh-ed25519")));
    // The line names a security key, the blob is an ordinary one.
    assert!(!f.passes_without_code(&root(), sk_login("alice", SK, "ssh-ed25519")));
    // The user's own process can write any SSH_AUTH_INFO_0 it likes.
    let alice = as_uid(1000, ":1.9");
    assert!(!f.passes_without_code(&alice, sk_login("alice", SK, SK)));
    // Not sshd: sudo with the same text in its environment.
    let sudo_with_key = LoginContext {
        service: "sudo".into(),
        ..sk_login("alice", SK, SK)
    };
    assert!(!f.passes_without_code(&root(), sudo_with_key));
    // A locked account stays locked.
    f.login("alice", &["000000", "000001", "000002"]);
    let (_, step) = f.engine.begin(&root(), sk_login("alice", SK, SK)).unwrap();
    assert_eq!(step.action, Action::Denied, "{step:?}");
}
