//! TOTP (RFC 6238) over totp-rs: secret generation, provisioning URIs and a window check
//! that compares every candidate in constant time and reports which step matched, so the
//! caller can refuse replays.

use crate::random::Random;
pub use totp_rs::Algorithm;
use totp_rs::{Builder, Totp};
use twofold_config::TotpConfig;

/// 160-bit secrets, as RFC 4226 recommends.
pub const SECRET_BYTES: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OtpParams {
    pub algorithm: Algorithm,
    pub digits: usize,
    pub step: u64,
    pub window: u64,
}

impl OtpParams {
    pub fn from_config(c: &TotpConfig) -> OtpParams {
        OtpParams {
            algorithm: match c.algorithm {
                twofold_config::Algorithm::SHA1 => Algorithm::SHA1,
                twofold_config::Algorithm::SHA256 => Algorithm::SHA256,
                twofold_config::Algorithm::SHA512 => Algorithm::SHA512,
            },
            digits: c.digits.get() as usize,
            step: u64::from(c.step_seconds.get()),
            window: u64::from(c.window.get()),
        }
    }

    fn totp(&self, secret: Vec<u8>) -> Result<Totp, String> {
        Builder::new()
            .with_algorithm(self.algorithm)
            .with_digits(self.digits as u8)
            .with_step_duration(self.step)
            .with_skew(0)
            .with_secret(secret)
            .build()
            .map_err(|e| format!("invalid TOTP parameters: {e}"))
    }
}

/// A fresh base32 secret from `random`.
pub fn generate_secret(random: &dyn Random) -> Result<String, String> {
    let mut bytes = [0u8; SECRET_BYTES];
    random.fill(&mut bytes)?;
    Ok(data_encoding::BASE32_NOPAD.encode(&bytes))
}

fn decode_secret(base32: &str) -> Result<Vec<u8>, String> {
    data_encoding::BASE32_NOPAD
        .decode(base32.as_bytes())
        .map_err(|_| "stored secret is not valid base32".to_string())
}

/// The code for `time` (used by tests, the benchmark and the demo).
pub fn code_at(params: &OtpParams, base32: &str, time: u64) -> Result<String, String> {
    Ok(params
        .totp(decode_secret(base32)?)?
        .generate(time)
        .to_string())
}

/// The `otpauth://` URI an authenticator app scans.
pub fn provisioning_uri(
    params: &OtpParams,
    base32: &str,
    issuer: &str,
    account: &str,
) -> Result<String, String> {
    let totp = Builder::new()
        .with_algorithm(params.algorithm)
        .with_digits(params.digits as u8)
        .with_step_duration(params.step)
        .with_secret(decode_secret(base32)?)
        .with_issuer(Some(issuer.to_string()))
        .with_account_name(account.to_string())
        .build()
        .map_err(|e| format!("cannot build the provisioning URI: {e}"))?;
    totp.to_url()
        .map_err(|e| format!("cannot build the provisioning URI: {e}"))
}

/// Strips the spaces people type ("123 456"); anything but exactly `digits` ASCII digits
/// is not a code.
pub fn normalise(input: &str, digits: usize) -> Option<String> {
    let code: String = input.chars().filter(|c| !c.is_whitespace()).collect();
    (code.len() == digits && code.bytes().all(|b| b.is_ascii_digit())).then_some(code)
}

/// The step (time / step length) whose code equals `input`, looking `window` steps either
/// side of `now`. Every candidate is computed and compared in constant time.
pub fn matching_step(
    params: &OtpParams,
    base32: &str,
    input: &str,
    now: i64,
) -> Result<Option<u64>, String> {
    let totp = params.totp(decode_secret(base32)?)?;
    let Some(code) = normalise(input, params.digits) else {
        return Ok(None);
    };
    let now = u64::try_from(now).unwrap_or(0);
    let current = now / params.step;
    let mut found = None;
    for step in current.saturating_sub(params.window)..=current + params.window {
        let candidate = totp.generate(step * params.step).to_string();
        if constant_time_eq(candidate.as_bytes(), code.as_bytes()) && found.is_none() {
            found = Some(step);
        }
    }
    Ok(found)
}

/// Compares two byte strings without an early exit on the first difference.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b32(ascii: &str) -> String {
        data_encoding::BASE32_NOPAD.encode(ascii.as_bytes())
    }

    fn params(algorithm: Algorithm, digits: usize) -> OtpParams {
        OtpParams {
            algorithm,
            digits,
            step: 30,
            window: 1,
        }
    }

    #[test]
    fn rfc6238_appendix_b_vectors() {
        let sha1 = b32("12345678901234567890");
        let sha256 = b32("12345678901234567890123456789012");
        let sha512 = b32("1234567890123456789012345678901234567890123456789012345678901234");
        let table: [(u64, &str, &str, &str); 6] = [
            (59, "94287082", "46119246", "90693936"),
            (1111111109, "07081804", "68084774", "25091201"),
            (1111111111, "14050471", "67062674", "99943326"),
            (1234567890, "89005924", "91819424", "93441116"),
            (2000000000, "69279037", "90698825", "38618901"),
            (20000000000, "65353130", "77737706", "47863826"),
        ];
        for (t, c1, c256, c512) in table {
            assert_eq!(
                code_at(&params(Algorithm::SHA1, 8), &sha1, t).unwrap(),
                c1,
                "SHA1 t={t}"
            );
            assert_eq!(
                code_at(&params(Algorithm::SHA256, 8), &sha256, t).unwrap(),
                c256,
                "SHA256 t={t}"
            );
            assert_eq!(
                code_at(&params(Algorithm::SHA512, 8), &sha512, t).unwrap(),
                c512,
                "SHA512 t={t}"
            );
        }
    }

    #[test]
    fn window_accepts_one_step_either_side_and_refuses_two() {
        let p = params(Algorithm::SHA1, 6);
        let s = b32("12345678901234567890");
        let now: i64 = 1_700_000_015; // inside step 56666667
        let current = now as u64 / 30;
        for (offset, expected) in [
            (-2i64, None),
            (-1, Some(current - 1)),
            (0, Some(current)),
            (1, Some(current + 1)),
            (2, None),
        ] {
            let t = (current as i64 + offset) as u64 * 30;
            let code = code_at(&p, &s, t).unwrap();
            assert_eq!(
                matching_step(&p, &s, &code, now).unwrap(),
                expected,
                "offset {offset}"
            );
        }
    }

    #[test]
    fn window_edges_follow_the_clock_to_the_second() {
        let p = params(Algorithm::SHA1, 6);
        let s = b32("12345678901234567890");
        let code = code_at(&p, &s, 30 * 1000).unwrap(); // step 1000 = [30000, 30030)
        // Valid while the current step is 999, 1000 or 1001: t in [29970, 30060).
        assert_eq!(matching_step(&p, &s, &code, 29_969).unwrap(), None);
        assert_eq!(matching_step(&p, &s, &code, 29_970).unwrap(), Some(1000));
        assert_eq!(matching_step(&p, &s, &code, 30_059).unwrap(), Some(1000));
        assert_eq!(matching_step(&p, &s, &code, 30_060).unwrap(), None);
    }

    #[test]
    fn zero_window_accepts_only_the_current_step() {
        let p = OtpParams {
            window: 0,
            ..params(Algorithm::SHA1, 6)
        };
        let s = b32("12345678901234567890");
        let code = code_at(&p, &s, 30_000).unwrap();
        assert_eq!(matching_step(&p, &s, &code, 30_000).unwrap(), Some(1000));
        assert_eq!(matching_step(&p, &s, &code, 30_030).unwrap(), None);
    }

    #[test]
    fn input_is_normalised_strictly() {
        assert_eq!(normalise(" 123 456\n", 6).as_deref(), Some("123456"));
        assert_eq!(normalise("12345", 6), None);
        assert_eq!(normalise("1234567", 6), None);
        assert_eq!(normalise("12345a", 6), None);
        assert_eq!(normalise("١٢٣٤٥٦", 6), None); // non-ASCII digits
        assert_eq!(normalise("", 6), None);
    }

    struct Counter(std::sync::atomic::AtomicU8);
    impl Random for Counter {
        fn fill(&self, buf: &mut [u8]) -> Result<(), String> {
            for b in buf {
                *b = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            Ok(())
        }
    }

    #[test]
    fn secrets_are_160_bits_from_the_injected_random_source() {
        let r = Counter(std::sync::atomic::AtomicU8::new(0));
        let a = generate_secret(&r).unwrap();
        let b = generate_secret(&r).unwrap();
        assert_eq!(
            data_encoding::BASE32_NOPAD
                .decode(a.as_bytes())
                .unwrap()
                .len(),
            20
        );
        assert_ne!(a, b);
        let os1 = generate_secret(&crate::random::OsRandom).unwrap();
        let os2 = generate_secret(&crate::random::OsRandom).unwrap();
        assert_ne!(os1, os2);
    }

    #[test]
    fn provisioning_uri_carries_issuer_account_and_secret() {
        let p = params(Algorithm::SHA1, 6);
        let s = b32("12345678901234567890");
        let uri = provisioning_uri(&p, &s, "Example Corp", "alice@host").unwrap();
        assert!(uri.starts_with("otpauth://totp/"), "{uri}");
        assert!(uri.contains(&format!("secret={s}")), "{uri}");
        assert!(uri.contains("issuer=Example%20Corp"), "{uri}");
    }

    #[test]
    fn constant_time_eq_compares_whole_strings() {
        assert!(constant_time_eq(b"123456", b"123456"));
        assert!(!constant_time_eq(b"123456", b"123457"));
        assert!(!constant_time_eq(b"123456", b"12345"));
    }
}
