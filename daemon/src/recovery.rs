//! Recovery codes: ten single-use codes for the day the phone is lost, given at
//! enrolment (and by `twofoldctl recovery USER --regenerate`) and shown once. A code is
//! 16 characters of Crockford base32 in four groups, `K7QF-3M2X-9TZA-H4WP`: the first
//! group names the code (stored as it is, so one login checks one hash), the other 60
//! bits are the secret, stored as a salted Argon2id hash.

use crate::otp::constant_time_eq;
use crate::random::Random;
use argon2::{Algorithm, Argon2, Params, Version};

/// Codes issued at once.
pub const CODES: usize = 10;
/// Crockford's base32: no I, L, O or U, so nothing reads as another character.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const GROUP: usize = 4;
const LENGTH: usize = 4 * GROUP;
/// OWASP's minimum for Argon2id: 19 MiB, 2 passes, 1 lane (about 20 ms here).
const MEMORY_KIB: u32 = 19 * 1024;
const PASSES: u32 = 2;

/// One code as stored: its name and the salted hash of its secret part, in hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCode {
    pub id: String,
    pub salt: String,
    pub hash: String,
}

/// A new set: the codes to show once, and what to store.
pub struct Issued {
    pub shown: Vec<String>,
    pub stored: Vec<StoredCode>,
}

pub fn issue(random: &dyn Random) -> Result<Issued, String> {
    let mut shown = Vec::with_capacity(CODES);
    let mut stored: Vec<StoredCode> = Vec::with_capacity(CODES);
    while shown.len() < CODES {
        let mut bytes = [0u8; LENGTH];
        random.fill(&mut bytes)?;
        // 256 is a multiple of 32: taking the low five bits is uniform.
        let chars: String = bytes
            .iter()
            .map(|b| ALPHABET[(b & 31) as usize] as char)
            .collect();
        let (id, secret) = chars.split_at(GROUP);
        if stored.iter().any(|s| s.id == id) {
            continue; // names must differ within a set
        }
        let mut salt = [0u8; 16];
        random.fill(&mut salt)?;
        stored.push(StoredCode {
            id: id.to_owned(),
            salt: crate::identity::hex(&salt),
            hash: crate::identity::hex(&derive(secret.as_bytes(), &salt)?),
        });
        shown.push(
            chars
                .as_bytes()
                .chunks(GROUP)
                .map(|g| String::from_utf8_lossy(g).into_owned())
                .collect::<Vec<_>>()
                .join("-"),
        );
    }
    Ok(Issued { shown, stored })
}

/// `answer` as a recovery code — its name and secret part — if it has the shape of one:
/// case, dashes and spaces do not matter, and O, I and L are read as 0, 1 and 1.
pub fn parse(answer: &str) -> Option<(String, String)> {
    let mut chars = String::with_capacity(LENGTH);
    for c in answer.chars() {
        let c = match c.to_ascii_uppercase() {
            '-' | ' ' => continue,
            'O' => '0',
            'I' | 'L' => '1',
            c => c,
        };
        if !ALPHABET.contains(&(c as u8)) || !c.is_ascii() {
            return None;
        }
        chars.push(c);
        if chars.len() > LENGTH {
            return None;
        }
    }
    // Six digits are an app's code, never a recovery code.
    (chars.len() == LENGTH).then(|| {
        let (id, secret) = chars.split_at(GROUP);
        (id.to_owned(), secret.to_owned())
    })
}

/// Whether `secret` (from [`parse`]) is the secret part of `stored`.
pub fn verify(stored: &StoredCode, secret: &str) -> Result<bool, String> {
    let salt = unhex(&stored.salt).ok_or("a stored recovery code is damaged")?;
    let expected = unhex(&stored.hash).ok_or("a stored recovery code is damaged")?;
    Ok(constant_time_eq(
        &derive(secret.as_bytes(), &salt)?,
        &expected,
    ))
}

fn derive(secret: &[u8], salt: &[u8]) -> Result<[u8; 32], String> {
    let params = Params::new(MEMORY_KIB, PASSES, 1, Some(32)).map_err(|e| e.to_string())?;
    let mut out = [0u8; 32];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(secret, salt, &mut out)
        .map_err(|e| format!("cannot check a recovery code: {e}"))?;
    Ok(out)
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::OsRandom;

    #[test]
    fn ten_codes_of_eighty_bits_in_four_groups_each_verifies_only_itself() {
        let set = issue(&OsRandom).unwrap();
        assert_eq!((set.shown.len(), set.stored.len()), (CODES, CODES));
        for (shown, stored) in set.shown.iter().zip(&set.stored) {
            assert_eq!(shown.len(), 19, "{shown}");
            assert_eq!(shown.matches('-').count(), 3, "{shown}");
            let (id, secret) = parse(shown).unwrap();
            assert_eq!(id, stored.id);
            assert!(verify(stored, &secret).unwrap());
            assert!(!stored.hash.contains(&secret) && stored.hash.len() == 64);
        }
        let (_, other) = parse(&set.shown[1]).unwrap();
        assert!(!verify(&set.stored[0], &other).unwrap());
        let mut ids: Vec<&str> = set.stored.iter().map(|s| s.id.as_str()).collect();
        ids.dedup();
        assert_eq!(ids.len(), CODES);
    }

    #[test]
    fn typing_mistakes_that_cannot_matter_are_forgiven_and_app_codes_are_no_recovery_codes() {
        assert_eq!(
            parse("k7qf 3m2x-9tza-h4wp"),
            Some(("K7QF".into(), "3M2X9TZAH4WP".into()))
        );
        assert_eq!(
            parse("O0IL-0000-0000-0000"),
            Some(("0011".into(), "000000000000".into()))
        );
        for not in [
            "123456",
            "",
            "K7QF-3M2X-9TZA-H4W",
            "K7QF-3M2X-9TZA-H4WPX",
            "K7QF-3M2X-9TZA-H4WU",
            "é7QF-3M2X-9TZA-H4WP",
        ] {
            assert_eq!(parse(not), None, "{not}");
        }
    }

    #[test]
    fn a_damaged_record_is_an_error_not_a_pass() {
        let bad = StoredCode {
            id: "AAAA".into(),
            salt: "zz".into(),
            hash: "00".into(),
        };
        assert!(verify(&bad, "000000000000").is_err());
    }
}
