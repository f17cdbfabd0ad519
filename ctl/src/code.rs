//! Reading a one-time code from the person at the terminal, never from the command line
//! (where every local user can read it in /proc/PID/cmdline and it lands in the shell's
//! history): a prompt with echo off on a terminal, or one line of standard input.

use std::io::{BufRead, IsTerminal, Read, Write};
use std::os::fd::AsFd;

/// Longest answer read; a code is 6 to 8 digits (spaces allowed).
const MAX_INPUT: usize = 64;

#[derive(Debug, PartialEq, Eq)]
pub enum NoCode {
    /// End of input, or Ctrl-C / Ctrl-D at the prompt.
    Cancelled,
    TooLong,
    Io(String),
}

/// Asks for the code on stderr when stdin is a terminal; otherwise reads one line.
pub fn read(prompt: &str) -> Result<String, NoCode> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("{prompt}");
        let _ = std::io::stderr().flush();
        let typed = typed_without_echo(&stdin);
        eprintln!();
        typed
    } else {
        first_line(&mut stdin.lock())
    }
}

/// One line from a pipe or file, at most [`MAX_INPUT`] bytes.
pub fn first_line(input: &mut impl BufRead) -> Result<String, NoCode> {
    let mut line = Vec::new();
    input
        .take(MAX_INPUT as u64 + 1)
        .read_until(b'\n', &mut line)
        .map_err(|e| NoCode::Io(e.to_string()))?;
    if line.is_empty() {
        return Err(NoCode::Cancelled);
    }
    if line.len() > MAX_INPUT && line.last() != Some(&b'\n') {
        return Err(NoCode::TooLong);
    }
    Ok(String::from_utf8_lossy(&line).trim().to_string())
}

/// Restores the terminal's settings when dropped, also on an early return.
struct Restore<'a, F: AsFd> {
    fd: &'a F,
    saved: nix::sys::termios::Termios,
}

impl<F: AsFd> Drop for Restore<'_, F> {
    fn drop(&mut self) {
        let _ = nix::sys::termios::tcsetattr(
            self.fd,
            nix::sys::termios::SetArg::TCSAFLUSH,
            &self.saved,
        );
    }
}

/// Reads keys one at a time with echo and signals off, so Ctrl-C cancels cleanly and the
/// terminal is always left as it was.
fn typed_without_echo(stdin: &std::io::Stdin) -> Result<String, NoCode> {
    use nix::sys::termios::{LocalFlags, SetArg, SpecialCharacterIndices, tcgetattr, tcsetattr};
    let io = |e: nix::Error| NoCode::Io(e.to_string());
    let saved = tcgetattr(stdin).map_err(io)?;
    let mut raw = saved.clone();
    raw.local_flags
        .remove(LocalFlags::ECHO | LocalFlags::ICANON | LocalFlags::ISIG);
    raw.control_chars[SpecialCharacterIndices::VMIN as usize] = 1;
    raw.control_chars[SpecialCharacterIndices::VTIME as usize] = 0;
    let _restore = Restore { fd: stdin, saved };
    tcsetattr(stdin, SetArg::TCSAFLUSH, &raw).map_err(io)?;
    let mut typed = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match stdin.lock().read(&mut byte) {
            Ok(0) => return Err(NoCode::Cancelled),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(NoCode::Io(e.to_string())),
        }
        match byte[0] {
            b'\n' | b'\r' => break,
            // Ctrl-C, Ctrl-D
            0x03 | 0x04 => return Err(NoCode::Cancelled),
            // Backspace, Delete
            0x08 | 0x7f => {
                typed.pop();
            }
            b if typed.len() < MAX_INPUT => typed.push(b),
            _ => return Err(NoCode::TooLong),
        }
    }
    Ok(String::from_utf8_lossy(&typed).trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_is_read_and_trimmed() {
        let mut input = std::io::Cursor::new(b" 123 456 \nrest\n".to_vec());
        assert_eq!(first_line(&mut input), Ok("123 456".into()));
    }

    #[test]
    fn empty_input_cancels_and_overlong_input_is_refused() {
        let mut empty = std::io::Cursor::new(Vec::new());
        assert_eq!(first_line(&mut empty), Err(NoCode::Cancelled));
        let mut long = std::io::Cursor::new(vec![b'1'; 10_000]);
        assert_eq!(first_line(&mut long), Err(NoCode::TooLong));
    }
}
