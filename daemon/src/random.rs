//! Randomness for secrets and conversation ids, injected so tests can make it
//! predictable. Production uses the kernel CSPRNG (getrandom(2)).

pub trait Random: Send + Sync {
    fn fill(&self, buf: &mut [u8]) -> Result<(), String>;
}

pub struct OsRandom;

impl Random for OsRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), String> {
        getrandom::fill(buf).map_err(|e| format!("the system random generator failed: {e}"))
    }
}

/// Lower-case hex of `bytes` random bytes.
pub fn random_hex(random: &dyn Random, bytes: usize) -> Result<String, String> {
    let mut buf = vec![0u8; bytes];
    random.fill(&mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}
