//! Passwords twofoldd reads from files (`password_file`, under systemd a
//! `LoadCredential=` path): never from the configuration file, never world-readable.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The first line of `path`, which must not be readable by everyone.
pub fn read_password_file(path: &Path) -> Result<String, String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("{shown}: {e}"))?;
    if meta.mode() & 0o004 != 0 {
        return Err(format!(
            "{shown} is readable by everyone: make it 0600 or 0400"
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{shown}: {e}"))?;
    let first = text.lines().next().unwrap_or("");
    if first.is_empty() {
        return Err(format!("{shown} holds no password"));
    }
    Ok(first.to_owned())
}
