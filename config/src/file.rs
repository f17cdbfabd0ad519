//! Reading the configuration file safely: whoever can change it can switch the second
//! factor off. The directory is opened once and checked on its descriptor, the file is
//! opened relative to it without following a symlink and checked on its descriptor, and
//! the text is read from that same descriptor — no window to swap either by path.

use crate::ConfigError;
use nix::errno::Errno;
use nix::fcntl::{OFlag, open, openat};
use nix::sys::stat::Mode;
use std::fs::{File, Metadata};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The file's text, or None when it does not exist (in a safe directory).
pub fn read_checked(path: &Path) -> Result<Option<String>, ConfigError> {
    let shown = path.display().to_string();
    let unsafe_ = |why: String| ConfigError::Unsafe {
        path: shown.clone(),
        why,
    };
    let io = |e: Errno| ConfigError::Io {
        path: shown.clone(),
        source: std::io::Error::from(e),
    };
    let name = path
        .file_name()
        .ok_or_else(|| unsafe_("not a file name".into()))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let dir = match open(
        dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => File::from(fd),
        Err(Errno::ENOENT) => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    check(
        "its directory",
        &dir.metadata().map_err(|e| io_err(&shown, e))?,
    )
    .map_err(unsafe_)?;
    let file = match openat(
        &dir,
        name,
        OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NOCTTY,
        Mode::empty(),
    ) {
        Ok(fd) => File::from(fd),
        Err(Errno::ENOENT) => return Ok(None),
        Err(Errno::ELOOP) => return Err(unsafe_("it is a symbolic link".into())),
        Err(e) => return Err(io(e)),
    };
    let meta = file.metadata().map_err(|e| io_err(&shown, e))?;
    if !meta.is_file() {
        return Err(unsafe_("not a regular file".into()));
    }
    check("the file", &meta).map_err(unsafe_)?;
    let mut text = String::new();
    (&file)
        .read_to_string(&mut text)
        .map_err(|e| io_err(&shown, e))?;
    Ok(Some(text))
}

fn io_err(path: &str, source: std::io::Error) -> ConfigError {
    ConfigError::Io {
        path: path.into(),
        source,
    }
}

/// Owned by root (or by the daemon's own account, which owns its database anyway) and
/// writable by nobody else.
fn check(what: &str, meta: &Metadata) -> Result<(), String> {
    let euid = nix::unistd::geteuid().as_raw();
    if meta.uid() != 0 && meta.uid() != euid {
        return Err(format!("{what} is owned by uid {}, not root", meta.uid()));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "{what} is writable by its group or others (mode {:o})",
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}
