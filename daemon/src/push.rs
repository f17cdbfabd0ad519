//! Push approval speaks the protocol of the privacyIDEA Authenticator's poll-only push
//! token, so the real phone app works unchanged (docs/push.md). This module holds that
//! protocol's cryptography and signed strings, as privacyIDEA 3.14 and the app 4.8 build
//! them: RSASSA-PKCS1-v1_5 with SHA-256 (ring), signatures in padded upper-case base32,
//! the phone's key as base64 SubjectPublicKeyInfo, ours as base64 PKCS#1.
//!
//! ring cannot make RSA keys, so the server's key is made once by `openssl genpkey`
//! (a fixed path, an empty environment, a time limit), then only ring touches it.

use crate::random::Random;
use data_encoding::{BASE32, BASE32_NOPAD, BASE64, HEXLOWER};
use ring::signature::{self, RsaKeyPair};
use std::time::Duration;

/// The server key's size, as privacyIDEA's.
const SERVER_KEY_BITS: u32 = 4096;
const OPENSSL: &str = "/usr/bin/openssl";
/// `openssl genpkey` for 4096 bits takes about a second here, rarely several.
const KEYGEN_LIMIT: Duration = Duration::from_secs(60);
/// The phone keys accepted (ring verifies 2048 to 8192 bits; the app makes 4096).
const PHONE_KEY_MAX_TEXT: usize = 2048;
/// A poll's timestamp may be this far from now, either way (privacyIDEA's window).
pub const POLL_WINDOW_SECONDS: i64 = 60;
/// The firebase-token update's window (the app sends one on "sync").
pub const UPDATE_WINDOW_SECONDS: i64 = 300;

/// twofoldd's signing key for the challenges it shows phones.
pub struct ServerKey {
    pair: RsaKeyPair,
    /// PKCS#1 RSAPrivateKey DER, as stored.
    der: Vec<u8>,
}

impl std::fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerKey(..)")
    }
}

impl ServerKey {
    /// A new 4096-bit key from `openssl genpkey`.
    pub fn generate() -> Result<ServerKey, String> {
        ServerKey::from_der(&generate_rsa_der(SERVER_KEY_BITS)?)
    }

    /// The key stored earlier (PKCS#1 DER).
    pub fn from_der(der: &[u8]) -> Result<ServerKey, String> {
        let pair = RsaKeyPair::from_der(der)
            .map_err(|e| format!("the push signing key is unusable: {e}"))?;
        Ok(ServerKey {
            pair,
            der: der.to_vec(),
        })
    }

    /// What is stored (secret: the database's protection is its protection).
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The public key as the enrolment's answer carries it (`detail.public_key`): base64
    /// of the PKCS#1 RSAPublicKey DER in lines of 64, without PEM lines.
    pub fn public_key_text(&self) -> String {
        let text = BASE64.encode(self.pair.public().as_ref());
        text.as_bytes()
            .chunks(64)
            .map(|line| String::from_utf8_lossy(line).into_owned())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// `message` signed, in padded base32.
    pub fn sign(&self, message: &str) -> Result<String, String> {
        let mut sig = vec![0u8; self.pair.public().modulus_len()];
        self.pair
            .sign(
                &signature::RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                message.as_bytes(),
                &mut sig,
            )
            .map_err(|_| "signing failed".to_owned())?;
        Ok(BASE32.encode(&sig))
    }
}

/// A new RSA key of `bits` from `openssl genpkey`, as PKCS#1 DER (OpenSSL 3's output
/// for `-outform DER`). Nothing from twofoldd's environment reaches the program.
pub fn generate_rsa_der(bits: u32) -> Result<Vec<u8>, String> {
    let mut child = std::process::Command::new(OPENSSL)
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-outform",
            "DER",
            "-pkeyopt",
        ])
        .arg(format!("rsa_keygen_bits:{bits}"))
        .env_clear()
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run {OPENSSL} to make the push signing key: {e}"))?;
    let mut stdout = child.stdout.take().ok_or("no output from openssl")?;
    let reader = std::thread::spawn(move || {
        let mut der = Vec::new();
        std::io::Read::read_to_end(&mut std::io::Read::take(&mut stdout, 64 * 1024), &mut der)
            .map(|_| der)
    });
    let started = crate::clock::monotonic();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() < KEYGEN_LIMIT => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{OPENSSL} genpkey took more than {KEYGEN_LIMIT:?}; stopped"
                ));
            }
            Err(e) => return Err(format!("waiting for {OPENSSL}: {e}")),
        }
    };
    let der = reader
        .join()
        .map_err(|_| "reading openssl's output failed".to_owned())?
        .map_err(|e| format!("reading openssl's output: {e}"))?;
    if !status.success() || der.is_empty() {
        return Err(format!("{OPENSSL} genpkey failed ({status})"));
    }
    Ok(der)
}

/// A phone's public key, as PKCS#1 RSAPublicKey DER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneKey(Vec<u8>);

impl PhoneKey {
    /// The `pubkey` of the enrolment's second step: base64 (standard or URL-safe, a space
    /// for a `+` that a form decoder turned into one) of a SubjectPublicKeyInfo for RSA.
    pub fn from_enrolment(text: &str) -> Result<PhoneKey, String> {
        if text.len() > PHONE_KEY_MAX_TEXT {
            return Err("the public key is too long".into());
        }
        let normal: String = text
            .trim()
            .chars()
            .filter(|c| *c != '\n' && *c != '\r')
            .map(|c| match c {
                '-' | ' ' => '+',
                '_' => '/',
                c => c,
            })
            .collect();
        let der = BASE64
            .decode(normal.as_bytes())
            .map_err(|_| "the public key is not base64".to_owned())?;
        let spki = spki::SubjectPublicKeyInfoRef::try_from(der.as_slice())
            .map_err(|_| "the public key is not a SubjectPublicKeyInfo".to_owned())?;
        // rsaEncryption, 1.2.840.113549.1.1.1.
        if spki.algorithm.oid != spki::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1") {
            return Err("the public key is not an RSA key".into());
        }
        let pkcs1 = spki
            .subject_public_key
            .as_bytes()
            .ok_or("the public key's bits are not whole bytes")?
            .to_vec();
        let key = PhoneKey(pkcs1);
        // ring checks the size (2048 to 8192 bits) and the form when it verifies; a
        // key it cannot use is refused now, not at the first login.
        let bits = key
            .modulus_bits()
            .ok_or("the RSA public key cannot be read")?;
        if !(2048..=8192).contains(&bits) {
            return Err(format!(
                "an RSA key of {bits} bits (2048 to 8192 are accepted)"
            ));
        }
        Ok(key)
    }

    /// As stored: the PKCS#1 DER.
    pub fn from_stored(der: &[u8]) -> PhoneKey {
        PhoneKey(der.to_vec())
    }

    pub fn der(&self) -> &[u8] {
        &self.0
    }

    /// The modulus size: PKCS#1's `SEQUENCE { modulus INTEGER, publicExponent INTEGER }`.
    fn modulus_bits(&self) -> Option<usize> {
        use spki::der::{Decode, Reader, SliceReader, asn1::UintRef};
        let mut reader = SliceReader::new(&self.0).ok()?;
        let n = reader
            .sequence(|seq| {
                let n = UintRef::decode(seq)?;
                UintRef::decode(seq)?;
                Ok(n.as_bytes().to_vec())
            })
            .ok()?;
        reader.finish(()).ok()?;
        let first = *n.first()?;
        Some(n.len() * 8 - first.leading_zeros() as usize)
    }

    /// Whether `signature` (base32, padded or not, either case) is this key's over
    /// `message`. Every failure is the same false.
    pub fn verifies(&self, message: &str, signature: &str) -> bool {
        let Some(sig) = base32(signature) else {
            return false;
        };
        signature::UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, &self.0)
            .verify(message.as_bytes(), &sig)
            .is_ok()
    }
}

/// Base32 as phones send it: padded upper case; lenient on padding and case.
fn base32(text: &str) -> Option<Vec<u8>> {
    if text.len() > 2048 {
        return None;
    }
    let upper = text.trim().trim_end_matches('=').to_ascii_uppercase();
    BASE32_NOPAD.decode(upper.as_bytes()).ok()
}

/// What the server signs for one challenge: `nonce|url|serial|question|title|sslverify`,
/// and `|A,B,C` with number matching.
pub fn challenge_message(
    nonce: &str,
    url: &str,
    serial: &str,
    question: &str,
    title: &str,
    options: &[String],
) -> String {
    // sslverify is always "1": the app then verifies twofold-push's certificate.
    let mut message = format!("{nonce}|{url}|{serial}|{question}|{title}|1");
    if !options.is_empty() {
        message.push('|');
        message.push_str(&options.join(","));
    }
    message
}

/// What a phone signs to poll: `serial|timestamp`, the timestamp as sent.
pub fn poll_message(serial: &str, timestamp: &str) -> String {
    format!("{serial}|{timestamp}")
}

/// What a phone signs to answer: `nonce|serial`, then `|decline` (and its reason), then
/// the number it pressed.
pub fn answer_message(
    nonce: &str,
    serial: &str,
    decline: bool,
    decline_reason: Option<&str>,
    presence_answer: Option<&str>,
) -> String {
    let mut message = format!("{nonce}|{serial}");
    if decline {
        message.push_str("|decline");
        if let Some(reason) = decline_reason.filter(|r| !r.is_empty()) {
            message.push('|');
            message.push_str(reason);
        }
    }
    if let Some(answer) = presence_answer.filter(|a| !a.is_empty()) {
        message.push('|');
        message.push_str(answer);
    }
    message
}

/// What a phone signs to say its (absent) Firebase token changed.
pub fn update_message(new_token: &str, serial: &str, timestamp: &str) -> String {
    format!("{new_token}|{serial}|{timestamp}")
}

/// The Unix time of an ISO 8601 timestamp as phones send it (`2026-12-03T21:26:09.125Z`,
/// with an offset, or none: UTC).
pub fn timestamp(text: &str) -> Option<i64> {
    use time::format_description::well_known::Iso8601;
    if text.len() > 64 {
        return None;
    }
    if let Ok(t) = time::OffsetDateTime::parse(text, &Iso8601::DEFAULT) {
        return Some(t.unix_timestamp());
    }
    time::PrimitiveDateTime::parse(text, &Iso8601::DEFAULT)
        .ok()
        .map(|t| t.assume_utc().unix_timestamp())
}

/// Whether `text` is a timestamp within `window` seconds of `now`, either way.
pub fn timely(text: &str, now: i64, window: i64) -> bool {
    timestamp(text).is_some_and(|t| (t - now).abs() <= window)
}

/// A challenge's nonce: 20 random bytes in base32 (32 characters, as privacyIDEA's).
pub fn nonce(random: &dyn Random) -> Result<String, String> {
    let mut bytes = [0u8; 20];
    random.fill(&mut bytes)?;
    Ok(BASE32_NOPAD.encode(&bytes))
}

/// An enrolment credential: 20 random bytes in lower-case hex (40 characters).
pub fn enrolment_credential(random: &dyn Random) -> Result<String, String> {
    let mut bytes = [0u8; 20];
    random.fill(&mut bytes)?;
    Ok(HEXLOWER.encode(&bytes))
}

/// Number matching: three distinct two-digit numbers (`00`..`99`, in random order) and
/// which one is right.
pub fn presence_options(random: &dyn Random) -> Result<(Vec<String>, usize), String> {
    let mut options: Vec<String> = Vec::with_capacity(3);
    while options.len() < 3 {
        let n = uniform(random, 100)?;
        let option = format!("{n:02}");
        if !options.contains(&option) {
            options.push(option);
        }
    }
    let right = uniform(random, 3)? as usize;
    Ok((options, right))
}

/// A uniform number below `bound` (rejection sampling: no modulo bias).
fn uniform(random: &dyn Random, bound: u32) -> Result<u32, String> {
    let zone = u32::MAX - u32::MAX % bound;
    loop {
        let mut b = [0u8; 4];
        random.fill(&mut b)?;
        let v = u32::from_le_bytes(b);
        if v < zone {
            return Ok(v % bound);
        }
    }
}

/// The link the QR code holds (`otpauth://pipush/…`), as privacyIDEA builds it for a
/// poll-only token; every value percent-encoded.
pub fn enrolment_link(
    label: &str,
    url: &str,
    ttl_minutes: u32,
    issuer: &str,
    credential: &str,
    serial: &str,
) -> String {
    format!(
        "otpauth://pipush/{}?url={}&ttl={ttl_minutes}&issuer={}&enrollment_credential={credential}&v=1&serial={}&sslverify=1&poll_only=True",
        percent(label),
        percent(url),
        percent(issuer),
        percent(serial)
    )
}

/// RFC 3986: everything but the unreserved characters escaped.
fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Whether `url` is in the form the app re-creates before it checks our signature (it
/// signs `Uri.parse(url).toString()`): https, lower-case host, no default port, a path,
/// no query, fragment, user or percent escape.
pub fn canonical_url(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("https://") else {
        return false;
    };
    let Some((authority, path)) = rest.split_once('/') else {
        return false;
    };
    let host = authority.rsplit_once(':').map_or(authority, |(h, p)| {
        if p == "443" || p.is_empty() { "" } else { h }
    });
    !host.is_empty()
        && authority
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.:".contains(&b))
        && !path.is_empty()
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~/".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::OsRandom;

    /// A phone's key pair for the tests (2048 bits: fast to make).
    fn phone() -> (RsaKeyPair, String) {
        let der = generate_rsa_der(2048).expect("openssl");
        let pair = RsaKeyPair::from_der(&der).unwrap();
        let spki = spki_of(pair.public().as_ref());
        (pair, BASE64.encode(&spki))
    }

    /// A SubjectPublicKeyInfo around a PKCS#1 key, as the app sends it.
    fn spki_of(pkcs1: &[u8]) -> Vec<u8> {
        use spki::der::Encode;
        let info = spki::SubjectPublicKeyInfoOwned {
            algorithm: spki::AlgorithmIdentifierOwned {
                oid: spki::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1"),
                parameters: Some(spki::der::asn1::Null.into()),
            },
            subject_public_key: spki::der::asn1::BitString::from_bytes(pkcs1).unwrap(),
        };
        info.to_der().unwrap()
    }

    fn sign(pair: &RsaKeyPair, message: &str) -> String {
        let mut sig = vec![0u8; pair.public().modulus_len()];
        pair.sign(
            &signature::RSA_PKCS1_SHA256,
            &ring::rand::SystemRandom::new(),
            message.as_bytes(),
            &mut sig,
        )
        .unwrap();
        BASE32.encode(&sig)
    }

    #[test]
    fn a_phone_s_key_is_read_in_every_form_the_app_and_privacyidea_use() {
        let (pair, text) = phone();
        let key = PhoneKey::from_enrolment(&text).unwrap();
        assert_eq!(key.der(), pair.public().as_ref());
        let url_safe = text.replace('+', "-").replace('/', "_");
        assert_eq!(PhoneKey::from_enrolment(&url_safe).unwrap(), key);
        let spaced = text.replace('+', " ");
        assert_eq!(PhoneKey::from_enrolment(&spaced).unwrap(), key);
        // PKCS#1 where SPKI is due, not base64, too long, or too small: refused.
        let pkcs1 = BASE64.encode(pair.public().as_ref());
        for bad in [pkcs1.as_str(), "not base64!", &"A".repeat(4096)] {
            assert!(PhoneKey::from_enrolment(bad).is_err(), "{bad:.40}");
        }
        // ring will not load a 1024-bit private key: openssl gives its public half.
        let small = generate_rsa_der(1024).unwrap();
        let mut openssl = std::process::Command::new(OPENSSL)
            .args([
                "rsa",
                "-inform",
                "DER",
                "-RSAPublicKey_out",
                "-outform",
                "DER",
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::io::Write::write_all(openssl.stdin.as_mut().unwrap(), &small).unwrap();
        let public = openssl.wait_with_output().unwrap().stdout;
        let e = PhoneKey::from_enrolment(&BASE64.encode(&spki_of(&public))).unwrap_err();
        assert!(e.contains("1024 bits"), "{e}");
    }

    #[test]
    fn a_phone_s_signature_verifies_over_its_message_only() {
        let (pair, text) = phone();
        let key = PhoneKey::from_enrolment(&text).unwrap();
        let message = poll_message("TFPU0001", "2026-12-03T21:26:09.125Z");
        assert_eq!(message, "TFPU0001|2026-12-03T21:26:09.125Z");
        let sig = sign(&pair, &message);
        assert!(sig.ends_with('=') && sig == sig.to_ascii_uppercase());
        assert!(key.verifies(&message, &sig));
        assert!(
            key.verifies(&message, sig.trim_end_matches('=')),
            "padding optional"
        );
        assert!(!key.verifies("TFPU0001|2026-12-03T21:26:10.125Z", &sig));
        assert!(!key.verifies(&message, "AAAA"));
        assert!(!key.verifies(&message, &"A".repeat(100_000)));
        let (other, _) = phone();
        assert!(!key.verifies(&message, &sign(&other, &message)));
    }

    #[test]
    fn the_server_key_signs_what_its_published_public_key_verifies() {
        let key = ServerKey::generate().expect("openssl genpkey");
        let again = ServerKey::from_der(key.der()).unwrap();
        let text = again.public_key_text();
        assert!(text.lines().all(|l| l.len() <= 64), "{text}");
        // The app: strip the newlines, base64, PKCS#1.
        let pkcs1 = BASE64.decode(text.replace('\n', "").as_bytes()).unwrap();
        let options = ["07".to_owned(), "42".to_owned(), "93".to_owned()];
        let message = challenge_message(
            "NONCE",
            "https://push.example.org/ttype/push",
            "TFPU0001",
            "Log in?",
            "twofold",
            &options,
        );
        assert_eq!(
            message,
            "NONCE|https://push.example.org/ttype/push|TFPU0001|Log in?|twofold|1|07,42,93"
        );
        let sig = again.sign(&message).unwrap();
        assert_eq!(sig.len(), 824, "512 bytes in padded base32");
        assert!(PhoneKey::from_stored(&pkcs1).verifies(&message, &sig));
        assert!(!PhoneKey::from_stored(&pkcs1).verifies(&message.replace("42", "43"), &sig));
        assert!(ServerKey::from_der(b"junk").is_err());
        assert_eq!(
            format!("{key:?}"),
            "ServerKey(..)",
            "no key in debug output"
        );
    }

    #[test]
    fn the_answer_s_message_is_built_as_the_app_builds_it() {
        assert_eq!(answer_message("N", "S", false, None, None), "N|S");
        assert_eq!(answer_message("N", "S", false, None, Some("42")), "N|S|42");
        assert_eq!(answer_message("N", "S", true, None, None), "N|S|decline");
        assert_eq!(
            answer_message("N", "S", true, Some("cancelled"), None),
            "N|S|decline|cancelled"
        );
        assert_eq!(
            update_message("no_firebase_token", "S", "T"),
            "no_firebase_token|S|T"
        );
    }

    #[test]
    fn timestamps_in_the_forms_phones_send_and_the_window() {
        let t = 1_796_333_169; // 2026-12-03T21:26:09Z
        for text in [
            "2026-12-03T21:26:09.125Z",
            "2026-12-03T21:26:09.125836Z",
            "2026-12-03T21:26:09.125+00:00",
            "2026-12-03T22:26:09+0100",
            "2026-12-03T21:26:09.125",
        ] {
            assert_eq!(timestamp(text), Some(t), "{text}");
        }
        assert_eq!(timestamp("yesterday"), None);
        assert_eq!(timestamp(&"2".repeat(100)), None);
        assert!(timely("2026-12-03T21:26:09Z", t + 60, POLL_WINDOW_SECONDS));
        assert!(!timely("2026-12-03T21:26:09Z", t + 61, POLL_WINDOW_SECONDS));
        assert!(!timely("2026-12-03T21:26:09Z", t - 61, POLL_WINDOW_SECONDS));
    }

    #[test]
    fn nonces_credentials_and_options_are_random_and_well_formed() {
        let n = nonce(&OsRandom).unwrap();
        assert_eq!(n.len(), 32);
        assert!(
            n.bytes()
                .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
        );
        assert_ne!(n, nonce(&OsRandom).unwrap());
        let c = enrolment_credential(&OsRandom).unwrap();
        assert_eq!(c.len(), 40);
        assert!(
            c.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        let mut right_seen = [0u32; 3];
        for _ in 0..300 {
            let (options, right) = presence_options(&OsRandom).unwrap();
            assert_eq!(options.len(), 3);
            assert!(
                options
                    .iter()
                    .all(|o| o.len() == 2 && o.bytes().all(|b| b.is_ascii_digit()))
            );
            assert!(
                options[0] != options[1] && options[1] != options[2] && options[0] != options[2]
            );
            right_seen[right] += 1;
        }
        assert!(right_seen.iter().all(|n| *n > 50), "{right_seen:?}");
    }

    #[test]
    fn the_enrolment_link_is_privacyidea_s_poll_only_link() {
        let link = enrolment_link(
            "alice@host1",
            "https://push.example.org/ttype/push",
            10,
            "twofold",
            "0123456789abcdef0123456789abcdef01234567",
            "TFPU0001",
        );
        assert_eq!(
            link,
            "otpauth://pipush/alice%40host1?url=https%3A%2F%2Fpush.example.org%2Fttype%2Fpush&ttl=10&issuer=twofold&enrollment_credential=0123456789abcdef0123456789abcdef01234567&v=1&serial=TFPU0001&sslverify=1&poll_only=True"
        );
    }

    #[test]
    fn only_a_url_the_app_would_not_rewrite_is_canonical() {
        assert!(canonical_url("https://push.example.org/ttype/push"));
        assert!(canonical_url("https://push.example.org:8443/ttype/push"));
        for bad in [
            "http://push.example.org/ttype/push",
            "https://Push.example.org/ttype/push",
            "https://push.example.org:443/ttype/push",
            "https://push.example.org",
            "https://push.example.org/",
            "https://push.example.org/a%20b",
            "https://push.example.org/p?x=1",
            "https://user@push.example.org/p",
        ] {
            assert!(!canonical_url(bad), "{bad}");
        }
    }
}
