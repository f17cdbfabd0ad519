//! Real clients for the end-to-end suite (root only): test-only files in /etc removed
//! again on drop (also when a test fails), sshd on loopback under a program name of its
//! own (so it reads its own /etc/pam.d file), and an OpenSSH client driven by expect.
//! Nothing of the system's own sshd, sudo or common-* configuration is touched.

use crate::World;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, Once};
use std::time::{Duration, Instant};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// The prefixes [`unique`] names files in /etc with.
const PREFIXES: [&str; 2] = ["sshd-twofold", "sudo-twofold"];

/// Where those files go.
const SYSTEM_DIRS: [&str; 3] = ["/etc/pam.d", "/etc/sudoers.d", "/usr/local/sbin"];

/// A name no other test of this run uses, e.g. `sudo-twofold-4711-3`. The first call
/// removes what killed runs left behind (see [`sweep_leftovers`]).
pub fn unique(prefix: &str) -> String {
    static SWEEP: Once = Once::new();
    SWEEP.call_once(sweep_leftovers);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    )
}

/// Removes the files of earlier runs whose process is gone: a run that is killed (a
/// stopped CI, SIGKILL) drops nothing, and a sudoers.d file it left routes the test user's
/// sudo to its PAM service whenever its name sorts after the new one's.
fn sweep_leftovers() {
    for dir in SYSTEM_DIRS {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let owner = PREFIXES.iter().find_map(|p| {
                let rest = name.strip_prefix(p)?.strip_prefix('-')?;
                let (pid, n) = rest.split_once('-')?;
                n.parse::<u32>().ok()?;
                pid.parse::<u32>().ok()
            });
            if let Some(pid) = owner {
                if !Path::new(&format!("/proc/{pid}")).exists() {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
    }
}

/// Files and links put into the system for one test; removed when dropped.
#[derive(Default)]
pub struct Installed(Vec<PathBuf>, Option<MutexGuard<'static, ()>>);

impl Installed {
    pub fn file(&mut self, path: impl Into<PathBuf>, content: &str, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        let path = path.into();
        std::fs::write(&path, content).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        self.0.push(path);
    }

    pub fn symlink(&mut self, link: impl Into<PathBuf>, target: &Path) {
        let link = link.into();
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(target, &link)
            .unwrap_or_else(|e| panic!("symlink {}: {e}", link.display()));
        self.0.push(link);
    }

    /// Holds `lock` until these files are removed.
    fn holding(mut self, lock: &'static Mutex<()>) -> Installed {
        self.1 = Some(lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
        self
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        for p in self.0.drain(..).rev() {
            let _ = std::fs::remove_file(&p);
        }
    }
}

/// The test user's password for the first factor.
pub const PASSWORD: &str = "Correct-Horse-7";

/// Gives `user` a shell and a known password (so sshd, sudo and login can run for it).
pub fn prepare_user(user: &str) {
    let ok = Command::new("usermod")
        .args(["-s", "/bin/sh", user])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "usermod {user}");
    set_password(user, PASSWORD);
}

/// Sets `user`'s password with chpasswd (root only).
pub fn set_password(user: &str, password: &str) {
    let mut child = Command::new("chpasswd")
        .stdin(Stdio::piped())
        .spawn()
        .expect("chpasswd");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{user}:{password}\n").as_bytes())
        .expect("write");
    assert!(child.wait().expect("wait").success(), "chpasswd {user}");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// sshd on 127.0.0.1, started as `/usr/local/sbin/sshd-twofold-…` so that it reads
/// `/etc/pam.d/sshd-twofold-…`, which holds the given auth lines.
pub struct Sshd {
    child: Child,
    pub port: u16,
    pub service: String,
    pub dir: PathBuf,
    _installed: Installed,
}

impl Sshd {
    /// `methods` is sshd's AuthenticationMethods; `auth_lines` the PAM auth stack.
    /// (StrictModes is off: the keys live under /tmp, which sshd will not trust.)
    pub fn start(world: &World, methods: &str, auth_lines: &str) -> Sshd {
        let service = unique("sshd-twofold");
        let dir = world.path(&service);
        std::fs::create_dir_all(dir.join("keys")).expect("mkdir");
        std::fs::create_dir_all("/run/sshd").expect("/run/sshd");
        let host_key = dir.join("host_key");
        run(Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&host_key));
        let port = free_port();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nUsePAM yes\nKbdInteractiveAuthentication yes\n\
             PasswordAuthentication no\nPubkeyAuthentication yes\nAuthenticationMethods {methods}\n\
             AuthorizedKeysFile {}/keys/%u\nStrictModes no\nPidFile none\nUseDNS no\nLogLevel VERBOSE\nMaxAuthTries 6\n",
            host_key.display(),
            dir.display()
        );
        std::fs::write(dir.join("sshd_config"), config).expect("sshd_config");
        let mut installed = Installed::default();
        let pam =
            format!("{auth_lines}account required pam_unix.so\nsession required pam_permit.so\n");
        installed.file(format!("/etc/pam.d/{service}"), &pam, 0o644);
        let program = PathBuf::from(format!("/usr/local/sbin/{service}"));
        installed.symlink(&program, Path::new("/usr/sbin/sshd"));
        let log = std::fs::File::create(dir.join("sshd.log")).expect("log");
        let child = Command::new(&program)
            .args(["-D", "-e", "-f"])
            .arg(dir.join("sshd_config"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("sshd");
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "sshd did not listen: {}",
                std::fs::read_to_string(dir.join("sshd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Sshd {
            child,
            port,
            service,
            dir,
            _installed: installed,
        }
    }

    /// Authorises a new client key for `user`; returns the private key's path.
    pub fn add_key(&self, user: &str, name: &str) -> PathBuf {
        let key = self.dir.join(name);
        run(Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
            .arg(&key));
        let public = std::fs::read_to_string(key.with_extension("pub")).expect("public key");
        let auth = self.dir.join("keys").join(user);
        let mut all = std::fs::read_to_string(&auth).unwrap_or_default();
        all.push_str(&public);
        std::fs::write(&auth, all).expect("authorized_keys");
        key
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("sshd.log")).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What the scripted user types when a prompt appears. Codes are used in order.
#[derive(Debug, Clone, Default)]
pub struct Answers {
    pub password: Option<String>,
    pub codes: Vec<String>,
    /// Answer to "Trust this device for N days? [y/N]".
    pub trust: Option<String>,
    /// Ask for the code by e-mail (Enter at the prompt) and type the one that arrives in
    /// this maildir `new` directory.
    pub mailbox: Option<PathBuf>,
    /// Take the offer to set up an app at login: type the code (oathtool) of the key the
    /// offer shows, at this Unix time (the daemon's test clock).
    pub enrol_at: Option<i64>,
    /// Answer `sms` to the offer and type the code from the first text after the first
    /// `.1` that fakesmsc's output file `.0` shows (`Kannel::messages_file`).
    pub texts: Option<(PathBuf, usize)>,
}

impl Answers {
    pub fn code(code: &str) -> Answers {
        Answers {
            codes: vec![code.to_string()],
            ..Default::default()
        }
    }
    pub fn none() -> Answers {
        Answers::default()
    }
    /// The test user's password, then these codes.
    pub fn password(codes: &[&str]) -> Answers {
        Answers {
            password: Some(PASSWORD.into()),
            codes: codes.iter().map(|c| c.to_string()).collect(),
            ..Default::default()
        }
    }

    /// The test user's password, then `sms` and the code from the next text fakesmsc
    /// writes to `messages` (which holds `seen` messages now).
    pub fn password_then_text(messages: &Path, seen: usize) -> Answers {
        Answers {
            password: Some(PASSWORD.into()),
            texts: Some((messages.to_path_buf(), seen)),
            ..Default::default()
        }
    }

    /// The test user's password, then a code by e-mail from `mailbox`.
    pub fn password_then_mail(mailbox: &Path) -> Answers {
        Answers {
            password: Some(PASSWORD.into()),
            mailbox: Some(mailbox.to_path_buf()),
            ..Default::default()
        }
    }
}

/// The result of a scripted interactive program.
#[derive(Debug)]
pub struct Session {
    pub output: String,
}

impl Session {
    /// The remote (or sudo'd) command ran: its marker was printed.
    pub fn ran(&self) -> bool {
        self.output.contains("TWOFOLD-CMD-RAN")
    }
    pub fn prompts(&self, text: &str) -> usize {
        self.output.matches(text).count()
    }
    pub fn has(&self, text: &str) -> bool {
        self.output.contains(text)
    }
}

impl Session {
    fn of(out: std::process::Output) -> Session {
        Session {
            output: crate::combined(&out),
        }
    }
}

/// An expect script that spawns `spawn` (a Tcl word list) with `env` set, answers the
/// prompts from `answers`, and applies `extra_rules` (more expect clauses).
fn expect_script(
    spawn: &str,
    env: &[(&str, String)],
    answers: &Answers,
    extra_rules: &str,
) -> String {
    let word = |s: &str| format!("{{{s}}}");
    let codes = answers
        .codes
        .iter()
        .map(|c| word(c))
        .collect::<Vec<_>>()
        .join(" ");
    let env: String = env
        .iter()
        .map(|(k, v)| format!("set env({k}) {}\n", word(v)))
        .collect();
    // Enter asks for a mail; the code is read from the first message that shows one.
    let mail_rules = answers.mailbox.as_ref().map_or(String::new(), |dir| {
        format!(
            r#"  "press Enter for one by e-mail): " {{ send -- "\r"; exp_continue }}
  "Code from the e-mail: " {{
     set mailed [exec -ignorestderr env -u LD_PRELOAD -u PAM_WRAPPER sh -c {{for i in $(seq 100); do c=$(cat {dir}/* 2>/dev/null | grep -E '^    [0-9]{{6}}$' | tr -d ' ' | tail -n 1); if [ -n "$c" ]; then echo "$c"; exit 0; fi; sleep 0.1; done; exit 1}}]
     send -- "$mailed\r"; exp_continue }}
"#,
            dir = dir.display()
        )
    });
    // "sms" at the offer; the code is read from the text fakesmsc receives next.
    let text_rules = answers.texts.as_ref().map_or(String::new(), |(file, seen)| {
        format!(
            r#"  "'sms' to text a code to " {{ send -- "sms\r"; exp_continue }}
  -re {{Code sent by SMS to [^\r\n]* min: }} {{
     set texted [exec -ignorestderr sh -c {{for i in $(seq 100); do n=$(grep -a -c 'Got message' {file}); if [ "$n" -gt {seen} ]; then grep -a -oE 'text [0-9]{{6}} is your twofold' {file} | sed -n "$(({seen} + 1))p" | cut -d' ' -f2; exit 0; fi; sleep 0.1; done; exit 1}}]
     send -- "$texted\r"; exp_continue }}
"#,
            file = file.display()
        )
    });
    // The offer's key is remembered; at its prompt the app's code for it is typed.
    let enrol_rules = answers.enrol_at.map_or(String::new(), |t| {
        format!(
            r#"  -re {{into the app \(time-based\): ([A-Z2-7 ]+)}} {{ set key [string map {{" " ""}} $expect_out(1,string)]; exp_continue }}
  "set it up now, or" {{
     set code [exec oathtool --totp -b --now "@{t}" $key]
     expect "Press Enter to continue: "
     send -- "$code\r"; exp_continue }}
  "Press Enter when you have written them down: " {{ send -- "\r"; exp_continue }}
"#
        )
    });
    format!(
        r#"set timeout 20
set codes [list {codes}]
set password {password}
set trust {trust}
{env}spawn -noecho {spawn}
expect {{
{mail_rules}{text_rules}{enrol_rules}  -re "\[Pp\]assword( for \[^:\]*)?: ?$" {{ send -- "$password\r"; exp_continue }}
  "Verification code: " {{
     if {{[llength $codes] == 0}} {{ puts "\nEXPECT: no code left to type"; exit 3 }}
     send -- "[lindex $codes 0]\r"; set codes [lrange $codes 1 end]; exp_continue }}
  -ex "\[y/N\] " {{ send -- "$trust\r"; exp_continue }}
  "Press Enter to continue: " {{ send -- "\r"; exp_continue }}
{extra_rules}  timeout {{ puts "\nEXPECT: timeout"; exit 4 }}
  eof
}}
"#,
        password = word(answers.password.as_deref().unwrap_or("")),
        trust = word(answers.trust.as_deref().unwrap_or("n")),
    )
}

fn run_expect(script: &str) -> Session {
    Session::of(
        Command::new("expect")
            .arg("-c")
            .arg(script)
            .output()
            .expect("expect"),
    )
}

/// Runs `command` under expect on a pty, answering prompts from `answers`; the command
/// should print TWOFOLD-CMD-RAN when it gets through.
pub fn interact(command: &[String], answers: &Answers) -> Session {
    let spawn = command
        .iter()
        .map(|a| format!("{{{a}}}"))
        .collect::<Vec<_>>()
        .join(" ");
    run_expect(&expect_script(&spawn, &[], answers, ""))
}

/// An OpenSSH client logging in to `sshd` as `user` (with `key`, or keyboard-interactive
/// only) and running a command that prints the marker.
pub fn ssh(sshd: &Sshd, user: &str, key: Option<&Path>, answers: &Answers) -> Session {
    let mut cmd: Vec<String> = [
        "/usr/bin/ssh",
        "-p",
        &sshd.port.to_string(),
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "LogLevel=ERROR",
        "-o",
        "NumberOfPasswordPrompts=1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    match key {
        Some(k) => cmd.extend([
            "-o".into(),
            "IdentitiesOnly=yes".into(),
            "-i".into(),
            k.display().to_string(),
        ]),
        None => cmd.extend(["-o".into(), "PubkeyAuthentication=no".into()]),
    }
    cmd.extend([format!("{user}@127.0.0.1"), "echo TWOFOLD-CMD-RAN".into()]);
    interact(&cmd, answers)
}

/// Routes `user`'s sudo to `/etc/pam.d/SERVICE` (and turns sudo's own timestamp cache
/// off, so every sudo runs PAM) with a sudoers.d file of its own. One test at a time
/// routes sudo: with two such files for one user, the one whose name sorts last wins.
pub fn sudo_service(user: &str, service: &str, auth_lines: &str) -> Installed {
    static ROUTING_SUDO: Mutex<()> = Mutex::new(());
    let mut installed = Installed::default().holding(&ROUTING_SUDO);
    let pam = format!("{auth_lines}account required pam_unix.so\nsession required pam_permit.so\n");
    installed.file(format!("/etc/pam.d/{service}"), &pam, 0o644);
    let rules = format!(
        "Defaults:{user} pam_service={service}, timestamp_timeout=0\n{user} ALL=(ALL) ALL\n"
    );
    installed.file(
        format!("/etc/sudoers.d/{}", service.replace('.', "_")),
        &rules,
        0o440,
    );
    installed
}

/// `user` runs `sudo -S` (answers from standard input: password, then codes) for a
/// command that prints the marker and its uid.
pub fn sudo(user: &str, answers: &Answers) -> Session {
    let mut input = String::new();
    if let Some(p) = &answers.password {
        input.push_str(&format!("{p}\n"));
    }
    for c in &answers.codes {
        input.push_str(&format!("{c}\n"));
    }
    let mut child = Command::new("runuser")
        .args([
            "-u",
            user,
            "--",
            "sudo",
            "-S",
            "sh",
            "-c",
            "echo TWOFOLD-CMD-RAN uid=$(id -u)",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sudo");
    use std::io::Write;
    let _ = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes());
    Session::of(child.wait_with_output().expect("sudo"))
}

/// `user` runs sudo on a pty (as from a terminal) for a command that prints the marker
/// and its uid, answering from `answers`.
pub fn sudo_on_a_terminal(user: &str, answers: &Answers) -> Session {
    let cmd: Vec<String> = [
        "runuser",
        "-u",
        user,
        "--",
        "sudo",
        "sh",
        "-c",
        "echo TWOFOLD-CMD-RAN uid=$(id -u)",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    interact(&cmd, answers)
}

/// util-linux `login USER` on a pty (under pam_wrapper, so it reads `pam_dir/login`
/// instead of /etc/pam.d/login); once the shell is up it runs a command that prints the
/// marker and logs out.
pub fn console_login(pam_dir: &Path, user: &str, answers: &Answers) -> Session {
    let env = [
        ("LD_PRELOAD", "libpam_wrapper.so".to_string()),
        ("PAM_WRAPPER", "1".to_string()),
        ("PAM_WRAPPER_SERVICE_DIR", pam_dir.display().to_string()),
    ];
    let rules = r#"  -re "\\$ $" { send -- "echo TWOFOLD-CMD-RAN; exit\r"; exp_continue }
  "Login incorrect" { puts "\nEXPECT: refused"; exit 5 }
"#;
    run_expect(&expect_script(
        &format!("/usr/bin/login {{{user}}}"),
        &env,
        answers,
        rules,
    ))
}
