//! Codes by SMS through `[sms.command]` with the real parts: pamtester and the real
//! pam_twofold.so, a real twofoldd that runs a program for each text. First a script that
//! records what it got (argv, uid, environment, standard input) and then succeeds,
//! refuses, fails for now or hangs, as the test says; then Gammu's own
//! `gammu-smsd-inject` with a real `gammu-smsd` and Gammu's dummy phone (Debian's gammu
//! and gammu-smsd). Last, settings that cannot be used stop twofoldd's start.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use twofold_integration::sms::{
    NUMBER, ask_and_hear_unavailable, ask_for_a_text, code_in, ready_to_text, sms_config,
};
use twofold_integration::*;

const INJECT: &str = "/usr/bin/gammu-smsd-inject";
const SMSD: &str = "/usr/bin/gammu-smsd";

/// What the script writes for each run, into `texts` (mode 0777: as root it runs as
/// `PROGRAM_USER`), and what it then does: `texts/behave` says `fail` (status 1, with a
/// message naming the number and a code), `tempfail` (75), `hang` (a child that sleeps,
/// its pids written down) or nothing (status 0).
const SCRIPT: &str = r#"#!/bin/sh
out=TEXTS
{
  echo "uid $(id -u)"
  for a in "$0" "$@"; do echo "arg $a"; done
  echo "cwd $(pwd)"
  env | sort | sed 's/^/env /'
} > "$out/run.new"
cat > "$out/stdin.new"
mv "$out/run.new" "$out/run"
mv "$out/stdin.new" "$out/stdin"
case "$(cat "$out/behave" 2>/dev/null)" in
  fail) echo "no route to +4915112345678 for 123456: the operator said NO" >&2; exit 1 ;;
  tempfail) echo "modem busy" >&2; exit 75 ;;
  hang) echo $$ > "$out/script.pid"; sleep 30 & echo $! > "$out/sleep.pid"; wait ;;
esac
exit 0
"#;

/// A daemon texting through the script (`extra` in `[sms]`, `command` in
/// `[sms.command]`), the user enrolled with an app and `NUMBER` on record, the service
/// `twofold` with `offer_enrolment`. Returns the world, the secret, the script's path
/// and its `texts` directory.
fn world_with_script(extra: &str, command: &str) -> (World, String, PathBuf, PathBuf) {
    let w = World::bus_only();
    let bin = w.path("bin");
    let texts = w.path("texts");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&texts).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&texts, std::fs::Permissions::from_mode(0o777)).unwrap();
    let script = bin.join("send-sms");
    std::fs::write(
        &script,
        SCRIPT.replace("TEXTS", &texts.display().to_string()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let w = started(
        w,
        &sms_config(
            extra,
            &format!(
                "[sms.command]\nprogram = \"{}\"\n{}{command}\n",
                script.display(),
                program_user()
            ),
        ),
    );
    let secret = ready_to_text(&w);
    (w, secret, script, texts)
}

fn started(mut w: World, extra: &str) -> World {
    w.start_daemon(extra);
    w
}

fn uid_of(name: &str) -> u32 {
    nix::unistd::User::from_name(name)
        .ok()
        .flatten()
        .map(|u| u.uid.as_raw())
        .unwrap_or_else(|| panic!("no user {name}"))
}

/// The account the program runs as (`user`): a test account as root, the test's own
/// otherwise (a twofoldd not started as root runs it as itself).
const PROGRAM_USER: &str = USER_B;

fn program_user() -> String {
    if is_root() {
        ensure_test_users();
    }
    format!("user = \"{PROGRAM_USER}\"\n")
}

fn expected_uid() -> u32 {
    if is_root() {
        uid_of(PROGRAM_USER)
    } else {
        nix::unistd::geteuid().as_raw()
    }
}

#[test]
fn sms_at_the_prompt_runs_the_program_with_the_number_as_argument_and_the_text_on_stdin() {
    let (w, _, script, texts) = world_with_script("", "");
    let mut login = ask_for_a_text(&w);
    let run = std::fs::read_to_string(texts.join("run")).expect("the script ran");
    let args: Vec<&str> = run.lines().filter(|l| l.starts_with("arg ")).collect();
    assert_eq!(
        args,
        [format!("arg {}", script.display()), format!("arg {NUMBER}")],
        "{run}"
    );
    let uid = expected_uid();
    assert!(run.contains(&format!("uid {uid}\n")), "{run}");
    assert!(run.contains("cwd /\n"), "{run}");
    let env: Vec<&str> = run.lines().filter(|l| l.starts_with("env ")).collect();
    // dash sets PWD itself; nothing of twofoldd's environment reaches the program.
    assert_eq!(
        env,
        ["env LANG=C.UTF-8", "env PATH=/usr/bin:/bin", "env PWD=/"],
        "{run}"
    );
    let stdin = std::fs::read_to_string(texts.join("stdin")).expect("stdin");
    assert!(
        stdin.ends_with(" Not you? Tell IT at once.\n")
            && stdin.contains("is your twofold login code for twofold on")
            && stdin.lines().count() == 1,
        "{stdin:?}"
    );
    let code = code_in(&stdin);
    assert!(!run.contains(&code), "the code is in argv or env: {run}");
    println!(
        "proved: 'sms' at the prompt runs the program as uid {uid} with argv [program, {NUMBER}], env LANG and PATH only, cwd /, and the text with the code on stdin only"
    );
    login.line(&code);
    let result = login.finish();
    assert!(result.passed(), "{result:?}\n{}", w.daemon_log());
    let replay = w.pam("twofold", me(), &format!("{code}\n"));
    assert!(!replay.passed(), "{replay:?}");
    let log = w.daemon_log();
    assert!(!log.contains(&code) && !log.contains(NUMBER), "{log}");
    println!(
        "proved: the code the program got passes once; neither code nor number is in twofoldd's log"
    );
}

#[test]
fn a_refusal_a_temporary_failure_and_a_hang_are_told_at_once_and_the_app_still_works() {
    let (w, secret, _, texts) = world_with_script("", "timeout_seconds = 1");
    let behave = |what: &str| {
        std::fs::write(texts.join("behave"), what).unwrap();
        std::fs::set_permissions(texts.join("behave"), std::fs::Permissions::from_mode(0o644))
            .unwrap();
    };
    // A failed text still counts towards the limits: an administrator's unlock gives it back.
    let unlock = || {
        let out = w.ctl(&["unlock", me()], "");
        assert!(out.status.success(), "{}", combined(&out));
    };

    behave("fail");
    let refused = w.pam("twofold", me(), "sms\n");
    assert!(
        refused.has("The text could not be sent (the SMS gateway refused it)"),
        "{refused:?}\n{}",
        w.daemon_log()
    );
    let log = w.daemon_log();
    assert!(
        log.contains(
            "the SMS gateway refused the text: the command exited with status 1: no route to +****** for ******: the operator said NO"
        ),
        "{log}"
    );
    assert!(!log.contains(NUMBER) && !log.contains("123456"), "{log}");
    println!(
        "proved: status 1 is told as a refusal; the log has the status and the program's message with the number and digits masked"
    );

    unlock();
    behave("tempfail");
    let later = w.pam("twofold", me(), "sms\n");
    assert!(
        later.has("The text could not be sent (the SMS gateway is unavailable)"),
        "{later:?}\n{}",
        w.daemon_log()
    );
    assert!(
        w.daemon_log()
            .contains("the command exited with status 75 (EX_TEMPFAIL): modem busy"),
        "{}",
        w.daemon_log()
    );
    println!("proved: status 75 (EX_TEMPFAIL) is told as the gateway being unavailable");

    unlock();
    behave("hang");
    let (mut login, took) = ask_and_hear_unavailable(&w, Duration::from_secs(3));
    login.line(&code_at_time(&secret, unix_now() as i64));
    let result = login.finish();
    assert!(result.passed(), "{result:?}\n{}", w.daemon_log());
    assert!(
        w.daemon_log()
            .contains("the SMS gateway is unavailable: the command did not finish within 1 s"),
        "{}",
        w.daemon_log()
    );
    for pid_file in ["script.pid", "sleep.pid"] {
        let pid = std::fs::read_to_string(texts.join(pid_file)).expect(pid_file);
        let pid = pid.trim();
        assert!(
            wait_for(
                || {
                    let stat =
                        std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                    stat.is_empty() || stat.contains(") Z ")
                },
                Duration::from_secs(2)
            ),
            "{pid_file} {pid} outlived the timeout"
        );
    }
    println!(
        "proved: a program past timeout_seconds = 1 is killed with its child and told unavailable in {took:?}; the app's code then passes in the same login"
    );
}

/// Gammu's SMS daemon on a dummy phone with the files backend, in `dir`: it sends what
/// lands in `outbox/` and moves it to `sent/`. Stopped when dropped.
struct Gammu {
    dir: PathBuf,
    smsd: Child,
}

impl Gammu {
    /// As root the spool belongs to the `gammu` account (as Debian's package sets it up:
    /// `gammu:gammu`, 0770), and gammu-smsd runs as root (as Debian's unit does).
    fn start(dir: &Path) -> Gammu {
        for d in ["outbox", "sent", "error", "inbox", "phone"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        if is_root() {
            for d in ["outbox", "sent", "error", "inbox"] {
                let st = Command::new("chown")
                    .arg("gammu:gammu")
                    .arg(dir.join(d))
                    .status()
                    .unwrap();
                assert!(st.success());
                std::fs::set_permissions(dir.join(d), std::fs::Permissions::from_mode(0o770))
                    .unwrap();
            }
        }
        let p = |d: &str| dir.join(d).display().to_string();
        // The checks of a real modem (PIN, battery, signal, network) are off: the dummy
        // phone has none of them, and each would delay the first send. The outbox is
        // scanned every second (commtimeout; 30 s by default).
        let config = format!(
            "[gammu]\ndevice = {}\nmodel = dummy\nconnection = none\n\n[smsd]\nservice = files\ninboxpath = {}/\noutboxpath = {}/\nsentsmspath = {}/\nerrorsmspath = {}/\noutboxformat = standard\nlogfile = {}\ndebuglevel = 1\nloopsleep = 1\nchecksecurity = 0\ncheckbattery = 0\nchecksignal = 0\nchecknetwork = 0\ncommtimeout = 1\n",
            p("phone"),
            p("inbox"),
            p("outbox"),
            p("sent"),
            p("error"),
            p("smsd.log"),
        );
        std::fs::write(dir.join("smsdrc"), config).unwrap();
        std::fs::set_permissions(dir.join("smsdrc"), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        let smsd = Command::new(SMSD)
            .arg("-c")
            .arg(dir.join("smsdrc"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("gammu-smsd");
        let g = Gammu {
            dir: dir.to_path_buf(),
            smsd,
        };
        assert!(
            wait_for(
                || g.log().contains("Starting phone communication"),
                Duration::from_secs(10)
            ),
            "gammu-smsd did not start:\n{}",
            g.log()
        );
        g
    }

    fn config(&self) -> PathBuf {
        self.dir.join("smsdrc")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("smsd.log")).unwrap_or_default()
    }

    /// The first message moved to `sent/`: its file's metadata and text.
    fn wait_for_sent(&self, timeout: Duration) -> Option<(std::fs::Metadata, String)> {
        let mut found = None;
        wait_for(
            || {
                found = std::fs::read_dir(self.dir.join("sent"))
                    .ok()
                    .and_then(|mut d| d.next())
                    .and_then(|e| e.ok())
                    .map(|e| e.path());
                found.is_some()
            },
            timeout,
        );
        let path = found?;
        let name = path.file_name()?.to_string_lossy().into_owned();
        assert!(name.contains(&format!("_{NUMBER}_")), "{name}");
        Some((
            std::fs::metadata(&path).ok()?,
            std::fs::read_to_string(&path).ok()?,
        ))
    }
}

impl Drop for Gammu {
    fn drop(&mut self) {
        let _ = self.smsd.kill();
        let _ = self.smsd.wait();
    }
}

/// True when Debian's gammu-smsd is installed; as root (CI, tests/run.sh install the
/// `tests` packages) a missing one fails the test, as another user it is skipped.
fn gammu_or_skip(test: &str) -> bool {
    if Path::new(INJECT).exists() && Path::new(SMSD).exists() {
        return true;
    }
    let how = "Debian's gammu-smsd (scripts/packages.txt: tests; or: sudo apt-get install gammu gammu-smsd)";
    assert!(
        !is_root(),
        "{INJECT} or {SMSD} is missing: {test} needs {how}"
    );
    println!("SKIPPED: {test}: Gammu's SMS daemon is not installed; it needs {how}");
    false
}

#[test]
fn gammu_smsd_inject_queues_the_text_and_gammu_smsd_sends_it_through_its_dummy_phone() {
    if !gammu_or_skip(
        "gammu_smsd_inject_queues_the_text_and_gammu_smsd_sends_it_through_its_dummy_phone",
    ) {
        return;
    }
    let w = World::bus_only();
    let gammu = Gammu::start(&w.path("gammu"));
    let user = if is_root() { "user = \"gammu\"\n" } else { "" };
    let w = started(
        w,
        &sms_config(
            "",
            &format!(
                "[sms.command]\nprogram = \"{INJECT}\"\nargs = [\"-c\", \"{}\", \"TEXT\"]\n{user}",
                gammu.config().display()
            ),
        ),
    );
    ready_to_text(&w);
    let mut login = w.pam_typing("twofold", me());
    login.wait_for("'sms' to text a code to +49********678");
    login.line("sms");
    let shown = login.wait_for("valid 5 min: ");
    assert!(
        shown.contains("Code sent by SMS to +49********678 at "),
        "{shown}\n{}\n{}",
        w.daemon_log(),
        gammu.log()
    );
    let (meta, text) = gammu
        .wait_for_sent(Duration::from_secs(20))
        .unwrap_or_else(|| panic!("nothing was sent\n{}\n{}", gammu.log(), w.daemon_log()));
    assert!(
        text.contains("is your twofold login code for twofold on")
            && text.ends_with("Not you? Tell IT at once."),
        "{text:?}"
    );
    assert!(
        gammu
            .log()
            .contains(&format!("to {NUMBER}, message reference")),
        "{}",
        gammu.log()
    );
    let owner = if is_root() {
        uid_of("gammu")
    } else {
        nix::unistd::geteuid().as_raw()
    };
    assert_eq!(meta.uid(), owner, "who wrote the outbox file");
    assert_eq!(
        meta.mode() & 0o077,
        0,
        "the spool file is private (umask 077)"
    );
    println!(
        "proved: gammu-smsd-inject, run as uid {owner} with the text on stdin, queued it in the outbox (mode {:o}); gammu-smsd sent it to {NUMBER} through its dummy phone",
        meta.mode() & 0o777
    );
    login.line(&code_in(&text));
    let result = login.finish();
    assert!(result.passed(), "{result:?}\n{}", w.daemon_log());
    println!("proved: the code Gammu sent passes");
}

/// Runs twofoldd on `extra` (it must not start: at most 10 s) and returns what it said.
fn refused_start(w: &World, extra: &str, wrapper: &[&str]) -> String {
    let config = w.write_config(extra);
    let mut cmd = match wrapper.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(binary("twofoldd"));
            c
        }
        None => Command::new(binary("twofoldd")),
    };
    let log = w.path("refused.log");
    let mut daemon = cmd
        .arg("--config")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("twofoldd");
    let mut status = None;
    wait_for(
        || {
            status = daemon.try_wait().ok().flatten();
            status.is_some()
        },
        Duration::from_secs(10),
    );
    let said = std::fs::read_to_string(&log).unwrap_or_default();
    if status.is_none() {
        let _ = daemon.kill();
        let _ = daemon.wait();
        panic!("twofoldd started: {said}");
    }
    assert!(status.is_some_and(|s| !s.success()), "{said}");
    said
}

#[test]
fn a_program_others_could_change_stops_the_start() {
    let w = World::bus_only();
    let bin = w.path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let program = bin.join("send-sms");
    std::fs::write(&program, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o775)).unwrap();
    let sms = format!(
        "[sms]\nenabled = true\nallowed_prefixes = [\"+49\"]\n[sms.command]\nprogram = \"{}\"\n",
        program.display()
    );
    let said = refused_start(&w, &format!("{sms}{}", program_user()), &[]);
    assert!(
        said.contains("[sms.command] program")
            && said.contains("writable by its group or others (mode 775)"),
        "{said}"
    );
    let said = refused_start(&w, &format!("{sms}user = \"root\"\n"), &[]);
    assert!(said.contains("user = \"root\" is refused"), "{said}");
    let said = refused_start(&w, &format!("{sms}user = \"nobody\"\n"), &[]);
    assert!(said.contains("user = \"nobody\" is refused"), "{said}");
    println!(
        "proved: twofoldd does not start with a group-writable program, nor with user = \"root\" or \"nobody\", and says why"
    );
}

#[test]
#[cfg_attr(
    not(as_root),
    ignore = "needs root: starts twofoldd without CAP_SETUID"
)]
fn a_root_that_cannot_switch_to_the_user_stops_the_start() {
    require_root("starts twofoldd without CAP_SETUID");
    let w = World::bus_only();
    let sms = format!(
        "[sms]\nenabled = true\nallowed_prefixes = [\"+49\"]\n[sms.command]\nprogram = \"/bin/true\"\n{}",
        program_user()
    );
    // As the shipped unit's CapabilityBoundingSet= leaves it.
    let said = refused_start(
        &w,
        &sms,
        &["setpriv", "--bounding-set=-setuid,-setgid", "--"],
    );
    assert!(
        said.contains(&format!(
            "cannot run the program as user \"{PROGRAM_USER}\""
        )) && said.contains("CAP_SETUID"),
        "{said}"
    );
    println!(
        "proved: without CAP_SETUID/CAP_SETGID twofoldd refuses to start with [sms.command] and names the unit settings it needs"
    );
}

fn wait_for(mut done: impl FnMut() -> bool, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
