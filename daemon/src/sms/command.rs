//! `[sms.command]`: a program on this machine as an [`SmsTransport`] (`gammu-smsd-inject`,
//! a script writing smstools spool files, a site script). It is run without a shell:
//! argv is `program args… number`, the text (and a newline) comes on its standard input
//! and never in its arguments (every local user can read those in /proc). The
//! environment is `PATH=/usr/bin:/bin` and `LANG=C.UTF-8` only, the working directory
//! `/`, the umask 077, no descriptor of twofoldd's beyond 0-2 (systemd's listening
//! sockets are not close-on-exec). Started by root, it runs as `user` with no
//! supplementary groups; started by another account, as that account. Its own process
//! group, killed whole when it outlives `timeout_seconds`.
//!
//! Exit 0 is a text handed on; 75 (`EX_TEMPFAIL`, sysexits.h) or a signal, unavailable
//! for now; any other status a refusal, with the first line of what it wrote (control
//! characters dropped, runs of 6 digits or more masked: no code, no number).

use super::{Accepted, Sms, SmsError, SmsTransport, Texting};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use twofold_config::CommandGatewayConfig;

/// What is kept of each of the program's standard output and error (the rest is read and
/// dropped, so a talkative program never blocks on a full pipe).
const OUTPUT_KEPT: usize = 4096;
/// After the program ended, how long its output may still take to close (a child it left
/// behind may hold the pipes open).
const OUTPUT_GRACE: Duration = Duration::from_millis(250);
/// sysexits.h: "temporary failure, the user is invited to retry".
const EX_TEMPFAIL: i32 = 75;
/// The most of the program's message an error repeats.
const SAID_MAX: usize = 80;

/// The account the program runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Account {
    uid: u32,
    gid: u32,
}

pub struct CommandTransport {
    /// As configured: the program's argv[0].
    program: PathBuf,
    /// Its canonical path, checked at start: what is executed.
    real: PathBuf,
    args: Vec<String>,
    /// None: twofoldd is not root and runs the program as itself.
    account: Option<Account>,
    timeout: Duration,
}

/// How the program ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    Exited(i32),
    Signalled(i32),
    /// Killed, with its process group, after the timeout.
    TimedOut,
}

/// One run: how it ended and the start of what it wrote.
#[derive(Debug)]
struct Run {
    ended: Ended,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl CommandTransport {
    /// Checks the program and the account at start-up, and that twofoldd can switch to the
    /// account here (under systemd that needs CAP_SETUID and CAP_SETGID).
    pub fn new(c: &CommandGatewayConfig) -> Result<CommandTransport, SmsError> {
        let settings = |e: String| SmsError::Settings(format!("[sms.command] {e}"));
        let real = checked_program(&c.program.0).map_err(settings)?;
        let account = if nix::unistd::geteuid().is_root() {
            let user = nix::unistd::User::from_name(&c.user)
                .map_err(|e| settings(format!("user {:?}: {e}", c.user)))?
                .ok_or_else(|| settings(format!("user {:?} does not exist", c.user)))?;
            if user.uid.is_root() || user.gid.as_raw() == 0 {
                return Err(settings(format!(
                    "user {:?} has uid or gid 0: name an unprivileged account",
                    c.user
                )));
            }
            Some(Account {
                uid: user.uid.as_raw(),
                gid: user.gid.as_raw(),
            })
        } else {
            None
        };
        if let Some(a) = account {
            can_switch_to(a).map_err(|e| {
                settings(format!(
                    "cannot run the program as user {:?}: {e} (under systemd, twofoldd.service needs CapabilityBoundingSet=CAP_SETUID CAP_SETGID and SystemCallFilter=@setuid)",
                    c.user
                ))
            })?;
        }
        Ok(CommandTransport {
            program: c.program.0.clone(),
            real,
            args: c.args.clone(),
            account,
            timeout: Duration::from_secs(u64::from(c.timeout_seconds.get())),
        })
    }

    fn command(&self, to: &str) -> std::process::Command {
        let mut cmd = std::process::Command::new(&self.real);
        cmd.arg0(&self.program)
            .args(&self.args)
            .arg(to)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("LANG", "C.UTF-8")
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let account = self.account;
        // SAFETY: `enter` makes only async-signal-safe system calls, no allocation.
        unsafe {
            cmd.pre_exec(move || enter(account));
        }
        cmd
    }

    /// Runs the program once for `sms`, within the timeout, on a blocking thread: tokio's
    /// own process support would give every process that links tokio with this crate's
    /// features (the PAM module in sshd) a signal socket pair for good.
    async fn run(&self, sms: &Sms) -> Result<Run, SmsError> {
        let cmd = self.command(&sms.to);
        let mut line = sms.text.clone().into_bytes();
        line.push(b'\n');
        let timeout = self.timeout;
        tokio::task::spawn_blocking(move || run_blocking(cmd, line, timeout))
            .await
            .map_err(|e| SmsError::Unavailable(format!("the command's thread failed: {e}")))?
    }
}

fn run_blocking(
    mut cmd: std::process::Command,
    line: Vec<u8>,
    timeout: Duration,
) -> Result<Run, SmsError> {
    let mut child = cmd
        .spawn()
        .map_err(|e| SmsError::Unavailable(format!("cannot start the command: {e}")))?;
    let group = child.id();
    if let Some(mut stdin) = child.stdin.take() {
        // A program that does not read its input ends the pipe: its status says what it did.
        std::thread::spawn(move || {
            use std::io::Write;
            let _ = stdin.write_all(&line);
        });
    }
    let reader = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(keep(pipe));
        });
        rx
    };
    let out = reader(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
    );
    let err = reader(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
    );
    let deadline = crate::clock::monotonic() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(Ok(status)),
            Ok(None) if crate::clock::monotonic() >= deadline => break None,
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => break Some(Err(e)),
        }
    };
    let ended = match status {
        Some(Ok(status)) => ended(status),
        Some(Err(e)) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(SmsError::Unavailable(format!(
                "cannot wait for the command: {e}"
            )));
        }
        None => {
            // Its children too (a script's `sleep`): the group is the child's pid, and
            // the child, not yet waited for, keeps that pid from being reused.
            if let Ok(pid) = i32::try_from(group) {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            let _ = child.kill();
            let _ = child.wait();
            Ended::TimedOut
        }
    };
    // A background child holding the pipes must not stall the answer.
    let stdout = out.recv_timeout(OUTPUT_GRACE).unwrap_or_default();
    let stderr = err.recv_timeout(OUTPUT_GRACE).unwrap_or_default();
    Ok(Run {
        ended,
        stdout,
        stderr,
    })
}

impl SmsTransport for CommandTransport {
    fn send<'a>(&'a self, sms: &'a Sms) -> Texting<'a> {
        Box::pin(async move {
            let run = self.run(sms).await?;
            judge(&run, self.timeout.as_secs())
        })
    }
}

fn ended(status: ExitStatus) -> Ended {
    match (status.code(), status.signal()) {
        (Some(code), _) => Ended::Exited(code),
        (None, Some(signal)) => Ended::Signalled(signal),
        // Neither: not on Linux; read as a signal of unknown number.
        (None, None) => Ended::Signalled(0),
    }
}

/// What the program's end means.
fn judge(run: &Run, timeout_seconds: u64) -> Result<Accepted, SmsError> {
    let said = match said(&run.stderr).or_else(|| said(&run.stdout)) {
        Some(s) => format!(": {s}"),
        None => String::new(),
    };
    match run.ended {
        Ended::Exited(0) => Ok(Accepted::Sent),
        Ended::Exited(EX_TEMPFAIL) => Err(SmsError::Unavailable(format!(
            "the command exited with status {EX_TEMPFAIL} (EX_TEMPFAIL){said}"
        ))),
        Ended::Exited(code) => Err(SmsError::Refused(format!(
            "the command exited with status {code}{said}"
        ))),
        Ended::Signalled(signal) => Err(SmsError::Unavailable(format!(
            "the command was killed by signal {signal}{said}"
        ))),
        Ended::TimedOut => Err(SmsError::Unavailable(format!(
            "the command did not finish within {timeout_seconds} s"
        ))),
    }
}

/// The first line of `output` with anything in it: control characters dropped, every run
/// of 6 digits or more masked (a code, a number), at most `SAID_MAX` characters.
fn said(output: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(output);
    let line = text
        .split(['\n', '\r'])
        .map(|l| l.chars().filter(|c| !c.is_control()).collect::<String>())
        .find(|l| !l.trim().is_empty())?;
    let mut masked = String::new();
    let mut digits = String::new();
    for c in line.trim().chars().chain(std::iter::once(' ')) {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        if digits.len() >= 6 {
            masked.push_str("******");
        } else {
            masked.push_str(&digits);
        }
        digits.clear();
        masked.push(c);
    }
    Some(masked.trim_end().chars().take(SAID_MAX).collect())
}

/// Reads `pipe` to its end, keeping up to `OUTPUT_KEPT` bytes and dropping the rest.
fn keep(pipe: Option<Box<dyn std::io::Read + Send>>) -> Vec<u8> {
    let mut kept = Vec::new();
    let Some(mut pipe) = pipe else {
        return kept;
    };
    let mut buf = [0u8; 1024];
    loop {
        match pipe.read(&mut buf) {
            Ok(0) | Err(_) => return kept,
            Ok(n) => {
                let room = OUTPUT_KEPT.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}

/// In the child, between fork and exec: only async-signal-safe system calls. No
/// descriptor but 0-2 survives the exec; files it makes are private; then, as root, no
/// supplementary groups, the account's gid and uid (in that order: setuid ends the power
/// to change the others), checked.
fn enter(account: Option<Account>) -> std::io::Result<()> {
    close_on_exec_from_3();
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    if let Some(a) = account {
        let (uid, gid) = (
            nix::unistd::Uid::from_raw(a.uid),
            nix::unistd::Gid::from_raw(a.gid),
        );
        nix::unistd::setgroups(&[])?;
        nix::unistd::setgid(gid)?;
        nix::unistd::setuid(uid)?;
        let ids = nix::unistd::getresuid()?;
        let gids = nix::unistd::getresgid()?;
        if [ids.real, ids.effective, ids.saved] != [uid; 3]
            || [gids.real, gids.effective, gids.saved] != [gid; 3]
        {
            return Err(std::io::Error::from_raw_os_error(nix::libc::EPERM));
        }
    }
    Ok(())
}

/// Marks every descriptor from 3 up close-on-exec: `close_range` (Linux 5.11), else one
/// `fcntl` each up to the descriptor limit.
fn close_on_exec_from_3() {
    use nix::libc;
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets a flag on descriptors.
    let done = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3 as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    } == 0;
    if done {
        return;
    }
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into `limit`; fcntl on a descriptor that is not open fails
    // with EBADF and changes nothing.
    unsafe {
        let top = if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur.min(1 << 20) as libc::c_int
        } else {
            1 << 16
        };
        for fd in 3..top {
            libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
        }
    }
}

/// Whether a child can take `account` here (a root without CAP_SETUID, or a seccomp
/// filter, cannot): a child does what the program's would, then stops before exec.
fn can_switch_to(account: Account) -> std::io::Result<()> {
    use std::os::unix::process::CommandExt;
    // The child's answer when it took the account: it never runs the program.
    const TOOK_IT: i32 = nix::libc::ECANCELED;
    let mut probe = std::process::Command::new("/");
    probe
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: as in `command`.
    unsafe {
        probe.pre_exec(move || {
            enter(Some(account))?;
            Err(std::io::Error::from_raw_os_error(TOOK_IT))
        });
    }
    match probe.spawn() {
        Err(e) if e.raw_os_error() == Some(TOOK_IT) => Ok(()),
        Err(e) => Err(e),
        Ok(mut child) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(std::io::Error::other("the probe ran"))
        }
    }
}

/// The program's canonical path: a regular executable file, not set-user-ID or
/// set-group-ID, owned by root or twofoldd's account and writable by no one else, in
/// directories that are the same (or sticky, as /tmp). Whoever could change it would
/// read every code.
fn checked_program(configured: &Path) -> Result<PathBuf, String> {
    let shown = configured.display();
    let real = std::fs::canonicalize(configured).map_err(|e| format!("program {shown}: {e}"))?;
    let meta = std::fs::metadata(&real).map_err(|e| format!("program {shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("program {shown}: not a regular file"));
    }
    if meta.mode() & 0o111 == 0 {
        return Err(format!("program {shown}: not executable"));
    }
    if meta.mode() & 0o6000 != 0 {
        return Err(format!(
            "program {shown}: set-user-ID or set-group-ID, it would not run as `user`"
        ));
    }
    let me = nix::unistd::geteuid().as_raw();
    safe(&format!("program {shown}"), &meta, me)?;
    for dir in real.ancestors().skip(1) {
        let m = std::fs::metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        safe(
            &format!("program {shown}: its directory {}", dir.display()),
            &m,
            me,
        )?;
    }
    Ok(real)
}

fn safe(what: &str, meta: &std::fs::Metadata, me: u32) -> Result<(), String> {
    if meta.uid() != 0 && meta.uid() != me {
        return Err(format!(
            "{what} is owned by uid {}, not root: whoever can change it reads every code",
            meta.uid()
        ));
    }
    let sticky_dir = meta.is_dir() && meta.mode() & 0o1000 != 0;
    if meta.mode() & 0o022 != 0 && !sticky_dir {
        return Err(format!(
            "{what} is writable by its group or others (mode {:o}): whoever can change it reads every code",
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn run_of(ended: Ended, stderr: &str) -> Run {
        Run {
            ended,
            stdout: Vec::new(),
            stderr: stderr.as_bytes().to_vec(),
        }
    }

    #[test]
    fn exit_0_is_sent_75_and_signals_and_timeouts_unavailable_the_rest_refused() {
        assert_eq!(
            judge(&run_of(Ended::Exited(0), "x"), 10),
            Ok(Accepted::Sent)
        );
        assert_eq!(
            judge(&run_of(Ended::Exited(75), "modem busy"), 10),
            Err(SmsError::Unavailable(
                "the command exited with status 75 (EX_TEMPFAIL): modem busy".into()
            ))
        );
        assert_eq!(
            judge(&run_of(Ended::Exited(1), "no route\nmore"), 10),
            Err(SmsError::Refused(
                "the command exited with status 1: no route".into()
            ))
        );
        assert_eq!(
            judge(&run_of(Ended::Exited(2), ""), 10),
            Err(SmsError::Refused("the command exited with status 2".into()))
        );
        assert_eq!(
            judge(&run_of(Ended::Signalled(9), ""), 10),
            Err(SmsError::Unavailable(
                "the command was killed by signal 9".into()
            ))
        );
        assert_eq!(
            judge(&run_of(Ended::TimedOut, "late"), 7),
            Err(SmsError::Unavailable(
                "the command did not finish within 7 s".into()
            ))
        );
        // Nothing on stderr: stdout's first line.
        let run = Run {
            ended: Ended::Exited(3),
            stdout: b"bad config\n".to_vec(),
            stderr: b"\n  \n".to_vec(),
        };
        assert_eq!(
            judge(&run, 10),
            Err(SmsError::Refused(
                "the command exited with status 3: bad config".into()
            ))
        );
    }

    #[test]
    fn the_message_is_one_printable_line_of_80_without_codes_or_numbers() {
        assert_eq!(said(b""), None);
        assert_eq!(said(b"\n\n \r\n"), None);
        assert_eq!(
            said(b"\n  error: \x1b[31mred\x1b[0m\tbell\x07\nsecond").as_deref(),
            Some("error: [31mred[0mbell")
        );
        let long = "x".repeat(200);
        assert_eq!(said(long.as_bytes()).map(|s| s.len()), Some(80));
        assert_eq!(
            said("cannot send 123456 is your code to +4915112345678 (errno 12345)".as_bytes())
                .as_deref(),
            Some("cannot send ****** is your code to +****** (errno 12345)")
        );
        assert_eq!(
            said("é\u{202e}ok".as_bytes()).as_deref(),
            Some("é\u{202e}ok"),
            "not control characters"
        );
        assert_eq!(
            said(b"\xff\xfeoops").as_deref(),
            Some("\u{fffd}\u{fffd}oops")
        );
        let sixty_digits = "1".repeat(90);
        assert_eq!(said(sixty_digits.as_bytes()).as_deref(), Some("******"));
    }

    /// A directory (0755) under /tmp with `script` as an executable program in it.
    fn program(script: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = dir.path().join("send");
        std::fs::write(&path, format!("#!/bin/sh\n{script}")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        (dir, path)
    }

    fn config(path: &Path, args: &[&str], timeout: u32) -> CommandGatewayConfig {
        CommandGatewayConfig {
            program: twofold_config::AbsolutePath(path.to_path_buf()),
            args: args.iter().map(|a| a.to_string()).collect(),
            user: "nobody".into(),
            timeout_seconds: twofold_config::Bounded(timeout),
        }
    }

    fn sms() -> Sms {
        Sms {
            to: "+4915112345678".into(),
            text: "123456 is your code".into(),
            valid_minutes: 5,
            report_url: None,
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn the_program_gets_args_then_the_number_the_text_on_stdin_a_bare_environment_and_the_account()
    {
        let (_dir, path) = program(
            "echo \"argv $0 $*\"; echo \"uid $(id -u) $(id -g) groups $(id -G)\"; echo \"cwd $(pwd)\"; env | sort | tr '\\n' ' '; echo; umask; cat\n",
        );
        let me = nix::unistd::geteuid().as_raw();
        if me == 0 {
            // As twofoldd started by a root login has: a group the program must not keep.
            nix::unistd::setgroups(&[nix::unistd::Gid::from_raw(4)]).unwrap();
        }
        let t = CommandTransport::new(&config(&path, &["-c", "x y", "TEXT"], 5)).unwrap();
        let run = runtime().block_on(t.run(&sms())).unwrap();
        let out = String::from_utf8_lossy(&run.stdout);
        assert_eq!(run.ended, Ended::Exited(0), "{out}");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            format!("argv {} -c x y TEXT +4915112345678", path.display())
        );
        let expected_uid = if me == 0 {
            "uid 65534 65534 groups 65534".to_string()
        } else {
            format!("uid {me} ")
        };
        if me == 0 {
            assert_eq!(lines[1], expected_uid, "no supplementary group: {out}");
        } else {
            assert!(lines[1].starts_with(&expected_uid), "{out}");
        }
        assert_eq!(lines[2], "cwd /");
        // dash adds PWD; nothing of twofoldd's environment arrives.
        assert_eq!(lines[3], "LANG=C.UTF-8 PATH=/usr/bin:/bin PWD=/ ", "{out}");
        assert_eq!(lines[4], "0077");
        assert_eq!(lines[5], "123456 is your code");
        assert_eq!(lines.len(), 6, "{out}");
    }

    #[test]
    fn no_descriptor_of_twofoldds_reaches_the_program() {
        // A descriptor without close-on-exec, as systemd's listening sockets are.
        let file = std::fs::File::open("/dev/null").unwrap();
        use std::os::fd::AsRawFd;
        // SAFETY: F_DUPFD makes a new descriptor (not close-on-exec) from an open one.
        let fd = unsafe { nix::libc::fcntl(file.as_raw_fd(), nix::libc::F_DUPFD, 300) };
        assert!(fd >= 300);
        let (_dir, path) = program(&format!(
            "if [ -e /proc/$$/fd/{fd} ]; then echo leaked; else echo closed; fi\n"
        ));
        let t = CommandTransport::new(&config(&path, &[], 5)).unwrap();
        let run = runtime().block_on(t.run(&sms())).unwrap();
        // SAFETY: closes the descriptor made above.
        unsafe { nix::libc::close(fd) };
        assert_eq!(String::from_utf8_lossy(&run.stdout), "closed\n");
    }

    #[test]
    fn a_program_past_its_timeout_is_killed_with_its_children() {
        let (_dir, path) = program("sleep 30 &\necho $!\nwait\n");
        let t = CommandTransport::new(&config(&path, &[], 1)).unwrap();
        let started = crate::clock::monotonic();
        let run = runtime().block_on(t.run(&sms())).unwrap();
        let took = started.elapsed();
        assert_eq!(
            judge(&run, 1),
            Err(SmsError::Unavailable(
                "the command did not finish within 1 s".into()
            ))
        );
        assert!(took < Duration::from_millis(1800), "{took:?}");
        let child = String::from_utf8_lossy(&run.stdout).trim().to_string();
        assert!(!child.is_empty(), "the script did not say its child's pid");
        // Killed; reaped by its parent's parent (init or a subreaper) soon after.
        let gone = (0..50).any(|_| {
            let state = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
            let dead = state.is_empty() || state.contains(") Z ");
            if !dead {
                std::thread::sleep(Duration::from_millis(20));
            }
            dead
        });
        assert!(gone, "the script's sleep {child} outlived the timeout");
    }

    #[test]
    fn a_talkative_program_is_not_blocked_and_only_4_kib_are_kept() {
        let (_dir, path) = program(
            "head -c 1000000 /dev/zero | tr '\\0' x >&2\nhead -c 1000000 /dev/zero\nexit 75\n",
        );
        let t = CommandTransport::new(&config(&path, &[], 10)).unwrap();
        let run = runtime().block_on(t.run(&sms())).unwrap();
        assert_eq!(run.ended, Ended::Exited(75));
        assert_eq!((run.stderr.len(), run.stdout.len()), (4096, 4096));
        // A program that ignores its input and leaves a child holding its output.
        let (_dir, path) = program("sleep 5 &\nexit 0\n");
        let t = CommandTransport::new(&config(&path, &[], 10)).unwrap();
        let started = crate::clock::monotonic();
        assert_eq!(runtime().block_on(t.send(&sms())), Ok(Accepted::Sent));
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn a_program_others_could_change_or_that_is_not_one_is_refused_at_start() {
        let (dir, path) = program("exit 0\n");
        assert!(CommandTransport::new(&config(&path, &[], 5)).is_ok());
        let refused = |p: &Path| match CommandTransport::new(&config(p, &[], 5)) {
            Err(SmsError::Settings(e)) => e,
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("{} accepted", p.display()),
        };
        for (mode, says) in [
            (0o775, "writable by its group or others (mode 775)"),
            (0o757, "writable by its group or others"),
            (0o644, "not executable"),
            (0o4755, "set-user-ID"),
        ] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = refused(&path);
            assert!(
                e.starts_with("[sms.command] program ") && e.contains(says),
                "{mode:o}: {e}"
            );
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = refused(&path);
        assert!(e.contains("its directory") && e.contains("mode 777"), "{e}");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(refused(&dir.path().join("missing")).contains("No such file"));
        assert!(refused(dir.path()).contains("not a regular file"));
        // A symlink is followed to what it names, and that is checked and run.
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        let t = CommandTransport::new(&config(&link, &[], 5)).unwrap();
        assert_eq!(
            (t.program.as_path(), t.real.as_path()),
            (link.as_path(), path.as_path())
        );
        if nix::unistd::geteuid().is_root() {
            let mut c = config(&path, &[], 5);
            c.user = "no-such-user-here".into();
            assert!(refused_with(&c).contains("does not exist"));
            std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
            let e = refused(&path);
            assert!(e.contains("owned by uid 65534"), "{e}");
        }
    }

    fn refused_with(c: &CommandGatewayConfig) -> String {
        match CommandTransport::new(c) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("accepted"),
        }
    }
}
