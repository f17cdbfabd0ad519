//! What a new user meets first: the QR code `twofoldctl enrol` draws, read by a real
//! decoder (zbar) from a picture of a light- and of a dark-themed terminal; the
//! settings shown for typing the secret by hand; codes never taken on the command line;
//! a closed pipe; the `enroll` spelling. Runs as root or as any user (enrolling itself).

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use twofold_integration::*;

/// Runs `twofoldctl ARGS` on a pseudo-terminal (script(1)), as a person at a terminal
/// would; returns everything the terminal received.
fn on_terminal(w: &World, args: &[&str], input: &str) -> String {
    let mut line = format!(
        "{} --socket {}",
        binary("twofoldctl").display(),
        w.socket_path().display()
    );
    for a in args {
        line.push(' ');
        line.push_str(a);
    }
    let mut cmd = Command::new("script");
    cmd.args(["-qec", &line, "/dev/null"]);
    let out = run_input(cmd, input);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn run_input(mut cmd: Command, input: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn (script comes with util-linux)");
    let mut stdin = child.stdin.take().expect("stdin");
    // Give the program time to set up its prompt before the keys arrive.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let _ = stdin.write_all(input.as_bytes());
    // script(1) ends the session when its input ends: keep it open until the program exits.
    let out = child.wait_with_output().expect("wait");
    drop(stdin);
    out
}

fn printed_uri(text: &str) -> String {
    text.lines()
        .find_map(|l| l.trim_end_matches('\r').strip_prefix("otpauth URI: "))
        .unwrap_or_else(|| panic!("no URI in {text}"))
        .to_string()
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .expect("hostname")
        .into_string()
        .expect("UTF-8 hostname")
}

#[test]
fn the_qr_code_scans_on_light_and_dark_terminals_and_names_this_host() {
    let w = World::start("");
    let me = me();
    let shown = on_terminal(&w, &["enrol", me, "--no-verify"], "");
    let uri = printed_uri(&shown);
    for theme in ["light", "dark"] {
        assert_eq!(
            qr_decode(w.dir.path(), &shown, theme).as_deref(),
            Some(uri.as_str()),
            "zbarimg on a {theme} terminal"
        );
    }
    // The issuer an app shows is this host, not one word for every host.
    let host = hostname();
    assert!(
        uri.contains(&format!("issuer={host}")),
        "{uri} should name {host}"
    );
    assert!(shown.contains("enter this secret by hand (time-based): "));
    // Control: the same symbol without colours, on a dark theme, is inverted, and zbar
    // (like many phone scanners) finds nothing. That is why terminals get colours.
    let w2 = World::start("");
    let plain = w2.ctl(&["enrol", me, "--no-verify", "--qr", "text"], "");
    let plain = String::from_utf8_lossy(&plain.stdout).into_owned();
    let plain_uri = printed_uri(&plain);
    assert!(!plain.contains('\x1b'), "text style must set no colours");
    assert_eq!(
        qr_decode(w2.dir.path(), &plain, "light").as_deref(),
        Some(plain_uri.as_str())
    );
    assert_eq!(qr_decode(w2.dir.path(), &plain, "dark"), None);
    println!(
        "proved: zbarimg decodes exactly the printed URI from enrol's QR code on a light and a dark terminal; issuer = {host}"
    );
}

#[test]
fn unusual_totp_settings_are_shown_for_typing_the_secret_and_the_issuer_can_be_set() {
    let w = World::start(
        "[totp]\nstep_seconds = 60\ndigits = 8\nalgorithm = \"SHA256\"\nissuer = \"Example Corp\"",
    );
    let out = w.ctl(&["enrol", me(), "--no-verify", "--qr", "none"], "");
    let text = combined(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("also set a period of 60 seconds, 8 digits, algorithm SHA256"),
        "{text}"
    );
    assert!(!text.contains('█'), "--qr none draws no code: {text}");
    let uri = printed_uri(&text);
    assert!(
        uri.contains("issuer=Example%20Corp") && uri.contains("period=60"),
        "{uri}"
    );
    println!("proved: period, digits and algorithm are named when they differ from 30 s/6/SHA1");
}

#[test]
fn confirm_reads_the_code_from_a_prompt_or_stdin_never_from_argv() {
    let w = World::start("");
    let me = me();
    let secret = w.enrol(me);
    let code = fresh_code(&secret);
    // A code on the command line is refused before anything is sent.
    let out = w.ctl(&["confirm", me, &code], "");
    assert_eq!(out.status.code(), Some(2), "{}", combined(&out));
    assert!(combined(&out).contains("not taken on the command line"));
    let status = w.ctl(&["--json", "status", me], "");
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("\"pending\""),
        "{}",
        combined(&status)
    );
    // At a terminal: a prompt, and the typed code is not echoed.
    let shown = on_terminal(&w, &["confirm", me], &format!("{code}\r"));
    assert!(shown.contains("Code from the app: "), "{shown}");
    assert!(shown.contains("second factor is active"), "{shown}");
    assert!(!shown.contains(&code), "the code was echoed: {shown}");
    println!(
        "proved: confirm refuses a code in argv (exit 2), prompts with echo off at a terminal"
    );
}

#[test]
fn confirm_takes_the_code_from_a_pipe_and_enroll_is_an_alias() {
    let w = World::start("");
    let me = me();
    let out = w.ctl(&["--json", "enroll", me, "--no-verify"], "");
    assert!(out.status.success(), "{}", combined(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let secret = v["secret"].as_str().expect("secret");
    let out = w.ctl(&["confirm", me], &format!("{}\n", fresh_code(secret)));
    assert!(out.status.success(), "{}", combined(&out));
    println!("proved: `enroll` works; confirm reads the code from standard input");
}

#[test]
fn a_closed_pipe_ends_twofoldctl_quietly() {
    let w = World::start("");
    // A pipe whose reading end is already closed: the first write fails with EPIPE.
    let (read, write) = nix::unistd::pipe().expect("pipe");
    drop(read);
    let out = Command::new(binary("twofoldctl"))
        .args(["--help"])
        .stdout(Stdio::from(write))
        .stderr(Stdio::piped())
        .output()
        .expect("twofoldctl");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_ne!(out.status.code(), Some(101), "{stderr}");
    assert_eq!(out.status.signal(), Some(nix::libc::SIGPIPE), "{stderr}");
    // The same through the daemon: `status | head` with head already gone.
    let (read, write) = nix::unistd::pipe().expect("pipe");
    drop(read);
    let out = Command::new(binary("twofoldctl"))
        .arg("--socket")
        .arg(w.socket_path())
        .args(["status", me()])
        .stdout(Stdio::from(write))
        .stderr(Stdio::piped())
        .output()
        .expect("twofoldctl");
    assert!(out.stderr.is_empty(), "{}", combined(&out));
    assert_eq!(out.status.signal(), Some(nix::libc::SIGPIPE));
    println!("proved: a closed stdout ends twofoldctl by SIGPIPE, with no panic, like ls");
}
