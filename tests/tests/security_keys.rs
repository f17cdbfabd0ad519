//! `[policy.sshd] accept_security_keys` through the real module and libpam: an sshd-like
//! transaction (root, service sshd, SSH_AUTH_INFO_0 as sshd writes it) whose key is a
//! FIDO2 security key passes without a code only with the policy on and the key
//! registered (`twofoldctl user set USER --security-key`). (No real FIDO2
//! token exists on these machines, so sshd itself is not in this test: the key record is
//! the line sshd would pass.)

use twofold_integration::*;

/// `publickey sk-ssh-ed25519@openssh.com BLOB`, the blob in SSH's wire format.
fn security_key_line() -> String {
    let mut b = Vec::new();
    for part in [
        b"sk-ssh-ed25519@openssh.com".as_slice(),
        &[9u8; 32],
        b"ssh:",
    ] {
        b.extend_from_slice(&(part.len() as u32).to_be_bytes());
        b.extend_from_slice(part);
    }
    format!(
        "publickey sk-ssh-ed25519@openssh.com {}",
        data_encoding::BASE64.encode(&b)
    )
}

#[test]
#[cfg_attr(
    not(as_root),
    ignore = "needs root: the login must come from root, as sshd's"
)]
fn a_security_key_login_passes_without_a_code_only_with_the_policy_on_and_the_key_registered() {
    let line = security_key_line();
    let fingerprint = twofold_daemon::identity::ssh_key_fingerprint(&line).unwrap();
    const ON: &str = "[policy.sshd]\naccept_security_keys = true\n";
    for (policy, registered, passes) in [("", true, false), (ON, false, false), (ON, true, true)] {
        let w = World::start(policy);
        w.write_service("sshd", &w.module_line(""));
        w.enrol(me());
        if registered {
            let out = w.ctl(&["user", "set", me(), "--security-key", &fingerprint], "");
            assert!(out.status.success(), "{}", combined(&out));
        }
        let login = ssh_transaction("sshd", me(), &line, &[]);
        let (rc, conv) = first_outcome(&w.pam_inprocess(&[login], &[]));
        if passes {
            assert!(rc == 0 && conv.is_empty(), "{rc} {conv:?}");
        } else {
            assert!(
                rc != 0 && conv.iter().any(|c| c.contains("Verification code")),
                "policy {policy:?}, registered {registered}: {rc} {conv:?}"
            );
        }
    }
    println!(
        "proved: a security key's login passes sshd's stack without a code only with accept_security_keys and the key registered"
    );
}
