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

#[test]
fn a_security_key_passes_sshd_without_a_code_only_with_the_policy_on() {
    let on = fixture_with("version = 1\n[policy.sshd]\naccept_security_keys = true\n");
    on.enrol("alice");
    assert!(on.passes_without_code(&root(), sk_login("alice", SK, SK)));
    assert!(
        on.reasons()
            .iter()
            .any(|r| r.starts_with("security key SHA256:") && r.contains("accept_security_keys")),
        "{:?}",
        on.reasons()
    );
    let ecdsa = "sk-ecdsa-sha2-nistp256@openssh.com";
    assert!(on.passes_without_code(&root(), sk_login("alice", ecdsa, ecdsa)));

    // Off by default.
    let off = fixture();
    off.enrol("alice");
    assert!(!off.passes_without_code(&root(), sk_login("alice", SK, SK)));
}

#[test]
fn an_ordinary_key_a_forged_line_or_a_non_root_caller_is_asked_for_the_code() {
    let f = fixture_with(
        "version = 1\n[lockout]\nmax_failures = 3\nsource_failures = 100\n[policy.sshd]\naccept_security_keys = true\n",
    );
    f.enrol("alice");
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
